//! KafkaTopic admission checks against live Kafka (`shared::rules::kafkatopic::check_against_kafka`):
//! the topic as Kafka has it (partitions, replication factor, topic-level configs) and the live
//! broker count, read with a hard time budget so that an unreachable cluster gives a clear
//! Internal error well inside the webhook timeout. The operator's admin client is used: it
//! connects only to the broker addresses derived from the cluster (`render::names::admin_nodes`)
//! and refuses oversized or malformed answers with an error (a hostile peer cannot crash the
//! webhook).

use std::time::Duration;

use koperator_shared::api::KafkaTopic;
use koperator_shared::kafka::{self, Admin, ConfigResource, ConfigSource, ConnectOptions, Resolver, SaslScram};
use koperator_shared::render::names::{admin_nodes, admin_tls};
use koperator_shared::render::{sasl, tls};
use koperator_shared::rules::FieldError;
use koperator_shared::rules::kafkatopic::{ExistingTopic, check_against_kafka};
use koperator_shared::validated::ValidatedCluster;
use tokio::runtime::Handle;
use tracing::debug;

use crate::admission::KafkaTopicChecks;

/// Why a KafkaTopic could not be checked against its Kafka.
#[derive(Debug, thiserror::Error)]
pub enum KafkaCheckError {
    /// Kafka did not answer every read within the budget.
    #[error("no answer from Kafka within {0:?}")]
    Timeout(Duration),
    /// A Kafka request failed (unreachable, refused, an error code).
    #[error(transparent)]
    Kafka(#[from] kafka::Error),
    /// The admin listener is SSL and the operator's client certificate cannot be used.
    #[error("the admin listener is SSL and the client certificate in Secret {secret} cannot be used: {reason}")]
    ClientCertificate {
        /// `namespace/name` of the Secret.
        secret: String,
        /// Why.
        reason: String,
    },
    /// The admin listener is SASL and the admin SCRAM credential cannot be used.
    #[error("the admin listener is SASL and the admin credential in Secret {secret} cannot be used: {reason}")]
    AdminCredential {
        /// `namespace/name` of the Secret.
        secret: String,
        /// Why.
        reason: String,
    },
}

impl KafkaCheckError {
    /// Stable category for metric labels and logs.
    pub fn category(&self) -> &'static str {
        match self {
            KafkaCheckError::Timeout(_) => "KafkaCheckTimeout",
            KafkaCheckError::Kafka(e) => e.category(),
            KafkaCheckError::ClientCertificate { .. } => "ClientCertificateUnavailable",
            KafkaCheckError::AdminCredential { .. } => "AdminCredentialUnavailable",
        }
    }
}

/// Asks the topic's cluster. On an SSL admin listener it presents the operator's client
/// certificate of that cluster (`<cluster>-controller`, read by name with `kube`, only when the
/// KafkaCluster controls it), verifying the brokers against the cluster CA.
pub struct LiveKafkaChecks {
    runtime: Handle,
    opts: ConnectOptions,
    budget: Duration,
    kube: Option<kube::Client>,
}

impl LiveKafkaChecks {
    /// Checks that run on `runtime`, resolve broker names through `hosts_file` first, give a
    /// connection attempt `connect_timeout` (capped at half the budget, so that a second
    /// broker can still be tried) and give up after `budget`.
    pub fn new(
        runtime: Handle,
        hosts_file: Option<std::path::PathBuf>,
        connect_timeout: Duration,
        budget: Duration,
    ) -> Self {
        let opts = ConnectOptions {
            client_id: "koperator-webhook".into(),
            connect_timeout: connect_timeout.min(budget / 2),
            request_timeout: budget,
            tls: None,
            sasl: None,
            resolver: Resolver::with_hosts_file(hosts_file),
        };
        LiveKafkaChecks { runtime, opts, budget, kube: None }
    }

    /// Reads client certificates with `client`, so that clusters with an SSL admin listener
    /// are checked too (without it they are not asked).
    pub fn with_client_certificates(mut self, client: kube::Client) -> Self {
        self.kube = Some(client);
        self
    }

    /// TLS settings with the client certificate of `cluster` (`clientSSLCertSecret`, else the
    /// operator's issued one).
    async fn tls_for(
        &self,
        kube: &kube::Client,
        cluster: &ValidatedCluster,
    ) -> Result<ConnectOptions, KafkaCheckError> {
        use kube::ResourceExt;
        let ns = cluster.namespace().unwrap_or_default();
        let source = tls::client_identity_source(cluster).ok_or(KafkaCheckError::ClientCertificate {
            secret: ns.clone(),
            reason: "the cluster has neither clientSSLCertSecret nor listenersConfig.sslSecrets".into(),
        })?;
        let name = source.secret().to_string();
        let fail = |reason: String| KafkaCheckError::ClientCertificate { secret: format!("{ns}/{name}"), reason };
        let secret = read_secret(kube, &ns, &name).await.map_err(fail)?;
        let [ca, crt, key] =
            tls::client_identity(&source, &secret, &cluster.uid().unwrap_or_default()).map_err(fail)?;
        let config = kafka::client_config(&ca, Some((&crt, &key))).map_err(|e| fail(e.to_string()))?;
        Ok(ConnectOptions { tls: Some(config), ..self.opts.clone() })
    }
}

impl LiveKafkaChecks {
    /// The admin SCRAM login of `cluster` (a SASL admin listener), from the Secret the
    /// operator created for it.
    async fn admin_login(&self, kube: &kube::Client, cluster: &ValidatedCluster) -> Result<SaslScram, KafkaCheckError> {
        use kube::ResourceExt;
        let ns = cluster.namespace().unwrap_or_default();
        let name = sasl::admin_secret(cluster);
        let fail = |reason: String| KafkaCheckError::AdminCredential { secret: format!("{ns}/{name}"), reason };
        let secret = read_secret(kube, &ns, &name).await.map_err(fail)?;
        let password = sasl::admin_password(&secret, &cluster.uid().unwrap_or_default()).map_err(fail)?;
        Ok(SaslScram::new(sasl::ADMIN_USER, password))
    }
}

/// Secret `ns/name`, or why it cannot be had.
async fn read_secret(kube: &kube::Client, ns: &str, name: &str) -> Result<k8s_openapi::api::core::v1::Secret, String> {
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(kube.clone(), ns);
    api.get_opt(name).await.map_err(|e| format!("cannot read it: {e}"))?.ok_or_else(|| "it does not exist".into())
}

async fn read_topic(admin: &Admin, name: &str) -> Result<(Option<ExistingTopic>, usize), kafka::Error> {
    let meta = admin.metadata(Some(&[name])).await?;
    let live = meta.brokers.len();
    let Some(t) = meta.topic(name) else { return Ok((None, live)) };
    let config = admin
        .describe_configs(&ConfigResource::Topic(name.into()))
        .await?
        .into_iter()
        .filter(|c| c.source == ConfigSource::DynamicTopic)
        .filter_map(|c| Some((c.name, c.value?)))
        .collect();
    let existing = ExistingTopic {
        partitions: t.partitions.len() as i32,
        replication_factor: t.replication_factor() as i32,
        config,
    };
    Ok((Some(existing), live))
}

impl KafkaTopicChecks for LiveKafkaChecks {
    fn check(
        &self,
        topic: &KafkaTopic,
        cluster: &ValidatedCluster,
        cr_exists: bool,
    ) -> Result<Vec<FieldError>, KafkaCheckError> {
        // A cluster whose admin listener the client cannot speak has no Kafka to ask.
        let tls = admin_tls(cluster);
        let scram = sasl::admin_scram(cluster);
        if (tls || scram) && self.kube.is_none() {
            debug!(
                "KafkaTopic checks against Kafka skipped: the admin listener needs a client certificate or the admin \
                 credential, and no Secret can be read"
            );
            return Ok(Vec::new());
        }
        let nodes = match admin_nodes(cluster) {
            Ok(n) => n,
            Err(why) => {
                debug!(%why, category = why.category(), "KafkaTopic checks against Kafka skipped");
                return Ok(Vec::new());
            }
        };
        let budget = self.budget;
        let read = self.runtime.block_on(async {
            tokio::time::timeout(budget, async {
                let mut opts = match (&self.kube, tls) {
                    (Some(kube), true) => self.tls_for(kube, cluster).await?,
                    _ => self.opts.clone(),
                };
                if let (Some(kube), true) = (&self.kube, scram) {
                    opts.sasl = Some(self.admin_login(kube, cluster).await?);
                }
                let admin = Admin::for_nodes(nodes, opts).with_retry_for(Duration::ZERO);
                read_topic(&admin, &topic.spec.name).await.map_err(KafkaCheckError::from)
            })
            .await
        });
        let (existing, live) = read.map_err(|_| KafkaCheckError::Timeout(budget))??;
        Ok(check_against_kafka(topic, existing.as_ref(), cr_exists, live))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use koperator_shared::api::common::ClusterReference;
    use koperator_shared::api::{KafkaCluster, KafkaTopic, KafkaTopicSpec};

    use super::*;

    /// A hostile "broker": every request is answered with an ApiVersions body whose api_keys
    /// array claims 2^32-2 elements (an abort of the webhook without bounded decoding).
    fn hostile_peer() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut head = [0u8; 12];
                if stream.read_exact(&mut head).is_err() {
                    continue;
                }
                let mut body = head[8..12].to_vec();
                body.extend_from_slice(&[0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]);
                let mut frame = (body.len() as i32).to_be_bytes().to_vec();
                frame.extend_from_slice(&body);
                let _ = stream.write_all(&frame);
            }
        });
        port
    }

    #[test]
    fn a_hostile_broker_gives_the_webhook_an_error_not_an_abort() {
        let port = hostile_peer();
        let yaml = include_str!("../../config/samples/kafkacluster_kraft.yaml")
            .replace("containerPort: 29092", &format!("containerPort: {port}"));
        let mut kc: KafkaCluster = serde_saphyr::from_str(&yaml).unwrap();
        kc.metadata.namespace = Some("ns".into());
        let cluster = koperator_shared::validated::must(&kc);
        let hosts = std::env::temp_dir().join(format!("koperator-webhook-hostile-{}", std::process::id()));
        let names: Vec<String> = admin_nodes(&cluster)
            .unwrap()
            .values()
            .map(|a| koperator_shared::kafka::split_host_port(a).unwrap().0.to_string())
            .collect();
        std::fs::write(&hosts, format!("127.0.0.1 {}\n", names.join(" "))).unwrap();

        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let checks = LiveKafkaChecks::new(
            runtime.handle().clone(),
            Some(hosts.clone()),
            Duration::from_secs(1),
            Duration::from_secs(2),
        );
        let topic = KafkaTopic::new(
            "orders",
            KafkaTopicSpec {
                name: "orders".into(),
                partitions: 1,
                replication_factor: 1,
                config: None,
                cluster_ref: ClusterReference { name: "kafka".into(), namespace: None },
            },
        );
        let err = checks.check(&topic, &cluster, false).unwrap_err();
        std::fs::remove_file(&hosts).ok();
        assert_eq!(err.category(), "KafkaUnreachable", "{err}");
        let text = err.to_string();
        assert!(text.contains("CompactArray claims 4294967294 elements"), "{text}");
        assert!(text.contains(&format!(":{port}")), "the error names the broker: {text}");
    }
}

//! How the operator reaches each cluster's Kafka: one admin client per KafkaCluster, through
//! the internal listener marked `usedForKafkaAdminCommunication` (else the inter-broker one,
//! see `render::names::admin_nodes`). The client connects only to the broker addresses derived
//! here from the cluster's name, namespace and brokers, never to hosts the brokers advertise.
//!
//! On an SSL admin listener the client presents the cluster's `clientSSLCertSecret` (JKS, the
//! user's own) or else the operator's own certificate, issued from the cluster CA into
//! `<cluster>-controller` (a super user in the rendered config), and verifies the brokers'
//! certificates against the CAs in that Secret. The Secret is read by name each time a client
//! is asked for; the issued one is used only when the KafkaCluster controls it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use koperator_shared::api::KafkaCluster;
use koperator_shared::kafka::{Admin, ConnectOptions, Resolver, SaslScram, client_config};
use koperator_shared::render::names::{AdminAccessError, admin_nodes, admin_tls};
use koperator_shared::render::{sasl, tls};
use koperator_shared::validated::ValidatedCluster;
use kube::{Api, ResourceExt};

/// A cluster's admin client, with the broker addresses (by node id) and the fingerprint of the
/// TLS material it was built for.
struct Client {
    nodes: BTreeMap<i32, String>,
    tls: Option<String>,
    admin: Arc<Admin>,
}

/// Admin clients by cluster, rebuilt when the cluster's brokers, listener or certificates change.
pub struct KafkaAccess {
    kube: kube::Client,
    opts: ConnectOptions,
    clients: Mutex<HashMap<String, Client>>,
}

impl KafkaAccess {
    /// Clients that resolve broker names through `hosts_file` first (out-of-cluster runs) and
    /// read client certificates with `kube`.
    pub fn new(
        kube: kube::Client,
        hosts_file: Option<PathBuf>,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Self {
        let opts = ConnectOptions {
            client_id: "koperator".into(),
            connect_timeout,
            request_timeout,
            tls: None,
            sasl: None,
            resolver: Resolver::with_hosts_file(hosts_file),
        };
        KafkaAccess { kube, opts, clients: Mutex::new(HashMap::new()) }
    }

    /// The admin client of `cluster`, or why the operator cannot talk to it.
    pub async fn admin(&self, cluster: &ValidatedCluster) -> Result<Arc<Admin>, AdminAccessError> {
        let nodes = admin_nodes(cluster)?;
        let material = match admin_tls(cluster) {
            true => Some(self.client_certificate(cluster).await?),
            false => None,
        };
        let scram = match sasl::admin_scram(cluster) {
            true => Some(self.admin_password(cluster).await?),
            false => None,
        };
        let fingerprint = (material.is_some() || scram.is_some()).then(|| {
            let mut all: Vec<&str> = material.iter().flatten().map(String::as_str).collect();
            all.extend(scram.as_deref());
            koperator_shared::hash::fnv1a64_hex(all.join("\0").as_bytes())
        });
        let key = format!("{}/{}", cluster.namespace().unwrap_or_default(), cluster.name_any());
        let mut clients = self.clients.lock().expect("clients lock");
        if let Some(c) = clients.get(&key)
            && c.nodes == nodes
            && c.tls == fingerprint
        {
            return Ok(c.admin.clone());
        }
        let mut opts = self.opts.clone();
        if let Some([ca, crt, key_pem]) = &material {
            let config = client_config(ca, Some((crt, key_pem))).map_err(|e| AdminAccessError::ClientCertificate {
                secret: tls::client_identity_source(cluster).map(|s| s.secret().to_string()).unwrap_or_default(),
                reason: e.to_string(),
            })?;
            opts.tls = Some(config);
        }
        opts.sasl = scram.map(|password| SaslScram::new(sasl::ADMIN_USER, password));
        let admin = Arc::new(Admin::for_nodes(nodes.clone(), opts).with_retry_for(Duration::from_secs(5)));
        clients.insert(key, Client { nodes, tls: fingerprint, admin: admin.clone() });
        Ok(admin)
    }

    /// `[trusted CAs, chain, key]` of the client certificate of `cluster`: its
    /// `clientSSLCertSecret`, else the operator's issued one.
    async fn client_certificate(&self, cluster: &ValidatedCluster) -> Result<[String; 3], AdminAccessError> {
        let source = tls::client_identity_source(cluster).ok_or(AdminAccessError::ClientCertificate {
            secret: String::new(),
            reason: "the cluster has neither clientSSLCertSecret nor listenersConfig.sslSecrets".into(),
        })?;
        let name = source.secret().to_string();
        let unusable = |reason: String| AdminAccessError::ClientCertificate { secret: name.clone(), reason };
        let missing = match source {
            tls::ClientIdentitySource::Issued(_) => "it does not exist yet (the operator issues it)",
            tls::ClientIdentitySource::Own(_) => "it does not exist (spec.clientSSLCertSecret names it)",
        };
        let secret = self.read_secret(cluster, &name, missing).await.map_err(unusable)?;
        tls::client_identity(&source, &secret, &cluster.uid().unwrap_or_default()).map_err(unusable)
    }

    /// The admin SCRAM password of `cluster`, from the Secret the operator created for it.
    async fn admin_password(&self, cluster: &ValidatedCluster) -> Result<String, AdminAccessError> {
        let name = sasl::admin_secret(cluster);
        let unusable = |reason: String| AdminAccessError::AdminCredential { secret: name.clone(), reason };
        let secret = self
            .read_secret(cluster, &name, "it does not exist yet (the operator creates it)")
            .await
            .map_err(unusable)?;
        sasl::admin_password(&secret, &cluster.uid().unwrap_or_default()).map_err(unusable)
    }

    /// Secret `name` in the cluster's namespace, or why not (`missing` when it does not exist).
    async fn read_secret(&self, cluster: &ValidatedCluster, name: &str, missing: &str) -> Result<Secret, String> {
        let api: Api<Secret> = Api::namespaced(self.kube.clone(), &cluster.namespace().unwrap_or_default());
        api.get_opt(name).await.map_err(|e| format!("cannot read it: {e}"))?.ok_or_else(|| missing.to_string())
    }

    /// Drops the client of a deleted cluster.
    pub fn forget(&self, cluster: &KafkaCluster) {
        let key = format!("{}/{}", cluster.namespace().unwrap_or_default(), cluster.name_any());
        self.clients.lock().expect("clients lock").remove(&key);
    }
}

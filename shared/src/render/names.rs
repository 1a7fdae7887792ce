//! Object names and DNS names, following Koperator's conventions so its users find what they
//! expect (`<cluster>-config-<id>`, `<cluster>-headless`, `<cluster>-all-broker`...).

use crate::api::KafkaCluster;
use crate::validated::ValidatedCluster;

/// Name of the cluster object (empty when unset, which admission prevents).
pub(crate) fn cluster_name(c: &KafkaCluster) -> &str {
    c.metadata.name.as_deref().unwrap_or_default()
}

fn namespace(c: &KafkaCluster) -> &str {
    c.metadata.namespace.as_deref().unwrap_or("default")
}

/// Per-broker ConfigMap: `<cluster>-config-<id>`.
pub fn config_map(c: &KafkaCluster, id: i32) -> String {
    format!("{}-config-{id}", cluster_name(c))
}

/// The brokers' Prometheus JMX exporter configuration: `<cluster>-kafka-jmx-exporter`
/// (Koperator's).
pub fn jmx_exporter_config_map(c: &KafkaCluster) -> String {
    format!("{}-kafka-jmx-exporter", cluster_name(c))
}

/// Broker Pod (and, without headless service, its per-broker Service): `<cluster>-<id>`.
pub fn broker(c: &KafkaCluster, id: i32) -> String {
    format!("{}-{id}", cluster_name(c))
}

/// Headless Service: `<cluster>-headless`.
pub fn headless_service(c: &KafkaCluster) -> String {
    format!("{}-headless", cluster_name(c))
}

/// All-broker Service: `<cluster>-all-broker`.
pub fn all_broker_service(c: &KafkaCluster) -> String {
    format!("{}-all-broker", cluster_name(c))
}

/// The Service clients bootstrap from (headless or all-broker).
pub fn cluster_service(c: &KafkaCluster) -> String {
    if c.spec.headless_service_enabled { headless_service(c) } else { all_broker_service(c) }
}

/// PodDisruptionBudget: `kafka-pdb-<cluster>` (Koperator's).
pub fn pdb(c: &KafkaCluster) -> String {
    format!("kafka-pdb-{}", cluster_name(c))
}

/// `<namespace>.svc.<cluster domain>`.
pub fn service_domain(c: &KafkaCluster) -> String {
    format!("{}.svc.{}", namespace(c), c.spec.cluster_domain())
}

/// The broker's own DNS name: `<cluster>-<id>.<cluster>-headless.<ns>.svc.<domain>` with the
/// headless Service, `<cluster>-<id>.<ns>.svc.<domain>` with per-broker Services.
pub fn broker_fqdn(c: &KafkaCluster, id: i32) -> String {
    if c.spec.headless_service_enabled {
        format!("{}.{}.{}", broker(c, id), headless_service(c), service_domain(c))
    } else {
        format!("{}.{}", broker(c, id), service_domain(c))
    }
}

/// The Service Cruise Control will get, `<cluster>-cruisecontrol-svc` (Koperator's name). Not
/// rendered yet; reserved so that the cluster-name limit does not shrink when it is.
pub fn cruise_control_service(c: &KafkaCluster) -> String {
    format!("{}-cruisecontrol-svc", cluster_name(c))
}

/// The value of Koperator's `kafkaCluster` label on the cluster's KafkaTopics and KafkaUsers:
/// `<cluster>.<namespace>`.
pub fn cluster_ref_label(c: &KafkaCluster) -> String {
    format!("{}.{}", cluster_name(c), namespace(c))
}

/// Kubernetes' limit on names that must be DNS labels (Services, host names) and label values.
pub const MAX_LABEL: usize = 63;
/// Kubernetes' limit on names that must be DNS subdomains (ConfigMaps, Pods, PDBs, DNS names).
pub const MAX_SUBDOMAIN: usize = 253;
/// The highest broker id the rules allow.
pub const MAX_BROKER_ID: i32 = 65534;
/// The longest KafkaCluster name in any namespace: `<cluster>-cruisecontrol-svc`, the longest
/// Service name derived from a cluster alone, must stay a 63-character DNS label. Per-broker
/// names fit too (`<cluster>-65534` for Pod host names and Services); the namespace may
/// shorten it further ([`max_cluster_name_len`]).
pub const MAX_CLUSTER_NAME: usize = MAX_LABEL - "-cruisecontrol-svc".len();

/// The longest KafkaCluster name in `namespace`: [`MAX_CLUSTER_NAME`], and the `kafkaCluster`
/// label value `<cluster>.<namespace>` ([`cluster_ref_label`]) within 63 characters.
pub fn max_cluster_name_len(namespace: &str) -> usize {
    MAX_CLUSTER_NAME.min(MAX_LABEL.saturating_sub(namespace.len() + 1))
}

/// A name derived from the cluster's name, and the Kubernetes limit it must stay within.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DerivedName {
    /// What carries the name (`Service`, `Pod host name`, `label kafka_cr`...).
    pub what: String,
    /// The name.
    pub name: String,
    /// Its maximum length.
    pub limit: usize,
}

/// Every name derived from the cluster's name for this spec, with its limit: Services (DNS-1035
/// labels), Pod host names, label values, ConfigMap, Pod and PDB names, broker DNS names.
/// PVC names are not listed: [`pvc`] keeps them within 63 characters for any cluster name.
pub fn derived_names(c: &KafkaCluster) -> Vec<DerivedName> {
    let d = |what: &str, name: String, limit: usize| DerivedName { what: what.to_string(), name, limit };
    let mut out = vec![
        d("Service", headless_service(c), MAX_LABEL),
        d("Service", all_broker_service(c), MAX_LABEL),
        d("Service (Cruise Control, reserved)", cruise_control_service(c), MAX_LABEL),
        d("label kafka_cr", cluster_name(c).to_string(), MAX_LABEL),
        d("label kafkaCluster of its topics and users", cluster_ref_label(c), MAX_LABEL),
        d("PodDisruptionBudget", pdb(c), MAX_SUBDOMAIN),
    ];
    for b in &c.spec.brokers {
        out.push(d("Pod host name and per-broker Service", broker(c, b.id), MAX_LABEL));
        out.push(d("ConfigMap", config_map(c, b.id), MAX_SUBDOMAIN));
        out.push(d("broker DNS name", broker_fqdn(c, b.id), MAX_SUBDOMAIN));
        for l in c.spec.listeners_config.external() {
            let method = l.access_method_or_default();
            if method != crate::api::kafkacluster::AccessMethod::ClusterIp && !super::envoy::uses_envoy(&c.spec, l) {
                out.push(d("external listener Service", external_service(c, b.id, &l.common.name), MAX_LABEL));
            }
        }
    }
    out.extend(super::envoy::derived_names(c));
    out.extend(super::cluster_ip::derived_names(c));
    out
}

/// Per-broker Service of a NodePort or LoadBalancer external listener: `<cluster>-<id>-<listener>`.
pub fn external_service(c: &KafkaCluster, id: i32, listener: &str) -> String {
    format!("{}-{listener}", broker(c, id))
}

/// PVC of one disk: `<cluster>-<id>-storage-<mount path as a DNS label>-<hash>`, at most 63
/// characters. The hash (32 bits of FNV-1a over cluster, broker id and mount path) keeps
/// names of different disks apart even when their readable parts are equal (`/data/a-b` and
/// `/data/a/b`) or truncated (long cluster names, broker ids, mount paths). Named after the
/// mount path, not its position, so reordering the storage configs never swaps disks. The
/// operator keeps using a disk's existing PVC whatever its name
/// ([`super::objects::keep_existing_pvcs`]).
pub fn pvc(c: &KafkaCluster, id: i32, mount_path: &str) -> String {
    let dir = mount_path.trim_end_matches('/');
    let slug: String = dir
        .trim_start_matches('/')
        .chars()
        .map(|ch| if ch.is_ascii_alphanumeric() { ch.to_ascii_lowercase() } else { '-' })
        .collect();
    let hash = crate::hash::fnv1a64(format!("{}\0{id}\0{dir}", cluster_name(c)).as_bytes()) as u32;
    let mut head = format!("{}-{id}-storage-{}", cluster_name(c), slug.trim_matches('-'));
    head.truncate(MAX_LABEL - 9);
    format!("{}-{hash:08x}", head.trim_end_matches('-'))
}

/// Why the operator or the webhook cannot reach a cluster's Kafka.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminAccessError {
    /// No internal listener serves inner-broker (or admin) traffic.
    #[error("no internal listener is used for inner-broker communication")]
    NoAdminListener,
    /// The admin listener speaks a protocol the client does not.
    #[error(
        "the operator's Kafka client does not yet speak {protocol} (listener {listener}); health checks and dynamic configs are off"
    )]
    UnsupportedProtocol {
        /// Kafka's name of the protocol (`SSL`, `SASL_PLAINTEXT`...).
        protocol: String,
        /// The listener's name.
        listener: String,
    },
    /// The cluster has no broker-role node to ask.
    #[error("the cluster has no broker-role node")]
    NoBroker,
    /// The admin listener is SSL and the operator's client certificate cannot be used yet.
    #[error(
        "the admin listener is SSL and the operator's client certificate in Secret {secret} cannot be used: {reason}"
    )]
    ClientCertificate {
        /// The certificate's Secret.
        secret: String,
        /// Why (missing, not ours, unreadable).
        reason: String,
    },
    /// The admin listener is SASL and the admin SCRAM credential cannot be used yet.
    #[error("the admin listener is SASL and the admin SCRAM credential in Secret {secret} cannot be used: {reason}")]
    AdminCredential {
        /// The credential's Secret.
        secret: String,
        /// Why (missing, not ours, unreadable).
        reason: String,
    },
}

impl AdminAccessError {
    /// Stable category for Event reasons and metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            AdminAccessError::NoAdminListener => "NoAdminListener",
            AdminAccessError::UnsupportedProtocol { .. } => "UnsupportedProtocol",
            AdminAccessError::NoBroker => "NoBroker",
            AdminAccessError::ClientCertificate { .. } => "ClientCertificateUnavailable",
            AdminAccessError::AdminCredential { .. } => "AdminCredentialUnavailable",
        }
    }
}

/// `host:port` of every broker-role node on the listener the operator and webhook use to reach
/// Kafka: the internal listener marked `usedForKafkaAdminCommunication`, else the inter-broker
/// one. PLAINTEXT, and SSL with a client certificate ([`admin_tls`]: `clientSSLCertSecret` or
/// the operator's issued one); SASL with SCRAM on KRaft clusters ([`super::sasl::admin_scram`]).
/// SSL without a client certificate and SASL in ZooKeeper mode give an error saying so.
pub fn admin_bootstrap(cluster: &ValidatedCluster) -> Result<Vec<String>, AdminAccessError> {
    Ok(admin_nodes(cluster)?.into_values().collect())
}

/// [`admin_bootstrap`] by node id: the only addresses the admin clients connect to
/// (`kafka::Admin::for_nodes`), whatever the brokers advertise.
pub fn admin_nodes(cluster: &ValidatedCluster) -> Result<std::collections::BTreeMap<i32, String>, AdminAccessError> {
    let listener = admin_listener(cluster).ok_or(AdminAccessError::NoAdminListener)?;
    let protocol = listener.common.listener_type.kafka_name();
    let has_identity = super::tls::client_identity_source(cluster).is_some();
    let sasl_unspoken = protocol.starts_with("SASL") && !super::sasl::admin_scram(cluster);
    if (listener.common.listener_type.is_ssl() && !has_identity) || sasl_unspoken {
        return Err(AdminAccessError::UnsupportedProtocol {
            protocol: protocol.to_string(),
            listener: listener.common.name.clone(),
        });
    }
    let port = listener.common.container_port;
    let kraft = cluster.spec.kraft;
    let hosts: std::collections::BTreeMap<i32, String> = super::brokers(cluster)
        .iter()
        .filter(|b| b.is_broker(kraft))
        .map(|b| (b.broker.id, format!("{}:{port}", broker_fqdn(cluster, b.broker.id))))
        .collect();
    if hosts.is_empty() {
        return Err(AdminAccessError::NoBroker);
    }
    Ok(hosts)
}

/// Whether the admin listener ([`admin_nodes`]) is SSL: the operator and the webhook then
/// connect with the client certificate [`super::tls::client_identity_source`] names.
pub fn admin_tls(cluster: &ValidatedCluster) -> bool {
    admin_listener(cluster).is_some_and(|l| l.common.listener_type.is_ssl())
}

/// The internal listener the admin clients use: the one marked
/// `usedForKafkaAdminCommunication`, else the inter-broker one.
fn admin_listener(cluster: &ValidatedCluster) -> Option<&crate::api::kafkacluster::InternalListenerConfig> {
    let internal = &cluster.spec.listeners_config.internal_listeners;
    internal
        .iter()
        .find(|l| l.common.used_for_kafka_admin_communication == Some(true))
        .or_else(|| internal.iter().find(|l| l.common.used_for_inner_broker_communication))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::KafkaClusterSpec;

    /// Cluster `kafka` in namespace `team-a`, with or without the headless Service.
    pub(crate) fn cluster(headless: bool) -> KafkaCluster {
        let mut c =
            KafkaCluster::new("kafka", KafkaClusterSpec { headless_service_enabled: headless, ..Default::default() });
        c.metadata.namespace = Some("team-a".into());
        c
    }

    #[test]
    fn koperator_names() {
        let c = cluster(true);
        assert_eq!(config_map(&c, 3), "kafka-config-3");
        assert_eq!(broker(&c, 3), "kafka-3");
        assert_eq!(cluster_service(&c), "kafka-headless");
        assert_eq!(cluster_service(&cluster(false)), "kafka-all-broker");
    }

    #[test]
    fn broker_dns_names() {
        assert_eq!(broker_fqdn(&cluster(true), 1), "kafka-1.kafka-headless.team-a.svc.cluster.local");
        assert_eq!(broker_fqdn(&cluster(false), 1), "kafka-1.team-a.svc.cluster.local");
    }

    #[test]
    fn pvc_names_follow_the_mount_path_and_carry_a_hash() {
        let c = cluster(true);
        let name = pvc(&c, 0, "/kafka-logs");
        assert!(name.starts_with("kafka-0-storage-kafka-logs-"), "{name}");
        assert_eq!(name.len(), "kafka-0-storage-kafka-logs-".len() + 8);
        assert!(pvc(&c, 0, "/data/Disk_2/").starts_with("kafka-0-storage-data-disk-2-"));
        assert_eq!(pvc(&c, 0, "/data/x/"), pvc(&c, 0, "/data/x"), "one directory, one PVC");
    }

    #[test]
    fn pvc_names_never_collide() {
        let long = KafkaCluster::new(&"k".repeat(MAX_CLUSTER_NAME), KafkaClusterSpec::default());
        let mut names = std::collections::BTreeSet::new();
        for c in [cluster(true), long] {
            for id in [1, 12, 123, 1234, 12345, MAX_BROKER_ID] {
                for path in
                    ["/data/a-b", "/data/a/b", "/data/a_b", "/Data/A-B", "/a/very/long/mount/path/that/does/not/fit/1"]
                {
                    let name = pvc(&c, id, path);
                    assert!(name.len() <= MAX_LABEL && crate::rules::names::is_dns_label(&name), "{name}");
                    assert!(names.insert(name.clone()), "{name} twice");
                }
            }
        }
    }

    #[test]
    fn the_longest_name_is_reserved_cruise_control() {
        assert_eq!(MAX_CLUSTER_NAME, 45);
        assert_eq!(max_cluster_name_len("default"), 45);
        assert_eq!(max_cluster_name_len(&"n".repeat(20)), 42);
        let mut c = KafkaCluster::new(&"k".repeat(45), KafkaClusterSpec::default());
        c.metadata.namespace = Some("n".repeat(17));
        c.spec.brokers = vec![crate::api::kafkacluster::Broker { id: MAX_BROKER_ID, ..Default::default() }];
        let over: Vec<_> = derived_names(&c).into_iter().filter(|d| d.name.len() > d.limit).collect();
        assert_eq!(over, vec![]);
        let longest = derived_names(&c).into_iter().filter(|d| d.limit == MAX_LABEL).map(|d| d.name.len()).max();
        assert_eq!(longest, Some(63), "the limit is tight");
    }
}

#[cfg(test)]
mod admin_bootstrap_tests {
    use super::*;
    use crate::api::KafkaCluster;

    fn sample(text: &str) -> ValidatedCluster {
        let mut kc: KafkaCluster = serde_saphyr::from_str(text).unwrap();
        kc.metadata.namespace = Some("ns".into());
        crate::validated::must(&kc)
    }

    #[test]
    fn bootstrap_lists_broker_role_nodes_on_the_inner_listener() {
        let kc = sample(include_str!("../../../config/samples/kafkacluster_kraft.yaml"));
        assert_eq!(
            admin_bootstrap(&kc).unwrap(),
            ["100", "101", "102"].map(|id| format!("kafka-{id}.kafka-headless.ns.svc.cluster.local:29092")).to_vec(),
            "controller-only nodes do not serve clients"
        );
    }

    #[test]
    fn ssl_admin_listener_is_spoken_with_a_client_certificate() {
        use super::super::tls::{ClientIdentitySource, client_identity_source};
        let kc = sample(include_str!("../../../config/samples/simplekafkacluster_ssl.yaml"));
        assert_eq!(admin_bootstrap(&kc).unwrap().len(), 3);
        assert!(admin_tls(&kc));
        assert_eq!(client_identity_source(&kc), Some(ClientIdentitySource::Issued("kafka-ssl-controller".into())));
        // A listener certificate of the user's own, with the operator's issued client certificate.
        let mut own = (*kc).clone();
        for l in &mut own.spec.listeners_config.internal_listeners {
            l.common.server_ssl_cert_secret =
                Some(k8s_openapi::api::core::v1::LocalObjectReference { name: "server-jks".into() });
        }
        let rejected = crate::validated::ValidatedCluster::new(&own, &Default::default()).unwrap_err();
        assert!(rejected.to_string().contains("clientSSLCertSecret"), "no client certificate: {rejected}");
        // No PKI at all: clientSSLCertSecret is the identity.
        own.spec.listeners_config.ssl_secrets = None;
        own.spec.client_ssl_cert_secret =
            Some(k8s_openapi::api::core::v1::LocalObjectReference { name: "client-jks".into() });
        let own = crate::validated::must(&own);
        assert_eq!(admin_bootstrap(&own).unwrap().len(), 3);
        assert_eq!(client_identity_source(&own), Some(ClientIdentitySource::Own("client-jks".into())));
        // SASL is spoken with SCRAM on KRaft clusters.
        let mut sasl = (*kc).clone();
        for l in &mut sasl.spec.listeners_config.internal_listeners {
            if l.common.listener_type.is_ssl() {
                l.common.listener_type = crate::api::kafkacluster::SecurityProtocol::SaslPlaintext;
                l.common.ssl_client_auth = None;
            }
        }
        assert!(super::super::sasl::admin_scram(&sasl));
        assert_eq!(admin_bootstrap(&crate::validated::must(&sasl)).unwrap().len(), 3);
    }
}

//! Object names and DNS names, following Koperator's conventions so its users find what they
//! expect (`<cluster>-config-<id>`, `<cluster>-headless`, `<cluster>-all-broker`...).

use crate::api::KafkaCluster;
use crate::validated::ValidatedCluster;

/// Name of the cluster object (empty when unset, which admission prevents).
fn cluster_name(c: &KafkaCluster) -> &str {
    c.metadata.name.as_deref().unwrap_or_default()
}

fn namespace(c: &KafkaCluster) -> &str {
    c.metadata.namespace.as_deref().unwrap_or("default")
}

/// Per-broker ConfigMap: `<cluster>-config-<id>`.
pub fn config_map(c: &KafkaCluster, id: i32) -> String {
    format!("{}-config-{id}", cluster_name(c))
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

/// PVC of one disk: `<cluster>-<id>-storage-<mount path as a DNS label>`, shortened with a
/// stable hash when too long. Named after the mount path, not its position, so reordering the
/// storage configs never swaps disks.
pub fn pvc(c: &KafkaCluster, id: i32, mount_path: &str) -> String {
    let slug: String = mount_path
        .trim_matches('/')
        .chars()
        .map(|ch| if ch.is_ascii_alphanumeric() { ch.to_ascii_lowercase() } else { '-' })
        .collect();
    let slug = slug.trim_matches('-');
    let name = format!("{}-{id}-storage-{slug}", cluster_name(c));
    if name.len() <= 63 {
        return name;
    }
    // The low 32 bits of the hash are plenty to tell mount paths of one broker apart.
    let hash = crate::hash::fnv1a64(mount_path.as_bytes()) as u32;
    format!("{}-{hash:08x}", &name[..54].trim_end_matches('-'))
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
}

impl AdminAccessError {
    /// Stable category for Event reasons and metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            AdminAccessError::NoAdminListener => "NoAdminListener",
            AdminAccessError::UnsupportedProtocol { .. } => "UnsupportedProtocol",
            AdminAccessError::NoBroker => "NoBroker",
        }
    }
}

/// `host:port` of every broker-role node on the listener the operator and webhook use to reach
/// Kafka: the internal listener marked `usedForKafkaAdminCommunication`, else the inter-broker
/// one. Only PLAINTEXT is spoken so far; SSL/SASL listeners give an error saying so.
pub fn admin_bootstrap(cluster: &ValidatedCluster) -> Result<Vec<String>, AdminAccessError> {
    Ok(admin_nodes(cluster)?.into_values().collect())
}

/// [`admin_bootstrap`] by node id: the only addresses the admin clients connect to
/// (`kafka::Admin::for_nodes`), whatever the brokers advertise.
pub fn admin_nodes(cluster: &ValidatedCluster) -> Result<std::collections::BTreeMap<i32, String>, AdminAccessError> {
    let internal = &cluster.spec.listeners_config.internal_listeners;
    let listener = internal
        .iter()
        .find(|l| l.common.used_for_kafka_admin_communication == Some(true))
        .or_else(|| internal.iter().find(|l| l.common.used_for_inner_broker_communication))
        .ok_or(AdminAccessError::NoAdminListener)?;
    let protocol = listener.common.listener_type.kafka_name();
    if listener.common.listener_type.is_ssl() || protocol.starts_with("SASL") {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::KafkaClusterSpec;

    fn cluster(headless: bool) -> KafkaCluster {
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
    fn pvc_names_follow_the_mount_path_and_stay_short() {
        let c = cluster(true);
        assert_eq!(pvc(&c, 0, "/kafka-logs"), "kafka-0-storage-kafka-logs");
        assert_eq!(pvc(&c, 0, "/data/Disk_2/"), "kafka-0-storage-data-disk-2");
        let long = pvc(&c, 0, "/a/very/long/mount/path/that/does/not/fit/into/a/kubernetes/name");
        assert!(long.len() <= 63, "{long}");
        assert_ne!(long, pvc(&c, 0, "/a/very/long/mount/path/that/does/not/fit/into/a/kubernetes/name2"));
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
    fn ssl_admin_listener_is_reported_not_guessed() {
        let kc = sample(include_str!("../../../config/samples/simplekafkacluster_ssl.yaml"));
        let err = admin_bootstrap(&kc).unwrap_err();
        assert_eq!(err.category(), "UnsupportedProtocol");
        assert!(err.to_string().contains("does not yet speak SSL"), "{err}");
    }
}

//! Object names and DNS names, following Koperator's conventions so its users find what they
//! expect (`<cluster>-config-<id>`, `<cluster>-headless`, `<cluster>-all-broker`...).

use crate::api::KafkaCluster;

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

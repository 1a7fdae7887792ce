//! The brokers' Prometheus JMX exporter, as Koperator renders it for every cluster (with its
//! defaults when `spec.monitoringConfig` is not set): an init container from `jmxImage` copies
//! the javaagent jar (`pathToJar`) into the `jmx-jar-data` emptyDir, the exporter configuration
//! (`kafkaJMXExporterConfig`, else [`DEFAULT_KAFKA_CONFIG`]) lives in the cluster's ConfigMap
//! `<cluster>-kafka-jmx-exporter`, and `KAFKA_OPTS` loads the agent serving
//! `:`[`METRICS_PORT`]`/metrics`. The operator reads each broker's release from there.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, ResourceRequirements, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::names;
use crate::api::kafkacluster::MonitoringConfig;
use crate::validated::ValidatedCluster;

/// Koperator's default exporter image (`monitoringConfig.jmxImage`).
pub const DEFAULT_IMAGE: &str = "ghcr.io/adobe/koperator/jmx-javaagent:1.5.0";
/// Where the jar is in that image (`monitoringConfig.pathToJar`).
pub const DEFAULT_PATH_TO_JAR: &str = "/jmx_prometheus_javaagent.jar";
/// The port the exporter serves `/metrics` on (Koperator's).
pub const METRICS_PORT: i32 = 9020;
/// The name of that container port.
pub const METRICS_PORT_NAME: &str = "metrics";
/// The init container copying the jar.
pub const INIT_CONTAINER: &str = "jmx-exporter";
/// The emptyDir holding the jar.
pub const JAR_VOLUME: &str = "jmx-jar-data";
/// Where that emptyDir is mounted.
pub const JAR_DIR: &str = "/opt/jmx-exporter/";
/// The jar, as the Kafka container loads it.
pub const JAR_PATH: &str = "/opt/jmx-exporter/jmx_prometheus.jar";
/// Where the exporter ConfigMap is mounted.
pub const CONFIG_DIR: &str = "/etc/jmx-exporter/";
/// Its key (and file name).
pub const CONFIG_KEY: &str = "config.yaml";
/// The rules used when `kafkaJMXExporterConfig` is not set: `kafka_server_app_info_version`
/// (the release as a `version` label), the request, topic and partition meters, gauges
/// (under-replicated and under-min-ISR partitions, offline partitions, the active controller,
/// log sizes...), request latencies, Kafka's own metrics and the JVM's beans.
pub const DEFAULT_KAFKA_CONFIG: &str = include_str!("jmx_exporter_kafka.yaml");
/// Pod annotations that let an annotation-driven Prometheus scrape the exporter; the broker's
/// own `brokerAnnotations` win over them.
pub const SCRAPE_ANNOTATIONS: [(&str, &str); 2] = [("prometheus.io/scrape", "true"), ("prometheus.io/port", "9020")];

/// The name of the ConfigMap volume in the broker Pod. Koperator names it after the ConfigMap,
/// which limits cluster names to 44 characters (a volume name is a 63-character DNS label); a
/// fixed name fits every cluster name admission accepts.
pub const CONFIG_VOLUME: &str = "jmx-exporter-config";

fn monitoring(c: &ValidatedCluster) -> MonitoringConfig {
    c.spec.monitoring_config.clone().unwrap_or_default()
}

/// A set, non-empty value (Koperator treats `""` as unset).
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// The exporter configuration the brokers load.
pub fn kafka_config(c: &ValidatedCluster) -> String {
    given(&monitoring(c).kafka_jmx_exporter_config).unwrap_or(DEFAULT_KAFKA_CONFIG).to_string()
}

/// `<cluster>-kafka-jmx-exporter`, labelled `app=kafka-jmx,kafka_cr=<cluster>` (Koperator's).
pub fn config_map(c: &ValidatedCluster) -> ConfigMap {
    let labels = BTreeMap::from([
        ("app".to_string(), "kafka-jmx".to_string()),
        ("kafka_cr".to_string(), c.metadata.name.clone().unwrap_or_default()),
    ]);
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(names::jmx_exporter_config_map(c)),
            namespace: c.metadata.namespace.clone(),
            labels: Some(labels),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(CONFIG_KEY.to_string(), kafka_config(c))])),
        ..Default::default()
    }
}

/// `KAFKA_OPTS` of the Kafka container: the agent on [`METRICS_PORT`] with the mounted config.
pub fn kafka_opts() -> String {
    format!("-javaagent:{JAR_PATH}={METRICS_PORT}:{CONFIG_DIR}{CONFIG_KEY}")
}

/// The init container copying the jar out of `jmxImage` into [`JAR_VOLUME`].
pub fn init_container(c: &ValidatedCluster) -> Container {
    let m = monitoring(c);
    let q = |s: &str| Quantity(s.to_string());
    let small = || BTreeMap::from([("cpu".to_string(), q("100m")), ("memory".to_string(), q("100Mi"))]);
    Container {
        name: INIT_CONTAINER.into(),
        image: Some(given(&m.jmx_image).unwrap_or(DEFAULT_IMAGE).to_string()),
        command: Some(vec!["cp".into(), given(&m.path_to_jar).unwrap_or(DEFAULT_PATH_TO_JAR).into(), JAR_PATH.into()]),
        volume_mounts: Some(vec![VolumeMount {
            name: JAR_VOLUME.into(),
            mount_path: JAR_DIR.into(),
            ..Default::default()
        }]),
        resources: Some(ResourceRequirements { limits: Some(small()), requests: Some(small()), ..Default::default() }),
        ..Default::default()
    }
}

/// The jar's emptyDir and the configuration's ConfigMap (mode 0644).
pub fn volumes(c: &ValidatedCluster) -> Vec<Volume> {
    vec![
        Volume { name: JAR_VOLUME.into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() },
        Volume {
            name: CONFIG_VOLUME.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names::jmx_exporter_config_map(c),
                default_mode: Some(0o644),
                ..Default::default()
            }),
            ..Default::default()
        },
    ]
}

/// Their mounts in the Kafka container.
pub fn mounts() -> Vec<VolumeMount> {
    vec![
        VolumeMount { name: JAR_VOLUME.into(), mount_path: JAR_DIR.into(), ..Default::default() },
        VolumeMount { name: CONFIG_VOLUME.into(), mount_path: CONFIG_DIR.into(), ..Default::default() },
    ]
}

/// The Kafka container's `metrics` port.
pub fn port() -> ContainerPort {
    ContainerPort {
        name: Some(METRICS_PORT_NAME.into()),
        container_port: METRICS_PORT,
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_rules_parse_and_export_the_release_first() {
        let config: serde_json::Value = serde_saphyr::from_str(DEFAULT_KAFKA_CONFIG).unwrap();
        assert_eq!(config["lowercaseOutputName"], true);
        let rules = config["rules"].as_array().unwrap();
        let version = &rules[0];
        assert_eq!(version["name"], "kafka_server_app_info_version");
        assert_eq!(version["labels"]["version"], "$2");
        assert!(version["pattern"].as_str().unwrap().starts_with("kafka.server<type=app-info, id=(\\d+)><>Version: "));
        for r in rules {
            let pattern = r["pattern"].as_str().unwrap_or_default();
            assert!(!pattern.is_empty(), "{r}");
            let groups = pattern.matches('(').count() - pattern.matches("\\(").count();
            // Every $n a rule uses is a group of its pattern.
            let uses = serde_json::to_string(r).unwrap();
            for n in 1..=9 {
                if uses.contains(&format!("${n}")) {
                    assert!(n <= groups, "{pattern} has no group {n}");
                }
            }
        }
    }
}

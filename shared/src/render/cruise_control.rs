//! Cruise Control, rendered from `spec.cruiseControlConfig` as Koperator renders it
//! (`pkg/resources/cruisecontrol`, `pkg/resources/cruisecontrolmonitoring`, and the brokers'
//! metrics reporter in `pkg/resources/kafka`):
//!
//! - the Deployment `<cluster>-cruisecontrol` (one replica, labels `app=cruisecontrol,
//!   kafka_cr=<cluster>`), its ConfigMap `<cluster>-cruisecontrol-config`
//!   (`cruisecontrol.properties`, `capacity.json`, `clusterConfigs.json`, `log4j.properties`,
//!   mounted at `/opt/cruise-control/config`), its Service `<cluster>-cruisecontrol-svc` (8090
//!   `cc`, 9020 `metrics`), and its JMX exporter (`<cluster>-cc-jmx-exporter`, from
//!   `monitoringConfig.cCJMXExporterConfig`);
//! - the metrics topic as the KafkaTopic `<cluster>-cruise-control-topic` (`__CruiseControlMetrics`,
//!   `topicConfig` or 12 partitions × 3 replicas), unless `readOnlyConfig` lets the reporter
//!   create it (`cruise.control.metrics.topic.auto.create=true`);
//! - on every broker: the reporter jar copied by the init container `cruise-control-reporter`
//!   from `metricsReporterImage`/`clusterMetricsReporterImage` (else the Cruise Control image)
//!   into the `extensions` emptyDir at `/opt/kafka/libs/extensions` (on `CLASSPATH`), and on
//!   broker-role nodes `metric.reporters` with its bootstrap and Kubernetes-mode settings.
//!
//! Koperator deploys Cruise Control for every cluster (its `cruiseControlConfig` is a required
//! field); here a cluster asks for it by setting anything in `cruiseControlConfig` besides the
//! task spec ([`configured`]), so that Koperator's `cruiseControlConfig: {}` placeholder keeps
//! meaning "no Cruise Control". With `cruiseControlEndpoint` set the brokers report to that
//! external Cruise Control and nothing is deployed ([`deployed`]).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, ExecAction, Lifecycle,
    LifecycleHandler, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SecretVolumeSource, Service, ServicePort,
    ServiceSpec, TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use super::{BrokerView, brokers, jmx, names, tls};
use crate::api::KafkaTopic;
use crate::api::common::ClusterReference;
use crate::api::kafkacluster::{BrokerConfig, CruiseControlConfig, KafkaClusterSpec, SecurityProtocol};
use crate::api::kafkatopic::KafkaTopicSpec;
use crate::rules::properties;
use crate::validated::ValidatedCluster;

/// Koperator's default Cruise Control image (also the default reporter image).
pub const DEFAULT_IMAGE: &str = "adobe/cruise-control:3.0.3-adbe-20260722";
/// Cruise Control's REST port.
pub const PORT: i32 = 8090;
/// The Cruise Control metrics reporter class brokers load (`metric.reporters`).
pub const REPORTER_CLASS: &str = "com.linkedin.kafka.cruisecontrol.metricsreporter.CruiseControlMetricsReporter";
/// Kafka's `metric.reporters`.
pub const METRIC_REPORTERS: &str = "metric.reporters";
/// The reporter's bootstrap servers.
pub const REPORTER_BOOTSTRAP: &str = "cruise.control.metrics.reporter.bootstrap.servers";
/// The reporter's Kubernetes mode (CPU usage relative to the container's limit).
pub const REPORTER_K8S_MODE: &str = "cruise.control.metrics.reporter.kubernetes.mode";
/// The metrics topic's name (Koperator's default).
pub const TOPIC_NAME: &str = "__CruiseControlMetrics";
/// `readOnlyConfig` key naming another metrics topic.
pub const TOPIC_NAME_KEY: &str = "cruise.control.metrics.topic";
/// `readOnlyConfig` key that lets the reporter create the topic itself.
pub const TOPIC_AUTO_CREATE_KEY: &str = "cruise.control.metrics.topic.auto.create";
/// Key of the Cruise Control configuration in its ConfigMap.
pub const PROPERTIES_KEY: &str = "cruisecontrol.properties";
/// Key of the broker capacities.
pub const CAPACITY_KEY: &str = "capacity.json";
/// Key of the cluster configs.
pub const CLUSTER_CONFIGS_KEY: &str = "clusterConfigs.json";
/// Key of the log4j configuration.
pub const LOG4J_KEY: &str = "log4j.properties";
/// Where the ConfigMap is mounted in the Cruise Control container.
pub const CONFIG_DIR: &str = "/opt/cruise-control/config";
/// Where the client certificate Secret is mounted in the Cruise Control container.
pub const KEYSTORE_DIR: &str = "/var/run/secrets/java.io/keystores";
/// The volume of that Secret.
pub const KEYSTORE_VOLUME: &str = "ks-files";
/// Pod annotation that, set to anything but `static`, keeps `capacity.json` out of the
/// restart-triggering hashes (Koperator's).
pub const CAPACITY_ANNOTATION: &str = "cruise-control.banzaicloud.com/broker-capacity-config";
/// The broker init container copying the reporter jar.
pub const REPORTER_INIT_CONTAINER: &str = "cruise-control-reporter";
/// Where the reporter jar is in the reporter image.
pub const REPORTER_JAR_SOURCE: &str =
    "/opt/cruise-control/cruise-control/build/dependant-libs/cruise-control-metrics-reporter.jar";
/// The brokers' emptyDir for extension jars.
pub const EXTENSIONS_VOLUME: &str = "extensions";
/// Where it is mounted (in the init container and the Kafka container).
pub const EXTENSIONS_DIR: &str = "/opt/kafka/libs/extensions";
/// The Kafka container's `CLASSPATH` with the extension jars.
pub const CLASSPATH: &str = "/opt/kafka/libs/extensions/*";
/// The default exporter rules of Cruise Control (Koperator's default: every bean, lower-case names).
pub const DEFAULT_JMX_CONFIG: &str = "lowercaseOutputName: true\n";
/// The log4j2 configuration used when `log4jConfig` is not set: INFO to the console, and
/// Cruise Control's operation and request logs to the console too.
pub const DEFAULT_LOG4J: &str = include_str!("cruise_control_log4j.properties");

const DEFAULT_PARTITIONS: i32 = 12;
const DEFAULT_REPLICATION_FACTOR: i32 = 3;
const DIR_PROVIDER: &str = "org.apache.kafka.common.config.provider.DirectoryConfigProvider";
/// Capacity defaults (CPU in percent, network in KB/s), Koperator's.
const DEFAULT_CPU: &str = "100";
const DEFAULT_NW: &str = "125000";
const DEFAULT_DOC: &str = "Capacity unit used for disk is in MB, cpu is in percentage, network throughput is in KB.";

/// Whether `spec` uses Cruise Control: anything in `cruiseControlConfig` besides the task spec
/// (the defaults pin one). The brokers then run the metrics reporter.
pub fn configured_in(spec: &KafkaClusterSpec) -> bool {
    let asked = CruiseControlConfig { cruise_control_task_spec: None, ..spec.cruise_control_config.clone() };
    asked != CruiseControlConfig::default()
}

/// Whether the operator deploys Cruise Control for `spec`: configured, and no external
/// `cruiseControlEndpoint`.
pub fn deployed_in(spec: &KafkaClusterSpec) -> bool {
    configured_in(spec) && spec.cruise_control_config.cruise_control_endpoint.as_deref().is_none_or(str::is_empty)
}

/// [`configured_in`] of the cluster's spec.
pub fn configured(c: &ValidatedCluster) -> bool {
    configured_in(&c.spec)
}

/// [`deployed_in`] of the cluster's spec.
pub fn deployed(c: &ValidatedCluster) -> bool {
    deployed_in(&c.spec)
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

fn cluster_name(c: &ValidatedCluster) -> String {
    c.metadata.name.clone().unwrap_or_default()
}

/// `app=cruisecontrol,kafka_cr=<cluster>` (Koperator's selector).
pub fn labels(c: &ValidatedCluster) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_string(), "cruisecontrol".to_string()), ("kafka_cr".to_string(), cluster_name(c))])
}

/// The labels of the Service and ConfigMap: the KafkaCluster's own labels, with ours on top.
fn labels_with_cluster(c: &ValidatedCluster) -> BTreeMap<String, String> {
    let mut l = c.metadata.labels.clone().unwrap_or_default();
    l.extend(labels(c));
    l
}

fn meta(c: &ValidatedCluster, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta { name: Some(name), namespace: c.metadata.namespace.clone(), labels: Some(labels), ..Default::default() }
}

/// `<cluster>-cruisecontrol`: the Deployment and its container.
pub fn deployment_name(c: &ValidatedCluster) -> String {
    format!("{}-cruisecontrol", cluster_name(c))
}

/// `<cluster>-cruisecontrol-config`: the ConfigMap and its volume.
pub fn config_map_name(c: &ValidatedCluster) -> String {
    format!("{}-cruisecontrol-config", cluster_name(c))
}

/// `<cluster>-cc-jmx-exporter`: the exporter's ConfigMap and its volume.
pub fn jmx_config_map_name(c: &ValidatedCluster) -> String {
    format!("{}-cc-jmx-exporter", cluster_name(c))
}

/// `<cluster>-cruise-control-topic`: the metrics topic's KafkaTopic.
pub fn topic_name(c: &ValidatedCluster) -> String {
    format!("{}-cruise-control-topic", cluster_name(c))
}

/// The container port clients reach the brokers on (Koperator's `GetBrokerContainerPort`): the
/// internal listener used for Kafka admin communication, else the inter-broker one that is
/// not the controller listener.
fn client_listener(c: &ValidatedCluster) -> Option<&crate::api::kafkacluster::CommonListenerSpec> {
    let internal = &c.spec.listeners_config.internal_listeners;
    internal
        .iter()
        .find(|l| l.common.used_for_kafka_admin_communication == Some(true))
        .or_else(|| {
            internal
                .iter()
                .find(|l| l.common.used_for_inner_broker_communication && !l.used_for_controller_communication)
        })
        .map(|l| &l.common)
}

/// `bootstrap.servers` of Cruise Control and of the reporter: the cluster Service (all-broker
/// or headless) on that listener's port.
pub fn bootstrap_servers(c: &ValidatedCluster) -> String {
    let port = client_listener(c).map(|l| l.container_port).unwrap_or(-1);
    format!("{}.{}:{port}", names::cluster_service(c), names::service_domain(c))
}

/// Whether Cruise Control reaches Kafka over SSL: the listener of [`bootstrap_servers`] is
/// `ssl` and a client certificate exists (Koperator asks the inter-broker listener, which is
/// that listener unless another one is used for Kafka admin communication).
fn ssl(c: &ValidatedCluster) -> bool {
    client_listener(c).is_some_and(|l| l.listener_type.is_ssl()) && tls::client_identity_source(c).is_some()
}

/// The `ssl.*` client settings of Cruise Control: SSL with the client certificate Secret
/// mounted at [`KEYSTORE_DIR`]; its passwords (a `clientSSLCertSecret`'s JKS) or PEM files
/// (the operator's issued certificate) read through Kafka's `DirectoryConfigProvider`, so no
/// secret is written into the ConfigMap.
fn ssl_properties(c: &ValidatedCluster) -> Vec<(String, String)> {
    if !ssl(c) {
        return Vec::new();
    }
    let file = |key: &str| format!("${{dir:{KEYSTORE_DIR}:{key}}}");
    let mut out = vec![
        ("config.providers", "dir".to_string()),
        ("config.providers.dir.class", DIR_PROVIDER.to_string()),
        ("config.providers.dir.param.allowed.paths", KEYSTORE_DIR.to_string()),
        ("security.protocol", "SSL".to_string()),
    ];
    match tls::client_identity_source(c) {
        Some(tls::ClientIdentitySource::Own(_)) => out.extend([
            ("ssl.keystore.location", format!("{KEYSTORE_DIR}/{}", tls::KEYSTORE_JKS)),
            ("ssl.keystore.password", file(tls::PASSWORD)),
            ("ssl.keystore.type", "JKS".to_string()),
            ("ssl.key.password", file(tls::PASSWORD)),
            ("ssl.truststore.location", format!("{KEYSTORE_DIR}/{}", tls::TRUSTSTORE_JKS)),
            ("ssl.truststore.password", file(tls::PASSWORD)),
            ("ssl.truststore.type", "JKS".to_string()),
        ]),
        _ => out.extend([
            ("ssl.keystore.certificate.chain", file(tls::TLS_CRT)),
            ("ssl.keystore.key", file(tls::TLS_KEY)),
            ("ssl.keystore.type", "PEM".to_string()),
            ("ssl.truststore.certificates", file(tls::CA_CRT)),
            ("ssl.truststore.type", "PEM".to_string()),
        ]),
    }
    out.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// `cruisecontrol.properties`: the user's `config`, with what the operator owns on top
/// (`bootstrap.servers`; in KRaft mode the admin topic config provider and Kafka's broker
/// failure detection, else `zookeeper.connect`; the SSL client settings), sorted by key.
pub fn cruise_control_properties(c: &ValidatedCluster) -> String {
    let spec = &c.spec;
    let mut props: BTreeMap<String, String> = given(&spec.cruise_control_config.config)
        .and_then(|t| properties::parse(t).ok())
        .unwrap_or_default()
        .into_iter()
        .collect();
    props.insert("bootstrap.servers".into(), bootstrap_servers(c));
    if spec.kraft {
        props.insert(
            "topic.config.provider.class".into(),
            "com.linkedin.kafka.cruisecontrol.config.KafkaAdminTopicConfigProvider".into(),
        );
        props.insert("kafka.broker.failure.detection.enable".into(), "true".into());
    } else {
        let path = spec
            .zk_path
            .as_deref()
            .filter(|p| !p.is_empty() && *p != "/")
            .map(|p| if p.starts_with('/') { p.to_string() } else { format!("/{p}") });
        props.insert(
            "zookeeper.connect".into(),
            format!("{}{}", spec.zk_addresses.clone().unwrap_or_default().join(","), path.unwrap_or_default()),
        );
    }
    props.extend(ssl_properties(c));
    let mut out = String::new();
    for (k, v) in props {
        out.push_str(&super::properties::escape_key(&k));
        out.push('=');
        out.push_str(&super::properties::escape_value(&v));
        out.push('\n');
    }
    out
}

#[derive(Serialize)]
struct Capacity {
    #[serde(rename = "DISK")]
    disk: BTreeMap<String, String>,
    #[serde(rename = "CPU")]
    cpu: String,
    #[serde(rename = "NW_IN")]
    nw_in: String,
    #[serde(rename = "NW_OUT")]
    nw_out: String,
}

#[derive(Serialize)]
struct BrokerCapacity {
    #[serde(rename = "brokerId")]
    broker_id: String,
    capacity: Capacity,
    doc: &'static str,
}

/// An entry of `capacity.json`: the user's as written, or generated (in Koperator's field order).
#[derive(Serialize)]
#[serde(untagged)]
enum Entry {
    User(serde_json::Value),
    Generated(BrokerCapacity),
}

#[derive(Serialize)]
struct CapacityConfig {
    #[serde(rename = "brokerCapacities")]
    broker_capacities: Option<Vec<Entry>>,
}

/// Why `capacityConfig` cannot be used, if it cannot (checked at admission).
pub fn capacity_config_error(text: &str) -> Option<String> {
    let v: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Some(format!("is not JSON: {e}")),
    };
    match v.get("brokerCapacities") {
        Some(serde_json::Value::Array(_)) | Some(serde_json::Value::Null) | None => None,
        Some(_) => Some("brokerCapacities must be a list".into()),
    }
}

/// A broker config field, the broker's own value winning over its group's.
fn pick<'a, T>(b: &'a BrokerView<'a>, f: impl Fn(&'a BrokerConfig) -> Option<&'a T>) -> Option<&'a T> {
    b.broker.broker_config.as_ref().and_then(&f).or_else(|| b.group.and_then(&f))
}

/// Megabytes of a quantity, rounded down (Koperator: `AsDec` rounded to 10^6).
fn megabytes(q: &Quantity) -> i64 {
    crate::rules::quantity::parse(&q.0).map(|v| (v.0 / 1e6).floor() as i64).unwrap_or(0)
}

fn generated_capacity(c: &ValidatedCluster, b: &BrokerView<'_>) -> BrokerCapacity {
    let spec = &c.spec;
    let mut disk = BTreeMap::new();
    for sc in b.broker.effective_storage(spec) {
        let size = match (&sc.pvc_spec, &sc.empty_dir) {
            (Some(p), _) => {
                p.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get("storage")).map(megabytes)
            }
            (None, Some(e)) => e.size_limit.as_ref().map(megabytes),
            _ => None,
        };
        disk.insert(
            format!("{}{}", sc.mount_path.trim_end_matches('/'), super::properties::LOG_DIR_SUFFIX),
            size.unwrap_or(0).to_string(),
        );
    }
    // CPU in percent of a core: the limit, in hundredths (Koperator's default limit is 1500m).
    let cpu_limit = pick(b, |cfg| cfg.resources.as_ref())
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("cpu"))
        .map(|q| q.0.clone())
        .unwrap_or_else(|| "1500m".into());
    let cpu = crate::rules::quantity::parse(&cpu_limit).map(|v| (v.0 * 100.0).ceil() as i64).unwrap_or(100);
    let network = pick(b, |cfg| cfg.network_config.as_ref());
    let nw = |v: Option<&String>| v.filter(|s| !s.is_empty()).cloned().unwrap_or_else(|| DEFAULT_NW.into());
    BrokerCapacity {
        broker_id: b.broker.id.to_string(),
        capacity: Capacity {
            disk,
            cpu: cpu.to_string(),
            nw_in: nw(network.and_then(|n| n.incoming_network_throughput.as_ref())),
            nw_out: nw(network.and_then(|n| n.outgoing_network_throughput.as_ref())),
        },
        doc: DEFAULT_DOC,
    }
}

fn default_capacity(id: &str) -> BrokerCapacity {
    BrokerCapacity {
        broker_id: id.to_string(),
        capacity: Capacity {
            disk: BTreeMap::from([("/kafka-logs/kafka".to_string(), "10737".to_string())]),
            cpu: DEFAULT_CPU.into(),
            nw_in: DEFAULT_NW.into(),
            nw_out: DEFAULT_NW.into(),
        },
        doc: DEFAULT_DOC,
    }
}

/// `capacity.json`, as Koperator generates it: the user's `capacityConfig` as it is when it has
/// a default entry (`brokerId` `-1`); else its entries, then one generated per other broker —
/// disks from the storage configs (MB, by log dir), CPU from the CPU limit (percent of a
/// core), network from `networkConfig` (KB/s, default 125000). Brokers are those of the
/// status (a broker being removed keeps an entry, with defaults when gone from the spec) and
/// of the spec, in the order of their ids as strings.
pub fn capacity_json(c: &ValidatedCluster) -> String {
    let user = given(&c.spec.cruise_control_config.capacity_config);
    let mut entries: Vec<Entry> = Vec::new();
    if let Some(text) = user {
        let parsed: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        for e in parsed.get("brokerCapacities").and_then(|v| v.as_array()).cloned().unwrap_or_default() {
            if e.get("brokerId").and_then(|v| v.as_str()) == Some("-1") {
                return text.to_string();
            }
            entries.push(Entry::User(e));
        }
    }
    let user_ids: Vec<String> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::User(v) => v.get("brokerId").and_then(|v| v.as_str()).map(str::to_string),
            Entry::Generated(_) => None,
        })
        .collect();
    let views = brokers(c);
    let mut ids: Vec<String> = c
        .status
        .as_ref()
        .and_then(|s| s.brokers_state.as_ref())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    ids.extend(views.iter().map(|b| b.broker.id.to_string()));
    ids.sort();
    ids.dedup();
    for id in ids.iter().filter(|id| !user_ids.contains(id)) {
        let cap = match views.iter().find(|b| b.broker.id.to_string() == *id) {
            Some(b) => generated_capacity(c, b),
            None => default_capacity(id),
        };
        entries.push(Entry::Generated(cap));
    }
    let config = CapacityConfig { broker_capacities: (!entries.is_empty()).then_some(entries) };
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::with_indent(b"    "));
    config.serialize(&mut ser).expect("capacities serialize");
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// Whether Cruise Control knows every broker's disks one by one (JBOD: each `DISK` of
/// [`capacity_json`] maps log directories to sizes), which its disk operations need: the
/// generated capacities always do; a `capacityConfig` with one `DISK` number does not.
pub fn jbod(c: &ValidatedCluster) -> bool {
    let parsed: serde_json::Value = serde_json::from_str(&capacity_json(c)).unwrap_or_default();
    let entries = parsed.get("brokerCapacities").and_then(|v| v.as_array()).cloned().unwrap_or_default();
    entries.iter().all(|e| e.get("capacity").and_then(|c| c.get("DISK")).is_some_and(|d| d.is_object()))
}

/// The ConfigMap `<cluster>-cruisecontrol-config`.
pub fn config_map(c: &ValidatedCluster) -> ConfigMap {
    let cc = &c.spec.cruise_control_config;
    ConfigMap {
        metadata: meta(c, config_map_name(c), labels_with_cluster(c)),
        data: Some(BTreeMap::from([
            (PROPERTIES_KEY.to_string(), cruise_control_properties(c)),
            (CAPACITY_KEY.to_string(), capacity_json(c)),
            (CLUSTER_CONFIGS_KEY.to_string(), cc.cluster_config.clone().unwrap_or_default()),
            (LOG4J_KEY.to_string(), given(&cc.log4j_config).unwrap_or(DEFAULT_LOG4J).to_string()),
        ])),
        ..Default::default()
    }
}

/// The exporter configuration `<cluster>-cc-jmx-exporter` (`app=cruisecontrol-jmx`).
pub fn jmx_config_map(c: &ValidatedCluster) -> ConfigMap {
    let config =
        c.spec.monitoring_config.as_ref().and_then(|m| given(&m.cc_jmx_exporter_config)).unwrap_or(DEFAULT_JMX_CONFIG);
    let labels = BTreeMap::from([
        ("app".to_string(), "cruisecontrol-jmx".to_string()),
        ("kafka_cr".to_string(), cluster_name(c)),
    ]);
    ConfigMap {
        metadata: meta(c, jmx_config_map_name(c), labels),
        data: Some(BTreeMap::from([(jmx::CONFIG_KEY.to_string(), config.to_string())])),
        ..Default::default()
    }
}

/// The Service `<cluster>-cruisecontrol-svc`: `cc` 8090 and `metrics` 9020.
pub fn service(c: &ValidatedCluster) -> Service {
    let port = |name: &str, p: i32| ServicePort {
        name: Some(name.into()),
        port: p,
        target_port: Some(IntOrString::Int(p)),
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    Service {
        metadata: meta(c, names::cruise_control_service(c), labels_with_cluster(c)),
        spec: Some(ServiceSpec {
            selector: Some(labels(c)),
            type_: Some("ClusterIP".into()),
            ports: Some(vec![port("cc", PORT), port(jmx::METRICS_PORT_NAME, jmx::METRICS_PORT)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The name of the metrics topic in Kafka (`cruise.control.metrics.topic` of `readOnlyConfig`, else
/// [`TOPIC_NAME`]).
pub fn metrics_topic(c: &ValidatedCluster) -> String {
    read_only(c).get(TOPIC_NAME_KEY).filter(|v| !v.is_empty()).cloned().unwrap_or_else(|| TOPIC_NAME.into())
}

fn read_only(c: &ValidatedCluster) -> BTreeMap<String, String> {
    c.spec.read_only_config.as_deref().and_then(|t| properties::parse(t).ok()).unwrap_or_default().into_iter().collect()
}

/// The KafkaTopic of the metrics topic, unless the reporter creates it
/// (`cruise.control.metrics.topic.auto.create=true` in `readOnlyConfig`).
pub fn topic(c: &ValidatedCluster) -> Option<KafkaTopic> {
    if read_only(c).get(TOPIC_AUTO_CREATE_KEY).is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return None;
    }
    let tc = c.spec.cruise_control_config.topic_config.as_ref();
    let labels = BTreeMap::from([
        ("app".to_string(), "kafka".to_string()),
        ("clusterName".to_string(), cluster_name(c)),
        ("clusterNamespace".to_string(), c.metadata.namespace.clone().unwrap_or_default()),
    ]);
    let mut t = KafkaTopic::new(
        &topic_name(c),
        KafkaTopicSpec {
            name: metrics_topic(c),
            partitions: tc.map_or(DEFAULT_PARTITIONS, |t| t.partitions),
            replication_factor: tc.map_or(DEFAULT_REPLICATION_FACTOR, |t| t.replication_factor),
            config: None,
            cluster_ref: ClusterReference { name: cluster_name(c), namespace: c.metadata.namespace.clone() },
        },
    );
    t.metadata = meta(c, topic_name(c), labels);
    Some(t)
}

fn default_resources() -> ResourceRequirements {
    let q = |s: &str| Quantity(s.to_string());
    let both = || BTreeMap::from([("cpu".to_string(), q("200m")), ("memory".to_string(), q("768Mi"))]);
    ResourceRequirements { requests: Some(both()), limits: Some(both()), ..Default::default() }
}

/// Stops Cruise Control's JVM with `$SIGNAL` (TERM) before the container goes.
const PRE_STOP: &str = r#"
SIGNAL=${SIGNAL:-TERM}
PIDS=$(ps ax | grep -i 'cruise-control' | grep java | grep -v grep | awk '{print $1}')
if [ -z "$PIDS" ]; then
  echo "No cruise-control to stop"
  exit 1
else
  kill -s $SIGNAL $PIDS
fi"#;

/// The Pod annotations: the user's, then a hash of each configuration file (a change rolls the
/// Pod); `capacity.json`'s only while [`CAPACITY_ANNOTATION`] is unset or `static`.
fn pod_annotations(c: &ValidatedCluster, cm: &ConfigMap) -> BTreeMap<String, String> {
    let mut a = c.spec.cruise_control_config.cruise_control_annotations.clone().unwrap_or_default();
    let data = cm.data.clone().unwrap_or_default();
    let hash = |k: &str| crate::hash::fnv1a64_hex(data.get(k).map(String::as_bytes).unwrap_or_default());
    let capacity = a.get(CAPACITY_ANNOTATION).is_none_or(|v| v == "static");
    a.insert("cruiseControlConfig.json".into(), hash(PROPERTIES_KEY));
    a.insert("cruiseControlClusterConfig.json".into(), hash(CLUSTER_CONFIGS_KEY));
    a.insert("cruiseControlLogConfig.json".into(), hash(LOG4J_KEY));
    if capacity {
        a.insert("cruiseControlCapacity.json".into(), hash(CAPACITY_KEY));
    }
    a
}

/// The Cruise Control configuration volume in its Pod.
pub const CONFIG_VOLUME: &str = "cruisecontrol-config";

/// The Deployment `<cluster>-cruisecontrol`.
pub fn deployment(c: &ValidatedCluster) -> Deployment {
    let cc = &c.spec.cruise_control_config;
    let cm = config_map(c);
    // Fixed volume names: the ConfigMaps' own names can exceed a volume name's 63 characters.
    let cm_volume = |volume: &str, name: String| Volume {
        name: volume.into(),
        config_map: Some(ConfigMapVolumeSource { name, default_mode: Some(0o644), ..Default::default() }),
        ..Default::default()
    };
    let mut volumes = cc.volumes.clone().unwrap_or_default();
    let mut mounts = cc.volume_mounts.clone().unwrap_or_default();
    if ssl(c) {
        let secret = tls::client_identity_source(c).map(|s| s.secret().to_string());
        volumes.push(Volume {
            name: KEYSTORE_VOLUME.into(),
            secret: Some(SecretVolumeSource { secret_name: secret, default_mode: Some(0o644), ..Default::default() }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: KEYSTORE_VOLUME.into(),
            mount_path: KEYSTORE_DIR.into(),
            ..Default::default()
        });
    }
    mounts.push(VolumeMount { name: CONFIG_VOLUME.into(), mount_path: CONFIG_DIR.into(), ..Default::default() });
    mounts.push(VolumeMount { name: jmx::JAR_VOLUME.into(), mount_path: jmx::JAR_DIR.into(), ..Default::default() });
    mounts.push(VolumeMount {
        name: jmx::CONFIG_VOLUME.into(),
        mount_path: jmx::CONFIG_DIR.into(),
        ..Default::default()
    });
    volumes.push(cm_volume(CONFIG_VOLUME, config_map_name(c)));
    volumes.push(cm_volume(jmx::CONFIG_VOLUME, jmx_config_map_name(c)));
    volumes.push(Volume {
        name: jmx::JAR_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    });
    let mut init_containers = cc.init_containers.clone().unwrap_or_default();
    init_containers.push(jmx::init_container(c));
    let port = |p: i32| ContainerPort { container_port: p, protocol: Some("TCP".into()), ..Default::default() };
    let container = Container {
        name: deployment_name(c),
        image: Some(given(&cc.image).unwrap_or(DEFAULT_IMAGE).to_string()),
        security_context: cc.security_context.clone(),
        env: Some(vec![EnvVar { name: "KAFKA_OPTS".into(), value: Some(jmx::kafka_opts()), ..Default::default() }]),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction { command: Some(vec!["bash".into(), "-c".into(), PRE_STOP.into()]) }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ports: Some(vec![port(PORT), port(jmx::METRICS_PORT)]),
        resources: Some(cc.resources.clone().unwrap_or_else(default_resources)),
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(PORT), host: None }),
            timeout_seconds: Some(1),
            initial_delay_seconds: Some(5),
            period_seconds: Some(10),
            failure_threshold: Some(3),
            success_threshold: Some(1),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    Deployment {
        metadata: meta(c, deployment_name(c), labels(c)),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector { match_labels: Some(labels(c)), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(c)),
                    annotations: Some(pod_annotations(c, &cm)),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    security_context: cc.pod_security_context.clone(),
                    service_account_name: Some(given(&cc.service_account_name).unwrap_or("default").to_string()),
                    image_pull_secrets: cc.image_pull_secrets.clone(),
                    tolerations: cc.tolerations.clone(),
                    node_selector: cc.node_selector.clone(),
                    affinity: cc.affinity.clone(),
                    termination_grace_period_seconds: Some(30),
                    init_containers: Some(init_containers),
                    containers: vec![container],
                    volumes: Some(volumes),
                    priority_class_name: given(&cc.priority_class_name).map(str::to_string),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Everything of Cruise Control the operator applies, when [`deployed`].
#[derive(Clone, Debug)]
pub struct CruiseControlObjects {
    /// `<cluster>-cc-jmx-exporter`.
    pub jmx_config_map: ConfigMap,
    /// `<cluster>-cruisecontrol-config`.
    pub config_map: ConfigMap,
    /// `<cluster>-cruisecontrol-svc`.
    pub service: Service,
    /// `<cluster>-cruisecontrol`.
    pub deployment: Deployment,
    /// `<cluster>-cruise-control-topic`, unless the reporter creates the topic.
    pub topic: Option<KafkaTopic>,
}

/// Cruise Control's objects, or `None` when the cluster does not deploy it.
pub fn objects(c: &ValidatedCluster) -> Option<CruiseControlObjects> {
    deployed(c).then(|| CruiseControlObjects {
        jmx_config_map: jmx_config_map(c),
        config_map: config_map(c),
        service: service(c),
        deployment: deployment(c),
        topic: topic(c),
    })
}

/// Whether broker `b` runs the metrics reporter: Cruise Control is [`configured`] and `b`
/// serves clients (KRaft controller-only nodes do not, as in Koperator).
pub fn reports(c: &ValidatedCluster, b: &BrokerView<'_>) -> bool {
    configured(c) && b.is_broker(c.spec.kraft)
}

/// The reporter's settings in broker `b`'s `server.properties`: `metric.reporters`, its
/// bootstrap servers, Kubernetes mode, and on SSL inter-broker listeners the broker's own
/// client settings of that listener (its keystore and truststore), prefixed
/// `cruise.control.metrics.reporter.`.
pub fn broker_properties(c: &ValidatedCluster, b: &BrokerView<'_>) -> Vec<(String, String)> {
    if !reports(c, b) {
        return Vec::new();
    }
    let mut out = vec![
        (METRIC_REPORTERS.to_string(), REPORTER_CLASS.to_string()),
        (REPORTER_BOOTSTRAP.to_string(), bootstrap_servers(c)),
        (REPORTER_K8S_MODE.to_string(), "true".to_string()),
    ];
    if let Some(l) = client_listener(c).filter(|l| l.listener_type.is_ssl()) {
        let protocol = if l.listener_type == SecurityProtocol::SaslSsl { "SASL_SSL" } else { "SSL" };
        out.push(("cruise.control.metrics.reporter.security.protocol".into(), protocol.into()));
        let prefix = format!("listener.name.{}.", l.name.to_lowercase().replace('-', "_"));
        let own = tls::listener_properties(l, &l.name.to_uppercase().replace('-', "_"));
        for (k, v) in own {
            let Some(key) = k.strip_prefix(&prefix) else { continue };
            if key != "ssl.client.auth" {
                out.push((format!("cruise.control.metrics.reporter.{key}"), v));
            }
        }
    }
    out
}

/// The init container copying the reporter jar into [`EXTENSIONS_VOLUME`].
pub fn reporter_init_container(c: &ValidatedCluster, b: &BrokerView<'_>) -> Container {
    let image = pick(b, |cfg| cfg.metrics_reporter_image.as_ref())
        .filter(|s| !s.is_empty())
        .cloned()
        .or_else(|| given(&c.spec.cluster_metrics_reporter_image).map(str::to_string))
        .or_else(|| given(&c.spec.cruise_control_config.image).map(str::to_string))
        .unwrap_or_else(|| DEFAULT_IMAGE.to_string());
    let q = |s: &str| Quantity(s.to_string());
    let small = || BTreeMap::from([("cpu".to_string(), q("100m")), ("memory".to_string(), q("100Mi"))]);
    Container {
        name: REPORTER_INIT_CONTAINER.into(),
        image: Some(image),
        command: Some(vec![
            "/bin/sh".into(),
            "-cex".into(),
            format!("cp -v {REPORTER_JAR_SOURCE} {EXTENSIONS_DIR}/cruise-control-metrics-reporter.jar"),
        ]),
        volume_mounts: Some(vec![extensions_mount()]),
        resources: Some(ResourceRequirements { limits: Some(small()), requests: Some(small()), ..Default::default() }),
        ..Default::default()
    }
}

/// The `extensions` emptyDir of a broker Pod.
pub fn extensions_volume() -> Volume {
    Volume { name: EXTENSIONS_VOLUME.into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() }
}

/// Its mount at [`EXTENSIONS_DIR`].
pub fn extensions_mount() -> VolumeMount {
    VolumeMount { name: EXTENSIONS_VOLUME.into(), mount_path: EXTENSIONS_DIR.into(), ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::KafkaCluster;
    use crate::api::kafkacluster::{
        BrokerState, CruiseControlTaskSpec, KafkaClusterStatus, MonitoringConfig, NetworkConfig, ProcessRole,
        SslSecrets, TopicConfig,
    };
    use crate::rules::kafkacluster::fixtures::{pvc_storage, valid_kraft_spec, valid_zk_spec};
    use crate::validated::must;
    use k8s_openapi::api::core::v1::{LocalObjectReference, Toleration};

    fn kc(cc: CruiseControlConfig) -> KafkaCluster {
        let mut k = KafkaCluster::new("kafka", valid_kraft_spec());
        k.metadata.namespace = Some("team-a".into());
        k.spec.cruise_control_config = cc;
        k
    }

    fn with_topic() -> CruiseControlConfig {
        CruiseControlConfig {
            topic_config: Some(TopicConfig { partitions: 6, replication_factor: 2 }),
            ..Default::default()
        }
    }

    fn props(text: &str) -> BTreeMap<String, String> {
        properties::parse(text).unwrap().into_iter().collect()
    }

    #[test]
    fn what_asks_for_cruise_control() {
        let task = CruiseControlConfig {
            cruise_control_task_spec: Some(CruiseControlTaskSpec { retry_duration_minutes: 5 }),
            ..Default::default()
        };
        let external =
            CruiseControlConfig { cruise_control_endpoint: Some("cc.example:8090".into()), ..Default::default() };
        let cases: [(&str, CruiseControlConfig, bool, bool); 5] = [
            ("the {} placeholder", CruiseControlConfig::default(), false, false),
            ("only the defaulted task spec", task, false, false),
            ("a topic config", with_topic(), true, true),
            ("a config", CruiseControlConfig { config: Some("a=b".into()), ..Default::default() }, true, true),
            ("an external Cruise Control: reporters, nothing deployed", external, true, false),
        ];
        for (what, cc, want_configured, want_deployed) in cases {
            let c = must(&kc(cc));
            assert_eq!((configured(&c), deployed(&c)), (want_configured, want_deployed), "{what}");
            assert_eq!(objects(&c).is_some(), want_deployed, "{what}");
        }
    }

    #[test]
    fn cruise_control_properties_merge_the_users_config_under_the_operators_keys() {
        let config =
            "capacity.config.file=config/capacity.json\nbootstrap.servers=elsewhere:9092\nwebserver.http.port=8090";
        let c = must(&kc(CruiseControlConfig { config: Some(config.into()), ..Default::default() }));
        let p = props(&cruise_control_properties(&c));
        assert_eq!(p["bootstrap.servers"], "kafka-all-broker.team-a.svc.cluster.local:29092");
        assert_eq!(p["capacity.config.file"], "config/capacity.json");
        assert_eq!(p["webserver.http.port"], "8090");
        assert_eq!(
            p["topic.config.provider.class"],
            "com.linkedin.kafka.cruisecontrol.config.KafkaAdminTopicConfigProvider"
        );
        assert_eq!(p["kafka.broker.failure.detection.enable"], "true");
        assert!(!p.contains_key("zookeeper.connect") && !p.contains_key("security.protocol"));
        let text = cruise_control_properties(&c);
        let keys: Vec<&str> = text.lines().map(|l| l.split('=').next().unwrap()).collect();
        assert!(keys.is_sorted(), "{keys:?}");

        // ZooKeeper mode, the headless Service, an admin listener of its own.
        let mut k = kc(with_topic());
        k.spec = valid_zk_spec();
        k.spec.cruise_control_config = with_topic();
        k.spec.zk_path = Some("kafka".into());
        k.spec.headless_service_enabled = true;
        let mut admin = k.spec.listeners_config.internal_listeners[0].clone();
        admin.common.name = "admin".into();
        admin.common.container_port = 29099;
        admin.common.used_for_inner_broker_communication = false;
        admin.common.used_for_kafka_admin_communication = Some(true);
        k.spec.listeners_config.internal_listeners.push(admin);
        let c = must(&k);
        let p = props(&cruise_control_properties(&c));
        assert_eq!(p["bootstrap.servers"], "kafka-headless.team-a.svc.cluster.local:29099");
        let zk = k.spec.zk_addresses.clone().unwrap().join(",");
        assert_eq!(p["zookeeper.connect"], format!("{zk}/kafka"));
        assert!(!p.contains_key("topic.config.provider.class"));
    }

    fn ssl_cluster(own_client: bool) -> ValidatedCluster {
        let mut k = kc(with_topic());
        k.spec.listeners_config.internal_listeners[0].common.listener_type = SecurityProtocol::Ssl;
        k.spec.listeners_config.ssl_secrets = Some(SslSecrets { tls_secret_name: "ca".into(), ..Default::default() });
        if own_client {
            k.spec.client_ssl_cert_secret = Some(LocalObjectReference { name: "my-client".into() });
        }
        must(&k)
    }

    #[test]
    fn ssl_clusters_give_cruise_control_the_client_certificate() {
        type Case<'a> = (&'a str, bool, &'a str, &'a [(&'a str, &'a str)]);
        let cases: [Case; 2] = [
            (
                "the operator's issued PEM certificate",
                false,
                "kafka-controller",
                &[
                    ("ssl.keystore.type", "PEM"),
                    ("ssl.keystore.key", "${dir:/var/run/secrets/java.io/keystores:tls.key}"),
                    ("ssl.keystore.certificate.chain", "${dir:/var/run/secrets/java.io/keystores:tls.crt}"),
                    ("ssl.truststore.type", "PEM"),
                    ("ssl.truststore.certificates", "${dir:/var/run/secrets/java.io/keystores:ca.crt}"),
                ],
            ),
            (
                "clientSSLCertSecret (JKS, password from its file)",
                true,
                "my-client",
                &[
                    ("ssl.keystore.type", "JKS"),
                    ("ssl.keystore.location", "/var/run/secrets/java.io/keystores/keystore.jks"),
                    ("ssl.keystore.password", "${dir:/var/run/secrets/java.io/keystores:password}"),
                    ("ssl.truststore.location", "/var/run/secrets/java.io/keystores/truststore.jks"),
                    ("ssl.truststore.password", "${dir:/var/run/secrets/java.io/keystores:password}"),
                ],
            ),
        ];
        for (what, own, secret, want) in cases {
            let c = ssl_cluster(own);
            let p = props(&cruise_control_properties(&c));
            assert_eq!(p["security.protocol"], "SSL", "{what}");
            assert_eq!(p["config.providers"], "dir", "{what}");
            assert_eq!(p["config.providers.dir.param.allowed.paths"], KEYSTORE_DIR, "{what}");
            for (k, v) in want {
                assert_eq!(p.get(*k).map(String::as_str), Some(*v), "{what}: {k}");
            }
            let d = deployment(&c);
            let pod = d.spec.unwrap().template.spec.unwrap();
            let ks = pod.volumes.unwrap().into_iter().find(|v| v.name == KEYSTORE_VOLUME).expect(what);
            assert_eq!(ks.secret.unwrap().secret_name.as_deref(), Some(secret), "{what}");
            let mounts = pod.containers[0].volume_mounts.clone().unwrap();
            assert!(mounts.iter().any(|m| m.name == KEYSTORE_VOLUME && m.mount_path == KEYSTORE_DIR), "{what}");
        }
        // Plaintext: no certificate is mounted.
        let c = must(&kc(with_topic()));
        let pod = deployment(&c).spec.unwrap().template.spec.unwrap();
        assert!(pod.volumes.unwrap().iter().all(|v| v.name != KEYSTORE_VOLUME));
    }

    fn capacities(json: &str) -> Vec<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        v["brokerCapacities"].as_array().cloned().unwrap_or_default()
    }

    #[test]
    fn capacity_json_as_koperator_generates_it() {
        let mut k = kc(with_topic());
        // Broker 1 has a second disk, a CPU limit and network throughput of its own.
        k.spec.brokers[1].broker_config = Some(BrokerConfig {
            storage_configs: Some(vec![pvc_storage("/data/", "500M")]),
            resources: Some(ResourceRequirements {
                limits: Some(BTreeMap::from([("cpu".to_string(), Quantity("2".into()))])),
                ..Default::default()
            }),
            network_config: Some(NetworkConfig {
                incoming_network_throughput: Some("200000".into()),
                outgoing_network_throughput: None,
            }),
            ..Default::default()
        });
        // Broker 7 is being removed: still in the status, gone from the spec.
        k.status = Some(KafkaClusterStatus {
            brokers_state: Some(BTreeMap::from([("7".to_string(), BrokerState::default())])),
            ..Default::default()
        });
        let c = must(&k);
        let json = capacity_json(&c);
        assert!(
            json.starts_with("{\n    \"brokerCapacities\": [\n        {\n            \"brokerId\": \"0\""),
            "{json}"
        );
        let caps = capacities(&json);
        let ids: Vec<&str> = caps.iter().map(|c| c["brokerId"].as_str().unwrap()).collect();
        assert_eq!(ids, ["0", "1", "2", "7"]);
        assert_eq!(caps[0]["capacity"]["DISK"], serde_json::json!({"/kafka-logs/kafka": "10737"}));
        assert_eq!(caps[0]["capacity"]["CPU"], "150", "the default limit, 1500m");
        assert_eq!(
            (caps[0]["capacity"]["NW_IN"].as_str(), caps[0]["capacity"]["NW_OUT"].as_str()),
            (Some("125000"), Some("125000"))
        );
        assert_eq!(
            caps[1]["capacity"]["DISK"],
            serde_json::json!({"/data/kafka": "500", "/kafka-logs/kafka": "10737"})
        );
        assert_eq!(caps[1]["capacity"]["CPU"], "200");
        assert_eq!(caps[1]["capacity"]["NW_IN"], "200000");
        assert_eq!(caps[1]["capacity"]["NW_OUT"], "125000");
        assert_eq!(caps[3]["capacity"]["DISK"], serde_json::json!({"/kafka-logs/kafka": "10737"}), "defaults");
        assert_eq!(caps[3]["doc"], DEFAULT_DOC);
        assert!(jbod(&must(&k)), "generated capacities are per disk");

        // The user's entries come first and are not generated again.
        let user = r#"{"brokerCapacities":[{"brokerId":"1","capacity":{"DISK":"1","CPU":"1","NW_IN":"1","NW_OUT":"1"},"doc":"mine"}]}"#;
        k.spec.cruise_control_config.capacity_config = Some(user.into());
        let caps = capacities(&capacity_json(&must(&k)));
        let ids: Vec<&str> = caps.iter().map(|c| c["brokerId"].as_str().unwrap()).collect();
        assert_eq!(ids, ["1", "0", "2", "7"]);
        assert_eq!(caps[0]["doc"], "mine");
        assert!(!jbod(&must(&k)), "broker 1's DISK is one number");

        // A default entry: the user's text as it is.
        let user = r#"{"brokerCapacities":[{"brokerId":"-1","capacity":{"DISK":"1"},"doc":"all"}]}"#;
        k.spec.cruise_control_config.capacity_config = Some(user.into());
        assert_eq!(capacity_json(&must(&k)), user);
        assert_eq!(capacity_config_error(user), None);
        assert!(capacity_config_error("{").is_some());
        assert!(capacity_config_error(r#"{"brokerCapacities": 1}"#).is_some());
    }

    #[test]
    fn the_metrics_topic_is_a_kafka_topic_unless_the_reporter_creates_it() {
        let mut k = kc(CruiseControlConfig { config: Some("a=b".into()), ..Default::default() });
        let t = topic(&must(&k)).unwrap();
        assert_eq!(t.metadata.name.as_deref(), Some("kafka-cruise-control-topic"));
        assert_eq!(t.metadata.namespace.as_deref(), Some("team-a"));
        let labels = t.metadata.labels.clone().unwrap();
        assert_eq!(
            (labels["app"].as_str(), labels["clusterName"].as_str(), labels["clusterNamespace"].as_str()),
            ("kafka", "kafka", "team-a")
        );
        assert_eq!((t.spec.name.as_str(), t.spec.partitions, t.spec.replication_factor), (TOPIC_NAME, 12, 3));
        assert_eq!(t.spec.cluster_ref, ClusterReference { name: "kafka".into(), namespace: Some("team-a".into()) });

        k.spec.cruise_control_config.topic_config = Some(TopicConfig { partitions: 6, replication_factor: 2 });
        k.spec.read_only_config = Some("cruise.control.metrics.topic=__Metrics".into());
        let t = topic(&must(&k)).unwrap();
        assert_eq!((t.spec.name.as_str(), t.spec.partitions, t.spec.replication_factor), ("__Metrics", 6, 2));

        k.spec.read_only_config = Some("cruise.control.metrics.topic.auto.create=true".into());
        assert!(topic(&must(&k)).is_none());
    }

    #[test]
    fn the_deployment_carries_the_pod_settings_of_cruise_control_config() {
        let cc = CruiseControlConfig {
            image: Some("registry.example/cc:1".into()),
            service_account_name: Some("cc".into()),
            node_selector: Some(BTreeMap::from([("disk".to_string(), "ssd".to_string())])),
            tolerations: Some(vec![Toleration { key: Some("dedicated".into()), ..Default::default() }]),
            cruise_control_annotations: Some(BTreeMap::from([("team".to_string(), "a".to_string())])),
            priority_class_name: Some("high".into()),
            init_containers: Some(vec![Container { name: "first".into(), ..Default::default() }]),
            volumes: Some(vec![Volume { name: "extra".into(), ..Default::default() }]),
            volume_mounts: Some(vec![VolumeMount {
                name: "extra".into(),
                mount_path: "/extra".into(),
                ..Default::default()
            }]),
            ..with_topic()
        };
        let mut k = kc(cc);
        k.spec.monitoring_config =
            Some(MonitoringConfig { cc_jmx_exporter_config: Some("rules: []\n".into()), ..Default::default() });
        let c = must(&k);
        let d = deployment(&c);
        assert_eq!(d.metadata.name.as_deref(), Some("kafka-cruisecontrol"));
        assert_eq!(d.metadata.labels.as_ref().unwrap(), &labels(&c));
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.selector.match_labels.as_ref().unwrap(), &labels(&c));
        let template = spec.template;
        let meta = template.metadata.unwrap();
        assert_eq!(meta.labels.unwrap()["app"], "cruisecontrol");
        let annotations = meta.annotations.unwrap();
        assert_eq!(annotations["team"], "a");
        for key in [
            "cruiseControlConfig.json",
            "cruiseControlClusterConfig.json",
            "cruiseControlLogConfig.json",
            "cruiseControlCapacity.json",
        ] {
            assert!(annotations.contains_key(key), "{key}");
        }
        let pod = template.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("cc"));
        assert_eq!(pod.node_selector.unwrap()["disk"], "ssd");
        assert_eq!(pod.tolerations.unwrap()[0].key.as_deref(), Some("dedicated"));
        assert_eq!(pod.priority_class_name.as_deref(), Some("high"));
        assert_eq!(pod.termination_grace_period_seconds, Some(30));
        let init: Vec<&str> = pod.init_containers.as_ref().unwrap().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(init, ["first", "jmx-exporter"]);
        let container = &pod.containers[0];
        assert_eq!(container.name, "kafka-cruisecontrol");
        assert_eq!(container.image.as_deref(), Some("registry.example/cc:1"));
        assert_eq!(container.resources.as_ref().unwrap(), &default_resources());
        assert_eq!(container.env.as_ref().unwrap()[0].value.as_deref(), Some(jmx::kafka_opts().as_str()));
        let ports: Vec<i32> = container.ports.as_ref().unwrap().iter().map(|p| p.container_port).collect();
        assert_eq!(ports, [8090, 9020]);
        let probe = container.readiness_probe.as_ref().unwrap();
        assert_eq!(probe.tcp_socket.as_ref().unwrap().port, IntOrString::Int(8090));
        let mounts: Vec<(&str, &str)> = container
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| (m.name.as_str(), m.mount_path.as_str()))
            .collect();
        assert_eq!(
            mounts,
            [
                ("extra", "/extra"),
                ("cruisecontrol-config", "/opt/cruise-control/config"),
                ("jmx-jar-data", "/opt/jmx-exporter/"),
                ("jmx-exporter-config", "/etc/jmx-exporter/"),
            ]
        );
        let volumes: Vec<&str> = pod.volumes.as_ref().unwrap().iter().map(|v| v.name.as_str()).collect();
        assert_eq!(volumes, ["extra", "cruisecontrol-config", "jmx-exporter-config", "jmx-jar-data"]);
        assert_eq!(jmx_config_map(&c).data.unwrap()["config.yaml"], "rules: []\n");
        assert_eq!(jmx_config_map(&c).metadata.labels.unwrap()["app"], "cruisecontrol-jmx");

        // Defaults; a dynamic capacity annotation leaves capacity.json out of the hashes.
        let mut k = kc(with_topic());
        k.spec.cruise_control_config.cruise_control_annotations =
            Some(BTreeMap::from([(CAPACITY_ANNOTATION.to_string(), "dynamic".to_string())]));
        let c = must(&k);
        let d = deployment(&c);
        let t = d.spec.unwrap().template;
        assert!(!t.metadata.unwrap().annotations.unwrap().contains_key("cruiseControlCapacity.json"));
        let pod = t.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("default"));
        assert_eq!(pod.containers[0].image.as_deref(), Some(DEFAULT_IMAGE));
        assert_eq!(jmx_config_map(&c).data.unwrap()["config.yaml"], DEFAULT_JMX_CONFIG);
        let cm = config_map(&c).data.unwrap();
        assert_eq!(cm[LOG4J_KEY], DEFAULT_LOG4J);
        assert_eq!(cm[CLUSTER_CONFIGS_KEY], "");
    }

    #[test]
    fn a_config_change_changes_the_pod_template() {
        let hash = |cc: CruiseControlConfig| {
            let d = deployment(&must(&kc(cc)));
            d.spec.unwrap().template.metadata.unwrap().annotations.unwrap()["cruiseControlConfig.json"].clone()
        };
        let a = hash(CruiseControlConfig { config: Some("a=1".into()), ..Default::default() });
        let b = hash(CruiseControlConfig { config: Some("a=2".into()), ..Default::default() });
        assert_ne!(a, b);
    }

    #[test]
    fn the_service_and_the_config_map() {
        let mut k = kc(with_topic());
        k.metadata.labels =
            Some(BTreeMap::from([("team".to_string(), "a".to_string()), ("app".to_string(), "x".to_string())]));
        let c = must(&k);
        let s = service(&c);
        assert_eq!(s.metadata.name.as_deref(), Some("kafka-cruisecontrol-svc"));
        let l = s.metadata.labels.clone().unwrap();
        assert_eq!((l["team"].as_str(), l["app"].as_str()), ("a", "cruisecontrol"));
        let spec = s.spec.unwrap();
        assert_eq!(spec.selector.unwrap(), labels(&c));
        let ports: Vec<(Option<&str>, i32)> =
            spec.ports.as_ref().unwrap().iter().map(|p| (p.name.as_deref(), p.port)).collect();
        assert_eq!(ports, [(Some("cc"), 8090), (Some("metrics"), 9020)]);
        let cm = config_map(&c);
        assert_eq!(cm.metadata.name.as_deref(), Some("kafka-cruisecontrol-config"));
        let keys: Vec<String> = cm.data.unwrap().into_keys().collect();
        assert_eq!(keys, [CAPACITY_KEY, CLUSTER_CONFIGS_KEY, PROPERTIES_KEY, LOG4J_KEY]);
    }

    #[test]
    fn brokers_run_the_metrics_reporter_when_cruise_control_is_configured() {
        use super::super::objects::broker_objects;
        use super::super::properties::server_properties;
        // Broker 0 is controller-only, 1 and 2 combined; broker 2 has its own reporter image.
        let mut k = kc(with_topic());
        k.spec.cluster_metrics_reporter_image = Some("reporter:1".into());
        k.spec.brokers[0].broker_config_group = None;
        k.spec.brokers[0].broker_config = Some(BrokerConfig {
            roles: Some(vec![ProcessRole::Controller]),
            storage_configs: Some(vec![pvc_storage("/kafka-logs", "10Gi")]),
            ..Default::default()
        });
        k.spec.brokers[2].broker_config =
            Some(BrokerConfig { metrics_reporter_image: Some("reporter:2".into()), ..Default::default() });
        k.spec.read_only_config = Some("metric.reporters=org.example.Mine".into());
        let c = must(&k);
        let p0 = props(&server_properties(&c, 0).unwrap());
        assert_eq!(
            p0.get(METRIC_REPORTERS).map(String::as_str),
            Some("org.example.Mine"),
            "a controller-only node keeps the user's"
        );
        assert!(!p0.contains_key(REPORTER_BOOTSTRAP));
        let p1 = props(&server_properties(&c, 1).unwrap());
        assert_eq!(p1[METRIC_REPORTERS], format!("{REPORTER_CLASS},org.example.Mine"));
        assert_eq!(p1[REPORTER_BOOTSTRAP], "kafka-all-broker.team-a.svc.cluster.local:29092");
        assert_eq!(p1[REPORTER_K8S_MODE], "true");
        assert!(!p1.contains_key("cruise.control.metrics.reporter.security.protocol"));

        let views = brokers(&c);
        for (b, image) in [(0, "reporter:1"), (2, "reporter:2")] {
            let pod = broker_objects(&c, &views[b], "id").pod.spec.unwrap();
            let init = pod.init_containers.unwrap();
            let names: Vec<&str> = init.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, [REPORTER_INIT_CONTAINER, "jmx-exporter"]);
            assert_eq!(init[0].image.as_deref(), Some(image));
            assert_eq!(
                init[0].command.as_ref().unwrap()[2],
                "cp -v /opt/cruise-control/cruise-control/build/dependant-libs/cruise-control-metrics-reporter.jar /opt/kafka/libs/extensions/cruise-control-metrics-reporter.jar"
            );
            assert_eq!(init[0].volume_mounts.as_ref().unwrap()[0].mount_path, EXTENSIONS_DIR);
            let kafka = &pod.containers[0];
            assert!(
                kafka
                    .volume_mounts
                    .as_ref()
                    .unwrap()
                    .iter()
                    .any(|m| m.name == EXTENSIONS_VOLUME && m.mount_path == EXTENSIONS_DIR)
            );
            assert!(pod.volumes.unwrap().iter().any(|v| v.name == EXTENSIONS_VOLUME && v.empty_dir.is_some()));
            let env = kafka.env.as_ref().unwrap();
            assert!(env.iter().any(|e| e.name == "CLASSPATH" && e.value.as_deref() == Some(CLASSPATH)), "{env:?}");
        }

        // The Cruise Control image when no reporter image is set; nothing without Cruise Control.
        let mut k = kc(CruiseControlConfig { image: Some("cc:9".into()), ..Default::default() });
        let c = must(&k);
        let init = broker_objects(&c, &brokers(&c)[0], "id").pod.spec.unwrap().init_containers.unwrap();
        assert_eq!(init[0].image.as_deref(), Some("cc:9"));
        k.spec.cruise_control_config = CruiseControlConfig::default();
        let c = must(&k);
        let pod = broker_objects(&c, &brokers(&c)[0], "id").pod.spec.unwrap();
        assert_eq!(pod.init_containers.unwrap().len(), 1);
        assert!(pod.containers[0].env.as_ref().unwrap().iter().all(|e| e.name != "CLASSPATH"));
        assert!(!server_properties(&c, 0).unwrap().contains(METRIC_REPORTERS));
    }

    #[test]
    fn the_reporter_reaches_ssl_listeners_with_the_brokers_own_keystore() {
        let c = ssl_cluster(false);
        let p = props(&super::super::properties::server_properties(&c, 1).unwrap());
        assert_eq!(p["cruise.control.metrics.reporter.security.protocol"], "SSL");
        assert_eq!(p["cruise.control.metrics.reporter.ssl.keystore.type"], "PEM");
        assert_eq!(
            p["cruise.control.metrics.reporter.ssl.keystore.location"],
            "/var/run/secrets/java.io/keystores/server/internal/keystore.pem"
        );
        assert_eq!(
            p["cruise.control.metrics.reporter.ssl.truststore.location"],
            "/var/run/secrets/java.io/keystores/server/internal/ca.crt"
        );
        assert!(!p.contains_key("cruise.control.metrics.reporter.ssl.client.auth"));
    }
}

//! `KafkaCluster` (`kafka.banzaicloud.io/v1beta1`), field for field compatible with Koperator.
//!
//! Field docs become `kubectl explain` text. Getters named `*_or_default` return Koperator's
//! defaults for omitted fields; `crate::defaults` pins the ones users benefit from seeing.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, LocalObjectReference, PersistentVolumeClaimSpec,
    PodSecurityContext, ResourceRequirements, SecurityContext, Toleration, TopologySpreadConstraint, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CertificateStatus, Conditions, IssuerReference};

/// Default Envoy admin port.
pub const DEFAULT_ENVOY_ADMIN_PORT: i32 = 8081;
/// Default Envoy health-check port.
pub const DEFAULT_ENVOY_HEALTH_CHECK_PORT: i32 = 8080;
/// Default any-cast port of external listeners.
pub const DEFAULT_ANY_CAST_PORT: i32 = 29092;
/// Default container port the ingress controller uses for external traffic.
pub const DEFAULT_INGRESS_CONTROLLER_TARGET_PORT: i32 = 29092;
/// Default ingress controller.
pub const DEFAULT_INGRESS_CONTROLLER: &str = "envoy";
/// Default Kubernetes cluster domain.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// Default broker termination grace period in seconds.
pub const DEFAULT_TERMINATION_GRACE_PERIOD: i64 = 120;
/// Default Cruise Control task retry duration in minutes.
pub const DEFAULT_CC_TASK_RETRY_MINUTES: i32 = 5;
/// Default ZooKeeper chroot path.
pub const DEFAULT_ZK_PATH: &str = "/";

/// Annotation of a KafkaCluster naming the other namespaces whose KafkaUsers and KafkaTopics
/// may refer to it (our addition): comma-separated namespace names, or `*` for every
/// namespace. Without it only objects in the cluster's own namespace may refer to it.
pub const ALLOWED_NAMESPACES_ANNOTATION: &str = "koperator.banzaicloud.io/allowed-namespaces";

impl KafkaCluster {
    /// Whether KafkaUsers and KafkaTopics in `namespace` may refer to this cluster: its own
    /// namespace always, another one only when [`ALLOWED_NAMESPACES_ANNOTATION`] lists it
    /// (or is `*`).
    pub fn allows_namespace(&self, namespace: &str) -> bool {
        self.allowed_namespaces().is_none_or(|allowed| allowed.contains(namespace))
    }

    /// The namespaces whose KafkaUsers and KafkaTopics may refer to this cluster: its own and
    /// those [`ALLOWED_NAMESPACES_ANNOTATION`] lists; `None` when it lists `*` (every one).
    pub fn allowed_namespaces(&self) -> Option<std::collections::BTreeSet<String>> {
        let listed = self.metadata.annotations.as_ref().and_then(|a| a.get(ALLOWED_NAMESPACES_ANNOTATION));
        let listed: Vec<&str> =
            listed.map(|v| v.split(',').map(str::trim).filter(|n| !n.is_empty()).collect()).unwrap_or_default();
        if listed.contains(&"*") {
            return None;
        }
        Some(listed.into_iter().map(String::from).chain(self.metadata.namespace.clone()).collect())
    }
}

/// Desired state of a Kafka cluster: brokers, listeners, storage and companions.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "kafka.banzaicloud.io",
    version = "v1beta1",
    kind = "KafkaCluster",
    namespaced,
    status = "KafkaClusterStatus",
    shortname = "kc",
    category = "kafka",
    doc = "KafkaCluster is the Schema for the kafkaclusters API",
    printcolumn = r#"{"jsonPath":".status.state","name":"Cluster state","type":"string"}"#,
    printcolumn = r#"{"jsonPath":".status.conditions[?(@.type==\"Ready\")].status","name":"Ready","type":"string"}"#,
    printcolumn = r#"{"jsonPath":".status.alertCount","name":"Cluster alert count","type":"integer","priority":1}"#,
    printcolumn = r#"{"jsonPath":".status.rollingUpgradeStatus.lastSuccess","name":"Last successful upgrade","type":"string"}"#,
    printcolumn = r#"{"jsonPath":".status.rollingUpgradeStatus.errorCount","name":"Upgrade error count","type":"string"}"#,
    printcolumn = r#"{"jsonPath":".metadata.creationTimestamp","name":"Age","type":"date"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterSpec {
    /// Run the cluster in KRaft mode (true) or ZooKeeper mode (false, the default for Koperator
    /// compatibility). KRaft needs `processRoles` on every broker and one internal listener with
    /// `usedForControllerCommunication`.
    #[serde(default, rename = "kRaft")]
    pub kraft: bool,
    /// Use one headless Service for the brokers instead of an all-broker Service plus one per broker.
    #[serde(default)]
    pub headless_service_enabled: bool,
    /// Create LoadBalancer Services exposing the internal listeners, for running the operator on a
    /// local machine against a kind cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_debug_enabled: Option<bool>,
    /// Internal and external listeners and their TLS secrets.
    pub listeners_config: ListenersConfig,
    /// Custom ports to expose in the Kafka container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_ports: Option<Vec<ContainerPort>>,
    /// ZooKeeper connection strings (`host:port`); required in ZooKeeper mode, ignored in KRaft mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zk_addresses: Option<Vec<String>>,
    /// ZooKeeper chroot path; defaults to `/`. Ignored in KRaft mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zk_path: Option<String>,
    /// Node labels used to derive `broker.rack`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack_awareness: Option<RackAwareness>,
    /// Kafka image used by every broker unless a broker config overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_image: Option<String>,
    /// Image that provides the Cruise Control metrics reporter jar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_metrics_reporter_image: Option<String>,
    /// Broker properties (`key=value` lines) that need a restart to change, for every broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::api::schema::MAX_CLUSTER_CONFIG_LENGTH))]
    pub read_only_config: Option<String>,
    /// Cluster-wide dynamic broker properties (`key=value` lines), applied without a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::api::schema::MAX_CLUSTER_CONFIG_LENGTH))]
    pub cluster_wide_config: Option<String>,
    /// Named broker configurations that brokers refer to with `brokerConfigGroup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_config_groups: Option<BTreeMap<String, BrokerConfig>>,
    /// The brokers of the cluster; each becomes its own Pod, ConfigMap and PVCs.
    #[schemars(length(max = crate::api::schema::MAX_BROKERS))]
    pub brokers: Vec<Broker>,
    /// PodDisruptionBudget for the broker Pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption_budget: Option<DisruptionBudget>,
    /// How rolling upgrades proceed.
    #[serde(default)]
    pub rolling_upgrade_config: RollingUpgradeConfig,
    /// Selector for broker pods that need to be recycled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tainted_brokers_selector: Option<LabelSelector>,
    /// Ingress controller used for external listeners: `envoy` (default), `contour`, or
    /// `gateway-api` (our extension: Gateway API TLSRoutes to a Gateway of the user's, see
    /// `gatewayIngressConfig`). (`istioingress` from banzaicloud Koperator is not supported and
    /// is rejected.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_controller: Option<String>,
    /// Place each broker on a different node unless a custom affinity overrides it.
    #[serde(default)]
    pub one_broker_per_node: bool,
    /// Remove ingress resources left over from a previous ingress setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_unused_ingress_resources: Option<bool>,
    /// Propagate the KafkaCluster's labels to the objects the operator creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagate_labels: Option<bool>,
    /// Cruise Control deployment and task settings.
    #[serde(default)]
    pub cruise_control_config: CruiseControlConfig,
    /// Envoy ingress settings used by external listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_config: Option<EnvoyConfig>,
    /// Contour ingress settings used by external listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contour_ingress_config: Option<ContourIngressConfig>,
    /// Gateway API settings used by external listeners with `ingressController: gateway-api`
    /// (our extension, not in Koperator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_ingress_config: Option<GatewayIngressConfig>,
    /// JMX exporter settings for Kafka and Cruise Control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring_config: Option<MonitoringConfig>,
    /// Alert-driven scaling limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_manager_config: Option<AlertManagerConfig>,
    /// Environment variables for broker Pods. A `+` prefix on the name prepends the value to the
    /// existing variable, a `+` suffix appends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envs: Option<Vec<EnvVar>>,
    /// Kubernetes cluster domain used in broker DNS names; defaults to `cluster.local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_cluster_domain: Option<String>,
    /// Secret with a client certificate (keystore.jks, truststore.jks, password) the operator and
    /// Cruise Control use to reach SSL listeners.
    #[serde(default, rename = "clientSSLCertSecret", skip_serializing_if = "Option::is_none")]
    pub client_ssl_cert_secret: Option<LocalObjectReference>,
    /// Not supported: Istio ingress (banzaicloud Koperator) is rejected at admission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::schema::preserve_unknown_object")]
    pub istio_ingress_config: Option<serde_json::Value>,
}

/// Observed state of a KafkaCluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterStatus {
    /// Per-broker state keyed by broker id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brokers_state: Option<BTreeMap<String, BrokerState>>,
    /// Whether the Cruise Control metrics topic is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cruise_control_topic_status: Option<String>,
    /// Cluster state: `ClusterReconciling`, `ClusterRollingUpgrading` or `ClusterRunning`.
    #[serde(default)]
    pub state: String,
    /// Rolling upgrade progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_upgrade_status: Option<RollingUpgradeStatus>,
    /// Alerts with a command that fire for this cluster, as the operator's alert receiver
    /// holds them.
    #[serde(default)]
    pub alert_count: i32,
    /// Addresses of the listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_statuses: Option<ListenerStatuses>,
    /// Base64 random UUID identifying the cluster in KRaft mode.
    #[serde(default, rename = "clusterID", skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Ready, Reconciling and Degraded conditions (addition to Koperator).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
    /// Generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Dynamic broker config keys the operator set through the Admin API (addition to
    /// Koperator): a key removed from the spec is deleted from Kafka only if listed here, so
    /// keys that Kafka or other tools set are never touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_config_keys: Option<DynamicConfigKeys>,
    /// Expiry and renewal of the cluster PKI's certificates (addition to Koperator), read from
    /// the certificates in their Secrets. Only for clusters with `listenersConfig.sslSecrets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<ClusterCertificates>,
}

/// The certificates of a cluster's PKI as they are in their Secrets; a Secret that is missing,
/// holds no readable certificate or (for brokers and the operator) is not the cluster's own is
/// left out.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterCertificates {
    /// The cluster CA (`sslSecrets.tlsSecretName`, key `caCert`). `notAfter` is the earliest
    /// end of validity among the certificates in `caCert` (a chain: intermediates, then the
    /// root); there is never a `renewAt`: the operator does not rotate a CA, not even one it
    /// created, so replace it before `notAfter` or every certificate it signed stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CertificateStatus>,
    /// Each broker's certificate (`<cluster>-<id>-server-certificate`), by broker id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub brokers: BTreeMap<String, CertificateStatus>,
    /// The operator's client certificate (`<cluster>-controller`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<CertificateStatus>,
}

/// Dynamic broker config keys set by the operator, per level.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DynamicConfigKeys {
    /// Keys of `spec.clusterWideConfig` set as cluster-wide defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_wide: Vec<String>,
    /// Keys of each broker's `brokerConfig.config`, by broker id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub brokers: BTreeMap<String, Vec<String>>,
}

/// Rolling upgrade status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpgradeStatus {
    /// Time of the last successful rolling upgrade.
    #[serde(default)]
    pub last_success: String,
    /// Errors counted during the current rolling upgrade.
    #[serde(default)]
    pub error_count: i32,
}

/// How a rolling upgrade proceeds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpgradeConfig {
    /// How many failures (brokers with offline or out-of-sync replicas) the cluster tolerates
    /// during a rolling upgrade before it stops. Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<i32>,
    /// How many brokers of the same rack may restart in parallel. Defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub concurrent_broker_restart_count_per_rack: Option<i32>,
}

/// PodDisruptionBudget settings for operator-managed broker Pods.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionBudget {
    /// Create a PodDisruptionBudget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<bool>,
    /// Budget: a number (`1`) or a percentage (`20%`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+$|^[0-9]{1,2}%$|^100%$"))]
    pub budget: Option<String>,
}

/// PodDisruptionBudget settings for Deployments (Envoy).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionBudgetWithStrategy {
    /// Create a PodDisruptionBudget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<bool>,
    /// Budget: a number (`1`) or a percentage (`20%`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+$|^[0-9]{1,2}%$|^100%$"))]
    pub budget: Option<String>,
    /// `minAvailable` or `maxUnavailable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<PdbStrategy>,
}

/// PDB strategy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PdbStrategy {
    /// Keep at least `budget` Pods available.
    #[serde(rename = "minAvailable")]
    MinAvailable,
    /// Allow at most `budget` Pods unavailable.
    #[serde(rename = "maxUnavailable")]
    MaxUnavailable,
}

/// One broker of the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Broker {
    /// Broker id: `node.id` in KRaft mode, `broker.id` in ZooKeeper mode (0..65534).
    #[schemars(range(min = 0, max = 65534))]
    pub id: i32,
    /// Name of an entry of `brokerConfigGroups` this broker inherits from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::api::schema::MAX_NAME_LENGTH))]
    pub broker_config_group: Option<String>,
    /// Broker-specific read-only properties (`key=value` lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::api::schema::MAX_BROKER_CONFIG_LENGTH))]
    pub read_only_config: Option<String>,
    /// Broker-specific settings; they override the group's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_config: Option<BrokerConfig>,
}

/// Broker settings, used per broker and in `brokerConfigGroups`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerConfig {
    /// KRaft roles of the node: `broker`, `controller` or both. Required in KRaft mode, ignored in
    /// ZooKeeper mode.
    #[serde(default, rename = "processRoles", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2))]
    pub roles: Option<Vec<ProcessRole>>,
    /// Kafka image of this broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Image providing the Cruise Control metrics reporter jar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_reporter_image: Option<String>,
    /// Dynamic per-broker properties (`key=value` lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::api::schema::MAX_BROKER_CONFIG_LENGTH))]
    pub config: Option<String>,
    /// Disks of the broker; each mount path becomes a Kafka log dir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::api::schema::MAX_STORAGE_CONFIGS))]
    pub storage_configs: Option<Vec<StorageConfig>>,
    /// Service account of the broker Pod; defaults to `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Resources of the Kafka container.
    #[serde(default, rename = "resourceRequirements", skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Secrets for pulling images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    /// Node selector of the broker Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Tolerations of the broker Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// `KAFKA_HEAP_OPTS`; defaults to `-Xmx2G -Xms2G`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka_heap_opts: Option<String>,
    /// `KAFKA_JVM_PERFORMANCE_OPTS`.
    #[serde(default, rename = "kafkaJvmPerfOpts", skip_serializing_if = "Option::is_none")]
    pub kafka_jvm_perf_opts: Option<String>,
    /// Override of the default log4j configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log4j_config: Option<String>,
    /// Extra annotations of the broker Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_annotations: Option<BTreeMap<String, String>>,
    /// Extra labels of the broker Pod; reserved labels (`app`, `brokerId`, `kafka_cr`) are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_labels: Option<BTreeMap<String, String>>,
    /// Network capacity used by Cruise Control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_config: Option<NetworkConfig>,
    /// External IP per NodePort external listener name, advertised by this broker.
    #[serde(default, rename = "nodePortExternalIP", skip_serializing_if = "Option::is_none")]
    pub node_port_external_ip: Option<BTreeMap<String, String>>,
    /// Node address type advertised for NodePort listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port_node_address_type: Option<NodeAddressType>,
    /// Affinity of the broker Pod; overrides `oneBrokerPerNode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Pod security context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<PodSecurityContext>,
    /// Security context of the Kafka container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// Names of `ingressConfig` entries this broker is exposed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_ingress_mapping: Option<Vec<String>>,
    /// Extra init containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_containers: Option<Vec<Container>>,
    /// Extra containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containers: Option<Vec<Container>>,
    /// Extra volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<Volume>>,
    /// Extra volume mounts of the Kafka container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mounts: Option<Vec<VolumeMount>>,
    /// Environment variables of the broker Pod (`+` prefix/suffix prepends/appends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envs: Option<Vec<EnvVar>>,
    /// Termination grace period of the broker Pod in seconds; defaults to 120.
    #[serde(default, rename = "terminationGracePeriodSeconds", skip_serializing_if = "Option::is_none")]
    pub termination_grace_period: Option<i64>,
    /// Priority class of the broker Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

/// KRaft process role.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProcessRole {
    /// Serves clients and holds partitions.
    Broker,
    /// Member of the KRaft controller quorum.
    Controller,
}

impl ProcessRole {
    /// The value Kafka uses in `process.roles`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessRole::Broker => "broker",
            ProcessRole::Controller => "controller",
        }
    }
}

/// Kubernetes node address types (`corev1.NodeAddressType`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum NodeAddressType {
    /// Node hostname.
    Hostname,
    /// External IP.
    #[serde(rename = "ExternalIP")]
    ExternalIp,
    /// Internal IP.
    #[serde(rename = "InternalIP")]
    InternalIp,
    /// Internal DNS name.
    #[serde(rename = "InternalDNS")]
    InternalDns,
    /// External DNS name.
    #[serde(rename = "ExternalDNS")]
    ExternalDns,
}

/// Network throughput in kB/s used by Cruise Control.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkConfig {
    /// Incoming throughput.
    #[serde(default, rename = "incomingNetworkThroughPut", skip_serializing_if = "Option::is_none")]
    pub incoming_network_throughput: Option<String>,
    /// Outgoing throughput.
    #[serde(default, rename = "outgoingNetworkThroughPut", skip_serializing_if = "Option::is_none")]
    pub outgoing_network_throughput: Option<String>,
}

/// Rack awareness settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RackAwareness {
    /// Node labels whose values make up `broker.rack`.
    pub labels: Vec<String>,
}

/// Cruise Control settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CruiseControlConfig {
    /// Task settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cruise_control_task_spec: Option<CruiseControlTaskSpec>,
    /// Handling of CruiseControlOperation objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cruise_control_operation_spec: Option<CruiseControlOperationSpecConfig>,
    /// Endpoint of an external Cruise Control; when set no Cruise Control is deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cruise_control_endpoint: Option<String>,
    /// Resources of the Cruise Control container.
    #[serde(default, rename = "resourceRequirements", skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Service account of the Cruise Control Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Secrets for pulling images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    /// Node selector of the Cruise Control Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Tolerations of the Cruise Control Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// `cruisecontrol.properties` content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::api::schema::MAX_CLUSTER_CONFIG_LENGTH))]
    pub config: Option<String>,
    /// `capacity.json` content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_config: Option<String>,
    /// `clusterConfigs.json` content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_config: Option<String>,
    /// log4j configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log4j_config: Option<String>,
    /// Cruise Control image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Cruise Control metrics topic settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_config: Option<TopicConfig>,
    /// Affinity of the Cruise Control Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Annotations of the Cruise Control Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cruise_control_annotations: Option<BTreeMap<String, String>>,
    /// Extra init containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_containers: Option<Vec<Container>>,
    /// Extra volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<Volume>>,
    /// Extra volume mounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mounts: Option<Vec<VolumeMount>>,
    /// Pod security context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<PodSecurityContext>,
    /// Container security context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// Priority class of the Cruise Control Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

/// How finished CruiseControlOperations are cleaned up.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CruiseControlOperationSpecConfig {
    /// Delete finished operations after this many seconds (0: at once; unset: keep).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
}

/// Cruise Control task settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct CruiseControlTaskSpec {
    /// Minutes the operator waits for a task; defaults to 5.
    #[serde(rename = "RetryDurationMinutes", default)]
    pub retry_duration_minutes: i32,
}

/// Cruise Control metrics topic settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicConfig {
    /// Number of partitions.
    pub partitions: i32,
    /// Replication factor (at least 2).
    #[schemars(range(min = 2))]
    pub replication_factor: i32,
}

/// Envoy ingress settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvoyConfig {
    /// Envoy image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Resources of the Envoy container.
    #[serde(default, rename = "resourceRequirements", skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Envoy replicas; defaults to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub replicas: Option<i32>,
    /// Service account of the Envoy Pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Secrets for pulling the Envoy image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
    /// Affinity of the Envoy Pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Topology spread constraints of the Envoy Pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    /// Node selector of the Envoy Pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Tolerations of the Envoy Pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Annotations of the Envoy Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Client IP ranges allowed through the cloud load balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_source_ranges: Option<Vec<String>>,
    /// Exact IP of the LoadBalancer Service.
    #[serde(default, rename = "loadBalancerIP", skip_serializing_if = "Option::is_none")]
    pub load_balancer_ip: Option<String>,
    /// Envoy admin port; defaults to 8081.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_port: Option<i32>,
    /// Envoy health-check port; defaults to 8080.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_port: Option<i32>,
    /// PodDisruptionBudget of the Envoy Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption_budget: Option<DisruptionBudgetWithStrategy>,
    /// Envoy command line arguments.
    #[serde(default, rename = "envoyCommandLineArgs", skip_serializing_if = "Option::is_none")]
    pub command_line_args: Option<EnvoyCommandLineArgs>,
    /// Priority class of the Envoy Pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Broker hostname template for TLS-enabled Envoy; `%id` is replaced by the broker id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_hostname_template: Option<String>,
    /// Accept HTTP/1.0 health checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_health_check_http10: Option<bool>,
    /// Pod security context of the Envoy Pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<PodSecurityContext>,
}

impl EnvoyConfig {
    /// Admin port, defaulting to 8081.
    pub fn admin_port_or_default(&self) -> i32 {
        self.admin_port.unwrap_or(DEFAULT_ENVOY_ADMIN_PORT)
    }
    /// Health-check port, defaulting to 8080.
    pub fn health_check_port_or_default(&self) -> i32 {
        self.health_check_port.unwrap_or(DEFAULT_ENVOY_HEALTH_CHECK_PORT)
    }
}

/// Envoy command line arguments.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvoyCommandLineArgs {
    /// Envoy `--concurrency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub concurrency: Option<i32>,
}

/// JMX exporter settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringConfig {
    /// JMX exporter image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jmx_image: Option<String>,
    /// Path of the javaagent jar in that image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_to_jar: Option<String>,
    /// Exporter config for Kafka.
    #[serde(default, rename = "kafkaJMXExporterConfig", skip_serializing_if = "Option::is_none")]
    pub kafka_jmx_exporter_config: Option<String>,
    /// Exporter config for Cruise Control.
    #[serde(default, rename = "cCJMXExporterConfig", skip_serializing_if = "Option::is_none")]
    pub cc_jmx_exporter_config: Option<String>,
}

/// One disk of a broker.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageConfig {
    /// Absolute mount path in the Kafka container; becomes a Kafka log dir.
    pub mount_path: String,
    /// PersistentVolumeClaim spec of the disk. Set exactly one of `pvcSpec` and `emptyDir`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pvc_spec: Option<PersistentVolumeClaimSpec>,
    /// emptyDir volume (data is lost when the Pod goes; for development only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDirVolumeSource>,
}

/// Listeners of the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenersConfig {
    /// Listeners exposed outside the Kubernetes cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::api::schema::MAX_LISTENERS))]
    pub external_listeners: Option<Vec<ExternalListenerConfig>>,
    /// Listeners inside the Kubernetes cluster.
    #[serde(default)]
    #[schemars(length(max = crate::api::schema::MAX_LISTENERS))]
    pub internal_listeners: Vec<InternalListenerConfig>,
    /// CA / certificate secrets the operator uses to issue broker certificates.
    #[serde(default, rename = "sslSecrets", skip_serializing_if = "Option::is_none")]
    pub ssl_secrets: Option<SslSecrets>,
    /// Annotations of the broker Services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_annotations: Option<BTreeMap<String, String>>,
}

impl ListenersConfig {
    /// External listeners, empty when none are set.
    pub fn external(&self) -> &[ExternalListenerConfig] {
        self.external_listeners.as_deref().unwrap_or_default()
    }
}

/// Secrets for operator-issued broker certificates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SslSecrets {
    /// Secret holding the CA certificate and key.
    #[serde(default)]
    pub tls_secret_name: String,
    /// Secret holding the JKS password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jks_password_name: Option<String>,
    /// Let the operator create the CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<bool>,
    /// cert-manager issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerReference>,
    /// PKI backend: `cert-manager`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pki_backend: Option<PkiBackend>,
}

/// PKI backend of the cluster's certificates.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PkiBackend {
    /// cert-manager issues the certificates.
    #[serde(rename = "cert-manager")]
    CertManager,
}

/// Alert-driven scaling limits.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertManagerConfig {
    /// Cluster size at or below which alert-driven downscaling stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_scale_limit: Option<i32>,
    /// Cluster size at or above which alert-driven upscaling stops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_scale_limit: Option<i32>,
}

/// Settings of the Services that expose an external listener.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressServiceSettings {
    /// Address advertised instead of the load balancer's IP (LoadBalancer) or suffix of
    /// `<cluster>-<id>-<listener>.<namespace>` (NodePort).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname_override: Option<String>,
    /// Annotations of the Services created for this listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_annotations: Option<BTreeMap<String, String>>,
    /// `Local` or `Cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<String>,
    /// `NodePort` or `LoadBalancer` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
}

/// Fields common to internal and external listeners.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonListenerSpec {
    /// Security protocol: `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    #[serde(rename = "type")]
    pub listener_type: SecurityProtocol,
    /// Secret with this listener's server certificate (keystore.jks, truststore.jks, password);
    /// when omitted the operator issues one from `sslSecrets`.
    #[serde(default, rename = "serverSSLCertSecret", skip_serializing_if = "Option::is_none")]
    pub server_ssl_cert_secret: Option<LocalObjectReference>,
    /// Client authentication on SSL listeners: `required` (default), `requested` or `none`.
    #[serde(default, rename = "sslClientAuth", skip_serializing_if = "Option::is_none")]
    pub ssl_client_auth: Option<SslClientAuth>,
    /// Listener name (lowercase letters, digits, `-`).
    #[schemars(regex(pattern = r"^[a-z0-9\-]+"))]
    pub name: String,
    /// Container port of the listener.
    #[schemars(range(min = 1, max = 65535))]
    pub container_port: i32,
    /// Brokers talk to each other on this listener (exactly one internal listener).
    #[serde(default)]
    pub used_for_inner_broker_communication: bool,
    /// The operator uses this listener to reach Kafka.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_for_kafka_admin_communication: Option<bool>,
}

/// Kafka security protocol of a listener.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    /// TLS.
    Ssl,
    /// No TLS, no SASL.
    #[default]
    Plaintext,
    /// SASL over TLS.
    SaslSsl,
    /// SASL without TLS.
    SaslPlaintext,
}

impl SecurityProtocol {
    /// Kafka's name, as used in `listener.security.protocol.map`.
    pub fn kafka_name(self) -> &'static str {
        match self {
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
        }
    }
    /// True for `ssl` and `sasl_ssl`.
    pub fn is_ssl(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
}

/// SSL client authentication mode.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SslClientAuth {
    /// Clients must present a certificate.
    Required,
    /// Clients may present a certificate.
    Requested,
    /// No client certificate is asked for.
    None,
}

/// A listener exposed outside the Kubernetes cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalListenerConfig {
    /// Common listener fields.
    #[serde(flatten)]
    pub common: CommonListenerSpec,
    /// Service settings.
    #[serde(flatten)]
    pub service: IngressServiceSettings,
    /// Added to each broker id to give the broker's external port (`0 < id + port <= 65535`).
    /// `-1` enables TLS on Envoy (hostname-based routing); `0` with NodePort lets Kubernetes
    /// choose the node ports.
    #[schemars(range(min = -1, max = 65535))]
    pub external_starting_port: i32,
    /// Port for clients that do not address a specific broker; defaults to 29092.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any_cast_port: Option<i32>,
    /// Container port the ingress controller uses for external traffic; defaults to 29092.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024, max = 65535))]
    pub ingress_controller_target_port: Option<i32>,
    /// How the listener is exposed: `LoadBalancer` (default), `NodePort` or `ClusterIP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_method: Option<AccessMethod>,
    /// Per-listener ingress controller configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<IngressConfigSet>,
    /// TLS secret of the listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
}

impl ExternalListenerConfig {
    /// Access method, defaulting to LoadBalancer.
    pub fn access_method_or_default(&self) -> AccessMethod {
        self.access_method.unwrap_or(AccessMethod::LoadBalancer)
    }
    /// Any-cast port, defaulting to 29092.
    pub fn any_cast_port_or_default(&self) -> i32 {
        self.any_cast_port.unwrap_or(DEFAULT_ANY_CAST_PORT)
    }
    /// Ingress controller target port, defaulting to 29092.
    pub fn ingress_controller_target_port_or_default(&self) -> i32 {
        self.ingress_controller_target_port.unwrap_or(DEFAULT_INGRESS_CONTROLLER_TARGET_PORT)
    }
    /// `externalStartingPort == -1`: TLS on Envoy with hostname-based routing.
    pub fn tls_enabled(&self) -> bool {
        self.external_starting_port == -1
    }
    /// The broker's external port (`externalStartingPort + id`, or the any-cast port with TLS).
    pub fn broker_port(&self, broker_id: i32) -> i32 {
        if self.tls_enabled() { self.any_cast_port_or_default() } else { self.external_starting_port + broker_id }
    }
}

/// How an external listener is exposed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AccessMethod {
    /// A load balancer Service (default).
    LoadBalancer,
    /// Node ports.
    NodePort,
    /// A ClusterIP Service behind Contour.
    #[serde(rename = "ClusterIP")]
    ClusterIp,
}

impl AccessMethod {
    /// The Kubernetes Service type name.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMethod::LoadBalancer => "LoadBalancer",
            AccessMethod::NodePort => "NodePort",
            AccessMethod::ClusterIp => "ClusterIP",
        }
    }
}

/// Ingress controller configurations of one external listener (Koperator's `Config`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressConfigSet {
    /// Name of the `ingressConfig` entry used by brokers without `brokerIngressMapping`.
    #[serde(default)]
    pub default_ingress_config: String,
    /// Named ingress configurations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_config: Option<BTreeMap<String, IngressConfig>>,
}

/// One named ingress configuration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressConfig {
    /// Service settings.
    #[serde(flatten)]
    pub service: IngressServiceSettings,
    /// Envoy settings overriding `spec.envoyConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_config: Option<EnvoyConfig>,
    /// Contour settings overriding `spec.contourIngressConfig`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contour_ingress_config: Option<ContourIngressConfig>,
    /// Gateway API settings overriding `spec.gatewayIngressConfig` field by field (our extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_ingress_config: Option<GatewayIngressConfig>,
}

/// Contour ingress settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContourIngressConfig {
    /// TLS secret of the Contour HTTPProxies: Contour terminates TLS with it. Empty: TLS
    /// passthrough, the brokers terminate TLS (their external listener is `ssl` or `sasl_ssl`).
    #[serde(default)]
    pub tls_secret_name: String,
    /// Broker FQDN template; `%id` is replaced by the broker id.
    #[serde(default, rename = "brokerFQDNTemplate")]
    pub broker_fqdn_template: String,
}

/// Gateway API ingress settings (our extension): the brokers are reached through TLSRoutes
/// attached to a Gateway the user runs, whose listener must be TLS `Passthrough` (the brokers
/// terminate TLS, so their external listener is `ssl` or `sasl_ssl`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayIngressConfig {
    /// Name of the Gateway the TLSRoutes attach to (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_name: Option<String>,
    /// Namespace of the Gateway; defaults to the KafkaCluster's. Its listener must allow routes
    /// from the KafkaCluster's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_namespace: Option<String>,
    /// The Gateway listener to attach to (`parentRefs[].sectionName`); all when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// Broker host name template (required); `%id` is replaced by the broker id.
    #[serde(default, rename = "brokerFQDNTemplate", skip_serializing_if = "Option::is_none")]
    pub broker_fqdn_template: Option<String>,
}

/// A listener inside the Kubernetes cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InternalListenerConfig {
    /// Common listener fields.
    #[serde(flatten)]
    pub common: CommonListenerSpec,
    /// KRaft controllers talk on this listener (exactly one internal listener in KRaft mode).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub used_for_controller_communication: bool,
    /// Per-broker ports: `internalStartingPort + id` (for clusters spanning Kubernetes clusters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_starting_port: Option<i32>,
    /// Use the hostname of this external listener for inter-broker traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_listener_for_hostname: Option<String>,
}

/// Addresses of the listeners.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatuses {
    /// Internal listener addresses by listener name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_listeners: Option<BTreeMap<String, Vec<ListenerStatus>>>,
    /// External listener addresses by listener name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_listeners: Option<BTreeMap<String, Vec<ListenerStatus>>>,
}

/// Address of a listener.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    /// Name (`any-broker` or `broker-<id>`).
    pub name: String,
    /// `host:port`.
    pub address: String,
}

/// State of one broker.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerState {
    /// `Configured` or `WaitingForRackAwareness`.
    #[serde(default)]
    pub rack_awareness_state: String,
    /// Cruise Control up/downscale and disk state.
    #[serde(default)]
    pub graceful_action_state: GracefulActionState,
    /// `ConfigInSync` or `ConfigOutOfSync`.
    #[serde(default)]
    pub configuration_state: String,
    /// `PerBrokerConfigInSync`, `PerBrokerConfigOutOfSync` or `PerBrokerConfigError`.
    #[serde(default)]
    pub per_broker_configuration_state: String,
    /// External listener config names this broker is exposed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_listener_config_names: Option<Vec<String>>,
    /// Kafka version read from the running broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Image the broker runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Compressed backup of the broker configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_backup: Option<String>,
}

/// Cruise Control state of one broker.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GracefulActionState {
    /// Up/downscale state (e.g. `GracefulUpscaleSucceeded`).
    #[serde(default)]
    pub cruise_control_state: String,
    /// The CruiseControlOperation carrying the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cruise_control_operation_reference: Option<LocalObjectReference>,
    /// Disk states keyed by mount path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_states: Option<BTreeMap<String, VolumeState>>,
}

/// Cruise Control state of one disk.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeState {
    /// Disk rebalance/removal state.
    #[serde(default)]
    pub cruise_control_volume_state: String,
    /// The CruiseControlOperation carrying the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cruise_control_operation_reference: Option<LocalObjectReference>,
}

impl KafkaClusterSpec {
    /// Ingress controller, defaulting to `envoy`.
    pub fn ingress_controller_or_default(&self) -> &str {
        self.ingress_controller.as_deref().filter(|s| !s.is_empty()).unwrap_or(DEFAULT_INGRESS_CONTROLLER)
    }
    /// Envoy admin port, defaulting to 8081.
    pub fn envoy_admin_port(&self) -> i32 {
        self.envoy_config.as_ref().map_or(DEFAULT_ENVOY_ADMIN_PORT, EnvoyConfig::admin_port_or_default)
    }
    /// Envoy health-check port, defaulting to 8080.
    pub fn envoy_health_check_port(&self) -> i32 {
        self.envoy_config.as_ref().map_or(DEFAULT_ENVOY_HEALTH_CHECK_PORT, EnvoyConfig::health_check_port_or_default)
    }
    /// The broker config group named by `broker`, if it names one that exists.
    pub fn group_of(&self, broker: &Broker) -> Option<&BrokerConfig> {
        let name = broker.broker_config_group.as_deref()?;
        self.broker_config_groups.as_ref()?.get(name)
    }
    /// All internal then external listeners' common fields, in spec order.
    pub fn all_listeners(&self) -> impl Iterator<Item = &CommonListenerSpec> {
        let internal = self.listeners_config.internal_listeners.iter().map(|l| &l.common);
        let external = self.listeners_config.external().iter().map(|l| &l.common);
        internal.chain(external)
    }
    /// Kubernetes cluster domain, defaulting to `cluster.local`.
    pub fn cluster_domain(&self) -> &str {
        self.kubernetes_cluster_domain.as_deref().filter(|s| !s.is_empty()).unwrap_or(DEFAULT_CLUSTER_DOMAIN)
    }
}

impl Broker {
    /// KRaft roles after merging the broker's own with its group's (Koperator appends slices;
    /// duplicates are dropped here).
    pub fn effective_roles(&self, spec: &KafkaClusterSpec) -> Vec<ProcessRole> {
        let own = self.broker_config.as_ref().and_then(|c| c.roles.as_deref());
        let group = spec.group_of(self).and_then(|c| c.roles.as_deref());
        let mut roles: Vec<ProcessRole> = Vec::with_capacity(2);
        for role in own.into_iter().flatten().chain(group.into_iter().flatten()) {
            if !roles.contains(role) {
                roles.push(*role);
            }
        }
        roles
    }
    /// Storage after merging: the broker's own configs first, then the group's, one per mount
    /// path (the first wins), as Koperator does.
    pub fn effective_storage<'a>(&'a self, spec: &'a KafkaClusterSpec) -> Vec<&'a StorageConfig> {
        let own = self.broker_config.as_ref().and_then(|c| c.storage_configs.as_deref());
        let group = spec.group_of(self).and_then(|c| c.storage_configs.as_deref());
        let mut out: Vec<&StorageConfig> = Vec::new();
        for sc in own.into_iter().flatten().chain(group.into_iter().flatten()) {
            if !out.iter().any(|o| o.mount_path == sc.mount_path) {
                out.push(sc);
            }
        }
        out
    }
    /// Ingress config names the broker is mapped to (own then group's).
    pub fn effective_ingress_mapping<'a>(&'a self, spec: &'a KafkaClusterSpec) -> Vec<&'a str> {
        let own = self.broker_config.as_ref().and_then(|c| c.broker_ingress_mapping.as_deref());
        let group = spec.group_of(self).and_then(|c| c.broker_ingress_mapping.as_deref());
        own.into_iter().flatten().chain(group.into_iter().flatten()).map(String::as_str).collect()
    }
}

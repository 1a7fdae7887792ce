//! `KafkaTopic` (`kafka.banzaicloud.io/v1alpha1`): a Kafka topic managed through a custom resource.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ClusterReference, Conditions};

/// Annotation that lets a KafkaTopic adopt a topic that already exists in Kafka.
pub const MANAGED_BY_ANNOTATION: &str = "managedBy";
/// Value of [`MANAGED_BY_ANNOTATION`] meaning this operator manages the topic.
pub const MANAGED_BY_KOPERATOR: &str = "koperator";

/// Desired state of a Kafka topic.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "kafka.banzaicloud.io",
    version = "v1alpha1",
    kind = "KafkaTopic",
    namespaced,
    status = "KafkaTopicStatus",
    shortname = "kt",
    category = "kafka",
    doc = "KafkaTopic is the Schema for the kafkatopics API",
    printcolumn = r#"{"jsonPath":".spec.name","name":"Topic","type":"string"}"#,
    printcolumn = r#"{"jsonPath":".spec.clusterRef.name","name":"Cluster","type":"string"}"#,
    printcolumn = r#"{"jsonPath":".spec.partitions","name":"Partitions","type":"integer"}"#,
    printcolumn = r#"{"jsonPath":".spec.replicationFactor","name":"Replication","type":"integer"}"#,
    printcolumn = r#"{"jsonPath":".status.state","name":"State","type":"string"}"#,
    printcolumn = r#"{"jsonPath":".status.conditions[?(@.type==\"Ready\")].status","name":"Ready","type":"string"}"#,
    printcolumn = r#"{"jsonPath":".metadata.creationTimestamp","name":"Age","type":"date"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaTopicSpec {
    /// Name of the topic in Kafka.
    #[schemars(length(max = crate::api::schema::MAX_TOPIC_NAME_LENGTH))]
    pub name: String,
    /// Number of partitions; positive, or -1 for the broker's default. Can grow, never shrink.
    #[schemars(range(min = -1))]
    pub partitions: i32,
    /// Replication factor; positive, or -1 for the broker's default. Cannot change later.
    #[schemars(range(min = -1))]
    pub replication_factor: i32,
    /// Topic configuration (e.g. `retention.ms: "604800000"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<BTreeMap<String, String>>,
    /// The KafkaCluster the topic lives in.
    pub cluster_ref: ClusterReference,
}

/// Observed state of a Kafka topic.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaTopicStatus {
    /// Who manages the topic; changes are propagated to Kafka only when it is `koperator`.
    #[serde(default)]
    pub managed_by: String,
    /// `created` once the topic exists.
    #[serde(default)]
    pub state: String,
    /// UID of the KafkaCluster whose topic this KafkaTopic created or adopted (our addition);
    /// the Kafka topic is changed and deleted only in that cluster, and only while no other
    /// KafkaTopic manages it.
    #[serde(default, rename = "clusterUID", skip_serializing_if = "Option::is_none")]
    pub cluster_uid: Option<String>,
    /// Ready, Reconciling and Degraded conditions (addition to Koperator).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
    /// Generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

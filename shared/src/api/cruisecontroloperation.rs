//! `CruiseControlOperation` (`kafka.banzaicloud.io/v1alpha1`): one Cruise Control task
//! (add/remove broker, rebalance, remove disks...) and its progress.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Conditions;

/// Label naming the KafkaCluster an operation belongs to.
pub const KAFKA_CR_LABEL: &str = "kafka_cr";
/// Label pausing an operation while set to `"true"`.
pub const PAUSE_LABEL: &str = "pause";

/// Desired handling of a Cruise Control operation; the task itself is in `status.currentTask`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "kafka.banzaicloud.io",
    version = "v1alpha1",
    kind = "CruiseControlOperation",
    namespaced,
    status = "CruiseControlOperationStatus",
    shortname = "cco",
    category = "kafka",
    doc = "CruiseControlOperation is the Schema for the cruiseControlOperation API.",
    printcolumn = r#"{"jsonPath":".status.currentTask.operation","name":"Operation","type":"string"}"#,
    printcolumn = r#"{"jsonPath":".status.currentTask.state","name":"State","type":"string"}"#,
    printcolumn = r#"{"jsonPath":".status.retryCount","name":"Retries","type":"integer"}"#,
    printcolumn = r#"{"jsonPath":".metadata.creationTimestamp","name":"Age","type":"date"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CruiseControlOperationSpec {
    /// `retry` (default): re-run a failed task every 30 s; `ignore`: treat it as completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_policy: Option<ErrorPolicy>,
    /// Delete the finished operation after this many seconds (0: at once; unset: keep).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
}

/// Handling of failed Cruise Control tasks.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ErrorPolicy {
    /// Treat a failed task as completed.
    Ignore,
    /// Re-run a failed task.
    #[default]
    Retry,
}

/// Observed state of a Cruise Control operation.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CruiseControlOperationStatus {
    /// The task being executed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_task: Option<CruiseControlTask>,
    /// Error policy in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_policy: Option<ErrorPolicy>,
    /// Retries so far.
    #[serde(default)]
    pub retry_count: i32,
    /// Earlier failed attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_tasks: Option<Vec<CruiseControlTask>>,
    /// Ready, Reconciling and Degraded conditions (addition to Koperator).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
}

/// One Cruise Control user task.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CruiseControlTask {
    /// Cruise Control user task id.
    #[serde(default, rename = "id", skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When the task started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<Time>,
    /// When the task finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Time>,
    /// The operation.
    pub operation: Operation,
    /// Parameters of the operation (Cruise Control REST parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BTreeMap<String, String>>,
    /// The HTTP request sent to Cruise Control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_request: Option<String>,
    /// Its HTTP status code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_response_code: Option<i32>,
    /// Summary of the execution proposal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<BTreeMap<String, String>>,
    /// `Active`, `InExecution`, `Completed` or `CompletedWithError`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Error of a failed task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// Cruise Control operation kinds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// `add_broker`: move replicas onto new brokers.
    AddBroker,
    /// `remove_broker`: drain brokers before removal.
    RemoveBroker,
    /// `remove_disks`: drain disks before removal.
    RemoveDisks,
    /// `rebalance`: rebalance the cluster (or disks).
    #[default]
    Rebalance,
    /// `stop_proposal_execution`.
    #[serde(rename = "stop_proposal_execution")]
    StopExecution,
    /// `status`.
    Status,
}

impl Operation {
    /// Cruise Control's REST name of the operation.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::AddBroker => "add_broker",
            Operation::RemoveBroker => "remove_broker",
            Operation::RemoveDisks => "remove_disks",
            Operation::Rebalance => "rebalance",
            Operation::StopExecution => "stop_proposal_execution",
            Operation::Status => "status",
        }
    }
}

//! Cruise Control's JSON answers (`json=true`), as its servlet writes them.
//!
//! Field names are Cruise Control's own (`servlet/response/*.java` of its source): a mix of
//! `PascalCase` (`MonitorState`, `UserTaskId`, `Broker`) and `camelCase` (`numMonitoredWindows`).
//! Only what the operator reads is typed; unknown fields are ignored and missing ones default,
//! so a newer Cruise Control that adds fields still decodes. States Cruise Control names with
//! an enum of its own stay strings with predicates, so a value added upstream is not a decode
//! error.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};

/// The id Cruise Control gives a request in its `User-Task-ID` response header (a UUID). Sent
/// back in the same header, it fetches the state of that request instead of starting another.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub String);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for TaskId {
    fn from(s: &str) -> Self {
        TaskId(s.to_owned())
    }
}

/// The error body Cruise Control sends with a 4xx/5xx (`ResponseUtils.ErrorResponse`).
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    #[serde(default)]
    pub error_message: String,
    #[serde(default)]
    pub stack_trace: String,
}

/// The body of a 202: the steps of an operation still under way (`ProgressResult`).
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
pub struct ProgressResult {
    #[serde(default)]
    pub progress: Vec<OperationProgress>,
}

/// One operation of a 202 answer and the steps it went through so far.
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
pub struct OperationProgress {
    #[serde(default)]
    pub operation: String,
    #[serde(default, rename = "operationProgress")]
    pub steps: Vec<OperationStep>,
}

/// A step of an operation under way.
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
pub struct OperationStep {
    #[serde(default)]
    pub step: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, rename = "time-in-ms")]
    pub time_in_ms: i64,
    #[serde(default, rename = "completionPercentage")]
    pub completion_percentage: f64,
}

impl fmt::Display for ProgressResult {
    /// The latest step of each operation, `operation: step (42.0%)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for op in &self.progress {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            match op.steps.last() {
                Some(s) => write!(f, "{}: {} ({:.1}%)", op.operation, s.step, s.completion_percentage)?,
                None => f.write_str(&op.operation)?,
            }
        }
        Ok(())
    }
}

// ---- state ----------------------------------------------------------------------------------

/// The parts of `state` to ask for (`substates=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Substate {
    Analyzer,
    AnomalyDetector,
    Executor,
    Monitor,
}

impl Substate {
    /// All four, what Koperator asks for.
    pub const ALL: [Substate; 4] =
        [Substate::Analyzer, Substate::AnomalyDetector, Substate::Executor, Substate::Monitor];

    /// The parameter value.
    pub fn as_param(self) -> &'static str {
        match self {
            Substate::Analyzer => "ANALYZER",
            Substate::AnomalyDetector => "ANOMALY_DETECTOR",
            Substate::Executor => "EXECUTOR",
            Substate::Monitor => "MONITOR",
        }
    }
}

/// `GET state` (`CruiseControlState`): each part is present when its substate was asked for.
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
pub struct CruiseControlState {
    #[serde(default, rename = "MonitorState")]
    pub monitor: Option<MonitorState>,
    #[serde(default, rename = "ExecutorState")]
    pub executor: Option<ExecutorState>,
    #[serde(default, rename = "AnalyzerState")]
    pub analyzer: Option<AnalyzerState>,
    #[serde(default, rename = "AnomalyDetectorState")]
    pub anomaly_detector: Option<AnomalyDetectorState>,
}

impl CruiseControlState {
    /// Koperator's readiness: the analyzer has a proposal ready with every goal ready, and the
    /// monitor is running.
    pub fn is_ready(&self) -> bool {
        self.monitor.as_ref().is_some_and(MonitorState::is_running)
            && self.analyzer.as_ref().is_some_and(|a| a.is_proposal_ready && a.goals_ready())
    }

    /// The executor is moving replicas or leaders: a new operation would be refused.
    pub fn in_execution(&self) -> bool {
        self.executor.as_ref().is_some_and(|e| !e.is_idle())
    }
}

/// The load monitor (`LoadMonitorState`).
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MonitorState {
    /// `NOT_STARTED`, `RUNNING`, `PAUSED`, `SAMPLING`, `BOOTSTRAPPING`, `TRAINING`, `LOADING`.
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub num_monitored_windows: f64,
    #[serde(default, rename = "monitoringCoveragePct")]
    pub monitoring_coverage_pct: f64,
    #[serde(default)]
    pub num_valid_partitions: f64,
    #[serde(default)]
    pub num_total_partitions: f64,
    #[serde(default)]
    pub error: Option<String>,
}

impl MonitorState {
    /// The monitor samples and serves load (Koperator's `MonitorReady`).
    pub fn is_running(&self) -> bool {
        self.state == "RUNNING"
    }
}

/// The executor (`ExecutorState`).
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorState {
    /// `NO_TASK_IN_PROGRESS`, `STARTING_EXECUTION`, `INTER_BROKER_REPLICA_MOVEMENT_TASK_IN_PROGRESS`...
    #[serde(default)]
    pub state: String,
    /// The user task the executor runs, when it runs one.
    #[serde(default, rename = "triggeredUserTaskId")]
    pub triggered_user_task_id: Option<String>,
    #[serde(default)]
    pub recently_removed_brokers: Vec<i32>,
    #[serde(default)]
    pub recently_demoted_brokers: Vec<i32>,
    #[serde(default)]
    pub num_total_partition_movements: i64,
    #[serde(default)]
    pub num_finished_partition_movements: i64,
    #[serde(default)]
    pub num_total_intra_broker_partition_movements: i64,
    #[serde(default)]
    pub num_finished_intra_broker_partition_movements: i64,
    #[serde(default)]
    pub error: Option<String>,
}

impl ExecutorState {
    /// No execution under way (Koperator's `ExecutorReady`).
    pub fn is_idle(&self) -> bool {
        self.state == "NO_TASK_IN_PROGRESS"
    }
}

/// The analyzer (`AnalyzerState`).
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalyzerState {
    #[serde(default)]
    pub is_proposal_ready: bool,
    #[serde(default)]
    pub ready_goals: Vec<String>,
    /// Only with `verbose=true`.
    #[serde(default)]
    pub goal_readiness: Vec<GoalReadiness>,
}

impl AnalyzerState {
    /// Every goal listed (with `verbose`) is ready; true when none is listed, as in Koperator.
    pub fn goals_ready(&self) -> bool {
        self.goal_readiness.iter().all(|g| g.status == "ready")
    }
}

/// Readiness of one goal: `status` is `ready` or `notReady`.
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
pub struct GoalReadiness {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: String,
}

/// The anomaly detector (`AnomalyDetectorState`); the operator reads little of it.
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnomalyDetectorState {
    #[serde(default)]
    pub self_healing_enabled: Vec<String>,
    #[serde(default)]
    pub self_healing_disabled: Vec<String>,
    #[serde(default)]
    pub ongoing_self_healing_anomaly: Option<String>,
    #[serde(default)]
    pub balancedness_score: f64,
}

// ---- kafka_cluster_state --------------------------------------------------------------------

/// `GET kafka_cluster_state` (`KafkaClusterState`): per-broker counts keyed by broker id (as
/// strings, as Cruise Control writes them).
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
pub struct KafkaClusterState {
    #[serde(default, rename = "KafkaBrokerState")]
    pub brokers: KafkaBrokerState,
}

/// `KafkaBrokerState` of `kafka_cluster_state` (`ClusterBrokerState`).
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
pub struct KafkaBrokerState {
    #[serde(default, rename = "ReplicaCountByBrokerId")]
    pub replica_count_by_broker_id: BTreeMap<String, i64>,
    #[serde(default, rename = "LeaderCountByBrokerId")]
    pub leader_count_by_broker_id: BTreeMap<String, i64>,
    #[serde(default, rename = "OutOfSyncCountByBrokerId")]
    pub out_of_sync_count_by_broker_id: BTreeMap<String, i64>,
    #[serde(default, rename = "OfflineReplicaCountByBrokerId")]
    pub offline_replica_count_by_broker_id: BTreeMap<String, i64>,
    #[serde(default, rename = "OnlineLogDirsByBrokerId")]
    pub online_log_dirs_by_broker_id: BTreeMap<String, Vec<String>>,
    #[serde(default, rename = "OfflineLogDirsByBrokerId")]
    pub offline_log_dirs_by_broker_id: BTreeMap<String, Vec<String>>,
    #[serde(default, rename = "IsController")]
    pub is_controller: BTreeMap<String, bool>,
}

impl KafkaBrokerState {
    /// Replicas on `broker`; 0 when Cruise Control does not list it.
    pub fn replicas(&self, broker: i32) -> i64 {
        self.replica_count_by_broker_id.get(&broker.to_string()).copied().unwrap_or(0)
    }
}

// ---- load -----------------------------------------------------------------------------------

/// `GET load` (`BrokerStats`): the load of every host and broker.
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
pub struct BrokerStats {
    #[serde(default)]
    pub hosts: Vec<HostLoad>,
    #[serde(default)]
    pub brokers: Vec<BrokerLoad>,
}

impl BrokerStats {
    /// Ids of the brokers in one of `states` (`ALIVE`, `NEW`, ...).
    pub fn brokers_in_state<'a>(&'a self, states: &'a [&str]) -> impl Iterator<Item = i32> + 'a {
        self.brokers.iter().filter(|b| states.contains(&b.broker_state.as_str())).map(|b| b.broker)
    }
}

/// One host's load.
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
pub struct HostLoad {
    #[serde(default, rename = "Host")]
    pub host: String,
    #[serde(default, rename = "Replicas")]
    pub replicas: i64,
    #[serde(default, rename = "Leaders")]
    pub leaders: i64,
    #[serde(default, rename = "DiskMB")]
    pub disk_mb: f64,
    #[serde(default, rename = "DiskPct")]
    pub disk_pct: f64,
    #[serde(default, rename = "CpuPct")]
    pub cpu_pct: f64,
}

/// One broker's load (`BrokerStats.SingleBrokerStats`).
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
pub struct BrokerLoad {
    #[serde(rename = "Broker")]
    pub broker: i32,
    /// `ALIVE`, `DEAD`, `NEW`, `DEMOTED`, `BAD_DISKS`.
    #[serde(default, rename = "BrokerState")]
    pub broker_state: String,
    #[serde(default, rename = "Host")]
    pub host: String,
    #[serde(default, rename = "Rack")]
    pub rack: String,
    #[serde(default, rename = "Replicas")]
    pub replicas: i64,
    #[serde(default, rename = "Leaders")]
    pub leaders: i64,
    #[serde(default, rename = "DiskMB")]
    pub disk_mb: f64,
    #[serde(default, rename = "DiskCapacityMB")]
    pub disk_capacity_mb: f64,
    #[serde(default, rename = "DiskPct")]
    pub disk_pct: f64,
    #[serde(default, rename = "CpuPct")]
    pub cpu_pct: f64,
    #[serde(default, rename = "LeaderNwInRate")]
    pub leader_nw_in_rate: f64,
    #[serde(default, rename = "FollowerNwInRate")]
    pub follower_nw_in_rate: f64,
    #[serde(default, rename = "NwOutRate")]
    pub nw_out_rate: f64,
    /// Per log directory, with JBOD (`DiskState`).
    #[serde(default, rename = "DiskState")]
    pub disk_state: BTreeMap<String, DiskLoad>,
}

/// The load of one log directory.
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
pub struct DiskLoad {
    #[serde(default, rename = "DiskMB")]
    pub disk_mb: DiskUsage,
    #[serde(default, rename = "DiskPct")]
    pub disk_pct: DiskUsage,
    #[serde(default, rename = "NumLeaderReplicas")]
    pub num_leader_replicas: i64,
    #[serde(default, rename = "NumReplicas")]
    pub num_replicas: i64,
}

/// A disk figure, or `"DEAD"` for a failed disk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DiskUsage {
    Dead,
    Used(f64),
}

impl Default for DiskUsage {
    fn default() -> Self {
        DiskUsage::Used(0.0)
    }
}

impl<'de> Deserialize<'de> for DiskUsage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(DiskUsage::Used(n)),
            Raw::Text(t) if t == "DEAD" => Ok(DiskUsage::Dead),
            Raw::Text(t) => t
                .parse()
                .map(DiskUsage::Used)
                .map_err(|_| serde::de::Error::custom(format!("disk usage {t:?} is neither a number nor DEAD"))),
        }
    }
}

// ---- partition_load -------------------------------------------------------------------------

/// `GET partition_load` (`PartitionLoadState`).
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
pub struct PartitionLoadState {
    #[serde(default)]
    pub records: Vec<PartitionLoad>,
}

/// The load of one partition.
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
pub struct PartitionLoad {
    #[serde(default)]
    pub topic: String,
    #[serde(default)]
    pub partition: i32,
    #[serde(default)]
    pub leader: i32,
    #[serde(default)]
    pub followers: Vec<i32>,
    #[serde(default)]
    pub cpu: f64,
    #[serde(default)]
    pub disk: f64,
    #[serde(default, rename = "networkInbound")]
    pub network_inbound: f64,
    #[serde(default, rename = "networkOutbound")]
    pub network_outbound: f64,
    #[serde(default)]
    pub msg_in: f64,
}

// ---- operations -----------------------------------------------------------------------------

/// The answer of `add_broker`, `remove_broker`, `rebalance`, `remove_disks` once done
/// (`OptimizationResult`): what was (or, with a dry run, would be) moved.
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OptimizationResult {
    #[serde(default)]
    pub summary: OptimizationSummary,
    #[serde(default)]
    pub goal_summary: Vec<GoalSummary>,
    /// Only with `verbose=true`.
    #[serde(default)]
    pub proposals: Vec<ExecutionProposal>,
    #[serde(default)]
    pub load_after_optimization: Option<BrokerStats>,
}

/// `summary` of an optimization.
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OptimizationSummary {
    #[serde(default)]
    pub num_replica_movements: i64,
    #[serde(default, rename = "dataToMoveMB")]
    pub data_to_move_mb: i64,
    #[serde(default)]
    pub num_intra_broker_replica_movements: i64,
    #[serde(default, rename = "intraBrokerDataToMoveMB")]
    pub intra_broker_data_to_move_mb: i64,
    #[serde(default)]
    pub num_leader_movements: i64,
    #[serde(default)]
    pub recent_windows: i64,
    #[serde(default)]
    pub monitored_partitions_percentage: f64,
    #[serde(default)]
    pub excluded_brokers_for_replica_move: Vec<i32>,
    #[serde(default)]
    pub excluded_brokers_for_leadership: Vec<i32>,
    #[serde(default)]
    pub provision_status: Option<String>,
}

/// One goal's outcome (`status`: `FIXED`, `NO-ACTION`, `VIOLATED`).
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
pub struct GoalSummary {
    #[serde(default)]
    pub goal: String,
    #[serde(default)]
    pub status: String,
}

/// One partition move of a proposal.
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionProposal {
    #[serde(default)]
    pub topic_partition: Option<TopicPartition>,
    #[serde(default)]
    pub old_leader: i32,
    #[serde(default)]
    pub old_replicas: Vec<i32>,
    #[serde(default)]
    pub new_replicas: Vec<i32>,
}

/// A partition as Cruise Control names it in proposals.
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
pub struct TopicPartition {
    #[serde(default)]
    pub topic: String,
    #[serde(default)]
    pub partition: i32,
}

/// `POST stop_proposal_execution` (`StopProposalResult`).
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
pub struct StopProposalResult {
    #[serde(default)]
    pub message: String,
}

// ---- user_tasks -----------------------------------------------------------------------------

/// `GET user_tasks` (`UserTaskState`).
#[derive(Deserialize, Debug, Clone, Default, PartialEq)]
pub struct UserTaskState {
    #[serde(default, rename = "userTasks")]
    pub user_tasks: Vec<UserTask>,
}

/// The state of one user task.
#[derive(Deserialize, Debug, Clone, PartialEq)]
pub struct UserTask {
    #[serde(rename = "UserTaskId")]
    pub user_task_id: String,
    #[serde(default, rename = "RequestURL")]
    pub request_url: String,
    #[serde(default, rename = "ClientIdentity")]
    pub client_identity: String,
    /// Start time, milliseconds since the epoch (Cruise Control writes it as a string).
    #[serde(default, rename = "StartMs", deserialize_with = "millis")]
    pub start_ms: i64,
    #[serde(rename = "Status")]
    pub status: UserTaskStatus,
    /// The task's own JSON answer, with `fetch_completed_task=true` once it completed; for a
    /// task that `CompletedWithError` it is that word, not JSON. (Cruise Control on Java 17
    /// needs `--add-opens=java.base/java.lang=ALL-UNNAMED` to answer `fetch_completed_task=true`
    /// at all once a task failed: without it the whole `user_tasks` call fails with a 500.)
    #[serde(default, rename = "originalResponse")]
    pub original_response: Option<String>,
}

impl UserTask {
    /// The task's own answer decoded as `T` (the answer of the call that started it), when
    /// Cruise Control sent it.
    pub fn original<T: serde::de::DeserializeOwned>(&self) -> Option<Result<T, serde_json::Error>> {
        self.original_response.as_deref().map(serde_json::from_str)
    }
}

/// Status of a user task, as Koperator's `CruiseControlUserTaskState` stores it.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserTaskStatus {
    Active,
    InExecution,
    Completed,
    CompletedWithError,
}

impl UserTaskStatus {
    /// Cruise Control's (and Koperator's status field's) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            UserTaskStatus::Active => "Active",
            UserTaskStatus::InExecution => "InExecution",
            UserTaskStatus::Completed => "Completed",
            UserTaskStatus::CompletedWithError => "CompletedWithError",
        }
    }

    /// The task will not change any more.
    pub fn is_finished(self) -> bool {
        matches!(self, UserTaskStatus::Completed | UserTaskStatus::CompletedWithError)
    }
}

fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(i64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Number(n) => Ok(n),
        Raw::Text(t) => t.parse().map_err(|_| serde::de::Error::custom(format!("StartMs {t:?} is not a number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_disk_and_numbers_decode() {
        let d: DiskLoad =
            serde_json::from_str(r#"{"DiskMB":"DEAD","DiskPct":12.5,"NumLeaderReplicas":0,"NumReplicas":3}"#).unwrap();
        assert_eq!(d.disk_mb, DiskUsage::Dead);
        assert_eq!(d.disk_pct, DiskUsage::Used(12.5));
        assert_eq!(d.num_replicas, 3);
        assert!(serde_json::from_str::<DiskUsage>(r#""broken""#).is_err());
    }

    #[test]
    fn user_task_start_ms_is_a_string_or_a_number() {
        let t: UserTask = serde_json::from_str(
            r#"{"UserTaskId":"a","StartMs":"1700000000000","Status":"CompletedWithError","originalResponse":"{}"}"#,
        )
        .unwrap();
        assert_eq!(t.start_ms, 1_700_000_000_000);
        assert_eq!(t.status, UserTaskStatus::CompletedWithError);
        assert!(t.status.is_finished());
        assert!(serde_json::from_str::<UserTask>(r#"{"UserTaskId":"a","StartMs":"x","Status":"Active"}"#).is_err());
        assert!(serde_json::from_str::<UserTask>(r#"{"UserTaskId":"a","StartMs":"1","Status":"Bogus"}"#).is_err());
    }

    #[test]
    fn readiness_follows_koperator() {
        let mut s: CruiseControlState = serde_json::from_str(
            r#"{"MonitorState":{"state":"RUNNING"},"ExecutorState":{"state":"NO_TASK_IN_PROGRESS"},
                "AnalyzerState":{"isProposalReady":true,"readyGoals":[],"goalReadiness":[{"name":"RackAwareGoal","status":"ready"}]}}"#,
        )
        .unwrap();
        assert!(s.is_ready());
        assert!(!s.in_execution());
        s.analyzer.as_mut().unwrap().goal_readiness[0].status = "notReady".into();
        assert!(!s.is_ready());
        s.analyzer.as_mut().unwrap().goal_readiness.clear();
        s.monitor.as_mut().unwrap().state = "SAMPLING".into();
        assert!(!s.is_ready());
        s.executor.as_mut().unwrap().state = "INTER_BROKER_REPLICA_MOVEMENT_TASK_IN_PROGRESS".into();
        assert!(s.in_execution());
    }
}

//! The pure part of the CruiseControlOperation controller: from an operation's status, the
//! other operations of its KafkaCluster, the clock and what Cruise Control answered, the next
//! action and the new status. Koperator's rules (`cruisecontroloperation_controller.go`,
//! `api/v1alpha1/cruisecontroloperation_types.go`, the TTL controller):
//!
//! - The operation and its parameters are `status.currentTask.operation`/`.parameters`, set by
//!   whoever creates the operation; the `kafka_cr` label names its KafkaCluster (same namespace).
//! - One task at a time per cluster: nothing starts while another operation of the cluster is
//!   `Active`/`InExecution` or Cruise Control's executor is busy. Queue order: a new
//!   `add_broker` first, then a failed operation whose 30 s retry back-off has passed (a failed
//!   `remove_disks` is paused instead when a new `rebalance` waits: the disk removal was rolled
//!   back), then new operations by priority (add_broker > remove_broker > remove_disks >
//!   rebalance) and age (oldest first).
//! - A started task is only ever polled by its user task id (never sent again); a task Cruise
//!   Control no longer knows (restarted, cache evicted) is `CompletedWithError`.
//! - `errorPolicy: retry` (default) re-runs a failed task 30 s after it finished, moving the
//!   failed one into `failedTasks` (at most 50) and counting `retryCount`; `ignore` treats it as
//!   completed. The `pause: "true"` label stops retries (a paused failed operation is done) and,
//!   as Koperator's documentation says, keeps a new one from starting.
//! - `ttlSecondsAfterFinished`: a finished operation (completed, or failed with `ignore`) is
//!   deleted that long after `currentTask.finished`.
//!
//! Beyond Koperator: `Ready`/`Reconciling`/`Degraded` conditions say why an operation waits
//! (Cruise Control unreachable or not ready, another operation running, back-off, paused,
//! invalid parameters); parameters that do not parse are never sent.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};

use koperator_shared::api::cruisecontroloperation::{
    CruiseControlOperation, CruiseControlOperationStatus, CruiseControlTask, ErrorPolicy, KAFKA_CR_LABEL, Operation,
    PAUSE_LABEL,
};

use super::params::{self, Request};
use crate::cruise_control::{OptimizationResult, UserTaskStatus};
use crate::status;

/// Koperator's `DefaultRetryBackOffDurationSec`: a failed task is re-run this long after it
/// finished (`errorPolicy: retry`).
pub const RETRY_BACKOFF: Duration = Duration::from_secs(30);
/// Koperator's `defaultRequeueIntervalInSeconds`: how often a running task is polled and a
/// waiting operation looks at its queue again.
pub const POLL: Duration = Duration::from_secs(10);
/// Koperator's `defaultFailedTasksHistoryMaxLength`.
pub const FAILED_TASKS_MAX: usize = 50;
/// Error of a task Cruise Control no longer reports (Koperator's wording).
pub const MISSING_RESULT: &str = "missing Cruise Control user task result";

/// `status.currentTask.state` values.
pub mod state {
    pub const ACTIVE: &str = "Active";
    pub const IN_EXECUTION: &str = "InExecution";
    pub const COMPLETED: &str = "Completed";
    pub const COMPLETED_WITH_ERROR: &str = "CompletedWithError";
}

/// Where an operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No `status.currentTask`: nothing to do until its creator sets it.
    Unset,
    /// A `status` operation: Koperator's own bookkeeping, never executed.
    Status,
    /// Never started.
    New,
    /// Sent to Cruise Control and not finished.
    Running,
    /// Failed, `errorPolicy: retry`, not paused: re-run after the back-off.
    Failed,
    /// Completed; failed with `errorPolicy: ignore`; or failed and paused.
    Done,
}

/// The error policy in force (Koperator's CRD default is `retry`).
pub fn error_policy(op: &CruiseControlOperation) -> ErrorPolicy {
    op.spec.error_policy.unwrap_or_default()
}

/// The `pause: "true"` label.
pub fn paused(op: &CruiseControlOperation) -> bool {
    op.labels().get(PAUSE_LABEL).is_some_and(|v| v == "true")
}

/// The KafkaCluster the operation belongs to (label `kafka_cr`).
pub fn cluster_name(op: &CruiseControlOperation) -> Option<&str> {
    op.labels().get(KAFKA_CR_LABEL).map(String::as_str).filter(|s| !s.is_empty())
}

fn task(st: &CruiseControlOperationStatus) -> Option<&CruiseControlTask> {
    st.current_task.as_ref()
}

fn task_state(st: &CruiseControlOperationStatus) -> &str {
    task(st).and_then(|t| t.state.as_deref()).unwrap_or("")
}

fn task_id(st: &CruiseControlOperationStatus) -> Option<&str> {
    task(st).and_then(|t| t.id.as_deref()).filter(|s| !s.is_empty())
}

/// The phase of an operation with status `st`.
pub fn phase_of(op: &CruiseControlOperation, st: &CruiseControlOperationStatus) -> Phase {
    let Some(t) = task(st) else { return Phase::Unset };
    if t.operation == Operation::Status {
        return Phase::Status;
    }
    match task_state(st) {
        state::COMPLETED => Phase::Done,
        state::COMPLETED_WITH_ERROR if error_policy(op) == ErrorPolicy::Ignore || paused(op) => Phase::Done,
        state::COMPLETED_WITH_ERROR => Phase::Failed,
        state::ACTIVE | state::IN_EXECUTION => Phase::Running,
        // Empty (never started), or a state this operator does not know: start it.
        _ => Phase::New,
    }
}

/// The phase of an operation as stored.
pub fn phase(op: &CruiseControlOperation) -> Phase {
    phase_of(op, &op.status.clone().unwrap_or_default())
}

/// What Cruise Control said about one user task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskReport {
    pub status: UserTaskStatus,
    /// The summary of its answer (`originalResponse` of a completed task), when known.
    pub summary: Option<BTreeMap<String, String>>,
}

/// Cruise Control's state, as far as starting a task goes.
#[derive(Debug, Clone, PartialEq)]
pub enum CcState {
    /// Not asked this pass (nothing waits to start).
    NotAsked,
    /// No answer: why.
    Unreachable(String),
    /// Answered; `not_ready` says why a task cannot start yet (monitor or analyzer not ready).
    Answered { not_ready: Option<String>, executing: bool },
}

/// The user tasks Cruise Control reported, by id.
#[derive(Debug, Clone, PartialEq)]
pub enum Tasks {
    /// No running task to ask about.
    NotAsked,
    /// No answer: why.
    Unreachable(String),
    Answered(BTreeMap<String, TaskReport>),
}

/// What to ask Cruise Control before deciding about `op` among `all` (its cluster's operations,
/// `op` included): the state when `op` may start, the user tasks of every running operation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Wants {
    pub state: bool,
    pub task_ids: Vec<String>,
}

/// What [`decide`] needs from Cruise Control for `op`.
pub fn wants(op: &CruiseControlOperation, all: &[CruiseControlOperation]) -> Wants {
    match phase(op) {
        Phase::Unset | Phase::Status | Phase::Done => Wants::default(),
        Phase::Running | Phase::New | Phase::Failed => {
            let mut ids: Vec<String> = all
                .iter()
                .chain(std::iter::once(op))
                .filter(|o| phase(o) == Phase::Running)
                .filter_map(|o| o.status.as_ref().and_then(|s| task_id(s)).map(str::to_string))
                .collect();
            ids.sort();
            ids.dedup();
            Wants { state: phase(op) != Phase::Running, task_ids: ids }
        }
    }
}

/// Everything [`decide`] looks at.
pub struct Input<'a> {
    pub op: &'a CruiseControlOperation,
    /// The operations of the same KafkaCluster (any order; `op` may be among them).
    pub all: &'a [CruiseControlOperation],
    pub now: Timestamp,
    pub cc_state: CcState,
    pub tasks: Tasks,
}

/// The next step for the operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Write the status (when it changed) and come back after the requeue.
    Wait,
    /// Send the request, then [`record_execution`]. `pause_first`: a failed `remove_disks`
    /// to label `pause: "true"` before (Koperator's disk-removal rollback).
    Execute { request: Request, pause_first: Option<String> },
    /// The TTL after it finished has passed: delete the operation.
    Delete,
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub next: Next,
    /// The status to write (compared with the stored one by the caller).
    pub status: CruiseControlOperationStatus,
    /// When to look again; `None`: only on a change of the object.
    pub requeue: Option<Duration>,
}

fn millis(t: &Time) -> i64 {
    t.0.as_millisecond()
}

fn time_at(ms: i64) -> Time {
    Time(Timestamp::from_millisecond(ms).unwrap_or_else(|_| Timestamp::now()))
}

/// Folds Cruise Control's report about a running task into `st` (pure; `now` stamps the end).
pub fn refresh(st: &mut CruiseControlOperationStatus, tasks: &Tasks, now: Timestamp) {
    let Some(t) = st.current_task.as_mut() else { return };
    if !matches!(t.state.as_deref(), Some(state::ACTIVE | state::IN_EXECUTION)) {
        return;
    }
    let Some(id) = t.id.clone().filter(|i| !i.is_empty()) else {
        t.state = Some(state::COMPLETED_WITH_ERROR.into());
        t.error_message = Some("the task has no Cruise Control user task id to follow".into());
        t.finished.get_or_insert(Time(now));
        return;
    };
    let Tasks::Answered(reports) = tasks else { return };
    match reports.get(&id) {
        Some(r) => {
            t.state = Some(r.status.as_str().into());
            if r.status.is_finished() {
                t.finished.get_or_insert(Time(now));
            }
            if r.status == UserTaskStatus::CompletedWithError && t.error_message.is_none() {
                // `user_tasks` carries no cause; Cruise Control's log does.
                t.error_message =
                    Some(format!("Cruise Control reports user task {id} CompletedWithError (its log has the cause)"));
            }
            if t.summary.is_none() {
                t.summary = r.summary.clone();
            }
        }
        None => {
            t.state = Some(state::COMPLETED_WITH_ERROR.into());
            t.error_message = Some(MISSING_RESULT.into());
            t.finished.get_or_insert(Time(now));
        }
    }
}

/// Koperator's `executionPriorityMap`.
fn priority(op: Operation) -> u8 {
    match op {
        Operation::AddBroker => 3,
        Operation::RemoveBroker => 2,
        Operation::RemoveDisks => 1,
        _ => 0,
    }
}

fn operation(st: &CruiseControlOperationStatus) -> Option<Operation> {
    task(st).map(|t| t.operation)
}

/// An operation of the cluster with its refreshed status.
struct Queued<'a> {
    op: &'a CruiseControlOperation,
    st: CruiseControlOperationStatus,
    phase: Phase,
}

impl Queued<'_> {
    fn name(&self) -> String {
        self.op.name_any()
    }

    fn operation(&self) -> Operation {
        operation(&self.st).unwrap_or_default()
    }

    /// Priority first, then the oldest, then by name.
    fn key(&self) -> (std::cmp::Reverse<u8>, i64, String) {
        let created = self.op.creation_timestamp().map(|t| t.0.as_second()).unwrap_or(i64::MAX);
        (std::cmp::Reverse(priority(self.operation())), created, self.name())
    }

    fn retry_at(&self) -> Option<i64> {
        task(&self.st).and_then(|t| t.finished.as_ref()).map(|f| millis(f) + RETRY_BACKOFF.as_millis() as i64)
    }

    /// Parameters that parse (an operation that cannot be sent never takes a turn).
    fn valid(&self) -> bool {
        task(&self.st).is_some_and(|t| params::parse(t.operation, &t.parameters.clone().unwrap_or_default()).is_ok())
    }
}

/// The operation to start now: `(name, Some(remove_disks to pause))`; `Err(name)` of the
/// running one when one runs; `Ok(None)` when none is due (a retry waits for its back-off).
fn select(queue: &[Queued<'_>], now_ms: i64) -> Result<Option<(String, Option<String>)>, String> {
    if let Some(r) = queue.iter().find(|q| q.phase == Phase::Running) {
        return Err(r.name());
    }
    let mut new: Vec<&Queued> = queue
        .iter()
        .filter(|q| q.phase == Phase::New && !paused(q.op) && q.op.meta().deletion_timestamp.is_none() && q.valid())
        .collect();
    new.sort_by_key(|q| q.key());
    let mut failed: Vec<&Queued> = queue
        .iter()
        .filter(|q| q.phase == Phase::Failed && q.op.meta().deletion_timestamp.is_none() && q.valid())
        .collect();
    failed.sort_by_key(|q| q.key());
    if let Some(first) = new.first().filter(|q| q.operation() == Operation::AddBroker) {
        return Ok(Some((first.name(), None)));
    }
    if let Some(f) = failed.first() {
        let rebalance = new.iter().find(|q| q.operation() == Operation::Rebalance);
        if let Some(r) = rebalance.filter(|_| f.operation() == Operation::RemoveDisks) {
            return Ok(Some((r.name(), Some(f.name()))));
        }
        if f.retry_at().is_some_and(|at| at < now_ms) {
            return Ok(Some((f.name(), None)));
        }
    }
    Ok(new.first().map(|q| (q.name(), None)))
}

fn set(
    st: &mut CruiseControlOperationStatus,
    op: &CruiseControlOperation,
    ready: bool,
    reconciling: bool,
    degraded: Option<(&str, &str)>,
    reason: &str,
    message: &str,
) {
    status::set_all(&mut st.conditions, ready, reconciling, degraded, reason, message, op.meta().generation);
}

fn waiting(
    mut st: CruiseControlOperationStatus,
    op: &CruiseControlOperation,
    reason: &str,
    message: &str,
    degraded: bool,
    requeue: Duration,
) -> Decision {
    let d = degraded.then_some((reason, message));
    set(&mut st, op, false, true, d, reason, message);
    Decision { next: Next::Wait, status: st, requeue: Some(requeue) }
}

/// The next step for `input.op` (see the module documentation).
pub fn decide(input: &Input<'_>) -> Decision {
    let op = input.op;
    let now_ms = input.now.as_millisecond();
    let mut st = op.status.clone().unwrap_or_default();
    st.error_policy = Some(error_policy(op));
    refresh(&mut st, &input.tasks, input.now);
    let own = op.name_any();
    let ph = phase_of(op, &st);
    let describe = |st: &CruiseControlOperationStatus| {
        let t = task(st);
        format!(
            "{} (user task {})",
            t.map(|t| t.operation.as_str()).unwrap_or(""),
            t.and_then(|t| t.id.as_deref()).unwrap_or("-")
        )
    };
    match ph {
        Phase::Status => Decision { next: Next::Wait, status: op.status.clone().unwrap_or_default(), requeue: None },
        Phase::Unset => {
            let msg = "status.currentTask is not set: set status.currentTask.operation (add_broker, remove_broker, remove_disks, rebalance or stop_proposal_execution) and its parameters through the status subresource";
            set(&mut st, op, false, false, Some(("NoOperation", msg)), "NoOperation", msg);
            Decision { next: Next::Wait, status: st, requeue: None }
        }
        Phase::Done => {
            let t = task(&st).cloned().unwrap_or_default();
            let failed = t.state.as_deref() == Some(state::COMPLETED_WITH_ERROR);
            let err = t.error_message.clone().unwrap_or_default();
            if failed && error_policy(op) != ErrorPolicy::Ignore {
                let msg = format!("{} failed ({err}) and is paused: remove the pause label to retry it", describe(&st));
                set(&mut st, op, false, false, Some(("Paused", &msg)), "Paused", &msg);
                return Decision { next: Next::Wait, status: st, requeue: None };
            }
            let (reason, msg) = match failed {
                true => (
                    "CompletedWithError",
                    format!("{} failed ({err}); errorPolicy ignore: treated as completed", describe(&st)),
                ),
                false => ("Completed", format!("{} completed", describe(&st))),
            };
            set(&mut st, op, true, false, None, reason, &msg);
            let ttl = op.spec.ttl_seconds_after_finished.filter(|t| *t >= 0);
            let finished = t.finished.as_ref().map(millis);
            match (ttl, finished) {
                (Some(ttl), Some(finished)) => {
                    let at = finished + i64::from(ttl) * 1000;
                    match at < now_ms {
                        true => Decision { next: Next::Delete, status: st, requeue: None },
                        // +1 s as Koperator: the requeue lands after the deadline.
                        false => Decision {
                            next: Next::Wait,
                            status: st,
                            requeue: Some(Duration::from_millis((at - now_ms) as u64 + 1000)),
                        },
                    }
                }
                _ => Decision { next: Next::Wait, status: st, requeue: None },
            }
        }
        Phase::Running => match &input.tasks {
            Tasks::Unreachable(why) => {
                let msg = format!("cannot read the state of {} from Cruise Control: {why}", describe(&st));
                waiting(st, op, "CruiseControlUnreachable", &msg, true, POLL)
            }
            _ => {
                let msg = format!("{} is {}", describe(&st), task_state(&st));
                let reason = if task_state(&st) == state::ACTIVE { "Active" } else { "InExecution" };
                waiting(st, op, reason, &msg, false, POLL)
            }
        },
        Phase::New | Phase::Failed => {
            let t = task(&st).cloned().unwrap_or_default();
            let parsed = match params::parse(t.operation, &t.parameters.clone().unwrap_or_default()) {
                Ok(p) => p,
                Err(why) => {
                    let msg =
                        format!("invalid status.currentTask.parameters: {why}; nothing was sent to Cruise Control");
                    set(&mut st, op, false, false, Some(("InvalidParameters", &msg)), "InvalidParameters", &msg);
                    return Decision { next: Next::Wait, status: st, requeue: None };
                }
            };
            if op.meta().deletion_timestamp.is_some() {
                return waiting(st, op, "Deleting", "being deleted: not started", false, POLL);
            }
            if ph == Phase::New && paused(op) {
                let msg = format!("labelled {PAUSE_LABEL}: \"true\": not started until the label is removed");
                set(&mut st, op, false, false, None, "Paused", &msg);
                return Decision { next: Next::Wait, status: st, requeue: None };
            }
            let queue: Vec<Queued> = input
                .all
                .iter()
                .filter(|o| o.name_any() != own)
                .map(|o| {
                    let mut s = o.status.clone().unwrap_or_default();
                    refresh(&mut s, &input.tasks, input.now);
                    Queued { op: o, phase: phase_of(o, &s), st: s }
                })
                .chain(std::iter::once(Queued { op, st: st.clone(), phase: ph }))
                .collect();
            match &input.cc_state {
                CcState::Unreachable(why) => {
                    let msg = format!("waiting for Cruise Control: {why}");
                    return waiting(st, op, "CruiseControlUnreachable", &msg, true, POLL);
                }
                CcState::Answered { not_ready: Some(why), .. } => {
                    let msg = format!("waiting for Cruise Control to be ready: {why}");
                    return waiting(st, op, "CruiseControlNotReady", &msg, false, POLL);
                }
                _ => {}
            }
            let selected = match select(&queue, now_ms) {
                Err(running) => {
                    let msg =
                        format!("waiting for CruiseControlOperation {running} of the same KafkaCluster to finish");
                    return waiting(st, op, "Queued", &msg, false, POLL);
                }
                Ok(s) => s,
            };
            match selected {
                Some((name, pause_first)) if name == own => {
                    let executing = matches!(input.cc_state, CcState::Answered { executing: true, .. });
                    if executing && t.operation != Operation::StopExecution {
                        let msg = "Cruise Control is executing a task it was given elsewhere; waiting for it to finish";
                        return waiting(st, op, "CruiseControlBusy", msg, false, POLL);
                    }
                    if !parsed.unused.is_empty() {
                        tracing::info!(operation = %own, unused = ?parsed.unused, "parameters not used by this operation");
                    }
                    Decision {
                        next: Next::Execute { request: parsed.request, pause_first },
                        status: st,
                        requeue: Some(POLL),
                    }
                }
                other => {
                    let own_retry = (ph == Phase::Failed)
                        .then(|| task(&st).and_then(|t| t.finished.as_ref()).map(millis))
                        .flatten()
                        .map(|f| f + RETRY_BACKOFF.as_millis() as i64);
                    match (own_retry, other) {
                        (Some(at), _) if at >= now_ms => {
                            let left = Duration::from_millis((at - now_ms) as u64 + 1);
                            let msg = format!(
                                "{} failed ({}); errorPolicy retry: retried in {}s",
                                describe(&st),
                                t.error_message.clone().unwrap_or_default(),
                                left.as_secs() + 1
                            );
                            waiting(st, op, "RetryBackoff", &msg, false, left.min(POLL))
                        }
                        (_, Some((name, _))) => {
                            let msg = format!("queued behind CruiseControlOperation {name} of the same KafkaCluster");
                            waiting(st, op, "Queued", &msg, false, POLL)
                        }
                        (_, None) => waiting(st, op, "Queued", "queued", false, POLL),
                    }
                }
            }
        }
    }
}

/// How the request of [`Next::Execute`] went.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Answered 200 (`result` for an optimization).
    Done(Option<OptimizationResult>),
    /// Accepted (202), under way.
    InProgress,
    /// Cruise Control refused it, or the exchange broke after the request was sent.
    Failed(String),
    /// Nothing was sent (no connection): not an attempt.
    Unreachable(String),
}

/// A sent request: its URL, answer status and user task id.
#[derive(Debug, Clone, PartialEq)]
pub struct Executed {
    pub url: String,
    pub code: Option<u16>,
    pub task_id: Option<String>,
    pub outcome: Outcome,
}

/// Koperator's `formatSummary` of an optimization.
pub fn summary(r: &OptimizationResult) -> BTreeMap<String, String> {
    let s = &r.summary;
    let mut m: BTreeMap<String, String> = [
        ("Data to move", s.data_to_move_mb.to_string()),
        ("Number of replica movements", s.num_replica_movements.to_string()),
        ("Intra broker data to move", s.intra_broker_data_to_move_mb.to_string()),
        ("Number of intra broker replica movements", s.num_intra_broker_replica_movements.to_string()),
        ("Number of leader movements", s.num_leader_movements.to_string()),
        ("Recent windows", s.recent_windows.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(p) = &s.provision_status {
        m.insert("Provision status".into(), p.clone());
    }
    m
}

/// Records a request sent for the operation in `st` (pure). A failed task being re-run goes to
/// `failedTasks` first and counts as a retry. Returns `false` when nothing was sent (the task
/// is left as it was; the condition says why).
pub fn record_execution(
    op: &CruiseControlOperation,
    st: &mut CruiseControlOperationStatus,
    ex: Option<Executed>,
    now: Timestamp,
) -> bool {
    if let Some(Executed { outcome: Outcome::Unreachable(why), .. }) = &ex {
        let msg = format!("waiting for Cruise Control: {why}");
        set(st, op, false, true, Some(("CruiseControlUnreachable", &msg)), "CruiseControlUnreachable", &msg);
        return false;
    }
    let Some(t) = st.current_task.as_mut() else { return false };
    if t.state.as_deref() == Some(state::COMPLETED_WITH_ERROR) {
        let failed = st.failed_tasks.get_or_insert_with(Vec::new);
        failed.push(t.clone());
        if failed.len() > FAILED_TASKS_MAX {
            let extra = failed.len() - FAILED_TASKS_MAX;
            failed.drain(..extra);
        }
        st.retry_count += 1;
    }
    let fresh = CruiseControlTask {
        operation: t.operation,
        parameters: t.parameters.clone(),
        started: Some(Time(now)),
        ..Default::default()
    };
    *t = fresh;
    let (reason, msg) = match ex {
        // `remove_disks` without any disk: nothing to move (as Koperator).
        None => {
            t.state = Some(state::COMPLETED.into());
            t.finished = Some(time_at(now.as_millisecond()));
            ("Completed", "nothing to move: completed without a call".to_string())
        }
        Some(ex) => {
            t.http_request = Some(ex.url.clone());
            t.http_response_code = ex.code.map(i32::from);
            t.id = ex.task_id.clone();
            match ex.outcome {
                Outcome::Done(result) => {
                    t.summary = result.as_ref().map(summary);
                    match &ex.task_id {
                        Some(id) => {
                            t.state = Some(state::ACTIVE.into());
                            ("Active", format!("{} started as user task {id}", t.operation.as_str()))
                        }
                        None => {
                            t.state = Some(state::COMPLETED.into());
                            t.finished = Some(Time(now));
                            ("Completed", format!("{} completed", t.operation.as_str()))
                        }
                    }
                }
                Outcome::InProgress => {
                    t.state = Some(state::ACTIVE.into());
                    let id = ex.task_id.clone().unwrap_or_default();
                    ("Active", format!("{} accepted as user task {id}", t.operation.as_str()))
                }
                Outcome::Failed(why) => {
                    t.state = Some(state::COMPLETED_WITH_ERROR.into());
                    t.error_message = Some(why.clone());
                    t.finished = Some(Time(now));
                    ("CompletedWithError", format!("{} failed: {why}", t.operation.as_str()))
                }
                Outcome::Unreachable(_) => unreachable!("handled above"),
            }
        }
    };
    let done = reason == "Completed";
    let degraded = (reason == "CompletedWithError").then_some((reason, msg.as_str()));
    set(st, op, done, !done, degraded, reason, &msg);
    true
}

/// What to do about a deleted operation before its finalizer goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Cleanup {
    /// Nothing runs for it (or its cluster is gone): release the finalizer.
    Release,
    /// Its task runs: stop Cruise Control's execution, then look again.
    Stop,
    /// Its task may run and Cruise Control does not answer: why.
    Wait(String),
}

/// Koperator's finalizer: a deleted operation whose task runs is stopped
/// (`stop_proposal_execution`) and released once the task finished.
pub fn cleanup(op: &CruiseControlOperation, cluster_alive: bool, tasks: &Tasks, now: Timestamp) -> Cleanup {
    let mut st = op.status.clone().unwrap_or_default();
    if !cluster_alive || phase_of(op, &st) != Phase::Running {
        return Cleanup::Release;
    }
    if let Tasks::Unreachable(why) = tasks {
        return Cleanup::Wait(why.clone());
    }
    refresh(&mut st, tasks, now);
    match phase_of(op, &st) {
        Phase::Running => Cleanup::Stop,
        _ => Cleanup::Release,
    }
}

//! The CruiseControlOperation controller (Koperator's `cruisecontroloperation_controller.go`
//! and its TTL controller in one): runs each operation's Cruise Control task, one at a time
//! per KafkaCluster, follows it by its user task id, retries or ignores failures, deletes
//! finished operations after their TTL, and stops a running task when its operation is deleted.
//!
//! Each reconcile: list the cluster's operations (from the API server, not a cache: the queue
//! must see the latest starts) → ask Cruise Control only what [`decide::wants`] says (its state
//! when the operation may start; the user tasks of the running ones) → the pure
//! [`decide::decide`] → execute its one step (send the request and record it, or delete) →
//! write the status when it changed. Everything lives in the status, so an operator restarted
//! mid-task polls the recorded user task and never sends it again. The reconciles of one
//! cluster's operations are serialised in this process, so two cannot both start.

pub mod decide;
pub mod params;

#[cfg(test)]
mod decide_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use koperator_shared::api::KafkaCluster;
use koperator_shared::api::cruisecontroloperation::{
    CruiseControlOperation, CruiseControlOperationStatus, KAFKA_CR_LABEL, PAUSE_LABEL,
};

use crate::controller::{self, Context, Reconcile, Writes, kube_err};
use crate::cruise_control::{self as cc, Client, OptimizationResult};
use crate::status;
use decide::{CcState, Cleanup, Executed, Next, Outcome, Phase, TaskReport, Tasks};
use params::Request;

/// Finalizer of CruiseControlOperations (Koperator's name).
pub const FINALIZER: &str = "finalizer.cruisecontroloperations.kafka.banzaicloud.io";

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] crate::controller::KubeError),
    /// A deleted operation's task still runs: the finalizer stays until it finished.
    #[error("CruiseControlOperation {name} is deleted while its Cruise Control task runs: {why}")]
    Stopping { name: String, why: String },
}

impl controller::Categorized for Error {
    fn category(&self) -> &'static str {
        match self {
            Error::Kube(e) => e.category(),
            Error::Stopping { .. } => "Stopping",
        }
    }
}

/// Runs the CruiseControlOperation controller.
pub async fn run(ctx: Arc<Context>) {
    controller::run(controller::controller::<CruiseControlOperation>(&ctx), ctx).await;
}

impl Reconcile for CruiseControlOperation {
    const CONTROLLER: &'static str = "cruisecontroloperation";
    const FINALIZER: &'static str = FINALIZER;
    type Error = Error;

    async fn apply(op: Arc<Self>, ctx: &Context, writes: &Writes) -> Result<Action, Error> {
        reconcile(&op, ctx, writes).await
    }

    async fn cleanup(op: Arc<Self>, ctx: &Context, writes: &Writes) -> Result<Action, Error> {
        finalize(&op, ctx, writes).await
    }
}

/// One lock per KafkaCluster: its operations decide and start one after the other.
fn cluster_lock(ns: &str, cluster: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = LazyLock::new(Default::default);
    let mut m = LOCKS.lock().unwrap_or_else(|e| e.into_inner());
    m.entry(format!("{ns}/{cluster}")).or_default().clone()
}

/// The Cruise Control client of `cluster` (names resolved through the operator's hosts file).
fn client(cluster: &KafkaCluster, ctx: &Context) -> Result<Client, String> {
    Client::for_cluster(cluster, ctx.cruise_control.clone()).map_err(|e| e.to_string())
}

/// Why Cruise Control's state keeps a task from starting (Koperator's `IsReady`: a running
/// monitor, a proposal ready with every goal ready).
fn not_ready(s: &cc::CruiseControlState) -> Option<String> {
    if s.is_ready() {
        return None;
    }
    let monitor = s.monitor.as_ref().map(|m| m.state.as_str()).unwrap_or("unknown");
    let analyzer = s.analyzer.as_ref();
    let proposal = analyzer.is_some_and(|a| a.is_proposal_ready);
    let waiting: Vec<&str> = analyzer
        .map(|a| a.goal_readiness.iter().filter(|g| g.status != "ready").map(|g| g.name.as_str()).collect())
        .unwrap_or_default();
    Some(format!(
        "monitor {monitor}, proposal ready {proposal}{}",
        match waiting.is_empty() {
            true => String::new(),
            false => format!(", goals not ready: {}", waiting.join(", ")),
        }
    ))
}

/// Cruise Control's state as [`decide`] needs it. A state Cruise Control computes longer than
/// its `webserver.request.maxBlockTimeMs` (202) is asked again with its user task id for a few
/// seconds; still under way, it counts as not ready.
pub async fn read_state(client: &Client) -> CcState {
    let call = cc::Call::state(&[]);
    match client.execute_and_wait(&call, Duration::from_millis(300), Duration::from_secs(5)).await {
        Ok(a) => CcState::Answered { not_ready: not_ready(&a.result), executing: a.result.in_execution() },
        Err(cc::Error::InProgress { .. }) => {
            CcState::Answered { not_ready: Some("its state is still being computed".into()), executing: false }
        }
        Err(e) => CcState::Unreachable(e.to_string()),
    }
}

/// The user tasks `ids`, asked as Koperator does (without `fetch_completed_task`: Cruise
/// Control on Java 17 without `--add-opens java.base/java.lang` fails the whole call once any
/// task failed). A completed task's summary comes from its own answer, asked for that task
/// alone afterwards, best effort.
pub async fn read_tasks(client: &Client, ids: &[String]) -> Tasks {
    if ids.is_empty() {
        return Tasks::NotAsked;
    }
    let ids: Vec<cc::TaskId> = ids.iter().map(|i| cc::TaskId(i.clone())).collect();
    let answered = match client.user_tasks(&ids, false).await {
        Ok(a) => a.result.user_tasks,
        Err(e) => return Tasks::Unreachable(e.to_string()),
    };
    let mut reports = BTreeMap::new();
    for t in answered {
        let summary = match t.status {
            cc::UserTaskStatus::Completed => match client.user_tasks(&[cc::TaskId(t.user_task_id.clone())], true).await
            {
                Ok(a) => a
                    .result
                    .user_tasks
                    .iter()
                    .find(|u| u.user_task_id == t.user_task_id)
                    .and_then(|u| u.original::<OptimizationResult>())
                    .and_then(Result::ok)
                    .map(|r| decide::summary(&r)),
                Err(_) => None,
            },
            _ => None,
        };
        reports.insert(t.user_task_id.clone(), TaskReport { status: t.status, summary });
    }
    Tasks::Answered(reports)
}

/// What one pass did against Cruise Control.
#[derive(Debug, Clone)]
pub struct Step {
    /// The decision (its status is the one before anything was sent).
    pub decision: decide::Decision,
    /// The status to write: the decision's, with the sent request recorded.
    pub status: CruiseControlOperationStatus,
    /// A request reached Cruise Control (or none was needed) and is recorded in `status`.
    pub sent: bool,
}

/// One pass of `op` among its cluster's operations `all` against Cruise Control (`client`, or
/// why there is none): asks what [`decide::wants`], decides at `now`, and sends the request
/// when the decision says so, recording it in the status. Writes nothing to Kubernetes.
pub async fn step(
    op: &CruiseControlOperation,
    all: &[CruiseControlOperation],
    client: &Result<Client, String>,
    now: Timestamp,
) -> Step {
    let wants = decide::wants(op, all);
    let tasks = match (wants.task_ids.is_empty(), client) {
        (true, _) => Tasks::NotAsked,
        (false, Ok(c)) => read_tasks(c, &wants.task_ids).await,
        (false, Err(why)) => Tasks::Unreachable(why.clone()),
    };
    let cc_state = match (wants.state, client) {
        (false, _) => CcState::NotAsked,
        (true, Ok(c)) => read_state(c).await,
        (true, Err(why)) => CcState::Unreachable(why.clone()),
    };
    let decision = decide::decide(&decide::Input { op, all, now, cc_state, tasks });
    let mut status = decision.status.clone();
    let mut sent = false;
    if let (Next::Execute { request, .. }, Ok(c)) = (&decision.next, client) {
        let executed = send(c, request).await;
        info!(
            operation = %op.name_any(),
            request = ?executed.as_ref().map(|e| &e.url),
            outcome = ?executed.as_ref().map(|e| &e.outcome),
            "Cruise Control task sent"
        );
        sent = decide::record_execution(op, &mut status, executed, now);
    }
    Step { decision, status, sent }
}

/// Sends `request` (never resumed: a 202 is recorded and the task is polled by its id).
pub async fn send(client: &Client, request: &Request) -> Option<Executed> {
    fn failed<T>(url: String, r: Result<cc::Answer<T>, cc::Error>, done: impl FnOnce(T) -> Outcome) -> Executed {
        match r {
            Ok(a) => Executed { url, code: Some(200), task_id: a.task_id.map(|t| t.0), outcome: done(a.result) },
            Err(cc::Error::InProgress { task_id, .. }) => {
                Executed { url, code: Some(202), task_id: Some(task_id.0), outcome: Outcome::InProgress }
            }
            // Too many requests under way: nothing started, not an attempt.
            Err(e) if e.refusal() == Some(cc::Refusal::Busy) => {
                Executed { url, code: None, task_id: None, outcome: Outcome::Unreachable(e.to_string()) }
            }
            Err(e @ cc::Error::Status { status, .. }) => {
                Executed { url, code: Some(status), task_id: None, outcome: Outcome::Failed(e.to_string()) }
            }
            // Nothing reached Cruise Control.
            Err(e @ (cc::Error::Unreachable { .. } | cc::Error::InvalidUrl { .. } | cc::Error::Build(_))) => {
                Executed { url, code: None, task_id: None, outcome: Outcome::Unreachable(e.to_string()) }
            }
            Err(e) => Executed { url, code: None, task_id: None, outcome: Outcome::Failed(e.to_string()) },
        }
    }
    match request {
        Request::Nothing => None,
        Request::Optimization(call) => {
            Some(failed(client.url(call).to_string(), client.execute(call).await, |r| Outcome::Done(Some(r))))
        }
        Request::Stop(call) => {
            Some(failed(client.url(call).to_string(), client.execute(call).await, |_| Outcome::Done(None)))
        }
    }
}

fn same_status(a: &CruiseControlOperationStatus, b: &CruiseControlOperationStatus) -> bool {
    a.current_task == b.current_task
        && a.error_policy == b.error_policy
        && a.retry_count == b.retry_count
        && a.failed_tasks == b.failed_tasks
        && status::same_conditions(&a.conditions, &b.conditions)
}

/// Replaces the status of `op` (as read) with `new` when it changed. `guarded`: only if nothing
/// changed the object since it was read (a JSON patch `test` of its resourceVersion), so that a
/// `currentTask` its creator set meanwhile is never overwritten with an older status. The status
/// recording a task just sent goes unguarded: its user task id must not be lost.
async fn write_status(
    api: &Api<CruiseControlOperation>,
    op: &CruiseControlOperation,
    new: &CruiseControlOperationStatus,
    guarded: bool,
    writes: &Writes,
) -> Result<(), Error> {
    let name = op.name_any();
    if same_status(&op.status.clone().unwrap_or_default(), new) {
        return Ok(());
    }
    let value = serde_json::to_value(new).expect("statuses serialize");
    let mut ops = Vec::new();
    if let (true, Some(rv)) = (guarded, op.resource_version()) {
        ops.push(json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv}));
    }
    ops.push(json!({"op": "add", "path": "/status", "value": value}));
    let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops)).expect("a valid JSON patch");
    api.patch_status(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .map_err(kube_err("replace the status of", format!("CruiseControlOperation/{name}")))?;
    writes.count(true);
    Ok(())
}

/// A status with only the conditions changed.
fn with_condition(
    op: &CruiseControlOperation,
    reason: &str,
    message: &str,
    requeue: bool,
) -> CruiseControlOperationStatus {
    let mut st = op.status.clone().unwrap_or_default();
    status::set_all(&mut st.conditions, false, requeue, Some((reason, message)), reason, message, op.meta().generation);
    st
}

async fn reconcile(op: &CruiseControlOperation, ctx: &Context, writes: &Writes) -> Result<Action, Error> {
    let ns = op.namespace().unwrap_or_default();
    let name = op.name_any();
    let api: Api<CruiseControlOperation> = Api::namespaced(ctx.client.clone(), &ns);
    if matches!(decide::phase(op), Phase::Status) {
        return Ok(Action::await_change());
    }
    let Some(cluster_name) = decide::cluster_name(op).map(str::to_string) else {
        let msg = format!("no {KAFKA_CR_LABEL} label: label the operation with the name of its KafkaCluster");
        write_status(&api, op, &with_condition(op, "NoCluster", &msg, false), true, writes).await?;
        return Ok(Action::await_change());
    };
    let lock = cluster_lock(&ns, &cluster_name);
    let _turn = lock.lock().await;
    // Read again under the lock: a reconcile of another operation may have changed it.
    let Some(op) = api.get_opt(&name).await.map_err(kube_err("get", format!("CruiseControlOperation/{name}")))? else {
        return Ok(Action::await_change());
    };
    let old = op.status.clone().unwrap_or_default();
    let cluster = Api::<KafkaCluster>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&cluster_name)
        .await
        .map_err(kube_err("get", format!("KafkaCluster/{ns}/{cluster_name}")))?;
    let Some(cluster) = cluster else {
        let msg = format!("KafkaCluster {ns}/{cluster_name} (label {KAFKA_CR_LABEL}) does not exist");
        write_status(&api, &op, &with_condition(&op, "ClusterNotFound", &msg, true), true, writes).await?;
        return Ok(Action::requeue(Duration::from_secs(30)));
    };
    let all = api
        .list(&ListParams::default().labels(&format!("{KAFKA_CR_LABEL}={cluster_name}")))
        .await
        .map_err(kube_err("list", "CruiseControlOperations"))?
        .items;
    let client = client(&cluster, ctx);
    let Step { decision: d, status: st, sent } = step(&op, &all, &client, Timestamp::now()).await;
    announce(&op, &old, &d.status, ctx, writes).await;
    match d.next {
        Next::Wait => {}
        Next::Delete => {
            info!(operation = %name, "finished and its ttlSecondsAfterFinished passed: deleting it");
            let dp = DeleteParams {
                preconditions: Some(Preconditions { uid: op.uid(), resource_version: None }),
                ..Default::default()
            };
            match api.delete(&name, &dp).await {
                Ok(_) => writes.count(true),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(kube_err("delete", format!("CruiseControlOperation/{name}"))(e).into()),
            }
            return Ok(Action::await_change());
        }
        Next::Execute { pause_first, .. } => {
            if sent {
                announce(&op, &d.status, &st, ctx, writes).await;
            }
            // The task id must not be lost: a status not written would send the task again.
            let mut tries = 0;
            loop {
                match write_status(&api, &op, &st, false, writes).await {
                    Ok(()) => break,
                    Err(e) if tries < 4 => {
                        tries += 1;
                        warn!(operation = %name, error = %e, "cannot record the started task yet; retrying");
                        tokio::time::sleep(Duration::from_millis(250 << tries)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
            if let Some(other) = pause_first {
                let patch = json!({"metadata": {"labels": {PAUSE_LABEL: "true"}}});
                api.patch(&other, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                    .map_err(kube_err("pause", format!("CruiseControlOperation/{other}")))?;
                writes.count(true);
                info!(operation = %other, "failed remove_disks paused: a rebalance replaces it");
            }
            return Ok(Action::requeue(decide::POLL));
        }
    }
    write_status(&api, &op, &st, true, writes).await?;
    Ok(d.requeue.map(Action::requeue).unwrap_or_else(Action::await_change))
}

/// Events for a task that started or finished.
async fn announce(
    op: &CruiseControlOperation,
    old: &CruiseControlOperationStatus,
    new: &CruiseControlOperationStatus,
    ctx: &Context,
    writes: &Writes,
) {
    let state = |s: &CruiseControlOperationStatus| s.current_task.as_ref().and_then(|t| t.state.clone());
    let (before, after) = (state(old), state(new));
    if before == after && old.retry_count == new.retry_count {
        return;
    }
    let Some(t) = new.current_task.as_ref() else { return };
    let what = t.operation.as_str();
    let id = t.id.clone().unwrap_or_default();
    let (type_, reason, note) = match after.as_deref() {
        Some(decide::state::ACTIVE) => {
            (EventType::Normal, "Started", format!("{what} started as Cruise Control user task {id}"))
        }
        Some(decide::state::COMPLETED) => {
            (EventType::Normal, "Completed", format!("{what} (user task {id}) completed"))
        }
        Some(decide::state::COMPLETED_WITH_ERROR) => (
            EventType::Warning,
            "Failed",
            format!("{what} (user task {id}) failed: {}", t.error_message.clone().unwrap_or_default()),
        ),
        _ => return,
    };
    ctx.publish(op, type_, reason, &note).await;
    writes.count(true);
}

/// Koperator's finalizer: a running task is stopped before its operation goes.
async fn finalize(op: &CruiseControlOperation, ctx: &Context, writes: &Writes) -> Result<Action, Error> {
    let ns = op.namespace().unwrap_or_default();
    let name = op.name_any();
    if decide::phase(op) != Phase::Running {
        return Ok(Action::await_change());
    }
    let cluster = match decide::cluster_name(op) {
        None => None,
        Some(c) => Api::<KafkaCluster>::namespaced(ctx.client.clone(), &ns)
            .get_opt(c)
            .await
            .map_err(kube_err("get", format!("KafkaCluster/{ns}/{c}")))?,
    };
    let Some(cluster) = cluster.filter(|c| c.meta().deletion_timestamp.is_none()) else {
        return Ok(Action::await_change());
    };
    let stopping = |why: String| Err(Error::Stopping { name: name.clone(), why });
    let client = match client(&cluster, ctx) {
        Ok(c) => c,
        Err(why) => return stopping(why),
    };
    let ids: Vec<String> = op.status.iter().filter_map(|s| s.current_task.as_ref()?.id.clone()).collect();
    let tasks = read_tasks(&client, &ids).await;
    match decide::cleanup(op, true, &tasks, Timestamp::now()) {
        Cleanup::Release => Ok(Action::await_change()),
        Cleanup::Wait(why) => stopping(format!("Cruise Control does not answer: {why}")),
        Cleanup::Stop => {
            let executed = send(&client, &Request::Stop(cc::Call::stop_proposal_execution(false))).await;
            let outcome = executed.as_ref().map(|e| format!("{:?}", e.outcome)).unwrap_or_default();
            let note = format!("deleted while its task runs: stop_proposal_execution sent ({outcome})");
            info!(operation = %name, "{note}");
            ctx.publish(op, EventType::Normal, "Stopping", &note).await;
            writes.count(true);
            stopping("stop_proposal_execution sent; waiting for the task to finish".into())
        }
    }
}

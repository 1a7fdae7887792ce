//! Graceful up- and downscale through Cruise Control, decided inside the plan (Koperator runs
//! the same state machine in its `CruiseControlTask` controller): a broker added to a running
//! cluster gets partitions through an `add_broker` CruiseControlOperation once it is Ready; a
//! broker removed from the spec is drained by a `remove_broker` operation, and its Pod is
//! deleted only when **Kafka's own metadata** shows no replica left on it. Each broker's step
//! is in `status.brokersState[<id>].gracefulActionState` with Koperator's state names.
//!
//! Safer than Koperator where it matters: an operation that disappears before it completed is
//! created again (Koperator counts it as succeeded); a drain Cruise Control reports done while
//! Kafka still places replicas on the broker (a topic created meanwhile) runs again; without
//! Cruise Control nothing holding replicas is removed unless the user forces it
//! ([`FORCE_BROKER_REMOVAL`](super::FORCE_BROKER_REMOVAL)). Pure: table-tested.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::LocalObjectReference;
use kube::ResourceExt;

use koperator_shared::api::cruisecontroloperation::{CruiseControlOperation, ErrorPolicy, Operation, PAUSE_LABEL};
use koperator_shared::api::kafkacluster::{BrokerState, GracefulActionState};

/// Koperator's `CruiseControlState` values.
pub mod state {
    pub const UPSCALE_REQUIRED: &str = "GracefulUpscaleRequired";
    pub const UPSCALE_SCHEDULED: &str = "GracefulUpscaleScheduled";
    pub const UPSCALE_RUNNING: &str = "GracefulUpscaleRunning";
    pub const UPSCALE_SUCCEEDED: &str = "GracefulUpscaleSucceeded";
    pub const UPSCALE_COMPLETED_WITH_ERROR: &str = "GracefulUpscaleCompletedWithError";
    pub const UPSCALE_PAUSED: &str = "GracefulUpscalePaused";
    pub const DOWNSCALE_REQUIRED: &str = "GracefulDownscaleRequired";
    pub const DOWNSCALE_SCHEDULED: &str = "GracefulDownscaleScheduled";
    pub const DOWNSCALE_RUNNING: &str = "GracefulDownscaleRunning";
    pub const DOWNSCALE_SUCCEEDED: &str = "GracefulDownscaleSucceeded";
    pub const DOWNSCALE_COMPLETED_WITH_ERROR: &str = "GracefulDownscaleCompletedWithError";
    pub const DOWNSCALE_PAUSED: &str = "GracefulDownscalePaused";
}
use state::*;

/// A node the spec wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedNode {
    /// Node id.
    pub id: i32,
    /// Its Pod's UID, when the Pod exists.
    pub pod_uid: Option<String>,
    /// Its Pod is Ready.
    pub ready: bool,
    /// It has the broker role (controller-only nodes hold no partitions).
    pub broker: bool,
}

/// A node removed from the spec whose Pod or ConfigMap is still there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedNode {
    /// Node id.
    pub id: i32,
    /// Its Pod's UID, when the Pod exists.
    pub pod_uid: Option<String>,
}

/// What the decision reads.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The KafkaCluster's name (operation names start with it).
    pub cluster: &'a str,
    /// Cruise Control runs for the cluster (deployed by the operator or an external endpoint).
    pub cruise_control: bool,
    /// The user forces removal without draining.
    pub force: bool,
    /// The status' broker states before this reconcile.
    pub old: &'a BTreeMap<String, BrokerState>,
    /// Nodes the spec wants.
    pub wanted: &'a [WantedNode],
    /// Nodes removed from the spec that still have a Pod or ConfigMap.
    pub removed: &'a [RemovedNode],
    /// The cluster's CruiseControlOperations by name.
    pub operations: &'a BTreeMap<String, CruiseControlOperation>,
    /// Partition replicas Kafka places on each node (`None`: Kafka's metadata was not read).
    pub replicas: Option<&'a BTreeMap<i32, usize>>,
    /// Now (unix seconds).
    pub now: u64,
    /// Every wanted broker runs its current spec (no roll under way): only then does a new
    /// operation start, so that Cruise Control does not move partitions onto a restarting
    /// broker.
    pub quiet: bool,
}

/// How long after Cruise Control finished a drain Kafka's metadata may still show replicas on
/// the broker before the drain runs again.
pub const CONFIRM_SECS: u64 = 30;

/// An operation to create (then give its task through the status subresource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOperation {
    /// Its name (derived from the brokers it moves and their Pods: the same after a restart).
    pub name: String,
    /// `add_broker`, `remove_broker`, `remove_disks` or `rebalance` (of disks).
    pub operation: Operation,
    /// The brokers (`brokerid`, or `destination_broker_ids` of a disk rebalance).
    pub brokers: Vec<i32>,
    /// The log directories (broker id, directory) a `remove_disks` drains.
    pub log_dirs: Vec<(i32, String)>,
    /// A `rebalance` moves replicas between each broker's disks (`rebalance_disk`: Cruise
    /// Control knows the disks one by one); else between brokers, as Koperator then does.
    pub rebalance_disk: bool,
}

impl NewOperation {
    /// The operation's Cruise Control parameters (Koperator's for each kind).
    pub fn parameters(&self) -> BTreeMap<String, String> {
        let ids: Vec<String> = self.brokers.iter().map(i32::to_string).collect();
        let exclude = [
            ("exclude_recently_demoted_brokers".to_string(), "true".to_string()),
            ("exclude_recently_removed_brokers".to_string(), "true".to_string()),
        ];
        match self.operation {
            Operation::RemoveDisks => {
                let dirs: Vec<String> = self.log_dirs.iter().map(|(id, dir)| format!("{id}-{dir}")).collect();
                BTreeMap::from([("brokerid_and_logdirs".to_string(), dirs.join(","))])
            }
            Operation::Rebalance => BTreeMap::from_iter(
                [("destination_broker_ids".to_string(), ids.join(","))]
                    .into_iter()
                    .chain(self.rebalance_disk.then(|| ("rebalance_disk".to_string(), "true".to_string())))
                    .chain(exclude),
            ),
            _ => BTreeMap::from_iter([("brokerid".to_string(), ids.join(","))].into_iter().chain(exclude)),
        }
    }
}

/// What to do about graceful actions this reconcile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// Graceful state of every wanted node and of every removed node still present.
    pub states: BTreeMap<String, GracefulActionState>,
    /// Operations to create, or to give their task when they exist without one.
    pub create: Vec<NewOperation>,
    /// Removed nodes whose Pod and ConfigMap may go now.
    pub remove: BTreeSet<i32>,
    /// Why each other removed node waits.
    pub waiting: BTreeMap<i32, String>,
    /// The removed nodes among `waiting` that cannot go on by themselves (no Cruise Control,
    /// Kafka's metadata unreadable, the drain failed or paused, Cruise Control unreachable,
    /// drains repeated without effect): `Degraded`. The others are a drain making progress.
    pub stuck: BTreeSet<i32>,
    /// Operations of the cluster's own to delete (name, UID): a drain of a broker the spec
    /// wants again, or the join of a broker removed meanwhile. Deleting a running one stops
    /// its task (the operation's finalizer).
    pub stop: Vec<(String, String)>,
    /// An action is under way: look again soon.
    pub busy: bool,
}

/// How many completed drains of one broker, Kafka still placing replicas on it after each,
/// before the operator stops draining it again and asks the user.
pub const MAX_DRAINS: usize = 3;

/// Decides the graceful actions of one reconcile.
pub fn decide(i: Inputs<'_>) -> Decision {
    let mut d = Decision::default();
    let running_before = !i.old.is_empty();
    let mut add = Vec::new();
    let mut add_nonce = Vec::new();
    for n in i.wanted {
        let key = n.id.to_string();
        let old = i.old.get(&key).map(|s| s.graceful_action_state.clone());
        let prev = old.clone().unwrap_or_default();
        let s = prev.cruise_control_state.as_str();
        let op = reference(&prev).and_then(|r| i.operations.get(r));
        let mut next = prev.clone();
        if s.is_empty() || s.starts_with("GracefulDownscale") {
            // New to a running cluster, or wanted again while it was being drained: it gets
            // partitions back through Cruise Control; at the cluster's creation nothing moves.
            // A drain still under way is stopped first (its retries would empty it again).
            let drain = op.filter(|op| of_kind(op, Operation::RemoveBroker));
            if let Some(op) = drain.filter(|op| s.starts_with("GracefulDownscale") && !finished(op)) {
                d.stop.push((op.name_any(), op.uid().unwrap_or_default()));
            }
            let joins = (old.is_none() && running_before) || s.starts_with("GracefulDownscale");
            next = state(if joins && i.cruise_control && n.broker { UPSCALE_REQUIRED } else { UPSCALE_SUCCEEDED });
        } else if s != UPSCALE_REQUIRED && s != UPSCALE_SUCCEEDED {
            // Scheduled, Running, CompletedWithError or Paused: follow the operation; one that
            // is gone has nothing more to do (adding is never a safety matter).
            next.cruise_control_state = match op.filter(|op| of_kind(op, Operation::AddBroker)) {
                Some(op) => follow(op, Operation::AddBroker).unwrap_or(UPSCALE_SCHEDULED).into(),
                None => UPSCALE_SUCCEEDED.into(),
            };
        }
        if next.cruise_control_state == UPSCALE_REQUIRED {
            if !i.cruise_control || !n.broker {
                next = state(UPSCALE_SUCCEEDED);
            } else if n.ready {
                add.push((n.id, n.pod_uid.clone().unwrap_or_default()));
                add_nonce.extend(reference(&prev).cloned());
            }
        }
        d.busy |= in_progress(&next.cruise_control_state);
        d.states.insert(key, next);
    }
    if !add.is_empty() && i.quiet {
        let op = new_operation(i.cluster, Operation::AddBroker, &add, &add_nonce.join(","));
        for (id, _) in &add {
            d.states.insert(id.to_string(), scheduled(UPSCALE_SCHEDULED, &op.name));
        }
        d.create.push(op);
    }

    let mut remove = Vec::new();
    let mut remove_nonce = Vec::new();
    for n in i.removed {
        let key = n.id.to_string();
        let prev = i.old.get(&key).map(|s| s.graceful_action_state.clone()).unwrap_or_default();
        let held = i.replicas.map(|r| r.get(&n.id).copied().unwrap_or(0));
        let s = prev.cruise_control_state.as_str();
        let referenced = reference(&prev).and_then(|r| i.operations.get(r));
        // Its drain (a join referenced from before is not one).
        let op = referenced.filter(|op| of_kind(op, Operation::RemoveBroker));
        // Where its drain stands: "" when none was asked for yet, or the one asked for is gone
        // before it completed (deleted, or Cruise Control's answer lost).
        let current = match (s.starts_with("GracefulDownscale"), op) {
            (false, _) => "",
            (true, Some(op)) => follow(op, Operation::RemoveBroker).unwrap_or(DOWNSCALE_SCHEDULED),
            (true, None) if s == DOWNSCALE_SUCCEEDED => DOWNSCALE_SUCCEEDED,
            (true, None) => "",
        };
        // An operation still under way is let finish (its retries would otherwise run on a
        // broker that is gone); a paused one is finished for the operation controller.
        let in_flight = !current.is_empty() && current != DOWNSCALE_SUCCEEDED && current != DOWNSCALE_PAUSED;
        if i.force || (held == Some(0) && !in_flight) {
            d.remove.insert(n.id);
            // A join of it still pending would be retried on a broker that is gone.
            let join = referenced.filter(|op| of_kind(op, Operation::AddBroker));
            if let Some(op) = join.filter(|op| s.starts_with("GracefulUpscale") && !finished(op)) {
                d.stop.push((op.name_any(), op.uid().unwrap_or_default()));
            }
            let mut done = prev;
            if done.cruise_control_state.starts_with("GracefulDownscale") {
                done.cruise_control_state = DOWNSCALE_SUCCEEDED.into();
            }
            d.states.insert(key, done);
            continue;
        }
        d.busy = true;
        let holds = match held {
            Some(0) => "holds no partition replica any more".to_string(),
            Some(k) => format!("still holds {k} partition replica(s)"),
            None => "may hold partition replicas (Kafka's metadata could not be read)".to_string(),
        };
        if !i.cruise_control {
            let why = format!(
                "broker {} {holds} and no Cruise Control runs for this cluster to move them (spec.cruiseControlConfig); \
                 reassign them with kafka-reassign-partitions, or annotate the KafkaCluster with {}=\"true\" to delete it anyway",
                n.id,
                super::FORCE_BROKER_REMOVAL
            );
            d.waiting.insert(n.id, why);
            d.stuck.insert(n.id);
            d.states.insert(key, prev);
            continue;
        }
        if held.is_none() {
            d.stuck.insert(n.id);
        }
        let mut next = prev.clone();
        next.cruise_control_state = if current.is_empty() { DOWNSCALE_REQUIRED } else { current }.into();
        let drains = completed_drains(i.operations, n.id);
        let why = match next.cruise_control_state.as_str() {
            DOWNSCALE_SUCCEEDED
                if held.is_some() && finished_before(op, i.now, CONFIRM_SECS) && drains >= MAX_DRAINS =>
            {
                d.stuck.insert(n.id);
                format!(
                    "broker {} {holds} after {drains} completed Cruise Control drains; move them with \
                     kafka-reassign-partitions, or annotate the KafkaCluster with {}=\"true\" to delete it anyway",
                    n.id,
                    super::FORCE_BROKER_REMOVAL
                )
            }
            DOWNSCALE_SUCCEEDED if held.is_some() && finished_before(op, i.now, CONFIRM_SECS) => {
                // Cruise Control is done, yet Kafka still places replicas here (a topic
                // created during the drain): drain again.
                next.cruise_control_state = DOWNSCALE_REQUIRED.into();
                format!("broker {} {holds} after Cruise Control drained it; draining it again", n.id)
            }
            DOWNSCALE_SUCCEEDED => format!("broker {} is drained; waiting for Kafka's metadata to confirm it", n.id),
            other => {
                let blocked = op.is_some_and(degraded);
                if blocked || other == DOWNSCALE_PAUSED || other == DOWNSCALE_COMPLETED_WITH_ERROR {
                    d.stuck.insert(n.id);
                }
                let op_state = op.map(operation_message).unwrap_or_default();
                format!("broker {} {holds}; Cruise Control drains it ({other}{op_state})", n.id)
            }
        };
        if next.cruise_control_state == DOWNSCALE_REQUIRED {
            remove.push((n.id, n.pod_uid.clone().unwrap_or_default()));
            remove_nonce.extend(reference(&prev).cloned());
        }
        d.waiting.insert(n.id, why);
        d.states.insert(key, next);
    }
    if !remove.is_empty() && !i.quiet {
        for (id, _) in &remove {
            let why = format!("broker {id} is drained once every broker runs its current spec and is Ready");
            d.waiting.insert(*id, why);
        }
    }
    if !remove.is_empty() && i.quiet {
        let op = new_operation(i.cluster, Operation::RemoveBroker, &remove, &remove_nonce.join(","));
        for (id, _) in &remove {
            d.states.insert(id.to_string(), scheduled(DOWNSCALE_SCHEDULED, &op.name));
        }
        d.create.push(op);
    }
    // An operation that exists without its task (the operator stopped between the two
    // writes) gets its task now.
    for (id, s) in &d.states {
        let Some(name) = reference(s).filter(|_| id.parse().is_ok_and(|id| !d.remove.contains(&id))) else {
            continue;
        };
        let Some(op) = i.operations.get(name) else { continue };
        let untasked = op.status.as_ref().and_then(|st| st.current_task.as_ref()).is_none();
        if untasked && !d.create.iter().any(|c| &c.name == name) {
            let kind = if s.cruise_control_state.starts_with("GracefulUpscale") {
                Operation::AddBroker
            } else {
                Operation::RemoveBroker
            };
            let brokers =
                d.states.iter().filter(|(_, o)| reference(o) == Some(name)).filter_map(|(k, _)| k.parse().ok());
            d.create.push(NewOperation {
                name: name.clone(),
                operation: kind,
                brokers: brokers.collect(),
                log_dirs: Vec::new(),
                rebalance_disk: false,
            });
        }
    }
    d
}

fn state(s: &str) -> GracefulActionState {
    GracefulActionState { cruise_control_state: s.into(), ..Default::default() }
}

fn scheduled(s: &str, name: &str) -> GracefulActionState {
    GracefulActionState {
        cruise_control_state: s.into(),
        cruise_control_operation_reference: Some(LocalObjectReference { name: name.into() }),
        ..Default::default()
    }
}

pub(super) fn reference(s: &GracefulActionState) -> Option<&String> {
    s.cruise_control_operation_reference.as_ref().map(|r| &r.name).filter(|n| !n.is_empty())
}

/// The operation moving partitions now, if any (brokers do not restart meanwhile).
pub fn moving(d: &Decision) -> Option<&str> {
    d.states
        .values()
        .find(|s| s.cruise_control_state == UPSCALE_RUNNING || s.cruise_control_state == DOWNSCALE_RUNNING)
        .and_then(reference)
        .map(String::as_str)
}

/// Whether `s` is a step still under way.
pub(crate) fn in_progress(s: &str) -> bool {
    !s.is_empty() && s != UPSCALE_SUCCEEDED && s != DOWNSCALE_SUCCEEDED
}

/// The broker state an operation's task stands for (Koperator's mapping); `None` while it
/// has no task state yet (scheduled).
fn follow(op: &CruiseControlOperation, kind: Operation) -> Option<&'static str> {
    let task = op.status.as_ref()?.current_task.as_ref()?;
    let ignore = op.spec.error_policy == Some(ErrorPolicy::Ignore);
    let paused = op.labels().get(PAUSE_LABEL).is_some_and(|v| v == "true");
    let up = kind == Operation::AddBroker;
    let pick = |u: &'static str, d: &'static str| if up { u } else { d };
    Some(match task.state.as_deref()? {
        "Active" | "InExecution" => pick(UPSCALE_RUNNING, DOWNSCALE_RUNNING),
        "Completed" => pick(UPSCALE_SUCCEEDED, DOWNSCALE_SUCCEEDED),
        "CompletedWithError" if ignore => pick(UPSCALE_SUCCEEDED, DOWNSCALE_SUCCEEDED),
        "CompletedWithError" if paused => pick(UPSCALE_PAUSED, DOWNSCALE_PAUSED),
        "CompletedWithError" => pick(UPSCALE_COMPLETED_WITH_ERROR, DOWNSCALE_COMPLETED_WITH_ERROR),
        _ => return None,
    })
}

/// Where an operation's task stands, as one of the four steps Koperator's states name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// `Active` or `InExecution`.
    Running,
    /// `Completed`, or failed with `errorPolicy: ignore`.
    Succeeded,
    /// Failed and paused (the pause label): finished for the operation controller.
    Paused,
    /// Failed; retried.
    Failed,
}

/// The phase of `op`'s task; `None` while it has no task state yet (scheduled).
pub(super) fn phase(op: &CruiseControlOperation) -> Option<Phase> {
    Some(match follow(op, Operation::RemoveBroker)? {
        DOWNSCALE_RUNNING => Phase::Running,
        DOWNSCALE_SUCCEEDED => Phase::Succeeded,
        DOWNSCALE_PAUSED => Phase::Paused,
        _ => Phase::Failed,
    })
}

/// Whether `op`'s task is of `kind` (or it has no task yet: made here, not given its task
/// yet): a reference left from another step is not followed.
pub(super) fn of_kind(op: &CruiseControlOperation, kind: Operation) -> bool {
    op.status.as_ref().and_then(|s| s.current_task.as_ref()).is_none_or(|t| t.operation == kind)
}

/// Whether `op`'s task finished (completed, or failed for good: ignored or paused).
pub(super) fn finished(op: &CruiseControlOperation) -> bool {
    matches!(follow(op, Operation::RemoveBroker), Some(DOWNSCALE_SUCCEEDED) | Some(DOWNSCALE_PAUSED))
}

/// Whether `op` reports a problem (`Degraded=True`: Cruise Control unreachable, the task
/// failed).
pub(super) fn degraded(op: &CruiseControlOperation) -> bool {
    let st = op.status.as_ref();
    st.is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Degraded" && c.status == "True"))
}

/// Completed `remove_broker` operations whose brokers include `id`.
fn completed_drains(ops: &BTreeMap<String, CruiseControlOperation>, id: i32) -> usize {
    ops.values()
        .filter_map(|o| o.status.as_ref()?.current_task.as_ref())
        .filter(|t| t.operation == Operation::RemoveBroker && t.state.as_deref() == Some("Completed"))
        .filter(|t| {
            let ids = t.parameters.as_ref().and_then(|p| p.get("brokerid")).map(String::as_str).unwrap_or_default();
            ids.split(',').any(|x| x.trim() == id.to_string())
        })
        .count()
}

/// Whether `op` finished at least `secs` before `now` (or is gone).
pub(super) fn finished_before(op: Option<&CruiseControlOperation>, now: u64, secs: u64) -> bool {
    let Some(op) = op else { return true };
    let finished = op.status.as_ref().and_then(|s| s.current_task.as_ref()).and_then(|t| t.finished.as_ref());
    finished.is_some_and(|t| u64::try_from(t.0.as_second()).is_ok_and(|at| at + secs <= now))
}

/// `: CruiseControlOperation <name> is <state>: <why>`, from the operation's status.
pub(super) fn operation_message(op: &CruiseControlOperation) -> String {
    let st = op.status.clone().unwrap_or_default();
    let task = st.current_task.and_then(|t| t.state).unwrap_or_else(|| "not started".into());
    let why = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status != "True")
        .map(|c| format!(": {}", c.message))
        .unwrap_or_default();
    format!("; CruiseControlOperation {} is {task}{why}", op.name_any())
}

/// The operation moving `brokers` (id and Pod UID): named after them and the operations their
/// states named before (`nonce`), so that a reconcile that repeats it (the status write was
/// lost) finds the one it made, and a later join or drain of the same brokers gets a new one.
fn new_operation(cluster: &str, operation: Operation, brokers: &[(i32, String)], nonce: &str) -> NewOperation {
    let key: Vec<String> = brokers.iter().map(|(id, uid)| format!("{id}/{uid}")).collect();
    NewOperation {
        name: operation_name(cluster, operation, &key, nonce),
        operation,
        brokers: brokers.iter().map(|(id, _)| *id).collect(),
        log_dirs: Vec::new(),
        rebalance_disk: false,
    }
}

/// `<cluster>-<kind>-<hash of key and nonce>`: the same for the same work, so a reconcile
/// that repeats a creation finds the operation it made.
pub(super) fn operation_name(cluster: &str, operation: Operation, key: &[String], nonce: &str) -> String {
    let hash = koperator_shared::hash::fnv1a64_hex(format!("{}|{nonce}", key.join(",")).as_bytes());
    let kind = operation.as_str().replace('_', "");
    format!("{cluster}-{kind}-{}", &hash[..hash.len().min(10)])
}

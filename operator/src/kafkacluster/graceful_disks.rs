//! Graceful disk changes through Cruise Control, decided inside the plan (Koperator runs them
//! in its `CruiseControlTask` controller): a disk added to a broker of a running cluster gets
//! partitions through a `rebalance` CruiseControlOperation with `rebalance_disk=true` once the
//! broker runs with it; a disk removed from a broker's storage configs stays mounted and in
//! `log.dirs` while a `remove_disks` operation moves its replicas to the broker's other disks,
//! and leaves the broker only when **Kafka's own log-dir report** shows it empty; its PVC is
//! deleted once the restarted broker no longer mounts it. Each disk's step is in
//! `status.brokersState[<id>].gracefulActionState.volumeStates[<mountPath>]` with Koperator's
//! state names.
//!
//! Safer than Koperator where it matters: Koperator drops the disk from `log.dirs` and deletes
//! its PVC on Cruise Control's word alone (and counts a vanished operation as done); here a
//! drain reported done while Kafka still stores replicas on the disk runs again, and without
//! Cruise Control a disk holding replicas is kept until the user moves them or forces the
//! removal ([`FORCE_BROKER_REMOVAL`](super::FORCE_BROKER_REMOVAL), which keeps the PVC). Pure:
//! table-tested.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::LocalObjectReference;
use kube::ResourceExt;

use koperator_shared::api::cruisecontroloperation::{CruiseControlOperation, Operation};
use koperator_shared::api::kafkacluster::{BrokerState, VolumeState};
use koperator_shared::kafka::LogDir;
use koperator_shared::render::properties::LOG_DIR_SUFFIX;

use super::graceful::{
    CONFIRM_SECS, MAX_DRAINS, NewOperation, Phase, degraded, finished_before, of_kind, operation_message,
    operation_name, phase,
};

/// Koperator's `CruiseControlVolumeState` values.
pub mod volume {
    pub const REBALANCE_REQUIRED: &str = "GracefulDiskRebalanceRequired";
    pub const REBALANCE_SCHEDULED: &str = "GracefulDiskRebalanceScheduled";
    pub const REBALANCE_RUNNING: &str = "GracefulDiskRebalanceRunning";
    pub const REBALANCE_SUCCEEDED: &str = "GracefulDiskRebalanceSucceeded";
    pub const REBALANCE_COMPLETED_WITH_ERROR: &str = "GracefulDiskRebalanceCompletedWithError";
    pub const REBALANCE_PAUSED: &str = "GracefulDiskRebalancePaused";
    pub const REMOVAL_REQUIRED: &str = "GracefulDiskRemovalRequired";
    pub const REMOVAL_SCHEDULED: &str = "GracefulDiskRemovalScheduled";
    pub const REMOVAL_RUNNING: &str = "GracefulDiskRemovalRunning";
    pub const REMOVAL_SUCCEEDED: &str = "GracefulDiskRemovalSucceeded";
    pub const REMOVAL_COMPLETED_WITH_ERROR: &str = "GracefulDiskRemovalCompletedWithError";
    pub const REMOVAL_PAUSED: &str = "GracefulDiskRemovalPaused";
}
use volume::*;

/// A broker the spec wants, with its disks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerDisks {
    /// Broker id.
    pub id: i32,
    /// Mount paths of the PVC-backed disks the spec gives it, in order.
    pub wanted: Vec<String>,
    /// Mount paths of its live PVCs (ours, not being deleted).
    pub live: BTreeSet<String>,
    /// Each live PVC's UID by mount path (a disk made again is a new disk).
    pub uids: BTreeMap<String, String>,
    /// Mount paths whose log directory its live configuration (`log.dirs` of its ConfigMap)
    /// lists.
    pub configured: BTreeSet<String>,
    /// It has the broker role (controller-only nodes store no partitions).
    pub broker: bool,
}

/// What the decision reads.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The KafkaCluster's name (operation names start with it).
    pub cluster: &'a str,
    /// Cruise Control runs for the cluster.
    pub cruise_control: bool,
    /// Cruise Control knows each broker's disks one by one (JBOD capacities), which
    /// `remove_disks` and a disk rebalance need.
    pub jbod: bool,
    /// The user forces removal without draining (the PVC is then kept).
    pub force: bool,
    /// The status' broker states before this reconcile.
    pub old: &'a BTreeMap<String, BrokerState>,
    /// The brokers the spec wants.
    pub brokers: &'a [BrokerDisks],
    /// The cluster's CruiseControlOperations by name.
    pub operations: &'a BTreeMap<String, CruiseControlOperation>,
    /// The log directories each broker reports (`None`, or a broker missing: not read).
    pub log_dirs: Option<&'a BTreeMap<i32, Vec<LogDir>>>,
    /// Now (unix seconds).
    pub now: u64,
    /// Every wanted broker runs its current spec and is Ready: only then does an operation
    /// start.
    pub quiet: bool,
}

/// What to do about disks this reconcile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// Volume states of each wanted broker (mount path to state).
    pub states: BTreeMap<i32, BTreeMap<String, VolumeState>>,
    /// Removed disks that stay mounted and in `log.dirs` (not drained yet), by broker.
    pub retain: BTreeMap<i32, BTreeSet<String>>,
    /// Removed disks Kafka confirmed empty: their PVC goes once the broker's Pod no longer
    /// mounts it.
    pub release: BTreeMap<i32, BTreeSet<String>>,
    /// Operations to create.
    pub create: Vec<NewOperation>,
    /// Why disks wait, one line each.
    pub waiting: Vec<String>,
    /// Those of `waiting` that cannot go on by themselves (`Degraded`).
    pub stuck: Vec<String>,
    /// An action is under way: look again soon.
    pub busy: bool,
}

impl Decision {
    /// The disk operation moving partitions now, if any (brokers do not restart meanwhile).
    pub fn moving(&self) -> Option<&str> {
        self.states
            .values()
            .flat_map(|m| m.values())
            .find(|v| {
                v.cruise_control_volume_state == REBALANCE_RUNNING || v.cruise_control_volume_state == REMOVAL_RUNNING
            })
            .and_then(reference)
            .map(String::as_str)
    }
}

/// The log directory Kafka uses on the disk mounted at `mount_path`.
pub fn log_dir(mount_path: &str) -> String {
    format!("{}{LOG_DIR_SUFFIX}", mount_path.trim_end_matches('/'))
}

/// What Kafka reports of one disk of one broker.
enum Seen<'a> {
    /// The broker's log directories were not read (or the disk is offline).
    Unknown,
    /// The broker runs without it.
    Unused,
    /// The broker uses it.
    Used(&'a LogDir),
    /// The node uses it and stores no partitions (controller-only).
    Empty,
}

/// What Kafka reports of `b`'s disk at `mount_path`. A directory its answer leaves out counts
/// as unused only when the broker's configuration does not list it either (an answer without
/// a configured directory is not trusted).
fn seen<'a>(i: &Inputs<'a>, b: &BrokerDisks, mount_path: &str) -> Seen<'a> {
    let Some(dirs) = i.log_dirs.and_then(|m| m.get(&b.id)) else { return Seen::Unknown };
    let want = log_dir(mount_path);
    match dirs.iter().find(|d| d.path.trim_end_matches('/') == want) {
        None if b.configured.contains(mount_path) => Seen::Unknown,
        None => Seen::Unused,
        Some(d) if d.error.is_some() => Seen::Unknown,
        Some(d) => Seen::Used(d),
    }
}

/// Decides the graceful disk actions of one reconcile.
pub fn decide(i: Inputs<'_>) -> Decision {
    let mut d = Decision::default();
    let mut rebalance = Vec::new();
    let mut rebalance_nonce = Vec::new();
    let mut removal = Vec::new();
    let mut removal_nonce = Vec::new();
    for b in i.brokers {
        let prev_states = i
            .old
            .get(&b.id.to_string())
            .and_then(|s| s.graceful_action_state.volume_states.clone())
            .unwrap_or_default();
        // Disks of a broker whose disks were never recorded (a new broker, a new cluster, a
        // cluster from before volume states) are where its partitions already are.
        let recorded = !prev_states.is_empty();
        let mut states = BTreeMap::new();
        for mount in &b.wanted {
            let prev = prev_states.get(mount).cloned().unwrap_or_default();
            let s = prev.cruise_control_volume_state.as_str();
            let op = reference(&prev).and_then(|r| i.operations.get(r)).filter(|o| of_kind(o, Operation::Rebalance));
            let moves = i.cruise_control && b.broker;
            let mut next = match s {
                "" if recorded && moves => state(REBALANCE_REQUIRED),
                "" => state(REBALANCE_SUCCEEDED),
                // Put back while it was being removed: it gets partitions again.
                s if s.starts_with("GracefulDiskRemoval") => {
                    state(if moves { REBALANCE_REQUIRED } else { REBALANCE_SUCCEEDED })
                }
                REBALANCE_REQUIRED | REBALANCE_SUCCEEDED => prev.clone(),
                // Scheduled, Running, CompletedWithError or Paused: follow the operation; one
                // that is gone has nothing more to do (spreading is never a safety matter).
                _ => {
                    let to = match op.map(|op| (op, phase(op))) {
                        Some((_, Some(p))) => rebalance_state(p),
                        Some((_, None)) => REBALANCE_SCHEDULED,
                        None => REBALANCE_SUCCEEDED,
                    };
                    VolumeState { cruise_control_volume_state: to.into(), ..prev.clone() }
                }
            };
            if next.cruise_control_volume_state == REBALANCE_REQUIRED {
                if !moves {
                    next = state(REBALANCE_SUCCEEDED);
                } else if matches!(seen(&i, b, mount), Seen::Used(_)) {
                    rebalance.push((b.id, mount.clone(), b.uids.get(mount).cloned().unwrap_or_default()));
                    rebalance_nonce.extend(reference(&prev).cloned());
                } else {
                    d.waiting.push(format!(
                        "disk {mount} of broker {} is rebalanced onto once Kafka reports it in use",
                        b.id
                    ));
                }
            }
            d.busy |= in_progress(&next.cruise_control_volume_state);
            states.insert(mount.clone(), next);
        }

        let removed = b.live.iter().filter(|m| !b.wanted.contains(m));
        for mount in removed {
            let mut prev = prev_states.get(mount).cloned().unwrap_or_default();
            // A removal starts afresh: the operation of an earlier step is not its drain.
            if !prev.cruise_control_volume_state.starts_with("GracefulDiskRemoval") {
                prev.cruise_control_operation_reference = None;
            }
            let s = prev.cruise_control_volume_state.as_str();
            let op = reference(&prev).and_then(|r| i.operations.get(r)).filter(|o| of_kind(o, Operation::RemoveDisks));
            let current = match (s.starts_with("GracefulDiskRemoval"), op) {
                (false, _) => "",
                (true, Some(op)) => phase(op).map_or(REMOVAL_SCHEDULED, removal_state),
                (true, None) if s == REMOVAL_SUCCEEDED => REMOVAL_SUCCEEDED,
                (true, None) => "",
            };
            let in_flight = !current.is_empty() && current != REMOVAL_SUCCEEDED && current != REMOVAL_PAUSED;
            // A controller-only node stores no partitions: its configuration says whether it
            // still uses the disk (it is not asked for its log directories).
            let seen = match b.broker {
                true => seen(&i, b, mount),
                false if b.configured.contains(mount) => Seen::Empty,
                false => Seen::Unused,
            };
            let held = match seen {
                Seen::Used(dir) => Some(dir.replicas),
                Seen::Empty => Some(0),
                _ => None,
            };
            // Drained and confirmed before: out of log.dirs for good (also while the broker
            // restarts and cannot tell), unless Kafka placed replicas on it again meanwhile.
            // Once the broker runs without it, its PVC may go.
            if s == REMOVAL_SUCCEEDED && !in_flight && held.unwrap_or(0) == 0 {
                if matches!(seen, Seen::Unused) {
                    d.release.entry(b.id).or_default().insert(mount.clone());
                }
                states.insert(mount.clone(), prev);
                d.busy = true;
                continue;
            }
            // Not used by the broker and never drained by us (forced, or removed before this
            // operator drained disks): left alone, its PVC kept.
            if matches!(seen, Seen::Unused) {
                continue;
            }
            if i.force {
                continue;
            }
            // Known empty, no drain under way: it leaves log.dirs (a restart); its PVC goes
            // once the broker no longer mounts it.
            if held == Some(0) && !in_flight {
                states.insert(
                    mount.clone(),
                    VolumeState { cruise_control_volume_state: REMOVAL_SUCCEEDED.into(), ..prev },
                );
                d.busy = true;
                continue;
            }
            d.retain.entry(b.id).or_default().insert(mount.clone());
            d.busy = true;
            let holds = match held {
                Some(0) => "holds no partition replica any more".to_string(),
                Some(k) => format!("still holds {k} partition replica(s)"),
                None => "may hold partition replicas (Kafka's log directories of the broker could not be read)".into(),
            };
            let disk = format!("disk {mount} of broker {}", b.id);
            if !i.cruise_control || !i.jbod {
                let why = format!(
                    "{disk} {holds} and {}; move them with kafka-reassign-partitions (log_dirs), or annotate the \
                     KafkaCluster with {}=\"true\" to take the disk out anyway (its PVC is kept)",
                    match i.cruise_control {
                        false => "no Cruise Control runs for this cluster to move them (spec.cruiseControlConfig)",
                        true =>
                            "Cruise Control cannot move them: spec.cruiseControlConfig.capacityConfig gives a broker one DISK size, not one per log directory",
                    },
                    super::FORCE_BROKER_REMOVAL
                );
                d.stuck.push(why.clone());
                d.waiting.push(why);
                states.insert(mount.clone(), prev);
                continue;
            }
            let mut next = prev.clone();
            next.cruise_control_volume_state = if current.is_empty() { REMOVAL_REQUIRED } else { current }.into();
            let drains = completed_drains(i.operations, b.id, &log_dir(mount));
            let why = match next.cruise_control_volume_state.as_str() {
                REMOVAL_SUCCEEDED
                    if held.is_some() && finished_before(op, i.now, CONFIRM_SECS) && drains >= MAX_DRAINS =>
                {
                    // Succeeded means Kafka confirmed the disk empty; until then it is under way.
                    next.cruise_control_volume_state = REMOVAL_RUNNING.into();
                    let why = format!(
                        "{disk} {holds} after {drains} completed Cruise Control drains; move them with \
                         kafka-reassign-partitions, or annotate the KafkaCluster with {}=\"true\" to take it out anyway",
                        super::FORCE_BROKER_REMOVAL
                    );
                    d.stuck.push(why.clone());
                    why
                }
                REMOVAL_SUCCEEDED if held.is_some() && finished_before(op, i.now, CONFIRM_SECS) => {
                    next.cruise_control_volume_state = REMOVAL_REQUIRED.into();
                    format!("{disk} {holds} after Cruise Control drained it; draining it again")
                }
                REMOVAL_SUCCEEDED => {
                    next.cruise_control_volume_state = REMOVAL_RUNNING.into();
                    if held.is_none() {
                        d.stuck.push(format!("{disk} is drained by Cruise Control; {holds}"));
                    }
                    format!("{disk} is drained; waiting for Kafka's log directories to confirm it")
                }
                other => {
                    let why = format!(
                        "{disk} {holds}; Cruise Control drains it ({other}{})",
                        op.map(operation_message).unwrap_or_default()
                    );
                    if held.is_none()
                        || op.is_some_and(degraded)
                        || other == REMOVAL_PAUSED
                        || other == REMOVAL_COMPLETED_WITH_ERROR
                    {
                        d.stuck.push(why.clone());
                    }
                    why
                }
            };
            if next.cruise_control_volume_state == REMOVAL_REQUIRED {
                removal.push((b.id, mount.clone(), b.uids.get(mount).cloned().unwrap_or_default()));
                removal_nonce.extend(reference(&prev).cloned());
            }
            d.waiting.push(why);
            states.insert(mount.clone(), next);
        }
        d.states.insert(b.id, states);
    }
    for (kind, disks, nonce, to) in [
        (Operation::RemoveDisks, removal, removal_nonce, REMOVAL_SCHEDULED),
        (Operation::Rebalance, rebalance, rebalance_nonce, REBALANCE_SCHEDULED),
    ] {
        if disks.is_empty() {
            continue;
        }
        if !i.quiet {
            d.waiting.push(format!(
                "{} of disk(s) {} waits until every broker runs its current spec and is Ready",
                kind.as_str(),
                describe(&disks)
            ));
            continue;
        }
        let key: Vec<String> = disks.iter().map(|(id, m, uid)| format!("{id}/{m}/{uid}")).collect();
        let name = operation_name(i.cluster, kind, &key, &nonce.join(","));
        let mut brokers: Vec<i32> = disks.iter().map(|(id, _, _)| *id).collect();
        brokers.dedup();
        for (id, mount, _) in &disks {
            let s = VolumeState {
                cruise_control_volume_state: to.into(),
                cruise_control_operation_reference: Some(LocalObjectReference { name: name.clone() }),
            };
            d.states.entry(*id).or_default().insert(mount.clone(), s);
        }
        let log_dirs = match kind {
            Operation::RemoveDisks => disks.iter().map(|(id, m, _)| (*id, log_dir(m))).collect(),
            _ => Vec::new(),
        };
        d.create.push(NewOperation { name, operation: kind, brokers, log_dirs, rebalance_disk: i.jbod });
    }
    // An operation that exists without its task (the operator stopped between the two
    // writes) gets its task now.
    let mut untasked: BTreeMap<String, NewOperation> = BTreeMap::new();
    for (id, states) in &d.states {
        for (mount, v) in states {
            let Some(name) = reference(v) else { continue };
            let Some(op) = i.operations.get(name) else { continue };
            if op.status.as_ref().and_then(|st| st.current_task.as_ref()).is_some()
                || d.create.iter().any(|c| &c.name == name)
            {
                continue;
            }
            let removal = v.cruise_control_volume_state.starts_with("GracefulDiskRemoval");
            let entry = untasked.entry(name.clone()).or_insert_with(|| NewOperation {
                name: op.name_any(),
                operation: if removal { Operation::RemoveDisks } else { Operation::Rebalance },
                brokers: Vec::new(),
                log_dirs: Vec::new(),
                rebalance_disk: i.jbod,
            });
            if !entry.brokers.contains(id) {
                entry.brokers.push(*id);
            }
            if removal {
                entry.log_dirs.push((*id, log_dir(mount)));
            }
        }
    }
    d.create.extend(untasked.into_values());
    d
}

fn describe(disks: &[(i32, String, String)]) -> String {
    disks.iter().map(|(id, m, _)| format!("{id}:{m}")).collect::<Vec<_>>().join(",")
}

fn state(s: &str) -> VolumeState {
    VolumeState { cruise_control_volume_state: s.into(), ..Default::default() }
}

fn reference(v: &VolumeState) -> Option<&String> {
    v.cruise_control_operation_reference.as_ref().map(|r| &r.name).filter(|n| !n.is_empty())
}

pub(crate) fn in_progress(s: &str) -> bool {
    !s.is_empty() && s != REBALANCE_SUCCEEDED && s != REMOVAL_SUCCEEDED
}

fn rebalance_state(p: Phase) -> &'static str {
    match p {
        Phase::Running => REBALANCE_RUNNING,
        Phase::Succeeded => REBALANCE_SUCCEEDED,
        Phase::Paused => REBALANCE_PAUSED,
        Phase::Failed => REBALANCE_COMPLETED_WITH_ERROR,
    }
}

fn removal_state(p: Phase) -> &'static str {
    match p {
        Phase::Running => REMOVAL_RUNNING,
        Phase::Succeeded => REMOVAL_SUCCEEDED,
        Phase::Paused => REMOVAL_PAUSED,
        Phase::Failed => REMOVAL_COMPLETED_WITH_ERROR,
    }
}

/// Completed `remove_disks` operations that drained `dir` of broker `id`.
fn completed_drains(ops: &BTreeMap<String, CruiseControlOperation>, id: i32, dir: &str) -> usize {
    let pair = format!("{id}-{dir}");
    ops.values()
        .filter_map(|o| o.status.as_ref()?.current_task.as_ref())
        .filter(|t| t.operation == Operation::RemoveDisks && t.state.as_deref() == Some("Completed"))
        .filter(|t| {
            let pairs = t.parameters.as_ref().and_then(|p| p.get("brokerid_and_logdirs"));
            pairs.is_some_and(|p| p.split(',').any(|x| x.trim() == pair))
        })
        .count()
}

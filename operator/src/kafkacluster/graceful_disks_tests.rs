//! Table tests of the graceful disk decision.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::LocalObjectReference;
use koperator_shared::api::cruisecontroloperation::{CruiseControlOperation, Operation};
use koperator_shared::api::kafkacluster::{BrokerState, GracefulActionState, VolumeState};
use koperator_shared::kafka::LogDir;

use super::graceful::{CONFIRM_SECS, MAX_DRAINS};
use super::graceful_disks::volume::*;
use super::graceful_disks::{BrokerDisks, Decision, Inputs, decide};
use super::graceful_tests::operation as op;

const NOW: u64 = 1_800_000_000;
const A: &str = "/kafka-logs";
const B: &str = "/kafka-logs2";

/// Broker `id` wanting `wanted` and having live PVCs for `live`, all in its configuration.
fn broker(id: i32, wanted: &[&str], live: &[&str]) -> BrokerDisks {
    BrokerDisks {
        id,
        wanted: wanted.iter().map(|s| s.to_string()).collect(),
        live: live.iter().map(|s| s.to_string()).collect(),
        uids: live.iter().map(|s| (s.to_string(), format!("uid{s}"))).collect(),
        configured: live.iter().map(|s| s.to_string()).collect(),
        broker: true,
    }
}

/// Broker 0's previous volume states.
fn old(entries: &[(&str, &str, Option<&str>)]) -> BTreeMap<String, BrokerState> {
    let volumes = entries
        .iter()
        .map(|(m, s, r)| {
            let v = VolumeState {
                cruise_control_volume_state: s.to_string(),
                cruise_control_operation_reference: r.map(|n| LocalObjectReference { name: n.into() }),
            };
            (m.to_string(), v)
        })
        .collect();
    let g = GracefulActionState { volume_states: Some(volumes), ..Default::default() };
    BTreeMap::from([("0".to_string(), BrokerState { graceful_action_state: g, ..Default::default() })])
}

fn dirs(entries: &[(&str, usize)]) -> Vec<LogDir> {
    entries.iter().map(|(m, n)| LogDir { path: format!("{m}/kafka"), error: None, replicas: *n, bytes: 0 }).collect()
}

struct Case {
    cc: bool,
    jbod: bool,
    force: bool,
    old: BTreeMap<String, BrokerState>,
    brokers: Vec<BrokerDisks>,
    ops: BTreeMap<String, CruiseControlOperation>,
    log_dirs: Option<BTreeMap<i32, Vec<LogDir>>>,
    quiet: bool,
}

impl Case {
    /// Broker 0 of a running cluster had disks A and B (recorded); the spec now lists `wanted`.
    fn new(wanted: &[&str]) -> Self {
        Case {
            cc: true,
            jbod: true,
            force: false,
            old: old(&[(A, REBALANCE_SUCCEEDED, None), (B, REBALANCE_SUCCEEDED, None)]),
            brokers: vec![broker(0, wanted, &[A, B])],
            ops: BTreeMap::new(),
            log_dirs: Some(BTreeMap::from([(0, dirs(&[(A, 10), (B, 7)]))])),
            quiet: true,
        }
    }
    fn with_op(mut self, o: CruiseControlOperation) -> Self {
        self.ops.insert(o.metadata.name.clone().unwrap(), o);
        self
    }
    fn run(&self) -> Decision {
        decide(Inputs {
            cluster: "kafka",
            cruise_control: self.cc,
            jbod: self.jbod,
            force: self.force,
            old: &self.old,
            brokers: &self.brokers,
            operations: &self.ops,
            log_dirs: self.log_dirs.as_ref(),
            now: NOW,
            quiet: self.quiet,
        })
    }
}

fn volume(d: &Decision, mount: &str) -> String {
    d.states[&0].get(mount).map(|v| v.cruise_control_volume_state.clone()).unwrap_or_default()
}

fn retained(d: &Decision) -> BTreeSet<String> {
    d.retain.get(&0).cloned().unwrap_or_default()
}

#[test]
fn disks_of_a_new_cluster_or_broker_move_nothing() {
    let mut c = Case::new(&[A, B]);
    c.old = BTreeMap::new();
    c.brokers = vec![broker(0, &[A, B], &[]), broker(1, &[A], &[])];
    let d = c.run();
    assert!(d.create.is_empty() && !d.busy, "{d:?}");
    assert_eq!((volume(&d, A), volume(&d, B)), (REBALANCE_SUCCEEDED.into(), REBALANCE_SUCCEEDED.into()));
}

#[test]
fn an_added_disk_is_rebalanced_onto_once_kafka_uses_it() {
    let mut c = Case::new(&[A, B, "/kafka-logs3"]);
    c.brokers[0].live.insert("/kafka-logs3".into());
    c.brokers[0].uids.insert("/kafka-logs3".into(), "uid3".into());
    // The broker has not restarted onto it yet.
    let d = c.run();
    assert_eq!(volume(&d, "/kafka-logs3"), REBALANCE_REQUIRED);
    assert!(d.create.is_empty() && d.busy);
    assert!(d.waiting[0].contains("once Kafka reports it in use"), "{:?}", d.waiting);
    // Restarted with it: one rebalance of disks, Koperator's parameters.
    c.log_dirs = Some(BTreeMap::from([(0, dirs(&[(A, 10), (B, 7), ("/kafka-logs3", 0)]))]));
    c.old = old(&[
        (A, REBALANCE_SUCCEEDED, None),
        (B, REBALANCE_SUCCEEDED, None),
        ("/kafka-logs3", REBALANCE_REQUIRED, None),
    ]);
    let d = c.run();
    assert_eq!(d.create.len(), 1, "{d:?}");
    let p = d.create[0].parameters();
    assert_eq!(d.create[0].operation, Operation::Rebalance);
    assert!(d.create[0].name.starts_with("kafka-rebalance-"), "{}", d.create[0].name);
    assert_eq!((p["rebalance_disk"].as_str(), p["destination_broker_ids"].as_str()), ("true", "0"));
    assert_eq!(p["exclude_recently_removed_brokers"], "true");
    assert_eq!(volume(&d, "/kafka-logs3"), REBALANCE_SCHEDULED);
    // Not during a roll.
    c.quiet = false;
    assert!(c.run().create.is_empty());
}

#[test]
fn a_rebalance_is_followed_and_a_vanished_one_counts_as_done() {
    let mut c = Case::new(&[A, B]);
    c.old = old(&[(A, REBALANCE_SUCCEEDED, None), (B, REBALANCE_SCHEDULED, Some("kafka-rebalance-1"))]);
    let c = c.with_op(op("kafka-rebalance-1", Operation::Rebalance, Some("InExecution"), None, &[]));
    let d = c.run();
    assert_eq!(volume(&d, B), REBALANCE_RUNNING);
    assert_eq!(d.moving(), Some("kafka-rebalance-1"));
    let mut c = c;
    c.ops.clear();
    let d = c.run();
    assert_eq!(volume(&d, B), REBALANCE_SUCCEEDED);
    assert!(!d.busy);
}

#[test]
fn a_removed_disk_stays_until_cruise_control_drained_it() {
    let c = Case::new(&[A]);
    let d = c.run();
    assert_eq!(retained(&d), BTreeSet::from([B.to_string()]), "kept mounted and in log.dirs");
    assert_eq!(d.create.len(), 1);
    assert_eq!(d.create[0].operation, Operation::RemoveDisks);
    assert_eq!(
        d.create[0].parameters(),
        BTreeMap::from([("brokerid_and_logdirs".into(), "0-/kafka-logs2/kafka".into())])
    );
    assert_eq!(volume(&d, B), REMOVAL_SCHEDULED);
    assert!(d.release.is_empty() && d.busy);
    // Running: still kept, no restart (moving).
    let name = d.create[0].name.clone();
    let mut c = c.with_op(op(&name, Operation::RemoveDisks, Some("InExecution"), None, &[]));
    c.old = old(&[(A, REBALANCE_SUCCEEDED, None), (B, REMOVAL_SCHEDULED, Some(&name))]);
    let d = c.run();
    assert_eq!((volume(&d, B), retained(&d).len()), (REMOVAL_RUNNING.into(), 1));
    assert_eq!(d.moving(), Some(name.as_str()));
    // Cruise Control done but Kafka still stores replicas there: kept, still under way
    // (Succeeded only once Kafka shows it empty).
    let c = c.with_op(op(&name, Operation::RemoveDisks, Some("Completed"), Some(NOW - 5), &[]));
    let d = c.run();
    assert_eq!((volume(&d, B), retained(&d).len()), (REMOVAL_RUNNING.into(), 1));
    assert!(d.waiting.iter().any(|w| w.contains("waiting for Kafka's log directories")), "{:?}", d.waiting);
    // Kafka shows it empty: out of log.dirs (a restart), PVC not released yet (still used).
    let mut c = c;
    c.old = old(&[(A, REBALANCE_SUCCEEDED, None), (B, REMOVAL_SUCCEEDED, Some(&name))]);
    c.log_dirs = Some(BTreeMap::from([(0, dirs(&[(A, 17), (B, 0)]))]));
    let d = c.run();
    assert!(retained(&d).is_empty() && d.release.is_empty(), "{d:?}");
    assert_eq!(volume(&d, B), REMOVAL_SUCCEEDED);
    // While the broker restarts its log directories cannot be read: it stays out.
    c.log_dirs = Some(BTreeMap::new());
    assert!(retained(&c.run()).is_empty());
    // Restarted without it (its configuration no longer lists it): its PVC may go.
    c.log_dirs = Some(BTreeMap::from([(0, dirs(&[(A, 17)]))]));
    assert!(c.run().release.is_empty(), "an answer without a configured disk is not trusted");
    c.brokers[0].configured.remove(B);
    let d = c.run();
    assert_eq!(d.release, BTreeMap::from([(0, BTreeSet::from([B.to_string()]))]));
}

#[test]
fn a_drain_that_left_replicas_runs_again_then_asks_the_user() {
    let name = "kafka-removedisks-1";
    let done = |n: &str| {
        op(
            n,
            Operation::RemoveDisks,
            Some("Completed"),
            Some(NOW - CONFIRM_SECS - 1),
            &[("brokerid_and_logdirs", "0-/kafka-logs2/kafka")],
        )
    };
    let mut c = Case::new(&[A]).with_op(done(name));
    c.old = old(&[(A, REBALANCE_SUCCEEDED, None), (B, REMOVAL_SUCCEEDED, Some(name))]);
    let d = c.run();
    assert_eq!(d.create.len(), 1, "drained again: {d:?}");
    assert_ne!(d.create[0].name, name, "a new operation");
    assert!(d.stuck.is_empty());
    for k in 2..=MAX_DRAINS {
        c = c.with_op(done(&format!("kafka-removedisks-{k}")));
    }
    let d = c.run();
    assert!(d.create.is_empty() && !d.stuck.is_empty(), "{d:?}");
    assert_eq!(retained(&d).len(), 1);
}

#[test]
fn an_empty_removed_disk_goes_at_once_and_unknown_ones_stay() {
    let mut c = Case::new(&[A]);
    c.log_dirs = Some(BTreeMap::from([(0, dirs(&[(A, 10), (B, 0)]))]));
    let d = c.run();
    assert!(retained(&d).is_empty() && d.create.is_empty());
    assert_eq!(volume(&d, B), REMOVAL_SUCCEEDED);
    // The broker's log directories unknown: kept, Degraded.
    c.log_dirs = None;
    let d = c.run();
    assert_eq!(retained(&d).len(), 1);
    assert!(!d.stuck.is_empty(), "{d:?}");
}

#[test]
fn without_cruise_control_a_disk_holding_replicas_waits_unless_forced() {
    let mut c = Case::new(&[A]);
    c.cc = false;
    let d = c.run();
    assert_eq!(retained(&d).len(), 1);
    assert!(d.create.is_empty());
    assert!(d.stuck[0].contains("no Cruise Control") && d.stuck[0].contains("force-broker-removal"), "{:?}", d.stuck);
    c.force = true;
    let d = c.run();
    assert!(retained(&d).is_empty() && d.release.is_empty() && d.stuck.is_empty(), "forced out, PVC kept: {d:?}");
}

#[test]
fn a_disk_the_broker_never_drained_and_does_not_use_is_left_alone() {
    // Removed before volume states existed (or forced): Kafka does not use it; PVC kept.
    let mut c = Case::new(&[A]);
    c.brokers[0].configured.remove(B);
    c.log_dirs = Some(BTreeMap::from([(0, dirs(&[(A, 10)]))]));
    let d = c.run();
    assert!(retained(&d).is_empty() && d.release.is_empty() && d.create.is_empty(), "{d:?}");
    assert!(!d.states[&0].contains_key(B));
}

#[test]
fn a_disk_put_back_during_its_removal_is_rebalanced_onto() {
    let mut c = Case::new(&[A, B]);
    c.old = old(&[(A, REBALANCE_SUCCEEDED, None), (B, REMOVAL_SUCCEEDED, Some("kafka-removedisks-1"))]);
    let d = c.run();
    assert_eq!(volume(&d, B), REBALANCE_SCHEDULED);
    assert_eq!(d.create[0].operation, Operation::Rebalance);
}

#[test]
fn an_operation_made_without_its_task_gets_it() {
    let mut c = Case::new(&[A]);
    let mut o = CruiseControlOperation::new("kafka-removedisks-1", Default::default());
    o.status = None;
    c = c.with_op(o);
    c.old = old(&[(A, REBALANCE_SUCCEEDED, None), (B, REMOVAL_SCHEDULED, Some("kafka-removedisks-1"))]);
    let d = c.run();
    assert_eq!(d.create.len(), 1, "{d:?}");
    assert_eq!(d.create[0].name, "kafka-removedisks-1");
    assert_eq!(d.create[0].log_dirs, vec![(0, "/kafka-logs2/kafka".to_string())]);
}

#[test]
fn retention_does_not_depend_on_quiet() {
    for quiet in [true, false] {
        let mut c = Case::new(&[A]);
        c.quiet = quiet;
        assert_eq!(retained(&c.run()).len(), 1);
    }
}

#[test]
fn without_per_disk_capacities_a_rebalance_moves_between_brokers_and_a_removal_waits() {
    let mut c = Case::new(&[A, B, "/kafka-logs3"]);
    c.jbod = false;
    c.brokers[0].live.insert("/kafka-logs3".into());
    c.log_dirs = Some(BTreeMap::from([(0, dirs(&[(A, 10), (B, 7), ("/kafka-logs3", 0)]))]));
    c.old = old(&[
        (A, REBALANCE_SUCCEEDED, None),
        (B, REBALANCE_SUCCEEDED, None),
        ("/kafka-logs3", REBALANCE_REQUIRED, None),
    ]);
    let p = c.run().create[0].parameters();
    assert!(!p.contains_key("rebalance_disk") && p["destination_broker_ids"] == "0", "{p:?}");
    let mut c = Case::new(&[A]);
    c.jbod = false;
    let d = c.run();
    assert!(d.create.is_empty() && retained(&d).len() == 1, "{d:?}");
    assert!(d.stuck[0].contains("capacityConfig"), "{:?}", d.stuck);
}

#[test]
fn cruise_control_reporting_done_is_not_enough_while_kafka_cannot_be_read() {
    // Drained by Cruise Control, then the broker's log directories unreadable twice: the disk
    // stays (Succeeded is kept for what Kafka confirmed).
    let name = "kafka-removedisks-1";
    let mut c = Case::new(&[A]).with_op(op(name, Operation::RemoveDisks, Some("Completed"), Some(NOW - 5), &[]));
    c.old = old(&[(A, REBALANCE_SUCCEEDED, None), (B, REMOVAL_RUNNING, Some(name))]);
    c.log_dirs = None;
    for _ in 0..2 {
        let d = c.run();
        assert_eq!((volume(&d, B), retained(&d).len()), (REMOVAL_RUNNING.into(), 1), "{d:?}");
        assert!(d.release.is_empty() && !d.stuck.is_empty());
        c.old = old(&[(A, REBALANCE_SUCCEEDED, None), (B, REMOVAL_RUNNING, Some(name))]);
    }
}

#[test]
fn a_removal_does_not_follow_the_rebalance_that_filled_the_disk() {
    // The disk was rebalanced onto (operation R, completed); removed while a roll runs.
    let mut c = Case::new(&[A]).with_op(op("R", Operation::Rebalance, Some("Completed"), Some(NOW - 999), &[]));
    c.old = old(&[(A, REBALANCE_SUCCEEDED, None), (B, REBALANCE_SUCCEEDED, Some("R"))]);
    c.quiet = false;
    let d = c.run();
    let v = &d.states[&0][B];
    assert_eq!(
        (v.cruise_control_volume_state.as_str(), v.cruise_control_operation_reference.is_none()),
        (REMOVAL_REQUIRED, true)
    );
    // Even if a stale reference was kept, R is no drain.
    c.old = old(&[(A, REBALANCE_SUCCEEDED, None), (B, REMOVAL_REQUIRED, Some("R"))]);
    c.log_dirs = None;
    let d = c.run();
    assert_eq!(volume(&d, B), REMOVAL_REQUIRED);
    assert_eq!(retained(&d).len(), 1);
}

#[test]
fn a_disk_made_again_gets_a_new_rebalance() {
    let mut c = Case::new(&[A, B]);
    c.old = old(&[(A, REBALANCE_SUCCEEDED, None), (B, REBALANCE_REQUIRED, None)]);
    let first = c.run().create[0].name.clone();
    c.brokers[0].uids.insert(B.into(), "another".into());
    assert_ne!(c.run().create[0].name, first, "the same name would find the old, completed operation");
}

#[test]
fn a_controller_only_node_lets_a_disk_go_without_asking_kafka() {
    let mut c = Case::new(&[A]);
    c.brokers[0].broker = false;
    c.log_dirs = None;
    let d = c.run();
    assert!(retained(&d).is_empty() && d.create.is_empty(), "{d:?}");
    assert_eq!(volume(&d, B), REMOVAL_SUCCEEDED);
    c.old = old(&[(A, REBALANCE_SUCCEEDED, None), (B, REMOVAL_SUCCEEDED, None)]);
    c.brokers[0].configured.remove(B);
    assert_eq!(c.run().release, BTreeMap::from([(0, BTreeSet::from([B.to_string()]))]));
}

#[test]
fn an_unreachable_cruise_control_keeps_the_disk_and_says_why() {
    let name = "kafka-removedisks-1";
    let mut o = op(name, Operation::RemoveDisks, None, None, &[]);
    let conditions = &mut o.status.as_mut().unwrap().conditions;
    let why = "Cruise Control at http://cc:8090 is unreachable";
    crate::status::set_condition(conditions, "Degraded", true, "CruiseControlUnreachable", why, None);
    crate::status::set_condition(conditions, "Ready", false, "CruiseControlUnreachable", why, None);
    let mut c = Case::new(&[A]).with_op(o);
    c.old = old(&[(A, REBALANCE_SUCCEEDED, None), (B, REMOVAL_SCHEDULED, Some(name))]);
    let d = c.run();
    assert_eq!(retained(&d).len(), 1);
    assert!(d.create.is_empty() && d.release.is_empty());
    assert!(d.stuck.iter().any(|s| s.contains("unreachable")), "{:?}", d.stuck);
}

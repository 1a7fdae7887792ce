//! Table tests of the graceful up/downscale decision.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use koperator_shared::api::cruisecontroloperation::{
    CruiseControlOperation, CruiseControlOperationStatus, CruiseControlTask, ErrorPolicy, Operation,
};
use koperator_shared::api::kafkacluster::{BrokerState, GracefulActionState};

use super::graceful::state::*;
use super::graceful::{CONFIRM_SECS, Decision, Inputs, MAX_DRAINS, RemovedNode, WantedNode, decide};

const NOW: u64 = 1_800_000_000;

fn node(id: i32, ready: bool) -> WantedNode {
    WantedNode { id, pod_uid: Some(format!("uid-{id}")), ready, broker: true }
}

fn states(entries: &[(i32, &str, Option<&str>)]) -> BTreeMap<String, BrokerState> {
    entries
        .iter()
        .map(|(id, s, r)| {
            let g = GracefulActionState {
                cruise_control_state: s.to_string(),
                cruise_control_operation_reference: r.map(|n| LocalObjectReference { name: n.into() }),
                ..Default::default()
            };
            (id.to_string(), BrokerState { graceful_action_state: g, ..Default::default() })
        })
        .collect()
}

fn op(name: &str, kind: Operation, state: Option<&str>, finished: Option<u64>) -> (String, CruiseControlOperation) {
    (name.to_string(), operation(name, kind, state, finished, &[]))
}

/// The operation `name` as the CruiseControlOperation controller left it: its task of `kind`
/// in `state`, finished at `finished` (unix seconds), with `params` (none: no parameters).
pub(super) fn operation(
    name: &str,
    kind: Operation,
    state: Option<&str>,
    finished: Option<u64>,
    params: &[(&str, &str)],
) -> CruiseControlOperation {
    let mut o = CruiseControlOperation::new(name, Default::default());
    o.status = Some(CruiseControlOperationStatus {
        current_task: Some(CruiseControlTask {
            operation: kind,
            state: state.map(Into::into),
            finished: finished.map(|s| Time(k8s_openapi::jiff::Timestamp::from_second(s as i64).unwrap())),
            parameters: (!params.is_empty())
                .then(|| params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        }),
        ..Default::default()
    });
    o
}

struct Case<'a> {
    cc: bool,
    force: bool,
    old: BTreeMap<String, BrokerState>,
    wanted: Vec<WantedNode>,
    removed: Vec<RemovedNode>,
    ops: BTreeMap<String, CruiseControlOperation>,
    replicas: Option<BTreeMap<i32, usize>>,
    quiet: bool,
    _p: std::marker::PhantomData<&'a ()>,
}

impl Case<'_> {
    fn new() -> Self {
        Case {
            cc: true,
            force: false,
            old: BTreeMap::new(),
            wanted: vec![node(0, true), node(1, true), node(2, true)],
            removed: Vec::new(),
            ops: BTreeMap::new(),
            replicas: None,
            quiet: true,
            _p: Default::default(),
        }
    }
    fn run(&self) -> Decision {
        decide(Inputs {
            cluster: "kafka",
            cruise_control: self.cc,
            force: self.force,
            old: &self.old,
            wanted: &self.wanted,
            removed: &self.removed,
            operations: &self.ops,
            replicas: self.replicas.as_ref(),
            now: NOW,
            quiet: self.quiet,
        })
    }
}

fn running() -> BTreeMap<String, BrokerState> {
    states(&[(0, UPSCALE_SUCCEEDED, None), (1, UPSCALE_SUCCEEDED, None), (2, UPSCALE_SUCCEEDED, None)])
}

#[test]
fn brokers_made_with_the_cluster_move_nothing() {
    let d = Case::new().run();
    assert!(d.create.is_empty() && !d.busy);
    assert!(d.states.values().all(|s| s.cruise_control_state == UPSCALE_SUCCEEDED), "{:?}", d.states);
}

#[test]
fn new_brokers_wait_to_be_ready_then_join_in_one_operation() {
    let mut c = Case::new();
    c.old = running();
    c.wanted.extend([node(3, false), node(4, true)]);
    let d = c.run();
    assert_eq!(d.create.len(), 1);
    assert_eq!((d.create[0].operation, d.create[0].brokers.clone()), (Operation::AddBroker, vec![4]));
    assert_eq!(d.states["3"].cruise_control_state, UPSCALE_REQUIRED);
    assert_eq!(d.states["4"].cruise_control_state, UPSCALE_SCHEDULED);
    assert!(d.busy);
    // A controller-only node, or a cluster without Cruise Control: nothing to move.
    let mut c = Case::new();
    c.old = running();
    c.wanted.push(WantedNode { broker: false, ..node(3, true) });
    assert!(c.run().create.is_empty());
    assert_eq!(c.run().states["3"].cruise_control_state, UPSCALE_SUCCEEDED);
    c.cc = false;
    c.wanted.push(node(4, true));
    assert_eq!(c.run().states["4"].cruise_control_state, UPSCALE_SUCCEEDED);
}

#[test]
fn operation_states_map_to_koperators_broker_states() {
    let cases = [
        (None, None, UPSCALE_SCHEDULED, DOWNSCALE_SCHEDULED),
        (Some("Active"), None, UPSCALE_RUNNING, DOWNSCALE_RUNNING),
        (Some("InExecution"), None, UPSCALE_RUNNING, DOWNSCALE_RUNNING),
        (Some("CompletedWithError"), None, UPSCALE_COMPLETED_WITH_ERROR, DOWNSCALE_COMPLETED_WITH_ERROR),
        (Some("CompletedWithError"), Some("ignore"), UPSCALE_SUCCEEDED, DOWNSCALE_SUCCEEDED),
        (Some("CompletedWithError"), Some("pause"), UPSCALE_PAUSED, DOWNSCALE_PAUSED),
        (Some("Completed"), None, UPSCALE_SUCCEEDED, DOWNSCALE_SUCCEEDED),
    ];
    for (task, how, up, down) in cases {
        let mut c = Case::new();
        c.old = running();
        c.old.extend(states(&[(3, UPSCALE_SCHEDULED, Some("add")), (4, DOWNSCALE_SCHEDULED, Some("rm"))]));
        c.wanted.push(node(3, true));
        c.removed.push(RemovedNode { id: 4, pod_uid: Some("uid-4".into()) });
        c.replicas = Some(BTreeMap::from([(4, 2)]));
        for (name, kind) in [("add", Operation::AddBroker), ("rm", Operation::RemoveBroker)] {
            let (n, mut o) = op(name, kind, task, Some(NOW));
            match how {
                Some("ignore") => o.spec.error_policy = Some(ErrorPolicy::Ignore),
                Some("pause") => {
                    o.metadata.labels = Some([("pause".to_string(), "true".to_string())].into());
                }
                _ => {}
            }
            c.ops.insert(n, o);
        }
        let d = c.run();
        assert_eq!(d.states["3"].cruise_control_state, up, "{task:?} {how:?}");
        assert_eq!(d.states["4"].cruise_control_state, down, "{task:?} {how:?}");
        assert!(d.remove.is_empty(), "replicas are left on 4");
    }
}

#[test]
fn a_drain_runs_again_when_kafka_still_places_replicas_on_the_broker() {
    let mut c = Case::new();
    c.old = running();
    c.old.extend(states(&[(3, DOWNSCALE_RUNNING, Some("kafka-removebroker-1"))]));
    c.removed.push(RemovedNode { id: 3, pod_uid: Some("uid-3".into()) });
    c.replicas = Some(BTreeMap::from([(0, 9), (3, 1)]));
    // Just finished: Kafka's metadata may lag a moment.
    c.ops.extend([op("kafka-removebroker-1", Operation::RemoveBroker, Some("Completed"), Some(NOW - 1))]);
    let d = c.run();
    assert!(d.create.is_empty() && d.remove.is_empty());
    assert_eq!(d.states["3"].cruise_control_state, DOWNSCALE_SUCCEEDED);
    // Long enough: a new operation, named apart from the first.
    c.ops.extend([op("kafka-removebroker-1", Operation::RemoveBroker, Some("Completed"), Some(NOW - CONFIRM_SECS))]);
    let d = c.run();
    assert_eq!(d.create.len(), 1);
    assert_ne!(d.create[0].name, "kafka-removebroker-1");
    assert_eq!(d.states["3"].cruise_control_state, DOWNSCALE_SCHEDULED);
    assert!(d.waiting[&3].contains("draining it again"), "{}", d.waiting[&3]);
    // Nothing left: it goes.
    c.replicas = Some(BTreeMap::from([(0, 10)]));
    let d = c.run();
    assert!(d.remove.contains(&3) && d.create.is_empty());
}

#[test]
fn an_operation_gone_before_it_completed_is_made_again_and_nothing_is_removed() {
    let mut c = Case::new();
    c.old = running();
    c.old.extend(states(&[(3, DOWNSCALE_RUNNING, Some("kafka-removebroker-1"))]));
    c.removed.push(RemovedNode { id: 3, pod_uid: Some("uid-3".into()) });
    c.replicas = None; // Kafka unreachable
    let d = c.run();
    assert!(d.remove.is_empty());
    assert_eq!(d.create.len(), 1, "drained again");
    assert!(d.waiting[&3].contains("could not be read"), "{}", d.waiting[&3]);
}

#[test]
fn an_operation_that_lost_its_task_gets_it() {
    let mut c = Case::new();
    c.old = running();
    c.old.extend(states(&[(3, DOWNSCALE_SCHEDULED, Some("kafka-removebroker-1"))]));
    c.removed.push(RemovedNode { id: 3, pod_uid: Some("uid-3".into()) });
    let mut o = CruiseControlOperation::new("kafka-removebroker-1", Default::default());
    o.status = None;
    c.ops.insert("kafka-removebroker-1".into(), o);
    let d = c.run();
    assert_eq!(d.create.len(), 1);
    assert_eq!(
        (d.create[0].name.as_str(), d.create[0].operation, d.create[0].brokers.clone()),
        ("kafka-removebroker-1", Operation::RemoveBroker, vec![3])
    );
}

#[test]
fn without_cruise_control_or_when_forced() {
    let mut c = Case::new();
    c.cc = false;
    c.removed.push(RemovedNode { id: 3, pod_uid: Some("uid-3".into()) });
    c.replicas = Some(BTreeMap::from([(3, 4)]));
    let d = c.run();
    assert!(d.remove.is_empty() && d.create.is_empty());
    assert!(d.waiting[&3].contains("no Cruise Control runs"), "{}", d.waiting[&3]);
    c.force = true;
    assert!(c.run().remove.contains(&3));
}

#[test]
fn no_operation_starts_during_a_roll_and_no_broker_restarts_while_one_moves_partitions() {
    let mut c = Case::new();
    c.old = running();
    c.wanted.push(node(3, true));
    c.removed.push(RemovedNode { id: 4, pod_uid: Some("uid-4".into()) });
    c.replicas = Some(BTreeMap::from([(4, 2)]));
    c.quiet = false;
    let d = c.run();
    assert!(d.create.is_empty(), "{:?}", d.create);
    assert_eq!(d.states["3"].cruise_control_state, UPSCALE_REQUIRED);
    assert!(d.waiting[&4].contains("once every broker runs its current spec"), "{}", d.waiting[&4]);
    assert_eq!(super::graceful::moving(&d), None);
    c.quiet = true;
    c.old.extend(states(&[(3, UPSCALE_SCHEDULED, Some("add"))]));
    c.ops.extend([op("add", Operation::AddBroker, Some("InExecution"), None)]);
    assert_eq!(super::graceful::moving(&c.run()), Some("add"));
}

#[test]
fn a_drain_under_way_finishes_before_the_broker_goes_even_when_kafka_shows_it_empty() {
    let mut c = Case::new();
    c.old = running();
    c.old.extend(states(&[(3, DOWNSCALE_RUNNING, Some("rm"))]));
    c.removed.push(RemovedNode { id: 3, pod_uid: Some("uid-3".into()) });
    c.replicas = Some(BTreeMap::from([(0, 9)]));
    c.ops.extend([op("rm", Operation::RemoveBroker, Some("InExecution"), None)]);
    let d = c.run();
    assert!(d.remove.is_empty() && d.create.is_empty());
    assert!(d.waiting[&3].contains("holds no partition replica any more"), "{}", d.waiting[&3]);
    c.ops.extend([op("rm", Operation::RemoveBroker, Some("Completed"), Some(NOW))]);
    assert!(c.run().remove.contains(&3));
}

fn with_uid(mut o: (String, CruiseControlOperation), uid: &str) -> (String, CruiseControlOperation) {
    o.1.metadata.uid = Some(uid.into());
    o
}

#[test]
fn a_broker_wanted_again_mid_drain_stops_the_drain_and_joins_under_a_new_name() {
    let mut c = Case::new();
    c.old = running();
    c.old.extend(states(&[(3, DOWNSCALE_RUNNING, Some("kafka-removebroker-x"))]));
    c.ops.extend([with_uid(op("kafka-removebroker-x", Operation::RemoveBroker, Some("InExecution"), None), "u-rm")]);
    c.wanted.push(node(3, true));
    let d = c.run();
    assert_eq!(d.stop, [("kafka-removebroker-x".to_string(), "u-rm".to_string())]);
    assert_eq!(d.create.len(), 1);
    assert_eq!(d.create[0].operation, Operation::AddBroker);
    // Its first join (same broker, same Pod) was named differently.
    let first = Case {
        old: running(),
        wanted: vec![node(0, true), node(1, true), node(2, true), node(3, true)],
        ..Case::new()
    };
    assert_ne!(first.run().create[0].name, d.create[0].name);
}

#[test]
fn a_removed_broker_whose_join_is_pending_goes_with_its_join() {
    let mut c = Case::new();
    c.old = running();
    c.old.extend(states(&[(3, UPSCALE_SCHEDULED, Some("add"))]));
    c.ops.extend([with_uid(op("add", Operation::AddBroker, None, None), "u-add")]);
    c.removed.push(RemovedNode { id: 3, pod_uid: Some("uid-3".into()) });
    c.replicas = Some(BTreeMap::from([(0, 9)]));
    let d = c.run();
    assert!(d.remove.contains(&3));
    assert_eq!(d.stop, [("add".to_string(), "u-add".to_string())]);
}

#[test]
fn a_paused_drain_of_an_empty_broker_does_not_hold_it() {
    let mut c = Case::new();
    c.old = running();
    c.old.extend(states(&[(3, DOWNSCALE_RUNNING, Some("rm"))]));
    let (n, mut o) = op("rm", Operation::RemoveBroker, Some("CompletedWithError"), Some(NOW));
    o.metadata.labels = Some([("pause".to_string(), "true".to_string())].into());
    c.ops.insert(n, o);
    c.removed.push(RemovedNode { id: 3, pod_uid: Some("uid-3".into()) });
    c.replicas = Some(BTreeMap::from([(0, 9)]));
    assert!(c.run().remove.contains(&3));
    // Holding replicas, it waits and says so (Degraded).
    c.replicas = Some(BTreeMap::from([(3, 1)]));
    let d = c.run();
    assert!(d.remove.is_empty() && d.stuck.contains(&3), "{d:?}");
}

#[test]
fn repeated_drains_without_effect_stop_and_ask_the_user() {
    let mut c = Case::new();
    c.old = running();
    c.old.extend(states(&[(3, DOWNSCALE_RUNNING, Some("rm-3"))]));
    c.removed.push(RemovedNode { id: 3, pod_uid: Some("uid-3".into()) });
    c.replicas = Some(BTreeMap::from([(3, 1)]));
    for k in 1..=MAX_DRAINS {
        let (n, mut o) = op(&format!("rm-{k}"), Operation::RemoveBroker, Some("Completed"), Some(NOW - CONFIRM_SECS));
        o.status.as_mut().unwrap().current_task.as_mut().unwrap().parameters =
            Some(BTreeMap::from([("brokerid".to_string(), "3".to_string())]));
        c.ops.insert(n, o);
    }
    let d = c.run();
    assert!(d.create.is_empty() && d.remove.is_empty(), "{d:?}");
    assert!(d.stuck.contains(&3));
    assert!(d.waiting[&3].contains("after 3 completed Cruise Control drains"), "{}", d.waiting[&3]);
}

#[test]
fn a_controller_only_node_never_gets_an_add_broker() {
    let mut c = Case::new();
    c.old = running();
    c.old.extend(states(&[(3, UPSCALE_REQUIRED, None)]));
    c.wanted.push(WantedNode { broker: false, ..node(3, true) });
    let d = c.run();
    assert!(d.create.is_empty());
    assert_eq!(d.states["3"].cruise_control_state, UPSCALE_SUCCEEDED);
}

#[test]
fn both_kinds_carry_koperators_parameters() {
    let mut c = Case::new();
    c.old = running();
    c.wanted.push(node(3, true));
    let p = c.run().create[0].parameters();
    assert_eq!(p["brokerid"], "3");
    assert_eq!(p["exclude_recently_demoted_brokers"], "true");
    assert_eq!(p["exclude_recently_removed_brokers"], "true");
}

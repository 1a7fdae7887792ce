//! Table cases of [`decide`]: an operation's status, its cluster's other operations, the clock
//! and Cruise Control's answers → the next step and the status.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use koperator_shared::api::cruisecontroloperation::{
    CruiseControlOperation, CruiseControlOperationStatus, CruiseControlTask, ErrorPolicy, Operation,
};

use super::decide::*;
use super::params::Request;
use crate::cruise_control::{OptimizationResult, UserTaskStatus};

/// The clock of every case: T0 + `s` seconds.
fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

struct B(CruiseControlOperation);

/// Operation `name` of cluster `kafka`, created at T0 - 1000 s + `age_rank` (smaller is older).
fn cco(name: &str, operation: Operation, age_rank: i64) -> B {
    let mut o = CruiseControlOperation::new(name, Default::default());
    o.metadata.namespace = Some("kafka".into());
    o.metadata.generation = Some(1);
    o.metadata.creation_timestamp = Some(Time(at(-1000 + age_rank)));
    o.metadata.labels = Some([("kafka_cr".to_string(), "kafka".to_string())].into());
    o.status = Some(CruiseControlOperationStatus {
        current_task: Some(CruiseControlTask { operation, ..Default::default() }),
        ..Default::default()
    });
    B(o)
}

impl B {
    fn task(&mut self) -> &mut CruiseControlTask {
        self.0.status.as_mut().unwrap().current_task.as_mut().unwrap()
    }
    fn param(mut self, k: &str, v: &str) -> Self {
        self.task().parameters.get_or_insert_with(BTreeMap::new).insert(k.into(), v.into());
        self
    }
    fn state(mut self, state: &str, id: &str) -> Self {
        self.task().state = Some(state.into());
        self.task().id = Some(id.into());
        self.task().started = Some(Time(at(-100)));
        self
    }
    fn finished(mut self, s: i64) -> Self {
        self.task().finished = Some(Time(at(s)));
        self
    }
    fn error(mut self, e: &str) -> Self {
        self.task().error_message = Some(e.into());
        self
    }
    fn label(mut self, k: &str, v: &str) -> Self {
        self.0.metadata.labels.get_or_insert_with(Default::default).insert(k.into(), v.into());
        self
    }
    fn ignore(mut self) -> Self {
        self.0.spec.error_policy = Some(ErrorPolicy::Ignore);
        self
    }
    fn ttl(mut self, s: i32) -> Self {
        self.0.spec.ttl_seconds_after_finished = Some(s);
        self
    }
    fn deleting(mut self) -> Self {
        self.0.metadata.deletion_timestamp = Some(Time(at(-1)));
        self
    }
    fn no_task(mut self) -> Self {
        self.0.status = None;
        self
    }
}

fn ready() -> CcState {
    CcState::Answered { not_ready: None, executing: false }
}

fn reports(pairs: &[(&str, UserTaskStatus)]) -> Tasks {
    Tasks::Answered(pairs.iter().map(|(id, s)| (id.to_string(), TaskReport { status: *s, summary: None })).collect())
}

fn run(op: &B, others: &[&B], cc: CcState, tasks: Tasks) -> Decision {
    let all: Vec<CruiseControlOperation> = others.iter().map(|b| b.0.clone()).chain([op.0.clone()]).collect();
    decide(&Input { op: &op.0, all: &all, now: at(0), cc_state: cc, tasks })
}

fn cond<'a>(st: &'a CruiseControlOperationStatus, type_: &str) -> &'a Condition {
    st.conditions.iter().find(|c| c.type_ == type_).unwrap_or_else(|| panic!("no {type_} condition"))
}

fn reason(d: &Decision) -> (&str, &str) {
    let r = cond(&d.status, "Ready");
    (r.status.as_str(), r.reason.as_str())
}

fn endpoint(d: &Decision) -> Option<&'static str> {
    match &d.next {
        Next::Execute { request: Request::Optimization(c), .. } => Some(c.endpoint),
        Next::Execute { request: Request::Stop(c), .. } => Some(c.endpoint),
        _ => None,
    }
}

fn cur(st: &CruiseControlOperationStatus) -> &CruiseControlTask {
    st.current_task.as_ref().unwrap()
}

#[test]
fn a_new_rebalance_starts_when_cruise_control_is_ready_and_idle() {
    let op = cco("rebalance-1", Operation::Rebalance, 0).param("rebalance_disk", "false");
    let d = run(&op, &[], ready(), Tasks::NotAsked);
    assert_eq!(endpoint(&d), Some("rebalance"));
    assert_eq!(d.status.error_policy, Some(ErrorPolicy::Retry), "the policy in force is mirrored");
    let Next::Execute { request: Request::Optimization(c), pause_first: None } = &d.next else { panic!() };
    assert_eq!(c.get("rebalance_disk"), None);
    assert_eq!(c.get("dryrun"), Some("false"));
}

#[test]
fn a_new_operation_waits_while_cruise_control_cannot_take_it() {
    let op = cco("rebalance-1", Operation::Rebalance, 0);
    let cases = [
        (CcState::Unreachable("connection refused".into()), "CruiseControlUnreachable", true),
        (
            CcState::Answered { not_ready: Some("monitor LOADING".into()), executing: false },
            "CruiseControlNotReady",
            false,
        ),
        (CcState::Answered { not_ready: None, executing: true }, "CruiseControlBusy", false),
    ];
    for (cc, want, degraded) in cases {
        let d = run(&op, &[], cc, Tasks::NotAsked);
        assert_eq!(d.next, Next::Wait, "{want}");
        assert_eq!(reason(&d), ("False", want));
        assert_eq!(cond(&d.status, "Reconciling").status, "True");
        assert_eq!(cond(&d.status, "Degraded").status == "True", degraded, "{want}");
        assert_eq!(d.requeue, Some(POLL));
        assert_eq!(cur(&d.status).state, None, "nothing recorded as started");
    }
    let d = run(&op, &[], CcState::Unreachable("connection refused".into()), Tasks::NotAsked);
    assert!(cond(&d.status, "Ready").message.contains("connection refused"));
}

#[test]
fn one_running_operation_per_cluster() {
    let running = cco("addbroker-1", Operation::AddBroker, 5).param("brokerid", "3").state(state::IN_EXECUTION, "t1");
    let op = cco("rebalance-1", Operation::Rebalance, 0);
    let d = run(&op, &[&running], ready(), reports(&[("t1", UserTaskStatus::InExecution)]));
    assert_eq!(d.next, Next::Wait);
    assert_eq!(reason(&d), ("False", "Queued"));
    assert!(cond(&d.status, "Ready").message.contains("addbroker-1"));
    // Once Cruise Control reports it completed, the queue moves on (before its own status does).
    let d = run(&op, &[&running], ready(), reports(&[("t1", UserTaskStatus::Completed)]));
    assert_eq!(endpoint(&d), Some("rebalance"));
}

#[test]
fn queue_order_is_priority_then_age() {
    let old_rebalance = cco("rebalance-old", Operation::Rebalance, 0);
    let new_rebalance = cco("rebalance-new", Operation::Rebalance, 10);
    let remove = cco("removebroker", Operation::RemoveBroker, 20).param("brokerid", "2");
    let add = cco("addbroker", Operation::AddBroker, 30).param("brokerid", "3");
    // add_broker first although it is the newest.
    for op in [&old_rebalance, &new_rebalance, &remove] {
        let d = run(op, &[&old_rebalance, &new_rebalance, &remove, &add], ready(), Tasks::NotAsked);
        assert_eq!(d.next, Next::Wait, "{}", op.0.metadata.name.as_deref().unwrap());
        assert!(cond(&d.status, "Ready").message.contains("addbroker"));
    }
    assert_eq!(endpoint(&run(&add, &[&old_rebalance, &remove], ready(), Tasks::NotAsked)), Some("add_broker"));
    // Then remove_broker, then the oldest rebalance.
    let d = run(&old_rebalance, &[&new_rebalance, &remove], ready(), Tasks::NotAsked);
    assert!(cond(&d.status, "Ready").message.contains("removebroker"));
    assert_eq!(endpoint(&run(&old_rebalance, &[&new_rebalance], ready(), Tasks::NotAsked)), Some("rebalance"));
    let d = run(&new_rebalance, &[&old_rebalance], ready(), Tasks::NotAsked);
    assert!(cond(&d.status, "Ready").message.contains("rebalance-old"));
    // A paused or invalid operation does not hold the queue.
    let paused_old = cco("rebalance-old", Operation::Rebalance, 0).label("pause", "true");
    assert_eq!(endpoint(&run(&new_rebalance, &[&paused_old], ready(), Tasks::NotAsked)), Some("rebalance"));
    let invalid = cco("removebroker", Operation::RemoveBroker, 0).param("brokerid", "x");
    assert_eq!(endpoint(&run(&new_rebalance, &[&invalid], ready(), Tasks::NotAsked)), Some("rebalance"));
}

#[test]
fn a_running_task_is_polled_by_its_id_never_sent_again() {
    // Also the state an operator restarted mid-task finds in the status.
    let op = cco("rebalance-1", Operation::Rebalance, 0).state(state::ACTIVE, "t1");
    let all = [op.0.clone()];
    assert_eq!(wants(&op.0, &all), Wants { state: false, task_ids: vec!["t1".into()] });
    let d = run(&op, &[], CcState::NotAsked, reports(&[("t1", UserTaskStatus::InExecution)]));
    assert_eq!(d.next, Next::Wait);
    assert_eq!(d.requeue, Some(POLL));
    assert_eq!(cur(&d.status).state.as_deref(), Some(state::IN_EXECUTION));
    assert_eq!(cur(&d.status).finished, None);
    assert_eq!(reason(&d), ("False", "InExecution"));
}

#[test]
fn a_completed_task_is_done_with_its_finish_time_and_summary() {
    let op = cco("rebalance-1", Operation::Rebalance, 0).state(state::IN_EXECUTION, "t1");
    let summary: BTreeMap<String, String> = [("Number of replica movements".to_string(), "4".to_string())].into();
    let tasks = Tasks::Answered(
        [("t1".to_string(), TaskReport { status: UserTaskStatus::Completed, summary: Some(summary.clone()) })].into(),
    );
    let d = run(&op, &[], CcState::NotAsked, tasks);
    assert_eq!(d.next, Next::Wait);
    assert_eq!(d.requeue, None, "no TTL: kept");
    let t = cur(&d.status);
    assert_eq!(t.state.as_deref(), Some(state::COMPLETED));
    assert_eq!(t.finished, Some(Time(at(0))));
    assert_eq!(t.summary, Some(summary));
    assert_eq!(reason(&d), ("True", "Completed"));
    assert_eq!(cond(&d.status, "Reconciling").status, "False");
}

#[test]
fn a_task_cruise_control_forgot_failed_and_is_retried_after_the_backoff() {
    let op = cco("rebalance-1", Operation::Rebalance, 0).state(state::IN_EXECUTION, "t1");
    let d = run(&op, &[], ready(), reports(&[]));
    let t = cur(&d.status);
    assert_eq!(t.state.as_deref(), Some(state::COMPLETED_WITH_ERROR));
    assert_eq!(t.error_message.as_deref(), Some(MISSING_RESULT));
    assert_eq!(t.finished, Some(Time(at(0))));
    assert_eq!(d.next, Next::Wait);
    assert_eq!(reason(&d), ("False", "RetryBackoff"));
}

#[test]
fn a_task_cruise_control_reports_failed_says_so() {
    let op = cco("removebroker", Operation::RemoveBroker, 0).param("brokerid", "7").state(state::IN_EXECUTION, "t1");
    let d = run(&op, &[], ready(), reports(&[("t1", UserTaskStatus::CompletedWithError)]));
    let t = cur(&d.status);
    assert_eq!(t.state.as_deref(), Some(state::COMPLETED_WITH_ERROR));
    assert!(t.error_message.as_deref().unwrap().contains("user task t1 CompletedWithError"));
    assert_eq!(t.finished, Some(Time(at(0))));
    assert!(cond(&d.status, "Ready").message.contains("user task t1 CompletedWithError"));
}

#[test]
fn cruise_control_unreachable_while_a_task_runs_keeps_its_state() {
    let op = cco("rebalance-1", Operation::Rebalance, 0).state(state::IN_EXECUTION, "t1");
    let d = run(&op, &[], CcState::NotAsked, Tasks::Unreachable("timed out".into()));
    assert_eq!(cur(&d.status).state.as_deref(), Some(state::IN_EXECUTION));
    assert_eq!(reason(&d), ("False", "CruiseControlUnreachable"));
    assert_eq!(cond(&d.status, "Degraded").status, "True");
    assert_eq!(d.requeue, Some(POLL));
}

#[test]
fn error_policy_retry_waits_30s_after_the_failure_then_reruns() {
    let failed = |finished| {
        cco("removebroker", Operation::RemoveBroker, 0)
            .param("brokerid", "9")
            .state(state::COMPLETED_WITH_ERROR, "t1")
            .error("broker 9 does not exist")
            .finished(finished)
    };
    let d = run(&failed(-10), &[], ready(), Tasks::NotAsked);
    assert_eq!(d.next, Next::Wait);
    assert_eq!(reason(&d), ("False", "RetryBackoff"));
    assert!(d.requeue.unwrap() <= POLL && d.requeue.unwrap() > Duration::from_secs(9));
    assert!(cond(&d.status, "Ready").message.contains("broker 9 does not exist"));
    // Exactly at the back-off: not yet (Koperator: finished + 30 s before now).
    assert_eq!(run(&failed(-30), &[], ready(), Tasks::NotAsked).next, Next::Wait);
    let d = run(&failed(-31), &[], ready(), Tasks::NotAsked);
    assert_eq!(endpoint(&d), Some("remove_broker"));
}

#[test]
fn a_retry_due_goes_before_new_operations_and_one_in_backoff_lets_them_pass() {
    let failed = |finished| {
        cco("rebalance-failed", Operation::Rebalance, 5).state(state::COMPLETED_WITH_ERROR, "t1").finished(finished)
    };
    let new = cco("removebroker", Operation::RemoveBroker, 0).param("brokerid", "2");
    let d = run(&new, &[&failed(-40)], ready(), Tasks::NotAsked);
    assert!(cond(&d.status, "Ready").message.contains("rebalance-failed"));
    assert_eq!(endpoint(&run(&failed(-40), &[&new], ready(), Tasks::NotAsked)), Some("rebalance"));
    assert_eq!(endpoint(&run(&new, &[&failed(-5)], ready(), Tasks::NotAsked)), Some("remove_broker"));
}

#[test]
fn a_failed_remove_disks_is_paused_for_a_new_rebalance() {
    let removal = cco("removedisks", Operation::RemoveDisks, 0)
        .param("brokerid_and_logdirs", "1-/kafka-logs2")
        .state(state::COMPLETED_WITH_ERROR, "t1")
        .finished(-5);
    let rebalance = cco("rebalance", Operation::Rebalance, 10).param("rebalance_disk", "true");
    let d = run(&rebalance, &[&removal], ready(), Tasks::NotAsked);
    assert_eq!(endpoint(&d), Some("rebalance"));
    let Next::Execute { pause_first, .. } = &d.next else { panic!() };
    assert_eq!(pause_first.as_deref(), Some("removedisks"));
}

#[test]
fn error_policy_ignore_and_the_pause_label_end_a_failed_operation() {
    let failed = || cco("rebalance-1", Operation::Rebalance, 0).state(state::COMPLETED_WITH_ERROR, "t1").finished(-100);
    let d = run(&failed().ignore(), &[], ready(), Tasks::NotAsked);
    assert_eq!(d.next, Next::Wait);
    assert_eq!(reason(&d), ("True", "CompletedWithError"));
    assert_eq!(d.status.error_policy, Some(ErrorPolicy::Ignore));
    let d = run(&failed().label("pause", "true"), &[], ready(), Tasks::NotAsked);
    assert_eq!((d.next.clone(), d.requeue), (Next::Wait, None));
    assert_eq!(reason(&d), ("False", "Paused"));
    // Removing the label (or any other value) retries it.
    assert_eq!(endpoint(&run(&failed().label("pause", "false"), &[], ready(), Tasks::NotAsked)), Some("rebalance"));
    assert_eq!(wants(&failed().ignore().0, &[]), Wants::default(), "a done operation asks Cruise Control nothing");
}

#[test]
fn a_paused_new_operation_does_not_start() {
    let d = run(&cco("rebalance-1", Operation::Rebalance, 0).label("pause", "true"), &[], ready(), Tasks::NotAsked);
    assert_eq!((d.next.clone(), d.requeue), (Next::Wait, None));
    assert_eq!(reason(&d), ("False", "Paused"));
}

#[test]
fn ttl_deletes_a_finished_operation_after_it_finished() {
    let done = |ttl, finished| {
        cco("rebalance-1", Operation::Rebalance, 0).state(state::COMPLETED, "t1").finished(finished).ttl(ttl)
    };
    let d = run(&done(60, -30), &[], CcState::NotAsked, Tasks::NotAsked);
    assert_eq!(d.next, Next::Wait);
    assert_eq!(d.requeue, Some(Duration::from_secs(31)));
    assert_eq!(run(&done(60, -61), &[], CcState::NotAsked, Tasks::NotAsked).next, Next::Delete);
    assert_eq!(run(&done(0, -1), &[], CcState::NotAsked, Tasks::NotAsked).next, Next::Delete);
    // Failed with ignore counts as finished; failed and paused does not.
    let ignored =
        cco("x", Operation::Rebalance, 0).state(state::COMPLETED_WITH_ERROR, "t").finished(-10).ttl(5).ignore();
    assert_eq!(run(&ignored, &[], CcState::NotAsked, Tasks::NotAsked).next, Next::Delete);
    let paused = cco("x", Operation::Rebalance, 0)
        .state(state::COMPLETED_WITH_ERROR, "t")
        .finished(-10)
        .ttl(5)
        .label("pause", "true");
    assert_eq!(run(&paused, &[], CcState::NotAsked, Tasks::NotAsked).next, Next::Wait);
    // Without a TTL a finished operation stays.
    let kept = cco("x", Operation::Rebalance, 0).state(state::COMPLETED, "t").finished(-1000);
    assert_eq!(run(&kept, &[], CcState::NotAsked, Tasks::NotAsked).requeue, None);
}

#[test]
fn operations_that_cannot_be_sent() {
    let d = run(&cco("x", Operation::RemoveBroker, 0).param("brokerid", "one"), &[], ready(), Tasks::NotAsked);
    assert_eq!((d.next.clone(), d.requeue), (Next::Wait, None));
    assert_eq!(reason(&d), ("False", "InvalidParameters"));
    assert_eq!(cond(&d.status, "Degraded").status, "True");
    let d = run(&cco("x", Operation::Rebalance, 0).no_task(), &[], ready(), Tasks::NotAsked);
    assert_eq!(reason(&d), ("False", "NoOperation"));
    assert!(cond(&d.status, "Ready").message.contains("status.currentTask.operation"));
    let status_op = cco("x", Operation::Status, 0).state(state::ACTIVE, "t");
    let d = run(&status_op, &[], ready(), Tasks::NotAsked);
    assert_eq!(d.status, status_op.0.status.clone().unwrap(), "Koperator's status operations are left alone");
    assert_eq!(run(&cco("x", Operation::Rebalance, 0).deleting(), &[], ready(), Tasks::NotAsked).next, Next::Wait);
}

#[test]
fn wants_asks_the_state_and_every_running_task_of_the_cluster() {
    let op = cco("rebalance-1", Operation::Rebalance, 0);
    let running = cco("addbroker", Operation::AddBroker, 1).state(state::ACTIVE, "t2");
    let done = cco("old", Operation::Rebalance, 2).state(state::COMPLETED, "t3");
    let all = [op.0.clone(), running.0.clone(), done.0.clone()];
    assert_eq!(wants(&op.0, &all), Wants { state: true, task_ids: vec!["t2".into()] });
}

fn executed(outcome: Outcome, code: Option<u16>, id: Option<&str>) -> Option<Executed> {
    Some(Executed {
        url: "http://cc:8090/kafkacruisecontrol/rebalance?dryrun=false&json=true".into(),
        code,
        task_id: id.map(str::to_string),
        outcome,
    })
}

#[test]
fn recording_a_sent_task() {
    let op = cco("rebalance-1", Operation::Rebalance, 0).param("destination_broker_ids", "1");
    // Accepted (202) or answered at once (200): Active with its id, polled from then on.
    for (outcome, code) in [(Outcome::InProgress, 202), (Outcome::Done(Some(OptimizationResult::default())), 200)] {
        let mut st = op.0.status.clone().unwrap();
        assert!(record_execution(&op.0, &mut st, executed(outcome, Some(code), Some("t1")), at(0)));
        let t = cur(&st);
        assert_eq!(t.state.as_deref(), Some(state::ACTIVE));
        assert_eq!(t.id.as_deref(), Some("t1"));
        assert_eq!(t.http_response_code, Some(i32::from(code)));
        assert!(t.http_request.as_deref().unwrap().contains("/rebalance?"));
        assert_eq!(t.started, Some(Time(at(0))));
        assert_eq!(t.parameters.as_ref().unwrap()["destination_broker_ids"], "1");
        assert_eq!(st.retry_count, 0);
    }
    let mut st = op.0.status.clone().unwrap();
    let ok = Outcome::Done(Some(OptimizationResult::default()));
    record_execution(&op.0, &mut st, executed(ok, Some(200), None), at(0));
    assert_eq!(cur(&st).state.as_deref(), Some(state::COMPLETED), "no id to follow: done");
    assert_eq!(cur(&st).summary.as_ref().unwrap()["Number of replica movements"], "0");
    // Refused: failed now, retried later.
    let mut st = op.0.status.clone().unwrap();
    record_execution(&op.0, &mut st, executed(Outcome::Failed("500: boom".into()), Some(500), None), at(0));
    assert_eq!(cur(&st).state.as_deref(), Some(state::COMPLETED_WITH_ERROR));
    assert_eq!(cur(&st).finished, Some(Time(at(0))));
    assert_eq!(cur(&st).error_message.as_deref(), Some("500: boom"));
    // Nothing sent: not an attempt.
    let before = op.0.status.clone().unwrap();
    let mut st = before.clone();
    assert!(!record_execution(&op.0, &mut st, executed(Outcome::Unreachable("refused".into()), None, None), at(0)));
    assert_eq!(st.current_task, before.current_task);
    assert_eq!(cond(&st, "Ready").reason, "CruiseControlUnreachable");
    // remove_disks without disks: completed without a call.
    let mut st = op.0.status.clone().unwrap();
    record_execution(&op.0, &mut st, None, at(0));
    assert_eq!(cur(&st).state.as_deref(), Some(state::COMPLETED));
}

#[test]
fn a_retry_moves_the_failed_task_to_failed_tasks_and_counts_it() {
    let op =
        cco("rebalance-1", Operation::Rebalance, 0).state(state::COMPLETED_WITH_ERROR, "t1").error("e1").finished(-40);
    let mut st = op.0.status.clone().unwrap();
    record_execution(&op.0, &mut st, executed(Outcome::InProgress, Some(202), Some("t2")), at(0));
    assert_eq!(st.retry_count, 1);
    let failed = st.failed_tasks.as_ref().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!((failed[0].id.as_deref(), failed[0].error_message.as_deref()), (Some("t1"), Some("e1")));
    let t = cur(&st);
    assert_eq!((t.id.as_deref(), t.error_message.as_deref(), t.finished.as_ref()), (Some("t2"), None, None));
    // The history keeps the latest 50.
    st.failed_tasks =
        Some((0..50).map(|i| CruiseControlTask { id: Some(format!("old{i}")), ..Default::default() }).collect());
    st.current_task.as_mut().unwrap().state = Some(state::COMPLETED_WITH_ERROR.into());
    record_execution(&op.0, &mut st, executed(Outcome::InProgress, Some(202), Some("t3")), at(1));
    let failed = st.failed_tasks.as_ref().unwrap();
    assert_eq!(failed.len(), FAILED_TASKS_MAX);
    assert_eq!(failed[0].id.as_deref(), Some("old1"));
    assert_eq!(failed[49].id.as_deref(), Some("t2"));
    assert_eq!(st.retry_count, 2);
}

#[test]
fn deleting_a_running_operation_stops_its_task_first() {
    let running = cco("rebalance-1", Operation::Rebalance, 0).state(state::IN_EXECUTION, "t1").deleting();
    assert_eq!(cleanup(&running.0, true, &reports(&[("t1", UserTaskStatus::InExecution)]), at(0)), Cleanup::Stop);
    assert_eq!(cleanup(&running.0, true, &reports(&[("t1", UserTaskStatus::Completed)]), at(0)), Cleanup::Release);
    assert_eq!(cleanup(&running.0, false, &Tasks::NotAsked, at(0)), Cleanup::Release, "its cluster is gone");
    assert!(matches!(cleanup(&running.0, true, &Tasks::Unreachable("x".into()), at(0)), Cleanup::Wait(_)));
    let done = cco("rebalance-1", Operation::Rebalance, 0).state(state::COMPLETED, "t1").deleting();
    assert_eq!(cleanup(&done.0, true, &Tasks::NotAsked, at(0)), Cleanup::Release);
}

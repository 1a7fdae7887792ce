//! The controller's passes ([`step`]) against a scripted local HTTP server answering like
//! Cruise Control (bodies shaped like its servlet's JSON, from `cruise_control/testdata`): what
//! is sent, when, and what the status records. Each pass gets the status the previous one wrote,
//! as the API server would hand it back.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use koperator_shared::api::cruisecontroloperation::{
    CruiseControlOperation, CruiseControlOperationStatus, CruiseControlTask, Operation,
};

use super::decide::{Next, state};
use super::{Step, step};
use crate::cruise_control::{Client, ClientOptions};

const STATE: &str = include_str!("../cruise_control/testdata/state.json");
const PROGRESS: &str = include_str!("../cruise_control/testdata/progress.json");
const ERROR: &str = include_str!("../cruise_control/testdata/error.json");
const OPTIMIZATION: &str = include_str!("../cruise_control/testdata/optimization_result.json");

/// A request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    task_header: Option<String>,
}

/// Answers `(status, User-Task-ID, body)` in order, one per connection, recording requests.
async fn server(replies: Vec<(u16, Option<&'static str>, String)>) -> (Client, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        for (status, task, body) in replies {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = sock.read(&mut buf).await.unwrap();
                assert!(n > 0);
                head.extend_from_slice(&buf[..n]);
            }
            let text = String::from_utf8_lossy(&head).to_string();
            let mut lines = text.split("\r\n");
            let mut first = lines.next().unwrap().split(' ');
            let method = first.next().unwrap().to_string();
            let url = reqwest::Url::parse(&format!("http://x{}", first.next().unwrap())).unwrap();
            let task_header = lines
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.eq_ignore_ascii_case("user-task-id"))
                .map(|(_, v)| v.trim().to_string());
            log.lock().unwrap().push(Seen {
                method,
                path: url.path().trim_start_matches("/kafkacruisecontrol/").to_string(),
                query: url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
                task_header,
            });
            let mut answer = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            if let Some(t) = task {
                answer.push_str(&format!("User-Task-ID: {t}\r\n"));
            }
            answer.push_str("\r\n");
            answer.push_str(&body);
            let _ = sock.write_all(answer.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    });
    let client =
        Client::new(&format!("http://127.0.0.1:{port}/kafkacruisecontrol/"), ClientOptions::default()).unwrap();
    (client, seen)
}

/// `user_tasks` answering one task in `status` (with its own answer when completed).
fn user_tasks(id: &str, status: &str) -> String {
    let original = match status {
        "Completed" => format!(",\"originalResponse\":{}", serde_json::to_string(OPTIMIZATION).unwrap()),
        _ => String::new(),
    };
    format!(
        r#"{{"userTasks":[{{"Status":"{status}","ClientIdentity":"127.0.0.1","RequestURL":"POST /kafkacruisecontrol/rebalance","UserTaskId":"{id}","StartMs":"1764880000123"{original}}}],"version":1}}"#
    )
}

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn cco(name: &str, operation: Operation, params: &[(&str, &str)]) -> CruiseControlOperation {
    let mut o = CruiseControlOperation::new(name, Default::default());
    o.metadata.namespace = Some("kafka".into());
    o.metadata.creation_timestamp = Some(Time(at(-100)));
    o.metadata.labels = Some([("kafka_cr".to_string(), "kafka".to_string())].into());
    o.status = Some(CruiseControlOperationStatus {
        current_task: Some(CruiseControlTask {
            operation,
            parameters: Some(params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..Default::default()
        }),
        ..Default::default()
    });
    o
}

/// One pass of `op` alone in its cluster; returns the step and `op` with its new status.
async fn pass(op: &CruiseControlOperation, client: &Client, now: i64) -> (Step, CruiseControlOperation) {
    let s = step(op, std::slice::from_ref(op), &Ok(client.clone()), at(now)).await;
    let mut next = op.clone();
    next.status = Some(s.status.clone());
    (s, next)
}

fn task(op: &CruiseControlOperation) -> &CruiseControlTask {
    op.status.as_ref().unwrap().current_task.as_ref().unwrap()
}

fn ready_reason(op: &CruiseControlOperation) -> String {
    op.status.as_ref().unwrap().conditions.iter().find(|c| c.type_ == "Ready").unwrap().reason.clone()
}

#[tokio::test]
async fn a_rebalance_is_sent_once_then_followed_by_its_user_task_id_until_completed() {
    const T: &str = "6d3f0a4e-1b2c-4d5e-8f90-a1b2c3d4e5f6";
    let (client, log) = server(vec![
        (200, None, STATE.into()),
        (202, Some(T), PROGRESS.into()),
        (200, None, user_tasks(T, "InExecution")),
        (200, None, user_tasks(T, "Completed")),
        (200, None, user_tasks(T, "Completed")),
    ])
    .await;
    let op = cco("rebalance-1", Operation::Rebalance, &[("exclude_recently_removed_brokers", "true")]);
    let (s, op) = pass(&op, &client, 0).await;
    assert!(s.sent && matches!(s.decision.next, Next::Execute { .. }));
    let t = task(&op);
    assert_eq!((t.state.as_deref(), t.id.as_deref(), t.http_response_code), (Some(state::ACTIVE), Some(T), Some(202)));
    let url = t.http_request.as_deref().unwrap();
    assert!(
        url.contains("/kafkacruisecontrol/rebalance?") && url.contains("exclude_recently_removed_brokers=true"),
        "{url}"
    );
    assert_eq!(t.started, Some(Time(at(0))));

    let (s, op) = pass(&op, &client, 10).await;
    assert!(!s.sent && s.decision.next == Next::Wait);
    assert_eq!(task(&op).state.as_deref(), Some(state::IN_EXECUTION));
    let (_, op) = pass(&op, &client, 20).await;
    let t = task(&op);
    assert_eq!(t.state.as_deref(), Some(state::COMPLETED));
    assert_eq!(t.finished, Some(Time(at(20))));
    assert_eq!(t.summary.as_ref().unwrap()["Number of replica movements"], "12", "from the task's own answer");
    assert_eq!(ready_reason(&op), "Completed");

    let seen = log.lock().unwrap().clone();
    let calls: Vec<(&str, &str)> = seen.iter().map(|s| (s.method.as_str(), s.path.as_str())).collect();
    assert_eq!(
        calls,
        [("GET", "state"), ("POST", "rebalance"), ("GET", "user_tasks"), ("GET", "user_tasks"), ("GET", "user_tasks")]
    );
    for poll in &seen[2..] {
        assert_eq!(poll.query.get("user_task_ids").map(String::as_str), Some(T));
        assert_eq!(poll.task_header, None, "polled by id, never resumed (re-sent)");
    }
    // Polled as Koperator does; the completed task's own answer (its summary) asked alone.
    let fetch: Vec<Option<&str>> =
        seen[2..].iter().map(|s| s.query.get("fetch_completed_task").map(String::as_str)).collect();
    assert_eq!(fetch, [None, None, Some("true")]);
    // A finished operation asks Cruise Control nothing more.
    let (s, _) = pass(&op, &client, 30).await;
    assert_eq!(s.decision.next, Next::Wait);
    assert_eq!(log.lock().unwrap().len(), 5);
}

#[tokio::test]
async fn an_operator_restarted_mid_task_only_polls_it() {
    const T: &str = "0b7f3f5e-2a8f-4e0b-8d87-6a1c2c3d4e5f";
    let (client, seen) = server(vec![(200, None, user_tasks(T, "InExecution"))]).await;
    let mut op = cco("addbroker-1", Operation::AddBroker, &[("brokerid", "3")]);
    let t = op.status.as_mut().unwrap().current_task.as_mut().unwrap();
    t.id = Some(T.into());
    t.state = Some(state::ACTIVE.into());
    let (s, op) = pass(&op, &client, 0).await;
    assert!(!s.sent);
    assert_eq!(task(&op).state.as_deref(), Some(state::IN_EXECUTION));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].method.as_str(), seen[0].path.as_str()), ("GET", "user_tasks"));
}

#[tokio::test]
async fn a_refused_remove_broker_fails_then_is_retried_after_30s_into_failed_tasks() {
    const T2: &str = "11111111-2222-3333-4444-555555555555";
    let (client, seen) = server(vec![
        (200, None, STATE.into()),
        (500, None, ERROR.into()),
        (200, None, STATE.into()),
        (200, None, STATE.into()),
        (202, Some(T2), PROGRESS.into()),
    ])
    .await;
    let op = cco("removebroker-7", Operation::RemoveBroker, &[("brokerid", "7")]);
    let (s, op) = pass(&op, &client, 0).await;
    assert!(s.sent);
    let t = task(&op);
    assert_eq!((t.state.as_deref(), t.http_response_code), (Some(state::COMPLETED_WITH_ERROR), Some(500)));
    assert!(t.error_message.as_deref().unwrap().contains("Broker 7 does not exist"));
    assert_eq!(t.finished, Some(Time(at(0))));
    assert_eq!(ready_reason(&op), "CompletedWithError");
    // Within the back-off nothing is sent.
    let (s, op) = pass(&op, &client, 10).await;
    assert!(!s.sent);
    assert_eq!(ready_reason(&op), "RetryBackoff");
    let (s, op) = pass(&op, &client, 31).await;
    assert!(s.sent);
    let st = op.status.as_ref().unwrap();
    assert_eq!(st.retry_count, 1);
    let failed = st.failed_tasks.as_ref().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].http_response_code, Some(500));
    assert_eq!((task(&op).id.as_deref(), task(&op).state.as_deref()), (Some(T2), Some(state::ACTIVE)));
    let posts = seen.lock().unwrap().iter().filter(|s| s.method == "POST").count();
    assert_eq!(posts, 2);
}

#[tokio::test]
async fn with_cruise_control_down_the_operation_waits_and_says_why() {
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let client =
        Client::new(&format!("http://127.0.0.1:{port}/kafkacruisecontrol/"), ClientOptions::default()).unwrap();
    let op = cco("rebalance-1", Operation::Rebalance, &[]);
    let (s, op) = pass(&op, &client, 0).await;
    assert!(!s.sent);
    assert_eq!(task(&op).state, None, "not started, not failed");
    assert_eq!(op.status.as_ref().unwrap().retry_count, 0);
    let ready = op.status.as_ref().unwrap().conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.reason, "CruiseControlUnreachable");
    assert!(ready.message.contains("unreachable"), "{}", ready.message);
    // No client at all (the endpoint is not a URL): the same.
    let s = step(&op, std::slice::from_ref(&op), &Err("invalid Cruise Control URL".into()), at(1)).await;
    assert_eq!(s.status.conditions.iter().find(|c| c.type_ == "Ready").unwrap().reason, "CruiseControlUnreachable");
}

#[tokio::test]
async fn an_executing_cruise_control_holds_a_new_operation() {
    let busy = STATE.replace("NO_TASK_IN_PROGRESS", "INTER_BROKER_REPLICA_MOVEMENT_TASK_IN_PROGRESS");
    let (client, seen) = server(vec![(200, None, busy)]).await;
    let op = cco("rebalance-1", Operation::Rebalance, &[]);
    let (s, op) = pass(&op, &client, 0).await;
    assert!(!s.sent);
    assert_eq!(ready_reason(&op), "CruiseControlBusy");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

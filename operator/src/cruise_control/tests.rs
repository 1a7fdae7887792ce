//! The client against a small scripted HTTP server answering like Cruise Control (bodies in
//! `testdata/`, shaped like its servlet's JSON).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use koperator_shared::api::KafkaCluster;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::client::USER_TASK_ID_HEADER;
use super::*;

const STATE: &str = include_str!("testdata/state.json");
const LOAD: &str = include_str!("testdata/load.json");
const CLUSTER_STATE: &str = include_str!("testdata/kafka_cluster_state.json");
const PARTITION_LOAD: &str = include_str!("testdata/partition_load.json");
const OPTIMIZATION: &str = include_str!("testdata/optimization_result.json");
const PROGRESS: &str = include_str!("testdata/progress.json");
const USER_TASKS: &str = include_str!("testdata/user_tasks.json");
const ERROR: &str = include_str!("testdata/error.json");
const STOP: &str = include_str!("testdata/stop.json");

const TASK: &str = "5a4c5c1b-9ee4-4c25-9e9c-4e5e3f9ee6a1";

/// One scripted answer.
#[derive(Clone)]
struct Reply {
    status: u16,
    task_id: Option<&'static str>,
    body: String,
    delay: Duration,
}

fn reply(status: u16, body: &str) -> Reply {
    Reply { status, task_id: None, body: body.into(), delay: Duration::ZERO }
}

fn with_task(mut r: Reply, task: &'static str) -> Reply {
    r.task_id = Some(task);
    r
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
}

/// Answers the scripted replies in order, one per connection, and records the requests.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    async fn start(replies: Vec<Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            for r in replies {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = sock.read(&mut buf).await.unwrap();
                    assert!(n > 0, "client closed before the end of the request head");
                    head.extend_from_slice(&buf[..n]);
                }
                log.lock().unwrap().push(parse(&String::from_utf8_lossy(&head)));
                tokio::time::sleep(r.delay).await;
                let mut answer = format!(
                    "HTTP/1.1 {} X\r\nContent-Type: application/json;charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
                    r.status,
                    r.body.len()
                );
                if let Some(t) = r.task_id {
                    answer.push_str(&format!("{USER_TASK_ID_HEADER}: {t}\r\n"));
                }
                answer.push_str("\r\n");
                answer.push_str(&r.body);
                // The client may have given up (timeout test).
                let _ = sock.write_all(answer.as_bytes()).await;
                let _ = sock.shutdown().await;
            }
        });
        Server { port, seen }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/kafkacruisecontrol/", self.port)
    }

    fn client(&self) -> Client {
        Client::new(&self.url(), ClientOptions::default()).unwrap()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn parse(head: &str) -> Seen {
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap().split(' ');
    let method = first.next().unwrap().to_owned();
    let target = first.next().unwrap();
    let url = reqwest::Url::parse(&format!("http://x{target}")).unwrap();
    let query = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Seen { method, path: url.path().to_owned(), query, headers }
}

fn query(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn state_asks_for_all_substates_and_decodes_readiness() {
    let server = Server::start(vec![reply(200, STATE)]).await;
    let answer = server.client().state(&[]).await.unwrap();
    let s = answer.result;
    assert!(s.is_ready());
    assert!(!s.in_execution());
    assert_eq!(s.monitor.as_ref().unwrap().num_monitored_windows, 5.0);
    assert_eq!(s.executor.as_ref().unwrap().recently_removed_brokers, vec![3]);
    assert_eq!(s.analyzer.as_ref().unwrap().goal_readiness.len(), 2);
    assert_eq!(s.anomaly_detector.as_ref().unwrap().ongoing_self_healing_anomaly.as_deref(), Some("None"));
    let seen = server.seen();
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path, "/kafkacruisecontrol/state");
    assert_eq!(
        seen[0].query,
        query(&[("substates", "ANALYZER,ANOMALY_DETECTOR,EXECUTOR,MONITOR"), ("verbose", "true"), ("json", "true")])
    );
    assert_eq!(seen[0].headers["user-agent"], "koperator");
    assert_eq!(seen[0].headers["accept"], "application/json");
}

#[tokio::test]
async fn load_decodes_broker_states_and_dead_disks() {
    let server = Server::start(vec![reply(200, LOAD)]).await;
    let load = server.client().load().await.unwrap().result;
    assert_eq!(load.brokers_in_state(&["ALIVE", "NEW"]).collect::<Vec<_>>(), vec![0, 3]);
    assert_eq!(load.brokers_in_state(&["NEW"]).collect::<Vec<_>>(), vec![3]);
    let b0 = &load.brokers[0];
    assert_eq!(b0.disk_state["/kafka-logs2/kafka"].num_replicas, 0);
    assert_eq!(b0.disk_state["/kafka-logs2/kafka"].disk_mb, DiskUsage::Used(0.0));
    assert_eq!(load.brokers[1].disk_state["/kafka-logs/kafka"].disk_mb, DiskUsage::Dead);
    assert_eq!(load.hosts[0].replicas, 54);
    let seen = server.seen();
    assert_eq!(seen[0].path, "/kafkacruisecontrol/load");
    assert_eq!(seen[0].query, query(&[("allow_capacity_estimation", "true"), ("json", "true")]));
}

#[tokio::test]
async fn kafka_cluster_state_and_partition_load() {
    let server = Server::start(vec![reply(200, CLUSTER_STATE), reply(200, PARTITION_LOAD)]).await;
    let client = server.client();
    let state = client.kafka_cluster_state().await.unwrap().result;
    assert_eq!(state.brokers.replicas(1), 18);
    assert_eq!(state.brokers.replicas(2), 0);
    assert_eq!(state.brokers.replicas(9), 0);
    assert_eq!(state.brokers.online_log_dirs_by_broker_id["2"].len(), 2);
    let partitions = client.partition_load(&[0, 1]).await.unwrap().result;
    assert_eq!(partitions.records.len(), 2);
    assert_eq!(partitions.records[0].topic, "orders");
    assert_eq!(partitions.records[0].followers, vec![1, 2]);
    let seen = server.seen();
    assert_eq!(seen[0].query, query(&[("verbose", "true"), ("json", "true")]));
    assert_eq!(seen[1].path, "/kafkacruisecontrol/partition_load");
    assert_eq!(
        seen[1].query,
        query(&[
            ("allow_capacity_estimation", "true"),
            ("resource", "disk"),
            ("entries", "2147483647"),
            ("brokerid", "0,1"),
            ("json", "true")
        ])
    );
}

#[tokio::test]
async fn add_broker_sends_koperators_parameters_and_completes_at_once() {
    let server = Server::start(vec![with_task(reply(200, OPTIMIZATION), TASK)]).await;
    let opts = OperationOptions { exclude_recently_removed_brokers: true, ..Default::default() };
    let answer = server.client().add_broker(&[3, 4], &opts).await.unwrap();
    assert_eq!(answer.task_id, Some(TaskId(TASK.into())));
    assert_eq!(answer.result.summary.num_replica_movements, 12);
    assert_eq!(answer.result.summary.provision_status.as_deref(), Some("RIGHT_SIZED"));
    assert_eq!(answer.result.goal_summary[1].status, "FIXED");
    let seen = server.seen();
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/kafkacruisecontrol/add_broker");
    assert_eq!(
        seen[0].query,
        query(&[
            ("allow_capacity_estimation", "true"),
            ("data_from", "VALID_WINDOWS"),
            ("use_ready_default_goals", "true"),
            ("dryrun", "false"),
            ("exclude_recently_removed_brokers", "true"),
            ("brokerid", "3,4"),
            ("json", "true")
        ])
    );
    assert!(!seen[0].headers.contains_key("user-task-id"));
}

#[tokio::test]
async fn accepted_operation_is_in_progress_then_resumed_with_its_task_id() {
    let server = Server::start(vec![
        with_task(reply(202, PROGRESS), TASK),
        with_task(reply(202, PROGRESS), TASK),
        with_task(reply(200, OPTIMIZATION), TASK),
    ])
    .await;
    let client = server.client();
    let call = Call::remove_broker(&[2], &OperationOptions::default());
    let err = client.execute(&call).await.unwrap_err();
    assert_eq!(err.category(), "in_progress");
    let Error::InProgress { task_id, progress, .. } = &err else { panic!("{err}") };
    assert_eq!(task_id.0, TASK);
    assert_eq!(progress.progress[0].steps.last().unwrap().step, "AggregatingMetrics");
    assert!(err.to_string().contains("Add brokers: AggregatingMetrics (42.0%)"), "{err}");
    let done = client.execute_and_wait(&call, Duration::from_millis(10), Duration::from_secs(5)).await;
    // The second request of the script is a new 202; the wait resumes it to the 200.
    let done = match done {
        Ok(a) => a,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(done.result.summary.num_replica_movements, 12);
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    assert!(!seen[1].headers.contains_key("user-task-id"));
    assert_eq!(seen[2].headers["user-task-id"], TASK);
    // Resuming re-sends the very same request: Cruise Control refuses the id for another one.
    assert_eq!(seen[2].method, seen[0].method);
    assert_eq!(seen[2].path, seen[0].path);
    assert_eq!(seen[2].query, seen[0].query);
}

#[tokio::test]
async fn execute_and_wait_does_not_sleep_past_its_deadline() {
    let server = Server::start(vec![with_task(reply(202, PROGRESS), TASK)]).await;
    let call = Call::rebalance(&Rebalance::default());
    let start = std::time::Instant::now();
    let err = server.client().execute_and_wait(&call, Duration::from_secs(10), Duration::from_secs(5)).await;
    assert_eq!(err.unwrap_err().in_progress_task(), Some(&TaskId(TASK.into())));
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn accepted_without_task_id_is_a_decode_error() {
    let server = Server::start(vec![reply(202, PROGRESS)]).await;
    let rebalance = Rebalance { rebalance_disk: true, ..Default::default() };
    let err = server.client().rebalance(&rebalance).await.unwrap_err();
    assert_eq!(err.category(), "decode");
    assert!(err.to_string().contains("User-Task-ID"), "{err}");
}

#[tokio::test]
async fn rebalance_disk_and_destination_brokers_with_concurrency() {
    let server = Server::start(vec![reply(200, OPTIMIZATION)]).await;
    let rebalance = Rebalance {
        destination_brokers: vec![1, 2],
        rebalance_disk: true,
        intra_broker_partition_movements: Some(2),
        options: OperationOptions {
            exclude_recently_demoted_brokers: true,
            concurrency: Concurrency { partition_movements_per_broker: Some(5), leader_movements: Some(1000) },
            ..Default::default()
        },
    };
    server.client().rebalance(&rebalance).await.unwrap();
    let q = &server.seen()[0].query;
    assert_eq!(q["rebalance_disk"], "true");
    assert_eq!(q["destination_broker_ids"], "1,2");
    assert_eq!(q["exclude_recently_demoted_brokers"], "true");
    assert!(!q.contains_key("exclude_recently_removed_brokers"));
    assert_eq!(q["concurrent_partition_movements_per_broker"], "5");
    assert_eq!(q["concurrent_intra_broker_partition_movements"], "2");
    assert_eq!(q["concurrent_leader_movements"], "1000");
    assert_eq!(q["dryrun"], "false");
}

#[tokio::test]
async fn remove_disks_lists_broker_and_log_dir_pairs() {
    let server = Server::start(vec![reply(200, OPTIMIZATION)]).await;
    let dirs = BTreeMap::from([
        (101, vec!["/kafka-logs-1/kafka".to_owned(), "/kafka-logs-2/kafka".to_owned()]),
        (7, vec!["/data/kafka".to_owned()]),
    ]);
    server.client().remove_disks(&dirs).await.unwrap();
    let seen = &server.seen()[0];
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/kafkacruisecontrol/remove_disks");
    assert_eq!(
        seen.query,
        query(&[
            ("brokerid_and_logdirs", "7-/data/kafka,101-/kafka-logs-1/kafka,101-/kafka-logs-2/kafka"),
            ("dryrun", "false"),
            ("json", "true")
        ])
    );
}

#[tokio::test]
async fn stop_and_user_tasks() {
    let server = Server::start(vec![reply(200, STOP), reply(200, USER_TASKS)]).await;
    let client = server.client();
    let stop = client.stop_proposal_execution(false).await.unwrap().result;
    assert_eq!(stop.message, "Proposal execution stopped.");
    let ids = [TaskId(TASK.into()), TaskId("0b7f3f5e-2a8f-4e0b-8d87-6a1c2c3d4e5f".into())];
    let tasks = client.user_tasks(&ids, true).await.unwrap().result.user_tasks;
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0].status, UserTaskStatus::Completed);
    assert_eq!(tasks[0].start_ms, 1_764_880_000_123);
    let original: StopProposalResult = tasks[0].original().unwrap().unwrap();
    assert_eq!(original.message, "unused");
    assert_eq!(tasks[1].status, UserTaskStatus::InExecution);
    assert!(tasks[1].original::<StopProposalResult>().is_none());
    let seen = server.seen();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].path.as_str()),
        ("POST", "/kafkacruisecontrol/stop_proposal_execution")
    );
    assert_eq!(seen[0].query, query(&[("json", "true")]));
    assert_eq!(
        seen[1].query,
        query(&[
            ("fetch_completed_task", "true"),
            ("user_task_ids", "5a4c5c1b-9ee4-4c25-9e9c-4e5e3f9ee6a1,0b7f3f5e-2a8f-4e0b-8d87-6a1c2c3d4e5f"),
            ("json", "true")
        ])
    );
}

#[tokio::test]
async fn one_user_task_by_id() {
    let server = Server::start(vec![reply(200, USER_TASKS), reply(200, r#"{"userTasks":[],"version":1}"#)]).await;
    let client = server.client();
    let task = client.user_task(&TaskId("0b7f3f5e-2a8f-4e0b-8d87-6a1c2c3d4e5f".into())).await.unwrap().unwrap();
    assert_eq!(task.status, UserTaskStatus::InExecution);
    assert!(task.request_url.starts_with("POST /kafkacruisecontrol/remove_broker"));
    assert_eq!(client.user_task(&TaskId(TASK.into())).await.unwrap(), None);
    let seen = server.seen();
    assert_eq!(seen[0].query["user_task_ids"], "0b7f3f5e-2a8f-4e0b-8d87-6a1c2c3d4e5f");
    assert_eq!(seen[0].query["fetch_completed_task"], "true");
}

#[tokio::test]
async fn error_status_carries_cruise_controls_error_message() {
    let server = Server::start(vec![reply(500, ERROR), reply(404, "<html><body>Not Found</body></html>")]).await;
    let client = server.client();
    let err = client.remove_broker(&[7], &OperationOptions::default()).await.unwrap_err();
    match &err {
        Error::Status { status, message, .. } => {
            assert_eq!(*status, 500);
            assert_eq!(message, "java.lang.IllegalArgumentException: Broker 7 does not exist.");
        }
        other => panic!("{other}"),
    }
    // Not Cruise Control's JSON (Jetty's own page): the start of the body instead.
    let err = client.load().await.unwrap_err();
    assert!(matches!(&err, Error::Status { status: 404, message, .. } if message.contains("Not Found")), "{err}");
}

/// Error bodies as a real Cruise Control 2.5 sent them (`errorMessage` only; stack traces cut).
fn refusal_body(message: &str) -> String {
    serde_json::json!({"stackTrace": "java.lang.RuntimeException\n\tat ...", "errorMessage": message, "version": 1})
        .to_string()
}

#[tokio::test]
async fn refusals_are_classified_from_cruise_controls_messages() {
    let cases = [
        (
            "Error processing GET request '/state' due to: 'There are already 5 active user tasks, which has reached the servlet capacity.'.",
            Refusal::Busy,
            "busy",
            true,
        ),
        (
            "Error processing GET request '/load' due to: 'com.linkedin.kafka.cruisecontrol.exception.KafkaCruiseControlException: com.linkedin.cruisecontrol.exception.NotEnoughValidWindowsException: There is no window available in range [-1, 1796418299895] (index [1, -1]). Window index (current: 0, oldest: 0).'.",
            Refusal::NotEnoughData,
            "not_enough_data",
            true,
        ),
        (
            "Error processing POST request '/add_broker' due to: 'java.lang.IllegalStateException: Unable to generate proposal since load monitor is in LOADING state.'.",
            Refusal::NotEnoughData,
            "not_enough_data",
            true,
        ),
        (
            "Error processing GET request '/load' due to: 'com.linkedin.kafka.cruisecontrol.exception.BrokerCapacityResolutionException: Unable to resolve capacity of broker 1.'.",
            Refusal::MissingCapacity,
            "missing_capacity",
            true,
        ),
        (
            "Error processing POST request '/rebalance' due to: 'java.lang.IllegalStateException: Cannot start a new execution while there is an ongoing execution. Please use stop_ongoing_execution=true to stop ongoing execution and start a new one.'.",
            Refusal::OngoingExecution,
            "ongoing_execution",
            true,
        ),
        (
            "Error processing POST request '/rebalance' due to: 'com.linkedin.kafka.cruisecontrol.exception.OngoingExecutionException: Cannot generate proposals while the executor is in GENERATING_PROPOSALS_FOR_EXECUTION state.'.",
            Refusal::OngoingExecution,
            "ongoing_execution",
            true,
        ),
        (
            "Error processing POST request '/add_broker' due to: 'com.linkedin.kafka.cruisecontrol.exception.KafkaCruiseControlException: java.lang.IllegalArgumentException: Broker [7] does not exist.'.",
            Refusal::Other,
            "status",
            false,
        ),
    ];
    let server = Server::start(cases.iter().map(|(m, ..)| reply(500, &refusal_body(m))).collect()).await;
    let client = server.client();
    for (message, refusal, category, transient) in cases {
        let err = client.load().await.unwrap_err();
        assert_eq!(err.refusal(), Some(refusal), "{message}");
        assert_eq!(err.category(), category);
        assert_eq!(err.is_transient(), transient);
        assert!(err.to_string().ends_with(message), "{err}");
    }
}

#[tokio::test]
async fn malformed_json_is_a_decode_error_with_a_snippet() {
    let long = format!("{{\"MonitorState\": {{\"state\": 5}}, \"pad\": \"{}\"}}", "x".repeat(500));
    let server = Server::start(vec![reply(200, "{\"hosts\": [tru"), reply(200, &long)]).await;
    let client = server.client();
    let err = client.load().await.unwrap_err();
    match &err {
        Error::Decode { status, snippet, .. } => {
            assert_eq!(*status, 200);
            assert_eq!(snippet, "{\"hosts\": [tru");
        }
        other => panic!("{other}"),
    }
    // Well-formed but the wrong shape; the snippet is cut.
    let err = client.state(&[Substate::Monitor]).await.unwrap_err();
    let Error::Decode { snippet, reason, .. } = &err else { panic!("{err}") };
    assert!(reason.contains("invalid type"), "{reason}");
    assert_eq!(snippet.chars().count(), 201);
    assert!(snippet.ends_with('…'));
}

#[tokio::test]
async fn slow_answer_times_out() {
    let mut slow = reply(200, STATE);
    slow.delay = Duration::from_secs(5);
    let server = Server::start(vec![slow]).await;
    let opts = ClientOptions {
        timeouts: Timeouts { read: Duration::from_millis(200), ..Default::default() },
        ..Default::default()
    };
    let client = Client::new(&server.url(), opts).unwrap();
    let start = std::time::Instant::now();
    let err = client.state(&[]).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { after, .. } if after == Duration::from_millis(200)), "{err}");
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = Client::new(&format!("http://127.0.0.1:{port}/kafkacruisecontrol"), ClientOptions::default()).unwrap();
    let err = client.state(&[]).await.unwrap_err();
    assert_eq!(err.category(), "unreachable", "{err}");
}

#[tokio::test]
async fn service_names_resolve_through_the_hosts_file() {
    let server = Server::start(vec![reply(200, STOP)]).await;
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 kafka-cruisecontrol-svc.kafka.svc.cluster.local\n").unwrap();
    let opts = ClientOptions::with_hosts_file(Some(hosts));
    let url = format!("http://kafka-cruisecontrol-svc.kafka.svc.cluster.local:{}/kafkacruisecontrol/", server.port);
    let client = Client::new(&url, opts).unwrap();
    client.stop_proposal_execution(true).await.unwrap();
    let seen = &server.seen()[0];
    assert_eq!(seen.query["force_stop"], "true");
    assert_eq!(seen.headers["host"], format!("kafka-cruisecontrol-svc.kafka.svc.cluster.local:{}", server.port));
}

fn cluster(name: &str, namespace: &str, domain: Option<&str>, endpoint: Option<&str>) -> KafkaCluster {
    let mut c: KafkaCluster = serde_json::from_value(serde_json::json!({
        "apiVersion": "kafka.banzaicloud.io/v1beta1",
        "kind": "KafkaCluster",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"brokers": [], "cruiseControlConfig": {}, "listenersConfig": {"internalListeners": []}}
    }))
    .unwrap();
    c.spec.kubernetes_cluster_domain = domain.map(Into::into);
    c.spec.cruise_control_config.cruise_control_endpoint = endpoint.map(Into::into);
    c
}

#[test]
fn base_url_is_koperators_service_or_the_endpoint_override() {
    assert_eq!(
        base_url(&cluster("kafka", "team-a", None, None)),
        "http://kafka-cruisecontrol-svc.team-a.svc.cluster.local:8090/kafkacruisecontrol/"
    );
    assert_eq!(
        base_url(&cluster("kafka", "team-a", Some("corp.example"), None)),
        "http://kafka-cruisecontrol-svc.team-a.svc.corp.example:8090/kafkacruisecontrol/"
    );
    assert_eq!(
        base_url(&cluster("kafka", "team-a", None, Some("cc.example:9090"))),
        "http://cc.example:9090/kafkacruisecontrol/"
    );
    assert_eq!(base_url(&cluster("kafka", "a", None, Some(""))), base_url(&cluster("kafka", "a", None, None)));
    assert_eq!(
        base_url(&cluster("kafka", "a", None, Some("https://cc.example/kafkacruisecontrol/"))),
        "https://cc.example/kafkacruisecontrol/"
    );
    assert_eq!(
        base_url(&cluster("kafka", "a", None, Some("https://cc.example"))),
        "https://cc.example/kafkacruisecontrol/"
    );
}

#[test]
fn client_urls_join_the_base() {
    let c = Client::new("http://cc.example:8090/kafkacruisecontrol", ClientOptions::default()).unwrap();
    assert_eq!(c.base().as_str(), "http://cc.example:8090/kafkacruisecontrol/");
    assert_eq!(
        c.url(&Call::load()).as_str(),
        "http://cc.example:8090/kafkacruisecontrol/load?allow_capacity_estimation=true&json=true"
    );
    assert_eq!(Call::load().reason(&"r".repeat(80)).get("reason").map(str::len), Some(50));
    assert!(Client::new("cc.example:8090", ClientOptions::default()).is_err());
    assert!(Client::new("ftp://cc.example/", ClientOptions::default()).is_err());
}

/// The parameters each endpoint accepts, from Cruise Control's `servlet/parameters/*Parameters`
/// classes (`validParameterNames`, with those of the classes they extend): it refuses any other
/// with a 400.
fn accepted_parameters(endpoint: &str) -> Vec<&'static str> {
    const COMMON: &[&str] = &["json", "get_response_schema", "doAs", "reason"];
    const KAFKA_OPTIMIZATION: &[&str] = &["allow_capacity_estimation", "verbose", "exclude_recently_demoted_brokers"];
    const GOAL_BASED: &[&str] = &[
        "data_from",
        "use_ready_default_goals",
        "excluded_topics",
        "exclude_recently_removed_brokers",
        "goals",
        "fast_mode",
    ];
    const ADDED_OR_REMOVED: &[&str] = &[
        "kafka_assigner",
        "brokerid",
        "concurrent_partition_movements_per_broker",
        "max_partition_movements_in_cluster",
        "concurrent_leader_movements",
        "broker_concurrent_leader_movements",
        "execution_progress_check_interval_ms",
        "dryrun",
        "replication_throttle",
        "skip_hard_goal_check",
        "replica_movement_strategies",
        "review_id",
        "stop_ongoing_execution",
    ];
    const REBALANCE: &[&str] = &[
        "kafka_assigner",
        "destination_broker_ids",
        "ignore_proposal_cache",
        "rebalance_disk",
        "dryrun",
        "concurrent_partition_movements_per_broker",
        "max_partition_movements_in_cluster",
        "concurrent_intra_broker_partition_movements",
        "concurrent_leader_movements",
        "broker_concurrent_leader_movements",
        "execution_progress_check_interval_ms",
        "skip_hard_goal_check",
        "replica_movement_strategies",
        "replication_throttle",
        "review_id",
        "stop_ongoing_execution",
    ];
    let own: &[&[&str]] = match endpoint {
        "state" => &[&["substates", "verbose", "super_verbose"]],
        "kafka_cluster_state" => &[&["verbose", "topic"]],
        "load" => &[&["time", "end", "start", "allow_capacity_estimation", "populate_disk_info", "capacity_only"]],
        "partition_load" => &[&[
            "resource",
            "start",
            "end",
            "entries",
            "topic",
            "partition",
            "min_valid_partition_ratio",
            "allow_capacity_estimation",
            "max_load",
            "avg_load",
            "brokerid",
        ]],
        "add_broker" => &[KAFKA_OPTIMIZATION, GOAL_BASED, ADDED_OR_REMOVED, &["throttle_added_broker"]],
        "remove_broker" => {
            &[KAFKA_OPTIMIZATION, GOAL_BASED, ADDED_OR_REMOVED, &["throttle_removed_broker", "destination_broker_ids"]]
        }
        "rebalance" => &[KAFKA_OPTIMIZATION, GOAL_BASED, REBALANCE],
        "remove_disks" => &[&["brokerid_and_logdirs", "dryrun", "stop_ongoing_execution"]],
        "stop_proposal_execution" => &[&["review_id", "force_stop", "stop_external_agent"]],
        "user_tasks" => &[&["user_task_ids", "client_ids", "endpoints", "types", "entries", "fetch_completed_task"]],
        other => panic!("no parameter list for {other}"),
    };
    own.iter().flat_map(|l| l.iter().copied()).chain(COMMON.iter().copied()).collect()
}

#[test]
fn every_call_sends_only_parameters_its_endpoint_accepts() {
    let all = OperationOptions {
        exclude_recently_demoted_brokers: true,
        exclude_recently_removed_brokers: true,
        concurrency: Concurrency { partition_movements_per_broker: Some(5), leader_movements: Some(100) },
        dry_run: true,
    };
    let rebalance = Rebalance {
        destination_brokers: vec![1],
        rebalance_disk: true,
        intra_broker_partition_movements: Some(2),
        options: all.clone(),
    };
    let client = Client::new("http://cc.example:8090/kafkacruisecontrol/", ClientOptions::default()).unwrap();
    let urls = [
        client.url(&Call::state(&[]).reason("check")),
        client.url(&Call::kafka_cluster_state()),
        client.url(&Call::load().with_disk_info()),
        client.url(&Call::partition_load(&[1, 2])),
        client.url(&Call::add_broker(&[3], &all)),
        client.url(&Call::remove_broker(&[3], &all)),
        client.url(&Call::rebalance(&rebalance)),
        client.url(&Call::remove_disks(&BTreeMap::from([(1, vec!["/d".to_owned()])]), true)),
        client.url(&Call::stop_proposal_execution(true)),
        client.url(&Call::user_tasks(&[TaskId(TASK.into())], true)),
    ];
    for url in urls {
        let endpoint = url.path().rsplit('/').next().unwrap().to_owned();
        let accepted = accepted_parameters(&endpoint);
        let names: Vec<String> = url.query_pairs().map(|(n, _)| n.into_owned()).collect();
        assert!(names.len() >= 2, "{url}");
        for name in names {
            assert!(accepted.contains(&name.as_str()), "{endpoint} does not accept {name}: {url}");
        }
    }
}

/// Answers a real Cruise Control gave (captured by `e2e/tests/cruise_control.rs`), served
/// as it served them.
mod captured {
    use super::*;

    macro_rules! captured {
        ($name:literal) => {
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../e2e/tests/fixtures/cruise_control/", $name, ".json"))
        };
    }

    #[tokio::test]
    async fn real_answers_decode() {
        let server = Server::start(vec![
            with_task(reply(200, captured!("state")), TASK),
            with_task(reply(200, captured!("load")), TASK),
            with_task(reply(200, captured!("partition_load")), TASK),
            with_task(reply(200, captured!("rebalance_dryrun")), TASK),
            with_task(reply(500, captured!("add_broker_unknown")), TASK),
            with_task(reply(500, captured!("remove_broker_unknown")), TASK),
            with_task(reply(200, captured!("state_monitored")), TASK),
            with_task(reply(500, captured!("load_not_ready")), TASK),
            with_task(reply(200, captured!("user_tasks")), TASK),
        ])
        .await;
        let client = server.client();

        let state = client.state(&[]).await.unwrap().result;
        assert_eq!(state.monitor.as_ref().unwrap().state, "RUNNING");
        assert!(state.executor.as_ref().unwrap().is_idle());
        assert!(!state.is_ready(), "no proposal is ready in the captured state");

        let load = client.load().await.unwrap().result;
        assert_eq!(load.brokers_in_state(&["ALIVE"]).collect::<Vec<_>>(), vec![1]);
        assert_eq!(load.brokers[0].replicas, 65);
        assert!(load.brokers[0].disk_capacity_mb > 0.0);

        let partitions = client.partition_load(&[]).await.unwrap().result;
        assert!(partitions.records.iter().any(|p| p.topic == "__CruiseControlMetrics" && p.leader == 1));

        let dry = OperationOptions { dry_run: true, ..Default::default() };
        let rebalance = client.rebalance(&Rebalance { options: dry.clone(), ..Default::default() }).await.unwrap();
        assert_eq!(rebalance.result.summary.provision_status.as_deref(), Some("RIGHT_SIZED"));
        assert!(!rebalance.result.goal_summary.is_empty());
        assert!(rebalance.result.goal_summary.iter().all(|g| !g.goal.is_empty() && !g.status.is_empty()));
        assert_eq!(rebalance.result.load_after_optimization.unwrap().brokers[0].broker, 1);

        for call in [Call::add_broker(&[7], &dry), Call::remove_broker(&[7], &dry)] {
            let err = client.execute(&call).await.unwrap_err();
            let Error::Status { status: 500, message, .. } = &err else { panic!("{err}") };
            assert!(message.contains("7") && message.contains("does not exist."), "{message}");
            assert_eq!(err.refusal(), Some(Refusal::Other));
            assert!(!err.is_transient());
        }

        let monitored = client.state(&[]).await.unwrap().result;
        let monitor = monitored.monitor.unwrap();
        assert!(monitor.is_running() && monitor.num_monitored_windows >= 1.0, "{monitor:?}");
        assert!(!monitored.analyzer.unwrap().ready_goals.is_empty());

        let err = client.load().await.unwrap_err();
        assert_eq!(err.refusal(), Some(Refusal::NotEnoughData), "{err}");
        assert_eq!(err.category(), "not_enough_data");

        let tasks = client.user_tasks(&[], false).await.unwrap().result.user_tasks;
        assert!(tasks.iter().any(|t| t.status == UserTaskStatus::Active), "{tasks:?}");
        assert!(tasks.iter().any(|t| t.status == UserTaskStatus::Completed), "{tasks:?}");
        assert!(tasks.iter().all(|t| t.start_ms > 1_700_000_000_000 && !t.user_task_id.is_empty()), "{tasks:?}");
        let rebalance =
            tasks.iter().find(|t| t.request_url.starts_with("POST /kafkacruisecontrol/rebalance?")).unwrap();
        assert!(rebalance.status.is_finished());
        assert_eq!(rebalance.original_response, None, "only with fetch_completed_task");
    }
}

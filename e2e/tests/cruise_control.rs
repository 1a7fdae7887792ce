//! The real Cruise Control (compiled from the source snapshot by `make e2e-deps`) against a
//! real single-node KRaft broker that runs the Cruise Control metrics reporter: the reporter
//! creates `__CruiseControlMetrics` and feeds it, Cruise Control's monitor samples it and
//! answers its REST API.
//!
//! The test node runs a Cruise Control Pod shaped like Koperator's Deployment Pod against
//! the same broker.
//!
//! The JSON answers are kept under `tests/fixtures/cruise_control/` (the REST client's test
//! input): this test checks that the live answers still have the fixtures' fields, and
//! `UPDATE_FIXTURES=1` rewrites them from the live answers.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use koperator_e2e::cruise_control::{self, CruiseControl, Response};
use koperator_e2e::kafka::SingleNode;
use koperator_shared::kafka::{Admin, ConnectOptions};
use serde_json::Value;

const METRICS_TOPIC: &str = "__CruiseControlMetrics";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cruise_control")
}

/// An answer of Cruise Control: while it answers 202 (still working), ask again for the same
/// user task; while it refuses new user tasks (at most `max.active.user.tasks`, 5, are active,
/// and finished ones leave that set every 5 s), ask again a second later.
fn answer(cc: &CruiseControl, method: &str, path: &str) -> Response {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut task: Option<String> = None;
    loop {
        let headers: Vec<(&str, &str)> = task.iter().map(|t| ("User-Task-ID", t.as_str())).collect();
        let r = cruise_control::request(method, &cc.address, path, &headers, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{method} {path}: {e:#}"));
        let busy = r.status == 500 && r.body.contains("reached the servlet capacity");
        if !(r.status == 202 || busy) || Instant::now() > deadline {
            return r;
        }
        if r.status == 202 {
            task = Some(r.header("user-task-id").expect("a 202 names its User-Task-ID").to_string());
        }
        std::thread::sleep(Duration::from_millis(if busy { 1000 } else { 500 }));
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

/// Saves (`UPDATE_FIXTURES=1`) or checks one answer: valid JSON, the expected status, and
/// the same top-level fields as the saved fixture.
fn fixture(name: &str, method: &str, path: &str, r: &Response, status: u16) -> Value {
    let body: Value =
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {}", r.body));
    assert_eq!(r.status, status, "{method} {path}: {}", r.body);
    let file = fixtures().join(format!("{name}.json"));
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::create_dir_all(fixtures()).unwrap();
        std::fs::write(&file, format!("{}\n", serde_json::to_string_pretty(&body).unwrap())).unwrap();
    } else {
        let saved: Value = serde_json::from_str(
            &std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_FIXTURES=1 writes it)", file.display())),
        )
        .unwrap();
        assert_eq!(keys(&body), keys(&saved), "{method} {path}: fields differ from {}", file.display());
    }
    body
}

/// One broker for the tests of this file, running the metrics reporter (from the extra class
/// path), which has created its topic.
fn kafka() -> &'static SingleNode {
    static KAFKA: OnceLock<SingleNode> = OnceLock::new();
    KAFKA.get_or_init(start_kafka)
}

fn start_kafka() -> SingleNode {
    let start = Instant::now();
    let kafka = cruise_control::broker_with_reporter().unwrap_or_else(|e| panic!("start Kafka: {e:#}"));
    eprintln!("FIGURE: broker listening after {:?}", start.elapsed());

    // The reporter (loaded from the extra class path) creates its topic.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let admin = Admin::new(vec![kafka.bootstrap.clone()], ConnectOptions::default());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metadata = rt.block_on(admin.metadata(None)).expect("metadata");
        if metadata.topic(METRICS_TOPIC).is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{METRICS_TOPIC} not created within 30 s; topics: {:?}; broker log:\n{}",
            metadata.topics.iter().map(|t| &t.name).collect::<Vec<_>>(),
            kafka.process.log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("FIGURE: {METRICS_TOPIC} exists after {:?}", start.elapsed());
    kafka
}

#[test]
fn cruise_control_monitors_a_broker_that_runs_its_metrics_reporter() {
    let kafka = kafka();
    let start = Instant::now();
    let cc = CruiseControl::start(&kafka.bootstrap, &cruise_control::TEST_SAMPLING, Duration::from_secs(60))
        .expect("start Cruise Control");
    eprintln!("FIGURE: Cruise Control's state endpoint answers after {:?}", start.elapsed());

    let path = "/kafkacruisecontrol/state?json=true";
    let state = fixture("state", "GET", path, &answer(&cc, "GET", path), 200);
    let monitor = &state["MonitorState"];
    let monitor_state = monitor["state"].as_str().unwrap_or_else(|| panic!("no MonitorState.state in {state}"));
    assert!(
        ["RUNNING", "SAMPLING", "LOADING", "BOOTSTRAPPING", "TRAINING", "PAUSED", "NOT_STARTED"]
            .contains(&monitor_state),
        "{state}"
    );
    for key in ["ExecutorState", "AnalyzerState", "AnomalyDetectorState"] {
        assert!(state[key].is_object(), "no {key} in {state}");
    }

    // The monitor's model: the load per broker, once a window is valid (the reporter's
    // samples made it through the topic into Cruise Control).
    let path = "/kafkacruisecontrol/load?json=true";
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut first = true;
    let load = loop {
        let r = answer(&cc, "GET", path);
        if r.status == 200 {
            break r;
        }
        if std::mem::take(&mut first) {
            // The answer before the monitor has a valid window (an error naming why).
            fixture("load_not_ready", "GET", path, &r, 500);
        }
        assert!(
            Instant::now() < deadline,
            "{path}: {} {} after 45 s; Cruise Control log:\n{}",
            r.status,
            r.body,
            cc.process.log_tail(40)
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    eprintln!("FIGURE: the load model is ready after {:?}", start.elapsed());
    let load = fixture("load", "GET", path, &load, 200);
    let brokers = load["brokers"].as_array().unwrap_or_else(|| panic!("no brokers in {load}"));
    assert_eq!(brokers.iter().map(|b| b["Broker"].as_i64()).collect::<Vec<_>>(), [Some(1)], "{load}");
    let path = "/kafkacruisecontrol/state?json=true";
    let state = fixture("state_monitored", "GET", path, &answer(&cc, "GET", path), 200);
    assert!(state["MonitorState"]["numMonitoredWindows"].as_i64() >= Some(1), "{state}");

    let path = "/kafkacruisecontrol/partition_load?json=true";
    let partitions = fixture("partition_load", "GET", path, &answer(&cc, "GET", path), 200);
    assert!(
        partitions["records"].as_array().is_some_and(|r| r.iter().any(|p| p["topic"] == METRICS_TOPIC)),
        "{partitions}"
    );

    for (name, method, path, status) in [
        ("rebalance_dryrun", "POST", "/kafkacruisecontrol/rebalance?dryrun=true&json=true", 200),
        ("add_broker_unknown", "POST", "/kafkacruisecontrol/add_broker?brokerid=7&dryrun=true&json=true", 500),
        ("remove_broker_unknown", "POST", "/kafkacruisecontrol/remove_broker?brokerid=7&dryrun=true&json=true", 500),
    ] {
        fixture(name, method, path, &answer(&cc, method, path), status);
    }

    let path = "/kafkacruisecontrol/user_tasks?json=true";
    let tasks = fixture("user_tasks", "GET", path, &answer(&cc, "GET", path), 200);
    let requests: Vec<&str> =
        tasks["userTasks"].as_array().into_iter().flatten().filter_map(|t| t["RequestURL"].as_str()).collect();
    assert!(requests.iter().any(|u| u.contains("/rebalance")), "{tasks}");
    eprintln!("FIGURE: done after {:?}", start.elapsed());
}

/// A Pod like the one of Koperator's `<cluster>-cruisecontrol` Deployment (labels, container,
/// volumes, `KAFKA_OPTS` with the JMX exporter agent), its configuration from the snapshot's
/// defaults against the test broker.
fn cruise_control_pod(ns: &str, bootstrap: &str) -> (Value, Value, Value) {
    let defaults = cruise_control::default_config_dir().unwrap_or_else(|e| panic!("{e:#}"));
    let read = |f: &str| std::fs::read_to_string(defaults.join(f)).unwrap();
    let mut set = vec![
        ("bootstrap.servers", bootstrap),
        ("webserver.http.port", "8090"),
        ("capacity.config.file", "config/capacity.json"),
        ("sample.store.topic.replication.factor", "1"),
    ];
    set.extend_from_slice(&cruise_control::TEST_SAMPLING);
    let properties = cruise_control::with_properties(&read("cruisecontrol.properties"), &set);
    let config = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kafka-cruisecontrol-config", "namespace": ns},
        "data": {
            "cruisecontrol.properties": properties,
            "capacity.json": read("capacity.json"),
            "clusterConfigs.json": read("clusterConfigs.json"),
            "log4j.properties": read("log4j.properties"),
        },
    });
    let jmx = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kafka-cc-jmx-exporter", "namespace": ns},
        "data": {"config.yaml": "lowercaseOutputName: true\nrules:\n- pattern: \".*\"\n"},
    });
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "kafka-cruisecontrol-6d9f8c7b5-x2x7q", "namespace": ns,
            "labels": {"app": "cruisecontrol", "kafka_cr": "kafka"},
        },
        "spec": {
            "terminationGracePeriodSeconds": 30,
            "containers": [{
                "name": "kafka-cruisecontrol",
                "image": "ghcr.io/adobe/koperator/cruise-control:2.5.143",
                "env": [{"name": "KAFKA_OPTS", "value": "-javaagent:/opt/jmx-exporter/jmx_prometheus.jar=9020:/etc/jmx-exporter/config.yaml"}],
                "ports": [{"containerPort": 8090}, {"containerPort": 9020}],
                "volumeMounts": [
                    {"name": "kafka-cruisecontrol-config", "mountPath": "/opt/cruise-control/config"},
                    {"name": "jmx-jar-data", "mountPath": "/opt/jmx-exporter/"},
                    {"name": "kafka-cc-jmx-exporter", "mountPath": "/etc/jmx-exporter/"},
                ],
            }],
            "volumes": [
                {"name": "kafka-cruisecontrol-config", "configMap": {"name": "kafka-cruisecontrol-config"}},
                {"name": "kafka-cc-jmx-exporter", "configMap": {"name": "kafka-cc-jmx-exporter"}},
                {"name": "jmx-jar-data", "emptyDir": {}},
            ],
        },
    });
    (config, jmx, pod)
}

#[test]
fn the_test_node_runs_a_cruise_control_pod_until_it_is_deleted() {
    use k8s_openapi::api::core::v1::{ConfigMap, Pod};
    use kube::api::{Api, DeleteParams, PostParams};

    let kafka = kafka();
    let cp = koperator_e2e::shared();
    let namespace = cp.namespace("cc").unwrap();
    let ns = namespace.name.clone();
    let node = koperator_e2e::node::Node::start(&cp.kubeconfig, &ns).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = rt.block_on(cp.client()).unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let cms: Api<ConfigMap> = Api::namespaced(client, &ns);
    let (config, jmx, pod) = cruise_control_pod(&ns, &kafka.bootstrap);
    let start = Instant::now();
    rt.block_on(async {
        for cm in [config, jmx] {
            cms.create(&PostParams::default(), &serde_json::from_value(cm).unwrap()).await.unwrap();
        }
        pods.create(&PostParams::default(), &serde_json::from_value(pod).unwrap()).await.unwrap();
    });
    let name = "kafka-cruisecontrol-6d9f8c7b5-x2x7q";

    // Ready once the state endpoint answers on the Pod's address.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let pod = rt.block_on(pods.get(name)).unwrap();
        let status = serde_json::to_value(pod.status.unwrap_or_default()).unwrap();
        let ready = status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        if ready {
            break status;
        }
        if Instant::now() > deadline {
            let log = node.broker_log(name);
            let tail = log.as_deref().map(|l| koperator_e2e::process::tail(l, 40)).unwrap_or_default();
            panic!("{name} not Ready after 60 s: {status}; log {log:?}:\n{tail}");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("FIGURE: the Cruise Control Pod is Ready {:?} after it was created", start.elapsed());
    assert_eq!(status["containerStatuses"][0]["name"], "kafka-cruisecontrol", "{status}");
    let ip = status["podIP"].as_str().unwrap_or_else(|| panic!("no podIP: {status}")).to_string();
    let rest = format!("{ip}:8090");
    let state =
        cruise_control::request("GET", &rest, cruise_control::STATE_PATH, &[], Duration::from_secs(10)).unwrap();
    assert_eq!(state.status, 200, "{}", state.body);
    let state: Value = serde_json::from_str(&state.body).unwrap();
    assert!(state["MonitorState"]["state"].is_string(), "{state}");
    // The JMX exporter agent of KAFKA_OPTS serves Cruise Control's own metrics on the Pod's address.
    let metrics =
        cruise_control::request("GET", &format!("{ip}:9020"), "/metrics", &[], Duration::from_secs(10)).unwrap();
    assert!(metrics.status == 200 && metrics.body.contains("jvm_"), "{} {}", metrics.status, metrics.body);

    // A deleted Pod's process stops.
    rt.block_on(pods.delete(name, &DeleteParams::default())).unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    while std::net::TcpStream::connect(&rest).is_ok() {
        assert!(Instant::now() < deadline, "Cruise Control still listening on {rest} 40 s after its Pod was deleted");
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(node);
}

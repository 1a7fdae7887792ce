//! Graceful scaling through the real Cruise Control, on real Kafka, through `kubectl` only:
//! the operator deploys Cruise Control for a 3-broker KRaft cluster (the test node runs its
//! Deployment's Pod as the real server, the brokers with its metrics reporter). A real
//! Prometheus scrapes the brokers' JMX exporters and fires an `upScale` rule that a real
//! Alertmanager posts to the operator's alert receiver: the fourth broker it adds gets
//! partitions through an `add_broker` CruiseControlOperation, the repeated notifications add
//! nothing, a rule beyond `upScaleLimit` is refused with an Event, and malformed alerts change
//! nothing. Removed
//! again while Cruise Control is stopped, it waits and nothing is deleted; with Cruise Control
//! back it is drained by `remove_broker`, and Kafka's own metadata shows no replica left on it
//! when its Pod goes. Kafka's verifiable producer (acks=all) and consumer run throughout: not
//! one acknowledged message may be lost. Then, on the same Cruise Control, a user's
//! CruiseControlOperations: a `rebalance` completes and goes after its TTL; a failing
//! `remove_broker` is retried, then given up with `errorPolicy: ignore`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use koperator_e2e::cruise_control::{REPORTING_INTERVAL, TEST_REPORTING_INTERVAL_MS, TEST_SAMPLING};
use koperator_e2e::loss::{LossOptions, LossRun};
use koperator_e2e::monitoring::{Monitoring, Receiver, http};
use koperator_e2e::node::Node;
use koperator_e2e::shared;
use koperator_e2e::tools::repo_root;
use koperator_shared::kafka::{Admin, ConnectOptions, NewTopic, Resolver};
use serde_json::{Value, json};

const CLUSTER: &str = "kafka-cc";
const NEW: i32 = 3;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn bootstrap(ns: &str, ids: &[i32]) -> Vec<String> {
    ids.iter().map(|i| format!("{CLUSTER}-{i}.{CLUSTER}-headless.{ns}.svc.cluster.local:29092")).collect()
}

/// `key=value` set in a properties text (replaced where it is, else appended).
fn set_property(text: &str, key: &str, value: &str) -> String {
    let mut found = false;
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| match l.split_once('=') {
            Some((k, _)) if k.trim() == key => {
                found = true;
                format!("{key}={value}")
            }
            _ => l.to_string(),
        })
        .collect();
    if !found {
        lines.push(format!("{key}={value}"));
    }
    lines.join("\n") + "\n"
}

/// The Cruise Control sample with small heaps and Cruise Control sampling every few seconds.
fn spec() -> Value {
    let text =
        std::fs::read_to_string(repo_root().join("config/samples/kafkacluster_kraft_cruisecontrol.yaml")).unwrap();
    let mut v: Value = serde_saphyr::from_str(&text).unwrap();
    v["spec"]["brokerConfigGroups"]["default"]["kafkaHeapOpts"] = json!("-Xmx384m -Xms384m");
    let ro = v["spec"]["readOnlyConfig"].as_str().unwrap().to_string();
    v["spec"]["readOnlyConfig"] = json!(set_property(&ro, REPORTING_INTERVAL, TEST_REPORTING_INTERVAL_MS));
    let mut cc = v["spec"]["cruiseControlConfig"]["config"].as_str().unwrap().to_string();
    // Cruise Control checks that the brokers report at least as often as it samples.
    for (k, val) in TEST_SAMPLING {
        cc = set_property(&cc, k, val);
    }
    v["spec"]["cruiseControlConfig"]["config"] = json!(cc);
    // One default capacity for every broker: Cruise Control's configuration then does not
    // change when a broker comes or goes (a generated capacity.json does, and restarts it).
    v["spec"]["cruiseControlConfig"]["capacityConfig"] = json!(
        r#"{"brokerCapacities":[{"brokerId":"-1","capacity":{"DISK":"10737","CPU":"100","NW_IN":"125000","NW_OUT":"125000"},"doc":"every broker"}]}"#
    );
    // The group of the brokers the upScale alert adds: broker-only (roles are appended to the
    // group's, so a group of its own), so the quorum, and every other broker's configuration,
    // stays as it is.
    let mut group = v["spec"]["brokerConfigGroups"]["default"].clone();
    group["processRoles"] = json!(["broker"]);
    v["spec"]["brokerConfigGroups"]["broker"] = group;
    v["spec"]["alertManagerConfig"] = json!({"upScaleLimit": 4});
    v
}

/// A Prometheus rule file with one alert.
fn rule(alert: &str, expr: &str, annotations: Value) -> String {
    json!({"groups": [{"name": "test", "rules": [{"alert": alert, "expr": expr, "annotations": annotations}]}]})
        .to_string()
}

/// `koperator_alerts_total{outcome}` of the operator.
fn alerts_counted(op: &Operator, outcome: &str) -> f64 {
    let metrics = try_http_get(op.port, "/metrics").unwrap_or_default();
    let series = format!("koperator_alerts_total{{outcome=\"{outcome}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&series)?.trim().parse().ok()).unwrap_or(0.0)
}

/// The notes of the Events with `reason` about the cluster.
fn event_notes(cp: &koperator_e2e::ControlPlane, ns: &str, reason: &str) -> Vec<String> {
    events(cp, ns)
        .iter()
        .filter(|e| e["reason"] == reason && e["regarding"]["name"] == CLUSTER)
        .filter_map(|e| e["note"].as_str().map(String::from))
        .collect()
}

/// Scale-up by a real alert: Prometheus scrapes the brokers (Kubernetes service discovery
/// through the test API server), a rule with `command: upScale` fires while fewer than four
/// brokers export metrics, Alertmanager posts it to the operator (again every few seconds),
/// and the operator adds one broker in the `broker` group. Returns Prometheus and
/// Alertmanager, still running.
fn scale_up_by_alert(cp: &koperator_e2e::ControlPlane, ns: &str, op: &Operator, receiver: &str) -> Monitoring {
    let brokers = format!("kafka_server_app_info_version{{namespace=\"{ns}\"}}");
    let rules = rule(
        "KafkaTestTooFewBrokers",
        // Over a minute: a broker whose scrape once timed out does not make it fire again.
        &format!("count by (namespace, kafka_cr) (max_over_time({brokers}[1m])) < 4"),
        json!({"command": "upScale", "brokerConfigGroup": "broker", "summary": "fewer than 4 brokers"}),
    );
    let mon =
        Monitoring::start(&cp.dir.join("monitoring").join(ns), &cp.kubeconfig, ns, Receiver { url: receiver }, &rules)
            .unwrap();
    let scraped = Instant::now();
    wait_for("Prometheus scrapes the brokers' exporters", Duration::from_secs(120), op, || {
        mon.query(&format!("count(kafka_server_replicamanager_partitioncount{{namespace=\"{ns}\"}})"))
            .ok()
            .and_then(|r| r.first()?["value"][1].as_str()?.parse::<f64>().ok())
            .is_some_and(|n| n >= 3.0)
    });
    let versions = mon.query(&brokers).unwrap();
    let releases: Vec<&str> = versions.iter().filter_map(|s| s["metric"]["version"].as_str()).collect();
    eprintln!(
        "FIGURE: Prometheus scraped kafka_server_* from 3 brokers {} s after it started; releases {releases:?}",
        scraped.elapsed().as_secs()
    );
    assert!(releases.len() >= 3 && releases.iter().all(|r| !r.is_empty()), "{versions:?}");
    let kc = || get_json(cp, &["get", "kafkacluster", CLUSTER, "-n", ns]);
    let fired = Instant::now();
    wait_for("the upScale alert added broker 3", Duration::from_secs(120), op, || {
        kc()["spec"]["brokers"].as_array().is_some_and(|b| b.len() == 4)
    });
    eprintln!("FIGURE: the upScale alert added broker 3 {} s after Prometheus scraped", fired.elapsed().as_secs());
    let added = &kc()["spec"]["brokers"][3];
    assert_eq!((added["id"].as_i64(), added["brokerConfigGroup"].as_str()), (Some(3), Some("broker")), "{added}");
    assert!(
        event_notes(cp, ns, "AlertCommand")
            .iter()
            .any(|n| n.contains("KafkaTestTooFewBrokers") && n.contains("added broker 3")),
        "{:?}",
        event_notes(cp, ns, "AlertCommand")
    );
    mon
}

/// Alerts that must change nothing: a rule beyond `upScaleLimit` (refused, with an Event), a
/// body that is not an alert notification and an alert with an unknown command (both answered
/// 400).
fn alerts_that_change_nothing(
    cp: &koperator_e2e::ControlPlane,
    ns: &str,
    op: &Operator,
    mon: &Monitoring,
    receiver: &str,
) {
    let kc = || get_json(cp, &["get", "kafkacluster", CLUSTER, "-n", ns]);
    let spec_before = kc()["spec"].clone();
    let beyond = rule(
        "KafkaTestBeyondLimit",
        &format!("count by (namespace, kafka_cr) (kafka_server_app_info_version{{namespace=\"{ns}\"}}) >= 4"),
        json!({"command": "upScale", "brokerConfigGroup": "broker"}),
    );
    mon.set_rules(&beyond).unwrap();
    wait_for("the alert beyond upScaleLimit refused with an Event", Duration::from_secs(120), op, || {
        event_notes(cp, ns, "AlertRefused")
            .iter()
            .any(|n| n.contains("KafkaTestBeyondLimit") && n.contains("upScaleLimit is 4"))
    });
    wait_for("status.alertCount counts the firing alert", Duration::from_secs(60), op, || {
        kc()["status"]["alertCount"].as_i64().is_some_and(|n| n >= 1)
    });
    let addr = receiver.trim_start_matches("http://").split('/').next().unwrap();
    let (status, body) = http("POST", addr, "/alerts", Some("{\"alerts\": 42")).unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("expected a JSON array of alerts"), "{body}");
    let unknown = json!([{"labels": {"alertname": "X", "kafka_cr": CLUSTER, "namespace": ns}, "annotations": {"command": "delete everything"}}]);
    let (status, body) = http("POST", addr, "/api/v2/alerts", Some(&unknown.to_string())).unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("is not one of upScale, downScale, addPvc, resizePvc"), "{body}");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(kc()["spec"], spec_before, "an alert beyond the limit or a malformed one changed the spec");
    assert!(alerts_counted(op, "invalid") >= 1.0 && alerts_counted(op, "refused") >= 1.0);
}

/// Partition replicas Kafka places on each broker.
fn replicas(admin: &Admin) -> Option<BTreeMap<i32, usize>> {
    let meta = rt().block_on(admin.metadata(None)).ok()?;
    let mut count = BTreeMap::new();
    for r in meta.topics.iter().flat_map(|t| &t.partitions).flat_map(|p| &p.replicas) {
        *count.entry(*r).or_default() += 1;
    }
    Some(count)
}

fn graceful_state(kc: &Value, id: i32) -> String {
    kc["status"]["brokersState"][id.to_string()]["gracefulActionState"]["cruiseControlState"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn operations(cp: &koperator_e2e::ControlPlane, ns: &str) -> Vec<Value> {
    get_json(cp, &["get", "cco", "-n", ns])["items"].as_array().cloned().unwrap_or_default()
}

/// `kubectl create` of an operation of the cluster, then its task through the status
/// subresource (what a user does).
fn create_operation(cp: &koperator_e2e::ControlPlane, ns: &str, name: &str, spec: Value, task: Value) {
    let obj = json!({
        "apiVersion": "kafka.banzaicloud.io/v1alpha1",
        "kind": "CruiseControlOperation",
        "metadata": {"name": name, "namespace": ns, "labels": {"kafka_cr": CLUSTER}},
        "spec": spec,
    });
    cp.kubectl_stdin(&["create", "-f", "-"], Some(&obj.to_string())).unwrap();
    let patch = json!({"status": {"currentTask": task}}).to_string();
    cp.kubectl(&["patch", "cco", name, "-n", ns, "--subresource=status", "--type=merge", "-p", &patch]).unwrap();
}

fn operation(cp: &koperator_e2e::ControlPlane, ns: &str, name: &str) -> Option<Value> {
    let out = cp.kubectl(&["get", "cco", name, "-n", ns, "-o", "json", "--ignore-not-found"]).unwrap();
    (!out.trim().is_empty()).then(|| serde_json::from_str(&out).unwrap())
}

/// On the same Cruise Control: a user's `rebalance` completes and goes after its TTL; a
/// `remove_broker` of a broker that does not exist fails, is retried (errorPolicy retry), and
/// with `errorPolicy: ignore` counts as finished and goes after its TTL of 0.
fn user_operations(cp: &koperator_e2e::ControlPlane, ns: &str, op: &Operator) {
    let started = Instant::now();
    let rebalance = json!({"operation": "rebalance", "parameters": {"exclude_recently_removed_brokers": "true"}});
    create_operation(cp, ns, "rebalance-1", json!({"ttlSecondsAfterFinished": 5}), rebalance);
    let failing = json!({"operation": "remove_broker", "parameters": {"brokerid": "7"}});
    create_operation(cp, ns, "removebroker-7", json!({"errorPolicy": "retry", "ttlSecondsAfterFinished": 0}), failing);
    let mut completed = None;
    wait_for("the user's rebalance completes", Duration::from_secs(180), op, || {
        completed = operation(cp, ns, "rebalance-1").filter(|o| o["status"]["currentTask"]["state"] == "Completed");
        completed.is_some()
    });
    let task = completed.unwrap()["status"]["currentTask"].clone();
    assert!(task["id"].as_str().is_some_and(|id| !id.is_empty()), "{task}");
    assert!(task["httpRequest"].as_str().unwrap().contains("/kafkacruisecontrol/rebalance?"), "{task}");
    eprintln!("FIGURE: a user's rebalance completed {} s after kubectl create", started.elapsed().as_secs());
    wait_for("the finished rebalance is deleted after its TTL", Duration::from_secs(30), op, || {
        operation(cp, ns, "rebalance-1").is_none()
    });
    wait_for("the failing remove_broker is retried", Duration::from_secs(120), op, || {
        let o = operation(cp, ns, "removebroker-7").expect("a failing operation stays");
        o["status"]["retryCount"].as_i64() >= Some(1) && o["status"]["currentTask"]["state"] == "CompletedWithError"
    });
    let o = operation(cp, ns, "removebroker-7").unwrap();
    assert!(o["status"]["failedTasks"].as_array().is_some_and(|f| !f.is_empty()), "{o}");
    cp.kubectl(&[
        "patch",
        "cco",
        "removebroker-7",
        "-n",
        ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"errorPolicy":"ignore"}}"#,
    ])
    .unwrap();
    wait_for("the ignored failure is deleted after its TTL", Duration::from_secs(60), op, || {
        operation(cp, ns, "removebroker-7").is_none()
    });
    eprintln!(
        "FIGURE: user operations (rebalance, a failing remove_broker retried then ignored) done in {} s",
        started.elapsed().as_secs()
    );
}

fn volume_state(kc: &Value, id: i32, mount: &str) -> String {
    kc["status"]["brokersState"][id.to_string()]["gracefulActionState"]["volumeStates"][mount]["cruiseControlVolumeState"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Partition replicas broker `id` stores in the log directory of the disk at `mount` (`None`:
/// the broker does not use it, or did not answer).
fn replicas_on_disk(admin: &Admin, id: i32, mount: &str) -> Option<usize> {
    let dirs = rt().block_on(admin.describe_log_dirs(id)).ok()?;
    dirs.iter().find(|d| d.path.trim_end_matches('/') == format!("{mount}/kafka")).map(|d| d.replicas)
}

/// The PVC of broker `id`'s disk at `mount`, unless it is gone or being deleted.
fn disk_pvc(cp: &koperator_e2e::ControlPlane, ns: &str, id: i32, mount: &str) -> Option<String> {
    let pvcs = get_json(cp, &["get", "pvc", "-n", ns, "-l", &format!("brokerId={id}")]);
    pvcs["items"].as_array()?.iter().find_map(|p| {
        let live = p["metadata"]["deletionTimestamp"].is_null();
        (live && p["metadata"]["annotations"]["mountPath"] == mount)
            .then(|| p["metadata"]["name"].as_str().unwrap().to_string())
    })
}

/// On the same cluster and Cruise Control: a second disk, given to broker 0 by an `addPvc`
/// alert (Prometheus' rule names broker 0's PVC), gets partitions through a disk rebalance
/// (`rebalance_disk=true`); taken out of the spec again, it stays mounted and in `log.dirs`
/// while `remove_disks` moves its replicas to the other disk, and leaves the broker, its PVC
/// deleted, only once Kafka reports it empty.
fn disk_changes(
    cp: &koperator_e2e::ControlPlane,
    ns: &str,
    op: &Operator,
    admin: &Admin,
    base: &Value,
    receiver: &str,
) {
    assert!(
        koperator_e2e::kafka::mount_namespaces(),
        "the disk scenario needs the test node's mount namespaces (root, unshare --mount) so that Kafka reports the log \
         directories the operator rendered"
    );
    let apply = |v: &Value| cp.kubectl_stdin(&["apply", "-n", ns, "-f", "-"], Some(&v.to_string())).unwrap();
    let kc = || get_json(cp, &["get", "kafkacluster", CLUSTER, "-n", ns]);
    let disk = |mount: &str| json!({"mountPath": mount, "pvcSpec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}});
    // Disk operations need Cruise Control's capacities per disk (JBOD): the generated ones.
    let mut one = base.clone();
    one["spec"]["cruiseControlConfig"].as_object_mut().unwrap().remove("capacityConfig");
    one["spec"]["brokers"][0]["brokerConfig"] = json!({"storageConfigs": [disk("/kafka-logs")]});
    apply(&one);
    let first = disk_pvc(cp, ns, 0, "/kafka-logs").expect("broker 0's PVC");
    let rules = rule(
        "KafkaTestDiskFull",
        &format!(
            "label_replace(kafka_server_app_info_version{{namespace=\"{ns}\", brokerId=\"0\"}}, \"persistentvolumeclaim\", \"{first}\", \"brokerId\", \".*\")"
        ),
        json!({"command": "addPvc", "mountPathPrefix": "/kafka-logs2", "diskSize": "10Gi"}),
    );
    let added = Instant::now();
    let mon = Monitoring::start(
        &cp.dir.join("monitoring-disk").join(ns),
        &cp.kubeconfig,
        ns,
        Receiver { url: receiver },
        &rules,
    )
    .unwrap();
    let disks = || -> Vec<String> {
        let storage = &kc()["spec"]["brokers"][0]["brokerConfig"]["storageConfigs"];
        storage.as_array().into_iter().flatten().filter_map(|s| s["mountPath"].as_str().map(String::from)).collect()
    };
    wait_for("the addPvc alert added a disk to broker 0", Duration::from_secs(300), op, || disks().len() == 2);
    let second = disks()[1].clone();
    eprintln!(
        "FIGURE: the addPvc alert added {second} to broker 0 {} s after Prometheus started",
        added.elapsed().as_secs()
    );
    assert!(second.starts_with("/kafka-logs2-"), "{second}");
    assert_eq!(disks()[0], "/kafka-logs", "the metadata log's disk stays first");
    drop(mon);
    let second = second.as_str();
    wait_for("the new disk rebalanced onto", Duration::from_secs(600), op, || {
        volume_state(&kc(), 0, second) == "GracefulDiskRebalanceSucceeded"
    });
    let moved = replicas_on_disk(admin, 0, second).unwrap_or(0);
    eprintln!(
        "FIGURE: disk {second} added to broker 0: disk rebalance done {} s after kubectl apply, {moved} replicas on it",
        added.elapsed().as_secs()
    );
    let ops = operations(cp, ns);
    assert!(
        ops.iter().any(|o| o["status"]["currentTask"]["operation"] == "rebalance"
            && o["status"]["currentTask"]["parameters"]["rebalance_disk"] == "true"
            && o["status"]["currentTask"]["state"] == "Completed"),
        "{ops:#?}"
    );
    assert!(moved > 0, "Cruise Control placed no replica on the new disk");

    // The user takes the disk out of the spec again (a patch: `kubectl apply` of the same
    // file would not remove what the alert added).
    let removed = Instant::now();
    let only_first = json!([{"op": "replace", "path": "/spec/brokers/0/brokerConfig/storageConfigs", "value": [disk("/kafka-logs")]}]);
    cp.kubectl(&["patch", "kafkacluster", CLUSTER, "-n", ns, "--type=json", "-p", &only_first.to_string()]).unwrap();
    let pvc = disk_pvc(cp, ns, 0, second).expect("the new disk's PVC");
    let mut held_last = None;
    let mut seen = Vec::new();
    wait_for("the removed disk drained, out of log.dirs, its PVC deleted", Duration::from_secs(600), op, || {
        let kc = kc();
        let state = volume_state(&kc, 0, second);
        if seen.last() != Some(&state) {
            seen.push(state);
        }
        let held = replicas_on_disk(admin, 0, second);
        if let Some(n) = held {
            // While Kafka stores replicas on it, the broker keeps it in its configuration.
            let cm = get_json(cp, &["get", "configmap", &format!("{CLUSTER}-config-0"), "-n", ns]);
            let config = cm["data"].as_object().unwrap().values().filter_map(Value::as_str).collect::<String>();
            assert!(
                n == 0 || config.contains(&format!("{second}/kafka")),
                "broker 0's log.dirs dropped the disk holding {n} replicas"
            );
            held_last = Some(n);
        }
        disk_pvc(cp, ns, 0, second).is_none()
    });
    assert_eq!(held_last, Some(0), "Kafka showed the disk empty before its PVC went");
    assert_eq!(replicas_on_disk(admin, 0, second), None, "broker 0 runs without the disk");
    let ops = operations(cp, ns);
    assert!(
        ops.iter().any(|o| o["status"]["currentTask"]["operation"] == "remove_disks"
            && o["status"]["currentTask"]["state"] == "Completed"
            && o["status"]["currentTask"]["parameters"]["brokerid_and_logdirs"] == format!("0-{second}/kafka")),
        "{ops:#?}"
    );
    eprintln!(
        "FIGURE: disk {second} removed from broker 0: drained, out of log.dirs and PVC {pvc} deleted {} s after kubectl apply; states {seen:?}",
        removed.elapsed().as_secs()
    );
}

#[test]
fn a_broker_joins_and_leaves_through_cruise_control_without_losing_a_message() {
    let cp = shared();
    let namespace = cp.namespace("scale").unwrap();
    let ns = namespace.name.clone();
    let node = Node::start(&cp.kubeconfig, &ns).unwrap();
    let hosts = format!("--kafka-hosts-file={}", node.hosts_file.display());
    let receiver_port = koperator_e2e::process::free_port().unwrap();
    let receiver = format!("http://127.0.0.1:{receiver_port}/alerts");
    let op =
        start_operator(cp, &ns, "scale", "scale-0", &[hosts, format!("--alerts-listen=127.0.0.1:{receiver_port}")]);
    let apply = |v: &Value| cp.kubectl_stdin(&["apply", "-n", &ns, "-f", "-"], Some(&v.to_string())).unwrap();
    let kc = || get_json(cp, &["get", "kafkacluster", CLUSTER, "-n", &ns]);
    let base = spec();
    let started = Instant::now();
    apply(&base);
    wait_for("ClusterRunning with Cruise Control", Duration::from_secs(300), &op, || {
        let kc = kc();
        kc["status"]["state"] == "ClusterRunning"
            && condition(&kc, "Ready").is_some_and(|c| c.0 == "True")
            && kc["status"]["cruiseControlTopicStatus"] == "CruiseControlTopicReady"
    });
    eprintln!("FIGURE: 3 brokers and Cruise Control running {} s after kubectl apply", started.elapsed().as_secs());
    let opts =
        ConnectOptions { resolver: Resolver::with_hosts_file(Some(node.hosts_file.clone())), ..Default::default() };
    let admin = Admin::new(bootstrap(&ns, &[0, 1, 2]), opts);
    let topic = "scale-loss";
    rt().block_on(admin.create_topic(&NewTopic {
        name: topic.into(),
        partitions: 6,
        replication_factor: 3,
        configs: BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]),
    }))
    .unwrap();
    let run = LossRun::start(LossOptions {
        bootstrap: bootstrap(&ns, &[0, 1, 2]).join(","),
        topic: topic.into(),
        throughput: 100,
        hosts_file: Some(node.hosts_file.clone()),
        client_config: String::new(),
        dir: cp.dir.join("loss").join(&ns),
    })
    .unwrap();
    run.wait_acknowledged(200, Duration::from_secs(60)).unwrap();

    // Scale up by an alert: the new broker gets replicas through add_broker once it is Ready.
    let up = Instant::now();
    let mon = scale_up_by_alert(cp, &ns, &op, &receiver);
    wait_for("broker 3 joined through add_broker", Duration::from_secs(600), &op, || {
        graceful_state(&kc(), NEW) == "GracefulUpscaleSucceeded"
    });
    let on_new = replicas(&admin).unwrap_or_default().get(&NEW).copied().unwrap_or(0);
    eprintln!(
        "FIGURE: broker {NEW} added by the upScale alert: add_broker done {} s after Prometheus started, {on_new} replicas on it; {} repeated notifications changed nothing",
        up.elapsed().as_secs(),
        alerts_counted(&op, "repeated")
    );
    assert_eq!(kc()["spec"]["brokers"].as_array().map(Vec::len), Some(4), "a repeated alert added another broker");
    assert!(alerts_counted(&op, "repeated") >= 1.0, "Alertmanager did not repeat the notification: nothing tested");
    alerts_that_change_nothing(cp, &ns, &op, &mon, &receiver);
    // The rules would fire again once broker 3 is gone.
    drop(mon);
    assert!(on_new > 0, "Cruise Control placed no replica on broker {NEW}");
    let add = operations(cp, &ns);
    assert!(
        add.iter().any(|o| o["status"]["currentTask"]["operation"] == "add_broker"
            && o["status"]["currentTask"]["state"] == "Completed"
            && o["status"]["currentTask"]["parameters"]["brokerid"] == "3"),
        "{add:#?}"
    );

    // Cruise Control stopped: the removal waits and deletes nothing.
    let deployment = format!("{CLUSTER}-cruisecontrol");
    cp.kubectl(&["scale", "deployment", &deployment, "-n", &ns, "--replicas=0"]).unwrap();
    let cc_pods =
        || get_json(cp, &["get", "pods", "-n", &ns, "-l", "app=cruisecontrol"])["items"].as_array().map_or(0, Vec::len);
    wait_for("Cruise Control stopped", Duration::from_secs(60), &op, || cc_pods() == 0);
    let down = Instant::now();
    apply(&base);
    wait_for("the removal waits for Cruise Control", Duration::from_secs(60), &op, || {
        condition(&kc(), "Degraded").is_some_and(|c| c == ("True".into(), "BrokerRemovalPending".into()))
    });
    std::thread::sleep(Duration::from_secs(30));
    let pod = format!("{CLUSTER}-{NEW}");
    assert!(pod_uids(cp, &ns).contains_key(&pod), "broker {NEW}'s Pod was deleted while Cruise Control was stopped");
    assert_eq!(cc_pods(), 0, "Cruise Control came back by itself");
    let kc_now = kc();
    let message = kc_now["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Degraded").unwrap()
        ["message"]
        .clone();
    eprintln!("FIGURE: with Cruise Control stopped, broker {NEW} waits: {message}");
    assert!(graceful_state(&kc_now, NEW).starts_with("GracefulDownscale"), "{}", graceful_state(&kc_now, NEW));

    // Cruise Control back: drained, then the Pod goes with no replica left on the broker.
    let held = replicas(&admin).unwrap_or_default().get(&NEW).copied().unwrap_or(0);
    cp.kubectl(&["scale", "deployment", &deployment, "-n", &ns, "--replicas=1"]).unwrap();
    let resumed = Instant::now();
    let mut seen = Vec::new();
    wait_for("broker 3 drained and its Pod deleted", Duration::from_secs(900), &op, || {
        let state = graceful_state(&kc(), NEW);
        if seen.last() != Some(&state) {
            seen.push(state);
        }
        !pod_uids(cp, &ns).contains_key(&pod)
    });
    let left = replicas(&admin).unwrap_or_default().get(&NEW).copied().unwrap_or(0);
    assert_eq!(left, 0, "broker {NEW}'s Pod was deleted with {left} replicas still on it");
    eprintln!(
        "FIGURE: broker {NEW} drained of {held} replicas and removed {} s after Cruise Control came back ({} s after kubectl apply); states {seen:?}",
        resumed.elapsed().as_secs(),
        down.elapsed().as_secs()
    );
    let rm = operations(cp, &ns);
    assert!(
        rm.iter().any(|o| o["status"]["currentTask"]["operation"] == "remove_broker"
            && o["status"]["currentTask"]["state"] == "Completed"),
        "{rm:#?}"
    );
    assert!(
        get_json(cp, &["get", "pvc", "-n", &ns])["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["metadata"]["name"].as_str().is_some_and(|n| n.starts_with(&format!("{pod}-storage")))),
        "broker {NEW}'s PVC is kept"
    );
    let report = run.finish(Duration::from_secs(60)).unwrap();
    report.record(&format!("scale 3→4→3 through Cruise Control (drain of {held} replicas)"), 0);
    eprintln!("FIGURE: {}", report.row("scale 3→4→3 through Cruise Control", 0));
    report.assert_lossless("scale 3→4→3 through Cruise Control");

    user_operations(cp, &ns, &op);
    disk_changes(cp, &ns, &op, &admin, &base, &receiver);
    drop(op);
    drop(node);
}

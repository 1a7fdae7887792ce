//! The CruiseControlOperation controller in the operator process, against a real
//! kube-apiserver, the real Cruise Control (compiled by `make e2e-deps`) and a real single-node
//! KRaft broker running its metrics reporter. The KafkaCluster names that Cruise Control with
//! `cruiseControlConfig.cruiseControlEndpoint`; its brokers are not run (the operations only
//! talk to Cruise Control).
//!
//! Operations are created as a user does (docs/cruise-control-operations.md): `kubectl create`
//! of the object, then `kubectl patch --subresource=status` with `currentTask`. A `rebalance`
//! completes and is deleted after its TTL; a `remove_broker` of a broker that does not exist
//! fails, runs first (higher priority), is retried after 30 s (the rebalance runs during its
//! back-off: one task at a time, never two), and with `errorPolicy: ignore` counts as finished
//! and goes with its TTL.
//!
//! About 110 s (Cruise Control needs ~45 s for a valid load window and a ready proposal, the
//! retry waits its 30 s): not in `make e2e`; run it with
//! `flock /tmp/kafka-e2e.lock cargo test -p koperator-operator --test cruise_control_operation_e2e`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use koperator_e2e::cruise_control::{self, CruiseControl};
use koperator_e2e::kafka::SingleNode;
use koperator_e2e::{ControlPlane, shared, tools::repo_root};
use serde_json::{Value, json};

fn start_kafka_and_cruise_control() -> (SingleNode, CruiseControl) {
    let kafka = cruise_control::broker_with_reporter().unwrap_or_else(|e| panic!("start Kafka: {e:#}"));
    // Every call that is not instant answers 202 first, so tasks are followed by their id.
    let mut settings = vec![("webserver.request.maxBlockTimeMs", "1"), ("max.active.user.tasks", "25")];
    settings.extend_from_slice(&cruise_control::TEST_SAMPLING);
    let cc = CruiseControl::start(&kafka.bootstrap, &settings, Duration::from_secs(90)).expect("start Cruise Control");
    (kafka, cc)
}

/// `kubectl create` of an operation of cluster `kafka`, then its task through the status
/// subresource (what a user does).
fn create_operation(cp: &ControlPlane, ns: &str, name: &str, spec: Value, task: Value) {
    let obj = json!({
        "apiVersion": "kafka.banzaicloud.io/v1alpha1",
        "kind": "CruiseControlOperation",
        "metadata": {"name": name, "namespace": ns, "labels": {"kafka_cr": "kafka"}},
        "spec": spec,
    });
    cp.kubectl_stdin(&["create", "-f", "-"], Some(&obj.to_string())).unwrap();
    let patch = json!({"status": {"currentTask": task}}).to_string();
    cp.kubectl(&["patch", "cco", name, "-n", ns, "--subresource=status", "--type=merge", "-p", &patch]).unwrap();
}

fn operation(cp: &ControlPlane, ns: &str, name: &str) -> Option<Value> {
    let out = cp.kubectl(&["get", "cco", name, "-n", ns, "-o", "json", "--ignore-not-found"]).unwrap();
    (!out.trim().is_empty()).then(|| serde_json::from_str(&out).unwrap())
}

#[test]
fn user_created_operations_run_one_at_a_time_retry_and_go_after_their_ttl() {
    let cp = shared();
    let ns = cp.namespace("cco").unwrap();
    let started = Instant::now();
    let (_kafka, cc) = start_kafka_and_cruise_control();
    eprintln!("FIGURE: Kafka and Cruise Control up after {:?}", started.elapsed());
    let op = start_operator(cp, &ns.name, "cco", "cco-0", &[]);

    let sample = std::fs::read_to_string(repo_root().join("config/samples/kafkacluster_kraft_combined.yaml")).unwrap();
    let mut cluster: Value = serde_saphyr::from_str(&sample).unwrap();
    cluster["metadata"]["name"] = json!("kafka");
    cluster["metadata"]["namespace"] = json!(ns.name);
    cluster["spec"]["cruiseControlConfig"] = json!({"cruiseControlEndpoint": cc.address});
    cp.kubectl_stdin(&["create", "-f", "-"], Some(&cluster.to_string())).unwrap();

    create_operation(
        cp,
        &ns.name,
        "rebalance-1",
        json!({"ttlSecondsAfterFinished": 5}),
        json!({"operation": "rebalance", "parameters": {"exclude_recently_removed_brokers": "true"}}),
    );
    create_operation(
        cp,
        &ns.name,
        "removebroker-7",
        json!({"errorPolicy": "retry", "ttlSecondsAfterFinished": 0}),
        json!({"operation": "remove_broker", "parameters": {"brokerid": "7"}}),
    );

    // The rebalance completes (Cruise Control needs a valid load window first: the operation
    // waits, its condition says why).
    let mut seen_waiting = None;
    let mut completed = None;
    wait_for("the rebalance completes", Duration::from_secs(150), &op, || {
        let Some(o) = operation(cp, &ns.name, "rebalance-1") else { return false };
        let ready = o["status"]["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "Ready").cloned();
        if let Some(r) = &ready
            && seen_waiting.is_none()
            && r["status"] == "False"
        {
            seen_waiting = Some(r["reason"].clone());
        }
        let done = o["status"]["currentTask"]["state"] == "Completed";
        if done {
            completed = Some(o);
        }
        done
    });
    eprintln!("FIGURE: rebalance completed after {:?}", started.elapsed());
    let o = completed.unwrap();
    let completed_task = o["status"]["currentTask"].clone();
    let task = &o["status"]["currentTask"];
    assert!(task["id"].as_str().is_some_and(|id| !id.is_empty()), "{o}");
    assert!(task["httpRequest"].as_str().unwrap().contains("/kafkacruisecontrol/rebalance?"), "{o}");
    assert!(task["httpRequest"].as_str().unwrap().contains("exclude_recently_removed_brokers=true"), "{o}");
    assert!(matches!(task["httpResponseCode"].as_i64(), Some(200 | 202)), "{o}");
    assert!(task["started"].is_string() && task["finished"].is_string(), "{o}");
    assert_eq!(o["status"]["errorPolicy"], "retry", "{o}");
    eprintln!("first waiting reason of the rebalance: {seen_waiting:?}");

    // Gone 5 s after it finished.
    wait_for("the finished rebalance is deleted after its TTL", Duration::from_secs(30), &op, || {
        operation(cp, &ns.name, "rebalance-1").is_none()
    });

    // The remove_broker of a broker that does not exist failed and is retried.
    let mut failing = None;
    wait_for("the remove_broker is retried", Duration::from_secs(90), &op, || {
        let o = operation(cp, &ns.name, "removebroker-7").expect("a failing operation stays");
        let retried = o["status"]["retryCount"].as_i64() >= Some(1)
            && o["status"]["currentTask"]["state"] == "CompletedWithError";
        if retried {
            failing = Some(o);
        }
        retried
    });
    let o = failing.unwrap();
    let failed = o["status"]["failedTasks"].as_array().unwrap_or_else(|| panic!("no failedTasks: {o}"));
    assert!(!failed.is_empty(), "{o}");
    assert_eq!(failed[0]["state"], "CompletedWithError", "{o}");
    let error = o["status"]["currentTask"]["errorMessage"].as_str().unwrap_or_default();
    assert!(error.contains("CompletedWithError"), "{o}");
    eprintln!("remove_broker of broker 7 failed with: {error}");
    // Priority: the remove_broker (created with the rebalance) was sent first, its retry after
    // the rebalance started. (Finish times are stamped when each operation's own pass sees them,
    // so they are not compared with the other's start.)
    let rebalance = &completed_task;
    let first = &failed[0];
    let retry = &o["status"]["currentTask"];
    let time = |v: &Value, f: &str| v[f].as_str().unwrap_or_else(|| panic!("no {f} in {v}")).to_string();
    assert!(time(first, "started") <= time(rebalance, "started"), "{first} / {rebalance}");
    assert!(time(rebalance, "started") <= time(retry, "started"), "{rebalance} / {retry}");

    // errorPolicy ignore: finished, and with its TTL of 0 deleted.
    cp.kubectl(&[
        "patch",
        "cco",
        "removebroker-7",
        "-n",
        &ns.name,
        "--type=merge",
        "-p",
        r#"{"spec":{"errorPolicy":"ignore"}}"#,
    ])
    .unwrap();
    wait_for("the ignored failure is deleted after its TTL", Duration::from_secs(30), &op, || {
        operation(cp, &ns.name, "removebroker-7").is_none()
    });
    eprintln!("FIGURE: done after {:?}", started.elapsed());
    drop(op);
}

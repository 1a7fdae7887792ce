//! The operator process against a real kube-apiserver, with the RBAC of config/rbac: a KafkaCluster
//! becomes ConfigMaps, Pods, PVCs and Services; status follows the Pods; a no-op reconcile writes
//! nothing; a spec change restarts one broker at a time; invalid specs and broker removal are
//! handled without touching data. The test plays kubelet by marking Pods Ready.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use koperator_e2e::process::Component;
use koperator_e2e::{ControlPlane, shared, tools::repo_root};
use serde_json::{Value, json};

const NS: &str = "koperator";

fn install(cp: &ControlPlane) {
    let root = repo_root();
    cp.install_crds().unwrap();
    let _ = cp.kubectl(&["create", "namespace", NS]);
    cp.kubectl(&["apply", "-k", root.join("config/rbac").to_str().unwrap()]).unwrap();
}

/// Starts an operator watching `watch`, electing a leader through Lease `lease`.
fn start_operator(cp: &ControlPlane, watch: &str, lease: &str, id: &str) -> (Component, u16) {
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(|| install(cp));
    let kubeconfig = cp.service_account_kubeconfig(NS, "koperator").unwrap();
    let port = koperator_e2e::process::free_port().unwrap();
    let args = [
        "--log-format=text".to_string(),
        format!("--namespace={watch}"),
        format!("--lease-name={lease}"),
        format!("--identity={id}"),
        "--lease-duration=4s".to_string(),
        format!("--metrics-listen=127.0.0.1:{port}"),
    ];
    let c = Component::start_with_env(
        "koperator",
        env!("CARGO_BIN_EXE_koperator").as_ref(),
        &args,
        &[
            ("KUBECONFIG".into(), kubeconfig.display().to_string()),
            ("RUST_LOG".into(), "info,koperator_operator=debug".into()),
        ],
        cp.dir.join(format!("logs/operator-{id}.log")),
        false,
    )
    .unwrap();
    (c, port)
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn op_log(op: &Component) -> String {
    std::fs::read_to_string(&op.log).unwrap_or_default()
}

fn get_json(cp: &ControlPlane, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&cp.kubectl(&a).unwrap()).unwrap()
}

fn wait_for(what: &str, timeout: Duration, op: &Component, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        if let Some(s) = op.exited() {
            panic!("operator exited ({s}):\n{}", op.log_tail(30));
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}\n--- operator log ---\n{}", op.log_tail(30));
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Plays kubelet: marks every Pod of `ns` Ready (once it exists) until stopped; records the
/// largest number of missing-or-unready brokers seen at once.
struct Kubelet {
    stop: Arc<AtomicBool>,
    max_down: Arc<Mutex<usize>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Kubelet {
    fn start(cp: &'static ControlPlane, ns: String, brokers: usize) -> Kubelet {
        let stop = Arc::new(AtomicBool::new(false));
        let max_down = Arc::new(Mutex::new(0));
        let (s, m) = (stop.clone(), max_down.clone());
        let handle = std::thread::spawn(move || {
            let mut seen_all = false;
            while !s.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                let Ok(out) = cp.kubectl(&["get", "pods", "-n", &ns, "-l", "app=kafka", "-o", "json"]) else {
                    continue;
                };
                let Ok(pods) = serde_json::from_str::<Value>(&out) else { continue };
                let items = pods["items"].as_array().cloned().unwrap_or_default();
                let mut ready = 0;
                for p in &items {
                    let is_ready = p["status"]["conditions"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
                    let deleting = !p["metadata"]["deletionTimestamp"].is_null();
                    if is_ready && !deleting {
                        ready += 1;
                    } else if !deleting {
                        let patch = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}).to_string();
                        let name = p["metadata"]["name"].as_str().unwrap();
                        let _ = cp.kubectl(&[
                            "patch",
                            "pod",
                            name,
                            "-n",
                            &ns,
                            "--subresource=status",
                            "--type=merge",
                            "-p",
                            &patch,
                        ]);
                    }
                }
                seen_all |= ready == brokers;
                if seen_all {
                    let mut md = m.lock().unwrap();
                    *md = (*md).max(brokers.saturating_sub(ready));
                }
            }
        });
        Kubelet { stop, max_down, handle: Some(handle) }
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn resource_versions(cp: &ControlPlane, ns: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for kind in ["pods", "configmaps", "services", "persistentvolumeclaims", "kafkaclusters"] {
        let list = get_json(cp, &["get", kind, "-n", ns]);
        for item in list["items"].as_array().unwrap() {
            out.insert(
                format!("{kind}/{}", item["metadata"]["name"].as_str().unwrap()),
                item["metadata"]["resourceVersion"].as_str().unwrap().to_string(),
            );
        }
    }
    out
}

fn pod_uids(cp: &ControlPlane, ns: &str) -> BTreeMap<String, String> {
    let pods = get_json(cp, &["get", "pods", "-n", ns, "-l", "app=kafka"]);
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            (p["metadata"]["name"].as_str().unwrap().to_string(), p["metadata"]["uid"].as_str().unwrap().to_string())
        })
        .collect()
}

/// The cluster-wide readOnlyConfig of a sample.
fn sample_read_only(sample: &str) -> String {
    let v: Value = serde_saphyr::from_str(sample).unwrap();
    v["spec"]["readOnlyConfig"].as_str().unwrap_or_default().to_string()
}

/// The operator has seen the latest spec, every broker runs it, and the cluster is Running.
fn settled(kc: &Value) -> bool {
    kc["status"]["observedGeneration"] == kc["metadata"]["generation"]
        && kc["status"]["state"] == "ClusterRunning"
        && kc["status"]["brokersState"]
            .as_object()
            .is_some_and(|m| m.values().all(|b| b["configurationState"] == "ConfigInSync"))
}

fn condition(kc: &Value, t: &str) -> Option<(String, String)> {
    kc["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
        .map(|c| (c["status"].as_str().unwrap().to_string(), c["reason"].as_str().unwrap_or("").to_string()))
}

#[test]
fn kafkacluster_lifecycle() {
    let cp = shared();
    let ns = cp.namespace("kc").unwrap();
    let ns_name = ns.name.clone();
    let (mut op, _) = start_operator(cp, &ns_name, "lifecycle", "lifecycle");
    let sample = std::fs::read_to_string(repo_root().join("config/samples/kafkacluster_kraft_combined.yaml")).unwrap();
    let applied = Instant::now();
    cp.kubectl_stdin(&["apply", "-n", &ns_name, "-f", "-"], Some(&sample)).unwrap();

    // Objects appear, named like Koperator's.
    wait_for("3 pods, configmaps and PVCs", Duration::from_secs(60), &op, || {
        let n = |k: &str| {
            get_json(cp, &["get", k, "-n", &ns_name, "-l", "kafka_cr=kafka-combined"])["items"]
                .as_array()
                .unwrap()
                .len()
        };
        n("pods") == 3 && n("configmaps") == 3 && n("persistentvolumeclaims") == 3 && n("services") == 1
    });
    eprintln!("FIGURE: 3-broker cluster: all objects written {} ms after kubectl apply", applied.elapsed().as_millis());
    let cm = get_json(cp, &["get", "configmap", "kafka-combined-config-1", "-n", &ns_name]);
    let props = cm["data"]["broker-config"].as_str().unwrap();
    assert!(props.contains("node.id=1\n") && props.contains("process.roles=broker,controller"), "{props}");
    let pvc = get_json(cp, &["get", "pvc", "kafka-combined-1-storage-kafka-logs", "-n", &ns_name]);
    assert!(pvc["metadata"]["ownerReferences"].is_null(), "PVCs have no owner: they outlive the cluster");
    let kc = get_json(cp, &["get", "kafkacluster", "kafka-combined", "-n", &ns_name]);
    assert_eq!(kc["status"]["state"], "ClusterReconciling");
    assert!(kc["status"]["clusterID"].as_str().is_some_and(|s| s.len() == 22));

    // Pods become Ready → the cluster is Running.
    let kubelet = Kubelet::start(cp, ns_name.clone(), 3);
    wait_for("ClusterRunning", Duration::from_secs(60), &op, || {
        let kc = get_json(cp, &["get", "kafkacluster", "kafka-combined", "-n", &ns_name]);
        kc["status"]["state"] == "ClusterRunning" && condition(&kc, "Ready").is_some_and(|c| c.0 == "True")
    });
    let printed = cp.kubectl(&["get", "kc", "-n", &ns_name]).unwrap();
    assert!(printed.contains("ClusterRunning") && printed.contains("True"), "{printed}");

    // A reconcile with nothing to do writes nothing: trigger one with an annotation and compare
    // resourceVersions of every object (the annotation write itself excluded).
    let before = resource_versions(cp, &ns_name);
    let reconciles_before = op_log(&op).matches("reconciled").count();
    let rv = cp
        .kubectl(&[
            "annotate",
            "kafkacluster",
            "kafka-combined",
            "-n",
            &ns_name,
            "touch=1",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .unwrap();
    wait_for("a reconcile after the annotation", Duration::from_secs(30), &op, || {
        op_log(&op).matches("reconciled").count() > reconciles_before
    });
    std::thread::sleep(Duration::from_secs(2));
    let mut after = resource_versions(cp, &ns_name);
    assert_eq!(after.remove("kafkaclusters/kafka-combined"), Some(rv), "the reconcile wrote the KafkaCluster (status)");
    let mut before = before;
    before.remove("kafkaclusters/kafka-combined");
    assert_eq!(before, after, "a no-op reconcile changed objects");
    let last = op_log(&op).lines().rev().find(|l| l.contains("reconciled")).unwrap_or_default().to_string();
    assert!(last.contains("writes=0"), "{last}");

    // Changing one broker's config changes only its ConfigMap and restarts only that broker.
    let rv_before = resource_versions(cp, &ns_name);
    let uids_before = pod_uids(cp, &ns_name);
    let mut one: Value = serde_saphyr::from_str(&sample).unwrap();
    one["spec"]["brokers"][1]["readOnlyConfig"] = json!("num.io.threads=9\n");
    cp.kubectl_stdin(&["apply", "-n", &ns_name, "-f", "-"], Some(&one.to_string())).unwrap();
    wait_for("broker 1 alone reconfigured and restarted", Duration::from_secs(60), &op, || {
        let cm = get_json(cp, &["get", "configmap", "kafka-combined-config-1", "-n", &ns_name]);
        let kc = get_json(cp, &["get", "kafkacluster", "kafka-combined", "-n", &ns_name]);
        let uids = pod_uids(cp, &ns_name);
        cm["data"]["broker-config"].as_str().unwrap().contains("num.io.threads=9")
            && uids.get("kafka-combined-1").is_some_and(|u| Some(u) != uids_before.get("kafka-combined-1"))
            && settled(&kc)
    });
    let rv_after = resource_versions(cp, &ns_name);
    let uids_after = pod_uids(cp, &ns_name);
    for other in ["0", "2"] {
        let cm = format!("configmaps/kafka-combined-config-{other}");
        assert_eq!(rv_before.get(&cm), rv_after.get(&cm), "{cm} changed");
        let pod = format!("kafka-combined-{other}");
        assert_eq!(uids_before.get(&pod), uids_after.get(&pod), "{pod} was restarted");
    }

    // A cluster-wide change rolls brokers one at a time, and survives the operator being
    // killed in the middle of the roll.
    let mut all = one.clone();
    all["spec"]["readOnlyConfig"] = json!(sample_read_only(&sample) + "num.network.threads=5\n");
    let changed = all.to_string();
    cp.kubectl_stdin(&["apply", "-n", &ns_name, "-f", "-"], Some(&changed)).unwrap();
    wait_for("the roll to start", Duration::from_secs(60), &op, || op_log(&op).contains("restarting broker"));
    op.stop(Duration::ZERO);
    let (restarted, metrics_port) = start_operator(cp, &ns_name, "lifecycle", "lifecycle");
    op = restarted;
    wait_for("all ConfigMaps updated and brokers restarted", Duration::from_secs(120), &op, || {
        let kc = get_json(cp, &["get", "kafkacluster", "kafka-combined", "-n", &ns_name]);
        let cms = get_json(cp, &["get", "configmaps", "-n", &ns_name, "-l", "kafka_cr=kafka-combined"]);
        let all_new = cms["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["data"]["broker-config"].as_str().unwrap().contains("num.network.threads=5"));
        all_new && settled(&kc)
    });
    let events = cp.kubectl(&["get", "events.events.k8s.io", "-n", &ns_name, "-o", "json"]).unwrap();
    let restarts = events.matches("\"reason\": \"RollingRestart\"").count();
    assert!(restarts >= 1, "RollingRestart events: {events}");
    let max_down = *kubelet.max_down.lock().unwrap();
    assert!(max_down <= 1, "{max_down} brokers were down at once during the roll");
    eprintln!("FIGURE: rolling restart of 3 brokers, at most {max_down} down at a time");

    // A deleted broker Pod comes back with the same PVC.
    cp.kubectl(&["delete", "pod", "kafka-combined-1", "-n", &ns_name, "--wait=false"]).unwrap();
    wait_for("pod kafka-combined-1 recreated", Duration::from_secs(60), &op, || {
        let out = cp.kubectl_output(&["get", "pod", "kafka-combined-1", "-n", &ns_name, "-o", "json"], None).unwrap();
        out.status.success() && {
            let p: Value = serde_json::from_slice(&out.stdout).unwrap();
            p["metadata"]["deletionTimestamp"].is_null()
                && p["spec"]["volumes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v["persistentVolumeClaim"]["claimName"] == "kafka-combined-1-storage-kafka-logs")
        }
    });

    // Removing a broker waits for the explicit annotation; the PVC stays.
    let mut obj: Value = serde_saphyr::from_str(&changed).unwrap();
    obj["spec"]["brokers"].as_array_mut().unwrap().pop();
    cp.kubectl_stdin(&["apply", "-n", &ns_name, "-f", "-"], Some(&obj.to_string())).unwrap();
    wait_for("BrokerRemovalPending", Duration::from_secs(60), &op, || {
        let kc = get_json(cp, &["get", "kafkacluster", "kafka-combined", "-n", &ns_name]);
        condition(&kc, "Degraded").is_some_and(|c| c == ("True".into(), "BrokerRemovalPending".into()))
    });
    assert!(cp.kubectl(&["get", "pod", "kafka-combined-2", "-n", &ns_name]).is_ok(), "pod kept until annotated");
    cp.kubectl(&[
        "annotate",
        "kafkacluster",
        "kafka-combined",
        "-n",
        &ns_name,
        "koperator.banzaicloud.io/allow-broker-removal=true",
    ])
    .unwrap();
    wait_for("pod of broker 2 deleted", Duration::from_secs(60), &op, || {
        cp.kubectl_output(&["get", "pod", "kafka-combined-2", "-n", &ns_name], None)
            .map(|o| !o.status.success())
            .unwrap_or(false)
    });
    assert!(cp.kubectl(&["get", "pvc", "kafka-combined-2-storage-kafka-logs", "-n", &ns_name]).is_ok(), "PVC kept");

    // An invalid spec that slipped past admission (no webhook here) sets Degraded and touches nothing.
    wait_for("a settled cluster of 2 brokers", Duration::from_secs(60), &op, || {
        let kc = get_json(cp, &["get", "kafkacluster", "kafka-combined", "-n", &ns_name]);
        settled(&kc) && condition(&kc, "Degraded").is_some_and(|c| c.0 == "False")
    });
    drop(kubelet);
    let before = resource_versions(cp, &ns_name);
    let mut bad = obj.clone();
    bad["spec"]["brokers"][1]["id"] = json!(0);
    cp.kubectl_stdin(&["apply", "-n", &ns_name, "-f", "-"], Some(&bad.to_string())).unwrap();
    wait_for("InvalidSpec", Duration::from_secs(60), &op, || {
        let kc = get_json(cp, &["get", "kafkacluster", "kafka-combined", "-n", &ns_name]);
        condition(&kc, "Degraded").is_some_and(|c| c == ("True".into(), "InvalidSpec".into()))
    });
    let after = resource_versions(cp, &ns_name);
    for (k, v) in &before {
        if !k.starts_with("kafkaclusters/") {
            assert_eq!(after.get(k), Some(v), "{k} touched while the spec is invalid");
        }
    }
    // Deleting the cluster removes Pods/ConfigMaps/Services (owner references) and keeps PVCs.
    cp.kubectl(&["delete", "kafkacluster", "kafka-combined", "-n", &ns_name, "--timeout=60s"]).unwrap();
    wait_for("pods garbage-collected", Duration::from_secs(60), &op, || {
        get_json(cp, &["get", "pods", "-n", &ns_name, "-l", "kafka_cr=kafka-combined"])["items"]
            .as_array()
            .unwrap()
            .is_empty()
    });
    let kept = get_json(cp, &["get", "pvc", "-n", &ns_name, "-l", "kafka_cr=kafka-combined"]);
    assert_eq!(kept["items"].as_array().unwrap().len(), 3, "PVCs are kept when the cluster is deleted");

    let metrics = http_get(metrics_port, "/metrics");
    assert!(metrics.contains("koperator_reconciles_total{result=\"ok\"}"), "{metrics}");
    assert!(metrics.contains("koperator_leader 1"), "{metrics}");
    assert!(http_get(metrics_port, "/readyz").starts_with("HTTP/1.1 200"));
    op.stop(Duration::from_secs(5));
}

#[test]
fn one_replica_leads_and_a_standby_takes_over() {
    let cp = shared();
    let ns = cp.namespace("le").unwrap();
    let (a, _) = start_operator(cp, &ns.name, "election", "replica-a");
    wait_for("replica-a leads", Duration::from_secs(30), &a, || op_log(&a).contains("acquired leadership"));
    let (b, _) = start_operator(cp, &ns.name, "election", "replica-b");
    wait_for("replica-b waits", Duration::from_secs(30), &b, || op_log(&b).contains("another replica leads"));
    let sample = std::fs::read_to_string(repo_root().join("config/samples/kafkacluster_kraft_combined.yaml")).unwrap();
    cp.kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], Some(&sample)).unwrap();
    wait_for("the leader reconciles", Duration::from_secs(30), &a, || op_log(&a).contains("reconciled"));
    std::thread::sleep(Duration::from_secs(2));
    assert!(!op_log(&b).contains("reconciled"), "the standby must not reconcile");

    let killed = Instant::now();
    a.stop(Duration::from_secs(0));
    wait_for("replica-b takes over", Duration::from_secs(30), &b, || op_log(&b).contains("acquired leadership"));
    let took_over = killed.elapsed();
    let cm_before = get_json(cp, &["get", "configmap", "kafka-combined-config-0", "-n", &ns.name]);
    let changed = sample.replace("min.insync.replicas=2", "min.insync.replicas=1");
    cp.kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], Some(&changed)).unwrap();
    wait_for("the new leader applies the change", Duration::from_secs(30), &b, || {
        let cm = get_json(cp, &["get", "configmap", "kafka-combined-config-0", "-n", &ns.name]);
        cm["data"]["broker-config"].as_str().unwrap().contains("min.insync.replicas=1")
    });
    assert_ne!(
        cm_before["metadata"]["resourceVersion"],
        get_json(cp, &["get", "configmap", "kafka-combined-config-0", "-n", &ns.name])["metadata"]["resourceVersion"]
    );
    eprintln!("FIGURE: standby took over {} ms after the leader was killed (lease 4s)", took_over.as_millis());

    // Opting in deletes the PVCs with the cluster.
    cp.kubectl(&[
        "annotate",
        "kafkacluster",
        "kafka-combined",
        "-n",
        &ns.name,
        "koperator.banzaicloud.io/delete-pvcs-on-deletion=true",
    ])
    .unwrap();
    cp.kubectl(&["delete", "kafkacluster", "kafka-combined", "-n", &ns.name, "--timeout=60s"]).unwrap();
    wait_for("PVCs deleted on opt-in", Duration::from_secs(60), &b, || {
        get_json(cp, &["get", "pvc", "-n", &ns.name, "-l", "kafka_cr=kafka-combined"])["items"]
            .as_array()
            .unwrap()
            .is_empty()
    });
    b.stop(Duration::from_secs(5));
}

#[test]
fn removing_a_broker_only_node_touches_no_other_broker() {
    let cp = shared();
    let ns = cp.namespace("rm").unwrap();
    let (op, _) = start_operator(cp, &ns.name, "removal", "removal");
    let sample = std::fs::read_to_string(repo_root().join("config/samples/kafkacluster_kraft.yaml")).unwrap();
    cp.kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], Some(&sample)).unwrap();
    let kubelet = Kubelet::start(cp, ns.name.clone(), 6);
    wait_for("6 nodes running", Duration::from_secs(90), &op, || {
        settled(&get_json(cp, &["get", "kafkacluster", "kafka", "-n", &ns.name]))
    });
    let uids_before = pod_uids(cp, &ns.name);
    let rv_before = resource_versions(cp, &ns.name);
    let mut obj: Value = serde_saphyr::from_str(&sample).unwrap();
    obj["metadata"]["annotations"] = json!({"koperator.banzaicloud.io/allow-broker-removal": "true"});
    obj["spec"]["brokers"].as_array_mut().unwrap().retain(|b| b["id"] != 102);
    cp.kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], Some(&obj.to_string())).unwrap();
    wait_for("broker 102 removed", Duration::from_secs(60), &op, || {
        !pod_uids(cp, &ns.name).contains_key("kafka-102")
            && settled(&get_json(cp, &["get", "kafkacluster", "kafka", "-n", &ns.name]))
    });
    let uids_after = pod_uids(cp, &ns.name);
    let rv_after = resource_versions(cp, &ns.name);
    for id in [0, 1, 2, 100, 101] {
        let pod = format!("kafka-{id}");
        assert_eq!(uids_before.get(&pod), uids_after.get(&pod), "{pod} was restarted");
        let cm = format!("configmaps/kafka-config-{id}");
        assert_eq!(rv_before.get(&cm), rv_after.get(&cm), "{cm} changed");
    }
    assert!(!rv_after.contains_key("configmaps/kafka-config-102"), "broker 102's ConfigMap is removed");
    assert!(
        rv_after.contains_key("persistentvolumeclaims/kafka-102-storage-kafka-logs-broker"),
        "broker 102's PVC is kept"
    );
    drop(kubelet);
    op.stop(Duration::from_secs(5));
}

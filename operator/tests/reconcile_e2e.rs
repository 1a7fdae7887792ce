//! The operator process against a real kube-apiserver, with the RBAC of config/rbac, for
//! behaviour that needs no running Kafka: leader election and standby takeover, PVC deletion
//! on opt-in, broker removal that waits for its annotation and touches no other broker, the
//! objects of Cruise Control and of Envoy. The
//! test plays kubelet by marking Pods Ready. Everything that needs brokers runs on real Kafka
//! in `kafka_e2e.rs`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use koperator_e2e::{ControlPlane, shared, tools::repo_root};
use serde_json::{Value, json};

/// Plays kubelet without running anything: marks every Pod of `ns` Ready until stopped.
struct Kubelet {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Kubelet {
    fn start(cp: &'static ControlPlane, ns: String) -> Kubelet {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                let Ok(out) = cp.kubectl(&["get", "pods", "-n", &ns, "-l", "app=kafka", "-o", "json"]) else {
                    continue;
                };
                let Ok(pods) = serde_json::from_str::<Value>(&out) else { continue };
                let items = pods["items"].as_array().cloned().unwrap_or_default();
                for p in &items {
                    let is_ready = p["status"]["conditions"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
                    let deleting = !p["metadata"]["deletionTimestamp"].is_null();
                    if !is_ready && !deleting {
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
            }
        });
        Kubelet { stop, handle: Some(handle) }
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

#[test]
fn one_replica_leads_and_a_standby_takes_over() {
    let cp = shared();
    let ns = cp.namespace("le").unwrap();
    let a = start_operator(cp, &ns.name, "election", "replica-a", &[]);
    wait_for("replica-a leads", Duration::from_secs(30), &a, || leads(cp, &a));
    let b = start_operator(cp, &ns.name, "election", "replica-b", &[]);
    // The standby is up (it answers /readyz and /metrics) and does not lead.
    wait_for("replica-b up and standing by", Duration::from_secs(30), &b, || {
        try_http_get(b.port, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 200"))
            && leader_gauge(b.port) == Some(0.0)
    });
    assert_eq!(lease_holder(cp, "election").as_deref(), Some("replica-a"), "the standby took the Lease");
    let sample = std::fs::read_to_string(repo_root().join("config/samples/kafkacluster_kraft_combined.yaml")).unwrap();
    cp.kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], Some(&sample)).unwrap();
    wait_for("the leader reconciles", Duration::from_secs(30), &a, || reconciles_ok(a.port, "kafkacluster") >= 1.0);
    std::thread::sleep(Duration::from_secs(2));
    let standby = metrics_text(b.port).expect("the standby serves /metrics");
    assert_eq!(
        sample_sum(&standby, "koperator_reconciles_total", &[]).unwrap_or(0.0),
        0.0,
        "the standby must not reconcile:\n{standby}"
    );
    assert_eq!(
        sample_sum(&standby, "koperator_api_writes_total", &[]).unwrap_or(0.0),
        0.0,
        "the standby wrote:\n{standby}"
    );
    assert_eq!(common::sample(&standby, "koperator_leader", &[]), Some(0.0), "{standby}");

    let killed = Instant::now();
    a.stop(Duration::from_secs(0));
    wait_for("replica-b takes over", Duration::from_secs(30), &b, || leads(cp, &b));
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
    assert!(reconciles_ok(b.port, "kafkacluster") >= 1.0, "the new leader counted no reconcile");
    assert!(api_writes(b.port, "kafkacluster") >= 1.0, "the new leader counted no write");
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
    let op = start_operator(cp, &ns.name, "removal", "removal", &[]);
    let sample = std::fs::read_to_string(repo_root().join("config/samples/kafkacluster_kraft.yaml")).unwrap();
    cp.kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], Some(&sample)).unwrap();
    let kubelet = Kubelet::start(cp, ns.name.clone());
    wait_for("6 nodes running", Duration::from_secs(90), &op, || {
        settled(&get_json(cp, &["get", "kafkacluster", "kafka", "-n", &ns.name]))
    });
    let uids_before = pod_uids(cp, &ns.name);
    let rv_before = resource_versions(cp, &ns.name);
    // Removing a broker waits for the explicit annotation.
    let mut obj: Value = serde_saphyr::from_str(&sample).unwrap();
    obj["spec"]["brokers"].as_array_mut().unwrap().retain(|b| b["id"] != 102);
    cp.kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], Some(&obj.to_string())).unwrap();
    wait_for("BrokerRemovalPending", Duration::from_secs(60), &op, || {
        let kc = get_json(cp, &["get", "kafkacluster", "kafka", "-n", &ns.name]);
        condition(&kc, "Degraded").is_some_and(|c| c == ("True".into(), "BrokerRemovalPending".into()))
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(pod_uids(cp, &ns.name).contains_key("kafka-102"), "pod kept until annotated");
    obj["metadata"]["annotations"] = json!({"koperator.banzaicloud.io/force-broker-removal": "true"});
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
        rv_after.keys().any(|k| k.starts_with("persistentvolumeclaims/kafka-102-storage-kafka-logs-broker-")),
        "broker 102's PVC is kept"
    );
    let removed = events(cp, &ns.name);
    assert!(
        removed.iter().any(|e| e["reason"] == "BrokerRemoved"),
        "no BrokerRemoved Event: {}",
        serde_json::to_string_pretty(&removed).unwrap()
    );
    drop(kubelet);
    op.stop(Duration::from_secs(5));
}

/// Confused deputy: a tenant who may create ConfigMaps and Services (not Pods of the operator's
/// choosing) makes objects with the names the operator is about to use, without labels or
/// owner. Server-side apply with `force` would take them over; the operator must leave them
/// byte for byte as they are and say which ones block it.
#[test]
fn same_named_objects_someone_else_made_are_left_alone() {
    let cp = shared();
    let ns = cp.namespace("deputy").unwrap();
    let op = start_operator(cp, &ns.name, "deputy", "deputy", &[]);
    let planted = json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kafka-combined-config-0"},
             "data": {"owner": "tenant"}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kafka-combined-headless"},
             "spec": {"ports": [{"name": "tenant", "port": 1234}], "selector": {"app": "tenant"}}},
        ]
    });
    cp.kubectl_stdin(&["create", "-n", &ns.name, "-f", "-"], Some(&planted.to_string())).unwrap();
    let before = |kind: &str, name: &str| get_json(cp, &["get", kind, name, "-n", &ns.name, "--show-managed-fields"]);
    let (cm_before, svc_before) =
        (before("configmap", "kafka-combined-config-0"), before("service", "kafka-combined-headless"));
    let sample = std::fs::read_to_string(repo_root().join("config/samples/kafkacluster_kraft_combined.yaml")).unwrap();
    cp.kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], Some(&sample)).unwrap();
    wait_for("Degraded/ForeignObject", Duration::from_secs(30), &op, || {
        let kc = get_json(cp, &["get", "kafkacluster", "kafka-combined", "-n", &ns.name]);
        condition(&kc, "Degraded").is_some_and(|c| c == ("True".into(), "ForeignObject".into()))
    });
    // The operator did its other work meanwhile (broker 1's ConfigMap), so it has reconciled.
    wait_for("the other objects applied", Duration::from_secs(30), &op, || {
        cp.kubectl(&["get", "configmap", "kafka-combined-config-1", "-n", &ns.name]).is_ok()
    });
    std::thread::sleep(Duration::from_secs(2));
    let kc = get_json(cp, &["get", "kafkacluster", "kafka-combined", "-n", &ns.name]);
    let message = kc["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .and_then(|c| c["message"].as_str())
        .unwrap()
        .to_string();
    for name in ["ConfigMap/kafka-combined-config-0", "Service/kafka-combined-headless"] {
        assert!(message.contains(name), "{name} is not named: {message}");
    }
    let cm = before("configmap", "kafka-combined-config-0");
    let svc = before("service", "kafka-combined-headless");
    assert_eq!(cm["metadata"]["resourceVersion"], cm_before["metadata"]["resourceVersion"], "ConfigMap written: {cm}");
    assert_eq!(cm["data"], json!({"owner": "tenant"}));
    let managers: Vec<&Value> =
        cm["metadata"]["managedFields"].as_array().unwrap().iter().map(|m| &m["manager"]).collect();
    assert!(!managers.is_empty() && managers.iter().all(|m| *m != "koperator"), "{cm}");
    assert_eq!(svc["metadata"]["resourceVersion"], svc_before["metadata"]["resourceVersion"], "Service written: {svc}");
    assert_eq!(svc["spec"]["selector"], json!({"app": "tenant"}));
    // Broker 0's Pod would mount the tenant's ConfigMap: it is not created while that stays.
    assert!(cp.kubectl(&["get", "pod", "kafka-combined-0", "-n", &ns.name]).is_err(), "broker 0 started on theirs");
    assert!(cp.kubectl(&["get", "pod", "kafka-combined-1", "-n", &ns.name]).is_ok(), "broker 1 not started");
    // Once the tenant's object goes, the operator makes its own.
    cp.kubectl(&["delete", "configmap", "kafka-combined-config-0", "-n", &ns.name]).unwrap();
    wait_for("the operator's own ConfigMap", Duration::from_secs(30), &op, || {
        cp.kubectl(&["get", "configmap", "kafka-combined-config-0", "-n", &ns.name, "-o", "json"])
            .ok()
            .and_then(|o| serde_json::from_str::<Value>(&o).ok())
            .is_some_and(|cm| cm["metadata"]["ownerReferences"][0]["kind"] == "KafkaCluster")
    });
    op.stop(Duration::from_secs(5));
}

/// Cruise Control, from the sample that asks for it, with the RBAC of config/rbac: its
/// ConfigMaps, Service, metrics KafkaTopic and Deployment are applied once the brokers are
/// Ready, owned by the cluster; when the spec no longer asks for it they go, the metrics topic
/// stays.
#[test]
fn cruise_control_objects_come_with_its_config_and_go_with_it() {
    let cp = shared();
    let ns = cp.namespace("cc").unwrap();
    let op = start_operator(cp, &ns.name, "cruise-control", "cruise-control", &[]);
    let sample =
        std::fs::read_to_string(repo_root().join("config/samples/kafkacluster_kraft_cruisecontrol.yaml")).unwrap();
    cp.kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], Some(&sample)).unwrap();
    let kubelet = Kubelet::start(cp, ns.name.clone());
    let exists = |kind: &str, name: &str| cp.kubectl(&["get", kind, name, "-n", &ns.name]).is_ok();
    let objects = [
        ("configmap", "kafka-cc-cc-jmx-exporter"),
        ("configmap", "kafka-cc-cruisecontrol-config"),
        ("service", "kafka-cc-cruisecontrol-svc"),
        ("deployment", "kafka-cc-cruisecontrol"),
    ];
    wait_for("Cruise Control applied", Duration::from_secs(90), &op, || {
        objects.iter().all(|(k, n)| exists(k, n)) && exists("kafkatopic", "kafka-cc-cruise-control-topic")
    });
    for (kind, name) in objects.iter().chain(&[("kafkatopic", "kafka-cc-cruise-control-topic")]) {
        let o = get_json(cp, &["get", kind, name, "-n", &ns.name]);
        let owner = &o["metadata"]["ownerReferences"][0];
        assert_eq!(
            (owner["kind"].as_str(), owner["name"].as_str()),
            (Some("KafkaCluster"), Some("kafka-cc")),
            "{kind}/{name}"
        );
        assert_eq!(owner["controller"], true, "{kind}/{name}");
    }
    let d = get_json(cp, &["get", "deployment", "kafka-cc-cruisecontrol", "-n", &ns.name]);
    assert_eq!(d["spec"]["template"]["metadata"]["labels"]["app"], "cruisecontrol");
    let topic = get_json(cp, &["get", "kafkatopic", "kafka-cc-cruise-control-topic", "-n", &ns.name]);
    assert_eq!(topic["spec"]["name"], "__CruiseControlMetrics");
    wait_for("cruiseControlTopicStatus", Duration::from_secs(30), &op, || {
        let kc = get_json(cp, &["get", "kafkacluster", "kafka-cc", "-n", &ns.name]);
        kc["status"]["cruiseControlTopicStatus"] == "CruiseControlTopicReady"
    });
    let broker = get_json(cp, &["get", "configmap", "kafka-cc-config-0", "-n", &ns.name]);
    let props = broker["data"]["broker-config"].as_str().unwrap();
    assert!(
        props
            .contains("metric.reporters=com.linkedin.kafka.cruisecontrol.metricsreporter.CruiseControlMetricsReporter"),
        "{props}"
    );

    let mut obj: Value = serde_saphyr::from_str(&sample).unwrap();
    obj["spec"]["cruiseControlConfig"] = json!({});
    cp.kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], Some(&obj.to_string())).unwrap();
    wait_for("Cruise Control removed", Duration::from_secs(60), &op, || objects.iter().all(|(k, n)| !exists(k, n)));
    assert!(exists("kafkatopic", "kafka-cc-cruise-control-topic"), "the metrics topic is kept");
    drop(kubelet);
    op.stop(Duration::from_secs(5));
}

#[test]
fn envoy_comes_with_an_external_load_balancer_listener_and_goes_only_when_asked() {
    let cp = shared();
    let ns = cp.namespace("envoy").unwrap();
    let op = start_operator(cp, &ns.name, "envoy", "envoy", &[]);
    let sample = std::fs::read_to_string(repo_root().join("config/samples/kafkacluster_kraft_combined.yaml")).unwrap();
    let mut obj: Value = serde_saphyr::from_str(&sample).unwrap();
    obj["spec"]["listenersConfig"]["externalListeners"] = json!([{
        "type": "plaintext", "name": "external", "containerPort": 9094, "externalStartingPort": 19090,
        "hostnameOverride": "kafka.example.com"
    }]);
    obj["spec"]["envoyConfig"] = json!({"replicas": 2, "disruptionBudget": {"create": true, "budget": "1"}});
    let name = obj["metadata"]["name"].as_str().unwrap().to_string();
    cp.kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], Some(&obj.to_string())).unwrap();
    let kubelet = Kubelet::start(cp, ns.name.clone());
    let exists = |kind: &str, n: &str| cp.kubectl(&["get", kind, n, "-n", &ns.name]).is_ok();
    let objects = [
        ("configmap", format!("envoy-config-external-{name}")),
        ("deployment", format!("envoy-external-{name}")),
        ("service", format!("envoy-loadbalancer-external-{name}")),
        ("poddisruptionbudget", format!("envoy-external-{name}-pdb")),
    ];
    wait_for("Envoy applied", Duration::from_secs(90), &op, || objects.iter().all(|(k, n)| exists(k, n)));
    for (kind, n) in &objects {
        let o = get_json(cp, &["get", kind, n, "-n", &ns.name]);
        assert_eq!(o["metadata"]["ownerReferences"][0]["name"], name.as_str(), "{kind}/{n}");
        assert_eq!(o["metadata"]["labels"]["app"], "envoyingress", "{kind}/{n}");
    }
    let svc = get_json(cp, &["get", "service", &objects[2].1, "-n", &ns.name]);
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    let ports: Vec<(String, i64)> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p["port"].as_i64().unwrap()))
        .collect();
    assert_eq!(ports.len(), 5, "3 brokers, any-cast, health: {ports:?}");
    let d = get_json(cp, &["get", "deployment", &objects[1].1, "-n", &ns.name]);
    assert_eq!(d["spec"]["replicas"], 2);
    assert!(!exists("service", &format!("{name}-0-external")), "no per-broker LoadBalancer next to Envoy");
    let cm = get_json(cp, &["get", "configmap", &objects[0].1, "-n", &ns.name]);
    let config: Value = serde_json::from_str(cm["data"]["envoy.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(config["static_resources"]["clusters"][0]["name"], "broker-0");
    // A deleted Envoy Deployment is put back (its watch wakes the cluster).
    cp.kubectl(&["delete", "deployment", &objects[1].1, "-n", &ns.name, "--wait=false"]).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    wait_for("Envoy Deployment put back", Duration::from_secs(30), &op, || exists("deployment", &objects[1].1));

    // Moved to NodePort: Envoy stays until removeUnusedIngressResources says otherwise.
    obj["spec"]["listenersConfig"]["externalListeners"][0]["accessMethod"] = json!("NodePort");
    obj["spec"]["listenersConfig"]["externalListeners"][0]["externalStartingPort"] = json!(32000);
    cp.kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], Some(&obj.to_string())).unwrap();
    wait_for("NodePort Services", Duration::from_secs(60), &op, || exists("service", &format!("{name}-0-external")));
    assert!(objects.iter().all(|(k, n)| exists(k, n)), "Envoy kept by default");
    obj["spec"]["removeUnusedIngressResources"] = json!(true);
    cp.kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], Some(&obj.to_string())).unwrap();
    wait_for("Envoy removed", Duration::from_secs(60), &op, || objects.iter().all(|(k, n)| !exists(k, n)));
    drop(kubelet);
    op.stop(Duration::from_secs(5));
}

/// The routes of ClusterIP listeners against the real Contour and Gateway API CRDs: before the
/// CRDs are installed the cluster says so (Degraded/IngressNotReady) and everything else goes
/// on; once they are, the HTTPProxies (TLS passthrough) and TLSRoutes are created, owned by
/// their cluster, and the condition clears.
#[test]
fn contour_and_gateway_routes_wait_for_their_crds_then_are_applied() {
    let cp = shared();
    let ns = cp.namespace("routes").unwrap();
    let op = start_operator(cp, &ns.name, "routes", "routes", &[]);
    let kubelet = Kubelet::start(cp, ns.name.clone());
    let sample = |file: &str| -> Value {
        let text = std::fs::read_to_string(repo_root().join("config/samples").join(file)).unwrap();
        serde_saphyr::from_str(&text).unwrap()
    };
    let contour = sample("kafkacluster_contour_passthrough.yaml");
    cp.kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], Some(&contour.to_string())).unwrap();
    let get = |kind: &str, name: &str| cp.kubectl(&["get", kind, name, "-n", &ns.name, "-o", "json"]).ok();
    let degraded = |name: &str| {
        let kc: Value = serde_json::from_str(&get("kafkacluster", name).unwrap_or_default()).unwrap_or_default();
        condition(&kc, "Degraded").filter(|c| c.0 == "True").map(|c| c.1)
    };
    let not_installed = || {
        let kc: Value =
            serde_json::from_str(&get("kafkacluster", "kafka-contour-pt").unwrap_or_default()).unwrap_or_default();
        let c = kc["status"]["conditions"].as_array().cloned().unwrap_or_default();
        c.iter().any(|c| {
            c["type"] == "Degraded"
                && c["reason"] == "IngressNotReady"
                && c["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("httpproxies.projectcontour.io CRD is not installed"))
        })
    };
    wait_for("the missing HTTPProxy CRD reported", Duration::from_secs(90), &op, not_installed);
    assert!(get("service", "countour-svc-external-az1-kafka-contour-pt").is_some(), "the Services go on meanwhile");

    let crds = koperator_e2e::tools::cache_dir().join("ingress-crds");
    for sub in ["contour", "gateway-api"] {
        cp.kubectl(&["apply", "--server-side", "-f", &crds.join(sub).display().to_string()]).unwrap();
    }
    for crd in ["httpproxies.projectcontour.io", "tlsroutes.gateway.networking.k8s.io"] {
        cp.wait_established(crd, Duration::from_secs(60)).unwrap();
    }
    let gateway = sample("kafkacluster_gateway_api.yaml");
    cp.kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], Some(&gateway.to_string())).unwrap();
    let proxies = [
        "kafka-az1.example.com",
        "kafka-az2.example.com",
        "broker-0.kafka.example.com",
        "broker-1.kafka.example.com",
        "az2-broker-2.kafka.example.com",
    ];
    wait_for("the HTTPProxies", Duration::from_secs(90), &op, || {
        proxies.iter().all(|p| get("httpproxies.projectcontour.io", p).is_some())
    });
    for p in proxies {
        let proxy: Value = serde_json::from_str(&get("httpproxies.projectcontour.io", p).unwrap()).unwrap();
        assert_eq!(proxy["spec"]["virtualhost"]["fqdn"], p, "{proxy}");
        assert_eq!(proxy["spec"]["virtualhost"]["tls"]["passthrough"], true, "{proxy}");
        assert_eq!(proxy["metadata"]["ownerReferences"][0]["name"], "kafka-contour-pt", "{proxy}");
        let service = proxy["spec"]["tcpproxy"]["services"][0]["name"].as_str().unwrap().to_string();
        assert!(get("service", &service).is_some(), "{p} routes to Service {service}, which exists");
    }
    wait_for("the TLSRoutes", Duration::from_secs(90), &op, || {
        let out = cp.kubectl(&["get", "tlsroutes.gateway.networking.k8s.io", "-n", &ns.name, "-o", "json"]).unwrap();
        let routes: Value = serde_json::from_str(&out).unwrap();
        routes["items"].as_array().is_some_and(|r| r.len() == 4)
    });
    let out = cp.kubectl(&["get", "tlsroutes.gateway.networking.k8s.io", "-n", &ns.name, "-o", "json"]).unwrap();
    let routes: Value = serde_json::from_str(&out).unwrap();
    for r in routes["items"].as_array().unwrap() {
        assert_eq!(r["spec"]["parentRefs"][0]["name"], "kafka-gateway", "{r}");
        assert_eq!(r["metadata"]["ownerReferences"][0]["name"], "kafka-gateway", "{r}");
    }
    wait_for("the Degraded condition cleared", Duration::from_secs(60), &op, || {
        degraded("kafka-contour-pt").is_none_or(|r| r != "IngressNotReady")
    });
    drop(kubelet);
    op.stop(Duration::from_secs(5));
}

//! The helm chart with the real helm: lint, golden templates, schema rejection of typos, and
//! install / upgrade / uninstall on the real API server with the chart's own Deployments run
//! by the binary node: the webhook answers the API server through its Service, rotates its
//! certificates without failing an admission, and the operator replicas elect a leader.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use koperator_e2e::binary_node::{self, BinaryNode};
use koperator_e2e::{ControlPlane, shared, tools};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::Value;

fn chart() -> PathBuf {
    tools::repo_root().join("charts/koperator")
}

fn helm(cp: &ControlPlane, args: &[&str]) -> Result<String, String> {
    cp.helm(args).map_err(|e| format!("{e:#}"))
}

const VALUE_SETS: [(&str, Option<&str>); 4] = [
    ("default", None),
    ("ha-certmanager", Some("values-ha-certmanager.yaml")),
    ("single-namespace", Some("values-single-namespace.yaml")),
    ("monitoring", Some("values-monitoring.yaml")),
];

/// The chart's PrometheusRules (Kafka alerts, self-healing with either disk command) pass
/// Prometheus' own `promtool check rules`: every expression parses, every template renders.
#[test]
fn shipped_prometheus_rules_pass_promtool() {
    let cp = shared();
    let promtool = tools::tool("promtool").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let values = chart().join("tests/values-monitoring.yaml").display().to_string();
    for disk in ["resizePvc", "addPvc"] {
        let set = format!("kafkaMonitoring.prometheusRule.selfHealing.diskCommand={disk}");
        let chart_dir = chart().display().to_string();
        let rendered = helm(cp, &["template", "koperator", &chart_dir, "-f", &values, "--set", &set]).unwrap();
        let mut groups = Vec::new();
        for doc in rendered.split("\n---").filter(|d| d.contains("kind: PrometheusRule")) {
            let v: Value = serde_saphyr::from_str(doc).unwrap();
            groups.extend(v["spec"]["groups"].as_array().cloned().unwrap_or_default());
        }
        let names: Vec<&str> = groups.iter().filter_map(|g| g["name"].as_str()).collect();
        assert!(names.contains(&"kafka") && names.contains(&"kafka-self-healing"), "{names:?}");
        let file = dir.path().join(format!("rules-{disk}.yaml"));
        std::fs::write(&file, serde_json::json!({ "groups": groups }).to_string()).unwrap();
        let out = std::process::Command::new(&promtool).args(["check", "rules"]).arg(&file).output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "promtool check rules ({disk}):\n{said}");
        assert!(said.contains("SUCCESS: 8 rules found"), "six Kafka alerts and two self-healing rules:\n{said}");
    }
}

#[test]
fn lint_and_golden_templates() {
    let cp = shared();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for (name, values) in VALUE_SETS {
        let mut args: Vec<String> = vec![
            "template".into(),
            "koperator".into(),
            chart().display().to_string(),
            "--namespace".into(),
            "koperator".into(),
        ];
        let mut lint = vec!["lint".to_string(), chart().to_str().unwrap().to_string()];
        if let Some(v) = values {
            let f = chart().join("tests").join(v).display().to_string();
            args.extend(["-f".to_string(), f.clone()]);
            lint.extend(["-f".to_string(), f]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let lint: Vec<&str> = lint.iter().map(String::as_str).collect();
        helm(cp, &lint).unwrap_or_else(|e| panic!("helm lint ({name}): {e}"));
        let rendered = helm(cp, &args).unwrap_or_else(|e| panic!("helm template ({name}): {e}"));
        let file = chart().join("tests/golden").join(format!("{name}.yaml"));
        if update {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, &rendered).unwrap();
        }
        let want = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(want == rendered, "{} differs from `helm template`; run `make golden` and review", file.display());
    }
}

#[test]
fn a_typo_in_values_fails_with_a_clear_message() {
    let cp = shared();
    let err = helm(cp, &["template", "k", chart().to_str().unwrap(), "--set", "webhook.replicass=3"]).unwrap_err();
    assert!(err.contains("additional properties 'replicass' not allowed"), "{err}");
    let err = helm(cp, &["template", "k", chart().to_str().unwrap(), "--set", "certificates.mode=vault"]).unwrap_err();
    assert!(err.contains("/certificates/mode") && err.contains("must be one of"), "{err}");
}

fn get(cp: &ControlPlane, args: &[&str]) -> bool {
    cp.kubectl_output(args, None).map(|o| o.status.success()).unwrap_or(false)
}

fn json(cp: &ControlPlane, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&cp.kubectl(&all).unwrap()).unwrap()
}

/// Waits until `check` holds, failing with `what` and the Pods' log tails after `secs`.
fn wait(node: &BinaryNode, what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {secs}s; logs:\n{}", node.log_tails(15));
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn ready_replicas(cp: &ControlPlane, ns: &str, deployment: &str) -> i64 {
    json(cp, &["get", "deployment", deployment, "-n", ns])["status"]["readyReplicas"].as_i64().unwrap_or(0)
}

fn lease_holder(cp: &ControlPlane, ns: &str) -> String {
    cp.kubectl(&["get", "lease", "koperator-leader", "-n", ns, "-o", "jsonpath={.spec.holderIdentity}"])
        .unwrap_or_default()
}

fn secret_key(cp: &ControlPlane, ns: &str, key: &str) -> String {
    let path = format!("jsonpath={{.data.{}}}", key.replace('.', "\\."));
    cp.kubectl(&["get", "secret", "koperator-webhook-certs", "-n", ns, "-o", &path]).unwrap_or_default()
}

#[test]
fn install_runs_the_charts_deployments_then_upgrade_and_uninstall() {
    let cp = shared();
    let ns = "koperator";
    let node = BinaryNode::start(binary_node::Options {
        kubeconfig: cp.kubeconfig.clone(),
        server: cp.server.clone(),
        ca_pem: cp.ca_pem.clone(),
        namespace: ns.into(),
        // Built by `make e2e` before this test runs (cargo builds no other package's binaries).
        binaries: binary_node::Options::project_binaries("debug"),
        kafka_hosts_file: None,
    })
    .unwrap();
    // Short certificate lifetimes, so that the CA and the serving certificate rotate while the
    // test runs.
    let values = [
        "image.webhook.tag=local",
        "image.operator.tag=local",
        "certificates.leafValidity=6s",
        "certificates.caValidity=24s",
        "certificates.caPropagation=3s",
        "certificates.checkInterval=1s",
    ];
    let chart_dir = chart().display().to_string();
    let mut install = vec!["install", "koperator", &chart_dir, "-n", ns, "--create-namespace"];
    for v in &values {
        install.extend(["--set", v]);
    }
    let started = Instant::now();
    helm(cp, &install).unwrap_or_else(|e| panic!("helm install: {e}"));
    for (kind, name) in [
        ("deployment", "koperator"),
        ("deployment", "koperator-webhook"),
        ("service", "koperator-webhook"),
        ("service", "koperator-metrics"),
        ("poddisruptionbudget", "koperator-webhook"),
        ("serviceaccount", "koperator-webhook"),
        ("role", "koperator-webhook"),
    ] {
        assert!(get(cp, &["get", kind, name, "-n", ns]), "{kind}/{name} missing after install");
    }
    for (kind, name) in [
        ("validatingwebhookconfiguration", "koperator-webhook"),
        ("mutatingwebhookconfiguration", "koperator-webhook"),
        ("clusterrole", "koperator"),
        ("crd", "kafkaclusters.kafka.banzaicloud.io"),
    ] {
        assert!(get(cp, &["get", kind, name]), "{kind}/{name} missing after install");
    }

    // The Deployments' Pods run, pass their readiness probes and fill the Services'
    // EndpointSlices; the webhook injects its CA; one operator replica leads.
    wait(&node, "2 webhook replicas Ready", 90, || ready_replicas(cp, ns, "koperator-webhook") == 2);
    wait(&node, "2 operator replicas Ready", 90, || ready_replicas(cp, ns, "koperator") == 2);
    eprintln!("FIGURE: chart installed to 2+2 Ready replicas in {:.1}s", started.elapsed().as_secs_f64());
    wait(&node, "the webhook Service's EndpointSlice lists 2 ready endpoints", 60, || {
        let slices =
            json(cp, &["get", "endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=koperator-webhook"]);
        slices["items"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .filter(|e| e["conditions"]["ready"] == true)
            .count()
            == 2
    });
    wait(&node, "the caBundle injected", 60, || {
        !cp.kubectl(&[
            "get",
            "validatingwebhookconfiguration",
            "koperator-webhook",
            "-o",
            "jsonpath={.webhooks[0].clientConfig.caBundle}",
        ])
        .unwrap_or_default()
        .is_empty()
    });
    let operator_pods: Vec<String> = json(cp, &["get", "pods", "-n", ns, "-l", "app.kubernetes.io/component=operator"])
        ["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    wait(&node, "an operator replica holds the Lease", 60, || operator_pods.contains(&lease_holder(cp, ns)));

    // Admission through the Service: the API server reaches the chart's webhook Pods.
    let _ = cp.kubectl(&["create", "namespace", "kafka"]);
    let sample =
        std::fs::read_to_string(tools::repo_root().join("config/samples/kafkacluster_kraft_combined.yaml")).unwrap();
    let mut bad: Value = serde_saphyr::from_str(&sample).unwrap();
    bad["spec"]["brokers"][2]["id"] = 0.into();
    let admit =
        |doc: &str| cp.kubectl_output(&["apply", "--dry-run=server", "-n", "kafka", "-f", "-"], Some(doc)).unwrap();
    let out = admit(&bad.to_string());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("spec.brokers[2].id: Duplicate value: 0"), "not rejected through the Service: {stderr}");

    // Rotation through the Deployments: the CA and the serving certificate change while
    // admissions keep being answered (good ones accepted, bad ones rejected) by both replicas.
    let (first_ca, first_leaf) = (secret_key(cp, ns, "ca.crt"), secret_key(cp, ns, "tls.crt"));
    let (mut leaves, mut cas, mut admissions) = (std::collections::BTreeSet::new(), 0, 0);
    let mut last_ca = first_ca.clone();
    let deadline = Instant::now() + Duration::from_secs(90);
    while cas < 1 || leaves.len() < 3 {
        assert!(Instant::now() < deadline, "{cas} CA and {} leaf rotations seen in 90s", leaves.len());
        let good = admit(&sample);
        assert!(good.status.success(), "a good KafkaCluster refused: {}", String::from_utf8_lossy(&good.stderr));
        let out = admit(&bad.to_string());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("Duplicate value"), "admission failed during rotation: {stderr}");
        admissions += 2;
        let ca = secret_key(cp, ns, "ca.crt");
        if ca != last_ca {
            cas += 1;
            last_ca = ca;
        }
        leaves.insert(secret_key(cp, ns, "tls.crt"));
    }
    assert_ne!(secret_key(cp, ns, "tls.crt"), first_leaf);
    eprintln!(
        "FIGURE: {admissions} admissions through the chart's Service, 0 failed, across {cas} CA and {} serving-certificate rotations",
        leaves.len() - 1
    );

    // One of the two webhook replicas killed under a steady admission load: every admission
    // is still answered, first when its Pod is deleted (SIGTERM with grace, as in a rollout or
    // a node drain), then when its process is SIGKILLed (a crash; the node restarts it).
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let good: Value = serde_saphyr::from_str(&sample).unwrap();
    let victim = webhook_pods(cp, ns)[0].clone();
    let load = AdmissionLoad::start(&rt, cp, &good, &bad, 4);
    std::thread::sleep(Duration::from_secs(1));
    let killed = Instant::now();
    cp.kubectl(&["delete", "pod", &victim, "-n", ns, "--wait=false"]).unwrap();
    wait(&node, "the deleted webhook Pod gone", 60, || !get(cp, &["get", "pod", &victim, "-n", ns]));
    let gone = killed.elapsed();
    wait(&node, "2 webhook replicas Ready again after the Pod deletion", 90, || {
        ready_replicas(cp, ns, "koperator-webhook") == 2 && ready_webhook_endpoints(cp, ns) == 2
    });
    let back = killed.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let deleted = load.stop(&rt, cp);
    eprintln!(
        "FIGURE: webhook Pod deleted (SIGTERM) under load: {} admissions, {} failed, {} mutations failed open, in {:.1}s (Pod gone after {:.1}s, 2 replicas Ready again after {:.1}s)",
        deleted.admissions,
        deleted.failed.len(),
        deleted.failed_open,
        deleted.duration.as_secs_f64(),
        gone.as_secs_f64(),
        back.as_secs_f64()
    );
    assert!(deleted.admissions > 0);
    assert!(
        deleted.failed.is_empty() && deleted.failed_open == 0,
        "admissions failed while a webhook Pod was deleted: {:?}; {} mutations failed open",
        &deleted.failed[..deleted.failed.len().min(10)],
        deleted.failed_open
    );

    // A replica that has not restarted yet: the node restarts it at once (later restarts back
    // off, as the kubelet's do).
    let victim = webhook_pods(cp, ns).into_iter().find(|p| restart_count(cp, ns, p) == 0).unwrap();
    let restarts = 0;
    let load = AdmissionLoad::start(&rt, cp, &good, &bad, 4);
    std::thread::sleep(Duration::from_secs(1));
    let (killed, kill_at) = (Instant::now(), load.started.elapsed());
    node.signal(&victim, libc::SIGKILL).unwrap();
    wait(&node, "the SIGKILLed webhook restarted and Ready", 60, || {
        restart_count(cp, ns, &victim) > restarts
            && ready_replicas(cp, ns, "koperator-webhook") == 2
            && ready_webhook_endpoints(cp, ns) == 2
    });
    let back = killed.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let crashed = load.stop(&rt, cp);
    eprintln!(
        "FIGURE: webhook process SIGKILLed under load: {} admissions, {} failed, {} mutations failed open, in {:.1}s (restarted and Ready again after {:.1}s)",
        crashed.admissions,
        crashed.failed.len(),
        crashed.failed_open,
        crashed.duration.as_secs_f64(),
        back.as_secs_f64()
    );
    for (at, why) in crashed.failed.iter().take(10) {
        eprintln!("  failed {:+.3}s from the kill: {why}", at.as_secs_f64() - kill_at.as_secs_f64());
    }
    assert!(crashed.admissions > 0);
    // A crash cannot be hidden from the API server: it calls an admission webhook once (a POST
    // is not resent after a connection error), so the calls the killed process was answering
    // fail (EOF, connection reset), and so do connections dialled to its address before the
    // listener is back or the EndpointSlice has dropped it (connection refused). What must
    // hold: every failure is such a failed call at the crash, never a wrong answer or a
    // timeout, and none once the replica is Ready again.
    for (at, why) in &crashed.failed {
        assert!(
            why.contains("failed calling webhook")
                && ["EOF", "connection reset", "connection refused", "broken pipe"].iter().any(|e| why.contains(e)),
            "not a failed connection to the killed replica: {why}"
        );
        assert!(
            *at < kill_at + back,
            "failed {:.3}s after the kill, once the replica was Ready again: {why}",
            (*at - kill_at).as_secs_f64()
        );
    }
    drop(rt);

    // Leader election through the Deployment: deleting the leader's Pod (SIGTERM from the node)
    // makes it release the Lease as it stops, and another replica takes it.
    let leader = lease_holder(cp, ns);
    let deleted = Instant::now();
    cp.kubectl(&["delete", "pod", &leader, "-n", ns, "--wait=false"]).unwrap();
    wait(&node, "the leader's Pod gone", 60, || !get(cp, &["get", "pod", &leader, "-n", ns]));
    assert_ne!(lease_holder(cp, ns), leader, "the stopped leader still holds the Lease: it did not release it");
    wait(&node, "another operator replica takes the Lease", 90, || {
        let holder = lease_holder(cp, ns);
        !holder.is_empty() && holder != leader && get(cp, &["get", "pod", &holder, "-n", ns])
    });
    eprintln!(
        "FIGURE: the Lease moved to another replica {:.1}s after the leader's Pod was deleted",
        deleted.elapsed().as_secs_f64()
    );
    wait(&node, "the Deployment back at 2 Ready operators", 90, || ready_replicas(cp, ns, "koperator") == 2);

    // Upgrade with changed values: a third webhook replica runs and becomes Ready.
    let mut upgrade = vec!["upgrade", "koperator", &chart_dir, "-n", ns];
    for v in values.iter().chain(&["webhook.replicas=3", "webhook.timeoutSeconds=10"]) {
        upgrade.extend(["--set", v]);
    }
    helm(cp, &upgrade).unwrap_or_else(|e| panic!("helm upgrade: {e}"));
    wait(&node, "3 webhook replicas Ready", 90, || ready_replicas(cp, ns, "koperator-webhook") == 3);
    let timeout = cp
        .kubectl(&[
            "get",
            "validatingwebhookconfiguration",
            "koperator-webhook",
            "-o",
            "jsonpath={.webhooks[0].timeoutSeconds}",
        ])
        .unwrap();
    assert_eq!(timeout, "10");
    let owners = cp
        .kubectl(&[
            "get",
            "secret",
            "koperator-webhook-certs",
            "-n",
            ns,
            "-o",
            "jsonpath={.metadata.ownerReferences[0].name}",
        ])
        .unwrap();
    assert_eq!(owners, "koperator-webhook", "the certificate Secret is owned by the webhook Deployment");

    // Uninstall leaves only what must be kept: the CRDs. The webhook's run-time Secret goes
    // with its owner, the Deployment (garbage collector), and so do the Pods.
    helm(cp, &["uninstall", "koperator", "-n", ns, "--wait"]).unwrap_or_else(|e| panic!("helm uninstall: {e}"));
    wait(&node, "the webhook's certificate Secret removed after uninstall", 60, || {
        !get(cp, &["get", "secret", "koperator-webhook-certs", "-n", ns])
    });
    wait(&node, "every Pod of the chart gone", 90, || {
        json(cp, &["get", "pods", "-n", ns])["items"].as_array().is_some_and(Vec::is_empty)
    });
    for (kind, name) in [
        ("deployment", "koperator"),
        ("deployment", "koperator-webhook"),
        ("service", "koperator-webhook"),
        ("role", "koperator-webhook"),
    ] {
        assert!(!get(cp, &["get", kind, name, "-n", ns]), "{kind}/{name} left after uninstall");
    }
    for (kind, name) in [
        ("validatingwebhookconfiguration", "koperator-webhook"),
        ("clusterrole", "koperator"),
        ("clusterrolebinding", "koperator-webhook"),
    ] {
        assert!(!get(cp, &["get", kind, name]), "{kind}/{name} left after uninstall");
    }
    assert!(get(cp, &["get", "crd", "kafkaclusters.kafka.banzaicloud.io"]), "CRDs are kept");
}

/// The webhook Deployment's Pods that are not being deleted.
fn webhook_pods(cp: &ControlPlane, ns: &str) -> Vec<String> {
    json(cp, &["get", "pods", "-n", ns, "-l", "app.kubernetes.io/component=webhook"])["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn restart_count(cp: &ControlPlane, ns: &str, pod: &str) -> i64 {
    json(cp, &["get", "pod", pod, "-n", ns])["status"]["containerStatuses"][0]["restartCount"].as_i64().unwrap_or(0)
}

/// Ready endpoints of the webhook Service's EndpointSlices: what the API server dials.
fn ready_webhook_endpoints(cp: &ControlPlane, ns: &str) -> usize {
    let slices = json(cp, &["get", "endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=koperator-webhook"]);
    slices["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["conditions"]["ready"] == true)
        .count()
}

/// Calls of the chart's mutating webhooks that failed and were ignored (`failurePolicy:
/// Ignore`): the object was admitted without its defaults. From the API server's metrics.
fn mutations_failed_open(cp: &ControlPlane) -> u64 {
    let metrics = cp.kubectl(&["get", "--raw", "/metrics"]).unwrap_or_default();
    metrics
        .lines()
        .filter(|l| l.starts_with("apiserver_admission_webhook_fail_open_count{") && l.contains("kafka.banzaicloud.io"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Failed admissions: when (from the load's start) and why.
type Failures = Vec<(Duration, String)>;

/// What a steady admission load saw.
struct LoadReport {
    /// Answers received (and requests that got none).
    admissions: u64,
    failed: Failures,
    /// Mutating webhook calls that failed open meanwhile.
    failed_open: u64,
    duration: Duration,
}

/// Closed-loop clients, each with its own connection pool to the API server, doing
/// server-side dry-run creates of a good KafkaCluster (must be accepted) and a bad one (must be
/// rejected with its field error) in turn, until stopped. Anything else (a timeout, "failed
/// calling webhook", a connection error) is a failed admission.
struct AdmissionLoad {
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<(u64, Failures)>>,
    started: Instant,
    failed_open: u64,
}

impl AdmissionLoad {
    fn start(rt: &tokio::runtime::Runtime, cp: &ControlPlane, good: &Value, bad: &Value, clients: usize) -> Self {
        let gvk = GroupVersionKind::gvk("kafka.banzaicloud.io", "v1beta1", "KafkaCluster");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "kafkaclusters");
        let good: DynamicObject = serde_json::from_value(good.clone()).unwrap();
        let bad: DynamicObject = serde_json::from_value(bad.clone()).unwrap();
        let (stop, started, failed_open) =
            (Arc::new(AtomicBool::new(false)), Instant::now(), mutations_failed_open(cp));
        let clients = (0..clients)
            .map(|_| {
                let client = rt.block_on(cp.client()).unwrap();
                let api: Api<DynamicObject> = Api::namespaced_with(client, "kafka", &resource);
                let (good, bad, stop) = (good.clone(), bad.clone(), stop.clone());
                rt.spawn(async move {
                    let dry_run = PostParams { dry_run: true, ..PostParams::default() };
                    let (mut admissions, mut failed) = (0, Vec::new());
                    while !stop.load(Ordering::SeqCst) {
                        for (object, is_good) in [(&good, true), (&bad, false)] {
                            let answer =
                                tokio::time::timeout(Duration::from_secs(20), api.create(&dry_run, object)).await;
                            admissions += 1;
                            let which = if is_good { "good" } else { "bad" };
                            let failure = match answer {
                                Err(_) => Some("no answer within 20s".to_string()),
                                Ok(Ok(_)) if is_good => None,
                                Ok(Ok(_)) => Some("the bad KafkaCluster was accepted".into()),
                                Ok(Err(kube::Error::Api(s)))
                                    if !is_good
                                        && s.code == 422
                                        && s.message.contains("spec.brokers[2].id: Duplicate value: 0") =>
                                {
                                    None
                                }
                                Ok(Err(kube::Error::Api(s))) => {
                                    Some(format!("{which} KafkaCluster: {} {}", s.code, s.message))
                                }
                                Ok(Err(e)) => Some(format!("{which} KafkaCluster: {e}")),
                            };
                            if let Some(why) = failure {
                                failed.push((started.elapsed(), why));
                            }
                        }
                    }
                    (admissions, failed)
                })
            })
            .collect();
        AdmissionLoad { stop, clients, started, failed_open }
    }

    fn stop(self, rt: &tokio::runtime::Runtime, cp: &ControlPlane) -> LoadReport {
        self.stop.store(true, Ordering::SeqCst);
        let (mut admissions, mut failed) = (0, Vec::new());
        for c in self.clients {
            let (n, f) = rt.block_on(c).unwrap();
            admissions += n;
            failed.extend(f);
        }
        failed.sort_by_key(|(at, _)| *at);
        let duration = self.started.elapsed();
        LoadReport {
            admissions,
            failed,
            failed_open: mutations_failed_open(cp).saturating_sub(self.failed_open),
            duration,
        }
    }
}

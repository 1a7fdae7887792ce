//! Least privilege, judged by the API server's own RBAC (`kubectl auth can-i` as the
//! ServiceAccounts) and proved sufficient by running both binaries under exactly those rights:
//!
//! - single-namespace installs (the chart's `operator.watchNamespace`, the kustomize
//!   `single-namespace` overlay) grant the operator and the webhook Roles in the watched
//!   namespace only; the one cluster-wide grant left is the webhook's own two webhook
//!   configurations, by name; the webhook is sent objects of the watched namespace only;
//! - in every mode the operator reads and creates Secrets by name and can never list or watch
//!   them (nor delete them);
//! - the operator under its single-namespace Role reconciles a KafkaCluster (Pods, ConfigMaps,
//!   Services, status) and the webhook under its Role rejects bad objects and answers the
//!   lookups of the watched namespace.
//!
//! The binaries are built by `make e2e` before this test runs.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use koperator_e2e::process::{Component, free_port};
use koperator_e2e::{ControlPlane, shared, tools};

fn cp() -> &'static ControlPlane {
    static CRDS: OnceLock<()> = OnceLock::new();
    let cp = shared();
    // Once, before any install: helm and kustomize would race to create them.
    CRDS.get_or_init(|| cp.install_crds().unwrap());
    cp
}

/// What `kubectl auth can-i <query> --as=<service account>` answers.
fn can(cp: &ControlPlane, sa: (&str, &str), query: &str) -> bool {
    let who = format!("--as=system:serviceaccount:{}:{}", sa.0, sa.1);
    let mut args = vec!["auth", "can-i"];
    args.extend(query.split_whitespace());
    args.push(&who);
    let out = cp.kubectl_output(&args, None).unwrap();
    match String::from_utf8_lossy(&out.stdout).trim() {
        "yes" => true,
        "no" => false,
        other => panic!("kubectl auth can-i {query}: {other} {}", String::from_utf8_lossy(&out.stderr)),
    }
}

/// Asserts every `(query, allowed)` of `table` for `sa`, reporting all mismatches at once.
fn check(cp: &ControlPlane, sa: (&str, &str), table: &[(&str, bool)]) {
    let wrong: Vec<String> = table
        .iter()
        .filter(|(q, want)| can(cp, sa, q) != *want)
        .map(|(q, want)| format!("{q}: expected {}", if *want { "yes" } else { "no" }))
        .collect();
    assert!(wrong.is_empty(), "{}:{}: {wrong:#?}", sa.0, sa.1);
}

/// Operator and webhook rights of a single-namespace install watching `w`; `o` is any other
/// namespace, `config` the webhook's ValidatingWebhookConfiguration.
fn assert_single_namespace(cp: &ControlPlane, operator: (&str, &str), webhook: (&str, &str), w: &str, config: &str) {
    let o = "default";
    let q = |s: &str| s.replace("{w}", w).replace("{o}", o);
    let owned: Vec<(String, bool)> = [
        ("get secrets -n {w}", true),
        ("create secrets -n {w}", true),
        ("patch secrets -n {w}", true),
        ("update secrets -n {w}", true),
        ("list secrets -n {w}", false),
        ("watch secrets -n {w}", false),
        ("delete secrets -n {w}", false),
        ("get secrets -n {o}", false),
        ("get secrets --all-namespaces", false),
        ("create pods -n {w}", true),
        ("delete persistentvolumeclaims -n {w}", true),
        ("patch configmaps -n {w}", true),
        ("create deployments.apps -n {w}", true),
        ("delete deployments.apps -n {w}", true),
        ("create kafkatopics.kafka.banzaicloud.io -n {w}", true),
        ("delete kafkatopics.kafka.banzaicloud.io -n {w}", false),
        ("create deployments.apps -n {o}", false),
        ("update kafkaclusters.kafka.banzaicloud.io --subresource=status -n {w}", true),
        ("update cruisecontroloperations.kafka.banzaicloud.io --subresource=status -n {w}", true),
        ("delete cruisecontroloperations.kafka.banzaicloud.io -n {w}", true),
        ("create cruisecontroloperations.kafka.banzaicloud.io -n {w}", true),
        ("create cruisecontroloperations.kafka.banzaicloud.io -n {o}", false),
        ("delete kafkaclusters.kafka.banzaicloud.io -n {w}", false),
        ("delete cruisecontroloperations.kafka.banzaicloud.io -n {o}", false),
        ("create events.events.k8s.io -n {w}", true),
        ("list pods -n {o}", false),
        ("list pods --all-namespaces", false),
        ("list kafkaclusters.kafka.banzaicloud.io --all-namespaces", false),
        ("watch kafkausers.kafka.banzaicloud.io -n {o}", false),
        ("create pods -n {o}", false),
    ]
    .iter()
    .map(|(s, b)| (q(s), *b))
    .collect();
    check(cp, operator, &owned.iter().map(|(s, b)| (s.as_str(), *b)).collect::<Vec<_>>());
    let hook: Vec<(String, bool)> = [
        ("list kafkaclusters.kafka.banzaicloud.io -n {w}", true),
        ("watch kafkatopics.kafka.banzaicloud.io -n {w}", true),
        ("watch kafkausers.kafka.banzaicloud.io -n {w}", true),
        ("list kafkaclusters.kafka.banzaicloud.io -n {o}", false),
        ("list kafkausers.kafka.banzaicloud.io --all-namespaces", false),
        ("update kafkaclusters.kafka.banzaicloud.io -n {w}", false),
        ("get secrets -n {w}", true),
        ("list secrets -n {w}", false),
        ("watch secrets -n {w}", false),
        ("get secrets --all-namespaces", false),
        (&format!("update validatingwebhookconfigurations.admissionregistration.k8s.io/{config}"), true),
        ("update validatingwebhookconfigurations.admissionregistration.k8s.io/someone-elses", false),
        ("create validatingwebhookconfigurations.admissionregistration.k8s.io", false),
    ]
    .iter()
    .map(|(s, b)| (q(s), *b))
    .collect();
    check(cp, webhook, &hook.iter().map(|(s, b)| (s.as_str(), *b)).collect::<Vec<_>>());
    // Nothing cluster-wide binds the operator; only the webhook-configuration role binds the webhook.
    let bindings: serde_json::Value =
        serde_json::from_str(&cp.kubectl(&["get", "clusterrolebindings", "-o", "json"]).unwrap()).unwrap();
    let bound = |sa: (&str, &str)| -> Vec<String> {
        bindings["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| {
                b["subjects"].as_array().is_some_and(|s| {
                    s.iter().any(|s| s["kind"] == "ServiceAccount" && s["namespace"] == sa.0 && s["name"] == sa.1)
                })
            })
            .map(|b| b["roleRef"]["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(bound(operator), Vec::<String>::new(), "cluster-wide bindings of the operator");
    assert_eq!(bound(webhook).len(), 1, "cluster-wide bindings of the webhook: {:?}", bound(webhook));
}

/// The sample KafkaCluster (three combined KRaft nodes).
fn sample() -> serde_json::Value {
    serde_saphyr::from_str(
        &std::fs::read_to_string(tools::repo_root().join("config/samples/kafkacluster_kraft_combined.yaml")).unwrap(),
    )
    .unwrap()
}

fn wait(what: &str, secs: u64, process: &Component, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(process.exited().is_none(), "{what}: the process exited:\n{}", process.log_tail(30));
        assert!(Instant::now() < deadline, "{what}: timed out\n{}", process.log_tail(30));
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Runs the operator as `sa` watching `w` (Pod Security Admission `baseline` enforced there, as
/// the README advises) and has it reconcile the sample KafkaCluster: its per-broker objects
/// appear, its status is written, and it was refused nothing. A KafkaCluster asking for a
/// capability `baseline` forbids (SYS_ADMIN) gets no Pod. (Privileged Pods the API server
/// refuses by itself here: it runs without --allow-privileged.)
fn operator_reconciles_under(cp: &ControlPlane, sa: (&str, &str), w: &str) {
    cp.kubectl(&["label", "namespace", w, "pod-security.kubernetes.io/enforce=baseline"]).unwrap();
    let kubeconfig = cp.service_account_kubeconfig(sa.0, sa.1).unwrap();
    let port = free_port().unwrap();
    let args: Vec<String> = vec![
        format!("--watch-namespace={w}"),
        "--leader-elect=false".into(),
        format!("--metrics-listen=127.0.0.1:{port}"),
        "--log-format=text".into(),
    ];
    let op = Component::start_with_env(
        "koperator",
        &tools::repo_root().join("target/debug/koperator"),
        &args,
        &[("KUBECONFIG".into(), kubeconfig.display().to_string())],
        cp.dir.join(format!("logs/least-privilege-operator-{w}.log")),
        false,
    )
    .unwrap();
    cp.kubectl_stdin(&["apply", "-n", w, "-f", "-"], Some(&sample().to_string())).unwrap();
    wait("the operator's broker objects", 60, &op, || {
        ["configmap/kafka-combined-config-0", "pod/kafka-combined-0", "service/kafka-combined-headless"]
            .iter()
            .all(|o| cp.kubectl(&["get", o, "-n", w]).is_ok())
    });
    wait("the KafkaCluster status", 30, &op, || {
        cp.kubectl(&["get", "kafkacluster", "kafka-combined", "-n", w, "-o", "jsonpath={.status.conditions}"])
            .is_ok_and(|c| !c.is_empty())
    });
    let log = std::fs::read_to_string(cp.dir.join(format!("logs/least-privilege-operator-{w}.log"))).unwrap();
    assert!(!log.contains("forbidden"), "the operator was refused something:\n{}", op.log_tail(40));

    // A cluster that accepts a namespace the Role cannot read: the ownership checks leave that
    // namespace out instead of failing every pass (a KafkaUser gets as far as Kafka, which
    // does not run here).
    cp.kubectl(&[
        "annotate",
        "kafkacluster",
        "kafka-combined",
        "-n",
        w,
        "koperator.banzaicloud.io/allowed-namespaces=default",
    ])
    .unwrap();
    let user = serde_json::json!({
        "apiVersion": "kafka.banzaicloud.io/v1alpha1", "kind": "KafkaUser",
        "metadata": {"name": "alice"},
        "spec": {"secretName": "alice-tls", "clusterRef": {"name": "kafka-combined"}}
    });
    cp.kubectl_stdin(&["apply", "-n", w, "-f", "-"], Some(&user.to_string())).unwrap();
    let mut message = String::new();
    wait("the KafkaUser's status", 30, &op, || {
        message = cp
            .kubectl(&[
                "get",
                "kafkauser",
                "alice",
                "-n",
                w,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].message}",
            ])
            .unwrap_or_default();
        !message.is_empty()
    });
    assert!(
        !message.contains("cannot list the KafkaUsers") && message.contains("no Kafka broker reachable"),
        "the ownership check failed on an unreadable namespace: {message}"
    );
    cp.kubectl(&["delete", "kafkauser", "alice", "-n", w, "--wait=false"]).unwrap();

    // Whoever may write KafkaClusters chooses the broker Pod's security context; the
    // namespace's Pod Security level is what stops one with extra capabilities.
    let mut hostile = sample();
    hostile["metadata"]["name"] = "priv".into();
    hostile["spec"]["brokerConfigGroups"]["default"]["securityContext"] =
        serde_json::json!({"capabilities": {"add": ["SYS_ADMIN"]}});
    cp.kubectl_stdin(&["apply", "-n", w, "-f", "-"], Some(&hostile.to_string())).unwrap();
    let log_path = cp.dir.join(format!("logs/least-privilege-operator-{w}.log"));
    wait("the SYS_ADMIN broker Pod refused by Pod Security Admission", 60, &op, || {
        std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains("violates PodSecurity"))
    });
    assert!(cp.kubectl(&["get", "pod", "priv-0", "-n", w]).is_err(), "a broker Pod with SYS_ADMIN was created");
    op.stop(Duration::from_secs(5));
    for name in ["kafka-combined", "priv"] {
        cp.kubectl(&["delete", "kafkacluster", name, "-n", w, "--wait=false"]).unwrap();
    }
}

/// `helm install <release> charts/koperator` into namespace `<release>` with `--set`s.
fn install_chart(cp: &ControlPlane, release: &str, sets: &[&str]) {
    let chart = tools::repo_root().join("charts/koperator");
    let mut args = vec!["install", release, chart.to_str().unwrap(), "-n", release, "--create-namespace"];
    for set in sets {
        args.extend(["--set", set]);
    }
    cp.helm(&args).unwrap();
}

#[test]
fn helm_single_namespace_install_is_namespaced_and_sufficient() {
    let cp = cp();
    let (release, w) = ("kop-one", "tenant-a");
    cp.kubectl(&["create", "namespace", w]).unwrap();
    let port = free_port().unwrap();
    let url = format!("webhook.url=https://127.0.0.1:{port}");
    let watch = format!("operator.watchNamespace={w}");
    install_chart(cp, release, &[&url, &watch, "operator.leaderElection=false"]);
    let (operator, webhook) = ((release, release), (release, "kop-one-webhook"));
    assert_single_namespace(cp, operator, webhook, w, "kop-one-webhook");

    // The webhook under its Role: caBundle injected, bad objects of `w` rejected, the lookups
    // of `w` answered; objects elsewhere are not sent to it.
    let kubeconfig = cp.service_account_kubeconfig(release, "kop-one-webhook").unwrap();
    let args: Vec<String> = [
        format!("--listen=127.0.0.1:{port}"),
        format!("--namespace={release}"),
        "--service-name=kop-one-webhook".into(),
        "--secret-name=kop-one-webhook-certs".into(),
        "--validating-config=kop-one-webhook".into(),
        "--mutating-config=kop-one-webhook".into(),
        "--secret-owner-deployment=kop-one-webhook".into(),
        format!("--watch-namespace={w}"),
        "--extra-san=127.0.0.1".into(),
        "--log-format=text".into(),
    ]
    .into();
    let hook = Component::start_with_env(
        "koperator-webhook",
        &tools::repo_root().join("target/debug/koperator-webhook"),
        &args,
        &[("KUBECONFIG".into(), kubeconfig.display().to_string())],
        cp.dir.join("logs/least-privilege-webhook.log"),
        false,
    )
    .unwrap();
    let mut bad = sample();
    bad["metadata"]["name"] = "bad".into();
    bad["spec"]["brokers"][2]["id"] = 0.into();
    wait("a bad KafkaCluster rejected through the chart's configuration", 60, &hook, || {
        let out =
            cp.kubectl_output(&["apply", "--dry-run=server", "-n", w, "-f", "-"], Some(&bad.to_string())).unwrap();
        String::from_utf8_lossy(&out.stderr).contains("spec.brokers[2].id: Duplicate value: 0")
    });
    let topic = serde_json::json!({
        "apiVersion": "kafka.banzaicloud.io/v1alpha1", "kind": "KafkaTopic",
        "metadata": {"name": "orphan"},
        "spec": {"name": "orphan", "partitions": 1, "replicationFactor": 1, "clusterRef": {"name": "nowhere"}}
    });
    let out = cp.kubectl_output(&["apply", "--dry-run=server", "-n", w, "-f", "-"], Some(&topic.to_string())).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("kafkaCluster 'nowhere' in the namespace '{w}' does not exist")), "{stderr}");
    let out =
        cp.kubectl_output(&["apply", "--dry-run=server", "-n", "default", "-f", "-"], Some(&bad.to_string())).unwrap();
    assert!(
        out.status.success(),
        "an object outside {w} was sent to the webhook: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(cp.dir.join("logs/least-privilege-webhook.log")).unwrap();
    assert!(!log.contains("forbidden"), "the webhook was refused something:\n{}", hook.log_tail(40));

    // The operator under its Role (the webhook still admitting its writes).
    operator_reconciles_under(cp, operator, w);
    hook.stop(Duration::from_secs(5));
    cp.helm(&["uninstall", release, "-n", release]).unwrap();
}

#[test]
fn kustomize_single_namespace_overlay_is_namespaced_and_sufficient() {
    let cp = cp();
    let w = "kafka";
    cp.kubectl(&["create", "namespace", w]).unwrap();
    let overlay = tools::repo_root().join("config/overlays/single-namespace");
    cp.kubectl(&["apply", "--server-side", "-k", overlay.to_str().unwrap()]).unwrap();
    let (operator, webhook) = (("koperator", "koperator"), ("koperator", "koperator-webhook"));
    assert_single_namespace(cp, operator, webhook, w, "koperator-validating-webhook");
    // No webhook serves behind the overlay's Service here (no kubelet): take its Fail-policy
    // registrations away, then run the operator under the overlay's Role.
    cp.kubectl(&["delete", "validatingwebhookconfiguration", "koperator-validating-webhook"]).unwrap();
    cp.kubectl(&["delete", "mutatingwebhookconfiguration", "koperator-mutating-webhook"]).unwrap();
    operator_reconciles_under(cp, operator, w);
    cp.kubectl(&["delete", "-k", overlay.to_str().unwrap(), "--wait=false", "--ignore-not-found"]).unwrap();
    assert!(cp.kubectl(&["get", "namespace", w]).is_ok(), "deleting the overlay must not take the watched namespace");
}

#[test]
fn cluster_wide_install_never_lists_or_watches_secrets() {
    let cp = cp();
    let release = "kop-all";
    // Ignore: no webhook runs for this release; its registrations must not block the others.
    install_chart(cp, release, &["webhook.url=https://127.0.0.1:9", "webhook.failurePolicy=Ignore"]);
    check(
        cp,
        (release, release),
        &[
            ("get secrets -n any", true),
            ("create secrets -n any", true),
            ("list secrets --all-namespaces", false),
            ("watch secrets --all-namespaces", false),
            ("list secrets -n any", false),
            ("delete secrets -n any", false),
            ("list pods --all-namespaces", true),
        ],
    );
    check(
        cp,
        (release, "kop-all-webhook"),
        &[
            ("list kafkausers.kafka.banzaicloud.io --all-namespaces", true),
            // The operator's client certificate of an SSL cluster, by name (topic checks).
            ("get secrets -n any", true),
            ("list secrets --all-namespaces", false),
            ("watch secrets --all-namespaces", false),
        ],
    );
    cp.helm(&["uninstall", release, "-n", release]).unwrap();
}

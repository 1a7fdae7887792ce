//! The helm chart with the real helm: lint, golden templates, install / upgrade / uninstall on
//! the real API server, schema rejection of typos, and the webhook (run out of cluster with the
//! chart's settings) injecting its caBundle into the chart's configurations.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use koperator_e2e::process::{Component, free_port};
use koperator_e2e::{ControlPlane, shared, tools};

fn chart() -> PathBuf {
    tools::repo_root().join("charts/koperator")
}

fn helm(cp: &ControlPlane, args: &[&str]) -> Result<String, String> {
    cp.helm(args).map_err(|e| format!("{e:#}"))
}

const VALUE_SETS: [(&str, Option<&str>); 3] = [
    ("default", None),
    ("ha-certmanager", Some("values-ha-certmanager.yaml")),
    ("single-namespace", Some("values-single-namespace.yaml")),
];

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

#[test]
fn install_upgrade_webhook_and_uninstall() {
    let cp = shared();
    let ns = "koperator";
    let port = free_port().unwrap();
    let url = format!("webhook.url=https://127.0.0.1:{port}");
    helm(cp, &["install", "koperator", chart().to_str().unwrap(), "-n", ns, "--create-namespace", "--set", &url])
        .unwrap_or_else(|e| panic!("helm install: {e}"));
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
        assert!(
            get(
                cp,
                &[kind, name].iter().fold(vec!["get"], |mut v, s| {
                    v.push(s);
                    v
                })
            ),
            "{kind}/{name} missing after install"
        );
    }

    // The webhook, run out of cluster with the chart's settings and its ServiceAccount's
    // rights, injects its caBundle into the chart's configurations and rejects bad objects.
    let kubeconfig = cp.service_account_kubeconfig(ns, "koperator-webhook").unwrap();
    let args: Vec<String> = [
        format!("--listen=127.0.0.1:{port}"),
        format!("--namespace={ns}"),
        "--service-name=koperator-webhook".into(),
        "--secret-name=koperator-webhook-certs".into(),
        "--validating-config=koperator-webhook".into(),
        "--mutating-config=koperator-webhook".into(),
        "--secret-owner-deployment=koperator-webhook".into(),
        "--extra-san=127.0.0.1".into(),
        "--log-format=text".into(),
    ]
    .into();
    // Built by `make e2e` before this test runs (cargo builds no other package's binaries).
    let webhook = Component::start_with_env(
        "koperator-webhook",
        &tools::repo_root().join("target/debug/koperator-webhook"),
        &args,
        &[("KUBECONFIG".into(), kubeconfig.display().to_string())],
        cp.dir.join("logs/helm-webhook.log"),
        false,
    )
    .unwrap();
    let _ = cp.kubectl(&["create", "namespace", "kafka"]);
    let mut bad: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(tools::repo_root().join("config/samples/kafkacluster_kraft_combined.yaml")).unwrap(),
    )
    .unwrap();
    bad["spec"]["brokers"][2]["id"] = 0.into();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = cp.kubectl_output(&["apply", "-n", "kafka", "-f", "-"], Some(&bad.to_string())).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("spec.brokers[2].id: Duplicate value: 0") {
            break;
        }
        assert!(webhook.exited().is_none(), "webhook exited:\n{}", webhook.log_tail(20));
        assert!(
            Instant::now() < deadline,
            "not rejected through the chart's configuration: {stderr}\n{}",
            webhook.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // Upgrade with changed values.
    helm(
        cp,
        &[
            "upgrade",
            "koperator",
            chart().to_str().unwrap(),
            "-n",
            ns,
            "--set",
            &url,
            "--set",
            "webhook.replicas=3",
            "--set",
            "webhook.timeoutSeconds=10",
        ],
    )
    .unwrap_or_else(|e| panic!("helm upgrade: {e}"));
    let replicas =
        cp.kubectl(&["get", "deployment", "koperator-webhook", "-n", ns, "-o", "jsonpath={.spec.replicas}"]).unwrap();
    assert_eq!(replicas, "3");
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
    webhook.stop(Duration::from_secs(5));

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
    // with its owner, the Deployment (garbage collector).
    helm(cp, &["uninstall", "koperator", "-n", ns, "--wait"]).unwrap_or_else(|e| panic!("helm uninstall: {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(cp, &["get", "secret", "koperator-webhook-certs", "-n", ns]) {
        assert!(Instant::now() < deadline, "the webhook's certificate Secret is left after uninstall");
        std::thread::sleep(Duration::from_millis(250));
    }
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

//! `kubectl apply --server-side -k config/default` for real, on a control plane of this test
//! binary's own (its Fail-policy webhook registrations would block the writes of other tests:
//! no webhook runs here), the overlays, and `kubectl delete -k`.

use std::time::{Duration, Instant};

use koperator_e2e::{shared, tools::repo_root};

fn dir(rel: &str) -> String {
    repo_root().join(rel).display().to_string()
}

#[test]
fn default_install_applies_and_deletes_and_overlays_render() {
    let cp = shared();
    let out = cp.kubectl(&["apply", "--server-side", "-k", &dir("config/default")]).expect("apply -k config/default");
    for needle in [
        "namespace/koperator serverside-applied",
        "customresourcedefinition.apiextensions.k8s.io/kafkatopics.kafka.banzaicloud.io serverside-applied",
        "deployment.apps/koperator serverside-applied",
        "deployment.apps/koperator-webhook serverside-applied",
        "poddisruptionbudget.policy/koperator-webhook serverside-applied",
        "validatingwebhookconfiguration.admissionregistration.k8s.io/koperator-validating-webhook serverside-applied",
    ] {
        assert!(out.contains(needle), "{needle} missing from:\n{out}");
    }
    let replicas = cp
        .kubectl(&["get", "deployment", "koperator-webhook", "-n", "koperator", "-o", "jsonpath={.spec.replicas}"])
        .unwrap();
    assert_eq!(replicas, "2");
    cp.wait_established("kafkaclusters.kafka.banzaicloud.io", Duration::from_secs(60)).unwrap();
    // The registrations point at the webhook Service; the webhook fills caBundle at run time.
    let svc = cp
        .kubectl(&[
            "get",
            "validatingwebhookconfiguration",
            "koperator-validating-webhook",
            "-o",
            "jsonpath={.webhooks[0].clientConfig.service.name}",
        ])
        .unwrap();
    assert_eq!(svc, "koperator-webhook");

    // Overlays: the single-namespace one is checked by the API server (dry run over the
    // install); the cert-manager one needs cert-manager's CRDs, so it is rendered only. The
    // watched namespace is the user's to create (`delete -k` must never take it).
    cp.kubectl(&["create", "namespace", "kafka"]).unwrap();
    let dry = cp
        .kubectl(&["apply", "--server-side", "--dry-run=server", "-k", &dir("config/overlays/single-namespace")])
        .unwrap();
    assert!(dry.contains("deployment.apps/koperator serverside-applied"), "{dry}");
    let single = cp.kubectl(&["kustomize", &dir("config/overlays/single-namespace")]).unwrap();
    assert!(single.contains("--watch-namespace=kafka") && single.contains("--leader-elect=false"), "{single}");
    let certs = cp.kubectl(&["kustomize", &dir("config/overlays/cert-manager")]).unwrap();
    for needle in [
        "kind: Certificate",
        "--tls-cert-file=/tls/tls.crt",
        "secretName: koperator-webhook-tls",
        "cert-manager.io/inject-ca-from: koperator/koperator-webhook",
    ] {
        assert!(certs.contains(needle), "{needle} missing from the cert-manager overlay");
    }

    // Uninstall: everything goes, the namespace included.
    cp.kubectl(&["delete", "-k", &dir("config/default"), "--wait=false"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while cp.kubectl(&["get", "namespace", "koperator"]).is_ok() {
        assert!(Instant::now() < deadline, "namespace koperator not deleted");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(cp.kubectl(&["get", "crd", "kafkaclusters.kafka.banzaicloud.io"]).is_err(), "CRDs remain");
    assert!(cp.kubectl(&["get", "clusterrole", "koperator"]).is_err(), "cluster role remains");
}

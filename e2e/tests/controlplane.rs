//! The project's CRDs, samples and the control plane itself, on a real kube-apiserver.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use koperator_e2e::{ControlPlane, shared, tools::repo_root};
use serde_json::Value;

/// Installs the generated CRDs once per test binary and waits until they are Established.
fn with_crds() -> &'static ControlPlane {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let cp = shared();
    INSTALLED.get_or_init(|| cp.install_crds().expect("install the CRDs"));
    cp
}

fn samples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join("config/samples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && p.file_name().unwrap() != "kustomization.yaml")
        .collect();
    files.sort();
    files
}

#[test]
fn crds_are_established_with_names_and_columns() {
    let cp = with_crds();
    let out = cp.kubectl(&["get", "crd", "-o", "json"]).unwrap();
    let list: Value = serde_json::from_str(&out).unwrap();
    let mut found = Vec::new();
    for crd in list["items"].as_array().unwrap() {
        if crd["spec"]["group"] != "kafka.banzaicloud.io" {
            continue;
        }
        let established = crd["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        assert!(established, "{} not Established", crd["metadata"]["name"]);
        let names_accepted = crd["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "NamesAccepted" && c["status"] == "True");
        assert!(names_accepted, "{} names not accepted", crd["metadata"]["name"]);
        found.push(crd["spec"]["names"]["kind"].as_str().unwrap().to_string());
    }
    found.sort();
    assert_eq!(found, ["CruiseControlOperation", "KafkaCluster", "KafkaTopic", "KafkaUser"]);
    // Short names resolve.
    for short in ["kc", "kt", "ku", "cco"] {
        cp.kubectl(&["get", short, "-A"]).unwrap_or_else(|e| panic!("short name {short}: {e}"));
    }
}

#[test]
fn every_sample_applies_and_reads_back_unchanged() {
    let cp = with_crds();
    let ns = cp.namespace("samples").unwrap();
    for path in samples() {
        let text = std::fs::read_to_string(&path).unwrap();
        let sample: Value = serde_saphyr::from_str(&text).unwrap();
        cp.kubectl(&["apply", "-n", &ns.name, "-f", path.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let kind = sample["kind"].as_str().unwrap().to_lowercase();
        let name = sample["metadata"]["name"].as_str().unwrap();
        let stored: Value =
            serde_json::from_str(&cp.kubectl(&["get", &kind, name, "-n", &ns.name, "-o", "json"]).unwrap()).unwrap();
        // The structural schema keeps every field the sample sets (nothing pruned or changed).
        assert_eq!(stored["spec"], sample["spec"], "{}: spec changed by the API server", path.display());
        assert_eq!(stored["metadata"]["labels"], sample["metadata"]["labels"], "{}", path.display());
    }
    let printed = cp.kubectl(&["get", "kafkaclusters", "-n", &ns.name]).unwrap();
    assert!(printed.contains("CLUSTER STATE") && printed.contains("READY"), "printer columns:\n{printed}");
}

#[test]
fn schema_rejects_what_the_types_forbid() {
    let cp = with_crds();
    let ns = cp.namespace("schema").unwrap();
    let bad = r#"
apiVersion: kafka.banzaicloud.io/v1alpha1
kind: KafkaTopic
metadata: {name: bad}
spec: {name: bad, partitions: -5, replicationFactor: 1, clusterRef: {name: kafka}}
"#;
    let out = cp.kubectl_output(&["apply", "-n", &ns.name, "-f", "-"], Some(bad)).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "partitions -5 must be rejected by the schema");
    assert!(stderr.contains("spec.partitions"), "{stderr}");
}

#[test]
fn kubectl_explain_shows_field_docs() {
    let cp = with_crds();
    let out = cp.kubectl(&["explain", "kafkacluster.spec.listenersConfig"]).unwrap();
    assert!(out.contains("internalListeners"), "{out}");
    assert!(out.contains("Listeners inside the Kubernetes cluster"), "{out}");
    let out = cp.kubectl(&["explain", "kafkatopic.spec.partitions"]).unwrap();
    assert!(out.contains("never shrink"), "{out}");
}

#[test]
fn deleting_an_owner_garbage_collects_its_dependent() {
    let cp = shared();
    let ns = cp.namespace("gc").unwrap();
    let owner: Value = serde_json::from_str(
        &cp.kubectl(&["create", "configmap", "owner", "-n", &ns.name, "--from-literal=a=b", "-o", "json"]).unwrap(),
    )
    .unwrap();
    let uid = owner["metadata"]["uid"].as_str().unwrap();
    let dependent = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"dependent","ownerReferences":[{{"apiVersion":"v1","kind":"ConfigMap","name":"owner","uid":"{uid}"}}]}},"data":{{"x":"y"}}}}"#
    );
    cp.kubectl_stdin(&["apply", "-n", &ns.name, "-f", "-"], Some(&dependent)).unwrap();
    cp.kubectl(&["delete", "configmap", "owner", "-n", &ns.name]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = cp.kubectl_output(&["get", "configmap", "dependent", "-n", &ns.name], None).unwrap();
        if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("NotFound") {
            break;
        }
        assert!(Instant::now() < deadline, "the garbage collector did not delete the dependent within 60s");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn namespace_deletion_completes() {
    let cp = shared();
    let ns = cp.namespace("nsdel").unwrap();
    cp.kubectl(&["create", "configmap", "x", "-n", &ns.name]).unwrap();
    cp.kubectl(&["delete", "namespace", &ns.name, "--timeout=60s"]).expect("namespace controller finishes deletion");
}

#[tokio::test]
async fn kube_client_reaches_the_api_server() {
    let cp = shared();
    let client = cp.client().await.unwrap();
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");
    assert_eq!(version.minor, "34");
}

#[test]
fn kustomize_default_is_accepted_by_the_api_server() {
    let cp = shared();
    // Server-side dry run: the API server validates every object (schemas, RBAC objects,
    // webhook registrations) without creating the Fail-policy registrations, which would block
    // the other tests of this binary (no webhook runs here). The namespace must exist for that.
    let _ = cp.kubectl(&["create", "namespace", "koperator"]);
    let dir = repo_root().join("config/default");
    let out = cp
        .kubectl(&["apply", "--server-side", "--dry-run=server", "-k", dir.to_str().unwrap()])
        .expect("kubectl apply -k config/default --dry-run=server");
    for needle in [
        "deployment.apps/koperator serverside-applied",
        "deployment.apps/koperator-webhook serverside-applied",
        "service/koperator-webhook serverside-applied",
        "serviceaccount/koperator serverside-applied",
        "poddisruptionbudget.policy/koperator-webhook serverside-applied",
        "validatingwebhookconfiguration.admissionregistration.k8s.io/koperator-validating-webhook serverside-applied",
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/koperator-mutating-webhook serverside-applied",
        "clusterrole.rbac.authorization.k8s.io/koperator serverside-applied",
        "customresourcedefinition.apiextensions.k8s.io/kafkaclusters.kafka.banzaicloud.io serverside-applied",
    ] {
        assert!(out.contains(needle), "{needle} missing from:\n{out}");
    }
}

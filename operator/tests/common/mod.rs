//! Helpers shared by the operator's end-to-end tests: install CRDs and RBAC, start the
//! operator under its ServiceAccount, read objects, wait for conditions.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use koperator_e2e::process::Component;
use koperator_e2e::{ControlPlane, tools::repo_root};
use serde_json::Value;

pub const NS: &str = "koperator";

pub fn install(cp: &ControlPlane) {
    let root = repo_root();
    cp.install_crds().unwrap();
    let _ = cp.kubectl(&["create", "namespace", NS]);
    cp.kubectl(&["apply", "-k", root.join("config/rbac").to_str().unwrap()]).unwrap();
}

/// Starts an operator watching `watch`, electing a leader through Lease `lease`.
pub fn start_operator(cp: &ControlPlane, watch: &str, lease: &str, id: &str, extra: &[String]) -> (Component, u16) {
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
    ]
    .into_iter()
    .chain(extra.iter().cloned())
    .collect::<Vec<_>>();
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

pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

pub fn op_log(op: &Component) -> String {
    std::fs::read_to_string(&op.log).unwrap_or_default()
}

pub fn get_json(cp: &ControlPlane, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend(["-o", "json"]);
    serde_json::from_str(&cp.kubectl(&a).unwrap()).unwrap()
}

pub fn wait_for(what: &str, timeout: Duration, op: &Component, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        if let Some(s) = op.exited() {
            panic!("operator exited ({s}):\n{}", op.log_tail(30));
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}\n--- operator log ---\n{}", op.log_tail(30));
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn resource_versions(cp: &ControlPlane, ns: &str) -> BTreeMap<String, String> {
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

pub fn pod_uids(cp: &ControlPlane, ns: &str) -> BTreeMap<String, String> {
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
pub fn sample_read_only(sample: &str) -> String {
    let v: Value = serde_saphyr::from_str(sample).unwrap();
    v["spec"]["readOnlyConfig"].as_str().unwrap_or_default().to_string()
}

/// The operator has seen the latest spec, every broker runs it, and the cluster is Running.
pub fn settled(kc: &Value) -> bool {
    kc["status"]["observedGeneration"] == kc["metadata"]["generation"]
        && kc["status"]["state"] == "ClusterRunning"
        && kc["status"]["brokersState"]
            .as_object()
            .is_some_and(|m| m.values().all(|b| b["configurationState"] == "ConfigInSync"))
}

pub fn condition(kc: &Value, t: &str) -> Option<(String, String)> {
    kc["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
        .map(|c| (c["status"].as_str().unwrap().to_string(), c["reason"].as_str().unwrap_or("").to_string()))
}

//! Helpers shared by the operator's end-to-end tests: install CRDs and RBAC, start the
//! operator under its ServiceAccount, read objects, metrics, the leader Lease and Events, wait
//! for conditions.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use koperator_e2e::process::Component;
use koperator_e2e::{ControlPlane, tools::repo_root};
use serde_json::Value;

/// The operator's own namespace: its ServiceAccount and its leader Leases live here.
pub const NS: &str = "koperator";

pub fn install(cp: &ControlPlane) {
    let root = repo_root();
    cp.install_crds().unwrap();
    let _ = cp.kubectl(&["create", "namespace", NS]);
    cp.kubectl(&["apply", "-k", root.join("config/rbac").to_str().unwrap()]).unwrap();
}

/// A running operator process. Stopped (SIGKILL after 2 s) when dropped, so that a failing
/// test does not leave it reconciling; it dies with the test binary in any case.
pub struct Operator {
    component: Component,
    /// Port of its `/metrics`, `/readyz`, `/healthz` on 127.0.0.1.
    pub port: u16,
    /// Its `--identity` (the Lease holder while it leads).
    pub identity: String,
    /// Its `--lease-name`.
    pub lease: String,
}

impl std::ops::Deref for Operator {
    type Target = Component;
    fn deref(&self) -> &Component {
        &self.component
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.component.stop(Duration::from_secs(2));
    }
}

/// Starts an operator watching namespace `watch`, electing a leader through Lease `lease`
/// (in [`NS`]) as `id`.
pub fn start_operator(cp: &ControlPlane, watch: &str, lease: &str, id: &str, extra: &[String]) -> Operator {
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(|| install(cp));
    let kubeconfig = cp.service_account_kubeconfig(NS, "koperator").unwrap();
    let port = koperator_e2e::process::free_port().unwrap();
    let args = [
        "--log-format=text".to_string(),
        format!("--watch-namespace={watch}"),
        format!("--lease-name={lease}"),
        format!("--identity={id}"),
        "--lease-duration=4s".to_string(),
        format!("--metrics-listen=127.0.0.1:{port}"),
    ]
    .into_iter()
    .chain(extra.iter().cloned())
    .collect::<Vec<_>>();
    let component = Component::start_with_env(
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
    Operator { component, port, identity: id.to_string(), lease: lease.to_string() }
}

/// `GET path` on 127.0.0.1:`port`; the whole response (status line, headers, body), or `None`
/// when nothing answers.
pub fn try_http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

pub fn http_get(port: u16, path: &str) -> String {
    try_http_get(port, path).unwrap_or_else(|| panic!("nothing answers GET {path} on 127.0.0.1:{port}"))
}

/// The body of `/metrics` (OpenMetrics text), `None` when the endpoint does not answer 200.
pub fn metrics_text(port: u16) -> Option<String> {
    let response = try_http_get(port, "/metrics")?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// One sample line of the text exposition format: name, labels, value. `None` for comments,
/// blank lines and anything unparsable.
pub fn parse_sample(line: &str) -> Option<(String, BTreeMap<String, String>, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        // label="value" pairs, values with \" \\ \n escapes, separated by commas.
        let mut chars = inner.char_indices().peekable();
        let mut end = None;
        loop {
            while chars.next_if(|(_, c)| *c == ',' || c.is_whitespace()).is_some() {}
            match chars.peek() {
                Some((i, '}')) => {
                    end = Some(*i);
                    break;
                }
                None => break,
                _ => {}
            }
            let mut key = String::new();
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()?.1 {
                    '"' => break,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    c => value.push(c),
                }
            }
            labels.insert(key.trim().to_string(), value);
        }
        rest = &inner[end? + 1..];
    }
    // The value, then an optional timestamp and exemplar.
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some((name, labels, value))
}

/// The value of sample `name` whose label set is exactly `labels` (in any order), in a
/// metrics text.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    text.lines().filter_map(parse_sample).find(|(n, l, _)| n == name && *l == want).map(|(_, _, v)| v)
}

/// The sum of the samples `name` whose labels include `labels` (a subset, any order); `None`
/// when no sample matches.
pub fn sample_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = text
        .lines()
        .filter_map(parse_sample)
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, _, v)| v)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// `name{labels}` on the operator's `/metrics` at `port` (exact label set, any order); `None`
/// when the series is absent or the endpoint does not answer.
pub fn metric(port: u16, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    sample(&metrics_text(port)?, name, labels)
}

/// The sum over the series of `name` whose labels include `labels`, on `/metrics` at `port`.
pub fn metric_sum(port: u16, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    sample_sum(&metrics_text(port)?, name, labels)
}

/// `koperator_reconciles_total{controller, result="ok"}` (0 while absent).
pub fn reconciles_ok(port: u16, controller: &str) -> f64 {
    metric(port, "koperator_reconciles_total", &[("controller", controller), ("result", "ok")]).unwrap_or(0.0)
}

/// `koperator_api_writes_total{controller}` (0 while absent).
pub fn api_writes(port: u16, controller: &str) -> f64 {
    metric(port, "koperator_api_writes_total", &[("controller", controller)]).unwrap_or(0.0)
}

/// `koperator_leader` of the operator at `port`.
pub fn leader_gauge(port: u16) -> Option<f64> {
    metric(port, "koperator_leader", &[])
}

/// `spec.holderIdentity` of Lease `lease` in the operator's namespace.
pub fn lease_holder(cp: &ControlPlane, lease: &str) -> Option<String> {
    let out = cp.kubectl(&["get", "lease", lease, "-n", NS, "-o", "json"]).ok()?;
    let v: Value = serde_json::from_str(&out).ok()?;
    v["spec"]["holderIdentity"].as_str().map(String::from)
}

/// `op` leads: it holds its Lease and says so on `/metrics`.
pub fn leads(cp: &ControlPlane, op: &Operator) -> bool {
    lease_holder(cp, &op.lease).as_deref() == Some(op.identity.as_str()) && leader_gauge(op.port) == Some(1.0)
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
            panic!("operator exited ({s}) while waiting for {what}:\n{}", op.log_tail(30));
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}\n--- operator log ---\n{}", op.log_tail(30));
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The events.k8s.io Events of `ns`.
pub fn events(cp: &ControlPlane, ns: &str) -> Vec<Value> {
    cp.kubectl(&["get", "events.events.k8s.io", "-n", ns, "-o", "json"])
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .and_then(|v| v["items"].as_array().cloned())
        .unwrap_or_default()
}

/// A snapshot of the Events of a namespace (name → resourceVersion), to tell later which
/// Events are new or were repeated (a repeated Event is the same object with a higher
/// `series.count`).
pub struct EventMark(BTreeMap<String, String>);

impl EventMark {
    pub fn now(cp: &ControlPlane, ns: &str) -> EventMark {
        EventMark(
            events(cp, ns)
                .iter()
                .map(|e| (name_of(e).to_string(), e["metadata"]["resourceVersion"].as_str().unwrap_or("").to_string()))
                .collect(),
        )
    }

    /// Events with `reason` created or repeated since the snapshot.
    pub fn since(&self, cp: &ControlPlane, ns: &str, reason: &str) -> Vec<Value> {
        events(cp, ns)
            .into_iter()
            .filter(|e| e["reason"] == reason)
            .filter(|e| self.0.get(name_of(e)).map(String::as_str) != e["metadata"]["resourceVersion"].as_str())
            .collect()
    }
}

fn name_of(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or("")
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

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP koperator_reconciles Reconciles by controller and result.
# TYPE koperator_reconciles counter
koperator_reconciles_total{controller="kafkacluster",result="ok"} 7
koperator_reconciles_total{result="error",controller="kafkacluster"} 2
koperator_reconciles_total{controller="kafkatopic",result="ok"} 3 1700000000.0
koperator_leader 1
koperator_reconcile_duration_seconds_bucket{le="+Inf",controller="kafkacluster"} 9
odd{a="x,\"y\"}",b="2"} 1.5
# EOF
"#;

    #[test]
    fn samples_match_names_and_label_sets_in_any_order() {
        let ok = [("result", "ok"), ("controller", "kafkacluster")];
        assert_eq!(sample(TEXT, "koperator_reconciles_total", &ok), Some(7.0));
        let err = [("controller", "kafkacluster"), ("result", "error")];
        assert_eq!(sample(TEXT, "koperator_reconciles_total", &err), Some(2.0));
        assert_eq!(sample(TEXT, "koperator_reconciles_total", &[("controller", "kafkacluster")]), None);
        assert_eq!(sample_sum(TEXT, "koperator_reconciles_total", &[("controller", "kafkacluster")]), Some(9.0));
        assert_eq!(sample_sum(TEXT, "koperator_reconciles_total", &[]), Some(12.0));
        assert_eq!(sample(TEXT, "koperator_leader", &[]), Some(1.0));
        assert_eq!(sample(TEXT, "koperator_reconciles", &[]), None);
        assert_eq!(
            sample(
                TEXT,
                "koperator_reconcile_duration_seconds_bucket",
                &[("controller", "kafkacluster"), ("le", "+Inf")]
            ),
            Some(9.0)
        );
        assert_eq!(sample(TEXT, "odd", &[("b", "2"), ("a", "x,\"y\"}")]), Some(1.5));
    }
}

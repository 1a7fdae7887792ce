//! Real Prometheus and Alertmanager for the alert tests, built by `make e2e-deps` from their Go
//! modules (`e2e/tools/prometheus`, `e2e/tools/alertmanager`). Prometheus finds the broker Pods
//! of a namespace through the test API server (Kubernetes service discovery, role `pod`),
//! scrapes each broker's JMX exporter, evaluates the test's rules and sends what fires to
//! Alertmanager, which posts it to the operator's alert receiver (its webhook).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::process::{Component, free_port};
use crate::tools::tool;

/// Prometheus and Alertmanager, stopped when dropped.
pub struct Monitoring {
    /// Prometheus.
    pub prometheus: Component,
    /// Alertmanager.
    pub alertmanager: Component,
    /// Prometheus' `host:port`.
    pub prometheus_addr: String,
    /// Alertmanager's `host:port`.
    pub alertmanager_addr: String,
    rules: PathBuf,
}

/// Where Alertmanager posts: the operator's alert receiver.
pub struct Receiver<'a> {
    /// `http://host:port/path`.
    pub url: &'a str,
}

impl Monitoring {
    /// Starts Alertmanager (posting every alert group to `receiver`, again every few seconds
    /// while it fires) and Prometheus (scraping the `metrics` port of the Pods labelled
    /// `app=kafka` in `namespace` every 10 s, rules evaluated every 2 s, `rules` as its rule file).
    pub fn start(dir: &Path, kubeconfig: &Path, namespace: &str, receiver: Receiver<'_>, rules: &str) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let am_port = free_port()?;
        let alertmanager_addr = format!("127.0.0.1:{am_port}");
        let am_config = dir.join("alertmanager.yml");
        std::fs::write(
            &am_config,
            format!(
                r#"route:
  receiver: koperator
  group_by: [alertname, kafka_cr, namespace, persistentvolumeclaim]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 4s
receivers:
  - name: koperator
    webhook_configs:
      - url: {url}
        send_resolved: true
"#,
                url = receiver.url
            ),
        )?;
        let alertmanager = Component::start(
            "alertmanager",
            &tool("alertmanager")?,
            &[
                format!("--config.file={}", am_config.display()),
                format!("--storage.path={}", dir.join("alertmanager-data").display()),
                format!("--web.listen-address={alertmanager_addr}"),
                // One Alertmanager, no gossip port.
                "--cluster.listen-address=".into(),
                "--log.level=debug".into(),
            ],
            dir.join("alertmanager.log"),
            false,
        )?;
        let rules_file = dir.join("rules.yml");
        std::fs::write(&rules_file, rules)?;
        let port = free_port()?;
        let prometheus_addr = format!("127.0.0.1:{port}");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                r#"global:
  # A broker's JMX exporter answers in 1-3 s on the test machine (every Kafka MBean).
  scrape_interval: 10s
  scrape_timeout: 10s
  evaluation_interval: 2s
rule_files: [{rules}]
alerting:
  alertmanagers:
    - static_configs: [{{targets: ["{alertmanager_addr}"]}}]
scrape_configs:
  - job_name: kafka
    kubernetes_sd_configs:
      - role: pod
        kubeconfig_file: {kubeconfig}
        namespaces: {{names: [{namespace}]}}
    relabel_configs:
      - {{source_labels: [__meta_kubernetes_pod_label_app, __meta_kubernetes_pod_container_port_name], regex: "kafka;metrics", action: keep}}
      - {{source_labels: [__meta_kubernetes_pod_label_kafka_cr], target_label: kafka_cr}}
      - {{source_labels: [__meta_kubernetes_pod_label_brokerId], target_label: brokerId}}
      - {{source_labels: [__meta_kubernetes_namespace], target_label: namespace}}
      - {{source_labels: [__meta_kubernetes_pod_name], target_label: pod}}
"#,
                rules = rules_file.display(),
                kubeconfig = kubeconfig.display(),
            ),
        )?;
        let prometheus = Component::start(
            "prometheus",
            &tool("prometheus")?,
            &[
                format!("--config.file={}", config.display()),
                format!("--storage.tsdb.path={}", dir.join("prometheus-data").display()),
                format!("--web.listen-address={prometheus_addr}"),
                "--web.enable-lifecycle".into(),
            ],
            dir.join("prometheus.log"),
            false,
        )?;
        let m = Monitoring { prometheus, alertmanager, prometheus_addr, alertmanager_addr, rules: rules_file };
        for (name, addr) in [("prometheus", &m.prometheus_addr), ("alertmanager", &m.alertmanager_addr)] {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while http("GET", addr, "/-/ready", None).ok().map(|(s, _)| s) != Some(200) {
                if std::time::Instant::now() > deadline {
                    bail!("{name} not ready at {addr}:\n{}", m.logs());
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Ok(m)
    }

    /// Replaces the rule file and has Prometheus load it.
    pub fn set_rules(&self, rules: &str) -> Result<()> {
        std::fs::write(&self.rules, rules)?;
        match http("POST", &self.prometheus_addr, "/-/reload", Some("")) {
            Ok((200, _)) => Ok(()),
            other => bail!("Prometheus did not reload its rules: {other:?}"),
        }
    }

    /// The result vector of the instant query `q` (Prometheus' HTTP API).
    pub fn query(&self, q: &str) -> Result<Vec<Value>> {
        let (status, body) = http("GET", &self.prometheus_addr, &format!("/api/v1/query?query={}", encode(q)), None)?;
        let v: Value = serde_json::from_str(&body).with_context(|| format!("query {q}: HTTP {status}: {body}"))?;
        if v["status"] != "success" {
            bail!("query {q}: {body}");
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// The alerts Alertmanager holds (its v2 API).
    pub fn alertmanager_alerts(&self) -> Result<Vec<Value>> {
        let (_, body) = http("GET", &self.alertmanager_addr, "/api/v2/alerts", None)?;
        Ok(serde_json::from_str::<Value>(&body)?.as_array().cloned().unwrap_or_default())
    }

    /// The last lines of both logs.
    pub fn logs(&self) -> String {
        format!(
            "--- prometheus ---\n{}\n--- alertmanager ---\n{}",
            self.prometheus.log_tail(20),
            self.alertmanager.log_tail(20)
        )
    }
}

impl Drop for Monitoring {
    fn drop(&mut self) {
        self.prometheus.stop(Duration::from_secs(5));
        self.alertmanager.stop(Duration::from_secs(5));
    }
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One HTTP/1.0 request (no chunked answers) to `addr`: the status code and the body.
pub fn http(method: &str, addr: &str, path: &str, body: Option<&str>) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connect to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    let body = body.unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).context("no HTTP status line")?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

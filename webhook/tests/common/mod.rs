//! Runs the real webhook binary against the shared control plane, registered through the
//! project's own manifests (config/webhook) with `url:` instead of a Service, and with the
//! project's own RBAC (config/rbac) through a ServiceAccount token.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use koperator_e2e::process::{Component, free_port};
use koperator_e2e::{ControlPlane, tools::repo_root};
use serde_json::Value;

pub const NAMESPACE: &str = "koperator";

pub struct WebhookUnderTest {
    pub component: Component,
    pub port: u16,
}

/// Applies CRDs, the webhook's namespace and RBAC.
pub fn install_base(cp: &ControlPlane) {
    let root = repo_root();
    cp.install_crds().unwrap();
    let _ = cp.kubectl(&["create", "namespace", NAMESPACE]);
    cp.kubectl(&["apply", "-k", root.join("config/rbac").to_str().unwrap()]).unwrap();
}

/// Registers config/webhook/{validating,mutating}.yaml with `url: https://127.0.0.1:<port>`.
pub fn register(cp: &ControlPlane, port: u16) {
    for file in ["validating.yaml", "mutating.yaml"] {
        let text = std::fs::read_to_string(repo_root().join("config/webhook").join(file)).unwrap();
        let mut obj: Value = serde_saphyr::from_str(&text).unwrap();
        for w in obj["webhooks"].as_array_mut().unwrap() {
            let path = w["clientConfig"]["service"]["path"].as_str().unwrap().to_string();
            w["clientConfig"] = serde_json::json!({"url": format!("https://127.0.0.1:{port}{path}")});
        }
        cp.kubectl_stdin(&["apply", "-f", "-"], Some(&obj.to_string())).unwrap();
    }
}

impl WebhookUnderTest {
    /// Starts the webhook with `extra` flags, registers it and waits until the API server
    /// reaches it.
    pub fn start(cp: &ControlPlane, extra: &[&str]) -> WebhookUnderTest {
        install_base(cp);
        let port = free_port().unwrap();
        register(cp, port);
        let w = Self::spawn(cp, port, extra);
        w.wait_serving(cp);
        w
    }

    /// Starts another replica sharing the Secret (not registered: the API server calls the
    /// first one).
    pub fn start_replica(cp: &ControlPlane, extra: &[&str]) -> WebhookUnderTest {
        Self::spawn(cp, free_port().unwrap(), extra)
    }

    fn spawn(cp: &ControlPlane, port: u16, extra: &[&str]) -> WebhookUnderTest {
        let mut args: Vec<String> = vec![
            format!("--listen=127.0.0.1:{port}"),
            format!("--namespace={NAMESPACE}"),
            "--extra-san=127.0.0.1".into(),
            "--cert-check-interval=1s".into(),
            "--log-format=text".into(),
            // Tests stop their webhooks with SIGTERM and move on: no drain (the chart's
            // replicas drain, see helm.rs).
            "--shutdown-delay=0s".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let env = vec![
            (
                "KUBECONFIG".to_string(),
                cp.service_account_kubeconfig(NAMESPACE, "koperator-webhook").unwrap().display().to_string(),
            ),
            ("RUST_LOG".to_string(), "info".to_string()),
        ];
        let log = cp.dir.join("logs").join(format!("webhook-{port}.log"));
        let component = Component::start_with_env(
            "koperator-webhook",
            env!("CARGO_BIN_EXE_koperator-webhook").as_ref(),
            &args,
            &env,
            log,
            false,
        )
        .unwrap();
        WebhookUnderTest { component, port }
    }

    /// A TLS connection to the webhook's listen port that accepts any server certificate.
    pub async fn connect(&self) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(AcceptAny))
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg)).connect(name, tcp).await.unwrap()
    }

    /// The certificate (DER) the webhook presents now.
    pub async fn served_certificate(&self) -> Vec<u8> {
        self.connect().await.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    }

    /// The body of `GET /metrics` (served over HTTPS on the listen port).
    pub async fn metrics(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tls = self.connect().await;
        tls.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut response = Vec::new();
        // The server may end the TLS session without close_notify after `Connection: close`.
        let _ = tls.read_to_end(&mut response).await;
        let response = String::from_utf8(response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP response: {response}"));
        assert!(head.starts_with("HTTP/1.1 200"), "GET /metrics: {head}");
        assert!(!head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "chunked /metrics: {head}");
        body.to_string()
    }

    /// The value of an unlabelled metric (e.g. `koperator_webhook_certificate_reloads_total`).
    pub async fn metric(&self, name: &str) -> f64 {
        metric_value(&self.metrics().await, name).unwrap_or_else(|| panic!("no metric {name} in /metrics"))
    }

    /// Waits until a KafkaTopic without cluster is denied by the webhook (so TLS and caBundle work).
    pub fn wait_serving(&self, cp: &ControlPlane) {
        let probe = r#"{"apiVersion":"kafka.banzaicloud.io/v1alpha1","kind":"KafkaTopic","metadata":{"name":"probe","namespace":"default"},
            "spec":{"name":"probe","partitions":0,"replicationFactor":1,"clusterRef":{"name":"none"}}}"#;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.component.exited() {
                panic!("webhook exited ({status}):\n{}", self.component.log_tail(30));
            }
            let out = cp.kubectl_output(&["apply", "--dry-run=server", "-f", "-"], Some(probe)).unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            // Only the webhook knows whether a cluster exists.
            if stderr.contains("kafkaCluster 'none'") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "webhook not reachable through the API server: {stderr}\n{}",
                self.component.log_tail(30)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.component.log).unwrap_or_default()
    }
}

/// The value of the unlabelled sample `name` in a Prometheus/OpenMetrics text exposition.
pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let mut parts = l.split_whitespace();
        (parts.next()? == name).then(|| parts.next()?.parse().ok())?
    })
}

/// The caBundle of every webhook of the validating configuration.
pub fn injected_bundles(cp: &ControlPlane) -> Vec<String> {
    let out =
        cp.kubectl(&["get", "validatingwebhookconfiguration", "koperator-validating-webhook", "-o", "json"]).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    v["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["clientConfig"]["caBundle"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Accepts any server certificate: only used to read which certificate a replica serves.
#[derive(Debug)]
struct AcceptAny;

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
    }
}

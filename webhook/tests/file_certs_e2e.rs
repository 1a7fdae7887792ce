//! Certificates mounted from files (cert-manager style): served, their CA injected, and both
//! reloaded when the files change.

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::{WebhookUnderTest, injected_bundles};
use koperator_e2e::shared;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

/// (ca pem, leaf pem, leaf key pem, leaf der)
fn issue(cn: &str) -> (String, String, String, Vec<u8>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, cn);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.subject_alt_names.push(SanType::IpAddress([127, 0, 0, 1].into()));
    let leaf_cert = leaf.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), leaf_cert.pem(), key.serialize_pem(), leaf_cert.der().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounted_certificates_are_served_injected_and_reloaded() {
    let cp = shared();
    let dir = cp.dir.join("mounted-certs");
    std::fs::create_dir_all(&dir).unwrap();
    let write = |(ca, cert, key): (&str, &str, &str)| {
        std::fs::write(dir.join("ca.crt"), ca).unwrap();
        std::fs::write(dir.join("tls.key"), key).unwrap();
        std::fs::write(dir.join("tls.crt"), cert).unwrap();
    };
    let first = issue("mounted-ca-1");
    write((&first.0, &first.1, &first.2));
    let flags = [
        format!("--tls-cert-file={}", dir.join("tls.crt").display()),
        format!("--tls-key-file={}", dir.join("tls.key").display()),
        format!("--ca-file={}", dir.join("ca.crt").display()),
    ];
    let w = tokio::task::spawn_blocking(move || {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        WebhookUnderTest::start(cp, &flags)
    })
    .await
    .unwrap();
    assert_eq!(w.served_certificate().await, first.3);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    assert!(injected_bundles(cp).iter().all(|b| *b == b64(&first.0)));

    let second = issue("mounted-ca-2");
    write((&second.0, &second.1, &second.2));
    let started = Instant::now();
    while w.served_certificate().await != second.3 || !injected_bundles(cp).iter().all(|b| *b == b64(&second.0)) {
        assert!(started.elapsed() < Duration::from_secs(10), "new files not picked up:\n{}", w.component.log_tail(20));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("FIGURE: mounted certificate change picked up after {} ms", started.elapsed().as_millis());
    // The API server still reaches the webhook with the new chain.
    let probe = r#"{"apiVersion":"kafka.banzaicloud.io/v1alpha1","kind":"KafkaTopic","metadata":{"name":"p","namespace":"default"},
        "spec":{"name":"p","partitions":1,"replicationFactor":1,"clusterRef":{"name":"none"}}}"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = cp.kubectl_output(&["apply", "--dry-run=server", "-f", "-"], Some(probe)).unwrap();
        if String::from_utf8_lossy(&out.stderr).contains("kafkaCluster 'none'") {
            break;
        }
        assert!(Instant::now() < deadline, "{}", String::from_utf8_lossy(&out.stderr));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

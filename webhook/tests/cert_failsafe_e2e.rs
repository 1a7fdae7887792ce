//! Certificates fail safe (#14 item 9), on the real API server with the real webhook over
//! HTTPS while admissions run all along: a certificate Secret whose state is garbage, whose
//! leaf is someone else's, or whose `ca.crt` is a foreign CA never makes the API server stop
//! trusting the webhook (old and new CA overlap in `caBundle`, the old one goes only after the
//! window), and `/readyz` stays 200 while the Secret cannot be read.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{NAMESPACE, WebhookUnderTest, injected_bundles, metric_value};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use koperator_e2e::{ControlPlane, shared};
use koperator_shared::api::ClusterReference;
use koperator_shared::api::kafkauser::{KafkaUser, KafkaUserSpec};
use koperator_webhook::certs::STATE_KEY;
use koperator_webhook::pki::{self, PkiConfig, PkiState};
use kube::Api;
use kube::api::PostParams;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

const SECRET: &str = "koperator-webhook-certs";
const PROPAGATION: Duration = Duration::from_secs(3);

fn der(pem: &str) -> Vec<Vec<u8>> {
    CertificateDer::pem_slice_iter(pem.as_bytes()).map(|c| c.unwrap().to_vec()).collect()
}

/// The CAs (DER) injected into the first webhook of the validating configuration.
fn injected(cp: &ControlPlane) -> Vec<Vec<u8>> {
    let bundle = injected_bundles(cp).remove(0);
    der(&String::from_utf8(base64::engine::general_purpose::STANDARD.decode(bundle).unwrap()).unwrap())
}

async fn secret(client: &kube::Client) -> Secret {
    Api::<Secret>::namespaced(client.clone(), NAMESPACE).get(SECRET).await.unwrap()
}

/// Replaces data `key` of the certificate Secret (retrying on conflicts with the webhook).
async fn overwrite(client: &kube::Client, key: &str, value: Vec<u8>) {
    let api = Api::<Secret>::namespaced(client.clone(), NAMESPACE);
    loop {
        let mut s = secret(client).await;
        s.data.get_or_insert_default().insert(key.to_string(), ByteString(value.clone()));
        match api.replace(SECRET, &PostParams::default(), &s).await {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => panic!("overwrite {key}: {e}"),
        }
    }
}

async fn state(client: &kube::Client) -> PkiState {
    serde_json::from_slice(&secret(client).await.data.unwrap()[STATE_KEY].0).unwrap()
}

/// `GET /readyz` on the webhook's HTTPS port: the status code.
async fn readyz(w: &WebhookUnderTest) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = w.connect().await;
    tls.write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("{response}"))
}

async fn counter(w: &WebhookUnderTest, series: &str) -> f64 {
    metric_value(&w.metrics().await, series).unwrap_or(0.0)
}

/// Tampers with the Secret, then watches the injected bundle and the served certificate until
/// the old CA is gone: the new CA must join the bundle before any leaf from it is served, and
/// the old CA must stay until after the switch. Returns (overlap seconds: new CA in the bundle
/// → old CA dropped, seconds the old leaf was served with the new CA trusted).
async fn tamper_and_watch(
    cp: &ControlPlane,
    w: &WebhookUnderTest,
    client: &kube::Client,
    what: &str,
    tamper: impl AsyncFnOnce(),
) -> (f64, f64) {
    let before = state(client).await;
    let old_ca = der(&before.ca.cert).remove(0);
    let old_leaf = w.served_certificate().await;
    assert_eq!(old_leaf, der(&before.leaf.cert)[0], "{what}: the webhook serves the Secret's leaf");
    assert_eq!(injected(cp), vec![old_ca.clone()], "{what}: one CA before");
    tamper().await;
    let t0 = Instant::now();
    let (mut both_at, mut switched_at) = (None::<Instant>, None::<Instant>);
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(45),
            "{what}: the old CA never left the bundle\n{}",
            w.component.log_tail(30)
        );
        let bundle = injected(cp);
        let served = w.served_certificate().await;
        let now = Instant::now();
        let has_old = bundle.contains(&old_ca);
        if has_old && bundle.len() >= 2 && both_at.is_none() {
            both_at = Some(now);
        }
        if served != old_leaf && switched_at.is_none() {
            let since = both_at.map(|b| now - b);
            assert!(
                since.is_some_and(|s| s >= PROPAGATION - Duration::from_millis(1500)),
                "{what}: a new leaf was served {since:?} after the new CA joined the bundle\n{}",
                w.component.log_tail(30)
            );
            switched_at = Some(now);
        }
        if !has_old {
            let switched = switched_at.unwrap_or_else(|| panic!("{what}: the old CA left before the old leaf did"));
            assert!(
                now - switched >= Duration::from_secs(2),
                "{what}: the old CA left {:?} after the switch",
                now - switched
            );
            assert_eq!(bundle.len(), 1, "{what}: only the new CA remains");
            let both = both_at.expect("checked at the switch");
            return ((now - both).as_secs_f64(), (switched - both).as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_secrets_and_failing_reads_fail_no_admission() {
    let cp = shared();
    const FLAGS: [&str; 3] = ["--leaf-validity=120s", "--ca-validity=1h", "--ca-propagation=3s"];
    let w = tokio::task::spawn_blocking(move || WebhookUnderTest::start(cp, &FLAGS)).await.unwrap();
    let ns = cp.namespace("failsafe").unwrap();
    let cluster = std::fs::read_to_string(
        koperator_e2e::tools::repo_root().join("config/samples/kafkacluster_kraft_combined.yaml"),
    )
    .unwrap();
    cp.kubectl_stdin(
        &["apply", "-n", &ns.name, "-f", "-"],
        Some(&cluster.replace("name: kafka-combined", "name: kafka")),
    )
    .unwrap();
    let client = cp.client().await.unwrap();
    let api: Api<KafkaUser> = Api::namespaced(client.clone(), &ns.name);
    let user = |name: &str| {
        let mut u = KafkaUser::new(
            name,
            KafkaUserSpec {
                secret_name: name.into(),
                cluster_ref: ClusterReference { name: "kafka".into(), namespace: None },
                ..Default::default()
            },
        );
        u.metadata.namespace = None;
        u
    };
    let dry = PostParams { dry_run: true, ..Default::default() };
    let seen_by = Instant::now() + Duration::from_secs(30);
    while let Err(e) = api.create(&dry, &user("probe")).await {
        assert!(Instant::now() < seen_by, "the webhook never saw KafkaCluster kafka: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Admissions all along: server-side dry runs of KafkaUsers, answered by the webhook.
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for worker in 0..2 {
        let (api, ok, failed, failures, stop, dry) =
            (api.clone(), ok.clone(), failed.clone(), failures.clone(), stop.clone(), dry.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                match api.create(&dry, &user(&format!("u-{worker}-{i}"))).await {
                    Ok(_) => ok.fetch_add(1, Ordering::SeqCst),
                    Err(e) => {
                        failures.lock().unwrap().push(format!("{e:?}"));
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
            }
        }));
    }
    let started = Instant::now();

    // (i) state.json is garbage.
    let garbage = tamper_and_watch(cp, &w, &client, "garbage state", async || {
        overwrite(&client, STATE_KEY, b"{not json at all".to_vec()).await
    })
    .await;
    let series = |c: &str| format!("koperator_webhook_certificate_state_rejected_total{{category=\"{c}\"}}");
    assert!(counter(&w, &series("CertStateUnreadable")).await >= 1.0, "garbage state not counted");

    // (i) valid JSON, but the leaf (with its key) is someone else's.
    let cfg = PkiConfig {
        ca_validity: Duration::from_secs(3600),
        leaf_validity: Duration::from_secs(120),
        propagation: PROPAGATION,
        sans: vec!["127.0.0.1".into()],
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let foreign = pki::plan(None, now, &cfg).unwrap().unwrap();
    let foreign_leaf = tamper_and_watch(cp, &w, &client, "foreign leaf", async || {
        let mut s = state(&client).await;
        s.leaf = foreign.leaf.clone();
        overwrite(&client, STATE_KEY, serde_json::to_vec(&s).unwrap()).await
    })
    .await;
    assert!(counter(&w, &series("StateLeafNotFromCa")).await >= 1.0, "foreign leaf not counted");

    // ca.crt replaced with a foreign CA: rewritten from the state, never injected.
    let foreign_ca = der(&foreign.ca.cert).remove(0);
    overwrite(&client, "ca.crt", foreign.ca.cert.clone().into_bytes()).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        assert!(!injected(cp).contains(&foreign_ca), "a foreign ca.crt reached caBundle");
        let s = secret(&client).await;
        let data = s.data.unwrap();
        let want: PkiState = serde_json::from_slice(&data[STATE_KEY].0).unwrap();
        if data["ca.crt"].0 == want.bundle_pem().into_bytes() {
            break;
        }
        assert!(Instant::now() < deadline, "ca.crt was not repaired");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(counter(&w, &series("CertSecretFieldMismatch")).await >= 1.0, "foreign ca.crt not counted");

    // (ii) The Secret cannot be read (its RoleBindings are gone): ready all along.
    let read_failures = "koperator_webhook_certificate_maintenance_failures_total{category=\"CertSecretRead\"}";
    let failures_before = counter(&w, read_failures).await;
    cp.kubectl(&["delete", "rolebinding", "-n", NAMESPACE, "koperator-webhook"]).unwrap();
    // Its client-certificate reads (KafkaTopic checks on SSL clusters) may read Secrets too.
    cp.kubectl(&["delete", "clusterrolebinding", "koperator-webhook-client-certs"]).unwrap();
    let cut = Instant::now();
    let mut probes = 0;
    while cut.elapsed() < Duration::from_secs(8) {
        assert_eq!(readyz(&w).await, 200, "not ready while the Secret cannot be read\n{}", w.component.log_tail(10));
        probes += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let read_failed = counter(&w, read_failures).await - failures_before;
    cp.kubectl(&["apply", "-k", koperator_e2e::tools::repo_root().join("config/rbac").to_str().unwrap()]).unwrap();
    assert!(read_failed >= 3.0, "the Secret reads did not fail ({read_failed} failures)\n{}", w.component.log_tail(10));

    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    eprintln!(
        "FIGURE: {} admissions in {:.0}s ({ok} admitted, {failed} failed); garbage state: CAs overlapped {:.1}s, old leaf \
         served {:.1}s with the new CA trusted; foreign leaf: overlapped {:.1}s, old leaf {:.1}s; Secret unreadable \
         {:.0}s: {probes} /readyz probes all 200, {read_failed} failed passes",
        ok + failed,
        started.elapsed().as_secs_f64(),
        garbage.0,
        garbage.1,
        foreign_leaf.0,
        foreign_leaf.1,
        cut.elapsed().as_secs_f64(),
    );
    assert!(ok > 50, "too little load: {ok}");
    let first: Vec<String> = failures.lock().unwrap().iter().take(5).cloned().collect();
    assert_eq!(failed, 0, "failed admissions: {first:#?}");
}

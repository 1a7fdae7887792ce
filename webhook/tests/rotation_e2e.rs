//! Zero-downtime certificate rotation: 20+ serving-certificate rotations and a CA rollover
//! while a client keeps sending objects through the real API server; no request may fail.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{NAMESPACE, WebhookUnderTest, injected_bundles, metric_value};
use k8s_openapi::api::core::v1::Secret;
use koperator_e2e::shared;
use koperator_shared::api::ClusterReference;
use koperator_shared::api::kafkauser::{AccessType, KafkaUser, KafkaUserSpec, UserTopicGrant};
use koperator_webhook::certs::STATE_KEY;
use koperator_webhook::pki::PkiState;
use kube::Api;
use kube::api::PostParams;

/// (serving-certificate rotations, CA rollovers) a replica reports on `/metrics`: the first
/// certificate load is not a rotation, and the first CA is not a rollover.
async fn rotations(w: &WebhookUnderTest) -> (u64, u64) {
    let text = w.metrics().await;
    let value = |name| metric_value(&text, name).unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}")) as u64;
    (
        value("koperator_webhook_certificate_reloads_total").saturating_sub(1),
        value("koperator_webhook_ca_rollovers_total"),
    )
}

/// The shared PKI state in the certificate Secret.
async fn secret_state(client: &kube::Client) -> PkiState {
    let secret = Api::<Secret>::namespaced(client.clone(), NAMESPACE).get("koperator-webhook-certs").await.unwrap();
    serde_json::from_slice(&secret.data.unwrap()[STATE_KEY].0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_under_load_fail_no_request() {
    let cp = shared();
    const FLAGS: [&str; 3] = ["--leaf-validity=3s", "--ca-validity=40s", "--ca-propagation=3s"];
    let w = tokio::task::spawn_blocking(move || WebhookUnderTest::start(cp, &FLAGS)).await.unwrap();
    // A second replica shares the Secret: both must converge on the same certificate.
    let replica = WebhookUnderTest::start_replica(cp, &FLAGS);
    let ns = cp.namespace("rotation").unwrap();
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
    let first_ca = secret_state(&client).await.ca.cert;
    // KafkaUsers: validated against the API server only (KafkaTopics would also ask Kafka).
    let api: Api<KafkaUser> = Api::namespaced(client.clone(), &ns.name);
    // The load starts once the webhook's cache has seen the cluster (a new KafkaCluster reaches
    // its reflector a moment after it is stored).
    let probe = KafkaUser::new(
        "probe",
        KafkaUserSpec {
            secret_name: "probe".into(),
            cluster_ref: ClusterReference { name: "kafka".into(), namespace: None },
            ..Default::default()
        },
    );
    let seen_by = Instant::now() + Duration::from_secs(30);
    while let Err(e) = api.create(&PostParams { dry_run: true, ..Default::default() }, &probe).await {
        assert!(Instant::now() < seen_by, "the webhook never saw KafkaCluster kafka: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ok, denied, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for worker in 0..2 {
        let (api, ok, denied, failed, failures, stop) =
            (api.clone(), ok.clone(), denied.clone(), failed.clone(), failures.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let invalid = i.is_multiple_of(2);
                let mut t = KafkaUser::new(
                    &format!("u-{worker}-{i}"),
                    KafkaUserSpec {
                        secret_name: format!("u-{worker}-{i}"),
                        cluster_ref: ClusterReference { name: "kafka".into(), namespace: None },
                        topic_grants: Some(vec![UserTopicGrant {
                            topic_name: if invalid { "bad name!".into() } else { "orders".into() },
                            access_type: AccessType::Read,
                            pattern_type: None,
                        }]),
                        ..Default::default()
                    },
                );
                t.metadata.namespace = None;
                // Every 10th request is stored for real; the rest are server-side dry runs.
                let pp = PostParams { dry_run: !i.is_multiple_of(10), ..Default::default() };
                match (api.create(&pp, &t).await, invalid) {
                    (Ok(_), false) => ok.fetch_add(1, Ordering::SeqCst),
                    (Err(kube::Error::Api(e)), true)
                        if e.code == 422 && e.message.contains("spec.topicGrants[0].topicName") =>
                    {
                        denied.fetch_add(1, Ordering::SeqCst)
                    }
                    (other, _) => {
                        failures.lock().unwrap().push(format!("{other:?}"));
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
            }
        }));
    }

    let started = Instant::now();
    let (mut rotations, mut rollovers) = (0, 0);
    while started.elapsed() < Duration::from_secs(150) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        (rotations, rollovers) = self::rotations(&w).await;
        if rotations >= 20 && rollovers >= 1 {
            break;
        }
    }
    // Keep the load on a little after the last rotation.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let (ok, denied, failed) =
        (ok.load(Ordering::SeqCst), denied.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    eprintln!(
        "FIGURE: {} requests in {:.0}s ({ok} admitted, {denied} rejected as invalid, {failed} failed) across {rotations} \
         certificate rotations and {rollovers} CA rollover(s)",
        ok + denied + failed,
        started.elapsed().as_secs_f64()
    );
    assert!(rotations >= 20, "only {rotations} rotations happened");
    assert!(rollovers >= 1, "no CA rollover happened");
    assert!(ok > 100 && denied > 100, "too little load: {ok} ok, {denied} denied");
    // One lock: the message is built while `failures` is held.
    let first_failures: Vec<String> = failures.lock().unwrap().iter().take(5).cloned().collect();
    assert_eq!(failed, 0, "failed requests: {first_failures:#?}");

    // Replicas cooperate: they serve the same certificate (retry across a rotation boundary).
    let mut same = false;
    for _ in 0..20 {
        if w.served_certificate().await == replica.served_certificate().await {
            same = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(same, "the two replicas serve different certificates\n{}", replica.component.log_tail(20));
    assert!(replica.component.exited().is_none(), "the replica died:\n{}", replica.component.log_tail(20));
    let (replica_rotations, replica_rollovers) = self::rotations(&replica).await;
    assert!(replica_rotations >= 10, "the replica followed only {replica_rotations} rotations");
    assert!(replica_rollovers >= 1, "the replica did not follow the CA rollover");

    // The API objects agree: the Secret's CA is a new one, and every webhook trusts it.
    let state = secret_state(&client).await;
    assert_ne!(state.ca.cert, first_ca, "the Secret still holds the first CA");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let want = b64(&secret_state(&client).await.bundle_pem());
        let injected = injected_bundles(cp);
        if injected.iter().all(|b| *b == want) {
            break;
        }
        assert!(Instant::now() < deadline, "caBundle {injected:?} is not the Secret's bundle {want}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "FIGURE: replica followed {replica_rotations} rotations and {replica_rollovers} CA rollover(s); bundle holds {} CA(s)",
        state.bundle.len()
    );
}

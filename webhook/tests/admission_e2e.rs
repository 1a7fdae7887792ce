//! `kubectl apply` through a real kube-apiserver with the webhook registered: bad objects are
//! rejected with field paths, good ones accepted with defaults pinned, and a wiped caBundle is
//! repaired.

mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{WebhookUnderTest, injected_bundles};
use koperator_e2e::{ControlPlane, shared, tools::repo_root};
use serde_json::{Value, json};

/// The hosts file the webhook resolves broker names with (tests write it).
fn kafka_hosts(cp: &ControlPlane) -> std::path::PathBuf {
    cp.dir.join("kafka-hosts")
}

fn webhook() -> (&'static ControlPlane, &'static WebhookUnderTest) {
    static W: OnceLock<WebhookUnderTest> = OnceLock::new();
    let cp = shared();
    (
        cp,
        W.get_or_init(|| {
            let hosts = kafka_hosts(cp);
            std::fs::write(&hosts, "").unwrap();
            WebhookUnderTest::start(cp, &[&format!("--kafka-hosts-file={}", hosts.display())])
        }),
    )
}

fn sample(file: &str) -> Value {
    let text = std::fs::read_to_string(repo_root().join("config/samples").join(file)).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

/// Applies `obj` in `ns`; Ok(stdout+stderr) on success, Err(stderr) on failure.
fn apply(cp: &ControlPlane, ns: &str, obj: &Value, extra: &[&str]) -> Result<String, String> {
    let mut args = vec!["apply", "-n", ns, "-f", "-"];
    args.extend_from_slice(extra);
    let out = cp.kubectl_output(&args, Some(&obj.to_string())).unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() { Ok(text) } else { Err(text) }
}

fn get(cp: &ControlPlane, ns: &str, kind: &str, name: &str) -> Value {
    serde_json::from_str(&cp.kubectl(&["get", kind, name, "-n", ns, "-o", "json"]).unwrap()).unwrap()
}

fn expect_denied(cp: &ControlPlane, ns: &str, what: &str, obj: &Value, needles: &[&str]) {
    let err = apply(cp, ns, obj, &[]).expect_err(&format!("{what}: must be rejected"));
    // A 422 from the webhook reaches kubectl like the API server's own validation errors.
    assert!(err.contains("is invalid"), "{what}: not rejected as invalid:\n{err}");
    for n in needles {
        assert!(err.contains(n), "{what}: {n:?} missing from kubectl's output:\n{err}");
    }
}

#[test]
fn invalid_objects_are_rejected_with_field_paths() {
    let (cp, _) = webhook();
    let ns = cp.namespace("invalid").unwrap();
    let ns = ns.name.as_str();
    let base = sample("kafkacluster_kraft_combined.yaml");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = base.clone();
        f(&mut v);
        v
    };
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "duplicate container port",
            with(&|v| v["spec"]["listenersConfig"]["internalListeners"][1]["containerPort"] = json!(29092)),
            vec!["spec.listenersConfig.internalListeners[1].containerPort: Duplicate value: 29092"],
        ),
        (
            "external port out of range",
            with(
                &|v| v["spec"]["listenersConfig"]["externalListeners"] = json!([{"type": "plaintext", "name": "external", "containerPort": 9094, "externalStartingPort": 65534}]),
            ),
            vec![
                "spec.listenersConfig.externalListeners[0].externalStartingPort: Invalid value: 65534",
                "out of range",
                "for brokers [2]",
            ],
        ),
        (
            "envoy admin port equals health-check port",
            with(&|v| v["spec"]["envoyConfig"] = json!({"adminPort": 8080})),
            vec!["spec.envoyConfig.adminPort: Invalid value: 8080"],
        ),
        (
            "broker without storage and unknown group",
            with(&|v| {
                v["spec"]["brokers"][0]["brokerConfigGroup"] = json!("missing");
                v["spec"]["brokers"][1] = json!({"id": 1, "brokerConfig": {"processRoles": ["broker", "controller"]}});
            }),
            vec![
                "spec.brokers[0].brokerConfigGroup: Not found: \"missing\"",
                "spec.brokers[1].brokerConfig.storageConfigs: Required value",
            ],
        ),
        (
            "KRaft without a controller listener",
            with(&|v| {
                v["spec"]["listenersConfig"]["internalListeners"][1]["usedForControllerCommunication"] = json!(false)
            }),
            vec!["spec.listenersConfig.internalListeners: Required value", "usedForControllerCommunication"],
        ),
        (
            "Istio ingress",
            with(&|v| v["spec"]["ingressController"] = json!("istioingress")),
            vec!["spec.ingressController: Unsupported value: \"istioingress\"", "Istio ingress is not supported"],
        ),
        (
            "SSL listener without certificates",
            with(&|v| v["spec"]["listenersConfig"]["internalListeners"][0]["type"] = json!("ssl")),
            vec![
                "spec.listenersConfig.internalListeners[0].serverSSLCertSecret: Required value",
                "spec.clientSSLCertSecret: Required value",
            ],
        ),
        (
            "operator-owned key in readOnlyConfig",
            with(&|v| v["spec"]["readOnlyConfig"] = json!("log.dirs=/tmp\n")),
            vec!["spec.readOnlyConfig: Forbidden: log.dirs is set by the operator"],
        ),
        (
            "duplicate broker id",
            with(&|v| v["spec"]["brokers"][2]["id"] = json!(0)),
            vec!["spec.brokers[2].id: Duplicate value: 0"],
        ),
    ];
    for (what, obj, needles) in &cases {
        expect_denied(cp, ns, what, obj, needles);
    }

    let mut topic = sample("example-topic.yaml");
    topic["spec"]["partitions"] = json!(0);
    expect_denied(
        cp,
        ns,
        "topic with 0 partitions",
        &topic,
        &["spec.partitions: Invalid value: 0", "number of partitions must be larger than 0"],
    );
    let topic = sample("example-topic.yaml");
    expect_denied(
        cp,
        ns,
        "topic of a missing cluster",
        &topic,
        &["spec.clusterRef.name", "kafkaCluster 'kafka' in the namespace"],
    );
    let mut user = sample("example-user.yaml");
    user["spec"]["secretName"] = json!("Bad_Name");
    expect_denied(cp, ns, "user with a bad secret name", &user, &["spec.secretName: Invalid value: \"Bad_Name\""]);
    let mut cco = sample("example-cruisecontroloperation.yaml");
    cco["metadata"]["labels"] = json!({});
    expect_denied(cp, ns, "operation without kafka_cr", &cco, &["metadata.labels[kafka_cr]: Required value"]);
}

#[test]
fn samples_are_accepted_with_defaults_pinned() {
    let (cp, _) = webhook();
    let ns = cp.namespace("valid").unwrap();
    let ns = ns.name.as_str();
    for file in [
        "kafkacluster_kraft.yaml",
        "kafkacluster_kraft_combined.yaml",
        "simplekafkacluster.yaml",
        "simplekafkacluster_ssl.yaml",
        "simplekafkacluster_2disk.yaml",
        "simplekafkacluster-with-nodeport-external.yaml",
        "kafkacluster_with_loadbalancer_external.yaml",
        "simplekafkacluster_with_contour.yaml",
        "kafkacluster_contour_passthrough.yaml",
        "kafkacluster_gateway_api.yaml",
    ] {
        let mut obj = sample(file);
        // Clusters are referred to as "kafka" by the topic/user/operation samples.
        if file == "kafkacluster_kraft.yaml" {
            obj["metadata"]["name"] = json!("kafka");
        }
        apply(cp, ns, &obj, &[]).unwrap_or_else(|e| panic!("{file}: {e}"));
        let stored = get(cp, ns, "kafkacluster", obj["metadata"]["name"].as_str().unwrap());
        assert_eq!(stored["spec"]["kubernetesClusterDomain"], "cluster.local", "{file}: defaults pinned");
        assert_eq!(stored["spec"]["rollingUpgradeConfig"]["concurrentBrokerRestartCountPerRack"], 1, "{file}");
    }
    let lb = get(cp, ns, "kafkacluster", "kafka-lb");
    assert_eq!(lb["spec"]["listenersConfig"]["externalListeners"][0]["anyCastPort"], 29092);
    assert_eq!(lb["spec"]["listenersConfig"]["externalListeners"][0]["ingressControllerTargetPort"], 29092);
    let ssl = get(cp, ns, "kafkacluster", "kafka-ssl");
    assert_eq!(ssl["spec"]["listenersConfig"]["internalListeners"][0]["sslClientAuth"], "required");

    // The topic's cluster has no running Kafka: the webhook cannot check the topic and says so
    // (Koperator's behaviour), well inside the 5 s webhook timeout.
    let started = Instant::now();
    let err = apply(cp, ns, &sample("example-topic.yaml"), &[]).expect_err("a topic of an unreachable cluster");
    assert!(err.contains("failed to connect to kafka cluster"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    for (file, kind) in
        [("example-user.yaml", "kafkauser"), ("example-cruisecontroloperation.yaml", "cruisecontroloperation")]
    {
        let obj = sample(file);
        apply(cp, ns, &obj, &[]).unwrap_or_else(|e| panic!("{file}: {e}"));
        let stored = get(cp, ns, kind, obj["metadata"]["name"].as_str().unwrap());
        match kind {
            "kafkauser" => assert_eq!(stored["spec"]["topicGrants"][0]["patternType"], "literal"),
            _ => assert_eq!(stored["spec"]["errorPolicy"], "retry"),
        }
    }
    // UPDATE rules: switching kRaft on a stored cluster is forbidden.
    let mut flip = sample("kafkacluster_kraft_combined.yaml");
    flip["spec"]["kRaft"] = json!(false);
    flip["spec"]["zkAddresses"] = json!(["zk:2181"]);
    for g in flip["spec"]["brokerConfigGroups"].as_object_mut().unwrap().values_mut() {
        g.as_object_mut().unwrap().remove("processRoles");
    }
    expect_denied(cp, ns, "kRaft switch", &flip, &["spec.kRaft: Forbidden"]);
}

#[test]
fn server_side_dry_run_is_checked_and_not_stored() {
    let (cp, _) = webhook();
    let ns = cp.namespace("dryrun").unwrap();
    let ns = ns.name.as_str();
    let mut bad = sample("kafkacluster_kraft_combined.yaml");
    bad["spec"]["brokers"][1]["id"] = json!(0);
    let err = apply(cp, ns, &bad, &["--dry-run=server"]).unwrap_err();
    assert!(err.contains("spec.brokers[1].id: Duplicate value: 0"), "{err}");
    let good = sample("kafkacluster_kraft_combined.yaml");
    let out = apply(cp, ns, &good, &["--dry-run=server", "-o", "json"]).unwrap();
    assert!(out.contains("\"kubernetesClusterDomain\": \"cluster.local\""), "defaults visible in the dry run:\n{out}");
    let missing = cp.kubectl_output(&["get", "kafkacluster", "kafka-combined", "-n", ns], None).unwrap();
    assert!(!missing.status.success(), "a dry run stores nothing");
}

#[test]
fn warnings_reach_kubectl() {
    let (cp, _) = webhook();
    let ns = cp.namespace("warn").unwrap();
    let mut four = sample("kafkacluster_kraft_combined.yaml");
    four["spec"]["brokers"].as_array_mut().unwrap().push(json!({"id": 3, "brokerConfigGroup": "default"}));
    let out = apply(cp, &ns.name, &four, &[]).unwrap();
    assert!(out.contains("Warning:") && out.contains("4 controllers"), "{out}");
}

#[test]
fn fields_not_acted_on_yet_are_named_in_warnings() {
    let (cp, _) = webhook();
    let ns = cp.namespace("unsupported").unwrap();
    let mut kc = sample("kafkacluster_kraft_combined.yaml");
    kc["spec"]["monitoringConfig"] =
        json!({"jmxImage": "ghcr.io/adobe/koperator/jmx-javaagent:1.4.0", "cCJMXExporterConfig": "rules: []"});
    let line = "Warning: spec.monitoringConfig.cCJMXExporterConfig: accepted but not acted on yet: no Cruise Control is deployed (spec.cruiseControlConfig asks for none, or names an external cruiseControlEndpoint), so no Cruise Control exporter runs (the brokers' exporter does)";
    let out = apply(cp, &ns.name, &kc, &[]).unwrap();
    assert_eq!(out.lines().filter(|l| *l == line).count(), 1, "CREATE:\n{out}");
    // An UPDATE that keeps the field warns again, and names the field it adds.
    kc["spec"]["rackAwareness"] = json!({"labels": ["topology.kubernetes.io/zone"]});
    let out = apply(cp, &ns.name, &kc, &[]).unwrap();
    assert_eq!(out.lines().filter(|l| *l == line).count(), 1, "UPDATE:\n{out}");
    assert!(out.contains("Warning: spec.rackAwareness: accepted but not acted on yet: "), "UPDATE:\n{out}");

    let mut user = sample("example-user.yaml");
    kc["metadata"]["name"] = json!("kafka");
    apply(cp, &ns.name, &kc, &[]).unwrap();
    user["spec"]["expirationSeconds"] = json!(7200);
    let out = apply(cp, &ns.name, &user, &[]).unwrap();
    assert!(!out.contains("Warning"), "certificate users get their certificate:\n{out}");
    user["metadata"]["annotations"] = json!({"koperator.banzaicloud.io/credentials": "scram-sha-512"});
    let out = apply(cp, &ns.name, &user, &[]).unwrap();
    assert!(
        out.contains("Warning: spec.expirationSeconds: accepted but not acted on yet: the user has SCRAM credentials"),
        "a SCRAM user's certificate fields are named:\n{out}"
    );
    user["spec"]["pkiBackendSpec"] = json!({"pkiBackend": "cert-manager"});
    let err = apply(cp, &ns.name, &user, &[]).unwrap_err();
    assert!(
        err.contains("spec.pkiBackendSpec.pkiBackend: Unsupported value: \"cert-manager\": the operator issues"),
        "{err}"
    );
}

#[test]
fn topic_field_errors_are_not_hidden_behind_an_unreachable_kafka() {
    let (cp, _) = webhook();
    let ns = cp.namespace("unreachable").unwrap();
    let ns = ns.name.as_str();
    let closed = koperator_e2e::process::free_port().unwrap();
    cluster_at(cp, ns, "refused", closed, "127.0.0.1");
    let started = Instant::now();
    expect_denied(
        cp,
        ns,
        "0 partitions on a cluster whose Kafka refuses connections",
        &kafka_topic("zero", "refused", 0, 1, json!({})),
        &["spec.partitions: Invalid value: 0", "number of partitions must be larger than 0"],
    );
    eprintln!(
        "FIGURE: KafkaTopic field error on an unreachable Kafka answered in {} ms",
        started.elapsed().as_millis()
    );
    let err = apply(cp, ns, &kafka_topic("zero", "refused", 0, 1, json!({})), &[]).unwrap_err();
    assert!(!err.contains("failed to connect to kafka cluster"), "the field error alone:\n{err}");
    // Without field errors, the check that needs Kafka is what fails.
    let err = apply(cp, ns, &kafka_topic("one", "refused", 1, 1, json!({})), &[]).unwrap_err();
    assert!(err.contains("failed to connect to kafka cluster"), "{err}");
}

#[test]
fn wiped_ca_bundle_is_repaired_within_seconds() {
    let (cp, w) = webhook();
    let before = injected_bundles(cp);
    assert!(before.iter().all(|b| !b.is_empty()), "caBundle injected into every webhook");
    let started = Instant::now();
    let patch = json!([{"op": "replace", "path": "/webhooks/0/clientConfig/caBundle", "value": ""}]).to_string();
    cp.kubectl(&[
        "patch",
        "validatingwebhookconfiguration",
        "koperator-validating-webhook",
        "--type=json",
        "-p",
        &patch,
    ])
    .unwrap();
    loop {
        let now = injected_bundles(cp);
        if now == before {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "caBundle not repaired within 10s\n{}",
            w.component.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let repaired = started.elapsed();
    eprintln!("FIGURE: wiped caBundle repaired after {} ms", repaired.as_millis());
}

/// A TLS connection to the webhook offering `alpn`, trusting the bundle injected into its
/// webhook configurations.
async fn connect_trusting_the_bundle(
    cp: &ControlPlane,
    w: &WebhookUnderTest,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use base64::Engine;
    let bundle = base64::engine::general_purpose::STANDARD.decode(&injected_bundles(cp)[0]).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&bundle) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", w.port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg)).connect(name, tcp).await.unwrap()
}

/// `GET path` over HTTP/1.1; the whole answer.
async fn http11_get(cp: &ControlPlane, w: &WebhookUnderTest, path: &str) -> String {
    let mut tls = connect_trusting_the_bundle(cp, w, &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut resp = String::new();
    tls.read_to_string(&mut resp).await.unwrap();
    resp
}

#[tokio::test]
async fn serves_http11_over_tls_trusted_by_the_injected_bundle() {
    let (cp, w) = tokio::task::spawn_blocking(webhook).await.unwrap();
    let resp = http11_get(cp, w, "/readyz").await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    let status = std::fs::read_to_string(format!("/proc/{}/status", w.component.pid())).unwrap();
    let rss = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or_default();
    eprintln!("FIGURE: webhook {rss}");
}

/// The API server's Go client takes HTTP/2 when the webhook offers it over ALPN.
#[tokio::test]
async fn the_api_server_reaches_the_webhook_over_http2() {
    let (cp, w) = tokio::task::spawn_blocking(webhook).await.unwrap();
    let h2_connections = |metrics: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with("koperator_webhook_connections_total{protocol=\"h2\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    let before = h2_connections(&http11_get(cp, w, "/metrics").await);
    tokio::task::spawn_blocking(move || {
        let ns = cp.namespace("h2").unwrap();
        apply(cp, &ns.name, &sample("kafkacluster_kraft_combined.yaml"), &["--dry-run=server"]).unwrap();
    })
    .await
    .unwrap();
    let metrics = http11_get(cp, w, "/metrics").await;
    let after = h2_connections(&metrics);
    eprintln!("FIGURE: HTTP/2 connections from the API server: {before} before the admission, {after} after");
    assert!(after >= 1.0, "no HTTP/2 connection was served:\n{metrics}");
    // A client that offers only HTTP/1.1 still gets it (checked above), and one offering h2 gets h2.
    let tls = connect_trusting_the_bundle(cp, w, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
}

/// A KafkaCluster object named `name` whose single broker-facing listener is `port` on
/// 127.0.0.1 (the hosts file maps its broker names there).
fn cluster_at(cp: &ControlPlane, ns: &str, name: &str, port: u16, ip: &str) {
    let mut kc = sample("kafkacluster_kraft_combined.yaml");
    kc["metadata"]["name"] = json!(name);
    kc["spec"]["listenersConfig"]["internalListeners"][0]["containerPort"] = json!(port);
    apply(cp, ns, &kc, &[]).unwrap();
    // Tests run in parallel and the webhook re-reads the file on every lookup: one writer at a
    // time, and the new file replaces the old one at once.
    static HOSTS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_writer = HOSTS.lock().unwrap_or_else(|e| e.into_inner());
    let mut hosts = std::fs::read_to_string(kafka_hosts(cp)).unwrap_or_default();
    for id in 0..3 {
        hosts.push_str(&format!("{ip} {name}-{id}.{name}-headless.{ns}.svc.cluster.local\n"));
    }
    let next = kafka_hosts(cp).with_extension(format!("{name}.{ns}.tmp"));
    std::fs::write(&next, hosts).unwrap();
    std::fs::rename(&next, kafka_hosts(cp)).unwrap();
}

fn kafka_topic(name: &str, cluster: &str, partitions: i32, rf: i32, config: Value) -> Value {
    json!({
        "apiVersion": "kafka.banzaicloud.io/v1alpha1",
        "kind": "KafkaTopic",
        "metadata": {"name": name},
        "spec": {"name": name, "partitions": partitions, "replicationFactor": rf, "config": config, "clusterRef": {"name": cluster}},
    })
}

#[test]
fn topic_rules_checked_against_live_kafka() {
    let (cp, _) = webhook();
    let ns = cp.namespace("live").unwrap();
    let ns = ns.name.as_str();
    let kafka = koperator_e2e::kafka::SingleNode::start(Duration::from_secs(90)).unwrap();
    let port: u16 = kafka.bootstrap.rsplit(':').next().unwrap().parse().unwrap();
    cluster_at(cp, ns, "live", port, "127.0.0.1");
    let admin = koperator_shared::kafka::Admin::new(vec![kafka.bootstrap.clone()], Default::default());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(admin.create_topic(&koperator_shared::kafka::NewTopic {
        name: "existing".into(),
        partitions: 3,
        replication_factor: 1,
        configs: [("retention.ms".to_string(), "600000".to_string())].into(),
    }))
    .unwrap();
    let config = json!({"retention.ms": "600000"});

    expect_denied(
        cp,
        ns,
        "replication factor above the live brokers",
        &kafka_topic("wide", "live", 1, 3, json!({})),
        &["spec.replicationFactor: Invalid value: 3", "available brokers: 1"],
    );
    expect_denied(
        cp,
        ns,
        "existing topic without managedBy",
        &kafka_topic("existing", "live", 3, 1, config.clone()),
        &["spec.name: Invalid value", "already exists on kafka cluster and it is not managed by Koperator"],
    );
    let mut adopt = kafka_topic("existing", "live", 2, 1, config.clone());
    adopt["metadata"]["annotations"] = json!({"managedBy": "koperator"});
    expect_denied(
        cp,
        ns,
        "adoption with other partitions",
        &adopt,
        &["spec.partitions: Invalid value: 2", "partition number must be the same", "present: 3"],
    );
    adopt["spec"]["partitions"] = json!(3);
    apply(cp, ns, &adopt, &[]).expect("adoption with matching settings is accepted");

    let mut shrink = adopt.clone();
    shrink["spec"]["partitions"] = json!(2);
    expect_denied(cp, ns, "partition decrease", &shrink, &["spec.partitions", "decreasing partition count"]);
    let mut rf = adopt.clone();
    rf["spec"]["replicationFactor"] = json!(2);
    expect_denied(cp, ns, "replication factor change", &rf, &["spec.replicationFactor"]);
    let mut dup = kafka_topic("existing-again", "live", 3, 1, config);
    dup["metadata"]["annotations"] = json!({"managedBy": "koperator"});
    dup["spec"]["name"] = json!("existing");
    expect_denied(
        cp,
        ns,
        "second CR for one topic",
        &dup,
        &["kafkaTopic CR 'existing'", "is already referencing to Kafka topic 'existing'"],
    );
    apply(cp, ns, &kafka_topic("fresh", "live", 2, 1, json!({})), &[]).expect("a new topic that fits is accepted");

    // Kafka refusing connections, and a peer that accepts but never answers: a clear error,
    // in time (the webhook's Kafka budget is 2.5 s, its registration timeout 5 s).
    let closed = koperator_e2e::process::free_port().unwrap();
    cluster_at(cp, ns, "refused", closed, "127.0.0.1");
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    cluster_at(cp, ns, "silent", silent.local_addr().unwrap().port(), "127.0.0.1");
    for cluster in ["refused", "silent"] {
        let started = Instant::now();
        let err = apply(cp, ns, &kafka_topic(&format!("t-{cluster}"), cluster, 1, 1, json!({})), &[])
            .expect_err("Kafka unreachable");
        let took = started.elapsed();
        assert!(err.contains("failed to connect to kafka cluster"), "{cluster}: {err}");
        assert!(took < Duration::from_secs(5), "{cluster}: answered after {took:?}");
        eprintln!("FIGURE: KafkaTopic on a cluster whose Kafka is {cluster}: rejected in {} ms", took.as_millis());
    }
}

/// Applies `obj` until the answer satisfies `done` (the webhook's caches see other objects a
/// moment after they are stored); the last answer.
fn apply_until(
    cp: &ControlPlane,
    ns: &str,
    obj: &Value,
    done: impl Fn(&Result<String, String>) -> bool,
) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = apply(cp, ns, obj, &[]);
        if done(&r) || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn user_of(name: &str, cluster: &str, cluster_ns: &str, scram: bool) -> Value {
    let mut u = json!({
        "apiVersion": "kafka.banzaicloud.io/v1alpha1",
        "kind": "KafkaUser",
        "metadata": {"name": name},
        "spec": {"secretName": format!("{name}-credentials"), "clusterRef": {"name": cluster, "namespace": cluster_ns}},
    });
    if scram {
        u["metadata"]["annotations"] = json!({"koperator.banzaicloud.io/credentials": "scram-sha-512"});
    }
    u
}

/// Namespaces are a boundary: a KafkaUser or KafkaTopic referring to a KafkaCluster in another
/// namespace is Forbidden until the cluster's `koperator.banzaicloud.io/allowed-namespaces`
/// lists that namespace (and again once it no longer does); two KafkaUsers mapping to one
/// principal on a cluster are a Duplicate, on CREATE and on UPDATE.
#[test]
fn namespace_boundary_and_one_principal_per_cluster() {
    let (cp, _) = webhook();
    let (platform, team) = (cp.namespace("platform").unwrap(), cp.namespace("team").unwrap());
    let (platform, team) = (platform.name.as_str(), team.name.as_str());
    let mut kc = sample("kafkacluster_kraft_combined.yaml");
    kc["metadata"]["name"] = json!("shared");
    apply(cp, platform, &kc, &[]).unwrap();
    let hint = format!("add '{team}' to the cluster's annotation koperator.banzaicloud.io/allowed-namespaces");
    let forbidden = ["spec.clusterRef.namespace: Forbidden", hint.as_str()];

    // Another namespace, no annotation: Forbidden, saying what to add.
    let bob = user_of("bob", "shared", platform, false);
    let denied = |r: &Result<String, String>| r.as_ref().is_err_and(|e| e.contains("spec.clusterRef.namespace"));
    let err = apply_until(cp, team, &bob, denied).expect_err("a KafkaUser across namespaces");
    assert!(forbidden.iter().all(|n| err.contains(n)), "{err}");
    let mut topic = kafka_topic("t1", "shared", 1, 1, json!({}));
    topic["spec"]["clusterRef"]["namespace"] = json!(platform);
    expect_denied(cp, team, "a KafkaTopic across namespaces", &topic, &forbidden);
    // The cluster's own namespace needs nothing.
    apply(cp, platform, &user_of("alice", "shared", platform, false), &[]).unwrap();

    // Listed (among others): accepted. The topic then goes on to the Kafka checks.
    let list = format!("koperator.banzaicloud.io/allowed-namespaces=elsewhere, {team}");
    cp.kubectl(&["annotate", "kafkacluster", "shared", "-n", platform, &list]).unwrap();
    apply_until(cp, team, &bob, Result::is_ok).expect("a listed namespace is accepted");
    let err = apply(cp, team, &topic, &[]).expect_err("this cluster's Kafka does not run");
    assert!(!err.contains("spec.clusterRef.namespace") && err.contains("failed to connect to kafka cluster"), "{err}");

    // One principal per cluster: alice (User:CN=alice) exists in the cluster's namespace.
    let duplicate = format!("KafkaUser '{platform}/alice' already maps to principal User:CN=alice");
    let err = apply(cp, team, &user_of("alice", "shared", platform, false), &[]).expect_err("same principal");
    assert!(err.contains("metadata.name: Duplicate value: \"alice\"") && err.contains(&duplicate), "{err}");
    // A SCRAM alice is principal User:alice: accepted; turning platform/alice into SCRAM
    // (an UPDATE) would now collide with it.
    apply_until(cp, team, &user_of("alice", "shared", platform, true), Result::is_ok).expect("another principal");
    let taken = format!("KafkaUser '{team}/alice' already maps to principal User:alice");
    let to_scram = user_of("alice", "shared", platform, true);
    let err = apply_until(cp, platform, &to_scram, Result::is_err).expect_err("an UPDATE to a taken principal");
    assert!(err.contains(&taken), "{err}");

    // Taken off the list: a new KafkaUser from that namespace is Forbidden again.
    cp.kubectl(&["annotate", "kafkacluster", "shared", "-n", platform, "koperator.banzaicloud.io/allowed-namespaces-"])
        .unwrap();
    let carol = user_of("carol", "shared", platform, false);
    let err = apply_until(cp, team, &carol, denied).expect_err("no longer listed");
    assert!(forbidden.iter().all(|n| err.contains(n)), "{err}");
}

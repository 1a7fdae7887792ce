//! Secure clusters on real Kafka (issue 15, the parts built so far): a 3-broker KRaft cluster
//! whose only listeners are SSL with `sslClientAuth: required` and ACLs enforced, its CA created
//! by the operator (`sslSecrets.create: true`), every broker with a certificate of its own and
//! the operator with its client certificate (lifetime 360 s here, so they renew during the
//! test). Through `kubectl` and Kafka's own clients:
//!
//! - the cluster comes up (brokers talk mTLS to each other and to the KRaft controllers) and
//!   the operator reaches it over TLS: a KafkaTopic is created, a dynamic config is applied;
//! - topic admission against this Kafka (the webhook's checks, with the operator's client
//!   certificate read under the webhook's own RBAC) refuses a partition decrease;
//! - a KafkaUser gets a client certificate in its Secret: Kafka's console producer and
//!   consumer write and read a topic its grants allow with it (PEM and, with `includeJKS`, JKS
//!   stores), and are refused a topic it has no grant for; a client without a certificate and
//!   one whose certificate another CA signed are refused at the handshake;
//! - while `VerifiableProducer` writes with acks=all as that user, the certificates' renewal
//!   and then a read-only change roll the brokers one at a time through the health gate, and
//!   every acknowledged message is read back;
//! - a cluster with `create: false` runs on a CA the user put in the Secret, and reports a
//!   missing one;
//! - a cluster whose listeners serve JKS stores of the user's own (`serverSSLCertSecret`) and
//!   whose operator connects with `clientSSLCertSecret` (stores made by openssl and keytool)
//!   reports the missing Secrets, then runs with ACLs enforced (both certificates' principals
//!   made super users, no password in the ConfigMap), gets a KafkaTopic, and rolls onto a new
//!   keystore put in the Secret;
//! - a cluster whose admin listener is SASL_SSL (SCRAM-SHA-512) runs with the operator logged
//!   in as the credential it created and the brokers bootstrapped; a KafkaTopic is created
//!   through it, a wrong password is refused, and a SCRAM KafkaUser writes the topic its grant
//!   allows there and nothing else;
//! - `status.certificates` (CA, brokers, operator) and the KafkaUser's `status.certificate`
//!   show the expiry and renewal of the certificates in the Secrets, the user's CA its own.
//!
//! One namespace, one test node and one operator for the lot (Kafka JVMs cost minutes here).

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use koperator_e2e::node::Node;
use koperator_e2e::shared;
use koperator_e2e::tools::repo_root;
use koperator_operator::kafkacluster::certificates::fingerprint;
use koperator_shared::kafka::{Admin, ConfigResource, ConnectOptions, Connection, Resolver, client_config};
use koperator_shared::pki::{self, LeafSpec};
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};

const CLUSTER: &str = "kafka-ssl";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// The SSL sample with a small heap and a topic-friendly read-only config.
fn ssl_spec() -> Value {
    let text = std::fs::read_to_string(repo_root().join("config/samples/simplekafkacluster_ssl.yaml")).unwrap();
    let mut v: Value = serde_saphyr::from_str(&text).unwrap();
    v["spec"]["brokerConfigGroups"]["default"]["kafkaHeapOpts"] = json!("-Xmx384m -Xms384m");
    v["spec"]["readOnlyConfig"] = json!(
        "auto.create.topics.enable=false\noffsets.topic.replication.factor=3\n\
         authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n"
    );
    v
}

fn apply(cp: &koperator_e2e::ControlPlane, ns: &str, v: &Value) {
    cp.kubectl_stdin(&["apply", "-n", ns, "-f", "-"], Some(&v.to_string())).unwrap();
}

/// `key` of Secret `name`, decoded.
fn secret_key(cp: &koperator_e2e::ControlPlane, ns: &str, name: &str, key: &str) -> String {
    let s = get_json(cp, &["get", "secret", name, "-n", ns]);
    let b64 = s["data"][key].as_str().unwrap_or_else(|| panic!("Secret {name} has no {key}"));
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap()
}

fn bootstrap(ns: &str, cluster: &str, brokers: usize) -> Vec<String> {
    (0..brokers).map(|i| format!("{cluster}-{i}.{cluster}-headless.{ns}.svc.cluster.local:29092")).collect()
}

fn opts(node: &Node, tls: Option<std::sync::Arc<rustls::ClientConfig>>) -> ConnectOptions {
    ConnectOptions { resolver: Resolver::with_hosts_file(Some(node.hosts_file.clone())), tls, ..Default::default() }
}

#[test]
fn ssl_only_clusters_with_mtls() {
    let cp = shared();
    let ns = cp.namespace("kafka-tls").unwrap();
    let ns = ns.name.clone();
    let node = Node::start(&cp.kubeconfig, &ns).unwrap();
    let hosts = format!("--kafka-hosts-file={}", node.hosts_file.display());
    let op = start_operator(cp, &ns, "kafka-tls", "kafka-tls", &[hosts, "--cluster-cert-validity=360s".into()]);
    let get = |name: &str| get_json(cp, &["get", "kafkacluster", name, "-n", &ns]);
    let running = |name: &str| {
        let kc = get(name);
        settled(&kc) && condition(&kc, "Ready").is_some_and(|c| c.0 == "True")
    };

    // An SSL-only cluster with the operator's own CA comes up.
    let started = Instant::now();
    let mut desired = ssl_spec();
    apply(cp, &ns, &desired);
    wait_for("the SSL cluster Running", Duration::from_secs(240), &op, || running(CLUSTER));
    eprintln!("SSL-only 3-broker cluster Running {:.1}s after kubectl apply", started.elapsed().as_secs_f64());
    let kc = get(CLUSTER);
    assert_eq!(condition(&kc, "Degraded").map(|c| c.0).as_deref(), Some("False"), "{kc}");
    let ca = secret_key(cp, &ns, "kafka-ssl-ca", "caCert");
    assert!(pki::is_ca(&ca));
    let owner =
        get_json(cp, &["get", "secret", "kafka-ssl-ca", "-n", &ns])["metadata"]["ownerReferences"][0]["kind"].clone();
    assert_eq!(owner, "KafkaCluster", "the CA's key lives in a Secret the KafkaCluster owns");
    for id in 0..3 {
        let cert = secret_key(cp, &ns, &format!("kafka-ssl-{id}-server-certificate"), "tls.crt");
        assert!(pki::signed_by(&cert, &ca));
        let fqdn = format!("kafka-ssl-{id}.kafka-ssl-headless.{ns}.svc.cluster.local");
        assert!(pki::dns_names(&cert).unwrap().contains(&fqdn), "{fqdn}");
    }
    // status.certificates: each certificate as it is in its Secret, with its expiry and renewal.
    let certs = &kc["status"]["certificates"];
    let t = now();
    assert_eq!(certs["ca"]["secretName"], "kafka-ssl-ca", "{certs}");
    assert_eq!(Some(rfc3339(&certs["ca"]["notAfter"])), pki::validity(&ca).map(|v| v.1), "{certs}");
    assert!(rfc3339(&certs["ca"]["notAfter"]) > t);
    assert!(certs["ca"]["renewAt"].is_null(), "the operator does not rotate the CA: {certs}");
    let leaves = (0..3)
        .map(|id| (&certs["brokers"][id.to_string()], format!("kafka-ssl-{id}-server-certificate")))
        .chain([(&certs["operator"], "kafka-ssl-controller".to_string())]);
    for (c, secret) in leaves {
        assert_eq!(c["secretName"], secret.as_str(), "{certs}");
        let (not_after, renew_at) = (rfc3339(&c["notAfter"]), rfc3339(&c["renewAt"]));
        assert!(t < renew_at && renew_at < not_after, "{secret} expires and renews in the future: {c}");
        let validity = pki::validity(&secret_key(cp, &ns, &secret, "tls.crt")).unwrap();
        assert_eq!((not_after, renew_at), (validity.1, pki::renew_at(validity)), "{secret}: as in its Secret");
    }
    let cm = get_json(cp, &["get", "configmap", "kafka-ssl-config-0", "-n", &ns]);
    let props = cm["data"]["broker-config"].as_str().unwrap();
    assert!(props.contains("listener.security.protocol.map=INTERNAL:SSL,CONTROLLER:SSL"), "{props}");
    assert!(props.contains("listener.name.internal.ssl.client.auth=required"), "{props}");
    assert!(!props.contains("PRIVATE KEY") && !props.contains("password"), "no secret in a ConfigMap");

    // The operator's client certificate is what reaches Kafka; the test uses it too.
    let op_tls = client_config(
        &secret_key(cp, &ns, "kafka-ssl-controller", "ca.crt"),
        Some((
            &secret_key(cp, &ns, "kafka-ssl-controller", "tls.crt"),
            &secret_key(cp, &ns, "kafka-ssl-controller", "tls.key"),
        )),
    )
    .unwrap();
    let admin = Admin::new(bootstrap(&ns, CLUSTER, 3), opts(&node, Some(op_tls)));
    let meta = rt().block_on(admin.metadata(Some(&[]))).unwrap();
    assert_eq!(meta.brokers.len(), 3);

    // Refused at the handshake: no certificate, and one from another CA.
    let addr = &bootstrap(&ns, CLUSTER, 1)[0];
    let anonymous = client_config(&ca, None).unwrap();
    let err = rt().block_on(Connection::open(addr, &opts(&node, Some(anonymous)))).err();
    assert!(err.is_some(), "a client without a certificate is refused");
    let other_ca = pki::new_ca("someone-else", now(), Duration::from_secs(3600)).unwrap();
    let intruder = pki::issue(&other_ca, &client_leaf("intruder"), now()).unwrap();
    let foreign = client_config(&ca, Some((&intruder.cert, &intruder.key))).unwrap();
    let err = rt().block_on(Connection::open(addr, &opts(&node, Some(foreign)))).err();
    assert!(err.is_some(), "a certificate another CA signed is refused");
    eprintln!("refused: {err:?}");

    // The operator over TLS: a KafkaTopic, a dynamic config.
    let topic = json!({
        "apiVersion": "kafka.banzaicloud.io/v1alpha1", "kind": "KafkaTopic",
        "metadata": {"name": "payments"},
        "spec": {"clusterRef": {"name": CLUSTER}, "name": "payments", "partitions": 3, "replicationFactor": 3,
                 "config": {"min.insync.replicas": "2"}}
    });
    apply(cp, &ns, &topic);
    wait_for("the KafkaTopic created in Kafka over TLS", Duration::from_secs(60), &op, || {
        rt().block_on(admin.metadata(Some(&["payments"]))).ok().and_then(|m| m.topic("payments").cloned()).is_some()
    });
    desired["spec"]["clusterWideConfig"] = json!("log.cleaner.threads=2\n");
    apply(cp, &ns, &desired);
    wait_for("a dynamic config applied over TLS", Duration::from_secs(60), &op, || {
        rt().block_on(admin.describe_configs(&ConfigResource::BrokerDefaults))
            .ok()
            .and_then(|c| c.into_iter().find(|e| e.name == "log.cleaner.threads"))
            .is_some_and(|e| e.value.as_deref() == Some("2"))
    });

    // Topic admission against this Kafka: the webhook's checks, as the webhook's
    // ServiceAccount, present the operator's client certificate.
    // The client's background worker lives on the runtime the checks run on.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let webhook_kube = runtime.block_on(async {
        let kubeconfig = cp.service_account_kubeconfig("koperator", "koperator-webhook").unwrap();
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        kube::Client::try_from(kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap()).unwrap()
    });
    let checks = koperator_webhook::kafka_checks::LiveKafkaChecks::new(
        runtime.handle().clone(),
        Some(node.hosts_file.clone()),
        Duration::from_secs(2),
        Duration::from_secs(5),
    )
    .with_client_certificates(webhook_kube);
    let kc: koperator_shared::api::KafkaCluster = serde_json::from_value(get(CLUSTER)).unwrap();
    let cluster = koperator_shared::validated::must(&kc);
    let mut shrink: koperator_shared::api::KafkaTopic = serde_json::from_value(topic.clone()).unwrap();
    shrink.metadata.namespace = Some(ns.clone());
    shrink.spec.partitions = 1;
    use koperator_webhook::admission::KafkaTopicChecks;
    let errors = checks.check(&shrink, &cluster, true).unwrap();
    assert!(
        errors.iter().any(|e| e.path == "spec.partitions" && e.message.contains("3")),
        "a partition decrease is refused against the SSL cluster: {errors:?}"
    );
    drop(runtime);

    // A KafkaUser's certificate: what its grants allow, and nothing else.
    let user = json!({
        "apiVersion": "kafka.banzaicloud.io/v1alpha1", "kind": "KafkaUser",
        "metadata": {"name": "app"},
        "spec": {"clusterRef": {"name": CLUSTER}, "secretName": "app-tls", "includeJKS": true,
                 "topicGrants": [{"topicName": "payments", "accessType": "write"},
                                 {"topicName": "payments", "accessType": "read"}]}
    });
    apply(cp, &ns, &user);
    let closed = json!({
        "apiVersion": "kafka.banzaicloud.io/v1alpha1", "kind": "KafkaTopic",
        "metadata": {"name": "audit"},
        "spec": {"clusterRef": {"name": CLUSTER}, "name": "audit", "partitions": 1, "replicationFactor": 3}
    });
    apply(cp, &ns, &closed);
    wait_for("the KafkaUser's certificate and ACLs", Duration::from_secs(60), &op, || {
        let u = get_json(cp, &["get", "kafkauser", "app", "-n", &ns]);
        condition(&u, "Ready").is_some_and(|c| c.0 == "True")
    });
    let user_cert = secret_key(cp, &ns, "app-tls", "tls.crt");
    assert_eq!(pki::common_name(&user_cert).as_deref(), Some("app"), "User:CN=app");
    assert!(pki::signed_by(&user_cert, &ca));
    let status = get_json(cp, &["get", "kafkauser", "app", "-n", &ns])["status"]["certificate"].clone();
    assert_eq!(status["secretName"], "app-tls", "{status}");
    let validity = pki::validity(&user_cert).unwrap();
    let (not_after, renew_at) = (rfc3339(&status["notAfter"]), rfc3339(&status["renewAt"]));
    assert_eq!((not_after, renew_at), (validity.1, pki::renew_at(validity)), "the user's certificate: {status}");
    assert!(now() < renew_at, "{status}");
    let dir = tempfile::tempdir().unwrap();
    let key = secret_key(cp, &ns, "app-tls", "tls.key");
    std::fs::write(dir.path().join("keystore.pem"), format!("{key}{user_cert}")).unwrap();
    std::fs::write(dir.path().join("ca.crt"), secret_key(cp, &ns, "app-tls", "ca.crt")).unwrap();
    let config = format!(
        "security.protocol=SSL\nssl.keystore.type=PEM\nssl.keystore.location={0}/keystore.pem\n\
         ssl.truststore.type=PEM\nssl.truststore.location={0}/ca.crt\n",
        dir.path().display()
    );
    let records = "one\ntwo\nthree\n";
    let (ok, out) =
        console(&node, &ns, PRODUCER, &["--topic", "payments", "--producer-property", "acks=all"], records, &config);
    assert!(ok, "the console producer with the KafkaUser's certificate:\n{out}");
    // The JKS stores of includeJKS, as a Java client that cannot read PEM uses them.
    let secret = get_json(cp, &["get", "secret", "app-tls", "-n", &ns]);
    let decode =
        |k: &str| base64::engine::general_purpose::STANDARD.decode(secret["data"][k].as_str().unwrap()).unwrap();
    std::fs::write(dir.path().join("keystore.jks"), decode("keystore.jks")).unwrap();
    std::fs::write(dir.path().join("truststore.jks"), decode("truststore.jks")).unwrap();
    let password = String::from_utf8(decode("password")).unwrap();
    let jks_config = format!(
        "security.protocol=SSL\nssl.keystore.type=JKS\nssl.keystore.location={0}/keystore.jks\n\
         ssl.keystore.password={password}\nssl.key.password={password}\nssl.truststore.type=JKS\n\
         ssl.truststore.location={0}/truststore.jks\nssl.truststore.password={password}\n",
        dir.path().display()
    );
    let (ok, out) = read_three(&node, &ns, &jks_config);
    assert!(ok, "the console consumer with the JKS stores:\n{out}");
    for r in ["one", "two", "three"] {
        assert!(out.lines().any(|l| l == r), "{r} consumed:\n{out}");
    }
    let (ok, out) = console(
        &node,
        &ns,
        PRODUCER,
        &["--topic", "audit", "--producer-property", "max.block.ms=15000"],
        "x\n",
        &config,
    );
    assert!(
        out.contains("TopicAuthorizationException") || out.contains("Not authorized"),
        "no grant, no write ({ok}):\n{out}"
    );
    let no_cert = config.lines().filter(|l| !l.starts_with("ssl.keystore")).collect::<Vec<_>>().join("\n");
    let (_, out) = console(
        &node,
        &ns,
        PRODUCER,
        &["--topic", "payments", "--producer-property", "max.block.ms=10000"],
        "x\n",
        &no_cert,
    );
    assert!(out.contains("SSL handshake failed") || out.contains("SslAuthenticationException"), "{out}");

    // While a producer writes with acks=all: the certificates' renewal, then a read-only
    // change, each rolling the brokers one at a time; every acknowledged message stays.
    let pods = ["kafka-ssl-0", "kafka-ssl-1", "kafka-ssl-2"];
    let since = Instant::now();
    let mark = EventMark::now(cp, &ns);
    let props = dir.path().join("producer.properties");
    // VerifiableProducer sets retries=0 unless told otherwise; idempotence needs them.
    std::fs::write(&props, format!("{config}enable.idempotence=true\nretries=2147483647\n")).unwrap();
    let producer = koperator_e2e::kafka::spawn_tool(
        "org.apache.kafka.tools.VerifiableProducer",
        &[
            "--topic".into(),
            "payments".into(),
            "--bootstrap-server".into(),
            bootstrap(&ns, CLUSTER, 3).join(","),
            "--throughput".into(),
            "50".into(),
            "--acks".into(),
            "-1".into(),
            "--producer.config".into(),
            props.display().to_string(),
        ],
        Some(&node.hosts_file),
        &dir.path().join("producer.log"),
    )
    .unwrap();
    // Renewal is due two thirds into the 360 s lifetime; each broker then runs its new one.
    // (Long enough that a CA rollover's two rolls finish before a broker's running
    // certificate expires, even when a renewal roll comes just before them.)
    let renewed = |id: usize| {
        mark.since(cp, &ns, "CertificateIssued").iter().any(|e| {
            e["note"].as_str().is_some_and(|n| n.contains(&format!("kafka-ssl-{id}-server-certificate (renewal due)")))
        })
    };
    wait_for("every broker certificate renewed", Duration::from_secs(420), &op, || (0..3).all(renewed));
    let renewal = Instant::now();
    wait_for("every broker running its renewed certificate", Duration::from_secs(300), &op, || {
        running(CLUSTER)
            && (0..3).all(|id| {
                let secret = format!("kafka-ssl-{id}-server-certificate");
                let (cert, trust) = (secret_key(cp, &ns, &secret, "tls.crt"), secret_key(cp, &ns, &secret, "ca.crt"));
                let pod = get_json(cp, &["get", "pod", &format!("kafka-ssl-{id}"), "-n", &ns]);
                pod["metadata"]["annotations"]["koperator.banzaicloud.io/certificate-hash"]
                    == fingerprint(&cert, &trust).as_str()
            })
    });
    eprintln!("certificate renewal rolled 3 brokers in {:.1}s", renewal.elapsed().as_secs_f64());
    let roll = Instant::now();
    let roll_mark = EventMark::now(cp, &ns);
    desired["spec"]["readOnlyConfig"] =
        json!(desired["spec"]["readOnlyConfig"].as_str().unwrap().to_string() + "num.network.threads=4\n");
    apply(cp, &ns, &desired);
    wait_for("the roll started", Duration::from_secs(30), &op, || {
        !roll_mark.since(cp, &ns, "RollingRestart").is_empty()
    });
    wait_for("the SSL cluster rolled and Running", Duration::from_secs(300), &op, || running(CLUSTER));
    eprintln!("SSL roll of 3 brokers for a read-only change: {:.1}s", roll.elapsed().as_secs_f64());
    std::thread::sleep(Duration::from_secs(3));
    let produced = producer.stop(Duration::from_secs(30));
    let report = koperator_e2e::kafka::producer_report(&produced);
    let producer_log = std::fs::read_to_string(dir.path().join("producer.log")).unwrap_or_default();
    assert!(
        !report.acked.is_empty(),
        "VerifiableProducer had nothing acknowledged:\n{}\n--- its log ---\n{}",
        &produced[..produced.len().min(2000)],
        &producer_log[producer_log.len().saturating_sub(4000)..]
    );
    // Two rolls of three brokers (a renewal that falls into the second roll adds restarts).
    assert!(mark.since(cp, &ns, "RollingRestart").len() >= 6, "two rolls of three brokers");
    assert_eq!(node.max_down(&pods, since), 1, "one broker down at a time");
    let (ok, out) = console(
        &node,
        &ns,
        CONSUMER,
        &["--topic", "payments", "--from-beginning", "--timeout-ms", "20000"],
        "",
        &config,
    );
    let consumed: std::collections::BTreeSet<u64> = out.lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert!(!consumed.is_empty(), "consumed ({ok}):\n{}", &out[..out.len().min(3000)]);
    let acked: std::collections::BTreeSet<u64> = report.acked.iter().copied().collect();
    let lost: Vec<u64> = acked.iter().copied().filter(|v| !consumed.contains(v)).collect();
    eprintln!(
        "acks=all through a certificate renewal and a roll ({:.0}s): {} acknowledged, {} consumed, {} lost, {} send errors after retries, longest stall {} ms",
        since.elapsed().as_secs_f64(),
        acked.len(),
        consumed.len(),
        lost.len(),
        report.errors,
        report.longest_stall_ms
    );
    assert!(acked.len() > 1000, "the producer kept writing: {} acknowledged", acked.len());
    assert!(lost.is_empty(), "acknowledged and lost: {:?}", &lost[..lost.len().min(20)]);

    // A CA rollover asked for by annotation: every certificate Secret trusts both CAs, then
    // the certificates move to the new CA, then (once the KafkaUser has moved too) the old CA
    // is trusted no more; three health-gated rolls, never two brokers down.
    let old_ca = secret_key(cp, &ns, "kafka-ssl-ca", "caCert");
    let old_user = (secret_key(cp, &ns, "app-tls", "tls.key"), secret_key(cp, &ns, "app-tls", "tls.crt"));
    let since = Instant::now();
    let rollover_mark = EventMark::now(cp, &ns);
    cp.kubectl(&["annotate", "kafkacluster", CLUSTER, "-n", &ns, "koperator.banzaicloud.io/renew-ca=1"]).unwrap();
    wait_for("a new CA", Duration::from_secs(60), &op, || secret_key(cp, &ns, "kafka-ssl-ca", "caCert") != old_ca);
    let new_ca = secret_key(cp, &ns, "kafka-ssl-ca", "caCert");
    let leaves = ["kafka-ssl-0-server-certificate", "kafka-ssl-1-server-certificate", "kafka-ssl-2-server-certificate"]
        .into_iter()
        .chain(["kafka-ssl-controller", "app-tls"]);
    let moved = |secret: &str| {
        pki::signed_by(&secret_key(cp, &ns, secret, "tls.crt"), &new_ca)
            && pki::split_pem(&secret_key(cp, &ns, secret, "ca.crt")) == vec![new_ca.clone()]
    };
    let mut saw_both = false;
    wait_for("every certificate on the new CA and the old CA no longer trusted", Duration::from_secs(900), &op, || {
        saw_both |= pki::split_pem(&secret_key(cp, &ns, "kafka-ssl-0-server-certificate", "ca.crt")).len() == 2;
        running(CLUSTER) && leaves.clone().all(moved)
    });
    eprintln!("CA rollover (trust both, move, drop the old) in {:.1}s", since.elapsed().as_secs_f64());
    assert!(saw_both, "the brokers trusted both CAs on the way");
    let reasons: Vec<String> = ["CertificateIssued", "CertificateTrustChanged"]
        .iter()
        .flat_map(|r| rollover_mark.since(cp, &ns, r))
        .filter_map(|e| e["note"].as_str().map(String::from))
        .collect();
    for step in ["trusting the new CA beside the old one", "moving to the new CA", "the old CA is no longer trusted"] {
        assert!(reasons.iter().any(|r| r.contains(step)), "no {step:?} in {reasons:#?}");
    }
    assert!(rollover_mark.since(cp, &ns, "RollingRestart").len() >= 9, "three rolls of three brokers");
    assert_eq!(node.max_down(&pods, since), 1, "one broker down at a time");
    // The KafkaUser's new certificate reads what was written before; its old one is refused.
    let new_user =
        format!("{}{}", secret_key(cp, &ns, "app-tls", "tls.key"), secret_key(cp, &ns, "app-tls", "tls.crt"));
    std::fs::write(dir.path().join("keystore.pem"), new_user).unwrap();
    std::fs::write(dir.path().join("ca.crt"), secret_key(cp, &ns, "app-tls", "ca.crt")).unwrap();
    let (ok, out) = read_three(&node, &ns, &config);
    assert!(ok && out.lines().count() >= 3, "the moved KafkaUser reads ({ok}):\n{out}");
    std::fs::write(dir.path().join("keystore.pem"), format!("{}{}", old_user.0, old_user.1)).unwrap();
    let (ok, out) = console(
        &node,
        &ns,
        PRODUCER,
        &["--topic", "payments", "--producer-property", "acks=all", "--producer-property", "max.block.ms=15000"],
        "late\n",
        &config,
    );
    // The broker ends the handshake (bad_certificate); the console producer logs it and exits.
    assert!(!ok || out.contains("SslAuthenticationException"), "the old CA's certificate still got in:\n{out}");

    // A cluster on the user's own CA (create: false): reported while the Secret is missing,
    // Running once it is there. One broker, after the first cluster is gone.
    cp.kubectl(&["delete", "kafkacluster", CLUSTER, "-n", &ns, "--timeout=120s"]).unwrap();
    let mut own = ssl_spec();
    own["metadata"]["name"] = json!("kafka-own");
    own["spec"]["brokers"].as_array_mut().unwrap().truncate(1);
    own["spec"]["readOnlyConfig"] = json!("offsets.topic.replication.factor=1\nmin.insync.replicas=1\n");
    own["spec"]["listenersConfig"]["sslSecrets"] = json!({"tlsSecretName": "team-ca", "create": false});
    apply(cp, &ns, &own);
    wait_for("a missing CA reported", Duration::from_secs(60), &op, || {
        let kc = get("kafka-own");
        condition(&kc, "Degraded").is_some_and(|c| c.1 == "CertificateError")
            && kc["status"]["conditions"].to_string().contains("Secret team-ca does not exist")
    });
    let team_ca = pki::new_ca("team-ca", now(), Duration::from_secs(86400)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("caCert"), &team_ca.cert).unwrap();
    std::fs::write(dir.path().join("caKey"), &team_ca.key).unwrap();
    let started = Instant::now();
    cp.kubectl(&[
        "create",
        "secret",
        "generic",
        "team-ca",
        "-n",
        &ns,
        &format!("--from-file={}", dir.path().join("caCert").display()),
        &format!("--from-file={}", dir.path().join("caKey").display()),
    ])
    .unwrap();
    wait_for("the cluster on the user's CA Running", Duration::from_secs(180), &op, || running("kafka-own"));
    eprintln!("1-broker cluster on the user's CA Running {:.1}s after its Secret", started.elapsed().as_secs_f64());
    let cert = secret_key(cp, &ns, "kafka-own-0-server-certificate", "tls.crt");
    assert!(pki::signed_by(&cert, &team_ca.cert), "issued from the user's CA");
    assert_eq!(secret_key(cp, &ns, "team-ca", "caKey"), team_ca.key, "the user's Secret is left as it was");
    let ca_status = get("kafka-own")["status"]["certificates"]["ca"].clone();
    assert_eq!(ca_status["secretName"], "team-ca");
    assert_eq!(
        Some(rfc3339(&ca_status["notAfter"])),
        pki::validity(&team_ca.cert).map(|v| v.1),
        "the user's CA shows its own expiry: {ca_status}"
    );

    // Certificates of the user's own (serverSSLCertSecret, clientSSLCertSecret): JKS stores
    // made by openssl and keytool, no sslSecrets. Reported while the Secrets are missing, then
    // Running with the operator on the client JKS and the CNs as super users (ACLs enforced).
    cp.kubectl(&["delete", "kafkacluster", "kafka-own", "-n", &ns, "--timeout=120s"]).unwrap();
    let jks_cluster = "kafka-jks";
    let mut jks = ssl_spec();
    jks["metadata"]["name"] = json!(jks_cluster);
    jks["spec"]["readOnlyConfig"] = json!(
        "offsets.topic.replication.factor=3\n\
         authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n"
    );
    jks["spec"]["listenersConfig"].as_object_mut().unwrap().remove("sslSecrets");
    for l in jks["spec"]["listenersConfig"]["internalListeners"].as_array_mut().unwrap() {
        l["serverSSLCertSecret"] = json!({"name": "broker-jks"});
    }
    jks["spec"]["clientSSLCertSecret"] = json!({"name": "admin-jks"});
    apply(cp, &ns, &jks);
    wait_for("missing JKS Secrets reported", Duration::from_secs(60), &op, || {
        let kc = get(jks_cluster);
        condition(&kc, "Degraded").is_some_and(|c| c.1 == "CertificateError")
            && kc["status"]["conditions"].to_string().contains("Secret broker-jks (serverSSLCertSecret")
    });
    assert!(cp.kubectl(&["get", "pod", "kafka-jks-0", "-n", &ns]).is_err(), "no broker Pod before its keystore exists");
    let user_ca = pki::new_ca("team-jks-ca", now(), Duration::from_secs(86400)).unwrap();
    // One certificate for every broker (as users often make them), naming each.
    let broker_leaf = LeafSpec {
        common_name: "kafka-jks-broker".into(),
        dns_names: (0..3).map(|id| format!("kafka-jks-{id}.kafka-jks-headless.{ns}.svc.cluster.local")).collect(),
        server: true,
        client: true,
        validity: Duration::from_secs(86400),
    };
    let broker_cert = pki::issue(&user_ca, &broker_leaf, now()).unwrap();
    let admin_cert = pki::issue(&user_ca, &client_leaf("kafka-jks-admin"), now()).unwrap();
    let started = Instant::now();
    for (secret, leaf) in [("broker-jks", &broker_cert), ("admin-jks", &admin_cert)] {
        let dir = keytool_stores(leaf, &user_ca.cert, "jks-pass-1");
        let file = |k: &str| format!("--from-file={k}={}", dir.path().join(k).display());
        cp.kubectl(&[
            "create",
            "secret",
            "generic",
            secret,
            "-n",
            &ns,
            &file("keystore.jks"),
            &file("truststore.jks"),
            &file("password"),
        ])
        .unwrap();
    }
    wait_for("the cluster on JKS stores of the user's own Running", Duration::from_secs(240), &op, || {
        running(jks_cluster)
    });
    eprintln!(
        "3-broker cluster on the user's JKS stores Running {:.1}s after its Secrets",
        started.elapsed().as_secs_f64()
    );
    let props = get_json(cp, &["get", "configmap", "kafka-jks-config-0", "-n", &ns])["data"]["broker-config"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!props.contains("jks-pass-1"), "no password in the ConfigMap:\n{props}");
    assert!(props.contains("ssl.keystore.password=${dir:"), "{props}");
    let super_users = props.lines().find(|l| l.starts_with("super.users=")).unwrap_or_default();
    assert!(
        super_users.contains("User:CN=kafka-jks-broker") && super_users.contains("User:CN=kafka-jks-admin"),
        "the JKS certificates' principals are super users: {super_users}"
    );
    // The operator (as User:CN=kafka-jks-admin, through ACLs) creates a topic on it.
    let topic = json!({
        "apiVersion": "kafka.banzaicloud.io/v1alpha1", "kind": "KafkaTopic",
        "metadata": {"name": "jks-events"},
        "spec": {"clusterRef": {"name": jks_cluster}, "name": "jks-events", "partitions": 2, "replicationFactor": 3}
    });
    apply(cp, &ns, &topic);
    let admin_tls = client_config(&user_ca.cert, Some((&admin_cert.cert, &admin_cert.key))).unwrap();
    let jks_admin = Admin::new(bootstrap(&ns, jks_cluster, 3), opts(&node, Some(admin_tls)));
    wait_for("the KafkaTopic created over the user's JKS listener", Duration::from_secs(60), &op, || {
        rt().block_on(jks_admin.metadata(Some(&["jks-events"])))
            .ok()
            .and_then(|m| m.topic("jks-events").cloned())
            .is_some()
    });
    // A new keystore (and password) in the listener's Secret rolls the brokers onto it.
    let renewed = pki::issue(&user_ca, &broker_leaf, now()).unwrap();
    let dir = keytool_stores(&renewed, &user_ca.cert, "jks-pass-2");
    let b64 = |k: &str| base64::engine::general_purpose::STANDARD.encode(std::fs::read(dir.path().join(k)).unwrap());
    let patch = json!({"data": {"keystore.jks": b64("keystore.jks"), "truststore.jks": b64("truststore.jks"), "password": b64("password")}});
    cp.kubectl(&["patch", "secret", "broker-jks", "-n", &ns, "--type=merge", "-p", &patch.to_string()]).unwrap();
    let renewed_der = rustls::pki_types::CertificateDer::from_pem_slice(renewed.cert.as_bytes()).unwrap();
    let started = Instant::now();
    // Noticed within a minute (the Secret is read again every minute), then one broker at a time.
    wait_for("every broker serving the new keystore", Duration::from_secs(300), &op, || {
        bootstrap(&ns, jks_cluster, 3)
            .iter()
            .all(|b| served_certificate(&node, b).is_some_and(|c| c == renewed_der.as_ref()))
            && running(jks_cluster)
    });
    eprintln!("roll onto the new keystore {:.1}s", started.elapsed().as_secs_f64());
    cp.kubectl(&["delete", "kafkacluster", jks_cluster, "-n", &ns, "--timeout=120s"]).unwrap();

    // A SASL_SSL listener (SCRAM-SHA-512) as the admin listener: the operator creates its
    // credential, the brokers bootstrap it when their storage is formatted, and the operator
    // (health-gated start, topics, users) and Kafka's clients log in there with SCRAM.
    let sasl_cluster = "kafka-sasl";
    let mut sasl = ssl_spec();
    sasl["metadata"]["name"] = json!(sasl_cluster);
    sasl["spec"]["brokers"].as_array_mut().unwrap().truncate(1);
    sasl["spec"]["readOnlyConfig"] = json!(
        "offsets.topic.replication.factor=1\nauto.create.topics.enable=false\n\
         authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n"
    );
    sasl["spec"]["listenersConfig"]["sslSecrets"] = json!({"tlsSecretName": "kafka-sasl-ca", "create": true});
    sasl["spec"]["listenersConfig"]["internalListeners"].as_array_mut().unwrap().push(json!({
        "type": "sasl_ssl", "name": "sasl", "containerPort": 29094, "usedForInnerBrokerCommunication": false,
        "usedForKafkaAdminCommunication": true, "sslClientAuth": "none"
    }));
    let started = Instant::now();
    apply(cp, &ns, &sasl);
    wait_for("the cluster with a SASL_SSL admin listener Running", Duration::from_secs(180), &op, || {
        running(sasl_cluster)
    });
    eprintln!("1-broker cluster with a SASL_SSL admin listener Running {:.1}s", started.elapsed().as_secs_f64());
    let kc = get(sasl_cluster);
    assert_eq!(condition(&kc, "Degraded").map(|c| c.0).as_deref(), Some("False"), "the operator reaches Kafka: {kc}");
    let admin_secret = get_json(cp, &["get", "secret", "kafka-sasl-admin-scram", "-n", &ns]);
    assert_eq!(admin_secret["metadata"]["ownerReferences"][0]["kind"], "KafkaCluster");
    let password = secret_key(cp, &ns, "kafka-sasl-admin-scram", "password");
    let props = get_json(cp, &["get", "configmap", "kafka-sasl-config-0", "-n", &ns])["data"]["broker-config"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!props.contains(&password), "no admin password in the ConfigMap");
    assert!(props.contains("listener.name.sasl.sasl.enabled.mechanisms=SCRAM-SHA-512"), "{props}");
    let sasl_ca = secret_key(cp, &ns, "kafka-sasl-ca", "caCert");
    let sasl_nodes = vec![format!("{sasl_cluster}-0.{sasl_cluster}-headless.{ns}.svc.cluster.local:29094")];
    let scram_opts = |password: &str| ConnectOptions {
        sasl: Some(koperator_shared::kafka::SaslScram::new("koperator-admin", password)),
        ..opts(&node, Some(client_config(&sasl_ca, None).unwrap()))
    };
    let topic = json!({
        "apiVersion": "kafka.banzaicloud.io/v1alpha1", "kind": "KafkaTopic",
        "metadata": {"name": "sasl-events"},
        "spec": {"clusterRef": {"name": sasl_cluster}, "name": "sasl-events", "partitions": 3, "replicationFactor": 1}
    });
    apply(cp, &ns, &topic);
    let sasl_admin = Admin::new(sasl_nodes.clone(), scram_opts(&password));
    wait_for("the KafkaTopic created through the SCRAM admin listener", Duration::from_secs(60), &op, || {
        rt().block_on(sasl_admin.metadata(Some(&["sasl-events"])))
            .ok()
            .and_then(|m| m.topic("sasl-events").cloned())
            .is_some()
    });
    let wrong = rt().block_on(Admin::new(sasl_nodes.clone(), scram_opts("not-the-password")).metadata(None));
    assert!(
        matches!(wrong, Err(koperator_shared::kafka::Error::Auth { .. })),
        "a wrong password is refused: {wrong:?}"
    );
    // A SCRAM KafkaUser writes the topic its grant allows, through the same listener.
    let user = json!({
        "apiVersion": "kafka.banzaicloud.io/v1alpha1", "kind": "KafkaUser",
        "metadata": {"name": "sasl-app", "annotations": {"koperator.banzaicloud.io/credentials": "scram-sha-512"}},
        "spec": {"clusterRef": {"name": sasl_cluster}, "secretName": "sasl-app-credentials",
                 "topicGrants": [{"topicName": "sasl-events", "accessType": "write"}]}
    });
    apply(cp, &ns, &user);
    wait_for("the SCRAM KafkaUser's Secret", Duration::from_secs(60), &op, || {
        // Not found until the operator has made it.
        let secret = cp.kubectl(&["get", "secret", "sasl-app-credentials", "-n", &ns, "-o", "json"]).ok();
        let secret: Value = secret.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default();
        secret["data"]["sasl.jaas.config"].is_string()
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &sasl_ca).unwrap();
    let client = format!(
        "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config={}\n\
         ssl.truststore.type=PEM\nssl.truststore.location={}\n",
        secret_key(cp, &ns, "sasl-app-credentials", "sasl.jaas.config"),
        dir.path().join("ca.pem").display()
    );
    std::fs::write(dir.path().join("client.properties"), &client).unwrap();
    let produce = |topic: &str| {
        let args: Vec<String> = [
            "--bootstrap-server",
            &sasl_nodes[0],
            "--topic",
            topic,
            "--producer-property",
            "acks=all",
            "--producer-property",
            "max.block.ms=15000",
            "--producer.config",
            &dir.path().join("client.properties").display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        koperator_e2e::kafka::run_tool(PRODUCER, &args, "hello\n", Some(&node.hosts_file), Duration::from_secs(90))
            .unwrap()
    };
    let mut wrote = false;
    for _ in 0..10 {
        let (status, out) = produce("sasl-events");
        // ACLs reach every broker a moment after the KafkaUser's Secret.
        if status.success() && !out.contains("Exception") {
            wrote = true;
            break;
        }
        std::thread::sleep(Duration::from_secs(3));
    }
    assert!(wrote, "the SCRAM user writes the topic its grant allows");
    let (status, out) = produce("payments-elsewhere");
    assert!(!status.success() || out.contains("TopicAuthorizationException"), "no grant, no write:\n{out}");
    cp.kubectl(&["delete", "kafkacluster", sasl_cluster, "-n", &ns, "--timeout=120s"]).unwrap();
    drop(op);
    drop(node);
}

/// `keystore.jks` (the leaf, its key and the CA), `truststore.jks` (the CA) and `password`,
/// made the way users make them: openssl for PKCS#12, keytool for JKS.
fn keytool_stores(leaf: &pki::KeyAndCert, ca: &str, password: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = |f: &str| dir.path().join(f).display().to_string();
    std::fs::write(path("leaf.pem"), &leaf.cert).unwrap();
    std::fs::write(path("leaf.key"), &leaf.key).unwrap();
    std::fs::write(path("ca.pem"), ca).unwrap();
    std::fs::write(path("password"), password).unwrap();
    let pass = format!("pass:{password}");
    let run = |program: &str, args: &[&str]| {
        let out = std::process::Command::new(program).args(args).output().unwrap();
        assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(
        "openssl",
        &[
            "pkcs12",
            "-export",
            "-in",
            &path("leaf.pem"),
            "-inkey",
            &path("leaf.key"),
            "-certfile",
            &path("ca.pem"),
            "-name",
            "broker",
            "-passout",
            &pass,
            "-out",
            &path("store.p12"),
        ],
    );
    run(
        "keytool",
        &[
            "-importkeystore",
            "-noprompt",
            "-srckeystore",
            &path("store.p12"),
            "-srcstoretype",
            "PKCS12",
            "-srcstorepass",
            password,
            "-destkeystore",
            &path("keystore.jks"),
            "-deststoretype",
            "JKS",
            "-deststorepass",
            password,
            "-destkeypass",
            password,
        ],
    );
    run(
        "keytool",
        &[
            "-importcert",
            "-noprompt",
            "-storetype",
            "JKS",
            "-keystore",
            &path("truststore.jks"),
            "-storepass",
            password,
            "-alias",
            "ca",
            "-file",
            &path("ca.pem"),
        ],
    );
    dir
}

/// The certificate (DER) `addr` presents, trusting anything (only to look at it).
fn served_certificate(node: &Node, addr: &str) -> Option<Vec<u8>> {
    let out = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &resolve(node, addr), "-showcerts"])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = rustls::pki_types::CertificateDer::pem_slice_iter(text.as_bytes()).next()?.ok()?;
    Some(first.as_ref().to_vec())
}

/// `host:port` with the host looked up in the test node's hosts file.
fn resolve(node: &Node, addr: &str) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let hosts = std::fs::read_to_string(&node.hosts_file).unwrap_or_default();
    let ip = hosts
        .lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            let ip = f.next()?;
            f.any(|n| n == host).then(|| ip.to_string())
        })
        .unwrap_or_else(|| host.to_string());
    format!("{ip}:{port}")
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// An RFC 3339 time of a status, in unix seconds.
fn rfc3339(v: &Value) -> u64 {
    let t: Option<k8s_openapi::jiff::Timestamp> = v.as_str().and_then(|s| s.parse().ok());
    t.and_then(|t| u64::try_from(t.as_second()).ok()).unwrap_or_else(|| panic!("not an RFC 3339 time: {v}"))
}

fn client_leaf(cn: &str) -> LeafSpec {
    LeafSpec {
        common_name: cn.into(),
        dns_names: Vec::new(),
        server: false,
        client: true,
        validity: Duration::from_secs(3600),
    }
}

const PRODUCER: &str = "org.apache.kafka.tools.ConsoleProducer";
const CONSUMER: &str = "org.apache.kafka.tools.consumer.ConsoleConsumer";

/// The first three records of `payments`, read with `config`.
fn read_three(node: &Node, ns: &str, config: &str) -> (bool, String) {
    let args = ["--topic", "payments", "--from-beginning", "--max-messages", "3", "--timeout-ms", "30000"];
    console(node, ns, CONSUMER, &args, "", config)
}

/// Runs a console producer or consumer against broker 0's SSL listener with `config`.
fn console(node: &Node, ns: &str, class: &str, extra: &[&str], input: &str, config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let props = dir.path().join("client.properties");
    std::fs::write(&props, config).unwrap();
    let mut args: Vec<String> = vec!["--bootstrap-server".into(), bootstrap(ns, CLUSTER, 1)[0].clone()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(if class.contains("Producer") { "--producer.config" } else { "--consumer.config" }.into());
    args.push(props.display().to_string());
    let (status, out) =
        koperator_e2e::kafka::run_tool(class, &args, input, Some(&node.hosts_file), Duration::from_secs(90)).unwrap();
    (status.success(), out)
}

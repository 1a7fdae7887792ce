//! Secure clusters on real Kafka (issue 15, the parts built so far): a 3-broker KRaft cluster
//! whose only listeners are SSL with `sslClientAuth: required`, its CA created by the operator
//! (`sslSecrets.create: true`), every broker with a certificate of its own and the operator
//! with its client certificate. Through `kubectl` and Kafka's own clients:
//!
//! - the cluster comes up (brokers talk mTLS to each other and to the KRaft controllers) and
//!   the operator reaches it over TLS: a KafkaTopic is created, a dynamic config is applied,
//!   a read-only change rolls the brokers one at a time through the health gate;
//! - Kafka's console producer and consumer with a PEM keystore signed by the cluster CA write
//!   and read a topic; a client without a certificate and one whose certificate another CA
//!   signed are refused at the handshake;
//! - a cluster with `create: false` runs on a CA the user put in the Secret, and reports a
//!   missing one.
//!
//! One namespace, one test node and one operator for the lot (Kafka JVMs cost minutes here).

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use koperator_e2e::node::Node;
use koperator_e2e::shared;
use koperator_e2e::tools::repo_root;
use koperator_shared::kafka::{Admin, ConfigResource, ConnectOptions, Connection, Resolver, client_config};
use koperator_shared::pki::{self, LeafSpec};
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
    v["spec"]["readOnlyConfig"] = json!("auto.create.topics.enable=false\noffsets.topic.replication.factor=3\n");
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
    let op = start_operator(cp, &ns, "kafka-tls", "kafka-tls", std::slice::from_ref(&hosts));
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

    // Kafka's console clients with a PEM keystore from the cluster CA.
    let dir = tempfile::tempdir().unwrap();
    let (ca_cert, ca_key) = (ca.clone(), secret_key(cp, &ns, "kafka-ssl-ca", "caKey"));
    let user = pki::issue(&pki::KeyAndCert { cert: ca_cert, key: ca_key }, &client_leaf("app"), now()).unwrap();
    std::fs::write(dir.path().join("keystore.pem"), format!("{}{}", user.key, user.cert)).unwrap();
    std::fs::write(dir.path().join("ca.crt"), &ca).unwrap();
    let config = format!(
        "security.protocol=SSL\nssl.keystore.type=PEM\nssl.keystore.location={0}/keystore.pem\n\
         ssl.truststore.type=PEM\nssl.truststore.location={0}/ca.crt\n",
        dir.path().display()
    );
    let records = "one\ntwo\nthree\n";
    let (ok, out) =
        console(&node, &ns, PRODUCER, &["--topic", "payments", "--producer-property", "acks=all"], records, &config);
    assert!(ok, "the console producer over mTLS:\n{out}");
    let (ok, out) = console(
        &node,
        &ns,
        CONSUMER,
        &["--topic", "payments", "--from-beginning", "--max-messages", "3", "--timeout-ms", "30000"],
        "",
        &config,
    );
    assert!(ok, "the console consumer over mTLS:\n{out}");
    for r in ["one", "two", "three"] {
        assert!(out.lines().any(|l| l == r), "{r} consumed:\n{out}");
    }
    let no_cert = config.lines().filter(|l| !l.starts_with("ssl.keystore")).collect::<Vec<_>>().join("\n");
    let (ok, out) = console(
        &node,
        &ns,
        PRODUCER,
        &["--topic", "payments", "--producer-property", "max.block.ms=10000"],
        "x\n",
        &no_cert,
    );
    assert!(!ok || out.contains("SSL handshake failed") || out.contains("SslAuthenticationException"), "{out}");

    // A read-only change rolls the brokers one at a time, gated by Kafka's health over TLS.
    let since = Instant::now();
    let mark = EventMark::now(cp, &ns);
    desired["spec"]["readOnlyConfig"] =
        json!(desired["spec"]["readOnlyConfig"].as_str().unwrap().to_string() + "num.network.threads=4\n");
    apply(cp, &ns, &desired);
    wait_for("the roll started", Duration::from_secs(30), &op, || !mark.since(cp, &ns, "RollingRestart").is_empty());
    wait_for("the SSL cluster rolled and Running", Duration::from_secs(300), &op, || running(CLUSTER));
    let pods = ["kafka-ssl-0", "kafka-ssl-1", "kafka-ssl-2"];
    assert_eq!(mark.since(cp, &ns, "RollingRestart").len(), 3);
    assert_eq!(node.max_down(&pods, since), 1, "one broker down at a time");
    eprintln!("SSL roll of 3 brokers: {:.1}s", since.elapsed().as_secs_f64());

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
    drop(op);
    drop(node);
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
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

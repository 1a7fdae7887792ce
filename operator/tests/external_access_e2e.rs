//! External access on real Kafka, through `kubectl` (issue 19): one 3-broker KRaft cluster with
//! three external listeners, each reached by Kafka's own console clients from outside:
//!
//! - `envoy` (LoadBalancer behind Envoy, no `hostnameOverride`): the Envoy Deployment's Pod
//!   (made by kube-controller-manager) runs as the real Envoy from its ConfigMap; **the test
//!   node plays the cloud**: it gives the Envoy Service an address of its own in
//!   `status.loadBalancer.ingress` and forwards its ports to the Envoy Pod. The brokers then
//!   advertise that address (rolling onto it through the health gate when they started
//!   before it), the console producer given only the any-cast address writes through Envoy,
//!   and the metadata Envoy passes back names the per-broker Envoy ports, not Pod addresses;
//! - `nodeport` (NodePort, `externalStartingPort: -1`): Kubernetes picks the node ports, the
//!   test node registers a Node object with an `InternalIP` and forwards its node ports (as
//!   kube-proxy does); the brokers advertise `<InternalIP>:<nodePort>` read from those objects,
//!   and the console consumer reads the records back through them;
//! - `secure` (SSL behind Envoy, `hostnameOverride: kafka.external.test`): the console
//!   producer verifies the broker certificate (signed by the cluster CA, naming that host)
//!   through Envoy's TCP proxy;
//! - `status.listenerStatuses` shows the addresses the clients used.
//!
//! One namespace, one node, one operator and one cluster for the lot (Kafka JVMs cost minutes).

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use koperator_e2e::node::{Node, NodeOptions};
use koperator_e2e::shared;
use koperator_shared::kafka::{Admin, ConnectOptions};
use serde_json::{Value, json};

const CLUSTER: &str = "kafka-ext";
const PRODUCER: &str = "org.apache.kafka.tools.ConsoleProducer";
const CONSUMER: &str = "org.apache.kafka.tools.consumer.ConsoleConsumer";
const SECURE_HOST: &str = "kafka.external.test";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn spec() -> Value {
    json!({
        "apiVersion": "kafka.banzaicloud.io/v1beta1",
        "kind": "KafkaCluster",
        "metadata": {"name": CLUSTER},
        "spec": {
            "kRaft": true,
            "headlessServiceEnabled": false,
            "oneBrokerPerNode": false,
            "brokerConfigGroups": {"default": {
                "processRoles": ["broker", "controller"],
                "kafkaHeapOpts": "-Xmx384m -Xms384m",
                "storageConfigs": [{"mountPath": "/kafka-logs", "pvcSpec": {
                    "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
            }},
            "brokers": [{"id": 0, "brokerConfigGroup": "default"}, {"id": 1, "brokerConfigGroup": "default"},
                        {"id": 2, "brokerConfigGroup": "default"}],
            "readOnlyConfig": "auto.create.topics.enable=false\noffsets.topic.replication.factor=3\n",
            "listenersConfig": {
                "internalListeners": [
                    {"type": "plaintext", "name": "internal", "containerPort": 29092,
                     "usedForInnerBrokerCommunication": true},
                    {"type": "plaintext", "name": "controller", "containerPort": 29093,
                     "usedForControllerCommunication": true}
                ],
                "externalListeners": [
                    {"type": "plaintext", "name": "envoy", "containerPort": 9094, "externalStartingPort": 19090,
                     "accessMethod": "LoadBalancer"},
                    {"type": "plaintext", "name": "nodeport", "containerPort": 9095, "externalStartingPort": -1,
                     "accessMethod": "NodePort"},
                    {"type": "ssl", "name": "secure", "containerPort": 9096, "externalStartingPort": 19190,
                     "accessMethod": "LoadBalancer", "sslClientAuth": "none", "hostnameOverride": SECURE_HOST,
                     "anyCastPort": 29192, "ingressControllerTargetPort": 29192}
                ],
                "sslSecrets": {"tlsSecretName": "kafka-ext-ca", "create": true}
            },
            "envoyConfig": {"healthCheckPort": 8080, "adminPort": 8081},
            "cruiseControlConfig": {}
        }
    })
}

fn apply(cp: &koperator_e2e::ControlPlane, ns: &str, v: &Value) {
    cp.kubectl_stdin(&["apply", "-n", ns, "-f", "-"], Some(&v.to_string())).unwrap();
}

/// `status.listenerStatuses.externalListeners[listener]` as (name, address).
fn external_statuses(kc: &Value, listener: &str) -> Vec<(String, String)> {
    kc["status"]["listenerStatuses"]["externalListeners"][listener]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|s| {
                    (s["name"].as_str().unwrap_or_default().into(), s["address"].as_str().unwrap_or_default().into())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Runs a console client against `bootstrap` with `config`, names resolved through `hosts`.
fn console(
    hosts: &std::path::Path,
    class: &str,
    bootstrap: &str,
    extra: &[&str],
    input: &str,
    config: &str,
) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let props = dir.path().join("client.properties");
    std::fs::write(&props, config).unwrap();
    let mut args: Vec<String> = vec!["--bootstrap-server".into(), bootstrap.into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(if class.contains("Producer") { "--producer.config" } else { "--consumer.config" }.into());
    args.push(props.display().to_string());
    let (status, out) =
        koperator_e2e::kafka::run_tool(class, &args, input, Some(hosts), Duration::from_secs(90)).unwrap();
    (status.success(), out)
}

/// The address the (test node's) cloud gave the load balancer of Service `name`.
fn load_balancer(cp: &koperator_e2e::ControlPlane, ns: &str, name: &str) -> Option<String> {
    let ip = "jsonpath={.status.loadBalancer.ingress[0].ip}";
    cp.kubectl(&["get", "service", name, "-n", ns, "-o", ip])
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[test]
fn outside_clients_reach_the_brokers_through_envoy_and_node_ports() {
    let cp = shared();
    let ns = cp.namespace("kafka-ext").unwrap();
    let ns = ns.name.clone();
    let options = NodeOptions { load_balancer: true, ..NodeOptions::node_object(format!("node-{ns}")) };
    let node = Node::start_with(&cp.kubeconfig, &ns, options).unwrap();
    let hosts = format!("--kafka-hosts-file={}", node.hosts_file.display());
    let op = start_operator(cp, &ns, "kafka-ext", "kafka-ext", &[hosts]);
    let get = || get_json(cp, &["get", "kafkacluster", CLUSTER, "-n", &ns]);

    let started = Instant::now();
    apply(cp, &ns, &spec());
    let mut lb = std::collections::BTreeMap::new();
    wait_for("both Envoy load balancers with an address", Duration::from_secs(180), &op, || {
        for listener in ["envoy", "secure"] {
            if let Some(ip) = load_balancer(cp, &ns, &format!("envoy-loadbalancer-{listener}-{CLUSTER}")) {
                lb.insert(listener, ip);
            }
        }
        lb.len() == 2
    });
    let (envoy_ip, secure_ip) = (lb["envoy"].clone(), lb["secure"].clone());
    eprintln!("Envoy load balancers {:.1}s after kubectl apply: {lb:?}", started.elapsed().as_secs_f64());

    // The brokers come up (or roll) onto the addresses Kubernetes decided.
    wait_for("the cluster Running with every external address", Duration::from_secs(420), &op, || {
        let kc = get();
        settled(&kc)
            && condition(&kc, "Ready").is_some_and(|c| c.0 == "True")
            && external_statuses(&kc, "envoy").len() == 4
            && external_statuses(&kc, "nodeport").len() == 3
            && external_statuses(&kc, "secure").len() == 4
    });
    eprintln!("cluster Running on its external addresses {:.1}s after kubectl apply", started.elapsed().as_secs_f64());
    let kc = get();
    // From here on nothing restarts: the addresses Kubernetes decided stay put.
    let pods = pod_uids(cp, &ns);
    let envoy = external_statuses(&kc, "envoy");
    assert_eq!(envoy[0], ("any-broker".into(), format!("{envoy_ip}:29092")), "{envoy:?}");
    for id in 0..3 {
        assert_eq!(envoy[1 + id], (format!("broker-{id}"), format!("{envoy_ip}:{}", 19090 + id)), "{envoy:?}");
    }
    let secure = external_statuses(&kc, "secure");
    assert_eq!(secure[0], ("any-broker".into(), format!("{SECURE_HOST}:29192")), "{secure:?}");
    let node_ports = external_statuses(&kc, "nodeport");
    let node_ip = node.internal_ip().expect("the Node's InternalIP").to_string();
    for (id, (name, address)) in node_ports.iter().enumerate() {
        assert_eq!(name, &format!("broker-{id}"));
        let svc = get_json(cp, &["get", "service", &format!("{CLUSTER}-{id}-nodeport"), "-n", &ns]);
        let port = &svc["spec"]["ports"][0];
        assert_eq!(port["name"], format!("broker-{id}"), "{svc}");
        assert_eq!(address, &format!("{node_ip}:{}", port["nodePort"]), "the node port Kubernetes picked: {svc}");
    }
    let internal = &kc["status"]["listenerStatuses"]["internalListeners"]["internal"];
    assert_eq!(internal[0]["name"], "any-broker", "{internal}");
    assert_eq!(internal[0]["address"], format!("{CLUSTER}-all-broker.{ns}.svc.cluster.local:29092"), "{internal}");

    let topic = json!({
        "apiVersion": "kafka.banzaicloud.io/v1alpha1", "kind": "KafkaTopic",
        "metadata": {"name": "orders"},
        "spec": {"clusterRef": {"name": CLUSTER}, "name": "orders", "partitions": 3, "replicationFactor": 3}
    });
    apply(cp, &ns, &topic);
    wait_for("the KafkaTopic Ready", Duration::from_secs(60), &op, || {
        condition(&get_json(cp, &["get", "kafkatopic", "orders", "-n", &ns]), "Ready").is_some_and(|c| c.0 == "True")
    });

    // Metadata through Envoy names the per-broker Envoy ports, not Pod addresses.
    let any_cast = format!("{envoy_ip}:29092");
    let admin = Admin::new(vec![any_cast.clone()], ConnectOptions::default());
    let meta = rt().block_on(admin.metadata(Some(&["orders"]))).unwrap();
    let mut advertised: Vec<String> = meta.brokers.values().map(|b| format!("{}:{}", b.host, b.port)).collect();
    advertised.sort();
    assert_eq!(advertised, (0..3).map(|id| format!("{envoy_ip}:{}", 19090 + id)).collect::<Vec<_>>());

    // Produce through Envoy given only the any-cast address; consume through the node ports.
    let outside = tempfile::tempdir().unwrap();
    let no_names = outside.path().join("hosts");
    std::fs::write(&no_names, "").unwrap();
    let records = "one\ntwo\nthree\n";
    let (ok, out) =
        console(&no_names, PRODUCER, &any_cast, &["--topic", "orders", "--producer-property", "acks=all"], records, "");
    assert!(ok, "the console producer through Envoy:\n{out}");
    let read = |bootstrap: &str, hosts: &std::path::Path, config: &str, n: usize| {
        console(
            hosts,
            CONSUMER,
            bootstrap,
            &["--topic", "orders", "--from-beginning", "--max-messages", &n.to_string(), "--timeout-ms", "60000"],
            "",
            config,
        )
    };
    let (ok, out) = read(&node_ports[0].1, &no_names, "", 3);
    assert!(ok, "the console consumer through the node ports:\n{out}");
    for r in ["one", "two", "three"] {
        assert!(out.lines().any(|l| l == r), "{r} consumed through the node ports:\n{out}");
    }

    // SSL through Envoy: the client verifies the broker certificate (cluster CA, the listener's
    // host name) through the proxy.
    let ca = get_json(cp, &["get", "secret", "kafka-ext-ca", "-n", &ns])["data"]["caCert"]
        .as_str()
        .map(|b| String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap()).unwrap())
        .expect("the cluster CA");
    std::fs::write(outside.path().join("ca.crt"), ca).unwrap();
    let secure_names = outside.path().join("secure-hosts");
    std::fs::write(&secure_names, format!("{secure_ip} {SECURE_HOST}\n")).unwrap();
    let tls = format!(
        "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={}/ca.crt\n",
        outside.path().display()
    );
    let secure_bootstrap = format!("{SECURE_HOST}:29192");
    let (ok, out) = console(&secure_names, PRODUCER, &secure_bootstrap, &["--topic", "orders"], "four\n", &tls);
    assert!(ok, "the console producer over SSL through Envoy:\n{out}");
    let (ok, out) = read(&secure_bootstrap, &secure_names, &tls, 4);
    assert!(ok && out.lines().any(|l| l == "four"), "read back over SSL through Envoy:\n{out}");
    // A client that does not trust the cluster CA is refused at the handshake.
    let untrusted = "security.protocol=SSL\n";
    let (_, out) = console(
        &secure_names,
        PRODUCER,
        &secure_bootstrap,
        &["--topic", "orders", "--producer-property", "max.block.ms=10000"],
        "x\n",
        untrusted,
    );
    assert!(out.contains("SSL handshake failed") || out.contains("SslAuthenticationException"), "{out}");
    assert_eq!(pod_uids(cp, &ns), pods, "no Pod was replaced while the clients ran");
    assert!(settled(&get()), "still settled");
    drop(op);
}

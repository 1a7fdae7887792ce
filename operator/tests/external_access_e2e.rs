//! External access on real Kafka, through `kubectl` (issue 19), in two independent tests (own
//! namespace, node and operator each).
//!
//! `outside_clients_reach_the_brokers_through_envoy_and_node_ports`: one 3-broker KRaft cluster
//! with three external listeners, each reached by Kafka's own console clients from outside:
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
//!
//! `outside_clients_reach_the_brokers_through_contour_by_sni_passthrough`: a one-node KRaft
//! cluster (combined broker and controller) with `ingressController: contour` and an `ssl`
//! ClusterIP listener, TLS passed through (no `tlsSecretName`). Contour v1.33.8 (`make
//! e2e-deps` builds it from its Go module; its CRDs from the same module) runs as `contour serve`
//! against the test API server, watching the test's namespace only, and the PyPI Envoy runs from
//! `contour bootstrap`, every listener on a loopback address and ports of its own (the admin
//! listener Contour adds moved off 9001). The operator's HTTPProxies become `valid`; Kafka's
//! console producer and consumer, given only `kafka.contour.test:<Envoy's HTTPS port>` and
//! verifying the broker certificate against the cluster CA, write and read records through
//! Envoy, routed by TLS server name to the any-cast and the broker's Service; a client that does
//! not trust the CA is refused.
//!
//! The one substitution: **the test publishes the Services' endpoints.** Pods of the test node
//! have loopback addresses, which the API server refuses in EndpointSlices (and this node does
//! not bind Pods to a Node, so kube-controller-manager writes none). So the test plays the
//! EndpointSlice controller and kube-proxy for the listener's ClusterIP Services: per Service
//! port a TCP forwarder on this host's own (non-loopback) address, to the Ready Pods' target
//! port, and an EndpointSlice (`managed-by: e2e.koperator.test`) naming that address and port.
//! Contour reads those slices as it would any others.

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

// ---- Contour: `contour serve` and the Envoy it bootstraps, TLS passed through by SNI ----

const CONTOUR_CLUSTER: &str = "kafka-contour";
const CONTOUR_LISTENER: &str = "contour";
const CONTOUR_HOST: &str = "kafka.contour.test";
const CONTOUR_CA: &str = "kafka-contour-ca";
/// `endpointslice.kubernetes.io/managed-by` of the EndpointSlices the test writes.
const SLICE_MANAGER: &str = "e2e.koperator.test";

/// One combined broker+controller whose `ssl` listener `contour` is served by Contour on
/// `https_port` (the any-cast port, and with `externalStartingPort: -1` every broker's).
fn contour_spec(https_port: u16) -> Value {
    json!({
        "apiVersion": "kafka.banzaicloud.io/v1beta1",
        "kind": "KafkaCluster",
        "metadata": {"name": CONTOUR_CLUSTER},
        "spec": {
            "kRaft": true,
            "headlessServiceEnabled": false,
            "oneBrokerPerNode": false,
            "ingressController": "contour",
            "contourIngressConfig": {"brokerFQDNTemplate": "broker-%id.contour.test"},
            "brokerConfigGroups": {"default": {
                "processRoles": ["broker", "controller"],
                "kafkaHeapOpts": "-Xmx384m -Xms384m",
                "storageConfigs": [{"mountPath": "/kafka-logs", "pvcSpec": {
                    "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
            }},
            "brokers": [{"id": 0, "brokerConfigGroup": "default"}],
            "readOnlyConfig": "auto.create.topics.enable=false\noffsets.topic.replication.factor=1\n\
                               transaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\n\
                               min.insync.replicas=1\n",
            "listenersConfig": {
                "internalListeners": [
                    {"type": "plaintext", "name": "internal", "containerPort": 29092,
                     "usedForInnerBrokerCommunication": true},
                    {"type": "plaintext", "name": "controller", "containerPort": 29093,
                     "usedForControllerCommunication": true}
                ],
                "externalListeners": [
                    {"type": "ssl", "name": CONTOUR_LISTENER, "containerPort": 9096, "externalStartingPort": -1,
                     "accessMethod": "ClusterIP", "sslClientAuth": "none", "hostnameOverride": CONTOUR_HOST,
                     "anyCastPort": https_port}
                ],
                "sslSecrets": {"tlsSecretName": CONTOUR_CA, "create": true}
            },
            "cruiseControlConfig": {}
        }
    })
}

/// This host's address on its default route: not loopback, so the API server takes it in an
/// EndpointSlice, and local, so Envoy reaches it.
fn host_address() -> std::net::IpAddr {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    s.connect("10.255.255.254:9").expect("a default route (its source address stands in for Pod addresses)");
    let ip = s.local_addr().unwrap().ip();
    assert!(!ip.is_loopback() && !ip.is_unspecified(), "no usable host address: {ip}");
    ip
}

/// A port free on `ip` (closed before returning).
fn free_port_on(ip: std::net::IpAddr) -> u16 {
    std::net::TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port()
}

/// The status code and body of `GET path` on `addr`, `None` when it does not answer.
fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    let status = response.get(9..12)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// The status code of `GET path` on `addr`.
fn http_status(addr: std::net::SocketAddr, path: &str) -> Option<u16> {
    http_get(addr, path).map(|(status, _)| status)
}

/// `contour serve` watching one namespace and the Envoy `contour bootstrap` configured for it,
/// stopped when dropped.
struct Contour {
    serve: koperator_e2e::process::Component,
    envoy: Option<koperator_e2e::process::Component>,
    /// Contour's `/healthz`.
    health: std::net::SocketAddr,
    /// Envoy's stats listener (`/ready`, from Contour).
    stats: std::net::SocketAddr,
    dir: tempfile::TempDir,
}

impl Contour {
    /// Starts `contour serve` for `ns` with its Envoy listeners on `envoy_ip` (HTTPS on
    /// `https_port`, the others on free ports; Envoy's admin only on a Unix socket).
    fn start(cp: &koperator_e2e::ControlPlane, ns: &str, envoy_ip: std::net::IpAddr, https_port: u16) -> Contour {
        use koperator_e2e::process::{Component, free_port};
        let contour = koperator_e2e::tools::tool("contour").unwrap();
        let dir = tempfile::Builder::new().prefix("kop-contour-").tempdir().unwrap();
        let local: std::net::IpAddr = [127, 0, 0, 1].into();
        let (xds, health) = (free_port().unwrap(), free_port().unwrap());
        let stats = std::net::SocketAddr::new(envoy_ip, free_port_on(envoy_ip));
        // The admin listener Contour adds to Envoy on 127.0.0.1 moves off its fixed port 9001 (0,
        // documented as switching it off, still gave one: defaults are merged over zero values).
        let config = dir.path().join("contour.yaml");
        std::fs::write(&config, format!("network:\n  admin-port: {}\n", free_port().unwrap())).unwrap();
        let flags = [
            ("--kubeconfig", cp.kubeconfig.display().to_string()),
            ("--config-path", config.display().to_string()),
            ("--watch-namespaces", ns.to_string()),
            ("--xds-address", "127.0.0.1".into()),
            ("--xds-port", xds.to_string()),
            ("--envoy-service-https-address", envoy_ip.to_string()),
            ("--envoy-service-https-port", https_port.to_string()),
            ("--envoy-service-http-address", envoy_ip.to_string()),
            ("--envoy-service-http-port", free_port_on(envoy_ip).to_string()),
            ("--stats-address", envoy_ip.to_string()),
            ("--stats-port", stats.port().to_string()),
            ("--http-address", "127.0.0.1".into()),
            ("--http-port", free_port().unwrap().to_string()),
            ("--health-address", "127.0.0.1".into()),
            ("--health-port", health.to_string()),
            ("--debug-http-address", "127.0.0.1".into()),
            ("--debug-http-port", free_port().unwrap().to_string()),
        ];
        let mut args: Vec<String> = ["serve", "--insecure", "--disable-leader-election"].map(String::from).into();
        args.extend(flags.into_iter().flat_map(|(k, v)| [k.to_string(), v]));
        let serve = Component::start("contour", &contour, &args, dir.path().join("contour.log"), false).unwrap();
        let bootstrap = dir.path().join("envoy.json");
        let out = std::process::Command::new(&contour)
            .arg("bootstrap")
            .arg(&bootstrap)
            .args(["--xds-address=127.0.0.1".to_string(), format!("--xds-port={xds}")])
            .arg(format!("--admin-address={}", dir.path().join("admin.sock").display()))
            .arg(format!("--namespace={ns}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "contour bootstrap: {}", String::from_utf8_lossy(&out.stderr));
        Contour { serve, envoy: None, health: (local, health).into(), stats, dir }
    }

    /// Starts Envoy from the bootstrap; the time until its `/ready` answers 200.
    fn start_envoy(&mut self, ns: &str) -> Duration {
        let envoy = koperator_e2e::tools::tool("envoy").unwrap();
        let d = self.dir.path();
        let args = [
            ("-c", d.join("envoy.json").display().to_string()),
            ("--service-cluster", ns.to_string()),
            ("--service-node", format!("envoy-{ns}")),
            ("--concurrency", "1".into()),
            ("--log-level", "info".into()),
            ("--base-id-path", d.join("base-id").display().to_string()),
        ];
        let mut args: Vec<String> = args.into_iter().flat_map(|(k, v)| [k.to_string(), v]).collect();
        args.push("--use-dynamic-base-id".into());
        let started = Instant::now();
        let log = d.join("envoy.log");
        self.envoy = Some(koperator_e2e::process::Component::start("envoy", &envoy, &args, log, false).unwrap());
        self.wait("Envoy ready", Duration::from_secs(30), |c| http_status(c.stats, "/ready") == Some(200));
        started.elapsed()
    }

    /// Waits for `check`, failing with both logs when either process exits or time runs out.
    fn wait(&self, what: &str, timeout: Duration, mut check: impl FnMut(&Contour) -> bool) {
        let deadline = Instant::now() + timeout;
        while !check(self) {
            let exited = [Some(&self.serve), self.envoy.as_ref()].into_iter().flatten().find_map(|c| c.exited());
            assert!(exited.is_none() && Instant::now() < deadline, "{what}: {exited:?}\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn logs(&self) -> String {
        let envoy = self.envoy.as_ref().map(|e| e.log_tail(20)).unwrap_or_default();
        format!("--- contour ---\n{}\n--- envoy ---\n{envoy}", self.serve.log_tail(20))
    }
}

impl Drop for Contour {
    fn drop(&mut self) {
        if let Some(e) = &self.envoy {
            e.stop(Duration::from_secs(2));
        }
        self.serve.stop(Duration::from_secs(2));
    }
}

/// Plays the EndpointSlice controller and kube-proxy for the ClusterIP Services of listener
/// `listener`: each Service port gets a forwarder on `host` (a free port) to its Ready Pods'
/// `targetPort`, and an EndpointSlice of its own naming that forwarder. Returns the Services.
fn publish_endpoints(
    cp: &koperator_e2e::ControlPlane,
    ns: &str,
    listener: &str,
    host: std::net::IpAddr,
    forwards: &mut koperator_e2e::node_port::NodePorts,
) -> Vec<String> {
    let services = get_json(cp, &["get", "services", "-n", ns, "-l", &format!("eListenerName={listener}")]);
    let mut routes = std::collections::BTreeMap::new();
    let mut names = Vec::new();
    for svc in services["items"].as_array().unwrap() {
        let name = svc["metadata"]["name"].as_str().unwrap();
        let selector: Vec<String> = svc["spec"]["selector"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
            .collect();
        let pods = get_json(cp, &["get", "pods", "-n", ns, "-l", &selector.join(",")]);
        let ready: Vec<std::net::IpAddr> = pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| {
                p["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
            })
            .filter_map(|p| p["status"]["podIP"].as_str()?.parse().ok())
            .collect();
        let mut ports = Vec::new();
        for port in svc["spec"]["ports"].as_array().unwrap() {
            let target = port["targetPort"].as_u64().expect("a numeric targetPort") as u16;
            let listen = std::net::SocketAddr::new(host, free_port_on(host));
            routes.insert(listen, ready.iter().map(|ip| std::net::SocketAddr::new(*ip, target)).collect::<Vec<_>>());
            ports.push(json!({"name": port["name"], "port": listen.port(), "protocol": "TCP"}));
        }
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-e2e"), "labels": {
                "kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": SLICE_MANAGER}},
            "addressType": if host.is_ipv4() { "IPv4" } else { "IPv6" },
            "endpoints": [{"addresses": [host.to_string()], "conditions": {"ready": true}}],
            "ports": ports,
        });
        apply(cp, ns, &slice);
        names.push(name.to_string());
    }
    forwards.update(&routes);
    names
}

/// `(name, status.currentStatus)` of every HTTPProxy in `ns`.
fn http_proxies(cp: &koperator_e2e::ControlPlane, ns: &str) -> Vec<(String, String)> {
    let list = get_json(cp, &["get", "httpproxies.projectcontour.io", "-n", ns]);
    let mut out: Vec<(String, String)> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (s(&p["metadata"]["name"]), s(&p["status"]["currentStatus"]))
        })
        .collect();
    out.sort();
    out
}

/// The median time to open a Kafka connection (TCP, TLS verified against `ca`, ApiVersions) to
/// `addr`, names resolved through `hosts`.
fn connect_time(addr: &str, ca: &str, hosts: &std::path::Path) -> Duration {
    use koperator_shared::kafka::{Connection, Resolver, client_config};
    let opts = ConnectOptions {
        tls: Some(client_config(ca, None).unwrap()),
        resolver: Resolver::with_hosts_file(Some(hosts.to_path_buf())),
        ..ConnectOptions::default()
    };
    let mut times: Vec<Duration> = (0..7)
        .map(|_| {
            let started = Instant::now();
            rt().block_on(Connection::open(addr, &opts)).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

#[test]
fn outside_clients_reach_the_brokers_through_contour_by_sni_passthrough() {
    let cp = shared();
    let ns = cp.namespace("kafka-contour").unwrap();
    let ns = ns.name.clone();
    let started = Instant::now();
    let crds = koperator_e2e::tools::cache_dir().join("ingress-crds/contour");
    assert!(crds.is_dir(), "{} is missing: run `make e2e-deps`", crds.display());
    cp.kubectl(&["apply", "--server-side", "-f", &crds.display().to_string()]).unwrap();
    cp.wait_established("httpproxies.projectcontour.io", Duration::from_secs(60)).unwrap();

    // Envoy on a loopback address of its own (the clients' hosts file names it for every host).
    let envoy_ip: std::net::IpAddr = [127, 0, 231, 1 + (std::process::id() % 250) as u8].into();
    let https_port = free_port_on(envoy_ip);
    let contour_started = Instant::now();
    let mut contour = Contour::start(cp, &ns, envoy_ip, https_port);
    contour.wait("contour /healthz", Duration::from_secs(30), |c| http_status(c.health, "/healthz") == Some(200));
    let contour_healthy = contour_started.elapsed();
    let envoy_ready = contour.start_envoy(&ns);
    eprintln!(
        "contour serve healthy after {:.2}s, its Envoy ready {:.2}s after start",
        contour_healthy.as_secs_f64(),
        envoy_ready.as_secs_f64()
    );

    let node = Node::start(&cp.kubeconfig, &ns).unwrap();
    let hosts = format!("--kafka-hosts-file={}", node.hosts_file.display());
    let op = start_operator(cp, &ns, "kafka-contour", "kafka-contour", &[hosts]);
    let get = || get_json(cp, &["get", "kafkacluster", CONTOUR_CLUSTER, "-n", &ns]);
    apply(cp, &ns, &contour_spec(https_port));
    wait_for("the cluster Running", Duration::from_secs(300), &op, || {
        let kc = get();
        settled(&kc) && condition(&kc, "Ready").is_some_and(|c| c.0 == "True")
    });
    let kc = get();
    eprintln!("cluster Running {:.1}s into the test", started.elapsed().as_secs_f64());
    let statuses = external_statuses(&kc, CONTOUR_LISTENER);
    let broker_host = "broker-0.contour.test";
    assert_eq!(
        statuses,
        [
            ("any-broker".into(), format!("{CONTOUR_HOST}:{https_port}")),
            ("broker-0".into(), format!("{broker_host}:{https_port}"))
        ],
        "{}",
        kc["status"]["listenerStatuses"]
    );

    // The Services get endpoints (see the module doc), Contour marks the HTTPProxies valid.
    let forward_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let mut forwards = koperator_e2e::node_port::NodePorts::new(forward_rt.handle().clone());
    let published = Instant::now();
    let services = publish_endpoints(cp, &ns, CONTOUR_LISTENER, host_address(), &mut forwards);
    assert_eq!(services.len(), 2, "any-cast and broker Service: {services:?}");
    let want = vec![(broker_host.to_string(), "valid".to_string()), (CONTOUR_HOST.to_string(), "valid".to_string())];
    let deadline = Instant::now() + Duration::from_secs(60);
    while http_proxies(cp, &ns) != want {
        let all = get_json(cp, &["get", "httpproxies.projectcontour.io", "-n", &ns]);
        assert!(Instant::now() < deadline, "HTTPProxies not valid: {:#}\n{}", all["items"], contour.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    // Kafka's console clients, given only the any-cast host, through Envoy by TLS server name.
    let ca = get_json(cp, &["get", "secret", CONTOUR_CA, "-n", &ns])["data"]["caCert"]
        .as_str()
        .map(|b| String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap()).unwrap())
        .expect("the cluster CA");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("ca.crt"), &ca).unwrap();
    let names = outside.path().join("hosts");
    std::fs::write(&names, format!("{envoy_ip} {CONTOUR_HOST} {broker_host}\n")).unwrap();
    let tls = format!(
        "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={}/ca.crt\n",
        outside.path().display()
    );
    let bootstrap = format!("{CONTOUR_HOST}:{https_port}");
    let tls_options = || ConnectOptions {
        tls: Some(koperator_shared::kafka::client_config(&ca, None).unwrap()),
        resolver: koperator_shared::kafka::Resolver::with_hosts_file(Some(names.clone())),
        ..ConnectOptions::default()
    };
    contour.wait("a Kafka connection through Envoy", Duration::from_secs(30), |_| {
        rt().block_on(koperator_shared::kafka::Connection::open(&bootstrap, &tls_options())).is_ok()
    });
    eprintln!(
        "first Kafka connection through Contour's Envoy {:.2}s after the EndpointSlices were written",
        published.elapsed().as_secs_f64()
    );
    let through_envoy = connect_time(&bootstrap, &ca, &names);
    let pod_ip = get_json(cp, &["get", "pod", "-n", &ns, "-l", "brokerId=0"])["items"][0]["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let direct_names = outside.path().join("direct-hosts");
    std::fs::write(&direct_names, format!("{pod_ip} {broker_host}\n")).unwrap();
    let direct = connect_time(&format!("{broker_host}:9096"), &ca, &direct_names);
    eprintln!(
        "Kafka connection set-up (TCP + TLS + ApiVersions, median of 7): {:.1} ms through Contour's Envoy, {:.1} ms to the broker directly",
        through_envoy.as_secs_f64() * 1e3,
        direct.as_secs_f64() * 1e3
    );
    let admin = Admin::new(vec![bootstrap.clone()], tls_options());
    let meta = rt().block_on(admin.metadata(None)).unwrap();
    let advertised: Vec<String> = meta.brokers.values().map(|b| format!("{}:{}", b.host, b.port)).collect();
    assert_eq!(advertised, [format!("{broker_host}:{https_port}")], "the broker advertises its Contour host");

    let topic = json!({
        "apiVersion": "kafka.banzaicloud.io/v1alpha1", "kind": "KafkaTopic",
        "metadata": {"name": "payments"},
        "spec": {"clusterRef": {"name": CONTOUR_CLUSTER}, "name": "payments", "partitions": 2, "replicationFactor": 1}
    });
    apply(cp, &ns, &topic);
    wait_for("the KafkaTopic Ready", Duration::from_secs(60), &op, || {
        condition(&get_json(cp, &["get", "kafkatopic", "payments", "-n", &ns]), "Ready").is_some_and(|c| c.0 == "True")
    });
    let (ok, out) = console(
        &names,
        PRODUCER,
        &bootstrap,
        &["--topic", "payments", "--producer-property", "acks=all"],
        "alpha\nbeta\ngamma\n",
        &tls,
    );
    assert!(ok, "the console producer through Contour's Envoy:\n{out}\n{}", contour.logs());
    let consume = ["--topic", "payments", "--from-beginning", "--max-messages", "3", "--timeout-ms", "60000"];
    let (ok, out) = console(&names, CONSUMER, &bootstrap, &consume, "", &tls);
    assert!(ok, "the console consumer through Contour's Envoy:\n{out}");
    for r in ["alpha", "beta", "gamma"] {
        assert!(out.lines().any(|l| l == r), "{r} read back through Contour's Envoy:\n{out}");
    }
    // Envoy passed connections to both Services: the any-cast one (bootstrap) and the broker's
    // (its clusters' stat names are `<ns>_<service>_<port>`).
    let (_, stats) = http_get(contour.stats, "/stats?filter=upstream_cx_total").expect("Envoy's stats");
    for svc in
        [format!("contour-svc-{CONTOUR_LISTENER}-{CONTOUR_CLUSTER}"), format!("{CONTOUR_CLUSTER}-0-{CONTOUR_LISTENER}")]
    {
        let used = stats.lines().any(|l| {
            l.contains(&format!("_{svc}_")) && l.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0) > 0
        });
        assert!(used, "no connection through Envoy to Service {svc}:\n{stats}");
    }
    // A client that does not trust the cluster CA is refused at the handshake.
    let (ok, out) = console(
        &names,
        PRODUCER,
        &bootstrap,
        &["--topic", "payments", "--producer-property", "max.block.ms=10000"],
        "x\n",
        "security.protocol=SSL\n",
    );
    assert!(!ok || out.contains("SslAuthenticationException"), "{out}");
    assert!(out.contains("SSL handshake failed") || out.contains("SslAuthenticationException"), "{out}");
    eprintln!("Contour test done in {:.1}s", started.elapsed().as_secs_f64());
    drop(forwards);
    drop(contour);
    drop(op);
}

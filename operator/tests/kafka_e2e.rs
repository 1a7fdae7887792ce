//! The operator on a real API server with real Kafka: every broker Pod it creates runs as an
//! Apache Kafka process (KRaft) from the operator's own rendered config, started by the test
//! node (`koperator_e2e::node`).
//!
//! Most tests share one 3-broker KRaft cluster (one namespace, one test node, one operator),
//! created by the first test that needs it and stopped after the last one (or when the binary
//! exits). Each test starts from "cluster settled" (it re-applies the last valid spec, resumes
//! a broker a failed test left paused, replaces a dead operator and waits), makes its change,
//! asserts, and leaves the cluster settled again, so that the tests do not depend on their
//! order and one failure does not hide the others. Tests that roll brokers leave their new
//! read-only config in place (undoing it would cost another roll) and pick values that differ
//! from the current ones. Run with `--test-threads=1`.
//!
//! Shared cluster: it forms a quorum with the operator's cluster id; KafkaTopics and KafkaUsers
//! through kubectl; a no-op reconcile writes nothing; dynamic configs apply without a restart;
//! a per-broker change restarts that broker alone; a hung broker that Kubernetes still sees
//! Ready stops the roll (Kafka says it is unhealthy); a deleted Pod comes back on its PVC with
//! its data; an invalid spec touches nothing; metrics, health and leadership; and the loss
//! scenarios of [`loss`] (rolls with the operator killed or the API server restarted, a broker
//! killed, a broker that cannot start), each with Kafka's verifiable clients running. On
//! clusters of their own: deletion keeps PVCs (a 1-node cluster, since it destroys what it
//! tests on); ZooKeeper mode rolls on Kafka 3.9.

mod common;
#[path = "kafka_e2e/loss.rs"]
mod loss;
#[path = "kafka_e2e/upgrade.rs"]
mod upgrade;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use common::*;
use koperator_e2e::node::Node;
use koperator_e2e::tools::repo_root;
use koperator_e2e::{ControlPlane, Namespace, shared};
use koperator_shared::kafka::{Admin, ConfigResource, ConfigSource, ConnectOptions, NewTopic, Resolver};
use serde_json::{Value, json};

const CLUSTER: &str = "kafka-combined";
const PODS: [&str; 3] = ["kafka-combined-0", "kafka-combined-1", "kafka-combined-2"];
/// The Lease of the shared cluster's operator.
const LEASE: &str = "kafka";

/// The tests on the shared cluster: once each of them has run, the cluster is stopped (so
/// that the tests on clusters of their own do not share the machine with three idle JVMs).
/// A test missing here still works; it only makes a new cluster if it runs after the others.
const SHARED_TESTS: &[&str] = &[
    "cluster_forms_a_quorum_with_the_operators_cluster_id",
    "kafkatopics_through_kubectl",
    "kafkausers_through_kubectl",
    "a_noop_reconcile_writes_nothing",
    "dynamic_configs_apply_without_a_restart",
    "a_per_broker_change_restarts_only_that_broker",
    "a_hung_broker_stops_the_roll",
    "a_deleted_pod_comes_back_on_its_pvc_with_its_data",
    "an_invalid_spec_touches_nothing",
    "metrics_readyz_and_leadership",
    "kafkausers_never_take_what_is_not_theirs",
    "namespaces_are_a_boundary_for_the_operator",
    "brokers_export_jmx_metrics_and_the_status_names_their_release",
    "loss::loss_a_read_only_config_roll",
    "loss::loss_an_operator_killed_three_times_during_a_roll",
    "loss::loss_an_api_server_restart_during_a_roll",
    "loss::loss_a_broker_killed_while_idle",
    "loss::loss_a_broker_that_cannot_start_stops_the_roll",
];

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn admin(node: &Node, ns: &str, cluster: &str, brokers: usize) -> Admin {
    let bootstrap =
        (0..brokers).map(|i| format!("{cluster}-{i}.{cluster}-headless.{ns}.svc.cluster.local:29092")).collect();
    let opts = ConnectOptions {
        resolver: Resolver::with_hosts_file(Some(node.hosts_file.clone())),
        ..ConnectOptions::default()
    };
    Admin::new(bootstrap, opts)
}

/// The read-only config the test cluster adds to the sample: ACLs enforced, and SCRAM on the
/// client listener `sasl`. The PLAINTEXT listeners (brokers, controllers, operator) are
/// ANONYMOUS, made super user here; a production cluster would use mTLS there.
const SECURITY: &str = "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
";

fn combined_sample() -> Value {
    let sample = std::fs::read_to_string(repo_root().join("config/samples/kafkacluster_kraft_combined.yaml")).unwrap();
    serde_saphyr::from_str(&sample).unwrap()
}

/// The sample with a small heap (several JVMs share this machine), ACLs and a SCRAM listener.
fn spec() -> Value {
    let mut v = combined_sample();
    v["spec"]["brokerConfigGroups"]["default"]["kafkaHeapOpts"] = json!("-Xmx384m -Xms384m");
    v["spec"]["readOnlyConfig"] = json!(v["spec"]["readOnlyConfig"].as_str().unwrap().to_string() + SECURITY);
    v["spec"]["listenersConfig"]["internalListeners"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "sasl_plaintext", "name": "sasl", "containerPort": 29094}));
    v
}

fn apply(cp: &ControlPlane, ns: &str, v: &Value) {
    cp.kubectl_stdin(&["apply", "-n", ns, "-f", "-"], Some(&v.to_string())).unwrap();
}

/// Every partition of `topic` has all its replicas in sync.
fn fully_in_sync(admin: &Admin, topic: &str) -> bool {
    rt().block_on(admin.metadata(Some(&[topic])))
        .ok()
        .and_then(|m| m.topic(topic).map(|t| t.partitions.iter().all(|p| p.isr.len() == p.replicas.len())))
        .unwrap_or(false)
}

/// `a` unless `current` already is `a`, then `b`: a value that is a change whatever ran before.
fn other<'a>(current: Option<&str>, a: &'a str, b: &'a str) -> &'a str {
    if current == Some(a) { b } else { a }
}

/// Identities of the shared cluster's operators: each one new, so that a log file is never
/// reused and the Lease holder tells which process leads.
fn next_identity() -> String {
    static N: AtomicU32 = AtomicU32::new(1);
    format!("kafka-{}", N.fetch_add(1, Ordering::SeqCst))
}

/// The shared 3-broker KRaft cluster and what runs it. Fields drop in order: the operator
/// stops first, then the node's brokers, then the namespace goes.
struct Cluster {
    cp: &'static ControlPlane,
    ns: String,
    op: Operator,
    node: Node,
    admin: Admin,
    /// `--kafka-hosts-file=…` for the operator.
    hosts: String,
    /// The last valid spec applied: what the cluster runs when it is settled.
    desired: Value,
    /// Pods a test paused (resumed when the next test starts, should that test fail).
    paused: BTreeSet<&'static str>,
    _namespace: Namespace<'static>,
}

impl Cluster {
    fn create() -> Cluster {
        let cp = shared();
        let namespace = cp.namespace("kafka").unwrap();
        let ns = namespace.name.clone();
        let node = Node::start(&cp.kubeconfig, &ns).unwrap();
        let hosts = format!("--kafka-hosts-file={}", node.hosts_file.display());
        let op = start_operator(cp, &ns, LEASE, &next_identity(), std::slice::from_ref(&hosts));
        let applied = Instant::now();
        let desired = spec();
        apply(cp, &ns, &desired);
        // The cluster forms: three brokers and a three-voter quorum, from the rendered config.
        wait_for("ClusterRunning on real brokers", Duration::from_secs(240), &op, || {
            let kc = get_json(cp, &["get", "kafkacluster", CLUSTER, "-n", &ns]);
            kc["status"]["state"] == "ClusterRunning" && condition(&kc, "Ready").is_some_and(|c| c.0 == "True")
        });
        eprintln!(
            "FIGURE: 3 KRaft brokers Running (all Pods Ready from Kafka's own state) {} s after kubectl apply",
            applied.elapsed().as_secs()
        );
        let admin = admin(&node, &ns, CLUSTER, 3);
        // `orders` holds data for the roll and PVC tests (created in Kafka, not as a KafkaTopic).
        rt().block_on(admin.create_topic(&NewTopic {
            name: "orders".into(),
            partitions: 6,
            replication_factor: 3,
            configs: BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]),
        }))
        .unwrap();
        wait_for("orders fully in sync", Duration::from_secs(60), &op, || fully_in_sync(&admin, "orders"));
        Cluster { cp, ns, op, node, admin, hosts, desired, paused: BTreeSet::new(), _namespace: namespace }
    }

    fn kc(&self) -> Value {
        get_json(self.cp, &["get", "kafkacluster", CLUSTER, "-n", &self.ns])
    }

    fn apply(&self, v: &Value) {
        apply(self.cp, &self.ns, v);
    }

    fn apply_desired(&self) {
        self.apply(&self.desired);
    }

    fn pods(&self) -> BTreeMap<String, String> {
        pod_uids(self.cp, &self.ns)
    }

    fn events_now(&self) -> EventMark {
        EventMark::now(self.cp, &self.ns)
    }

    /// Waits up to `secs` for `check`, failing early when the operator exits.
    fn wait(&self, what: &str, secs: u64, mut check: impl FnMut(&Cluster) -> bool) {
        wait_for(what, Duration::from_secs(secs), &self.op, || check(self));
    }

    /// Node ids Kafka reports live (unfenced).
    fn live_brokers(&self) -> Option<Vec<i32>> {
        rt().block_on(self.admin.metadata(Some(&[]))).ok().map(|m| m.brokers.keys().copied().collect())
    }

    /// Kills the operator (no grace) and starts another one with a new identity; it leads once
    /// the old one's Lease runs out.
    fn replace_operator(&mut self) {
        self.op.stop(Duration::ZERO);
        self.op = start_operator(self.cp, &self.ns, LEASE, &next_identity(), std::slice::from_ref(&self.hosts));
    }

    /// Back to "settled": no paused broker, a running operator, the last valid spec applied
    /// and run by every broker, all three brokers live in Kafka.
    fn settle(&mut self) {
        for pod in std::mem::take(&mut self.paused) {
            let _ = self.node.resume(pod);
        }
        if self.op.exited().is_some() {
            self.replace_operator();
        }
        self.apply_desired();
        self.wait("the shared cluster settled", 300, |c| {
            let kc = c.kc();
            settled(&kc)
                && condition(&kc, "Ready").is_some_and(|r| r.0 == "True")
                && c.live_brokers().is_some_and(|b| b == [0, 1, 2])
        });
    }
}

enum Fixture {
    Absent,
    Up(Box<Cluster>),
    Failed(String),
}

static FIXTURE: Mutex<Fixture> = Mutex::new(Fixture::Absent);
static FINISHED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// The shared cluster, locked for one test and settled. A cluster that cannot be created fails
/// every test that needs it at once (with the reason); one that does not settle after a failed
/// test is dropped, and the next test gets a new one.
fn cluster() -> SharedCluster {
    let cp = shared();
    register_teardown();
    let mut guard = FIXTURE.lock().unwrap_or_else(|e| e.into_inner());
    if matches!(*guard, Fixture::Absent) {
        *guard = match std::panic::catch_unwind(Cluster::create) {
            Ok(c) => Fixture::Up(Box::new(c)),
            Err(p) => Fixture::Failed(panic_text(p.as_ref())),
        };
    }
    if let Fixture::Failed(e) = &*guard {
        panic!(
            "the shared cluster could not be created (see the first test that needed it): {e}\nrun dir {}",
            cp.dir.display()
        );
    }
    let mut shared = SharedCluster(guard);
    let settled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| shared.settle()));
    if let Err(p) = settled {
        eprintln!("kafka_e2e: the shared cluster did not settle; dropping it (the next test makes a new one)");
        *shared.0 = Fixture::Absent;
        std::panic::resume_unwind(p);
    }
    shared
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

/// The binary's statics are never dropped: stop the shared cluster (operator, brokers, node
/// directory, namespace) at exit, before the control plane stops (atexit runs handlers in
/// reverse order, and `shared()` registered its handler first). The processes would die with
/// the binary anyway (PR_SET_PDEATHSIG); this also removes the node's directory.
fn register_teardown() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    unsafe extern "C" {
        fn atexit(f: extern "C" fn()) -> std::ffi::c_int;
    }
    extern "C" fn teardown() {
        let _ = std::panic::catch_unwind(|| {
            let mut fixture = match FIXTURE.try_lock() {
                Ok(g) => g,
                Err(TryLockError::Poisoned(e)) => e.into_inner(),
                Err(TryLockError::WouldBlock) => return,
            };
            *fixture = Fixture::Absent;
        });
    }
    // SAFETY: registering a plain extern "C" function that never unwinds.
    ONCE.call_once(|| unsafe {
        atexit(teardown);
    });
}

/// One test's hold on the shared cluster. When the last of [`SHARED_TESTS`] lets go, the
/// cluster is stopped.
struct SharedCluster(MutexGuard<'static, Fixture>);

impl Deref for SharedCluster {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        match &*self.0 {
            Fixture::Up(c) => c,
            _ => unreachable!("a SharedCluster holds a running cluster"),
        }
    }
}

impl DerefMut for SharedCluster {
    fn deref_mut(&mut self) -> &mut Cluster {
        match &mut *self.0 {
            Fixture::Up(c) => c,
            _ => unreachable!("a SharedCluster holds a running cluster"),
        }
    }
}

impl Drop for SharedCluster {
    fn drop(&mut self) {
        let mut finished = FINISHED.lock().unwrap_or_else(|e| e.into_inner());
        finished.insert(std::thread::current().name().unwrap_or_default().to_string());
        if SHARED_TESTS.iter().all(|t| finished.contains(*t)) && matches!(*self.0, Fixture::Up(_)) {
            eprintln!("kafka_e2e: every shared-cluster test ran; stopping the shared cluster");
            *self.0 = Fixture::Absent;
        }
    }
}

#[test]
fn cluster_forms_a_quorum_with_the_operators_cluster_id() {
    let c = cluster();
    let kc = c.kc();
    rt().block_on(async {
        let cluster = c.admin.describe_cluster().await.unwrap();
        assert_eq!(cluster.brokers.iter().map(|b| b.id).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(
            Some(cluster.cluster_id.as_str()),
            kc["status"]["clusterID"].as_str(),
            "Kafka runs with the cluster id the operator chose"
        );
        let quorum = c.admin.describe_quorum().await.unwrap();
        assert_eq!(quorum.voters.len(), 3, "{quorum:?}");
    });
    let states = kc["status"]["brokersState"].as_object().map(|m| m.keys().cloned().collect::<Vec<_>>());
    assert_eq!(states, Some(vec!["0".to_string(), "1".into(), "2".into()]), "{kc}");
    assert_eq!(c.pods().keys().map(String::as_str).collect::<Vec<_>>(), PODS);
    c.wait("orders fully in sync", 60, |c| fully_in_sync(&c.admin, "orders"));
}

fn topic(name: &str, partitions: i32, config: Value) -> Value {
    json!({
        "apiVersion": "kafka.banzaicloud.io/v1alpha1",
        "kind": "KafkaTopic",
        "metadata": {"name": name},
        "spec": {"name": name, "partitions": partitions, "replicationFactor": 3, "config": config, "clusterRef": {"name": CLUSTER}},
    })
}

fn topic_status(cp: &ControlPlane, ns: &str, name: &str) -> Value {
    get_json(cp, &["get", "kafkatopic", name, "-n", ns])
}

fn topic_config(admin: &Admin, topic: &str, key: &str) -> Option<koperator_shared::kafka::ConfigEntry> {
    rt().block_on(admin.describe_configs(&ConfigResource::Topic(topic.into())))
        .ok()?
        .into_iter()
        .find(|c| c.name == key)
}

fn partitions(admin: &Admin, topic: &str) -> Option<usize> {
    rt().block_on(admin.metadata(Some(&[topic]))).ok()?.topic(topic).map(|t| t.partitions.len())
}

/// KafkaTopics through kubectl: create, grow, reconfigure, drift, adoption rules, delete, keep.
#[test]
fn kafkatopics_through_kubectl() {
    let c = cluster();
    let (cp, ns, admin) = (c.cp, c.ns.as_str(), &c.admin);
    let created = Instant::now();
    let mut events = topic("events", 3, json!({"retention.ms": "3600000"}));
    c.apply(&events);
    c.wait("topic events created and in sync", 60, |_| {
        let t = topic_status(cp, ns, "events");
        condition(&t, "Ready").is_some_and(|c| c == ("True".into(), "InSync".into()))
    });
    eprintln!("FIGURE: KafkaTopic created in Kafka and Ready {} ms after kubectl apply", created.elapsed().as_millis());
    let t = topic_status(cp, ns, "events");
    assert_eq!(
        (t["status"]["managedBy"].as_str(), t["status"]["state"].as_str()),
        (Some("koperator"), Some("created"))
    );
    assert_eq!(t["metadata"]["labels"]["kafkaCluster"], format!("{CLUSTER}.{ns}"));
    let meta = rt().block_on(admin.metadata(Some(&["events"]))).unwrap();
    let k = meta.topic("events").unwrap();
    assert_eq!((k.partitions.len(), k.replication_factor()), (3, 3));
    assert_eq!(topic_config(admin, "events", "retention.ms").unwrap().value.as_deref(), Some("3600000"));

    // Grow and reconfigure.
    events["spec"]["partitions"] = json!(5);
    events["spec"]["config"] = json!({"cleanup.policy": "compact"});
    c.apply(&events);
    c.wait("events grown and reconfigured in Kafka", 60, |_| {
        partitions(admin, "events") == Some(5)
            && topic_config(admin, "events", "cleanup.policy").is_some_and(|c| c.value.as_deref() == Some("compact"))
            && topic_config(admin, "events", "retention.ms").is_some_and(|c| c.source != ConfigSource::DynamicTopic)
    });

    // A config changed outside the operator is put back and reported.
    let mark = c.events_now();
    rt().block_on(admin.alter_configs(
        &ConfigResource::Topic("events".into()),
        &[koperator_shared::kafka::ConfigOp::Set("cleanup.policy".into(), "delete".into())],
    ))
    .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    cp.kubectl(&["annotate", "kafkatopic", "events", "-n", ns, "resync=1", "--overwrite"]).unwrap();
    c.wait("drift corrected", 60, |_| {
        topic_config(admin, "events", "cleanup.policy").is_some_and(|c| c.value.as_deref() == Some("compact"))
            && !mark.since(cp, ns, "DriftCorrected").is_empty()
    });

    // An existing topic is not adopted without the annotation, and deleting that CR keeps it.
    apply(cp, ns, &topic("orders", 6, json!({"min.insync.replicas": "2"})));
    c.wait("orders reported as not managed", 60, |_| {
        let t = topic_status(cp, ns, "orders");
        t["status"]["managedBy"] == "unknown" && condition(&t, "Ready").is_some_and(|c| c.1 == "NotManaged")
    });
    cp.kubectl(&["delete", "kafkatopic", "orders", "-n", ns, "--timeout=60s"]).unwrap();
    assert_eq!(partitions(admin, "orders"), Some(6), "deleting an unmanaged KafkaTopic removed the Kafka topic");

    // Deleting a managed KafkaTopic deletes the Kafka topic; the keep annotation opts out.
    let mut kept = topic("kept", 1, json!({}));
    kept["metadata"]["annotations"] = json!({"koperator.banzaicloud.io/keep-topic-on-deletion": "true"});
    c.apply(&kept);
    c.wait("kept created", 60, |_| partitions(admin, "kept") == Some(1));
    cp.kubectl(&["delete", "kafkatopic", "events", "kept", "-n", ns, "--timeout=60s"]).unwrap();
    assert_eq!(partitions(admin, "events"), None, "the Kafka topic of a deleted KafkaTopic is gone");
    assert_eq!(partitions(admin, "kept"), Some(1), "the annotated topic is kept");
    // Leave Kafka as the test found it.
    rt().block_on(admin.delete_topic("kept")).unwrap();
}

/// Runs a console producer or consumer against broker 0's `port`, as `client_config` says.
fn console(node: &Node, ns: &str, class: &str, port: u16, extra: &[&str], input: &str, config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let props = dir.path().join("client.properties");
    std::fs::write(&props, config).unwrap();
    let bootstrap = format!("{CLUSTER}-0.{CLUSTER}-headless.{ns}.svc.cluster.local:{port}");
    let mut args: Vec<String> = vec!["--bootstrap-server".into(), bootstrap];
    args.extend(extra.iter().map(|s| s.to_string()));
    if !config.is_empty() {
        args.push(if class.contains("Producer") { "--producer.config" } else { "--consumer.config" }.into());
        args.push(props.display().to_string());
    }
    let (status, out) =
        koperator_e2e::kafka::run_tool(class, &args, input, Some(&node.hosts_file), Duration::from_secs(90)).unwrap();
    (status.success(), out)
}

const PRODUCER: &str = "org.apache.kafka.tools.ConsoleProducer";
const CONSUMER: &str = "org.apache.kafka.tools.consumer.ConsoleConsumer";

/// KafkaUsers through kubectl: SCRAM credentials in a Secret, ACLs from topicGrants that let
/// the user consume and not produce, grants that shrink, deletion that cleans Kafka up.
#[test]
fn kafkausers_through_kubectl() {
    use koperator_shared::kafka::{AclFilter, AclOperation};
    let c = cluster();
    let (cp, ns, admin, node) = (c.cp, c.ns.as_str(), &c.admin, &c.node);
    rt().block_on(admin.create_topic(&NewTopic {
        name: "payments".into(),
        partitions: 1,
        replication_factor: 3,
        configs: BTreeMap::new(),
    }))
    .unwrap();
    // The super user (ANONYMOUS on the PLAINTEXT listener) writes one record.
    let (ok, out) = console(node, ns, PRODUCER, 29092, &["--topic", "payments"], "hello\n", "");
    assert!(ok, "producing as super user failed:\n{out}");

    let mut alice = json!({
        "apiVersion": "kafka.banzaicloud.io/v1alpha1",
        "kind": "KafkaUser",
        "metadata": {"name": "alice", "annotations": {"koperator.banzaicloud.io/credentials": "scram-sha-512"}},
        "spec": {
            "secretName": "alice-credentials",
            "clusterRef": {"name": CLUSTER},
            "topicGrants": [{"topicName": "payments", "accessType": "read"}],
        },
    });
    c.apply(&alice);
    c.wait("alice ready", 60, |_| {
        condition(&get_json(cp, &["get", "kafkauser", "alice", "-n", ns]), "Ready").is_some_and(|c| c.0 == "True")
    });
    let secret = get_json(cp, &["get", "secret", "alice-credentials", "-n", ns]);
    let jaas = String::from_utf8(
        base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            secret["data"]["sasl.jaas.config"].as_str().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(jaas.contains("username=\"alice\""), "{jaas}");
    let acls = rt().block_on(admin.describe_acls(&AclFilter::principal("User:alice"))).unwrap();
    let ops: BTreeSet<AclOperation> = acls.iter().map(|a| a.operation).collect();
    assert_eq!(ops, BTreeSet::from([AclOperation::Read, AclOperation::Describe]), "{acls:?}");
    let status_acls = get_json(cp, &["get", "kafkauser", "alice", "-n", ns])["status"]["acls"].clone();
    assert_eq!(status_acls.as_array().map(Vec::len), Some(3), "{status_acls}");

    let client = format!("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config={jaas}\n");
    let (ok, out) = console(
        node,
        ns,
        CONSUMER,
        29094,
        &[
            "--topic",
            "payments",
            "--from-beginning",
            "--max-messages",
            "1",
            "--timeout-ms",
            "60000",
            "--group",
            "alice-app",
        ],
        "",
        &client,
    );
    assert!(ok && out.contains("hello"), "alice could not consume:\n{out}");
    // Without idempotence the refusal is about the topic itself (an idempotent producer is
    // refused earlier, at the cluster level).
    let producer = format!("{client}enable.idempotence=false\n");
    let (_, out) = console(node, ns, PRODUCER, 29094, &["--topic", "payments"], "nope\n", &producer);
    assert!(
        out.contains("TopicAuthorizationException") || out.contains("Not authorized to access topics"),
        "alice could produce:\n{out}"
    );
    eprintln!("FIGURE: KafkaUser alice (SCRAM, read grant) consumed from payments and was refused producing");

    // Grants shrink: the ACLs go.
    alice["spec"]["topicGrants"] = json!([]);
    c.apply(&alice);
    c.wait("alice's ACLs removed", 60, |_| {
        rt().block_on(admin.describe_acls(&AclFilter::principal("User:alice"))).is_ok_and(|a| a.is_empty())
    });
    // Deleting the user removes its credential; the Secret goes with its owner.
    cp.kubectl(&["delete", "kafkauser", "alice", "-n", ns, "--timeout=60s"]).unwrap();
    c.wait("alice's credential removed", 60, |_| {
        rt().block_on(admin.has_scram_credential("alice")).is_ok_and(|has| !has)
    });
    c.wait("alice's Secret garbage-collected", 60, |_| {
        cp.kubectl(&["get", "secret", "alice-credentials", "-n", ns]).is_err()
    });
    // Leave Kafka as the test found it.
    rt().block_on(admin.delete_topic("payments")).unwrap();
}

/// A KafkaCluster reconcile with nothing to do writes nothing: forced by an annotation, it is
/// counted as a successful reconcile of the `kafkacluster` controller, that controller's write
/// counter does not move, and no object changes.
#[test]
fn a_noop_reconcile_writes_nothing() {
    let c = cluster();
    let (cp, ns, port) = (c.cp, c.ns.as_str(), c.op.port);
    let before = resource_versions(cp, ns);
    let reconciles_before = reconciles_ok(port, "kafkacluster");
    let writes_before = api_writes(port, "kafkacluster");
    let touch =
        format!("touch={}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis());
    let rv = cp
        .kubectl(&[
            "annotate",
            "kafkacluster",
            CLUSTER,
            "-n",
            ns,
            &touch,
            "--overwrite",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .unwrap();
    c.wait("a kafkacluster reconcile after the annotation", 30, |_| {
        reconciles_ok(port, "kafkacluster") > reconciles_before
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        api_writes(port, "kafkacluster"),
        writes_before,
        "a no-op reconcile wrote to the API server ({} reconciles since)",
        reconciles_ok(port, "kafkacluster") - reconciles_before
    );
    let mut after = resource_versions(cp, ns);
    assert_eq!(after.remove(&format!("kafkaclusters/{CLUSTER}")), Some(rv), "the reconcile wrote the KafkaCluster");
    let mut before = before;
    before.remove(&format!("kafkaclusters/{CLUSTER}"));
    assert_eq!(before, after, "a no-op reconcile changed objects");
}

/// Dynamic configs, cluster-wide and per-broker, applied through the Admin API without a
/// restart; removing a key from the spec deletes it in Kafka.
#[test]
fn dynamic_configs_apply_without_a_restart() {
    let mut g = cluster();
    let c = &mut *g;
    let admin = &c.admin;
    let uids = c.pods();
    let mark = c.events_now();
    c.desired["spec"]["clusterWideConfig"] = json!("log.retention.ms=7200000\n");
    c.desired["spec"]["brokers"][1]["brokerConfig"] = json!({"config": "log.cleaner.threads=2\n"});
    c.apply_desired();
    let dynamic_at = Instant::now();
    c.wait("dynamic configs in Kafka", 60, |_| {
        rt().block_on(async {
            let wide = admin.describe_configs(&ConfigResource::BrokerDefaults).await.unwrap_or_default();
            let one = admin.describe_configs(&ConfigResource::Broker(1)).await.unwrap_or_default();
            wide.iter().any(|e| e.name == "log.retention.ms" && e.value.as_deref() == Some("7200000"))
                && one.iter().any(|e| {
                    e.name == "log.cleaner.threads"
                        && e.value.as_deref() == Some("2")
                        && e.source == ConfigSource::DynamicBroker
                })
        })
    });
    eprintln!(
        "FIGURE: dynamic broker configs visible in Kafka {} ms after kubectl apply, no restart",
        dynamic_at.elapsed().as_millis()
    );
    c.wait("settled after dynamic configs", 30, |c| settled(&c.kc()));
    assert_eq!(c.pods(), uids, "a dynamic config change restarted a broker");
    let states = c.kc()["status"]["brokersState"].clone();
    assert!(
        states.as_object().unwrap().values().all(|b| b["perBrokerConfigurationState"] == "PerBrokerConfigInSync"),
        "{states}"
    );
    c.wait("a DynamicConfigUpdated Event", 30, |c| !mark.since(c.cp, &c.ns, "DynamicConfigUpdated").is_empty());
    assert!(mark.since(c.cp, &c.ns, "RollingRestart").is_empty(), "a dynamic config change announced a restart");

    // Removing the keys deletes them from Kafka (the spec is the source of truth); this also
    // puts the cluster back as the test found it.
    c.desired["spec"]["brokers"][1].as_object_mut().unwrap().remove("brokerConfig");
    c.desired["spec"].as_object_mut().unwrap().remove("clusterWideConfig");
    c.apply_desired();
    let admin = &c.admin;
    c.wait("per-broker key deleted in Kafka", 60, |_| {
        rt().block_on(admin.describe_configs(&ConfigResource::Broker(1)))
            .unwrap_or_default()
            .iter()
            .any(|e| e.name == "log.cleaner.threads" && e.source != ConfigSource::DynamicBroker)
    });
    c.wait("cluster-wide key deleted in Kafka", 60, |_| {
        rt().block_on(admin.describe_configs(&ConfigResource::BrokerDefaults)).is_ok_and(|wide| {
            !wide.iter().any(|e| e.name == "log.retention.ms" && e.source == ConfigSource::DynamicDefaultBroker)
        })
    });
    c.wait("settled after removing the dynamic configs", 30, |c| settled(&c.kc()));
    assert_eq!(c.pods(), uids, "removing a dynamic config restarted a broker");
}

/// The RollingRestart Events since `mark` that name broker `id` ("restarting broker N: …").
fn restarts_of(c: &Cluster, mark: &EventMark, id: i32) -> Vec<Value> {
    let prefix = format!("restarting broker {id}:");
    mark.since(c.cp, &c.ns, "RollingRestart")
        .into_iter()
        .filter(|e| e["note"].as_str().is_some_and(|n| n.starts_with(&prefix)))
        .collect()
}

/// Since `mark`, a RollingRestart Event (new, or repeated: a higher `series.count`) names each
/// broker of `restarted` (waiting up to 30 s for them), and none names a broker of `kept`.
fn assert_restart_events(c: &Cluster, mark: &EventMark, restarted: &[i32], kept: &[i32]) {
    let missing = || restarted.iter().copied().filter(|id| restarts_of(c, mark, *id).is_empty()).collect::<Vec<_>>();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !missing().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    let seen = || {
        let brief = |e: &Value| json!([e["metadata"]["name"], e["note"], e["series"], e["reportingInstance"]]);
        Value::from(mark.since(c.cp, &c.ns, "RollingRestart").iter().map(brief).collect::<Vec<_>>())
    };
    let missing = missing();
    assert!(missing.is_empty(), "no RollingRestart Event names brokers {missing:?}; new or repeated ones: {}", seen());
    for id in kept {
        assert!(restarts_of(c, mark, *id).is_empty(), "a RollingRestart Event names broker {id}: {}", seen());
    }
}

/// A per-broker read-only change restarts that broker alone, and says so in an Event.
#[test]
fn a_per_broker_change_restarts_only_that_broker() {
    let mut g = cluster();
    let c = &mut *g;
    let uids_before = c.pods();
    let mark = c.events_now();
    let current = c.desired["spec"]["brokers"][1]["readOnlyConfig"].as_str().map(String::from);
    let change = other(current.as_deref(), "num.io.threads=9\n", "num.io.threads=10\n");
    c.desired["spec"]["brokers"][1]["readOnlyConfig"] = json!(change);
    c.apply_desired();
    c.wait("broker 1 alone restarted", 120, |c| {
        let uids = c.pods();
        uids.get(PODS[1]) != uids_before.get(PODS[1]) && settled(&c.kc())
    });
    let uids_after = c.pods();
    for other in [PODS[0], PODS[2]] {
        assert_eq!(uids_before.get(other), uids_after.get(other), "{other} was restarted");
    }
    let cm = get_json(c.cp, &["get", "configmap", "kafka-combined-config-1", "-n", &c.ns]);
    assert!(cm["data"]["broker-config"].as_str().unwrap().contains(change.trim()), "{cm}");
    assert_restart_events(c, &mark, &[1], &[0, 2]);
}

/// A hung broker that Kubernetes still sees Ready: Kafka fences it, and the roll waits until
/// it is back, without restarting it.
#[test]
fn a_hung_broker_stops_the_roll() {
    let mut g = cluster();
    let c = &mut *g;
    c.paused.insert(PODS[2]);
    c.node.pause(PODS[2]).unwrap();
    let paused = Instant::now();
    c.wait("broker 2 fenced by the controller", 60, |c| c.live_brokers().is_some_and(|b| !b.contains(&2)));
    eprintln!("FIGURE: paused broker fenced by Kafka {} s after SIGSTOP", paused.elapsed().as_secs());
    let uids_before = c.pods();
    let mark = c.events_now();
    let current = c.desired["spec"]["brokers"][0]["readOnlyConfig"].as_str().map(String::from);
    c.desired["spec"]["brokers"][0]["readOnlyConfig"] =
        json!(other(current.as_deref(), "num.io.threads=7\n", "num.io.threads=6\n"));
    c.apply_desired();
    // The first pass may time out on the hung broker (it still accepts connections) and say
    // that it cannot read the quorum; the client then asks the other brokers first.
    c.wait("the roll waits, naming the hung broker", 60, |c| {
        let kc = c.kc();
        condition(&kc, "Ready").is_some_and(|c| c.1 == "RollingRestartWaiting")
            && kc["status"]["conditions"].to_string().contains("[2] are unhealthy")
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(c.pods(), uids_before, "a broker restarted while another was hung");
    c.node.resume(PODS[2]).unwrap();
    c.paused.remove(PODS[2]);
    c.wait("broker 0 restarted once broker 2 recovered", 120, |c| {
        c.pods().get(PODS[0]) != uids_before.get(PODS[0]) && settled(&c.kc())
    });
    assert_eq!(c.pods().get(PODS[2]), uids_before.get(PODS[2]), "the recovered broker was restarted");
    assert_restart_events(c, &mark, &[0], &[1, 2]);
}

/// A deleted broker Pod comes back on the same PVC, with its data.
#[test]
fn a_deleted_pod_comes_back_on_its_pvc_with_its_data() {
    let c = cluster();
    c.wait("orders fully in sync", 60, |c| fully_in_sync(&c.admin, "orders"));
    let uid = c.pods()[PODS[1]].clone();
    c.cp.kubectl(&["delete", "pod", PODS[1], "-n", &c.ns, "--wait=false"]).unwrap();
    c.wait("pod 1 recreated and Ready", 120, |c| c.pods().get(PODS[1]).is_some_and(|u| *u != uid) && settled(&c.kc()));
    c.wait("orders back in sync on broker 1", 60, |c| fully_in_sync(&c.admin, "orders"));
    let log = std::fs::read_to_string(c.node.broker_log(PODS[1]).unwrap()).unwrap();
    // Kafka logs "Completed load of Log(dir=…/orders-N, …)" only for partition logs it found on disk.
    assert!(
        log.lines().any(|l| l.contains("Completed load of Log(") && l.contains("orders-")),
        "broker 1 did not find the orders partitions on its PVC:\n{}",
        log.lines().filter(|l| l.contains("load")).take(10).collect::<Vec<_>>().join("\n")
    );
}

/// An invalid spec that slipped past admission (no webhook here) sets Degraded and touches
/// nothing; putting the valid spec back touches nothing either.
#[test]
fn an_invalid_spec_touches_nothing() {
    let c = cluster();
    let (cp, ns) = (c.cp, c.ns.as_str());
    let before = resource_versions(cp, ns);
    let unchanged = |what: &str| {
        let after = resource_versions(cp, ns);
        for (k, v) in &before {
            if !k.starts_with("kafkaclusters/") {
                assert_eq!(after.get(k), Some(v), "{k} touched {what}");
            }
        }
    };
    let mut bad = c.desired.clone();
    bad["spec"]["brokers"][1]["id"] = json!(0);
    c.apply(&bad);
    c.wait("InvalidSpec", 60, |c| {
        condition(&c.kc(), "Degraded").is_some_and(|c| c == ("True".into(), "InvalidSpec".into()))
    });
    std::thread::sleep(Duration::from_secs(2));
    unchanged("while the spec is invalid");

    c.apply_desired();
    c.wait("settled on the valid spec again", 60, |c| {
        let kc = c.kc();
        settled(&kc) && condition(&kc, "Degraded").is_some_and(|d| d.1 != "InvalidSpec")
    });
    unchanged("when the valid spec came back");
}

/// `/metrics` (OpenMetrics, per-controller series), `/readyz`, `/healthz`, and the leader
/// Lease of the operator that runs the shared cluster.
#[test]
fn metrics_readyz_and_leadership() {
    let c = cluster();
    let port = c.op.port;
    let text = metrics_text(port).expect("/metrics answers");
    assert!(text.trim_end().ends_with("# EOF"), "not OpenMetrics text:\n{text}");
    assert_eq!(sample(&text, "koperator_leader", &[]), Some(1.0), "{text}");
    let ok = sample(&text, "koperator_reconciles_total", &[("controller", "kafkacluster"), ("result", "ok")]);
    assert!(ok.is_some_and(|n| n >= 1.0), "{text}");
    let timed = sample(&text, "koperator_reconcile_duration_seconds_count", &[("controller", "kafkacluster")]);
    assert!(timed.is_some_and(|n| n >= 1.0), "{text}");
    assert!(http_get(port, "/readyz").starts_with("HTTP/1.1 200"));
    assert!(http_get(port, "/healthz").starts_with("HTTP/1.1 200"));
    assert_eq!(lease_holder(c.cp, LEASE).as_deref(), Some(c.op.identity.as_str()));
}

/// Deleting a KafkaCluster removes its Pods, ConfigMaps and Services (owner references) and
/// keeps its PVCs. On a 1-node (broker + controller) cluster of its own, since it destroys
/// what it runs on.
#[test]
fn deleting_a_cluster_keeps_its_pvcs() {
    const NAME: &str = "kafka-single";
    let cp = shared();
    let ns = cp.namespace("kafka-del").unwrap();
    let ns_name = ns.name.clone();
    let node = Node::start(&cp.kubeconfig, &ns_name).unwrap();
    let hosts = format!("--kafka-hosts-file={}", node.hosts_file.display());
    let op = start_operator(cp, &ns_name, "kafka-del", "kafka-del", std::slice::from_ref(&hosts));
    let mut desired = combined_sample();
    desired["metadata"]["name"] = json!(NAME);
    desired["spec"]["brokers"].as_array_mut().unwrap().truncate(1);
    desired["spec"]["brokerConfigGroups"]["default"]["kafkaHeapOpts"] = json!("-Xmx256m -Xms256m");
    desired["spec"]["readOnlyConfig"] =
        json!("auto.create.topics.enable=false\noffsets.topic.replication.factor=1\nmin.insync.replicas=1\n");
    apply(cp, &ns_name, &desired);
    let get = || get_json(cp, &["get", "kafkacluster", NAME, "-n", &ns_name]);
    wait_for("the 1-node cluster Running", Duration::from_secs(180), &op, || {
        let kc = get();
        settled(&kc) && condition(&kc, "Ready").is_some_and(|c| c.0 == "True")
    });
    let selector = format!("kafka_cr={NAME}");
    let count =
        |kind: &str| get_json(cp, &["get", kind, "-n", &ns_name, "-l", &selector])["items"].as_array().unwrap().len();
    assert_eq!(count("pods"), 1);
    assert!(count("configmaps") >= 1 && count("services") >= 1);
    let pvcs = count("persistentvolumeclaims");
    assert_eq!(pvcs, 1);

    cp.kubectl(&["delete", "kafkacluster", NAME, "-n", &ns_name, "--timeout=60s"]).unwrap();
    wait_for("Pods, ConfigMaps and Services garbage-collected", Duration::from_secs(60), &op, || {
        ["pods", "configmaps", "services"].iter().all(|k| count(k) == 0)
    });
    assert_eq!(count("persistentvolumeclaims"), pvcs, "PVCs are kept when the cluster is deleted");
    drop(op);
    drop(node);
}

/// ZooKeeper mode on Kafka 3.9 with a real ZooKeeper: the cluster forms and a spec change rolls
/// it with at most one broker down and every partition back in sync.
#[test]
fn zookeeper_mode_cluster_rolls_on_real_kafka() {
    let cp = shared();
    let zk = koperator_e2e::kafka::ZooKeeper::start(Duration::from_secs(60)).unwrap();
    let ns = cp.namespace("kafka-zk").unwrap();
    let ns_name = ns.name.clone();
    let node = Node::start(&cp.kubeconfig, &ns_name).unwrap();
    let hosts = format!("--kafka-hosts-file={}", node.hosts_file.display());
    let op = start_operator(cp, &ns_name, "kafka-zk", "kafka-zk", std::slice::from_ref(&hosts));
    let sample = std::fs::read_to_string(repo_root().join("config/samples/simplekafkacluster.yaml")).unwrap();
    let mut desired: Value = serde_saphyr::from_str(&sample).unwrap();
    desired["spec"]["zkAddresses"] = json!([zk.address]);
    desired["spec"]["zkPath"] = json!("/kafka-e2e");
    // The sample asks for Cruise Control (topicConfig); this test is about ZooKeeper mode, so its
    // brokers run without the metrics reporter and no Cruise Control is deployed.
    desired["spec"]["cruiseControlConfig"] = json!({});
    desired["spec"]["brokerConfigGroups"]["default"]["kafkaHeapOpts"] = json!("-Xmx384m -Xms384m");
    let read_only = desired["spec"]["readOnlyConfig"].as_str().unwrap().to_string();
    desired["spec"]["readOnlyConfig"] = json!(read_only.clone() + "offsets.topic.replication.factor=3\n");
    let applied = Instant::now();
    apply(cp, &ns_name, &desired);
    let get = || get_json(cp, &["get", "kafkacluster", "kafka-zk", "-n", &ns_name]);
    wait_for("ZooKeeper-mode cluster Running", Duration::from_secs(240), &op, || settled(&get()));
    eprintln!(
        "FIGURE: 3 ZooKeeper-mode brokers (Kafka 3.9) Running {} s after kubectl apply",
        applied.elapsed().as_secs()
    );

    let bootstrap =
        (0..3).map(|i| format!("kafka-zk-{i}.kafka-zk-headless.{ns_name}.svc.cluster.local:29092")).collect();
    let admin = Admin::new(
        bootstrap,
        ConnectOptions {
            resolver: Resolver::with_hosts_file(Some(node.hosts_file.clone())),
            ..ConnectOptions::default()
        },
    );
    let meta = rt().block_on(admin.metadata(Some(&[]))).unwrap();
    assert_eq!(meta.brokers.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
    rt().block_on(admin.create_topic(&NewTopic {
        name: "zk-orders".into(),
        partitions: 6,
        replication_factor: 3,
        configs: BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]),
    }))
    .unwrap();
    wait_for("zk-orders in sync", Duration::from_secs(60), &op, || fully_in_sync(&admin, "zk-orders"));

    let pods = ["kafka-zk-0", "kafka-zk-1", "kafka-zk-2"];
    let uids = pod_uids(cp, &ns_name);
    let roll_started = Instant::now();
    desired["spec"]["readOnlyConfig"] =
        json!(read_only + "offsets.topic.replication.factor=3\nnum.network.threads=5\n");
    apply(cp, &ns_name, &desired);
    wait_for("every ZooKeeper-mode broker restarted", Duration::from_secs(300), &op, || {
        let now = pod_uids(cp, &ns_name);
        pods.iter().all(|p| now.contains_key(*p) && now.get(*p) != uids.get(*p)) && settled(&get())
    });
    let max_down = node.max_down(&pods, roll_started);
    assert!(max_down <= 1, "{max_down} brokers were down at once");
    wait_for("zk-orders in sync after the roll", Duration::from_secs(60), &op, || fully_in_sync(&admin, "zk-orders"));
    eprintln!(
        "FIGURE: health-gated roll of 3 ZooKeeper-mode brokers in {} s, at most {max_down} down at a time",
        roll_started.elapsed().as_secs()
    );
    cp.kubectl(&["delete", "kafkacluster", "kafka-zk", "-n", &ns_name, "--timeout=60s"]).unwrap();
    drop(node);
    drop(zk);
}

fn scram_user(name: &str, cluster_ns: &str, grants: Value) -> Value {
    json!({
        "apiVersion": "kafka.banzaicloud.io/v1alpha1",
        "kind": "KafkaUser",
        "metadata": {"name": name, "annotations": {"koperator.banzaicloud.io/credentials": "scram-sha-512"}},
        "spec": {"secretName": format!("{name}-credentials"), "clusterRef": {"name": CLUSTER, "namespace": cluster_ns}, "topicGrants": grants},
    })
}

/// The Ready condition's (status, reason) of `kind/name` in `ns`.
fn ready_of(cp: &ControlPlane, ns: &str, kind: &str, name: &str) -> Option<(String, String)> {
    condition(&get_json(cp, &["get", kind, name, "-n", ns]), "Ready")
}

fn acls_of(admin: &Admin, principal: &str) -> BTreeSet<koperator_shared::kafka::AclBinding> {
    rt().block_on(admin.describe_acls(&koperator_shared::kafka::AclFilter::principal(principal)))
        .unwrap()
        .into_iter()
        .collect()
}

fn describe_acl(principal: &str, topic: &str) -> koperator_shared::kafka::AclBinding {
    use koperator_shared::kafka::{AclBinding, AclOperation, PatternType, ResourceType};
    AclBinding::allow(principal, ResourceType::Topic, topic, PatternType::Literal, AclOperation::Describe)
}

/// In the cluster's own namespace, a KafkaUser never takes what it did not create: a SCRAM
/// credential and ACLs that exist before it (`PrincipalInUse`: no Secret, nothing changed,
/// nothing deleted with it), an ACL added outside it on its own principal (kept when the
/// grants shrink and when it is deleted), a Secret of its `secretName` it does not own
/// (`SecretNotOwned`: not read, not changed, no credential made from it).
#[test]
fn kafkausers_never_take_what_is_not_theirs() {
    let c = cluster();
    let (cp, ns, admin) = (c.cp, c.ns.as_str(), &c.admin);
    // A principal in use before any KafkaUser.
    rt().block_on(admin.upsert_scram_credential("mallory", "set-by-someone-else")).unwrap();
    rt().block_on(admin.create_acls(&[describe_acl("User:mallory", "theirs")])).unwrap();
    c.apply(&scram_user("mallory", ns, json!([{"topicName": "payments", "accessType": "read"}])));
    c.wait("mallory refused", 60, |_| {
        ready_of(cp, ns, "kafkauser", "mallory").is_some_and(|r| r.1 == "PrincipalInUse")
    });
    assert_eq!(acls_of(admin, "User:mallory"), BTreeSet::from([describe_acl("User:mallory", "theirs")]));
    assert!(cp.kubectl(&["get", "secret", "mallory-credentials", "-n", ns]).is_err(), "a Secret was made");
    cp.kubectl(&["delete", "kafkauser", "mallory", "-n", ns, "--timeout=60s"]).unwrap();
    assert!(rt().block_on(admin.has_scram_credential("mallory")).unwrap(), "the foreign credential was deleted");
    assert_eq!(acls_of(admin, "User:mallory").len(), 1, "the foreign ACL was deleted");

    // An ACL added outside the operator on a principal the KafkaUser owns stays.
    let mut erin = scram_user("erin", ns, json!([{"topicName": "payments", "accessType": "read"}]));
    c.apply(&erin);
    c.wait("erin ready", 60, |_| ready_of(cp, ns, "kafkauser", "erin").is_some_and(|r| r.0 == "True"));
    let st = get_json(cp, &["get", "kafkauser", "erin", "-n", ns])["status"].clone();
    assert_eq!((st["principal"].as_str(), st["scramCredential"].as_str()), (Some("User:erin"), Some("erin")), "{st}");
    rt().block_on(admin.create_acls(&[describe_acl("User:erin", "side")])).unwrap();
    erin["spec"]["topicGrants"] = json!([]);
    c.apply(&erin);
    c.wait("erin's own ACLs removed", 60, |_| {
        acls_of(admin, "User:erin") == BTreeSet::from([describe_acl("User:erin", "side")])
    });
    cp.kubectl(&["delete", "kafkauser", "erin", "-n", ns, "--timeout=60s"]).unwrap();
    assert!(!rt().block_on(admin.has_scram_credential("erin")).unwrap(), "erin's own credential goes");
    assert_eq!(acls_of(admin, "User:erin").len(), 1, "the ACL made outside the operator was deleted");

    // A Secret of that name that the KafkaUser does not own.
    let planted = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "carol-credentials"},
        "stringData": {"password": "known-to-the-planter"}});
    c.apply(&planted);
    let version =
        get_json(cp, &["get", "secret", "carol-credentials", "-n", ns])["metadata"]["resourceVersion"].clone();
    c.apply(&scram_user("carol", ns, json!([])));
    c.wait("carol refused", 60, |_| ready_of(cp, ns, "kafkauser", "carol").is_some_and(|r| r.1 == "SecretNotOwned"));
    assert!(!rt().block_on(admin.has_scram_credential("carol")).unwrap(), "a credential from the planted password");
    cp.kubectl(&["delete", "kafkauser", "carol", "-n", ns, "--timeout=60s"]).unwrap();
    let after = get_json(cp, &["get", "secret", "carol-credentials", "-n", ns]);
    assert_eq!(after["metadata"]["resourceVersion"], version, "the planted Secret was changed");
    // Leave Kafka as the test found it.
    rt().block_on(async {
        admin.delete_scram_credential("mallory").await.unwrap();
        let filters =
            [describe_acl("User:mallory", "theirs").to_filter(), describe_acl("User:erin", "side").to_filter()];
        admin.delete_acls(&filters).await.unwrap();
    });
    cp.kubectl(&["delete", "secret", "carol-credentials", "-n", ns]).unwrap();
}

/// Namespaces are a boundary, checked by the operator itself (these objects never pass a
/// webhook): from another namespace, a KafkaUser and a KafkaTopic are `Forbidden` and touch
/// nothing until the cluster's `allowed-namespaces` lists that namespace; then a KafkaUser
/// with the name of one in the cluster's namespace (same principal) is `PrincipalInUse` and
/// its deletion leaves the other's credential and ACLs, and a KafkaTopic adopting a topic
/// another KafkaTopic manages is `TopicInUse` and neither changes nor deletes it.
#[test]
fn namespaces_are_a_boundary_for_the_operator() {
    let c = cluster();
    let (cp, ns, admin) = (c.cp, c.ns.clone(), &c.admin);
    let ns = ns.as_str();
    let team = cp.namespace("team").unwrap();
    let team = team.name.as_str();
    let op = start_operator(cp, team, "kafka-team", &next_identity(), std::slice::from_ref(&c.hosts));
    let wait = |what: &str, check: &dyn Fn() -> bool| wait_for(what, Duration::from_secs(60), &op, check);
    let mut topic_b = topic("team-events", 1, json!({}));
    topic_b["spec"]["clusterRef"]["namespace"] = json!(ns);
    apply(cp, team, &scram_user("frank", ns, json!([{"topicName": "payments", "accessType": "read"}])));
    apply(cp, team, &topic_b);
    wait("frank and team-events Forbidden", &|| {
        ready_of(cp, team, "kafkauser", "frank").is_some_and(|r| r.1 == "Forbidden")
            && ready_of(cp, team, "kafkatopic", "team-events").is_some_and(|r| r.1 == "Forbidden")
    });
    let msg = get_json(cp, &["get", "kafkauser", "frank", "-n", team])["status"]["conditions"].to_string();
    assert!(
        msg.contains(&format!("add '{team}' to the cluster's annotation koperator.banzaicloud.io/allowed-namespaces")),
        "{msg}"
    );
    assert!(!rt().block_on(admin.has_scram_credential("frank")).unwrap() && acls_of(admin, "User:frank").is_empty());
    assert_eq!(partitions(admin, "team-events"), None, "a forbidden KafkaTopic created its topic");

    // Allowed: both act.
    let allow = format!("koperator.banzaicloud.io/allowed-namespaces={team}");
    cp.kubectl(&["annotate", "kafkacluster", CLUSTER, "-n", ns, &allow]).unwrap();
    cp.kubectl(&["annotate", "kafkauser,kafkatopic", "--all", "-n", team, "resync=1", "--overwrite"]).unwrap();
    wait("frank and team-events act once allowed", &|| {
        ready_of(cp, team, "kafkauser", "frank").is_some_and(|r| r.0 == "True")
            && partitions(admin, "team-events") == Some(1)
    });

    // The same principal from two namespaces: the second one takes nothing.
    c.apply(&scram_user("grace", ns, json!([{"topicName": "payments", "accessType": "read"}])));
    c.wait("grace ready", 60, |_| ready_of(cp, ns, "kafkauser", "grace").is_some_and(|r| r.0 == "True"));
    let graces = acls_of(admin, "User:grace");
    apply(cp, team, &scram_user("grace", ns, json!([{"topicName": "*", "accessType": "write"}])));
    wait("the second grace refused", &|| {
        ready_of(cp, team, "kafkauser", "grace").is_some_and(|r| r.1 == "PrincipalInUse")
    });
    cp.kubectl(&["delete", "kafkauser", "grace", "-n", team, "--timeout=60s"]).unwrap();
    assert_eq!(acls_of(admin, "User:grace"), graces, "the second grace changed the first one's ACLs");
    assert!(rt().block_on(admin.has_scram_credential("grace")).unwrap(), "the second grace deleted the credential");
    assert_eq!(ready_of(cp, ns, "kafkauser", "grace").map(|r| r.0), Some("True".into()));

    // A topic another KafkaTopic manages is not adopted, changed or deleted.
    c.apply(&topic("owned", 1, json!({"retention.ms": "3600000"})));
    c.wait("owned created", 60, |_| ready_of(cp, ns, "kafkatopic", "owned").is_some_and(|r| r.0 == "True"));
    let owned = topic_status(cp, ns, "owned");
    assert_eq!(
        owned["status"]["managedBy"], "koperator",
        "the KafkaTopic that created its topic does not manage it: {owned}"
    );
    let mut thief = topic("owned", 1, json!({"retention.ms": "60000"}));
    thief["metadata"]["annotations"] = json!({"managedBy": "koperator"});
    thief["spec"]["clusterRef"]["namespace"] = json!(ns);
    apply(cp, team, &thief);
    wait("the adopter refused", &|| ready_of(cp, team, "kafkatopic", "owned").is_some_and(|r| r.1 == "TopicInUse"));
    cp.kubectl(&["delete", "kafkatopic", "owned", "-n", team, "--timeout=60s"]).unwrap();
    assert_eq!(partitions(admin, "owned"), Some(1), "the adopter deleted the topic");
    let retention = topic_config(admin, "owned", "retention.ms").and_then(|c| c.value);
    assert_eq!(retention.as_deref(), Some("3600000"), "the adopter changed the topic");

    // A topic nobody manages (made with Kafka's tools) is adopted only from the cluster's
    // namespace: a tenant elsewhere neither changes it nor, on deletion, deletes it.
    rt().block_on(admin.create_topic(&NewTopic {
        name: "legacy".into(),
        partitions: 1,
        replication_factor: 1,
        configs: BTreeMap::from([("retention.ms".to_string(), "3600000".to_string())]),
    }))
    .unwrap();
    let mut adopter = topic("legacy", 1, json!({"retention.ms": "60000"}));
    adopter["metadata"]["annotations"] = json!({"managedBy": "koperator"});
    adopter["spec"]["clusterRef"]["namespace"] = json!(ns);
    apply(cp, team, &adopter);
    wait("the cross-namespace adopter refused", &|| {
        ready_of(cp, team, "kafkatopic", "legacy").is_some_and(|r| r.1 == "AdoptionForbidden")
    });
    cp.kubectl(&["delete", "kafkatopic", "legacy", "-n", team, "--timeout=60s"]).unwrap();
    assert_eq!(partitions(admin, "legacy"), Some(1), "the cross-namespace adopter deleted the topic");
    let retention = topic_config(admin, "legacy", "retention.ms").and_then(|c| c.value);
    assert_eq!(retention.as_deref(), Some("3600000"), "the cross-namespace adopter changed the topic");
    rt().block_on(admin.delete_topic("legacy")).unwrap();

    // One principal per cluster, even for a KafkaUser that has nothing in Kafka (no grants,
    // no SCRAM): the claim in its status is what a second one (no webhook here) meets.
    let mut henry = scram_user("henry", ns, json!([]));
    henry["metadata"]["annotations"] = json!({});
    c.apply(&henry);
    c.wait("henry ready", 60, |_| ready_of(cp, ns, "kafkauser", "henry").is_some_and(|r| r.0 == "True"));
    henry["spec"]["topicGrants"] = json!([{"topicName": "*", "accessType": "write"}]);
    apply(cp, team, &henry);
    wait("the second henry refused", &|| {
        ready_of(cp, team, "kafkauser", "henry").is_some_and(|r| r.1 == "PrincipalInUse")
    });
    let msg = get_json(cp, &["get", "kafkauser", "henry", "-n", team])["status"]["conditions"].to_string();
    assert!(msg.contains(&format!("claimed by KafkaUser {ns}/henry")), "{msg}");
    assert!(
        acls_of(admin, "User:CN=henry").is_empty() && acls_of(admin, "User:henry").is_empty(),
        "the second henry wrote ACLs"
    );

    // Leave the cluster as the test found it.
    cp.kubectl(&["delete", "kafkauser,kafkatopic", "--all", "-n", team, "--timeout=60s"]).unwrap();
    cp.kubectl(&["delete", "kafkauser", "grace", "-n", ns, "--timeout=60s"]).unwrap();
    cp.kubectl(&["delete", "kafkauser", "henry", "-n", ns, "--timeout=60s"]).unwrap();
    cp.kubectl(&["delete", "kafkatopic", "owned", "-n", ns, "--timeout=60s"]).unwrap();
    let remove = "koperator.banzaicloud.io/allowed-namespaces-";
    cp.kubectl(&["annotate", "kafkacluster", CLUSTER, "-n", ns, remove]).unwrap();
    assert!(!rt().block_on(admin.has_scram_credential("frank")).unwrap(), "frank's credential goes with frank");
}

/// `GET /metrics` (HTTP/1.0: the exporter's JDK server then answers unchunked) on `ip`:9020,
/// the body; `None` when the exporter does not answer 200.
fn exporter_metrics(ip: &str) -> Option<String> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::new(ip.parse().ok()?, 9020);
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// Every broker runs the Prometheus JMX exporter its Pod's `KAFKA_OPTS` loads (the test node
/// runs the real jmx_prometheus_javaagent with the rendered `<cluster>-kafka-jmx-exporter`
/// ConfigMap, on the Pod's IP): it serves the default rules' families with live values, and
/// the operator writes the release it reports to `status.brokersState[<id>].version`.
#[test]
fn brokers_export_jmx_metrics_and_the_status_names_their_release() {
    let c = cluster();
    let pods = get_json(c.cp, &["get", "pods", "-n", &c.ns, "-l", &format!("kafka_cr={CLUSTER}")]);
    let pods = pods["items"].as_array().unwrap().clone();
    assert_eq!(pods.len(), 3);
    let mut releases = BTreeMap::new();
    let mut active_controllers = 0.0;
    for pod in &pods {
        let id = pod["metadata"]["labels"]["brokerId"].as_str().unwrap().to_string();
        let ip = pod["status"]["podIP"].as_str().unwrap().to_string();
        let kafka = pod["spec"]["containers"].as_array().unwrap().iter().find(|c| c["name"] == "kafka").unwrap();
        let opts = kafka["env"].as_array().unwrap().iter().find(|e| e["name"] == "KAFKA_OPTS").unwrap();
        assert_eq!(opts["value"], "-javaagent:/opt/jmx-exporter/jmx_prometheus.jar=9020:/etc/jmx-exporter/config.yaml");
        // The release the test node runs for this Pod.
        let props = "process.roles=broker,controller";
        let release = koperator_e2e::kafka::Dist::for_pod(props, kafka["image"].as_str().unwrap()).version().unwrap();
        let text = exporter_metrics(&ip).unwrap_or_else(|| panic!("broker {id}: nothing serves {ip}:9020/metrics"));
        let families: BTreeSet<String> = text.lines().filter_map(parse_sample).map(|(n, _, _)| n).collect();
        let has = |name: &str| families.contains(name);
        assert_eq!(
            sample(&text, "kafka_server_app_info_version", &[("broker_id", &id), ("version", &release)]),
            Some(1.0),
            "broker {id}: no release {release} in:\n{}",
            text.lines().filter(|l| l.contains("app_info")).collect::<Vec<_>>().join("\n")
        );
        for name in [
            "kafka_server_replicamanager_underreplicatedpartitions",
            "kafka_server_replicamanager_underminisrpartitioncount",
            "kafka_server_replicamanager_partitioncount",
            "kafka_server_brokertopicmetrics_messagesin_total",
            "kafka_server_brokertopicmetrics_bytesin_total",
            "kafka_controller_kafkacontroller_activecontrollercount",
            "kafka_controller_kafkacontroller_offlinepartitionscount",
            "kafka_network_requestmetrics_requests_total",
            "kafka_network_requestmetrics_totaltimems",
            "kafka_log_log_size",
        ] {
            assert!(has(name), "broker {id}: {name} missing; kafka_* families: {:?}", {
                families.iter().filter(|f| f.starts_with("kafka_")).collect::<Vec<_>>()
            });
        }
        assert!(families.iter().any(|f| f.starts_with("jvm_")), "broker {id}: no JVM metrics: {families:?}");
        // Live values: the settled cluster has every partition in sync, and `orders` (RF 3) has
        // a log on every broker.
        assert_eq!(sample_sum(&text, "kafka_server_replicamanager_underreplicatedpartitions", &[]), Some(0.0));
        assert!(sample_sum(&text, "kafka_log_log_size", &[("topic", "orders")]).is_some(), "broker {id}");
        // Live request counts: a DescribeConfigs the test sends to this broker itself is
        // counted by its exporter (Fetch counts depend on which partitions it leads, which the
        // earlier tests' rolls move around).
        let described = |text: &str| {
            sample_sum(text, "kafka_network_requestmetrics_requests_total", &[("request", "DescribeConfigs")])
                .unwrap_or_default()
        };
        let before = described(&text);
        let broker: i32 = id.parse().unwrap();
        rt().block_on(c.admin.describe_configs(&ConfigResource::Broker(broker)))
            .unwrap_or_else(|e| panic!("broker {id}: DescribeConfigs: {e}"));
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut latest = exporter_metrics(&ip).unwrap_or_default();
        while described(&latest) <= before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_secs(2));
            latest = exporter_metrics(&ip).unwrap_or_default();
        }
        assert!(
            described(&latest) > before,
            "broker {id}: the DescribeConfigs sent to it is not counted (was {before}):\n{}",
            latest.lines().filter(|l| l.contains("requestmetrics_requests_total")).collect::<Vec<_>>().join("\n")
        );
        active_controllers +=
            sample_sum(&text, "kafka_controller_kafkacontroller_activecontrollercount", &[]).unwrap_or_default();
        releases.insert(id, release);
    }
    assert_eq!(active_controllers, 1.0, "exactly one broker is the active controller");
    eprintln!("FIGURE: brokers' exporters report releases {releases:?}");
    assert!(releases.values().all(|r| r == "4.1.1"), "the shared cluster runs Kafka 4.1.1: {releases:?}");
    c.wait("status.brokersState[*].version from the exporters", 60, |c| {
        let states = c.kc()["status"]["brokersState"].clone();
        releases.iter().all(|(id, r)| states[id]["version"] == *r.as_str())
    });
}

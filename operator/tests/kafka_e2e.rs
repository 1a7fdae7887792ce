//! The operator on a real API server with real Kafka: every broker Pod it creates runs as an
//! Apache Kafka process (KRaft) from the operator's own rendered config, started by the test
//! node (`koperator_e2e::node`). Covers: the cluster comes up and forms a quorum; a no-op
//! reconcile writes nothing; dynamic configs apply without a restart; a per-broker change
//! restarts that broker alone; a hung broker that Kubernetes still sees Ready stops the roll
//! (Kafka says it is unhealthy); a cluster-wide roll keeps at most one broker down and every
//! partition in sync, even with the operator killed mid-roll; a deleted Pod comes back on its
//! PVC with its data; an invalid spec touches nothing; deletion keeps PVCs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use koperator_e2e::node::Node;
use koperator_e2e::shared;
use koperator_e2e::tools::repo_root;
use koperator_shared::kafka::{Admin, ConfigResource, ConfigSource, ConnectOptions, NewTopic, Resolver};
use serde_json::{Value, json};

const CLUSTER: &str = "kafka-combined";
const PODS: [&str; 3] = ["kafka-combined-0", "kafka-combined-1", "kafka-combined-2"];

fn admin(node: &Node, ns: &str) -> Admin {
    let bootstrap = (0..3).map(|i| format!("{CLUSTER}-{i}.{CLUSTER}-headless.{ns}.svc.cluster.local:29092")).collect();
    let opts = ConnectOptions {
        resolver: Resolver::with_hosts_file(Some(node.hosts_file.clone())),
        ..ConnectOptions::default()
    };
    Admin::new(bootstrap, opts)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// The read-only config the test cluster adds to the sample: ACLs enforced, and SCRAM on the
/// client listener `sasl`. The PLAINTEXT listeners (brokers, controllers, operator) are
/// ANONYMOUS, made super user here; a production cluster would use mTLS there.
const SECURITY: &str = "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
";

/// The sample with a small heap (several JVMs share this machine), ACLs and a SCRAM listener.
fn spec() -> Value {
    let sample = std::fs::read_to_string(repo_root().join("config/samples/kafkacluster_kraft_combined.yaml")).unwrap();
    let mut v: Value = serde_saphyr::from_str(&sample).unwrap();
    v["spec"]["brokerConfigGroups"]["default"]["kafkaHeapOpts"] = json!("-Xmx384m -Xms384m");
    v["spec"]["readOnlyConfig"] = json!(v["spec"]["readOnlyConfig"].as_str().unwrap().to_string() + SECURITY);
    v["spec"]["listenersConfig"]["internalListeners"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "sasl_plaintext", "name": "sasl", "containerPort": 29094}));
    v
}

fn apply(cp: &koperator_e2e::ControlPlane, ns: &str, v: &Value) {
    cp.kubectl_stdin(&["apply", "-n", ns, "-f", "-"], Some(&v.to_string())).unwrap();
}

fn kc(cp: &koperator_e2e::ControlPlane, ns: &str) -> Value {
    get_json(cp, &["get", "kafkacluster", CLUSTER, "-n", ns])
}

/// Every partition of `topic` has all its replicas in sync.
fn fully_in_sync(admin: &Admin, topic: &str) -> bool {
    rt().block_on(admin.metadata(Some(&[topic])))
        .ok()
        .and_then(|m| m.topic(topic).map(|t| t.partitions.iter().all(|p| p.isr.len() == p.replicas.len())))
        .unwrap_or(false)
}

fn topic(name: &str, partitions: i32, config: Value) -> Value {
    json!({
        "apiVersion": "kafka.banzaicloud.io/v1alpha1",
        "kind": "KafkaTopic",
        "metadata": {"name": name},
        "spec": {"name": name, "partitions": partitions, "replicationFactor": 3, "config": config, "clusterRef": {"name": CLUSTER}},
    })
}

fn topic_status(cp: &koperator_e2e::ControlPlane, ns: &str, name: &str) -> Value {
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
fn topics_through_kubectl(
    cp: &koperator_e2e::ControlPlane,
    ns: &str,
    admin: &Admin,
    op: &koperator_e2e::process::Component,
) {
    let created = Instant::now();
    let mut events = topic("events", 3, json!({"retention.ms": "3600000"}));
    apply(cp, ns, &events);
    wait_for("topic events created and in sync", Duration::from_secs(60), op, || {
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
    apply(cp, ns, &events);
    wait_for("events grown and reconfigured in Kafka", Duration::from_secs(60), op, || {
        partitions(admin, "events") == Some(5)
            && topic_config(admin, "events", "cleanup.policy").is_some_and(|c| c.value.as_deref() == Some("compact"))
            && topic_config(admin, "events", "retention.ms").is_some_and(|c| c.source != ConfigSource::DynamicTopic)
    });

    // A config changed outside the operator is put back and reported.
    rt().block_on(admin.alter_configs(
        &ConfigResource::Topic("events".into()),
        &[koperator_shared::kafka::ConfigOp::Set("cleanup.policy".into(), "delete".into())],
    ))
    .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    cp.kubectl(&["annotate", "kafkatopic", "events", "-n", ns, "resync=1", "--overwrite"]).unwrap();
    wait_for("drift corrected", Duration::from_secs(60), op, || {
        topic_config(admin, "events", "cleanup.policy").is_some_and(|c| c.value.as_deref() == Some("compact"))
            && cp.kubectl(&["get", "events.events.k8s.io", "-n", ns, "-o", "json"]).unwrap().contains("DriftCorrected")
    });

    // An existing topic is not adopted without the annotation, and deleting that CR keeps it.
    apply(cp, ns, &topic("orders", 6, json!({"min.insync.replicas": "2"})));
    wait_for("orders reported as not managed", Duration::from_secs(60), op, || {
        let t = topic_status(cp, ns, "orders");
        t["status"]["managedBy"] == "unknown" && condition(&t, "Ready").is_some_and(|c| c.1 == "NotManaged")
    });
    cp.kubectl(&["delete", "kafkatopic", "orders", "-n", ns, "--timeout=60s"]).unwrap();
    assert_eq!(partitions(admin, "orders"), Some(6), "deleting an unmanaged KafkaTopic removed the Kafka topic");

    // Deleting a managed KafkaTopic deletes the Kafka topic; the keep annotation opts out.
    let mut kept = topic("kept", 1, json!({}));
    kept["metadata"]["annotations"] = json!({"koperator.banzaicloud.io/keep-topic-on-deletion": "true"});
    apply(cp, ns, &kept);
    wait_for("kept created", Duration::from_secs(60), op, || partitions(admin, "kept") == Some(1));
    cp.kubectl(&["delete", "kafkatopic", "events", "kept", "-n", ns, "--timeout=60s"]).unwrap();
    assert_eq!(partitions(admin, "events"), None, "the Kafka topic of a deleted KafkaTopic is gone");
    assert_eq!(partitions(admin, "kept"), Some(1), "the annotated topic is kept");
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
fn users_through_kubectl(
    cp: &koperator_e2e::ControlPlane,
    ns: &str,
    admin: &Admin,
    op: &koperator_e2e::process::Component,
    node: &Node,
) {
    use koperator_shared::kafka::{AclFilter, AclOperation};
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
    apply(cp, ns, &alice);
    wait_for("alice ready", Duration::from_secs(60), op, || {
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
    apply(cp, ns, &alice);
    wait_for("alice's ACLs removed", Duration::from_secs(60), op, || {
        rt().block_on(admin.describe_acls(&AclFilter::principal("User:alice"))).is_ok_and(|a| a.is_empty())
    });
    // Deleting the user removes its credential; the Secret goes with its owner.
    cp.kubectl(&["delete", "kafkauser", "alice", "-n", ns, "--timeout=60s"]).unwrap();
    wait_for("alice's credential removed", Duration::from_secs(60), op, || {
        rt().block_on(admin.has_scram_credential("alice")).is_ok_and(|has| !has)
    });
    wait_for("alice's Secret garbage-collected", Duration::from_secs(60), op, || {
        cp.kubectl(&["get", "secret", "alice-credentials", "-n", ns]).is_err()
    });
}

#[test]
fn kafkacluster_on_real_kafka() {
    let cp = shared();
    let ns = cp.namespace("kafka").unwrap();
    let ns_name = ns.name.clone();
    let node = Node::start(&cp.kubeconfig, &ns_name).unwrap();
    let hosts = format!("--kafka-hosts-file={}", node.hosts_file.display());
    let (mut op, _) = start_operator(cp, &ns_name, "kafka", "kafka", std::slice::from_ref(&hosts));
    let applied = Instant::now();
    let mut desired = spec();
    apply(cp, &ns_name, &desired);

    // The cluster forms: three brokers and a three-voter quorum, from the rendered config.
    wait_for("ClusterRunning on real brokers", Duration::from_secs(240), &op, || {
        let kc = kc(cp, &ns_name);
        kc["status"]["state"] == "ClusterRunning" && condition(&kc, "Ready").is_some_and(|c| c.0 == "True")
    });
    eprintln!(
        "FIGURE: 3 KRaft brokers Running (all Pods Ready from Kafka's own state) {} s after kubectl apply",
        applied.elapsed().as_secs()
    );
    let admin = admin(&node, &ns_name);
    rt().block_on(async {
        let cluster = admin.describe_cluster().await.unwrap();
        assert_eq!(cluster.brokers.iter().map(|b| b.id).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(
            Some(cluster.cluster_id.as_str()),
            kc(cp, &ns_name)["status"]["clusterID"].as_str(),
            "Kafka runs with the cluster id the operator chose"
        );
        let quorum = admin.describe_quorum().await.unwrap();
        assert_eq!(quorum.voters.len(), 3, "{quorum:?}");
        admin
            .create_topic(&NewTopic {
                name: "orders".into(),
                partitions: 6,
                replication_factor: 3,
                configs: BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]),
            })
            .await
            .unwrap();
    });
    wait_for("orders fully in sync", Duration::from_secs(60), &op, || fully_in_sync(&admin, "orders"));
    topics_through_kubectl(cp, &ns_name, &admin, &op);
    users_through_kubectl(cp, &ns_name, &admin, &op, &node);

    // A reconcile with nothing to do writes nothing.
    let before = resource_versions(cp, &ns_name);
    let reconciles_before = op_log(&op).matches("reconciled").count();
    let rv = cp
        .kubectl(&[
            "annotate",
            "kafkacluster",
            CLUSTER,
            "-n",
            &ns_name,
            "touch=1",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .unwrap();
    wait_for("a reconcile after the annotation", Duration::from_secs(30), &op, || {
        op_log(&op).matches("reconciled").count() > reconciles_before
    });
    std::thread::sleep(Duration::from_secs(2));
    let mut after = resource_versions(cp, &ns_name);
    assert_eq!(after.remove(&format!("kafkaclusters/{CLUSTER}")), Some(rv), "the reconcile wrote the KafkaCluster");
    let mut before = before;
    before.remove(&format!("kafkaclusters/{CLUSTER}"));
    assert_eq!(before, after, "a no-op reconcile changed objects");
    let last = op_log(&op).lines().rev().find(|l| l.contains("reconciled")).unwrap_or_default().to_string();
    assert!(last.contains("writes=0"), "{last}");

    // Dynamic configs: cluster-wide and per-broker, applied through the Admin API, no restart.
    let uids = pod_uids(cp, &ns_name);
    desired["spec"]["clusterWideConfig"] = json!("log.retention.ms=7200000\n");
    desired["spec"]["brokers"][1]["brokerConfig"] = json!({"config": "log.cleaner.threads=2\n"});
    apply(cp, &ns_name, &desired);
    let dynamic_at = Instant::now();
    wait_for("dynamic configs in Kafka", Duration::from_secs(60), &op, || {
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
    wait_for("settled after dynamic configs", Duration::from_secs(30), &op, || settled(&kc(cp, &ns_name)));
    assert_eq!(pod_uids(cp, &ns_name), uids, "a dynamic config change restarted a broker");
    let states = kc(cp, &ns_name)["status"]["brokersState"].clone();
    assert!(
        states.as_object().unwrap().values().all(|b| b["perBrokerConfigurationState"] == "PerBrokerConfigInSync"),
        "{states}"
    );
    // Removing the per-broker key deletes it from Kafka (the spec is the source of truth).
    desired["spec"]["brokers"][1].as_object_mut().unwrap().remove("brokerConfig");
    apply(cp, &ns_name, &desired);
    wait_for("per-broker key deleted in Kafka", Duration::from_secs(60), &op, || {
        rt().block_on(admin.describe_configs(&ConfigResource::Broker(1)))
            .unwrap_or_default()
            .iter()
            .any(|e| e.name == "log.cleaner.threads" && e.source != ConfigSource::DynamicBroker)
    });

    // A per-broker read-only change restarts that broker alone.
    let uids_before = pod_uids(cp, &ns_name);
    desired["spec"]["brokers"][1]["readOnlyConfig"] = json!("num.io.threads=9\n");
    apply(cp, &ns_name, &desired);
    wait_for("broker 1 alone restarted", Duration::from_secs(120), &op, || {
        let uids = pod_uids(cp, &ns_name);
        uids.get(PODS[1]) != uids_before.get(PODS[1]) && settled(&kc(cp, &ns_name))
    });
    let uids_after = pod_uids(cp, &ns_name);
    for other in [PODS[0], PODS[2]] {
        assert_eq!(uids_before.get(other), uids_after.get(other), "{other} was restarted");
    }

    // A hung broker that Kubernetes still sees Ready: Kafka fences it, and the roll waits.
    node.pause(PODS[2]).unwrap();
    let paused = Instant::now();
    wait_for("broker 2 fenced by the controller", Duration::from_secs(60), &op, || {
        rt().block_on(admin.metadata(Some(&[]))).is_ok_and(|m| !m.brokers.contains_key(&2))
    });
    eprintln!("FIGURE: paused broker fenced by Kafka {} s after SIGSTOP", paused.elapsed().as_secs());
    let uids_before = pod_uids(cp, &ns_name);
    desired["spec"]["brokers"][0]["readOnlyConfig"] = json!("num.io.threads=7\n");
    apply(cp, &ns_name, &desired);
    wait_for("the roll waits for the hung broker", Duration::from_secs(60), &op, || {
        let kc = kc(cp, &ns_name);
        condition(&kc, "Ready").is_some_and(|c| c.1 == "RollingRestartWaiting")
    });
    let message = kc(cp, &ns_name)["status"]["conditions"].to_string();
    assert!(message.contains("[2] are unhealthy"), "{message}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(pod_uids(cp, &ns_name), uids_before, "a broker restarted while another was hung");
    node.resume(PODS[2]).unwrap();
    wait_for("broker 0 restarted once broker 2 recovered", Duration::from_secs(120), &op, || {
        pod_uids(cp, &ns_name).get(PODS[0]) != uids_before.get(PODS[0]) && settled(&kc(cp, &ns_name))
    });
    assert_eq!(pod_uids(cp, &ns_name).get(PODS[2]), uids_before.get(PODS[2]), "the recovered broker was not restarted");

    // A cluster-wide change rolls every broker, one at a time with every partition back in
    // sync before the next, and survives the operator being killed in the middle.
    let roll_started = Instant::now();
    desired["spec"]["readOnlyConfig"] = json!(sample_read_only(&spec().to_string()) + "num.network.threads=5\n");
    apply(cp, &ns_name, &desired);
    wait_for("the roll to start", Duration::from_secs(60), &op, || op_log(&op).contains("restarting broker to apply"));
    op.stop(Duration::ZERO);
    let (restarted, metrics_port) = start_operator(cp, &ns_name, "kafka", "kafka-2", std::slice::from_ref(&hosts));
    op = restarted;
    wait_for("every broker restarted with the new config", Duration::from_secs(300), &op, || {
        let cms = get_json(cp, &["get", "configmaps", "-n", &ns_name, "-l", &format!("kafka_cr={CLUSTER}")]);
        let all_new = cms["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["data"]["broker-config"].as_str().unwrap().contains("num.network.threads=5"));
        all_new && settled(&kc(cp, &ns_name))
    });
    let rolled_in = roll_started.elapsed();
    let max_down = node.max_down(&PODS, roll_started);
    assert!(max_down <= 1, "{max_down} brokers were down at once during the roll");
    wait_for("orders fully in sync after the roll", Duration::from_secs(60), &op, || fully_in_sync(&admin, "orders"));
    eprintln!(
        "FIGURE: health-gated roll of 3 KRaft brokers in {} s, at most {max_down} down at a time",
        rolled_in.as_secs()
    );

    // A deleted broker Pod comes back on the same PVC, with its data.
    let uid = pod_uids(cp, &ns_name)[PODS[1]].clone();
    cp.kubectl(&["delete", "pod", PODS[1], "-n", &ns_name, "--wait=false"]).unwrap();
    wait_for("pod 1 recreated and Ready", Duration::from_secs(120), &op, || {
        pod_uids(cp, &ns_name).get(PODS[1]).is_some_and(|u| *u != uid) && settled(&kc(cp, &ns_name))
    });
    wait_for("orders back in sync on broker 1", Duration::from_secs(60), &op, || fully_in_sync(&admin, "orders"));
    let log = std::fs::read_to_string(node.broker_log(PODS[1]).unwrap()).unwrap();
    // Kafka logs "Completed load of Log(dir=…/orders-N, …)" only for partition logs it found on disk.
    assert!(
        log.lines().any(|l| l.contains("Completed load of Log(") && l.contains("orders-")),
        "broker 1 did not find the orders partitions on its PVC:\n{}",
        log.lines().filter(|l| l.contains("load")).take(10).collect::<Vec<_>>().join("\n")
    );

    // An invalid spec that slipped past admission (no webhook here) sets Degraded, touches nothing.
    let before = resource_versions(cp, &ns_name);
    let mut bad = desired.clone();
    bad["spec"]["brokers"][1]["id"] = json!(0);
    apply(cp, &ns_name, &bad);
    wait_for("InvalidSpec", Duration::from_secs(60), &op, || {
        condition(&kc(cp, &ns_name), "Degraded").is_some_and(|c| c == ("True".into(), "InvalidSpec".into()))
    });
    let after = resource_versions(cp, &ns_name);
    for (k, v) in &before {
        if !k.starts_with("kafkaclusters/") {
            assert_eq!(after.get(k), Some(v), "{k} touched while the spec is invalid");
        }
    }

    // Deleting the cluster removes Pods/ConfigMaps/Services (owner references) and keeps PVCs.
    cp.kubectl(&["delete", "kafkacluster", CLUSTER, "-n", &ns_name, "--timeout=60s"]).unwrap();
    wait_for("pods garbage-collected", Duration::from_secs(60), &op, || {
        get_json(cp, &["get", "pods", "-n", &ns_name, "-l", &format!("kafka_cr={CLUSTER}")])["items"]
            .as_array()
            .unwrap()
            .is_empty()
    });
    let kept = get_json(cp, &["get", "pvc", "-n", &ns_name, "-l", &format!("kafka_cr={CLUSTER}")]);
    assert_eq!(kept["items"].as_array().unwrap().len(), 3, "PVCs are kept when the cluster is deleted");

    let metrics = http_get(metrics_port, "/metrics");
    assert!(metrics.contains("koperator_reconciles_total{result=\"ok\"}"), "{metrics}");
    assert!(http_get(metrics_port, "/readyz").starts_with("HTTP/1.1 200"));
    let events = cp.kubectl(&["get", "events.events.k8s.io", "-n", &ns_name, "-o", "json"]).unwrap();
    for reason in ["RollingRestart", "DynamicConfigUpdated"] {
        assert!(events.contains(&format!("\"reason\": \"{reason}\"")), "no {reason} event: {events}");
    }
    op.stop(Duration::from_secs(5));
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
    let (op, _) = start_operator(cp, &ns_name, "kafka-zk", "kafka-zk", std::slice::from_ref(&hosts));
    let sample = std::fs::read_to_string(repo_root().join("config/samples/simplekafkacluster.yaml")).unwrap();
    let mut desired: Value = serde_saphyr::from_str(&sample).unwrap();
    desired["spec"]["zkAddresses"] = json!([zk.address]);
    desired["spec"]["zkPath"] = json!("/kafka-e2e");
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

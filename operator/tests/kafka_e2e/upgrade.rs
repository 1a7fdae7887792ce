//! A Kafka version upgrade on a cluster of its own (it starts on another release, so it cannot
//! share the cluster of the other tests; named to run after them, when that one is stopped):
//! three brokers on the previous release (`e2e/tools/kafka-previous/pom.xml`, named by the
//! image tag), `clusterImage` changed to the pinned release: the brokers roll onto it one at a
//! time while Kafka's verifiable clients run, and `brokersState[].version` reports what each
//! broker runs, read from its JMX exporter.

use koperator_e2e::kafka::Dist;

use super::loss::{finish, start_clients};
use super::*;

fn image(version: &str) -> String {
    format!("ghcr.io/adobe/koperator/kafka:2.13-{version}")
}

/// Each broker's `status.brokersState[id].version`.
fn versions(kc: &Value) -> Vec<Option<String>> {
    (0..3).map(|id| kc["status"]["brokersState"][id.to_string()]["version"].as_str().map(String::from)).collect()
}

#[test]
fn upgrade_kafka_version_rolls_one_broker_at_a_time_and_loses_nothing() {
    let cp = shared();
    let namespace = cp.namespace("kafka-upgrade").unwrap();
    let ns = namespace.name.clone();
    let node = Node::start(&cp.kubeconfig, &ns).unwrap();
    let hosts = format!("--kafka-hosts-file={}", node.hosts_file.display());
    let op = start_operator(cp, &ns, "kafka-upgrade", "kafka-upgrade", std::slice::from_ref(&hosts));
    let (old, new) = (Dist::Previous.version().unwrap(), Dist::Kraft.version().unwrap());
    let mut desired = spec();
    desired["spec"]["clusterImage"] = json!(image(&old));
    apply(cp, &ns, &desired);
    let kc = || get_json(cp, &["get", "kafkacluster", CLUSTER, "-n", &ns]);
    let all = |v: &str| vec![Some(v.to_string()); 3];
    wait_for("3 brokers Running Kafka {old}", Duration::from_secs(240), &op, || {
        let kc = kc();
        settled(&kc) && versions(&kc) == all(&old)
    });
    let admin = admin(&node, &ns, CLUSTER, 3);
    let run = start_clients(cp, &node, &admin, &ns, CLUSTER, "upgrade");
    let uids = pod_uids(cp, &ns);
    let since = Instant::now();
    desired["spec"]["clusterImage"] = json!(image(&new));
    apply(cp, &ns, &desired);
    wait_for("every broker restarted onto the new release", Duration::from_secs(420), &op, || {
        let now = pod_uids(cp, &ns);
        let kc = kc();
        PODS.iter().all(|p| now.contains_key(*p) && now.get(*p) != uids.get(*p))
            && settled(&kc)
            && versions(&kc) == all(&new)
    });
    let max_down = node.max_down(&PODS, since);
    assert!(max_down <= 1, "{max_down} brokers were down at once during the upgrade");
    eprintln!("FIGURE: Kafka {old} -> {new} on 3 brokers in {} s", since.elapsed().as_secs());
    for pod in PODS {
        let log = std::fs::read_to_string(node.broker_log(pod).unwrap()).unwrap();
        assert!(log.contains(&format!("Kafka version: {new}")), "{pod} does not run {new}");
    }
    finish(run, &node, &PODS, since, &format!("Kafka version upgrade {old} -> {new}"));
    cp.kubectl(&["delete", "kafkacluster", CLUSTER, "-n", &ns, "--timeout=60s"]).unwrap();
    drop(op);
    drop(node);
}

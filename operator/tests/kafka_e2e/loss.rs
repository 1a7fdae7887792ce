//! Zero acknowledged-message loss through every disruptive operation (`docs/reliability.md`):
//! each scenario runs Kafka's `VerifiableProducer` (acks=all, idempotent) and
//! `VerifiableConsumer` on a topic of its own (RF 3, `min.insync.replicas=2`) through the
//! disruption, fails if one acknowledged message is not consumed, and records a row of the
//! table (duration, produced, acknowledged, lost, duplicated, longest stall, produce errors,
//! brokers down at once from the test node's timeline).
//!
//! On the shared cluster: a rolling restart for a read-only change; the same with the operator
//! SIGKILLed three times at random points; the same with the API server restarted; a broker
//! SIGKILLed while idle; a broker that cannot start on a bad `readOnlyConfig` value. On a
//! cluster of its own: a Kafka version upgrade (4.0.0 to the pinned release) that the brokers'
//! JMX exporters report.

use std::sync::atomic::{AtomicU32, Ordering};

use koperator_e2e::loss::{LossOptions, LossReport, LossRun};

use super::*;

/// Messages per second the producer sends.
const THROUGHPUT: u32 = 100;

fn bootstrap(ns: &str, cluster: &str) -> String {
    (0..3)
        .map(|i| format!("{cluster}-{i}.{cluster}-headless.{ns}.svc.cluster.local:29092"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A topic of the scenario's own, in sync, and the clients running on it with acknowledgements
/// flowing. Returns the run and the moment the scenario starts.
pub(super) fn start_clients(
    cp: &ControlPlane,
    node: &Node,
    admin: &Admin,
    ns: &str,
    cluster: &str,
    scenario: &str,
) -> LossRun {
    static N: AtomicU32 = AtomicU32::new(0);
    let topic = format!("loss-{scenario}-{}", N.fetch_add(1, Ordering::SeqCst));
    rt().block_on(admin.create_topic(&NewTopic {
        name: topic.clone(),
        partitions: 3,
        replication_factor: 3,
        configs: BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]),
    }))
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fully_in_sync(admin, &topic) {
        assert!(Instant::now() < deadline, "{topic} not in sync after 60 s");
        std::thread::sleep(Duration::from_millis(500));
    }
    let run = LossRun::start(LossOptions {
        bootstrap: bootstrap(ns, cluster),
        topic: topic.clone(),
        throughput: THROUGHPUT,
        hosts_file: Some(node.hosts_file.clone()),
        client_config: String::new(),
        dir: cp.dir.join("loss").join(&topic),
    })
    .unwrap();
    run.wait_acknowledged(THROUGHPUT as usize, Duration::from_secs(90)).unwrap();
    run
}

/// Stops the clients, records the row and fails on a lost message.
pub(super) fn finish(run: LossRun, node: &Node, pods: &[&str], since: Instant, scenario: &str) -> LossReport {
    let report = run.finish(Duration::from_secs(90)).unwrap();
    report.record(scenario, node.max_down(pods, since));
    report.assert_lossless(scenario);
    report
}

/// A cluster-wide read-only change on the shared cluster (`a` unless it runs already, then
/// `b`), applied; returns the Pod UIDs before it and an Event mark.
fn start_roll(c: &mut Cluster, a: &str, b: &str) -> (String, BTreeMap<String, String>, EventMark) {
    let base = spec()["spec"]["readOnlyConfig"].as_str().unwrap().to_string();
    let current =
        c.desired["spec"]["readOnlyConfig"].as_str().unwrap_or_default().strip_prefix(base.as_str()).map(String::from);
    let change = other(current.as_deref(), a, b).to_string();
    c.desired["spec"]["readOnlyConfig"] = json!(format!("{base}{change}"));
    let uids = c.pods();
    let mark = c.events_now();
    c.apply_desired();
    c.wait("the roll to start (a RollingRestart Event or a restarted Pod)", 60, |c| {
        !mark.since(c.cp, &c.ns, "RollingRestart").is_empty() || c.pods() != uids
    });
    (change, uids, mark)
}

/// Waits until every broker runs `change` and the cluster settled, then checks that each was
/// restarted, one at a time, and every partition is back in sync.
fn finish_roll(c: &Cluster, change: &str, uids: &BTreeMap<String, String>, since: Instant) {
    c.wait("every broker restarted with the new config", 420, |c| {
        let cms = get_json(c.cp, &["get", "configmaps", "-n", &c.ns, "-l", &format!("kafka_cr={CLUSTER}")]);
        let all_new = cms["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|cm| cm["data"]["broker-config"].as_str())
            .all(|config| config.contains(change.trim()));
        let now = c.pods();
        all_new && settled(&c.kc()) && PODS.iter().all(|p| now.contains_key(*p) && now.get(*p) != uids.get(*p))
    });
    let max_down = c.node.max_down(&PODS, since);
    assert!(max_down <= 1, "{max_down} brokers were down at once during the roll");
    c.wait("orders fully in sync after the roll", 60, |c| fully_in_sync(&c.admin, "orders"));
    eprintln!("FIGURE: roll of 3 brokers done {} s after it started", since.elapsed().as_secs());
}

/// A pseudo-random delay in `[0, max)` from the clock, printed so a failing run can be told.
fn random_delay(max: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    let mut x = nanos ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    Duration::from_millis(x % max.as_millis().max(1) as u64)
}

#[test]
fn loss_a_read_only_config_roll() {
    let mut g = cluster();
    let c = &mut *g;
    let run = start_clients(c.cp, &c.node, &c.admin, &c.ns, CLUSTER, "roll");
    let since = Instant::now();
    let (change, uids, mark) = start_roll(c, "background.threads=11\n", "background.threads=12\n");
    finish_roll(c, &change, &uids, since);
    assert_restart_events(c, &mark, &[0, 1, 2], &[]);
    finish(run, &c.node, &PODS, since, "rolling restart for a read-only config change");
}

/// The operator SIGKILLed three times at random points of a roll: each successor takes the
/// Lease once the last holder's runs out and carries on from what it reads.
#[test]
fn loss_an_operator_killed_three_times_during_a_roll() {
    let mut g = cluster();
    let c = &mut *g;
    let run = start_clients(c.cp, &c.node, &c.admin, &c.ns, CLUSTER, "operator-kill");
    let since = Instant::now();
    let (change, uids, mark) = start_roll(c, "num.replica.fetchers=2\n", "num.replica.fetchers=3\n");
    let mut killed = Vec::new();
    for _ in 0..3 {
        let delay = random_delay(Duration::from_secs(25));
        std::thread::sleep(delay);
        killed.push(format!("{} after {:.1}s", c.op.identity, delay.as_secs_f64()));
        c.replace_operator();
        c.wait("the new operator takes the Lease", 45, |c| leads(c.cp, &c.op));
    }
    eprintln!("FIGURE: operators SIGKILLed during the roll: {}", killed.join(", "));
    finish_roll(c, &change, &uids, since);
    assert_eq!(lease_holder(c.cp, LEASE).as_deref(), Some(c.op.identity.as_str()));
    // Each restart is announced, by whichever operator made it.
    assert_restart_events(c, &mark, &[0, 1, 2], &[]);
    finish(run, &c.node, &PODS, since, "rolling restart, operator SIGKILLed 3 times at random points");
}

/// kube-apiserver stopped and started again in the middle of a roll: the operator and the
/// node lose their watches and the Lease cannot be renewed for a while (the operator exits on
/// that and is started again, as its Deployment would); the roll finishes.
#[test]
fn loss_an_api_server_restart_during_a_roll() {
    let mut g = cluster();
    let c = &mut *g;
    let run = start_clients(c.cp, &c.node, &c.admin, &c.ns, CLUSTER, "apiserver-restart");
    let since = Instant::now();
    let (change, uids, _) = start_roll(c, "queued.max.requests=501\n", "queued.max.requests=502\n");
    std::thread::sleep(random_delay(Duration::from_secs(15)));
    let down = c.cp.restart_apiserver(Duration::from_secs(5)).unwrap();
    eprintln!("FIGURE: kube-apiserver restarted during the roll: unavailable for {:.1}s", down.as_secs_f64());
    // An operator that cannot renew its Lease within the renew deadline exits rather than risk
    // two leaders (as controller-runtime does); its Deployment restarts it. Do the same here.
    std::thread::sleep(Duration::from_secs(3));
    if c.op.exited().is_some() {
        assert!(
            op_log(&c.op).contains("leadership lost"),
            "the operator exited for another reason:\n{}",
            op_log(&c.op)
        );
        eprintln!("FIGURE: the operator exited on losing its Lease during the outage and was started again");
        c.replace_operator();
    }
    finish_roll(c, &change, &uids, since);
    finish(run, &c.node, &PODS, since, "rolling restart, kube-apiserver restarted mid-roll");
}

/// A broker process SIGKILLed while nothing else happens: it comes back in the same Pod, on
/// its PVC, with its data, and no acknowledged message is lost.
#[test]
fn loss_a_broker_killed_while_idle() {
    let c = cluster();
    let run = start_clients(c.cp, &c.node, &c.admin, &c.ns, CLUSTER, "broker-kill");
    let since = Instant::now();
    let restarts = |c: &Cluster| {
        get_json(c.cp, &["get", "pod", PODS[1], "-n", &c.ns])["status"]["containerStatuses"][0]["restartCount"]
            .as_i64()
            .unwrap_or(0)
    };
    let (uid, before) = (c.pods()[PODS[1]].clone(), restarts(&c));
    c.node.kill(PODS[1]).unwrap();
    c.wait("broker 1 restarted in its Pod and live again", 120, |c| {
        restarts(c) == before + 1 && c.live_brokers().is_some_and(|b| b == [0, 1, 2]) && settled(&c.kc())
    });
    assert_eq!(c.pods()[PODS[1]], uid, "the Pod was replaced, not restarted");
    c.wait("orders back in sync on broker 1", 90, |c| fully_in_sync(&c.admin, "orders"));
    let log = std::fs::read_to_string(c.node.broker_log(PODS[1]).unwrap()).unwrap();
    // Kafka logs "Completed load of Log(dir=…/orders-N, …)" only for partition logs it found on disk.
    assert!(
        log.lines().any(|l| l.contains("Completed load of Log(") && l.contains("orders-")),
        "broker 1 did not find its partitions on its PVC after SIGKILL"
    );
    eprintln!("FIGURE: a SIGKILLed broker was back in sync {} s later", since.elapsed().as_secs());
    finish(run, &c.node, &PODS, since, "a broker SIGKILLed while idle");
}

/// A bad `readOnlyConfig` value: the first broker restarted onto it cannot start; Degraded
/// carries its own error line, the roll stops there and takes no other broker down; the fixed
/// spec restarts that broker alone.
#[test]
fn loss_a_broker_that_cannot_start_stops_the_roll() {
    let mut g = cluster();
    let c = &mut *g;
    let run = start_clients(c.cp, &c.node, &c.admin, &c.ns, CLUSTER, "bad-config");
    let since = Instant::now();
    let uids = c.pods();
    let mut bad = c.desired.clone();
    let read_only = bad["spec"]["readOnlyConfig"].as_str().unwrap().to_string();
    bad["spec"]["readOnlyConfig"] = json!(format!("{read_only}num.io.threads=0\n"));
    c.apply(&bad);
    let error = "org.apache.kafka.common.config.ConfigException: Invalid value 0 for configuration num.io.threads";
    c.wait("Degraded/BrokerFailed with the broker's own error line", 180, |c| {
        condition(&c.kc(), "Degraded").is_some_and(|d| d.1 == "BrokerFailed")
    });
    let message = c.kc()["status"]["conditions"].to_string();
    assert!(message.contains(error), "{message}");
    eprintln!("FIGURE: the broker's error reached Degraded {} s after kubectl apply", since.elapsed().as_secs());
    // The roll stays stopped at that broker.
    std::thread::sleep(Duration::from_secs(20));
    let now = c.pods();
    let restarted: Vec<&&str> = PODS.iter().filter(|p| now.get(**p) != uids.get(**p)).collect();
    assert_eq!(restarted.len(), 1, "one broker restarted onto the bad value, not {restarted:?}");
    assert_eq!(c.node.max_down(&PODS, since), 1);
    let ready = condition(&c.kc(), "Ready");
    assert!(
        ready.as_ref().is_some_and(|r| r.0 == "False"),
        "the cluster reports Ready during the stopped roll: {ready:?}"
    );
    eprintln!("FIGURE: while the roll is stopped, Ready says: {ready:?}");
    // Fixed: the broken broker restarts onto the good spec; the others were never touched.
    let fixed = Instant::now();
    c.apply_desired();
    c.wait("the fixed spec runs on every broker", 240, |c| {
        settled(&c.kc()) && c.live_brokers().is_some_and(|b| b == [0, 1, 2])
    });
    let after = c.pods();
    for p in PODS.iter().filter(|p| !restarted.contains(p)) {
        assert_eq!(after.get(*p), uids.get(*p), "{p} was restarted");
    }
    assert_ne!(after.get(*restarted[0]), now.get(*restarted[0]), "the broken broker was not restarted");
    assert!(condition(&c.kc(), "Degraded").is_some_and(|d| d.0 == "False"), "{}", c.kc()["status"]);
    eprintln!("FIGURE: the fixed spec ran on every broker {} s after kubectl apply", fixed.elapsed().as_secs());
    c.wait("orders fully in sync", 60, |c| fully_in_sync(&c.admin, "orders"));
    finish(run, &c.node, &PODS, since, "a broker that cannot start (bad readOnlyConfig), then fixed");
}

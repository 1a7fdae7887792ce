//! The Cruise Control client against the real Cruise Control (compiled by `make e2e-deps`) and a
//! real single-node KRaft broker running its metrics reporter.
//!
//! Cruise Control runs with `webserver.request.maxBlockTimeMs=1`, so that every call that is
//! not instant answers 202 with a `User-Task-ID` first: the asynchronous path (in progress,
//! resumed with the header, completed) is what is exercised. `max.active.user.tasks=25` as in
//! Koperator's samples (every request counts as an active task for up to 5 s).

use std::time::{Duration, Instant};

use koperator_e2e::cruise_control::{self, CruiseControl};
use koperator_e2e::kafka::SingleNode;
use koperator_operator::cruise_control::*;

const METRICS_TOPIC: &str = "__CruiseControlMetrics";
const POLL: Duration = Duration::from_millis(300);

fn start() -> (SingleNode, CruiseControl) {
    let kafka = cruise_control::broker_with_reporter().unwrap_or_else(|e| panic!("start Kafka: {e:#}"));
    // Every call that is not instant answers 202 first, so tasks are followed by their id.
    let mut settings = vec![("webserver.request.maxBlockTimeMs", "1"), ("max.active.user.tasks", "25")];
    settings.extend_from_slice(&cruise_control::TEST_SAMPLING);
    let cc = CruiseControl::start(&kafka.bootstrap, &settings, Duration::from_secs(90)).expect("start Cruise Control");
    (kafka, cc)
}

/// Sends `call` until it no longer meets a refusal that passes with time (no valid load window
/// yet, busy), resuming 202s on the way.
async fn settled<T: serde::de::DeserializeOwned>(
    client: &Client,
    call: &Call<T>,
    cc: &CruiseControl,
) -> Result<Answer<T>, Error> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let outcome = client.execute_and_wait(call, POLL, Duration::from_secs(60)).await;
        match &outcome {
            Err(e @ Error::Status { .. })
                if matches!(e.refusal(), Some(Refusal::NotEnoughData | Refusal::Busy)) && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_secs(1)).await
            }
            Err(e) if Instant::now() >= deadline => panic!("{e}\nCruise Control log:\n{}", cc.process.log_tail(40)),
            _ => return outcome,
        }
    }
}

#[test]
fn client_speaks_to_a_real_cruise_control() {
    let (_kafka, cc) = start();
    let port = cc.address.rsplit_once(':').unwrap().1.to_owned();
    // The Service name resolved through a hosts file, as the operator's --kafka-hosts-file does.
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 kafka-cruisecontrol-svc.kafka.svc.cluster.local\n").unwrap();
    let url = format!("http://kafka-cruisecontrol-svc.kafka.svc.cluster.local:{port}/kafkacruisecontrol/");
    let client = Client::new(&url, ClientOptions::with_hosts_file(Some(hosts))).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let state = settled(&client, &Call::state(&[]), &cc).await.unwrap();
        let state = state.result;
        assert_eq!(state.monitor.as_ref().map(|m| m.state.as_str()), Some("RUNNING"), "{state:?}");
        assert!(state.executor.as_ref().unwrap().is_idle(), "{state:?}");
        assert!(!state.analyzer.as_ref().unwrap().goal_readiness.is_empty(), "verbose lists the goals: {state:?}");

        let load = settled(&client, &Call::load(), &cc).await.unwrap().result;
        assert_eq!(load.brokers_in_state(&["ALIVE"]).collect::<Vec<_>>(), vec![1], "{load:?}");
        assert!(load.brokers[0].replicas > 0, "{load:?}");

        let partitions = settled(&client, &Call::partition_load(&[1]), &cc).await.unwrap().result;
        assert!(partitions.records.iter().any(|p| p.topic == METRICS_TOPIC && p.leader == 1), "{partitions:?}");

        let cluster = settled(&client, &Call::kafka_cluster_state(), &cc).await.unwrap().result;
        assert!(cluster.brokers.replicas(1) > 0, "{cluster:?}");
        assert_eq!(cluster.brokers.online_log_dirs_by_broker_id["1"].len(), 1, "{cluster:?}");

        // A proposal takes longer than the block time: 202 with the task, resumed to its end.
        let dry = OperationOptions { dry_run: true, ..Default::default() };
        let call = Call::rebalance(&Rebalance { options: dry.clone(), ..Default::default() });
        let task = match client.execute(&call).await {
            Err(Error::InProgress { task_id, progress, .. }) => {
                assert_eq!(progress.progress[0].operation, "Rebalance", "{progress:?}");
                task_id
            }
            other => panic!("expected 202 with a User-Task-ID, got {other:?}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let done = loop {
            match client.resume(&call, &task).await {
                Err(Error::InProgress { task_id, .. }) if Instant::now() < deadline => {
                    assert_eq!(task_id, task);
                    tokio::time::sleep(POLL).await
                }
                other => break other.unwrap_or_else(|e| panic!("{e}")),
            }
        };
        assert_eq!(done.task_id.as_ref(), Some(&task));
        assert_eq!(done.result.summary.num_replica_movements, 0, "one broker: nothing to move");
        assert!(!done.result.goal_summary.is_empty());

        let tasks = client.user_tasks(std::slice::from_ref(&task), false).await.unwrap().result.user_tasks;
        assert_eq!(tasks.len(), 1, "{tasks:?}");
        assert!(tasks[0].request_url.starts_with("POST /kafkacruisecontrol/rebalance?"), "{tasks:?}");
        assert!(tasks[0].request_url.contains("dryrun=true"), "{tasks:?}");

        // An unknown broker: Cruise Control's errorMessage, not something to retry.
        let err = settled(&client, &Call::add_broker(&[7], &dry), &cc).await.unwrap_err();
        assert!(
            matches!(&err, Error::Status { status: 500, message, .. } if message.contains("does not exist")),
            "{err}"
        );
        assert_eq!(err.refusal(), Some(Refusal::Other));

        let stopped = settled(&client, &Call::stop_proposal_execution(false), &cc).await.unwrap();
        assert_eq!(stopped.result.message, "Proposal execution stopped.");
    });
}

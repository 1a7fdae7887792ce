//! Health-gated rolling restarts: which out-of-date node may restart now, asked of Kafka.

use std::collections::HashMap;

use koperator_shared::api::KafkaCluster;
use koperator_shared::kafka::Admin;
use koperator_shared::kafka::health::{self, DEFAULT_MAX_VOTER_LAG, RestartPolicy};
use koperator_shared::render;

/// What the rolling restart does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Restart this node now.
    Restart(i32),
    /// Nothing may restart yet, for this reason.
    Wait(String),
}

/// Kafka's default `min.insync.replicas`, used for topics Kafka did not describe.
const DEFAULT_MIN_ISR: i32 = 1;

/// The node of `out_of_date` that may restart now without losing availability, the active
/// controller last (see `shared::kafka::health`).
pub async fn next_restart(admin: &Admin, cluster: &KafkaCluster, out_of_date: &[i32]) -> Decision {
    let meta = match admin.metadata(None).await {
        Ok(m) => m,
        Err(e) => return Decision::Wait(format!("cannot read the cluster metadata from Kafka: {e}")),
    };
    let quorum = if cluster.spec.kraft {
        match admin.describe_quorum().await {
            Ok(q) => Some(q),
            Err(e) => return Decision::Wait(format!("cannot read the KRaft quorum from Kafka: {e}")),
        }
    } else {
        None
    };
    let topics: Vec<String> = meta.topics.iter().filter(|t| t.error.is_none()).map(|t| t.name.clone()).collect();
    let min_isr: HashMap<String, i32> = match admin.topic_config_values(&topics, "min.insync.replicas").await {
        Ok(m) => m.into_iter().filter_map(|(t, v)| Some((t, v.parse().ok()?))).collect(),
        Err(e) => return Decision::Wait(format!("cannot read min.insync.replicas from Kafka: {e}")),
    };
    let kraft = cluster.spec.kraft;
    let expected: Vec<i32> =
        render::brokers(cluster).iter().filter(|b| b.is_broker(kraft)).map(|b| b.broker.id).collect();
    let policy = RestartPolicy {
        expected_brokers: &expected,
        waiting: out_of_date,
        failure_threshold: cluster.spec.rolling_upgrade_config.failure_threshold.unwrap_or(1),
        max_voter_lag: DEFAULT_MAX_VOTER_LAG,
    };
    let lookup = |t: &str| min_isr.get(t).copied().unwrap_or(DEFAULT_MIN_ISR);
    let mut reasons = Vec::new();
    for node in health::restart_order(out_of_date, quorum.as_ref()) {
        let blockers = health::restart_blockers(node, &meta, quorum.as_ref(), &lookup, &policy);
        if blockers.is_empty() {
            return Decision::Restart(node);
        }
        let first = blockers.iter().take(3).map(ToString::to_string).collect::<Vec<_>>().join("; ");
        let more = if blockers.len() > 3 { format!(" (+{} more)", blockers.len() - 3) } else { String::new() };
        reasons.push(format!("broker {node}: {first}{more}"));
    }
    Decision::Wait(reasons.join(" | "))
}

//! Health-gated rolling restarts: what Kafka says about availability ([`HealthSnapshot`], read
//! by the dereference step) and which out-of-date node may restart now ([`next_restart`], pure).

use std::collections::HashMap;

use koperator_shared::kafka::health::{self, DEFAULT_MAX_VOTER_LAG, RestartPolicy};
use koperator_shared::kafka::{Admin, ClusterMetadata, QuorumInfo};

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

/// Kafka's view of availability, read before a restart.
#[derive(Debug, Clone)]
pub struct HealthSnapshot {
    /// Brokers and partitions (leaders, replicas, ISR).
    pub meta: ClusterMetadata,
    /// The KRaft quorum (None in ZooKeeper mode).
    pub quorum: Option<QuorumInfo>,
    /// `min.insync.replicas` per topic.
    pub min_isr: HashMap<String, i32>,
}

/// A part of the snapshot that Kafka did not give.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {what} from Kafka: {source}")]
pub struct HealthReadError {
    /// What was being read.
    pub what: &'static str,
    /// Why it failed.
    #[source]
    pub source: koperator_shared::kafka::Error,
}

/// Reads the metadata, the quorum (KRaft) and every topic's `min.insync.replicas`.
pub async fn read_health(admin: &Admin, kraft: bool) -> Result<HealthSnapshot, HealthReadError> {
    let err = |what| move |source| HealthReadError { what, source };
    let meta = admin.metadata(None).await.map_err(err("the cluster metadata"))?;
    let quorum = match kraft {
        true => Some(admin.describe_quorum().await.map_err(err("the KRaft quorum"))?),
        false => None,
    };
    let topics: Vec<String> = meta.topics.iter().filter(|t| t.error.is_none()).map(|t| t.name.clone()).collect();
    let min_isr = admin
        .topic_config_values(&topics, "min.insync.replicas")
        .await
        .map_err(err("min.insync.replicas"))?
        .into_iter()
        .filter_map(|(t, v)| Some((t, v.parse().ok()?)))
        .collect();
    Ok(HealthSnapshot { meta, quorum, min_isr })
}

/// The node of `out_of_date` that may restart now without losing availability, the active
/// controller last (see `shared::kafka::health`). `expected` are the broker-role node ids.
pub fn next_restart(h: &HealthSnapshot, expected: &[i32], out_of_date: &[i32], failure_threshold: i32) -> Decision {
    let policy = RestartPolicy {
        expected_brokers: expected,
        waiting: out_of_date,
        failure_threshold,
        max_voter_lag: DEFAULT_MAX_VOTER_LAG,
    };
    let lookup = |t: &str| h.min_isr.get(t).copied().unwrap_or(DEFAULT_MIN_ISR);
    let mut reasons = Vec::new();
    let mut leader_only_waits = None;
    for node in health::restart_order(out_of_date, h.quorum.as_ref()) {
        let blockers = health::restart_blockers(node, &h.meta, h.quorum.as_ref(), &lookup, &policy);
        if blockers.is_empty() {
            return Decision::Restart(node);
        }
        if blockers.iter().all(|b| matches!(b, health::Blocker::ActiveControllerFirst { .. })) {
            leader_only_waits = Some(node);
        }
        let first = blockers.iter().take(3).map(ToString::to_string).collect::<Vec<_>>().join("; ");
        let more = if blockers.len() > 3 { format!(" (+{} more)", blockers.len() - 3) } else { String::new() };
        reasons.push(format!("broker {node}: {first}{more}"));
    }
    // The active controller goes last only as a preference: when no other node may restart
    // (for instance because the controller itself is unhealthy, its certificate expired) and
    // nothing but that order holds it back, it restarts now rather than never.
    if let Some(node) = leader_only_waits {
        return Decision::Restart(node);
    }
    Decision::Wait(reasons.join(" | "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use koperator_shared::kafka::{BrokerAddr, PartitionMetadata, QuorumReplica, TopicMetadata};

    fn snapshot(live: &[i32], isr: &[i32], leader: i32) -> HealthSnapshot {
        let partition =
            PartitionMetadata { index: 0, leader: isr[0], replicas: vec![0, 1, 2], isr: isr.to_vec(), offline: vec![] };
        HealthSnapshot {
            meta: ClusterMetadata {
                cluster_id: None,
                controller_id: leader,
                brokers: live
                    .iter()
                    .map(|b| (*b, BrokerAddr { id: *b, host: format!("b{b}"), port: 9092, rack: None }))
                    .collect(),
                topics: vec![TopicMetadata {
                    name: "t".into(),
                    error: None,
                    internal: false,
                    partitions: vec![partition],
                }],
            },
            quorum: Some(QuorumInfo {
                leader_id: leader,
                leader_epoch: 1,
                high_watermark: 100,
                voters: [0, 1, 2]
                    .iter()
                    .map(|id| QuorumReplica { id: *id, log_end_offset: 100, last_caught_up_ms: 0 })
                    .collect(),
                observers: vec![],
            }),
            min_isr: HashMap::from([("t".to_string(), 2)]),
        }
    }

    #[test]
    fn the_active_controller_waits_for_the_others_while_they_can_restart() {
        let h = snapshot(&[0, 1, 2], &[0, 1, 2], 0);
        assert_eq!(next_restart(&h, &[0, 1, 2], &[0, 1, 2], 1), Decision::Restart(1));
        assert_eq!(next_restart(&h, &[0, 1, 2], &[0], 1), Decision::Restart(0), "last of all");
    }

    #[test]
    fn an_unhealthy_active_controller_restarts_when_it_blocks_everyone_else() {
        // Broker 0 leads the quorum but its replicas fell out of sync (its certificate expired,
        // say): the others may not restart while it is unhealthy, and it went last — forever.
        let h = snapshot(&[0, 1, 2], &[1, 2], 0);
        assert_eq!(next_restart(&h, &[0, 1, 2], &[0, 1, 2], 1), Decision::Restart(0));
        // Not when restarting it would break something else (here the ISR of 1 and 2 is at min).
        let h = snapshot(&[0, 1, 2], &[0, 1], 0);
        match next_restart(&h, &[0, 1, 2], &[0, 1], 1) {
            Decision::Wait(why) => assert!(why.contains("broker 0"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}

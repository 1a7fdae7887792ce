//! May a broker restart now? Pure decisions over what the admin client read, so the rolling
//! restart logic is table-tested without a cluster.
//!
//! A restart of node `n` is safe when:
//! - no partition that `n` is in sync for would fall below its `min.insync.replicas` without
//!   `n` (partitions whose replication factor is not above `min.insync.replicas` can never stay
//!   writable through a restart; they are reported, not blocking);
//! - fewer than `failure_threshold` other brokers are unhealthy (a replica out of sync or
//!   offline, or an expected broker missing), Koperator's `rollingUpgradeConfig.failureThreshold`;
//! - if `n` votes in the KRaft quorum, a majority of the voters stays caught up without it;
//! - the active controller goes last among the nodes waiting to restart.

use std::collections::BTreeSet;
use std::fmt;

use super::types::{ClusterMetadata, QuorumInfo};

/// How far behind the quorum leader's log end a voter may be and still count as caught up.
pub const DEFAULT_MAX_VOTER_LAG: i64 = 1000;

/// Why a restart has to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    /// The partition would have fewer in-sync replicas than `min.insync.replicas`.
    UnderMinIsr { topic: String, partition: i32, isr: Vec<i32>, min_isr: i32 },
    /// Too many brokers are already unhealthy.
    FailureThreshold { unhealthy: Vec<i32>, threshold: i32 },
    /// The KRaft quorum would lose its caught-up majority.
    QuorumMajority { caught_up_without: usize, voters: usize },
    /// The node is the active controller and others still wait to restart.
    ActiveControllerFirst { waiting: Vec<i32> },
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocker::UnderMinIsr { topic, partition, isr, min_isr } => write!(
                f,
                "partition {topic}-{partition} would drop below min.insync.replicas={min_isr} (in sync now: {isr:?})"
            ),
            Blocker::FailureThreshold { unhealthy, threshold } => write!(
                f,
                "brokers {unhealthy:?} are unhealthy (replicas out of sync or offline), rollingUpgradeConfig.failureThreshold is {threshold}"
            ),
            Blocker::QuorumMajority { caught_up_without, voters } => write!(
                f,
                "only {caught_up_without} of {voters} KRaft voters would stay caught up, a majority is needed"
            ),
            Blocker::ActiveControllerFirst { waiting } => {
                write!(f, "it is the active controller; nodes {waiting:?} restart before it")
            }
        }
    }
}

/// Inputs of the decision besides the cluster state.
#[derive(Debug, Clone)]
pub struct RestartPolicy<'a> {
    /// Broker ids the cluster should have (from the KafkaCluster spec), broker role only.
    pub expected_brokers: &'a [i32],
    /// Nodes that still need a restart (the candidate included).
    pub waiting: &'a [i32],
    /// `rollingUpgradeConfig.failureThreshold`.
    pub failure_threshold: i32,
    /// Largest voter lag counted as caught up.
    pub max_voter_lag: i64,
}

/// Everything that stops `node` from restarting now, cluster-level reasons first; empty when
/// it may restart.
pub fn restart_blockers(
    node: i32,
    meta: &ClusterMetadata,
    quorum: Option<&QuorumInfo>,
    min_isr: &dyn Fn(&str) -> i32,
    policy: &RestartPolicy<'_>,
) -> Vec<Blocker> {
    let mut blockers = Vec::new();
    let unhealthy: Vec<i32> =
        unhealthy_brokers(meta, policy.expected_brokers).into_iter().filter(|b| *b != node).collect();
    if unhealthy.len() as i32 >= policy.failure_threshold.max(1) {
        blockers.push(Blocker::FailureThreshold { unhealthy, threshold: policy.failure_threshold });
    }
    if let Some(q) = quorum {
        if q.voters.iter().any(|v| v.id == node) {
            let leader_end = q.voters.iter().find(|v| v.id == q.leader_id).map(|v| v.log_end_offset);
            let caught_up_without = q
                .voters
                .iter()
                .filter(|v| v.id != node)
                .filter(|v| leader_end.is_some_and(|end| end - v.log_end_offset <= policy.max_voter_lag))
                .count();
            if caught_up_without < q.voters.len() / 2 + 1 {
                blockers.push(Blocker::QuorumMajority { caught_up_without, voters: q.voters.len() });
            }
        }
        if node == q.leader_id {
            let waiting: Vec<i32> = policy.waiting.iter().copied().filter(|w| *w != node).collect();
            if !waiting.is_empty() {
                blockers.push(Blocker::ActiveControllerFirst { waiting });
            }
        }
    }
    // Partition-level blockers last: the cluster-level ones above explain them.
    for topic in &meta.topics {
        if topic.error.is_some() {
            continue;
        }
        let min = min_isr(&topic.name);
        for p in &topic.partitions {
            let satisfiable = p.replicas.len() as i32 > min;
            if satisfiable && p.isr.contains(&node) && (p.isr.len() as i32 - 1) < min {
                blockers.push(Blocker::UnderMinIsr {
                    topic: topic.name.clone(),
                    partition: p.index,
                    isr: p.isr.clone(),
                    min_isr: min,
                });
            }
        }
    }
    blockers
}

/// Brokers with a replica out of sync or offline, and expected brokers that are not live.
pub fn unhealthy_brokers(meta: &ClusterMetadata, expected: &[i32]) -> BTreeSet<i32> {
    let mut out: BTreeSet<i32> = expected.iter().copied().filter(|b| !meta.brokers.contains_key(b)).collect();
    for p in meta.topics.iter().filter(|t| t.error.is_none()).flat_map(|t| &t.partitions) {
        out.extend(p.replicas.iter().filter(|r| !p.isr.contains(r)));
        out.extend(p.offline.iter());
    }
    out
}

/// `waiting` in restart order: the active controller last, the rest by id.
pub fn restart_order(waiting: &[i32], quorum: Option<&QuorumInfo>) -> Vec<i32> {
    let leader = quorum.map(|q| q.leader_id);
    let mut order: Vec<i32> = waiting.to_vec();
    order.sort_by_key(|n| (Some(*n) == leader, *n));
    order
}

#[cfg(test)]
mod tests {
    use super::super::types::{BrokerAddr, PartitionMetadata, QuorumReplica, TopicMetadata};
    use super::*;

    fn meta(brokers: &[i32], parts: &[(&str, &[i32], &[i32])]) -> ClusterMetadata {
        let mut topics: Vec<TopicMetadata> = Vec::new();
        for (i, (topic, replicas, isr)) in parts.iter().enumerate() {
            let p = PartitionMetadata {
                index: i as i32,
                leader: isr.first().copied().unwrap_or(-1),
                replicas: replicas.to_vec(),
                isr: isr.to_vec(),
                offline: vec![],
            };
            match topics.iter_mut().find(|t| t.name == *topic) {
                Some(t) => t.partitions.push(p),
                None => topics.push(TopicMetadata {
                    name: topic.to_string(),
                    error: None,
                    internal: false,
                    partitions: vec![p],
                }),
            }
        }
        ClusterMetadata {
            cluster_id: None,
            controller_id: brokers[0],
            brokers: brokers
                .iter()
                .map(|b| (*b, BrokerAddr { id: *b, host: format!("b{b}"), port: 9092, rack: None }))
                .collect(),
            topics,
        }
    }

    fn quorum(leader: i32, voters: &[(i32, i64)]) -> QuorumInfo {
        QuorumInfo {
            leader_id: leader,
            leader_epoch: 1,
            high_watermark: 100,
            voters: voters
                .iter()
                .map(|(id, end)| QuorumReplica { id: *id, log_end_offset: *end, last_caught_up_ms: 0 })
                .collect(),
            observers: vec![],
        }
    }

    fn policy<'a>(expected: &'a [i32], waiting: &'a [i32]) -> RestartPolicy<'a> {
        RestartPolicy {
            expected_brokers: expected,
            waiting,
            failure_threshold: 1,
            max_voter_lag: DEFAULT_MAX_VOTER_LAG,
        }
    }

    const ALL: &[i32] = &[0, 1, 2];

    #[test]
    fn healthy_cluster_allows_restart() {
        let m = meta(ALL, &[("t", &[0, 1, 2], &[0, 1, 2]), ("t", &[1, 2, 0], &[1, 2, 0])]);
        assert_eq!(restart_blockers(1, &m, None, &|_| 2, &policy(ALL, &[1])), vec![]);
    }

    #[test]
    fn partition_at_min_isr_blocks_its_in_sync_members() {
        let m = meta(ALL, &[("t", &[0, 1, 2], &[0, 1])]);
        let b = restart_blockers(0, &m, None, &|_| 2, &RestartPolicy { failure_threshold: 2, ..policy(ALL, &[0]) });
        assert_eq!(b, vec![Blocker::UnderMinIsr { topic: "t".into(), partition: 0, isr: vec![0, 1], min_isr: 2 }]);
        assert!(b[0].to_string().contains("t-0 would drop below min.insync.replicas=2"), "{}", b[0]);
        // broker 2 is out of sync already: restarting it costs nothing for this partition,
        // and as the only unhealthy broker it does not count against the threshold.
        assert_eq!(restart_blockers(2, &m, None, &|_| 2, &policy(ALL, &[2])), vec![]);
    }

    #[test]
    fn unsatisfiable_min_isr_does_not_block() {
        let m = meta(ALL, &[("single", &[1], &[1]), ("rf2", &[1, 2], &[1, 2])]);
        assert_eq!(restart_blockers(1, &m, None, &|_| 2, &policy(ALL, &[1])), vec![]);
    }

    #[test]
    fn failure_threshold_counts_other_unhealthy_brokers() {
        let m = meta(ALL, &[("t", &[0, 1, 2], &[0, 1])]);
        let b = restart_blockers(0, &m, None, &|_| 1, &policy(ALL, &[0]));
        assert_eq!(b, vec![Blocker::FailureThreshold { unhealthy: vec![2], threshold: 1 }]);
        let relaxed = RestartPolicy { failure_threshold: 2, ..policy(ALL, &[0]) };
        assert_eq!(restart_blockers(0, &m, None, &|_| 1, &relaxed), vec![]);
    }

    #[test]
    fn missing_expected_broker_is_unhealthy() {
        let m = meta(&[0, 1], &[]);
        assert_eq!(unhealthy_brokers(&m, ALL), BTreeSet::from([2]));
        let b = restart_blockers(0, &m, None, &|_| 1, &policy(ALL, &[0]));
        assert!(matches!(&b[..], [Blocker::FailureThreshold { unhealthy, .. }] if unhealthy == &vec![2]));
    }

    #[test]
    fn quorum_majority_is_kept() {
        let m = meta(ALL, &[]);
        let q = quorum(0, &[(0, 5000), (1, 5000), (2, 10)]);
        // Voter 2 lags far behind: without 1 only the leader is caught up.
        let b = restart_blockers(1, &m, Some(&q), &|_| 1, &policy(ALL, &[1]));
        assert_eq!(b, vec![Blocker::QuorumMajority { caught_up_without: 1, voters: 3 }]);
        let q = quorum(0, &[(0, 5000), (1, 5000), (2, 4999)]);
        assert_eq!(restart_blockers(1, &m, Some(&q), &|_| 1, &policy(ALL, &[1])), vec![]);
        // Observers (brokers that do not vote) are not checked against the quorum.
        assert_eq!(
            restart_blockers(5, &m, Some(&quorum(0, &[(0, 1), (1, 1), (2, 1)])), &|_| 1, &policy(ALL, &[5])),
            vec![]
        );
    }

    #[test]
    fn active_controller_goes_last() {
        let m = meta(ALL, &[]);
        let q = quorum(1, &[(0, 5), (1, 5), (2, 5)]);
        let b = restart_blockers(1, &m, Some(&q), &|_| 1, &policy(ALL, &[0, 1, 2]));
        assert_eq!(b, vec![Blocker::ActiveControllerFirst { waiting: vec![0, 2] }]);
        assert_eq!(restart_blockers(1, &m, Some(&q), &|_| 1, &policy(ALL, &[1])), vec![]);
        assert_eq!(restart_order(&[2, 1, 0], Some(&q)), vec![0, 2, 1]);
        assert_eq!(restart_order(&[2, 0], None), vec![0, 2]);
    }
}

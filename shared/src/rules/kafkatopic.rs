//! KafkaTopic admission rules. The spec checks are pure; the checks that need the API server
//! or Kafka are pure functions of what the caller looked up (the seams the webhook fills in).

use std::collections::BTreeMap;

use super::{FieldError, Path, names};
use crate::api::kafkatopic::{KafkaTopic, MANAGED_BY_ANNOTATION, MANAGED_BY_KOPERATOR};

/// Koperator's message for an out-of-range replication factor.
pub const OUT_OF_RANGE_REPLICATION_FACTOR: &str =
    "replication factor must be larger than 0 (or set it to be -1 to use the broker's default)";
/// Koperator's message for an out-of-range partition count.
pub const OUT_OF_RANGE_PARTITIONS: &str =
    "number of partitions must be larger than 0 (or set it to be -1 to use the broker's default)";
/// Koperator's message for a replication factor above the broker count.
pub const INVALID_REPLICATION_FACTOR: &str =
    "replication factor is larger than the number of nodes in the kafka cluster";

fn spec() -> Path {
    Path::root("spec")
}

/// Spec checks: partitions and replication factor are positive or -1; the topic name is a valid
/// Kafka topic name; the cluster is named.
pub fn validate(topic: &KafkaTopic) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let s = &topic.spec;
    if s.partitions < -1 || s.partitions == 0 {
        errs.push(FieldError::invalid(&spec().child("partitions"), s.partitions, OUT_OF_RANGE_PARTITIONS));
    }
    if s.replication_factor < -1 || s.replication_factor == 0 {
        errs.push(FieldError::invalid(
            &spec().child("replicationFactor"),
            s.replication_factor,
            OUT_OF_RANGE_REPLICATION_FACTOR,
        ));
    }
    if s.name.is_empty() {
        errs.push(FieldError::required(&spec().child("name"), "set the Kafka topic name"));
    } else if !names::is_kafka_topic_name(&s.name) {
        errs.push(FieldError::invalid(
            &spec().child("name"),
            &s.name,
            "a Kafka topic name has 1 to 249 characters from a-z, A-Z, 0-9, '.', '_' and '-', and is not '.' or '..'",
        ));
    }
    if s.cluster_ref.name.is_empty() {
        errs.push(FieldError::required(
            &spec().child("clusterRef").child("name"),
            "name the KafkaCluster the topic belongs to",
        ));
    }
    for (k, _) in s.config.iter().flatten() {
        if k.trim().is_empty() {
            errs.push(FieldError::invalid(&spec().child("config"), k, "config keys must not be empty"));
        }
    }
    errs
}

/// UPDATE: the CREATE checks, and the topic name and cluster cannot change (that would orphan
/// the existing Kafka topic).
pub fn validate_update(old: &KafkaTopic, new: &KafkaTopic) -> Vec<FieldError> {
    let mut errs = validate(new);
    if old.spec.name != new.spec.name {
        errs.push(FieldError::forbidden(
            &spec().child("name"),
            format!(
                "the Kafka topic name cannot change ({} -> {}); create a new KafkaTopic for the new topic",
                old.spec.name, new.spec.name
            ),
        ));
    }
    if old.spec.cluster_ref != new.spec.cluster_ref {
        errs.push(FieldError::forbidden(
            &spec().child("clusterRef"),
            "a KafkaTopic cannot move to another cluster; create a new KafkaTopic in the other cluster",
        ));
    }
    errs
}

/// What the API server said about the referenced cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterLookup {
    /// The cluster exists; `deleting` when it has a deletion timestamp.
    Found {
        /// The cluster is being deleted.
        deleting: bool,
    },
    /// There is no such cluster.
    NotFound,
}

/// What to do after looking up the cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum ClusterRefOutcome {
    /// Go on with the remaining checks.
    Continue,
    /// Allow without further checks (the topic or its cluster is being deleted).
    Allow,
    /// Reject with this error.
    Reject(FieldError),
}

/// The referenced cluster must exist, unless the topic is being deleted; when the cluster is
/// being deleted everything is allowed (Koperator behaviour).
pub fn check_cluster_ref(topic: &KafkaTopic, namespace: &str, lookup: ClusterLookup) -> ClusterRefOutcome {
    match lookup {
        ClusterLookup::Found { deleting: true } => ClusterRefOutcome::Allow,
        ClusterLookup::Found { deleting: false } => ClusterRefOutcome::Continue,
        ClusterLookup::NotFound if topic.metadata.deletion_timestamp.is_some() => ClusterRefOutcome::Allow,
        ClusterLookup::NotFound => ClusterRefOutcome::Reject(FieldError::invalid(
            &spec().child("clusterRef").child("name"),
            &topic.spec.cluster_ref.name,
            format!(
                "kafkaCluster '{}' in the namespace '{}' does not exist; create it first or fix clusterRef",
                topic.spec.cluster_ref.name,
                topic.spec.cluster_ref.namespace_or(namespace)
            ),
        )),
    }
}

/// No other KafkaTopic refers to the same topic of the same cluster. `others` are KafkaTopics
/// with the same `spec.name`, from any namespace.
pub fn check_duplicate_crs(topic: &KafkaTopic, namespace: &str, others: &[KafkaTopic]) -> Option<FieldError> {
    let name = topic.metadata.name.as_deref().unwrap_or_default();
    let cluster_ns = topic.spec.cluster_ref.namespace_or(namespace);
    others
        .iter()
        .find(|o| {
            let o_ns = o.metadata.namespace.as_deref().unwrap_or_default();
            let same_object = o.metadata.name.as_deref() == Some(name) && o_ns == namespace;
            !same_object
                && o.spec.name == topic.spec.name
                && o.spec.cluster_ref.name == topic.spec.cluster_ref.name
                && o.spec.cluster_ref.namespace_or(o_ns) == cluster_ns
        })
        .map(|o| {
            FieldError::invalid(
                &spec().child("name"),
                &o.spec.name,
                format!(
                    "kafkaTopic CR '{}' in namespace '{}' is already referencing to Kafka topic '{}'; manage the topic through that CR",
                    o.metadata.name.as_deref().unwrap_or_default(),
                    o.metadata.namespace.as_deref().unwrap_or_default(),
                    o.spec.name
                ),
            )
        })
}

/// A topic as Kafka reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExistingTopic {
    /// Partition count.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i32,
    /// Non-default topic configs.
    pub config: BTreeMap<String, String>,
}

/// Whether `topic` may adopt a topic that already exists in Kafka and no KafkaTopic manages:
/// only from the KafkaCluster's own namespace. A tenant of another namespace the cluster
/// accepts may create topics, never take over (and later delete) one it did not create.
pub fn may_adopt(topic: &KafkaTopic) -> bool {
    let own = topic.metadata.namespace.as_deref().unwrap_or_default();
    topic.spec.cluster_ref.namespace_or(own) == own
}

/// Checks against live Kafka: adopting an existing topic needs `managedBy: koperator`, the
/// KafkaCluster's own namespace ([`may_adopt`]) and the
/// same partitions, replication factor and config; partitions never decrease; the replication
/// factor never changes; a new topic's replication factor fits the live brokers.
/// `cr_exists` tells whether this KafkaTopic is already stored (an UPDATE).
pub fn check_against_kafka(
    topic: &KafkaTopic,
    existing: Option<&ExistingTopic>,
    cr_exists: bool,
    live_brokers: usize,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let s = &topic.spec;
    let Some(existing) = existing else {
        if s.replication_factor > 0 && s.replication_factor as usize > live_brokers {
            errs.push(FieldError::invalid(
                &spec().child("replicationFactor"),
                s.replication_factor,
                format!("{INVALID_REPLICATION_FACTOR} (available brokers: {live_brokers}); lower it or add brokers"),
            ));
        }
        return errs;
    };
    if !cr_exists {
        let managed = topic
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(MANAGED_BY_ANNOTATION))
            .is_some_and(|v| v.eq_ignore_ascii_case(MANAGED_BY_KOPERATOR));
        if managed && !may_adopt(topic) {
            errs.push(FieldError::forbidden(
                &spec().child("name"),
                format!(
                    "topic \"{}\" already exists on kafka cluster and only a KafkaTopic in the KafkaCluster's namespace \
                     ({}) may adopt an existing topic; pick a new topic name, or ask the cluster's owners to adopt it there",
                    s.name,
                    s.cluster_ref.namespace.as_deref().unwrap_or_default()
                ),
            ));
            return errs;
        }
        if !managed {
            errs.push(FieldError::invalid(
                &spec().child("name"),
                &s.name,
                format!(
                    "topic \"{}\" already exists on kafka cluster and it is not managed by Koperator; if you want it to be \
                     managed by Koperator so you can modify its configurations through a KafkaTopic CR, add this \
                     \"{MANAGED_BY_ANNOTATION}: {MANAGED_BY_KOPERATOR}\" annotation to this KafkaTopic CR",
                    s.name
                ),
            ));
        }
        if existing.partitions != s.partitions {
            errs.push(FieldError::invalid(
                &spec().child("partitions"),
                s.partitions,
                format!(
                    "When creating KafkaTopic CR for existing topic, initially its partition number must be the same as what \
                     the existing kafka topic has (given: {} present: {})",
                    s.partitions, existing.partitions
                ),
            ));
        }
        if existing.replication_factor != s.replication_factor {
            errs.push(FieldError::invalid(
                &spec().child("replicationFactor"),
                s.replication_factor,
                format!(
                    "When creating KafkaTopic CR for existing topic, initially its replication factor must be the same as what \
                     the existing kafka topic has (given: {} present: {})",
                    s.replication_factor, existing.replication_factor
                ),
            ));
        }
        let wanted = s.config.clone().unwrap_or_default();
        if wanted != existing.config {
            errs.push(FieldError::invalid(
                &spec().child("config"),
                &wanted,
                format!(
                    "When creating KafkaTopic CR for existing topic, initially its configuration must be the same as the \
                     existing kafka topic configuration (present: {:?})",
                    existing.config
                ),
            ));
        }
        if !errs.is_empty() {
            return errs;
        }
    }
    if existing.partitions > s.partitions {
        errs.push(FieldError::invalid(
            &spec().child("partitions"),
            s.partitions,
            format!(
                "kafka does not support decreasing partition count on an existing topic (from {} to {})",
                existing.partitions, s.partitions
            ),
        ));
    }
    if existing.replication_factor != s.replication_factor {
        errs.push(FieldError::invalid(
            &spec().child("replicationFactor"),
            s.replication_factor,
            format!(
                "kafka does not support changing the replication factor on an existing topic (from {} to {})",
                existing.replication_factor, s.replication_factor
            ),
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ClusterReference;
    use crate::api::kafkatopic::KafkaTopicSpec;
    use crate::rules::ErrorType;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use rstest::rstest;

    fn topic(partitions: i32, rf: i32, annotations: &[(&str, &str)]) -> KafkaTopic {
        KafkaTopic {
            metadata: ObjectMeta {
                name: Some("test-topic".into()),
                namespace: Some("test-namespace".into()),
                annotations: Some(annotations.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            },
            spec: KafkaTopicSpec {
                name: "test-topic".into(),
                partitions,
                replication_factor: rf,
                config: None,
                cluster_ref: ClusterReference { name: "test-cluster".into(), namespace: Some("test-namespace".into()) },
            },
            status: None,
        }
    }

    fn koperator_existing() -> ExistingTopic {
        ExistingTopic {
            partitions: 2,
            replication_factor: 1,
            config: BTreeMap::from([("testConfKey".to_string(), "testConfVal".to_string())]),
        }
    }

    // Koperator TestValidateTopic: partitions 0 / RF 0 are out of range.
    #[test]
    fn koperator_zero_partitions_and_rf_are_out_of_range() {
        let errs = validate(&topic(0, 0, &[]));
        assert_eq!(
            errs.iter().map(|e| (e.path.as_str(), e.message.as_str())).collect::<Vec<_>>(),
            vec![
                ("spec.partitions", OUT_OF_RANGE_PARTITIONS),
                ("spec.replicationFactor", OUT_OF_RANGE_REPLICATION_FACTOR)
            ]
        );
    }

    #[rstest]
    #[case(-1, -1, 0)]
    #[case(3, 2, 0)]
    #[case(-2, 1, 1)]
    #[case(1, -5, 1)]
    fn partition_and_rf_bounds(#[case] p: i32, #[case] rf: i32, #[case] n_errors: usize) {
        assert_eq!(validate(&topic(p, rf, &[])).len(), n_errors);
    }

    #[test]
    fn invalid_topic_name() {
        let mut t = topic(1, 1, &[]);
        t.spec.name = "orders/eu".into();
        assert_eq!(validate(&t)[0].path, "spec.name");
    }

    // Koperator TestCheckKafkaTopicExist, with the topic "test-topic" (2 partitions, RF 1,
    // testConfKey=testConfVal) existing in Kafka and no KafkaTopic CR stored yet.
    #[rstest]
    #[case::same_config_managed_by_koperator(2, 1, &[("managedBy", "koperator")], true, &[])]
    #[case::same_config_not_managed(2, 1, &[], true, &["managedBy"])]
    #[case::rf_differs_managed(2, 5, &[("managedBy", "koperator")], true, &["replication"])]
    #[case::partitions_differ_managed(5, 1, &[("managedBy", "koperator")], true, &["partition"])]
    #[case::partitions_and_rf_differ_not_managed(5, 5, &[("managedBy", "other")], true, &["replication", "partition", "managedBy"])]
    #[case::config_differs_managed(2, 1, &[("managedBy", "koperator")], false, &["its configuration must be"])]
    fn koperator_check_kafka_topic_exist(
        #[case] partitions: i32,
        #[case] rf: i32,
        #[case] annotations: &[(&str, &str)],
        #[case] same_config: bool,
        #[case] expected: &[&str],
    ) {
        let mut t = topic(partitions, rf, annotations);
        t.spec.config = Some(if same_config {
            koperator_existing().config
        } else {
            BTreeMap::from([("testConfKey".to_string(), "other".to_string())])
        });
        let errs = check_against_kafka(&t, Some(&koperator_existing()), false, 3);
        let all = errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
        assert_eq!(errs.is_empty(), expected.is_empty(), "{all}");
        for needle in expected {
            assert!(all.contains(needle), "missing {needle:?} in {all}");
        }
    }

    // Adoption across namespaces: a tenant never takes over a topic it did not create.
    #[test]
    fn only_the_clusters_namespace_adopts_an_existing_topic() {
        let mut t = topic(2, 1, &[("managedBy", "koperator")]);
        t.spec.config = Some(koperator_existing().config);
        assert!(may_adopt(&t) && check_against_kafka(&t, Some(&koperator_existing()), false, 3).is_empty());
        t.metadata.namespace = Some("team".into());
        assert!(!may_adopt(&t));
        let errs = check_against_kafka(&t, Some(&koperator_existing()), false, 3);
        assert_eq!(
            errs.iter().map(|e| (e.path.as_str(), e.error_type)).collect::<Vec<_>>(),
            [("spec.name", ErrorType::Forbidden)]
        );
        assert!(errs[0].message.contains("only a KafkaTopic in the KafkaCluster's namespace (test-namespace)"));
        // A new topic from another namespace is fine; so is an UPDATE of one it manages.
        assert!(check_against_kafka(&t, None, false, 3).is_empty());
        assert!(check_against_kafka(&t, Some(&koperator_existing()), true, 3).is_empty());
        t.spec.cluster_ref.namespace = None;
        assert!(may_adopt(&t), "no clusterRef.namespace: the topic's own");
    }

    // Koperator TestValidateTopic: decreasing partitions / changing RF of a managed topic.
    #[test]
    fn koperator_partition_decrease_and_rf_change_are_rejected() {
        let t = topic(1, 2, &[("managedBy", "koperator")]);
        let existing = ExistingTopic { partitions: 2, replication_factor: 1, config: BTreeMap::new() };
        let errs = check_against_kafka(&t, Some(&existing), true, 3);
        assert_eq!(
            errs.iter().map(|e| (e.path.as_str(), e.error_type)).collect::<Vec<_>>(),
            vec![("spec.partitions", ErrorType::Invalid), ("spec.replicationFactor", ErrorType::Invalid)]
        );
        assert!(errs[0].message.contains("decreasing partition count on an existing topic (from 2 to 1)"));
    }

    // Koperator TestValidateTopic: RF 2 on a 1-broker cluster for a new topic.
    #[test]
    fn koperator_rf_above_broker_count_is_rejected() {
        let errs = check_against_kafka(&topic(2, 2, &[]), None, false, 1);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message.starts_with(INVALID_REPLICATION_FACTOR));
        assert!(check_against_kafka(&topic(2, 1, &[]), None, false, 1).is_empty());
    }

    // Koperator TestValidateTopic: deletion cases.
    #[test]
    fn koperator_cluster_lookup_outcomes() {
        let t = topic(2, 1, &[]);
        assert!(matches!(
            check_cluster_ref(&t, "test-namespace", ClusterLookup::NotFound),
            ClusterRefOutcome::Reject(_)
        ));
        assert_eq!(
            check_cluster_ref(&t, "test-namespace", ClusterLookup::Found { deleting: true }),
            ClusterRefOutcome::Allow
        );
        assert_eq!(
            check_cluster_ref(&t, "test-namespace", ClusterLookup::Found { deleting: false }),
            ClusterRefOutcome::Continue
        );
        let mut deleting = t.clone();
        deleting.metadata.deletion_timestamp = Some(Time(Default::default()));
        assert_eq!(check_cluster_ref(&deleting, "test-namespace", ClusterLookup::NotFound), ClusterRefOutcome::Allow);
    }

    #[test]
    fn duplicate_cr_for_the_same_topic_is_rejected() {
        let t = topic(2, 1, &[]);
        let mut other = topic(2, 1, &[]);
        other.metadata.name = Some("another".into());
        assert!(
            check_duplicate_crs(&t, "test-namespace", std::slice::from_ref(&t)).is_none(),
            "itself is not a duplicate"
        );
        let err = check_duplicate_crs(&t, "test-namespace", &[other.clone()]).unwrap();
        assert!(err.message.contains("kafkaTopic CR 'another' in namespace 'test-namespace'"));
        other.spec.cluster_ref.name = "another-cluster".into();
        assert!(check_duplicate_crs(&t, "test-namespace", &[other]).is_none());
    }

    #[test]
    fn renaming_or_moving_a_topic_is_forbidden() {
        let old = topic(2, 1, &[]);
        let mut new = old.clone();
        new.spec.name = "renamed".into();
        new.spec.cluster_ref.name = "other".into();
        let errs = validate_update(&old, &new);
        assert_eq!(
            errs.iter().map(|e| (e.path.as_str(), e.error_type)).collect::<Vec<_>>(),
            vec![("spec.name", ErrorType::Forbidden), ("spec.clusterRef", ErrorType::Forbidden)]
        );
    }
}

//! The namespace boundary: a KafkaUser or KafkaTopic may refer to a KafkaCluster in another
//! namespace only when that cluster lists the namespace in its annotation
//! `koperator.banzaicloud.io/allowed-namespaces` (comma-separated, or `*`). The webhook rejects
//! such a reference at admission; the operator checks again before it acts on Kafka.

use super::{FieldError, Path};
use crate::api::KafkaCluster;
use crate::api::kafkacluster::ALLOWED_NAMESPACES_ANNOTATION;

/// A Forbidden error on `spec.clusterRef.namespace` when `cluster` does not accept objects of
/// `kind` (`KafkaUser`, `KafkaTopic`) from `namespace`; `None` when it does.
pub fn check_namespace_allowed(kind: &str, namespace: &str, cluster: &KafkaCluster) -> Option<FieldError> {
    if cluster.allows_namespace(namespace) {
        return None;
    }
    Some(FieldError::forbidden(
        &Path::root("spec").child("clusterRef").child("namespace"),
        not_allowed_message(kind, namespace, cluster),
    ))
}

/// What to tell the owner of a `kind` in `namespace` that `cluster` does not accept.
pub fn not_allowed_message(kind: &str, namespace: &str, cluster: &KafkaCluster) -> String {
    let cluster_ns = cluster.metadata.namespace.as_deref().unwrap_or_default();
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    format!(
        "KafkaCluster '{cluster_ns}/{name}' does not accept {kind}s from namespace '{namespace}': \
         its owner can add '{namespace}' to the cluster's annotation {ALLOWED_NAMESPACES_ANNOTATION} \
         (comma-separated namespaces, or \"*\" for all), or create the {kind} in namespace '{cluster_ns}'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::ErrorType;
    use std::collections::BTreeMap;

    fn cluster(annotation: Option<&str>) -> KafkaCluster {
        let mut kc = KafkaCluster::new("kafka", Default::default());
        kc.metadata.namespace = Some("platform".into());
        kc.metadata.annotations =
            annotation.map(|v| BTreeMap::from([(ALLOWED_NAMESPACES_ANNOTATION.to_string(), v.to_string())]));
        kc
    }

    #[test]
    fn own_namespace_only_by_default() {
        assert_eq!(check_namespace_allowed("KafkaUser", "platform", &cluster(None)), None);
        let err = check_namespace_allowed("KafkaUser", "team-a", &cluster(None)).expect("another namespace");
        assert_eq!((err.path.as_str(), err.error_type), ("spec.clusterRef.namespace", ErrorType::Forbidden));
        assert!(
            err.message
                .contains("add 'team-a' to the cluster's annotation koperator.banzaicloud.io/allowed-namespaces"),
            "{}",
            err.message
        );
    }

    #[test]
    fn listed_namespaces_and_star_are_allowed() {
        let kc = cluster(Some(" team-a, team-b ,"));
        assert!(kc.allows_namespace("team-a") && kc.allows_namespace("team-b") && kc.allows_namespace("platform"));
        assert!(!kc.allows_namespace("team-c") && !kc.allows_namespace("") && !kc.allows_namespace("team"));
        assert!(cluster(Some("*")).allows_namespace("anything"));
        assert!(!cluster(Some("")).allows_namespace("team-a"));
    }
}

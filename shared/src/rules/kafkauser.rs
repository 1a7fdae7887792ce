//! KafkaUser admission rules (spec only; the cluster lookup is the webhook's).

use super::{FieldError, Path, names};
use crate::api::kafkauser::{KafkaUser, MIN_EXPIRATION_SECONDS, PatternType, UserPkiBackend, principal};

fn spec() -> Path {
    Path::root("spec")
}

/// `secretName` is a valid Secret name; the cluster is named; topic grants name valid topics
/// (or patterns); `expirationSeconds ≥ 3600`; DNS names are valid; `k8s-csr` has a signer.
pub fn validate(user: &KafkaUser) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let s = &user.spec;
    if s.secret_name.is_empty() {
        errs.push(FieldError::required(
            &spec().child("secretName"),
            "name the Secret that receives the user's credentials",
        ));
    } else if !names::is_dns_subdomain(&s.secret_name) {
        errs.push(FieldError::invalid(
            &spec().child("secretName"),
            &s.secret_name,
            "a Secret name is a lowercase DNS name: letters, digits, '-' and '.', at most 253 characters",
        ));
    }
    if s.cluster_ref.name.is_empty() {
        errs.push(FieldError::required(
            &spec().child("clusterRef").child("name"),
            "name the KafkaCluster the user belongs to",
        ));
    }
    for (i, g) in s.topic_grants.iter().flatten().enumerate() {
        let path = spec().child("topicGrants").index(i).child("topicName");
        let pattern = g.pattern_type.unwrap_or_default();
        let wildcard_ok =
            matches!(pattern, PatternType::Literal | PatternType::Match | PatternType::Any) && g.topic_name == "*";
        if g.topic_name.is_empty() {
            errs.push(FieldError::required(&path, "name the topic (or the prefix, with patternType: prefixed)"));
        } else if !wildcard_ok && !names::is_kafka_topic_name(&g.topic_name) {
            errs.push(FieldError::invalid(
                &path,
                &g.topic_name,
                "a topic name (or prefix) has characters from a-z, A-Z, 0-9, '.', '_' and '-' only; use \"*\" for all topics",
            ));
        }
    }
    if let Some(exp) = s.expiration_seconds
        && exp < MIN_EXPIRATION_SECONDS
    {
        errs.push(FieldError::invalid(
            &spec().child("expirationSeconds"),
            exp,
            format!("certificates must live at least {MIN_EXPIRATION_SECONDS} seconds (1 hour)"),
        ));
    }
    for (i, dns) in s.dns_names.iter().flatten().enumerate() {
        if !names::is_wildcard_dns_subdomain(dns) {
            errs.push(FieldError::invalid(&spec().child("dnsNames").index(i), dns, "not a valid lowercase DNS name"));
        }
    }
    if let Some(pki) = &s.pki_backend_spec {
        let value = match pki.pki_backend {
            UserPkiBackend::CertManager => "cert-manager",
            UserPkiBackend::K8sCsr => "k8s-csr",
        };
        errs.push(FieldError::not_supported(&spec().child("pkiBackendSpec").child("pkiBackend"), value, &[]).with_message(
            "the operator issues user certificates from the cluster CA (listenersConfig.sslSecrets) itself, without cert-manager or CertificateSigningRequests: remove pkiBackendSpec",
        ));
    }
    errs
}

/// UPDATE: the CREATE checks, and the user cannot move to another cluster.
pub fn validate_update(old: &KafkaUser, new: &KafkaUser) -> Vec<FieldError> {
    let mut errs = validate(new);
    if old.spec.cluster_ref != new.spec.cluster_ref {
        errs.push(FieldError::forbidden(
            &spec().child("clusterRef"),
            "a KafkaUser cannot move to another cluster; create a new KafkaUser there",
        ));
    }
    errs
}

/// No other KafkaUser on the same cluster maps to the same Kafka principal (two of them
/// would share one credential and one set of ACLs). `others` are KafkaUsers from any namespace;
/// `user` itself (same namespace and name) is skipped.
pub fn check_duplicate_principal(user: &KafkaUser, namespace: &str, others: &[KafkaUser]) -> Option<FieldError> {
    let name = user.metadata.name.as_deref().unwrap_or_default();
    let cluster_ns = user.spec.cluster_ref.namespace_or(namespace);
    let mine = principal(user);
    let other = others.iter().find(|o| {
        let o_ns = o.metadata.namespace.as_deref().unwrap_or_default();
        let same_object = o.metadata.name.as_deref() == Some(name) && o_ns == namespace;
        !same_object
            && o.spec.cluster_ref.name == user.spec.cluster_ref.name
            && o.spec.cluster_ref.namespace_or(o_ns) == cluster_ns
            && principal(o) == mine
    })?;
    Some(FieldError::duplicate(
        &Path::root("metadata").child("name"),
        name,
        format!(
            "KafkaUser '{}/{}' already maps to principal {mine} on KafkaCluster '{cluster_ns}/{}'; the principal \
             comes from the KafkaUser's name, so choose another name (or manage the user through that KafkaUser)",
            namespace_of(other),
            other.metadata.name.as_deref().unwrap_or_default(),
            user.spec.cluster_ref.name
        ),
    ))
}

fn namespace_of(u: &KafkaUser) -> &str {
    u.metadata.namespace.as_deref().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ClusterReference;
    use crate::api::kafkauser::{AccessType, KafkaUserSpec, PkiBackendSpec, UserTopicGrant};
    use crate::rules::ErrorType;

    fn user() -> KafkaUser {
        KafkaUser::new(
            "alice",
            KafkaUserSpec {
                secret_name: "alice-secret".into(),
                cluster_ref: ClusterReference { name: "kafka".into(), namespace: None },
                topic_grants: Some(vec![
                    UserTopicGrant { topic_name: "orders".into(), access_type: AccessType::Read, pattern_type: None },
                    UserTopicGrant {
                        topic_name: "*".into(),
                        access_type: AccessType::Write,
                        pattern_type: Some(PatternType::Literal),
                    },
                ]),
                ..Default::default()
            },
        )
    }

    fn kinds(errs: &[FieldError]) -> Vec<(&str, ErrorType)> {
        errs.iter().map(|e| (e.path.as_str(), e.error_type)).collect()
    }

    #[test]
    fn valid_user_passes() {
        assert_eq!(validate(&user()), vec![]);
    }

    #[test]
    fn bad_fields_are_all_reported() {
        let mut u = user();
        u.spec.secret_name = "Alice_Secret".into();
        u.spec.cluster_ref.name.clear();
        u.spec.topic_grants.as_mut().unwrap()[0].topic_name = "orders eu".into();
        u.spec.topic_grants.as_mut().unwrap()[1].pattern_type = Some(PatternType::Prefixed);
        u.spec.expiration_seconds = Some(60);
        u.spec.dns_names = Some(vec!["bad host".into()]);
        u.spec.pki_backend_spec = Some(PkiBackendSpec { pki_backend: UserPkiBackend::K8sCsr, ..Default::default() });
        assert_eq!(
            kinds(&validate(&u)),
            vec![
                ("spec.secretName", ErrorType::Invalid),
                ("spec.clusterRef.name", ErrorType::Required),
                ("spec.topicGrants[0].topicName", ErrorType::Invalid),
                ("spec.topicGrants[1].topicName", ErrorType::Invalid),
                ("spec.expirationSeconds", ErrorType::Invalid),
                ("spec.dnsNames[0]", ErrorType::Invalid),
                ("spec.pkiBackendSpec.pkiBackend", ErrorType::NotSupported),
            ]
        );
    }

    fn in_ns(mut u: KafkaUser, ns: &str, cluster_ns: Option<&str>) -> KafkaUser {
        u.metadata.namespace = Some(ns.into());
        u.spec.cluster_ref.namespace = cluster_ns.map(String::from);
        u
    }

    #[test]
    fn a_second_user_with_the_same_principal_on_a_cluster_is_a_duplicate() {
        let first = in_ns(user(), "platform", None);
        let second = in_ns(user(), "team-a", Some("platform"));
        let err = check_duplicate_principal(&second, "team-a", std::slice::from_ref(&first)).expect("duplicate");
        assert_eq!((err.path.as_str(), err.error_type), ("metadata.name", ErrorType::Duplicate));
        assert!(
            err.message.contains("KafkaUser 'platform/alice' already maps to principal User:CN=alice"),
            "{}",
            err.message
        );
        // The same object (an UPDATE), another cluster, or another principal are not.
        assert_eq!(check_duplicate_principal(&first, "platform", std::slice::from_ref(&first)), None);
        let elsewhere = in_ns(user(), "team-a", None);
        assert_eq!(check_duplicate_principal(&elsewhere, "team-a", std::slice::from_ref(&first)), None);
        let mut scram = second.clone();
        scram.metadata.annotations =
            Some([(crate::api::kafkauser::CREDENTIALS_ANNOTATION.to_string(), "scram-sha-512".to_string())].into());
        assert_eq!(check_duplicate_principal(&scram, "team-a", std::slice::from_ref(&first)), None);
    }

    #[test]
    fn moving_a_user_is_forbidden() {
        let old = user();
        let mut new = user();
        new.spec.cluster_ref.name = "other".into();
        assert_eq!(kinds(&validate_update(&old, &new)), vec![("spec.clusterRef", ErrorType::Forbidden)]);
    }
}

//! KafkaUser admission rules (spec only; the cluster lookup is the webhook's).

use super::{FieldError, Path, names};
use crate::api::kafkauser::{KafkaUser, MIN_EXPIRATION_SECONDS, PatternType, UserPkiBackend};

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
    if let Some(pki) = &s.pki_backend_spec
        && pki.pki_backend == UserPkiBackend::K8sCsr
        && pki.signer_name.as_deref().unwrap_or_default().is_empty()
    {
        errs.push(FieldError::required(
            &spec().child("pkiBackendSpec").child("signerName"),
            "the k8s-csr backend needs the signerName of the CertificateSigningRequest signer",
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
                ("spec.pkiBackendSpec.signerName", ErrorType::Required),
            ]
        );
    }

    #[test]
    fn moving_a_user_is_forbidden() {
        let old = user();
        let mut new = user();
        new.spec.cluster_ref.name = "other".into();
        assert_eq!(kinds(&validate_update(&old, &new)), vec![("spec.clusterRef", ErrorType::Forbidden)]);
    }
}

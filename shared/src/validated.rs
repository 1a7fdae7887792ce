//! [`ValidatedCluster`]: a KafkaCluster with its defaults applied that passed every admission
//! rule. It is the only input the renderers (`shared::render`) and the operator's planner take,
//! so an unchecked value can never reach a Pod (the Stackable "validate" step).

use std::ops::Deref;

use crate::api::KafkaCluster;
use crate::api::kafkacluster::StorageConfig;
use crate::render::external::ExternalFacts;
use crate::rules::{self, RuleConfig, Verdict};
use crate::support::{self, Unsupported};

/// Why a KafkaCluster did not become a [`ValidatedCluster`].
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    /// The object does not match its type after defaulting (a schema the API server allowed but
    /// the types do not: an old CRD, a hand-edited etcd object).
    #[error("the KafkaCluster does not match its schema: {0}")]
    Decode(#[from] serde_json::Error),
    /// The admission rules reject the spec.
    #[error("the spec breaks the admission rules: {}", summary(.0))]
    Invalid(Verdict),
}

fn summary(v: &Verdict) -> String {
    v.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl ValidationError {
    /// Stable category for Event reasons and metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            ValidationError::Decode(_) => "SchemaMismatch",
            ValidationError::Invalid(_) => "InvalidSpec",
        }
    }
}

/// A defaulted KafkaCluster that passed [`rules::kafkacluster::validate`]. Reads like a
/// `&KafkaCluster` (it derefs to one); only [`ValidatedCluster::new`] makes one.
#[derive(Clone, Debug)]
pub struct ValidatedCluster {
    cluster: KafkaCluster,
    warnings: Vec<String>,
    unsupported: Vec<Unsupported>,
    principals: Vec<String>,
    external: ExternalFacts,
}

impl ValidatedCluster {
    /// Applies the defaults (the mutating webhook's code, in memory) and the validating rules.
    pub fn new(kc: &KafkaCluster, cfg: &RuleConfig) -> Result<Self, ValidationError> {
        let cluster = crate::defaults::defaulted(kc)?;
        let mut verdict = rules::kafkacluster::validate(&cluster.spec, cfg);
        verdict.extend(rules::names::kafka_cluster_name(&cluster));
        if !verdict.allowed() {
            return Err(ValidationError::Invalid(verdict));
        }
        let unsupported = support::kafkacluster(&cluster.spec);
        Ok(ValidatedCluster {
            cluster,
            warnings: verdict.warnings,
            unsupported,
            principals: Vec::new(),
            external: ExternalFacts::default(),
        })
    }

    /// The rules' warnings (accepted anyway).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The fields this cluster sets that the operator does not act on yet.
    pub fn unsupported(&self) -> &[Unsupported] {
        &self.unsupported
    }

    /// The cluster with the principals of certificates of the user's own that the brokers must
    /// treat as super users (read by the operator from `serverSSLCertSecret` of the
    /// inter-broker and controller listeners and from `clientSSLCertSecret`; see
    /// `render::tls::super_users`).
    pub fn with_principals(mut self, principals: Vec<String>) -> Self {
        self.principals = principals;
        self
    }

    /// `self` with the brokers of `storage` on exactly those storage configs, in that order
    /// (the operator keeps a disk the spec no longer lists until it is drained).
    pub fn with_storage(mut self, storage: &std::collections::BTreeMap<i32, Vec<StorageConfig>>) -> Self {
        for b in &mut self.cluster.spec.brokers {
            if let Some(all) = storage.get(&b.id) {
                b.broker_config.get_or_insert_with(Default::default).storage_configs = Some(all.clone());
            }
        }
        self
    }

    /// The cluster with what Kubernetes decided for its external listeners (load balancer
    /// addresses, node ports, the brokers' nodes), read by the operator; see
    /// `render::external`.
    pub fn with_external(mut self, facts: ExternalFacts) -> Self {
        self.external = facts;
        self
    }

    /// The facts set by [`ValidatedCluster::with_external`] (none by default).
    pub fn external(&self) -> &ExternalFacts {
        &self.external
    }

    /// The principals set by [`ValidatedCluster::with_principals`].
    pub fn principals(&self) -> &[String] {
        &self.principals
    }
}

impl Deref for ValidatedCluster {
    type Target = KafkaCluster;
    fn deref(&self) -> &KafkaCluster {
        &self.cluster
    }
}

/// Test and benchmark helper: validates `kc`, panicking with the rule errors when it is invalid.
pub fn must(kc: &KafkaCluster) -> ValidatedCluster {
    ValidatedCluster::new(kc, &RuleConfig::default()).unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::kafkacluster::fixtures::valid_kraft_spec;

    #[test]
    fn only_valid_clusters_pass() {
        let mut kc = KafkaCluster::new("kafka", valid_kraft_spec());
        kc.metadata.namespace = Some("team-a".into());
        let v = ValidatedCluster::new(&kc, &RuleConfig::default()).unwrap();
        assert_eq!(v.metadata.name.as_deref(), Some("kafka"), "reads like the KafkaCluster");
        assert_eq!(v.spec.kubernetes_cluster_domain.as_deref(), Some("cluster.local"), "defaults applied");
        kc.spec.brokers[1].id = kc.spec.brokers[0].id;
        let err = ValidatedCluster::new(&kc, &RuleConfig::default()).unwrap_err();
        assert_eq!(err.category(), "InvalidSpec");
        assert!(err.to_string().contains("spec.brokers[1].id"), "{err}");
    }
}

//! Types shared by several custom resources.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every Koperator custom resource.
pub const GROUP: &str = "kafka.banzaicloud.io";

/// Annotation that pauses reconciliation of an object while it is set to `"true"`.
pub const PAUSE_ANNOTATION: &str = "koperator.banzaicloud.io/paused";

/// Reference from a KafkaTopic or KafkaUser to the KafkaCluster it belongs to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterReference {
    /// Name of the KafkaCluster.
    pub name: String,
    /// Namespace of the KafkaCluster; defaults to the namespace of the referring object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl ClusterReference {
    /// The namespace of the referenced cluster, falling back to `own_namespace`.
    pub fn namespace_or<'a>(&'a self, own_namespace: &'a str) -> &'a str {
        match self.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns,
            _ => own_namespace,
        }
    }
}

/// Reference to a cert-manager issuer (mirrors `cmmeta.IssuerReference`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerReference {
    /// Name of the issuer being referred to.
    pub name: String,
    /// Kind of the issuer being referred to (`Issuer` or `ClusterIssuer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Group of the issuer being referred to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// Standard condition types written by the operator beside Koperator's `state` fields.
pub mod condition {
    /// The object is fully reconciled and serving.
    pub const READY: &str = "Ready";
    /// The operator is working towards the desired state.
    pub const RECONCILING: &str = "Reconciling";
    /// Something is wrong that needs attention (the message says what).
    pub const DEGRADED: &str = "Degraded";
}

/// Conditions list type used in every status (Ready, Reconciling, Degraded).
pub type Conditions = Vec<Condition>;

/// When a certificate in a Secret expires, and when the operator issues its successor (our
/// addition to Koperator's API). Read from the certificate in the Secret, not from what was
/// asked for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    /// The Secret that holds the certificate.
    pub secret_name: String,
    /// End of the certificate's validity (RFC 3339): clients and brokers refuse it after this.
    pub not_after: Time,
    /// When the operator issues a new certificate in its place (RFC 3339): two thirds into
    /// its lifetime, or earlier when its names or the CA change. Absent when the operator
    /// does not renew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_at: Option<Time>,
}

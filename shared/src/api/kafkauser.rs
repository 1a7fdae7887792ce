//! `KafkaUser` (`kafka.banzaicloud.io/v1alpha1`): a Kafka principal, its credentials and ACLs.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{CertificateStatus, ClusterReference, Conditions, IssuerReference};

/// Minimum certificate lifetime a user may ask for (one hour).
pub const MIN_EXPIRATION_SECONDS: i32 = 3600;

/// Annotation choosing the user's credentials instead of a client certificate (our addition).
pub const CREDENTIALS_ANNOTATION: &str = "koperator.banzaicloud.io/credentials";
/// Value of [`CREDENTIALS_ANNOTATION`] for SCRAM-SHA-512 (compared case-insensitively).
pub const SCRAM_SHA_512: &str = "scram-sha-512";

/// Whether the user asks for SCRAM-SHA-512 credentials ([`CREDENTIALS_ANNOTATION`]).
pub fn uses_scram(user: &KafkaUser) -> bool {
    user.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CREDENTIALS_ANNOTATION))
        .is_some_and(|v| v.eq_ignore_ascii_case(SCRAM_SHA_512))
}

/// The Kafka principal of a user: `User:<name>` with SCRAM credentials, Koperator's certificate
/// DN `User:CN=<name>` otherwise. KafkaUsers of the same name in different namespaces map to
/// the same principal, so at most one of them may exist per cluster.
pub fn principal(user: &KafkaUser) -> String {
    let name = user.metadata.name.as_deref().unwrap_or_default();
    if uses_scram(user) { format!("User:{name}") } else { format!("User:CN={name}") }
}

/// Desired state of a Kafka user.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "kafka.banzaicloud.io",
    version = "v1alpha1",
    kind = "KafkaUser",
    namespaced,
    status = "KafkaUserStatus",
    shortname = "ku",
    category = "kafka",
    doc = "KafkaUser is the Schema for the kafka users API",
    printcolumn = r#"{"jsonPath":".spec.clusterRef.name","name":"Cluster","type":"string"}"#,
    printcolumn = r#"{"jsonPath":".spec.secretName","name":"Secret","type":"string"}"#,
    printcolumn = r#"{"jsonPath":".status.state","name":"State","type":"string"}"#,
    printcolumn = r#"{"jsonPath":".status.conditions[?(@.type==\"Ready\")].status","name":"Ready","type":"string"}"#,
    printcolumn = r#"{"jsonPath":".metadata.creationTimestamp","name":"Age","type":"date"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaUserSpec {
    /// Secret that receives the user's credentials; unique within the namespace.
    pub secret_name: String,
    /// The KafkaCluster the user belongs to.
    pub cluster_ref: ClusterReference,
    /// Annotations of the certificate or certificate signing request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// DNS names of the user certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::api::schema::MAX_DNS_NAMES))]
    pub dns_names: Option<Vec<String>>,
    /// Topic permissions of the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = crate::api::schema::MAX_TOPIC_GRANTS))]
    pub topic_grants: Option<Vec<UserTopicGrant>>,
    /// Also store the credentials as JKS keystore/truststore.
    #[serde(default, rename = "includeJKS", skip_serializing_if = "Option::is_none")]
    pub include_jks: Option<bool>,
    /// Issue a certificate for the user (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_cert: Option<bool>,
    /// PKI backend issuing the user certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pki_backend_spec: Option<PkiBackendSpec>,
    /// Requested certificate lifetime in seconds (at least 3600; default 90 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 3600))]
    pub expiration_seconds: Option<i32>,
}

/// PKI backend of a user certificate.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PkiBackendSpec {
    /// cert-manager issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ref: Option<IssuerReference>,
    /// `cert-manager` or `k8s-csr`.
    pub pki_backend: UserPkiBackend,
    /// Signer name for `k8s-csr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer_name: Option<String>,
}

/// PKI backend of a user certificate.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum UserPkiBackend {
    /// cert-manager.
    #[default]
    #[serde(rename = "cert-manager")]
    CertManager,
    /// Kubernetes CertificateSigningRequest.
    #[serde(rename = "k8s-csr")]
    K8sCsr,
}

/// A permission of the user on topics.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserTopicGrant {
    /// Topic name or pattern.
    pub topic_name: String,
    /// `read` (consume) or `write` (produce).
    pub access_type: AccessType,
    /// `literal` (default), `prefixed`, `match` or `any`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern_type: Option<PatternType>,
}

/// Access granted on a topic.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccessType {
    /// Consume.
    #[default]
    Read,
    /// Produce.
    Write,
}

/// Kafka ACL resource pattern type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PatternType {
    /// Exact name.
    #[default]
    Literal,
    /// Names starting with the given prefix.
    Prefixed,
    /// Literal, wildcard or prefixed patterns that match the name.
    Match,
    /// Any pattern type.
    Any,
}

/// Observed state of a Kafka user.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaUserStatus {
    /// `created` once the credentials and ACLs exist.
    #[serde(default)]
    pub state: String,
    /// ACLs the operator created for the user (and keeps in place). Only these are ever
    /// deleted: ACLs of the principal made outside the operator are left alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acls: Option<Vec<String>>,
    /// The Kafka principal this KafkaUser owns in the cluster `clusterUID` (our addition). It
    /// is claimed only while Kafka has no credential and no ACL for it; a principal in use by
    /// someone else is refused (`PrincipalInUse`) and never written to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// UID of the KafkaCluster in which `principal` was claimed (our addition).
    #[serde(default, rename = "clusterUID", skip_serializing_if = "Option::is_none")]
    pub cluster_uid: Option<String>,
    /// The SCRAM-SHA-512 user whose credential the operator created for this KafkaUser (our
    /// addition); only that credential is ever changed or deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scram_credential: Option<String>,
    /// Expiry and renewal of the client certificate the operator issued into `spec.secretName`
    /// (our addition), read from the certificate in the Secret; absent when the operator
    /// issues none (SCRAM credentials, `createCert: false`, a cluster without a CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateStatus>,
    /// Ready, Reconciling and Degraded conditions (addition to Koperator).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
    /// Generation of the spec the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

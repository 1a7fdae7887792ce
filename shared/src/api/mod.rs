//! Koperator-compatible API types (group `kafka.banzaicloud.io`).
//!
//! Field names, JSON casing, enums and bounds follow Koperator's `api/` folder so a manifest
//! written for Koperator parses and means the same here. Additions: `status.conditions`,
//! `status.observedGeneration`, printer columns, short names and the `kafka` category.

pub mod common;
pub mod cruisecontroloperation;
pub mod kafkacluster;
pub mod kafkatopic;
pub mod kafkauser;
pub mod schema;

pub use common::ClusterReference;
pub use cruisecontroloperation::{CruiseControlOperation, CruiseControlOperationSpec};
pub use kafkacluster::{KafkaCluster, KafkaClusterSpec};
pub use kafkatopic::{KafkaTopic, KafkaTopicSpec};
pub use kafkauser::{KafkaUser, KafkaUserSpec};

/// The four kinds of the API, for dispatch by `kind` (admission requests, defaults, samples).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `KafkaCluster` (v1beta1).
    KafkaCluster,
    /// `KafkaTopic` (v1alpha1).
    KafkaTopic,
    /// `KafkaUser` (v1alpha1).
    KafkaUser,
    /// `CruiseControlOperation` (v1alpha1).
    CruiseControlOperation,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 4] = [Kind::KafkaCluster, Kind::KafkaTopic, Kind::KafkaUser, Kind::CruiseControlOperation];

    /// The kind named `kind` (as in an object's `kind` field).
    pub fn from_kind(kind: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == kind)
    }
    /// The `kind` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::KafkaCluster => "KafkaCluster",
            Kind::KafkaTopic => "KafkaTopic",
            Kind::KafkaUser => "KafkaUser",
            Kind::CruiseControlOperation => "CruiseControlOperation",
        }
    }
    /// The API version the kind is served at.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::KafkaCluster => "kafka.banzaicloud.io/v1beta1",
            _ => "kafka.banzaicloud.io/v1alpha1",
        }
    }
}

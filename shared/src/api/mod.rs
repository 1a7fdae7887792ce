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

/// An object of one of the four kinds, decoded into its type (boxed: a KafkaCluster is large).
#[derive(Clone, Debug)]
pub enum Object {
    /// A `KafkaCluster`.
    KafkaCluster(Box<KafkaCluster>),
    /// A `KafkaTopic`.
    KafkaTopic(Box<KafkaTopic>),
    /// A `KafkaUser`.
    KafkaUser(Box<KafkaUser>),
    /// A `CruiseControlOperation`.
    CruiseControlOperation(Box<CruiseControlOperation>),
}

impl Object {
    /// Decodes the JSON text of an object of `kind` straight into its type (no `Value` tree).
    pub fn from_json(kind: Kind, text: &str) -> Result<Object, serde_json::Error> {
        Ok(match kind {
            Kind::KafkaCluster => Object::KafkaCluster(serde_json::from_str(text)?),
            Kind::KafkaTopic => Object::KafkaTopic(serde_json::from_str(text)?),
            Kind::KafkaUser => Object::KafkaUser(serde_json::from_str(text)?),
            Kind::CruiseControlOperation => Object::CruiseControlOperation(serde_json::from_str(text)?),
        })
    }

    /// Decodes an object of `kind` from a JSON tree.
    pub fn from_value(kind: Kind, value: &serde_json::Value) -> Result<Object, serde_json::Error> {
        use serde::Deserialize as _;
        Ok(match kind {
            Kind::KafkaCluster => Object::KafkaCluster(Box::new(KafkaCluster::deserialize(value)?)),
            Kind::KafkaTopic => Object::KafkaTopic(Box::new(KafkaTopic::deserialize(value)?)),
            Kind::KafkaUser => Object::KafkaUser(Box::new(KafkaUser::deserialize(value)?)),
            Kind::CruiseControlOperation => {
                Object::CruiseControlOperation(Box::new(CruiseControlOperation::deserialize(value)?))
            }
        })
    }

    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Object::KafkaCluster(_) => Kind::KafkaCluster,
            Object::KafkaTopic(_) => Kind::KafkaTopic,
            Object::KafkaUser(_) => Kind::KafkaUser,
            Object::CruiseControlOperation(_) => Kind::CruiseControlOperation,
        }
    }

    /// The object's metadata.
    pub fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        match self {
            Object::KafkaCluster(o) => &o.metadata,
            Object::KafkaTopic(o) => &o.metadata,
            Object::KafkaUser(o) => &o.metadata,
            Object::CruiseControlOperation(o) => &o.metadata,
        }
    }
}

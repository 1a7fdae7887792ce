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

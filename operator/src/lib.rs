//! The operator: kube-runtime controllers for Koperator's custom resources (DESIGN §8).

pub mod alerts;
pub mod apply;
pub mod certificate_status;
pub mod controller;
pub mod cruise_control;
pub mod cruisecontroloperation;
pub mod dynamic_config;
pub mod exporter;
pub mod kafka_access;
pub mod kafkacluster;
pub mod kafkatopic;
pub mod kafkauser;
pub mod leader;
pub mod metrics;
pub mod rolling;
pub mod status;
pub mod user_certificate;

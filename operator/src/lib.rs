//! The operator: kube-runtime controllers for Koperator's custom resources (DESIGN §8).

pub mod apply;
pub mod kafkacluster;
pub mod leader;
pub mod metrics;
pub mod status;

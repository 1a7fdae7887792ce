//! Koperator in Rust: the API types, admission rules, defaults and rendering shared by the
//! webhook and the operator. Everything here that decides is pure (no I/O), except the Kafka
//! admin client behind the `kafka` feature.

pub mod alerts;
pub mod api;
#[cfg(feature = "runtime")]
pub mod cli;
pub mod crd;
pub mod defaults;
pub mod hash;
#[cfg(feature = "pki")]
pub mod jks;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "runtime")]
pub mod logging;
#[cfg(feature = "pki")]
pub mod pki;
pub mod render;
pub mod rules;
pub mod support;
pub mod validated;

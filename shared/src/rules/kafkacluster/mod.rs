//! KafkaCluster admission rules (DESIGN §5, rules 1–10).
//!
//! Koperator's own checks (1–4) keep its field paths and message texts, with a hint on how to
//! fix appended; the rest are this project's invariants.

pub mod addresses;
pub mod brokers;
pub mod cruise_control;
pub mod external;
pub mod kraft;
pub mod listeners;
pub mod routes;
pub mod ssl;
pub mod update;

use super::{Path, RuleConfig, Verdict};
use crate::api::KafkaClusterSpec;

/// Koperator's message prefix for external port problems.
pub const INVALID_EXTERNAL_LISTENER_STARTING_PORT: &str = "invalid external listener starting port number";
/// Koperator's message prefix for ingress controller port problems (its spelling kept).
pub const INVALID_CONTAINER_PORT_FOR_INGRESS_CONTROLLER: &str =
    "invalid trarget port number for ingress controller deployment";

/// Validates a KafkaCluster on CREATE: every rule that needs no live Kafka.
pub fn validate(spec: &KafkaClusterSpec, cfg: &RuleConfig) -> Verdict {
    let mut v = Verdict::default();
    v.extend(listeners::unique_container_ports(spec));
    v.extend(listeners::names_and_roles(spec));
    v.extend(external::starting_ports(spec));
    v.extend(external::target_port_collisions_for_envoy(spec));
    v.extend(external::access(spec, cfg));
    v.warnings.extend(external::route_warnings(spec));
    v.extend(brokers::ids(spec));
    v.extend(brokers::groups_and_storage(spec));
    v.extend(brokers::config_strings(spec));
    v.extend(brokers::resources(spec));
    v.extend(cruise_control::check(spec));
    kraft::check(spec, &mut v);
    v.extend(ssl::check(spec));
    v.extend(addresses::check(spec));
    v
}

/// Validates a KafkaCluster on UPDATE: the CREATE rules on the new spec plus the rules about
/// changes to a running cluster.
pub fn validate_update(old: &KafkaClusterSpec, new: &KafkaClusterSpec, cfg: &RuleConfig) -> Verdict {
    let mut v = validate(new, cfg);
    update::check(old, new, &mut v);
    v
}

pub(crate) fn spec_path() -> Path {
    Path::root("spec")
}

pub(crate) fn listeners_path() -> Path {
    spec_path().child("listenersConfig")
}

pub(crate) fn internal_path(i: usize) -> Path {
    listeners_path().child("internalListeners").index(i)
}

pub(crate) fn external_path(i: usize) -> Path {
    listeners_path().child("externalListeners").index(i)
}

pub(crate) fn broker_path(i: usize) -> Path {
    spec_path().child("brokers").index(i)
}

pub(crate) fn group_path(name: &str) -> Path {
    spec_path().child("brokerConfigGroups").key(name)
}

#[cfg(test)]
pub(crate) mod fixtures;

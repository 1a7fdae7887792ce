//! Schema helpers for fields whose shape is not described by a Rust type.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object whose content is kept as is (`x-kubernetes-preserve-unknown-fields`).
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Most brokers of a KafkaCluster (`spec.brokers` `maxItems`). Generous: real clusters have
/// tens to a few hundred; the bound keeps one object's decoding cheap.
pub const MAX_BROKERS: usize = 1000;
/// Most internal or external listeners of a KafkaCluster (`maxItems` of each list).
pub const MAX_LISTENERS: usize = 64;
/// Most storage configs of a broker or broker config group (`maxItems`).
pub const MAX_STORAGE_CONFIGS: usize = 64;
/// Longest cluster-wide configuration text (`readOnlyConfig`, `clusterWideConfig`): 256 KiB.
pub const MAX_CLUSTER_CONFIG_LENGTH: usize = 256 * 1024;
/// Longest per-broker or per-group configuration text (`config`, `readOnlyConfig`): 64 KiB.
pub const MAX_BROKER_CONFIG_LENGTH: usize = 64 * 1024;
/// Most topic grants of a KafkaUser (`spec.topicGrants` `maxItems`; each is a few ACLs).
pub const MAX_TOPIC_GRANTS: usize = 1000;
/// Most DNS names of a KafkaUser's certificate (`spec.dnsNames` `maxItems`).
pub const MAX_DNS_NAMES: usize = 100;
/// Longest Kafka topic name (Kafka's own limit, `maxLength` of `spec.name`).
pub const MAX_TOPIC_NAME_LENGTH: usize = 249;
/// Longest Kubernetes object name or DNS subdomain (`maxLength` of name fields).
pub const MAX_NAME_LENGTH: usize = 253;

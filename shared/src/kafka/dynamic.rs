//! Dynamic broker configuration: what to change so that Kafka's dynamic configs equal the spec.
//!
//! `clusterWideConfig` becomes the cluster-wide dynamic defaults and `brokers[].brokerConfig.config`
//! (over its group's) each broker's dynamic configs. A key removed from the spec is deleted from
//! Kafka only when the operator set it before (`managed`): Kafka sets some dynamic defaults
//! itself (Kafka 4 refuses to delete the cluster-level `min.insync.replicas` while ELR is on)
//! and other tools may set others.

use std::collections::{BTreeMap, BTreeSet};

use super::types::{ConfigEntry, ConfigOp, ConfigSource};

/// The operations that turn the `current` entries of `level` into `desired`, deleting only
/// `managed` keys. Sensitive values (which Kafka never returns) are set only when missing.
pub fn config_ops(
    desired: &BTreeMap<String, String>,
    current: &[ConfigEntry],
    level: ConfigSource,
    managed: &BTreeSet<String>,
) -> Vec<ConfigOp> {
    let at_level: BTreeMap<&str, &ConfigEntry> =
        current.iter().filter(|e| e.source == level).map(|e| (e.name.as_str(), e)).collect();
    let mut ops = Vec::new();
    for (k, v) in desired {
        match at_level.get(k.as_str()) {
            Some(e) if e.sensitive || e.value.as_deref() == Some(v.as_str()) => {}
            _ => ops.push(ConfigOp::Set(k.clone(), v.clone())),
        }
    }
    for k in at_level.keys().filter(|k| !desired.contains_key(**k) && managed.contains(**k)) {
        ops.push(ConfigOp::Delete(k.to_string()));
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, value: &str, source: ConfigSource) -> ConfigEntry {
        ConfigEntry { name: name.into(), value: Some(value.into()), read_only: false, source, sensitive: false }
    }

    fn managed(keys: &[&str]) -> BTreeSet<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn sets_changed_and_missing_keys_and_deletes_removed_managed_ones() {
        let desired = BTreeMap::from([("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())]);
        let current = vec![
            entry("a", "1", ConfigSource::DynamicBroker),
            entry("b", "9", ConfigSource::DynamicBroker),
            entry("c", "3", ConfigSource::DynamicBroker),
            entry("d", "4", ConfigSource::StaticBroker),
            entry("e", "5", ConfigSource::DynamicBroker),
        ];
        // `c` was set by the operator and left the spec; `e` was set by someone else.
        assert_eq!(
            config_ops(&desired, &current, ConfigSource::DynamicBroker, &managed(&["a", "c"])),
            vec![ConfigOp::Set("b".into(), "2".into()), ConfigOp::Delete("c".into())]
        );
        // Same values: nothing to do (a second pass is empty).
        let applied = vec![entry("a", "1", ConfigSource::DynamicBroker), entry("b", "2", ConfigSource::DynamicBroker)];
        assert_eq!(config_ops(&desired, &applied, ConfigSource::DynamicBroker, &managed(&["a", "b"])), vec![]);
        // Another level's entries are not touched.
        assert_eq!(
            config_ops(&BTreeMap::new(), &current, ConfigSource::DynamicDefaultBroker, &managed(&["a", "c", "d"])),
            vec![],
            "static and per-broker keys are left alone when syncing the cluster-wide level"
        );
    }

    #[test]
    fn sensitive_values_are_set_once() {
        let desired = BTreeMap::from([("pw".to_string(), "secret".to_string())]);
        let mut e = entry("pw", "", ConfigSource::DynamicBroker);
        e.value = None;
        e.sensitive = true;
        let none = BTreeSet::new();
        assert_eq!(config_ops(&desired, &[e], ConfigSource::DynamicBroker, &none), vec![]);
        assert_eq!(
            config_ops(&desired, &[], ConfigSource::DynamicBroker, &none),
            vec![ConfigOp::Set("pw".into(), "secret".into())]
        );
    }
}

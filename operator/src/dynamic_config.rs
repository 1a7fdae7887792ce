//! Dynamic broker configs applied through the Admin API, without a restart:
//! `spec.clusterWideConfig` as the cluster-wide defaults and each broker's
//! `brokerConfig.config` (over its group's) as that broker's own. The keys set are recorded in
//! `status.dynamicConfigKeys`, so a key removed from the spec is deleted from Kafka while keys
//! that Kafka or other tools set are left alone.
//!
//! [`read`] asks Kafka (dereference step); [`plan`] decides the changes (pure).

use std::collections::{BTreeMap, BTreeSet};

use koperator_shared::api::kafkacluster::DynamicConfigKeys;
use koperator_shared::kafka::dynamic::config_ops;
use koperator_shared::kafka::{Admin, ConfigEntry, ConfigOp, ConfigResource, ConfigSource, Error};
use koperator_shared::render;
use koperator_shared::rules::properties;
use koperator_shared::validated::ValidatedCluster;

/// Kafka's current dynamic configs.
#[derive(Debug, Default)]
pub struct DynamicLive {
    /// The cluster-wide dynamic broker defaults.
    pub cluster_wide: Vec<ConfigEntry>,
    /// Each broker-role node's configs, or why Kafka did not describe them.
    pub brokers: BTreeMap<i32, Result<Vec<ConfigEntry>, Error>>,
}

/// Reads the cluster-wide defaults (failing the read) and each broker's configs (a broker's
/// failure is kept per broker).
pub async fn read(admin: &Admin, broker_ids: &[i32]) -> Result<DynamicLive, Error> {
    let cluster_wide = admin.describe_configs(&ConfigResource::BrokerDefaults).await?;
    let mut brokers = BTreeMap::new();
    for id in broker_ids {
        brokers.insert(*id, admin.describe_configs(&ConfigResource::Broker(*id)).await);
    }
    Ok(DynamicLive { cluster_wide, brokers })
}

/// One resource's config changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChange {
    /// What is changed.
    pub resource: ConfigResource,
    /// The broker, for a per-broker change.
    pub broker: Option<i32>,
    /// The changes.
    pub ops: Vec<ConfigOp>,
}

/// What to change, and what the status records afterwards.
#[derive(Debug, Default, PartialEq)]
pub struct DynamicPlan {
    /// Changes to make, cluster-wide first.
    pub changes: Vec<ConfigChange>,
    /// The keys the operator manages once the changes are made.
    pub keys: DynamicConfigKeys,
    /// Brokers whose configs Kafka did not describe, with why.
    pub failed: BTreeMap<i32, String>,
}

/// `key=value` lines as a map (unparseable lines were rejected at admission).
fn parse(text: Option<&str>) -> BTreeMap<String, String> {
    text.and_then(|t| properties::parse(t).ok()).unwrap_or_default().into_iter().collect()
}

/// The changes that make Kafka's dynamic broker configs match the spec. `previous` is what the
/// status says the operator set before.
pub fn plan(cluster: &ValidatedCluster, previous: &DynamicConfigKeys, live: &DynamicLive) -> DynamicPlan {
    let mut out = DynamicPlan::default();
    let wide = parse(cluster.spec.cluster_wide_config.as_deref());
    let managed: BTreeSet<String> = previous.cluster_wide.iter().cloned().collect();
    let ops = config_ops(&wide, &live.cluster_wide, ConfigSource::DynamicDefaultBroker, &managed);
    if !ops.is_empty() {
        out.changes.push(ConfigChange { resource: ConfigResource::BrokerDefaults, broker: None, ops });
    }
    out.keys.cluster_wide = wide.keys().cloned().collect();
    let kraft = cluster.spec.kraft;
    for view in render::brokers(cluster).iter().filter(|b| b.is_broker(kraft)) {
        let id = view.broker.id;
        let mut desired = parse(view.group.and_then(|g| g.config.as_deref()));
        desired.extend(parse(view.broker.broker_config.as_ref().and_then(|c| c.config.as_deref())));
        let managed: BTreeSet<String> = previous.brokers.get(&id.to_string()).into_iter().flatten().cloned().collect();
        let keys: Vec<String> = match live.brokers.get(&id) {
            Some(Ok(current)) => {
                let ops = config_ops(&desired, current, ConfigSource::DynamicBroker, &managed);
                if !ops.is_empty() {
                    out.changes.push(ConfigChange { resource: ConfigResource::Broker(id), broker: Some(id), ops });
                }
                desired.keys().cloned().collect()
            }
            failed => {
                let why = match failed {
                    Some(Err(e)) => e.to_string(),
                    _ => "Kafka was not asked for its configs".to_string(),
                };
                out.failed.insert(id, why);
                // Keep managing what was set before as well as what may be set later.
                managed.into_iter().chain(desired.into_keys()).collect::<BTreeSet<_>>().into_iter().collect()
            }
        };
        if !keys.is_empty() {
            out.keys.brokers.insert(id.to_string(), keys);
        }
    }
    out
}

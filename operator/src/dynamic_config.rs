//! Dynamic broker configs applied through the Admin API, without a restart:
//! `spec.clusterWideConfig` as the cluster-wide defaults and each broker's
//! `brokerConfig.config` (over its group's) as that broker's own. The keys set are recorded in
//! `status.dynamicConfigKeys`, so a key removed from the spec is deleted from Kafka while keys
//! that Kafka or other tools set are left alone.

use std::collections::{BTreeMap, BTreeSet};

use koperator_shared::api::KafkaCluster;
use koperator_shared::api::kafkacluster::DynamicConfigKeys;
use koperator_shared::kafka::dynamic::config_ops;
use koperator_shared::kafka::{Admin, ConfigResource, ConfigSource, Error};
use koperator_shared::render;
use koperator_shared::rules::properties;

/// Outcome of one sync.
#[derive(Debug, Default)]
pub struct Synced {
    /// Keys set or deleted, per resource (for events and logs).
    pub changes: Vec<String>,
    /// Brokers whose per-broker configs could not be applied, with why.
    pub failed: BTreeMap<i32, String>,
    /// The keys the operator now manages (to store in the status).
    pub keys: DynamicConfigKeys,
}

/// `key=value` lines as a map (unparseable lines were rejected at admission).
fn parse(text: Option<&str>) -> BTreeMap<String, String> {
    text.and_then(|t| properties::parse(t).ok()).unwrap_or_default().into_iter().collect()
}

/// Makes one resource's dynamic configs of `level` match `desired`; returns the changes made.
async fn sync_one(
    admin: &Admin,
    res: &ConfigResource,
    level: ConfigSource,
    desired: &BTreeMap<String, String>,
    managed: &BTreeSet<String>,
) -> Result<Option<String>, Error> {
    let current = admin.describe_configs(res).await?;
    let ops = config_ops(desired, &current, level, managed);
    if ops.is_empty() {
        return Ok(None);
    }
    admin.alter_configs(res, &ops).await?;
    Ok(Some(format!("{res}: {ops:?}")))
}

/// Makes Kafka's dynamic broker configs match the spec. `previous` is what the status says the
/// operator set before. A cluster-wide failure fails the sync; a broker's is reported per broker.
pub async fn sync(admin: &Admin, cluster: &KafkaCluster, previous: &DynamicConfigKeys) -> Result<Synced, Error> {
    let mut out = Synced::default();
    let wide = parse(cluster.spec.cluster_wide_config.as_deref());
    let managed: BTreeSet<String> = previous.cluster_wide.iter().cloned().collect();
    if let Some(change) =
        sync_one(admin, &ConfigResource::BrokerDefaults, ConfigSource::DynamicDefaultBroker, &wide, &managed).await?
    {
        out.changes.push(change);
    }
    out.keys.cluster_wide = wide.keys().cloned().collect();
    let kraft = cluster.spec.kraft;
    for view in render::brokers(cluster).iter().filter(|b| b.is_broker(kraft)) {
        let id = view.broker.id;
        let mut desired = parse(view.group.and_then(|g| g.config.as_deref()));
        desired.extend(parse(view.broker.broker_config.as_ref().and_then(|c| c.config.as_deref())));
        let before: Vec<String> = previous.brokers.get(&id.to_string()).cloned().unwrap_or_default();
        let managed: BTreeSet<String> = before.iter().cloned().collect();
        let res = ConfigResource::Broker(id);
        let keys = match sync_one(admin, &res, ConfigSource::DynamicBroker, &desired, &managed).await {
            Ok(change) => {
                out.changes.extend(change);
                desired.keys().cloned().collect()
            }
            Err(e) => {
                out.failed.insert(id, e.to_string());
                // Keep managing what was set before as well as what may have been set now.
                managed.into_iter().chain(desired.keys().cloned()).collect::<BTreeSet<_>>().into_iter().collect()
            }
        };
        if !Vec::is_empty(&keys) {
            out.keys.brokers.insert(id.to_string(), keys);
        }
    }
    Ok(out)
}

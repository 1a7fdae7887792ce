//! Status of a KafkaCluster: Koperator's `state`/`brokersState` plus Ready, Reconciling and
//! Degraded conditions with observedGeneration.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use koperator_shared::api::common::condition;

/// Koperator's cluster states.
pub mod state {
    /// Brokers are being created or changed.
    pub const RECONCILING: &str = "ClusterReconciling";
    /// A rolling restart is in progress.
    pub const ROLLING_UPGRADING: &str = "ClusterRollingUpgrading";
    /// Every broker runs its desired configuration.
    pub const RUNNING: &str = "ClusterRunning";
}

/// Sets condition `type_` in `conditions`, keeping `lastTransitionTime` when the status did not
/// change.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    let status = if status { "True" } else { "False" }.to_string();
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status {
            c.last_transition_time = Time(k8s_openapi::jiff::Timestamp::now());
        }
        c.status = status;
        c.reason = reason.to_string();
        c.message = message.to_string();
        c.observed_generation = generation;
        return;
    }
    conditions.push(Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::now()),
    });
}

/// Sets Ready/Reconciling/Degraded together.
pub fn set_all(
    conditions: &mut Vec<Condition>,
    ready: bool,
    reconciling: bool,
    degraded: Option<(&str, &str)>,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    set_condition(conditions, condition::READY, ready, reason, message, generation);
    set_condition(conditions, condition::RECONCILING, reconciling, reason, message, generation);
    match degraded {
        Some((r, m)) => set_condition(conditions, condition::DEGRADED, true, r, m, generation),
        None => set_condition(conditions, condition::DEGRADED, false, "AsExpected", "", generation),
    }
}

/// Equal ignoring transition times (so an unchanged status is not rewritten).
pub fn same_conditions(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.type_ == y.type_
                && x.status == y.status
                && x.reason == y.reason
                && x.message == y.message
                && x.observed_generation == y.observed_generation
        })
}

/// Replaces the status of `name` as a whole (a JSON patch `add /status`): unlike a merge
/// patch, entries that left the status (a removed broker's state, a field now unset) go too.
pub async fn replace<K, S>(api: &kube::Api<K>, name: &str, status: &S) -> Result<(), crate::controller::KubeError>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: serde::Serialize,
{
    let value = serde_json::to_value(status).expect("statuses serialize");
    let patch: json_patch::Patch =
        serde_json::from_value(serde_json::json!([{"op": "add", "path": "/status", "value": value}]))
            .expect("a valid JSON patch");
    api.patch_status(name, &kube::api::PatchParams::default(), &kube::api::Patch::Json::<()>(patch))
        .await
        .map_err(crate::controller::kube_err("replace the status of", format!("{}/{name}", K::kind(&()))))?;
    Ok(())
}

/// Publishes an Event about `obj` (a failure to publish is logged, never fatal).
pub async fn publish<K>(
    recorder: &kube::runtime::events::Recorder,
    obj: &K,
    type_: kube::runtime::events::EventType,
    reason: &str,
    note: &str,
) where
    K: kube::Resource<DynamicType = ()>,
{
    let ev = kube::runtime::events::Event {
        type_,
        reason: reason.into(),
        note: Some(note.into()),
        action: reason.into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, "could not publish event");
    }
}

//! Carrying out one alert's command: read the KafkaCluster (and the PVC the alert names),
//! decide with [`koperator_shared::alerts`], check the result against the admission rules,
//! and write `spec.brokers` with the record of the firing in one patch that fails if the
//! cluster changed meanwhile.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use koperator_shared::alerts::{self, Alert, ClusterKey, Command, Refusal};
use koperator_shared::api::KafkaCluster;
use koperator_shared::render::objects::MOUNT_PATH_ANNOTATION;
use koperator_shared::validated::ValidatedCluster;

use crate::controller::Context;

/// What came of a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Carried out (or found carried out for this firing).
    Done(String),
    /// Not now; tried again while the alert fires.
    Deferred(String),
    /// Never for this firing; a Warning Event says why.
    Refused(String),
}

impl Outcome {
    /// What to tell the sender.
    pub fn message(&self) -> &str {
        match self {
            Outcome::Done(m) | Outcome::Deferred(m) | Outcome::Refused(m) => m,
        }
    }
}

impl From<Refusal> for Outcome {
    fn from(r: Refusal) -> Self {
        Outcome::Refused(r.0)
    }
}

/// Whether `kc` is in the middle of something an alert must not add to: a broker or disk step
/// of Cruise Control not finished yet (Koperator's rule), as the cluster controller tells them.
fn busy(kc: &KafkaCluster) -> Option<String> {
    use crate::kafkacluster::{graceful, graceful_disks};
    let states = kc.status.as_ref().and_then(|s| s.brokers_state.as_ref());
    for (id, st) in states.into_iter().flatten() {
        let g = &st.graceful_action_state;
        if graceful::in_progress(&g.cruise_control_state) {
            return Some(format!("broker {id} is {}", g.cruise_control_state));
        }
        for (path, v) in g.volume_states.iter().flatten() {
            if graceful_disks::in_progress(&v.cruise_control_volume_state) {
                return Some(format!("disk {path} of broker {id} is {}", v.cruise_control_volume_state));
            }
        }
    }
    None
}

/// How many times a write that lost a race with another writer is redone.
const ATTEMPTS: usize = 3;

/// The broker a PVC belongs to, as its labels and annotation say.
struct Disk {
    cluster: ClusterKey,
    broker: i32,
    mount_path: String,
    request: String,
}

async fn disk_of(ctx: &Context, pvc: &alerts::PvcKey) -> Result<Disk, Outcome> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &pvc.namespace);
    let found =
        api.get_opt(&pvc.name).await.map_err(|e| Outcome::Deferred(format!("cannot read PVC {}: {e}", pvc.name)))?;
    let p = found.ok_or_else(|| Outcome::Refused(format!("PVC {}/{} does not exist", pvc.namespace, pvc.name)))?;
    let label = |k: &str| p.labels().get(k).cloned();
    let (Some(cluster), Some(broker)) = (label(alerts::CLUSTER_LABEL), label(alerts::BROKER_ID_LABEL)) else {
        return Err(Outcome::Refused(format!("PVC {} is not a broker's (no kafka_cr and brokerId labels)", pvc.name)));
    };
    let broker = broker.parse().map_err(|_| Outcome::Refused(format!("PVC {}: brokerId {broker:?}", pvc.name)))?;
    let mount_path = p.annotations().get(MOUNT_PATH_ANNOTATION).cloned().unwrap_or_default();
    let request = p
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref()?.requests.as_ref()?.get("storage"))
        .map(|q| q.0.clone())
        .unwrap_or_default();
    Ok(Disk { cluster: ClusterKey { namespace: pvc.namespace.clone(), name: cluster }, broker, mount_path, request })
}

/// Carries out `cmd` of `alert`; the cluster it concerns, when known, and what came of it.
pub async fn act(ctx: &Context, alert: &Alert, cmd: &Command) -> (Option<ClusterKey>, Outcome) {
    let disk = match cmd {
        Command::AddPvc { pvc, .. } | Command::ResizePvc { pvc, .. } => match disk_of(ctx, pvc).await {
            Ok(d) => Some(d),
            Err(o) => return (None, o),
        },
        _ => None,
    };
    let cluster = match (cmd.cluster(), &disk) {
        (Some(cluster), _) => cluster.clone(),
        (None, Some(d)) => d.cluster.clone(),
        (None, None) => unreachable!("PVC commands read their disk"),
    };
    let api: Api<KafkaCluster> = Api::namespaced(ctx.client.clone(), &cluster.namespace);
    let mut outcome = Outcome::Deferred("the KafkaCluster kept changing".into());
    for _ in 0..ATTEMPTS {
        let kc = match api.get_opt(&cluster.name).await {
            Ok(Some(kc)) => kc,
            Ok(None) => {
                let why = format!("KafkaCluster {}/{} does not exist", cluster.namespace, cluster.name);
                return (Some(cluster), Outcome::Refused(why));
            }
            Err(e) => return (Some(cluster), Outcome::Deferred(format!("cannot read the KafkaCluster: {e}"))),
        };
        match attempt(ctx, &api, &kc, alert, cmd, disk.as_ref()).await {
            Ok(Some(o)) => {
                outcome = o;
                report(ctx, &kc, alert, cmd, &outcome).await;
                break;
            }
            Ok(None) => continue,
            Err(o) => {
                outcome = o;
                report(ctx, &kc, alert, cmd, &outcome).await;
                break;
            }
        }
    }
    (Some(cluster), outcome)
}

/// Logs the outcome and tells it in an Event on the KafkaCluster (none while deferred: the
/// command is tried again every few seconds).
async fn report(ctx: &Context, kc: &KafkaCluster, alert: &Alert, cmd: &Command, outcome: &Outcome) {
    let note = format!("alert {} ({}): {}", alert.name(), cmd.name(), outcome.message());
    match outcome {
        Outcome::Done(_) => {
            info!(cluster = %kc.name_any(), %note, "alert command carried out");
            ctx.publish(kc, EventType::Normal, "AlertCommand", &note).await;
        }
        Outcome::Refused(_) => {
            warn!(cluster = %kc.name_any(), %note, "alert command refused");
            ctx.publish(kc, EventType::Warning, "AlertRefused", &note).await;
        }
        Outcome::Deferred(_) => info!(cluster = %kc.name_any(), %note, "alert command deferred"),
    }
}

/// One try on `kc` as read: `Ok(None)` when it changed before the write (read it again).
async fn attempt(
    ctx: &Context,
    api: &Api<KafkaCluster>,
    kc: &KafkaCluster,
    alert: &Alert,
    cmd: &Command,
    disk: Option<&Disk>,
) -> Result<Option<Outcome>, Outcome> {
    let key = alert.key();
    if alerts::acted_on(kc, &key) {
        return Ok(Some(Outcome::Done("already carried out for this firing".into())));
    }
    // Limits and impossible changes are refused at once, busy or not; the rest waits for a
    // quiet, running cluster.
    let quiet = || {
        if let Some(why) = busy(kc) {
            return Err(Outcome::Deferred(format!("waiting: {why}")));
        }
        let state = kc.status.as_ref().map(|s| s.state.as_str()).unwrap_or_default();
        if state != crate::status::state::RUNNING {
            return Err(Outcome::Deferred(format!("waiting for the cluster to run (it is {state:?})")));
        }
        Ok(())
    };
    let mut new = kc.clone();
    let done = match cmd {
        Command::UpScale { .. } => {
            let broker = alerts::up_scale(kc, cmd)?;
            let id = broker.id;
            new.spec.brokers.push(broker);
            format!("added broker {id}; Cruise Control gives it partitions once it runs")
        }
        Command::DownScale { broker, .. } => {
            let replicas = match broker {
                Some(_) => BTreeMap::new(),
                None => {
                    quiet()?;
                    replicas(ctx, kc).await?
                }
            };
            let id = alerts::down_scale(kc, *broker, &replicas)?;
            new.spec.brokers.retain(|b| b.id != id);
            format!("removing broker {id}; Cruise Control moves its partitions off first")
        }
        Command::AddPvc { .. } => {
            let d = disk.expect("PVC commands read their disk");
            let path = alerts::add_disk(&mut new, d.broker, cmd, &key)?;
            format!("added disk {path} to broker {}", d.broker)
        }
        Command::ResizePvc { .. } => {
            let d = disk.expect("PVC commands read their disk");
            let size = alerts::grow_disk(&mut new, d.broker, &d.mount_path, &d.request, cmd)?;
            format!("grew disk {} of broker {} from {} to {size} bytes", d.mount_path, d.broker, d.request)
        }
    };
    if let Err(e) = ValidatedCluster::new(&new, &ctx.rules) {
        return Err(Outcome::Refused(format!("the change would make the KafkaCluster invalid: {e}")));
    }
    // The webhook's update rules too (it may not be installed, or bypassed).
    let defaulted = |k: &KafkaCluster| koperator_shared::defaults::defaulted(k).map(|k| k.spec);
    if let (Ok(old), Ok(next)) = (defaulted(kc), defaulted(&new)) {
        let verdict = koperator_shared::rules::kafkacluster::validate_update(&old, &next, &ctx.rules);
        if !verdict.allowed() {
            let errors: Vec<String> = verdict.errors.iter().map(ToString::to_string).collect();
            return Err(Outcome::Refused(format!("the admission rules refuse the change: {}", errors.join("; "))));
        }
    }
    quiet()?;
    let mut annotations = kc.annotations().clone();
    let acted = alerts::record_acted_on(annotations.get(alerts::ACTED_ON_ANNOTATION).map(String::as_str), &key);
    annotations.insert(alerts::ACTED_ON_ANNOTATION.into(), acted);
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": kc.resource_version()},
        {"op": "replace", "path": "/spec/brokers", "value": new.spec.brokers},
        {"op": "add", "path": "/metadata/annotations", "value": annotations},
    ]))
    .expect("a valid JSON patch");
    match api.patch(&kc.name_any(), &PatchParams::default(), &Patch::Json::<()>(patch)).await {
        Ok(_) => Ok(Some(Outcome::Done(done))),
        // The cluster changed since it was read (the test op failed, or a conflict).
        Err(kube::Error::Api(s)) if s.code == 409 || (s.code == 422 && s.message.contains("test")) => Ok(None),
        // The webhook or the API server refused the change: say so, change nothing.
        Err(kube::Error::Api(s)) if (400..500).contains(&s.code) => {
            Err(Outcome::Refused(format!("the API server refused the change: {}", s.message)))
        }
        Err(e) => Err(Outcome::Deferred(format!("cannot write the KafkaCluster: {e}"))),
    }
}

/// Partition replicas per broker, from Kafka (downScale without a named broker; a broker
/// missing holds none).
async fn replicas(ctx: &Context, kc: &KafkaCluster) -> Result<BTreeMap<i32, usize>, Outcome> {
    let cluster = ValidatedCluster::new(kc, &ctx.rules)
        .map_err(|e| Outcome::Refused(format!("the KafkaCluster is not valid: {e}")))?;
    crate::kafkacluster::dereference::read_replicas(&cluster, ctx)
        .await
        .ok_or_else(|| Outcome::Deferred("cannot read the partition replicas from Kafka".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn busy_while_a_graceful_step_is_not_finished() {
        let mut kc: KafkaCluster = serde_json::from_value(json!({
            "apiVersion": "kafka.banzaicloud.io/v1beta1", "kind": "KafkaCluster",
            "metadata": {"name": "kafka", "namespace": "kafka"},
            "spec": {"listenersConfig": {"internalListeners": []}, "brokers": [{"id": 1}]},
        }))
        .unwrap();
        assert_eq!(busy(&kc), None);
        let state = |s: &str, disk: &str| json!({"brokersState": {"1": {"gracefulActionState": {"cruiseControlState": s, "volumeStates": {"/kafka-logs": {"cruiseControlVolumeState": disk}}}}}});
        for (s, d, is_busy) in [
            ("GracefulUpscaleSucceeded", "GracefulDiskRebalanceSucceeded", false),
            ("", "", false),
            ("GracefulUpscaleRunning", "", true),
            ("GracefulDownscaleRequired", "", true),
            ("GracefulDownscaleCompletedWithError", "", true),
            ("GracefulUpscaleSucceeded", "GracefulDiskRemovalScheduled", true),
        ] {
            kc.status = Some(serde_json::from_value(state(s, d)).unwrap());
            assert_eq!(busy(&kc).is_some(), is_busy, "{s} {d}");
        }
    }
}

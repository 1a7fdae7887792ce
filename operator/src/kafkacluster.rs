//! The KafkaCluster controller: defaults and rules in memory, then per-broker ConfigMaps, PVCs
//! and Pods, cluster Services and PDB, one-at-a-time restarts of out-of-date brokers, status.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{EventType, Recorder, Reporter};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use koperator_shared::api::KafkaCluster;
use koperator_shared::api::common::PAUSE_ANNOTATION;
use koperator_shared::api::kafkacluster::{BrokerState, KafkaClusterStatus};
use koperator_shared::defaults;
use koperator_shared::render::{self, objects};
use koperator_shared::rules::{self, RuleConfig};

use crate::apply::{APPLIED_HASH, apply, hash_of, owned_by};
use crate::dynamic_config;
use crate::kafka_access::KafkaAccess;
use crate::metrics::{Metrics, ResultLabel};
use crate::rolling::{self, Decision};
use crate::status::{self, state};

/// Annotation that lets the operator delete the Pods of brokers removed from `spec.brokers`
/// (until Cruise Control draining exists, removal waits for it). PVCs are kept regardless.
pub const ALLOW_BROKER_REMOVAL: &str = "koperator.banzaicloud.io/allow-broker-removal";

/// Finalizer of KafkaClusters (Koperator's name).
pub const FINALIZER: &str = "finalizer.kafkaclusters.kafka.banzaicloud.io";
/// Opt-in: delete the cluster's PVCs when the KafkaCluster is deleted (default: keep them).
pub const DELETE_PVCS_ANNOTATION: &str = "koperator.banzaicloud.io/delete-pvcs-on-deletion";

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The object could not be defaulted (does not match its type).
    #[error("the KafkaCluster does not match its schema: {0}")]
    Decode(#[from] serde_json::Error),
}

/// Shared state of the controller.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Event recorder.
    pub recorder: Recorder,
    /// Rule settings.
    pub rules: RuleConfig,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Admin clients of the clusters' Kafka.
    pub kafka: Arc<KafkaAccess>,
}

impl Context {
    fn wrote(&self, did: bool) {
        if did {
            self.metrics.writes.inc();
        }
    }
}

/// Runs the controller until SIGTERM/ctrl-c.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    rules: RuleConfig,
    metrics: Arc<Metrics>,
    kafka: Arc<KafkaAccess>,
) {
    let api = |c: &Client| match &namespace {
        Some(ns) => Api::<KafkaCluster>::namespaced(c.clone(), ns),
        None => Api::<KafkaCluster>::all(c.clone()),
    };
    fn owned<K>(c: &Client, ns: &Option<String>) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        match ns {
            Some(ns) => Api::namespaced(c.clone(), ns),
            None => Api::all(c.clone()),
        }
    }
    let labels = watcher::Config::default().labels("app=kafka");
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter { controller: "koperator".into(), instance: std::env::var("POD_NAME").ok() },
        ),
        rules,
        metrics,
        kafka,
    });
    Controller::new(api(&client), watcher::Config::default())
        .owns(owned::<Pod>(&client, &namespace), labels.clone())
        .owns(owned::<ConfigMap>(&client, &namespace), labels.clone())
        .owns(owned::<Service>(&client, &namespace), labels)
        .shutdown_on_signal()
        .run(timed_reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                warn!(error = %e, "reconcile failed");
            }
        })
        .await;
}

/// Backs off on errors.
pub fn error_policy(_: Arc<KafkaCluster>, err: &Error, _: Arc<Context>) -> Action {
    warn!(error = %err, "reconcile error; retrying in 15s");
    Action::requeue(Duration::from_secs(15))
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// [`reconcile`] with its duration and result recorded.
pub async fn timed_reconcile(kc: Arc<KafkaCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile(kc, ctx.clone()).await;
    ctx.metrics.duration.observe(started.elapsed().as_secs_f64());
    let label = ResultLabel { result: if result.is_ok() { "ok" } else { "error" } };
    ctx.metrics.reconciles.get_or_create(&label).inc();
    result
}

/// One reconcile pass.
pub async fn reconcile(kc: Arc<KafkaCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = kc.namespace().unwrap_or_default();
    let name = kc.name_any();
    let kc_api: Api<KafkaCluster> = Api::namespaced(ctx.client.clone(), &ns);
    if kc.meta().deletion_timestamp.is_some() {
        // Pods, ConfigMaps and Services go with their owner; PVCs are kept unless opted in.
        ctx.kafka.forget(&kc);
        if kc.finalizers().iter().any(|f| f == FINALIZER) {
            if kc.annotations().get(DELETE_PVCS_ANNOTATION).is_some_and(|v| v == "true") {
                let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
                let lp = ListParams::default().labels(&format!("app=kafka,kafka_cr={name}"));
                for pvc in pvcs.list(&lp).await? {
                    pvcs.delete(&pvc.name_any(), &DeleteParams::default()).await?;
                }
                info!(%ns, %name, "deleted the cluster's PVCs as its {DELETE_PVCS_ANNOTATION} annotation asks");
            }
            let rest: Vec<String> = kc.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
            kc_api
                .patch(&name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": rest}})))
                .await?;
        }
        return Ok(Action::await_change());
    }
    if !kc.finalizers().iter().any(|f| f == FINALIZER) {
        let mut all = kc.finalizers().to_vec();
        all.push(FINALIZER.to_string());
        kc_api.patch(&name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": all}}))).await?;
        ctx.wrote(true);
    }
    if kc.annotations().get(PAUSE_ANNOTATION).is_some_and(|v| v == "true") {
        info!(%ns, %name, "paused");
        return Ok(Action::requeue(Duration::from_secs(300)));
    }
    let writes_before = ctx.metrics.writes.get();
    let cluster = defaults::defaulted(kc.as_ref())?;
    let old_status = kc.status.clone().unwrap_or_default();
    let mut st = old_status.clone();
    let generation = kc.meta().generation;

    // Defence in depth: an invalid spec that slipped past admission touches nothing.
    let verdict = rules::kafkacluster::validate(&cluster.spec, &ctx.rules);
    if !verdict.allowed() {
        let msg = verdict.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        status::set_all(&mut st.conditions, false, false, Some(("InvalidSpec", &msg)), "InvalidSpec", &msg, generation);
        write_status(&kc_api, &name, &old_status, st, &ctx).await?;
        return Ok(Action::await_change());
    }

    let mut cluster = cluster;
    if st.cluster_id.is_none() && cluster.spec.kraft {
        st.cluster_id = Some(cluster_id_from_uid(kc.meta().uid.as_deref().unwrap_or_default()));
    }
    let cluster_id = st.cluster_id.clone().unwrap_or_default();
    cluster.status = Some(st.clone());
    let owner = kc.controller_owner_ref(&()).expect("a stored KafkaCluster has a uid");
    let selector = format!("app=kafka,kafka_cr={name}");
    let lp = ListParams::default().labels(&selector);

    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let svcs: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    let live_cms: BTreeMap<String, ConfigMap> = cms.list(&lp).await?.into_iter().map(|o| (o.name_any(), o)).collect();
    let live_pvcs: BTreeMap<String, PersistentVolumeClaim> =
        pvcs.list(&lp).await?.into_iter().map(|o| (o.name_any(), o)).collect();
    let live_pods: BTreeMap<String, Pod> = pods.list(&lp).await?.into_iter().map(|o| (o.name_any(), o)).collect();
    let live_svcs: BTreeMap<String, Service> = svcs.list(&lp).await?.into_iter().map(|o| (o.name_any(), o)).collect();

    let views = render::brokers(&cluster);
    let mut out_of_date: Vec<(i32, String)> = Vec::new();
    let mut brokers_state: BTreeMap<String, BrokerState> = BTreeMap::new();
    let mut all_ready = true;
    for b in &views {
        let id = b.broker.id;
        let objects::BrokerObjects { config_map: mut cm, mut pod, pvcs: disks } =
            objects::broker_objects(&cluster, b, &cluster_id);
        owned_by(&mut cm, owner.clone());
        ctx.wrote(apply(&cms, cm.clone(), live_cms.get(&cm.name_any())).await?);
        for pvc in disks {
            // No owner reference: disks outlive brokers and clusters unless the user deletes them.
            ctx.wrote(apply(&pvcs, pvc.clone(), live_pvcs.get(&pvc.name_any())).await?);
        }
        owned_by(&mut pod, owner.clone());
        let pod_name = pod.name_any();
        let in_sync = match live_pods.get(&pod_name) {
            None => {
                ctx.wrote(apply(&pods, pod.clone(), None).await?);
                all_ready = false;
                true
            }
            Some(live) => {
                let desired_hash = hash_of(&pod);
                let same = live.annotations().get(APPLIED_HASH) == Some(&desired_hash);
                if !same {
                    debug!(broker = id, live = ?live.annotations().get(APPLIED_HASH), desired = desired_hash, uid = ?live.metadata.uid, "broker pod out of date");
                    out_of_date.push((id, pod_name.clone()));
                }
                all_ready &= pod_ready(live) && live.meta().deletion_timestamp.is_none();
                same
            }
        };
        let previous =
            old_status.brokers_state.as_ref().and_then(|m| m.get(&id.to_string())).cloned().unwrap_or_default();
        brokers_state.insert(
            id.to_string(),
            BrokerState {
                configuration_state: if in_sync { "ConfigInSync" } else { "ConfigOutOfSync" }.into(),
                rack_awareness_state: previous.rack_awareness_state.clone(),
                image: pod.spec.as_ref().and_then(|s| s.containers[0].image.clone()),
                ..previous
            },
        );
    }
    let desired_svcs = objects::services(&cluster);
    let wanted_svcs: BTreeSet<String> = desired_svcs.iter().map(|s| s.name_any()).collect();
    for mut svc in desired_svcs {
        owned_by(&mut svc, owner.clone());
        ctx.wrote(apply(&svcs, svc.clone(), live_svcs.get(&svc.name_any())).await?);
    }
    if let Some(mut pdb) = objects::pdb(&cluster) {
        owned_by(&mut pdb, owner.clone());
        let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &ns);
        let live = api.get_opt(&pdb.name_any()).await?;
        ctx.wrote(apply(&api, pdb, live.as_ref()).await?);
    }

    // Brokers removed from the spec.
    let wanted: BTreeSet<String> = views.iter().map(|b| b.broker.id.to_string()).collect();
    let removal_allowed = kc.annotations().get(ALLOW_BROKER_REMOVAL).is_some_and(|v| v == "true");
    let mut waiting_removal = Vec::new();
    for (pname, p) in &live_pods {
        let Some(id) = p.labels().get("brokerId") else { continue };
        if wanted.contains(id) {
            continue;
        }
        if removal_allowed {
            if p.meta().deletion_timestamp.is_none() {
                pods.delete(pname, &DeleteParams::default()).await?;
                ctx.wrote(true);
                let _ = cms.delete(&format!("{name}-config-{id}"), &DeleteParams::default()).await;
                publish(
                    &ctx,
                    &kc,
                    EventType::Normal,
                    "BrokerRemoved",
                    &format!("broker {id} removed from the spec; its PVCs are kept"),
                )
                .await;
            }
        } else {
            waiting_removal.push(id.clone());
        }
    }
    // Services no longer wanted (removed brokers or listeners, headless switch): no data in them.
    for sname in live_svcs.keys().filter(|n| !wanted_svcs.contains(*n)) {
        svcs.delete(sname, &DeleteParams::default()).await?;
        ctx.wrote(true);
    }

    // Kafka-side state, once every broker is up: dynamic configs, then at most one restart.
    let admin = ctx.kafka.admin(&cluster);
    if all_ready {
        let per_broker = match &admin {
            Ok(admin) => {
                match dynamic_config::sync(admin, &cluster, &old_status.dynamic_config_keys.clone().unwrap_or_default())
                    .await
                {
                    Ok(synced) => {
                        st.dynamic_config_keys = Some(synced.keys.clone()).filter(|k| *k != Default::default());
                        if !synced.changes.is_empty() {
                            let note = format!(
                                "applied dynamic broker configs without a restart: {}",
                                synced.changes.join("; ")
                            );
                            info!(%ns, %name, "{note}");
                            publish(&ctx, &kc, EventType::Normal, "DynamicConfigUpdated", &note).await;
                        }
                        for (id, why) in &synced.failed {
                            warn!(%ns, %name, broker = id, error = %why, "per-broker dynamic config not applied");
                        }
                        Ok(synced.failed)
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(why) => Err(why.clone()),
        };
        for (id, state) in brokers_state.iter_mut() {
            state.per_broker_configuration_state = match &per_broker {
                Ok(failed) if id.parse().is_ok_and(|id: i32| failed.contains_key(&id)) => "PerBrokerConfigError",
                Ok(_) => "PerBrokerConfigInSync",
                Err(_) => "PerBrokerConfigOutOfSync",
            }
            .into();
        }
        if let Err(why) = &per_broker {
            debug!(%ns, %name, %why, "dynamic broker configs not synced");
        }
    } else {
        for (id, state) in brokers_state.iter_mut() {
            let previous = old_status.brokers_state.as_ref().and_then(|m| m.get(id));
            state.per_broker_configuration_state = previous
                .map(|p| p.per_broker_configuration_state.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "PerBrokerConfigOutOfSync".into());
        }
    }

    // One node at a time, only while every node is up and Kafka says it is safe.
    let rolling = !out_of_date.is_empty();
    let mut roll_blocked: Option<String> = None;
    if rolling && all_ready {
        let ids: Vec<i32> = out_of_date.iter().map(|(id, _)| *id).collect();
        let decision = match &admin {
            Ok(admin) => rolling::next_restart(admin, &cluster, &ids).await,
            Err(why) => Decision::Wait(why.clone()),
        };
        match decision {
            Decision::Restart(id) => {
                let pod_name = &out_of_date.iter().find(|(i, _)| *i == id).expect("chosen among out_of_date").1;
                info!(%ns, %name, broker = id, "restarting broker to apply a new spec");
                pods.delete(pod_name, &DeleteParams::default()).await?;
                ctx.wrote(true);
                publish(
                    &ctx,
                    &kc,
                    EventType::Normal,
                    "RollingRestart",
                    &format!("restarting broker {id}: its Pod spec or configuration changed; Kafka reports it safe"),
                )
                .await;
            }
            Decision::Wait(why) => {
                info!(%ns, %name, %why, "rolling restart waits");
                roll_blocked = Some(why);
            }
        }
    }

    st.brokers_state = Some(brokers_state);
    let (state, ready, reason, message) = if let Some(why) = &roll_blocked {
        (
            state::ROLLING_UPGRADING,
            false,
            "RollingRestartWaiting",
            format!("{} broker(s) out of date; no restart is safe yet: {why}", out_of_date.len()),
        )
    } else if rolling {
        (state::ROLLING_UPGRADING, false, "RollingRestart", format!("{} broker(s) out of date", out_of_date.len()))
    } else if !all_ready {
        (state::RECONCILING, false, "BrokersStarting", "waiting for broker Pods to be Ready".to_string())
    } else {
        (state::RUNNING, true, "Running", "every broker runs its desired configuration".to_string())
    };
    st.state = state.into();
    let degraded = (!waiting_removal.is_empty()).then(|| {
        format!(
            "brokers {} were removed from spec.brokers; annotate the KafkaCluster with {ALLOW_BROKER_REMOVAL}=\"true\" to delete their Pods (PVCs are kept)",
            waiting_removal.join(",")
        )
    });
    status::set_all(
        &mut st.conditions,
        ready,
        !ready,
        degraded.as_deref().map(|m| ("BrokerRemovalPending", m)),
        reason,
        &message,
        generation,
    );
    st.observed_generation = generation;
    write_status(&kc_api, &name, &old_status, st, &ctx).await?;
    let writes = ctx.metrics.writes.get() - writes_before;
    debug!(%ns, %name, writes, state, "reconciled");
    Ok(if ready && degraded.is_none() {
        Action::requeue(Duration::from_secs(300))
    } else {
        Action::requeue(Duration::from_secs(5))
    })
}

async fn write_status(
    api: &Api<KafkaCluster>,
    name: &str,
    old: &KafkaClusterStatus,
    new: KafkaClusterStatus,
    ctx: &Context,
) -> Result<(), Error> {
    let unchanged = old.state == new.state
        && old.brokers_state == new.brokers_state
        && old.cluster_id == new.cluster_id
        && old.observed_generation == new.observed_generation
        && old.dynamic_config_keys == new.dynamic_config_keys
        && status::same_conditions(&old.conditions, &new.conditions);
    if unchanged {
        return Ok(());
    }
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": new}))).await?;
    ctx.wrote(true);
    Ok(())
}

async fn publish(ctx: &Context, kc: &KafkaCluster, type_: EventType, reason: &str, note: &str) {
    status::publish(&ctx.recorder, kc, type_, reason, note).await
}

/// The KRaft cluster id: the KafkaCluster's UID as Kafka prints a Uuid (URL-safe base64 of its
/// 16 bytes, no padding). Derived, not random, so every reconcile agrees on it even when the
/// cached status lags behind; kept in the status for users.
pub fn cluster_id_from_uid(uid: &str) -> String {
    let hex: String = uid.chars().filter(char::is_ascii_hexdigit).collect();
    let bytes: Vec<u8> =
        (0..hex.len() / 2).filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect();
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
}

#[cfg(test)]
mod tests {
    use super::cluster_id_from_uid;

    #[test]
    fn cluster_ids_look_like_kafka_uuids() {
        let id = cluster_id_from_uid("0a1b2c3d-4e5f-6789-abcd-ef0123456789");
        assert_eq!(id, "ChssPU5fZ4mrze8BI0VniQ");
        assert_eq!(id.len(), 22);
        assert_ne!(id, cluster_id_from_uid("0a1b2c3d-4e5f-6789-abcd-ef0123456788"));
    }
}

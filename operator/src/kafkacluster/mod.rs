//! The KafkaCluster controller, in three steps (DESIGN §2, §8):
//!
//! ```text
//! KafkaCluster ─► ValidatedCluster::new (defaults + rules) ─► dereference ─► LiveState
//!              └► invalid: plan::rejected                     plan(&ValidatedCluster, &LiveState) ─► Plan ─► execute
//! ```
//!
//! [`dereference`] only reads, [`plan`] only decides (pure, table-tested), [`execute`] only
//! writes. A new feature adds a field to `LiveState`, a branch to `plan` with table cases, and a
//! step to `execute`.

pub mod admin_credential;
pub mod broker_failure;
pub mod certificates;
pub mod dereference;
pub mod execute;
pub mod external_facts;
pub mod graceful;
pub mod graceful_disks;
#[cfg(test)]
mod graceful_disks_tests;
#[cfg(test)]
mod graceful_tests;
pub mod own_certificates;
pub mod pki_status;
pub mod plan;
pub mod routes;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use kube::api::{DeleteParams, ListParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tracing::info;

use koperator_shared::api::KafkaCluster;
use koperator_shared::api::cruisecontroloperation::{CruiseControlOperation, KAFKA_CR_LABEL};
use koperator_shared::validated::ValidatedCluster;

use crate::controller::{self, Context, Reconcile, Writes, kube_err};

/// Annotation that makes the operator delete the Pods of brokers removed from `spec.brokers`
/// without draining them first (their partition replicas are not moved: under-replicated, or
/// lost where they were the last copy). Without it a removed broker holding replicas is drained
/// by Cruise Control ([`graceful`]) or waits. PVCs are kept regardless.
pub const FORCE_BROKER_REMOVAL: &str = "koperator.banzaicloud.io/force-broker-removal";
/// Finalizer of KafkaClusters (Koperator's name).
pub const FINALIZER: &str = "finalizer.kafkaclusters.kafka.banzaicloud.io";
/// Opt-in: delete the cluster's PVCs when the KafkaCluster is deleted (default: keep them).
pub const DELETE_PVCS_ANNOTATION: &str = "koperator.banzaicloud.io/delete-pvcs-on-deletion";

/// Errors of one reconcile (an invalid spec is not one: it is a status).
pub type Error = crate::controller::KubeError;

impl Reconcile for KafkaCluster {
    const CONTROLLER: &'static str = "kafkacluster";
    const FINALIZER: &'static str = FINALIZER;
    type Error = Error;

    async fn apply(kc: Arc<Self>, ctx: &Context, writes: &Writes) -> Result<Action, Error> {
        match ValidatedCluster::new(&kc, &ctx.rules) {
            // Defence in depth: an invalid spec that slipped past admission touches nothing.
            Err(e) => execute::execute(&kc, None, plan::rejected(&kc, &e), ctx, writes).await,
            Ok(cluster) => {
                let live = dereference::dereference(&cluster, ctx).await?;
                let plan = plan::plan(&cluster, &live);
                execute::execute(&kc, Some(&cluster), plan, ctx, writes).await
            }
        }
    }

    /// Pods, ConfigMaps and Services go with their owner; PVCs are kept unless opted in. The
    /// cluster's certificate expiry series go at once.
    async fn cleanup(kc: Arc<Self>, ctx: &Context, writes: &Writes) -> Result<Action, Error> {
        ctx.kafka.forget(&kc);
        ctx.versions.forget(&kc.uid().unwrap_or_default());
        ctx.metrics.certificate_expiry.forget(&execute::certificate_owner(&kc));
        if kc.annotations().get(DELETE_PVCS_ANNOTATION).is_some_and(|v| v == "true") {
            let (ns, name) = (kc.namespace().unwrap_or_default(), kc.name_any());
            let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
            let lp = ListParams::default().labels(&format!("app=kafka,kafka_cr={name}"));
            let uid = kc.uid().unwrap_or_default();
            let listed = pvcs.list(&lp).await.map_err(kube_err("list", "PersistentVolumeClaim"))?;
            // Only this cluster's disks (labels alone can be copied), and only the very object read.
            for pvc in listed.into_iter().filter(|p| crate::apply::is_ours(p, &uid)) {
                let dp = DeleteParams {
                    preconditions: Some(Preconditions { uid: pvc.uid(), resource_version: None }),
                    ..Default::default()
                };
                pvcs.delete(&pvc.name_any(), &dp)
                    .await
                    .map_err(kube_err("delete", format!("PersistentVolumeClaim/{}", pvc.name_any())))?;
                writes.count(true);
            }
            info!(%ns, %name, "deleted the cluster's PVCs as its {DELETE_PVCS_ANNOTATION} annotation asks");
        }
        Ok(Action::await_change())
    }
}

/// Runs the KafkaCluster controller (owning broker Pods, ConfigMaps, Services, the Deployments
/// of Cruise Control and Envoy, and the CruiseControlOperations it creates).
pub async fn run(ctx: Arc<Context>) {
    let labels = watcher::Config::default().labels("app=kafka");
    // Broker ConfigMaps are `app=kafka`, the JMX exporter's `app=kafka-jmx`, Cruise Control's
    // `app=cruisecontrol` and its exporter's `app=cruisecontrol-jmx`, Envoy's objects
    // `app=envoyingress`, Contour's and the Gateway API's Services `app=contouringress` and
    // `app=gatewayingress` (Koperator's labels): a changed or deleted one is put back at once
    // (their routes, custom resources that may not be installed, at the next reconcile).
    let config_maps =
        watcher::Config::default().labels("app in (kafka,kafka-jmx,cruisecontrol,cruisecontrol-jmx,envoyingress)");
    let services =
        watcher::Config::default().labels("app in (kafka,cruisecontrol,envoyingress,contouringress,gatewayingress)");
    let deployments = watcher::Config::default().labels("app in (cruisecontrol,envoyingress)");
    let c = controller::controller::<KafkaCluster>(&ctx)
        .owns(ctx.watched::<Pod>(), labels)
        .owns(ctx.watched::<ConfigMap>(), config_maps)
        .owns(ctx.watched::<Service>(), services)
        .owns(ctx.watched::<Deployment>(), deployments)
        // The broker up/downscale operations it creates: their progress moves the brokers on.
        .owns(ctx.watched::<CruiseControlOperation>(), watcher::Config::default().labels(KAFKA_CR_LABEL));
    // The alert receiver's count of firing alerts changed: `status.alertCount`.
    let c = match ctx.alerts.take_triggers() {
        Some(triggers) => c.reconcile_on(triggers),
        None => c,
    };
    controller::run(c, ctx).await;
}

/// The KRaft cluster id: the KafkaCluster's UID as Kafka prints a Uuid (URL-safe base64 of its
/// 16 bytes, no padding). Derived, not random, so every reconcile agrees on it even when the
/// cached status lags behind; kept in the status for users.
///
/// Like Kafka's own `Uuid.randomUuid`, never starts with `-`: `kafka-storage format
/// --cluster-id -…` takes it for an option. Such a UID (1 in 64) gets the top bit of its first
/// byte flipped, which turns the leading `-` into an `e`.
pub fn cluster_id_from_uid(uid: &str) -> String {
    let hex: String = uid.chars().filter(char::is_ascii_hexdigit).collect();
    let mut bytes: Vec<u8> =
        (0..hex.len() / 2).filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()).collect();
    let encode = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b);
    if encode(&bytes).starts_with('-')
        && let Some(first) = bytes.first_mut()
    {
        *first ^= 0x80;
    }
    encode(&bytes)
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

    #[test]
    fn cluster_ids_never_start_with_a_dash() {
        // 0xf8 encodes to a leading '-' (62) in URL-safe base64.
        let id = cluster_id_from_uid("f81b2c3d-4e5f-6789-abcd-ef0123456789");
        assert!(id.starts_with('e'), "{id}");
        assert_eq!(id.len(), 22);
        for first in 0..=255u8 {
            let id = cluster_id_from_uid(&format!("{first:02x}1b2c3d-4e5f-6789-abcd-ef0123456789"));
            assert!(!id.starts_with('-'), "{first:02x}: {id}");
        }
    }
}

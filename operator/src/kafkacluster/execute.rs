//! The execute step: carries out a [`Plan`] — server-side applies, UID-checked deletes, the one
//! restart, dynamic configs through the Admin API, Events, then the status; and the
//! certificate expiry metric from the planned status. No decisions beyond recording what
//! Kafka refused.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use tracing::{info, warn};

use koperator_shared::api::cruisecontroloperation::{
    CruiseControlOperation, CruiseControlOperationSpec, CruiseControlTask, ErrorPolicy, KAFKA_CR_LABEL,
};
use koperator_shared::api::{KafkaCluster, KafkaTopic};
use koperator_shared::render::sasl;
use koperator_shared::validated::ValidatedCluster;

use super::Error;
use super::certificates;
use super::plan::{Object, OwnedKind, Plan};
use crate::apply::{FIELD_MANAGER, apply};
use crate::controller::kube_err;
use crate::controller::{Context, Writes};
use crate::metrics::certificate_expiry::Owner;

fn api<K>(ctx: &Context, ns: &str) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    Api::namespaced(ctx.client.clone(), ns)
}

fn precondition(uid: &str) -> DeleteParams {
    DeleteParams {
        preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: None }),
        ..Default::default()
    }
}

/// Deletes `name` if it still has `uid`; gone already is fine.
async fn delete<K>(api: Api<K>, name: &str, uid: &str) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &precondition(uid)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(kube_err("delete", K::kind(&()))(e)),
    }
}

/// Issues the certificates the plan orders (each into its Secret, owned by the cluster) before
/// anything that mounts them is applied. Keys are made here and go nowhere but their Secret.
async fn issue_certificates(
    cluster: &ValidatedCluster,
    plan: &Plan,
    ctx: &Context,
    writes: &Writes,
) -> Result<(), Error> {
    if plan.certificates.is_empty() {
        return Ok(());
    }
    let ns = cluster.namespace().unwrap_or_default();
    let owner = cluster.controller_owner_ref(&()).expect("a stored KafkaCluster has a uid");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let ca = plan.ca.as_ref().map(|(k, chain)| (k, chain.as_str()));
    for order in &plan.certificates {
        let data = match certificates::issue(order, ca, &cluster.name_any(), now, &ctx.pki) {
            Ok(data) => data,
            Err(e) => {
                // Nothing to write; the next pass orders it again.
                warn!(%ns, cluster = %cluster.name_any(), secret = %order.secret, error = %e, "cannot issue a certificate");
                let note = format!("cannot issue the certificate in Secret {}: {e}", order.secret);
                ctx.publish(&**cluster, EventType::Warning, "CertificateFailed", &note).await;
                continue;
            }
        };
        let secrets = api::<Secret>(ctx, &ns);
        if order.action == certificates::Action::Retrust {
            // Only ca.crt: the certificate and key in the Secret stay as they are.
            let patch = serde_json::json!({ "data": data });
            secrets
                .patch(
                    &order.secret,
                    &PatchParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() },
                    &Patch::Merge(&patch),
                )
                .await
                .map_err(kube_err("patch", format!("Secret/{}", order.secret)))?;
        } else {
            let request = match &order.action {
                certificates::Action::NewCa { request: Some(r) } => {
                    Some(BTreeMap::from([(certificates::RENEW_CA_ANNOTATION.to_string(), r.clone())]))
                }
                _ => None,
            };
            let is_ca = matches!(order.action, certificates::Action::NewCa { .. });
            let mut secret = Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some(order.secret.clone()),
                    namespace: Some(ns.clone()),
                    labels: Some(koperator_shared::render::objects::cluster_labels(cluster)),
                    annotations: request,
                    ..Default::default()
                },
                type_: Some(if is_ca { "Opaque" } else { "kubernetes.io/tls" }.into()),
                data: Some(data),
                ..Default::default()
            };
            crate::apply::owned_by(&mut secret, owner.clone());
            apply(&secrets, &secret).await.map_err(kube_err("apply", format!("Secret/{}", order.secret)))?;
        }
        info!(%ns, cluster = %cluster.name_any(), secret = %order.secret, reason = %order.reason, "issued a certificate");
        writes.count(true);
    }
    Ok(())
}

/// Creates the admin SCRAM Secret the plan asks for, with a new random password, owned by the
/// cluster. Never overwrites: an existing Secret of that name (made meanwhile) is left alone.
async fn create_admin_credential(
    cluster: &ValidatedCluster,
    plan: &Plan,
    ctx: &Context,
    writes: &Writes,
) -> Result<(), Error> {
    let Some(name) = &plan.admin_credential else { return Ok(()) };
    let ns = cluster.namespace().unwrap_or_default();
    let password = koperator_shared::kafka::scram::random_password(32);
    let mut secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(koperator_shared::render::objects::cluster_labels(cluster)),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([
            ("username".to_string(), k8s_openapi::ByteString(sasl::ADMIN_USER.as_bytes().to_vec())),
            (sasl::PASSWORD.to_string(), k8s_openapi::ByteString(password.into_bytes())),
        ])),
        ..Default::default()
    };
    crate::apply::owned_by(&mut secret, cluster.controller_owner_ref(&()).expect("a stored KafkaCluster has a uid"));
    match api::<Secret>(ctx, &ns).create(&kube::api::PostParams::default(), &secret).await {
        Ok(_) => {
            info!(%ns, cluster = %cluster.name_any(), secret = %name, "created the admin SCRAM credential");
            writes.count(true);
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(kube_err("create", format!("Secret/{name}"))(e)),
    }
}

/// Creates the CruiseControlOperations the plan asks for (owned by the cluster, labelled
/// `kafka_cr`, `errorPolicy: retry`), then gives each its task through the status subresource,
/// as Koperator does. One that exists already (made by an earlier pass whose status write was
/// lost) is kept; it gets its task only if it has none.
async fn create_operations(kc: &KafkaCluster, plan: &Plan, ctx: &Context, writes: &Writes) -> Result<(), Error> {
    let ns = kc.namespace().unwrap_or_default();
    let ops = api::<CruiseControlOperation>(ctx, &ns);
    for new in &plan.operations {
        let mut op = CruiseControlOperation::new(
            &new.name,
            CruiseControlOperationSpec {
                error_policy: Some(ErrorPolicy::Retry),
                ttl_seconds_after_finished: plan.operation_ttl,
            },
        );
        op.metadata.namespace = Some(ns.clone());
        op.metadata.labels = Some(BTreeMap::from([
            ("app".to_string(), "kafka".to_string()),
            (KAFKA_CR_LABEL.to_string(), kc.name_any()),
        ]));
        crate::apply::owned_by(&mut op, kc.controller_owner_ref(&()).expect("a stored KafkaCluster has a uid"));
        let live = match ops.create(&kube::api::PostParams::default(), &op).await {
            Ok(o) => o,
            Err(kube::Error::Api(e)) if e.code == 409 => {
                ops.get(&new.name).await.map_err(kube_err("get", format!("CruiseControlOperation/{}", new.name)))?
            }
            Err(e) => return Err(kube_err("create", format!("CruiseControlOperation/{}", new.name))(e)),
        };
        writes.count(true);
        if live.status.as_ref().and_then(|s| s.current_task.as_ref()).is_some() {
            continue;
        }
        let task =
            CruiseControlTask { operation: new.operation, parameters: Some(new.parameters()), ..Default::default() };
        let status = serde_json::json!({ "status": { "currentTask": task } });
        ops.patch_status(&new.name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .map_err(kube_err("patch", format!("CruiseControlOperation/{}/status", new.name)))?;
        info!(%ns, cluster = %kc.name_any(), operation = %new.name, kind = new.operation.as_str(), brokers = ?new.brokers, "created a CruiseControlOperation");
    }
    Ok(())
}

/// The owner of `kc`'s certificate expiry series.
pub fn certificate_owner(kc: &KafkaCluster) -> Owner {
    Owner { kind: "KafkaCluster", namespace: kc.namespace().unwrap_or_default(), name: kc.name_any() }
}

/// Carries out `plan` for `kc` (`cluster` is its validated form; absent when the spec was
/// rejected, in which case the plan only sets the status).
pub async fn execute(
    kc: &KafkaCluster,
    cluster: Option<&ValidatedCluster>,
    mut plan: Plan,
    ctx: &Context,
    writes: &Writes,
) -> Result<kube::runtime::controller::Action, Error> {
    let ns = kc.namespace().unwrap_or_default();
    let name = kc.name_any();
    // Every pass, so a restarted operator exports them too; before any write that may fail.
    let certs = super::pki_status::expiry_series(plan.status.certificates.as_ref());
    ctx.metrics.certificate_expiry.set(&certificate_owner(kc), &certs);
    if let Some(cluster) = cluster {
        create_admin_credential(cluster, &plan, ctx, writes).await?;
        issue_certificates(cluster, &plan, ctx, writes).await?;
    }
    for obj in &plan.apply {
        let done = match obj {
            Object::ConfigMap(o) => apply(&api::<ConfigMap>(ctx, &ns), o).await,
            Object::Pvc(o) => apply(&api::<PersistentVolumeClaim>(ctx, &ns), o).await,
            Object::Pod(o) => apply(&api::<Pod>(ctx, &ns), o).await,
            Object::Service(o) => apply(&api::<Service>(ctx, &ns), o).await,
            Object::Pdb(o) => apply(&api::<PodDisruptionBudget>(ctx, &ns), o).await,
            Object::Deployment(o) => apply(&api::<Deployment>(ctx, &ns), o.as_ref()).await,
            Object::Topic(o) => apply(&api::<KafkaTopic>(ctx, &ns), o.as_ref()).await,
            Object::Route(o) => match super::routes::controller_of(o) {
                Some(c) => {
                    let ar = super::routes::api_resource(c);
                    crate::apply::apply_dynamic(&Api::namespaced_with(ctx.client.clone(), &ns, &ar), o).await
                }
                None => Ok(()),
            },
        };
        done.map_err(kube_err("apply", obj.describe()))?;
        writes.count(true);
    }
    if !plan.dynamic.is_empty()
        && let Some(cluster) = cluster
    {
        let mut failed: BTreeMap<Option<i32>, String> = BTreeMap::new();
        let mut done = Vec::new();
        match ctx.kafka.admin(cluster).await {
            Err(e) => {
                failed.insert(None, e.to_string());
            }
            Ok(admin) => {
                for change in &plan.dynamic {
                    match admin.alter_configs(&change.resource, &change.ops).await {
                        Ok(()) => done.push(format!("{}: {:?}", change.resource, change.ops)),
                        Err(e) => {
                            warn!(%ns, %name, resource = %change.resource, error = %e, "dynamic config not applied");
                            failed.insert(change.broker, e.to_string());
                            if change.broker.is_none() {
                                break;
                            }
                        }
                    }
                }
            }
        }
        if !done.is_empty() {
            let note = format!("applied dynamic broker configs without a restart: {}", done.join("; "));
            info!(%ns, %name, "{note}");
            ctx.publish(kc, EventType::Normal, "DynamicConfigUpdated", &note).await;
            writes.count(true);
        }
        plan.record_config_failures(&kc.status.clone().unwrap_or_default(), &failed);
    }
    create_operations(kc, &plan, ctx, writes).await?;
    for d in &plan.delete {
        match d.kind {
            OwnedKind::Pod => delete(api::<Pod>(ctx, &ns), &d.name, &d.uid).await?,
            OwnedKind::ConfigMap => delete(api::<ConfigMap>(ctx, &ns), &d.name, &d.uid).await?,
            OwnedKind::Service => delete(api::<Service>(ctx, &ns), &d.name, &d.uid).await?,
            OwnedKind::Deployment => delete(api::<Deployment>(ctx, &ns), &d.name, &d.uid).await?,
            OwnedKind::Pvc => delete(api::<PersistentVolumeClaim>(ctx, &ns), &d.name, &d.uid).await?,
            OwnedKind::Pdb => delete(api::<PodDisruptionBudget>(ctx, &ns), &d.name, &d.uid).await?,
            OwnedKind::Route(c) => {
                let ar = super::routes::api_resource(c);
                let api = Api::<kube::api::DynamicObject>::namespaced_with(ctx.client.clone(), &ns, &ar);
                match api.delete(&d.name, &precondition(&d.uid)).await {
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    other => other.map(|_| ()).map_err(kube_err("delete", ar.kind.clone()))?,
                }
            }
            OwnedKind::CruiseControlOperation => {
                delete(api::<CruiseControlOperation>(ctx, &ns), &d.name, &d.uid).await?
            }
        }
        writes.count(true);
    }
    if let Some(r) = &plan.restart {
        info!(%ns, %name, broker = r.broker, "restarting broker to apply a new spec");
        delete(api::<Pod>(ctx, &ns), &r.pod, &r.uid).await?;
        writes.count(true);
    }
    for ev in &plan.events {
        let type_ = if ev.warning { EventType::Warning } else { EventType::Normal };
        ctx.publish(kc, type_, ev.reason, &ev.note).await;
        writes.count(true);
    }
    if plan.status_changed {
        crate::status::replace(&api::<KafkaCluster>(ctx, &ns), &name, &plan.status).await?;
        writes.count(true);
    }
    Ok(kube::runtime::controller::Action::requeue(plan.requeue))
}

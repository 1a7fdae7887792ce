//! The KafkaUser controller: the user's ACLs from `topicGrants` (created, and removed when
//! grants shrink or the user is deleted), `status.acls`, and credentials.
//!
//! Credentials: with annotation `koperator.banzaicloud.io/credentials: scram-sha-512` (our
//! addition) the operator generates a password into the Secret `spec.secretName` (keys
//! `username`, `password`, `sasl.jaas.config`; owned by the KafkaUser) and sets the user's
//! SCRAM-SHA-512 credential in Kafka; the principal is `User:<name>`. Without it the principal
//! is Koperator's certificate DN `User:CN=<name>`; issuing mTLS client certificates is not built
//! yet, so only the ACLs are managed then.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{EventType, Recorder, Reporter};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::warn;

use koperator_shared::api::KafkaCluster;
use koperator_shared::api::kafkauser::{KafkaUser, KafkaUserStatus};
use koperator_shared::kafka::user_acls::acls_for;
use koperator_shared::kafka::{AclBinding, AclFilter, Admin, scram};

use crate::kafka_access::KafkaAccess;
use crate::metrics::Metrics;
use crate::status;

/// Finalizer of KafkaUsers (Koperator's name).
pub const FINALIZER: &str = "finalizer.kafkausers.kafka.banzaicloud.io";
/// Annotation choosing the credentials the operator issues (our addition).
pub const CREDENTIALS_ANNOTATION: &str = "koperator.banzaicloud.io/credentials";
/// Value of [`CREDENTIALS_ANNOTATION`] for SCRAM-SHA-512.
pub const SCRAM_SHA_512: &str = "scram-sha-512";

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// Shared state of the controller.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Event recorder.
    pub recorder: Recorder,
    /// Admin clients of the clusters.
    pub kafka: Arc<KafkaAccess>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
}

/// Runs the controller until SIGTERM/ctrl-c.
pub async fn run(client: Client, namespace: Option<String>, kafka: Arc<KafkaAccess>, metrics: Arc<Metrics>) {
    let (users, secrets) = match &namespace {
        Some(ns) => (Api::<KafkaUser>::namespaced(client.clone(), ns), Api::<Secret>::namespaced(client.clone(), ns)),
        None => (Api::<KafkaUser>::all(client.clone()), Api::<Secret>::all(client.clone())),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(
            client,
            Reporter { controller: "koperator".into(), instance: std::env::var("POD_NAME").ok() },
        ),
        kafka,
        metrics,
    });
    Controller::new(users, watcher::Config::default())
        .owns(secrets, watcher::Config::default().labels("app.kubernetes.io/managed-by=koperator"))
        .shutdown_on_signal()
        .run(
            reconcile,
            |_, err, _| {
                warn!(error = %err, "KafkaUser reconcile error; retrying in 15s");
                Action::requeue(Duration::from_secs(15))
            },
            ctx,
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                warn!(error = %e, "KafkaUser reconcile failed");
            }
        })
        .await;
}

/// The Kafka principal of a user.
pub fn principal(user: &KafkaUser) -> String {
    if uses_scram(user) { format!("User:{}", user.name_any()) } else { format!("User:CN={}", user.name_any()) }
}

fn uses_scram(user: &KafkaUser) -> bool {
    user.annotations().get(CREDENTIALS_ANNOTATION).is_some_and(|v| v.eq_ignore_ascii_case(SCRAM_SHA_512))
}

/// One reconcile pass.
pub async fn reconcile(user: Arc<KafkaUser>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = user.namespace().unwrap_or_default();
    let name = user.name_any();
    let api: Api<KafkaUser> = Api::namespaced(ctx.client.clone(), &ns);
    let cluster_ns = user.spec.cluster_ref.namespace_or(&ns).to_string();
    let cluster =
        Api::<KafkaCluster>::namespaced(ctx.client.clone(), &cluster_ns).get_opt(&user.spec.cluster_ref.name).await?;
    let old = user.status.clone().unwrap_or_default();

    if user.meta().deletion_timestamp.is_some() {
        return finalize(&user, &api, cluster.as_ref(), &ctx).await;
    }
    if !user.finalizers().iter().any(|f| f == FINALIZER) {
        let mut finalizers = user.finalizers().to_vec();
        finalizers.push(FINALIZER.into());
        api.patch(&name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": finalizers}})))
            .await?;
        ctx.metrics.writes.inc();
    }
    let mut st = old.clone();
    let (ready, reason, message, requeue) = match &cluster {
        None => (
            false,
            "ClusterNotFound",
            format!("KafkaCluster {cluster_ns}/{} does not exist", user.spec.cluster_ref.name),
            Duration::from_secs(30),
        ),
        Some(cluster) => match ctx.kafka.admin(cluster) {
            Err(why) => (false, "KafkaUnreachable", why, Duration::from_secs(30)),
            Ok(admin) => match sync(&user, &admin, &mut st, &ctx).await {
                Ok(message) => (true, "InSync", message, Duration::from_secs(300)),
                Err(why) => (false, "SyncFailed", why, Duration::from_secs(15)),
            },
        },
    };
    let degraded = (!ready).then_some((reason, message.as_str()));
    status::set_all(&mut st.conditions, ready, !ready, degraded, reason, &message, user.meta().generation);
    st.observed_generation = user.meta().generation;
    // Written only when it changed (condition transition times aside).
    let unchanged = st.state == old.state
        && st.acls == old.acls
        && st.observed_generation == old.observed_generation
        && status::same_conditions(&st.conditions, &old.conditions);
    if !unchanged {
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": st}))).await?;
        ctx.metrics.writes.inc();
    }
    Ok(Action::requeue(requeue))
}

/// Credentials, then ACLs; returns the Ready message or why it failed.
async fn sync(user: &KafkaUser, admin: &Admin, st: &mut KafkaUserStatus, ctx: &Context) -> Result<String, String> {
    let principal = principal(user);
    let mut notes = Vec::new();
    if uses_scram(user) {
        ensure_scram(user, admin, ctx).await?;
        notes.push(format!("SCRAM-SHA-512 credentials in Secret {}", user.spec.secret_name));
    } else {
        notes.push("mTLS client certificates are not issued yet; ACLs only".to_string());
    }
    let desired = acls_for(&principal, user.spec.topic_grants.as_deref().unwrap_or_default());
    let current: BTreeSet<AclBinding> = admin
        .describe_acls(&AclFilter::principal(&principal))
        .await
        .map_err(|e| format!("cannot list the ACLs of {principal}: {e}"))?
        .into_iter()
        .collect();
    let missing: Vec<AclBinding> = desired.difference(&current).cloned().collect();
    let extra: Vec<AclFilter> = current.difference(&desired).map(AclBinding::to_filter).collect();
    admin.create_acls(&missing).await.map_err(|e| format!("cannot create ACLs of {principal}: {e}"))?;
    admin.delete_acls(&extra).await.map_err(|e| format!("cannot delete ACLs of {principal}: {e}"))?;
    if !missing.is_empty() || !extra.is_empty() {
        let note = format!("ACLs of {principal}: {} created, {} removed", missing.len(), extra.len());
        publish(ctx, user, EventType::Normal, "AclsUpdated", &note).await;
    }
    st.acls = Some(desired.iter().map(ToString::to_string).collect());
    st.state = "created".into();
    notes.push(format!("{} ACLs for {principal}", desired.len()));
    Ok(notes.join("; "))
}

/// The credentials Secret exists (created with a fresh password if not) and Kafka knows the
/// user's SCRAM credential.
async fn ensure_scram(user: &KafkaUser, admin: &Admin, ctx: &Context) -> Result<(), String> {
    let ns = user.namespace().unwrap_or_default();
    let name = user.name_any();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secret_name = &user.spec.secret_name;
    let existing = secrets.get_opt(secret_name).await.map_err(|e| format!("cannot read Secret {secret_name}: {e}"))?;
    let (password, created) = match existing {
        Some(s) => {
            let password = s
                .data
                .as_ref()
                .and_then(|d| d.get("password"))
                .and_then(|b| String::from_utf8(b.0.clone()).ok())
                .ok_or_else(|| {
                    format!("Secret {secret_name} exists but has no password key; delete it to get a new one")
                })?;
            (password, false)
        }
        None => {
            let password = scram::random_password(32);
            let data = BTreeMap::from([
                ("username".to_string(), ByteString(name.clone().into_bytes())),
                ("password".to_string(), ByteString(password.clone().into_bytes())),
                ("sasl.jaas.config".to_string(), ByteString(scram::jaas_config(&name, &password).into_bytes())),
                ("sasl.mechanism".to_string(), ByteString(b"SCRAM-SHA-512".to_vec())),
            ]);
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(secret_name.clone()),
                    namespace: Some(ns.clone()),
                    labels: Some(BTreeMap::from([
                        ("app.kubernetes.io/managed-by".to_string(), "koperator".to_string()),
                        ("kafka.banzaicloud.io/user".to_string(), name.clone()),
                    ])),
                    owner_references: user.controller_owner_ref(&()).map(|o| vec![o]),
                    ..Default::default()
                },
                data: Some(data),
                ..Default::default()
            };
            secrets
                .create(&PostParams::default(), &secret)
                .await
                .map_err(|e| format!("cannot create Secret {secret_name}: {e}"))?;
            ctx.metrics.writes.inc();
            (password, true)
        }
    };
    let known = admin.has_scram_credential(&name).await.map_err(|e| format!("cannot read SCRAM credentials: {e}"))?;
    if created || !known {
        admin
            .upsert_scram_credential(&name, &password)
            .await
            .map_err(|e| format!("cannot set SCRAM credentials: {e}"))?;
        publish(
            ctx,
            user,
            EventType::Normal,
            "CredentialsIssued",
            &format!("SCRAM-SHA-512 credentials of {name} set in Kafka"),
        )
        .await;
    }
    Ok(())
}

/// Removes the user's ACLs and SCRAM credential from Kafka, then releases the finalizer (the
/// credentials Secret goes with its owner).
async fn finalize(
    user: &KafkaUser,
    api: &Api<KafkaUser>,
    cluster: Option<&KafkaCluster>,
    ctx: &Context,
) -> Result<Action, Error> {
    if !user.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    if let Some(cluster) = cluster.filter(|c| c.meta().deletion_timestamp.is_none()) {
        let principal = principal(user);
        let done = match ctx.kafka.admin(cluster) {
            Err(why) => Err(why),
            Ok(admin) => {
                let acls = admin.delete_acls(&[AclFilter::principal(&principal)]).await.map_err(|e| e.to_string());
                let creds = if uses_scram(user) {
                    admin.delete_scram_credential(&user.name_any()).await.map_err(|e| e.to_string())
                } else {
                    Ok(())
                };
                acls.and(creds)
            }
        };
        if let Err(why) = done {
            warn!(user = %user.name_any(), %why, "cannot remove the user from Kafka yet");
            return Ok(Action::requeue(Duration::from_secs(10)));
        }
    }
    let rest: Vec<String> = user.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
    api.patch(&user.name_any(), &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": rest}})))
        .await?;
    Ok(Action::await_change())
}

async fn publish(ctx: &Context, user: &KafkaUser, type_: EventType, reason: &str, note: &str) {
    status::publish(&ctx.recorder, user, type_, reason, note).await
}

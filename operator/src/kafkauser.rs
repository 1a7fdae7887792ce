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

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use tracing::warn;

use koperator_shared::api::KafkaCluster;
use koperator_shared::api::common::ClusterReference;
use koperator_shared::api::kafkauser::{KafkaUser, KafkaUserStatus};
use koperator_shared::kafka::user_acls::acls_for;
use koperator_shared::kafka::{self as kafka, AclBinding, AclFilter, Admin, scram};
use koperator_shared::support;
use koperator_shared::validated::ValidatedCluster;

use crate::controller::{self, Context, Reconcile, RefersToCluster, Writes};
use crate::status;

/// Finalizer of KafkaUsers (Koperator's name).
pub const FINALIZER: &str = "finalizer.kafkausers.kafka.banzaicloud.io";
pub use koperator_shared::api::kafkauser::{CREDENTIALS_ANNOTATION, SCRAM_SHA_512, uses_scram};

/// Errors of one reconcile.
pub type Error = crate::controller::KubeError;

impl RefersToCluster for KafkaUser {
    fn cluster_ref(&self) -> &ClusterReference {
        &self.spec.cluster_ref
    }
}

/// Why a user's credentials or ACLs could not be synced (reported in its status).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Kafka refused or did not answer.
    #[error("cannot {what}: {source}")]
    Kafka {
        /// What was being done.
        what: String,
        /// Kafka's error.
        #[source]
        source: kafka::Error,
    },
    /// The credentials Secret could not be read or written.
    #[error("cannot {action} Secret {name}: {source}")]
    Secret {
        /// `read` or `create`.
        action: &'static str,
        /// The Secret's name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The operator cannot talk to the cluster.
    #[error(transparent)]
    NoAccess(#[from] koperator_shared::render::names::AdminAccessError),
    /// The credentials Secret exists without a password.
    #[error("Secret {0} exists but has no password key; delete it to get a new one")]
    NoPassword(String),
}

impl SyncError {
    /// Stable category for the status reason and metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            SyncError::Kafka { source, .. } => source.category(),
            SyncError::NoAccess(e) => e.category(),
            SyncError::Secret { .. } => "SecretUnavailable",
            SyncError::NoPassword(_) => "SecretWithoutPassword",
        }
    }
}

fn kafka_err(what: impl Into<String>) -> impl FnOnce(kafka::Error) -> SyncError {
    let what = what.into();
    move |source| SyncError::Kafka { what, source }
}

/// Runs the KafkaUser controller (owning the credentials Secrets it creates); a change of a
/// KafkaCluster reconciles the users that refer to it.
pub async fn run(ctx: Arc<Context>) {
    let secrets = watcher::Config::default().labels("app.kubernetes.io/managed-by=koperator");
    let c = controller::controller::<KafkaUser>(&ctx).owns(ctx.watched::<Secret>(), secrets);
    let c = controller::controller_watching_clusters(&ctx, c);
    controller::run(c, ctx).await;
}

impl Reconcile for KafkaUser {
    const CONTROLLER: &'static str = "kafkauser";
    const FINALIZER: &'static str = FINALIZER;
    type Error = Error;

    async fn apply(user: Arc<Self>, ctx: &Context, writes: &Writes) -> Result<Action, Error> {
        reconcile(user, ctx, writes).await
    }

    async fn cleanup(user: Arc<Self>, ctx: &Context, writes: &Writes) -> Result<Action, Error> {
        let cluster = user.cluster(ctx).await?;
        finalize(&user, cluster.as_ref(), ctx, writes).await
    }
}

/// The Kafka principal of a user.
pub fn principal(user: &KafkaUser) -> String {
    if uses_scram(user) { format!("User:{}", user.name_any()) } else { format!("User:CN={}", user.name_any()) }
}

/// One reconcile pass (the finalizer is in place).
async fn reconcile(user: Arc<KafkaUser>, ctx: &Context, writes: &Writes) -> Result<Action, Error> {
    let ns = user.namespace().unwrap_or_default();
    let name = user.name_any();
    let api: Api<KafkaUser> = Api::namespaced(ctx.client.clone(), &ns);
    let cluster_ns = user.spec.cluster_ref.namespace_or(&ns).to_string();
    let cluster = user.cluster(ctx).await?;
    let old = user.status.clone().unwrap_or_default();
    let mut st = old.clone();
    let (ready, reason, message, requeue) = match &cluster {
        None => (
            false,
            "ClusterNotFound",
            format!("KafkaCluster {cluster_ns}/{} does not exist", user.spec.cluster_ref.name),
            Duration::from_secs(30),
        ),
        Some(cluster) => match ValidatedCluster::new(cluster, &ctx.rules) {
            Err(e) => (false, "ClusterInvalid", format!("the KafkaCluster is not valid: {e}"), Duration::from_secs(30)),
            Ok(cluster) => match ctx.kafka.admin(&cluster) {
                Err(why) => (false, why.category(), why.to_string(), Duration::from_secs(30)),
                Ok(admin) => match sync(&user, &admin, &mut st, ctx, writes).await {
                    Ok(message) => (true, "InSync", message, Duration::from_secs(300)),
                    Err(why) => (false, why.category(), why.to_string(), Duration::from_secs(15)),
                },
            },
        },
    };
    // Fields not acted on are named; the user is Degraded/NotSupported while it sets them.
    let unsupported = support::kafkauser(&user, uses_scram(&user));
    let not_supported = support::message(&unsupported);
    let both = format!("{message}; {not_supported}");
    let degraded = match (ready, unsupported.is_empty()) {
        (false, true) => Some((reason, message.as_str())),
        (false, false) => Some((reason, both.as_str())),
        (true, false) => Some(("NotSupported", not_supported.as_str())),
        (true, true) => None,
    };
    status::set_all(&mut st.conditions, ready, !ready, degraded, reason, &message, user.meta().generation);
    st.observed_generation = user.meta().generation;
    // Written only when it changed (condition transition times aside).
    let unchanged = st.state == old.state
        && st.acls == old.acls
        && st.observed_generation == old.observed_generation
        && status::same_conditions(&st.conditions, &old.conditions);
    if !unchanged {
        status::replace(&api, &name, &st).await?;
        writes.count(true);
    }
    Ok(Action::requeue(requeue))
}

/// Credentials, then ACLs; returns the Ready message or why it failed.
async fn sync(
    user: &KafkaUser,
    admin: &Admin,
    st: &mut KafkaUserStatus,
    ctx: &Context,
    writes: &Writes,
) -> Result<String, SyncError> {
    let principal = principal(user);
    let mut notes = Vec::new();
    if uses_scram(user) {
        ensure_scram(user, admin, ctx, writes).await?;
        notes.push(format!("SCRAM-SHA-512 credentials in Secret {}", user.spec.secret_name));
    } else {
        notes.push("mTLS client certificates are not issued yet; ACLs only".to_string());
    }
    let desired = acls_for(&principal, user.spec.topic_grants.as_deref().unwrap_or_default());
    let current: BTreeSet<AclBinding> = admin
        .describe_acls(&AclFilter::principal(&principal))
        .await
        .map_err(kafka_err(format!("list the ACLs of {principal}")))?
        .into_iter()
        .collect();
    let missing: Vec<AclBinding> = desired.difference(&current).cloned().collect();
    let extra: Vec<AclFilter> = current.difference(&desired).map(AclBinding::to_filter).collect();
    admin.create_acls(&missing).await.map_err(kafka_err(format!("create ACLs of {principal}")))?;
    admin.delete_acls(&extra).await.map_err(kafka_err(format!("delete ACLs of {principal}")))?;
    if !missing.is_empty() || !extra.is_empty() {
        let note = format!("ACLs of {principal}: {} created, {} removed", missing.len(), extra.len());
        ctx.publish(user, EventType::Normal, "AclsUpdated", &note).await;
        writes.count(true);
    }
    st.acls = Some(desired.iter().map(ToString::to_string).collect());
    st.state = "created".into();
    notes.push(format!("{} ACLs for {principal}", desired.len()));
    Ok(notes.join("; "))
}

/// The credentials Secret exists (created with a fresh password if not) and Kafka knows the
/// user's SCRAM credential.
async fn ensure_scram(user: &KafkaUser, admin: &Admin, ctx: &Context, writes: &Writes) -> Result<(), SyncError> {
    let ns = user.namespace().unwrap_or_default();
    let name = user.name_any();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secret_name = &user.spec.secret_name;
    let existing = secrets.get_opt(secret_name).await.map_err(|source| SyncError::Secret {
        action: "read",
        name: secret_name.clone(),
        source,
    })?;
    let (password, created) = match existing {
        Some(s) => {
            let password = s
                .data
                .as_ref()
                .and_then(|d| d.get("password"))
                .and_then(|b| String::from_utf8(b.0.clone()).ok())
                .ok_or_else(|| SyncError::NoPassword(secret_name.clone()))?;
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
            secrets.create(&PostParams::default(), &secret).await.map_err(|source| SyncError::Secret {
                action: "create",
                name: secret_name.clone(),
                source,
            })?;
            writes.count(true);
            (password, true)
        }
    };
    let known = admin.has_scram_credential(&name).await.map_err(kafka_err("read SCRAM credentials"))?;
    if created || !known {
        admin.upsert_scram_credential(&name, &password).await.map_err(kafka_err("set SCRAM credentials"))?;
        let note = format!("SCRAM-SHA-512 credentials of {name} set in Kafka");
        ctx.publish(user, EventType::Normal, "CredentialsIssued", &note).await;
        writes.count(true);
    }
    Ok(())
}

/// Removes the user's ACLs and SCRAM credential from Kafka, then releases the finalizer (the
/// credentials Secret goes with its owner).
async fn finalize(
    user: &KafkaUser,
    cluster: Option<&KafkaCluster>,
    ctx: &Context,
    _writes: &Writes,
) -> Result<Action, Error> {
    let live = match cluster.filter(|c| c.meta().deletion_timestamp.is_none()) {
        None => None,
        Some(c) => match ValidatedCluster::new(c, &ctx.rules) {
            Ok(v) => Some(v),
            Err(e) => {
                // Without a valid spec there is no address to reach Kafka at: the ACLs and
                // credentials stay (never removed on a guess), and the user is told so.
                let note = format!(
                    "the KafkaCluster is not valid ({e}); the ACLs and credentials of {} are left in Kafka",
                    principal(user)
                );
                warn!(user = %user.name_any(), "{note}");
                ctx.publish(user, EventType::Warning, "CleanupSkipped", &note).await;
                None
            }
        },
    };
    if let Some(cluster) = &live {
        let principal = principal(user);
        let done = async {
            let admin = ctx.kafka.admin(cluster).map_err(SyncError::NoAccess)?;
            let acls = admin.delete_acls(&[AclFilter::principal(&principal)]).await;
            acls.map_err(kafka_err(format!("delete the ACLs of {principal}")))?;
            if uses_scram(user) {
                let creds = admin.delete_scram_credential(&user.name_any()).await;
                creds.map_err(kafka_err("delete the SCRAM credentials"))?;
            }
            Ok::<(), SyncError>(())
        };
        if let Err(why) = done.await {
            warn!(user = %user.name_any(), %why, "cannot remove the user from Kafka yet");
            return Ok(Action::requeue(Duration::from_secs(10)));
        }
    }
    Ok(Action::await_change())
}

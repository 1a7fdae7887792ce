//! The KafkaUser controller: the user's ACLs from `topicGrants` (created, and removed when
//! grants shrink or the user is deleted), `status.acls`, and credentials.
//!
//! Credentials: with annotation `koperator.banzaicloud.io/credentials: scram-sha-512` (our
//! addition) the operator generates a password into the Secret `spec.secretName` (keys
//! `username`, `password`, `sasl.jaas.config`; owned by the KafkaUser) and sets the user's
//! SCRAM-SHA-512 credential in Kafka; the principal is `User:<name>`. Without it the principal
//! is Koperator's certificate DN `User:CN=<name>`, and (unless `createCert: false`) the operator
//! issues the user a client certificate from the cluster CA (`sslSecrets`) into the same Secret
//! (`ca.crt`, `tls.crt`, `tls.key`; JKS stores with `includeJKS`), renewed at two thirds of its
//! lifetime ([`crate::user_certificate`]); `status.certificate` and the metric
//! `koperator_certificate_expiry_timestamp_seconds{role="kafkauser"}` show when it expires.
//!
//! Ownership (nothing in Kafka says who made a credential or an ACL, so the status does):
//! - the KafkaCluster must accept the user's namespace (`allowed-namespaces`), checked again
//!   here because the webhook may have been bypassed: `Forbidden`, nothing written;
//! - the principal is claimed (`status.principal`, `status.clusterUID`) only while Kafka has
//!   no SCRAM credential and no ACL for it, and the claim is stored before the first Kafka
//!   write; a principal in use is refused (`PrincipalInUse`) and never written to;
//! - only the ACLs listed in `status.acls` (the ones this KafkaUser created) and the credential
//!   named by `status.scramCredential` are ever deleted;
//! - the Secret `spec.secretName` is read or written only when this KafkaUser controls it
//!   (ownerReference UID); any other Secret of that name is `SecretNotOwned`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use tracing::warn;

use koperator_shared::api::KafkaCluster;
use koperator_shared::api::common::CertificateStatus;
use koperator_shared::api::common::ClusterReference;
use koperator_shared::api::kafkauser::{KafkaUser, KafkaUserStatus};
use koperator_shared::kafka::user_acls::acls_for;
use koperator_shared::kafka::{self as kafka, AclBinding, AclFilter, Admin, scram};
use koperator_shared::pki;
use koperator_shared::render::tls;
use koperator_shared::rules::namespaces::not_allowed_message;
use koperator_shared::support;
use koperator_shared::validated::ValidatedCluster;

use crate::certificate_status::series;
use crate::controller::{self, Context, Reconcile, RefersToCluster, Writes};
use crate::metrics::certificate_expiry::{Expiry, Owner, Role};
use crate::status;
use crate::user_certificate;

/// Finalizer of KafkaUsers (Koperator's name).
pub const FINALIZER: &str = "finalizer.kafkausers.kafka.banzaicloud.io";
pub use koperator_shared::api::kafkauser::{CREDENTIALS_ANNOTATION, SCRAM_SHA_512, principal, uses_scram};

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
    /// The cluster CA cannot be read or used.
    #[error("cannot issue the user's client certificate: {0}")]
    Certificate(String),
    /// The credentials Secret exists without a password.
    #[error("Secret {0} exists but has no password key; delete it to get a new one")]
    NoPassword(String),
    /// A Secret named `spec.secretName` exists and this KafkaUser does not control it.
    #[error(
        "Secret {0} exists and is not owned by this KafkaUser; it is neither read nor overwritten: choose another spec.secretName, or delete that Secret if it is not needed"
    )]
    SecretNotOwned(String),
    /// Kafka already has a credential or ACLs for the principal, and this KafkaUser did not
    /// create them.
    #[error(
        "principal {principal} is already in use in Kafka ({what}) and was not created by this KafkaUser; nothing was changed: rename the KafkaUser, or remove the existing credential and ACLs from Kafka if they are not needed"
    )]
    PrincipalInUse {
        /// The principal.
        principal: String,
        /// What Kafka has for it.
        what: String,
    },
    /// Another KafkaUser (one that bypassed the webhook) holds the claim on the principal.
    #[error(
        "principal {principal} is claimed by KafkaUser {by} on this cluster; nothing was changed: one principal per cluster, rename this KafkaUser"
    )]
    ClaimedBy {
        /// The principal.
        principal: String,
        /// `namespace/name` of the claimant.
        by: String,
    },
    /// The other KafkaUsers of the cluster could not be listed (nothing was written to Kafka).
    #[error("cannot list the KafkaUsers that may claim the principal: {0}")]
    ListUsers(#[source] crate::controller::KubeError),
    /// The claim on the principal could not be stored (nothing was written to Kafka).
    #[error("cannot record the claim on the principal: {0}")]
    Claim(#[source] crate::controller::KubeError),
}

impl SyncError {
    /// Stable category for the status reason and metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            SyncError::Kafka { source, .. } => source.category(),
            SyncError::NoAccess(e) => e.category(),
            SyncError::Secret { .. } => "SecretUnavailable",
            SyncError::NoPassword(_) => "SecretWithoutPassword",
            SyncError::Certificate(_) => "CertificateError",
            SyncError::SecretNotOwned(_) => "SecretNotOwned",
            SyncError::PrincipalInUse { .. } | SyncError::ClaimedBy { .. } => "PrincipalInUse",
            SyncError::ListUsers(e) => crate::controller::Categorized::category(e),
            SyncError::Claim(e) => crate::controller::Categorized::category(e),
        }
    }
}

fn kafka_err(what: impl Into<String>) -> impl FnOnce(kafka::Error) -> SyncError {
    let what = what.into();
    move |source| SyncError::Kafka { what, source }
}

/// Runs the KafkaUser controller; a change of a KafkaCluster reconciles the users that refer
/// to it.
///
/// Secrets are not watched: that would need `list`/`watch` on every Secret in scope (RBAC
/// cannot narrow them to ours), and the operator reads its credentials Secrets by name only.
/// A deleted credentials Secret is recreated at the next periodic pass (at most 5 minutes).
pub async fn run(ctx: Arc<Context>) {
    let c = controller::controller::<KafkaUser>(&ctx);
    let c = controller::controller_watching_clusters(&ctx, c);
    controller::run(c, ctx).await;
}

impl Reconcile for KafkaUser {
    const CONTROLLER: &'static str = "kafkauser";
    const FINALIZER: &'static str = FINALIZER;
    type Error = Error;

    async fn apply(user: Arc<Self>, ctx: &Context, writes: &Writes) -> Result<Action, Error> {
        reconcile(stored(&user, ctx).await?, ctx, writes).await
    }

    async fn cleanup(user: Arc<Self>, ctx: &Context, writes: &Writes) -> Result<Action, Error> {
        ctx.metrics.certificate_expiry.forget(&certificate_owner(&user));
        let user = stored(&user, ctx).await?;
        let cluster = user.cluster(ctx).await?;
        finalize(&user, cluster.as_ref(), ctx, writes).await
    }
}

/// The KafkaUser as stored now. The status records what this user owns in Kafka and a pass
/// writes it twice (the claim before the first Kafka write, the rest at the end); the cache
/// the controller hands over may not hold the second write yet, and a pass that started from
/// the first would record the ACLs it made as someone else's and never remove them.
async fn stored(user: &KafkaUser, ctx: &Context) -> Result<Arc<KafkaUser>, Error> {
    let api: Api<KafkaUser> = Api::namespaced(ctx.client.clone(), &user.namespace().unwrap_or_default());
    let name = user.name_any();
    Ok(Arc::new(api.get(&name).await.map_err(controller::kube_err("read", format!("KafkaUser/{name}")))?))
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
        // Checked here too: the webhook may be bypassed (failurePolicy, objects from before).
        Some(kc) if !kc.allows_namespace(&ns) => {
            let mut message = not_allowed_message("KafkaUser", &ns, kc);
            if st.principal.is_some() {
                message.push_str("; what this KafkaUser created in Kafka stays until then");
            }
            (false, "Forbidden", message, Duration::from_secs(60))
        }
        Some(kc) => match ValidatedCluster::new(kc, &ctx.rules) {
            Err(e) => (false, "ClusterInvalid", format!("the KafkaCluster is not valid: {e}"), Duration::from_secs(30)),
            Ok(cluster) => match ctx.kafka.admin(&cluster).await {
                Err(why) => (false, why.category(), why.to_string(), Duration::from_secs(30)),
                Ok(admin) => match sync(&user, &admin, kc, &mut st, &api, ctx, writes).await {
                    Ok(message) => (true, "InSync", message, Duration::from_secs(300)),
                    Err(why) => (false, why.category(), why.to_string(), Duration::from_secs(15)),
                },
            },
        },
    };
    // Fields not acted on are named; the user is Degraded/NotSupported while it sets them.
    let mut unsupported = support::kafkauser(&user, uses_scram(&user));
    // A certificate asked for (by default) from a cluster without a CA: ACLs only, and said so.
    if wants_certificate(&user) && cluster.as_ref().is_some_and(|kc| !tls::enabled(kc)) {
        unsupported.push(support::Unsupported {
            path: "spec.createCert".into(),
            note: "the KafkaCluster has no listenersConfig.sslSecrets (with an SSL listener) to issue a client certificate from; only the ACLs are managed (set createCert: false if none is wanted)",
            effect: support::Effect::Ignored,
        });
    }
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
    // Every pass (a restarted operator exports it too), before the status write that may fail.
    let certs: Vec<Expiry> = st.certificate.iter().map(|c| series(Role::KafkaUser, c)).collect();
    ctx.metrics.certificate_expiry.set(&certificate_owner(&user), &certs);
    // Written only when it changed (condition transition times aside).
    let unchanged = st.state == old.state
        && st.acls == old.acls
        && st.principal == old.principal
        && st.cluster_uid == old.cluster_uid
        && st.scram_credential == old.scram_credential
        && st.certificate == old.certificate
        && st.observed_generation == old.observed_generation
        && status::same_conditions(&st.conditions, &old.conditions);
    if !unchanged {
        status::replace(&api, &name, &st).await?;
        writes.count(true);
    }
    Ok(Action::requeue(requeue))
}

/// The ACLs `st` records as created by this KafkaUser (entries that do not parse are dropped:
/// they were never written by this operator).
fn owned_acls(st: &KafkaUserStatus) -> BTreeSet<AclBinding> {
    st.acls.iter().flatten().filter_map(|a| a.parse().ok()).collect()
}

/// Whether `st` holds this user's claim on `principal` in the cluster `cluster_uid`.
fn claims(st: &KafkaUserStatus, principal: &str, cluster_uid: &str) -> bool {
    st.principal.as_deref() == Some(principal) && st.cluster_uid.as_deref() == Some(cluster_uid)
}

/// The KafkaUser other than `user` whose status claims `principal` on `cluster`, as
/// `namespace/name` (admission rejects a second one; this catches those that bypassed it).
async fn other_claimant(
    user: &KafkaUser,
    cluster: &KafkaCluster,
    principal: &str,
    ctx: &Context,
) -> Result<Option<String>, SyncError> {
    let uid = cluster.uid().unwrap_or_default();
    let users = ctx.list_accepted::<KafkaUser>(cluster).await.map_err(SyncError::ListUsers)?;
    Ok(users
        .iter()
        .find(|o| o.uid() != user.uid() && o.status.as_ref().is_some_and(|st| claims(st, principal, &uid)))
        .map(|o| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())))
}

/// Ownership check, credentials, then ACLs; returns the Ready message or why it failed.
async fn sync(
    user: &KafkaUser,
    admin: &Admin,
    cluster: &KafkaCluster,
    st: &mut KafkaUserStatus,
    api: &Api<KafkaUser>,
    ctx: &Context,
    writes: &Writes,
) -> Result<String, SyncError> {
    let principal = principal(user);
    let uid = cluster.uid().unwrap_or_default();
    let cluster_uid = uid.as_str();
    let mut notes = Vec::new();
    // A Secret of that name that is not ours is never read (its password would become the
    // user's) nor overwritten.
    let secret = if uses_scram(user) || wants_certificate(user) { owned_secret(user, ctx).await? } else { None };
    if !claims(st, &principal, cluster_uid) {
        if let Some(by) = other_claimant(user, cluster, &principal, ctx).await? {
            return Err(SyncError::ClaimedBy { principal, by });
        }
        claim(user, admin, cluster_uid, &principal, secret.is_some(), st, api, writes).await?;
    }
    let issues_certificate = !uses_scram(user) && wants_certificate(user) && tls::enabled(cluster);
    if !issues_certificate {
        st.certificate = None;
    }
    if uses_scram(user) {
        ensure_scram(user, secret, admin, ctx, writes).await?;
        notes.push(format!("SCRAM-SHA-512 credentials in Secret {}", user.spec.secret_name));
    } else if issues_certificate {
        let certificate = ensure_certificate(user, cluster, secret, ctx, writes).await?;
        let until = certificate.renew_at.as_ref().map(|t| t.0.to_string()).unwrap_or_default();
        notes.push(format!("client certificate in Secret {} (renewed at {until})", user.spec.secret_name));
        st.certificate = Some(certificate);
    } else if wants_certificate(user) {
        notes.push("no client certificate (the cluster has no CA); ACLs only".to_string());
    } else {
        notes.push("no credentials (createCert: false); ACLs only".to_string());
    }
    let desired = acls_for(&principal, user.spec.topic_grants.as_deref().unwrap_or_default());
    let owned = owned_acls(st);
    let current: BTreeSet<AclBinding> = admin
        .describe_acls(&AclFilter::principal(&principal))
        .await
        .map_err(kafka_err(format!("list the ACLs of {principal}")))?
        .into_iter()
        .collect();
    let missing: Vec<AclBinding> = desired.difference(&current).cloned().collect();
    // Only ACLs this KafkaUser created go; others on the same principal are not ours.
    let extra: Vec<AclFilter> =
        current.intersection(&owned).filter(|a| !desired.contains(*a)).map(AclBinding::to_filter).collect();
    admin.create_acls(&missing).await.map_err(kafka_err(format!("create ACLs of {principal}")))?;
    // Recorded before the deletions: what was created is ours even if a deletion fails.
    let now_owned: BTreeSet<&AclBinding> =
        desired.iter().filter(|a| owned.contains(*a) || missing.contains(*a)).collect();
    st.acls = Some(now_owned.iter().map(ToString::to_string).collect());
    admin.delete_acls(&extra).await.map_err(kafka_err(format!("delete ACLs of {principal}")))?;
    if !missing.is_empty() || !extra.is_empty() {
        let note = format!("ACLs of {principal}: {} created, {} removed", missing.len(), extra.len());
        ctx.publish(user, EventType::Normal, "AclsUpdated", &note).await;
        writes.count(true);
    }
    st.state = "created".into();
    let foreign = current.iter().filter(|a| !owned.contains(*a) && !desired.contains(*a)).count();
    notes.push(format!("{} ACLs for {principal}", desired.len()));
    if foreign > 0 {
        notes.push(format!("{foreign} ACLs of {principal} made outside this KafkaUser left alone"));
    }
    Ok(notes.join("; "))
}

/// Claims `principal` for this user in the cluster `cluster_uid`: only while Kafka has no
/// SCRAM credential and no ACL for it, and stored in the status before anything is written
/// to Kafka (so a crash right after the first write still finds the claim). What the status
/// records from an earlier principal of this user in the same cluster is removed first.
#[allow(clippy::too_many_arguments)]
async fn claim(
    user: &KafkaUser,
    admin: &Admin,
    cluster_uid: &str,
    principal: &str,
    secret_is_ours: bool,
    st: &mut KafkaUserStatus,
    api: &Api<KafkaUser>,
    writes: &Writes,
) -> Result<(), SyncError> {
    let name = user.name_any();
    let same_cluster = st.cluster_uid.as_deref() == Some(cluster_uid);
    if same_cluster {
        // The user switched principals (the credentials annotation changed): what it created
        // under the old one is still its own to remove.
        let old: Vec<AclFilter> = owned_acls(st).iter().map(AclBinding::to_filter).collect();
        admin.delete_acls(&old).await.map_err(kafka_err("delete the ACLs of the previous principal"))?;
        if let Some(old_user) = st.scram_credential.as_deref().filter(|u| !uses_scram(user) || *u != name) {
            admin.delete_scram_credential(old_user).await.map_err(kafka_err("delete the previous SCRAM credential"))?;
        }
    }
    let credential =
        uses_scram(user) && admin.has_scram_credential(&name).await.map_err(kafka_err("read SCRAM credentials"))?;
    let acls = admin
        .describe_acls(&AclFilter::principal(principal))
        .await
        .map_err(kafka_err(format!("list the ACLs of {principal}")))?;
    // A status written by an earlier version (no claim yet) that lists every ACL Kafka has for
    // the principal, with the Secret this KafkaUser owns, is this user's own state.
    let recorded = owned_acls(st);
    let earlier_version = st.principal.is_none()
        && st.state == "created"
        && !recorded.is_empty()
        && acls.iter().all(|a| recorded.contains(a))
        && (!uses_scram(user) || secret_is_ours);
    if !earlier_version && (credential || !acls.is_empty()) {
        let mut what = Vec::new();
        if credential {
            what.push(format!("a SCRAM-SHA-512 credential for {name}"));
        }
        if !acls.is_empty() {
            what.push(format!("{} ACLs", acls.len()));
        }
        return Err(SyncError::PrincipalInUse { principal: principal.to_string(), what: what.join(" and ") });
    }
    if !earlier_version {
        st.acls = None;
    }
    st.principal = Some(principal.to_string());
    st.cluster_uid = Some(cluster_uid.to_string());
    st.scram_credential = uses_scram(user).then(|| name.clone());
    status::replace(api, &name, st).await.map_err(SyncError::Claim)?;
    writes.count(true);
    Ok(())
}

/// The Secret `spec.secretName` when it exists and this KafkaUser controls it; `None` when
/// there is none; [`SyncError::SecretNotOwned`] when another owner (or none) has it.
async fn owned_secret(user: &KafkaUser, ctx: &Context) -> Result<Option<Secret>, SyncError> {
    let ns = user.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secret_name = &user.spec.secret_name;
    let existing = secrets.get_opt(secret_name).await.map_err(|source| SyncError::Secret {
        action: "read",
        name: secret_name.clone(),
        source,
    })?;
    let Some(secret) = existing else { return Ok(None) };
    let uid = user.uid().unwrap_or_default();
    let ours = secret.owner_references().iter().any(|o| o.controller == Some(true) && !uid.is_empty() && o.uid == uid);
    if ours { Ok(Some(secret)) } else { Err(SyncError::SecretNotOwned(secret_name.clone())) }
}

/// Metadata of the Secret `spec.secretName` the operator creates for `user` (owned by it).
fn secret_meta(user: &KafkaUser) -> ObjectMeta {
    ObjectMeta {
        name: Some(user.spec.secret_name.clone()),
        namespace: user.namespace(),
        labels: Some(BTreeMap::from([
            ("app.kubernetes.io/managed-by".to_string(), "koperator".to_string()),
            ("kafka.banzaicloud.io/user".to_string(), user.name_any()),
        ])),
        owner_references: user.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    }
}

/// The owner of `user`'s certificate expiry series.
fn certificate_owner(user: &KafkaUser) -> Owner {
    Owner { kind: "KafkaUser", namespace: user.namespace().unwrap_or_default(), name: user.name_any() }
}

/// Whether the user gets a client certificate: no SCRAM credentials and `createCert` not false.
fn wants_certificate(user: &KafkaUser) -> bool {
    !uses_scram(user) && user.spec.create_cert != Some(false)
}

/// The user's client certificate in its Secret, issued from the cluster CA when missing or
/// due ([`user_certificate::due`]); returns its expiry and renewal as read from the
/// certificate now in the Secret.
async fn ensure_certificate(
    user: &KafkaUser,
    cluster: &KafkaCluster,
    existing: Option<Secret>,
    ctx: &Context,
    writes: &Writes,
) -> Result<CertificateStatus, SyncError> {
    let cluster_ns = cluster.namespace().unwrap_or_default();
    let ca_name = tls::ca_secret(cluster).unwrap_or_default().to_string();
    let ca_secret = read_secret(ctx, &cluster_ns, &ca_name).await?;
    let text = |key: &str| secret_text(ca_secret.as_ref(), key);
    let (Some(chain), Some(key)) = (text(tls::CA_CERT), text(tls::CA_KEY)) else {
        return Err(SyncError::Certificate(format!(
            "the cluster CA in Secret {cluster_ns}/{ca_name} is not there yet"
        )));
    };
    let ca = pki::split_pem(&chain)
        .into_iter()
        .next()
        .map(|cert| pki::KeyAndCert { cert, key })
        .ok_or_else(|| SyncError::Certificate(format!("Secret {cluster_ns}/{ca_name} holds no CA certificate")))?;
    // The CAs the cluster trusts now are those of the operator's own certificate Secret (during
    // a CA rollover the old one too); once that certificate is of the current CA, every broker
    // trusts it.
    let operator = read_secret(ctx, &cluster_ns, &tls::operator_secret(cluster)).await?;
    let operator_text = |key: &str| secret_text(operator.as_ref(), key);
    let bundle = operator_text(tls::CA_CRT).filter(|b| pki::split_pem(b).contains(&ca.cert)).unwrap_or(chain.clone());
    let current_trusted = operator_text(tls::TLS_CRT).is_none_or(|c| pki::signed_by(&c, &ca.cert));
    let trust = user_certificate::Trust { chain: &chain, bundle: &bundle, current_trusted };
    let want = user_certificate::spec(user);
    let jks = user.spec.include_jks == Some(true);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let secret_name = &user.spec.secret_name;
    let (todo, _) = user_certificate::due(existing.as_ref(), &want, jks, &trust, now);
    let status = match todo {
        None => existing.as_ref().and_then(|s| user_certificate::status(secret_name, s.data.as_ref()?)),
        Some(user_certificate::Todo::Retrust) => {
            let live = existing.as_ref().expect("only an existing certificate is retrusted");
            let data =
                user_certificate::retrust(live, &trust, now).map_err(|e| SyncError::Certificate(e.to_string()))?;
            let status = user_certificate::status(secret_name, &data);
            write_certificate(user, existing, data, ctx).await?;
            writes.count(true);
            let note = format!("Secret {secret_name} now trusts the cluster's CAs of the moment (ca.crt)");
            ctx.publish(user, EventType::Normal, "CertificateTrustChanged", &note).await;
            status
        }
        Some(user_certificate::Todo::Issue(reason)) => {
            let data = user_certificate::issue(&ca, &trust, &want, jks, now)
                .map_err(|e| SyncError::Certificate(e.to_string()))?;
            let status = user_certificate::status(secret_name, &data);
            write_certificate(user, existing, data, ctx).await?;
            writes.count(true);
            let note = format!(
                "client certificate for User:CN={} issued into Secret {} ({reason})",
                want.common_name, user.spec.secret_name
            );
            ctx.publish(user, EventType::Normal, "CertificateIssued", &note).await;
            status
        }
    };
    status.ok_or_else(|| SyncError::Certificate(format!("the certificate in Secret {secret_name} cannot be read")))
}

/// Secret `name` of `ns`, when it exists.
async fn read_secret(ctx: &Context, ns: &str, name: &str) -> Result<Option<Secret>, SyncError> {
    Api::<Secret>::namespaced(ctx.client.clone(), ns).get_opt(name).await.map_err(|source| SyncError::Secret {
        action: "read",
        name: name.to_string(),
        source,
    })
}

/// The text (UTF-8) under `key` of `secret`.
fn secret_text(secret: Option<&Secret>, key: &str) -> Option<String> {
    String::from_utf8(secret?.data.as_ref()?.get(key)?.0.clone()).ok()
}

/// Writes the certificate Secret: created when missing (a Secret someone made meanwhile is a
/// conflict, never overwritten), else replaced at the resourceVersion read as ours.
async fn write_certificate(
    user: &KafkaUser,
    existing: Option<Secret>,
    data: BTreeMap<String, ByteString>,
    ctx: &Context,
) -> Result<(), SyncError> {
    let ns = user.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secret_name = &user.spec.secret_name;
    let fail = |action| move |source| SyncError::Secret { action, name: secret_name.clone(), source };
    match existing {
        Some(mut s) => {
            s.data = Some(data);
            secrets.replace(secret_name, &PostParams::default(), &s).await.map_err(fail("update"))?;
        }
        None => {
            let secret = Secret {
                metadata: secret_meta(user),
                type_: Some("kubernetes.io/tls".into()),
                data: Some(data),
                ..Default::default()
            };
            secrets.create(&PostParams::default(), &secret).await.map_err(fail("create"))?;
        }
    }
    Ok(())
}

/// The credentials Secret exists (created with a fresh password if not) and Kafka knows the
/// user's SCRAM credential. `existing` is the Secret this KafkaUser owns, if any.
async fn ensure_scram(
    user: &KafkaUser,
    existing: Option<Secret>,
    admin: &Admin,
    ctx: &Context,
    writes: &Writes,
) -> Result<(), SyncError> {
    let ns = user.namespace().unwrap_or_default();
    let name = user.name_any();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secret_name = &user.spec.secret_name;
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
            let secret = Secret { metadata: secret_meta(user), data: Some(data), ..Default::default() };
            // `create`, never an update: a Secret made meanwhile by someone else is a
            // conflict, not overwritten.
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

/// Removes what this user created in Kafka (the ACLs in `status.acls`, the credential in
/// `status.scramCredential`), then releases the finalizer (the credentials Secret goes with its
/// owner). Nothing is removed from a cluster other than the claimed one, nor from a cluster
/// that does not accept the user's namespace.
async fn finalize(
    user: &KafkaUser,
    cluster: Option<&KafkaCluster>,
    ctx: &Context,
    _writes: &Writes,
) -> Result<Action, Error> {
    let ns = user.namespace().unwrap_or_default();
    let st = user.status.clone().unwrap_or_default();
    let principal = principal(user);
    let skip = |note: String| async move {
        warn!(user = %user.name_any(), "{note}");
        ctx.publish(user, EventType::Warning, "CleanupSkipped", &note).await;
    };
    let live = match cluster.filter(|c| c.meta().deletion_timestamp.is_none()) {
        None => None,
        Some(c) if st.cluster_uid.is_none() || st.cluster_uid != c.uid() => {
            // Nothing claimed in this cluster: nothing of this user's to remove.
            None
        }
        Some(c) if !c.allows_namespace(&ns) => {
            skip(format!(
                "{}; the ACLs and credentials this KafkaUser created for {principal} are left in Kafka",
                not_allowed_message("KafkaUser", &ns, c)
            ))
            .await;
            None
        }
        Some(c) => match ValidatedCluster::new(c, &ctx.rules) {
            Ok(v) => Some(v),
            Err(e) => {
                // Without a valid spec there is no address to reach Kafka at: the ACLs and
                // credentials stay (never removed on a guess), and the user is told so.
                skip(format!(
                    "the KafkaCluster is not valid ({e}); the ACLs and credentials of {principal} are left in Kafka"
                ))
                .await;
                None
            }
        },
    };
    if let Some(cluster) = &live {
        let done = async {
            let admin = ctx.kafka.admin(cluster).await.map_err(SyncError::NoAccess)?;
            let owned: Vec<AclFilter> = owned_acls(&st).iter().map(AclBinding::to_filter).collect();
            let acls = admin.delete_acls(&owned).await;
            acls.map_err(kafka_err(format!("delete the ACLs of {principal}")))?;
            if let Some(scram_user) = &st.scram_credential {
                let creds = admin.delete_scram_credential(scram_user).await;
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

//! The KafkaTopic controller: creates the topic in its cluster, raises partitions, keeps the
//! topic-level configs equal to the spec (reporting drift made outside the operator), adopts an
//! existing topic only when annotated `managedBy: koperator`, and deletes the Kafka topic when
//! the KafkaTopic is deleted, unless annotated to keep it.
//!
//! Ownership: the KafkaCluster must accept the topic's namespace (`allowed-namespaces`,
//! checked again here since the webhook may be bypassed: `Forbidden`, nothing written). A
//! KafkaTopic owns the Kafka topic it created or adopted (`status.managedBy: koperator` with
//! `status.clusterUID`); it never creates, adopts or deletes a topic that another KafkaTopic (in
//! any watched namespace) on the same cluster manages (`TopicInUse`), and a topic that already
//! existed (`TopicAlreadyExists` on create) is not taken for its own.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use koperator_shared::api::KafkaCluster;
use koperator_shared::api::common::ClusterReference;
use koperator_shared::api::kafkatopic::{KafkaTopic, KafkaTopicStatus, MANAGED_BY_ANNOTATION, MANAGED_BY_KOPERATOR};
use koperator_shared::kafka::dynamic::config_ops;
use koperator_shared::kafka::{Admin, ConfigResource, ConfigSource, NewTopic, ResponseError};
use koperator_shared::rules;
use koperator_shared::rules::namespaces::not_allowed_message;
use koperator_shared::validated::ValidatedCluster;

use crate::controller::{self, Context, Reconcile, RefersToCluster, Writes, kube_err};
use crate::status;

/// Finalizer of KafkaTopics (Koperator's name).
pub const FINALIZER: &str = "finalizer.kafkatopics.kafka.banzaicloud.io";
/// Opt-out of deleting the Kafka topic with its KafkaTopic (our addition): `"true"` keeps it.
pub const KEEP_TOPIC_ANNOTATION: &str = "koperator.banzaicloud.io/keep-topic-on-deletion";
/// Label naming the topic's cluster: `<cluster>.<namespace>` (Koperator's).
pub const CLUSTER_LABEL: &str = "kafkaCluster";
/// How often a settled topic is compared with Kafka again.
pub const RESYNC: Duration = Duration::from_secs(60);

/// Errors of one reconcile.
pub type Error = crate::controller::KubeError;

impl RefersToCluster for KafkaTopic {
    fn cluster_ref(&self) -> &ClusterReference {
        &self.spec.cluster_ref
    }
}

/// Runs the KafkaTopic controller; a change of a KafkaCluster reconciles the topics that
/// refer to it.
pub async fn run(ctx: Arc<Context>) {
    let c = controller::controller_watching_clusters(&ctx, controller::controller::<KafkaTopic>(&ctx));
    controller::run(c, ctx).await;
}

impl Reconcile for KafkaTopic {
    const CONTROLLER: &'static str = "kafkatopic";
    const FINALIZER: &'static str = FINALIZER;
    type Error = Error;

    async fn apply(kt: Arc<Self>, ctx: &Context, writes: &Writes) -> Result<Action, Error> {
        reconcile(kt, ctx, writes).await
    }

    async fn cleanup(kt: Arc<Self>, ctx: &Context, writes: &Writes) -> Result<Action, Error> {
        let cluster = kt.cluster(ctx).await?;
        finalize(&kt, cluster.as_ref(), &kt.status.clone().unwrap_or_default(), ctx, writes).await
    }
}

/// The outcome a reconcile reports in the status.
struct Outcome {
    ready: bool,
    reason: &'static str,
    message: String,
    degraded: Option<(&'static str, String)>,
    requeue: Duration,
}

impl Outcome {
    fn waiting(reason: &'static str, message: String, requeue: Duration) -> Self {
        Outcome { ready: false, reason, message: message.clone(), degraded: Some((reason, message)), requeue }
    }
}

/// One reconcile pass (the finalizer is in place).
async fn reconcile(kt: Arc<KafkaTopic>, ctx: &Context, writes: &Writes) -> Result<Action, Error> {
    let ns = kt.namespace().unwrap_or_default();
    let name = kt.name_any();
    let api: Api<KafkaTopic> = Api::namespaced(ctx.client.clone(), &ns);
    let cluster_ns = kt.spec.cluster_ref.namespace_or(&ns).to_string();
    let cluster = kt.cluster(ctx).await?;
    let old = kt.status.clone().unwrap_or_default();

    // The cluster label (Koperator's), in a metadata patch when missing.
    let label = format!("{}.{cluster_ns}", kt.spec.cluster_ref.name);
    if kt.labels().get(CLUSTER_LABEL) != Some(&label) {
        let patch = json!({"metadata": {"labels": {CLUSTER_LABEL: label}}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(kube_err("label", format!("KafkaTopic/{name}")))?;
        writes.count(true);
    }

    let mut st = old.clone();
    let outcome = match &cluster {
        None => Outcome::waiting(
            "ClusterNotFound",
            format!("KafkaCluster {cluster_ns}/{} does not exist", kt.spec.cluster_ref.name),
            Duration::from_secs(30),
        ),
        // Checked here too: the webhook may be bypassed (failurePolicy, objects from before).
        Some(kc) if !kc.allows_namespace(&ns) => {
            Outcome::waiting("Forbidden", not_allowed_message("KafkaTopic", &ns, kc), Duration::from_secs(60))
        }
        Some(kc) => match ValidatedCluster::new(kc, &ctx.rules) {
            Err(e) => Outcome::waiting(
                "ClusterInvalid",
                format!("the KafkaCluster is not valid: {e}"),
                Duration::from_secs(30),
            ),
            Ok(cluster) => match ctx.kafka.admin(&cluster).await {
                Err(why) => Outcome::waiting(why.category(), why.to_string(), Duration::from_secs(30)),
                Ok(admin) => match claim(&kt, kc, &mut st, ctx).await {
                    Err(e) => {
                        Outcome::waiting(controller::Categorized::category(&e), e.to_string(), Duration::from_secs(15))
                    }
                    Ok(Some(other)) => Outcome::waiting("TopicInUse", other, RESYNC),
                    Ok(None) => sync(&kt, &admin, &kc.uid().unwrap_or_default(), &mut st, ctx, writes).await,
                },
            },
        },
    };
    status::set_all(
        &mut st.conditions,
        outcome.ready,
        !outcome.ready,
        outcome.degraded.as_ref().map(|(r, m)| (*r, m.as_str())),
        outcome.reason,
        &outcome.message,
        kt.meta().generation,
    );
    st.observed_generation = kt.meta().generation;
    write_status(&api, &name, &old, st, writes).await?;
    Ok(Action::requeue(outcome.requeue))
}

/// Whether `st` records that this KafkaTopic manages its topic in the cluster `cluster_uid`
/// (a status from before `clusterUID` existed counts for any cluster).
fn claims(st: &KafkaTopicStatus, cluster_uid: &str) -> bool {
    st.managed_by == MANAGED_BY_KOPERATOR && st.cluster_uid.as_deref().is_none_or(|u| u == cluster_uid)
}

/// A KafkaTopic other than `kt`, on the same cluster and topic, that manages the topic.
fn manages_same_topic(kt: &KafkaTopic, o: &KafkaTopic, cluster_uid: &str) -> bool {
    let own_ns = kt.namespace().unwrap_or_default();
    let o_ns = o.namespace().unwrap_or_default();
    let same_object = o.uid() == kt.uid() || (o.name_any() == kt.name_any() && o_ns == own_ns);
    !same_object
        && o.spec.name == kt.spec.name
        && o.spec.cluster_ref.name == kt.spec.cluster_ref.name
        && o.spec.cluster_ref.namespace_or(&o_ns) == kt.spec.cluster_ref.namespace_or(&own_ns)
        && o.status.as_ref().is_some_and(|st| claims(st, cluster_uid))
}

/// The KafkaTopic other than `kt` that manages the same topic of `cluster`, as
/// `namespace/name`. Only the namespaces the cluster accepts can hold one (the others are
/// refused before they act), so those are listed: the cluster's own and the ones its
/// `allowed-namespaces` annotation names, or every namespace for `*`
/// ([`Context::list_accepted`]).
async fn other_manager(kt: &KafkaTopic, cluster: &KafkaCluster, ctx: &Context) -> Result<Option<String>, Error> {
    let uid = cluster.uid().unwrap_or_default();
    let topics = ctx.list_accepted::<KafkaTopic>(cluster).await?;
    Ok(topics
        .iter()
        .find(|o| manages_same_topic(kt, o, &uid))
        .map(|o| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())))
}

/// Before this KafkaTopic creates or adopts its topic: `Some(why)` when another KafkaTopic
/// manages the topic (nothing is written then). A claim on a cluster that has since been
/// replaced (another UID) is dropped. Nothing to check while this KafkaTopic manages it.
async fn claim(
    kt: &KafkaTopic,
    cluster: &KafkaCluster,
    st: &mut KafkaTopicStatus,
    ctx: &Context,
) -> Result<Option<String>, Error> {
    let uid = cluster.uid().unwrap_or_default();
    if claims(st, &uid) {
        st.cluster_uid = Some(uid);
        return Ok(None);
    }
    if st.managed_by == MANAGED_BY_KOPERATOR {
        // Managed in a cluster of the same name that was deleted: that topic is gone with it.
        st.managed_by.clear();
        st.cluster_uid = None;
    }
    Ok(other_manager(kt, cluster, ctx).await?.map(|other| {
        format!(
            "topic {} of KafkaCluster {}/{} is managed by KafkaTopic {other}; this KafkaTopic does not create, change or delete it: manage the topic through that KafkaTopic, or delete this one",
            kt.spec.name,
            cluster.namespace().unwrap_or_default(),
            cluster.name_any()
        )
    }))
}

/// Makes the Kafka topic match the spec (when the operator manages it).
async fn sync(
    kt: &KafkaTopic,
    admin: &Admin,
    cluster_uid: &str,
    st: &mut KafkaTopicStatus,
    ctx: &Context,
    writes: &Writes,
) -> Outcome {
    let publish = |type_, reason: &'static str, note: String| async move {
        ctx.publish(kt, type_, reason, &note).await;
        writes.count(true);
    };
    let topic = kt.spec.name.as_str();
    let unreachable = |e: koperator_shared::kafka::Error| {
        Outcome::waiting("KafkaUnreachable", format!("cannot reach Kafka: {e}"), Duration::from_secs(15))
    };
    let meta = match admin.metadata(Some(&[topic])).await {
        Ok(m) => m,
        Err(e) => return unreachable(e),
    };
    let annotated = kt.annotations().get(MANAGED_BY_ANNOTATION).cloned();
    let Some(existing) = meta.topic(topic) else {
        if !st.managed_by.is_empty() && st.managed_by != MANAGED_BY_KOPERATOR {
            return Outcome::waiting(
                "TopicMissing",
                format!("topic {topic} is managed by {} and does not exist in Kafka", st.managed_by),
                RESYNC,
            );
        }
        let new = NewTopic {
            name: topic.into(),
            partitions: kt.spec.partitions,
            replication_factor: kt.spec.replication_factor as i16,
            configs: kt.spec.config.clone().unwrap_or_default(),
        };
        match admin.create_topic(&new).await {
            Ok(()) => {}
            // The controller took the request and may finish it after answering: the topic is
            // this KafkaTopic's (the next pass creates it again if it never appears).
            Err(e) if e.code() == Some(ResponseError::RequestTimedOut) => {}
            // Made meanwhile by someone else: not ours; the next pass applies the adoption rules.
            Err(e) if e.code() == Some(ResponseError::TopicAlreadyExists) => {
                return Outcome::waiting(
                    "TopicExists",
                    format!("topic {topic} was created outside this KafkaTopic meanwhile; checking it"),
                    Duration::from_secs(1),
                );
            }
            Err(e) => {
                return Outcome::waiting(
                    "CreateFailed",
                    format!("cannot create topic {topic}: {e}"),
                    Duration::from_secs(15),
                );
            }
        }
        st.managed_by = MANAGED_BY_KOPERATOR.into();
        st.cluster_uid = Some(cluster_uid.to_string());
        st.state = "created".into();
        publish(EventType::Normal, "TopicCreated", format!("created topic {topic} in Kafka")).await;
        return Outcome {
            ready: false,
            reason: "Creating",
            message: format!("topic {topic} created; checking it"),
            degraded: None,
            requeue: Duration::from_millis(300),
        };
    };
    if !claims(st, cluster_uid) {
        // A topic that already exists and is not ours: adopt it only when asked to (checked on
        // every pass, so that adding the annotation later adopts it), and only from the
        // cluster's own namespace: a tenant elsewhere never takes over (then deletes) it.
        if annotated.as_deref() == Some(MANAGED_BY_KOPERATOR) && !rules::kafkatopic::may_adopt(kt) {
            st.managed_by = "unknown".into();
            return Outcome::waiting(
                "AdoptionForbidden",
                format!(
                    "topic {topic} existed before this KafkaTopic and only a KafkaTopic in the KafkaCluster's namespace ({}) may adopt an existing topic; it is neither changed nor deleted from here: pick a new topic name",
                    kt.spec.cluster_ref.namespace.as_deref().unwrap_or_default()
                ),
                RESYNC,
            );
        }
        st.managed_by = annotated.clone().unwrap_or_else(|| "unknown".into());
        st.state = "created".into();
        if st.managed_by == MANAGED_BY_KOPERATOR {
            st.cluster_uid = Some(cluster_uid.to_string());
            publish(EventType::Normal, "TopicAdopted", format!("adopted existing topic {topic}")).await;
        }
    }
    if st.managed_by != MANAGED_BY_KOPERATOR {
        return Outcome {
            ready: true,
            reason: "NotManaged",
            message: format!(
                "topic {topic} existed before this KafkaTopic and is managed by {}; add annotation {MANAGED_BY_ANNOTATION}: {MANAGED_BY_KOPERATOR} to manage it",
                st.managed_by
            ),
            degraded: None,
            requeue: RESYNC,
        };
    }

    let mut drift: Vec<String> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let actual = existing.partitions.len() as i32;
    let spec_partitions = kt.spec.partitions;
    if spec_partitions > actual {
        if let Err(e) = admin.create_partitions(topic, spec_partitions).await {
            return Outcome::waiting(
                "PartitionsFailed",
                format!("cannot raise partitions of {topic}: {e}"),
                Duration::from_secs(15),
            );
        }
        publish(
            EventType::Normal,
            "PartitionsRaised",
            format!("raised partitions of {topic} from {actual} to {spec_partitions}"),
        )
        .await;
    } else if spec_partitions > 0 && spec_partitions < actual {
        problems.push(format!(
            "Kafka has {actual} partitions and spec.partitions is {spec_partitions}; partitions cannot shrink: set spec.partitions to {actual}"
        ));
    }
    let rf = existing.replication_factor() as i32;
    if kt.spec.replication_factor > 0 && rf != kt.spec.replication_factor {
        problems.push(format!(
            "Kafka has replication factor {rf} and spec.replicationFactor is {}; it cannot change through the KafkaTopic",
            kt.spec.replication_factor
        ));
    }
    let res = ConfigResource::Topic(topic.into());
    match admin.describe_configs(&res).await {
        Err(e) => return unreachable(e),
        Ok(current) => {
            let desired: BTreeMap<String, String> = kt.spec.config.clone().unwrap_or_default();
            // The topic is the operator's: every topic-level override comes from the spec.
            let overrides: BTreeSet<String> =
                current.iter().filter(|c| c.source == ConfigSource::DynamicTopic).map(|c| c.name.clone()).collect();
            let ops = config_ops(&desired, &current, ConfigSource::DynamicTopic, &overrides);
            if !ops.is_empty() {
                if let Err(e) = admin.alter_configs(&res, &ops).await {
                    return Outcome::waiting(
                        "ConfigFailed",
                        format!("cannot change configs of {topic}: {e}"),
                        Duration::from_secs(15),
                    );
                }
                let settled = st.observed_generation == kt.meta().generation
                    && st.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
                let what = format!("{ops:?}");
                if settled {
                    drift.push(what.clone());
                    warn!(topic, changes = %what, "topic configs changed outside the operator; restored from the spec");
                    publish(
                        EventType::Warning,
                        "DriftCorrected",
                        format!("configs of {topic} were changed outside the operator; restored: {what}"),
                    )
                    .await;
                } else {
                    info!(topic, changes = %what, "topic configs updated");
                    publish(EventType::Normal, "ConfigUpdated", format!("configs of {topic}: {what}")).await;
                }
            }
        }
    }
    if !problems.is_empty() {
        return Outcome {
            ready: true,
            reason: "Drift",
            message: problems.join("; "),
            degraded: Some(("Drift", problems.join("; "))),
            requeue: RESYNC,
        };
    }
    let message = if drift.is_empty() {
        format!("topic {topic} matches the spec")
    } else {
        format!("restored configs changed outside the operator: {}", drift.join("; "))
    };
    Outcome { ready: true, reason: "InSync", message, degraded: None, requeue: RESYNC }
}

/// Deletes the Kafka topic (when managed and not kept), waits until Kafka has dropped it, then
/// releases the finalizer.
async fn finalize(
    kt: &KafkaTopic,
    cluster: Option<&KafkaCluster>,
    st: &KafkaTopicStatus,
    ctx: &Context,
    writes: &Writes,
) -> Result<Action, Error> {
    let publish = |type_, reason: &'static str, note: String| async move {
        ctx.publish(kt, type_, reason, &note).await;
        writes.count(true);
    };
    let keep = kt.annotations().get(KEEP_TOPIC_ANNOTATION).is_some_and(|v| v == "true");
    let topic = kt.spec.name.as_str();
    let ns = kt.namespace().unwrap_or_default();
    let live_cluster = match cluster.filter(|c| c.meta().deletion_timestamp.is_none()) {
        None => None,
        // Managed in a cluster of the same name that was deleted: not this cluster's topic.
        Some(c) if !claims(st, &c.uid().unwrap_or_default()) => None,
        Some(c) if !c.allows_namespace(&ns) => {
            let note = format!("{}; topic {topic} is left in Kafka", not_allowed_message("KafkaTopic", &ns, c));
            warn!(topic, "{note}");
            publish(EventType::Warning, "CleanupSkipped", note).await;
            None
        }
        Some(_) if keep => None,
        Some(c) => match (other_manager(kt, c, ctx).await?, ValidatedCluster::new(c, &ctx.rules)) {
            (Some(other), _) => {
                let note = format!("topic {topic} is also managed by KafkaTopic {other}; it is left in Kafka");
                warn!(topic, "{note}");
                publish(EventType::Warning, "CleanupSkipped", note).await;
                None
            }
            (None, v) => match v {
                Ok(v) => Some(v),
                Err(e) => {
                    // Without a valid spec there is no address to reach Kafka at: the topic stays
                    // (never deleted on a guess), and the user is told so.
                    let note = format!("the KafkaCluster is not valid ({e}); topic {topic} is left in Kafka");
                    warn!(topic, "{note}");
                    publish(EventType::Warning, "CleanupSkipped", note).await;
                    None
                }
            },
        },
    };
    if st.managed_by == MANAGED_BY_KOPERATOR && !keep {
        if let Some(cluster) = &live_cluster {
            let admin = match ctx.kafka.admin(cluster).await {
                Ok(a) => a,
                Err(why) => {
                    warn!(topic, %why, "cannot delete the Kafka topic yet");
                    return Ok(Action::requeue(Duration::from_secs(15)));
                }
            };
            match admin.delete_topic(topic).await {
                Ok(()) => {
                    publish(EventType::Normal, "TopicDeleted", format!("deleted topic {topic} from Kafka")).await;
                }
                Err(e) if e.code() == Some(ResponseError::UnknownTopicOrPartition) => {}
                Err(e) => {
                    warn!(topic, error = %e, "cannot delete the Kafka topic yet");
                    return Ok(Action::requeue(Duration::from_secs(10)));
                }
            }
            match admin.metadata(Some(&[topic])).await {
                Ok(m) if m.topic(topic).is_none() => {}
                _ => return Ok(Action::requeue(Duration::from_secs(1))),
            }
        }
    } else if keep {
        info!(topic, "KafkaTopic deleted; the Kafka topic is kept as its {KEEP_TOPIC_ANNOTATION} annotation asks");
    }
    Ok(Action::await_change())
}

async fn write_status(
    api: &Api<KafkaTopic>,
    name: &str,
    old: &KafkaTopicStatus,
    new: KafkaTopicStatus,
    writes: &Writes,
) -> Result<(), Error> {
    let unchanged = old.state == new.state
        && old.managed_by == new.managed_by
        && old.cluster_uid == new.cluster_uid
        && old.observed_generation == new.observed_generation
        && status::same_conditions(&old.conditions, &new.conditions);
    if !unchanged {
        status::replace(api, name, &new).await?;
        writes.count(true);
    }
    Ok(())
}

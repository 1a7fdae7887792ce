//! The planner: a pure function from the validated spec and the live state to everything one
//! reconcile does — objects to apply and delete, the one broker to restart (with why), dynamic
//! config changes, Events, the new status (with the certificates read from their Secrets,
//! [`pki_status`]) and when to look again. No I/O: table-tested below.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};

use koperator_shared::api::common::PAUSE_ANNOTATION;
use koperator_shared::api::kafkacluster::{BrokerState, GracefulActionState, KafkaClusterStatus, StorageConfig};
use koperator_shared::api::{KafkaCluster, KafkaTopic};
use koperator_shared::render::{self, cruise_control as cc, envoy, objects};
use koperator_shared::support;
use koperator_shared::validated::{ValidatedCluster, ValidationError};

use super::admin_credential::{self, AdminCredential};
use super::broker_failure;
use super::certificates::{self, CertPlan};
use super::dereference::{KafkaState, LiveState};
use super::graceful::{self, NewOperation, RemovedNode, WantedNode};
use super::graceful_disks::{self, BrokerDisks};
use super::own_certificates::{self, OwnCertificates};
use super::pki_status;
use super::{FORCE_BROKER_REMOVAL, cluster_id_from_uid};
use crate::apply::{OWNER_UID, is_applied, is_ours, owned_by, owned_by_uid, unless_applied};
use crate::dynamic_config::{self, ConfigChange};
use crate::rolling::{self, Decision};
use crate::status::{self, state};

/// Requeue of a settled cluster.
pub const SETTLED: Duration = Duration::from_secs(300);
/// Requeue while something is under way.
pub const BUSY: Duration = Duration::from_secs(5);
/// Requeue while every broker Pod exists and only their start is awaited: the Pod watch wakes
/// the cluster as soon as one becomes Ready or fails, so this is only a safety net (with
/// 1,000 clusters starting, 5 s polls of each kept the operator from writing the rest).
pub const STARTING: Duration = Duration::from_secs(30);
/// How often a broker's Cruise Control operation is looked at while it runs.
pub const GRACEFUL_POLL: Duration = Duration::from_secs(10);
/// How often a settled cluster with Secrets of the user's own reads them again.
pub const OWN_SECRETS_POLL: Duration = Duration::from_secs(60);

/// A desired object, with its applied-hash annotation set.
#[derive(Debug, Clone)]
pub enum Object {
    /// A broker's ConfigMap, or the JMX exporter's.
    ConfigMap(ConfigMap),
    /// A broker's disk.
    Pvc(PersistentVolumeClaim),
    /// A broker Pod that does not exist yet (boxed: a Pod is large).
    Pod(Box<Pod>),
    /// A cluster or per-broker Service.
    Service(Service),
    /// The cluster's PodDisruptionBudget.
    Pdb(PodDisruptionBudget),
    /// Cruise Control's Deployment (boxed: large).
    Deployment(Box<Deployment>),
    /// The Cruise Control metrics topic's KafkaTopic.
    Topic(Box<KafkaTopic>),
    /// A Contour HTTPProxy or a Gateway API TLSRoute (boxed: large).
    Route(Box<kube::api::DynamicObject>),
}

impl Object {
    /// `Kind/name`, for messages.
    pub fn describe(&self) -> String {
        match self {
            Object::ConfigMap(o) => format!("ConfigMap/{}", o.name_any()),
            Object::Pvc(o) => format!("PersistentVolumeClaim/{}", o.name_any()),
            Object::Pod(o) => format!("Pod/{}", o.name_any()),
            Object::Service(o) => format!("Service/{}", o.name_any()),
            Object::Pdb(o) => format!("PodDisruptionBudget/{}", o.name_any()),
            Object::Deployment(o) => format!("Deployment/{}", o.name_any()),
            Object::Topic(o) => format!("KafkaTopic/{}", o.name_any()),
            Object::Route(o) => {
                format!("{}/{}", o.types.as_ref().map(|t| t.kind.as_str()).unwrap_or("Route"), o.name_any())
            }
        }
    }
}

/// Kinds of owned objects the planner may delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnedKind {
    /// A broker Pod.
    Pod,
    /// A broker ConfigMap.
    ConfigMap,
    /// A Service.
    Service,
    /// Cruise Control's Deployment.
    Deployment,
    /// A broker's disk removed from the spec, drained and no longer mounted.
    Pvc,
    /// A CruiseControlOperation the cluster made (a join or drain no longer wanted).
    CruiseControlOperation,
    /// An Envoy ingress PodDisruptionBudget no longer wanted.
    Pdb,
    /// A Contour HTTPProxy or Gateway API TLSRoute no longer wanted.
    Route(koperator_shared::render::cluster_ip::Controller),
}

/// An owned object to delete, checked against its UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// Its kind.
    pub kind: OwnedKind,
    /// Its name.
    pub name: String,
    /// Its UID (a precondition of the delete call).
    pub uid: String,
}

/// The broker to restart now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restart {
    /// Broker id.
    pub broker: i32,
    /// Its Pod.
    pub pod: String,
    /// The Pod's UID (a precondition of the delete call).
    pub uid: String,
}

/// An Event to publish once the plan is carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEvent {
    /// A Warning rather than a Normal event.
    pub warning: bool,
    /// The Event's reason.
    pub reason: &'static str,
    /// What happened.
    pub note: String,
}

/// Everything one reconcile does.
#[derive(Debug)]
pub struct Plan {
    /// Objects to server-side apply, in order (ConfigMaps and PVCs before their Pods).
    pub apply: Vec<Object>,
    /// Owned objects to delete.
    pub delete: Vec<Deletion>,
    /// The one broker to restart now.
    pub restart: Option<Restart>,
    /// Dynamic config changes to make through the Admin API.
    pub dynamic: Vec<ConfigChange>,
    /// Events to publish.
    pub events: Vec<PlannedEvent>,
    /// The status the cluster should have.
    pub status: KafkaClusterStatus,
    /// Whether `status` differs from the live one (transition times aside).
    pub status_changed: bool,
    /// When to reconcile again.
    pub requeue: Duration,
    /// Certificates of the cluster PKI to issue, before anything is applied.
    pub certificates: Vec<certificates::Order>,
    /// The CA (certificate and key) and the CA chain the certificates are issued from.
    pub ca: Option<(koperator_shared::pki::KeyAndCert, String)>,
    /// The admin SCRAM Secret to create (with a new random password) before anything else.
    pub admin_credential: Option<String>,
    /// CruiseControlOperations to create (graceful up- and downscale), with their
    /// `ttlSecondsAfterFinished` (`cruiseControlConfig.cruiseControlOperationSpec`).
    pub operations: Vec<NewOperation>,
    /// `ttlSecondsAfterFinished` of the operations created.
    pub operation_ttl: Option<i32>,
}

/// Pod annotation with the fingerprint of the broker's certificate: a reissued certificate
/// makes the Pod out of date, so the broker picks it up through the health-gated roll.
pub const CERTIFICATE_ANNOTATION: &str = "koperator.banzaicloud.io/certificate-hash";

impl Plan {
    /// True when the reconcile writes nothing and asks Kafka for no change.
    pub fn is_noop(&self) -> bool {
        self.apply.is_empty()
            && self.delete.is_empty()
            && self.restart.is_none()
            && self.dynamic.is_empty()
            && self.events.is_empty()
            && self.certificates.is_empty()
            && self.admin_credential.is_none()
            && self.operations.is_empty()
            && !self.status_changed
    }

    /// Records dynamic config changes that Kafka refused (the broker, or `None` for the
    /// cluster-wide defaults, with why): those brokers report `PerBrokerConfigError` (all of
    /// them for a cluster-wide failure).
    /// The keys of a failed resource stay managed (what was set before and what may have been
    /// set now), so a key removed from the spec is deleted on a later try.
    pub fn record_config_failures(&mut self, old: &KafkaClusterStatus, failed: &BTreeMap<Option<i32>, String>) {
        if failed.is_empty() {
            return;
        }
        let all = failed.contains_key(&None);
        for (id, state) in self.status.brokers_state.iter_mut().flatten() {
            let broker = id.parse::<i32>().ok();
            if all || failed.contains_key(&broker) {
                state.per_broker_configuration_state = "PerBrokerConfigError".into();
            }
        }
        let before = old.dynamic_config_keys.clone().unwrap_or_default();
        let mut keys = self.status.dynamic_config_keys.clone().unwrap_or_default();
        let union = |a: &[String], b: &[String]| -> Vec<String> {
            a.iter().chain(b).cloned().collect::<BTreeSet<_>>().into_iter().collect()
        };
        if all {
            keys.cluster_wide = union(&keys.cluster_wide, &before.cluster_wide);
        }
        for (id, previous) in &before.brokers {
            if all || failed.contains_key(&id.parse::<i32>().ok()) {
                let now = keys.brokers.get(id).cloned().unwrap_or_default();
                keys.brokers.insert(id.clone(), union(&now, previous));
            }
        }
        self.status.dynamic_config_keys = Some(keys).filter(|k| *k != Default::default());
        self.status_changed = !same_status(old, &self.status);
        self.requeue = BUSY;
    }
}

fn same_status(a: &KafkaClusterStatus, b: &KafkaClusterStatus) -> bool {
    a.state == b.state
        && a.brokers_state == b.brokers_state
        && a.cluster_id == b.cluster_id
        && a.observed_generation == b.observed_generation
        && a.dynamic_config_keys == b.dynamic_config_keys
        && a.certificates == b.certificates
        && a.cruise_control_topic_status == b.cruise_control_topic_status
        && a.alert_count == b.alert_count
        && status::same_conditions(&a.conditions, &b.conditions)
}

/// A Pod that is Ready and not being deleted.
pub(crate) fn pod_ready(p: &Pod) -> bool {
    p.meta().deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn annotated(kc: &KafkaCluster, key: &str) -> bool {
    kc.annotations().get(key).is_some_and(|v| v == "true")
}

/// The plan for a KafkaCluster the admission rules reject (it slipped past the webhook, or
/// the webhook is down): `Degraded/InvalidSpec` with the rule errors, nothing touched.
pub fn rejected(kc: &KafkaCluster, err: &ValidationError) -> Plan {
    let old = kc.status.clone().unwrap_or_default();
    let mut st = old.clone();
    let msg = match err {
        ValidationError::Invalid(v) => v.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        other => other.to_string(),
    };
    let reason = err.category();
    status::set_all(&mut st.conditions, false, false, Some((reason, &msg)), reason, &msg, kc.meta().generation);
    st.observed_generation = kc.meta().generation;
    finish(old, st, Duration::from_secs(60))
}

fn finish(old: KafkaClusterStatus, status: KafkaClusterStatus, requeue: Duration) -> Plan {
    Plan {
        apply: Vec::new(),
        delete: Vec::new(),
        restart: None,
        dynamic: Vec::new(),
        events: Vec::new(),
        status_changed: !same_status(&old, &status),
        status,
        requeue,
        certificates: Vec::new(),
        ca: None,
        admin_credential: None,
        operations: Vec::new(),
        operation_ttl: None,
    }
}

/// The KRaft cluster id of `cluster` (kept in the status once chosen).
fn cluster_id(cluster: &ValidatedCluster) -> String {
    let old = cluster.status.as_ref().and_then(|s| s.cluster_id.clone());
    match old {
        Some(id) => id,
        None if cluster.spec.kraft => cluster_id_from_uid(cluster.meta().uid.as_deref().unwrap_or_default()),
        None => String::new(),
    }
}

/// A broker as rendered: its ConfigMap, Pod and PVCs, owner set.
struct DesiredBroker {
    id: i32,
    config_map: ConfigMap,
    pod: Pod,
    pvcs: Vec<PersistentVolumeClaim>,
}

fn desired_brokers(cluster: &ValidatedCluster) -> Vec<DesiredBroker> {
    let owner = cluster.controller_owner_ref(&()).expect("a stored KafkaCluster has a uid");
    let id = cluster_id(cluster);
    render::brokers(cluster)
        .iter()
        .map(|b| {
            let objects::BrokerObjects { mut config_map, mut pod, mut pvcs } = objects::broker_objects(cluster, b, &id);
            owned_by(&mut config_map, owner.clone());
            owned_by(&mut pod, owner.clone());
            // No owner reference on disks (they outlive brokers and clusters unless the user
            // deletes them): the owner-UID annotation says they are this cluster's.
            for pvc in &mut pvcs {
                pvc.annotations_mut().insert(OWNER_UID.to_string(), owner.uid.clone());
            }
            DesiredBroker { id: b.broker.id, config_map, pod, pvcs }
        })
        .collect()
}

/// [`desired_brokers`] on the disks the brokers already have: a disk whose live PVC has another
/// name (made before PVC names carried a hash, or by Koperator) keeps it, never a second PVC.
/// On TLS clusters each Pod also carries its certificate's fingerprint ([`CERTIFICATE_ANNOTATION`]),
/// and the fingerprint of the listener Secrets of the user's own when there are any.
fn desired_brokers_on(
    cluster: &ValidatedCluster,
    live: &LiveState,
    certs: &CertPlan,
    own: &OwnCertificates,
) -> Vec<DesiredBroker> {
    let mut desired = desired_brokers(cluster);
    let tls = koperator_shared::render::tls::enabled(cluster);
    for b in &mut desired {
        objects::keep_existing_pvcs(b.id, &mut b.pod, &mut b.pvcs, live.pvcs.values());
        if tls {
            let fp = certs.broker_fingerprints.get(&b.id).cloned().unwrap_or_default();
            b.pod.annotations_mut().insert(CERTIFICATE_ANNOTATION.into(), fp);
        }
        if let Some(fp) = &own.fingerprint {
            b.pod.annotations_mut().insert(own_certificates::OWN_CERTIFICATE_ANNOTATION.into(), fp.clone());
        }
    }
    desired
}

/// The cluster PKI's plan for `live`.
fn certificate_plan(cluster: &ValidatedCluster, live: &LiveState) -> CertPlan {
    let uid = cluster.uid().unwrap_or_default();
    let running = live
        .pods
        .values()
        .filter(|p| is_ours(*p, &uid))
        .filter_map(|p| {
            let id = p.labels().get("brokerId")?.parse().ok()?;
            Some((id, p.annotations().get(CERTIFICATE_ANNOTATION)?.clone()))
        })
        .collect();
    let rollout = certificates::Rollout { running, users: live.user_certificates.clone() };
    certificates::plan(cluster, &live.secrets, &rollout, live.now, &live.pki)
}

/// The objects one reconcile applies, and the same-named live objects it must not touch.
pub(super) struct Wanted<'a> {
    /// UID of the KafkaCluster.
    pub(super) uid: &'a str,
    /// Objects to apply, in order.
    apply: Vec<Object>,
    /// `Kind/name` of live objects with a wanted name that are not ours.
    foreign: Vec<String>,
}

impl Wanted<'_> {
    /// Wants `desired` (as `wrap` makes it an [`Object`]): applied unless `live` already
    /// carries it; when `live` exists and is not ours (another controlling owner, or none and
    /// no owner-UID annotation: a same-named object someone else made), it is left alone and
    /// named instead — server-side apply with `force` would otherwise take it over.
    pub(super) fn object<K: Resource + serde::Serialize>(
        &mut self,
        desired: K,
        live: Option<&K>,
        wrap: fn(K) -> Object,
    ) {
        if live.is_some_and(|l| !is_ours(l, self.uid)) {
            self.foreign.push(wrap(desired).describe());
        } else if let Some(obj) = unless_applied(desired, live) {
            self.apply.push(wrap(obj));
        }
    }
}

/// Names of every object the operator wants for `cluster` (the dereference step reads each of
/// them, labelled or not, so a same-named object nobody labelled is seen too).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DesiredNames {
    /// The JMX exporter's and the brokers' ConfigMaps.
    pub config_maps: Vec<String>,
    /// Broker PVCs.
    pub pvcs: Vec<String>,
    /// Broker Pods.
    pub pods: Vec<String>,
    /// Services.
    pub services: Vec<String>,
    /// Cruise Control's Deployment.
    pub deployments: Vec<String>,
    /// The Cruise Control metrics topic's KafkaTopic.
    pub topics: Vec<String>,
    /// The Envoy ingress objects.
    pub envoy: EnvoyNames,
}

/// Names of the Envoy ingress objects the operator wants.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EnvoyNames {
    /// `envoy-config-…`.
    pub config_maps: Vec<String>,
    /// `envoy-…`.
    pub deployments: Vec<String>,
    /// `envoy-loadbalancer-…`.
    pub services: Vec<String>,
    /// `envoy-…-pdb`.
    pub pdbs: Vec<String>,
}

/// The names of what [`plan`] would apply for `cluster`.
pub fn desired_names(cluster: &ValidatedCluster) -> DesiredNames {
    let mut names = DesiredNames::default();
    names.config_maps.push(render::names::jmx_exporter_config_map(cluster));
    for b in desired_brokers(cluster) {
        names.config_maps.push(b.config_map.name_any());
        names.pvcs.extend(b.pvcs.iter().map(ResourceExt::name_any));
        names.pods.push(b.pod.name_any());
    }
    names.services = objects::services(cluster).iter().map(ResourceExt::name_any).collect();
    if let Some(o) = cc::objects(cluster) {
        names.config_maps.extend([o.jmx_config_map.name_any(), o.config_map.name_any()]);
        names.services.push(o.service.name_any());
        names.deployments.push(o.deployment.name_any());
        names.topics.extend(o.topic.iter().map(ResourceExt::name_any));
    }
    // Names only: the configuration itself is rendered once, by the plan.
    for i in envoy::ingresses(cluster) {
        names.envoy.config_maps.push(envoy::config_map_name(cluster, &i));
        names.envoy.deployments.push(envoy::deployment_name(cluster, &i));
        names.envoy.services.push(envoy::service_name(cluster, &i));
        if envoy::wants_pdb(&i) {
            names.envoy.pdbs.push(envoy::pdb_name(cluster, &i));
        }
    }
    names
}

/// What the Kubernetes side says about the brokers.
struct BrokerPods {
    /// Every desired broker Pod exists and is Ready.
    all_ready: bool,
    /// Every desired broker Pod exists, and those not Ready are out of date: a restart may be
    /// considered (restarting a broker that is down anyway costs no availability, and is how
    /// a broker that cannot start on its old spec gets a fixed one).
    may_roll: bool,
    /// Brokers whose live Pod runs another spec: (id, Pod name, Pod UID).
    out_of_date: Vec<(i32, String, String)>,
    /// Brokers whose Pod is not Ready because its container failed: (id, what it said).
    failed: Vec<(i32, String)>,
}

/// A same-named Pod that is not ours counts as missing: never waited on, restarted or deleted.
fn broker_pods(desired: &[DesiredBroker], live: &LiveState, uid: &str) -> BrokerPods {
    let (mut all_ready, mut may_roll) = (true, true);
    let (mut out_of_date, mut failed) = (Vec::new(), Vec::new());
    for b in desired {
        match live.pods.get(&b.pod.name_any()).filter(|p| is_ours(*p, uid)) {
            None => (all_ready, may_roll) = (false, false),
            Some(p) => {
                let ready = pod_ready(p);
                let current = is_applied(&b.pod, p);
                all_ready &= ready;
                may_roll &= ready || !current;
                if !current {
                    out_of_date.push((b.id, p.name_any(), p.uid().unwrap_or_default()));
                }
                if let Some(why) = (!ready).then(|| broker_failure::of(p)).flatten() {
                    failed.push((b.id, why));
                }
            }
        }
    }
    BrokerPods { all_ready, may_roll, out_of_date, failed }
}

/// What the dereference step should ask Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaWants {
    /// Dynamic configs (every broker Pod is up).
    pub configs: bool,
    /// The health snapshot (and a restart is pending).
    pub health: bool,
    /// Where Kafka places partition replicas (a node removed from the spec is still there).
    pub replicas: bool,
    /// Each broker's log directories (a disk was removed from the spec or waits to get
    /// partitions).
    pub log_dirs: bool,
}

/// `cluster` with the principals of the certificates of the user's own its brokers trust as
/// super users and with what Kubernetes decided for its external listeners, and what was made
/// of those certificates.
fn with_own_certificates(cluster: &ValidatedCluster, live: &LiveState) -> (ValidatedCluster, OwnCertificates) {
    let own = own_certificates::check(cluster, &live.secrets);
    let facts = super::external_facts::external_facts(cluster, live);
    (cluster.clone().with_principals(own.principals.clone()).with_external(facts), own)
}

/// Which Kafka facts the plan needs, given the Kubernetes side of `live`: none until every
/// broker is up, the health snapshot only when a broker waits for a restart.
pub fn kafka_wants(cluster: &ValidatedCluster, live: &LiveState) -> KafkaWants {
    if annotated(cluster, PAUSE_ANNOTATION) || support::blocks_start(cluster.unsupported()) {
        return KafkaWants { configs: false, health: false, replicas: false, log_dirs: false };
    }
    let uid = cluster.meta().uid.clone().unwrap_or_default();
    let (cluster, own) = with_own_certificates(cluster, live);
    // Log directories not read yet: every removed disk not confirmed drained stays.
    let disks = disk_decision(&cluster, live, &uid, false);
    let log_dirs = broker_disks(&cluster, live, &uid).iter().any(|b| b.live.iter().any(|m| !b.wanted.contains(m)))
        || disks
            .states
            .values()
            .flat_map(|m| m.values())
            .any(|v| v.cruise_control_volume_state == graceful_disks::volume::REBALANCE_REQUIRED);
    let cluster = with_retained(&cluster, live, &uid, &disks.retain);
    let certs = certificate_plan(&cluster, live);
    let desired = desired_brokers_on(&cluster, live, &certs, &own);
    let pods = broker_pods(&desired, live, &uid);
    let replicas = !annotated(&cluster, FORCE_BROKER_REMOVAL) && !removed_nodes(&desired, live, &uid).is_empty();
    KafkaWants { configs: pods.all_ready, health: pods.may_roll && !pods.out_of_date.is_empty(), replicas, log_dirs }
}

/// The plan for a valid cluster.
pub fn plan(cluster: &ValidatedCluster, live: &LiveState) -> Plan {
    let old = cluster.status.clone().unwrap_or_default();
    let mut st = old.clone();
    let generation = cluster.meta().generation;
    let uid = cluster.meta().uid.clone().unwrap_or_default();

    if annotated(cluster, PAUSE_ANNOTATION) {
        let note = format!("reconciliation is paused by annotation {PAUSE_ANNOTATION}=\"true\"; nothing is changed");
        status::set_condition(&mut st.conditions, "Reconciling", false, "Paused", &note, generation);
        return finish(old, st, SETTLED);
    }
    let unsupported = cluster.unsupported();
    if support::blocks_start(unsupported) {
        let msg = support::message(unsupported);
        status::set_all(
            &mut st.conditions,
            false,
            false,
            Some(("NotSupported", &msg)),
            "NotSupported",
            &msg,
            generation,
        );
        st.observed_generation = generation;
        return finish(old, st, SETTLED);
    }
    if cluster.spec.kraft && st.cluster_id.is_none() {
        st.cluster_id = Some(cluster_id(cluster));
    }
    let (with_principals, own) = with_own_certificates(cluster, live);
    // Disks removed from the spec stay on their brokers until drained (graceful_disks).
    let retain = disk_decision(&with_principals, live, &uid, false).retain;
    let with_disks = with_retained(&with_principals, live, &uid, &retain);
    let cluster = &with_disks;
    let formatted = !live.pods.is_empty() || !live.pvcs.is_empty();
    let admin = admin_credential::check(cluster, &live.secrets, formatted);

    let mut wanted = Wanted { uid: &uid, apply: Vec::new(), foreign: Vec::new() };
    let certs = certificate_plan(cluster, live);
    st.certificates = pki_status::status(cluster, &live.secrets);
    let tls = koperator_shared::render::tls::enabled(cluster);
    let desired = desired_brokers_on(cluster, live, &certs, &own);
    let pods = broker_pods(&desired, live, &uid);
    let owner = cluster.controller_owner_ref(&()).expect("a stored KafkaCluster has a uid");
    // The JMX exporter's configuration, before the Pods that mount it; when someone else's
    // ConfigMap has its name, no broker starts on their configuration.
    let mut jmx = koperator_shared::render::jmx::config_map(cluster);
    owned_by(&mut jmx, owner.clone());
    let live_jmx = live.config_maps.get(&jmx.name_any());
    wanted.object(jmx, live_jmx, Object::ConfigMap);
    let jmx_ours = wanted.foreign.is_empty();
    let mut brokers_state: BTreeMap<String, BrokerState> = BTreeMap::new();
    for b in &desired {
        let foreign_before = wanted.foreign.len();
        let live_config = live.config_maps.get(&b.config_map.name_any());
        // While a Secret of the user's own cannot be read, a live config keeps its super users.
        if own.complete() || live_config.is_none() {
            wanted.object(b.config_map.clone(), live_config, Object::ConfigMap);
        }
        // A disk kept only until it is drained is not applied again (its claim is as it was).
        let kept = retain.get(&b.id);
        for pvc in &b.pvcs {
            let mount = pvc.annotations().get(objects::MOUNT_PATH_ANNOTATION);
            if mount.is_some_and(|m| kept.is_some_and(|k| k.contains(m))) {
                continue;
            }
            wanted.object(pvc.clone(), live.pvcs.get(&pvc.name_any()), Object::Pvc);
        }
        // A broker whose ConfigMap or disk is someone else's would run on their data; a TLS
        // broker starts once its certificate exists and every Secret of the user's own opens.
        let own_inputs = wanted.foreign.len() == foreign_before
            && jmx_ours
            && (!tls || certs.broker_fingerprints.contains_key(&b.id))
            && own.problems.is_empty()
            && admin.ready();
        let live_pod = live.pods.get(&b.pod.name_any());
        match live_pod {
            // A missing Pod is created; an existing one is replaced only by a restart.
            None if own_inputs => wanted.object(b.pod.clone(), None, |p| Object::Pod(Box::new(p))),
            None => {}
            Some(p) if !is_ours(p, &uid) => wanted.foreign.push(Object::Pod(Box::new(p.clone())).describe()),
            Some(_) => {}
        }
        let in_sync = live_pod.is_none_or(|p| is_ours(p, &uid) && is_applied(&b.pod, p));
        let previous = old.brokers_state.as_ref().and_then(|m| m.get(&b.id.to_string())).cloned().unwrap_or_default();
        brokers_state.insert(
            b.id.to_string(),
            BrokerState {
                configuration_state: if in_sync { "ConfigInSync" } else { "ConfigOutOfSync" }.into(),
                image: b.pod.spec.as_ref().and_then(|s| s.containers[0].image.clone()),
                // The release the broker's exporter reported, else the last one known.
                version: live.versions.get(&b.id).cloned().or(previous.version.clone()),
                ..previous
            },
        );
    }
    let mut wanted_services = BTreeSet::new();
    for mut svc in objects::services(cluster) {
        owned_by(&mut svc, owner.clone());
        wanted_services.insert(svc.name_any());
        let live_svc = live.services.get(&svc.name_any());
        wanted.object(svc, live_svc, Object::Service);
    }
    if let Some(mut pdb) = objects::pdb(cluster) {
        owned_by(&mut pdb, owner.clone());
        wanted.object(pdb, live.pdb.as_ref(), Object::Pdb);
    }
    // ---- Cruise Control (see `cruise_control` below) ----
    let cruise_control = cruise_control(cluster, live, &owner, pods.all_ready, &mut wanted);
    wanted_services.extend(cruise_control.services.iter().cloned());
    let envoy_delete = envoy_ingress(cluster, live, &owner, &mut wanted);
    let routes = super::routes::plan(cluster, &live.routes, &owner, &mut wanted);
    wanted_services.extend(routes.services.iter().cloned());
    st.cruise_control_topic_status = cruise_control.topic_status.clone();
    // ---- end of Cruise Control ----

    /// Envoy in front of the external listeners it serves ([`envoy::objects`]): its objects are
    /// applied; with `removeUnusedIngressResources` the cluster's Envoy objects nothing wants any
    /// more are deleted (Koperator keeps them otherwise, and so do we).
    fn envoy_ingress(
        cluster: &ValidatedCluster,
        live: &LiveState,
        owner: &OwnerReference,
        wanted: &mut Wanted<'_>,
    ) -> Vec<Deletion> {
        let mut keep = BTreeSet::new();
        for o in envoy::objects(cluster) {
            let envoy::EnvoyObjects { mut config_map, mut deployment, mut service, pdb } = o;
            owned_by(&mut config_map, owner.clone());
            owned_by(&mut deployment, owner.clone());
            owned_by(&mut service, owner.clone());
            keep.extend([config_map.name_any(), deployment.name_any(), service.name_any()]);
            let live_config = live.envoy.config_maps.get(&config_map.name_any());
            wanted.object(config_map, live_config, Object::ConfigMap);
            let live_service = live.envoy.services.get(&service.name_any());
            wanted.object(service, live_service, Object::Service);
            let live_deployment = live.envoy.deployments.get(&deployment.name_any());
            wanted.object(deployment, live_deployment, |d| Object::Deployment(Box::new(d)));
            if let Some(mut pdb) = pdb {
                owned_by(&mut pdb, owner.clone());
                keep.insert(pdb.name_any());
                let live_pdb = live.envoy.pdbs.get(&pdb.name_any());
                wanted.object(pdb, live_pdb, Object::Pdb);
            }
        }
        if cluster.spec.remove_unused_ingress_resources != Some(true) {
            return Vec::new();
        }
        let uid = wanted.uid;
        let e = &live.envoy;
        let mut delete = unused(&e.config_maps, &keep, uid, OwnedKind::ConfigMap);
        delete.extend(unused(&e.deployments, &keep, uid, OwnedKind::Deployment));
        delete.extend(unused(&e.services, &keep, uid, OwnedKind::Service));
        delete.extend(unused(&e.pdbs, &keep, uid, OwnedKind::Pdb));
        delete
    }

    /// The objects of `live` the cluster with `uid` owns whose names are not in `keep`.
    fn unused<K: Resource>(
        live: &BTreeMap<String, K>,
        keep: &BTreeSet<String>,
        uid: &str,
        kind: OwnedKind,
    ) -> Vec<Deletion> {
        live.iter()
            .filter(|(name, o)| !keep.contains(*name) && owned_by_uid(*o, uid))
            .map(|(name, o)| Deletion { kind, name: name.clone(), uid: o.uid().unwrap_or_default() })
            .collect()
    }

    // ---- end of Envoy ----
    let Wanted { apply: out, foreign, .. } = wanted;

    // Brokers removed from the spec, and Services no longer wanted (ours only).
    let mut events = Vec::new();
    let mut delete = Vec::new();
    // Brokers added to or removed from a running cluster: moved through Cruise Control.
    let removed = removed_nodes(&desired, live, &uid);
    let roles: BTreeSet<i32> = render::broker_role_ids(cluster).into_iter().collect();
    let wanted_nodes: Vec<WantedNode> = desired
        .iter()
        .map(|b| {
            let pod = live.pods.get(&b.pod.name_any()).filter(|p| is_ours(*p, &uid));
            WantedNode {
                id: b.id,
                pod_uid: pod.and_then(|p| p.uid()),
                ready: pod.is_some_and(pod_ready),
                broker: roles.contains(&b.id),
            }
        })
        .collect();
    let no_states = BTreeMap::new();
    let graceful = graceful::decide(graceful::Inputs {
        cluster: &cluster.name_any(),
        cruise_control: cc::configured(cluster),
        force: annotated(cluster, FORCE_BROKER_REMOVAL),
        old: old.brokers_state.as_ref().unwrap_or(&no_states),
        wanted: &wanted_nodes,
        removed: &removed,
        operations: &live.operations,
        replicas: live.replicas.as_ref(),
        now: live.now,
        quiet: pods.all_ready && pods.out_of_date.is_empty(),
    });
    let disks = disk_decision(&with_principals, live, &uid, pods.all_ready && pods.out_of_date.is_empty());
    for (id, action) in &graceful.states {
        let previous = || old.brokers_state.as_ref().and_then(|m| m.get(id)).cloned().unwrap_or_default();
        let entry = brokers_state.entry(id.clone()).or_insert_with(previous);
        let volumes = entry.graceful_action_state.volume_states.take();
        entry.graceful_action_state = GracefulActionState { volume_states: volumes, ..action.clone() };
    }
    for (id, volumes) in &disks.states {
        if let Some(entry) = brokers_state.get_mut(&id.to_string()) {
            entry.graceful_action_state.volume_states = Some(volumes.clone()).filter(|v| !v.is_empty());
        }
    }
    // Drained disks go once their broker's Pod no longer mounts them.
    for (id, mounts) in &disks.release {
        let pod = live.pods.get(&koperator_shared::render::names::broker(cluster, *id)).filter(|p| is_ours(*p, &uid));
        let Some(pod) = pod.filter(|p| p.meta().deletion_timestamp.is_none()) else { continue };
        let claims: BTreeSet<&str> = pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .filter_map(|v| v.persistent_volume_claim.as_ref().map(|c| c.claim_name.as_str()))
            .collect();
        for (mount, pvc) in live_disks(live, &uid, *id) {
            if !mounts.contains(&mount) || claims.contains(pvc.name_any().as_str()) {
                continue;
            }
            delete.push(Deletion { kind: OwnedKind::Pvc, name: pvc.name_any(), uid: pvc.uid().unwrap_or_default() });
            events.push(PlannedEvent {
                warning: false,
                reason: "DiskRemoved",
                note: format!(
                    "disk {mount} of broker {id} removed from the spec: Kafka stores nothing on it and the broker runs without it; PVC {} deleted",
                    pvc.name_any()
                ),
            });
        }
    }
    for n in removed.iter().filter(|n| graceful.remove.contains(&n.id)) {
        let pod =
            live.pods.get(&koperator_shared::render::names::broker(cluster, n.id)).filter(|p| owned_by_uid(*p, &uid));
        if let Some(p) = pod.filter(|p| p.meta().deletion_timestamp.is_none()) {
            delete.push(Deletion { kind: OwnedKind::Pod, name: p.name_any(), uid: p.uid().unwrap_or_default() });
            let how = if annotated(cluster, FORCE_BROKER_REMOVAL) {
                format!("forced by {FORCE_BROKER_REMOVAL}, without moving its partitions")
            } else {
                "Kafka places no partition replica on it".to_string()
            };
            events.push(PlannedEvent {
                warning: false,
                reason: "BrokerRemoved",
                note: format!("broker {} removed from the spec ({how}); its PVCs are kept", n.id),
            });
        }
        // Its ConfigMap goes with it, also when the Pod is already gone.
        let cm_name = koperator_shared::render::names::config_map(cluster, n.id);
        if let Some(cm) = live.config_maps.get(&cm_name).filter(|c| owned_by_uid(*c, &uid)) {
            delete.push(Deletion { kind: OwnedKind::ConfigMap, name: cm_name, uid: cm.uid().unwrap_or_default() });
        }
    }
    for (name, op_uid) in &graceful.stop {
        if live.operations.get(name).is_some_and(|o| owned_by_uid(o, &uid) && o.meta().deletion_timestamp.is_none()) {
            delete.push(Deletion { kind: OwnedKind::CruiseControlOperation, name: name.clone(), uid: op_uid.clone() });
        }
    }
    for op in graceful.create.iter().chain(&disks.create) {
        let ids: Vec<String> = op.brokers.iter().map(i32::to_string).collect();
        let dirs: Vec<String> = op.log_dirs.iter().map(|(id, dir)| format!("{id}-{dir}")).collect();
        let what = if dirs.is_empty() {
            format!("broker(s) {}", ids.join(","))
        } else {
            format!("disk(s) {}", dirs.join(","))
        };
        events.push(PlannedEvent {
            warning: false,
            reason: "CruiseControlOperationCreated",
            note: format!("{} of {what} through CruiseControlOperation {}", op.operation.as_str(), op.name),
        });
    }
    // The per-broker LoadBalancers an earlier release made for a listener Envoy now serves
    // keep their cloud load balancers (and addresses) until the spec asks for their removal.
    if cluster.spec.remove_unused_ingress_resources != Some(true) {
        for l in cluster.spec.listeners_config.external().iter().filter(|l| envoy::uses_envoy(&cluster.spec, l)) {
            for b in &cluster.spec.brokers {
                wanted_services.insert(render::names::external_service(cluster, b.id, &l.common.name));
            }
        }
    }
    for (name, svc) in &live.services {
        if !wanted_services.contains(name) && owned_by_uid(svc, &uid) {
            delete.push(Deletion { kind: OwnedKind::Service, name: name.clone(), uid: svc.uid().unwrap_or_default() });
        }
    }
    delete.extend(cruise_control.delete);
    delete.extend(envoy_delete);
    // A Service Contour had under a name the brokers' own Services take over (the listener
    // moved to NodePort or LoadBalancer) is applied again, not deleted.
    let taken = |d: &Deletion| d.kind == OwnedKind::Service && wanted_services.contains(&d.name);
    delete.extend(routes.unused.into_iter().filter(|d| !taken(d)));

    // Kafka-side state, once every broker is up: dynamic configs, then at most one restart.
    let mut dynamic = Vec::new();
    let previous_keys = old.dynamic_config_keys.clone().unwrap_or_default();
    let per_broker: Result<BTreeMap<i32, String>, ()> = match (&live.kafka, pods.all_ready) {
        (KafkaState::Reachable { dynamic: current, .. }, true) => {
            let p = dynamic_config::plan(cluster, &previous_keys, current);
            st.dynamic_config_keys = Some(p.keys).filter(|k| *k != Default::default());
            dynamic = p.changes;
            Ok(p.failed)
        }
        _ => Err(()),
    };
    for (id, state) in brokers_state.iter_mut() {
        state.per_broker_configuration_state = match &per_broker {
            Ok(failed) if id.parse().is_ok_and(|id: i32| failed.contains_key(&id)) => "PerBrokerConfigError".into(),
            Ok(_) => "PerBrokerConfigInSync".into(),
            Err(()) if pods.all_ready => "PerBrokerConfigOutOfSync".into(),
            Err(()) => old
                .brokers_state
                .as_ref()
                .and_then(|m| m.get(id))
                .map(|p| p.per_broker_configuration_state.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "PerBrokerConfigOutOfSync".into()),
        };
    }

    let out_of_date = &pods.out_of_date;
    let mut restart = None;
    let mut roll_blocked = None;
    // While certificates are being issued, no broker restarts (its new one is not there yet).
    // Nor while a Secret of the user's own cannot be read (a listener's: the broker would not start
    // on it; any: the live configs are kept as they are, and a restart would not change them).
    if !out_of_date.is_empty() && !pods.may_roll {
        let down: Vec<String> = desired
            .iter()
            .filter(|b| live.pods.get(&b.pod.name_any()).is_none_or(|p| !pod_ready(p)))
            .map(|b| b.id.to_string())
            .collect();
        roll_blocked = Some(format!("broker(s) {} are not Ready on their current spec", down.join(",")));
    }
    // A broker whose Pod is being deleted is restarting: Kafka may not see it stop yet (its
    // controlled shutdown starts when the kubelet gets to it), so its health says nothing about
    // restarting another one. One at a time: wait until it is back.
    let restarting: Vec<String> = desired
        .iter()
        .filter(|b| {
            live.pods.get(&b.pod.name_any()).is_some_and(|p| is_ours(p, &uid) && p.meta().deletion_timestamp.is_some())
        })
        .map(|b| b.id.to_string())
        .collect();
    if !out_of_date.is_empty() && roll_blocked.is_none() && !restarting.is_empty() {
        roll_blocked =
            Some(format!("broker(s) {} are restarting (their Pods are being deleted)", restarting.join(",")));
    }
    // Cruise Control moving partitions: a restart would fail the reassignment.
    let moving = graceful::moving(&graceful).or(disks.moving());
    if let Some(op) = moving.filter(|_| !out_of_date.is_empty() && roll_blocked.is_none()) {
        roll_blocked = Some(format!("Cruise Control is moving partitions (CruiseControlOperation {op})"));
    }
    if !out_of_date.is_empty() && pods.may_roll && roll_blocked.is_none() && certs.orders.is_empty() && own.complete() {
        // While a broker is down (not Ready, on an old spec), only such brokers may restart:
        // restarting one that is down costs nothing, but Kafka may still count it alive (its
        // Pod was just replaced) and let a healthy one go down too.
        let down: BTreeSet<i32> = desired
            .iter()
            .filter(|b| live.pods.get(&b.pod.name_any()).is_none_or(|p| !pod_ready(p)))
            .map(|b| b.id)
            .collect();
        let ids: Vec<i32> =
            out_of_date.iter().map(|(id, _, _)| *id).filter(|id| down.is_empty() || down.contains(id)).collect();
        let expected = render::broker_role_ids(cluster);
        let threshold = cluster.spec.rolling_upgrade_config.failure_threshold.unwrap_or(1);
        let decision = match &live.kafka {
            KafkaState::Reachable { health: Some(Ok(h)), .. } => rolling::next_restart(h, &expected, &ids, threshold),
            KafkaState::Reachable { health: Some(Err(e)), .. } => Decision::Wait(e.to_string()),
            KafkaState::Reachable { health: None, .. } | KafkaState::NotAsked => {
                Decision::Wait("Kafka was not asked whether a restart is safe".into())
            }
            KafkaState::NoAccess(e) => Decision::Wait(e.to_string()),
            KafkaState::Unreachable(e) => Decision::Wait(format!("cannot reach Kafka: {e}")),
        };
        match decision {
            Decision::Restart(id) => {
                let (_, pod, uid) = out_of_date.iter().find(|(i, _, _)| *i == id).expect("chosen among out_of_date");
                restart = Some(Restart { broker: id, pod: pod.clone(), uid: uid.clone() });
                events.push(PlannedEvent {
                    warning: false,
                    reason: "RollingRestart",
                    note: format!(
                        "restarting broker {id}: its Pod spec or configuration changed; Kafka reports it safe"
                    ),
                });
            }
            Decision::Wait(why) => roll_blocked = Some(why),
        }
    }

    st.brokers_state = Some(brokers_state);
    st.listener_statuses = Some(render::external::listener_statuses(cluster));
    let n = out_of_date.len();
    let (state, ready, reason, message) = if let Some(why) = &roll_blocked {
        (
            state::ROLLING_UPGRADING,
            false,
            "RollingRestartWaiting",
            format!("{n} broker(s) out of date; no restart is safe yet: {why}"),
        )
    } else if n > 0 {
        (state::ROLLING_UPGRADING, false, "RollingRestart", format!("{n} broker(s) out of date"))
    } else if !pods.all_ready {
        (state::RECONCILING, false, "BrokersStarting", "waiting for broker Pods to be Ready".to_string())
    } else {
        (state::RUNNING, true, "Running", "every broker runs its desired configuration".to_string())
    };
    st.state = state.into();
    st.alert_count = live.alerts;
    let mut degraded: Vec<(&str, String)> = Vec::new();
    // A drain that cannot go on by itself is Degraded; one making progress is Reconciling.
    let stuck: Vec<&str> =
        graceful.waiting.iter().filter(|(id, _)| graceful.stuck.contains(id)).map(|(_, w)| w.as_str()).collect();
    if !stuck.is_empty() {
        degraded.push(("BrokerRemovalPending", stuck.join("; ")));
    }
    if !disks.stuck.is_empty() {
        degraded.push(("DiskRemovalPending", disks.stuck.join("; ")));
    }
    for (id, why) in &pods.failed {
        degraded.push(("BrokerFailed", format!("broker {id} cannot run: {why}")));
    }
    let admin_problem = match &admin {
        AdminCredential::Unusable(why) => Some(why.clone()),
        _ => None,
    };
    let cert_problems: Vec<&String> = certs.problems.iter().chain(own.all_problems()).chain(&admin_problem).collect();
    if !cert_problems.is_empty() {
        degraded.push(("CertificateError", cert_problems.iter().map(|p| p.as_str()).collect::<Vec<_>>().join("; ")));
    }
    if !live.node_errors.is_empty() {
        degraded.push((
            "NodeAddressUnavailable",
            format!(
                "brokers on NodePort listeners advertise their Node's address, which cannot be read ({}): grant the \
                 operator `get` on nodes, or set hostnameOverride or nodePortExternalIP",
                live.node_errors.join("; ")
            ),
        ));
    }
    if !routes.problems.is_empty() {
        degraded.push(("IngressNotReady", routes.problems.join("; ")));
    }
    if !foreign.is_empty() {
        degraded.push((
            "ForeignObject",
            format!(
                "{} exist and belong to another owner; the operator does not take them over: delete or rename them",
                foreign.join(", ")
            ),
        ));
    }
    // Every broker runs, but the operator cannot see Kafka: dynamic configs and health checks
    // are off until it can.
    if pods.all_ready {
        let why = match &live.kafka {
            KafkaState::NoAccess(e) => Some(("NoKafkaAccess", e.to_string())),
            KafkaState::Unreachable(e) => Some(("KafkaUnreachable", format!("cannot reach Kafka: {e}"))),
            _ => None,
        };
        degraded.extend(why);
    }
    // Lasting conditions (no Kafka access until the client speaks the listener's protocol,
    // fields not acted on) do not make the operator look again every few seconds.
    // (A broker removal that waits is followed every GRACEFUL_POLL, not every few seconds.)
    let waits = degraded
        .iter()
        .any(|(r, _)| *r != "NoKafkaAccess" && *r != "BrokerRemovalPending" && *r != "DiskRemovalPending");
    if !unsupported.is_empty() {
        degraded.push(("NotSupported", support::message(unsupported)));
    }
    let degraded_message = degraded.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; ");
    // Brokers joining or being drained: the cluster serves (Ready) and is still reconciling.
    let draining: Vec<&str> = graceful
        .waiting
        .iter()
        .filter(|(id, _)| !graceful.stuck.contains(id))
        .map(|(_, w)| w.as_str())
        .chain(disks.waiting.iter().filter(|w| !disks.stuck.contains(w)).map(String::as_str))
        .collect();
    let (reason, message) = match draining.is_empty() {
        false if ready => ("GracefulScaling", draining.join("; ")),
        _ => (reason, message),
    };
    status::set_all(
        &mut st.conditions,
        ready,
        !ready || !draining.is_empty(),
        degraded.first().map(|(r, _)| (*r, degraded_message.as_str())),
        reason,
        &message,
        generation,
    );
    st.observed_generation = generation;
    let settled = ready
        && !waits
        && dynamic.is_empty()
        && certs.orders.is_empty()
        && !certs.rollover
        && !matches!(admin, AdminCredential::Create(_));
    // Every broker Pod is there, ours and on its current spec, and nothing but their start is
    // awaited.
    let only_starting = !ready
        && roll_blocked.is_none()
        && n == 0
        && !waits
        && certs.orders.is_empty()
        && !certs.rollover
        && admin.ready()
        && desired.iter().all(|b| live.pods.get(&b.pod.name_any()).is_some_and(|p| is_ours(p, &uid)));
    let mut requeue = match (settled, only_starting) {
        (true, _) => SETTLED,
        (false, true) => STARTING,
        (false, false) => BUSY,
    };
    // A Cruise Control operation of a broker is followed until it is done.
    if graceful.busy || disks.busy {
        requeue = requeue.min(GRACEFUL_POLL);
    }
    // A Ready broker whose exporter has not told its release yet is asked again soon.
    let version_unknown = desired.iter().any(|b| {
        live.pods.get(&b.pod.name_any()).is_some_and(|p| is_ours(p, &uid) && pod_ready(p))
            && !live.versions.contains_key(&b.id)
    });
    if version_unknown {
        requeue = requeue.min(crate::exporter::RETRY);
    }
    // The operator may only get Secrets by name (no watch): Secrets of the user's own are read
    // again at least this often, so a new keystore in them is noticed.
    if !own_certificates::secret_names(cluster).is_empty() {
        requeue = requeue.min(OWN_SECRETS_POLL);
    }
    if let Some(at) = certs.next_renewal {
        requeue = requeue.min(Duration::from_secs(at.saturating_sub(live.now) + 1));
    }
    for o in &certs.orders {
        let (reason, note) = match o.action {
            certificates::Action::Retrust => {
                ("CertificateTrustChanged", format!("Secret {} trusts other CAs ({})", o.secret, o.reason))
            }
            _ => ("CertificateIssued", format!("issued the certificate in Secret {} ({})", o.secret, o.reason)),
        };
        events.push(PlannedEvent { warning: false, reason, note });
    }
    let mut plan = finish(old, st, requeue);
    if !certs.orders.is_empty() {
        plan.ca = certificates::ca_of(cluster, &live.secrets);
    }
    plan.certificates = certs.orders;
    if let AdminCredential::Create(name) = admin {
        plan.admin_credential = Some(name);
    }
    plan.apply = out;
    plan.operations = graceful.create.into_iter().chain(disks.create).collect();
    plan.operation_ttl = cluster
        .spec
        .cruise_control_config
        .cruise_control_operation_spec
        .as_ref()
        .and_then(|o| o.ttl_seconds_after_finished);
    plan.delete = delete;
    plan.restart = restart;
    plan.dynamic = dynamic;
    plan.events = events;
    plan
}

/// The PVC-backed disks the spec gives each broker and the mount paths of its live PVCs.
fn broker_disks(cluster: &ValidatedCluster, live: &LiveState, uid: &str) -> Vec<BrokerDisks> {
    let roles: BTreeSet<i32> = render::broker_role_ids(cluster).into_iter().collect();
    cluster
        .spec
        .brokers
        .iter()
        .map(|b| BrokerDisks {
            id: b.id,
            wanted: b
                .effective_storage(&cluster.spec)
                .into_iter()
                .filter(|s| s.pvc_spec.is_some())
                .map(|s| s.mount_path.clone())
                .collect(),
            live: live_disks(live, uid, b.id).into_keys().collect(),
            uids: live_disks(live, uid, b.id).into_iter().map(|(m, p)| (m, p.uid().unwrap_or_default())).collect(),
            configured: configured_disks(cluster, live, b.id).into_iter().collect(),
            broker: roles.contains(&b.id),
        })
        .collect()
}

/// The mount paths of broker `id`'s log directories, in the order its live configuration
/// (`log.dirs` of its ConfigMap) lists them.
fn configured_disks(cluster: &ValidatedCluster, live: &LiveState, id: i32) -> Vec<String> {
    let cm = live.config_maps.get(&render::names::config_map(cluster, id));
    let text = cm.and_then(|c| c.data.as_ref()).and_then(|d| d.get(objects::CONFIG_KEY));
    let dirs = text.and_then(|t| t.lines().find_map(|l| l.strip_prefix("log.dirs=")));
    dirs.into_iter()
        .flat_map(|d| d.split(','))
        .filter_map(|d| d.trim().strip_suffix(render::properties::LOG_DIR_SUFFIX).map(str::to_string))
        .collect()
}

/// The live PVCs (ours, not being deleted) of broker `id` by mount path.
fn live_disks<'a>(live: &'a LiveState, uid: &str, id: i32) -> BTreeMap<String, &'a PersistentVolumeClaim> {
    live.pvcs
        .values()
        .filter(|p| is_ours(*p, uid) && p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.labels().get("brokerId").is_some_and(|v| *v == id.to_string()))
        .filter_map(|p| Some((p.annotations().get(objects::MOUNT_PATH_ANNOTATION)?.clone(), p)))
        .collect()
}

/// The graceful disk decision on `cluster` as the spec gives it (before retention).
fn disk_decision(cluster: &ValidatedCluster, live: &LiveState, uid: &str, quiet: bool) -> graceful_disks::Decision {
    let no_states = BTreeMap::new();
    let brokers = broker_disks(cluster, live, uid);
    graceful_disks::decide(graceful_disks::Inputs {
        cluster: &cluster.name_any(),
        cruise_control: cc::configured(cluster),
        jbod: cc::jbod(cluster),
        force: annotated(cluster, FORCE_BROKER_REMOVAL),
        old: cluster.status.as_ref().and_then(|s| s.brokers_state.as_ref()).unwrap_or(&no_states),
        brokers: &brokers,
        operations: &live.operations,
        log_dirs: live.log_dirs.as_ref(),
        now: live.now,
        quiet,
    })
}

/// `cluster` with the removed disks in `retain` kept on their brokers, on their live PVCs,
/// where the broker's live configuration has them (so keeping a disk changes nothing).
fn with_retained(
    cluster: &ValidatedCluster,
    live: &LiveState,
    uid: &str,
    retain: &BTreeMap<i32, BTreeSet<String>>,
) -> ValidatedCluster {
    let mut storage: BTreeMap<i32, Vec<StorageConfig>> = BTreeMap::new();
    for (id, mounts) in retain {
        let Some(b) = cluster.spec.brokers.iter().find(|b| b.id == *id) else { continue };
        let claims = live_disks(live, uid, *id);
        let mut all: Vec<StorageConfig> = b.effective_storage(&cluster.spec).into_iter().cloned().collect();
        all.extend(mounts.iter().filter_map(|m| {
            Some(StorageConfig { mount_path: m.clone(), pvc_spec: claims.get(m)?.spec.clone(), empty_dir: None })
        }));
        let order = configured_disks(cluster, live, *id);
        all.sort_by_key(|s| order.iter().position(|m| *m == s.mount_path).unwrap_or(usize::MAX));
        storage.insert(*id, all);
    }
    cluster.clone().with_storage(&storage)
}

/// Nodes removed from the spec whose Pod or ConfigMap (ours) is still there.
fn removed_nodes(desired: &[DesiredBroker], live: &LiveState, uid: &str) -> Vec<RemovedNode> {
    let wanted: BTreeSet<String> = desired.iter().map(|b| b.id.to_string()).collect();
    let removed = |labels: &BTreeMap<String, String>| {
        labels.get("brokerId").filter(|id| !wanted.contains(*id)).and_then(|id| id.parse::<i32>().ok())
    };
    let mut nodes: BTreeMap<i32, Option<String>> = BTreeMap::new();
    for p in live.pods.values().filter(|p| owned_by_uid(*p, uid)) {
        if let Some(id) = removed(p.labels()) {
            nodes.insert(id, p.uid());
        }
    }
    for c in live.config_maps.values().filter(|c| owned_by_uid(*c, uid)) {
        if let Some(id) = removed(c.labels()) {
            nodes.entry(id).or_default();
        }
    }
    nodes.into_iter().map(|(id, pod_uid)| RemovedNode { id, pod_uid }).collect()
}

// ---- Cruise Control ----

/// Status values of `cruiseControlTopicStatus` (Koperator's).
pub const CC_TOPIC_READY: &str = "CruiseControlTopicReady";
/// The metrics topic's KafkaTopic is not there yet.
pub const CC_TOPIC_NOT_READY: &str = "CruiseControlTopicNotReady";

/// What [`plan`] does about Cruise Control.
struct CruiseControlPlan {
    /// Services it wants (kept by the stale-Service sweep).
    services: Vec<String>,
    /// Its objects to delete (ours only) when the spec no longer deploys it.
    delete: Vec<Deletion>,
    /// `status.cruiseControlTopicStatus`.
    topic_status: Option<String>,
}

/// Cruise Control's objects ([`cc::objects`], owned by the cluster): its exporter's and its
/// own ConfigMap, its Service, the metrics topic's KafkaTopic and its Deployment, in that
/// order. The first time only once every broker is Ready (Koperator creates them once it has
/// reached Kafka); kept up to date from then on. When the spec no longer deploys it, its
/// Deployment and ConfigMaps go (ours only; its Service goes with the stale-Service sweep);
/// the metrics topic is kept, as Koperator keeps it.
fn cruise_control(
    cluster: &ValidatedCluster,
    live: &LiveState,
    owner: &OwnerReference,
    brokers_ready: bool,
    wanted: &mut Wanted<'_>,
) -> CruiseControlPlan {
    let uid = wanted.uid.to_string();
    let live_deployment = live.deployments.get(&cc::deployment_name(cluster));
    let Some(o) = cc::objects(cluster) else {
        let mut delete = Vec::new();
        if let Some(d) = live_deployment.filter(|d| owned_by_uid(*d, &uid)) {
            delete.push(Deletion { kind: OwnedKind::Deployment, name: d.name_any(), uid: d.uid().unwrap_or_default() });
        }
        for name in [cc::config_map_name(cluster), cc::jmx_config_map_name(cluster)] {
            if let Some(cm) = live.config_maps.get(&name).filter(|c| owned_by_uid(*c, &uid)) {
                delete.push(Deletion { kind: OwnedKind::ConfigMap, name, uid: cm.uid().unwrap_or_default() });
            }
        }
        return CruiseControlPlan { services: Vec::new(), delete, topic_status: None };
    };
    let services = vec![o.service.name_any()];
    let topic_live = |t: &KafkaTopic| live.topics.get(&t.name_any()).is_some_and(|l| is_ours(l, &uid));
    let topic_status = match &o.topic {
        None => CC_TOPIC_READY,
        Some(t) if topic_live(t) => CC_TOPIC_READY,
        Some(_) => CC_TOPIC_NOT_READY,
    };
    if !brokers_ready && live_deployment.is_none() {
        return CruiseControlPlan { services, delete: Vec::new(), topic_status: Some(CC_TOPIC_NOT_READY.into()) };
    }
    let cc::CruiseControlObjects { mut jmx_config_map, mut config_map, mut service, mut deployment, topic } = o;
    owned_by(&mut jmx_config_map, owner.clone());
    owned_by(&mut config_map, owner.clone());
    owned_by(&mut service, owner.clone());
    owned_by(&mut deployment, owner.clone());
    let live_jmx = live.config_maps.get(&jmx_config_map.name_any());
    wanted.object(jmx_config_map, live_jmx, Object::ConfigMap);
    let live_config = live.config_maps.get(&config_map.name_any());
    wanted.object(config_map, live_config, Object::ConfigMap);
    let live_service = live.services.get(&service.name_any());
    wanted.object(service, live_service, Object::Service);
    if let Some(mut t) = topic {
        owned_by(&mut t, owner.clone());
        let live_topic = live.topics.get(&t.name_any());
        wanted.object(t, live_topic, |t| Object::Topic(Box::new(t)));
    }
    wanted.object(deployment, live_deployment, |d| Object::Deployment(Box::new(d)));
    CruiseControlPlan { services, delete: Vec::new(), topic_status: Some(topic_status.into()) }
}

// ---- end of Cruise Control ----

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

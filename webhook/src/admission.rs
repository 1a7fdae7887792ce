//! Admission decisions: route → kind, defaults for `/mutate-*`, rules (plus the checks that need
//! the API server) for `/validate-*`.

use std::sync::Arc;

use koperator_shared::api::common::GROUP;
use koperator_shared::api::cruisecontroloperation::KAFKA_CR_LABEL;
use koperator_shared::api::kafkauser::uses_scram;
use koperator_shared::api::{KafkaCluster, KafkaTopic, KafkaUser, Kind, Object};
use koperator_shared::rules::kafkatopic::{self, ClusterLookup, ClusterRefOutcome};
use koperator_shared::rules::{self, FieldError, Path, RuleConfig};
use koperator_shared::rules::{kafkauser, namespaces};
use koperator_shared::validated::ValidatedCluster;
use koperator_shared::{defaults, support};
use serde_json::Value;
use serde_json::value::RawValue;
use tracing::{debug, warn};

use crate::kafka_checks::KafkaCheckError;
use crate::limits;
use crate::review::{AdmissionRequest, AdmissionResponse, undecodable};

/// Validate or mutate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `/validate-<kind>`.
    Validate,
    /// `/mutate-<kind>`.
    Mutate,
}

impl Mode {
    /// Label used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Validate => "validate",
            Mode::Mutate => "mutate",
        }
    }
}

/// A webhook route: `/validate-kafkacluster`, `/mutate-kafkatopic`...
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    /// Validate or mutate.
    pub mode: Mode,
    /// The kind the route serves.
    pub kind: Kind,
}

impl Route {
    /// The URL path of the route.
    pub fn path(self) -> String {
        format!("/{}-{}", self.mode.as_str(), self.kind.as_str().to_lowercase())
    }

    /// Every route.
    pub fn all() -> Vec<Route> {
        [Mode::Validate, Mode::Mutate]
            .into_iter()
            .flat_map(|mode| Kind::ALL.into_iter().map(move |kind| Route { mode, kind }))
            .collect()
    }
}

/// Why a cached read could not answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The cache has not listed the kind yet (just started, or the API server is unreachable).
    #[error("failed to connect to Kubernetes API server: the {kind} cache is not synced yet")]
    NotSynced {
        /// The kind the cache holds.
        kind: &'static str,
    },
    /// The object refers to a namespace this installation does not watch (`--watch-namespace`).
    #[error(
        "namespace {namespace} is not watched by this installation (it watches only {watched}): refer to a KafkaCluster in {watched}, or install Koperator for all namespaces"
    )]
    NotWatched {
        /// The namespace asked about.
        namespace: String,
        /// The one namespace watched.
        watched: String,
    },
}

impl LookupError {
    /// Stable category for metric labels and logs.
    pub fn category(&self) -> &'static str {
        match self {
            LookupError::NotSynced { .. } => "CacheNotSynced",
            LookupError::NotWatched { .. } => "NamespaceNotWatched",
        }
    }
}

/// Why a validating request is answered with an Internal error instead of a verdict.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A cached read of the API server could not answer.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The topic's Kafka could not be asked.
    #[error("failed to connect to kafka cluster: {0}")]
    Kafka(#[from] KafkaCheckError),
}

impl CheckError {
    /// Stable category for metric labels and logs.
    pub fn category(&self) -> &'static str {
        match self {
            CheckError::Lookup(e) => e.category(),
            CheckError::Kafka(e) => e.category(),
        }
    }
}

/// Reads of cluster state the validating rules need, answered from a cache.
pub trait Lookups: Send + Sync {
    /// Whether the KafkaCluster exists (and is being deleted); `Err` when the cache cannot
    /// answer (not synced yet).
    fn cluster(&self, namespace: &str, name: &str) -> Result<ClusterLookup, LookupError>;
    /// Every KafkaTopic whose `spec.name` is `topic`, in any namespace.
    fn topics_named(&self, topic: &str) -> Result<Vec<KafkaTopic>, LookupError>;
    /// The cached KafkaCluster, when there is one (`None`: no live Kafka checks).
    fn cluster_object(&self, _namespace: &str, _name: &str) -> Option<KafkaCluster> {
        None
    }
    /// Every KafkaUser, in any namespace (for the one-principal-per-cluster rule); `Err` when
    /// the cache cannot answer. Implementations without a user cache know of none.
    fn users(&self) -> Result<Vec<KafkaUser>, LookupError> {
        Ok(Vec::new())
    }
}

/// Checks of a KafkaTopic against live Kafka (partitions, replication factor, adoption);
/// `crate::kafka_checks::LiveKafkaChecks` asks the cluster. Called off the async runtime
/// (the server runs KafkaTopic validation on a blocking thread), and only for a topic that
/// has no other field errors.
pub trait KafkaTopicChecks: Send + Sync {
    /// Field errors from comparing the topic with Kafka, or `Err` when Kafka cannot be reached.
    /// `cr_exists`: the KafkaTopic is already stored (an UPDATE).
    fn check(
        &self,
        topic: &KafkaTopic,
        cluster: &ValidatedCluster,
        cr_exists: bool,
    ) -> Result<Vec<FieldError>, KafkaCheckError>;
}

/// No live Kafka checks (unit tests of the rest of admission).
pub struct NoKafkaChecks;

impl KafkaTopicChecks for NoKafkaChecks {
    fn check(&self, _: &KafkaTopic, _: &ValidatedCluster, _: bool) -> Result<Vec<FieldError>, KafkaCheckError> {
        Ok(Vec::new())
    }
}

/// The admission logic with its collaborators.
pub struct Admission {
    /// Cluster/topic cache.
    pub lookups: Arc<dyn Lookups>,
    /// Live Kafka checks for topics.
    pub kafka: Arc<dyn KafkaTopicChecks>,
    /// Cluster-dependent rule settings.
    pub rules: RuleConfig,
}

/// The answer of [`Admission::precheck`].
#[derive(Debug)]
pub enum Precheck {
    /// Answered without decoding the object.
    Answered(AdmissionResponse),
    /// Decode the object (and the stored one when compared with): about `decoded_bytes` of
    /// `Value` trees, before the copies admission makes.
    Decode {
        /// The object's kind.
        kind: Kind,
        /// Estimated bytes of the decoded trees ([`limits::Shape::decoded_bytes`]).
        decoded_bytes: usize,
    },
}

/// Outcome label for metrics.
pub fn result_label(r: &AdmissionResponse) -> &'static str {
    match (r.allowed, r.patch.is_some()) {
        (true, true) => "patched",
        (true, false) => "allowed",
        (false, _) if r.status.as_ref().is_some_and(|s| s["code"] == 500) => "error",
        (false, _) => "denied",
    }
}

/// The API-server lookups of one object: their field errors, and the check against Kafka
/// still to run (a KafkaTopic whose cluster is cached).
#[derive(Default)]
struct LookupOutcome {
    errors: Vec<FieldError>,
    kafka: Option<(KafkaTopic, KafkaCluster)>,
}

impl LookupOutcome {
    fn errors(errors: Vec<FieldError>) -> Self {
        LookupOutcome { errors, kafka: None }
    }
}

/// One warning per field of `obj` (defaults applied, as the operator sees it) that is accepted
/// but not acted on yet. `raw` is the object's JSON: the defaults work on it, and only an
/// object they change (one the mutating webhook has not seen) is decoded a second time.
fn unsupported_warnings(obj: &Object, raw: &str, namespace: &str) -> Vec<String> {
    let kind = obj.kind();
    if !matches!(kind, Kind::KafkaCluster | Kind::KafkaUser) {
        return Vec::new();
    }
    let defaulted = serde_json::from_str::<Value>(raw).ok().and_then(|mut value| {
        defaults::apply(kind, &mut value, namespace).then(|| Object::from_value(kind, &value).ok()).flatten()
    });
    let fields = match defaulted.as_ref().unwrap_or(obj) {
        Object::KafkaCluster(kc) => support::kafkacluster(&kc.spec),
        Object::KafkaUser(u) => support::kafkauser(u, uses_scram(u)),
        _ => Vec::new(),
    };
    fields.iter().map(support::Unsupported::warning).collect()
}

/// Whether the object's JSON carries a `metadata.deletionTimestamp` (read without its type, for an
/// object that does not decode).
fn being_deleted(raw: &str) -> bool {
    serde_json::from_str::<Value>(raw).is_ok_and(|v| !v["metadata"]["deletionTimestamp"].is_null())
}

impl Admission {
    /// Answers one request on `route`: [`Admission::precheck`], then [`Admission::decide`].
    pub fn handle(&self, route: Route, req: &AdmissionRequest) -> AdmissionResponse {
        match self.precheck(route, req) {
            Precheck::Answered(r) => r,
            Precheck::Decode { kind, .. } => self.decide(route, kind, req),
        }
    }

    /// What can be answered before the object is decoded: a kind the route does not serve,
    /// an operation or subresource that is not checked, and an object over the CRD's bounds
    /// ([`limits::scan`], one pass over the raw JSON that builds nothing).
    pub fn precheck(&self, route: Route, req: &AdmissionRequest) -> Precheck {
        let uid = req.uid.as_str();
        let kind = Kind::from_kind(&req.kind.kind).filter(|k| *k == route.kind && req.kind.group == GROUP);
        let Some(kind) = kind else {
            return Precheck::Answered(AdmissionResponse::allow(uid).with_warnings(vec![format!(
                "koperator webhook {} received {}/{} {}; it does not check that kind (webhook registration is wrong)",
                route.path(),
                req.kind.group,
                req.kind.version,
                req.kind.kind
            )]));
        };
        if !matches!(req.operation.as_str(), "CREATE" | "UPDATE")
            || req.sub_resource.as_deref().is_some_and(|s| !s.is_empty())
        {
            return Precheck::Answered(AdmissionResponse::allow(uid));
        }
        let Some(raw) = req.object.as_deref() else {
            return Precheck::Answered(AdmissionResponse::internal(uid, "the request carries no object"));
        };
        let name = req.name.as_deref().unwrap_or_default();
        let shape = match limits::scan(kind, raw) {
            Ok(s) => s,
            Err(e) => return Precheck::Answered(AdmissionResponse::invalid(uid, &req.kind, name, &[undecodable(&e)])),
        };
        if !shape.errors.is_empty() {
            debug!(kind = kind.as_str(), name, errors = shape.errors.len(), "object over the CRD bounds");
            return Precheck::Answered(AdmissionResponse::invalid(uid, &req.kind, name, &shape.errors));
        }
        let mut decoded_bytes = shape.decoded_bytes;
        if let Some(old) = self.old_object_used(route, req) {
            decoded_bytes += limits::scan(kind, old).map(|s| s.decoded_bytes).unwrap_or_default();
        }
        Precheck::Decode { kind, decoded_bytes }
    }

    /// The stored object, when the route compares with it (UPDATE validation).
    fn old_object_used<'r>(&self, route: Route, req: &'r AdmissionRequest) -> Option<&'r RawValue> {
        (route.mode == Mode::Validate && req.operation == "UPDATE").then_some(req.old_object.as_deref()).flatten()
    }

    /// Decodes the object and answers: defaults as a patch on `/mutate-*`, the rules and the
    /// lookups on `/validate-*`. Call only after [`Admission::precheck`] said
    /// [`Precheck::Decode`].
    pub fn decide(&self, route: Route, kind: Kind, req: &AdmissionRequest) -> AdmissionResponse {
        let uid = req.uid.as_str();
        let name = req.name.as_deref().unwrap_or_default();
        let Some(raw) = req.object.as_deref() else {
            return AdmissionResponse::internal(uid, "the request carries no object");
        };
        let namespace = req.namespace.as_deref().unwrap_or_default();
        match route.mode {
            Mode::Mutate => {
                let obj: Value = match serde_json::from_str(raw.get()) {
                    Ok(v) => v,
                    Err(e) => return AdmissionResponse::invalid(uid, &req.kind, name, &[undecodable(&e)]),
                };
                AdmissionResponse::allow_with_patch(uid, &defaults::patch(kind, &obj, namespace))
            }
            Mode::Validate => {
                let decoded = Object::from_json(kind, raw.get()).and_then(|obj| {
                    let old = self.old_object_used(route, req).map(|o| Object::from_json(kind, o.get()));
                    Ok((obj, old.transpose()?))
                });
                match decoded {
                    Ok((obj, old)) => self.validate(req, &obj, old.as_ref(), raw.get(), namespace),
                    // Never stand in the way of a deletion, even of an object stored before a
                    // schema change (finalizers being removed).
                    Err(_) if being_deleted(raw.get()) => AdmissionResponse::allow(uid),
                    Err(e) => AdmissionResponse::invalid(uid, &req.kind, name, &[undecodable(&e)]),
                }
            }
        }
    }

    fn validate(
        &self,
        req: &AdmissionRequest,
        obj: &Object,
        old: Option<&Object>,
        raw: &str,
        namespace: &str,
    ) -> AdmissionResponse {
        let uid = req.uid.as_str();
        let kind = obj.kind();
        let meta = obj.meta();
        let name = req
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| meta.generate_name.as_deref().map(|g| format!("{g}*")).unwrap_or_default());
        // Never stand in the way of a deletion (finalizers being removed).
        if meta.deletion_timestamp.is_some() {
            return AdmissionResponse::allow(uid);
        }
        let mut verdict = rules::validate(obj, old, &self.rules);
        verdict.warnings.extend(unsupported_warnings(obj, raw, namespace));
        // The object's own field errors are answered even when a check that needs the API
        // server or Kafka cannot run: such a failure is an Internal error only for an object
        // without field errors (Koperator hides them behind it).
        let failed: Option<CheckError> = match self.lookups(obj, namespace) {
            Err(e) => Some(e.into()),
            Ok(outcome) => {
                verdict.errors.extend(outcome.errors);
                match outcome.kafka {
                    Some((topic, cluster)) if verdict.allowed() => {
                        match self.kafka_checks(&topic, &cluster, old.is_some()) {
                            Ok(errs) => {
                                verdict.errors.extend(errs);
                                None
                            }
                            Err(e) => Some(e.into()),
                        }
                    }
                    _ => None,
                }
            }
        };
        if let Some(e) = failed {
            if verdict.allowed() {
                warn!(kind = kind.as_str(), namespace, name, category = e.category(), error = %e, "cannot validate");
                return AdmissionResponse::internal(uid, &e.to_string()).with_warnings(verdict.warnings);
            }
            debug!(kind = kind.as_str(), namespace, name, category = e.category(), error = %e,
                "a check could not run; answering with the other field errors");
        }
        if verdict.allowed() {
            AdmissionResponse::allow(uid).with_warnings(verdict.warnings)
        } else {
            AdmissionResponse::invalid(uid, &req.kind, &name, &verdict.errors).with_warnings(verdict.warnings)
        }
    }

    /// The checks that need the API server (cached), for the object's kind.
    fn lookups(&self, obj: &Object, namespace: &str) -> Result<LookupOutcome, LookupError> {
        match obj {
            Object::KafkaTopic(topic) => self.topic_lookups(topic, namespace),
            Object::KafkaUser(user) => self.user_lookups(user, namespace),
            Object::CruiseControlOperation(op) => self
                .cluster_must_exist(
                    namespace,
                    None,
                    op.metadata.labels.as_ref().and_then(|l| l.get(KAFKA_CR_LABEL)).map(String::as_str),
                    Path::root("metadata").child("labels").key(KAFKA_CR_LABEL),
                )
                .map(LookupOutcome::errors),
            Object::KafkaCluster(_) => Ok(LookupOutcome::default()),
        }
    }

    fn cluster_must_exist(
        &self,
        namespace: &str,
        ref_namespace: Option<&str>,
        name: Option<&str>,
        path: Path,
    ) -> Result<Vec<FieldError>, LookupError> {
        let Some(name) = name.filter(|n| !n.is_empty()) else { return Ok(Vec::new()) };
        let ns = ref_namespace.filter(|n| !n.is_empty()).unwrap_or(namespace);
        Ok(match self.lookups.cluster(ns, name)? {
            ClusterLookup::NotFound => vec![FieldError::not_found(
                &path,
                name,
                format!("there is no KafkaCluster '{name}' in namespace '{ns}'; create it first or fix the reference"),
            )],
            ClusterLookup::Found { .. } => Vec::new(),
        })
    }

    /// A KafkaUser: its cluster exists and accepts the user's namespace, and no other
    /// KafkaUser on that cluster maps to the same principal.
    fn user_lookups(&self, user: &KafkaUser, namespace: &str) -> Result<LookupOutcome, LookupError> {
        let cluster_ref = &user.spec.cluster_ref;
        let path = Path::root("spec").child("clusterRef").child("name");
        let mut errors =
            self.cluster_must_exist(namespace, cluster_ref.namespace.as_deref(), Some(&cluster_ref.name), path)?;
        if errors.is_empty() && !cluster_ref.name.is_empty() {
            let cluster_ns = cluster_ref.namespace_or(namespace);
            if let Some(kc) = self.lookups.cluster_object(cluster_ns, &cluster_ref.name) {
                errors.extend(namespaces::check_namespace_allowed("KafkaUser", namespace, &kc));
            }
            errors.extend(kafkauser::check_duplicate_principal(user, namespace, &self.lookups.users()?));
        }
        Ok(LookupOutcome::errors(errors))
    }

    fn topic_lookups(&self, topic: &KafkaTopic, namespace: &str) -> Result<LookupOutcome, LookupError> {
        if topic.spec.cluster_ref.name.is_empty() {
            return Ok(LookupOutcome::default());
        }
        let mut topic = topic.clone();
        // The request's namespace is the object's (the adoption rule compares them).
        topic.metadata.namespace.get_or_insert_with(|| namespace.to_string());
        let cluster_ns = topic.spec.cluster_ref.namespace_or(namespace).to_string();
        let lookup = self.lookups.cluster(&cluster_ns, &topic.spec.cluster_ref.name)?;
        match kafkatopic::check_cluster_ref(&topic, namespace, lookup) {
            ClusterRefOutcome::Allow => return Ok(LookupOutcome::default()),
            ClusterRefOutcome::Reject(e) => return Ok(LookupOutcome::errors(vec![e])),
            ClusterRefOutcome::Continue => {}
        }
        let others = self.lookups.topics_named(&topic.spec.name)?;
        let mut errors: Vec<FieldError> =
            kafkatopic::check_duplicate_crs(&topic, namespace, &others).into_iter().collect();
        let cluster = self.lookups.cluster_object(&cluster_ns, &topic.spec.cluster_ref.name);
        // A cluster that does not accept the namespace is not asked about the topic either.
        if let Some(forbidden) =
            cluster.as_ref().and_then(|kc| namespaces::check_namespace_allowed("KafkaTopic", namespace, kc))
        {
            errors.push(forbidden);
            return Ok(LookupOutcome::errors(errors));
        }
        let kafka = cluster.map(|c| (topic, c));
        Ok(LookupOutcome { errors, kafka })
    }

    /// The topic against its Kafka, with the cluster as the operator runs it (defaults and
    /// this webhook's rule settings); a cluster that breaks its rules has no Kafka to ask.
    fn kafka_checks(
        &self,
        topic: &KafkaTopic,
        cluster: &KafkaCluster,
        cr_exists: bool,
    ) -> Result<Vec<FieldError>, KafkaCheckError> {
        match ValidatedCluster::new(cluster, &self.rules) {
            Ok(validated) => self.kafka.check(topic, &validated, cr_exists),
            Err(why) => {
                debug!(%why, category = why.category(), "KafkaTopic checks against Kafka skipped");
                Ok(Vec::new())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::decode;
    use serde_json::json;
    use std::collections::HashMap;

    #[derive(Default)]
    struct FakeLookups {
        clusters: HashMap<(String, String), bool>,
        topics: Vec<KafkaTopic>,
        /// Cached KafkaCluster objects (live Kafka checks run for their topics).
        objects: Vec<KafkaCluster>,
        /// The caches have not synced.
        unsynced: bool,
    }

    impl Lookups for FakeLookups {
        fn cluster(&self, ns: &str, name: &str) -> Result<ClusterLookup, LookupError> {
            if self.unsynced {
                return Err(LookupError::NotSynced { kind: "KafkaCluster" });
            }
            Ok(match self.clusters.get(&(ns.to_string(), name.to_string())) {
                Some(deleting) => ClusterLookup::Found { deleting: *deleting },
                None => ClusterLookup::NotFound,
            })
        }
        fn topics_named(&self, topic: &str) -> Result<Vec<KafkaTopic>, LookupError> {
            Ok(self.topics.iter().filter(|t| t.spec.name == topic).cloned().collect())
        }
        fn cluster_object(&self, ns: &str, name: &str) -> Option<KafkaCluster> {
            self.objects
                .iter()
                .find(|c| c.metadata.namespace.as_deref() == Some(ns) && c.metadata.name.as_deref() == Some(name))
                .cloned()
        }
    }

    fn admission(l: FakeLookups) -> Admission {
        Admission { lookups: Arc::new(l), kafka: Arc::new(NoKafkaChecks), rules: RuleConfig::default() }
    }

    fn with_kafka() -> FakeLookups {
        FakeLookups { clusters: HashMap::from([(("ns".into(), "kafka".into()), false)]), ..Default::default() }
    }

    fn request(kind: &str, version: &str, op: &str, object: Value) -> AdmissionRequest {
        decode(
            serde_json::to_vec(&json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {
                    "uid": "uid-1", "kind": {"group": GROUP, "version": version, "kind": kind},
                    "resource": {"group": GROUP, "version": version, "resource": "x"},
                    "name": object["metadata"]["name"], "namespace": "ns", "operation": op,
                    "object": object, "oldObject": null
                }
            }))
            .unwrap()
            .as_slice(),
        )
        .unwrap()
    }

    fn topic(partitions: i32) -> Value {
        json!({"apiVersion": "kafka.banzaicloud.io/v1alpha1", "kind": "KafkaTopic", "metadata": {"name": "t1", "namespace": "ns"},
               "spec": {"name": "orders", "partitions": partitions, "replicationFactor": 1, "clusterRef": {"name": "kafka"}}})
    }

    const VALIDATE_TOPIC: Route = Route { mode: Mode::Validate, kind: Kind::KafkaTopic };

    #[test]
    fn valid_topic_is_allowed_and_invalid_is_denied_with_causes() {
        let a = admission(with_kafka());
        let ok = a.handle(VALIDATE_TOPIC, &request("KafkaTopic", "v1alpha1", "CREATE", topic(3)));
        assert!(ok.allowed, "{ok:?}");
        assert_eq!(ok.uid, "uid-1");
        let bad = a.handle(VALIDATE_TOPIC, &request("KafkaTopic", "v1alpha1", "CREATE", topic(0)));
        assert!(!bad.allowed);
        let st = bad.status.unwrap();
        assert_eq!(st["code"], 422);
        assert_eq!(st["details"]["causes"][0]["field"], "spec.partitions");
        assert_eq!(bad.patch, None, "validate paths never patch");
    }

    #[test]
    fn topic_for_a_missing_cluster_is_denied() {
        let r = admission(FakeLookups::default())
            .handle(VALIDATE_TOPIC, &request("KafkaTopic", "v1alpha1", "CREATE", topic(3)));
        assert!(!r.allowed);
        assert!(
            r.status.unwrap()["message"]
                .as_str()
                .unwrap()
                .contains("kafkaCluster 'kafka' in the namespace 'ns' does not exist")
        );
    }

    #[test]
    fn second_cr_for_the_same_topic_is_denied() {
        let mut l = with_kafka();
        let mut other: KafkaTopic = serde_json::from_value(topic(3)).unwrap();
        other.metadata.name = Some("t0".into());
        l.topics.push(other);
        let r = admission(l).handle(VALIDATE_TOPIC, &request("KafkaTopic", "v1alpha1", "CREATE", topic(3)));
        assert!(!r.allowed);
        assert!(r.status.unwrap()["message"].as_str().unwrap().contains("kafkaTopic CR 't0'"));
    }

    #[test]
    fn deletion_updates_and_deletes_are_allowed() {
        let a = admission(FakeLookups::default());
        let mut t = topic(0);
        t["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(a.handle(VALIDATE_TOPIC, &request("KafkaTopic", "v1alpha1", "UPDATE", t)).allowed);
        assert!(a.handle(VALIDATE_TOPIC, &request("KafkaTopic", "v1alpha1", "DELETE", topic(0))).allowed);
    }

    #[test]
    fn mutate_returns_defaults_as_a_patch() {
        let a = admission(with_kafka());
        let r = a.handle(
            Route { mode: Mode::Mutate, kind: Kind::KafkaTopic },
            &request("KafkaTopic", "v1alpha1", "CREATE", topic(3)),
        );
        assert!(r.allowed);
        assert_eq!(r.patch_type, Some("JSONPatch"));
        assert_eq!(result_label(&r), "patched");
    }

    #[test]
    fn wrong_kind_for_the_route_is_allowed_with_a_warning() {
        let a = admission(with_kafka());
        let r = a.handle(VALIDATE_TOPIC, &request("KafkaUser", "v1alpha1", "CREATE", topic(3)));
        assert!(r.allowed);
        assert!(r.warnings[0].contains("does not check that kind"));
    }

    #[test]
    fn undecodable_object_is_denied_not_panicking() {
        let a = admission(with_kafka());
        let mut t = topic(3);
        t["spec"]["partitions"] = json!("three");
        let r = a.handle(VALIDATE_TOPIC, &request("KafkaTopic", "v1alpha1", "CREATE", t));
        assert!(!r.allowed);
        assert!(r.status.unwrap()["message"].as_str().unwrap().contains("does not match the schema"));
    }

    #[test]
    fn an_object_being_deleted_is_allowed_even_when_it_does_not_decode() {
        let a = admission(with_kafka());
        let mut t = topic(3);
        t["spec"]["partitions"] = json!("three");
        t["metadata"]["deletionTimestamp"] = json!("2026-12-05T10:00:00Z");
        let r = a.handle(VALIDATE_TOPIC, &request("KafkaTopic", "v1alpha1", "UPDATE", t.clone()));
        assert!(r.allowed, "{r:?}");
        t["metadata"]["deletionTimestamp"] = Value::Null;
        let r = a.handle(VALIDATE_TOPIC, &request("KafkaTopic", "v1alpha1", "UPDATE", t));
        assert!(!r.allowed, "the same object not being deleted is denied");
    }

    #[test]
    fn user_and_operation_need_an_existing_cluster() {
        let a = admission(FakeLookups::default());
        let user = json!({"metadata": {"name": "u"}, "spec": {"secretName": "s", "clusterRef": {"name": "kafka"}}});
        let r = a.handle(
            Route { mode: Mode::Validate, kind: Kind::KafkaUser },
            &request("KafkaUser", "v1alpha1", "CREATE", user),
        );
        assert_eq!(r.status.unwrap()["details"]["causes"][0]["field"], "spec.clusterRef.name");
        let cco = json!({"metadata": {"name": "c", "labels": {"kafka_cr": "kafka"}}, "spec": {}});
        let r = a.handle(
            Route { mode: Mode::Validate, kind: Kind::CruiseControlOperation },
            &request("CruiseControlOperation", "v1alpha1", "CREATE", cco),
        );
        assert_eq!(r.status.unwrap()["details"]["causes"][0]["field"], "metadata.labels[kafka_cr]");
    }

    #[test]
    fn routes_have_distinct_paths() {
        let paths: std::collections::HashSet<String> = Route::all().into_iter().map(Route::path).collect();
        assert_eq!(paths.len(), 8);
        assert!(paths.contains("/validate-kafkacluster"));
        assert!(paths.contains("/mutate-cruisecontroloperation"));
    }

    // --- accepted but not acted on yet (support::kafkacluster / support::kafkauser) ---

    fn sample_cluster() -> Value {
        let text = include_str!("../../config/samples/kafkacluster_kraft_combined.yaml");
        let mut v: Value = serde_saphyr::from_str(text).unwrap();
        v["metadata"]["name"] = json!("kafka");
        v["metadata"]["namespace"] = json!("ns");
        v
    }

    fn with(base: &Value, f: impl FnOnce(&mut Value)) -> Value {
        let mut v = base.clone();
        f(&mut v);
        v
    }

    const VALIDATE_CLUSTER: Route = Route { mode: Mode::Validate, kind: Kind::KafkaCluster };
    const NOT_ACTED_ON: &str = ": accepted but not acted on yet: ";

    fn cluster_warnings(op: &str, obj: Value) -> Vec<String> {
        let r = admission(with_kafka()).handle(VALIDATE_CLUSTER, &request("KafkaCluster", "v1beta1", op, obj));
        assert!(r.allowed, "{r:?}");
        r.warnings
    }

    fn fields_warned(warnings: &[String]) -> Vec<&str> {
        warnings.iter().filter_map(|w| w.split_once(NOT_ACTED_ON).map(|(field, _)| field)).collect()
    }

    #[test]
    fn a_plain_cluster_gets_no_unsupported_warnings() {
        for op in ["CREATE", "UPDATE"] {
            assert_eq!(cluster_warnings(op, sample_cluster()), Vec::<String>::new(), "{op}");
        }
    }

    #[test]
    fn unsupported_cluster_fields_are_warned_once_each_on_create_and_update() {
        let base = sample_cluster();
        let cases: Vec<(&str, Value, Vec<&str>)> = vec![
            ("the sample uses only what is built (defaults included)", base.clone(), vec![]),
            (
                "monitoringConfig for the brokers is acted on",
                with(&base, |v| {
                    v["spec"]["monitoringConfig"] = json!({"jmxImage": "jmx:1", "kafkaJMXExporterConfig": "rules: []"})
                }),
                vec![],
            ),
            (
                "monitoringConfig for Cruise Control",
                with(&base, |v| {
                    v["spec"]["monitoringConfig"] = json!({"jmxImage": "jmx:1", "cCJMXExporterConfig": "rules: []"})
                }),
                vec!["spec.monitoringConfig.cCJMXExporterConfig"],
            ),
            (
                "per-broker and cluster-wide fields",
                with(&base, |v| {
                    v["spec"]["rackAwareness"] = json!({"labels": ["topology.kubernetes.io/zone"]});
                    v["spec"]["brokers"][1]["brokerConfig"] = json!({"log4jConfig": "x"});
                }),
                vec!["spec.rackAwareness", "spec.brokers[1].brokerConfig.log4jConfig"],
            ),
            (
                "a restart count above one",
                with(&base, |v| v["spec"]["rollingUpgradeConfig"]["concurrentBrokerRestartCountPerRack"] = json!(2)),
                vec!["spec.rollingUpgradeConfig.concurrentBrokerRestartCountPerRack"],
            ),
        ];
        for (what, obj, want) in cases {
            for op in ["CREATE", "UPDATE"] {
                let warnings = cluster_warnings(op, obj.clone());
                assert_eq!(fields_warned(&warnings), want, "{what} ({op}): {warnings:?}");
            }
        }
        let w = cluster_warnings(
            "CREATE",
            with(&base, |v| v["spec"]["monitoringConfig"] = json!({"cCJMXExporterConfig": "rules: []"})),
        );
        let monitoring = "spec.monitoringConfig.cCJMXExporterConfig: accepted but not acted on yet: no Cruise Control is deployed (spec.cruiseControlConfig asks for none, or names an external cruiseControlEndpoint), so no Cruise Control exporter runs (the brokers' exporter does)";
        assert_eq!(w.iter().filter(|w| *w == monitoring).count(), 1, "{w:?}");
    }

    #[test]
    fn an_external_listener_left_to_the_defaults_gets_envoy_and_no_warning_about_it() {
        // No accessMethod: the defaults make it a LoadBalancer behind Envoy, which is built.
        let listener = |host: Option<&str>| {
            with(&sample_cluster(), |v| {
                v["spec"]["listenersConfig"]["externalListeners"] = json!([{
                    "type": "plaintext", "name": "external", "externalStartingPort": 19090, "containerPort": 9094,
                    "config": {"defaultIngressConfig": "az1", "ingressConfig": {"az1": {}}}
                }]);
                if let Some(h) = host {
                    v["spec"]["listenersConfig"]["externalListeners"][0]["hostnameOverride"] = json!(h);
                }
            })
        };
        let r = admission(with_kafka()).handle(
            VALIDATE_CLUSTER,
            &request("KafkaCluster", "v1beta1", "CREATE", listener(Some("kafka.example.com"))),
        );
        assert_eq!(fields_warned(&r.warnings), Vec::<&str>::new(), "{:?}", r.warnings);
        // Without hostnameOverride the brokers advertise the load balancer's address.
        let r = admission(with_kafka())
            .handle(VALIDATE_CLUSTER, &request("KafkaCluster", "v1beta1", "CREATE", listener(None)));
        assert_eq!(fields_warned(&r.warnings), Vec::<&str>::new(), "{:?}", r.warnings);
        // Contour serves ClusterIP listeners only: a LoadBalancer one gets per-broker load
        // balancers, and its ingress configurations are not used.
        let contour = with(&listener(Some("kafka.example.com")), |v| v["spec"]["ingressController"] = json!("contour"));
        let r =
            admission(with_kafka()).handle(VALIDATE_CLUSTER, &request("KafkaCluster", "v1beta1", "CREATE", contour));
        assert_eq!(
            fields_warned(&r.warnings),
            [
                "spec.listenersConfig.externalListeners[0].accessMethod",
                "spec.listenersConfig.externalListeners[0].config"
            ]
        );
    }

    #[test]
    fn rule_warnings_stay_next_to_unsupported_ones_and_mutate_has_none() {
        let obj = with(&sample_cluster(), |v| {
            v["spec"]["brokers"].as_array_mut().unwrap().push(json!({"id": 3, "brokerConfigGroup": "default"}));
            v["spec"]["rackAwareness"] = json!({"labels": ["topology.kubernetes.io/zone"]});
        });
        let warnings = cluster_warnings("CREATE", obj.clone());
        assert!(warnings.iter().any(|w| w.contains("4 controllers")), "{warnings:?}");
        assert_eq!(fields_warned(&warnings), vec!["spec.rackAwareness"]);
        let mutate = admission(with_kafka()).handle(
            Route { mode: Mode::Mutate, kind: Kind::KafkaCluster },
            &request("KafkaCluster", "v1beta1", "CREATE", obj),
        );
        assert!(mutate.allowed && mutate.warnings.is_empty(), "{mutate:?}");
    }

    #[test]
    fn denied_cluster_still_names_its_unsupported_fields() {
        let obj = with(&sample_cluster(), |v| {
            v["spec"]["brokers"][2]["id"] = json!(0);
            v["spec"]["rackAwareness"] = json!({"labels": ["topology.kubernetes.io/zone"]});
        });
        let r = admission(with_kafka()).handle(VALIDATE_CLUSTER, &request("KafkaCluster", "v1beta1", "CREATE", obj));
        assert!(!r.allowed);
        assert_eq!(fields_warned(&r.warnings), vec!["spec.rackAwareness"]);
    }

    #[test]
    fn user_certificate_fields_are_warned_unless_scram() {
        let user = |annotations: Value, spec: Value| {
            let mut s = json!({"secretName": "s", "clusterRef": {"name": "kafka"}});
            s.as_object_mut().unwrap().extend(spec.as_object().unwrap().clone());
            json!({"metadata": {"name": "u", "annotations": annotations}, "spec": s})
        };
        let scram = json!({"koperator.banzaicloud.io/credentials": "SCRAM-SHA-512"});
        let cases: Vec<(&str, Value, Vec<&str>)> = vec![
            ("certificate by default", user(json!({}), json!({})), vec![]),
            ("no certificate asked for", user(json!({}), json!({"createCert": false})), vec![]),
            ("SCRAM (any case)", user(scram.clone(), json!({})), vec![]),
            ("SCRAM with certificate fields", user(scram, json!({"includeJKS": true})), vec!["spec.includeJKS"]),
            (
                "certificate details are acted on",
                user(json!({}), json!({"dnsNames": ["a.example.com"], "expirationSeconds": 7200, "includeJKS": true})),
                vec![],
            ),
            (
                "no certificate, with its details",
                user(json!({}), json!({"createCert": false, "expirationSeconds": 7200})),
                vec!["spec.expirationSeconds"],
            ),
            ("certificate annotations", user(json!({}), json!({"annotations": {"a": "b"}})), vec!["spec.annotations"]),
        ];
        let a = admission(with_kafka());
        for (what, obj, want) in cases {
            for op in ["CREATE", "UPDATE"] {
                let r = a.handle(
                    Route { mode: Mode::Validate, kind: Kind::KafkaUser },
                    &request("KafkaUser", "v1alpha1", op, obj.clone()),
                );
                assert!(r.allowed, "{what}: {r:?}");
                assert_eq!(fields_warned(&r.warnings), want, "{what} ({op}): {:?}", r.warnings);
            }
        }
    }

    // --- a KafkaTopic's own field errors come before its Kafka being unreachable ---

    /// Kafka checks that fail (or answer with `errors`) and count the calls.
    #[derive(Default)]
    struct FakeKafka {
        unreachable: bool,
        errors: Vec<FieldError>,
        calls: std::sync::atomic::AtomicUsize,
    }

    impl KafkaTopicChecks for FakeKafka {
        fn check(&self, _: &KafkaTopic, _: &ValidatedCluster, _: bool) -> Result<Vec<FieldError>, KafkaCheckError> {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if self.unreachable {
                return Err(KafkaCheckError::Timeout(std::time::Duration::from_millis(2500)));
            }
            Ok(self.errors.clone())
        }
    }

    fn cached_cluster() -> KafkaCluster {
        serde_json::from_value(sample_cluster()).unwrap()
    }

    fn with_cached_kafka() -> FakeLookups {
        FakeLookups { objects: vec![cached_cluster()], ..with_kafka() }
    }

    fn admission_with(l: FakeLookups, kafka: Arc<FakeKafka>, rules: RuleConfig) -> Admission {
        Admission { lookups: Arc::new(l), kafka, rules }
    }

    /// What a response is: `Ok(fields)` for a 422 with those causes, `Err(message)` for a 500,
    /// `Ok([])` when allowed.
    fn outcome(r: &AdmissionResponse) -> Result<Vec<String>, String> {
        let Some(st) = r.status.as_ref().filter(|_| !r.allowed) else { return Ok(Vec::new()) };
        if st["code"] == 500 {
            return Err(st["message"].as_str().unwrap().to_string());
        }
        assert_eq!(st["code"], 422, "{st}");
        Ok(st["details"]["causes"].as_array().unwrap().iter().map(|c| c["field"].as_str().unwrap().into()).collect())
    }

    #[test]
    fn topic_field_errors_are_answered_even_when_kafka_is_unreachable() {
        let duplicate = || {
            let mut l = with_cached_kafka();
            let mut other: KafkaTopic = serde_json::from_value(topic(3)).unwrap();
            other.metadata.name = Some("t0".into());
            l.topics.push(other);
            l
        };
        let unsynced = || FakeLookups { unsynced: true, ..with_cached_kafka() };
        let kafka_down =
            "error during validation: failed to connect to kafka cluster: no answer from Kafka within 2.5s";
        let not_synced = "error during validation: failed to connect to Kubernetes API server: the KafkaCluster cache is not synced yet";
        let field = |f: &[&str]| Ok(f.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        #[allow(clippy::type_complexity)]
        let cases: Vec<(&str, FakeLookups, Value, Result<Vec<String>, String>, bool)> = vec![
            ("partitions 0", with_cached_kafka(), topic(0), field(&["spec.partitions"]), false),
            (
                "replication factor 0",
                with_cached_kafka(),
                with(&topic(3), |t| t["spec"]["replicationFactor"] = json!(0)),
                field(&["spec.replicationFactor"]),
                false,
            ),
            (
                "bad name and partitions",
                with_cached_kafka(),
                with(&topic(-2), |t| t["spec"]["name"] = json!("a/b")),
                field(&["spec.partitions", "spec.name"]),
                false,
            ),
            ("second CR for the topic", duplicate(), topic(3), field(&["spec.name"]), false),
            ("missing cluster", FakeLookups::default(), topic(3), field(&["spec.clusterRef.name"]), false),
            (
                "missing cluster and partitions 0",
                FakeLookups::default(),
                topic(0),
                field(&["spec.partitions", "spec.clusterRef.name"]),
                false,
            ),
            ("cache not synced, partitions 0", unsynced(), topic(0), field(&["spec.partitions"]), false),
            ("cache not synced, valid topic", unsynced(), topic(3), Err(not_synced.into()), false),
            ("valid topic", with_cached_kafka(), topic(3), Err(kafka_down.into()), true),
        ];
        for (what, lookups, obj, want, asked) in cases {
            let kafka = Arc::new(FakeKafka { unreachable: true, ..Default::default() });
            let a = admission_with(lookups, kafka.clone(), RuleConfig::default());
            let r = a.handle(VALIDATE_TOPIC, &request("KafkaTopic", "v1alpha1", "CREATE", obj));
            assert_eq!(outcome(&r), want, "{what}: {r:?}");
            let calls = kafka.calls.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(calls > 0, asked, "{what}: Kafka asked {calls} times");
        }
    }

    #[test]
    fn kafka_field_errors_join_the_answer_when_kafka_answers() {
        let kafka = Arc::new(FakeKafka {
            errors: vec![FieldError::invalid(&Path::root("spec").child("partitions"), 2, "decreasing")],
            ..Default::default()
        });
        let a = admission_with(with_cached_kafka(), kafka.clone(), RuleConfig::default());
        let r = a.handle(VALIDATE_TOPIC, &request("KafkaTopic", "v1alpha1", "CREATE", topic(2)));
        assert_eq!(outcome(&r), Ok(vec!["spec.partitions".to_string()]));
        // No cached object (the cluster exists but has not reached the cache): nothing to ask.
        let a = admission_with(with_kafka(), kafka.clone(), RuleConfig::default());
        assert!(a.handle(VALIDATE_TOPIC, &request("KafkaTopic", "v1alpha1", "CREATE", topic(2))).allowed);
        assert_eq!(kafka.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn kafka_checks_validate_the_cluster_with_the_webhooks_rule_config() {
        // NodePorts from 20000: outside the default range, inside this cluster's.
        let mut kc = cached_cluster();
        kc.spec.listeners_config.external_listeners = Some(
            serde_json::from_value(json!([{"type": "plaintext", "name": "external", "containerPort": 9094,
                "externalStartingPort": 20000, "accessMethod": "NodePort", "hostnameOverride": ".example.com"}]))
            .unwrap(),
        );
        for (rules, asked) in
            [(RuleConfig::default(), 0), (RuleConfig::with_node_port_range("20000-20100").unwrap(), 1)]
        {
            let kafka = Arc::new(FakeKafka::default());
            let lookups = FakeLookups { objects: vec![kc.clone()], ..with_kafka() };
            let a = admission_with(lookups, kafka.clone(), rules.clone());
            assert!(a.handle(VALIDATE_TOPIC, &request("KafkaTopic", "v1alpha1", "CREATE", topic(3))).allowed);
            assert_eq!(kafka.calls.load(std::sync::atomic::Ordering::SeqCst), asked, "{rules:?}");
        }
    }

    #[test]
    fn check_errors_have_categories() {
        let lookup = CheckError::from(LookupError::NotSynced { kind: "KafkaTopic" });
        assert_eq!(lookup.category(), "CacheNotSynced");
        let kafka = CheckError::from(KafkaCheckError::Timeout(std::time::Duration::from_secs(1)));
        assert_eq!(kafka.category(), "KafkaCheckTimeout");
        assert_eq!(kafka.to_string(), "failed to connect to kafka cluster: no answer from Kafka within 1s");
    }
}

//! Admission decisions: route → kind, defaults for `/mutate-*`, rules (plus the checks that need
//! the API server) for `/validate-*`.

use std::sync::Arc;

use koperator_shared::api::common::GROUP;
use koperator_shared::api::cruisecontroloperation::KAFKA_CR_LABEL;
use koperator_shared::api::{KafkaCluster, KafkaTopic, Kind};
use koperator_shared::defaults;
use koperator_shared::rules::kafkatopic::{self, ClusterLookup, ClusterRefOutcome};
use koperator_shared::rules::{self, FieldError, Path, RuleConfig};
use serde_json::Value;

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

/// Reads of cluster state the validating rules need, answered from a cache.
pub trait Lookups: Send + Sync {
    /// Whether the KafkaCluster exists (and is being deleted); `Err` when the cache cannot
    /// answer (not synced yet).
    fn cluster(&self, namespace: &str, name: &str) -> Result<ClusterLookup, String>;
    /// Every KafkaTopic whose `spec.name` is `topic`, in any namespace.
    fn topics_named(&self, topic: &str) -> Result<Vec<KafkaTopic>, String>;
    /// The cached KafkaCluster, when there is one (`None`: no live Kafka checks).
    fn cluster_object(&self, _namespace: &str, _name: &str) -> Option<KafkaCluster> {
        None
    }
}

/// Checks of a KafkaTopic against live Kafka (partitions, replication factor, adoption);
/// `crate::kafka_checks::LiveKafkaChecks` asks the cluster. Called off the async runtime
/// (the server runs KafkaTopic validation on a blocking thread).
pub trait KafkaTopicChecks: Send + Sync {
    /// Field errors from comparing the topic with Kafka, or `Err` when Kafka cannot be reached.
    /// `cr_exists`: the KafkaTopic is already stored (an UPDATE).
    fn check(&self, topic: &KafkaTopic, cluster: &KafkaCluster, cr_exists: bool) -> Result<Vec<FieldError>, String>;
}

/// No live Kafka checks (unit tests of the rest of admission).
pub struct NoKafkaChecks;

impl KafkaTopicChecks for NoKafkaChecks {
    fn check(&self, _: &KafkaTopic, _: &KafkaCluster, _: bool) -> Result<Vec<FieldError>, String> {
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

/// Outcome label for metrics.
pub fn result_label(r: &AdmissionResponse) -> &'static str {
    match (r.allowed, r.patch.is_some()) {
        (true, true) => "patched",
        (true, false) => "allowed",
        (false, _) if r.status.as_ref().is_some_and(|s| s["code"] == 500) => "error",
        (false, _) => "denied",
    }
}

impl Admission {
    /// Answers one request on `route`.
    pub fn handle(&self, route: Route, req: &AdmissionRequest) -> AdmissionResponse {
        let uid = req.uid.as_str();
        let kind = Kind::from_kind(&req.kind.kind).filter(|k| *k == route.kind && req.kind.group == GROUP);
        let Some(kind) = kind else {
            return AdmissionResponse::allow(uid).with_warnings(vec![format!(
                "koperator webhook {} received {}/{} {}; it does not check that kind (webhook registration is wrong)",
                route.path(),
                req.kind.group,
                req.kind.version,
                req.kind.kind
            )]);
        };
        if !matches!(req.operation.as_str(), "CREATE" | "UPDATE")
            || req.sub_resource.as_deref().is_some_and(|s| !s.is_empty())
        {
            return AdmissionResponse::allow(uid);
        }
        let Some(obj) = req.object.as_ref() else {
            return AdmissionResponse::internal(uid, "the request carries no object");
        };
        let namespace = req.namespace.as_deref().unwrap_or_default();
        match route.mode {
            Mode::Mutate => AdmissionResponse::allow_with_patch(uid, &defaults::patch(kind, obj, namespace)),
            Mode::Validate => self.validate(kind, req, obj, namespace),
        }
    }

    fn validate(&self, kind: Kind, req: &AdmissionRequest, obj: &Value, namespace: &str) -> AdmissionResponse {
        let uid = req.uid.as_str();
        let name =
            req.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| {
                obj["metadata"]["generateName"].as_str().map(|g| format!("{g}*")).unwrap_or_default()
            });
        // Never stand in the way of a deletion (finalizers being removed).
        if !obj["metadata"]["deletionTimestamp"].is_null() {
            return AdmissionResponse::allow(uid);
        }
        let old = if req.operation == "UPDATE" { req.old_object.as_ref() } else { None };
        let mut verdict = match rules::validate_value(kind, obj, old, &self.rules) {
            Ok(v) => v,
            Err(e) => return AdmissionResponse::invalid(uid, &req.kind, &name, &[undecodable(&e)]),
        };
        let lookup_errors = match kind {
            Kind::KafkaTopic => self.topic_lookups(obj, namespace, old.is_some()),
            Kind::KafkaUser => self.cluster_must_exist(
                namespace,
                obj["spec"]["clusterRef"].as_object().and_then(|r| r.get("namespace")).and_then(Value::as_str),
                obj["spec"]["clusterRef"]["name"].as_str(),
                Path::root("spec").child("clusterRef").child("name"),
            ),
            Kind::CruiseControlOperation => self.cluster_must_exist(
                namespace,
                None,
                obj["metadata"]["labels"][KAFKA_CR_LABEL].as_str(),
                Path::root("metadata").child("labels").key(KAFKA_CR_LABEL),
            ),
            Kind::KafkaCluster => Ok(Vec::new()),
        };
        match lookup_errors {
            Err(msg) => return AdmissionResponse::internal(uid, &msg),
            Ok(errs) => verdict.errors.extend(errs),
        }
        if verdict.allowed() {
            AdmissionResponse::allow(uid).with_warnings(verdict.warnings)
        } else {
            AdmissionResponse::invalid(uid, &req.kind, &name, &verdict.errors).with_warnings(verdict.warnings)
        }
    }

    fn cluster_must_exist(
        &self,
        namespace: &str,
        ref_namespace: Option<&str>,
        name: Option<&str>,
        path: Path,
    ) -> Result<Vec<FieldError>, String> {
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

    fn topic_lookups(&self, obj: &Value, namespace: &str, cr_exists: bool) -> Result<Vec<FieldError>, String> {
        let Ok(topic) = KafkaTopic::deserialize(obj) else { return Ok(Vec::new()) };
        if topic.spec.cluster_ref.name.is_empty() {
            return Ok(Vec::new());
        }
        let cluster_ns = topic.spec.cluster_ref.namespace_or(namespace).to_string();
        let lookup = self.lookups.cluster(&cluster_ns, &topic.spec.cluster_ref.name)?;
        match kafkatopic::check_cluster_ref(&topic, namespace, lookup) {
            ClusterRefOutcome::Allow => return Ok(Vec::new()),
            ClusterRefOutcome::Reject(e) => return Ok(vec![e]),
            ClusterRefOutcome::Continue => {}
        }
        let mut errs = Vec::new();
        let others = self.lookups.topics_named(&topic.spec.name)?;
        errs.extend(kafkatopic::check_duplicate_crs(&topic, namespace, &others));
        if let Some(cluster) = self.lookups.cluster_object(&cluster_ns, &topic.spec.cluster_ref.name) {
            errs.extend(
                self.kafka
                    .check(&topic, &cluster, cr_exists)
                    .map_err(|e| format!("failed to connect to kafka cluster: {e}"))?,
            );
        }
        Ok(errs)
    }
}

use serde::Deserialize as _;

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
    }

    impl Lookups for FakeLookups {
        fn cluster(&self, ns: &str, name: &str) -> Result<ClusterLookup, String> {
            Ok(match self.clusters.get(&(ns.to_string(), name.to_string())) {
                Some(deleting) => ClusterLookup::Found { deleting: *deleting },
                None => ClusterLookup::NotFound,
            })
        }
        fn topics_named(&self, topic: &str) -> Result<Vec<KafkaTopic>, String> {
            Ok(self.topics.iter().filter(|t| t.spec.name == topic).cloned().collect())
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
}

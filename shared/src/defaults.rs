//! Defaults (DESIGN §6): Koperator's getter defaults pinned into the object, as a JSON Patch.
//!
//! One code path for both binaries: the mutating webhook returns [`patch`], the operator calls
//! [`apply`] (or [`defaulted`]) in memory, so nothing depends on the mutating webhook being up.
//! Rules: a value the user set is never overwritten; only absent fields are added; a second
//! pass yields an empty patch.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::api::Kind;
use crate::api::kafkacluster::{
    DEFAULT_ANY_CAST_PORT, DEFAULT_CC_TASK_RETRY_MINUTES, DEFAULT_CLUSTER_DOMAIN, DEFAULT_ENVOY_ADMIN_PORT,
    DEFAULT_ENVOY_HEALTH_CHECK_PORT, DEFAULT_INGRESS_CONTROLLER, DEFAULT_INGRESS_CONTROLLER_TARGET_PORT,
    DEFAULT_ZK_PATH,
};

/// The JSON Patch that fills in the defaults of `obj` (a whole object of kind `kind`, living in
/// `namespace`). Empty when nothing is missing.
pub fn patch(kind: Kind, obj: &Value, namespace: &str) -> json_patch::Patch {
    let mut out = obj.clone();
    apply(kind, &mut out, namespace);
    json_patch::diff(obj, &out)
}

/// Fills in the defaults of `obj` in place; `true` when something was added (an object the
/// mutating webhook has seen gets nothing).
pub fn apply(kind: Kind, obj: &mut Value, namespace: &str) -> bool {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return false;
    };
    match kind {
        Kind::KafkaCluster => kafka_cluster(spec),
        Kind::KafkaTopic => cluster_ref(spec, namespace),
        Kind::KafkaUser => {
            let mut changed = cluster_ref(spec, namespace);
            for grant in array_items(spec, "topicGrants") {
                changed |= set_absent(grant, "patternType", json!("literal"));
            }
            changed
        }
        Kind::CruiseControlOperation => set_absent(spec, "errorPolicy", json!("retry")),
    }
}

/// A typed object with its defaults applied (the operator's in-memory path).
pub fn defaulted<K: Serialize + DeserializeOwned + kube::Resource<DynamicType = ()>>(
    obj: &K,
) -> Result<K, serde_json::Error> {
    let kind = Kind::from_kind(&K::kind(&())).expect("only called for the project's own kinds");
    let namespace = obj.meta().namespace.clone().unwrap_or_default();
    let mut value = serde_json::to_value(obj)?;
    apply(kind, &mut value, &namespace);
    serde_json::from_value(value)
}

fn kafka_cluster(spec: &mut Map<String, Value>) -> bool {
    let mut changed = set_absent(spec, "kubernetesClusterDomain", json!(DEFAULT_CLUSTER_DOMAIN));
    if spec.get("kRaft") != Some(&Value::Bool(true)) {
        changed |= set_absent(spec, "zkPath", json!(DEFAULT_ZK_PATH));
    }
    changed |= with_object(spec, "rollingUpgradeConfig", |rolling| {
        set_absent(rolling, "failureThreshold", json!(1))
            | set_absent(rolling, "concurrentBrokerRestartCountPerRack", json!(1))
    });
    changed |= with_object(spec, "cruiseControlConfig", |cc| {
        with_object(cc, "cruiseControlTaskSpec", |task| {
            set_absent(task, "RetryDurationMinutes", json!(DEFAULT_CC_TASK_RETRY_MINUTES))
        })
    });

    let has_external = spec
        .get("listenersConfig")
        .and_then(|l| l.get("externalListeners"))
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if let Some(listeners) = spec.get_mut("listenersConfig").and_then(Value::as_object_mut) {
        for l in array_items(listeners, "internalListeners") {
            changed |= ssl_client_auth(l);
        }
        for l in array_items(listeners, "externalListeners") {
            changed |= ssl_client_auth(l);
            changed |= set_absent(l, "accessMethod", json!("LoadBalancer"));
            changed |= set_absent(l, "anyCastPort", json!(DEFAULT_ANY_CAST_PORT));
            if l.get("accessMethod") == Some(&json!("LoadBalancer")) {
                changed |= set_absent(l, "ingressControllerTargetPort", json!(DEFAULT_INGRESS_CONTROLLER_TARGET_PORT));
            }
        }
    }
    if has_external {
        changed |= set_absent(spec, "ingressController", json!(DEFAULT_INGRESS_CONTROLLER));
        if spec.get("ingressController") == Some(&json!("envoy")) {
            changed |= with_object(spec, "envoyConfig", |envoy| {
                set_absent(envoy, "adminPort", json!(DEFAULT_ENVOY_ADMIN_PORT))
                    | set_absent(envoy, "healthCheckPort", json!(DEFAULT_ENVOY_HEALTH_CHECK_PORT))
            });
        }
    }
    changed
}

/// `sslClientAuth: required` on SSL listeners only (it means nothing on plaintext ones).
fn ssl_client_auth(listener: &mut Map<String, Value>) -> bool {
    let ssl = matches!(listener.get("type").and_then(Value::as_str), Some("ssl" | "sasl_ssl"));
    ssl && set_absent(listener, "sslClientAuth", json!("required"))
}

fn cluster_ref(spec: &mut Map<String, Value>, namespace: &str) -> bool {
    if namespace.is_empty() {
        return false;
    }
    spec.get_mut("clusterRef")
        .and_then(Value::as_object_mut)
        .is_some_and(|r| set_absent(r, "namespace", json!(namespace)))
}

/// Sets `key` when it is absent or null (`true`); a present value of any type is left alone.
fn set_absent(obj: &mut Map<String, Value>, key: &str, value: Value) -> bool {
    match obj.get(key) {
        None | Some(Value::Null) => {
            obj.insert(key.to_string(), value);
            true
        }
        Some(_) => false,
    }
}

/// Runs `f` on the object at `key`, creating it when absent or null; `true` when `f` added
/// something. When the user put something that is not an object there, nothing happens
/// (validation reports the bad value).
fn with_object(obj: &mut Map<String, Value>, key: &str, f: impl FnOnce(&mut Map<String, Value>) -> bool) -> bool {
    if matches!(obj.get(key), None | Some(Value::Null)) {
        let mut fresh = Map::new();
        f(&mut fresh);
        if fresh.is_empty() {
            return false;
        }
        obj.insert(key.to_string(), Value::Object(fresh));
        true
    } else {
        obj.get_mut(key).and_then(Value::as_object_mut).is_some_and(f)
    }
}

/// The object items of the array at `key` (none when absent or not an array).
fn array_items<'a>(obj: &'a mut Map<String, Value>, key: &str) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    obj.get_mut(key).and_then(Value::as_array_mut).into_iter().flatten().filter_map(Value::as_object_mut)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(kind: Kind, obj: &Value) -> Vec<(String, String, Value)> {
        let p = patch(kind, obj, "team-a");
        serde_json::to_value(&p)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (o["op"].as_str().unwrap().to_string(), o["path"].as_str().unwrap().to_string(), o["value"].clone())
            })
            .collect()
    }

    fn cluster() -> Value {
        json!({
            "apiVersion": "kafka.banzaicloud.io/v1beta1", "kind": "KafkaCluster",
            "metadata": {"name": "kafka"},
            "spec": {
                "kRaft": true,
                "brokers": [{"id": 0}],
                "listenersConfig": {
                    "internalListeners": [
                        {"type": "ssl", "name": "internal", "containerPort": 29092, "usedForInnerBrokerCommunication": true},
                        {"type": "plaintext", "name": "controller", "containerPort": 29093, "usedForControllerCommunication": true}
                    ],
                    "externalListeners": [
                        {"type": "plaintext", "name": "external", "containerPort": 9094, "externalStartingPort": 19090}
                    ]
                }
            }
        })
    }

    #[test]
    fn kafka_cluster_defaults_are_pinned() {
        let got = ops(Kind::KafkaCluster, &cluster());
        let paths: Vec<&str> = got.iter().map(|(_, p, _)| p.as_str()).collect();
        for want in [
            "/spec/kubernetesClusterDomain",
            "/spec/rollingUpgradeConfig",
            "/spec/cruiseControlConfig",
            "/spec/listenersConfig/internalListeners/0/sslClientAuth",
            "/spec/listenersConfig/externalListeners/0/accessMethod",
            "/spec/listenersConfig/externalListeners/0/anyCastPort",
            "/spec/listenersConfig/externalListeners/0/ingressControllerTargetPort",
            "/spec/ingressController",
            "/spec/envoyConfig",
        ] {
            assert!(paths.contains(&want), "missing {want} in {paths:?}");
        }
        assert!(!paths.iter().any(|p| p.contains("internalListeners/1")), "plaintext listener gets no sslClientAuth");
        assert!(!paths.contains(&"/spec/zkPath"), "no zkPath in KRaft mode");
        assert!(got.iter().all(|(op, _, _)| op == "add"), "only additions: {got:?}");
    }

    #[test]
    fn second_pass_is_empty() {
        for (kind, obj) in [
            (Kind::KafkaCluster, cluster()),
            (
                Kind::KafkaTopic,
                json!({"spec": {"name": "t", "partitions": 1, "replicationFactor": 1, "clusterRef": {"name": "kafka"}}}),
            ),
            (
                Kind::KafkaUser,
                json!({"spec": {"secretName": "s", "clusterRef": {"name": "kafka"}, "topicGrants": [{"topicName": "t", "accessType": "read"}]}}),
            ),
            (Kind::CruiseControlOperation, json!({"spec": {}})),
        ] {
            let mut once = obj.clone();
            assert!(apply(kind, &mut once, "team-a"), "{kind:?}: first pass says it added something");
            assert_ne!(once, obj, "{kind:?}: first pass adds something");
            assert!(!apply(kind, &mut once.clone(), "team-a"), "{kind:?}: second pass adds nothing");
            assert!(patch(kind, &once, "team-a").0.is_empty(), "{kind:?}: second pass must be empty");
        }
    }

    #[test]
    fn set_values_are_never_overwritten() {
        let mut obj = cluster();
        obj["spec"]["kubernetesClusterDomain"] = json!("corp.local");
        obj["spec"]["rollingUpgradeConfig"] = json!({"failureThreshold": 3});
        obj["spec"]["ingressController"] = json!("contour");
        obj["spec"]["listenersConfig"]["externalListeners"][0]["accessMethod"] = json!("NodePort");
        obj["spec"]["listenersConfig"]["internalListeners"][0]["sslClientAuth"] = json!("none");
        obj["spec"]["cruiseControlConfig"] = json!("not an object");
        let mut out = obj.clone();
        apply(Kind::KafkaCluster, &mut out, "team-a");
        assert_eq!(out["spec"]["kubernetesClusterDomain"], "corp.local");
        assert_eq!(
            out["spec"]["rollingUpgradeConfig"],
            json!({"failureThreshold": 3, "concurrentBrokerRestartCountPerRack": 1})
        );
        assert_eq!(out["spec"]["ingressController"], "contour");
        assert_eq!(out["spec"].get("envoyConfig"), None, "no envoy defaults with contour");
        let ext = &out["spec"]["listenersConfig"]["externalListeners"][0];
        assert_eq!(ext["accessMethod"], "NodePort");
        assert_eq!(ext.get("ingressControllerTargetPort"), None);
        assert_eq!(out["spec"]["listenersConfig"]["internalListeners"][0]["sslClientAuth"], "none");
        assert_eq!(out["spec"]["cruiseControlConfig"], "not an object");
        assert!(patch(Kind::KafkaCluster, &out, "team-a").0.is_empty());
    }

    #[test]
    fn zookeeper_mode_pins_zk_path() {
        let mut obj = cluster();
        obj["spec"]["kRaft"] = json!(false);
        assert!(ops(Kind::KafkaCluster, &obj).iter().any(|(_, p, v)| p == "/spec/zkPath" && v == "/"));
    }

    #[test]
    fn topic_user_and_operation_defaults() {
        let topic = json!({"spec": {"clusterRef": {"name": "kafka"}}});
        assert_eq!(
            ops(Kind::KafkaTopic, &topic),
            vec![("add".into(), "/spec/clusterRef/namespace".into(), json!("team-a"))]
        );
        let user = json!({"spec": {"clusterRef": {"name": "kafka", "namespace": "kafka"}, "topicGrants": [{"topicName": "t"}]}});
        assert_eq!(
            ops(Kind::KafkaUser, &user),
            vec![("add".into(), "/spec/topicGrants/0/patternType".into(), json!("literal"))]
        );
        assert_eq!(
            ops(Kind::CruiseControlOperation, &json!({"spec": {}})),
            vec![("add".into(), "/spec/errorPolicy".into(), json!("retry"))]
        );
    }

    #[test]
    fn object_without_spec_is_left_alone() {
        assert!(patch(Kind::KafkaCluster, &json!({"metadata": {}}), "ns").0.is_empty());
        assert!(patch(Kind::KafkaTopic, &json!({"spec": "oops"}), "ns").0.is_empty());
    }

    #[test]
    fn typed_defaults_match_the_patch() {
        let kc: crate::api::KafkaCluster = serde_json::from_value(cluster()).unwrap();
        let d = defaulted(&kc).unwrap();
        assert_eq!(d.spec.kubernetes_cluster_domain.as_deref(), Some("cluster.local"));
        assert_eq!(d.spec.rolling_upgrade_config.failure_threshold, Some(1));
    }
}

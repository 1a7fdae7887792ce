//! Table tests of the planner: each case is a spec and a live state, and what one reconcile
//! must (and must not) do with them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use serde_json::{Value, json};

use koperator_shared::api::KafkaCluster;
use koperator_shared::api::common::PAUSE_ANNOTATION;
use koperator_shared::api::kafkacluster::KafkaClusterStatus;
use koperator_shared::kafka::{
    BrokerAddr, ClusterMetadata, ConfigEntry, ConfigOp, ConfigResource, ConfigSource, Error as KafkaError, QuorumInfo,
    QuorumReplica,
};
use koperator_shared::render::names::AdminAccessError;
use koperator_shared::rules::RuleConfig;
use koperator_shared::validated::{ValidatedCluster, must};

use super::super::FORCE_BROKER_REMOVAL;
use super::super::dereference::{KafkaState, LiveState};
use super::super::graceful::state as graceful_state;
use super::*;
use crate::dynamic_config::DynamicLive;
use crate::rolling::{HealthReadError, HealthSnapshot};
use koperator_shared::api::cruisecontroloperation::{CruiseControlOperation, CruiseControlTask, Operation};

const UID: &str = "0a1b2c3d-4e5f-6789-abcd-ef0123456789";
const COMBINED: &str = include_str!("../../../config/samples/kafkacluster_kraft_combined.yaml");
const DEDICATED: &str = include_str!("../../../config/samples/kafkacluster_kraft.yaml");

/// A stored KafkaCluster from a sample, as JSON to tweak.
fn sample(text: &str) -> Value {
    let mut v: Value = serde_saphyr::from_str(text).unwrap();
    v["metadata"]["namespace"] = json!("kafka");
    v["metadata"]["uid"] = json!(UID);
    v["metadata"]["generation"] = json!(1);
    v
}

fn typed(v: &Value) -> KafkaCluster {
    serde_json::from_value(v.clone()).unwrap()
}

fn validated(v: &Value) -> ValidatedCluster {
    must(&typed(v))
}

/// Today's name of a broker's PVC.
fn pvc_name(v: &Value, id: i32, mount_path: &str) -> String {
    koperator_shared::render::names::pvc(&typed(v), id, mount_path)
}

/// A live Kafka that is healthy: every broker-role node live, no topics, a caught-up quorum
/// led by the first controller.
fn healthy(cluster: &ValidatedCluster) -> KafkaState {
    let kraft = cluster.spec.kraft;
    let views = koperator_shared::render::brokers(cluster);
    let brokers = koperator_shared::render::broker_role_ids(cluster);
    let voters: Vec<i32> = views.iter().filter(|b| b.is_controller(kraft)).map(|b| b.broker.id).collect();
    let meta = ClusterMetadata {
        cluster_id: None,
        controller_id: voters[0],
        brokers: brokers
            .iter()
            .map(|b| (*b, BrokerAddr { id: *b, host: format!("b{b}"), port: 29092, rack: None }))
            .collect(),
        topics: vec![],
    };
    let quorum = QuorumInfo {
        leader_id: voters[0],
        leader_epoch: 1,
        high_watermark: 100,
        voters: voters.iter().map(|v| QuorumReplica { id: *v, log_end_offset: 100, last_caught_up_ms: 0 }).collect(),
        observers: vec![],
    };
    let dynamic = DynamicLive { cluster_wide: vec![], brokers: brokers.iter().map(|b| (*b, Ok(vec![]))).collect() };
    KafkaState::Reachable {
        dynamic,
        health: Some(Ok(HealthSnapshot { meta, quorum: Some(quorum), min_isr: Default::default() })),
    }
}

fn empty() -> LiveState {
    LiveState {
        config_maps: BTreeMap::new(),
        pvcs: BTreeMap::new(),
        pods: BTreeMap::new(),
        services: BTreeMap::new(),
        pdb: None,
        deployments: BTreeMap::new(),
        topics: BTreeMap::new(),
        kafka: KafkaState::NotAsked,
        secrets: Default::default(),
        user_certificates: None,
        pki: Default::default(),
        now: 1_800_000_000,
        versions: BTreeMap::new(),
        operations: BTreeMap::new(),
        replicas: None,
        log_dirs: None,
        alerts: 0,
        envoy: Default::default(),
        nodes: BTreeMap::new(),
        node_errors: Vec::new(),
        routes: Default::default(),
    }
}

fn ready(mut p: Pod) -> Pod {
    p.metadata.uid = Some(format!("uid-{}", p.name_any()));
    p.status = Some(PodStatus {
        conditions: Some(vec![PodCondition { type_: "Ready".into(), status: "True".into(), ..Default::default() }]),
        ..Default::default()
    });
    p
}

/// What the API server holds after `plan` was carried out on `live` (Pods Ready).
fn carried_out(plan: &Plan, mut live: LiveState) -> LiveState {
    let envoy = |labels: Option<&BTreeMap<String, String>>| {
        labels.is_some_and(|l| l.get("app").is_some_and(|a| a == "envoyingress"))
    };
    let routed = |labels: Option<&BTreeMap<String, String>>| {
        labels.is_some_and(|l| l.get("app").is_some_and(|a| a == "contouringress" || a == "gatewayingress"))
    };
    for obj in plan.apply.clone() {
        match obj {
            Object::ConfigMap(mut o) if envoy(o.metadata.labels.as_ref()) => {
                o.metadata.uid = Some(format!("uid-{}", o.name_any()));
                live.envoy.config_maps.insert(o.name_any(), o);
            }
            Object::Service(mut o) if envoy(o.metadata.labels.as_ref()) => {
                o.metadata.uid = Some(format!("uid-{}", o.name_any()));
                live.envoy.services.insert(o.name_any(), o);
            }
            Object::Deployment(mut o) if envoy(o.metadata.labels.as_ref()) => {
                o.metadata.uid = Some(format!("uid-{}", o.name_any()));
                live.envoy.deployments.insert(o.name_any(), *o);
            }
            Object::Pdb(mut o) if envoy(o.metadata.labels.as_ref()) => {
                o.metadata.uid = Some(format!("uid-{}", o.name_any()));
                live.envoy.pdbs.insert(o.name_any(), o);
            }
            Object::Service(mut o) if routed(o.metadata.labels.as_ref()) => {
                o.metadata.uid = Some(format!("uid-{}", o.name_any()));
                live.routes.services.insert(o.name_any(), o);
            }
            Object::Route(mut o) => {
                o.metadata.uid = Some(format!("uid-{}", o.name_any()));
                let kind = o.types.as_ref().unwrap().kind.clone();
                live.routes.routes.insert((kind, o.name_any()), *o);
            }
            Object::ConfigMap(mut o) => {
                o.metadata.uid = Some(format!("uid-{}", o.name_any()));
                live.config_maps.insert(o.name_any(), o);
            }
            Object::Pvc(o) => {
                live.pvcs.insert(o.name_any(), o);
            }
            Object::Pod(o) => {
                live.pods.insert(o.name_any(), ready(*o));
            }
            Object::Service(mut o) => {
                o.metadata.uid = Some(format!("uid-{}", o.name_any()));
                live.services.insert(o.name_any(), o);
            }
            Object::Pdb(o) => live.pdb = Some(o),
            Object::Deployment(mut o) => {
                o.metadata.uid = Some(format!("uid-{}", o.name_any()));
                live.deployments.insert(o.name_any(), *o);
            }
            Object::Topic(mut o) => {
                o.metadata.uid = Some(format!("uid-{}", o.name_any()));
                live.topics.insert(o.name_any(), *o);
            }
        }
    }
    live
}

/// A cluster that has settled: its objects exist as rendered, Pods Ready, Kafka healthy, and
/// its status is what the planner last wrote. Returns the stored object and the live state.
fn settled(v: &Value) -> (Value, LiveState) {
    let mut v = v.clone();
    let first = plan(&validated(&v), &empty());
    let mut live = carried_out(&first, empty());
    live.kafka = healthy(&validated(&v));
    // Every broker's JMX exporter tells its release.
    let ids = v["spec"]["brokers"].as_array().unwrap().iter().map(|b| b["id"].as_i64().unwrap() as i32);
    live.versions = ids.map(|id| (id, "4.1.1".to_string())).collect();
    for _ in 0..3 {
        let p = plan(&validated(&v), &live);
        // What waits for Ready brokers (Cruise Control) comes now.
        live = carried_out(&p, live);
        v["status"] = serde_json::to_value(&p.status).unwrap();
    }
    assert!(plan(&validated(&v), &live).is_noop(), "the fixture settles");
    (v, live)
}

fn kinds(plan: &Plan) -> Vec<String> {
    plan.apply.iter().map(Object::describe).collect()
}

fn condition(plan: &Plan, t: &str) -> (String, String, String) {
    let c = plan.status.conditions.iter().find(|c| c.type_ == t).unwrap();
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

fn bump(v: &mut Value) {
    v["metadata"]["generation"] = json!(v["metadata"]["generation"].as_i64().unwrap() + 1);
}

#[test]
fn new_cluster_creates_every_object_and_waits_for_the_pods() {
    let v = sample(COMBINED);
    let c = validated(&v);
    assert_eq!(
        kafka_wants(&c, &empty()),
        KafkaWants { configs: false, health: false, replicas: false, log_dirs: false }
    );
    let p = plan(&c, &empty());
    let objects = kinds(&p);
    for id in 0..3 {
        for want in [
            format!("ConfigMap/kafka-combined-config-{id}"),
            format!("PersistentVolumeClaim/{}", pvc_name(&v, id, "/kafka-logs")),
            format!("Pod/kafka-combined-{id}"),
        ] {
            assert!(objects.contains(&want), "{want} missing from {objects:?}");
        }
    }
    assert!(objects.contains(&"Service/kafka-combined-headless".to_string()), "{objects:?}");
    let cm = objects.iter().position(|o| o == "ConfigMap/kafka-combined-config-0").unwrap();
    let pod = objects.iter().position(|o| o == "Pod/kafka-combined-0").unwrap();
    assert!(cm < pod, "a broker's ConfigMap is applied before its Pod");
    assert!(p.restart.is_none() && p.delete.is_empty() && p.dynamic.is_empty());
    assert_eq!(p.status.state, "ClusterReconciling");
    assert_eq!(condition(&p, "Ready").1, "BrokersStarting");
    assert_eq!(p.status.cluster_id.as_deref(), Some(super::super::cluster_id_from_uid(UID).as_str()));
    assert!(p.status_changed);
    assert_eq!(p.requeue, BUSY);
}

#[test]
fn brokers_that_only_have_to_start_are_left_to_the_pod_watch() {
    let v = sample(COMBINED);
    let c = validated(&v);
    let mut live = carried_out(&plan(&c, &empty()), empty());
    for p in live.pods.values_mut() {
        p.status = None;
    }
    let p = plan(&c, &live);
    assert!(p.apply.is_empty(), "{:?}", kinds(&p));
    assert_eq!(condition(&p, "Ready").1, "BrokersStarting");
    assert_eq!(p.requeue, STARTING, "a Pod becoming Ready wakes the cluster; no 5 s polls");
    // A broker that keeps failing is Degraded and looked at again soon.
    let crashed: PodStatus = serde_json::from_value(json!({"containerStatuses": [{
        "name": "kafka", "image": "i", "imageID": "", "ready": false, "restartCount": 1,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "message": "ERROR fatal"}},
    }]}))
    .unwrap();
    let mut failed = carried_out(&plan(&c, &empty()), empty());
    for p in failed.pods.values_mut() {
        p.status = None;
    }
    failed.pods.get_mut("kafka-combined-2").unwrap().status = Some(crashed);
    let p = plan(&c, &failed);
    assert_eq!(condition(&p, "Degraded").1, "BrokerFailed");
    assert_eq!(p.requeue, BUSY);
    // A broker Pod still to be written: looked at again soon.
    live.pods.remove("kafka-combined-1");
    assert_eq!(plan(&c, &live).requeue, BUSY);
}

/// The combined sample with an external LoadBalancer listener (Envoy, the default ingress).
fn with_envoy() -> Value {
    let mut v = sample(COMBINED);
    v["spec"]["listenersConfig"]["externalListeners"] = json!([{
        "type": "plaintext", "name": "external", "containerPort": 9094, "externalStartingPort": 19090,
        "hostnameOverride": "kafka.example.com"
    }]);
    v["spec"]["envoyConfig"] = json!({"disruptionBudget": {"create": true, "budget": "1"}});
    v
}

#[test]
fn an_external_load_balancer_listener_gets_envoy_and_no_per_broker_load_balancers() {
    let v = with_envoy();
    let p = plan(&validated(&v), &empty());
    let objects = kinds(&p);
    for want in [
        "ConfigMap/envoy-config-external-kafka-combined",
        "Deployment/envoy-external-kafka-combined",
        "Service/envoy-loadbalancer-external-kafka-combined",
        "PodDisruptionBudget/envoy-external-kafka-combined-pdb",
    ] {
        assert!(objects.iter().any(|o| o == want), "{want} missing from {objects:?}");
    }
    assert!(!objects.iter().any(|o| o.starts_with("Service/kafka-combined-0-external")), "{objects:?}");
    // The dereference step reads exactly the names the plan applies.
    let n = desired_names(&validated(&v)).envoy;
    let named: Vec<String> = [
        n.config_maps.iter().map(|x| format!("ConfigMap/{x}")).collect::<Vec<_>>(),
        n.deployments.iter().map(|x| format!("Deployment/{x}")).collect(),
        n.services.iter().map(|x| format!("Service/{x}")).collect(),
        n.pdbs.iter().map(|x| format!("PodDisruptionBudget/{x}")).collect(),
    ]
    .concat();
    let applied: Vec<&String> = objects.iter().filter(|o| o.contains("envoy")).collect();
    assert_eq!(named.len(), applied.len(), "{named:?} vs {applied:?}");
    assert!(named.iter().all(|x| objects.contains(x)), "{named:?} vs {objects:?}");
    let p = plan(&validated(&v), &carried_out(&p, empty()));
    assert!(!kinds(&p).iter().any(|o| o.contains("envoy")), "applied once: {:?}", kinds(&p));
    assert!(!condition(&p, "Degraded").2.contains("envoy"), "Envoy is acted on: {:?}", condition(&p, "Degraded"));
}

#[test]
fn per_broker_load_balancers_of_an_earlier_release_stay_until_the_spec_says_so() {
    let v = with_envoy();
    let (_, mut live) = settled(&v);
    // What an earlier release made for this listener: one LoadBalancer Service per broker.
    let mut old = live.services.values().next().unwrap().clone();
    old.metadata.name = Some("kafka-combined-0-external".into());
    old.metadata.uid = Some("uid-old-lb".into());
    live.services.insert("kafka-combined-0-external".into(), old);
    let p = plan(&validated(&v), &live);
    assert!(p.delete.is_empty(), "its cloud load balancer is kept: {:?}", p.delete);
    let mut asked = v.clone();
    asked["spec"]["removeUnusedIngressResources"] = json!(true);
    let p = plan(&validated(&asked), &live);
    let gone: Vec<&str> = p.delete.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(gone, ["kafka-combined-0-external"]);
}

#[test]
fn unused_envoy_objects_go_only_when_the_spec_says_so() {
    let v = with_envoy();
    let (_, live) = settled(&v);
    assert_eq!(live.envoy.deployments.len(), 1);
    // The listener moves to NodePort: Envoy is no longer wanted.
    let mut moved = v.clone();
    moved["spec"]["listenersConfig"]["externalListeners"][0]["accessMethod"] = json!("NodePort");
    moved["spec"]["listenersConfig"]["externalListeners"][0]["externalStartingPort"] = json!(32000);
    let p = plan(&validated(&moved), &live);
    assert!(!p.delete.iter().any(|d| d.name.contains("envoy")), "kept by default, as Koperator does: {:?}", p.delete);
    moved["spec"]["removeUnusedIngressResources"] = json!(true);
    let p = plan(&validated(&moved), &live);
    let mut gone: Vec<(OwnedKind, &str)> = p.delete.iter().map(|d| (d.kind, d.name.as_str())).collect();
    gone.sort_by_key(|(_, n)| *n);
    assert_eq!(
        gone,
        [
            (OwnedKind::ConfigMap, "envoy-config-external-kafka-combined"),
            (OwnedKind::Deployment, "envoy-external-kafka-combined"),
            (OwnedKind::Pdb, "envoy-external-kafka-combined-pdb"),
            (OwnedKind::Service, "envoy-loadbalancer-external-kafka-combined"),
        ]
    );
    assert!(p.delete.iter().all(|d| d.uid == format!("uid-{}", d.name)), "deleted with their UIDs");
}

#[test]
fn settled_cluster_plans_nothing() {
    let (v, live) = settled(&sample(COMBINED));
    let c = validated(&v);
    assert_eq!(kafka_wants(&c, &live), KafkaWants { configs: true, health: false, replicas: false, log_dirs: false });
    let p = plan(&c, &live);
    assert!(p.is_noop(), "{p:?}");
    assert_eq!(p.status.state, "ClusterRunning");
    assert_eq!(condition(&p, "Ready").0, "True");
    assert_eq!(condition(&p, "Degraded").0, "False", "{:?}", condition(&p, "Degraded"));
    assert_eq!(p.requeue, SETTLED);
    let states = p.status.brokers_state.as_ref().unwrap();
    assert!(states.values().all(
        |b| b.configuration_state == "ConfigInSync" && b.per_broker_configuration_state == "PerBrokerConfigInSync"
    ));
}

#[test]
fn the_alert_count_reaches_the_status_and_only_the_status() {
    let (v, mut live) = settled(&sample(COMBINED));
    live.alerts = 2;
    let p = plan(&validated(&v), &live);
    assert_eq!(p.status.alert_count, 2);
    assert!(p.status_changed, "a new count is written");
    assert!(p.apply.is_empty() && p.restart.is_none() && p.delete.is_empty(), "{p:?}");
}

#[test]
fn scale_up_creates_only_the_new_broker() {
    let (mut v, live) = settled(&sample(DEDICATED));
    v["spec"]["brokers"].as_array_mut().unwrap().push(json!({"id": 103, "brokerConfigGroup": "broker"}));
    bump(&mut v);
    let p = plan(&validated(&v), &live);
    assert_eq!(
        kinds(&p),
        [
            "ConfigMap/kafka-config-103".to_string(),
            format!("PersistentVolumeClaim/{}", pvc_name(&v, 103, "/kafka-logs-broker")),
            "Pod/kafka-103".to_string(),
            // The new broker's capacity (capacity.json) rolls Cruise Control, as in Koperator.
            "ConfigMap/kafka-cruisecontrol-config".to_string(),
            "Deployment/kafka-cruisecontrol".to_string(),
        ]
    );
    assert!(p.restart.is_none(), "a new broker-only node changes no other broker");
    assert_eq!(p.status.brokers_state.as_ref().unwrap().len(), 7);
}

/// The CruiseControlOperation `name` as the CruiseControlOperation controller left it.
fn operation(name: &str, kind: Operation, state: &str) -> CruiseControlOperation {
    let mut op = CruiseControlOperation::new(name, Default::default());
    let task = CruiseControlTask {
        operation: kind,
        state: Some(state.into()).filter(|s: &String| !s.is_empty()),
        ..Default::default()
    };
    op.status = Some(koperator_shared::api::cruisecontroloperation::CruiseControlOperationStatus {
        current_task: Some(task),
        ..Default::default()
    });
    op
}

fn graceful_of(p: &Plan, id: &str) -> (String, Option<String>) {
    let g = &p.status.brokers_state.as_ref().unwrap()[id].graceful_action_state;
    (g.cruise_control_state.clone(), g.cruise_control_operation_reference.as_ref().map(|r| r.name.clone()))
}

#[test]
fn a_removed_broker_is_drained_by_cruise_control_and_its_pod_goes_once_kafka_shows_it_empty() {
    // The sample deploys Cruise Control (cruiseControlConfig.topicConfig).
    let (mut v, mut live) = settled(&sample(DEDICATED));
    v["spec"]["brokers"].as_array_mut().unwrap().retain(|b| b["id"] != 102);
    bump(&mut v);
    // Kafka's metadata not read yet: nothing is deleted; a remove_broker operation is made.
    let c = validated(&v);
    assert!(kafka_wants(&c, &live).replicas, "where the replicas are is asked");
    let p = plan(&c, &live);
    assert!(p.delete.is_empty(), "{:?}", p.delete);
    assert_eq!(p.operations.len(), 1);
    let op = &p.operations[0];
    assert_eq!((op.operation, op.brokers.as_slice()), (Operation::RemoveBroker, &[102][..]));
    assert!(op.name.starts_with("kafka-removebroker-"), "{}", op.name);
    assert_eq!(op.parameters()["brokerid"], "102");
    assert_eq!(graceful_of(&p, "102"), (graceful_state::DOWNSCALE_SCHEDULED.into(), Some(op.name.clone())));
    let (status, reason, message) = condition(&p, "Degraded");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "BrokerRemovalPending"));
    assert!(message.contains("broker 102 may hold partition replicas"), "{message}");
    assert_eq!(p.requeue, GRACEFUL_POLL);
    let name = op.name.clone();

    // Cruise Control moves the replicas: the Pod stays while Kafka places any on it.
    v["status"] = serde_json::to_value(&p.status).unwrap();
    live.operations.insert(name.clone(), operation(&name, Operation::RemoveBroker, "InExecution"));
    live.replicas = Some(BTreeMap::from([(100, 12), (101, 12), (102, 5)]));
    let p = plan(&validated(&v), &live);
    assert!(p.delete.is_empty() && p.operations.is_empty(), "{:?} {:?}", p.delete, p.operations);
    assert_eq!(graceful_of(&p, "102"), (graceful_state::DOWNSCALE_RUNNING.into(), Some(name.clone())));
    // A drain making progress: Ready, Reconciling says what moves; nothing Degraded about it.
    assert_eq!(condition(&p, "Degraded").0, "False");
    assert_eq!(condition(&p, "Ready").0, "True");
    let (status, reason, message) = condition(&p, "Reconciling");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "GracefulScaling"));
    assert!(message.contains("broker 102 still holds 5 partition replica(s)"), "{message}");
    assert!(message.contains(&format!("CruiseControlOperation {name} is InExecution")), "{message}");

    // Done, and Kafka shows none left: the Pod and its ConfigMap go, the PVCs stay.
    v["status"] = serde_json::to_value(&p.status).unwrap();
    live.operations.insert(name.clone(), operation(&name, Operation::RemoveBroker, "Completed"));
    live.replicas = Some(BTreeMap::from([(100, 14), (101, 15)]));
    let p = plan(&validated(&v), &live);
    assert_eq!(
        p.delete,
        [
            Deletion { kind: OwnedKind::Pod, name: "kafka-102".into(), uid: "uid-kafka-102".into() },
            Deletion {
                kind: OwnedKind::ConfigMap,
                name: "kafka-config-102".into(),
                uid: "uid-kafka-config-102".into()
            },
        ]
    );
    assert!(p.events.iter().any(|e| e.reason == "BrokerRemoved"), "{:?}", p.events);
    assert_eq!(graceful_of(&p, "102").0, graceful_state::DOWNSCALE_SUCCEEDED);
    assert_eq!(condition(&p, "Degraded").0, "False", "no removal pending any more");
    assert!(p.restart.is_none(), "removing a broker-only node restarts no other");
    // Only Cruise Control's capacities change.
    assert_eq!(
        cruise_control_kinds(&p),
        ["ConfigMap/kafka-cruisecontrol-config", "Deployment/kafka-cruisecontrol"],
        "removing a broker-only node touches no other"
    );
    assert_eq!(kinds(&p), cruise_control_kinds(&p));
}

#[test]
fn without_cruise_control_a_removed_broker_holding_replicas_waits_unless_forced() {
    let mut base = sample(DEDICATED);
    base["spec"]["cruiseControlConfig"] = json!({});
    let (mut v, mut live) = settled(&base);
    v["spec"]["brokers"].as_array_mut().unwrap().retain(|b| b["id"] != 102);
    bump(&mut v);
    live.replicas = Some(BTreeMap::from([(100, 3), (102, 3)]));
    let p = plan(&validated(&v), &live);
    assert!(p.delete.is_empty() && p.operations.is_empty(), "{:?} {:?}", p.delete, p.operations);
    let (_, reason, message) = condition(&p, "Degraded");
    assert_eq!(reason, "BrokerRemovalPending");
    assert!(message.contains("broker 102 still holds 3 partition replica(s) and no Cruise Control runs"), "{message}");
    assert!(message.contains(FORCE_BROKER_REMOVAL), "{message}");
    // A broker Kafka places nothing on goes at once.
    live.replicas = Some(BTreeMap::from([(100, 3)]));
    assert_eq!(plan(&validated(&v), &live).delete.len(), 2);
    // Forced: it goes without Kafka being asked.
    live.replicas = None;
    v["metadata"]["annotations"] = json!({FORCE_BROKER_REMOVAL: "true"});
    let c = validated(&v);
    assert!(!kafka_wants(&c, &live).replicas);
    let p = plan(&c, &live);
    assert_eq!(p.delete.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["kafka-102", "kafka-config-102"]);
    assert!(p.events[0].note.contains("without moving its partitions"), "{:?}", p.events);
}

#[test]
fn a_broker_added_to_a_running_cluster_gets_partitions_through_add_broker_once_ready() {
    let (mut v, live) = settled(&sample(DEDICATED));
    let mut b = v["spec"]["brokers"].as_array().unwrap().iter().find(|b| b["id"] == 102).unwrap().clone();
    b["id"] = json!(103);
    v["spec"]["brokers"].as_array_mut().unwrap().push(b);
    bump(&mut v);
    let p = plan(&validated(&v), &live);
    assert!(p.operations.is_empty(), "not before its Pod is Ready");
    assert_eq!(graceful_of(&p, "103").0, graceful_state::UPSCALE_REQUIRED);
    assert_eq!(graceful_of(&p, "100").0, graceful_state::UPSCALE_SUCCEEDED, "brokers made with the cluster");
    v["status"] = serde_json::to_value(&p.status).unwrap();
    let mut live = carried_out(&p, live);
    let p = plan(&validated(&v), &live);
    let op = p.operations.first().expect("add_broker once Ready");
    assert_eq!((op.operation, op.brokers.as_slice()), (Operation::AddBroker, &[103][..]));
    assert_eq!(graceful_of(&p, "103"), (graceful_state::UPSCALE_SCHEDULED.into(), Some(op.name.clone())));
    // Lost status write: the next pass names the same operation (it exists: kept).
    assert_eq!(plan(&validated(&v), &live).operations[0].name, op.name);
    let name = op.name.clone();
    v["status"] = serde_json::to_value(&p.status).unwrap();
    live.operations.insert(name.clone(), operation(&name, Operation::AddBroker, "Completed"));
    let p = plan(&validated(&v), &live);
    assert!(p.operations.is_empty());
    assert_eq!(graceful_of(&p, "103"), (graceful_state::UPSCALE_SUCCEEDED.into(), Some(name)));
}

#[test]
fn per_broker_read_only_change_restarts_that_broker_only() {
    let (mut v, live) = settled(&sample(COMBINED));
    v["spec"]["brokers"][1]["readOnlyConfig"] = json!("num.io.threads=9\n");
    bump(&mut v);
    let c = validated(&v);
    let p = plan(&c, &live);
    assert_eq!(kinds(&p), ["ConfigMap/kafka-combined-config-1"]);
    assert_eq!(kafka_wants(&c, &live), KafkaWants { configs: true, health: true, replicas: false, log_dirs: false });
    let p = plan(&c, &carried_out(&p, live_with_health(&c, live)));
    let r = p.restart.as_ref().expect("broker 1 restarts");
    assert_eq!((r.broker, r.pod.as_str(), r.uid.as_str()), (1, "kafka-combined-1", "uid-kafka-combined-1"));
    assert_eq!(p.events[0].reason, "RollingRestart");
    assert_eq!(p.status.state, "ClusterRollingUpgrading");
    let states = p.status.brokers_state.as_ref().unwrap();
    assert_eq!(states["1"].configuration_state, "ConfigOutOfSync");
    assert_eq!(states["0"].configuration_state, "ConfigInSync");
}

/// `live` re-read with the health snapshot (as the dereference step does once a roll is owed).
fn live_with_health(c: &ValidatedCluster, mut live: LiveState) -> LiveState {
    live.kafka = healthy(c);
    live
}

#[test]
fn per_broker_dynamic_config_changes_without_a_restart() {
    let (mut v, live) = settled(&sample(COMBINED));
    v["spec"]["brokers"][1]["brokerConfig"] = json!({"config": "log.cleaner.threads=2\n"});
    bump(&mut v);
    let p = plan(&validated(&v), &live);
    assert!(p.apply.is_empty() && p.restart.is_none(), "{:?}", kinds(&p));
    assert_eq!(
        p.dynamic,
        [ConfigChange {
            resource: ConfigResource::Broker(1),
            broker: Some(1),
            ops: vec![ConfigOp::Set("log.cleaner.threads".into(), "2".into())]
        }]
    );
    assert_eq!(p.status.dynamic_config_keys.as_ref().unwrap().brokers["1"], ["log.cleaner.threads"]);
    assert_eq!(p.requeue, BUSY, "looks again once the change is made");
}

#[test]
fn cluster_wide_config_changes_without_a_restart_and_removed_keys_are_deleted() {
    let (mut v, live) = settled(&sample(COMBINED));
    v["spec"]["clusterWideConfig"] = json!("log.retention.ms=7200000\n");
    bump(&mut v);
    let p = plan(&validated(&v), &live);
    assert!(p.apply.is_empty() && p.restart.is_none());
    assert_eq!(p.dynamic[0].resource, ConfigResource::BrokerDefaults);
    assert_eq!(p.dynamic[0].ops, [ConfigOp::Set("log.retention.ms".into(), "7200000".into())]);

    // Kafka has it now; the user removes it: the operator set it, so it is deleted.
    v["status"] = serde_json::to_value(&p.status).unwrap();
    v["spec"].as_object_mut().unwrap().remove("clusterWideConfig");
    let mut live = live;
    if let KafkaState::Reachable { dynamic, .. } = &mut live.kafka {
        dynamic.cluster_wide = vec![ConfigEntry {
            name: "log.retention.ms".into(),
            value: Some("7200000".into()),
            read_only: false,
            source: ConfigSource::DynamicDefaultBroker,
            sensitive: false,
        }];
    }
    let p = plan(&validated(&v), &live);
    assert_eq!(p.dynamic[0].ops, [ConfigOp::Delete("log.retention.ms".into())]);
}

#[test]
fn cluster_wide_read_only_change_rolls_one_broker_at_a_time_controller_last() {
    let (mut v, mut live) = settled(&sample(COMBINED));
    v["spec"]["readOnlyConfig"] = json!("num.network.threads=5\n");
    bump(&mut v);
    let c = validated(&v);
    let p = plan(&c, &live);
    assert_eq!(p.apply.len(), 3, "every ConfigMap: {:?}", kinds(&p));
    live = carried_out(&p, live);
    let p = plan(&c, &live);
    // Broker 0 leads the quorum in the fixture, so it goes last.
    assert_eq!(p.restart.as_ref().map(|r| r.broker), Some(1));
}

#[test]
fn image_change_rolls_the_brokers_and_reports_the_image() {
    let (mut v, live) = settled(&sample(COMBINED));
    v["spec"]["clusterImage"] = json!("ghcr.io/adobe/koperator/kafka:2.13-4.1.1");
    bump(&mut v);
    let p = plan(&validated(&v), &live);
    assert!(p.apply.is_empty(), "the image is in the Pod only: {:?}", kinds(&p));
    assert!(p.restart.is_some());
    let states = p.status.brokers_state.as_ref().unwrap();
    assert!(states.values().all(|b| b.image.as_deref() == Some("ghcr.io/adobe/koperator/kafka:2.13-4.1.1")));
    assert!(states.values().all(|b| b.configuration_state == "ConfigOutOfSync"));
}

#[test]
fn disk_added_creates_the_pvcs_then_rolls() {
    let (mut v, live) = settled(&sample(COMBINED));
    v["spec"]["brokerConfigGroups"]["default"]["storageConfigs"]
        .as_array_mut()
        .unwrap()
        .push(json!({"mountPath": "/kafka-logs-2", "pvcSpec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}));
    bump(&mut v);
    let p = plan(&validated(&v), &live);
    let objects = kinds(&p);
    for id in 0..3 {
        assert!(
            objects.contains(&format!("PersistentVolumeClaim/{}", pvc_name(&v, id, "/kafka-logs-2"))),
            "{objects:?}"
        );
    }
    assert!(p.restart.is_some(), "the Pods mount the new disk after a restart");
    assert!(p.delete.is_empty());
}

#[test]
fn a_disk_keeps_its_pvc_under_an_older_name() {
    // Koperator's PVCs (generated names `<cluster>-<id>-storage-<index>-xxxxx`, controlled by
    // the cluster) and this operator's before PVC names carried a hash: found by broker id and
    // mount path, kept, claimed by the Pod; no second PVC for the same disk.
    let v = sample(COMBINED);
    let c = validated(&v);
    let mut live = empty();
    for id in 0..3 {
        let mut pvc = k8s_openapi::api::core::v1::PersistentVolumeClaim::default();
        pvc.metadata.name = Some(format!("kafka-combined-{id}-storage-0-x7k2p"));
        pvc.metadata.labels = Some(BTreeMap::from([
            ("app".to_string(), "kafka".to_string()),
            ("kafka_cr".to_string(), "kafka-combined".to_string()),
            ("brokerId".to_string(), id.to_string()),
        ]));
        pvc.metadata.annotations = Some(BTreeMap::from([("mountPath".to_string(), "/kafka-logs".to_string())]));
        pvc.metadata.owner_references = Some(vec![OwnerReference {
            controller: Some(true),
            uid: UID.into(),
            kind: "KafkaCluster".into(),
            name: "kafka-combined".into(),
            api_version: "kafka.banzaicloud.io/v1beta1".into(),
            ..Default::default()
        }]);
        live.pvcs.insert(pvc.name_any(), pvc);
    }
    let p = plan(&c, &live);
    let objects = kinds(&p);
    for id in 0..3 {
        assert!(
            !objects.contains(&format!("PersistentVolumeClaim/{}", pvc_name(&v, id, "/kafka-logs"))),
            "{objects:?}"
        );
        let pod = p
            .apply
            .iter()
            .find_map(|o| match o {
                Object::Pod(pod) if pod.name_any() == format!("kafka-combined-{id}") => Some(pod),
                _ => None,
            })
            .unwrap_or_else(|| panic!("Pod of broker {id} missing from {objects:?}"));
        let claims: Vec<&str> = pod
            .spec
            .as_ref()
            .unwrap()
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| v.persistent_volume_claim.as_ref().map(|c| c.claim_name.as_str()))
            .collect();
        assert_eq!(claims, [format!("kafka-combined-{id}-storage-0-x7k2p")]);
    }
    // Once carried out, nothing more: the disks stay the old PVCs.
    let live = carried_out(&p, live);
    let again = kinds(&plan(&c, &live));
    assert!(again.iter().all(|o| !o.starts_with("PersistentVolumeClaim/")), "{again:?}");
    assert_eq!(live.pvcs.len(), 3, "{:?}", live.pvcs.keys().collect::<Vec<_>>());
}

#[test]
fn paused_cluster_changes_nothing() {
    let (mut v, live) = settled(&sample(COMBINED));
    v["metadata"]["annotations"] = json!({PAUSE_ANNOTATION: "true"});
    v["spec"]["clusterImage"] = json!("kafka:other");
    let c = validated(&v);
    assert_eq!(kafka_wants(&c, &live), KafkaWants { configs: false, health: false, replicas: false, log_dirs: false });
    let p = plan(&c, &live);
    assert!(p.apply.is_empty() && p.restart.is_none() && p.dynamic.is_empty() && p.delete.is_empty());
    assert_eq!(condition(&p, "Reconciling").1, "Paused");
    v["status"] = serde_json::to_value(&p.status).unwrap();
    assert!(plan(&validated(&v), &live).is_noop(), "paused twice writes nothing");
}

#[test]
fn invalid_spec_only_reports() {
    let (mut v, _) = settled(&sample(COMBINED));
    v["spec"]["brokers"][1]["id"] = json!(0);
    let kc = typed(&v);
    let err = ValidatedCluster::new(&kc, &RuleConfig::default()).unwrap_err();
    let p = rejected(&kc, &err);
    assert!(p.apply.is_empty() && p.restart.is_none() && p.delete.is_empty() && p.dynamic.is_empty());
    let (status, reason, message) = condition(&p, "Degraded");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "InvalidSpec"));
    assert!(message.contains("spec.brokers[1].id"), "{message}");
}

#[test]
fn kafka_unreachable_stops_the_roll_and_says_why() {
    let (mut v, mut live) = settled(&sample(COMBINED));
    v["spec"]["readOnlyConfig"] = json!("num.network.threads=5\n");
    bump(&mut v);
    let c = validated(&v);
    live = carried_out(&plan(&c, &live), live);
    live.kafka = KafkaState::Unreachable(KafkaError::Connect {
        addr: "kafka-combined-0:29092".into(),
        reason: "refused".into(),
    });
    let p = plan(&c, &live);
    assert!(p.restart.is_none());
    let (_, reason, message) = condition(&p, "Ready");
    assert_eq!(reason, "RollingRestartWaiting");
    assert!(message.contains("cannot reach Kafka"), "{message}");
    assert!(
        p.status
            .brokers_state
            .unwrap()
            .values()
            .all(|b| b.per_broker_configuration_state == "PerBrokerConfigOutOfSync")
    );

    live.kafka = KafkaState::NoAccess(AdminAccessError::NoBroker);
    assert!(plan(&c, &live).restart.is_none());
    live.kafka = KafkaState::Reachable {
        dynamic: DynamicLive::default(),
        health: Some(Err(HealthReadError { what: "the KRaft quorum", source: KafkaError::UnknownNode(3) })),
    };
    let p = plan(&c, &live);
    assert!(p.restart.is_none());
    assert!(condition(&p, "Ready").2.contains("cannot read the KRaft quorum"));
}

/// A cluster-wide read-only change after broker 1 was restarted onto it (the first of the roll).
fn mid_roll(readonly: &str) -> (Value, ValidatedCluster, LiveState) {
    let (mut v, live) = settled(&sample(COMBINED));
    let original = v.clone();
    v["spec"]["readOnlyConfig"] = json!(readonly);
    bump(&mut v);
    let c = validated(&v);
    let mut live = carried_out(&plan(&c, &live), live);
    let restarted = plan(&c, &live).restart.unwrap();
    assert_eq!(restarted.broker, 1);
    live.pods.remove(&restarted.pod);
    live = carried_out(&plan(&c, &live), live);
    (original, c, live)
}

#[test]
fn a_broker_that_is_not_ready_on_its_current_spec_holds_the_roll_and_kafka_is_not_asked() {
    let (_, c, mut live) = mid_roll("num.network.threads=5\n");
    live.pods.get_mut("kafka-combined-1").unwrap().status = None;
    assert_eq!(kafka_wants(&c, &live), KafkaWants { configs: false, health: false, replicas: false, log_dirs: false });
    let p = plan(&c, &live);
    assert!(p.restart.is_none());
    assert_eq!(p.status.state, "ClusterRollingUpgrading");
    assert!(
        condition(&p, "Ready").2.contains("broker(s) 1 are not Ready on their current spec"),
        "{:?}",
        condition(&p, "Ready")
    );
    assert_eq!(p.requeue, BUSY);
}

#[test]
fn a_broker_that_cannot_start_is_reported_in_its_own_words_and_a_fixed_spec_restarts_it() {
    let (original, c, mut live) = mid_roll("num.io.threads=0\n");
    let crashed: PodStatus = serde_json::from_value(json!({"containerStatuses": [{
        "name": "kafka", "image": "i", "imageID": "", "ready": false, "restartCount": 2,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "message": "[t] ERROR Exiting Kafka due to fatal exception (kafka.Kafka$)\norg.apache.kafka.common.config.ConfigException: Invalid value 0 for configuration num.io.threads: Value must be at least 1\n\tat kafka.Kafka.main(Kafka.scala)\n"}},
    }]}))
    .unwrap();
    live.pods.get_mut("kafka-combined-1").unwrap().status = Some(crashed);
    let p = plan(&c, &live);
    assert!(p.restart.is_none(), "no other broker goes down");
    let (status, reason, message) = condition(&p, "Degraded");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "BrokerFailed"));
    assert_eq!(
        message,
        "broker 1 cannot run: org.apache.kafka.common.config.ConfigException: Invalid value 0 for configuration num.io.threads: Value must be at least 1 (exit code 1, restarted 2 times)"
    );
    // The spec is fixed: brokers 0 and 2 never left it; broker 1 is down and out of date, so
    // restarting it costs nothing, and Kafka is asked whether it may.
    let mut fixed = original.clone();
    bump(&mut fixed);
    bump(&mut fixed);
    let c = validated(&fixed);
    live = carried_out(&plan(&c, &live), live);
    assert_eq!(kafka_wants(&c, &live), KafkaWants { configs: false, health: true, replicas: false, log_dirs: false });
    if let KafkaState::Reachable { health: Some(Ok(h)), .. } = &mut live.kafka {
        h.meta.brokers.remove(&1);
    }
    let p = plan(&c, &live);
    assert_eq!(p.restart.map(|r| r.broker), Some(1));
}

#[test]
fn unhealthy_kafka_holds_the_roll() {
    let (mut v, mut live) = settled(&sample(COMBINED));
    v["spec"]["brokers"][0]["readOnlyConfig"] = json!("num.io.threads=7\n");
    bump(&mut v);
    let c = validated(&v);
    live = carried_out(&plan(&c, &live), live);
    if let KafkaState::Reachable { health: Some(Ok(h)), .. } = &mut live.kafka {
        h.meta.brokers.remove(&2); // fenced: Kafka sees it gone although its Pod is Ready
    }
    let p = plan(&c, &live);
    assert!(p.restart.is_none());
    assert!(condition(&p, "Ready").2.contains("[2] are unhealthy"), "{:?}", condition(&p, "Ready"));
}

#[test]
fn roll_in_progress_after_an_operator_restart_continues_with_the_next_broker() {
    let (mut v, live) = settled(&sample(COMBINED));
    v["spec"]["readOnlyConfig"] = json!("num.network.threads=5\n");
    bump(&mut v);
    let c = validated(&v);
    // Before the restart the operator had applied every ConfigMap and restarted broker 1, whose
    // new Pod runs the new spec; a new operator process knows only what it reads.
    let first = plan(&c, &live);
    let mut live = carried_out(&first, live);
    let restarted = plan(&c, &live).restart.unwrap();
    assert_eq!(restarted.broker, 1);
    live.pods.remove(&restarted.pod);
    let recreated = plan(&c, &live);
    assert_eq!(kinds(&recreated), ["Pod/kafka-combined-1"]);
    let live = carried_out(&recreated, live);
    let p = plan(&c, &live);
    assert_eq!(p.restart.map(|r| r.broker), Some(2), "broker 1 is done, the active controller 0 goes last");
}

#[test]
fn a_deleted_pod_is_recreated_without_touching_the_others() {
    let (v, mut live) = settled(&sample(COMBINED));
    live.pods.remove("kafka-combined-1");
    let p = plan(&validated(&v), &live);
    assert_eq!(kinds(&p), ["Pod/kafka-combined-1"]);
    assert!(p.restart.is_none() && p.delete.is_empty());
}

#[test]
fn an_object_of_another_owner_is_never_taken_over() {
    let (v, mut live) = settled(&sample(COMBINED));
    let cm = live.config_maps.get_mut("kafka-combined-config-1").unwrap();
    cm.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "someone-else".into(),
        uid: "another-uid".into(),
        controller: Some(true),
        ..Default::default()
    }]);
    cm.annotations_mut().insert(crate::apply::APPLIED_HASH.into(), "theirs".into());
    let p = plan(&validated(&v), &live);
    assert!(p.apply.is_empty(), "{:?}", kinds(&p));
    let (status, reason, message) = condition(&p, "Degraded");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "ForeignObject"));
    assert!(message.contains("ConfigMap/kafka-combined-config-1"), "{message}");
}

#[test]
fn fields_not_acted_on_are_named_and_sasl_ssl_renders_nothing() {
    let (mut v, live) = settled(&sample(COMBINED));
    v["spec"]["monitoringConfig"] = json!({"cCJMXExporterConfig": "rules: []"});
    let p = plan(&validated(&v), &live);
    let (status, reason, message) = condition(&p, "Degraded");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "NotSupported"));
    assert!(message.contains("spec.monitoringConfig.cCJMXExporterConfig"), "{message}");
    assert_eq!(condition(&p, "Ready").0, "True", "the cluster runs without it");
    assert_eq!(p.requeue, SETTLED);

    let mut sasl = sample(COMBINED);
    sasl["spec"]["listenersConfig"]["internalListeners"][0]["type"] = json!("sasl_ssl");
    sasl["spec"]["listenersConfig"]["sslSecrets"] = json!({"tlsSecretName": "kafka-tls", "create": true});
    let c = validated(&sasl);
    assert_eq!(
        kafka_wants(&c, &empty()),
        KafkaWants { configs: false, health: false, replicas: false, log_dirs: false }
    );
    let p = plan(&c, &empty());
    assert!(p.apply.is_empty(), "brokers that cannot start are not rendered: {:?}", kinds(&p));
    assert!(p.certificates.is_empty());
    let (_, reason, message) = condition(&p, "Degraded");
    assert_eq!(reason, "NotSupported");
    assert!(message.contains("internalListeners[0].type"), "{message}");
}

/// The execute step's certificate issuing, on the fixture's live state.
fn certificates_issued(c: &ValidatedCluster, p: &Plan, live: &mut LiveState) {
    for o in &p.certificates {
        let ca = p.ca.as_ref().map(|(k, chain)| (k, chain.as_str()));
        let data = super::certificates::issue(o, ca, &c.name_any(), live.now, &live.pki).unwrap();
        let mut secret = k8s_openapi::api::core::v1::Secret { data: Some(data), ..Default::default() };
        crate::apply::owned_by(&mut secret, c.controller_owner_ref(&()).unwrap());
        live.secrets.0.insert(o.secret.clone(), secret);
    }
}

#[test]
fn a_tls_cluster_issues_its_certificates_before_its_brokers_and_rolls_on_renewal() {
    let mut v = sample(COMBINED);
    for i in 0..2 {
        v["spec"]["listenersConfig"]["internalListeners"][i]["type"] = json!("ssl");
    }
    v["spec"]["listenersConfig"]["sslSecrets"] = json!({"tlsSecretName": "kafka-tls", "create": true});
    let c = validated(&v);
    let mut live = empty();
    live.pki = super::certificates::PkiConfig {
        ca_validity: Duration::from_secs(100_000),
        leaf_validity: Duration::from_secs(3000),
    };

    // The CA first, then the brokers' and the operator's certificates; no Pod before its own.
    let p = plan(&c, &live);
    assert_eq!(p.certificates.iter().map(|o| o.secret.as_str()).collect::<Vec<_>>(), ["kafka-tls"]);
    assert!(!kinds(&p).iter().any(|k| k.starts_with("Pod/")), "{:?}", kinds(&p));
    assert_eq!(p.requeue, BUSY);
    assert!(p.events.iter().any(|e| e.reason == "CertificateIssued" && e.note.contains("kafka-tls (missing)")));
    certificates_issued(&c, &p, &mut live);
    let p = plan(&c, &live);
    let certs = p.status.certificates.as_ref().expect("the CA is in the status once it exists");
    assert_eq!(certs.ca.as_ref().unwrap().not_after.0.as_second() as u64, live.now + 100_000);
    assert!(certs.brokers.is_empty() && certs.operator.is_none(), "ordered, not issued yet: {certs:?}");
    assert_eq!(p.certificates.len(), 4, "{:?}", p.certificates);
    assert!(p.ca.is_some());
    assert!(!format!("{p:?}").contains("PRIVATE KEY"), "a plan never shows a key");
    assert!(!kinds(&p).iter().any(|k| k.starts_with("Pod/")));
    certificates_issued(&c, &p, &mut live);

    // Every certificate is there: the Pods, each with its certificate's fingerprint.
    let p = plan(&c, &live);
    assert!(p.certificates.is_empty());
    let certs = p.status.certificates.as_ref().unwrap();
    assert_eq!(certs.brokers.len(), 3);
    assert_eq!(certs.operator.as_ref().unwrap().secret_name, "kafka-combined-controller");
    assert!(certs.brokers.values().all(|b| b.not_after.0.as_second() as u64 == live.now + 3000));
    let pods: Vec<Pod> = p
        .apply
        .iter()
        .filter_map(|o| match o {
            Object::Pod(p) => Some((**p).clone()),
            _ => None,
        })
        .collect();
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|p| p.annotations()[CERTIFICATE_ANNOTATION].len() == 16), "{pods:?}");
    let mut live = carried_out(&p, live);
    live.kafka = healthy(&c);
    let mut v = v.clone();
    for _ in 0..3 {
        let p = plan(&validated(&v), &live);
        v["status"] = serde_json::to_value(&p.status).unwrap();
    }
    let p = plan(&validated(&v), &live);
    assert!(p.is_noop(), "{p:?}");
    assert!(p.requeue <= Duration::from_secs(2000), "looks again when renewal is due: {:?}", p.requeue);

    // Renewal: new certificates first (no restart meanwhile), then a health-gated roll.
    live.now += 2000;
    let p = plan(&validated(&v), &live);
    assert_eq!(p.certificates.len(), 4);
    assert!(p.restart.is_none(), "no restart while certificates are issued");
    certificates_issued(&c, &p, &mut live);
    live.kafka = healthy(&c);
    let p = plan(&validated(&v), &live);
    assert!(p.certificates.is_empty());
    assert!(p.restart.is_some(), "the renewed certificate reaches a broker through a restart: {p:?}");
    assert!(p.status_changed, "the renewed certificates reach the status");
    let renewed = p.status.certificates.as_ref().unwrap();
    assert!(renewed.brokers.values().all(|b| b.not_after.0.as_second() as u64 == live.now + 3000), "{renewed:?}");
}

#[test]
fn a_missing_user_ca_is_reported_and_no_broker_starts() {
    let mut v = sample(COMBINED);
    v["spec"]["listenersConfig"]["internalListeners"][0]["type"] = json!("ssl");
    v["spec"]["listenersConfig"]["sslSecrets"] = json!({"tlsSecretName": "my-ca", "create": false});
    let p = plan(&validated(&v), &empty());
    assert!(p.certificates.is_empty());
    assert!(!kinds(&p).iter().any(|k| k.starts_with("Pod/")), "{:?}", kinds(&p));
    let (status, reason, message) = condition(&p, "Degraded");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "CertificateError"));
    assert!(message.contains("Secret my-ca does not exist"), "{message}");
}

#[test]
fn refused_dynamic_configs_are_reported_per_broker() {
    let (mut v, live) = settled(&sample(COMBINED));
    v["spec"]["brokers"][1]["brokerConfig"] = json!({"config": "log.cleaner.threads=2\n"});
    bump(&mut v);
    let c = validated(&v);
    let mut p = plan(&c, &live);
    let old = c.status.clone().unwrap();
    p.record_config_failures(&old, &BTreeMap::from([(Some(1), "INVALID_CONFIG".to_string())]));
    let states = p.status.brokers_state.as_ref().unwrap();
    assert_eq!(states["1"].per_broker_configuration_state, "PerBrokerConfigError");
    assert_eq!(states["0"].per_broker_configuration_state, "PerBrokerConfigInSync");
    p.record_config_failures(&old, &BTreeMap::from([(None, "timeout".to_string())]));
    assert!(
        p.status.brokers_state.unwrap().values().all(|b| b.per_broker_configuration_state == "PerBrokerConfigError")
    );
}

#[test]
fn services_of_removed_listeners_are_deleted_and_only_ours() {
    let (v, mut live) = settled(&sample(COMBINED));
    let mut extra = live.services.values().next().unwrap().clone();
    extra.metadata.name = Some("kafka-combined-0-old".into());
    extra.metadata.uid = Some("uid-old".into());
    live.services.insert("kafka-combined-0-old".into(), extra.clone());
    let mut theirs = extra;
    theirs.metadata.name = Some("kafka-combined-theirs".into());
    theirs.metadata.owner_references = None;
    live.services.insert("kafka-combined-theirs".into(), theirs);
    let p = plan(&validated(&v), &live);
    assert_eq!(
        p.delete,
        [Deletion { kind: OwnedKind::Service, name: "kafka-combined-0-old".into(), uid: "uid-old".into() }]
    );
}

#[test]
fn a_refused_key_removal_stays_managed_and_is_retried() {
    let (mut v, mut live) = settled(&sample(COMBINED));
    let mut st: KafkaClusterStatus = serde_json::from_value(v["status"].clone()).unwrap();
    st.dynamic_config_keys = Some(koperator_shared::api::kafkacluster::DynamicConfigKeys {
        cluster_wide: vec![],
        brokers: BTreeMap::from([("1".to_string(), vec!["log.cleaner.threads".to_string()])]),
    });
    v["status"] = serde_json::to_value(&st).unwrap();
    if let KafkaState::Reachable { dynamic, .. } = &mut live.kafka {
        dynamic.brokers.insert(
            1,
            Ok(vec![ConfigEntry {
                name: "log.cleaner.threads".into(),
                value: Some("2".into()),
                read_only: false,
                source: ConfigSource::DynamicBroker,
                sensitive: false,
            }]),
        );
    }
    let c = validated(&v);
    let mut p = plan(&c, &live);
    assert_eq!(p.dynamic[0].ops, [ConfigOp::Delete("log.cleaner.threads".into())], "removed from the spec");
    assert!(p.status.dynamic_config_keys.is_none(), "nothing managed once it is deleted");
    p.record_config_failures(&st, &BTreeMap::from([(Some(1), "timeout".to_string())]));
    assert_eq!(
        p.status.dynamic_config_keys.as_ref().unwrap().brokers["1"],
        ["log.cleaner.threads"],
        "still the operator's, so the next reconcile deletes it again"
    );
}

#[test]
fn a_removed_brokers_config_map_goes_even_when_its_pod_is_gone() {
    let (mut v, mut live) = settled(&sample(DEDICATED));
    v["spec"]["brokers"].as_array_mut().unwrap().retain(|b| b["id"] != 102);
    v["metadata"]["annotations"] = json!({FORCE_BROKER_REMOVAL: "true"});
    live.pods.remove("kafka-102");
    let p = plan(&validated(&v), &live);
    assert_eq!(
        p.delete,
        [Deletion { kind: OwnedKind::ConfigMap, name: "kafka-config-102".into(), uid: "uid-kafka-config-102".into() }]
    );
    assert!(p.events.is_empty(), "the broker was gone already");
}

#[test]
fn no_kafka_access_is_reported_while_the_brokers_run() {
    let (v, mut live) = settled(&sample(COMBINED));
    live.kafka = KafkaState::NoAccess(AdminAccessError::UnsupportedProtocol {
        protocol: "SASL_PLAINTEXT".into(),
        listener: "internal".into(),
    });
    let p = plan(&validated(&v), &live);
    assert_eq!(condition(&p, "Ready").0, "True", "the brokers run");
    let (status, reason, message) = condition(&p, "Degraded");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "NoKafkaAccess"));
    assert!(message.contains("SASL_PLAINTEXT"), "{message}");
    assert_eq!(p.requeue, SETTLED, "a lasting condition");
    live.kafka = KafkaState::Unreachable(KafkaError::Connect { addr: "b0:29092".into(), reason: "refused".into() });
    let p = plan(&validated(&v), &live);
    assert_eq!(condition(&p, "Degraded").1, "KafkaUnreachable");
    assert_eq!(p.requeue, BUSY);
}

/// `obj` as a tenant would make it: the same name, no labels, annotations or owner.
fn theirs<K: kube::Resource>(mut obj: K) -> K {
    let meta = obj.meta_mut();
    meta.owner_references = None;
    meta.labels = None;
    meta.annotations = None;
    meta.uid = Some(format!("theirs-{}", meta.name.clone().unwrap_or_default()));
    obj
}

#[test]
fn same_named_objects_someone_else_made_are_never_taken_over() {
    let v = sample(COMBINED);
    let first = plan(&validated(&v), &empty());
    let mut live = empty();
    let mut planted = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    // One object of each kind, made before the operator got to it (the JMX exporter's
    // ConfigMap: below).
    for obj in first.apply.clone().into_iter().filter(|o| !o.describe().ends_with("-kafka-jmx-exporter")) {
        let kind = obj.describe().split('/').next().unwrap().to_string();
        if !seen.insert(kind) {
            continue;
        }
        planted.push(obj.describe());
        match obj {
            Object::ConfigMap(o) => drop(live.config_maps.insert(o.name_any(), theirs(o))),
            Object::Pvc(o) => drop(live.pvcs.insert(o.name_any(), theirs(o))),
            Object::Pod(o) => drop(live.pods.insert(o.name_any(), ready(theirs(*o)))),
            Object::Service(o) => drop(live.services.insert(o.name_any(), theirs(o))),
            Object::Pdb(o) => live.pdb = Some(theirs(o)),
            Object::Deployment(o) => drop(live.deployments.insert(o.name_any(), theirs(*o))),
            Object::Topic(o) => drop(live.topics.insert(o.name_any(), theirs(*o))),
            Object::Route(_) => unreachable!("the sample has no route"),
        }
    }
    for kind in ["ConfigMap", "PersistentVolumeClaim", "Pod", "Service"] {
        assert!(seen.contains(kind), "no {kind} planted: {planted:?}");
    }
    let p = plan(&validated(&v), &live);
    for name in &planted {
        assert!(!kinds(&p).contains(name), "{name} would be applied over: {:?}", kinds(&p));
    }
    assert_eq!(p.apply.len(), first.apply.len() - planted.len(), "everything else: {:?}", kinds(&p));
    assert!(p.delete.is_empty() && p.restart.is_none(), "{:?} {:?}", p.delete, p.restart);
    let (status, reason, message) = condition(&p, "Degraded");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "ForeignObject"));
    for name in &planted {
        assert!(message.contains(name.as_str()), "{name} not named: {message}");
    }
    assert!(message.contains("delete or rename them"), "{message}");
    // A foreign broker Pod is not one of ours to wait for: Kafka is not asked through it.
    assert_eq!(
        kafka_wants(&validated(&v), &live),
        KafkaWants { configs: false, health: false, replicas: false, log_dirs: false }
    );

    // Only a broker's ConfigMap is theirs: its Pod (which would mount it) is not created.
    let cm = live.config_maps.values().next().unwrap().clone();
    let broker = cm.name_any().rsplit('-').next().unwrap().to_string();
    let mut live = empty();
    live.config_maps.insert(cm.name_any(), cm);
    let p = plan(&validated(&v), &live);
    let pod = format!("Pod/kafka-combined-{broker}");
    assert!(!kinds(&p).contains(&pod), "{pod} would run on their ConfigMap: {:?}", kinds(&p));
    assert!(kinds(&p).iter().filter(|k| k.starts_with("Pod/")).count() >= 2, "{:?}", kinds(&p));
}

#[test]
fn the_jmx_exporter_config_goes_before_the_pods_and_no_broker_starts_on_someone_elses() {
    let v = sample(COMBINED);
    let first = plan(&validated(&v), &empty());
    let objects = kinds(&first);
    let jmx = "ConfigMap/kafka-combined-kafka-jmx-exporter";
    let at = objects.iter().position(|o| o == jmx).unwrap_or_else(|| panic!("{jmx} missing: {objects:?}"));
    assert!(objects.iter().skip(at).any(|o| o.starts_with("Pod/")), "applied before the Pods: {objects:?}");
    assert!(objects.iter().take(at).all(|o| !o.starts_with("Pod/")), "applied before the Pods: {objects:?}");
    let cm = first
        .apply
        .iter()
        .find_map(|o| match o {
            Object::ConfigMap(c) if c.name_any() == "kafka-combined-kafka-jmx-exporter" => Some(c.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(cm.owner_references()[0].uid, UID, "owned by the cluster, so it goes with it");
    assert!(desired_names(&validated(&v)).config_maps.contains(&cm.name_any()), "read by name, labelled or not");

    let mut live = empty();
    live.config_maps.insert(cm.name_any(), theirs(cm));
    let p = plan(&validated(&v), &live);
    assert!(kinds(&p).iter().all(|k| !k.starts_with("Pod/") && k != jmx), "{:?}", kinds(&p));
    let (status, reason, message) = condition(&p, "Degraded");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "ForeignObject"));
    assert!(message.contains(jmx), "{message}");
}

#[test]
fn broker_versions_come_from_the_exporters_and_the_last_known_one_stays() {
    // The fixture's exporters answer 4.1.1 and its status has them.
    let (v, mut live) = settled(&sample(COMBINED));
    let versions = |p: &Plan| -> Vec<Option<String>> {
        p.status.brokers_state.as_ref().unwrap().values().map(|b| b.version.clone()).collect()
    };
    let p = plan(&validated(&v), &live);
    assert!(p.is_noop(), "the same versions write nothing");
    assert_eq!(versions(&p), vec![Some("4.1.1".to_string()); 3]);
    assert_eq!(p.requeue, SETTLED);

    // Exporters that do not answer (or a broker not Ready): the versions stay as they were,
    // and the brokers are asked again soon.
    live.versions.clear();
    let p = plan(&validated(&v), &live);
    assert!(p.is_noop(), "{p:?}");
    assert_eq!(versions(&p), vec![Some("4.1.1".to_string()); 3]);
    assert_eq!(p.requeue, crate::exporter::RETRY);

    // One broker runs another release.
    live.versions = (0..3).map(|id| (id, "4.1.1".to_string())).collect();
    live.versions.insert(1, "4.2.0".into());
    let p = plan(&validated(&v), &live);
    assert!(p.status_changed);
    assert_eq!(versions(&p), [Some("4.1.1"), Some("4.2.0"), Some("4.1.1")].map(|s| s.map(String::from)));
}

#[test]
fn a_same_named_pod_without_our_owner_is_never_restarted_or_deleted() {
    let (mut v, mut live) = settled(&sample(COMBINED));
    let name = live.pods.keys().next().unwrap().clone();
    let pod = live.pods.remove(&name).unwrap();
    let mut planted = theirs(pod.clone());
    // Even with our labels and a stale applied hash: labels are not ownership.
    planted.metadata.labels = pod.metadata.labels.clone();
    planted.annotations_mut().insert(crate::apply::APPLIED_HASH.into(), "stale".into());
    live.pods.insert(name.clone(), ready(planted));
    bump(&mut v);
    v["metadata"]["annotations"] = json!({ FORCE_BROKER_REMOVAL: "true" });
    let p = plan(&validated(&v), &live);
    assert!(p.restart.as_ref().is_none_or(|r| r.pod != name), "{:?}", p.restart);
    assert!(p.delete.iter().all(|d| d.name != name), "{:?}", p.delete);
    assert!(!kinds(&p).contains(&format!("Pod/{name}")), "{:?}", kinds(&p));
    let (_, reason, message) = condition(&p, "Degraded");
    assert_eq!(reason, "ForeignObject");
    assert!(message.contains(&format!("Pod/{name}")), "{message}");
}

#[test]
fn disks_carry_the_owner_uid_and_a_disk_of_another_cluster_is_not_ours() {
    let v = sample(COMBINED);
    let first = plan(&validated(&v), &empty());
    let pvc = first
        .apply
        .iter()
        .find_map(|o| match o {
            Object::Pvc(p) => Some(p.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(pvc.annotations().get(crate::apply::OWNER_UID).map(String::as_str), Some(UID));
    // The same disk left by a deleted cluster of the same name (another UID).
    let mut old = pvc.clone();
    old.annotations_mut().insert(crate::apply::OWNER_UID.into(), "uid-of-a-deleted-cluster".into());
    let mut live = empty();
    live.pvcs.insert(old.name_any(), old);
    let p = plan(&validated(&v), &live);
    assert!(!kinds(&p).contains(&format!("PersistentVolumeClaim/{}", pvc.name_any())));
    assert_eq!(condition(&p, "Degraded").1, "ForeignObject");
}

#[test]
fn desired_names_cover_every_applied_object() {
    let v = sample(DEDICATED);
    let c = validated(&v);
    let names = desired_names(&c);
    let first = plan(&c, &empty());
    for obj in &first.apply {
        let listed = match obj {
            Object::ConfigMap(o) => names.config_maps.contains(&o.name_any()),
            Object::Pvc(o) => names.pvcs.contains(&o.name_any()),
            Object::Pod(o) => names.pods.contains(&o.name_any()),
            Object::Service(o) => names.services.contains(&o.name_any()),
            Object::Pdb(_) => true, // read by name already
            Object::Deployment(o) => names.deployments.contains(&o.name_any()),
            Object::Topic(o) => names.topics.contains(&o.name_any()),
            Object::Route(_) => true, // read by the routes module, by label and by name
        };
        assert!(listed, "{} is not read by name", obj.describe());
    }
}

/// The combined sample with a third listener of type ssl serving a JKS Secret of the user's own.
fn with_own_listener() -> Value {
    let mut v = sample(COMBINED);
    v["spec"]["listenersConfig"]["internalListeners"].as_array_mut().unwrap().push(json!({
        "type": "ssl", "name": "tls", "containerPort": 29094, "usedForInnerBrokerCommunication": false,
        "serverSSLCertSecret": {"name": "tls-jks"}
    }));
    v
}

#[test]
fn a_listener_secret_of_the_users_own_gates_the_pods_and_rolls_them_when_it_changes() {
    use super::super::own_certificates::fixtures::jks_secret;
    let v = with_own_listener();
    // Missing: reported by name, no Pod (the broker could not start on it).
    let p = plan(&validated(&v), &empty());
    assert!(!kinds(&p).iter().any(|o| o.starts_with("Pod/")), "{:?}", kinds(&p));
    let (_, reason, message) = condition(&p, "Degraded");
    assert_eq!(reason, "CertificateError");
    assert!(message.contains("Secret tls-jks (serverSSLCertSecret of listener 'tls') does not exist"), "{message}");

    // There: the Pods carry its fingerprint; settled, it is read again every minute.
    let mut base = empty();
    base.secrets.0.insert("tls-jks".into(), jks_secret("tls-broker", "pw"));
    let first = plan(&validated(&v), &base);
    let mut live = carried_out(&first, base);
    live.kafka = healthy(&validated(&v));
    live.versions = (0..3).map(|id| (id, "4.1.1".to_string())).collect();
    let mut v = v;
    for _ in 0..3 {
        let p = plan(&validated(&v), &live);
        v["status"] = serde_json::to_value(&p.status).unwrap();
    }
    let p = plan(&validated(&v), &live);
    assert!(p.is_noop(), "{p:?}");
    assert_eq!(p.requeue, OWN_SECRETS_POLL);
    let fingerprint = |live: &LiveState| {
        live.pods
            .values()
            .map(|p| p.annotations()[own_certificates::OWN_CERTIFICATE_ANNOTATION].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(fingerprint(&live).len(), 3);

    // A new keystore: every broker is out of date (the roll asks Kafka for its health first).
    live.secrets.0.insert("tls-jks".into(), jks_secret("tls-broker", "pw"));
    assert_eq!(
        kafka_wants(&validated(&v), &live),
        KafkaWants { configs: true, health: true, replicas: false, log_dirs: false }
    );
    let p = plan(&validated(&v), &live);
    assert_eq!(p.status.state, "ClusterRollingUpgrading");
    // An unusable Secret (wrong password): reported, and no restart onto it.
    let mut broken = jks_secret("tls-broker", "pw");
    broken.data.as_mut().unwrap().insert("password".into(), k8s_openapi::ByteString(b"nope".to_vec()));
    live.secrets.0.insert("tls-jks".into(), broken);
    let p = plan(&validated(&v), &live);
    assert!(p.restart.is_none());
    assert!(condition(&p, "Degraded").2.contains("wrong password"), "{:?}", condition(&p, "Degraded"));
}

#[test]
fn live_configs_keep_their_super_users_while_a_secret_of_the_users_own_cannot_be_read() {
    use super::super::own_certificates::fixtures::jks_secret;
    let mut v = sample(COMBINED);
    v["spec"]["listenersConfig"]["internalListeners"][0]["type"] = json!("ssl");
    v["spec"]["listenersConfig"]["internalListeners"][0]["serverSSLCertSecret"] = json!({"name": "inner-jks"});
    v["spec"]["clientSSLCertSecret"] = json!({"name": "client-jks"});
    let mut base = empty();
    base.secrets.0.insert("inner-jks".into(), jks_secret("broker", "pw"));
    base.secrets.0.insert("client-jks".into(), jks_secret("admin", "pw"));
    let first = plan(&validated(&v), &base);
    let cm = first.apply.iter().find_map(|o| match o {
        Object::ConfigMap(c) => c.data.as_ref().unwrap().get("broker-config").cloned(),
        _ => None,
    });
    let cm = cm.expect("configs rendered");
    assert!(cm.contains("super.users=User:CN=broker;User:CN=admin"), "{cm}");
    let mut live = carried_out(&first, base);
    live.kafka = healthy(&validated(&v));
    for _ in 0..3 {
        let p = plan(&validated(&v), &live);
        v["status"] = serde_json::to_value(&p.status).unwrap();
    }
    // The client Secret is gone: reported, no config loses User:CN=admin, no broker waits.
    live.secrets.0.remove("client-jks");
    let p = plan(&validated(&v), &live);
    assert!(!kinds(&p).iter().any(|o| o.starts_with("ConfigMap/")), "{:?}", kinds(&p));
    assert!(p.restart.is_none());
    assert!(condition(&p, "Degraded").2.contains("client-jks"), "{:?}", condition(&p, "Degraded"));
}

const WITH_CC: &str = include_str!("../../../config/samples/kafkacluster_kraft_cruisecontrol.yaml");

/// Cruise Control's objects among `plan`'s.
fn cruise_control_kinds(plan: &Plan) -> Vec<String> {
    kinds(plan).into_iter().filter(|k| k.contains("cruise") || k.contains("-cc-jmx")).collect()
}

#[test]
fn cruise_control_comes_once_the_brokers_are_ready() {
    let v = sample(WITH_CC);
    let c = validated(&v);
    let p = plan(&c, &empty());
    assert_eq!(cruise_control_kinds(&p), Vec::<String>::new(), "the brokers first");
    assert_eq!(p.status.cruise_control_topic_status.as_deref(), Some(CC_TOPIC_NOT_READY));
    assert!(desired_names(&c).deployments.contains(&"kafka-cc-cruisecontrol".to_string()));

    let mut live = carried_out(&p, empty());
    live.kafka = healthy(&c);
    let p = plan(&c, &live);
    assert_eq!(
        cruise_control_kinds(&p),
        [
            "ConfigMap/kafka-cc-cc-jmx-exporter",
            "ConfigMap/kafka-cc-cruisecontrol-config",
            "Service/kafka-cc-cruisecontrol-svc",
            "KafkaTopic/kafka-cc-cruise-control-topic",
            "Deployment/kafka-cc-cruisecontrol",
        ]
    );
    for o in &p.apply {
        let owner = match o {
            Object::Deployment(d) => d.owner_references().to_vec(),
            Object::Topic(t) => t.owner_references().to_vec(),
            _ => continue,
        };
        assert_eq!(owner.len(), 1, "{}", o.describe());
        assert_eq!((owner[0].uid.as_str(), owner[0].controller), (UID, Some(true)), "{}", o.describe());
    }
    let names = desired_names(&c);
    for obj in &p.apply {
        let listed = match obj {
            Object::ConfigMap(o) => names.config_maps.contains(&o.name_any()),
            Object::Service(o) => names.services.contains(&o.name_any()),
            Object::Deployment(o) => names.deployments.contains(&o.name_any()),
            Object::Topic(o) => names.topics.contains(&o.name_any()),
            _ => true,
        };
        assert!(listed, "{} is not read by name", obj.describe());
    }

    // Settled: the topic is there, nothing more to do. Once it exists, Cruise Control is kept up
    // to date whatever the brokers do.
    let (v, mut live) = settled(&v);
    assert_eq!(validated(&v).status.as_ref().unwrap().cruise_control_topic_status.as_deref(), Some(CC_TOPIC_READY));
    live.pods.get_mut("kafka-cc-0").unwrap().status = None;
    let mut changed = v.clone();
    changed["spec"]["cruiseControlConfig"]["config"] =
        json!("webserver.http.port=8090\nnum.concurrent.leader.movements=100");
    let p = plan(&validated(&changed), &live);
    assert_eq!(
        cruise_control_kinds(&p),
        ["ConfigMap/kafka-cc-cruisecontrol-config", "Deployment/kafka-cc-cruisecontrol"],
        "a changed config rolls Cruise Control (its Pod template carries the config's hash)"
    );
    assert!(p.restart.is_none(), "the brokers do not restart for Cruise Control's config");
}

#[test]
fn cruise_control_goes_with_its_config_ours_only() {
    let (v, live) = settled(&sample(WITH_CC));
    let mut without = v.clone();
    without["spec"]["cruiseControlConfig"] = json!({});
    let p = plan(&validated(&without), &live);
    assert_eq!(cruise_control_kinds(&p), Vec::<String>::new());
    let mut deleted: Vec<(OwnedKind, String)> = p.delete.iter().map(|d| (d.kind, d.name.clone())).collect();
    deleted.sort_by_key(|(_, n)| n.clone());
    assert_eq!(
        deleted,
        [
            (OwnedKind::ConfigMap, "kafka-cc-cc-jmx-exporter".to_string()),
            (OwnedKind::Deployment, "kafka-cc-cruisecontrol".to_string()),
            (OwnedKind::ConfigMap, "kafka-cc-cruisecontrol-config".to_string()),
            (OwnedKind::Service, "kafka-cc-cruisecontrol-svc".to_string()),
        ],
        "the metrics topic is kept"
    );
    assert!(p.delete.iter().all(|d| d.uid.starts_with("uid-")), "{:?}", p.delete);
    assert_eq!(p.status.cruise_control_topic_status, None);

    // Someone else's objects of those names are neither deleted nor applied over.
    let mut live = live;
    for d in live.deployments.values_mut() {
        *d = theirs(d.clone());
    }
    for name in ["kafka-cc-cruisecontrol-config", "kafka-cc-cc-jmx-exporter"] {
        let cm = live.config_maps.get_mut(name).unwrap();
        *cm = theirs(cm.clone());
    }
    let p = plan(&validated(&without), &live);
    assert!(p.delete.iter().all(|d| d.kind == OwnedKind::Service), "{:?}", p.delete);
    let p = plan(&validated(&v), &live);
    assert!(!kinds(&p).contains(&"Deployment/kafka-cc-cruisecontrol".to_string()), "{:?}", kinds(&p));
    assert_eq!(condition(&p, "Degraded").1, "ForeignObject");
}

fn volume_of(p: &Plan, id: &str, mount: &str) -> String {
    let g = &p.status.brokers_state.as_ref().unwrap()[id].graceful_action_state;
    g.volume_states
        .as_ref()
        .and_then(|v| v.get(mount))
        .map(|v| v.cruise_control_volume_state.clone())
        .unwrap_or_default()
}

/// What brokers 100–102 report of their log directories (mount path, replicas).
fn log_dirs(entries: &[(&str, usize)]) -> Option<BTreeMap<i32, Vec<koperator_shared::kafka::LogDir>>> {
    log_dirs_of(100..=102, entries)
}

/// What brokers `ids` report of their log directories (mount path, replicas).
fn log_dirs_of(
    ids: impl IntoIterator<Item = i32>,
    entries: &[(&str, usize)],
) -> Option<BTreeMap<i32, Vec<koperator_shared::kafka::LogDir>>> {
    let dirs: Vec<koperator_shared::kafka::LogDir> = entries
        .iter()
        .map(|(m, n)| koperator_shared::kafka::LogDir {
            path: format!("{m}/kafka"),
            error: None,
            replicas: *n,
            bytes: 0,
        })
        .collect();
    Some(ids.into_iter().map(|id| (id, dirs.clone())).collect())
}

#[test]
fn a_removed_disk_is_drained_by_cruise_control_then_leaves_log_dirs_and_its_pvc_goes() {
    const SECOND: &str = "/kafka-logs-broker2";
    let mut base = sample(DEDICATED);
    base["spec"]["brokerConfigGroups"]["broker"]["storageConfigs"].as_array_mut().unwrap().push(
        json!({"mountPath": SECOND, "pvcSpec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}),
    );
    let (mut v, mut live) = settled(&base);
    let p = plan(&validated(&v), &live);
    assert_eq!(volume_of(&p, "100", SECOND), super::graceful_disks::volume::REBALANCE_SUCCEEDED, "recorded");
    v["spec"]["brokerConfigGroups"]["broker"]["storageConfigs"].as_array_mut().unwrap().pop();
    bump(&mut v);
    let c = validated(&v);
    assert!(kafka_wants(&c, &live).log_dirs, "the brokers' log directories are asked");
    // Kafka stores replicas on it: kept mounted and in log.dirs (no restart), remove_disks made.
    live.log_dirs = log_dirs(&[("/kafka-logs-broker", 9), (SECOND, 4)]);
    let p = plan(&c, &live);
    assert!(p.restart.is_none() && p.apply.is_empty() && p.delete.is_empty(), "{:?} {:?}", kinds(&p), p.delete);
    assert_eq!(p.operations.len(), 1, "{:?}", p.operations);
    let op = p.operations[0].clone();
    assert_eq!(op.operation, Operation::RemoveDisks);
    assert_eq!(
        op.parameters()["brokerid_and_logdirs"],
        "100-/kafka-logs-broker2/kafka,101-/kafka-logs-broker2/kafka,102-/kafka-logs-broker2/kafka"
    );
    assert_eq!(volume_of(&p, "101", SECOND), super::graceful_disks::volume::REMOVAL_SCHEDULED);
    assert_eq!(condition(&p, "Reconciling").1, "GracefulScaling");
    assert_eq!(p.requeue, GRACEFUL_POLL);
    v["status"] = serde_json::to_value(&p.status).unwrap();

    // Drained and confirmed by Kafka: out of log.dirs, a roll; the PVCs stay while mounted.
    let mut done = operation(&op.name, Operation::RemoveDisks, "Completed");
    done.status.as_mut().unwrap().current_task.as_mut().unwrap().finished = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::from_second(1).unwrap()),
    );
    live.operations.insert(op.name.clone(), done);
    live.log_dirs = log_dirs(&[("/kafka-logs-broker", 13), (SECOND, 0)]);
    let p = plan(&validated(&v), &live);
    assert!(kinds(&p).contains(&"ConfigMap/kafka-config-100".to_string()), "{:?}", kinds(&p));
    assert!(p.restart.is_some(), "the brokers restart without the disk");
    assert!(p.delete.is_empty(), "{:?}", p.delete);
    assert_eq!(volume_of(&p, "100", SECOND), super::graceful_disks::volume::REMOVAL_SUCCEEDED);
    v["status"] = serde_json::to_value(&p.status).unwrap();

    // The brokers restarted without it (their Pods made anew): the PVCs go.
    let mut live = carried_out(&p, live);
    for id in 100..=102 {
        live.pods.remove(&format!("kafka-{id}"));
    }
    let p = plan(&validated(&v), &live);
    let mut live = carried_out(&p, live);
    v["status"] = serde_json::to_value(&p.status).unwrap();
    live.log_dirs = log_dirs(&[("/kafka-logs-broker", 13)]);
    let p = plan(&validated(&v), &live);
    let gone: Vec<String> = p.delete.iter().filter(|d| d.kind == OwnedKind::Pvc).map(|d| d.name.clone()).collect();
    let expected: Vec<String> = (100..=102).map(|id| pvc_name(&v, id, SECOND)).collect();
    assert_eq!(gone, expected, "{:?}", p.delete);
    assert!(p.events.iter().any(|e| e.reason == "DiskRemoved"), "{:?}", p.events);
}

#[test]
fn without_cruise_control_a_removed_disk_holding_replicas_stays() {
    let mut base = sample(COMBINED);
    base["spec"]["brokerConfigGroups"]["default"]["storageConfigs"].as_array_mut().unwrap().push(
        json!({"mountPath": "/kafka-logs-2", "pvcSpec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}),
    );
    let (mut v, mut live) = settled(&base);
    v["spec"]["brokerConfigGroups"]["default"]["storageConfigs"].as_array_mut().unwrap().pop();
    bump(&mut v);
    live.log_dirs = log_dirs_of(0..3, &[("/kafka-logs", 5), ("/kafka-logs-2", 2)]);
    let p = plan(&validated(&v), &live);
    assert!(p.restart.is_none() && p.apply.is_empty() && p.operations.is_empty(), "{:?}", kinds(&p));
    let (status, reason, message) = condition(&p, "Degraded");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "DiskRemovalPending"));
    assert!(message.contains("disk /kafka-logs-2 of broker 0 still holds 2 partition replica(s)"), "{message}");
    // Forced: out of log.dirs (a roll), the PVCs kept.
    v["metadata"]["annotations"] = json!({FORCE_BROKER_REMOVAL: "true"});
    let p = plan(&validated(&v), &live);
    assert!(p.restart.is_some() && p.delete.is_empty(), "{:?}", p.delete);
}

#[test]
fn a_removed_middle_disk_is_kept_where_it_was() {
    let mut base = sample(COMBINED);
    for m in ["/kafka-logs-2", "/kafka-logs-3"] {
        base["spec"]["brokerConfigGroups"]["default"]["storageConfigs"].as_array_mut().unwrap().push(
            json!({"mountPath": m, "pvcSpec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}),
        );
    }
    let (mut v, mut live) = settled(&base);
    v["spec"]["brokerConfigGroups"]["default"]["storageConfigs"].as_array_mut().unwrap().remove(1);
    bump(&mut v);
    live.log_dirs = log_dirs_of(0..3, &[("/kafka-logs", 5), ("/kafka-logs-2", 2), ("/kafka-logs-3", 1)]);
    let p = plan(&validated(&v), &live);
    assert!(p.restart.is_none() && p.apply.is_empty(), "kept in its place, nothing changes: {:?}", kinds(&p));
}

#[test]
fn brokers_advertise_the_load_balancers_address_once_kubernetes_gives_it() {
    let mut v = with_envoy();
    v["spec"]["listenersConfig"]["externalListeners"][0].as_object_mut().unwrap().remove("hostnameOverride");
    let (v, mut live) = settled(&v);
    let external = |st: &KafkaClusterStatus| {
        st.listener_statuses.as_ref().unwrap().external_listeners.as_ref().unwrap()["external"].clone()
    };
    let stored: KafkaClusterStatus = serde_json::from_value(v["status"].clone()).unwrap();
    assert!(external(&stored).is_empty(), "no address yet: {:?}", external(&stored));
    let internal = stored.listener_statuses.as_ref().unwrap().internal_listeners.clone().unwrap();
    assert!(internal["internal"].iter().any(|s| s.name == "headless"), "{internal:?}");
    assert!(internal["internal"].iter().any(|s| s.name == "broker-2"), "{internal:?}");

    let lb = live.envoy.services.get_mut("envoy-loadbalancer-external-kafka-combined").unwrap();
    lb.status = Some(k8s_openapi::api::core::v1::ServiceStatus {
        load_balancer: Some(k8s_openapi::api::core::v1::LoadBalancerStatus {
            ingress: Some(vec![k8s_openapi::api::core::v1::LoadBalancerIngress {
                ip: Some("203.0.113.9".into()),
                ..Default::default()
            }]),
        }),
        ..Default::default()
    });
    let p = plan(&validated(&v), &live);
    let addresses: Vec<(String, String)> = external(&p.status).into_iter().map(|s| (s.name, s.address)).collect();
    assert_eq!(addresses[0], ("any-broker".to_string(), "203.0.113.9:29092".to_string()), "{addresses:?}");
    assert_eq!(addresses[1], ("broker-0".to_string(), "203.0.113.9:19090".to_string()), "{addresses:?}");
    let configs: Vec<String> = p
        .apply
        .iter()
        .filter_map(|o| match o {
            Object::ConfigMap(cm) => cm.data.as_ref()?.get("broker-config").cloned(),
            _ => None,
        })
        .collect();
    assert!(!configs.is_empty(), "the brokers' configurations change: {:?}", kinds(&p));
    assert!(configs.iter().all(|c| c.contains("EXTERNAL://203.0.113.9:190")), "{configs:?}");
}

#[test]
fn node_port_brokers_advertise_their_nodes_address_and_the_port_kubernetes_picked() {
    let mut v = sample(COMBINED);
    v["spec"]["listenersConfig"]["externalListeners"] = json!([{
        "type": "plaintext", "name": "external", "containerPort": 9094, "externalStartingPort": -1,
        "accessMethod": "NodePort"
    }]);
    let (v, mut live) = settled(&v);
    for (i, pod) in live.pods.values_mut().enumerate() {
        pod.spec.as_mut().unwrap().node_name = Some(format!("node-{i}"));
    }
    for i in 0..live.pods.len() {
        let address =
            k8s_openapi::api::core::v1::NodeAddress { type_: "InternalIP".into(), address: format!("10.0.0.{i}") };
        live.nodes.insert(format!("node-{i}"), vec![(address.type_, address.address)]);
    }
    for s in live.services.values_mut().filter(|s| s.name_any().ends_with("-external")) {
        for p in s.spec.as_mut().unwrap().ports.as_mut().unwrap() {
            assert_eq!(p.node_port, None, "left to Kubernetes");
            p.node_port =
                Some(31000 + p.name.as_deref().unwrap().trim_start_matches("broker-").parse::<i32>().unwrap());
        }
    }
    let p = plan(&validated(&v), &live);
    let st = p.status.listener_statuses.clone().unwrap();
    let external: Vec<String> = st.external_listeners.unwrap()["external"].iter().map(|s| s.address.clone()).collect();
    assert_eq!(external.len(), 3, "{external:?}");
    assert!(external.iter().all(|a| a.starts_with("10.0.0.") && a.contains(":3100")), "{external:?}");
}

const CONTOUR: &str = include_str!("../../../config/samples/kafkacluster_contour_passthrough.yaml");
const GATEWAY: &str = include_str!("../../../config/samples/kafkacluster_gateway_api.yaml");

#[test]
fn contour_and_gateway_routes_are_applied_once_and_go_only_when_the_spec_says_so() {
    for (text, kind) in [(CONTOUR, "HTTPProxy"), (GATEWAY, "TLSRoute")] {
        let mut v = sample(text);
        let p = plan(&validated(&v), &empty());
        let routes: Vec<String> = kinds(&p).into_iter().filter(|k| k.starts_with(kind)).collect();
        assert!(routes.len() >= 4, "{kind}: an any-cast route and one per broker: {:?}", kinds(&p));
        assert!(!condition(&p, "Degraded").2.contains("not acted on"), "{kind}: {:?}", condition(&p, "Degraded"));
        let live = carried_out(&p, empty());
        let again = plan(&validated(&v), &live);
        assert!(!kinds(&again).iter().any(|k| k.starts_with(kind)), "{kind}: applied once: {:?}", kinds(&again));
        assert!(!again.delete.iter().any(|d| matches!(d.kind, OwnedKind::Route(_))), "{kind}");

        // The listener moves to NodePort: its routes stay until removeUnusedIngressResources.
        v["spec"]["listenersConfig"]["externalListeners"][0]["accessMethod"] = json!("NodePort");
        v["spec"]["listenersConfig"]["externalListeners"][0].as_object_mut().unwrap().remove("config");
        for b in v["spec"]["brokers"].as_array_mut().unwrap() {
            b.as_object_mut().unwrap().remove("brokerConfig");
        }
        let kept = plan(&validated(&v), &live);
        assert!(!kept.delete.iter().any(|d| matches!(d.kind, OwnedKind::Route(_))), "{kind}: {:?}", kept.delete);
        v["spec"]["removeUnusedIngressResources"] = json!(true);
        let gone = plan(&validated(&v), &live);
        let deleted = gone.delete.iter().filter(|d| matches!(d.kind, OwnedKind::Route(_))).count();
        assert_eq!(deleted, routes.len(), "{kind}: every route of the listener: {:?}", gone.delete);
        // The per-broker Services keep their names as NodePort Services: applied, not deleted.
        let name = v["metadata"]["name"].as_str().unwrap();
        let broker_service = format!("{name}-0-external");
        assert!(kinds(&gone).contains(&format!("Service/{broker_service}")), "{kind}: {:?}", kinds(&gone));
        assert!(!gone.delete.iter().any(|d| d.name == broker_service), "{kind}: {:?}", gone.delete);
    }
}

#[test]
fn a_missing_route_crd_is_reported_and_nothing_else_waits_for_it() {
    let v = sample(CONTOUR);
    let mut live = empty();
    live.routes.unreadable.insert("HTTPProxy".into(), "the httpproxies.projectcontour.io CRD is not installed".into());
    let p = plan(&validated(&v), &live);
    assert!(!kinds(&p).iter().any(|k| k.starts_with("HTTPProxy")), "{:?}", kinds(&p));
    let applied = kinds(&p);
    assert!(applied.contains(&"ConfigMap/kafka-contour-pt-config-0".to_string()), "brokers go on: {applied:?}");
    assert!(applied.iter().any(|k| k.starts_with("Service/countour-svc-external-az1")), "{applied:?}");
    let (status, reason, message) = condition(&p, "Degraded");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "IngressNotReady"), "{message}");
    assert!(message.contains("httpproxies.projectcontour.io CRD is not installed"), "{message}");
}

#[test]
fn nodes_the_operator_may_not_read_are_reported() {
    let mut v = sample(COMBINED);
    v["spec"]["listenersConfig"]["externalListeners"] = json!([{
        "type": "plaintext", "name": "external", "containerPort": 9094, "externalStartingPort": 30090,
        "accessMethod": "NodePort"
    }]);
    let (v, mut live) = settled(&v);
    live.node_errors.push("Node node-0: nodes \"node-0\" is forbidden".into());
    let (status, reason, message) = condition(&plan(&validated(&v), &live), "Degraded");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "NodeAddressUnavailable"), "{message}");
    assert!(message.contains("grant the operator `get` on nodes"), "{message}");
}

/// Kafka still reports a broker whose Pod was just deleted as healthy (its controlled shutdown
/// has not started): no second broker restarts until the first is back.
#[test]
fn no_broker_restarts_while_another_ones_pod_is_being_deleted() {
    let (mut v, live) = settled(&sample(COMBINED));
    v["spec"]["readOnlyConfig"] = json!("num.io.threads=9\n");
    bump(&mut v);
    let c = validated(&v);
    let p = plan(&c, &live);
    let mut live = carried_out(&p, live_with_health(&c, live));
    let first = plan(&c, &live).restart.expect("one broker restarts");
    let pod = live.pods.get_mut(&first.pod).unwrap();
    pod.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()));
    let p = plan(&c, &live);
    assert!(p.restart.is_none(), "{:?} restarts while broker {} is restarting", p.restart, first.broker);
    let (_, reason, message) = condition(&p, "Ready");
    assert!(message.contains("restarting (their Pods are being deleted)"), "{reason}: {message}");
}

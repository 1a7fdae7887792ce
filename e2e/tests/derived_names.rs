//! Names that fit (issue #14 item 7), checked by a real kube-apiserver: a KafkaCluster with the
//! longest name the rules allow, broker id 65534 and two disks whose readable PVC names are
//! equal (`/data/a-b`, `/data/a/b`) renders objects the API server accepts (server-side dry
//! run, so its own name and label validation runs), with distinct PVC names; every name
//! derived from the cluster's name (also those not rendered yet, such as the Cruise Control
//! Service, and the `kafkaCluster=<cluster>.<namespace>` label of topics) is accepted at the
//! limit; one character more is refused by the rules and by the API server.

use koperator_e2e::{ControlPlane, shared, tools::repo_root};
use koperator_shared::api::KafkaCluster;
use koperator_shared::render::names::{self, DerivedName, MAX_BROKER_ID, max_cluster_name_len};
use koperator_shared::render::{self, objects};
use koperator_shared::rules::RuleConfig;
use koperator_shared::validated::{ValidatedCluster, ValidationError};
use serde_json::{Value, json};

/// A namespace prefix giving a 17-character namespace (`<prefix>-<6 random>`): there the
/// `kafkaCluster` label and the reserved Cruise Control Service limit the name alike (45).
const NS_PREFIX: &str = "names-e2e1";

/// The kraft sample named `name` in `ns`: broker 102 becomes 65534 with two extra disks whose
/// readable PVC names collide, per-broker Services, a NodePort listener and a PDB.
fn cluster(name: &str, ns: &str) -> KafkaCluster {
    let text = std::fs::read_to_string(repo_root().join("config/samples/kafkacluster_kraft.yaml")).unwrap();
    let mut v: Value = serde_saphyr::from_str(&text).unwrap();
    v["metadata"]["name"] = name.into();
    v["metadata"]["namespace"] = ns.into();
    v["metadata"]["uid"] = "00000000-0000-0000-0000-000000000002".into();
    v["spec"]["headlessServiceEnabled"] = false.into();
    v["spec"]["disruptionBudget"] = json!({"create": true, "budget": "1"});
    let disk = |p: &str| json!({"mountPath": p, "pvcSpec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    let brokers = v["spec"]["brokers"].as_array_mut().unwrap();
    let last = brokers.iter_mut().find(|b| b["id"] == 102).unwrap();
    last["id"] = MAX_BROKER_ID.into();
    last["brokerConfig"] = json!({"storageConfigs": [disk("/data/a-b"), disk("/data/a/b")]});
    v["spec"]["listenersConfig"]["externalListeners"] = json!([{
        "type": "plaintext", "name": "ext", "containerPort": 9094, "externalStartingPort": 0,
        "accessMethod": "NodePort"
    }]);
    serde_json::from_value(v).unwrap()
}

fn validate(kc: &KafkaCluster) -> Result<ValidatedCluster, ValidationError> {
    ValidatedCluster::new(kc, &RuleConfig::default())
}

/// A DNS-1035 cluster name of `len` characters.
fn name_of(len: usize) -> String {
    format!("k{}", "x".repeat(len - 1))
}

/// The object that carries a derived name the way the operator uses it: a Service named so, a
/// Pod with that host name, a ConfigMap named so or labelled with it.
fn carrier(d: &DerivedName, ns: &str, i: usize) -> Value {
    let meta = |name: &str| json!({"name": name, "namespace": ns});
    if d.what.starts_with("Service") || d.what == "external listener Service" {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": meta(&d.name),
               "spec": {"ports": [{"port": 9092}]}})
    } else if d.what.starts_with("Pod host name") {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta(&format!("host-{i}")),
               "spec": {"hostname": d.name, "containers": [{"name": "c", "image": "x"}]}})
    } else if let Some(label) = d.what.strip_prefix("label ") {
        let key = label.split(' ').next().unwrap();
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": format!("label-{i}"), "namespace": ns, "labels": {key: d.name}}})
    } else {
        // ConfigMap, PDB and broker DNS names: DNS subdomains of up to 253 characters.
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(&d.name)})
    }
}

/// Server-side dry run of `objects` (the API server's validation and admission, nothing
/// stored); the error text when it refuses.
fn dry_run(cp: &ControlPlane, objects: Vec<Value>) -> Result<String, String> {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects}).to_string();
    let out = cp.kubectl_output(&["create", "--dry-run=server", "-o", "name", "-f", "-"], Some(&list)).unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn the_longest_cluster_name_fits_and_one_more_does_not() {
    let cp = shared();
    let ns = cp.namespace(NS_PREFIX).unwrap();
    assert_eq!(ns.name.len(), 17);
    let max = max_cluster_name_len(&ns.name);
    assert_eq!(max, 45);

    // At the limit: the rules accept it, and the API server every rendered object.
    let kc = cluster(&name_of(max), &ns.name);
    let c = validate(&kc).unwrap_or_else(|e| panic!("{e}"));
    let mut rendered: Vec<Value> = Vec::new();
    let mut pvc_names = Vec::new();
    for b in render::brokers(&c) {
        let o = objects::broker_objects(&c, &b, "CLUSTER-ID");
        rendered.push(serde_json::to_value(&o.config_map).unwrap());
        rendered.push(serde_json::to_value(&o.pod).unwrap());
        for p in &o.pvcs {
            pvc_names.push(p.metadata.name.clone().unwrap());
            rendered.push(serde_json::to_value(p).unwrap());
        }
    }
    for s in objects::services(&c) {
        rendered.push(serde_json::to_value(&s).unwrap());
    }
    rendered.push(serde_json::to_value(objects::pdb(&c).unwrap()).unwrap());
    // k8s-openapi writes apiVersion and kind.
    let kinds = ["ConfigMap", "Pod", "PersistentVolumeClaim", "Service", "PodDisruptionBudget"];
    for o in &rendered {
        assert!(kinds.contains(&o["kind"].as_str().unwrap_or_default()), "{o}");
    }
    let typed = rendered;
    // Broker 65534: its group's disk and /data/a-b, /data/a/b, whose readable parts are cut.
    let broker_pvcs: Vec<&String> = pvc_names.iter().filter(|n| n.contains(&format!("-{MAX_BROKER_ID}-"))).collect();
    assert_eq!(broker_pvcs.len(), 3, "{pvc_names:?}");
    assert!(pvc_names.iter().all(|n| n.len() <= 63), "{pvc_names:?}");
    let mut sorted = pvc_names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), pvc_names.len(), "PVC names collide: {pvc_names:?}");
    let count = typed.len();
    let out = dry_run(cp, typed).unwrap_or_else(|e| panic!("the API server refused a rendered object: {e}"));
    assert_eq!(out.lines().count(), count, "{out}");
    // ... and every derived name, the reserved and label ones too.
    let derived = names::derived_names(&kc);
    assert!(derived.iter().any(|d| d.name.len() == 63), "some derived name is exactly at the limit");
    let carriers: Vec<Value> = derived.iter().enumerate().map(|(i, d)| carrier(d, &ns.name, i)).collect();
    dry_run(cp, carriers).unwrap_or_else(|e| panic!("the API server refused a derived name at the limit: {e}"));

    // One more: the rules refuse it on metadata.name, and so would the API server.
    let kc = cluster(&name_of(max + 1), &ns.name);
    match validate(&kc) {
        Err(ValidationError::Invalid(v)) => {
            assert!(v.errors.iter().any(|e| e.path == "metadata.name" && e.message.contains("at most 45")), "{v:?}")
        }
        other => panic!("a {}-character name was not refused: {:?}", max + 1, other.map(|_| ())),
    }
    let over: Vec<DerivedName> = names::derived_names(&kc).into_iter().filter(|d| d.name.len() > d.limit).collect();
    assert!(over.len() >= 2, "{over:?}");
    for (i, d) in over.iter().enumerate() {
        let refused = dry_run(cp, vec![carrier(d, &ns.name, i)]);
        assert!(refused.is_err(), "the API server accepted the {} {:?} ({} characters)", d.what, d.name, d.name.len());
    }
}

#[test]
fn envoys_service_name_shortens_the_longest_cluster_name() {
    let cp = shared();
    let ns = cp.namespace(NS_PREFIX).unwrap();
    // `envoy-loadbalancer-lb-<cluster>` must be a DNS label: at most 63 - 22 = 41 characters.
    let with_envoy = |len: usize| {
        let mut kc = cluster(&name_of(len), &ns.name);
        let lb = serde_json::from_value(json!({
            "type": "plaintext", "name": "lb", "containerPort": 9095, "externalStartingPort": 1
        }))
        .unwrap();
        kc.spec.listeners_config.external_listeners.get_or_insert_with(Vec::new).push(lb);
        kc
    };
    let kc = with_envoy(41);
    validate(&kc).unwrap_or_else(|e| panic!("{e}"));
    let derived = names::derived_names(&kc);
    assert!(derived.iter().any(|d| d.what == "Service (Envoy)" && d.name.len() == 63), "{derived:?}");
    let carriers: Vec<Value> = derived.iter().enumerate().map(|(i, d)| carrier(d, &ns.name, i)).collect();
    dry_run(cp, carriers).unwrap_or_else(|e| panic!("the API server refused a derived name at the limit: {e}"));
    match validate(&with_envoy(42)) {
        Err(ValidationError::Invalid(v)) => assert!(
            v.errors.iter().any(|e| e.path == "metadata.name"
                && e.message.contains("Service (Envoy)")
                && e.message.contains("at most 41")),
            "{v:?}"
        ),
        other => panic!("a 42-character name with Envoy was not refused: {:?}", other.map(|_| ())),
    }
}

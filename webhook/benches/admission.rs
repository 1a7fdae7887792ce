//! In-process cost of admission: decode an AdmissionReview, run defaults or rules, encode the
//! answer (DESIGN §11 target: p99 ≤ 100 µs for a 3-broker KafkaCluster), and its parts: decoding
//! (typed, or into a `Value` tree as the defaults need), the rules alone, the defaults. `make bench`.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use koperator_shared::api::{KafkaTopic, Kind, Object};
use koperator_shared::defaults;
use koperator_shared::rules::kafkatopic::ClusterLookup;
use koperator_shared::rules::{self, RuleConfig};
use koperator_webhook::admission::{Admission, LookupError, Lookups, Mode, NoKafkaChecks, Route};
use koperator_webhook::review;
use serde_json::{Value, json};

struct Found;

impl Lookups for Found {
    fn cluster(&self, _: &str, _: &str) -> Result<ClusterLookup, LookupError> {
        Ok(ClusterLookup::Found { deleting: false })
    }
    fn topics_named(&self, _: &str) -> Result<Vec<KafkaTopic>, LookupError> {
        Ok(Vec::new())
    }
}

/// The combined KRaft sample with `n` brokers.
fn cluster(n: i32) -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/samples/kafkacluster_kraft_combined.yaml"
    ))
    .unwrap();
    let mut v: Value = serde_saphyr::from_str(&text).unwrap();
    v["spec"]["brokers"] = Value::Array((0..n).map(|id| json!({"id": id, "brokerConfigGroup": "default"})).collect());
    v
}

fn topic() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/samples/example-topic.yaml")).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn review_body(kind: &str, version: &str, obj: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "kind": {"group": "kafka.banzaicloud.io", "version": version, "kind": kind},
                    "resource": {"group": "kafka.banzaicloud.io", "version": version, "resource": "x"},
                    "namespace": "kafka", "name": obj["metadata"]["name"], "operation": "CREATE", "object": obj}
    }))
    .unwrap()
}

fn benches(c: &mut Criterion) {
    let admission =
        Admission { lookups: Arc::new(Found), kafka: Arc::new(NoKafkaChecks), rules: RuleConfig::default() };
    let cases = [
        ("kafkacluster-3", Kind::KafkaCluster, "v1beta1", cluster(3)),
        ("kafkacluster-50", Kind::KafkaCluster, "v1beta1", cluster(50)),
        ("kafkatopic", Kind::KafkaTopic, "v1alpha1", topic()),
    ];
    for (name, kind, version, obj) in &cases {
        let body = review_body(kind.as_str(), version, obj);
        let text = serde_json::to_string(obj).unwrap();
        c.bench_function(&format!("decode-typed/{name}"), |b| b.iter(|| Object::from_json(*kind, &text).unwrap()));
        c.bench_function(&format!("decode-value/{name}"), |b| b.iter(|| serde_json::from_str::<Value>(&text).unwrap()));
        let typed = Object::from_json(*kind, &text).unwrap();
        c.bench_function(&format!("rules/{name}"), |b| {
            b.iter(|| rules::validate(&typed, None, &RuleConfig::default()))
        });
        c.bench_function(&format!("defaults/{name}"), |b| b.iter(|| defaults::patch(*kind, obj, "kafka")));
        for mode in [Mode::Validate, Mode::Mutate] {
            let route = Route { mode, kind: *kind };
            c.bench_function(&format!("review-{}/{name}", mode.as_str()), |b| {
                b.iter(|| {
                    let req = review::decode(&body).unwrap();
                    serde_json::to_vec(&admission.handle(route, &req).into_review()).unwrap()
                })
            });
        }
    }
}

criterion_group!(admission_benches, benches);
criterion_main!(admission_benches);

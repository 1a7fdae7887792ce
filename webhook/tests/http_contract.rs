//! The HTTP contract of the admission routes, in process (no TLS): status codes for bad
//! requests, and no panic on random or truncated bodies.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use koperator_shared::api::KafkaTopic;
use koperator_shared::rules::RuleConfig;
use koperator_shared::rules::kafkatopic::ClusterLookup;
use koperator_webhook::admission::{Admission, LookupError, Lookups, NoKafkaChecks};
use koperator_webhook::certs::CertStatus;
use koperator_webhook::metrics::Metrics;
use koperator_webhook::server::{AppState, MAX_BODY, router};
use proptest::prelude::*;
use serde_json::{Value, json};
use tower::ServiceExt;

struct AllClustersExist;

impl Lookups for AllClustersExist {
    fn cluster(&self, _: &str, _: &str) -> Result<ClusterLookup, LookupError> {
        Ok(ClusterLookup::Found { deleting: false })
    }
    fn topics_named(&self, _: &str) -> Result<Vec<KafkaTopic>, LookupError> {
        Ok(Vec::new())
    }
}

fn app() -> axum::Router {
    let admission = Arc::new(Admission {
        lookups: Arc::new(AllClustersExist),
        kafka: Arc::new(NoKafkaChecks),
        rules: RuleConfig::default(),
    });
    router(AppState {
        admission,
        metrics: Arc::new(Metrics::new()),
        certs: CertStatus::new(),
        budget: koperator_webhook::limits::Budget::new(koperator_webhook::server::DEFAULT_MEMORY_BUDGET),
    })
}

fn review(object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "abc", "kind": {"group": "kafka.banzaicloud.io", "version": "v1alpha1", "kind": "KafkaTopic"},
                    "resource": {"group": "kafka.banzaicloud.io", "version": "v1alpha1", "resource": "kafkatopics"},
                    "namespace": "ns", "name": "t", "operation": "CREATE", "object": object}
    }))
    .unwrap()
}

fn topic(partitions: i64) -> Value {
    json!({"apiVersion": "kafka.banzaicloud.io/v1alpha1", "kind": "KafkaTopic", "metadata": {"name": "t"},
           "spec": {"name": "t", "partitions": partitions, "replicationFactor": 1, "clusterRef": {"name": "kafka"}}})
}

async fn post(path: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
    // As the API server (and hyper over the wire) does: with a Content-Length.
    let req = Request::post(path)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap();
    let resp = app().oneshot(req).await.unwrap();
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes().to_vec())
}

#[tokio::test]
async fn valid_review_gets_a_review_back_with_the_uid() {
    let (status, body) = post("/validate-kafkatopic?timeout=5s", "application/json", review(topic(0))).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    assert_eq!(v["response"]["uid"], "abc");
    assert_eq!(v["response"]["allowed"], false);
    assert_eq!(v["response"]["status"]["code"], 422);
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let (status, _) = post("/validate-kafkatopic", "text/plain", review(topic(1))).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn oversized_body_is_413() {
    let (status, _) = post("/validate-kafkatopic", "application/json", vec![b' '; MAX_BODY + 1]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_body_without_content_length_is_411() {
    let req = Request::post("/validate-kafkatopic")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::TRANSFER_ENCODING, "chunked")
        .body(Body::from(review(topic(1))))
        .unwrap();
    let resp = app().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::LENGTH_REQUIRED);
    assert_eq!(resp.headers()[header::CONNECTION], "close");
}

#[tokio::test]
async fn malformed_json_is_400_with_a_message() {
    let (status, body) = post("/validate-kafkatopic", "application/json", b"{\"apiVersion\":".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("not a valid AdmissionReview"));
}

#[tokio::test]
async fn unknown_route_is_404_and_get_is_405() {
    assert_eq!(post("/validate-nothing", "application/json", review(topic(1))).await.0, StatusCode::NOT_FOUND);
    let resp = app().oneshot(Request::get("/validate-kafkatopic").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let get =
        |p: &'static str| async move { app().oneshot(Request::get(p).body(Body::empty()).unwrap()).await.unwrap() };
    assert_eq!(get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(get("/readyz").await.status(), StatusCode::SERVICE_UNAVAILABLE, "no certificate served yet");
    let m = get("/metrics").await;
    let text = String::from_utf8(m.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(text.contains("koperator_webhook_requests_in_flight"), "{text}");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let (status, _) = runtime().block_on(post("/validate-kafkacluster", "application/json", body));
        prop_assert!(status == StatusCode::OK || status == StatusCode::BAD_REQUEST);
    }

    #[test]
    fn truncated_reviews_never_panic(cut in 0usize..400, mutate in any::<bool>()) {
        let full = review(topic(3));
        let body = full[..cut.min(full.len())].to_vec();
        let path = if mutate { "/mutate-kafkatopic" } else { "/validate-kafkatopic" };
        let (status, _) = runtime().block_on(post(path, "application/json", body));
        prop_assert!(status == StatusCode::OK || status == StatusCode::BAD_REQUEST);
    }

    #[test]
    fn arbitrary_json_objects_get_an_answer(partitions in any::<i64>(), name in ".{0,40}", rf in any::<i32>()) {
        let mut t = topic(partitions);
        t["spec"]["name"] = json!(name);
        t["spec"]["replicationFactor"] = json!(rf);
        for path in ["/validate-kafkatopic", "/mutate-kafkatopic"] {
            let (status, body) = runtime().block_on(post(path, "application/json", review(t.clone())));
            prop_assert_eq!(status, StatusCode::OK);
            let v: Value = serde_json::from_slice(&body).unwrap();
            prop_assert_eq!(&v["response"]["uid"], "abc");
        }
    }
}

//! Prometheus metrics and the health endpoints of the operator (plain HTTP on
//! `--metrics-listen`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Result label of a reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `error`.
    pub result: &'static str,
}

/// Operator metrics.
pub struct Metrics {
    /// Reconciles by result.
    pub reconciles: Family<ResultLabel, Counter>,
    /// Reconcile duration in seconds.
    pub duration: Histogram,
    /// Writes to the API server made by reconciles.
    pub writes: Counter,
    /// 1 while this replica leads.
    pub leader: Gauge,
    /// Set once the replica is up (leading or standing by).
    pub ready: AtomicBool,
    registry: Registry,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("koperator");
        let reconciles = Family::<ResultLabel, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let writes = Counter::default();
        let leader = Gauge::default();
        registry.register("reconciles", "KafkaCluster reconciles by result", reconciles.clone());
        registry.register("reconcile_duration_seconds", "Duration of a KafkaCluster reconcile", duration.clone());
        registry.register("api_writes", "Writes to the Kubernetes API made by reconciles", writes.clone());
        registry.register("leader", "1 while this replica holds the leader lease", leader.clone());
        Arc::new(Metrics { reconciles, duration, writes, leader, ready: AtomicBool::new(false), registry })
    }

    fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// `/healthz`, `/readyz`, `/metrics`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(m): State<Arc<Metrics>>| async move {
                if m.ready.load(Ordering::SeqCst) {
                    (StatusCode::OK, "ok")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "starting")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move {
                ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], m.encode())
                    .into_response()
            }),
        )
        .with_state(metrics)
}

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

pub mod certificate_expiry;

use certificate_expiry::CertificateExpiry;

/// Labels of a reconcile: which controller, and how it ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `kafkacluster`, `kafkatopic`, `kafkauser`.
    pub controller: &'static str,
    /// `ok` or `error`.
    pub result: &'static str,
}

/// Label of per-controller series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    /// `kafkacluster`, `kafkatopic`, `kafkauser`.
    pub controller: &'static str,
}

/// Labels of an alert the receiver got: what came of it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    /// `acted`, `deferred`, `refused`, `invalid`, `repeated`, `resolved`, `ignored`.
    pub outcome: &'static str,
}

/// Labels of a failed reconcile: the controller and the error's category (a closed set).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `kafkacluster`, `kafkatopic`, `kafkauser`.
    pub controller: &'static str,
    /// The error's `category()`.
    pub category: &'static str,
}

/// Operator metrics.
pub struct Metrics {
    /// Reconciles by controller and result.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// Failed reconciles by controller and error category.
    pub errors: Family<ErrorLabels, Counter>,
    /// Reconcile duration in seconds, by controller.
    pub duration: Family<ControllerLabel, Histogram, fn() -> Histogram>,
    /// Writes to the API server made by each controller's reconciles.
    pub writes: Family<ControllerLabel, Counter>,
    /// 1 while this replica leads.
    pub leader: Gauge,
    /// Alerts the alert receiver got, by what came of them.
    pub alerts: Family<AlertLabels, Counter>,
    /// notAfter of each certificate of the clusters and users this replica reconciles.
    pub certificate_expiry: CertificateExpiry,
    /// Set once the replica is up (leading or standing by).
    pub ready: AtomicBool,
    registry: Registry,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("koperator");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<ControllerLabel, Histogram, fn() -> Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 16))
        });
        let writes = Family::<ControllerLabel, Counter>::default();
        let leader = Gauge::default();
        registry.register("reconciles", "Reconciles by controller and result", reconciles.clone());
        registry.register("reconcile_errors", "Failed reconciles by controller and error category", errors.clone());
        registry.register("reconcile_duration_seconds", "Duration of a reconcile, by controller", duration.clone());
        registry.register(
            "api_writes",
            "Writes to the Kubernetes API made by each controller's reconciles",
            writes.clone(),
        );
        registry.register("leader", "1 while this replica holds the leader lease", leader.clone());
        let alerts = Family::<AlertLabels, Counter>::default();
        registry.register("alerts", "Alerts the alert receiver got, by what came of them", alerts.clone());
        let certificate_expiry = CertificateExpiry::default();
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "When each certificate of a KafkaCluster's PKI or a KafkaUser expires (notAfter, unix seconds)",
            certificate_expiry.family(),
        );
        Arc::new(Metrics {
            reconciles,
            errors,
            duration,
            writes,
            leader,
            alerts,
            certificate_expiry,
            ready: AtomicBool::new(false),
            registry,
        })
    }

    /// The writes counted so far for `controller`.
    pub fn writes_of(&self, controller: &'static str) -> u64 {
        self.writes.get_or_create(&ControllerLabel { controller }).get()
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

//! Prometheus metrics of the webhook.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a request. Every value comes from a closed set, so that requests cannot create
/// new series: `mode` and `kind` come from the matched route (unknown routes are not counted),
/// `operation` from [`operation_label`], `result` from a fixed list.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `validate` or `mutate`.
    pub mode: &'static str,
    /// Kind of the object.
    pub kind: &'static str,
    /// CREATE, UPDATE, DELETE, CONNECT or `other`.
    pub operation: &'static str,
    /// allowed, patched, denied, error, bad_request.
    pub result: &'static str,
}

/// The `operation` label of an AdmissionReview operation: one of the four the API server
/// sends, anything else (a forged review) is `other`.
pub fn operation_label(operation: &str) -> &'static str {
    match operation {
        "CREATE" => "CREATE",
        "UPDATE" => "UPDATE",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        _ => "other",
    }
}

/// Labels of a request refused before it was decoded.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// `length_required`, `body_too_large`, `body_timeout`, `body_too_slow`, `body_unreadable`
    /// or `memory_budget` (a closed set: see `server.rs`; objects over the limits are denied
    /// in an AdmissionReview instead).
    pub reason: &'static str,
}

/// Labels of a certificate problem: `category` is an error category (a closed set of
/// `&'static str` names from the certificate code, e.g. `CertStateUnreadable`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabels {
    /// Stable category of the problem.
    pub category: &'static str,
}

/// Labels of a served connection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabels {
    /// The HTTP version chosen over ALPN: `h2` or `http/1.1`.
    pub protocol: &'static str,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabels {
    /// `validate` or `mutate`.
    pub mode: &'static str,
}

/// All metrics, registered once.
pub struct Metrics {
    /// Admission requests by mode, kind, operation and result.
    pub requests: Family<RequestLabels, Counter>,
    /// Handling latency in seconds.
    pub latency: Family<ModeLabels, Histogram>,
    /// Requests being handled.
    pub in_flight: Gauge,
    /// Sizes of the admission request bodies read, in bytes.
    pub body_bytes: Family<ModeLabels, Histogram>,
    /// Requests refused by a limit (body size, body deadline, memory budget), by reason.
    pub refused: Family<RefusedLabels, Counter>,
    /// Bytes of request bodies and decoded objects held now (the memory budget in use).
    pub budget_in_use_bytes: Gauge,
    /// Seconds until the served certificate expires.
    pub cert_expiry_seconds: Gauge<i64, AtomicI64>,
    /// Times a new serving certificate was loaded.
    pub cert_reloads: Counter,
    /// Times the CA signing the served certificate changed (self-managed PKI: CA rollovers).
    pub ca_rollovers: Counter,
    /// Writes of `caBundle` into webhook configurations (first injection and repairs).
    pub ca_bundle_writes: Counter,
    /// Shared certificate states not used (unreadable or inconsistent), by category.
    pub cert_state_rejected: Family<CategoryLabels, Counter>,
    /// Failed passes of certificate maintenance (the served certificate stays), by category.
    pub cert_maintenance_failures: Family<CategoryLabels, Counter>,
    /// Times a leaf from a brand-new CA was served at once after the shared state was lost,
    /// with no valid certificate to keep serving over the overlap window.
    pub new_ca_without_overlap: Counter,
    /// Connections whose TLS handshake completed, by HTTP version.
    pub connections: Family<ProtocolLabels, Counter>,
    /// The registry to encode.
    pub registry: Registry,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("koperator_webhook");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<ModeLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.00005, 2.0, 16))
        });
        let in_flight = Gauge::default();
        let body_bytes = Family::<ModeLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(1024.0, 4.0, 8))
        });
        let refused = Family::<RefusedLabels, Counter>::default();
        let budget_in_use_bytes = Gauge::default();
        let cert_expiry_seconds = Gauge::<i64, AtomicI64>::default();
        let cert_reloads = Counter::default();
        let ca_rollovers = Counter::default();
        let ca_bundle_writes = Counter::default();
        let cert_state_rejected = Family::<CategoryLabels, Counter>::default();
        let cert_maintenance_failures = Family::<CategoryLabels, Counter>::default();
        let new_ca_without_overlap = Counter::default();
        let connections = Family::<ProtocolLabels, Counter>::default();
        registry.register("requests", "Admission requests", requests.clone());
        registry.register("request_duration_seconds", "Time to answer an admission request", latency.clone());
        registry.register("requests_in_flight", "Admission requests being handled", in_flight.clone());
        registry.register("request_body_bytes", "Sizes of the admission request bodies read", body_bytes.clone());
        registry.register(
            "requests_refused",
            "Admission requests refused by a size, time or memory limit",
            refused.clone(),
        );
        registry.register(
            "memory_budget_in_use_bytes",
            "Bytes of request bodies and decoded objects held by admission requests",
            budget_in_use_bytes.clone(),
        );
        registry.register(
            "certificate_expiry_seconds",
            "Seconds until the served certificate expires",
            cert_expiry_seconds.clone(),
        );
        registry.register("certificate_reloads", "Serving certificates loaded", cert_reloads.clone());
        registry.register(
            "ca_rollovers",
            "Times the served certificate started to come from a new CA",
            ca_rollovers.clone(),
        );
        registry.register("ca_bundle_writes", "caBundle writes into webhook configurations", ca_bundle_writes.clone());
        registry.register(
            "certificate_state_rejected",
            "Shared certificate states not used because they are unreadable or inconsistent",
            cert_state_rejected.clone(),
        );
        registry.register(
            "certificate_maintenance_failures",
            "Failed passes of certificate maintenance; the served certificate stays",
            cert_maintenance_failures.clone(),
        );
        registry.register(
            "new_ca_served_without_overlap",
            "Leaves from a brand-new CA served at once after the shared state was lost",
            new_ca_without_overlap.clone(),
        );
        registry.register(
            "connections",
            "Connections served, by the HTTP version chosen over ALPN",
            connections.clone(),
        );
        Metrics {
            requests,
            latency,
            in_flight,
            body_bytes,
            refused,
            budget_in_use_bytes,
            cert_expiry_seconds,
            cert_reloads,
            ca_rollovers,
            ca_bundle_writes,
            cert_state_rejected,
            cert_maintenance_failures,
            new_ca_without_overlap,
            connections,
            registry,
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_label_is_a_closed_set() {
        for op in ["CREATE", "UPDATE", "DELETE", "CONNECT"] {
            assert_eq!(operation_label(op), op);
        }
        for op in ["", "create", "PATCH", "CREATE ", "x".repeat(1000).as_str()] {
            assert_eq!(operation_label(op), "other", "{op:?}");
        }
    }
}

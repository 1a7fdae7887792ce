//! The alert receiver (Koperator's): Prometheus or Alertmanager posts alerts, and those whose
//! `command` annotation asks for it add a broker, remove one, add a disk or grow one, through
//! the same graceful path as a spec change (the KafkaCluster controller moves partitions with
//! Cruise Control).
//!
//! Each firing acts once: repeated notifications of an alert (same label set) are recognised
//! here, and the firings acted on are recorded on the KafkaCluster with the change itself, so a
//! notification repeated after an operator restart changes nothing twice. A command that
//! cannot run now (a graceful operation or a roll under way) is tried again every
//! [`RETRY_EVERY`] while the alert fires. Only the leader listens.

mod act;
mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use koperator_shared::alerts::{self, MAX_BODY};
use serde::Serialize;
use tracing::{info, warn};

use crate::controller::Context;
pub use store::Store;

/// How often commands that could not run yet are tried again.
pub const RETRY_EVERY: Duration = Duration::from_secs(15);

/// What one notification did, alert by alert (the answer's body).
#[derive(Serialize, Default, Debug)]
pub struct Report {
    /// Commands carried out, or already carried out for this firing.
    pub acted: Vec<String>,
    /// Commands that wait (the cluster is busy); tried again while the alert fires.
    pub deferred: Vec<String>,
    /// Commands refused for good (a limit, a change the cluster cannot take); an Event says why.
    pub refused: Vec<String>,
    /// Alerts with an unknown command or incomplete labels and annotations: nothing done.
    pub invalid: Vec<String>,
    /// Notifications of a firing already handled.
    pub repeated: usize,
    /// Resolved alerts forgotten.
    pub resolved: usize,
    /// Alerts without a `command` annotation (not for the operator).
    pub ignored: usize,
}

impl Report {
    /// Adds this report to `koperator_alerts_total`.
    fn count(&self, metrics: &crate::metrics::Metrics) {
        let add = |outcome: &'static str, n: usize| {
            metrics.alerts.get_or_create(&crate::metrics::AlertLabels { outcome }).inc_by(n as u64);
        };
        add("acted", self.acted.len());
        add("deferred", self.deferred.len());
        add("refused", self.refused.len());
        add("invalid", self.invalid.len());
        add("repeated", self.repeated);
        add("resolved", self.resolved);
        add("ignored", self.ignored);
    }
}

/// The receiver's routes: `POST` on any path (Prometheus posts to `/api/v2/alerts`,
/// Alertmanager's webhook to the URL it is given).
pub fn router(ctx: Arc<Context>) -> Router {
    let handler = axum::routing::post(receive).get(|| async { (StatusCode::METHOD_NOT_ALLOWED, "POST alerts here\n") });
    Router::new()
        .route("/", handler.clone())
        .route("/{*path}", handler)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(ctx)
}

async fn receive(State(ctx): State<Arc<Context>>, body: Bytes) -> Response {
    let alerts = match alerts::parse(&body) {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, "malformed alert notification refused");
            return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
        }
    };
    let report = handle(&ctx, alerts).await;
    report.count(&ctx.metrics);
    let status = if report.invalid.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    (status, axum::Json(report)).into_response()
}

/// Handles the alerts of one notification.
pub async fn handle(ctx: &Context, alerts: Vec<alerts::Alert>) -> Report {
    let store = &ctx.alerts;
    let _one_at_a_time = store.acting.lock().await;
    let mut report = Report::default();
    let now = k8s_openapi::jiff::Timestamp::now();
    for alert in alerts {
        let name = alert.name();
        let cmd = match alerts::command(&alert) {
            Ok(None) => {
                report.ignored += 1;
                continue;
            }
            Ok(Some(cmd)) => cmd,
            Err(e) => {
                warn!(alert = %name, error = %e, "invalid alert: nothing done");
                report.invalid.push(format!("{name}: {e}"));
                continue;
            }
        };
        if alert.resolved(now) {
            store.forget(&alert);
            report.resolved += 1;
            continue;
        }
        if store.handled(&alert) {
            report.repeated += 1;
            continue;
        }
        store.hold(&alert, &cmd);
        let (cluster, outcome) = act::act(ctx, &alert, &cmd).await;
        let line = format!("{name} ({}): {}", cmd.name(), outcome.message());
        match &outcome {
            act::Outcome::Done(_) => report.acted.push(line),
            act::Outcome::Deferred(_) => report.deferred.push(line),
            act::Outcome::Refused(_) => report.refused.push(line),
        }
        store.settle(&alert, cluster, &outcome);
    }
    report
}

/// Tries the deferred commands again every [`RETRY_EVERY`] (runs forever).
pub async fn retry_deferred(ctx: Arc<Context>) {
    let mut tick = tokio::time::interval(RETRY_EVERY);
    loop {
        tick.tick().await;
        let pending = ctx.alerts.deferred();
        if pending.is_empty() {
            continue;
        }
        info!(alerts = pending.len(), "trying deferred alert commands again");
        handle(&ctx, pending).await;
    }
}

//! The HTTPS server: axum routes over tokio-rustls (HTTP/1.1 via ALPN), with the request
//! limits of the AdmissionReview contract.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, Limited};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::admission::{Admission, Mode, Route, result_label};
use crate::certs::CertStatus;
use crate::metrics::{Metrics, ModeLabels, RequestLabels};
use crate::review;
use koperator_shared::api::Kind;

/// Largest accepted body (the API server's own limit for admission requests is 3 MiB objects).
pub const MAX_BODY: usize = 7 * 1024 * 1024;
/// Default deadline when the API server sends no `timeout` parameter.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

/// State shared by the handlers.
#[derive(Clone)]
pub struct AppState {
    /// Admission logic.
    pub admission: Arc<Admission>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Certificate status (readiness).
    pub certs: Arc<CertStatus>,
}

/// The router: `/validate-<kind>`, `/mutate-<kind>`, `/healthz`, `/readyz`, `/metrics`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/{route}", post(admit))
        .with_state(state)
}

async fn readyz(State(st): State<AppState>) -> Response {
    if st.certs.ready.load(Ordering::SeqCst) {
        "ok".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the served certificate is not yet trusted by every owned webhook configuration",
        )
            .into_response()
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], st.metrics.encode())
        .into_response()
}

#[derive(Deserialize)]
struct TimeoutParam {
    timeout: Option<String>,
}

/// The API server's `timeout` (e.g. `5s`) minus a margin, so that we answer before it gives up.
fn deadline(param: Option<&str>) -> Duration {
    param
        .and_then(|t| humantime::parse_duration(t).ok())
        .map(|t| t.saturating_sub(Duration::from_millis(250)).max(Duration::from_millis(100)))
        .unwrap_or(DEFAULT_DEADLINE)
}

fn plain(code: StatusCode, msg: String) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], msg).into_response()
}

async fn admit(
    State(st): State<AppState>,
    Path(route): Path<String>,
    Query(q): Query<TimeoutParam>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(route) = Route::all().into_iter().find(|r| r.path()[1..] == route) else {
        return plain(StatusCode::NOT_FOUND, format!("no webhook at /{route}"));
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if content_type.split(';').next().map(str::trim) != Some("application/json") {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected Content-Type application/json, got {content_type:?}"),
        );
    }
    let started = Instant::now();
    st.metrics.in_flight.inc();
    let _in_flight = InFlight(&st.metrics);
    let limit = deadline(q.timeout.as_deref());
    let bytes = match tokio::time::timeout(limit, Limited::new(body, MAX_BODY).collect()).await {
        Err(_) => return plain(StatusCode::REQUEST_TIMEOUT, format!("the body did not arrive within {limit:?}")),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return plain(StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {MAX_BODY} bytes"));
        }
        Ok(Err(e)) => return plain(StatusCode::BAD_REQUEST, format!("could not read the body: {e}")),
        Ok(Ok(c)) => c.to_bytes(),
    };
    let req = match review::decode(&bytes) {
        Ok(r) => r,
        Err(e) => {
            st.metrics
                .requests
                .get_or_create(&RequestLabels {
                    mode: route.mode.as_str(),
                    kind: route.kind.as_str(),
                    operation: String::new(),
                    result: "bad_request",
                })
                .inc();
            return plain(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    // KafkaTopic validation may ask Kafka (blocking, with its own time budget): off the runtime.
    let (response, req) = if route.kind == Kind::KafkaTopic && route.mode == Mode::Validate {
        let (admission, uid) = (st.admission.clone(), req.uid.clone());
        match tokio::task::spawn_blocking(move || (admission.handle(route, &req), req)).await {
            Ok(done) => done,
            Err(e) => {
                return plain(StatusCode::INTERNAL_SERVER_ERROR, format!("request {uid}: the topic check failed: {e}"));
            }
        }
    } else {
        (st.admission.handle(route, &req), req)
    };
    let result = result_label(&response);
    st.metrics
        .requests
        .get_or_create(&RequestLabels {
            mode: route.mode.as_str(),
            kind: route.kind.as_str(),
            operation: req.operation.clone(),
            result,
        })
        .inc();
    st.metrics
        .latency
        .get_or_create(&ModeLabels { mode: route.mode.as_str() })
        .observe(started.elapsed().as_secs_f64());
    debug!(path = route.path(), uid = req.uid, result, "admission");
    axum::Json(response.into_review()).into_response()
}

struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.dec();
    }
}

/// TLS settings: the resolver's certificate, HTTP/1.1 only.
pub fn tls_config(certs: &CertStatus) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(certs.served.clone());
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(cfg)
}

/// Serves `app` over TLS on `listener` until `shutdown` resolves, then lets open requests
/// finish (up to 10 s).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    max_connections: usize,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // Past `max_connections` open connections, new ones wait in the kernel's accept queue
    // instead of each getting a task and a TLS handshake at once.
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => { warn!(error = %e, "accept failed"); continue; }
            },
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10)).keep_alive(true);
            let builder = builder.http1_only();
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_keeps_a_margin_below_the_api_server_timeout() {
        assert_eq!(deadline(Some("5s")), Duration::from_millis(4750));
        assert_eq!(deadline(Some("garbage")), DEFAULT_DEADLINE);
        assert_eq!(deadline(None), DEFAULT_DEADLINE);
        assert_eq!(deadline(Some("100ms")), Duration::from_millis(100));
    }
}

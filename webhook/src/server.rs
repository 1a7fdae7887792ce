//! The HTTPS server: axum routes over tokio-rustls (HTTP/2 or HTTP/1.1, chosen over ALPN), with
//! the request limits of the AdmissionReview contract.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Deserialize;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::admission::{Admission, Mode, Precheck, Route, result_label};
use crate::certs::CertStatus;
use crate::limits::{self, Budget, BudgetError, Held};
use crate::metrics::{Metrics, ModeLabels, ProtocolLabels, RefusedLabels, RequestLabels, operation_label};
use crate::review;
use koperator_shared::api::Kind;

/// Largest accepted body: 7 MiB. What the API server sends is bounded by its request limit
/// (3 MiB, `--max-request-bytes`) for `object` and by etcd's (1.5 MiB by default) for the
/// stored `oldObject`; a JSON patch may grow an object by up to the request limit again
/// (the API server caps copies at it), and Go's JSON encoder writes `<`, `>` and `&` as 6-byte
/// escapes. `hostile_clients_e2e::the_largest_update_the_api_server_sends_fits` measures a
/// 2.9 MiB object updated over a 1.4 MiB one through the real API server (4.3 MiB on the wire).
pub const MAX_BODY: usize = 7 * 1024 * 1024;
/// Default deadline when the API server sends no `timeout` parameter.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);
/// Longest body deadline: the API server never waits longer than 30 s for a webhook
/// (`timeoutSeconds` is at most 30), so a longer `timeout` parameter is a client stalling.
pub const MAX_DEADLINE: Duration = Duration::from_secs(30);
/// Time for a TLS handshake, from accept.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to receive a request's headers, and how long a kept-alive connection may stay idle.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection older than this is closed once its request is answered (idle: at once).
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(60);
/// A connection still busy this long after [`MAX_CONNECTION_AGE`] (a client that does not
/// read its answer) is dropped: every slot frees within the sum of the two.
pub const CONNECTION_CLOSE_GRACE: Duration = Duration::from_secs(40);
/// TLS handshakes in progress at once. Past it, new connections wait in the kernel's accept
/// queue (no memory of ours) while connections already set up are served as usual. Under a
/// new-connection flood the server accepts faster than it completes handshakes, and each
/// accepted one held its buffers (about 20 KiB) until its turn came: with one per connection
/// slot (4,096) that was 145 MiB. The bound must stay well above what slow clients can hold
/// (a stalled handshake keeps its slot up to [`TLS_HANDSHAKE_TIMEOUT`]): at 512, the
/// hostile-clients test's 333 stalled handshakes leave room for the API server's.
pub const MAX_HANDSHAKES: usize = 512;
/// Concurrent requests (streams) on one HTTP/2 connection. Go's HTTP/2 client (the API
/// server's) opens another connection when a connection has no stream left.
pub const H2_MAX_STREAMS: u32 = 64;
/// Flow-control windows of HTTP/2: what a client may send ahead of what a handler has read
/// (per stream, per connection). Bodies are charged to the memory budget as they are read, so
/// these bound what sits unread in a connection's buffers.
pub const H2_STREAM_WINDOW: u32 = 256 * 1024;
/// See [`H2_STREAM_WINDOW`].
pub const H2_CONNECTION_WINDOW: u32 = 512 * 1024;
/// Largest request head (HTTP/1.1 buffer, HTTP/2 header list).
const MAX_HEAD: usize = 64 * 1024;
/// Default of `--memory-budget`: bodies and decoded objects of every request in flight. A
/// quarter (12 MiB) is for bodies, one largest body and small ones beside it; the rest
/// (36 MiB) one object at [`limits::MAX_DECODED_BYTES`] decoded [`limits::DECODED_COPIES`]
/// times. A body is charged as its bytes arrive, and must arrive at `--min-body-rate` (see
/// [`read_body`]).
pub const DEFAULT_MEMORY_BUDGET: usize = 48 * 1024 * 1024;

/// State shared by the handlers.
#[derive(Clone)]
pub struct AppState {
    /// Admission logic.
    pub admission: Arc<Admission>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Certificate status (readiness).
    pub certs: Arc<CertStatus>,
    /// Memory shared by the requests in flight.
    pub budget: Budget,
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
    if st.certs.ready() {
        "ok".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no valid served certificate whose CA every owned webhook configuration has trusted",
        )
            .into_response()
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    st.metrics.budget_in_use_bytes.set((st.budget.total() - st.budget.available()) as i64);
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], st.metrics.encode())
        .into_response()
}

#[derive(Deserialize)]
struct TimeoutParam {
    timeout: Option<String>,
}

/// The API server's `timeout` (e.g. `5s`) minus a margin, so that we answer before it gives
/// up; at most [`MAX_DEADLINE`].
fn deadline(param: Option<&str>) -> Duration {
    param
        .and_then(|t| humantime::parse_duration(t).ok())
        .map(|t| t.min(MAX_DEADLINE).saturating_sub(Duration::from_millis(250)).max(Duration::from_millis(100)))
        .unwrap_or(DEFAULT_DEADLINE)
}

fn plain(code: StatusCode, msg: String) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], msg).into_response()
}

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("the body is larger than {MAX_BODY} bytes")]
    TooLarge,
    #[error("the body did not arrive within {0:?}")]
    Timeout(Duration),
    #[error(
        "the body of {declared} bytes did not arrive within {within:?} (too slow: at least {rate} bytes/s are required)"
    )]
    TooSlow { declared: usize, within: Duration, rate: u64 },
    #[error(transparent)]
    Budget(#[from] BudgetError),
    #[error("could not read the body: {0}")]
    Read(String),
}

impl BodyError {
    /// The `reason` label of `requests_refused`.
    fn reason(&self) -> &'static str {
        match self {
            BodyError::TooLarge => "body_too_large",
            BodyError::Timeout(_) => "body_timeout",
            BodyError::TooSlow { .. } => "body_too_slow",
            BodyError::Budget(_) => "memory_budget",
            BodyError::Read(_) => "body_unreadable",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge | BodyError::Budget(BudgetError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Timeout(_) | BodyError::TooSlow { .. } => StatusCode::REQUEST_TIMEOUT,
            BodyError::Budget(BudgetError::Busy { .. }) => StatusCode::SERVICE_UNAVAILABLE,
            BodyError::Read(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// Reads a body of `declared` bytes (its `Content-Length`) until `deadline`: a large body is
/// first admitted to the budget by its declared size ([`Budget::admit_body`], waiting for
/// other requests, first come first served, until there is just time left to read it at the
/// minimum rate; 503 after that), then every body is charged as it arrives
/// ([`Budget::charge_body`]: what its buffer grows by, at most twice what has arrived and at
/// most `declared`).
///
/// The body must arrive at the minimum rate: by `min(deadline, start + BODY_GRACE + declared
/// / --min-body-rate)` ([`Budget::body_deadline`]; `start` is when its reading starts, after
/// admission), or the request is refused (408) and its bytes are given back at once (the
/// caller drops `held`). A client announcing 1 MiB and sending a byte a second holds a few
/// bytes of the budget for 2 s by default, and one announcing 7 MiB the pool of large bodies
/// for 8 s, not the 30 s a `timeout` allows.
async fn read_body(
    mut body: Body,
    declared: usize,
    budget: &Budget,
    held: &mut Held,
    limit: Duration,
    deadline: Instant,
) -> Result<Vec<u8>, BodyError> {
    // A large body admitted too late to be read by `deadline` at the minimum rate would only
    // be cut off (408) after holding the pool: past that point it is refused as busy (503).
    let now = Instant::now();
    let admit_by = deadline.checked_sub(budget.body_deadline(now, declared) - now).unwrap_or(now);
    budget.admit_body(held, declared, admit_by).await?;
    let started = Instant::now();
    let by = budget.body_deadline(started, declared);
    let (until, slow) = if by < deadline { (by, true) } else { (deadline, false) };
    let late = || {
        if slow {
            BodyError::TooSlow { declared, within: until - started, rate: budget.min_body_rate() }
        } else {
            BodyError::Timeout(limit)
        }
    };
    let mut out = Vec::new();
    loop {
        let frame = match tokio::time::timeout_at(until.into(), body.frame()).await {
            Err(_) => return Err(late()),
            Ok(None) => return Ok(out),
            Ok(Some(Err(e))) => return Err(BodyError::Read(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > declared {
                return Err(BodyError::TooLarge);
            }
            if out.capacity() - out.len() < data.len() {
                // Grown with what arrives (doubling, at most to `declared`), and charged what
                // it grows by: a client that announces much and sends little costs little.
                let want = (out.capacity() * 2).max(out.len() + data.len()).min(declared);
                budget.charge_body(held, want - out.capacity(), until).await?;
                out.reserve_exact(want - out.len());
            }
            out.extend_from_slice(&data);
        }
    }
}

fn refuse(st: &AppState, reason: &'static str, code: StatusCode, msg: String) -> Response {
    st.metrics.refused.get_or_create(&RefusedLabels { reason }).inc();
    debug!(reason, %code, msg, "admission request refused");
    plain(code, msg)
}

/// [`refuse`], and close the connection after the answer: the body was not read (or not
/// all of it), so the connection cannot carry another request.
fn refuse_and_close(st: &AppState, reason: &'static str, code: StatusCode, msg: String) -> Response {
    let mut r = refuse(st, reason, code, msg);
    r.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    r
}

async fn admit(
    State(st): State<AppState>,
    Path(route): Path<String>,
    Query(q): Query<TimeoutParam>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(route) = Route::all().into_iter().find(|r| r.path()[1..] == route) else {
        return plain(StatusCode::NOT_FOUND, format!("no webhook at /{}", route.chars().take(64).collect::<String>()));
    };
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if content_type.split(';').next().map(str::trim) != Some("application/json") {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected Content-Type application/json, got {content_type:?}"),
        );
    }
    // The API server always sends a Content-Length; a body without one (chunked) could only
    // be charged the largest size before it arrives.
    let Some(declared) = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
    else {
        return refuse_and_close(
            &st,
            "length_required",
            StatusCode::LENGTH_REQUIRED,
            "an admission review needs a Content-Length".to_string(),
        );
    };
    if declared > MAX_BODY {
        return refuse_and_close(&st, "body_too_large", StatusCode::PAYLOAD_TOO_LARGE, BodyError::TooLarge.to_string());
    }
    let started = Instant::now();
    st.metrics.in_flight.inc();
    let _in_flight = InFlight(&st.metrics);
    let limit = deadline(q.timeout.as_deref());
    let until = started + limit;
    let mut held = Held::default();
    let bytes = match read_body(body, declared, &st.budget, &mut held, limit, until).await {
        Ok(b) => b,
        Err(e) => {
            // Give the bytes back before the answer is written.
            drop(held);
            return refuse_and_close(&st, e.reason(), e.status(), e.to_string());
        }
    };
    st.metrics.body_bytes.get_or_create(&ModeLabels { mode: route.mode.as_str() }).observe(bytes.len() as f64);
    let decoded = review::decode(&bytes);
    // The raw object and oldObject are copies of the body: it is not needed any more, and
    // the bytes charged for it stand for them.
    drop(bytes);
    let req = match decoded {
        Ok(r) => r,
        Err(e) => {
            st.metrics
                .requests
                .get_or_create(&RequestLabels {
                    mode: route.mode.as_str(),
                    kind: route.kind.as_str(),
                    operation: "other",
                    result: "bad_request",
                })
                .inc();
            return plain(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let operation = operation_label(&req.operation);
    let response = match st.admission.precheck(route, &req) {
        Precheck::Answered(r) => r,
        Precheck::Decode { kind, decoded_bytes } => {
            let needed = decoded_bytes.saturating_mul(limits::DECODED_COPIES);
            if let Err(e) = st.budget.reserve_decoded(&mut held, needed, until).await {
                let code = match e {
                    BudgetError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                    BudgetError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
                };
                return refuse(&st, "memory_budget", code, e.to_string());
            }
            // KafkaTopic validation may ask Kafka (blocking, with its own time budget): off
            // the runtime.
            if route.kind == Kind::KafkaTopic && route.mode == Mode::Validate {
                let admission = st.admission.clone();
                let uid = req.uid.clone();
                match tokio::task::spawn_blocking(move || (admission.decide(route, kind, &req), req)).await {
                    Ok((r, _)) => r,
                    Err(e) => {
                        return plain(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            format!("request {uid}: the topic check failed: {e}"),
                        );
                    }
                }
            } else {
                st.admission.decide(route, kind, &req)
            }
        }
    };
    let result = result_label(&response);
    st.metrics
        .requests
        .get_or_create(&RequestLabels { mode: route.mode.as_str(), kind: route.kind.as_str(), operation, result })
        .inc();
    st.metrics
        .latency
        .get_or_create(&ModeLabels { mode: route.mode.as_str() })
        .observe(started.elapsed().as_secs_f64());
    debug!(path = route.path(), uid = response.uid, result, "admission");
    let out = axum::Json(response.into_review()).into_response();
    drop(held);
    out
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
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(cfg)
}

/// Serves `app` over TLS on `listener` until `shutdown` resolves, drains for `drain`, then
/// stops accepting and lets open requests finish (up to [`IN_FLIGHT_GRACE`]).
///
/// Draining is what makes a rollout or a node drain lose no admission: when the Pod is deleted
/// (SIGTERM), the API server may still dial this replica until its EndpointSlice drops it, and
/// still holds kept-alive connections to it. So for `drain` the server keeps accepting and
/// answering, `/readyz` answers 503 (the endpoint turns not-ready, as it would for a replica
/// stopped without its Pod being deleted), every HTTP/1.1 answer carries `Connection: close`,
/// and every HTTP/2 connection gets a GOAWAY (streams already started are answered, new ones
/// go to a new connection), so the API server moves its connections to the other replicas
/// instead of racing a close of an idle connection it is about to reuse (a write into a closed
/// connection fails the admission: HTTP clients do not resend a POST). Only then is the
/// listener closed. The Pod's `terminationGracePeriodSeconds` must exceed `drain` plus
/// [`IN_FLIGHT_GRACE`].
///
/// At most `max_connections` connections are served at once, and at most [`MAX_HANDSHAKES`] of
/// them are in their TLS handshake; past that, new ones wait in the kernel's accept queue. Every slot frees within a bounded time: the TLS handshake within
/// [`TLS_HANDSHAKE_TIMEOUT`], HTTP/1.1 request headers (and idle keep-alive) within
/// [`HEADER_READ_TIMEOUT`] (an HTTP/2 peer that stops answering pings within it), a body within its deadline (at most [`MAX_DEADLINE`], and at most
/// its size at `--min-body-rate` plus [`limits::BODY_GRACE`]), and a
/// connection past [`MAX_CONNECTION_AGE`] is closed after its answer, or dropped
/// [`CONNECTION_CLOSE_GRACE`] later.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    max_connections: usize,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
    connections: Family<ProtocolLabels, Counter>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let draining = Arc::new(AtomicBool::new(false));
    let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    let app = app.layer(axum::middleware::from_fn_with_state(draining.clone(), while_draining));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let max_connections = max_connections.max(1);
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    tokio::pin!(shutdown);
    // Set when the shutdown signal came: the end of the drain.
    let mut drained: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown, if drained.is_none() => {
                drained = Some(start_drain(&draining, &drain_tx, drain));
                continue;
            }
            _ = async { drained.as_mut().expect("guarded").await }, if drained.is_some() => break,
            permits = async {
                let slot = slots.clone().acquire_owned().await;
                let handshake = handshakes.clone().acquire_owned().await;
                (slot, handshake)
            } => match permits {
                (Ok(slot), Ok(handshake)) => (slot, handshake),
                _ => unreachable!("the semaphores are never closed"),
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown, if drained.is_none() => {
                drained = Some(start_drain(&draining, &drain_tx, drain));
                continue;
            }
            _ = async { drained.as_mut().expect("guarded").await }, if drained.is_some() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    // EMFILE and the like: do not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        let stop = stop_rx.clone();
        let drain_rx = drain_rx.clone();
        let connections = connections.clone();
        tokio::spawn(async move {
            let (_slot, handshake) = permit;
            let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
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
            drop(handshake);
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            connections.get_or_create(&ProtocolLabels { protocol: if h2 { "h2" } else { "http/1.1" } }).inc();
            // Boxed: a connection waiting for its handshake holds a small task, not the
            // served connection's state (about 5 KiB) as well.
            Box::pin(serve_connection(tls, h2, service, stop, drain_rx)).await;
        });
    }
    drop(listener);
    info!(open = max_connections - slots.available_permits(), "stopped accepting connections; finishing open requests");
    let _ = stop_tx.send(true);
    // Every connection holds a slot until it ends.
    let _ = tokio::time::timeout(IN_FLIGHT_GRACE, slots.acquire_many(max_connections as u32)).await;
}

/// How long open requests may take to finish once the listener is closed.
pub const IN_FLIGHT_GRACE: Duration = Duration::from_secs(10);

fn start_drain(
    draining: &AtomicBool,
    drain_tx: &tokio::sync::watch::Sender<bool>,
    drain: Duration,
) -> std::pin::Pin<Box<tokio::time::Sleep>> {
    draining.store(true, Ordering::SeqCst);
    let _ = drain_tx.send(true);
    if !drain.is_zero() {
        info!(
            ?drain,
            "shutting down: not ready, still serving (each answer closes its connection) so that the \
             Service's endpoints drop this replica before it stops accepting"
        );
    }
    Box::pin(tokio::time::sleep(drain))
}

/// While draining: `/readyz` is 503 and every HTTP/1.1 answer closes its connection (HTTP/2
/// connections get a GOAWAY instead; see [`serve`]).
async fn while_draining(
    State(draining): State<Arc<AtomicBool>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !draining.load(Ordering::Relaxed) {
        return next.run(request).await;
    }
    let version = request.version();
    let mut response = if request.uri().path() == "/readyz" {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
    } else {
        next.run(request).await
    };
    if version != Version::HTTP_2 {
        response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    }
    response
}

/// One connection (HTTP/2 when `h2` was chosen over ALPN, else HTTP/1.1) with its lifetime
/// bounds (see [`serve`]).
async fn serve_connection(
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    h2: bool,
    service: TowerToHyperService<Router>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut draining: tokio::sync::watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .max_header_list_size(MAX_HEAD as u32)
        .keep_alive_interval(HEADER_READ_TIMEOUT)
        .keep_alive_timeout(HEADER_READ_TIMEOUT);
    // ALPN decided the version: no sniffing of the first bytes.
    let builder = if h2 { builder.http2_only() } else { builder.http1_only() };
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let aged = tokio::time::sleep(MAX_CONNECTION_AGE);
    tokio::pin!(aged);
    let mut closing: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = &mut aged, if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some(Box::pin(tokio::time::sleep(CONNECTION_CLOSE_GRACE)));
            }
            _ = stop.wait_for(|s| *s), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some(Box::pin(tokio::time::sleep(IN_FLIGHT_GRACE)));
            }
            // HTTP/2 drains by GOAWAY; the connection ends once its streams are answered.
            _ = draining.wait_for(|d| *d), if h2 && closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some(Box::pin(tokio::time::sleep(IN_FLIGHT_GRACE)));
            }
            _ = async { closing.as_mut().expect("guarded").await }, if closing.is_some() => {
                debug!("connection dropped: its answer was not taken within the close grace");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client of `serve` over TLS trusting the test's self-signed certificate.
    async fn connect(
        port: u16,
        roots: &rustls::RootCertStore,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await
    }

    /// `GET path` on a kept-alive connection: the status code, whether the answer closes the
    /// connection, and whether the server then closed it.
    async fn http_get(
        tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
        path: &str,
    ) -> (u16, bool, bool) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        tls.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        let head = loop {
            let n = tls.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed before an answer");
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0usize);
                if body.len() >= length {
                    break head.to_ascii_lowercase();
                }
            }
        };
        let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let close = head.lines().any(|l| l == "connection: close");
        // A closed connection reads EOF (or fails: the server may skip close_notify); a kept one
        // stays silent.
        let closed = matches!(
            tokio::time::timeout(Duration::from_millis(300), tls.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        );
        (code, close, closed)
    }

    /// A server configuration with a self-signed certificate for `localhost` offering `alpn`,
    /// and the roots that trust it.
    fn self_signed(alpn: &[&[u8]]) -> (rustls::ServerConfig, rustls::RootCertStore) {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(signing_key.serialize_der()).unwrap();
        let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key)
            .unwrap();
        tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        (tls, roots)
    }

    /// A server with `/readyz` and `/healthz` offering `alpn`, draining for `drain` once
    /// `signal` is sent.
    struct DrainingServer {
        port: u16,
        roots: rustls::RootCertStore,
        signal: tokio::sync::oneshot::Sender<()>,
        server: tokio::task::JoinHandle<()>,
        connections: Family<ProtocolLabels, Counter>,
    }

    async fn draining_server(alpn: &[&[u8]], drain: Duration) -> DrainingServer {
        let (tls, roots) = self_signed(alpn);
        let app = Router::new().route("/readyz", get(|| async { "ok" })).route("/healthz", get(|| async { "ok" }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (signal, shutdown) = tokio::sync::oneshot::channel::<()>();
        let connections = Family::<ProtocolLabels, Counter>::default();
        let server = tokio::spawn(serve(
            listener,
            Arc::new(tls),
            app,
            16,
            async move {
                let _ = shutdown.await;
            },
            drain,
            connections.clone(),
        ));
        DrainingServer { port, roots, signal, server, connections }
    }

    type H2 = hyper::client::conn::http2::SendRequest<http_body_util::Empty<axum::body::Bytes>>;

    /// An HTTP/2 client connection (ALPN `h2`) and the task driving it (it ends with the
    /// connection).
    async fn h2_connect(port: u16, roots: &rustls::RootCertStore) -> (H2, tokio::task::JoinHandle<()>) {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
        (
            sender,
            tokio::spawn(async move {
                let _ = conn.await;
            }),
        )
    }

    /// `GET path` as one HTTP/2 stream: the status and whether the answer has a Connection header.
    async fn h2_get(sender: &mut H2, path: &str) -> Result<(u16, bool), hyper::Error> {
        let request = hyper::Request::get(format!("https://localhost{path}"))
            .body(http_body_util::Empty::<axum::body::Bytes>::new())
            .unwrap();
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        Ok((response.status().as_u16(), response.headers().contains_key(header::CONNECTION)))
    }

    #[tokio::test]
    async fn http2_connections_get_a_goaway_when_the_drain_starts() {
        let drain = Duration::from_secs(3);
        let DrainingServer { port, roots, signal, server, connections } =
            draining_server(&[b"h2", b"http/1.1"], drain).await;
        let (mut kept, driver) = h2_connect(port, &roots).await;
        // Several streams at once on the one connection.
        let answers = futures::future::join_all((0..8).map(|_| {
            let mut s = kept.clone();
            async move { h2_get(&mut s, "/healthz").await.unwrap() }
        }))
        .await;
        assert!(answers.iter().all(|a| *a == (200, false)), "{answers:?}");

        signal.send(()).unwrap();
        let signalled = Instant::now();
        // GOAWAY: the client's connection ends long before the drain does...
        tokio::time::timeout(Duration::from_secs(1), driver).await.expect("no GOAWAY within 1 s").unwrap();
        assert!(h2_get(&mut kept, "/healthz").await.is_err(), "a stream started after the GOAWAY");
        // ...while new connections are still served (not ready), without HTTP/1.1's header.
        let (mut new, _) = h2_connect(port, &roots).await;
        assert_eq!(h2_get(&mut new, "/readyz").await.unwrap(), (503, false));
        assert!(signalled.elapsed() < drain, "the checks took longer than the drain: make it longer");
        assert_eq!(connections.get_or_create(&ProtocolLabels { protocol: "h2" }).get(), 2);
        tokio::time::timeout(drain + Duration::from_secs(5), server).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn handshakes_in_progress_are_bounded_and_set_up_connections_still_served() {
        // Both ends of every silent connection live in this process.
        koperator_e2e::load::raise_open_files_limit();
        let (tls, roots) = self_signed(&[b"http/1.1"]);
        let app = Router::new().route("/healthz", get(|| async { "ok" }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(serve(
            listener,
            Arc::new(tls),
            app,
            4096,
            std::future::pending(),
            Duration::ZERO,
            Family::default(),
        ));
        let mut set_up = connect(port, &roots).await.unwrap();
        // Clients that connect and never send their hello hold every handshake slot.
        let mut silent = Vec::new();
        for _ in 0..MAX_HANDSHAKES {
            silent.push(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let waiting = tokio::spawn(async move { connect(port, &roots).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!waiting.is_finished(), "a handshake past the bound went ahead");
        // A connection set up before is served meanwhile.
        assert_eq!(http_get(&mut set_up, "/healthz").await, (200, false, false));
        // One slot frees: the waiting client's handshake completes.
        drop(silent.pop());
        tokio::time::timeout(Duration::from_secs(2), waiting).await.expect("still waiting").unwrap().unwrap();
    }

    #[tokio::test]
    async fn on_shutdown_the_server_drains_not_ready_then_stops_accepting() {
        let drain = Duration::from_secs(2);
        let DrainingServer { port, roots, signal, server, .. } = draining_server(&[b"http/1.1"], drain).await;

        // Before: ready, connections kept alive.
        let mut kept = connect(port, &roots).await.unwrap();
        assert_eq!(http_get(&mut kept, "/readyz").await, (200, false, false));
        let mut idle = connect(port, &roots).await.unwrap();
        assert_eq!(http_get(&mut idle, "/healthz").await, (200, false, false));

        signal.send(()).unwrap();
        let signalled = Instant::now();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Draining: not ready, still answering on kept-alive and on new connections, each
        // answer closing its connection; an idle connection is left open meanwhile.
        assert_eq!(http_get(&mut kept, "/readyz").await, (503, true, true));
        let mut new = connect(port, &roots).await.unwrap();
        assert_eq!(http_get(&mut new, "/healthz").await, (200, true, true));
        assert!(signalled.elapsed() < drain, "the checks took longer than the drain: make it longer");
        assert_eq!(http_get(&mut idle, "/healthz").await, (200, true, true));

        // After the drain: the listener is closed and the server returns.
        tokio::time::timeout(drain + Duration::from_secs(5), server).await.unwrap().unwrap();
        assert!(signalled.elapsed() >= drain);
        assert!(connect(port, &roots).await.is_err(), "still accepting after the drain");
    }

    #[tokio::test]
    async fn without_a_drain_the_server_stops_accepting_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tls = tls_config(&CertStatus::new());
        serve(listener, tls, Router::new(), 4, async {}, Duration::ZERO, Family::default()).await;
        assert!(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err());
    }

    #[test]
    fn deadline_keeps_a_margin_below_the_api_server_timeout() {
        assert_eq!(deadline(Some("5s")), Duration::from_millis(4750));
        assert_eq!(deadline(Some("garbage")), DEFAULT_DEADLINE);
        assert_eq!(deadline(None), DEFAULT_DEADLINE);
        assert_eq!(deadline(Some("100ms")), Duration::from_millis(100));
        // A client cannot keep a body slot longer than the API server would wait.
        assert_eq!(deadline(Some("30s")), Duration::from_millis(29750));
        assert_eq!(deadline(Some("1h")), Duration::from_millis(29750));
    }

    #[tokio::test]
    async fn a_large_body_that_could_not_be_read_in_time_is_busy_not_admitted_late() {
        let budget = Budget::new(DEFAULT_MEMORY_BUDGET);
        let declared = 6 * 1024 * 1024;
        // Another large body holds the pool for a while.
        let mut other = Held::default();
        budget.admit_body(&mut other, declared, Instant::now()).await.unwrap();
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(other);
        });
        // 6 MiB takes 7 s at the default rate: a request due in 5 s is refused at once, not
        // admitted when the pool frees and then cut off while being read.
        let started = Instant::now();
        let mut held = Held::default();
        let body = Body::from(vec![b' '; declared]);
        let due = Instant::now() + Duration::from_secs(5);
        let err = read_body(body, declared, &budget, &mut held, Duration::from_secs(5), due).await.unwrap_err();
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE, "{err}");
        assert!(started.elapsed() < Duration::from_millis(200), "waited {:?}", started.elapsed());
        release.await.unwrap();
        // With time to read it, the same body waits for the pool and is read.
        let body = Body::from(vec![b' '; declared]);
        let due = Instant::now() + Duration::from_secs(20);
        let read = read_body(body, declared, &budget, &mut held, Duration::from_secs(20), due).await.unwrap();
        assert_eq!(read.len(), declared);
    }
}

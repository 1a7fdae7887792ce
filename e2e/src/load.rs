//! An open-loop HTTPS load generator for the admission webhook (`make bench`).
//!
//! Requests are scheduled at a fixed rate and each one's latency is measured from the moment it
//! was *scheduled*, not sent, so a slow server cannot hide its backlog (no coordinated
//! omission). Three modes: `KeepAlive` spreads requests over a few persistent HTTP/1.1
//! connections; `H2` multiplexes them as concurrent streams over a few HTTP/2 connections (what
//! the API server's Go client does when the webhook offers `h2` over ALPN); `NewConnection`
//! opens a TCP + TLS connection per request (`Connection: close`).
//! Latencies go into an HDR histogram (µs, 3 significant digits).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Connection handling of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Persistent connections, `connections` of them.
    KeepAlive { connections: usize },
    /// Persistent HTTP/2 connections, `connections` of them; every request is a stream of its
    /// own, sent when scheduled (as many in flight as the server's stream limit allows).
    H2 { connections: usize },
    /// A new TCP + TLS connection per request.
    NewConnection,
}

/// What to send where.
#[derive(Clone)]
pub struct Target {
    /// `127.0.0.1:<port>`.
    pub addr: SocketAddr,
    /// TLS server name (a DNS name or the IP).
    pub server_name: String,
    /// Request path, e.g. `/validate-kafkacluster`.
    pub path: String,
    /// The AdmissionReview body.
    pub body: Arc<Vec<u8>>,
    /// TLS settings trusting the webhook's CA.
    pub tls: Arc<rustls::ClientConfig>,
}

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Requests scheduled.
    pub sent: u64,
    /// Answered with HTTP 200.
    pub ok: u64,
    /// Failed (connection, TLS, timeout or non-200).
    pub errors: u64,
    /// First error seen, if any.
    pub first_error: Option<String>,
    /// Completed requests per second over the run.
    pub achieved_rate: f64,
    /// Latency percentiles in µs: p50, p90, p99, p99.9, max.
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// A rustls client configuration trusting the PEM CA bundle `ca_pem`.
pub fn tls_trusting(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

type Conn = TlsStream<TcpStream>;

async fn connect(t: &Target) -> Result<Conn> {
    connect_with(t, t.tls.clone()).await
}

async fn connect_with(t: &Target, tls: Arc<rustls::ClientConfig>) -> Result<Conn> {
    let tcp = TcpStream::connect(t.addr).await?;
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from(t.server_name.clone())?;
    Ok(TlsConnector::from(tls).connect(name, tcp).await?)
}

type H2Sender = hyper::client::conn::http2::SendRequest<http_body_util::Full<bytes::Bytes>>;

/// An HTTP/2 connection to `t` (fails when the server does not choose `h2` over ALPN).
pub async fn connect_h2(t: &Target) -> Result<H2Sender> {
    let mut tls = (*t.tls).clone();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let conn = connect_with(t, Arc::new(tls)).await?;
    if conn.get_ref().1.alpn_protocol() != Some(b"h2") {
        bail!("the server did not choose h2 over ALPN");
    }
    let (sender, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(conn))
            .await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends the review of `t` as one HTTP/2 stream; `Ok(status)` once the whole answer is read.
pub async fn exchange_h2(sender: &mut H2Sender, t: &Target, body: bytes::Bytes) -> Result<u16> {
    use http_body_util::BodyExt;
    let request = hyper::Request::post(format!("https://{}{}?timeout=10s", t.server_name, t.path))
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(http_body_util::Full::new(body))?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok(status)
}

/// Sends one request on `conn` and reads the whole response; `Ok(status)`.
async fn exchange(conn: &mut Conn, t: &Target, close: bool, buf: &mut Vec<u8>) -> Result<u16> {
    let head = format!(
        "POST {}?timeout=10s HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
        t.path,
        t.server_name,
        t.body.len(),
        if close { "Connection: close\r\n" } else { "" }
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(&t.body).await?;
    conn.flush().await?;
    buf.clear();
    let mut chunk = [0u8; 8192];
    loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed before the response ended");
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = std::str::from_utf8(&buf[..end]).map_err(|_| anyhow!("response head is not UTF-8"))?;
        let status: u16 =
            head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| anyhow!("bad status line"))?;
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
            })
            .ok_or_else(|| anyhow!("no content-length"))?;
        if buf.len() >= end + 4 + len {
            return Ok(status);
        }
    }
}

/// One review over a new HTTP/1.1 connection: the status and the body of the answer (to check
/// that a server under measurement really admits the review).
pub async fn answer(t: &Target) -> Result<(u16, String)> {
    let mut conn = connect(t).await?;
    let mut buf = Vec::with_capacity(4096);
    let status = exchange(&mut conn, t, true, &mut buf).await?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// Waits until `at` precisely: tokio's timer has a 1 ms granularity, which would add up to a
/// millisecond of the generator's own lateness to every latency; the last stretch yields in a
/// loop instead (the load tool has a core of its own).
async fn wait_until(at: Instant) {
    let coarse = at.checked_sub(Duration::from_micros(1500)).unwrap_or(at);
    if coarse > Instant::now() {
        tokio::time::sleep_until(coarse.into()).await;
    }
    while Instant::now() < at {
        tokio::task::yield_now().await;
    }
}

/// Runs `rate` requests per second for `duration`.
pub async fn run(t: &Target, rate: u64, duration: Duration, mode: Mode) -> Result<Report> {
    let total = (rate as f64 * duration.as_secs_f64()).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<Duration, String>>();
    let start = Instant::now() + Duration::from_millis(50);
    match mode {
        Mode::KeepAlive { connections } => {
            let (job_tx, job_rx) = async_channel();
            for _ in 0..connections {
                let (t, rx, done) = (t.clone(), job_rx.clone(), done_tx.clone());
                tokio::spawn(async move {
                    let mut conn: Option<Conn> = None;
                    let mut buf = Vec::with_capacity(4096);
                    while let Some(scheduled) = recv(&rx).await {
                        let result = async {
                            if conn.is_none() {
                                conn = Some(connect(&t).await?);
                            }
                            let status = exchange(conn.as_mut().expect("connected"), &t, false, &mut buf).await;
                            if status.is_err() {
                                conn = None;
                            }
                            let status = status?;
                            if status != 200 {
                                bail!("HTTP {status}");
                            }
                            Ok(())
                        }
                        .await;
                        let _ = done.send(result.map(|()| scheduled.elapsed()).map_err(|e| e.to_string()));
                    }
                });
            }
            tokio::spawn(async move {
                for i in 0..total {
                    let at = start + interval.mul_f64(i as f64);
                    wait_until(at).await;
                    if job_tx.send(at).is_err() {
                        break;
                    }
                }
            });
        }
        Mode::H2 { connections } => {
            let mut senders = Vec::with_capacity(connections);
            for _ in 0..connections.max(1) {
                senders.push(connect_h2(t).await?);
            }
            let body = bytes::Bytes::from(t.body.as_ref().clone());
            let (t, done) = (t.clone(), done_tx.clone());
            tokio::spawn(async move {
                for i in 0..total {
                    let at = start + interval.mul_f64(i as f64);
                    wait_until(at).await;
                    let (mut sender, t, done, body) =
                        (senders[i as usize % senders.len()].clone(), t.clone(), done.clone(), body.clone());
                    tokio::spawn(async move {
                        let result = async {
                            let status = exchange_h2(&mut sender, &t, body).await?;
                            if status != 200 {
                                bail!("HTTP {status}");
                            }
                            Ok(())
                        }
                        .await;
                        let _ = done.send(result.map(|()| at.elapsed()).map_err(|e: anyhow::Error| e.to_string()));
                    });
                }
            });
        }
        Mode::NewConnection => {
            let (t, done) = (t.clone(), done_tx.clone());
            tokio::spawn(async move {
                for i in 0..total {
                    let at = start + interval.mul_f64(i as f64);
                    wait_until(at).await;
                    let (t, done) = (t.clone(), done.clone());
                    tokio::spawn(async move {
                        let result = async {
                            let mut conn = connect(&t).await?;
                            let mut buf = Vec::with_capacity(4096);
                            let status = exchange(&mut conn, &t, true, &mut buf).await?;
                            if status != 200 {
                                bail!("HTTP {status}");
                            }
                            Ok(())
                        }
                        .await;
                        let _ = done.send(result.map(|()| at.elapsed()).map_err(|e: anyhow::Error| e.to_string()));
                    });
                }
            });
        }
    }
    drop(done_tx);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).context("histogram")?;
    let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
    let deadline = start + duration + Duration::from_secs(10);
    while ok + errors < total {
        match tokio::time::timeout_at(deadline.into(), done_rx.recv()).await {
            Ok(Some(Ok(latency))) => {
                ok += 1;
                hist.record(latency.as_micros().max(1) as u64).ok();
            }
            Ok(Some(Err(e))) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
            Ok(None) => break,
            Err(_) => {
                let missing = total - ok - errors;
                errors += missing;
                first_error.get_or_insert(format!("{missing} requests unanswered 10 s after the run"));
                break;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(Report {
        sent: total,
        ok,
        errors,
        first_error,
        achieved_rate: ok as f64 / elapsed,
        p50: hist.value_at_quantile(0.5),
        p90: hist.value_at_quantile(0.9),
        p99: hist.value_at_quantile(0.99),
        p999: hist.value_at_quantile(0.999),
        max: hist.max(),
    })
}

/// A multi-consumer queue of scheduled instants (tokio's mpsc has one consumer).
type JobRx = Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Instant>>>;

fn async_channel() -> (mpsc::UnboundedSender<Instant>, JobRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, Arc::new(tokio::sync::Mutex::new(rx)))
}

async fn recv(rx: &JobRx) -> Option<Instant> {
    rx.lock().await.recv().await
}

/// Pins the calling thread (and threads it starts later) to CPU `cpu`.
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET and sched_setaffinity only touch it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!("sched_setaffinity to CPU {cpu}: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Raises this process's soft limit of open files to the hard limit: a new-connection flood
/// holds thousands of sockets at once.
pub fn raise_open_files_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            libc::setrlimit(libc::RLIMIT_NOFILE, &raised);
        }
    }
}

/// CPU time (user + system) `pid` has used so far (`/proc/<pid>/stat`, clock-tick resolution).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start at state: utime and stime are
    // the 12th and 13th of them.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_micros(ticks * 1_000_000 / per_second))
}

/// Resident set size of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

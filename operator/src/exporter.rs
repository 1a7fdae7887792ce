//! The brokers' Prometheus JMX exporters, read for one fact: the Kafka release a broker runs.
//! Koperator reads `kafka_server_app_info_version{broker_id,version}` from each broker's
//! exporter on port 9020 into `status.brokersState[<id>].version`; so does this operator, from
//! the Pod's own address (`status.podIP`), never through DNS.
//!
//! Reads are short (a few seconds at most, all brokers at once) and never fail a reconcile.
//! The exporter scrapes every MBean of the broker on each request, which is not free on a
//! large broker, so [`Versions`] remembers what each Pod (by UID and image) reported and asks
//! a Pod again only when it has not answered yet, at most every [`RETRY`].

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;

/// How long one read may take (connect, scrape and answer). Each read makes the exporter walk
/// every MBean of the broker, which takes seconds on a busy node.
pub const TIMEOUT: Duration = Duration::from_secs(8);
/// How soon a Pod whose exporter did not tell its release is asked again.
pub const RETRY: Duration = Duration::from_secs(30);
/// The metric carrying the release as its `version` label.
pub const VERSION_METRIC: &str = "kafka_server_app_info_version";
/// Lines longer than this are skipped, not buffered (no sample the operator wants is that long).
const MAX_LINE: usize = 64 * 1024;

/// One sample line of the Prometheus text format: its metric name and labels (`None` for
/// comments, blank and malformed lines).
pub fn parse_sample(line: &str) -> Option<(&str, Vec<(String, String)>)> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line.find(|c: char| c == '{' || c.is_whitespace()).unwrap_or(line.len());
    let name = &line[..end];
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    if name.is_empty() || !name.chars().all(valid) {
        return None;
    }
    let mut labels = Vec::new();
    let mut rest = &line[end..];
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest.find('=')?;
            let key = rest[..eq].trim().to_string();
            let mut chars = rest[eq + 1..].trim_start().char_indices();
            let value_start = &rest[eq + 1..].trim_start();
            if chars.next().map(|(_, c)| c) != Some('"') {
                return None;
            }
            let mut value = String::new();
            let mut escaped = false;
            let mut closed = None;
            for (i, c) in chars {
                match (escaped, c) {
                    (true, 'n') => (value.push('\n'), escaped = false).1,
                    (true, c) => (value.push(c), escaped = false).1,
                    (false, '\\') => escaped = true,
                    (false, '"') => {
                        closed = Some(i);
                        break;
                    }
                    (false, c) => value.push(c),
                }
            }
            rest = &value_start[closed? + 1..];
            labels.push((key, value));
        }
    }
    // A sample has a value after its name and labels.
    rest.split_whitespace().next()?;
    Some((name, labels))
}

/// Finds the release in an exporter's answer, line by line as it arrives: the `version` label
/// of [`VERSION_METRIC`], preferring the sample of `broker_id` (an exporter serves one broker,
/// so there is one).
#[derive(Debug)]
pub struct VersionScanner {
    broker_id: String,
    partial: Vec<u8>,
    skipping: bool,
    other: Option<String>,
    found: Option<String>,
}

impl VersionScanner {
    /// A scanner for broker `broker_id`.
    pub fn new(broker_id: i32) -> Self {
        VersionScanner {
            broker_id: broker_id.to_string(),
            partial: Vec::new(),
            skipping: false,
            other: None,
            found: None,
        }
    }

    /// Feeds the next bytes; true once the broker's own sample was found (the rest is not needed).
    pub fn feed(&mut self, mut chunk: &[u8]) -> bool {
        while self.found.is_none() && !chunk.is_empty() {
            let (head, tail, complete) = match chunk.iter().position(|b| *b == b'\n') {
                Some(i) => (&chunk[..i], &chunk[i + 1..], true),
                None => (chunk, &[][..], false),
            };
            chunk = tail;
            if !self.skipping {
                self.partial.extend_from_slice(head);
                if self.partial.len() > MAX_LINE {
                    self.partial.clear();
                    self.skipping = true;
                }
            }
            if complete {
                if !self.skipping {
                    let line = std::mem::take(&mut self.partial);
                    self.line(&String::from_utf8_lossy(&line));
                }
                self.skipping = false;
            }
        }
        self.found.is_some()
    }

    fn line(&mut self, line: &str) {
        let Some((VERSION_METRIC, labels)) = parse_sample(line) else { return };
        let get = |k: &str| labels.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        let Some(version) = get("version").filter(|v| !v.is_empty()) else { return };
        match get("broker_id") {
            Some(id) if id != self.broker_id => {
                self.other.get_or_insert(version);
            }
            _ => self.found = Some(version),
        }
    }

    /// The release, once everything was fed.
    pub fn finish(mut self) -> Option<String> {
        if self.found.is_none() && !self.skipping && !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&String::from_utf8_lossy(&line));
        }
        self.found.or(self.other)
    }
}

/// The release in a whole exporter answer `text` (see [`VersionScanner`]).
pub fn version_from_metrics(text: &str, broker_id: i32) -> Option<String> {
    let mut s = VersionScanner::new(broker_id);
    s.feed(text.as_bytes());
    s.finish()
}

/// Why a read gave no release.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No answer within [`TIMEOUT`].
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Connecting or the HTTP exchange failed.
    #[error("{0}")]
    Http(String),
    /// The exporter answered with another status than 200.
    #[error("HTTP status {0}")]
    Status(u16),
}

/// Ends the spawned connection task when the read ends (done, failed or timed out).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `GET http://<addr>/metrics`, scanned for broker `broker_id`'s release; `Ok(None)` when the
/// exporter answered without it (e.g. a `kafkaJMXExporterConfig` without that rule).
pub async fn read_version(addr: SocketAddr, broker_id: i32, timeout: Duration) -> Result<Option<String>, ReadError> {
    tokio::time::timeout(timeout, read(addr, broker_id)).await.map_err(|_| ReadError::Timeout(timeout))?
}

async fn read(addr: SocketAddr, broker_id: i32) -> Result<Option<String>, ReadError> {
    let http = |e: &dyn std::fmt::Display| ReadError::Http(e.to_string());
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| http(&e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| http(&e))?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let request = Request::get("/metrics")
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::ACCEPT, "text/plain; version=0.0.4")
        .body(Empty::<Bytes>::new())
        .map_err(|e| http(&e))?;
    let mut response = sender.send_request(request).await.map_err(|e| http(&e))?;
    if response.status() != hyper::StatusCode::OK {
        return Err(ReadError::Status(response.status().as_u16()));
    }
    let mut scanner = VersionScanner::new(broker_id);
    while let Some(frame) = response.body_mut().frame().await {
        let frame = frame.map_err(|e| http(&e))?;
        if let Some(data) = frame.data_ref()
            && scanner.feed(data)
        {
            break;
        }
    }
    Ok(scanner.finish())
}

/// A broker Pod whose exporter may be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Broker id.
    pub broker: i32,
    /// What identifies the running broker: the Pod's UID and its Kafka container's image.
    pub key: String,
    /// The Pod's address.
    pub ip: IpAddr,
}

#[derive(Debug, Clone)]
enum Known {
    Version(String),
    Unknown(Instant),
}

/// What each running broker's exporter reported, per KafkaCluster (by UID).
#[derive(Debug, Default)]
pub struct Versions {
    clusters: Mutex<HashMap<String, HashMap<String, Known>>>,
}

impl Versions {
    /// The release of every target that has one: remembered, or read now (concurrently, each
    /// within [`TIMEOUT`]) when the target has not told it yet and was not asked within
    /// [`RETRY`]. Targets no longer running are forgotten.
    pub async fn read(&self, cluster_uid: &str, targets: &[Target], port: u16) -> BTreeMap<i32, String> {
        let now = Instant::now();
        let ask: Vec<&Target> = {
            let clusters = self.clusters.lock().expect("not poisoned");
            let known = clusters.get(cluster_uid);
            targets
                .iter()
                .filter(|t| match known.and_then(|k| k.get(&t.key)) {
                    Some(Known::Version(_)) => false,
                    Some(Known::Unknown(at)) => now.duration_since(*at) >= RETRY,
                    None => true,
                })
                .collect()
        };
        let answers = futures::future::join_all(ask.iter().map(|t| async move {
            let result = read_version(SocketAddr::new(t.ip, port), t.broker, TIMEOUT).await;
            if let Err(e) = &result {
                tracing::debug!(broker = t.broker, ip = %t.ip, error = %e, "the broker's JMX exporter did not answer");
            }
            (t.key.clone(), result.ok().flatten())
        }))
        .await;
        let mut clusters = self.clusters.lock().expect("not poisoned");
        let known = clusters.entry(cluster_uid.to_string()).or_default();
        for (key, version) in answers {
            known.insert(key, version.map(Known::Version).unwrap_or(Known::Unknown(now)));
        }
        known.retain(|key, _| targets.iter().any(|t| t.key == *key));
        targets
            .iter()
            .filter_map(|t| match known.get(&t.key) {
                Some(Known::Version(v)) => Some((t.broker, v.clone())),
                _ => None,
            })
            .collect()
    }

    /// Forgets a deleted cluster.
    pub fn forget(&self, cluster_uid: &str) {
        self.clusters.lock().expect("not poisoned").remove(cluster_uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What jmx_prometheus_javaagent 1.0.1 serves for a Kafka 4.1.1 broker, abridged.
    const EXPORTER: &str = "# HELP jvm_threads_current Current thread count of a JVM\n\
        # TYPE jvm_threads_current gauge\n\
        jvm_threads_current 88.0\n\
        # HELP kafka_server_app_info_version Kafka app-info Version\n\
        # TYPE kafka_server_app_info_version gauge\n\
        kafka_server_app_info_version{broker_id=\"2\",version=\"4.1.1\"} 1.0\n\
        # TYPE kafka_server_replicamanager_underreplicatedpartitions gauge\n\
        kafka_server_replicamanager_underreplicatedpartitions 0.0\n";

    #[test]
    fn samples_are_parsed_with_their_labels() {
        type Case<'a> = (&'a str, Option<(&'a str, Vec<(&'a str, &'a str)>)>);
        let cases: Vec<Case> = vec![
            ("up 1", Some(("up", vec![]))),
            ("a_b:c{x=\"1\",y=\"two words\"} 3.0 1700000000", Some(("a_b:c", vec![("x", "1"), ("y", "two words")]))),
            ("m{ x = \"1\" , } 1", Some(("m", vec![("x", "1")]))),
            (r#"m{v="a\"b\\c\nd"} 1"#, Some(("m", vec![("v", "a\"b\\c\nd")]))),
            (r#"m{v="}{,="} 1"#, Some(("m", vec![("v", "}{,=")]))),
            ("# TYPE m gauge", None),
            ("", None),
            ("m{v=\"1\"}", None),
            ("m{v=1} 1", None),
            ("m{v=\"unterminated} 1", None),
            ("bad-name 1", None),
        ];
        for (line, want) in cases {
            let got = parse_sample(line);
            let want = want.map(|(n, l)| (n, l.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()));
            assert_eq!(got, want, "{line:?}");
        }
    }

    #[test]
    fn the_release_is_the_version_label_of_the_brokers_sample() {
        let cases: [(&str, &str, i32, Option<&str>); 7] = [
            ("the exporter's answer", EXPORTER, 2, Some("4.1.1")),
            ("another broker's sample is used when it is the only one", EXPORTER, 5, Some("4.1.1")),
            (
                "the broker's own sample wins",
                "kafka_server_app_info_version{broker_id=\"1\",version=\"3.9.0\"} 1\n\
                 kafka_server_app_info_version{broker_id=\"2\",version=\"4.1.1\"} 1\n",
                2,
                Some("4.1.1"),
            ),
            (
                "labels in another order, no broker id",
                "kafka_server_app_info_version{version=\"4.0.0\"} 1",
                0,
                Some("4.0.0"),
            ),
            ("no such metric", "kafka_server_app_info_start_time_ms{broker_id=\"2\"} 1.7E12\n", 2, None),
            ("an empty version", "kafka_server_app_info_version{broker_id=\"2\",version=\"\"} 1\n", 2, None),
            ("a longer name is another metric", "kafka_server_app_info_version_x{version=\"9.9.9\"} 1\n", 2, None),
        ];
        for (what, text, id, want) in cases {
            assert_eq!(version_from_metrics(text, id).as_deref(), want, "{what}");
        }
    }

    #[test]
    fn the_scanner_reads_lines_split_across_chunks_and_stops_at_the_brokers_sample() {
        for size in [1, 2, 7, 64, EXPORTER.len()] {
            let mut s = VersionScanner::new(2);
            let mut done_at = None;
            for (i, chunk) in EXPORTER.as_bytes().chunks(size).enumerate() {
                if s.feed(chunk) {
                    done_at = Some(i);
                    break;
                }
            }
            assert!(done_at.is_some(), "chunks of {size}: found before the end");
            assert_eq!(s.finish().as_deref(), Some("4.1.1"), "chunks of {size}");
        }
        // The last line needs no line break; an overlong line is skipped, not kept.
        let mut s = VersionScanner::new(2);
        s.feed(&vec![b'x'; MAX_LINE + 10]);
        s.feed(b"\nkafka_server_app_info_version{version=\"4.1.1\"} 1");
        assert_eq!(s.finish().as_deref(), Some("4.1.1"));
    }

    /// An exporter on a loopback port answering `body` with `status`, once per connection.
    async fn exporter(status: &'static str, body: String) -> SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        let Ok(n) = s.read(&mut buf).await else { return };
                        if n == 0 {
                            return;
                        }
                        got.extend_from_slice(&buf[..n]);
                    }
                    assert!(got.starts_with(b"GET /metrics HTTP/1.1\r\n"), "{}", String::from_utf8_lossy(&got));
                    let head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n", body.len());
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(body.as_bytes()).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn read_version_over_http() {
        let ok = exporter("200 OK", EXPORTER.to_string()).await;
        assert_eq!(read_version(ok, 2, TIMEOUT).await.unwrap().as_deref(), Some("4.1.1"));
        let bad = exporter("503 Service Unavailable", String::new()).await;
        assert!(matches!(read_version(bad, 2, TIMEOUT).await, Err(ReadError::Status(503))));
        // Nothing listens on a port just released.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        assert!(matches!(read_version(closed, 2, TIMEOUT).await, Err(ReadError::Http(_))));
        // A peer that accepts and never answers: the read gives up.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let r = read_version(addr, 2, Duration::from_millis(200)).await;
        assert!(matches!(r, Err(ReadError::Timeout(_))), "{r:?}");
        drop(silent);
    }

    #[tokio::test]
    async fn versions_are_remembered_per_running_broker() {
        let first = exporter("200 OK", EXPORTER.to_string()).await;
        let v = Versions::default();
        let target = |key: &str, ip: IpAddr| Target { broker: 2, key: key.into(), ip };
        let t = [target("pod-a/img", first.ip())];
        assert_eq!(v.read("c", &t, first.port()).await, BTreeMap::from([(2, "4.1.1".to_string())]));
        // Remembered: not asked again (nothing listens on port 1).
        assert_eq!(v.read("c", &t, 1).await, BTreeMap::from([(2, "4.1.1".to_string())]));
        // A new Pod is asked; when it does not answer it has no version and is not asked again at once.
        let t = [target("pod-b/img", first.ip())];
        assert_eq!(v.read("c", &t, 1).await, BTreeMap::new());
        assert_eq!(v.read("c", &t, first.port()).await, BTreeMap::new(), "retried only after RETRY");
        // The old Pod was forgotten with its cluster's targets.
        assert!(!v.clusters.lock().unwrap()["c"].contains_key("pod-a/img"));
        v.forget("c");
        assert_eq!(v.read("c", &t, first.port()).await, BTreeMap::from([(2, "4.1.1".to_string())]));
    }
}

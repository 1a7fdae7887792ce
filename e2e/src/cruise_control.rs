//! Cruise Control for the tests: the real server, compiled by `make e2e-deps` from the source
//! snapshot in `../shared/third_party/cruise-control` (its jars are not on Maven Central), run
//! with the machine's Java like its own `kafka-cruise-control-start.sh` runs it
//! (`java … -cp libs/* com.linkedin.kafka.cruisecontrol.KafkaCruiseControlMain <properties>`).
//!
//! `KOP_CRUISE_CONTROL_HOME=<dir>` points the tests at a Cruise Control distribution of the
//! user's own instead: its `libs/*.jar` are the class path, `libs/cruise-control-metrics-
//! reporter*.jar` the brokers' metrics reporter and `config/` (when there) the default
//! configuration.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::process::Component;
use crate::tools::cache_dir;

/// The class brokers load (`metric.reporters`) to feed Cruise Control.
pub const METRICS_REPORTER: &str = "com.linkedin.kafka.cruisecontrol.metricsreporter.CruiseControlMetricsReporter";

/// How often a test broker's reporter sends metrics; Cruise Control must know it too (its
/// sampling interval may not be shorter).
pub const REPORTING_INTERVAL: &str = "cruise.control.metrics.reporter.metrics.reporting.interval.ms";
/// [`REPORTING_INTERVAL`] of the test brokers, in milliseconds.
pub const TEST_REPORTING_INTERVAL_MS: &str = "4000";

/// Cruise Control's sampling settings for small tests: short windows, so that the load model
/// has a valid window within seconds.
pub const TEST_SAMPLING: [(&str, &str); 7] = [
    (REPORTING_INTERVAL, TEST_REPORTING_INTERVAL_MS),
    ("metric.sampling.interval.ms", "5000"),
    ("metadata.max.age.ms", "5000"),
    ("partition.metrics.window.ms", "10000"),
    ("num.partition.metrics.windows", "1"),
    ("broker.metrics.window.ms", "10000"),
    ("num.broker.metrics.windows", "1"),
];

/// A single-node KRaft broker that runs the metrics reporter (the jar `make e2e-deps` built,
/// on its class path), reporting every [`TEST_REPORTING_INTERVAL_MS`] to a one-partition
/// metrics topic it creates.
pub fn broker_with_reporter() -> Result<crate::kafka::SingleNode> {
    crate::kafka::SingleNode::start_with(
        Duration::from_secs(60),
        crate::kafka::SingleNodeOptions {
            classpath: vec![reporter_jar()?],
            extra_properties: format!(
                "metric.reporters={METRICS_REPORTER}\n\
                 {REPORTING_INTERVAL}={TEST_REPORTING_INTERVAL_MS}\n\
                 cruise.control.metrics.topic.auto.create=true\n\
                 cruise.control.metrics.topic.num.partitions=1\n\
                 cruise.control.metrics.topic.replication.factor=1\n"
            ),
            ..Default::default()
        },
    )
}

/// The working directory of Koperator's Cruise Control image: relative paths in its
/// `cruisecontrol.properties` (`config/capacity.json`) are relative to it.
pub const IMAGE_WORKDIR: &str = "/opt/cruise-control";

/// The source snapshot (`$KOP_THIRD_PARTY/cruise-control`, default
/// `<repo>/../shared/third_party/cruise-control`).
pub fn source_dir() -> PathBuf {
    std::env::var_os("KOP_THIRD_PARTY")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::tools::repo_root().join("..").join("shared").join("third_party"))
        .join("cruise-control")
}

fn user_home() -> Option<PathBuf> {
    std::env::var_os("KOP_CRUISE_CONTROL_HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

fn not_installed(what: &str, dir: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "Cruise Control {what} not found in {}: run `make e2e-deps`, which compiles Cruise Control from \
         the source snapshot in {} (missing there: get the snapshot, or set KOP_THIRD_PARTY to the \
         directory holding cruise-control/), or set KOP_CRUISE_CONTROL_HOME to a Cruise Control \
         distribution (a directory with libs/*.jar)",
        dir.display(),
        source_dir().display()
    )
}

fn jars(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jar"))
        .collect();
    out.sort();
    out
}

/// The directory of Cruise Control's jars (its class path), or a clear error saying how to get
/// them.
pub fn libs() -> Result<PathBuf> {
    let dir = user_home().unwrap_or_else(|| cache_dir().join("cruise-control")).join("libs");
    if jars(&dir).is_empty() {
        return Err(not_installed("jars", &dir));
    }
    Ok(dir)
}

/// The metrics reporter jar alone (what Koperator's `cruise-control-reporter` init container
/// copies into a broker's `/opt/kafka/libs/extensions`).
pub fn reporter_jar() -> Result<PathBuf> {
    let (dir, found) = match user_home() {
        Some(home) => {
            let dir = home.join("libs");
            let jar = jars(&dir).into_iter().find(|j| {
                j.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("cruise-control-metrics-reporter"))
            });
            (dir, jar)
        }
        None => {
            let dir = cache_dir().join("cruise-control").join("reporter");
            let jar = jars(&dir).into_iter().next();
            (dir, jar)
        }
    };
    found.ok_or_else(|| not_installed("metrics reporter jar", &dir))
}

/// The default configuration directory: the distribution's `config/`, else the snapshot's.
pub fn default_config_dir() -> Result<PathBuf> {
    let dir =
        user_home().map(|h| h.join("config")).filter(|d| d.is_dir()).unwrap_or_else(|| source_dir().join("config"));
    if !dir.join("cruisecontrol.properties").is_file() {
        return Err(not_installed("configuration (config/cruisecontrol.properties)", &dir));
    }
    Ok(dir)
}

/// Console logging at INFO (log4j2; Cruise Control reads `-Dlog4j.configurationFile`).
const LOG4J2: &str = "\
rootLogger.level=INFO
rootLogger.appenderRef.out.ref=out
appender.out.type=Console
appender.out.name=out
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c)%n
logger.kafka.name=org.apache.kafka
logger.kafka.level=WARN
";

/// How to start one Cruise Control process.
#[derive(Debug, Clone)]
pub struct CruiseControlLaunch {
    /// Name used in messages.
    pub name: String,
    /// Working directory: holds the log (`cruise-control.log`) and the log4j2 configuration.
    pub dir: PathBuf,
    /// The `cruisecontrol.properties` to run.
    pub properties: PathBuf,
    /// A hosts file the JVM resolves names with (`-Djdk.net.hosts.file`).
    pub hosts_file: Option<PathBuf>,
    /// JVM options (heap, agents), before the class path.
    pub jvm_opts: Vec<String>,
}

impl CruiseControlLaunch {
    /// The `java` arguments.
    pub fn args(&self) -> Result<Vec<String>> {
        let log4j2 = self.dir.join("log4j2.properties");
        std::fs::write(&log4j2, LOG4J2)?;
        let mut args = self.jvm_opts.clone();
        args.push(format!("-Dlog4j.configurationFile={}", log4j2.display()));
        if let Some(hosts) = &self.hosts_file {
            args.push(format!("-Djdk.net.hosts.file={}", hosts.display()));
            args.push("-Dsun.net.inetaddr.negative.ttl=0".into());
            args.push("-Dsun.net.inetaddr.ttl=1".into());
        }
        args.push("-cp".into());
        args.push(format!("{}/*", libs()?.display()));
        args.push("com.linkedin.kafka.cruisecontrol.KafkaCruiseControlMain".into());
        args.push(self.properties.display().to_string());
        Ok(args)
    }

    /// Starts the process, output to `<dir>/cruise-control.log`.
    pub fn start(&self) -> Result<Component> {
        let args = self.args()?;
        Component::start(&self.name, &crate::kafka::java(), &args, self.dir.join("cruise-control.log"), false)
    }
}

/// A response of the REST API.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (chunked transfer encoding undone).
    pub body: String,
}

impl Response {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request to `addr` (`host:port`), `Connection: close`, with `headers`.
pub fn request(method: &str, addr: &str, path: &str, headers: &[(&str, &str)], timeout: Duration) -> Result<Response> {
    let sock = addr.parse().with_context(|| format!("address {addr}"))?;
    let mut stream = TcpStream::connect_timeout(&sock, timeout).with_context(|| format!("connect {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).with_context(|| format!("{method} {path} on {addr}"))?;
    parse_response(&raw)
}

/// An HTTP/1.1 response read to the end of the connection.
pub fn parse_response(raw: &[u8]) -> Result<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").context("no end of headers in the response")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = unchunk(&body)?;
    }
    Ok(Response { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

fn unchunk(mut data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").context("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).with_context(|| format!("bad chunk size {size_hex:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            bail!("truncated chunk: {} of {size} bytes", data.len());
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

/// The readiness path: the monitor's state, as JSON.
pub const STATE_PATH: &str = "/kafkacruisecontrol/state?json=true";

/// Whether `GET /kafkacruisecontrol/state?json=true` answers 200 on `addr`.
pub fn state_answers(addr: &str, timeout: Duration) -> bool {
    request("GET", addr, STATE_PATH, &[], timeout).is_ok_and(|r| r.status == 200)
}

/// Waits until the state endpoint answers 200 on `addr`; fails early when `process` exits.
/// Returns the state response.
pub fn wait_ready(addr: &str, process: &Component, timeout: Duration) -> Result<Response> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match request("GET", addr, STATE_PATH, &[], Duration::from_secs(5)) {
            Ok(r) if r.status == 200 => return Ok(r),
            Ok(r) => format!("HTTP {}: {}", r.status, r.body),
            Err(e) => format!("{e:#}"),
        };
        if let Some(status) = process.exited() {
            bail!(
                "{} exited ({status}) before {STATE_PATH} answered; log {}:\n{}",
                process.name,
                process.log.display(),
                process.log_tail(40)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{STATE_PATH} on {addr} did not answer 200 within {timeout:?} ({last}); log {}:\n{}",
                process.log.display(),
                process.log_tail(40)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `properties` with each `(key, value)` set: an existing line of the key replaced in place,
/// a new key appended.
pub fn with_properties(properties: &str, set: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut done = vec![false; set.len()];
    for line in properties.lines() {
        let key = line.split_once('=').map(|(k, _)| k.trim());
        match set.iter().position(|(k, _)| Some(*k) == key) {
            Some(i) => {
                if !done[i] {
                    out.push_str(&format!("{}={}\n", set[i].0, set[i].1));
                    done[i] = true;
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for (i, (k, v)) in set.iter().enumerate() {
        if !done[i] {
            out.push_str(&format!("{k}={v}\n"));
        }
    }
    out
}

/// Whether a property names a file or directory (Cruise Control's `capacity.config.file`,
/// `webserver.ui.diskpath`, `webserver.ssl.keystore.location`...).
fn is_path_key(key: &str) -> bool {
    key.ends_with(".file") || key.ends_with(".location") || key.ends_with(".diskpath")
}

/// `properties` with the relative paths of path-valued keys made absolute against `workdir`
/// (the directory the process would run in).
pub fn absolute_paths(properties: &str, workdir: &str) -> String {
    let mut out = String::new();
    for line in properties.lines() {
        match line.split_once('=') {
            Some((k, v)) if is_path_key(k.trim()) && !v.trim().is_empty() && !v.trim().starts_with('/') => {
                let rel = v.trim().trim_start_matches("./");
                out.push_str(&format!("{k}={}/{rel}", workdir.trim_end_matches('/')));
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// A Cruise Control process on `127.0.0.1` for tests, against the brokers of `bootstrap`.
pub struct CruiseControl {
    /// `127.0.0.1:<port>` of its REST API.
    pub address: String,
    /// The process.
    pub process: Component,
    /// Its directory (configuration under `config/`, log in `cruise-control.log`).
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl CruiseControl {
    /// Starts Cruise Control with the default configuration ([`default_config_dir`]), the
    /// settings a single small cluster needs (sample store replication factor 1, `capacity.json`,
    /// a 256 MiB heap), then `overrides`; waits until its state endpoint answers.
    pub fn start(bootstrap: &str, overrides: &[(&str, &str)], timeout: Duration) -> Result<Self> {
        libs()?;
        let tmp = tempfile::Builder::new().prefix("kop-cc-").tempdir()?;
        let dir = tmp.path().to_path_buf();
        let config = dir.join("config");
        std::fs::create_dir_all(&config)?;
        let defaults = default_config_dir()?;
        for entry in std::fs::read_dir(&defaults)?.flatten() {
            if entry.path().is_file() {
                std::fs::copy(entry.path(), config.join(entry.file_name()))?;
            }
        }
        let port = crate::process::free_port()?;
        let port_text = port.to_string();
        let mut set: Vec<(&str, &str)> = vec![
            ("bootstrap.servers", bootstrap),
            ("webserver.http.address", "127.0.0.1"),
            ("webserver.http.port", &port_text),
            ("capacity.config.file", "config/capacity.json"),
            ("sample.store.topic.replication.factor", "1"),
        ];
        set.extend_from_slice(overrides);
        let text = std::fs::read_to_string(config.join("cruisecontrol.properties"))?;
        let text = absolute_paths(&with_properties(&text, &set), &dir.display().to_string());
        let properties = config.join("cruisecontrol.properties");
        std::fs::write(&properties, text)?;
        let launch = CruiseControlLaunch {
            name: "cruise-control".into(),
            dir: dir.clone(),
            properties,
            hosts_file: None,
            jvm_opts: vec!["-Xms64m".into(), "-Xmx256m".into(), "-XX:+UseG1GC".into()],
        };
        let process = launch.start()?;
        let address = format!("127.0.0.1:{port}");
        wait_ready(&address, &process, timeout)?;
        Ok(CruiseControl { address, process, dir, _tmp: tmp })
    }

    /// `GET` (or another `method`) on the REST API.
    pub fn request(&self, method: &str, path: &str) -> Result<Response> {
        request(method, &self.address, path, &[], Duration::from_secs(60))
    }
}

impl Drop for CruiseControl {
    fn drop(&mut self) {
        self.process.stop(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_are_set_in_place_or_appended() {
        let text = "a=1\n# c\nb=2\nb=3\n";
        assert_eq!(with_properties(text, &[("b", "x"), ("d", "y")]), "a=1\n# c\nb=x\nd=y\n");
        assert_eq!(with_properties("", &[]), "");
    }

    #[test]
    fn relative_file_paths_resolve_against_the_working_directory() {
        let text = "capacity.config.file=config/capacity.json\nwebserver.ui.diskpath=./cruise-control-ui/dist/\n\
                    cluster.configs.file=/abs/c.json\nwebserver.session.path=/\nbootstrap.servers=a:1\n";
        assert_eq!(
            absolute_paths(text, "/opt/cruise-control/"),
            "capacity.config.file=/opt/cruise-control/config/capacity.json\n\
             webserver.ui.diskpath=/opt/cruise-control/cruise-control-ui/dist/\n\
             cluster.configs.file=/abs/c.json\nwebserver.session.path=/\nbootstrap.servers=a:1\n"
        );
    }

    #[test]
    fn responses_parse_with_and_without_chunked_encoding() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nUser-Task-ID: abc\r\n\r\n{\"a\":1}";
        let r = parse_response(plain).unwrap();
        assert_eq!((r.status, r.body.as_str(), r.header("user-task-id")), (200, "{\"a\":1}", Some("abc")));
        let chunked =
            b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n";
        let r = parse_response(chunked).unwrap();
        assert_eq!((r.status, r.body.as_str()), (202, "{\"a\":1}"));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc").is_err());
        assert!(parse_response(b"garbage").is_err());
    }
}

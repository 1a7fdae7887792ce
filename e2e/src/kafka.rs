//! Apache Kafka brokers for the tests: the pinned jars installed by `make e2e-deps`, run with
//! the machine's Java in KRaft mode.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::process::Component;
use crate::tools::cache_dir;

/// Which pinned Kafka release runs a broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dist {
    /// The KRaft release (`e2e/tools/kafka/pom.xml`).
    Kraft,
    /// The last ZooKeeper-mode release line, with ZooKeeper (`e2e/tools/kafka-zk/pom.xml`).
    ZooKeeper,
    /// The KRaft release before [`Dist::Kraft`] (`e2e/tools/kafka-previous/pom.xml`), for
    /// version upgrades.
    Previous,
}

impl Dist {
    /// The release a `server.properties` needs: KRaft when it sets `process.roles`.
    pub fn for_properties(props: &str) -> Dist {
        if props.lines().any(|l| l.starts_with("process.roles=")) { Dist::Kraft } else { Dist::ZooKeeper }
    }

    /// The release a Pod runs: the KRaft release whose version its image tag names
    /// (`…/kafka:2.13-4.0.0` runs [`Dist::Previous`]), else the one its properties need.
    pub fn for_pod(props: &str, image: &str) -> Dist {
        let by_properties = Dist::for_properties(props);
        if by_properties == Dist::ZooKeeper {
            return by_properties;
        }
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or_default();
        [Dist::Kraft, Dist::Previous]
            .into_iter()
            .find(|d| d.version().is_ok_and(|v| tag.split('-').any(|part| part == v)))
            .unwrap_or(by_properties)
    }

    /// The Kafka version its pom pins.
    pub fn version(self) -> Result<String> {
        let pom = crate::tools::repo_root().join("e2e/tools").join(self.dir()).join("pom.xml");
        let text = std::fs::read_to_string(&pom).with_context(|| format!("read {}", pom.display()))?;
        text.split_once("<kafka.version>")
            .and_then(|(_, rest)| rest.split_once("</kafka.version>"))
            .map(|(v, _)| v.trim().to_string())
            .with_context(|| format!("no <kafka.version> in {}", pom.display()))
    }

    fn dir(self) -> &'static str {
        match self {
            Dist::Kraft => "kafka",
            Dist::ZooKeeper => "kafka-zk",
            Dist::Previous => "kafka-previous",
        }
    }
}

/// The Prometheus JMX exporter agent jar installed by `make e2e-deps`.
pub fn jmx_exporter_jar() -> Result<PathBuf> {
    let dir = cache_dir().join("jmx-exporter").join("libs");
    std::fs::read_dir(&dir)
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "jar"))
        .with_context(|| format!("the JMX exporter agent is not in {}: run `make e2e-deps`", dir.display()))
}

/// The directory of the KRaft release's jars, or a clear error saying how to get them.
pub fn libs() -> Result<PathBuf> {
    libs_of(Dist::Kraft)
}

/// The directory of a release's jars, or a clear error saying how to get them.
pub fn libs_of(dist: Dist) -> Result<PathBuf> {
    let dir = cache_dir().join(dist.dir()).join("libs");
    if !dir.join(".").is_dir() || std::fs::read_dir(&dir)?.next().is_none() {
        bail!("Kafka jars not found in {}: run `make e2e-deps` (e2e/scripts/install-deps.sh)", dir.display());
    }
    Ok(dir)
}

/// The `java` to run Kafka with: `$JAVA_HOME/bin/java`, else `java` on PATH.
pub fn java() -> PathBuf {
    std::env::var_os("JAVA_HOME").map(|h| PathBuf::from(h).join("bin").join("java")).unwrap_or_else(|| "java".into())
}

/// How to start one Kafka process.
#[derive(Debug, Clone)]
pub struct BrokerLaunch {
    /// Name used in messages and for the log file (`<dir>/kafka.log`).
    pub name: String,
    /// Working directory: holds the log and the log4j2 configuration.
    pub dir: PathBuf,
    /// The `server.properties` to run.
    pub properties: PathBuf,
    /// KRaft cluster id used to format the storage (`kafka-storage format`).
    pub cluster_id: String,
    /// A hosts file the JVM resolves names with (`-Djdk.net.hosts.file`).
    pub hosts_file: Option<PathBuf>,
    /// Extra JVM options (heap, GC), split on whitespace like `kafka-run-class.sh` does.
    pub jvm_opts: Vec<String>,
    /// The release to run.
    pub dist: Dist,
    /// Extra arguments of `kafka-storage format` (KRaft), such as `--add-scram` to bootstrap
    /// SCRAM credentials into the metadata log.
    pub format_args: Vec<String>,
    /// Jars put before the release's own, like the `CLASSPATH` that `kafka-run-class.sh`
    /// prepends (Koperator's `/opt/kafka/libs/extensions/*`: the Cruise Control metrics
    /// reporter).
    pub classpath: Vec<PathBuf>,
    /// Directories bound at a path of the process's own (`(local directory, mount path)`),
    /// the way a container mounts its volumes: the process runs in a mount namespace of its
    /// own ([`mount_namespaces`]) where each local directory appears at its mount path, so
    /// Kafka reports the log directories the rendered `log.dirs` names.
    pub mounts: Vec<(PathBuf, String)>,
}

/// Whether this machine lets the tests give a process a mount namespace of its own and bind
/// directories in it (`unshare --mount` and `mount --bind`, root): tried once. (The mount
/// paths are made as empty directories on the host, e.g. `/kafka-logs`; the binds go with the
/// process.)
pub fn mount_namespaces() -> bool {
    static ABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ABLE.get_or_init(|| {
        let Ok(dir) = tempfile::tempdir() else { return false };
        let d = dir.path().display().to_string();
        Command::new("/usr/bin/unshare")
            .args(["--mount", "--propagation", "private", "/bin/sh", "-c", "mount --bind \"$0\" \"$0\"", &d])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

impl BrokerLaunch {
    fn jvm_args(&self) -> Result<Vec<String>> {
        let log4j2 = self.dir.join("log4j2.properties");
        std::fs::write(&log4j2, LOG4J2)?;
        let log4j = self.dir.join("log4j.properties");
        std::fs::write(&log4j, LOG4J)?;
        let mut args = self.jvm_opts.clone();
        args.push(format!("-Dlog4j2.configurationFile={}", log4j2.display()));
        args.push(format!("-Dlog4j.configuration=file:{}", log4j.display()));
        if let Some(hosts) = &self.hosts_file {
            args.push(format!("-Djdk.net.hosts.file={}", hosts.display()));
            // Names appear in the hosts file while brokers start: do not cache misses.
            args.push("-Dsun.net.inetaddr.negative.ttl=0".into());
            args.push("-Dsun.net.inetaddr.ttl=1".into());
        }
        args.push("-cp".into());
        let mut cp: Vec<String> = self.classpath.iter().map(|p| p.display().to_string()).collect();
        cp.push(format!("{}/*", libs_of(self.dist)?.display()));
        args.push(cp.join(":"));
        Ok(args)
    }

    /// `kafka-storage format` (idempotent: already formatted directories are kept).
    fn format_args(&self) -> Result<Vec<String>> {
        let mut args = self.jvm_args()?;
        args.retain(|a| !a.starts_with("-Xm") && !a.starts_with("-javaagent:"));
        args.extend(
            ["kafka.tools.StorageTool", "format", "--ignore-formatted", "--cluster-id", &self.cluster_id, "--config"]
                .map(String::from),
        );
        args.push(self.properties.display().to_string());
        args.extend(self.format_args.iter().cloned());
        Ok(args)
    }

    /// Starts the broker the way its container command does: in KRaft mode the storage is
    /// formatted first, and a failing format ends the process with the tool's output and exit
    /// code, as the container would. Everything goes to `<dir>/kafka.log`.
    pub fn start(&self) -> Result<Component> {
        let mut run = self.jvm_args()?;
        run.push("kafka.Kafka".into());
        run.push(self.properties.display().to_string());
        let java = java().display().to_string();
        let mut script = String::new();
        if self.dist != Dist::ZooKeeper {
            script.push_str(&shell_words(std::iter::once(&java).chain(&self.format_args()?)));
            script.push_str(" && ");
        }
        script.push_str("exec ");
        script.push_str(&shell_words(std::iter::once(&java).chain(&run)));
        if self.mounts.is_empty() {
            return Component::start(
                &self.name,
                Path::new("/bin/sh"),
                &["-c".into(), script],
                self.dir.join("kafka.log"),
                false,
            );
        }
        // unshare execs the shell in place (same pid), so signals reach the broker as before;
        // the binds go with the process.
        let mut binds = String::new();
        for (local, mount) in &self.mounts {
            std::fs::create_dir_all(local)?;
            let (local, mount) = (local.display().to_string(), mount.clone());
            binds.push_str(&format!(
                "mkdir -p {m} && mount --bind {l} {m} && ",
                m = shell_words(std::iter::once(&mount)),
                l = shell_words(std::iter::once(&local))
            ));
        }
        let args: Vec<String> = ["--mount", "--propagation", "private", "/bin/sh", "-c"]
            .into_iter()
            .map(String::from)
            .chain([format!("{binds}{script}")])
            .collect();
        Component::start(&self.name, Path::new("/usr/bin/unshare"), &args, self.dir.join("kafka.log"), false)
    }
}

/// Words quoted for `sh`: each in single quotes, a quote inside as `'\''`.
fn shell_words<'a>(words: impl Iterator<Item = &'a String>) -> String {
    words.map(|w| format!("'{}'", w.replace('\'', "'\\''"))).collect::<Vec<_>>().join(" ")
}

/// Runs a Kafka command-line tool (`class`, e.g. `org.apache.kafka.tools.ConsoleProducer`)
/// with the pinned jars, `stdin` fed to it, broker names resolved through `hosts_file`; killed
/// after `timeout`. Returns its exit status and combined output.
pub fn run_tool(
    class: &str,
    args: &[String],
    stdin: &str,
    hosts_file: Option<&Path>,
    timeout: Duration,
) -> Result<(std::process::ExitStatus, String)> {
    use std::io::{Read, Write};
    let mut cmd = Command::new(java());
    cmd.arg("-Xmx256m").arg("-cp").arg(format!("{}/*", libs()?.display()));
    if let Some(h) = hosts_file {
        cmd.arg(format!("-Djdk.net.hosts.file={}", h.display())).arg("-Dsun.net.inetaddr.negative.ttl=0");
    }
    cmd.arg(class).args(args);
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().context("run java")?;
    child.stdin.take().expect("piped").write_all(stdin.as_bytes())?;
    let (mut out, mut err) = (child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = format!("{}{}", reader.join().unwrap_or_default(), err_reader.join().unwrap_or_default());
    Ok((status, text))
}

/// A Kafka command-line tool running in the background (see [`spawn_tool`]).
pub struct BackgroundTool {
    child: std::process::Child,
    stdout: Option<std::thread::JoinHandle<String>>,
    so_far: std::sync::Arc<std::sync::Mutex<String>>,
}

impl BackgroundTool {
    /// What the tool has printed on stdout so far.
    pub fn output(&self) -> String {
        self.so_far.lock().expect("output lock").clone()
    }

    /// Stops the tool with SIGTERM (its shutdown hooks flush and report), waits up to
    /// `grace`, then returns everything it printed on stdout.
    pub fn stop(mut self, grace: Duration) -> String {
        // SAFETY: kill(2) on the child this struct owns.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + grace;
        while self.child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdout.take().and_then(|h| h.join().ok()).unwrap_or_default()
    }
}

impl Drop for BackgroundTool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a Kafka command-line tool like [`run_tool`], in the background: its stdout is kept
/// for [`BackgroundTool::stop`], its stderr goes to `stderr_log`.
pub fn spawn_tool(
    class: &str,
    args: &[String],
    hosts_file: Option<&Path>,
    stderr_log: &Path,
) -> Result<BackgroundTool> {
    let mut cmd = Command::new(java());
    cmd.arg("-Xmx256m").arg("-cp").arg(format!("{}/*", libs()?.display()));
    if let Some(h) = hosts_file {
        cmd.arg(format!("-Djdk.net.hosts.file={}", h.display())).arg("-Dsun.net.inetaddr.negative.ttl=0");
    }
    cmd.arg(class).args(args);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(stderr_log).context("tool log")?);
    let mut child = crate::process::spawn_tied(cmd).context("run java")?;
    let out = child.stdout.take().expect("piped");
    let so_far = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = so_far.clone();
    let stdout = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let mut s = sink.lock().expect("output lock");
            s.push_str(&line);
            s.push('\n');
        }
        sink.lock().expect("output lock").clone()
    });
    Ok(BackgroundTool { child, stdout: Some(stdout), so_far })
}

/// What `VerifiableProducer` reported: the values Kafka acknowledged, the sends that failed
/// after the producer's own retries, and the longest gap between two acknowledgements (ms).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerReport {
    /// Acknowledged values, in order.
    pub acked: Vec<u64>,
    /// `producer_send_error` lines.
    pub errors: usize,
    /// Longest time without an acknowledgement, in milliseconds.
    pub longest_stall_ms: u64,
}

/// Reads `VerifiableProducer`'s JSON lines.
pub fn producer_report(stdout: &str) -> ProducerReport {
    let mut r = ProducerReport::default();
    let mut last: Option<u64> = None;
    for line in stdout.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        match v["name"].as_str() {
            Some("producer_send_success") => {
                if let Some(n) = v["value"].as_str().and_then(|s| s.parse().ok()) {
                    r.acked.push(n);
                }
                if let Some(ts) = v["timestamp"].as_u64() {
                    if let Some(prev) = last {
                        r.longest_stall_ms = r.longest_stall_ms.max(ts.saturating_sub(prev));
                    }
                    last = Some(ts);
                }
            }
            Some("producer_send_error") => r.errors += 1,
            _ => {}
        }
    }
    r
}

/// The same for the log4j 1 (reload4j) of the ZooKeeper-mode release.
const LOG4J: &str = "\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
";

/// Console logging at INFO, Kafka's noisy request logger off.
const LOG4J2: &str = "\
rootLogger.level=INFO
rootLogger.appenderRef.out.ref=out
appender.out.type=Console
appender.out.name=out
appender.out.layout.type=PatternLayout
appender.out.layout.pattern=[%d] %p %m (%c)%n
logger.request.name=kafka.request.logger
logger.request.level=WARN
";

/// A single-node KRaft Kafka (broker + controller) on `127.0.0.1`, for tests of the admin
/// client. Its PLAINTEXT listener is [`SingleNode::bootstrap`]; StandardAuthorizer is on with
/// `User:ANONYMOUS` as super user, so ACL calls work without authentication.
pub struct SingleNode {
    /// `127.0.0.1:<port>`.
    pub bootstrap: String,
    /// `127.0.0.1:<port>` of the SSL listener, when started with one.
    pub ssl_bootstrap: Option<String>,
    /// `127.0.0.1:<port>` of the SASL_PLAINTEXT listener (SCRAM-SHA-512), when started with one.
    pub sasl_bootstrap: Option<String>,
    /// `127.0.0.1:<port>` of the SASL_SSL listener (SCRAM-SHA-512 over TLS), when started with
    /// both SSL and SCRAM.
    pub sasl_ssl_bootstrap: Option<String>,
    /// The process.
    pub process: Component,
    _dir: tempfile::TempDir,
}

/// The listeners of a [`SingleNode`] besides PLAINTEXT.
#[derive(Debug, Clone, Default)]
pub struct SingleNodeOptions {
    /// An SSL listener serving `(certificate chain PEM, PKCS#8 key PEM)`.
    pub ssl: Option<(String, String)>,
    /// A SASL_PLAINTEXT listener with SCRAM-SHA-512 (and a SASL_SSL one with `ssl`), this
    /// `(user, password)` bootstrapped at format time (`kafka-storage format --add-scram`) and
    /// made a super user. The password must not contain `,`, `]` or `"`.
    pub scram_admin: Option<(String, String)>,
    /// Lines appended to `server.properties`.
    pub extra_properties: String,
    /// Jars before Kafka's own on the class path ([`BrokerLaunch::classpath`]), such as the
    /// Cruise Control metrics reporter ([`crate::cruise_control::reporter_jar`]).
    pub classpath: Vec<PathBuf>,
}

impl SingleNode {
    /// Starts the broker and waits until it answers on its listener.
    pub fn start(timeout: Duration) -> Result<Self> {
        Self::start_with(timeout, SingleNodeOptions::default())
    }

    /// Like [`SingleNode::start`], plus an SSL listener serving `cert_chain` with `key` (PEM,
    /// PKCS#8) when given.
    pub fn start_with_ssl(timeout: Duration, ssl: Option<(&str, &str)>) -> Result<Self> {
        let ssl = ssl.map(|(cert, key)| (cert.to_owned(), key.to_owned()));
        Self::start_with(timeout, SingleNodeOptions { ssl, ..Default::default() })
    }

    /// Starts the broker with the listeners of `opts` and waits until each accepts connections.
    pub fn start_with(timeout: Duration, opts: SingleNodeOptions) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("kop-kafka-").tempdir()?;
        let controller = crate::process::free_port()?;
        let mut listeners = vec![("PLAINTEXT", crate::process::free_port()?)];
        if opts.ssl.is_some() {
            listeners.push(("SSL", crate::process::free_port()?));
        }
        if opts.scram_admin.is_some() {
            listeners.push(("SASL_PLAINTEXT", crate::process::free_port()?));
            if opts.ssl.is_some() {
                listeners.push(("SASL_SSL", crate::process::free_port()?));
            }
        }
        let mut text = single_node_properties(dir.path(), &listeners, controller);
        if let Some((cert, key)) = &opts.ssl {
            let pem = dir.path().join("keystore.pem");
            std::fs::write(&pem, format!("{key}{cert}"))?;
            for name in listeners.iter().map(|l| l.0.to_lowercase()).filter(|n| n.ends_with("ssl")) {
                text.push_str(&format!(
                    "listener.name.{name}.ssl.keystore.type=PEM\nlistener.name.{name}.ssl.keystore.location={}\n",
                    pem.display()
                ));
            }
        }
        let mut format_args = Vec::new();
        if let Some((user, password)) = &opts.scram_admin {
            text = text.replace("super.users=User:ANONYMOUS\n", &format!("super.users=User:ANONYMOUS;User:{user}\n"));
            text.push_str("sasl.enabled.mechanisms=SCRAM-SHA-512\n");
            // Credentials live in the KRaft metadata log; the broker's login module takes no options.
            for name in listeners.iter().map(|l| l.0.to_lowercase()).filter(|n| n.starts_with("sasl")) {
                text.push_str(&format!(
                    "listener.name.{name}.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;\n"
                ));
            }
            format_args = vec!["--add-scram".into(), format!("SCRAM-SHA-512=[name={user},password={password}]")];
        }
        text.push_str(&opts.extra_properties);
        let props = dir.path().join("server.properties");
        std::fs::write(&props, text)?;
        let launch = BrokerLaunch {
            name: "kafka".into(),
            dir: dir.path().to_path_buf(),
            properties: props,
            cluster_id: "a0tvcGVyYXRvci10ZXN0MQ".into(),
            hosts_file: None,
            jvm_opts: vec!["-Xmx512m".into(), "-Xms128m".into(), "-XX:+UseG1GC".into()],
            dist: Dist::Kraft,
            format_args,
            classpath: opts.classpath.clone(),
            mounts: Vec::new(),
        };
        let process = launch.start()?;
        let addr = |name: &str| listeners.iter().find(|l| l.0 == name).map(|l| format!("127.0.0.1:{}", l.1));
        for (_, port) in &listeners {
            wait_for_port(&format!("127.0.0.1:{port}"), &process, timeout)?;
        }
        Ok(SingleNode {
            bootstrap: addr("PLAINTEXT").expect("always there"),
            ssl_bootstrap: addr("SSL"),
            sasl_bootstrap: addr("SASL_PLAINTEXT"),
            sasl_ssl_bootstrap: addr("SASL_SSL"),
            process,
            _dir: dir,
        })
    }
}

/// `listeners` are `(name, port)`, each with the security protocol of its name.
fn single_node_properties(dir: &Path, listeners: &[(&str, u16)], controller: u16) -> String {
    let join = |f: &dyn Fn(&(&str, u16)) -> String| listeners.iter().map(f).collect::<Vec<_>>().join(",");
    let advertised = join(&|(name, port)| format!("{name}://127.0.0.1:{port}"));
    let map = join(&|(name, _)| format!("{name}:{name}"));
    format!(
        "node.id=1
process.roles=broker,controller
controller.quorum.voters=1@127.0.0.1:{controller}
listeners={advertised},CONTROLLER://127.0.0.1:{controller}
advertised.listeners={advertised}
listener.security.protocol.map={map},CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs={}/data
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS
",
        dir.display()
    )
}

/// Waits until `addr` accepts TCP connections; fails early when the process exits.
pub fn wait_for_port(addr: &str, process: &Component, timeout: Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        if let Some(status) = process.exited() {
            bail!(
                "{} exited ({status}) before listening on {addr}; log {}:\n{}",
                process.name,
                process.log.display(),
                process.log_tail(30)
            );
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "{} not listening on {addr} after {timeout:?}; log {}:\n{}",
                process.name,
                process.log.display(),
                process.log_tail(30)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for SingleNode {
    fn drop(&mut self) {
        self.process.stop(Duration::from_secs(10));
    }
}

/// A standalone ZooKeeper (from the ZooKeeper-mode release's jars) on `127.0.0.1`.
pub struct ZooKeeper {
    /// `127.0.0.1:<port>`.
    pub address: String,
    /// The process.
    pub process: Component,
    _dir: tempfile::TempDir,
}

impl ZooKeeper {
    /// Starts ZooKeeper and waits until it accepts connections.
    pub fn start(timeout: Duration) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("kop-zk-").tempdir()?;
        let port = crate::process::free_port()?;
        let log4j = dir.path().join("log4j.properties");
        std::fs::write(&log4j, LOG4J)?;
        let args = vec![
            "-Xmx128m".to_string(),
            "-Dzookeeper.admin.enableServer=false".into(),
            format!("-Dlog4j.configuration=file:{}", log4j.display()),
            "-cp".into(),
            format!("{}/*", libs_of(Dist::ZooKeeper)?.display()),
            "org.apache.zookeeper.server.ZooKeeperServerMain".into(),
            port.to_string(),
            dir.path().join("data").display().to_string(),
        ];
        let process = Component::start("zookeeper", &java(), &args, dir.path().join("zookeeper.log"), false)?;
        let address = format!("127.0.0.1:{port}");
        wait_for_port(&address, &process, timeout)?;
        Ok(ZooKeeper { address, process, _dir: dir })
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        self.process.stop(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod shell_tests {
    use super::*;

    #[test]
    fn shell_words_survive_sh() {
        let words: Vec<String> =
            ["printf", "%s|", "a b", "it's", "$(x)", "[name=u,password=p'q]"].map(String::from).into();
        let out = Command::new("/bin/sh").arg("-c").arg(shell_words(words.iter())).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b|it's|$(x)|[name=u,password=p'q]|");
    }
}

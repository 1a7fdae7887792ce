//! `make demo` / `make demo-down`: the whole product on this machine. A control plane, a node
//! for Kafka Pods and a node for the project's own Pods, the helm chart installed for real, a
//! 3-broker KRaft cluster through `kubectl`, and records produced and consumed through it.
//!
//! `up` starts a background `serve` process that owns every component (each dies with it) and
//! prints its progress; `down` stops that process and removes the demo's directory. `up` while
//! a demo runs stops the old one first, so no stray process is left. `try` runs the commands
//! the demo printed and checks each does what it says ([`try_next`]).

mod try_next;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use koperator_e2e::binary_node::{self, BinaryNode};
use koperator_e2e::node::Node;
use koperator_e2e::process::{tail, terminate};
use koperator_e2e::{ControlPlane, Options, kafka, tools};
use serde_json::Value;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the demo in the background and show its progress.
    Up {
        /// The demo's directory (kubeconfig, logs, data).
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        chart: ChartArgs,
    },
    /// Run the demo in the foreground (what `up` starts).
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        chart: ChartArgs,
    },
    /// Run the commands the running demo printed, as printed, and check what each does.
    Try {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Stop the demo and remove its directory.
    Down {
        #[arg(long)]
        dir: PathBuf,
    },
}

/// How the chart is installed.
#[derive(clap::Args, Clone)]
struct ChartArgs {
    /// A chart value, as `helm install --set` takes it (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// How long `helm install --wait` waits for the Deployments.
    #[arg(long, default_value = "3m")]
    helm_timeout: String,
}

impl ChartArgs {
    fn to_args(&self) -> Vec<String> {
        let mut args: Vec<String> = self.set.iter().flat_map(|s| ["--set".to_string(), s.clone()]).collect();
        args.push(format!("--helm-timeout={}", self.helm_timeout));
        args
    }
}

const OPERATOR_NS: &str = "koperator";
const KAFKA_NS: &str = "kafka";
const CLUSTER: &str = "kafka";
const TOPIC: &str = "demo";
const AUTHORIZER: &str = "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer";
const SUPER_USERS: &str = "super.users=User:ANONYMOUS";
/// Lines of `progress` that end a run of `up`.
const READY: &str = "READY";
const FAILED: &str = "FAILED";

fn main() -> Result<()> {
    match Args::parse().cmd {
        Cmd::Up { dir, chart } => up(&dir, &chart),
        Cmd::Serve { dir, chart } => serve(&dir, &chart),
        Cmd::Down { dir } => down(&dir, true),
        Cmd::Try { dir } => try_next::run(&dir),
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only probes whether the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn recorded_pid(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(dir.join("demo.pid")).ok()?.trim().parse().ok()
}

fn up(dir: &Path, chart: &ChartArgs) -> Result<()> {
    if recorded_pid(dir).is_some_and(alive) {
        println!("a demo is already running from {}; stopping it first", dir.display());
    }
    down(dir, false)?;
    std::fs::create_dir_all(dir)?;
    let log = std::fs::File::create(dir.join("demo.log"))?;
    std::fs::write(dir.join("progress"), "")?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("serve").arg("--dir").arg(dir).args(chart.to_args());
    cmd.stdin(std::process::Stdio::null()).stdout(log.try_clone()?).stderr(log);
    // SAFETY: setsid is async-signal-safe; the demo outlives this command.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("start the demo process")?;
    // Our own child: once it exits it is a zombie (which `kill(pid, 0)` still finds) until
    // it is waited for.
    let pid = child.id();
    let mut running = move || matches!(child.try_wait(), Ok(None));
    std::fs::write(dir.join("demo.pid"), pid.to_string())?;
    // Follow the progress until the demo is ready or has failed.
    let file = std::fs::File::open(dir.join("progress"))?;
    let mut reader = std::io::BufReader::new(file);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            if !running() {
                bail!("the demo process exited; its log:\n{}", tail(&dir.join("demo.log"), 30));
            }
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        print!("{line}");
        std::io::stdout().flush()?;
        if line.starts_with(READY) {
            return Ok(());
        }
        if line.starts_with(FAILED) {
            // The rest of the report follows; the process then exits.
            let mut rest = String::new();
            let deadline = Instant::now() + Duration::from_secs(90);
            while running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
            }
            reader.read_to_string_lossy(&mut rest);
            print!("{rest}");
            // Kept while the process lives, so that `make demo-down` can still stop it.
            if !running() {
                let _ = std::fs::remove_file(dir.join("demo.pid"));
            }
            std::process::exit(1);
        }
    }
}

trait ReadRest {
    fn read_to_string_lossy(&mut self, out: &mut String);
}

impl<R: std::io::Read> ReadRest for R {
    fn read_to_string_lossy(&mut self, out: &mut String) {
        let mut bytes = Vec::new();
        let _ = self.read_to_end(&mut bytes);
        out.push_str(&String::from_utf8_lossy(&bytes));
    }
}

fn down(dir: &Path, verbose: bool) -> Result<()> {
    if let Some(pid) = recorded_pid(dir).filter(|p| alive(*p)) {
        // The demo process stops the brokers, the binaries and the control plane it owns.
        terminate(pid as u32, Duration::from_secs(90), || !alive(pid));
        if verbose {
            println!("demo stopped (process {pid})");
        }
    } else if verbose {
        println!("no demo running from {}", dir.display());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
        if verbose {
            println!("removed {}", dir.display());
        }
    }
    Ok(())
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Progress lines, shown by `up` as they are written.
struct Progress {
    file: std::fs::File,
    started: Instant,
    step_started: Instant,
}

impl Progress {
    fn line(&mut self, text: &str) {
        let _ = writeln!(self.file, "{text}");
        println!("{text}");
    }

    fn step(&mut self, text: &str) {
        self.step_started = Instant::now();
        self.line(&format!("[{:6.1}s] {text} …", self.started.elapsed().as_secs_f64()));
    }

    fn done(&mut self, text: &str) {
        let took = self.step_started.elapsed().as_secs_f64();
        self.line(&format!("[{:6.1}s]   ✓ {text} ({took:.1}s)", self.started.elapsed().as_secs_f64()));
    }
}

/// What a failed step names: the component and where its log is.
struct Failure {
    component: &'static str,
    logs: Vec<PathBuf>,
    error: anyhow::Error,
}

fn failed(component: &'static str, logs: Vec<PathBuf>) -> impl FnOnce(anyhow::Error) -> Failure {
    move |error| Failure { component, logs, error }
}

struct Demo {
    cp: ControlPlane,
    kafka_node: Option<Node>,
    binary_node: Option<BinaryNode>,
}

fn serve(dir: &Path, chart: &ChartArgs) -> Result<()> {
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let file = std::fs::OpenOptions::new().append(true).open(dir.join("progress"))?;
    let mut p = Progress { file, started: Instant::now(), step_started: Instant::now() };
    let mut demo = None;
    match run(dir, chart, &mut p, &mut demo) {
        Ok(()) => {
            while !STOP.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(200));
            }
            println!("stopping the demo");
        }
        Err(f) => {
            let mut report = format!("{FAILED}: {}: {:#}\n", f.component, f.error);
            for log in &f.logs {
                report.push_str(&format!("--- last lines of {} ---\n{}\n", log.display(), tail(log, 20)));
            }
            if let Some(Demo { binary_node: Some(n), .. }) = &demo
                && f.component != "control plane"
            {
                report.push_str(&n.log_tails(10));
            }
            p.line(report.trim_end());
        }
    }
    // Stop in order: the operator and webhook first, then the brokers, then the control plane.
    if let Some(mut d) = demo {
        drop(d.binary_node.take());
        drop(d.kafka_node.take());
        d.cp.stop();
    }
    Ok(())
}

fn run(dir: &Path, chart_args: &ChartArgs, p: &mut Progress, demo: &mut Option<Demo>) -> Result<(), Failure> {
    let cp_dir = dir.join("control-plane");
    let api_log = cp_dir.join("logs/kube-apiserver.log");
    p.step("starting etcd, kube-apiserver and kube-controller-manager");
    let cp = ControlPlane::start(&Options { dir: cp_dir.clone(), detached: false })
        .map_err(failed("control plane", vec![api_log.clone()]))?;
    p.done(&format!("control plane at {}", cp.server));
    let cp = &demo.insert(Demo { cp, kafka_node: None, binary_node: None }).cp;

    p.step("starting the nodes (Kafka Pods run as Kafka processes, the chart's Pods as the local binaries)");
    cp.kubectl(&["create", "namespace", KAFKA_NS]).map_err(failed("control plane", vec![api_log.clone()]))?;
    let kafka_node = Node::start(&cp.kubeconfig, KAFKA_NS).map_err(failed("kafka node", vec![]))?;
    let hosts = kafka_node.hosts_file.clone();
    let node_dir = dir.join("node");
    let binary_node = BinaryNode::start_in(
        binary_node::Options {
            kubeconfig: cp.kubeconfig.clone(),
            server: cp.server.clone(),
            ca_pem: cp.ca_pem.clone(),
            namespace: OPERATOR_NS.into(),
            // The binaries built with this one (target/release or target/debug).
            binaries: binary_node::Options::project_binaries(&profile()),
            kafka_hosts_file: Some(hosts.clone()),
        },
        &node_dir,
    )
    .map_err(failed("binary node", vec![]))?;
    let kafka_dir = kafka_node.dir.clone();
    let d = demo.as_mut().expect("set above");
    d.kafka_node = Some(kafka_node);
    d.binary_node = Some(binary_node);
    let cp = &d.cp;
    p.done("nodes registered");

    p.step("helm install koperator charts/koperator (webhook and operator Deployments, 2 replicas each)");
    let chart = tools::repo_root().join("charts/koperator").display().to_string();
    let timeout = format!("--timeout={}", chart_args.helm_timeout);
    let mut helm = vec![
        "install",
        "koperator",
        &chart,
        "-n",
        OPERATOR_NS,
        "--create-namespace",
        "--set",
        "image.webhook.tag=local",
        "--set",
        "image.operator.tag=local",
        "--wait",
        &timeout,
    ];
    for s in &chart_args.set {
        helm.extend(["--set", s]);
    }
    cp.helm(&helm).map_err(failed("helm install", vec![api_log.clone()]))?;
    p.done("chart installed; all four Pods Ready");

    p.step("waiting for the webhook to inject its CA and for an operator replica to lead");
    wait(Duration::from_secs(120), || {
        let ca = cp.kubectl(&[
            "get",
            "validatingwebhookconfiguration",
            "koperator-webhook",
            "-o",
            "jsonpath={.webhooks[0].clientConfig.caBundle}",
        ])?;
        Ok(!ca.is_empty())
    })
    .map_err(failed("webhook", vec![]))?;
    let mut leader = String::new();
    wait(Duration::from_secs(120), || {
        leader = cp.kubectl(&[
            "get",
            "lease",
            "koperator-leader",
            "-n",
            OPERATOR_NS,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])?;
        Ok(!leader.is_empty())
    })
    .map_err(failed("operator", vec![]))?;
    p.done(&format!("caBundle injected; {leader} leads"));

    p.step("kubectl apply a 3-broker KRaft KafkaCluster in namespace kafka");
    let sample = std::fs::read_to_string(tools::repo_root().join("config/samples/kafkacluster_kraft_combined.yaml"))
        .map_err(|e| failed("demo", vec![])(e.into()))?
        .replace("name: kafka-combined", &format!("name: {CLUSTER}"))
        // ACLs need an authorizer; the PLAINTEXT clients of the demo are User:ANONYMOUS.
        .replace(
            "    min.insync.replicas=2\n",
            &format!("    min.insync.replicas=2\n    {AUTHORIZER}\n    {SUPER_USERS}\n"),
        );
    if !sample.contains(AUTHORIZER) {
        return Err(failed("demo", vec![])(anyhow!(
            "the sample's readOnlyConfig changed; the demo cannot add its authorizer"
        )));
    }
    cp.kubectl_stdin(&["apply", "-n", KAFKA_NS, "-f", "-"], Some(&sample)).map_err(failed("webhook", vec![]))?;
    wait(Duration::from_secs(300), || {
        let kc: Value =
            serde_json::from_str(&cp.kubectl(&["get", "kafkacluster", CLUSTER, "-n", KAFKA_NS, "-o", "json"])?)?;
        Ok(kc["status"]["state"] == "ClusterRunning")
    })
    .map_err(failed("operator", broker_logs(&kafka_dir)))?;
    p.done("ClusterRunning: 3 brokers, each its own Pod, ConfigMap and PVC");

    p.step(&format!("kubectl apply a KafkaTopic {TOPIC} (3 partitions, replication factor 3)"));
    let topic = format!(
        "apiVersion: kafka.banzaicloud.io/v1alpha1\nkind: KafkaTopic\nmetadata:\n  name: {TOPIC}\nspec:\n  clusterRef:\n    name: {CLUSTER}\n  name: {TOPIC}\n  partitions: 3\n  replicationFactor: 3\n"
    );
    cp.kubectl_stdin(&["apply", "-n", KAFKA_NS, "-f", "-"], Some(&topic)).map_err(failed("webhook", vec![]))?;
    wait(Duration::from_secs(120), || {
        let t: Value =
            serde_json::from_str(&cp.kubectl(&["get", "kafkatopic", TOPIC, "-n", KAFKA_NS, "-o", "json"])?)?;
        Ok(t["status"]["state"] == "created")
    })
    .map_err(failed("operator", vec![]))?;
    p.done("topic created in Kafka");

    p.step("producing 3 records and consuming them with Kafka's console clients");
    let bootstrap = format!("{CLUSTER}-0.{CLUSTER}-headless.{KAFKA_NS}.svc.cluster.local:29092");
    let records = "hello from koperator-rs\nrecord 2\nrecord 3\n";
    let (status, out) = kafka::run_tool(
        "org.apache.kafka.tools.ConsoleProducer",
        &[
            "--bootstrap-server".into(),
            bootstrap.clone(),
            "--topic".into(),
            TOPIC.into(),
            "--producer-property".into(),
            "acks=all".into(),
        ],
        records,
        Some(&hosts),
        Duration::from_secs(120),
    )
    .map_err(failed("kafka client", vec![]))?;
    if !status.success() {
        return Err(failed("kafka client", broker_logs(&kafka_dir))(anyhow!("console producer failed: {out}")));
    }
    let (_, consumed) = kafka::run_tool(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &[
            "--bootstrap-server".into(),
            bootstrap.clone(),
            "--topic".into(),
            TOPIC.into(),
            "--from-beginning".into(),
            "--max-messages".into(),
            "3".into(),
            "--timeout-ms".into(),
            "60000".into(),
        ],
        "",
        Some(&hosts),
        Duration::from_secs(120),
    )
    .map_err(failed("kafka client", vec![]))?;
    let got: Vec<&str> = records.lines().filter(|r| consumed.lines().any(|l| l.trim() == *r)).collect();
    if got.len() != 3 {
        return Err(failed("kafka client", broker_logs(&kafka_dir))(anyhow!(
            "consumed {} of 3 records:\n{consumed}",
            got.len()
        )));
    }
    p.done("3 records produced (acks=all) and consumed back");

    let info = try_next::DemoInfo {
        kubeconfig: cp.kubeconfig.clone(),
        tools_bin: tools::cache_dir().join("bin"),
        hosts: hosts.clone(),
        dir: dir.to_path_buf(),
        java: kafka::java().display().to_string(),
        kafka_libs: kafka::libs().map(|l| l.display().to_string()).unwrap_or_default(),
        bootstrap,
    };
    let next = try_next::build(&info).map_err(failed("demo", vec![]))?;
    try_next::save(dir, &next).map_err(failed("demo", vec![]))?;
    let elapsed = p.started.elapsed().as_secs_f64();
    p.line(&format!(
        "\nThe demo is running ({elapsed:.0}s to a producing cluster). Try it:\n\n{}\n\
Logs: {dir}/demo.log, {dir}/node/pods/*/log, {kafka}/pods/*/kafka.log, {dir}/control-plane/logs\n\
`make demo-try` runs the commands above and checks what each does. Stop everything: make demo-down",
        next.render(),
        dir = dir.display(),
        kafka = kafka_dir.display(),
    ));
    p.line(&format!("{READY} after {elapsed:.1}s"));
    Ok(())
}

/// The cargo profile directory this binary was built into.
fn profile() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent()?.file_name()?.to_str().map(String::from))
        .unwrap_or_else(|| "release".into())
}

fn broker_logs(kafka_dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(kafka_dir.join("pods"))
        .map(|d| d.flatten().map(|e| e.path().join("kafka.log")).filter(|p| p.exists()).collect())
        .unwrap_or_default();
    logs.sort();
    logs
}

/// Polls `check` every half second until it holds or `timeout` passes; the last error (or
/// "not yet") is in the timeout's message.
fn wait(timeout: Duration, mut check: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check() {
            Ok(true) => return Ok(()),
            Ok(false) => "not yet".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if STOP.load(Ordering::SeqCst) {
            bail!("stopped");
        }
        if Instant::now() > deadline {
            bail!("not done within {timeout:?} (last check: {last})");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

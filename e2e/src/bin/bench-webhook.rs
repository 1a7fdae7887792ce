//! `make bench`, HTTPS part: the release webhook pinned to CPU 0, this load tool pinned to
//! CPU 1 (open loop, HDR histogram), a real control plane for the webhook's caches and for the
//! end-to-end `--dry-run=server` figures. Also the release operator's memory with 100
//! KafkaClusters. Prints markdown tables and writes them into `docs/benchmarks.md` between the
//! `bench:criterion` and `bench:https` markers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use koperator_e2e::load::{self, Mode, Report, Target};
use koperator_e2e::process::{Component, free_port};
use koperator_e2e::tools::{cache_dir, repo_root};
use koperator_e2e::{ControlPlane, Options, pki};
use serde_json::{Value, json};

/// Measure the admission webhook over HTTPS.
#[derive(Parser)]
struct Args {
    /// The webhook binary (a release build).
    #[arg(long, default_value = "target/release/koperator-webhook")]
    webhook: PathBuf,
    /// Length of each step of the rate search.
    #[arg(long, default_value = "4s", value_parser = humantime_secs)]
    step: Duration,
    /// The operator binary (a release build), for its memory with 100 KafkaClusters; skipped
    /// when the file does not exist.
    #[arg(long, default_value = "target/release/koperator")]
    operator: PathBuf,
    /// Koperator's manager binary (default: `<e2e cache>/bin/koperator-manager`, built by
    /// `e2e/scripts/build-koperator.sh`); when missing, the table says why.
    #[arg(long)]
    koperator: Option<PathBuf>,
    /// KafkaClusters (× 3 brokers) of the operator scale run; 0 skips it.
    #[arg(long, default_value_t = 1000)]
    scale_clusters: usize,
    /// Diagnosis only: offer this many new connections per second to our webhook for 10 s (0:
    /// search the highest rate with p99 ≤ 5 ms), print its RSS peak, thread count and the
    /// latency report, and write nothing.
    #[arg(long)]
    flood_only: Option<u64>,
    /// Only rewrite the criterion table of `--out` from `target/criterion` (after `cargo bench`).
    #[arg(long)]
    criterion_only: bool,
    /// Only the operator scale run (`--scale-clusters`); print its table, write nothing.
    #[arg(long)]
    scale_only: bool,
    /// Diagnosis only: measure our webhook's rates (all three modes), print them, write nothing.
    #[arg(long)]
    rates_only: bool,
    /// Diagnosis only: record our webhook with `perf` (DWARF call graphs) for 8 s while it
    /// answers this many keep-alive reviews per second, into `--profile-out`; write nothing
    /// else (`e2e/scripts/profile-webhook.sh` turns it into a flame graph).
    #[arg(long)]
    profile_rate: Option<u64>,
    /// Where `--profile-rate` writes perf's data.
    #[arg(long, default_value = "perf.data")]
    profile_out: PathBuf,
    /// Extra arguments of our webhook (diagnosis, e.g. `--webhook-arg=--max-connections=64`).
    #[arg(long)]
    webhook_arg: Vec<String>,
    /// File to write the table into (between `<!-- bench:https:start -->` and `...:end -->`).
    #[arg(long, default_value = "docs/benchmarks.md")]
    out: PathBuf,
}

fn humantime_secs(s: &str) -> Result<Duration, String> {
    s.trim_end_matches('s').parse::<f64>().map(Duration::from_secs_f64).map_err(|e| e.to_string())
}

/// p99 limit for the maximum rate.
const P99_LIMIT_US: u64 = 5_000;

fn review_body() -> Result<Vec<u8>> {
    let text = std::fs::read_to_string(repo_root().join("config/samples/kafkacluster_kraft_combined.yaml"))?;
    let obj: Value = serde_saphyr::from_str(&text)?;
    Ok(serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "bench", "kind": {"group": "kafka.banzaicloud.io", "version": "v1beta1", "kind": "KafkaCluster"},
                    "resource": {"group": "kafka.banzaicloud.io", "version": "v1beta1", "resource": "kafkaclusters"},
                    "namespace": "kafka", "name": obj["metadata"]["name"], "operation": "CREATE", "object": obj}
    }))?)
}

/// Highest rate (requests/s) with p99 ≤ 5 ms and no error: doubling, then bisecting.
async fn max_rate(t: &Target, mode: Mode, start: u64, step: Duration) -> Result<(u64, Report)> {
    let passes = |r: &Report| r.errors == 0 && r.p99 <= P99_LIMIT_US;
    let (mut good, mut good_report): (u64, Option<Report>) = (0, None);
    let mut rate = start;
    let bad = loop {
        let r = load::run(t, rate, step, mode).await?;
        eprintln!("  {mode:?} {rate}/s: p50 {} µs p99 {} µs errors {} {:?}", r.p50, r.p99, r.errors, r.first_error);
        if !passes(&r) {
            break rate;
        }
        (good, good_report) = (rate, Some(r));
        if rate >= 200_000 {
            break rate * 2;
        }
        rate *= 2;
    };
    let mut hi = bad;
    for _ in 0..3 {
        let mid = (good + hi) / 2;
        if mid <= good || hi - good < good / 20 + 1 {
            break;
        }
        let r = load::run(t, mid, step, mode).await?;
        eprintln!("  {mode:?} {mid}/s: p50 {} µs p99 {} µs errors {}", r.p50, r.p99, r.errors);
        if passes(&r) {
            (good, good_report) = (mid, Some(r));
        } else {
            hi = mid;
        }
    }
    let report = good_report.with_context(|| format!("{mode:?}: even {start}/s missed p99 ≤ 5 ms"))?;
    Ok((good, report))
}

/// Rates and memory of one webhook under the load tool.
#[derive(Clone)]
struct Rates {
    ka_max: u64,
    ka_report: Report,
    ka_80: Report,
    /// HTTP/2 (None: the server does not offer h2).
    h2: Option<(u64, Report)>,
    nc_max: u64,
    nc_report: Report,
    nc_80: Report,
    idle_kib: u64,
    /// Peak RSS during the keep-alive and HTTP/2 runs.
    load_kib: u64,
    /// Peak RSS during the new-connection runs (which overload it on purpose while searching).
    flood_kib: u64,
    /// The server's CPU time per review at [`CPU_RATE`] (keep-alive, HTTP/2 when offered).
    cpu_us: (f64, Option<f64>),
}

/// Offered rate of the CPU-per-review runs: below every maximum measured, so neither server
/// nor load tool is saturated and the figure is the server's own cost.
const CPU_RATE: u64 = 4000;

/// CPU µs the server `pid` spends per review while answering [`CPU_RATE`] reviews/s in `mode`
/// for 5 s.
async fn cpu_per_review(target: &Target, pid: u32, mode: Mode) -> Result<f64> {
    let before = load::cpu_time(pid).context("server CPU time")?;
    let report = load::run(target, CPU_RATE, Duration::from_secs(5), mode).await?;
    let used = load::cpu_time(pid).context("server CPU time")?.saturating_sub(before);
    if report.errors > 0 {
        bail!("{mode:?} at {CPU_RATE}/s: {} errors ({:?})", report.errors, report.first_error);
    }
    Ok(used.as_secs_f64() * 1e6 / report.ok.max(1) as f64)
}

/// Runs `work` while sampling the RSS of `pid`; returns its result and the peak RSS (KiB).
async fn with_peak_rss<T>(pid: u32, floor_kib: u64, work: impl std::future::Future<Output = T>) -> (T, u64) {
    let (running, peak) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicU64::new(floor_kib)));
    let sampler = rss_sampler(pid, running.clone(), peak.clone());
    let out = work.await;
    running.store(false, Ordering::SeqCst);
    let _ = sampler.join();
    (out, peak.load(Ordering::SeqCst))
}

/// Keep-alive, HTTP/2 and new-connection maximum rates, latency at 80 % of the first and the
/// last, RSS peak meanwhile.
async fn measure_rates(target: &Target, pid: u32, idle_kib: u64, step: Duration) -> Result<Rates> {
    let keep_alive = Mode::KeepAlive { connections: 4 };
    let (ka, ka_kib) = with_peak_rss(pid, idle_kib, async {
        eprintln!("keep-alive: searching the highest rate with p99 ≤ 5 ms");
        let (ka_max, ka_report) = max_rate(target, keep_alive, 1000, step).await?;
        let ka_80 = load::run(target, ka_max * 8 / 10, step * 2, keep_alive).await?;
        anyhow::Ok((ka_max, ka_report, ka_80))
    })
    .await;
    let (h2, h2_kib) = with_peak_rss(pid, idle_kib, async {
        if let Err(e) = load::connect_h2(target).await {
            eprintln!("HTTP/2: not offered ({e:#})");
            return anyhow::Ok(None);
        }
        eprintln!("HTTP/2 (4 connections, a stream per request): searching");
        Ok(Some(max_rate(target, Mode::H2 { connections: 4 }, 1000, step).await?))
    })
    .await;
    let (nc, flood_kib) = with_peak_rss(pid, idle_kib, async {
        eprintln!("new connection per request: searching");
        let (nc_max, nc_report) = max_rate(target, Mode::NewConnection, 250, step).await?;
        let nc_80 = load::run(target, nc_max * 8 / 10, step * 2, Mode::NewConnection).await?;
        anyhow::Ok((nc_max, nc_report, nc_80))
    })
    .await;
    let ((ka_max, ka_report, ka_80), h2, (nc_max, nc_report, nc_80)) = (ka?, h2?, nc?);
    let cpu_ka = cpu_per_review(target, pid, keep_alive).await?;
    let cpu_h2 = match h2 {
        Some(_) => Some(cpu_per_review(target, pid, Mode::H2 { connections: 4 }).await?),
        None => None,
    };
    Ok(Rates {
        ka_max,
        ka_report,
        ka_80,
        h2,
        nc_max,
        nc_report,
        nc_80,
        idle_kib,
        load_kib: ka_kib.max(h2_kib),
        flood_kib,
        cpu_us: (cpu_ka, cpu_h2),
    })
}

/// Samples the RSS of `pid` every 100 ms while `running`; returns the peak (KiB).
fn rss_sampler(pid: u32, running: Arc<AtomicBool>, peak: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while running.load(Ordering::SeqCst) {
            if let Some(kib) = load::rss_kib(pid) {
                peak.fetch_max(kib, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// p50/p99 (ms) of `n` server-side dry-run creates of the 3-broker KafkaCluster.
async fn dry_run_latency(client: &kube::Client, n: usize) -> Result<(f64, f64)> {
    use kube::api::{Api, DynamicObject, PostParams};
    use kube::discovery::ApiResource;
    let text = std::fs::read_to_string(repo_root().join("config/samples/kafkacluster_kraft_combined.yaml"))?;
    let obj: DynamicObject = serde_saphyr::from_str(&text)?;
    let ar = ApiResource {
        group: "kafka.banzaicloud.io".into(),
        version: "v1beta1".into(),
        api_version: "kafka.banzaicloud.io/v1beta1".into(),
        kind: "KafkaCluster".into(),
        plural: "kafkaclusters".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let pp = PostParams { dry_run: true, ..Default::default() };
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        api.create(&pp, &obj).await?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    Ok((ms[n / 2], ms[(n * 99 / 100).min(n - 1)]))
}

/// The criterion results of `make bench` (webhook/benches/admission.rs) as a markdown table:
/// median and mean per call, and the p99 of criterion's samples (each sample is the mean of
/// many calls, so this bounds the slow tail of whole samples, not single calls).
fn criterion_table(dir: &std::path::Path) -> Result<String> {
    let mut out =
        String::from("| benchmark | median µs | mean µs | p99 of samples µs |\n| --- | ---: | ---: | ---: |\n");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("{} (run `cargo bench -p koperator-webhook` first)", dir.display()))?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n != "report")
        .collect();
    names.sort();
    for name in names {
        let new = dir.join(&name).join("new");
        let Ok(est) = std::fs::read_to_string(new.join("estimates.json")) else { continue };
        let est: Value = serde_json::from_str(&est)?;
        let sample: Value = serde_json::from_str(&std::fs::read_to_string(new.join("sample.json"))?)?;
        let mut per_call: Vec<f64> = sample["iters"]
            .as_array()
            .context("iters")?
            .iter()
            .zip(sample["times"].as_array().context("times")?)
            .filter_map(|(i, t)| Some(t.as_f64()? / i.as_f64()?))
            .collect();
        per_call.sort_by(f64::total_cmp);
        let p99 = per_call.get(per_call.len() * 99 / 100).copied().unwrap_or_default();
        let us = |v: &Value| v.as_f64().unwrap_or_default() / 1000.0;
        out.push_str(&format!(
            "| {} | {:.1} | {:.1} | {:.1} |\n",
            name.replace('_', " "),
            us(&est["median"]["point_estimate"]),
            us(&est["mean"]["point_estimate"]),
            p99 / 1000.0
        ));
    }
    Ok(out)
}

/// Replaces the text between `<!-- bench:<key>:start -->` and its end marker in `doc`
/// (appending a section titled `title` when the markers are missing).
fn put_section(doc: &str, key: &str, title: &str, body: &str) -> String {
    let (start, end) = (format!("<!-- bench:{key}:start -->"), format!("<!-- bench:{key}:end -->"));
    match (doc.find(&start), doc.find(&end)) {
        (Some(s), Some(e)) if e > s => format!("{}{start}\n{body}{}", &doc[..s], &doc[e..]),
        _ => format!("{}\n\n## {title}\n\n{start}\n{body}{end}\n", doc.trim_end()),
    }
}

/// `clusters` KafkaClusters of `brokers` brokers each (the 3-broker KRaft sample, its broker
/// list replaced), one JSON document per line, for `kubectl apply -f -`.
fn cluster_manifests(clusters: usize, brokers: u32) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(repo_root().join("config/samples/kafkacluster_kraft_combined.yaml"))?;
    let mut obj: Value = serde_saphyr::from_str(&text)?;
    obj["spec"]["brokers"] =
        Value::Array((0..brokers).map(|id| json!({"id": id, "brokerConfigGroup": "default"})).collect());
    (0..clusters)
        .map(|i| {
            obj["metadata"]["name"] = json!(format!("kafka-{i}"));
            Ok(serde_json::to_string(&obj)?)
        })
        .collect()
}

/// Creates `manifests` in `ns`, 200 objects per `kubectl create`.
fn create_all(cp: &ControlPlane, ns: &str, manifests: &[String]) -> Result<()> {
    for chunk in manifests.chunks(200) {
        cp.kubectl_stdin(&["create", "-n", ns, "-f", "-"], Some(&chunk.join("\n")))?;
    }
    Ok(())
}

/// Number of `kind` objects in `ns`.
fn count(cp: &ControlPlane, ns: &str, kind: &str) -> Result<usize> {
    Ok(cp.kubectl(&["get", kind, "-n", ns, "--no-headers", "-o", "name"])?.lines().count())
}

/// What an operator wrote for a set of KafkaClusters and its memory meanwhile.
#[derive(Clone, Debug, Default)]
struct OperatorRun {
    idle_kib: u64,
    peak_kib: u64,
    settled_kib: u64,
    /// Pods that existed at the end, of `expected`.
    pods: usize,
    expected: usize,
    /// Seconds from the start until the last Pod existed (or until the wait gave up).
    took: f64,
    /// How the operator ended, when it exited during the run.
    exited: Option<String>,
}

/// Waits up to `patience` until `expected` Pods exist in `ns` (counted every `every`) while
/// sampling the RSS of `op`, then 10 s more; `started` is when the operator got the work.
fn wait_for_pods(
    cp: &ControlPlane,
    ns: &str,
    op: &Component,
    idle_kib: u64,
    expected: usize,
    started: Instant,
    patience: Duration,
) -> Result<OperatorRun> {
    let every = if expected > 1000 { Duration::from_secs(2) } else { Duration::from_secs(1) };
    let running = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(idle_kib));
    let sampler = rss_sampler(op.pid(), running.clone(), peak.clone());
    let (mut pods, mut last_change, mut exited) = (0, started.elapsed(), None);
    while pods < expected && started.elapsed() < patience {
        std::thread::sleep(every);
        let now = count(cp, ns, "pods")?;
        if now != pods {
            (pods, last_change) = (now, started.elapsed());
        }
        if let Some(how) = op.exited() {
            eprintln!("the operator exited ({how}) with {pods} of {expected} Pods:\n{}", op.log_tail(5));
            exited = Some(how);
            break;
        }
    }
    let took = if pods >= expected { last_change } else { started.elapsed() }.as_secs_f64();
    if exited.is_none() {
        std::thread::sleep(Duration::from_secs(10));
    }
    running.store(false, Ordering::SeqCst);
    let _ = sampler.join();
    let settled_kib = load::rss_kib(op.pid()).unwrap_or(0);
    Ok(OperatorRun { idle_kib, peak_kib: peak.load(Ordering::SeqCst), settled_kib, pods, expected, took, exited })
}

/// Creates `clusters` × `brokers` in `ns` for the running operator `op` (idle at `idle_kib`)
/// and waits up to `patience` for every broker Pod.
fn write_clusters(
    cp: &ControlPlane,
    ns: &str,
    op: &Component,
    idle_kib: u64,
    clusters: usize,
    brokers: u32,
    patience: Duration,
) -> Result<OperatorRun> {
    let manifests = cluster_manifests(clusters, brokers)?;
    let started = Instant::now();
    create_all(cp, ns, &manifests)?;
    wait_for_pods(cp, ns, op, idle_kib, clusters * brokers as usize, started, patience)
}

/// Our release operator, watching `ns` only, with its metrics on a free port.
fn start_operator(cp: &ControlPlane, binary: &Path, ns: &str, log: &str) -> Result<(Component, u16)> {
    let kubeconfig = cp.service_account_kubeconfig("koperator", "koperator")?;
    let port = free_port()?;
    let op = Component::start_with_env(
        "koperator",
        binary,
        &[format!("--watch-namespace={ns}"), format!("--metrics-listen=127.0.0.1:{port}"), "--log-format=text".into()],
        &[("KUBECONFIG".into(), kubeconfig.display().to_string()), ("RUST_LOG".into(), "warn".into())],
        cp.dir.join("logs").join(log),
        false,
    )?;
    std::thread::sleep(Duration::from_secs(3));
    if let Some(s) = op.exited() {
        bail!("operator exited ({s}):\n{}", op.log_tail(20));
    }
    Ok((op, port))
}

/// The operator's memory with 100 KafkaClusters of 10 brokers each (no kubelet: the brokers'
/// objects are written, Pods stay Pending).
fn operator_memory(cp: &ControlPlane, binary: &Path) -> Result<OperatorRun> {
    let ns = "bench-operator";
    cp.kubectl(&["create", "namespace", ns])?;
    let (op, _) = start_operator(cp, binary, ns, "bench-operator.log")?;
    let idle = load::rss_kib(op.pid()).context("operator RSS")?;
    let run = write_clusters(cp, ns, &op, idle, 100, 10, Duration::from_secs(600))?;
    op.stop(Duration::from_secs(5));
    Ok(run)
}

/// The sum of the samples of `name` (a counter) whose labels contain `labels`, from a
/// Prometheus text exposition.
fn metric_sum(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `GET http://127.0.0.1:<port>/metrics`.
fn scrape(port: u16) -> Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The operator at scale: `clusters` KafkaClusters × 3 brokers created while it is stopped,
/// then written from nothing once it starts; then a restart (every cluster reconciled again
/// with nothing to change).
struct Scale {
    write: OperatorRun,
    /// Seconds from the operator's start until its API writes stopped (none for 15 s), and
    /// the writes by then (None: they had not stopped within 3 minutes of the last Pod).
    quiet: Option<(f64, f64)>,
    /// Seconds after the restart until every cluster was reconciled once, its API writes
    /// meanwhile, the RSS peak (None: the restarted operator exited first).
    resync: Option<(f64, f64, u64)>,
    clusters: usize,
}

fn operator_scale(cp: &ControlPlane, binary: &Path, clusters: usize) -> Result<Scale> {
    let ns = "bench-scale";
    cp.kubectl(&["create", "namespace", ns])?;
    create_all(cp, ns, &cluster_manifests(clusters, 3)?)?;
    let started = Instant::now();
    let (op, port) = start_operator(cp, binary, ns, "bench-scale.log")?;
    let idle = load::rss_kib(op.pid()).context("operator RSS")?;
    let write = wait_for_pods(cp, ns, &op, idle, clusters * 3, started, Duration::from_secs(600))?;
    if write.exited.is_some() {
        op.stop(Duration::from_secs(5));
        return Ok(Scale { write, quiet: None, resync: None, clusters });
    }
    // The status writes that follow the objects: the restart below should find nothing to do.
    let writes =
        || metric_sum(&scrape(port).unwrap_or_default(), "koperator_api_writes_total", "controller=\"kafkacluster\"");
    let (mut last, mut last_change, give_up) = (writes(), Instant::now(), Instant::now() + Duration::from_secs(180));
    let quiet = loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = writes();
        if now != last {
            (last, last_change) = (now, Instant::now());
        } else if last_change.elapsed() >= Duration::from_secs(15) {
            break Some(((last_change - started).as_secs_f64(), last));
        }
        if Instant::now() > give_up || op.exited().is_some() {
            break None;
        }
    };
    op.stop(Duration::from_secs(5));
    eprintln!("operator: restarted over {clusters} clusters");
    let started = Instant::now();
    let (op, port) = start_operator(cp, binary, ns, "bench-scale-restart.log")?;
    let running = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = rss_sampler(op.pid(), running.clone(), peak.clone());
    let resync = loop {
        let text = scrape(port).unwrap_or_default();
        let reconciled = metric_sum(&text, "koperator_reconciles_total", "controller=\"kafkacluster\"");
        if reconciled >= clusters as f64 {
            let writes = metric_sum(&text, "koperator_api_writes_total", "controller=\"kafkacluster\"");
            break Some((started.elapsed().as_secs_f64(), writes));
        }
        if op.exited().is_some() || started.elapsed() > Duration::from_secs(300) {
            eprintln!("restart: only {reconciled} of {clusters} clusters reconciled:\n{}", op.log_tail(5));
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    running.store(false, Ordering::SeqCst);
    let _ = sampler.join();
    op.stop(Duration::from_secs(5));
    Ok(Scale { write, quiet, resync: resync.map(|(s, w)| (s, w, peak.load(Ordering::SeqCst))), clusters })
}

fn register(cp: &ControlPlane, port: u16, ca_pem: &str) -> Result<()> {
    let ca = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ca_pem);
    for file in ["validating.yaml", "mutating.yaml"] {
        let text = std::fs::read_to_string(repo_root().join("config/webhook").join(file))?;
        let mut obj: Value = serde_saphyr::from_str(&text)?;
        for w in obj["webhooks"].as_array_mut().context("webhooks")? {
            let path = w["clientConfig"]["service"]["path"].as_str().context("path")?.to_string();
            w["clientConfig"] = json!({"url": format!("https://127.0.0.1:{port}{path}"), "caBundle": ca});
        }
        cp.kubectl_stdin(&["apply", "-f", "-"], Some(&obj.to_string()))?;
    }
    Ok(())
}

/// Everything measured of one project.
struct Side {
    rates: Rates,
    /// `create --dry-run=server` p50/p99 (ms) without, then with its webhooks registered.
    dry_run: ((f64, f64), (f64, f64)),
    /// What its operator wrote for 100 KafkaClusters × 10 brokers.
    operator: Option<OperatorRun>,
}

/// Checks that `target` admits the review (HTTP 200, `"allowed":true`), so that both projects
/// are measured doing the same work.
async fn check_admits(target: &Target, who: &str) -> Result<()> {
    let (status, body) = load::answer(target).await?;
    let review: Value = serde_json::from_str(&body).with_context(|| format!("{who}: answer is not JSON: {body}"))?;
    if status != 200 || review["response"]["allowed"] != json!(true) {
        bail!("{who} does not admit the benchmark review (HTTP {status}): {body}");
    }
    Ok(())
}

/// Our side: the release webhook pinned to CPU 0, then the release operator.
fn measure_ours(args: &Args, rt: &tokio::runtime::Runtime) -> Result<(Side, Option<Scale>)> {
    let cp = ControlPlane::start(&Options::for_tests()?)?;
    let (webhook, port, pki) = start_our_webhook(args, &cp)?;
    let pid = webhook.pid();
    let idle_kib = load::rss_kib(pid).context("webhook RSS")?;
    let target = target(port, &pki, "/validate-kafkacluster")?;
    rt.block_on(check_admits(&target, "our webhook"))?;
    if let Some(rate) = args.profile_rate {
        let perf = std::process::Command::new("perf")
            .args(["record", "-F", "999", "--call-graph", "dwarf,32768", "-o"])
            .arg(&args.profile_out)
            .args(["-p", &pid.to_string(), "--", "sleep", "8"])
            .spawn()
            .context("perf (Debian package linux-perf)")?;
        std::thread::sleep(Duration::from_millis(500));
        let report =
            rt.block_on(load::run(&target, rate, Duration::from_secs(7), Mode::KeepAlive { connections: 4 }))?;
        let status = perf.wait_with_output()?.status;
        eprintln!("profiled at {rate}/s: {report:?}; perf {status}");
        webhook.stop(Duration::from_secs(5));
        std::process::exit(if status.success() { 0 } else { 1 });
    }
    if let Some(rate) = args.flood_only {
        let (report, peak) = rt.block_on(with_peak_rss(pid, idle_kib, async {
            let threads = tokio::spawn(async move {
                let mut most = 0;
                for _ in 0..100 {
                    let n = std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0);
                    most = most.max(n);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                most
            });
            let report = if rate == 0 {
                max_rate(&target, Mode::NewConnection, 250, args.step).await.map(|(_, r)| r)
            } else {
                load::run(&target, rate, Duration::from_secs(10), Mode::NewConnection).await
            };
            (report, threads.await.unwrap_or(0))
        }));
        let (report, threads) = report;
        eprintln!(
            "flood {rate}/s: RSS idle {:.1} MiB, peak {:.1} MiB, after {:.1} MiB; threads ≤ {threads}; {:?}",
            mib(idle_kib),
            mib(peak),
            mib(load::rss_kib(pid).unwrap_or(0)),
            report?
        );
        // Long enough for a wrapper (valgrind) to write its report.
        webhook.stop(Duration::from_secs(60));
        std::process::exit(0);
    }
    let rates = rt.block_on(measure_rates(&target, pid, idle_kib, args.step))?;
    if args.rates_only {
        eprint!("{}", rates_table(&rates));
        webhook.stop(Duration::from_secs(5));
        std::process::exit(0);
    }
    let dry_run = rt.block_on(async {
        let client = cp.client().await?;
        let without = dry_run_latency(&client, 200).await?;
        register(&cp, port, &pki.ca_cert)?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let with = dry_run_latency(&client, 200).await?;
        anyhow::Ok((without, with))
    })?;
    webhook.stop(Duration::from_secs(5));
    // The webhooks stay registered (validating: Fail) but stopped: remove them before the
    // operator runs write objects.
    cp.kubectl(&["delete", "validatingwebhookconfiguration", "koperator-validating-webhook"])?;
    cp.kubectl(&["delete", "mutatingwebhookconfiguration", "koperator-mutating-webhook"])?;
    if !args.operator.is_file() {
        eprintln!("{} not found: operator figures skipped", args.operator.display());
        return Ok((Side { rates, dry_run, operator: None }, None));
    }
    eprintln!("operator: 100 KafkaClusters of 10 brokers");
    let operator = operator_memory(&cp, &args.operator)?;
    let scale = if args.scale_clusters > 0 {
        eprintln!("operator: {} KafkaClusters of 3 brokers", args.scale_clusters);
        Some(operator_scale(&cp, &args.operator, args.scale_clusters)?)
    } else {
        None
    };
    cp.stop();
    Ok((Side { rates, dry_run, operator: Some(operator) }, scale))
}

/// Our release webhook pinned to CPU 0, serving 127.0.0.1 with a certificate of its own.
fn start_our_webhook(args: &Args, cp: &ControlPlane) -> Result<(Component, u16, pki::ControlPlanePki)> {
    cp.install_crds()?;
    let _ = cp.kubectl(&["create", "namespace", "koperator"]);
    cp.kubectl(&["apply", "-k", &repo_root().join("config/rbac").display().to_string()])?;
    let (dir, pki) = serving_pki(cp)?;
    let port = free_port()?;
    let webhook = Component::start_with_env(
        "koperator-webhook",
        "taskset".as_ref(),
        &["-c".into(), "0".into()]
            .into_iter()
            // Diagnosis: a program to run the webhook under (`valgrind --tool=massif ...`).
            .chain(std::env::var("KOP_BENCH_WEBHOOK_WRAPPER").unwrap_or_default().split_whitespace().map(String::from))
            .chain([
                std::fs::canonicalize(&args.webhook)?.display().to_string(),
                format!("--listen=127.0.0.1:{port}"),
                format!("--tls-cert-file={}", dir.join("tls.crt").display()),
                format!("--tls-key-file={}", dir.join("tls.key").display()),
                "--log-format=text".into(),
                // Stopped at the end of the run: no drain needed.
                "--shutdown-delay=0s".into(),
            ])
            .chain(args.webhook_arg.iter().cloned())
            .collect::<Vec<_>>(),
        &[("KUBECONFIG".into(), cp.kubeconfig.display().to_string()), ("RUST_LOG".into(), "warn".into())],
        cp.dir.join("logs/bench-webhook.log"),
        false,
    )?;
    std::thread::sleep(Duration::from_secs(3));
    if let Some(s) = webhook.exited() {
        bail!("webhook exited ({s}):\n{}", webhook.log_tail(20));
    }
    Ok((webhook, port, pki))
}

/// A serving certificate for 127.0.0.1/localhost in `<cp>/bench` (`tls.crt`, `tls.key`, `ca.crt`).
fn serving_pki(cp: &ControlPlane) -> Result<(PathBuf, pki::ControlPlanePki)> {
    let pki = pki::generate()?;
    let dir = cp.dir.join("bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("tls.crt"), &pki.serving_cert)?;
    std::fs::write(dir.join("tls.key"), &pki.serving_key)?;
    std::fs::write(dir.join("ca.crt"), &pki.ca_cert)?;
    Ok((dir, pki))
}

fn target(port: u16, pki: &pki::ControlPlanePki, path: &str) -> Result<Target> {
    Ok(Target {
        addr: format!("127.0.0.1:{port}").parse()?,
        server_name: "localhost".into(),
        path: path.into(),
        body: Arc::new(review_body()?),
        tls: load::tls_trusting(&pki.ca_cert)?,
    })
}

/// Koperator's KafkaCluster validating webhook path (controller-runtime's naming).
const KOPERATOR_KAFKACLUSTER_PATH: &str = "/validate-kafka-banzaicloud-io-v1beta1-kafkacluster";

/// Koperator's side: its own manager (webhooks and controllers in one process, as its chart
/// deploys it) pinned to CPU 0, on a control plane of its own with Koperator's CRDs.
fn measure_koperator(args: &Args, binary: &Path, rt: &tokio::runtime::Runtime) -> Result<Side> {
    let cp = ControlPlane::start(&Options::for_tests()?)?;
    let crds = third_party_koperator().join("config/base/crds");
    cp.kubectl(&["apply", "--server-side", "-f", &crds.display().to_string()])?;
    for crd in ["kafkaclusters", "kafkatopics", "kafkausers", "cruisecontroloperations"] {
        cp.wait_established(&format!("{crd}.kafka.banzaicloud.io"), Duration::from_secs(60))?;
    }
    let ns = "bench-operator";
    cp.kubectl(&["create", "namespace", ns])?;
    let (dir, pki) = serving_pki(&cp)?;
    let (port, metrics, probes) = (free_port()?, free_port()?, free_port()?);
    let manager = Component::start_with_env(
        "koperator-manager",
        "taskset".as_ref(),
        &[
            "-c".into(),
            "0".into(),
            std::fs::canonicalize(binary)?.display().to_string(),
            format!("--webhook-server-port={port}"),
            format!("--tls-cert-dir={}", dir.display()),
            format!("--metrics-addr=127.0.0.1:{metrics}"),
            format!("--health-probes-addr=127.0.0.1:{probes}"),
            format!("--namespaces={ns}"),
        ],
        &[("KUBECONFIG".into(), cp.kubeconfig.display().to_string())],
        cp.dir.join("logs/bench-koperator-manager.log"),
        false,
    )?;
    let target = target(port, &pki, KOPERATOR_KAFKACLUSTER_PATH)?;
    let started = Instant::now();
    while rt.block_on(load::answer(&target)).is_err() {
        if let Some(s) = manager.exited() {
            bail!("Koperator's manager exited ({s}):\n{}", manager.log_tail(30));
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("Koperator's webhook did not answer within 60 s:\n{}", manager.log_tail(30));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(3));
    let pid = manager.pid();
    let idle_kib = load::rss_kib(pid).context("Koperator RSS")?;
    rt.block_on(check_admits(&target, "Koperator's webhook"))?;
    let rates = rt.block_on(measure_rates(&target, pid, idle_kib, args.step))?;
    let ca = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &pki.ca_cert);
    let registration = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "kafka-operator-validating-webhook"},
        "webhooks": [{
            "name": "kafkaclusters.kafka.banzaicloud.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": "Fail",
            "clientConfig": {"url": format!("https://127.0.0.1:{port}{KOPERATOR_KAFKACLUSTER_PATH}"), "caBundle": ca},
            "rules": [{"apiGroups": ["kafka.banzaicloud.io"], "apiVersions": ["v1beta1"],
                       "operations": ["CREATE", "UPDATE"], "resources": ["kafkaclusters"]}]
        }]
    });
    let dry_run = rt.block_on(async {
        let client = cp.client().await?;
        let without = dry_run_latency(&client, 200).await?;
        cp.kubectl_stdin(&["apply", "-f", "-"], Some(&registration.to_string()))?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let with = dry_run_latency(&client, 200).await?;
        anyhow::Ok((without, with))
    })?;
    // As for ours: the controllers measured without admission in the way.
    cp.kubectl(&["delete", "validatingwebhookconfiguration", "kafka-operator-validating-webhook"])?;
    eprintln!("Koperator's manager: 100 KafkaClusters of 10 brokers");
    let idle_now = load::rss_kib(pid).context("Koperator RSS")?;
    let mut operator = write_clusters(&cp, ns, &manager, idle_now, 100, 10, Duration::from_secs(300))?;
    operator.idle_kib = idle_kib;
    manager.stop(Duration::from_secs(5));
    cp.stop();
    Ok(Side { rates, dry_run, operator: Some(operator) })
}

/// `../shared/third_party/koperator` (or `$KOP_THIRD_PARTY/koperator`).
fn third_party_koperator() -> PathBuf {
    std::env::var_os("KOP_THIRD_PARTY")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/third_party"))
        .join("koperator")
}

/// Why there is no Koperator binary to measure.
fn why_no_koperator(binary: &Path) -> String {
    let snapshot = third_party_koperator();
    if !snapshot.join("main.go").is_file() {
        format!(
            "Koperator was not measured: its source snapshot ({}) is missing, and the Go module proxy refuses Koperator's module, so its manager cannot be built here",
            snapshot.display()
        )
    } else {
        format!(
            "Koperator was not measured: {} was not built (`e2e/scripts/build-koperator.sh` failed; see its output)",
            binary.display()
        )
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ratio(a: f64, b: f64) -> String {
    if a > 0.0 && b > 0.0 { format!("{:.1}×", a / b) } else { "-".into() }
}

fn rates_table(r: &Rates) -> String {
    let row = |what: &str, rate: u64, r: &Report| {
        format!(
            "| {what} | {rate} | {:.0} | {} | {} | {} | {} | {} | {} |\n",
            r.achieved_rate, r.p50, r.p90, r.p99, r.p999, r.max, r.errors
        )
    };
    let mut t = String::from(
        "| run | offered req/s | achieved req/s | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | errors |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    t.push_str(&row("HTTP/1.1 keep-alive (4 connections): max rate with p99 ≤ 5 ms", r.ka_max, &r.ka_report));
    t.push_str(&row("HTTP/1.1 keep-alive: 80 % of that", r.ka_max * 8 / 10, &r.ka_80));
    if let Some((max, report)) = &r.h2 {
        t.push_str(&row("HTTP/2 (4 connections, a stream per request): max rate with p99 ≤ 5 ms", *max, report));
    }
    t.push_str(&row("new TCP+TLS connection per request: max rate with p99 ≤ 5 ms", r.nc_max, &r.nc_report));
    t.push_str(&row("new connection: 80 % of that", r.nc_max * 8 / 10, &r.nc_80));
    t.push_str(&format!(
        "\nServer CPU per review at {CPU_RATE}/s: {:.1} µs keep-alive{} (so one core could answer {:.0}/s).\n",
        r.cpu_us.0,
        r.cpu_us.1.map(|c| format!(", {c:.1} µs HTTP/2")).unwrap_or_default(),
        1e6 / r.cpu_us.0.min(r.cpu_us.1.unwrap_or(f64::MAX)).max(0.001),
    ));
    t
}

fn cpu_pair(r: &Rates) -> String {
    format!("{:.1} / {} µs", r.cpu_us.0, r.cpu_us.1.map(|c| format!("{c:.1}")).unwrap_or_else(|| "-".into()))
}

fn side_by_side(ours: &Side, theirs: &Side, scale: Option<&Scale>) -> String {
    let (o, k) = (&ours.rates, &theirs.rates);
    let h2 = |r: &Rates| r.h2.as_ref().map(|(m, _)| *m).unwrap_or(0);
    let mut t = String::from("| | ours | Koperator (Go) | ours ÷ Koperator |\n| --- | ---: | ---: | ---: |\n");
    let rate_row = |t: &mut String, what: &str, a: u64, b: u64| {
        let show = |v: u64| if v == 0 { "not offered".to_string() } else { v.to_string() };
        t.push_str(&format!("| {what} | {} | {} | {} |\n", show(a), show(b), ratio(a as f64, b as f64)));
    };
    rate_row(&mut t, "HTTP/1.1 keep-alive: max reviews/s at p99 ≤ 5 ms, one core", o.ka_max, k.ka_max);
    rate_row(&mut t, "HTTP/2: max reviews/s at p99 ≤ 5 ms, one core", h2(o), h2(k));
    rate_row(&mut t, "new connection per review: max reviews/s at p99 ≤ 5 ms", o.nc_max, k.nc_max);
    let best = |r: &Rates| r.ka_max.max(h2(r));
    rate_row(&mut t, "best of the two kept-connection modes", best(o), best(k));
    let per_core = |r: &Rates| (1e6 / r.cpu_us.0.min(r.cpu_us.1.unwrap_or(f64::MAX)).max(0.001)) as u64;
    t.push_str(&format!(
        "| server CPU per review at {CPU_RATE}/s, keep-alive / HTTP/2 | {} | {} | 1/{} |\n",
        cpu_pair(o),
        cpu_pair(k),
        ratio(k.cpu_us.0, o.cpu_us.0)
    ));
    rate_row(&mut t, "reviews one core can answer (1 ÷ the lower CPU per review)", per_core(o), per_core(k));
    let mut mem_row = |what: &str, a: u64, b: u64| {
        t.push_str(&format!("| {what} | {:.1} MiB | {:.1} MiB | 1/{} |\n", mib(a), mib(b), ratio(b as f64, a as f64)));
    };
    mem_row("webhook RSS idle", o.idle_kib, k.idle_kib);
    mem_row("webhook RSS peak under keep-alive and HTTP/2 load", o.load_kib, k.load_kib);
    mem_row("webhook RSS peak under the new-connection flood", o.flood_kib, k.flood_kib);
    let ms = |(a, b): (f64, f64)| format!("{a:.2} / {b:.2} ms");
    t.push_str(&format!(
        "| `create --dry-run=server` p50 / p99, webhook registered | {} | {} | |\n| the same, no webhook registered (the API server alone) | {} | {} | |\n| added by the webhook at p99 | {:.2} ms | {:.2} ms | |\n",
        ms(ours.dry_run.1),
        ms(theirs.dry_run.1),
        ms(ours.dry_run.0),
        ms(theirs.dry_run.0),
        (ours.dry_run.1.1 - ours.dry_run.0.1).max(0.0),
        (theirs.dry_run.1.1 - theirs.dry_run.0.1).max(0.0),
    ));
    if let (Some(a), Some(b)) = (&ours.operator, &theirs.operator) {
        t.push_str(&format!(
            "| operator RSS idle (Koperator: its one process, webhooks included) | {:.1} MiB | {:.1} MiB | 1/{} |\n| operator RSS peak, 100 KafkaClusters × 10 brokers | {:.1} MiB | {:.1} MiB | 1/{} |\n| broker Pods written of 1000 | {} in {:.0} s | {} in {:.0} s | |\n",
            mib(a.idle_kib),
            mib(b.idle_kib),
            ratio(b.idle_kib as f64, a.idle_kib as f64),
            mib(a.peak_kib),
            mib(b.peak_kib),
            ratio(b.peak_kib as f64, a.peak_kib as f64),
            a.pods,
            a.took,
            b.pods,
            b.took,
        ));
    }
    if let Some(s) = scale {
        t.push_str(&format!(
            "| {} KafkaClusters × 3 brokers: RSS peak, time until every Pod was written | {:.1} MiB, {:.0} s | not run (its 100-cluster run above is the comparison) | |\n",
            s.clusters,
            mib(s.write.peak_kib),
            s.write.took
        ));
    }
    t
}

fn scale_table(s: &Scale) -> String {
    let w = &s.write;
    let mut t = format!(
        "\nOperator at scale: {} KafkaClusters × 3 brokers created while the operator was stopped, then the operator started (no kubelet: Pods stay Pending; `--max-concurrent-reconciles` at its default).\n\n| figure | value |\n| --- | --- |\n| RSS idle → peak → settled | {:.1} → {:.1} → {:.1} MiB |\n| every broker Pod ({} of {}) and its ConfigMap and PVC written, from the operator's start | {:.0} s |\n",
        s.clusters,
        mib(w.idle_kib),
        mib(w.peak_kib),
        mib(w.settled_kib),
        w.pods,
        w.expected,
        w.took,
    );
    if let Some(how) = &w.exited {
        t.push_str(&format!("| the operator exited during the run | {how} |\n"));
    }
    match s.quiet {
        Some((secs, writes)) => t.push_str(&format!(
            "| the operator's API writes stopped (statuses included), from its start; writes by then | {secs:.0} s, {writes} |\n"
        )),
        None if w.exited.is_none() => t.push_str("| the operator's API writes stopped | not within 3 minutes of the last Pod |\n"),
        None => {}
    }
    match s.resync {
        Some((secs, writes, peak)) => t.push_str(&format!(
            "| no-op resync after a restart: every cluster reconciled once (cache sync included), API writes meanwhile, RSS peak | {secs:.1} s, {writes} writes, {:.1} MiB |\n| RSS per cluster, settled (above idle) | {:.1} KiB |\n",
            mib(peak),
            w.settled_kib.saturating_sub(w.idle_kib) as f64 / s.clusters as f64,
        )),
        None => t.push_str("| restart | not measured (see above) |\n"),
    }
    t
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !args.webhook.is_file() {
        bail!("{} not found: build it with `cargo build --release -p koperator-webhook`", args.webhook.display());
    }
    if args.criterion_only {
        let criterion = criterion_table(&repo_root().join("target/criterion"))?;
        let doc = std::fs::read_to_string(&args.out).unwrap_or_default();
        std::fs::write(&args.out, put_section(&doc, "criterion", "In process (`make bench`, criterion)", &criterion))?;
        println!("{criterion}");
        return Ok(());
    }
    if args.scale_only {
        let cp = ControlPlane::start(&Options::for_tests()?)?;
        cp.install_crds()?;
        let _ = cp.kubectl(&["create", "namespace", "koperator"]);
        cp.kubectl(&["apply", "-k", &repo_root().join("config/rbac").display().to_string()])?;
        let scale = operator_scale(&cp, &args.operator, args.scale_clusters)?;
        println!("{}", scale_table(&scale));
        cp.stop();
        return Ok(());
    }
    load::pin_to_cpu(1)?;
    load::raise_open_files_limit();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // Koperator first: a failure there shows before the longer runs of ours.
    let koperator = args.koperator.clone().unwrap_or_else(|| cache_dir().join("bin/koperator-manager"));
    let theirs = if args.flood_only.is_some() || args.profile_rate.is_some() || args.rates_only {
        Err("not measured (diagnosis run)".to_string())
    } else if koperator.is_file() {
        eprintln!("Koperator's manager {}", koperator.display());
        Ok(measure_koperator(&args, &koperator, &rt)?)
    } else {
        Err(why_no_koperator(&koperator))
    };
    let (ours, scale) = measure_ours(&args, &rt)?;

    let mut table = format!(
        "Webhook (release build) pinned to CPU 0 with `taskset`, the load tool (`e2e/src/load.rs`, open loop, HDR histogram) on CPU 1; AdmissionReview of the 3-broker KRaft KafkaCluster on `/validate-kafkacluster`; {} s per step.\n\n",
        args.step.as_secs_f64()
    );
    table.push_str(&rates_table(&ours.rates));
    let r = &ours.rates;
    table.push_str(&format!(
        "\n| memory / end to end | figure |\n| --- | --- |\n| webhook RSS idle (caches synced) | {:.1} MiB |\n| webhook RSS peak under the keep-alive and HTTP/2 loads above | {:.1} MiB |\n| webhook RSS peak while the new-connection search overloads it (2× past its maximum) | {:.1} MiB |\n| `create --dry-run=server` of the KafkaCluster through the API server, no webhook registered (p50 / p99) | {:.2} / {:.2} ms |\n| the same with our validating + mutating webhooks registered (p50 / p99) | {:.2} / {:.2} ms |\n",
        mib(r.idle_kib),
        mib(r.load_kib),
        mib(r.flood_kib),
        ours.dry_run.0.0,
        ours.dry_run.0.1,
        ours.dry_run.1.0,
        ours.dry_run.1.1
    ));
    if let Some(op) = &ours.operator {
        table.push_str(&format!(
            "| operator RSS idle (leader, no KafkaCluster) | {:.1} MiB |\n| operator RSS peak while reconciling 100 KafkaClusters × 10 brokers ({} Pods, their ConfigMaps, PVCs written in {:.0} s) | {:.1} MiB |\n| operator RSS settled with those 100 clusters | {:.1} MiB |\n",
            mib(op.idle_kib),
            op.pods,
            op.took,
            mib(op.peak_kib),
            mib(op.settled_kib)
        ));
    }
    if let Some(s) = &scale {
        table.push_str(&scale_table(s));
    }
    match &theirs {
        Ok(k) => {
            table.push_str("\nKoperator's own manager (`main.go` of the snapshot in `../shared/third_party/koperator`, built by `e2e/scripts/build-koperator.sh`), same machine, same run, same review and load tool, pinned to CPU 0 the same way, on a control plane of its own with Koperator's CRDs. Its webhooks and controllers share one process, as its chart deploys them.\n\n");
            table.push_str(&rates_table(&k.rates));
            table.push_str("\nSide by side:\n\n");
            table.push_str(&side_by_side(&ours, k, scale.as_ref()));
        }
        Err(why) => table.push_str(&format!("\nSide by side: {why}.\n")),
    }
    // Without criterion's results (the bench binary run alone), the old table stays.
    let criterion = criterion_table(&repo_root().join("target/criterion")).unwrap_or_else(|e| {
        eprintln!("criterion table not rewritten: {e:#}");
        String::new()
    });
    println!("{criterion}\n{table}");
    let doc = std::fs::read_to_string(&args.out).unwrap_or_default();
    let doc = if criterion.is_empty() {
        doc
    } else {
        put_section(&doc, "criterion", "In process (`make bench`, criterion)", &criterion)
    };
    let doc = put_section(&doc, "https", "HTTPS load (`make bench`)", &table);
    std::fs::write(&args.out, doc)?;
    eprintln!("written to {}", args.out.display());
    Ok(())
}

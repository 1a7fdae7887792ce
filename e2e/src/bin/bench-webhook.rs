//! `make bench`, HTTPS part: the release webhook pinned to CPU 0, this load tool pinned to
//! CPU 1 (open loop, HDR histogram), a real control plane for the webhook's caches and for the
//! end-to-end `--dry-run=server` figures. Also the release operator's memory with 100
//! KafkaClusters. Prints markdown tables and writes them into `docs/benchmarks.md` between the
//! `bench:criterion` and `bench:https` markers.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use koperator_e2e::load::{self, Mode, Report, Target};
use koperator_e2e::process::{Component, free_port};
use koperator_e2e::{ControlPlane, Options, pki, tools::repo_root};
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
    /// Another webhook to measure the same way, side by side (started with `--listen`,
    /// `--tls-cert-file`, `--tls-key-file`; serving `/validate-kafkacluster`).
    #[arg(long)]
    compare_webhook: Option<PathBuf>,
    /// What `--compare-webhook` is, for the table.
    #[arg(long, default_value = "comparison webhook")]
    compare_label: String,
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
    nc_max: u64,
    nc_report: Report,
    nc_80: Report,
    idle_kib: u64,
    /// Peak RSS during the keep-alive runs.
    load_kib: u64,
    /// Peak RSS during the new-connection runs (which overload it on purpose while searching).
    flood_kib: u64,
}

/// Keep-alive and new-connection maximum rates, latency at 80 % of each, RSS peak meanwhile.
async fn measure_rates(target: &Target, pid: u32, idle_kib: u64, step: Duration) -> Result<Rates> {
    let sampled = |running: &Arc<AtomicBool>, peak: &Arc<AtomicU64>| rss_sampler(pid, running.clone(), peak.clone());
    let keep_alive = Mode::KeepAlive { connections: 4 };
    let (running, peak) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicU64::new(idle_kib)));
    let sampler = sampled(&running, &peak);
    let ka = async {
        eprintln!("keep-alive: searching the highest rate with p99 ≤ 5 ms");
        let (ka_max, ka_report) = max_rate(target, keep_alive, 1000, step).await?;
        let ka_80 = load::run(target, ka_max * 8 / 10, step * 2, keep_alive).await?;
        anyhow::Ok((ka_max, ka_report, ka_80))
    }
    .await;
    running.store(false, Ordering::SeqCst);
    let _ = sampler.join();
    let load_kib = peak.load(Ordering::SeqCst);
    let (running, peak) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicU64::new(idle_kib)));
    let sampler = sampled(&running, &peak);
    let nc = async {
        eprintln!("new connection per request: searching");
        let (nc_max, nc_report) = max_rate(target, Mode::NewConnection, 250, step).await?;
        let nc_80 = load::run(target, nc_max * 8 / 10, step * 2, Mode::NewConnection).await?;
        anyhow::Ok((nc_max, nc_report, nc_80))
    }
    .await;
    running.store(false, Ordering::SeqCst);
    let _ = sampler.join();
    let ((ka_max, ka_report, ka_80), (nc_max, nc_report, nc_80)) = (ka?, nc?);
    let flood_kib = peak.load(Ordering::SeqCst);
    Ok(Rates { ka_max, ka_report, ka_80, nc_max, nc_report, nc_80, idle_kib, load_kib, flood_kib })
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

/// RSS of the release operator idle, then with 100 KafkaClusters of 10 brokers each (no
/// kubelet: the brokers' objects are written, Pods stay Pending). Returns (idle, peak, settled)
/// KiB and the seconds until every Pod existed.
fn operator_memory(cp: &ControlPlane, binary: &std::path::Path) -> Result<(u64, u64, u64, f64)> {
    let ns = "bench-operator";
    cp.kubectl(&["create", "namespace", ns])?;
    let kubeconfig = cp.service_account_kubeconfig("koperator", "koperator")?;
    let port = free_port()?;
    let op = Component::start_with_env(
        "koperator",
        binary,
        &[format!("--watch-namespace={ns}"), format!("--metrics-listen=127.0.0.1:{port}"), "--log-format=text".into()],
        &[("KUBECONFIG".into(), kubeconfig.display().to_string()), ("RUST_LOG".into(), "warn".into())],
        cp.dir.join("logs/bench-operator.log"),
        false,
    )?;
    std::thread::sleep(Duration::from_secs(3));
    let idle = load::rss_kib(op.pid()).context("operator RSS")?;
    let text = std::fs::read_to_string(repo_root().join("config/samples/kafkacluster_kraft_combined.yaml"))?;
    let mut obj: Value = serde_saphyr::from_str(&text)?;
    obj["spec"]["brokers"] =
        Value::Array((0..10).map(|id| json!({"id": id, "brokerConfigGroup": "default"})).collect());
    let mut all = String::new();
    for i in 0..100 {
        obj["metadata"]["name"] = json!(format!("kafka-{i}"));
        all.push_str(&serde_json::to_string(&obj)?);
        all.push('\n');
    }
    let running = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(idle));
    let sampler = rss_sampler(op.pid(), running.clone(), peak.clone());
    let started = Instant::now();
    cp.kubectl_stdin(&["apply", "-n", ns, "-f", "-"], Some(&all))?;
    loop {
        let pods = cp.kubectl(&["get", "pods", "-n", ns, "--no-headers", "-o", "name"])?;
        if pods.lines().count() >= 1000 {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("only {} of 1000 Pods after 10 minutes", pods.lines().count());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let took = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(10));
    running.store(false, Ordering::SeqCst);
    let _ = sampler.join();
    let settled = load::rss_kib(op.pid()).context("operator RSS")?;
    op.stop(Duration::from_secs(5));
    Ok((idle, peak.load(Ordering::SeqCst), settled, took))
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

fn main() -> Result<()> {
    let args = Args::parse();
    if !args.webhook.is_file() {
        bail!("{} not found: build it with `cargo build --release -p koperator-webhook`", args.webhook.display());
    }
    let cp = ControlPlane::start(&Options::for_tests()?)?;
    cp.install_crds()?;
    let _ = cp.kubectl(&["create", "namespace", "koperator"]);
    cp.kubectl(&["apply", "-k", &repo_root().join("config/rbac").display().to_string()])?;

    let pki = pki::generate()?;
    let dir = cp.dir.join("bench");
    std::fs::create_dir_all(&dir)?;
    let (cert, key, ca) = (dir.join("tls.crt"), dir.join("tls.key"), dir.join("ca.crt"));
    std::fs::write(&cert, &pki.serving_cert)?;
    std::fs::write(&key, &pki.serving_key)?;
    std::fs::write(&ca, &pki.ca_cert)?;
    let port = free_port()?;
    let webhook_args: Vec<String> = vec![
        "-c".into(),
        "0".into(),
        std::fs::canonicalize(&args.webhook)?.display().to_string(),
        format!("--listen=127.0.0.1:{port}"),
        format!("--tls-cert-file={}", cert.display()),
        format!("--tls-key-file={}", key.display()),
        "--log-format=text".into(),
        // Stopped at the end of the run: no drain needed.
        "--shutdown-delay=0s".into(),
    ];
    let webhook = Component::start_with_env(
        "koperator-webhook",
        "taskset".as_ref(),
        &webhook_args,
        &[("KUBECONFIG".into(), cp.kubeconfig.display().to_string()), ("RUST_LOG".into(), "warn".into())],
        cp.dir.join("logs/bench-webhook.log"),
        false,
    )?;
    std::thread::sleep(Duration::from_secs(3));
    if let Some(s) = webhook.exited() {
        bail!("webhook exited ({s}):\n{}", webhook.log_tail(20));
    }
    let pid = webhook.pid();
    let idle_kib = load::rss_kib(pid).context("webhook RSS")?;

    load::pin_to_cpu(1)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let target = Target {
        addr: format!("127.0.0.1:{port}").parse()?,
        server_name: "localhost".into(),
        path: "/validate-kafkacluster".into(),
        body: Arc::new(review_body()?),
        tls: load::tls_trusting(&pki.ca_cert)?,
    };
    let ours = rt.block_on(measure_rates(&target, pid, idle_kib, args.step))?;

    // End to end through the API server, without then with the webhook registered.
    let (without, with) = rt.block_on(async {
        let client = cp.client().await?;
        let without = dry_run_latency(&client, 200).await?;
        register(&cp, port, &pki.ca_cert)?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let with = dry_run_latency(&client, 200).await?;
        anyhow::Ok((without, with))
    })?;
    webhook.stop(Duration::from_secs(5));
    let compared = match &args.compare_webhook {
        Some(binary) => {
            eprintln!("comparison webhook {}", binary.display());
            let port = free_port()?;
            let other = Component::start(
                "compare-webhook",
                "taskset".as_ref(),
                &[
                    "-c".into(),
                    "0".into(),
                    binary.display().to_string(),
                    format!("--listen=127.0.0.1:{port}"),
                    format!("--tls-cert-file={}", cert.display()),
                    format!("--tls-key-file={}", key.display()),
                ],
                cp.dir.join("logs/bench-compare-webhook.log"),
                false,
            )?;
            std::thread::sleep(Duration::from_secs(3));
            if let Some(s) = other.exited() {
                bail!("comparison webhook exited ({s}):\n{}", other.log_tail(20));
            }
            let idle = load::rss_kib(other.pid()).context("comparison webhook RSS")?;
            let t = Target { addr: format!("127.0.0.1:{port}").parse()?, ..target.clone() };
            // Their latency at the rate that is 80 % of ours, for a like-for-like p50.
            let mut r = rt.block_on(measure_rates(&t, other.pid(), idle, args.step))?;
            r.ka_80 =
                rt.block_on(load::run(&t, ours.ka_max * 8 / 10, args.step * 2, Mode::KeepAlive { connections: 4 }))?;
            other.stop(Duration::from_secs(5));
            Some(r)
        }
        None => None,
    };
    // The webhooks stay registered (validating: Fail) but stopped: remove them before the
    // operator run writes objects of ours.
    cp.kubectl(&["delete", "validatingwebhookconfiguration", "koperator-validating-webhook"])?;
    cp.kubectl(&["delete", "mutatingwebhookconfiguration", "koperator-mutating-webhook"])?;
    let operator = if args.operator.is_file() {
        eprintln!("operator: 100 KafkaClusters of 10 brokers");
        Some(operator_memory(&cp, &args.operator)?)
    } else {
        eprintln!("{} not found: operator memory skipped", args.operator.display());
        None
    };

    let mib = |kib: u64| kib as f64 / 1024.0;
    let Rates { ka_max, ka_report, ka_80, nc_max, nc_report, nc_80, idle_kib, load_kib, flood_kib } = ours.clone();
    let row = |what: &str, rate: u64, r: &Report| {
        format!(
            "| {what} | {rate} | {:.0} | {} | {} | {} | {} | {} | {} |\n",
            r.achieved_rate, r.p50, r.p90, r.p99, r.p999, r.max, r.errors
        )
    };
    let mut table = String::new();
    table.push_str(&format!(
        "Webhook (release build) pinned to CPU 0 with `taskset`, the load tool (`e2e/src/load.rs`, open loop, HDR histogram) on CPU 1; AdmissionReview of the 3-broker KRaft KafkaCluster on `/validate-kafkacluster`; {} s per step.\n\n",
        args.step.as_secs_f64()
    ));
    table
        .push_str("| run | offered req/s | achieved req/s | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | errors |\n");
    table.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    table.push_str(&row("keep-alive (4 connections): max rate with p99 ≤ 5 ms", ka_max, &ka_report));
    table.push_str(&row("keep-alive: 80 % of that", ka_max * 8 / 10, &ka_80));
    table.push_str(&row("new TCP+TLS connection per request: max rate with p99 ≤ 5 ms", nc_max, &nc_report));
    table.push_str(&row("new connection: 80 % of that", nc_max * 8 / 10, &nc_80));
    table.push_str(&format!(
        "\n| memory / end to end | figure |\n| --- | --- |\n| webhook RSS idle (caches synced) | {:.1} MiB |\n| webhook RSS peak under the keep-alive load above | {:.1} MiB |\n| webhook RSS peak while the new-connection search overloads it (2× past its maximum) | {:.1} MiB |\n| `create --dry-run=server` of the KafkaCluster through the API server, no webhook registered (p50 / p99) | {:.2} / {:.2} ms |\n| the same with our validating + mutating webhooks registered (p50 / p99) | {:.2} / {:.2} ms |\n",
        mib(idle_kib),
        mib(load_kib),
        mib(flood_kib),
        without.0,
        without.1,
        with.0,
        with.1
    ));
    if let Some((idle, peak, settled, took)) = operator {
        table.push_str(&format!(
            "| operator RSS idle (leader, no KafkaCluster) | {:.1} MiB |\n| operator RSS peak while reconciling 100 KafkaClusters × 10 brokers (1000 Pods, ConfigMaps, PVCs written in {took:.0} s) | {:.1} MiB |\n| operator RSS settled with those 100 clusters | {:.1} MiB |\n",
            mib(idle),
            mib(peak),
            mib(settled)
        ));
    }
    if let Some(theirs) = &compared {
        table.push_str(&format!(
            "\nSide by side, same machine, same run, same review and load tool: Koperator's own KafkaCluster validator ({}) served by controller-runtime's admission handler in a small Go harness, pinned to CPU 0 the same way.\n\n| | ours | Koperator (Go) | ratio |\n| --- | ---: | ---: | ---: |\n",
            args.compare_label
        ));
        let ratio = |a: f64, b: f64| if b > 0.0 { format!("{:.1}×", a / b) } else { "-".into() };
        table.push_str(&format!(
            "| keep-alive max req/s at p99 ≤ 5 ms | {} | {} | {} |\n| new-connection max req/s at p99 ≤ 5 ms | {} | {} | {} |\n| p50 at 80 % of our keep-alive max, µs | {} | {} | |\n| RSS idle | {:.1} MiB | {:.1} MiB | {} |\n| RSS peak under keep-alive load | {:.1} MiB | {:.1} MiB | {} |\n| RSS peak under the new-connection overload | {:.1} MiB | {:.1} MiB | {} |\n",
            ours.ka_max,
            theirs.ka_max,
            ratio(ours.ka_max as f64, theirs.ka_max as f64),
            ours.nc_max,
            theirs.nc_max,
            ratio(ours.nc_max as f64, theirs.nc_max as f64),
            ours.ka_80.p50,
            theirs.ka_80.p50,
            mib(ours.idle_kib),
            mib(theirs.idle_kib),
            ratio(mib(theirs.idle_kib), mib(ours.idle_kib)),
            mib(ours.load_kib),
            mib(theirs.load_kib),
            ratio(mib(theirs.load_kib), mib(ours.load_kib)),
            mib(ours.flood_kib),
            mib(theirs.flood_kib),
            ratio(mib(theirs.flood_kib), mib(ours.flood_kib)),
        ));
    }
    let criterion = criterion_table(&repo_root().join("target/criterion"))?;
    println!("{criterion}\n{table}");
    let doc = std::fs::read_to_string(&args.out).unwrap_or_default();
    let doc = put_section(&doc, "criterion", "In process (`make bench`, criterion)", &criterion);
    let doc = put_section(&doc, "https", "HTTPS load (`make bench`)", &table);
    std::fs::write(&args.out, doc)?;
    eprintln!("written to {}", args.out.display());
    Ok(())
}

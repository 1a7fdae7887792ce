//! `koperator-webhook`: the admission webhook (validating and mutating) for Koperator's custom
//! resources, serving HTTPS with a self-managed, rotating certificate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use koperator_shared::cli::CommonArgs;
use koperator_webhook::admission::Admission;
use koperator_webhook::certs::{CertLoop, CertStatus, FileSource, OwnedConfigs, SecretSource, Source};
use koperator_webhook::kafka_checks::LiveKafkaChecks;
use koperator_webhook::lookups::CachedLookups;
use koperator_webhook::metrics::Metrics;
use koperator_webhook::pki::PkiConfig;
use koperator_webhook::server;
use tracing::info;

/// Default of --kafka-timeout: keep it below the webhook registration's 5 s timeout.
const DEFAULT_KAFKA_TIMEOUT: Duration = Duration::from_millis(2500);

/// Admission webhook for kafka.banzaicloud.io resources.
#[derive(Parser, Debug)]
#[command(name = "koperator-webhook", version, about)]
struct Args {
    /// Address to serve HTTPS on.
    #[arg(long, env = "WEBHOOK_LISTEN", default_value = "0.0.0.0:9443")]
    listen: SocketAddr,
    /// Namespace of the webhook (holds the certificate Secret).
    #[arg(long, env = "POD_NAMESPACE", default_value = "koperator")]
    namespace: String,
    /// Secret holding the self-managed CA and serving certificate.
    #[arg(long, default_value = "koperator-webhook-certs")]
    secret_name: String,
    /// Service name in front of the webhook; its DNS names go into the certificate.
    #[arg(long, default_value = "koperator-webhook")]
    service_name: String,
    /// Extra DNS names or IP addresses for the serving certificate (repeatable).
    #[arg(long = "extra-san")]
    extra_sans: Vec<String>,
    /// ValidatingWebhookConfigurations whose caBundle this webhook maintains (repeatable; empty
    /// string for none).
    #[arg(long = "validating-config", default_value = "koperator-validating-webhook")]
    validating_configs: Vec<String>,
    /// MutatingWebhookConfigurations whose caBundle this webhook maintains (repeatable).
    #[arg(long = "mutating-config", default_value = "koperator-mutating-webhook")]
    mutating_configs: Vec<String>,
    /// Deployment (in --namespace) that owns the certificate Secret, so uninstalling the
    /// webhook removes it too.
    #[arg(long)]
    secret_owner_deployment: Option<String>,
    /// Lifetime of the self-managed CA.
    #[arg(long, default_value = "8760h", value_parser = humantime::parse_duration)]
    ca_validity: Duration,
    /// Lifetime of the serving certificate (renewed at 2/3).
    #[arg(long, default_value = "720h", value_parser = humantime::parse_duration)]
    leaf_validity: Duration,
    /// How long a new CA sits in the bundle before it signs, so the API server trusts it first.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    ca_propagation: Duration,
    /// Interval of the certificate check (watch events trigger it earlier).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    cert_check_interval: Duration,
    /// Serve this certificate file instead of the self-managed PKI (cert-manager); reloaded when it changes.
    #[arg(long, requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// Key of --tls-cert-file.
    #[arg(long, requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// With --tls-cert-file: a CA bundle file to inject into the owned configurations.
    #[arg(long, requires = "tls_cert_file")]
    ca_file: Option<PathBuf>,
    /// Most connections served at once; more wait in the accept queue (the API server keeps a
    /// few keep-alive connections). Every connection frees its slot within a bounded time
    /// (TLS handshake 10 s, headers or idle 10 s, body at most 30 s, age 60 s + 40 s grace), so
    /// slow clients cannot hold them; an idle TLS connection costs about 20 KiB. A body that
    /// holds memory budget is cut sooner, by --min-body-rate.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Bytes that request bodies and decoded objects of all requests in flight may take
    /// together; past it requests wait, first come first served (until their deadline, then
    /// 503). A body is charged its Content-Length (required: 411 without) before it arrives,
    /// and keeps the charge only while it arrives at --min-body-rate.
    #[arg(long, default_value_t = server::DEFAULT_MEMORY_BUDGET)]
    memory_budget: usize,
    /// Bytes per second a request body must arrive at, on average, once it holds its share of
    /// --memory-budget: it must be complete within 1 s plus its size at this rate (and within
    /// the request's timeout), else it is answered 408 and its share given back at once, so
    /// slow clients cannot keep the budget from the API server's reviews. The API server sends
    /// reviews from memory over the cluster network, far faster than the default 1 MiB/s.
    #[arg(long, default_value_t = koperator_webhook::limits::DEFAULT_MIN_BODY_RATE,
          value_parser = clap::value_parser!(u64).range(1..))]
    min_body_rate: u64,
    /// On SIGTERM, keep serving this long, not ready (`/readyz` 503) and closing each connection
    /// after its answer, before the listener closes: the Service's EndpointSlice drops this
    /// replica and the API server moves its connections to the others first, so a rollout or a
    /// node drain fails no admission. The Pod's terminationGracePeriodSeconds must exceed it
    /// plus 10 s (open requests finishing). 0 stops accepting at once.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    shutdown_delay: Duration,
    /// Watch only this namespace (single-namespace installs): the lookups list and watch it
    /// alone, and references to KafkaClusters elsewhere are refused.
    #[arg(long, env = "WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Flags shared with the operator: --log-format, --kafka-hosts-file, --kafka-connect-timeout,
    /// --kafka-timeout (here the budget of a whole KafkaTopic check against Kafka, 2500ms by
    /// default; past it the request is answered with an Internal error), --node-port-range,
    /// --identity.
    #[command(flatten)]
    common: CommonArgs,
}

fn sans(args: &Args) -> Vec<String> {
    let (s, ns) = (&args.service_name, &args.namespace);
    let mut v = vec![format!("{s}.{ns}.svc"), format!("{s}.{ns}.svc.cluster.local"), format!("{s}.{ns}"), s.clone()];
    v.extend(args.extra_sans.iter().cloned());
    v
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    args.common.init_logging();
    raise_open_files_limit();
    let identity = args.common.identity_or("koperator-webhook");
    info!(identity, version = env!("CARGO_PKG_VERSION"), "starting");
    let client =
        kube::Client::try_default().await.context("connect to the Kubernetes API (in-cluster or KUBECONFIG)")?;
    let metrics = Arc::new(Metrics::new());
    let status = CertStatus::new();
    let configs = OwnedConfigs {
        validating: args.validating_configs.iter().filter(|s| !s.is_empty()).cloned().collect(),
        mutating: args.mutating_configs.iter().filter(|s| !s.is_empty()).cloned().collect(),
    };
    let (source, inject) = match (&args.tls_cert_file, &args.tls_key_file) {
        (Some(cert), Some(key)) => {
            let inject = args.ca_file.is_some();
            (Source::Files(FileSource { cert: cert.clone(), key: key.clone(), ca: args.ca_file.clone() }), inject)
        }
        _ => (
            Source::Secret(SecretSource {
                client: client.clone(),
                namespace: args.namespace.clone(),
                name: args.secret_name.clone(),
                pki: PkiConfig {
                    ca_validity: args.ca_validity,
                    leaf_validity: args.leaf_validity,
                    propagation: args.ca_propagation,
                    sans: sans(&args),
                },
                owner_deployment: args.secret_owner_deployment.clone(),
            }),
            true,
        ),
    };
    CertLoop {
        source,
        client: inject.then(|| client.clone()),
        configs,
        interval: args.cert_check_interval,
        status: status.clone(),
        metrics: metrics.clone(),
    }
    .start()
    .await;

    let admission = Arc::new(Admission {
        lookups: Arc::new(CachedLookups::start(client.clone(), args.watch_namespace.clone().filter(|n| !n.is_empty()))),
        kafka: Arc::new(
            LiveKafkaChecks::new(
                tokio::runtime::Handle::current(),
                args.common.kafka_hosts_file.clone(),
                args.common.kafka_connect_timeout,
                args.common.kafka_timeout_or(DEFAULT_KAFKA_TIMEOUT),
            )
            .with_client_certificates(client.clone()),
        ),
        rules: args.common.rules.clone(),
    });
    let budget = koperator_webhook::limits::Budget::new(args.memory_budget).with_min_body_rate(args.min_body_rate);
    let connections = metrics.connections.clone();
    let app = server::router(server::AppState { admission, metrics, certs: status.clone(), budget });
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listen on {}", args.listen))?;
    info!(listen = %listener.local_addr()?, "serving admission webhook");
    server::serve(
        listener,
        server::tls_config(&status),
        app,
        args.max_connections,
        shutdown_signal(),
        args.shutdown_delay,
        connections,
    )
    .await;
    info!("stopped");
    Ok(())
}

/// Raises the soft limit of open files to the hard limit (as Go programs do at start), so
/// that `--max-connections` is not cut short by a default soft limit of 1024.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                tracing::warn!(soft = lim.rlim_cur, hard = lim.rlim_max, "could not raise the open files limit");
                return;
            }
        }
    }
    info!(open_files = lim.rlim_max, "open files limit");
}

async fn shutdown_signal() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_charts_flags_and_the_common_ones_parse() {
        let args = Args::try_parse_from([
            "koperator-webhook",
            "--listen=127.0.0.1:9443",
            "--secret-owner-deployment=koperator-webhook",
            "--validating-config=koperator-webhook",
            "--ca-propagation=30s",
            "--node-port-range=20000-20100",
            "--log-format=text",
            "--kafka-hosts-file=/tmp/hosts",
            "--kafka-connect-timeout=1s",
            "--identity=webhook-0",
        ])
        .unwrap();
        assert_eq!(
            args.common.rules,
            koperator_shared::rules::RuleConfig::with_node_port_range("20000-20100").unwrap()
        );
        assert_eq!(args.common.kafka_timeout_or(DEFAULT_KAFKA_TIMEOUT), Duration::from_millis(2500));
        assert_eq!(args.common.kafka_connect_timeout, Duration::from_secs(1));
        assert_eq!(args.common.identity_or("koperator-webhook"), "webhook-0");
        assert_eq!(args.min_body_rate, 1024 * 1024);
        assert_eq!(args.shutdown_delay, Duration::from_secs(5));
        let args =
            Args::try_parse_from(["koperator-webhook", "--kafka-timeout=1500ms", "--min-body-rate=65536"]).unwrap();
        assert_eq!(args.min_body_rate, 65536);
        assert!(Args::try_parse_from(["koperator-webhook", "--min-body-rate=0"]).is_err());
        assert_eq!(args.common.kafka_timeout_or(DEFAULT_KAFKA_TIMEOUT), Duration::from_millis(1500));
        let bad = Args::try_parse_from(["koperator-webhook", "--node-port-range=32767-30000"]).unwrap_err();
        assert!(bad.to_string().contains("above"), "{bad}");
    }
}

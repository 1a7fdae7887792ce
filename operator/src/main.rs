//! `koperator`: reconciles KafkaCluster objects into per-broker ConfigMaps, Pods and PVCs.

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use koperator_shared::rules::RuleConfig;

/// Kafka operator for kafka.banzaicloud.io resources.
#[derive(Parser, Debug)]
#[command(name = "koperator", version, about)]
struct Args {
    /// Namespace to watch; all namespaces when unset.
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Service node-port range of the cluster, for the NodePort rules.
    #[arg(long, default_value = "30000-32767")]
    node_port_range: String,
    /// Log as JSON lines (default) or text.
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    log_format: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if args.log_format == "json" {
        tracing_subscriber::fmt().json().with_env_filter(filter).init();
    } else {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        tracing_subscriber::fmt().with_ansi(ansi).with_env_filter(filter).init();
    }
    let (a, b) = args.node_port_range.split_once('-').context("--node-port-range is <first>-<last>")?;
    let (a, b): (i32, i32) = (a.trim().parse()?, b.trim().parse()?);
    if a > b {
        bail!("--node-port-range: {a} is above {b}");
    }
    let client =
        kube::Client::try_default().await.context("connect to the Kubernetes API (in-cluster or KUBECONFIG)")?;
    tracing::info!(namespace = ?args.namespace, "starting the KafkaCluster controller");
    koperator_operator::kafkacluster::run(client, args.namespace, RuleConfig { node_port_range: a..=b }).await;
    tracing::info!("stopped");
    Ok(())
}

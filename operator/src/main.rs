//! `koperator`: reconciles KafkaCluster objects into per-broker ConfigMaps, Pods and PVCs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Parser;
use koperator_operator::kafka_access::KafkaAccess;
use koperator_operator::leader::{self, LeaseConfig};
use koperator_operator::{kafkacluster, kafkatopic, kafkauser, metrics};
use koperator_shared::rules::RuleConfig;
use tracing::{error, info};

/// Kafka operator for kafka.banzaicloud.io resources.
#[derive(Parser, Debug)]
#[command(name = "koperator", version, about)]
struct Args {
    /// Namespace to watch; all namespaces when unset.
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Address of /healthz, /readyz and /metrics (plain HTTP).
    #[arg(long, env = "METRICS_LISTEN", default_value = "0.0.0.0:8080")]
    metrics_listen: SocketAddr,
    /// Elect a leader through a Lease so that only one replica reconciles.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Namespace of the leader Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "koperator")]
    lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, default_value = "koperator-leader")]
    lease_name: String,
    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Lease duration.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    lease_duration: Duration,
    /// Service node-port range of the cluster, for the NodePort rules.
    #[arg(long, default_value = "30000-32767")]
    node_port_range: String,
    /// Hosts file (`/etc/hosts` format) consulted before DNS for broker names; for running the
    /// operator outside the cluster (development, the e2e tests). Re-read on every lookup.
    #[arg(long, env = "KAFKA_HOSTS_FILE")]
    kafka_hosts_file: Option<std::path::PathBuf>,
    /// Log as JSON lines (default) or text.
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    log_format: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    koperator_shared::logging::init(&args.log_format);
    let rules = RuleConfig::with_node_port_range(&args.node_port_range)?;
    let client =
        kube::Client::try_default().await.context("connect to the Kubernetes API (in-cluster or KUBECONFIG)")?;
    let m = metrics::Metrics::new();
    let listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("listen on {}", args.metrics_listen))?;
    info!(listen = %listener.local_addr()?, "serving /healthz, /readyz, /metrics");
    let router = metrics::router(m.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    m.ready.store(true, Ordering::SeqCst);

    if args.leader_elect {
        let identity = args.identity.clone().unwrap_or_else(|| format!("koperator-{}", std::process::id()));
        let cfg = LeaseConfig {
            namespace: args.lease_namespace.clone(),
            name: args.lease_name.clone(),
            identity,
            duration: args.lease_duration,
            renew_every: args.lease_duration / 5,
        };
        leader::acquire(&client, &cfg).await;
        m.leader.set(1);
        let (c, cfg2) = (client.clone(), cfg.clone());
        tokio::spawn(async move {
            leader::hold(&c, &cfg2).await;
            error!("leadership lost; exiting so that only the new leader reconciles");
            std::process::exit(1);
        });
    }
    info!(namespace = ?args.namespace, "starting the KafkaCluster controller");
    let kafka = Arc::new(KafkaAccess::new(args.kafka_hosts_file.clone()));
    tokio::join!(
        kafkacluster::run(client.clone(), args.namespace.clone(), rules, m.clone(), kafka.clone()),
        kafkatopic::run(client.clone(), args.namespace.clone(), kafka.clone(), m.clone()),
        kafkauser::run(client, args.namespace, kafka, m),
    );
    info!("stopped");
    Ok(())
}

//! `koperator`: reconciles KafkaCluster, KafkaTopic and KafkaUser objects into per-broker
//! ConfigMaps, Pods and PVCs and Kafka-side state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Parser;
use koperator_operator::controller::Context;
use koperator_operator::kafka_access::KafkaAccess;
use koperator_operator::kafkacluster::certificates::PkiConfig;
use koperator_operator::leader::{self, LeaseConfig};
use koperator_operator::{alerts, cruisecontroloperation, kafkacluster, kafkatopic, kafkauser, metrics};
use koperator_shared::cli::CommonArgs;
use tracing::{error, info};

/// Kafka operator for kafka.banzaicloud.io resources.
#[derive(Parser, Debug)]
#[command(name = "koperator", version, about)]
struct Args {
    /// Namespace to watch; all namespaces when unset.
    #[arg(long, env = "WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Address of /healthz, /readyz and /metrics (plain HTTP).
    #[arg(long, env = "METRICS_LISTEN", default_value = "0.0.0.0:8080")]
    metrics_listen: SocketAddr,
    /// Address of the alert receiver (plain HTTP; Prometheus or Alertmanager posts alerts
    /// whose `command` annotation scales the cluster). Off when unset; the chart sets it and
    /// restricts who may reach it with a NetworkPolicy.
    #[arg(long, env = "ALERTS_LISTEN")]
    alerts_listen: Option<SocketAddr>,
    /// Elect a leader through a Lease so that only one replica reconciles.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Namespace of the leader Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "koperator")]
    lease_namespace: String,
    /// Name of the leader Lease.
    #[arg(long, default_value = "koperator-leader")]
    lease_name: String,
    /// Lease duration.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    lease_duration: Duration,
    /// Reconciles each controller runs at once (Koperator: 1 for KafkaClusters, 10 for
    /// KafkaTopics). Each object is reconciled by one at a time whatever this is.
    #[arg(long, default_value_t = koperator_operator::controller::DEFAULT_CONCURRENT_RECONCILES,
          value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_reconciles: u16,
    /// Lifetime of a cluster CA the operator creates (`sslSecrets.create: true`).
    #[arg(long, default_value = "3650days", value_parser = humantime::parse_duration)]
    cluster_ca_validity: Duration,
    /// Lifetime of the broker and operator certificates it issues (renewed at two thirds).
    #[arg(long, default_value = "365days", value_parser = humantime::parse_duration)]
    cluster_cert_validity: Duration,
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    args.common.init_logging();
    let identity = args.common.identity_or("koperator");
    let client =
        kube::Client::try_default().await.context("connect to the Kubernetes API (in-cluster or KUBECONFIG)")?;
    let m = metrics::Metrics::new();
    let listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("listen on {}", args.metrics_listen))?;
    info!(listen = %listener.local_addr()?, %identity, "serving /healthz, /readyz, /metrics");
    let router = metrics::router(m.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    m.ready.store(true, Ordering::SeqCst);

    let mut leading = None;
    if args.leader_elect {
        let cfg = LeaseConfig {
            namespace: args.lease_namespace.clone(),
            name: args.lease_name.clone(),
            identity: identity.clone(),
            duration: args.lease_duration,
            renew_every: args.lease_duration / 5,
        };
        // The Lease has a client (and connections) of its own: renewals never wait behind the
        // controllers' requests in a shared client queue.
        let lease_client =
            kube::Client::try_default().await.context("connect to the Kubernetes API for the leader Lease")?;
        leader::acquire(&lease_client, &cfg).await;
        m.leader.set(1);
        let (c, cfg2) = (lease_client, cfg.clone());
        let holder = tokio::spawn(async move {
            leader::hold(&c, &cfg2).await;
            error!("leadership lost; exiting so that only the new leader reconciles");
            std::process::exit(1);
        });
        leading = Some((holder, cfg));
    }
    info!(
        namespace = ?args.watch_namespace,
        "starting the KafkaCluster, KafkaTopic, KafkaUser and CruiseControlOperation controllers"
    );
    let hosts_file = args.common.kafka_hosts_file.clone();
    let kafka = Arc::new(KafkaAccess::new(
        client.clone(),
        hosts_file.clone(),
        args.common.kafka_connect_timeout,
        args.common.kafka_timeout_or(Duration::from_secs(10)),
    ));
    let mut ctx = Context::new(client.clone(), identity, args.common.rules.clone(), m, kafka, args.watch_namespace);
    ctx.cruise_control.resolver = koperator_shared::kafka::Resolver::with_hosts_file(hosts_file);
    ctx.concurrency = args.max_concurrent_reconciles;
    ctx.pki = PkiConfig { ca_validity: args.cluster_ca_validity, leaf_validity: args.cluster_cert_validity };
    let ctx = Arc::new(ctx);
    // Only the leader acts on alerts: the receiver listens once leadership is held.
    if let Some(addr) = args.alerts_listen {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listen on {addr}"))?;
        info!(listen = %listener.local_addr()?, "serving the alert receiver");
        let router = alerts::router(ctx.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        tokio::spawn(alerts::retry_deferred(ctx.clone()));
    }
    tokio::join!(
        kafkacluster::run(ctx.clone()),
        kafkatopic::run(ctx.clone()),
        kafkauser::run(ctx.clone()),
        cruisecontroloperation::run(ctx)
    );
    // The controllers have stopped (SIGTERM): stop renewing, then hand the lease over.
    if let Some((holder, cfg)) = leading {
        holder.abort();
        leader::release(&client, &cfg).await;
    }
    info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconcile_concurrency_is_bounded_and_at_least_one() {
        let args = Args::try_parse_from(["koperator"]).unwrap();
        assert_eq!(args.max_concurrent_reconciles, koperator_operator::controller::DEFAULT_CONCURRENT_RECONCILES);
        let args = Args::try_parse_from(["koperator", "--max-concurrent-reconciles=1"]).unwrap();
        assert_eq!(args.max_concurrent_reconciles, 1);
        assert!(Args::try_parse_from(["koperator", "--max-concurrent-reconciles=0"]).is_err());
    }
}

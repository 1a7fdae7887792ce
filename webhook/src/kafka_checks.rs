//! KafkaTopic admission checks against live Kafka (`shared::rules::kafkatopic::check_against_kafka`):
//! the topic as Kafka has it (partitions, replication factor, topic-level configs) and the live
//! broker count, read with a hard time budget so that an unreachable cluster gives a clear
//! Internal error well inside the webhook timeout.

use std::time::Duration;

use koperator_shared::api::{KafkaCluster, KafkaTopic};
use koperator_shared::kafka::{Admin, ConfigResource, ConfigSource, ConnectOptions, Resolver};
use koperator_shared::render::names::admin_bootstrap;
use koperator_shared::rules::{FieldError, RuleConfig};
use koperator_shared::validated::ValidatedCluster;
use koperator_shared::rules::kafkatopic::{ExistingTopic, check_against_kafka};
use tokio::runtime::Handle;
use tracing::debug;

use crate::admission::KafkaTopicChecks;

/// Asks the topic's cluster.
pub struct LiveKafkaChecks {
    runtime: Handle,
    opts: ConnectOptions,
    budget: Duration,
}

impl LiveKafkaChecks {
    /// Checks that run on `runtime`, resolve broker names through `hosts_file` first and give
    /// up after `budget`.
    pub fn new(runtime: Handle, hosts_file: Option<std::path::PathBuf>, budget: Duration) -> Self {
        let opts = ConnectOptions {
            client_id: "koperator-webhook".into(),
            connect_timeout: budget / 2,
            request_timeout: budget,
            tls: None,
            resolver: Resolver::with_hosts_file(hosts_file),
        };
        LiveKafkaChecks { runtime, opts, budget }
    }
}

async fn read_topic(admin: &Admin, name: &str) -> Result<(Option<ExistingTopic>, usize), String> {
    let meta = admin.metadata(Some(&[name])).await.map_err(|e| e.to_string())?;
    let live = meta.brokers.len();
    let Some(t) = meta.topic(name) else { return Ok((None, live)) };
    let config = admin
        .describe_configs(&ConfigResource::Topic(name.into()))
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|c| c.source == ConfigSource::DynamicTopic)
        .filter_map(|c| Some((c.name, c.value?)))
        .collect();
    let existing = ExistingTopic {
        partitions: t.partitions.len() as i32,
        replication_factor: t.replication_factor() as i32,
        config,
    };
    Ok((Some(existing), live))
}

impl KafkaTopicChecks for LiveKafkaChecks {
    fn check(&self, topic: &KafkaTopic, cluster: &KafkaCluster, cr_exists: bool) -> Result<Vec<FieldError>, String> {
        // The cluster's own rules decide its listeners; a cluster that breaks them has no
        // Kafka to ask (the operator does not run it).
        let validated = match ValidatedCluster::new(cluster, &RuleConfig::default()) {
            Ok(v) => v,
            Err(why) => {
                debug!(%why, "KafkaTopic checks against Kafka skipped");
                return Ok(Vec::new());
            }
        };
        let bootstrap = match admin_bootstrap(&validated) {
            Ok(b) => b,
            Err(why) => {
                debug!(%why, "KafkaTopic checks against Kafka skipped");
                return Ok(Vec::new());
            }
        };
        let admin = Admin::new(bootstrap, self.opts.clone()).with_retry_for(Duration::ZERO);
        let budget = self.budget;
        let read =
            self.runtime.block_on(async { tokio::time::timeout(budget, read_topic(&admin, &topic.spec.name)).await });
        let (existing, live) = match read {
            Err(_) => return Err(format!("no answer from Kafka within {budget:?}")),
            Ok(r) => r?,
        };
        Ok(check_against_kafka(topic, existing.as_ref(), cr_exists, live))
    }
}

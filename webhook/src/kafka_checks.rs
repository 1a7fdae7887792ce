//! KafkaTopic admission checks against live Kafka (`shared::rules::kafkatopic::check_against_kafka`):
//! the topic as Kafka has it (partitions, replication factor, topic-level configs) and the live
//! broker count, read with a hard time budget so that an unreachable cluster gives a clear
//! Internal error well inside the webhook timeout. The operator's admin client is used: it
//! connects only to the broker addresses derived from the cluster (`render::names::admin_nodes`)
//! and refuses oversized or malformed answers with an error (a hostile peer cannot crash the
//! webhook).

use std::time::Duration;

use koperator_shared::api::KafkaTopic;
use koperator_shared::kafka::{self, Admin, ConfigResource, ConfigSource, ConnectOptions, Resolver};
use koperator_shared::render::names::admin_nodes;
use koperator_shared::rules::FieldError;
use koperator_shared::rules::kafkatopic::{ExistingTopic, check_against_kafka};
use koperator_shared::validated::ValidatedCluster;
use tokio::runtime::Handle;
use tracing::debug;

use crate::admission::KafkaTopicChecks;

/// Why a KafkaTopic could not be checked against its Kafka.
#[derive(Debug, thiserror::Error)]
pub enum KafkaCheckError {
    /// Kafka did not answer every read within the budget.
    #[error("no answer from Kafka within {0:?}")]
    Timeout(Duration),
    /// A Kafka request failed (unreachable, refused, an error code).
    #[error(transparent)]
    Kafka(#[from] kafka::Error),
}

impl KafkaCheckError {
    /// Stable category for metric labels and logs.
    pub fn category(&self) -> &'static str {
        match self {
            KafkaCheckError::Timeout(_) => "KafkaCheckTimeout",
            KafkaCheckError::Kafka(e) => e.category(),
        }
    }
}

/// Asks the topic's cluster.
pub struct LiveKafkaChecks {
    runtime: Handle,
    opts: ConnectOptions,
    budget: Duration,
}

impl LiveKafkaChecks {
    /// Checks that run on `runtime`, resolve broker names through `hosts_file` first, give a
    /// connection attempt `connect_timeout` (capped at half the budget, so that a second
    /// broker can still be tried) and give up after `budget`.
    pub fn new(
        runtime: Handle,
        hosts_file: Option<std::path::PathBuf>,
        connect_timeout: Duration,
        budget: Duration,
    ) -> Self {
        let opts = ConnectOptions {
            client_id: "koperator-webhook".into(),
            connect_timeout: connect_timeout.min(budget / 2),
            request_timeout: budget,
            tls: None,
            resolver: Resolver::with_hosts_file(hosts_file),
        };
        LiveKafkaChecks { runtime, opts, budget }
    }
}

async fn read_topic(admin: &Admin, name: &str) -> Result<(Option<ExistingTopic>, usize), kafka::Error> {
    let meta = admin.metadata(Some(&[name])).await?;
    let live = meta.brokers.len();
    let Some(t) = meta.topic(name) else { return Ok((None, live)) };
    let config = admin
        .describe_configs(&ConfigResource::Topic(name.into()))
        .await?
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
    fn check(
        &self,
        topic: &KafkaTopic,
        cluster: &ValidatedCluster,
        cr_exists: bool,
    ) -> Result<Vec<FieldError>, KafkaCheckError> {
        // A cluster whose admin listener the client cannot speak has no Kafka to ask.
        let nodes = match admin_nodes(cluster) {
            Ok(n) => n,
            Err(why) => {
                debug!(%why, category = why.category(), "KafkaTopic checks against Kafka skipped");
                return Ok(Vec::new());
            }
        };
        let admin = Admin::for_nodes(nodes, self.opts.clone()).with_retry_for(Duration::ZERO);
        let budget = self.budget;
        let read =
            self.runtime.block_on(async { tokio::time::timeout(budget, read_topic(&admin, &topic.spec.name)).await });
        let (existing, live) = read.map_err(|_| KafkaCheckError::Timeout(budget))??;
        Ok(check_against_kafka(topic, existing.as_ref(), cr_exists, live))
    }
}

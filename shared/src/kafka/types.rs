//! Plain data the admin client returns, free of protocol details.

use std::collections::BTreeMap;
use std::fmt;

use kafka_protocol::ResponseError;

/// A live broker's advertised address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddr {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// Result of a Metadata request.
#[derive(Debug, Clone, Default)]
pub struct ClusterMetadata {
    pub cluster_id: Option<String>,
    /// The broker Kafka names as controller (in KRaft: a random live broker; see `QuorumInfo`).
    pub controller_id: i32,
    /// Live (unfenced) brokers by node id.
    pub brokers: BTreeMap<i32, BrokerAddr>,
    pub topics: Vec<TopicMetadata>,
}

impl ClusterMetadata {
    /// The topic named `name`, if it exists.
    pub fn topic(&self, name: &str) -> Option<&TopicMetadata> {
        self.topics.iter().find(|t| t.name == name && t.error.is_none())
    }
}

/// One topic of a Metadata response.
#[derive(Debug, Clone)]
pub struct TopicMetadata {
    pub name: String,
    /// Set when the topic could not be described (for example it does not exist).
    pub error: Option<ResponseError>,
    pub internal: bool,
    pub partitions: Vec<PartitionMetadata>,
}

impl TopicMetadata {
    /// Replication factor (replicas of the first partition).
    pub fn replication_factor(&self) -> usize {
        self.partitions.first().map(|p| p.replicas.len()).unwrap_or(0)
    }
}

/// One partition: its leader, replicas, in-sync replicas and offline replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub index: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline: Vec<i32>,
}

/// Result of DescribeCluster.
#[derive(Debug, Clone)]
pub struct ClusterDescription {
    pub cluster_id: String,
    pub controller_id: i32,
    pub brokers: Vec<ClusterBroker>,
}

/// A registered broker and whether the controller has fenced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterBroker {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub fenced: bool,
}

/// One log directory of a broker (DescribeLogDirs): where it is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDir {
    /// The directory, as in the broker's `log.dirs`.
    pub path: String,
    /// The broker cannot use it (`KAFKA_STORAGE_ERROR`, offline), with Kafka's error name.
    pub error: Option<String>,
    /// Partition replicas stored in it, future replicas (moving in) included.
    pub replicas: usize,
    /// Bytes of those replicas.
    pub bytes: i64,
}

/// The KRaft metadata quorum (DescribeQuorum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumInfo {
    /// The active controller.
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<QuorumReplica>,
    pub observers: Vec<QuorumReplica>,
}

/// A voter or observer of the quorum and how far its log has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumReplica {
    pub id: i32,
    pub log_end_offset: i64,
    /// Milliseconds since the epoch when it last caught up with the leader; -1 if unknown.
    pub last_caught_up_ms: i64,
}

/// What a config request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    Topic(String),
    /// One broker's own (per-broker dynamic) configuration.
    Broker(i32),
    /// The cluster-wide dynamic broker defaults.
    BrokerDefaults,
}

impl ConfigResource {
    pub(crate) fn type_code(&self) -> i8 {
        match self {
            ConfigResource::Topic(_) => 2,
            ConfigResource::Broker(_) | ConfigResource::BrokerDefaults => 4,
        }
    }

    pub(crate) fn name(&self) -> String {
        match self {
            ConfigResource::Topic(t) => t.clone(),
            ConfigResource::Broker(id) => id.to_string(),
            ConfigResource::BrokerDefaults => String::new(),
        }
    }
}

impl fmt::Display for ConfigResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigResource::Topic(t) => write!(f, "topic {t}"),
            ConfigResource::Broker(id) => write!(f, "broker {id}"),
            ConfigResource::BrokerDefaults => f.write_str("cluster-wide broker defaults"),
        }
    }
}

/// Where a config value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    Unknown,
    DynamicTopic,
    DynamicBroker,
    DynamicDefaultBroker,
    StaticBroker,
    Default,
    DynamicBrokerLogger,
    ClientMetrics,
    Group,
}

impl ConfigSource {
    pub(crate) fn from_code(code: i8) -> Self {
        match code {
            1 => ConfigSource::DynamicTopic,
            2 => ConfigSource::DynamicBroker,
            3 => ConfigSource::DynamicDefaultBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            6 => ConfigSource::DynamicBrokerLogger,
            7 => ConfigSource::ClientMetrics,
            8 => ConfigSource::Group,
            _ => ConfigSource::Unknown,
        }
    }
}

/// One configuration key as Kafka reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub read_only: bool,
    pub source: ConfigSource,
    pub sensitive: bool,
}

/// A change of one configuration key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    Set(String, String),
    Delete(String),
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

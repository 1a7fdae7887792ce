//! The admin client: cluster metadata, quorum, configs, topics and ACLs.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    BrokerId, CreateAclsRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteAclsRequest, DeleteTopicsRequest,
    DescribeAclsRequest, DescribeClusterRequest, DescribeConfigsRequest, DescribeLogDirsRequest, DescribeQuorumRequest,
    IncrementalAlterConfigsRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::sync::Mutex;

use super::acl::{AclBinding, AclFilter};
use super::connection::{ConnectOptions, Connection};
use super::error::{Error, Result, check};
use super::scram;
use super::types::*;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::{AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest};

/// An async Kafka admin client. Cheap to share behind an `Arc`; connections are kept per
/// broker address and reopened when they break.
///
/// It connects only to addresses its caller gave it, never to the host names that the cluster
/// metadata advertises (`advertised.listeners` can be set by whoever writes the cluster's
/// spec): requests for one node (broker configs, the ZooKeeper-mode controller) go to the
/// node's address from [`Admin::for_nodes`], or, built with [`Admin::new`], to the advertised
/// address only when it is one of the bootstrap addresses. Anything else is
/// [`Error::UntrustedAddress`].
pub struct Admin {
    bootstrap: Vec<String>,
    /// Node id → `host:port` as the caller derived it ([`Admin::for_nodes`]).
    nodes: Option<BTreeMap<i32, String>>,
    opts: ConnectOptions,
    /// How long a call keeps retrying retriable errors.
    retry_for: Duration,
    idle: Mutex<HashMap<String, Connection>>,
    /// Bootstrap addresses that last failed to answer, and when: tried after the others for
    /// [`Admin::SHUNNED_FOR`], so that one hung broker (its kernel still accepts connections,
    /// each request waits for the whole timeout) does not delay every call.
    failed: std::sync::Mutex<HashMap<String, Instant>>,
}

impl Admin {
    /// A client for the brokers at `bootstrap` (`host:port` each). Nothing is opened yet.
    /// Requests for one node go to the address the metadata advertises for it only when that
    /// is one of `bootstrap`.
    pub fn new(bootstrap: Vec<String>, opts: ConnectOptions) -> Self {
        let retry_for = opts.request_timeout;
        Admin { bootstrap, nodes: None, opts, retry_for, idle: Mutex::new(HashMap::new()), failed: Default::default() }
    }

    /// A client for the brokers `nodes` (node id → `host:port`, as the caller derived them, for
    /// example from the KafkaCluster's spec): it bootstraps from all of them and sends a node's
    /// requests to the address given here, whatever the metadata advertises.
    pub fn for_nodes(nodes: BTreeMap<i32, String>, opts: ConnectOptions) -> Self {
        let mut admin = Admin::new(nodes.values().cloned().collect(), opts);
        admin.nodes = Some(nodes);
        admin
    }

    /// Sets how long calls retry retriable errors (default: the request timeout).
    pub fn with_retry_for(mut self, retry_for: Duration) -> Self {
        self.retry_for = retry_for;
        self
    }

    /// The bootstrap addresses.
    pub fn bootstrap(&self) -> &[String] {
        &self.bootstrap
    }

    /// How long a bootstrap address that did not answer is tried last.
    pub const SHUNNED_FOR: Duration = Duration::from_secs(60);

    /// A kept connection to `addr` (`true`: it may have broken while idle), or a new one.
    async fn checkout(&self, addr: &str) -> Result<(Connection, bool)> {
        if let Some(conn) = self.idle.lock().await.remove(addr)
            && !conn.session_expired()
        {
            return Ok((conn, true));
        }
        Ok((Connection::open(addr, &self.opts).await?, false))
    }

    async fn call_at<R: Request>(&self, addr: &str, req: &R) -> Result<R::Response> {
        let (mut conn, kept) = self.checkout(addr).await?;
        let resp = match conn.call(req).await {
            // The broker closed a kept connection (it restarted, or its idle timeout passed):
            // that says nothing about the broker now, so one new connection is tried.
            Err(Error::Io { .. }) if kept => {
                conn = Connection::open(addr, &self.opts).await?;
                conn.call(req).await?
            }
            other => other?,
        };
        self.idle.lock().await.insert(addr.to_owned(), conn);
        Ok(resp)
    }

    /// The bootstrap addresses in the order to try them: those that recently did not answer
    /// last.
    fn bootstrap_order(&self) -> Vec<&String> {
        let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        let shunned = |a: &String| failed.get(a).is_some_and(|t| t.elapsed() < Self::SHUNNED_FOR);
        let mut order: Vec<&String> = self.bootstrap.iter().collect();
        order.sort_by_key(|a| shunned(a));
        order
    }

    fn answered(&self, addr: &str, ok: bool) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if ok {
            failed.remove(addr);
        } else {
            failed.insert(addr.to_owned(), Instant::now());
        }
    }

    /// Sends to the first bootstrap broker that answers.
    async fn call_any<R: Request>(&self, req: &R) -> Result<R::Response> {
        let mut last = None;
        for addr in self.bootstrap_order() {
            match self.call_at(addr, req).await {
                Ok(resp) => {
                    self.answered(addr, true);
                    return Ok(resp);
                }
                Err(e) if matches!(e, Error::Kafka { .. } | Error::Unsupported { .. } | Error::Auth { .. }) => {
                    return Err(e);
                }
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "bootstrap broker did not answer");
                    self.answered(addr, false);
                    last = Some(e)
                }
            }
        }
        Err(Error::NoBroker {
            bootstrap: self.bootstrap.join(","),
            last: Box::new(
                last.unwrap_or(Error::Connect { addr: String::new(), reason: "no bootstrap address".into() }),
            ),
        })
    }

    /// Sends to the broker with `node` id (live according to the cluster metadata).
    async fn call_node<R: Request>(&self, node: i32, req: &R) -> Result<R::Response> {
        let meta = self.metadata(Some(&[])).await?;
        let addr = self.node_addr(&meta, node)?;
        self.call_at(&addr, req).await
    }

    /// Sends to the controller as the metadata names it: ZooKeeper-mode clusters answer topic
    /// creation and deletion only there (`NotController` elsewhere); KRaft brokers forward.
    async fn call_controller<R: Request>(&self, req: &R) -> Result<R::Response> {
        let meta = self.metadata(Some(&[])).await?;
        let addr = self.node_addr(&meta, meta.controller_id)?;
        self.call_at(&addr, req).await
    }

    /// Where requests for `node` may go: its address from [`Admin::for_nodes`], else the
    /// advertised one if it is a bootstrap address; never a host only the metadata names.
    fn node_addr(&self, meta: &ClusterMetadata, node: i32) -> Result<String> {
        let broker = meta.brokers.get(&node).ok_or(Error::UnknownNode(node))?;
        let advertised = format!("{}:{}", broker.host, broker.port);
        let untrusted =
            || Error::UntrustedAddress { node, advertised: advertised.clone(), allowed: self.bootstrap.join(",") };
        match &self.nodes {
            Some(nodes) => {
                let addr = nodes.get(&node).ok_or_else(untrusted)?;
                if !addr.eq_ignore_ascii_case(&advertised) {
                    tracing::debug!(node, %addr, %advertised, "node advertises another address; using the derived one");
                }
                Ok(addr.clone())
            }
            None => self.bootstrap.iter().find(|b| b.eq_ignore_ascii_case(&advertised)).cloned().ok_or_else(untrusted),
        }
    }

    /// Runs `f` again while it fails with a retriable error, until `retry_for` has passed.
    async fn retrying<T, F, Fut>(&self, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let deadline = Instant::now() + self.retry_for;
        let mut backoff = Duration::from_millis(100);
        loop {
            match f().await {
                Err(e) if e.is_retriable() && Instant::now() + backoff < deadline => {
                    tracing::debug!(error = %e, ?backoff, "retrying Kafka call");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    /// Brokers, controller and topics. `topics`: `None` lists every topic, `Some(&[])` none.
    pub async fn metadata(&self, topics: Option<&[&str]>) -> Result<ClusterMetadata> {
        let req = MetadataRequest::default().with_topics(topics.map(|names| {
            names.iter().map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n)))).collect()
        }));
        let resp = self.retrying(|| self.call_any(&req)).await?;
        Ok(ClusterMetadata {
            cluster_id: resp.cluster_id.map(|s| s.to_string()),
            controller_id: resp.controller_id.0,
            brokers: resp
                .brokers
                .into_iter()
                .map(|b| {
                    let node = b.node_id.0;
                    (
                        node,
                        BrokerAddr {
                            id: node,
                            host: b.host.to_string(),
                            port: b.port,
                            rack: b.rack.map(|r| r.to_string()),
                        },
                    )
                })
                .collect(),
            topics: resp
                .topics
                .into_iter()
                .map(|t| TopicMetadata {
                    name: t.name.map(|n| n.0.to_string()).unwrap_or_default(),
                    error: kafka_protocol::ResponseError::try_from_code(t.error_code),
                    internal: t.is_internal,
                    partitions: t
                        .partitions
                        .into_iter()
                        .map(|p| PartitionMetadata {
                            index: p.partition_index,
                            leader: p.leader_id.0,
                            replicas: ids(&p.replica_nodes),
                            isr: ids(&p.isr_nodes),
                            offline: ids(&p.offline_replicas),
                        })
                        .collect(),
                })
                .collect(),
        })
    }

    /// The cluster as the controller sees it, fenced brokers included (DescribeCluster).
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let req = DescribeClusterRequest::default();
        let resp = self.retrying(|| self.call_any(&req)).await?;
        check("DescribeCluster", "cluster", resp.error_code, resp.error_message.as_deref())?;
        Ok(ClusterDescription {
            cluster_id: resp.cluster_id.to_string(),
            controller_id: resp.controller_id.0,
            brokers: resp
                .brokers
                .into_iter()
                .map(|b| ClusterBroker {
                    id: b.broker_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    fenced: b.is_fenced,
                })
                .collect(),
        })
    }

    /// The log directories of broker `node` and the replicas each holds (asked of that broker:
    /// each answers for its own disks).
    pub async fn describe_log_dirs(&self, node: i32) -> Result<Vec<LogDir>> {
        // No topic list: every partition of every directory.
        let req = DescribeLogDirsRequest::default().with_topics(None);
        let resp = self.retrying(|| self.call_node(node, &req)).await?;
        check("DescribeLogDirs", format!("broker {node}"), resp.error_code, None)?;
        Ok(resp
            .results
            .into_iter()
            .map(|r| {
                let partitions = r.topics.iter().flat_map(|t| &t.partitions);
                LogDir {
                    path: r.log_dir.to_string(),
                    error: (r.error_code != 0).then(|| {
                        ResponseError::try_from_code(r.error_code)
                            .map_or_else(|| format!("error code {}", r.error_code), |e| format!("{e:?}"))
                    }),
                    replicas: partitions.clone().count(),
                    bytes: partitions.map(|p| p.partition_size).sum(),
                }
            })
            .collect())
    }

    /// The KRaft metadata quorum: leader, voters and observers with their log end offsets.
    pub async fn describe_quorum(&self) -> Result<QuorumInfo> {
        let req = DescribeQuorumRequest::default().with_topics(vec![
            TopicData::default()
                .with_topic_name(topic_name("__cluster_metadata"))
                .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
        ]);
        let resp = self.retrying(|| self.call_any(&req)).await?;
        check("DescribeQuorum", "__cluster_metadata", resp.error_code, resp.error_message.as_deref())?;
        let part = resp.topics.into_iter().flat_map(|t| t.partitions).next().ok_or_else(|| Error::Protocol {
            addr: "quorum".into(),
            message: "no partition in DescribeQuorum".into(),
        })?;
        check("DescribeQuorum", "__cluster_metadata-0", part.error_code, part.error_message.as_deref())?;
        let replicas = |v: Vec<kafka_protocol::messages::describe_quorum_response::ReplicaState>| {
            v.into_iter()
                .map(|r| QuorumReplica {
                    id: r.replica_id.0,
                    log_end_offset: r.log_end_offset,
                    last_caught_up_ms: r.last_caught_up_timestamp,
                })
                .collect()
        };
        Ok(QuorumInfo {
            leader_id: part.leader_id.0,
            leader_epoch: part.leader_epoch,
            high_watermark: part.high_watermark,
            voters: replicas(part.current_voters),
            observers: replicas(part.observers),
        })
    }

    /// The configuration of a topic, a broker or the cluster-wide broker defaults.
    pub async fn describe_configs(&self, resource: &ConfigResource) -> Result<Vec<ConfigEntry>> {
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(resource.type_code())
                .with_resource_name(StrBytes::from_string(resource.name())),
        ]);
        let resp = match resource {
            ConfigResource::Broker(id) => self.retrying(|| self.call_node(*id, &req)).await?,
            _ => self.retrying(|| self.call_any(&req)).await?,
        };
        let result = resp.results.into_iter().next().ok_or_else(|| Error::Protocol {
            addr: "DescribeConfigs".into(),
            message: format!("no result for {resource}"),
        })?;
        check("DescribeConfigs", resource.to_string(), result.error_code, result.error_message.as_deref())?;
        Ok(result
            .configs
            .into_iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                read_only: c.read_only,
                source: ConfigSource::from_code(c.config_source),
                sensitive: c.is_sensitive,
            })
            .collect())
    }

    /// The value of one config key for many topics in one request (topics that cannot be
    /// described, for example deleted meanwhile, are left out).
    pub async fn topic_config_values(&self, topics: &[String], key: &str) -> Result<HashMap<String, String>> {
        if topics.is_empty() {
            return Ok(HashMap::new());
        }
        let req = DescribeConfigsRequest::default().with_resources(
            topics
                .iter()
                .map(|t| {
                    DescribeConfigsResource::default()
                        .with_resource_type(ConfigResource::Topic(String::new()).type_code())
                        .with_resource_name(StrBytes::from_string(t.clone()))
                        .with_configuration_keys(Some(vec![StrBytes::from_string(key.to_owned())]))
                })
                .collect(),
        );
        let resp = self.retrying(|| self.call_any(&req)).await?;
        Ok(resp
            .results
            .into_iter()
            .filter(|r| r.error_code == 0)
            .filter_map(|r| {
                let value = r.configs.into_iter().find(|c| c.name.as_str() == key)?.value?;
                Some((r.resource_name.to_string(), value.to_string()))
            })
            .collect())
    }

    /// Sets and deletes configuration keys of one resource (IncrementalAlterConfigs); broker
    /// configs change without a restart when Kafka allows them to.
    pub async fn alter_configs(&self, resource: &ConfigResource, ops: &[ConfigOp]) -> Result<()> {
        let configs = ops
            .iter()
            .map(|op| match op {
                ConfigOp::Set(k, v) => AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_string(v.clone()))),
                ConfigOp::Delete(k) => {
                    AlterableConfig::default().with_name(StrBytes::from_string(k.clone())).with_config_operation(1)
                }
            })
            .collect();
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(resource.type_code())
                .with_resource_name(StrBytes::from_string(resource.name()))
                .with_configs(configs),
        ]);
        let resp = match resource {
            ConfigResource::Broker(id) => self.retrying(|| self.call_node(*id, &req)).await?,
            _ => self.retrying(|| self.call_any(&req)).await?,
        };
        for r in resp.responses {
            check("IncrementalAlterConfigs", resource.to_string(), r.error_code, r.error_message.as_deref())?;
        }
        Ok(())
    }

    /// Creates a topic. Fails with `TopicAlreadyExists` when it exists, except when an
    /// earlier attempt of this call went unanswered (a timeout, a lost connection): Kafka may
    /// have created the topic then, so `TopicAlreadyExists` on the retry is this call's own
    /// topic, not someone else's.
    pub async fn create_topic(&self, topic: &NewTopic) -> Result<()> {
        let configs = topic
            .configs
            .iter()
            .map(|(k, v)| {
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_value(Some(StrBytes::from_string(v.clone())))
            })
            .collect();
        let req = CreateTopicsRequest::default()
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(topic_name(&topic.name))
                    .with_num_partitions(topic.partitions)
                    .with_replication_factor(topic.replication_factor)
                    .with_configs(configs),
            ])
            .with_timeout_ms(self.opts.request_timeout.as_millis() as i32);
        let mut attempts = 0;
        let resp = self
            .retrying(|| {
                attempts += 1;
                self.call_controller(&req)
            })
            .await?;
        for t in resp.topics {
            match check("CreateTopics", &topic.name, t.error_code, t.error_message.as_deref()) {
                Err(e) if attempts > 1 && e.code() == Some(ResponseError::TopicAlreadyExists) => {
                    tracing::debug!(topic = %topic.name, "topic exists after an unanswered create: taken as created");
                }
                other => other?,
            }
        }
        Ok(())
    }

    /// Raises the partition count of a topic to `count`.
    pub async fn create_partitions(&self, topic: &str, count: i32) -> Result<()> {
        let req = CreatePartitionsRequest::default()
            .with_topics(vec![
                CreatePartitionsTopic::default().with_name(topic_name(topic)).with_count(count).with_assignments(None),
            ])
            .with_timeout_ms(self.opts.request_timeout.as_millis() as i32);
        let resp = self.retrying(|| self.call_controller(&req)).await?;
        for r in resp.results {
            check("CreatePartitions", topic, r.error_code, r.error_message.as_deref())?;
        }
        Ok(())
    }

    /// Deletes a topic and its data.
    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        let req = DeleteTopicsRequest::default()
            .with_topic_names(vec![topic_name(topic)])
            .with_topics(vec![
                kafka_protocol::messages::delete_topics_request::DeleteTopicState::default()
                    .with_name(Some(topic_name(topic))),
            ])
            .with_timeout_ms(self.opts.request_timeout.as_millis() as i32);
        let resp = self.retrying(|| self.call_controller(&req)).await?;
        for r in resp.responses {
            check("DeleteTopics", topic, r.error_code, r.error_message.as_deref())?;
        }
        Ok(())
    }

    /// Whether `user` has SCRAM-SHA-512 credentials.
    pub async fn has_scram_credential(&self, user: &str) -> Result<bool> {
        let req = DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
            kafka_protocol::messages::describe_user_scram_credentials_request::UserName::default()
                .with_name(StrBytes::from_string(user.to_owned())),
        ]));
        let resp = self.retrying(|| self.call_any(&req)).await?;
        check("DescribeUserScramCredentials", user, resp.error_code, resp.error_message.as_deref())?;
        let Some(r) = resp.results.into_iter().next() else { return Ok(false) };
        if r.error_code == ResponseError::ResourceNotFound.code() {
            return Ok(false);
        }
        check("DescribeUserScramCredentials", user, r.error_code, r.error_message.as_deref())?;
        Ok(r.credential_infos.iter().any(|c| c.mechanism == scram::SCRAM_SHA_512))
    }

    /// Sets `user`'s SCRAM-SHA-512 password (salted here; Kafka never sees the password).
    pub async fn upsert_scram_credential(&self, user: &str, password: &str) -> Result<()> {
        let salt = scram::random_bytes(32);
        let salted = scram::salted_password(password, &salt, scram::ITERATIONS);
        let req = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
            ScramCredentialUpsertion::default()
                .with_name(StrBytes::from_string(user.to_owned()))
                .with_mechanism(scram::SCRAM_SHA_512)
                .with_iterations(scram::ITERATIONS as i32)
                .with_salt(salt.into())
                .with_salted_password(salted.into()),
        ]);
        let resp = self.retrying(|| self.call_any(&req)).await?;
        for r in resp.results {
            check("AlterUserScramCredentials", user, r.error_code, r.error_message.as_deref())?;
        }
        Ok(())
    }

    /// Removes `user`'s SCRAM-SHA-512 credentials (absent ones are not an error).
    pub async fn delete_scram_credential(&self, user: &str) -> Result<()> {
        let req = AlterUserScramCredentialsRequest::default().with_deletions(vec![
            ScramCredentialDeletion::default()
                .with_name(StrBytes::from_string(user.to_owned()))
                .with_mechanism(scram::SCRAM_SHA_512),
        ]);
        let resp = self.retrying(|| self.call_any(&req)).await?;
        for r in resp.results {
            if r.error_code == ResponseError::ResourceNotFound.code() {
                continue;
            }
            check("AlterUserScramCredentials", user, r.error_code, r.error_message.as_deref())?;
        }
        Ok(())
    }

    /// ACLs matching `filter`.
    pub async fn describe_acls(&self, filter: &AclFilter) -> Result<Vec<AclBinding>> {
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(filter.resource_type as i8)
            .with_resource_name_filter(filter.resource_name.clone().map(StrBytes::from_string))
            .with_pattern_type_filter(filter.pattern_type as i8)
            .with_principal_filter(filter.principal.clone().map(StrBytes::from_string))
            .with_host_filter(filter.host.clone().map(StrBytes::from_string))
            .with_operation(filter.operation as i8)
            .with_permission_type(filter.permission as i8);
        let resp = self.retrying(|| self.call_any(&req)).await?;
        check("DescribeAcls", "acls", resp.error_code, resp.error_message.as_deref())?;
        let mut out = Vec::new();
        for r in resp.resources {
            for a in r.acls {
                out.push(AclBinding::from_codes(
                    r.resource_type,
                    r.resource_name.to_string(),
                    r.pattern_type,
                    a.principal.to_string(),
                    a.host.to_string(),
                    a.operation,
                    a.permission_type,
                ));
            }
        }
        Ok(out)
    }

    /// Creates ACLs (creating an existing one is not an error).
    pub async fn create_acls(&self, acls: &[AclBinding]) -> Result<()> {
        if acls.is_empty() {
            return Ok(());
        }
        let creations = acls
            .iter()
            .map(|a| {
                AclCreation::default()
                    .with_resource_type(a.resource_type as i8)
                    .with_resource_name(StrBytes::from_string(a.resource_name.clone()))
                    .with_resource_pattern_type(a.pattern_type as i8)
                    .with_principal(StrBytes::from_string(a.principal.clone()))
                    .with_host(StrBytes::from_string(a.host.clone()))
                    .with_operation(a.operation as i8)
                    .with_permission_type(a.permission as i8)
            })
            .collect();
        let req = CreateAclsRequest::default().with_creations(creations);
        let resp = self.retrying(|| self.call_any(&req)).await?;
        for (r, a) in resp.results.iter().zip(acls) {
            check("CreateAcls", a.to_string(), r.error_code, r.error_message.as_deref())?;
        }
        Ok(())
    }

    /// Deletes every ACL matching each filter; returns how many were deleted.
    pub async fn delete_acls(&self, filters: &[AclFilter]) -> Result<usize> {
        if filters.is_empty() {
            return Ok(0);
        }
        let req = DeleteAclsRequest::default().with_filters(
            filters
                .iter()
                .map(|f| {
                    DeleteAclsFilter::default()
                        .with_resource_type_filter(f.resource_type as i8)
                        .with_resource_name_filter(f.resource_name.clone().map(StrBytes::from_string))
                        .with_pattern_type_filter(f.pattern_type as i8)
                        .with_principal_filter(f.principal.clone().map(StrBytes::from_string))
                        .with_host_filter(f.host.clone().map(StrBytes::from_string))
                        .with_operation(f.operation as i8)
                        .with_permission_type(f.permission as i8)
                })
                .collect(),
        );
        let resp = self.retrying(|| self.call_any(&req)).await?;
        let mut deleted = 0;
        for r in resp.filter_results {
            check("DeleteAcls", "acls", r.error_code, r.error_message.as_deref())?;
            deleted += r.matching_acls.len();
        }
        Ok(deleted)
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

fn ids(v: &[BrokerId]) -> Vec<i32> {
    v.iter().map(|b| b.0).collect()
}

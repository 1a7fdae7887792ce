//! How the operator reaches each cluster's Kafka: one admin client per KafkaCluster, through
//! the internal listener marked `usedForKafkaAdminCommunication` (else the inter-broker one).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use koperator_shared::api::KafkaCluster;
use koperator_shared::kafka::{Admin, ConnectOptions, Resolver};
use koperator_shared::render::{self, names};
use kube::ResourceExt;

/// A cluster's admin client and the bootstrap list it was built for.
type Client = (Vec<String>, Arc<Admin>);

/// Admin clients by cluster, rebuilt when the cluster's brokers or listener change.
pub struct KafkaAccess {
    opts: ConnectOptions,
    clients: Mutex<HashMap<String, Client>>,
}

impl KafkaAccess {
    /// Clients that resolve broker names through `hosts_file` first (out-of-cluster runs).
    pub fn new(hosts_file: Option<PathBuf>) -> Self {
        let opts = ConnectOptions {
            client_id: "koperator".into(),
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            tls: None,
            resolver: Resolver::with_hosts_file(hosts_file),
        };
        KafkaAccess { opts, clients: Mutex::new(HashMap::new()) }
    }

    /// The admin client of `cluster`, or why the operator cannot talk to it.
    pub fn admin(&self, cluster: &KafkaCluster) -> Result<Arc<Admin>, String> {
        let bootstrap = bootstrap(cluster)?;
        let key = format!("{}/{}", cluster.namespace().unwrap_or_default(), cluster.name_any());
        let mut clients = self.clients.lock().expect("clients lock");
        if let Some((b, admin)) = clients.get(&key)
            && *b == bootstrap
        {
            return Ok(admin.clone());
        }
        let admin = Arc::new(Admin::new(bootstrap.clone(), self.opts.clone()).with_retry_for(Duration::from_secs(5)));
        clients.insert(key, (bootstrap, admin.clone()));
        Ok(admin)
    }

    /// Drops the client of a deleted cluster.
    pub fn forget(&self, cluster: &KafkaCluster) {
        let key = format!("{}/{}", cluster.namespace().unwrap_or_default(), cluster.name_any());
        self.clients.lock().expect("clients lock").remove(&key);
    }
}

/// `host:port` of every broker-role node on the admin listener.
pub fn bootstrap(cluster: &KafkaCluster) -> Result<Vec<String>, String> {
    let internal = &cluster.spec.listeners_config.internal_listeners;
    let listener = internal
        .iter()
        .find(|l| l.common.used_for_kafka_admin_communication == Some(true))
        .or_else(|| internal.iter().find(|l| l.common.used_for_inner_broker_communication))
        .ok_or("no internal listener is used for inner-broker communication")?;
    if listener.common.listener_type.is_ssl() || listener.common.listener_type.kafka_name().starts_with("SASL") {
        return Err(format!(
            "the operator's Kafka client does not yet speak {} (listener {}); health checks and dynamic configs are off",
            listener.common.listener_type.kafka_name(),
            listener.common.name
        ));
    }
    let port = listener.common.container_port;
    let kraft = cluster.spec.kraft;
    let hosts: Vec<String> = render::brokers(cluster)
        .iter()
        .filter(|b| b.is_broker(kraft))
        .map(|b| format!("{}:{port}", names::broker_fqdn(cluster, b.broker.id)))
        .collect();
    if hosts.is_empty() {
        return Err("the cluster has no broker-role node".into());
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str) -> KafkaCluster {
        let mut kc: KafkaCluster = serde_saphyr::from_str(text).unwrap();
        kc.metadata.namespace = Some("ns".into());
        kc
    }

    #[test]
    fn bootstrap_lists_broker_role_nodes_on_the_inner_listener() {
        let kc = sample(include_str!("../../config/samples/kafkacluster_kraft.yaml"));
        assert_eq!(
            bootstrap(&kc).unwrap(),
            ["100", "101", "102"]
                .map(|id| format!("kafka-{id}.kafka-headless.ns.svc.cluster.local:29092"))
                .to_vec(),
            "controller-only nodes do not serve clients"
        );
    }

    #[test]
    fn ssl_admin_listener_is_reported_not_guessed() {
        let kc = sample(include_str!("../../config/samples/simplekafkacluster_ssl.yaml"));
        let err = bootstrap(&kc).unwrap_err();
        assert!(err.contains("does not yet speak SSL"), "{err}");
    }
}

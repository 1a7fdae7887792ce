//! How the operator reaches each cluster's Kafka: one admin client per KafkaCluster, through
//! the internal listener marked `usedForKafkaAdminCommunication` (else the inter-broker one,
//! see `render::names::admin_nodes`). The client connects only to the broker addresses derived
//! here from the cluster's name, namespace and brokers, never to hosts the brokers advertise.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use koperator_shared::api::KafkaCluster;
use koperator_shared::kafka::{Admin, ConnectOptions, Resolver};
use koperator_shared::render::names::{AdminAccessError, admin_nodes};
use koperator_shared::validated::ValidatedCluster;
use kube::ResourceExt;

/// A cluster's admin client and the broker addresses (by node id) it was built for.
type Client = (BTreeMap<i32, String>, Arc<Admin>);

/// Admin clients by cluster, rebuilt when the cluster's brokers or listener change.
pub struct KafkaAccess {
    opts: ConnectOptions,
    clients: Mutex<HashMap<String, Client>>,
}

impl KafkaAccess {
    /// Clients that resolve broker names through `hosts_file` first (out-of-cluster runs).
    pub fn new(hosts_file: Option<PathBuf>, connect_timeout: Duration, request_timeout: Duration) -> Self {
        let opts = ConnectOptions {
            client_id: "koperator".into(),
            connect_timeout,
            request_timeout,
            tls: None,
            resolver: Resolver::with_hosts_file(hosts_file),
        };
        KafkaAccess { opts, clients: Mutex::new(HashMap::new()) }
    }

    /// The admin client of `cluster`, or why the operator cannot talk to it.
    pub fn admin(&self, cluster: &ValidatedCluster) -> Result<Arc<Admin>, AdminAccessError> {
        let nodes = admin_nodes(cluster)?;
        let key = format!("{}/{}", cluster.namespace().unwrap_or_default(), cluster.name_any());
        let mut clients = self.clients.lock().expect("clients lock");
        if let Some((n, admin)) = clients.get(&key)
            && *n == nodes
        {
            return Ok(admin.clone());
        }
        let admin = Arc::new(Admin::for_nodes(nodes.clone(), self.opts.clone()).with_retry_for(Duration::from_secs(5)));
        clients.insert(key, (nodes, admin.clone()));
        Ok(admin)
    }

    /// Drops the client of a deleted cluster.
    pub fn forget(&self, cluster: &KafkaCluster) {
        let key = format!("{}/{}", cluster.namespace().unwrap_or_default(), cluster.name_any());
        self.clients.lock().expect("clients lock").remove(&key);
    }
}

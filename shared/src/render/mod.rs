//! Rendering (DESIGN §8): pure functions from a validated, defaulted KafkaCluster to the objects
//! and `server.properties` the operator applies. No I/O; golden-tested.

pub mod cluster_ip;
pub mod contour;
pub mod cruise_control;
pub mod envoy;
pub mod external;
pub mod gateway;
pub mod ingress;
pub mod jmx;
pub mod names;
pub mod objects;
pub mod properties;
pub mod sasl;
pub mod tls;

use crate::api::kafkacluster::{Broker, BrokerConfig, ProcessRole};
use crate::validated::ValidatedCluster;

/// A broker together with its effective (group-merged) configuration, as rendering needs it.
#[derive(Clone, Debug)]
pub struct BrokerView<'a> {
    /// The broker entry of the spec.
    pub broker: &'a Broker,
    /// Effective KRaft roles (empty in ZooKeeper mode).
    pub roles: Vec<ProcessRole>,
    /// Effective storage mount paths, in order.
    pub mount_paths: Vec<&'a str>,
    /// The broker's group config, if any.
    pub group: Option<&'a BrokerConfig>,
}

impl BrokerView<'_> {
    /// Serves clients (ZooKeeper-mode brokers always do).
    pub fn is_broker(&self, kraft: bool) -> bool {
        !kraft || self.roles.contains(&ProcessRole::Broker)
    }
    /// Member of the KRaft quorum.
    pub fn is_controller(&self, kraft: bool) -> bool {
        kraft && self.roles.contains(&ProcessRole::Controller)
    }
}

/// The ids of the nodes that serve clients (every broker in ZooKeeper mode; the `broker` role
/// in KRaft), in spec order.
pub fn broker_role_ids(cluster: &ValidatedCluster) -> Vec<i32> {
    let kraft = cluster.spec.kraft;
    brokers(cluster).iter().filter(|b| b.is_broker(kraft)).map(|b| b.broker.id).collect()
}

/// Every broker of the cluster with its effective configuration, in spec order.
pub fn brokers(cluster: &ValidatedCluster) -> Vec<BrokerView<'_>> {
    let spec = &cluster.spec;
    spec.brokers
        .iter()
        .map(|b| BrokerView {
            broker: b,
            roles: if spec.kraft { b.effective_roles(spec) } else { Vec::new() },
            mount_paths: b.effective_storage(spec).into_iter().map(|s| s.mount_path.as_str()).collect(),
            group: spec.group_of(b),
        })
        .collect()
}

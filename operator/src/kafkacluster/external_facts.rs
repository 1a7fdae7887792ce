//! What Kubernetes decided for a cluster's external listeners, taken from the live objects the
//! dereference step read: load balancer addresses, assigned node ports and the addresses of the
//! Nodes the broker Pods run on (`render::external` turns them into advertised addresses and
//! `status.listenerStatuses`). Only the operator's own objects count: a same-named Service of
//! someone else's never decides where clients are sent.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Service};
use kube::ResourceExt;

use koperator_shared::render::external::ExternalFacts;
use koperator_shared::validated::ValidatedCluster;

use super::dereference::LiveState;
use crate::apply::is_ours;

/// The facts of `cluster` in `live`.
pub fn external_facts(cluster: &ValidatedCluster, live: &LiveState) -> ExternalFacts {
    let uid = cluster.uid().unwrap_or_default();
    let mut facts = ExternalFacts::default();
    let services = live.services.values().chain(live.envoy.services.values()).filter(|s| is_ours(*s, &uid));
    for s in services {
        if let Some(address) = load_balancer_address(s) {
            facts.load_balancers.insert(s.name_any(), address);
        }
        let ports: BTreeMap<String, i32> = s
            .spec
            .iter()
            .flat_map(|spec| spec.ports.iter().flatten())
            .filter_map(|p| Some((p.name.clone()?, p.node_port.filter(|n| *n > 0)?)))
            .collect();
        if !ports.is_empty() {
            facts.node_ports.insert(s.name_any(), ports);
        }
    }
    for pod in live.pods.values().filter(|p| is_ours(*p, &uid)) {
        let id = pod.labels().get("brokerId").and_then(|id| id.parse::<i32>().ok());
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_ref());
        if let (Some(id), Some(addresses)) = (id, node.and_then(|n| live.nodes.get(n))) {
            facts.node_addresses.insert(id, addresses.clone());
        }
    }
    facts
}

/// `status.loadBalancer.ingress[0]`: its hostname when set, else its IP.
fn load_balancer_address(s: &Service) -> Option<String> {
    let first = s.status.as_ref()?.load_balancer.as_ref()?.ingress.as_ref()?.first()?;
    first.hostname.clone().filter(|h| !h.is_empty()).or_else(|| first.ip.clone().filter(|ip| !ip.is_empty()))
}

/// A Node's addresses as (type, address).
pub fn node_addresses(node: &Node) -> Vec<(String, String)> {
    node.status
        .iter()
        .flat_map(|s| s.addresses.iter().flatten())
        .map(|a| (a.type_.clone(), a.address.clone()))
        .collect()
}

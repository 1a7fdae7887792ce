//! Where clients reach each broker: the external address every broker advertises
//! (`advertised.listeners`) and `status.listenerStatuses`, as Koperator fills them.
//!
//! Some addresses are in the spec (`hostnameOverride`, `nodePortExternalIP`, the Envoy and
//! Contour host name templates); the others are decided by Kubernetes and read by the operator
//! into [`ExternalFacts`]: a LoadBalancer Service's status address, the node ports Kubernetes
//! picked (`externalStartingPort` 0 or -1 with `NodePort`) and the addresses of the Node each
//! broker Pod runs on. An address that is not known yet is left out (the broker does not
//! advertise that listener until it is, and the status does not list it), where Koperator
//! stops the whole reconcile.

use std::collections::BTreeMap;

use super::names;
use crate::api::kafkacluster::{
    AccessMethod, ExternalListenerConfig, ListenerStatus, ListenerStatuses, NodeAddressType,
};
use crate::validated::ValidatedCluster;

/// What Kubernetes decided for external access, read by the operator from live objects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExternalFacts {
    /// Service name → its load balancer's address (`status.loadBalancer.ingress[0]`: the
    /// hostname when set, else the IP).
    pub load_balancers: BTreeMap<String, String>,
    /// Service name → port name → the node port Kubernetes assigned.
    pub node_ports: BTreeMap<String, BTreeMap<String, i32>>,
    /// Broker id → the addresses of the Node its Pod runs on (`Node.status.addresses`).
    pub node_addresses: BTreeMap<i32, Vec<(String, String)>>,
}

/// The Kubernetes name of a node address type.
pub fn address_type_name(t: NodeAddressType) -> &'static str {
    match t {
        NodeAddressType::Hostname => "Hostname",
        NodeAddressType::ExternalIp => "ExternalIP",
        NodeAddressType::InternalIp => "InternalIP",
        NodeAddressType::InternalDns => "InternalDNS",
        NodeAddressType::ExternalDns => "ExternalDNS",
    }
}

/// The name of the (only) port of a per-broker external Service: `broker-<id>` (Koperator's).
pub fn broker_port_name(id: i32) -> String {
    format!("broker-{id}")
}

/// Kubernetes picks the node ports of a NodePort listener (`externalStartingPort` 0, or -1 which
/// means nothing else for NodePort).
pub fn node_ports_assigned(l: &ExternalListenerConfig) -> bool {
    l.access_method_or_default() == AccessMethod::NodePort && l.external_starting_port <= 0
}

/// A broker's own setting, else its group's.
fn broker_setting<'a, T>(
    c: &'a ValidatedCluster,
    id: i32,
    get: impl Fn(&'a crate::api::kafkacluster::BrokerConfig) -> Option<T>,
) -> Option<T> {
    let b = c.spec.brokers.iter().find(|b| b.id == id)?;
    b.broker_config.as_ref().and_then(&get).or_else(|| c.spec.group_of(b).and_then(&get))
}

/// Broker `id`'s `nodePortExternalIP` for `listener` (its own, else its group's), if set.
pub fn node_port_external_ip(c: &ValidatedCluster, id: i32, listener: &str) -> Option<String> {
    broker_setting(c, id, |bc| bc.node_port_external_ip.as_ref()?.get(listener).cloned()).filter(|ip| !ip.is_empty())
}

/// Where broker `id` is reached on external listener `l` (`host`, `port`), when known.
pub fn broker_address(c: &ValidatedCluster, l: &ExternalListenerConfig, id: i32) -> Option<(String, i32)> {
    if super::envoy::uses_envoy(&c.spec, l) {
        return super::envoy::advertised(c, l, id);
    }
    if super::contour::uses_contour(&c.spec, l) {
        return super::contour::advertised(c, l, id);
    }
    if super::gateway::uses_gateway(&c.spec, l) {
        return super::gateway::advertised(c, l, id);
    }
    let facts = c.external();
    let service = names::external_service(c, id, &l.common.name);
    match l.access_method_or_default() {
        AccessMethod::NodePort => {
            let external_ip = node_port_external_ip(c, id, &l.common.name);
            // Traffic to an external IP arrives on the Service port, not on the node port.
            let port = if external_ip.is_some() {
                l.common.container_port
            } else if node_ports_assigned(l) {
                *facts.node_ports.get(&service)?.get(&broker_port_name(id))?
            } else {
                l.external_starting_port + id
            };
            let host = match (super::tls::external_host(c, l, id), external_ip) {
                (Some(host), _) => host,
                (None, Some(ip)) => ip,
                (None, None) => node_host(c, l, id)?,
            };
            Some((host, port))
        }
        AccessMethod::LoadBalancer => {
            let host = super::tls::external_host(c, l, id).or_else(|| facts.load_balancers.get(&service).cloned())?;
            Some((host, l.broker_port(id)))
        }
        // Only behind Contour or a Gateway (above); the rules refuse it otherwise.
        AccessMethod::ClusterIp => None,
    }
}

/// Some broker advertises its node's address on a NodePort listener (no `hostnameOverride`, no
/// `nodePortExternalIP`): the operator then reads the Nodes its Pods run on.
pub fn advertises_node_addresses(c: &ValidatedCluster) -> bool {
    let node_port = c.spec.listeners_config.external().iter().filter(|l| {
        l.access_method_or_default() == AccessMethod::NodePort && super::tls::external_host(c, l, 0).is_none()
    });
    node_port
        .into_iter()
        .any(|l| super::broker_role_ids(c).into_iter().any(|id| node_port_external_ip(c, id, &l.common.name).is_none()))
}

/// The node address broker `id` advertises on NodePort listener `l`. A restarted broker's new
/// Pod that is not on a node yet keeps the address it had (else every restart would change its
/// configuration, and restart it again). With `externalTrafficPolicy: Cluster` (the default)
/// every node forwards the node port, so a broker whose Pod moved to another node keeps it too,
/// unless it is an address of the Pod's node under another type (the type asked for changed);
/// with `Local` it follows its Pod.
fn node_host(c: &ValidatedCluster, l: &ExternalListenerConfig, id: i32) -> Option<String> {
    let last = last_host(c, l, id);
    let Some(addresses) = c.external().node_addresses.get(&id) else { return last };
    let current = node_address(c, id)?;
    let local = l.service.external_traffic_policy.as_deref() == Some("Local");
    match last {
        Some(last) if last != current && !local && !addresses.iter().any(|(_, a)| *a == last) => Some(last),
        _ => Some(current),
    }
}

/// The host broker `id` was last reported at on listener `l` (`status.listenerStatuses`).
fn last_host(c: &ValidatedCluster, l: &ExternalListenerConfig, id: i32) -> Option<String> {
    let statuses = c.status.as_ref()?.listener_statuses.as_ref()?.external_listeners.as_ref()?;
    let name = format!("broker-{id}");
    let address = &statuses.get(&l.common.name)?.iter().find(|s| s.name == name)?.address;
    let (host, _) = address.rsplit_once(':')?;
    Some(host.to_string()).filter(|h| !h.is_empty())
}

/// The address of broker `id`'s node of the type its config asks for (`nodePortNodeAddressType`;
/// unset: `ExternalIP`, else `InternalIP`).
fn node_address(c: &ValidatedCluster, id: i32) -> Option<String> {
    let addresses = c.external().node_addresses.get(&id)?;
    let find = |t: NodeAddressType| {
        addresses.iter().find(|(kind, a)| kind == address_type_name(t) && !a.is_empty()).map(|(_, a)| a.clone())
    };
    match broker_setting(c, id, |bc| bc.node_port_node_address_type) {
        Some(t) => find(t),
        None => find(NodeAddressType::ExternalIp).or_else(|| find(NodeAddressType::InternalIp)),
    }
}

/// `status.listenerStatuses`, as Koperator fills it: for every internal listener but the
/// controllers' the cluster Service (`any-broker`, or `headless`) then each broker's own name in
/// spec order; for every external listener the any-cast address of each ingress (`any-broker`,
/// `any-broker-<ingress config>`; none for NodePort) and each broker's external address, sorted
/// by name. Entries whose address is not known yet are left out (Koperator lists controller-only
/// KRaft nodes on external listeners too, though they serve no clients; we do not).
pub fn listener_statuses(c: &ValidatedCluster) -> ListenerStatuses {
    let spec = &c.spec;
    let kraft = spec.kraft;
    let nodes = super::brokers(c);
    let mut internal = BTreeMap::new();
    // The controller listener is not listed (Koperator keeps its addresses for the quorum).
    for l in spec.listeners_config.internal_listeners.iter().filter(|l| !l.used_for_controller_communication) {
        let port = l.common.container_port;
        let any_name = if spec.headless_service_enabled { "headless" } else { "any-broker" };
        let mut list =
            vec![status(any_name, format!("{}.{}:{port}", names::cluster_service(c), names::service_domain(c)))];
        for b in nodes.iter().filter(|b| b.is_broker(kraft)) {
            let id = b.broker.id;
            list.push(status(&format!("broker-{id}"), format!("{}:{port}", names::broker_fqdn(c, id))));
        }
        internal.insert(l.common.name.clone(), list);
    }
    let mut external = BTreeMap::new();
    for l in spec.listeners_config.external() {
        let mut list = any_cast(c, l);
        for id in super::broker_role_ids(c) {
            if let Some((host, port)) = broker_address(c, l, id) {
                list.push(status(&format!("broker-{id}"), format!("{host}:{port}")));
            }
        }
        sort(&mut list);
        external.insert(l.common.name.clone(), list);
    }
    ListenerStatuses {
        internal_listeners: (!internal.is_empty()).then_some(internal),
        external_listeners: (!external.is_empty()).then_some(external),
    }
}

/// The any-cast entries of listener `l`: one per Envoy ingress (its `hostnameOverride`, else
/// its load balancer's address, on the any-cast port), each Contour or Gateway API ingress
/// configuration's `hostnameOverride`; none for NodePort or per-broker load balancers.
fn any_cast(c: &ValidatedCluster, l: &ExternalListenerConfig) -> Vec<ListenerStatus> {
    let name = |config: Option<&str>| match config {
        Some(ic) => format!("any-broker-{ic}"),
        None => "any-broker".to_string(),
    };
    if super::envoy::uses_envoy(&c.spec, l) {
        return super::envoy::ingresses(c)
            .iter()
            .filter(|i| i.listener.common.name == l.common.name)
            .filter_map(|i| {
                let host = i
                    .service
                    .hostname_override
                    .clone()
                    .filter(|h| !h.is_empty())
                    .or_else(|| c.external().load_balancers.get(&super::envoy::service_name(c, i)).cloned())?;
                Some(status(&name(i.config), format!("{host}:{}", i.any_cast_port())))
            })
            .collect();
    }
    use super::cluster_ip::{self, Controller};
    let Some(controller) = [Controller::Contour, Controller::GatewayApi].into_iter().find(|k| k.serves(&c.spec, l))
    else {
        return Vec::new();
    };
    cluster_ip::exposures(c, controller)
        .iter()
        .filter(|e| e.listener() == l.common.name)
        .filter_map(|e| Some(status(&name(e.selected.config), format!("{}:{}", e.any_cast_host()?, e.port()))))
        .collect()
}

fn status(name: &str, address: String) -> ListenerStatus {
    ListenerStatus { name: name.to_string(), address }
}

fn sort(list: &mut [ListenerStatus]) {
    list.sort_by(|a, b| a.name.cmp(&b.name));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::KafkaCluster;
    use crate::api::kafkacluster::{BrokerConfig, KafkaClusterSpec};
    use crate::rules::kafkacluster::fixtures::{external, valid_kraft_spec};
    use crate::validated::must;

    fn cluster(method: AccessMethod, starting_port: i32, f: impl FnOnce(&mut KafkaClusterSpec)) -> ValidatedCluster {
        let mut spec = valid_kraft_spec();
        let mut l = external("external", 9094, starting_port);
        l.access_method = Some(method);
        spec.listeners_config.external_listeners = Some(vec![l]);
        f(&mut spec);
        let mut c = KafkaCluster::new("kafka", spec);
        c.metadata.namespace = Some("team-a".into());
        must(&c)
    }

    fn node(id: i32, internal: &str, external: Option<&str>) -> (i32, Vec<(String, String)>) {
        let mut a = vec![("InternalIP".to_string(), internal.to_string()), ("Hostname".into(), format!("node-{id}"))];
        a.extend(external.map(|e| ("ExternalIP".to_string(), e.to_string())));
        (id, a)
    }

    fn with(c: ValidatedCluster, f: impl FnOnce(&mut ExternalFacts)) -> ValidatedCluster {
        let mut facts = ExternalFacts::default();
        f(&mut facts);
        c.with_external(facts)
    }

    fn brokers(c: &ValidatedCluster) -> Vec<(String, String)> {
        let st = listener_statuses(c);
        st.external_listeners.unwrap()["external"].iter().map(|s| (s.name.clone(), s.address.clone())).collect()
    }

    #[test]
    fn node_ports_are_advertised_on_the_address_of_the_brokers_node() {
        let c = cluster(AccessMethod::NodePort, 30090, |_| {});
        let l = &c.spec.listeners_config.external()[0];
        assert_eq!(broker_address(&c, l, 0), None, "the Pod is not on a node yet");
        let c = with(c.clone(), |f| {
            f.node_addresses.extend([node(0, "10.0.0.1", Some("203.0.113.1")), node(1, "10.0.0.2", None)]);
        });
        let l = &c.spec.listeners_config.external()[0];
        assert_eq!(broker_address(&c, l, 0), Some(("203.0.113.1".into(), 30090)), "ExternalIP first");
        assert_eq!(broker_address(&c, l, 1), Some(("10.0.0.2".into(), 30091)), "else InternalIP");
        assert_eq!(
            brokers(&c),
            [("broker-0", "203.0.113.1:30090"), ("broker-1", "10.0.0.2:30091")].map(|(a, b)| (a.into(), b.into())),
            "no any-cast entry for NodePort; broker 2's node is unknown"
        );
    }

    #[test]
    fn a_broker_whose_new_pod_is_not_on_a_node_yet_keeps_its_last_address() {
        let mut kc: KafkaCluster = (*cluster(AccessMethod::NodePort, 30090, |_| {})).clone();
        let listed = vec![ListenerStatus { name: "broker-1".into(), address: "10.0.0.2:30091".into() }];
        let statuses = ListenerStatuses {
            external_listeners: Some([("external".to_string(), listed)].into()),
            ..Default::default()
        };
        kc.status = Some(crate::api::kafkacluster::KafkaClusterStatus {
            listener_statuses: Some(statuses),
            ..Default::default()
        });
        let c = must(&kc);
        let l = &c.spec.listeners_config.external()[0];
        assert_eq!(broker_address(&c, l, 1), Some(("10.0.0.2".into(), 30091)));
        assert_eq!(broker_address(&c, l, 0), None, "never placed");
        let moved = with(c.clone(), |f| f.node_addresses.extend([node(1, "10.0.0.9", None)]));
        let l = &c.spec.listeners_config.external()[0];
        assert_eq!(broker_address(&moved, l, 1), Some(("10.0.0.2".into(), 30091)), "every node forwards the port");
        // With externalTrafficPolicy Local only its own node does.
        let mut local: KafkaCluster = (*c).clone();
        local.spec.listeners_config.external_listeners.as_mut().unwrap()[0].service.external_traffic_policy =
            Some("Local".into());
        let local = with(must(&local), |f| f.node_addresses.extend([node(1, "10.0.0.9", None)]));
        let l = &local.spec.listeners_config.external()[0];
        assert_eq!(broker_address(&local, l, 1), Some(("10.0.0.9".into(), 30091)), "follows its Pod");
        // The same node, another address type asked for: the new one.
        let mut hostname: KafkaCluster = (*c).clone();
        hostname.spec.brokers[1].broker_config =
            Some(BrokerConfig { node_port_node_address_type: Some(NodeAddressType::Hostname), ..Default::default() });
        let hostname = with(must(&hostname), |f| f.node_addresses.extend([node(1, "10.0.0.2", None)]));
        let l = &hostname.spec.listeners_config.external()[0];
        assert_eq!(broker_address(&hostname, l, 1), Some(("node-1".into(), 30091)));
    }

    #[test]
    fn the_node_address_type_a_broker_asks_for_is_used() {
        let c = cluster(AccessMethod::NodePort, 30090, |s| {
            s.brokers[0].broker_config = Some(BrokerConfig {
                node_port_node_address_type: Some(NodeAddressType::Hostname),
                ..Default::default()
            });
        });
        let c = with(c, |f| f.node_addresses.extend([node(0, "10.0.0.1", Some("203.0.113.1"))]));
        assert_eq!(broker_address(&c, &c.spec.listeners_config.external()[0], 0), Some(("node-0".into(), 30090)));
    }

    #[test]
    fn node_ports_kubernetes_picks_are_advertised_once_assigned() {
        for starting_port in [0, -1] {
            let c = cluster(AccessMethod::NodePort, starting_port, |_| {});
            let c = with(c, |f| {
                f.node_addresses.extend([node(0, "10.0.0.1", None), node(1, "10.0.0.1", None)]);
                f.node_ports.insert("kafka-0-external".into(), [("broker-0".to_string(), 31234)].into());
            });
            let l = &c.spec.listeners_config.external()[0];
            assert_eq!(broker_address(&c, l, 0), Some(("10.0.0.1".into(), 31234)), "{starting_port}");
            assert_eq!(broker_address(&c, l, 1), None, "{starting_port}: no node port yet");
            let svc = &super::super::objects::external_services(&c)[0];
            let port = &svc.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
            assert_eq!((port.name.as_deref(), port.node_port), (Some("broker-0"), None), "left to Kubernetes");
        }
    }

    #[test]
    fn an_external_ip_or_a_hostname_override_wins_over_the_node() {
        let c = cluster(AccessMethod::NodePort, 30090, |s| {
            s.brokers[1].broker_config = Some(BrokerConfig {
                node_port_external_ip: Some([("external".to_string(), "198.51.100.7".to_string())].into()),
                ..Default::default()
            });
        });
        let c = with(c, |f| f.node_addresses.extend([node(1, "10.0.0.2", None)]));
        let l = &c.spec.listeners_config.external()[0];
        assert_eq!(broker_address(&c, l, 1), Some(("198.51.100.7".into(), 9094)), "the Service port");
        let svc = &super::super::objects::external_services(&c)[1];
        assert_eq!(svc.spec.as_ref().unwrap().external_ips, Some(vec!["198.51.100.7".to_string()]));

        let c = cluster(AccessMethod::NodePort, 30090, |s| {
            s.listeners_config.external_listeners.as_mut().unwrap()[0].service.hostname_override =
                Some(".example.com".into());
        });
        let l = &c.spec.listeners_config.external()[0];
        assert_eq!(broker_address(&c, l, 2), Some(("kafka-2-external.team-a.example.com".into(), 30092)));
    }

    #[test]
    fn envoy_brokers_and_the_any_cast_port_use_the_load_balancers_address() {
        let c = cluster(AccessMethod::LoadBalancer, 19090, |_| {});
        assert_eq!(brokers(&c), Vec::<(String, String)>::new(), "no address yet");
        let c = with(c, |f| {
            f.load_balancers.insert("envoy-loadbalancer-external-kafka".into(), "lb.example.net".into());
        });
        assert_eq!(
            brokers(&c),
            [
                ("any-broker", "lb.example.net:29092"),
                ("broker-0", "lb.example.net:19090"),
                ("broker-1", "lb.example.net:19091"),
                ("broker-2", "lb.example.net:19092"),
            ]
            .map(|(a, b)| (a.into(), b.into()))
        );
        let props = super::super::properties::server_properties(&c, 1).unwrap();
        assert!(props.contains("EXTERNAL://lb.example.net:19091"), "{props}");
    }

    #[test]
    fn internal_listeners_list_the_cluster_service_and_every_broker() {
        let c = cluster(AccessMethod::LoadBalancer, 19090, |_| {});
        let st = listener_statuses(&c).internal_listeners.unwrap();
        let internal: Vec<(&str, &str)> =
            st["internal"].iter().map(|s| (s.name.as_str(), s.address.as_str())).collect();
        assert_eq!(
            internal,
            [
                ("any-broker", "kafka-all-broker.team-a.svc.cluster.local:29092"),
                ("broker-0", "kafka-0.team-a.svc.cluster.local:29092"),
                ("broker-1", "kafka-1.team-a.svc.cluster.local:29092"),
                ("broker-2", "kafka-2.team-a.svc.cluster.local:29092"),
            ]
        );
        assert!(!st.contains_key("controller"), "the controller listener is not listed");
    }
}

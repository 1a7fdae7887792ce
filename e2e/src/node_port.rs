//! The test node's kube-proxy for node ports: a NodePort or LoadBalancer Service's
//! `nodePort` listens on each IP address of the Node object and forwards TCP to a Ready Pod
//! the Service selects, at the port's `targetPort` (a number, or a container port's name;
//! none: the Service port). Pods are taken in turn; with none Ready a connection is closed.
//! UDP and SCTP ports are not served. Likewise, as a cloud's load balancer, a LoadBalancer
//! Service's address (given by the node) listens on the Service's ports.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

/// A Pod that may receive traffic.
pub struct Backend<'a> {
    pub pod: &'a Pod,
    pub ip: IpAddr,
    pub ready: bool,
}

/// Node port listen address → the Ready Pods' addresses it forwards to, for every TCP port
/// with a `nodePort` of `services`, on every address in `node_ips`.
pub fn routes(
    node_ips: &[IpAddr],
    services: &[Service],
    backends: &[Backend<'_>],
) -> BTreeMap<SocketAddr, Vec<SocketAddr>> {
    let mut out = BTreeMap::new();
    each_port(services, backends, &["NodePort", "LoadBalancer"], |_, port, targets| {
        let Some(node_port) = port.node_port.filter(|p| *p > 0) else { return };
        for ip in node_ips {
            out.insert(SocketAddr::new(*ip, node_port as u16), targets.clone());
        }
    });
    out
}

/// `<address>:<port>` → the Ready Pods' addresses, for every TCP port of the LoadBalancer
/// Services that have an address in `addresses` (by Service name).
pub fn load_balancer_routes(
    addresses: &BTreeMap<String, IpAddr>,
    services: &[Service],
    backends: &[Backend<'_>],
) -> BTreeMap<SocketAddr, Vec<SocketAddr>> {
    let mut out = BTreeMap::new();
    each_port(services, backends, &["LoadBalancer"], |svc, port, targets| {
        if let (Some(ip), Ok(p)) = (addresses.get(&svc.name_any()), u16::try_from(port.port)) {
            out.insert(SocketAddr::new(*ip, p), targets);
        }
    });
    out
}

/// Calls `f` with each TCP port of the `kinds` of Services that select Pods, and the
/// addresses of its Ready Pods at its target port.
fn each_port(
    services: &[Service],
    backends: &[Backend<'_>],
    kinds: &[&str],
    mut f: impl FnMut(&Service, &ServicePort, Vec<SocketAddr>),
) {
    for svc in services {
        let Some(spec) = svc.spec.as_ref() else { continue };
        if !spec.type_.as_deref().is_some_and(|t| kinds.contains(&t)) {
            continue;
        }
        let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else { continue };
        let selected: Vec<&Backend> = backends
            .iter()
            .filter(|b| b.ready && selector.iter().all(|(k, v)| b.pod.labels().get(k) == Some(v)))
            .collect();
        for port in spec.ports.iter().flatten() {
            if port.protocol.as_deref().is_some_and(|p| p != "TCP") {
                continue;
            }
            let targets: Vec<SocketAddr> = selected
                .iter()
                .filter_map(|b| {
                    let target = match &port.target_port {
                        None => port.port,
                        Some(IntOrString::Int(n)) => *n,
                        Some(IntOrString::String(name)) => container_port(b.pod, name)?,
                    };
                    Some(SocketAddr::new(b.ip, u16::try_from(target).ok()?))
                })
                .collect();
            f(svc, port, targets);
        }
    }
}

/// The number of the container port named `name`.
fn container_port(pod: &Pod, name: &str) -> Option<i32> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(name))
        .map(|p| p.container_port)
}

/// One listening node port.
struct Forward {
    backends: Arc<Mutex<Vec<SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The node ports being served, on a runtime of their own.
pub struct NodePorts {
    runtime: tokio::runtime::Handle,
    listening: BTreeMap<SocketAddr, Forward>,
}

impl NodePorts {
    pub fn new(runtime: tokio::runtime::Handle) -> NodePorts {
        NodePorts { runtime, listening: BTreeMap::new() }
    }

    /// Serves exactly `routes`: opens new node ports, closes those no Service has any more,
    /// and updates where the others forward to. A port that cannot be bound is tried again
    /// at the next update.
    pub fn update(&mut self, routes: &BTreeMap<SocketAddr, Vec<SocketAddr>>) {
        self.listening.retain(|addr, _| routes.contains_key(addr));
        for (addr, targets) in routes {
            if let Some(f) = self.listening.get(addr) {
                *f.backends.lock().unwrap() = targets.clone();
                continue;
            }
            match self.listen(*addr, targets.clone()) {
                Ok(f) => {
                    self.listening.insert(*addr, f);
                }
                Err(e) => eprintln!("[node] node port {addr}: {e}"),
            }
        }
    }

    fn listen(&self, addr: SocketAddr, targets: Vec<SocketAddr>) -> std::io::Result<Forward> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let _guard = self.runtime.enter();
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let backends = Arc::new(Mutex::new(targets));
        let shared = backends.clone();
        let task = self.runtime.spawn(async move {
            let next = AtomicUsize::new(0);
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let target = {
                    let b = shared.lock().unwrap();
                    (!b.is_empty()).then(|| b[next.fetch_add(1, Ordering::Relaxed) % b.len()])
                };
                let Some(target) = target else { continue };
                tokio::spawn(async move {
                    let connect = tokio::net::TcpStream::connect(target);
                    if let Ok(Ok(mut upstream)) = tokio::time::timeout(Duration::from_secs(5), connect).await {
                        // No Nagle delays: kube-proxy's NAT adds none either.
                        let _ = (client.set_nodelay(true), upstream.set_nodelay(true));
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        Ok(Forward { backends, task })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn node_ports_forward_to_the_ready_pods_at_their_target_ports() {
        let pod = |name: &str, app: &str| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {"app": app}},
                "spec": {"containers": [{"name": "c", "ports": [{"name": "tcp-all-broker", "containerPort": 29092}]}]},
            }))
            .unwrap()
        };
        let (a, b, c) = (pod("a", "envoy"), pod("b", "envoy"), pod("c", "other"));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let backends = [
            Backend { pod: &a, ip: ip("127.0.0.2"), ready: true },
            Backend { pod: &b, ip: ip("127.0.0.3"), ready: false },
            Backend { pod: &c, ip: ip("127.0.0.4"), ready: true },
        ];
        let svc = |kind: &str, ports: serde_json::Value| -> Service {
            serde_json::from_value(json!({"metadata": {"name": "s"},
                "spec": {"type": kind, "selector": {"app": "envoy"}, "ports": ports}}))
            .unwrap()
        };
        let services = [
            svc(
                "LoadBalancer",
                json!([{"port": 29092, "targetPort": "tcp-all-broker", "nodePort": 31000},
                {"port": 8080, "nodePort": 31001}, {"port": 53, "protocol": "UDP", "nodePort": 31002}]),
            ),
            svc(
                "NodePort",
                json!([{"port": 80, "targetPort": 8081, "nodePort": 31003},
                {"port": 81, "targetPort": "missing", "nodePort": 31004}, {"port": 82}]),
            ),
            svc("ClusterIP", json!([{"port": 80, "nodePort": 31005}])),
        ];
        let nodes = [ip("127.0.250.1"), ip("127.0.251.1")];
        let r = routes(&nodes, &services, &backends);
        let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
        let expect: BTreeMap<SocketAddr, Vec<SocketAddr>> = [
            ("127.0.250.1:31000", vec![sa("127.0.0.2:29092")]),
            ("127.0.251.1:31000", vec![sa("127.0.0.2:29092")]),
            ("127.0.250.1:31001", vec![sa("127.0.0.2:8080")]),
            ("127.0.251.1:31001", vec![sa("127.0.0.2:8080")]),
            ("127.0.250.1:31003", vec![sa("127.0.0.2:8081")]),
            ("127.0.251.1:31003", vec![sa("127.0.0.2:8081")]),
            ("127.0.250.1:31004", vec![]),
            ("127.0.251.1:31004", vec![]),
        ]
        .into_iter()
        .map(|(k, v)| (sa(k), v))
        .collect();
        assert_eq!(r, expect);
        let lb: BTreeMap<String, IpAddr> = [("s".to_string(), ip("127.0.251.1"))].into();
        let r = load_balancer_routes(&lb, &services[..1], &backends);
        let expect: BTreeMap<SocketAddr, Vec<SocketAddr>> = [
            (sa("127.0.251.1:29092"), vec![sa("127.0.0.2:29092")]),
            (sa("127.0.251.1:8080"), vec![sa("127.0.0.2:8080")]),
        ]
        .into();
        assert_eq!(r, expect);
        assert!(load_balancer_routes(&BTreeMap::new(), &services, &backends).is_empty());
    }
}

//! Envoy ingress of external listeners (`ingressController: envoy`, access method
//! `LoadBalancer`), as Koperator deploys it: per listener and ingress configuration, a
//! ConfigMap holding `envoy.yaml`, a Deployment running Envoy on it, a LoadBalancer Service
//! and, when `envoyConfig.disruptionBudget` asks for one, a PodDisruptionBudget.
//!
//! Envoy proxies TCP: one listener per broker on `externalStartingPort + id` to that broker's
//! listener, and the any-cast listener to every broker (clients bootstrap there and are sent to
//! the per-broker ports by the metadata). With `externalStartingPort: -1` Envoy terminates TLS
//! on one port and routes by SNI (`envoyConfig.brokerHostnameTemplate`).
//!
//! Names and labels are Koperator's (`envoy-<listener>[-<config>]-<cluster>`, `app:
//! envoyingress`), so users' dashboards and scripts find the same objects. Two deliberate
//! differences: the any-cast listener listens on `ingressControllerTargetPort` (the port the
//! Service targets; Koperator listens on `anyCastPort` and breaks when they differ), and the
//! admin port is not published on the LoadBalancer (Envoy's admin API can shut it down).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, PodSpec, PodTemplateSpec, SecretVolumeSource, Service,
    ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

use super::ingress::{label_name, overlay};
use super::names::{self, cluster_name};
use crate::api::KafkaCluster;
use crate::api::kafkacluster::{
    AccessMethod, EnvoyConfig, ExternalListenerConfig, IngressServiceSettings, KafkaClusterSpec, PdbStrategy,
};
use crate::validated::ValidatedCluster;

/// Envoy image when `envoyConfig.image` is unset (Koperator's default).
pub const DEFAULT_IMAGE: &str = "envoyproxy/envoy:v1.39.0";
/// Key of the Envoy configuration in its ConfigMap, and the file Envoy reads.
pub const CONFIG_KEY: &str = "envoy.yaml";
/// Where the ConfigMap is mounted in the Envoy container.
pub const CONFIG_DIR: &str = "/etc/envoy";
/// Where the TLS Secret of a TLS-terminating Envoy is mounted.
pub const CERTS_DIR: &str = "/certs";
/// Pod annotation with a hash of `envoy.yaml`: a changed configuration rolls the Envoy Pods.
pub const CONFIG_HASH_ANNOTATION: &str = "envoy.yaml.hash";
/// Path of the health-check listener (503 while no broker is healthy).
pub const HEALTH_PATH: &str = "/healthcheck";
/// The brokers' JMX exporter port and its health path, which Envoy checks the brokers on.
const BROKER_HEALTH_PORT: i32 = crate::render::jmx::METRICS_PORT;
const BROKER_HEALTH_PATH: &str = "/-/healthy";
/// Name of the any-cast port (Service and container), as Koperator names it.
pub const ANY_CAST_PORT_NAME: &str = "tcp-all-broker";

/// One Envoy deployment: an external listener with one of its ingress configurations.
#[derive(Clone, Debug, PartialEq)]
pub struct Ingress<'a> {
    /// The external listener.
    pub listener: &'a ExternalListenerConfig,
    /// The ingress configuration's name; `None` when the listener has none (Koperator's
    /// `globalConfig`).
    pub config: Option<&'a str>,
    /// `spec.envoyConfig` with the ingress configuration's fields on top.
    pub envoy: EnvoyConfig,
    /// The listener's Service settings with the ingress configuration's on top.
    pub service: IngressServiceSettings,
    /// Ids of the brokers it serves (broker nodes only; KRaft controllers take no clients).
    pub brokers: Vec<i32>,
}

impl Ingress<'_> {
    /// `<listener>` or `<listener>-<config>`: the `eListenerName` label and the middle of
    /// every object name.
    pub fn label_name(&self) -> String {
        label_name(&self.listener.common.name, self.config)
    }
    /// The any-cast port clients bootstrap from.
    pub fn any_cast_port(&self) -> i32 {
        self.listener.any_cast_port_or_default()
    }
    /// The port Envoy listens on for the any-cast traffic.
    pub fn any_cast_target_port(&self) -> i32 {
        self.listener.ingress_controller_target_port_or_default()
    }
    /// The port Envoy listens on for broker `id`: `externalStartingPort + id`, or (TLS) the
    /// any-cast target port, where every broker is told apart by its SNI name.
    pub fn listen_port(&self, id: i32) -> i32 {
        if self.tls() { self.any_cast_target_port() } else { self.listener.broker_port(id) }
    }
    /// The TLS-terminating mode (`externalStartingPort: -1`).
    pub fn tls(&self) -> bool {
        self.listener.tls_enabled()
    }
    /// The SNI host name of broker `id` in TLS mode (`brokerHostnameTemplate`, `%id` replaced).
    pub fn broker_host(&self, id: i32) -> Option<String> {
        let template = self.envoy.broker_hostname_template.as_deref().filter(|t| !t.is_empty())?;
        Some(template.replace("%id", &id.to_string()))
    }
}

/// Every name derived from the cluster's name that the Envoy objects of `c` may take, with its
/// length limit (for the cluster-name rule): per Envoy-served listener and ingress
/// configuration, the Service (a DNS label), the Deployment, ConfigMap and PDB.
pub fn derived_names(c: &KafkaCluster) -> Vec<names::DerivedName> {
    use names::{DerivedName, MAX_LABEL, MAX_SUBDOMAIN};
    let d = |what: &str, name: String, limit: usize| DerivedName { what: what.to_string(), name, limit };
    let mut out = Vec::new();
    for l in c.spec.listeners_config.external().iter().filter(|l| uses_envoy(&c.spec, l)) {
        let configs: Vec<Option<&str>> = match l.config.as_ref().and_then(|s| s.ingress_config.as_ref()) {
            Some(m) if !m.is_empty() => m.keys().map(|k| Some(k.as_str())).collect(),
            _ => vec![None],
        };
        for config in configs {
            let label = label_name(&l.common.name, config);
            out.push(d("Service (Envoy)", service_name_of(c, &label), MAX_LABEL));
            out.push(d("Deployment (Envoy)", deployment_name_of(c, &label), MAX_SUBDOMAIN));
            out.push(d("ConfigMap (Envoy)", format!("envoy-config-{label}-{}", cluster_name(c)), MAX_SUBDOMAIN));
            out.push(d("PodDisruptionBudget (Envoy)", format!("{}-pdb", deployment_name_of(c, &label)), MAX_SUBDOMAIN));
        }
    }
    out
}

fn deployment_name_of(c: &KafkaCluster, label: &str) -> String {
    format!("envoy-{label}-{}", cluster_name(c))
}

fn service_name_of(c: &KafkaCluster, label: &str) -> String {
    format!("envoy-loadbalancer-{label}-{}", cluster_name(c))
}

/// Where broker `id` is advertised on Envoy-served listener `l`: the `hostnameOverride` of the
/// ingress configuration serving it (else the listener's) on `externalStartingPort + id`, or in
/// TLS mode its `brokerHostnameTemplate` name on the any-cast port. `None` when the broker has
/// no Envoy or no name to advertise.
pub fn advertised(c: &ValidatedCluster, l: &ExternalListenerConfig, id: i32) -> Option<(String, i32)> {
    let ingresses = ingresses(c);
    let i = ingresses.iter().find(|i| i.listener.common.name == l.common.name && i.brokers.contains(&id))?;
    if i.tls() {
        return Some((i.broker_host(id)?, i.any_cast_port()));
    }
    let host = i.service.hostname_override.clone().filter(|h| !h.is_empty());
    let host = host.or_else(|| c.external().load_balancers.get(&service_name(c, i)).cloned())?;
    Some((host, l.broker_port(id)))
}

/// Whether external listener `l` of `spec` is served by Envoy.
pub fn uses_envoy(spec: &KafkaClusterSpec, l: &ExternalListenerConfig) -> bool {
    l.access_method_or_default() == AccessMethod::LoadBalancer && spec.ingress_controller_or_default() == "envoy"
}

/// Every Envoy deployment the spec asks for, with the brokers each serves. A broker is served
/// by the ingress configurations its `brokerIngressMapping` names, else by the listener's
/// `defaultIngressConfig`; an ingress configuration no broker uses gets no Envoy.
pub fn ingresses(c: &ValidatedCluster) -> Vec<Ingress<'_>> {
    let global = c.spec.envoy_config.clone().unwrap_or_default();
    super::ingress::select(c, |l| uses_envoy(&c.spec, l))
        .into_iter()
        .map(|s| Ingress {
            listener: s.listener,
            config: s.config,
            envoy: overlay(&global, s.ingress.and_then(|ic| ic.envoy_config.as_ref())),
            service: overlay(&s.listener.service, s.ingress.map(|ic| &ic.service)),
            brokers: s.brokers,
        })
        .collect()
}

/// `envoy-config-<listener>[-<config>]-<cluster>`.
pub fn config_map_name(c: &ValidatedCluster, i: &Ingress<'_>) -> String {
    format!("envoy-config-{}-{}", i.label_name(), cluster_name(c))
}

/// `envoy-<listener>[-<config>]-<cluster>`.
pub fn deployment_name(c: &ValidatedCluster, i: &Ingress<'_>) -> String {
    deployment_name_of(c, &i.label_name())
}

/// `envoy-loadbalancer-<listener>[-<config>]-<cluster>`.
pub fn service_name(c: &ValidatedCluster, i: &Ingress<'_>) -> String {
    service_name_of(c, &i.label_name())
}

/// `<deployment>-pdb`.
pub fn pdb_name(c: &ValidatedCluster, i: &Ingress<'_>) -> String {
    format!("{}-pdb", deployment_name(c, i))
}

/// `app: envoyingress`, `kafka_cr: <cluster>`, `eListenerName: <listener>[-<config>]`: the
/// labels of every Envoy object and the selector of its Pods.
pub fn labels(c: &ValidatedCluster, i: &Ingress<'_>) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app".to_string(), "envoyingress".to_string()),
        ("kafka_cr".to_string(), cluster_name(c).to_string()),
        ("eListenerName".to_string(), i.label_name()),
    ])
}

fn meta(c: &ValidatedCluster, name: String, i: &Ingress<'_>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: c.metadata.namespace.clone(),
        labels: Some(labels(c, i)),
        ..Default::default()
    }
}

/// The four objects of one Envoy deployment.
#[derive(Clone, Debug)]
pub struct EnvoyObjects {
    /// `envoy.yaml`.
    pub config_map: ConfigMap,
    /// Envoy itself.
    pub deployment: Deployment,
    /// The LoadBalancer clients connect to.
    pub service: Service,
    /// When `disruptionBudget.create` is set.
    pub pdb: Option<PodDisruptionBudget>,
}

/// Every Envoy object the spec asks for.
pub fn objects(c: &ValidatedCluster) -> Vec<EnvoyObjects> {
    ingresses(c).iter().map(|i| ingress_objects(c, i)).collect()
}

/// The objects of one Envoy deployment.
pub fn ingress_objects(c: &ValidatedCluster, i: &Ingress<'_>) -> EnvoyObjects {
    let config = config_yaml(c, i);
    let hash = crate::hash::fnv1a64_hex(config.as_bytes());
    EnvoyObjects {
        config_map: ConfigMap {
            metadata: meta(c, config_map_name(c, i), i),
            data: Some(BTreeMap::from([(CONFIG_KEY.to_string(), config)])),
            ..Default::default()
        },
        deployment: deployment(c, i, &hash),
        service: service(c, i),
        pdb: pdb(c, i),
    }
}

/// The Envoy configuration (JSON, which is YAML too) of one ingress.
pub fn config_yaml(c: &ValidatedCluster, i: &Ingress<'_>) -> String {
    serde_json::to_string_pretty(&config(c, i)).unwrap_or_default()
}

fn socket(address: &str, port: i32) -> Value {
    json!({"socket_address": {"address": address, "port_value": port}})
}

/// A STRICT_DNS cluster to `host:port`, with Koperator's keepalive and unbounded circuit breakers.
fn upstream(name: &str, host: &str, port: i32) -> Value {
    let unbounded = json!({"max_connections": 1_000_000_000, "max_pending_requests": 1_000_000_000,
        "max_requests": 1_000_000_000, "max_retries": 1_000_000_000});
    let mut high = unbounded.clone();
    high["priority"] = json!("HIGH");
    json!({
        "name": name,
        "type": "STRICT_DNS",
        "lb_policy": "ROUND_ROBIN",
        "connect_timeout": "1s",
        "dns_lookup_family": "V4_ONLY",
        "upstream_connection_options": {"tcp_keepalive": {"keepalive_probes": 3, "keepalive_time": 30, "keepalive_interval": 30}},
        "circuit_breakers": {"thresholds": [unbounded, high]},
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket(host, port)}}]}]}
    })
}

fn tcp_proxy(cluster: &str, stat_prefix: &str) -> Value {
    json!({
        "name": "envoy.filters.network.tcp_proxy",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": stat_prefix,
            "cluster": cluster,
            "max_connect_attempts": 2,
            "idle_timeout": "560s"
        }
    })
}

fn tls_context() -> Value {
    json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": {
                "tls_params": {"tls_minimum_protocol_version": "TLSv1_2", "tls_maximum_protocol_version": "TLSv1_3"},
                "tls_certificates": [{
                    "certificate_chain": {"filename": format!("{CERTS_DIR}/tls.crt")},
                    "private_key": {"filename": format!("{CERTS_DIR}/tls.key")}
                }]
            }
        }
    })
}

/// A filter chain to `cluster`; in TLS mode it matches the SNI `host` and terminates TLS.
fn chain(i: &Ingress<'_>, cluster: &str, stat_prefix: &str, host: Option<String>) -> Value {
    let mut chain = json!({"filters": [tcp_proxy(cluster, stat_prefix)]});
    if i.tls() {
        chain["filter_chain_match"] =
            json!({"server_names": host.into_iter().collect::<Vec<_>>(), "transport_protocol": "tls"});
        chain["transport_socket"] = tls_context();
    }
    chain
}

fn listener(name: String, port: i32, chains: Vec<Value>, tls: bool) -> Value {
    let keepalive =
        |name: i32, value: i32| json!({"level": 6, "name": name, "int_value": value, "state": "STATE_PREBIND"});
    let mut l = json!({
        "name": name,
        "address": socket("0.0.0.0", port),
        "socket_options": [
            {"level": 1, "name": 9, "int_value": 1, "state": "STATE_PREBIND"},
            keepalive(4, 30), keepalive(5, 30), keepalive(6, 3)
        ],
        "filter_chains": chains
    });
    if tls {
        l["listener_filters"] = json!([{"name": "envoy.filters.listener.tls_inspector",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}]);
    }
    l
}

/// The health-check listener: `GET /healthcheck` answers 200 while at least one broker passes
/// its health check, 503 otherwise (what the cloud load balancer probes).
fn health_listener(i: &Ingress<'_>) -> Value {
    json!({
        "name": "health-check",
        "address": socket("0.0.0.0", i.envoy.health_check_port_or_default()),
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "all-brokers-healthcheck",
                "http_protocol_options": {"accept_http_10": i.envoy.enable_health_check_http10 == Some(true)},
                "route_config": {"name": "local", "virtual_hosts": [{"name": "localhost", "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "redirect": {"path_redirect": HEALTH_PATH}}]}]},
                "http_filters": [
                    {"name": "envoy.filters.http.health_check", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck",
                        "pass_through_mode": false,
                        "cluster_min_healthy_percentages": {"all-brokers": {"value": 1.0}},
                        "headers": [{"name": ":path", "string_match": {"exact": HEALTH_PATH, "ignore_case": true}}]
                    }},
                    {"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
                ]
            }
        }]}]
    })
}

/// The whole Envoy configuration of one ingress.
pub fn config(c: &ValidatedCluster, i: &Ingress<'_>) -> Value {
    let port = i.listener.common.container_port;
    let mut clusters: Vec<Value> =
        i.brokers.iter().map(|id| upstream(&format!("broker-{id}"), &names::broker_fqdn(c, *id), port)).collect();
    let mut all = upstream("all-brokers", &format!("{}.{}", names::cluster_service(c), names::service_domain(c)), port);
    all["ignore_health_on_host_removal"] = json!(true);
    all["health_checks"] = json!([{
        "timeout": "1s", "interval": "5s", "no_traffic_interval": "5s", "unhealthy_interval": "2s",
        "interval_jitter": "1s", "unhealthy_threshold": 2, "healthy_threshold": 1,
        "http_health_check": {"path": BROKER_HEALTH_PATH},
        "always_log_health_check_failures": true
    }]);
    all["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["health_check_config"] =
        json!({"port_value": BROKER_HEALTH_PORT});
    clusters.push(all);

    // Per-broker chains by port: one port each, or (TLS) all on the any-cast port by SNI.
    let mut by_port: BTreeMap<i32, Vec<Value>> = BTreeMap::new();
    for id in &i.brokers {
        let name = format!("broker-{id}");
        by_port.entry(i.listen_port(*id)).or_default().push(chain(
            i,
            &name,
            &format!("broker_tcp-{id}"),
            i.broker_host(*id),
        ));
    }
    let any_cast_host = i.service.hostname_override.clone().filter(|h| !h.is_empty());
    by_port.entry(i.any_cast_target_port()).or_default().push(chain(i, "all-brokers", "all-brokers", any_cast_host));
    let mut listeners: Vec<Value> =
        by_port.into_iter().map(|(port, chains)| listener(format!("listener-{port}"), port, chains, i.tls())).collect();
    listeners.push(health_listener(i));
    json!({
        // Inside the Pod only: Envoy's admin API can reconfigure and stop it.
        "admin": {"address": socket("127.0.0.1", i.envoy.admin_port_or_default())},
        "static_resources": {"listeners": listeners, "clusters": clusters}
    })
}

fn container_port(name: String, port: i32) -> ContainerPort {
    ContainerPort { name: Some(name), container_port: port, protocol: Some("TCP".into()), ..Default::default() }
}

fn deployment(c: &ValidatedCluster, i: &Ingress<'_>, config_hash: &str) -> Deployment {
    let e = &i.envoy;
    let mut ports: Vec<ContainerPort> = Vec::new();
    if !i.tls() {
        ports.extend(i.brokers.iter().map(|id| container_port(format!("broker-{id}"), i.listener.broker_port(*id))));
    }
    ports.push(container_port(ANY_CAST_PORT_NAME.into(), i.any_cast_target_port()));
    ports.push(container_port("tcp-admin".into(), e.admin_port_or_default()));
    ports.push(container_port("tcp-health".into(), e.health_check_port_or_default()));
    let mut args = vec!["-c".to_string(), format!("{CONFIG_DIR}/{CONFIG_KEY}")];
    if let Some(n) = e.command_line_args.as_ref().and_then(|a| a.concurrency).filter(|n| *n > 0) {
        args.extend(["--concurrency".to_string(), n.to_string()]);
    }
    let mut mounts = vec![VolumeMount {
        name: "envoy-config".into(),
        mount_path: CONFIG_DIR.into(),
        read_only: Some(true),
        ..Default::default()
    }];
    let mut volumes = vec![Volume {
        name: "envoy-config".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map_name(c, i),
            default_mode: Some(0o644),
            ..Default::default()
        }),
        ..Default::default()
    }];
    if let Some(secret) = i.listener.tls_secret_name.as_deref().filter(|s| i.tls() && !s.is_empty()) {
        mounts.push(VolumeMount {
            name: "envoy-certs".into(),
            mount_path: CERTS_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        });
        volumes.push(Volume {
            name: "envoy-certs".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.into()),
                default_mode: Some(0o644),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let mut annotations = e.annotations.clone().unwrap_or_default();
    annotations.insert(CONFIG_HASH_ANNOTATION.into(), config_hash.into());
    let container = Container {
        name: "envoy".into(),
        image: Some(e.image.clone().filter(|i| !i.is_empty()).unwrap_or_else(|| DEFAULT_IMAGE.into())),
        args: Some(args),
        ports: Some(ports),
        volume_mounts: Some(mounts),
        resources: e.resources.clone(),
        ..Default::default()
    };
    Deployment {
        metadata: meta(c, deployment_name(c, i), i),
        spec: Some(DeploymentSpec {
            replicas: Some(e.replicas.unwrap_or(1)),
            selector: LabelSelector { match_labels: Some(labels(c, i)), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(c, i)),
                    annotations: Some(annotations),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(volumes),
                    service_account_name: e.service_account_name.clone(),
                    image_pull_secrets: e.image_pull_secrets.clone(),
                    affinity: e.affinity.clone(),
                    topology_spread_constraints: e.topology_spread_constraints.clone(),
                    node_selector: e.node_selector.clone(),
                    tolerations: e.tolerations.clone(),
                    priority_class_name: e.priority_class_name.clone(),
                    security_context: e.pod_security_context.clone(),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn service_port(name: String, port: i32, target: IntOrString) -> ServicePort {
    ServicePort {
        name: Some(name),
        port,
        target_port: Some(target),
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn service(c: &ValidatedCluster, i: &Ingress<'_>) -> Service {
    let mut ports: Vec<ServicePort> = Vec::new();
    if !i.tls() {
        ports.extend(i.brokers.iter().map(|id| {
            let port = i.listener.broker_port(*id);
            service_port(format!("broker-{id}"), port, IntOrString::Int(port))
        }));
    }
    ports.push(service_port(
        ANY_CAST_PORT_NAME.into(),
        i.any_cast_port(),
        IntOrString::String(ANY_CAST_PORT_NAME.into()),
    ));
    let health = i.envoy.health_check_port_or_default();
    ports.push(service_port("tcp-health".into(), health, IntOrString::Int(health)));
    let mut m = meta(c, service_name(c, i), i);
    m.annotations = i.service.service_annotations.clone();
    Service {
        metadata: m,
        spec: Some(ServiceSpec {
            type_: Some(
                i.service.service_type.clone().filter(|t| !t.is_empty()).unwrap_or_else(|| "LoadBalancer".into()),
            ),
            selector: Some(labels(c, i)),
            ports: Some(ports),
            load_balancer_ip: i.envoy.load_balancer_ip.clone(),
            load_balancer_source_ranges: i.envoy.load_balancer_source_ranges.clone(),
            external_traffic_policy: i.service.external_traffic_policy.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Whether `envoyConfig.disruptionBudget` asks for a PodDisruptionBudget of this Envoy.
pub fn wants_pdb(i: &Ingress<'_>) -> bool {
    i.envoy.disruption_budget.as_ref().is_some_and(|d| d.create == Some(true))
}

fn pdb(c: &ValidatedCluster, i: &Ingress<'_>) -> Option<PodDisruptionBudget> {
    let db = i.envoy.disruption_budget.as_ref().filter(|_| wants_pdb(i))?;
    let budget = super::objects::int_or_percent(&db.budget);
    let (min_available, max_unavailable) = match db.strategy {
        Some(PdbStrategy::MaxUnavailable) => (None, Some(budget)),
        _ => (Some(budget), None),
    };
    Some(PodDisruptionBudget {
        metadata: meta(c, pdb_name(c, i), i),
        spec: Some(PodDisruptionBudgetSpec {
            min_available,
            max_unavailable,
            selector: Some(LabelSelector { match_labels: Some(labels(c, i)), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::KafkaCluster;
    use crate::api::kafkacluster::{
        BrokerConfig, DisruptionBudgetWithStrategy, EnvoyCommandLineArgs, IngressConfig, IngressConfigSet, ProcessRole,
    };
    use crate::rules::kafkacluster::fixtures::{external, valid_kraft_spec};
    use crate::validated::must;

    fn cluster(f: impl FnOnce(&mut KafkaClusterSpec)) -> ValidatedCluster {
        let mut spec = valid_kraft_spec();
        spec.listeners_config.external_listeners = Some(vec![external("external", 9094, 19090)]);
        f(&mut spec);
        let mut c = KafkaCluster::new("kafka", spec);
        c.metadata.namespace = Some("team-a".into());
        must(&c)
    }

    fn ports(s: &Service) -> Vec<(String, i32)> {
        s.spec.as_ref().unwrap().ports.iter().flatten().map(|p| (p.name.clone().unwrap(), p.port)).collect()
    }

    #[test]
    fn one_envoy_per_listener_with_koperators_names_labels_and_ports() {
        let c = cluster(|_| {});
        let objs = objects(&c);
        assert_eq!(objs.len(), 1);
        let o = &objs[0];
        assert_eq!(o.config_map.metadata.name.as_deref(), Some("envoy-config-external-kafka"));
        assert_eq!(o.deployment.metadata.name.as_deref(), Some("envoy-external-kafka"));
        assert_eq!(o.service.metadata.name.as_deref(), Some("envoy-loadbalancer-external-kafka"));
        assert!(o.pdb.is_none());
        let labels = o.service.metadata.labels.clone().unwrap();
        assert_eq!(labels["app"], "envoyingress");
        assert_eq!(labels["eListenerName"], "external");
        assert_eq!(o.service.spec.as_ref().unwrap().selector.as_ref(), Some(&labels));
        assert_eq!(
            ports(&o.service),
            [
                ("broker-0", 19090),
                ("broker-1", 19091),
                ("broker-2", 19092),
                ("tcp-all-broker", 29092),
                ("tcp-health", 8080)
            ]
            .map(|(n, p)| (n.to_string(), p))
        );
        assert_eq!(o.service.spec.as_ref().unwrap().type_.as_deref(), Some("LoadBalancer"));
    }

    #[test]
    fn the_config_routes_each_broker_port_and_the_any_cast_port() {
        let c = cluster(|_| {});
        let cfg = config(&c, &ingresses(&c)[0]);
        let listeners = cfg["static_resources"]["listeners"].as_array().unwrap();
        let by_port: Vec<(i64, String)> = listeners
            .iter()
            .map(|l| {
                let port = l["address"]["socket_address"]["port_value"].as_i64().unwrap();
                let target = l["filter_chains"][0]["filters"][0]["typed_config"]["cluster"].as_str().unwrap_or("-");
                (port, target.to_string())
            })
            .collect();
        assert_eq!(
            by_port,
            [(19090, "broker-0"), (19091, "broker-1"), (19092, "broker-2"), (29092, "all-brokers"), (8080, "-")]
                .map(|(p, t)| (p, t.to_string()))
        );
        let clusters = cfg["static_resources"]["clusters"].as_array().unwrap();
        let endpoint = |i: usize| clusters[i]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"].clone();
        assert_eq!(endpoint(1)["address"]["socket_address"]["address"], "kafka-1.team-a.svc.cluster.local");
        assert_eq!(endpoint(1)["address"]["socket_address"]["port_value"], 9094);
        assert_eq!(endpoint(3)["address"]["socket_address"]["address"], "kafka-all-broker.team-a.svc.cluster.local");
        assert_eq!(endpoint(3)["health_check_config"]["port_value"], 9020);
        assert_eq!(cfg["admin"]["address"]["socket_address"]["port_value"], 8081);
    }

    #[test]
    fn controller_only_nodes_get_no_route() {
        let c = cluster(|s| {
            let mut controllers = s.broker_config_groups.as_ref().unwrap()["default"].clone();
            controllers.roles = Some(vec![ProcessRole::Controller]);
            s.broker_config_groups.as_mut().unwrap().insert("controllers".into(), controllers);
            s.brokers[2].broker_config_group = Some("controllers".into());
        });
        assert_eq!(ingresses(&c)[0].brokers, [0, 1]);
    }

    #[test]
    fn ingress_configs_split_the_brokers_and_override_the_global_settings() {
        let c = cluster(|s| {
            s.envoy_config = Some(EnvoyConfig { replicas: Some(2), admin_port: Some(9901), ..Default::default() });
            let az = |ip: &str| IngressConfig {
                envoy_config: Some(EnvoyConfig { load_balancer_ip: Some(ip.into()), ..Default::default() }),
                ..Default::default()
            };
            s.listeners_config.external_listeners.as_mut().unwrap()[0].config = Some(IngressConfigSet {
                default_ingress_config: "az1".into(),
                ingress_config: Some(BTreeMap::from([
                    ("az1".to_string(), az("10.0.0.1")),
                    ("az2".to_string(), az("10.0.0.2")),
                    ("unused".to_string(), az("10.0.0.3")),
                ])),
            });
            s.brokers[2].broker_config =
                Some(BrokerConfig { broker_ingress_mapping: Some(vec!["az2".into()]), ..Default::default() });
        });
        let ing = ingresses(&c);
        let summary: Vec<(Option<&str>, Vec<i32>)> = ing.iter().map(|i| (i.config, i.brokers.clone())).collect();
        assert_eq!(summary, [(Some("az1"), vec![0, 1]), (Some("az2"), vec![2])]);
        assert_eq!(ing[1].envoy.replicas, Some(2), "global settings kept");
        assert_eq!(ing[1].envoy.admin_port, Some(9901));
        assert_eq!(ing[1].envoy.load_balancer_ip.as_deref(), Some("10.0.0.2"), "the ingress config's own win");
        let o = ingress_objects(&c, &ing[1]);
        assert_eq!(o.deployment.metadata.name.as_deref(), Some("envoy-external-az2-kafka"));
        assert_eq!(o.service.metadata.labels.as_ref().unwrap()["eListenerName"], "external-az2");
        assert_eq!(o.service.spec.as_ref().unwrap().load_balancer_ip.as_deref(), Some("10.0.0.2"));
        assert_eq!(ports(&o.service)[0], ("broker-2".to_string(), 19092));
    }

    #[test]
    fn node_port_contour_and_cluster_ip_listeners_get_no_envoy() {
        let c = cluster(|s| {
            let l = &mut s.listeners_config.external_listeners.as_mut().unwrap()[0];
            l.access_method = Some(AccessMethod::NodePort);
            l.external_starting_port = 32000;
        });
        assert!(objects(&c).is_empty());
        let c = cluster(|s| s.ingress_controller = Some("contour".into()));
        assert!(objects(&c).is_empty());
    }

    #[test]
    fn deployment_runs_the_config_with_its_hash_and_the_users_settings() {
        let c = cluster(|s| {
            s.envoy_config = Some(EnvoyConfig {
                image: Some("envoyproxy/envoy:v1.40.0".into()),
                command_line_args: Some(EnvoyCommandLineArgs { concurrency: Some(2) }),
                annotations: Some(BTreeMap::from([("team".to_string(), "kafka".to_string())])),
                disruption_budget: Some(DisruptionBudgetWithStrategy {
                    create: Some(true),
                    budget: Some("1".into()),
                    strategy: None,
                }),
                ..Default::default()
            })
        });
        let o = &objects(&c)[0];
        let spec = o.deployment.spec.as_ref().unwrap();
        let pod = spec.template.spec.as_ref().unwrap();
        let container = &pod.containers[0];
        assert_eq!(container.image.as_deref(), Some("envoyproxy/envoy:v1.40.0"));
        assert_eq!(container.args.clone().unwrap(), ["-c", "/etc/envoy/envoy.yaml", "--concurrency", "2"]);
        let annotations = spec.template.metadata.as_ref().unwrap().annotations.clone().unwrap();
        assert_eq!(annotations["team"], "kafka");
        let config = &o.config_map.data.as_ref().unwrap()[CONFIG_KEY];
        assert_eq!(annotations[CONFIG_HASH_ANNOTATION], crate::hash::fnv1a64_hex(config.as_bytes()));
        assert_eq!(pod.volumes.as_ref().unwrap()[0].config_map.as_ref().unwrap().name, "envoy-config-external-kafka");
        let pdb = o.pdb.as_ref().unwrap();
        assert_eq!(pdb.metadata.name.as_deref(), Some("envoy-external-kafka-pdb"));
        assert_eq!(pdb.spec.as_ref().unwrap().min_available, Some(IntOrString::Int(1)));
        // A changed configuration changes the hash, so the Envoy Pods roll.
        let other =
            cluster(|s| s.listeners_config.external_listeners.as_mut().unwrap()[0].external_starting_port = 20000);
        let other_hash = objects(&other)[0]
            .deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()[CONFIG_HASH_ANNOTATION]
            .clone();
        assert_ne!(other_hash, annotations[CONFIG_HASH_ANNOTATION]);
    }

    #[test]
    fn every_upstream_is_a_port_of_the_service_it_names() {
        use crate::render::objects;
        for headless in [false, true] {
            let c = cluster(|s| s.headless_service_enabled = headless);
            let services = objects::services(&c);
            let cfg = config(&c, &ingresses(&c)[0]);
            for cl in cfg["static_resources"]["clusters"].as_array().unwrap() {
                let endpoint = &cl["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"];
                let host = endpoint["address"]["socket_address"]["address"].as_str().unwrap();
                let mut ports = vec![endpoint["address"]["socket_address"]["port_value"].as_i64().unwrap()];
                ports.extend(endpoint["health_check_config"]["port_value"].as_i64());
                // `<service>.<ns>.svc…`, or with the headless Service `<pod>.<service>.<ns>.svc…`.
                let svc = host
                    .split('.')
                    .take(2)
                    .find_map(|label| services.iter().find(|s| s.metadata.name.as_deref() == Some(label)));
                let svc = svc.unwrap_or_else(|| panic!("no Service for {host}"));
                let service = svc.metadata.name.clone().unwrap();
                let spec = svc.spec.as_ref().unwrap();
                if spec.cluster_ip.as_deref() == Some("None") {
                    continue; // a headless Service resolves to the Pods: every port is reachable
                }
                let served: Vec<i64> = spec.ports.iter().flatten().map(|p| i64::from(p.port)).collect();
                for port in ports {
                    assert!(served.contains(&port), "{host}:{port} is not a port of Service {service}: {served:?}");
                }
            }
        }
    }

    #[test]
    fn brokers_are_advertised_with_the_name_of_the_envoy_serving_them() {
        let c = cluster(|s| {
            let l = &mut s.listeners_config.external_listeners.as_mut().unwrap()[0];
            l.service.hostname_override = Some("kafka.example.com".into());
            let named = |host: &str| IngressConfig {
                service: IngressServiceSettings { hostname_override: Some(host.into()), ..Default::default() },
                ..Default::default()
            };
            l.config = Some(IngressConfigSet {
                default_ingress_config: "az1".into(),
                ingress_config: Some(BTreeMap::from([
                    ("az1".to_string(), IngressConfig::default()),
                    ("az2".to_string(), named("az2.example.com")),
                ])),
            });
            s.brokers[2].broker_config =
                Some(BrokerConfig { broker_ingress_mapping: Some(vec!["az2".into()]), ..Default::default() });
        });
        let l = &c.spec.listeners_config.external()[0];
        assert_eq!(advertised(&c, l, 0), Some(("kafka.example.com".to_string(), 19090)), "the listener's name");
        assert_eq!(advertised(&c, l, 2), Some(("az2.example.com".to_string(), 19092)), "its ingress config's");
        assert_eq!(advertised(&c, l, 7), None, "no such broker");
        let props = crate::render::properties::server_properties(&c, 2).unwrap();
        assert!(props.contains("EXTERNAL://az2.example.com:19092"), "{props}");
    }

    #[test]
    fn tls_mode_routes_by_sni_on_the_any_cast_port_and_mounts_the_certificate() {
        let c = cluster(|s| {
            let l = &mut s.listeners_config.external_listeners.as_mut().unwrap()[0];
            l.external_starting_port = -1;
            l.tls_secret_name = Some("envoy-tls".into());
            l.service.hostname_override = Some("kafka.example.com".into());
            s.envoy_config = Some(EnvoyConfig {
                broker_hostname_template: Some("broker-%id.example.com".into()),
                ..Default::default()
            });
        });
        let o = &objects(&c)[0];
        assert_eq!(ports(&o.service), [("tcp-all-broker".to_string(), 29092), ("tcp-health".to_string(), 8080)]);
        let cfg: Value = serde_json::from_str(&o.config_map.data.as_ref().unwrap()[CONFIG_KEY]).unwrap();
        let listeners = cfg["static_resources"]["listeners"].as_array().unwrap();
        assert_eq!(listeners.len(), 2, "one SNI listener and the health check");
        let sni: Vec<&str> = listeners[0]["filter_chains"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["filter_chain_match"]["server_names"][0].as_str().unwrap())
            .collect();
        assert_eq!(sni, ["broker-0.example.com", "broker-1.example.com", "broker-2.example.com", "kafka.example.com"]);
        let pod = o.deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(pod.volumes.as_ref().unwrap()[1].secret.as_ref().unwrap().secret_name.as_deref(), Some("envoy-tls"));
        // Brokers are advertised by their SNI name on the any-cast port.
        let l = &c.spec.listeners_config.external()[0];
        assert_eq!(advertised(&c, l, 1), Some(("broker-1.example.com".to_string(), 29092)));
    }

    #[test]
    fn tls_mode_listens_where_the_service_sends_the_any_cast_port() {
        let c = cluster(|s| {
            let l = &mut s.listeners_config.external_listeners.as_mut().unwrap()[0];
            l.external_starting_port = -1;
            l.any_cast_port = Some(443);
            l.ingress_controller_target_port = Some(8443);
            l.tls_secret_name = Some("envoy-tls".into());
            s.envoy_config = Some(EnvoyConfig {
                broker_hostname_template: Some("broker-%id.example.com".into()),
                ..Default::default()
            });
        });
        let o = &objects(&c)[0];
        let any = o.service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0].clone();
        assert_eq!((any.port, any.target_port), (443, Some(IntOrString::String(ANY_CAST_PORT_NAME.into()))));
        let container = &o.deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap().containers[0];
        let named = container.ports.as_ref().unwrap().iter().find(|p| p.name.as_deref() == Some(ANY_CAST_PORT_NAME));
        assert_eq!(named.unwrap().container_port, 8443);
        let cfg = config(&c, &ingresses(&c)[0]);
        let ports: Vec<i64> = cfg["static_resources"]["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["address"]["socket_address"]["port_value"].as_i64().unwrap())
            .collect();
        assert_eq!(ports, [8443, 8080], "every SNI chain on the target port, then the health check");
        let l = &c.spec.listeners_config.external()[0];
        assert_eq!(
            advertised(&c, l, 0),
            Some(("broker-0.example.com".to_string(), 443)),
            "clients use the Service's port"
        );
    }
}

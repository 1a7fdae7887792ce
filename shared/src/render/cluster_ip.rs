//! The ClusterIP Services of external listeners behind Contour or Gateway API (`accessMethod:
//! ClusterIP`): per in-use ingress configuration an any-cast Service to every broker, and per
//! broker a Service to that broker. The routes of [`super::contour`] (HTTPProxy) and
//! [`super::gateway`] (TLSRoute) send each host name to one of them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use kube::core::DynamicObject;

use super::ingress::{Selected, label_name, overlay, select};
use super::names::{self, DerivedName, MAX_LABEL, cluster_name};
use crate::api::KafkaCluster;
use crate::api::kafkacluster::{AccessMethod, ExternalListenerConfig, IngressServiceSettings, KafkaClusterSpec};
use crate::validated::ValidatedCluster;

/// Name of the any-cast Service port (Koperator's).
pub const ANY_CAST_PORT_NAME: &str = "tcp-all-broker";

/// The ingress controllers that route to ClusterIP Services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Controller {
    /// `ingressController: contour`: Contour HTTPProxies.
    Contour,
    /// `ingressController: gateway-api` (our extension): Gateway API TLSRoutes.
    GatewayApi,
}

impl Controller {
    /// The `spec.ingressController` value.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Contour => "contour",
            Controller::GatewayApi => "gateway-api",
        }
    }
    /// The `app` label of its objects (`contouringress` is Koperator's).
    pub fn app_label(self) -> &'static str {
        match self {
            Controller::Contour => "contouringress",
            Controller::GatewayApi => "gatewayingress",
        }
    }
    /// Whether external listener `l` of `spec` is served by this controller.
    pub fn serves(self, spec: &KafkaClusterSpec, l: &ExternalListenerConfig) -> bool {
        l.access_method_or_default() == AccessMethod::ClusterIp && spec.ingress_controller_or_default() == self.name()
    }
}

/// One in-use ingress configuration of a listener served by a ClusterIP controller.
#[derive(Clone, Debug, PartialEq)]
pub struct Exposure<'a> {
    /// The listener, the configuration and the brokers it serves.
    pub selected: Selected<'a>,
    /// The listener's Service settings with the ingress configuration's on top.
    pub service: IngressServiceSettings,
}

impl Exposure<'_> {
    /// The any-cast host name clients bootstrap from (`hostnameOverride`), if set.
    pub fn any_cast_host(&self) -> Option<&str> {
        self.service.hostname_override.as_deref().filter(|h| !h.is_empty())
    }
    /// Whether this exposure serves broker `id` on listener `l`.
    pub fn serves(&self, l: &ExternalListenerConfig, id: i32) -> bool {
        self.listener() == l.common.name && self.selected.brokers.contains(&id)
    }
    /// The listener's name.
    pub fn listener(&self) -> &str {
        &self.selected.listener.common.name
    }
    /// The port of every Service: the listener's any-cast port (Koperator's choice).
    pub fn port(&self) -> i32 {
        self.selected.listener.any_cast_port_or_default()
    }
}

/// The in-use ingress configurations of the listeners `controller` serves.
pub fn exposures(c: &ValidatedCluster, controller: Controller) -> Vec<Exposure<'_>> {
    select(c, |l| controller.serves(&c.spec, l))
        .into_iter()
        .map(|s| {
            let service = overlay(&s.listener.service, s.ingress.map(|ic| &ic.service));
            Exposure { selected: s, service }
        })
        .collect()
}

/// The any-cast Service's name. Contour keeps Koperator's names, typo included, so that the
/// Services of a cluster migrated from Koperator are adopted: `contour-svc-<listener>-<cluster>`,
/// or `countour-svc-<listener>-<config>-<cluster>` for a named ingress configuration. Gateway
/// API: `gateway-svc-<listener>[-<config>]-<cluster>`.
pub fn any_cast_service_name(c: &KafkaCluster, controller: Controller, listener: &str, config: Option<&str>) -> String {
    let label = label_name(listener, config);
    let prefix = match (controller, config) {
        (Controller::Contour, None) => "contour-svc",
        (Controller::Contour, Some(_)) => "countour-svc",
        (Controller::GatewayApi, _) => "gateway-svc",
    };
    format!("{prefix}-{label}-{}", cluster_name(c))
}

/// The per-broker Service's name, `<cluster>-<id>-<listener>` (Koperator's, as for NodePort).
pub fn broker_service_name(c: &KafkaCluster, id: i32, listener: &str) -> String {
    names::external_service(c, id, listener)
}

/// `app: <controller>ingress`, `kafka_cr: <cluster>`, `eListenerName: <listener>` (Koperator's
/// Contour labels; they carry the listener name alone, also for a named ingress configuration).
pub fn labels(c: &ValidatedCluster, controller: Controller, listener: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app".to_string(), controller.app_label().to_string()),
        ("kafka_cr".to_string(), cluster_name(c).to_string()),
        ("eListenerName".to_string(), listener.to_string()),
    ])
}

/// Metadata in the cluster's namespace, owned by the KafkaCluster when it has a uid.
pub(crate) fn meta(
    c: &ValidatedCluster,
    name: String,
    labels: BTreeMap<String, String>,
    annotations: Option<BTreeMap<String, String>>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: c.metadata.namespace.clone(),
        labels: Some(labels),
        annotations,
        owner_references: c.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    }
}

fn service(meta: ObjectMeta, selector: BTreeMap<String, String>, port_name: String, port: i32, target: i32) -> Service {
    Service {
        metadata: meta,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some(port_name),
                port,
                target_port: Some(IntOrString::Int(target)),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The any-cast Service of `e`: every broker Pod of the cluster, port `tcp-all-broker`.
pub fn any_cast_service(c: &ValidatedCluster, controller: Controller, e: &Exposure<'_>) -> Service {
    let name = any_cast_service_name(c, controller, e.listener(), e.selected.config);
    let m = meta(c, name, labels(c, controller, e.listener()), e.service.service_annotations.clone());
    let l = e.selected.listener;
    service(m, super::objects::cluster_labels(c), ANY_CAST_PORT_NAME.into(), e.port(), l.common.container_port)
}

/// The Service of broker `id` on `e`'s listener: port `broker-<id>` to the listener's port.
pub fn broker_service(c: &ValidatedCluster, controller: Controller, e: &Exposure<'_>, id: i32) -> Service {
    let l = e.selected.listener;
    let mut labels = labels(c, controller, e.listener());
    labels.insert("brokerId".into(), id.to_string());
    let m = meta(c, broker_service_name(c, id, e.listener()), labels, l.service.service_annotations.clone());
    let mut selector = super::objects::cluster_labels(c);
    selector.insert("brokerId".into(), id.to_string());
    service(m, selector, format!("broker-{id}"), e.port(), l.common.container_port)
}

/// What a ClusterIP controller needs applied: the Services and the routes to them.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    /// Any-cast and per-broker Services (each once, also when two ingress configurations
    /// serve a broker).
    pub services: Vec<Service>,
    /// HTTPProxies or TLSRoutes, named after the host name they route.
    pub routes: Vec<DynamicObject>,
}

impl Objects {
    /// Adds `s` unless a Service of that name is there already.
    pub(crate) fn push_service(&mut self, s: Service) {
        if !self.services.iter().any(|have| have.metadata.name == s.metadata.name) {
            self.services.push(s);
        }
    }

    /// Adds what exposure `e` needs: its any-cast Service and the route of its any-cast host,
    /// and per broker it serves the broker's Service and the route of `broker_host(id)`.
    /// `route(host, service, port)` makes a route (`None`: it cannot, its settings are missing);
    /// a host that is not set gets no route.
    pub(crate) fn add_exposure(
        &mut self,
        c: &ValidatedCluster,
        controller: Controller,
        e: &Exposure<'_>,
        broker_host: impl Fn(i32) -> Option<String>,
        route: impl Fn(&str, &str, i32) -> Option<DynamicObject>,
    ) {
        let any = any_cast_service(c, controller, e);
        if let (Some(host), Some(name)) = (e.any_cast_host(), any.metadata.name.as_deref()) {
            self.routes.extend(route(host, name, e.port()));
        }
        self.push_service(any);
        for id in &e.selected.brokers {
            let svc = broker_service(c, controller, e, *id);
            if let (Some(host), Some(name)) = (broker_host(*id), svc.metadata.name.as_deref()) {
                self.routes.extend(route(&host, name, e.port()));
            }
            self.push_service(svc);
        }
    }
}

/// Every host name broker `id` may be reached by through ClusterIP listener `l` of `c`: the
/// `brokerFQDNTemplate` names of the global and every ingress configuration's settings, for the
/// broker's certificate (with TLS passthrough the broker itself answers for them).
pub fn broker_hosts(c: &KafkaCluster, l: &ExternalListenerConfig, id: i32) -> Vec<String> {
    let spec = &c.spec;
    let ics = l.config.iter().flat_map(|s| s.ingress_config.iter().flatten()).map(|(_, ic)| ic);
    let templates: Vec<Option<&str>> = if Controller::Contour.serves(spec, l) {
        let own = ics.filter_map(|ic| ic.contour_ingress_config.as_ref());
        spec.contour_ingress_config.iter().chain(own).map(|c| Some(c.broker_fqdn_template.as_str())).collect()
    } else if Controller::GatewayApi.serves(spec, l) {
        let own = ics.filter_map(|ic| ic.gateway_ingress_config.as_ref());
        spec.gateway_ingress_config.iter().chain(own).map(|g| g.broker_fqdn_template.as_deref()).collect()
    } else {
        Vec::new()
    };
    templates.into_iter().flatten().filter(|t| !t.is_empty()).map(|t| super::ingress::host(t, id)).collect()
}

/// Every name derived from the cluster's name that the Services of `c`'s ClusterIP listeners may
/// take (DNS labels), for the cluster-name rule.
pub fn derived_names(c: &KafkaCluster) -> Vec<DerivedName> {
    let mut out = Vec::new();
    for controller in [Controller::Contour, Controller::GatewayApi] {
        let what = format!("Service ({})", controller.name());
        let d = |name: String| DerivedName { what: what.clone(), name, limit: MAX_LABEL };
        for l in c.spec.listeners_config.external().iter().filter(|l| controller.serves(&c.spec, l)) {
            let configs: Vec<Option<&str>> = match l.config.as_ref().and_then(|s| s.ingress_config.as_ref()) {
                Some(m) if !m.is_empty() => m.keys().map(|k| Some(k.as_str())).collect(),
                _ => vec![None],
            };
            for config in configs {
                out.push(d(any_cast_service_name(c, controller, &l.common.name, config)));
            }
            for b in &c.spec.brokers {
                out.push(d(broker_service_name(c, b.id, &l.common.name)));
            }
        }
    }
    out
}

//! Gateway API ingress of external listeners (our extension: `ingressController: gateway-api`,
//! `accessMethod: ClusterIP`): per in-use ingress configuration the ClusterIP Services of
//! [`super::cluster_ip`] and a `gateway.networking.k8s.io/v1` TLSRoute per host name, attached
//! to the user's Gateway (`gatewayIngressConfig`): the any-cast host (`hostnameOverride`) to the
//! any-cast Service, each broker's (`brokerFQDNTemplate`, `%id` replaced) to its own Service.
//!
//! The Gateway's listener must be TLS `Passthrough` (the brokers terminate TLS, so their external
//! listener is `ssl` or `sasl_ssl`) and allow routes from the KafkaCluster's namespace.

use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use super::cluster_ip::{self, Controller, Exposure, Objects};
use super::ingress::{host, overlay};
use crate::api::kafkacluster::{ExternalListenerConfig, GatewayIngressConfig, KafkaClusterSpec};
use crate::validated::ValidatedCluster;

/// Group of the Gateway API kinds.
pub const GROUP: &str = "gateway.networking.k8s.io";
/// Version of TLSRoute that is rendered (the one the v1.6 standard channel serves).
pub const VERSION: &str = "v1";
/// The kind of the routes.
pub const KIND: &str = "TLSRoute";

/// The TLSRoute resource (`tlsroutes.gateway.networking.k8s.io/v1`), for a
/// `kube::Api<DynamicObject>`.
pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), "tlsroutes")
}

/// Whether external listener `l` of `spec` is served through Gateway API.
pub fn uses_gateway(spec: &KafkaClusterSpec, l: &ExternalListenerConfig) -> bool {
    Controller::GatewayApi.serves(spec, l)
}

/// One in-use ingress configuration of a Gateway-served listener.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayIngress<'a> {
    /// The listener, configuration, brokers and merged Service settings.
    pub exposure: Exposure<'a>,
    /// `spec.gatewayIngressConfig` with the ingress configuration's fields on top.
    pub gateway: GatewayIngressConfig,
}

impl GatewayIngress<'_> {
    /// Broker `id`'s host name (`brokerFQDNTemplate` with `%id` replaced), if there is a template.
    pub fn broker_host(&self, id: i32) -> Option<String> {
        self.gateway.broker_fqdn_template.as_deref().filter(|t| !t.is_empty()).map(|t| host(t, id))
    }
}

/// Every Gateway-served listener's in-use ingress configurations.
pub fn ingresses(c: &ValidatedCluster) -> Vec<GatewayIngress<'_>> {
    let global = c.spec.gateway_ingress_config.clone().unwrap_or_default();
    cluster_ip::exposures(c, Controller::GatewayApi)
        .into_iter()
        .map(|e| {
            let own = e.selected.ingress.and_then(|ic| ic.gateway_ingress_config.as_ref());
            GatewayIngress { gateway: overlay(&global, own), exposure: e }
        })
        .collect()
}

/// Where broker `id` is advertised on Gateway-served listener `l`: its host name from the
/// ingress configuration serving it, on `externalStartingPort + id` or (`-1`) the any-cast port.
/// `None` when no configuration serves the broker.
pub fn advertised(c: &ValidatedCluster, l: &ExternalListenerConfig, id: i32) -> Option<(String, i32)> {
    let host = ingresses(c).iter().find(|i| i.exposure.serves(l, id))?.broker_host(id)?;
    Some((host, l.broker_port(id)))
}

/// The TLSRoute sending `hostname` to port `port` of Service `service`, named `hostname`; `None`
/// without a `gatewayName` (the admission rules require one).
pub fn tls_route(
    c: &ValidatedCluster,
    i: &GatewayIngress<'_>,
    hostname: &str,
    service: &str,
    port: i32,
) -> Option<DynamicObject> {
    let g = &i.gateway;
    let gateway = g.gateway_name.as_deref().filter(|n| !n.is_empty())?;
    let namespace = g.gateway_namespace.clone().filter(|n| !n.is_empty()).or_else(|| c.metadata.namespace.clone());
    let mut parent = json!({"group": GROUP, "kind": "Gateway", "name": gateway, "namespace": namespace});
    if let Some(section) = g.section_name.as_deref().filter(|s| !s.is_empty()) {
        parent["sectionName"] = json!(section);
    }
    let e = &i.exposure;
    let labels = cluster_ip::labels(c, Controller::GatewayApi, e.listener());
    let mut o = DynamicObject::new(hostname, &api_resource());
    o.metadata = cluster_ip::meta(c, hostname.to_string(), labels, None);
    o.data = json!({"spec": {
        "parentRefs": [parent],
        "hostnames": [hostname],
        "rules": [{"backendRefs": [{"group": "", "kind": "Service", "name": service, "port": port}]}]
    }});
    Some(o)
}

/// Every Gateway API object the spec asks for: per in-use ingress configuration the any-cast
/// Service and TLSRoute, and per broker it serves the broker's Service and TLSRoute.
pub fn objects(c: &ValidatedCluster) -> Objects {
    let mut out = Objects::default();
    for i in ingresses(c) {
        let route = |host: &str, service: &str, port: i32| tls_route(c, &i, host, service, port);
        out.add_exposure(c, Controller::GatewayApi, &i.exposure, |id| i.broker_host(id), route);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::Value;

    use super::*;
    use crate::api::KafkaCluster;
    use crate::api::kafkacluster::{
        AccessMethod, BrokerConfig, IngressConfig, IngressConfigSet, IngressServiceSettings, SecurityProtocol,
    };
    use crate::rules::kafkacluster::fixtures::{external, valid_kraft_spec};
    use crate::validated::must;

    /// Brokers 0, 1, 2 with an ssl ClusterIP listener `external` behind the Gateway `kafka-gw`.
    fn cluster(f: impl FnOnce(&mut KafkaClusterSpec)) -> ValidatedCluster {
        let mut spec = valid_kraft_spec();
        spec.ingress_controller = Some("gateway-api".into());
        let mut l = external("external", 9094, -1);
        l.access_method = Some(AccessMethod::ClusterIp);
        l.common.listener_type = SecurityProtocol::Ssl;
        l.service.hostname_override = Some("kafka.example.com".into());
        spec.listeners_config.external_listeners = Some(vec![l]);
        spec.listeners_config.ssl_secrets = Some(Default::default());
        spec.listeners_config.ssl_secrets.as_mut().unwrap().tls_secret_name = "ca".into();
        spec.gateway_ingress_config = Some(GatewayIngressConfig {
            gateway_name: Some("kafka-gw".into()),
            broker_fqdn_template: Some("broker-%id.kafka.example.com".into()),
            ..Default::default()
        });
        f(&mut spec);
        let mut c = KafkaCluster::new("kafka", spec);
        c.metadata.namespace = Some("team-a".into());
        must(&c)
    }

    fn route<'a>(o: &'a Objects, name: &str) -> &'a Value {
        let r = o.routes.iter().find(|r| r.metadata.name.as_deref() == Some(name));
        &r.unwrap_or_else(|| panic!("no route {name}")).data["spec"]
    }

    #[test]
    fn a_tls_route_per_broker_and_for_the_any_cast_host_to_the_gateway() {
        let c = cluster(|_| {});
        let o = objects(&c);
        let names: Vec<&str> = o.routes.iter().filter_map(|r| r.metadata.name.as_deref()).collect();
        assert_eq!(
            names,
            [
                "kafka.example.com",
                "broker-0.kafka.example.com",
                "broker-1.kafka.example.com",
                "broker-2.kafka.example.com"
            ]
        );
        assert_eq!(
            route(&o, "broker-1.kafka.example.com"),
            &json!({
                "parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "kafka-gw", "namespace": "team-a"}],
                "hostnames": ["broker-1.kafka.example.com"],
                "rules": [{"backendRefs": [{"group": "", "kind": "Service", "name": "kafka-1-external", "port": 29092}]}]
            })
        );
        assert_eq!(route(&o, "kafka.example.com")["rules"][0]["backendRefs"][0]["name"], "gateway-svc-external-kafka");
        let t = o.routes[0].types.as_ref().unwrap();
        assert_eq!((t.api_version.as_str(), t.kind.as_str()), ("gateway.networking.k8s.io/v1", "TLSRoute"));
        assert_eq!(o.routes[0].metadata.labels.as_ref().unwrap()["app"], "gatewayingress");
        let services: Vec<&str> = o.services.iter().filter_map(|s| s.metadata.name.as_deref()).collect();
        assert_eq!(
            services,
            ["gateway-svc-external-kafka", "kafka-0-external", "kafka-1-external", "kafka-2-external"]
        );
        assert!(crate::render::contour::objects(&c).routes.is_empty());
    }

    #[test]
    fn namespace_and_section_name_are_passed_on() {
        let c = cluster(|s| {
            let g = s.gateway_ingress_config.as_mut().unwrap();
            g.gateway_namespace = Some("gateways".into());
            g.section_name = Some("kafka-tls".into());
        });
        let o = objects(&c);
        let parent = &route(&o, "kafka.example.com")["parentRefs"][0];
        assert_eq!((&parent["namespace"], &parent["sectionName"]), (&json!("gateways"), &json!("kafka-tls")));
    }

    #[test]
    fn ingress_configs_take_their_own_gateway_and_hosts_over_the_global_ones() {
        let c = cluster(|s| {
            let l = &mut s.listeners_config.external_listeners.as_mut().unwrap()[0];
            let ic = |host: &str, g: Option<GatewayIngressConfig>| IngressConfig {
                service: IngressServiceSettings { hostname_override: Some(host.into()), ..Default::default() },
                gateway_ingress_config: g,
                ..Default::default()
            };
            let az2 = GatewayIngressConfig {
                gateway_name: Some("gw-az2".into()),
                broker_fqdn_template: Some("az2-%id.example.com".into()),
                ..Default::default()
            };
            l.config = Some(IngressConfigSet {
                default_ingress_config: "az1".into(),
                ingress_config: Some(BTreeMap::from([
                    ("az1".to_string(), ic("az1.example.com", None)),
                    ("az2".to_string(), ic("az2.example.com", Some(az2))),
                ])),
            });
            s.brokers[2].broker_config =
                Some(BrokerConfig { broker_ingress_mapping: Some(vec!["az2".into()]), ..Default::default() });
        });
        let o = objects(&c);
        let summary: Vec<(String, String, String)> = o
            .routes
            .iter()
            .map(|r| {
                let s = &r.data["spec"];
                let gw = s["parentRefs"][0]["name"].as_str().unwrap().to_string();
                let backend = s["rules"][0]["backendRefs"][0]["name"].as_str().unwrap().to_string();
                (r.metadata.name.clone().unwrap(), gw, backend)
            })
            .collect();
        let want = [
            ("az1.example.com", "kafka-gw", "gateway-svc-external-az1-kafka"),
            ("broker-0.kafka.example.com", "kafka-gw", "kafka-0-external"),
            ("broker-1.kafka.example.com", "kafka-gw", "kafka-1-external"),
            ("az2.example.com", "gw-az2", "gateway-svc-external-az2-kafka"),
            ("az2-2.example.com", "gw-az2", "kafka-2-external"),
        ]
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
        assert_eq!(summary, want);
    }
}

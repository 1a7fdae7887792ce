//! Contour ingress of external listeners (`ingressController: contour`, `accessMethod:
//! ClusterIP`), as Koperator renders it: per in-use ingress configuration the ClusterIP Services
//! of [`super::cluster_ip`] and a `projectcontour.io/v1` HTTPProxy per host name, which Contour's
//! Envoy routes by TLS server name: the any-cast host (`hostnameOverride`) to the any-cast
//! Service, each broker's (`brokerFQDNTemplate`, `%id` replaced) to its own Service.
//!
//! `contourIngressConfig.tlsSecretName` set: Contour terminates TLS with that Secret
//! (Koperator's behaviour). Empty: TLS passthrough, the brokers terminate TLS themselves (their
//! external listener is `ssl` or `sasl_ssl`; the admission rules check it).

use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use super::cluster_ip::{self, Controller, Exposure, Objects};
use super::ingress::{host, overlay};
use crate::api::kafkacluster::{ContourIngressConfig, ExternalListenerConfig, KafkaClusterSpec};
use crate::validated::ValidatedCluster;

/// Group of the HTTPProxy kind.
pub const GROUP: &str = "projectcontour.io";
/// Version of the HTTPProxy kind that is rendered.
pub const VERSION: &str = "v1";
/// The kind of the routes.
pub const KIND: &str = "HTTPProxy";

/// The HTTPProxy resource (`httpproxies.projectcontour.io/v1`), for a `kube::Api<DynamicObject>`.
pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), "httpproxies")
}

/// Whether external listener `l` of `spec` is served by Contour.
pub fn uses_contour(spec: &KafkaClusterSpec, l: &ExternalListenerConfig) -> bool {
    Controller::Contour.serves(spec, l)
}

/// One in-use ingress configuration of a Contour-served listener.
#[derive(Clone, Debug, PartialEq)]
pub struct ContourIngress<'a> {
    /// The listener, configuration, brokers and merged Service settings.
    pub exposure: Exposure<'a>,
    /// `spec.contourIngressConfig` with the ingress configuration's non-empty fields on top.
    pub contour: ContourIngressConfig,
}

impl ContourIngress<'_> {
    /// TLS passthrough to the brokers (no `tlsSecretName`).
    pub fn passthrough(&self) -> bool {
        self.contour.tls_secret_name.is_empty()
    }
    /// Broker `id`'s host name (`brokerFQDNTemplate` with `%id` replaced), if there is a template.
    pub fn broker_host(&self, id: i32) -> Option<String> {
        Some(&self.contour.broker_fqdn_template).filter(|t| !t.is_empty()).map(|t| host(t, id))
    }
}

/// Every Contour-served listener's in-use ingress configurations.
pub fn ingresses(c: &ValidatedCluster) -> Vec<ContourIngress<'_>> {
    let global = c.spec.contour_ingress_config.clone().unwrap_or_default();
    cluster_ip::exposures(c, Controller::Contour)
        .into_iter()
        .map(|e| {
            let own = e.selected.ingress.and_then(|ic| ic.contour_ingress_config.as_ref());
            ContourIngress { contour: overlay(&global, own), exposure: e }
        })
        .collect()
}

/// Where broker `id` is advertised on Contour-served listener `l`: its host name from the
/// ingress configuration serving it, on `externalStartingPort + id` or (`-1`) the any-cast port,
/// as Koperator advertises it. `None` when no configuration serves the broker.
pub fn advertised(c: &ValidatedCluster, l: &ExternalListenerConfig, id: i32) -> Option<(String, i32)> {
    let host = ingresses(c).iter().find(|i| i.exposure.serves(l, id))?.broker_host(id)?;
    Some((host, l.broker_port(id)))
}

/// The HTTPProxy routing `fqdn` to port `port` of Service `service` (named `fqdn`, as Koperator
/// names it).
pub fn http_proxy(c: &ValidatedCluster, i: &ContourIngress<'_>, fqdn: &str, service: &str, port: i32) -> DynamicObject {
    let e = &i.exposure;
    let tls =
        if i.passthrough() { json!({"passthrough": true}) } else { json!({"secretName": i.contour.tls_secret_name}) };
    let meta = cluster_ip::meta(
        c,
        fqdn.to_string(),
        cluster_ip::labels(c, Controller::Contour, e.listener()),
        e.service.service_annotations.clone(),
    );
    let mut o = DynamicObject::new(fqdn, &api_resource());
    o.metadata = meta;
    o.data = json!({"spec": {
        "virtualhost": {"fqdn": fqdn, "tls": tls},
        "tcpproxy": {"services": [{"name": service, "port": port}]}
    }});
    o
}

/// Every Contour object the spec asks for: per in-use ingress configuration the any-cast Service
/// and HTTPProxy, and per broker it serves the broker's Service and HTTPProxy. A configuration
/// without a host name (the admission rules require them) gets no HTTPProxy for it.
pub fn objects(c: &ValidatedCluster) -> Objects {
    let mut out = Objects::default();
    for i in ingresses(c) {
        let route = |host: &str, service: &str, port: i32| Some(http_proxy(c, &i, host, service, port));
        out.add_exposure(c, Controller::Contour, &i.exposure, |id| i.broker_host(id), route);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use serde_json::Value;

    use super::*;
    use crate::api::KafkaCluster;
    use crate::api::kafkacluster::{
        AccessMethod, BrokerConfig, IngressConfig, IngressConfigSet, IngressServiceSettings, ProcessRole,
        SecurityProtocol,
    };
    use crate::rules::kafkacluster::fixtures::{external, valid_kraft_spec};
    use crate::validated::must;

    /// Brokers 0, 1, 2 with an ssl ClusterIP listener `external` behind Contour (passthrough).
    pub(crate) fn cluster(f: impl FnOnce(&mut KafkaClusterSpec)) -> ValidatedCluster {
        let mut spec = valid_kraft_spec();
        spec.ingress_controller = Some("contour".into());
        let mut l = external("external", 9094, -1);
        l.access_method = Some(AccessMethod::ClusterIp);
        l.common.listener_type = SecurityProtocol::Ssl;
        l.service.hostname_override = Some("kafka.example.com".into());
        spec.listeners_config.external_listeners = Some(vec![l]);
        spec.listeners_config.ssl_secrets = Some(Default::default());
        spec.listeners_config.ssl_secrets.as_mut().unwrap().tls_secret_name = "ca".into();
        spec.contour_ingress_config = Some(ContourIngressConfig {
            tls_secret_name: String::new(),
            broker_fqdn_template: "broker-%id.kafka.example.com".into(),
        });
        f(&mut spec);
        let mut c = KafkaCluster::new("kafka", spec);
        c.metadata.namespace = Some("team-a".into());
        c.metadata.uid = Some("uid-1".into());
        must(&c)
    }

    fn names_of(s: &[Service]) -> Vec<String> {
        s.iter().map(|s| s.metadata.name.clone().unwrap()).collect()
    }

    fn spec_of(o: &DynamicObject) -> &Value {
        &o.data["spec"]
    }

    #[test]
    fn passthrough_proxies_per_broker_and_for_the_any_cast_host_with_koperators_names() {
        let c = cluster(|_| {});
        let o = objects(&c);
        assert_eq!(
            names_of(&o.services),
            ["contour-svc-external-kafka", "kafka-0-external", "kafka-1-external", "kafka-2-external"]
        );
        let routes: Vec<(&str, &Value, &Value)> = o
            .routes
            .iter()
            .map(|r| {
                (
                    r.metadata.name.as_deref().unwrap(),
                    &spec_of(r)["virtualhost"],
                    &spec_of(r)["tcpproxy"]["services"][0],
                )
            })
            .collect();
        assert_eq!(routes.len(), 4);
        assert_eq!(routes[0].0, "kafka.example.com");
        assert_eq!(routes[0].2, &json!({"name": "contour-svc-external-kafka", "port": 29092}));
        assert_eq!(routes[2].0, "broker-1.kafka.example.com");
        assert_eq!(routes[2].1, &json!({"fqdn": "broker-1.kafka.example.com", "tls": {"passthrough": true}}));
        assert_eq!(routes[2].2, &json!({"name": "kafka-1-external", "port": 29092}));
        let r = &o.routes[0];
        assert_eq!(
            r.types.as_ref().map(|t| (t.api_version.as_str(), t.kind.as_str())),
            Some(("projectcontour.io/v1", "HTTPProxy"))
        );
        assert_eq!(r.metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(r.metadata.owner_references.as_ref().unwrap()[0].uid, "uid-1");
        let labels = r.metadata.labels.clone().unwrap();
        assert_eq!(
            labels,
            BTreeMap::from([("app", "contouringress"), ("eListenerName", "external"), ("kafka_cr", "kafka")])
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        );
    }

    #[test]
    fn services_select_the_brokers_on_the_listener_port() {
        let c = cluster(|s| s.listeners_config.external_listeners.as_mut().unwrap()[0].any_cast_port = Some(443));
        let o = objects(&c);
        let spec = |i: usize| o.services[i].spec.clone().unwrap();
        let any = spec(0);
        assert_eq!(any.type_.as_deref(), Some("ClusterIP"));
        assert_eq!(any.selector.unwrap(), crate::render::objects::cluster_labels(&c));
        let port = &any.ports.unwrap()[0];
        assert_eq!((port.name.as_deref(), port.port), (Some("tcp-all-broker"), 443));
        assert_eq!(port.target_port, Some(IntOrString::Int(9094)));
        let b2 = spec(3);
        assert_eq!(b2.selector.unwrap()["brokerId"], "2");
        let port = &b2.ports.unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.port, port.target_port.clone()),
            (Some("broker-2"), 443, Some(IntOrString::Int(9094)))
        );
        assert_eq!(o.services[3].metadata.labels.as_ref().unwrap()["brokerId"], "2");
    }

    #[test]
    fn a_tls_secret_makes_contour_terminate() {
        let c = cluster(|s| s.contour_ingress_config.as_mut().unwrap().tls_secret_name = "kafka-tls".into());
        for r in objects(&c).routes {
            assert_eq!(spec_of(&r)["virtualhost"]["tls"], json!({"secretName": "kafka-tls"}));
        }
    }

    #[test]
    fn ingress_configs_split_the_brokers_and_lay_their_settings_over_the_global_ones() {
        let c = cluster(|s| {
            let l = &mut s.listeners_config.external_listeners.as_mut().unwrap()[0];
            let ic = |host: &str, contour: Option<ContourIngressConfig>| IngressConfig {
                service: IngressServiceSettings { hostname_override: Some(host.into()), ..Default::default() },
                contour_ingress_config: contour,
                ..Default::default()
            };
            l.config = Some(IngressConfigSet {
                default_ingress_config: "az1".into(),
                ingress_config: Some(BTreeMap::from([
                    ("az1".to_string(), ic("az1.example.com", None)),
                    (
                        "az2".to_string(),
                        ic(
                            "az2.example.com",
                            Some(ContourIngressConfig {
                                tls_secret_name: "az2-tls".into(),
                                broker_fqdn_template: "az2-%id.example.com".into(),
                            }),
                        ),
                    ),
                    ("unused".to_string(), ic("unused.example.com", None)),
                ])),
            });
            s.brokers[2].broker_config =
                Some(BrokerConfig { broker_ingress_mapping: Some(vec!["az2".into()]), ..Default::default() });
        });
        let o = objects(&c);
        assert_eq!(
            names_of(&o.services),
            [
                "countour-svc-external-az1-kafka",
                "kafka-0-external",
                "kafka-1-external",
                "countour-svc-external-az2-kafka",
                "kafka-2-external"
            ]
        );
        let routes: Vec<(&str, &Value)> =
            o.routes.iter().map(|r| (r.metadata.name.as_deref().unwrap(), &spec_of(r)["virtualhost"]["tls"])).collect();
        let pass = json!({"passthrough": true});
        let term = json!({"secretName": "az2-tls"});
        assert_eq!(
            routes,
            [
                ("az1.example.com", &pass),
                ("broker-0.kafka.example.com", &pass),
                ("broker-1.kafka.example.com", &pass),
                ("az2.example.com", &term),
                ("az2-2.example.com", &term)
            ]
        );
        assert_eq!(spec_of(&o.routes[3])["tcpproxy"]["services"][0]["name"], "countour-svc-external-az2-kafka");
    }

    #[test]
    fn a_broker_in_two_ingress_configs_gets_one_service_and_two_hosts() {
        let c = cluster(|s| {
            let l = &mut s.listeners_config.external_listeners.as_mut().unwrap()[0];
            let ic = |t: &str| IngressConfig {
                contour_ingress_config: Some(ContourIngressConfig {
                    broker_fqdn_template: t.into(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            l.config = Some(IngressConfigSet {
                default_ingress_config: "a".into(),
                ingress_config: Some(BTreeMap::from([
                    ("a".to_string(), ic("a-%id.example.com")),
                    ("b".to_string(), ic("b-%id.example.com")),
                ])),
            });
            s.brokers[0].broker_config =
                Some(BrokerConfig { broker_ingress_mapping: Some(vec!["a".into(), "b".into()]), ..Default::default() });
        });
        let o = objects(&c);
        assert_eq!(names_of(&o.services).iter().filter(|n| *n == "kafka-0-external").count(), 1);
        let hosts: Vec<&str> =
            o.routes.iter().filter_map(|r| r.metadata.name.as_deref()).filter(|n| n.contains("-0.")).collect();
        assert_eq!(hosts, ["a-0.example.com", "b-0.example.com"]);
    }

    #[test]
    fn only_contour_cluster_ip_listeners_and_broker_nodes_get_routes() {
        let c = cluster(|s| {
            let mut controllers = s.broker_config_groups.as_ref().unwrap()["default"].clone();
            controllers.roles = Some(vec![ProcessRole::Controller]);
            s.broker_config_groups.as_mut().unwrap().insert("controllers".into(), controllers);
            s.brokers[2].broker_config_group = Some("controllers".into());
        });
        assert_eq!(objects(&c).routes.len(), 3, "the any-cast host, brokers 0 and 1");
        assert!(crate::render::envoy::objects(&c).is_empty());
        assert!(crate::render::gateway::objects(&c).routes.is_empty());
        let lb = cluster(|s| {
            s.ingress_controller = None;
            let l = &mut s.listeners_config.external_listeners.as_mut().unwrap()[0];
            l.access_method = None;
            l.external_starting_port = 19090;
        });
        assert!(objects(&lb).services.is_empty() && objects(&lb).routes.is_empty(), "Envoy serves it");
    }

    #[test]
    fn brokers_advertise_and_certify_their_own_host_name() {
        let c = cluster(|_| {});
        let l = &c.spec.listeners_config.external()[0];
        assert_eq!(advertised(&c, l, 1), Some(("broker-1.kafka.example.com".to_string(), 29092)));
        let props = crate::render::properties::server_properties(&c, 1).unwrap();
        assert!(props.contains("EXTERNAL://broker-1.kafka.example.com:29092"), "{props}");
        // Passthrough: the broker answers for its own name and for the any-cast host.
        let sans = crate::render::tls::broker_dns_names(&c, 1);
        for host in ["broker-1.kafka.example.com", "kafka.example.com"] {
            assert!(sans.contains(&host.to_string()), "{host} not in {sans:?}");
        }
        assert!(!sans.contains(&"broker-0.kafka.example.com".to_string()));
    }

    #[test]
    fn every_service_name_is_a_derived_name() {
        let c = cluster(|_| {});
        let derived: Vec<String> = crate::render::names::derived_names(&c).into_iter().map(|d| d.name).collect();
        for s in objects(&c).services {
            assert!(derived.contains(s.metadata.name.as_ref().unwrap()), "{:?} not in {derived:?}", s.metadata.name);
        }
    }
}

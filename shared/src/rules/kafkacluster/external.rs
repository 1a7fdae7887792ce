//! External listener rules: Koperator's port checks (rules 2–4) and access consistency (rule 9).

use super::{
    INVALID_CONTAINER_PORT_FOR_INGRESS_CONTROLLER, INVALID_EXTERNAL_LISTENER_STARTING_PORT, broker_path, external_path,
    spec_path,
};
use crate::api::kafkacluster::{AccessMethod, ExternalListenerConfig, KafkaClusterSpec};
use crate::render::cluster_ip::Controller;
use crate::rules::{FieldError, RuleConfig, go_list, names};

const SUPPORTED_INGRESS_CONTROLLERS: &[&str] = &["envoy", "contour", "gateway-api"];

/// True when brokers of this listener get no port of their own: TLS mode (`-1`, hostname
/// routing on the any-cast port) or NodePort with `0` or `-1` (Kubernetes assigns the node
/// ports).
fn ports_auto_assigned(l: &ExternalListenerConfig) -> bool {
    l.tls_enabled() || crate::render::external::node_ports_assigned(l)
}

/// Rules 2 and 3 (Koperator): `externalStartingPort + brokerId` is within 1..65535 for every
/// broker, and does not collide with the ingress controller target port or (Envoy) the Envoy
/// admin and health-check ports.
pub fn starting_ports(spec: &KafkaClusterSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let envoy = spec.ingress_controller_or_default() == "envoy";
    let (admin, health) = (spec.envoy_admin_port(), spec.envoy_health_check_port());
    for (i, l) in spec.listeners_config.external().iter().enumerate() {
        if ports_auto_assigned(l) {
            continue;
        }
        let target = l.ingress_controller_target_port_or_default();
        let mut out_of_range = Vec::new();
        let mut colliding = Vec::new();
        for b in &spec.brokers {
            let port = l.external_starting_port + b.id;
            if !(1..=65535).contains(&port) {
                out_of_range.push(b.id);
            }
            if port == target {
                colliding.push(b.id);
            }
            if envoy && (port == admin || port == health) {
                colliding.push(b.id);
            }
        }
        let path = external_path(i).child("externalStartingPort");
        if !out_of_range.is_empty() {
            errs.push(FieldError::invalid(
                &path,
                l.external_starting_port,
                format!(
                    "{INVALID_EXTERNAL_LISTENER_STARTING_PORT}: ExternalListener '{}' would generate external access port numbers \
                     (externalStartingPort + Broker ID) that are out of range (not between 1 and 65535) for brokers {}; \
                     lower externalStartingPort so that it plus the largest broker id is at most 65535",
                    l.common.name,
                    go_list(&out_of_range)
                ),
            ));
        }
        if !colliding.is_empty() {
            errs.push(FieldError::invalid(
                &path,
                l.external_starting_port,
                format!(
                    "{INVALID_EXTERNAL_LISTENER_STARTING_PORT}: ExternalListener '{}' would generate external access port numbers \
                     (externalStartingPort + Broker ID) that collide with either the envoy admin port ('{admin}'), the envoy \
                     health-check port ('{health}'), or the ingressControllerTargetPort ('{target}') for brokers {}; \
                     move externalStartingPort or the colliding port",
                    l.common.name,
                    go_list(&colliding)
                ),
            ));
        }
    }
    errs
}

/// Rule 4 (Koperator): with Envoy, the admin port differs from the health-check port, and a
/// LoadBalancer listener's ingress controller target port equals neither.
pub fn target_port_collisions_for_envoy(spec: &KafkaClusterSpec) -> Vec<FieldError> {
    if spec.ingress_controller_or_default() != "envoy" {
        return Vec::new();
    }
    let mut errs = Vec::new();
    let (admin, health) = (spec.envoy_admin_port(), spec.envoy_health_check_port());
    if admin == health {
        errs.push(FieldError::invalid(
            &spec_path().child("envoyConfig").child("adminPort"),
            admin,
            format!(
                "{INVALID_CONTAINER_PORT_FOR_INGRESS_CONTROLLER}: The envoy configuration uses an admin port number that \
                 collides with the health-check port number; use different envoyConfig.adminPort and envoyConfig.healthCheckPort"
            ),
        ));
    }
    for (i, l) in spec.listeners_config.external().iter().enumerate() {
        if l.access_method_or_default() != AccessMethod::LoadBalancer {
            continue;
        }
        let target = l.ingress_controller_target_port_or_default();
        for (port, what) in [(admin, "admin"), (health, "health-check")] {
            if target == port {
                errs.push(FieldError::invalid(
                    &external_path(i).child("ingressControllerTargetPort"),
                    target,
                    format!(
                        "{INVALID_CONTAINER_PORT_FOR_INGRESS_CONTROLLER}: ExternalListener '{}' uses an ingress controller \
                         target port number that collides with the envoy's {what} port; choose another ingressControllerTargetPort",
                        l.common.name
                    ),
                ));
            }
        }
    }
    errs
}

/// What Contour-served listeners lack for their HTTPProxies (the rules of
/// [`super::routes::check`]), as warnings: such a cluster is accepted, as Koperator accepts it,
/// and reports `Degraded/IngressNotReady` until it is fixed.
pub fn route_warnings(spec: &KafkaClusterSpec) -> Vec<String> {
    let mut out = Vec::new();
    for (i, l) in spec.listeners_config.external().iter().enumerate() {
        if Controller::Contour.serves(spec, l) {
            let problems = super::routes::check(spec, l, &external_path(i), Controller::Contour);
            out.extend(problems.iter().map(|e| format!("{e} (no HTTPProxy is created for it until then)")));
        }
    }
    out
}

/// Rule 9: the ingress controller is supported and consistent with each listener's access
/// method; a Gateway has what it needs (Contour: [`route_warnings`]); ingress config names
/// resolve; host names are valid; fixed node ports are in the node-port range; any-cast ports
/// do not collide.
pub fn access(spec: &KafkaClusterSpec, cfg: &RuleConfig) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let controller = spec.ingress_controller_or_default();
    if let Some(ic) = spec.ingress_controller.as_deref().filter(|s| !s.is_empty())
        && !SUPPORTED_INGRESS_CONTROLLERS.contains(&ic)
    {
        let mut e =
            FieldError::not_supported(&spec_path().child("ingressController"), ic, SUPPORTED_INGRESS_CONTROLLERS);
        if ic.starts_with("istio") {
            e.message.push_str("; Istio ingress is not supported by this operator, use envoy or contour");
        }
        errs.push(e);
    }
    if spec.istio_ingress_config.is_some() {
        errs.push(FieldError::forbidden(
            &spec_path().child("istioIngressConfig"),
            "Istio ingress is not supported by this operator; remove istioIngressConfig and use envoyConfig or contourIngressConfig",
        ));
    }

    let mut ingress_names: Vec<&str> = Vec::new();
    for (i, l) in spec.listeners_config.external().iter().enumerate() {
        let path = external_path(i);
        let method = l.access_method_or_default();
        if method == AccessMethod::ClusterIp {
            match [Controller::Contour, Controller::GatewayApi].into_iter().find(|c| c.name() == controller) {
                // Koperator accepts incomplete Contour settings (and clusters stored by an
                // earlier release may have them): warnings, see `route_warnings`.
                Some(Controller::Contour) => {}
                Some(c) => errs.extend(super::routes::check(spec, l, &path, c)),
                None => errs.push(FieldError::invalid(
                    &path.child("accessMethod"),
                    "ClusterIP",
                    "accessMethod ClusterIP works only behind Contour or Gateway API; set spec.ingressController: contour \
                     (or gateway-api) or use LoadBalancer/NodePort",
                )),
            }
        }
        if controller == "envoy" && method == AccessMethod::LoadBalancer && l.tls_enabled() {
            errs.extend(envoy_tls(spec, l, &path));
        }
        if let Some(set) = &l.config {
            let map = set.ingress_config.as_ref();
            if let Some(map) = map {
                ingress_names.extend(map.keys().map(String::as_str));
            }
            let default = set.default_ingress_config.as_str();
            if !default.is_empty() && map.is_some_and(|m| !m.contains_key(default)) {
                let known: Vec<&str> = map.into_iter().flat_map(|m| m.keys().map(String::as_str)).collect();
                errs.push(FieldError::not_found(
                    &path.child("config").child("defaultIngressConfig"),
                    default,
                    format!("defaultIngressConfig must name an entry of config.ingressConfig (defined: {known:?})"),
                ));
            }
        }
        if let Some(host) = l.service.hostname_override.as_deref().filter(|h| !h.is_empty()) {
            let full = if method == AccessMethod::NodePort {
                format!("cluster-0-listener.ns{host}")
            } else {
                host.to_string()
            };
            if !names::is_wildcard_dns_subdomain(&full) && !names::is_ip(host) {
                errs.push(FieldError::invalid(
                    &path.child("hostnameOverride"),
                    host,
                    if method == AccessMethod::NodePort {
                        "with NodePort the broker advertises <cluster>-<id>-<listener>.<namespace><hostnameOverride>, which must be a valid \
                         DNS name: use a suffix like .example.com"
                    } else {
                        "hostnameOverride must be a valid lowercase DNS name or an IP address"
                    },
                ));
            }
        }
        if method == AccessMethod::NodePort && l.external_starting_port > 0 {
            let outside: Vec<i32> = spec
                .brokers
                .iter()
                .filter(|b| !cfg.node_port_range.contains(&(l.external_starting_port + b.id)))
                .map(|b| b.id)
                .collect();
            if !outside.is_empty() {
                errs.push(FieldError::invalid(
                    &path.child("externalStartingPort"),
                    l.external_starting_port,
                    format!(
                        "NodePort ports (externalStartingPort + broker id) must be in the cluster's node-port range {}-{}; brokers {} \
                         fall outside it; choose a starting port inside the range, or 0 to let Kubernetes assign ports",
                        cfg.node_port_range.start(),
                        cfg.node_port_range.end(),
                        go_list(&outside)
                    ),
                ));
            }
        }
        if !ports_auto_assigned(l) && method == AccessMethod::LoadBalancer {
            let any = l.any_cast_port_or_default();
            let mut clashes: Vec<String> = spec
                .brokers
                .iter()
                .filter(|b| l.external_starting_port + b.id == any)
                .map(|b| format!("broker {}", b.id))
                .collect();
            if controller == "envoy" {
                if any == spec.envoy_admin_port() {
                    clashes.push("the envoy admin port".into());
                }
                if any == spec.envoy_health_check_port() {
                    clashes.push("the envoy health-check port".into());
                }
            }
            if !clashes.is_empty() {
                errs.push(FieldError::invalid(
                    &path.child("anyCastPort"),
                    any,
                    format!("the any-cast port collides with {}; choose another anyCastPort", clashes.join(", ")),
                ));
            }
        }
    }
    if let Some(envoy) = &spec.envoy_config
        && let Some(t) = envoy.broker_hostname_template.as_deref().filter(|t| !t.is_empty())
    {
        errs.extend(template(t, &spec_path().child("envoyConfig").child("brokerHostnameTemplate")));
    }
    for (i, b) in spec.brokers.iter().enumerate() {
        for (j, name) in b.effective_ingress_mapping(spec).into_iter().enumerate() {
            if !ingress_names.contains(&name) {
                errs.push(FieldError::not_found(
                    &broker_path(i).child("brokerConfig").child("brokerIngressMapping").index(j),
                    name,
                    format!(
                        "brokerIngressMapping must name an entry of some external listener's config.ingressConfig (defined: {ingress_names:?})"
                    ),
                ));
            }
        }
    }
    errs
}

/// `externalStartingPort: -1` behind Envoy: Envoy terminates TLS with `tlsSecretName` and routes
/// each broker by the SNI name `brokerHostnameTemplate` gives it (in `spec.envoyConfig` or in
/// every ingress configuration's), so both must be there.
fn envoy_tls(spec: &KafkaClusterSpec, l: &ExternalListenerConfig, path: &crate::rules::Path) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if l.tls_secret_name.as_deref().is_none_or(str::is_empty) {
        errs.push(FieldError::required(
            &path.child("tlsSecretName"),
            "externalStartingPort -1 makes Envoy terminate TLS: name the Secret (tls.crt, tls.key) it serves",
        ));
    }
    let has = |e: Option<&crate::api::kafkacluster::EnvoyConfig>| {
        e.and_then(|e| e.broker_hostname_template.as_deref()).is_some_and(|t| !t.is_empty())
    };
    let configs = l.config.as_ref().and_then(|c| c.ingress_config.as_ref()).filter(|m| !m.is_empty());
    let covered =
        has(spec.envoy_config.as_ref()) || configs.is_some_and(|m| m.values().all(|ic| has(ic.envoy_config.as_ref())));
    if !covered {
        errs.push(FieldError::required(
            &spec_path().child("envoyConfig").child("brokerHostnameTemplate"),
            "externalStartingPort -1 makes Envoy route each broker by its TLS server name: set a template such as \
             broker-%id.kafka.example.com (and point those names at the load balancer)",
        ));
    }
    errs
}

/// A host name template must be a valid DNS name once `%id` is replaced.
fn template(t: &str, path: &crate::rules::Path) -> Option<FieldError> {
    let host = t.replace("%id", "0");
    (!names::is_wildcard_dns_subdomain(&host)).then(|| {
        FieldError::invalid(path, t, "with %id replaced by a broker id the template must be a valid lowercase DNS name")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kafkacluster::{EnvoyConfig, IngressConfig, IngressConfigSet};
    use crate::rules::ErrorType;
    use crate::rules::kafkacluster::fixtures::*;
    use std::collections::BTreeMap;

    fn ext_spec(ids: &[i32], listeners: &[(&str, i32)]) -> KafkaClusterSpec {
        let mut spec = KafkaClusterSpec { brokers: brokers(ids), ..Default::default() };
        spec.listeners_config.external_listeners = Some(listeners.iter().map(|(n, p)| external(n, 0, *p)).collect());
        spec
    }

    fn out_of_range(i: usize, port: i32, name: &str, ids: &str) -> FieldError {
        FieldError::invalid(
            &external_path(i).child("externalStartingPort"),
            port,
            format!(
                "{INVALID_EXTERNAL_LISTENER_STARTING_PORT}: ExternalListener '{name}' would generate external access port numbers \
                 (externalStartingPort + Broker ID) that are out of range (not between 1 and 65535) for brokers {ids}; \
                 lower externalStartingPort so that it plus the largest broker id is at most 65535"
            ),
        )
    }

    // Koperator TestCheckExternalListenerStartingPort
    #[test]
    fn koperator_valid_3_brokers_2_external_listeners() {
        assert_eq!(
            starting_ports(&ext_spec(&[900, 901, 902], &[("test-external1", 19090), ("test-external2", 29090)])),
            vec![]
        );
    }

    #[test]
    fn koperator_out_of_range_external_listeners() {
        let errs = starting_ports(&ext_spec(&[900, 901, 902], &[("test-external1", 79090), ("test-external2", 89090)]));
        assert_eq!(
            errs,
            vec![
                out_of_range(0, 79090, "test-external1", "[900 901 902]"),
                out_of_range(1, 89090, "test-external2", "[900 901 902]"),
            ]
        );
    }

    #[test]
    fn koperator_at_the_limit_external_listeners() {
        let errs = starting_ports(&ext_spec(&[0, 11, 102], &[("test-external1", 65535), ("test-external2", 65434)]));
        assert_eq!(
            errs,
            vec![
                out_of_range(0, 65535, "test-external1", "[11 102]"),
                out_of_range(1, 65434, "test-external2", "[102]")
            ]
        );
    }

    #[test]
    fn koperator_in_range_but_colliding_with_envoy_ports() {
        let errs = starting_ports(&ext_spec(&[0, 11, 102], &[("test-external1", 8080), ("test-external2", 8070)]));
        assert_eq!(paths_and_types(&errs).len(), 2);
        assert_eq!(errs[0].path, "spec.listenersConfig.externalListeners[0].externalStartingPort");
        assert_eq!(errs[0].value.as_deref(), Some("8080"));
        assert!(errs[0].message.contains(
            "ExternalListener 'test-external1' would generate external access port numbers (externalStartingPort + Broker ID) \
             that collide with either the envoy admin port ('8081'), the envoy health-check port ('8080'), or the \
             ingressControllerTargetPort ('29092') for brokers [0]"
        ));
        assert_eq!(errs[1].path, "spec.listenersConfig.externalListeners[1].externalStartingPort");
        assert!(errs[1].message.contains("for brokers [11]"), "{}", errs[1].message);
    }

    #[test]
    fn tls_mode_and_auto_node_ports_skip_the_port_range_check() {
        let mut spec = ext_spec(&[0, 1], &[("tls", -1), ("np", 0)]);
        spec.listeners_config.external_listeners.as_mut().unwrap()[1].access_method = Some(AccessMethod::NodePort);
        assert_eq!(starting_ports(&spec), vec![]);
    }

    #[test]
    fn contour_controller_skips_envoy_collisions() {
        let mut spec = ext_spec(&[0], &[("test-external1", 8080)]);
        spec.ingress_controller = Some("contour".into());
        assert_eq!(starting_ports(&spec), vec![]);
    }

    fn envoy_spec(
        admin: Option<i32>,
        health: Option<i32>,
        targets: &[(Option<AccessMethod>, Option<i32>)],
    ) -> KafkaClusterSpec {
        let mut spec = KafkaClusterSpec {
            envoy_config: Some(EnvoyConfig { admin_port: admin, health_check_port: health, ..Default::default() }),
            ..Default::default()
        };
        spec.listeners_config.external_listeners = Some(
            targets
                .iter()
                .enumerate()
                .map(|(i, (m, t))| {
                    let mut l = external(&format!("test-external{}", i + 1), 0, 0);
                    l.access_method = *m;
                    l.ingress_controller_target_port = *t;
                    l
                })
                .collect(),
        );
        spec
    }

    #[test]
    fn tls_mode_behind_envoy_needs_a_secret_and_a_broker_hostname_template() {
        let mut spec = envoy_spec(None, None, &[(None, None)]);
        spec.listeners_config.external_listeners.as_mut().unwrap()[0].external_starting_port = -1;
        let errs = access(&spec, &RuleConfig::default());
        assert_eq!(
            paths_and_types(&errs),
            vec![
                ("spec.listenersConfig.externalListeners[0].tlsSecretName".into(), ErrorType::Required),
                ("spec.envoyConfig.brokerHostnameTemplate".into(), ErrorType::Required),
            ]
        );
        let l = &mut spec.listeners_config.external_listeners.as_mut().unwrap()[0];
        l.tls_secret_name = Some("envoy-tls".into());
        spec.envoy_config.as_mut().unwrap().broker_hostname_template = Some("broker-%id.example.com".into());
        assert_eq!(access(&spec, &RuleConfig::default()), vec![]);
        // Behind Contour (or on NodePort) Envoy is not involved.
        spec.envoy_config = None;
        spec.ingress_controller = Some("contour".into());
        assert!(!access(&spec, &RuleConfig::default()).iter().any(|e| e.path.contains("brokerHostnameTemplate")));
    }

    // Koperator TestCheckTargetPortsCollisionForEnvoy
    #[test]
    fn koperator_envoy_ports_not_defined() {
        assert_eq!(target_port_collisions_for_envoy(&envoy_spec(None, None, &[(None, None), (None, None)])), vec![]);
    }

    #[test]
    fn koperator_non_load_balancer_listeners_are_skipped() {
        let spec = envoy_spec(
            None,
            None,
            &[(Some(AccessMethod::NodePort), Some(29000)), (Some(AccessMethod::NodePort), None)],
        );
        assert_eq!(target_port_collisions_for_envoy(&spec), vec![]);
    }

    #[test]
    fn koperator_admin_port_collides_with_default_health_port() {
        let errs = target_port_collisions_for_envoy(&envoy_spec(Some(8080), None, &[]));
        assert_eq!(paths_and_types(&errs), vec![("spec.envoyConfig.adminPort".into(), ErrorType::Invalid)]);
        assert_eq!(errs[0].value.as_deref(), Some("8080"));
        assert!(errs[0].message.starts_with(&format!(
            "{INVALID_CONTAINER_PORT_FOR_INGRESS_CONTROLLER}: The envoy configuration uses an admin port number that collides with the health-check port number"
        )));
    }

    #[test]
    fn koperator_default_admin_port_collides_with_health_port() {
        let errs = target_port_collisions_for_envoy(&envoy_spec(None, Some(8081), &[]));
        assert_eq!(paths_and_types(&errs), vec![("spec.envoyConfig.adminPort".into(), ErrorType::Invalid)]);
        assert_eq!(errs[0].value.as_deref(), Some("8081"));
    }

    #[test]
    fn koperator_target_ports_collide_with_admin_and_default_health() {
        let spec = envoy_spec(Some(29000), None, &[(None, Some(29000)), (None, Some(8080))]);
        let errs = target_port_collisions_for_envoy(&spec);
        assert_eq!(
            paths_and_types(&errs),
            vec![
                ("spec.listenersConfig.externalListeners[0].ingressControllerTargetPort".into(), ErrorType::Invalid),
                ("spec.listenersConfig.externalListeners[1].ingressControllerTargetPort".into(), ErrorType::Invalid),
            ]
        );
        assert!(errs[0].message.contains("ExternalListener 'test-external1' uses an ingress controller target port number that collides with the envoy's admin port"));
        assert!(errs[1].message.contains("ExternalListener 'test-external2' uses an ingress controller target port number that collides with the envoy's health-check port"));
    }

    #[test]
    fn koperator_target_ports_collide_with_default_admin_and_health() {
        let spec = envoy_spec(None, Some(19090), &[(None, Some(19090)), (None, Some(8081))]);
        let errs = target_port_collisions_for_envoy(&spec);
        assert_eq!(errs.len(), 2);
        assert!(errs[0].message.contains("'test-external1' uses an ingress controller target port number that collides with the envoy's health-check port"));
        assert!(errs[1].message.contains(
            "'test-external2' uses an ingress controller target port number that collides with the envoy's admin port"
        ));
        assert_eq!(errs[1].value.as_deref(), Some("8081"));
    }

    fn with_external(mut spec: KafkaClusterSpec, l: ExternalListenerConfig) -> KafkaClusterSpec {
        spec.listeners_config.external_listeners = Some(vec![l]);
        spec
    }

    #[test]
    fn istio_ingress_is_not_supported() {
        let mut spec = valid_kraft_spec();
        spec.ingress_controller = Some("istioingress".into());
        spec.istio_ingress_config = Some(serde_json::json!({"gatewayConfig": {}}));
        let errs = access(&spec, &RuleConfig::default());
        assert_eq!(
            paths_and_types(&errs),
            vec![
                ("spec.ingressController".into(), ErrorType::NotSupported),
                ("spec.istioIngressConfig".into(), ErrorType::Forbidden)
            ]
        );
        assert!(errs[0].message.contains("Istio ingress is not supported"));
    }

    #[test]
    fn cluster_ip_needs_contour() {
        let mut l = external("external", 9094, 19090);
        l.access_method = Some(AccessMethod::ClusterIp);
        let errs = access(&with_external(valid_kraft_spec(), l), &RuleConfig::default());
        assert_eq!(
            paths_and_types(&errs),
            vec![("spec.listenersConfig.externalListeners[0].accessMethod".into(), ErrorType::Invalid)]
        );
    }

    #[test]
    fn default_ingress_config_and_broker_mapping_must_exist() {
        let mut l = external("external", 9094, 19090);
        l.config = Some(IngressConfigSet {
            default_ingress_config: "az3".into(),
            ingress_config: Some(BTreeMap::from([("az1".to_string(), IngressConfig::default())])),
        });
        let mut spec = with_external(valid_kraft_spec(), l);
        spec.brokers[1].broker_config = Some(crate::api::kafkacluster::BrokerConfig {
            broker_ingress_mapping: Some(vec!["az1".into(), "az2".into()]),
            ..Default::default()
        });
        let errs = access(&spec, &RuleConfig::default());
        assert_eq!(
            paths_and_types(&errs),
            vec![
                ("spec.listenersConfig.externalListeners[0].config.defaultIngressConfig".into(), ErrorType::NotFound),
                ("spec.brokers[1].brokerConfig.brokerIngressMapping[1]".into(), ErrorType::NotFound),
            ]
        );
    }

    #[test]
    fn hostname_override_must_be_a_dns_name() {
        let mut l = external("external", 9094, 19090);
        l.service.hostname_override = Some("Not A Host".into());
        let errs = access(&with_external(valid_kraft_spec(), l.clone()), &RuleConfig::default());
        assert_eq!(
            paths_and_types(&errs),
            vec![("spec.listenersConfig.externalListeners[0].hostnameOverride".into(), ErrorType::Invalid)]
        );
        l.service.hostname_override = Some("kafka.example.com".into());
        assert_eq!(access(&with_external(valid_kraft_spec(), l.clone()), &RuleConfig::default()), vec![]);
        l.access_method = Some(AccessMethod::NodePort);
        l.external_starting_port = 30000;
        l.service.hostname_override = Some(".example.com".into());
        assert_eq!(access(&with_external(valid_kraft_spec(), l), &RuleConfig::default()), vec![]);
    }

    #[test]
    fn fixed_node_ports_must_be_in_range() {
        let mut l = external("external", 9094, 32766);
        l.access_method = Some(AccessMethod::NodePort);
        let errs = access(&with_external(valid_kraft_spec(), l), &RuleConfig::default());
        assert_eq!(
            paths_and_types(&errs),
            vec![("spec.listenersConfig.externalListeners[0].externalStartingPort".into(), ErrorType::Invalid)]
        );
        assert!(errs[0].message.contains("brokers [2]"), "{}", errs[0].message);
    }

    #[test]
    fn any_cast_port_must_not_collide() {
        let mut l = external("external", 9094, 29091);
        l.any_cast_port = Some(29092);
        let errs = access(&with_external(valid_kraft_spec(), l.clone()), &RuleConfig::default());
        assert_eq!(
            paths_and_types(&errs),
            vec![("spec.listenersConfig.externalListeners[0].anyCastPort".into(), ErrorType::Invalid)]
        );
        assert!(errs[0].message.contains("broker 1"));
        l.external_starting_port = 19090;
        l.any_cast_port = Some(8081);
        let errs = access(&with_external(valid_kraft_spec(), l), &RuleConfig::default());
        assert!(errs[0].message.contains("envoy admin port"));
    }

    #[test]
    fn broker_hostname_template_must_be_a_dns_name() {
        let mut spec = valid_kraft_spec();
        spec.envoy_config =
            Some(EnvoyConfig { broker_hostname_template: Some("kafka_%id.example.com".into()), ..Default::default() });
        let errs = access(&spec, &RuleConfig::default());
        assert_eq!(
            paths_and_types(&errs),
            vec![("spec.envoyConfig.brokerHostnameTemplate".into(), ErrorType::Invalid)]
        );
    }
}

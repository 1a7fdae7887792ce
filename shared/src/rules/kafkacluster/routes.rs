//! Rules of external listeners behind Contour or Gateway API (`accessMethod: ClusterIP`): every
//! in-use ingress configuration (or the listener, without any) needs the any-cast host name
//! (`hostnameOverride`) and a broker host name template with `%id`; Contour without a TLS
//! Secret and Gateway API pass TLS through, so the brokers' listener must speak TLS; Gateway API
//! needs the Gateway's name.

use crate::api::kafkacluster::{ContourIngressConfig, ExternalListenerConfig, GatewayIngressConfig, KafkaClusterSpec};
use crate::render::cluster_ip::Controller;
use crate::rules::kafkacluster::spec_path;
use crate::rules::{FieldError, Path, names};

/// One place a setting can be made: the ingress configuration's own, or the global one.
struct Entry<'a> {
    /// `config.ingressConfig[<name>]` of the listener, or the listener itself.
    at: Path,
    /// Whether `at` is an ingress configuration (the global setting also counts there).
    named: bool,
    hostname_override: Option<&'a str>,
    contour: Option<&'a ContourIngressConfig>,
    gateway: Option<&'a GatewayIngressConfig>,
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// The first of `(value, path)` that is set, else the path to set it at.
fn pick<'a>(
    local: Option<&'a str>,
    local_at: Path,
    global: Option<&'a str>,
    global_at: Path,
) -> Result<(&'a str, Path), Path> {
    match (non_empty(local), non_empty(global)) {
        (Some(v), _) => Ok((v, local_at)),
        (None, Some(v)) => Ok((v, global_at)),
        (None, None) => Err(local_at),
    }
}

/// The rules of listener `l` (at `path`) served by `controller`.
pub fn check(
    spec: &KafkaClusterSpec,
    l: &ExternalListenerConfig,
    path: &Path,
    controller: Controller,
) -> Vec<FieldError> {
    let configs = l.config.as_ref().and_then(|c| c.ingress_config.as_ref()).filter(|m| !m.is_empty());
    let entries: Vec<Entry<'_>> = match configs {
        Some(m) => m
            .iter()
            .map(|(name, ic)| Entry {
                at: path.child("config").child("ingressConfig").key(name),
                named: true,
                hostname_override: non_empty(ic.service.hostname_override.as_deref()),
                contour: ic.contour_ingress_config.as_ref(),
                gateway: ic.gateway_ingress_config.as_ref(),
            })
            .collect(),
        None => vec![Entry { at: path.clone(), named: false, hostname_override: None, contour: None, gateway: None }],
    };
    let mut errs = Vec::new();
    for e in &entries {
        errs.extend(any_cast_host(l, path, e, controller));
    }
    match controller {
        Controller::Contour => errs.extend(contour(spec, l, &entries)),
        Controller::GatewayApi => errs.extend(gateway(spec, l, path, &entries)),
    }
    let mut unique: Vec<FieldError> = Vec::new();
    for e in errs {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    unique
}

fn any_cast_host(l: &ExternalListenerConfig, path: &Path, e: &Entry<'_>, controller: Controller) -> Option<FieldError> {
    let field = "hostnameOverride";
    let listener = l.service.hostname_override.as_deref();
    match pick(e.hostname_override, e.at.child(field), listener, path.child(field)) {
        Err(at) => Some(FieldError::required(
            &at,
            format!(
                "{} routes the any-cast (bootstrap) host name of listener '{}' to every broker: set hostnameOverride to that \
                 name, such as kafka.example.com{}",
                controller_title(controller),
                l.common.name,
                if e.named { " (here or on the listener)" } else { "" }
            ),
        )),
        // The listener's own is checked by the access rule already (as a DNS name or an IP).
        Ok((host, at)) if !names::is_dns_subdomain(host) => {
            let reported = at == path.child(field) && !names::is_wildcard_dns_subdomain(host) && !names::is_ip(host);
            (!reported).then(|| {
                FieldError::invalid(
                    &at,
                    host,
                    "the any-cast host name names a route object and must be a lowercase DNS name (no wildcard, no IP)",
                )
            })
        }
        Ok(_) => None,
    }
}

fn controller_title(controller: Controller) -> &'static str {
    match controller {
        Controller::Contour => "Contour",
        Controller::GatewayApi => "Gateway API",
    }
}

/// A broker host name template: `%id` in it, a DNS name once replaced.
fn template(t: &str, at: &Path) -> Option<FieldError> {
    if !t.contains("%id") {
        return Some(FieldError::invalid(
            at,
            t,
            "the template must contain %id so that every broker gets its own host name",
        ));
    }
    (!names::is_dns_subdomain(&t.replace("%id", "0"))).then(|| {
        FieldError::invalid(
            at,
            t,
            "with %id replaced by a broker id the template must be a lowercase DNS name (no wildcard)",
        )
    })
}

fn contour<'a>(spec: &'a KafkaClusterSpec, l: &ExternalListenerConfig, entries: &[Entry<'a>]) -> Vec<FieldError> {
    let global = spec.contour_ingress_config.as_ref();
    let global_at = spec_path().child("contourIngressConfig");
    if global.is_none() && entries.iter().all(|e| e.contour.is_none()) {
        return vec![FieldError::required(
            &global_at,
            format!(
                "external listener '{}' is exposed through Contour: set spec.contourIngressConfig (brokerFQDNTemplate, and \
                 tlsSecretName unless the brokers terminate TLS) or a contourIngressConfig in the listener's config.ingressConfig",
                l.common.name
            ),
        )];
    }
    let mut errs = Vec::new();
    for e in entries {
        let local_at = if e.named { e.at.child("contourIngressConfig") } else { global_at.clone() };
        let fqdn = |c: Option<&'a ContourIngressConfig>| c.map(|c| c.broker_fqdn_template.as_str());
        match pick(
            fqdn(e.contour),
            local_at.child("brokerFQDNTemplate"),
            fqdn(global),
            global_at.child("brokerFQDNTemplate"),
        ) {
            Err(at) => {
                errs.push(FieldError::required(&at, "set a broker host name template such as kafka-%id.example.com"))
            }
            Ok((t, at)) => errs.extend(template(t, &at)),
        }
        let secret = |c: Option<&'a ContourIngressConfig>| c.map(|c| c.tls_secret_name.as_str());
        let picked =
            pick(secret(e.contour), local_at.child("tlsSecretName"), secret(global), global_at.child("tlsSecretName"));
        if let Err(at) = picked
            && !l.common.listener_type.is_ssl()
        {
            errs.push(FieldError::required(
                &at,
                format!(
                    "without tlsSecretName Contour passes TLS through to the brokers, but listener '{}' is {}: set \
                     tlsSecretName (Contour terminates TLS with that Secret) or make the listener ssl or sasl_ssl",
                    l.common.name,
                    l.common.listener_type.kafka_name()
                ),
            ));
        }
    }
    errs
}

fn gateway(spec: &KafkaClusterSpec, l: &ExternalListenerConfig, path: &Path, entries: &[Entry<'_>]) -> Vec<FieldError> {
    let global = spec.gateway_ingress_config.as_ref();
    let global_at = spec_path().child("gatewayIngressConfig");
    let mut errs = Vec::new();
    if !l.common.listener_type.is_ssl() {
        errs.push(FieldError::invalid(
            &path.child("type"),
            l.common.listener_type.kafka_name().to_lowercase(),
            format!(
                "Gateway API TLSRoutes pass TLS through to the brokers: make listener '{}' ssl or sasl_ssl (and the Gateway's \
                 listener TLS mode Passthrough)",
                l.common.name
            ),
        ));
    }
    if l.external_starting_port != -1 {
        errs.push(FieldError::invalid(
            &path.child("externalStartingPort"),
            l.external_starting_port.to_string(),
            "a Gateway's TLS passthrough listener has a single port: set externalStartingPort to -1 so that every broker is \
             advertised on anyCastPort, and set anyCastPort to the Gateway listener's port",
        ));
    }
    if global.is_none() && entries.iter().all(|e| e.gateway.is_none()) {
        errs.push(FieldError::required(
            &global_at,
            format!(
                "external listener '{}' is exposed through Gateway API: set spec.gatewayIngressConfig (gatewayName, \
                 brokerFQDNTemplate) or a gatewayIngressConfig in the listener's config.ingressConfig",
                l.common.name
            ),
        ));
        return errs;
    }
    type Get = fn(&GatewayIngressConfig) -> Option<&str>;
    for e in entries {
        let local_at = if e.named { e.at.child("gatewayIngressConfig") } else { global_at.clone() };
        let get = |f: Get, name: &str| {
            pick(e.gateway.and_then(f), local_at.child(name), global.and_then(f), global_at.child(name))
        };
        match get(|g| g.gateway_name.as_deref(), "gatewayName") {
            Err(at) => errs.push(FieldError::required(&at, "name the Gateway the TLSRoutes attach to")),
            Ok((n, at)) if !names::is_dns_subdomain(n) => {
                errs.push(FieldError::invalid(&at, n, "a Gateway name is a lowercase DNS name"))
            }
            Ok(_) => {}
        }
        if let Ok((n, at)) = get(|g| g.gateway_namespace.as_deref(), "gatewayNamespace")
            && !names::is_dns_label(n)
        {
            errs.push(FieldError::invalid(
                &at,
                n,
                "a namespace name is a lowercase DNS label; leave it out for the cluster's own",
            ));
        }
        if let Ok((n, at)) = get(|g| g.section_name.as_deref(), "sectionName")
            && !names::is_dns_subdomain(n)
        {
            errs.push(FieldError::invalid(&at, n, "sectionName names a listener of the Gateway: a lowercase DNS name"));
        }
        match get(|g| g.broker_fqdn_template.as_deref(), "brokerFQDNTemplate") {
            Err(at) => {
                errs.push(FieldError::required(&at, "set a broker host name template such as kafka-%id.example.com"))
            }
            Ok((t, at)) => errs.extend(template(t, &at)),
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::api::kafkacluster::{
        AccessMethod, BrokerConfig, IngressConfig, IngressConfigSet, IngressServiceSettings, SecurityProtocol,
    };
    use crate::rules::kafkacluster::external::access;
    use crate::rules::kafkacluster::fixtures::*;
    use crate::rules::{ErrorType, RuleConfig};

    use super::*;

    const L: &str = "spec.listenersConfig.externalListeners[0]";

    /// What a case is, its spec, the errors it gets (path and type).
    type Case = (&'static str, KafkaClusterSpec, Vec<(String, ErrorType)>);

    /// A KRaft spec with one ClusterIP listener of `kind` behind `controller`, host name set.
    fn spec(controller: &str, kind: SecurityProtocol, f: impl FnOnce(&mut KafkaClusterSpec)) -> KafkaClusterSpec {
        let mut spec = valid_kraft_spec();
        spec.ingress_controller = Some(controller.into());
        let mut l = external("external", 9094, -1);
        l.access_method = Some(AccessMethod::ClusterIp);
        l.common.listener_type = kind;
        l.service.hostname_override = Some("kafka.example.com".into());
        spec.listeners_config.external_listeners = Some(vec![l]);
        f(&mut spec);
        spec
    }

    fn contour(secret: &str, template: &str) -> Option<ContourIngressConfig> {
        Some(ContourIngressConfig { tls_secret_name: secret.into(), broker_fqdn_template: template.into() })
    }

    fn gateway(name: Option<&str>, template: Option<&str>) -> Option<GatewayIngressConfig> {
        Some(GatewayIngressConfig {
            gateway_name: name.map(Into::into),
            broker_fqdn_template: template.map(Into::into),
            ..Default::default()
        })
    }

    /// Two ingress configurations `az1` (default) and `az2` (broker 2), each `ic` made by `f`.
    fn two_configs(s: &mut KafkaClusterSpec, f: impl Fn(&str) -> IngressConfig) {
        let l = &mut s.listeners_config.external_listeners.as_mut().unwrap()[0];
        l.config = Some(IngressConfigSet {
            default_ingress_config: "az1".into(),
            ingress_config: Some(BTreeMap::from([("az1".to_string(), f("az1")), ("az2".to_string(), f("az2"))])),
        });
        s.brokers[2].broker_config =
            Some(BrokerConfig { broker_ingress_mapping: Some(vec!["az2".into()]), ..Default::default() });
    }

    /// The listener's errors: for Contour what `route_warnings` turns into warnings.
    fn errors(spec: &KafkaClusterSpec) -> Vec<(String, ErrorType)> {
        let mut errs = access(spec, &RuleConfig::default());
        if spec.ingress_controller.as_deref() == Some("contour") {
            let l = &spec.listeners_config.external()[0];
            errs.extend(check(
                spec,
                l,
                &Path::root("spec").child("listenersConfig").child("externalListeners").index(0),
                Controller::Contour,
            ));
        }
        paths_and_types(&errs)
    }

    fn err(path: &str, t: ErrorType) -> (String, ErrorType) {
        (path.to_string(), t)
    }

    #[test]
    fn contour_needs_a_host_a_template_and_tls_somewhere() {
        use ErrorType::*;
        use SecurityProtocol::{Plaintext, Ssl};
        let no_host = |s: &mut KafkaClusterSpec| {
            s.listeners_config.external_listeners.as_mut().unwrap()[0].service = Default::default()
        };
        let cases: Vec<Case> = vec![
            (
                "terminating, complete",
                spec("contour", Plaintext, |s| s.contour_ingress_config = contour("tls", "b-%id.example.com")),
                vec![],
            ),
            (
                "passthrough to ssl brokers",
                spec("contour", Ssl, |s| s.contour_ingress_config = contour("", "b-%id.example.com")),
                vec![],
            ),
            (
                "passthrough to plaintext brokers",
                spec("contour", Plaintext, |s| s.contour_ingress_config = contour("", "b-%id.example.com")),
                vec![err("spec.contourIngressConfig.tlsSecretName", Required)],
            ),
            ("no config at all", spec("contour", Ssl, |_| {}), vec![err("spec.contourIngressConfig", Required)]),
            (
                "no host, no template",
                spec("contour", Ssl, |s| {
                    no_host(s);
                    s.contour_ingress_config = contour("", "");
                }),
                vec![
                    err(&format!("{L}.hostnameOverride"), Required),
                    err("spec.contourIngressConfig.brokerFQDNTemplate", Required),
                ],
            ),
            (
                "template without %id",
                spec("contour", Ssl, |s| s.contour_ingress_config = contour("", "kafka.example.com")),
                vec![err("spec.contourIngressConfig.brokerFQDNTemplate", Invalid)],
            ),
            (
                "wildcard template",
                spec("contour", Ssl, |s| s.contour_ingress_config = contour("", "*.b-%id.example.com")),
                vec![err("spec.contourIngressConfig.brokerFQDNTemplate", Invalid)],
            ),
            (
                "ingress configs over the global one: az2's own template is broken, az1 has no host",
                spec("contour", Plaintext, |s| {
                    no_host(s);
                    s.contour_ingress_config = contour("tls", "b-%id.example.com");
                    two_configs(s, |name| IngressConfig {
                        service: IngressServiceSettings {
                            hostname_override: (name == "az2").then(|| "az2.example.com".into()),
                            ..Default::default()
                        },
                        contour_ingress_config: (name == "az2").then(|| ContourIngressConfig {
                            broker_fqdn_template: "az2.example.com".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                }),
                vec![
                    err(&format!("{L}.config.ingressConfig[az1].hostnameOverride"), Required),
                    err(&format!("{L}.config.ingressConfig[az2].contourIngressConfig.brokerFQDNTemplate"), Invalid),
                ],
            ),
            (
                "ingress configs alone, without a global one",
                spec("contour", Ssl, |s| {
                    two_configs(s, |name| IngressConfig {
                        contour_ingress_config: contour("", &format!("{name}-%id.example.com")),
                        ..Default::default()
                    })
                }),
                vec![],
            ),
        ];
        for (what, spec, want) in cases {
            assert_eq!(errors(&spec), want, "{what}");
        }
    }

    #[test]
    fn gateway_api_needs_a_gateway_a_template_a_host_and_tls_brokers() {
        use ErrorType::*;
        use SecurityProtocol::{Plaintext, SaslSsl, Ssl};
        let complete =
            |s: &mut KafkaClusterSpec| s.gateway_ingress_config = gateway(Some("kafka-gw"), Some("b-%id.example.com"));
        let cases: Vec<Case> = vec![
            ("complete", spec("gateway-api", Ssl, complete), vec![]),
            ("complete, sasl_ssl", spec("gateway-api", SaslSsl, complete), vec![]),
            ("plaintext brokers", spec("gateway-api", Plaintext, complete), vec![err(&format!("{L}.type"), Invalid)]),
            ("no config", spec("gateway-api", Ssl, |_| {}), vec![err("spec.gatewayIngressConfig", Required)]),
            (
                "a port per broker",
                spec("gateway-api", Ssl, |s| {
                    complete(s);
                    s.listeners_config.external_listeners.as_mut().unwrap()[0].external_starting_port = 19090;
                }),
                vec![err(&format!("{L}.externalStartingPort"), Invalid)],
            ),
            (
                "empty config",
                spec("gateway-api", Ssl, |s| s.gateway_ingress_config = gateway(None, None)),
                vec![
                    err("spec.gatewayIngressConfig.gatewayName", Required),
                    err("spec.gatewayIngressConfig.brokerFQDNTemplate", Required),
                ],
            ),
            (
                "bad names",
                spec("gateway-api", Ssl, |s| {
                    s.gateway_ingress_config = Some(GatewayIngressConfig {
                        gateway_name: Some("Kafka GW".into()),
                        gateway_namespace: Some("a.b".into()),
                        section_name: Some("TLS".into()),
                        broker_fqdn_template: Some("b.example.com".into()),
                    })
                }),
                vec![
                    err("spec.gatewayIngressConfig.gatewayName", Invalid),
                    err("spec.gatewayIngressConfig.gatewayNamespace", Invalid),
                    err("spec.gatewayIngressConfig.sectionName", Invalid),
                    err("spec.gatewayIngressConfig.brokerFQDNTemplate", Invalid),
                ],
            ),
            (
                "no host",
                spec("gateway-api", Ssl, |s| {
                    complete(s);
                    s.listeners_config.external_listeners.as_mut().unwrap()[0].service.hostname_override = None;
                }),
                vec![err(&format!("{L}.hostnameOverride"), Required)],
            ),
            (
                "ingress configs: az1 takes the global gateway, az2 has none anywhere",
                spec("gateway-api", Ssl, |s| {
                    s.gateway_ingress_config = gateway(None, Some("b-%id.example.com"));
                    two_configs(s, |name| IngressConfig {
                        gateway_ingress_config: (name == "az1").then(|| gateway(Some("gw-1"), None)).flatten(),
                        ..Default::default()
                    });
                }),
                vec![err(&format!("{L}.config.ingressConfig[az2].gatewayIngressConfig.gatewayName"), Required)],
            ),
        ];
        for (what, spec, want) in cases {
            assert_eq!(errors(&spec), want, "{what}");
        }
    }

    #[test]
    fn cluster_ip_needs_contour_or_gateway_api_and_their_messages_say_how_to_fix() {
        let spec = spec("envoy", SecurityProtocol::Ssl, |_| {});
        let errs = access(&spec, &RuleConfig::default());
        assert_eq!(paths_and_types(&errs), vec![err(&format!("{L}.accessMethod"), ErrorType::Invalid)]);
        assert!(errs[0].message.contains("ingressController: contour"), "{}", errs[0].message);
        let spec = super::tests::spec("contour", SecurityProtocol::Plaintext, |s| {
            s.contour_ingress_config = contour("", "b-%id.example.com")
        });
        assert!(
            access(&spec, &RuleConfig::default()).is_empty(),
            "Contour's gaps are not errors (Koperator accepts them)"
        );
        let warnings = crate::rules::kafkacluster::external::route_warnings(&spec);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let msg = &warnings[0];
        assert!(msg.contains("set tlsSecretName") && msg.contains("make the listener ssl"), "{msg}");
        assert!(msg.starts_with("spec.contourIngressConfig.tlsSecretName") && msg.contains("no HTTPProxy"), "{msg}");
    }
}

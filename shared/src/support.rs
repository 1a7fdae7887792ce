//! What the operator does not act on yet: Koperator fields that our API accepts (so that
//! Koperator manifests apply unchanged) but that no controller implements so far.
//!
//! Nothing is silently ignored (DESIGN §8): the webhook answers each entry with a warning, and
//! the operator sets `Degraded` with reason `NotSupported` naming the fields. Entries whose
//! effect is [`Effect::CannotStart`] would give brokers that cannot start (SASL on the
//! inter-broker listener, without broker credentials), so the operator renders nothing for such a cluster. The issue that builds
//! a feature removes its entries here.

use crate::api::kafkacluster::{AccessMethod, BrokerConfig, KafkaClusterSpec, SecurityProtocol};
use crate::api::kafkauser::KafkaUser;

/// What ignoring a field means for the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The cluster runs, without the feature the field asks for.
    Ignored,
    /// Brokers rendered without the feature could not start; the operator touches nothing.
    CannotStart,
}

/// One field that is accepted but not acted on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    /// The field path (`spec.monitoringConfig.cCJMXExporterConfig`, `spec.brokers[0].brokerConfig.networkConfig`).
    pub path: String,
    /// What the operator does instead.
    pub note: &'static str,
    /// Whether the cluster can run without it.
    pub effect: Effect,
}

impl Unsupported {
    fn ignored(path: impl Into<String>, note: &'static str) -> Self {
        Unsupported { path: path.into(), note, effect: Effect::Ignored }
    }

    /// The admission warning for this field.
    pub fn warning(&self) -> String {
        format!("{}: accepted but not acted on yet: {}", self.path, self.note)
    }
}

/// The field list of a `Degraded/NotSupported` condition message.
pub fn message(fields: &[Unsupported]) -> String {
    let list: Vec<String> = fields.iter().map(|u| format!("{} ({})", u.path, u.note)).collect();
    format!("accepted but not acted on yet: {}", list.join("; "))
}

/// Whether any of `fields` keeps the brokers from starting.
pub fn blocks_start(fields: &[Unsupported]) -> bool {
    fields.iter().any(|u| u.effect == Effect::CannotStart)
}

fn set<T>(v: &Option<T>) -> bool {
    v.is_some()
}

/// What the cluster runs that gives some broker config fields their effect.
struct Uses {
    /// The brokers run the Cruise Control metrics reporter.
    reporter: bool,
    /// The operator writes Cruise Control's `capacity.json`.
    capacities: bool,
    /// An external listener is served by an ingress controller (Envoy, Contour or a Gateway),
    /// which reads `brokerIngressMapping`.
    ingress: bool,
}

/// Fields of a broker config (group or per broker) that rendering does not use.
fn broker_config(prefix: &str, c: &BrokerConfig, uses: &Uses, out: &mut Vec<Unsupported>) {
    let Uses { reporter, capacities, ingress } = *uses;
    let fields: [(&str, bool, &'static str); 4] = [
        ("log4jConfig", set(&c.log4j_config), "brokers use the log4j configuration of their image"),
        (
            "networkConfig",
            set(&c.network_config) && !capacities,
            "no Cruise Control is deployed (spec.cruiseControlConfig asks for none), so no capacity.json uses it",
        ),
        (
            "metricsReporterImage",
            set(&c.metrics_reporter_image) && !reporter,
            "spec.cruiseControlConfig asks for no Cruise Control, so the brokers run no metrics reporter",
        ),
        (
            "brokerIngressMapping",
            set(&c.broker_ingress_mapping) && !ingress,
            "no external listener is served by an ingress controller (Envoy for LoadBalancer, Contour or gateway-api for ClusterIP)",
        ),
    ];
    for (field, is_set, note) in fields {
        if is_set {
            out.push(Unsupported::ignored(format!("{prefix}.{field}"), note));
        }
    }
}

/// External listener `l` is served by an ingress controller: Envoy, Contour or a Gateway.
fn served_by_ingress(spec: &KafkaClusterSpec, l: &crate::api::kafkacluster::ExternalListenerConfig) -> bool {
    crate::render::envoy::uses_envoy(spec, l)
        || crate::render::contour::uses_contour(spec, l)
        || crate::render::gateway::uses_gateway(spec, l)
}

/// Every field of `spec` that the operator accepts but does not act on yet.
pub fn kafkacluster(spec: &KafkaClusterSpec) -> Vec<Unsupported> {
    let mut out = Vec::new();
    let lc = &spec.listeners_config;
    if let Some(ssl) = &lc.ssl_secrets {
        let fields: [(&str, bool); 3] = [
            ("pkiBackend", ssl.pki_backend.is_some()),
            ("issuerRef", ssl.issuer_ref.is_some()),
            ("jksPasswordName", ssl.jks_password_name.is_some()),
        ];
        for (field, is_set) in fields {
            if is_set {
                out.push(Unsupported::ignored(
                    format!("spec.listenersConfig.sslSecrets.{field}"),
                    "the operator issues PEM certificates from the CA in tlsSecretName itself; no cert-manager or JKS is used",
                ));
            }
        }
    }
    let internal =
        lc.internal_listeners.iter().enumerate().map(|(i, l)| (format!("internalListeners[{i}]"), &l.common));
    let external = lc.external().iter().enumerate().map(|(i, l)| (format!("externalListeners[{i}]"), &l.common));
    for (at, l) in internal.chain(external) {
        let path = format!("spec.listenersConfig.{at}");
        let sasl = matches!(l.listener_type, SecurityProtocol::SaslSsl | SecurityProtocol::SaslPlaintext);
        let internal_role = lc.internal_listeners.iter().any(|i| {
            i.common.name == l.name
                && (i.common.used_for_inner_broker_communication || i.used_for_controller_communication)
        });
        if !l.listener_type.is_ssl() && l.server_ssl_cert_secret.is_some() {
            out.push(Unsupported::ignored(
                format!("{path}.serverSSLCertSecret"),
                "only ssl and sasl_ssl listeners serve a certificate",
            ));
        }
        if sasl && internal_role {
            out.push(Unsupported {
                path: format!("{path}.type"),
                note: "SASL on the inter-broker or controller listener needs broker credentials the operator does not manage (and KRaft controllers cannot use SCRAM), so brokers could not start; nothing is rendered: use ssl or plaintext there and SASL on other listeners",
                effect: Effect::CannotStart,
            });
        }
    }
    let ingress = spec.ingress_controller_or_default();
    for (i, l) in lc.external().iter().enumerate() {
        let path = format!("spec.listenersConfig.externalListeners[{i}]");
        let method = l.access_method_or_default();
        if method == AccessMethod::LoadBalancer && ingress != "envoy" {
            out.push(Unsupported::ignored(
                format!("{path}.accessMethod"),
                "only Envoy serves a LoadBalancer listener through an ingress controller; each broker gets a LoadBalancer Service instead",
            ));
        }
        if l.config.is_some() && !served_by_ingress(spec, l) {
            out.push(Unsupported::ignored(
                format!("{path}.config"),
                "only ingress controllers (Envoy for LoadBalancer, Contour or gateway-api for ClusterIP) use ingress configurations",
            ));
        }
    }
    let reporter = crate::render::cruise_control::configured_in(spec);
    let deployed = crate::render::cruise_control::deployed_in(spec);
    let envoy = lc.external().iter().any(|l| crate::render::envoy::uses_envoy(spec, l));
    let contour = lc.external().iter().any(|l| crate::render::contour::uses_contour(spec, l));
    let gateway = lc.external().iter().any(|l| crate::render::gateway::uses_gateway(spec, l));
    let uses =
        Uses { reporter, capacities: deployed, ingress: lc.external().iter().any(|l| served_by_ingress(spec, l)) };
    let cluster_fields: [(&str, bool, &'static str); 9] = [
        (
            "envoyConfig",
            // Its ports are defaulted for every cluster with an external listener.
            !envoy
                && spec.envoy_config.as_ref().is_some_and(|e| {
                    let ports_only = crate::api::kafkacluster::EnvoyConfig {
                        admin_port: e.admin_port,
                        health_check_port: e.health_check_port,
                        ..Default::default()
                    };
                    *e != ports_only
                }),
            "no external listener is served by Envoy (accessMethod LoadBalancer with ingressController envoy)",
        ),
        (
            "contourIngressConfig",
            set(&spec.contour_ingress_config) && !contour,
            "no external listener is served by Contour (accessMethod ClusterIP with ingressController contour)",
        ),
        (
            "gatewayIngressConfig",
            set(&spec.gateway_ingress_config) && !gateway,
            "no external listener is served by a Gateway (accessMethod ClusterIP with ingressController gateway-api)",
        ),
        (
            "monitoringConfig.cCJMXExporterConfig",
            !deployed
                && spec
                    .monitoring_config
                    .as_ref()
                    .is_some_and(|m| m.cc_jmx_exporter_config.as_deref().is_some_and(|c| !c.is_empty())),
            "no Cruise Control is deployed (spec.cruiseControlConfig asks for none, or names an external cruiseControlEndpoint), so no Cruise Control exporter runs (the brokers' exporter does)",
        ),
        ("rackAwareness", set(&spec.rack_awareness), "broker.rack is not set from node labels"),
        ("taintedBrokersSelector", set(&spec.tainted_brokers_selector), "tainted brokers are not drained"),
        ("propagateLabels", spec.propagate_labels == Some(true), "KafkaCluster labels are not copied to its objects"),
        (
            "clusterMetricsReporterImage",
            set(&spec.cluster_metrics_reporter_image) && !reporter,
            "spec.cruiseControlConfig asks for no Cruise Control, so the brokers run no metrics reporter",
        ),
        ("localDebugEnabled", spec.local_debug_enabled == Some(true), "no debug set-up is rendered"),
    ];
    for (field, is_set, note) in cluster_fields {
        if is_set {
            out.push(Unsupported::ignored(format!("spec.{field}"), note));
        }
    }
    if spec.rolling_upgrade_config.concurrent_broker_restart_count_per_rack.is_some_and(|n| n > 1) {
        out.push(Unsupported::ignored(
            "spec.rollingUpgradeConfig.concurrentBrokerRestartCountPerRack",
            "brokers restart one at a time",
        ));
    }
    for (name, group) in spec.broker_config_groups.iter().flatten() {
        broker_config(&format!("spec.brokerConfigGroups[{name}]"), group, &uses, &mut out);
    }
    for (i, b) in spec.brokers.iter().enumerate() {
        if let Some(c) = &b.broker_config {
            broker_config(&format!("spec.brokers[{i}].brokerConfig"), c, &uses, &mut out);
        }
    }
    out
}

/// Every field of a KafkaUser that the operator accepts but does not act on: the certificate
/// fields of a user without a certificate (SCRAM credentials, annotation
/// `koperator.banzaicloud.io/credentials`, or `createCert: false`), and the annotations of a
/// cert-manager Certificate or CSR, which the operator's own PKI does not make.
pub fn kafkauser(user: &KafkaUser, uses_scram: bool) -> Vec<Unsupported> {
    let s = &user.spec;
    let mut out = Vec::new();
    let no_cert = if uses_scram {
        Some("the user has SCRAM credentials; no client certificate is issued")
    } else if s.create_cert == Some(false) {
        Some("createCert is false; no client certificate is issued")
    } else {
        None
    };
    if let Some(note) = no_cert {
        let fields: [(&str, bool); 3] = [
            ("includeJKS", s.include_jks == Some(true)),
            ("dnsNames", s.dns_names.as_ref().is_some_and(|d| !d.is_empty())),
            ("expirationSeconds", set(&s.expiration_seconds)),
        ];
        for (field, is_set) in fields {
            if is_set {
                out.push(Unsupported::ignored(format!("spec.{field}"), note));
            }
        }
    }
    if s.annotations.as_ref().is_some_and(|a| !a.is_empty()) {
        out.push(Unsupported::ignored(
            "spec.annotations",
            "the operator issues certificates itself; no Certificate or CertificateSigningRequest carries them",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kafkacluster::{BrokerConfig, NetworkConfig, PkiBackend, SslSecrets};
    use crate::rules::kafkacluster::fixtures::valid_kraft_spec;

    fn paths(spec: &KafkaClusterSpec) -> Vec<String> {
        kafkacluster(spec).into_iter().map(|u| u.path).collect()
    }

    #[test]
    fn a_plain_cluster_uses_only_what_is_built() {
        assert_eq!(paths(&valid_kraft_spec()), Vec::<String>::new());
    }

    #[test]
    fn ssl_listeners_with_operator_certificates_run_others_cannot_start() {
        let mut spec = valid_kraft_spec();
        spec.listeners_config.internal_listeners[0].common.listener_type = SecurityProtocol::Ssl;
        spec.listeners_config.ssl_secrets = Some(SslSecrets { tls_secret_name: "tls".into(), ..Default::default() });
        assert_eq!(paths(&spec), Vec::<String>::new(), "operator-issued SSL is built");

        spec.listeners_config.ssl_secrets.as_mut().unwrap().pki_backend = Some(PkiBackend::CertManager);
        let found = kafkacluster(&spec);
        assert!(!blocks_start(&found));
        assert_eq!(paths(&spec), vec!["spec.listenersConfig.sslSecrets.pkiBackend"]);

        spec.listeners_config.internal_listeners[0].common.server_ssl_cert_secret = Some(Default::default());
        spec.listeners_config.internal_listeners[1].common.listener_type = SecurityProtocol::SaslSsl;
        let found = kafkacluster(&spec);
        assert!(blocks_start(&found), "{found:?}");
        let p: Vec<&str> = found.iter().map(|u| u.path.as_str()).collect();
        assert!(!p.contains(&"spec.listenersConfig.internalListeners[0].serverSSLCertSecret"), "acted on: {p:?}");
        assert!(p.contains(&"spec.listenersConfig.internalListeners[1].type"), "{p:?}");

        // SASL on a listener with neither role is rendered (SCRAM-SHA-512).
        let mut sasl = spec.listeners_config.internal_listeners[0].clone();
        sasl.common.name = "sasl".into();
        sasl.common.container_port = 29094;
        sasl.common.used_for_inner_broker_communication = false;
        sasl.used_for_controller_communication = false;
        spec.listeners_config.internal_listeners[1].common.listener_type = SecurityProtocol::Ssl;
        spec.listeners_config.internal_listeners.push(sasl);
        spec.listeners_config.internal_listeners[2].common.listener_type = SecurityProtocol::SaslPlaintext;
        assert!(!blocks_start(&kafkacluster(&spec)), "{:?}", kafkacluster(&spec));
        spec.listeners_config.internal_listeners[2].common.server_ssl_cert_secret = Some(Default::default());
        assert!(paths(&spec).contains(&"spec.listenersConfig.internalListeners[2].serverSSLCertSecret".to_string()));
    }

    #[test]
    fn monitoring_config_is_acted_on_except_for_cruise_control() {
        use crate::api::kafkacluster::MonitoringConfig;
        let cases: [(&str, MonitoringConfig, Vec<&str>); 4] = [
            ("empty", MonitoringConfig::default(), vec![]),
            (
                "the brokers' exporter",
                MonitoringConfig {
                    jmx_image: Some("jmx:1".into()),
                    path_to_jar: Some("/agent.jar".into()),
                    kafka_jmx_exporter_config: Some("rules: []".into()),
                    cc_jmx_exporter_config: None,
                },
                vec![],
            ),
            (
                "an empty Cruise Control config asks for nothing",
                MonitoringConfig { cc_jmx_exporter_config: Some(String::new()), ..Default::default() },
                vec![],
            ),
            (
                "Cruise Control's exporter",
                MonitoringConfig { cc_jmx_exporter_config: Some("rules: []".into()), ..Default::default() },
                vec!["spec.monitoringConfig.cCJMXExporterConfig"],
            ),
        ];
        for (what, m, want) in cases {
            let mut spec = valid_kraft_spec();
            spec.monitoring_config = Some(m);
            assert_eq!(paths(&spec), want, "{what}");
            assert!(!blocks_start(&kafkacluster(&spec)), "{what}");
        }
    }

    #[test]
    fn ignored_fields_are_named_with_their_path() {
        let mut spec = valid_kraft_spec();
        spec.monitoring_config = Some(crate::api::kafkacluster::MonitoringConfig {
            cc_jmx_exporter_config: Some("rules: []".into()),
            ..Default::default()
        });
        spec.brokers[1].broker_config = Some(BrokerConfig {
            network_config: Some(NetworkConfig::default()),
            log4j_config: Some("x".into()),
            ..Default::default()
        });
        spec.rolling_upgrade_config.concurrent_broker_restart_count_per_rack = Some(1);
        let found = kafkacluster(&spec);
        assert!(!blocks_start(&found));
        assert_eq!(
            found.iter().map(|u| u.path.as_str()).collect::<Vec<_>>(),
            vec![
                "spec.monitoringConfig.cCJMXExporterConfig",
                "spec.brokers[1].brokerConfig.log4jConfig",
                "spec.brokers[1].brokerConfig.networkConfig"
            ]
        );
        assert!(
            found[0]
                .warning()
                .starts_with("spec.monitoringConfig.cCJMXExporterConfig: accepted but not acted on yet: ")
        );
        assert!(message(&found).contains("spec.brokers[1].brokerConfig.networkConfig (no Cruise Control is deployed"));
    }

    #[test]
    fn cruise_control_fields_are_acted_on_once_cruise_control_is_asked_for() {
        use crate::api::kafkacluster::{CruiseControlConfig, MonitoringConfig, TopicConfig};
        let reporter_and_capacity = |cc: CruiseControlConfig| {
            let mut spec = valid_kraft_spec();
            spec.cruise_control_config = cc;
            spec.cluster_metrics_reporter_image = Some("reporter:1".into());
            spec.monitoring_config =
                Some(MonitoringConfig { cc_jmx_exporter_config: Some("rules: []".into()), ..Default::default() });
            spec.brokers[0].broker_config = Some(BrokerConfig {
                network_config: Some(NetworkConfig::default()),
                metrics_reporter_image: Some("reporter:2".into()),
                ..Default::default()
            });
            paths(&spec)
        };
        let topic = CruiseControlConfig {
            topic_config: Some(TopicConfig { partitions: 1, replication_factor: 2 }),
            ..Default::default()
        };
        let external = CruiseControlConfig { cruise_control_endpoint: Some("cc:8090".into()), ..Default::default() };
        let cases: [(&str, CruiseControlConfig, Vec<&str>); 3] = [
            (
                "no Cruise Control: none of them is used",
                CruiseControlConfig::default(),
                vec![
                    "spec.monitoringConfig.cCJMXExporterConfig",
                    "spec.clusterMetricsReporterImage",
                    "spec.brokers[0].brokerConfig.networkConfig",
                    "spec.brokers[0].brokerConfig.metricsReporterImage",
                ],
            ),
            ("deployed: all of them are used", topic, vec![]),
            (
                "external: the reporter runs, nothing is deployed",
                external,
                vec!["spec.monitoringConfig.cCJMXExporterConfig", "spec.brokers[0].brokerConfig.networkConfig"],
            ),
        ];
        for (what, cc, want) in cases {
            assert_eq!(reporter_and_capacity(cc), want, "{what}");
        }
    }

    #[test]
    fn contour_and_gateway_api_settings_are_acted_on_only_by_a_listener_they_serve() {
        use crate::api::kafkacluster::{ContourIngressConfig, GatewayIngressConfig, IngressConfigSet};
        for controller in ["contour", "gateway-api"] {
            let mut spec = valid_kraft_spec();
            spec.ingress_controller = Some(controller.into());
            let mut l = crate::rules::kafkacluster::fixtures::external("external", 9094, 19090);
            l.access_method = Some(AccessMethod::ClusterIp);
            l.service.hostname_override = Some("kafka.example.com".into());
            l.config = Some(IngressConfigSet::default());
            spec.listeners_config.external_listeners = Some(vec![l]);
            spec.contour_ingress_config = Some(ContourIngressConfig::default());
            spec.gateway_ingress_config = Some(GatewayIngressConfig::default());
            let found: Vec<String> = kafkacluster(&spec).into_iter().map(|u| u.path).collect();
            let other = if controller == "contour" { "spec.gatewayIngressConfig" } else { "spec.contourIngressConfig" };
            assert_eq!(found, [other], "{controller}: only the other controller's settings are not acted on");
            spec.listeners_config.external_listeners.as_mut().unwrap()[0].access_method = Some(AccessMethod::NodePort);
            let found: Vec<String> = kafkacluster(&spec).into_iter().map(|u| u.path).collect();
            assert!(found.contains(&"spec.listenersConfig.externalListeners[0].config".to_string()), "{found:?}");
            assert!(found.contains(&"spec.contourIngressConfig".to_string()), "{found:?}");
        }
    }

    #[test]
    fn certificate_fields_are_named_only_when_no_certificate_is_issued() {
        let mut user = KafkaUser::new("alice", Default::default());
        user.spec.dns_names = Some(vec!["a.example.com".into()]);
        user.spec.include_jks = Some(true);
        assert!(kafkauser(&user, false).is_empty(), "a certificate user gets them");
        let scram: Vec<String> = kafkauser(&user, true).into_iter().map(|u| u.path).collect();
        assert_eq!(scram, ["spec.includeJKS", "spec.dnsNames"]);
        user.spec.create_cert = Some(false);
        assert_eq!(kafkauser(&user, false)[0].path, "spec.includeJKS");
        assert!(kafkauser(&user, false)[0].note.contains("createCert is false"));
        user.spec.annotations = Some([("a".to_string(), "b".to_string())].into());
        assert_eq!(kafkauser(&user, false).last().unwrap().path, "spec.annotations");
    }
}

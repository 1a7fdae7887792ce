//! Per-broker `server.properties`: the user's read-only config (cluster, then broker) with the
//! keys the operator owns computed from the spec on top, sorted by key.

use std::collections::BTreeMap;

use super::{BrokerView, brokers, names};
use crate::api::kafkacluster::CommonListenerSpec;
use crate::rules::properties;
use crate::validated::ValidatedCluster;

/// Kafka's `super.users`: the operator adds the brokers and itself on TLS clusters, after
/// which the user's own entries follow.
const SUPER_USERS: &str = "super.users";

/// Kafka's `config.providers`: the operator's `dir` provider (listener passwords), then the
/// user's own.
const CONFIG_PROVIDERS: &str = "config.providers";

/// Suffix of every log dir under a mount path (Koperator's layout: `<mountPath>/kafka`).
pub const LOG_DIR_SUFFIX: &str = "/kafka";

/// `server.properties` of broker `id`, or `None` when the cluster has no such broker.
/// Expects a spec that passed the admission rules (unparseable user config lines are skipped).
pub fn server_properties(cluster: &ValidatedCluster, id: i32) -> Option<String> {
    let all = brokers(cluster);
    let me = all.iter().find(|b| b.broker.id == id)?;
    let mut props: BTreeMap<String, String> = BTreeMap::new();
    for text in [cluster.spec.read_only_config.as_deref(), me.broker.read_only_config.as_deref()].into_iter().flatten()
    {
        props.extend(properties::parse(text).unwrap_or_default());
    }
    let user_super_users = props.remove(SUPER_USERS);
    let user_providers = props.remove(CONFIG_PROVIDERS);
    let reporting = super::cruise_control::reports(cluster, me);
    let user_reporters = if reporting { props.remove(super::cruise_control::METRIC_REPORTERS) } else { None };
    for (k, v) in operator_properties(cluster, me, &all) {
        props.insert(k, v);
    }
    if let Some(theirs) = user_providers {
        // The user's config providers stay beside the operator's `dir` (their `${...}` keep
        // resolving).
        let merged = match props.remove(CONFIG_PROVIDERS) {
            Some(ours) => {
                let extra: Vec<&str> = theirs
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty() && !ours.split(',').any(|o| o == *p))
                    .collect();
                std::iter::once(ours.as_str()).chain(extra).collect::<Vec<_>>().join(",")
            }
            None => theirs,
        };
        props.insert(CONFIG_PROVIDERS.to_string(), merged);
    }
    if let Some(theirs) = user_reporters {
        // The user's metric reporters stay beside Cruise Control's.
        let key = super::cruise_control::METRIC_REPORTERS;
        let ours = props.remove(key).unwrap_or_default();
        let extra: Vec<&str> = theirs.split(',').map(str::trim).filter(|r| !r.is_empty() && *r != ours).collect();
        props.insert(key.to_string(), std::iter::once(ours.as_str()).chain(extra).collect::<Vec<_>>().join(","));
    }
    if let Some(theirs) = user_super_users {
        // The user's super users stay, after the brokers and the operator.
        let merged = match props.remove(SUPER_USERS) {
            Some(ours) => format!("{ours};{theirs}"),
            None => theirs,
        };
        props.insert(SUPER_USERS.to_string(), merged);
    }
    let mut out = String::new();
    for (k, v) in props {
        out.push_str(&escape_key(&k));
        out.push('=');
        out.push_str(&escape_value(&v));
        out.push('\n');
    }
    Some(out)
}

/// A key as `Properties.load` reads it back unchanged: `\`, the separators `=` `:`, whitespace
/// and the comment starters `#` `!` escaped with a backslash, control characters and everything
/// outside printable ASCII as `\t`/`\n`/`\r`/`\f` or `\uXXXX` (Kafka reads the file as ISO 8859-1,
/// so the output is plain ASCII).
pub fn escape_key(key: &str) -> String {
    escape(key, true)
}

/// A value as `Properties.load` reads it back unchanged after `key=`: like [`escape_key`], but
/// only a leading space is escaped and `=`, `:`, `#`, `!` stay as they are (they mean nothing
/// after the separator), so rendered values read naturally (`INTERNAL://:29092`).
pub fn escape_value(value: &str) -> String {
    escape(value, false)
}

fn escape(s: &str, key: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x0c' => out.push_str("\\f"),
            ' ' if key || i == 0 => out.push_str("\\ "),
            '=' | ':' | '#' | '!' if key => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04X}"));
                }
            }
        }
    }
    out
}

/// Kafka's listener name for a listener (`internal` → `INTERNAL`).
fn listener_name(l: &CommonListenerSpec) -> String {
    l.name.to_uppercase().replace('-', "_")
}

fn operator_properties(
    cluster: &ValidatedCluster,
    me: &BrokerView<'_>,
    all: &[BrokerView<'_>],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        static_properties(cluster, me, all).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let tls = super::tls::mounts(cluster, me.broker.id);
    for (l, _) in &tls {
        out.extend(super::tls::listener_properties(l, &listener_name(l)));
    }
    out.extend(super::tls::config_provider_properties(cluster));
    if !tls.is_empty() {
        out.push(("ssl.principal.mapping.rules".into(), super::tls::PRINCIPAL_MAPPING_RULES.into()));
    }
    for l in super::sasl::listeners(cluster) {
        out.extend(super::sasl::listener_properties(l, &listener_name(l)));
    }
    out.extend(super::cruise_control::broker_properties(cluster, me));
    let mut super_users = super::tls::super_users(cluster);
    if super::sasl::admin_scram(cluster) {
        super_users.push(super::sasl::admin_principal());
    }
    if !super_users.is_empty() {
        out.push((SUPER_USERS.into(), super_users.join(";")));
    }
    out
}

fn static_properties(
    cluster: &ValidatedCluster,
    me: &BrokerView<'_>,
    all: &[BrokerView<'_>],
) -> Vec<(&'static str, String)> {
    let spec = &cluster.spec;
    let kraft = spec.kraft;
    let id = me.broker.id;
    let lc = &spec.listeners_config;
    let controller = lc.internal_listeners.iter().find(|l| l.used_for_controller_communication);
    let controller_name = controller.map(|l| listener_name(&l.common));
    let inner = lc.internal_listeners.iter().find(|l| l.common.used_for_inner_broker_communication);
    let mut out: Vec<(&'static str, String)> = Vec::new();

    if kraft {
        out.push(("node.id", id.to_string()));
        out.push(("process.roles", me.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",")));
        if let Some(ctrl) = controller {
            let mut voters: Vec<(i32, String)> = all
                .iter()
                .filter(|b| b.is_controller(true))
                .map(|b| {
                    (
                        b.broker.id,
                        format!(
                            "{}@{}:{}",
                            b.broker.id,
                            names::broker_fqdn(cluster, b.broker.id),
                            ctrl.common.container_port
                        ),
                    )
                })
                .collect();
            voters.sort();
            out.push(("controller.quorum.voters", voters.into_iter().map(|(_, v)| v).collect::<Vec<_>>().join(",")));
        }
        if let Some(name) = &controller_name {
            out.push(("controller.listener.names", name.clone()));
        }
    } else {
        out.push(("broker.id", id.to_string()));
        let path = spec
            .zk_path
            .as_deref()
            .filter(|p| !p.is_empty() && *p != "/")
            .map(|p| if p.starts_with('/') { p.to_string() } else { format!("/{p}") });
        out.push((
            "zookeeper.connect",
            format!("{}{}", spec.zk_addresses.clone().unwrap_or_default().join(","), path.unwrap_or_default()),
        ));
        if let Some(name) = &controller_name {
            out.push(("control.plane.listener.name", name.clone()));
        }
    }

    // Listeners this node binds: controller-only nodes only the controller listener; broker-only
    // nodes everything but it.
    let is_ctrl_listener = |l: &CommonListenerSpec| kraft && Some(listener_name(l)) == controller_name;
    let binds = |l: &CommonListenerSpec| {
        if !kraft {
            true
        } else if !me.is_broker(true) {
            is_ctrl_listener(l)
        } else if !me.is_controller(true) {
            !is_ctrl_listener(l)
        } else {
            true
        }
    };
    let listeners: Vec<String> = spec
        .all_listeners()
        .filter(|l| binds(l))
        .map(|l| format!("{}://:{}", listener_name(l), l.container_port))
        .collect();
    out.push(("listeners", listeners.join(",")));
    out.push((
        "listener.security.protocol.map",
        spec.all_listeners()
            .map(|l| format!("{}:{}", listener_name(l), l.listener_type.kafka_name()))
            .collect::<Vec<_>>()
            .join(","),
    ));

    if me.is_broker(kraft) {
        let fqdn = names::broker_fqdn(cluster, id);
        let mut advertised: Vec<String> = lc
            .internal_listeners
            .iter()
            .filter(|l| !is_ctrl_listener(&l.common))
            .map(|l| format!("{}://{fqdn}:{}", listener_name(&l.common), l.common.container_port))
            .collect();
        // External listeners are advertised once their address is known; with hostnameOverride
        // it is known from the spec (behind Envoy: the name of the ingress configuration
        // serving the broker, or in TLS mode its brokerHostnameTemplate name; behind Contour or
        // Gateway API its brokerFQDNTemplate name; NodePort: a suffix).
        for l in lc.external() {
            let address = if super::envoy::uses_envoy(spec, l) {
                super::envoy::advertised(cluster, l, id)
            } else if super::contour::uses_contour(spec, l) {
                super::contour::advertised(cluster, l, id)
            } else if super::gateway::uses_gateway(spec, l) {
                super::gateway::advertised(cluster, l, id)
            } else {
                super::tls::external_host(cluster, l, id).map(|host| (host, l.broker_port(id)))
            };
            let Some((host, port)) = address else { continue };
            advertised.push(format!("{}://{host}:{port}", listener_name(&l.common)));
        }
        out.push(("advertised.listeners", advertised.join(",")));
    }
    if let Some(inner) = inner {
        out.push(("inter.broker.listener.name", listener_name(&inner.common)));
    }
    if !me.mount_paths.is_empty() {
        let dirs: Vec<String> =
            me.mount_paths.iter().map(|p| format!("{}{LOG_DIR_SUFFIX}", p.trim_end_matches('/'))).collect();
        out.push(("log.dirs", dirs.join(",")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::kafkacluster::fixtures::{valid_kraft_spec, valid_zk_spec};

    fn cluster(spec: crate::api::KafkaClusterSpec) -> ValidatedCluster {
        let mut c = crate::api::KafkaCluster::new("kafka", spec);
        c.metadata.namespace = Some("team-a".into());
        crate::validated::must(&c)
    }

    fn get(props: &str, key: &str) -> Option<String> {
        props.lines().find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
    }

    #[test]
    fn combined_kraft_node() {
        let c = cluster(valid_kraft_spec());
        let p = server_properties(&c, 1).unwrap();
        assert_eq!(get(&p, "node.id").as_deref(), Some("1"));
        assert_eq!(get(&p, "process.roles").as_deref(), Some("broker,controller"));
        assert_eq!(
            get(&p, "controller.quorum.voters").as_deref(),
            Some(
                "0@kafka-0.team-a.svc.cluster.local:29093,1@kafka-1.team-a.svc.cluster.local:29093,2@kafka-2.team-a.svc.cluster.local:29093"
            )
        );
        assert_eq!(get(&p, "listeners").as_deref(), Some("INTERNAL://:29092,CONTROLLER://:29093"));
        assert_eq!(
            get(&p, "advertised.listeners").as_deref(),
            Some("INTERNAL://kafka-1.team-a.svc.cluster.local:29092")
        );
        assert_eq!(get(&p, "log.dirs").as_deref(), Some("/kafka-logs/kafka"));
        assert_eq!(get(&p, "broker.id"), None);
        assert!(server_properties(&c, 99).is_none());
    }

    #[test]
    fn the_users_config_providers_stay_beside_the_operators() {
        use crate::api::kafkacluster::SecurityProtocol;
        use k8s_openapi::api::core::v1::LocalObjectReference;
        let mut spec = valid_kraft_spec();
        spec.read_only_config = Some("config.providers=file,dir\nconfig.providers.file.class=X\n".into());
        assert_eq!(
            get(&server_properties(&cluster(spec.clone()), 0).unwrap(), "config.providers").as_deref(),
            Some("file,dir")
        );
        let l = &mut spec.listeners_config.internal_listeners[0].common;
        l.listener_type = SecurityProtocol::Ssl;
        l.server_ssl_cert_secret = Some(LocalObjectReference { name: "jks".into() });
        spec.client_ssl_cert_secret = Some(LocalObjectReference { name: "client".into() });
        let p = server_properties(&cluster(spec), 0).unwrap();
        assert_eq!(get(&p, "config.providers").as_deref(), Some("dir,file"), "{p}");
        assert_eq!(get(&p, "config.providers.file.class").as_deref(), Some("X"));
    }

    #[test]
    fn zookeeper_broker() {
        let mut spec = valid_zk_spec();
        spec.zk_path = Some("/kafka".into());
        spec.read_only_config = Some("auto.create.topics.enable=false\nnum.partitions=3".into());
        spec.brokers[0].read_only_config = Some("num.partitions=6".into());
        let p = server_properties(&cluster(spec), 0).unwrap();
        assert_eq!(get(&p, "broker.id").as_deref(), Some("0"));
        assert_eq!(get(&p, "zookeeper.connect").as_deref(), Some("zookeeper-client.zookeeper:2181/kafka"));
        assert_eq!(get(&p, "num.partitions").as_deref(), Some("6"), "broker read-only config wins over the cluster's");
        assert_eq!(get(&p, "process.roles"), None);
        let keys: Vec<&str> = p.lines().map(|l| l.split('=').next().unwrap()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "sorted by key");
    }
}

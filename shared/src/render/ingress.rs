//! Which ingress configurations of an external listener are in use and which brokers each
//! serves: the selection Envoy, Contour and Gateway API share (Koperator's `GetIngressConfigs`,
//! `IsIngressConfigInUse` and `ShouldIncludeBroker`).

use serde_json::Value;

use super::brokers;
use crate::api::kafkacluster::{ExternalListenerConfig, IngressConfig};
use crate::validated::ValidatedCluster;

/// One in-use ingress configuration of an external listener.
#[derive(Clone, Debug, PartialEq)]
pub struct Selected<'a> {
    /// The external listener.
    pub listener: &'a ExternalListenerConfig,
    /// The ingress configuration's name; `None` when the listener has none (Koperator's
    /// `globalConfig`).
    pub config: Option<&'a str>,
    /// The ingress configuration itself (`None` with `config`).
    pub ingress: Option<&'a IngressConfig>,
    /// Ids of the brokers it serves (broker nodes only; KRaft controllers take no clients).
    pub brokers: Vec<i32>,
}

/// The in-use ingress configurations of the external listeners `wanted` accepts, in spec order
/// (configurations by name). A broker is served by the configurations its
/// `brokerIngressMapping` names, else by the listener's `defaultIngressConfig`; a configuration
/// no broker uses is left out.
pub fn select<'a>(c: &'a ValidatedCluster, wanted: impl Fn(&ExternalListenerConfig) -> bool) -> Vec<Selected<'a>> {
    let spec = &c.spec;
    let nodes: Vec<(i32, Vec<&str>)> = brokers(c)
        .into_iter()
        .filter(|b| b.is_broker(spec.kraft))
        .map(|b| (b.broker.id, b.broker.effective_ingress_mapping(spec)))
        .collect();
    let mut out = Vec::new();
    for l in spec.listeners_config.external().iter().filter(|l| wanted(l)) {
        let configs = l.config.as_ref().and_then(|s| s.ingress_config.as_ref()).filter(|m| !m.is_empty());
        let Some(configs) = configs else {
            let ids = nodes.iter().map(|(id, _)| *id).collect();
            out.push(Selected { listener: l, config: None, ingress: None, brokers: ids });
            continue;
        };
        let default = l.config.as_ref().map(|s| s.default_ingress_config.as_str()).unwrap_or_default();
        for (name, ic) in configs {
            let ids: Vec<i32> = nodes
                .iter()
                .filter(|(_, mapping)| mapping.contains(&name.as_str()) || (mapping.is_empty() && name == default))
                .map(|(id, _)| *id)
                .collect();
            if !ids.is_empty() {
                out.push(Selected { listener: l, config: Some(name), ingress: Some(ic), brokers: ids });
            }
        }
    }
    out
}

/// `base` with every field `top` sets (not null) put over it, as Koperator merges an ingress
/// configuration over the global settings.
pub fn overlay<T: serde::Serialize + serde::de::DeserializeOwned + Clone>(base: &T, top: Option<&T>) -> T {
    let Some(top) = top else { return base.clone() };
    let (Ok(Value::Object(mut merged)), Ok(Value::Object(over))) =
        (serde_json::to_value(base), serde_json::to_value(top))
    else {
        return base.clone();
    };
    merged.extend(over.into_iter().filter(|(_, v)| !v.is_null() && *v != Value::String(String::new())));
    serde_json::from_value(Value::Object(merged)).unwrap_or_else(|_| base.clone())
}

/// `<listener>` or `<listener>-<config>` (Koperator's `eListenerName` of Envoy, and the middle
/// of the per-configuration object names).
pub fn label_name(listener: &str, config: Option<&str>) -> String {
    let listener = listener.replace('_', "-");
    match config {
        Some(config) => format!("{listener}-{config}"),
        None => listener,
    }
}

/// `template` with `%id` replaced by `id`.
pub fn host(template: &str, id: i32) -> String {
    template.replace("%id", &id.to_string())
}

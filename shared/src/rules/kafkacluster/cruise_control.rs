//! Cruise Control settings the operator renders: `cruiseControlConfig.config` parses as
//! properties, `capacityConfig` is the JSON Cruise Control reads (`{"brokerCapacities": [...]}`).

use super::spec_path;
use crate::api::kafkacluster::KafkaClusterSpec;
use crate::rules::{FieldError, properties};

/// Every error of `spec.cruiseControlConfig`.
pub fn check(spec: &KafkaClusterSpec) -> Vec<FieldError> {
    let path = spec_path().child("cruiseControlConfig");
    let cc = &spec.cruise_control_config;
    let mut errs = Vec::new();
    if let Some(text) = cc.config.as_deref()
        && let Err(e) = properties::parse(text)
    {
        errs.push(FieldError::invalid(
            &path.child("config"),
            text,
            format!("not a properties text ({}); write one key=value per line of cruisecontrol.properties", e.message),
        ));
    }
    if let Some(text) = cc.capacity_config.as_deref().filter(|t| !t.is_empty())
        && let Some(why) = crate::render::cruise_control::capacity_config_error(text)
    {
        errs.push(FieldError::invalid(
            &path.child("capacityConfig"),
            text,
            format!(
                "{why}; write Cruise Control's capacity.json: {{\"brokerCapacities\": [{{\"brokerId\": \"-1\", \"capacity\": {{...}}, \"doc\": \"...\"}}]}}"
            ),
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::kafkacluster::fixtures::valid_kraft_spec;

    #[test]
    fn config_and_capacities_must_be_readable() {
        type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Vec<&'a str>);
        let cases: [Case; 5] = [
            ("unset", None, None, vec![]),
            ("valid", Some("webserver.http.port=8090"), Some(r#"{"brokerCapacities": []}"#), vec![]),
            ("a broken line", Some("a=b\n\\u12"), None, vec!["spec.cruiseControlConfig.config"]),
            ("not JSON", None, Some("{brokerCapacities"), vec!["spec.cruiseControlConfig.capacityConfig"]),
            ("not a list", None, Some(r#"{"brokerCapacities": {}}"#), vec!["spec.cruiseControlConfig.capacityConfig"]),
        ];
        for (what, config, capacity, want) in cases {
            let mut spec = valid_kraft_spec();
            spec.cruise_control_config.config = config.map(Into::into);
            spec.cruise_control_config.capacity_config = capacity.map(Into::into);
            let got: Vec<String> = check(&spec).iter().map(|e| e.path.clone()).collect();
            assert_eq!(got, want, "{what}");
        }
    }
}

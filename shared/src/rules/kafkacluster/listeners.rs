//! Listener rules: unique container ports (Koperator), names and roles of listeners.

use std::collections::HashMap;

use super::{external_path, internal_path, listeners_path};
use crate::api::KafkaClusterSpec;
use crate::rules::{FieldError, names};

/// Rule 1 (Koperator): container ports are unique across internal then external listeners;
/// the second and later uses are reported as Duplicate, as a Service would.
pub fn unique_container_ports(spec: &KafkaClusterSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen: HashMap<i32, usize> = HashMap::new();
    for (i, l) in spec.listeners_config.internal_listeners.iter().enumerate() {
        let n = seen.entry(l.common.container_port).or_default();
        *n += 1;
        if *n > 1 {
            errs.push(FieldError::duplicate(&internal_path(i).child("containerPort"), l.common.container_port, ""));
        }
    }
    for (i, l) in spec.listeners_config.external().iter().enumerate() {
        let n = seen.entry(l.common.container_port).or_default();
        *n += 1;
        if *n > 1 {
            errs.push(FieldError::duplicate(&external_path(i).child("containerPort"), l.common.container_port, ""));
        }
    }
    errs
}

/// Rule 7: listener names are unique and valid as Kafka listener and Kubernetes port names;
/// exactly one internal listener carries inter-broker traffic; at most one listener is the
/// operator's admin listener.
pub fn names_and_roles(spec: &KafkaClusterSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let lc = &spec.listeners_config;
    let mut seen_names: Vec<&str> = Vec::new();
    let mut seen_ports: Vec<String> = Vec::new();
    let mut admin_seen = false;
    let paths = (0..lc.internal_listeners.len()).map(internal_path).chain((0..lc.external().len()).map(external_path));
    for (common, path) in spec.all_listeners().zip(paths) {
        let name = common.name.as_str();
        let duplicate_name = seen_names.contains(&name);
        if duplicate_name {
            errs.push(FieldError::duplicate(
                &path.child("name"),
                name,
                "listener names must be unique across internal and external listeners; rename one",
            ));
        } else {
            seen_names.push(name);
        }
        let port_name = if name.starts_with("tcp-") { name.to_string() } else { format!("tcp-{name}") };
        if !duplicate_name && seen_ports.contains(&port_name) {
            errs.push(FieldError::duplicate(
                &path.child("name"),
                name,
                format!(
                    "another listener's port is also named {port_name:?} (a name and the same name with tcp- give one \
                     port name); rename one"
                ),
            ));
        }
        seen_ports.push(port_name.clone());
        if !names::is_port_name(&port_name) {
            errs.push(FieldError::invalid(
                &path.child("name"),
                name,
                format!(
                    "the listener's port is named {port_name:?}, which Kubernetes rejects: a port name has at most 15 \
                     lowercase letters, digits and single '-' (so a listener name has at most 11), contains a letter, \
                     and does not start or end with '-'"
                ),
            ));
        }
        if common.used_for_kafka_admin_communication == Some(true) {
            if admin_seen {
                errs.push(FieldError::duplicate(
                    &path.child("usedForKafkaAdminCommunication"),
                    true,
                    "only one listener may be used for the operator's admin traffic; unset it on all but one",
                ));
            }
            admin_seen = true;
        }
    }

    let inner: Vec<usize> = lc
        .internal_listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| l.common.used_for_inner_broker_communication)
        .map(|(i, _)| i)
        .collect();
    if lc.internal_listeners.is_empty() {
        errs.push(FieldError::required(
            &listeners_path().child("internalListeners"),
            "add at least one internal listener, with usedForInnerBrokerCommunication: true on one of them",
        ));
    } else if inner.is_empty() {
        errs.push(FieldError::required(
            &listeners_path().child("internalListeners"),
            "set usedForInnerBrokerCommunication: true on exactly one internal listener; brokers replicate over it",
        ));
    }
    for &i in inner.iter().skip(1) {
        errs.push(FieldError::duplicate(
            &internal_path(i).child("usedForInnerBrokerCommunication"),
            true,
            "exactly one internal listener may carry inter-broker traffic; unset it on all but one",
        ));
    }
    for (i, l) in lc.external().iter().enumerate() {
        if l.common.used_for_inner_broker_communication {
            errs.push(FieldError::invalid(
                &external_path(i).child("usedForInnerBrokerCommunication"),
                true,
                "inter-broker traffic runs on an internal listener; unset this on the external listener",
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::ErrorType;
    use crate::rules::kafkacluster::fixtures::*;

    // Koperator pkg/webhooks/kafkacluster_validator_test.go: TestCheckUniqueListenerContainerPort
    #[test]
    fn koperator_unique_values() {
        let spec = listeners_spec(
            &[("test-internal1", 29092), ("test-internal2", 29093)],
            &[("test-external1", 9094), ("test-external2", 9095)],
        );
        assert_eq!(unique_container_ports(&spec), vec![]);
    }

    #[test]
    fn koperator_non_unique_internal_only() {
        let spec = listeners_spec(&[("test-internal1", 29092), ("test-internal2", 29092)], &[]);
        assert_eq!(
            unique_container_ports(&spec),
            vec![FieldError::duplicate(&internal_path(1).child("containerPort"), 29092, "")]
        );
    }

    #[test]
    fn koperator_non_unique_external_only() {
        let spec = listeners_spec(&[], &[("test-external1", 9094), ("test-external2", 9094)]);
        assert_eq!(
            unique_container_ports(&spec),
            vec![FieldError::duplicate(&external_path(1).child("containerPort"), 9094, "")]
        );
    }

    #[test]
    fn koperator_non_unique_across_types_single_error() {
        let spec = listeners_spec(
            &[("test-internal1", 29092), ("test-internal2", 29093)],
            &[("test-external1", 9094), ("test-external2", 29092)],
        );
        assert_eq!(
            unique_container_ports(&spec),
            vec![FieldError::duplicate(&external_path(1).child("containerPort"), 29092, "")]
        );
    }

    #[test]
    fn koperator_non_unique_across_types_two_errors() {
        let spec = listeners_spec(
            &[("test-internal1", 29092), ("test-internal2", 29093)],
            &[("test-external1", 29092), ("test-external2", 29093)],
        );
        assert_eq!(
            unique_container_ports(&spec),
            vec![
                FieldError::duplicate(&external_path(0).child("containerPort"), 29092, ""),
                FieldError::duplicate(&external_path(1).child("containerPort"), 29093, ""),
            ]
        );
    }

    #[test]
    fn valid_listeners_pass() {
        assert_eq!(names_and_roles(&valid_kraft_spec()), vec![]);
    }

    #[test]
    fn duplicate_listener_name_across_kinds_is_rejected() {
        let mut spec = valid_kraft_spec();
        spec.listeners_config.external_listeners = Some(vec![external("internal", 9094, 19090)]);
        let errs = names_and_roles(&spec);
        assert_eq!(
            paths_and_types(&errs),
            vec![("spec.listenersConfig.externalListeners[0].name".into(), ErrorType::Duplicate)]
        );
    }

    #[test]
    fn listener_names_giving_one_port_name_are_duplicates() {
        let mut spec = valid_kraft_spec();
        spec.listeners_config.external_listeners = Some(vec![external("tcp-internal", 9094, 19090)]);
        let errs = names_and_roles(&spec);
        assert_eq!(
            paths_and_types(&errs),
            vec![("spec.listenersConfig.externalListeners[0].name".into(), ErrorType::Duplicate)]
        );
        assert!(errs[0].message.contains("\"tcp-internal\""), "{}", errs[0].message);
    }

    #[test]
    fn listener_name_with_a_newline_is_rejected() {
        let mut spec = valid_kraft_spec();
        spec.listeners_config.internal_listeners[0].common.name = "in\nlog.dirs=/x".into();
        let errs = names_and_roles(&spec);
        assert_eq!(
            paths_and_types(&errs),
            vec![("spec.listenersConfig.internalListeners[0].name".into(), ErrorType::Invalid)]
        );
    }

    #[test]
    fn listener_name_too_long_for_a_port_name_is_rejected() {
        let mut spec = valid_kraft_spec();
        spec.listeners_config.internal_listeners[0].common.name = "replication-internal".into();
        let errs = names_and_roles(&spec);
        assert_eq!(
            paths_and_types(&errs),
            vec![("spec.listenersConfig.internalListeners[0].name".into(), ErrorType::Invalid)]
        );
        assert!(errs[0].message.contains("at most 11"), "{}", errs[0].message);
    }

    #[test]
    fn no_inner_broker_listener_is_required() {
        let mut spec = valid_kraft_spec();
        for l in &mut spec.listeners_config.internal_listeners {
            l.common.used_for_inner_broker_communication = false;
        }
        let errs = names_and_roles(&spec);
        assert_eq!(
            paths_and_types(&errs),
            vec![("spec.listenersConfig.internalListeners".into(), ErrorType::Required)]
        );
    }

    #[test]
    fn two_inner_broker_listeners_are_duplicate() {
        let mut spec = valid_kraft_spec();
        for l in &mut spec.listeners_config.internal_listeners {
            l.common.used_for_inner_broker_communication = true;
        }
        let errs = names_and_roles(&spec);
        assert_eq!(
            paths_and_types(&errs),
            vec![(
                "spec.listenersConfig.internalListeners[1].usedForInnerBrokerCommunication".into(),
                ErrorType::Duplicate
            )]
        );
    }

    #[test]
    fn external_inner_broker_listener_is_invalid() {
        let mut spec = valid_kraft_spec();
        let mut ext = external("external", 9094, 19090);
        ext.common.used_for_inner_broker_communication = true;
        spec.listeners_config.external_listeners = Some(vec![ext]);
        let errs = names_and_roles(&spec);
        assert_eq!(
            paths_and_types(&errs),
            vec![(
                "spec.listenersConfig.externalListeners[0].usedForInnerBrokerCommunication".into(),
                ErrorType::Invalid
            )]
        );
    }

    #[test]
    fn two_admin_listeners_are_duplicate() {
        let mut spec = valid_kraft_spec();
        for l in &mut spec.listeners_config.internal_listeners {
            l.common.used_for_kafka_admin_communication = Some(true);
        }
        let errs = names_and_roles(&spec);
        assert_eq!(
            paths_and_types(&errs),
            vec![(
                "spec.listenersConfig.internalListeners[1].usedForKafkaAdminCommunication".into(),
                ErrorType::Duplicate
            )]
        );
    }

    #[test]
    fn no_internal_listener_is_required() {
        let mut spec = valid_kraft_spec();
        spec.listeners_config.internal_listeners.clear();
        let errs = names_and_roles(&spec);
        assert_eq!(
            paths_and_types(&errs),
            vec![("spec.listenersConfig.internalListeners".into(), ErrorType::Required)]
        );
    }
}

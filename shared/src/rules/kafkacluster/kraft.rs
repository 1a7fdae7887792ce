//! KRaft and ZooKeeper mode rules (rule 6).

use super::{broker_path, group_path, internal_path, listeners_path, spec_path};
use crate::api::kafkacluster::{BrokerConfig, KafkaClusterSpec, ProcessRole};
use crate::rules::{FieldError, Path, Verdict};

/// In KRaft mode: every node has non-empty, duplicate-free roles; there is at least one
/// controller and one broker; exactly one internal listener carries controller traffic and it
/// is not the inter-broker listener; an even number of controllers draws a warning.
/// In ZooKeeper mode: `zkAddresses` is set and `processRoles` is not.
pub fn check(spec: &KafkaClusterSpec, v: &mut Verdict) {
    if spec.kraft {
        kraft(spec, v);
    } else {
        zookeeper(spec, v);
    }
}

fn declared_roles(spec: &KafkaClusterSpec) -> impl Iterator<Item = (Path, &BrokerConfig)> {
    let groups = spec.broker_config_groups.iter().flatten().map(|(name, g)| (group_path(name), g));
    let brokers = spec
        .brokers
        .iter()
        .enumerate()
        .filter_map(|(i, b)| b.broker_config.as_ref().map(|c| (broker_path(i).child("brokerConfig"), c)));
    groups.chain(brokers)
}

fn kraft(spec: &KafkaClusterSpec, v: &mut Verdict) {
    for (path, config) in declared_roles(spec) {
        let Some(roles) = &config.roles else { continue };
        for (j, role) in roles.iter().enumerate() {
            if roles[..j].contains(role) {
                v.errors.push(FieldError::duplicate(
                    &path.child("processRoles").index(j),
                    role.as_str(),
                    "list each role once",
                ));
            }
        }
    }
    let mut controllers = 0usize;
    let mut brokers = 0usize;
    for (i, b) in spec.brokers.iter().enumerate() {
        let roles = b.effective_roles(spec);
        if roles.is_empty() {
            v.errors.push(FieldError::required(
                &broker_path(i).child("brokerConfig").child("processRoles"),
                format!(
                    "in KRaft mode node {} needs processRoles ([broker], [controller] or [broker, controller]), set on the \
                     broker or its brokerConfigGroup",
                    b.id
                ),
            ));
        }
        controllers += usize::from(roles.contains(&ProcessRole::Controller));
        brokers += usize::from(roles.contains(&ProcessRole::Broker));
    }
    if !spec.brokers.is_empty() && controllers == 0 {
        v.errors.push(FieldError::required(
            &spec_path().child("brokers"),
            "a KRaft cluster needs at least one node with the controller role (three for a fault-tolerant quorum)",
        ));
    }
    if !spec.brokers.is_empty() && brokers == 0 {
        v.errors.push(FieldError::required(
            &spec_path().child("brokers"),
            "a KRaft cluster needs at least one node with the broker role to serve clients",
        ));
    }
    if controllers > 0 && controllers.is_multiple_of(2) {
        v.warnings.push(format!(
            "spec.brokers: {controllers} controllers tolerate no more failures than {}; use an odd number of controllers",
            controllers - 1
        ));
    }

    let lc = &spec.listeners_config;
    let ctrl: Vec<usize> = lc
        .internal_listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| l.used_for_controller_communication)
        .map(|(i, _)| i)
        .collect();
    if ctrl.is_empty() {
        v.errors.push(FieldError::required(
            &listeners_path().child("internalListeners"),
            "in KRaft mode set usedForControllerCommunication: true on exactly one internal listener (not the inter-broker one)",
        ));
    }
    for &i in ctrl.iter().skip(1) {
        v.errors.push(FieldError::duplicate(
            &internal_path(i).child("usedForControllerCommunication"),
            true,
            "exactly one internal listener may carry controller traffic; unset it on all but one",
        ));
    }
    for &i in &ctrl {
        if lc.internal_listeners[i].common.used_for_inner_broker_communication {
            v.errors.push(FieldError::invalid(
                &internal_path(i).child("usedForControllerCommunication"),
                true,
                "Kafka does not allow the controller listener to be the inter-broker listener; add a separate internal listener for controllers",
            ));
        }
    }
}

fn zookeeper(spec: &KafkaClusterSpec, v: &mut Verdict) {
    if spec.zk_addresses.as_ref().is_none_or(|a| a.iter().all(|s| s.trim().is_empty())) {
        v.errors.push(FieldError::required(
            &spec_path().child("zkAddresses"),
            "ZooKeeper mode (kRaft: false) needs the ZooKeeper connection strings; set zkAddresses, or set kRaft: true",
        ));
    }
    for (path, config) in declared_roles(spec) {
        if config.roles.as_ref().is_some_and(|r| !r.is_empty()) {
            v.errors.push(FieldError::forbidden(
                &path.child("processRoles"),
                "processRoles only applies in KRaft mode; remove it or set spec.kRaft: true",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kafkacluster::Broker;
    use crate::rules::ErrorType;
    use crate::rules::kafkacluster::fixtures::*;

    fn run(spec: &KafkaClusterSpec) -> Verdict {
        let mut v = Verdict::default();
        check(spec, &mut v);
        v
    }

    #[test]
    fn valid_kraft_and_zk_pass() {
        assert_eq!(run(&valid_kraft_spec()), Verdict::default());
        assert_eq!(run(&valid_zk_spec()), Verdict::default());
    }

    #[test]
    fn missing_roles_and_no_controller() {
        let mut spec = valid_kraft_spec();
        spec.broker_config_groups.as_mut().unwrap().get_mut("default").unwrap().roles = Some(vec![ProcessRole::Broker]);
        spec.brokers.push(Broker { id: 3, broker_config: Some(storage_only()), ..Default::default() });
        let v = run(&spec);
        assert_eq!(
            paths_and_types(&v.errors),
            vec![
                ("spec.brokers[3].brokerConfig.processRoles".into(), ErrorType::Required),
                ("spec.brokers".into(), ErrorType::Required),
            ]
        );
        assert!(v.errors[1].message.contains("controller role"));
    }

    fn storage_only() -> BrokerConfig {
        BrokerConfig { storage_configs: Some(vec![pvc_storage("/kafka-logs", "1Gi")]), ..Default::default() }
    }

    #[test]
    fn controllers_only_need_a_broker() {
        let mut spec = valid_kraft_spec();
        spec.broker_config_groups.as_mut().unwrap().get_mut("default").unwrap().roles =
            Some(vec![ProcessRole::Controller]);
        let v = run(&spec);
        assert_eq!(paths_and_types(&v.errors), vec![("spec.brokers".into(), ErrorType::Required)]);
        assert!(v.errors[0].message.contains("broker role"));
    }

    #[test]
    fn duplicate_roles_are_rejected() {
        let mut spec = valid_kraft_spec();
        spec.brokers[1].broker_config =
            Some(BrokerConfig { roles: Some(vec![ProcessRole::Broker, ProcessRole::Broker]), ..Default::default() });
        assert_eq!(
            paths_and_types(&run(&spec).errors),
            vec![("spec.brokers[1].brokerConfig.processRoles[1]".into(), ErrorType::Duplicate)]
        );
    }

    #[test]
    fn even_controller_count_warns() {
        let mut spec = valid_kraft_spec();
        spec.brokers.push(Broker { id: 3, broker_config_group: Some("default".into()), ..Default::default() });
        let v = run(&spec);
        assert!(v.errors.is_empty());
        assert_eq!(v.warnings.len(), 1);
        assert!(v.warnings[0].contains("4 controllers"));
    }

    #[test]
    fn controller_listener_rules() {
        let mut spec = valid_kraft_spec();
        spec.listeners_config.internal_listeners[1].used_for_controller_communication = false;
        assert_eq!(
            paths_and_types(&run(&spec).errors),
            vec![("spec.listenersConfig.internalListeners".into(), ErrorType::Required)]
        );

        let mut spec = valid_kraft_spec();
        spec.listeners_config.internal_listeners[0].used_for_controller_communication = true;
        assert_eq!(
            paths_and_types(&run(&spec).errors),
            vec![
                (
                    "spec.listenersConfig.internalListeners[1].usedForControllerCommunication".into(),
                    ErrorType::Duplicate
                ),
                ("spec.listenersConfig.internalListeners[0].usedForControllerCommunication".into(), ErrorType::Invalid),
            ]
        );
    }

    #[test]
    fn zookeeper_mode_needs_addresses_and_no_roles() {
        let mut spec = valid_zk_spec();
        spec.zk_addresses = None;
        spec.brokers[0].broker_config =
            Some(BrokerConfig { roles: Some(vec![ProcessRole::Broker]), ..Default::default() });
        assert_eq!(
            paths_and_types(&run(&spec).errors),
            vec![
                ("spec.zkAddresses".into(), ErrorType::Required),
                ("spec.brokers[0].brokerConfig.processRoles".into(), ErrorType::Forbidden),
            ]
        );
    }
}

//! Rules about changing a running cluster (rule 10).

use super::{broker_path, spec_path};
use crate::api::kafkacluster::{Broker, KafkaClusterSpec};
use crate::rules::{FieldError, Verdict, quantity};

/// Changing `kRaft`, `headlessServiceEnabled` or a broker's roles, shrinking a PVC, or removing
/// or moving a KRaft node's first disk (its metadata log) is Forbidden; removing another disk
/// is allowed with a warning (Cruise Control drains it).
pub fn check(old: &KafkaClusterSpec, new: &KafkaClusterSpec, v: &mut Verdict) {
    if old.kraft != new.kraft {
        v.errors.push(FieldError::forbidden(
            &spec_path().child("kRaft"),
            "switching a running cluster between ZooKeeper and KRaft mode is not supported in place; create a new cluster \
             and migrate, or revert this field",
        ));
    }
    if old.headless_service_enabled != new.headless_service_enabled {
        v.errors.push(FieldError::forbidden(
            &spec_path().child("headlessServiceEnabled"),
            "changing headlessServiceEnabled changes every broker's advertised address and breaks connected clients and \
             inter-broker traffic; revert this field",
        ));
    }
    for (i, nb) in new.brokers.iter().enumerate() {
        let Some(ob) = old.brokers.iter().find(|b| b.id == nb.id) else { continue };
        check_broker(old, ob, new, nb, i, v);
    }
    if new.kraft
        && let Some((i, name)) = sasl_admin_listener(new)
        && sasl_admin_listener(old).is_none_or(|(_, old_name)| old_name != name)
    {
        v.errors.push(FieldError::forbidden(
            &super::internal_path(i),
            format!(
                "listener '{name}' would become the SASL admin listener of a running cluster: the operator's SCRAM \
                 credential is bootstrapped only when a cluster's storage is first formatted, so it could not log in; \
                 keep the admin listener as it is (SASL listeners for clients are fine), or create a new cluster"
            ),
        ));
    }
}

/// The internal listener the operator uses (marked `usedForKafkaAdminCommunication`, else the
/// inter-broker one), with its index, when it is SASL.
fn sasl_admin_listener(spec: &KafkaClusterSpec) -> Option<(usize, &str)> {
    let internal = &spec.listeners_config.internal_listeners;
    let i = internal
        .iter()
        .position(|l| l.common.used_for_kafka_admin_communication == Some(true))
        .or_else(|| internal.iter().position(|l| l.common.used_for_inner_broker_communication))?;
    let l = &internal[i].common;
    l.listener_type.kafka_name().starts_with("SASL").then_some((i, l.name.as_str()))
}

fn check_broker(old: &KafkaClusterSpec, ob: &Broker, new: &KafkaClusterSpec, nb: &Broker, i: usize, v: &mut Verdict) {
    if new.kraft && old.kraft {
        let (mut or, mut nr) = (ob.effective_roles(old), nb.effective_roles(new));
        or.sort();
        nr.sort();
        if or != nr && !or.is_empty() {
            let show = |r: &[crate::api::kafkacluster::ProcessRole]| {
                r.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(",")
            };
            v.errors.push(FieldError::forbidden(
                &broker_path(i).child("brokerConfig").child("processRoles"),
                format!(
                    "node {} cannot change roles in place ({} -> {}): remove it and add a node with a new id and the new roles",
                    nb.id,
                    show(&or),
                    show(&nr)
                ),
            ));
        }
    }
    let old_storage = ob.effective_storage(old);
    let new_storage = nb.effective_storage(new);
    // KRaft keeps a node's metadata log (`__cluster_metadata`) in its first log directory
    // (metadata.log.dir is the operator's): that disk cannot go or move, or the node would
    // start without its metadata log.
    if new.kraft
        && old.kraft
        && let (Some(of), Some(nf)) = (old_storage.first(), new_storage.first())
        && of.mount_path != nf.mount_path
    {
        v.errors.push(FieldError::forbidden(
            &broker_path(i).child("brokerConfig").child("storageConfigs"),
            format!(
                "node {}: its first disk {} holds the KRaft metadata log (__cluster_metadata) and must stay its first \
                 disk; remove or reorder only the disks after it",
                nb.id, of.mount_path
            ),
        ));
    }
    for os in &old_storage {
        match new_storage.iter().find(|ns| ns.mount_path == os.mount_path) {
            None => v.warnings.push(format!(
                "spec.brokers[{i}]: disk {} is removed from broker {}: it stays in use until Cruise Control (remove_disks) \
                 moved its data to the broker's other disks and Kafka shows it empty; then the broker restarts without it \
                 and its PVC is deleted",
                os.mount_path, nb.id
            )),
            Some(ns) => {
                let (Some(o), Some(n)) = (size(os), size(ns)) else { continue };
                if n.1 < o.1 {
                    v.errors.push(FieldError::forbidden(
                        &broker_path(i).child("brokerConfig").child("storageConfigs"),
                        format!(
                            "broker {} disk {}: a PersistentVolumeClaim cannot shrink ({} -> {}); keep the size or grow it",
                            nb.id, os.mount_path, o.0, n.0
                        ),
                    ));
                }
            }
        }
    }
}

fn size(sc: &crate::api::kafkacluster::StorageConfig) -> Option<(String, f64)> {
    let q = sc.pvc_spec.as_ref()?.resources.as_ref()?.requests.as_ref()?.get("storage")?;
    Some((q.0.clone(), quantity::parse(&q.0)?.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kafkacluster::{BrokerConfig, ProcessRole};
    use crate::rules::ErrorType;
    use crate::rules::kafkacluster::fixtures::*;

    fn run(old: &KafkaClusterSpec, new: &KafkaClusterSpec) -> Verdict {
        let mut v = Verdict::default();
        check(old, new, &mut v);
        v
    }

    #[test]
    fn a_running_cluster_does_not_move_its_admin_listener_to_sasl() {
        use crate::api::kafkacluster::SecurityProtocol;
        let old = valid_kraft_spec();
        let mut new = old.clone();
        let mut sasl = new.listeners_config.internal_listeners[0].clone();
        sasl.common.name = "sasl".into();
        sasl.common.container_port = 29094;
        sasl.common.used_for_inner_broker_communication = false;
        sasl.common.listener_type = SecurityProtocol::SaslPlaintext;
        new.listeners_config.internal_listeners.push(sasl);
        assert_eq!(run(&old, &new), Verdict::default(), "a SASL listener for clients is fine");
        new.listeners_config.internal_listeners[2].common.used_for_kafka_admin_communication = Some(true);
        assert_eq!(
            paths_and_types(&run(&old, &new).errors),
            vec![("spec.listenersConfig.internalListeners[2]".into(), ErrorType::Forbidden)]
        );
        assert_eq!(run(&new, &new), Verdict::default(), "a cluster created with it keeps it");
    }

    #[test]
    fn unchanged_spec_passes() {
        assert_eq!(run(&valid_kraft_spec(), &valid_kraft_spec()), Verdict::default());
    }

    #[test]
    fn mode_and_service_changes_are_forbidden() {
        let old = valid_kraft_spec();
        let mut new = valid_zk_spec();
        new.headless_service_enabled = true;
        assert_eq!(
            paths_and_types(&run(&old, &new).errors),
            vec![
                ("spec.kRaft".into(), ErrorType::Forbidden),
                ("spec.headlessServiceEnabled".into(), ErrorType::Forbidden)
            ]
        );
    }

    #[test]
    fn role_change_is_forbidden() {
        let old = valid_kraft_spec();
        let mut new = valid_kraft_spec();
        new.brokers[1].broker_config_group = None;
        new.brokers[1].broker_config = Some(BrokerConfig {
            roles: Some(vec![ProcessRole::Broker]),
            storage_configs: Some(vec![pvc_storage("/kafka-logs", "10Gi")]),
            ..Default::default()
        });
        let v = run(&old, &new);
        assert_eq!(
            paths_and_types(&v.errors),
            vec![("spec.brokers[1].brokerConfig.processRoles".into(), ErrorType::Forbidden)]
        );
        assert!(v.errors[0].message.contains("broker,controller -> broker"), "{}", v.errors[0].message);
    }

    #[test]
    fn shrinking_a_pvc_is_forbidden_and_growing_is_fine() {
        let old = valid_kraft_spec();
        let mut new = valid_kraft_spec();
        new.broker_config_groups.as_mut().unwrap().get_mut("default").unwrap().storage_configs =
            Some(vec![pvc_storage("/kafka-logs", "5Gi")]);
        let v = run(&old, &new);
        assert_eq!(v.errors.len(), 3, "one per broker");
        assert!(v.errors[0].message.contains("10Gi -> 5Gi"));
        new.broker_config_groups.as_mut().unwrap().get_mut("default").unwrap().storage_configs =
            Some(vec![pvc_storage("/kafka-logs", "20Gi")]);
        assert_eq!(run(&old, &new), Verdict::default());
    }

    #[test]
    fn removing_a_disk_warns() {
        let mut old = valid_kraft_spec();
        old.brokers[0].broker_config = Some(BrokerConfig {
            storage_configs: Some(vec![pvc_storage("/kafka-logs", "10Gi"), pvc_storage("/extra", "1Gi")]),
            ..Default::default()
        });
        let new = valid_kraft_spec();
        let v = run(&old, &new);
        assert!(v.errors.is_empty(), "{:?}", v.errors);
        assert_eq!(v.warnings.len(), 1);
        assert!(v.warnings[0].contains("disk /extra is removed from broker 0"));
    }

    #[test]
    fn the_first_disk_of_a_kraft_node_holds_its_metadata_log_and_stays() {
        let mut old = valid_kraft_spec();
        old.brokers[0].broker_config =
            Some(BrokerConfig { storage_configs: Some(vec![pvc_storage("/extra", "1Gi")]), ..Default::default() });
        // Removed, or moved behind another disk: both take the metadata log away.
        for new_first in [None, Some(vec![pvc_storage("/kafka-logs", "10Gi"), pvc_storage("/extra", "1Gi")])] {
            let mut new = valid_kraft_spec();
            new.brokers[0].broker_config =
                new_first.map(|s| BrokerConfig { storage_configs: Some(s), ..Default::default() });
            let v = run(&old, &new);
            assert_eq!(
                paths_and_types(&v.errors),
                vec![("spec.brokers[0].brokerConfig.storageConfigs".into(), ErrorType::Forbidden)]
            );
            assert!(
                v.errors[0].message.contains("first disk /extra holds the KRaft metadata log"),
                "{}",
                v.errors[0].message
            );
        }
    }
}

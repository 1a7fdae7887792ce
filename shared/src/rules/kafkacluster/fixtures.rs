//! Small builders for KafkaCluster rule tests (instead of pasted YAML).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, VolumeResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::api::kafkacluster::*;
use crate::rules::{ErrorType, FieldError};

/// A plaintext internal listener.
pub fn internal(name: &str, port: i32, inner: bool, controller: bool) -> InternalListenerConfig {
    InternalListenerConfig {
        common: CommonListenerSpec {
            name: name.into(),
            container_port: port,
            used_for_inner_broker_communication: inner,
            ..Default::default()
        },
        used_for_controller_communication: controller,
        ..Default::default()
    }
}

/// A plaintext external listener.
pub fn external(name: &str, port: i32, starting_port: i32) -> ExternalListenerConfig {
    ExternalListenerConfig {
        common: CommonListenerSpec { name: name.into(), container_port: port, ..Default::default() },
        external_starting_port: starting_port,
        ..Default::default()
    }
}

/// A spec with only the given listeners (as Koperator's unit tests build them).
pub fn listeners_spec(internals: &[(&str, i32)], externals: &[(&str, i32)]) -> KafkaClusterSpec {
    KafkaClusterSpec {
        listeners_config: ListenersConfig {
            internal_listeners: internals.iter().map(|(n, p)| internal(n, *p, false, false)).collect(),
            external_listeners: Some(externals.iter().map(|(n, p)| external(n, *p, 0)).collect()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Brokers with just ids.
pub fn brokers(ids: &[i32]) -> Vec<Broker> {
    ids.iter().map(|id| Broker { id: *id, ..Default::default() }).collect()
}

/// A PVC storage config of the given size.
pub fn pvc_storage(mount_path: &str, size: &str) -> StorageConfig {
    StorageConfig {
        mount_path: mount_path.into(),
        pvc_spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(size.into()))])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        empty_dir: None,
    }
}

/// A valid 3-node KRaft cluster: every node is broker and controller, one group with a disk.
pub fn valid_kraft_spec() -> KafkaClusterSpec {
    let group = BrokerConfig {
        roles: Some(vec![ProcessRole::Broker, ProcessRole::Controller]),
        storage_configs: Some(vec![pvc_storage("/kafka-logs", "10Gi")]),
        ..Default::default()
    };
    KafkaClusterSpec {
        kraft: true,
        listeners_config: ListenersConfig {
            internal_listeners: vec![
                internal("internal", 29092, true, false),
                internal("controller", 29093, false, true),
            ],
            ..Default::default()
        },
        broker_config_groups: Some(BTreeMap::from([("default".to_string(), group)])),
        brokers: [0, 1, 2]
            .iter()
            .map(|id| Broker { id: *id, broker_config_group: Some("default".into()), ..Default::default() })
            .collect(),
        ..Default::default()
    }
}

/// A valid 3-broker ZooKeeper-mode cluster.
pub fn valid_zk_spec() -> KafkaClusterSpec {
    let mut spec = valid_kraft_spec();
    spec.kraft = false;
    spec.zk_addresses = Some(vec!["zookeeper-client.zookeeper:2181".into()]);
    spec.listeners_config.internal_listeners[1].used_for_controller_communication = false;
    spec.listeners_config.internal_listeners[1].common.name = "other".into();
    for g in spec.broker_config_groups.as_mut().unwrap().values_mut() {
        g.roles = None;
    }
    spec
}

/// (path, type) of each error, for compact assertions.
pub fn paths_and_types(errs: &[FieldError]) -> Vec<(String, ErrorType)> {
    errs.iter().map(|e| (e.path.clone(), e.error_type)).collect()
}

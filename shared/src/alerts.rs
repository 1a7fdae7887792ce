//! Alerts that heal a cluster (Koperator's alert receiver): what Prometheus or Alertmanager
//! posts, how a repeated notification is recognised, and what each alert `command` changes in
//! a KafkaCluster. Pure: the operator fetches the objects, these functions decide, the
//! operator writes.
//!
//! Compatible with Koperator's labels and annotations: an alert acts when its `command`
//! annotation is `upScale`, `downScale`, `addPvc` or `resizePvc`; the cluster comes from the
//! `kafka_cr` and `namespace` labels, or from the PVC the `persistentvolumeclaim` label names.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaimSpec, VolumeResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;

use crate::api::kafkacluster::{Broker, BrokerConfig, KafkaCluster, ProcessRole, StorageConfig};
use crate::rules::quantity;

/// The annotation naming what an alert asks for.
pub const COMMAND_ANNOTATION: &str = "command";
/// The label naming the KafkaCluster.
pub const CLUSTER_LABEL: &str = "kafka_cr";
/// The label naming the namespace of the KafkaCluster or the PVC.
pub const NAMESPACE_LABEL: &str = "namespace";
/// The label naming a broker's PVC (as kubelet's volume metrics carry it).
pub const PVC_LABEL: &str = "persistentvolumeclaim";
/// The label naming a broker (downScale: the one to remove).
pub const BROKER_ID_LABEL: &str = "brokerId";
/// The KafkaCluster annotation that records the alerts already acted on (`fingerprint@startsAt`,
/// newest last), written with the change itself: a notification repeated after an operator
/// restart changes nothing twice.
pub const ACTED_ON_ANNOTATION: &str = "koperator.banzaicloud.io/alerts-acted-on";
/// How many alerts [`ACTED_ON_ANNOTATION`] remembers.
pub const ACTED_ON_KEPT: usize = 32;
/// Largest request body the receiver reads.
pub const MAX_BODY: usize = 1 << 20;

/// One alert, as Prometheus pushes it (`POST /api/v2/alerts`, a JSON array) or as
/// Alertmanager's webhook carries it (`{"version": "4", "alerts": [...]}`).
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Identify the alert.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Say what to do (`command` and its parameters).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When it started firing (RFC 3339).
    #[serde(default)]
    pub starts_at: Option<String>,
    /// When it resolved, or will be considered resolved (RFC 3339; Go's zero time when unset).
    #[serde(default)]
    pub ends_at: Option<String>,
    /// `firing` or `resolved` (Alertmanager's webhook only).
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Payload {
    Push(Vec<Alert>),
    Webhook { alerts: Vec<Alert> },
}

/// The alerts of a request body, in either format; the error says what is wrong with it.
pub fn parse(body: &[u8]) -> Result<Vec<Alert>, String> {
    if body.len() > MAX_BODY {
        return Err(format!("the body has {} bytes; at most {MAX_BODY} are read", body.len()));
    }
    match serde_json::from_slice::<Payload>(body) {
        Ok(Payload::Push(alerts) | Payload::Webhook { alerts }) => Ok(alerts),
        Err(e) => Err(format!(
            "expected a JSON array of alerts (Prometheus) or an Alertmanager webhook message with \"alerts\": {e}"
        )),
    }
}

impl Alert {
    /// Identifies the alert across notifications: a hash of its label set (as Prometheus'
    /// fingerprint does, not the same numbers).
    pub fn fingerprint(&self) -> String {
        let mut bytes = Vec::new();
        for (k, v) in &self.labels {
            bytes.extend_from_slice(k.as_bytes());
            bytes.push(0xff);
            bytes.extend_from_slice(v.as_bytes());
            bytes.push(0xfe);
        }
        crate::hash::fnv1a64_hex(&bytes)
    }

    /// Its `alertname` label, else its fingerprint (for logs, Events and answers).
    pub fn name(&self) -> String {
        self.labels.get("alertname").cloned().unwrap_or_else(|| self.fingerprint())
    }

    /// Identifies one firing of the alert: its fingerprint and when it started.
    pub fn key(&self) -> String {
        format!("{}@{}", self.fingerprint(), self.starts_at.as_deref().unwrap_or_default())
    }

    /// Whether it no longer fires at `now`: Alertmanager says `resolved`, or its end time is
    /// set and passed.
    pub fn resolved(&self, now: Timestamp) -> bool {
        if let Some(status) = &self.status {
            return status == "resolved";
        }
        self.ends_at
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .is_some_and(|end| end.as_second() > 0 && end <= now && !end.to_string().starts_with("0001-"))
    }

    fn label(&self, name: &str) -> Result<&str, String> {
        self.labels
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("label {name} is missing"))
    }

    fn annotation(&self, name: &str) -> Option<&str> {
        self.annotations.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    fn size(&self, name: &str) -> Result<Option<String>, String> {
        match self.annotation(name) {
            None => Ok(None),
            Some(v) if quantity::parse(v).is_some_and(|q| q.0 > 0.0) => Ok(Some(v.trim().to_string())),
            Some(v) => Err(format!("annotation {name}: {v:?} is not a positive quantity such as 10Gi")),
        }
    }
}

/// A KafkaCluster by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterKey {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// A PVC by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PvcKey {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// A disk an alert asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDisk {
    /// Where it is mounted.
    pub mount_path: String,
    /// Its size (a quantity).
    pub size: String,
    /// Its storage class; the cluster's default when unset.
    pub storage_class: Option<String>,
}

/// What an alert asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Add a broker (annotations `brokerConfigGroup`, or `mountPath`, `diskSize`,
    /// `storageClass`, `image`, `brokerAnnotations`).
    UpScale {
        /// The cluster.
        cluster: ClusterKey,
        /// The config group of the new broker.
        broker_config_group: Option<String>,
        /// Its own disk, when no group is named.
        disk: Option<NewDisk>,
        /// Its image.
        image: Option<String>,
        /// Its Pod annotations.
        broker_annotations: Option<BTreeMap<String, String>>,
    },
    /// Remove a broker: the one the `brokerId` label names, else the one with the fewest
    /// partition replicas.
    DownScale {
        /// The cluster.
        cluster: ClusterKey,
        /// The broker to remove.
        broker: Option<i32>,
    },
    /// Add a disk to the broker of the PVC (annotations `mountPathPrefix`, `diskSize`,
    /// `storageClass`).
    AddPvc {
        /// A PVC of the broker.
        pvc: PvcKey,
        /// The new disk's mount path: this prefix, `-` and six characters of the alert's key.
        mount_path_prefix: String,
        /// Its size.
        size: String,
        /// Its storage class.
        storage_class: Option<String>,
    },
    /// Grow the PVC by `incrementBy`.
    ResizePvc {
        /// The PVC.
        pvc: PvcKey,
        /// How much to add (a quantity).
        increment_by: String,
    },
}

impl Command {
    /// The cluster it names; a PVC command names a PVC instead, whose labels name the cluster.
    pub fn cluster(&self) -> Option<&ClusterKey> {
        match self {
            Command::UpScale { cluster, .. } | Command::DownScale { cluster, .. } => Some(cluster),
            Command::AddPvc { .. } | Command::ResizePvc { .. } => None,
        }
    }

    /// Its `command` annotation value.
    pub fn name(&self) -> &'static str {
        match self {
            Command::UpScale { .. } => "upScale",
            Command::DownScale { .. } => "downScale",
            Command::AddPvc { .. } => "addPvc",
            Command::ResizePvc { .. } => "resizePvc",
        }
    }
}

/// What `alert` asks for: `Ok(None)` when it has no `command` annotation (an alert for
/// people, not for the operator); an error that says what to fix when the command is unknown
/// or its labels and annotations are incomplete.
pub fn command(alert: &Alert) -> Result<Option<Command>, String> {
    let Some(command) = alert.annotation(COMMAND_ANNOTATION) else {
        return Ok(None);
    };
    let cluster = || -> Result<ClusterKey, String> {
        Ok(ClusterKey { namespace: alert.label(NAMESPACE_LABEL)?.into(), name: alert.label(CLUSTER_LABEL)?.into() })
    };
    let pvc = || -> Result<PvcKey, String> {
        Ok(PvcKey { namespace: alert.label(NAMESPACE_LABEL)?.into(), name: alert.label(PVC_LABEL)?.into() })
    };
    Ok(Some(match command {
        "upScale" => {
            let disk = match (alert.annotation("mountPath"), alert.size("diskSize")?) {
                (Some(mount_path), Some(size)) => Some(NewDisk {
                    mount_path: mount_path.trim().into(),
                    size,
                    storage_class: alert.annotation("storageClass").map(String::from),
                }),
                (None, None) => None,
                _ => return Err("annotations mountPath and diskSize go together: set both or neither".into()),
            };
            let broker_annotations = match alert.annotation("brokerAnnotations") {
                None => None,
                Some(v) => Some(
                    serde_json::from_str(v)
                        .map_err(|e| format!("annotation brokerAnnotations must be a JSON object of strings: {e}"))?,
                ),
            };
            Command::UpScale {
                cluster: cluster()?,
                broker_config_group: alert.annotation("brokerConfigGroup").map(String::from),
                disk,
                image: alert.annotation("image").map(String::from),
                broker_annotations,
            }
        }
        "downScale" => {
            let broker = match alert.labels.get(BROKER_ID_LABEL).filter(|v| !v.is_empty()) {
                None => None,
                Some(v) => Some(v.parse().map_err(|_| format!("label {BROKER_ID_LABEL}: {v:?} is not a broker id"))?),
            };
            Command::DownScale { cluster: cluster()?, broker }
        }
        "addPvc" => Command::AddPvc {
            pvc: pvc()?,
            mount_path_prefix: alert
                .annotation("mountPathPrefix")
                .ok_or("annotation mountPathPrefix is missing (the new disk is mounted at <prefix>-<6 characters>)")?
                .trim()
                .trim_end_matches('/')
                .into(),
            size: alert.size("diskSize")?.ok_or("annotation diskSize is missing")?,
            storage_class: alert.annotation("storageClass").map(String::from),
        },
        "resizePvc" => Command::ResizePvc {
            pvc: pvc()?,
            increment_by: alert.size("incrementBy")?.ok_or("annotation incrementBy is missing")?,
        },
        other => {
            return Err(format!("annotation command: {other:?} is not one of upScale, downScale, addPvc, resizePvc"));
        }
    }))
}

/// Why an alert's command is never carried out for this firing: a limit of
/// `alertManagerConfig`, or a change that cannot apply to this cluster. Reported with a Warning
/// Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

fn limits(kc: &KafkaCluster) -> (Option<i32>, Option<i32>) {
    let c = kc.spec.alert_manager_config.as_ref();
    (c.and_then(|c| c.up_scale_limit).filter(|l| *l > 0), c.and_then(|c| c.down_scale_limit).filter(|l| *l > 0))
}

fn pvc_spec(size: &str, storage_class: Option<&str>) -> PersistentVolumeClaimSpec {
    PersistentVolumeClaimSpec {
        access_modes: Some(vec!["ReadWriteOnce".into()]),
        storage_class_name: storage_class.map(String::from),
        resources: Some(VolumeResourceRequirements {
            requests: Some(BTreeMap::from([("storage".to_string(), Quantity(size.to_string()))])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The broker an upScale alert adds to `kc` (appended to `spec.brokers` by the caller): the
/// next id after the highest, in the named config group, or with the alert's own disk, or
/// else in the config group of the highest-id broker.
pub fn up_scale(kc: &KafkaCluster, cmd: &Command) -> Result<Broker, Refusal> {
    let Command::UpScale { broker_config_group, disk, image, broker_annotations, .. } = cmd else {
        return Err(Refusal(format!("{} is not upScale", cmd.name())));
    };
    let brokers = &kc.spec.brokers;
    if let (Some(limit), _) = limits(kc)
        && brokers.len() >= limit as usize
    {
        return Err(Refusal(format!(
            "the cluster has {} brokers and alertManagerConfig.upScaleLimit is {limit}: no broker added",
            brokers.len()
        )));
    }
    let groups = kc.spec.broker_config_groups.as_ref();
    let id = brokers.iter().map(|b| b.id).max().map_or(0, |m| m + 1);
    let mut broker = Broker { id, ..Default::default() };
    if let Some(group) = broker_config_group {
        if !groups.is_some_and(|g| g.contains_key(group)) {
            return Err(Refusal(format!(
                "annotation brokerConfigGroup names {group:?}, which is not in spec.brokerConfigGroups"
            )));
        }
        broker.broker_config_group = Some(group.clone());
    } else if disk.is_none() {
        let last = brokers.iter().max_by_key(|b| b.id).and_then(|b| b.broker_config_group.clone());
        let Some(group) = last else {
            return Err(Refusal(
                "the alert names no brokerConfigGroup and no disk (mountPath, diskSize), and the highest broker has no group to copy".into(),
            ));
        };
        broker.broker_config_group = Some(group);
    }
    if disk.is_some() || image.is_some() || broker_annotations.is_some() {
        broker.broker_config = Some(BrokerConfig {
            image: image.clone(),
            broker_annotations: broker_annotations.clone(),
            storage_configs: disk.as_ref().map(|d| {
                vec![StorageConfig {
                    mount_path: d.mount_path.clone(),
                    pvc_spec: Some(pvc_spec(&d.size, d.storage_class.as_deref())),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        });
    }
    Ok(broker)
}

/// The broker a downScale alert removes from `kc`: the one it names, else the one holding the
/// fewest partition replicas (`replicas`: broker id → replica count; the lowest id on a tie).
pub fn down_scale(kc: &KafkaCluster, broker: Option<i32>, replicas: &BTreeMap<i32, usize>) -> Result<i32, Refusal> {
    let brokers = &kc.spec.brokers;
    if let (_, Some(limit)) = limits(kc)
        && brokers.len() <= limit as usize
    {
        return Err(Refusal(format!(
            "the cluster has {} brokers and alertManagerConfig.downScaleLimit is {limit}: no broker removed",
            brokers.len()
        )));
    }
    if brokers.len() <= 1 {
        return Err(Refusal("the cluster has a single broker left: it is not removed".into()));
    }
    match broker {
        Some(id) if brokers.iter().any(|b| b.id == id) => Ok(id),
        Some(id) => Err(Refusal(format!("broker {id} is not in spec.brokers"))),
        None => brokers
            .iter()
            .filter(|b| b.effective_roles(&kc.spec).iter().all(|r| *r == ProcessRole::Broker))
            .min_by_key(|b| (replicas.get(&b.id).copied().unwrap_or(0), b.id))
            .map(|b| b.id)
            .ok_or_else(|| Refusal("no broker-only node to remove".into())),
    }
}

/// The broker index in `kc.spec.brokers` of broker `id`.
fn broker_index(kc: &KafkaCluster, id: i32) -> Result<usize, Refusal> {
    kc.spec
        .brokers
        .iter()
        .position(|b| b.id == id)
        .ok_or_else(|| Refusal(format!("broker {id} of the PVC is not in spec.brokers")))
}

/// Adds the disk an addPvc alert asks for to broker `id` of `kc`, last in its own
/// `storageConfigs`; the disks it had from its config group are copied there first, so they
/// keep their place in `log.dirs` (a KRaft node keeps its metadata log on its first disk). The
/// mount path is the prefix, `-` and six characters derived from `alert_key`, so the same
/// firing never adds two disks. Returns the mount path.
pub fn add_disk(kc: &mut KafkaCluster, id: i32, cmd: &Command, alert_key: &str) -> Result<String, Refusal> {
    let Command::AddPvc { mount_path_prefix, size, storage_class, .. } = cmd else {
        return Err(Refusal(format!("{} is not addPvc", cmd.name())));
    };
    let i = broker_index(kc, id)?;
    let suffix = &crate::hash::fnv1a64_hex(alert_key.as_bytes())[..6];
    let mount_path = format!("{mount_path_prefix}-{suffix}");
    if kc.spec.brokers[i].effective_storage(&kc.spec).iter().any(|s| s.mount_path == mount_path) {
        return Ok(mount_path);
    }
    let current: Vec<StorageConfig> = kc.spec.brokers[i].effective_storage(&kc.spec).into_iter().cloned().collect();
    let config = kc.spec.brokers[i].broker_config.get_or_insert_with(Default::default);
    config.storage_configs = Some(current);
    config.storage_configs.get_or_insert_with(Vec::new).push(StorageConfig {
        mount_path: mount_path.clone(),
        pvc_spec: Some(pvc_spec(size, storage_class.as_deref())),
        ..Default::default()
    });
    Ok(mount_path)
}

/// Grows the disk of broker `id` mounted at `mount_path` by a resizePvc alert's `incrementBy`,
/// from `current` (the PVC's request): written into the broker's own `storageConfigs` (a
/// config group is never changed; the broker's copy of the group's disk wins). Returns the new
/// size.
pub fn grow_disk(
    kc: &mut KafkaCluster,
    id: i32,
    mount_path: &str,
    current: &str,
    cmd: &Command,
) -> Result<String, Refusal> {
    let Command::ResizePvc { increment_by, .. } = cmd else {
        return Err(Refusal(format!("{} is not resizePvc", cmd.name())));
    };
    let i = broker_index(kc, id)?;
    let disk = kc.spec.brokers[i]
        .effective_storage(&kc.spec)
        .into_iter()
        .find(|s| s.mount_path.trim_end_matches('/') == mount_path.trim_end_matches('/'))
        .cloned()
        .ok_or_else(|| Refusal(format!("broker {id} has no disk mounted at {mount_path}")))?;
    let Some(mut spec) = disk.pvc_spec.clone() else {
        return Err(Refusal(format!("the disk at {mount_path} of broker {id} is not a PVC")));
    };
    let bytes = |q: &str| quantity::parse(q).map(|q| q.0).filter(|b| *b > 0.0);
    let (Some(now), Some(more)) = (bytes(current), bytes(increment_by)) else {
        return Err(Refusal(format!("cannot add {increment_by} to the PVC's request {current}")));
    };
    let size = format!("{}", (now + more).ceil() as u64);
    spec.resources
        .get_or_insert_with(Default::default)
        .requests
        .get_or_insert_with(Default::default)
        .insert("storage".into(), Quantity(size.clone()));
    let config = kc.spec.brokers[i].broker_config.get_or_insert_with(Default::default);
    let own = config.storage_configs.get_or_insert_with(Vec::new);
    match own.iter_mut().find(|s| s.mount_path == disk.mount_path) {
        Some(s) => s.pvc_spec = Some(spec),
        None => own.push(StorageConfig { pvc_spec: Some(spec), ..disk }),
    }
    Ok(size)
}

/// `acted` (the value of [`ACTED_ON_ANNOTATION`]) with `key` added, keeping the newest
/// [`ACTED_ON_KEPT`].
pub fn record_acted_on(acted: Option<&str>, key: &str) -> String {
    let mut keys: Vec<&str> = acted.unwrap_or_default().split(',').filter(|k| !k.is_empty() && *k != key).collect();
    keys.push(key);
    let skip = keys.len().saturating_sub(ACTED_ON_KEPT);
    keys[skip..].join(",")
}

/// Whether `kc` records that it acted on the alert firing `key`.
pub fn acted_on(kc: &KafkaCluster, key: &str) -> bool {
    kc.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ACTED_ON_ANNOTATION))
        .is_some_and(|v| v.split(',').any(|k| k == key))
}

#[cfg(test)]
#[path = "alerts_tests.rs"]
mod tests;

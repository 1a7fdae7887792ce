//! Desired Kubernetes objects of a KafkaCluster: per broker a ConfigMap, a Pod and its PVCs;
//! per cluster the Services and the PodDisruptionBudget. Pure; the operator applies them with
//! server-side apply and owner references.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, PersistentVolumeClaim,
    PersistentVolumeClaimVolumeSource, Pod, PodAffinityTerm, PodAntiAffinity, PodSpec, Probe, ResourceRequirements,
    SecretVolumeSource, Service, ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
    WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::properties::server_properties;
use super::{BrokerView, brokers, names};
use crate::api::kafkacluster::{BrokerConfig, DEFAULT_TERMINATION_GRACE_PERIOD};
use crate::validated::ValidatedCluster;

/// Default Kafka image (Koperator's default; KRaft-capable).
pub const DEFAULT_KAFKA_IMAGE: &str = "ghcr.io/adobe/koperator/kafka:2.13-3.9.2-jdk21.0.11";
/// Key of `server.properties` in the broker ConfigMap, mounted at [`CONFIG_DIR`].
pub const CONFIG_KEY: &str = "broker-config";
/// Where the broker ConfigMap is mounted.
pub const CONFIG_DIR: &str = "/config";
/// Annotation on a PVC naming the mount path it backs.
pub const MOUNT_PATH_ANNOTATION: &str = "mountPath";
/// Pod annotation carrying a hash of the rendered configuration (a change means a restart).
pub const CONFIG_HASH_ANNOTATION: &str = "koperator.banzaicloud.io/config-hash";

/// Labels every object of the cluster carries (`app=kafka`, `kafka_cr=<cluster>`).
pub fn cluster_labels(c: &ValidatedCluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app".to_string(), "kafka".to_string()),
        ("kafka_cr".to_string(), c.metadata.name.clone().unwrap_or_default()),
    ])
}

/// Labels of one broker's objects: the cluster's, `brokerId`, and in KRaft mode the role labels.
pub fn broker_labels(c: &ValidatedCluster, b: &BrokerView<'_>) -> BTreeMap<String, String> {
    let mut l = cluster_labels(c);
    l.insert("brokerId".into(), b.broker.id.to_string());
    if c.spec.kraft {
        l.insert("processRoles".into(), b.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join("_"));
        l.insert("isBrokerNode".into(), b.is_broker(true).to_string());
        l.insert("isControllerNode".into(), b.is_controller(true).to_string());
    }
    l
}

fn meta(c: &ValidatedCluster, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta { name: Some(name), namespace: c.metadata.namespace.clone(), labels: Some(labels), ..Default::default() }
}

/// A field of the broker's config, the broker's own value winning over its group's.
fn pick<'a, T>(b: &'a BrokerView<'a>, f: impl Fn(&'a BrokerConfig) -> Option<&'a T>) -> Option<&'a T> {
    b.broker.broker_config.as_ref().and_then(&f).or_else(|| b.group.and_then(&f))
}

/// Everything one broker consists of, rendered with one pass over its `server.properties`.
#[derive(Clone, Debug)]
pub struct BrokerObjects {
    /// `<cluster>-config-<id>`.
    pub config_map: ConfigMap,
    /// `<cluster>-<id>`.
    pub pod: Pod,
    /// One per PVC-backed disk.
    pub pvcs: Vec<PersistentVolumeClaim>,
}

/// The ConfigMap, Pod and PVCs of broker `b`. `cluster_id` is the KRaft cluster id.
pub fn broker_objects(c: &ValidatedCluster, b: &BrokerView<'_>, cluster_id: &str) -> BrokerObjects {
    let props = server_properties(c, b.broker.id).unwrap_or_default();
    BrokerObjects { pod: pod(c, b, cluster_id, &props), pvcs: pvcs(c, b), config_map: config_map(c, b, props) }
}

/// The broker ConfigMap `<cluster>-config-<id>` holding `server.properties`.
fn config_map(c: &ValidatedCluster, b: &BrokerView<'_>, props: String) -> ConfigMap {
    ConfigMap {
        metadata: meta(c, names::config_map(c, b.broker.id), broker_labels(c, b)),
        data: Some(BTreeMap::from([(CONFIG_KEY.to_string(), props)])),
        ..Default::default()
    }
}

/// PVCs of the broker, one per PVC-backed storage config, named after the mount path.
fn pvcs(c: &ValidatedCluster, b: &BrokerView<'_>) -> Vec<PersistentVolumeClaim> {
    b.broker
        .effective_storage(&c.spec)
        .into_iter()
        .filter_map(|sc| {
            let spec = sc.pvc_spec.clone()?;
            let mut m = meta(c, names::pvc(c, b.broker.id, &sc.mount_path), broker_labels(c, b));
            m.annotations = Some(BTreeMap::from([(MOUNT_PATH_ANNOTATION.to_string(), sc.mount_path.clone())]));
            Some(PersistentVolumeClaim { metadata: m, spec: Some(spec), ..Default::default() })
        })
        .collect()
}

/// The live PVC that already backs a disk of broker `id` mounted at `mount_path`: labelled with
/// the broker's id and annotated with the mount path (as this operator and Koperator make them),
/// not being deleted. Among several, the one named `preferred` (today's name), else the oldest.
fn existing_pvc<'a>(
    live: &[&'a PersistentVolumeClaim],
    id: i32,
    mount_path: &str,
    preferred: &str,
) -> Option<&'a PersistentVolumeClaim> {
    let dir = mount_path.trim_end_matches('/');
    let mut matching: Vec<&PersistentVolumeClaim> = live
        .iter()
        .copied()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.metadata.labels.as_ref().and_then(|l| l.get("brokerId")).is_some_and(|v| *v == id.to_string()))
        .filter(|p| {
            p.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(MOUNT_PATH_ANNOTATION))
                .is_some_and(|m| m.trim_end_matches('/') == dir)
        })
        .collect();
    matching.sort_by_key(|p| {
        (
            p.metadata.name.as_deref() != Some(preferred),
            p.metadata.creation_timestamp.clone().map(|t| t.0),
            p.metadata.name.clone(),
        )
    });
    matching.first().copied()
}

/// Keeps the broker on the disks it already has: each desired PVC whose disk (broker id and
/// mount path) is backed by a live PVC under another name (made before PVC names carried a
/// hash, or by Koperator with a generated name) takes that name, and the Pod claims it, so a
/// disk never gets a second PVC. `live` are the cluster's PVCs.
pub fn keep_existing_pvcs<'a>(
    id: i32,
    pod: &mut Pod,
    pvcs: &mut [PersistentVolumeClaim],
    live: impl IntoIterator<Item = &'a PersistentVolumeClaim>,
) {
    let live: Vec<&PersistentVolumeClaim> = live.into_iter().collect();
    for pvc in pvcs {
        let name = pvc.metadata.name.clone().unwrap_or_default();
        let Some(mount_path) = pvc.metadata.annotations.as_ref().and_then(|a| a.get(MOUNT_PATH_ANNOTATION)).cloned()
        else {
            continue;
        };
        let Some(existing) = existing_pvc(&live, id, &mount_path, &name).and_then(|p| p.metadata.name.clone()) else {
            continue;
        };
        if existing == name {
            continue;
        }
        for v in pod.spec.iter_mut().flat_map(|s| s.volumes.iter_mut().flatten()) {
            if let Some(claim) = v.persistent_volume_claim.as_mut().filter(|c| c.claim_name == name) {
                claim.claim_name = existing.clone();
            }
        }
        pvc.metadata.name = Some(existing);
    }
}

/// FNV-1a over the rendered config: changes exactly when the broker must restart.
fn config_hash(props: &str) -> String {
    crate::hash::fnv1a64_hex(props.as_bytes())
}

fn default_resources() -> ResourceRequirements {
    let q = |s: &str| Quantity(s.to_string());
    ResourceRequirements {
        requests: Some(BTreeMap::from([("cpu".into(), q("1")), ("memory".into(), q("2Gi"))])),
        limits: Some(BTreeMap::from([("cpu".into(), q("1500m")), ("memory".into(), q("3Gi"))])),
        ..Default::default()
    }
}

/// The broker Pod `<cluster>-<id>`, annotated with the hash of its rendered `props`.
fn pod(c: &ValidatedCluster, b: &BrokerView<'_>, cluster_id: &str, props: &str) -> Pod {
    let spec = &c.spec;
    let id = b.broker.id;
    let mut labels = pick(b, |cfg| cfg.broker_labels.as_ref()).cloned().unwrap_or_default();
    labels.extend(broker_labels(c, b));
    let mut annotations: BTreeMap<String, String> =
        super::jmx::SCRAPE_ANNOTATIONS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    annotations.extend(pick(b, |cfg| cfg.broker_annotations.as_ref()).cloned().unwrap_or_default());
    annotations.insert(CONFIG_HASH_ANNOTATION.into(), config_hash(props));

    let mut volumes = vec![Volume {
        name: "broker-config".into(),
        config_map: Some(ConfigMapVolumeSource { name: names::config_map(c, id), ..Default::default() }),
        ..Default::default()
    }];
    let mut mounts =
        vec![VolumeMount { name: "broker-config".into(), mount_path: CONFIG_DIR.into(), ..Default::default() }];
    for (i, sc) in b.broker.effective_storage(spec).into_iter().enumerate() {
        let name = format!("storage-{i}");
        volumes.push(Volume {
            name: name.clone(),
            persistent_volume_claim: sc.pvc_spec.as_ref().map(|_| PersistentVolumeClaimVolumeSource {
                claim_name: names::pvc(c, id, &sc.mount_path),
                read_only: None,
            }),
            empty_dir: if sc.pvc_spec.is_none() { sc.empty_dir.clone() } else { None },
            ..Default::default()
        });
        mounts.push(VolumeMount { name, mount_path: sc.mount_path.clone(), ..Default::default() });
    }
    // Each SSL listener's keystore at Koperator's path: the broker's issued certificate Secret,
    // or the listener's Secret of the user's own.
    for (l, secret) in super::tls::mounts(c, id) {
        volumes.push(Volume {
            name: super::tls::listener_volume(l),
            secret: Some(SecretVolumeSource { secret_name: Some(secret), ..Default::default() }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: super::tls::listener_volume(l),
            mount_path: super::tls::listener_dir(l),
            read_only: Some(true),
            ..Default::default()
        });
    }
    // The admin SCRAM password, read when KRaft storage is formatted.
    if super::sasl::admin_scram(c) {
        volumes.push(Volume {
            name: super::sasl::ADMIN_SECRET_VOLUME.into(),
            secret: Some(SecretVolumeSource { secret_name: Some(super::sasl::admin_secret(c)), ..Default::default() }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: super::sasl::ADMIN_SECRET_VOLUME.into(),
            mount_path: super::sasl::ADMIN_SECRET_MOUNT.into(),
            read_only: Some(true),
            ..Default::default()
        });
    }
    // The JMX exporter's jar and configuration.
    volumes.extend(super::jmx::volumes(c));
    mounts.extend(super::jmx::mounts());
    // The Cruise Control metrics reporter's jar, on the class path.
    let reporter = super::cruise_control::configured(c);
    if reporter {
        volumes.push(super::cruise_control::extensions_volume());
        mounts.push(super::cruise_control::extensions_mount());
    }
    volumes.extend(pick(b, |cfg| cfg.volumes.as_ref()).cloned().unwrap_or_default());
    mounts.extend(pick(b, |cfg| cfg.volume_mounts.as_ref()).cloned().unwrap_or_default());

    let mut ports: Vec<ContainerPort> = spec
        .all_listeners()
        .map(|l| ContainerPort {
            name: Some(if l.name.starts_with("tcp-") { l.name.clone() } else { format!("tcp-{}", l.name) }),
            container_port: l.container_port,
            protocol: Some("TCP".into()),
            ..Default::default()
        })
        .collect();
    ports.extend(spec.additional_ports.clone().unwrap_or_default());
    ports.push(super::jmx::port());

    let user_env: Vec<&EnvVar> = [
        spec.envs.as_ref(),
        b.group.and_then(|g| g.envs.as_ref()),
        b.broker.broker_config.as_ref().and_then(|c| c.envs.as_ref()),
    ]
    .into_iter()
    .flatten()
    .flatten()
    .collect();
    let env = broker_env(
        &user_env,
        pick(b, |cfg| cfg.kafka_heap_opts.as_ref()).map(String::as_str).filter(|s| !s.is_empty()),
        pick(b, |cfg| cfg.kafka_jvm_perf_opts.as_ref()).map(String::as_str).filter(|s| !s.is_empty()),
        spec.kraft.then_some(cluster_id),
        reporter,
    );

    let config_file = format!("{CONFIG_DIR}/{CONFIG_KEY}");
    let script = if spec.kraft {
        format!(
            "/opt/kafka/bin/kafka-storage.sh format --ignore-formatted --cluster-id \"$KAFKA_CLUSTER_ID\" --config {config_file}{} && \
             exec /opt/kafka/bin/kafka-server-start.sh {config_file}",
            super::sasl::format_arguments(c)
        )
    } else {
        format!("exec /opt/kafka/bin/kafka-server-start.sh {config_file}")
    };
    let probe_port = spec
        .listeners_config
        .internal_listeners
        .iter()
        .find(|l| {
            if b.is_broker(spec.kraft) {
                l.common.used_for_inner_broker_communication
            } else {
                l.used_for_controller_communication
            }
        })
        .map(|l| l.common.container_port);
    let probe = probe_port.map(|p| Probe {
        tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(p), host: None }),
        initial_delay_seconds: Some(10),
        period_seconds: Some(10),
        failure_threshold: Some(3),
        ..Default::default()
    });

    let image = pick(b, |cfg| cfg.image.as_ref())
        .cloned()
        .or_else(|| spec.cluster_image.clone())
        .unwrap_or_else(|| DEFAULT_KAFKA_IMAGE.into());
    let kafka = Container {
        name: "kafka".into(),
        image: Some(image),
        command: Some(vec!["bash".into(), "-c".into(), script]),
        env: Some(env),
        ports: Some(ports),
        volume_mounts: Some(mounts),
        resources: Some(pick(b, |cfg| cfg.resources.as_ref()).cloned().unwrap_or_else(default_resources)),
        readiness_probe: probe.clone(),
        liveness_probe: probe.map(|p| Probe { initial_delay_seconds: Some(60), ..p }),
        security_context: pick(b, |cfg| cfg.security_context.as_ref()).cloned(),
        // A broker that exits on an error leaves the end of its log in the container status,
        // where the operator reads why it cannot start.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    };
    let mut containers = vec![kafka];
    containers.extend(pick(b, |cfg| cfg.containers.as_ref()).cloned().unwrap_or_default());
    // The user's init containers, then the ones copying the Cruise Control metrics reporter's
    // and the JMX exporter's jars (in Koperator's order).
    let mut init_containers = pick(b, |cfg| cfg.init_containers.as_ref()).cloned().unwrap_or_default();
    if reporter {
        init_containers.push(super::cruise_control::reporter_init_container(c, b));
    }
    init_containers.push(super::jmx::init_container(c));

    let mut m = meta(c, names::broker(c, id), labels);
    m.annotations = Some(annotations);
    Pod {
        metadata: m,
        spec: Some(PodSpec {
            hostname: Some(names::broker(c, id)),
            subdomain: spec.headless_service_enabled.then(|| names::headless_service(c)),
            containers,
            init_containers: Some(init_containers),
            volumes: Some(volumes),
            affinity: Some(affinity(c, b)),
            tolerations: pick(b, |cfg| cfg.tolerations.as_ref()).cloned(),
            node_selector: pick(b, |cfg| cfg.node_selector.as_ref()).cloned(),
            service_account_name: Some(
                pick(b, |cfg| cfg.service_account_name.as_ref()).cloned().unwrap_or_else(|| "default".into()),
            ),
            image_pull_secrets: pick(b, |cfg| cfg.image_pull_secrets.as_ref()).cloned(),
            priority_class_name: pick(b, |cfg| cfg.priority_class_name.as_ref()).cloned(),
            security_context: pick(b, |cfg| cfg.pod_security_context.as_ref()).cloned(),
            termination_grace_period_seconds: Some(
                *pick(b, |cfg| cfg.termination_grace_period.as_ref()).unwrap_or(&DEFAULT_TERMINATION_GRACE_PERIOD),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Koperator's default `KAFKA_HEAP_OPTS`.
pub const DEFAULT_HEAP_OPTS: &str = "-Xmx2G -Xms2G";
/// Koperator's default `KAFKA_JVM_PERFORMANCE_OPTS`.
pub const DEFAULT_JVM_PERFORMANCE_OPTS: &str = "-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
     -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
     -Dsun.net.inetaddr.ttl=60";

/// The Kafka container's environment, merged as Koperator merges it: the operator's
/// `KAFKA_OPTS` (the JMX exporter agent) and, with the Cruise Control metrics reporter
/// (`classpath`), `CLASSPATH` with the extension jars first; then the user's `envs` (cluster, group,
/// broker, in that order): a plain name (or one from `valueFrom`) replaces the variable, a `+`
/// prefix prepends its value, a `+` suffix appends it (no separator is added); then
/// `KAFKA_HEAP_OPTS` and `KAFKA_JVM_PERFORMANCE_OPTS` from `kafkaHeapOpts`/`kafkaJvmPerfOpts`
/// (or their defaults when neither those fields nor `envs` set them); sorted by name; and in
/// KRaft mode `KAFKA_CLUSTER_ID` last, unless the user set it.
fn broker_env(
    user: &[&EnvVar],
    heap: Option<&str>,
    jvm: Option<&str>,
    cluster_id: Option<&str>,
    classpath: bool,
) -> Vec<EnvVar> {
    let plain = |n: &str, v: &str| EnvVar { name: n.into(), value: Some(v.into()), ..Default::default() };
    let mut env: BTreeMap<String, EnvVar> = BTreeMap::new();
    env.insert("KAFKA_OPTS".into(), plain("KAFKA_OPTS", &super::jmx::kafka_opts()));
    if classpath {
        env.insert("CLASSPATH".into(), plain("CLASSPATH", super::cruise_control::CLASSPATH));
    }
    for e in user {
        let name = e.name.trim();
        let value = e.value.clone().unwrap_or_default();
        let (key, prepend) = match (e.value_from.is_some(), name.strip_prefix('+'), name.strip_suffix('+')) {
            (false, Some(n), _) => (n, Some(true)),
            (false, None, Some(n)) => (n, Some(false)),
            _ => (name, None),
        };
        match (prepend, env.get_mut(key)) {
            (Some(true), Some(old)) => old.value = Some(value + old.value.as_deref().unwrap_or_default()),
            (Some(false), Some(old)) => old.value.get_or_insert_default().push_str(&value),
            _ => {
                env.insert(key.to_string(), EnvVar { name: key.to_string(), ..(*e).clone() });
            }
        }
    }
    for (name, set, default) in [
        ("KAFKA_HEAP_OPTS", heap, DEFAULT_HEAP_OPTS),
        ("KAFKA_JVM_PERFORMANCE_OPTS", jvm, DEFAULT_JVM_PERFORMANCE_OPTS),
    ] {
        if set.is_some() || !env.contains_key(name) {
            env.insert(name.into(), plain(name, set.unwrap_or(default)));
        }
    }
    let user_cluster_id = env.contains_key("KAFKA_CLUSTER_ID");
    let mut out: Vec<EnvVar> = env.into_values().collect();
    if let Some(id) = cluster_id.filter(|_| !user_cluster_id) {
        out.push(plain("KAFKA_CLUSTER_ID", id));
    }
    out
}

/// The broker's affinity: its own, else one broker per node (required with
/// `oneBrokerPerNode`, preferred otherwise), like Koperator.
fn affinity(c: &ValidatedCluster, b: &BrokerView<'_>) -> Affinity {
    if let Some(a) = pick(b, |cfg| cfg.affinity.as_ref()) {
        return a.clone();
    }
    let term = PodAffinityTerm {
        label_selector: Some(LabelSelector { match_labels: Some(cluster_labels(c)), ..Default::default() }),
        topology_key: "kubernetes.io/hostname".into(),
        ..Default::default()
    };
    let anti = if c.spec.one_broker_per_node {
        PodAntiAffinity { required_during_scheduling_ignored_during_execution: Some(vec![term]), ..Default::default() }
    } else {
        PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![WeightedPodAffinityTerm {
                weight: 100,
                pod_affinity_term: term,
            }]),
            ..Default::default()
        }
    };
    Affinity { pod_anti_affinity: Some(anti), ..Default::default() }
}

/// The ports of the cluster Services: every internal listener, and with Envoy in front of an
/// external listener that listener's port and the brokers' metrics port (Envoy's upstreams and
/// health checks go through these Services when they are not headless), as Koperator does.
fn listener_ports(c: &ValidatedCluster) -> Vec<ServicePort> {
    let port = |name: &str, port: i32| {
        let name = if name.starts_with("tcp-") { name.to_string() } else { format!("tcp-{name}") };
        ServicePort {
            name: Some(name),
            port,
            target_port: Some(IntOrString::Int(port)),
            protocol: Some("TCP".into()),
            ..Default::default()
        }
    };
    let lc = &c.spec.listeners_config;
    let mut out: Vec<ServicePort> =
        lc.internal_listeners.iter().map(|l| port(&l.common.name, l.common.container_port)).collect();
    let behind_envoy: Vec<_> = lc.external().iter().filter(|l| super::envoy::uses_envoy(&c.spec, l)).collect();
    out.extend(behind_envoy.iter().map(|l| port(&l.common.name, l.common.container_port)));
    if !behind_envoy.is_empty() {
        out.push(port(super::jmx::METRICS_PORT_NAME, super::jmx::METRICS_PORT));
    }
    out
}

/// Cluster Services: the headless Service, or the all-broker Service plus one per broker.
pub fn services(c: &ValidatedCluster) -> Vec<Service> {
    let annotations = c.spec.listeners_config.service_annotations.clone();
    let svc = |name: String, selector: BTreeMap<String, String>, headless: bool| {
        let mut m = meta(c, name, cluster_labels(c));
        m.annotations = annotations.clone();
        Service {
            metadata: m,
            spec: Some(ServiceSpec {
                selector: Some(selector),
                ports: Some(listener_ports(c)),
                cluster_ip: headless.then(|| "None".into()),
                publish_not_ready_addresses: headless.then_some(true),
                type_: Some("ClusterIP".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    };
    let mut out = if c.spec.headless_service_enabled {
        vec![svc(names::headless_service(c), cluster_labels(c), true)]
    } else {
        let mut v = vec![svc(names::all_broker_service(c), cluster_labels(c), false)];
        for b in brokers(c) {
            let mut sel = cluster_labels(c);
            sel.insert("brokerId".into(), b.broker.id.to_string());
            v.push(svc(names::broker(c, b.broker.id), sel, false));
        }
        v
    };
    out.extend(external_services(c));
    out
}

/// Per-broker Services of NodePort external listeners, and of LoadBalancer ones Envoy does not
/// serve (`ingressController: contour`), `<cluster>-<id>-<listener>` with one port
/// `broker-<id>` (Koperator's names): NodePort on `externalStartingPort + id` (Kubernetes picks
/// the port when it is 0 or -1), the broker's `nodePortExternalIP` as the Service's external
/// IP; LoadBalancer on the broker's external port. Envoy's objects are [`super::envoy`]'s;
/// Contour's are not rendered yet.
pub fn external_services(c: &ValidatedCluster) -> Vec<Service> {
    use crate::api::kafkacluster::AccessMethod;
    let mut out = Vec::new();
    for l in c.spec.listeners_config.external() {
        let method = l.access_method_or_default();
        if method == AccessMethod::ClusterIp || super::envoy::uses_envoy(&c.spec, l) {
            continue;
        }
        for b in brokers(c) {
            let id = b.broker.id;
            let mut sel = cluster_labels(c);
            sel.insert("brokerId".into(), id.to_string());
            let mut labels = cluster_labels(c);
            labels.insert("brokerId".into(), id.to_string());
            let mut m = meta(c, names::external_service(c, id, &l.common.name), labels);
            m.annotations = l.service.service_annotations.clone();
            let node_port = (method == AccessMethod::NodePort && !super::external::node_ports_assigned(l))
                .then(|| l.external_starting_port + id);
            let port = if method == AccessMethod::NodePort { l.common.container_port } else { l.broker_port(id) };
            let external_ips = (method == AccessMethod::NodePort)
                .then(|| super::external::node_port_external_ip(c, id, &l.common.name))
                .flatten()
                .map(|ip| vec![ip]);
            out.push(Service {
                metadata: m,
                spec: Some(ServiceSpec {
                    selector: Some(sel),
                    type_: Some(method.as_str().into()),
                    external_traffic_policy: l.service.external_traffic_policy.clone(),
                    external_ips,
                    ports: Some(vec![ServicePort {
                        name: Some(super::external::broker_port_name(id)),
                        port,
                        target_port: Some(IntOrString::Int(l.common.container_port)),
                        node_port,
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
    out
}

/// A `disruptionBudget.budget` (`1` or `20%`; `1` when unset) as a PDB value.
pub(crate) fn int_or_percent(budget: &Option<String>) -> IntOrString {
    let budget = budget.clone().unwrap_or_else(|| "1".into());
    budget.parse::<i32>().map(IntOrString::Int).unwrap_or(IntOrString::String(budget))
}

/// The PodDisruptionBudget from `disruptionBudget` (maxUnavailable = budget), if requested.
pub fn pdb(c: &ValidatedCluster) -> Option<PodDisruptionBudget> {
    let db = c.spec.disruption_budget.as_ref().filter(|d| d.create == Some(true))?;
    let value = int_or_percent(&db.budget);
    Some(PodDisruptionBudget {
        metadata: meta(c, names::pdb(c), cluster_labels(c)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(value),
            selector: Some(LabelSelector { match_labels: Some(cluster_labels(c)), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::KafkaCluster;
    use crate::api::kafkacluster::DisruptionBudget;
    use crate::rules::kafkacluster::fixtures::valid_kraft_spec;
    use crate::validated::must;

    fn cluster() -> KafkaCluster {
        let mut c = KafkaCluster::new("kafka", valid_kraft_spec());
        c.metadata.namespace = Some("team-a".into());
        c
    }

    #[test]
    fn pod_mounts_config_and_disks_and_exposes_listeners() {
        let c = must(&cluster());
        let views = brokers(&c);
        let p = broker_objects(&c, &views[1], "abc").pod;
        assert_eq!(p.metadata.name.as_deref(), Some("kafka-1"));
        let labels = p.metadata.labels.unwrap();
        assert_eq!(labels["brokerId"], "1");
        assert_eq!(labels["processRoles"], "broker_controller");
        let spec = p.spec.unwrap();
        let kafka = &spec.containers[0];
        let ports: Vec<_> = kafka.ports.as_ref().unwrap().iter().map(|p| p.name.clone().unwrap()).collect();
        assert_eq!(ports, ["tcp-internal", "tcp-controller", "metrics"]);
        let vols = spec.volumes.unwrap();
        assert_eq!(vols[1].persistent_volume_claim.as_ref().unwrap().claim_name, names::pvc(&c, 1, "/kafka-logs"));
        assert!(kafka.command.as_ref().unwrap()[2].contains("kafka-storage.sh format"));
        assert_eq!(spec.termination_grace_period_seconds, Some(120));
    }

    fn env_of(p: &Pod) -> Vec<(String, String)> {
        let kafka = &p.spec.as_ref().unwrap().containers[0];
        kafka.env.iter().flatten().map(|e| (e.name.clone(), e.value.clone().unwrap_or_default())).collect()
    }

    fn plain(name: &str, value: &str) -> EnvVar {
        EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() }
    }

    #[test]
    fn every_broker_runs_the_jmx_exporter_with_koperators_defaults() {
        let c = must(&cluster());
        let p = broker_objects(&c, &brokers(&c)[0], "abc").pod;
        let annotations = p.metadata.annotations.clone().unwrap();
        assert_eq!(annotations["prometheus.io/scrape"], "true");
        assert_eq!(annotations["prometheus.io/port"], "9020");
        let spec = p.spec.clone().unwrap();
        let init = spec.init_containers.as_ref().unwrap();
        assert_eq!(init.len(), 1);
        assert_eq!(init[0].name, "jmx-exporter");
        assert_eq!(init[0].image.as_deref(), Some("ghcr.io/adobe/koperator/jmx-javaagent:1.5.0"));
        assert_eq!(
            init[0].command.as_deref().unwrap(),
            ["cp", "/jmx_prometheus_javaagent.jar", "/opt/jmx-exporter/jmx_prometheus.jar"]
        );
        assert_eq!(init[0].volume_mounts.as_ref().unwrap()[0].mount_path, "/opt/jmx-exporter/");
        let kafka = &spec.containers[0];
        let env: BTreeMap<_, _> = env_of(&p).into_iter().collect();
        assert_eq!(
            env["KAFKA_OPTS"],
            "-javaagent:/opt/jmx-exporter/jmx_prometheus.jar=9020:/etc/jmx-exporter/config.yaml"
        );
        let metrics = kafka.ports.as_ref().unwrap().iter().find(|p| p.name.as_deref() == Some("metrics")).unwrap();
        assert_eq!((metrics.container_port, metrics.protocol.as_deref()), (9020, Some("TCP")));
        let vols = spec.volumes.as_ref().unwrap();
        let mounts = kafka.volume_mounts.as_ref().unwrap();
        let jar = vols.iter().find(|v| v.name == "jmx-jar-data").unwrap();
        assert!(jar.empty_dir.is_some());
        let config = vols.iter().find(|v| v.name == "jmx-exporter-config").unwrap();
        let source = config.config_map.as_ref().unwrap();
        assert_eq!((source.name.as_str(), source.default_mode), ("kafka-kafka-jmx-exporter", Some(0o644)));
        let mounted = |name: &str| mounts.iter().find(|m| m.name == name).map(|m| m.mount_path.as_str());
        assert_eq!(mounted("jmx-jar-data"), Some("/opt/jmx-exporter/"));
        assert_eq!(mounted("jmx-exporter-config"), Some("/etc/jmx-exporter/"));
        assert_eq!(mounts[0].name, "broker-config", "the broker's own config stays the first ConfigMap mount");

        let cm = super::super::jmx::config_map(&c);
        assert_eq!(cm.metadata.name.as_deref(), Some("kafka-kafka-jmx-exporter"));
        assert_eq!(cm.metadata.namespace.as_deref(), Some("team-a"));
        let labels = cm.metadata.labels.unwrap();
        assert_eq!((labels["app"].as_str(), labels["kafka_cr"].as_str()), ("kafka-jmx", "kafka"));
        assert_eq!(cm.data.unwrap()["config.yaml"], super::super::jmx::DEFAULT_KAFKA_CONFIG);
    }

    #[test]
    fn monitoring_config_sets_image_jar_and_exporter_config() {
        use crate::api::kafkacluster::MonitoringConfig;
        let mut kc = cluster();
        kc.spec.monitoring_config = Some(MonitoringConfig {
            jmx_image: Some("registry.example/jmx:2".into()),
            path_to_jar: Some("/opt/agent.jar".into()),
            kafka_jmx_exporter_config: Some("rules:\n- pattern: '.*'\n".into()),
            cc_jmx_exporter_config: None,
        });
        kc.spec.brokers[0].broker_config = Some(BrokerConfig {
            init_containers: Some(vec![Container { name: "zz-first".into(), ..Default::default() }]),
            broker_annotations: Some(BTreeMap::from([("prometheus.io/scrape".to_string(), "false".to_string())])),
            ..Default::default()
        });
        let c = must(&kc);
        let p = broker_objects(&c, &brokers(&c)[0], "abc").pod;
        let init = p.spec.as_ref().unwrap().init_containers.clone().unwrap();
        let names: Vec<&str> = init.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["zz-first", "jmx-exporter"], "the user's init containers keep their order and come first");
        assert_eq!(init[1].image.as_deref(), Some("registry.example/jmx:2"));
        assert_eq!(init[1].command.as_ref().unwrap()[1], "/opt/agent.jar");
        let annotations = p.metadata.annotations.unwrap();
        assert_eq!(annotations["prometheus.io/scrape"], "false", "the broker's own annotations win");
        assert_eq!(annotations["prometheus.io/port"], "9020");
        assert_eq!(super::super::jmx::config_map(&c).data.unwrap()["config.yaml"], "rules:\n- pattern: '.*'\n");

        // Empty strings are unset, as in Koperator.
        kc.spec.monitoring_config = Some(MonitoringConfig {
            jmx_image: Some(String::new()),
            kafka_jmx_exporter_config: Some(String::new()),
            ..Default::default()
        });
        let c = must(&kc);
        let p = broker_objects(&c, &brokers(&c)[1], "abc").pod;
        let init = p.spec.unwrap().init_containers.unwrap();
        assert_eq!(init[0].image.as_deref(), Some(super::super::jmx::DEFAULT_IMAGE));
        assert_eq!(
            super::super::jmx::config_map(&c).data.unwrap()["config.yaml"],
            super::super::jmx::DEFAULT_KAFKA_CONFIG
        );
    }

    #[test]
    fn envs_merge_as_in_koperator() {
        let agent = super::super::jmx::kafka_opts();
        let id = Some("CID");
        type Case<'a> = (&'a str, Vec<EnvVar>, Option<&'a str>, Option<&'a str>, Vec<(&'a str, String)>);
        let cases: Vec<Case> = vec![
            (
                "defaults, sorted by name, the cluster id last",
                vec![],
                None,
                None,
                vec![
                    ("KAFKA_HEAP_OPTS", DEFAULT_HEAP_OPTS.into()),
                    ("KAFKA_JVM_PERFORMANCE_OPTS", DEFAULT_JVM_PERFORMANCE_OPTS.into()),
                    ("KAFKA_OPTS", agent.clone()),
                    ("KAFKA_CLUSTER_ID", "CID".into()),
                ],
            ),
            (
                "a plain KAFKA_OPTS replaces the agent; a later one wins",
                vec![plain("KAFKA_OPTS", "-Da=1"), plain("KAFKA_OPTS", "-Db=2"), plain("A", "x")],
                None,
                None,
                vec![
                    ("A", "x".into()),
                    ("KAFKA_HEAP_OPTS", DEFAULT_HEAP_OPTS.into()),
                    ("KAFKA_JVM_PERFORMANCE_OPTS", DEFAULT_JVM_PERFORMANCE_OPTS.into()),
                    ("KAFKA_OPTS", "-Db=2".into()),
                    ("KAFKA_CLUSTER_ID", "CID".into()),
                ],
            ),
            (
                "+ prefix prepends, + suffix appends, no separator added; unknown names are set",
                vec![plain("+KAFKA_OPTS", "-Dfirst=1 "), plain("KAFKA_OPTS+", " -Dlast=1"), plain("NEW+", "v")],
                None,
                None,
                vec![
                    ("KAFKA_HEAP_OPTS", DEFAULT_HEAP_OPTS.into()),
                    ("KAFKA_JVM_PERFORMANCE_OPTS", DEFAULT_JVM_PERFORMANCE_OPTS.into()),
                    ("KAFKA_OPTS", format!("-Dfirst=1 {agent} -Dlast=1")),
                    ("NEW", "v".into()),
                    ("KAFKA_CLUSTER_ID", "CID".into()),
                ],
            ),
            (
                "heap from envs unless kafkaHeapOpts is set; the user's cluster id",
                vec![
                    plain("KAFKA_HEAP_OPTS", "-Xmx1G"),
                    plain("KAFKA_JVM_PERFORMANCE_OPTS", "-server"),
                    plain("KAFKA_CLUSTER_ID", "mine"),
                ],
                None,
                Some("-client"),
                vec![
                    ("KAFKA_CLUSTER_ID", "mine".into()),
                    ("KAFKA_HEAP_OPTS", "-Xmx1G".into()),
                    ("KAFKA_JVM_PERFORMANCE_OPTS", "-client".into()),
                    ("KAFKA_OPTS", agent.clone()),
                ],
            ),
        ];
        for (what, user, heap, jvm, want) in cases {
            let refs: Vec<&EnvVar> = user.iter().collect();
            let got: Vec<(String, String)> = broker_env(&refs, heap, jvm, id, false)
                .into_iter()
                .map(|e| (e.name, e.value.unwrap_or_default()))
                .collect();
            let want: Vec<(String, String)> = want.into_iter().map(|(n, v)| (n.to_string(), v)).collect();
            assert_eq!(got, want, "{what}");
        }
        // valueFrom replaces, even under a + name (Koperator does not append to a reference).
        let from = EnvVar { name: "KAFKA_OPTS".into(), value_from: Some(Default::default()), ..Default::default() };
        let env = broker_env(&[&from], None, None, None, false);
        let opts = env.iter().find(|e| e.name == "KAFKA_OPTS").unwrap();
        assert!(opts.value.is_none() && opts.value_from.is_some(), "{opts:?}");
        assert!(env.iter().all(|e| e.name != "KAFKA_CLUSTER_ID"), "ZooKeeper mode has no cluster id");
    }

    #[test]
    fn cluster_group_and_broker_envs_apply_in_that_order() {
        let mut kc = cluster();
        kc.spec.envs = Some(vec![plain("KAFKA_OPTS+", " -Dcluster=1")]);
        kc.spec.brokers[0].broker_config =
            Some(BrokerConfig { envs: Some(vec![plain("KAFKA_OPTS+", " -Dbroker=1")]), ..Default::default() });
        let c = must(&kc);
        let env: BTreeMap<_, _> = env_of(&broker_objects(&c, &brokers(&c)[0], "abc").pod).into_iter().collect();
        assert_eq!(env["KAFKA_OPTS"], format!("{} -Dcluster=1 -Dbroker=1", super::super::jmx::kafka_opts()));
        let env: BTreeMap<_, _> = env_of(&broker_objects(&c, &brokers(&c)[1], "abc").pod).into_iter().collect();
        assert_eq!(env["KAFKA_OPTS"], format!("{} -Dcluster=1", super::super::jmx::kafka_opts()));
        assert_eq!(env["KAFKA_CLUSTER_ID"], "abc");
    }

    #[test]
    fn config_change_changes_the_pod_hash() {
        let hash = |c: &KafkaCluster| {
            let c = must(c);
            broker_objects(&c, &brokers(&c)[0], "x").pod.metadata.annotations.unwrap()[CONFIG_HASH_ANNOTATION].clone()
        };
        let mut c = cluster();
        let h1 = hash(&c);
        c.spec.read_only_config = Some("num.partitions=7".into());
        let h2 = hash(&c);
        assert_ne!(h1, h2);
    }

    #[test]
    fn services_headless_or_per_broker() {
        let mut c = cluster();
        assert_eq!(services(&must(&c)).len(), 4, "all-broker + 3 per-broker");
        c.spec.headless_service_enabled = true;
        let s = services(&must(&c));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].spec.as_ref().unwrap().cluster_ip.as_deref(), Some("None"));
    }

    #[test]
    fn node_port_listener_gets_a_service_per_broker() {
        use crate::api::kafkacluster::AccessMethod;
        use crate::rules::kafkacluster::fixtures::external;
        let mut c = cluster();
        let mut l = external("external", 9094, 32000);
        l.access_method = Some(AccessMethod::NodePort);
        c.spec.listeners_config.external_listeners = Some(vec![l]);
        let ext = external_services(&must(&c));
        assert_eq!(ext.len(), 3);
        assert_eq!(ext[2].metadata.name.as_deref(), Some("kafka-2-external"));
        let port = &ext[2].spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
        assert_eq!(port.node_port, Some(32002));
        assert_eq!(ext[2].spec.as_ref().unwrap().type_.as_deref(), Some("NodePort"));
    }

    fn live_pvc(name: &str, broker: &str, mount_path: &str) -> PersistentVolumeClaim {
        let mut p = PersistentVolumeClaim::default();
        p.metadata.name = Some(name.into());
        p.metadata.labels = Some(BTreeMap::from([("brokerId".to_string(), broker.to_string())]));
        p.metadata.annotations = Some(BTreeMap::from([(MOUNT_PATH_ANNOTATION.to_string(), mount_path.to_string())]));
        p
    }

    #[test]
    fn an_existing_pvc_of_the_disk_is_kept_whatever_its_name() {
        let c = must(&cluster());
        let views = brokers(&c);
        let new_name = names::pvc(&c, 1, "/kafka-logs");
        let claims = |o: &BrokerObjects| -> Vec<String> {
            let vols = o.pod.spec.as_ref().unwrap().volumes.as_ref().unwrap();
            vols.iter().filter_map(|v| v.persistent_volume_claim.as_ref().map(|p| p.claim_name.clone())).collect()
        };
        // Made before names carried a hash (or by Koperator); another broker's and another
        // disk's PVCs are not taken.
        let live = [
            live_pvc("kafka-1-storage-kafka-logs", "1", "/kafka-logs/"),
            live_pvc("kafka-2-storage-kafka-logs", "2", "/kafka-logs"),
            live_pvc("kafka-1-storage-other", "1", "/other"),
        ];
        let mut o = broker_objects(&c, &views[1], "x");
        keep_existing_pvcs(1, &mut o.pod, &mut o.pvcs, &live);
        assert_eq!(o.pvcs[0].metadata.name.as_deref(), Some("kafka-1-storage-kafka-logs"));
        assert_eq!(claims(&o), ["kafka-1-storage-kafka-logs"]);
        // Both exist: today's name wins; nothing live: today's name.
        let both =
            [live_pvc("kafka-1-storage-kafka-logs", "1", "/kafka-logs"), live_pvc(&new_name, "1", "/kafka-logs")];
        let mut o = broker_objects(&c, &views[1], "x");
        keep_existing_pvcs(1, &mut o.pod, &mut o.pvcs, &both);
        assert_eq!(claims(&o), std::slice::from_ref(&new_name));
        let mut o = broker_objects(&c, &views[1], "x");
        keep_existing_pvcs(1, &mut o.pod, &mut o.pvcs, &[]);
        assert_eq!((o.pvcs[0].metadata.name.clone(), claims(&o)), (Some(new_name.clone()), vec![new_name]));
    }

    #[test]
    fn pvcs_and_pdb() {
        let mut c = cluster();
        let v = must(&c);
        let v = broker_objects(&v, &brokers(&v)[2], "x").pvcs;
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].metadata.annotations.as_ref().unwrap()[MOUNT_PATH_ANNOTATION], "/kafka-logs");
        assert!(pdb(&must(&c)).is_none());
        c.spec.disruption_budget = Some(DisruptionBudget { create: Some(true), budget: Some("20%".into()) });
        assert_eq!(pdb(&must(&c)).unwrap().spec.unwrap().max_unavailable, Some(IntOrString::String("20%".into())));
    }
}

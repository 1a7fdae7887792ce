//! The dereference step: reads everything live that the planner needs into a [`LiveState`] —
//! the cluster's Pods, ConfigMaps, PVCs, Services and PDB (those labelled as the cluster's, and
//! every object with a name the operator wants, labelled or not: the planner refuses to touch
//! the ones that are not its own), and Kafka's side (dynamic configs; the health snapshot only
//! while a restart is pending), and the release each Ready broker's JMX exporter reports
//! ([`exporter::Versions`]: asked once per running Pod). Only I/O, no decisions: what
//! to ask Kafka comes from [`plan::kafka_wants`](super::plan::kafka_wants).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::ListParams;
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use koperator_shared::api::cruisecontroloperation::{CruiseControlOperation, KAFKA_CR_LABEL};
use koperator_shared::api::{KafkaTopic, KafkaUser};
use koperator_shared::kafka::{self, LogDir};
use koperator_shared::render::tls;
use koperator_shared::render::{self, names::AdminAccessError};
use koperator_shared::validated::ValidatedCluster;

use super::Error;
use super::certificates::{self, LiveSecrets, PkiConfig};
use super::plan;
use crate::controller::Context;
use crate::controller::kube_err;
use crate::dynamic_config::{self, DynamicLive};
use crate::exporter;
use crate::rolling::{self, HealthReadError, HealthSnapshot};

/// What Kafka told the operator.
#[derive(Debug)]
pub enum KafkaState {
    /// Not asked: a broker Pod is missing or not Ready, so Kafka-side changes wait.
    NotAsked,
    /// The operator cannot talk to this cluster (no usable admin listener).
    NoAccess(AdminAccessError),
    /// Kafka did not answer.
    Unreachable(kafka::Error),
    /// Kafka answered.
    Reachable {
        /// Current dynamic broker configs.
        dynamic: DynamicLive,
        /// Availability, read only while a broker waits for a restart.
        health: Option<Result<HealthSnapshot, HealthReadError>>,
    },
}

/// Everything live about one KafkaCluster.
#[derive(Debug)]
pub struct LiveState {
    /// Broker ConfigMaps by name.
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// Broker PVCs by name.
    pub pvcs: BTreeMap<String, PersistentVolumeClaim>,
    /// Broker Pods by name.
    pub pods: BTreeMap<String, Pod>,
    /// The cluster's Services by name.
    pub services: BTreeMap<String, Service>,
    /// The cluster's PDB.
    pub pdb: Option<PodDisruptionBudget>,
    /// Cruise Control's Deployment by name (labelled `app=cruisecontrol`, or named as wanted).
    pub deployments: BTreeMap<String, Deployment>,
    /// The Cruise Control metrics topic's KafkaTopic by name (labelled with the cluster's name
    /// and namespace as Koperator labels it, or named as wanted).
    pub topics: BTreeMap<String, KafkaTopic>,
    /// Kafka's side.
    pub kafka: KafkaState,
    /// The cluster PKI's Secrets (CA, broker and operator certificates) that exist.
    pub secrets: LiveSecrets,
    /// The client certificates (`tls.crt`) of the cluster's KafkaUsers, read only while a CA
    /// rollover still trusts an old CA ([`certificates::Rollout::users`]).
    pub user_certificates: Option<Vec<String>>,
    /// Lifetimes of the certificates the operator issues.
    pub pki: PkiConfig,
    /// When this state was read (unix seconds), for certificate validity.
    pub now: u64,
    /// The release each Ready broker's JMX exporter reports (`kafka_server_app_info_version`),
    /// by broker id; a broker whose exporter did not answer is missing.
    pub versions: BTreeMap<i32, String>,
    /// The cluster's CruiseControlOperations (label `kafka_cr`) by name.
    pub operations: BTreeMap<String, CruiseControlOperation>,
    /// Partition replicas Kafka places on each node, read while a node removed from the spec
    /// is still there (`None`: not read, or Kafka did not answer).
    pub replicas: Option<BTreeMap<i32, usize>>,
    /// The log directories each broker reports, read while a disk was removed from the spec or
    /// waits to get partitions (`None`: not read; a broker that did not answer is missing).
    pub log_dirs: Option<BTreeMap<i32, Vec<LogDir>>>,
    /// Firing alerts with a command for this cluster, as the alert receiver holds them.
    pub alerts: i32,
    /// The Envoy ingress objects (labelled `app=envoyingress`, or named as wanted).
    pub envoy: EnvoyLive,
    /// Addresses of the Nodes the broker Pods run on, by Node name (read only when a NodePort
    /// listener advertises them).
    pub nodes: BTreeMap<String, Vec<(String, String)>>,
    /// Why Nodes could not be read.
    pub node_errors: Vec<String>,
    /// Contour's and the Gateway API's Services and routes.
    pub routes: super::routes::RoutesLive,
}

/// The Envoy ingress objects of one KafkaCluster, by name. Read only when the cluster has an
/// external listener or asks for unused ingress objects to be removed.
#[derive(Debug, Default)]
pub struct EnvoyLive {
    /// `envoy-config-…` ConfigMaps.
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// `envoy-…` Deployments.
    pub deployments: BTreeMap<String, Deployment>,
    /// `envoy-loadbalancer-…` Services.
    pub services: BTreeMap<String, Service>,
    /// `envoy-…-pdb` PodDisruptionBudgets.
    pub pdbs: BTreeMap<String, PodDisruptionBudget>,
}

/// The objects of kind `K` labelled with `selector`, and those named in `wanted` (read one by
/// one when the list did not return them: a same-named object without the labels).
async fn list<K>(ctx: &Context, ns: &str, selector: &str, wanted: &[String]) -> Result<BTreeMap<String, K>, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let items = api.list(&ListParams::default().labels(selector)).await.map_err(kube_err("list", K::kind(&())))?;
    let mut found: BTreeMap<String, K> = items.into_iter().map(|o| (o.name_any(), o)).collect();
    for name in wanted {
        if !found.contains_key(name)
            && let Some(o) = api.get_opt(name).await.map_err(kube_err("get", format!("{}/{name}", K::kind(&()))))?
        {
            found.insert(name.clone(), o);
        }
    }
    Ok(found)
}

/// Node name → its addresses as (type, address).
type NodeAddresses = BTreeMap<String, Vec<(String, String)>>;

/// The addresses of the Nodes `pods` run on, and why some could not be read (the operator may
/// not read Nodes). A Node that is gone or cannot be read is left out: its brokers do not
/// advertise a node address until it is.
async fn read_nodes(ctx: &Context, pods: &BTreeMap<String, Pod>) -> (NodeAddresses, Vec<String>) {
    let api: Api<Node> = Api::all(ctx.client.clone());
    let names: std::collections::BTreeSet<&String> =
        pods.values().filter_map(|p| p.spec.as_ref()?.node_name.as_ref()).collect();
    let (mut out, mut errors) = (BTreeMap::new(), Vec::new());
    for name in names {
        match api.get_opt(name).await {
            Ok(Some(node)) => {
                out.insert(name.clone(), super::external_facts::node_addresses(&node));
            }
            Ok(None) => {}
            Err(e) => errors.push(format!("Node {name}: {e}")),
        }
    }
    (out, errors)
}

/// The cluster's Envoy ingress objects, when it may have any to apply or remove.
async fn read_envoy(
    cluster: &ValidatedCluster,
    ctx: &Context,
    ns: &str,
    names: &plan::EnvoyNames,
) -> Result<EnvoyLive, Error> {
    let external = !cluster.spec.listeners_config.external().is_empty();
    if !external && cluster.spec.remove_unused_ingress_resources != Some(true) {
        return Ok(EnvoyLive::default());
    }
    let selector = format!("app=envoyingress,kafka_cr={}", cluster.name_any());
    Ok(EnvoyLive {
        config_maps: list(ctx, ns, &selector, &names.config_maps).await?,
        deployments: list(ctx, ns, &selector, &names.deployments).await?,
        services: list(ctx, ns, &selector, &names.services).await?,
        pdbs: list(ctx, ns, &selector, &names.pdbs).await?,
    })
}

/// Reads the live state of `cluster`.
pub async fn dereference(cluster: &ValidatedCluster, ctx: &Context) -> Result<LiveState, Error> {
    let ns = &cluster.namespace().unwrap_or_default();
    let selector = format!("app=kafka,kafka_cr={}", cluster.name_any());
    let pdb_api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), ns);
    let pdb_name = render::names::pdb(cluster);
    let names = plan::desired_names(cluster);
    // Cruise Control's objects carry Koperator's labels of their own: listed also when the
    // spec no longer deploys it, so that ours are removed.
    let cc_selector = format!("app=cruisecontrol,kafka_cr={}", cluster.name_any());
    let cc_config_maps = format!("app in (cruisecontrol,cruisecontrol-jmx),kafka_cr={}", cluster.name_any());
    let topic_selector = format!("app=kafka,clusterName={},clusterNamespace={ns}", cluster.name_any());
    let mut config_maps = list(ctx, ns, &selector, &names.config_maps).await?;
    config_maps.extend(list::<ConfigMap>(ctx, ns, &cc_config_maps, &[]).await?);
    let mut services = list(ctx, ns, &selector, &names.services).await?;
    services.extend(list::<Service>(ctx, ns, &cc_selector, &[]).await?);
    let mut live = LiveState {
        config_maps,
        pvcs: list(ctx, ns, &selector, &names.pvcs).await?,
        pods: list(ctx, ns, &selector, &names.pods).await?,
        services,
        pdb: pdb_api.get_opt(&pdb_name).await.map_err(kube_err("get", "PodDisruptionBudget"))?,
        deployments: list(ctx, ns, &cc_selector, &names.deployments).await?,
        topics: list(ctx, ns, &topic_selector, &names.topics).await?,
        kafka: KafkaState::NotAsked,
        secrets: read_secrets(ctx, ns, &secret_names(cluster)).await?,
        user_certificates: None,
        pki: ctx.pki,
        now: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        versions: BTreeMap::new(),
        operations: list(ctx, ns, &format!("{KAFKA_CR_LABEL}={}", cluster.name_any()), &[]).await?,
        replicas: None,
        log_dirs: None,
        alerts: ctx.alerts.count(ns, &cluster.name_any()),
        envoy: read_envoy(cluster, ctx, ns, &names.envoy).await?,
        nodes: BTreeMap::new(),
        node_errors: Vec::new(),
        routes: super::routes::read(cluster, ctx, ns).await?,
    };
    if render::external::advertises_node_addresses(cluster) {
        (live.nodes, live.node_errors) = read_nodes(ctx, &live.pods).await;
    }
    let port = u16::try_from(render::jmx::METRICS_PORT).expect("a port");
    let uid = cluster.uid().unwrap_or_default();
    live.versions = ctx.versions.read(&uid, &exporter_targets(&live.pods, &uid), port).await;
    if !certificates::old_cas(cluster, &live.secrets, live.now).is_empty() {
        live.user_certificates = Some(user_certificates(cluster, ctx).await?);
    }
    let wants = plan::kafka_wants(cluster, &live);
    if wants.configs || wants.health {
        live.kafka = read_kafka(cluster, ctx, wants).await;
    }
    if wants.replicas {
        live.replicas = read_replicas(cluster, ctx).await;
    }
    if wants.log_dirs {
        // Only Ready brokers are asked (one that is down would hold the reconcile up to the
        // request timeout); the others' disks wait.
        let ready: Vec<i32> = live
            .pods
            .values()
            .filter(|p| crate::apply::is_ours(*p, &uid) && plan::pod_ready(p))
            .filter_map(|p| p.labels().get("brokerId")?.parse().ok())
            .collect();
        live.log_dirs = read_log_dirs(cluster, ctx, &ready).await;
    }
    Ok(live)
}

/// The cluster's Ready broker Pods whose JMX exporter may be asked for the broker's release:
/// ours, labelled with a broker id, with an IP address. Each is known by its UID and its
/// Kafka container's image (what it runs cannot change without one of them changing).
fn exporter_targets(pods: &BTreeMap<String, Pod>, uid: &str) -> Vec<exporter::Target> {
    pods.values()
        .filter(|p| crate::apply::is_ours(*p, uid) && plan::pod_ready(p))
        .filter_map(|p| {
            let broker = p.labels().get("brokerId")?.parse().ok()?;
            let ip = p.status.as_ref()?.pod_ip.as_deref()?.parse().ok()?;
            let spec = p.spec.as_ref()?;
            let image = spec.containers.iter().find(|c| c.name == "kafka").and_then(|c| c.image.clone());
            Some(exporter::Target { broker, key: format!("{}/{}", p.uid()?, image.unwrap_or_default()), ip })
        })
        .collect()
}

/// The Secrets the planner reads: the cluster PKI's, those of the user's own and the admin
/// SCRAM credential's.
fn secret_names(cluster: &ValidatedCluster) -> Vec<String> {
    let mut names = certificates::secret_names(cluster);
    names.extend(super::own_certificates::secret_names(cluster));
    if render::sasl::admin_scram(cluster) {
        names.push(render::sasl::admin_secret(cluster));
    }
    names.sort();
    names.dedup();
    names
}

/// The Secrets named `names` that exist, read one by one (the operator may not list Secrets).
async fn read_secrets(ctx: &Context, ns: &str, names: &[String]) -> Result<LiveSecrets, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let mut found = BTreeMap::new();
    for name in names {
        if let Some(s) = api.get_opt(name).await.map_err(kube_err("get", format!("Secret/{name}")))? {
            found.insert(name.clone(), s);
        }
    }
    Ok(LiveSecrets(found))
}

/// The `tls.crt` of every KafkaUser of `cluster` (in the namespaces the operator watches) that
/// has one in its Secret.
async fn user_certificates(cluster: &ValidatedCluster, ctx: &Context) -> Result<Vec<String>, Error> {
    let users: Api<KafkaUser> = match &ctx.watch_namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let cluster_ns = cluster.namespace().unwrap_or_default();
    let mut certs = Vec::new();
    for user in users.list(&ListParams::default()).await.map_err(kube_err("list", "KafkaUser"))? {
        let ns = user.namespace().unwrap_or_default();
        let refers =
            user.spec.cluster_ref.name == cluster.name_any() && user.spec.cluster_ref.namespace_or(&ns) == cluster_ns;
        if !refers {
            continue;
        }
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
        let name = &user.spec.secret_name;
        let secret = secrets.get_opt(name).await.map_err(kube_err("get", format!("Secret/{name}")))?;
        let cert = secret.and_then(|s| String::from_utf8(s.data?.get(tls::TLS_CRT)?.0.clone()).ok());
        certs.extend(cert);
    }
    Ok(certs)
}

/// How many partition replicas Kafka's metadata places on each node (`None` when it cannot be
/// read: a removal then waits).
/// Partition replicas Kafka places on each node (a node with none is missing); `None` when
/// Kafka did not answer.
pub(crate) async fn read_replicas(cluster: &ValidatedCluster, ctx: &Context) -> Option<BTreeMap<i32, usize>> {
    let admin = ctx.kafka.admin(cluster).await.ok()?;
    let meta = admin.metadata(None).await.ok()?;
    let mut count = BTreeMap::new();
    for t in &meta.topics {
        if t.error.is_some() {
            return None;
        }
        for replica in t.partitions.iter().flat_map(|p| &p.replicas) {
            *count.entry(*replica).or_default() += 1;
        }
    }
    Some(count)
}

/// The log directories of each Ready broker in `ready`; a broker that does not answer is left
/// out (its disks wait).
async fn read_log_dirs(cluster: &ValidatedCluster, ctx: &Context, ready: &[i32]) -> Option<BTreeMap<i32, Vec<LogDir>>> {
    let admin = ctx.kafka.admin(cluster).await.ok()?;
    let mut out = BTreeMap::new();
    for id in render::broker_role_ids(cluster).into_iter().filter(|id| ready.contains(id)) {
        match admin.describe_log_dirs(id).await {
            Ok(dirs) => {
                out.insert(id, dirs);
            }
            Err(e) => tracing::debug!(broker = id, error = %e, "log directories not read"),
        }
    }
    Some(out)
}

async fn read_kafka(cluster: &ValidatedCluster, ctx: &Context, wants: plan::KafkaWants) -> KafkaState {
    let admin = match ctx.kafka.admin(cluster).await {
        Ok(a) => a,
        Err(e) => return KafkaState::NoAccess(e),
    };
    let kraft = cluster.spec.kraft;
    // Dynamic configs only when every broker is up to answer for its own (a broker that is
    // down and waits for a restart needs the health snapshot alone).
    let dynamic = match wants.configs {
        true => match dynamic_config::read(&admin, &render::broker_role_ids(cluster)).await {
            Ok(d) => d,
            Err(e) => return KafkaState::Unreachable(e),
        },
        false => Default::default(),
    };
    let health = match wants.health {
        true => Some(rolling::read_health(&admin, kraft).await),
        false => None,
    };
    KafkaState::Reachable { dynamic, health }
}

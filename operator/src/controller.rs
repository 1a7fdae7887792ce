//! Controller plumbing written once for every kind: the shared [`Context`], the finalizer
//! (kube-runtime's, a JSON patch with a `test` op), per-reconcile write counting, metrics with a
//! `controller` label, and an exponential error backoff that logs the object's identity once.
//! A kind plugs in by implementing [`Reconcile`].

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use kube::runtime::controller::{self, Action};
use kube::runtime::events::{EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, Event};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use koperator_shared::api::KafkaCluster;
use koperator_shared::api::common::ClusterReference;
use koperator_shared::rules::RuleConfig;

use crate::kafka_access::KafkaAccess;
use crate::metrics::{ControllerLabel, ErrorLabels, Metrics, ReconcileLabels};

/// What every controller shares.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Who reports Events (`koperator`, instance = the replica identity).
    pub reporter: Reporter,
    /// Rule settings (node-port range).
    pub rules: RuleConfig,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Admin clients of the clusters' Kafka.
    pub kafka: Arc<KafkaAccess>,
    /// Namespace watched; all when `None`.
    pub watch_namespace: Option<String>,
    /// Lifetimes of the cluster PKI's certificates.
    pub pki: crate::kafkacluster::certificates::PkiConfig,
    /// The Kafka release each running broker's JMX exporter reported.
    pub versions: crate::exporter::Versions,
    /// How Cruise Control is reached (the hosts file of out-of-cluster runs, timeouts).
    pub cruise_control: crate::cruise_control::ClientOptions,
    /// The firing alerts the alert receiver holds.
    pub alerts: crate::alerts::Store,
    /// Reconciles of one controller running at once (`--max-concurrent-reconciles`).
    pub concurrency: u16,
}

/// Default of `--max-concurrent-reconciles`: enough to overlap API round trips, few enough
/// that a thousand objects reconciled at once do not swamp the API server (and the operator's
/// own Lease renewals queued behind them).
pub const DEFAULT_CONCURRENT_RECONCILES: u16 = 32;

impl Context {
    /// A context for `client`; Events carry `identity` as their reporting instance.
    pub fn new(
        client: Client,
        identity: String,
        rules: RuleConfig,
        metrics: Arc<Metrics>,
        kafka: Arc<KafkaAccess>,
        watch_namespace: Option<String>,
    ) -> Self {
        let reporter = Reporter { controller: "koperator".into(), instance: Some(identity) };
        Context {
            client,
            reporter,
            rules,
            metrics,
            kafka,
            watch_namespace,
            pki: Default::default(),
            versions: Default::default(),
            cruise_control: Default::default(),
            alerts: Default::default(),
            concurrency: DEFAULT_CONCURRENT_RECONCILES,
        }
    }

    /// An `Api` over the watched namespace (or all namespaces).
    pub fn watched<K>(&self) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
    {
        match &self.watch_namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    /// The `K`s of every namespace whose objects may refer to `cluster`: the cluster's own and
    /// the ones its `allowed-namespaces` annotation names, every namespace for `*`. A
    /// namespace this operator may not read (403: the Role of a single-namespace install) is
    /// left out — objects there cannot be reconciled against this cluster by an operator that
    /// cannot read it either — and for `*` the watched namespace is read instead.
    pub async fn list_accepted<K>(&self, cluster: &KafkaCluster) -> Result<Vec<K>, KubeError>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + Clone + Debug + DeserializeOwned,
    {
        let forbidden = |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 403);
        let namespaced = |ns: &str| Api::<K>::namespaced(self.client.clone(), ns);
        let what = || format!("{}s", K::kind(&()));
        let Some(namespaces) = cluster.allowed_namespaces() else {
            return match Api::<K>::all(self.client.clone()).list(&Default::default()).await {
                Ok(l) => Ok(l.items),
                Err(e) if forbidden(&e) && self.watch_namespace.is_some() => {
                    let ns = self.watch_namespace.as_deref().unwrap_or_default();
                    Ok(namespaced(ns).list(&Default::default()).await.map_err(kube_err("list", what()))?.items)
                }
                Err(e) => Err(kube_err("list", what())(e)),
            };
        };
        let mut items = Vec::new();
        for ns in namespaces {
            match namespaced(&ns).list(&Default::default()).await {
                Ok(l) => items.extend(l.items),
                Err(e) if forbidden(&e) && self.watch_namespace.as_deref() != Some(ns.as_str()) => {
                    debug!(namespace = %ns, kind = K::kind(&()).as_ref(), "not readable here; left out of the ownership check");
                }
                Err(e) => return Err(kube_err("list", what())(e)),
            }
        }
        Ok(items)
    }

    /// Publishes an Event about `obj` (a failure to publish is logged, never fatal).
    ///
    /// Each call makes its own Event: kube-runtime's `Recorder` folds Events with the same
    /// reason about the same object into a series that keeps the *first* note, so a shared
    /// recorder would report "restarting broker 1" for every broker of a roll.
    pub async fn publish<K>(&self, obj: &K, type_: EventType, reason: &str, note: &str)
    where
        K: Resource<DynamicType = ()>,
    {
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        crate::status::publish(&recorder, obj, type_, reason, note).await
    }
}

/// The Kubernetes API writes of one reconcile (counted by the code that writes).
#[derive(Debug, Default)]
pub struct Writes(AtomicU64);

impl Writes {
    /// Counts one write when `wrote`.
    pub fn count(&self, wrote: bool) {
        if wrote {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The writes so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// An error with a stable category, for Event reasons and metric labels.
pub trait Categorized: std::error::Error + Send + Sync + 'static {
    /// A short CamelCase category from a closed set.
    fn category(&self) -> &'static str;
}

/// A failed Kubernetes API call, with what was being done to which object.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {object}: {source}")]
pub struct KubeError {
    /// What was being done (`apply`, `delete`, `list`, `patch status of`).
    pub action: &'static str,
    /// `Kind/name`, or the kind listed.
    pub object: String,
    /// The API error.
    #[source]
    pub source: kube::Error,
}

/// A mapper of a kube error while doing `action` on `object`.
pub fn kube_err(action: &'static str, object: impl Into<String>) -> impl FnOnce(kube::Error) -> KubeError {
    let object = object.into();
    move |source| KubeError { action, object, source }
}

impl Categorized for KubeError {
    /// The category of the API error, from its HTTP status.
    fn category(&self) -> &'static str {
        match &self.source {
            kube::Error::Api(s) if s.code == 409 => "Conflict",
            kube::Error::Api(s) if s.code == 403 => "Forbidden",
            kube::Error::Api(s) if s.code == 404 => "NotFound",
            kube::Error::Api(s) if s.code == 422 => "Rejected",
            _ => "KubeApi",
        }
    }
}

/// A kind that names a KafkaCluster (`spec.clusterRef`).
pub trait RefersToCluster: Resource<DynamicType = ()> {
    /// Its `spec.clusterRef`.
    fn cluster_ref(&self) -> &ClusterReference;

    /// Whether it names `kc`.
    fn refers_to(&self, kc: &KafkaCluster) -> bool {
        let own = self.meta().namespace.clone().unwrap_or_default();
        let r = self.cluster_ref();
        kc.meta().name.as_deref() == Some(r.name.as_str())
            && kc.meta().namespace.as_deref() == Some(r.namespace_or(&own))
    }

    /// The KafkaCluster it names, if that exists.
    fn cluster(&self, ctx: &Context) -> impl Future<Output = Result<Option<KafkaCluster>, KubeError>> + Send
    where
        Self: Sync,
    {
        async move {
            let own = self.meta().namespace.clone().unwrap_or_default();
            let r = self.cluster_ref();
            let ns = r.namespace_or(&own).to_string();
            Api::<KafkaCluster>::namespaced(ctx.client.clone(), &ns)
                .get_opt(&r.name)
                .await
                .map_err(kube_err("get", format!("KafkaCluster/{ns}/{}", r.name)))
        }
    }
}

/// A controller for `K` that also reconciles every `K` naming a KafkaCluster that changed.
pub fn controller_watching_clusters<K: Reconcile + RefersToCluster>(ctx: &Context, c: Controller<K>) -> Controller<K> {
    let store = c.store();
    c.watches(ctx.watched::<KafkaCluster>(), watcher::Config::default(), move |kc: KafkaCluster| {
        store
            .state()
            .into_iter()
            .filter(|o| o.refers_to(&kc))
            .map(|o| ObjectRef::from_obj(o.as_ref()))
            .collect::<Vec<_>>()
    })
}

/// A kind the operator reconciles.
pub trait Reconcile:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The `controller` label of the metrics and logs (`kafkacluster`).
    const CONTROLLER: &'static str;
    /// The finalizer that guards the Kafka-side state (Koperator's name).
    const FINALIZER: &'static str;
    /// The reconcile error.
    type Error: Categorized + From<KubeError>;

    /// Makes the world match the object.
    fn apply(
        obj: Arc<Self>,
        ctx: &Context,
        writes: &Writes,
    ) -> impl Future<Output = Result<Action, Self::Error>> + Send;

    /// Undoes what the operator did for the object before its finalizer is released.
    fn cleanup(
        obj: Arc<Self>,
        ctx: &Context,
        writes: &Writes,
    ) -> impl Future<Output = Result<Action, Self::Error>> + Send;
}

/// The error of one reconcile: the kind's own, or the finalizer patch's.
pub type Error<K> = finalizer::Error<<K as Reconcile>::Error>;

fn category<K: Reconcile>(e: &Error<K>) -> &'static str {
    match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e.category(),
        finalizer::Error::AddFinalizer(_) | finalizer::Error::RemoveFinalizer(_) => "FinalizerPatch",
        finalizer::Error::UnnamedObject => "InvalidObject",
        finalizer::Error::InvalidFinalizer => "InvalidFinalizer",
    }
}

/// Retry delays after consecutive failures of one object: 1 s, 2 s, 4 s... up to 5 minutes.
#[derive(Default)]
pub struct Backoff(Mutex<HashMap<(String, String), u32>>);

impl Backoff {
    const FIRST: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(300);

    fn key<K: Resource<DynamicType = ()>>(obj: &K) -> (String, String) {
        (obj.namespace().unwrap_or_default(), obj.name_any())
    }

    /// The delay before retrying `obj`, which just failed again.
    pub fn failed<K: Resource<DynamicType = ()>>(&self, obj: &K) -> Duration {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(Self::key(obj)).or_insert(0);
        *n = n.saturating_add(1);
        Self::FIRST.saturating_mul(1u32 << (*n - 1).min(16)).min(Self::MAX)
    }

    /// Forgets the failures of `obj` (it reconciled).
    pub fn succeeded<K: Resource<DynamicType = ()>>(&self, obj: &K) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&Self::key(obj));
    }
}

/// The objects whose last reconcile wrote to the API. kube-runtime hands a reconcile the object
/// from its watch cache, which may not show those writes yet (a requeue can fire before the
/// watch event of the operator's own status patch arrives): such an object is read again from
/// the API server first, so that no reconcile acts on a state older than its own writes (a
/// KafkaTopic that just created its topic must not see a status without `managedBy`).
#[derive(Default)]
struct WroteLast(Mutex<std::collections::HashSet<(String, String)>>);

impl WroteLast {
    fn set(&self, key: (String, String), wrote: bool) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if wrote {
            m.insert(key);
        } else {
            m.remove(&key);
        }
    }

    fn contains(&self, key: &(String, String)) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).contains(key)
    }
}

struct Runner {
    ctx: Arc<Context>,
    backoff: Backoff,
    wrote_last: WroteLast,
}

/// `cached`, or, when the last reconcile of it wrote, the object as the API server has it now
/// (`None`: it is gone). See [`WroteLast`].
async fn current<K: Reconcile>(cached: Arc<K>, api: &Api<K>, runner: &Runner) -> Result<Option<Arc<K>>, Error<K>> {
    if !runner.wrote_last.contains(&Backoff::key(cached.as_ref())) {
        return Ok(Some(cached));
    }
    match api.get_opt(&cached.name_any()).await {
        Ok(fresh) => Ok(fresh.map(Arc::new)),
        Err(e) => Err(finalizer::Error::ApplyFailed(
            kube_err("get", format!("{}/{}", K::kind(&()), cached.name_any()))(e).into(),
        )),
    }
}

async fn reconcile<K: Reconcile>(obj: Arc<K>, runner: Arc<Runner>) -> Result<Action, Error<K>> {
    let ctx = &runner.ctx;
    let started = Instant::now();
    let writes = Writes::default();
    let ns = obj.namespace().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let key = Backoff::key(obj.as_ref());
    let Some(obj) = current(obj, &api, &runner).await? else {
        runner.wrote_last.set(key, false);
        return Ok(Action::await_change());
    };
    // kube-runtime adds the finalizer before the first apply (a write of this reconcile).
    writes.count(obj.meta().deletion_timestamp.is_none() && !obj.finalizers().iter().any(|f| f == K::FINALIZER));
    let result = finalizer::finalizer(&api, K::FINALIZER, obj.clone(), |event| async {
        match event {
            Event::Apply(o) => K::apply(o, ctx, &writes).await,
            Event::Cleanup(o) => K::cleanup(o, ctx, &writes).await,
        }
    })
    .await;
    // ...and removes it once the cleanup succeeded.
    writes.count(
        result.is_ok() && obj.meta().deletion_timestamp.is_some() && obj.finalizers().iter().any(|f| f == K::FINALIZER),
    );
    let controller = K::CONTROLLER;
    let m = &ctx.metrics;
    m.duration.get_or_create(&ControllerLabel { controller }).observe(started.elapsed().as_secs_f64());
    m.writes.get_or_create(&ControllerLabel { controller }).inc_by(writes.get());
    let ok = result.is_ok();
    m.reconciles.get_or_create(&ReconcileLabels { controller, result: if ok { "ok" } else { "error" } }).inc();
    if ok {
        runner.backoff.succeeded(obj.as_ref());
    }
    runner.wrote_last.set(key, writes.get() > 0);
    debug!(controller, namespace = %ns, name = %obj.name_any(), writes = writes.get(), ok, "reconciled");
    result
}

fn error_policy<K: Reconcile>(obj: Arc<K>, err: &Error<K>, runner: Arc<Runner>) -> Action {
    let controller = K::CONTROLLER;
    let category = category::<K>(err);
    runner.ctx.metrics.errors.get_or_create(&ErrorLabels { controller, category }).inc();
    let retry = runner.backoff.failed(obj.as_ref());
    warn!(
        controller,
        namespace = %obj.namespace().unwrap_or_default(),
        name = %obj.name_any(),
        category,
        error = %err,
        retry_in = ?retry,
        "reconcile failed"
    );
    Action::requeue(retry)
}

/// Runs `controller` (built by the kind: what it owns and watches) until SIGTERM/ctrl-c.
pub async fn run<K: Reconcile>(controller: Controller<K>, ctx: Arc<Context>) {
    let runner = Arc::new(Runner { ctx, backoff: Backoff::default(), wrote_last: WroteLast::default() });
    controller
        .shutdown_on_signal()
        .run(reconcile::<K>, error_policy::<K>, runner)
        .for_each(|r| async move {
            match r {
                Ok(_) => {}
                // Already logged, with the object, by the error policy.
                Err(controller::Error::ReconcilerFailed(..)) => {}
                Err(e) => debug!(controller = K::CONTROLLER, error = %e, "controller event"),
            }
        })
        .await;
}

/// A controller for `K` over the watched namespace, running at most `ctx.concurrency`
/// reconciles at once.
pub fn controller<K: Reconcile>(ctx: &Context) -> Controller<K> {
    Controller::new(ctx.watched::<K>(), watcher::Config::default())
        .with_config(controller::Config::default().concurrency(ctx.concurrency))
}

#[cfg(test)]
mod tests {
    use super::*;
    use koperator_shared::api::KafkaTopic;

    #[test]
    fn topics_and_users_refer_to_their_cluster_by_name_and_namespace() {
        use koperator_shared::api::KafkaUser;
        let kc = |ns: &str| {
            let mut c = KafkaCluster::new("kafka", Default::default());
            c.metadata.namespace = Some(ns.into());
            c
        };
        let mut t = KafkaTopic::new("t", Default::default());
        t.metadata.namespace = Some("a".into());
        t.spec.cluster_ref.name = "kafka".into();
        assert!(t.refers_to(&kc("a")), "same namespace by default");
        assert!(!t.refers_to(&kc("b")));
        let mut u = KafkaUser::new("u", Default::default());
        u.metadata.namespace = Some("a".into());
        u.spec.cluster_ref = ClusterReference { name: "kafka".into(), namespace: Some("b".into()) };
        assert!(u.refers_to(&kc("b")) && !u.refers_to(&kc("a")));
    }

    #[test]
    fn backoff_doubles_per_failure_caps_and_resets() {
        let b = Backoff::default();
        let mut t = KafkaTopic::new("t", Default::default());
        t.metadata.namespace = Some("a".into());
        let delays: Vec<u64> = (0..12).map(|_| b.failed(&t).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        let mut other = t.clone();
        other.metadata.namespace = Some("b".into());
        assert_eq!(b.failed(&other).as_secs(), 1, "per object");
        b.succeeded(&t);
        assert_eq!(b.failed(&t).as_secs(), 1);
    }
}

//! Cached reads of KafkaClusters, KafkaTopics and KafkaUsers (kube-runtime reflectors), answering the
//! validating rules that need the API server without a request per admission. With a watched
//! namespace (single-namespace installs) they list and watch that namespace only, so the
//! webhook's Role needs no rights elsewhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use koperator_shared::api::{KafkaCluster, KafkaTopic, KafkaUser};
use koperator_shared::rules::kafkatopic::ClusterLookup;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use crate::admission::{LookupError, Lookups};
use crate::watch;

/// Reflector-backed [`Lookups`].
pub struct CachedLookups {
    clusters: Store<KafkaCluster>,
    topics: Store<KafkaTopic>,
    users: Store<KafkaUser>,
    clusters_ready: Arc<AtomicBool>,
    topics_ready: Arc<AtomicBool>,
    users_ready: Arc<AtomicBool>,
    watched: Option<String>,
}

fn reflect<K>(client: &Client, watched: Option<&str>) -> (Store<K>, Arc<AtomicBool>)
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let ready = Arc::new(AtomicBool::new(false));
    let (api, scope) = match watched {
        Some(ns) => (Api::<K>::namespaced(client.clone(), ns), format!("namespace {ns}")),
        None => (Api::<K>::all(client.clone()), "all namespaces".to_string()),
    };
    let stream = watcher(api, watcher::Config::default()).default_backoff().reflect(writer);
    tokio::spawn(watch::drive(format!("{} ({scope})", K::kind(&())), stream, |_| ()));
    let (r, flag) = (reader.clone(), ready.clone());
    tokio::spawn(async move {
        if r.wait_until_ready().await.is_ok() {
            flag.store(true, Ordering::SeqCst);
        }
    });
    (reader, ready)
}

impl CachedLookups {
    /// Starts watching `watched`, or every namespace when `None`.
    pub fn start(client: Client, watched: Option<String>) -> CachedLookups {
        let (clusters, clusters_ready) = reflect(&client, watched.as_deref());
        let (topics, topics_ready) = reflect(&client, watched.as_deref());
        let (users, users_ready) = reflect(&client, watched.as_deref());
        CachedLookups { clusters, topics, users, clusters_ready, topics_ready, users_ready, watched }
    }
}

impl Lookups for CachedLookups {
    fn cluster(&self, namespace: &str, name: &str) -> Result<ClusterLookup, LookupError> {
        if let Some(watched) = self.watched.as_ref().filter(|w| *w != namespace) {
            return Err(LookupError::NotWatched { namespace: namespace.to_string(), watched: watched.clone() });
        }
        if !self.clusters_ready.load(Ordering::SeqCst) {
            return Err(LookupError::NotSynced { kind: "KafkaCluster" });
        }
        Ok(match self.clusters.get(&ObjectRef::new(name).within(namespace)) {
            None => ClusterLookup::NotFound,
            Some(c) => ClusterLookup::Found { deleting: c.metadata.deletion_timestamp.is_some() },
        })
    }

    fn cluster_object(&self, namespace: &str, name: &str) -> Option<KafkaCluster> {
        self.clusters.get(&ObjectRef::new(name).within(namespace)).map(|c| (*c).clone())
    }

    fn topics_named(&self, topic: &str) -> Result<Vec<KafkaTopic>, LookupError> {
        if !self.topics_ready.load(Ordering::SeqCst) {
            return Err(LookupError::NotSynced { kind: "KafkaTopic" });
        }
        Ok(self.topics.state().iter().filter(|t| t.spec.name == topic).map(|t| (**t).clone()).collect())
    }

    fn users(&self) -> Result<Vec<KafkaUser>, LookupError> {
        if !self.users_ready.load(Ordering::SeqCst) {
            return Err(LookupError::NotSynced { kind: "KafkaUser" });
        }
        Ok(self.users.state().iter().map(|u| (**u).clone()).collect())
    }
}

//! Serving certificates: the resolver that swaps the served certificate atomically, and the
//! loops that keep it current — from the shared Secret (self-managed PKI, [`SecretSource`]) or
//! from files (cert-manager, [`FileSource`]) — and inject `caBundle` into the webhook
//! configurations this webhook owns, repairing drift as soon as a watch reports it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::pki::{self, PkiConfig, PkiState};
use crate::watch;

/// Key of the Secret holding the shared PKI state.
pub const STATE_KEY: &str = "state.json";

/// The certificate the TLS server presents; swapped without touching open connections.
#[derive(Default, Debug)]
pub struct ServedCert {
    current: RwLock<Option<(String, Arc<CertifiedKey>)>>,
}

impl ServedCert {
    /// Loads a PEM certificate chain and key; returns true when it differs from the served one.
    pub fn load(&self, cert_pem: &str, key_pem: &str) -> Result<bool> {
        if self.current.read().expect("lock").as_ref().is_some_and(|(c, _)| c == cert_pem) {
            return Ok(false);
        }
        let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_bytes()).collect::<Result<_, _>>()?;
        if certs.is_empty() {
            return Err(anyhow!("no certificate in the PEM data"));
        }
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())?
            .ok_or_else(|| anyhow!("no private key in the PEM data"))?;
        let signing =
            rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| anyhow!("unsupported key: {e}"))?;
        *self.current.write().expect("lock") =
            Some((cert_pem.to_string(), Arc::new(CertifiedKey::new(certs, signing))));
        Ok(true)
    }

    /// The PEM of the served certificate.
    pub fn pem(&self) -> Option<String> {
        self.current.read().expect("lock").as_ref().map(|(c, _)| c.clone())
    }
}

impl ResolvesServerCert for ServedCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().expect("lock").as_ref().map(|(_, k)| k.clone())
    }
}

/// Shared by the certificate loop and the HTTP handlers.
pub struct CertStatus {
    /// The served certificate.
    pub served: Arc<ServedCert>,
    /// True when a certificate is served and every owned configuration trusts its CA.
    pub ready: AtomicBool,
    /// Wakes the loop early (watch events).
    pub wake: Notify,
    /// The CA (PEM) that signed the served certificate, in the self-managed PKI.
    signing_ca: Mutex<Option<String>>,
}

impl CertStatus {
    /// A status with nothing served yet.
    pub fn new() -> Arc<CertStatus> {
        Arc::new(CertStatus {
            served: Arc::new(ServedCert::default()),
            ready: AtomicBool::new(false),
            wake: Notify::new(),
            signing_ca: Mutex::new(None),
        })
    }
}

/// The webhook configurations whose `caBundle` this webhook maintains.
#[derive(Clone, Debug, Default)]
pub struct OwnedConfigs {
    /// ValidatingWebhookConfiguration names.
    pub validating: Vec<String>,
    /// MutatingWebhookConfiguration names.
    pub mutating: Vec<String>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// Self-managed PKI kept in a Secret that all replicas share (optimistic concurrency on the
/// Secret's resourceVersion: whoever writes first wins, the others re-read).
pub struct SecretSource {
    /// Kubernetes client.
    pub client: Client,
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
    /// Lifetimes and names.
    pub pki: PkiConfig,
    /// Deployment (same namespace) that owns the Secret, so it goes when the webhook is
    /// uninstalled; `None` keeps it unowned.
    pub owner_deployment: Option<String>,
}

impl SecretSource {
    /// Owner reference to the webhook's Deployment, when configured and found.
    async fn owner(&self) -> Result<Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>> {
        let Some(name) = &self.owner_deployment else { return Ok(None) };
        let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        let Some(d) = api.get_opt(name).await.context("read the owning Deployment")? else {
            warn!(deployment = name, "the owning Deployment does not exist; the Secret stays unowned");
            return Ok(None);
        };
        Ok(Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: name.clone(),
            uid: d.metadata.uid.unwrap_or_default(),
            ..Default::default()
        }]))
    }

    /// Reads the Secret, applies [`pki::plan`], writes the result back; returns the state to
    /// serve (None after a write conflict: call again).
    async fn sync(&self) -> Result<Option<PkiState>> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let existing = api.get_opt(&self.name).await.context("read the certificate Secret")?;
        let current = existing
            .as_ref()
            .and_then(|s| s.data.as_ref()?.get(STATE_KEY))
            .and_then(|b| serde_json::from_slice(&b.0).ok());
        let Some(next) = pki::plan(current.as_ref(), now(), &self.pki)? else { return Ok(current) };
        let data = BTreeMap::from([
            (STATE_KEY.to_string(), ByteString(serde_json::to_vec(&next)?)),
            ("tls.crt".to_string(), ByteString(next.leaf.cert.clone().into_bytes())),
            ("tls.key".to_string(), ByteString(next.leaf.key.clone().into_bytes())),
            ("ca.crt".to_string(), ByteString(next.bundle_pem().into_bytes())),
        ]);
        let result = match existing {
            Some(mut s) => {
                s.data = Some(data);
                api.replace(&self.name, &PostParams::default(), &s).await.map(|_| ())
            }
            None => {
                let s = Secret {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        namespace: Some(self.namespace.clone()),
                        labels: Some(BTreeMap::from([("app.kubernetes.io/component".into(), "webhook".into())])),
                        owner_references: self.owner().await?,
                        ..Default::default()
                    },
                    type_: Some("kubernetes.io/tls".into()),
                    data: Some(data),
                    ..Default::default()
                };
                api.create(&PostParams::default(), &s).await.map(|_| ())
            }
        };
        match result {
            Ok(()) => {
                info!(
                    ca_not_after = next.ca.not_after,
                    leaf_not_after = next.leaf.not_after,
                    rollover = next.next_ca.is_some(),
                    "certificate state written"
                );
                Ok(Some(next))
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(None),
            Err(e) => Err(e).context("write the certificate Secret"),
        }
    }
}

/// Certificates mounted from files (e.g. by cert-manager), reloaded when they change.
pub struct FileSource {
    /// Serving certificate (PEM chain).
    pub cert: std::path::PathBuf,
    /// Its key.
    pub key: std::path::PathBuf,
    /// CA bundle to inject, if this webhook should inject one.
    pub ca: Option<std::path::PathBuf>,
}

/// Where the served certificate comes from.
pub enum Source {
    /// Self-managed, in a Secret.
    Secret(SecretSource),
    /// Mounted files.
    Files(FileSource),
}

/// Keeps the served certificate and the injected bundles current until the process ends.
pub struct CertLoop {
    /// Certificate source.
    pub source: Source,
    /// Client for injection (absent in file mode without injection).
    pub client: Option<Client>,
    /// Configurations to inject into.
    pub configs: OwnedConfigs,
    /// Regular check interval (watch events wake the loop earlier).
    pub interval: Duration,
    /// Shared status.
    pub status: Arc<CertStatus>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

impl CertLoop {
    /// Loads the initial certificate (so the server can start), then keeps everything current.
    pub async fn start(self) -> Result<()> {
        let mut attempt = 0;
        while self.status.served.pem().is_none() {
            if let Err(e) = self.tick().await {
                attempt += 1;
                warn!(error = format!("{e:#}"), attempt, "could not load a serving certificate yet");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        self.spawn_watches();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(self.interval) => {}
                    _ = self.status.wake.notified() => {}
                }
                if let Err(e) = self.tick().await {
                    warn!(error = format!("{e:#}"), "certificate maintenance failed; retrying");
                    self.status.ready.store(false, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        });
        Ok(())
    }

    /// One pass: source → served certificate → injected bundles → readiness.
    pub async fn tick(&self) -> Result<()> {
        let (cert, key, bundle, not_after) = match &self.source {
            Source::Secret(src) => {
                let mut state = None;
                for _ in 0..5 {
                    if let Some(s) = src.sync().await? {
                        state = Some(s);
                        break;
                    }
                }
                let s = state.ok_or_else(|| anyhow!("the certificate Secret kept changing under us"))?;
                (
                    s.leaf.cert.clone(),
                    s.leaf.key.clone(),
                    Some((s.bundle_pem(), s.ca.cert.clone())),
                    Some(s.leaf.not_after),
                )
            }
            Source::Files(f) => {
                let cert = std::fs::read_to_string(&f.cert).with_context(|| format!("read {}", f.cert.display()))?;
                let key = std::fs::read_to_string(&f.key).with_context(|| format!("read {}", f.key.display()))?;
                let ca = match &f.ca {
                    Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?),
                    None => None,
                };
                (cert, key, ca.map(|c| (c.clone(), c)), None)
            }
        };
        if self.status.served.load(&cert, &key)? {
            self.metrics.cert_reloads.inc();
            info!("serving a new certificate");
        }
        if let (Source::Secret(_), Some((_, signing_ca))) = (&self.source, &bundle) {
            let mut last = self.status.signing_ca.lock().expect("lock");
            if last.as_ref() != Some(signing_ca) {
                if last.is_some() {
                    self.metrics.ca_rollovers.inc();
                    info!("serving a certificate from a new CA");
                }
                *last = Some(signing_ca.clone());
            }
        }
        if let Some(not_after) = not_after {
            self.metrics.cert_expiry_seconds.set(not_after as i64 - now() as i64);
        }
        let injected = match (&self.client, &bundle) {
            (Some(client), Some((bundle, signing_ca))) => {
                let ok = self.inject(client, bundle).await?;
                ok && bundle.contains(signing_ca.trim())
            }
            _ => true,
        };
        self.status.ready.store(injected, Ordering::SeqCst);
        Ok(())
    }

    /// Makes every webhook of the owned configurations carry `bundle`; true when all exist.
    async fn inject(&self, client: &Client, bundle: &str) -> Result<bool> {
        let want = ByteString(bundle.as_bytes().to_vec());
        let validating = self
            .inject_kind::<ValidatingWebhookConfiguration>(client, &self.configs.validating, &want, |c| {
                c.webhooks.iter_mut().flatten().map(|w| &mut w.client_config).collect()
            })
            .await?;
        let mutating = self
            .inject_kind::<MutatingWebhookConfiguration>(client, &self.configs.mutating, &want, |c| {
                c.webhooks.iter_mut().flatten().map(|w| &mut w.client_config).collect()
            })
            .await?;
        Ok(validating && mutating)
    }

    /// Sets `want` as caBundle of every client config of the named configurations of kind `K`;
    /// true when all of them exist.
    async fn inject_kind<K>(
        &self,
        client: &Client,
        names: &[String],
        want: &ByteString,
        configs: impl Fn(&mut K) -> Vec<&mut WebhookClientConfig>,
    ) -> Result<bool>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::Serialize
            + serde::de::DeserializeOwned,
    {
        let api: Api<K> = Api::all(client.clone());
        let mut all_found = true;
        for name in names {
            let Some(mut c) = api.get_opt(name).await? else {
                all_found = false;
                continue;
            };
            let mut changed = false;
            for cc in configs(&mut c) {
                if cc.ca_bundle.as_ref() != Some(want) {
                    cc.ca_bundle = Some(want.clone());
                    changed = true;
                }
            }
            if changed {
                self.write(api.replace(name, &PostParams::default(), &c).await, name)?;
            }
        }
        Ok(all_found)
    }

    fn write<T>(&self, result: kube::Result<T>, name: &str) -> Result<()> {
        match result {
            Ok(_) => {
                self.metrics.ca_bundle_writes.inc();
                info!(configuration = name, "caBundle written");
                Ok(())
            }
            // Someone else changed it meanwhile; the watch wakes us to look again.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                self.status.wake.notify_one();
                Ok(())
            }
            Err(e) => Err(e).with_context(|| format!("write caBundle into {name}")),
        }
    }

    /// Wakes the loop on any change of the Secret or of the owned configurations.
    fn spawn_watches(&self) {
        let Some(client) = self.client.clone() else { return };
        fn wake<T>(status: Arc<CertStatus>) -> impl FnMut(T) {
            move |_| status.wake.notify_one()
        }
        for name in &self.configs.validating {
            let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
            let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
            let stream = watcher(api, cfg).default_backoff();
            let what = format!("ValidatingWebhookConfiguration {name}");
            tokio::spawn(watch::drive(what, stream, wake(self.status.clone())));
        }
        for name in &self.configs.mutating {
            let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
            let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
            let stream = watcher(api, cfg).default_backoff();
            let what = format!("MutatingWebhookConfiguration {name}");
            tokio::spawn(watch::drive(what, stream, wake(self.status.clone())));
        }
        if let Source::Secret(src) = &self.source {
            let api: Api<Secret> = Api::namespaced(client.clone(), &src.namespace);
            let cfg = watcher::Config::default().fields(&format!("metadata.name={}", src.name));
            let stream = watcher(api, cfg).default_backoff();
            let what = format!("Secret {}/{}", src.namespace, src.name);
            tokio::spawn(watch::drive(what, stream, wake(self.status.clone())));
        }
    }
}

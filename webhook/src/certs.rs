//! Serving certificates: the resolver that swaps the served certificate atomically, and the
//! loops that keep it current — from the shared Secret (self-managed PKI, [`SecretSource`]) or
//! from files (cert-manager, [`FileSource`]) — and inject `caBundle` into the webhook
//! configurations this webhook owns, repairing drift as soon as a watch reports it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::metrics::Metrics;
use crate::pki::{self, PkiConfig, PkiState};
use crate::watch;

/// Key of the Secret holding the shared PKI state.
pub const STATE_KEY: &str = "state.json";

/// Write attempts of the certificate Secret in one pass before giving up on conflicts.
const SECRET_ATTEMPTS: u32 = 5;

/// Why a certificate and its key cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// The certificate PEM data is malformed.
    #[error("malformed certificate PEM: {0}")]
    CertificatePem(#[source] pem::Error),
    /// The certificate PEM data holds no certificate.
    #[error("no certificate in the PEM data")]
    NoCertificate,
    /// The key PEM data is malformed.
    #[error("malformed private key PEM: {0}")]
    KeyPem(#[source] pem::Error),
    /// The key PEM data holds no private key.
    #[error("no private key in the PEM data")]
    NoKey,
    /// rustls cannot sign with the key.
    #[error("unsupported key: {0}")]
    UnsupportedKey(#[source] rustls::Error),
    /// The key is not the key of the certificate (the first of the chain): serving it would
    /// fail every handshake, so the last good certificate stays served.
    #[error("the private key is not the key of the certificate; put the certificate's own key next to it")]
    KeyMismatch,
}

impl PemError {
    /// Stable category for metric labels and logs.
    pub fn category(&self) -> &'static str {
        match self {
            PemError::CertificatePem(_) => "CertificatePemInvalid",
            PemError::NoCertificate => "CertificateMissing",
            PemError::KeyPem(_) => "KeyPemInvalid",
            PemError::NoKey => "KeyMissing",
            PemError::UnsupportedKey(_) => "KeyUnsupported",
            PemError::KeyMismatch => "KeyMismatch",
        }
    }
}

/// Why one pass of certificate maintenance failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The certificate Secret could not be read.
    #[error("cannot read the certificate Secret {namespace}/{name}: {source}")]
    ReadSecret {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The API error (boxed: it is large).
        #[source]
        source: Box<kube::Error>,
    },
    /// The certificate Secret could not be created or replaced (other than a conflict).
    #[error("cannot {action} the certificate Secret {namespace}/{name}: {source}")]
    WriteSecret {
        /// `create` or `replace`.
        action: &'static str,
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The API error (boxed: it is large).
        #[source]
        source: Box<kube::Error>,
    },
    /// Every write of the Secret in one pass met a concurrent change (other replicas).
    #[error("the certificate Secret {namespace}/{name} kept changing under us ({attempts} write conflicts in a row)")]
    SecretConflict {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// Writes tried.
        attempts: u32,
    },
    /// The Deployment meant to own the Secret could not be read.
    #[error("cannot read the owning Deployment {namespace}/{name} of the certificate Secret: {source}")]
    ReadOwner {
        /// Namespace of the Deployment.
        namespace: String,
        /// Name of the Deployment (`--secret-owner-deployment`).
        name: String,
        /// The API error (boxed: it is large).
        #[source]
        source: Box<kube::Error>,
    },
    /// The Secret's PKI state is not valid JSON of the expected shape. Logged, not returned:
    /// the state is rebuilt from scratch.
    #[error("the certificate state ({STATE_KEY}) in Secret {namespace}/{name} is unreadable: {source}")]
    StateUnreadable {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The PKI state could not be encoded.
    #[error("cannot encode the certificate state for Secret {namespace}/{name}: {source}")]
    EncodeState {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The encoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The PKI could not issue the certificates the Secret should hold.
    #[error("cannot issue the certificates for Secret {namespace}/{name}: {source}")]
    Pki {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// The PKI's error.
        #[source]
        source: pki::Error,
    },
    /// A mounted certificate file could not be read.
    #[error("cannot read the {what} file {}: {source}", path.display())]
    ReadFile {
        /// `certificate`, `key` or `CA bundle`.
        what: &'static str,
        /// The file (`--tls-cert-file`, `--tls-key-file`, `--ca-file`).
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The certificate and key from the source cannot be served.
    #[error("cannot serve the certificate from {origin}: {source}")]
    Serve {
        /// Where they came from (`Secret <ns>/<name>`, `files <cert> and <key>`).
        origin: String,
        /// What is wrong with them.
        #[source]
        source: PemError,
    },
    /// An owned webhook configuration could not be read.
    #[error("cannot read {kind} {name}: {source}")]
    ReadConfiguration {
        /// `ValidatingWebhookConfiguration` or `MutatingWebhookConfiguration`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The API error (boxed: it is large).
        #[source]
        source: Box<kube::Error>,
    },
    /// `caBundle` could not be written into an owned webhook configuration.
    #[error("cannot write caBundle into {kind} {name}: {source}")]
    WriteCaBundle {
        /// `ValidatingWebhookConfiguration` or `MutatingWebhookConfiguration`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The API error (boxed: it is large).
        #[source]
        source: Box<kube::Error>,
    },
}

impl Error {
    /// Stable category for metric labels and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Error::ReadSecret { .. } => "CertSecretRead",
            Error::WriteSecret { .. } => "CertSecretWrite",
            Error::SecretConflict { .. } => "CertSecretConflict",
            Error::ReadOwner { .. } => "CertSecretOwnerRead",
            Error::StateUnreadable { .. } => "CertStateUnreadable",
            Error::EncodeState { .. } => "CertStateEncode",
            Error::Pki { source, .. } => source.category(),
            Error::ReadFile { .. } => "CertFileRead",
            Error::Serve { source, .. } => source.category(),
            Error::ReadConfiguration { .. } => "WebhookConfigurationRead",
            Error::WriteCaBundle { .. } => "CaBundleWrite",
        }
    }
}

/// Parses a PEM certificate chain and its key, refusing a key that is not the certificate's.
fn parse_certified(
    cert_pem: &str,
    key_pem: &str,
) -> Result<(Vec<CertificateDer<'static>>, Arc<dyn rustls::sign::SigningKey>), PemError> {
    let certs: Vec<CertificateDer<'static>> = match CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect() {
        Ok(c) => c,
        Err(e) => return Err(PemError::CertificatePem(e)),
    };
    if certs.is_empty() {
        return Err(PemError::NoCertificate);
    }
    let key = match PrivateKeyDer::from_pem_slice(key_pem.as_bytes()) {
        Ok(k) => k,
        Err(pem::Error::NoItemsFound) => return Err(PemError::NoKey),
        Err(e) => return Err(PemError::KeyPem(e)),
    };
    let signing = rustls::crypto::ring::sign::any_supported_type(&key).map_err(PemError::UnsupportedKey)?;
    match CertifiedKey::new(certs.clone(), signing.clone()).keys_match() {
        Ok(()) => Ok((certs, signing)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => Err(PemError::KeyMismatch),
        // The key type cannot tell its public key: nothing to compare (rustls does the same).
        Err(_) => Ok((certs, signing)),
    }
}

/// Checks that `key_pem` is the key of the certificate `cert_pem` (a chain; the first counts).
pub fn check_pair(cert_pem: &str, key_pem: &str) -> Result<(), PemError> {
    parse_certified(cert_pem, key_pem).map(|_| ())
}

/// The certificate the TLS server presents; swapped without touching open connections.
#[derive(Default, Debug)]
pub struct ServedCert {
    /// Certificate PEM, key PEM, and what rustls serves.
    current: RwLock<Option<(String, String, Arc<CertifiedKey>)>>,
}

impl ServedCert {
    /// Loads a PEM certificate chain and key; returns true when it differs from the served one.
    /// Anything unusable (malformed, or a key that is not the certificate's) is refused and the
    /// served certificate stays.
    pub fn load(&self, cert_pem: &str, key_pem: &str) -> Result<bool, PemError> {
        if self.current.read().expect("lock").as_ref().is_some_and(|(c, k, _)| c == cert_pem && k == key_pem) {
            return Ok(false);
        }
        let (certs, signing) = parse_certified(cert_pem, key_pem)?;
        *self.current.write().expect("lock") =
            Some((cert_pem.to_string(), key_pem.to_string(), Arc::new(CertifiedKey::new(certs, signing))));
        Ok(true)
    }

    /// The PEM of the served certificate.
    pub fn pem(&self) -> Option<String> {
        self.current.read().expect("lock").as_ref().map(|(c, _, _)| c.clone())
    }
}

impl ResolvesServerCert for ServedCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().expect("lock").as_ref().map(|(_, _, k)| k.clone())
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
    async fn owner(
        &self,
    ) -> Result<Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>, Error> {
        let Some(name) = &self.owner_deployment else { return Ok(None) };
        let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        let read = api.get_opt(name).await;
        let Some(d) = read.map_err(|source| Error::ReadOwner {
            namespace: self.namespace.clone(),
            name: name.clone(),
            source: source.into(),
        })?
        else {
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
    async fn sync(&self) -> Result<Option<PkiState>, Error> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let existing = api.get_opt(&self.name).await.map_err(|source| Error::ReadSecret {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source: source.into(),
        })?;
        let current = existing.as_ref().and_then(|s| s.data.as_ref()?.get(STATE_KEY)).and_then(|b| {
            serde_json::from_slice(&b.0)
                .map_err(|source| {
                    let e =
                        Error::StateUnreadable { namespace: self.namespace.clone(), name: self.name.clone(), source };
                    warn!(error = %e, category = e.category(), "starting a new PKI in place of the unreadable state");
                })
                .ok()
        });
        let planned = pki::plan(current.as_ref(), now(), &self.pki).map_err(|source| Error::Pki {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        })?;
        let Some(next) = planned else { return Ok(current) };
        let state = serde_json::to_vec(&next).map_err(|source| Error::EncodeState {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        })?;
        let data = BTreeMap::from([
            (STATE_KEY.to_string(), ByteString(state)),
            ("tls.crt".to_string(), ByteString(next.leaf.cert.clone().into_bytes())),
            ("tls.key".to_string(), ByteString(next.leaf.key.clone().into_bytes())),
            ("ca.crt".to_string(), ByteString(next.bundle_pem().into_bytes())),
        ]);
        let (action, result) = match existing {
            Some(mut s) => {
                s.data = Some(data);
                ("replace", api.replace(&self.name, &PostParams::default(), &s).await.map(|_| ()))
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
                ("create", api.create(&PostParams::default(), &s).await.map(|_| ()))
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
            Err(source) => Err(Error::WriteSecret {
                action,
                namespace: self.namespace.clone(),
                name: self.name.clone(),
                source: source.into(),
            }),
        }
    }
}

/// Certificates mounted from files (e.g. by cert-manager), reloaded when they change.
pub struct FileSource {
    /// Serving certificate (PEM chain).
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// CA bundle to inject, if this webhook should inject one.
    pub ca: Option<PathBuf>,
}

fn read_file(what: &'static str, path: &std::path::Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::ReadFile { what, path: path.to_path_buf(), source })
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
    pub async fn start(self) {
        let mut attempt = 0;
        while self.status.served.pem().is_none() {
            if let Err(e) = self.tick().await {
                attempt += 1;
                warn!(error = %e, category = e.category(), attempt, "could not load a serving certificate yet");
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
                    warn!(error = %e, category = e.category(), "certificate maintenance failed; retrying");
                    self.status.ready.store(false, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        });
    }

    /// One pass: source → served certificate → injected bundles → readiness.
    pub async fn tick(&self) -> Result<(), Error> {
        let (cert, key, bundle, not_after, origin) = match &self.source {
            Source::Secret(src) => {
                let mut state = None;
                for _ in 0..SECRET_ATTEMPTS {
                    if let Some(s) = src.sync().await? {
                        state = Some(s);
                        break;
                    }
                }
                let s = state.ok_or_else(|| Error::SecretConflict {
                    namespace: src.namespace.clone(),
                    name: src.name.clone(),
                    attempts: SECRET_ATTEMPTS,
                })?;
                (
                    s.leaf.cert.clone(),
                    s.leaf.key.clone(),
                    Some((s.bundle_pem(), s.ca.cert.clone())),
                    Some(s.leaf.not_after),
                    format!("Secret {}/{}", src.namespace, src.name),
                )
            }
            Source::Files(f) => {
                let cert = read_file("certificate", &f.cert)?;
                let key = read_file("key", &f.key)?;
                let ca = f.ca.as_deref().map(|p| read_file("CA bundle", p)).transpose()?;
                let origin = format!("files {} and {}", f.cert.display(), f.key.display());
                (cert, key, ca.map(|c| (c.clone(), c)), None, origin)
            }
        };
        if self.status.served.load(&cert, &key).map_err(|source| Error::Serve { origin, source })? {
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
    async fn inject(&self, client: &Client, bundle: &str) -> Result<bool, Error> {
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
    ) -> Result<bool, Error>
    where
        K: kube::Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
            + k8s_openapi::Resource
            + Clone
            + std::fmt::Debug
            + serde::Serialize
            + serde::de::DeserializeOwned,
    {
        let api: Api<K> = Api::all(client.clone());
        let kind = K::KIND;
        let mut all_found = true;
        for name in names {
            let read = api.get_opt(name).await;
            let Some(mut c) =
                read.map_err(|source| Error::ReadConfiguration { kind, name: name.clone(), source: source.into() })?
            else {
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
                self.write(api.replace(name, &PostParams::default(), &c).await, kind, name)?;
            }
        }
        Ok(all_found)
    }

    fn write<T>(&self, result: kube::Result<T>, kind: &'static str, name: &str) -> Result<(), Error> {
        match result {
            Ok(_) => {
                self.metrics.ca_bundle_writes.inc();
                info!(kind, configuration = name, "caBundle written");
                Ok(())
            }
            // Someone else changed it meanwhile; the watch wakes us to look again.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                self.status.wake.notify_one();
                Ok(())
            }
            Err(source) => Err(Error::WriteCaBundle { kind, name: name.to_string(), source: source.into() }),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn issued() -> PkiState {
        let cfg = PkiConfig {
            ca_validity: Duration::from_secs(3000),
            leaf_validity: Duration::from_secs(300),
            propagation: Duration::from_secs(10),
            sans: vec!["webhook.koperator.svc".into()],
        };
        pki::plan(None, now(), &cfg).unwrap().unwrap()
    }

    #[test]
    fn garbage_pem_is_refused_with_its_category() {
        let s = issued();
        let served = ServedCert::default();
        let bad_base64 = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let cases = [
            ("not a PEM at all", s.leaf.key.as_str(), "CertificateMissing"),
            (bad_base64, s.leaf.key.as_str(), "CertificatePemInvalid"),
            (s.leaf.cert.as_str(), s.leaf.cert.as_str(), "KeyMissing"),
            (
                s.leaf.cert.as_str(),
                "-----BEGIN PRIVATE KEY-----\nZ2FyYmFnZQ==\n-----END PRIVATE KEY-----\n",
                "KeyUnsupported",
            ),
        ];
        for (cert, key, category) in cases {
            let e = served.load(cert, key).unwrap_err();
            assert_eq!(e.category(), category, "{e}");
            let e = Error::Serve { origin: "Secret koperator/certs".into(), source: e };
            assert_eq!(e.category(), category);
            assert!(e.to_string().starts_with("cannot serve the certificate from Secret koperator/certs: "), "{e}");
        }
        assert_eq!(served.pem(), None, "nothing served after refusals");
        assert!(served.load(&s.leaf.cert, &s.leaf.key).unwrap());
        assert!(!served.load(&s.leaf.cert, &s.leaf.key).unwrap(), "the same certificate again is no change");
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused_and_the_last_good_stays() {
        let (good, other) = (issued(), issued());
        let served = ServedCert::default();
        let e = served.load(&good.leaf.cert, &other.leaf.key).unwrap_err();
        assert_eq!(e.category(), "KeyMismatch", "{e}");
        assert_eq!(check_pair(&good.leaf.cert, &other.leaf.key).unwrap_err().category(), "KeyMismatch");
        assert_eq!(served.pem(), None, "a mismatched pair is never served");
        assert!(served.load(&good.leaf.cert, &good.leaf.key).unwrap());
        // The same certificate with another key, and another certificate with our key.
        assert_eq!(served.load(&good.leaf.cert, &other.leaf.key).unwrap_err().category(), "KeyMismatch");
        assert_eq!(served.load(&other.leaf.cert, &good.leaf.key).unwrap_err().category(), "KeyMismatch");
        assert_eq!(served.pem().as_deref(), Some(good.leaf.cert.as_str()), "the last good certificate stays");
        check_pair(&good.leaf.cert, &good.leaf.key).unwrap();
    }

    #[test]
    fn pki_errors_keep_their_category_and_name_the_secret() {
        let mut s = issued();
        s.ca.key = "garbage".into();
        let cfg = PkiConfig {
            ca_validity: Duration::from_secs(3000),
            leaf_validity: Duration::from_secs(300),
            propagation: Duration::from_secs(10),
            sans: vec!["other.svc".into()],
        };
        let source = pki::plan(Some(&s), now(), &cfg).unwrap_err();
        let e = Error::Pki { namespace: "koperator".into(), name: "certs".into(), source };
        assert_eq!(e.category(), "PkiCaKeyUnreadable");
        assert!(e.to_string().contains("Secret koperator/certs"), "{e}");
    }
}

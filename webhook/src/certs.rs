//! Serving certificates: the resolver that swaps the served certificate atomically, and the
//! loops that keep it current — from the shared Secret (self-managed PKI, [`SecretSource`]) or
//! from files (cert-manager, [`FileSource`]) — and inject `caBundle` into the webhook
//! configurations this webhook owns, repairing drift as soon as a watch reports it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

use crate::metrics::{CategoryLabels, Metrics};
use crate::pki::{self, PkiConfig, PkiState, Salvage};
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
    /// the state is rebuilt by [`pki::recover`], keeping the CAs the API server trusts.
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
    /// The Secret's PKI state decodes but does not hold together (tampered). Logged, not
    /// returned: the state is rebuilt by [`pki::recover`].
    #[error("the certificate state ({STATE_KEY}) in Secret {namespace}/{name} is inconsistent: {source}")]
    StateInconsistent {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// What does not hold together.
        #[source]
        source: pki::Inconsistency,
    },
    /// The Secret's `tls.crt`, `tls.key` or `ca.crt` is not what its state says. Logged, not
    /// returned: they are rewritten from the state (never trusted on their own).
    #[error("the {key} of Secret {namespace}/{name} does not match its certificate state; rewriting it")]
    SecretFieldMismatch {
        /// The data key.
        key: &'static str,
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
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
            Error::StateInconsistent { source, .. } => source.category(),
            Error::SecretFieldMismatch { .. } => "CertSecretFieldMismatch",
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

    /// The PEM of the served certificate and of its key.
    pub fn pair(&self) -> Option<(String, String)> {
        self.current.read().expect("lock").as_ref().map(|(c, k, _)| (c.clone(), k.clone()))
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
    /// Wakes the loop early (watch events).
    pub wake: Notify,
    /// The CA of the served certificate has been injected into every owned configuration at
    /// least once (or nothing is to be injected). Reset when a certificate from another CA is
    /// served.
    trusted_once: AtomicBool,
    /// Validity of the served certificate (unix seconds; 0 when none).
    not_before: AtomicU64,
    not_after: AtomicU64,
    /// The CA (PEM) that signed the served certificate, in the self-managed PKI.
    signing_ca: Mutex<Option<String>>,
    /// When this process first saw each CA of the shared bundle (self-managed PKI).
    first_seen: Mutex<BTreeMap<String, Instant>>,
}

impl CertStatus {
    /// A status with nothing served yet.
    pub fn new() -> Arc<CertStatus> {
        Arc::new(CertStatus {
            served: Arc::new(ServedCert::default()),
            wake: Notify::new(),
            trusted_once: AtomicBool::new(false),
            not_before: AtomicU64::new(0),
            not_after: AtomicU64::new(0),
            signing_ca: Mutex::new(None),
            first_seen: Mutex::new(BTreeMap::new()),
        })
    }

    /// Ready: a certificate is served, valid for longer than a safety margin (a tenth of its
    /// lifetime, at most a minute), and its CA was injected at least once. A failed pass of
    /// the certificate loop (API errors) does not change it; expiry does.
    pub fn ready(&self) -> bool {
        self.ready_at(now())
    }

    fn ready_at(&self, now: u64) -> bool {
        let (nb, na) = (self.not_before.load(Ordering::SeqCst), self.not_after.load(Ordering::SeqCst));
        let margin = (na.saturating_sub(nb) / 10).min(60);
        self.served.pem().is_some() && self.trusted_once.load(Ordering::SeqCst) && now + margin < na
    }

    /// Records the validity of the newly served certificate (the first of its chain).
    fn served_validity(&self, cert_pem: &str) {
        let (nb, na) = pki::split_pem(cert_pem).first().and_then(|c| pki::validity(c)).unwrap_or((0, 0));
        self.not_before.store(nb, Ordering::SeqCst);
        self.not_after.store(na, Ordering::SeqCst);
    }

    /// The certificate to keep serving instead of the state's leaf, with its CA: when the
    /// state's leaf comes from another CA than the served certificate, the served one is still
    /// valid, its CA is still in the bundle, and this process has not yet seen the new CA in
    /// the bundle for `propagation` (the API server may not trust it yet: a rebuilt state, or
    /// a rollover this process missed the start of).
    fn keep_served(&self, s: &PkiState, propagation: Duration) -> Option<(String, String, String)> {
        let mut seen = self.first_seen.lock().expect("lock");
        seen.retain(|ca, _| s.bundle.iter().any(|t| t.cert == *ca));
        for t in &s.bundle {
            seen.entry(t.cert.clone()).or_insert_with(Instant::now);
        }
        let served_ca = self.signing_ca.lock().expect("lock").clone()?;
        if served_ca == s.ca.cert
            || !self.served_valid_at(now())
            || !s.bundle.iter().any(|t| t.cert == served_ca)
            || seen.get(&s.ca.cert).is_none_or(|t| t.elapsed() >= propagation)
        {
            return None;
        }
        let (cert, key) = self.served.pair()?;
        info!(
            "keeping the served certificate until its successor's CA has been in the bundle for the propagation time"
        );
        Some((cert, key, served_ca))
    }

    /// True when the served certificate is still valid at `now`.
    fn served_valid_at(&self, now: u64) -> bool {
        self.served.pem().is_some() && now < self.not_after.load(Ordering::SeqCst)
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
    /// serve (None after a write conflict: call again). A state that is missing, unreadable or
    /// inconsistent is rebuilt by [`pki::recover`] from what the API server trusts today (see
    /// [`SecretSource::salvage`]); the Secret's own `ca.crt` is never a source of trust.
    async fn sync(
        &self,
        configs: &OwnedConfigs,
        status: &CertStatus,
        metrics: &Metrics,
    ) -> Result<Option<PkiState>, Error> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let existing = api.get_opt(&self.name).await.map_err(|source| Error::ReadSecret {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source: source.into(),
        })?;
        let data = existing.as_ref().and_then(|s| s.data.as_ref());
        let (namespace, name) = (self.namespace.clone(), self.name.clone());
        let decoded = match data.and_then(|d| d.get(STATE_KEY)) {
            None => Ok(None),
            Some(b) => match serde_json::from_slice::<PkiState>(&b.0) {
                Err(source) => Err(Error::StateUnreadable { namespace, name, source }),
                Ok(state) => match pki::check(&state) {
                    Err(source) => Err(Error::StateInconsistent { namespace, name, source }),
                    Ok(()) => Ok(Some(state)),
                },
            },
        };
        let now = now();
        let pki_error = |source| Error::Pki { namespace: self.namespace.clone(), name: self.name.clone(), source };
        let (current, planned) = match decoded {
            Ok(Some(current)) => {
                let planned = pki::plan(Some(&current), now, &self.pki).map_err(pki_error)?;
                // The served files must be the state's: repair them when they are not.
                let mismatch = planned.is_none()
                    && data.is_some_and(|d| {
                        let want = secret_data(&current, Vec::new());
                        ["tls.crt", "tls.key", "ca.crt"].into_iter().find(|k| d.get(*k) != want.get(*k)).is_some_and(
                            |key| {
                                let e = Error::SecretFieldMismatch {
                                    key,
                                    namespace: self.namespace.clone(),
                                    name: self.name.clone(),
                                };
                                warn!(error = %e, category = e.category(), "certificate Secret tampered");
                                metrics
                                    .cert_state_rejected
                                    .get_or_create(&CategoryLabels { category: e.category() })
                                    .inc();
                                true
                            },
                        )
                    });
                let planned = if mismatch { Some(current.clone()) } else { planned };
                (Some(current), planned)
            }
            lost => {
                if let Err(e) = &lost {
                    warn!(error = %e, category = e.category(), "certificate state not used; rebuilding it with an overlap window");
                    metrics.cert_state_rejected.get_or_create(&CategoryLabels { category: e.category() }).inc();
                }
                let salvage = self.salvage(configs, status).await?;
                let r = pki::recover(&salvage, now, &self.pki).map_err(pki_error)?;
                if r.kept > 0 && r.new_leaf_at_once {
                    warn!(
                        kept_cas = r.kept,
                        "no valid certificate to serve over the overlap window: serving one from the new CA at once"
                    );
                    metrics.new_ca_without_overlap.inc();
                } else if r.kept > 0 {
                    info!(kept_cas = r.kept, "new CA pending; the served certificate stays until it is trusted");
                }
                (None, Some(r.state))
            }
        };
        let Some(next) = planned else { return Ok(current) };
        let state = serde_json::to_vec(&next).map_err(|source| Error::EncodeState {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        })?;
        let data = secret_data(&next, state);
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

/// The Secret's data for `state` (`state_json`: its encoding; empty to leave it out).
fn secret_data(state: &PkiState, state_json: Vec<u8>) -> BTreeMap<String, ByteString> {
    let mut data = BTreeMap::from([
        ("tls.crt".to_string(), ByteString(state.leaf.cert.clone().into_bytes())),
        ("tls.key".to_string(), ByteString(state.leaf.key.clone().into_bytes())),
        ("ca.crt".to_string(), ByteString(state.bundle_pem().into_bytes())),
    ]);
    if !state_json.is_empty() {
        data.insert(STATE_KEY.to_string(), ByteString(state_json));
    }
    data
}

impl SecretSource {
    /// What the API server trusts today, for [`pki::recover`]: the CA certificates in the
    /// `caBundle` of every owned configuration (what it verifies our certificate with now), the
    /// CA of the certificate this process serves, and that certificate. Not the Secret's
    /// `ca.crt`: it sits next to the state that could not be used, so a tampered `ca.crt` must
    /// not bring in a CA (an empty injected bundle means nothing is trusted, so nothing needs
    /// an overlap). A configuration that cannot be read fails the pass: no state is written
    /// without knowing what is trusted.
    async fn salvage(&self, configs: &OwnedConfigs, status: &CertStatus) -> Result<Salvage, Error> {
        let mut trusted = Vec::new();
        let mut add = |bundle: Option<&ByteString>| {
            if let Some(b) = bundle {
                trusted.extend(pki::split_pem(&String::from_utf8_lossy(&b.0)));
            }
        };
        let validating: Api<ValidatingWebhookConfiguration> = Api::all(self.client.clone());
        for name in &configs.validating {
            let c = validating.get_opt(name).await.map_err(|source| Error::ReadConfiguration {
                kind: "ValidatingWebhookConfiguration",
                name: name.clone(),
                source: source.into(),
            })?;
            c.iter().flat_map(|c| c.webhooks.iter().flatten()).for_each(|w| add(w.client_config.ca_bundle.as_ref()));
        }
        let mutating: Api<MutatingWebhookConfiguration> = Api::all(self.client.clone());
        for name in &configs.mutating {
            let c = mutating.get_opt(name).await.map_err(|source| Error::ReadConfiguration {
                kind: "MutatingWebhookConfiguration",
                name: name.clone(),
                source: source.into(),
            })?;
            c.iter().flat_map(|c| c.webhooks.iter().flatten()).for_each(|w| add(w.client_config.ca_bundle.as_ref()));
        }
        trusted.extend(status.signing_ca.lock().expect("lock").clone());
        let served = status.served.pair().filter(|_| status.served_valid_at(now()));
        Ok(Salvage { trusted, served })
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
    /// A failed pass is logged and counted and changes nothing: the last good certificate
    /// stays served and readiness stays what it was ([`CertStatus::ready`]).
    pub async fn start(self) {
        let mut attempt = 0;
        while self.status.served.pem().is_none() {
            if let Err(e) = self.tick().await {
                attempt += 1;
                self.metrics.cert_maintenance_failures.get_or_create(&CategoryLabels { category: e.category() }).inc();
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
                    self.metrics
                        .cert_maintenance_failures
                        .get_or_create(&CategoryLabels { category: e.category() })
                        .inc();
                    warn!(
                        error = %e,
                        category = e.category(),
                        ready = self.status.ready(),
                        "certificate maintenance failed; the served certificate stays; retrying"
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        });
    }

    /// One pass: source → served certificate → injected bundles → readiness.
    pub async fn tick(&self) -> Result<(), Error> {
        let (cert, key, bundle, origin) = match &self.source {
            Source::Secret(src) => {
                let mut state = None;
                for _ in 0..SECRET_ATTEMPTS {
                    if let Some(s) = src.sync(&self.configs, &self.status, &self.metrics).await? {
                        state = Some(s);
                        break;
                    }
                }
                let s = state.ok_or_else(|| Error::SecretConflict {
                    namespace: src.namespace.clone(),
                    name: src.name.clone(),
                    attempts: SECRET_ATTEMPTS,
                })?;
                let origin = format!("Secret {}/{}", src.namespace, src.name);
                let bundle = s.bundle_pem();
                match self.status.keep_served(&s, src.pki.propagation) {
                    Some((cert, key, ca)) => (cert, key, Some((bundle, ca)), origin),
                    None => (s.leaf.cert.clone(), s.leaf.key.clone(), Some((bundle, s.ca.cert.clone())), origin),
                }
            }
            Source::Files(f) => {
                let cert = read_file("certificate", &f.cert)?;
                let key = read_file("key", &f.key)?;
                let ca = f.ca.as_deref().map(|p| read_file("CA bundle", p)).transpose()?;
                let origin = format!("files {} and {}", f.cert.display(), f.key.display());
                (cert, key, ca.map(|c| (c.clone(), c)), origin)
            }
        };
        if self.status.served.load(&cert, &key).map_err(|source| Error::Serve { origin, source })? {
            self.metrics.cert_reloads.inc();
            self.status.served_validity(&cert);
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
                // Not ready on this CA's account until it is injected.
                self.status.trusted_once.store(false, Ordering::SeqCst);
            }
        }
        let not_after = self.status.not_after.load(Ordering::SeqCst);
        self.metrics.cert_expiry_seconds.set(not_after as i64 - now() as i64);
        let injected = match (&self.client, &bundle) {
            (Some(client), Some((bundle, signing_ca))) => {
                let ok = self.inject(client, bundle).await?;
                ok && bundle.contains(signing_ca.trim())
            }
            _ => true,
        };
        if injected {
            self.status.trusted_once.store(true, Ordering::SeqCst);
        }
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

    /// A status serving the leaf of `s`, its CA recorded, injected once when `trusted`.
    fn serving(s: &PkiState, trusted: bool) -> Arc<CertStatus> {
        let status = CertStatus::new();
        assert!(status.served.load(&s.leaf.cert, &s.leaf.key).unwrap());
        status.served_validity(&s.leaf.cert);
        *status.signing_ca.lock().unwrap() = Some(s.ca.cert.clone());
        status.trusted_once.store(trusted, Ordering::SeqCst);
        status
    }

    #[test]
    fn readiness_follows_the_served_certificate_not_the_last_call() {
        let s = issued();
        let (nb, na) = (s.leaf.not_before, s.leaf.not_after);
        let margin = ((na - nb) / 10).min(60);
        let cases = [
            ("nothing served", CertStatus::new(), now(), false),
            ("served, CA never injected", serving(&s, false), now(), false),
            ("served and injected", serving(&s, true), now(), true),
            ("just outside the safety margin", serving(&s, true), na - margin - 1, true),
            ("within the safety margin", serving(&s, true), na - margin, false),
            ("expired", serving(&s, true), na + 1, false),
        ];
        for (name, status, at, want) in cases {
            assert_eq!(status.ready_at(at), want, "{name}");
        }
    }

    #[test]
    fn a_leaf_from_a_ca_not_yet_trusted_long_enough_is_not_served() {
        let c = PkiConfig {
            ca_validity: Duration::from_secs(3000),
            leaf_validity: Duration::from_secs(300),
            propagation: Duration::from_secs(10),
            sans: vec!["webhook.koperator.svc".into()],
        };
        let old = pki::plan(None, now(), &c).unwrap().unwrap();
        // The shared state now comes from a new CA, with the old one still in the bundle (a
        // rebuilt state, or a promotion this process did not see coming).
        let rebuilt =
            pki::recover(&Salvage { trusted: vec![old.ca.cert.clone()], served: None }, now(), &c).unwrap().state;
        let mut dropped = rebuilt.clone();
        dropped.bundle.retain(|t| t.cert != old.ca.cert);
        type Setup = fn(&CertStatus, &PkiState);
        let cases: [(&str, &PkiState, Setup, bool); 5] = [
            ("new CA just seen", &rebuilt, |_, _| {}, true),
            (
                "new CA seen for the propagation time",
                &rebuilt,
                |st, s| {
                    st.first_seen.lock().unwrap().insert(s.ca.cert.clone(), Instant::now() - Duration::from_secs(10));
                },
                false,
            ),
            ("served CA left the bundle", &dropped, |_, _| {}, false),
            ("served certificate expired", &rebuilt, |st, _| st.not_after.store(now() - 1, Ordering::SeqCst), false),
            ("same CA (a renewal)", &old, |_, _| {}, false),
        ];
        for (name, state, setup, keep) in cases {
            let status = serving(&old, true);
            setup(&status, state);
            let kept = status.keep_served(state, c.propagation);
            assert_eq!(kept.is_some(), keep, "{name}");
            if let Some((cert, key, ca)) = kept {
                assert_eq!(
                    (cert, key, ca),
                    (old.leaf.cert.clone(), old.leaf.key.clone(), old.ca.cert.clone()),
                    "{name}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_failed_pass_keeps_the_certificate_and_readiness() {
        let s = issued();
        let status = serving(&s, true);
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let metrics = Arc::new(Metrics::new());
        CertLoop {
            source: Source::Secret(SecretSource {
                client: client.clone(),
                namespace: "koperator".into(),
                name: "certs".into(),
                pki: PkiConfig {
                    ca_validity: Duration::from_secs(3000),
                    leaf_validity: Duration::from_secs(300),
                    propagation: Duration::from_secs(10),
                    sans: vec!["webhook.koperator.svc".into()],
                },
                owner_deployment: None,
            }),
            client: Some(client),
            configs: OwnedConfigs::default(),
            interval: Duration::from_millis(50),
            status: status.clone(),
            metrics: metrics.clone(),
        }
        .start()
        .await;
        let failures =
            || metrics.cert_maintenance_failures.get_or_create(&CategoryLabels { category: "CertSecretRead" }).get();
        let deadline = Instant::now() + Duration::from_secs(10);
        while failures() < 2 {
            assert!(Instant::now() < deadline, "the loop never failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(status.ready(), "a failed pass made the webhook unready");
        assert_eq!(status.served.pem().as_deref(), Some(s.leaf.cert.as_str()));
    }
}

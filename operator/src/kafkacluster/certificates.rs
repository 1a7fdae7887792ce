//! The cluster PKI (`listenersConfig.sslSecrets`): which certificates a KafkaCluster needs, the
//! pure decision of what to issue now ([`plan`]), and issuing it ([`issue`]).
//!
//! - The CA lives in the Secret `sslSecrets.tlsSecretName` under Koperator's keys `caCert` and
//!   `caKey`. With `create: true` the operator creates it (owned by the KafkaCluster) when it
//!   does not exist; otherwise the user puts it there. A CA that is missing, expired, not a CA
//!   or whose key does not match is reported (`Degraded/CertificateError`) and never replaced.
//! - Each broker gets `<cluster>-<id>-server-certificate` (server and client use: its listeners
//!   and its own connections to other brokers and controllers), the operator gets
//!   `<cluster>-controller` (client use). Both are owned by the KafkaCluster and reissued when
//!   missing, not from the current CA, not matching their key, with other names, or past two
//!   thirds of their lifetime.
//! - A broker Pod is created only once its certificate exists, and carries the certificate's
//!   fingerprint, so a reissued certificate reaches the broker through the health-gated roll.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use koperator_shared::pki::{self, KeyAndCert, LeafSpec, renew_at};
use koperator_shared::render::{self, tls};
use koperator_shared::validated::ValidatedCluster;

use crate::apply::is_ours;

/// Lifetimes of the certificates the operator issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PkiConfig {
    /// Lifetime of a CA the operator creates.
    pub ca_validity: Duration,
    /// Lifetime of broker and operator certificates.
    pub leaf_validity: Duration,
}

impl Default for PkiConfig {
    fn default() -> Self {
        PkiConfig {
            ca_validity: Duration::from_secs(10 * 365 * 24 * 3600),
            leaf_validity: Duration::from_secs(365 * 24 * 3600),
        }
    }
}

/// Live Secrets by name, as read for the PKI. `Debug` prints names and keys, never values.
#[derive(Clone, Default)]
pub struct LiveSecrets(pub BTreeMap<String, Secret>);

impl std::fmt::Debug for LiveSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: BTreeMap<&String, Vec<&String>> =
            self.0.iter().map(|(n, s)| (n, s.data.iter().flat_map(|d| d.keys()).collect())).collect();
        f.debug_tuple("LiveSecrets").field(&keys).finish()
    }
}

impl LiveSecrets {
    /// The text (UTF-8) under `key` of Secret `secret`, when both exist.
    pub fn text(&self, secret: &str, key: &str) -> Option<String> {
        let data = self.0.get(secret)?.data.as_ref()?;
        String::from_utf8(data.get(key)?.0.clone()).ok()
    }
}

/// What a certificate Secret holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The cluster CA (`caCert`, `caKey`).
    Ca,
    /// Broker `id`'s server and client certificate (with a PEM keystore).
    Broker(i32),
    /// The operator's client certificate.
    Operator,
}

/// One certificate to issue now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    /// The Secret it goes to.
    pub secret: String,
    /// What it is.
    pub kind: Kind,
    /// What it is issued for (`None` for the CA).
    pub spec: Option<LeafSpec>,
    /// Why now (`missing`, `renewal due`...).
    pub reason: String,
}

/// What the PKI needs this reconcile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertPlan {
    /// Certificates to issue.
    pub orders: Vec<Order>,
    /// Problems only the user can fix (a missing or broken CA, a foreign Secret).
    pub problems: Vec<String>,
    /// Fingerprint of each broker's current certificate; a broker without one waits.
    pub broker_fingerprints: BTreeMap<i32, String>,
    /// Earliest time (unix seconds) a certificate is due for renewal.
    pub next_renewal: Option<u64>,
}

/// Every Secret the PKI of `cluster` reads: the CA, the brokers', the operator's.
pub fn secret_names(cluster: &ValidatedCluster) -> Vec<String> {
    if !tls::enabled(cluster) {
        return Vec::new();
    }
    let mut names: Vec<String> = tls::ca_secret(cluster).into_iter().map(String::from).collect();
    names.extend(cluster.spec.brokers.iter().map(|b| tls::broker_secret(cluster, b.id)));
    names.push(tls::operator_secret(cluster));
    names
}

/// The leaf certificates `cluster` needs, by Secret.
fn wanted(cluster: &ValidatedCluster, cfg: &PkiConfig) -> Vec<(String, Kind, LeafSpec)> {
    let mut out: Vec<(String, Kind, LeafSpec)> = render::brokers(cluster)
        .iter()
        .map(|b| {
            let id = b.broker.id;
            let spec = LeafSpec {
                common_name: tls::broker_common_name(cluster),
                dns_names: tls::broker_dns_names(cluster, id),
                server: true,
                client: true,
                validity: cfg.leaf_validity,
            };
            (tls::broker_secret(cluster, id), Kind::Broker(id), spec)
        })
        .collect();
    let operator = LeafSpec {
        common_name: tls::operator_common_name(cluster),
        dns_names: Vec::new(),
        server: false,
        client: true,
        validity: cfg.leaf_validity,
    };
    out.push((tls::operator_secret(cluster), Kind::Operator, operator));
    out
}

/// Why the CA in `secrets` cannot be used, or the CA.
fn read_ca(cluster: &ValidatedCluster, secrets: &LiveSecrets, now: u64) -> Result<Option<KeyAndCert>, String> {
    let name = tls::ca_secret(cluster).unwrap_or_default();
    if !secrets.0.contains_key(name) {
        return Ok(None);
    }
    let (Some(cert), Some(key)) = (secrets.text(name, tls::CA_CERT), secrets.text(name, tls::CA_KEY)) else {
        return Err(format!(
            "Secret {name} has no {} and {} (PEM): put the CA certificate and its key there",
            tls::CA_CERT,
            tls::CA_KEY
        ));
    };
    // caCert may hold a chain (intermediates, then the root): the first certificate signs.
    let chain = pki::split_pem(&cert);
    let Some(first) = chain.first() else {
        return Err(format!("Secret {name}: {} holds no PEM certificate", tls::CA_CERT));
    };
    if !pki::is_ca(first) && chain.len() == 1 {
        return Err(format!("Secret {name}: {} is not a self-signed CA certificate", tls::CA_CERT));
    }
    if !pki::key_matches(first, &key) {
        return Err(format!("Secret {name}: {} is not the key of the certificate in {}", tls::CA_KEY, tls::CA_CERT));
    }
    match pki::validity(first) {
        Some((nb, na)) if nb <= now + 300 && now < na => Ok(Some(KeyAndCert { cert: first.clone(), key })),
        _ => Err(format!("Secret {name}: the CA certificate is not valid now; put a valid CA there")),
    }
}

/// What to issue for `cluster` given its live Secrets at `now` (unix seconds). Pure.
pub fn plan(cluster: &ValidatedCluster, secrets: &LiveSecrets, now: u64, cfg: &PkiConfig) -> CertPlan {
    let mut out = CertPlan::default();
    if !tls::enabled(cluster) {
        return out;
    }
    let uid = cluster.uid().unwrap_or_default();
    let ca_name = tls::ca_secret(cluster).unwrap_or_default().to_string();
    let ca = match read_ca(cluster, secrets, now) {
        Err(problem) => {
            out.problems.push(problem);
            return out;
        }
        Ok(None) if tls::creates_ca(cluster) => {
            out.orders.push(Order { secret: ca_name, kind: Kind::Ca, spec: None, reason: "missing".into() });
            return out;
        }
        Ok(None) => {
            out.problems.push(format!(
                "Secret {ca_name} does not exist: with sslSecrets.create false, create it with your CA as {} and {} (PEM), or set create: true",
                tls::CA_CERT,
                tls::CA_KEY
            ));
            return out;
        }
        Ok(Some(ca)) => ca,
    };
    let ca_chain = secrets.text(&ca_name, tls::CA_CERT).unwrap_or_default();
    for (name, kind, spec) in wanted(cluster, cfg) {
        let live = secrets.0.get(&name);
        if live.is_some_and(|s| !is_ours(s, &uid)) {
            out.problems.push(format!(
                "Secret {name} exists and belongs to another owner; the operator does not take it over: delete or rename it"
            ));
            continue;
        }
        let cert = secrets.text(&name, tls::TLS_CRT);
        let key = secrets.text(&name, tls::TLS_KEY);
        let reason = match (&cert, &key) {
            _ if live.is_none() => Some("missing".to_string()),
            (Some(cert), Some(key)) => {
                let validity = pki::validity(cert);
                if !pki::signed_by(cert, &ca.cert) {
                    Some("not signed by the current CA".into())
                } else if !pki::key_matches(cert, key) {
                    Some("its key does not match".into())
                } else if pki::common_name(cert).as_deref() != Some(spec.common_name.as_str())
                    || pki::dns_names(cert).unwrap_or_default() != spec.dns_names
                {
                    Some("its names changed".into())
                } else if secrets.text(&name, tls::CA_CRT).as_deref() != Some(ca_chain.as_str()) {
                    Some("the trusted CA changed".into())
                } else if validity.is_none_or(|v| now >= renew_at(v)) {
                    Some("renewal due".into())
                } else {
                    let at = renew_at(validity.expect("checked"));
                    out.next_renewal = Some(out.next_renewal.map_or(at, |n| n.min(at)));
                    None
                }
            }
            _ => Some("incomplete".into()),
        };
        match reason {
            Some(reason) => out.orders.push(Order { secret: name, kind, spec: Some(spec), reason }),
            None => {
                if let Kind::Broker(id) = kind {
                    let fp = koperator_shared::hash::fnv1a64_hex(cert.unwrap_or_default().as_bytes());
                    out.broker_fingerprints.insert(id, fp);
                }
            }
        }
    }
    out
}

/// The data of the Secret that `order` asks for, issued now from `ca` (the CA's own order needs
/// none). The CA's Secret holds `caCert`/`caKey`; a leaf's holds `tls.crt`, `tls.key`, `ca.crt`
/// (the CA certificates in `caCert`) and, for a broker, `keystore.pem` (key, certificate, CA).
pub fn issue(
    order: &Order,
    ca: Option<(&KeyAndCert, &str)>,
    cluster_name: &str,
    now: u64,
    cfg: &PkiConfig,
) -> Result<BTreeMap<String, ByteString>, pki::Error> {
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    let Some(spec) = &order.spec else {
        let ca = pki::new_ca(&format!("{cluster_name}-ca"), now, cfg.ca_validity)?;
        return Ok(BTreeMap::from([(tls::CA_CERT.into(), bytes(&ca.cert)), (tls::CA_KEY.into(), bytes(&ca.key))]));
    };
    let (ca, chain) = ca.ok_or(pki::Error::Ca { what: "certificate", reason: "no CA to sign with".into() })?;
    let leaf = pki::issue(ca, spec, now)?;
    let mut data = BTreeMap::from([
        (tls::TLS_CRT.to_string(), bytes(&leaf.cert)),
        (tls::TLS_KEY.to_string(), bytes(&leaf.key)),
        (tls::CA_CRT.to_string(), bytes(chain)),
    ]);
    if matches!(order.kind, Kind::Broker(_)) {
        data.insert(tls::KEYSTORE_PEM.into(), bytes(&format!("{}{}{}", leaf.key, leaf.cert, chain)));
    }
    Ok(data)
}

/// The CA `issue` signs with: the first certificate of `caCert` with `caKey`, and all of
/// `caCert` as the chain to trust.
pub fn ca_of(cluster: &ValidatedCluster, secrets: &LiveSecrets) -> Option<(KeyAndCert, String)> {
    let name = tls::ca_secret(cluster)?;
    let chain = secrets.text(name, tls::CA_CERT)?;
    let key = secrets.text(name, tls::CA_KEY)?;
    let first = pki::split_pem(&chain).into_iter().next()?;
    Some((KeyAndCert { cert: first, key }, chain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use koperator_shared::api::KafkaCluster;

    const NOW: u64 = 1_800_000_000;

    fn cluster(create: bool) -> ValidatedCluster {
        let mut kc: KafkaCluster =
            serde_saphyr::from_str(include_str!("../../../config/samples/simplekafkacluster_ssl.yaml")).unwrap();
        kc.metadata.namespace = Some("kafka".into());
        kc.metadata.uid = Some("uid-1".into());
        kc.spec.listeners_config.ssl_secrets.as_mut().unwrap().create = Some(create);
        koperator_shared::validated::must(&kc)
    }

    fn cfg() -> PkiConfig {
        PkiConfig { ca_validity: Duration::from_secs(100_000), leaf_validity: Duration::from_secs(3000) }
    }

    fn secret(data: BTreeMap<String, ByteString>, owner: Option<&str>) -> Secret {
        let mut s = Secret { data: Some(data), ..Default::default() };
        s.metadata.owner_references =
            owner.map(|uid| vec![OwnerReference { uid: uid.into(), controller: Some(true), ..Default::default() }]);
        s
    }

    /// Carries out `plan`'s orders into `secrets` as the execute step would.
    fn carry_out(c: &ValidatedCluster, p: &CertPlan, secrets: &mut LiveSecrets, now: u64) {
        let ca = ca_of(c, secrets);
        for o in &p.orders {
            let data = issue(o, ca.as_ref().map(|(k, ch)| (k, ch.as_str())), "kafka-ssl", now, &cfg()).unwrap();
            secrets.0.insert(o.secret.clone(), secret(data, Some("uid-1")));
        }
    }

    #[test]
    fn create_true_makes_the_ca_then_every_certificate_then_nothing() {
        let c = cluster(true);
        let mut secrets = LiveSecrets::default();
        let p = plan(&c, &secrets, NOW, &cfg());
        assert_eq!(p.orders.iter().map(|o| o.kind.clone()).collect::<Vec<_>>(), vec![Kind::Ca]);
        carry_out(&c, &p, &mut secrets, NOW);
        let p = plan(&c, &secrets, NOW, &cfg());
        assert_eq!(p.orders.len(), 4, "three brokers and the operator: {p:?}");
        assert!(p.broker_fingerprints.is_empty(), "brokers wait for their certificates");
        carry_out(&c, &p, &mut secrets, NOW);
        let p = plan(&c, &secrets, NOW + 10, &cfg());
        assert_eq!(p.orders, vec![], "{p:?}");
        assert_eq!(p.broker_fingerprints.len(), 3);
        assert_eq!(p.next_renewal, Some(NOW - 60 + 3060 * 2 / 3));
        let keystore = secrets.text("kafka-ssl-0-server-certificate", tls::KEYSTORE_PEM).unwrap();
        assert!(keystore.starts_with("-----BEGIN PRIVATE KEY-----"), "key first in the PEM keystore");
        let cert = secrets.text("kafka-ssl-1-server-certificate", tls::TLS_CRT).unwrap();
        assert!(
            pki::dns_names(&cert).unwrap().contains(&"kafka-ssl-1.kafka-ssl-headless.kafka.svc.cluster.local".into())
        );
        let op = secrets.text("kafka-ssl-controller", tls::TLS_CRT).unwrap();
        assert_eq!(pki::common_name(&op).as_deref(), Some("kafka-ssl-controller.kafka.mgt.cluster.local"));
    }

    #[test]
    fn renewal_and_changed_names_reissue_only_what_is_due() {
        let c = cluster(true);
        let mut secrets = LiveSecrets::default();
        for _ in 0..2 {
            let p = plan(&c, &secrets, NOW, &cfg());
            carry_out(&c, &p, &mut secrets, NOW);
        }
        let before = plan(&c, &secrets, NOW, &cfg()).broker_fingerprints;
        let p = plan(&c, &secrets, NOW + 2000, &cfg());
        assert_eq!(p.orders.len(), 4);
        assert!(p.orders.iter().all(|o| o.reason == "renewal due"), "{p:?}");
        carry_out(&c, &p, &mut secrets, NOW + 2000);
        let after = plan(&c, &secrets, NOW + 2000, &cfg()).broker_fingerprints;
        assert_eq!(after.len(), 3);
        assert!(after.iter().all(|(id, fp)| before[id] != *fp), "new fingerprints roll the brokers");

        let mut more = (*c).clone();
        more.spec.brokers.push(more.spec.brokers[0].clone());
        more.spec.brokers[3].id = 3;
        more.spec.headless_service_enabled = false;
        let more = koperator_shared::validated::must(&more);
        let p = plan(&more, &secrets, NOW + 2000, &cfg());
        let reasons: Vec<&str> = p.orders.iter().map(|o| o.reason.as_str()).collect();
        assert_eq!(
            reasons,
            vec!["its names changed", "its names changed", "its names changed", "missing"],
            "the operator's has no DNS names"
        );
    }

    #[test]
    fn a_missing_or_broken_ca_is_reported_never_replaced() {
        let c = cluster(false);
        let p = plan(&c, &LiveSecrets::default(), NOW, &cfg());
        assert!(p.orders.is_empty());
        assert!(p.problems[0].contains("does not exist: with sslSecrets.create false"), "{p:?}");

        let a = pki::new_ca("a", NOW, Duration::from_secs(1000)).unwrap();
        let b = pki::new_ca("b", NOW, Duration::from_secs(1000)).unwrap();
        let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
        for (data, want) in [
            (BTreeMap::from([(tls::CA_CERT.to_string(), bytes(&a.cert))]), "has no caCert and caKey"),
            (
                BTreeMap::from([(tls::CA_CERT.into(), bytes(&a.cert)), (tls::CA_KEY.into(), bytes(&b.key))]),
                "is not the key of the certificate",
            ),
            (
                BTreeMap::from([(tls::CA_CERT.into(), bytes("junk")), (tls::CA_KEY.into(), bytes(&a.key))]),
                "holds no PEM certificate",
            ),
        ] {
            for create in [false, true] {
                let c = cluster(create);
                let secrets = LiveSecrets(BTreeMap::from([("kafka-ssl-ca".to_string(), secret(data.clone(), None))]));
                let p = plan(&c, &secrets, NOW, &cfg());
                assert!(p.orders.is_empty(), "never replaced: {p:?}");
                assert!(p.problems[0].contains(want), "{want}: {p:?}");
            }
        }
        let expired = LiveSecrets(BTreeMap::from([(
            "kafka-ssl-ca".to_string(),
            secret(BTreeMap::from([(tls::CA_CERT.into(), bytes(&a.cert)), (tls::CA_KEY.into(), bytes(&a.key))]), None),
        )]));
        assert!(plan(&c, &expired, NOW + 5000, &cfg()).problems[0].contains("not valid now"));
    }

    #[test]
    fn a_user_ca_signs_and_a_foreign_secret_is_left_alone() {
        let c = cluster(false);
        let ca = pki::new_ca("users-ca", NOW, Duration::from_secs(100_000)).unwrap();
        let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
        let mut secrets = LiveSecrets(BTreeMap::from([(
            "kafka-ssl-ca".to_string(),
            secret(
                BTreeMap::from([(tls::CA_CERT.into(), bytes(&ca.cert)), (tls::CA_KEY.into(), bytes(&ca.key))]),
                None,
            ),
        )]));
        secrets.0.insert("kafka-ssl-controller".into(), secret(BTreeMap::new(), Some("someone-else")));
        let p = plan(&c, &secrets, NOW, &cfg());
        assert_eq!(p.orders.len(), 3, "the brokers' certificates: {p:?}");
        assert_eq!(p.problems.len(), 1);
        assert!(p.problems[0].starts_with("Secret kafka-ssl-controller exists and belongs to another owner"));
        carry_out(&c, &p, &mut secrets, NOW);
        let cert = secrets.text("kafka-ssl-2-server-certificate", tls::TLS_CRT).unwrap();
        assert!(pki::signed_by(&cert, &ca.cert));
    }

    #[test]
    fn plaintext_clusters_need_no_pki() {
        let kc: KafkaCluster =
            serde_saphyr::from_str(include_str!("../../../config/samples/kafkacluster_kraft.yaml")).unwrap();
        let c = koperator_shared::validated::must(&kc);
        assert_eq!(plan(&c, &LiveSecrets::default(), NOW, &cfg()), CertPlan::default());
        assert!(secret_names(&c).is_empty());
    }
}

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
//! - A broker Pod is created only once its certificate exists, and carries the fingerprint of
//!   its certificate and trusted CAs, so a change reaches the broker through the health-gated
//!   roll.
//! - A new CA (an operator-made one at two thirds of its life or when the annotation
//!   [`RENEW_CA_ANNOTATION`] gets a new value; a user's when they put another in the Secret) is
//!   rolled out in three steps, each a health-gated roll, so that no two brokers, the operator
//!   or a KafkaUser ever distrust each other: (1) every certificate Secret trusts the old and
//!   the new CA (`ca.crt`), (2) once every broker runs with both, the certificates move to the
//!   new CA, (3) once every broker, the operator and every KafkaUser of the cluster hold a
//!   certificate of the new CA, the old one is no longer trusted. The old CA is known from the
//!   `ca.crt` of the certificates it signed: nothing else needs to remember it.

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

/// On a KafkaCluster: any new value asks for a new operator-made CA. On the CA Secret: the value
/// that CA was made for.
pub const RENEW_CA_ANNOTATION: &str = "koperator.banzaicloud.io/renew-ca";

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

/// What an [`Order`] writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A new CA, made for the value of [`RENEW_CA_ANNOTATION`] the cluster has, if any.
    NewCa { request: Option<String> },
    /// A new certificate for this spec from the current CA.
    Issue(LeafSpec),
    /// Only `ca.crt` (the CAs trusted) changes; the certificate and key stay.
    Retrust,
}

/// One certificate Secret to write now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    /// The Secret it goes to.
    pub secret: String,
    /// What it is.
    pub kind: Kind,
    /// What is written.
    pub action: Action,
    /// The CA certificates to trust (`ca.crt`), PEM; empty for the CA itself.
    pub trust: String,
    /// Why now (`missing`, `renewal due`...).
    pub reason: String,
}

/// How far a CA rollover has reached, beyond the Secrets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rollout {
    /// The fingerprint ([`fingerprint`]) each broker's live Pod was started with.
    pub running: BTreeMap<i32, String>,
    /// The certificates (`tls.crt`) of the cluster's KafkaUsers, read while a CA other than
    /// the current one is still trusted (`None`: not read).
    pub users: Option<Vec<String>>,
}

/// The fingerprint of a broker's certificate and trusted CAs, carried by its Pod.
pub fn fingerprint(cert: &str, trust: &str) -> String {
    koperator_shared::hash::fnv1a64_hex(format!("{cert}{trust}").as_bytes())
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
    /// A CA rollover is under way (an old CA is still trusted): the plan is looked at again
    /// soon, as brokers, the operator and KafkaUsers move.
    pub rollover: bool,
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

/// CA certificates trusted by the cluster's certificate Secrets besides the current CA chain
/// and still valid at `now`: a CA rollover is under way while there are any.
pub fn old_cas(cluster: &ValidatedCluster, secrets: &LiveSecrets, now: u64) -> Vec<String> {
    let Some(ca_name) = tls::ca_secret(cluster) else { return Vec::new() };
    let current = pki::split_pem(&secrets.text(ca_name, tls::CA_CERT).unwrap_or_default());
    let mut old: Vec<String> = Vec::new();
    for name in secret_names(cluster).iter().filter(|n| *n != ca_name) {
        for ca in pki::split_pem(&secrets.text(name, tls::CA_CRT).unwrap_or_default()) {
            let valid = pki::validity(&ca).is_some_and(|(nb, na)| nb <= now + 300 && now < na);
            if valid && !current.contains(&ca) && !old.contains(&ca) {
                old.push(ca);
            }
        }
    }
    old
}

/// A leaf certificate Secret as it is now.
struct LiveLeaf {
    cert: String,
    key: String,
    trust: String,
}

/// What to write for `cluster` given its live Secrets and `rollout` at `now` (unix seconds).
/// Pure.
pub fn plan(
    cluster: &ValidatedCluster,
    secrets: &LiveSecrets,
    rollout: &Rollout,
    now: u64,
    cfg: &PkiConfig,
) -> CertPlan {
    let mut out = CertPlan::default();
    if !tls::enabled(cluster) {
        return out;
    }
    let uid = cluster.uid().unwrap_or_default();
    let ca_name = tls::ca_secret(cluster).unwrap_or_default().to_string();
    let new_ca = |reason: &str| Order {
        secret: ca_name.clone(),
        kind: Kind::Ca,
        action: Action::NewCa { request: cluster.annotations().get(RENEW_CA_ANNOTATION).cloned() },
        trust: String::new(),
        reason: reason.into(),
    };
    let ca = match read_ca(cluster, secrets, now) {
        Err(problem) => {
            out.problems.push(problem);
            return out;
        }
        Ok(None) if tls::creates_ca(cluster) => {
            out.orders.push(new_ca("missing"));
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
    let current = pki::split_pem(&ca_chain);
    let old = old_cas(cluster, secrets, now);
    let wanted = wanted(cluster, cfg);
    let live: BTreeMap<String, LiveLeaf> = wanted
        .iter()
        .filter_map(|(name, _, _)| {
            secrets.0.get(name).filter(|s| is_ours(*s, &uid))?;
            Some((
                name.clone(),
                LiveLeaf {
                    cert: secrets.text(name, tls::TLS_CRT)?,
                    key: secrets.text(name, tls::TLS_KEY)?,
                    trust: secrets.text(name, tls::CA_CRT).unwrap_or_default(),
                },
            ))
        })
        .collect();

    // A new operator-made CA, only when no rollover is under way; the certificates follow it
    // in the next passes.
    if tls::creates_ca(cluster) && old.is_empty() {
        let request = cluster.annotations().get(RENEW_CA_ANNOTATION);
        let made_for = secrets.0.get(&ca_name).and_then(|s| s.annotations().get(RENEW_CA_ANNOTATION));
        let reason = if request.is_some() && request != made_for {
            Some("renewal requested (annotation koperator.banzaicloud.io/renew-ca)")
        } else if pki::validity(&ca.cert).is_some_and(|v| now >= renew_at(v)) {
            Some("renewal due")
        } else {
            None
        };
        if let Some(reason) = reason {
            out.orders.push(new_ca(reason));
            for (name, kind, _) in &wanted {
                if let (Kind::Broker(id), Some(l)) = (kind, live.get(name)) {
                    out.broker_fingerprints.insert(*id, fingerprint(&l.cert, &l.trust));
                }
            }
            return out;
        }
    }

    out.rollover = !old.is_empty();
    let on_current = |cert: &str| pki::signed_by(cert, &ca.cert);
    let moving = |cert: &str| !on_current(cert) && old.iter().any(|o| pki::signed_by(cert, o));
    let users_moved = rollout.users.as_ref().is_some_and(|u| u.iter().all(|c| on_current(c)));
    let any_moving = live.values().any(|l| moving(&l.cert));
    // Every broker Pod was started with its Secret as it is now.
    let brokers_run_it = wanted.iter().all(|(name, kind, _)| match (kind, live.get(name)) {
        (Kind::Broker(id), Some(l)) => rollout.running.get(id) == Some(&fingerprint(&l.cert, &l.trust)),
        _ => true,
    });
    // The CAs to trust: the old ones too while anything still holds (or a broker still
    // presents) a certificate of theirs.
    let trust = if !old.is_empty() && (any_moving || !users_moved || !brokers_run_it) {
        current.iter().chain(&old).cloned().collect::<String>()
    } else {
        ca_chain.clone()
    };
    let trusted_everywhere = live.values().all(|l| l.trust == trust);
    for (name, kind, spec) in wanted {
        let secret = secrets.0.get(&name);
        if secret.is_some_and(|s| !is_ours(s, &uid)) {
            out.problems.push(format!(
                "Secret {name} exists and belongs to another owner; the operator does not take it over: delete or rename it"
            ));
            continue;
        }
        let issue = |reason: &str| Some((Action::Issue(spec.clone()), reason.to_string()));
        let retrust = |l: &LiveLeaf| {
            let (want, have) = (pki::split_pem(&trust), pki::split_pem(&l.trust));
            let reason = if want.len() > have.len() && have.iter().all(|c| want.contains(c)) {
                "trusting the new CA beside the old one"
            } else if want.len() < have.len() && want.iter().all(|c| have.contains(c)) {
                "the old CA is no longer trusted"
            } else {
                "the trusted CA changed"
            };
            Some((Action::Retrust, reason.to_string()))
        };
        let todo = match live.get(&name) {
            None if secret.is_none() => issue("missing"),
            None => issue("incomplete"),
            Some(l) => {
                let validity = pki::validity(&l.cert);
                if !pki::key_matches(&l.cert, &l.key) {
                    issue("its key does not match")
                } else if pki::common_name(&l.cert).as_deref() != Some(spec.common_name.as_str())
                    || pki::dns_names(&l.cert).unwrap_or_default() != spec.dns_names
                {
                    issue("its names changed")
                } else if moving(&l.cert) {
                    if l.trust != trust {
                        retrust(l)
                    } else if trusted_everywhere && brokers_run_it {
                        issue("moving to the new CA")
                    } else {
                        None
                    }
                } else if !on_current(&l.cert) {
                    issue("not signed by the current CA")
                } else if l.trust != trust {
                    retrust(l)
                } else if validity.is_none_or(|v| now >= renew_at(v)) {
                    issue("renewal due")
                } else {
                    let at = renew_at(validity.expect("checked"));
                    out.next_renewal = Some(out.next_renewal.map_or(at, |n| n.min(at)));
                    None
                }
            }
        };
        match todo {
            Some((action, reason)) => {
                out.orders.push(Order { secret: name, kind, action, trust: trust.clone(), reason });
            }
            None => {
                if let (Kind::Broker(id), Some(l)) = (kind, live.get(&name)) {
                    out.broker_fingerprints.insert(id, fingerprint(&l.cert, &l.trust));
                }
            }
        }
    }
    out
}

/// The data of the Secret that `order` asks for, issued now from `ca` (the CA's own order needs
/// none). The CA's Secret holds `caCert`/`caKey`; a leaf's holds `tls.crt`, `tls.key`, `ca.crt`
/// (the order's trusted CAs) and, for a broker, `keystore.pem` (key, certificate, the CA chain
/// that signed it). A [`Action::Retrust`] order writes `ca.crt` alone (a merge into the Secret).
pub fn issue(
    order: &Order,
    ca: Option<(&KeyAndCert, &str)>,
    cluster_name: &str,
    now: u64,
    cfg: &PkiConfig,
) -> Result<BTreeMap<String, ByteString>, pki::Error> {
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    let spec = match &order.action {
        Action::NewCa { .. } => {
            // Each CA its own name, so that old and new are told apart while both are trusted.
            let name = if order.reason == "missing" {
                format!("{cluster_name}-ca")
            } else {
                format!("{cluster_name}-ca-{now}")
            };
            let ca = pki::new_ca(&name, now, cfg.ca_validity)?;
            return Ok(BTreeMap::from([(tls::CA_CERT.into(), bytes(&ca.cert)), (tls::CA_KEY.into(), bytes(&ca.key))]));
        }
        Action::Retrust => return Ok(BTreeMap::from([(tls::CA_CRT.to_string(), bytes(&order.trust))])),
        Action::Issue(spec) => spec,
    };
    let (ca, chain) = ca.ok_or(pki::Error::Ca { what: "certificate", reason: "no CA to sign with".into() })?;
    let leaf = pki::issue(ca, spec, now)?;
    let mut data = BTreeMap::from([
        (tls::TLS_CRT.to_string(), bytes(&leaf.cert)),
        (tls::TLS_KEY.to_string(), bytes(&leaf.key)),
        (tls::CA_CRT.to_string(), bytes(&order.trust)),
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

/// Test fixtures of the cluster PKI, shared by the planner's and the status's tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use koperator_shared::api::KafkaCluster;

    pub const NOW: u64 = 1_800_000_000;
    pub const UID: &str = "uid-1";

    /// The SSL sample (in namespace `kafka`, uid [`UID`]) with `create` and its first
    /// `brokers` brokers.
    pub fn cluster_with(create: bool, brokers: usize) -> ValidatedCluster {
        let mut kc: KafkaCluster =
            serde_saphyr::from_str(include_str!("../../../config/samples/simplekafkacluster_ssl.yaml")).unwrap();
        kc.metadata.namespace = Some("kafka".into());
        kc.metadata.uid = Some(UID.into());
        kc.spec.listeners_config.ssl_secrets.as_mut().unwrap().create = Some(create);
        kc.spec.brokers.truncate(brokers);
        koperator_shared::validated::must(&kc)
    }

    /// The SSL sample with its three brokers.
    pub fn cluster(create: bool) -> ValidatedCluster {
        cluster_with(create, 3)
    }

    /// A CA of 100,000 s, leaves of 3,000 s.
    pub fn cfg() -> PkiConfig {
        PkiConfig { ca_validity: Duration::from_secs(100_000), leaf_validity: Duration::from_secs(3000) }
    }

    pub fn secret(data: BTreeMap<String, ByteString>, owner: Option<&str>) -> Secret {
        let mut s = Secret { data: Some(data), ..Default::default() };
        s.metadata.owner_references =
            owner.map(|uid| vec![OwnerReference { uid: uid.into(), controller: Some(true), ..Default::default() }]);
        s
    }

    /// Carries out `plan`'s orders into `secrets` as the execute step would.
    pub fn carry_out(c: &ValidatedCluster, p: &CertPlan, secrets: &mut LiveSecrets, now: u64) {
        let ca = ca_of(c, secrets);
        for o in &p.orders {
            let data = issue(o, ca.as_ref().map(|(k, ch)| (k, ch.as_str())), "kafka-ssl", now, &cfg()).unwrap();
            match &o.action {
                Action::Retrust => secrets.0.get_mut(&o.secret).unwrap().data.as_mut().unwrap().extend(data),
                action => {
                    let mut s = secret(data, Some(UID));
                    if let Action::NewCa { request: Some(r) } = action {
                        s.metadata.annotations = Some(BTreeMap::from([(RENEW_CA_ANNOTATION.into(), r.clone())]));
                    }
                    secrets.0.insert(o.secret.clone(), s);
                }
            }
        }
    }

    /// `secrets` after the two passes that issue `c`'s CA (when the operator makes it) and
    /// certificates at `now`.
    pub fn issued(c: &ValidatedCluster, mut secrets: LiveSecrets, now: u64) -> LiveSecrets {
        for _ in 0..2 {
            let p = plan(c, &secrets, &Rollout::default(), now, &cfg());
            carry_out(c, &p, &mut secrets, now);
        }
        secrets
    }

    /// The Secrets of `c` once its CA and certificates are issued at [`NOW`].
    pub fn settled(c: &ValidatedCluster) -> LiveSecrets {
        issued(c, LiveSecrets::default(), NOW)
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use koperator_shared::api::KafkaCluster;

    /// Every broker Pod started with its Secret as it is now.
    fn all_running(secrets: &LiveSecrets) -> BTreeMap<i32, String> {
        (0..3)
            .map(|id| {
                let name = format!("kafka-ssl-{id}-server-certificate");
                let text = |k| secrets.text(&name, k).unwrap();
                (id, fingerprint(&text(tls::TLS_CRT), &text(tls::CA_CRT)))
            })
            .collect()
    }

    #[test]
    fn a_new_ca_is_trusted_everywhere_before_anything_moves_and_the_old_one_goes_last() {
        let mut kc = (*cluster(true)).clone();
        let mut secrets = settled(&cluster(true));
        let old_ca = ca_of(&cluster(true), &secrets).unwrap().0;
        let client = LeafSpec {
            common_name: "app".into(),
            dns_names: vec![],
            server: false,
            client: true,
            validity: Duration::from_secs(3000),
        };
        let user_on_old = pki::issue(&old_ca, &client, NOW).unwrap().cert;
        let kinds = |p: &CertPlan| p.orders.iter().map(|o| (o.action.clone(), o.reason.clone())).collect::<Vec<_>>();
        let t = NOW + 10;

        // Asked for by annotation: a new CA, nothing else yet; the brokers keep running as they are.
        kc.metadata.annotations = Some(BTreeMap::from([(RENEW_CA_ANNOTATION.into(), "1".into())]));
        let c = koperator_shared::validated::must(&kc);
        let running = Rollout { running: all_running(&secrets), users: None };
        let p = plan(&c, &secrets, &running, t, &cfg());
        assert_eq!(
            kinds(&p),
            vec![(
                Action::NewCa { request: Some("1".into()) },
                "renewal requested (annotation koperator.banzaicloud.io/renew-ca)".into()
            )]
        );
        assert_eq!(p.broker_fingerprints, running.running, "no broker restarts for the CA itself");
        carry_out(&c, &p, &mut secrets, t);
        let new_ca = ca_of(&c, &secrets).unwrap().0;
        assert_ne!(new_ca.cert, old_ca.cert);
        assert_ne!(pki::common_name(&new_ca.cert), pki::common_name(&old_ca.cert), "told apart by name");

        // (1) Everyone trusts both; no certificate moves yet.
        let p = plan(&c, &secrets, &running, t, &cfg());
        assert!(p.rollover);
        assert_eq!(p.orders.len(), 4, "{p:?}");
        assert!(
            p.orders
                .iter()
                .all(|o| o.action == Action::Retrust && o.reason == "trusting the new CA beside the old one")
        );
        assert_eq!(pki::split_pem(&p.orders[0].trust), vec![new_ca.cert.clone(), old_ca.cert.clone()]);
        carry_out(&c, &p, &mut secrets, t);
        let p = plan(&c, &secrets, &running, t, &cfg());
        assert_eq!(kinds(&p), vec![], "nothing moves while a broker still runs without the new CA");
        assert!(p.broker_fingerprints.iter().all(|(id, fp)| running.running[id] != *fp), "the trust change rolls");

        // (2) Once every broker runs with both: the certificates move to the new CA.
        let both = Rollout { running: all_running(&secrets), users: Some(vec![user_on_old.clone()]) };
        let p = plan(&c, &secrets, &both, t, &cfg());
        assert_eq!(p.orders.len(), 4, "{p:?}");
        assert!(p.orders.iter().all(|o| matches!(o.action, Action::Issue(_)) && o.reason == "moving to the new CA"));
        carry_out(&c, &p, &mut secrets, t);
        let cert = secrets.text("kafka-ssl-2-server-certificate", tls::TLS_CRT).unwrap();
        assert!(pki::signed_by(&cert, &new_ca.cert));
        assert_eq!(pki::split_pem(&secrets.text("kafka-ssl-controller", tls::CA_CRT).unwrap()).len(), 2);

        // (3) The old CA stays trusted while a broker still runs a certificate of it...
        let user_on_new = pki::issue(&new_ca, &client, t).unwrap().cert;
        let restarting = Rollout { running: both.running.clone(), users: Some(vec![user_on_new.clone()]) };
        let p = plan(&c, &secrets, &restarting, t, &cfg());
        assert_eq!(kinds(&p), vec![], "the brokers still present the old CA's certificates");
        // ...or a KafkaUser still holds one...
        let moved = Rollout { running: all_running(&secrets), users: Some(vec![user_on_old]) };
        let p = plan(&c, &secrets, &moved, t, &cfg());
        assert_eq!(kinds(&p), vec![]);
        assert!(p.rollover);
        // ...and goes once every one has moved.
        let users_moved = Rollout { running: all_running(&secrets), users: Some(vec![user_on_new]) };
        let p = plan(&c, &secrets, &users_moved, t, &cfg());
        assert_eq!(p.orders.len(), 4, "{p:?}");
        assert!(p.orders.iter().all(|o| o.action == Action::Retrust && o.reason == "the old CA is no longer trusted"));
        assert_eq!(pki::split_pem(&p.orders[0].trust), vec![new_ca.cert.clone()]);
        carry_out(&c, &p, &mut secrets, t);
        let done = Rollout { running: all_running(&secrets), users: None };
        let p = plan(&c, &secrets, &done, t, &cfg());
        assert_eq!(kinds(&p), vec![]);
        assert!(!p.rollover);
        // The same annotation value asks for nothing more.
        assert_eq!(plan(&c, &secrets, &done, t + 100, &cfg()).orders, vec![]);
    }

    #[test]
    fn an_operator_made_ca_is_renewed_at_two_thirds_of_its_life() {
        let c = cluster(true);
        let secrets = settled(&c);
        // cfg(): the CA lives 100,000 s, the leaves 3,000 s (renewed on their own schedule).
        let due = NOW - 60 + 100_060 * 2 / 3;
        let p = plan(&c, &secrets, &Rollout::default(), due - 1, &cfg());
        assert!(p.orders.iter().all(|o| o.kind != Kind::Ca), "{p:?}");
        let p = plan(&c, &secrets, &Rollout::default(), due, &cfg());
        assert_eq!(p.orders.len(), 1);
        assert_eq!((p.orders[0].kind.clone(), p.orders[0].reason.as_str()), (Kind::Ca, "renewal due"));
        // A user's CA (create: false) is never replaced by the operator.
        let mine = cluster(false);
        assert!(plan(&mine, &secrets, &Rollout::default(), due, &cfg()).orders.iter().all(|o| o.kind != Kind::Ca));
    }

    #[test]
    fn create_true_makes_the_ca_then_every_certificate_then_nothing() {
        let c = cluster(true);
        let mut secrets = LiveSecrets::default();
        let p = plan(&c, &secrets, &Rollout::default(), NOW, &cfg());
        assert_eq!(p.orders.iter().map(|o| o.kind.clone()).collect::<Vec<_>>(), vec![Kind::Ca]);
        carry_out(&c, &p, &mut secrets, NOW);
        let p = plan(&c, &secrets, &Rollout::default(), NOW, &cfg());
        assert_eq!(p.orders.len(), 4, "three brokers and the operator: {p:?}");
        assert!(p.broker_fingerprints.is_empty(), "brokers wait for their certificates");
        carry_out(&c, &p, &mut secrets, NOW);
        let p = plan(&c, &secrets, &Rollout::default(), NOW + 10, &cfg());
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
        let mut secrets = settled(&c);
        let before = plan(&c, &secrets, &Rollout::default(), NOW, &cfg()).broker_fingerprints;
        let p = plan(&c, &secrets, &Rollout::default(), NOW + 2000, &cfg());
        assert_eq!(p.orders.len(), 4);
        assert!(p.orders.iter().all(|o| o.reason == "renewal due"), "{p:?}");
        carry_out(&c, &p, &mut secrets, NOW + 2000);
        let after = plan(&c, &secrets, &Rollout::default(), NOW + 2000, &cfg()).broker_fingerprints;
        assert_eq!(after.len(), 3);
        assert!(after.iter().all(|(id, fp)| before[id] != *fp), "new fingerprints roll the brokers");

        let mut more = (*c).clone();
        more.spec.brokers.push(more.spec.brokers[0].clone());
        more.spec.brokers[3].id = 3;
        more.spec.headless_service_enabled = false;
        let more = koperator_shared::validated::must(&more);
        let p = plan(&more, &secrets, &Rollout::default(), NOW + 2000, &cfg());
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
        let p = plan(&c, &LiveSecrets::default(), &Rollout::default(), NOW, &cfg());
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
                let p = plan(&c, &secrets, &Rollout::default(), NOW, &cfg());
                assert!(p.orders.is_empty(), "never replaced: {p:?}");
                assert!(p.problems[0].contains(want), "{want}: {p:?}");
            }
        }
        let expired = LiveSecrets(BTreeMap::from([(
            "kafka-ssl-ca".to_string(),
            secret(BTreeMap::from([(tls::CA_CERT.into(), bytes(&a.cert)), (tls::CA_KEY.into(), bytes(&a.key))]), None),
        )]));
        assert!(plan(&c, &expired, &Rollout::default(), NOW + 5000, &cfg()).problems[0].contains("not valid now"));
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
        let p = plan(&c, &secrets, &Rollout::default(), NOW, &cfg());
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
        assert_eq!(plan(&c, &LiveSecrets::default(), &Rollout::default(), NOW, &cfg()), CertPlan::default());
        assert!(secret_names(&c).is_empty());
    }
}

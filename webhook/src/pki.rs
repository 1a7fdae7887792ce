//! The webhook's own PKI as pure data and decisions: a CA, a serving (leaf) certificate, the
//! CA bundle the API server trusts, and [`plan`], which says what to change and when.
//!
//! Rotation without failed requests: a new leaf is signed by a CA already in the bundle; a new
//! CA is first added to the bundle ("next"), promoted only after `propagation` (so the API
//! server trusts it before any replica serves a leaf from it), and the old CA stays in the
//! bundle for a grace period after promotion.

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use serde::{Deserialize, Serialize};

/// Why the PKI could not issue a certificate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name of the serving certificate is neither an IP address nor a valid DNS name.
    #[error("invalid names for the serving certificate {names:?}: {source}")]
    InvalidName {
        /// The configured names (`--service-name`, `--namespace`, `--extra-san`).
        names: Vec<String>,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// A key pair could not be generated.
    #[error("cannot generate the key of {what}: {source}")]
    GenerateKey {
        /// The certificate the key is for (`CA <common name>`, `serving certificate <name>`).
        what: String,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// The CA key in the state cannot be parsed (a tampered or truncated Secret).
    #[error("cannot read the key of CA {common_name} from the certificate state: {source}")]
    CaKey {
        /// Common name of the CA.
        common_name: String,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// A certificate could not be signed.
    #[error("cannot sign {what}: {source}")]
    Sign {
        /// The certificate being signed.
        what: String,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// A validity bound is not a representable date.
    #[error("{what}: validity time {unix} (unix seconds) is out of range: {source}")]
    TimeOutOfRange {
        /// The certificate and bound (`CA <common name> not after`).
        what: String,
        /// The time, in unix seconds.
        unix: u64,
        /// The conversion error.
        #[source]
        source: time::error::ComponentRange,
    },
}

impl Error {
    /// Stable category for metric labels and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Error::InvalidName { .. } => "PkiInvalidName",
            Error::GenerateKey { .. } => "PkiKeyGeneration",
            Error::CaKey { .. } => "PkiCaKeyUnreadable",
            Error::Sign { .. } => "PkiSigning",
            Error::TimeOutOfRange { .. } => "PkiTimeOutOfRange",
        }
    }
}

/// A certificate with its key, PEM, and validity in unix seconds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// Certificate (PEM).
    pub cert: String,
    /// Private key (PKCS#8 PEM).
    pub key: String,
    /// Not valid before (unix seconds).
    pub not_before: u64,
    /// Not valid after (unix seconds).
    pub not_after: u64,
    /// Subject common name (CAs are rebuilt from it to sign).
    pub common_name: String,
}

/// A CA trusted by the API server, with the time it may be dropped from the bundle.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Trusted {
    /// CA certificate (PEM).
    pub cert: String,
    /// Drop from the bundle after this time (unix seconds); `None` while in use.
    pub drop_after: Option<u64>,
}

/// Everything the replicas share through the Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PkiState {
    /// The CA that signs the serving certificate.
    pub ca: Issued,
    /// The next CA, already in the bundle, not yet signing (during a rollover).
    pub next_ca: Option<Issued>,
    /// When `next_ca` was added (unix seconds).
    pub next_ca_added_at: Option<u64>,
    /// The serving certificate.
    pub leaf: Issued,
    /// Host names and IPs the serving certificate covers.
    pub sans: Vec<String>,
    /// CAs the API server must trust.
    pub bundle: Vec<Trusted>,
}

impl PkiState {
    /// The bundle as concatenated PEM (what goes into `caBundle`).
    pub fn bundle_pem(&self) -> String {
        self.bundle.iter().map(|t| t.cert.as_str()).collect::<Vec<_>>().concat()
    }
}

/// Lifetimes and names of the PKI.
#[derive(Clone, Debug)]
pub struct PkiConfig {
    /// CA lifetime.
    pub ca_validity: Duration,
    /// Serving certificate lifetime.
    pub leaf_validity: Duration,
    /// How long a new CA sits in the bundle before it signs (lets the API server pick it up).
    pub propagation: Duration,
    /// DNS names and IP addresses of the serving certificate.
    pub sans: Vec<String>,
}

impl PkiConfig {
    /// How long a retired CA stays in the bundle after promotion of its successor.
    pub fn retire_grace(&self) -> Duration {
        self.propagation * 2 + Duration::from_secs(5)
    }
}

/// Renewal point: two thirds into the lifetime.
fn renew_at(i: &Issued) -> u64 {
    i.not_before + (i.not_after - i.not_before) * 2 / 3
}

/// What should change now, or `None` when the state is fine. `current` is what the Secret
/// holds (None: no Secret or unreadable state).
pub fn plan(current: Option<&PkiState>, now: u64, cfg: &PkiConfig) -> Result<Option<PkiState>, Error> {
    let Some(cur) = current else { return fresh(now, cfg).map(Some) };
    if now >= cur.ca.not_after {
        // The CA expired (nobody ran for a long time): start over.
        return fresh(now, cfg).map(Some);
    }
    let mut next = cur.clone();
    let before = next.bundle.len();
    let in_use = |t: &Trusted| t.cert == next.ca.cert || next.next_ca.as_ref().is_some_and(|n| n.cert == t.cert);
    let keep: Vec<Trusted> =
        next.bundle.iter().filter(|t| in_use(t) || t.drop_after.is_none_or(|d| now < d)).cloned().collect();
    next.bundle = keep;
    let mut changed = next.bundle.len() != before;

    if next.next_ca.is_none() && now >= renew_at(&next.ca) {
        let ca = issue_ca(now, cfg)?;
        next.bundle.push(Trusted { cert: ca.cert.clone(), drop_after: None });
        next.next_ca = Some(ca);
        next.next_ca_added_at = Some(now);
        changed = true;
    }
    let promote = match (&next.next_ca, next.next_ca_added_at) {
        (Some(_), Some(added)) => now >= added + cfg.propagation.as_secs(),
        _ => false,
    };
    if promote {
        let new_ca = next.next_ca.take().expect("checked");
        next.next_ca_added_at = None;
        let drop_after = now + cfg.retire_grace().as_secs();
        for t in next.bundle.iter_mut().filter(|t| t.cert == next.ca.cert) {
            t.drop_after = Some(drop_after);
        }
        next.ca = new_ca;
        next.leaf = issue_leaf(&next.ca, now, cfg)?;
        next.sans = cfg.sans.clone();
        changed = true;
    } else if now >= renew_at(&next.leaf) || next.sans != cfg.sans || next.leaf.not_after > next.ca.not_after {
        next.leaf = issue_leaf(&next.ca, now, cfg)?;
        next.sans = cfg.sans.clone();
        changed = true;
    }
    Ok(changed.then_some(next))
}

fn fresh(now: u64, cfg: &PkiConfig) -> Result<PkiState, Error> {
    let ca = issue_ca(now, cfg)?;
    let leaf = issue_leaf(&ca, now, cfg)?;
    Ok(PkiState {
        bundle: vec![Trusted { cert: ca.cert.clone(), drop_after: None }],
        ca,
        next_ca: None,
        next_ca_added_at: None,
        leaf,
        sans: cfg.sans.clone(),
    })
}

fn ca_params(common_name: &str, not_before: u64, not_after: u64) -> Result<CertificateParams, Error> {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p.not_before = to_time(not_before, || format!("CA {common_name} not before"))?;
    p.not_after = to_time(not_after, || format!("CA {common_name} not after"))?;
    Ok(p)
}

fn to_time(unix: u64, what: impl FnOnce() -> String) -> Result<time::OffsetDateTime, Error> {
    // Past i64::MAX saturates, which is out of range as well (a wrapping cast would not be).
    let secs = i64::try_from(unix).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs).map_err(|source| Error::TimeOutOfRange {
        what: what(),
        unix,
        source,
    })
}

/// How far `not_before` is set in the past against clock skew: a minute, or a quarter of very
/// short lifetimes (tests use seconds).
fn backdate(validity: Duration) -> u64 {
    (validity.as_secs() / 4).min(60)
}

/// Issues a CA valid from shortly before now (clock skew) for `ca_validity`.
fn issue_ca(now: u64, cfg: &PkiConfig) -> Result<Issued, Error> {
    let (nb, na) = (now.saturating_sub(backdate(cfg.ca_validity)), now + cfg.ca_validity.as_secs());
    let common_name = format!("koperator-webhook-ca-{now}-{}", std::process::id());
    let what = || format!("CA {common_name}");
    let key = KeyPair::generate().map_err(|source| Error::GenerateKey { what: what(), source })?;
    let cert =
        ca_params(&common_name, nb, na)?.self_signed(&key).map_err(|source| Error::Sign { what: what(), source })?;
    Ok(Issued { cert: cert.pem(), key: key.serialize_pem(), not_before: nb, not_after: na, common_name })
}

/// Issues a serving certificate from `ca`, never outliving it.
fn issue_leaf(ca: &Issued, now: u64, cfg: &PkiConfig) -> Result<Issued, Error> {
    let ca_key =
        KeyPair::from_pem(&ca.key).map_err(|source| Error::CaKey { common_name: ca.common_name.clone(), source })?;
    let issuer = Issuer::new(ca_params(&ca.common_name, ca.not_before, ca.not_after)?, ca_key);
    let (nb, na) =
        (now.saturating_sub(backdate(cfg.leaf_validity)), (now + cfg.leaf_validity.as_secs()).min(ca.not_after));
    let dns: Vec<String> = cfg.sans.iter().filter(|s| s.parse::<IpAddr>().is_err()).cloned().collect();
    let mut p = CertificateParams::new(dns).map_err(|source| Error::InvalidName { names: cfg.sans.clone(), source })?;
    for ip in cfg.sans.iter().filter_map(|s| s.parse::<IpAddr>().ok()) {
        p.subject_alt_names.push(SanType::IpAddress(ip));
    }
    let common_name = cfg.sans.first().cloned().unwrap_or_else(|| "koperator-webhook".into());
    let what = || format!("serving certificate {common_name} (from CA {})", ca.common_name);
    p.distinguished_name.push(DnType::CommonName, &common_name);
    p.not_before = to_time(nb, || format!("{} not before", what()))?;
    p.not_after = to_time(na, || format!("{} not after", what()))?;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().map_err(|source| Error::GenerateKey { what: what(), source })?;
    let cert = p.signed_by(&key, &issuer).map_err(|source| Error::Sign { what: what(), source })?;
    Ok(Issued { cert: cert.pem(), key: key.serialize_pem(), not_before: nb, not_after: na, common_name })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PkiConfig {
        PkiConfig {
            ca_validity: Duration::from_secs(3000),
            leaf_validity: Duration::from_secs(300),
            propagation: Duration::from_secs(10),
            sans: vec!["webhook.koperator.svc".into(), "127.0.0.1".into()],
        }
    }

    #[test]
    fn fresh_state_has_one_ca_in_the_bundle() {
        let s = plan(None, 1_000_000, &cfg()).unwrap().unwrap();
        assert_eq!(s.bundle.len(), 1);
        assert_eq!(s.bundle[0].cert, s.ca.cert);
        assert!(s.leaf.not_after <= s.ca.not_after);
    }

    #[test]
    fn nothing_changes_before_two_thirds_of_the_leaf_life() {
        let s = plan(None, 1_000_000, &cfg()).unwrap().unwrap();
        assert_eq!(plan(Some(&s), 1_000_100, &cfg()).unwrap(), None);
    }

    #[test]
    fn leaf_renews_at_two_thirds_from_the_same_ca() {
        let s = plan(None, 1_000_000, &cfg()).unwrap().unwrap();
        let renew = renew_at(&s.leaf);
        let r = plan(Some(&s), renew, &cfg()).unwrap().unwrap();
        assert_ne!(r.leaf.cert, s.leaf.cert);
        assert_eq!(r.ca, s.ca);
        assert_eq!(r.bundle, s.bundle);
    }

    #[test]
    fn ca_rollover_adds_then_promotes_then_drops_the_old_ca() {
        let c = cfg();
        let s0 = plan(None, 1_000_000, &c).unwrap().unwrap();
        let t1 = renew_at(&s0.ca);
        let s1 = plan(Some(&s0), t1, &c).unwrap().unwrap();
        assert_eq!(s1.bundle.len(), 2, "next CA joins the bundle first");
        assert_eq!(s1.ca, s0.ca, "the old CA still signs");
        let next = s1.next_ca.clone().unwrap();

        // Before the propagation delay nothing is promoted (the leaf may still renew).
        let s1b = plan(Some(&s1), t1 + 5, &c).unwrap().unwrap_or(s1.clone());
        assert!(s1b.next_ca.is_some());

        let t2 = t1 + c.propagation.as_secs();
        let s2 = plan(Some(&s1b), t2, &c).unwrap().unwrap();
        assert_eq!(s2.ca, next, "promoted");
        assert!(s2.next_ca.is_none());
        assert_eq!(s2.bundle.len(), 2, "the old CA stays for the grace period");
        let old = s2.bundle.iter().find(|t| t.cert == s0.ca.cert).unwrap();
        assert_eq!(old.drop_after, Some(t2 + c.retire_grace().as_secs()));

        let s3 = plan(Some(&s2), t2 + c.retire_grace().as_secs(), &c).unwrap().unwrap();
        assert_eq!(s3.bundle.len(), 1);
        assert_eq!(s3.bundle[0].cert, next.cert);
    }

    #[test]
    fn changed_names_reissue_the_leaf() {
        let s = plan(None, 1_000_000, &cfg()).unwrap().unwrap();
        let mut c = cfg();
        c.sans.push("other.svc".into());
        let r = plan(Some(&s), 1_000_001, &c).unwrap().unwrap();
        assert_eq!(r.sans, c.sans);
        assert_ne!(r.leaf.cert, s.leaf.cert);
    }

    #[test]
    fn errors_carry_their_category() {
        // Year 36 million: no certificate date.
        let e = plan(None, 1 << 50, &cfg()).unwrap_err();
        assert_eq!(e.category(), "PkiTimeOutOfRange");
        assert!(e.to_string().contains("out of range"), "{e}");

        // A tampered CA key in the shared state, found when the leaf renews.
        let mut s = plan(None, 1_000_000, &cfg()).unwrap().unwrap();
        s.ca.key = "-----BEGIN PRIVATE KEY-----\nZ2FyYmFnZQ==\n-----END PRIVATE KEY-----\n".into();
        let e = plan(Some(&s), renew_at(&s.leaf), &cfg()).unwrap_err();
        assert_eq!(e.category(), "PkiCaKeyUnreadable");
        assert!(e.to_string().contains(&s.ca.common_name), "{e}");

        let mut c = cfg();
        c.sans.push("caf\u{e9}.svc".into());
        let e = plan(None, 1_000_000, &c).unwrap_err();
        assert_eq!(e.category(), "PkiInvalidName");
    }

    #[test]
    fn expired_ca_starts_over() {
        let s = plan(None, 1_000_000, &cfg()).unwrap().unwrap();
        let r = plan(Some(&s), s.ca.not_after + 1, &cfg()).unwrap().unwrap();
        assert_ne!(r.ca.cert, s.ca.cert);
        assert_eq!(r.bundle.len(), 1);
    }
}

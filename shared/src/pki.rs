//! X.509 building blocks shared by the webhook's own PKI and the operator's cluster PKI:
//! issuing a CA and certificates signed by it (ECDSA P-256, rcgen), and reading certificates
//! back (validity, names, who signed them, whether a key belongs to them).
//!
//! Issuing is the only part that is not pure (key generation); everything that decides what to
//! issue lives with the callers.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// Why a certificate could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name is not a valid DNS name.
    #[error("invalid DNS names {names:?} for certificate {common_name}: {source}")]
    InvalidName {
        /// The certificate's common name.
        common_name: String,
        /// The names asked for.
        names: Vec<String>,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// The CA certificate or key cannot be read.
    #[error("cannot use CA {what}: {reason}")]
    Ca {
        /// Which part (`certificate`, `key`).
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// Key generation or signing failed.
    #[error("cannot issue {common_name}: {source}")]
    Sign {
        /// The certificate's common name.
        common_name: String,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// A validity bound is not a representable date.
    #[error("{common_name}: validity time {unix} (unix seconds) is out of range")]
    TimeOutOfRange {
        /// The certificate's common name.
        common_name: String,
        /// The time, in unix seconds.
        unix: u64,
    },
}

impl Error {
    /// Stable category for metric labels and status reasons.
    pub fn category(&self) -> &'static str {
        match self {
            Error::InvalidName { .. } => "CertificateInvalidName",
            Error::Ca { .. } => "CaUnusable",
            Error::Sign { .. } => "CertificateSignFailed",
            Error::TimeOutOfRange { .. } => "CertificateTimeOutOfRange",
        }
    }
}

/// A certificate and its private key, both PEM. `Debug` never prints the key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyAndCert {
    /// The certificate (PEM, one certificate).
    pub cert: String,
    /// Its private key (PKCS#8 PEM).
    pub key: String,
}

impl std::fmt::Debug for KeyAndCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAndCert")
            .field("common_name", &common_name(&self.cert))
            .field("validity", &validity(&self.cert))
            .field("key", &"<redacted>")
            .finish()
    }
}

/// What a leaf certificate is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafSpec {
    /// Subject common name (the Kafka principal reads `User:CN=<it>`).
    pub common_name: String,
    /// DNS subject alternative names (may be empty for a client-only certificate).
    pub dns_names: Vec<String>,
    /// Usable as a TLS server certificate.
    pub server: bool,
    /// Usable as a TLS client certificate.
    pub client: bool,
    /// Lifetime (capped at the CA's).
    pub validity: Duration,
}

/// How far `not_before` is set in the past against clock skew: a minute, or a quarter of very
/// short lifetimes (tests use seconds).
pub fn backdate(validity: Duration) -> u64 {
    (validity.as_secs() / 4).min(60)
}

fn to_time(unix: u64, common_name: &str) -> Result<time::OffsetDateTime, Error> {
    let secs = i64::try_from(unix).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|_| Error::TimeOutOfRange { common_name: common_name.to_string(), unix })
}

/// A new self-signed CA named `common_name`, valid from shortly before `now` (unix seconds)
/// for `validity`.
pub fn new_ca(common_name: &str, now: u64, validity: Duration) -> Result<KeyAndCert, Error> {
    let sign = |source| Error::Sign { common_name: common_name.to_string(), source };
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p.not_before = to_time(now.saturating_sub(backdate(validity)), common_name)?;
    p.not_after = to_time(now + validity.as_secs(), common_name)?;
    let key = KeyPair::generate().map_err(sign)?;
    let cert = p.self_signed(&key).map_err(sign)?;
    Ok(KeyAndCert { cert: cert.pem(), key: key.serialize_pem() })
}

/// A certificate for `spec` signed by `ca`, valid from shortly before `now` and never past the
/// CA's own end of validity.
pub fn issue(ca: &KeyAndCert, spec: &LeafSpec, now: u64) -> Result<KeyAndCert, Error> {
    let ca_key = KeyPair::from_pem(&ca.key).map_err(|e| Error::Ca { what: "key", reason: e.to_string() })?;
    if !key_matches(&ca.cert, &ca.key) {
        return Err(Error::Ca { what: "key", reason: "the key does not belong to the CA certificate".into() });
    }
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key)
        .map_err(|e| Error::Ca { what: "certificate", reason: e.to_string() })?;
    let ca_end = validity(&ca.cert)
        .map(|(_, na)| na)
        .ok_or_else(|| Error::Ca { what: "certificate", reason: "not one X.509 certificate".into() })?;
    let cn = &spec.common_name;
    let mut p = CertificateParams::new(spec.dns_names.clone()).map_err(|source| Error::InvalidName {
        common_name: cn.clone(),
        names: spec.dns_names.clone(),
        source,
    })?;
    p.distinguished_name.push(DnType::CommonName, cn);
    p.not_before = to_time(now.saturating_sub(backdate(spec.validity)), cn)?;
    p.not_after = to_time((now + spec.validity.as_secs()).min(ca_end), cn)?;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    if spec.server {
        p.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if spec.client {
        p.extended_key_usages.push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    let sign = |source| Error::Sign { common_name: cn.clone(), source };
    let key = KeyPair::generate().map_err(sign)?;
    let cert = p.signed_by(&key, &issuer).map_err(sign)?;
    Ok(KeyAndCert { cert: cert.pem(), key: key.serialize_pem() })
}

/// The DER of the single certificate of a PEM text; `None` unless it holds exactly one.
fn single_der(pem: &str) -> Option<CertificateDer<'static>> {
    let mut certs = CertificateDer::pem_slice_iter(pem.as_bytes());
    let first = certs.next()?.ok()?;
    certs.next().is_none().then_some(first)
}

/// Runs `f` on the parsed certificate of `pem` (exactly one certificate, all of it X.509).
fn with_cert<T>(pem: &str, f: impl FnOnce(&X509Certificate<'_>) -> T) -> Option<T> {
    let der = single_der(pem)?;
    let (rest, cert) = X509Certificate::from_der(&der).ok()?;
    rest.is_empty().then(|| f(&cert))
}

/// True when `pem` is one CA certificate (basicConstraints CA) that signs itself.
pub fn is_ca(pem: &str) -> bool {
    with_cert(pem, |c| c.is_ca() && c.verify_signature(None).is_ok()).unwrap_or(false)
}

/// True when `pem` (one certificate) is signed by the CA certificate `ca_pem`.
pub fn signed_by(pem: &str, ca_pem: &str) -> bool {
    with_cert(ca_pem, |ca| {
        with_cert(pem, |c| c.issuer() == ca.subject() && c.verify_signature(Some(ca.public_key())).is_ok())
    })
    .flatten()
    .unwrap_or(false)
}

/// Validity of one certificate as (not before, not after) in unix seconds.
pub fn validity(pem: &str) -> Option<(u64, u64)> {
    with_cert(pem, |c| {
        let v = c.validity();
        Some((u64::try_from(v.not_before.timestamp()).ok()?, u64::try_from(v.not_after.timestamp()).ok()?))
    })
    .flatten()
}

/// When a certificate valid over `(not_before, not_after)` (unix seconds) is renewed: two
/// thirds into its life.
pub fn renew_at((not_before, not_after): (u64, u64)) -> u64 {
    not_before + not_after.saturating_sub(not_before) * 2 / 3
}

/// The earliest end of validity (unix seconds) among the certificates of a PEM bundle (a
/// chain expires with its first link to expire); `None` when it holds none that can be read.
pub fn earliest_not_after(bundle: &str) -> Option<u64> {
    split_pem(bundle).iter().filter_map(|c| validity(c)).map(|(_, na)| na).min()
}

/// The subject common name of one certificate.
pub fn common_name(pem: &str) -> Option<String> {
    with_cert(pem, |c| c.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(String::from))
        .flatten()
}

/// The DNS subject alternative names of one certificate, sorted.
pub fn dns_names(pem: &str) -> Option<Vec<String>> {
    with_cert(pem, |c| {
        let mut names: Vec<String> = c
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::DNSName(d) => Some(d.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    })
}

/// True when `key_pem` is the private key of the certificate `cert_pem`.
pub fn key_matches(cert_pem: &str, key_pem: &str) -> bool {
    let Ok(key) = KeyPair::from_pem(key_pem) else { return false };
    with_cert(cert_pem, |c| c.public_key().raw == key.subject_public_key_info().as_slice()).unwrap_or(false)
}

/// Splits concatenated PEM into its certificates (PEM text each), skipping anything else.
pub fn split_pem(bundle: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = bundle;
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    while let Some(b) = rest.find(BEGIN) {
        let Some(e) = rest[b..].find(END) else { break };
        out.push(format!("{}\n", &rest[b..b + e + END.len()]));
        rest = &rest[b + e + END.len()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn leaf(cn: &str, dns: &[&str]) -> LeafSpec {
        LeafSpec {
            common_name: cn.into(),
            dns_names: dns.iter().map(|s| s.to_string()).collect(),
            server: true,
            client: true,
            validity: Duration::from_secs(3600),
        }
    }

    #[test]
    fn a_leaf_is_signed_by_its_ca_with_its_names_and_never_outlives_it() {
        let ca = new_ca("kafka-ca", NOW, Duration::from_secs(7200)).unwrap();
        assert!(is_ca(&ca.cert));
        assert!(key_matches(&ca.cert, &ca.key));
        let l = issue(&ca, &leaf("kafka-broker", &["b.kafka.svc", "a.kafka.svc"]), NOW).unwrap();
        assert!(signed_by(&l.cert, &ca.cert));
        assert!(!is_ca(&l.cert));
        assert!(key_matches(&l.cert, &l.key));
        assert!(!key_matches(&l.cert, &ca.key));
        assert_eq!(common_name(&l.cert).as_deref(), Some("kafka-broker"));
        assert_eq!(dns_names(&l.cert).unwrap(), vec!["a.kafka.svc", "b.kafka.svc"]);
        assert_eq!(validity(&l.cert), Some((NOW - 60, NOW + 3600)));
        let long = LeafSpec { validity: Duration::from_secs(99_999), ..leaf("x", &[]) };
        assert_eq!(validity(&issue(&ca, &long, NOW).unwrap().cert).unwrap().1, NOW + 7200, "capped at the CA's end");
    }

    #[test]
    fn another_ca_or_a_foreign_key_is_refused() {
        let ca = new_ca("a", NOW, Duration::from_secs(7200)).unwrap();
        let other = new_ca("b", NOW, Duration::from_secs(7200)).unwrap();
        let l = issue(&ca, &leaf("x", &[]), NOW).unwrap();
        assert!(!signed_by(&l.cert, &other.cert));
        let mixed = KeyAndCert { cert: ca.cert.clone(), key: other.key.clone() };
        assert!(matches!(issue(&mixed, &leaf("x", &[]), NOW), Err(Error::Ca { what: "key", .. })));
        let garbage = KeyAndCert { cert: "nope".into(), key: ca.key.clone() };
        assert!(issue(&garbage, &leaf("x", &[]), NOW).is_err());
    }

    #[test]
    fn renewal_is_due_two_thirds_in_and_a_chain_expires_with_its_first_link() {
        assert_eq!(renew_at((1000, 4000)), 3000);
        assert_eq!(renew_at((1000, 1000)), 1000);
        let long = new_ca("long", NOW, Duration::from_secs(7200)).unwrap();
        let short = new_ca("short", NOW, Duration::from_secs(3600)).unwrap();
        assert_eq!(earliest_not_after(&format!("{}{}", long.cert, short.cert)), Some(NOW + 3600));
        assert_eq!(earliest_not_after(&long.cert), Some(NOW + 7200));
        assert_eq!(earliest_not_after("no certificate"), None);
    }

    #[test]
    fn debug_never_prints_the_key() {
        let ca = new_ca("a", NOW, Duration::from_secs(7200)).unwrap();
        let shown = format!("{ca:?}");
        assert!(!shown.contains("PRIVATE KEY") && shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn split_pem_keeps_certificates_only() {
        let a = new_ca("a", NOW, Duration::from_secs(7200)).unwrap();
        let b = new_ca("b", NOW, Duration::from_secs(7200)).unwrap();
        let bundle = format!("junk\n{}{}{}", a.cert, a.key, b.cert);
        assert_eq!(split_pem(&bundle), vec![a.cert.clone(), b.cert.clone()]);
    }
}

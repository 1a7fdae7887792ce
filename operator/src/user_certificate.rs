//! KafkaUser client certificates (Koperator's default credentials): a certificate with common
//! name `<user name>` (Kafka's principal `User:CN=<name>`), the user's `dnsNames` and lifetime
//! `expirationSeconds` (default 90 days), issued from the cluster CA of `sslSecrets` into the
//! Secret `spec.secretName` with Koperator's keys `ca.crt`, `tls.crt`, `tls.key` (and with
//! `includeJKS: true` also `keystore.jks`, `truststore.jks` and `password`). [`due`] decides,
//! purely, whether the Secret's certificate must be (re)issued; [`issue`] makes its data;
//! [`status`] reads its expiry for `status.certificate`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use koperator_shared::api::common::CertificateStatus;
use koperator_shared::api::kafkauser::KafkaUser;
use koperator_shared::pki::{self, KeyAndCert, LeafSpec};
use koperator_shared::render::tls;

use crate::jks;

/// Lifetime of a user certificate when `expirationSeconds` is not set (Koperator's 90 days).
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);
/// Key of the JKS keystore and truststore password.
pub const PASSWORD: &str = "password";
/// Key of the JKS keystore (private key and certificate chain, alias `certificate`).
pub const KEYSTORE_JKS: &str = "keystore.jks";
/// Key of the JKS truststore (the CA certificates).
pub const TRUSTSTORE_JKS: &str = "truststore.jks";

/// What the user's certificate must be.
pub fn spec(user: &KafkaUser) -> LeafSpec {
    let mut dns_names = user.spec.dns_names.clone().unwrap_or_default();
    dns_names.sort();
    dns_names.dedup();
    LeafSpec {
        common_name: user.metadata.name.clone().unwrap_or_default(),
        dns_names,
        server: false,
        client: true,
        validity: user
            .spec
            .expiration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_VALIDITY),
    }
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    String::from_utf8(secret.data.as_ref()?.get(key)?.0.clone()).ok()
}

/// Expiry and renewal of the certificate in `data` (the data of Secret `secret_name`).
pub fn status(secret_name: &str, data: &BTreeMap<String, ByteString>) -> Option<CertificateStatus> {
    let pem = String::from_utf8(data.get(tls::TLS_CRT)?.0.clone()).ok()?;
    crate::certificate_status::leaf(secret_name, &pem)
}

/// Why the certificate in `existing` must be issued again for `want` from the CA chain
/// `ca_chain` at `now`, or `None` when it stands; with when it is due otherwise (unix seconds).
pub fn due(
    existing: Option<&Secret>,
    want: &LeafSpec,
    jks_wanted: bool,
    ca_chain: &str,
    now: u64,
) -> (Option<&'static str>, Option<u64>) {
    let Some(secret) = existing else { return (Some("missing"), None) };
    let (Some(cert), Some(key)) = (text(secret, tls::TLS_CRT), text(secret, tls::TLS_KEY)) else {
        return (Some("incomplete"), None);
    };
    let Some(ca) = pki::split_pem(ca_chain).into_iter().next() else { return (Some("no CA"), None) };
    let Some((nb, na)) = pki::validity(&cert) else { return (Some("unreadable"), None) };
    let renew_at = pki::renew_at((nb, na));
    let lifetime = na.saturating_sub(nb).saturating_sub(pki::backdate(want.validity));
    let reason = if !pki::signed_by(&cert, &ca) {
        Some("not signed by the current CA")
    } else if !pki::key_matches(&cert, &key) {
        Some("its key does not match")
    } else if pki::common_name(&cert).as_deref() != Some(want.common_name.as_str())
        || pki::dns_names(&cert).unwrap_or_default() != want.dns_names
    {
        Some("its names changed")
    } else if lifetime.abs_diff(want.validity.as_secs()) > 1 && lifetime < want.validity.as_secs() {
        // A longer lifetime than asked may be the CA's end; a shorter one is a changed request.
        Some("its lifetime changed")
    } else if text(secret, tls::CA_CRT).as_deref() != Some(ca_chain) {
        Some("the trusted CA changed")
    } else if jks_wanted != secret.data.as_ref().is_some_and(|d| d.contains_key(KEYSTORE_JKS)) {
        Some("includeJKS changed")
    } else if now >= renew_at {
        Some("renewal due")
    } else {
        None
    };
    (reason, reason.is_none().then_some(renew_at))
}

/// The Secret data of a new certificate for `want` from `ca` (its chain `ca_chain`), with JKS
/// stores under a fresh password when `jks_wanted`.
pub fn issue(
    ca: &KeyAndCert,
    ca_chain: &str,
    want: &LeafSpec,
    jks_wanted: bool,
    now: u64,
) -> Result<BTreeMap<String, ByteString>, pki::Error> {
    let leaf = pki::issue(ca, want, now)?;
    let bytes = |b: &[u8]| ByteString(b.to_vec());
    let mut data = BTreeMap::from([
        (tls::CA_CRT.to_string(), bytes(ca_chain.as_bytes())),
        (tls::TLS_CRT.to_string(), bytes(leaf.cert.as_bytes())),
        (tls::TLS_KEY.to_string(), bytes(leaf.key.as_bytes())),
    ]);
    if jks_wanted {
        let password = koperator_shared::kafka::scram::random_password(24);
        let chain: Vec<String> = std::iter::once(leaf.cert.clone()).chain(pki::split_pem(ca_chain)).collect();
        let keystore = jks::keystore(&leaf.key, &chain, &password, now)
            .map_err(|reason| pki::Error::Ca { what: "certificate", reason })?;
        let truststore = jks::truststore(&pki::split_pem(ca_chain), &password, now)
            .map_err(|reason| pki::Error::Ca { what: "certificate", reason })?;
        data.insert(KEYSTORE_JKS.into(), bytes(&keystore));
        data.insert(TRUSTSTORE_JKS.into(), bytes(&truststore));
        data.insert(PASSWORD.into(), bytes(password.as_bytes()));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn user(name: &str, expiration: Option<i32>, dns: &[&str]) -> KafkaUser {
        let mut u = KafkaUser::new(name, Default::default());
        u.spec.expiration_seconds = expiration;
        u.spec.dns_names = Some(dns.iter().map(|s| s.to_string()).collect());
        u
    }

    fn secret(data: BTreeMap<String, ByteString>) -> Secret {
        Secret { data: Some(data), ..Default::default() }
    }

    #[test]
    fn issued_once_then_renewed_at_two_thirds_or_when_the_request_changes() {
        let ca = pki::new_ca("cluster-ca", NOW, Duration::from_secs(10_000_000)).unwrap();
        let want = spec(&user("app", Some(3600), &["b.example", "a.example"]));
        assert_eq!(want.dns_names, vec!["a.example", "b.example"]);
        assert_eq!(due(None, &want, false, &ca.cert, NOW).0, Some("missing"));
        let s = secret(issue(&ca, &ca.cert, &want, false, NOW).unwrap());
        let cert = text(&s, tls::TLS_CRT).unwrap();
        assert_eq!(pki::common_name(&cert).as_deref(), Some("app"));
        assert!(pki::signed_by(&cert, &ca.cert));
        let (reason, renew_at) = due(Some(&s), &want, false, &ca.cert, NOW + 10);
        assert_eq!(reason, None);
        assert_eq!(renew_at, Some(NOW - 60 + 3660 * 2 / 3));
        assert_eq!(due(Some(&s), &want, false, &ca.cert, NOW + 2400).0, Some("renewal due"));
        let st = status("app-tls", s.data.as_ref().unwrap()).unwrap();
        assert_eq!(st.secret_name, "app-tls");
        assert_eq!(st.not_after.0.as_second(), (NOW + 3600) as i64);
        assert_eq!(st.renew_at.map(|t| t.0.as_second() as u64), renew_at, "the same renewal as `due`'s");
        assert_eq!(status("app-tls", &BTreeMap::new()), None);
        let longer = spec(&user("app", Some(7200), &["a.example", "b.example"]));
        assert_eq!(due(Some(&s), &longer, false, &ca.cert, NOW).0, Some("its lifetime changed"));
        let renamed = spec(&user("app", Some(3600), &["a.example"]));
        assert_eq!(due(Some(&s), &renamed, false, &ca.cert, NOW).0, Some("its names changed"));
        assert_eq!(due(Some(&s), &want, true, &ca.cert, NOW).0, Some("includeJKS changed"));
        let other = pki::new_ca("other", NOW, Duration::from_secs(10_000_000)).unwrap();
        assert_eq!(due(Some(&s), &want, false, &other.cert, NOW).0, Some("not signed by the current CA"));
        assert_eq!(spec(&user("app", None, &[])).validity, DEFAULT_VALIDITY);
    }

    #[test]
    fn jks_stores_come_with_their_password() {
        let ca = pki::new_ca("cluster-ca", NOW, Duration::from_secs(10_000_000)).unwrap();
        let want = spec(&user("app", None, &[]));
        let data = issue(&ca, &ca.cert, &want, true, NOW).unwrap();
        for key in [KEYSTORE_JKS, TRUSTSTORE_JKS, PASSWORD, tls::CA_CRT, tls::TLS_CRT, tls::TLS_KEY] {
            assert!(data.contains_key(key), "{key}");
        }
        assert_eq!(&data[KEYSTORE_JKS].0[..4], &[0xFE, 0xED, 0xFE, 0xED]);
        assert_eq!(due(Some(&secret(data)), &want, true, &ca.cert, NOW).0, None);
    }
}

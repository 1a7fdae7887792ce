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

use koperator_shared::jks;

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

/// The cluster's CAs as a user certificate is checked against them.
#[derive(Clone, Copy, Debug)]
pub struct Trust<'a> {
    /// The CA chain that signs new certificates (`caCert`: the first one signs).
    pub chain: &'a str,
    /// What `ca.crt` must hold: every CA the cluster trusts (during a CA rollover the old one
    /// too), as in the operator's own certificate Secret.
    pub bundle: &'a str,
    /// Whether every broker trusts the current CA already (the operator's own certificate has
    /// moved to it): a certificate of an old CA may move.
    pub current_trusted: bool,
}

/// What to do with a user's certificate Secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Todo {
    /// Issue a new certificate, for this reason.
    Issue(&'static str),
    /// Keep the certificate; only the trusted CAs change (`ca.crt`, `truststore.jks`).
    Retrust,
}

/// What the certificate in `existing` needs for `want` under `trust` at `now`, or `None` when
/// it stands; with when it is due otherwise (unix seconds).
pub fn due(
    existing: Option<&Secret>,
    want: &LeafSpec,
    jks_wanted: bool,
    trust: &Trust,
    now: u64,
) -> (Option<Todo>, Option<u64>) {
    let issue = |reason| (Some(Todo::Issue(reason)), None);
    let Some(secret) = existing else { return issue("missing") };
    let (Some(cert), Some(key)) = (text(secret, tls::TLS_CRT), text(secret, tls::TLS_KEY)) else {
        return issue("incomplete");
    };
    let Some(ca) = pki::split_pem(trust.chain).into_iter().next() else { return issue("no CA") };
    let Some((nb, na)) = pki::validity(&cert) else { return issue("unreadable") };
    let renew_at = pki::renew_at((nb, na));
    let lifetime = na.saturating_sub(nb).saturating_sub(pki::backdate(want.validity));
    let trusted = text(secret, tls::CA_CRT);
    let moving = !pki::signed_by(&cert, &ca) && pki::split_pem(trust.bundle).iter().any(|c| pki::signed_by(&cert, c));
    let todo = if moving {
        // A CA rollover: first trust both CAs, then move once every broker trusts the new one.
        if trusted.as_deref() != Some(trust.bundle) {
            Some(Todo::Retrust)
        } else if trust.current_trusted {
            Some(Todo::Issue("moving to the new CA"))
        } else {
            None
        }
    } else if !pki::signed_by(&cert, &ca) {
        Some(Todo::Issue("not signed by the current CA"))
    } else if !pki::key_matches(&cert, &key) {
        Some(Todo::Issue("its key does not match"))
    } else if pki::common_name(&cert).as_deref() != Some(want.common_name.as_str())
        || pki::dns_names(&cert).unwrap_or_default() != want.dns_names
    {
        Some(Todo::Issue("its names changed"))
    } else if lifetime.abs_diff(want.validity.as_secs()) > 1 && lifetime < want.validity.as_secs() {
        // A longer lifetime than asked may be the CA's end; a shorter one is a changed request.
        Some(Todo::Issue("its lifetime changed"))
    } else if jks_wanted != secret.data.as_ref().is_some_and(|d| d.contains_key(KEYSTORE_JKS)) {
        Some(Todo::Issue("includeJKS changed"))
    } else if trusted.as_deref() != Some(trust.bundle) {
        Some(Todo::Retrust)
    } else if now >= renew_at {
        Some(Todo::Issue("renewal due"))
    } else {
        None
    };
    (todo, todo.is_none().then_some(renew_at))
}

/// The Secret data of a new certificate for `want` from `ca` (its chain `trust.chain`), trusting
/// `trust.bundle`, with JKS stores under a fresh password when `jks_wanted`.
pub fn issue(
    ca: &KeyAndCert,
    trust: &Trust,
    want: &LeafSpec,
    jks_wanted: bool,
    now: u64,
) -> Result<BTreeMap<String, ByteString>, pki::Error> {
    let leaf = pki::issue(ca, want, now)?;
    let bytes = |b: &[u8]| ByteString(b.to_vec());
    let mut data = BTreeMap::from([
        (tls::CA_CRT.to_string(), bytes(trust.bundle.as_bytes())),
        (tls::TLS_CRT.to_string(), bytes(leaf.cert.as_bytes())),
        (tls::TLS_KEY.to_string(), bytes(leaf.key.as_bytes())),
    ]);
    if jks_wanted {
        let password = koperator_shared::kafka::scram::random_password(24);
        let chain: Vec<String> = std::iter::once(leaf.cert.clone()).chain(pki::split_pem(trust.chain)).collect();
        let keystore = jks::keystore(&leaf.key, &chain, &password, now)
            .map_err(|reason| pki::Error::Ca { what: "certificate", reason })?;
        data.insert(KEYSTORE_JKS.into(), bytes(&keystore));
        data.insert(PASSWORD.into(), bytes(password.as_bytes()));
        data.insert(TRUSTSTORE_JKS.into(), bytes(&truststore(trust.bundle, &password, now)?));
    }
    Ok(data)
}

fn truststore(bundle: &str, password: &str, now: u64) -> Result<Vec<u8>, pki::Error> {
    jks::truststore(&pki::split_pem(bundle), password, now)
        .map_err(|reason| pki::Error::Ca { what: "certificate", reason })
}

/// `existing`'s data trusting `trust.bundle` instead: `ca.crt` and, when there is one, the JKS
/// truststore under the Secret's password; the certificate and key stay.
pub fn retrust(existing: &Secret, trust: &Trust, now: u64) -> Result<BTreeMap<String, ByteString>, pki::Error> {
    let mut data = existing.data.clone().unwrap_or_default();
    data.insert(tls::CA_CRT.into(), ByteString(trust.bundle.as_bytes().to_vec()));
    if data.contains_key(TRUSTSTORE_JKS) {
        let password = text(existing, PASSWORD).unwrap_or_default();
        data.insert(TRUSTSTORE_JKS.into(), ByteString(truststore(trust.bundle, &password, now)?));
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

    /// Outside a CA rollover: the chain is all that is trusted.
    fn trust(chain: &str) -> Trust<'_> {
        Trust { chain, bundle: chain, current_trusted: true }
    }

    fn secret(data: BTreeMap<String, ByteString>) -> Secret {
        Secret { data: Some(data), ..Default::default() }
    }

    #[test]
    fn issued_once_then_renewed_at_two_thirds_or_when_the_request_changes() {
        let ca = pki::new_ca("cluster-ca", NOW, Duration::from_secs(10_000_000)).unwrap();
        let want = spec(&user("app", Some(3600), &["b.example", "a.example"]));
        assert_eq!(want.dns_names, vec!["a.example", "b.example"]);
        assert_eq!(due(None, &want, false, &trust(&ca.cert), NOW).0, Some(Todo::Issue("missing")));
        let s = secret(issue(&ca, &trust(&ca.cert), &want, false, NOW).unwrap());
        let cert = text(&s, tls::TLS_CRT).unwrap();
        assert_eq!(pki::common_name(&cert).as_deref(), Some("app"));
        assert!(pki::signed_by(&cert, &ca.cert));
        let (reason, renew_at) = due(Some(&s), &want, false, &trust(&ca.cert), NOW + 10);
        assert_eq!(reason, None);
        assert_eq!(renew_at, Some(NOW - 60 + 3660 * 2 / 3));
        assert_eq!(due(Some(&s), &want, false, &trust(&ca.cert), NOW + 2400).0, Some(Todo::Issue("renewal due")));
        let st = status("app-tls", s.data.as_ref().unwrap()).unwrap();
        assert_eq!(st.secret_name, "app-tls");
        assert_eq!(st.not_after.0.as_second(), (NOW + 3600) as i64);
        assert_eq!(st.renew_at.map(|t| t.0.as_second() as u64), renew_at, "the same renewal as `due`'s");
        assert_eq!(status("app-tls", &BTreeMap::new()), None);
        let longer = spec(&user("app", Some(7200), &["a.example", "b.example"]));
        assert_eq!(due(Some(&s), &longer, false, &trust(&ca.cert), NOW).0, Some(Todo::Issue("its lifetime changed")));
        let renamed = spec(&user("app", Some(3600), &["a.example"]));
        assert_eq!(due(Some(&s), &renamed, false, &trust(&ca.cert), NOW).0, Some(Todo::Issue("its names changed")));
        assert_eq!(due(Some(&s), &want, true, &trust(&ca.cert), NOW).0, Some(Todo::Issue("includeJKS changed")));
        let other = pki::new_ca("other", NOW, Duration::from_secs(10_000_000)).unwrap();
        assert_eq!(
            due(Some(&s), &want, false, &trust(&other.cert), NOW).0,
            Some(Todo::Issue("not signed by the current CA"))
        );
        assert_eq!(spec(&user("app", None, &[])).validity, DEFAULT_VALIDITY);
    }

    #[test]
    fn in_a_ca_rollover_a_user_trusts_both_then_moves_once_the_brokers_trust_the_new_ca() {
        let old = pki::new_ca("kafka-ca", NOW, Duration::from_secs(10_000_000)).unwrap();
        let new = pki::new_ca("kafka-ca-2", NOW, Duration::from_secs(10_000_000)).unwrap();
        let want = spec(&user("app", Some(3600), &[]));
        let s = secret(issue(&old, &trust(&old.cert), &want, true, NOW).unwrap());
        let bundle = format!("{}{}", new.cert, old.cert);
        let step1 = Trust { chain: &new.cert, bundle: &bundle, current_trusted: false };
        assert_eq!(due(Some(&s), &want, true, &step1, NOW).0, Some(Todo::Retrust));
        let both = secret(retrust(&s, &step1, NOW).unwrap());
        assert_eq!(text(&both, tls::TLS_CRT), text(&s, tls::TLS_CRT), "the certificate stays");
        assert_eq!(text(&both, tls::CA_CRT).as_deref(), Some(bundle.as_str()));
        assert_ne!(both.data.as_ref().unwrap()[TRUSTSTORE_JKS], s.data.as_ref().unwrap()[TRUSTSTORE_JKS]);
        assert_eq!(due(Some(&both), &want, true, &step1, NOW).0, None, "waits for the brokers");
        let step2 = Trust { current_trusted: true, ..step1 };
        assert_eq!(due(Some(&both), &want, true, &step2, NOW).0, Some(Todo::Issue("moving to the new CA")));
        let moved = secret(issue(&new, &step2, &want, true, NOW).unwrap());
        assert_eq!(due(Some(&moved), &want, true, &step2, NOW).0, None);
        // The old CA dropped by the cluster: the user's trust follows.
        assert_eq!(due(Some(&moved), &want, true, &trust(&new.cert), NOW).0, Some(Todo::Retrust));
    }

    #[test]
    fn jks_stores_come_with_their_password() {
        let ca = pki::new_ca("cluster-ca", NOW, Duration::from_secs(10_000_000)).unwrap();
        let want = spec(&user("app", None, &[]));
        let data = issue(&ca, &trust(&ca.cert), &want, true, NOW).unwrap();
        for key in [KEYSTORE_JKS, TRUSTSTORE_JKS, PASSWORD, tls::CA_CRT, tls::TLS_CRT, tls::TLS_KEY] {
            assert!(data.contains_key(key), "{key}");
        }
        assert_eq!(&data[KEYSTORE_JKS].0[..4], &[0xFE, 0xED, 0xFE, 0xED]);
        assert_eq!(due(Some(&secret(data)), &want, true, &trust(&ca.cert), NOW).0, None);
    }
}

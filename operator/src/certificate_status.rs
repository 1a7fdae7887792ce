//! Certificates as statuses show them ([`CertificateStatus`]): when one expires and when the
//! operator renews it, read from the PEM in its Secret (never from what was asked for), and
//! the same as the series of `koperator_certificate_expiry_timestamp_seconds`. Pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use koperator_shared::api::common::CertificateStatus;
use koperator_shared::pki;

use crate::metrics::certificate_expiry::{Expiry, Role};

/// `unix` seconds as a Kubernetes time; `None` past what a timestamp can hold.
fn time(unix: u64) -> Option<Time> {
    Timestamp::from_second(i64::try_from(unix).ok()?).ok().map(Time)
}

/// A leaf certificate the operator renews (the one certificate of `pem`, in Secret
/// `secret_name`): its end of validity and its renewal two thirds into its life.
pub fn leaf(secret_name: &str, pem: &str) -> Option<CertificateStatus> {
    let validity = pki::validity(pem)?;
    Some(CertificateStatus {
        secret_name: secret_name.to_string(),
        not_after: time(validity.1)?,
        renew_at: Some(time(pki::renew_at(validity))?),
    })
}

/// A CA the operator never renews (`bundle`: the CA and any intermediates, in Secret
/// `secret_name`): the earliest end of validity in the bundle, no renewal.
pub fn ca(secret_name: &str, bundle: &str) -> Option<CertificateStatus> {
    Some(CertificateStatus {
        secret_name: secret_name.to_string(),
        not_after: time(pki::earliest_not_after(bundle)?)?,
        renew_at: None,
    })
}

/// The expiry series of `status` as a certificate for `role`.
pub fn series(role: Role, status: &CertificateStatus) -> Expiry {
    Expiry { secret: status.secret_name.clone(), role, not_after: status.not_after.0.as_second() }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn a_leaf_expires_with_its_certificate_and_renews_two_thirds_in() {
        let ca_pair = pki::new_ca("ca", NOW, Duration::from_secs(100_000)).unwrap();
        let spec = pki::LeafSpec {
            common_name: "app".into(),
            dns_names: vec![],
            server: false,
            client: true,
            validity: Duration::from_secs(3000),
        };
        let cert = pki::issue(&ca_pair, &spec, NOW).unwrap().cert;
        let s = leaf("app-tls", &cert).unwrap();
        assert_eq!(s.secret_name, "app-tls");
        assert_eq!(s.not_after.0.as_second(), (NOW + 3000) as i64);
        // Backdated a minute: valid 3060 s, renewed 2040 s after not-before.
        assert_eq!(s.renew_at.as_ref().unwrap().0.as_second(), (NOW - 60 + 2040) as i64);
        assert_eq!(serde_json::to_value(&s).unwrap()["notAfter"], "2027-01-15T08:50:00Z", "RFC 3339");
        assert_eq!(series(Role::KafkaUser, &s).not_after, (NOW + 3000) as i64);
        assert_eq!(leaf("x", "not a certificate"), None);
    }

    #[test]
    fn a_ca_has_no_renewal_and_expires_with_its_shortest_link() {
        let root = pki::new_ca("root", NOW, Duration::from_secs(100_000)).unwrap();
        let intermediate = pki::new_ca("intermediate", NOW, Duration::from_secs(50_000)).unwrap();
        let s = ca("kafka-ca", &format!("{}{}", intermediate.cert, root.cert)).unwrap();
        assert_eq!(s.not_after.0.as_second(), (NOW + 50_000) as i64);
        assert_eq!(s.renew_at, None);
        assert!(!serde_json::to_string(&s).unwrap().contains("renewAt"));
        assert_eq!(ca("kafka-ca", ""), None);
    }
}

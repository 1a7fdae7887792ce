//! `koperator_certificate_expiry_timestamp_seconds{namespace, owner_kind, owner, secret, role}`:
//! when each certificate the operator reads expires (unix seconds of notAfter).
//!
//! Each reconcile replaces an object's series with the certificates it read ([`set`]): a
//! certificate that left (a removed broker, a cluster without SSL any more, a user switched to
//! SCRAM) loses its series then; a deleted KafkaCluster or KafkaUser loses all of its series in
//! its finalizer's cleanup ([`forget`]). Series exist only for objects this replica reconciles
//! (a replica that loses the lead exits).
//!
//! [`set`]: CertificateExpiry::set
//! [`forget`]: CertificateExpiry::forget

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// What a certificate is for (the `role` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A cluster's CA.
    Ca,
    /// A broker's certificate.
    Broker,
    /// The operator's client certificate for a cluster.
    OperatorClient,
    /// A KafkaUser's client certificate.
    KafkaUser,
}

impl Role {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ca => "ca",
            Role::Broker => "broker",
            Role::OperatorClient => "operator-client",
            Role::KafkaUser => "kafkauser",
        }
    }
}

/// The object whose certificates a set of series describes.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Owner {
    /// `KafkaCluster` or `KafkaUser`.
    pub kind: &'static str,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// One certificate of an owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// The Secret that holds it.
    pub secret: String,
    /// What it is for.
    pub role: Role,
    /// Its notAfter, unix seconds.
    pub not_after: i64,
}

/// Labels of one certificate's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct CertificateLabels {
    /// Namespace of the owning object (and of the Secret).
    pub namespace: String,
    /// `KafkaCluster` or `KafkaUser`.
    pub owner_kind: &'static str,
    /// Name of the owning object.
    pub owner: String,
    /// The Secret.
    pub secret: String,
    /// `ca`, `broker`, `operator-client` or `kafkauser`.
    pub role: &'static str,
}

/// The gauge family and which series belong to which object.
#[derive(Default)]
pub struct CertificateExpiry {
    family: Family<CertificateLabels, Gauge>,
    by_owner: Mutex<HashMap<Owner, BTreeSet<CertificateLabels>>>,
}

impl CertificateExpiry {
    /// The family, to register.
    pub fn family(&self) -> Family<CertificateLabels, Gauge> {
        self.family.clone()
    }

    /// Makes `owner`'s series exactly `certs`: new ones are set, gone ones removed.
    pub fn set(&self, owner: &Owner, certs: &[Expiry]) {
        let mut by_owner = self.by_owner.lock().unwrap_or_else(|e| e.into_inner());
        let now: BTreeSet<CertificateLabels> = certs
            .iter()
            .map(|c| {
                let labels = CertificateLabels {
                    namespace: owner.namespace.clone(),
                    owner_kind: owner.kind,
                    owner: owner.name.clone(),
                    secret: c.secret.clone(),
                    role: c.role.as_str(),
                };
                self.family.get_or_create(&labels).set(c.not_after);
                labels
            })
            .collect();
        for gone in by_owner.get(owner).into_iter().flatten().filter(|l| !now.contains(*l)) {
            self.family.remove(gone);
        }
        if now.is_empty() {
            by_owner.remove(owner);
        } else {
            by_owner.insert(owner.clone(), now);
        }
    }

    /// Removes every series of `owner` (it is being deleted).
    pub fn forget(&self, owner: &Owner) {
        self.set(owner, &[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    fn owner(kind: &'static str, name: &str) -> Owner {
        Owner { kind, namespace: "kafka".into(), name: name.into() }
    }

    fn expiry(secret: &str, role: Role, not_after: i64) -> Expiry {
        Expiry { secret: secret.into(), role, not_after }
    }

    fn exposed(m: &CertificateExpiry) -> Vec<String> {
        let mut r = Registry::default();
        r.register("certificate_expiry_timestamp_seconds", "notAfter", m.family());
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
        let mut lines: Vec<String> = out.lines().filter(|l| !l.starts_with('#')).map(String::from).collect();
        lines.sort();
        lines
    }

    #[test]
    fn a_reconcile_replaces_the_series_of_its_object_only() {
        let m = CertificateExpiry::default();
        let kc = owner("KafkaCluster", "kafka");
        m.set(
            &kc,
            &[
                expiry("kafka-ca", Role::Ca, 300),
                expiry("kafka-0-server-certificate", Role::Broker, 100),
                expiry("kafka-1-server-certificate", Role::Broker, 100),
                expiry("kafka-controller", Role::OperatorClient, 100),
            ],
        );
        m.set(&owner("KafkaUser", "app"), &[expiry("app-tls", Role::KafkaUser, 200)]);
        assert_eq!(exposed(&m).len(), 5);
        assert!(exposed(&m).contains(
            &r#"certificate_expiry_timestamp_seconds{namespace="kafka",owner_kind="KafkaUser",owner="app",secret="app-tls",role="kafkauser"} 200"#
                .to_string()
        ));

        // Broker 1 removed, broker 0 renewed.
        m.set(
            &kc,
            &[
                expiry("kafka-ca", Role::Ca, 300),
                expiry("kafka-0-server-certificate", Role::Broker, 150),
                expiry("kafka-controller", Role::OperatorClient, 100),
            ],
        );
        let lines = exposed(&m);
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(!lines.iter().any(|l| l.contains("kafka-1-server-certificate")), "{lines:#?}");
        assert!(lines.iter().any(|l| l.contains("kafka-0-server-certificate") && l.ends_with(" 150")));
    }

    #[test]
    fn a_deleted_object_leaves_no_series() {
        let m = CertificateExpiry::default();
        let kc = owner("KafkaCluster", "kafka");
        let same_name_user = owner("KafkaUser", "kafka");
        m.set(&kc, &[expiry("kafka-ca", Role::Ca, 300), expiry("kafka-controller", Role::OperatorClient, 100)]);
        m.set(&same_name_user, &[expiry("kafka-tls", Role::KafkaUser, 200)]);
        m.forget(&kc);
        let lines = exposed(&m);
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert!(lines[0].contains(r#"owner_kind="KafkaUser""#));
        m.forget(&same_name_user);
        assert!(exposed(&m).is_empty());
        assert!(m.by_owner.lock().unwrap().is_empty(), "nothing kept for deleted objects");
        m.forget(&kc);
    }
}

//! Certificates of the user's own (Koperator's `serverSSLCertSecret` per listener and
//! `clientSSLCertSecret`): JKS stores in Secrets the user manages, which the brokers mount and
//! the operator only reads. Pure: decides from the Secrets the dereference step read.
//!
//! - A broker Pod is created, and an out-of-date one restarted, only while every listener
//!   Secret opens (keystore with one private key, truststore with a CA, one password without a
//!   line break); otherwise the cluster reports `Degraded/CertificateError` naming the Secret.
//!   A broken `clientSSLCertSecret` is reported too, but brokers do not mount it.
//! - While any of them cannot be read, live broker ConfigMaps are left as they are (their
//!   `super.users` would lose that certificate's principal).
//! - The principals of the inter-broker and controller listeners' certificates and of the
//!   client certificate become super users (as Koperator adds them).
//! - The Pods carry a fingerprint of the listener Secrets, so a changed Secret reaches every
//!   broker through the health-gated roll.

use koperator_shared::render::tls;
use koperator_shared::validated::ValidatedCluster;

use super::certificates::LiveSecrets;

/// Pod annotation with the fingerprint of the listener Secrets of the user's own.
pub const OWN_CERTIFICATE_ANNOTATION: &str = "koperator.banzaicloud.io/own-certificate-hash";

/// What the operator made of the cluster's Secrets of the user's own.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct OwnCertificates {
    /// Principals the brokers must treat as super users.
    pub principals: Vec<String>,
    /// Fingerprint of the listener Secrets' data, when the cluster has any.
    pub fingerprint: Option<String>,
    /// Why a listener Secret cannot be used (empty when all can): brokers would not start.
    pub problems: Vec<String>,
    /// Why `clientSSLCertSecret` cannot be used: only the admin clients need it.
    pub client_problems: Vec<String>,
}

impl OwnCertificates {
    /// Every problem, listener Secrets first.
    pub fn all_problems(&self) -> impl Iterator<Item = &String> {
        self.problems.iter().chain(&self.client_problems)
    }

    /// Whether the principals are complete: while a Secret cannot be read, its principal is
    /// missing, and live broker configs must keep theirs.
    pub fn complete(&self) -> bool {
        self.problems.is_empty() && self.client_problems.is_empty()
    }
}

/// The Secrets of the user's own the cluster names.
pub fn secret_names(cluster: &ValidatedCluster) -> Vec<String> {
    let mut names: Vec<String> = tls::own_listeners(cluster).into_iter().map(|(_, s)| s.to_string()).collect();
    names.extend(cluster.spec.client_ssl_cert_secret.as_ref().map(|s| s.name.clone()));
    names.sort();
    names.dedup();
    names
}

/// Checks the Secrets of the user's own that `cluster` names against `secrets`.
pub fn check(cluster: &ValidatedCluster, secrets: &LiveSecrets) -> OwnCertificates {
    let mut out = OwnCertificates::default();
    let principal = |p: String, out: &mut OwnCertificates| {
        if !out.principals.contains(&p) {
            out.principals.push(p);
        }
    };
    let mut hashed = Vec::new();
    for (l, name) in tls::own_listeners(cluster) {
        let Some(secret) = secrets.0.get(name) else {
            out.problems.push(format!("Secret {name} (serverSSLCertSecret of listener '{}') does not exist", l.name));
            continue;
        };
        match tls::read_own_certificate(secret, tls::OwnUse::Listener) {
            Ok(own) => {
                let inner = cluster.spec.listeners_config.internal_listeners.iter().any(|i| {
                    i.common.name == l.name
                        && (i.common.used_for_inner_broker_communication || i.used_for_controller_communication)
                });
                if inner {
                    principal(own.principal, &mut out);
                }
            }
            Err(why) => {
                out.problems.push(format!("Secret {name} (serverSSLCertSecret of listener '{}'): {why}", l.name));
            }
        }
        hashed.push(name);
    }
    if let Some(name) = cluster.spec.client_ssl_cert_secret.as_ref().map(|s| s.name.as_str()) {
        match secrets.0.get(name).map(|s| tls::read_own_certificate(s, tls::OwnUse::Client)) {
            Some(Ok(own)) => principal(own.principal, &mut out),
            Some(Err(why)) => out.client_problems.push(format!("Secret {name} (clientSSLCertSecret): {why}")),
            None => out.client_problems.push(format!("Secret {name} (clientSSLCertSecret) does not exist")),
        }
    }
    if !hashed.is_empty() {
        hashed.sort();
        hashed.dedup();
        let mut material = Vec::new();
        for name in hashed {
            material.extend_from_slice(name.as_bytes());
            for key in [tls::KEYSTORE_JKS, tls::TRUSTSTORE_JKS, tls::PASSWORD] {
                material.push(0);
                let data = secrets.0.get(name).and_then(|s| s.data.as_ref()).and_then(|d| d.get(key));
                material.extend_from_slice(data.map(|b| b.0.as_slice()).unwrap_or_default());
            }
        }
        out.fingerprint = Some(koperator_shared::hash::fnv1a64_hex(&material));
    }
    out
}

/// Test fixtures: Secrets of the user's own.
#[cfg(test)]
pub(crate) mod fixtures {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use koperator_shared::jks;
    use koperator_shared::pki::{self, LeafSpec};
    use koperator_shared::render::tls;

    const NOW: u64 = 1_800_000_000;

    /// A Secret with a JKS keystore (a leaf with common name `cn` from a new CA), truststore
    /// (that CA) and `password`.
    pub(crate) fn jks_secret(cn: &str, password: &str) -> Secret {
        let ca = pki::new_ca("user-ca", NOW, std::time::Duration::from_secs(3600)).unwrap();
        let leaf = pki::issue(
            &ca,
            &LeafSpec {
                common_name: cn.into(),
                dns_names: vec![],
                server: true,
                client: true,
                validity: std::time::Duration::from_secs(3600),
            },
            NOW,
        )
        .unwrap();
        let data = [
            (tls::KEYSTORE_JKS, jks::keystore(&leaf.key, std::slice::from_ref(&leaf.cert), password, NOW).unwrap()),
            (tls::TRUSTSTORE_JKS, jks::truststore(std::slice::from_ref(&ca.cert), password, NOW).unwrap()),
            (tls::PASSWORD, password.as_bytes().to_vec()),
        ];
        Secret {
            data: Some(data.into_iter().map(|(k, v)| (k.to_string(), ByteString(v))).collect()),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::jks_secret;
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use serde_json::json;

    fn cluster(client: bool) -> ValidatedCluster {
        let mut spec = json!({
            "kRaft": true,
            "brokers": [{"id": 0, "brokerConfig": {"processRoles": ["broker", "controller"],
                "storageConfigs": [{"mountPath": "/kafka-logs", "emptyDir": {}}]}}],
            "listenersConfig": {"internalListeners": [
                {"name": "internal", "type": "ssl", "containerPort": 29092, "usedForInnerBrokerCommunication": true,
                 "serverSSLCertSecret": {"name": "internal-jks"}},
                {"name": "controller", "type": "plaintext", "containerPort": 29093, "usedForControllerCommunication": true,
                 "usedForInnerBrokerCommunication": false}
            ]}
        });
        if client {
            spec["clientSSLCertSecret"] = json!({"name": "client-jks"});
        }
        let kc = serde_json::from_value(json!({
            "apiVersion": "kafka.banzaicloud.io/v1beta1", "kind": "KafkaCluster",
            "metadata": {"name": "kafka", "namespace": "team-a", "uid": "u1"}, "spec": spec
        }))
        .unwrap();
        koperator_shared::validated::must(&kc)
    }

    fn secrets(pairs: Vec<(&str, Secret)>) -> LiveSecrets {
        LiveSecrets(pairs.into_iter().map(|(n, s)| (n.to_string(), s)).collect())
    }

    #[test]
    fn usable_secrets_give_super_users_and_a_fingerprint() {
        let c = cluster(true);
        assert_eq!(secret_names(&c), vec!["client-jks", "internal-jks"]);
        let live =
            secrets(vec![("internal-jks", jks_secret("broker", "pw1")), ("client-jks", jks_secret("admin", "pw2"))]);
        let own = check(&c, &live);
        assert!(own.problems.is_empty(), "{:?}", own.problems);
        assert_eq!(own.principals, vec!["User:CN=broker", "User:CN=admin"]);
        let first = own.fingerprint.clone().unwrap();
        let live =
            secrets(vec![("internal-jks", jks_secret("broker", "pw1")), ("client-jks", jks_secret("admin", "pw2"))]);
        assert_ne!(check(&c, &live).fingerprint.unwrap(), first, "a new keystore is a new fingerprint");
    }

    #[test]
    fn a_missing_or_unusable_secret_is_a_problem_naming_it() {
        let c = cluster(true);
        let own = check(&c, &secrets(vec![]));
        assert_eq!((own.problems.len(), own.client_problems.len()), (1, 1), "{own:?}");
        assert!(own.problems[0].contains("internal-jks") && own.problems[0].contains("does not exist"));
        assert!(!own.complete());
        let mut wrong = jks_secret("broker", "pw1");
        wrong.data.as_mut().unwrap().insert(tls::PASSWORD.into(), ByteString(b"other".to_vec()));
        let own = check(&c, &secrets(vec![("internal-jks", wrong), ("client-jks", jks_secret("admin", "pw2"))]));
        assert_eq!(own.problems.len(), 1);
        assert!(own.problems[0].contains("wrong password"), "{}", own.problems[0]);
        assert!(!own.problems[0].contains("other"), "no password in messages: {}", own.problems[0]);
        assert_eq!(own.principals, vec!["User:CN=admin"]);
        // Kafka reads the password file as is: a trailing line break is refused for listeners.
        let mut newline = jks_secret("broker", "pw1");
        newline.data.as_mut().unwrap().insert(tls::PASSWORD.into(), ByteString(b"pw1\n".to_vec()));
        let own = check(&c, &secrets(vec![("internal-jks", newline), ("client-jks", jks_secret("admin", "pw2"))]));
        assert!(own.problems[0].contains("line break"), "{:?}", own.problems);
        // A common name that would change its principal.
        let own = check(
            &c,
            &secrets(vec![("internal-jks", jks_secret("b;User:x", "pw1")), ("client-jks", jks_secret("admin", "pw2"))]),
        );
        assert!(own.problems[0].contains("common name"), "{:?}", own.problems);
    }

    #[test]
    fn without_secrets_of_the_users_own_nothing_is_read() {
        let mut c = cluster(true);
        let own = check(&c, &secrets(vec![("internal-jks", jks_secret("broker", "pw"))]));
        assert!(own.fingerprint.is_some());
        let mut kc: koperator_shared::api::KafkaCluster = (*c).clone();
        kc.spec.listeners_config.internal_listeners[0].common.listener_type =
            koperator_shared::api::kafkacluster::SecurityProtocol::Plaintext;
        kc.spec.listeners_config.internal_listeners[0].common.server_ssl_cert_secret = None;
        kc.spec.listeners_config.internal_listeners[0].common.ssl_client_auth = None;
        kc.spec.client_ssl_cert_secret = None;
        c = koperator_shared::validated::must(&kc);
        assert!(secret_names(&c).is_empty());
        assert_eq!(check(&c, &secrets(vec![])), OwnCertificates::default());
    }
}

//! The SCRAM credential the operator and the webhook log in with on a SASL admin listener
//! (`render::sasl`): its password lives in `<cluster>-admin-scram`, a Secret the operator
//! creates once (owned by the KafkaCluster) before any broker Pod, since brokers bootstrap the
//! credential from it when their storage is formatted. Pure: decides from the Secrets read.

use koperator_shared::render::sasl;
use koperator_shared::validated::ValidatedCluster;
use kube::ResourceExt;

use super::certificates::LiveSecrets;

/// What the cluster's admin credential needs.
#[derive(Debug, PartialEq, Eq)]
pub enum AdminCredential {
    /// The admin listener is not SASL: no credential.
    NotNeeded,
    /// The Secret is the cluster's own and holds a password.
    Ready,
    /// The Secret does not exist: the operator creates it (named here) before any Pod.
    Create(String),
    /// A Secret of that name exists but is not the cluster's (or has no password): nothing
    /// that mounts it is created, and the status says so.
    Unusable(String),
}

impl AdminCredential {
    /// Whether broker Pods may be created (their admin Secret is there, or none is needed).
    pub fn ready(&self) -> bool {
        matches!(self, AdminCredential::NotNeeded | AdminCredential::Ready)
    }
}

/// The admin credential's state for `cluster` given the live `secrets`. `formatted` says
/// whether brokers may already have formatted their storage (a Pod or disk of the cluster
/// exists): the credential is bootstrapped only then, so a missing Secret is not made anew
/// (a new password would lock the operator out for good).
pub fn check(cluster: &ValidatedCluster, secrets: &LiveSecrets, formatted: bool) -> AdminCredential {
    if !sasl::admin_scram(cluster) {
        return AdminCredential::NotNeeded;
    }
    let name = sasl::admin_secret(cluster);
    match secrets.0.get(&name) {
        None if formatted => AdminCredential::Unusable(format!(
            "Secret {name} (the admin SCRAM credential) is missing, and the brokers' storage already holds the \
             credential it had: restore the Secret with its password (a new one would not be known to Kafka)"
        )),
        None => AdminCredential::Create(name),
        Some(s) => match sasl::admin_password(s, &cluster.uid().unwrap_or_default()) {
            Ok(_) => AdminCredential::Ready,
            Err(why) => AdminCredential::Unusable(format!(
                "Secret {name} (the admin SCRAM credential) cannot be used: {why}; delete or rename it"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use serde_json::json;

    fn cluster(admin: &str) -> ValidatedCluster {
        let kc = serde_json::from_value(json!({
            "apiVersion": "kafka.banzaicloud.io/v1beta1", "kind": "KafkaCluster",
            "metadata": {"name": "kafka", "namespace": "team-a", "uid": "u1"},
            "spec": {
                "kRaft": true,
                "brokers": [{"id": 0, "brokerConfig": {"processRoles": ["broker", "controller"],
                    "storageConfigs": [{"mountPath": "/kafka-logs", "emptyDir": {}}]}}],
                "listenersConfig": {"internalListeners": [
                    {"name": "internal", "type": "plaintext", "containerPort": 29092, "usedForInnerBrokerCommunication": true},
                    {"name": "controller", "type": "plaintext", "containerPort": 29093, "usedForControllerCommunication": true,
                     "usedForInnerBrokerCommunication": false},
                    {"name": "sasl", "type": admin, "containerPort": 29094, "usedForInnerBrokerCommunication": false,
                     "usedForKafkaAdminCommunication": true}
                ]}
            }
        }))
        .unwrap();
        koperator_shared::validated::must(&kc)
    }

    fn secret(owner: &str) -> Secret {
        Secret {
            metadata: kube::api::ObjectMeta {
                owner_references: Some(vec![OwnerReference {
                    uid: owner.into(),
                    controller: Some(true),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            data: Some([("password".to_string(), ByteString(b"pw".to_vec()))].into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_sasl_admin_listener_needs_the_clusters_own_secret() {
        assert_eq!(check(&cluster("plaintext"), &LiveSecrets::default(), false), AdminCredential::NotNeeded);
        let c = cluster("sasl_plaintext");
        assert_eq!(check(&c, &LiveSecrets::default(), false), AdminCredential::Create("kafka-admin-scram".into()));
        let lost = check(&c, &LiveSecrets::default(), true);
        assert!(matches!(&lost, AdminCredential::Unusable(m) if m.contains("restore")), "not made anew: {lost:?}");
        let live = |s| LiveSecrets([("kafka-admin-scram".to_string(), s)].into());
        assert_eq!(check(&c, &live(secret("u1")), true), AdminCredential::Ready);
        let foreign = check(&c, &live(secret("someone-else")), false);
        assert!(!foreign.ready());
        assert!(matches!(&foreign, AdminCredential::Unusable(m) if m.contains("not controlled")), "{foreign:?}");
    }
}

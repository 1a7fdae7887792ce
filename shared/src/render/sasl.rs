//! SASL listeners (`sasl_plaintext`, `sasl_ssl`) with SCRAM-SHA-512, Kafka's credentials
//! stored in its own metadata, as KafkaUsers with the SCRAM annotation get them.
//!
//! Each SASL listener enables SCRAM-SHA-512 with the broker-side login module. When the admin
//! listener (the one marked `usedForKafkaAdminCommunication`) is SASL, the operator and the
//! webhook log in there as [`ADMIN_USER`], a super user whose password lives in the Secret
//! `<cluster>-admin-scram` the operator creates (owned by the KafkaCluster). Brokers mount that
//! Secret, and KRaft storage is formatted with the credential (`kafka-storage format
//! --add-scram`), so it exists from the cluster's first start without any other way in.
//!
//! SASL on the inter-broker or controller listener is not rendered: brokers would need
//! credentials of their own (and KRaft controllers cannot use SCRAM at all); see
//! `support::kafkacluster`.

use super::names;
use crate::api::KafkaCluster;
use crate::api::kafkacluster::CommonListenerSpec;

/// The SASL mechanism rendered for SASL listeners.
pub const MECHANISM: &str = "SCRAM-SHA-512";
/// The SCRAM user the operator and the webhook log in as on a SASL admin listener.
pub const ADMIN_USER: &str = "koperator-admin";
/// Key of the admin password in [`admin_secret`].
pub const PASSWORD: &str = "password";
/// Where broker Pods mount [`admin_secret`] (read once, when storage is formatted).
pub const ADMIN_SECRET_MOUNT: &str = "/var/run/secrets/koperator/admin-scram";
/// Name of the Pod volume holding [`admin_secret`].
pub const ADMIN_SECRET_VOLUME: &str = "admin-scram";
/// The broker-side login module of SCRAM listeners.
const LOGIN_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule required;";

fn is_sasl(l: &CommonListenerSpec) -> bool {
    l.listener_type.kafka_name().starts_with("SASL")
}

/// The cluster's SASL listeners, in spec order.
pub fn listeners(c: &KafkaCluster) -> Vec<&CommonListenerSpec> {
    c.spec.all_listeners().filter(|l| is_sasl(l)).collect()
}

/// Whether the admin clients log in with SCRAM: the admin listener is SASL on a KRaft cluster
/// (whose storage format bootstraps the credential; ZooKeeper-mode clusters get none).
pub fn admin_scram(c: &KafkaCluster) -> bool {
    let internal = &c.spec.listeners_config.internal_listeners;
    let admin = internal
        .iter()
        .find(|l| l.common.used_for_kafka_admin_communication == Some(true))
        .or_else(|| internal.iter().find(|l| l.common.used_for_inner_broker_communication));
    c.spec.kraft && admin.is_some_and(|l| is_sasl(&l.common))
}

/// The Secret with the admin password: `<cluster>-admin-scram`.
pub fn admin_secret(c: &KafkaCluster) -> String {
    format!("{}-admin-scram", names::cluster_name(c))
}

/// The principal of [`ADMIN_USER`], a super user when [`admin_scram`].
pub fn admin_principal() -> String {
    format!("User:{ADMIN_USER}")
}

/// The `listener.name.<listener>.*` properties of SASL listener `l` (Kafka name `kafka_name`).
pub fn listener_properties(l: &CommonListenerSpec, kafka_name: &str) -> Vec<(String, String)> {
    let prefix = format!("listener.name.{}.", kafka_name.to_lowercase());
    vec![
        (format!("{prefix}sasl.enabled.mechanisms"), MECHANISM.into()),
        (format!("{prefix}{}.sasl.jaas.config", MECHANISM.to_lowercase()), LOGIN_MODULE.into()),
    ]
    .into_iter()
    .filter(|_| is_sasl(l))
    .collect()
}

/// The `kafka-storage format` argument that bootstraps the admin credential from the mounted
/// Secret, when [`admin_scram`] (else empty).
pub fn format_arguments(c: &KafkaCluster) -> String {
    if !admin_scram(c) {
        return String::new();
    }
    format!(" --add-scram \"{MECHANISM}=[name={ADMIN_USER},password=$(cat {ADMIN_SECRET_MOUNT}/{PASSWORD})]\"")
}

/// The admin password from [`admin_secret`], used only when the KafkaCluster with
/// `cluster_uid` controls that Secret (anything else of that name is someone else's).
pub fn admin_password(secret: &k8s_openapi::api::core::v1::Secret, cluster_uid: &str) -> Result<String, String> {
    super::tls::controlled_by(secret, cluster_uid)?;
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(PASSWORD))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .filter(|p| !p.is_empty())
        .ok_or(format!("it has no {PASSWORD}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kafkacluster::SecurityProtocol;
    use crate::render::names::tests::cluster;

    #[test]
    fn a_sasl_admin_listener_gets_scram_and_a_bootstrapped_credential() {
        let mut c = cluster(true);
        c.spec.kraft = true;
        c.spec.listeners_config.internal_listeners = vec![Default::default()];
        assert!(!admin_scram(&c));
        assert_eq!(format_arguments(&c), "");
        let l = &mut c.spec.listeners_config.internal_listeners[0].common;
        l.listener_type = SecurityProtocol::SaslSsl;
        l.used_for_kafka_admin_communication = Some(true);
        assert!(admin_scram(&c));
        assert_eq!(listeners(&c).len(), 1);
        let props = listener_properties(&c.spec.listeners_config.internal_listeners[0].common, "INTERNAL");
        assert_eq!(
            props,
            vec![
                ("listener.name.internal.sasl.enabled.mechanisms".to_string(), "SCRAM-SHA-512".to_string()),
                (
                    "listener.name.internal.scram-sha-512.sasl.jaas.config".to_string(),
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;".to_string()
                ),
            ]
        );
        assert_eq!(
            format_arguments(&c),
            " --add-scram \"SCRAM-SHA-512=[name=koperator-admin,password=$(cat /var/run/secrets/koperator/admin-scram/password)]\""
        );
        assert_eq!(admin_secret(&c), "kafka-admin-scram");
    }

    #[test]
    fn the_admin_password_comes_only_from_the_clusters_own_secret() {
        use k8s_openapi::ByteString;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
        let mut s = k8s_openapi::api::core::v1::Secret {
            data: Some([(PASSWORD.to_string(), ByteString(b"pw".to_vec()))].into()),
            ..Default::default()
        };
        assert!(admin_password(&s, "u1").unwrap_err().contains("not controlled"));
        s.metadata.owner_references =
            Some(vec![OwnerReference { uid: "u1".into(), controller: Some(true), ..Default::default() }]);
        assert_eq!(admin_password(&s, "u1").unwrap(), "pw");
        assert!(admin_password(&s, "u2").is_err());
    }
}

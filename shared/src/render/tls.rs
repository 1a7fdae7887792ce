//! TLS of a cluster's SSL listeners (DESIGN §5 rule 8): the Secrets the operator's cluster PKI
//! issues from `listenersConfig.sslSecrets`, where broker Pods mount them, and the `ssl.*`
//! properties that use them.
//!
//! Names follow Koperator's where it has them: the CA in the `tlsSecretName` Secret under
//! `caCert`/`caKey`, the operator's client certificate in `<cluster>-controller` with common
//! name `<cluster>-controller.<ns>.mgt.<domain>`, broker common name `<cluster>-headless.<ns>.svc.<domain>`
//! (or `-all-broker`), keystores mounted under `/var/run/secrets/java.io/keystores/server/<listener>`.
//! Unlike Koperator, each broker gets a certificate of its own with its own DNS names, and the
//! keystores are PEM (`ssl.keystore.type=PEM`), so no keystore password is ever written into a
//! ConfigMap.

use super::names;
use crate::api::KafkaCluster;
use crate::api::kafkacluster::{AccessMethod, CommonListenerSpec, SecurityProtocol, SslClientAuth};

/// Key of the CA certificate (PEM) in the `tlsSecretName` Secret (Koperator's).
pub const CA_CERT: &str = "caCert";
/// Key of the CA private key (PEM) in the `tlsSecretName` Secret (Koperator's).
pub const CA_KEY: &str = "caKey";
/// Key of a certificate (PEM, the leaf) in an issued Secret.
pub const TLS_CRT: &str = "tls.crt";
/// Key of the private key (PKCS#8 PEM) in an issued Secret.
pub const TLS_KEY: &str = "tls.key";
/// Key of the trusted CA certificates (PEM) in an issued Secret.
pub const CA_CRT: &str = "ca.crt";
/// Key of the PEM keystore (private key, then certificate) in a broker's Secret.
pub const KEYSTORE_PEM: &str = "keystore.pem";
/// Where a broker mounts the keystore of each SSL listener (`<dir>/<listener name>`).
pub const SERVER_KEYSTORES: &str = "/var/run/secrets/java.io/keystores/server";
/// `ssl.principal.mapping.rules`: the principal of a certificate is `User:CN=<common name>`,
/// whatever else its subject holds (Koperator's ACLs name `User:CN=<user>`).
pub const PRINCIPAL_MAPPING_RULES: &str = "RULE:^.*?(CN=[^,]+).*$/$1/,DEFAULT";
/// Longest common name X.509 allows; longer ones are replaced by a digest (as Koperator does).
const MAX_COMMON_NAME: usize = 64;

/// Whether a listener gets operator-issued TLS: type `ssl` (SASL_SSL needs a JAAS
/// configuration the operator does not render) without a certificate Secret of its own.
fn issued(l: &CommonListenerSpec) -> bool {
    l.listener_type == SecurityProtocol::Ssl && l.server_ssl_cert_secret.is_none()
}

/// Whether the operator runs a PKI for this cluster: `sslSecrets` is set and an SSL listener
/// takes its certificates from it.
pub fn enabled(c: &KafkaCluster) -> bool {
    c.spec.listeners_config.ssl_secrets.is_some() && c.spec.all_listeners().any(issued)
}

/// The SSL listeners whose keystores the operator issues, in spec order.
pub fn listeners(c: &KafkaCluster) -> Vec<&CommonListenerSpec> {
    if !enabled(c) {
        return Vec::new();
    }
    c.spec.all_listeners().filter(|l| issued(l)).collect()
}

/// The Secret holding the cluster CA (`sslSecrets.tlsSecretName`).
pub fn ca_secret(c: &KafkaCluster) -> Option<&str> {
    c.spec.listeners_config.ssl_secrets.as_ref().map(|s| s.tls_secret_name.as_str())
}

/// Whether the operator creates the CA when its Secret does not exist (`sslSecrets.create`).
pub fn creates_ca(c: &KafkaCluster) -> bool {
    c.spec.listeners_config.ssl_secrets.as_ref().is_some_and(|s| s.create == Some(true))
}

/// Broker `id`'s certificate Secret: `<cluster>-<id>-server-certificate`.
pub fn broker_secret(c: &KafkaCluster, id: i32) -> String {
    format!("{}-server-certificate", names::broker(c, id))
}

/// The operator's client certificate Secret: `<cluster>-controller` (Koperator's).
pub fn operator_secret(c: &KafkaCluster) -> String {
    format!("{}-controller", c.metadata.name.as_deref().unwrap_or_default())
}

fn fit_common_name(cn: String) -> String {
    if cn.len() <= MAX_COMMON_NAME {
        return cn;
    }
    format!("{:016x}", crate::hash::fnv1a64(cn.as_bytes()))
}

/// Common name of every broker certificate: the cluster Service's DNS name. One name for all
/// brokers, so adding a broker does not change `super.users` of the others.
pub fn broker_common_name(c: &KafkaCluster) -> String {
    fit_common_name(format!("{}.{}", names::cluster_service(c), names::service_domain(c)))
}

/// Common name of the operator's client certificate: `<cluster>-controller.<ns>.mgt.<domain>`.
pub fn operator_common_name(c: &KafkaCluster) -> String {
    fit_common_name(format!(
        "{}.{}.mgt.{}",
        operator_secret(c),
        c.metadata.namespace.as_deref().unwrap_or("default"),
        c.spec.cluster_domain()
    ))
}

/// The principals the brokers treat as super users: the brokers themselves (inter-broker and
/// controller traffic) and the operator.
pub fn super_users(c: &KafkaCluster) -> Vec<String> {
    vec![format!("User:CN={}", broker_common_name(c)), format!("User:CN={}", operator_common_name(c))]
}

/// `<name>`, `<name>.<ns>`, `<name>.<ns>.svc`, `<name>.<ns>.svc.<domain>` for a Service-like
/// name in the cluster's namespace.
fn service_names(c: &KafkaCluster, name: &str, out: &mut Vec<String>) {
    let ns = c.metadata.namespace.as_deref().unwrap_or("default");
    out.push(name.to_string());
    out.push(format!("{name}.{ns}"));
    out.push(format!("{name}.{ns}.svc"));
    out.push(format!("{name}.{}", names::service_domain(c)));
}

/// DNS names of broker `id`'s certificate: its Pod's names under the headless Service (or its
/// per-broker Service), the cluster Service, and the external host names it advertises.
pub fn broker_dns_names(c: &KafkaCluster, id: i32) -> Vec<String> {
    let mut out = Vec::new();
    let broker = names::broker(c, id);
    if c.spec.headless_service_enabled {
        service_names(c, &format!("{broker}.{}", names::headless_service(c)), &mut out);
    } else {
        service_names(c, &broker, &mut out);
    }
    service_names(c, &names::cluster_service(c), &mut out);
    for l in c.spec.listeners_config.external() {
        if let Some(host) = external_host(c, l, id) {
            out.push(host);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The host an external listener advertises for broker `id`, when the spec says it
/// (`hostnameOverride`: the name itself for LoadBalancer, `<cluster>-<id>.<ns><suffix>` for
/// NodePort).
pub fn external_host(
    c: &KafkaCluster,
    l: &crate::api::kafkacluster::ExternalListenerConfig,
    id: i32,
) -> Option<String> {
    let host = l.service.hostname_override.as_deref().filter(|h| !h.is_empty())?;
    Some(match l.access_method_or_default() {
        AccessMethod::NodePort => {
            format!("{}.{}{host}", names::broker(c, id), c.metadata.namespace.as_deref().unwrap_or("default"))
        }
        _ => host.to_string(),
    })
}

/// Where listener `l` finds its keystore in the broker Pod.
pub fn listener_dir(l: &CommonListenerSpec) -> String {
    format!("{SERVER_KEYSTORES}/{}", l.name)
}

/// Name of the Pod volume holding listener `l`'s keystore: `listener-<name>-certs`.
pub fn listener_volume(l: &CommonListenerSpec) -> String {
    format!("listener-{}-certs", l.name)
}

/// The `listener.name.<listener>.ssl.*` properties of listener `l`, whose Kafka name is
/// `kafka_name` (`INTERNAL`). They serve both sides of the listener: the broker's server
/// socket and its own connections to other brokers and controllers on it (mTLS with the
/// broker's certificate).
pub fn listener_properties(l: &CommonListenerSpec, kafka_name: &str) -> Vec<(String, String)> {
    let dir = listener_dir(l);
    let prefix = format!("listener.name.{}.", kafka_name.to_lowercase());
    let auth = match l.ssl_client_auth.unwrap_or(SslClientAuth::Required) {
        SslClientAuth::Required => "required",
        SslClientAuth::Requested => "requested",
        SslClientAuth::None => "none",
    };
    [
        ("ssl.client.auth", auth.to_string()),
        ("ssl.keystore.location", format!("{dir}/{KEYSTORE_PEM}")),
        ("ssl.keystore.type", "PEM".to_string()),
        ("ssl.truststore.location", format!("{dir}/{CA_CRT}")),
        ("ssl.truststore.type", "PEM".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("{prefix}{k}"), v))
    .collect()
}

/// `[ca.crt, tls.crt, tls.key]` of the operator's client certificate Secret
/// ([`operator_secret`]), read by the operator and the webhook to reach an SSL admin listener;
/// only from a Secret the KafkaCluster with `cluster_uid` controls (anything else of that name
/// is someone else's and never used).
pub fn client_identity(secret: &k8s_openapi::api::core::v1::Secret, cluster_uid: &str) -> Result<[String; 3], String> {
    let ours = secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && !cluster_uid.is_empty() && o.uid == cluster_uid);
    if !ours {
        return Err("it is not controlled by this KafkaCluster".into());
    }
    let data = secret.data.as_ref();
    let get = |k: &str| {
        data.and_then(|d| d.get(k)).and_then(|b| String::from_utf8(b.0.clone()).ok()).ok_or(format!("it has no {k}"))
    };
    Ok([get(CA_CRT)?, get(TLS_CRT)?, get(TLS_KEY)?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kafkacluster::SslSecrets;
    use crate::render::names::tests::cluster;

    #[test]
    fn koperator_names_and_principals() {
        let c = cluster(true);
        assert_eq!(operator_secret(&c), "kafka-controller");
        assert_eq!(broker_secret(&c, 2), "kafka-2-server-certificate");
        assert_eq!(broker_common_name(&c), "kafka-headless.team-a.svc.cluster.local");
        assert_eq!(operator_common_name(&c), "kafka-controller.team-a.mgt.cluster.local");
        assert_eq!(
            super_users(&c),
            vec![
                "User:CN=kafka-headless.team-a.svc.cluster.local",
                "User:CN=kafka-controller.team-a.mgt.cluster.local"
            ]
        );
        let mut long = cluster(true);
        long.metadata.name = Some("k".repeat(45));
        assert_eq!(broker_common_name(&long).len(), 16, "longer than 64: a digest");
    }

    #[test]
    fn a_broker_certificate_names_the_pod_and_the_cluster_service() {
        let names = broker_dns_names(&cluster(true), 1);
        for want in [
            "kafka-1.kafka-headless.team-a.svc.cluster.local",
            "kafka-1.kafka-headless.team-a.svc",
            "kafka-headless.team-a.svc.cluster.local",
            "kafka-headless",
        ] {
            assert!(names.contains(&want.to_string()), "{want} in {names:?}");
        }
        let names = broker_dns_names(&cluster(false), 1);
        assert!(names.contains(&"kafka-1.team-a.svc.cluster.local".to_string()), "{names:?}");
        assert!(names.contains(&"kafka-all-broker.team-a.svc".to_string()), "{names:?}");
        assert!(names.contains(&names::broker_fqdn(&cluster(false), 1)));
    }

    #[test]
    fn only_ssl_listeners_with_ssl_secrets_are_issued() {
        let mut c = cluster(true);
        c.spec.listeners_config.internal_listeners = vec![Default::default(), Default::default()];
        c.spec.listeners_config.internal_listeners[0].common.listener_type = SecurityProtocol::Ssl;
        c.spec.listeners_config.internal_listeners[1].common.listener_type = SecurityProtocol::SaslSsl;
        assert!(!enabled(&c), "no sslSecrets");
        c.spec.listeners_config.ssl_secrets = Some(SslSecrets { tls_secret_name: "ca".into(), ..Default::default() });
        assert!(enabled(&c));
        assert_eq!(listeners(&c).len(), 1, "SASL_SSL is not issued");
    }

    #[test]
    fn the_client_identity_comes_only_from_the_clusters_own_secret() {
        use k8s_openapi::ByteString;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
        let mut s = k8s_openapi::api::core::v1::Secret {
            data: Some(
                [CA_CRT, TLS_CRT, TLS_KEY].iter().map(|k| (k.to_string(), ByteString(k.as_bytes().to_vec()))).collect(),
            ),
            ..Default::default()
        };
        assert!(client_identity(&s, "uid-1").unwrap_err().contains("not controlled"));
        s.metadata.owner_references =
            Some(vec![OwnerReference { uid: "uid-1".into(), controller: Some(true), ..Default::default() }]);
        assert_eq!(client_identity(&s, "uid-1").unwrap(), [CA_CRT, TLS_CRT, TLS_KEY].map(String::from));
        assert!(client_identity(&s, "uid-2").is_err());
        s.data.as_mut().unwrap().remove(TLS_KEY);
        assert_eq!(client_identity(&s, "uid-1").unwrap_err(), "it has no tls.key");
    }

    #[test]
    fn listener_properties_are_prefixed_and_pem() {
        let l = CommonListenerSpec {
            name: "internal".into(),
            listener_type: SecurityProtocol::Ssl,
            ssl_client_auth: Some(SslClientAuth::Requested),
            ..Default::default()
        };
        let p = listener_properties(&l, "INTERNAL");
        assert!(p.contains(&("listener.name.internal.ssl.client.auth".into(), "requested".into())));
        assert!(p.contains(&(
            "listener.name.internal.ssl.keystore.location".into(),
            "/var/run/secrets/java.io/keystores/server/internal/keystore.pem".into()
        )));
        assert!(p.contains(&("listener.name.internal.ssl.truststore.type".into(), "PEM".into())));
    }
}

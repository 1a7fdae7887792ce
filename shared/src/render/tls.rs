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
//!
//! A listener with `serverSSLCertSecret` serves the user's own JKS stores instead (Koperator's
//! keys `keystore.jks`, `truststore.jks`, `password`), mounted at the same path. Its passwords
//! are not copied into the ConfigMap as Koperator does: Kafka reads them from the mounted
//! `password` file through its `DirectoryConfigProvider` (`${dir:<mount>:password}`).

use super::names;
use crate::api::KafkaCluster;
use crate::api::kafkacluster::{AccessMethod, CommonListenerSpec, SslClientAuth};

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

/// Key of the JKS keystore in a Secret of the user's own (Koperator's).
pub const KEYSTORE_JKS: &str = "keystore.jks";
/// Key of the JKS truststore in a Secret of the user's own (Koperator's).
pub const TRUSTSTORE_JKS: &str = "truststore.jks";
/// Key of the password of both JKS stores in a Secret of the user's own (Koperator's).
pub const PASSWORD: &str = "password";
/// The Kafka config provider that reads a listener's JKS password from its mounted Secret.
const CONFIG_PROVIDER: &str = "org.apache.kafka.common.config.provider.DirectoryConfigProvider";

/// Whether a listener gets operator-issued TLS: type `ssl` or `sasl_ssl` without a
/// certificate Secret of its own.
fn issued(l: &CommonListenerSpec) -> bool {
    l.listener_type.is_ssl() && l.server_ssl_cert_secret.is_none()
}

/// The Secret of the user's own that an SSL or SASL_SSL listener serves (`serverSSLCertSecret`).
fn own_secret(l: &CommonListenerSpec) -> Option<&str> {
    l.listener_type.is_ssl().then_some(l.server_ssl_cert_secret.as_ref()?.name.as_str())
}

/// The SSL listeners that serve certificates of the user's own, with their Secrets, in spec
/// order.
pub fn own_listeners(c: &KafkaCluster) -> Vec<(&CommonListenerSpec, &str)> {
    c.spec.all_listeners().filter_map(|l| Some((l, own_secret(l)?))).collect()
}

/// Every SSL listener broker `id` mounts a keystore for, with the Secret it comes from: the
/// broker's issued certificate or the listener's own Secret.
pub fn mounts(c: &KafkaCluster, id: i32) -> Vec<(&CommonListenerSpec, String)> {
    let issued_listeners = listeners(c);
    c.spec
        .all_listeners()
        .filter_map(|l| match own_secret(l) {
            Some(secret) => Some((l, secret.to_string())),
            None if issued_listeners.iter().any(|i| i.name == l.name) => Some((l, broker_secret(c, id))),
            None => None,
        })
        .collect()
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

/// The principals the brokers treat as super users: with the operator's PKI the brokers
/// themselves (inter-broker and controller traffic) and the operator; then the principals of
/// certificates of the user's own that the operator read ([`ValidatedCluster::principals`]:
/// the inter-broker and controller listeners' and `clientSSLCertSecret`'s, as Koperator adds).
pub fn super_users(c: &crate::validated::ValidatedCluster) -> Vec<String> {
    let mut out = if enabled(c) { issued_super_users(c) } else { Vec::new() };
    for p in c.principals() {
        if !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

/// The principals of the brokers' and the operator's issued certificates.
fn issued_super_users(c: &KafkaCluster) -> Vec<String> {
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
        out.extend(super::cluster_ip::broker_hosts(c, l, id));
    }
    out.sort();
    out.dedup();
    out
}

/// The host an external listener advertises for broker `id`, when the spec says it
/// (`hostnameOverride`: the name itself for LoadBalancer, `<cluster>-<id>-<listener>.<ns><suffix>`
/// for NodePort, as Koperator names it).
pub fn external_host(
    c: &KafkaCluster,
    l: &crate::api::kafkacluster::ExternalListenerConfig,
    id: i32,
) -> Option<String> {
    let host = l.service.hostname_override.as_deref().filter(|h| !h.is_empty())?;
    Some(match l.access_method_or_default() {
        AccessMethod::NodePort => {
            let service = names::external_service(c, id, &l.common.name);
            format!("{service}.{}{host}", c.metadata.namespace.as_deref().unwrap_or("default"))
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
///
/// A listener with a Secret of the user's own gets JKS stores whose password Kafka reads from
/// the mounted `password` file; the others the operator's PEM files.
pub fn listener_properties(l: &CommonListenerSpec, kafka_name: &str) -> Vec<(String, String)> {
    let dir = listener_dir(l);
    let prefix = format!("listener.name.{}.", kafka_name.to_lowercase());
    let auth = match l.ssl_client_auth.unwrap_or(SslClientAuth::Required) {
        SslClientAuth::Required => "required",
        SslClientAuth::Requested => "requested",
        SslClientAuth::None => "none",
    };
    let mut props = vec![("ssl.client.auth", auth.to_string())];
    if own_secret(l).is_some() {
        let password = format!("${{dir:{dir}:{PASSWORD}}}");
        props.extend([
            ("ssl.key.password", password.clone()),
            ("ssl.keystore.location", format!("{dir}/{KEYSTORE_JKS}")),
            ("ssl.keystore.password", password.clone()),
            ("ssl.keystore.type", "JKS".to_string()),
            ("ssl.truststore.location", format!("{dir}/{TRUSTSTORE_JKS}")),
            ("ssl.truststore.password", password),
            ("ssl.truststore.type", "JKS".to_string()),
        ]);
    } else {
        props.extend([
            ("ssl.keystore.location", format!("{dir}/{KEYSTORE_PEM}")),
            ("ssl.keystore.type", "PEM".to_string()),
            ("ssl.truststore.location", format!("{dir}/{CA_CRT}")),
            ("ssl.truststore.type", "PEM".to_string()),
        ]);
    }
    props.into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)).collect()
}

/// `config.providers` for clusters with listeners of the user's own: Kafka's
/// `DirectoryConfigProvider`, allowed to read only those listeners' keystore mounts.
pub fn config_provider_properties(c: &KafkaCluster) -> Vec<(String, String)> {
    let own = own_listeners(c);
    if own.is_empty() {
        return Vec::new();
    }
    let allowed: Vec<String> = own.iter().map(|(l, _)| listener_dir(l)).collect();
    vec![
        ("config.providers".into(), "dir".into()),
        ("config.providers.dir.class".into(), CONFIG_PROVIDER.into()),
        ("config.providers.dir.param.allowed.paths".into(), allowed.join(",")),
    ]
}

/// Where the admin clients (operator, webhook) take their TLS identity and trusted CAs from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientIdentitySource {
    /// The operator's certificate issued from the cluster CA (`<cluster>-controller`, PEM).
    Issued(String),
    /// The user's `clientSSLCertSecret` (JKS keystore, truststore and password).
    Own(String),
}

impl ClientIdentitySource {
    /// The Secret's name.
    pub fn secret(&self) -> &str {
        match self {
            ClientIdentitySource::Issued(s) | ClientIdentitySource::Own(s) => s,
        }
    }
}

/// The admin clients' identity: `clientSSLCertSecret` when set (it wins, as in Koperator),
/// else the operator's issued certificate when the operator runs a PKI for the cluster.
pub fn client_identity_source(c: &KafkaCluster) -> Option<ClientIdentitySource> {
    match &c.spec.client_ssl_cert_secret {
        Some(s) => Some(ClientIdentitySource::Own(s.name.clone())),
        None => enabled(c).then(|| ClientIdentitySource::Issued(operator_secret(c))),
    }
}

/// A JKS Secret of the user's own read as PEM: its one private key and chain, the trusted
/// certificates of its truststore, and the principal (`User:CN=...`) of its leaf.
#[derive(Clone, PartialEq, Eq)]
pub struct OwnCertificate {
    /// Trusted CA certificates (PEM), from `truststore.jks`.
    pub trusted: String,
    /// Certificate chain (PEM), leaf first.
    pub chain: String,
    /// Private key (PKCS#8 PEM).
    pub key: String,
    /// `User:CN=<common name>` of the leaf, as [`PRINCIPAL_MAPPING_RULES`] maps it.
    pub principal: String,
}

impl std::fmt::Debug for OwnCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnCertificate").field("principal", &self.principal).finish_non_exhaustive()
    }
}

/// How a Secret of the user's own is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnUse {
    /// Mounted by brokers (`serverSSLCertSecret`): Kafka reads `password` byte for byte, so a
    /// trailing newline would make the stores unopenable there and is refused here. The key
    /// is Kafka's to load (Java reads EC keys that ring cannot), so only the certificate is
    /// checked.
    Listener,
    /// Presented by the operator and the webhook (`clientSSLCertSecret`): a trailing newline
    /// of `password` is ignored, and the key must be one they can sign with.
    Client,
}

/// Reads a Secret of the user's own: `keystore.jks` with exactly one private key entry,
/// `truststore.jks` with at least one trusted certificate, both opened with `password`. The
/// leaf's common name must map to a principal unchanged (no RFC 2253 special characters).
#[cfg(feature = "pki")]
pub fn read_own_certificate(
    secret: &k8s_openapi::api::core::v1::Secret,
    usage: OwnUse,
) -> Result<OwnCertificate, String> {
    let data = secret.data.as_ref();
    let get = |k: &str| data.and_then(|d| d.get(k)).map(|b| b.0.as_slice()).filter(|b| !b.is_empty());
    let missing: Vec<&str> =
        [KEYSTORE_JKS, TRUSTSTORE_JKS, PASSWORD].into_iter().filter(|k| get(k).is_none()).collect();
    if !missing.is_empty() {
        return Err(format!("it has no {}", missing.join(", ")));
    }
    let raw =
        std::str::from_utf8(get(PASSWORD).unwrap_or_default()).map_err(|_| "its password is not UTF-8".to_string())?;
    let password = raw.trim_end_matches(['\n', '\r']);
    if usage == OwnUse::Listener && password.len() != raw.len() {
        return Err(format!(
            "its {PASSWORD} ends with a line break, which Kafka would read as part of the password: store it without \
             one (kubectl create secret generic ... --from-literal={PASSWORD}=...)"
        ));
    }
    let keystore = crate::jks::read(get(KEYSTORE_JKS).unwrap_or_default(), password)
        .map_err(|e| format!("{KEYSTORE_JKS}: {e}"))?;
    let [entry] = keystore.keys.as_slice() else {
        return Err(format!("{KEYSTORE_JKS} holds {} private keys; exactly one is used", keystore.keys.len()));
    };
    let leaf = entry.chain.first().ok_or(format!("{KEYSTORE_JKS}: the private key has no certificate"))?;
    let chain: String = entry.chain.iter().map(|d| crate::jks::cert_pem(d)).collect();
    let key = crate::jks::key_pem(&entry.pkcs8);
    let leaf = crate::jks::cert_pem(leaf);
    if usage == OwnUse::Client && !crate::pki::key_matches(&leaf, &key) {
        return Err(format!(
            "{KEYSTORE_JKS}: the private key is not the certificate's, or is one the operator cannot sign with \
             (RSA of 2048 bits or more, and ECDSA P-256/P-384 keys that carry their public key, are)"
        ));
    }
    let common_name = crate::pki::common_name(&leaf)
        .filter(|cn| !cn.is_empty())
        .ok_or(format!("{KEYSTORE_JKS}: the certificate has no common name"))?;
    if common_name.starts_with(['#', ' ']) || common_name.contains([',', '+', '"', '\\', '<', '>', '=', ';']) {
        return Err(format!(
            "{KEYSTORE_JKS}: the certificate's common name {common_name:?} holds characters (,+\"\\<>=; or a leading # or \
             space) that change its Kafka principal; use a plain name"
        ));
    }
    let truststore = crate::jks::read(get(TRUSTSTORE_JKS).unwrap_or_default(), password)
        .map_err(|e| format!("{TRUSTSTORE_JKS}: {e}"))?;
    if truststore.trusted.is_empty() {
        return Err(format!("{TRUSTSTORE_JKS} holds no trusted certificate"));
    }
    Ok(OwnCertificate {
        trusted: truststore.trusted.iter().map(|d| crate::jks::cert_pem(d)).collect(),
        chain,
        key,
        principal: format!("User:CN={common_name}"),
    })
}

/// `[trusted CAs, certificate chain, private key]` (PEM) the operator and the webhook present
/// on an SSL admin listener, from the Secret [`client_identity_source`] names: the user's
/// `clientSSLCertSecret` (JKS), or the operator's issued certificate, used only when the
/// KafkaCluster with `cluster_uid` controls that Secret.
#[cfg(feature = "pki")]
pub fn client_identity(
    source: &ClientIdentitySource,
    secret: &k8s_openapi::api::core::v1::Secret,
    cluster_uid: &str,
) -> Result<[String; 3], String> {
    match source {
        ClientIdentitySource::Own(_) => {
            read_own_certificate(secret, OwnUse::Client).map(|o| [o.trusted, o.chain, o.key])
        }
        ClientIdentitySource::Issued(_) => issued_identity(secret, cluster_uid),
    }
}

/// Ok when the KafkaCluster with `cluster_uid` controls `secret` (a Secret the operator made
/// for it); anything else of that name is someone else's and never used.
pub fn controlled_by(secret: &k8s_openapi::api::core::v1::Secret, cluster_uid: &str) -> Result<(), String> {
    let ours = secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && !cluster_uid.is_empty() && o.uid == cluster_uid);
    if ours { Ok(()) } else { Err("it is not controlled by this KafkaCluster".into()) }
}

/// `[ca.crt, tls.crt, tls.key]` of the operator's client certificate Secret
/// ([`operator_secret`]); only from a Secret the KafkaCluster with `cluster_uid` controls
/// (anything else of that name is someone else's and never used).
#[cfg(feature = "pki")]
fn issued_identity(secret: &k8s_openapi::api::core::v1::Secret, cluster_uid: &str) -> Result<[String; 3], String> {
    controlled_by(secret, cluster_uid)?;
    let data = secret.data.as_ref();
    let get = |k: &str| {
        data.and_then(|d| d.get(k)).and_then(|b| String::from_utf8(b.0.clone()).ok()).ok_or(format!("it has no {k}"))
    };
    Ok([get(CA_CRT)?, get(TLS_CRT)?, get(TLS_KEY)?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kafkacluster::{SecurityProtocol, SslSecrets};
    use crate::render::names::tests::cluster;

    #[test]
    fn koperator_names_and_principals() {
        let c = cluster(true);
        assert_eq!(operator_secret(&c), "kafka-controller");
        assert_eq!(broker_secret(&c, 2), "kafka-2-server-certificate");
        assert_eq!(broker_common_name(&c), "kafka-headless.team-a.svc.cluster.local");
        assert_eq!(operator_common_name(&c), "kafka-controller.team-a.mgt.cluster.local");
        assert_eq!(
            issued_super_users(&c),
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
    fn only_tls_listeners_with_ssl_secrets_are_issued() {
        let mut c = cluster(true);
        c.spec.listeners_config.internal_listeners = vec![Default::default(), Default::default()];
        c.spec.listeners_config.internal_listeners[0].common.listener_type = SecurityProtocol::Ssl;
        c.spec.listeners_config.internal_listeners[1].common.listener_type = SecurityProtocol::SaslSsl;
        assert!(!enabled(&c), "no sslSecrets");
        c.spec.listeners_config.ssl_secrets = Some(SslSecrets { tls_secret_name: "ca".into(), ..Default::default() });
        assert!(enabled(&c));
        assert_eq!(listeners(&c).len(), 2, "SASL_SSL is issued too");
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
        let issued = ClientIdentitySource::Issued("kafka-controller".into());
        assert!(client_identity(&issued, &s, "uid-1").unwrap_err().contains("not controlled"));
        s.metadata.owner_references =
            Some(vec![OwnerReference { uid: "uid-1".into(), controller: Some(true), ..Default::default() }]);
        assert_eq!(client_identity(&issued, &s, "uid-1").unwrap(), [CA_CRT, TLS_CRT, TLS_KEY].map(String::from));
        assert!(client_identity(&issued, &s, "uid-2").is_err());
        s.data.as_mut().unwrap().remove(TLS_KEY);
        assert_eq!(client_identity(&issued, &s, "uid-1").unwrap_err(), "it has no tls.key");
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

    #[test]
    fn a_listener_of_the_users_own_serves_its_jks_with_the_password_from_the_mounted_file() {
        let l = CommonListenerSpec {
            name: "internal".into(),
            listener_type: SecurityProtocol::Ssl,
            server_ssl_cert_secret: Some(k8s_openapi::api::core::v1::LocalObjectReference { name: "mine".into() }),
            ..Default::default()
        };
        let p = listener_properties(&l, "INTERNAL");
        let dir = "/var/run/secrets/java.io/keystores/server/internal";
        for (k, v) in [
            ("ssl.keystore.type", "JKS".to_string()),
            ("ssl.keystore.location", format!("{dir}/keystore.jks")),
            ("ssl.truststore.location", format!("{dir}/truststore.jks")),
            ("ssl.keystore.password", format!("${{dir:{dir}:password}}")),
            ("ssl.key.password", format!("${{dir:{dir}:password}}")),
            ("ssl.truststore.password", format!("${{dir:{dir}:password}}")),
            ("ssl.client.auth", "required".to_string()),
        ] {
            assert!(p.contains(&(format!("listener.name.internal.{k}"), v.clone())), "{k}={v} in {p:?}");
        }
        let mut c = cluster(true);
        c.spec.listeners_config.internal_listeners = vec![Default::default()];
        c.spec.listeners_config.internal_listeners[0].common = l;
        assert_eq!(own_listeners(&c).len(), 1);
        assert_eq!(mounts(&c, 0)[0].1, "mine", "the broker mounts the user's Secret");
        let providers = config_provider_properties(&c);
        assert!(providers.contains(&("config.providers.dir.param.allowed.paths".into(), dir.into())));
        assert!(config_provider_properties(&cluster(true)).is_empty());
    }
}

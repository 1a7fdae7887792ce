//! SSL rules (rule 8): certificates for SSL listeners and for the operator's own access.

use super::{external_path, internal_path, listeners_path, spec_path};
use crate::api::kafkacluster::{CommonListenerSpec, KafkaClusterSpec};
use crate::rules::{FieldError, Path};

/// An SSL listener has certificates (operator-issued via `sslSecrets` or its own
/// `serverSSLCertSecret`); `sslClientAuth` is only set on SSL listeners; when the operator's
/// admin listener is SSL the operator has a client certificate; `sslSecrets` names its secret.
pub fn check(spec: &KafkaClusterSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let lc = &spec.listeners_config;
    let operator_pki = lc.ssl_secrets.is_some();
    let listeners = lc
        .internal_listeners
        .iter()
        .enumerate()
        .map(|(i, l)| (internal_path(i), &l.common))
        .chain(lc.external().iter().enumerate().map(|(i, l)| (external_path(i), &l.common)));
    for (path, l) in listeners {
        errs.extend(listener(l, &path, operator_pki));
    }
    if let Some(s) = &lc.ssl_secrets
        && s.tls_secret_name.is_empty()
    {
        errs.push(FieldError::required(
                &listeners_path().child("sslSecrets").child("tlsSecretName"),
                "name the Secret that holds (or will hold, with create: true) the CA the operator issues broker certificates from",
            ));
    }
    // The operator issues its own client certificate only when it issues listener certificates,
    // and a listener serving the user's own certificate trusts the user's CAs, not the cluster's.
    let operator_client_cert =
        operator_pki && spec.all_listeners().any(|l| l.listener_type.is_ssl() && l.server_ssl_cert_secret.is_none());
    let operator_client_cert =
        operator_client_cert && admin_listener(spec).is_none_or(|a| a.server_ssl_cert_secret.is_none());
    if let Some(admin) = admin_listener(spec)
        && admin.listener_type.is_ssl()
        && !operator_client_cert
        && spec.client_ssl_cert_secret.is_none()
    {
        errs.push(FieldError::required(
                &spec_path().child("clientSSLCertSecret"),
                format!(
                    "the operator and Cruise Control reach Kafka on the SSL listener '{}': set clientSSLCertSecret to a Secret \
                     with keystore.jks, truststore.jks and password, or set listenersConfig.sslSecrets with an SSL listener that \
                     uses it so the operator issues one",
                    admin.name
                ),
            ));
    }
    errs
}

fn listener(l: &CommonListenerSpec, path: &Path, operator_pki: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if l.listener_type.is_ssl() {
        if !operator_pki && l.server_ssl_cert_secret.is_none() {
            errs.push(FieldError::required(
                &path.child("serverSSLCertSecret"),
                format!(
                    "listener '{}' uses {}: set listenersConfig.sslSecrets so the operator issues broker certificates, or \
                     serverSSLCertSecret with your own keystore.jks, truststore.jks and password",
                    l.name,
                    l.listener_type.kafka_name()
                ),
            ));
        }
    } else if l.ssl_client_auth.is_some() {
        errs.push(FieldError::forbidden(
            &path.child("sslClientAuth"),
            format!("sslClientAuth only applies to ssl and sasl_ssl listeners; remove it from '{}'", l.name),
        ));
    }
    errs
}

/// The listener the operator uses: the one marked `usedForKafkaAdminCommunication`, else the
/// inter-broker listener.
pub fn admin_listener(spec: &KafkaClusterSpec) -> Option<&CommonListenerSpec> {
    spec.all_listeners().find(|l| l.used_for_kafka_admin_communication == Some(true)).or_else(|| {
        spec.listeners_config
            .internal_listeners
            .iter()
            .map(|l| &l.common)
            .find(|l| l.used_for_inner_broker_communication)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::kafkacluster::{SecurityProtocol, SslClientAuth, SslSecrets};
    use crate::rules::ErrorType;
    use crate::rules::kafkacluster::fixtures::*;
    use k8s_openapi::api::core::v1::LocalObjectReference;

    fn ssl_spec() -> KafkaClusterSpec {
        let mut spec = valid_kraft_spec();
        spec.listeners_config.internal_listeners[0].common.listener_type = SecurityProtocol::Ssl;
        spec
    }

    #[test]
    fn ssl_listener_without_secrets_is_rejected() {
        let errs = check(&ssl_spec());
        assert_eq!(
            paths_and_types(&errs),
            vec![
                ("spec.listenersConfig.internalListeners[0].serverSSLCertSecret".into(), ErrorType::Required),
                ("spec.clientSSLCertSecret".into(), ErrorType::Required),
            ]
        );
    }

    #[test]
    fn operator_pki_covers_listeners_and_operator() {
        let mut spec = ssl_spec();
        spec.listeners_config.ssl_secrets =
            Some(SslSecrets { tls_secret_name: "kafka-ca".into(), ..Default::default() });
        assert_eq!(check(&spec), vec![]);
    }

    #[test]
    fn custom_certificates_need_a_client_certificate() {
        let mut spec = ssl_spec();
        spec.listeners_config.internal_listeners[0].common.server_ssl_cert_secret =
            Some(LocalObjectReference { name: "server-cert".into() });
        assert_eq!(paths_and_types(&check(&spec)), vec![("spec.clientSSLCertSecret".into(), ErrorType::Required)]);
        spec.client_ssl_cert_secret = Some(LocalObjectReference { name: "client-cert".into() });
        assert_eq!(check(&spec), vec![]);
    }

    #[test]
    fn ssl_secrets_without_an_issued_listener_give_the_operator_no_certificate() {
        // Every SSL listener serves a certificate of the user's own: the operator issues no
        // listener certificates and so no client certificate of its own either.
        let mut spec = ssl_spec();
        spec.listeners_config.ssl_secrets =
            Some(SslSecrets { tls_secret_name: "kafka-ca".into(), ..Default::default() });
        spec.listeners_config.internal_listeners[0].common.server_ssl_cert_secret =
            Some(LocalObjectReference { name: "server-cert".into() });
        assert_eq!(paths_and_types(&check(&spec)), vec![("spec.clientSSLCertSecret".into(), ErrorType::Required)]);
        // Another listener issued, the admin listener on the user's certificate: the issued
        // client certificate would not be trusted there.
        let mut other = spec.listeners_config.internal_listeners[0].clone();
        other.common.name = "issued".into();
        other.common.server_ssl_cert_secret = None;
        other.common.used_for_inner_broker_communication = false;
        spec.listeners_config.internal_listeners.push(other);
        assert_eq!(paths_and_types(&check(&spec)), vec![("spec.clientSSLCertSecret".into(), ErrorType::Required)]);
    }

    #[test]
    fn ssl_client_auth_on_plaintext_is_forbidden() {
        let mut spec = valid_kraft_spec();
        spec.listeners_config.internal_listeners[1].common.ssl_client_auth = Some(SslClientAuth::Required);
        assert_eq!(
            paths_and_types(&check(&spec)),
            vec![("spec.listenersConfig.internalListeners[1].sslClientAuth".into(), ErrorType::Forbidden)]
        );
    }

    #[test]
    fn ssl_secrets_need_a_secret_name() {
        let mut spec = ssl_spec();
        spec.listeners_config.ssl_secrets = Some(SslSecrets::default());
        assert_eq!(
            paths_and_types(&check(&spec)),
            vec![("spec.listenersConfig.sslSecrets.tlsSecretName".into(), ErrorType::Required)]
        );
    }
}

//! TLS client settings for SSL listeners: the CAs to trust and, for listeners that require
//! client authentication, the certificate and key to present (all PEM, as the operator's
//! cluster PKI stores them).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::error::{Error, Result};

/// A rustls client configuration that trusts the certificates in `ca_pem` and, when
/// `identity` is `(certificate chain PEM, private key PEM)`, presents it.
pub fn client_config(ca_pem: &str, identity: Option<(&str, &str)>) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| Error::Tls(format!("trusted CA certificates: {e}")))?;
        roots.add(cert).map_err(|e| Error::Tls(format!("trusted CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(Error::Tls("no trusted CA certificate".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain_pem, key_pem)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| Error::Tls(format!("client certificate: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                .map_err(|e| Error::Tls(format!("client key: {e}")))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| Error::Tls(format!("client certificate: {e}")))?
        }
    };
    Ok(Arc::new(config))
}

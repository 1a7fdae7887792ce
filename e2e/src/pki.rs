//! Certificates and keys for the test control plane (ECDSA P-256, rcgen).

use anyhow::Result;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};

/// A CA and a serving certificate for 127.0.0.1/localhost signed by it, plus a service-account
/// signing key, all PEM.
pub struct ControlPlanePki {
    /// CA certificate.
    pub ca_cert: String,
    /// Serving certificate of the API server.
    pub serving_cert: String,
    /// Its key.
    pub serving_key: String,
    /// Service-account token signing key (PKCS#8).
    pub service_account_key: String,
    /// Its public key.
    pub service_account_pub: String,
}

/// Generates a fresh PKI for one control plane.
pub fn generate() -> Result<ControlPlanePki> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(DnType::CommonName, "koperator-e2e-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let serving_key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(vec!["localhost".to_string(), "kubernetes.default.svc".to_string()])?;
    serving.subject_alt_names.push(SanType::IpAddress([127, 0, 0, 1].into()));
    serving.distinguished_name.push(DnType::CommonName, "kube-apiserver");
    let serving_cert = serving.signed_by(&serving_key, &issuer)?;

    let sa = KeyPair::generate()?;
    Ok(ControlPlanePki {
        ca_cert: ca_cert.pem(),
        serving_cert: serving_cert.pem(),
        serving_key: serving_key.serialize_pem(),
        service_account_key: sa.serialize_pem(),
        service_account_pub: sa.public_key_pem(),
    })
}

/// A random hex token.
pub fn random_token() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

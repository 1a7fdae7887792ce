//! Java KeyStores (JKS, version 2) for clients that cannot read PEM: a keystore with one
//! private key entry (alias `certificate`) and its chain, a truststore with trusted
//! certificate entries (`ca-0`, `ca-1`...). Written to the format `sun.security.provider.
//! JavaKeyStore` reads: big-endian fields, the private key protected with the JKS key
//! protector (SHA-1 keystream keyed by the password) inside an `EncryptedPrivateKeyInfo`, and a
//! trailing SHA-1 over the password, the string `Mighty Aphrodite` and the whole store.
//! `operator/tests/tls_e2e.rs` has Kafka's Java clients load them.

use ring::digest::{Context, SHA1_FOR_LEGACY_USE_ONLY};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

const MAGIC: u32 = 0xFEED_FEED;
const VERSION: u32 = 2;
/// OID 1.3.6.1.4.1.42.2.17.1.1 (Sun's JKS key protector), DER-encoded with its tag.
const KEY_PROTECTOR_OID: &[u8] = &[0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x2a, 0x02, 0x11, 0x01, 0x01];

/// The password as Java hashes it: each UTF-16 unit big-endian.
fn password_bytes(password: &str) -> Vec<u8> {
    password.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

fn sha1(parts: &[&[u8]]) -> Vec<u8> {
    let mut c = Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
    for p in parts {
        c.update(p);
    }
    c.finish().as_ref().to_vec()
}

/// A DER tag-length-value.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// Sun's key protector: `salt ‖ (key XOR SHA-1 keystream) ‖ SHA-1(password ‖ key)` in an
/// `EncryptedPrivateKeyInfo`.
fn protect(pkcs8: &[u8], password: &str, salt: [u8; 20]) -> Vec<u8> {
    let pw = password_bytes(password);
    let mut stream = Vec::with_capacity(pkcs8.len() + 20);
    let mut digest = salt.to_vec();
    while stream.len() < pkcs8.len() {
        digest = sha1(&[&pw, &digest]);
        stream.extend_from_slice(&digest);
    }
    let mut protected = salt.to_vec();
    protected.extend(pkcs8.iter().zip(&stream).map(|(k, s)| k ^ s));
    protected.extend(sha1(&[&pw, pkcs8]));
    let algorithm = der(0x30, &[KEY_PROTECTOR_OID, &[0x05, 0x00]].concat());
    der(0x30, &[algorithm, der(0x04, &protected)].concat())
}

fn put_utf(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_cert(out: &mut Vec<u8>, der: &[u8]) {
    put_utf(out, "X.509");
    out.extend((der.len() as u32).to_be_bytes());
    out.extend_from_slice(der);
}

fn cert_der(pem: &str) -> Result<Vec<u8>, String> {
    let cert = CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or("no certificate in PEM")?
        .map_err(|e| format!("certificate: {e}"))?;
    Ok(cert.as_ref().to_vec())
}

/// Closes a store of `count` entries in `body`: header, then the keyed SHA-1 digest.
fn finish(count: u32, body: Vec<u8>, password: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 32);
    out.extend(MAGIC.to_be_bytes());
    out.extend(VERSION.to_be_bytes());
    out.extend(count.to_be_bytes());
    out.extend(body);
    let digest = sha1(&[&password_bytes(password), b"Mighty Aphrodite", &out]);
    out.extend(digest);
    out
}

/// A keystore with the PKCS#8 key `key_pem` and its certificate `chain` (leaf first), both
/// protected by `password`; `now` (unix seconds) is the entry's date.
pub fn keystore(key_pem: &str, chain: &[String], password: &str, now: u64) -> Result<Vec<u8>, String> {
    let key = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| format!("private key: {e}"))?;
    let mut salt = [0u8; 20];
    SystemRandom::new().fill(&mut salt).map_err(|_| "no random salt".to_string())?;
    let protected = protect(key.secret_pkcs8_der(), password, salt);
    let mut body = Vec::new();
    body.extend(1u32.to_be_bytes());
    put_utf(&mut body, "certificate");
    body.extend((now * 1000).to_be_bytes());
    body.extend((protected.len() as u32).to_be_bytes());
    body.extend(protected);
    body.extend((chain.len() as u32).to_be_bytes());
    for pem in chain {
        put_cert(&mut body, &cert_der(pem)?);
    }
    Ok(finish(1, body, password))
}

/// A truststore with each certificate of `cas` as a trusted entry, sealed by `password`.
pub fn truststore(cas: &[String], password: &str, now: u64) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    for (i, pem) in cas.iter().enumerate() {
        body.extend(2u32.to_be_bytes());
        put_utf(&mut body, &format!("ca-{i}"));
        body.extend((now * 1000).to_be_bytes());
        put_cert(&mut body, &cert_der(pem)?);
    }
    Ok(finish(cas.len() as u32, body, password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_use_the_long_form_past_127() {
        assert_eq!(der(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = der(0x04, &[0; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(long.len(), 304);
    }

    #[test]
    fn the_key_protector_round_trips_as_java_recovers_it() {
        let key: Vec<u8> = (0..77u8).collect();
        let salt = [7u8; 20];
        let out = protect(&key, "changeit", salt);
        // SEQUENCE { SEQUENCE { OID, NULL }, OCTET STRING (salt ‖ encrypted ‖ checksum) }
        let octets = &out[out.len() - (20 + key.len() + 20)..];
        assert_eq!(&octets[..20], &salt);
        let pw = password_bytes("changeit");
        let mut digest = salt.to_vec();
        let mut plain = Vec::new();
        for chunk in octets[20..20 + key.len()].chunks(20) {
            digest = sha1(&[&pw, &digest]);
            plain.extend(chunk.iter().zip(&digest).map(|(c, d)| c ^ d));
        }
        assert_eq!(plain, key);
        assert_eq!(&octets[20 + key.len()..], sha1(&[&pw, &key]).as_slice());
    }

    #[test]
    fn stores_carry_the_header_and_a_keyed_digest() {
        let ca = koperator_shared::pki::new_ca("ca", 1_800_000_000, std::time::Duration::from_secs(3600)).unwrap();
        let ts = truststore(std::slice::from_ref(&ca.cert), "pw", 1_800_000_000).unwrap();
        assert_eq!(&ts[..12], &[0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2, 0, 0, 0, 1]);
        let (body, digest) = ts.split_at(ts.len() - 20);
        assert_eq!(digest, sha1(&[&password_bytes("pw"), b"Mighty Aphrodite", body]).as_slice());
        let ks = keystore(&ca.key, std::slice::from_ref(&ca.cert), "pw", 1_800_000_000).unwrap();
        assert_eq!(&ks[12..16], &[0, 0, 0, 1], "a private key entry");
        assert!(keystore("not a key", &[], "pw", 0).is_err());
    }
}

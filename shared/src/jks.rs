//! Java KeyStores (JKS, version 2), written for clients that cannot read PEM and read from the
//! Secrets users hand the operator (`serverSSLCertSecret`, `clientSSLCertSecret`: Koperator's
//! `keystore.jks`, `truststore.jks`, `password`).
//!
//! Written: a keystore with one private key entry (alias `certificate`) and its chain, a
//! truststore with trusted certificate entries (`ca-0`, `ca-1`...). The format is the one
//! `sun.security.provider.JavaKeyStore` reads: big-endian fields, the private key protected
//! with the JKS key protector (SHA-1 keystream keyed by the password) inside an
//! `EncryptedPrivateKeyInfo`, and a trailing SHA-1 over the password, the string
//! `Mighty Aphrodite` and the whole store. `operator/tests/tls_e2e.rs` has Kafka's Java clients
//! load them, and `keytool`-made stores are read back in tests.
//!
//! Read ([`read`]): the same format, every length checked against the bytes left, the store's
//! digest verified (a wrong password is an error, never garbage), each private key recovered
//! and checked against the key protector's own digest. PKCS#12 stores are refused with a
//! message saying so.

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

/// A private key entry read from a keystore.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// The entry's alias.
    pub alias: String,
    /// The private key (PKCS#8 DER).
    pub pkcs8: Vec<u8>,
    /// Its certificate chain (DER), leaf first.
    pub chain: Vec<Vec<u8>>,
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry").field("alias", &self.alias).field("chain", &self.chain.len()).finish_non_exhaustive()
    }
}

/// What a JKS store holds: private key entries and trusted certificates (DER).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Store {
    /// Private key entries, in store order.
    pub keys: Vec<KeyEntry>,
    /// Trusted certificate entries (DER), in store order.
    pub trusted: Vec<Vec<u8>>,
}

/// Most entries a store may declare before it is refused (a keystore has one key, a truststore
/// a few CAs).
const MAX_ENTRIES: u32 = 1024;

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if n > self.data.len() {
            return Err(format!("the store ends inside {what}"));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn u16(&mut self, what: &str) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.take(2, what)?.try_into().expect("2 bytes")))
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }

    fn utf(&mut self, what: &str) -> Result<String, String> {
        let len = self.u16(what)? as usize;
        Ok(String::from_utf8_lossy(self.take(len, what)?).into_owned())
    }

    fn bytes(&mut self, what: &str) -> Result<&'a [u8], String> {
        let len = self.u32(what)? as usize;
        self.take(len, what)
    }

    fn cert(&mut self) -> Result<Vec<u8>, String> {
        let kind = self.utf("a certificate type")?;
        if kind != "X.509" {
            return Err(format!("a certificate of type {kind:?} (only X.509 is read)"));
        }
        Ok(self.bytes("a certificate")?.to_vec())
    }
}

/// One DER tag-length-value at the start of `data`: `(tag, content, rest)`.
fn der_next(data: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let bad = || "the protected key is not DER".to_string();
    let (&tag, rest) = data.split_first().ok_or_else(bad)?;
    let (&first, rest) = rest.split_first().ok_or_else(bad)?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad());
        }
        (rest[..n].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize), &rest[n..])
    };
    if len > rest.len() {
        return Err(bad());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// Sun's key protector undone: the PKCS#8 key inside an `EncryptedPrivateKeyInfo`, checked
/// against the digest the protector appends.
fn recover(protected: &[u8], password: &str) -> Result<Vec<u8>, String> {
    let (tag, info, _) = der_next(protected)?;
    let (algo_tag, algorithm, rest) = der_next(info)?;
    let (octets_tag, octets, _) = der_next(rest)?;
    if tag != 0x30 || algo_tag != 0x30 || octets_tag != 0x04 {
        return Err("the protected key is not an EncryptedPrivateKeyInfo".into());
    }
    if !algorithm.starts_with(KEY_PROTECTOR_OID) {
        return Err("the private key is protected by an algorithm other than the JKS key protector".into());
    }
    if octets.len() < 40 {
        return Err("the protected key is too short".into());
    }
    let (salt, rest) = octets.split_at(20);
    let (encrypted, check) = rest.split_at(rest.len() - 20);
    let pw = password_bytes(password);
    let mut digest = salt.to_vec();
    let mut plain = Vec::with_capacity(encrypted.len());
    for chunk in encrypted.chunks(20) {
        digest = sha1(&[&pw, &digest]);
        plain.extend(chunk.iter().zip(&digest).map(|(c, d)| c ^ d));
    }
    if sha1(&[&pw, &plain]) != check {
        return Err("the private key does not open with the store's password".into());
    }
    Ok(plain)
}

/// Reads the JKS store `data` sealed with `password`: its digest is checked first, then each
/// private key is recovered with the same password (Koperator's stores use one password for
/// both).
pub fn read(data: &[u8], password: &str) -> Result<Store, String> {
    if data.len() < 12 + 20 {
        return Err("too short to be a JKS store".into());
    }
    let (body, digest) = data.split_at(data.len() - 20);
    let mut r = Reader { data: body };
    let magic = r.u32("the header")?;
    if magic != MAGIC {
        return Err(if data.first() == Some(&0x30) {
            "a PKCS#12 store, not JKS: convert it with keytool -importkeystore -deststoretype JKS".into()
        } else {
            "not a JKS store (wrong magic number)".into()
        });
    }
    let version = r.u32("the header")?;
    if version != VERSION {
        return Err(format!("JKS version {version} (only version 2, what keytool writes, is read)"));
    }
    if sha1(&[&password_bytes(password), b"Mighty Aphrodite", body]) != digest {
        return Err("the store's digest does not match: wrong password, or the store was altered".into());
    }
    let count = r.u32("the header")?;
    if count > MAX_ENTRIES {
        return Err(format!("{count} entries (at most {MAX_ENTRIES} are read)"));
    }
    let mut store = Store::default();
    for _ in 0..count {
        let tag = r.u32("an entry")?;
        let alias = r.utf("an alias")?;
        r.take(8, "an entry date")?;
        match tag {
            1 => {
                let protected = r.bytes("a protected key")?;
                let n = r.u32("a certificate chain")?;
                if n > MAX_ENTRIES {
                    return Err(format!("a chain of {n} certificates"));
                }
                let chain = (0..n).map(|_| r.cert()).collect::<Result<Vec<_>, _>>()?;
                let pkcs8 = recover(protected, password).map_err(|e| format!("entry {alias:?}: {e}"))?;
                store.keys.push(KeyEntry { alias, pkcs8, chain });
            }
            2 => store.trusted.push(r.cert()?),
            other => return Err(format!("entry {alias:?} has unknown type {other}")),
        }
    }
    if !r.data.is_empty() {
        return Err("bytes follow the last entry".into());
    }
    Ok(store)
}

/// The PEM `CERTIFICATE` block of a DER certificate.
pub fn cert_pem(der: &[u8]) -> String {
    pem_block("CERTIFICATE", der)
}

/// The PEM `PRIVATE KEY` block of a PKCS#8 DER key.
pub fn key_pem(pkcs8: &[u8]) -> String {
    pem_block("PRIVATE KEY", pkcs8)
}

fn pem_block(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
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
        let ca = crate::pki::new_ca("ca", 1_800_000_000, std::time::Duration::from_secs(3600)).unwrap();
        let ts = truststore(std::slice::from_ref(&ca.cert), "pw", 1_800_000_000).unwrap();
        assert_eq!(&ts[..12], &[0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2, 0, 0, 0, 1]);
        let (body, digest) = ts.split_at(ts.len() - 20);
        assert_eq!(digest, sha1(&[&password_bytes("pw"), b"Mighty Aphrodite", body]).as_slice());
        let ks = keystore(&ca.key, std::slice::from_ref(&ca.cert), "pw", 1_800_000_000).unwrap();
        assert_eq!(&ks[12..16], &[0, 0, 0, 1], "a private key entry");
        assert!(keystore("not a key", &[], "pw", 0).is_err());
    }

    fn ca_and_leaf() -> (crate::pki::KeyAndCert, crate::pki::KeyAndCert) {
        let ca = crate::pki::new_ca("ca", 1_800_000_000, std::time::Duration::from_secs(3600)).unwrap();
        (ca.clone(), ca)
    }

    #[test]
    fn what_is_written_reads_back() {
        let (ca, _) = ca_and_leaf();
        let ks = keystore(&ca.key, std::slice::from_ref(&ca.cert), "pw", 1_800_000_000).unwrap();
        let store = read(&ks, "pw").unwrap();
        assert_eq!(store.keys.len(), 1);
        assert!(store.trusted.is_empty());
        assert_eq!(key_pem(&store.keys[0].pkcs8).trim(), ca.key.trim());
        assert_eq!(cert_pem(&store.keys[0].chain[0]).trim(), ca.cert.trim());
        let ts = truststore(&[ca.cert.clone(), ca.cert.clone()], "pw", 1_800_000_000).unwrap();
        let store = read(&ts, "pw").unwrap();
        assert_eq!((store.keys.len(), store.trusted.len()), (0, 2));
    }

    #[test]
    fn a_wrong_password_or_a_damaged_store_is_an_error() {
        let (ca, _) = ca_and_leaf();
        let ks = keystore(&ca.key, std::slice::from_ref(&ca.cert), "pw", 1_800_000_000).unwrap();
        assert!(read(&ks, "other").unwrap_err().contains("wrong password"));
        for cut in [0, 11, 40, ks.len() - 1] {
            assert!(read(&ks[..cut], "pw").is_err(), "cut at {cut}");
        }
        let mut flipped = ks.clone();
        flipped[50] ^= 1;
        assert!(read(&flipped, "pw").is_err());
        assert!(read(&[0x30; 64], "pw").unwrap_err().contains("PKCS#12"));
    }

    #[test]
    fn a_declared_length_past_the_end_is_refused_not_allocated() {
        // A store whose digest is right but whose entry claims 4 GiB of key.
        let mut body = Vec::new();
        body.extend(1u32.to_be_bytes());
        put_utf(&mut body, "k");
        body.extend(0u64.to_be_bytes());
        body.extend(u32::MAX.to_be_bytes());
        let store = finish(1, body, "pw");
        assert!(read(&store, "pw").unwrap_err().contains("ends inside"));
    }

    #[test]
    fn pem_blocks_are_standard_base64() {
        assert_eq!(pem_block("X", b"ab"), "-----BEGIN X-----\nYWI=\n-----END X-----\n");
        assert_eq!(pem_block("X", b"abc"), "-----BEGIN X-----\nYWJj\n-----END X-----\n");
        assert_eq!(pem_block("X", b"a"), "-----BEGIN X-----\nYQ==\n-----END X-----\n");
    }

    #[test]
    fn stores_made_by_keytool_read() {
        let ks = read(include_bytes!("jks_fixtures/keytool-keystore.jks"), "s3cretpw").unwrap();
        assert_eq!(ks.keys.len(), 1);
        assert_eq!(ks.keys[0].alias, "broker");
        let key = key_pem(&ks.keys[0].pkcs8);
        let cert = cert_pem(&ks.keys[0].chain[0]);
        // The recovered key is the certificate's: rustls accepts the pair as a client identity.
        let provider = rustls::crypto::ring::default_provider();
        let signing = provider
            .key_provider
            .load_private_key(rustls::pki_types::PrivateKeyDer::Pkcs8(ks.keys[0].pkcs8.clone().into()))
            .unwrap();
        let certified = rustls::sign::CertifiedKey::new(vec![ks.keys[0].chain[0].clone().into()], signing);
        certified.keys_match().unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----") && cert.contains("END CERTIFICATE"));
        let ts = read(include_bytes!("jks_fixtures/keytool-truststore.jks"), "s3cretpw").unwrap();
        assert_eq!(ts.trusted, vec![ks.keys[0].chain[0].clone()]);
        assert!(read(include_bytes!("jks_fixtures/keytool-keystore.jks"), "wrong").is_err());
    }
}

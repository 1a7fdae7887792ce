//! SCRAM-SHA-512 credentials (RFC 5802/7677) as Kafka stores them: the client salts the
//! password, the broker keeps only the salted form.

use ring::rand::{SecureRandom, SystemRandom};

/// Kafka's code for SCRAM-SHA-512 in the credential APIs.
pub const SCRAM_SHA_512: i8 = 2;
/// Iterations used for new credentials (Kafka's minimum is 4096).
pub const ITERATIONS: u32 = 8192;

/// `len` random bytes.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    SystemRandom::new().fill(&mut out).expect("the system random source works");
    out
}

/// A random password of `len` characters from `[A-Za-z0-9]`.
pub fn random_password(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    // Bytes from 248 (= 4 × 62) up are dropped so that every character is equally likely.
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes(len) {
            if (b as usize) < 248 && out.len() < len {
                out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
    }
    out
}

/// `SaltedPassword := Hi(password, salt, i)` with HMAC-SHA-512 (PBKDF2).
pub fn salted_password(password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; 64];
    let iterations = std::num::NonZeroU32::new(iterations.max(1)).expect("at least one iteration");
    ring::pbkdf2::derive(ring::pbkdf2::PBKDF2_HMAC_SHA512, iterations, salt, password.as_bytes(), &mut out);
    out
}

/// The JAAS line a Java client uses to log in with these credentials.
pub fn jaas_config(user: &str, password: &str) -> String {
    format!(
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{user}\" password=\"{password}\";"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_hmac_sha512_matches_the_rfc_vector() {
        // RFC 6070-style vector for PBKDF2-HMAC-SHA512 ("password", "salt", 1 iteration).
        let got = salted_password("password", b"salt", 1);
        assert_eq!(
            got[..8],
            [0x86, 0x7f, 0x70, 0xcf, 0x1a, 0xde, 0x02, 0xcf],
            "first bytes of PBKDF2-HMAC-SHA512(password, salt, 1)"
        );
    }

    #[test]
    fn passwords_are_random_and_alphanumeric() {
        let (a, b) = (random_password(32), random_password(32));
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()), "{a}");
    }
}

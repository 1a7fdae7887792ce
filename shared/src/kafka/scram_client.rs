//! The client side of SASL/SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka speaks it, as a pure
//! state machine: [`ScramClient::client_first`] → [`ScramClient::client_final`] (given the
//! server-first message) → [`ClientFinal::verify_server_final`]. No I/O here; the connection
//! carries the messages in SaslAuthenticate requests.
//!
//! Kafka's variant: no channel binding (gs2 header `n,,`), the password used as its UTF-8
//! bytes (no SASLprep, like Kafka's Java client), user names escaped (`=` → `=3D`, `,` → `=2C`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac};

use super::scram::{random_bytes, salted_password};

/// The mechanism name sent in SaslHandshake.
pub const MECHANISM: &str = "SCRAM-SHA-512";
/// Fewest iterations accepted from a server (RFC 7677; Kafka's minimum too).
pub const MIN_ITERATIONS: u32 = 4096;
/// Most iterations accepted from a server: Kafka stores no credential above 16384, and a
/// hostile server must not make the client spend minutes in PBKDF2.
pub const MAX_ITERATIONS: u32 = 16384;

/// Credentials for SASL/SCRAM-SHA-512 (listeners with security protocol SASL_PLAINTEXT or
/// SASL_SSL). The `Debug` form never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslScram {
    /// The Kafka user (the principal is `User:<username>`).
    pub username: String,
    /// Its password.
    pub password: String,
}

impl SaslScram {
    /// Credentials of `username` with `password`.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        SaslScram { username: username.into(), password: password.into() }
    }
}

impl std::fmt::Debug for SaslScram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslScram")
            .field("mechanism", &MECHANISM)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why a SCRAM exchange was refused on the client side, or the server's `e=` error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// A server message that is not SCRAM syntax.
    #[error("malformed SCRAM {message} message: {reason}")]
    Malformed { message: &'static str, reason: String },
    /// The server nonce does not extend the client's: a replay or a broken server.
    #[error("the server nonce does not extend the client nonce")]
    Nonce,
    /// Too few (weak) or too many (denial of service) PBKDF2 iterations.
    #[error("the server asks for {0} iterations (accepted: {MIN_ITERATIONS}..={MAX_ITERATIONS})")]
    Iterations(u32),
    /// The server-final signature is wrong: the server does not know the credential.
    #[error("the server signature does not verify: the broker does not hold this user's credential")]
    ServerSignature,
    /// The server ended the exchange with `e=<value>`.
    #[error("the server refused: {0}")]
    Server(String),
}

/// `,` → `=2C` and `=` → `=3D` (RFC 5802 `saslname`).
pub fn escape_username(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

/// The first step: holds the nonce and the client-first-message-bare.
pub struct ScramClient {
    nonce: String,
    first_bare: String,
}

/// The second step: what is needed to check the server-final message.
pub struct ClientFinal {
    server_key: hmac::Key,
    auth_message: String,
}

impl ScramClient {
    /// A new exchange for `username` with a random nonce.
    pub fn new(username: &str) -> Self {
        Self::with_nonce(username, B64.encode(random_bytes(32)))
    }

    /// A new exchange with a given nonce (printable, no `,`): for tests.
    pub fn with_nonce(username: &str, nonce: String) -> Self {
        let first_bare = format!("n={},r={nonce}", escape_username(username));
        ScramClient { nonce, first_bare }
    }

    /// `client-first-message`: gs2 header `n,,` (no channel binding, no authzid) and the bare
    /// part.
    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.first_bare).into_bytes()
    }

    /// Checks `server_first` (`r=`, `s=`, `i=`) and computes the `client-final-message` with
    /// the proof of knowing `password`.
    pub fn client_final(self, server_first: &[u8], password: &str) -> Result<(ClientFinal, Vec<u8>), ScramError> {
        let text = std::str::from_utf8(server_first)
            .map_err(|_| ScramError::Malformed { message: "server-first", reason: "not UTF-8".into() })?;
        let malformed = |reason: &str| ScramError::Malformed { message: "server-first", reason: reason.into() };
        if let Some(e) = text.strip_prefix("e=") {
            return Err(ScramError::Server(e.to_owned()));
        }
        let mut attrs = text.split(',');
        let nonce = attrs.next().and_then(|a| a.strip_prefix("r=")).ok_or_else(|| malformed("no r= first"))?;
        let salt = attrs.next().and_then(|a| a.strip_prefix("s=")).ok_or_else(|| malformed("no s= second"))?;
        let iterations = attrs.next().and_then(|a| a.strip_prefix("i=")).ok_or_else(|| malformed("no i= third"))?;
        if attrs.any(|a| a.starts_with("m=")) {
            return Err(malformed("mandatory extension m= not supported"));
        }
        if nonce.len() <= self.nonce.len() || !nonce.starts_with(&self.nonce) {
            return Err(ScramError::Nonce);
        }
        if !nonce.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
            return Err(malformed("nonce with characters outside printable ASCII"));
        }
        let salt = B64.decode(salt).map_err(|_| malformed("salt is not base64"))?;
        if salt.is_empty() {
            return Err(malformed("empty salt"));
        }
        let iterations: u32 = iterations.parse().map_err(|_| malformed("iteration count is not a number"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(ScramError::Iterations(iterations));
        }

        let keys = Keys::derive(password, &salt, iterations);
        // "biws" is base64("n,,"): the gs2 header again, as channel binding data.
        let final_bare = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{final_bare}", self.first_bare);
        let client_signature =
            hmac::sign(&hmac::Key::new(hmac::HMAC_SHA512, &keys.stored_key), auth_message.as_bytes());
        let proof: Vec<u8> = keys.client_key.iter().zip(client_signature.as_ref()).map(|(k, s)| k ^ s).collect();
        let server_key = hmac::Key::new(hmac::HMAC_SHA512, &keys.server_key);
        Ok((ClientFinal { server_key, auth_message }, format!("{final_bare},p={}", B64.encode(proof)).into_bytes()))
    }
}

impl ClientFinal {
    /// Checks the `server-final-message`: `v=` must carry the server signature (proof that the
    /// server knows the credential); `e=` is the server's refusal.
    pub fn verify_server_final(self, server_final: &[u8]) -> Result<(), ScramError> {
        let text = std::str::from_utf8(server_final)
            .map_err(|_| ScramError::Malformed { message: "server-final", reason: "not UTF-8".into() })?;
        let first = text.split(',').next().unwrap_or_default();
        if let Some(e) = first.strip_prefix("e=") {
            return Err(ScramError::Server(e.to_owned()));
        }
        let v = first
            .strip_prefix("v=")
            .ok_or_else(|| ScramError::Malformed { message: "server-final", reason: "neither v= nor e=".into() })?;
        let got = B64.decode(v).map_err(|_| ScramError::ServerSignature)?;
        // ServerSignature = HMAC(ServerKey, AuthMessage), compared in constant time.
        hmac::verify(&self.server_key, self.auth_message.as_bytes(), &got).map_err(|_| ScramError::ServerSignature)
    }
}

/// The keys derived from a password (RFC 5802 §3).
struct Keys {
    client_key: Vec<u8>,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl Keys {
    fn derive(password: &str, salt: &[u8], iterations: u32) -> Keys {
        let salted = hmac::Key::new(hmac::HMAC_SHA512, &salted_password(password, salt, iterations));
        let client_key = hmac::sign(&salted, b"Client Key").as_ref().to_vec();
        let stored_key = digest::digest(&digest::SHA512, &client_key).as_ref().to_vec();
        let server_key = hmac::sign(&salted, b"Server Key").as_ref().to_vec();
        Keys { client_key, stored_key, server_key }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The broker's side, as small as RFC 5802 allows: a stored credential and the checks.
    struct Server {
        salt: Vec<u8>,
        iterations: u32,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
        user: String,
        nonce: String,
        first_bare: String,
        first: String,
    }

    impl Server {
        fn new(password: &str, iterations: u32) -> Server {
            let salt = b"kafka-salt-16-by".to_vec();
            let keys = Keys::derive(password, &salt, iterations);
            Server {
                salt,
                iterations,
                stored_key: keys.stored_key,
                server_key: keys.server_key,
                user: String::new(),
                nonce: String::new(),
                first_bare: String::new(),
                first: String::new(),
            }
        }

        fn first(&mut self, client_first: &[u8]) -> Vec<u8> {
            let text = std::str::from_utf8(client_first).unwrap();
            let bare = text.strip_prefix("n,,").expect("gs2 header n,,");
            let (user, nonce) = bare.split_once(",r=").unwrap();
            self.user = user.strip_prefix("n=").unwrap().replace("=2C", ",").replace("=3D", "=");
            self.nonce = format!("{nonce}c2VydmVyLW5vbmNl");
            self.first_bare = bare.to_owned();
            self.first = format!("r={},s={},i={}", self.nonce, B64.encode(&self.salt), self.iterations);
            self.first.clone().into_bytes()
        }

        fn last(&self, client_final: &[u8]) -> Vec<u8> {
            let text = std::str::from_utf8(client_final).unwrap();
            let (without_proof, proof) = text.rsplit_once(",p=").unwrap();
            assert_eq!(without_proof, format!("c=biws,r={}", self.nonce));
            let auth = format!("{},{},{without_proof}", self.first_bare, self.first);
            let sig = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA512, &self.stored_key), auth.as_bytes());
            let client_key: Vec<u8> = B64.decode(proof).unwrap().iter().zip(sig.as_ref()).map(|(p, s)| p ^ s).collect();
            if digest::digest(&digest::SHA512, &client_key).as_ref() != self.stored_key.as_slice() {
                return b"e=invalid-proof".to_vec();
            }
            let v = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA512, &self.server_key), auth.as_bytes());
            format!("v={}", B64.encode(v)).into_bytes()
        }
    }

    fn exchange(user: &str, password: &str, server: &mut Server) -> Result<(), ScramError> {
        let client = ScramClient::new(user);
        let server_first = server.first(&client.client_first());
        let (last, client_final) = client.client_final(&server_first, password)?;
        last.verify_server_final(&server.last(&client_final))
    }

    #[test]
    fn round_trip_with_a_server_holding_the_credential() {
        let mut server = Server::new("pa,ss=wörd", 4096);
        exchange("ad,m=in", "pa,ss=wörd", &mut server).unwrap();
        assert_eq!(server.user, "ad,m=in", "the escaped name reads back");
    }

    #[test]
    fn a_wrong_password_is_refused_by_the_server() {
        let mut server = Server::new("right", 4096);
        assert_eq!(exchange("admin", "wrong", &mut server), Err(ScramError::Server("invalid-proof".into())));
    }

    #[test]
    fn a_tampered_server_signature_is_refused() {
        let mut server = Server::new("secret", 4096);
        let client = ScramClient::new("admin");
        let server_first = server.first(&client.client_first());
        let (last, client_final) = client.client_final(&server_first, "secret").unwrap();
        let good = String::from_utf8(server.last(&client_final)).unwrap();
        let mut sig = B64.decode(good.strip_prefix("v=").unwrap()).unwrap();
        sig[0] ^= 1;
        let err = last.verify_server_final(format!("v={}", B64.encode(sig)).as_bytes()).unwrap_err();
        assert_eq!(err, ScramError::ServerSignature);
        // A server holding only the StoredKey (a stolen one) checks the proof but cannot sign.
        let mut forged = Server::new("other", 4096);
        forged.stored_key = Keys::derive("secret", &forged.salt, 4096).stored_key;
        assert_eq!(exchange("admin", "secret", &mut forged), Err(ScramError::ServerSignature));
    }

    #[test]
    fn a_server_nonce_must_extend_the_client_nonce() {
        let salt = B64.encode(b"salt");
        for server_nonce in ["abc", "xyzabcdef", "ab"] {
            let client = ScramClient::with_nonce("admin", "abc".into());
            let first = format!("r={server_nonce},s={salt},i=4096");
            assert_eq!(client.client_final(first.as_bytes(), "p").err(), Some(ScramError::Nonce), "{server_nonce}");
        }
        let client = ScramClient::with_nonce("admin", "abc".into());
        assert!(client.client_final(format!("r=abcdef,s={salt},i=4096").as_bytes(), "p").is_ok());
    }

    #[test]
    fn iteration_counts_outside_4096_to_16384_are_refused() {
        let salt = B64.encode(b"salt");
        for i in [0, 1, 4095, 16385, u32::MAX] {
            let client = ScramClient::with_nonce("admin", "abc".into());
            let first = format!("r=abcdef,s={salt},i={i}");
            assert_eq!(client.client_final(first.as_bytes(), "p").err(), Some(ScramError::Iterations(i)));
        }
    }

    #[test]
    fn malformed_and_error_server_messages() {
        let client = || ScramClient::with_nonce("admin", "abc".into());
        for bad in
            ["", "s=c2FsdA==,r=abcdef,i=4096", "r=abcdef,i=4096", "r=abcdef,s=!!,i=4096", "r=abcdef,s=c2FsdA==,i=x"]
        {
            assert!(matches!(client().client_final(bad.as_bytes(), "p"), Err(ScramError::Malformed { .. })), "{bad}");
        }
        let mandatory = "r=abcdef,s=c2FsdA==,i=4096,m=ext";
        assert!(matches!(client().client_final(mandatory.as_bytes(), "p"), Err(ScramError::Malformed { .. })));
        let refused = client().client_final(b"e=unknown-user", "p").err();
        assert_eq!(refused, Some(ScramError::Server("unknown-user".into())));
        let (last, _) = client().client_final(b"r=abcdef,s=c2FsdA==,i=4096", "p").unwrap();
        assert_eq!(last.verify_server_final(b"e=other-error").unwrap_err(), ScramError::Server("other-error".into()));
    }

    #[test]
    fn user_names_are_escaped_and_the_first_message_is_kafkas() {
        assert_eq!(escape_username("a=b,c"), "a=3Db=2Cc");
        assert_eq!(escape_username("=2C"), "=3D2C");
        let first = String::from_utf8(ScramClient::with_nonce("a,b", "NONCE".into()).client_first()).unwrap();
        assert_eq!(first, "n,,n=a=2Cb,r=NONCE");
        let random = String::from_utf8(ScramClient::new("u").client_first()).unwrap();
        let nonce = random.strip_prefix("n,,n=u,r=").unwrap();
        assert!(nonce.len() >= 32 && !nonce.contains(','), "{nonce}");
        assert_ne!(ScramClient::new("u").client_first(), ScramClient::new("u").client_first());
    }

    #[test]
    fn debug_does_not_show_the_password() {
        let shown = format!("{:?}", SaslScram::new("admin", "hunter2-secret"));
        assert!(shown.contains("admin") && shown.contains("SCRAM-SHA-512"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}

//! What can go wrong talking to Kafka, and which of it is worth retrying.

use std::time::Duration;

pub use kafka_protocol::ResponseError;

/// An error of the admin client. Every variant names the broker address or the resource.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The host name of a broker could not be resolved.
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    /// The TCP (or TLS) connection could not be opened.
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    /// A connect or a request did not finish in time.
    #[error("{op} with {addr} timed out after {after:?}")]
    Timeout { op: &'static str, addr: String, after: Duration },
    /// The connection broke while a request was under way.
    #[error("connection to {addr} failed: {source}")]
    Io { addr: String, source: std::io::Error },
    /// The broker sent something this client cannot decode.
    #[error("protocol error with {addr}: {message}")]
    Protocol { addr: String, message: String },
    /// The broker and this client share no version of an API.
    #[error("broker {addr} supports no version of {api} that this client speaks")]
    Unsupported { addr: String, api: &'static str },
    /// Kafka answered with an error code.
    #[error("{api} for {resource} failed: {code}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kafka { api: &'static str, resource: String, code: ResponseError, message: Option<String> },
    /// None of the bootstrap addresses answered.
    #[error("no Kafka broker reachable at {bootstrap}: {last}")]
    NoBroker { bootstrap: String, last: Box<Error> },
    /// A node id that the cluster metadata does not list.
    #[error("node {0} is not among the live brokers of the cluster")]
    UnknownNode(i32),
    /// The metadata sends a request for a node to an address this client was not given; it
    /// does not connect there (the advertised listeners can be set by the cluster's spec).
    #[error(
        "node {node} advertises {advertised}, which is none of the addresses derived for the cluster ({allowed}); not connecting there: check the advertised listeners of the brokers"
    )]
    UntrustedAddress {
        /// The node the request is for.
        node: i32,
        /// The `host:port` the metadata gives for it.
        advertised: String,
        /// The addresses this client may connect to.
        allowed: String,
    },
    /// SASL authentication with the broker failed: wrong credentials, a listener without the
    /// mechanism, or a server that failed SCRAM's checks. Names the user, never the password.
    #[error("SASL {mechanism} authentication of user {user:?} with {addr} failed: {reason}")]
    Auth {
        /// The broker.
        addr: String,
        /// The user that tried to log in.
        user: String,
        /// The SASL mechanism.
        mechanism: &'static str,
        /// Kafka's error code, when the broker answered with one.
        code: Option<ResponseError>,
        /// What went wrong (Kafka's error message, or the client's check that failed).
        reason: String,
    },
    /// TLS settings that rustls refused.
    #[error("TLS: {0}")]
    Tls(String),
}

impl Error {
    /// Whether retrying the same call later may succeed (connection problems, timeouts and the
    /// error codes Kafka marks retriable, such as a controller moving).
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Timeout { .. } | Error::Io { .. } | Error::Resolve { .. } => true,
            Error::NoBroker { last, .. } => last.is_retriable(),
            Error::Kafka { code, .. } => code.is_retriable() || matches!(code, ResponseError::NotController),
            _ => false,
        }
    }

    /// Stable category for Event reasons and metric labels.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Resolve { .. } => "KafkaResolve",
            Error::Connect { .. } => "KafkaConnect",
            Error::Timeout { .. } => "KafkaTimeout",
            Error::Io { .. } => "KafkaConnectionLost",
            Error::Protocol { .. } => "KafkaProtocol",
            Error::Unsupported { .. } => "KafkaUnsupportedApi",
            Error::Kafka { .. } => "KafkaError",
            Error::NoBroker { .. } => "KafkaUnreachable",
            Error::UnknownNode(_) => "KafkaUnknownNode",
            Error::UntrustedAddress { .. } => "KafkaUntrustedAddress",
            Error::Tls(_) => "KafkaTls",
            Error::Auth { .. } => "KafkaAuthentication",
        }
    }

    /// The Kafka error code, when Kafka answered with one.
    pub fn code(&self) -> Option<ResponseError> {
        match self {
            Error::Kafka { code, .. } => Some(*code),
            Error::Auth { code, .. } => *code,
            Error::NoBroker { last, .. } => last.code(),
            _ => None,
        }
    }
}

/// Turns a response's error code into a `Result`.
pub(crate) fn check(api: &'static str, resource: impl Into<String>, code: i16, message: Option<&str>) -> Result<()> {
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(code) => Err(Error::Kafka { api, resource: resource.into(), code, message: message.map(str::to_owned) }),
    }
}

/// Result of the admin client.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! An async Kafka admin client on the `kafka-protocol` crate over tokio (tokio-rustls for SSL
//! listeners, SCRAM-SHA-512 for SASL listeners): metadata, DescribeCluster, DescribeQuorum,
//! configs, topics and ACLs, with timeouts, retries of retriable errors and errors that name
//! the broker and resource.
//!
//! [`health`] holds the pure decisions built on what it reads (may a broker restart now?).

mod acl;
mod admin;
mod connection;
pub mod dynamic;
mod error;
pub mod health;
mod resolver;
pub mod scram;
mod scram_client;
mod tls;
mod types;
pub mod user_acls;

pub use acl::{AclBinding, AclFilter, AclOperation, PatternType, Permission, ResourceType};
pub use admin::Admin;
pub use connection::{ConnectOptions, Connection, MAX_RESPONSE_BYTES};
pub use error::{Error, ResponseError, Result};
pub use resolver::{Resolver, lookup_hosts, split_host_port};
pub use scram_client::SaslScram;
pub use tls::client_config;
pub use types::*;

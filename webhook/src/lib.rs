//! The admission webhook for Koperator's custom resources (DESIGN §5–7): validating and
//! mutating routes over HTTPS with a self-managed, rotating certificate.

pub mod admission;
pub mod certs;
pub mod kafka_checks;
pub mod limits;
pub mod lookups;
pub mod metrics;
pub mod pki;
pub mod review;
pub mod server;
pub mod watch;

//! Host name resolution for broker addresses, with an optional hosts file.
//!
//! Brokers advertise names such as `kafka-0.kafka-headless.ns.svc.cluster.local`. In a cluster,
//! DNS resolves them. Out of cluster (development, the project's e2e tests) a hosts file in
//! `/etc/hosts` format (`--kafka-hosts-file`) maps them; it is re-read on every lookup, so a
//! file rewritten while the operator runs takes effect at once.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use super::error::{Error, Result};

/// Resolves `host:port` strings to socket addresses.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    hosts_file: Option<PathBuf>,
}

impl Resolver {
    /// A resolver that consults `hosts_file` first, then the system resolver.
    pub fn with_hosts_file(hosts_file: Option<PathBuf>) -> Self {
        Resolver { hosts_file }
    }

    /// The socket addresses for `host:port`, hosts file first.
    pub async fn resolve(&self, addr: &str) -> Result<Vec<SocketAddr>> {
        let (host, port) = split_host_port(addr)?;
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if let Some(path) = &self.hosts_file {
            let text = tokio::fs::read_to_string(path)
                .await
                .map_err(|e| Error::Resolve { host: host.into(), reason: format!("read {}: {e}", path.display()) })?;
            if let Some(ip) = lookup_hosts(&text, host) {
                return Ok(vec![SocketAddr::new(ip, port)]);
            }
        }
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| Error::Resolve { host: host.into(), reason: e.to_string() })?
            .collect();
        if found.is_empty() {
            return Err(Error::Resolve { host: host.into(), reason: "no addresses".into() });
        }
        Ok(found)
    }
}

/// Splits `host:port` (or `[v6]:port`).
pub fn split_host_port(addr: &str) -> Result<(&str, u16)> {
    let bad = || Error::Resolve { host: addr.into(), reason: "expected host:port".into() };
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host, port))
}

/// The address of `host` in a hosts file's text (first match wins, `#` starts a comment).
pub fn lookup_hosts(text: &str, host: &str) -> Option<IpAddr> {
    text.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        let ip = fields.next()?.parse().ok()?;
        fields.any(|name| name.eq_ignore_ascii_case(host)).then_some(ip)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_lookup() {
        let text = "# test\n127.0.1.1 kafka-0.kafka-headless.ns.svc.cluster.local kafka-all\n127.0.1.2  other # c\n";
        assert_eq!(lookup_hosts(text, "KAFKA-0.kafka-headless.ns.svc.cluster.local"), Some([127, 0, 1, 1].into()));
        assert_eq!(lookup_hosts(text, "kafka-all"), Some([127, 0, 1, 1].into()));
        assert_eq!(lookup_hosts(text, "other"), Some([127, 0, 1, 2].into()));
        assert_eq!(lookup_hosts(text, "test"), None);
        assert_eq!(lookup_hosts(text, "missing"), None);
    }

    #[test]
    fn host_port_split() {
        assert_eq!(split_host_port("a.b:9092").unwrap(), ("a.b", 9092));
        assert_eq!(split_host_port("[::1]:9092").unwrap(), ("::1", 9092));
        assert!(split_host_port("nohost").is_err());
        assert!(split_host_port(":9092").is_err());
        assert!(split_host_port("a:port").is_err());
    }
}

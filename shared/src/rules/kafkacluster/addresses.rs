//! Address rules (issue #14, item 5): the spec fields that end up in host names the operator
//! connects to or in `server.properties` are names, not free text.
//!
//! - `kubernetesClusterDomain` becomes part of every broker's DNS name
//!   (`<cluster>-<id>.<cluster>-headless.<ns>.svc.<domain>`), which the operator and the
//!   webhook connect to: a DNS-1123 subdomain.
//! - `zkAddresses` are joined into `zookeeper.connect`: each is `host` or `host:port`, with a
//!   DNS name or an IP address (IPv6 in brackets).
//! - `zkPath` is the ZooKeeper chroot appended to it: `/`-separated segments of letters,
//!   digits, `.`, `_` and `-`, no `.` or `..` segment, no empty segment. A missing leading `/`
//!   is accepted (as Koperator does; it is added when rendering).
//!
//! None of them may carry whitespace or control characters: they would break (or add lines
//! to) `server.properties`.

use super::spec_path;
use crate::api::KafkaClusterSpec;
use crate::rules::FieldError;
use crate::rules::names::{is_dns_subdomain, is_ip};

/// The longest `zkPath` accepted (ZooKeeper limits whole znode paths to far less than its
/// 1 MiB packet size; 1024 is plenty for a chroot).
pub const MAX_ZK_PATH: usize = 1024;

/// Every error of `kubernetesClusterDomain`, `zkAddresses` and `zkPath`.
pub fn check(spec: &KafkaClusterSpec) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(domain) = spec.kubernetes_cluster_domain.as_deref().filter(|d| !d.is_empty())
        && !is_dns_subdomain(domain)
    {
        errs.push(FieldError::invalid(
            &spec_path().child("kubernetesClusterDomain"),
            domain,
            "must be the cluster's DNS domain as a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', e.g. cluster.local), without a trailing dot, port or path; leave it unset for cluster.local",
        ));
    }
    for (i, addr) in spec.zk_addresses.iter().flatten().enumerate() {
        if let Err(why) = zk_address(addr) {
            errs.push(FieldError::invalid(
                &spec_path().child("zkAddresses").index(i),
                addr,
                format!(
                    "{why}: each entry is one ZooKeeper server as host:port (e.g. zookeeper-client.zookeeper:2181 or [fd00::1]:2181); list servers as separate entries and put the chroot in spec.zkPath"
                ),
            ));
        }
    }
    if let Some(path) = spec.zk_path.as_deref()
        && let Err(why) = zk_path(path)
    {
        errs.push(FieldError::invalid(
            &spec_path().child("zkPath"),
            path,
            format!(
                "{why}: zkPath is a ZooKeeper chroot such as /kafka or /kafka/prod, '/'-separated segments of letters, digits, '.', '_' and '-'; leave it unset or / for the root"
            ),
        ));
    }
    errs
}

/// Why `addr` is not `host` or `host:port` (a DNS name, an IPv4 address or `[IPv6]`).
fn zk_address(addr: &str) -> Result<(), &'static str> {
    if addr.is_empty() {
        return Err("the entry is empty");
    }
    if addr.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("whitespace or control characters");
    }
    if addr.contains(',') {
        return Err("more than one server in one entry");
    }
    if addr.contains('/') {
        return Err("a path in the address");
    }
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or("an unclosed '[' around an IPv6 address")?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("not an IPv6 address between '[' and ']'");
        }
        match after {
            "" => return Ok(()),
            _ => (None, after.strip_prefix(':').ok_or("text after ']' that is not :port")?),
        }
    } else {
        match addr.rsplit_once(':') {
            Some((host, port)) => (Some(host), port),
            None => (Some(addr), ""),
        }
    };
    if host.is_some_and(|h| h.contains(':')) {
        return Err("an IPv6 address without brackets (write [address]:port)");
    }
    if let Some(host) = host
        && !(is_ip(host) || is_dns_subdomain(&host.to_ascii_lowercase()))
    {
        return Err("the host is neither a DNS name nor an IP address");
    }
    if !port.is_empty() || addr.ends_with(':') {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err("the port is not a number between 1 and 65535"),
        }
    }
    Ok(())
}

/// Why `path` is not a ZooKeeper chroot.
fn zk_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() || path == "/" {
        return Ok(());
    }
    if path.len() > MAX_ZK_PATH {
        return Err("longer than 1024 characters");
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("whitespace or control characters");
    }
    let rel = path.strip_prefix('/').unwrap_or(path);
    for segment in rel.split('/') {
        match segment {
            "" => return Err("an empty segment ('//' or a trailing '/')"),
            "." | ".." => return Err("a '.' or '..' segment"),
            s if !s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-')) => {
                return Err("a character other than letters, digits, '.', '_', '-' and '/'");
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::rules::ErrorType;
    use crate::rules::kafkacluster::fixtures::{paths_and_types, valid_kraft_spec, valid_zk_spec};
    use crate::rules::kafkacluster::validate;

    #[rstest]
    #[case("zookeeper-client.zookeeper:2181", true)]
    #[case("zk-0.zk-headless.zookeeper.svc.cluster.local:2181", true)]
    #[case("ZK-0.Example.com:2181", true)]
    #[case("zookeeper", true)]
    #[case("10.0.0.7:2181", true)]
    #[case("[fd00::1]:2181", true)]
    #[case("[fd00::1]", true)]
    #[case("", false)]
    #[case("zk:2181,zk2:2181", false)]
    #[case("zk:2181/kafka", false)]
    #[case("zk:2181\nauthorizer.class.name=x", false)]
    #[case("zk :2181", false)]
    #[case("zk:0", false)]
    #[case("zk:65536", false)]
    #[case("zk:port", false)]
    #[case("zk:", false)]
    #[case("fd00::1:2181", false)]
    #[case("fd00::1", false)]
    #[case("[fd00::1", false)]
    #[case("[zk]:2181", false)]
    #[case("[fd00::1]2181", false)]
    #[case("zk_0:2181", false)]
    #[case("user@zk:2181", false)]
    #[case("-zk:2181", false)]
    fn zk_addresses(#[case] addr: &str, #[case] ok: bool) {
        assert_eq!(zk_address(addr).is_ok(), ok, "{addr}: {:?}", zk_address(addr));
    }

    #[rstest]
    #[case("", true)]
    #[case("/", true)]
    #[case("/kafka", true)]
    #[case("/kafka/prod-1_a.b", true)]
    #[case("kafka", true)]
    #[case("/kafka/", false)]
    #[case("//kafka", false)]
    #[case("/kafka/../other", false)]
    #[case("/./kafka", false)]
    #[case("..", false)]
    #[case("/kafka\nlisteners=PLAINTEXT://evil:9092", false)]
    #[case("/kafka\u{0}", false)]
    #[case("/kafka prod", false)]
    #[case("/kafka,zk2:2181", false)]
    #[case("/kafka:2181", false)]
    #[case("/k\u{e4}fka", false)]
    fn zk_paths(#[case] path: &str, #[case] ok: bool) {
        assert_eq!(zk_path(path).is_ok(), ok, "{path:?}: {:?}", zk_path(path));
    }

    #[test]
    fn a_long_zk_path_is_refused() {
        let long = format!("/{}", "a".repeat(MAX_ZK_PATH));
        assert_eq!(zk_path(&long), Err("longer than 1024 characters"));
        assert!(zk_path(&format!("/{}", "a".repeat(MAX_ZK_PATH - 1))).is_ok());
    }

    #[rstest]
    #[case("cluster.local", true)]
    #[case("corp.example", true)]
    #[case("", true)]
    #[case("cluster.local.", false)]
    #[case("Cluster.Local", false)]
    #[case("evil.example:443", false)]
    #[case("cluster.local/x", false)]
    #[case("cluster local", false)]
    #[case("cluster.local\nzookeeper.connect=evil:2181", false)]
    #[case("-cluster.local", false)]
    fn cluster_domains(#[case] domain: &str, #[case] ok: bool) {
        let mut spec = valid_kraft_spec();
        spec.kubernetes_cluster_domain = Some(domain.into());
        assert_eq!(check(&spec).is_empty(), ok, "{domain:?}: {:?}", check(&spec));
    }

    #[test]
    fn every_bad_field_is_reported_with_its_path_and_a_fix() {
        let mut spec = valid_zk_spec();
        spec.kubernetes_cluster_domain = Some("evil.example:443".into());
        spec.zk_addresses = Some(vec!["zk-0:2181".into(), "zk-1:2181/kafka".into(), "zk-2:2181,zk-3".into()]);
        spec.zk_path = Some("/kafka/../admin".into());
        let errs = validate(&spec, &Default::default()).errors;
        assert_eq!(
            paths_and_types(&errs),
            vec![
                ("spec.kubernetesClusterDomain".into(), ErrorType::Invalid),
                ("spec.zkAddresses[1]".into(), ErrorType::Invalid),
                ("spec.zkAddresses[2]".into(), ErrorType::Invalid),
                ("spec.zkPath".into(), ErrorType::Invalid),
            ]
        );
        assert!(errs[0].message.contains("e.g. cluster.local"), "{}", errs[0].message);
        assert!(errs[1].message.starts_with("a path in the address"), "{}", errs[1].message);
        assert!(errs[1].message.contains("put the chroot in spec.zkPath"), "{}", errs[1].message);
        assert!(errs[2].message.starts_with("more than one server in one entry"), "{}", errs[2].message);
        assert!(errs[3].message.starts_with("a '.' or '..' segment"), "{}", errs[3].message);
        assert!(errs[3].message.contains("such as /kafka"), "{}", errs[3].message);
    }

    #[test]
    fn the_valid_fixtures_pass() {
        assert!(check(&valid_zk_spec()).is_empty());
        let mut spec = valid_zk_spec();
        spec.zk_path = Some("/kafka".into());
        spec.kubernetes_cluster_domain = Some("cluster.local".into());
        assert!(check(&spec).is_empty());
    }
}

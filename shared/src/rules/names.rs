//! Name syntax checks: DNS labels and subdomains, port names, Kafka topic and listener names.

/// RFC 1123 label: lowercase alphanumerics and `-`, starting and ending alphanumeric, ≤ 63.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1123 subdomain: dot-separated labels, ≤ 253 characters (Secret, Service, host names).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A host name that may carry a leading `*.` wildcard.
pub fn is_wildcard_dns_subdomain(s: &str) -> bool {
    is_dns_subdomain(s.strip_prefix("*.").unwrap_or(s))
}

/// IANA service name as Kubernetes requires for port names: ≤ 15 characters, lowercase
/// alphanumerics and `-`, at least one letter, no leading/trailing or double `-`.
pub fn is_port_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.iter().any(u8::is_ascii_lowercase)
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !s.contains("--")
}

/// Kafka topic name: 1..249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn is_kafka_topic_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 249
        && s != "."
        && s != ".."
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// A literal IPv4 or IPv6 address.
pub fn is_ip(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("internal", true)]
    #[case("tcp-internal", true)]
    #[case("a-very-long-name", false)]
    #[case("123", false)]
    #[case("-abc", false)]
    #[case("ab--c", false)]
    #[case("Abc", false)]
    fn port_names(#[case] name: &str, #[case] ok: bool) {
        assert_eq!(is_port_name(name), ok, "{name}");
    }

    #[rstest]
    #[case("orders", true)]
    #[case("orders.v1_x-y", true)]
    #[case(".", false)]
    #[case("..", false)]
    #[case("bad/name", false)]
    #[case("", false)]
    fn topic_names(#[case] name: &str, #[case] ok: bool) {
        assert_eq!(is_kafka_topic_name(name), ok, "{name}");
    }

    #[rstest]
    #[case("kafka-0.example.com", true)]
    #[case("Kafka.example.com", false)]
    #[case("a..b", false)]
    #[case("x", true)]
    fn subdomains(#[case] name: &str, #[case] ok: bool) {
        assert_eq!(is_dns_subdomain(name), ok, "{name}");
    }
}

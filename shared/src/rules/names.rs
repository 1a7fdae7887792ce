//! Name syntax checks: DNS labels and subdomains, port names, Kafka topic and listener names;
//! and the KafkaCluster name rule: every name derived from it fits Kubernetes' limits.

use crate::api::KafkaCluster;
use crate::render::names::{self as derived, DerivedName};
use crate::rules::{FieldError, Path};

/// RFC 1123 label: lowercase alphanumerics and `-`, starting and ending alphanumeric, ≤ 63.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1035 label, as Kubernetes requires for Service names: an RFC 1123 label that starts with
/// a letter.
pub fn is_dns1035_label(s: &str) -> bool {
    is_dns_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// Issue #14 item 7: the KafkaCluster's name gives Services (`<name>-all-broker`,
/// `<name>-<id>`, ...), Pod host names, label values (`kafka_cr=<name>`,
/// `kafkaCluster=<name>.<namespace>`) and DNS names, so it is an RFC 1035 label short enough
/// for every one of them: at most [`derived::MAX_CLUSTER_NAME`] characters, fewer in a long
/// namespace ([`derived::max_cluster_name_len`]) or with long external listener names and
/// 5-digit broker ids. One error on `metadata.name` naming the first derived name that does
/// not fit and the longest name that would.
pub fn kafka_cluster_name(kc: &KafkaCluster) -> Vec<FieldError> {
    let path = Path::root("metadata").child("name");
    let Some(name) = kc.metadata.name.as_deref().filter(|n| !n.is_empty()) else { return Vec::new() };
    if !is_dns1035_label(name) {
        return vec![FieldError::invalid(
            &path,
            name,
            "a KafkaCluster name names Services, so it must be a DNS-1035 label: lowercase letters, digits and '-', \
             starting with a letter and ending with a letter or digit",
        )];
    }
    let names = derived::derived_names(kc);
    // The longest name that fits every derived name of this spec.
    let max = names.iter().map(|d| d.limit.saturating_sub(d.name.len() - name.len())).min().unwrap_or(usize::MAX);
    let Some(DerivedName { what, name: long, limit }) = names.into_iter().find(|d| d.name.len() > d.limit) else {
        return Vec::new();
    };
    let ns = kc.metadata.namespace.as_deref().unwrap_or("default");
    vec![FieldError::invalid(
        &path,
        name,
        format!(
            "the {what} {long:?} would have {} characters, over Kubernetes' limit of {limit}; use a KafkaCluster name of \
             at most {max} characters (at most {} in namespace {ns:?}, fewer with long external listener names or \
             5-digit broker ids)",
            long.len(),
            derived::max_cluster_name_len(ns)
        ),
    )]
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

    fn kc(name: &str, ns: &str) -> KafkaCluster {
        let mut spec = crate::rules::kafkacluster::fixtures::valid_kraft_spec();
        spec.brokers[0].id = derived::MAX_BROKER_ID;
        let mut c = KafkaCluster::new(name, spec);
        c.metadata.namespace = Some(ns.into());
        c
    }

    #[test]
    fn cluster_names_up_to_the_limit() {
        assert_eq!(kafka_cluster_name(&kc(&"k".repeat(45), "default")), vec![]);
        let errs = kafka_cluster_name(&kc(&"k".repeat(46), "default"));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path, "metadata.name");
        assert!(errs[0].message.contains("-cruisecontrol-svc\" would have 64 characters"), "{}", errs[0].message);
        assert!(errs[0].message.contains("at most 45 characters"), "{}", errs[0].message);
    }

    #[test]
    fn the_namespace_shortens_the_limit() {
        let ns = "n".repeat(30);
        assert_eq!(kafka_cluster_name(&kc(&"k".repeat(32), &ns)), vec![]);
        let errs = kafka_cluster_name(&kc(&"k".repeat(33), &ns));
        assert!(errs[0].message.contains("label kafkaCluster"), "{}", errs[0].message);
        assert!(errs[0].message.contains("at most 32 characters"), "{}", errs[0].message);
    }

    #[test]
    fn external_services_of_big_broker_ids_shorten_the_limit() {
        use crate::api::kafkacluster::AccessMethod;
        let mut c = kc(&"k".repeat(45), "default");
        let mut l = crate::rules::kafkacluster::fixtures::external("tcp-external-x", 9094, 30000);
        l.access_method = Some(AccessMethod::NodePort);
        c.spec.listeners_config.external_listeners = Some(vec![l.clone()]);
        let errs = kafka_cluster_name(&c);
        assert!(errs[0].message.contains("external listener Service \""), "{}", errs[0].message);
        assert!(errs[0].message.contains("at most 42 characters"), "{}", errs[0].message);
        c.metadata.name = Some("k".repeat(42));
        assert_eq!(kafka_cluster_name(&c), vec![]);
        // Behind Envoy (LoadBalancer, the default): `envoy-loadbalancer-tcp-external-x-<cluster>`.
        l.access_method = Some(AccessMethod::LoadBalancer);
        c.spec.listeners_config.external_listeners = Some(vec![l]);
        let errs = kafka_cluster_name(&c);
        assert!(
            errs[0].message.contains("Service (Envoy) \"envoy-loadbalancer-tcp-external-x-"),
            "{}",
            errs[0].message
        );
        assert!(errs[0].message.contains("at most 29 characters"), "{}", errs[0].message);
        c.metadata.name = Some("k".repeat(29));
        assert_eq!(kafka_cluster_name(&c), vec![]);
    }

    #[rstest]
    #[case("kafka", true)]
    #[case("kafka-1", true)]
    #[case("1kafka", false)]
    #[case("kafka.prod", false)]
    #[case("Kafka", false)]
    #[case("kafka-", false)]
    fn cluster_name_syntax(#[case] name: &str, #[case] ok: bool) {
        assert_eq!(kafka_cluster_name(&kc(name, "default")).is_empty(), ok, "{name}");
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

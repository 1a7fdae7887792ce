//! Kafka `server.properties` text as users write it in `readOnlyConfig`, `clusterWideConfig`
//! and `brokerConfig.config`: parsing and the keys the operator owns.

/// Keys the operator computes from the spec; setting them in a config string is rejected.
/// Each entry says where the value comes from, for the error message.
pub const OPERATOR_OWNED_KEYS: &[(&str, &str)] = &[
    ("broker.id", "spec.brokers[].id"),
    ("node.id", "spec.brokers[].id"),
    ("process.roles", "brokerConfig.processRoles"),
    ("listeners", "spec.listenersConfig"),
    ("advertised.listeners", "spec.listenersConfig"),
    ("listener.security.protocol.map", "the listeners' type"),
    ("inter.broker.listener.name", "usedForInnerBrokerCommunication"),
    ("security.inter.broker.protocol", "usedForInnerBrokerCommunication"),
    ("controller.listener.names", "usedForControllerCommunication"),
    ("controller.quorum.voters", "the brokers with the controller role"),
    ("controller.quorum.bootstrap.servers", "the brokers with the controller role"),
    ("log.dirs", "brokerConfig.storageConfigs"),
    ("log.dir", "brokerConfig.storageConfigs"),
    ("metadata.log.dir", "brokerConfig.storageConfigs"),
    ("zookeeper.connect", "spec.zkAddresses and spec.zkPath"),
];

/// Where the operator takes an owned key's value from, or `None` when users may set it.
pub fn owned_key_source(key: &str) -> Option<&'static str> {
    OPERATOR_OWNED_KEYS.iter().find(|(k, _)| *k == key).map(|(_, src)| *src)
}

/// A syntax error in a properties text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Parses `key=value` (or `key: value`) lines; `#` and `!` start comments; a trailing `\`
/// continues a line. Returns the pairs in order, or the first syntax error.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, ParseError> {
    let mut out = Vec::new();
    let mut pending = String::new();
    let mut start_line = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = if pending.is_empty() { raw.trim() } else { raw.trim_start() };
        if pending.is_empty() {
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            start_line = i + 1;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(line);
        out.push(split_pair(&pending, start_line)?);
        pending.clear();
    }
    if !pending.is_empty() {
        out.push(split_pair(&pending, start_line)?);
    }
    Ok(out)
}

fn split_pair(line: &str, line_no: usize) -> Result<(String, String), ParseError> {
    let Some(pos) = line.find(['=', ':']) else {
        return Err(ParseError { line: line_no, message: format!("line {line_no}: expected key=value, got {line:?}") });
    };
    let key = line[..pos].trim();
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(ParseError {
            line: line_no,
            message: format!("line {line_no}: {line:?} has no valid key before '{}'", &line[pos..pos + 1]),
        });
    }
    Ok((key.to_string(), line[pos + 1..].trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_comments_and_continuations() {
        let text = "# comment\n! also\nauto.create.topics.enable=false\n\nnum.partitions: 3\nlong=a,\\\n  b\n";
        assert_eq!(
            parse(text).unwrap(),
            vec![
                ("auto.create.topics.enable".into(), "false".into()),
                ("num.partitions".into(), "3".into()),
                ("long".into(), "a,b".into()),
            ]
        );
    }

    #[test]
    fn line_without_separator_is_an_error() {
        let err = parse("a=1\njust words\n").unwrap_err();
        assert_eq!(err.line, 2);
    }

    #[test]
    fn missing_key_is_an_error() {
        assert_eq!(parse("=1").unwrap_err().line, 1);
    }

    #[test]
    fn owned_keys_are_known() {
        assert!(owned_key_source("log.dirs").is_some());
        assert!(owned_key_source("broker.rack").is_none());
    }
}

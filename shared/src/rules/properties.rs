//! Kafka `server.properties` text as users write it in `readOnlyConfig`, `clusterWideConfig`
//! and `brokerConfig.config`: parsing exactly as `java.util.Properties.load` reads it, and the
//! keys the operator owns.
//!
//! Kafka loads `server.properties` with `Properties.load`, so the rules must see the keys Kafka
//! will see: `log\.dirs`, `\u006cog.dirs` and `log.dirs` are one key to Java, a lone `\r` ends a
//! line, and a line ending in an odd number of backslashes continues on the next one. [`parse`]
//! follows the JDK 17 reader (`LineReader`, `load0`, `loadConvert`) step by step; the
//! renderer writes the pairs back with [`crate::render::properties::escape_key`] and
//! [`crate::render::properties::escape_value`], so what Kafka loads is what the rules checked
//! (`shared/tests/properties_java.rs` loads both with Java itself).

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
    ("control.plane.listener.name", "usedForControllerCommunication"),
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
    /// 1-based line number (of the natural line the logical line starts on).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Java's whitespace inside a line: space, tab, form feed.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0c')
}

/// Java's line terminators: `\n`, `\r` (and `\r\n`). Not `\u0085`, `\u2028` or `\u2029`.
fn is_eol(c: char) -> bool {
    matches!(c, '\n' | '\r')
}

/// One logical line as `Properties.load`'s `LineReader` returns it: continuations joined, the
/// continuing backslashes and the continued lines' leading whitespace removed, comments and
/// blank lines skipped. Returns (first char index, the line's chars).
fn logical_lines(chars: &[char]) -> Vec<(usize, Vec<char>)> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let mut buf: Vec<char> = Vec::new();
        let mut start = i;
        let mut skip_blank = true;
        let mut appended_line_begin = false;
        let mut preceding_backslash = false;
        let line = loop {
            let Some(&c) = chars.get(i) else {
                if buf.is_empty() {
                    return out;
                }
                break finish(buf, preceding_backslash);
            };
            i += 1;
            if skip_blank {
                if is_blank(c) || (!appended_line_begin && is_eol(c)) {
                    continue;
                }
                skip_blank = false;
                appended_line_begin = false;
            }
            if buf.is_empty() && (c == '#' || c == '!') {
                // A comment runs to the end of its natural line, backslash or not.
                while let Some(&c) = chars.get(i) {
                    i += 1;
                    if is_eol(c) {
                        break;
                    }
                }
                skip_blank = true;
                continue;
            }
            if !is_eol(c) {
                if buf.is_empty() {
                    start = i - 1;
                }
                buf.push(c);
                preceding_backslash = c == '\\' && !preceding_backslash;
                continue;
            }
            if buf.is_empty() {
                skip_blank = true;
                continue;
            }
            if i >= chars.len() {
                break finish(buf, preceding_backslash);
            }
            if !preceding_backslash {
                break buf;
            }
            // A continuation: drop the backslash, skip the next line's leading whitespace.
            buf.pop();
            skip_blank = true;
            appended_line_begin = true;
            preceding_backslash = false;
            if c == '\r' && chars.get(i) == Some(&'\n') {
                i += 1;
            }
        };
        out.push((start, line));
    }
}

/// The end of the text: a last unescaped backslash is not part of the line.
fn finish(mut buf: Vec<char>, preceding_backslash: bool) -> Vec<char> {
    if preceding_backslash {
        buf.pop();
    }
    buf
}

/// `Properties.loadConvert`: `\uXXXX`, `\t`, `\n`, `\r`, `\f`, and `\x` for any other `x`.
fn unescape(chars: &[char]) -> Result<String, String> {
    let mut units: Vec<u16> = Vec::with_capacity(chars.len());
    let mut it = chars.iter().copied();
    while let Some(c) = it.next() {
        let c = if c != '\\' {
            c
        } else {
            match it.next() {
                None => return Err("a backslash ends the text".into()),
                Some('u') => {
                    let hex: String = it.by_ref().take(4).collect();
                    let v = (hex.len() == 4 && hex.chars().all(|h| h.is_ascii_hexdigit()))
                        .then(|| u16::from_str_radix(&hex, 16).ok())
                        .flatten()
                        .ok_or_else(|| format!("malformed \\uXXXX escape \\u{hex}"))?;
                    units.push(v);
                    continue;
                }
                Some('t') => '\t',
                Some('r') => '\r',
                Some('n') => '\n',
                Some('f') => '\x0c',
                Some(other) => other,
            }
        };
        let mut b = [0u16; 2];
        units.extend_from_slice(c.encode_utf16(&mut b));
    }
    String::from_utf16(&units).map_err(|_| "a \\uXXXX escape leaves half of a surrogate pair".to_string())
}

/// Parses a properties text exactly as `java.util.Properties.load` does and returns the pairs in
/// order (a later pair overrides an earlier one, as in Java). Stricter than Java where a line is
/// surely a mistake: a line needs a `=` or `:` separator and a key without whitespace or
/// control characters; a malformed `\uXXXX` (Java throws) is an error too.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    // Natural lines end at \n, \r\n or a lone \r; their ends, for line numbers in errors.
    let ends: Vec<usize> = (0..chars.len())
        .filter(|&j| chars[j] == '\n' || (chars[j] == '\r' && chars.get(j + 1) != Some(&'\n')))
        .collect();
    let line_of = |idx: usize| 1 + ends.partition_point(|&e| e < idx);
    let mut out = Vec::new();
    for (start, line) in logical_lines(&chars) {
        let line_no = line_of(start);
        let err = |message: String| ParseError { line: line_no, message: format!("line {line_no}: {message}") };
        // Properties.load0: the key ends at the first unescaped '=', ':' or whitespace.
        let mut key_len = 0;
        let mut value_start = line.len();
        let mut has_sep = false;
        let mut preceding_backslash = false;
        while key_len < line.len() {
            let c = line[key_len];
            if (c == '=' || c == ':') && !preceding_backslash {
                value_start = key_len + 1;
                has_sep = true;
                break;
            } else if is_blank(c) && !preceding_backslash {
                value_start = key_len + 1;
                break;
            }
            preceding_backslash = c == '\\' && !preceding_backslash;
            key_len += 1;
        }
        while value_start < line.len() {
            let c = line[value_start];
            if !is_blank(c) {
                if !has_sep && (c == '=' || c == ':') {
                    has_sep = true;
                } else {
                    break;
                }
            }
            value_start += 1;
        }
        let shown: String = line.iter().collect();
        if !has_sep {
            return Err(err(format!("expected key=value, got {shown:?}")));
        }
        let key = unescape(&line[..key_len]).map_err(|e| err(format!("{e} in {shown:?}")))?;
        let value = unescape(&line[value_start..]).map_err(|e| err(format!("{e} in {shown:?}")))?;
        if key.is_empty() {
            return Err(err(format!("{shown:?} has no key before its separator")));
        }
        if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err(format!("the key {key:?} contains whitespace or a control character")));
        }
        out.push((key, value));
    }
    Ok(out)
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

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {}", e.message))
    }

    fn one(k: &str, v: &str) -> Vec<(String, String)> {
        vec![(k.into(), v.into())]
    }

    #[test]
    fn escapes_are_what_java_reads() {
        assert_eq!(pairs("log\\.dirs=/evil"), one("log.dirs", "/evil"));
        assert_eq!(pairs("\\u006cog.dirs=/evil"), one("log.dirs", "/evil"));
        assert_eq!(pairs("a\\=b=c"), one("a=b", "c"));
        assert_eq!(pairs("a=x\\ny"), one("a", "x\ny"));
        assert_eq!(pairs("a=\\u00e9"), one("a", "é"));
        assert_eq!(pairs("a=\\q"), one("a", "q"), "an unknown escape is the character itself");
    }

    #[test]
    fn line_ends_are_javas() {
        assert_eq!(pairs("a=1\rlog.dirs=/evil").len(), 2, "a lone CR ends a line");
        assert_eq!(pairs("a=1\r\nb=2"), vec![("a".into(), "1".into()), ("b".into(), "2".into())]);
        assert_eq!(pairs("a=1\u{2028}b=2\u{85}c"), one("a", "1\u{2028}b=2\u{85}c"), "U+2028 and NEL end nothing");
        assert_eq!(pairs("a=1\x0cb"), one("a", "1\x0cb"), "form feed is whitespace, not a line end");
    }

    #[test]
    fn backslashes_at_line_ends() {
        assert_eq!(
            pairs("a=b\\\\\nc=d"),
            vec![("a".into(), "b\\".into()), ("c".into(), "d".into())],
            "even: no continuation"
        );
        assert_eq!(pairs("a=b\\\r\n  c"), one("a", "bc"));
        assert_eq!(pairs("a=b\\"), one("a", "b"), "a last odd backslash is dropped");
        assert_eq!(pairs("a=b\\\n\nc=d").len(), 2, "an empty continued line ends the logical line");
        assert_eq!(pairs("# x \\\nc=d"), one("c", "d"), "comments do not continue");
        assert_eq!(pairs("\\\n#c=d"), vec![], "a continued empty line starting with # is a comment, as in Java");
    }

    #[test]
    fn whitespace_is_javas() {
        assert_eq!(pairs("  a  =  b  "), one("a", "b  "), "trailing whitespace belongs to the value");
        assert_eq!(pairs("a\t:\tb"), one("a", "b"));
        assert_eq!(pairs("a=\\ b"), one("a", " b"));
    }

    #[test]
    fn doubtful_lines_are_errors() {
        assert!(parse("just words").is_err(), "whitespace separator only");
        assert!(parse("a b=c").is_err(), "Java reads key a, value b=c");
        assert!(parse("a=\\u12").is_err(), "Java throws on a malformed \\u");
        assert!(parse("a=\\ud800").is_err(), "half a surrogate pair");
        assert!(parse("a\\nb=1").is_err(), "a control character in a key");
        assert!(parse("\\").is_err(), "Java reads an empty key");
    }

    #[test]
    fn owned_keys_are_known() {
        assert!(owned_key_source("log.dirs").is_some());
        assert!(owned_key_source("broker.rack").is_none());
    }
}

//! No injection into `server.properties` (issue #14 item 6), checked with Java's own
//! `java.util.Properties` on this machine (`tests/java/LoadProperties.java`, run as a
//! single-file source program with the JDK's `java`).
//!
//! For hostile user config texts and hostile spec fields:
//! - every text the rules parse is read by Java's `Properties.load(Reader)` into exactly the
//!   pairs `rules::properties::parse` returned (the rules see Kafka's keys);
//! - a text that sets an operator-owned key in any spelling Java accepts is rejected;
//! - every accepted spec is rendered for each broker and loaded the way Kafka loads
//!   `server.properties` (`Properties.load(InputStream)`, ISO 8859-1): the keys are exactly the
//!   operator's plus the user's, every owned key keeps the operator's value, and every user
//!   pair arrives unchanged (non-ASCII included).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use koperator_shared::api::KafkaCluster;
use koperator_shared::render::properties::server_properties;
use koperator_shared::rules::properties::{OPERATOR_OWNED_KEYS, parse};
use koperator_shared::rules::{ErrorType, RuleConfig};
use koperator_shared::validated::{ValidatedCluster, ValidationError};

/// What the rules must do with a hostile config text.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Rejected: the text sets an owned key (Forbidden) or is not a properties text (Invalid).
    Rejected(ErrorType),
    /// Accepted: its pairs must reach Kafka unchanged and the owned keys keep their values.
    Accepted,
}

/// Hostile `readOnlyConfig` texts. Each is also tried as a broker's own `readOnlyConfig`.
const TEXTS: &[(&str, &str, Expect)] = &[
    ("continuation into an owned key", "foo=bar\\\nlog.dirs=/evil", Expect::Accepted),
    ("escaped newline in a value", "foo=bar\\nlog.dirs=/evil", Expect::Accepted),
    ("unicode-escaped newline in a value", "foo=bar\\u000alog.dirs=/evil", Expect::Accepted),
    ("unicode-escaped CR in a value", "foo=bar\\u000dnode.id=7", Expect::Accepted),
    ("escaped dot in an owned key", "log\\.dirs=/evil", Expect::Rejected(ErrorType::Forbidden)),
    ("unicode escape in an owned key", "\\u006cog.dirs=/evil", Expect::Rejected(ErrorType::Forbidden)),
    ("escaped letters in an owned key", "no\\de.i\\d=7", Expect::Rejected(ErrorType::Forbidden)),
    ("owned key split over a continuation", "liste\\\n    ners=EVIL://:1", Expect::Rejected(ErrorType::Forbidden)),
    ("lone CR before an owned key", "foo=bar\rlog.dirs=/evil", Expect::Rejected(ErrorType::Forbidden)),
    ("CRLF before an owned key", "foo=bar\r\nnode.id=7", Expect::Rejected(ErrorType::Forbidden)),
    ("owned key after whitespace", " \t\x0clog.dirs /evil", Expect::Rejected(ErrorType::Invalid)),
    ("owned key after whitespace, with a separator", " \t\x0clog.dirs = /evil", Expect::Rejected(ErrorType::Forbidden)),
    ("colon separator", "listeners:EVIL://:1", Expect::Rejected(ErrorType::Forbidden)),
    ("continued empty line before a comment", "\\\n#log.dirs=/evil\nfoo=1", Expect::Accepted),
    ("trailing backslash at the end of the text", "log.dir0=x\\", Expect::Accepted),
    ("escaped backslash at the end of a value", "log.dir0=x\\\\", Expect::Accepted),
    ("escaped backslash before a newline", "a=x\\\\\nb=y", Expect::Accepted),
    ("value ending in a backslash sorted before listeners", "l=x\\\\", Expect::Accepted),
    ("escaped separator in a key", "a\\=b\\:c=d", Expect::Accepted),
    ("U+2028 and NEL are not line ends", "foo=a\u{2028}log.dirs=/evil\u{85}node.id=7", Expect::Accepted),
    ("NUL in a value", "foo=a\0b", Expect::Accepted),
    ("non-ASCII value", "client.id=é☃\u{1F600}", Expect::Accepted),
    ("leading and trailing spaces in a value", "foo=\\  a b  ", Expect::Accepted),
    ("malformed unicode escape", "foo=\\u12", Expect::Rejected(ErrorType::Invalid)),
    ("NUL in a key", "fo\\u0000o=1", Expect::Rejected(ErrorType::Invalid)),
];

/// A hostile value of a spec field that ends up in an operator-owned value.
struct HostileField {
    what: &'static str,
    /// The KRaft sample, else the ZooKeeper one.
    kraft: bool,
    /// JSON pointer of the field.
    pointer: &'static str,
    value: &'static str,
    /// Where the rules must reject it, or `None` when the rendering must neutralise it.
    rejected_at: Option<&'static str>,
    /// The owned keys whose values carry the field.
    carriers: &'static [&'static str],
}

const MOUNT_PATH: &str = "/spec/brokerConfigGroups/default/storageConfigs/0/mountPath";
const MOUNT_PATH_FIELD: &str = "spec.brokerConfigGroups[default].storageConfigs[0].mountPath";

const HOSTILE_FIELDS: &[HostileField] = &[
    HostileField {
        what: "zkPath with a newline",
        kraft: false,
        pointer: "/spec/zkPath",
        value: "/kafka\nlog.dirs=/evil",
        rejected_at: Some("spec.zkPath"),
        carriers: &["zookeeper.connect"],
    },
    HostileField {
        what: "zkAddresses with a CR",
        kraft: false,
        pointer: "/spec/zkAddresses/0",
        value: "zk:2181\rlog.dirs=/evil",
        rejected_at: Some("spec.zkAddresses[0]"),
        carriers: &["zookeeper.connect"],
    },
    HostileField {
        what: "cluster domain with a newline",
        kraft: true,
        pointer: "/spec/kubernetesClusterDomain",
        value: "cluster.local\nlog.dirs=/evil",
        rejected_at: Some("spec.kubernetesClusterDomain"),
        carriers: &["controller.quorum.voters", "advertised.listeners"],
    },
    HostileField {
        what: "mount path with a newline",
        kraft: true,
        pointer: MOUNT_PATH,
        value: "/kafka-logs\nnode.id=7",
        rejected_at: Some(MOUNT_PATH_FIELD),
        carriers: &["log.dirs"],
    },
    HostileField {
        what: "mount path with a comma (a second log dir)",
        kraft: true,
        pointer: MOUNT_PATH,
        value: "/kafka-logs,/tmp",
        rejected_at: Some(MOUNT_PATH_FIELD),
        carriers: &["log.dirs"],
    },
    HostileField {
        what: "mount path with ..",
        kraft: true,
        pointer: MOUNT_PATH,
        value: "/kafka-logs/../etc",
        rejected_at: Some(MOUNT_PATH_FIELD),
        carriers: &["log.dirs"],
    },
    HostileField {
        what: "listener name with a newline",
        kraft: true,
        pointer: "/spec/listenersConfig/internalListeners/0/name",
        value: "internal\nlog.dirs=/evil",
        rejected_at: Some("spec.listenersConfig.internalListeners[0].name"),
        carriers: &["listeners"],
    },
];

/// Key/value pairs in order.
type Pairs = Vec<(String, String)>;

fn sample(name: &str) -> serde_json::Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("../config/samples").join(name)).unwrap();
    let mut obj: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    obj["metadata"]["namespace"] = "kafka".into();
    obj["metadata"]["uid"] = "00000000-0000-0000-0000-000000000001".into();
    obj
}

fn validate(obj: &serde_json::Value) -> Result<ValidatedCluster, ValidationError> {
    ValidatedCluster::new(&serde_json::from_value::<KafkaCluster>(obj.clone()).unwrap(), &RuleConfig::default())
}

/// Runs the Java loader once on every argument; one map (or error text) per argument.
fn java_load(args: &[String]) -> Vec<Result<BTreeMap<String, String>, String>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("java")
        .arg(root.join("tests/java/LoadProperties.java"))
        .args(args)
        .output()
        .expect("`java` (JDK 17) must be on PATH: this test loads the rendered files with java.util.Properties");
    assert!(out.status.success(), "java failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), args.len(), "one line per file:\n{text}");
    lines
        .iter()
        .map(|l| {
            let mut m: BTreeMap<String, String> = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            match m.remove("\0error") {
                Some(e) => Err(e),
                None => Ok(m),
            }
        })
        .collect()
}

/// Files to load: a user text (`text:` = `load(Reader)`) or a rendered file (`load(InputStream)`).
struct Files {
    dir: PathBuf,
    args: Vec<String>,
}

impl Files {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("koperator-properties-java-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Files { dir, args: Vec::new() }
    }
    /// Adds a file and returns its index in the Java output.
    fn add(&mut self, text: &str, as_reader: bool) -> usize {
        let path = self.dir.join(format!("{}.properties", self.args.len()));
        std::fs::write(&path, text).unwrap();
        let arg = path.to_string_lossy().into_owned();
        self.args.push(if as_reader { format!("text:{arg}") } else { arg });
        self.args.len() - 1
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A spec that the test renders, with what it must look like to Kafka.
struct Rendered {
    what: String,
    broker: i32,
    file: usize,
    /// Parsed back by the rules' parser (which the differential check holds to Java).
    ours: BTreeMap<String, String>,
    /// The same broker rendered without the hostile input.
    baseline: BTreeMap<String, String>,
    /// Owned keys whose value legitimately carries the hostile field.
    carriers: &'static [&'static str],
    /// The user's pairs, which must arrive unchanged.
    user: Vec<(String, String)>,
    /// The file is plain ASCII (Kafka decodes it as ISO 8859-1).
    ascii: bool,
}

fn our_map(text: &str) -> BTreeMap<String, String> {
    parse(text)
        .unwrap_or_else(|e| panic!("the rendered file does not parse: {}\n{text}", e.message))
        .into_iter()
        .collect()
}

/// Renders every broker of `c` (and of `baseline`, the same spec without the hostile input);
/// `user` holds the user's pairs for the brokers in `user_brokers` (all when `None`).
#[allow(clippy::too_many_arguments)]
fn render_all(
    c: &ValidatedCluster,
    baseline: &ValidatedCluster,
    what: &str,
    carriers: &'static [&'static str],
    user: &[(String, String)],
    user_brokers: Option<i32>,
    files: &mut Files,
    out: &mut Vec<Rendered>,
) {
    for b in &c.spec.brokers {
        let text = server_properties(c, b.id).unwrap();
        let mine = user_brokers.is_none_or(|id| id == b.id);
        out.push(Rendered {
            what: what.to_string(),
            broker: b.id,
            file: files.add(&text, false),
            ours: our_map(&text),
            baseline: our_map(&server_properties(baseline, b.id).unwrap()),
            carriers,
            user: if mine { user.to_vec() } else { Vec::new() },
            ascii: text.is_ascii(),
        });
    }
}

#[test]
fn java_reads_what_the_rules_checked() {
    let mut files = Files::new();
    // (case, the pairs the rules parsed, the index of the text in the Java output)
    let mut parsed: Vec<(String, Pairs, usize)> = Vec::new();
    let mut rendered: Vec<Rendered> = Vec::new();
    let mut failures: Vec<String> = Vec::new();

    let kraft = sample("kafkacluster_kraft.yaml");
    let base_kraft = validate(&kraft).unwrap();
    for &(what, text, expect) in TEXTS {
        if let Ok(pairs) = parse(text) {
            let file = files.add(text, true);
            parsed.push((what.to_string(), pairs, file));
        }
        for per_broker in [false, true] {
            let mut obj = kraft.clone();
            let field = if per_broker {
                obj["spec"]["brokers"][0]["readOnlyConfig"] = text.into();
                "spec.brokers[0].readOnlyConfig"
            } else {
                obj["spec"]["readOnlyConfig"] = text.into();
                "spec.readOnlyConfig"
            };
            let what = format!("{what} ({field})");
            let mut base = obj.clone();
            let user_brokers = if per_broker {
                base["spec"]["brokers"][0]["readOnlyConfig"] = "".into();
                Some(base["spec"]["brokers"][0]["id"].as_i64().unwrap() as i32)
            } else {
                base["spec"]["readOnlyConfig"] = "".into();
                None
            };
            match (validate(&obj), expect) {
                (Ok(c), Expect::Accepted) => {
                    let user = parse(text).unwrap();
                    let base = validate(&base).unwrap();
                    render_all(&c, &base, &what, &[], &user, user_brokers, &mut files, &mut rendered);
                }
                (Err(ValidationError::Invalid(v)), Expect::Rejected(t)) => {
                    if !v.errors.iter().any(|e| e.path == field && e.error_type == t) {
                        failures.push(format!("{what}: rejected, but not with {t:?} on {field}: {v:?}"));
                    }
                }
                (got, want) => failures.push(format!(
                    "{what}: {text:?} expected {want:?}, got {}",
                    match got {
                        Ok(_) => "accepted".to_string(),
                        Err(e) => e.to_string(),
                    }
                )),
            }
        }
    }

    // Spec fields that end up inside operator-owned values: the rules reject them (`Some(path)`:
    // with an error on that field), or the rendering escapes them so that they stay inside the
    // value that carries them.
    let zk = sample("simplekafkacluster.yaml");
    let base_zk = validate(&zk).unwrap();
    for f in HOSTILE_FIELDS {
        let mut obj = if f.kraft { kraft.clone() } else { zk.clone() };
        let (parent, last) = f.pointer.rsplit_once('/').unwrap();
        match obj.pointer_mut(parent).unwrap_or_else(|| panic!("{}: no {parent}", f.what)) {
            serde_json::Value::Array(a) => a[last.parse::<usize>().unwrap()] = f.value.into(),
            p => p[last] = f.value.into(),
        }
        let base = if f.kraft { &base_kraft } else { &base_zk };
        match (validate(&obj), f.rejected_at) {
            (Err(ValidationError::Invalid(v)), Some(path)) => {
                if !v.errors.iter().any(|e| e.path == path) {
                    failures.push(format!("{}: rejected, but not on {path}: {v:?}", f.what));
                }
            }
            (Err(e), None) => failures.push(format!("{}: rejected: {e}", f.what)),
            (Ok(_), Some(path)) => {
                failures.push(format!("{}: {:?} accepted, expected an error on {path}", f.what, f.value))
            }
            (Ok(c), None) => render_all(&c, base, f.what, f.carriers, &[], None, &mut files, &mut rendered),
            (Err(e), Some(_)) => failures.push(format!("{}: {e}", f.what)),
        }
    }

    let loaded = java_load(&files.args);
    for (what, pairs, file) in &parsed {
        let ours: BTreeMap<String, String> = pairs.iter().cloned().collect();
        match &loaded[*file] {
            Ok(java) if *java == ours => {}
            got => {
                failures.push(format!("{what}: the rules parsed {ours:?}, Java's Properties.load(Reader) read {got:?}"))
            }
        }
    }
    for r in &rendered {
        let ctx = format!("{} (broker {})", r.what, r.broker);
        let java = match &loaded[r.file] {
            Ok(j) => j,
            Err(e) => {
                failures.push(format!("{ctx}: Java cannot load the rendered file: {e}"));
                continue;
            }
        };
        if !r.ascii {
            failures.push(format!("{ctx}: server.properties is not plain ASCII; Kafka reads it as ISO 8859-1"));
        }
        if *java != r.ours {
            failures.push(format!("{ctx}: Java read {java:?}\n  the rendering meant {:?}", r.ours));
        }
        for (k, _) in OPERATOR_OWNED_KEYS {
            if !r.carriers.contains(k) && java.get(*k) != r.baseline.get(*k) {
                failures.push(format!(
                    "{ctx}: {k} is {:?} to Java, the operator's value is {:?}",
                    java.get(*k),
                    r.baseline.get(*k)
                ));
            }
        }
        let mut keys: Vec<&String> = r.baseline.keys().chain(r.user.iter().map(|(k, _)| k)).collect();
        keys.sort();
        keys.dedup();
        if java.keys().collect::<Vec<_>>() != keys {
            failures
                .push(format!("{ctx}: Java read the keys {:?}, expected {keys:?}", java.keys().collect::<Vec<_>>()));
        }
        let user: BTreeMap<&String, &String> = r.user.iter().map(|(k, v)| (k, v)).collect();
        for (k, v) in user {
            if java.get(k) != Some(v) {
                failures.push(format!("{ctx}: the user's {k:?}={v:?} reached Kafka as {:?}", java.get(k)));
            }
        }
    }
    assert!(rendered.len() >= 20, "only {} renderings checked", rendered.len());
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

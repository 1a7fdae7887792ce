//! Admission rules (DESIGN §5): pure functions that return every field error at once.
//!
//! The webhook turns the errors into a Kubernetes `Status` 422 `Invalid` with `details.causes`;
//! the operator puts the same errors in a False condition. Errors are data, not strings.

pub mod cruisecontroloperation;
pub mod kafkacluster;
pub mod kafkatopic;
pub mod kafkauser;
pub mod names;
pub mod namespaces;
pub mod properties;
pub mod quantity;

use std::fmt;
use std::ops::RangeInclusive;

use serde::Serialize;
use serde_json::Value;

use crate::api::{Kind, Object};

/// Kind of field error, as in `k8s.io/apimachinery/pkg/util/validation/field`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ErrorType {
    /// A required field is missing.
    Required,
    /// The value is not valid.
    Invalid,
    /// The value is used more than once where it must be unique.
    Duplicate,
    /// The value refers to something that does not exist.
    NotFound,
    /// The field or change is not allowed.
    Forbidden,
    /// The value is not one of the supported values.
    NotSupported,
}

impl ErrorType {
    /// The `reason` of a `StatusCause` (`FieldValueRequired`...).
    pub fn reason(self) -> &'static str {
        match self {
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::NotFound => "FieldValueNotFound",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::NotSupported => "FieldValueNotSupported",
        }
    }
}

/// A path to a field, rendered like the API server does: `spec.brokers[2].id`,
/// `spec.brokerConfigGroups[default].storageConfigs[0]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path(String);

impl Path {
    /// A path starting at a top-level field (`spec`, `metadata`).
    pub fn root(name: &str) -> Self {
        Path(name.to_string())
    }
    /// The path of a child field.
    pub fn child(&self, name: &str) -> Self {
        self.joined(&[".", name])
    }
    /// The path of a list element.
    pub fn index(&self, i: usize) -> Self {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = i;
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.joined(&["[", std::str::from_utf8(&digits[at..]).unwrap_or_default(), "]"])
    }
    /// The path of a map entry.
    pub fn key(&self, k: &str) -> Self {
        self.joined(&["[", k, "]"])
    }
    /// The rendered path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// This path followed by `parts`, in one allocation (paths are built for every field
    /// checked, so this is on the admission hot path).
    fn joined(&self, parts: &[&str]) -> Self {
        let mut out = String::with_capacity(self.0.len() + parts.iter().map(|p| p.len()).sum::<usize>());
        out.push_str(&self.0);
        parts.iter().for_each(|p| out.push_str(p));
        Path(out)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One admission error on one field.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldError {
    /// Rendered field path.
    pub path: String,
    /// Error kind.
    #[serde(rename = "type")]
    pub error_type: ErrorType,
    /// The offending value rendered as JSON (absent for Required/Forbidden).
    pub value: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl FieldError {
    fn new(path: &Path, error_type: ErrorType, value: Option<String>, message: String) -> Self {
        FieldError { path: path.0.clone(), error_type, value, message }
    }
    /// A required field is missing.
    pub fn required(path: &Path, message: impl Into<String>) -> Self {
        Self::new(path, ErrorType::Required, None, message.into())
    }
    /// The value is invalid.
    pub fn invalid(path: &Path, value: impl Serialize, message: impl Into<String>) -> Self {
        Self::new(path, ErrorType::Invalid, Some(render(value)), message.into())
    }
    /// The value is a duplicate.
    pub fn duplicate(path: &Path, value: impl Serialize, message: impl Into<String>) -> Self {
        Self::new(path, ErrorType::Duplicate, Some(render(value)), message.into())
    }
    /// The value refers to something missing.
    pub fn not_found(path: &Path, value: impl Serialize, message: impl Into<String>) -> Self {
        Self::new(path, ErrorType::NotFound, Some(render(value)), message.into())
    }
    /// The field or change is forbidden.
    pub fn forbidden(path: &Path, message: impl Into<String>) -> Self {
        Self::new(path, ErrorType::Forbidden, None, message.into())
    }
    /// The value is not among the supported ones.
    pub fn not_supported(path: &Path, value: impl Serialize, supported: &[&str]) -> Self {
        let list = supported.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
        Self::new(path, ErrorType::NotSupported, Some(render(value)), format!("supported values: {list}"))
    }
    /// Replaces the message (for rules whose message depends on context).
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// The error text without the path, as the API server renders it in a `StatusCause`
    /// (`Invalid value: 79090: ...`, `Required value: ...`).
    pub fn body(&self) -> String {
        let value = self.value.as_deref().unwrap_or("");
        match self.error_type {
            ErrorType::Required => format!("Required value: {}", self.message),
            ErrorType::Forbidden => format!("Forbidden: {}", self.message),
            ErrorType::Invalid => format!("Invalid value: {value}: {}", self.message),
            ErrorType::Duplicate if self.message.is_empty() => format!("Duplicate value: {value}"),
            ErrorType::Duplicate => format!("Duplicate value: {value}: {}", self.message),
            ErrorType::NotFound if self.message.is_empty() => format!("Not found: {value}"),
            ErrorType::NotFound => format!("Not found: {value}: {}", self.message),
            ErrorType::NotSupported => format!("Unsupported value: {value}: {}", self.message),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.body())
    }
}

fn render(value: impl Serialize) -> String {
    serde_json::to_string(&value).unwrap_or_else(|_| "<unprintable>".to_string())
}

/// The outcome of validating one object: every error, and warnings that do not reject it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    /// Field errors; any error rejects the object.
    pub errors: Vec<FieldError>,
    /// Warnings shown to the user (`kubectl` prints them) without rejecting.
    pub warnings: Vec<String>,
}

impl Verdict {
    /// True when the object is accepted.
    pub fn allowed(&self) -> bool {
        self.errors.is_empty()
    }
    /// Adds errors.
    pub fn extend(&mut self, errors: impl IntoIterator<Item = FieldError>) {
        self.errors.extend(errors);
    }
}

/// Settings of the rules that depend on the Kubernetes cluster rather than the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleConfig {
    /// The cluster's Service node-port range (`--service-node-port-range`).
    pub node_port_range: RangeInclusive<i32>,
}

impl RuleConfig {
    /// Parses `--node-port-range` (`30000-32767`).
    pub fn with_node_port_range(text: &str) -> Result<RuleConfig, NodePortRangeError> {
        let bad = |why: String| NodePortRangeError { text: text.to_string(), why };
        let (a, b) = text.split_once('-').ok_or_else(|| bad("it is not <first>-<last>".into()))?;
        let parse = |s: &str| s.trim().parse::<i32>().map_err(|e| bad(e.to_string()));
        let (a, b) = (parse(a)?, parse(b)?);
        if a > b {
            return Err(bad(format!("{a} is above {b}")));
        }
        Ok(RuleConfig { node_port_range: a..=b })
    }
}

/// A `--node-port-range` that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("node-port range {text:?}: {why}")]
pub struct NodePortRangeError {
    /// The text given.
    pub text: String,
    /// What is wrong with it.
    pub why: String,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig { node_port_range: 30000..=32767 }
    }
}

/// Formats ids like Go's `%v` of a slice (`[0 11 102]`), as Koperator's messages do.
pub(crate) fn go_list<T: fmt::Display>(items: &[T]) -> String {
    let inner: Vec<String> = items.iter().map(ToString::to_string).collect();
    format!("[{}]", inner.join(" "))
}

/// Validates an object of `kind` given as JSON (with the stored `old` object on UPDATE): every
/// rule that needs neither the API server nor Kafka. Fails only when the JSON does not decode
/// into the kind's type.
pub fn validate_value(
    kind: Kind,
    obj: &Value,
    old: Option<&Value>,
    cfg: &RuleConfig,
) -> Result<Verdict, serde_json::Error> {
    let new = Object::from_value(kind, obj)?;
    let old = old.map(|o| Object::from_value(kind, o)).transpose()?;
    Ok(validate(&new, old.as_ref(), cfg))
}

/// Validates a decoded object (with the stored `old` object on UPDATE; an `old` of another
/// kind is not compared with): every rule that needs neither the API server nor Kafka.
pub fn validate(new: &Object, old: Option<&Object>, cfg: &RuleConfig) -> Verdict {
    let mut verdict = Verdict::default();
    match (new, old) {
        (Object::KafkaCluster(new), old) => {
            verdict = match old {
                Some(Object::KafkaCluster(old)) => kafkacluster::validate_update(&old.spec, &new.spec, cfg),
                _ => kafkacluster::validate(&new.spec, cfg),
            };
            verdict.extend(names::kafka_cluster_name(new));
        }
        (Object::KafkaTopic(new), old) => {
            verdict.errors = match old {
                Some(Object::KafkaTopic(old)) => kafkatopic::validate_update(old, new),
                _ => kafkatopic::validate(new),
            };
        }
        (Object::KafkaUser(new), old) => {
            verdict.errors = match old {
                Some(Object::KafkaUser(old)) => kafkauser::validate_update(old, new),
                _ => kafkauser::validate(new),
            };
        }
        (Object::CruiseControlOperation(new), _) => verdict.errors = cruisecontroloperation::validate(new),
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_like_the_api_server() {
        let spec = Path::root("spec");
        assert_eq!(spec.child("brokers").index(0).child("id").as_str(), "spec.brokers[0].id");
        assert_eq!(spec.child("brokers").index(102).as_str(), "spec.brokers[102]");
        assert_eq!(spec.index(usize::MAX).as_str(), format!("spec[{}]", usize::MAX));
        assert_eq!(spec.child("brokerConfigGroups").key("default").to_string(), "spec.brokerConfigGroups[default]");
    }
}

//! AdmissionReview `admission.k8s.io/v1`: decoding requests and encoding responses.
//!
//! Only what the webhook needs is decoded. `object` and `oldObject` stay raw JSON text
//! ([`RawValue`], one copy of their bytes): nothing is built from them until
//! [`crate::limits::scan`] has bounded what decoding them costs, and `oldObject` is decoded
//! only by the checks that compare with it (UPDATE validation). Fields the webhook does not
//! read (`userInfo`, `options`, `resource`...) are skipped without being built.

use base64::Engine;
use koperator_shared::rules::{ErrorType, FieldError};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// The API version of every review this webhook speaks.
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// An incoming AdmissionReview.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview {
    /// Must be `admission.k8s.io/v1`.
    pub api_version: String,
    /// Must be `AdmissionReview`.
    pub kind: String,
    /// The request; absent only in malformed reviews.
    pub request: Option<AdmissionRequest>,
}

/// Group, version and kind.
#[derive(Deserialize, Debug, Default)]
pub struct Gvk {
    /// API group.
    #[serde(default)]
    pub group: String,
    /// Version.
    #[serde(default)]
    pub version: String,
    /// Kind.
    #[serde(default)]
    pub kind: String,
}

/// The request part of a review.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    /// Echoed in the response.
    pub uid: String,
    /// Kind of the object.
    pub kind: Gvk,
    /// Subresource (`status`...), empty for the main resource.
    #[serde(default)]
    pub sub_resource: Option<String>,
    /// Object name (may be empty on CREATE with generateName).
    #[serde(default)]
    pub name: Option<String>,
    /// Namespace of the object.
    #[serde(default)]
    pub namespace: Option<String>,
    /// CREATE, UPDATE, DELETE or CONNECT.
    pub operation: String,
    /// The object after the change (absent on DELETE), as raw JSON.
    #[serde(default, deserialize_with = "raw_unless_null")]
    pub object: Option<Box<RawValue>>,
    /// The stored object (UPDATE, DELETE), as raw JSON.
    #[serde(default, deserialize_with = "raw_unless_null")]
    pub old_object: Option<Box<RawValue>>,
    /// Dry run (no side effects allowed; we have none).
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// `null` (what the API server sends for an absent object) is `None`, not a raw `null`.
fn raw_unless_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Box<RawValue>>, D::Error> {
    let raw = Box::<RawValue>::deserialize(d)?;
    Ok((raw.get() != "null").then_some(raw))
}

/// The answer to one request.
#[derive(Serialize, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    /// The request's uid.
    pub uid: String,
    /// Whether the request is admitted.
    pub allowed: bool,
    /// Why not (a `metav1.Status`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    /// Base64 JSON Patch (mutating only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// `JSONPatch` when `patch` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    /// Warnings shown by kubectl.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl AdmissionResponse {
    /// Admit.
    pub fn allow(uid: &str) -> Self {
        AdmissionResponse { uid: uid.to_string(), allowed: true, ..Default::default() }
    }

    /// Admit with a JSON Patch (omitted when empty).
    pub fn allow_with_patch(uid: &str, patch: &json_patch::Patch) -> Self {
        let mut r = Self::allow(uid);
        if !patch.0.is_empty() {
            let bytes = serde_json::to_vec(patch).expect("a JSON patch serializes");
            r.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
            r.patch_type = Some("JSONPatch");
        }
        r
    }

    /// Reject with field errors: a `Status` 422 `Invalid` with `details.causes`, rendered as the
    /// API server renders its own validation errors.
    pub fn invalid(uid: &str, gvk: &Gvk, name: &str, errors: &[FieldError]) -> Self {
        let qualified = if gvk.group.is_empty() { gvk.kind.clone() } else { format!("{}.{}", gvk.kind, gvk.group) };
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let list = if rendered.len() == 1 { rendered[0].clone() } else { format!("[{}]", rendered.join(", ")) };
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"reason": e.error_type.reason(), "message": e.body(), "field": e.path}))
            .collect();
        let status = json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("{qualified} \"{name}\" is invalid: {list}"),
            "reason": "Invalid",
            "details": {"name": name, "group": gvk.group, "kind": gvk.kind, "causes": causes},
            "code": 422,
        });
        AdmissionResponse { uid: uid.to_string(), allowed: false, status: Some(status), ..Default::default() }
    }

    /// Reject because validation could not run (API server or Kafka unreachable): 500.
    pub fn internal(uid: &str, message: &str) -> Self {
        let status = json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("error during validation: {message}"),
            "reason": "InternalError",
            "details": {"causes": [{"message": message}]},
            "code": 500,
        });
        AdmissionResponse { uid: uid.to_string(), allowed: false, status: Some(status), ..Default::default() }
    }

    /// Adds warnings.
    pub fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings.extend(warnings);
        self
    }

    /// The whole review to send back.
    pub fn into_review(self) -> Value {
        json!({"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": self})
    }
}

/// Why a body is not a usable AdmissionReview (answered with HTTP 400).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    /// Not JSON, or not the review's shape.
    #[error("the body is not a valid AdmissionReview: {0}")]
    Malformed(String),
    /// Another apiVersion/kind.
    #[error("expected apiVersion admission.k8s.io/v1, kind AdmissionReview; got {0}")]
    WrongType(String),
    /// No `request`.
    #[error("the AdmissionReview has no request")]
    NoRequest,
}

/// Decodes a review body.
pub fn decode(body: &[u8]) -> Result<AdmissionRequest, DecodeError> {
    let review: AdmissionReview = serde_json::from_slice(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if review.api_version != API_VERSION || review.kind != "AdmissionReview" {
        return Err(DecodeError::WrongType(format!("{}/{}", review.api_version, review.kind)));
    }
    review.request.ok_or(DecodeError::NoRequest)
}

/// A field error for an object that does not decode into its type (the schema normally
/// prevents this; the operator may still see it for objects stored before a schema change).
pub fn undecodable(err: &serde_json::Error) -> FieldError {
    FieldError {
        path: "<object>".to_string(),
        error_type: ErrorType::Invalid,
        value: None,
        message: format!("the object does not match the schema: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use koperator_shared::rules::Path;

    #[test]
    fn invalid_renders_like_the_api_server() {
        let gvk = Gvk { group: "kafka.banzaicloud.io".into(), version: "v1beta1".into(), kind: "KafkaCluster".into() };
        let errs = vec![
            FieldError::duplicate(&Path::root("spec").child("a"), 29092, ""),
            FieldError::required(&Path::root("spec").child("b"), "set b"),
        ];
        let r = AdmissionResponse::invalid("u1", &gvk, "kafka", &errs).into_review();
        let st = &r["response"]["status"];
        assert_eq!(r["response"]["uid"], "u1");
        assert_eq!(r["response"]["allowed"], false);
        assert_eq!(st["code"], 422);
        assert_eq!(st["reason"], "Invalid");
        assert_eq!(
            st["message"],
            "KafkaCluster.kafka.banzaicloud.io \"kafka\" is invalid: [spec.a: Duplicate value: 29092, spec.b: Required value: set b]"
        );
        assert_eq!(
            st["details"]["causes"][0],
            json!({"reason": "FieldValueDuplicate", "message": "Duplicate value: 29092", "field": "spec.a"})
        );
    }

    #[test]
    fn patch_is_base64_json_patch_and_omitted_when_empty() {
        let p: json_patch::Patch =
            serde_json::from_value(json!([{"op": "add", "path": "/spec/x", "value": 1}])).unwrap();
        let r = AdmissionResponse::allow_with_patch("u", &p);
        assert_eq!(r.patch_type, Some("JSONPatch"));
        let decoded = base64::engine::general_purpose::STANDARD.decode(r.patch.unwrap()).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&decoded).unwrap(),
            json!([{"op": "add", "path": "/spec/x", "value": 1}])
        );
        let empty = AdmissionResponse::allow_with_patch("u", &json_patch::Patch(vec![]));
        assert_eq!(empty.patch, None);
        assert_eq!(empty.patch_type, None);
    }

    #[test]
    fn decode_errors() {
        assert!(matches!(decode(b"{"), Err(DecodeError::Malformed(_))));
        assert!(matches!(
            decode(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#),
            Err(DecodeError::WrongType(_))
        ));
        assert_eq!(
            decode(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#).unwrap_err(),
            DecodeError::NoRequest
        );
    }
}

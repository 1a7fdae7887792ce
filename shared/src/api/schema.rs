//! Schema helpers for fields whose shape is not described by a Rust type.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An object whose content is kept as is (`x-kubernetes-preserve-unknown-fields`).
pub fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

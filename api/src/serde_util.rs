//! Helpers that make serde behave like Go's `encoding/json` for Fleet's types.
//!
//! Go decodes `null` into a non-pointer field by leaving the zero value in place, and
//! `omitempty` drops zero values on output. Fleet objects written by Go clients (and
//! hand-written YAML with an empty key such as `namespace:`) rely on both.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};

/// Deserialises `null` as the type's zero value, as Go does for non-pointer fields.
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Go's `omitempty`: the zero value (empty string, 0, false, empty list or map) is not emitted.
pub(crate) fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Schema of a free-form object (Go `GenericMap`, Helm values): any keys, any values, kept
/// verbatim by the API server.
pub(crate) fn preserve_unknown_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Schema of a Go `[]byte` field, which `encoding/json` writes as a base64 string.
pub(crate) fn base64_bytes(generator: &mut SchemaGenerator) -> Schema {
    let mut schema = String::json_schema(generator);
    schema.insert("format".into(), "byte".into());
    schema
}

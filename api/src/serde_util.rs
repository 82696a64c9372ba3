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

/// Serialises a free-form map as Go's `GenericMap` does. Go decodes every JSON number in it
/// into a float64 and prints it back in the shortest form, so `1.0` becomes `1`; doing the
/// same keeps printed bundles identical to Fleet's.
pub(crate) fn go_generic_map<S>(
    map: &Option<serde_json::Map<String, serde_json::Value>>,
    serializer: S,
) -> Result<S::Ok, S::Error>
where
    S: serde::Serializer,
{
    use serde::ser::SerializeMap;
    match map {
        None => serializer.serialize_none(),
        Some(map) => {
            let mut out = serializer.serialize_map(Some(map.len()))?;
            for (key, value) in map {
                out.serialize_entry(key, &GoValue(value))?;
            }
            out.end()
        }
    }
}

/// A JSON value whose numbers are written as Go writes a float64.
struct GoValue<'a>(&'a serde_json::Value);

impl serde::Serialize for GoValue<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        use serde_json::Value;
        match self.0 {
            Value::Number(number) => match number.as_f64() {
                // Integral floats below 2^53 print as integers in Go; beyond that Go's
                // float64 has already lost precision, so the original is kept.
                Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                    serializer.serialize_i64(f as i64)
                }
                _ => number.serialize(serializer),
            },
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&GoValue(item))?;
                }
                seq.end()
            }
            Value::Object(map) => {
                let mut out = serializer.serialize_map(Some(map.len()))?;
                for (key, value) in map {
                    out.serialize_entry(key, &GoValue(value))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    struct Holder {
        #[serde(serialize_with = "go_generic_map")]
        values: Option<serde_json::Map<String, serde_json::Value>>,
    }

    #[test]
    fn generic_map_numbers_print_like_go_float64() {
        let values: serde_json::Value = serde_json::json!({
            "a": 1.0, "b": 1.5, "c": 3, "d": [2.0, {"e": -4.0}], "f": "1.0", "g": 1e300,
        });
        let holder = Holder {
            values: values.as_object().cloned(),
        };
        assert_eq!(
            serde_json::to_string(&holder).unwrap(),
            r#"{"values":{"a":1,"b":1.5,"c":3,"d":[2,{"e":-4}],"f":"1.0","g":1e+300}}"#
        );
    }
}

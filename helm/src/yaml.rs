//! YAML the way Helm and Fleet read and write it (sigs.k8s.io/yaml over go-yaml v2).
//!
//! Writing ([`to_go_yaml_json`], [`documents_to_string`]) is the one Go-compatible emitter of the
//! workspace, used by `toYaml` and by the bundle crate for `fleet apply`/`fleet test` output; see
//! [`emit`]. Reading: numbers become float64 as in Go's `encoding/json`, keys become strings.

mod emit;
mod read;

pub use emit::{
    documents_to_string, format_float, key_less, resolves_to_non_string, sorted_entries,
};

use crate::gotemplate::value::{Map, Value};

/// Parses YAML text into values (one document) the way Helm's `fromYaml` does: numbers are
/// float64, YAML 1.1 scalars (`yes`, `off`, `0777`) resolve like go-yaml v2. Empty input is an
/// empty map.
pub fn from_yaml_str(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::new_map());
    }
    let j = yaml_to_json(text)?;
    Ok(from_json_floats(&j))
}

fn from_json_floats(j: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match j {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        J::String(s) => Value::str(s),
        J::Array(a) => Value::from(a.iter().map(from_json_floats).collect::<Vec<_>>()),
        J::Object(m) => Value::from(
            m.iter()
                .map(|(k, v)| (k.clone(), from_json_floats(v)))
                .collect::<Map>(),
        ),
    }
}

/// Parses YAML into JSON the way `sigs.k8s.io/yaml` (go-yaml v2) does: the first document,
/// YAML 1.1 plain scalars (`yes/no/on/off/y/n` are booleans, `0777` octal), `<<` merge keys,
/// non-string keys written as strings; integers stay integers. Errors carry the parser's
/// message with the line.
pub fn yaml_to_json(text: &str) -> Result<serde_json::Value, String> {
    if text.trim().is_empty() {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    // serde_norway validates first so error messages stay the ones users already know.
    let v: serde_norway::Value = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    match read::parse_first_document(text) {
        Ok(serde_json::Value::Null) => Ok(norway_to_json(&v)),
        Ok(j) => Ok(j),
        Err(e) if e.contains("excessive aliasing") => Err(e),
        // The event parser rejects a few documents serde_norway reads (and the other way
        // round); the YAML 1.2 reading is better than failing.
        Err(_) => Ok(norway_to_json(&v)),
    }
}

fn key_string(k: &serde_norway::Value) -> String {
    match k {
        serde_norway::Value::String(s) => s.clone(),
        serde_norway::Value::Bool(b) => b.to_string(),
        serde_norway::Value::Number(n) => n.to_string(),
        serde_norway::Value::Null => "null".into(),
        other => serde_norway::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Parses YAML into JSON with every number a float64 (what Helm's values reading produces).
pub fn yaml_to_json_go(text: &str) -> Result<serde_json::Value, String> {
    fn floats(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Number(n) => serde_json::Number::from_f64(n.as_f64().unwrap_or(0.0))
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            serde_json::Value::Array(a) => {
                serde_json::Value::Array(a.into_iter().map(floats).collect())
            }
            serde_json::Value::Object(o) => {
                serde_json::Value::Object(o.into_iter().map(|(k, v)| (k, floats(v))).collect())
            }
            other => other,
        }
    }
    Ok(floats(yaml_to_json(text)?))
}

/// serde_norway value to JSON, integers kept.
pub fn norway_to_json(v: &serde_norway::Value) -> serde_json::Value {
    use serde_norway::Value as Y;
    match v {
        Y::Null => serde_json::Value::Null,
        Y::Bool(b) => serde_json::Value::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                serde_json::Value::from(i)
            } else if let Some(u) = n.as_u64() {
                serde_json::Value::from(u)
            } else {
                serde_json::Number::from_f64(n.as_f64().unwrap_or(0.0))
                    .map(serde_json::Value::Number)
                    .unwrap_or(serde_json::Value::Null)
            }
        }
        Y::String(s) => serde_json::Value::String(s.clone()),
        Y::Sequence(s) => serde_json::Value::Array(s.iter().map(norway_to_json).collect()),
        Y::Mapping(m) => serde_json::Value::Object(
            m.iter()
                .map(|(k, v)| (key_string(k), norway_to_json(v)))
                .collect(),
        ),
        Y::Tagged(t) => norway_to_json(&t.value),
    }
}

/// `toYaml`: go-yaml v2 output of the JSON form of `v` (with the trailing newline).
pub fn to_go_yaml(v: &Value) -> String {
    to_go_yaml_json(&v.to_json())
}

/// go-yaml v2 output for a JSON value (`yaml.Marshal` after a JSON round trip).
pub fn to_go_yaml_json(j: &serde_json::Value) -> String {
    emit::to_string(j)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_yaml_layout() {
        let v =
            json!({"b": [1, {"x": "y", "a": true}], "a": {"c": "", "d": null}, "e": [], "f": {}});
        assert_eq!(
            to_go_yaml_json(&v),
            "a:\n  c: \"\"\n  d: null\nb:\n- 1\n- a: true\n  x: \"y\"\ne: []\nf: {}\n"
        );
    }

    #[test]
    fn go_yaml_quoting() {
        let v = json!({"a": "true", "b": "123", "c": "foo: bar", "d": "- x", "e": "plain text", "f": "1.5", "g": "a\nb\n", "h": "a\nb", "i": "#x", "j": "x #y", "k": "2001-12-14"});
        assert_eq!(
            to_go_yaml_json(&v),
            "a: \"true\"\nb: \"123\"\nc: 'foo: bar'\nd: '- x'\ne: plain text\nf: \"1.5\"\ng: |\n  a\n  b\nh: |-\n  a\n  b\ni: '#x'\nj: 'x #y'\nk: \"2001-12-14\"\n"
        );
    }

    #[test]
    fn go_yaml_numbers() {
        let v = json!({"a": 1.0, "b": 1.5, "c": 1e21, "d": 10000000.0});
        assert_eq!(to_go_yaml_json(&v), "a: 1\nb: 1.5\nc: 1e+21\nd: 10000000\n");
    }

    #[test]
    fn long_lines_fold() {
        let long = "word ".repeat(20).trim().to_string();
        let out = to_go_yaml_json(&json!({"k": long}));
        assert!(out.contains("\n  word"), "{out}");
    }
}

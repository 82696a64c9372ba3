//! Helm's own template functions: `include`, `tpl`, `required`, `toYaml`/`fromYaml`, JSON, TOML, `lookup`.

use std::collections::HashMap;

use super::encoding::{to_json, to_toml};
use crate::gotemplate::funcs::{Entry, Family::Helm, P, reg};
use crate::gotemplate::value::Value;
use crate::yaml::{from_yaml_str, to_go_yaml};

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn from_json_text(text: &str) -> Result<Value, String> {
    let j: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(Value::from_json_go(&j))
}

fn error_map(msg: String) -> Value {
    let mut m = crate::gotemplate::value::Map::new();
    m.insert("Error".into(), Value::str(msg));
    Value::from(m)
}

pub(crate) fn register(t: &mut HashMap<&'static str, Entry>) {
    use P::*;
    reg(t, Helm, "include", &[S, A], None, |ex, a| {
        let out = ex.include(s(&a[0]), &a[1])?;
        Ok(Value::str(out))
    });
    reg(t, Helm, "tpl", &[S, A], None, |ex, a| {
        if !matches!(a[1], Value::Map(_)) {
            return Err(format!(
                "wrong type for value; expected chartutil.Values; got {}",
                a[1].type_name()
            ));
        }
        let name = match &a[1] {
            Value::Map(m) => m
                .borrow()
                .get("Template")
                .and_then(|t| match t {
                    Value::Map(tm) => tm
                        .borrow()
                        .get("Name")
                        .and_then(|n| n.as_str().map(str::to_string)),
                    _ => None,
                })
                .unwrap_or_default(),
            _ => String::new(),
        };
        let out = ex.tpl(&name, s(&a[0]), &a[1])?;
        Ok(Value::str(out.replace("<no value>", "")))
    });
    reg(t, Helm, "required", &[S, A], None, |_, a| match &a[1] {
        Value::Nil => Err(warn_wrap(s(&a[0]))),
        Value::Str(x) if x.is_empty() => Err(warn_wrap(s(&a[0]))),
        other => Ok(other.clone()),
    });
    reg(t, Helm, "toYaml", &[A], None, |_, a| {
        Ok(Value::str(to_go_yaml(&a[0]).trim_end_matches('\n')))
    });
    reg(t, Helm, "mustToYaml", &[A], None, |_, a| {
        Ok(Value::str(to_go_yaml(&a[0]).trim_end_matches('\n')))
    });
    reg(t, Helm, "fromYaml", &[S], None, |_, a| {
        Ok(match from_yaml_str(s(&a[0])) {
            Ok(v @ Value::Map(_)) => v,
            Ok(Value::Nil) => Value::new_map(),
            Ok(other) => error_map(format!(
                "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                json_kind(&other)
            )),
            Err(e) => error_map(format!("error converting YAML to JSON: {e}")),
        })
    });
    reg(t, Helm, "fromYamlArray", &[S], None, |_, a| {
        Ok(match from_yaml_str(s(&a[0])) {
            Ok(v @ Value::List(_)) => v,
            Ok(other) => Value::from(vec![Value::str(format!(
                "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type []interface {{}}",
                json_kind(&other)
            ))]),
            Err(e) => Value::from(vec![Value::str(format!(
                "error converting YAML to JSON: {e}"
            ))]),
        })
    });
    reg(t, Helm, "toJson", &[A], None, |_, a| {
        Ok(Value::str(to_json(&a[0].to_json(), None, true)))
    });
    reg(t, Helm, "fromJson", &[S], None, |_, a| {
        Ok(match from_json_text(s(&a[0])) {
            Ok(v @ Value::Map(_)) => v,
            Ok(other) => error_map(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                json_kind(&other)
            )),
            Err(e) => error_map(e),
        })
    });
    reg(t, Helm, "fromJsonArray", &[S], None, |_, a| {
        Ok(match from_json_text(s(&a[0])) {
            Ok(v @ Value::List(_)) => v,
            Ok(other) => Value::from(vec![Value::str(format!(
                "json: cannot unmarshal {} into Go value of type []interface {{}}",
                json_kind(&other)
            ))]),
            Err(e) => Value::from(vec![Value::str(e)]),
        })
    });
    reg(t, Helm, "toToml", &[A], None, |_, a| {
        Ok(Value::str(to_toml(&a[0].to_json()).unwrap_or_else(|e| e)))
    });
    reg(t, Helm, "lookup", &[S, S, S, S], None, |ex, a| {
        Ok(ex.host.lookup(s(&a[0]), s(&a[1]), s(&a[2]), s(&a[3])))
    });
}

/// Helm marks `required`/`fail` messages so the renderer can print them as `execution error at (...)`.
pub const WARN_START: &str = "HELM_ERR_START";
pub const WARN_END: &str = "HELM_ERR_END";

pub fn warn_wrap(msg: &str) -> String {
    format!("{WARN_START}{msg}{WARN_END}")
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Str(_) => "string",
        Value::Float(_) | Value::Int(_) => "number",
        Value::Bool(_) => "bool",
        Value::List(_) => "array",
        Value::Map(_) => "object",
        _ => "value",
    }
}

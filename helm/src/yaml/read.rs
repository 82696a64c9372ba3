//! Reading YAML the way Helm does: `sigs.k8s.io/yaml` decodes with go-yaml v2, which resolves plain
//! scalars by YAML 1.1 rules, then converts the result to JSON.
//!
//! What differs from a YAML 1.2 reader, and matters for charts: `yes/no/on/off/y/n` (in their
//! lower, Capitalised and UPPER forms) are booleans, `0777` is octal and `0b101` binary, `1_000`
//! is a thousand, `<<` merges mappings, and non-string keys become strings (`on:` is the key
//! `"true"`). Timestamps stay strings (go-yaml v2 keeps them as text when decoding into
//! `interface{}`). Quoted scalars are always strings.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::TScalarStyle;

/// Most nodes alias expansion may produce: go-yaml v2 refuses documents that alias excessively
/// ("billion laughs"); so do we.
const MAX_EXPANDED_NODES: usize = 1_000_000;

/// Parses the first document of `text` into JSON with go-yaml v2 scalar resolution. An empty
/// stream is `null`.
pub fn parse_first_document(text: &str) -> Result<Value, String> {
    let mut reader = Reader {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        expanded: 0,
    };
    loop {
        match reader.next()? {
            Event::StreamStart | Event::Nothing => {}
            Event::DocumentStart => {
                let first = reader.next()?;
                if matches!(first, Event::DocumentEnd) {
                    return Ok(Value::Null);
                }
                return reader.node(first);
            }
            Event::StreamEnd => return Ok(Value::Null),
            other => return Err(format!("unexpected YAML event {other:?}")),
        }
    }
}

struct Reader<'a> {
    parser: Parser<std::str::Chars<'a>>,
    anchors: HashMap<usize, (Value, usize)>,
    expanded: usize,
}

/// A resolved map key or value before keys are turned into strings.
enum Scalar {
    Value(Value),
    Merge,
}

impl Reader<'_> {
    fn next(&mut self) -> Result<Event, String> {
        self.parser
            .next_token()
            .map(|(ev, _)| ev)
            .map_err(|e| e.to_string())
    }

    fn count(&mut self, n: usize) -> Result<(), String> {
        self.expanded = self.expanded.saturating_add(n);
        if self.expanded > MAX_EXPANDED_NODES {
            return Err("yaml: document contains excessive aliasing".into());
        }
        Ok(())
    }

    fn remember(&mut self, anchor: usize, v: &Value, start: usize) {
        if anchor > 0 {
            let size = self.expanded - start + 1;
            self.anchors.insert(anchor, (v.clone(), size));
        }
    }

    fn node(&mut self, ev: Event) -> Result<Value, String> {
        match self.node_or_merge(ev)? {
            Scalar::Value(v) => Ok(v),
            Scalar::Merge => Ok(Value::String("<<".into())),
        }
    }

    fn node_or_merge(&mut self, ev: Event) -> Result<Scalar, String> {
        let start = self.expanded;
        self.count(1)?;
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let v = resolve_scalar(&text, style, tag.as_ref());
                if let Scalar::Value(v) = &v {
                    self.remember(anchor, v, start);
                }
                Ok(v)
            }
            Event::Alias(id) => {
                let (v, size) = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| format!("yaml: unknown anchor {id} referenced"))?;
                self.count(size)?;
                Ok(Scalar::Value(v))
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    match self.next()? {
                        Event::SequenceEnd => break,
                        ev => items.push(self.node(ev)?),
                    }
                }
                let v = Value::Array(items);
                self.remember(anchor, &v, start);
                Ok(Scalar::Value(v))
            }
            Event::MappingStart(anchor, _) => {
                let mut map = Map::new();
                loop {
                    let key_ev = match self.next()? {
                        Event::MappingEnd => break,
                        ev => ev,
                    };
                    let key = self.node_or_merge(key_ev)?;
                    let value_ev = self.next()?;
                    let value = self.node(value_ev)?;
                    match key {
                        Scalar::Merge => merge_into(&mut map, value)?,
                        Scalar::Value(k) => {
                            map.insert(key_string(&k)?, value);
                        }
                    }
                }
                let v = Value::Object(map);
                self.remember(anchor, &v, start);
                Ok(Scalar::Value(v))
            }
            other => Err(format!("unexpected YAML event {other:?}")),
        }
    }
}

/// `<<: *a` or `<<: [*a, *b]`: keys of the merged mappings, earlier ones winning over later
/// ones in a list, and keys written after the merge key winning over merged ones (go-yaml v2
/// applies the merge where it appears).
fn merge_into(map: &mut Map<String, Value>, merged: Value) -> Result<(), String> {
    match merged {
        Value::Object(m) => {
            for (k, v) in m {
                map.insert(k, v);
            }
            Ok(())
        }
        Value::Array(list) => {
            for item in list.into_iter().rev() {
                match item {
                    Value::Object(m) => {
                        for (k, v) in m {
                            map.insert(k, v);
                        }
                    }
                    _ => {
                        return Err(
                            "yaml: map merge requires map or sequence of maps as the value".into(),
                        );
                    }
                }
            }
            Ok(())
        }
        _ => Err("yaml: map merge requires map or sequence of maps as the value".into()),
    }
}

/// A map key as sigs.k8s.io/yaml writes it into JSON.
fn key_string(k: &Value) -> Result<String, String> {
    Ok(match k {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => {
            if n.is_f64() {
                crate::yaml::format_float(n.as_f64().unwrap_or_default())
            } else {
                n.to_string()
            }
        }
        Value::Null => "null".into(),
        Value::Array(_) | Value::Object(_) => {
            return Err(format!(
                "error converting YAML to JSON: unsupported map key of type {}",
                if k.is_array() {
                    "[]interface {}"
                } else {
                    "map[interface {}]interface {}"
                }
            ));
        }
    })
}

fn is_core_tag(tag: &Tag, suffix: &str) -> bool {
    tag.suffix == suffix && (tag.handle == "tag:yaml.org,2002:" || tag.handle == "!!")
}

fn resolve_scalar(text: &str, style: TScalarStyle, tag: Option<&Tag>) -> Scalar {
    if let Some(tag) = tag {
        let plain_core = ["int", "float", "bool", "null"]
            .iter()
            .any(|s| is_core_tag(tag, s));
        if !plain_core {
            return Scalar::Value(Value::String(text.to_string()));
        }
        return Scalar::Value(match resolve_plain(text) {
            Scalar::Value(v) => v,
            Scalar::Merge => Value::String(text.to_string()),
        });
    }
    if style != TScalarStyle::Plain {
        return Scalar::Value(Value::String(text.to_string()));
    }
    resolve_plain(text)
}

/// go-yaml v2's `resolve` for an untagged plain scalar.
fn resolve_plain(text: &str) -> Scalar {
    let v = match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => {
            Value::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            Value::Bool(false)
        }
        "<<" => return Scalar::Merge,
        ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF"
        | "-.inf" | "-.Inf" | "-.INF" => {
            // JSON has no NaN or infinity; encoding/json would fail, Helm reports the file.
            // Keep the text so nothing is lost.
            Value::String(text.to_string())
        }
        _ => match resolve_number(text) {
            Some(v) => v,
            None => Value::String(text.to_string()),
        },
    };
    Scalar::Value(v)
}

fn resolve_number(text: &str) -> Option<Value> {
    let first = text.as_bytes().first()?;
    if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
        return None;
    }
    let plain: String = text.chars().filter(|c| *c != '_').collect();
    if let Some(i) = parse_go_int(&plain) {
        return Some(Value::Number(Number::from(i)));
    }
    if let Some(u) = parse_go_uint(&plain) {
        return Some(Value::Number(Number::from(u)));
    }
    if is_yaml_style_float(&plain) {
        let f: f64 = plain.parse().ok()?;
        return Number::from_f64(f).map(Value::Number);
    }
    if let Some(bits) = plain.strip_prefix("0b") {
        return i64::from_str_radix(bits, 2)
            .ok()
            .map(|i| Value::Number(Number::from(i)));
    }
    if let Some(bits) = plain.strip_prefix("-0b") {
        return i64::from_str_radix(bits, 2)
            .ok()
            .map(|i| Value::Number(Number::from(-i)));
    }
    None
}

/// `strconv.ParseInt(s, 0, 64)`: sign, then `0x`/`0o`/`0b`/leading-`0` octal or decimal.
fn parse_go_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (digits, radix) = split_radix(body)?;
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if neg {
        if magnitude <= i64::MAX as u64 + 1 {
            Some((magnitude as i128).wrapping_neg() as i64)
        } else {
            None
        }
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// `strconv.ParseUint(s, 0, 64)`.
fn parse_go_uint(s: &str) -> Option<u64> {
    let (digits, radix) = split_radix(s)?;
    u64::from_str_radix(digits, radix).ok()
}

fn split_radix(body: &str) -> Option<(&str, u32)> {
    let (digits, radix) =
        if let Some(r) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (r, 16)
        } else if let Some(r) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
            (r, 8)
        } else if let Some(r) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
            (r, 2)
        } else if body.len() > 1 && body.starts_with('0') {
            (&body[1..], 8)
        } else {
            (body, 10)
        };
    // from_str_radix accepts a sign; ParseInt's digits do not
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    Some((digits, radix))
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    } else {
        if !digits(&mut i) {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(text: &str) -> Value {
        parse_first_document(text).unwrap()
    }

    #[test]
    fn yaml_1_1_booleans_in_every_spelling() {
        let v = read(
            "a: yes\nb: No\nc: ON\nd: off\ne: y\nf: N\ng: True\nh: \"yes\"\ni: 'off'\nj: Yes please\n",
        );
        assert_eq!(
            v,
            json!({"a": true, "b": false, "c": true, "d": false, "e": true, "f": false, "g": true, "h": "yes", "i": "off", "j": "Yes please"})
        );
    }

    #[test]
    fn boolean_and_number_keys_become_strings() {
        // go-yaml v2 reads the key `y` as the boolean true, like `on`
        assert_eq!(read("x: 1\ny: 2\n"), json!({"x": 1, "true": 2}));
        let v = read("on: push\nno: 1\n1: one\n1.5: x\n~: n\n");
        assert_eq!(
            v,
            json!({"true": "push", "false": 1, "1": "one", "1.5": "x", "null": false})
        );
    }

    #[test]
    fn go_integers_floats_and_strings() {
        let v = read(
            "oct: 0777\nhex: 0x1F\nbin: 0b101\nneg: -0b11\nus: 1_000\nplus: +12\nf: 1.5\ne: 1e3\ndot: .5\nbig: 18446744073709551615\nbase60: 1:20\nts: 2001-12-14\nver: 1.2.3\nnan: .nan\nnull: ~\nempty:\n",
        );
        assert_eq!(
            v,
            json!({"oct": 511, "hex": 31, "bin": 5, "neg": -3, "us": 1000, "plus": 12, "f": 1.5, "e": 1000.0, "dot": 0.5, "big": 18446744073709551615u64, "base60": "1:20", "ts": "2001-12-14", "ver": "1.2.3", "nan": ".nan", "null": null, "empty": null})
        );
    }

    #[test]
    fn tags_anchors_and_merge_keys() {
        let v = read(
            "base: &b {x: 1, w: yes}\nother: &o {w: 2, z: 3}\nm:\n  <<: *b\n  x: 9\nl:\n  <<: [*b, *o]\ns: !!str yes\ni: !!int \"7\"\nlist: [*b]\n",
        );
        assert_eq!(v["m"], json!({"x": 9, "w": true}));
        assert_eq!(v["l"], json!({"x": 1, "w": true, "z": 3}));
        assert_eq!(v["s"], json!("yes"));
        assert_eq!(v["i"], json!(7));
        assert_eq!(v["list"], json!([{"x": 1, "w": true}]));
    }

    #[test]
    fn first_document_only_and_empty_streams() {
        assert_eq!(read("a: 1\n---\nb: 2\n"), json!({"a": 1}));
        assert_eq!(read(""), Value::Null);
        assert_eq!(read("# only a comment\n"), Value::Null);
    }

    #[test]
    fn excessive_aliasing_is_refused() {
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let prev = format!("*a{}", i - 1);
            doc.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        let err = parse_first_document(&doc).unwrap_err();
        assert!(err.contains("excessive aliasing"), "{err}");
    }
}

//! YAML the way Helm reads and writes it (sigs.k8s.io/yaml over go-yaml v2).
//!
//! Writing: keys sorted, sequences not indented under their key, strings quoted only when go-yaml
//! would (values that would read back as another type get double quotes; text that cannot be plain
//! gets single quotes; multi-line text becomes a literal block), long plain lines folded at 80
//! columns. Reading: numbers become float64 as in Go's `encoding/json`, keys become strings.

use crate::gotemplate::value::{Map, Value, format_float_g};

/// Parses YAML text into values (one document). Empty input is an empty map.
pub fn from_yaml_str(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::new_map());
    }
    let v: serde_norway::Value = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    Ok(from_norway(&v))
}

/// Parses YAML into JSON (numbers kept as written: integers stay integers).
pub fn yaml_to_json(text: &str) -> Result<serde_json::Value, String> {
    if text.trim().is_empty() {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    let v: serde_norway::Value = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    Ok(norway_to_json(&v))
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

fn from_norway(v: &serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match v {
        Y::Null => Value::Nil,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        Y::String(s) => Value::str(s),
        Y::Sequence(s) => Value::from(s.iter().map(from_norway).collect::<Vec<_>>()),
        Y::Mapping(m) => Value::from(
            m.iter()
                .map(|(k, v)| (key_string(k), from_norway(v)))
                .collect::<Map>(),
        ),
        Y::Tagged(t) => from_norway(&t.value),
    }
}

/// `toYaml`: go-yaml v2 output of the JSON form of `v` (with the trailing newline).
pub fn to_go_yaml(v: &Value) -> String {
    let j = v.to_json();
    to_go_yaml_json(&j)
}

/// go-yaml v2 output for a JSON value.
pub fn to_go_yaml_json(j: &serde_json::Value) -> String {
    let mut out = String::new();
    match j {
        serde_json::Value::Object(m) if m.is_empty() => out.push_str("{}\n"),
        serde_json::Value::Array(a) if a.is_empty() => out.push_str("[]\n"),
        serde_json::Value::Object(_) | serde_json::Value::Array(_) => emit_block(&mut out, j, 0),
        scalar => {
            emit_scalar(&mut out, scalar, 0, false);
            out.push('\n');
        }
    }
    out
}

fn sorted_entries(
    m: &serde_json::Map<String, serde_json::Value>,
) -> Vec<(&String, &serde_json::Value)> {
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    v
}

/// Emits a non-empty map or list whose first line starts at the current position with `indent`.
fn emit_block(out: &mut String, j: &serde_json::Value, indent: usize) {
    match j {
        serde_json::Value::Object(m) => {
            for (i, (k, v)) in sorted_entries(m).into_iter().enumerate() {
                if i > 0 {
                    out.push_str(&" ".repeat(indent));
                }
                emit_string(out, k, indent, true);
                out.push(':');
                emit_value_after_key(out, v, indent);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(&" ".repeat(indent));
                }
                out.push('-');
                match v {
                    serde_json::Value::Object(m) if !m.is_empty() => {
                        out.push(' ');
                        emit_block(out, v, indent + 2);
                    }
                    serde_json::Value::Array(a) if !a.is_empty() => {
                        out.push(' ');
                        emit_block(out, v, indent + 2);
                    }
                    _ => {
                        out.push(' ');
                        emit_scalar_or_empty(out, v, indent + 2);
                        out.push('\n');
                    }
                }
            }
        }
        _ => {}
    }
}

fn emit_value_after_key(out: &mut String, v: &serde_json::Value, indent: usize) {
    match v {
        serde_json::Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            out.push_str(&" ".repeat(indent + 2));
            emit_block(out, v, indent + 2);
        }
        serde_json::Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            emit_block(out, v, indent);
        }
        _ => {
            out.push(' ');
            emit_scalar_or_empty(out, v, indent + 2);
            out.push('\n');
        }
    }
}

fn emit_scalar_or_empty(out: &mut String, v: &serde_json::Value, indent: usize) {
    match v {
        serde_json::Value::Object(_) => out.push_str("{}"),
        serde_json::Value::Array(_) => out.push_str("[]"),
        s => emit_scalar(out, s, indent, false),
    }
}

fn emit_scalar(out: &mut String, v: &serde_json::Value, indent: usize, key: bool) {
    match v {
        serde_json::Value::Null => out.push_str("null"),
        serde_json::Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                let f = n.as_f64().unwrap_or(0.0);
                if f.fract() == 0.0 && f.abs() < 1e21 {
                    out.push_str(&format!("{f:.0}"));
                } else {
                    out.push_str(&format_float_g(f, -1));
                }
            }
        }
        serde_json::Value::String(s) => emit_string(out, s, indent, key),
        _ => {}
    }
}

/// Whether go-yaml v2 would read this plain text as something other than a string.
fn resolves_to_non_string(s: &str) -> bool {
    const SPECIAL: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
        "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL", "~",
        ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
        ".NaN", ".NAN", "<<",
    ];
    if s.is_empty() || SPECIAL.contains(&s) {
        return true;
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return false;
    }
    let plain = s.replace('_', "");
    // ints: decimal, 0x, 0o/0 octal, 0b
    let body = plain.strip_prefix(['-', '+']).unwrap_or(&plain);
    if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    if let Some(h) = body.strip_prefix("0x")
        && !h.is_empty()
        && h.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return true;
    }
    if let Some(b) = body.strip_prefix("0b")
        && !b.is_empty()
        && b.bytes().all(|x| x == b'0' || x == b'1')
    {
        return true;
    }
    if let Some(o) = body.strip_prefix("0o")
        && !o.is_empty()
        && o.bytes().all(|x| (b'0'..=b'7').contains(&x))
    {
        return true;
    }
    // floats
    let float_re = |t: &str| -> bool {
        let t = t.strip_prefix(['-', '+']).unwrap_or(t);
        let (mant, exp) = match t.find(['e', 'E']) {
            Some(i) => (&t[..i], Some(&t[i + 1..])),
            None => (t, None),
        };
        let mut dots = 0;
        let mut digits = 0;
        for b in mant.bytes() {
            if b == b'.' {
                dots += 1;
            } else if b.is_ascii_digit() {
                digits += 1;
            } else {
                return false;
            }
        }
        if dots > 1 || digits == 0 {
            return false;
        }
        match exp {
            None => true,
            Some(e) => {
                let e = e.strip_prefix(['-', '+']).unwrap_or(e);
                !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
            }
        }
    };
    if float_re(&plain) {
        return true;
    }
    // base 60 floats like 1:20 and timestamps like 2001-12-14
    if is_timestamp(s) {
        return true;
    }
    if s.contains(':') {
        let parts: Vec<&str> = body.split(':').collect();
        if parts.len() > 1
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
        {
            return true;
        }
    }
    false
}

fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 10 {
        return false;
    }
    let date = b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit);
    if !date {
        return false;
    }
    if b.len() == 10 {
        return true;
    }
    chrono::DateTime::parse_from_rfc3339(s).is_ok()
        || chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").is_ok()
        || chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").is_ok()
}

fn is_printable(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r')
        || (c >= ' '
            && c != '\u{7f}'
            && !('\u{80}'..='\u{9f}').contains(&c)
            && c != '\u{feff}'
            && c != '\u{fffe}'
            && c != '\u{ffff}')
}

struct Analysis {
    block_plain: bool,
    single: bool,
    block: bool,
    multiline: bool,
}

/// libyaml's scalar analysis (block context).
fn analyze(s: &str) -> Analysis {
    let mut a = Analysis {
        block_plain: true,
        single: true,
        block: true,
        multiline: false,
    };
    if s.is_empty() {
        a.block_plain = false;
        a.block = false;
        return a;
    }
    if s.starts_with("---") || s.starts_with("...") {
        a.block_plain = false;
    }
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let is_blank = |i: usize| i >= n || matches!(chars[i], ' ' | '\t' | '\n' | '\r');
    let mut special = false;
    let mut line_breaks = false;
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut prev_space, mut prev_break) = (false, false);
    let mut preceded_by_ws = true;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_ws = is_blank(i + 1);
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => {
                    a.block_plain = false;
                }
                '?' | ':' if followed_by_ws => {
                    a.block_plain = false;
                }
                '-' if followed_by_ws => {
                    a.block_plain = false;
                }
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_ws => {
                    a.block_plain = false;
                }
                '#' if preceded_by_ws => {
                    a.block_plain = false;
                }
                _ => {}
            }
        }
        if !is_printable(c) {
            special = true;
        }
        if c == '\n' || c == '\r' {
            line_breaks = true;
        }
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if i == n - 1 {
                trailing_space = true;
            }
            if prev_break {
                break_space = true;
            }
            prev_space = true;
            prev_break = false;
        } else if c == '\n' || c == '\r' {
            if i == 0 {
                leading_break = true;
            }
            if i == n - 1 {
                trailing_break = true;
            }
            if prev_space {
                space_break = true;
            }
            prev_space = false;
            prev_break = true;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_by_ws = matches!(c, ' ' | '\t' | '\n' | '\r');
    }
    a.multiline = line_breaks;
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain = false;
    }
    if trailing_space {
        a.block = false;
    }
    if break_space {
        a.block_plain = false;
        a.single = false;
    }
    if space_break || special {
        a.block_plain = false;
        a.single = false;
        a.block = false;
    }
    if line_breaks {
        a.block_plain = false;
    }
    a
}

fn emit_string(out: &mut String, s: &str, indent: usize, key: bool) {
    let a = analyze(s);
    if s.contains('\n') && !key {
        if a.block {
            emit_literal(out, s, indent);
        } else {
            emit_double(out, s);
        }
        return;
    }
    if resolves_to_non_string(s) {
        emit_double(out, s);
        return;
    }
    if key && a.multiline {
        emit_double(out, s);
        return;
    }
    if a.block_plain {
        emit_folded_words(out, s, indent, !key, None);
    } else if a.single {
        out.push('\'');
        emit_folded_words(out, &s.replace('\'', "''"), indent, !key, Some('\''));
        out.push('\'');
    } else {
        emit_double(out, s);
    }
}

fn current_column(out: &str) -> usize {
    match out.rfind('\n') {
        Some(i) => out[i + 1..].chars().count(),
        None => out.chars().count(),
    }
}

/// Writes text, breaking at single spaces once past column 80 (libyaml's best width).
fn emit_folded_words(
    out: &mut String,
    s: &str,
    indent: usize,
    allow_breaks: bool,
    _quote: Option<char>,
) {
    if !allow_breaks || s.len() < 10 {
        out.push_str(s);
        return;
    }
    let mut col = current_column(out);
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut prev_space = false;
    while i < chars.len() {
        let c = chars[i];
        if c == ' ' {
            let next_is_space = chars.get(i + 1) == Some(&' ');
            if allow_breaks
                && !prev_space
                && col > 80
                && !next_is_space
                && i != 0
                && i + 1 != chars.len()
            {
                out.push('\n');
                out.push_str(&" ".repeat(indent));
                col = indent;
            } else {
                out.push(' ');
                col += 1;
            }
            prev_space = true;
        } else {
            out.push(c);
            col += 1;
            prev_space = false;
        }
        i += 1;
    }
}

fn emit_double(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{a0}' => out.push_str("\\_"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if !is_printable(c) => {
                let v = c as u32;
                if v <= 0xff {
                    out.push_str(&format!("\\x{v:02X}"));
                } else if v <= 0xffff {
                    out.push_str(&format!("\\u{v:04X}"));
                } else {
                    out.push_str(&format!("\\U{v:08X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn emit_literal(out: &mut String, s: &str, indent: usize) {
    out.push('|');
    if s.starts_with(' ') || s.starts_with('\n') {
        out.push('2');
    }
    let trailing = s.len() - s.trim_end_matches('\n').len();
    if trailing == 0 {
        out.push('-');
    } else if trailing > 1 {
        out.push('+');
    }
    let body = if trailing > 0 { &s[..s.len() - 1] } else { s };
    let pad = " ".repeat(indent.max(2));
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
    }
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

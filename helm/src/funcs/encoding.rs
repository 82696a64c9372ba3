//! Encodings: base64/base32, JSON, YAML, TOML, URLs, paths, and uuids.

use std::collections::HashMap;

use base64::Engine;

use crate::gotemplate::format::go_quote;
use crate::gotemplate::funcs::{
    Entry,
    Family::{Sprig, SprigEnv},
    P, reg,
};
use crate::gotemplate::value::{Map, Value, format_float_json};

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// Go's `json.Marshal` of a value (sorted keys, HTML-safe escaping, Go float format).
pub fn to_json(v: &serde_json::Value, indent: Option<&str>, html_escape: bool) -> String {
    let mut out = String::new();
    write_json(&mut out, v, indent, 0, html_escape);
    out
}

fn json_string(out: &mut String, s: &str, html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if html => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_json(
    out: &mut String,
    v: &serde_json::Value,
    indent: Option<&str>,
    level: usize,
    html: bool,
) {
    let nl = |out: &mut String, level: usize| {
        if let Some(ind) = indent {
            out.push('\n');
            for _ in 0..level {
                out.push_str(ind);
            }
        }
    };
    match v {
        serde_json::Value::Null => out.push_str("null"),
        serde_json::Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                out.push_str(&format_float_json(n.as_f64().unwrap_or(0.0)));
            }
        }
        serde_json::Value::String(s) => json_string(out, s, html),
        serde_json::Value::Array(a) => {
            if a.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                nl(out, level + 1);
                write_json(out, e, indent, level + 1, html);
            }
            nl(out, level);
            out.push(']');
        }
        serde_json::Value::Object(m) => {
            if m.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                nl(out, level + 1);
                json_string(out, k, html);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write_json(out, &m[k], indent, level + 1, html);
            }
            nl(out, level);
            out.push('}');
        }
    }
}

/// A small TOML writer for `toToml` (tables after plain keys, like BurntSushi/toml).
pub fn to_toml(v: &serde_json::Value) -> Result<String, String> {
    let serde_json::Value::Object(m) = v else {
        return Err("toml: top-level value must be a table".into());
    };
    let mut out = String::new();
    write_toml_table(&mut out, m, "")?;
    Ok(out)
}

fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_string()
    } else {
        go_quote(k)
    }
}

fn toml_scalar(v: &serde_json::Value) -> Result<String, String> {
    Ok(match v {
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Number(n) => {
            if n.is_f64() {
                let f = n.as_f64().unwrap_or(0.0);
                if f.fract() == 0.0 {
                    format!("{f:.1}")
                } else {
                    format!("{f}")
                }
            } else {
                n.to_string()
            }
        }
        serde_json::Value::String(s) => go_quote(s),
        serde_json::Value::Array(a) => {
            let parts: Result<Vec<String>, String> = a.iter().map(toml_scalar).collect();
            format!("[{}]", parts?.join(", "))
        }
        serde_json::Value::Object(m) => {
            let parts: Result<Vec<String>, String> = m
                .iter()
                .map(|(k, v)| Ok(format!("{} = {}", toml_key(k), toml_scalar(v)?)))
                .collect();
            format!("{{{}}}", parts?.join(", "))
        }
        serde_json::Value::Null => return Err("toml: cannot encode a nil value".into()),
    })
}

fn write_toml_table(
    out: &mut String,
    m: &serde_json::Map<String, serde_json::Value>,
    prefix: &str,
) -> Result<(), String> {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    for k in &keys {
        let v = &m[*k];
        if v.is_object() || v.is_null() {
            continue;
        }
        out.push_str(&format!("{} = {}\n", toml_key(k), toml_scalar(v)?));
    }
    for k in &keys {
        if let serde_json::Value::Object(sub) = &m[*k] {
            let name = if prefix.is_empty() {
                toml_key(k)
            } else {
                format!("{prefix}.{}", toml_key(k))
            };
            out.push_str(&format!("\n[{name}]\n"));
            write_toml_table(out, sub, &name)?;
        }
    }
    Ok(())
}

const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn b32enc(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let bits = buf.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let chars = match chunk.len() {
            1 => 2,
            2 => 4,
            3 => 5,
            4 => 7,
            _ => 8,
        };
        for i in 0..8 {
            if i < chars {
                out.push(B32[((bits >> (35 - i * 5)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn b32dec(s: &str) -> Result<Vec<u8>, String> {
    let mut bits = 0u64;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.trim_end_matches('=').bytes() {
        let v = B32
            .iter()
            .position(|&x| x == c)
            .ok_or_else(|| "illegal base32 data".to_string())?;
        bits = (bits << 5) | v as u64;
        n += 5;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    Ok(out)
}

/// Go's `os.ExpandEnv`.
fn expand_env(s: &str) -> String {
    let re = regex::Regex::new(r"\$\{([^}]*)\}|\$([A-Za-z0-9_]+)").ok();
    match re {
        Some(re) => re
            .replace_all(s, |c: &regex::Captures| {
                let name = c
                    .get(1)
                    .or_else(|| c.get(2))
                    .map(|m| m.as_str())
                    .unwrap_or("");
                std::env::var(name).unwrap_or_default()
            })
            .into_owned(),
        None => s.to_string(),
    }
}

/// Go's `path.Clean`.
pub fn path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

fn path_base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

fn path_dir(p: &str) -> String {
    match p.rfind('/') {
        Some(i) => path_clean(&p[..=i]),
        None => ".".into(),
    }
}

fn path_ext(p: &str) -> String {
    let base = p.rsplit('/').next().unwrap_or(p);
    match base.rfind('.') {
        Some(i) => base[i..].to_string(),
        None => String::new(),
    }
}

pub(crate) fn register(t: &mut HashMap<&'static str, Entry>) {
    use P::*;
    let std64 = base64::engine::general_purpose::STANDARD;
    let _ = std64;
    reg(t, Sprig, "b64enc", &[S], None, |_, a| {
        Ok(Value::str(
            base64::engine::general_purpose::STANDARD.encode(s(&a[0])),
        ))
    });
    reg(t, Sprig, "b64dec", &[S], None, |_, a| {
        Ok(Value::str(
            match base64::engine::general_purpose::STANDARD.decode(s(&a[0])) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) => e.to_string(),
            },
        ))
    });
    reg(t, Sprig, "b32enc", &[S], None, |_, a| {
        Ok(Value::str(b32enc(s(&a[0]).as_bytes())))
    });
    reg(t, Sprig, "b32dec", &[S], None, |_, a| {
        Ok(Value::str(match b32dec(s(&a[0])) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => e,
        }))
    });
    reg(t, Sprig, "toJson", &[A], None, |_, a| {
        Ok(Value::str(to_json(&a[0].to_json(), None, true)))
    });
    reg(t, Sprig, "mustToJson", &[A], None, |_, a| {
        Ok(Value::str(to_json(&a[0].to_json(), None, true)))
    });
    reg(t, Sprig, "toPrettyJson", &[A], None, |_, a| {
        Ok(Value::str(to_json(&a[0].to_json(), Some("  "), true)))
    });
    reg(t, Sprig, "mustToPrettyJson", &[A], None, |_, a| {
        Ok(Value::str(to_json(&a[0].to_json(), Some("  "), true)))
    });
    reg(t, Sprig, "toRawJson", &[A], None, |_, a| {
        Ok(Value::str(to_json(&a[0].to_json(), None, false)))
    });
    reg(t, Sprig, "mustToRawJson", &[A], None, |_, a| {
        Ok(Value::str(to_json(&a[0].to_json(), None, false)))
    });
    reg(t, Sprig, "uuidv4", &[], None, |_, _| {
        Ok(Value::str(uuid::Uuid::new_v4().to_string()))
    });
    reg(t, Sprig, "base", &[S], None, |_, a| {
        Ok(Value::str(path_base(s(&a[0]))))
    });
    reg(t, Sprig, "dir", &[S], None, |_, a| {
        Ok(Value::str(path_dir(s(&a[0]))))
    });
    reg(t, Sprig, "clean", &[S], None, |_, a| {
        Ok(Value::str(path_clean(s(&a[0]))))
    });
    reg(t, Sprig, "ext", &[S], None, |_, a| {
        Ok(Value::str(path_ext(s(&a[0]))))
    });
    reg(t, Sprig, "isAbs", &[S], None, |_, a| {
        Ok(Value::Bool(s(&a[0]).starts_with('/')))
    });
    reg(t, Sprig, "osBase", &[S], None, |_, a| {
        Ok(Value::str(path_base(s(&a[0]))))
    });
    reg(t, Sprig, "osDir", &[S], None, |_, a| {
        Ok(Value::str(path_dir(s(&a[0]))))
    });
    reg(t, Sprig, "osClean", &[S], None, |_, a| {
        Ok(Value::str(path_clean(s(&a[0]))))
    });
    reg(t, Sprig, "osExt", &[S], None, |_, a| {
        Ok(Value::str(path_ext(s(&a[0]))))
    });
    reg(t, Sprig, "osIsAbs", &[S], None, |_, a| {
        Ok(Value::Bool(s(&a[0]).starts_with('/')))
    });
    reg(t, Sprig, "urlParse", &[S], None, |_, a| {
        let u = url::Url::parse(s(&a[0])).map_err(|e| format!("unable to parse url: {e}"))?;
        let mut m = Map::new();
        m.insert("scheme".into(), Value::str(u.scheme()));
        let host = match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => String::new(),
        };
        m.insert("host".into(), Value::str(host.clone()));
        m.insert("hostname".into(), Value::str(u.host_str().unwrap_or("")));
        m.insert("path".into(), Value::str(u.path()));
        m.insert("query".into(), Value::str(u.query().unwrap_or("")));
        m.insert("opaque".into(), Value::str(""));
        m.insert("fragment".into(), Value::str(u.fragment().unwrap_or("")));
        let userinfo = match (u.username(), u.password()) {
            ("", None) => String::new(),
            (user, Some(p)) => format!("{user}:{p}"),
            (user, None) => user.to_string(),
        };
        m.insert("userinfo".into(), Value::str(userinfo));
        Ok(Value::from(m))
    });
    reg(t, Sprig, "urlJoin", &[M], None, |_, a| {
        let Value::Map(m) = &a[0] else {
            return Ok(Value::str(""));
        };
        let m = m.borrow();
        let g = |k: &str| m.get(k).map(super::conversion::strval).unwrap_or_default();
        let mut out = String::new();
        if !g("scheme").is_empty() {
            out.push_str(&g("scheme"));
            out.push(':');
        }
        if !g("host").is_empty() {
            out.push_str("//");
            if !g("userinfo").is_empty() {
                out.push_str(&g("userinfo"));
                out.push('@');
            }
            out.push_str(&g("host"));
        }
        out.push_str(&g("path"));
        if !g("query").is_empty() {
            out.push('?');
            out.push_str(&g("query"));
        }
        if !g("fragment").is_empty() {
            out.push('#');
            out.push_str(&g("fragment"));
        }
        Ok(Value::str(out))
    });
    reg(t, SprigEnv, "env", &[S], None, |_, a| {
        Ok(Value::str(std::env::var(s(&a[0])).unwrap_or_default()))
    });
    reg(t, SprigEnv, "expandenv", &[S], None, |_, a| {
        Ok(Value::str(expand_env(s(&a[0]))))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        assert_eq!(b32enc(b"abc"), "MFRGG===");
        assert_eq!(b32dec("MFRGG===").unwrap(), b"abc");
        assert_eq!(
            to_json(&serde_json::json!({"b": [1, 2.5], "a": "<x>"}), None, true),
            r#"{"a":"\u003cx\u003e","b":[1,2.5]}"#
        );
        assert_eq!(path_clean("a/../b/./c/"), "b/c");
        assert_eq!(path_base("/a/b.txt"), "b.txt");
        assert_eq!(path_ext("x/y.tar.gz"), ".gz");
        assert_eq!(
            to_toml(&serde_json::json!({"a": 1, "t": {"b": "x"}})).unwrap(),
            "a = 1\n\n[t]\nb = \"x\"\n"
        );
    }
}

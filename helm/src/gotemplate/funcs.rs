//! The function table: Go's builtins, Sprig, and Helm's additions, and which set a template sees.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::exec::Exec;
use super::format;
use super::value::Value;
use crate::funcs;

/// Go parameter types a function declares; arguments are checked against them like Go's reflection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum P {
    /// `interface{}`
    A,
    /// `string`
    S,
    /// `int`
    I,
    /// `float64`
    F,
    /// `bool`
    B,
    /// `[]interface{}`
    L,
    /// `map[string]interface{}`
    M,
}

impl P {
    pub fn go_name(self) -> &'static str {
        match self {
            P::A => "interface {}",
            P::S => "string",
            P::I => "int",
            P::F => "float64",
            P::B => "bool",
            P::L => "[]interface {}",
            P::M => "map[string]interface {}",
        }
    }
}

/// A function implementation.
pub type FuncImpl = fn(&mut Exec, &[Value]) -> Result<Value, String>;

/// A function: fixed parameters, an optional variadic tail, and its code.
pub struct FuncDef {
    pub params: &'static [P],
    pub variadic: Option<P>,
    pub f: FuncImpl,
}

/// Which functions a template can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FuncSet {
    /// Only Go's builtins.
    GoBuiltins,
    /// Go's builtins and all of Sprig (`TxtFuncMap`).
    #[default]
    Sprig,
    /// Sprig without `env` and `expandenv` (what Fleet uses for `fleet.yaml` values templating).
    SprigWithoutEnv,
    /// What Helm charts see: Sprig without env/expandenv, plus `include`, `tpl`, `toYaml`, `required`, `lookup`...
    Helm,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Go,
    Sprig,
    SprigEnv,
    Helm,
}

pub(crate) type Entry = (Family, FuncDef);

fn table() -> &'static HashMap<&'static str, Entry> {
    static TABLE: OnceLock<HashMap<&'static str, Entry>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t: HashMap<&'static str, Entry> = HashMap::new();
        go_builtins(&mut t);
        funcs::register_all(&mut t);
        t
    })
}

/// Finds a function visible in `set`.
pub fn lookup_func(set: FuncSet, name: &str) -> Option<&'static FuncDef> {
    let (fam, def) = table().get(name)?;
    let visible = match (set, fam) {
        (_, Family::Go) => true,
        (FuncSet::GoBuiltins, _) => false,
        (FuncSet::Sprig, Family::Sprig | Family::SprigEnv) => true,
        (FuncSet::SprigWithoutEnv, Family::Sprig) => true,
        (FuncSet::Helm, Family::Sprig | Family::Helm) => true,
        _ => false,
    };
    visible.then_some(def)
}

/// Registers a function.
pub(crate) fn reg(
    t: &mut HashMap<&'static str, Entry>,
    fam: Family,
    name: &'static str,
    params: &'static [P],
    variadic: Option<P>,
    f: FuncImpl,
) {
    t.insert(
        name,
        (
            fam,
            FuncDef {
                params,
                variadic,
                f,
            },
        ),
    );
}

fn go_builtins(t: &mut HashMap<&'static str, Entry>) {
    use Family::Go;
    // and/or are evaluated lazily by the executor; these entries make them known to the parser.
    reg(t, Go, "and", &[P::A], Some(P::A), |_, a| {
        Ok(a.last().cloned().unwrap_or_default())
    });
    reg(t, Go, "or", &[P::A], Some(P::A), |_, a| {
        Ok(a.last().cloned().unwrap_or_default())
    });
    reg(t, Go, "not", &[P::A], None, |_, a| {
        Ok(Value::Bool(!a[0].truthy()))
    });
    reg(t, Go, "len", &[P::A], None, |_, a| go_len(&a[0]));
    reg(t, Go, "index", &[P::A], Some(P::A), |_, a| {
        go_index(&a[0], &a[1..])
    });
    reg(t, Go, "slice", &[P::A], Some(P::A), |_, a| {
        go_slice(&a[0], &a[1..])
    });
    reg(t, Go, "print", &[], Some(P::A), |_, a| {
        Ok(Value::str(format::sprint(a)))
    });
    reg(t, Go, "println", &[], Some(P::A), |_, a| {
        Ok(Value::str(format::sprintln(a)))
    });
    reg(t, Go, "printf", &[P::S], Some(P::A), |ex, a| {
        let s = format::sprintf(a[0].as_str().unwrap_or(""), &a[1..]);
        ex.check_size(s.len())?;
        Ok(Value::str(s))
    });
    reg(t, Go, "html", &[], Some(P::A), |_, a| {
        Ok(Value::str(html_escape(&eval_args_string(a))))
    });
    reg(t, Go, "js", &[], Some(P::A), |_, a| {
        Ok(Value::str(js_escape(&eval_args_string(a))))
    });
    reg(t, Go, "urlquery", &[], Some(P::A), |_, a| {
        Ok(Value::str(url_query_escape(&eval_args_string(a))))
    });
    reg(t, Go, "call", &[P::A], Some(P::A), |_, a| {
        Err(format!(
            "non-function {} of type {}",
            a[0].go_string(),
            a[0].type_name()
        ))
    });
    reg(t, Go, "eq", &[P::A], Some(P::A), |_, a| {
        go_eq(&a[0], &a[1..])
    });
    reg(t, Go, "ne", &[P::A, P::A], None, |_, a| {
        go_eq(&a[0], &a[1..]).map(|v| Value::Bool(!v.truthy()))
    });
    reg(t, Go, "lt", &[P::A, P::A], None, |_, a| {
        go_lt(&a[0], &a[1]).map(Value::Bool)
    });
    reg(t, Go, "le", &[P::A, P::A], None, |_, a| {
        Ok(Value::Bool(
            go_lt(&a[0], &a[1])? || go_eq(&a[0], &a[1..])?.truthy(),
        ))
    });
    reg(t, Go, "gt", &[P::A, P::A], None, |_, a| {
        Ok(Value::Bool(
            !go_lt(&a[0], &a[1])? && !go_eq(&a[0], &a[1..])?.truthy(),
        ))
    });
    reg(t, Go, "ge", &[P::A, P::A], None, |_, a| {
        Ok(Value::Bool(!go_lt(&a[0], &a[1])?))
    });
}

/// Go's `evalArgs`: one string argument as is, otherwise `fmt.Sprint`.
fn eval_args_string(a: &[Value]) -> String {
    if let [Value::Str(s)] = a {
        return s.to_string();
    }
    format::sprint(a)
}

fn go_len(v: &Value) -> Result<Value, String> {
    Ok(Value::Int(match v {
        Value::Str(s) => s.len(),
        Value::List(l) => l.len(),
        Value::Map(m) => m.borrow().len(),
        Value::Bytes(b) => b.len(),
        Value::Nil => return Err("len of nil pointer".into()),
        other => return Err(format!("len of type {}", other.type_name())),
    } as i64))
}

fn index_of(v: &Value, len: usize, cap: usize) -> Result<usize, String> {
    let i = match v {
        Value::Int(i) => *i,
        Value::Nil => return Err("cannot index slice/array with nil".into()),
        other => {
            return Err(format!(
                "cannot index slice/array with type {}",
                other.type_name()
            ));
        }
    };
    if i < 0 || i as usize > cap {
        return Err(format!("index out of range: {i}"));
    }
    let _ = len;
    Ok(i as usize)
}

fn go_index(item: &Value, idx: &[Value]) -> Result<Value, String> {
    let mut cur = item.clone();
    for i in idx {
        cur = match &cur {
            Value::List(l) => {
                let n = index_of(i, l.len(), l.len())?;
                if n >= l.len() {
                    return Err(format!("index out of range: {n}"));
                }
                l[n].clone()
            }
            Value::Bytes(b) => {
                let n = index_of(i, b.len(), b.len())?;
                if n >= b.len() {
                    return Err(format!("index out of range: {n}"));
                }
                Value::Int(i64::from(b[n]))
            }
            Value::Str(s) => {
                let n = index_of(i, s.len(), s.len())?;
                if n >= s.len() {
                    return Err(format!("index out of range: {n}"));
                }
                Value::Int(i64::from(s.as_bytes()[n]))
            }
            Value::Map(m) => match i {
                Value::Str(k) => m.borrow().get(&**k).cloned().unwrap_or(Value::Nil),
                Value::Nil => Value::Nil,
                other => {
                    return Err(format!(
                        "value has type {}; should be string",
                        other.type_name()
                    ));
                }
            },
            Value::Nil => return Err("index of untyped nil".into()),
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(cur)
}

fn go_slice(item: &Value, idx: &[Value]) -> Result<Value, String> {
    if idx.len() > 3 {
        return Err(format!("too many slice indexes: {}", idx.len()));
    }
    let len = match item {
        Value::Str(s) => {
            if idx.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Value::List(l) => l.len(),
        Value::Nil => return Err("slice of untyped nil".into()),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut ix = [0usize, len];
    for (k, v) in idx.iter().take(2).enumerate() {
        ix[k] = index_of(v, len, len)?;
    }
    if ix[0] > ix[1] {
        return Err(format!("invalid slice index: {} > {}", ix[0], ix[1]));
    }
    Ok(match item {
        Value::Str(s) => Value::str(s.get(ix[0]..ix[1]).unwrap_or("")),
        Value::List(l) => Value::from(l[ix[0]..ix[1]].to_vec()),
        _ => Value::Nil,
    })
}

#[derive(PartialEq)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
    Other,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::Str,
        _ => Kind::Other,
    }
}

fn go_eq(a: &Value, rest: &[Value]) -> Result<Value, String> {
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    for b in rest {
        let (ka, kb) = (kind(a), kind(b));
        let truth = if ka != kb {
            if !a.is_nil() && !b.is_nil() {
                return Err("incompatible types for comparison".into());
            }
            false
        } else {
            match (a, b) {
                (Value::Bool(x), Value::Bool(y)) => x == y,
                (Value::Int(x), Value::Int(y)) => x == y,
                (Value::Float(x), Value::Float(y)) => x == y,
                (Value::Str(x), Value::Str(y)) => x == y,
                (Value::Nil, Value::Nil) => true,
                (Value::Nil, _) | (_, Value::Nil) => false,
                (Value::List(_), _)
                | (Value::Map(_), _)
                | (_, Value::List(_))
                | (_, Value::Map(_)) => {
                    return Err(format!(
                        "non-comparable type {}: {}",
                        b.go_string(),
                        b.type_name()
                    ));
                }
                _ => super::value::deep_equal(a, b),
            }
        };
        if truth {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

fn go_lt(a: &Value, b: &Value) -> Result<bool, String> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x < y),
        (Value::Float(x), Value::Float(y)) => Ok(x < y),
        (Value::Str(x), Value::Str(y)) => Ok(x < y),
        (Value::Bool(_), _) | (_, Value::Bool(_)) | (Value::Nil, _) | (_, Value::Nil) => {
            Err("invalid type for comparison".into())
        }
        (Value::List(_) | Value::Map(_) | Value::Object(_) | Value::Bytes(_), _)
        | (_, Value::List(_) | Value::Map(_) | Value::Object(_) | Value::Bytes(_)) => {
            Err("invalid type for comparison".into())
        }
        _ => Err("incompatible types for comparison".into()),
    }
}

/// Go's `template.HTMLEscapeString`.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
pub fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub fn url_query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

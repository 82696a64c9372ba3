//! Sprig's type conversions (`toString`, `int`, `float64`, `atoi`...) and the helpers every family uses.

use std::collections::HashMap;

use crate::gotemplate::funcs::{Entry, Family::Sprig, P, reg};
use crate::gotemplate::value::Value;

/// Sprig's `strval`: strings as is, everything else `fmt.Sprint`.
pub fn strval(v: &Value) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        other => other.go_string(),
    }
}

/// spf13/cast `ToInt64`: numbers truncate, strings parse (base prefixes allowed), bools are 0/1, else 0.
pub fn to_i64(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) if f.is_finite() => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => parse_int_base0(s).unwrap_or(0),
        _ => 0,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
pub fn parse_int_base0(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let body = body.replace('_', "");
    let lower = body.to_ascii_lowercase();
    let v = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()?
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()?
    } else if lower.len() > 1 && lower.starts_with('0') {
        i64::from_str_radix(&lower[1..], 8).ok()?
    } else {
        lower.parse::<i64>().ok()?
    };
    Some(if neg { -v } else { v })
}

/// spf13/cast `ToFloat64`.
pub fn to_f64(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => s.trim().parse::<f64>().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Sprig's `empty`.
pub fn empty(v: &Value) -> bool {
    !v.truthy()
}

/// A list argument (Go slice) or an error naming the function and type.
pub fn as_list(v: &Value, func: &str) -> Result<Vec<Value>, String> {
    match v {
        Value::List(l) => Ok(l.as_ref().clone()),
        Value::Bytes(b) => Ok(b.iter().map(|x| Value::Int(i64::from(*x))).collect()),
        Value::Nil => Err(format!("Cannot {func} on type <nil>")),
        other => Err(format!("Cannot {func} on type {}", kind_name(other))),
    }
}

/// Go reflect kind names (`kindOf`).
pub fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "invalid",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float64",
        Value::Str(_) => "string",
        Value::List(_) | Value::Bytes(_) => "slice",
        Value::Map(_) => "map",
        Value::Object(_) => "struct",
    }
}

pub(crate) fn register(t: &mut HashMap<&'static str, Entry>) {
    reg(t, Sprig, "toString", &[P::A], None, |_, a| {
        Ok(Value::str(strval(&a[0])))
    });
    reg(t, Sprig, "toStrings", &[P::A], None, |_, a| {
        let l = match &a[0] {
            Value::List(l) => l.iter().map(|v| Value::str(strval(v))).collect(),
            Value::Nil => Vec::new(),
            other => vec![Value::str(strval(other))],
        };
        Ok(Value::from(l))
    });
    reg(t, Sprig, "int", &[P::A], None, |_, a| {
        Ok(Value::Int(to_i64(&a[0])))
    });
    reg(t, Sprig, "int64", &[P::A], None, |_, a| {
        Ok(Value::Int(to_i64(&a[0])))
    });
    reg(t, Sprig, "float64", &[P::A], None, |_, a| {
        Ok(Value::Float(to_f64(&a[0])))
    });
    reg(t, Sprig, "atoi", &[P::S], None, |_, a| {
        Ok(Value::Int(
            a[0].as_str()
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(0),
        ))
    });
    reg(t, Sprig, "toDecimal", &[P::A], None, |_, a| {
        let s = strval(&a[0]);
        Ok(Value::Int(i64::from_str_radix(&s, 8).unwrap_or(0)))
    });
    reg(t, Sprig, "kindOf", &[P::A], None, |_, a| {
        Ok(Value::str(kind_name(&a[0])))
    });
    reg(t, Sprig, "kindIs", &[P::S, P::A], None, |_, a| {
        Ok(Value::Bool(a[0].as_str() == Some(kind_name(&a[1]))))
    });
    reg(t, Sprig, "typeOf", &[P::A], None, |_, a| {
        Ok(Value::str(a[0].type_name()))
    });
    reg(t, Sprig, "typeIs", &[P::S, P::A], None, |_, a| {
        Ok(Value::Bool(
            a[0].as_str() == Some(a[1].type_name().as_str()),
        ))
    });
    reg(t, Sprig, "typeIsLike", &[P::S, P::A], None, |_, a| {
        let tn = a[1].type_name();
        let want = a[0].as_str().unwrap_or("");
        Ok(Value::Bool(want == tn || want == format!("*{tn}")))
    });
    reg(t, Sprig, "deepEqual", &[P::A, P::A], None, |_, a| {
        Ok(Value::Bool(crate::gotemplate::value::deep_equal(
            &a[0], &a[1],
        )))
    });
    reg(t, Sprig, "default", &[P::A], Some(P::A), |_, a| {
        if a.len() < 2 || empty(&a[1]) {
            Ok(a[0].clone())
        } else {
            Ok(a[1].clone())
        }
    });
    reg(t, Sprig, "empty", &[P::A], None, |_, a| {
        Ok(Value::Bool(empty(&a[0])))
    });
    reg(t, Sprig, "coalesce", &[], Some(P::A), |_, a| {
        Ok(a.iter().find(|v| !empty(v)).cloned().unwrap_or(Value::Nil))
    });
    reg(t, Sprig, "all", &[], Some(P::A), |_, a| {
        Ok(Value::Bool(a.iter().all(|v| !empty(v))))
    });
    reg(t, Sprig, "any", &[], Some(P::A), |_, a| {
        Ok(Value::Bool(a.iter().any(|v| !empty(v))))
    });
    reg(t, Sprig, "ternary", &[P::A, P::A, P::B], None, |_, a| {
        Ok(if a[2].truthy() {
            a[0].clone()
        } else {
            a[1].clone()
        })
    });
    reg(t, Sprig, "fail", &[P::S], None, |ex, a| {
        let msg = a[0].as_str().unwrap_or("");
        if ex.opts.funcs == crate::gotemplate::FuncSet::Helm {
            Err(super::helm::warn_wrap(msg))
        } else {
            Err(msg.to_string())
        }
    });
}

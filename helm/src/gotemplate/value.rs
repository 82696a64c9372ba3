//! The dynamic values a template works on.
//!
//! Go templates run on `interface{}` data; charts hold `map[string]interface{}` trees. Maps are
//! shared and mutable (Sprig's `set`/`unset`/`merge` change a dict in place and every variable that
//! refers to it sees the change), so they live behind `Rc<RefCell<..>>`. Keys are kept in a
//! `BTreeMap`, which gives Go's sorted-key iteration and printing for free.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

/// A Go map of strings to values.
pub type Map = BTreeMap<String, Value>;

/// A value inside the template engine.
#[derive(Clone, Default)]
pub enum Value {
    /// Go's nil interface (also what a missing map key yields).
    #[default]
    Nil,
    Bool(bool),
    /// Go `int`/`int64`.
    Int(i64),
    /// Go `float64`; numbers read from YAML or JSON values are float64 in Helm.
    Float(f64),
    Str(Rc<str>),
    /// Go `[]interface{}`.
    List(Rc<Vec<Value>>),
    /// Go `map[string]interface{}`, shared and mutable.
    Map(Rc<RefCell<Map>>),
    /// Go `[]byte`.
    Bytes(Rc<Vec<u8>>),
    /// A Go struct with fields and methods (`.Chart`, `.Files`, `.Capabilities`...).
    Object(Rc<dyn Object>),
}

/// A struct-like value: named fields and methods, and how `fmt` prints it.
pub trait Object {
    /// Go type name, for error messages (`chart.Metadata`).
    fn type_name(&self) -> &str;
    /// A field, or `None` when the struct has no such field.
    fn field(&self, name: &str) -> Option<Value>;
    /// Calls a method; `None` when there is no such method.
    fn call(&self, _name: &str, _args: &[Value]) -> Option<Result<Value, String>> {
        None
    }
    /// Whether a method of this name exists.
    fn has_method(&self, _name: &str) -> bool {
        false
    }
    /// What `fmt.Sprint` prints.
    fn display(&self) -> String;
    /// The JSON form (`toYaml`, `toJson`).
    fn to_json(&self) -> serde_json::Value;
    /// Key/value pairs when the Go type is a map (`range` iterates them in key order).
    fn entries(&self) -> Option<Vec<(String, Value)>> {
        None
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.go_string())
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        deep_equal(self, other)
    }
}

/// Go's `reflect.DeepEqual` on our values.
pub fn deep_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Nil, Value::Nil) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Bytes(x), Value::Bytes(y)) => x == y,
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| deep_equal(a, b))
        }
        (Value::Map(x), Value::Map(y)) => {
            if Rc::ptr_eq(x, y) {
                return true;
            }
            let (x, y) = (x.borrow(), y.borrow());
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((ka, va), (kb, vb))| ka == kb && deep_equal(va, vb))
        }
        (Value::Object(x), Value::Object(y)) => x.to_json() == y.to_json(),
        _ => false,
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(Rc::from(s))
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(Rc::from(s))
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::List(Rc::new(v))
    }
}
impl From<Map> for Value {
    fn from(m: Map) -> Self {
        Value::Map(Rc::new(RefCell::new(m)))
    }
}

impl Value {
    pub fn str(s: impl AsRef<str>) -> Value {
        Value::Str(Rc::from(s.as_ref()))
    }

    pub fn new_map() -> Value {
        Value::Map(Rc::new(RefCell::new(Map::new())))
    }

    /// Go's truth: false, 0, nil, and empty strings, slices and maps are false.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.borrow().is_empty(),
            Value::Bytes(b) => !b.is_empty(),
            Value::Object(_) => true,
        }
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The Go type name used in messages (`%T`).
    pub fn type_name(&self) -> String {
        match self {
            Value::Nil => "<nil>".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Float(_) => "float64".into(),
            Value::Str(_) => "string".into(),
            Value::List(_) => "[]interface {}".into(),
            Value::Map(_) => "map[string]interface {}".into(),
            Value::Bytes(_) => "[]uint8".into(),
            Value::Object(o) => o.type_name().to_string(),
        }
    }

    /// `fmt.Sprint` of this value (`%v`).
    pub fn go_string(&self) -> String {
        let mut out = String::new();
        write_go_value(&mut out, self, true);
        out
    }

    /// Converts from JSON. Numbers that are integers in JSON become Go `int64`, others `float64`.
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else {
                    Value::Float(n.as_f64().unwrap_or(0.0))
                }
            }
            serde_json::Value::String(s) => Value::str(s),
            serde_json::Value::Array(a) => {
                Value::from(a.iter().map(Value::from_json).collect::<Vec<_>>())
            }
            serde_json::Value::Object(o) => Value::from(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect::<Map>(),
            ),
        }
    }

    /// Converts from JSON the way Go's `encoding/json` decodes into `interface{}`: every number is a float64.
    pub fn from_json_go(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::Array(a) => {
                Value::from(a.iter().map(Value::from_json_go).collect::<Vec<_>>())
            }
            serde_json::Value::Object(o) => Value::from(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json_go(v)))
                    .collect::<Map>(),
            ),
            other => Value::from_json(other),
        }
    }

    /// Converts to JSON (what `toJson`/`toYaml` serialise). Non-finite floats become null.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Nil => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => serde_json::Value::String(s.to_string()),
            Value::List(l) => serde_json::Value::Array(l.iter().map(Value::to_json).collect()),
            Value::Map(m) => serde_json::Value::Object(
                m.borrow()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
            Value::Bytes(b) => {
                use base64::Engine;
                serde_json::Value::String(
                    base64::engine::general_purpose::STANDARD.encode(b.as_slice()),
                )
            }
            Value::Object(o) => o.to_json(),
        }
    }

    /// A deep copy: maps are no longer shared with the original.
    pub fn deep_copy(&self) -> Value {
        match self {
            Value::List(l) => Value::from(l.iter().map(Value::deep_copy).collect::<Vec<_>>()),
            Value::Map(m) => Value::from(
                m.borrow()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.deep_copy()))
                    .collect::<Map>(),
            ),
            other => other.clone(),
        }
    }
}

/// Appends Go's `%v` rendering of `v`. `top` is false inside composites, where nil prints `<nil>`.
pub fn write_go_value(out: &mut String, v: &Value, top: bool) {
    let _ = top;
    match v {
        Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&format_float_g(*f, -1)),
        Value::Str(s) => out.push_str(s),
        Value::List(l) => {
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go_value(out, e, false);
            }
            out.push(']');
        }
        Value::Bytes(b) => {
            out.push('[');
            for (i, e) in b.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(&e.to_string());
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, e)) in m.borrow().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_go_value(out, e, false);
            }
            out.push(']');
        }
        Value::Object(o) => out.push_str(&o.display()),
    }
}

/// Shortest decimal digits and exponent of a finite, non-zero float: `(digits, exp)` meaning
/// `0.d1d2d3... * 10^exp`.
fn shortest_digits(f: f64) -> (String, i32) {
    let s = format!("{:e}", f.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    (digits, exp + 1)
}

/// Go's `strconv.FormatFloat(f, 'g', prec, 64)` (and `%v` when `prec` is -1).
pub fn format_float_g(f: f64, prec: i32) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let neg = f < 0.0;
    let (mut digits, mut dp) = if prec < 0 {
        shortest_digits(f)
    } else {
        let p = if prec == 0 { 1 } else { prec } as usize;
        let s = format!("{:.*e}", p - 1, f.abs());
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let d: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
        (d, exp.parse::<i32>().unwrap_or(0) + 1)
    };
    if prec >= 0 {
        while digits.len() > 1 && digits.ends_with('0') {
            digits.pop();
        }
    }
    let eprec = if prec < 0 {
        6
    } else {
        let mut e = if prec == 0 { 1 } else { prec };
        if e > digits.len() as i32 && digits.len() as i32 >= dp {
            e = digits.len() as i32;
        }
        e
    };
    let exp = dp - 1;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if exp < -4 || exp >= eprec {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.abs();
        if e < 10 {
            out.push('0');
        }
        out.push_str(&e.to_string());
        return out;
    }
    if dp <= 0 {
        out.push_str("0.");
        for _ in 0..(-dp) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let dpu = dp as usize;
        if digits.len() <= dpu {
            out.push_str(&digits);
            for _ in digits.len()..dpu {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..dpu]);
            out.push('.');
            out.push_str(&digits[dpu..]);
        }
    }
    dp = 0;
    let _ = dp;
    out
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)` / encoding/json's float form.
pub fn format_float_json(f: f64) -> String {
    if f == 0.0 {
        return "0".into();
    }
    let abs = f.abs();
    if !(1e-6..1e21).contains(&abs) {
        // exponent form, Go json style: 1e+21, 1e-07
        let (digits, dp) = shortest_digits(f);
        let exp = dp - 1;
        let mut out = String::new();
        if f < 0.0 {
            out.push('-');
        }
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.abs();
        if exp < 0 && e < 10 {
            out.push('0');
        }
        out.push_str(&e.to_string());
        return out;
    }
    let s = format!("{f}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go() {
        assert_eq!(format_float_g(1.0, -1), "1");
        assert_eq!(format_float_g(2.75, -1), "2.75");
        assert_eq!(format_float_g(1000000.0, -1), "1e+06");
        assert_eq!(format_float_g(100000.0, -1), "100000");
        assert_eq!(format_float_g(0.0001, -1), "0.0001");
        assert_eq!(format_float_g(0.00001, -1), "1e-05");
        assert_eq!(format_float_g(-2.5, -1), "-2.5");
        assert_eq!(format_float_json(1e21), "1e+21");
        assert_eq!(format_float_json(1e-7), "1e-07");
        assert_eq!(format_float_json(1000000.0), "1000000");
        assert_eq!(format_float_json(3.5), "3.5");
    }

    #[test]
    fn composites_print_like_go() {
        let mut m = Map::new();
        m.insert("b".into(), Value::Int(2));
        m.insert("a".into(), Value::from(vec![Value::str("x"), Value::Nil]));
        assert_eq!(Value::from(m).go_string(), "map[a:[x <nil>] b:2]");
    }
}

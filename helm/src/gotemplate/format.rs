//! Go's `fmt` package for template values: `Sprint`, `Sprintln`, `Sprintf`.

use super::value::{Value, format_float_g};

/// `fmt.Sprint`: operands joined, with a space between two operands when neither is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Value::Str(_)) && !matches!(args[i - 1], Value::Str(_)) {
            out.push(' ');
        }
        out.push_str(&a.go_string());
    }
    out
}

/// `fmt.Sprintln`: operands always space-separated, newline appended.
pub fn sprintln(args: &[Value]) -> String {
    let mut out = args
        .iter()
        .map(Value::go_string)
        .collect::<Vec<_>>()
        .join(" ");
    out.push('\n');
    out
}

/// Go-quoted string (`strconv.Quote`).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

fn pad(s: String, spec: &Spec, numeric: bool) -> String {
    let Some(w) = spec.width else { return s };
    let len = s.chars().count();
    if len >= w {
        return s;
    }
    let fill = w - len;
    if spec.minus {
        return s + &" ".repeat(fill);
    }
    if spec.zero && numeric {
        // zeros go after the sign
        let (sign, rest) = if s.starts_with(['-', '+', ' ']) {
            s.split_at(1)
        } else {
            ("", s.as_str())
        };
        return format!("{sign}{}{rest}", "0".repeat(fill));
    }
    " ".repeat(fill) + &s
}

fn bad_verb(verb: char, v: &Value) -> String {
    match v {
        Value::Nil => format!("%!{verb}(<nil>)"),
        other => format!("%!{verb}({}={})", other.type_name(), other.go_string()),
    }
}

fn fmt_int(i: i64, verb: char, spec: &Spec) -> String {
    let neg = i < 0;
    let u = i.unsigned_abs();
    let mut digits = match verb {
        'd' | 'v' => u.to_string(),
        'x' => format!("{u:x}"),
        'X' => format!("{u:X}"),
        'o' | 'O' => format!("{u:o}"),
        'b' => format!("{u:b}"),
        _ => u.to_string(),
    };
    if let Some(p) = spec.prec {
        while digits.len() < p {
            digits.insert(0, '0');
        }
    }
    if spec.sharp {
        match verb {
            'x' => digits.insert_str(0, "0x"),
            'X' => digits.insert_str(0, "0X"),
            'o' => digits.insert(0, '0'),
            'b' => digits.insert_str(0, "0b"),
            _ => {}
        }
    }
    if verb == 'O' {
        digits.insert_str(0, "0o");
    }
    let sign = if neg {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    };
    pad(format!("{sign}{digits}"), spec, spec.prec.is_none())
}

fn fmt_float(f: f64, verb: char, spec: &Spec) -> String {
    let body = match verb {
        'f' | 'F' => {
            if f.is_finite() {
                format!("{:.*}", spec.prec.unwrap_or(6), f)
            } else {
                format_float_g(f, -1)
            }
        }
        'e' | 'E' => {
            let s = if f.is_finite() {
                go_exp(f, spec.prec.unwrap_or(6))
            } else {
                format_float_g(f, -1)
            };
            if verb == 'E' { s.to_uppercase() } else { s }
        }
        'g' | 'G' | 'v' => {
            let s = format_float_g(f, spec.prec.map_or(-1, |p| p as i32));
            if verb == 'G' { s.to_uppercase() } else { s }
        }
        _ => format_float_g(f, -1),
    };
    let body = if spec.plus && !body.starts_with('-') && !body.starts_with('+') {
        format!("+{body}")
    } else if spec.space && !body.starts_with('-') {
        format!(" {body}")
    } else {
        body
    };
    pad(body, spec, true)
}

fn go_exp(f: f64, prec: usize) -> String {
    let s = format!("{:.*e}", prec, f);
    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

fn fmt_str_like(v: &Value, verb: char, spec: &Spec) -> String {
    match v {
        Value::Str(s) => {
            let s: String = match spec.prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.to_string(),
            };
            match verb {
                'q' => pad(go_quote(&s), spec, false),
                'x' => pad(hex::encode(s.as_bytes()), spec, false),
                'X' => pad(hex::encode_upper(s.as_bytes()), spec, false),
                _ => pad(s, spec, false),
            }
        }
        Value::Bytes(b) => fmt_str_like(&Value::str(String::from_utf8_lossy(b)), verb, spec),
        _ => bad_verb(verb, v),
    }
}

/// Formats one operand under a verb.
fn fmt_value(v: &Value, verb: char, spec: &Spec) -> String {
    match verb {
        'v' => match v {
            Value::Float(f) => fmt_float(*f, 'g', spec),
            Value::Int(i) => fmt_int(*i, 'd', spec),
            Value::Str(s) if spec.sharp => pad(go_quote(s), spec, false),
            other => pad(other.go_string(), spec, false),
        },
        'T' => pad(v.type_name(), spec, false),
        't' => match v {
            Value::Bool(b) => pad(b.to_string(), spec, false),
            other => bad_verb('t', other),
        },
        'd' | 'o' | 'O' | 'b' | 'x' | 'X' | 'c' | 'U' => match v {
            Value::Int(i) => match verb {
                'c' => pad(
                    char::from_u32(*i as u32).unwrap_or('\u{FFFD}').to_string(),
                    spec,
                    false,
                ),
                'U' => pad(format!("U+{:04X}", i), spec, false),
                _ => fmt_int(*i, verb, spec),
            },
            Value::Float(f) if matches!(verb, 'x' | 'X' | 'b') => {
                pad(format_float_g(*f, -1), spec, false)
            }
            Value::Str(_) | Value::Bytes(_) if matches!(verb, 'x' | 'X') => {
                fmt_str_like(v, verb, spec)
            }
            Value::List(l) => {
                let parts: Vec<String> = l
                    .iter()
                    .map(|e| fmt_value(e, verb, &Spec::default()))
                    .collect();
                pad(format!("[{}]", parts.join(" ")), spec, false)
            }
            other => bad_verb(verb, other),
        },
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => match v {
            Value::Float(f) => fmt_float(*f, verb, spec),
            Value::List(l) => {
                let parts: Vec<String> = l
                    .iter()
                    .map(|e| fmt_value(e, verb, &Spec::default()))
                    .collect();
                pad(format!("[{}]", parts.join(" ")), spec, false)
            }
            other => bad_verb(verb, other),
        },
        's' | 'q' => match v {
            Value::Str(_) | Value::Bytes(_) => fmt_str_like(v, verb, spec),
            Value::Int(i) if verb == 'q' => pad(
                format!("'{}'", char::from_u32(*i as u32).unwrap_or('\u{FFFD}')),
                spec,
                false,
            ),
            Value::List(l) => {
                let parts: Vec<String> = l
                    .iter()
                    .map(|e| fmt_value(e, verb, &Spec::default()))
                    .collect();
                pad(format!("[{}]", parts.join(" ")), spec, false)
            }
            Value::Map(m) => {
                let parts: Vec<String> = m
                    .borrow()
                    .iter()
                    .map(|(k, e)| {
                        format!(
                            "{}:{}",
                            fmt_value(&Value::str(k), verb, &Spec::default()),
                            fmt_value(e, verb, &Spec::default())
                        )
                    })
                    .collect();
                pad(format!("map[{}]", parts.join(" ")), spec, false)
            }
            Value::Object(o) => pad(o.display(), spec, false),
            other => bad_verb(verb, other),
        },
        _ => format!("%!{verb}({}={})", v.type_name(), v.go_string()),
    }
}

/// `fmt.Sprintf`.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut argi = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        loop {
            match chars.peek() {
                Some('-') => spec.minus = true,
                Some('+') => spec.plus = true,
                Some('#') => spec.sharp = true,
                Some(' ') => spec.space = true,
                Some('0') => spec.zero = true,
                _ => break,
            }
            chars.next();
        }
        // width
        if chars.peek() == Some(&'*') {
            chars.next();
            if let Some(Value::Int(w)) = args.get(argi) {
                if *w < 0 {
                    spec.minus = true;
                }
                spec.width = Some(w.unsigned_abs().min(1 << 20) as usize);
            } else {
                out.push_str("%!(BADWIDTH)");
            }
            argi += 1;
        } else {
            let mut w = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                w.push(*d);
                chars.next();
            }
            if !w.is_empty() {
                spec.width = w.parse::<usize>().ok().map(|w| w.min(1 << 20));
            }
        }
        if chars.peek() == Some(&'.') {
            chars.next();
            if chars.peek() == Some(&'*') {
                chars.next();
                if let Some(Value::Int(p)) = args.get(argi) {
                    spec.prec = Some((*p).clamp(0, 1 << 20) as usize);
                } else {
                    out.push_str("%!(BADPREC)");
                }
                argi += 1;
            } else {
                let mut p = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    p.push(*d);
                    chars.next();
                }
                spec.prec = Some(p.parse::<usize>().unwrap_or(0).min(1 << 20));
            }
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        argi += 1;
        out.push_str(&fmt_value(arg, verb, &spec));
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[argi..]
            .iter()
            .map(|a| {
                if a.is_nil() {
                    "<nil>".to_string()
                } else {
                    format!("{}={}", a.type_name(), a.go_string())
                }
            })
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printf_verbs() {
        assert_eq!(sprintf("%s-%s", &[Value::str("a"), Value::str("b")]), "a-b");
        assert_eq!(sprintf("%d", &[Value::Int(42)]), "42");
        assert_eq!(
            sprintf(
                "%05d|%-4d|%x",
                &[Value::Int(42), Value::Int(7), Value::Int(255)]
            ),
            "00042|7   |ff"
        );
        assert_eq!(sprintf("%q", &[Value::str("a\"b")]), "\"a\\\"b\"");
        assert_eq!(
            sprintf("%v %v", &[Value::Float(1.5), Value::Nil]),
            "1.5 <nil>"
        );
        assert_eq!(sprintf("%.2f", &[Value::Float(1.23456)]), "1.23");
        assert_eq!(sprintf("%d", &[Value::str("x")]), "%!d(string=x)");
        assert_eq!(sprintf("%s", &[]), "%!s(MISSING)");
        assert_eq!(sprintf("a", &[Value::Int(1)]), "a%!(EXTRA int=1)");
        assert_eq!(
            sprintf("%T %t %%", &[Value::Float(1.0), Value::Bool(true)]),
            "float64 true %"
        );
        assert_eq!(sprintf("%s", &[Value::Int(3)]), "%!s(int=3)");
    }

    #[test]
    fn sprint_spacing() {
        assert_eq!(
            sprint(&[
                Value::str("a"),
                Value::Int(1),
                Value::Int(2),
                Value::str("b")
            ]),
            "a1 2b"
        );
        assert_eq!(sprintln(&[Value::str("a"), Value::Int(1)]), "a 1\n");
    }
}

//! Sprig string functions.

use std::collections::HashMap;

use rand::Rng;

use super::conversion::strval;
use crate::gotemplate::exec::Exec;
use crate::gotemplate::funcs::{Entry, Family::Sprig, P, reg};
use crate::gotemplate::value::{Map, Value};

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        _ => 0,
    }
}

fn sv(x: impl Into<String>) -> Result<Value, String> {
    Ok(Value::str(x.into()))
}

/// Go's `strings.Title`: upper-cases the first letter of each word.
pub fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !(c.is_alphanumeric() || c == '_');
    }
    out
}

fn untitle(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        prev_sep = c.is_whitespace();
    }
    out
}

fn trunc(c: i64, s: &str) -> String {
    let n = s.len() as i64;
    if c < 0 && -c < n {
        let start = (n + c) as usize;
        return byte_slice(s, start, s.len());
    }
    if c >= 0 && n > c {
        return byte_slice(s, 0, c as usize);
    }
    s.to_string()
}

/// A byte-range slice of a string; split characters become U+FFFD like Go's conversion would show.
fn byte_slice(s: &str, a: usize, b: usize) -> String {
    String::from_utf8_lossy(&s.as_bytes()[a.min(s.len())..b.min(s.len())]).into_owned()
}

fn indent(n: i64, s: &str) -> String {
    let pad = " ".repeat(n.clamp(0, 1 << 16) as usize);
    format!("{pad}{}", s.replace('\n', &format!("\n{pad}")))
}

fn indent_size(n: i64, s: &str) -> usize {
    let lines = s.bytes().filter(|&b| b == b'\n').count() + 1;
    s.len()
        .saturating_add((n.clamp(0, 1 << 16) as usize).saturating_mul(lines))
}

fn words_split(s: &str) -> Vec<String> {
    // splits on case changes, digits boundaries, and non-alphanumerics (xstrings style)
    let mut words = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if c.is_uppercase() && !cur.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                words.push(std::mem::take(&mut cur));
            }
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

fn snakecase(s: &str) -> String {
    words_split(s)
        .iter()
        .map(|w| w.to_lowercase())
        .collect::<Vec<_>>()
        .join("_")
}

fn kebabcase(s: &str) -> String {
    words_split(s)
        .iter()
        .map(|w| w.to_lowercase())
        .collect::<Vec<_>>()
        .join("-")
}

fn camelcase(s: &str) -> String {
    // Sprig (xstrings.ToCamelCase): words separated by `_`, each capitalised
    s.split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

fn swapcase(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_uppercase() {
                c.to_lowercase().collect::<String>()
            } else if c.is_lowercase() {
                c.to_uppercase().collect::<String>()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn wrap(width: i64, s: &str, sep: &str) -> String {
    let width = width.max(1) as usize;
    let mut out = String::new();
    for (li, line) in s.split('\n').enumerate() {
        if li > 0 {
            out.push('\n');
        }
        let mut col = 0;
        for (wi, word) in line.split(' ').enumerate() {
            if wi > 0 {
                if col + 1 + word.chars().count() > width && col > 0 {
                    out.push_str(sep);
                    col = 0;
                } else {
                    out.push(' ');
                    col += 1;
                }
            }
            out.push_str(word);
            col += word.chars().count();
        }
    }
    out
}

fn rand_string(ex: &Exec, n: i64, charset: &[u8]) -> Result<Value, String> {
    let n = n.max(0) as usize;
    ex.check_size(n)?;
    let mut rng = rand::rng();
    Ok(Value::str(
        (0..n)
            .map(|_| charset[rng.random_range(0..charset.len())] as char)
            .collect::<String>(),
    ))
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const NUMERIC: &[u8] = b"0123456789";

pub(crate) fn register(t: &mut HashMap<&'static str, Entry>) {
    use P::*;
    reg(t, Sprig, "upper", &[S], None, |_, a| {
        sv(s(&a[0]).to_uppercase())
    });
    reg(t, Sprig, "lower", &[S], None, |_, a| {
        sv(s(&a[0]).to_lowercase())
    });
    reg(t, Sprig, "title", &[S], None, |_, a| sv(title(s(&a[0]))));
    reg(t, Sprig, "untitle", &[S], None, |_, a| {
        sv(untitle(s(&a[0])))
    });
    reg(t, Sprig, "trim", &[S], None, |_, a| sv(s(&a[0]).trim()));
    reg(t, Sprig, "trimAll", &[S, S], None, |_, a| {
        let cut: Vec<char> = s(&a[0]).chars().collect();
        sv(s(&a[1]).trim_matches(|c| cut.contains(&c)))
    });
    reg(t, Sprig, "trimall", &[S, S], None, |_, a| {
        let cut: Vec<char> = s(&a[0]).chars().collect();
        sv(s(&a[1]).trim_matches(|c| cut.contains(&c)))
    });
    reg(t, Sprig, "trimPrefix", &[S, S], None, |_, a| {
        sv(s(&a[1]).strip_prefix(s(&a[0])).unwrap_or(s(&a[1])))
    });
    reg(t, Sprig, "trimSuffix", &[S, S], None, |_, a| {
        sv(s(&a[1]).strip_suffix(s(&a[0])).unwrap_or(s(&a[1])))
    });
    reg(t, Sprig, "nospace", &[S], None, |_, a| {
        sv(s(&a[0])
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>())
    });
    reg(t, Sprig, "trunc", &[I, S], None, |_, a| {
        sv(trunc(int(&a[0]), s(&a[1])))
    });
    reg(t, Sprig, "abbrev", &[I, S], None, |_, a| {
        let w = int(&a[0]);
        let st = s(&a[1]);
        if w < 4 || st.chars().count() as i64 <= w {
            return sv(st);
        }
        sv(st.chars().take((w - 3) as usize).collect::<String>() + "...")
    });
    reg(t, Sprig, "abbrevboth", &[I, I, S], None, |_, a| {
        let (l, r, st) = (int(&a[0]).max(0) as usize, int(&a[1]), s(&a[2]));
        let chars: Vec<char> = st.chars().collect();
        if r < 4 || chars.len() as i64 <= r {
            return sv(st);
        }
        let start = l.min(chars.len());
        let rest: String = chars[start..].iter().collect();
        let body = if rest.chars().count() as i64 > r - 3 {
            rest.chars()
                .take((r - 3).max(0) as usize)
                .collect::<String>()
                + "..."
        } else {
            rest
        };
        sv(if start > 0 {
            format!("...{body}")
        } else {
            body
        })
    });
    reg(t, Sprig, "substr", &[I, I, S], None, |_, a| {
        let (st, en, x) = (int(&a[0]), int(&a[1]), s(&a[2]));
        let n = x.len() as i64;
        let st = if st < 0 { 0 } else { st.min(n) };
        let en = if en < 0 || en > n { n } else { en };
        if st > en {
            return sv("");
        }
        sv(byte_slice(x, st as usize, en as usize))
    });
    reg(t, Sprig, "repeat", &[I, S], None, |ex, a| {
        let n = int(&a[0]).max(0) as usize;
        let x = s(&a[1]);
        ex.check_size(n.saturating_mul(x.len()))?;
        sv(x.repeat(n))
    });
    reg(t, Sprig, "contains", &[S, S], None, |_, a| {
        Ok(Value::Bool(s(&a[1]).contains(s(&a[0]))))
    });
    reg(t, Sprig, "hasPrefix", &[S, S], None, |_, a| {
        Ok(Value::Bool(s(&a[1]).starts_with(s(&a[0]))))
    });
    reg(t, Sprig, "hasSuffix", &[S, S], None, |_, a| {
        Ok(Value::Bool(s(&a[1]).ends_with(s(&a[0]))))
    });
    reg(t, Sprig, "quote", &[], Some(A), |_, a| {
        let parts: Vec<String> = a
            .iter()
            .filter(|v| !v.is_nil())
            .map(|v| crate::gotemplate::format::go_quote(&strval(v)))
            .collect();
        sv(parts.join(" "))
    });
    reg(t, Sprig, "squote", &[], Some(A), |_, a| {
        let parts: Vec<String> = a
            .iter()
            .filter(|v| !v.is_nil())
            .map(|v| format!("'{}'", strval(v)))
            .collect();
        sv(parts.join(" "))
    });
    reg(t, Sprig, "cat", &[], Some(A), |_, a| {
        let parts: Vec<String> = a.iter().filter(|v| !v.is_nil()).map(strval).collect();
        sv(parts.join(" "))
    });
    reg(t, Sprig, "indent", &[I, S], None, |ex, a| {
        ex.check_size(indent_size(int(&a[0]), s(&a[1])))?;
        let r = indent(int(&a[0]), s(&a[1]));
        ex.check_size(r.len())?;
        sv(r)
    });
    reg(t, Sprig, "nindent", &[I, S], None, |ex, a| {
        ex.check_size(indent_size(int(&a[0]), s(&a[1])))?;
        let r = format!("\n{}", indent(int(&a[0]), s(&a[1])));
        ex.check_size(r.len())?;
        sv(r)
    });
    reg(t, Sprig, "replace", &[S, S, S], None, |ex, a| {
        let (old, new, src) = (s(&a[0]), s(&a[1]), s(&a[2]));
        let hits = if old.is_empty() {
            src.chars().count() + 1
        } else {
            src.matches(old).count()
        };
        ex.check_size(src.len().saturating_add(hits.saturating_mul(new.len())))?;
        let r = src.replace(old, new);
        ex.check_size(r.len())?;
        sv(r)
    });
    reg(t, Sprig, "plural", &[S, S, I], None, |_, a| {
        sv(if int(&a[2]) == 1 { s(&a[0]) } else { s(&a[1]) })
    });
    reg(t, Sprig, "snakecase", &[S], None, |_, a| {
        sv(snakecase(s(&a[0])))
    });
    reg(t, Sprig, "camelcase", &[S], None, |_, a| {
        sv(camelcase(s(&a[0])))
    });
    reg(t, Sprig, "kebabcase", &[S], None, |_, a| {
        sv(kebabcase(s(&a[0])))
    });
    reg(t, Sprig, "swapcase", &[S], None, |_, a| {
        sv(swapcase(s(&a[0])))
    });
    reg(t, Sprig, "shuffle", &[S], None, |_, a| {
        use rand::seq::SliceRandom;
        let mut c: Vec<char> = s(&a[0]).chars().collect();
        c.shuffle(&mut rand::rng());
        sv(c.into_iter().collect::<String>())
    });
    reg(t, Sprig, "initials", &[S], None, |_, a| {
        sv(s(&a[0])
            .split_whitespace()
            .filter_map(|w| w.chars().next())
            .collect::<String>())
    });
    reg(t, Sprig, "wrap", &[I, S], None, |_, a| {
        sv(wrap(int(&a[0]), s(&a[1]), "\n"))
    });
    reg(t, Sprig, "wrapWith", &[I, S, S], None, |_, a| {
        sv(wrap(int(&a[0]), s(&a[2]), s(&a[1])))
    });
    reg(t, Sprig, "randAlphaNum", &[I], None, |ex, a| {
        rand_string(ex, int(&a[0]), ALNUM)
    });
    reg(t, Sprig, "randAlpha", &[I], None, |ex, a| {
        rand_string(ex, int(&a[0]), ALPHA)
    });
    reg(t, Sprig, "randNumeric", &[I], None, |ex, a| {
        rand_string(ex, int(&a[0]), NUMERIC)
    });
    reg(t, Sprig, "randAscii", &[I], None, |ex, a| {
        let set: Vec<u8> = (32u8..127).collect();
        rand_string(ex, int(&a[0]), &set)
    });
    reg(t, Sprig, "split", &[S, S], None, |_, a| {
        let m: Map = s(&a[1])
            .split(s(&a[0]))
            .enumerate()
            .map(|(i, p)| (format!("_{i}"), Value::str(p)))
            .collect();
        Ok(Value::from(m))
    });
    reg(t, Sprig, "splitn", &[S, I, S], None, |_, a| {
        let n = int(&a[1]);
        let parts: Vec<&str> = if n < 0 {
            s(&a[2]).split(s(&a[0])).collect()
        } else {
            s(&a[2]).splitn(n as usize, s(&a[0])).collect()
        };
        let m: Map = parts
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("_{i}"), Value::str(p)))
            .collect();
        Ok(Value::from(m))
    });
    reg(t, Sprig, "splitList", &[S, S], None, |_, a| {
        Ok(Value::from(
            s(&a[1]).split(s(&a[0])).map(Value::str).collect::<Vec<_>>(),
        ))
    });
    reg(t, Sprig, "join", &[S, A], None, |_, a| {
        let items: Vec<String> = match &a[1] {
            Value::List(l) => l.iter().filter(|v| !v.is_nil()).map(strval).collect(),
            Value::Nil => Vec::new(),
            other => vec![strval(other)],
        };
        sv(items.join(s(&a[0])))
    });
    reg(t, Sprig, "sortAlpha", &[A], None, |_, a| {
        let mut items: Vec<String> = match &a[0] {
            Value::List(l) => l.iter().map(strval).collect(),
            Value::Nil => Vec::new(),
            other => vec![strval(other)],
        };
        items.sort();
        Ok(Value::from(
            items.into_iter().map(Value::str).collect::<Vec<_>>(),
        ))
    });
    reg(t, Sprig, "seq", &[], Some(I), |ex, a| {
        let nums: Vec<i64> = a.iter().map(int).collect();
        let (start, step, end) = match nums.as_slice() {
            [] => return sv(""),
            [e] => (1, if *e >= 1 { 1 } else { -1 }, *e),
            [s0, e] => (*s0, if e >= s0 { 1 } else { -1 }, *e),
            [s0, st, e, ..] => (*s0, *st, *e),
        };
        if step == 0 || (step > 0 && start > end) || (step < 0 && start < end) {
            return sv("");
        }
        let count = ((end - start) / step).unsigned_abs() as usize + 1;
        ex.check_list(count)?;
        let mut out = Vec::with_capacity(count);
        let mut i = start;
        while (step > 0 && i <= end) || (step < 0 && i >= end) {
            out.push(i.to_string());
            i += step;
        }
        sv(out.join(" "))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_helpers() {
        assert_eq!(title("hello world-foo bar_baz"), "Hello World-Foo Bar_baz");
        assert_eq!(trunc(5, "abcdefgh"), "abcde");
        assert_eq!(trunc(-3, "abcdefgh"), "fgh");
        assert_eq!(indent(2, "a\nb"), "  a\n  b");
        assert_eq!(snakecase("FirstName"), "first_name");
        assert_eq!(kebabcase("FirstName"), "first-name");
        assert_eq!(camelcase("http_server"), "HttpServer");
        assert_eq!(swapcase("aB"), "Ab");
        assert_eq!(wrap(5, "aaa bbb ccc", "\n"), "aaa\nbbb\nccc");
    }
}

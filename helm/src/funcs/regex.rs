//! Sprig regular expressions (Go RE2 syntax, which Rust's `regex` shares).

use std::collections::HashMap;

use crate::gotemplate::funcs::{Entry, Family::Sprig, P, reg};
use crate::gotemplate::value::Value;

fn re(p: &Value) -> Result<regex::Regex, String> {
    let pat = p.as_str().unwrap_or("");
    regex::RegexBuilder::new(pat)
        .size_limit(1 << 22)
        .build()
        .map_err(|e| format!("error parsing regexp: {e}"))
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn n(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        _ => -1,
    }
}

/// Go's `Regexp.ReplaceAllString` expansion: `$1`, `${name}`; Rust's syntax is the same.
fn replace_all(r: &regex::Regex, src: &str, repl: &str) -> String {
    r.replace_all(src, repl).into_owned()
}

pub(crate) fn register(t: &mut HashMap<&'static str, Entry>) {
    use P::*;
    for name in ["regexMatch", "mustRegexMatch"] {
        reg(t, Sprig, name, &[S, S], None, |_, a| {
            Ok(Value::Bool(re(&a[0])?.is_match(s(&a[1]))))
        });
    }
    for name in ["regexFind", "mustRegexFind"] {
        reg(t, Sprig, name, &[S, S], None, |_, a| {
            Ok(Value::str(
                re(&a[0])?.find(s(&a[1])).map(|m| m.as_str()).unwrap_or(""),
            ))
        });
    }
    for name in ["regexFindAll", "mustRegexFindAll"] {
        reg(t, Sprig, name, &[S, S, I], None, |_, a| {
            let r = re(&a[0])?;
            let limit = n(&a[2]);
            let it = r.find_iter(s(&a[1])).map(|m| Value::str(m.as_str()));
            let v: Vec<Value> = if limit < 0 {
                it.collect()
            } else {
                it.take(limit as usize).collect()
            };
            Ok(Value::from(v))
        });
    }
    for name in ["regexReplaceAll", "mustRegexReplaceAll"] {
        reg(t, Sprig, name, &[S, S, S], None, |_, a| {
            Ok(Value::str(replace_all(&re(&a[0])?, s(&a[1]), s(&a[2]))))
        });
    }
    for name in ["regexReplaceAllLiteral", "mustRegexReplaceAllLiteral"] {
        reg(t, Sprig, name, &[S, S, S], None, |_, a| {
            Ok(Value::str(
                re(&a[0])?.replace_all(s(&a[1]), regex::NoExpand(s(&a[2]))),
            ))
        });
    }
    for name in ["regexSplit", "mustRegexSplit"] {
        reg(t, Sprig, name, &[S, S, I], None, |_, a| {
            let r = re(&a[0])?;
            let limit = n(&a[2]);
            let v: Vec<Value> = if limit < 0 {
                r.split(s(&a[1])).map(Value::str).collect()
            } else if limit == 0 {
                Vec::new()
            } else {
                r.splitn(s(&a[1]), limit as usize).map(Value::str).collect()
            };
            Ok(Value::from(v))
        });
    }
    reg(t, Sprig, "regexQuoteMeta", &[S], None, |_, a| {
        Ok(Value::str(regex::escape(s(&a[0]))))
    });
}

//! Sprig list functions.

use std::collections::HashMap;

use super::conversion::{as_list, to_i64};
use crate::gotemplate::funcs::{Entry, Family::Sprig, P, reg};
use crate::gotemplate::value::{Value, deep_equal};

fn list(v: Vec<Value>) -> Result<Value, String> {
    Ok(Value::from(v))
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        _ => 0,
    }
}

fn contains(l: &[Value], v: &Value) -> bool {
    l.iter().any(|x| deep_equal(x, v))
}

pub(crate) fn register(t: &mut HashMap<&'static str, Entry>) {
    use P::*;
    reg(t, Sprig, "list", &[], Some(A), |_, a| list(a.to_vec()));
    reg(t, Sprig, "tuple", &[], Some(A), |_, a| list(a.to_vec()));
    for name in ["append", "push", "mustAppend", "mustPush"] {
        reg(t, Sprig, name, &[A, A], None, |_, a| {
            let mut l = as_list(&a[0], "append")?;
            l.push(a[1].clone());
            list(l)
        });
    }
    for name in ["prepend", "mustPrepend"] {
        reg(t, Sprig, name, &[A, A], None, |_, a| {
            let mut l = as_list(&a[0], "prepend")?;
            l.insert(0, a[1].clone());
            list(l)
        });
    }
    for name in ["first", "mustFirst"] {
        reg(t, Sprig, name, &[A], None, |_, a| {
            Ok(as_list(&a[0], "find first")?
                .first()
                .cloned()
                .unwrap_or_default())
        });
    }
    for name in ["last", "mustLast"] {
        reg(t, Sprig, name, &[A], None, |_, a| {
            Ok(as_list(&a[0], "find last")?
                .last()
                .cloned()
                .unwrap_or_default())
        });
    }
    for name in ["rest", "mustRest"] {
        reg(t, Sprig, name, &[A], None, |_, a| {
            let l = as_list(&a[0], "find rest")?;
            if l.is_empty() {
                Ok(Value::Nil)
            } else {
                list(l[1..].to_vec())
            }
        });
    }
    for name in ["initial", "mustInitial"] {
        reg(t, Sprig, name, &[A], None, |_, a| {
            let l = as_list(&a[0], "find initial")?;
            if l.is_empty() {
                Ok(Value::Nil)
            } else {
                list(l[..l.len() - 1].to_vec())
            }
        });
    }
    for name in ["reverse", "mustReverse"] {
        reg(t, Sprig, name, &[A], None, |_, a| {
            let mut l = as_list(&a[0], "find reverse")?;
            l.reverse();
            list(l)
        });
    }
    for name in ["uniq", "mustUniq"] {
        reg(t, Sprig, name, &[A], None, |_, a| {
            let mut out: Vec<Value> = Vec::new();
            for v in as_list(&a[0], "find uniq")? {
                if !contains(&out, &v) {
                    out.push(v);
                }
            }
            list(out)
        });
    }
    for name in ["compact", "mustCompact"] {
        reg(t, Sprig, name, &[A], None, |_, a| {
            list(
                as_list(&a[0], "compact")?
                    .into_iter()
                    .filter(|v| v.truthy())
                    .collect(),
            )
        });
    }
    for name in ["without", "mustWithout"] {
        reg(t, Sprig, name, &[A], Some(A), |_, a| {
            let omit = &a[1..];
            list(
                as_list(&a[0], "find without")?
                    .into_iter()
                    .filter(|v| !contains(omit, v))
                    .collect(),
            )
        });
    }
    for name in ["has", "mustHas"] {
        reg(t, Sprig, name, &[A, A], None, |_, a| match &a[1] {
            Value::Nil => Ok(Value::Bool(false)),
            other => Ok(Value::Bool(contains(&as_list(other, "find has")?, &a[0]))),
        });
    }
    for name in ["slice", "mustSlice"] {
        // sprig's slice shadows Go's builtin in Helm's function map
        let _ = name;
    }
    reg(t, Sprig, "concat", &[], Some(A), |_, a| {
        let mut out = Vec::new();
        for l in a {
            out.extend(as_list(l, "concat")?);
        }
        list(out)
    });
    reg(t, Sprig, "until", &[I], None, |ex, a| {
        let n = int(&a[0]);
        let (step, n) = if n < 0 { (-1, n) } else { (1, n) };
        ex.check_list(n.unsigned_abs() as usize)?;
        let mut out = Vec::new();
        let mut i = 0;
        while i != n {
            out.push(Value::Int(i));
            i += step;
        }
        list(out)
    });
    reg(t, Sprig, "untilStep", &[I, I, I], None, |ex, a| {
        let (start, stop, step) = (int(&a[0]), int(&a[1]), int(&a[2]));
        let mut out = Vec::new();
        if step == 0 || (step > 0 && start >= stop) || (step < 0 && start <= stop) {
            return list(out);
        }
        ex.check_list(((stop - start) / step).unsigned_abs() as usize)?;
        let mut i = start;
        while (step > 0 && i < stop) || (step < 0 && i > stop) {
            out.push(Value::Int(i));
            i += step;
        }
        list(out)
    });
    for name in ["chunk", "mustChunk"] {
        reg(t, Sprig, name, &[I, A], None, |_, a| {
            let size = int(&a[0]).max(1) as usize;
            let l = as_list(&a[1], "chunk")?;
            list(l.chunks(size).map(|c| Value::from(c.to_vec())).collect())
        });
    }
    reg(t, Sprig, "sortAlphaNum", &[A], None, |_, a| {
        let mut l = as_list(&a[0], "sort")?;
        l.sort_by_key(|v| v.go_string());
        list(l)
    });
    reg(t, Sprig, "sum", &[], Some(A), |_, a| {
        Ok(Value::Int(a.iter().map(to_i64).sum()))
    });
}

//! Sprig dictionary functions. Dicts are shared: `set`/`unset`/`merge` change them in place.

use std::collections::HashMap;

use super::conversion::{empty, strval};
use crate::gotemplate::funcs::{Entry, Family::Sprig, P, reg};
use crate::gotemplate::value::{Map, Value};

fn key(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_default()
}

/// mergo.Merge without override: `dst` keeps its non-empty values; maps merge recursively.
pub fn merge_into(dst: &Value, src: &Value, overwrite: bool) {
    let (Value::Map(d), Value::Map(s)) = (dst, src) else {
        return;
    };
    if std::rc::Rc::ptr_eq(d, s) {
        return;
    }
    let src_entries: Vec<(String, Value)> = s
        .borrow()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, sv) in src_entries {
        let existing = d.borrow().get(&k).cloned();
        match existing {
            Some(dv @ Value::Map(_)) if matches!(sv, Value::Map(_)) => {
                merge_into(&dv, &sv, overwrite)
            }
            Some(dv) => {
                let dst_empty_scalar =
                    empty(&dv) && !matches!(dv, Value::Map(_) | Value::List(_)) && !sv.is_nil();
                let dst_empty_composite =
                    empty(&dv) && matches!(dv, Value::Map(_) | Value::List(_)) && !empty(&sv);
                if (overwrite && !empty(&sv)) || dst_empty_scalar || dst_empty_composite {
                    d.borrow_mut().insert(k, sv);
                }
            }
            None => {
                d.borrow_mut().insert(k, sv);
            }
        }
    }
}

pub(crate) fn register(t: &mut HashMap<&'static str, Entry>) {
    use P::*;
    reg(t, Sprig, "dict", &[], Some(A), |_, a| {
        let mut m = Map::new();
        for pair in a.chunks(2) {
            let v = pair.get(1).cloned().unwrap_or_else(|| Value::str(""));
            m.insert(strval(&pair[0]), v);
        }
        Ok(Value::from(m))
    });
    reg(t, Sprig, "set", &[M, S, A], None, |_, a| {
        if let Value::Map(m) = &a[0] {
            m.borrow_mut().insert(key(&a[1]), a[2].clone());
        }
        Ok(a[0].clone())
    });
    reg(t, Sprig, "unset", &[M, S], None, |_, a| {
        if let Value::Map(m) = &a[0] {
            m.borrow_mut().remove(&key(&a[1]));
        }
        Ok(a[0].clone())
    });
    reg(t, Sprig, "hasKey", &[M, S], None, |_, a| {
        Ok(Value::Bool(
            matches!(&a[0], Value::Map(m) if m.borrow().contains_key(&key(&a[1]))),
        ))
    });
    reg(t, Sprig, "get", &[M, S], None, |_, a| match &a[0] {
        Value::Map(m) => Ok(m
            .borrow()
            .get(&key(&a[1]))
            .cloned()
            .unwrap_or_else(|| Value::str(""))),
        _ => Ok(Value::str("")),
    });
    reg(t, Sprig, "pluck", &[S], Some(M), |_, a| {
        let k = key(&a[0]);
        let out: Vec<Value> = a[1..]
            .iter()
            .filter_map(|d| match d {
                Value::Map(m) => m.borrow().get(&k).cloned(),
                _ => None,
            })
            .collect();
        Ok(Value::from(out))
    });
    reg(t, Sprig, "keys", &[], Some(M), |_, a| {
        let mut out = Vec::new();
        for d in a {
            if let Value::Map(m) = d {
                out.extend(m.borrow().keys().map(Value::str));
            }
        }
        Ok(Value::from(out))
    });
    reg(t, Sprig, "values", &[M], None, |_, a| match &a[0] {
        Value::Map(m) => Ok(Value::from(
            m.borrow().values().cloned().collect::<Vec<_>>(),
        )),
        _ => Ok(Value::from(Vec::new())),
    });
    reg(t, Sprig, "pick", &[M], Some(S), |_, a| {
        let mut out = Map::new();
        if let Value::Map(m) = &a[0] {
            let m = m.borrow();
            for k in &a[1..] {
                if let Some(v) = m.get(&key(k)) {
                    out.insert(key(k), v.clone());
                }
            }
        }
        Ok(Value::from(out))
    });
    reg(t, Sprig, "omit", &[M], Some(S), |_, a| {
        let mut out = Map::new();
        if let Value::Map(m) = &a[0] {
            let omit: Vec<String> = a[1..].iter().map(key).collect();
            for (k, v) in m.borrow().iter() {
                if !omit.contains(k) {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        Ok(Value::from(out))
    });
    for name in ["merge", "mustMerge"] {
        reg(t, Sprig, name, &[M], Some(M), |_, a| {
            for s in &a[1..] {
                merge_into(&a[0], s, false);
            }
            Ok(a[0].clone())
        });
    }
    for name in ["mergeOverwrite", "mustMergeOverwrite"] {
        reg(t, Sprig, name, &[M], Some(M), |_, a| {
            for s in &a[1..] {
                merge_into(&a[0], s, true);
            }
            Ok(a[0].clone())
        });
    }
    for name in ["deepCopy", "mustDeepCopy"] {
        reg(t, Sprig, name, &[A], None, |_, a| Ok(a[0].deep_copy()));
    }
    reg(t, Sprig, "dig", &[A], Some(A), |_, a| {
        // dig "a" "b" default dict
        if a.len() < 3 {
            return Err("dig needs at least three arguments".into());
        }
        let dict = &a[a.len() - 1];
        let default = &a[a.len() - 2];
        let mut cur = dict.clone();
        for k in &a[..a.len() - 2] {
            let next = match &cur {
                Value::Map(m) => m.borrow().get(&strval(k)).cloned(),
                _ => None,
            };
            match next {
                Some(v) => cur = v,
                None => return Ok(default.clone()),
            }
        }
        Ok(cur)
    });
}

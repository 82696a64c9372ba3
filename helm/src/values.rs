//! Values: Helm's `--set` syntax (strvals), merging of user values, and coalescing with chart defaults.

use std::path::PathBuf;

use serde_json::{Map, Value as J};

use crate::chart::Chart;
use crate::error::HelmError;

/// Largest list index `--set a[N]=x` accepts (as Helm).
pub const MAX_INDEX: usize = 65536;

/// User-supplied values as the `helm` CLI collects them.
#[derive(Debug, Clone, Default)]
pub struct ValueOptions {
    /// `-f/--values` files, in order.
    pub values_files: Vec<PathBuf>,
    /// `--set` expressions.
    pub set: Vec<String>,
    /// `--set-string` expressions.
    pub set_string: Vec<String>,
    /// `--set-file` expressions (`key=path`).
    pub set_file: Vec<String>,
}

impl ValueOptions {
    /// Merges in Helm's order: values files, then `--set`, `--set-string`, `--set-file`.
    pub fn merge(&self) -> Result<Map<String, J>, HelmError> {
        let mut base = Map::new();
        for f in &self.values_files {
            let text = std::fs::read_to_string(f)
                .map_err(|e| HelmError::io(format!("reading values file {}", f.display()), e))?;
            let v = crate::yaml::yaml_to_json_go(&text).map_err(|e| {
                HelmError::Values(format!(
                    "failed to parse {}: error converting YAML to JSON: {e}",
                    f.display()
                ))
            })?;
            match v {
                J::Object(m) => base = merge_maps(base, m),
                J::Null => {}
                _ => {
                    return Err(HelmError::Values(format!(
                        "failed to parse {}: error unmarshaling JSON: json: cannot unmarshal into Go value of type map[string]interface {{}}",
                        f.display()
                    )));
                }
            }
        }
        for s in &self.set {
            parse_into(s, &mut base, false)
                .map_err(|e| HelmError::Values(format!("failed parsing --set data: {e}")))?;
        }
        for s in &self.set_string {
            parse_into(s, &mut base, true)
                .map_err(|e| HelmError::Values(format!("failed parsing --set-string data: {e}")))?;
        }
        for s in &self.set_file {
            parse_into_file(s, &mut base, &|p| {
                std::fs::read_to_string(p).map_err(|e| format!("reading {p}: {e}"))
            })
            .map_err(|e| HelmError::Values(format!("failed parsing --set-file data: {e}")))?;
        }
        Ok(base)
    }
}

/// Helm's `mergeMaps`: `b` over `a`, maps merged recursively.
pub fn merge_maps(mut a: Map<String, J>, b: Map<String, J>) -> Map<String, J> {
    for (k, v) in b {
        match (a.get_mut(&k), v) {
            (Some(J::Object(am)), J::Object(bm)) => {
                let merged = merge_maps(std::mem::take(am), bm);
                *am = merged;
            }
            (_, v) => {
                a.insert(k, v);
            }
        }
    }
    a
}

/// Parses one `--set` expression into `dest`. `string_only` is `--set-string`.
pub fn parse_into(expr: &str, dest: &mut Map<String, J>, string_only: bool) -> Result<(), String> {
    let mut p = StrvalsParser {
        chars: expr.chars().collect(),
        pos: 0,
        mode: if string_only { Mode::Str } else { Mode::Typed },
        reader: None,
    };
    p.parse(dest)
}

/// Parses one `--set-file` expression (`key=path`) into `dest`, reading files with `reader`.
pub fn parse_into_file(
    expr: &str,
    dest: &mut Map<String, J>,
    reader: &dyn Fn(&str) -> Result<String, String>,
) -> Result<(), String> {
    let mut p = StrvalsParser {
        chars: expr.chars().collect(),
        pos: 0,
        mode: Mode::File,
        reader: Some(reader),
    };
    p.parse(dest)
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Typed,
    Str,
    File,
}

/// Reads a `--set-file` path.
type FileReader<'a> = &'a dyn Fn(&str) -> Result<String, String>;

struct StrvalsParser<'a> {
    chars: Vec<char>,
    pos: usize,
    mode: Mode,
    reader: Option<FileReader<'a>>,
}

/// Helm's `typedVal`.
fn typed_val(v: &str, string_only: bool) -> J {
    if string_only {
        return J::String(v.to_string());
    }
    if v.eq_ignore_ascii_case("true") {
        return J::Bool(true);
    }
    if v.eq_ignore_ascii_case("false") {
        return J::Bool(false);
    }
    if v.eq_ignore_ascii_case("null") {
        return J::Null;
    }
    if v == "0" {
        return J::from(0i64);
    }
    if !v.is_empty()
        && !v.starts_with('0')
        && let Ok(i) = v.parse::<i64>()
    {
        return J::from(i);
    }
    J::String(v.to_string())
}

impl StrvalsParser<'_> {
    /// Reads until one of `stops`; returns the text and the stop char (None at end).
    fn run_until(&mut self, stops: &[char]) -> (String, Option<char>) {
        let mut out = String::new();
        while self.pos < self.chars.len() {
            let c = self.chars[self.pos];
            self.pos += 1;
            if stops.contains(&c) {
                return (out, Some(c));
            }
            if c == '\\' {
                if self.pos < self.chars.len() {
                    out.push(self.chars[self.pos]);
                    self.pos += 1;
                }
                continue;
            }
            out.push(c);
        }
        (out, None)
    }

    fn value(&mut self, s: &str) -> Result<J, String> {
        match self.mode {
            Mode::Typed => Ok(typed_val(s, false)),
            Mode::Str => Ok(typed_val(s, true)),
            Mode::File => match self.reader {
                Some(r) => Ok(J::String(r(s)?)),
                None => Ok(J::String(s.to_string())),
            },
        }
    }

    fn parse(&mut self, dest: &mut Map<String, J>) -> Result<(), String> {
        while self.pos < self.chars.len() {
            self.key(dest)?;
        }
        Ok(())
    }

    fn key(&mut self, data: &mut Map<String, J>) -> Result<(), String> {
        let (k, stop) = self.run_until(&['=', '[', ',', '.']);
        match stop {
            None => {
                if k.is_empty() {
                    return Ok(());
                }
                Err(format!("key {k:?} has no value"))
            }
            Some(',') => Err(format!("key {k:?} has no value (cannot end with ,)")),
            Some('=') => {
                if self.mode != Mode::File && self.chars.get(self.pos) == Some(&'{') {
                    self.pos += 1;
                    let list = self.list_value()?;
                    data.insert(k.clone(), J::Array(list));
                    // consume a trailing comma
                    match self.chars.get(self.pos) {
                        Some(',') => self.pos += 1,
                        None => {}
                        Some(c) => {
                            return Err(format!(
                                "key {k:?} has invalid character {c:?} after list"
                            ));
                        }
                    }
                    return Ok(());
                }
                let (v, _) = self.run_until(&[',']);
                let val = self.value(&v)?;
                data.insert(k, val);
                Ok(())
            }
            Some('.') => {
                if k.is_empty() {
                    return Err("key map with no name".into());
                }
                let mut inner = match data.remove(&k) {
                    Some(J::Object(m)) => m,
                    _ => Map::new(),
                };
                let r = self.key(&mut inner);
                data.insert(k, J::Object(inner));
                r
            }
            Some('[') => {
                if k.is_empty() {
                    return Err("key map with no name".into());
                }
                let mut list = match data.remove(&k) {
                    Some(J::Array(a)) => a,
                    _ => Vec::new(),
                };
                let r = self.list_item(&mut list);
                data.insert(k, J::Array(list));
                r
            }
            Some(_) => Ok(()),
        }
    }

    fn index(&mut self) -> Result<usize, String> {
        let (v, stop) = self.run_until(&[']']);
        if stop.is_none() {
            return Err("unexpected end of input looking for ]".into());
        }
        let i: i64 = v
            .trim()
            .parse()
            .map_err(|_| format!("invalid index {v:?}"))?;
        if i < 0 {
            return Err(format!("negative {i} index not allowed"));
        }
        if i as usize > MAX_INDEX {
            return Err(format!(
                "index of {i} is greater than maximum supported index {MAX_INDEX}"
            ));
        }
        Ok(i as usize)
    }

    fn list_item(&mut self, list: &mut Vec<J>) -> Result<(), String> {
        let i = self.index()?;
        while list.len() <= i {
            list.push(J::Null);
        }
        let next = self.chars.get(self.pos).copied();
        self.pos += 1;
        match next {
            None => Err("unexpected end of input after index".into()),
            Some('=') => {
                if self.mode != Mode::File && self.chars.get(self.pos) == Some(&'{') {
                    self.pos += 1;
                    list[i] = J::Array(self.list_value()?);
                    if self.chars.get(self.pos) == Some(&',') {
                        self.pos += 1;
                    }
                    return Ok(());
                }
                let (v, _) = self.run_until(&[',']);
                list[i] = self.value(&v)?;
                Ok(())
            }
            Some('[') => {
                let mut inner = match std::mem::take(&mut list[i]) {
                    J::Array(a) => a,
                    _ => Vec::new(),
                };
                let r = self.list_item(&mut inner);
                list[i] = J::Array(inner);
                r
            }
            Some('.') => {
                let mut inner = match std::mem::take(&mut list[i]) {
                    J::Object(m) => m,
                    _ => Map::new(),
                };
                let r = self.key(&mut inner);
                list[i] = J::Object(inner);
                r
            }
            Some(c) => Err(format!("parse error: unexpected {c:?} after index")),
        }
    }

    fn list_value(&mut self) -> Result<Vec<J>, String> {
        let mut out = Vec::new();
        loop {
            let (v, stop) = self.run_until(&[',', '}']);
            match stop {
                None => return Err("list must terminate with '}'".into()),
                Some('}') => {
                    if !(v.is_empty() && out.is_empty()) {
                        out.push(self.value(&v)?);
                    }
                    return Ok(out);
                }
                _ => out.push(self.value(&v)?),
            }
        }
    }
}

/// Makes every number a float64, as values that went through Go's `encoding/json` are (what Fleet
/// hands Helm): templates then print `1000000` as `1e+06` exactly like Helm does.
pub fn to_go_numbers(v: J) -> J {
    match v {
        J::Number(n) => serde_json::Number::from_f64(n.as_f64().unwrap_or(0.0))
            .map(J::Number)
            .unwrap_or(J::Null),
        J::Array(a) => J::Array(a.into_iter().map(to_go_numbers).collect()),
        J::Object(o) => J::Object(o.into_iter().map(|(k, v)| (k, to_go_numbers(v))).collect()),
        other => other,
    }
}

fn is_table(v: &J) -> bool {
    v.is_object()
}

/// Helm's `CoalesceValues`: user values over chart defaults, subcharts and globals included.
pub fn coalesce_values(chart: &Chart, user: &Map<String, J>) -> Result<Map<String, J>, HelmError> {
    let mut dest = user.clone();
    coalesce(chart, &mut dest)?;
    Ok(dest)
}

fn coalesce(chart: &Chart, dest: &mut Map<String, J>) -> Result<(), HelmError> {
    coalesce_chart_values(chart, dest);
    coalesce_deps(chart, dest)
}

fn coalesce_deps(chart: &Chart, dest: &mut Map<String, J>) -> Result<(), HelmError> {
    for sub in &chart.dependencies {
        let name = sub.name().to_string();
        match dest.get(&name) {
            None => {
                dest.insert(name.clone(), J::Object(Map::new()));
            }
            Some(v) if !is_table(v) => {
                return Err(HelmError::Values(format!("type mismatch on {name}: {v}")));
            }
            _ => {}
        }
        let globals = dest.get("global").cloned();
        if let Some(J::Object(mut dv)) = dest.remove(&name) {
            coalesce_globals(&mut dv, globals.as_ref());
            coalesce(sub, &mut dv)?;
            dest.insert(name, J::Object(dv));
        }
    }
    Ok(())
}

fn coalesce_globals(dest: &mut Map<String, J>, src_global: Option<&J>) {
    let mut dg = match dest.get("global") {
        None => Map::new(),
        Some(J::Object(m)) => m.clone(),
        Some(_) => return,
    };
    let sg = match src_global {
        None => Map::new(),
        Some(J::Object(m)) => m.clone(),
        Some(_) => return,
    };
    for (k, v) in sg {
        if let J::Object(vv) = &v {
            let mut vv = vv.clone();
            match dg.get(&k) {
                None => {
                    dg.insert(k, J::Object(vv));
                }
                Some(J::Object(destv)) => {
                    coalesce_tables(&mut vv, destv);
                    dg.insert(k, J::Object(vv));
                }
                Some(_) => {}
            }
        } else if dg.get(&k).is_some_and(is_table) {
            // a table in the subchart wins over a scalar global
        } else {
            dg.insert(k, v);
        }
    }
    dest.insert("global".into(), J::Object(dg));
}

/// Chart defaults under `v`: nulls in `v` delete keys, tables merge, missing keys are copied.
fn coalesce_chart_values(chart: &Chart, v: &mut Map<String, J>) {
    for (key, val) in &chart.values {
        match v.get_mut(key) {
            Some(J::Null) => {
                v.remove(key);
            }
            Some(J::Object(dest)) => {
                if let J::Object(src) = val {
                    coalesce_tables(dest, src);
                }
            }
            Some(_) => {}
            None => {
                v.insert(key.clone(), val.clone());
            }
        }
    }
}

/// Helm's `coalesceTablesFullKey`: `dst` is authoritative; nulls in `dst` delete.
pub fn coalesce_tables(dst: &mut Map<String, J>, src: &Map<String, J>) {
    for (key, val) in src {
        match dst.get_mut(key) {
            Some(J::Null) => {
                dst.remove(key);
            }
            None => {
                dst.insert(key.clone(), val.clone());
            }
            Some(J::Object(dv)) => {
                if let J::Object(sv) = val {
                    coalesce_tables(dv, sv);
                }
            }
            Some(_) => {}
        }
    }
}

/// Looks up a dotted path (`a.b.c`) in values.
pub fn path_value<'a>(m: &'a Map<String, J>, path: &str) -> Option<&'a J> {
    let mut parts = path.split('.');
    let first = parts.next()?;
    let mut cur = m.get(first)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// Looks up a table at a dotted path.
pub fn table<'a>(m: &'a Map<String, J>, path: &str) -> Option<&'a Map<String, J>> {
    path_value(m, path).and_then(J::as_object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(exprs: &[&str]) -> J {
        let mut m = Map::new();
        for e in exprs {
            parse_into(e, &mut m, false).unwrap();
        }
        J::Object(m)
    }

    #[test]
    fn strvals() {
        assert_eq!(set(&["a.b=c,d=1"]), json!({"a": {"b": "c"}, "d": 1}));
        assert_eq!(
            set(&["a=true,b=null,c=0,d=012,e=1.5"]),
            json!({"a": true, "b": null, "c": 0, "d": "012", "e": "1.5"})
        );
        assert_eq!(set(&["a={x,y}"]), json!({"a": ["x", "y"]}));
        assert_eq!(set(&["a[1].b=x"]), json!({"a": [null, {"b": "x"}]}));
        assert_eq!(set(&["a\\.b=c\\,d"]), json!({"a.b": "c,d"}));
        assert_eq!(set(&["a.b=1", "a.c=2"]), json!({"a": {"b": 1, "c": 2}}));
        let mut m = Map::new();
        assert!(parse_into("name", &mut m, false).is_err());
        assert!(parse_into("a[70000]=1", &mut m, false).is_err());
        let mut m = Map::new();
        parse_into("a=1", &mut m, true).unwrap();
        assert_eq!(J::Object(m), json!({"a": "1"}));
    }

    #[test]
    fn coalescing_deletes_nulls() {
        let mut dst = json!({"a": null, "b": {"c": null}})
            .as_object()
            .unwrap()
            .clone();
        let src = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": 4})
            .as_object()
            .unwrap()
            .clone();
        coalesce_tables(&mut dst, &src);
        assert_eq!(J::Object(dst), json!({"b": {"d": 3}, "e": 4}));
    }
}

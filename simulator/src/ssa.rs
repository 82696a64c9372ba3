//! Field ownership (`metadata.managedFields`, FieldsV1) and server-side apply, following the
//! structured-merge-diff rules kube-apiserver uses: every write records which manager set which
//! fields; an apply that changes a field another manager owns conflicts unless forced; fields a
//! manager stops applying are removed when nobody else owns them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::patch::{ListType, Shape};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    Field(String),
    /// An associative-list item, by its key fields as canonical JSON (`{"name":"nginx"}`).
    Key(String),
    /// A set-list item, by its value as JSON.
    Value(String),
    Index(usize),
}

pub type FieldPath = Vec<PathElement>;
pub type FieldSet = BTreeSet<FieldPath>;

impl PathElement {
    fn encode(&self) -> String {
        match self {
            PathElement::Field(f) => format!("f:{f}"),
            PathElement::Key(k) => format!("k:{k}"),
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Option<PathElement> {
        let (prefix, rest) = s.split_at_checked(2)?;
        Some(match prefix {
            "f:" => PathElement::Field(rest.to_string()),
            "k:" => PathElement::Key(rest.to_string()),
            "v:" => PathElement::Value(rest.to_string()),
            "i:" => PathElement::Index(rest.parse().ok()?),
            _ => return None,
        })
    }
}

/// A path as kube-apiserver prints it in conflicts: `.spec.containers[name="nginx"].image`.
pub fn path_string(path: &FieldPath) -> String {
    let mut out = String::new();
    for el in path {
        match el {
            PathElement::Field(f) => {
                out.push('.');
                out.push_str(f);
            }
            PathElement::Key(k) => {
                let parts: Vec<String> = serde_json::from_str::<Map<String, Value>>(k)
                    .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                    .unwrap_or_default();
                out.push_str(&format!("[{}]", parts.join(",")));
            }
            PathElement::Value(v) => out.push_str(&format!("[={v}]")),
            PathElement::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Which part of an object a write covers: the main resource (without status when the kind has a
/// status subresource) or the status subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    All,
    WithoutStatus,
    StatusOnly,
}

const IGNORED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

/// Owned paths of an object with the value at each (None for associative-list item nodes).
pub fn collect<'v>(
    obj: &'v Value,
    shape: Shape<'v>,
    scope: Scope,
) -> BTreeMap<FieldPath, Option<&'v Value>> {
    collect_where(obj, shape, scope, &|_, _| true)
}

/// [`collect`] of the top-level fields (and, within `metadata`, the metadata fields) for
/// which `include(field, metadata field)` holds.
fn collect_where<'v>(
    obj: &'v Value,
    shape: Shape<'v>,
    scope: Scope,
    include: &dyn Fn(&str, Option<&str>) -> bool,
) -> BTreeMap<FieldPath, Option<&'v Value>> {
    let mut out = BTreeMap::new();
    let Value::Object(map) = obj else { return out };
    for (k, v) in map {
        let keep = match k.as_str() {
            "apiVersion" | "kind" => false,
            "status" => scope != Scope::WithoutStatus,
            _ => scope != Scope::StatusOnly,
        };
        if !keep || (k != "metadata" && !include(k, None)) {
            continue;
        }
        let child = shape.field(k, true);
        if k == "metadata" {
            if let Value::Object(meta) = v {
                for (mk, mv) in meta {
                    if IGNORED_METADATA.contains(&mk.as_str()) || !include(k, Some(mk)) {
                        continue;
                    }
                    let path = vec![
                        PathElement::Field(k.clone()),
                        PathElement::Field(mk.clone()),
                    ];
                    walk(mv, child.field(mk, false), path, &mut out);
                }
            }
            continue;
        }
        walk(v, child, vec![PathElement::Field(k.clone())], &mut out);
    }
    out
}

fn key_element(item: &Value, keys: &[String]) -> Option<String> {
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    let mut m = Map::new();
    for k in sorted {
        if let Some(v) = item.get(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    if m.is_empty() {
        return None;
    }
    Some(Value::Object(m).to_string())
}

fn walk<'v>(
    v: &'v Value,
    shape: Shape<'v>,
    path: FieldPath,
    out: &mut BTreeMap<FieldPath, Option<&'v Value>>,
) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                let mut p = path.clone();
                p.push(PathElement::Field(k.clone()));
                walk(child, shape.field(k, false), p, out);
            }
        }
        Value::Array(items) => match shape.list_type() {
            ListType::Map(keys) if items.iter().all(|i| key_element(i, &keys).is_some()) => {
                if items.is_empty() {
                    out.insert(path, Some(v));
                    return;
                }
                for item in items {
                    let Some(key) = key_element(item, &keys) else {
                        continue;
                    };
                    let mut p = path.clone();
                    p.push(PathElement::Key(key));
                    out.insert(p.clone(), None);
                    if let Value::Object(fields) = item {
                        for (k, child) in fields {
                            let mut cp = p.clone();
                            cp.push(PathElement::Field(k.clone()));
                            walk(child, shape.items().field(k, false), cp, out);
                        }
                    }
                }
            }
            ListType::Set if !items.is_empty() => {
                for item in items {
                    let mut p = path.clone();
                    p.push(PathElement::Value(item.to_string()));
                    out.insert(p, Some(item));
                }
            }
            _ => {
                out.insert(path, Some(v));
            }
        },
        _ => {
            out.insert(path, Some(v));
        }
    }
}

/// FieldsV1 JSON of a field set.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for el in path {
            let entry = node.entry(el.encode()).or_insert_with(|| json!({}));
            let Value::Object(next) = entry else { break };
            node = next;
        }
    }
    fn mark(node: &mut Map<String, Value>, path: &[PathElement]) {
        match path.split_first() {
            None => {
                if node.keys().any(|k| k != ".") {
                    node.insert(".".to_string(), json!({}));
                }
            }
            Some((el, rest)) => {
                if let Some(Value::Object(next)) = node.get_mut(&el.encode()) {
                    mark(next, rest);
                }
            }
        }
    }
    for path in set {
        mark(&mut root, path);
    }
    Value::Object(root)
}

/// The field set a FieldsV1 JSON describes.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn rec(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
        let Value::Object(map) = v else { return };
        if map.is_empty() {
            out.insert(path.clone());
            return;
        }
        for (k, child) in map {
            if k == "." {
                out.insert(path.clone());
                continue;
            }
            if let Some(el) = PathElement::decode(k) {
                path.push(el);
                rec(child, path, out);
                path.pop();
            }
        }
    }
    let mut out = FieldSet::new();
    rec(v, &mut Vec::new(), &mut out);
    out.remove(&Vec::new());
    out
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedEntry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: FieldSet,
}

impl ManagedEntry {
    fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(&self.fields),
        });
        if !self.subresource.is_empty() {
            v["subresource"] = json!(self.subresource);
        }
        v
    }
}

pub fn read_entries(obj: &Value) -> Vec<ManagedEntry> {
    obj.pointer("/metadata/managedFields")
        .map(entries_from)
        .unwrap_or_default()
}

/// The entries of a stored object.
pub fn stored_entries(obj: &crate::store::StoredObject) -> Vec<ManagedEntry> {
    obj.managed_fields()
        .map(|mf| entries_from(&mf))
        .unwrap_or_default()
}

/// The entries of a `managedFields` list.
pub fn entries_from(list: &Value) -> Vec<ManagedEntry> {
    let Some(list) = list.as_array() else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            ManagedEntry {
                manager: s("manager"),
                operation: s("operation"),
                api_version: s("apiVersion"),
                time: s("time"),
                subresource: s("subresource"),
                fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
            }
        })
        .collect()
}

pub fn write_entries(obj: &mut Value, entries: &[ManagedEntry]) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert(
            "managedFields".to_string(),
            Value::Array(entries.iter().map(ManagedEntry::to_json).collect()),
        );
    }
}

/// Who is writing, with what, through which part of the object.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub subresource: &'a str,
    pub api_version: &'a str,
    pub now: &'a str,
    pub scope: Scope,
}

/// Records ownership for a non-apply write (create, update, patch): the writer owns what it
/// changed; other managers lose what was changed or removed.
pub fn record_update(
    entries: &mut Vec<ManagedEntry>,
    w: &Writer<'_>,
    old: Option<&Value>,
    new: &Value,
    shape: Shape<'_>,
) {
    // Fields equal in both versions change no ownership: only the top-level fields (and
    // metadata fields) that differ are walked. A status write leaves the spec alone, and
    // walking it twice was most of the cost of recording the write.
    let differs = |field: &str, meta_field: Option<&str>| {
        let Some(old) = old else {
            return true;
        };
        match meta_field {
            None => old.get(field) != new.get(field),
            Some(m) => {
                old.get(field).and_then(|o| o.get(m)) != new.get(field).and_then(|n| n.get(m))
            }
        }
    };
    let new_fields = collect_where(new, shape, w.scope, &differs);
    let old_fields = old
        .map(|o| collect_where(o, shape, w.scope, &differs))
        .unwrap_or_default();
    let changed: FieldSet = new_fields
        .iter()
        .filter(|(p, v)| old_fields.get(*p) != Some(*v))
        .map(|(p, _)| p.clone())
        .collect();
    let removed: FieldSet = old_fields
        .keys()
        .filter(|p| !new_fields.contains_key(*p))
        .cloned()
        .collect();
    if changed.is_empty() && removed.is_empty() {
        return;
    }
    for e in entries.iter_mut() {
        if !e.is(w.manager, "Update", w.subresource) {
            e.fields
                .retain(|p| !changed.contains(p) && !removed.contains(p));
        }
    }
    match entries
        .iter_mut()
        .find(|e| e.is(w.manager, "Update", w.subresource))
    {
        Some(mine) => {
            mine.fields.extend(changed);
            mine.fields.retain(|p| !removed.contains(p));
            mine.time = w.now.to_string();
            mine.api_version = w.api_version.to_string();
        }
        None => entries.push(ManagedEntry {
            manager: w.manager.to_string(),
            operation: "Update".to_string(),
            api_version: w.api_version.to_string(),
            time: w.now.to_string(),
            subresource: w.subresource.to_string(),
            fields: changed,
        }),
    }
    entries.retain(|e| !e.fields.is_empty());
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    pub path: FieldPath,
}

/// Server-side apply: merges `applied` into `current`, updating field ownership.
/// Returns the conflicts (and changes nothing) when some exist and `force` is off.
pub fn apply(
    entries: &mut Vec<ManagedEntry>,
    w: &Writer<'_>,
    current: Option<&Value>,
    applied: &Value,
    force: bool,
    shape: Shape<'_>,
) -> Result<Value, Vec<Conflict>> {
    let applied_fields = collect(applied, shape, w.scope);
    let empty = json!({});
    let current_v = current.unwrap_or(&empty);
    let current_fields = collect(current_v, shape, w.scope);
    let mut conflicts = Vec::new();
    for e in entries.iter() {
        if e.is(w.manager, "Apply", w.subresource) {
            continue;
        }
        for p in &e.fields {
            if let Some(Some(v)) = applied_fields.get(p)
                && current_fields.get(p) != Some(&Some(*v))
            {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    api_version: e.api_version.clone(),
                    path: p.clone(),
                });
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(conflicts);
        }
        for e in entries.iter_mut() {
            if !e.is(w.manager, "Apply", w.subresource) {
                e.fields.retain(|p| !conflicts.iter().any(|c| c.path == *p));
            }
        }
    }
    let previous: FieldSet = entries
        .iter()
        .find(|e| e.is(w.manager, "Apply", w.subresource))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others: FieldSet = entries
        .iter()
        .filter(|e| !e.is(w.manager, "Apply", w.subresource))
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    let mut result = current_v.clone();
    for p in previous.iter().rev() {
        if !applied_fields.contains_key(p) && !others.contains(p) {
            remove_path(&mut result, p);
        }
    }
    merge_applied(&mut result, applied, shape, true);
    let fields: FieldSet = applied_fields.keys().cloned().collect();
    match entries
        .iter_mut()
        .find(|e| e.is(w.manager, "Apply", w.subresource))
    {
        Some(mine) => {
            if mine.fields != fields {
                mine.time = w.now.to_string();
            }
            mine.fields = fields;
            mine.api_version = w.api_version.to_string();
        }
        None => entries.push(ManagedEntry {
            manager: w.manager.to_string(),
            operation: "Apply".to_string(),
            api_version: w.api_version.to_string(),
            time: w.now.to_string(),
            subresource: w.subresource.to_string(),
            fields,
        }),
    }
    entries.retain(|e| !e.fields.is_empty());
    Ok(result)
}

fn item_matches(item: &Value, key_json: &str) -> bool {
    let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(key_json) else {
        return false;
    };
    keys.iter().all(|(k, v)| item.get(k) == Some(v))
}

fn remove_path(v: &mut Value, path: &[PathElement]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = v;
    for el in parents {
        let next = match (el, node) {
            (PathElement::Field(f), Value::Object(m)) => m.get_mut(f),
            (PathElement::Key(k), Value::Array(items)) => {
                items.iter_mut().find(|i| item_matches(i, k))
            }
            (PathElement::Index(i), Value::Array(items)) => items.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return,
        }
    }
    match (last, node) {
        (PathElement::Field(f), Value::Object(m)) => {
            m.remove(f);
        }
        (PathElement::Key(k), Value::Array(items)) => items.retain(|i| !item_matches(i, k)),
        (PathElement::Value(s), Value::Array(items)) => {
            if let Ok(want) = serde_json::from_str::<Value>(s) {
                items.retain(|i| *i != want);
            }
        }
        _ => {}
    }
}

fn merge_applied(target: &mut Value, applied: &Value, shape: Shape<'_>, at_root: bool) {
    match (target, applied) {
        (Value::Object(t), Value::Object(a)) => {
            for (k, av) in a {
                let child = shape.field(k, at_root);
                match t.get_mut(k) {
                    Some(tv)
                        if (tv.is_object() && av.is_object())
                            || (tv.is_array() && av.is_array()) =>
                    {
                        merge_applied(tv, av, child, false);
                    }
                    _ => {
                        t.insert(k.clone(), av.clone());
                    }
                }
            }
        }
        (Value::Array(t), Value::Array(a)) => match shape.list_type() {
            ListType::Map(keys) => {
                for item in a {
                    let Some(key) = key_element(item, &keys) else {
                        t.push(item.clone());
                        continue;
                    };
                    match t
                        .iter_mut()
                        .find(|i| key_element(i, &keys).as_deref() == Some(&key))
                    {
                        Some(existing) => merge_applied(existing, item, shape.items(), false),
                        None => t.push(item.clone()),
                    }
                }
            }
            ListType::Set => {
                for item in a {
                    if !t.contains(item) {
                        t.push(item.clone());
                    }
                }
            }
            ListType::Atomic => *t = a.clone(),
        },
        (t, a) => *t = a.clone(),
    }
}

/// The 409 message kube-apiserver gives for apply conflicts.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [c] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with \"{}\" using {}: {}",
            c.manager,
            c.api_version,
            path_string(&c.path)
        );
    }
    let mut msg = format!("Apply failed with {} conflicts: ", conflicts.len());
    let mut by_manager: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for c in conflicts {
        by_manager
            .entry((&c.manager, &c.api_version))
            .or_default()
            .push(path_string(&c.path));
    }
    let parts: Vec<String> = by_manager
        .iter()
        .map(|((m, v), paths)| {
            let list: Vec<String> = paths.iter().map(|p| format!("- {p}")).collect();
            format!("conflicts with \"{m}\" using {v}:\n{}", list.join("\n"))
        })
        .collect();
    msg.push_str(&parts.join("\n"));
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w<'a>(manager: &'a str) -> Writer<'a> {
        Writer {
            manager,
            subresource: "",
            api_version: "v1",
            now: "2026-01-01T00:00:00Z",
            scope: Scope::All,
        }
    }

    fn shape() -> Shape<'static> {
        Shape::root("ConfigMap", true, None)
    }

    #[test]
    fn fields_v1_round_trips_with_item_markers() {
        let obj = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let set: FieldSet = collect(&obj, Shape::root("Pod", true, None), Scope::All)
            .into_keys()
            .collect();
        let v = to_fields_v1(&set);
        assert_eq!(
            v,
            json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}}}})
        );
        assert_eq!(from_fields_v1(&v), set);
    }

    #[test]
    fn a_second_applier_conflicts_unless_forced_and_then_takes_ownership() {
        let mut entries = Vec::new();
        let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "a"}});
        let obj = apply(&mut entries, &w("one"), None, &first, false, shape()).unwrap();
        let second = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "b"}});
        let conflicts = apply(
            &mut entries.clone(),
            &w("two"),
            Some(&obj),
            &second,
            false,
            shape(),
        )
        .unwrap_err();
        assert_eq!(
            conflict_message(&conflicts),
            "Apply failed with 1 conflict: conflict with \"one\" using v1: .data.k"
        );
        let obj = apply(&mut entries, &w("two"), Some(&obj), &second, true, shape()).unwrap();
        assert_eq!(obj["data"]["k"], "b");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].manager, "two");
    }

    #[test]
    fn fields_dropped_from_an_apply_are_removed_unless_someone_else_owns_them() {
        let mut entries = Vec::new();
        let first = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
        let obj = apply(&mut entries, &w("one"), None, &first, false, shape()).unwrap();
        let mut edited = obj.clone();
        edited["data"]["c"] = json!("3");
        record_update(&mut entries, &w("editor"), Some(&obj), &edited, shape());
        let second = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
        let obj = apply(
            &mut entries,
            &w("one"),
            Some(&edited),
            &second,
            false,
            shape(),
        )
        .unwrap();
        assert_eq!(obj["data"], json!({"a": "1", "c": "3"}));
    }

    #[test]
    fn an_update_owns_what_it_changed_whether_or_not_the_rest_is_equal() {
        let base = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": {"a": "1"}, "resourceVersion": "1"},
            "data": {"a": "1", "b": "2"}});
        let mut status_only = base.clone();
        status_only["status"] = json!({"x": 1});
        let mut label_and_data = base.clone();
        label_and_data["metadata"]["labels"]["b"] = json!("2");
        label_and_data["data"].as_object_mut().unwrap().remove("b");
        let mut annotations_added = base.clone();
        annotations_added["metadata"]["annotations"] = json!({"n": "v"});
        for new in [base.clone(), status_only, label_and_data, annotations_added] {
            // What the whole objects' fields say changed and was removed.
            let old_fields = collect(&base, shape(), Scope::All);
            let new_fields = collect(&new, shape(), Scope::All);
            let mut expected: FieldSet = new_fields
                .iter()
                .filter(|(p, v)| old_fields.get(*p) != Some(*v))
                .map(|(p, _)| p.clone())
                .collect();
            let mut entries = vec![ManagedEntry {
                manager: "other".into(),
                operation: "Update".into(),
                api_version: "v1".into(),
                time: "t".into(),
                subresource: String::new(),
                fields: old_fields.keys().cloned().collect(),
            }];
            record_update(&mut entries, &w("editor"), Some(&base), &new, shape());
            let mine: FieldSet = entries
                .iter()
                .find(|e| e.manager == "editor")
                .map(|e| e.fields.clone())
                .unwrap_or_default();
            assert_eq!(mine, expected, "{new}");
            let others: FieldSet = entries
                .iter()
                .find(|e| e.manager == "other")
                .map(|e| e.fields.clone())
                .unwrap_or_default();
            expected = old_fields
                .keys()
                .filter(|p| new_fields.get(*p) == old_fields.get(*p))
                .cloned()
                .collect();
            assert_eq!(others, expected, "{new}");
        }
    }
}

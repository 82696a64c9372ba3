//! Field ownership (`metadata.managedFields`, FieldsV1) and server-side apply, following the
//! structured-merge-diff rules kube-apiserver uses: every write records which manager set which
//! fields; an apply that changes a field another manager owns conflicts unless forced; fields a
//! manager stops applying are removed when nobody else owns them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::value::RawValue;
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
    // The paths come sorted, so each shares a prefix with the one before it: an element is
    // encoded once for all the paths below it, not once per path (every write of an object
    // encodes its managers' sets).
    let mut previous: Option<&FieldPath> = None;
    let mut keys: Vec<String> = Vec::new();
    for path in set {
        let common = previous.map_or(0, |p| {
            p.iter().zip(path).take_while(|(a, b)| a == b).count()
        });
        keys.truncate(common);
        keys.extend(path[common..].iter().map(PathElement::encode));
        previous = Some(path);
        // A member with members below it is marked `.`; one without stays `{}` (below).
        if let Some(node) = member_node(&mut root, &keys)
            && !node.contains_key(".")
        {
            node.insert(".".to_string(), Value::Object(Map::new()));
        }
    }
    fn member_node<'a>(
        node: &'a mut Map<String, Value>,
        keys: &[String],
    ) -> Option<&'a mut Map<String, Value>> {
        let Some((key, rest)) = keys.split_first() else {
            return Some(node);
        };
        if !node.contains_key(key.as_str()) {
            node.insert(key.clone(), Value::Object(Map::new()));
        }
        match node.get_mut(key.as_str()) {
            Some(Value::Object(next)) => member_node(next, rest),
            _ => None,
        }
    }
    fn unmark_leaves(node: &mut Map<String, Value>) {
        for child in node.values_mut() {
            if let Value::Object(next) = child {
                unmark_leaves(next);
            }
        }
        if node.len() == 1 && node.contains_key(".") {
            node.clear();
        }
    }
    unmark_leaves(&mut root);
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
#[derive(Debug, Clone)]
pub struct ManagedEntry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: String,
    fields: EntryFields,
}

/// An entry's field set. Most writes change one manager's entry and leave the others as they
/// are: those are written back from the FieldsV1 JSON they were read from, never parsed, and
/// one that is parsed keeps that JSON while its set does not change.
#[derive(Debug, Clone)]
enum EntryFields {
    /// FieldsV1 JSON as stored: compact, map keys sorted, canonical (every stored FieldsV1
    /// is written by [`to_fields_v1`], see [`canonical_managed_fields`]).
    Stored(Box<str>),
    Parsed {
        set: FieldSet,
        stored: Option<Box<str>>,
    },
}

impl EntryFields {
    fn stored(&self) -> Option<&str> {
        match self {
            EntryFields::Stored(json) => Some(json),
            EntryFields::Parsed { stored, .. } => stored.as_deref(),
        }
    }

    fn parse(json: &str) -> FieldSet {
        serde_json::from_str::<Value>(json)
            .map(|v| from_fields_v1(&v))
            .unwrap_or_default()
    }
}

impl PartialEq for ManagedEntry {
    fn eq(&self, other: &Self) -> bool {
        let set = |e: &ManagedEntry| match &e.fields {
            EntryFields::Stored(json) => EntryFields::parse(json),
            EntryFields::Parsed { set, .. } => set.clone(),
        };
        self.manager == other.manager
            && self.operation == other.operation
            && self.api_version == other.api_version
            && self.time == other.time
            && self.subresource == other.subresource
            && set(self) == set(other)
    }
}

impl ManagedEntry {
    fn new(w: &Writer<'_>, operation: &str, fields: FieldSet) -> Self {
        ManagedEntry {
            manager: w.manager.to_string(),
            operation: operation.to_string(),
            api_version: w.api_version.to_string(),
            time: w.now.to_string(),
            subresource: w.subresource.to_string(),
            fields: EntryFields::Parsed {
                set: fields,
                stored: None,
            },
        }
    }

    fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    /// The owned paths, parsed on first need.
    pub fn fields(&mut self) -> &FieldSet {
        if let EntryFields::Stored(json) = &mut self.fields {
            let json = std::mem::take(json);
            self.fields = EntryFields::Parsed {
                set: EntryFields::parse(&json),
                stored: Some(json),
            };
        }
        match &self.fields {
            EntryFields::Parsed { set, .. } => set,
            EntryFields::Stored(_) => unreachable!("parsed above"),
        }
    }

    /// The owned paths, to change: the stored JSON no longer describes them.
    fn fields_mut(&mut self) -> &mut FieldSet {
        self.fields();
        match &mut self.fields {
            EntryFields::Parsed { set, stored } => {
                *stored = None;
                set
            }
            EntryFields::Stored(_) => unreachable!("parsed above"),
        }
    }

    /// Whether this entry may own one of the paths `needles` stand for (see [`Needles`]):
    /// false only when it certainly owns none, without parsing it.
    fn may_own(&self, needles: &Needles) -> bool {
        match self.fields.stored() {
            Some(json) => needles.may_be_in(json),
            None => true,
        }
    }

    /// Whether it owns any of `paths`.
    fn owns_any<'p>(
        &mut self,
        needles: &Needles,
        mut paths: impl Iterator<Item = &'p FieldPath>,
    ) -> bool {
        self.may_own(needles) && {
            let set = self.fields();
            paths.any(|p| set.contains(p))
        }
    }

    fn is_empty(&self) -> bool {
        match &self.fields {
            // The shortest FieldsV1 of one path is `{"f:a":{}}`; anything as short as that
            // is looked at.
            EntryFields::Stored(json) => json.len() < 16 && EntryFields::parse(json).is_empty(),
            EntryFields::Parsed { set, .. } => set.is_empty(),
        }
    }

    pub fn to_json(&self) -> Value {
        let fields = match &self.fields {
            EntryFields::Parsed {
                set, stored: None, ..
            } => to_fields_v1(set),
            _ => self
                .fields
                .stored()
                .and_then(|json| serde_json::from_str(json).ok())
                .unwrap_or_else(|| json!({})),
        };
        let mut v = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": fields,
        });
        if !self.subresource.is_empty() {
            v["subresource"] = json!(self.subresource);
        }
        v
    }

    /// Appends the JSON [`ManagedEntry::to_json`] would serialize to (map keys sorted).
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"apiVersion\":");
        serde_json::to_writer(&mut *out, &self.api_version)?;
        out.extend_from_slice(b",\"fieldsType\":\"FieldsV1\",\"fieldsV1\":");
        match &self.fields {
            EntryFields::Parsed { set, stored: None } => {
                serde_json::to_writer(&mut *out, &to_fields_v1(set))?
            }
            EntryFields::Stored(json)
            | EntryFields::Parsed {
                stored: Some(json), ..
            } => out.extend_from_slice(json.as_bytes()),
        }
        out.extend_from_slice(b",\"manager\":");
        serde_json::to_writer(&mut *out, &self.manager)?;
        out.extend_from_slice(b",\"operation\":");
        serde_json::to_writer(&mut *out, &self.operation)?;
        if !self.subresource.is_empty() {
            out.extend_from_slice(b",\"subresource\":");
            serde_json::to_writer(&mut *out, &self.subresource)?;
        }
        out.extend_from_slice(b",\"time\":");
        serde_json::to_writer(&mut *out, &self.time)?;
        out.push(b'}');
        Ok(())
    }
}

/// What must appear in an entry's FieldsV1 JSON for it to own one of a set of paths: for
/// each path, its first two field names as FieldsV1 keys (`"f:status"`, `"f:conditions"`).
/// An entry owning a path has every element of it as a key; one whose JSON lacks a path's
/// needles owns none of it, which a substring search tells without parsing.
struct Needles(BTreeSet<Vec<String>>);

impl Needles {
    fn of<'p>(paths: impl IntoIterator<Item = &'p FieldPath>) -> Self {
        let mut quoted: BTreeMap<&str, String> = BTreeMap::new();
        let mut set = BTreeSet::new();
        for path in paths {
            let needles: Vec<String> = path
                .iter()
                .take(2)
                .map_while(|el| match el {
                    PathElement::Field(f) => Some(f.as_str()),
                    _ => None,
                })
                .map(|f| {
                    quoted
                        .entry(f)
                        .or_insert_with(|| {
                            serde_json::to_string(&format!("f:{f}")).unwrap_or_default()
                        })
                        .clone()
                })
                .collect();
            set.insert(needles);
        }
        Needles(set)
    }

    fn may_be_in(&self, json: &str) -> bool {
        self.0
            .iter()
            .any(|needles| needles.iter().all(|n| json.contains(n.as_str())))
    }
}

/// The entries of a stored object.
pub fn stored_entries(obj: &crate::store::StoredObject) -> Vec<ManagedEntry> {
    obj.managed_fields_raw()
        .map(entries_of_raw)
        .unwrap_or_default()
}

/// An entry as stored, its FieldsV1 left unparsed.
#[derive(serde::Deserialize)]
struct StoredEntry<'a> {
    #[serde(borrow, default)]
    manager: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    operation: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default, rename = "apiVersion")]
    api_version: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    time: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    subresource: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default, rename = "fieldsV1")]
    fields_v1: Option<&'a RawValue>,
}

/// The entries of a stored `managedFields` list, their field sets parsed only when a write
/// needs them.
pub fn entries_of_raw(list: &RawValue) -> Vec<ManagedEntry> {
    let Ok(stored) = serde_json::from_str::<Vec<StoredEntry<'_>>>(list.get()) else {
        // Not the shape written here (a value of another type): read as a whole, as before.
        return serde_json::from_str::<Value>(list.get())
            .map(|v| entries_from(&v))
            .unwrap_or_default();
    };
    let s = |v: Option<std::borrow::Cow<'_, str>>| v.map(String::from).unwrap_or_default();
    stored
        .into_iter()
        .map(|e| ManagedEntry {
            manager: s(e.manager),
            operation: s(e.operation),
            api_version: s(e.api_version),
            time: s(e.time),
            subresource: s(e.subresource),
            fields: match e.fields_v1 {
                Some(raw) if raw.get().starts_with('{') => EntryFields::Stored(raw.get().into()),
                other => EntryFields::Parsed {
                    set: other
                        .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok())
                        .map(|v| from_fields_v1(&v))
                        .unwrap_or_default(),
                    stored: None,
                },
            },
        })
        .collect()
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
                fields: EntryFields::Parsed {
                    set: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
                    stored: None,
                },
            }
        })
        .collect()
}

/// The `managedFields` list of `entries` as stored (`None` for no entry).
pub fn encode_entries(entries: &[ManagedEntry]) -> Option<Box<RawValue>> {
    if entries.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(256 * entries.len());
    out.push(b'[');
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        e.write_json(&mut out).ok()?;
    }
    out.push(b']');
    String::from_utf8(out)
        .ok()
        .and_then(|json| RawValue::from_string(json).ok())
}

/// A `managedFields` list a client set as a whole, as it is stored: each entry's FieldsV1
/// in canonical form (kube-apiserver decodes and re-encodes them; entries that no later write
/// touches are kept as stored, so they must already be in the form a write would give them).
pub fn canonical_managed_fields(list: &Value) -> Option<Box<RawValue>> {
    let mut list = list.clone();
    if let Value::Array(items) = &mut list {
        for item in items {
            if let Some(fields) = item.get_mut("fieldsV1") {
                *fields = to_fields_v1(&from_fields_v1(fields));
            }
        }
    }
    serde_json::value::to_raw_value(&list).ok()
}

/// Whether the `managedFields` a client sent are the ones stored.
pub fn same_managed_fields(sent: &Value, stored: Option<&RawValue>) -> bool {
    let Some(stored) = stored else {
        return false;
    };
    // Both are serde_json's compact encoding of a map with sorted keys when equal, so equal
    // text settles it; anything else is compared decoded.
    serde_json::to_string(sent).is_ok_and(|text| text == stored.get())
        || serde_json::from_str::<Value>(stored.get()).is_ok_and(|v| v == *sent)
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
    let (changed, removed) = changed_fields(old, new, shape, w.scope);
    if changed.is_empty() && removed.is_empty() {
        return;
    }
    let needles = Needles::of(changed.iter().chain(&removed));
    for e in entries.iter_mut() {
        if !e.is(w.manager, "Update", w.subresource)
            && e.owns_any(&needles, changed.iter().chain(&removed))
        {
            e.fields_mut()
                .retain(|p| !changed.contains(p) && !removed.contains(p));
        }
    }
    match entries
        .iter_mut()
        .find(|e| e.is(w.manager, "Update", w.subresource))
    {
        Some(mine) => {
            // A writer that changes the fields it already owns (a Lease renewal, a status
            // rewritten) keeps its set: only the time and version of its entry change.
            let set = mine.fields();
            if !changed.iter().all(|p| set.contains(p)) || removed.iter().any(|p| set.contains(p)) {
                let set = mine.fields_mut();
                set.extend(changed);
                set.retain(|p| !removed.contains(p));
            }
            mine.time = w.now.to_string();
            mine.api_version = w.api_version.to_string();
        }
        None => entries.push(ManagedEntry::new(w, "Update", changed)),
    }
    entries.retain(|e| !e.is_empty());
}

/// The owned paths (as [`collect`] finds them) whose value a write from `old` to `new` set or
/// changed, and those it removed. Both versions are walked together and equal subtrees are
/// skipped: a status write leaves the spec alone, and a counter changed in a large status is
/// found without listing every path of both versions.
pub fn changed_fields(
    old: Option<&Value>,
    new: &Value,
    shape: Shape<'_>,
    scope: Scope,
) -> (FieldSet, FieldSet) {
    let mut diff = FieldDiff::default();
    let empty = Map::new();
    let (Some(old_root), Some(new_root)) = (as_map(old).or(Some(&empty)), as_map(Some(new))) else {
        // Not an object: nothing is owned in it.
        return (FieldSet::new(), FieldSet::new());
    };
    let keys: BTreeSet<&String> = old_root.keys().chain(new_root.keys()).collect();
    for k in keys {
        let keep = match k.as_str() {
            "apiVersion" | "kind" => false,
            "status" => scope != Scope::WithoutStatus,
            _ => scope != Scope::StatusOnly,
        };
        if !keep {
            continue;
        }
        let child = shape.field(k, true);
        if k == "metadata" {
            let old_meta = as_map(old_root.get(k)).unwrap_or(&empty);
            let new_meta = as_map(new_root.get(k)).unwrap_or(&empty);
            let meta_keys: BTreeSet<&String> = old_meta.keys().chain(new_meta.keys()).collect();
            for mk in meta_keys {
                if IGNORED_METADATA.contains(&mk.as_str()) {
                    continue;
                }
                let mut path = vec![
                    PathElement::Field(k.clone()),
                    PathElement::Field(mk.clone()),
                ];
                diff.node(
                    old_meta.get(mk),
                    new_meta.get(mk),
                    child.field(mk, false),
                    &mut path,
                );
            }
            continue;
        }
        let mut path = vec![PathElement::Field(k.clone())];
        diff.node(old_root.get(k), new_root.get(k), child, &mut path);
    }
    (diff.changed, diff.removed)
}

fn as_map(v: Option<&Value>) -> Option<&Map<String, Value>> {
    match v {
        Some(Value::Object(m)) => Some(m),
        _ => None,
    }
}

#[derive(Default)]
struct FieldDiff {
    changed: FieldSet,
    removed: FieldSet,
}

impl FieldDiff {
    /// Compares the subtrees at `path`, descending into maps and keyed lists present in both
    /// versions, and comparing the paths [`walk`] finds everywhere else.
    fn node(
        &mut self,
        old: Option<&Value>,
        new: Option<&Value>,
        shape: Shape<'_>,
        path: &mut FieldPath,
    ) {
        match (old, new) {
            (Some(a), Some(b)) if a == b => {}
            (Some(Value::Object(a)), Some(Value::Object(b))) if !a.is_empty() && !b.is_empty() => {
                let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                for k in keys {
                    path.push(PathElement::Field(k.clone()));
                    self.node(a.get(k), b.get(k), shape.field(k, false), path);
                    path.pop();
                }
            }
            (Some(Value::Array(a)), Some(Value::Array(b))) => match (
                shape.list_type(),
                keyed_items(a, &shape),
                keyed_items(b, &shape),
            ) {
                (ListType::Map(_), Some(a_items), Some(b_items)) => {
                    let keys: BTreeSet<&String> = a_items.keys().chain(b_items.keys()).collect();
                    for key in keys {
                        path.push(PathElement::Key(key.clone()));
                        match (a_items.get(key), b_items.get(key)) {
                            (Some(x), Some(y)) => {
                                // The item's own path is in both (with no value); its fields
                                // are compared.
                                let (Value::Object(x), Value::Object(y)) = (x, y) else {
                                    unreachable!("keyed items are objects")
                                };
                                let fields: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                                for k in fields {
                                    path.push(PathElement::Field(k.clone()));
                                    self.node(
                                        x.get(k),
                                        y.get(k),
                                        shape.items().field(k, false),
                                        path,
                                    );
                                    path.pop();
                                }
                            }
                            (x, y) => self.walked(x.copied(), y.copied(), |item, out| {
                                item_paths(item, shape, path, out)
                            }),
                        }
                        path.pop();
                    }
                }
                _ => self.walked(old, new, |v, out| walk(v, shape, path.clone(), out)),
            },
            _ => self.walked(old, new, |v, out| walk(v, shape, path.clone(), out)),
        }
    }

    /// Compares the paths `paths_of` lists in each version (those of the old one that the new
    /// one lacks are removed; those of the new one with another value, changed).
    fn walked<'v>(
        &mut self,
        old: Option<&'v Value>,
        new: Option<&'v Value>,
        paths_of: impl Fn(&'v Value, &mut BTreeMap<FieldPath, Option<&'v Value>>),
    ) {
        let mut old_paths = BTreeMap::new();
        let mut new_paths = BTreeMap::new();
        if let Some(old) = old {
            paths_of(old, &mut old_paths);
        }
        if let Some(new) = new {
            paths_of(new, &mut new_paths);
        }
        for (p, v) in &new_paths {
            if old_paths.get(p) != Some(v) {
                self.changed.insert(p.clone());
            }
        }
        for p in old_paths.into_keys() {
            if !new_paths.contains_key(&p) {
                self.removed.insert(p);
            }
        }
    }
}

/// The items of an associative list by key (as [`walk`] names them), when every item has one
/// and no two share it; `None` otherwise (the list is then compared as [`walk`] lists it).
fn keyed_items<'v>(items: &'v [Value], shape: &Shape<'_>) -> Option<BTreeMap<String, &'v Value>> {
    let ListType::Map(keys) = shape.list_type() else {
        return None;
    };
    if items.is_empty() {
        return None;
    }
    let mut by_key = BTreeMap::new();
    for item in items {
        let key = key_element(item, &keys)?;
        if !item.is_object() || by_key.insert(key, item).is_some() {
            return None;
        }
    }
    Some(by_key)
}

/// The paths [`walk`] lists for one item of an associative list at `path` (which ends with
/// the item's key).
fn item_paths<'v>(
    item: &'v Value,
    shape: Shape<'v>,
    path: &FieldPath,
    out: &mut BTreeMap<FieldPath, Option<&'v Value>>,
) {
    out.insert(path.clone(), None);
    if let Value::Object(fields) = item {
        for (k, child) in fields {
            let mut p = path.clone();
            p.push(PathElement::Field(k.clone()));
            walk(child, shape.items().field(k, false), p, out);
        }
    }
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
    let applied_needles = Needles::of(applied_fields.keys());
    let mut conflicts = Vec::new();
    for e in entries.iter_mut() {
        if e.is(w.manager, "Apply", w.subresource) || !e.may_own(&applied_needles) {
            continue;
        }
        let (manager, api_version) = (e.manager.clone(), e.api_version.clone());
        for p in e.fields() {
            if let Some(Some(v)) = applied_fields.get(p)
                && current_fields.get(p) != Some(&Some(*v))
            {
                conflicts.push(Conflict {
                    manager: manager.clone(),
                    api_version: api_version.clone(),
                    path: p.clone(),
                });
            }
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(conflicts);
        }
        let lost: FieldSet = conflicts.iter().map(|c| c.path.clone()).collect();
        let needles = Needles::of(&lost);
        for e in entries.iter_mut() {
            if !e.is(w.manager, "Apply", w.subresource) && e.owns_any(&needles, lost.iter()) {
                e.fields_mut().retain(|p| !lost.contains(p));
            }
        }
    }
    let previous: FieldSet = entries
        .iter_mut()
        .find(|e| e.is(w.manager, "Apply", w.subresource))
        .map(|e| e.fields().clone())
        .unwrap_or_default();
    // Fields this manager applied before and leaves out now go, unless another owns them.
    let dropped: Vec<&FieldPath> = previous
        .iter()
        .filter(|p| !applied_fields.contains_key(*p))
        .collect();
    let mut result = current_v.clone();
    if !dropped.is_empty() {
        let needles = Needles::of(dropped.iter().copied());
        let mut kept = FieldSet::new();
        for e in entries.iter_mut() {
            if !e.is(w.manager, "Apply", w.subresource) && e.may_own(&needles) {
                let set = e.fields();
                kept.extend(
                    dropped
                        .iter()
                        .filter(|p| set.contains(**p))
                        .map(|p| (*p).clone()),
                );
            }
        }
        for p in dropped.iter().rev() {
            if !kept.contains(*p) {
                remove_path(&mut result, p);
            }
        }
    }
    merge_applied(&mut result, applied, shape, true);
    let fields: FieldSet = applied_fields.keys().cloned().collect();
    match entries
        .iter_mut()
        .find(|e| e.is(w.manager, "Apply", w.subresource))
    {
        Some(mine) => {
            if *mine.fields() != fields {
                mine.time = w.now.to_string();
                *mine.fields_mut() = fields;
            }
            mine.api_version = w.api_version.to_string();
        }
        None => entries.push(ManagedEntry::new(w, "Apply", fields)),
    }
    entries.retain(|e| !e.is_empty());
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
    fn fields_v1_marks_members_with_members_below_them() {
        let f = |name: &str| PathElement::Field(name.to_string());
        let set: FieldSet = [
            vec![f("a")],
            vec![f("a"), f("b")],
            vec![f("a"), f("b"), f("c")],
            vec![f("a"), f("d")],
            vec![f("e"), f("g")],
            vec![f("e"), PathElement::Index(2)],
        ]
        .into_iter()
        .collect();
        let v = to_fields_v1(&set);
        assert_eq!(
            v,
            json!({"f:a": {".": {}, "f:b": {".": {}, "f:c": {}}, "f:d": {}}, "f:e": {"f:g": {}, "i:2": {}}})
        );
        assert_eq!(from_fields_v1(&v), set);
        assert_eq!(to_fields_v1(&FieldSet::new()), json!({}));
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
            let mut entries = vec![ManagedEntry::new(
                &w("other"),
                "Update",
                old_fields.keys().cloned().collect(),
            )];
            record_update(&mut entries, &w("editor"), Some(&base), &new, shape());
            let mine: FieldSet = entries
                .iter_mut()
                .find(|e| e.manager == "editor")
                .map(|e| e.fields().clone())
                .unwrap_or_default();
            assert_eq!(mine, expected, "{new}");
            let others: FieldSet = entries
                .iter_mut()
                .find(|e| e.manager == "other")
                .map(|e| e.fields().clone())
                .unwrap_or_default();
            expected = old_fields
                .keys()
                .filter(|p| new_fields.get(*p) == old_fields.get(*p))
                .cloned()
                .collect();
            assert_eq!(others, expected, "{new}");
        }
    }

    type Step<'a> = Box<dyn Fn(&mut Vec<ManagedEntry>) + 'a>;

    /// The entries as a write reads them back from the store: field sets unparsed.
    fn stored(entries: &[ManagedEntry]) -> Vec<ManagedEntry> {
        encode_entries(entries)
            .map(|raw| entries_of_raw(&raw))
            .unwrap_or_default()
    }

    fn as_json(entries: &[ManagedEntry]) -> Value {
        Value::Array(entries.iter().map(ManagedEntry::to_json).collect())
    }

    #[test]
    fn stored_entries_are_written_back_as_they_were_encoded() {
        let obj = json!({"metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"k": "v"}});
        let mut entries = Vec::new();
        apply(&mut entries, &w("one"), None, &obj, false, shape()).unwrap();
        let mut status = w("agent");
        status.subresource = "status";
        let with_status = json!({"metadata": {"name": "c"}, "status": {"x": 1}});
        record_update(&mut entries, &status, Some(&obj), &with_status, shape());
        let raw = encode_entries(&entries).unwrap();
        // The encoding is serde_json's of the entries' JSON.
        assert_eq!(
            raw.get(),
            serde_json::to_string(&as_json(&entries)).unwrap()
        );
        let read = entries_of_raw(&raw);
        assert_eq!(read, entries);
        assert!(
            read.iter()
                .all(|e| matches!(e.fields, EntryFields::Stored(_)))
        );
        assert_eq!(encode_entries(&read).unwrap().get(), raw.get());
    }

    #[test]
    fn writes_over_stored_entries_record_what_writes_over_parsed_entries_do() {
        let pod = |image: &str, status: Value| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "a"}},
                "spec": {"containers": [{"name": "c", "image": image}]}, "status": status})
        };
        let pod_shape = || Shape::root("Pod", true, None);
        let mut status = w("kubelet");
        status.subresource = "status";
        status.scope = Scope::StatusOnly;
        let mut main = w("deployer");
        main.scope = Scope::WithoutStatus;
        let mut other = w("editor");
        other.scope = Scope::WithoutStatus;
        let v1 = pod(
            "i:1",
            json!({"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]}),
        );
        let v2 = pod(
            "i:1",
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}),
        );
        let mut v3 = pod("i:2", json!({"phase": "Running"}));
        v3["metadata"]["labels"]["edited"] = json!("yes");
        // Each step applied to entries kept parsed and to entries read back from the store.
        let mut parsed = Vec::new();
        let mut through_store = Vec::new();
        let steps: Vec<Step<'_>> = vec![
            Box::new(|e| {
                apply(e, &main, None, &pod("i:1", json!(null)), false, pod_shape()).unwrap();
            }),
            Box::new(|e| record_update(e, &status, None, &v1, pod_shape())),
            Box::new(|e| record_update(e, &status, Some(&v1), &v2, pod_shape())),
            Box::new(|e| record_update(e, &other, Some(&v2), &v3, pod_shape())),
            Box::new(|e| {
                apply(
                    e,
                    &main,
                    Some(&v3),
                    &pod("i:3", json!(null)),
                    true,
                    pod_shape(),
                )
                .unwrap();
            }),
        ];
        for step in &steps {
            step(&mut parsed);
            let mut read = stored(&through_store);
            step(&mut read);
            through_store = read;
            assert_eq!(as_json(&through_store), as_json(&parsed));
        }
        // The forced apply took the image from the editor, who keeps its label.
        let editor = parsed.iter_mut().find(|e| e.manager == "editor").unwrap();
        assert!(
            editor
                .fields()
                .iter()
                .all(|p| p[0] == PathElement::Field("metadata".into()))
        );
    }

    #[test]
    fn a_stored_entry_loses_the_fields_another_writer_changes() {
        let old = json!({"metadata": {"name": "c"}, "status": {"a": {"b": 1}, "c": 2}});
        let mut status = w("one");
        status.subresource = "status";
        status.scope = Scope::StatusOnly;
        let mut entries = Vec::new();
        record_update(&mut entries, &status, None, &old, shape());
        let mut second = status.clone();
        second.manager = "two";
        let new = json!({"metadata": {"name": "c"}, "status": {"a": {"b": 3}, "c": 2}});
        let mut entries = stored(&entries);
        record_update(&mut entries, &second, Some(&old), &new, shape());
        let one = entries.iter_mut().find(|e| e.manager == "one").unwrap();
        let path = |p: &[&str]| {
            p.iter()
                .map(|f| PathElement::Field(f.to_string()))
                .collect::<FieldPath>()
        };
        assert_eq!(*one.fields(), FieldSet::from([path(&["status", "c"])]));
        let two = entries.iter_mut().find(|e| e.manager == "two").unwrap();
        assert_eq!(*two.fields(), FieldSet::from([path(&["status", "a", "b"])]));
    }

    #[test]
    fn client_set_fields_are_stored_in_canonical_form() {
        let sent = json!([{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:a": {".": {}}, "x:junk": {}}}}]);
        let raw = canonical_managed_fields(&sent).unwrap();
        let stored: Value = serde_json::from_str(raw.get()).unwrap();
        assert_eq!(stored[0]["fieldsV1"], json!({"f:data": {"f:a": {}}}));
        assert_eq!(stored[0]["manager"], "m");
        assert!(same_managed_fields(&stored, Some(&raw)));
        assert!(!same_managed_fields(&sent, Some(&raw)));
    }

    #[test]
    fn changed_fields_are_those_the_whole_objects_paths_differ_in() {
        let pod = |containers: Value, status: Value, labels: Value| {
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "labels": labels, "resourceVersion": "1"},
                "spec": {"containers": containers, "nodeSelector": {"a": "b"}, "tolerations": []},
                "status": status})
        };
        let c = |name: &str, image: &str| json!({"name": name, "image": image, "ports": [{"containerPort": 80}]});
        let versions = [
            pod(
                json!([c("a", "1")]),
                json!({"phase": "Pending"}),
                json!({"x": "1"}),
            ),
            pod(
                json!([c("a", "2")]),
                json!({"phase": "Running"}),
                json!({"x": "1"}),
            ),
            pod(
                json!([c("a", "2"), c("b", "1")]),
                json!({"phase": "Running", "conditions": [{"type": "Ready"}]}),
                json!({}),
            ),
            pod(json!([c("b", "1")]), json!({}), json!({"x": "1", "y": "2"})),
            pod(
                json!([]),
                json!({"phase": {"nested": true}}),
                json!("not a map"),
            ),
            pod(
                json!([c("a", "1"), c("a", "2")]),
                json!(null),
                json!({"x": "1"}),
            ),
            pod(
                json!([{"image": "no name"}]),
                json!({"phase": "Pending"}),
                json!({"x": "1"}),
            ),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}),
        ];
        let shape = Shape::root("Pod", true, None);
        for scope in [Scope::All, Scope::WithoutStatus, Scope::StatusOnly] {
            for old in &versions {
                for new in &versions {
                    let old_fields = collect(old, shape, scope);
                    let new_fields = collect(new, shape, scope);
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
                    assert_eq!(
                        changed_fields(Some(old), new, shape, scope),
                        (changed, removed),
                        "{scope:?}: {old} -> {new}"
                    );
                }
                let created: FieldSet = collect(old, shape, scope).into_keys().collect();
                assert_eq!(
                    changed_fields(None, old, shape, scope),
                    (created, FieldSet::new())
                );
            }
        }
    }
}

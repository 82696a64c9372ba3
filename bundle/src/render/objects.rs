//! Kubernetes objects as JSON values: reading them from YAML files the way Fleet's agent does
//! (wrangler `yaml.ToObjects`) and cleaning them for export (wrangler `CleanObjectForExport`).

use serde_json::{Map, Value};

/// A YAML document that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ParseError {
    /// The file (bundle resource name) being read.
    pub file: String,
    /// What is wrong, with the line and column when known.
    pub message: String,
    /// 1-based line of the error, when known.
    pub line: Option<usize>,
}

/// Converts a YAML value to JSON the way Go's YAML-to-JSON conversion does: non-string keys
/// become strings, tags are dropped, merge keys (`<<`) are applied.
pub fn yaml_to_json(value: serde_norway::Value) -> Value {
    let mut value = value;
    let _ = value.apply_merge();
    convert(value)
}

fn convert(value: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(convert).collect()),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(key_string(k), convert(v));
            }
            Value::Object(out)
        }
        Y::Tagged(t) => convert(t.value),
    }
}

fn key_string(k: serde_norway::Value) -> String {
    use serde_norway::Value as Y;
    match k {
        Y::String(s) => s,
        Y::Null => "null".into(),
        Y::Bool(b) => b.to_string(),
        Y::Number(n) => n.to_string(),
        other => serde_json::to_string(&convert(other)).unwrap_or_default(),
    }
}

/// Parses every YAML document of `text` (named `file` in errors). Empty documents are skipped.
pub fn parse_documents(file: &str, text: &str) -> Result<Vec<Value>, ParseError> {
    use serde::Deserialize as _;
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let value = serde_norway::Value::deserialize(doc).map_err(|e| {
            let line = e.location().map(|l| l.line());
            ParseError {
                file: file.to_string(),
                message: e.to_string(),
                line,
            }
        })?;
        let json = yaml_to_json(value);
        if json.is_null() {
            continue;
        }
        out.push(json);
    }
    Ok(out)
}

/// Outcome of reading a manifest file as Kubernetes objects.
#[derive(Debug)]
pub enum FileObjects {
    /// The objects of the file, `kind: *List` flattened.
    Objects(Vec<Value>),
    /// A document has no `kind`: the file is not a manifest (e.g. a values file) and is skipped
    /// as a whole, as Fleet does.
    NotManifests,
}

/// Reads the Kubernetes objects of a manifest file (wrangler `yaml.ToObjects`).
pub fn file_objects(file: &str, text: &str) -> Result<FileObjects, ParseError> {
    let mut out = Vec::new();
    for doc in parse_documents(file, text)? {
        let Value::Object(map) = doc else {
            return Err(ParseError {
                file: file.to_string(),
                message: "a YAML document is not a mapping (expected a Kubernetes object)".into(),
                line: None,
            });
        };
        if map.is_empty() {
            continue;
        }
        let kind = map
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if kind.is_empty() {
            return Ok(FileObjects::NotManifests);
        }
        if kind.ends_with("List")
            && let Some(Value::Array(items)) = map.get("items")
        {
            out.extend(items.iter().filter(|i| i.is_object()).cloned());
            continue;
        }
        out.push(Value::Object(map));
    }
    Ok(FileObjects::Objects(out))
}

/// Reads a rendered multi-document stream (Helm or kustomize output) as objects; documents
/// without `kind` are errors here.
pub fn stream_objects(source: &str, text: &str) -> Result<Vec<Value>, ParseError> {
    match file_objects(source, text)? {
        FileObjects::Objects(objs) => Ok(objs),
        FileObjects::NotManifests => Err(ParseError {
            file: source.to_string(),
            message: "a rendered document has no kind".into(),
            line: None,
        }),
    }
}

/// `apiVersion` of an object.
pub fn api_version(obj: &Value) -> &str {
    obj.get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `kind` of an object.
pub fn kind(obj: &Value) -> &str {
    obj.get("kind").and_then(Value::as_str).unwrap_or_default()
}

/// `metadata.name` of an object.
pub fn name(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Mutable `metadata` of an object, created if missing.
pub fn metadata_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let map = obj.as_object_mut()?;
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
}

/// Merges `extra` into the string map `metadata.<field>` (labels or annotations).
pub fn merge_string_map(obj: &mut Value, field: &str, extra: &[(&str, &str)]) {
    let Some(meta) = metadata_mut(obj) else {
        return;
    };
    let entry = meta
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    if let Some(m) = entry.as_object_mut() {
        for (k, v) in extra {
            m.insert((*k).to_string(), Value::String((*v).to_string()));
        }
    }
}

/// Cleans an object for export (wrangler `CleanObjectForExport`): metadata keeps only the name
/// (or generateName), namespace, labels and annotations (minus `kubectl.kubernetes.io/`
/// ones), `status` and an empty `spec` are dropped.
pub fn clean_for_export(obj: &Value) -> Result<Value, String> {
    let Value::Object(map) = obj else {
        return Err("not an object".into());
    };
    let mut data = map.clone();
    let meta = map
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut out_meta = Map::new();
    let non_empty = |k: &str| {
        meta.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(n) = non_empty("name") {
        out_meta.insert("name".into(), Value::String(n.into()));
    } else if let Some(g) = non_empty("generateName") {
        out_meta.insert("generateName".into(), Value::String(g.into()));
    } else {
        return Err(format!(
            "either name or generateName must be set on {} {}",
            api_version(obj),
            kind(obj)
        ));
    }
    if let Some(ns) = non_empty("namespace") {
        out_meta.insert("namespace".into(), Value::String(ns.into()));
    }
    for field in ["annotations", "labels"] {
        if let Some(Value::Object(m)) = meta.get(field) {
            let cleaned: Map<String, Value> = m
                .iter()
                .filter(|(k, _)| !k.starts_with("kubectl.kubernetes.io/"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !cleaned.is_empty() {
                out_meta.insert(field.into(), Value::Object(cleaned));
            }
        }
    }
    match data.get("spec") {
        Some(Value::Null) => {
            data.remove("spec");
        }
        Some(Value::Object(m)) if m.is_empty() => {
            data.remove("spec");
        }
        _ => {}
    }
    data.insert("metadata".into(), Value::Object(out_meta));
    data.remove("status");
    Ok(Value::Object(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_and_lists() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n---\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: b}\n";
        let FileObjects::Objects(objs) = file_objects("f.yaml", text).unwrap() else {
            panic!()
        };
        assert_eq!(objs.len(), 2);
        assert_eq!(kind(&objs[1]), "Secret");
    }

    #[test]
    fn files_without_kind_are_not_manifests() {
        assert!(matches!(
            file_objects("values.yaml", "replicas: 1\n").unwrap(),
            FileObjects::NotManifests
        ));
    }

    #[test]
    fn malformed_yaml_names_file_and_line() {
        let err =
            file_objects("deploy.yaml", "kind: Deployment\nmetadata:\n  name: [x\n").unwrap_err();
        assert_eq!(err.file, "deploy.yaml");
        assert!(err.line.is_some(), "{err}");
        assert!(err.to_string().starts_with("deploy.yaml: "), "{err}");
    }

    #[test]
    fn export_cleans_metadata_and_status() {
        let obj = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "uid": "x",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}, "labels": {"a": "b"}},
            "spec": {}, "status": {"x": 1}});
        assert_eq!(
            clean_for_export(&obj).unwrap(),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "labels": {"a": "b"}}})
        );
    }
}

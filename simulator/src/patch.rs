//! Patch semantics: list shapes (shared with server-side apply), JSON patch, JSON merge patch and
//! strategic merge patch for built-in kinds.

use serde_json::{Map, Value};

/// How a list is merged: replaced whole, merged by key, or treated as a set of scalars.
#[derive(Debug, Clone, PartialEq)]
pub enum ListType {
    Atomic,
    Map(Vec<String>),
    Set,
}

/// What is known about the shape of the value at some path: built-in Go struct tags (as
/// `patchMergeKey`/`listType` markers), a CRD's structural schema, or nothing.
#[derive(Debug, Clone, Copy)]
pub enum Shape<'a> {
    Builtin {
        kind: &'a str,
        field: &'a str,
        parent: &'a str,
    },
    Crd(Option<&'a Value>),
}

impl<'a> Shape<'a> {
    /// The shape at the root of an object of `kind`; `schema` is the CRD version's schema.
    pub fn root(kind: &'a str, builtin: bool, schema: Option<&'a Value>) -> Shape<'a> {
        if builtin {
            Shape::Builtin {
                kind,
                field: "",
                parent: "",
            }
        } else {
            Shape::Crd(schema)
        }
    }

    pub fn field(&self, name: &'a str, at_root: bool) -> Shape<'a> {
        match *self {
            Shape::Builtin { kind, field, .. } => Shape::Builtin {
                kind,
                field: name,
                parent: field,
            },
            Shape::Crd(_) if at_root && name == "metadata" => Shape::Builtin {
                kind: "",
                field: "metadata",
                parent: "",
            },
            Shape::Crd(schema) => Shape::Crd(schema.and_then(|s| {
                s.get("properties")
                    .and_then(|p| p.get(name))
                    .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
            })),
        }
    }

    pub fn items(&self) -> Shape<'a> {
        match *self {
            Shape::Builtin { kind, field, .. } => Shape::Builtin {
                kind,
                field: "",
                parent: field,
            },
            Shape::Crd(schema) => Shape::Crd(schema.and_then(|s| s.get("items"))),
        }
    }

    pub fn list_type(&self) -> ListType {
        match *self {
            Shape::Builtin {
                kind,
                field,
                parent,
            } => builtin_list_type(kind, field, parent),
            Shape::Crd(schema) => {
                let Some(s) = schema else {
                    return ListType::Atomic;
                };
                match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
                    Some("map") => ListType::Map(
                        s.get("x-kubernetes-list-map-keys")
                            .and_then(Value::as_array)
                            .map(|k| {
                                k.iter()
                                    .filter_map(|k| k.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    ),
                    Some("set") => ListType::Set,
                    _ => ListType::Atomic,
                }
            }
        }
    }
}

fn builtin_list_type(kind: &str, field: &str, parent: &str) -> ListType {
    let key = |k: &str| ListType::Map(vec![k.to_string()]);
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => key("name"),
        "secrets" if kind == "ServiceAccount" => key("name"),
        "ports" if kind == "Service" && parent == "spec" => key("port"),
        "ports" => key("containerPort"),
        "volumeMounts" => key("mountPath"),
        "volumeDevices" => key("devicePath"),
        "conditions" => key("type"),
        "hostAliases" => key("ip"),
        "ownerReferences" => key("uid"),
        "topologySpreadConstraints" => key("topologyKey"),
        // The built-in lists upstream marks `+listType=set`; every other unkeyed built-in list is
        // `atomic` there too (args, command, verbs, tolerations, ...).
        "finalizers" if parent == "metadata" => ListType::Set,
        "podCIDRs" if kind == "Node" => ListType::Set,
        _ => ListType::Atomic,
    }
}

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq)]
pub enum PatchError {
    /// The patch document itself is malformed (400).
    Malformed(String),
    /// The patch is well-formed but does not apply to this object (422).
    Inapplicable(String),
}

/// RFC 6902 JSON patch, with the json-patch version kube-rs itself uses.
pub fn json_patch(target: &mut Value, patch: &[u8]) -> Result<(), PatchError> {
    let ops: kube_json_patch::Patch = serde_json::from_slice(patch)
        .map_err(|e| PatchError::Malformed(format!("error decoding patch: {e}")))?;
    kube_json_patch::patch(target, &ops).map_err(|e| PatchError::Inapplicable(e.to_string()))
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    if !patch.is_object() {
        return Err(PatchError::Malformed(
            "merge patch must be a JSON object".to_string(),
        ));
    }
    kube_json_patch::merge(target, patch);
    Ok(())
}

/// Strategic merge patch as kube-apiserver applies it to built-in kinds.
pub fn strategic_merge_patch(
    target: &mut Value,
    patch: &Value,
    kind: &str,
) -> Result<(), PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::Malformed(
            "strategic merge patch must be a JSON object".to_string(),
        ));
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let shape = Shape::root(kind, true, None);
    if let Value::Object(map) = target
        && merge_map(map, patch, shape)?
    {
        return Err(PatchError::Inapplicable(
            "cannot delete the whole object with a patch".to_string(),
        ));
    }
    Ok(())
}

/// Returns true when the patch asks to delete the map itself (`$patch: delete`).
fn merge_map(
    orig: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    shape: Shape<'_>,
) -> Result<bool, PatchError> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *orig = strip_directives(patch);
            return Ok(false);
        }
        Some("delete") => return Ok(true),
        Some(other) => {
            return Err(PatchError::Malformed(format!(
                "unknown patch type: {other}"
            )));
        }
        None => {}
    }
    let at_root = matches!(
        shape,
        Shape::Builtin {
            field: "",
            parent: "",
            ..
        }
    );
    for (key, value) in patch {
        if key.starts_with('$') {
            if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/")
                && let (Some(Value::Array(list)), Some(remove)) =
                    (orig.get_mut(field), value.as_array())
            {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        if value.is_null() {
            orig.remove(key);
            continue;
        }
        let child = shape.field(key, at_root);
        match (orig.get_mut(key), value) {
            (Some(Value::Object(o)), Value::Object(p)) => {
                if merge_map(o, p, child)? {
                    orig.remove(key);
                }
            }
            (Some(Value::Array(o)), Value::Array(p)) => merge_list(o, p, child)?,
            (_, Value::Object(p)) => {
                if p.get("$patch").and_then(Value::as_str) != Some("delete") {
                    orig.insert(key.clone(), Value::Object(strip_directives(p)));
                }
            }
            (_, Value::Array(p)) => {
                let mut list = Vec::new();
                merge_list(&mut list, p, child)?;
                orig.insert(key.clone(), Value::Array(list));
            }
            (_, v) => {
                orig.insert(key.clone(), v.clone());
            }
        }
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$setElementOrder/")
            && let (Some(Value::Array(list)), Some(order)) = (orig.get_mut(field), value.as_array())
        {
            let child = shape.field(field, at_root);
            apply_order(list, order, &child.list_type());
        }
    }
    if let Some(Value::Array(retain)) = patch.get("$retainKeys") {
        orig.retain(|k, _| retain.iter().any(|r| r.as_str() == Some(k)));
    }
    Ok(false)
}

fn strip_directives(map: &Map<String, Value>) -> Map<String, Value> {
    map.iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| {
            let v = match v {
                Value::Object(m) => Value::Object(strip_directives(m)),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

fn key_of<'v>(item: &'v Value, keys: &[String]) -> Option<&'v Value> {
    keys.first().and_then(|k| item.get(k))
}

fn merge_list(orig: &mut Vec<Value>, patch: &[Value], shape: Shape<'_>) -> Result<(), PatchError> {
    let list_type = shape.list_type();
    let replace = patch
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"));
    match list_type {
        ListType::Map(keys) if !replace => {
            for item in patch {
                let Value::Object(p) = item else {
                    return Err(PatchError::Malformed(format!(
                        "list item is not an object: {item}"
                    )));
                };
                let Some(k) = key_of(item, &keys) else {
                    return Err(PatchError::Malformed(format!(
                        "map: {item} does not contain declared merge key: {}",
                        keys.join(",")
                    )));
                };
                let pos = orig.iter().position(|o| key_of(o, &keys) == Some(k));
                let delete = p.get("$patch").and_then(Value::as_str) == Some("delete");
                match (pos, delete) {
                    (Some(i), true) => {
                        orig.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => {
                        if let Value::Object(o) = &mut orig[i]
                            && merge_map(o, p, shape.items())?
                        {
                            orig.remove(i);
                        }
                    }
                    (None, false) => orig.push(Value::Object(strip_directives(p))),
                }
            }
        }
        ListType::Set if !replace => {
            for item in patch {
                if !orig.contains(item) {
                    orig.push(item.clone());
                }
            }
        }
        _ => {
            *orig = patch
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .map(|i| match i {
                    Value::Object(m) => Value::Object(strip_directives(m)),
                    other => other.clone(),
                })
                .collect();
        }
    }
    Ok(())
}

/// `$setElementOrder`: items named in the order come first, in that order.
fn apply_order(list: &mut [Value], order: &[Value], list_type: &ListType) {
    let rank = |item: &Value| -> usize {
        let found = match list_type {
            ListType::Map(keys) => order
                .iter()
                .position(|o| key_of(o, keys).is_some() && key_of(o, keys) == key_of(item, keys)),
            _ => order.iter().position(|o| o == item),
        };
        found.unwrap_or(usize::MAX)
    };
    list.sort_by_key(|item| rank(item));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_containers_by_name_and_env_by_name() {
        let mut deploy = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]}
        ]}}}});
        strategic_merge_patch(&mut deploy, &patch, "Deployment").unwrap();
        assert_eq!(
            deploy,
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "a:2", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
                {"name": "b", "image": "b:1"}
            ]}}}})
        );
    }

    #[test]
    fn strategic_merge_honours_delete_replace_and_element_order_directives() {
        let mut pod = json!({"metadata": {"finalizers": ["a"]}, "spec": {"containers": [{"name": "a"}, {"name": "b"}], "tolerations": [{"key": "x"}]}});
        let patch = json!({
            "metadata": {"finalizers": ["b"]},
            "spec": {
                "containers": [{"name": "a", "$patch": "delete"}, {"name": "c"}],
                "$setElementOrder/containers": [{"name": "c"}, {"name": "b"}],
                "tolerations": [{"key": "y"}]
            }
        });
        strategic_merge_patch(&mut pod, &patch, "Pod").unwrap();
        assert_eq!(
            pod,
            json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"containers": [{"name": "c"}, {"name": "b"}], "tolerations": [{"key": "y"}]}})
        );
    }

    #[test]
    fn json_patch_errors_distinguish_malformed_from_inapplicable() {
        let mut v = json!({"a": 1});
        assert!(matches!(
            json_patch(&mut v, b"{"),
            Err(PatchError::Malformed(_))
        ));
        assert!(matches!(
            json_patch(&mut v, br#"[{"op":"remove","path":"/b"}]"#),
            Err(PatchError::Inapplicable(_))
        ));
        json_patch(&mut v, br#"[{"op":"replace","path":"/a","value":2}]"#).unwrap();
        assert_eq!(v, json!({"a": 2}));
    }
}

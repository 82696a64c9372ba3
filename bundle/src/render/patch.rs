//! `yaml.overlays` of raw-YAML bundles (Fleet's `helmdeployer/render/patch`).
//!
//! For each overlay name, in order, every file under `overlays/<name>/` either replaces (or
//! adds) the file at the same relative path, or, when its name contains `_patch.`, patches the
//! file named without `_patch`: a YAML list is a JSON patch (RFC 6902); a map is a strategic
//! merge patch for built-in Kubernetes kinds and a JSON merge patch (RFC 7386) otherwise.
//! The `overlays/` files themselves are then dropped.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::RenderError;
use super::objects::yaml_to_json;

const OVERLAY_PREFIX: &str = "overlays/";

/// Applies `overlays` to `files` (name → content) and returns the files without `overlays/`,
/// sorted by name.
pub fn process(
    files: &[(String, Vec<u8>)],
    overlays: &[String],
) -> Result<Vec<(String, Vec<u8>)>, RenderError> {
    let mut content: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (i, (name, data)) in files.iter().enumerate() {
        let name = if name.is_empty() {
            format!("manifests/file{i:03}.yaml")
        } else {
            name.clone()
        };
        content.insert(name, data.clone());
    }
    for overlay in overlays {
        let prefix = format!("{OVERLAY_PREFIX}{overlay}/");
        let members: Vec<(String, Vec<u8>)> = content
            .iter()
            .filter(|(n, _)| n.starts_with(&prefix))
            .map(|(n, d)| (n[prefix.len()..].to_string(), d.clone()))
            .collect();
        if members.is_empty() && !overlay_dir_exists(&content, overlay) {
            return Err(RenderError::MissingOverlay {
                overlay: overlay.clone(),
            });
        }
        // Replacements first, then patches, so that a patch applies to the overlay's own file.
        for (name, data) in members.iter().filter(|(n, _)| patch_target(n).is_none()) {
            content.insert(name.clone(), data.clone());
        }
        for (name, data) in &members {
            let Some(target) = patch_target(name) else {
                continue;
            };
            let base = content.get(&target).ok_or_else(|| RenderError::Overlay {
                file: format!("{prefix}{name}"),
                message: format!("failed to find base file {target} to patch"),
            })?;
            let base_json = to_json(&target, base)?;
            let patch_json = to_json(&format!("{prefix}{name}"), data)?;
            let patched =
                apply(&base_json, &patch_json).map_err(|message| RenderError::Overlay {
                    file: format!("{prefix}{name}"),
                    message: format!("failed to patch {target}: {message}"),
                })?;
            content.insert(target, serde_json::to_vec(&patched).unwrap_or_default());
        }
    }
    Ok(content
        .into_iter()
        .filter(|(n, _)| !n.starts_with(OVERLAY_PREFIX))
        .collect())
}

fn overlay_dir_exists(content: &BTreeMap<String, Vec<u8>>, overlay: &str) -> bool {
    let prefix = format!("{OVERLAY_PREFIX}{overlay}/");
    content.keys().any(|k| k.starts_with(&prefix))
}

/// `dir/x_patch.yaml` patches `dir/x.yaml`.
fn patch_target(name: &str) -> Option<String> {
    let (dir, base) = match name.rsplit_once('/') {
        Some((d, b)) => (Some(d), b),
        None => (None, name),
    };
    if !base.contains("_patch.") {
        return None;
    }
    let target = base.replacen("_patch.", ".", 1);
    Some(match dir {
        Some(d) => format!("{d}/{target}"),
        None => target,
    })
}

fn to_json(file: &str, data: &[u8]) -> Result<Value, RenderError> {
    let text = String::from_utf8_lossy(data);
    let value: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| RenderError::Overlay {
            file: file.to_string(),
            message: format!("failed to convert to json: {e}"),
        })?;
    Ok(match yaml_to_json(value) {
        Value::Null => Value::Object(Map::new()),
        v => v,
    })
}

/// Applies a patch the way wrangler's `patch.Apply` chooses: JSON patch for a list, strategic
/// merge for built-in kinds, JSON merge patch otherwise.
pub fn apply(original: &Value, patch: &Value) -> Result<Value, String> {
    if let Value::Array(_) = patch {
        let ops: json_patch::Patch =
            serde_json::from_value(patch.clone()).map_err(|e| e.to_string())?;
        let mut doc = original.clone();
        json_patch::patch(&mut doc, &ops).map_err(|e| e.to_string())?;
        return Ok(doc);
    }
    let api_version = original
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = original
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if is_builtin(api_version, kind) {
        return Ok(strategic_merge(original, patch, ""));
    }
    let mut doc = original.clone();
    json_patch::merge(&mut doc, patch);
    Ok(doc)
}

fn is_builtin(api_version: &str, kind: &str) -> bool {
    if kind.is_empty() || api_version.is_empty() || kind == "CustomResourceDefinition" {
        return false;
    }
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    matches!(
        group,
        "" | "apps"
            | "batch"
            | "autoscaling"
            | "policy"
            | "networking.k8s.io"
            | "rbac.authorization.k8s.io"
            | "storage.k8s.io"
            | "scheduling.k8s.io"
            | "coordination.k8s.io"
            | "discovery.k8s.io"
            | "node.k8s.io"
            | "certificates.k8s.io"
            | "admissionregistration.k8s.io"
            | "events.k8s.io"
            | "flowcontrol.apiserver.k8s.io"
            | "resource.k8s.io"
    )
}

/// The merge key of a list field in Kubernetes' built-in types (the `patchMergeKey` struct
/// tags); lists without one are replaced.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    let has = |k: &str| items.iter().any(|i| i.get(k).is_some());
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "conditions"
        | "resourceClaims" => {
            if field == "conditions" {
                "type"
            } else {
                "name"
            }
        }
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "ports" if has("containerPort") => "containerPort",
        "ports" => "port",
        _ => return None,
    })
}

fn strategic_merge(original: &Value, patch: &Value, field: &str) -> Value {
    match (original, patch) {
        (Value::Object(o), Value::Object(p)) => {
            match p.get("$patch").and_then(Value::as_str) {
                Some("replace") => {
                    let mut r = p.clone();
                    r.remove("$patch");
                    return Value::Object(r);
                }
                Some("delete") => return Value::Null,
                _ => {}
            }
            let mut out = o.clone();
            for (k, v) in p {
                if k.starts_with("$setElementOrder/") || k == "$patch" || k == "$retainKeys" {
                    continue;
                }
                if v.is_null() {
                    out.remove(k);
                    continue;
                }
                let merged = match out.get(k) {
                    Some(existing) => strategic_merge(existing, v, k),
                    None => strip_directives(v),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(o), Value::Array(p)) => {
            let Some(key) = merge_key(field, o).or_else(|| merge_key(field, p)) else {
                return strip_directives(patch);
            };
            let mut out: Vec<Value> = o.clone();
            for item in p {
                let item_key = item.get(key);
                let is_delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                let pos = item_key.and_then(|ik| out.iter().position(|e| e.get(key) == Some(ik)));
                match (pos, is_delete) {
                    (Some(i), true) => {
                        out.remove(i);
                    }
                    (None, true) => {}
                    (Some(i), false) => out[i] = strategic_merge(&out[i], item, ""),
                    (None, false) => out.push(strip_directives(item)),
                }
            }
            Value::Array(out)
        }
        _ => strip_directives(patch),
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn files(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        list.iter()
            .map(|(n, c)| (n.to_string(), c.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn patch_files_merge_and_other_files_replace() {
        let input = files(&[
            (
                "svc.yaml",
                "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  type: NodePort\n  selector: {role: slave, app: redis}\n",
            ),
            (
                "dep.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n",
            ),
            (
                "overlays/o/svc_patch.yaml",
                "spec:\n  selector:\n    role: master\n",
            ),
            ("overlays/o/dep.yaml", ""),
            ("overlays/o/new.yaml", "kind: ConfigMap\n"),
        ]);
        let out = process(&input, &["o".into()]).unwrap();
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["dep.yaml", "new.yaml", "svc.yaml"]);
        assert!(out[0].1.is_empty());
        let svc: Value = serde_json::from_slice(&out[2].1).unwrap();
        assert_eq!(
            svc["spec"]["selector"],
            json!({"role": "master", "app": "redis"})
        );
        assert_eq!(svc["spec"]["type"], "NodePort");
    }

    #[test]
    fn missing_overlay_is_an_error() {
        let err = process(&files(&[("a.yaml", "kind: A\n")]), &["nope".into()]).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn patch_without_base_file_is_an_error() {
        let err = process(
            &files(&[("overlays/o/x_patch.yaml", "a: 1\n")]),
            &["o".into()],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("failed to find base file x.yaml"),
            "{err}"
        );
    }

    #[test]
    fn strategic_merge_of_containers_by_name() {
        let orig = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}});
        let out = apply(&orig, &patch).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}])
        );
    }

    #[test]
    fn custom_resources_use_merge_patch_and_lists_use_json_patch() {
        let orig = json!({"apiVersion": "example.com/v1", "kind": "Thing", "spec": {"items": [1, 2], "x": 1}});
        let out = apply(&orig, &json!({"spec": {"items": [3], "x": null}})).unwrap();
        assert_eq!(out["spec"], json!({"items": [3]}));
        let out = apply(
            &orig,
            &json!([{"op": "replace", "path": "/spec/x", "value": 5}]),
        )
        .unwrap();
        assert_eq!(out["spec"]["x"], 5);
    }
}

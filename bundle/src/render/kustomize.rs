//! Kustomize bundles (Fleet's `helmdeployer/kustomize`), built with `kubectl kustomize`.
//!
//! The bundle's files are written to a temporary folder. When Helm produced manifests (a chart
//! combined with a kustomization), they are added as `fleet-manifests.yaml` in the kustomize
//! dir and listed first in its `resources`. Resources keep the order kustomize reads them in
//! (`--reorder none`), like Fleet's embedded kustomize.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::RenderError;
use super::objects;

/// The kustomization file name Fleet looks for.
pub const KUSTOMIZE_YAML: &str = "kustomization.yaml";
/// Name of the file holding Helm's output inside the kustomize dir.
pub const MANIFESTS_YAML: &str = "fleet-manifests.yaml";

/// The default kubectl: `$FLEET_KUBECTL`, or `kubectl` from `PATH`.
pub fn kubectl_path() -> PathBuf {
    std::env::var_os("FLEET_KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("kubectl"))
}

/// Runs kustomize on `dir` (relative to the bundle root) over `files`; `manifests` is the Helm
/// output to include. Returns `None` when `dir` has no kustomization.yaml.
pub fn process(
    files: &[(String, Vec<u8>)],
    manifests: &[u8],
    dir: &str,
    kubectl: &Path,
) -> Result<Option<Vec<Value>>, RenderError> {
    let dir = if dir.is_empty() { "." } else { dir };
    let dir = crate::names::clean_path(dir);
    let kustomization = if dir == "." {
        KUSTOMIZE_YAML.to_string()
    } else {
        format!("{dir}/{KUSTOMIZE_YAML}")
    };
    let Some(kustomization_content) = files
        .iter()
        .find(|(n, _)| *n == kustomization)
        .map(|(_, c)| c)
    else {
        return Ok(None);
    };
    let tmp = tempfile::Builder::new()
        .prefix("fleet-kustomize")
        .tempdir()
        .map_err(|e| RenderError::Io {
            what: "creating a temporary folder for kustomize".into(),
            source: e,
        })?;
    let root = tmp.path();
    for (name, data) in files {
        if name.is_empty() {
            continue;
        }
        write_file(root, name, data)?;
    }
    let manifests_name = if dir == "." {
        MANIFESTS_YAML.to_string()
    } else {
        format!("{dir}/{MANIFESTS_YAML}")
    };
    write_file(root, &manifests_name, manifests)?;
    if !manifests.is_empty()
        && let Some(modified) = add_manifests_resource(kustomization_content)
    {
        write_file(root, &kustomization, modified.as_bytes())?;
    }
    let output = run_kubectl_kustomize(kubectl, &root.join(&dir), &kustomization)?;
    let objs = objects::stream_objects(&format!("kustomize output of {kustomization}"), &output)
        .map_err(|e| RenderError::Kustomize {
            dir: dir.clone(),
            message: e.to_string(),
        })?;
    Ok(Some(objs))
}

fn write_file(root: &Path, name: &str, data: &[u8]) -> Result<(), RenderError> {
    let path = root.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| RenderError::Io {
            what: format!("creating {}", parent.display()),
            source: e,
        })?;
    }
    std::fs::write(&path, data).map_err(|e| RenderError::Io {
        what: format!("writing {name}"),
        source: e,
    })
}

/// Lists `fleet-manifests.yaml` first in the kustomization's resources (unless present).
/// `None` when the kustomization cannot be read as a map (left as is, like Fleet).
fn add_manifests_resource(content: &[u8]) -> Option<String> {
    let value: serde_norway::Value = serde_norway::from_slice(content).ok()?;
    let mut json = objects::yaml_to_json(value);
    let map = json.as_object_mut()?;
    let mut resources: Vec<Value> = match map.get("resources") {
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    if resources.iter().any(|r| r.as_str() == Some(MANIFESTS_YAML)) {
        return None;
    }
    resources.insert(0, Value::String(MANIFESTS_YAML.into()));
    map.insert("resources".into(), Value::Array(resources));
    Some(crate::goyaml::to_string(&json))
}

fn run_kubectl_kustomize(
    kubectl: &Path,
    dir: &Path,
    kustomization: &str,
) -> Result<String, RenderError> {
    let mut cmd = Command::new(kubectl);
    cmd.arg("kustomize");
    // Keep kustomize's input order unless the kustomization chooses one itself.
    let text = std::fs::read_to_string(dir.join(KUSTOMIZE_YAML)).unwrap_or_default();
    if !text.contains("sortOptions") {
        cmd.args(["--reorder", "none"]);
    }
    cmd.arg(dir);
    let out = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            RenderError::KubectlMissing {
                kubectl: kubectl.display().to_string(),
                kustomization: kustomization.to_string(),
            }
        } else {
            RenderError::Io {
                what: format!("running {} kustomize", kubectl.display()),
                source: e,
            }
        }
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let message: Vec<&str> = stderr
            .lines()
            .filter(|l| {
                !l.starts_with("# Warning") && !l.starts_with("Flag --reorder has been deprecated")
            })
            .collect();
        return Err(RenderError::Kustomize {
            dir: kustomization.to_string(),
            message: message.join("\n").trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_resource_is_listed_first() {
        let out = add_manifests_resource(b"resources:\n- a.yaml\n").unwrap();
        assert_eq!(out, "resources:\n- fleet-manifests.yaml\n- a.yaml\n");
        assert!(add_manifests_resource(b"resources: [fleet-manifests.yaml]\n").is_none());
    }

    #[test]
    fn no_kustomization_means_not_processed() {
        assert!(
            process(
                &[("a.yaml".into(), b"kind: A\n".to_vec())],
                b"",
                "",
                Path::new("kubectl")
            )
            .unwrap()
            .is_none()
        );
    }
}

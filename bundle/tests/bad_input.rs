//! Bad input through the public API, the way `fleet apply` / `fleet test` use it: every case
//! is an error that names the file (and line where there is one).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;

use fleet_api::{BundleDeploymentOptions, BundleResource};
use fleet_bundle::apply::build_bundles;
use fleet_bundle::bundlereader::{ReadOptions, read_bundle};
use fleet_bundle::options::merge;
use fleet_bundle::render::{RenderOptions, render};
use fleet_bundle::target::{ClusterFacts, TargetMatcher};

fn write(root: &Path, name: &str, content: &str) {
    let p = root.join(name);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

/// Reads the bundle in `dir` and renders it for a cluster with `labels`, like `fleet test`.
fn test_bundle(dir: &Path, labels: &[(&str, &str)]) -> Result<Vec<serde_json::Value>, String> {
    let bundle = read_bundle("test", dir, &ReadOptions::default())
        .map_err(|e| e.to_string())?
        .bundle;
    let matcher = TargetMatcher::for_bundle(&bundle).map_err(|e| e.to_string())?;
    let mut cluster = ClusterFacts {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    if labels.is_empty() {
        cluster.groups.insert("default".into(), Default::default());
    }
    let target = matcher
        .match_customization(&cluster)
        .ok_or("no match found")?;
    let options = merge(
        &bundle.spec.deployment_options(),
        &target.deployment_options(),
    );
    render(
        &bundle.spec.resources,
        &options,
        &RenderOptions::template("test"),
    )
    .map(|r| r.objects)
    .map_err(|e| e.to_string())
}

#[test]
fn malformed_manifest_yaml_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "deployments/web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {a: b\n",
    );
    let err = test_bundle(dir.path(), &[]).unwrap_err();
    assert!(err.starts_with("deployments/web.yaml: "), "{err}");
    assert!(err.contains("line "), "{err}");
}

#[test]
fn fleet_yaml_with_a_wrong_type_names_file_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "fleet.yaml",
        "defaultNamespace: apps\nyaml:\n  overlays: dev\n",
    );
    write(
        dir.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
    );
    let err = test_bundle(dir.path(), &[]).unwrap_err();
    assert!(
        err.contains("fleet.yaml:3: yaml.overlays: invalid type"),
        "{err}"
    );
}

#[test]
fn an_overlay_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "fleet.yaml",
        "targetCustomizations:\n- name: dev\n  clusterSelector: {matchLabels: {env: dev}}\n  yaml:\n    overlays: [missing]\n",
    );
    write(
        dir.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
    );
    let err = test_bundle(dir.path(), &[("env", "dev")]).unwrap_err();
    assert!(
        err.contains("overlay \"missing\" not found: no files under overlays/missing/"),
        "{err}"
    );
}

#[test]
fn a_kustomize_dir_that_fails() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "fleet.yaml",
        "kustomize:\n  dir: overlays/dev\n",
    );
    write(
        dir.path(),
        "overlays/dev/kustomization.yaml",
        "resources:\n- does-not-exist.yaml\n",
    );
    let err = test_bundle(dir.path(), &[]).unwrap_err();
    assert!(err.contains("overlays/dev"), "{err}");
    assert!(err.contains("kustomize"), "{err}");
}

#[test]
fn kustomize_without_kubectl() {
    let resources = vec![
        BundleResource {
            name: "kustomization.yaml".into(),
            content: "resources: [cm.yaml]\n".into(),
            encoding: String::new(),
        },
        BundleResource {
            name: "cm.yaml".into(),
            content: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n".into(),
            encoding: String::new(),
        },
    ];
    let mut ro = RenderOptions::template("t");
    ro.kubectl = "/nonexistent/kubectl".into();
    let err = render(&resources, &BundleDeploymentOptions::default(), &ro)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("kubectl is needed to build kustomize bundles"),
        "{err}"
    );
    assert!(err.contains("kustomization.yaml"), "{err}");
}

#[test]
fn an_empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_string_lossy().to_string();
    let err = build_bundles(
        "repo",
        std::slice::from_ref(&path),
        "fleet-local",
        &ReadOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains(&path), "{err}");
}

#[test]
fn apply_builds_nothing_when_one_bundle_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a/fleet.yaml", "{}\n");
    write(dir.path(), "a/cm.yaml", "kind: ConfigMap\n");
    write(
        dir.path(),
        "b/fleet.yaml",
        "helm:\n  valuesFiles: [missing.yaml]\n",
    );
    let path = dir.path().to_string_lossy().to_string();
    let err = build_bundles("repo", &[path], "fleet-local", &ReadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("b/missing.yaml"), "{err}");
}

#[test]
fn a_chart_with_a_broken_template() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "Chart.yaml",
        "apiVersion: v2\nname: broken\nversion: 0.1.0\n",
    );
    write(
        dir.path(),
        "templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.name | nosuchfunc }}\n",
    );
    let err = test_bundle(dir.path(), &[]).unwrap_err();
    assert!(err.contains("helm chart Chart.yaml"), "{err}");
    assert!(err.contains("templates/cm.yaml"), "{err}");
}

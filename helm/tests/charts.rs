//! Rendering whole charts: three realistic fixture charts snapshotted with insta, plus chart rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use fleet_helm::{Chart, RenderOptions, render};
use serde_json::json;

fn fixture(name: &str) -> Chart {
    Chart::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

fn opts() -> RenderOptions {
    RenderOptions {
        release_name: "prod".into(),
        namespace: "apps".into(),
        ..Default::default()
    }
}

#[test]
fn webapp_chart_with_helpers() {
    let out = render(&fixture("webapp"), &json!({}), &opts()).unwrap();
    assert_eq!(out.notes.as_deref(), Some("Visit http://web.example.com\n"));
    insta::assert_snapshot!("webapp", out.to_helm_template_output());
}

#[test]
fn webapp_values_override_and_skip_tests() {
    let values = json!({"autoscaling": {"enabled": false}, "ingress": {"enabled": false}, "serviceAccount": {"create": null}});
    let o = RenderOptions {
        skip_tests: true,
        ..opts()
    };
    let out = render(&fixture("webapp"), &values, &o).unwrap();
    let kinds: Vec<&str> = out.all().map(|m| m.kind.as_str()).collect();
    assert_eq!(kinds, vec!["Service", "Deployment"]);
    assert!(out.to_helm_template_output().contains("replicas: 2"));
}

#[test]
fn umbrella_chart_with_library_alias_tags_and_import_values() {
    let out = render(&fixture("umbrella"), &json!({}), &opts()).unwrap();
    insta::assert_snapshot!("umbrella", out.to_helm_template_output());
    // a tag switched off drops the subchart, a condition switches it back per alias
    let off = render(
        &fixture("umbrella"),
        &json!({"tags": {"workers": false}, "api": {"enabled": false}}),
        &opts(),
    )
    .unwrap();
    let sources: Vec<&str> = off.all().map(|m| m.source.as_str()).collect();
    assert_eq!(sources, vec!["umbrella/templates/summary.yaml"]);
}

#[test]
fn extras_chart_with_tpl_lookup_files_and_crds() {
    let o = RenderOptions {
        include_crds: true,
        ..opts()
    };
    let out = render(&fixture("extras"), &json!({}), &o).unwrap();
    insta::assert_snapshot!("extras", out.to_helm_template_output());
}

#[test]
fn schema_violations_are_reported() {
    let e = render(&fixture("extras"), &json!({"replicas": 0}), &opts())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("values don't meet the specifications of the schema"),
        "{e}"
    );
    assert!(e.contains("replicas"), "{e}");
}

#[test]
fn charts_load_from_archives_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let tgz = dir.path().join("webapp-1.2.3.tgz");
    {
        let f = std::fs::File::create(&tgz).unwrap();
        let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        tar.append_dir_all(
            "webapp",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webapp"),
        )
        .unwrap();
        tar.into_inner().unwrap().finish().unwrap();
    }
    let from_tgz = Chart::load(&tgz).unwrap();
    let a = render(&from_tgz, &json!({}), &opts())
        .unwrap()
        .to_helm_template_output();
    let b = render(&fixture("webapp"), &json!({}), &opts())
        .unwrap()
        .to_helm_template_output();
    assert_eq!(a, b);

    let files = vec![
        (
            "Chart.yaml".to_string(),
            b"apiVersion: v2\nname: mem\nversion: 0.0.1\n".to_vec(),
        ),
        (
            "templates/cm.yaml".to_string(),
            b"kind: ConfigMap\nmetadata:\n  name: {{ .Values.n }}\n".to_vec(),
        ),
        (
            "templates/_h.tpl".to_string(),
            b"{{ define \"x\" }}{{ end }}".to_vec(),
        ),
        ("values.yaml".to_string(), b"n: a\n".to_vec()),
    ];
    let c = Chart::from_files(files).unwrap();
    let out = render(&c, &json!({"n": "b"}), &opts()).unwrap();
    assert_eq!(
        out.to_helm_template_output(),
        "---\n# Source: mem/templates/cm.yaml\nkind: ConfigMap\nmetadata:\n  name: b\n"
    );
}

#[test]
fn bad_charts_are_rejected_with_helm_messages() {
    let bad = |chart_yaml: &str| {
        Chart::from_files(vec![("Chart.yaml".into(), chart_yaml.as_bytes().to_vec())])
            .unwrap_err()
            .to_string()
    };
    assert!(bad("name: x\nversion: 1.0.0\n").contains("chart.metadata.apiVersion is required"));
    assert!(bad("apiVersion: v2\nversion: 1.0.0\n").contains("chart.metadata.name is required"));
    assert!(
        bad("apiVersion: v2\nname: x\nversion: abc\n")
            .contains("chart.metadata.version \"abc\" is invalid")
    );
    assert!(
        bad("apiVersion: v2\nname: x\nversion: 1.0.0\ntype: foo\n")
            .contains("chart.metadata.type must be application or library")
    );
    let lib = Chart::from_files(vec![(
        "Chart.yaml".into(),
        b"apiVersion: v2\nname: x\nversion: 1.0.0\ntype: library\n".to_vec(),
    )])
    .unwrap();
    assert_eq!(
        render(&lib, &json!({}), &opts()).unwrap_err().to_string(),
        "library charts are not installable"
    );
}

#[test]
fn template_errors_name_the_file_and_line() {
    let files = vec![
        (
            "Chart.yaml".to_string(),
            b"apiVersion: v2\nname: c\nversion: 0.0.1\n".to_vec(),
        ),
        (
            "templates/a.yaml".to_string(),
            b"a: 1\nb: {{ required \"b is required\" .Values.b }}\n".to_vec(),
        ),
    ];
    let c = Chart::from_files(files).unwrap();
    assert_eq!(
        render(&c, &json!({}), &opts()).unwrap_err().to_string(),
        "execution error at (c/templates/a.yaml:2:6): b is required"
    );
    let files = vec![
        (
            "Chart.yaml".to_string(),
            b"apiVersion: v2\nname: c\nversion: 0.0.1\n".to_vec(),
        ),
        (
            "templates/a.yaml".to_string(),
            b"a: {{ .Values.x.y }}\n".to_vec(),
        ),
    ];
    let c = Chart::from_files(files).unwrap();
    assert_eq!(
        render(&c, &json!({}), &opts()).unwrap_err().to_string(),
        "template: c/templates/a.yaml:1:13: executing \"c/templates/a.yaml\" at <.Values.x.y>: nil pointer evaluating interface {}.y"
    );
    let files = vec![
        (
            "Chart.yaml".to_string(),
            b"apiVersion: v2\nname: c\nversion: 0.0.1\n".to_vec(),
        ),
        ("templates/a.yaml".to_string(), b"a: b: c\n".to_vec()),
    ];
    let c = Chart::from_files(files).unwrap();
    assert!(
        render(&c, &json!({}), &opts())
            .unwrap_err()
            .to_string()
            .starts_with("YAML parse error on c/templates/a.yaml")
    );
}

#[test]
fn null_values_delete_chart_defaults() {
    let files = vec![
        (
            "Chart.yaml".to_string(),
            b"apiVersion: v2\nname: c\nversion: 0.0.1\n".to_vec(),
        ),
        ("values.yaml".to_string(), b"a:\n  b: 1\n  c: 2\n".to_vec()),
        (
            "templates/a.yaml".to_string(),
            b"v: {{ toJson .Values.a }}\n".to_vec(),
        ),
    ];
    let c = Chart::from_files(files).unwrap();
    let out = render(&c, &json!({"a": {"b": null}}), &opts()).unwrap();
    assert_eq!(out.manifests[0].content, "v: {\"c\":2}\n");
}

#[test]
fn kube_version_constraints_and_missing_dependencies_are_checked() {
    let files = |chart_yaml: &str| {
        vec![
            ("Chart.yaml".to_string(), chart_yaml.as_bytes().to_vec()),
            (
                "templates/a.yaml".to_string(),
                b"a: {{ .Capabilities.KubeVersion }}\n".to_vec(),
            ),
        ]
    };
    let c = Chart::from_files(files(
        "apiVersion: v2\nname: c\nversion: 0.0.1\nkubeVersion: \">=1.22.0-0\"\n",
    ))
    .unwrap();
    let e = render(&c, &json!({}), &opts()).unwrap_err().to_string();
    assert_eq!(
        e,
        "chart requires kubeVersion: >=1.22.0-0 which is incompatible with Kubernetes v1.20.0"
    );
    let newer = RenderOptions {
        kube_version: Some("1.29.2".into()),
        ..opts()
    };
    assert_eq!(
        render(&c, &json!({}), &newer).unwrap().manifests[0].content,
        "a: v1.29.2\n"
    );

    let c = Chart::from_files(files(
        "apiVersion: v2\nname: c\nversion: 0.0.1\ndependencies:\n- name: gone\n  version: 1.0.0\n",
    ))
    .unwrap();
    let e = render(&c, &json!({}), &opts()).unwrap_err().to_string();
    assert!(
        e.ends_with("found in Chart.yaml, but missing in charts/ directory: gone"),
        "{e}"
    );
}

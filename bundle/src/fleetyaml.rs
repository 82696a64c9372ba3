//! `fleet.yaml`: the bundle options of a folder (Fleet's `FleetYAML`: `name`, `labels`, the
//! inline `BundleSpec`, `targetCustomizations`, `imageScans`, `overrideTargets`).
//!
//! Reading is strict about types (an error names the file, the key path and the line) and
//! lenient about keys: an unknown key is a [`Warning`] naming the file, line and key, as a
//! typo such as `defaultNamspace` would otherwise be silently ignored.

use std::collections::BTreeMap;
use std::fmt;

use fleet_api::{BundleSpec, BundleTarget, GitTarget};
use serde::Deserialize;
use serde_json::Value;

use crate::render::objects::yaml_to_json;

/// The file names of a bundle's options, in the order they are looked for.
pub const FLEET_YAML_NAMES: [&str; 2] = ["fleet.yaml", "fleet.yml"];

/// A problem in a fleet.yaml that does not stop the bundle from being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// Dotted path of the key, e.g. `helm.valuesFile`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {} {:?}",
            self.file, self.line, self.message, self.key
        )
    }
}

/// A fleet.yaml that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct FleetYamlError {
    /// The file.
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong (with the key path for type errors).
    pub message: String,
}

/// An image scan declared in fleet.yaml (`imageScans`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ImageScanYaml {
    /// Name of the tag; required when `image` is set.
    pub tag_name: String,
    /// The rest of the image scan spec (image, interval, policy, secretRef...).
    #[serde(flatten)]
    pub spec: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Extras {
    name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    target_customizations: Vec<BundleTarget>,
    image_scans: Vec<ImageScanYaml>,
    override_targets: Option<Vec<GitTarget>>,
}

/// A parsed fleet.yaml.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetYaml {
    /// Bundle name override.
    pub name: String,
    /// Labels added to the Bundle.
    pub labels: BTreeMap<String, String>,
    /// Annotations of the Bundle (fleet.yaml is also read as object metadata).
    pub annotations: BTreeMap<String, String>,
    /// The bundle spec options.
    pub spec: BundleSpec,
    /// Per-target customizations, appended to the targets.
    pub target_customizations: Vec<BundleTarget>,
    /// Image scans.
    pub image_scans: Vec<ImageScanYaml>,
    /// Targets that replace the GitRepo's.
    pub override_targets: Option<Vec<GitTarget>>,
    /// The raw document, as JSON.
    pub raw: Value,
}

/// Parses fleet.yaml text; `file` names it in errors and warnings.
pub fn parse(file: &str, text: &str) -> Result<(FleetYaml, Vec<Warning>), FleetYamlError> {
    let yaml: serde_norway::Value = if text.trim().is_empty() {
        serde_norway::Value::Mapping(Default::default())
    } else {
        serde_norway::from_str(text).map_err(|e| FleetYamlError {
            file: file.to_string(),
            line: e.location().map(|l| l.line()),
            message: e.to_string(),
        })?
    };
    let raw = match yaml_to_json(yaml) {
        Value::Null => Value::Object(Default::default()),
        v @ Value::Object(_) => v,
        other => {
            return Err(FleetYamlError {
                file: file.to_string(),
                line: Some(1),
                message: format!("expected a mapping of options, found {}", json_type(&other)),
            });
        }
    };
    let tree = marked_yaml::parse_yaml(0, text).ok();
    let typed_err = |path: String, message: String| FleetYamlError {
        file: file.to_string(),
        line: tree.as_ref().and_then(|t| line_of_path(t, &path)),
        message: if path.is_empty() || path == "." {
            message
        } else {
            format!("{path}: {message}")
        },
    };
    let spec: BundleSpec = serde_path_to_error::deserialize(&raw)
        .map_err(|e| typed_err(e.path().to_string(), e.inner().to_string()))?;
    let extras: Extras = serde_path_to_error::deserialize(&raw)
        .map_err(|e| typed_err(e.path().to_string(), e.inner().to_string()))?;
    let mut warnings = Vec::new();
    if let Some(tree) = &tree {
        check_keys(file, tree, &fleet_yaml_schema(), "", &mut warnings);
    }
    Ok((
        FleetYaml {
            name: extras.name,
            labels: extras.labels,
            annotations: extras.annotations,
            spec,
            target_customizations: extras.target_customizations,
            image_scans: extras.image_scans,
            override_targets: extras.override_targets,
            raw,
        },
        warnings,
    ))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn line_of_path(tree: &marked_yaml::Node, path: &str) -> Option<usize> {
    let mut node = tree;
    let mut line = None;
    for seg in path.split('.').filter(|s| !s.is_empty() && *s != "?") {
        let (key, index) = match seg.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        if !key.is_empty() {
            let map = node.as_mapping()?;
            let (k, v) = map.iter().find(|(k, _)| k.as_str() == key)?;
            line = k.span().start().map(|m| m.line()).or(line);
            node = v;
        }
        if let Some(i) = index {
            let seq = node.as_sequence()?;
            node = seq.get(i)?;
            line = node.span().start().map(|m| m.line()).or(line);
        }
    }
    line
}

/// The known keys of a part of fleet.yaml.
#[derive(Debug, Clone)]
enum Schema {
    /// Free-form (values, labels...).
    Any,
    /// A scalar.
    Scalar,
    /// A list of items of the schema.
    List(Box<Schema>),
    /// A map with these keys.
    Map(Vec<(&'static str, Schema)>),
    /// A map of any keys to values of the schema.
    MapOf(Box<Schema>),
}

fn map(entries: Vec<(&'static str, Schema)>) -> Schema {
    Schema::Map(entries)
}

fn list(item: Schema) -> Schema {
    Schema::List(Box::new(item))
}

fn selector() -> Schema {
    map(vec![
        ("matchLabels", Schema::MapOf(Box::new(Schema::Scalar))),
        (
            "matchExpressions",
            list(map(vec![
                ("key", Schema::Scalar),
                ("operator", Schema::Scalar),
                ("values", list(Schema::Scalar)),
            ])),
        ),
    ])
}

fn key_ref() -> Schema {
    map(vec![
        ("name", Schema::Scalar),
        ("namespace", Schema::Scalar),
        ("key", Schema::Scalar),
    ])
}

fn helm_schema() -> Schema {
    let s = Schema::Scalar;
    map(vec![
        ("chart", s.clone()),
        ("repo", s.clone()),
        ("releaseName", s.clone()),
        ("version", s.clone()),
        ("timeoutSeconds", s.clone()),
        ("values", Schema::Any),
        ("templateValues", Schema::MapOf(Box::new(Schema::Scalar))),
        ("valuesFiles", list(s.clone())),
        (
            "valuesFrom",
            list(map(vec![
                ("configMapKeyRef", key_ref()),
                ("secretKeyRef", key_ref()),
            ])),
        ),
        ("force", s.clone()),
        ("takeOwnership", s.clone()),
        ("maxHistory", s.clone()),
        ("waitForJobs", s.clone()),
        ("atomic", s.clone()),
        ("disablePreProcess", s.clone()),
        ("disableDNS", s.clone()),
        ("skipSchemaValidation", s.clone()),
        ("disableDependencyUpdate", s),
    ])
}

fn deployment_options() -> Vec<(&'static str, Schema)> {
    let s = Schema::Scalar;
    vec![
        ("defaultNamespace", s.clone()),
        ("namespace", s.clone()),
        ("kustomize", map(vec![("dir", s.clone())])),
        ("helm", helm_schema()),
        ("serviceAccount", s.clone()),
        ("forceSyncGeneration", s.clone()),
        ("yaml", map(vec![("overlays", list(s.clone()))])),
        (
            "diff",
            map(vec![(
                "comparePatches",
                list(map(vec![
                    ("kind", s.clone()),
                    ("apiVersion", s.clone()),
                    ("namespace", s.clone()),
                    ("name", s.clone()),
                    (
                        "operations",
                        list(map(vec![
                            ("op", s.clone()),
                            ("path", s.clone()),
                            ("value", Schema::Any),
                        ])),
                    ),
                    ("jsonPointers", list(s.clone())),
                ])),
            )]),
        ),
        ("keepResources", s.clone()),
        ("deleteNamespace", s.clone()),
        (
            "ignore",
            map(vec![(
                "conditions",
                list(Schema::MapOf(Box::new(Schema::Scalar))),
            )]),
        ),
        (
            "correctDrift",
            map(vec![
                ("enabled", s.clone()),
                ("force", s.clone()),
                ("keepFailHistory", s.clone()),
            ]),
        ),
        ("namespaceLabels", Schema::MapOf(Box::new(Schema::Scalar))),
        (
            "namespaceAnnotations",
            Schema::MapOf(Box::new(Schema::Scalar)),
        ),
        ("deleteCRDResources", s),
    ]
}

fn target_selection() -> Vec<(&'static str, Schema)> {
    vec![
        ("name", Schema::Scalar),
        ("clusterName", Schema::Scalar),
        ("clusterSelector", selector()),
        ("clusterGroup", Schema::Scalar),
        ("clusterGroupSelector", selector()),
    ]
}

fn target_schema() -> Schema {
    let mut entries = target_selection();
    entries.push(("doNotDeploy", Schema::Scalar));
    entries.extend(deployment_options());
    map(entries)
}

fn fleet_yaml_schema() -> Schema {
    let s = Schema::Scalar;
    let mut entries = deployment_options();
    entries.extend([
        ("name", s.clone()),
        ("labels", Schema::MapOf(Box::new(Schema::Scalar))),
        ("annotations", Schema::MapOf(Box::new(Schema::Scalar))),
        ("paused", s.clone()),
        (
            "rolloutStrategy",
            map(vec![
                ("maxUnavailable", s.clone()),
                ("maxUnavailablePartitions", s.clone()),
                ("autoPartitionSize", s.clone()),
                (
                    "partitions",
                    list({
                        let mut p = target_selection();
                        p.push(("maxUnavailable", s.clone()));
                        map(p)
                    }),
                ),
            ]),
        ),
        (
            "dependsOn",
            list(map(vec![("name", s.clone()), ("selector", selector())])),
        ),
        ("targetCustomizations", list(target_schema())),
        ("targets", list(target_schema())),
        ("targetRestrictions", list(map(target_selection()))),
        ("overrideTargets", list(map(target_selection()))),
        (
            "imageScans",
            list(map(vec![
                ("tagName", s.clone()),
                ("image", s.clone()),
                ("interval", s.clone()),
                ("secretRef", map(vec![("name", s.clone())])),
                ("suspend", s.clone()),
                (
                    "policy",
                    map(vec![
                        ("semver", map(vec![("range", s.clone())])),
                        ("alphabetical", map(vec![("order", s.clone())])),
                    ]),
                ),
                ("insecureSkipTLSVerify", s.clone()),
            ])),
        ),
    ]);
    map(entries)
}

fn check_keys(
    file: &str,
    node: &marked_yaml::Node,
    schema: &Schema,
    path: &str,
    out: &mut Vec<Warning>,
) {
    match schema {
        Schema::Any | Schema::Scalar => {}
        Schema::List(item) => {
            if let Some(seq) = node.as_sequence() {
                for (i, n) in seq.iter().enumerate() {
                    check_keys(file, n, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        Schema::MapOf(item) => {
            if let Some(m) = node.as_mapping() {
                for (k, v) in m.iter() {
                    check_keys(file, v, item, &join(path, k.as_str()), out);
                }
            }
        }
        Schema::Map(entries) => {
            let Some(m) = node.as_mapping() else { return };
            for (k, v) in m.iter() {
                let key_path = join(path, k.as_str());
                match entries.iter().find(|(name, _)| *name == k.as_str()) {
                    Some((_, sub)) => check_keys(file, v, sub, &key_path, out),
                    None => out.push(Warning {
                        file: file.to_string(),
                        line: k.span().start().map(|m| m.line()).unwrap_or(0),
                        key: key_path,
                        message: "unknown key".into(),
                    }),
                }
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> (FleetYaml, Vec<Warning>) {
        parse("fleet.yaml", text).unwrap()
    }

    #[test]
    fn namespaces_and_service_account() {
        let (fy, w) =
            parse_ok("defaultNamespace: apps\nnamespace: forced\nserviceAccount: deployer\n");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(fy.spec.default_namespace, "apps");
        assert_eq!(fy.spec.target_namespace, "forced");
        assert_eq!(fy.spec.service_account, "deployer");
    }

    #[test]
    fn name_labels_and_annotations() {
        let (fy, _) = parse_ok("name: custom\nlabels:\n  team: a\nannotations:\n  note: x\n");
        assert_eq!(fy.name, "custom");
        assert_eq!(fy.labels["team"], "a");
        assert_eq!(fy.annotations["note"], "x");
    }

    #[test]
    fn every_helm_key() {
        let text = "helm:\n  chart: ./chart\n  repo: https://charts.example.com\n  releaseName: rel\n  version: 1.2.3\n  values:\n    a: {b: 1}\n  valuesFiles: [v1.yaml]\n  valuesFrom:\n  - configMapKeyRef: {name: cm, namespace: ns, key: values.yaml}\n  - secretKeyRef: {name: s, key: v}\n  templateValues:\n    x: '${ .ClusterName }'\n  timeoutSeconds: 30\n  force: true\n  takeOwnership: true\n  maxHistory: 5\n  atomic: true\n  waitForJobs: true\n  disablePreProcess: true\n  disableDNS: true\n  skipSchemaValidation: true\n  disableDependencyUpdate: true\n";
        let (fy, w) = parse_ok(text);
        assert!(w.is_empty(), "{w:?}");
        let h = fy.spec.helm.unwrap();
        assert_eq!(
            (
                h.chart.as_str(),
                h.repo.as_str(),
                h.release_name.as_str(),
                h.version.as_str()
            ),
            ("./chart", "https://charts.example.com", "rel", "1.2.3")
        );
        assert_eq!(h.values.unwrap()["a"]["b"], 1);
        assert_eq!(h.values_files, vec!["v1.yaml"]);
        assert_eq!(h.values_from.len(), 2);
        assert_eq!(
            h.values_from[0].config_map_key_ref.as_ref().unwrap().name,
            "cm"
        );
        assert_eq!(h.values_from[1].secret_key_ref.as_ref().unwrap().key, "v");
        assert_eq!(h.template_values["x"], "${ .ClusterName }");
        assert_eq!(h.timeout_seconds, 30);
        assert_eq!(h.max_history, 5);
        assert!(h.force && h.take_ownership && h.atomic && h.wait_for_jobs);
        assert!(
            h.disable_pre_process
                && h.disable_dns
                && h.skip_schema_validation
                && h.disable_dependency_update
        );
    }

    #[test]
    fn kustomize_yaml_diff_and_ignore() {
        let text = "kustomize:\n  dir: overlays/dev\nyaml:\n  overlays: [a, b]\ndiff:\n  comparePatches:\n  - apiVersion: apps/v1\n    kind: Deployment\n    name: web\n    namespace: apps\n    operations:\n    - {op: remove, path: /spec/replicas}\n    - {op: ignore}\n    jsonPointers: [/spec/template]\nignore:\n  conditions:\n  - type: Ready\n    status: \"False\"\n";
        let (fy, w) = parse_ok(text);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(fy.spec.kustomize.unwrap().dir, "overlays/dev");
        assert_eq!(fy.spec.yaml.unwrap().overlays, vec!["a", "b"]);
        let cp = &fy.spec.diff.unwrap().compare_patches[0];
        assert_eq!(cp.operations[1].op, "ignore");
        assert_eq!(cp.json_pointers, vec!["/spec/template"]);
        assert_eq!(fy.spec.ignore.conditions[0]["status"], "False");
    }

    #[test]
    fn lifecycle_keys() {
        let text = "correctDrift:\n  enabled: true\n  force: true\n  keepFailHistory: true\nkeepResources: true\ndeleteNamespace: true\ndeleteCRDResources: true\npaused: true\nnamespaceLabels: {a: b}\nnamespaceAnnotations: {c: d}\n";
        let (fy, w) = parse_ok(text);
        assert!(w.is_empty(), "{w:?}");
        let cd = fy.spec.correct_drift.unwrap();
        assert!(cd.enabled && cd.force && cd.keep_fail_history);
        assert!(
            fy.spec.keep_resources
                && fy.spec.delete_namespace
                && fy.spec.delete_crd_resources
                && fy.spec.paused
        );
        assert_eq!(fy.spec.namespace_labels["a"], "b");
        assert_eq!(fy.spec.namespace_annotations["c"], "d");
    }

    #[test]
    fn rollout_depends_on_and_targets() {
        let text = "rolloutStrategy:\n  maxUnavailable: 10%\n  maxUnavailablePartitions: 1\n  autoPartitionSize: 25%\n  partitions:\n  - name: canary\n    maxUnavailable: 0\n    clusterSelector: {matchLabels: {canary: 'true'}}\ndependsOn:\n- name: base\n- selector: {matchLabels: {app: db}}\ntargetCustomizations:\n- name: prod\n  clusterSelector:\n    matchExpressions:\n    - {key: env, operator: In, values: [prod]}\n  doNotDeploy: true\noverrideTargets:\n- clusterGroup: all\n";
        let (fy, w) = parse_ok(text);
        assert!(w.is_empty(), "{w:?}");
        let rs = fy.spec.rollout_strategy.unwrap();
        assert_eq!(rs.partitions[0].name, "canary");
        assert_eq!(fy.spec.depends_on.len(), 2);
        assert!(fy.target_customizations[0].do_not_deploy);
        assert_eq!(fy.override_targets.unwrap()[0].cluster_group, "all");
    }

    #[test]
    fn unknown_keys_warn_with_line_and_path() {
        let (_, w) = parse_ok(
            "defaultNamspace: x\nhelm:\n  releaseName: a\n  valuesFile: [x]\ntargetCustomizations:\n- name: a\n  clusterSelectr: {}\n",
        );
        let got: Vec<(usize, &str)> = w.iter().map(|w| (w.line, w.key.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (1, "defaultNamspace"),
                (4, "helm.valuesFile"),
                (7, "targetCustomizations[0].clusterSelectr")
            ]
        );
        assert_eq!(
            w[0].to_string(),
            "fleet.yaml:1: unknown key \"defaultNamspace\""
        );
    }

    #[test]
    fn wrong_types_are_errors_with_path_and_line() {
        let err = parse(
            "dir/fleet.yaml",
            "namespace: a\nhelm:\n  timeoutSeconds: soon\n",
        )
        .unwrap_err();
        assert_eq!(err.line, Some(3), "{err}");
        let msg = err.to_string();
        assert!(
            msg.starts_with("dir/fleet.yaml:3: helm.timeoutSeconds: invalid type"),
            "{msg}"
        );
        let err = parse("fleet.yaml", "- a\n- b\n").unwrap_err();
        assert!(err.to_string().contains("expected a mapping"), "{err}");
        let err = parse("fleet.yaml", "helm: [\n").unwrap_err();
        assert!(err.line.is_some(), "{err}");
    }
}

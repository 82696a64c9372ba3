//! Rendering a bundle's resources into the Kubernetes objects an agent deploys (Fleet's
//! `internal/helmdeployer`: `render.HelmChart` + Helm + the post-renderer).
//!
//! Every bundle becomes a Helm chart: a chart folder is used as is; raw YAML files (after
//! `yaml.overlays`) are carried as `raw-yaml/` files; kustomize folders are built with
//! `kubectl kustomize` (with Helm's output added when a chart is kustomized too). The objects
//! then get the objectset labels/annotations of the bundle and, with `namespace`, that namespace.

pub mod kustomize;
pub mod objects;
pub mod patch;

use std::sync::Arc;

use fleet_api::{BundleDeploymentOptions, BundleResource};
use serde_json::Value;
use sha1::{Digest as _, Sha1};

use crate::content;
use crate::manifest;
use crate::names;

/// Annotation with the object set ID of deployed objects.
pub const OBJECTSET_ID_ANNOTATION: &str = "objectset.rio.cattle.io/id";
/// Label with the SHA-1 of the object set ID.
pub const OBJECTSET_HASH_LABEL: &str = "objectset.rio.cattle.io/hash";
/// Helm annotation that keeps a resource when its release is uninstalled.
pub const HELM_RESOURCE_POLICY_ANNOTATION: &str = "helm.sh/resource-policy";
/// Kubernetes version Helm's capabilities report when none is given (Fleet's template default).
pub const DEFAULT_KUBE_VERSION: &str = "v1.25.0";

/// Errors while rendering a bundle.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A resource's content cannot be decoded.
    #[error("resource {name}: {message}")]
    Decode {
        /// Resource name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A manifest file cannot be parsed.
    #[error(transparent)]
    Parse(#[from] objects::ParseError),
    /// An overlay named in `yaml.overlays` has no files.
    #[error("overlay {overlay:?} not found: no files under overlays/{overlay}/")]
    MissingOverlay {
        /// The overlay name.
        overlay: String,
    },
    /// An overlay file cannot be applied.
    #[error("overlay file {file}: {message}")]
    Overlay {
        /// The overlay file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// `kubectl` is needed for a kustomize bundle but cannot be run.
    #[error(
        "kustomize: cannot build {kustomization}: {kubectl} not found (kubectl is needed to build kustomize bundles; set FLEET_KUBECTL to its path)"
    )]
    KubectlMissing {
        /// The kubectl path tried.
        kubectl: String,
        /// The kustomization being built.
        kustomization: String,
    },
    /// `kubectl kustomize` failed.
    #[error("kustomize build of {dir} failed: {message}")]
    Kustomize {
        /// The kustomize dir / kustomization.
        dir: String,
        /// kustomize's error.
        message: String,
    },
    /// The Helm chart cannot be loaded or rendered.
    #[error("helm chart {chart}: {message}")]
    Helm {
        /// The chart (its path in the bundle).
        chart: String,
        /// Helm's error.
        message: String,
    },
    /// A resource is cluster-scoped but the options force a namespace.
    #[error(
        "invalid cluster scoped object [name={name} kind={kind} apiVersion={api_version}] found. Your config uses targetNamespace or namespace and thus forbids cluster-scoped resources. If you do not intend to disallow cluster scoped resources, you could switch to defaultNamespace"
    )]
    ClusterScoped {
        /// Object name.
        name: String,
        /// Object kind.
        kind: String,
        /// Object apiVersion.
        api_version: String,
    },
    /// An object cannot be exported.
    #[error("{0}")]
    Export(String),
    /// File system error (temporary folders for kustomize).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Tells whether a kind is cluster-scoped (`None`: unknown). The agent passes its REST
/// mapper; `fleet test` has none, like Fleet's template mode.
pub type ScopeLookup = Arc<dyn Fn(&str, &str) -> Option<bool> + Send + Sync>;

/// How to render.
#[derive(Clone)]
pub struct RenderOptions {
    /// The bundle (deployment) ID: default release name and object set ID.
    pub bundle_id: String,
    /// Prefix of the object set ID (the agent uses its namespace; `fleet test` none).
    pub label_prefix: String,
    /// Suffix of the object set ID.
    pub label_suffix: String,
    /// Release namespace when the options set none.
    pub default_namespace: String,
    /// Kubernetes version for Helm's capabilities.
    pub kube_version: String,
    /// Whether a kind is cluster-scoped, for the `namespace` check.
    pub scope: Option<ScopeLookup>,
    /// The kubectl used to build kustomize bundles.
    pub kubectl: std::path::PathBuf,
}

impl std::fmt::Debug for RenderOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderOptions")
            .field("bundle_id", &self.bundle_id)
            .field("label_prefix", &self.label_prefix)
            .field("label_suffix", &self.label_suffix)
            .field("default_namespace", &self.default_namespace)
            .field("kube_version", &self.kube_version)
            .field("kubectl", &self.kubectl)
            .finish_non_exhaustive()
    }
}

impl RenderOptions {
    /// Options of `fleet test`: no label prefix, namespace `default`, Kubernetes v1.25.0.
    pub fn template(bundle_id: &str) -> Self {
        RenderOptions {
            bundle_id: bundle_id.to_string(),
            label_prefix: String::new(),
            label_suffix: String::new(),
            default_namespace: "default".into(),
            kube_version: DEFAULT_KUBE_VERSION.into(),
            scope: None,
            kubectl: kustomize::kubectl_path(),
        }
    }
}

/// What a render produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Helm release name.
    pub release_name: String,
    /// Release namespace.
    pub namespace: String,
    /// The objects, in the order they are applied.
    pub objects: Vec<Value>,
}

/// How a bundle's files are deployed (Fleet's `bundlereader.Style`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Style {
    /// Path of the chart's Chart.yaml in the bundle, if it is a Helm chart.
    pub chart_path: Option<String>,
    /// Path of the kustomization.yaml used, if any.
    pub kustomize_path: Option<String>,
}

impl Style {
    /// A Helm chart bundle.
    pub fn is_helm(&self) -> bool {
        self.chart_path.is_some()
    }
    /// A kustomize bundle.
    pub fn is_kustomize(&self) -> bool {
        self.kustomize_path.is_some()
    }
    /// Plain manifests (plus overlays).
    pub fn is_raw_yaml(&self) -> bool {
        !self.is_helm() && !self.is_kustomize()
    }
}

fn join_and_clean(path: &str, file: &str) -> String {
    names::clean_join(path, file)
        .trim_start_matches('/')
        .to_string()
}

/// Decides the style from the resource names and options (Fleet's `DetermineStyle`).
pub fn determine_style<'a>(
    resource_names: impl IntoIterator<Item = &'a str>,
    options: &BundleDeploymentOptions,
) -> Style {
    let helm = options.helm.as_ref().filter(|h| !h.chart.is_empty());
    let (chart_path, external_prefix) = match helm {
        None => ("Chart.yaml".to_string(), None),
        Some(h) => (
            join_and_clean(&h.chart, "Chart.yaml"),
            Some(format!("{}/", manifest::chart_checksum(h))),
        ),
    };
    let kustomize_path = match options.kustomize.as_ref().filter(|k| !k.dir.is_empty()) {
        None => "kustomization.yaml".to_string(),
        Some(k) => join_and_clean(&k.dir, "kustomization.yaml"),
    };
    let mut style = Style::default();
    for name in resource_names {
        if name.is_empty() {
            continue;
        }
        if name == chart_path {
            style.chart_path = Some(chart_path.clone());
        } else if let Some(prefix) = &external_prefix
            && let Some(rest) = name.strip_prefix(prefix.as_str())
        {
            let parts: Vec<&str> = rest.split('/').collect();
            if (parts.len() == 1 && parts[0] == "Chart.yaml")
                || (parts.len() == 2 && parts[1] == "Chart.yaml")
            {
                style.chart_path = Some(name.to_string());
            }
        } else if name == kustomize_path {
            style.kustomize_path = Some(kustomize_path.clone());
        }
    }
    style
}

/// Whether a bundle file makes [`render`] run kustomize.
fn is_kustomization(name: &str) -> bool {
    name.ends_with("kustomization.yaml")
        || name.ends_with("kustomization.yml")
        || name.ends_with("Kustomization")
}

/// Plain manifests of at most this many bytes in all render in well under a millisecond.
const LIGHT_RENDER_BYTES: usize = 64 * 1024;

/// Whether rendering `resources` is light enough to do on an async worker: uncompressed plain
/// manifests (no chart, no `templates/`, no kustomization) of at most [`LIGHT_RENDER_BYTES`].
/// Those cost less than handing them to a blocking thread and back; a Helm chart's templates
/// or kustomize (a `kubectl` process) can take any time, and compressed content any size.
pub fn is_light(resources: &[BundleResource], options: &BundleDeploymentOptions) -> bool {
    if options.helm.as_ref().is_some_and(|h| !h.chart.is_empty()) {
        return false;
    }
    let mut bytes = 0usize;
    for r in resources {
        let name = r.name.as_str();
        if !r.encoding.is_empty()
            || name.rsplit('/').next() == Some("Chart.yaml")
            || is_kustomization(name)
            || name.starts_with("templates/")
        {
            return false;
        }
        bytes += r.content.len();
    }
    bytes <= LIGHT_RENDER_BYTES
}

/// Decodes the resources into `(name, bytes)`.
pub fn decode_resources(
    resources: &[BundleResource],
) -> Result<Vec<(String, Vec<u8>)>, RenderError> {
    resources
        .iter()
        .map(|r| {
            content::decode(&r.content, &r.encoding)
                .map(|d| (r.name.clone(), d))
                .map_err(|message| RenderError::Decode {
                    name: r.name.clone(),
                    message,
                })
        })
        .collect()
}

/// The object set ID of a bundle deployment (Fleet's `desiredset.GetSetID`).
pub fn set_id(bundle_id: &str, label_prefix: &str, label_suffix: &str) -> String {
    if bundle_id.starts_with("fleet-agent") {
        if label_suffix.is_empty() {
            return "fleet-agent-bootstrap".into();
        }
        return names::safe_concat_name(&["fleet-agent-bootstrap", label_suffix]);
    }
    if !label_suffix.is_empty() {
        return names::safe_concat_name(&[label_prefix, bundle_id, label_suffix]);
    }
    names::safe_concat_name(&[label_prefix, bundle_id])
}

/// The `objectset.rio.cattle.io/hash` label value: SHA-1 of the set ID.
pub fn set_hash(set_id: &str) -> String {
    hex::encode(Sha1::digest(set_id.as_bytes()))
}

/// The release name and namespace Helm uses for these options (Fleet's `getOpts`).
pub fn release_name_and_namespace(
    bundle_id: &str,
    options: &BundleDeploymentOptions,
    default_namespace: &str,
) -> (String, String) {
    let mut ns = options.default_namespace.clone();
    if !options.target_namespace.is_empty() {
        ns = options.target_namespace.clone();
    }
    if ns.is_empty() {
        ns = default_namespace.to_string();
    }
    let release = options
        .helm
        .as_ref()
        .map(|h| h.release_name.clone())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| names::helm_release_name(bundle_id));
    (release, ns)
}

/// The chart files (paths inside the chart) built from a bundle's files (Fleet's `toChart`).
fn to_chart(files: &[(String, Vec<u8>)], style: &Style) -> Vec<(String, Vec<u8>)> {
    if let Some(chart_path) = &style.chart_path {
        let dir = match chart_path.rsplit_once('/') {
            Some((d, _)) => format!("{d}/"),
            None => String::new(),
        };
        return files
            .iter()
            .filter(|(n, _)| n.starts_with(&dir))
            .map(|(n, d)| (n[dir.len()..].to_string(), d.clone()))
            .collect();
    }
    if !style.is_raw_yaml() {
        return Vec::new();
    }
    let mut ignore_prefix: Vec<String> = Vec::new();
    for (name, _) in files {
        if (name.ends_with("/fleet.yaml")
            || name.ends_with("/fleet.yml")
            || name.ends_with("/Chart.yaml"))
            && let Some((d, _)) = name.rsplit_once('/')
        {
            ignore_prefix.push(format!("{d}/"));
        }
    }
    let mut out = Vec::new();
    for (name, data) in files {
        if name == "fleet.yaml" || name == "fleet.yml" {
            continue;
        }
        if !(name.ends_with(".yaml") || name.ends_with(".json") || name.ends_with(".yml")) {
            continue;
        }
        if ignore_prefix.iter().any(|p| name.starts_with(p.as_str())) {
            continue;
        }
        if name.starts_with("templates/") {
            out.push((name.clone(), data.clone()));
        } else {
            out.push((format!("{RAW_YAML_PREFIX}{name}"), data.clone()));
        }
    }
    out
}

const RAW_YAML_PREFIX: &str = "raw-yaml/";

/// Renders a bundle's resources with merged deployment options.
pub fn render(
    resources: &[BundleResource],
    options: &BundleDeploymentOptions,
    ro: &RenderOptions,
) -> Result<Rendered, RenderError> {
    let files = decode_resources(resources)?;
    let style = determine_style(files.iter().map(|(n, _)| n.as_str()), options);
    let mut work = files.clone();
    if style.is_raw_yaml() {
        let overlays = options
            .yaml
            .as_ref()
            .map(|y| y.overlays.clone())
            .unwrap_or_default();
        work = patch::process(&work, &overlays)?;
    }
    let mut chart_files = to_chart(&work, &style);
    let chart_label = style
        .chart_path
        .clone()
        .unwrap_or_else(|| "Chart.yaml".into());
    // Helm templates (charts, and `templates/` folders of raw-YAML bundles).
    let has_templates = chart_files.iter().any(|(n, _)| n.starts_with("templates/"));
    // The generated chart's metadata matters only to templates (`.Chart`); plain manifests
    // need neither it nor the manifest hash in its version.
    if !style.is_helm() && has_templates {
        let chart_name = ro
            .bundle_id
            .rsplit('/')
            .next()
            .unwrap_or(&ro.bundle_id)
            .to_string();
        let id = manifest::manifest_id(resources);
        let chart_yaml = format!("apiVersion: v2\nname: {chart_name}\nversion: v0.0.0+{id}\n");
        chart_files.push(("Chart.yaml".into(), chart_yaml.into_bytes()));
    }
    let (release_name, namespace) =
        release_name_and_namespace(&ro.bundle_id, options, &ro.default_namespace);

    let helm_output = if has_templates || style.is_helm() {
        render_helm(
            &chart_label,
            &chart_files,
            options,
            &release_name,
            &namespace,
            &ro.kube_version,
        )?
    } else {
        String::new()
    };
    let mut objs =
        objects::stream_objects(&format!("output of helm chart {chart_label}"), &helm_output)?;
    let helm_bytes: Vec<u8> = if objs.is_empty() {
        Vec::new()
    } else {
        helm_output.into_bytes()
    };

    let kustomizable = files.iter().any(|(n, _)| is_kustomization(n));
    if kustomizable {
        let dir = options
            .kustomize
            .as_ref()
            .map(|k| k.dir.as_str())
            .unwrap_or("");
        if let Some(kustomized) = kustomize::process(&files, &helm_bytes, dir, &ro.kubectl)? {
            objs = kustomized;
        }
    }

    for (name, data) in &chart_files {
        let Some(rel) = name.strip_prefix(RAW_YAML_PREFIX) else {
            continue;
        };
        let text = String::from_utf8_lossy(data);
        match objects::file_objects(rel, &text)? {
            objects::FileObjects::Objects(list) => {
                objs.extend(list.into_iter().filter(|o| {
                    !objects::api_version(o).is_empty() && !objects::kind(o).is_empty()
                }))
            }
            objects::FileObjects::NotManifests => {}
        }
    }

    let id = set_id(&ro.bundle_id, &ro.label_prefix, &ro.label_suffix);
    let hash = set_hash(&id);
    for obj in &mut objs {
        let is_crd = objects::kind(obj) == "CustomResourceDefinition";
        let mut annotations = vec![(OBJECTSET_ID_ANNOTATION, id.as_str())];
        if is_crd && !options.delete_crd_resources {
            annotations.push((HELM_RESOURCE_POLICY_ANNOTATION, "keep"));
        }
        objects::merge_string_map(obj, "annotations", &annotations);
        objects::merge_string_map(obj, "labels", &[(OBJECTSET_HASH_LABEL, hash.as_str())]);
        if !options.target_namespace.is_empty() {
            if let Some(scope) = &ro.scope
                && scope(objects::api_version(obj), objects::kind(obj)) == Some(true)
            {
                return Err(RenderError::ClusterScoped {
                    name: objects::name(obj).to_string(),
                    kind: objects::kind(obj).to_string(),
                    api_version: objects::api_version(obj).to_string(),
                });
            }
            if let Some(meta) = objects::metadata_mut(obj) {
                meta.insert(
                    "namespace".into(),
                    Value::String(options.target_namespace.clone()),
                );
            }
        }
    }
    Ok(Rendered {
        release_name,
        namespace,
        objects: objs,
    })
}

fn render_helm(
    chart_label: &str,
    chart_files: &[(String, Vec<u8>)],
    options: &BundleDeploymentOptions,
    release_name: &str,
    namespace: &str,
    kube_version: &str,
) -> Result<String, RenderError> {
    let err = |message: String| RenderError::Helm {
        chart: chart_label.to_string(),
        message,
    };
    let chart =
        fleet_helm::Chart::from_files(chart_files.to_vec()).map_err(|e| err(e.to_string()))?;
    let values = options
        .helm
        .as_ref()
        .and_then(|h| h.values.clone())
        .map(Value::Object)
        .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
    let opts = fleet_helm::RenderOptions {
        release_name: release_name.to_string(),
        namespace: namespace.to_string(),
        kube_version: Some(kube_version.to_string()),
        ..Default::default()
    };
    let rendered = fleet_helm::render(&chart, &values, &opts).map_err(|e| err(e.to_string()))?;
    let mut out = String::new();
    for m in &rendered.manifests {
        out.push_str("---\n# Source: ");
        out.push_str(&m.source);
        out.push('\n');
        out.push_str(&m.content);
        out.push('\n');
    }
    Ok(out)
}

/// Prints objects the way `fleet test` does (wrangler `yaml.Export`): each cleaned for export,
/// Go-compatible YAML, separated by `\n---\n`.
pub fn export_yaml(objects: &[Value]) -> Result<String, RenderError> {
    let cleaned: Vec<Value> = objects
        .iter()
        .map(objects::clean_for_export)
        .collect::<Result<_, _>>()
        .map_err(RenderError::Export)?;
    Ok(crate::goyaml::documents_to_string(&cleaned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::{KustomizeOptions, YamlOptions};

    fn res(name: &str, content: &str) -> BundleResource {
        BundleResource {
            name: name.into(),
            content: content.into(),
            encoding: String::new(),
        }
    }

    #[test]
    fn set_id_and_hash_for_fleet_test() {
        let id = set_id("test", "", "");
        assert_eq!(id, "-test");
        assert_eq!(set_hash(&id), "c0fae66aeeea5c9703d7410307d74609c272103d");
    }

    #[test]
    fn only_small_plain_manifests_are_light() {
        let plain = BundleDeploymentOptions::default();
        let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n";
        assert!(is_light(
            &[res("a.yaml", cm), res("dir/b.yaml", cm)],
            &plain
        ));
        assert!(is_light(&[], &plain));
        for heavy in [
            "Chart.yaml",
            "chart/Chart.yaml",
            "templates/a.yaml",
            "kustomization.yaml",
            "overlays/dev/kustomization.yml",
            "base/Kustomization",
        ] {
            assert!(
                !is_light(&[res("a.yaml", cm), res(heavy, cm)], &plain),
                "{heavy}"
            );
        }
        let compressed = BundleResource {
            encoding: "base64+gz".into(),
            ..res("a.yaml", "H4sI")
        };
        assert!(!is_light(&[compressed], &plain));
        let big = "#".repeat(LIGHT_RENDER_BYTES + 1);
        assert!(!is_light(&[res("a.yaml", &big)], &plain));
        let external_chart = BundleDeploymentOptions {
            helm: Some(fleet_api::HelmOptions {
                chart: "https://charts.example.com/app-1.0.0.tgz".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(!is_light(&[res("a.yaml", cm)], &external_chart));
    }

    #[test]
    fn style_detection() {
        let opts = BundleDeploymentOptions::default();
        assert!(determine_style(["a.yaml"], &opts).is_raw_yaml());
        assert!(determine_style(["Chart.yaml", "templates/a.yaml"], &opts).is_helm());
        assert!(determine_style(["kustomization.yaml"], &opts).is_kustomize());
        let opts = BundleDeploymentOptions {
            kustomize: Some(KustomizeOptions {
                dir: "overlays/dev".into(),
            }),
            ..Default::default()
        };
        assert!(determine_style(["kustomization.yaml"], &opts).is_raw_yaml());
        assert!(determine_style(["overlays/dev/kustomization.yaml"], &opts).is_kustomize());
    }

    #[test]
    fn raw_yaml_with_overlays_labels_and_namespace() {
        let resources = vec![
            res("README.md", "# hi\n"),
            res(
                "b.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n",
            ),
            res(
                "a.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: {x: y}\n",
            ),
            res("values.yaml", "replicas: 1\n"),
            res("overlays/o/b_patch.yaml", "data:\n  k: v\n"),
        ];
        let opts = BundleDeploymentOptions {
            target_namespace: "ns".into(),
            yaml: Some(YamlOptions {
                overlays: vec!["o".into()],
            }),
            ..Default::default()
        };
        let out = render(&resources, &opts, &RenderOptions::template("test")).unwrap();
        assert_eq!(out.release_name, "test");
        assert_eq!(out.namespace, "ns");
        assert_eq!(out.objects.len(), 2);
        assert_eq!(objects::name(&out.objects[0]), "a");
        assert_eq!(out.objects[1]["data"]["k"], "v");
        assert_eq!(out.objects[0]["metadata"]["namespace"], "ns");
        assert_eq!(out.objects[0]["metadata"]["labels"]["x"], "y");
        assert_eq!(
            out.objects[0]["metadata"]["annotations"][OBJECTSET_ID_ANNOTATION],
            "-test"
        );
    }

    #[test]
    fn crds_are_kept_on_uninstall_unless_asked() {
        let resources = vec![res(
            "crd.yaml",
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: things.example.com\n",
        )];
        let out = render(
            &resources,
            &BundleDeploymentOptions::default(),
            &RenderOptions::template("t"),
        )
        .unwrap();
        assert_eq!(
            out.objects[0]["metadata"]["annotations"][HELM_RESOURCE_POLICY_ANNOTATION],
            "keep"
        );
        let opts = BundleDeploymentOptions {
            delete_crd_resources: true,
            ..Default::default()
        };
        let out = render(&resources, &opts, &RenderOptions::template("t")).unwrap();
        assert!(
            out.objects[0]["metadata"]["annotations"]
                .get(HELM_RESOURCE_POLICY_ANNOTATION)
                .is_none()
        );
    }

    #[test]
    fn cluster_scoped_objects_fail_with_a_forced_namespace_when_scope_is_known() {
        let resources = vec![res(
            "ns.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n",
        )];
        let opts = BundleDeploymentOptions {
            target_namespace: "forced".into(),
            ..Default::default()
        };
        let mut ro = RenderOptions::template("t");
        ro.scope = Some(Arc::new(|_, kind| Some(kind == "Namespace")));
        let err = render(&resources, &opts, &ro).unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid cluster scoped object [name=x kind=Namespace"),
            "{err}"
        );
    }

    #[test]
    fn malformed_manifest_names_the_file() {
        let resources = vec![res(
            "deploy/bad.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n",
        )];
        let err = render(
            &resources,
            &BundleDeploymentOptions::default(),
            &RenderOptions::template("t"),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("deploy/bad.yaml: "), "{err}");
    }
}

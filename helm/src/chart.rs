//! Charts: loading from a folder, a `.tgz` archive or in-memory files; `Chart.yaml` metadata and
//! its validation; subcharts under `charts/`; `.helmignore`.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::HelmError;

/// A file of a chart, by its path inside the chart (`templates/x.yaml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartFile {
    pub name: String,
    pub data: Vec<u8>,
}

/// A `dependencies` entry of `Chart.yaml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub repository: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub condition: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enabled: bool,
    #[serde(
        default,
        rename = "import-values",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub import_values: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alias: String,
}

/// A maintainer entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Maintainer {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
}

/// `Chart.yaml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub home: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "string_like"
    )]
    pub version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintainers: Vec<Maintainer>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub icon: String,
    #[serde(
        default,
        rename = "apiVersion",
        skip_serializing_if = "String::is_empty"
    )]
    pub api_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub condition: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tags: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "string_like"
    )]
    pub app_version: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deprecated: bool,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kube_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub chart_type: String,
}

fn string_like<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = serde_norway::Value::deserialize(d)?;
    Ok(match v {
        serde_norway::Value::String(s) => s,
        serde_norway::Value::Number(n) => n.to_string(),
        serde_norway::Value::Bool(b) => b.to_string(),
        serde_norway::Value::Null => String::new(),
        other => serde_norway::to_string(&other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    })
}

impl Metadata {
    /// Helm's `Metadata.Validate`.
    pub fn validate(&self) -> Result<(), HelmError> {
        let err = |m: String| Err(HelmError::InvalidChart(format!("validation: {m}")));
        if self.api_version.is_empty() {
            return err("chart.metadata.apiVersion is required".into());
        }
        if self.name.is_empty() {
            return err("chart.metadata.name is required".into());
        }
        if self.name.contains('/')
            || self.name.contains('\\')
            || self.name == "."
            || self.name == ".."
        {
            return err(format!("chart.metadata.name {:?} is invalid", self.name));
        }
        if self.version.is_empty() {
            return err("chart.metadata.version is required".into());
        }
        if crate::funcs::semver::Version::parse(&self.version).is_err() {
            return err(format!(
                "chart.metadata.version {:?} is invalid",
                self.version
            ));
        }
        if !matches!(self.chart_type.as_str(), "" | "application" | "library") {
            return err("chart.metadata.type must be application or library".into());
        }
        for d in &self.dependencies {
            if d.name.is_empty() {
                return err("dependencies must have a name".into());
            }
            if !d.alias.is_empty()
                && !d
                    .alias
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return err(format!(
                    "dependency {:?} has disallowed characters in the alias",
                    d.name
                ));
            }
        }
        Ok(())
    }

    /// `.Chart` as Helm's templates see it (Go field names).
    pub fn to_template_value(&self, is_root: bool) -> serde_json::Value {
        let deps: Vec<serde_json::Value> = self
            .dependencies
            .iter()
            .map(|d| serde_json::to_value(d).unwrap_or_default())
            .collect();
        let maint: Vec<serde_json::Value> = self
            .maintainers
            .iter()
            .map(|m| serde_json::json!({"Name": m.name, "Email": m.email, "URL": m.url}))
            .collect();
        serde_json::json!({
            "Name": self.name,
            "Home": self.home,
            "Sources": self.sources,
            "Version": self.version,
            "Description": self.description,
            "Keywords": self.keywords,
            "Maintainers": maint,
            "Icon": self.icon,
            "APIVersion": self.api_version,
            "Condition": self.condition,
            "Tags": self.tags,
            "AppVersion": self.app_version,
            "Deprecated": self.deprecated,
            "Annotations": self.annotations,
            "KubeVersion": self.kube_version,
            "Dependencies": deps,
            "Type": self.chart_type,
            "IsRoot": is_root,
        })
    }
}

/// A loaded chart.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    pub metadata: Metadata,
    /// Files under `templates/`.
    pub templates: Vec<ChartFile>,
    /// `values.yaml` (numbers as float64, as Helm reads them).
    pub values: serde_json::Map<String, serde_json::Value>,
    /// `values.schema.json`, if any.
    pub schema: Option<Vec<u8>>,
    /// Every other file (`.Files`, `crds/`, README...).
    pub files: Vec<ChartFile>,
    /// Subcharts from `charts/`.
    pub dependencies: Vec<Chart>,
}

impl Chart {
    /// Loads a chart from a folder or a `.tgz` archive.
    pub fn load(path: &Path) -> Result<Chart, HelmError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| HelmError::io(format!("loading chart {}", path.display()), e))?;
        if meta.is_dir() {
            let files = read_dir_files(path)?;
            Chart::from_files(files).map_err(|e| prefix_err(e, path))
        } else {
            let data = std::fs::read(path)
                .map_err(|e| HelmError::io(format!("reading chart {}", path.display()), e))?;
            Chart::from_archive(&data).map_err(|e| prefix_err(e, path))
        }
    }

    /// Loads a chart from a gzipped tar archive (one top-level folder).
    pub fn from_archive(data: &[u8]) -> Result<Chart, HelmError> {
        let files = untar(data)?;
        Chart::from_files(files)
    }

    /// Builds a chart from files given by their path inside the chart.
    pub fn from_files(files: Vec<(String, Vec<u8>)>) -> Result<Chart, HelmError> {
        let mut c = Chart::default();
        let mut chart_yaml: Option<Vec<u8>> = None;
        let mut requirements: Option<Vec<u8>> = None;
        let mut values: Option<Vec<u8>> = None;
        let mut sub: std::collections::BTreeMap<String, Vec<(String, Vec<u8>)>> =
            Default::default();
        let mut files: Vec<(String, Vec<u8>)> = files
            .into_iter()
            .map(|(n, d)| (n.replace('\\', "/").trim_start_matches("./").to_string(), d))
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, data) in files {
            if name == "Chart.yaml" {
                chart_yaml = Some(data);
            } else if name == "values.yaml" {
                values = Some(data);
            } else if name == "values.schema.json" {
                c.schema = Some(data);
            } else if name == "requirements.yaml" {
                requirements = Some(data.clone());
                c.files.push(ChartFile { name, data });
            } else if name == "Chart.lock" || name == "requirements.lock" {
                c.files.push(ChartFile { name, data });
            } else if let Some(rest) = name.strip_prefix("templates/") {
                let _ = rest;
                c.templates.push(ChartFile { name, data });
            } else if let Some(rest) = name.strip_prefix("charts/") {
                let cname = rest.split('/').next().unwrap_or("").to_string();
                if cname.is_empty() || cname.starts_with('.') {
                    continue;
                }
                sub.entry(cname).or_default().push((rest.to_string(), data));
            } else {
                c.files.push(ChartFile { name, data });
            }
        }
        let Some(chart_yaml) = chart_yaml else {
            return Err(HelmError::InvalidChart("Chart.yaml file is missing".into()));
        };
        let text = String::from_utf8_lossy(&chart_yaml);
        c.metadata = serde_norway::from_str(&text)
            .map_err(|e| HelmError::InvalidChart(format!("cannot load Chart.yaml: {e}")))?;
        if c.metadata.api_version == "v1"
            && let Some(req) = requirements
        {
            #[derive(Deserialize)]
            struct Req {
                #[serde(default)]
                dependencies: Vec<Dependency>,
            }
            let r: Req = serde_norway::from_slice(&req).map_err(|e| {
                HelmError::InvalidChart(format!("cannot load requirements.yaml: {e}"))
            })?;
            c.metadata.dependencies = r.dependencies;
        }
        if let Some(v) = values {
            let text = String::from_utf8_lossy(&v);
            let parsed = crate::yaml::yaml_to_json_go(&text).map_err(|e| {
                HelmError::Values(format!(
                    "cannot load values.yaml: error converting YAML to JSON: {e}"
                ))
            })?;
            match parsed {
                serde_json::Value::Object(m) => c.values = m,
                serde_json::Value::Null => {}
                _ => {
                    return Err(HelmError::Values(
                        "cannot load values.yaml: values must be a map".into(),
                    ));
                }
            }
        }
        for (cname, files) in sub {
            if cname.ends_with(".tgz") || cname.ends_with(".tar.gz") {
                let data = files.into_iter().next().map(|f| f.1).unwrap_or_default();
                let sc = Chart::from_archive(&data).map_err(|e| {
                    HelmError::InvalidChart(format!(
                        "error unpacking subchart {cname} in {}: {e}",
                        c.metadata.name
                    ))
                })?;
                c.dependencies.push(sc);
            } else {
                let inner: Vec<(String, Vec<u8>)> = files
                    .into_iter()
                    .filter_map(|(n, d)| n.split_once('/').map(|(_, rest)| (rest.to_string(), d)))
                    .collect();
                // folders under charts/ that are not charts are ignored, as in Helm
                if !inner.iter().any(|(n, _)| n == "Chart.yaml") {
                    continue;
                }
                let sc = Chart::from_files(inner).map_err(|e| {
                    HelmError::InvalidChart(format!(
                        "error unpacking subchart {cname} in {}: {e}",
                        c.metadata.name
                    ))
                })?;
                c.dependencies.push(sc);
            }
        }
        c.metadata.validate()?;
        Ok(c)
    }

    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    pub fn is_library(&self) -> bool {
        self.metadata.chart_type == "library"
    }

    /// `crds/` files of this chart (not subcharts).
    pub fn crd_files(&self) -> impl Iterator<Item = &ChartFile> {
        self.files.iter().filter(|f| {
            f.name.starts_with("crds/")
                && (f.name.ends_with(".yaml")
                    || f.name.ends_with(".yml")
                    || f.name.ends_with(".json"))
        })
    }
}

fn prefix_err(e: HelmError, path: &Path) -> HelmError {
    match e {
        HelmError::InvalidChart(m) if m.starts_with("validation:") => HelmError::InvalidChart(m),
        HelmError::InvalidChart(m) => HelmError::InvalidChart(format!("{}: {m}", path.display())),
        other => other,
    }
}

/// Reads a chart folder, applying `.helmignore` and skipping hidden files under `templates/`.
fn read_dir_files(root: &Path) -> Result<Vec<(String, Vec<u8>)>, HelmError> {
    let ignore = match std::fs::read_to_string(root.join(".helmignore")) {
        Ok(t) => HelmIgnore::parse(&t),
        Err(_) => HelmIgnore::default(),
    };
    let mut out = Vec::new();
    let mut total = 0usize;
    for entry in walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .follow_links(true)
    {
        let entry = entry
            .map_err(|e| HelmError::InvalidChart(format!("reading {}: {e}", root.display())))?;
        let rel = match entry.path().strip_prefix(root) {
            Ok(r) => r.to_string_lossy().replace('\\', "/"),
            Err(_) => continue,
        };
        if rel.is_empty() {
            continue;
        }
        let is_dir = entry.file_type().is_dir();
        if ignore.ignored(&rel, is_dir) {
            continue;
        }
        if is_dir {
            continue;
        }
        let data = std::fs::read(entry.path())
            .map_err(|e| HelmError::io(format!("reading {}", entry.path().display()), e))?;
        total += data.len();
        if total > MAX_CHART_BYTES {
            return Err(HelmError::InvalidChart(format!(
                "chart {} is larger than {MAX_CHART_BYTES} bytes",
                root.display()
            )));
        }
        out.push((rel, data));
    }
    // walkdir does not prune ignored folders above; drop files inside ignored folders
    Ok(out
        .into_iter()
        .filter(|(n, _)| !ignore.ignored_by_parent(n))
        .collect())
}

/// Largest chart (all files together) we load.
pub const MAX_CHART_BYTES: usize = 256 << 20;

/// `.helmignore` rules.
#[derive(Default)]
pub struct HelmIgnore {
    rules: Vec<(bool, bool, globset::GlobMatcher, bool)>, // (negate, dir_only, matcher, has_slash)
}

impl HelmIgnore {
    pub fn parse(text: &str) -> HelmIgnore {
        let mut rules = Vec::new();
        for line in text.lines() {
            let mut l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let negate = l.starts_with('!');
            if negate {
                l = &l[1..];
            }
            let dir_only = l.ends_with('/');
            let pat = l.trim_end_matches('/').trim_start_matches('/');
            if pat.is_empty() {
                continue;
            }
            let has_slash = pat.contains('/');
            if let Ok(g) = globset::GlobBuilder::new(pat)
                .literal_separator(true)
                .build()
            {
                rules.push((negate, dir_only, g.compile_matcher(), has_slash));
            }
        }
        HelmIgnore { rules }
    }

    pub fn ignored(&self, rel: &str, is_dir: bool) -> bool {
        // Helm's default: hidden files in templates/ are ignored
        if let Some(rest) = rel.strip_prefix("templates/")
            && rest.starts_with('.')
            && !rest.contains('/')
        {
            return true;
        }
        let base = rel.rsplit('/').next().unwrap_or(rel);
        let mut ignored = false;
        for (negate, dir_only, m, has_slash) in &self.rules {
            if *dir_only && !is_dir {
                continue;
            }
            let hit = if *has_slash {
                m.is_match(rel)
            } else {
                m.is_match(base)
            };
            if hit {
                ignored = !negate;
            }
        }
        ignored
    }

    fn ignored_by_parent(&self, rel: &str) -> bool {
        let parts: Vec<&str> = rel.split('/').collect();
        (1..parts.len()).any(|i| self.ignored(&parts[..i].join("/"), true))
    }
}

/// Unpacks a chart archive: strips the top-level folder, rejects unsafe paths, bounds the size.
pub fn untar(data: &[u8]) -> Result<Vec<(String, Vec<u8>)>, HelmError> {
    let gz = flate2::read::GzDecoder::new(data);
    let mut ar = tar::Archive::new(gz);
    let mut out = Vec::new();
    let mut total = 0usize;
    let entries = ar
        .entries()
        .map_err(|e| HelmError::InvalidChart(format!("reading chart archive: {e}")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| HelmError::InvalidChart(format!("reading chart archive: {e}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| HelmError::InvalidChart(format!("reading chart archive: {e}")))?
            .to_string_lossy()
            .replace('\\', "/");
        if path.split('/').any(|p| p == "..") || path.starts_with('/') {
            return Err(HelmError::InvalidChart(format!(
                "chart illegally contains path {path:?}"
            )));
        }
        let Some((_, rest)) = path.split_once('/') else {
            continue;
        };
        if rest.is_empty() {
            continue;
        }
        let mut buf = Vec::new();
        entry
            .by_ref()
            .take((MAX_CHART_BYTES - total + 1) as u64)
            .read_to_end(&mut buf)
            .map_err(|e| HelmError::InvalidChart(format!("reading chart archive: {e}")))?;
        total += buf.len();
        if total > MAX_CHART_BYTES {
            return Err(HelmError::InvalidChart(format!(
                "chart archive is larger than {MAX_CHART_BYTES} bytes"
            )));
        }
        out.push((rest.to_string(), buf));
    }
    if out.is_empty() {
        return Err(HelmError::InvalidChart("no files in chart archive".into()));
    }
    Ok(out)
}

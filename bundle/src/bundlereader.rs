//! Reading a bundle folder into a `Bundle` (Fleet's `internal/bundlereader`): fleet.yaml, the
//! files of the folder (minus hidden and `.fleetignore`d ones, fleet.yaml and values files),
//! local Helm charts, targets and target customizations, and the GitRepo options `fleet apply`
//! receives on its command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fleet_api::{
    Bundle, BundleResource, BundleSpec, BundleTarget, BundleTargetRestriction, CorrectDrift,
    GenericMap, HelmOptions,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::content;
use crate::fleetyaml::{self, FleetYaml, Warning};
use crate::ignore::IgnoreTree;
use crate::manifest;
use crate::names;
use crate::options::merge_maps;
use crate::render::objects::yaml_to_json;

/// Bundles whose JSON is at least this large have all their resources compressed.
pub const COMPRESS_THRESHOLD: usize = 1_000_000;

/// The GitRepo options that `fleet apply` passes on its command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadOptions {
    /// Compress every resource (`base64+gz`).
    pub compress: bool,
    /// Labels added to the Bundle (fleet.yaml labels win).
    pub labels: BTreeMap<String, String>,
    /// Service account for the deployments (overrides fleet.yaml).
    pub service_account: String,
    /// A file with a `BundleSpec` YAML whose `targets` and `targetRestrictions` (the GitRepo's
    /// targets) are appended.
    pub targets_file: Option<PathBuf>,
    /// Forces the namespace of the bundle and of every target.
    pub target_namespace: String,
    /// Creates the bundle paused.
    pub paused: bool,
    /// `forceSyncGeneration` of the bundle.
    pub sync_generation: i64,
    /// Keep resources when the bundle is deleted.
    pub keep_resources: bool,
    /// Delete the namespace when the bundle is deleted.
    pub delete_namespace: bool,
    /// Drift correction (used when `enabled`).
    pub correct_drift: Option<CorrectDrift>,
}

/// Errors while reading a bundle folder.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// fleet.yaml is invalid.
    #[error(transparent)]
    FleetYaml(#[from] fleetyaml::FleetYamlError),
    /// A file or folder cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A Helm values file is invalid.
    #[error("reading values file {path}: {message}")]
    ValuesFile {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The targets file is invalid.
    #[error("reading targets file {path}: {message}")]
    TargetsFile {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A chart that is not in the bundle folder could not be downloaded.
    #[error(
        "bundle {bundle}: downloading helm chart (repo={repo} chart={chart} version={version}): {message}"
    )]
    RemoteChart {
        /// The bundle folder.
        bundle: String,
        /// helm.chart.
        chart: String,
        /// helm.repo.
        repo: String,
        /// helm.version.
        version: String,
        /// What went wrong.
        message: String,
    },
    /// A local chart archive cannot be unpacked.
    #[error("helm chart archive {path}: {message}")]
    ChartArchive {
        /// The archive.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An image scan without a tag name.
    #[error("{file}: imageScans[{index}]: the name of scan is required (tagName)")]
    ImageScanName {
        /// The fleet.yaml.
        file: String,
        /// Index of the scan.
        index: usize,
    },
}

/// A bundle read from a folder.
#[derive(Debug, Clone)]
pub struct ReadBundle {
    /// The bundle (without namespace).
    pub bundle: Bundle,
    /// Image scans declared in fleet.yaml, as `ImageScan` objects.
    pub image_scans: Vec<Value>,
    /// Problems that did not stop the read (unknown fleet.yaml keys).
    pub warnings: Vec<Warning>,
}

/// Reads the fleet.yaml (or fleet.yml) of `dir`; an empty options document when there is none.
pub fn read_fleet_yaml(dir: &Path) -> Result<(FleetYaml, Vec<Warning>), ReadError> {
    for name in fleetyaml::FLEET_YAML_NAMES {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let shown = display_path(&path);
                return Ok(fleetyaml::parse(&shown, &text)?);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(ReadError::Io {
                    path: display_path(&path),
                    source: e,
                });
            }
        }
    }
    Ok((
        FleetYaml {
            raw: Value::Object(Default::default()),
            ..Default::default()
        },
        Vec::new(),
    ))
}

fn display_path(p: &Path) -> String {
    let s = p.display().to_string();
    s.strip_prefix("./").map(str::to_string).unwrap_or(s)
}

/// How charts that are not in the bundle folder are downloaded: `helm.repo` + `helm.chart` +
/// `helm.version` from a chart repository, `helm.chart` as an `http(s)://` URL of a chart
/// archive, or `helm.chart` as an `oci://` reference (with `helm.version` a version or semver
/// constraint).
#[derive(Debug, Clone, Default)]
pub struct ChartDownload {
    /// Credentials, CA bundle and TLS settings for repositories and registries (Fleet's Helm
    /// secret, `fleet apply --helm-credentials-by-path`). Fleet sends them to every chart source of
    /// the bundle.
    pub auth: fleet_helm::repo::RepoOptions,
}

/// Reads the bundle in `dir`, named `name` unless fleet.yaml names it. Remote charts are
/// downloaded without credentials; see [`read_bundle_with`].
pub fn read_bundle(name: &str, dir: &Path, opts: &ReadOptions) -> Result<ReadBundle, ReadError> {
    read_bundle_with(name, dir, opts, &ChartDownload::default())
}

/// Reads the bundle in `dir` like [`read_bundle`], downloading remote charts with `download`.
/// Fleet downloads charts at `fleet apply` time and stores their files as bundle resources under
/// `.chart/<checksum>/`, so agents never talk to the chart repository.
pub fn read_bundle_with(
    name: &str,
    dir: &Path,
    opts: &ReadOptions,
    download: &ChartDownload,
) -> Result<ReadBundle, ReadError> {
    let (fy, warnings) = read_fleet_yaml(dir)?;
    let mut charts = ChartFetcher {
        download,
        fetched: BTreeMap::new(),
    };
    let mut read = build(name, dir, &fy, opts, opts.compress, &mut charts)?;
    let size = serde_json::to_vec(&read.bundle)
        .map(|v| v.len())
        .unwrap_or(0);
    if !opts.compress && size >= COMPRESS_THRESHOLD {
        read = build(name, dir, &fy, opts, true, &mut charts)?;
    }
    read.warnings = warnings;
    Ok(read)
}

fn build(
    name: &str,
    dir: &Path,
    fy: &FleetYaml,
    opts: &ReadOptions,
    compress: bool,
    charts: &mut ChartFetcher<'_>,
) -> Result<ReadBundle, ReadError> {
    let fleet_yaml_file = display_path(&dir.join("fleet.yaml"));
    let mut image_scans = Vec::new();
    let bundle_name = if fy.name.is_empty() {
        name.to_string()
    } else {
        fy.name.clone()
    };
    for (i, scan) in fy.image_scans.iter().enumerate() {
        let image = scan
            .spec
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if image.is_empty() {
            continue;
        }
        if scan.tag_name.is_empty() {
            return Err(ReadError::ImageScanName {
                file: fleet_yaml_file.clone(),
                index: i,
            });
        }
        let mut spec = scan.spec.clone();
        spec.insert("tagName".into(), Value::String(scan.tag_name.clone()));
        image_scans.push(serde_json::json!({
            "apiVersion": fleet_api::consts::API_VERSION,
            "kind": "ImageScan",
            "metadata": {"name": names::safe_concat_name(&["imagescan", name, &i.to_string()])},
            "spec": Value::Object(spec),
        }));
    }

    let mut spec = fy.spec.clone();
    spec.targets
        .extend(fy.target_customizations.iter().cloned());
    for (i, t) in spec.targets.iter_mut().enumerate() {
        if t.name.is_empty() {
            t.name = format!("target{i:03}");
        }
    }
    propagate_helm_chart_properties(&mut spec);
    spec.resources = read_resources(&mut spec, dir, compress, charts)?;

    let mut labels: BTreeMap<String, String> = fy.labels.clone();
    for (k, v) in &opts.labels {
        labels.insert(k.clone(), v.clone());
    }
    for (k, v) in &fy.labels {
        labels.insert(k.clone(), v.clone());
    }
    if !opts.service_account.is_empty() {
        spec.service_account = opts.service_account.clone();
    }
    spec.force_sync_generation = opts.sync_generation;

    if let Some(overrides) = &fy.override_targets {
        spec.restrict_to_git_targets(overrides);
    } else if let Some(file) = &opts.targets_file {
        let (targets, restrictions) = read_targets_file(file)?;
        spec.targets.extend(targets);
        spec.target_restrictions.extend(restrictions);
    }
    if spec.targets.is_empty() {
        spec.targets.push(BundleTarget {
            name: "default".into(),
            cluster_group: "default".into(),
            ..Default::default()
        });
    }
    if !opts.target_namespace.is_empty() {
        spec.target_namespace = opts.target_namespace.clone();
        for t in &mut spec.targets {
            t.target_namespace = opts.target_namespace.clone();
        }
    }
    if opts.paused {
        spec.paused = true;
    }
    if opts.keep_resources {
        spec.keep_resources = true;
    }
    if opts.delete_namespace {
        spec.delete_namespace = true;
    }
    if let Some(drift) = opts.correct_drift.as_ref().filter(|d| d.enabled) {
        spec.correct_drift = Some(drift.clone());
    }
    // Fleet's Bundles have always carried `correctDrift: {}` on the spec and every target (the
    // field was a struct before it became optional); tools diffing Bundles rely on it.
    spec.correct_drift.get_or_insert_with(CorrectDrift::default);
    for t in &mut spec.targets {
        t.correct_drift.get_or_insert_with(CorrectDrift::default);
    }

    let bundle = Bundle {
        metadata: ObjectMeta {
            name: Some(bundle_name),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: (!fy.annotations.is_empty()).then(|| fy.annotations.clone()),
            ..Default::default()
        },
        spec,
        status: None,
    };
    Ok(ReadBundle {
        bundle,
        image_scans,
        warnings: Vec::new(),
    })
}

/// Reads a targets file (a `BundleSpec` YAML) into targets and restrictions.
pub fn read_targets_file(
    file: &Path,
) -> Result<(Vec<BundleTarget>, Vec<BundleTargetRestriction>), ReadError> {
    let path = display_path(file);
    let text = std::fs::read_to_string(file).map_err(|e| ReadError::Io {
        path: path.clone(),
        source: e,
    })?;
    if text.trim().is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let yaml: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| ReadError::TargetsFile {
            path: path.clone(),
            message: e.to_string(),
        })?;
    let json = yaml_to_json(yaml);
    let spec: BundleSpec =
        serde_path_to_error::deserialize(&json).map_err(|e| ReadError::TargetsFile {
            path: path.clone(),
            message: format!("{}: {}", e.path(), e.inner()),
        })?;
    Ok((spec.targets, spec.target_restrictions))
}

fn propagate_helm_chart_properties(spec: &mut BundleSpec) {
    let Some(root) = spec.helm.clone() else {
        return;
    };
    for t in &mut spec.targets {
        if let Some(h) = t.helm.as_mut() {
            if h.repo.is_empty() {
                h.repo = root.repo.clone();
            }
            if h.chart.is_empty() {
                h.chart = root.chart.clone();
            }
            if h.version.is_empty() {
                h.version = root.version.clone();
            }
        }
    }
}

/// Merges `helm.valuesFiles` (relative to the bundle folder) into `helm.values`.
fn parse_values_files(dir: &Path, helm: &mut HelmOptions) -> Result<(), ReadError> {
    if helm.values_files.is_empty() {
        return Ok(());
    }
    let mut values: GenericMap = helm.values.clone().unwrap_or_default();
    for file in &helm.values_files {
        let path = dir.join(file);
        let shown = display_path(&path);
        let text = std::fs::read_to_string(&path).map_err(|e| ReadError::ValuesFile {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let parsed = if text.trim().is_empty() {
            Value::Object(Default::default())
        } else {
            let yaml: serde_norway::Value =
                serde_norway::from_str(&text).map_err(|e| ReadError::ValuesFile {
                    path: shown.clone(),
                    message: e.to_string(),
                })?;
            yaml_to_json(yaml)
        };
        let map = match parsed {
            Value::Object(m) => m,
            Value::Null => Default::default(),
            _ => {
                return Err(ReadError::ValuesFile {
                    path: shown,
                    message: "values must be a mapping".into(),
                });
            }
        };
        values = merge_maps(&values, &map);
    }
    if !values.is_empty() {
        helm.values = Some(values);
    }
    Ok(())
}

fn read_resources(
    spec: &mut BundleSpec,
    dir: &Path,
    compress: bool,
    fetcher: &mut ChartFetcher<'_>,
) -> Result<Vec<BundleResource>, ReadError> {
    let mut charts: Vec<HelmOptions> = Vec::new();
    // Fleet v0.12 only reads the root `helm.valuesFiles` when `helm.chart` is set, and leaves
    // the files out of the bundle either way, so the values of a chart at the bundle root were
    // silently lost; they are read whenever they are listed.
    if let Some(h) = spec.helm.as_mut() {
        parse_values_files(dir, h)?;
        if !h.chart.is_empty() {
            charts.push(h.clone());
        }
    }
    for t in &mut spec.targets {
        if let Some(h) = t.helm.as_mut() {
            parse_values_files(dir, h)?;
            if !h.chart.is_empty() {
                charts.push(h.clone());
            }
        }
    }
    let mut ignore_apply_configs: Vec<String> = vec!["fleet.yaml".into()];
    if let Some(h) = &spec.helm {
        ignore_apply_configs.extend(h.values_files.iter().map(|f| names::clean_path(f)));
    }
    for t in &spec.targets {
        if let Some(h) = &t.helm {
            ignore_apply_configs.extend(h.values_files.iter().map(|f| names::clean_path(f)));
        }
    }

    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    if dir.exists() {
        load_directory(dir, &ignore_apply_configs, &mut files)?;
    }
    for chart in &charts {
        let local = dir.join(&chart.chart);
        // Like Fleet, a chart is downloaded when it names a repository or is not a path in the
        // bundle folder (an URL or an OCI reference).
        let remote = !chart.repo.is_empty() || chart.chart.starts_with("oci://") || !local.exists();
        let prefix = manifest::chart_checksum(chart);
        if remote {
            for (name, content) in fetcher.fetch(dir, chart)? {
                files.insert(format!("{prefix}/{name}"), content.clone());
            }
            continue;
        }
        if local.is_file() && is_archive(&chart.chart) {
            add_chart_archive(&local, &prefix, &mut files)?;
            // The unpacked chart is what gets deployed; the archive would only double the
            // size of the Bundle.
            files.remove(&names::clean_path(&chart.chart));
        }
    }

    let mut out: Vec<BundleResource> = files
        .into_iter()
        .map(|(name, data)| to_resource(name, &data, compress))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn is_archive(name: &str) -> bool {
    name.ends_with(".tgz") || name.ends_with(".tar.gz")
}

/// A resource from file contents: text as is, binary (or with `compress`) as `base64+gz`.
pub fn to_resource(name: String, data: &[u8], compress: bool) -> BundleResource {
    match std::str::from_utf8(data) {
        Ok(text) if !compress => BundleResource {
            name,
            content: text.to_string(),
            encoding: String::new(),
        },
        _ => BundleResource {
            name,
            content: content::base64_gz(data),
            encoding: content::BASE64_GZ.into(),
        },
    }
}

/// Unpacks a chart archive under `prefix/`, the way a downloaded chart is stored.
fn add_chart_archive(
    path: &Path,
    prefix: &str,
    files: &mut BTreeMap<String, Vec<u8>>,
) -> Result<(), ReadError> {
    let shown = display_path(path);
    let data = std::fs::read(path).map_err(|e| ReadError::Io {
        path: shown.clone(),
        source: e,
    })?;
    let entries = untar(&data).map_err(|message| ReadError::ChartArchive {
        path: shown,
        message,
    })?;
    for (name, content) in entries {
        files.insert(
            format!("{prefix}/{}", name.trim_start_matches("./")),
            content,
        );
    }
    Ok(())
}

fn untar(data: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    fleet_helm::chart::untar(data).map_err(|e| e.to_string())
}

/// Downloads the remote charts of one bundle, each (chart, repo, version) once even when the
/// bundle is built twice (the compressed second pass) or several targets name the same chart.
struct ChartFetcher<'a> {
    download: &'a ChartDownload,
    /// Unpacked files (`Chart.yaml`, `templates/...`) by `.chart/<checksum>` prefix.
    fetched: BTreeMap<String, Vec<(String, Vec<u8>)>>,
}

impl ChartFetcher<'_> {
    fn fetch(
        &mut self,
        dir: &Path,
        chart: &HelmOptions,
    ) -> Result<&[(String, Vec<u8>)], ReadError> {
        let key = manifest::chart_checksum(chart);
        if !self.fetched.contains_key(&key) {
            let fail = |message: String| ReadError::RemoteChart {
                bundle: display_path(dir),
                chart: chart.chart.clone(),
                repo: chart.repo.clone(),
                version: chart.version.clone(),
                message,
            };
            let archive = download_chart(chart, &self.download.auth).map_err(fail)?;
            let entries =
                untar(&archive).map_err(|e| fail(format!("unpacking the chart archive: {e}")))?;
            let entries = entries
                .into_iter()
                .map(|(name, content)| (name.trim_start_matches("./").to_string(), content))
                .collect();
            tracing::debug!(bundle = %display_path(dir), chart = %chart.chart, repo = %chart.repo, "downloaded helm chart");
            self.fetched.insert(key.clone(), entries);
        }
        Ok(self
            .fetched
            .get(&key)
            .map(Vec::as_slice)
            .unwrap_or_default())
    }
}

/// The chart archive a fleet.yaml `helm` section names outside the bundle folder (Fleet's
/// `chartURL` + download).
fn download_chart(
    chart: &HelmOptions,
    auth: &fleet_helm::repo::RepoOptions,
) -> Result<Vec<u8>, String> {
    use fleet_helm::repo;
    if chart.chart.starts_with("oci://") {
        return repo::fetch_oci_chart(&chart.chart, &chart.version, auth)
            .map(|(data, _tag)| data)
            .map_err(|e| e.to_string());
    }
    if let Some(registry) = chart.repo.strip_prefix("oci://") {
        // `repo: oci://host/path` + `chart: name`, as `helm pull oci://host/path/name` spells it.
        let reference = format!("oci://{}/{}", registry.trim_end_matches('/'), chart.chart);
        return repo::fetch_oci_chart(&reference, &chart.version, auth)
            .map(|(data, _tag)| data)
            .map_err(|e| e.to_string());
    }
    if !chart.repo.is_empty() {
        return repo::fetch_chart_archive(&chart.repo, &chart.chart, &chart.version, auth)
            .map(|(data, _entry)| data)
            .map_err(|e| e.to_string());
    }
    if chart.chart.starts_with("http://") || chart.chart.starts_with("https://") {
        return repo::fetch_url(&chart.chart, auth).map_err(|e| e.to_string());
    }
    Err(format!(
        "{:?} is neither a folder or archive in the bundle nor an http(s):// or oci:// URL (set helm.repo to download it from a chart repository)",
        chart.chart
    ))
}

/// Walks a bundle folder the way Fleet does: lexical order, hidden files and folders skipped,
/// `.fleetignore` patterns applied, apply configs (fleet.yaml, values files) left out.
pub fn load_directory(
    root: &Path,
    ignore_apply_configs: &[String],
    files: &mut BTreeMap<String, Vec<u8>>,
) -> Result<(), ReadError> {
    let mut tree = IgnoreTree::default();
    tree.add_dir(root).map_err(|e| ReadError::Io {
        path: display_path(&root.join(".fleetignore")),
        source: e,
    })?;
    walk(root, root, &mut tree, ignore_apply_configs, files)
}

fn walk(
    root: &Path,
    dir: &Path,
    tree: &mut IgnoreTree,
    ignore_apply_configs: &[String],
    files: &mut BTreeMap<String, Vec<u8>>,
) -> Result<(), ReadError> {
    let io = |path: &Path, e: std::io::Error| ReadError::Io {
        path: display_path(path),
        source: e,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        let meta = std::fs::metadata(&path).map_err(|e| io(&path, e))?;
        let is_dir = meta.is_dir();
        let ignored = tree.is_ignored(&path, is_dir);
        if ignore_apply_configs.contains(&rel) {
            continue;
        }
        if is_dir {
            if ignored
                || file_name.starts_with('.')
                || entry.file_type().map(|t| t.is_symlink()).unwrap_or(false)
            {
                continue;
            }
            tree.add_dir(&path)
                .map_err(|e| io(&path.join(".fleetignore"), e))?;
            walk(root, &path, tree, ignore_apply_configs, files)?;
            continue;
        }
        if ignored || file_name.starts_with('.') {
            continue;
        }
        let data = std::fs::read(&path).map_err(|e| io(&path, e))?;
        files.insert(rel, data);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(root: &Path, name: &str, content: &str) {
        let p = root.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    fn names(b: &Bundle) -> Vec<&str> {
        b.spec.resources.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn files_are_read_sorted_without_hidden_ignored_or_apply_configs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "fleet.yaml", "helm:\n  valuesFiles: [vals/v.yaml]\n");
        write(root, "b.yaml", "kind: B\n");
        write(root, "a/c.yaml", "kind: C\n");
        write(root, ".hidden.yaml", "x");
        write(root, ".git/config", "x");
        write(root, "vals/v.yaml", "x: 1\n");
        write(root, "notes.txt", "n");
        write(root, "skip/me.yaml", "x");
        write(root, ".fleetignore", "*.txt\nskip/*\n");
        let read = read_bundle("repo", root, &ReadOptions::default()).unwrap();
        assert_eq!(names(&read.bundle), vec!["a/c.yaml", "b.yaml"]);
        assert_eq!(
            read.bundle
                .spec
                .helm
                .as_ref()
                .unwrap()
                .values
                .as_ref()
                .unwrap()["x"],
            1
        );
    }

    #[test]
    fn binary_files_are_compressed_and_compress_forces_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("bin.dat"), [0xff, 0xfe, 0x00]).unwrap();
        write(dir.path(), "a.yaml", "kind: A\n");
        let read = read_bundle("r", dir.path(), &ReadOptions::default()).unwrap();
        let bin = read
            .bundle
            .spec
            .resources
            .iter()
            .find(|r| r.name == "bin.dat")
            .unwrap();
        assert_eq!(bin.encoding, "base64+gz");
        assert_eq!(
            content::decode(&bin.content, &bin.encoding).unwrap(),
            vec![0xff, 0xfe, 0x00]
        );
        let read = read_bundle(
            "r",
            dir.path(),
            &ReadOptions {
                compress: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(
            read.bundle
                .spec
                .resources
                .iter()
                .all(|r| r.encoding == "base64+gz")
        );
    }

    #[test]
    fn large_bundles_are_compressed() {
        let dir = tempfile::tempdir().unwrap();
        let big = "x: ".to_string() + &"a".repeat(COMPRESS_THRESHOLD) + "\n";
        write(dir.path(), "big.yaml", &big);
        let read = read_bundle("r", dir.path(), &ReadOptions::default()).unwrap();
        assert_eq!(read.bundle.spec.resources[0].encoding, "base64+gz");
    }

    #[test]
    fn default_target_names_labels_and_cli_options() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "fleet.yaml",
            "labels: {team: a}\ntargetCustomizations:\n- clusterName: one\n- name: two\n  clusterName: two\n",
        );
        write(dir.path(), "a.yaml", "kind: A\n");
        let opts = ReadOptions {
            labels: BTreeMap::from([("team".into(), "cli".into()), ("x".into(), "y".into())]),
            target_namespace: "forced".into(),
            service_account: "sa".into(),
            paused: true,
            sync_generation: 3,
            ..Default::default()
        };
        let b = read_bundle("r", dir.path(), &opts).unwrap().bundle;
        let labels = b.metadata.labels.unwrap();
        assert_eq!(labels["team"], "a");
        assert_eq!(labels["x"], "y");
        let names: Vec<&str> = b.spec.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, vec!["target000", "two"]);
        assert!(
            b.spec
                .targets
                .iter()
                .all(|t| t.target_namespace == "forced")
        );
        assert_eq!(b.spec.service_account, "sa");
        assert!(b.spec.paused);
        assert_eq!(b.spec.force_sync_generation, 3);
    }

    #[test]
    fn no_targets_means_the_default_group() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", "kind: A\n");
        let b = read_bundle("r", dir.path(), &ReadOptions::default())
            .unwrap()
            .bundle;
        assert_eq!(b.spec.targets.len(), 1);
        assert_eq!(b.spec.targets[0].name, "default");
        assert_eq!(b.spec.targets[0].cluster_group, "default");
    }

    #[test]
    fn targets_file_adds_targets_and_restrictions_after_customizations() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "fleet.yaml",
            "targetCustomizations:\n- name: dev\n  clusterSelector: {matchLabels: {env: dev}}\n  helm: {values: {replicas: 1}}\n",
        );
        write(dir.path(), "a.yaml", "kind: A\n");
        let targets = dir.path().join("targets.yaml");
        fs::write(&targets, "targets:\n- name: all\n  clusterSelector: {}\ntargetRestrictions:\n- name: all\n  clusterSelector: {}\n").unwrap();
        let opts = ReadOptions {
            targets_file: Some(targets),
            ..Default::default()
        };
        let b = read_bundle("r", dir.path(), &opts).unwrap().bundle;
        let names: Vec<&str> = b.spec.targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, vec!["dev", "all"]);
        assert_eq!(b.spec.target_restrictions.len(), 1);
    }

    #[test]
    fn override_targets_replace_the_gitrepo_targets() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "fleet.yaml",
            "overrideTargets:\n- clusterName: only\n",
        );
        write(dir.path(), "a.yaml", "kind: A\n");
        let targets = dir.path().join("t.yaml");
        fs::write(&targets, "targets:\n- clusterGroup: all\n").unwrap();
        let b = read_bundle(
            "r",
            dir.path(),
            &ReadOptions {
                targets_file: Some(targets),
                ..Default::default()
            },
        )
        .unwrap()
        .bundle;
        assert_eq!(b.spec.targets.len(), 1);
        assert_eq!(b.spec.targets[0].cluster_name, "only");
        assert_eq!(b.spec.target_restrictions[0].cluster_name, "only");
    }

    #[test]
    fn root_helm_chart_properties_propagate_to_targets() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "fleet.yaml",
            "helm:\n  chart: chart\n  version: 1.0.0\ntargetCustomizations:\n- name: t\n  clusterName: c\n  helm:\n    values: {a: 1}\n",
        );
        write(
            dir.path(),
            "chart/Chart.yaml",
            "apiVersion: v2\nname: c\nversion: 1.0.0\n",
        );
        let b = read_bundle("r", dir.path(), &ReadOptions::default())
            .unwrap()
            .bundle;
        let h = b.spec.targets[0].helm.as_ref().unwrap();
        assert_eq!((h.chart.as_str(), h.version.as_str()), ("chart", "1.0.0"));
    }

    #[test]
    fn local_chart_archives_are_unpacked_like_downloaded_charts() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "fleet.yaml", "helm:\n  chart: ./c-0.1.0.tgz\n");
        let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::default(),
        ));
        for (name, content) in [
            ("c/Chart.yaml", "apiVersion: v2\nname: c\nversion: 0.1.0\n"),
            ("c/templates/a.yaml", "kind: A\n"),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            archive
                .append_data(&mut header, name, content.as_bytes())
                .unwrap();
        }
        let data = archive.into_inner().unwrap().finish().unwrap();
        fs::write(dir.path().join("c-0.1.0.tgz"), data).unwrap();
        let b = read_bundle("r", dir.path(), &ReadOptions::default())
            .unwrap()
            .bundle;
        let names = names(&b);
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| n.starts_with(".chart/")), "{names:?}");
        let style =
            crate::render::determine_style(names.iter().copied(), &b.spec.deployment_options());
        assert!(style.is_helm(), "{style:?}");
    }

    /// A chart archive holding `c/Chart.yaml` and one template.
    fn chart_tgz() -> Vec<u8> {
        let mut archive = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::default(),
        ));
        for (name, content) in [
            ("c/Chart.yaml", "apiVersion: v2\nname: c\nversion: 0.1.0\n"),
            ("c/templates/cm.yaml", "kind: ConfigMap\n"),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            archive
                .append_data(&mut header, name, content.as_bytes())
                .unwrap();
        }
        archive.into_inner().unwrap().finish().unwrap()
    }

    /// One HTTP response of the test server: status, extra headers, body.
    type Reply = (u16, Vec<(String, String)>, Vec<u8>);
    /// Requests seen by the test server: path (with query) and Authorization header.
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>;

    /// An HTTP/1.1 server on 127.0.0.1 answering with `handler(path, authorization)`.
    fn serve(
        handler: impl Fn(&str, Option<&str>, &str) -> Reply + Send + 'static,
    ) -> (String, Seen) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen: Seen = Default::default();
        let seen2 = seen.clone();
        let base2 = base.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let mut auth = None;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':')
                        && k.eq_ignore_ascii_case("authorization")
                    {
                        auth = Some(v.trim().to_string());
                    }
                }
                seen2.lock().unwrap().push((path.clone(), auth.clone()));
                let (status, headers, body) = handler(&path, auth.as_deref(), &base2);
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        (base, seen)
    }

    fn ok(body: impl Into<Vec<u8>>) -> Reply {
        (200, Vec::new(), body.into())
    }

    fn not_found() -> Reply {
        (404, Vec::new(), b"missing".to_vec())
    }

    /// The downloaded chart's files, without the `.chart/<checksum>/` prefix.
    fn chart_files(b: &Bundle, helm: &HelmOptions) -> Vec<String> {
        let prefix = format!("{}/", manifest::chart_checksum(helm));
        b.spec
            .resources
            .iter()
            .filter_map(|r| r.name.strip_prefix(&prefix).map(str::to_string))
            .collect()
    }

    #[test]
    fn repository_charts_are_downloaded_into_the_bundle() {
        let tgz = chart_tgz();
        let (url, seen) = serve(move |path, _, _| match path {
            "/charts/index.yaml" => ok(
                "apiVersion: v1\nentries:\n  c:\n  - name: c\n    version: 0.1.0\n    urls: [c-0.1.0.tgz]\n  - name: c\n    version: 0.2.0\n    urls: [c-0.2.0.tgz]\n",
            ),
            "/charts/c-0.1.0.tgz" => ok(tgz.clone()),
            _ => not_found(),
        });
        let dir = tempfile::tempdir().unwrap();
        let fleet_yaml = format!(
            "helm:\n  repo: {url}/charts\n  chart: c\n  version: \"~0.1\"\ntargetCustomizations:\n- name: t\n  clusterName: x\n  helm:\n    values: {{a: 1}}\n"
        );
        write(dir.path(), "fleet.yaml", &fleet_yaml);
        let b = read_bundle("r", dir.path(), &ReadOptions::default())
            .unwrap()
            .bundle;
        let helm = b.spec.helm.clone().unwrap();
        assert_eq!(
            chart_files(&b, &helm),
            vec!["Chart.yaml", "templates/cm.yaml"]
        );
        assert_eq!(names(&b).len(), 2, "{:?}", names(&b));
        let style = crate::render::determine_style(names(&b), &b.spec.deployment_options());
        assert!(style.is_helm(), "{style:?}");
        // the target names the same chart: downloaded once
        let fetched: Vec<String> = seen.lock().unwrap().iter().map(|s| s.0.clone()).collect();
        assert_eq!(fetched, vec!["/charts/index.yaml", "/charts/c-0.1.0.tgz"]);
    }

    #[test]
    fn chart_urls_are_downloaded_with_credentials() {
        let tgz = chart_tgz();
        let (url, seen) = serve(move |path, auth, _| match (path, auth) {
            ("/c-0.1.0.tgz", Some("Basic dTpw")) => ok(tgz.clone()),
            ("/c-0.1.0.tgz", _) => (401, Vec::new(), b"no".to_vec()),
            _ => not_found(),
        });
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "fleet.yaml",
            &format!("helm:\n  chart: {url}/c-0.1.0.tgz\n"),
        );
        let err = read_bundle("r", dir.path(), &ReadOptions::default()).unwrap_err();
        assert!(err.to_string().contains("401"), "{err}");
        let download = ChartDownload {
            auth: fleet_helm::repo::RepoOptions {
                username: Some("u".into()),
                password: Some("p".into()),
                ..Default::default()
            },
        };
        let b = read_bundle_with("r", dir.path(), &ReadOptions::default(), &download)
            .unwrap()
            .bundle;
        let helm = b.spec.helm.clone().unwrap();
        assert_eq!(chart_files(&b, &helm).len(), 2, "{:?}", names(&b));
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[test]
    fn oci_charts_are_pulled_with_a_bearer_token() {
        use sha2::Digest;
        let tgz = chart_tgz();
        let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&tgz)));
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": "sha256:00", "size": 2},
            "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": digest, "size": tgz.len()}],
        })
        .to_string();
        let blob_path = format!("/v2/charts/c/blobs/{digest}");
        let (url, seen) = serve(move |path, auth, base| {
            if let Some(query) = path.strip_prefix("/token?") {
                assert!(
                    query.contains("scope=repository%3Acharts%2Fc%3Apull"),
                    "{query}"
                );
                return match auth {
                    Some("Basic dTpw") => ok(r#"{"token":"t0k"}"#),
                    _ => (401, Vec::new(), Vec::new()),
                };
            }
            if auth != Some("Bearer t0k") {
                let challenge = format!(
                    "Bearer realm=\"{base}/token\",service=\"registry\",scope=\"repository:charts/c:pull\""
                );
                return (
                    401,
                    vec![("WWW-Authenticate".into(), challenge)],
                    Vec::new(),
                );
            }
            match path {
                "/v2/charts/c/tags/list" => {
                    ok(r#"{"name":"charts/c","tags":["0.0.9","0.1.0","0.2.0-rc.1","latest"]}"#)
                }
                "/v2/charts/c/manifests/0.1.0" => ok(manifest.clone()),
                p if p == blob_path => ok(tgz.clone()),
                _ => not_found(),
            }
        });
        let registry = url.trim_start_matches("http://");
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "fleet.yaml",
            &format!("helm:\n  chart: oci://{registry}/charts/c\n  version: \">=0.0.1\"\n"),
        );
        let download = ChartDownload {
            auth: fleet_helm::repo::RepoOptions {
                username: Some("u".into()),
                password: Some("p".into()),
                plain_http: true,
                ..Default::default()
            },
        };
        let b = read_bundle_with("r", dir.path(), &ReadOptions::default(), &download)
            .unwrap()
            .bundle;
        let helm = b.spec.helm.clone().unwrap();
        assert_eq!(
            chart_files(&b, &helm),
            vec!["Chart.yaml", "templates/cm.yaml"]
        );
        let paths: Vec<String> = seen.lock().unwrap().iter().map(|s| s.0.clone()).collect();
        assert!(
            paths.iter().any(|p| p == "/v2/charts/c/manifests/0.1.0"),
            "{paths:?}"
        );
    }

    #[test]
    fn remote_chart_errors_name_the_chart_and_repository() {
        // a port nothing listens on: the connection is refused at once
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "fleet.yaml",
            &format!(
                "helm:\n  repo: http://127.0.0.1:{port}/charts\n  chart: nginx\n  version: 1.0.0\n"
            ),
        );
        let err = read_bundle("r", dir.path(), &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("chart=nginx"), "{err}");
        assert!(
            err.contains(&format!("repo=http://127.0.0.1:{port}/charts")),
            "{err}"
        );
        assert!(err.contains("version=1.0.0"), "{err}");

        write(dir.path(), "fleet.yaml", "helm:\n  chart: ./missing\n");
        let err = read_bundle("r", dir.path(), &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"./missing\" is neither a folder"), "{err}");
    }

    #[test]
    fn fleet_yaml_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "fleet.yaml", "keepResources: sometimes\n");
        let err = read_bundle("r", dir.path(), &ReadOptions::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("fleet.yaml:1: keepResources: invalid type"),
            "{err}"
        );
    }

    #[test]
    fn missing_values_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "fleet.yaml",
            "helm:\n  valuesFiles: [nope.yaml]\n",
        );
        let err = read_bundle("r", dir.path(), &ReadOptions::default()).unwrap_err();
        assert!(err.to_string().contains("nope.yaml"), "{err}");
    }
}

//! Which folders of a repository become bundles, and building them all (the pure part of
//! Fleet's `internal/cmd/cli/apply`). Writing them to a cluster is the caller's job; nothing is
//! written unless every bundle builds.
//!
//! Under each path (a glob), a folder becomes a bundle when it holds a `fleet.yaml`, and the
//! path itself also does when it, or a sub-folder not claimed by a `fleet.yaml`, holds `.yaml`
//! files. Bundles are named `<repo>-<folder>` (see [`crate::names::bundle_name`]).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::bundlereader::{self, ReadError, ReadOptions};
use crate::fleetyaml::{FLEET_YAML_NAMES, Warning};
use crate::ignore::go_match;
use crate::names;
use crate::render::objects;

/// A bundle built from a folder.
#[derive(Debug, Clone)]
pub struct BuiltBundle {
    /// The folder, as walked (relative to the working directory when the path was).
    pub path: String,
    /// The bundle, with `metadata.namespace` set.
    pub bundle: fleet_api::Bundle,
    /// Image scans declared in its fleet.yaml.
    pub image_scans: Vec<Value>,
}

/// Everything `fleet apply` built.
#[derive(Debug, Clone, Default)]
pub struct Built {
    /// The bundles, in walk order.
    pub bundles: Vec<BuiltBundle>,
    /// Unknown fleet.yaml keys and similar problems.
    pub warnings: Vec<Warning>,
    /// Folders that became no bundle because they have no resources.
    pub empty: Vec<String>,
}

/// Errors of `fleet apply`.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A path glob is malformed.
    #[error("invalid path glob {glob}: {message}")]
    Glob {
        /// The glob.
        glob: String,
        /// What is wrong.
        message: String,
    },
    /// A folder cannot be walked.
    #[error("{path}: {source}")]
    Io {
        /// The folder.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A bundle failed to build.
    #[error("bundle {bundle} (folder {path}): {source}")]
    Read {
        /// The bundle name.
        bundle: String,
        /// The folder.
        path: String,
        /// Why.
        #[source]
        source: Box<ReadError>,
    },
    /// No folder had anything to deploy.
    #[error("no resource found at the following paths to deploy: [{}]", paths.join(" "))]
    NothingToDeploy {
        /// The paths given.
        paths: Vec<String>,
    },
}

/// Builds every bundle under `base_dirs` (default `.`) for the GitRepo `repo_name`, in
/// `namespace`. Fails on the first bundle that cannot be built.
pub fn build_bundles(
    repo_name: &str,
    base_dirs: &[String],
    namespace: &str,
    opts: &ReadOptions,
) -> Result<Built, ApplyError> {
    let base_dirs: Vec<String> = if base_dirs.is_empty() {
        vec![".".into()]
    } else {
        base_dirs.to_vec()
    };
    let mut built = Built::default();
    for base in &base_dirs {
        for root in glob_dirs(base)? {
            let mut folders = Vec::new();
            collect_bundle_folders(&root, &root, &mut folders)?;
            for folder in folders {
                let path = path_string(&folder);
                add_bundle(&mut built, &folder, path, repo_name, namespace, opts)?;
            }
        }
    }
    if built.bundles.is_empty() {
        return Err(ApplyError::NothingToDeploy { paths: base_dirs });
    }
    Ok(built)
}

/// Like [`build_bundles`], but for a checkout at `root` instead of the process's working
/// directory: `base_dirs` are globs relative to `root`, and bundle names and
/// [`BuiltBundle::path`] use the folders relative to `root` (as `fleet apply` run inside the
/// checkout would). Several checkouts can be built at once from one process.
pub fn build_bundles_in(
    root: &Path,
    repo_name: &str,
    base_dirs: &[String],
    namespace: &str,
    opts: &ReadOptions,
) -> Result<Built, ApplyError> {
    build_bundles_in_with(
        root,
        repo_name,
        base_dirs,
        namespace,
        opts,
        &bundlereader::ChartDownload::default(),
    )
}

/// Like [`build_bundles_in`], downloading remote Helm charts with `download` (credentials and
/// the CA bundle of the chart repositories, e.g. the GitRepo controller's Rancher CA fallback).
pub fn build_bundles_in_with(
    root: &Path,
    repo_name: &str,
    base_dirs: &[String],
    namespace: &str,
    opts: &ReadOptions,
    download: &bundlereader::ChartDownload,
) -> Result<Built, ApplyError> {
    let base_dirs: Vec<String> = if base_dirs.is_empty() {
        vec![".".into()]
    } else {
        base_dirs.to_vec()
    };
    let mut built = Built::default();
    for base in &base_dirs {
        for relative_root in glob_dirs_in(root, base)? {
            let absolute_root = root.join(&relative_root);
            let mut folders = Vec::new();
            collect_bundle_folders(&absolute_root, &absolute_root, &mut folders)?;
            for folder in folders {
                let relative = folder.strip_prefix(root).unwrap_or(&folder);
                let path = path_string(relative);
                let source = BundleSource {
                    folder: &folder,
                    path,
                    download,
                };
                add_bundle_from(&mut built, source, repo_name, namespace, opts)?;
            }
        }
    }
    if built.bundles.is_empty() {
        return Err(ApplyError::NothingToDeploy { paths: base_dirs });
    }
    Ok(built)
}

/// Reads the bundle folder `folder` (shown as `path`) and adds it to `built`, or to
/// `built.empty` when it has no resources.
fn add_bundle(
    built: &mut Built,
    folder: &Path,
    path: String,
    repo_name: &str,
    namespace: &str,
    opts: &ReadOptions,
) -> Result<(), ApplyError> {
    let download = bundlereader::ChartDownload::default();
    let source = BundleSource {
        folder,
        path,
        download: &download,
    };
    add_bundle_from(built, source, repo_name, namespace, opts)
}

/// A bundle folder, the name it is shown with, and how its remote charts are downloaded.
struct BundleSource<'a> {
    folder: &'a Path,
    path: String,
    download: &'a bundlereader::ChartDownload,
}

fn add_bundle_from(
    built: &mut Built,
    source: BundleSource<'_>,
    repo_name: &str,
    namespace: &str,
    opts: &ReadOptions,
) -> Result<(), ApplyError> {
    let BundleSource {
        folder,
        path,
        download,
    } = source;
    let name = names::bundle_name(repo_name, &path);
    let read = bundlereader::read_bundle_with(&name, folder, opts, download).map_err(|source| {
        ApplyError::Read {
            bundle: name.clone(),
            path: path.clone(),
            source: Box::new(source),
        }
    })?;
    built.warnings.extend(read.warnings);
    if read.bundle.spec.resources.is_empty() {
        built.empty.push(path);
        return Ok(());
    }
    let mut bundle = read.bundle;
    bundle.metadata.namespace = Some(namespace.to_string());
    let image_scans = read
        .image_scans
        .into_iter()
        .map(|mut s| {
            if let Some(meta) = objects::metadata_mut(&mut s) {
                meta.insert("namespace".into(), Value::String(namespace.to_string()));
            }
            s
        })
        .collect();
    built.bundles.push(BuiltBundle {
        path,
        bundle,
        image_scans,
    });
    Ok(())
}

/// The folders under `root` matching `pattern` (Go's `filepath.Glob`, a leading `/` meaning
/// the root), relative to `root`; `.` for the root itself.
pub fn glob_dirs_in(root: &Path, pattern: &str) -> Result<Vec<PathBuf>, ApplyError> {
    let relative = pattern.trim_start_matches('/');
    let relative = relative.trim_start_matches("./");
    let relative = if relative.is_empty() { "." } else { relative };
    let matches = glob_relative(root, relative).map_err(|message| ApplyError::Glob {
        glob: pattern.to_string(),
        message,
    })?;
    Ok(matches
        .into_iter()
        .filter(|p| root.join(p).is_dir())
        .collect())
}

/// [`glob`] with every directory read below `root` and the matches relative to it.
fn glob_relative(root: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    if !has_meta(pattern) {
        return Ok(if root.join(pattern).symlink_metadata().is_ok() {
            vec![PathBuf::from(pattern)]
        } else {
            vec![]
        });
    }
    let (dir, file) = match pattern.rsplit_once('/') {
        Some((d, f)) => (if d.is_empty() { "." } else { d }, f),
        None => (".", pattern),
    };
    let dirs = if has_meta(dir) {
        glob_relative(root, dir)?
    } else {
        vec![PathBuf::from(dir)]
    };
    let mut out = Vec::new();
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(root.join(&d)) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in names {
            if go_match(file, &n)? {
                out.push(if d == Path::new(".") {
                    PathBuf::from(&n)
                } else {
                    d.join(&n)
                });
            }
        }
    }
    Ok(out)
}

fn path_string(p: &Path) -> String {
    let s = p.to_string_lossy().replace('\\', "/");
    if s.is_empty() { ".".into() } else { s }
}

/// The Bundle (and its image scans) as `fleet apply -o` prints them: cleaned for export,
/// Go-compatible YAML, documents separated by `\n---\n`.
pub fn export_yaml(bundles: &[BuiltBundle]) -> Result<String, String> {
    let mut docs = Vec::new();
    for b in bundles {
        let value = serde_json::to_value(&b.bundle).map_err(|e| e.to_string())?;
        docs.push(objects::clean_for_export(&value)?);
        for scan in &b.image_scans {
            docs.push(objects::clean_for_export(scan)?);
        }
    }
    Ok(crate::goyaml::documents_to_string(&docs))
}

fn has_fleet_yaml(dir: &Path) -> bool {
    FLEET_YAML_NAMES.iter().any(|n| dir.join(n).is_file())
}

/// Folders under `root` (walk order) that become bundles.
fn collect_bundle_folders(
    root: &Path,
    dir: &Path,
    out: &mut Vec<PathBuf>,
) -> Result<(), ApplyError> {
    let is_root = root == dir;
    let create = if is_root {
        has_fleet_yaml(dir) || has_resources_without_fleet_yaml(dir)?
    } else {
        has_fleet_yaml(dir)
    };
    if create {
        out.push(dir.to_path_buf());
    }
    for sub in sorted_subdirs(dir)? {
        collect_bundle_folders(root, &sub, out)?;
    }
    Ok(())
}

fn sorted_subdirs(dir: &Path) -> Result<Vec<PathBuf>, ApplyError> {
    let io = |e| ApplyError::Io {
        path: path_string(dir),
        source: e,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        // Like Go's filepath.Walk: symbolic links to folders are not followed.
        if entry.file_type().map_err(io)?.is_dir() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Whether `dir` or a sub-folder not holding a fleet.yaml has `.yaml`/`.yml` files.
fn has_resources_without_fleet_yaml(dir: &Path) -> Result<bool, ApplyError> {
    if has_fleet_yaml(dir) {
        return Ok(false);
    }
    let io = |e| ApplyError::Io {
        path: path_string(dir),
        source: e,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            if has_resources_without_fleet_yaml(&path)? {
                return Ok(true);
            }
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '\\'])
}

/// Go's `filepath.Glob` restricted to folders, with leading `/` removed (paths are relative to
/// the repository).
pub fn glob_dirs(pattern: &str) -> Result<Vec<PathBuf>, ApplyError> {
    let err = |message| ApplyError::Glob {
        glob: pattern.to_string(),
        message,
    };
    // GitRepo paths are relative to the repository even when they start with `/`; a path that
    // exists as an absolute one is still taken as is for local use.
    let mut matches = if pattern.starts_with('/') {
        glob(pattern).map_err(err)?
    } else {
        Vec::new()
    };
    if matches.is_empty() {
        let relative = pattern.trim_start_matches('/');
        let relative = if relative.is_empty() { "." } else { relative };
        matches = glob(relative).map_err(err)?;
    }
    Ok(matches.into_iter().filter(|p| p.is_dir()).collect())
}

fn glob(pattern: &str) -> Result<Vec<PathBuf>, String> {
    if !has_meta(pattern) {
        return Ok(if Path::new(pattern).symlink_metadata().is_ok() {
            vec![PathBuf::from(pattern)]
        } else {
            vec![]
        });
    }
    let (dir, file) = match pattern.rsplit_once('/') {
        Some((d, f)) => (if d.is_empty() { "/" } else { d }, f),
        None => (".", pattern),
    };
    let dirs = if has_meta(dir) {
        glob(dir)?
    } else {
        vec![PathBuf::from(dir)]
    };
    let mut out = Vec::new();
    for d in dirs {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in names {
            if go_match(file, &n)? {
                out.push(if d == Path::new(".") && !pattern.starts_with("./") {
                    PathBuf::from(&n)
                } else {
                    d.join(&n)
                });
            }
        }
    }
    Ok(out)
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

    #[test]
    fn folders_with_fleet_yaml_become_bundles() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "app1/fleet.yaml", "namespace: a\n");
        write(root, "app1/cm.yaml", "kind: ConfigMap\n");
        write(root, "app2/fleet.yaml", "{}\n");
        write(root, "app2/cm.yaml", "kind: ConfigMap\n");
        write(root, "docs/readme.md", "x");
        let base = root.to_string_lossy().to_string();
        let built = build_bundles(
            "repo",
            std::slice::from_ref(&base),
            "fleet-local",
            &ReadOptions::default(),
        )
        .unwrap();
        let paths: Vec<String> = built.bundles.iter().map(|b| b.path.clone()).collect();
        assert_eq!(paths, vec![format!("{base}/app1"), format!("{base}/app2")]);
        assert_eq!(
            built.bundles[0].bundle.metadata.namespace.as_deref(),
            Some("fleet-local")
        );
    }

    #[test]
    fn root_is_a_bundle_when_it_has_unclaimed_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "cm.yaml", "kind: ConfigMap\n");
        write(root, "sub/fleet.yaml", "{}\n");
        write(root, "sub/x.yaml", "kind: X\n");
        let base = root.to_string_lossy().to_string();
        let built = build_bundles("repo", &[base], "ns", &ReadOptions::default()).unwrap();
        assert_eq!(built.bundles.len(), 2);
    }

    #[test]
    fn an_empty_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_string_lossy().to_string();
        let err = build_bundles(
            "repo",
            std::slice::from_ref(&base),
            "ns",
            &ReadOptions::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("no resource found at the following paths to deploy"),
            "{err}"
        );
        assert!(err.to_string().contains(&base), "{err}");
    }

    #[test]
    fn a_bad_bundle_fails_the_whole_apply_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "good/fleet.yaml", "{}\n");
        write(root, "good/a.yaml", "kind: A\n");
        write(root, "bad/fleet.yaml", "helm: [1\n");
        let base = root.to_string_lossy().to_string();
        let err = build_bundles("repo", &[base], "ns", &ReadOptions::default()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("bad/fleet.yaml"), "{msg}");
    }

    #[test]
    fn build_in_a_root_names_bundles_relative_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "apps/one/fleet.yaml", "{}\n");
        write(root, "apps/one/cm.yaml", "kind: ConfigMap\n");
        write(root, "apps/two/cm.yaml", "kind: ConfigMap\n");
        write(root, "other/cm.yaml", "kind: ConfigMap\n");
        let built = build_bundles_in(
            root,
            "repo",
            &["/apps/*".to_string()],
            "ns",
            &ReadOptions::default(),
        )
        .unwrap();
        let got: Vec<(String, String)> = built
            .bundles
            .iter()
            .map(|b| (b.path.clone(), b.bundle.metadata.name.clone().unwrap()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("apps/one".to_string(), "repo-apps-one".to_string()),
                ("apps/two".to_string(), "repo-apps-two".to_string()),
            ]
        );
        let whole = build_bundles_in(root, "repo", &[], "ns", &ReadOptions::default()).unwrap();
        let names: Vec<String> = whole
            .bundles
            .iter()
            .map(|b| b.bundle.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, vec!["repo", "repo-apps-one"]);
    }

    #[test]
    fn globs_select_folders() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "apps/a/x.yaml", "kind: X\n");
        write(root, "apps/b/x.yaml", "kind: X\n");
        write(root, "apps/file.yaml", "kind: X\n");
        let got = glob_dirs(&format!("{}/apps/*", root.display())).unwrap();
        assert_eq!(got.len(), 2);
        assert!(glob_dirs(&format!("{}/apps/[", root.display())).is_err());
    }
}

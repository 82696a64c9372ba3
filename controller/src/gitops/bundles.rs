//! The bundles of a GitRepo: building them from a checkout (what `fleet apply` does in
//! Fleet's git job, with the same options it gets on its command line) and writing them —
//! create the new ones, update those that changed, delete those whose folder is gone.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use fleet_api::consts::{COMMIT_LABEL, REPO_LABEL};
use fleet_api::{Bundle, BundleSpec, GitRepoSpec};
use fleet_bundle::bundlereader::{ChartDownload, ReadOptions};
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use super::fetch;

/// A bundle build, run on the blocking pool.
#[derive(Debug, Clone)]
pub struct BuildJob {
    pub url: String,
    /// The GitRepo's cache folder (holds `repo.git`).
    pub cache_dir: PathBuf,
    pub commit: String,
    /// GitRepo name and namespace.
    pub name: String,
    pub namespace: String,
    /// The GitRepo spec after GitRepoRestriction defaults.
    pub spec: GitRepoSpec,
    /// How remote Helm charts are downloaded (the Helm CA bundle, TLS settings).
    pub charts: ChartDownload,
}

/// The targets file `fleet apply` gets from Fleet's git job: the GitRepo's targets, also as
/// target restrictions (so fleet.yaml customizations cannot widen them).
pub fn targets_spec(spec: &GitRepoSpec) -> BundleSpec {
    let mut out = BundleSpec::default();
    out.restrict_to_git_targets(&spec.targets);
    out
}

/// The `fleet apply` options of a GitRepo at `commit`.
pub fn read_options(
    spec: &GitRepoSpec,
    name: &str,
    commit: &str,
    targets_file: Option<PathBuf>,
) -> ReadOptions {
    let labels: BTreeMap<String, String> = [
        (REPO_LABEL.to_string(), name.to_string()),
        (COMMIT_LABEL.to_string(), commit.to_string()),
    ]
    .into();
    ReadOptions {
        compress: false,
        labels,
        service_account: spec.service_account.clone(),
        targets_file,
        target_namespace: spec.target_namespace.clone(),
        paused: spec.paused,
        sync_generation: spec.force_sync_generation,
        keep_resources: spec.keep_resources,
        delete_namespace: spec.delete_namespace,
        correct_drift: spec.correct_drift.clone(),
    }
}

/// Why a build produced no bundles to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// Every folder was read, and none has anything to deploy (the repository's last bundle
    /// folder was deleted, or `paths` match nothing). Like `fleet apply` in Fleet's git job,
    /// the GitRepo's bundles are pruned and the GitRepo still reports the message.
    NothingToDeploy(String),
    /// The checkout or a bundle failed: nothing already deployed may be deleted.
    Failed(String),
}

impl BuildError {
    pub fn message(&self) -> &str {
        match self {
            BuildError::NothingToDeploy(m) | BuildError::Failed(m) => m,
        }
    }
}

impl BuildJob {
    /// Checks the commit out (unless already checked out) and builds every bundle. The error
    /// names the bundle and the file, relative to the repository.
    pub fn run(self) -> Result<Vec<Bundle>, BuildError> {
        self.build().map_err(|(nothing_to_deploy, message)| {
            if nothing_to_deploy {
                BuildError::NothingToDeploy(message)
            } else {
                BuildError::Failed(message)
            }
        })
    }

    /// [`BuildJob::run`], the error flagged with whether the walk found nothing to deploy.
    fn build(self) -> Result<Vec<Bundle>, (bool, String)> {
        let failed = |message: String| (false, message);
        let checkout = self.cache_dir.join("checkout");
        let marker = self.cache_dir.join("checkout.commit");
        let current = std::fs::read_to_string(&marker).unwrap_or_default();
        if current.trim() != self.commit || !checkout.is_dir() {
            let _ = std::fs::remove_file(&marker);
            fetch::checkout(
                &self.url,
                &self.cache_dir.join("repo.git"),
                &self.commit,
                &checkout,
            )
            .map_err(|e| failed(e.to_string()))?;
            std::fs::write(&marker, &self.commit)
                .map_err(|e| failed(format!("{}: {e}", marker.display())))?;
        }
        let targets_file = if self.spec.targets.is_empty() {
            None
        } else {
            let path = self.cache_dir.join("targets.yaml");
            let text = serde_json::to_string(&targets_spec(&self.spec))
                .map_err(|e| failed(format!("encoding the GitRepo targets: {e}")))?;
            std::fs::write(&path, text).map_err(|e| failed(format!("{}: {e}", path.display())))?;
            Some(path)
        };
        let opts = read_options(&self.spec, &self.name, &self.commit, targets_file);
        let built = fleet_bundle::apply::build_bundles_in_with(
            &checkout,
            &self.name,
            &self.spec.paths,
            &self.namespace,
            &opts,
            &self.charts,
        )
        .map_err(|e| {
            let short = &self.commit[..self.commit.len().min(7)];
            let message = format!(
                "commit {short}: {}",
                relative_paths(&e.to_string(), &checkout)
            );
            let nothing_to_deploy =
                matches!(e, fleet_bundle::apply::ApplyError::NothingToDeploy { .. });
            (nothing_to_deploy, message)
        })?;
        for w in &built.warnings {
            tracing::info!(warning = %relative_paths(&w.to_string(), &checkout), "fleet.yaml");
        }
        Ok(built.bundles.into_iter().map(|b| b.bundle).collect())
    }
}

/// Error texts name files inside the checkout; show them relative to the repository.
fn relative_paths(text: &str, checkout: &Path) -> String {
    let prefix = format!("{}/", checkout.display());
    text.replace(&prefix, "")
}

/// For each bundle: the hash of what was last written and the generation the server gave it,
/// so that server-side defaulting does not make every reconcile write again.
pub type Written = HashMap<String, (String, i64)>;

/// One write to the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum BundleWrite {
    Create(Bundle),
    /// The existing bundle with the desired spec, labels and annotations (keeps its
    /// resourceVersion for optimistic concurrency).
    Update(Bundle),
    Delete(String),
}

fn fingerprint(b: &Bundle) -> String {
    use sha2::Digest as _;
    let value = serde_json::json!({
        "spec": b.spec,
        "labels": b.metadata.labels,
        "annotations": b.metadata.annotations,
    });
    hex::encode(sha2::Sha256::digest(value.to_string().as_bytes()))
}

/// The writes that make `existing` (the bundles labelled with the repo) equal `desired`.
pub fn plan(desired: &[Bundle], existing: &[Bundle], written: &Written) -> Vec<BundleWrite> {
    let mut out = Vec::new();
    let by_name: HashMap<&str, &Bundle> = existing
        .iter()
        .filter_map(|b| b.metadata.name.as_deref().map(|n| (n, b)))
        .collect();
    for want in desired {
        let Some(name) = want.metadata.name.as_deref() else {
            continue;
        };
        match by_name.get(name) {
            None => out.push(BundleWrite::Create(want.clone())),
            Some(have) => {
                let print = fingerprint(want);
                let unchanged_since_written = written.get(name).is_some_and(|(p, generation)| {
                    *p == print && have.metadata.generation == Some(*generation)
                });
                let same = have.spec == want.spec
                    && have.metadata.labels == want.metadata.labels
                    && have.metadata.annotations == want.metadata.annotations;
                if !same && !unchanged_since_written {
                    let mut update = (*have).clone();
                    update.spec = want.spec.clone();
                    update.metadata.labels = want.metadata.labels.clone();
                    update.metadata.annotations = want.metadata.annotations.clone();
                    out.push(BundleWrite::Update(update));
                }
            }
        }
    }
    let wanted: std::collections::HashSet<&str> = desired
        .iter()
        .filter_map(|b| b.metadata.name.as_deref())
        .collect();
    for have in existing {
        if let Some(name) = have.metadata.name.as_deref()
            && !wanted.contains(name)
            && have.metadata.deletion_timestamp.is_none()
        {
            out.push(BundleWrite::Delete(name.to_string()));
        }
    }
    out
}

/// Performs the writes; on failure, says which write failed.
pub async fn apply(
    api: &Api<Bundle>,
    writes: Vec<BundleWrite>,
    written: &mut Written,
) -> Result<(), (String, kube::Error)> {
    for w in writes {
        match w {
            BundleWrite::Create(b) => {
                let name = b.metadata.name.clone().unwrap_or_default();
                let print = fingerprint(&b);
                let created = match api.create(&PostParams::default(), &b).await {
                    Ok(c) => c,
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        // Created by someone else meanwhile: the next reconcile compares it.
                        continue;
                    }
                    Err(e) => return Err((format!("creating bundle {name}"), e)),
                };
                tracing::info!(bundle = %name, "bundle created");
                written.insert(name, (print, created.metadata.generation.unwrap_or(0)));
            }
            BundleWrite::Update(b) => {
                let name = b.metadata.name.clone().unwrap_or_default();
                let print = fingerprint(&b);
                let updated = api
                    .replace(&name, &PostParams::default(), &b)
                    .await
                    .map_err(|e| (format!("updating bundle {name}"), e))?;
                tracing::info!(bundle = %name, "bundle updated");
                written.insert(name, (print, updated.metadata.generation.unwrap_or(0)));
            }
            BundleWrite::Delete(name) => {
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err((format!("deleting bundle {name}"), e)),
                }
                tracing::info!(bundle = %name, "bundle deleted, its folder is gone");
                written.remove(&name);
            }
        }
    }
    Ok(())
}

/// Deletes every bundle of the GitRepo `name` (Fleet's `PurgeBundles` on GitRepo deletion).
pub async fn purge(api: &Api<Bundle>, name: &str) -> Result<(), kube::Error> {
    let list = api
        .list(&ListParams::default().labels(&format!("{REPO_LABEL}={name}")))
        .await?;
    for b in list.items {
        let bundle = b.metadata.name.unwrap_or_default();
        match api.delete(&bundle, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::GitTarget;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn bundle(name: &str, ns: &str) -> Bundle {
        Bundle {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([(REPO_LABEL.to_string(), "repo".to_string())].into()),
                ..Default::default()
            },
            spec: BundleSpec {
                default_namespace: ns.into(),
                ..Default::default()
            },
            status: None,
        }
    }

    #[test]
    fn plan_creates_updates_and_deletes() {
        let desired = vec![bundle("a", "x"), bundle("b", "y")];
        let mut b_old = bundle("b", "old");
        b_old.metadata.generation = Some(3);
        let existing = vec![b_old, bundle("gone", "z")];
        let plan = plan(&desired, &existing, &Written::new());
        assert_eq!(plan.len(), 3);
        assert!(
            matches!(&plan[0], BundleWrite::Create(b) if b.metadata.name.as_deref() == Some("a"))
        );
        assert!(
            matches!(&plan[1], BundleWrite::Update(b) if b.spec.default_namespace == "y" && b.metadata.generation == Some(3))
        );
        assert_eq!(plan[2], BundleWrite::Delete("gone".into()));
    }

    #[test]
    fn unchanged_bundles_are_not_written() {
        let desired = vec![bundle("a", "x")];
        assert!(plan(&desired, &desired.clone(), &Written::new()).is_empty());
    }

    #[test]
    fn server_defaults_do_not_cause_rewrites() {
        let desired = vec![bundle("a", "x")];
        // The server added something to the spec after our write at generation 1.
        let mut stored = bundle("a", "x");
        stored.spec.paused = true;
        stored.metadata.generation = Some(1);
        let mut written = Written::new();
        written.insert("a".into(), (fingerprint(&desired[0]), 1));
        assert!(plan(&desired, &[stored.clone()], &written).is_empty());
        // Someone edited it afterwards (generation moved): put it back.
        stored.metadata.generation = Some(2);
        assert_eq!(plan(&desired, &[stored], &written).len(), 1);
    }

    #[test]
    fn options_follow_fleet_apply_flags() {
        let spec = GitRepoSpec {
            service_account: "sa".into(),
            target_namespace: "tns".into(),
            keep_resources: true,
            delete_namespace: true,
            paused: true,
            force_sync_generation: 4,
            targets: vec![GitTarget {
                name: "prod".into(),
                cluster_group: "prod".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let o = read_options(&spec, "repo", "abc", None);
        assert_eq!(o.labels[REPO_LABEL], "repo");
        assert_eq!(o.labels[COMMIT_LABEL], "abc");
        assert_eq!(o.service_account, "sa");
        assert_eq!(o.target_namespace, "tns");
        assert!(o.keep_resources && o.delete_namespace && o.paused);
        assert_eq!(o.sync_generation, 4);
        let t = targets_spec(&spec);
        assert_eq!(t.targets[0].cluster_group, "prod");
        assert_eq!(t.target_restrictions[0].name, "prod");
    }
}

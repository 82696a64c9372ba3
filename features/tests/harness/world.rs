//! The state of one scenario: its Fleet (simulator or k3d), its git repository, the clusters
//! it declared, and the names snapshots are filed under.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, anyhow, bail};
use cucumber::World;
use fleet_cli::system::ClusterSpec;

use crate::backend::{Backend, BackendKind};

/// A git repository the scenario commits to; the controller fetches it over `file://` on the
/// simulator, or from the git server container on k3d.
#[derive(Debug)]
pub struct GitFixture {
    dir: tempfile::TempDir,
    /// k3d: the bare repository the git server serves, pushed to after every commit.
    served: Option<(PathBuf, String)>,
}

fn run_git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .with_context(|| format!("running git {args:?}"))?;
    if !out.status.success() {
        bail!(
            "git {args:?} in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl GitFixture {
    pub fn new(kind: BackendKind, unique_name: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating a folder for the git repository")?;
        for args in [
            &["init", "-q", "-b", "main"][..],
            &["config", "user.email", "features@fleet-rs.test"],
            &["config", "user.name", "fleet-rs features"],
            &["config", "commit.gpgsign", "false"],
        ] {
            run_git(dir.path(), args)?;
        }
        let served = match kind {
            BackendKind::Sim => None,
            BackendKind::K3d => {
                let settings = crate::backend::K3dSettings::from_env()?;
                let bare = settings.git_root.join(format!("{unique_name}.git"));
                let _ = std::fs::remove_dir_all(&bare);
                std::fs::create_dir_all(&bare)?;
                run_git(&bare, &["init", "-q", "--bare", "-b", "main"])?;
                // git daemon serves only repositories that ask for it (or --export-all).
                std::fs::write(bare.join("git-daemon-export-ok"), "")?;
                let url = format!(
                    "{}/{unique_name}.git",
                    settings.git_url_base.trim_end_matches('/')
                );
                Some((bare, url))
            }
        };
        Ok(GitFixture { dir, served })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The URL the GitRepo points at.
    pub fn url(&self) -> String {
        match &self.served {
            Some((_, url)) => url.clone(),
            None => format!("file://{}", self.dir.path().display()),
        }
    }

    pub fn write(&self, path: &str, content: &str) -> anyhow::Result<()> {
        let p = self.dir.path().join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, content).with_context(|| format!("writing {}", p.display()))
    }

    pub fn remove(&self, path: &str) -> anyhow::Result<()> {
        let p = self.dir.path().join(path);
        if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        }
        .with_context(|| format!("removing {}", p.display()))
    }

    pub fn copy_dir(&self, from: &Path, to: &str) -> anyhow::Result<()> {
        copy_recursively(from, &self.dir.path().join(to))
    }

    /// Commits everything (and pushes it to the git server on k3d); returns the commit id.
    pub fn commit(&self, message: &str) -> anyhow::Result<String> {
        run_git(self.path(), &["add", "-A"])?;
        run_git(
            self.path(),
            &["commit", "-q", "--allow-empty", "-m", message],
        )?;
        if let Some((bare, _)) = &self.served {
            let target = bare.display().to_string();
            run_git(self.path(), &["push", "-q", "-f", &target, "main"])?;
        }
        run_git(self.path(), &["rev-parse", "HEAD"])
    }
}

fn copy_recursively(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_recursively(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// The shared conformance folder holding Fleet's examples, as `scripts/test` finds it.
pub fn fleet_examples() -> PathBuf {
    let shared = std::env::var("FLEET_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    shared.join("conformance/fleet-examples")
}

/// One scenario.
#[derive(Debug, World)]
#[world(init = Self::new)]
pub struct FleetWorld {
    pub kind: BackendKind,
    backend: Option<Backend>,
    repo: Option<GitFixture>,
    /// The newest commit of the scenario's repository.
    pub commit: Option<String>,
    /// The clusters the scenario declared, in order.
    pub clusters: Vec<ClusterSpec>,
    /// `<feature file stem>__<scenario>`: the prefix of the scenario's snapshot names.
    pub snapshot_prefix: String,
    /// The Helm chart repository the scenario's HelmOps install from, started on first use.
    pub chart_repo: Option<ChartRepoFixture>,
    /// uids of downstream objects noted by `When I note ...`, by `cluster/kind/key`.
    pub noted_uids: std::collections::BTreeMap<String, String>,
    /// BundleDeployments watched by `When I watch ...`, by `bundle/cluster`.
    pub watches: std::collections::BTreeMap<String, ReadyWatch>,
}

/// A chart repository on 127.0.0.1 (see `controller/tests/helmops_support`).
pub struct ChartRepoFixture(pub crate::helmops_support::ChartRepo);

impl std::fmt::Debug for ChartRepoFixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChartRepo({})", self.0.url())
    }
}

/// A background sampler of one BundleDeployment's Ready state; returns what it saw when not
/// Ready, and how many samples it took.
#[derive(Debug)]
pub struct ReadyWatch {
    pub stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub task: tokio::task::JoinHandle<(usize, Vec<String>)>,
}

impl FleetWorld {
    fn new() -> Self {
        FleetWorld {
            kind: BackendKind::from_env().unwrap_or(BackendKind::Sim),
            backend: None,
            repo: None,
            commit: None,
            clusters: Vec::new(),
            snapshot_prefix: String::new(),
            chart_repo: None,
            noted_uids: Default::default(),
            watches: Default::default(),
        }
    }

    /// Fleet, started on first use.
    pub async fn fleet(&mut self) -> anyhow::Result<&Backend> {
        if self.backend.is_none() {
            self.backend = Some(Backend::start(self.kind).await?);
        }
        self.backend
            .as_ref()
            .ok_or_else(|| anyhow!("Fleet did not start"))
    }

    /// Fleet, which an earlier step must have started.
    pub fn started(&self) -> anyhow::Result<&Backend> {
        self.backend.as_ref().ok_or_else(|| {
            anyhow!("no fleet yet: begin the scenario with `Given a fleet of N clusters`")
        })
    }

    pub fn upstream(&self) -> anyhow::Result<kube::Client> {
        Ok(self.started()?.upstream())
    }

    pub fn cluster(&self, name: &str) -> anyhow::Result<kube::Client> {
        self.started()?.cluster(name)
    }

    /// The scenario's git repository, created on first use.
    pub fn repo(&mut self) -> anyhow::Result<&GitFixture> {
        if self.repo.is_none() {
            let unique = format!("{}-{}", slug(&self.snapshot_prefix), std::process::id());
            self.repo = Some(GitFixture::new(self.kind, &unique)?);
        }
        self.repo
            .as_ref()
            .ok_or_else(|| anyhow!("no git repository"))
    }

    /// Commits the repository and remembers the commit the GitRepo must reach.
    pub fn commit(&mut self, message: &str) -> anyhow::Result<String> {
        let id = self.repo()?.commit(message)?;
        self.commit = Some(id.clone());
        Ok(id)
    }

    pub async fn shutdown(&mut self) {
        for (_, watch) in std::mem::take(&mut self.watches) {
            watch.task.abort();
        }
        if let Some(backend) = self.backend.take() {
            backend.shutdown().await;
        }
    }
}

/// `Some Name: with words` → `some_name_with_words`.
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

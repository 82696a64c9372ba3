//! The state of one scenario: its Fleet (simulator or k3d), its git repository, the clusters
//! it declared, and the names snapshots are filed under.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use cucumber::World;
use fleet_cli::system::ClusterSpec;
use fleet_simulator::services::{ChartRepo, GitHttpServer, GitWorkdir, TestCa};

use crate::backend::{Backend, BackendKind};

/// A git repository the scenario commits to; the controller fetches it over `file://` on the
/// simulator, from the HTTPS git server when the scenario serves it so, or from the git server
/// container on k3d.
#[derive(Debug)]
pub struct GitFixture {
    workdir: GitWorkdir,
    /// k3d: the bare repository the git server serves, pushed to after every commit.
    served: Option<(PathBuf, String)>,
    /// The in-process HTTPS git server serving the repository as `<name>.git`.
    https: Option<(GitHttpServer, String)>,
}

impl GitFixture {
    pub fn new(kind: BackendKind, unique_name: &str) -> anyhow::Result<Self> {
        let workdir = GitWorkdir::init("main").context("creating the scenario's git repository")?;
        let served = match kind {
            BackendKind::Sim => None,
            BackendKind::K3d => {
                let settings = crate::backend::K3dSettings::from_env()?;
                let bare = settings.git_root.join(format!("{unique_name}.git"));
                let _ = std::fs::remove_dir_all(&bare);
                std::fs::create_dir_all(&bare)?;
                let bare_workdir = bare.display().to_string();
                workdir.git(&["init", "-q", "--bare", "-b", "main", &bare_workdir])?;
                // git daemon serves only repositories that ask for it (or --export-all).
                std::fs::write(bare.join("git-daemon-export-ok"), "")?;
                let url = format!(
                    "{}/{unique_name}.git",
                    settings.git_url_base.trim_end_matches('/')
                );
                Some((bare, url))
            }
        };
        Ok(GitFixture {
            workdir,
            served,
            https: None,
        })
    }

    /// The URL the GitRepo points at.
    pub fn url(&self) -> String {
        if let Some((server, name)) = &self.https {
            return server.url(name);
        }
        match &self.served {
            Some((_, url)) => url.clone(),
            None => self.workdir.url(),
        }
    }

    /// From now on the repository is served (and pushed to after every commit) by `server`
    /// as `<name>.git`.
    pub fn serve_over(&mut self, server: GitHttpServer, name: &str) -> anyhow::Result<()> {
        server
            .publish(&self.workdir, name)
            .with_context(|| format!("publishing the repository as {name}.git"))?;
        self.https = Some((server, name.to_string()));
        Ok(())
    }

    pub fn write(&self, path: &str, content: &str) -> anyhow::Result<()> {
        Ok(self.workdir.write(path, content)?)
    }

    pub fn remove(&self, path: &str) -> anyhow::Result<()> {
        Ok(self.workdir.remove(path)?)
    }

    pub fn copy_dir(&self, from: &Path, to: &str) -> anyhow::Result<()> {
        Ok(self.workdir.copy_dir(from, to)?)
    }

    /// Commits everything (and pushes it to the git server serving it); returns the commit id.
    pub fn commit(&self, message: &str) -> anyhow::Result<String> {
        let id = self.workdir.commit(message)?;
        if let Some((bare, _)) = &self.served {
            self.workdir.push_to(bare)?;
        }
        if let Some((server, name)) = &self.https {
            server.push(&self.workdir, name)?;
        }
        Ok(id)
    }
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
    pub chart_repo: Option<ChartRepo>,
    /// Certificate authorities the scenario named, by name (made on first mention).
    pub cas: std::collections::BTreeMap<String, TestCa>,
    /// uids of downstream objects noted by `When I note ...`, by `cluster/kind/key`.
    pub noted_uids: std::collections::BTreeMap<String, String>,
    /// BundleDeployments watched by `When I watch ...`, by `bundle/cluster`.
    pub watches: std::collections::BTreeMap<String, ReadyWatch>,
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
            cas: Default::default(),
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

    /// The scenario's git repository, to change how it is served.
    pub fn repo_mut(&mut self) -> anyhow::Result<&mut GitFixture> {
        self.repo()?;
        self.repo
            .as_mut()
            .ok_or_else(|| anyhow!("no git repository"))
    }

    /// The CA named `name`, made on first mention.
    pub fn ca(&mut self, name: &str) -> anyhow::Result<&TestCa> {
        if !self.cas.contains_key(name) {
            let ca = TestCa::new(name).with_context(|| format!("making the CA {name:?}"))?;
            self.cas.insert(name.to_string(), ca);
        }
        self.cas.get(name).ok_or_else(|| anyhow!("no CA {name:?}"))
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

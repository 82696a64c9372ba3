//! Where the scenarios run: the in-process simulator (`FLEET_E2E_BACKEND=sim`, the default) or
//! real k3d clusters set up by `scripts/k3d-up.sh` (`FLEET_E2E_BACKEND=k3d`). Steps only see
//! Kubernetes clients and a few operations; what needs fault injection is `@sim` only.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use fleet_cli::system::{ClusterSpec, SimSystem, SystemOptions};
use fleet_simulator::behaviour::{Pattern, PodOutcome, PodRule, PodSelector, Profile};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// Namespace of the Cluster objects the scenarios create or label.
pub const CLUSTERS_NAMESPACE: &str = fleet_cli::system::CLUSTERS_NAMESPACE;

/// Which backend `FLEET_E2E_BACKEND` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Sim,
    K3d,
}

impl BackendKind {
    pub fn from_env() -> anyhow::Result<Self> {
        match std::env::var("FLEET_E2E_BACKEND").as_deref() {
            Err(_) | Ok("") | Ok("sim") => Ok(BackendKind::Sim),
            Ok("k3d") => Ok(BackendKind::K3d),
            Ok(other) => bail!("FLEET_E2E_BACKEND={other:?}: use `sim` (default) or `k3d`"),
        }
    }
}

/// What the k3d backend needs, written by `scripts/k3d-up.sh` into `$FLEET_E2E_STATE_DIR/env`
/// (sourced by `scripts/test-e2e`).
#[derive(Debug, Clone)]
pub struct K3dSettings {
    /// kubeconfig of the upstream cluster (the fleet-rs chart installed there).
    pub upstream_kubeconfig: PathBuf,
    /// Folder with one kubeconfig per downstream cluster, `<cluster>.yaml`, named as the Cluster
    /// objects upstream (`sim-1` …).
    pub downstream_kubeconfigs: PathBuf,
    /// Folder bind-mounted into the git server container; bare repositories created here are
    /// served at `git_url_base/<name>.git`.
    pub git_root: PathBuf,
    /// How the controller reaches the git server, e.g. `git://fleet-rs-git:9418`.
    pub git_url_base: String,
}

impl K3dSettings {
    /// Reads the settings and checks the tools are there, failing fast with what is missing.
    pub fn from_env() -> anyhow::Result<Self> {
        let docker = std::process::Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .output();
        match docker {
            Err(e) => bail!(
                "FLEET_E2E_BACKEND=k3d needs Docker, but `docker` cannot be run ({e}). Install Docker and k3d, \
                 run scripts/k3d-up.sh, then scripts/test-e2e; or use FLEET_E2E_BACKEND=sim"
            ),
            Ok(out) if !out.status.success() => bail!(
                "FLEET_E2E_BACKEND=k3d needs a running Docker daemon: `docker info` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Ok(_) => {}
        }
        let var = |name: &str| {
            std::env::var(name).map_err(|_| {
                anyhow!("FLEET_E2E_BACKEND=k3d: {name} is not set; run scripts/k3d-up.sh and then scripts/test-e2e (it sets it)")
            })
        };
        Ok(K3dSettings {
            upstream_kubeconfig: var("FLEET_E2E_UPSTREAM_KUBECONFIG")?.into(),
            downstream_kubeconfigs: var("FLEET_E2E_DOWNSTREAM_KUBECONFIGS")?.into(),
            git_root: var("FLEET_E2E_GIT_ROOT")?.into(),
            git_url_base: var("FLEET_E2E_GIT_URL")?,
        })
    }
}

/// One scenario's Fleet.
pub enum Backend {
    Sim(Box<SimSystem>),
    K3d(Box<K3dBackend>),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Sim(_) => f.write_str("Backend::Sim"),
            Backend::K3d(k) => write!(f, "Backend::K3d({:?})", k.settings.upstream_kubeconfig),
        }
    }
}

/// Options for the simulated system: short intervals, so scenarios converge quickly.
fn sim_options() -> SystemOptions {
    let mut o = SystemOptions::default();
    o.controller.default_polling_interval = Duration::from_secs(1);
    o.agent_drift_delay = Duration::from_millis(200);
    o.agent_checkin_interval = Duration::from_secs(5);
    // HelmOps are off by default in Fleet; the helmops feature needs them.
    o.controller.helmops_enabled = true;
    o
}

impl Backend {
    pub async fn start(kind: BackendKind) -> anyhow::Result<Self> {
        match kind {
            BackendKind::Sim => Ok(Backend::Sim(Box::new(
                SimSystem::start(sim_options())
                    .await
                    .context("starting Fleet on the simulator")?,
            ))),
            BackendKind::K3d => Ok(Backend::K3d(Box::new(
                K3dBackend::connect(K3dSettings::from_env()?).await?,
            ))),
        }
    }

    pub fn upstream(&self) -> kube::Client {
        match self {
            Backend::Sim(s) => s.upstream_client(),
            Backend::K3d(k) => k.upstream.clone(),
        }
    }

    pub fn cluster(&self, name: &str) -> anyhow::Result<kube::Client> {
        match self {
            Backend::Sim(s) => s
                .cluster_client(name)
                .with_context(|| format!("cluster {name}")),
            Backend::K3d(k) => k.downstream.get(name).cloned().ok_or_else(|| {
                anyhow!(
                    "cluster {name}: no kubeconfig {name}.yaml in {}",
                    k.settings.downstream_kubeconfigs.display()
                )
            }),
        }
    }

    fn simulator(&self, what: &str) -> anyhow::Result<&SimSystem> {
        match self {
            Backend::Sim(s) => Ok(s),
            Backend::K3d(_) => bail!("{what} needs the simulator backend: tag the scenario @sim"),
        }
    }

    /// Makes the clusters part of the fleet with exactly these labels. On the simulator they are
    /// created and registered; on k3d they exist already and only get their labels.
    pub async fn add_clusters(&self, specs: &[ClusterSpec]) -> anyhow::Result<()> {
        match self {
            Backend::Sim(s) => s
                .add_clusters(specs)
                .await
                .context("adding simulated clusters"),
            Backend::K3d(_) => {
                for spec in specs {
                    self.set_cluster_labels(&spec.name, &spec.labels).await?;
                }
                Ok(())
            }
        }
    }

    /// Replaces the labels of the Cluster object `name` (Fleet's own labels are kept).
    pub async fn set_cluster_labels(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> anyhow::Result<()> {
        let api: Api<fleet_api::Cluster> = Api::namespaced(self.upstream(), CLUSTERS_NAMESPACE);
        let current = api
            .get(name)
            .await
            .with_context(|| format!("reading Cluster {CLUSTERS_NAMESPACE}/{name}"))?;
        let mut patch = serde_json::Map::new();
        for key in current.metadata.labels.unwrap_or_default().keys() {
            let managed =
                key.contains("fleet.cattle.io/") || key.starts_with("management.cattle.io/");
            if !managed && !labels.contains_key(key) {
                patch.insert(key.clone(), serde_json::Value::Null);
            }
        }
        for (k, v) in labels {
            patch.insert(k.clone(), json!(v));
        }
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": patch}})),
        )
        .await
        .with_context(|| format!("labelling Cluster {CLUSTERS_NAMESPACE}/{name}"))?;
        Ok(())
    }

    /// Imports the cluster through a kubeconfig Secret (`spec.kubeConfigSecret`): the
    /// controller then manages the agent itself, which upgrades a pre-0.12 StatefulSet agent to
    /// the Deployment.
    pub async fn import_cluster(&self, name: &str) -> anyhow::Result<()> {
        let system = self.simulator("importing a cluster with its kubeconfig")?;
        let cluster = system
            .simulator()
            .cluster(name)
            .ok_or_else(|| anyhow!("cluster {name} is not simulated"))?;
        let kubeconfig = cluster.kubeconfig(&cluster.in_process_url());
        let secret_name = format!("{name}-kubeconfig");
        let data = [
            ("value", kubeconfig),
            ("apiServerURL", system.upstream().in_process_url()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), k8s_openapi::ByteString(v.into_bytes())))
        .collect();
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(secret_name.clone()),
                namespace: Some(CLUSTERS_NAMESPACE.to_string()),
                ..Default::default()
            },
            data: Some(data),
            ..Default::default()
        };
        Api::<Secret>::namespaced(self.upstream(), CLUSTERS_NAMESPACE)
            .create(&PostParams::default(), &secret)
            .await
            .with_context(|| format!("creating Secret {CLUSTERS_NAMESPACE}/{secret_name}"))?;
        Api::<fleet_api::Cluster>::namespaced(self.upstream(), CLUSTERS_NAMESPACE)
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"kubeConfigSecret": secret_name}})),
            )
            .await
            .with_context(|| format!("setting kubeConfigSecret of Cluster {name}"))?;
        Ok(())
    }

    /// Disconnects the cluster's agent from the upstream cluster (what it deployed stays).
    pub async fn stop_agent(&self, name: &str) -> anyhow::Result<()> {
        self.simulator("disconnecting an agent")?
            .stop_agent(name)
            .await;
        Ok(())
    }

    pub async fn start_agent(&self, name: &str) -> anyhow::Result<()> {
        self.simulator("reconnecting an agent")?
            .start_agent(name)
            .await
            .with_context(|| format!("starting the agent of {name}"))
    }

    /// From now on, containers of pods in `namespace` on cluster `name` never become ready.
    pub fn fail_workloads(&self, name: &str, namespace: &str) -> anyhow::Result<()> {
        let system = self.simulator("making a cluster's workloads fail")?;
        let cluster = system
            .simulator()
            .cluster(name)
            .ok_or_else(|| anyhow!("cluster {name} is not simulated"))?;
        let mut profile = Profile::default();
        let pattern = regex::escape(namespace);
        let selector = PodSelector {
            namespace: Some(
                Pattern::new(&pattern).with_context(|| format!("namespace pattern {pattern}"))?,
            ),
            ..PodSelector::default()
        };
        profile.pods.insert(
            0,
            PodRule::matching(selector).outcome(PodOutcome::NeverReady),
        );
        cluster.set_profile(Some(profile));
        Ok(())
    }

    /// Heals what [`Backend::fail_workloads`] did: the pods of `namespace` are replaced by
    /// their controllers and become ready.
    pub async fn heal_workloads(&self, name: &str, namespace: &str) -> anyhow::Result<()> {
        let system = self.simulator("healing a cluster's workloads")?;
        let cluster = system
            .simulator()
            .cluster(name)
            .ok_or_else(|| anyhow!("cluster {name} is not simulated"))?;
        cluster.set_profile(Some(Profile::default()));
        let pods: Api<Pod> = Api::namespaced(cluster.client(), namespace);
        pods.delete_collection(&DeleteParams::default(), &ListParams::default())
            .await
            .with_context(|| format!("deleting the pods of {namespace} on {name}"))?;
        Ok(())
    }

    pub async fn shutdown(&self) {
        if let Backend::Sim(s) = self {
            s.shutdown().await;
        }
    }
}

/// Clients of the k3d clusters.
pub struct K3dBackend {
    pub settings: K3dSettings,
    upstream: kube::Client,
    downstream: BTreeMap<String, kube::Client>,
}

async fn client_from_kubeconfig(path: &std::path::Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .with_context(|| format!("loading kubeconfig {}", path.display()))?;
    kube::Client::try_from(config).with_context(|| format!("client for {}", path.display()))
}

impl K3dBackend {
    async fn connect(settings: K3dSettings) -> anyhow::Result<Self> {
        let upstream = client_from_kubeconfig(&settings.upstream_kubeconfig).await?;
        let mut downstream = BTreeMap::new();
        let entries = std::fs::read_dir(&settings.downstream_kubeconfigs)
            .with_context(|| format!("listing {}", settings.downstream_kubeconfigs.display()))?;
        for entry in entries {
            let path = entry?.path();
            if let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".yaml"))
            {
                downstream.insert(name.to_string(), client_from_kubeconfig(&path).await?);
            }
        }
        Ok(K3dBackend {
            settings,
            upstream,
            downstream,
        })
    }
}

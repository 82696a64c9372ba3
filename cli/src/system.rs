//! The whole of Fleet on the in-process simulator: one upstream cluster holding Fleet's
//! resources, the real controller against it, and one real agent per simulated downstream
//! cluster. `fleet sim up`, the end-to-end tests and the acceptance features all stand on this.
//!
//! Controller and agents are started and stopped individually, so tests can restart them
//! mid-rollout or disconnect an agent for a while.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleet_agent::{Agent, AgentConfig};
use fleet_api::Cluster;
use fleet_controller::{Controller, ControllerConfig};
use fleet_simulator::behaviour::Profile;
use fleet_simulator::{SimCluster, SimConfig, Simulator};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Namespace of the Cluster objects of the simulated clusters (Fleet's default for
/// downstream clusters).
pub const CLUSTERS_NAMESPACE: &str = "fleet-default";
/// Name of the simulated upstream (management) cluster.
pub const UPSTREAM: &str = "upstream";

/// Why the simulated system could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    #[error("simulator: {0}")]
    Simulator(#[from] fleet_simulator::SimError),
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error("cluster {0} is not part of this fleet")]
    UnknownCluster(String),
    #[error(
        "cluster {namespace}/{name}: the controller did not assign its cluster namespace within {seconds}s (is the controller running?)"
    )]
    NoClusterNamespace {
        namespace: String,
        name: String,
        seconds: u64,
    },
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> SystemError {
    let action = action.into();
    move |source| SystemError::Kube { action, source }
}

/// A downstream cluster to simulate.
#[derive(Debug, Clone, Default)]
pub struct ClusterSpec {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

impl ClusterSpec {
    pub fn new(name: &str) -> Self {
        ClusterSpec {
            name: name.to_string(),
            labels: BTreeMap::new(),
        }
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_string(), value.to_string());
        self
    }
}

/// How to set up the simulated system.
#[derive(Debug, Clone)]
pub struct SystemOptions {
    /// Seeds the simulator (behaviour jitter, faults, names).
    pub seed: u64,
    /// Behaviour of the downstream clusters (`None`: bare API servers, nothing becomes ready).
    pub profile: Option<Profile>,
    pub controller: ControllerConfig,
    /// Applied to every agent's configuration before it starts.
    pub agent_drift_delay: Duration,
    pub agent_checkin_interval: Duration,
    pub agent_workers: usize,
    /// How long to wait for the controller to assign a new cluster its namespace.
    pub cluster_namespace_timeout: Duration,
    /// Runtime the controller runs on (default: the caller's), so its CPU time can be told
    /// apart from the agents' (`fleet sim bench`).
    pub controller_runtime: Option<tokio::runtime::Handle>,
    /// Runtime the agents run on (default: the caller's).
    pub agent_runtime: Option<tokio::runtime::Handle>,
}

impl Default for SystemOptions {
    fn default() -> Self {
        SystemOptions {
            seed: 0,
            profile: Some(Profile::default()),
            controller: ControllerConfig::default(),
            agent_drift_delay: Duration::from_secs(5),
            agent_checkin_interval: Duration::from_secs(60),
            agent_workers: 4,
            cluster_namespace_timeout: Duration::from_secs(120),
            controller_runtime: None,
            agent_runtime: None,
        }
    }
}

struct Running {
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        // A task that already ended (or panicked) has nothing left to stop.
        let _ = self.task.await;
    }
}

fn spawn_on<F>(runtime: Option<&tokio::runtime::Handle>, task: F) -> JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    match runtime {
        Some(handle) => handle.spawn(task),
        None => tokio::spawn(task),
    }
}

/// Fleet running on the simulator.
pub struct SimSystem {
    sim: Simulator,
    upstream: SimCluster,
    options: SystemOptions,
    registry: Arc<Mutex<Registry>>,
    controller: tokio::sync::Mutex<Option<Running>>,
    controller_registered: AtomicBool,
    agents: tokio::sync::Mutex<BTreeMap<String, Running>>,
}

impl SimSystem {
    /// Starts the upstream cluster with Fleet's CRDs and the controller; clusters are added
    /// with [`SimSystem::add_cluster`].
    pub async fn start(options: SystemOptions) -> Result<Self, SystemError> {
        let sim = Simulator::new(SimConfig {
            seed: options.seed,
            profile: options.profile.clone(),
            ..SimConfig::default()
        });
        let upstream = sim.add_cluster(UPSTREAM)?;
        upstream.install_crds(&fleet_api::crds::all())?;
        let system = SimSystem {
            sim,
            upstream,
            options,
            registry: Arc::new(Mutex::new(Registry::default())),
            controller: tokio::sync::Mutex::new(None),
            controller_registered: AtomicBool::new(false),
            agents: tokio::sync::Mutex::new(BTreeMap::new()),
        };
        for ns in [
            CLUSTERS_NAMESPACE,
            "fleet-local",
            system.options.controller.system_namespace.as_str(),
        ] {
            system.ensure_namespace(ns).await?;
        }
        system.start_controller().await;
        Ok(system)
    }

    pub fn simulator(&self) -> &Simulator {
        &self.sim
    }

    pub fn upstream(&self) -> &SimCluster {
        &self.upstream
    }

    /// Client of the upstream cluster, with admin rights.
    pub fn upstream_client(&self) -> kube::Client {
        self.upstream.client()
    }

    /// Client of a downstream cluster, with admin rights.
    pub fn cluster_client(&self, name: &str) -> Result<kube::Client, SystemError> {
        self.sim
            .cluster(name)
            .filter(|c| c.name() != UPSTREAM)
            .map(|c| c.client())
            .ok_or_else(|| SystemError::UnknownCluster(name.to_string()))
    }

    /// The Prometheus registry holding the controller's and every agent's metrics.
    pub fn registry(&self) -> Arc<Mutex<Registry>> {
        self.registry.clone()
    }

    async fn ensure_namespace(&self, name: &str) -> Result<(), SystemError> {
        let api: Api<Namespace> = Api::all(self.upstream.client());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(kube_err(format!("creating namespace {name} upstream"))(e)),
        }
    }

    /// Starts the controller (again, after [`SimSystem::stop_controller`]).
    pub async fn start_controller(&self) {
        let mut slot = self.controller.lock().await;
        if slot.is_some() {
            return;
        }
        let controller = {
            let mut registry = match self.registry.lock() {
                Ok(r) => r,
                Err(poisoned) => poisoned.into_inner(),
            };
            // A restarted controller registers into a scratch registry: metric names must stay
            // unique in the shared one.
            let mut scratch = Registry::default();
            let first = !self.controller_registered.swap(true, Ordering::SeqCst);
            let target = if first { &mut *registry } else { &mut scratch };
            Controller::new(
                self.upstream.client(),
                self.options.controller.clone(),
                target,
            )
        };
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = spawn_on(self.options.controller_runtime.as_ref(), async move {
            if let Err(err) = controller.run(token).await {
                tracing::error!(error = %err, "controller stopped");
            }
        });
        *slot = Some(Running { shutdown, task });
    }

    /// Stops the controller; objects stay as they are, agents keep running.
    pub async fn stop_controller(&self) {
        if let Some(running) = self.controller.lock().await.take() {
            running.stop().await;
        }
    }

    /// Stops then starts the controller, as a pod restart would.
    pub async fn restart_controller(&self) {
        self.stop_controller().await;
        self.start_controller().await;
    }

    /// Adds a simulated downstream cluster, creates its `Cluster` object upstream, waits for
    /// the controller to assign its cluster namespace, and starts its agent.
    pub async fn add_cluster(&self, spec: &ClusterSpec) -> Result<(), SystemError> {
        self.add_clusters(std::slice::from_ref(spec)).await
    }

    /// Adds many clusters at once: all Cluster objects first, then all agents, so the
    /// controller assigns namespaces in parallel.
    pub async fn add_clusters(&self, specs: &[ClusterSpec]) -> Result<(), SystemError> {
        let api: Api<Cluster> = Api::namespaced(self.upstream.client(), CLUSTERS_NAMESPACE);
        for spec in specs {
            self.sim.add_cluster(&spec.name)?;
            let cluster = Cluster {
                metadata: ObjectMeta {
                    name: Some(spec.name.clone()),
                    namespace: Some(CLUSTERS_NAMESPACE.to_string()),
                    labels: Some(spec.labels.clone()).filter(|l| !l.is_empty()),
                    ..ObjectMeta::default()
                },
                ..Cluster::default()
            };
            match api.create(&PostParams::default(), &cluster).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => {
                    return Err(kube_err(format!(
                        "creating Cluster {CLUSTERS_NAMESPACE}/{}",
                        spec.name
                    ))(e));
                }
            }
        }
        for spec in specs {
            self.start_agent(&spec.name).await?;
        }
        Ok(())
    }

    /// The cluster namespace the controller assigned to `name` (`status.namespace`), waiting
    /// for it up to the configured timeout.
    pub async fn cluster_namespace(&self, name: &str) -> Result<String, SystemError> {
        let api: Api<Cluster> = Api::namespaced(self.upstream.client(), CLUSTERS_NAMESPACE);
        let deadline = tokio::time::Instant::now() + self.options.cluster_namespace_timeout;
        loop {
            let cluster = api.get_opt(name).await.map_err(kube_err(format!(
                "reading Cluster {CLUSTERS_NAMESPACE}/{name}"
            )))?;
            if let Some(ns) = cluster
                .and_then(|c| c.status)
                .map(|s| s.namespace)
                .filter(|ns| !ns.is_empty())
            {
                return Ok(ns);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SystemError::NoClusterNamespace {
                    namespace: CLUSTERS_NAMESPACE.to_string(),
                    name: name.to_string(),
                    seconds: self.options.cluster_namespace_timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the agent of `name` (again, after [`SimSystem::stop_agent`]).
    pub async fn start_agent(&self, name: &str) -> Result<(), SystemError> {
        let downstream = self.cluster_client(name)?;
        if self.agents.lock().await.contains_key(name) {
            return Ok(());
        }
        let deployments_namespace = self.cluster_namespace(name).await?;
        let mut config = AgentConfig::new(CLUSTERS_NAMESPACE, name, &deployments_namespace);
        config.drift_delay = self.options.agent_drift_delay;
        config.checkin_interval = self.options.agent_checkin_interval;
        config.bundledeployment_workers = self.options.agent_workers;
        config.drift_workers = self.options.agent_workers;
        let agent = {
            let mut registry = match self.registry.lock() {
                Ok(r) => r,
                Err(poisoned) => poisoned.into_inner(),
            };
            let sub = registry.sub_registry_with_label((
                std::borrow::Cow::Borrowed("cluster"),
                std::borrow::Cow::Owned(name.to_string()),
            ));
            Agent::new(self.upstream.client(), downstream, config, sub)
        };
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let cluster = name.to_string();
        let task = spawn_on(self.options.agent_runtime.as_ref(), async move {
            if let Err(err) = agent.run(token).await {
                tracing::error!(cluster = %cluster, error = %err, "agent stopped");
            }
        });
        self.agents
            .lock()
            .await
            .insert(name.to_string(), Running { shutdown, task });
        Ok(())
    }

    /// Stops the agent of `name`, as if the cluster lost its connection to the upstream
    /// cluster; what it deployed stays.
    pub async fn stop_agent(&self, name: &str) {
        let running = self.agents.lock().await.remove(name);
        if let Some(running) = running {
            running.stop().await;
        }
    }

    /// Names of the clusters whose agent runs.
    pub async fn running_agents(&self) -> Vec<String> {
        self.agents.lock().await.keys().cloned().collect()
    }

    /// Stops every agent and the controller.
    pub async fn shutdown(&self) {
        let agents = std::mem::take(&mut *self.agents.lock().await);
        for (_, running) in agents {
            running.stop().await;
        }
        self.stop_controller().await;
    }
}

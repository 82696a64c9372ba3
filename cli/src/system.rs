//! The whole of Fleet on the in-process simulator: one upstream cluster holding Fleet's
//! resources, the real controller against it, and one real agent per simulated downstream
//! cluster. `fleet sim up`, the end-to-end tests and the acceptance features all stand on this.
//!
//! Clusters join the way they join a real Fleet: a ClusterRegistrationToken upstream, a
//! pre-created Cluster with `spec.clientID` (so the names stay `sim-N`), and the agent installed
//! downstream with the token's values — namespace, ServiceAccount, RBAC, bootstrap secret,
//! ConfigMap and the Deployment `fleet-agent`, from the controller's own manifest builder. Each
//! simulated cluster's [`kubelet::Kubelet`] runs the agent process for every Running agent pod;
//! the agent registers, and from then on the controller manages it through the
//! `fleet-agent-<cluster>` bundle like any other.
//!
//! Controller and agents are started and stopped individually, so tests can restart them
//! mid-rollout or disconnect an agent for a while.

pub mod kubelet;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleet_api::task::{Accounted, CpuAccount};
use fleet_api::{Cluster, ClusterRegistrationToken};
use fleet_controller::agentmanagement::SharedDownstreamConnector;
use fleet_controller::agentmanagement::import::{
    TOKEN_VALUES_KEY, apply_objects, import_objects, parse_token_values,
};
use fleet_controller::agentmanagement::manifest::{
    AGENT_NAME, ManifestOptions, agent_namespace_for, legacy_agent_statefulset, to_value,
};
use fleet_controller::{Controller, ControllerConfig};
use fleet_simulator::behaviour::Profile;
use fleet_simulator::{SimCluster, SimConfig, Simulator};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ObjectMeta, PostParams};

use kubelet::{Kubelet, SimDownstreamConnector};
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Namespace of the Cluster objects of the simulated clusters (Fleet's default for
/// downstream clusters).
pub const CLUSTERS_NAMESPACE: &str = "fleet-default";
/// Name of the simulated upstream (management) cluster.
pub const UPSTREAM: &str = "upstream";
/// The ClusterRegistrationToken (in [`CLUSTERS_NAMESPACE`]) simulated clusters register with.
pub const REGISTRATION_TOKEN: &str = "fleet-sim-registration";

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
    #[error("joining cluster {name}: its registration task failed: {message}")]
    Join { name: String, message: String },
    #[error("registering cluster {name}: {message}")]
    Registration { name: String, message: String },
    #[error(
        "cluster {namespace}/{name}: the controller did not assign its cluster namespace within {seconds}s (is the controller running?)"
    )]
    NoClusterNamespace {
        namespace: String,
        name: String,
        seconds: u64,
    },
    #[error(
        "ClusterRegistrationToken {namespace}/{name}: no values within {seconds}s (is the controller running?)"
    )]
    NoTokenValues {
        namespace: String,
        name: String,
        seconds: u64,
    },
    #[error("ClusterRegistrationToken {namespace}/{name}: {message}")]
    InvalidTokenValues {
        namespace: String,
        name: String,
        message: String,
    },
    #[error(
        "cluster {namespace}/{name}: its agent did not check in within {seconds}s (agent pods: {pods})"
    )]
    NoCheckIn {
        namespace: String,
        name: String,
        seconds: u64,
        pods: String,
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
    /// Install the agent as Fleet did before v0.12: a StatefulSet `fleet-agent` (to simulate
    /// clusters that still run the old agent).
    pub legacy_statefulset_agent: bool,
}

impl ClusterSpec {
    pub fn new(name: &str) -> Self {
        ClusterSpec {
            name: name.to_string(),
            labels: BTreeMap::new(),
            legacy_statefulset_agent: false,
        }
    }

    /// The agent runs as the pre-0.12 StatefulSet.
    pub fn legacy_statefulset_agent(mut self) -> Self {
        self.legacy_statefulset_agent = true;
        self
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
    /// How long to wait for the controller to assign a new cluster its namespace (and for a
    /// new agent to check in).
    pub cluster_namespace_timeout: Duration,
    /// Runtime the controller runs on (default: the caller's), so its CPU time can be told
    /// apart from the agents' (`fleet sim bench`).
    pub controller_runtime: Option<tokio::runtime::Handle>,
    /// Runtime the agents run on (default: the caller's).
    pub agent_runtime: Option<tokio::runtime::Handle>,
    /// Accounts the controller's and the agents' tasks are charged to, so that their CPU
    /// time can be told apart on a runtime they share.
    pub accounts: Option<ComponentAccounts>,
    /// Runtime the agents renew their Leases on (default: beside their work). Thousands of
    /// agents on a few threads renew late under load, which real agents, each with a process
    /// of its own, do not.
    pub agent_lease_runtime: Option<tokio::runtime::Handle>,
    /// Leader election of the agents (`CATTLE_ELECTION_*` in their Deployment); shorter than
    /// Fleet's so a redeployed agent takes over quickly.
    pub agent_lease_duration: Duration,
    pub agent_renew_deadline: Duration,
    pub agent_retry_period: Duration,
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
            accounts: None,
            agent_lease_runtime: None,
            agent_lease_duration: Duration::from_secs(10),
            agent_renew_deadline: Duration::from_secs(8),
            agent_retry_period: Duration::from_secs(1),
        }
    }
}

/// What the controller's and the agents' tasks were charged (see `fleet_api::task`), and the
/// tasks of whoever drives them on the same runtime (a benchmark's recorder), which are
/// neither's.
#[derive(Debug, Clone, Default)]
pub struct ComponentAccounts {
    pub controller: Arc<CpuAccount>,
    pub agents: Arc<CpuAccount>,
    pub driver: Arc<CpuAccount>,
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

/// What `build` makes, built inside `runtime` (default: the caller's). A kube client's request
/// buffer is a task on the runtime the client is built on and every request passes through it:
/// a client built elsewhere than where it is used wakes that other runtime twice a request.
pub(crate) fn built_on<T>(
    runtime: Option<&tokio::runtime::Handle>,
    build: impl FnOnce() -> T,
) -> T {
    let _inside = runtime.map(tokio::runtime::Handle::enter);
    build()
}

/// Spawns `task` on `runtime` (default: the caller's), charged to `account` when given.
pub(crate) fn spawn_on<F>(
    runtime: Option<&tokio::runtime::Handle>,
    account: Option<&Arc<CpuAccount>>,
    task: F,
) -> JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let task: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> = match account {
        Some(account) => Box::pin(Accounted::new(task, account.clone())),
        None => Box::pin(task),
    };
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
    /// The agent-pod runner of each downstream cluster.
    kubelets: tokio::sync::Mutex<BTreeMap<String, Kubelet>>,
    /// Values of [`REGISTRATION_TOKEN`], once the controller wrote them.
    token_values: tokio::sync::OnceCell<BTreeMap<String, String>>,
}

impl SimSystem {
    /// Starts the upstream cluster with Fleet's CRDs and the controller; clusters are added
    /// with [`SimSystem::add_cluster`].
    pub async fn start(mut options: SystemOptions) -> Result<Self, SystemError> {
        let sim = Simulator::new(SimConfig {
            seed: options.seed,
            profile: options.profile.clone(),
            ..SimConfig::default()
        });
        let upstream = sim.add_cluster(UPSTREAM)?;
        upstream.install_crds(&fleet_api::crds::all())?;
        // The agents' settings come from the controller, which deploys them.
        let c = &mut options.controller;
        c.agent_checkin_interval = options.agent_checkin_interval;
        c.agent_bundledeployment_workers = options.agent_workers;
        c.agent_drift_workers = options.agent_workers;
        c.agent_drift_delay = Some(options.agent_drift_delay);
        c.agent_lease_duration = options.agent_lease_duration;
        c.agent_renew_deadline = options.agent_renew_deadline;
        c.agent_retry_period = options.agent_retry_period;
        c.downstream_connector =
            SharedDownstreamConnector::new(SimDownstreamConnector { sim: sim.clone() });
        // Agents reach the upstream cluster in-process (registration tokens carry this URL).
        if c.api_server_url.is_empty() {
            c.api_server_url = upstream.in_process_url();
        }
        let system = SimSystem {
            sim,
            upstream,
            options,
            registry: Arc::new(Mutex::new(Registry::default())),
            controller: tokio::sync::Mutex::new(None),
            controller_registered: AtomicBool::new(false),
            kubelets: tokio::sync::Mutex::new(BTreeMap::new()),
            token_values: tokio::sync::OnceCell::new(),
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

    /// The accounts the controller's and the agents' tasks are charged to, if any.
    pub fn accounts(&self) -> Option<&ComponentAccounts> {
        self.options.accounts.as_ref()
    }

    /// The runtime the controller runs on, when it was given one.
    pub fn controller_runtime(&self) -> Option<&tokio::runtime::Handle> {
        self.options.controller_runtime.as_ref()
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

    /// The controller's settings (with the simulator's connector and agent settings).
    pub fn controller_config(&self) -> &ControllerConfig {
        &self.options.controller
    }

    /// The Prometheus registry holding the controller's metrics (each agent pod has its own).
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
            let client = built_on(self.options.controller_runtime.as_ref(), || {
                self.upstream.client()
            });
            Controller::new(client, self.options.controller.clone(), target)
        };
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let account = self.options.accounts.as_ref().map(|a| &a.controller);
        let task = spawn_on(
            self.options.controller_runtime.as_ref(),
            account,
            async move {
                if let Err(err) = controller.run(token).await {
                    tracing::error!(error = %err, "controller stopped");
                }
            },
        );
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

    /// Adds a simulated downstream cluster and registers it (see [`SimSystem::add_clusters`]).
    pub async fn add_cluster(&self, spec: &ClusterSpec) -> Result<(), SystemError> {
        self.add_clusters(std::slice::from_ref(spec)).await
    }

    /// The values of the registration token the simulated clusters register with, creating
    /// the token on first use and waiting for the controller to fill them in. The API server
    /// URL defaults to the upstream cluster's in-process URL.
    pub async fn registration_values(&self) -> Result<BTreeMap<String, String>, SystemError> {
        self.token_values
            .get_or_try_init(|| self.fetch_registration_values())
            .await
            .cloned()
    }

    async fn fetch_registration_values(&self) -> Result<BTreeMap<String, String>, SystemError> {
        let tokens: Api<ClusterRegistrationToken> =
            Api::namespaced(self.upstream.client(), CLUSTERS_NAMESPACE);
        let token = ClusterRegistrationToken {
            metadata: ObjectMeta {
                name: Some(REGISTRATION_TOKEN.to_string()),
                namespace: Some(CLUSTERS_NAMESPACE.to_string()),
                ..ObjectMeta::default()
            },
            ..ClusterRegistrationToken::default()
        };
        match tokens.create(&PostParams::default(), &token).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => {
                return Err(kube_err(format!(
                    "creating ClusterRegistrationToken {CLUSTERS_NAMESPACE}/{REGISTRATION_TOKEN}"
                ))(e));
            }
        }
        let secrets: Api<Secret> = Api::namespaced(self.upstream.client(), CLUSTERS_NAMESPACE);
        let timeout = self.options.cluster_namespace_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let secret_name = tokens
                .get_opt(REGISTRATION_TOKEN)
                .await
                .map_err(kube_err("reading the registration token"))?
                .and_then(|t| t.status)
                .map(|s| s.secret_name)
                .filter(|n| !n.is_empty());
            if let Some(name) = secret_name {
                let raw = secrets
                    .get_opt(&name)
                    .await
                    .map_err(kube_err(format!(
                        "reading secret {CLUSTERS_NAMESPACE}/{name}"
                    )))?
                    .and_then(|s| s.data)
                    .and_then(|d| d.get(TOKEN_VALUES_KEY).cloned())
                    .map(|b| String::from_utf8_lossy(&b.0).into_owned());
                if let Some(raw) = raw {
                    let mut values = parse_token_values(&raw).map_err(|message| {
                        SystemError::InvalidTokenValues {
                            namespace: CLUSTERS_NAMESPACE.to_string(),
                            name: REGISTRATION_TOKEN.to_string(),
                            message,
                        }
                    })?;
                    let url = values.entry("apiServerURL".to_string()).or_default();
                    if url.is_empty() {
                        *url = self.upstream.in_process_url();
                    }
                    return Ok(values);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SystemError::NoTokenValues {
                    namespace: CLUSTERS_NAMESPACE.to_string(),
                    name: REGISTRATION_TOKEN.to_string(),
                    seconds: timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Adds many clusters at once, registering them the real way: a Cluster with
    /// `spec.clientID` upstream, the agent installed downstream with the registration token's
    /// values; then waits until every new agent has registered and checked in.
    ///
    /// Clusters join concurrently: up to [`REGISTRATION_INSTALLS`] installs run at once (each
    /// its own task, so they spread over the runtime's threads), and no more than
    /// [`REGISTRATION_WINDOW`] clusters wait for their agent's first check-in at a time, so
    /// the controller meets a steady stream of registrations rather than all of them at once.
    /// An error names the cluster it concerns.
    pub async fn add_clusters(&self, specs: &[ClusterSpec]) -> Result<(), SystemError> {
        if specs.is_empty() {
            return Ok(());
        }
        let values = Arc::new(self.registration_values().await?);
        let context = Arc::new(JoinContext {
            sim: self.sim.clone(),
            upstream: self.upstream.client(),
            controller: self.options.controller.clone(),
            values,
        });
        // Check-ins are followed from one watch of the Cluster objects (started before the
        // first install, so none is missed), not by polling each Cluster.
        let api: Api<Cluster> = Api::namespaced(self.upstream.client(), CLUSTERS_NAMESPACE);
        let mut check_ins = std::pin::pin!(kube::runtime::watcher(
            api,
            kube::runtime::watcher::Config::default()
        ));
        let timeout = self.options.cluster_namespace_timeout;
        let mut checked_in: HashSet<String> = HashSet::new();
        // Installed clusters whose agent has not checked in yet, and since when they wait.
        let mut waiting: BTreeMap<String, tokio::time::Instant> = BTreeMap::new();
        let mut queue = specs.iter();
        let mut installs = futures::stream::FuturesUnordered::new();
        let mut last_check_in = tokio::time::Instant::now();
        loop {
            while installs.len() < REGISTRATION_INSTALLS
                && installs.len() + waiting.len() < REGISTRATION_WINDOW
            {
                let Some(spec) = queue.next() else { break };
                let context = context.clone();
                let spec = spec.clone();
                let name = spec.name.clone();
                let task = tokio::spawn(async move { join_cluster(&context, &spec).await });
                installs.push(async move {
                    match task.await {
                        Ok(joined) => joined,
                        Err(e) => Err(SystemError::Join {
                            name,
                            message: e.to_string(),
                        }),
                    }
                });
            }
            if installs.is_empty() && waiting.is_empty() {
                return Ok(());
            }
            // Each cluster gets the whole timeout from its install on, and while other agents
            // still check in (a loaded machine registers slowly, not never) the wait goes on;
            // an install that is still running has not started its clock.
            let deadline = waiting.values().min().map_or_else(
                || tokio::time::Instant::now() + timeout,
                |since| (*since).max(last_check_in) + timeout,
            );
            tokio::select! {
                Some(joined) = installs.next(), if !installs.is_empty() => {
                    let sim_cluster = joined?;
                    self.start_kubelet(&sim_cluster).await;
                    if !checked_in.contains(sim_cluster.name()) {
                        waiting.insert(sim_cluster.name().to_string(), tokio::time::Instant::now());
                    }
                }
                event = check_ins.next() => {
                    let cluster = match event {
                        Some(Ok(
                            kube::runtime::watcher::Event::Apply(c)
                            | kube::runtime::watcher::Event::InitApply(c),
                        )) => c,
                        Some(Ok(_)) => continue,
                        // The watcher retries by itself; a failed attempt is only logged.
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "watching Clusters for check-ins");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                        None => {
                            return Err(SystemError::Registration {
                                name: waiting.keys().next().cloned().unwrap_or_default(),
                                message: "the watch of Clusters ended".to_string(),
                            });
                        }
                    };
                    if is_checked_in(&cluster) {
                        let name = cluster.metadata.name.clone().unwrap_or_default();
                        if waiting.remove(&name).is_some() {
                            last_check_in = tokio::time::Instant::now();
                        }
                        checked_in.insert(name);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let Some(name) = waiting
                        .iter()
                        .min_by_key(|(_, since)| **since)
                        .map(|(name, _)| name.clone())
                    else {
                        // Only installs are running (each has its own request timeouts).
                        continue;
                    };
                    return Err(SystemError::NoCheckIn {
                        namespace: CLUSTERS_NAMESPACE.to_string(),
                        name: name.clone(),
                        seconds: timeout.as_secs(),
                        pods: format!(
                            "{}{}",
                            self.agent_pods_summary(&name).await,
                            match waiting.len() - 1 {
                                0 => String::new(),
                                n => format!("; {n} more clusters waiting"),
                            }
                        ),
                    });
                }
            }
        }
    }

    async fn start_kubelet(&self, sim_cluster: &SimCluster) {
        let mut kubelets = self.kubelets.lock().await;
        if kubelets.contains_key(sim_cluster.name()) {
            return;
        }
        let pods_run = self.options.profile.is_some();
        kubelets.insert(
            sim_cluster.name().to_string(),
            Kubelet::start(
                &self.sim,
                sim_cluster,
                pods_run,
                self.options.agent_runtime.clone(),
                self.options.accounts.as_ref().map(|a| a.agents.clone()),
                self.options.agent_lease_runtime.clone(),
            ),
        );
    }

    /// Waits until the agent of `name` has registered and checked in (`status.agent.lastSeen`
    /// set, cluster namespace assigned).
    pub async fn wait_checked_in(&self, name: &str) -> Result<(), SystemError> {
        let api: Api<Cluster> = Api::namespaced(self.upstream.client(), CLUSTERS_NAMESPACE);
        let timeout = self.options.cluster_namespace_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let cluster = api.get_opt(name).await.map_err(kube_err(format!(
                "reading Cluster {CLUSTERS_NAMESPACE}/{name}"
            )))?;
            if cluster.as_ref().is_some_and(is_checked_in) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SystemError::NoCheckIn {
                    namespace: CLUSTERS_NAMESPACE.to_string(),
                    name: name.to_string(),
                    seconds: timeout.as_secs(),
                    pods: self.agent_pods_summary(name).await,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `name phase (reason: message)` of each agent pod of a cluster, for error messages.
    async fn agent_pods_summary(&self, name: &str) -> String {
        let Ok(client) = self.cluster_client(name) else {
            return "unknown cluster".to_string();
        };
        let pods = Api::<k8s_openapi::api::core::v1::Pod>::all(client)
            .list(&kube::api::ListParams::default().labels(kubelet::AGENT_POD_SELECTOR))
            .await;
        match pods {
            Ok(list) if list.items.is_empty() => "none".to_string(),
            Ok(list) => list
                .items
                .iter()
                .map(|p| {
                    let status = p.status.clone().unwrap_or_default();
                    let why = status
                        .conditions
                        .unwrap_or_default()
                        .into_iter()
                        .find(|c| c.status == "False")
                        .map(|c| {
                            format!(
                                " ({}: {})",
                                c.reason.unwrap_or_default(),
                                c.message.unwrap_or_default()
                            )
                        })
                        .unwrap_or_default();
                    format!(
                        "{} {}{why}",
                        p.metadata.name.clone().unwrap_or_default(),
                        status.phase.unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            Err(e) => e.to_string(),
        }
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

    /// Reconnects the agent of `name` after [`SimSystem::stop_agent`]: its kubelet runs the
    /// agent pods again.
    pub async fn start_agent(&self, name: &str) -> Result<(), SystemError> {
        let sim_cluster = self
            .sim
            .cluster(name)
            .filter(|c| c.name() != UPSTREAM)
            .ok_or_else(|| SystemError::UnknownCluster(name.to_string()))?;
        let kubelets = self.kubelets.lock().await;
        match kubelets.get(name) {
            Some(kubelet) => kubelet.resume(),
            None => {
                drop(kubelets);
                self.start_kubelet(&sim_cluster).await;
            }
        }
        Ok(())
    }

    /// Stops the agent of `name`, as if the cluster lost its connection to the upstream
    /// cluster; what it deployed stays, and its pods keep "running" until
    /// [`SimSystem::start_agent`].
    pub async fn stop_agent(&self, name: &str) {
        if let Some(kubelet) = self.kubelets.lock().await.get(name) {
            kubelet.suspend().await;
        }
    }

    /// Names of the clusters whose agent runs.
    pub async fn running_agents(&self) -> Vec<String> {
        self.kubelets
            .lock()
            .await
            .iter()
            .filter(|(_, k)| k.is_running())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Agent processes running for `name` (one normally; two while a new agent pod waits for
    /// the old one's Lease).
    pub async fn agent_processes(&self, name: &str) -> usize {
        self.kubelets
            .lock()
            .await
            .get(name)
            .map(Kubelet::processes)
            .unwrap_or(0)
    }

    /// Stops every agent and the controller.
    pub async fn shutdown(&self) {
        let kubelets = std::mem::take(&mut *self.kubelets.lock().await);
        // All at once: one after the other, 10,000 agents each finishing its running
        // reconciles took longer than the bench waits for a stop.
        futures::future::join_all(kubelets.into_values().map(Kubelet::stop)).await;
        self.stop_controller().await;
    }
}

/// Cluster installs [`SimSystem::add_clusters`] runs at once.
pub const REGISTRATION_INSTALLS: usize = 16;
/// Clusters [`SimSystem::add_clusters`] lets wait for their agent's first check-in at once. An
/// agent looks for its credentials every 2 s (Fleet's interval), so this window, not the
/// controller, sets how many clusters register per second.
pub const REGISTRATION_WINDOW: usize = 256;

/// What joining one cluster needs, shared by the concurrent joins of
/// [`SimSystem::add_clusters`].
struct JoinContext {
    sim: Simulator,
    upstream: kube::Client,
    controller: ControllerConfig,
    values: Arc<BTreeMap<String, String>>,
}

/// Adds the simulated cluster, creates its Cluster upstream and installs its agent.
async fn join_cluster(
    context: &JoinContext,
    spec: &ClusterSpec,
) -> Result<SimCluster, SystemError> {
    let sim_cluster = context.sim.add_cluster(&spec.name)?;
    let api: Api<Cluster> = Api::namespaced(context.upstream.clone(), CLUSTERS_NAMESPACE);
    let cluster = Cluster {
        metadata: ObjectMeta {
            name: Some(spec.name.clone()),
            namespace: Some(CLUSTERS_NAMESPACE.to_string()),
            labels: Some(spec.labels.clone()).filter(|l| !l.is_empty()),
            ..ObjectMeta::default()
        },
        spec: fleet_api::ClusterSpec {
            client_id: client_id_for(&spec.name),
            ..fleet_api::ClusterSpec::default()
        },
        status: None,
    };
    let cluster = match api.create(&PostParams::default(), &cluster).await {
        Ok(created) => created,
        Err(kube::Error::Api(e)) if e.code == 409 => cluster,
        Err(e) => {
            return Err(kube_err(format!(
                "creating Cluster {CLUSTERS_NAMESPACE}/{}",
                spec.name
            ))(e));
        }
    };
    install_agent(
        &context.controller,
        &sim_cluster,
        &cluster,
        &context.values,
        spec.legacy_statefulset_agent,
    )
    .await?;
    Ok(sim_cluster)
}

/// Installs the agent of `cluster` into `sim_cluster` as an operator would with the
/// token's values (Fleet's `agent.AgentWithConfig`, the same objects the import applies).
async fn install_agent(
    config: &ControllerConfig,
    sim_cluster: &SimCluster,
    cluster: &Cluster,
    values: &BTreeMap<String, String>,
    legacy_statefulset: bool,
) -> Result<(), SystemError> {
    let mut objs = import_objects(cluster, config, values, "");
    if legacy_statefulset {
        let namespace = agent_namespace_for(cluster, &config.agent_namespace);
        let opts = ManifestOptions::for_cluster(config, &cluster.spec);
        let (statefulset, service) =
            legacy_agent_statefulset(&namespace, &cluster.spec.agent_namespace, &opts);
        objs.retain(|o| o["kind"] != "Deployment");
        objs.push(to_value(&service));
        objs.push(to_value(&statefulset));
    }
    apply_objects(&sim_cluster.client(), &objs)
        .await
        .map_err(kube_err(format!(
            "installing the agent in cluster {}",
            sim_cluster.name()
        )))
}

/// The agent of `cluster` has registered and checked in: `status.agent.lastSeen` set and the
/// cluster namespace assigned.
fn is_checked_in(cluster: &Cluster) -> bool {
    cluster
        .status
        .as_ref()
        .is_some_and(|s| s.agent.last_seen.is_some() && !s.namespace.is_empty())
}

/// The clientID a simulated cluster registers with (Fleet's default is the `kube-system`
/// namespace's uid; a readable one keeps the simulation easy to follow).
pub fn client_id_for(cluster_name: &str) -> String {
    format!("fleet-sim-{cluster_name}")
}

/// Name of the agent Deployment (and of the pre-0.12 StatefulSet).
pub const AGENT_WORKLOAD: &str = AGENT_NAME;

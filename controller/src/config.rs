//! Settings of the controller (flags and environment of `fleet controller`).

use std::time::Duration;

/// Image of the agent Deployments the controller creates (the `fleet` binary runs `fleet agent`).
pub const DEFAULT_AGENT_IMAGE: &str = "ghcr.io/fleet-rs/fleet:latest";

/// Image of the git job pods (the `fleet` binary runs `fleet apply`).
pub const DEFAULT_GITJOB_IMAGE: &str = "ghcr.io/fleet-rs/fleet:latest";

/// Where the bundles of a GitRepo are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GitJobMode {
    /// The controller fetches and builds in-process (fleet-rs default; also what the simulator
    /// needs, as no container runs there).
    #[default]
    InProcess,
    /// Fleet's way: one Job per sync runs `fleet apply` in a pod.
    Job,
}

/// Settings of the controller. `Default` gives Fleet's defaults.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Namespace the controller runs in (Fleet: `cattle-fleet-system`); holds its Lease.
    pub system_namespace: String,
    /// Deploy the agent of every Cluster as a Bundle `fleet-agent-<cluster>` (Fleet's
    /// `manageAgent`).
    pub manage_agent: bool,
    /// Image of the agent (Fleet's `agentImage`; `privateRepoURL` of a Cluster is prepended).
    pub agent_image: String,
    pub agent_image_pull_policy: String,
    /// Namespace agents run in downstream unless a Cluster sets `spec.agentNamespace`.
    pub agent_namespace: String,
    /// Agent settings passed as env to every agent Deployment (Fleet's `agentCheckinInterval`,
    /// `agent.reconciler.workers.*`; leader election timings).
    pub agent_checkin_interval: Duration,
    pub agent_bundledeployment_workers: usize,
    pub agent_drift_workers: usize,
    pub agent_lease_duration: Duration,
    pub agent_renew_deadline: Duration,
    pub agent_retry_period: Duration,
    /// fleet-rs: `FLEET_DRIFT_DELAY` of the agents (`None`: the agent's default).
    pub agent_drift_delay: Option<Duration>,
    /// How imported clusters (`spec.kubeConfigSecret`) are reached.
    pub downstream_connector: crate::agentmanagement::SharedDownstreamConnector,
    /// Namespace of the local cluster (Fleet's `bootstrap.namespace`; empty or `-`: none).
    pub bootstrap_namespace: String,
    /// `spec.agentNamespace` of the local cluster (Fleet's `bootstrap.agentNamespace`).
    pub bootstrap_agent_namespace: String,
    /// How the local cluster is reached; `None`: from the pod's service account, when running
    /// in a cluster (otherwise no local cluster).
    pub bootstrap_local_cluster: Option<crate::agentmanagement::bootstrap::LocalCluster>,
    /// URL of the upstream API server as agents reach it (Fleet's `apiServerURL`); written
    /// into the values of every ClusterRegistrationToken.
    pub api_server_url: String,
    /// PEM CA bundle of that API server (Fleet's `apiServerCA`); empty: agents use their
    /// system roots.
    pub api_server_ca: String,
    /// Namespace of the registration secrets agents fetch their credentials from (Fleet:
    /// `cattle-fleet-clusters-system`).
    pub system_registration_namespace: String,
    /// Concurrent reconciles of GitRepos (Fleet env `GITREPO_RECONCILER_WORKERS`).
    pub gitrepo_workers: usize,
    /// Concurrent reconciles of Bundles (Fleet env `BUNDLE_RECONCILER_WORKERS`).
    pub bundle_workers: usize,
    /// Concurrent reconciles of Clusters (Fleet env `CLUSTER_RECONCILER_WORKERS`).
    pub cluster_workers: usize,
    /// Concurrent reconciles of ClusterGroups.
    pub clustergroup_workers: usize,
    /// Minimum time between two status writes of one Cluster or Bundle: changes arriving in
    /// between are written together (zero: every change at once).
    pub status_write_interval: Duration,
    /// Status writes a second all Clusters share (0: no shared limit). Each Cluster's status
    /// aggregates its deployments and changes with each of them; beyond this rate a write
    /// waits its turn and carries every change since, so at 10,000 clusters the statuses lag
    /// by seconds instead of costing more writes than the deployments.
    pub cluster_status_writes_per_second: u32,
    /// Polling interval of a GitRepo without `spec.pollingInterval`.
    pub default_polling_interval: Duration,
    /// Periodic resync of every GitRepo (Fleet env `GITREPO_SYNC_PERIOD`).
    pub gitrepo_sync_period: Duration,
    /// Address of the Git webhook endpoint; `None` serves no webhook.
    pub webhook_addr: Option<std::net::SocketAddr>,
    /// Seed of the polling jitter; `None` seeds from the OS.
    pub jitter_seed: Option<u64>,
    /// How often unreferenced `Content` objects are garbage-collected.
    pub content_gc_interval: Duration,
    /// A Content younger than this is never collected (it is written before the
    /// BundleDeployments that refer to it).
    pub content_gc_grace: Duration,
    /// Run the reconcilers only while holding the Lease `lease_name` in `system_namespace`.
    pub leader_election: bool,
    /// Name of the leader-election Lease (Fleet: `fleet-controller-lock`).
    pub lease_name: String,
    /// Identity written into the Lease; unique per controller process.
    pub leader_identity: String,
    /// How long a Lease stays valid without renewal (Fleet: 15 s).
    pub lease_duration: Duration,
    /// How often the leader renews and candidates retry (Fleet's retry period: 2 s).
    pub lease_retry_period: Duration,
    /// Where GitRepo repositories are cloned and checked out, one folder per GitRepo, kept
    /// between polls.
    pub git_cache_dir: std::path::PathBuf,
    /// Bundle builds (reading folders and charts, CPU work) running at once.
    pub gitrepo_build_workers: usize,
    /// Timeout of each HTTP request to a git server (Fleet's `gitClientTimeout`, 30 s).
    pub git_client_timeout: Duration,
    /// Run the HelmOps reconciler (Fleet's `EXPERIMENTAL_HELM_OPS`); when off, HelmOps and
    /// HelmApps only get a condition saying so.
    pub helmops_enabled: bool,
    /// How GitRepos are turned into Bundles: in this process (default) or, as Fleet does on
    /// real clusters, by a Job per sync running `fleet apply` (`--gitjob-mode job`).
    pub gitjob_mode: GitJobMode,
    /// Image of the git job pods (the `fleet` binary; Fleet's `gitjob.image`).
    pub gitjob_image: String,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            system_namespace: "cattle-fleet-system".to_string(),
            manage_agent: true,
            agent_image: DEFAULT_AGENT_IMAGE.to_string(),
            agent_image_pull_policy: "IfNotPresent".to_string(),
            agent_namespace: "cattle-fleet-system".to_string(),
            agent_checkin_interval: Duration::from_secs(15 * 60),
            agent_bundledeployment_workers: 50,
            agent_drift_workers: 50,
            agent_lease_duration: Duration::from_secs(30),
            agent_renew_deadline: Duration::from_secs(25),
            agent_retry_period: Duration::from_secs(10),
            agent_drift_delay: None,
            downstream_connector: Default::default(),
            bootstrap_namespace: "fleet-local".to_string(),
            bootstrap_agent_namespace: String::new(),
            bootstrap_local_cluster: None,
            api_server_url: String::new(),
            api_server_ca: String::new(),
            system_registration_namespace: "cattle-fleet-clusters-system".to_string(),
            gitrepo_workers: 50,
            bundle_workers: 50,
            cluster_workers: 50,
            clustergroup_workers: 50,
            status_write_interval: Duration::from_secs(1),
            cluster_status_writes_per_second: 100,
            default_polling_interval: Duration::from_secs(15),
            gitrepo_sync_period: Duration::from_secs(2 * 60 * 60),
            webhook_addr: None,
            jitter_seed: None,
            content_gc_interval: Duration::from_secs(60),
            content_gc_grace: Duration::from_secs(60),
            leader_election: true,
            lease_name: "fleet-controller-lock".to_string(),
            leader_identity: format!(
                "fleet-controller-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ),
            lease_duration: Duration::from_secs(15),
            lease_retry_period: Duration::from_secs(2),
            git_cache_dir: std::env::temp_dir().join("fleet-rs-git-cache"),
            gitrepo_build_workers: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            git_client_timeout: Duration::from_secs(30),
            helmops_enabled: false,
            gitjob_mode: GitJobMode::InProcess,
            gitjob_image: DEFAULT_GITJOB_IMAGE.to_string(),
        }
    }
}

//! Settings of the controller (flags and environment of `fleet controller`).

use std::time::Duration;

/// Settings of the controller. `Default` gives Fleet's defaults.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Namespace the controller runs in (Fleet: `cattle-fleet-system`); holds its Lease.
    pub system_namespace: String,
    /// Concurrent reconciles of GitRepos (Fleet env `GITREPO_RECONCILER_WORKERS`).
    pub gitrepo_workers: usize,
    /// Concurrent reconciles of Bundles (Fleet env `BUNDLE_RECONCILER_WORKERS`).
    pub bundle_workers: usize,
    /// Concurrent reconciles of Clusters (Fleet env `CLUSTER_RECONCILER_WORKERS`).
    pub cluster_workers: usize,
    /// Concurrent reconciles of ClusterGroups.
    pub clustergroup_workers: usize,
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
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            system_namespace: "cattle-fleet-system".to_string(),
            gitrepo_workers: 50,
            bundle_workers: 50,
            cluster_workers: 50,
            clustergroup_workers: 50,
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
        }
    }
}

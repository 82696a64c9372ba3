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
        }
    }
}

//! Settings of the agent (flags and environment of `fleet agent`).

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Name of this agent's Cluster object upstream.
    pub cluster_name: String,
    /// Namespace of this agent's Cluster object upstream (e.g. `fleet-default`).
    pub cluster_namespace: String,
    /// The cluster namespace upstream that holds this cluster's BundleDeployments
    /// (`cluster.status.namespace`, e.g. `cluster-fleet-default-sim-1-1a2b3c4d5e6f`).
    pub deployments_namespace: String,
    /// Namespace the agent runs in downstream (`cattle-fleet-system`).
    pub agent_namespace: String,
    /// Concurrent BundleDeployment reconciles (Fleet env `BUNDLEDEPLOYMENT_RECONCILER_WORKERS`).
    pub bundledeployment_workers: usize,
    /// Concurrent drift reconciles (Fleet env `DRIFT_RECONCILER_WORKERS`).
    pub drift_workers: usize,
    /// Delay that coalesces bursts of drift events into one reconcile (Fleet: 5 s).
    pub drift_delay: Duration,
    /// How often the agent reports `agent.lastSeen` on its Cluster (Fleet: 15 min).
    pub checkin_interval: Duration,
    /// Namespace for objects of bundles that name none (Fleet's agent `defaultNamespace`); also
    /// the prefix of the object set IDs.
    pub default_namespace: String,
    /// Suffix of the object set IDs (Fleet's `AGENT_SCOPE`, for several agents in one cluster).
    pub agent_scope: String,
    /// Delay before a BundleDeployment waiting for its dependencies is checked again, and the
    /// first retry delay after a failed deployment (doubling up to 5 minutes). Fleet: 5 s.
    pub retry_interval: Duration,
    /// How often the status of a deployment that is not ready yet is recomputed, besides the
    /// drift watches.
    pub not_ready_recheck: Duration,
    /// Full re-check of a ready deployment (a safety net for missed watch events).
    pub resync_interval: Duration,
}

impl AgentConfig {
    pub fn new(cluster_namespace: &str, cluster_name: &str, deployments_namespace: &str) -> Self {
        AgentConfig {
            cluster_name: cluster_name.to_string(),
            cluster_namespace: cluster_namespace.to_string(),
            deployments_namespace: deployments_namespace.to_string(),
            agent_namespace: "cattle-fleet-system".to_string(),
            bundledeployment_workers: 50,
            drift_workers: 50,
            drift_delay: Duration::from_secs(5),
            checkin_interval: Duration::from_secs(15 * 60),
            default_namespace: "default".to_string(),
            agent_scope: String::new(),
            retry_interval: Duration::from_secs(5),
            not_ready_recheck: Duration::from_secs(10),
            resync_interval: Duration::from_secs(10 * 60),
        }
    }
}

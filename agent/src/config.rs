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
    /// On shutdown, how long the reconciles in flight may take to finish before they are
    /// abandoned (they run again at the next start; the Pod's termination grace is 30 s).
    pub shutdown_grace: Duration,
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
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// The agent container's environment (`name → value`), as the agent Deployment sets it.
pub type AgentEnv = std::collections::BTreeMap<String, String>;

/// Names of the environment variables the agent reads (Fleet's agent Deployment sets them;
/// the `FLEET_*` ones are fleet-rs additions).
pub mod env {
    /// Namespace the agent runs in downstream; holds its secrets, ConfigMap and Lease.
    pub const NAMESPACE: &str = "NAMESPACE";
    /// Suffix of the object set IDs, for several agents in one cluster.
    pub const AGENT_SCOPE: &str = "AGENT_SCOPE";
    /// How often the agent checks in on its Cluster (Go duration).
    pub const CHECKIN_INTERVAL: &str = "CHECKIN_INTERVAL";
    /// Generation of the agent Deployment (set by the controller to force a redeploy).
    pub const GENERATION: &str = "GENERATION";
    pub const BUNDLEDEPLOYMENT_RECONCILER_WORKERS: &str = "BUNDLEDEPLOYMENT_RECONCILER_WORKERS";
    pub const DRIFT_RECONCILER_WORKERS: &str = "DRIFT_RECONCILER_WORKERS";
    /// Leader election durations (Go durations).
    pub const ELECTION_LEASE_DURATION: &str = "CATTLE_ELECTION_LEASE_DURATION";
    pub const ELECTION_RENEW_DEADLINE: &str = "CATTLE_ELECTION_RENEW_DEADLINE";
    pub const ELECTION_RETRY_PERIOD: &str = "CATTLE_ELECTION_RETRY_PERIOD";
    /// Identity in the leader Lease.
    pub const POD_NAME: &str = "POD_NAME";
    /// `strict` (only the bootstrap CA) or `system-store` (system roots too).
    pub const AGENT_TLS_MODE: &str = "AGENT_TLS_MODE";
    /// fleet-rs: delay that coalesces bursts of drift events (Go duration).
    pub const DRIFT_DELAY: &str = "FLEET_DRIFT_DELAY";
    /// fleet-rs: first delay before a failed registration is retried (Go duration; doubles up
    /// to Fleet's fixed one minute).
    pub const REGISTRATION_RETRY: &str = "FLEET_REGISTRATION_RETRY";
    /// fleet-rs: how often the agent looks for its registration secret upstream (Go duration;
    /// Fleet: 2 s).
    pub const REGISTRATION_SECRET_POLL: &str = "FLEET_REGISTRATION_SECRET_POLL";
}

/// A bad value in the agent's environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("agent environment variable {name}={value:?}: {message}")]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub message: String,
}

/// The non-empty value of `name`, if set.
pub fn env_value<'a>(env: &'a AgentEnv, name: &str) -> Option<&'a str> {
    env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// A Go duration from the environment; `default` when unset.
pub fn env_duration(
    env: &AgentEnv,
    name: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let Some(value) = env_value(env, name) else {
        return Ok(default);
    };
    let invalid = |message: String| ConfigError {
        name: name.to_string(),
        value: value.to_string(),
        message,
    };
    let parsed: fleet_api::Duration = value
        .parse()
        .map_err(|e: fleet_api::duration::ParseDurationError| invalid(e.to_string()))?;
    parsed
        .to_std()
        .ok_or_else(|| invalid("a negative duration".to_string()))
}

/// A positive count from the environment; `default` when unset.
pub fn env_count(env: &AgentEnv, name: &str, default: usize) -> Result<usize, ConfigError> {
    let Some(value) = env_value(env, name) else {
        return Ok(default);
    };
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ConfigError {
            name: name.to_string(),
            value: value.to_string(),
            message: "expected a positive whole number".to_string(),
        }),
    }
}

impl AgentConfig {
    /// The settings of an agent Pod from its environment. The cluster fields
    /// (`cluster_name`, `cluster_namespace`, `deployments_namespace`) stay empty: registration
    /// fills them from the agent's credentials.
    pub fn from_env(env: &AgentEnv) -> Result<AgentConfig, ConfigError> {
        let mut config = AgentConfig::new("", "", "");
        if let Some(ns) = env_value(env, env::NAMESPACE) {
            config.agent_namespace = ns.to_string();
        }
        if let Some(scope) = env_value(env, env::AGENT_SCOPE) {
            config.agent_scope = scope.to_string();
        }
        config.checkin_interval =
            env_duration(env, env::CHECKIN_INTERVAL, config.checkin_interval)?;
        if config.checkin_interval.is_zero() {
            // Fleet treats an unset or zero interval as its default.
            config.checkin_interval = Duration::from_secs(15 * 60);
        }
        config.bundledeployment_workers = env_count(
            env,
            env::BUNDLEDEPLOYMENT_RECONCILER_WORKERS,
            config.bundledeployment_workers,
        )?;
        config.drift_workers = env_count(env, env::DRIFT_RECONCILER_WORKERS, config.drift_workers)?;
        config.drift_delay = env_duration(env, env::DRIFT_DELAY, config.drift_delay)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> AgentEnv {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn from_env_reads_the_deployment_env() {
        let config = AgentConfig::from_env(&env_of(&[
            ("NAMESPACE", "fleet-agent-ns"),
            ("AGENT_SCOPE", "scope-a"),
            ("CHECKIN_INTERVAL", "1m30s"),
            ("BUNDLEDEPLOYMENT_RECONCILER_WORKERS", "7"),
            ("DRIFT_RECONCILER_WORKERS", "3"),
            ("FLEET_DRIFT_DELAY", "250ms"),
        ]))
        .unwrap();
        assert_eq!(config.agent_namespace, "fleet-agent-ns");
        assert_eq!(config.agent_scope, "scope-a");
        assert_eq!(config.checkin_interval, Duration::from_secs(90));
        assert_eq!(config.bundledeployment_workers, 7);
        assert_eq!(config.drift_workers, 3);
        assert_eq!(config.drift_delay, Duration::from_millis(250));
        assert!(config.cluster_name.is_empty());
    }

    #[test]
    fn from_env_defaults_are_fleets() {
        let config = AgentConfig::from_env(&AgentEnv::new()).unwrap();
        assert_eq!(config.agent_namespace, "cattle-fleet-system");
        assert_eq!(config.checkin_interval, Duration::from_secs(15 * 60));
        assert_eq!(config.bundledeployment_workers, 50);
        assert_eq!(config.drift_workers, 50);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = AgentConfig::from_env(&env_of(&[("CHECKIN_INTERVAL", "soon")])).unwrap_err();
        assert_eq!(err.name, "CHECKIN_INTERVAL");
        assert!(err.to_string().contains("soon"), "{err}");
        let err = AgentConfig::from_env(&env_of(&[("DRIFT_RECONCILER_WORKERS", "0")])).unwrap_err();
        assert_eq!(err.name, "DRIFT_RECONCILER_WORKERS");
    }
}

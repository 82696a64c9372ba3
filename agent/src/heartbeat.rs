//! The agent's check-in (Fleet's `clusterstatus` ticker): `status.agent.lastSeen` and
//! `status.agent.namespace` on its Cluster upstream, merge-patched on the status subresource at
//! start and every `checkin_interval`.

use std::time::Duration;

use fleet_api::Cluster;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::AgentConfig;

/// The patch that reports the agent as seen at `now`.
pub fn checkin_patch(agent_namespace: &str, now: &str) -> serde_json::Value {
    json!({"status": {"agent": {"lastSeen": now, "namespace": agent_namespace}}})
}

/// Reports once; errors name the Cluster.
pub async fn check_in(upstream: &kube::Client, config: &AgentConfig) -> Result<(), kube::Error> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Api::<Cluster>::namespaced(upstream.clone(), &config.cluster_namespace)
        .patch_status(
            &config.cluster_name,
            &PatchParams::default(),
            &Patch::Merge(checkin_patch(&config.agent_namespace, &now)),
        )
        .await
        .map(|_| ())
}

/// Checks in until cancelled; a failed check-in is retried sooner than the interval.
pub async fn run(
    upstream: kube::Client,
    config: std::sync::Arc<AgentConfig>,
    shutdown: CancellationToken,
) {
    loop {
        // A check-in waiting on a slow upstream must not hold the agent's shutdown.
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            result = check_in(&upstream, &config) => result,
        };
        let wait = match result {
            Ok(()) => config.checkin_interval,
            Err(error) => {
                tracing::warn!(cluster = %format!("{}/{}", config.cluster_namespace, config.cluster_name), %error, "agent check-in failed");
                config.checkin_interval.min(Duration::from_secs(5))
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkin_patch_touches_only_the_agent_block() {
        let p = checkin_patch("cattle-fleet-system", "2025-01-01T00:00:00Z");
        assert_eq!(
            p,
            json!({"status": {"agent": {"lastSeen": "2025-01-01T00:00:00Z", "namespace": "cattle-fleet-system"}}})
        );
    }
}

//! Agent management (Fleet's `internal/cmd/controller/agentmanagement`): the controller keeps
//! an agent running in every downstream cluster.
//!
//! - [`manifest`]: what the agent is — ServiceAccount, RBAC, the Deployment `fleet-agent` with
//!   leader election and worker counts as env, the Cluster's tolerations, affinity, resources,
//!   env vars, host network and private registry.
//! - [`manageagent`]: a Bundle `fleet-agent-<cluster>` per Cluster, so the agent redeploys itself
//!   when those settings (or `redeployAgentGeneration`) change; their hashes in the status.
//! - [`import`]: clusters with `spec.kubeConfigSecret` (manager-initiated): the controller
//!   installs the agent itself through a [`DownstreamConnector`], removing a pre-0.12
//!   StatefulSet agent first.
//! - [`bootstrap`]: the local cluster `fleet-local/local`, whose agent inherits the tolerations
//!   of the `fleet-controller` Deployment.
//! - [`validate`]: malformed settings are reported on the Cluster, never deployed.

use std::sync::Arc;

use fleet_api::{Cluster, ClusterStatus};
use kube::api::Api;
use kube::{Resource as _, ResourceExt as _};
use tokio_util::sync::CancellationToken;

use crate::Context;
use crate::summary::{is_empty_patch, merge_patch_diff};

pub mod bootstrap;
pub mod connector;
pub mod import;
pub mod manageagent;
pub mod manifest;
pub mod validate;

pub use connector::{
    ConnectError, DownstreamConnector, KubeconfigConnector, SharedDownstreamConnector,
};
pub use manifest::ManifestOptions;

/// Why an agent-management reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum AgentManagementError {
    #[error("{action} for cluster {cluster}: {source}")]
    Kube {
        action: String,
        cluster: String,
        #[source]
        source: kube::Error,
    },
    #[error("importing cluster {cluster}: {message}")]
    Import { cluster: String, message: String },
    #[error("importing cluster {cluster}: {source}")]
    Connect {
        cluster: String,
        #[source]
        source: ConnectError,
    },
    #[error("bootstrapping the local cluster: {0}")]
    Bootstrap(String),
}

impl AgentManagementError {
    /// A write lost a race with another writer of the same object (409): the next reconcile
    /// sees the new version, so it is retried at once and not reported as a failure.
    pub fn is_conflict(&self) -> bool {
        matches!(self, AgentManagementError::Kube { source: kube::Error::Api(e), .. } if e.code == 409)
    }

    pub(crate) fn kube(
        action: impl Into<String>,
        cluster: &str,
    ) -> impl FnOnce(kube::Error) -> AgentManagementError {
        let action = action.into();
        let cluster = cluster.to_string();
        move |source| AgentManagementError::Kube {
            action,
            cluster,
            source,
        }
    }
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Writes the fields of `desired` that differ from `cluster`'s status as a merge patch,
/// guarded by the observed resourceVersion (a concurrent writer makes it fail with 409 and the
/// reconcile is retried with fresh data instead of overwriting the other writer's conditions).
pub(crate) async fn patch_cluster_status(
    client: &kube::Client,
    cluster: &Cluster,
    desired: &ClusterStatus,
    key: &str,
) -> Result<(), AgentManagementError> {
    let old = serde_json::to_value(cluster.status.clone().unwrap_or_default()).unwrap_or_default();
    let new = serde_json::to_value(desired).unwrap_or_default();
    let patch = merge_patch_diff(&old, &new);
    if is_empty_patch(&patch) {
        return Ok(());
    }
    let mut body = serde_json::json!({ "status": patch });
    if let Some(rv) = cluster.meta().resource_version.clone() {
        body["metadata"] = serde_json::json!({ "resourceVersion": rv });
    }
    crate::patch_status_unread::<Cluster>(
        client,
        cluster.namespace().as_deref(),
        &cluster.name_any(),
        &body,
    )
    .await
    .map_err(AgentManagementError::kube("writing agent status", key))?;
    Ok(())
}

/// How often [`patch_cluster_status_fresh`] reads the Cluster again after a conflict.
const CONFLICT_RETRIES: usize = 3;

/// [`patch_cluster_status`] of the status `desired` computes from a Cluster, read again from the
/// API server after a conflict (another writer changed the Cluster since the cache saw it: at
/// registration the cluster reconciler, the agent's check-in and this one write the new
/// Cluster's status within moments) and patched again, as long as only its status changed:
/// a changed spec means the caller decided on an old one, and the conflict is returned.
pub(crate) async fn patch_cluster_status_fresh(
    client: &kube::Client,
    cluster: &Cluster,
    key: &str,
    desired: impl Fn(&Cluster) -> ClusterStatus,
) -> Result<(), AgentManagementError> {
    let api = Api::<Cluster>::namespaced(client.clone(), &cluster.namespace().unwrap_or_default());
    let mut current = std::borrow::Cow::Borrowed(cluster);
    for attempt in 0..=CONFLICT_RETRIES {
        let result = patch_cluster_status(client, &current, &desired(&current), key).await;
        match result {
            Err(error) if error.is_conflict() && attempt < CONFLICT_RETRIES => {
                let fresh = api
                    .get_opt(&cluster.name_any())
                    .await
                    .map_err(AgentManagementError::kube("reading the Cluster again", key))?;
                match fresh {
                    Some(fresh) if same_decision_inputs(cluster, &fresh) => {
                        current = std::borrow::Cow::Owned(fresh);
                    }
                    // Gone, or changed beyond its status: the next reconcile decides again.
                    _ => return Err(error),
                }
            }
            other => return other,
        }
    }
    Ok(())
}

/// Whether `fresh` is `decided` with only its status (and resourceVersion) changed.
fn same_decision_inputs(decided: &Cluster, fresh: &Cluster) -> bool {
    decided.metadata.uid == fresh.metadata.uid
        && decided.metadata.generation == fresh.metadata.generation
        && decided.metadata.deletion_timestamp == fresh.metadata.deletion_timestamp
        && decided.spec == fresh.spec
}

/// Runs the agent-management reconcilers (manageagent, import, local bootstrap) until
/// `shutdown`.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) -> Result<(), AgentManagementError> {
    let (manage, import, bootstrap) = tokio::join!(
        manageagent::run(ctx.clone(), shutdown.clone()),
        import::run(ctx.clone(), shutdown.clone()),
        bootstrap::run(ctx.clone(), shutdown.clone()),
    );
    manage?;
    import?;
    bootstrap?;
    Ok(())
}

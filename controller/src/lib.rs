//! Fleet's upstream controller, in the layout of Fleet's `internal/cmd/controller`:
//! [`gitops`] polls Git and turns each `fleet.yaml` folder into a Bundle and keeps the GitRepo
//! status; [`bundle`] matches Bundles to Clusters and writes one BundleDeployment per target
//! under the rollout rules ([`target`], [`rollout`]); [`summary`] and [`resourcestatus`]
//! aggregate BundleDeployment status upwards; [`cluster`] and [`clustergroup`] keep their
//! status. Every reconciler is `observe → decide → act`: the decision is a pure function that is
//! unit-tested without a server, the API calls live at the edge.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub mod agentmanagement;
pub mod bundle;
pub mod cluster;
pub mod clustergroup;
pub mod clusters;
pub mod config;
pub mod controllerdeployment;
pub mod deployments;
pub mod gitops;
pub mod helmops;
pub mod leader;
pub mod metrics;
pub mod registration;
pub mod resourcestatus;
pub mod rollout;
pub mod summary;
pub mod target;
pub mod throttle;

pub use config::ControllerConfig;
pub use metrics::Metrics;

/// What every reconciler of the controller shares.
pub struct Context {
    /// Client of the upstream (management) cluster.
    pub client: kube::Client,
    pub config: ControllerConfig,
    pub metrics: Metrics,
    /// The shared BundleDeployment cache, started by the first reconciler that needs it.
    deployments: std::sync::OnceLock<Arc<deployments::DeploymentIndex>>,
    /// The shared Cluster cache, started by the first reconciler that needs it.
    clusters: std::sync::OnceLock<Arc<clusters::ClusterIndex>>,
    /// Stops the caches' watches when the context goes away.
    stop_caches: CancellationToken,
}

impl Context {
    pub fn new(client: kube::Client, config: ControllerConfig, metrics: Metrics) -> Self {
        Context {
            client,
            config,
            metrics,
            deployments: std::sync::OnceLock::new(),
            clusters: std::sync::OnceLock::new(),
            stop_caches: CancellationToken::new(),
        }
    }

    /// The controller's one watch on BundleDeployments, indexed (see [`deployments`]). The
    /// first call starts its watch on the current tokio runtime; it runs, like an informer,
    /// for as long as this context lives, across leader terms.
    pub fn deployment_index(&self) -> Arc<deployments::DeploymentIndex> {
        self.started_cache(
            &self.deployments,
            deployments::DeploymentIndex::new,
            |index, client, stop| async move { index.run(kube::Api::all(client), stop).await },
        )
    }

    /// The controller's one watch on Clusters, indexed by clientID (see [`clusters`]). The
    /// first call starts its watch on the current tokio runtime; it runs for as long as this
    /// context lives, across leader terms.
    pub fn cluster_index(&self) -> Arc<clusters::ClusterIndex> {
        self.started_cache(
            &self.clusters,
            clusters::ClusterIndex::new,
            |index, client, stop| async move { index.run(kube::Api::all(client), stop).await },
        )
    }

    /// The shared cache in `cell`, made and its watch spawned by the first caller.
    fn started_cache<I, W>(
        &self,
        cell: &std::sync::OnceLock<Arc<I>>,
        new: impl FnOnce() -> Arc<I>,
        watch: impl FnOnce(Arc<I>, kube::Client, CancellationToken) -> W,
    ) -> Arc<I>
    where
        W: std::future::Future<Output = ()> + Send + 'static,
    {
        cell.get_or_init(|| {
            let index = new();
            fleet_api::task::spawn(watch(
                index.clone(),
                self.client.clone(),
                self.stop_caches.clone(),
            ));
            index
        })
        .clone()
    }
}

/// Merge-patches the status subresource of `name` without decoding the answer: the
/// reconcilers that write a status they computed do not read it back, so decoding the whole
/// object (every manager's managedFields included) on each write was work for nothing.
pub(crate) async fn patch_status_unread<K>(
    client: &kube::Client,
    namespace: Option<&str>,
    name: &str,
    patch: &serde_json::Value,
) -> Result<(), kube::Error>
where
    K: kube::Resource<DynamicType = ()>,
{
    let request = kube::core::Request::new(K::url_path(&(), namespace))
        .patch_subresource(
            "status",
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(patch),
        )
        .map_err(kube::Error::BuildRequest)?;
    client.request_text(request).await.map(|_| ())
}

impl Drop for Context {
    fn drop(&mut self) {
        self.stop_caches.cancel();
    }
}

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("GitRepo controller: {0}")]
    Gitops(#[from] gitops::GitopsError),
    #[error("Bundle controller: {0}")]
    Bundle(#[from] bundle::BundleError),
    #[error("Cluster controller: {0}")]
    Cluster(#[from] cluster::ClusterError),
    #[error("ClusterGroup controller: {0}")]
    ClusterGroup(#[from] clustergroup::ClusterGroupError),
    #[error("HelmOps controller: {0}")]
    HelmOps(#[from] helmops::HelmOpsError),
    #[error("registration controller: {0}")]
    Registration(#[from] registration::RegistrationError),
    #[error("agent management: {0}")]
    AgentManagement(#[from] agentmanagement::AgentManagementError),
}

/// The whole upstream controller: every reconciler, sharing one client.
pub struct Controller {
    ctx: Arc<Context>,
}

impl Controller {
    /// Registers the controller's metrics in `registry` (served on `/metrics` by the caller).
    pub fn new(
        client: kube::Client,
        config: ControllerConfig,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Self {
        let metrics = Metrics::new(registry);
        Controller {
            ctx: Arc::new(Context::new(client, config, metrics)),
        }
    }

    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Runs every reconciler until `shutdown` is cancelled or one of them fails. With
    /// `config.leader_election`, the reconcilers run only while this process holds the Lease
    /// `config.lease_name` in `config.system_namespace`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ControllerError> {
        let ctx = self.ctx;
        if !ctx.config.leader_election {
            return run_reconcilers(ctx, shutdown).await;
        }
        let elector = leader::LeaderElector::new(
            ctx.client.clone(),
            &ctx.config.system_namespace,
            &ctx.config.lease_name,
            &ctx.config.leader_identity,
            ctx.config.lease_duration,
            ctx.config.lease_retry_period,
        );
        elector
            .run(shutdown, |term| run_reconcilers(ctx.clone(), term))
            .await
    }
}

/// Runs every reconciler until `shutdown` is cancelled or one of them fails.
async fn run_reconcilers(
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) -> Result<(), ControllerError> {
    let result = tokio::try_join!(
        async {
            gitops::run(ctx.clone(), shutdown.clone())
                .await
                .map_err(ControllerError::from)
        },
        async {
            bundle::run(ctx.clone(), shutdown.clone())
                .await
                .map_err(ControllerError::from)
        },
        async {
            cluster::run(ctx.clone(), shutdown.clone())
                .await
                .map_err(ControllerError::from)
        },
        async {
            clustergroup::run(ctx.clone(), shutdown.clone())
                .await
                .map_err(ControllerError::from)
        },
        async {
            helmops::run(ctx.clone(), shutdown.clone())
                .await
                .map_err(ControllerError::from)
        },
        async {
            registration::run(ctx.clone(), shutdown.clone())
                .await
                .map_err(ControllerError::from)
        },
        async {
            agentmanagement::run(ctx.clone(), shutdown.clone())
                .await
                .map_err(ControllerError::from)
        },
    );
    // One reconciler failing stops the others too.
    shutdown.cancel();
    result.map(|_| ())
}

/// Waits for `ready` (a cache's first list) at most `timeout`, and no longer than until
/// `shutdown`. kube-runtime lets a stopping controller finish its running reconciles, and a
/// reconcile waiting for a cache fed by the controller's own trigger streams (which stop being
/// polled) would otherwise hold the stop back for the whole timeout.
pub(crate) async fn ready_unless_stopped(
    shutdown: &CancellationToken,
    timeout: std::time::Duration,
    ready: impl std::future::Future<Output = bool>,
) -> bool {
    tokio::select! {
        biased;
        ready = tokio::time::timeout(timeout, ready) => ready.unwrap_or(false),
        () = shutdown.cancelled() => false,
    }
}

/// For unit tests: a client of an upstream cluster on the simulator with Fleet's CRDs and the
/// namespace `namespace`. Keep the returned simulator while the client is in use.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) async fn test_upstream(namespace: &str) -> (fleet_simulator::Simulator, kube::Client) {
    use kube::api::{Api, PostParams};
    let sim = fleet_simulator::Simulator::new(fleet_simulator::SimConfig {
        profile: None,
        ..Default::default()
    });
    let upstream = sim.add_cluster("upstream").unwrap();
    upstream.install_crds(&fleet_api::crds::all()).unwrap();
    let client = upstream.client();
    let namespace: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}})).unwrap();
    Api::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    (sim, client)
}

#[cfg(test)]
mod ready_tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_stop_ends_the_wait_for_a_cache_that_never_fills() {
        let shutdown = CancellationToken::new();
        let waiting = fleet_api::task::spawn({
            let shutdown = shutdown.clone();
            async move {
                ready_unless_stopped(
                    &shutdown,
                    Duration::from_secs(3600),
                    std::future::pending::<bool>(),
                )
                .await
            }
        });
        shutdown.cancel();
        assert!(!waiting.await.unwrap(), "not ready: the reconcile gives up");
    }

    #[tokio::test]
    async fn a_filled_cache_is_ready_even_while_stopping() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        assert!(ready_unless_stopped(&shutdown, Duration::from_secs(1), async { true }).await);
    }
}

//! Fleet's agent, in the layout of Fleet's `internal/cmd/agent`: it watches the
//! BundleDeployments of its cluster namespace upstream, renders and applies them into its
//! downstream cluster ([`deployer`]), compares what is deployed with what should be
//! ([`monitor`]: readiness, diff, resource counts), corrects drift ([`drift`]), reports status
//! ([`controller`]) and checks in on its Cluster ([`heartbeat`]).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::sync::Arc;

use fleet_api::BundleDeployment;
use futures::{StreamExt, TryStreamExt as _};
use kube::api::Api;
use kube::runtime::controller::Config as ControllerConfig;
use kube::runtime::{Controller, PredicateConfig, WatchStreamExt as _, reflector, watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub mod cache;
pub mod chartsource;
pub mod config;
pub mod controller;
pub mod deployer;
pub mod downstream;
pub mod drift;
pub mod heartbeat;
pub mod metrics;
pub mod monitor;
pub mod plan;
pub mod process;
pub mod register;
pub mod release;
pub mod status;

pub use config::AgentConfig;

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Config(#[from] config::ConfigError),
}

/// One agent: the BundleDeployments of one cluster namespace upstream, deployed to one
/// downstream cluster.
pub struct Agent {
    upstream: kube::Client,
    downstream: kube::Client,
    config: Arc<AgentConfig>,
    metrics: metrics::Metrics,
}

impl Agent {
    /// `upstream` reads BundleDeployments/Contents and writes their status; `downstream` is the
    /// cluster the agent deploys to. Metrics are registered in `registry`.
    pub fn new(
        upstream: kube::Client,
        downstream: kube::Client,
        config: AgentConfig,
        registry: &mut prometheus_client::registry::Registry,
    ) -> Self {
        let metrics = metrics::Metrics::new(registry);
        metrics.set_workers(metrics::BUNDLEDEPLOYMENT, config.bundledeployment_workers);
        metrics.set_workers(metrics::DRIFT, config.drift_workers);
        Agent {
            upstream,
            downstream,
            config: Arc::new(config),
            metrics,
        }
    }

    /// Runs until `shutdown` is cancelled. Then no new reconcile starts, the ones in flight
    /// get [`AgentConfig::shutdown_grace`] to finish and are abandoned after it (a reconcile
    /// stuck on a slow chart download or API server must not hold the agent), and every task
    /// of the agent (watches, drift watches, check-ins) is stopped.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AgentError> {
        let config = self.config.clone();
        let span = tracing::info_span!("agent", cluster = %format!("{}/{}", config.cluster_namespace, config.cluster_name));
        let _entered = span.enter();
        drop(_entered);

        let heartbeat = fleet_api::task::spawn(heartbeat::run(
            self.upstream.clone(),
            config.clone(),
            shutdown.clone(),
        ));

        let downstream = downstream::Downstream::new(self.downstream.clone());
        let deployer =
            deployer::Deployer::new(self.upstream.clone(), downstream.clone(), config.clone());
        let (drift_tx, mut drift_rx) = mpsc::unbounded_channel::<drift::DriftRequest>();
        let drift = drift::DriftTracker::new(downstream, config.drift_delay, drift_tx);

        let api: Api<fleet_api::unmanaged::Unmanaged<BundleDeployment>> =
            Api::namespaced(self.upstream.clone(), &config.deployments_namespace);
        // The store sees every change (dependsOn reads siblings' status from it); reconciles
        // are triggered only by what Fleet's agent reacts to, not by status writes.
        let (store, writer) = reflector::store();
        let written_status = Arc::new(controller::WrittenStatuses::default());
        let seen = written_status.clone();
        // managedFields are never read by the agent: not even decoded.
        let triggers = reflector(
            writer,
            watcher(api, watcher::Config::default()).map_ok(fleet_api::unmanaged::unwrap_event),
        )
        .default_backoff()
        .applied_objects()
        .inspect_ok(move |bd| seen.seen(bd))
        .predicate_filter(reconcile_trigger, PredicateConfig::default());
        let bd_controller = Controller::for_stream(triggers, store).with_config(
            ControllerConfig::default().concurrency(
                u16::try_from(config.bundledeployment_workers.max(1)).unwrap_or(u16::MAX),
            ),
        );
        let mut ctx = controller::Context::new(
            self.upstream.clone(),
            deployer,
            config.clone(),
            self.metrics.clone(),
            drift.clone(),
            bd_controller.store(),
        );
        ctx.written_status = written_status;
        let ctx = Arc::new(ctx);
        let in_flight = InFlight::default();

        // Drift reconciles: keys come from the drift watches after the coalescing delay.
        let drift_ctx = ctx.clone();
        let drift_workers = config.drift_workers.max(1);
        let drift_shutdown = shutdown.clone();
        let drift_in_flight = in_flight.clone();
        let drift_task = fleet_api::task::spawn(async move {
            let keys = futures::stream::poll_fn(move |cx| drift_rx.poll_recv(cx))
                .take_until(drift_shutdown.cancelled_owned());
            keys.for_each_concurrent(drift_workers, |request| {
                let ctx = drift_ctx.clone();
                drift_in_flight.track(async move {
                    let key = request.key.clone();
                    let span =
                        tracing::info_span!("drift", bd = %key, cluster = %ctx.config.cluster_name);
                    let started = std::time::Instant::now();
                    let result =
                        tracing::Instrument::instrument(ctx.drift_reconcile(&request), span).await;
                    if let Err(error) = &result {
                        tracing::warn!(bd = %key, %error, "drift reconcile failed");
                        // Try again after the delay.
                        ctx.drift.schedule(&key);
                    }
                    ctx.metrics.reconciled(
                        metrics::DRIFT,
                        result.is_ok(),
                        started.elapsed().as_secs_f64(),
                    );
                })
            })
            .await;
        });

        // kube-runtime's graceful shutdown alone can wait forever: for reconciles stuck in a
        // blocking call, and, when the BundleDeployment watch has not listed once yet (the
        // upstream is slow or refuses the agent), for a store that can no longer get ready.
        // So the controller is dropped (which aborts its reconciles) once the reconciles in
        // flight are done or the grace period is over.
        let bd_shutdown = shutdown.clone();
        let reconcile_in_flight = in_flight.clone();
        let mut bd_controller = Box::pin(
            bd_controller
                .graceful_shutdown_on(async move { bd_shutdown.cancelled().await })
                .run(
                    move |bd, ctx| reconcile_in_flight.track(controller::reconcile(bd, ctx)),
                    controller::error_policy,
                    ctx,
                )
                .for_each(|_| async {}),
        );
        tokio::select! {
            _ = &mut bd_controller => shutdown.cancelled().await,
            _ = shutdown.cancelled() => {}
        }
        if tokio::time::timeout(config.shutdown_grace, in_flight.idle())
            .await
            .is_err()
        {
            tracing::warn!(
                reconciles = in_flight.count(),
                "reconciles still running after the shutdown grace period; abandoning them"
            );
        }
        // Dropping the controller aborts the reconciles still running.
        drop(bd_controller);
        drift_task.abort();
        drift.shutdown();
        let _ = drift_task.await;
        let _ = heartbeat.await;
        Ok(())
    }
}

/// What makes a BundleDeployment worth a reconcile (Fleet's agent predicates: generation,
/// labels and annotations changed, `status.syncGeneration` changed; plus the deletion, which
/// kube-apiserver marks with a new generation and the simulator may not): a hash of those.
/// Status writes, the agent's own among them, do not trigger reconciles.
pub fn reconcile_trigger(bd: &BundleDeployment) -> Option<u64> {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bd.metadata.generation.hash(&mut hasher);
    bd.metadata.labels.hash(&mut hasher);
    bd.metadata.annotations.hash(&mut hasher);
    bd.metadata
        .deletion_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .hash(&mut hasher);
    bd.status
        .as_ref()
        .and_then(|s| s.sync_generation)
        .hash(&mut hasher);
    Some(hasher.finish())
}

/// Counts the reconciles in flight, so that shutdown can wait for them.
#[derive(Clone)]
struct InFlight(Arc<tokio::sync::watch::Sender<usize>>);

impl Default for InFlight {
    fn default() -> Self {
        InFlight(Arc::new(tokio::sync::watch::channel(0).0))
    }
}

/// One reconcile in flight; dropping it (the reconcile finished, or was dropped unpolled)
/// counts it out.
struct InFlightGuard(Arc<tokio::sync::watch::Sender<usize>>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl InFlight {
    /// `work`, counted from now until it finishes or is dropped.
    fn track<F: std::future::Future>(
        &self,
        work: F,
    ) -> impl std::future::Future<Output = F::Output> + use<F> {
        self.0.send_modify(|n| *n += 1);
        let guard = InFlightGuard(self.0.clone());
        async move {
            let _guard = guard;
            work.await
        }
    }

    fn count(&self) -> usize {
        *self.0.borrow()
    }

    /// Resolves when nothing is in flight.
    async fn idle(&self) {
        let mut counts = self.0.subscribe();
        let _ = counts.wait_for(|n| *n == 0).await;
    }
}

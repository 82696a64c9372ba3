//! Fleet's agent, in the layout of Fleet's `internal/cmd/agent`: it watches the
//! BundleDeployments of its cluster namespace upstream, renders and applies them into its
//! downstream cluster ([`deployer`]), compares what is deployed with what should be
//! ([`monitor`]: readiness, diff, resource counts), corrects drift ([`drift`]), reports status
//! ([`controller`]) and checks in on its Cluster ([`heartbeat`]).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::sync::Arc;

use fleet_api::BundleDeployment;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::Controller;
use kube::runtime::controller::Config as ControllerConfig;
use kube::runtime::watcher;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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

    /// Runs until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AgentError> {
        let config = self.config.clone();
        let span = tracing::info_span!("agent", cluster = %format!("{}/{}", config.cluster_namespace, config.cluster_name));
        let _entered = span.enter();
        drop(_entered);

        let heartbeat = tokio::spawn(heartbeat::run(
            self.upstream.clone(),
            config.clone(),
            shutdown.clone(),
        ));

        let downstream = downstream::Downstream::new(self.downstream.clone());
        let deployer =
            deployer::Deployer::new(self.upstream.clone(), downstream.clone(), config.clone());
        let (drift_tx, mut drift_rx) = mpsc::unbounded_channel::<String>();
        let drift = drift::DriftTracker::new(downstream, config.drift_delay, drift_tx);

        let api: Api<BundleDeployment> =
            Api::namespaced(self.upstream.clone(), &config.deployments_namespace);
        let bd_controller = Controller::new(api, watcher::Config::default()).with_config(
            ControllerConfig::default().concurrency(
                u16::try_from(config.bundledeployment_workers.max(1)).unwrap_or(u16::MAX),
            ),
        );
        let ctx = Arc::new(controller::Context::new(
            self.upstream.clone(),
            deployer,
            config.clone(),
            self.metrics.clone(),
            drift.clone(),
            bd_controller.store(),
        ));

        // Drift reconciles: keys come from the drift watches after the coalescing delay.
        let drift_ctx = ctx.clone();
        let drift_workers = config.drift_workers.max(1);
        let drift_shutdown = shutdown.clone();
        let drift_task = tokio::spawn(async move {
            let keys = futures::stream::poll_fn(move |cx| drift_rx.poll_recv(cx))
                .take_until(drift_shutdown.cancelled_owned());
            keys.for_each_concurrent(drift_workers, |key| {
                let ctx = drift_ctx.clone();
                async move {
                    let span =
                        tracing::info_span!("drift", bd = %key, cluster = %ctx.config.cluster_name);
                    let started = std::time::Instant::now();
                    let result =
                        tracing::Instrument::instrument(ctx.drift_reconcile(&key), span).await;
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
                }
            })
            .await;
        });

        let bd_shutdown = shutdown.clone();
        bd_controller
            .graceful_shutdown_on(async move { bd_shutdown.cancelled().await })
            .run(controller::reconcile, controller::error_policy, ctx)
            .for_each(|_| async {})
            .await;

        shutdown.cancelled().await;
        drift.shutdown();
        let _ = drift_task.await;
        let _ = heartbeat.await;
        Ok(())
    }
}

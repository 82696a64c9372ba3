//! Fleet's agent, in the layout of Fleet's `internal/cmd/agent`: it watches the
//! BundleDeployments of its cluster namespace upstream, renders and applies them into its
//! downstream cluster ([`deployer`]), compares what is deployed with what should be
//! ([`monitor`]: readiness, diff, resource counts), corrects drift, and reports status.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use tokio_util::sync::CancellationToken;

pub mod config;
pub mod monitor;

pub use config::AgentConfig;

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

/// One agent: the BundleDeployments of one cluster namespace upstream, deployed to one
/// downstream cluster.
pub struct Agent {
    #[allow(dead_code)]
    upstream: kube::Client,
    #[allow(dead_code)]
    downstream: kube::Client,
    #[allow(dead_code)]
    config: AgentConfig,
}

impl Agent {
    /// `upstream` reads BundleDeployments/Contents and writes their status; `downstream` is the
    /// cluster the agent deploys to. Metrics are registered in `registry`.
    pub fn new(
        upstream: kube::Client,
        downstream: kube::Client,
        config: AgentConfig,
        _registry: &mut prometheus_client::registry::Registry,
    ) -> Self {
        Agent {
            upstream,
            downstream,
            config,
        }
    }

    /// Runs until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AgentError> {
        shutdown.cancelled().await;
        Ok(())
    }
}

//! `fleet agent`: the agent of one downstream cluster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use fleet_agent::{Agent, AgentConfig};
use fleet_api::Cluster;
use kube::api::Api;
use prometheus_client::registry::Registry;

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// Kubeconfig of the upstream (management) cluster, where the BundleDeployments are
    #[arg(long, env = "FLEET_UPSTREAM_KUBECONFIG")]
    upstream_kubeconfig: PathBuf,
    /// Kubeconfig of the downstream cluster the agent deploys to (default: KUBECONFIG,
    /// ~/.kube/config, in-cluster)
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Name of this cluster's Cluster object upstream
    #[arg(long, env = "CLUSTER_NAME")]
    cluster_name: String,
    /// Namespace of this cluster's Cluster object upstream
    #[arg(long, env = "CLUSTER_NAMESPACE", default_value = "fleet-default")]
    cluster_namespace: String,
    /// The cluster namespace upstream holding this cluster's BundleDeployments (default: the
    /// Cluster's `status.namespace`)
    #[arg(long, env = "FLEET_DEPLOYMENTS_NAMESPACE")]
    deployments_namespace: Option<String>,
    /// Namespace the agent runs in downstream
    #[arg(long, env = "NAMESPACE", default_value = "cattle-fleet-system")]
    agent_namespace: String,
    /// Concurrent BundleDeployment reconciles
    #[arg(
        long,
        env = "BUNDLEDEPLOYMENT_RECONCILER_WORKERS",
        default_value_t = 50
    )]
    bundledeployment_workers: usize,
    /// Concurrent drift reconciles
    #[arg(long, env = "DRIFT_RECONCILER_WORKERS", default_value_t = 50)]
    drift_workers: usize,
    /// Seconds that coalesce bursts of drift events into one reconcile
    #[arg(long, env = "FLEET_DRIFT_DELAY_SECONDS", default_value_t = 5)]
    drift_delay: u64,
    /// Seconds between check-ins (`agent.lastSeen` on the Cluster)
    #[arg(long, env = "CHECKIN_INTERVAL_SECONDS", default_value_t = 900)]
    checkin_interval: u64,
    /// Serve Prometheus metrics on this address (`/metrics`)
    #[arg(long, env = "FLEET_METRICS_ADDR", default_value = "0.0.0.0:8081")]
    metrics_addr: SocketAddr,
}

pub fn run(args: &AgentArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: &AgentArgs) -> anyhow::Result<ExitCode> {
    let upstream =
        super::kubeconfig::client(Some(args.upstream_kubeconfig.as_path()), "upstream").await?;
    let downstream = super::kubeconfig::client(args.kubeconfig.as_deref(), "downstream").await?;
    let deployments_namespace = match &args.deployments_namespace {
        Some(ns) => ns.clone(),
        None => {
            let api: Api<Cluster> = Api::namespaced(upstream.clone(), &args.cluster_namespace);
            let cluster = api.get(&args.cluster_name).await.with_context(|| {
                format!(
                    "reading Cluster {}/{} upstream",
                    args.cluster_namespace, args.cluster_name
                )
            })?;
            cluster
                .status
                .map(|s| s.namespace)
                .filter(|ns| !ns.is_empty())
                .with_context(|| {
                    format!(
                        "Cluster {}/{} has no status.namespace yet: is the controller running?",
                        args.cluster_namespace, args.cluster_name
                    )
                })?
        }
    };
    let mut config = AgentConfig::new(
        &args.cluster_namespace,
        &args.cluster_name,
        &deployments_namespace,
    );
    config.agent_namespace = args.agent_namespace.clone();
    config.bundledeployment_workers = args.bundledeployment_workers.max(1);
    config.drift_workers = args.drift_workers.max(1);
    config.drift_delay = Duration::from_secs(args.drift_delay);
    config.checkin_interval = Duration::from_secs(args.checkin_interval.max(1));
    let mut registry = Registry::default();
    let agent = Agent::new(upstream, downstream, config, &mut registry);
    eprintln!(
        "fleet agent: cluster {}/{} watching {} (metrics on http://{}/metrics)",
        args.cluster_namespace, args.cluster_name, deployments_namespace, args.metrics_addr
    );
    super::signal::run_with_metrics("fleet agent", args.metrics_addr, registry, |shutdown| {
        agent.run(shutdown)
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

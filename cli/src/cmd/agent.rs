//! `fleet agent`: the agent of one downstream cluster. With `--upstream-kubeconfig` it talks
//! to the upstream cluster with that kubeconfig as the named Cluster; without it, it runs as
//! the agent Pod does: environment of the agent Deployment, Lease `fleet-agent`, registration
//! with the `fleet-agent` / `fleet-agent-bootstrap` secrets, HTTPS to the upstream cluster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use fleet_agent::config::AgentEnv;
use fleet_agent::process::run_agent_process_shared;
use fleet_agent::register::HttpsConnector;
use fleet_agent::{Agent, AgentConfig};
use fleet_api::Cluster;
use kube::api::Api;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// Kubeconfig of the upstream (management) cluster, where the BundleDeployments are.
    /// Without it the agent registers with the secrets in its namespace (as the agent Pod)
    #[arg(long, env = "FLEET_UPSTREAM_KUBECONFIG")]
    upstream_kubeconfig: Option<PathBuf>,
    /// Kubeconfig of the downstream cluster the agent deploys to (default: KUBECONFIG,
    /// ~/.kube/config, in-cluster)
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Name of this cluster's Cluster object upstream (with --upstream-kubeconfig)
    #[arg(long, env = "CLUSTER_NAME")]
    cluster_name: Option<String>,
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
    let Some(upstream_kubeconfig) = args.upstream_kubeconfig.as_deref() else {
        return run_process(args).await;
    };
    let cluster_name = args
        .cluster_name
        .as_deref()
        .context("--cluster-name (or CLUSTER_NAME) is required with --upstream-kubeconfig")?;
    let upstream = super::kubeconfig::client(Some(upstream_kubeconfig), "upstream").await?;
    let downstream = super::kubeconfig::client(args.kubeconfig.as_deref(), "downstream").await?;
    let deployments_namespace = match &args.deployments_namespace {
        Some(ns) => ns.clone(),
        None => {
            let api: Api<Cluster> = Api::namespaced(upstream.clone(), &args.cluster_namespace);
            let cluster = api.get(cluster_name).await.with_context(|| {
                format!(
                    "reading Cluster {}/{} upstream",
                    args.cluster_namespace, cluster_name
                )
            })?;
            cluster
                .status
                .map(|s| s.namespace)
                .filter(|ns| !ns.is_empty())
                .with_context(|| {
                    format!(
                        "Cluster {}/{} has no status.namespace yet: is the controller running?",
                        args.cluster_namespace, cluster_name
                    )
                })?
        }
    };
    let mut config = AgentConfig::new(
        &args.cluster_namespace,
        cluster_name,
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
        args.cluster_namespace, cluster_name, deployments_namespace, args.metrics_addr
    );
    super::signal::run_with_metrics("fleet agent", args.metrics_addr, registry, |shutdown| {
        agent.run(shutdown)
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// The agent as its Pod runs it: the process environment (with the flags that share its
/// names), registration through the secrets in the agent namespace, HTTPS upstream.
async fn run_process(args: &AgentArgs) -> anyhow::Result<ExitCode> {
    use fleet_agent::config::env;

    let downstream = super::kubeconfig::client(args.kubeconfig.as_deref(), "downstream").await?;
    let mut agent_env: AgentEnv = std::env::vars().collect();
    agent_env.insert(env::NAMESPACE.to_string(), args.agent_namespace.clone());
    agent_env.insert(
        env::BUNDLEDEPLOYMENT_RECONCILER_WORKERS.to_string(),
        args.bundledeployment_workers.max(1).to_string(),
    );
    agent_env.insert(
        env::DRIFT_RECONCILER_WORKERS.to_string(),
        args.drift_workers.max(1).to_string(),
    );
    let registry = Arc::new(Mutex::new(Registry::default()));
    let shutdown = CancellationToken::new();
    let metrics = tokio::spawn(fleet_cli::metrics::serve(
        args.metrics_addr,
        registry.clone(),
        shutdown.clone(),
    ));
    let signal_token = shutdown.clone();
    tokio::spawn(async move {
        if super::signal::wait().await.is_ok() {
            eprintln!("fleet agent: stopping");
        }
        signal_token.cancel();
    });
    eprintln!(
        "fleet agent: namespace {} registering with the upstream cluster (metrics on http://{}/metrics)",
        args.agent_namespace, args.metrics_addr
    );
    let result = run_agent_process_shared(
        downstream,
        agent_env,
        Arc::new(HttpsConnector),
        registry,
        // A real agent has its process to itself: renewals run beside its work.
        None,
        shutdown.clone(),
    )
    .await;
    shutdown.cancel();
    if let Ok(Err(err)) = metrics.await {
        eprintln!(
            "fleet agent: metrics server on {}: {err}",
            args.metrics_addr
        );
    }
    result.context("fleet agent")?;
    Ok(ExitCode::SUCCESS)
}

//! `fleet controller`: the upstream controller against any Kubernetes API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use fleet_controller::{Controller, ControllerConfig};
use prometheus_client::registry::Registry;

#[derive(Debug, clap::Args)]
pub struct ControllerArgs {
    /// Kubeconfig of the upstream cluster (default: KUBECONFIG, ~/.kube/config, in-cluster)
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Namespace the controller runs in (holds its leader-election Lease)
    #[arg(long, env = "NAMESPACE", default_value = "cattle-fleet-system")]
    namespace: String,
    /// Concurrent GitRepo reconciles
    #[arg(long, env = "GITREPO_RECONCILER_WORKERS", default_value_t = 50)]
    gitrepo_workers: usize,
    /// Concurrent Bundle reconciles
    #[arg(long, env = "BUNDLE_RECONCILER_WORKERS", default_value_t = 50)]
    bundle_workers: usize,
    /// Concurrent Cluster reconciles
    #[arg(long, env = "CLUSTER_RECONCILER_WORKERS", default_value_t = 50)]
    cluster_workers: usize,
    /// Concurrent ClusterGroup reconciles
    #[arg(long, env = "CLUSTERGROUP_RECONCILER_WORKERS", default_value_t = 50)]
    clustergroup_workers: usize,
    /// Minimum milliseconds between two status writes of one Cluster or Bundle; changes in
    /// between are written together (0: every change at once)
    #[arg(long, env = "FLEET_STATUS_WRITE_INTERVAL_MS", default_value_t = 1000)]
    status_write_interval_ms: u64,
    /// Cluster status writes a second, shared by all Clusters; beyond it a Cluster's status
    /// waits its turn and is then written with every change since (0: no shared limit)
    #[arg(
        long,
        env = "FLEET_CLUSTER_STATUS_WRITES_PER_SECOND",
        default_value_t = 100
    )]
    cluster_status_writes_per_second: u32,
    /// Resync period of every GitRepo, in seconds
    #[arg(long, env = "GITREPO_SYNC_PERIOD_SECONDS", default_value_t = 7200)]
    gitrepo_sync_period: u64,
    /// Serve the Git webhook (GitHub/GitLab push events) on this address
    #[arg(long, env = "FLEET_WEBHOOK_ADDR")]
    webhook_addr: Option<SocketAddr>,
    /// Where GitRepos are built: `in-process` (default) or `job` (a Job per sync running
    /// `fleet apply`, as Fleet does on real clusters)
    #[arg(long, env = "FLEET_GITJOB_MODE", default_value = "in-process", value_parser = ["in-process", "job"])]
    gitjob_mode: String,
    /// Image of the git job pods (with `--gitjob-mode job`)
    #[arg(long, env = "FLEET_GITJOB_IMAGE", default_value = fleet_controller::config::DEFAULT_GITJOB_IMAGE)]
    gitjob_image: String,
    /// URL of this API server as agents reach it (Fleet's `apiServerURL`); registration
    /// tokens hand it to agents
    #[arg(long, env = "API_SERVER_URL", default_value = "")]
    api_server_url: String,
    /// PEM file with the CA of that API server (Fleet's `apiServerCA`)
    #[arg(long, env = "API_SERVER_CA_FILE")]
    api_server_ca_file: Option<PathBuf>,
    /// Namespace of the registration secrets agents fetch their credentials from
    #[arg(
        long,
        env = "SYSTEM_REGISTRATION_NAMESPACE",
        default_value = "cattle-fleet-clusters-system"
    )]
    system_registration_namespace: String,
    /// Run the experimental HelmOps controller: HelmOp (and v0.12 HelmApp) resources deploy
    /// charts from Helm repositories without Git
    #[arg(
        long = "enable-helmops",
        env = "EXPERIMENTAL_HELM_OPS",
        value_parser = clap::builder::BoolishValueParser::new(),
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    enable_helmops: bool,
    /// Image of the agent Deployments the controller manages (Fleet's `agentImage`)
    #[arg(long, env = "AGENT_IMAGE", default_value = fleet_controller::config::DEFAULT_AGENT_IMAGE)]
    agent_image: String,
    /// Pull policy of the agent image
    #[arg(long, env = "AGENT_IMAGE_PULL_POLICY", default_value = "IfNotPresent")]
    agent_image_pull_policy: String,
    /// Run the reconcilers only while holding the Lease `fleet-controller-lock` (for several
    /// replicas); `false` runs them at once
    #[arg(long, env = "FLEET_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Seconds the leader's Lease stays valid without renewal
    #[arg(long, env = "FLEET_LEASE_DURATION_SECONDS", default_value_t = 15)]
    lease_duration_seconds: u64,
    /// Seconds between Lease renewals and candidates' retries
    #[arg(long, env = "FLEET_LEASE_RETRY_PERIOD_SECONDS", default_value_t = 2)]
    lease_retry_period_seconds: u64,
    /// Serve Prometheus metrics on this address (`/metrics`)
    #[arg(long, env = "FLEET_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
}

pub fn run(args: &ControllerArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: &ControllerArgs) -> anyhow::Result<ExitCode> {
    let client = super::kubeconfig::client(args.kubeconfig.as_deref(), "upstream").await?;
    let api_server_ca = match &args.api_server_ca_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the API server CA {}", path.display()))?,
        None => String::new(),
    };
    let config = ControllerConfig {
        system_namespace: args.namespace.clone(),
        api_server_url: args.api_server_url.clone(),
        api_server_ca,
        system_registration_namespace: args.system_registration_namespace.clone(),
        gitrepo_workers: args.gitrepo_workers.max(1),
        bundle_workers: args.bundle_workers.max(1),
        cluster_workers: args.cluster_workers.max(1),
        clustergroup_workers: args.clustergroup_workers.max(1),
        status_write_interval: Duration::from_millis(args.status_write_interval_ms),
        cluster_status_writes_per_second: args.cluster_status_writes_per_second,
        gitrepo_sync_period: Duration::from_secs(args.gitrepo_sync_period.max(1)),
        webhook_addr: args.webhook_addr,
        helmops_enabled: args.enable_helmops,
        gitjob_mode: if args.gitjob_mode == "job" {
            fleet_controller::config::GitJobMode::Job
        } else {
            fleet_controller::config::GitJobMode::InProcess
        },
        gitjob_image: args.gitjob_image.clone(),
        agent_image: args.agent_image.clone(),
        agent_image_pull_policy: args.agent_image_pull_policy.clone(),
        leader_election: args.leader_election,
        lease_duration: Duration::from_secs(args.lease_duration_seconds.max(1)),
        lease_retry_period: Duration::from_secs(args.lease_retry_period_seconds.max(1)),
        ..ControllerConfig::default()
    };
    let mut registry = Registry::default();
    let controller = Controller::new(client, config, &mut registry);
    eprintln!(
        "fleet controller: running (metrics on http://{}/metrics)",
        args.metrics_addr
    );
    super::signal::run_with_metrics(
        "fleet controller",
        args.metrics_addr,
        registry,
        |shutdown| controller.run(shutdown),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

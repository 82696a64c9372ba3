//! `fleet sim`: simulated clusters (`sim up`; `sim bench` joins later).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use fleet_cli::system::{ClusterSpec, SimSystem, SystemOptions};
use fleet_simulator::{SimConfig, Simulator};

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    #[command(subcommand)]
    command: SimCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SimCommand {
    /// Start the upstream cluster and N simulated downstream clusters, serve them over loopback
    /// HTTP and write a kubeconfig for each
    Up(UpArgs),
    /// Measure the simulator: `--store-only` prints the raw store write rate, the ceiling the
    /// controller is measured against
    Bench(BenchArgs),
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Measure only the object store (no controller, no agents)
    #[arg(long)]
    store_only: bool,
    /// How long to write, in seconds
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Spread the writes over this many clusters
    #[arg(long, default_value_t = 1)]
    clusters: usize,
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    /// How many downstream clusters to simulate (named sim-1 … sim-N)
    #[arg(long, default_value_t = 3)]
    clusters: usize,
    /// Where to write upstream.kubeconfig and clusters/<name>.kubeconfig
    #[arg(long, default_value = ".fleet-sim")]
    dir: PathBuf,
    /// Loopback port to listen on (0 picks a free one)
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Seed for every simulated cluster's randomness
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Serve plain HTTP instead of HTTPS (debugging; requests without a token act as the admin)
    #[arg(long)]
    plain_http: bool,
    /// Only the API servers: no controller, no agents, no Cluster objects
    #[arg(long)]
    bare: bool,
    /// Enable the experimental HelmOps controller (HelmOp/HelmApp resources)
    #[arg(long)]
    helmops: bool,
}

pub fn run(args: &SimArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        SimCommand::Up(up) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(sim_up(up))
        }
        SimCommand::Bench(bench) => {
            if !bench.store_only {
                anyhow::bail!(
                    "`fleet sim bench` needs --store-only until the controller joins the simulator"
                );
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(store_bench(bench))
        }
    }
}

/// Creates then updates ConfigMaps as fast as one thread can, through the full write path
/// (validation, field ownership, history), and prints writes per second.
async fn store_bench(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let sim = Simulator::new(SimConfig {
        profile: None,
        ..SimConfig::default()
    });
    let clusters: Vec<_> = (1..=args.clusters.max(1))
        .map(|i| sim.add_cluster(&format!("bench-{i}")))
        .collect::<Result<_, _>>()?;
    let start = std::time::Instant::now();
    let deadline = start + std::time::Duration::from_secs(args.seconds.max(1));
    let mut writes: u64 = 0;
    while std::time::Instant::now() < deadline {
        for _ in 0..100 {
            let cluster = &clusters[(writes as usize) % clusters.len()];
            let name = format!("cm-{}", writes % 1000);
            let obj = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "default"}, "data": {"n": writes.to_string()}});
            let info = cluster
                .state()
                .resolve("v1", "ConfigMap")
                .context("ConfigMap is not served")?;
            let target = fleet_simulator::cluster::Target {
                info,
                version: "v1".into(),
                namespace: Some("default".into()),
                name: Some(name),
                subresource: None,
            };
            let opts = fleet_simulator::cluster::WriteOptions {
                field_manager: Some("bench".into()),
                force: true,
                ..Default::default()
            };
            cluster
                .state()
                .patch(
                    &target,
                    fleet_simulator::cluster::PatchType::Apply,
                    obj.to_string().as_bytes(),
                    &opts,
                )
                .map_err(|e| anyhow::anyhow!("store bench write failed: {e}"))?;
            writes += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let stats = sim.stats();
    println!(
        "store writes: {writes} in {secs:.2}s = {:.0} writes/s across {} cluster(s) (server-side apply; {} objects, {} store writes)",
        writes as f64 / secs,
        clusters.len(),
        stats.objects,
        stats.writes
    );
    Ok(ExitCode::SUCCESS)
}

async fn sim_up(args: &UpArgs) -> anyhow::Result<ExitCode> {
    let names: Vec<String> = (1..=args.clusters).map(|i| format!("sim-{i}")).collect();
    let (sim, upstream, system) = if args.bare {
        let sim = Simulator::new(SimConfig {
            seed: args.seed,
            ..SimConfig::default()
        });
        let upstream = sim.add_cluster("upstream")?;
        upstream
            .install_crds(&fleet_api::crds::all())
            .context("installing Fleet's CRDs in the upstream cluster")?;
        for name in &names {
            sim.add_cluster(name)?;
        }
        (sim, upstream, None)
    } else {
        let system = SimSystem::start(SystemOptions {
            seed: args.seed,
            controller: fleet_controller::ControllerConfig {
                helmops_enabled: args.helmops,
                ..Default::default()
            },
            ..SystemOptions::default()
        })
        .await
        .context("starting the upstream cluster and the controller")?;
        let specs: Vec<ClusterSpec> = names.iter().map(|n| ClusterSpec::new(n)).collect();
        system
            .add_clusters(&specs)
            .await
            .context("registering the simulated clusters and starting their agents")?;
        let values = system
            .registration_values()
            .await
            .context("reading the registration token's values")?;
        println!(
            "fleet sim: {} clusters registered with ClusterRegistrationToken {}/{} (agents pull from {}); agents run as Deployment fleet-agent in {} of each cluster",
            names.len(),
            fleet_cli::system::CLUSTERS_NAMESPACE,
            fleet_cli::system::REGISTRATION_TOKEN,
            values
                .get("apiServerURL")
                .map(String::as_str)
                .unwrap_or_default(),
            system.controller_config().agent_namespace,
        );
        (
            system.simulator().clone(),
            system.upstream().clone(),
            Some(system),
        )
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], args.port));
    let server = sim
        .serve_with(
            addr,
            fleet_simulator::ServeOptions {
                plain_http: args.plain_http,
            },
        )
        .await?;
    let upstream_config = args.dir.join("upstream.kubeconfig");
    upstream.write_kubeconfig(&upstream_config, &server.cluster_url("upstream"))?;
    let clusters_dir = args.dir.join("clusters");
    remove_stale_kubeconfigs(&clusters_dir)?;
    for c in sim.clusters() {
        if c.name() != "upstream" {
            c.write_kubeconfig(
                &clusters_dir.join(format!("{}.kubeconfig", c.name())),
                &server.cluster_url(c.name()),
            )?;
        }
    }
    let running = if system.is_some() {
        format!(
            "controller and {} registered agents running; registration token {}/{}",
            args.clusters,
            fleet_cli::system::CLUSTERS_NAMESPACE,
            fleet_cli::system::REGISTRATION_TOKEN
        )
    } else {
        "API servers only".to_string()
    };
    println!(
        "fleet sim ready: upstream + {} clusters on {} ({running}; kubeconfigs in {}); try: kubectl --kubeconfig {} get clusters.fleet.cattle.io -A",
        args.clusters,
        server.base_url(),
        args.dir.display(),
        upstream_config.display()
    );
    super::signal::wait().await?;
    eprintln!("fleet sim: stopping");
    if let Some(system) = system {
        system.shutdown().await;
    }
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Kubeconfigs from an earlier, larger run would point at clusters that no longer exist.
fn remove_stale_kubeconfigs(dir: &Path) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "kubeconfig") {
            std::fs::remove_file(&path)
                .with_context(|| format!("removing stale kubeconfig {}", path.display()))?;
        }
    }
    Ok(())
}

//! `fleet sim`: simulated clusters (`sim up`; `sim bench` joins later).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use fleet_cli::bench;
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
    /// With --store-only: how long to write, in seconds
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Simulated downstream clusters (with --store-only: spread the writes over this many)
    #[arg(long, default_value_t = 100)]
    clusters: usize,
    /// Bundles, one folder each in a generated git repository
    #[arg(long, default_value_t = 10)]
    bundles: usize,
    /// ConfigMaps in each bundle
    #[arg(long, default_value_t = 3)]
    resources_per_bundle: usize,
    /// GitRepos the bundles are spread over
    #[arg(long, default_value_t = 1)]
    gitrepos: usize,
    /// Seed of the simulator and the controller's jitter
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Behaviour of the simulated clusters: fast, realistic or chaos
    #[arg(long, default_value = "fast")]
    profile: String,
    /// Write the report as JSON here
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write the report as a self-contained HTML page (SVG plots) here
    #[arg(long)]
    html: Option<PathBuf>,
    /// Run once per cluster count (e.g. 100,1000,10000) and fit the growth exponent
    #[arg(long, value_delimiter = ',')]
    sweep: Vec<usize>,
    /// No progress bar (CI)
    #[arg(long)]
    quiet: bool,
    /// Give up on a stage after this many seconds (the report then holds what was measured)
    #[arg(long, default_value_t = 1800)]
    stage_timeout: u64,
    /// Stop the whole run (or sweep) after this many seconds and write what was measured;
    /// SIGINT and SIGTERM do the same at any time
    #[arg(long)]
    time_limit: Option<u64>,
    /// Seconds to watch the idle fleet for needless status writes
    #[arg(long, default_value_t = 3)]
    idle_seconds: u64,
    /// Worker threads of the runtime the controller and the agents share (0: one per CPU)
    #[arg(long, default_value_t = 0)]
    worker_threads: usize,
    /// Run the controller and the agents on runtimes of their own (--controller-threads,
    /// --agent-threads) instead of sharing one
    #[arg(long)]
    separate_runtimes: bool,
    /// With --separate-runtimes: worker threads of the controller's runtime
    #[arg(long, default_value_t = 2)]
    controller_threads: usize,
    /// With --separate-runtimes: worker threads of the agents' runtime
    #[arg(long, default_value_t = 2)]
    agent_threads: usize,
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
            if bench.store_only {
                return store_bench(bench);
            }
            fleet_bench(bench)
        }
    }
}

/// Creates then updates ConfigMaps as fast as one thread can, through the full write path
/// (validation, field ownership, history), and prints writes per second.
fn store_bench(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let rate = bench::measure_store_write_rate(
        std::time::Duration::from_secs(args.seconds.max(1)),
        args.clusters.max(1),
    )?;
    println!(
        "store writes: {rate:.0} writes/s across {} cluster(s) (server-side apply)",
        args.clusters.max(1)
    );
    Ok(ExitCode::SUCCESS)
}

/// A progress bar on stderr.
struct BarProgress {
    bar: indicatif::ProgressBar,
}

impl bench::Progress for BarProgress {
    fn phase(&self, name: &str, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(0);
        self.bar.set_message(name.to_string());
    }
    fn set(&self, done: u64) {
        self.bar.set_position(done);
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// SIGINT and SIGTERM, as many times as they come.
struct StopSignals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn new() -> Self {
        StopSignals {
            #[cfg(unix)]
            terminate: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .ok(),
        }
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        let terminate = async {
            match &mut self.terminate {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = terminate => {}
        }
    }
}

/// Progress as plain lines on stderr, for runs without a terminal.
struct LineProgress {
    started: std::time::Instant,
    state: std::sync::Mutex<LineState>,
}

struct LineState {
    phase: String,
    total: u64,
    last_line: std::time::Instant,
}

impl LineProgress {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(10);

    fn new() -> Self {
        let now = std::time::Instant::now();
        LineProgress {
            started: now,
            state: std::sync::Mutex::new(LineState {
                phase: String::new(),
                total: 0,
                last_line: now,
            }),
        }
    }

    fn line(&self, phase: &str, done: Option<u64>, total: u64) {
        let elapsed = self.started.elapsed().as_secs();
        let count = match done {
            Some(done) if total > 0 => format!(" {done}/{total}"),
            _ => String::new(),
        };
        eprintln!(
            "[{:02}:{:02}:{:02}] {phase}{count}",
            elapsed / 3600,
            elapsed / 60 % 60,
            elapsed % 60
        );
    }
}

impl bench::Progress for LineProgress {
    fn phase(&self, name: &str, total: u64) {
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        state.phase = name.to_string();
        state.total = total;
        state.last_line = std::time::Instant::now();
        self.line(name, None, total);
    }
    fn set(&self, done: u64) {
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if state.last_line.elapsed() >= Self::EVERY {
            state.last_line = std::time::Instant::now();
            self.line(&state.phase, Some(done), state.total);
        }
    }
    fn finish(&self) {}
}

fn fleet_bench(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let config = bench::BenchConfig {
        clusters: args.clusters,
        bundles: args.bundles,
        resources_per_bundle: args.resources_per_bundle,
        gitrepos: args.gitrepos,
        seed: args.seed,
        profile: args.profile.clone(),
        idle: std::time::Duration::from_secs(args.idle_seconds),
        stage_timeout: std::time::Duration::from_secs(args.stage_timeout.max(1)),
        time_limit: args
            .time_limit
            .map(|s| std::time::Duration::from_secs(s.max(1))),
        runtimes: if args.separate_runtimes {
            bench::BenchRuntimes::Separate {
                controller: args.controller_threads,
                agents: args.agent_threads,
            }
        } else {
            bench::BenchRuntimes::Shared {
                threads: args.worker_threads,
            }
        },
        ..bench::BenchConfig::default()
    };
    // Every size is checked before any work starts.
    if args.sweep.is_empty() {
        config.validate()?;
    } else {
        for size in &args.sweep {
            bench::BenchConfig {
                clusters: *size,
                ..config.clone()
            }
            .validate()
            .with_context(|| format!("--sweep size {size}"))?;
        }
    }
    let progress: Box<dyn bench::Progress> = if args.quiet {
        Box::new(bench::NoProgress)
    } else if !std::io::stderr().is_terminal() {
        // indicatif draws nothing without a terminal: long runs under nohup or a CI log get
        // a line per phase and one every ten seconds instead.
        Box::new(LineProgress::new())
    } else {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} {msg}",
            )
            .context("building the progress bar")?
            .progress_chars("=> "),
        );
        Box::new(BarProgress { bar })
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("fleet-bench")
        .build()
        .context("starting the async runtime")?;
    // SIGINT and SIGTERM stop the run where it is; the report says so and keeps what was
    // measured (a run capped by `timeout` still leaves its numbers).
    let interrupt = config.interrupt.clone();
    runtime.spawn(async move {
        let mut signals = StopSignals::new();
        signals.next().await;
        interrupt.cancel();
        // The run writes its report and ends; a second signal, or a run still going a minute
        // later, ends the process as the signal would have.
        tokio::select! {
            () = signals.next() => {}
            () = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
        }
        eprintln!("fleet sim bench: stopping without a report");
        #[allow(
            clippy::exit,
            reason = "a signal must end the process even when a run is stuck"
        )]
        std::process::exit(130);
    });
    let report = runtime.block_on(async {
        if args.sweep.is_empty() {
            bench::run(&config, progress.as_ref()).await
        } else {
            bench::run_sweep(&config, &args.sweep, progress.as_ref()).await
        }
    })?;
    runtime.shutdown_background();
    print!("{}", bench::report::summary_text(&report));
    if let Some(path) = &args.report {
        let json = serde_json::to_string_pretty(&report).context("encoding the report")?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("writing the report to {}", path.display()))?;
    }
    if let Some(path) = &args.html {
        std::fs::write(path, bench::html::render(&report))
            .with_context(|| format!("writing the HTML report to {}", path.display()))?;
    }
    if let Some(stopped) = &report.incomplete {
        let written: Vec<String> = [&args.report, &args.html]
            .into_iter()
            .flatten()
            .map(|p| p.display().to_string())
            .collect();
        eprintln!(
            "fleet sim bench: {stopped}{}",
            if written.is_empty() {
                String::new()
            } else {
                format!("; the partial report is in {}", written.join(" and "))
            }
        );
        return Ok(ExitCode::FAILURE);
    }
    let all_ready = report.bundle_deployments.ready == report.bundle_deployments.expected
        && report.bundle_deployments.ready_after_update == report.bundle_deployments.expected;
    Ok(if all_ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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

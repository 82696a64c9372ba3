//! `fleet sim bench`: the production controller and agents against a simulated fleet, driven
//! through Fleet's benchmark stages (GitRepo → Bundle, Bundle → BundleDeployment,
//! BundleDeployment → Ready, then one update rolled to every cluster), with per-object
//! timestamps, API load, storage, CPU and memory in one report.
//!
//! The controller and the agents run on their own runtimes with named worker threads, so their
//! CPU time is measured apart from the simulator's (which serves their requests in-process on
//! the caller's thread, so API serving cost counts towards the caller).

pub mod html;
pub mod process;
pub mod recorder;
pub mod report;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fleet_api::{Bundle, Cluster, GitRepo};
use fleet_simulator::behaviour::Profile;
use fleet_simulator::{SimConfig, Simulator};
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;

use crate::system::{CLUSTERS_NAMESPACE, ClusterSpec, SimSystem, SystemError, SystemOptions};
use recorder::Recorder;
use report::{BenchReport, SweepPoint};

/// Prefix of the benchmark's GitRepo names.
pub const GITREPO_PREFIX: &str = "bench-";

/// Namespace of the benchmark's GitRepos and Bundles.
pub const BENCH_NAMESPACE: &str = CLUSTERS_NAMESPACE;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub clusters: usize,
    pub bundles: usize,
    pub resources_per_bundle: usize,
    pub gitrepos: usize,
    pub seed: u64,
    /// `fast`, `realistic` or `chaos`.
    pub profile: String,
    /// How long to watch the idle fleet for status writes after everything is Ready.
    pub idle: Duration,
    /// How long the raw store write rate is measured.
    pub store_measure: Duration,
    /// Give up on a stage after this long (the report then holds what was measured).
    pub stage_timeout: Duration,
    /// Stop the whole run after this long, counted from its start, with a partial report.
    pub time_limit: Option<Duration>,
    /// Cancelled to stop the run early (the command cancels it on SIGINT and SIGTERM); the
    /// report then holds what was measured.
    pub interrupt: CancellationToken,
    /// The runtimes the controller and the agents run on.
    pub runtimes: BenchRuntimes,
}

/// Where the controller and the agents run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchRuntimes {
    /// One runtime of this many worker threads for both (0: one per CPU). Their CPU time is
    /// told apart by what their tasks are charged (`fleet_api::task`).
    Shared { threads: usize },
    /// A runtime of its own for each, told apart by thread. Each runtime's workers park and
    /// wake on their own, and on a machine with fewer cores than threads the switching
    /// between them costs about a tenth of the run's CPU time.
    Separate { controller: usize, agents: usize },
}

impl BenchRuntimes {
    /// Worker threads of the shared runtime (one per CPU unless given).
    fn shared_threads(threads: usize) -> usize {
        if threads == 0 {
            std::thread::available_parallelism().map_or(2, usize::from)
        } else {
            threads
        }
    }

    /// As the report names it.
    pub fn describe(&self) -> String {
        match *self {
            BenchRuntimes::Shared { threads } => {
                format!("shared ({} threads)", Self::shared_threads(threads))
            }
            BenchRuntimes::Separate { controller, agents } => {
                format!("separate (controller {controller}, agents {agents} threads)")
            }
        }
    }
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            clusters: 100,
            bundles: 10,
            resources_per_bundle: 3,
            gitrepos: 1,
            seed: 0,
            profile: "fast".into(),
            idle: Duration::from_secs(3),
            store_measure: Duration::from_secs(2),
            stage_timeout: Duration::from_secs(1800),
            time_limit: None,
            interrupt: CancellationToken::new(),
            runtimes: BenchRuntimes::Shared { threads: 0 },
        }
    }
}

/// Largest sizes a single run accepts; far beyond what fits in memory anyway, so the message
/// comes before an allocation fails.
const MAX_CLUSTERS: usize = 1_000_000;
const MAX_BUNDLES: usize = 100_000;
const MAX_RESOURCES_PER_BUNDLE: usize = 10_000;
/// How long the fleet gets to stop once the report is made.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// How often the bench looks at the recorder while it waits for a stage to end.
const PROGRESS_POLL: Duration = Duration::from_millis(500);
/// Clusters handed to `SimSystem::add_clusters` at once (the progress bar moves per chunk).
const REGISTRATION_CHUNK: usize = 500;

/// Memory one BundleDeployment costs end to end (the BD and its copies in watch caches
/// upstream, the agent's state), measured on 500 × 50 runs, rounded up.
const BYTES_PER_BUNDLE_DEPLOYMENT: u64 = 48 * 1024;
/// Each deployed resource downstream (the object, its managed fields, the agent's cache).
const BYTES_PER_DEPLOYED_RESOURCE: u64 = 12 * 1024;
/// One simulated cluster with its agent (store, behaviour, nodes, watches, runtime tasks).
const BYTES_PER_CLUSTER: u64 = 512 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("invalid benchmark size: {0}")]
    Invalid(String),
    #[error(
        "a fleet of {clusters} clusters × {bundles} bundles × {resources} resources needs about {need_gib:.1} GiB of memory, but only {have_gib:.1} GiB is available; lower --clusters, --bundles or --resources-per-bundle"
    )]
    TooBig {
        clusters: usize,
        bundles: usize,
        resources: usize,
        need_gib: f64,
        have_gib: f64,
    },
    #[error("unknown profile {0:?} (expected fast, realistic or chaos)")]
    UnknownProfile(String),
    #[error("preparing the benchmark's git repository in {path}: {message}")]
    Git { path: PathBuf, message: String },
    #[error("starting the simulated fleet: {0}")]
    System(#[from] SystemError),
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error("simulator: {0}")]
    Simulator(#[from] fleet_simulator::SimError),
}

impl BenchConfig {
    /// Rejects sizes that make no sense or cannot fit, before any work starts.
    pub fn validate(&self) -> Result<(), BenchError> {
        let positive = [
            ("--clusters", self.clusters),
            ("--bundles", self.bundles),
            ("--resources-per-bundle", self.resources_per_bundle),
            ("--gitrepos", self.gitrepos),
        ];
        for (flag, value) in positive {
            if value == 0 {
                return Err(BenchError::Invalid(format!("{flag} must be at least 1")));
            }
        }
        for (flag, value, max) in [
            ("--clusters", self.clusters, MAX_CLUSTERS),
            ("--bundles", self.bundles, MAX_BUNDLES),
            (
                "--resources-per-bundle",
                self.resources_per_bundle,
                MAX_RESOURCES_PER_BUNDLE,
            ),
        ] {
            if value > max {
                return Err(BenchError::Invalid(format!(
                    "{flag} {value} is beyond what one machine can simulate (at most {max})"
                )));
            }
        }
        if self.gitrepos > self.bundles {
            return Err(BenchError::Invalid(format!(
                "--gitrepos {} is more than --bundles {}: every GitRepo needs at least one bundle",
                self.gitrepos, self.bundles
            )));
        }
        profile_named(&self.profile)?;
        let need = self.estimated_memory_bytes();
        if let Some(have) = process::available_memory_bytes()
            && need > have
        {
            let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
            return Err(BenchError::TooBig {
                clusters: self.clusters,
                bundles: self.bundles,
                resources: self.resources_per_bundle,
                need_gib: gib(need),
                have_gib: gib(have),
            });
        }
        Ok(())
    }

    pub fn bundle_deployments(&self) -> usize {
        self.clusters.saturating_mul(self.bundles)
    }

    /// A rough upper estimate of the run's peak memory.
    pub fn estimated_memory_bytes(&self) -> u64 {
        let bds = self.bundle_deployments() as u64;
        let resources = bds.saturating_mul(self.resources_per_bundle as u64);
        bds.saturating_mul(BYTES_PER_BUNDLE_DEPLOYMENT)
            .saturating_add(resources.saturating_mul(BYTES_PER_DEPLOYED_RESOURCE))
            .saturating_add((self.clusters as u64).saturating_mul(BYTES_PER_CLUSTER))
    }
}

fn profile_named(name: &str) -> Result<Profile, BenchError> {
    match name {
        "fast" => Ok(Profile::fast()),
        "realistic" => Ok(Profile::realistic()),
        "chaos" => Ok(Profile::chaos()),
        other => Err(BenchError::UnknownProfile(other.to_string())),
    }
}

/// Progress callbacks, so the command can draw a bar and tests can stay quiet.
pub trait Progress: Send + Sync {
    /// A new phase with `total` steps (0: unknown).
    fn phase(&self, name: &str, total: u64);
    fn set(&self, done: u64);
    fn finish(&self);
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase(&self, _: &str, _: u64) {}
    fn set(&self, _: u64) {}
    fn finish(&self) {}
}

/// Measures the simulator's store alone: server-side applies of ConfigMaps through the full
/// write path, as fast as one thread can. Every throughput in the report is also given as a
/// fraction of this.
pub fn measure_store_write_rate(duration: Duration, clusters: usize) -> Result<f64, BenchError> {
    // A short watch history: this throwaway store would otherwise hold every write of the
    // measurement and inflate the run's peak RSS.
    let sim = Simulator::new(SimConfig {
        profile: None,
        watch_history: 1024,
        ..SimConfig::default()
    });
    let clusters: Vec<_> = (1..=clusters.max(1))
        .map(|i| sim.add_cluster(&format!("store-{i}")))
        .collect::<Result<_, _>>()?;
    let start = Instant::now();
    let deadline = start + duration.max(Duration::from_millis(100));
    let mut writes: u64 = 0;
    while Instant::now() < deadline {
        for _ in 0..100 {
            let cluster = &clusters[(writes as usize) % clusters.len()];
            let name = format!("cm-{}", writes % 1000);
            let obj = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "default"}, "data": {"n": writes.to_string()}});
            let Some(info) = cluster.state().resolve("v1", "ConfigMap") else {
                return Err(BenchError::Invalid(
                    "the simulator does not serve ConfigMaps".into(),
                ));
            };
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
                .map_err(|e| BenchError::Invalid(format!("store write failed: {e}")))?;
            writes += 1;
        }
    }
    Ok(writes as f64 / start.elapsed().as_secs_f64())
}

/// A git repository with one folder per bundle, each holding `resources` ConfigMaps.
struct BenchRepo {
    dir: PathBuf,
}

impl BenchRepo {
    fn create(bundles: usize, resources: usize, seed: u64) -> Result<Self, BenchError> {
        let dir = std::env::temp_dir().join(format!(
            "fleet-sim-bench-{}-{seed}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| BenchError::Git {
            path: dir.clone(),
            message: e.to_string(),
        })?;
        let repo = BenchRepo { dir };
        repo.git(&["init", "-q", "-b", "main"])?;
        repo.git(&["config", "user.email", "bench@fleet-rs.invalid"])?;
        repo.git(&["config", "user.name", "fleet sim bench"])?;
        repo.git(&["config", "commit.gpgsign", "false"])?;
        repo.write_bundles(bundles, resources, 0)?;
        repo.commit("benchmark bundles")?;
        Ok(repo)
    }

    fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    fn folder(i: usize) -> String {
        format!("bundle-{i:05}")
    }

    fn write_bundles(
        &self,
        bundles: usize,
        resources: usize,
        revision: u32,
    ) -> Result<(), BenchError> {
        for b in 0..bundles {
            let folder = self.dir.join(Self::folder(b));
            self.io(std::fs::create_dir_all(&folder), &folder)?;
            let fleet_yaml = folder.join("fleet.yaml");
            self.io(
                std::fs::write(&fleet_yaml, format!("defaultNamespace: bench-{b:05}\n")),
                &fleet_yaml,
            )?;
            let mut manifest = String::new();
            for r in 0..resources {
                manifest.push_str(&format!(
                    "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-{r:04}\ndata:\n  bundle: \"{b}\"\n  revision: \"{revision}\"\n"
                ));
            }
            let path = folder.join("configmaps.yaml");
            self.io(std::fs::write(&path, manifest), &path)?;
        }
        Ok(())
    }

    fn io<T>(&self, result: std::io::Result<T>, path: &Path) -> Result<T, BenchError> {
        result.map_err(|e| BenchError::Git {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    fn commit(&self, message: &str) -> Result<(), BenchError> {
        self.git(&["add", "-A"])?;
        self.git(&["commit", "-q", "-m", message])
    }

    fn git(&self, args: &[&str]) -> Result<(), BenchError> {
        let out = Command::new("git")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .map_err(|e| BenchError::Git {
                path: self.dir.clone(),
                message: format!("running git {}: {e} (is git installed?)", args.join(" ")),
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(BenchError::Git {
                path: self.dir.clone(),
                message: format!(
                    "git {} failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            })
        }
    }
}

impl Drop for BenchRepo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> BenchError {
    let action = action.into();
    move |source| BenchError::Kube { action, source }
}

/// Requests by (verb, resource) of every cluster, upstream apart.
#[derive(Debug, Clone, Default)]
struct ApiCounts {
    upstream: BTreeMap<(String, String), u64>,
    /// The upstream requests of service accounts: the agents' (the controller here acts as the
    /// cluster admin).
    upstream_by_agents: BTreeMap<(String, String), u64>,
    per_downstream: BTreeMap<String, BTreeMap<(String, String), u64>>,
}

/// Upstream resources whose writes are no status: the agents' Leases and the Events.
const NOT_STATUS: [&str; 2] = ["leases", "events"];

impl ApiCounts {
    fn take(sim: &Simulator, upstream: &str) -> Self {
        let mut counts = ApiCounts::default();
        for cluster in sim.clusters() {
            if cluster.name() == upstream {
                for (key, count) in cluster.request_counts_by_requester() {
                    if count.service_accounts > 0 {
                        counts
                            .upstream_by_agents
                            .insert(key.clone(), count.service_accounts);
                    }
                    counts.upstream.insert(key, count.all);
                }
            } else {
                counts
                    .per_downstream
                    .insert(cluster.name().to_string(), cluster.request_counts());
            }
        }
        counts
    }

    /// The agents' check-ins since `earlier`: their writes of Cluster status
    /// (`status.agent.lastSeen`, every 15 minutes per agent as Fleet's), which no change
    /// causes.
    fn check_ins_since(&self, earlier: &ApiCounts) -> u64 {
        writes_since(
            &self.upstream_by_agents,
            Some(&earlier.upstream_by_agents),
            |resource| resource == "clusters",
        )
    }

    /// Upstream status writes since `earlier`: every write but Leases, Events and the agents'
    /// check-ins.
    fn status_writes_since(&self, earlier: &ApiCounts) -> u64 {
        self.upstream_writes_since(earlier, &NOT_STATUS)
            .saturating_sub(self.check_ins_since(earlier))
    }

    /// Upstream writes since `earlier` by `verb resource`.
    fn upstream_writes_by_resource(&self, earlier: &ApiCounts) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for ((verb, resource), n) in &self.upstream {
            let d = n - earlier
                .upstream
                .get(&(verb.clone(), resource.clone()))
                .copied()
                .unwrap_or(0);
            if is_write(verb) && d > 0 {
                out.insert(format!("{verb} {resource}"), d);
            }
        }
        out
    }

    /// Writes to every cluster's store (upstream and downstream) since `earlier`.
    fn all_writes_since(&self, earlier: &ApiCounts) -> u64 {
        writes_since(&self.upstream, Some(&earlier.upstream), |_| true)
            + self
                .per_downstream
                .iter()
                .map(|(cluster, counts)| {
                    writes_since(counts, earlier.per_downstream.get(cluster), |_| true)
                })
                .sum::<u64>()
    }

    /// Upstream writes since `earlier`, leaving out some resources (plural names, e.g. `leases`).
    fn upstream_writes_since(&self, earlier: &ApiCounts, leave_out: &[&str]) -> u64 {
        writes_since(&self.upstream, Some(&earlier.upstream), |resource| {
            !leave_out.contains(&resource)
        })
    }
}

/// Writes counted in `now` and not in `earlier` (None: nothing counted then), of the resources
/// `counted` accepts.
fn writes_since(
    now: &BTreeMap<(String, String), u64>,
    earlier: Option<&BTreeMap<(String, String), u64>>,
    counted: impl Fn(&str) -> bool,
) -> u64 {
    now.iter()
        .filter(|((verb, resource), _)| is_write(verb) && counted(resource))
        .map(|(k, n)| n - earlier.and_then(|e| e.get(k)).copied().unwrap_or(0))
        .sum()
}

fn is_write(verb: &str) -> bool {
    matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    )
}

/// Runs one benchmark and returns its report.
pub async fn run(config: &BenchConfig, progress: &dyn Progress) -> Result<BenchReport, BenchError> {
    config.validate()?;
    let run_started = Instant::now();
    let profile = profile_named(&config.profile)?;

    progress.phase("measuring the store's raw write rate", 0);
    let store_rate = measure_store_write_rate(config.store_measure, 1)?;

    // The controller's runtime (the shared one), and the agents' when they have their own.
    let (controller_runtime, agent_runtime) = match config.runtimes {
        BenchRuntimes::Shared { threads } => (
            named_runtime(
                process::SHARED_THREADS,
                BenchRuntimes::shared_threads(threads),
            )?,
            None,
        ),
        BenchRuntimes::Separate { controller, agents } => (
            named_runtime(process::CONTROLLER_THREADS, controller)?,
            Some(named_runtime(process::AGENT_THREADS, agents)?),
        ),
    };
    let accounts = crate::system::ComponentAccounts::default();
    let lease_runtime = named_runtime(process::AGENT_LEASE_THREADS, 1)?;

    let mut controller = fleet_controller::ControllerConfig {
        leader_election: false,
        jitter_seed: Some(config.seed),
        default_polling_interval: Duration::from_secs(1),
        ..fleet_controller::ControllerConfig::default()
    };
    controller.git_cache_dir = std::env::temp_dir().join(format!(
        "fleet-sim-bench-cache-{}-{}",
        std::process::id(),
        config.seed
    ));
    let lease = (
        controller.agent_lease_duration,
        controller.agent_renew_deadline,
        controller.agent_retry_period,
    );
    let options = SystemOptions {
        seed: config.seed,
        profile: Some(profile),
        controller,
        agent_drift_delay: Duration::from_secs(5),
        agent_checkin_interval: Duration::from_secs(15 * 60),
        agent_workers: 4,
        cluster_namespace_timeout: config.stage_timeout,
        controller_runtime: Some(controller_runtime.handle().clone()),
        agent_runtime: Some(
            agent_runtime
                .as_ref()
                .unwrap_or(&controller_runtime)
                .handle()
                .clone(),
        ),
        accounts: Some(accounts),
        // Renewals queued behind 10,000 agents' work came later than the renew deadline.
        agent_lease_runtime: Some(lease_runtime.handle().clone()),
        // Fleet's agent leader election (30 s lease, renewed within 25 s), not the simulator's
        // quick test settings: hundreds of agents share the bench's cores, and under that
        // load a renewal can wait longer than 8 s for a thread, which a real agent on its own
        // cluster never does. Lost leases then restart agents in the middle of the rollout.
        agent_lease_duration: lease.0,
        agent_renew_deadline: lease.1,
        agent_retry_period: lease.2,
    };
    let limits = RunLimits {
        stage_timeout: config.stage_timeout,
        time_limit: config.time_limit.map(|limit| (run_started + limit, limit)),
        interrupt: &config.interrupt,
        run_started,
    };
    let result = run_on_system(config, options, store_rate, progress, &limits).await;
    // The runtimes' threads are stopped without waiting for the tasks left on them.
    controller_runtime.shutdown_background();
    if let Some(agent_runtime) = agent_runtime {
        agent_runtime.shutdown_background();
    }
    lease_runtime.shutdown_background();
    result
}

fn named_runtime(prefix: &str, threads: usize) -> Result<tokio::runtime::Runtime, BenchError> {
    let name = prefix.to_string();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name_fn(move || {
            let prefix = &name;
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            format!("{prefix}-{n}")
        })
        .enable_all()
        .build()
        .map_err(|e| BenchError::Invalid(format!("starting a runtime for {prefix}: {e}")))
}

async fn run_on_system(
    config: &BenchConfig,
    options: SystemOptions,
    store_rate: f64,
    progress: &dyn Progress,
    limits: &RunLimits<'_>,
) -> Result<BenchReport, BenchError> {
    let repo = BenchRepo::create(config.bundles, config.resources_per_bundle, config.seed)?;
    let system = SimSystem::start(options).await?;
    let outcome = drive(config, &system, &repo, store_rate, progress, limits).await;
    // The report is made: a controller or agent slow to stop (one stopped in the middle of
    // starting, when a run ends early) must not hold it back.
    if tokio::time::timeout(SHUTDOWN_GRACE, system.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            seconds = SHUTDOWN_GRACE.as_secs(),
            "the simulated fleet did not stop in time; leaving it to the runtime's shutdown"
        );
    }
    outcome
}

/// What ends a run before its last stage: a stage's timeout, the run's time limit, or an
/// interrupt (SIGINT, SIGTERM). The report then holds what was measured up to that point.
struct RunLimits<'a> {
    stage_timeout: Duration,
    time_limit: Option<(Instant, Duration)>,
    interrupt: &'a CancellationToken,
    run_started: Instant,
}

impl RunLimits<'_> {
    /// Why the stage that began at `stage_started` has to stop now, if it does.
    fn reason_to_stop(&self, stage_started: Instant) -> Option<String> {
        if self.interrupt.is_cancelled() {
            return Some("interrupted (SIGINT or SIGTERM)".into());
        }
        if let Some((deadline, limit)) = self.time_limit
            && Instant::now() >= deadline
        {
            return Some(format!(
                "the run's --time-limit of {}s was reached",
                limit.as_secs()
            ));
        }
        if stage_started.elapsed() >= self.stage_timeout {
            return Some(format!(
                "the stage did not finish within --stage-timeout {}s",
                self.stage_timeout.as_secs()
            ));
        }
        None
    }

    fn incomplete(
        &self,
        stage: &str,
        reason: String,
        done: usize,
        expected: usize,
        what: &str,
    ) -> report::Incomplete {
        report::Incomplete {
            stage: stage.to_string(),
            reason,
            done,
            expected,
            what: what.to_string(),
            after_seconds: self.run_started.elapsed().as_secs_f64(),
        }
    }
}

async fn drive(
    config: &BenchConfig,
    system: &SimSystem,
    repo: &BenchRepo,
    store_rate: f64,
    progress: &dyn Progress,
    limits: &RunLimits<'_>,
) -> Result<BenchReport, BenchError> {
    let specs: Vec<ClusterSpec> = (1..=config.clusters)
        .map(|i| ClusterSpec::new(&format!("sim-{i}")).label("bench", "true"))
        .collect();
    progress.phase(
        "adding clusters and starting their agents",
        specs.len() as u64,
    );
    let sim = system.simulator();
    // Large chunks, so that the registration window of `add_clusters` stays full.
    let registration_started = Instant::now();
    let mut registered = 0;
    let stopped_registering = |reason: String, registered: usize| {
        let incomplete = limits.incomplete(
            "registration",
            reason,
            registered,
            specs.len(),
            "clusters registered",
        );
        let measured = Measured {
            registration_seconds: registration_started.elapsed().as_secs_f64(),
            before: ApiCounts::default(),
            after: ApiCounts::take(sim, crate::system::UPSTREAM),
            ..Measured::default()
        };
        assemble(config, system, store_rate, measured, Some(incomplete))
    };
    for chunk in specs.chunks(REGISTRATION_CHUNK) {
        if let Some(reason) = limits.reason_to_stop(registration_started) {
            return Ok(stopped_registering(reason, registered));
        }
        let add = system.add_clusters(chunk);
        tokio::pin!(add);
        loop {
            tokio::select! {
                added = &mut add => {
                    added?;
                    break;
                }
                () = tokio::time::sleep(Duration::from_millis(100)) => {
                    if let Some(reason) = limits.reason_to_stop(registration_started) {
                        return Ok(stopped_registering(reason, registered));
                    }
                }
            }
        }
        registered += chunk.len();
        progress.set(registered as u64);
    }
    let registration_seconds = registration_started.elapsed().as_secs_f64();

    let start = Instant::now();
    let recorder = Recorder::new(start);
    let stop = CancellationToken::new();
    // On a shared runtime the recorder runs beside the fleet, charged to neither component;
    // beside separate runtimes it keeps the driver's, so their threads stay theirs alone.
    let (recorder_runtime, recorder_account) = match config.runtimes {
        BenchRuntimes::Shared { .. } => (
            system.controller_runtime(),
            system.accounts().map(|a| &a.driver),
        ),
        BenchRuntimes::Separate { .. } => (None, None),
    };
    recorder.spawn(
        crate::system::built_on(recorder_runtime, || system.upstream_client()),
        stop.clone(),
        recorder_runtime,
        recorder_account,
    );
    let before = ApiCounts::take(sim, crate::system::UPSTREAM);

    // Stage 1-3: GitRepos → Bundles → BundleDeployments → Ready.
    let gitrepos_created = start.elapsed();
    create_gitrepos(config, system, repo).await?;
    let expected = config.bundle_deployments();
    progress.phase("rolling out (BundleDeployments Ready)", expected as u64);
    let mut incomplete = wait_for(
        limits,
        progress,
        "bundledeployment_to_ready",
        "Ready BundleDeployments",
        expected,
        || recorder.progress().2,
    )
    .await;
    let after_rollout = ApiCounts::take(sim, crate::system::UPSTREAM);

    // Idle: once the status has caught up with the last BundleDeployment (Bundle, GitRepo
    // and Cluster summaries), nothing changes, so nothing but Leases, Events and the agents'
    // periodic check-ins should be written.
    let mut idle = None;
    if incomplete.is_none() {
        progress.phase("letting the status settle, then watching the idle fleet", 0);
        let settled = settle(sim, system.upstream_client(), expected, config.idle).await;
        let idle_start = Instant::now();
        tokio::time::sleep(config.idle).await;
        let after_idle = ApiCounts::take(sim, crate::system::UPSTREAM);
        idle = Some((settled, after_idle, idle_start.elapsed().as_secs_f64()));
    }

    // Stage 4: one change rolled to every cluster.
    let initial_ids: HashMap<String, String> = recorder.snapshot(|o| {
        o.bundle_deployments
            .iter()
            .map(|(k, bd)| (k.clone(), bd.deployment_id.clone()))
            .collect()
    });
    let mut update_started = None;
    if incomplete.is_none() {
        repo.write_bundles(config.bundles, config.resources_per_bundle, 1)?;
        let started = start.elapsed();
        update_started = Some(started);
        repo.commit("benchmark update")?;
        progress.phase("rolling out an update", expected as u64);
        let updated = |o: &recorder::Observations| {
            o.bundle_deployments
                .iter()
                .filter(|(k, bd)| {
                    initial_ids.get(*k) != Some(&bd.deployment_id)
                        && bd.ready.contains_key(&bd.deployment_id)
                })
                .count()
        };
        incomplete = wait_for(
            limits,
            progress,
            "update_to_ready",
            "BundleDeployments Ready after the update",
            expected,
            || recorder.snapshot(updated),
        )
        .await;
    }
    // The writes of an update include the statuses catching up with it (Clusters write
    // theirs within a shared budget, some after the last deployment is Ready).
    let after_update = if update_started.is_some() && incomplete.is_none() {
        progress.phase("letting the status settle after the update", 0);
        settle(sim, system.upstream_client(), expected, Duration::ZERO).await
    } else {
        ApiCounts::take(sim, crate::system::UPSTREAM)
    };
    stop.cancel();
    progress.finish();

    let rollout_writes = after_rollout.upstream_writes_since(&before, &NOT_STATUS);
    let rollout_bd_writes = bundle_deployment_writes(&after_rollout, &before);
    let RolloutTimes {
        mut stages,
        mut to_update,
        created,
        ready,
        ready_after_update,
        rollout_span,
    } = rollout_stages(
        &recorder,
        &initial_ids,
        gitrepos_created,
        update_started,
        (rollout_writes, rollout_bd_writes),
        store_rate,
    );
    let mut update_writes = 0;
    let mut idle_writes = 0;
    let mut idle_seconds = 0.0;
    let mut idle_by_resource = BTreeMap::new();
    let mut update_by_resource = BTreeMap::new();
    let mut check_ins = (0, 0);
    if let (Some(update_started), Some((settled, after_idle, idle_secs))) = (update_started, &idle)
    {
        idle_writes = after_idle.status_writes_since(settled);
        idle_seconds = *idle_secs;
        idle_by_resource = after_idle.upstream_writes_by_resource(settled);
        update_by_resource = after_update.upstream_writes_by_resource(after_idle);
        check_ins = (
            after_idle.check_ins_since(settled),
            after_update.check_ins_since(after_idle),
        );
        // Writes per change are only meaningful once every BundleDeployment has changed.
        if incomplete.is_none() {
            update_writes = after_update.status_writes_since(after_idle);
        }
        stages.extend(update_stages(
            &recorder,
            &initial_ids,
            update_started,
            &mut to_update,
            update_writes,
            store_rate,
        ));
    }
    let measured = Measured {
        registration_seconds,
        stages,
        rollout_writes: report::RolloutWrites::new(
            rollout_bd_writes,
            after_rollout.all_writes_since(&before),
            rollout_span,
            store_rate,
        ),
        created,
        ready,
        ready_after_update,
        before,
        after: after_update,
        update_writes,
        idle_writes,
        idle_seconds,
        idle_by_resource,
        update_by_resource,
        check_ins,
    };
    Ok(assemble(config, system, store_rate, measured, incomplete))
}

/// What the recorder's timestamps say about the first rollout (and which deployments the
/// update reached).
struct RolloutTimes {
    /// Stages 1-3: GitRepo → Bundle → BundleDeployment → Ready.
    stages: Vec<report::Stage>,
    /// Per updated BundleDeployment, from the update's commit until Ready at it.
    to_update: Vec<Duration>,
    /// BundleDeployments seen.
    created: usize,
    /// BundleDeployments Ready at their first deployment.
    ready: usize,
    /// BundleDeployments Ready at the update.
    ready_after_update: usize,
    /// From the first BundleDeployment created until the last one Ready.
    rollout_span: Duration,
}

/// The first rollout's stages from the recorder's timestamps, relative to the GitRepos'
/// creation; `writes` are the rollout's upstream writes (all, and of BundleDeployments).
fn rollout_stages(
    recorder: &Recorder,
    initial_ids: &HashMap<String, String>,
    gitrepos_created: Duration,
    update_started: Option<Duration>,
    writes: (u64, u64),
    store_rate: f64,
) -> RolloutTimes {
    let (rollout_writes, rollout_bd_writes) = writes;
    let (mut to_bundle, mut to_bd, mut to_ready, to_update, ready, ready_after_update, created) =
        recorder.snapshot(|o| {
            let to_bundle: Vec<Duration> = o
                .bundles
                .values()
                .map(|t| t.saturating_sub(gitrepos_created))
                .collect();
            let mut to_bd = Vec::new();
            let mut to_ready = Vec::new();
            let mut to_update = Vec::new();
            for (key, bd) in &o.bundle_deployments {
                let Some(created) = bd.created else { continue };
                if let Some(bundle_seen) = o.bundles.get(&bd.bundle) {
                    to_bd.push(created.saturating_sub(*bundle_seen));
                }
                if let Some(first) = initial_ids.get(key).and_then(|id| bd.ready.get(id)) {
                    to_ready.push(first.saturating_sub(created));
                }
                if let Some(update_started) = update_started
                    && initial_ids.get(key) != Some(&bd.deployment_id)
                    && let Some(t) = bd.ready.get(&bd.deployment_id)
                {
                    to_update.push(t.saturating_sub(update_started));
                }
            }
            let ready = to_ready.len();
            let ready_after_update = to_update.len();
            (
                to_bundle,
                to_bd,
                to_ready,
                to_update,
                ready,
                ready_after_update,
                o.bundle_deployments.len(),
            )
        });
    let (bundles_done, bds_first, bds_done, ready_done) = recorder.snapshot(|o| {
        let bundles_done = o.bundles.values().max().copied().unwrap_or_default();
        let bds_first = o
            .bundle_deployments
            .values()
            .filter_map(|bd| bd.created)
            .min()
            .unwrap_or_default();
        let bds_done = o
            .bundle_deployments
            .values()
            .filter_map(|bd| bd.created)
            .max()
            .unwrap_or_default();
        let ready_done = o
            .bundle_deployments
            .iter()
            .filter_map(|(k, bd)| initial_ids.get(k).and_then(|id| bd.ready.get(id)))
            .max()
            .copied()
            .unwrap_or_default();
        (bundles_done, bds_first, bds_done, ready_done)
    });
    let stages = vec![
        report::stage(
            "gitrepo_to_bundle",
            "from GitRepo creation until each Bundle exists",
            &mut to_bundle,
            bundles_done.saturating_sub(gitrepos_created),
            rollout_writes,
            store_rate,
        ),
        report::stage(
            "bundle_to_bundledeployment",
            "from each Bundle until each of its BundleDeployments exists (targeting + rollout)",
            &mut to_bd,
            bds_done.saturating_sub(gitrepos_created),
            rollout_bd_writes,
            store_rate,
        ),
        report::stage(
            "bundledeployment_to_ready",
            "from each BundleDeployment until the agent reports it Ready",
            &mut to_ready,
            ready_done.saturating_sub(gitrepos_created),
            rollout_writes,
            store_rate,
        ),
    ];
    RolloutTimes {
        stages,
        to_update,
        created,
        ready,
        ready_after_update,
        rollout_span: ready_done.saturating_sub(bds_first),
    }
}

/// Upstream writes of BundleDeployments between two counts.
fn bundle_deployment_writes(later: &ApiCounts, earlier: &ApiCounts) -> u64 {
    writes_since(&later.upstream, Some(&earlier.upstream), |resource| {
        resource == "bundledeployments"
    })
}

/// The update's stages: from the commit until every BundleDeployment is Ready at it, and that
/// split into git poll + build, targeting + rollout, and the agents.
fn update_stages(
    recorder: &Recorder,
    initial_ids: &HashMap<String, String>,
    update_started: Duration,
    to_update: &mut [Duration],
    update_writes: u64,
    store_rate: f64,
) -> Vec<report::Stage> {
    let update_total = recorder_end(to_update).unwrap_or_default();
    let (mut upd_bundle, mut upd_bd, mut upd_ready) = recorder.snapshot(|o| {
        let mut updated_at: HashMap<&str, Duration> = HashMap::new();
        for (bundle, generations) in &o.bundle_generations {
            if let Some(t) = generations.values().copied().find(|t| *t >= update_started) {
                updated_at.insert(bundle.as_str(), t);
            }
        }
        let upd_bundle: Vec<Duration> = updated_at
            .values()
            .map(|t| t.saturating_sub(update_started))
            .collect();
        let mut upd_bd = Vec::new();
        let mut upd_ready = Vec::new();
        for (key, bd) in &o.bundle_deployments {
            if initial_ids.get(key) == Some(&bd.deployment_id) {
                continue;
            }
            let Some(deployed) = bd.deployed.get(&bd.deployment_id) else {
                continue;
            };
            if let Some(bundle_updated) = updated_at.get(bd.bundle.as_str()) {
                upd_bd.push(deployed.saturating_sub(*bundle_updated));
            }
            if let Some(ready) = bd.ready.get(&bd.deployment_id) {
                upd_ready.push(ready.saturating_sub(*deployed));
            }
        }
        (upd_bundle, upd_bd, upd_ready)
    });
    let upd_bundle_total = recorder_end(&upd_bundle).unwrap_or_default();
    let upd_bd_total = recorder_end(&upd_bd).unwrap_or_default();
    let upd_ready_total = recorder_end(&upd_ready).unwrap_or_default();
    vec![
        report::stage(
            "update_to_ready",
            "from the commit of one change until every BundleDeployment is Ready at it",
            to_update,
            update_total,
            update_writes,
            store_rate,
        ),
        report::stage(
            "update_commit_to_bundle",
            "update: from the commit until each Bundle holds it (git poll and build)",
            &mut upd_bundle,
            upd_bundle_total,
            0,
            store_rate,
        ),
        report::stage(
            "update_bundle_to_bundledeployment",
            "update: from each Bundle's change until each BundleDeployment's spec has it (targeting + rollout)",
            &mut upd_bd,
            upd_bd_total,
            0,
            store_rate,
        ),
        report::stage(
            "update_bundledeployment_to_ready",
            "update: from each BundleDeployment's change until the agent reports it Ready",
            &mut upd_ready,
            upd_ready_total,
            0,
            store_rate,
        ),
    ]
}

/// What one run measured, up to where it got.
#[derive(Default)]
struct Measured {
    registration_seconds: f64,
    stages: Vec<report::Stage>,
    rollout_writes: report::RolloutWrites,
    created: usize,
    ready: usize,
    ready_after_update: usize,
    /// Request counts when the stages began and when the run ended.
    before: ApiCounts,
    after: ApiCounts,
    update_writes: u64,
    idle_writes: u64,
    idle_seconds: f64,
    idle_by_resource: BTreeMap<String, u64>,
    update_by_resource: BTreeMap<String, u64>,
    /// The agents' check-ins while idle and during the update (left out of both counts).
    check_ins: (u64, u64),
}

/// The report of a run, complete or not: what was measured, with the fleet's storage, CPU,
/// memory and workers as they are now.
fn assemble(
    config: &BenchConfig,
    system: &SimSystem,
    store_rate: f64,
    m: Measured,
    incomplete: Option<report::Incomplete>,
) -> BenchReport {
    let expected = config.bundle_deployments();
    let mut api = api_load(
        &m.before,
        &m.after,
        m.update_writes,
        expected,
        m.idle_writes,
        m.idle_seconds,
    );
    api.idle_writes_by_resource = m.idle_by_resource;
    api.update_writes_by_resource = m.update_by_resource;
    (api.idle_agent_check_ins, api.update_agent_check_ins) = m.check_ins;
    let storage = storage(system.simulator());
    let mut warnings = Vec::new();
    if let Some(l) = &storage.largest_object {
        if l.bytes > report::ETCD_OBJECT_LIMIT {
            warnings.push(format!(
                "{} {} is {} bytes, over etcd's 1.5 MiB object limit",
                l.kind, l.name, l.bytes
            ));
        } else if l.kind.starts_with("bundles.") && l.bytes > report::BUNDLE_WARN_BYTES {
            warnings.push(format!(
                "Bundle {} is {} bytes; bundles over 1 MB risk etcd's limit",
                l.name, l.bytes
            ));
        }
    }
    let workers = worker_metrics(system);
    let mut report = BenchReport {
        fleet_version: env!("CARGO_PKG_VERSION").to_string(),
        config: report::ReportConfig {
            clusters: config.clusters,
            bundles: config.bundles,
            resources_per_bundle: config.resources_per_bundle,
            gitrepos: config.gitrepos,
            seed: config.seed,
            profile: config.profile.clone(),
            runtimes: config.runtimes.describe(),
        },
        machine: report::Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_available_bytes: process::available_memory_bytes(),
        },
        store_writes_per_second: store_rate,
        registration_seconds: m.registration_seconds,
        incomplete,
        stages: m.stages,
        rollout_writes: m.rollout_writes,
        bundle_deployments: report::BdCounts {
            expected,
            created: m.created,
            ready: m.ready,
            ready_after_update: m.ready_after_update,
        },
        api,
        storage,
        cpu_seconds: process::cpu_seconds_by_component(
            &system.accounts().cloned().unwrap_or_default(),
        ),
        peak_rss_bytes: process::peak_rss_bytes(),
        workers,
        targets: Vec::new(),
        bottleneck: None,
        warnings,
        sweep: Vec::new(),
        growth_exponent: None,
    };
    report.targets = report::check_targets(&report);
    report.bottleneck = report::bottleneck(&report);
    report
}

fn recorder_end(v: &[Duration]) -> Option<Duration> {
    v.iter().max().copied()
}

async fn create_gitrepos(
    config: &BenchConfig,
    system: &SimSystem,
    repo: &BenchRepo,
) -> Result<(), BenchError> {
    let api: Api<GitRepo> = Api::namespaced(system.upstream_client(), BENCH_NAMESPACE);
    for g in 0..config.gitrepos {
        let paths: Vec<String> = (0..config.bundles)
            .filter(|b| b % config.gitrepos == g)
            .map(BenchRepo::folder)
            .collect();
        let gitrepo: GitRepo = serde_json::from_value(serde_json::json!({
            "apiVersion": fleet_api::consts::API_VERSION,
            "kind": "GitRepo",
            "metadata": {"name": format!("{GITREPO_PREFIX}{g}"), "namespace": BENCH_NAMESPACE},
            "spec": {
                "repo": repo.url(),
                "branch": "main",
                "paths": paths,
                "pollingInterval": "1s",
                "targets": [{"clusterSelector": {"matchLabels": {"bench": "true"}}}],
            }
        }))
        .map_err(|e| BenchError::Invalid(format!("building GitRepo bench-{g}: {e}")))?;
        api.create(&PostParams::default(), &gitrepo)
            .await
            .map_err(kube_err(format!(
                "creating GitRepo {BENCH_NAMESPACE}/bench-{g}"
            )))?;
    }
    Ok(())
}

/// Waits until `done` reaches `expected`; what stopped the stage otherwise.
async fn wait_for(
    limits: &RunLimits<'_>,
    progress: &dyn Progress,
    stage: &'static str,
    what: &'static str,
    expected: usize,
    mut done: impl FnMut() -> usize,
) -> Option<report::Incomplete> {
    let started = Instant::now();
    loop {
        let n = done();
        progress.set(n as u64);
        if n >= expected {
            return None;
        }
        if let Some(reason) = limits.reason_to_stop(started) {
            return Some(limits.incomplete(stage, reason, n, expected, what));
        }
        // The stages' times come from the recorder's timestamps, not from when this loop
        // notices the end, so it need not look often.
        tokio::time::sleep(PROGRESS_POLL).await;
    }
}

fn api_load(
    before: &ApiCounts,
    after: &ApiCounts,
    update_writes: u64,
    bundle_deployments: usize,
    idle_writes: u64,
    idle_seconds: f64,
) -> report::ApiLoad {
    let mut load = report::ApiLoad::default();
    for ((verb, resource), n) in &after.upstream {
        let d = n - before
            .upstream
            .get(&(verb.clone(), resource.clone()))
            .copied()
            .unwrap_or(0);
        if d == 0 {
            continue;
        }
        *load.upstream_by_verb.entry(verb.clone()).or_insert(0) += d;
        *load
            .upstream_by_resource
            .entry(resource.clone())
            .or_insert(0) += d;
    }
    let mut per_cluster = Vec::new();
    for (cluster, counts) in &after.per_downstream {
        let earlier = before.per_downstream.get(cluster);
        let mut total = 0;
        for ((verb, resource), n) in counts {
            let d = n - earlier
                .and_then(|e| e.get(&(verb.clone(), resource.clone())))
                .copied()
                .unwrap_or(0);
            total += d;
            *load.downstream_by_verb.entry(verb.clone()).or_insert(0) += d;
        }
        per_cluster.push(total);
    }
    load.downstream_per_cluster_mean = if per_cluster.is_empty() {
        0.0
    } else {
        per_cluster.iter().sum::<u64>() as f64 / per_cluster.len() as f64
    };
    load.downstream_per_cluster_max = per_cluster.iter().copied().max().unwrap_or(0);
    load.writes_per_bundledeployment_per_change = if bundle_deployments > 0 {
        update_writes as f64 / bundle_deployments as f64
    } else {
        0.0
    };
    load.idle_status_writes = idle_writes;
    load.idle_seconds = idle_seconds;
    load
}

fn storage(sim: &Simulator) -> report::Storage {
    let mut out = report::Storage {
        etcd_object_limit: report::ETCD_OBJECT_LIMIT,
        request_limit: report::REQUEST_LIMIT,
        ..report::Storage::default()
    };
    for cluster in sim.clusters() {
        let sizes = cluster.storage_sizes();
        if cluster.name() == crate::system::UPSTREAM {
            out.upstream_objects = sizes.objects;
            out.upstream_bytes = sizes.bytes;
            if let Some((resource, name, bytes)) = sizes.largest {
                out.largest_object = Some(report::LargestObject {
                    kind: resource,
                    name,
                    bytes,
                });
            }
        } else {
            out.downstream_bytes += sizes.bytes;
        }
    }
    out
}

/// Worker counts, queue depths, reconcile counts and reconcile time from the controller's and
/// the agents' Prometheus metrics.
fn worker_metrics(system: &SimSystem) -> BTreeMap<String, f64> {
    let registry = system.registry();
    let registry = match registry.lock() {
        Ok(r) => r,
        Err(p) => p.into_inner(),
    };
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
        return BTreeMap::new();
    }
    let mut out: BTreeMap<String, f64> = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((name_labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = name_labels.split('{').next().unwrap_or(name_labels);
        let is_gauge = name.contains("workers") || name.contains("queue");
        let is_work =
            name.ends_with("reconciles_total") || name.ends_with("reconcile_duration_seconds_sum");
        if !(is_gauge || is_work) {
            continue;
        }
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        // Agents' series carry a cluster label: gauges keep the maximum over clusters,
        // counters the sum.
        let key = strip_label(name_labels, "cluster");
        match out.get_mut(&key) {
            Some(entry) if is_gauge => *entry = entry.max(value),
            Some(entry) => *entry += value,
            None => {
                out.insert(key, value);
            }
        }
    }
    out
}

/// A series name without one of its labels (`name{a="x",cluster="y"}` → `name{a="x"}`).
fn strip_label(series: &str, label: &str) -> String {
    let Some((name, rest)) = series.split_once('{') else {
        return series.to_string();
    };
    let labels: Vec<&str> = rest
        .trim_end_matches('}')
        .split(',')
        .filter(|l| !l.starts_with(&format!("{label}=")) && !l.is_empty())
        .collect();
    if labels.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", labels.join(","))
    }
}

/// Runs the benchmark once per cluster count and returns the largest run's report with the
/// scaling curve and the fitted growth exponent.
pub async fn run_sweep(
    config: &BenchConfig,
    sizes: &[usize],
    progress: &dyn Progress,
) -> Result<BenchReport, BenchError> {
    let mut sorted: Vec<usize> = sizes.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    for size in &sorted {
        BenchConfig {
            clusters: *size,
            ..config.clone()
        }
        .validate()?;
    }
    let mut points = Vec::new();
    let mut last = None;
    let sweep_started = Instant::now();
    for size in sorted {
        // The time limit is the whole sweep's: each run gets what is left of it.
        let time_limit = config
            .time_limit
            .map(|limit| limit.saturating_sub(sweep_started.elapsed()));
        let run_config = BenchConfig {
            clusters: size,
            time_limit,
            ..config.clone()
        };
        let report = run(&run_config, progress).await?;
        if report.incomplete.is_some() {
            // The points so far are the curve; a run that did not finish is not a point.
            last = Some(report);
            break;
        }
        let total = report
            .stages
            .iter()
            .filter(|s| !s.name.starts_with("update_"))
            .map(|s| s.total_seconds)
            .fold(0.0, f64::max);
        let bds = report.bundle_deployments.expected;
        points.push(SweepPoint {
            clusters: size,
            bundle_deployments: bds,
            total_seconds: total,
            ms_per_bundle_deployment: if bds > 0 {
                total * 1000.0 / bds as f64
            } else {
                0.0
            },
        });
        last = Some(report);
    }
    let Some(mut report) = last else {
        return Err(BenchError::Invalid(
            "--sweep needs at least one size".into(),
        ));
    };
    report.growth_exponent = report::log_log_slope(
        &points
            .iter()
            .map(|p| (p.clusters as f64, p.ms_per_bundle_deployment))
            .collect::<Vec<_>>(),
    );
    report.sweep = points;
    report.targets = report::check_targets(&report);
    report.bottleneck = report::bottleneck(&report);
    Ok(report)
}

/// Waits until the GitRepos' and Bundles' statuses count every BundleDeployment Ready, every
/// Cluster's status has all its deployments Ready, and the upstream store has then seen no
/// writes but Leases, Events and agent check-ins for three seconds, at least `minimum` and at
/// most five minutes; returns the counts then. Statuses are spaced by the controller, a costly
/// one (a GitRepo over thousands of deployments) by ten times its cost, so a quiet spell alone
/// can end before the last, still pending, status write: that write is a change being caught
/// up, not a write while nothing changes.
async fn settle(
    sim: &Simulator,
    client: kube::Client,
    expected_ready: usize,
    minimum: Duration,
) -> ApiCounts {
    const QUIET: Duration = Duration::from_secs(3);
    const LONGEST: Duration = Duration::from_secs(300);
    const STEP: Duration = Duration::from_millis(250);
    const CLUSTER_CHECK: Duration = Duration::from_secs(2);
    let gitrepos: Api<GitRepo> = Api::namespaced(client.clone(), BENCH_NAMESPACE);
    let bundles: Api<Bundle> = Api::namespaced(client.clone(), BENCH_NAMESPACE);
    let clusters: Api<Cluster> = Api::namespaced(client, crate::system::CLUSTERS_NAMESPACE);
    let start = Instant::now();
    let mut last = ApiCounts::take(sim, crate::system::UPSTREAM);
    let mut quiet_since = start;
    let mut caught_up = false;
    let mut clusters_checked: Option<Instant> = None;
    loop {
        tokio::time::sleep(STEP).await;
        let now = ApiCounts::take(sim, crate::system::UPSTREAM);
        if now.status_writes_since(&last) > 0 {
            quiet_since = Instant::now();
        }
        last = now;
        if !caught_up {
            // Bundles write their status a few seconds apart when they are costly to plan,
            // and Clusters within a write budget they share: theirs and the GitRepos' must
            // all have caught up.
            let statuses_ready = gitrepos_ready(&gitrepos).await == Some(expected_ready)
                && bundles_ready(&bundles).await == Some(expected_ready);
            // Listing 10,000 Clusters is work of its own: every two seconds at most.
            if statuses_ready
                && clusters_checked.is_none_or(|at: Instant| at.elapsed() >= CLUSTER_CHECK)
            {
                clusters_checked = Some(Instant::now());
                caught_up = clusters_ready(&clusters).await;
            }
            if caught_up {
                quiet_since = Instant::now();
            }
        }
        let waited = start.elapsed();
        if (caught_up && waited >= minimum && quiet_since.elapsed() >= QUIET) || waited >= LONGEST {
            return last;
        }
    }
}

/// The BundleDeployments the benchmark's Bundles report Ready in their status, summed (None
/// when they cannot be listed).
async fn bundles_ready(bundles: &Api<Bundle>) -> Option<usize> {
    let listed = bundles.list(&Default::default()).await.ok()?;
    let ready: i64 = listed
        .items
        .iter()
        .filter(|b| recorder::is_benchmark_object(&b.metadata))
        .filter_map(|b| b.status.as_ref())
        .map(|s| s.summary.ready)
        .sum();
    usize::try_from(ready).ok()
}

/// Whether every Cluster's status reports all its BundleDeployments Ready (false when they
/// cannot be listed).
async fn clusters_ready(clusters: &Api<Cluster>) -> bool {
    let Ok(listed) = clusters.list(&Default::default()).await else {
        return false;
    };
    listed.items.iter().all(|c| {
        c.status
            .as_ref()
            .is_some_and(|s| s.summary.ready == s.summary.desired_ready)
    })
}

/// The BundleDeployments the benchmark's GitRepos report Ready in their status, summed (None
/// when they cannot be listed).
async fn gitrepos_ready(gitrepos: &Api<GitRepo>) -> Option<usize> {
    let listed = gitrepos.list(&Default::default()).await.ok()?;
    let ready: i64 = listed
        .items
        .iter()
        .filter_map(|g| g.status.as_ref())
        .map(|s| s.base.summary.ready)
        .sum();
    usize::try_from(ready).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_sizes_are_refused_naming_the_flag() {
        let err = BenchConfig {
            clusters: 0,
            ..BenchConfig::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid benchmark size: --clusters must be at least 1"
        );
    }

    #[test]
    fn absurd_sizes_are_refused_before_any_work() {
        let err = BenchConfig {
            clusters: 900_000,
            bundles: 50_000,
            ..BenchConfig::default()
        }
        .validate()
        .unwrap_err();
        assert!(
            err.to_string().contains("GiB of memory"),
            "unexpected error: {err}"
        );
    }

    #[test]
    fn more_gitrepos_than_bundles_is_refused() {
        let err = BenchConfig {
            bundles: 2,
            gitrepos: 3,
            ..BenchConfig::default()
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("--gitrepos 3"), "{err}");
    }

    #[test]
    fn unknown_profiles_are_named() {
        let err = BenchConfig {
            profile: "slow".into(),
            ..BenchConfig::default()
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("\"slow\""), "{err}");
    }

    #[test]
    fn the_cluster_label_is_dropped_from_series_names() {
        assert_eq!(
            strip_label("fleet_workers{kind=\"bd\",cluster=\"sim-1\"}", "cluster"),
            "fleet_workers{kind=\"bd\"}"
        );
        assert_eq!(
            strip_label("fleet_workers{cluster=\"sim-1\"}", "cluster"),
            "fleet_workers"
        );
    }

    #[test]
    fn agent_check_ins_are_no_status_writes() {
        let key = |verb: &str, resource: &str| (verb.to_string(), resource.to_string());
        let earlier = ApiCounts {
            upstream: BTreeMap::from([
                (key("patch", "clusters"), 10),
                (key("update", "leases"), 5),
            ]),
            upstream_by_agents: BTreeMap::from([(key("patch", "clusters"), 4)]),
            ..ApiCounts::default()
        };
        let now = ApiCounts {
            upstream: BTreeMap::from([
                // 3 agent check-ins and 2 controller Cluster status writes.
                (key("patch", "clusters"), 15),
                (key("update", "leases"), 9),
                (key("get", "clusters"), 7),
                // An agent's BundleDeployment status write is a status write.
                (key("patch", "bundledeployments"), 1),
            ]),
            upstream_by_agents: BTreeMap::from([
                (key("patch", "clusters"), 7),
                (key("patch", "bundledeployments"), 1),
                (key("get", "clusters"), 7),
            ]),
            ..ApiCounts::default()
        };
        assert_eq!(now.check_ins_since(&earlier), 3);
        assert_eq!(now.status_writes_since(&earlier), 3);
        assert_eq!(now.upstream_writes_since(&earlier, &NOT_STATUS), 6);
    }
}

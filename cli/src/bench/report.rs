//! The benchmark report: what `--report out.json` writes and what the HTML page and the
//! terminal summary are drawn from.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// The etcd object size limit (`--max-request-bytes` default of etcd, 1.5 MiB).
pub const ETCD_OBJECT_LIMIT: u64 = 1_572_864;
/// kube-apiserver's request body limit (3 MiB).
pub const REQUEST_LIMIT: u64 = 3 * 1024 * 1024;
/// `fleet monitor` warns about bundles bigger than this.
pub const BUNDLE_WARN_BYTES: u64 = 1_000_000;

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub fleet_version: String,
    pub config: ReportConfig,
    pub machine: Machine,
    /// Raw write rate of the simulator's store, measured before the run.
    pub store_writes_per_second: f64,
    /// Adding the simulated clusters: Cluster objects, agent installs, registration and the
    /// agents' first check-in (before the stages).
    pub registration_seconds: f64,
    /// Set when the run stopped before its last stage (a stage timeout, the time limit, an
    /// interrupt): every other field holds what was measured until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<Incomplete>,
    pub stages: Vec<Stage>,
    /// BundleDeployment writes while the fleet rolls out.
    pub rollout_writes: RolloutWrites,
    /// BundleDeployments expected (clusters × bundles) and how many became Ready.
    pub bundle_deployments: BdCounts,
    pub api: ApiLoad,
    pub storage: Storage,
    /// CPU seconds per component (controller, agents, simulator).
    pub cpu_seconds: BTreeMap<String, f64>,
    pub peak_rss_bytes: Option<u64>,
    /// Worker counts, queue depths, reconciles and reconcile seconds, by reconciler (agents'
    /// counters summed over clusters).
    pub workers: BTreeMap<String, f64>,
    pub targets: Vec<TargetCheck>,
    /// Which stage took longest, and the resource most written during it.
    pub bottleneck: Option<String>,
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sweep: Vec<SweepPoint>,
    /// Slope of log(time per BundleDeployment) over log(clusters): 0 is perfectly linear
    /// total work, 1 is quadratic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub growth_exponent: Option<f64>,
}

/// The BundleDeployment write rate during the first rollout: writes (controller and agents)
/// from the first BundleDeployment's creation until the last one is Ready, over that window.
/// Every BundleDeployment also costs writes downstream (its resources, the Helm release) in
/// the same process, so the writes to every store are reported beside it: their share of
/// the raw rate says how busy the stores were, and `bundledeployment_share_of_writes` is
/// the ceiling of the BundleDeployment fraction on this machine.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RolloutWrites {
    pub bundledeployment_writes: u64,
    pub window_seconds: f64,
    pub writes_per_second: f64,
    pub fraction_of_store: f64,
    /// Writes to every simulated cluster (upstream and downstream) during the rollout.
    pub all_store_writes: u64,
    pub all_writes_per_second: f64,
    pub all_fraction_of_store: f64,
    /// BundleDeployment writes as a share of all store writes.
    pub bundledeployment_share_of_writes: f64,
}

impl RolloutWrites {
    pub fn new(
        bundledeployment_writes: u64,
        all_store_writes: u64,
        window: std::time::Duration,
        store_rate: f64,
    ) -> Self {
        let window_seconds = window.as_secs_f64();
        let rate = |n: u64| {
            if window_seconds > 0.0 {
                n as f64 / window_seconds
            } else {
                0.0
            }
        };
        let fraction = |r: f64| {
            if store_rate > 0.0 {
                r / store_rate
            } else {
                0.0
            }
        };
        let writes_per_second = rate(bundledeployment_writes);
        let all_writes_per_second = rate(all_store_writes);
        RolloutWrites {
            bundledeployment_writes,
            window_seconds,
            writes_per_second,
            fraction_of_store: fraction(writes_per_second),
            all_store_writes,
            all_writes_per_second,
            all_fraction_of_store: fraction(all_writes_per_second),
            bundledeployment_share_of_writes: if all_store_writes > 0 {
                bundledeployment_writes as f64 / all_store_writes as f64
            } else {
                0.0
            },
        }
    }
}

/// Where and why a run stopped early.
#[derive(Debug, Clone, Serialize)]
pub struct Incomplete {
    /// `registration`, `bundledeployment_to_ready` or `update_to_ready`.
    pub stage: String,
    pub reason: String,
    /// How far the stage got: `done` of `expected` `what`.
    pub done: usize,
    pub expected: usize,
    pub what: String,
    /// Seconds from the start of the run (the store measurement included).
    pub after_seconds: f64,
}

impl std::fmt::Display for Incomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stage {} stopped after {:.0}s of the run, at {} of {} {}: {}",
            self.stage, self.after_seconds, self.done, self.expected, self.what, self.reason
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportConfig {
    pub clusters: usize,
    pub bundles: usize,
    pub resources_per_bundle: usize,
    pub gitrepos: usize,
    pub seed: u64,
    pub profile: String,
    /// Where the controller and the agents ran: `shared (N threads)`, or `separate
    /// (controller N, agents M threads)`.
    pub runtimes: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub memory_available_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    /// `gitrepo_to_bundle`, `bundle_to_bundledeployment`, `bundledeployment_to_ready`, `update_to_ready`.
    pub name: String,
    pub description: String,
    pub objects: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
    /// From the stage's start to its last object.
    pub total_seconds: f64,
    pub objects_per_second: f64,
    /// Store writes per second during the stage, as a fraction of the store's raw write rate.
    pub write_rate_fraction_of_store: f64,
    pub upstream_writes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BdCounts {
    pub expected: usize,
    pub created: usize,
    pub ready: usize,
    pub ready_after_update: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ApiLoad {
    /// Requests to the upstream cluster by verb.
    pub upstream_by_verb: BTreeMap<String, u64>,
    /// Requests to the upstream cluster by resource (`bundledeployments.fleet.cattle.io`, …).
    pub upstream_by_resource: BTreeMap<String, u64>,
    /// Requests to all downstream clusters by verb.
    pub downstream_by_verb: BTreeMap<String, u64>,
    pub downstream_per_cluster_mean: f64,
    pub downstream_per_cluster_max: u64,
    /// Upstream writes (create/update/patch/delete) per BundleDeployment during the update
    /// stage and until the status settled after it, the agents' check-ins left out.
    pub writes_per_bundledeployment_per_change: f64,
    /// Upstream writes other than Leases, Events and the agents' check-ins while nothing
    /// changed (should be 0).
    pub idle_status_writes: u64,
    pub idle_seconds: f64,
    /// The agents' check-ins (Cluster `status.agent.lastSeen`, every 15 minutes per agent)
    /// while idle and during the update, counted apart from the status writes.
    pub idle_agent_check_ins: u64,
    pub update_agent_check_ins: u64,
    /// Upstream writes while idle, by `verb resource` (Leases and Events included).
    pub idle_writes_by_resource: BTreeMap<String, u64>,
    /// Upstream writes during the update stage, by `verb resource`.
    pub update_writes_by_resource: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Storage {
    pub upstream_objects: usize,
    pub upstream_bytes: u64,
    pub downstream_bytes: u64,
    pub largest_object: Option<LargestObject>,
    pub etcd_object_limit: u64,
    pub request_limit: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LargestObject {
    pub kind: String,
    pub name: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    pub name: String,
    pub target: String,
    pub measured: String,
    /// `None` when this run's size does not exercise the target.
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepPoint {
    pub clusters: usize,
    pub bundle_deployments: usize,
    pub total_seconds: f64,
    pub ms_per_bundle_deployment: f64,
}

/// Latencies of one stage, in the order observed.
pub fn stage(
    name: &str,
    description: &str,
    latencies: &mut [Duration],
    total: Duration,
    upstream_writes: u64,
    store_rate: f64,
) -> Stage {
    latencies.sort();
    let ms = |d: Option<&Duration>| d.map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0);
    let total_seconds = total.as_secs_f64();
    let per_second = |n: f64| {
        if total_seconds > 0.0 {
            n / total_seconds
        } else {
            0.0
        }
    };
    Stage {
        name: name.to_string(),
        description: description.to_string(),
        objects: latencies.len(),
        p50_ms: ms(percentile(latencies, 0.50)),
        p95_ms: ms(percentile(latencies, 0.95)),
        max_ms: ms(latencies.last()),
        total_seconds,
        objects_per_second: per_second(latencies.len() as f64),
        write_rate_fraction_of_store: if store_rate > 0.0 {
            per_second(upstream_writes as f64) / store_rate
        } else {
            0.0
        },
        upstream_writes,
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<&Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1)
}

/// Least-squares slope of log(y) over log(x); `None` with fewer than two distinct points.
pub fn log_log_slope(points: &[(f64, f64)]) -> Option<f64> {
    let logs: Vec<(f64, f64)> = points
        .iter()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0)
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    if logs.len() < 2 {
        return None;
    }
    let n = logs.len() as f64;
    let mean_x = logs.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = logs.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = logs.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = logs.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    Some(sxy / sxx)
}

/// Checks the targets that this run's size exercises.
pub fn check_targets(report: &BenchReport) -> Vec<TargetCheck> {
    let mut checks = Vec::new();
    let c = &report.config;
    // The first rollout, from the GitRepos' creation: the update's stages count from its
    // commit and are not part of it.
    let end_to_end: f64 = report
        .stages
        .iter()
        .filter(|s| !s.name.starts_with("update_"))
        .map(|s| s.total_seconds)
        .fold(0.0, f64::max);
    let all_ready = report.bundle_deployments.ready == report.bundle_deployments.expected;
    let exercised =
        |clusters: usize, bundles: usize| c.clusters >= clusters && c.bundles >= bundles;
    checks.push(TargetCheck {
        name: "500 clusters × 50 bundles Ready".into(),
        target: "≤ 30 s end to end".into(),
        measured: format!("{end_to_end:.1} s"),
        met: exercised(500, 50).then_some(all_ready && end_to_end <= 30.0),
    });
    let peak_gib = report
        .peak_rss_bytes
        .map(|b| b as f64 / (1u64 << 30) as f64);
    checks.push(TargetCheck {
        name: "10,000 clusters × 10 bundles".into(),
        target: "≤ 300 s and ≤ 16 GiB".into(),
        measured: format!(
            "{end_to_end:.1} s, {}",
            peak_gib
                .map(|g| format!("{g:.2} GiB"))
                .unwrap_or_else(|| "memory unknown".into())
        ),
        met: exercised(10_000, 10)
            .then_some(all_ready && end_to_end <= 300.0 && peak_gib.is_some_and(|g| g <= 16.0)),
    });
    let rollout = &report.rollout_writes;
    // What a run that stopped early did not get to measure is not judged.
    let stopped_in = report.incomplete.as_ref().map(|i| i.stage.as_str());
    let reached_rollout = stopped_in != Some("registration");
    let reached_idle = reached_rollout && stopped_in != Some("bundledeployment_to_ready");
    let finished = stopped_in.is_none();
    checks.push(TargetCheck {
        name: "BundleDeployment write rate during rollout".into(),
        target: "≥ 50 % of the store's raw write rate".into(),
        measured: format!(
            "{:.1} % ({:.0} writes/s over {:.1} s; all stores {:.1} %; BundleDeployments are {:.0} % of all writes, the most this fraction can reach with every store at its raw rate)",
            rollout.fraction_of_store * 100.0,
            rollout.writes_per_second,
            rollout.window_seconds,
            rollout.all_fraction_of_store * 100.0,
            rollout.bundledeployment_share_of_writes * 100.0
        ),
        met: reached_rollout.then_some(rollout.fraction_of_store >= 0.5),
    });
    if let Some(exp) = report.growth_exponent {
        let ratio = sweep_ratio(&report.sweep);
        checks.push(TargetCheck {
            name: "time per BundleDeployment from the smallest to the largest sweep size".into(),
            target: "grows ≤ 1.5×".into(),
            measured: format!(
                "{}× (growth exponent {exp:.2})",
                ratio
                    .map(|r| format!("{r:.2}"))
                    .unwrap_or_else(|| "?".into())
            ),
            met: ratio.map(|r| r <= 1.5),
        });
    }
    checks.push(TargetCheck {
        name: "API writes per BundleDeployment per change".into(),
        target: "≤ 3".into(),
        measured: if finished {
            format!("{:.2}", report.api.writes_per_bundledeployment_per_change)
        } else {
            "not measured: the update did not finish".into()
        },
        met: finished.then_some(report.api.writes_per_bundledeployment_per_change <= 3.0),
    });
    checks.push(TargetCheck {
        name: "status writes while nothing changes".into(),
        target: "0".into(),
        measured: format!(
            "{} in {:.0} s (agent check-ins apart: {})",
            report.api.idle_status_writes, report.api.idle_seconds, report.api.idle_agent_check_ins
        ),
        met: reached_idle.then_some(report.api.idle_status_writes == 0),
    });
    checks
}

fn sweep_ratio(sweep: &[SweepPoint]) -> Option<f64> {
    let first = sweep.iter().min_by_key(|p| p.clusters)?;
    let last = sweep.iter().max_by_key(|p| p.clusters)?;
    (first.ms_per_bundle_deployment > 0.0)
        .then(|| last.ms_per_bundle_deployment / first.ms_per_bundle_deployment)
}

/// The stage that took longest and the upstream resource written most, for the report's
/// bottleneck line.
pub fn bottleneck(report: &BenchReport) -> Option<String> {
    let busiest = report
        .api
        .upstream_by_resource
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(r, n)| format!("; most requested upstream resource: {r} ({n} requests)"))
        .unwrap_or_default();
    let cpu = report
        .cpu_seconds
        .iter()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(c, s)| format!("; most CPU: {c} ({s:.1} s)"))
        .unwrap_or_default();
    // A run that stopped early is held up by the stage it stopped in.
    if let Some(stopped) = &report.incomplete {
        return Some(format!(
            "stopped in stage {} ({} of {} {} after {:.0} s){busiest}{cpu}",
            stopped.stage, stopped.done, stopped.expected, stopped.what, stopped.after_seconds
        ));
    }
    let slowest = report
        .stages
        .iter()
        .filter(|s| s.name == "update_to_ready" || !s.name.starts_with("update_"))
        .max_by(|a, b| a.total_seconds.total_cmp(&b.total_seconds))?;
    // The update's own split says whether git, the controller or the agents took the time.
    let part = if slowest.name == "update_to_ready" {
        report
            .stages
            .iter()
            .filter(|s| s.name.starts_with("update_") && s.name != "update_to_ready")
            .max_by(|a, b| a.p50_ms.total_cmp(&b.p50_ms))
            .map(|s| format!(", mostly {} (p50 {:.0} ms)", s.name, s.p50_ms))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Some(format!(
        "slowest stage: {} ({:.1} s, p95 {:.0} ms{part}){busiest}{cpu}",
        slowest.name, slowest.total_seconds, slowest.p95_ms
    ))
}

/// The human summary printed at the end of a run.
pub fn summary_text(report: &BenchReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let c = &report.config;
    let _ = writeln!(
        out,
        "fleet sim bench: {} clusters × {} bundles ({} resources each, {} GitRepos, profile {}, seed {})",
        c.clusters, c.bundles, c.resources_per_bundle, c.gitrepos, c.profile, c.seed
    );
    if let Some(stopped) = &report.incomplete {
        let _ = writeln!(
            out,
            "INCOMPLETE: {stopped}; what follows was measured until then"
        );
    }
    let _ = writeln!(
        out,
        "store raw write rate: {:.0} writes/s",
        report.store_writes_per_second
    );
    let _ = writeln!(
        out,
        "{:<28} {:>8} {:>10} {:>10} {:>10} {:>9} {:>10} {:>8}",
        "stage", "objects", "p50 ms", "p95 ms", "max ms", "total s", "objects/s", "store %"
    );
    for s in &report.stages {
        let _ = writeln!(
            out,
            "{:<28} {:>8} {:>10.0} {:>10.0} {:>10.0} {:>9.2} {:>10.0} {:>7.1}%",
            s.name,
            s.objects,
            s.p50_ms,
            s.p95_ms,
            s.max_ms,
            s.total_seconds,
            s.objects_per_second,
            s.write_rate_fraction_of_store * 100.0
        );
    }
    let _ = writeln!(
        out,
        "clusters registered and checked in: {:.1} s",
        report.registration_seconds
    );
    let b = &report.bundle_deployments;
    let _ = writeln!(
        out,
        "BundleDeployments: {} expected, {} created, {} Ready, {} Ready after the update",
        b.expected, b.created, b.ready, b.ready_after_update
    );
    let cpu: Vec<String> = report
        .cpu_seconds
        .iter()
        .map(|(k, v)| format!("{k} {v:.1} s"))
        .collect();
    let _ = writeln!(
        out,
        "CPU: {}; peak RSS: {}",
        cpu.join(", "),
        report
            .peak_rss_bytes
            .map(|b| format!("{:.0} MiB", b as f64 / (1u64 << 20) as f64))
            .unwrap_or_else(|| "unknown".into())
    );
    if let Some(largest) = &report.storage.largest_object {
        let _ = writeln!(
            out,
            "stored upstream: {} objects, {:.1} MiB; largest: {} {} ({} bytes)",
            report.storage.upstream_objects,
            report.storage.upstream_bytes as f64 / (1u64 << 20) as f64,
            largest.kind,
            largest.name,
            largest.bytes
        );
    }
    for t in &report.targets {
        let verdict = match t.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not exercised",
        };
        let _ = writeln!(
            out,
            "target {}: {} — measured {} ({verdict})",
            t.name, t.target, t.measured
        );
    }
    if let Some(b) = &report.bottleneck {
        let _ = writeln!(out, "bottleneck: {b}");
    }
    for w in &report.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Some(&Duration::from_millis(50)));
        assert_eq!(percentile(&v, 0.95), Some(&Duration::from_millis(95)));
        assert_eq!(percentile(&v[..1], 0.95), Some(&Duration::from_millis(1)));
        assert_eq!(percentile(&[], 0.5), None);
    }

    fn report_of(clusters: usize, bundles: usize, incomplete: Option<Incomplete>) -> BenchReport {
        let expected = clusters * bundles;
        BenchReport {
            fleet_version: "test".into(),
            config: ReportConfig {
                clusters,
                bundles,
                resources_per_bundle: 3,
                gitrepos: 1,
                seed: 0,
                profile: "fast".into(),
                runtimes: "shared (2 threads)".into(),
            },
            machine: Machine {
                cpus: 2,
                memory_available_bytes: None,
            },
            store_writes_per_second: 1000.0,
            registration_seconds: 1.0,
            incomplete,
            stages: vec![stage(
                "bundledeployment_to_ready",
                "",
                &mut [Duration::from_millis(10)],
                Duration::from_secs(1),
                10,
                1000.0,
            )],
            rollout_writes: RolloutWrites::default(),
            bundle_deployments: BdCounts {
                expected,
                created: expected,
                ready: expected / 2,
                ready_after_update: 0,
            },
            api: ApiLoad {
                upstream_by_resource: [("bundledeployments".to_string(), 42)].into(),
                ..ApiLoad::default()
            },
            storage: Storage::default(),
            cpu_seconds: [("agents".to_string(), 3.0), ("controller".to_string(), 5.0)].into(),
            peak_rss_bytes: None,
            workers: BTreeMap::new(),
            targets: Vec::new(),
            bottleneck: None,
            warnings: Vec::new(),
            sweep: Vec::new(),
            growth_exponent: None,
        }
    }

    fn stopped_in(stage: &str) -> Incomplete {
        Incomplete {
            stage: stage.into(),
            reason: "the run's --time-limit of 60s was reached".into(),
            done: 120,
            expected: 250,
            what: "Ready BundleDeployments".into(),
            after_seconds: 61.0,
        }
    }

    fn verdict(report: &BenchReport, name: &str) -> Option<bool> {
        check_targets(report)
            .into_iter()
            .find(|t| t.name.starts_with(name))
            .unwrap_or_else(|| panic!("no target {name}"))
            .met
    }

    #[test]
    fn a_run_stopped_in_the_rollout_judges_only_what_it_measured() {
        let report = report_of(500, 50, Some(stopped_in("bundledeployment_to_ready")));
        assert_eq!(verdict(&report, "500 clusters"), Some(false));
        assert_eq!(verdict(&report, "API writes per BundleDeployment"), None);
        assert_eq!(
            verdict(&report, "status writes while nothing changes"),
            None
        );
        assert!(verdict(&report, "BundleDeployment write rate").is_some());
        let measured = check_targets(&report)
            .into_iter()
            .find(|t| t.name.starts_with("API writes"))
            .map(|t| t.measured);
        assert_eq!(
            measured.as_deref(),
            Some("not measured: the update did not finish")
        );

        let registration = report_of(500, 50, Some(stopped_in("registration")));
        assert_eq!(verdict(&registration, "BundleDeployment write rate"), None);

        let complete = report_of(500, 50, None);
        assert!(verdict(&complete, "API writes per BundleDeployment").is_some());
        assert!(verdict(&complete, "status writes while nothing changes").is_some());
    }

    #[test]
    fn a_stopped_run_names_its_stage_as_the_bottleneck_and_in_the_summary() {
        let mut report = report_of(50, 5, Some(stopped_in("update_to_ready")));
        report.bottleneck = bottleneck(&report);
        let b = report.bottleneck.clone().unwrap_or_default();
        assert!(
            b.starts_with("stopped in stage update_to_ready (120 of 250 Ready BundleDeployments"),
            "{b}"
        );
        assert!(b.contains("most CPU: controller (5.0 s)"), "{b}");
        assert!(b.contains("bundledeployments (42 requests)"), "{b}");
        let text = summary_text(&report);
        assert!(
            text.contains(
                "INCOMPLETE: stage update_to_ready stopped after 61s of the run, at 120 of 250 Ready BundleDeployments: the run's --time-limit of 60s was reached"
            ),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap_or_default();
        assert_eq!(json["incomplete"]["stage"], "update_to_ready");
        let complete = serde_json::to_value(report_of(50, 5, None)).unwrap_or_default();
        assert!(complete.get("incomplete").is_none());
    }

    #[test]
    fn end_to_end_is_the_first_rollout_not_the_update() {
        let mut report = report_of(500, 50, None);
        report.bundle_deployments.ready = report.bundle_deployments.expected;
        for (name, seconds) in [
            ("update_to_ready", 95),
            ("update_bundledeployment_to_ready", 90),
            ("update_bundle_to_bundledeployment", 28),
        ] {
            report.stages.push(stage(
                name,
                "",
                &mut [Duration::from_millis(10)],
                Duration::from_secs(seconds),
                10,
                1000.0,
            ));
        }
        let first = check_targets(&report)
            .into_iter()
            .find(|t| t.name.starts_with("500 clusters"))
            .unwrap();
        assert_eq!(
            first.measured, "1.0 s",
            "the rollout stage above, not the update's"
        );
        assert_eq!(first.met, Some(true));
    }

    #[test]
    fn slope_of_a_power_law_is_its_exponent() {
        let points: Vec<(f64, f64)> = [100.0, 1000.0, 10000.0]
            .iter()
            .map(|x: &f64| (*x, 3.0 * x.powf(0.25)))
            .collect();
        let slope = log_log_slope(&points).unwrap();
        assert!((slope - 0.25).abs() < 1e-9, "{slope}");
        assert_eq!(log_log_slope(&points[..1]), None);
    }
}

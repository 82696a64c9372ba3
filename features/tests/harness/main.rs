//! fleet-rs acceptance features (cucumber-rs): runs `features/features/**/*.feature` against
//! Fleet on the in-process simulator (`FLEET_E2E_BACKEND=sim`, the default) or on k3d clusters
//! (`FLEET_E2E_BACKEND=k3d`, see `scripts/test-e2e`).
//!
//! Environment:
//! - `FLEET_FEATURES_JUNIT`: where the JUnit XML report goes (default
//!   `<target dir>/fleet-features-junit.xml`).
//! - `FLEET_FEATURES_CONCURRENCY`: scenarios run at once (default 3).
//! - `FLEET_FEATURES_TIME_SCALE`: stretches every wait (default 2).
//! - `FLEET_FEATURES_FILTER`: only scenarios whose name, or whose feature's name, contains this
//!   text.
//! - `FLEET_FEATURES_SKIP=1`: run nothing (`scripts/test` builds the binary with the workspace
//!   tests and runs it on its own afterwards).
//!
//! It ends with `N passed, M failed` (scenarios) for `scripts/test`, and exits non-zero when a
//! scenario failed or a step was skipped (no step matched its text).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backend;
mod steps;
mod support;
mod world;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cucumber::{World as _, WriterExt as _, event, writer};
use futures::FutureExt as _;

use backend::BackendKind;
use world::{FleetWorld, slug};

fn junit_path() -> PathBuf {
    if let Ok(p) = std::env::var("FLEET_FEATURES_JUNIT") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("fleet-features-junit.xml")
}

#[derive(Default)]
struct Counts {
    passed: AtomicUsize,
    failed: AtomicUsize,
}

fn main() {
    if std::env::var_os("FLEET_FEATURES_SKIP").is_some_and(|v| v == "1") {
        println!("features: not run here (FLEET_FEATURES_SKIP=1)");
        return;
    }
    let kind = match BackendKind::from_env() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            println!("0 passed, 1 failed");
            std::process::exit(2);
        }
    };
    if kind == BackendKind::K3d {
        // Without Docker, k3d and the clusters of scripts/k3d-up.sh nothing can run: say so and
        // stop, never pass with nothing run.
        if let Err(e) = backend::K3dSettings::from_env() {
            eprintln!("error: {e}");
            println!("0 passed, 1 failed");
            std::process::exit(2);
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(run(kind));
    std::process::exit(code);
}

async fn run(kind: BackendKind) -> i32 {
    let features = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("features");
    let junit = junit_path();
    if let Some(dir) = junit.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let junit_file = match std::fs::File::create(&junit) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: creating the JUnit report {}: {e}", junit.display());
            println!("0 passed, 1 failed");
            return 2;
        }
    };
    let concurrency = std::env::var("FLEET_FEATURES_CONCURRENCY")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3usize);
    let name_filter = std::env::var("FLEET_FEATURES_FILTER").unwrap_or_default();
    let counts = Arc::new(Counts::default());
    let after_counts = counts.clone();

    let writer = FleetWorld::cucumber()
        .max_concurrent_scenarios(concurrency)
        .before(|feature, _rule, scenario, world| {
            let stem = feature
                .path
                .as_ref()
                .and_then(|p| p.file_stem())
                .and_then(|s| s.to_str())
                .unwrap_or("feature")
                .to_string();
            world.snapshot_prefix = format!("{}__{}", slug(&stem), slug(&scenario.name));
            async {}.boxed_local()
        })
        .after(move |_feature, _rule, _scenario, finished, world| {
            let counts = after_counts.clone();
            let passed = matches!(finished, event::ScenarioFinished::StepPassed);
            async move {
                if passed {
                    counts.passed.fetch_add(1, Ordering::SeqCst);
                } else {
                    counts.failed.fetch_add(1, Ordering::SeqCst);
                }
                if let Some(world) = world {
                    world.shutdown().await;
                }
            }
            .boxed_local()
        })
        .with_writer(
            writer::Basic::stdout()
                .summarized()
                .tee::<FleetWorld, _>(writer::JUnit::for_tee(junit_file, 0))
                .normalized(),
        )
        .fail_on_skipped()
        .filter_run(features, move |feature, _rule, scenario| {
            // `@sim` on the feature covers all its scenarios (gherkin does not copy feature tags
            // onto scenarios).
            let needs_sim = scenario
                .tags
                .iter()
                .chain(&feature.tags)
                .any(|t| t == "sim");
            (kind == BackendKind::Sim || !needs_sim)
                && (name_filter.is_empty()
                    || scenario.name.contains(&name_filter)
                    || feature.name.contains(&name_filter))
        })
        .await;

    use cucumber::writer::Stats as _;
    let passed = counts.passed.load(Ordering::SeqCst);
    let mut failed = counts.failed.load(Ordering::SeqCst);
    // Parsing errors and hook failures are failures too, with no scenario to count them on.
    failed += writer.parsing_errors() + writer.hook_errors();
    let has_failed = writer.execution_has_failed() || failed > 0;
    if has_failed && failed == 0 {
        failed = 1;
    }
    println!("JUnit report: {}", junit.display());
    println!("{passed} passed, {failed} failed");
    i32::from(has_failed)
}

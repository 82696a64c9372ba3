//! The `fleet` binary: argument parsing and wiring only; the work lives in the library crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

// One process holds the controller, the agents of every simulated cluster and the simulator:
// many threads allocating small objects, where glibc's allocator spent a fifth of the CPU and
// kept about as much freed memory as was live. `--no-default-features` builds with the system
// allocator, which heap profilers such as heaptrack can follow.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "fleet",
    version,
    about = "GitOps for many Kubernetes clusters (a Rust implementation of Rancher Fleet)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version of this build
    Version,
    /// Print the CustomResourceDefinitions of every Fleet kind as YAML
    Crds(cmd::crds::CrdsArgs),
    /// Build Bundles from folders and write them to a file, stdout, or the cluster
    Apply(cmd::apply::ApplyArgs),
    /// Show what a bundle would deploy to a cluster with the given labels
    Test(cmd::test::TestArgs),
    /// Helm chart tools (an in-process Helm 3 engine)
    Helm(cmd::helm::HelmArgs),
    /// Simulated clusters: `sim up`, `sim bench`
    Sim(cmd::sim::SimArgs),
    /// Run the upstream controller (GitRepos, Bundles, Clusters) against a Kubernetes API
    Controller(cmd::controller::ControllerArgs),
    /// Run the agent of one downstream cluster
    Agent(cmd::agent::AgentArgs),
    /// Clone a git repository into a folder (the init container of a git job)
    Gitcloner(cmd::gitcloner::GitClonerArgs),
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Version => cmd::version::run(),
        Command::Crds(args) => cmd::crds::run(&args),
        Command::Apply(args) => cmd::apply::run(&args),
        Command::Test(args) => cmd::test::run(&args),
        Command::Helm(args) => cmd::helm::run(&args),
        Command::Sim(args) => cmd::sim::run(&args),
        Command::Controller(args) => cmd::controller::run(&args),
        Command::Agent(args) => cmd::agent::run(&args),
        Command::Gitcloner(args) => cmd::gitcloner::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("Error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLEET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

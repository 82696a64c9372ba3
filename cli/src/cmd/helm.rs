use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct HelmArgs {}

pub fn run(_args: &HelmArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`fleet helm` is not built yet")
}

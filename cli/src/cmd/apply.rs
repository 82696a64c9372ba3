use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {}

pub fn run(_args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`fleet apply` is not built yet")
}

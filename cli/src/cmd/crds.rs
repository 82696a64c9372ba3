use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct CrdsArgs {}

pub fn run(_args: &CrdsArgs) -> anyhow::Result<ExitCode> {
    let yaml = fleet_api::crds::to_yaml().context("rendering the CustomResourceDefinitions")?;
    std::io::stdout()
        .write_all(yaml.as_bytes())
        .context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

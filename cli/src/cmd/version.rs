use std::process::ExitCode;

pub fn run() -> anyhow::Result<ExitCode> {
    println!(
        "fleet-rs {} (Fleet API fleet.cattle.io/v1alpha1, v0.12 semantics)",
        env!("CARGO_PKG_VERSION")
    );
    Ok(ExitCode::SUCCESS)
}

//! The scenario's git repository: Fleet's examples, files written in the scenario, commits.

use anyhow::{anyhow, bail};
use cucumber::gherkin::Step;
use cucumber::{given, when};

use crate::world::{FleetWorld, fleet_examples};

fn docstring(step: &Step) -> anyhow::Result<String> {
    step.docstring
        .clone()
        .map(|d| d.trim_start_matches('\n').to_string())
        .ok_or_else(|| anyhow!("the step needs the file's content as a \"\"\" docstring"))
}

/// Copies a folder of Fleet's examples (rancher/fleet-examples, as in the conformance suite)
/// into the repository at the same path, and commits.
#[given(expr = "a git repository with the folder {string}")]
#[given(expr = "the git repository also has the folder {string}")]
async fn example_folder(world: &mut FleetWorld, folder: String) -> anyhow::Result<()> {
    let from = fleet_examples().join(&folder);
    if !from.is_dir() {
        bail!(
            "{} is not a folder of Fleet's examples (set FLEET_SHARED_DIR to the folder holding conformance/)",
            from.display()
        );
    }
    world.repo()?.copy_dir(&from, &folder)?;
    world.commit(&format!("add {folder}"))?;
    Ok(())
}

#[given("a git repository")]
async fn empty_repository(world: &mut FleetWorld) -> anyhow::Result<()> {
    world.repo()?;
    Ok(())
}

/// Writes a file and commits it.
#[given(expr = "the git repository has the file {string}:")]
#[when(expr = "I commit the file {string}:")]
async fn commit_file(world: &mut FleetWorld, path: String, step: &Step) -> anyhow::Result<()> {
    let content = docstring(step)?;
    world.repo()?.write(&path, &content)?;
    world.commit(&format!("write {path}"))?;
    Ok(())
}

/// Removes a file or folder and commits.
#[when(expr = "I delete {string} from the git repository")]
async fn delete_path(world: &mut FleetWorld, path: String) -> anyhow::Result<()> {
    world.repo()?.remove(&path)?;
    world.commit(&format!("delete {path}"))?;
    Ok(())
}

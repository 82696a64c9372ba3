//! Rollouts: staged and promoted deployments, partitions, maxUnavailable.

use std::time::Duration;

use anyhow::bail;
use cucumber::gherkin::Step;
use cucumber::then;
use serde_json::Value;

use crate::steps::bundle::bundle;
use crate::support::{self, DEFAULT_WAIT, consistently, eventually};
use crate::world::FleetWorld;

async fn bd(world: &FleetWorld, bundle: &str, cluster: &str) -> Result<Value, String> {
    let upstream = world.upstream().map_err(|e| e.to_string())?;
    support::bundle_deployment(&upstream, bundle, cluster).await
}

fn held_back(bd: &Value) -> Result<(), String> {
    let spec = &bd["spec"];
    if spec["stagedDeploymentID"] != spec["deploymentID"] {
        Ok(())
    } else {
        Err(format!("promoted: deploymentID {}", spec["deploymentID"]))
    }
}

/// The newest version is staged for the cluster but not promoted, and it stays so.
#[then(expr = "the rollout of the Bundle {string} holds back cluster {string}")]
async fn holds_back(world: &mut FleetWorld, name: String, cluster: String) -> anyhow::Result<()> {
    let world = &*world;
    eventually(
        DEFAULT_WAIT,
        &format!("{name} staged but not promoted on {cluster}"),
        || async { held_back(&bd(world, &name, &cluster).await?) },
    )
    .await?;
    consistently(
        Duration::from_secs(3),
        &format!("the rollout of {name} holding back {cluster}"),
        || async { held_back(&bd(world, &name, &cluster).await?) },
    )
    .await
}

/// The cluster's BundleDeployment has the newest version promoted and applied by the agent.
#[then(expr = "the cluster {string} runs the newest version of the Bundle {string}")]
async fn newest(world: &mut FleetWorld, cluster: String, name: String) -> anyhow::Result<()> {
    let world = &*world;
    eventually(
        DEFAULT_WAIT,
        &format!("{name} promoted and applied on {cluster}"),
        || async {
            let bd = bd(world, &name, &cluster).await?;
            let (spec, status) = (&bd["spec"], &bd["status"]);
            let bundle = bundle(world, &name).await?.ok_or("no Bundle")?;
            // The bundle's newest manifest is what every target gets staged.
            let newest = spec["stagedDeploymentID"].as_str().unwrap_or_default();
            let observed =
                bundle["status"]["observedGeneration"] == bundle["metadata"]["generation"];
            if observed && spec["deploymentID"] == newest && status["appliedDeploymentID"] == newest
            {
                Ok(())
            } else {
                Err(format!(
                    "staged {newest}, deploymentID {}, applied {}",
                    spec["deploymentID"], status["appliedDeploymentID"]
                ))
            }
        },
    )
    .await
}

/// A table `| partition | count | unavailable | maxUnavailable |` compared with the Bundle's
/// `partitions` status (columns not given are not checked).
#[then(expr = "the Bundle {string} has the partitions:")]
async fn partitions(world: &mut FleetWorld, name: String, step: &Step) -> anyhow::Result<()> {
    let Some(table) = step.table.as_ref() else {
        bail!("the step needs a table | partition | count | unavailable | maxUnavailable |");
    };
    let header = table.rows.first().cloned().unwrap_or_default();
    let want: Vec<Vec<(String, String)>> = table
        .rows
        .iter()
        .skip(1)
        .map(|row| header.iter().cloned().zip(row.iter().cloned()).collect())
        .collect();
    let world = &*world;
    eventually(
        DEFAULT_WAIT,
        &format!("Bundle {name} partitions"),
        || async {
            let b = bundle(world, &name).await?.ok_or("no Bundle")?;
            let got = b["status"]["partitions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if got.len() != want.len() {
                return Err(format!("partitions {}", b["status"]["partitions"]));
            }
            for (row, part) in want.iter().zip(&got) {
                for (col, cell) in row {
                    let field = if col == "partition" {
                        "name"
                    } else {
                        col.as_str()
                    };
                    let value = &part[field];
                    // Fleet omits zero counts.
                    let text = match value {
                        Value::String(s) => s.clone(),
                        Value::Null => "0".into(),
                        other => other.to_string(),
                    };
                    if text != *cell {
                        return Err(format!(
                            "partition {}: {field} is {text}, want {cell}; partitions {}",
                            part["name"], b["status"]["partitions"]
                        ));
                    }
                }
            }
            Ok(())
        },
    )
    .await
}

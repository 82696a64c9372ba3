//! Bundles and their BundleDeployments upstream.

use std::collections::BTreeSet;

use cucumber::then;
use serde_json::Value;

use crate::backend::CLUSTERS_NAMESPACE;
use crate::support::{self, DEFAULT_WAIT, eventually, parse_list, ready, scaled};
use crate::world::FleetWorld;

pub async fn bundle(world: &FleetWorld, name: &str) -> Result<Option<Value>, String> {
    let upstream = world.upstream().map_err(|e| e.to_string())?;
    support::get(&upstream, "Bundle", &format!("{CLUSTERS_NAMESPACE}/{name}")).await
}

#[then(expr = "the Bundle {string} is Ready within {int}s")]
async fn is_ready(world: &mut FleetWorld, name: String, seconds: u64) -> anyhow::Result<()> {
    let world = &*world;
    eventually(scaled(seconds), &format!("Bundle {name} Ready"), || async {
        let b = bundle(world, &name).await?.ok_or("no such Bundle")?;
        let (status, message) = ready(&b);
        let display = b["status"]["display"]["readyClusters"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let complete = display
            .split_once('/')
            .is_some_and(|(r, d)| r == d && d != "0");
        if status == "True" && complete {
            Ok(())
        } else {
            Err(format!(
                "Ready={status} {message:?} readyClusters {display:?}"
            ))
        }
    })
    .await
}

#[then(expr = "the Bundle {string} is not Ready within {int}s, saying {string}")]
async fn not_ready(
    world: &mut FleetWorld,
    name: String,
    seconds: u64,
    text: String,
) -> anyhow::Result<()> {
    let world = &*world;
    eventually(
        scaled(seconds),
        &format!("Bundle {name} not Ready saying {text:?}"),
        || async {
            let b = bundle(world, &name).await?.ok_or("no such Bundle")?;
            let (status, message) = ready(&b);
            if status == "False" && message.contains(&text) {
                Ok(())
            } else {
                Err(format!("Ready={status} {message:?}"))
            }
        },
    )
    .await
}

/// Exactly these clusters have a BundleDeployment of the bundle.
#[then(expr = "the Bundle {string} is deployed to the clusters {string}")]
async fn deployed_to(world: &mut FleetWorld, name: String, clusters: String) -> anyhow::Result<()> {
    let want: BTreeSet<String> = parse_list(&clusters).into_iter().collect();
    let world = &*world;
    eventually(
        DEFAULT_WAIT,
        &format!("Bundle {name} deployed to {want:?}"),
        || async {
            let upstream = world.upstream().map_err(|e| e.to_string())?;
            let got: BTreeSet<String> = support::list(&upstream, "BundleDeployment")
                .await?
                .into_iter()
                .filter(|bd| {
                    bd["metadata"]["labels"]["fleet.cattle.io/bundle-name"] == name.as_str()
                })
                .filter_map(|bd| {
                    bd["metadata"]["labels"]["fleet.cattle.io/cluster"]
                        .as_str()
                        .map(String::from)
                })
                .collect();
            if got == want {
                Ok(())
            } else {
                Err(format!("deployed to {got:?}"))
            }
        },
    )
    .await
}

#[then(expr = "the Bundle {string} is gone within {int}s")]
async fn gone(world: &mut FleetWorld, name: String, seconds: u64) -> anyhow::Result<()> {
    let world = &*world;
    eventually(
        scaled(seconds),
        &format!("Bundle {name} and its BundleDeployments to be deleted"),
        || async {
            if bundle(world, &name).await?.is_some() {
                return Err("the Bundle still exists".into());
            }
            let upstream = world.upstream().map_err(|e| e.to_string())?;
            let left: Vec<String> = support::list(&upstream, "BundleDeployment")
                .await?
                .into_iter()
                .filter(|bd| {
                    bd["metadata"]["labels"]["fleet.cattle.io/bundle-name"] == name.as_str()
                })
                .map(|bd| bd["metadata"]["namespace"].to_string())
                .collect();
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("BundleDeployments left in {left:?}"))
            }
        },
    )
    .await
}

/// A condition message or the display message of the BundleDeployment contains `text`.
#[then(expr = "the BundleDeployment of {string} on cluster {string} says {string} within {int}s")]
async fn bd_says(
    world: &mut FleetWorld,
    name: String,
    cluster: String,
    text: String,
    seconds: u64,
) -> anyhow::Result<()> {
    let world = &*world;
    eventually(
        scaled(seconds),
        &format!("BundleDeployment {name} on {cluster} to say {text:?}"),
        || async {
            let upstream = world.upstream().map_err(|e| e.to_string())?;
            let bd = support::bundle_deployment(&upstream, &name, &cluster).await?;
            let status = bd["status"].to_string();
            if status.contains(&text) {
                Ok(())
            } else {
                Err(status)
            }
        },
    )
    .await
}

#[then(expr = "the BundleDeployment of {string} on cluster {string} is Ready within {int}s")]
async fn bd_ready(
    world: &mut FleetWorld,
    name: String,
    cluster: String,
    seconds: u64,
) -> anyhow::Result<()> {
    let world = &*world;
    eventually(
        scaled(seconds),
        &format!("BundleDeployment {name} on {cluster} Ready"),
        || async {
            let upstream = world.upstream().map_err(|e| e.to_string())?;
            let bd = support::bundle_deployment(&upstream, &name, &cluster).await?;
            let (status, message) = ready(&bd);
            let applied = bd["status"]["appliedDeploymentID"] == bd["spec"]["deploymentID"];
            if status == "True" && applied && bd["status"]["ready"] == true {
                Ok(())
            } else {
                Err(format!(
                    "Ready={status} {message:?} applied={applied}; status {}",
                    bd["status"]
                ))
            }
        },
    )
    .await
}

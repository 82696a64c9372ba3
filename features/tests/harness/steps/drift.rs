//! Someone changes what Fleet deployed, behind its back; Fleet reports or corrects it.

use std::time::Duration;

use anyhow::Context;
use cucumber::{then, when};
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::support::{self, consistently, eventually, scaled, split_key};
use crate::world::FleetWorld;

async fn merge_patch(
    world: &FleetWorld,
    cluster: &str,
    kind: &str,
    key: &str,
    patch: serde_json::Value,
) -> anyhow::Result<()> {
    let client = world.cluster(cluster)?;
    let (ns, name) = split_key(key);
    support::api(&client, kind, ns)?
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .with_context(|| format!("changing {kind} {key} on cluster {cluster}"))?;
    Ok(())
}

#[when(expr = "someone sets {string} = {string} in ConfigMap {string} on cluster {string}")]
async fn set_configmap(
    world: &mut FleetWorld,
    field: String,
    value: String,
    key: String,
    cluster: String,
) -> anyhow::Result<()> {
    merge_patch(
        world,
        &cluster,
        "ConfigMap",
        &key,
        json!({"data": {field: value}}),
    )
    .await
}

#[when(expr = "someone scales Deployment {string} on cluster {string} to {int} replicas")]
async fn scale(world: &mut FleetWorld, key: String, cluster: String, n: i64) -> anyhow::Result<()> {
    merge_patch(
        world,
        &cluster,
        "Deployment",
        &key,
        json!({"spec": {"replicas": n}}),
    )
    .await
}

#[when(expr = "someone deletes {word} {string} on cluster {string}")]
async fn delete(
    world: &mut FleetWorld,
    kind: String,
    key: String,
    cluster: String,
) -> anyhow::Result<()> {
    let client = world.cluster(&cluster)?;
    let (ns, name) = split_key(&key);
    support::api(&client, &kind, ns)?
        .delete(name, &DeleteParams::default())
        .await
        .with_context(|| format!("deleting {kind} {key} on cluster {cluster}"))?;
    Ok(())
}

/// The agent reports the drift: `nonModified` false and a `modifiedStatus` entry for the object
/// whose patch (the way back to the desired state) contains `text`.
#[then(
    expr = "the BundleDeployment of {string} on cluster {string} reports {string} modified within {int}s, with a patch containing {string}"
)]
async fn modified(
    world: &mut FleetWorld,
    bundle: String,
    cluster: String,
    object: String,
    seconds: u64,
    text: String,
) -> anyhow::Result<()> {
    let world = &*world;
    eventually(
        scaled(seconds),
        &format!("{bundle} on {cluster} to report {object} modified"),
        || async {
            let upstream = world.upstream().map_err(|e| e.to_string())?;
            let bd = support::bundle_deployment(&upstream, &bundle, &cluster).await?;
            let status = &bd["status"];
            let found = status["modifiedStatus"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|m| {
                    m["name"] == object.as_str()
                        && m["patch"].as_str().is_some_and(|p| p.contains(&text))
                });
            if status["nonModified"] != true && found {
                Ok(())
            } else {
                Err(status.to_string())
            }
        },
    )
    .await
}

/// Holds for a few seconds (the agent's drift checks run several times meanwhile).
#[then(expr = "the BundleDeployment of {string} on cluster {string} stays unmodified")]
async fn unmodified(world: &mut FleetWorld, bundle: String, cluster: String) -> anyhow::Result<()> {
    let world = &*world;
    consistently(
        Duration::from_secs(3),
        &format!("{bundle} on {cluster} unmodified"),
        || async {
            let upstream = world.upstream().map_err(|e| e.to_string())?;
            let bd = support::bundle_deployment(&upstream, &bundle, &cluster).await?;
            let status = &bd["status"];
            let listed = status["modifiedStatus"]
                .as_array()
                .is_some_and(|a| !a.is_empty());
            if listed {
                Err(status.to_string())
            } else {
                Ok(())
            }
        },
    )
    .await
}

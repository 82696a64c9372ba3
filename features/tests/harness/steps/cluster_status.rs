//! What is deployed in the downstream clusters, and the Cluster objects' status upstream.

use cucumber::gherkin::Step;
use cucumber::then;
use serde_json::Value;

use crate::backend::CLUSTERS_NAMESPACE;
use crate::support::{self, DEFAULT_WAIT, eventually, is_subset, parse_list, ready, scaled};
use crate::world::FleetWorld;

/// Waits until `check` accepts the object `kind` `key` on `cluster` (`None`: absent).
async fn wait_object(
    world: &FleetWorld,
    cluster: &str,
    kind: &str,
    key: &str,
    what: &str,
    check: impl Fn(Option<&Value>) -> Result<(), String>,
) -> anyhow::Result<()> {
    let client = world.cluster(cluster)?;
    eventually(
        DEFAULT_WAIT,
        &format!("{kind} {key} on cluster {cluster} {what}"),
        || async {
            let obj = support::get(&client, kind, key).await?;
            check(obj.as_ref())
        },
    )
    .await
}

fn present(obj: Option<&Value>) -> Result<&Value, String> {
    obj.ok_or_else(|| "not deployed".to_string())
}

#[then(expr = "cluster {string} has {word} {string}")]
async fn has(
    world: &mut FleetWorld,
    cluster: String,
    kind: String,
    key: String,
) -> anyhow::Result<()> {
    wait_object(world, &cluster, &kind, &key, "to exist", |o| {
        present(o).map(|_| ())
    })
    .await
}

#[then(expr = "the clusters {string} have {word} {string}")]
async fn all_have(
    world: &mut FleetWorld,
    clusters: String,
    kind: String,
    key: String,
) -> anyhow::Result<()> {
    for cluster in parse_list(&clusters) {
        wait_object(world, &cluster, &kind, &key, "to exist", |o| {
            present(o).map(|_| ())
        })
        .await?;
    }
    Ok(())
}

#[then(expr = "cluster {string} has no {word} {string}")]
async fn has_no(
    world: &mut FleetWorld,
    cluster: String,
    kind: String,
    key: String,
) -> anyhow::Result<()> {
    wait_object(world, &cluster, &kind, &key, "to be absent", |o| match o {
        None => Ok(()),
        Some(_) => Err("still there".into()),
    })
    .await
}

/// Checked at once: the object is there right now (e.g. kept after its bundle was deleted).
#[then(expr = "cluster {string} still has {word} {string}")]
async fn still_has(
    world: &mut FleetWorld,
    cluster: String,
    kind: String,
    key: String,
) -> anyhow::Result<()> {
    let client = world.cluster(&cluster)?;
    match support::get(&client, &kind, &key)
        .await
        .map_err(anyhow::Error::msg)?
    {
        Some(_) => Ok(()),
        None => anyhow::bail!("{kind} {key} is gone from cluster {cluster}"),
    }
}

#[then(expr = "cluster {string} has Deployment {string} with {int} replicas")]
async fn replicas(
    world: &mut FleetWorld,
    cluster: String,
    key: String,
    n: i64,
) -> anyhow::Result<()> {
    wait_object(
        world,
        &cluster,
        "Deployment",
        &key,
        &format!("with {n} replicas"),
        |o| {
            let d = present(o)?;
            // An absent `replicas` means 1, as kube-apiserver defaults it.
            let got = d["spec"]["replicas"].as_i64().unwrap_or(1);
            if got == n {
                Ok(())
            } else {
                Err(format!("spec.replicas {got}"))
            }
        },
    )
    .await
}

#[then(expr = "cluster {string} has Deployment {string} with image {string}")]
async fn has_image(
    world: &mut FleetWorld,
    cluster: String,
    key: String,
    image: String,
) -> anyhow::Result<()> {
    wait_object(
        world,
        &cluster,
        "Deployment",
        &key,
        &format!("with image {image}"),
        |o| {
            let d = present(o)?;
            let got = d["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default();
            if got == image {
                Ok(())
            } else {
                Err(format!("image {got:?}"))
            }
        },
    )
    .await
}

#[then(expr = "cluster {string} has ConfigMap {string} with {string} = {string}")]
async fn configmap_value(
    world: &mut FleetWorld,
    cluster: String,
    key: String,
    field: String,
    value: String,
) -> anyhow::Result<()> {
    wait_object(
        world,
        &cluster,
        "ConfigMap",
        &key,
        &format!("with {field}={value}"),
        |o| {
            let cm = present(o)?;
            let got = &cm["data"][&field];
            if got == value.as_str() {
                Ok(())
            } else {
                Err(format!("data.{field} = {got}"))
            }
        },
    )
    .await
}

/// The live object contains every field of the YAML in the docstring.
#[then(expr = "cluster {string} has {word} {string} matching:")]
async fn matching(
    world: &mut FleetWorld,
    cluster: String,
    kind: String,
    key: String,
    step: &Step,
) -> anyhow::Result<()> {
    let want = support::yaml(step.docstring.as_deref().unwrap_or_default())?;
    wait_object(world, &cluster, &kind, &key, "to match", |o| {
        let got = present(o)?;
        if is_subset(&want, got) {
            Ok(())
        } else {
            Err(format!("live object: {got}"))
        }
    })
    .await
}

pub async fn cluster_object(world: &FleetWorld, name: &str) -> Result<Value, String> {
    let upstream = world.upstream().map_err(|e| e.to_string())?;
    support::get(
        &upstream,
        "Cluster",
        &format!("{CLUSTERS_NAMESPACE}/{name}"),
    )
    .await?
    .ok_or_else(|| format!("no Cluster {CLUSTERS_NAMESPACE}/{name}"))
}

/// Ready, with every bundle deployed to the cluster ready (`status.display.readyBundles`
/// `n/n`; the count includes the cluster's own agent bundle).
#[then(expr = "the Cluster {string} has all its bundles ready within {int}s")]
async fn cluster_ready(world: &mut FleetWorld, name: String, seconds: u64) -> anyhow::Result<()> {
    let world = &*world;
    eventually(
        scaled(seconds),
        &format!("Cluster {name} with all bundles ready"),
        || async {
            let c = cluster_object(world, &name).await?;
            let got = c["status"]["display"]["readyBundles"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let (status, message) = ready(&c);
            let all = got.split_once('/').is_some_and(|(r, d)| r == d && d != "0");
            if all && status == "True" {
                Ok(())
            } else {
                Err(format!("readyBundles {got:?}, Ready={status} {message:?}"))
            }
        },
    )
    .await
}

#[then(expr = "the Cluster {string} is not Ready within {int}s, saying {string}")]
async fn cluster_not_ready(
    world: &mut FleetWorld,
    name: String,
    seconds: u64,
    text: String,
) -> anyhow::Result<()> {
    let world = &*world;
    eventually(
        scaled(seconds),
        &format!("Cluster {name} not Ready saying {text:?}"),
        || async {
            let c = cluster_object(world, &name).await?;
            let (status, message) = ready(&c);
            if status == "False" && message.contains(&text) {
                Ok(())
            } else {
                Err(format!("Ready={status} {message:?}"))
            }
        },
    )
    .await
}

/// The agent reported in (status.agent.lastSeen) after this step started.
#[then(expr = "the agent of cluster {string} checks in within {int}s")]
async fn checks_in(world: &mut FleetWorld, name: String, seconds: u64) -> anyhow::Result<()> {
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);
    let world = &*world;
    eventually(
        scaled(seconds),
        &format!("agent of {name} to check in"),
        || async {
            let c = cluster_object(world, &name).await?;
            let seen = c["status"]["agent"]["lastSeen"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            match chrono::DateTime::parse_from_rfc3339(&seen) {
                Ok(t) if t >= since => Ok(()),
                _ => Err(format!("lastSeen {seen:?}")),
            }
        },
    )
    .await
}

//! The fleet's clusters: how many, their labels, their agents, their health.

use anyhow::bail;
use cucumber::gherkin::Step;
use cucumber::{given, when};
use fleet_cli::system::ClusterSpec;

use crate::support::parse_labels;
use crate::world::FleetWorld;

async fn join(world: &mut FleetWorld, specs: Vec<ClusterSpec>) -> anyhow::Result<()> {
    world.fleet().await?.add_clusters(&specs).await?;
    world.clusters.extend(specs);
    Ok(())
}

/// `Given a fleet of 3 clusters labelled env=dev, env=test, env=prod`: cluster `sim-N` gets the
/// N-th label set (several labels of one cluster joined with `+`, e.g. `env=prod+stage=canary`).
#[given(regex = r"^a fleet of (\d+) clusters? labelled (.+)$")]
async fn fleet_labelled(
    world: &mut FleetWorld,
    count: usize,
    labels: String,
) -> anyhow::Result<()> {
    fleet_of(world, count, &labels).await
}

#[given(regex = r"^a fleet of (\d+) clusters?$")]
async fn fleet_unlabelled(world: &mut FleetWorld, count: usize) -> anyhow::Result<()> {
    fleet_of(world, count, "").await
}

async fn fleet_of(world: &mut FleetWorld, count: usize, labels: &str) -> anyhow::Result<()> {
    let per_cluster: Vec<&str> = if labels.trim().is_empty() {
        Vec::new()
    } else {
        labels.split(',').map(str::trim).collect()
    };
    if !per_cluster.is_empty() && per_cluster.len() != count {
        bail!(
            "{count} clusters but {} label sets ({labels}): give one per cluster",
            per_cluster.len()
        );
    }
    let first = world.clusters.len() + 1;
    let mut specs = Vec::new();
    for i in 0..count {
        let mut spec = ClusterSpec::new(&format!("sim-{}", first + i));
        if let Some(set) = per_cluster.get(i) {
            for (k, v) in parse_labels(&set.replace('+', ","))? {
                spec = spec.label(&k, &v);
            }
        }
        specs.push(spec);
    }
    join(world, specs).await
}

/// A table `| cluster | labels |` with labels written `k=v,k2=v2`.
#[given(regex = r"^a fleet with the clusters:?$")]
async fn fleet_with_table(world: &mut FleetWorld, step: &Step) -> anyhow::Result<()> {
    let Some(table) = step.table.as_ref() else {
        bail!("the step needs a table | cluster | labels |");
    };
    let mut specs = Vec::new();
    for row in table.rows.iter().skip(1) {
        let name = row.first().map(String::as_str).unwrap_or_default().trim();
        let mut spec = ClusterSpec::new(name);
        for (k, v) in parse_labels(row.get(1).map(String::as_str).unwrap_or_default())? {
            spec = spec.label(&k, &v);
        }
        specs.push(spec);
    }
    join(world, specs).await
}

/// A cluster registered before Fleet 0.12: its agent runs as the StatefulSet `fleet-agent`.
#[given(expr = "a fleet with the cluster {string} running the pre-0.12 StatefulSet agent")]
async fn fleet_with_legacy_agent(world: &mut FleetWorld, name: String) -> anyhow::Result<()> {
    join(
        world,
        vec![ClusterSpec::new(&name).legacy_statefulset_agent()],
    )
    .await
}

#[when(regex = r#"^the cluster "([^"]+)" is relabelled (.+)$"#)]
async fn relabel(world: &mut FleetWorld, name: String, labels: String) -> anyhow::Result<()> {
    let labels: std::collections::BTreeMap<String, String> =
        parse_labels(&labels)?.into_iter().collect();
    world.started()?.set_cluster_labels(&name, &labels).await?;
    if let Some(spec) = world.clusters.iter_mut().find(|c| c.name == name) {
        spec.labels = labels;
    }
    Ok(())
}

#[given(expr = "the agent of cluster {string} is disconnected")]
#[when(expr = "the agent of cluster {string} is disconnected")]
async fn disconnect(world: &mut FleetWorld, name: String) -> anyhow::Result<()> {
    world.started()?.stop_agent(&name).await
}

#[when(expr = "the agent of cluster {string} reconnects")]
async fn reconnect(world: &mut FleetWorld, name: String) -> anyhow::Result<()> {
    world.started()?.start_agent(&name).await
}

/// Fault injection (simulator only): pods of the namespace run but never become ready.
#[given(expr = "cluster {string} cannot run workloads in namespace {string}")]
#[when(expr = "cluster {string} cannot run workloads in namespace {string}")]
async fn failing(world: &mut FleetWorld, name: String, namespace: String) -> anyhow::Result<()> {
    world.started()?.fail_workloads(&name, &namespace)
}

#[when(expr = "cluster {string} can run workloads in namespace {string} again")]
async fn healed(world: &mut FleetWorld, name: String, namespace: String) -> anyhow::Result<()> {
    world.started()?.heal_workloads(&name, &namespace).await
}

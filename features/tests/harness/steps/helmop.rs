//! HelmOps: Helm charts installed from a chart repository, without git.

use anyhow::{Context, anyhow};
use cucumber::gherkin::Step;
use cucumber::{given, then, when};
use kube::api::PostParams;
use serde_json::json;

use crate::backend::CLUSTERS_NAMESPACE;
use fleet_simulator::services::ChartRepo;

use crate::support::{self, eventually, ready, scaled};
use crate::world::FleetWorld;

/// The scenario's chart repository, started on first use.
fn chart_repo(world: &mut FleetWorld) -> anyhow::Result<&ChartRepo> {
    if world.chart_repo.is_none() {
        world.chart_repo = Some(ChartRepo::start().context("starting the chart repository")?);
    }
    world
        .chart_repo
        .as_ref()
        .ok_or_else(|| anyhow!("no chart repository"))
}

/// Publishes a one-ConfigMap chart: ConfigMap `<chart>-config` with `chartVersion` and the
/// value `greeting`, in the scenario's chart repository (served on 127.0.0.1).
#[given(expr = "a chart repository with the chart {string} version {string}")]
#[when(expr = "the chart repository publishes the chart {string} version {string}")]
async fn publish(world: &mut FleetWorld, chart: String, version: String) -> anyhow::Result<()> {
    chart_repo(world)?
        .publish(&chart, &version)
        .with_context(|| format!("publishing chart {chart} {version}"))
}

/// Any HelmOp spec, as YAML; `helm.repo` defaults to the scenario's chart repository.
#[when(expr = "I create the HelmOp {string}:")]
async fn create(world: &mut FleetWorld, name: String, step: &Step) -> anyhow::Result<()> {
    let text = step
        .docstring
        .as_deref()
        .ok_or_else(|| anyhow!("the step needs the HelmOp spec as a docstring"))?;
    let mut spec = support::yaml(text)?;
    let url = chart_repo(world)?.url();
    let helm = spec
        .get_mut("helm")
        .and_then(|h| h.as_object_mut())
        .ok_or_else(|| anyhow!("the HelmOp spec needs a `helm` mapping"))?;
    helm.entry("repo").or_insert(json!(url));
    let op: fleet_api::HelmOp = fleet_api::from_value(json!({
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "HelmOp",
        "metadata": {"name": name, "namespace": CLUSTERS_NAMESPACE},
        "spec": spec,
    }))
    .with_context(|| format!("HelmOp {name}"))?;
    kube::Api::<fleet_api::HelmOp>::namespaced(world.upstream()?, CLUSTERS_NAMESPACE)
        .create(&PostParams::default(), &op)
        .await
        .with_context(|| format!("creating HelmOp {CLUSTERS_NAMESPACE}/{name}"))?;
    Ok(())
}

/// Ready, with the resolved chart version, on that many clusters.
#[then(expr = "the HelmOp {string} is Ready with version {string} on {int} clusters within {int}s")]
async fn is_ready(
    world: &mut FleetWorld,
    name: String,
    version: String,
    clusters: i64,
    seconds: u64,
) -> anyhow::Result<()> {
    let upstream = world.upstream()?;
    let key = format!("{CLUSTERS_NAMESPACE}/{name}");
    eventually(
        scaled(seconds),
        &format!("HelmOp {name} Ready with version {version} on {clusters} clusters"),
        || async {
            let op = support::get(&upstream, "HelmOp", &key)
                .await?
                .ok_or_else(|| "no HelmOp".to_string())?;
            let s = &op["status"];
            if ready(&op).0 == "True"
                && s["version"] == version.as_str()
                && s["readyClusters"] == clusters
                && s["desiredReadyClusters"] == clusters
            {
                Ok(())
            } else {
                Err(serde_json::to_string(s).unwrap_or_default())
            }
        },
    )
    .await
}

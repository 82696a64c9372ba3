//! The agent's lifecycle on a downstream cluster: how it runs (StatefulSet before 0.12,
//! Deployment since), its upgrade by the controller, node taints and the Cluster's
//! agentTolerations, and what the deployed bundles see meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{anyhow, bail};
use cucumber::{given, then, when};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::backend::CLUSTERS_NAMESPACE;
use crate::support::{self, eventually, scaled};
use crate::world::{FleetWorld, ReadyWatch};

/// Where the agent runs downstream.
const AGENT_NAMESPACE: &str = "cattle-fleet-system";

/// A taint or toleration written `key=value:Effect`.
fn parse_taint(text: &str) -> anyhow::Result<(String, String, String)> {
    let (kv, effect) = text
        .split_once(':')
        .ok_or_else(|| anyhow!("{text:?} is not key=value:Effect"))?;
    let (key, value) = kv
        .split_once('=')
        .ok_or_else(|| anyhow!("{text:?} is not key=value:Effect"))?;
    Ok((key.to_string(), value.to_string(), effect.to_string()))
}

/// The agent's pods on `cluster` (those being deleted left out).
async fn agent_pods(world: &FleetWorld, cluster: &str) -> Result<Vec<Value>, String> {
    let client = world.cluster(cluster).map_err(|e| e.to_string())?;
    let api = support::api(&client, "Pod", Some(AGENT_NAMESPACE)).map_err(|e| e.to_string())?;
    let list = api
        .list(&kube::api::ListParams::default().labels("app=fleet-agent"))
        .await
        .map_err(|e| format!("listing agent pods on {cluster}: {e}"))?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| serde_json::to_value(p).unwrap_or_default())
        .collect())
}

fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or_default()
}

fn tolerates(pod: &Value, key: &str, value: &str) -> bool {
    pod["spec"]["tolerations"]
        .as_array()
        .is_some_and(|ts| ts.iter().any(|t| t["key"] == key && t["value"] == value))
}

/// The agent pods as a reader of a failed step needs them: name, phase, the tolerations that
/// are not added to every agent pod, and why a pod is not scheduled.
fn summary(pods: &[Value]) -> String {
    if pods.is_empty() {
        return format!("no agent pods (app=fleet-agent) in {AGENT_NAMESPACE}");
    }
    // Fleet's own and Kubernetes' default (not-ready/unreachable) tolerations.
    let builtin = [
        "node.cloudprovider.kubernetes.io/uninitialized",
        "cattle.io/os",
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ];
    pods.iter()
        .map(|p| {
            let tolerations: Vec<String> = p["spec"]["tolerations"]
                .as_array()
                .map(|ts| {
                    ts.iter()
                        .filter(|t| !builtin.iter().any(|b| t["key"] == *b))
                        .map(|t| {
                            format!(
                                "{}={}:{}",
                                t["key"].as_str().unwrap_or("*"),
                                t["value"].as_str().unwrap_or_default(),
                                t["effect"].as_str().unwrap_or_default()
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let unscheduled = p["status"]["conditions"].as_array().and_then(|cs| {
                cs.iter()
                    .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")
            });
            let mut line = format!(
                "{} {} tolerating [{}]",
                p["metadata"]["name"].as_str().unwrap_or_default(),
                phase(p),
                tolerations.join(", ")
            );
            if let Some(c) = unscheduled {
                line.push_str(&format!(
                    " (not scheduled: {})",
                    c["message"].as_str().unwrap_or_default()
                ));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The agent runs as the workload `kind` (`StatefulSet` or `Deployment`) `fleet-agent`: it
/// exists and one of its pods runs.
#[then(expr = "cluster {string} runs the agent as a {word} within {int}s")]
async fn runs_agent_as(
    world: &mut FleetWorld,
    cluster: String,
    kind: String,
    seconds: u64,
) -> anyhow::Result<()> {
    wait_agent_workload(world, &cluster, &kind, false, seconds).await
}

/// As above, and the other kind is gone: every agent pod belongs to `kind`.
#[then(expr = "cluster {string} runs the agent only as a {word} within {int}s")]
async fn runs_agent_only_as(
    world: &mut FleetWorld,
    cluster: String,
    kind: String,
    seconds: u64,
) -> anyhow::Result<()> {
    wait_agent_workload(world, &cluster, &kind, true, seconds).await
}

async fn wait_agent_workload(
    world: &FleetWorld,
    cluster: &str,
    kind: &str,
    only: bool,
    seconds: u64,
) -> anyhow::Result<()> {
    let other = match kind {
        "StatefulSet" => "Deployment",
        "Deployment" => "StatefulSet",
        _ => bail!("the agent runs as a StatefulSet or a Deployment, not a {kind}"),
    };
    let client = world.cluster(cluster)?;
    let key = format!("{AGENT_NAMESPACE}/fleet-agent");
    eventually(
        scaled(seconds),
        &format!("the agent of {cluster} to run as a {kind}"),
        || async {
            let wanted = support::get(&client, kind, &key).await?;
            let unwanted = support::get(&client, other, &key).await?;
            let pods = agent_pods(world, cluster).await?;
            // The StatefulSet's pod is `fleet-agent-0`; the Deployment's pods are not.
            let of_kind =
                |p: &Value| (p["metadata"]["name"] == "fleet-agent-0") == (kind == "StatefulSet");
            let running = |p: &&Value| phase(p) == "Running";
            let holds = if only {
                wanted.is_some()
                    && unwanted.is_none()
                    && !pods.is_empty()
                    && pods.iter().all(|p| running(&p) && of_kind(p))
            } else {
                wanted.is_some() && pods.iter().filter(running).any(of_kind)
            };
            if holds {
                Ok(())
            } else {
                Err(format!(
                    "{kind} present: {}, {other} present: {}, pods: {}",
                    wanted.is_some(),
                    unwanted.is_some(),
                    summary(&pods)
                ))
            }
        },
    )
    .await
}

/// Fleet's upgrade path for a cluster registered with a pre-0.12 agent: the Cluster gets a
/// kubeconfig Secret and the controller deploys the agent itself (simulator only).
#[when(expr = "the Cluster {string} is imported with its kubeconfig")]
async fn import(world: &mut FleetWorld, cluster: String) -> anyhow::Result<()> {
    world.started()?.import_cluster(&cluster).await
}

#[then(expr = "the Cluster {string} is Imported within {int}s")]
async fn imported(world: &mut FleetWorld, cluster: String, seconds: u64) -> anyhow::Result<()> {
    let upstream = world.upstream()?;
    let key = format!("{CLUSTERS_NAMESPACE}/{cluster}");
    eventually(
        scaled(seconds),
        &format!("Cluster {cluster} to be Imported"),
        || async {
            let c = support::get(&upstream, "Cluster", &key)
                .await?
                .ok_or_else(|| "no Cluster".to_string())?;
            match support::condition(&c, "Imported") {
                Some(cond) if cond["status"] == "True" => Ok(()),
                other => Err(format!("Imported condition {other:?}")),
            }
        },
    )
    .await
}

/// Notes the uid of a deployed object, to check later that it was not redeployed.
#[given(expr = "I note the uid of {word} {string} on cluster {string}")]
#[when(expr = "I note the uid of {word} {string} on cluster {string}")]
async fn note_uid(
    world: &mut FleetWorld,
    kind: String,
    key: String,
    cluster: String,
) -> anyhow::Result<()> {
    let client = world.cluster(&cluster)?;
    let obj = support::get(&client, &kind, &key)
        .await
        .map_err(anyhow::Error::msg)?
        .ok_or_else(|| anyhow!("{kind} {key} is not on cluster {cluster}"))?;
    let uid = obj["metadata"]["uid"]
        .as_str()
        .ok_or_else(|| anyhow!("{kind} {key} on {cluster} has no uid"))?
        .to_string();
    world
        .noted_uids
        .insert(format!("{cluster}/{kind}/{key}"), uid);
    Ok(())
}

#[then(expr = "{word} {string} on cluster {string} was not redeployed")]
async fn not_redeployed(
    world: &mut FleetWorld,
    kind: String,
    key: String,
    cluster: String,
) -> anyhow::Result<()> {
    let noted = world
        .noted_uids
        .get(&format!("{cluster}/{kind}/{key}"))
        .cloned()
        .ok_or_else(|| anyhow!("note the uid of {kind} {key} on cluster {cluster} first"))?;
    let client = world.cluster(&cluster)?;
    let obj = support::get(&client, &kind, &key)
        .await
        .map_err(anyhow::Error::msg)?
        .ok_or_else(|| anyhow!("{kind} {key} is gone from cluster {cluster}"))?;
    let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
    if uid != noted {
        bail!("{kind} {key} on cluster {cluster} was recreated: uid {noted} became {uid}");
    }
    Ok(())
}

/// Samples the BundleDeployment's Ready state in the background until the matching `Then`.
#[given(expr = "I watch the BundleDeployment of {string} on cluster {string}")]
#[when(expr = "I watch the BundleDeployment of {string} on cluster {string}")]
async fn watch(world: &mut FleetWorld, bundle: String, cluster: String) -> anyhow::Result<()> {
    let upstream = world.upstream()?;
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn({
        let stop = stop.clone();
        let (bundle, cluster) = (bundle.clone(), cluster.clone());
        async move {
            let mut not_ready = Vec::new();
            let mut samples = 0;
            while !stop.load(Ordering::SeqCst) {
                match support::bundle_deployment(&upstream, &bundle, &cluster).await {
                    Ok(bd) => {
                        let (status, message) = support::ready(&bd);
                        if status != "True" {
                            not_ready.push(format!("Ready={status:?} {message}"));
                        }
                    }
                    Err(e) => not_ready.push(e),
                }
                samples += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (samples, not_ready)
        }
    });
    world
        .watches
        .insert(format!("{bundle}/{cluster}"), ReadyWatch { stop, task });
    Ok(())
}

#[then(expr = "the BundleDeployment of {string} on cluster {string} stayed Ready all along")]
async fn stayed_ready(
    world: &mut FleetWorld,
    bundle: String,
    cluster: String,
) -> anyhow::Result<()> {
    let watch = world
        .watches
        .remove(&format!("{bundle}/{cluster}"))
        .ok_or_else(|| {
            anyhow!("watch the BundleDeployment of {bundle} on cluster {cluster} first")
        })?;
    watch.stop.store(true, Ordering::SeqCst);
    let (samples, not_ready) = watch.task.await?;
    if samples == 0 {
        bail!("the BundleDeployment of {bundle} on {cluster} was never sampled");
    }
    if !not_ready.is_empty() {
        bail!(
            "the BundleDeployment of {bundle} on {cluster} was not Ready in {} of {samples} samples: {:?}",
            not_ready.len(),
            not_ready.iter().take(5).collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// Taints every node of the cluster, e.g. `dedicated=fleet:NoSchedule`.
#[given(expr = "every node of cluster {string} is tainted {string}")]
#[when(expr = "every node of cluster {string} is tainted {string}")]
async fn taint_nodes(world: &mut FleetWorld, cluster: String, taint: String) -> anyhow::Result<()> {
    let (key, value, effect) = parse_taint(&taint)?;
    let client = world.cluster(&cluster)?;
    let nodes = support::api(&client, "Node", None)?;
    for node in nodes.list(&Default::default()).await?.items {
        let name = node.metadata.name.unwrap_or_default();
        nodes
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"spec": {"taints": [{"key": key, "value": value, "effect": effect}]}}),
                ),
            )
            .await
            .map_err(|e| anyhow!("tainting node {name} of {cluster}: {e}"))?;
    }
    Ok(())
}

/// Replaces the Cluster's `agentTolerations` with one toleration `key=value:Effect`.
#[given(expr = "the Cluster {string} has the agent toleration {string}")]
#[when(expr = "the Cluster {string} gets the agent toleration {string}")]
async fn agent_toleration(
    world: &mut FleetWorld,
    cluster: String,
    toleration: String,
) -> anyhow::Result<()> {
    let (key, value, effect) = parse_taint(&toleration)?;
    let api = support::api(&world.upstream()?, "Cluster", Some(CLUSTERS_NAMESPACE))?;
    api.patch(
        &cluster,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"agentTolerations": [
            {"key": key, "operator": "Equal", "value": value, "effect": effect}
        ]}})),
    )
    .await
    .map_err(|e| anyhow!("setting agentTolerations of Cluster {cluster}: {e}"))?;
    Ok(())
}

/// A new agent pod with the toleration cannot be scheduled; its PodScheduled message says why.
#[then(
    expr = "a new agent pod of cluster {string} tolerating {string} is Pending within {int}s, saying {string}"
)]
async fn pending_pod(
    world: &mut FleetWorld,
    cluster: String,
    toleration: String,
    seconds: u64,
    text: String,
) -> anyhow::Result<()> {
    let (key, value, _) = parse_taint(&toleration)?;
    let world = &*world;
    eventually(
        scaled(seconds),
        &format!("a Pending agent pod tolerating {toleration} on {cluster}"),
        || async {
            let pods = agent_pods(world, &cluster).await?;
            let pending = pods.iter().find(|p| {
                tolerates(p, &key, &value)
                    && phase(p) == "Pending"
                    && p["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter().any(|c| {
                            c["type"] == "PodScheduled"
                                && c["status"] == "False"
                                && c["message"]
                                    .as_str()
                                    .is_some_and(|m| m.contains(text.as_str()))
                        })
                    })
            });
            match pending {
                Some(_) => Ok(()),
                None => Err(summary(&pods)),
            }
        },
    )
    .await
}

/// The agent that ran before the change keeps running (checked at once).
#[then(expr = "the old agent pod of cluster {string} keeps running")]
async fn old_agent_runs(world: &mut FleetWorld, cluster: String) -> anyhow::Result<()> {
    let pods = agent_pods(world, &cluster)
        .await
        .map_err(anyhow::Error::msg)?;
    let running = pods.iter().filter(|p| phase(p) == "Running").count();
    if running == 0 {
        bail!("no agent pod of {cluster} runs: {}", summary(&pods));
    }
    Ok(())
}

/// The agent was redeployed: a single pod, Running, with the toleration.
#[then(expr = "the agent of cluster {string} runs only as a pod tolerating {string} within {int}s")]
async fn runs_tolerating(
    world: &mut FleetWorld,
    cluster: String,
    toleration: String,
    seconds: u64,
) -> anyhow::Result<()> {
    let (key, value, _) = parse_taint(&toleration)?;
    let world = &*world;
    eventually(
        scaled(seconds),
        &format!("the agent of {cluster} to run only as a pod tolerating {toleration}"),
        || async {
            let pods = agent_pods(world, &cluster).await?;
            if pods.len() == 1 && phase(&pods[0]) == "Running" && tolerates(&pods[0], &key, &value)
            {
                Ok(())
            } else {
                Err(summary(&pods))
            }
        },
    )
    .await
}

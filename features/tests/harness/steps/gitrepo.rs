//! GitRepos: creating them, changing their targets, and their status.

use anyhow::{Context, anyhow, bail};
use cucumber::gherkin::Step;
use cucumber::{then, when};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::backend::CLUSTERS_NAMESPACE;
use crate::support::{self, DEFAULT_WAIT, eventually, parse_labels, ready, scaled};
use crate::world::FleetWorld;

pub(crate) async fn create(
    world: &mut FleetWorld,
    name: &str,
    mut spec: Value,
) -> anyhow::Result<()> {
    let url = world.repo()?.url();
    let obj = spec
        .as_object_mut()
        .ok_or_else(|| anyhow!("the GitRepo spec must be a mapping"))?;
    obj.entry("repo").or_insert(json!(url));
    obj.entry("branch").or_insert(json!("main"));
    let repo: fleet_api::GitRepo = fleet_api::from_value(json!({
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "GitRepo",
        "metadata": {"name": name, "namespace": CLUSTERS_NAMESPACE},
        "spec": spec,
    }))
    .with_context(|| format!("GitRepo {name}"))?;
    kube::Api::<fleet_api::GitRepo>::namespaced(world.upstream()?, CLUSTERS_NAMESPACE)
        .create(&PostParams::default(), &repo)
        .await
        .with_context(|| format!("creating GitRepo {CLUSTERS_NAMESPACE}/{name}"))?;
    Ok(())
}

/// The GitRepo with `paths` and no targets of its own (the bundles' fleet.yaml decide).
#[when(expr = "I create the GitRepo {string} with the paths {string}")]
async fn with_paths(world: &mut FleetWorld, name: String, paths: String) -> anyhow::Result<()> {
    let paths = support::parse_list(&paths);
    create(world, &name, json!({"paths": paths})).await
}

#[when(expr = "I create the GitRepo {string} targeting all clusters")]
async fn all_clusters(world: &mut FleetWorld, name: String) -> anyhow::Result<()> {
    create(world, &name, json!({"targets": [{"clusterSelector": {}}]})).await
}

/// Any GitRepo spec, as YAML; `repo` and `branch` default to the scenario's repository.
#[when(expr = "I create the GitRepo {string}:")]
async fn with_spec(world: &mut FleetWorld, name: String, step: &Step) -> anyhow::Result<()> {
    let text = step
        .docstring
        .as_deref()
        .ok_or_else(|| anyhow!("the step needs the GitRepo spec as a docstring"))?;
    let spec = support::yaml(text)?;
    create(world, &name, spec).await
}

/// Creates the GitRepo (whole repository) or replaces its targets.
#[when(regex = r#"^the GitRepo "([^"]+)" targets clusters with (.+)$"#)]
async fn targets(world: &mut FleetWorld, name: String, labels: String) -> anyhow::Result<()> {
    let labels: serde_json::Map<String, Value> = parse_labels(&labels)?
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    let targets = json!([{"clusterSelector": {"matchLabels": labels}}]);
    let upstream = world.upstream()?;
    let api = kube::Api::<fleet_api::GitRepo>::namespaced(upstream, CLUSTERS_NAMESPACE);
    if api.get_opt(&name).await?.is_some() {
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"targets": targets}})),
        )
        .await
        .with_context(|| format!("changing the targets of GitRepo {name}"))?;
        Ok(())
    } else {
        create(world, &name, json!({"targets": targets})).await
    }
}

#[when(expr = "I delete the GitRepo {string}")]
async fn delete(world: &mut FleetWorld, name: String) -> anyhow::Result<()> {
    kube::Api::<fleet_api::GitRepo>::namespaced(world.upstream()?, CLUSTERS_NAMESPACE)
        .delete(&name, &DeleteParams::default())
        .await
        .with_context(|| format!("deleting GitRepo {name}"))?;
    Ok(())
}

pub async fn gitrepo(world: &FleetWorld, name: &str) -> Result<Value, String> {
    let upstream = world.upstream().map_err(|e| e.to_string())?;
    support::get(
        &upstream,
        "GitRepo",
        &format!("{CLUSTERS_NAMESPACE}/{name}"),
    )
    .await?
    .ok_or_else(|| format!("GitRepo {name} does not exist"))
}

/// What a reader of a failed step needs of a GitRepo's status: the commit it reached, its
/// clusters, and every condition that is not True with its message.
fn brief(repo: &Value) -> String {
    let s = &repo["status"];
    let (_, ready_message) = ready(repo);
    let commit = s["commit"]
        .as_str()
        .filter(|c| !c.is_empty())
        .unwrap_or("none");
    let not_true: Vec<String> = s["conditions"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter(|c| c["status"] != "True" && c["type"] != "Ready")
                .map(|c| {
                    let message = c["message"].as_str().unwrap_or_default();
                    format!(
                        "{}={} {}",
                        c["type"].as_str().unwrap_or_default(),
                        c["status"].as_str().unwrap_or_default(),
                        if !message.is_empty() && message == ready_message {
                            "(the same message)".to_string()
                        } else {
                            format!("{message:?}")
                        }
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "commit {commit}, readyClusters {}/{}{}",
        s["readyClusters"].as_i64().unwrap_or(0),
        s["desiredReadyClusters"].as_i64().unwrap_or(0),
        if not_true.is_empty() {
            String::new()
        } else {
            format!("; {}", not_true.join("; "))
        }
    )
}

/// Ready at the newest commit, with every targeted cluster ready.
#[then(expr = "the GitRepo {string} is Ready within {int}s")]
async fn is_ready(world: &mut FleetWorld, name: String, seconds: u64) -> anyhow::Result<()> {
    let commit = world.commit.clone().unwrap_or_default();
    let world = &*world;
    eventually(
        scaled(seconds),
        &format!(
            "GitRepo {CLUSTERS_NAMESPACE}/{name} to be Ready at commit {commit} with all its clusters ready"
        ),
        || async {
            let repo = gitrepo(world, &name).await?;
            let (status, message) = ready(&repo);
            let s = &repo["status"];
            if s["commit"] == commit.as_str()
                && status == "True"
                && s["desiredReadyClusters"].as_i64().unwrap_or(0) > 0
                && s["readyClusters"] == s["desiredReadyClusters"]
            {
                Ok(())
            } else {
                Err(format!("Ready={status} {message:?}; {}", brief(&repo)))
            }
        },
    )
    .await
}

#[then(expr = "the GitRepo {string} is not Ready within {int}s, saying {string}")]
async fn not_ready(
    world: &mut FleetWorld,
    name: String,
    seconds: u64,
    text: String,
) -> anyhow::Result<()> {
    let commit = world.commit.clone().unwrap_or_default();
    let world = &*world;
    eventually(
        scaled(seconds),
        &format!("GitRepo {name} not Ready saying {text:?}"),
        || async {
            let repo = gitrepo(world, &name).await?;
            let (status, message) = ready(&repo);
            if repo["status"]["commit"] == commit.as_str()
                && status == "False"
                && message.contains(&text)
            {
                Ok(())
            } else {
                Err(format!("Ready={status} {message:?}"))
            }
        },
    )
    .await
}

#[then(expr = "the GitRepo {string} shows {string} bundle deployments ready")]
async fn display(world: &mut FleetWorld, name: String, want: String) -> anyhow::Result<()> {
    let world = &*world;
    eventually(
        DEFAULT_WAIT,
        &format!("GitRepo {name} to show {want} ready"),
        || async {
            let repo = gitrepo(world, &name).await?;
            let got = repo["status"]["display"]["readyBundleDeployments"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if got == want {
                Ok(())
            } else {
                Err(format!("readyBundleDeployments {got:?}"))
            }
        },
    )
    .await
}

/// A table `| cluster | ready | desiredReady | notReady | ... |`; cluster `all` is
/// `resourceCounts`, any other row `perClusterResourceCounts["fleet-default/<cluster>"]`.
/// Columns not given are not checked.
#[then(expr = "the GitRepo {string} resource counts are:")]
async fn resource_counts(world: &mut FleetWorld, name: String, step: &Step) -> anyhow::Result<()> {
    let Some(table) = step.table.as_ref() else {
        bail!("the step needs a table | cluster | ready | desiredReady | ... |");
    };
    let header = table.rows.first().cloned().unwrap_or_default();
    let mut want = Vec::new();
    for row in table.rows.iter().skip(1) {
        let cluster = row.first().cloned().unwrap_or_default();
        let mut counts = serde_json::Map::new();
        for (col, cell) in header.iter().zip(row).skip(1) {
            let n: i64 = cell
                .trim()
                .parse()
                .with_context(|| format!("count {cell:?} in column {col}"))?;
            counts.insert(col.trim().to_string(), json!(n));
        }
        want.push((cluster, Value::Object(counts)));
    }
    let world = &*world;
    eventually(DEFAULT_WAIT, &format!("GitRepo {name} resource counts"), || async {
        let repo = gitrepo(world, &name).await?;
        for (cluster, counts) in &want {
            let got = if cluster == "all" {
                &repo["status"]["resourceCounts"]
            } else {
                &repo["status"]["perClusterResourceCounts"][format!("{CLUSTERS_NAMESPACE}/{cluster}")]
            };
            // Fleet omits zero counts: a missing field reads as 0.
            let matches = counts.as_object().is_some_and(|m| {
                m.iter().all(|(k, v)| got[k].as_i64().unwrap_or(0) == v.as_i64().unwrap_or(-1))
            });
            if !matches {
                return Err(format!(
                    "{cluster}: want {counts}, got {got}; resourceCounts {} perClusterResourceCounts {}",
                    repo["status"]["resourceCounts"], repo["status"]["perClusterResourceCounts"]
                ));
            }
        }
        Ok(())
    })
    .await
}

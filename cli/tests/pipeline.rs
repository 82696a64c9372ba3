//! End to end on the simulator: a local git repository → GitRepo → Bundles →
//! BundleDeployments → agents → objects in the simulated clusters → status back upstream.
//! The real controller and agents run in-process (`fleet_cli::system::SimSystem`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use fleet_api::GitRepo;
use fleet_cli::system::{CLUSTERS_NAMESPACE, ClusterSpec, SimSystem, SystemOptions};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use support::*;

const ENVS: [(&str, &str); 3] = [("sim-1", "dev"), ("sim-2", "test"), ("sim-3", "prod")];

fn options() -> SystemOptions {
    let mut o = SystemOptions::default();
    o.controller.default_polling_interval = Duration::from_secs(1);
    o.agent_drift_delay = Duration::from_millis(200);
    o.agent_checkin_interval = Duration::from_secs(5);
    o
}

async fn system_with_envs() -> SimSystem {
    support::system_with_envs(options(), &ENVS).await
}

async fn create_gitrepo(system: &SimSystem, name: &str, spec: Value) {
    create_fleet_object::<GitRepo>(system, "GitRepo", name, spec).await;
}

async fn gitrepo_json(system: &SimSystem, name: &str) -> Value {
    fleet_object_json::<GitRepo>(system, name).await
}

/// Waits until the GitRepo is Ready at `commit` with every cluster ready.
async fn wait_gitrepo_ready(system: &SimSystem, name: &str, commit: &str, clusters: i64) -> Value {
    eventually(
        180,
        &format!("GitRepo {name} Ready at {commit}"),
        || async {
            let repo = gitrepo_json(system, name).await;
            let ready = condition(&repo, "Ready").cloned().unwrap_or(Value::Null);
            let status = &repo["status"];
            if status["commit"] == commit
                && ready["status"] == "True"
                && status["readyClusters"] == clusters
                && status["desiredReadyClusters"] == clusters
            {
                Ok(repo)
            } else {
                Err(format!(
                    "status: {}",
                    serde_json::to_string(status).unwrap_or_default()
                ))
            }
        },
    )
    .await
}

/// Every object `fleet test -l env=<env>` prints for `folder` is deployed in `cluster`.
async fn assert_deployed(
    system: &SimSystem,
    cluster: &str,
    env: &str,
    folder: &std::path::Path,
) -> usize {
    let client = system.cluster_client(cluster).expect("cluster");
    let expected = fleet_test_objects(folder, &[("env", env)]);
    assert!(
        !expected.is_empty(),
        "fleet test printed nothing for {}",
        folder.display()
    );
    for obj in &expected {
        let want = deployable_part(obj);
        let key = format!(
            "{} {}/{}",
            obj["kind"].as_str().unwrap_or_default(),
            obj["metadata"]["namespace"].as_str().unwrap_or_default(),
            obj["metadata"]["name"].as_str().unwrap_or_default()
        );
        eventually(
            120,
            &format!("{key} deployed to {cluster} as fleet test prints it"),
            || async {
                match live(&client, obj).await {
                    Some(got) if is_subset(&want, &got) => Ok(()),
                    Some(got) => Err(format!(
                        "live object differs: {}",
                        serde_json::to_string(&got).unwrap_or_default()
                    )),
                    None => Err("not deployed".into()),
                }
            },
        )
        .await;
    }
    expected.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitrepo_deploys_each_environment_and_reports_status() {
    let examples = fleet_examples();
    let repo = GitFixture::new();
    repo.copy_dir(
        &examples.join("multi-cluster/manifests"),
        "multi-cluster/manifests",
    );
    repo.copy_dir(&examples.join("multi-cluster/helm"), "multi-cluster/helm");
    let commit = repo.commit("fleet examples");

    let system = system_with_envs().await;
    create_gitrepo(
        &system,
        "examples",
        json!({"repo": repo.url(), "branch": "main", "paths": ["multi-cluster/manifests", "multi-cluster/helm"]}),
    )
    .await;

    wait_gitrepo_ready(&system, "examples", &commit, 3).await;
    let mut total = 0;
    let mut per_cluster = std::collections::BTreeMap::new();
    for (cluster, env) in ENVS {
        let mut n = 0;
        for case in ["multi-cluster/manifests", "multi-cluster/helm"] {
            n += assert_deployed(&system, cluster, env, &repo.path().join(case)).await;
        }
        per_cluster.insert(format!("{CLUSTERS_NAMESPACE}/{cluster}"), n);
        total += n;
    }
    // Counts once everything is ready (readiness of simulated workloads may lag the apply).
    let repo_status = eventually(
        120,
        "resourceCounts to cover every deployed object",
        || async {
            let repo = gitrepo_json(&system, "examples").await;
            let counts = &repo["status"]["resourceCounts"];
            if counts["ready"] == total as i64 && counts["desiredReady"] == total as i64 {
                Ok(repo)
            } else {
                Err(format!("resourceCounts {counts}, want ready={total}"))
            }
        },
    )
    .await;
    for (key, n) in &per_cluster {
        let counts = &repo_status["status"]["perClusterResourceCounts"][key];
        assert_eq!(
            counts["ready"], *n as i64,
            "perClusterResourceCounts[{key}] = {counts}"
        );
        assert_eq!(
            counts["desiredReady"], *n as i64,
            "perClusterResourceCounts[{key}] = {counts}"
        );
    }
    assert_eq!(
        repo_status["status"]["display"]["readyBundleDeployments"],
        "6/6"
    );
    assert_eq!(repo_status["status"]["summary"]["ready"], 6);
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_commits_roll_out_prune_and_keep_resources() {
    let repo = GitFixture::new();
    let deployment = |replicas: u32| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n"
        )
    };
    repo.write("app/fleet.yaml", "defaultNamespace: shop\n");
    repo.write("app/web.yaml", &deployment(1));
    repo.write(
        "app/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: blue\n",
    );
    repo.write(
        "kept/fleet.yaml",
        "defaultNamespace: kept\nkeepResources: true\n",
    );
    repo.write(
        "kept/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\ndata:\n  a: b\n",
    );
    let first = repo.commit("first");

    let system = system_with_envs().await;
    create_gitrepo(
        &system,
        "shop",
        json!({"repo": repo.url(), "branch": "main", "targets": [{"clusterSelector": {}}]}),
    )
    .await;
    wait_gitrepo_ready(&system, "shop", &first, 3).await;

    let web = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}});
    let settings = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"}});
    let kept = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kept", "namespace": "kept"}});

    // replicas 1 → 3 and settings.yaml removed
    repo.write("app/web.yaml", &deployment(3));
    repo.remove("app/settings.yaml");
    let second = repo.commit("scale and drop settings");
    for (cluster, _) in ENVS {
        let client = system.cluster_client(cluster).expect("cluster");
        eventually(120, &format!("web scaled to 3 on {cluster}"), || async {
            match live(&client, &web).await {
                Some(d) if d["spec"]["replicas"] == 3 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        eventually(120, &format!("settings pruned on {cluster}"), || async {
            match live(&client, &settings).await {
                None => Ok(()),
                Some(_) => Err("still there".into()),
            }
        })
        .await;
    }
    wait_gitrepo_ready(&system, "shop", &second, 3).await;

    // The kept bundle's folder goes away: with keepResources its objects stay.
    std::fs::remove_dir_all(repo.path().join("kept")).expect("rm kept");
    let third = repo.commit("drop kept bundle");
    wait_gitrepo_ready(&system, "shop", &third, 3).await;
    let bundles: Api<fleet_api::Bundle> =
        Api::namespaced(system.upstream_client(), CLUSTERS_NAMESPACE);
    eventually(120, "the kept bundle to be deleted", || async {
        match bundles.get_opt("shop-kept").await {
            Ok(None) => Ok(()),
            other => Err(format!("{:?}", other.map(|b| b.map(|b| b.metadata.name)))),
        }
    })
    .await;
    // Give the agents time to act on the deletion, then check the objects are still there.
    let bds: Api<fleet_api::BundleDeployment> = Api::all(system.upstream_client());
    eventually(120, "the kept bundle's deployments to be gone", || async {
        let list = bds
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?;
        let left: Vec<_> = list
            .items
            .iter()
            .filter(|bd| bd.metadata.name.as_deref() == Some("shop-kept"))
            .map(|bd| bd.metadata.namespace.clone())
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    })
    .await;
    for (cluster, _) in ENVS {
        let client = system.cluster_client(cluster).expect("cluster");
        assert!(
            live(&client, &kept).await.is_some(),
            "keepResources: kept/kept must stay on {cluster}"
        );
    }

    // The last folder goes: its bundle is pruned too (the GitRepo reports that nothing is
    // left to deploy) and, without keepResources, its objects leave every cluster.
    std::fs::remove_dir_all(repo.path().join("app")).expect("rm app");
    repo.commit("drop the last bundle");
    eventually(120, "the last bundle to be deleted", || async {
        match bundles.get_opt("shop-app").await {
            Ok(None) => Ok(()),
            other => Err(format!("{:?}", other.map(|b| b.map(|b| b.metadata.name)))),
        }
    })
    .await;
    for (cluster, _) in ENVS {
        let client = system.cluster_client(cluster).expect("cluster");
        eventually(120, &format!("web removed from {cluster}"), || async {
            match live(&client, &web).await {
                None => Ok(()),
                Some(_) => Err("still there".into()),
            }
        })
        .await;
        assert!(
            live(&client, &kept).await.is_some(),
            "keepResources: kept/kept still stays on {cluster}"
        );
    }
    eventually(120, "Ready=False: nothing left to deploy", || async {
        let repo = gitrepo_json(&system, "shop").await;
        let ready = condition(&repo, "Ready").cloned().unwrap_or(Value::Null);
        let message = ready["message"].as_str().unwrap_or_default();
        if ready["status"] == "False" && message.contains("no resource found") {
            Ok(())
        } else {
            Err(format!("Ready: {ready}"))
        }
    })
    .await;
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_reported_corrected_and_ignored_by_compare_patches() {
    let repo = GitFixture::new();
    let cm = |name: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  color: blue\n"
        )
    };
    repo.write("watched/fleet.yaml", "defaultNamespace: drift\n");
    repo.write("watched/cm.yaml", &cm("watched"));
    repo.write(
        "corrected/fleet.yaml",
        "defaultNamespace: drift\ncorrectDrift:\n  enabled: true\n",
    );
    repo.write("corrected/cm.yaml", &cm("corrected"));
    repo.write(
        "ignored/fleet.yaml",
        "defaultNamespace: drift\ndiff:\n  comparePatches:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: ignored\n    namespace: drift\n    operations:\n    - {op: remove, path: /data/color}\n",
    );
    repo.write("ignored/cm.yaml", &cm("ignored"));
    let commit = repo.commit("drift cases");

    let system = system_with_envs().await;
    create_gitrepo(
        &system,
        "drift",
        json!({"repo": repo.url(), "branch": "main", "targets": [{"clusterSelector": {}}]}),
    )
    .await;
    wait_gitrepo_ready(&system, "drift", &commit, 3).await;

    let client = system.cluster_client("sim-1").expect("cluster");
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), "drift");
    for name in ["watched", "corrected", "ignored"] {
        cms.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"color": "red"}})),
        )
        .await
        .expect("change downstream");
    }
    let bd_status = |bundle: &'static str| {
        let upstream = system.upstream_client();
        async move {
            let list = Api::<fleet_api::BundleDeployment>::all(upstream)
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            list.items
                .into_iter()
                .find(|bd| {
                    bd.metadata.name.as_deref() == Some(bundle)
                        && bd
                            .metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get("fleet.cattle.io/cluster"))
                            .map(String::as_str)
                            == Some("sim-1")
                })
                .map(|bd| serde_json::to_value(bd.status).unwrap_or_default())
                .ok_or_else(|| format!("no BundleDeployment {bundle} for sim-1"))
        }
    };
    // watched: Modified with the patch that puts it back
    eventually(120, "drift-watched to be Modified on sim-1", || async {
        let s = bd_status("drift-watched").await?;
        let modified = s["modifiedStatus"].as_array().cloned().unwrap_or_default();
        // `nonModified` is omitted when false, as in Fleet's JSON.
        if s["nonModified"] != true
            && modified.iter().any(|m| {
                m["name"] == "watched" && m["patch"].as_str().is_some_and(|p| p.contains("blue"))
            })
        {
            Ok(())
        } else {
            Err(s.to_string())
        }
    })
    .await;
    // corrected: restored
    eventually(120, "drift-corrected to be restored on sim-1", || async {
        let cm = cms.get("corrected").await.map_err(|e| e.to_string())?;
        let color = cm.data.and_then(|d| d.get("color").cloned());
        if color.as_deref() == Some("blue") {
            Ok(())
        } else {
            Err(format!("{color:?}"))
        }
    })
    .await;
    // ignored: the change stays and is not reported
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = bd_status("drift-ignored").await.expect("status");
    assert_ne!(
        s["nonModified"], false,
        "comparePatches must hide the change: {s}"
    );
    let cm = cms.get("ignored").await.expect("cm");
    assert_eq!(
        cm.data.and_then(|d| d.get("color").cloned()).as_deref(),
        Some("red")
    );
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_cluster_label_is_a_targeting_error_naming_the_cluster() {
    let repo = GitFixture::new();
    repo.write(
        "templated/fleet.yaml",
        "defaultNamespace: tpl\nhelm:\n  values:\n    region: ${ .ClusterLabels.region }\n",
    );
    repo.write(
        "templated/Chart.yaml",
        "apiVersion: v2\nname: tpl\nversion: 0.1.0\n",
    );
    repo.write("templated/templates/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: region\ndata:\n  region: {{ .Values.region }}\n");
    let commit = repo.commit("templated");

    let system = SimSystem::start(options()).await.expect("system");
    system
        .add_clusters(&[
            ClusterSpec::new("sim-1").label("region", "eu"),
            ClusterSpec::new("sim-2").label("region", "us"),
            // Labelled, but not with the label the values need (Fleet skips templating for
            // clusters without any label).
            ClusterSpec::new("sim-3").label("env", "prod"),
        ])
        .await
        .expect("clusters");
    create_gitrepo(
        &system,
        "tpl",
        json!({"repo": repo.url(), "branch": "main", "targets": [{"clusterSelector": {}}]}),
    )
    .await;

    let bundles: Api<fleet_api::Bundle> =
        Api::namespaced(system.upstream_client(), CLUSTERS_NAMESPACE);
    eventually(120, "the Bundle to report the targeting error", || async {
        let b = bundles
            .get_opt("tpl-templated")
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no bundle")?;
        let v = serde_json::to_value(&b).unwrap_or_default();
        let ready = condition(&v, "Ready").cloned().unwrap_or_default();
        let msg = ready["message"].as_str().unwrap_or_default();
        if ready["status"] == "False" && msg.contains("Targeting error") && msg.contains("sim-3") {
            Ok(())
        } else {
            Err(v["status"].to_string())
        }
    })
    .await;
    eventually(120, "the GitRepo to copy the targeting error", || async {
        let v = gitrepo_json(&system, "tpl").await;
        let msg = condition(&v, "Ready")
            .map(|c| c["message"].to_string())
            .unwrap_or_default();
        if v["status"]["commit"] == commit
            && msg.contains("Targeting error")
            && msg.contains("sim-3")
        {
            Ok(())
        } else {
            Err(v["status"].to_string())
        }
    })
    .await;
    for (cluster, region) in [("sim-1", "eu"), ("sim-2", "us")] {
        let client = system.cluster_client(cluster).expect("cluster");
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "region", "namespace": "tpl"}});
        eventually(120, &format!("region configmap on {cluster}"), || async {
            match live(&client, &obj).await {
                Some(cm) if cm["data"]["region"] == region => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    }
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_charts_and_unreachable_repositories_are_reported_and_nothing_deployed_is_lost() {
    let repo = GitFixture::new();
    repo.write("good/fleet.yaml", "defaultNamespace: good\n");
    repo.write(
        "good/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: good\ndata:\n  a: b\n",
    );
    let first = repo.commit("good");
    let system = system_with_envs().await;
    create_gitrepo(
        &system,
        "mixed",
        json!({"repo": repo.url(), "branch": "main", "targets": [{"clusterSelector": {}}]}),
    )
    .await;
    wait_gitrepo_ready(&system, "mixed", &first, 3).await;

    // A broken chart arrives: the GitRepo says which bundle failed and why; what is
    // deployed stays.
    repo.write("broken/fleet.yaml", "defaultNamespace: broken\n");
    repo.write(
        "broken/Chart.yaml",
        "apiVersion: v2\nname: broken\nversion: 0.1.0\n",
    );
    repo.write(
        "broken/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.name | required \"name is required\" }}\n",
    );
    let second = repo.commit("broken chart");
    let good = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "good", "namespace": "good"}});
    eventually(
        180,
        "the broken chart to be reported on the GitRepo",
        || async {
            let v = gitrepo_json(&system, "mixed").await;
            let ready = condition(&v, "Ready").cloned().unwrap_or_default();
            let msg = ready["message"].as_str().unwrap_or_default();
            if v["status"]["commit"] == second.as_str()
                && ready["status"] == "False"
                && msg.contains("mixed-broken")
                && msg.contains("name is required")
            {
                Ok(())
            } else {
                Err(v["status"].to_string())
            }
        },
    )
    .await;
    for (cluster, _) in ENVS {
        let client = system.cluster_client(cluster).expect("cluster");
        assert!(
            live(&client, &good).await.is_some(),
            "good/good must stay on {cluster}"
        );
    }

    // The repository becomes unreachable: GitPolling says so, naming the repo.
    let url = repo.url();
    Api::<GitRepo>::namespaced(system.upstream_client(), CLUSTERS_NAMESPACE)
        .patch(
            "mixed",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"repo": format!("{url}-gone")}})),
        )
        .await
        .expect("patch repo");
    eventually(120, "the fetch error to be reported", || async {
        let v = gitrepo_json(&system, "mixed").await;
        let text = v["status"]["conditions"].to_string();
        if text.contains("-gone") {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;
    for (cluster, _) in ENVS {
        let client = system.cluster_client(cluster).expect("cluster");
        assert!(
            live(&client, &good).await.is_some(),
            "good/good must stay on {cluster} while the repo is unreachable"
        );
    }
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_the_controller_and_an_agent_mid_rollout_converges() {
    let repo = GitFixture::new();
    for i in 0..6 {
        repo.write(
            &format!("b{i}/fleet.yaml"),
            &format!("defaultNamespace: r{i}\n"),
        );
        repo.write(
            &format!("b{i}/cm.yaml"),
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  n: \"{i}\"\n"
            ),
        );
    }
    let commit = repo.commit("six bundles");
    let system = system_with_envs().await;
    create_gitrepo(
        &system,
        "restart",
        json!({"repo": repo.url(), "branch": "main", "targets": [{"clusterSelector": {}}]}),
    )
    .await;
    // Restart both while the rollout is under way.
    tokio::time::sleep(Duration::from_millis(300)).await;
    system.restart_controller().await;
    system.stop_agent("sim-2").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    system.start_agent("sim-2").await.expect("agent restarts");
    let status = wait_gitrepo_ready(&system, "restart", &commit, 3).await;
    assert_eq!(
        status["status"]["display"]["readyBundleDeployments"],
        "18/18"
    );
    for (cluster, _) in ENVS {
        let client = system.cluster_client(cluster).expect("cluster");
        for i in 0..6 {
            let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": format!("r{i}")}});
            assert!(live(&client, &obj).await.is_some(), "r{i}/cm on {cluster}");
        }
    }
    system.shutdown().await;
}

/// `fleet apply` as the git job runs it, against a cluster: Bundles of folders that are gone
/// are pruned, also the last one (then the run fails saying nothing is left to deploy), and a
/// run that fails to build deletes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_apply_prunes_bundles_of_removed_folders_also_the_last_one() {
    let sim = fleet_simulator::Simulator::new(fleet_simulator::SimConfig::default());
    let upstream = sim.add_cluster("upstream").expect("cluster");
    upstream
        .install_crds(&fleet_api::crds::all())
        .expect("crds");
    let client = upstream.client();
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(json!({"metadata": {"name": "fleet-local"}})).unwrap();
    Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .create(&Default::default(), &ns)
        .await
        .unwrap();
    let serve = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    upstream
        .write_kubeconfig(&kubeconfig, &serve.cluster_url("upstream"))
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let write = |path: &str, content: &str| {
        let p = work.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    };
    let cm = |name: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: b\n")
    };
    for app in ["one", "two"] {
        write(
            &format!("apps/{app}/fleet.yaml"),
            "defaultNamespace: apps\n",
        );
        write(&format!("apps/{app}/cm.yaml"), &cm(app));
    }
    let apply = || {
        let cwd = work.path().to_path_buf();
        let kubeconfig = kubeconfig.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_fleet"))
                .args(["apply", "-n", "fleet-local", "--commit", "c1"])
                .args([
                    "--label",
                    "fleet.cattle.io/repo-name=repo",
                    "repo",
                    "apps/*",
                ])
                .current_dir(cwd)
                .env("KUBECONFIG", kubeconfig)
                .env("FLEET_LOG", "warn")
                .output()
                .expect("running fleet apply")
        })
    };
    let bundles: Api<fleet_api::Bundle> = Api::namespaced(client.clone(), "fleet-local");
    let names = || async {
        bundles
            .list(&kube::api::ListParams::default().labels("fleet.cattle.io/repo-name=repo"))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|b| b.metadata.name)
            .collect::<Vec<_>>()
    };
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();

    let out = apply().await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(names().await, ["repo-apps-one", "repo-apps-two"]);

    // A removed folder: its Bundle is pruned.
    std::fs::remove_dir_all(work.path().join("apps/two")).unwrap();
    let out = apply().await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(names().await, ["repo-apps-one"]);

    // A run that fails to build (and would find no other folder) deletes nothing.
    write("apps/one/fleet.yaml", "helm: [unclosed\n");
    let out = apply().await.unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("apps/one/fleet.yaml"),
        "{}",
        stderr(&out)
    );
    assert_eq!(names().await, ["repo-apps-one"]);

    // The last folder goes: pruned too, and the run says nothing is left to deploy.
    std::fs::remove_dir_all(work.path().join("apps/one")).unwrap();
    let out = apply().await.unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no resource found"),
        "{}",
        stderr(&out)
    );
    assert!(names().await.is_empty());
    serve.shutdown().await;
}

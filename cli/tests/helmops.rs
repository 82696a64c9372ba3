//! HelmOps end to end on the simulator: a chart repository on 127.0.0.1 → HelmOp → Bundle
//! (no resources, version resolved) → BundleDeployments → agents download the chart → objects
//! in the simulated clusters → status back on the HelmOp. The real controller (HelmOps enabled)
//! and agents run in-process (`fleet_cli::system::SimSystem`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../controller/tests/helmops_support/mod.rs"]
mod helmops_support;
mod support;

use std::time::Duration;

use fleet_api::HelmOp;
use fleet_cli::system::{CLUSTERS_NAMESPACE, SimSystem, SystemOptions};
use helmops_support::ChartRepo;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::{condition, eventually};

const ENVS: [(&str, &str); 3] = [("sim-1", "dev"), ("sim-2", "dev"), ("sim-3", "prod")];

async fn system() -> SimSystem {
    let mut o = SystemOptions::default();
    o.controller.default_polling_interval = Duration::from_secs(1);
    o.controller.helmops_enabled = true;
    o.agent_drift_delay = Duration::from_millis(200);
    o.agent_checkin_interval = Duration::from_secs(5);
    support::system_with_envs(o, &ENVS).await
}

async fn create_helmop(system: &SimSystem, name: &str, spec: Value) {
    support::create_fleet_object::<HelmOp>(system, "HelmOp", name, spec).await;
}

async fn helmop_json(system: &SimSystem, name: &str) -> Value {
    support::fleet_object_json::<HelmOp>(system, name).await
}

async fn configmap(system: &SimSystem, cluster: &str, ns: &str, name: &str) -> Option<ConfigMap> {
    let client = system.cluster_client(cluster).expect("cluster");
    Api::<ConfigMap>::namespaced(client, ns)
        .get_opt(name)
        .await
        .ok()
        .flatten()
}

/// Waits until ConfigMap `ns/name` in `cluster` has `data[key] == value`.
async fn wait_configmap(
    system: &SimSystem,
    cluster: &str,
    ns: &str,
    name: &str,
    want: &[(&str, &str)],
) {
    eventually(
        120,
        &format!("ConfigMap {ns}/{name} in {cluster} with {want:?}"),
        || async {
            let cm = configmap(system, cluster, ns, name).await;
            let data = cm.as_ref().and_then(|c| c.data.clone()).unwrap_or_default();
            if cm.is_some()
                && want
                    .iter()
                    .all(|(k, v)| data.get(*k).map(String::as_str) == Some(*v))
            {
                Ok(())
            } else {
                Err(format!("{data:?}"))
            }
        },
    )
    .await;
}

async fn wait_helmop_ready(system: &SimSystem, name: &str, version: &str, clusters: i64) -> Value {
    eventually(
        180,
        &format!("HelmOp {name} Ready at {version}"),
        || async {
            let op = helmop_json(system, name).await;
            let ready = condition(&op, "Ready").cloned().unwrap_or(Value::Null);
            let s = &op["status"];
            if s["version"] == version
                && ready["status"] == "True"
                && s["readyClusters"] == clusters
                && s["desiredReadyClusters"] == clusters
            {
                Ok(op)
            } else {
                Err(serde_json::to_string(s).unwrap_or_default())
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helmop_installs_customizes_upgrades_and_uninstalls() {
    let repo = ChartRepo::start();
    repo.publish("web", "1.0.0");
    repo.require_basic_auth("fleet", "s3cret");
    let system = system().await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "repo-creds", "namespace": CLUSTERS_NAMESPACE},
        "type": "kubernetes.io/basic-auth",
        "stringData": {"username": "fleet", "password": "s3cret"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(system.upstream_client(), CLUSTERS_NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    create_helmop(
        &system,
        "web",
        json!({
            "helm": {"repo": repo.url(), "chart": "web", "version": "~1.0",
                     "releaseName": "web", "values": {"greeting": "hello from fleet"}},
            "namespace": "web-ns",
            "helmSecretName": "repo-creds",
            "pollingInterval": "1s",
            "targets": [
                {"name": "dev", "clusterSelector": {"matchLabels": {"env": "dev"}},
                 "helm": {"values": {"greeting": "hello dev"}}},
                {"name": "prod", "clusterSelector": {"matchLabels": {"env": "prod"}}},
            ],
        }),
    )
    .await;

    // Installed everywhere, with the values of each target customization.
    for (cluster, env) in ENVS {
        let greeting = if env == "dev" {
            "hello dev"
        } else {
            "hello from fleet"
        };
        wait_configmap(
            &system,
            cluster,
            "web-ns",
            "web-config",
            &[("chartVersion", "1.0.0"), ("greeting", greeting)],
        )
        .await;
    }
    let op = wait_helmop_ready(&system, "web", "1.0.0", 3).await;
    assert_eq!(op["status"]["display"]["readyBundleDeployments"], "3/3");
    assert!(
        op["status"]["resourceCounts"]["ready"]
            .as_i64()
            .unwrap_or(0)
            >= 3,
        "{op}"
    );
    assert_eq!(
        op["status"]["perClusterResourceCounts"]
            .as_object()
            .map(|m| m.len()),
        Some(3),
        "{op}"
    );
    // Credentials went only to the repository, and the agents got their copy.
    assert!(
        repo.requests()
            .iter()
            .all(|(_, a)| a.as_deref() == Some("Basic ZmxlZXQ6czNjcmV0")),
        "every request to the repository carried the credentials"
    );
    assert!(
        repo.requests()
            .iter()
            .any(|(p, _)| p == "/charts/web-1.0.0.tgz"),
        "the agents downloaded the chart"
    );

    // A new matching version rolls out.
    repo.publish("web", "1.0.1");
    for (cluster, _) in ENVS {
        wait_configmap(
            &system,
            cluster,
            "web-ns",
            "web-config",
            &[("chartVersion", "1.0.1")],
        )
        .await;
    }
    wait_helmop_ready(&system, "web", "1.0.1", 3).await;

    // A version outside the constraint does not.
    repo.publish("web", "2.0.0");
    let seen = repo.requests().len();
    eventually(60, "three polls after publishing 2.0.0", || async {
        let n = repo
            .requests()
            .iter()
            .skip(seen)
            .filter(|(p, _)| p == "/charts/index.yaml")
            .count();
        if n >= 3 { Ok(()) } else { Err(format!("{n}")) }
    })
    .await;
    let cm = configmap(&system, "sim-3", "web-ns", "web-config")
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["chartVersion"], "1.0.1");

    // The repository goes down: status says so, nothing deployed is removed.
    repo.set_down(true);
    eventually(
        60,
        "HelmOp Ready=False while the repository is down",
        || async {
            let op = helmop_json(&system, "web").await;
            let ready = condition(&op, "Ready").cloned().unwrap_or(Value::Null);
            let msg = ready["message"].as_str().unwrap_or_default();
            if ready["status"] == "False" && msg.contains(&repo.url()) && msg.contains("\"web\"") {
                Ok(())
            } else {
                Err(serde_json::to_string(&op["status"]).unwrap())
            }
        },
    )
    .await;
    // A restarted agent must download again (its cache is gone) and fails: the objects stay.
    system.stop_agent("sim-1").await;
    system.start_agent("sim-1").await.expect("agent restarts");
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (cluster, _) in ENVS {
        let cm = configmap(&system, cluster, "web-ns", "web-config").await;
        assert!(
            cm.is_some(),
            "{cluster}: deployed objects stay while the repository is down"
        );
    }
    repo.set_down(false);
    wait_helmop_ready(&system, "web", "1.0.1", 3).await;

    // Deleting the HelmOp uninstalls the release everywhere.
    Api::<HelmOp>::namespaced(system.upstream_client(), CLUSTERS_NAMESPACE)
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    for (cluster, _) in ENVS {
        eventually(120, &format!("release removed from {cluster}"), || async {
            match configmap(&system, cluster, "web-ns", "web-config").await {
                None => Ok(()),
                Some(_) => Err("still deployed".into()),
            }
        })
        .await;
    }
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_resources_keeps_the_release_objects_after_deletion() {
    let repo = ChartRepo::start();
    repo.publish("kept", "0.3.0");
    let system = system().await;
    create_helmop(
        &system,
        "kept",
        json!({
            "helm": {"repo": repo.url(), "chart": "kept", "releaseName": "kept"},
            "namespace": "kept-ns",
            "keepResources": true,
            "targets": [{"clusterSelector": {"matchLabels": {"env": "prod"}}}],
        }),
    )
    .await;
    wait_configmap(
        &system,
        "sim-3",
        "kept-ns",
        "kept-config",
        &[("chartVersion", "0.3.0")],
    )
    .await;
    wait_helmop_ready(&system, "kept", "0.3.0", 1).await;
    assert!(
        configmap(&system, "sim-1", "kept-ns", "kept-config")
            .await
            .is_none(),
        "only prod is targeted"
    );

    // Values change through the HelmOp spec.
    let patch = json!({"spec": {"helm": {"values": {"greeting": "changed"}}}});
    Api::<HelmOp>::namespaced(system.upstream_client(), CLUSTERS_NAMESPACE)
        .patch("kept", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_configmap(
        &system,
        "sim-3",
        "kept-ns",
        "kept-config",
        &[("greeting", "changed")],
    )
    .await;

    Api::<HelmOp>::namespaced(system.upstream_client(), CLUSTERS_NAMESPACE)
        .delete("kept", &DeleteParams::default())
        .await
        .unwrap();
    let bundles: Api<fleet_api::BundleDeployment> = Api::all(system.upstream_client());
    eventually(120, "BundleDeployments of the HelmOp gone", || async {
        let left = bundles
            .list(&kube::api::ListParams::default().labels("fleet.cattle.io/fleet-helm-name=kept"))
            .await
            .map(|l| l.items.len())
            .unwrap_or(usize::MAX);
        if left == 0 {
            Ok(())
        } else {
            Err(format!("{left} left"))
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        configmap(&system, "sim-3", "kept-ns", "kept-config")
            .await
            .is_some(),
        "keepResources keeps the objects"
    );
    system.shutdown().await;
}

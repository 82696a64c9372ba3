//! The agent lifecycle on the simulated system: clusters join with a registration token and
//! their agents run as the pods of the Deployment `fleet-agent`; a tolerations change on a
//! Cluster whose nodes are tainted redeploys the agent (Pending while the tolerations do not
//! match, Running once they do); a cluster still running the pre-0.12 StatefulSet agent is
//! moved to the Deployment without touching what it deployed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure should panic

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fleet_api::{Bundle, BundleDeployment, Cluster, ClusterRegistration, ClusterRegistrationToken};
use fleet_cli::system::{
    CLUSTERS_NAMESPACE, ClusterSpec, REGISTRATION_TOKEN, SimSystem, SystemOptions,
};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::eventually;

const AGENT_NS: &str = "cattle-fleet-system";

fn options() -> SystemOptions {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_test_writer()
        .try_init();
    let mut o = SystemOptions::default();
    o.controller.default_polling_interval = Duration::from_secs(1);
    o.agent_drift_delay = Duration::from_millis(200);
    o.agent_checkin_interval = Duration::from_secs(2);
    o
}

async fn cluster(system: &SimSystem, name: &str) -> Cluster {
    Api::<Cluster>::namespaced(system.upstream_client(), CLUSTERS_NAMESPACE)
        .get(name)
        .await
        .expect("cluster")
}

async fn agent_pods(system: &SimSystem, name: &str) -> Vec<Pod> {
    let client = system.cluster_client(name).expect("cluster");
    Api::<Pod>::namespaced(client, AGENT_NS)
        .list(&ListParams::default().labels("app=fleet-agent"))
        .await
        .expect("pods")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

fn unschedulable(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            })
        })
}

fn has_toleration(pod: &Pod, key: &str, value: &str) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_ref())
        .is_some_and(|ts| {
            ts.iter()
                .any(|t| t.key.as_deref() == Some(key) && t.value.as_deref() == Some(value))
        })
}

fn bd_ready(bd: &BundleDeployment) -> bool {
    bd.status.as_ref().is_some_and(|s| {
        s.ready
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

async fn bd_of(system: &SimSystem, bundle: &str, cluster: &str) -> Option<BundleDeployment> {
    let ns = system.cluster_namespace(cluster).await.ok()?;
    Api::<BundleDeployment>::namespaced(system.upstream_client(), &ns)
        .get_opt(bundle)
        .await
        .ok()?
}

fn last_seen(c: &Cluster) -> Option<String> {
    c.status
        .as_ref()
        .and_then(|s| s.agent.last_seen.as_ref())
        .map(|t| t.0.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_register_with_a_token_and_their_agents_run_as_deployment_pods() {
    let system = SimSystem::start(options()).await.expect("system starts");
    system
        .add_clusters(&[
            ClusterSpec::new("sim-1").label("env", "dev"),
            ClusterSpec::new("sim-2").label("env", "prod"),
        ])
        .await
        .expect("clusters register");
    let upstream = system.upstream_client();
    assert!(
        Api::<ClusterRegistrationToken>::namespaced(upstream.clone(), CLUSTERS_NAMESPACE)
            .get_opt(REGISTRATION_TOKEN)
            .await
            .unwrap()
            .is_some()
    );
    let registrations =
        Api::<ClusterRegistration>::namespaced(upstream.clone(), CLUSTERS_NAMESPACE)
            .list(&ListParams::default())
            .await
            .unwrap();
    for name in ["sim-1", "sim-2"] {
        let c = cluster(&system, name).await;
        assert_eq!(
            c.spec.client_id,
            format!("fleet-sim-{name}"),
            "the pre-created Cluster is reused"
        );
        assert!(last_seen(&c).is_some(), "{name} checked in");
        assert!(
            registrations
                .items
                .iter()
                .any(|r| r.spec.client_id == c.spec.client_id),
            "{name} registered with its clientID"
        );
        let downstream = system.cluster_client(name).unwrap();
        let deployment = Api::<Deployment>::namespaced(downstream.clone(), AGENT_NS)
            .get("fleet-agent")
            .await
            .expect("agent Deployment");
        assert_eq!(deployment.spec.unwrap().replicas, Some(1));
        assert!(
            Api::<Secret>::namespaced(downstream.clone(), AGENT_NS)
                .get_opt("fleet-agent")
                .await
                .unwrap()
                .is_some(),
            "{name}: the agent's credentials were granted"
        );
        let pods = agent_pods(&system, name).await;
        assert!(
            pods.iter().any(|p| phase(p) == "Running"),
            "{name}: agent pod Running"
        );
        // The controller manages the agent: its bundle is deployed by the agent itself.
        eventually(
            120,
            &format!("{name}'s agent bundle to be Ready"),
            || async {
                match bd_of(&system, &format!("fleet-agent-{name}"), name).await {
                    Some(bd) if bd_ready(&bd) => Ok(()),
                    other => Err(format!("{:?}", other.map(|b| b.status))),
                }
            },
        )
        .await;
    }
    let mut running = system.running_agents().await;
    running.sort();
    assert_eq!(running, ["sim-1", "sim-2"]);
    // Disconnect and reconnect keep their meaning.
    system.stop_agent("sim-2").await;
    assert_eq!(system.running_agents().await, ["sim-1"]);
    system.start_agent("sim-2").await.unwrap();
    eventually(60, "sim-2's agent to run again", || async {
        if system.running_agents().await.len() == 2 {
            Ok(())
        } else {
            Err("not yet".to_string())
        }
    })
    .await;
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tolerations_change_redeploys_the_agent_onto_tainted_nodes() {
    let system = SimSystem::start(options()).await.expect("system starts");
    system
        .add_clusters(&[ClusterSpec::new("sim-1")])
        .await
        .expect("cluster registers");
    let downstream = system.cluster_client("sim-1").unwrap();
    // Every node gets a taint; the running agent stays (NoSchedule does not evict).
    let nodes = Api::<Node>::all(downstream.clone());
    for node in nodes.list(&ListParams::default()).await.unwrap().items {
        nodes
            .patch(
                node.metadata.name.as_deref().unwrap(),
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"taints": [{"key": "dedicated", "value": "fleet", "effect": "NoSchedule"}]}})),
            )
            .await
            .unwrap();
    }
    let clusters = Api::<Cluster>::namespaced(system.upstream_client(), CLUSTERS_NAMESPACE);
    let set_tolerations = |value: &'static str| {
        let clusters = clusters.clone();
        async move {
            clusters
                .patch(
                    "sim-1",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"agentTolerations": [{"key": "dedicated", "operator": "Equal", "value": value, "effect": "NoSchedule"}]}})),
                )
                .await
                .unwrap();
        }
    };

    // Tolerations that do not match the taint: the new agent pod stays Pending, the old one
    // keeps running and checking in.
    set_tolerations("other").await;
    let pending = eventually(120, "a Pending, unschedulable agent pod", || async {
        let pods = agent_pods(&system, "sim-1").await;
        pods.into_iter()
            .find(|p| {
                has_toleration(p, "dedicated", "other") && phase(p) == "Pending" && unschedulable(p)
            })
            .ok_or_else(|| "no pending pod yet".to_string())
    })
    .await;
    let message = pending
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"))
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert!(message.contains("untolerated taint"), "{message}");
    assert!(
        agent_pods(&system, "sim-1")
            .await
            .iter()
            .any(|p| phase(p) == "Running" && !has_toleration(p, "dedicated", "other")),
        "the old agent keeps running"
    );
    let seen = last_seen(&cluster(&system, "sim-1").await);
    eventually(60, "the old agent to keep checking in", || async {
        let now = last_seen(&cluster(&system, "sim-1").await);
        if now != seen {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    })
    .await;

    // Matching tolerations: the agent is redeployed onto the tainted node and takes over.
    set_tolerations("fleet").await;
    eventually(
        120,
        "the agent to run only as the tolerating pod",
        || async {
            let pods = agent_pods(&system, "sim-1").await;
            let summary: Vec<String> = pods
                .iter()
                .map(|p| {
                    format!(
                        "{} {}",
                        p.metadata.name.clone().unwrap_or_default(),
                        phase(p)
                    )
                })
                .collect();
            if pods.len() == 1
                && phase(&pods[0]) == "Running"
                && has_toleration(&pods[0], "dedicated", "fleet")
            {
                Ok(())
            } else {
                Err(summary.join(", "))
            }
        },
    )
    .await;
    let hash = eventually(60, "the tolerations hash in the Cluster status", || async {
        let c = cluster(&system, "sim-1").await;
        let hash = c
            .status
            .map(|s| s.agent_tolerations_hash)
            .unwrap_or_default();
        if hash.is_empty() {
            Err("no hash".to_string())
        } else {
            Ok(hash)
        }
    })
    .await;
    assert_eq!(hash.len(), 56);
    eventually(60, "one agent process for the new pod", || async {
        match system.agent_processes("sim-1").await {
            1 => Ok(()),
            n => Err(format!("{n} processes")),
        }
    })
    .await;
    // The new agent works: it checks in and its own bundle is Ready.
    let seen = last_seen(&cluster(&system, "sim-1").await);
    eventually(60, "the new agent to check in", || async {
        let now = last_seen(&cluster(&system, "sim-1").await);
        if now != seen {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    })
    .await;
    eventually(
        120,
        "the agent bundle to be Ready with the new tolerations",
        || async {
            match bd_of(&system, "fleet-agent-sim-1", "sim-1").await {
                Some(bd) if bd_ready(&bd) => Ok(()),
                other => Err(format!("{:?}", other.map(|b| b.status))),
            }
        },
    )
    .await;
    system.shutdown().await;
}

fn app_bundle() -> Bundle {
    serde_json::from_value(json!({
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "Bundle",
        "metadata": {"name": "app", "namespace": CLUSTERS_NAMESPACE},
        "spec": {
            "defaultNamespace": "app",
            "resources": [
                {"name": "cm.yaml", "content": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\ndata:\n  color: blue\n"},
                {"name": "deploy.yaml", "content": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx\n"}
            ],
            "targets": [{"clusterName": "sim-legacy"}]
        }
    }))
    .unwrap()
}

async fn uid_of(client: &kube::Client, kind: &str, ns: &str, name: &str) -> Option<String> {
    match kind {
        "ConfigMap" => Api::<ConfigMap>::namespaced(client.clone(), ns)
            .get_opt(name)
            .await
            .ok()?
            .and_then(|o| o.metadata.uid),
        _ => Api::<Deployment>::namespaced(client.clone(), ns)
            .get_opt(name)
            .await
            .ok()?
            .and_then(|o| o.metadata.uid),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_agent_is_upgraded_to_the_deployment_and_deployed_objects_stay() {
    let system = SimSystem::start(options()).await.expect("system starts");
    system
        .add_clusters(&[ClusterSpec::new("sim-legacy").legacy_statefulset_agent()])
        .await
        .expect("legacy cluster registers");
    let downstream = system.cluster_client("sim-legacy").unwrap();
    let statefulsets = Api::<StatefulSet>::namespaced(downstream.clone(), AGENT_NS);
    assert!(statefulsets.get_opt("fleet-agent").await.unwrap().is_some());
    assert!(
        agent_pods(&system, "sim-legacy")
            .await
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some("fleet-agent-0") && phase(p) == "Running"),
        "the StatefulSet's pod runs the agent"
    );

    Api::<Bundle>::namespaced(system.upstream_client(), CLUSTERS_NAMESPACE)
        .create(&PostParams::default(), &app_bundle())
        .await
        .unwrap();
    eventually(120, "the app to be deployed and Ready", || async {
        match bd_of(&system, "app", "sim-legacy").await {
            Some(bd) if bd_ready(&bd) => Ok(()),
            other => Err(format!("{:?}", other.map(|b| b.status))),
        }
    })
    .await;
    let objects = [
        ("ConfigMap", "app", "app-config"),
        ("Deployment", "app", "web"),
    ];
    let mut uids = Vec::new();
    for (kind, ns, name) in objects {
        uids.push(
            uid_of(&downstream, kind, ns, name)
                .await
                .expect("deployed object"),
        );
    }

    // Watch the app's BundleDeployment all through the upgrade.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn({
        let stop = stop.clone();
        let upstream = system.upstream_client();
        let ns = system.cluster_namespace("sim-legacy").await.unwrap();
        async move {
            let api = Api::<BundleDeployment>::namespaced(upstream, &ns);
            let mut not_ready: Vec<Value> = Vec::new();
            let mut samples = 0;
            while !stop.load(Ordering::SeqCst) {
                match api.get_opt("app").await {
                    Ok(Some(bd)) if bd_ready(&bd) => {}
                    Ok(other) => not_ready.push(json!(other.map(|b| b.status))),
                    Err(e) => not_ready.push(json!(e.to_string())),
                }
                samples += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (samples, not_ready)
        }
    });

    // The upgrade: the controller imports the cluster through its kubeconfig.
    let sim_cluster = system.simulator().cluster("sim-legacy").unwrap();
    let kubeconfig = sim_cluster.kubeconfig(&sim_cluster.in_process_url());
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("sim-legacy-kubeconfig".to_string()),
            namespace: Some(CLUSTERS_NAMESPACE.to_string()),
            ..Default::default()
        },
        data: Some(
            [
                ("value", kubeconfig),
                ("apiServerURL", system.upstream().in_process_url()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), k8s_openapi::ByteString(v.into_bytes())))
            .collect(),
        ),
        ..Default::default()
    };
    Api::<Secret>::namespaced(system.upstream_client(), CLUSTERS_NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    Api::<Cluster>::namespaced(system.upstream_client(), CLUSTERS_NAMESPACE)
        .patch(
            "sim-legacy",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"kubeConfigSecret": "sim-legacy-kubeconfig"}})),
        )
        .await
        .unwrap();
    eventually(120, "the import to finish", || async {
        let c = cluster(&system, "sim-legacy").await;
        let imported = c
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Imported"))
            .cloned();
        match imported {
            Some(c) if c.status == "True" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    eventually(
        120,
        "the StatefulSet to be gone and the Deployment's pod to run",
        || async {
            let sts = statefulsets
                .get_opt("fleet-agent")
                .await
                .map_err(|e| e.to_string())?;
            let pods = agent_pods(&system, "sim-legacy").await;
            let summary: Vec<String> = pods
                .iter()
                .map(|p| {
                    format!(
                        "{} {}",
                        p.metadata.name.clone().unwrap_or_default(),
                        phase(p)
                    )
                })
                .collect();
            if sts.is_none()
                && !pods.is_empty()
                && pods.iter().all(|p| {
                    p.metadata.name.as_deref() != Some("fleet-agent-0") && phase(p) == "Running"
                })
            {
                Ok(())
            } else {
                Err(format!(
                    "statefulset present: {}, pods: {}",
                    sts.is_some(),
                    summary.join(", ")
                ))
            }
        },
    )
    .await;
    // The new agent registered again (same Cluster, by clientID) and checks in.
    system
        .wait_checked_in("sim-legacy")
        .await
        .expect("new agent checks in");
    let seen = last_seen(&cluster(&system, "sim-legacy").await);
    eventually(60, "the new agent to keep checking in", || async {
        let now = last_seen(&cluster(&system, "sim-legacy").await);
        if now != seen {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    })
    .await;
    // Let the new agent re-check the app a few times before judging.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    let (samples, not_ready) = sampler.await.unwrap();
    assert!(samples > 10, "the BundleDeployment was sampled ({samples})");
    assert!(
        not_ready.is_empty(),
        "the app stayed Ready throughout: {not_ready:?}"
    );
    for ((kind, ns, name), uid) in objects.iter().zip(uids) {
        assert_eq!(
            uid_of(&downstream, kind, ns, name).await.as_deref(),
            Some(uid.as_str()),
            "{kind} {ns}/{name} kept its uid"
        );
    }
    assert!(
        Api::<Deployment>::namespaced(downstream.clone(), AGENT_NS)
            .get_opt("fleet-agent")
            .await
            .unwrap()
            .is_some()
    );
    system.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_behaviour_profile_the_installed_agent_still_runs() {
    let mut o = options();
    o.profile = None;
    let system = SimSystem::start(o).await.expect("system starts");
    system
        .add_clusters(&[ClusterSpec::new("bare-1")])
        .await
        .expect("cluster registers although no pod ever runs");
    assert!(
        agent_pods(&system, "bare-1").await.is_empty(),
        "no pods without a profile"
    );
    assert_eq!(system.running_agents().await, ["bare-1"]);
    assert!(last_seen(&cluster(&system, "bare-1").await).is_some());
    system.shutdown().await;
}

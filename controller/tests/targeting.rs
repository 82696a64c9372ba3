//! The bundle, cluster and cluster group reconcilers and leader election against the
//! in-process simulator. The tests play the agent by writing BundleDeployment status
//! themselves.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure should panic

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use fleet_api::{
    Bundle, BundleDeployment, BundleResource, BundleSpec, BundleTarget, Cluster, ClusterGroup,
    ClusterGroupSpec, ClusterSpec, Content, HelmOptions, RolloutStrategy,
};
use fleet_controller::target::cluster_namespace_name;
use fleet_controller::{Context, ControllerConfig, Metrics};
use fleet_simulator::{SimConfig, Simulator};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const NS: &str = "fleet-default";

struct Env {
    _sim: Simulator,
    client: kube::Client,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn config() -> ControllerConfig {
    ControllerConfig {
        bundle_workers: 4,
        cluster_workers: 4,
        clustergroup_workers: 2,
        content_gc_interval: Duration::from_millis(500),
        content_gc_grace: Duration::from_secs(1),
        ..ControllerConfig::default()
    }
}

/// An upstream cluster with Fleet's CRDs and the `fleet-default` namespace, and the bundle,
/// cluster and cluster group reconcilers running against it.
async fn start() -> Env {
    let sim = Simulator::new(SimConfig {
        profile: None,
        ..SimConfig::default()
    });
    let upstream = sim.add_cluster("upstream").unwrap();
    upstream.install_crds(&fleet_api::crds::all()).unwrap();
    let client = upstream.client();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NS}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    let ctx = Arc::new(Context::new(
        client.clone(),
        config(),
        Metrics::new(&mut registry),
    ));
    let shutdown = CancellationToken::new();
    let tasks = vec![
        tokio::spawn({
            let (ctx, s) = (ctx.clone(), shutdown.clone());
            async move {
                fleet_controller::bundle::run(ctx, s).await.unwrap();
            }
        }),
        tokio::spawn({
            let (ctx, s) = (ctx.clone(), shutdown.clone());
            async move {
                fleet_controller::cluster::run(ctx, s).await.unwrap();
            }
        }),
        tokio::spawn({
            let (ctx, s) = (ctx.clone(), shutdown.clone());
            async move {
                fleet_controller::clustergroup::run(ctx, s).await.unwrap();
            }
        }),
    ];
    Env {
        _sim: sim,
        client,
        shutdown,
        tasks,
    }
}

/// Polls `check` until it returns `Some`, for up to 60 seconds.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn selector(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels(pairs)),
        match_expressions: None,
    }
}

async fn create_cluster(client: &kube::Client, name: &str, l: &[(&str, &str)]) {
    let mut c = Cluster::new(name, ClusterSpec::default());
    c.metadata.labels = Some(labels(l));
    Api::<Cluster>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &c)
        .await
        .unwrap();
}

async fn set_cluster_labels(client: &kube::Client, name: &str, l: &[(&str, &str)]) {
    let mut labels_json = serde_json::Map::new();
    for (k, v) in l {
        labels_json.insert(k.to_string(), json!(v));
    }
    Api::<Cluster>::namespaced(client.clone(), NS)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": labels_json}})),
        )
        .await
        .unwrap();
}

fn configmap_resource(data: &str) -> BundleResource {
    BundleResource {
        name: "cm.yaml".into(),
        content: format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  key: {data}\n"
        ),
        encoding: String::new(),
    }
}

fn bundle(name: &str, targets: Vec<BundleTarget>, values: serde_json::Value) -> Bundle {
    let mut b = Bundle::new(
        name,
        BundleSpec {
            resources: vec![configmap_resource("v1")],
            targets,
            helm: Some(HelmOptions {
                values: values.as_object().cloned(),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    b.metadata.labels = Some(labels(&[
        ("fleet.cattle.io/repo-name", "repo"),
        ("team", "a"),
    ]));
    b
}

fn target(name: &str, pairs: &[(&str, &str)]) -> BundleTarget {
    BundleTarget {
        name: name.into(),
        cluster_selector: Some(selector(pairs)),
        ..Default::default()
    }
}

async fn get_bd(client: &kube::Client, cluster: &str, name: &str) -> Option<BundleDeployment> {
    Api::<BundleDeployment>::namespaced(client.clone(), &cluster_namespace_name(NS, cluster))
        .get_opt(name)
        .await
        .unwrap()
}

async fn bd_namespaces(client: &kube::Client, bundle: &str) -> Vec<String> {
    let mut v: Vec<String> = Api::<BundleDeployment>::all(client.clone())
        .list(&ListParams::default().labels(&format!("fleet.cattle.io/bundle-name={bundle}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|bd| bd.metadata.deletion_timestamp.is_none())
        .map(|bd| bd.metadata.namespace.unwrap())
        .collect();
    v.sort();
    v
}

fn cluster_namespaces(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names
        .iter()
        .map(|n| cluster_namespace_name(NS, n))
        .collect();
    v.sort();
    v
}

/// Plays the agent: the deployment is applied (at its current deployment ID) and `ready`.
async fn agent_reports(client: &kube::Client, cluster: &str, name: &str, ready: bool) {
    let bd = get_bd(client, cluster, name).await.unwrap();
    Api::<BundleDeployment>::namespaced(client.clone(), &cluster_namespace_name(NS, cluster))
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "appliedDeploymentID": bd.spec.deployment_id,
                "ready": ready,
                "nonModified": true,
                "resourceCounts": {"ready": if ready {1} else {0}, "desiredReady": 1,
                    "notReady": if ready {0} else {1}, "waitApplied": 0, "modified": 0,
                    "orphaned": 0, "missing": 0, "unknown": 0},
            }})),
        )
        .await
        .unwrap();
}

async fn bundle_status(client: &kube::Client, name: &str) -> Option<fleet_api::BundleStatus> {
    Api::<Bundle>::namespaced(client.clone(), NS)
        .get(name)
        .await
        .unwrap()
        .status
}

fn ready_condition(status: &fleet_api::BundleStatus) -> Option<(String, String)> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.message.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_deploys_to_matching_clusters_and_follows_label_changes() {
    let env = start().await;
    let client = &env.client;
    create_cluster(client, "c1", &[("env", "dev")]).await;
    create_cluster(client, "c2", &[("env", "prod")]).await;
    create_cluster(client, "c3", &[("env", "prod")]).await;
    let b = bundle(
        "app",
        vec![target("prod", &[("env", "prod")])],
        json!({"env": "${ .ClusterLabels.env }"}),
    );
    Api::<Bundle>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &b)
        .await
        .unwrap();

    eventually("deployments on c2 and c3", || async {
        (bd_namespaces(client, "app").await == cluster_namespaces(&["c2", "c3"])).then_some(())
    })
    .await;

    // The cluster reconciler assigned the namespace and created it as Fleet does.
    let c2: Cluster = Api::namespaced(client.clone(), NS).get("c2").await.unwrap();
    let c2_ns = cluster_namespace_name(NS, "c2");
    assert_eq!(c2.status.unwrap().namespace, c2_ns);
    let ns = Api::<Namespace>::all(client.clone())
        .get(&c2_ns)
        .await
        .unwrap();
    assert_eq!(
        ns.metadata.labels.unwrap()["fleet.cattle.io/managed"],
        "true"
    );
    let ann = ns.metadata.annotations.unwrap();
    assert_eq!(ann["fleet.cattle.io/cluster"], "c2");
    assert_eq!(ann["fleet.cattle.io/cluster-namespace"], NS);

    // Labels, deployment ID and options as Fleet writes them.
    let bd = get_bd(client, "c2", "app").await.unwrap();
    let l = bd.metadata.labels.clone().unwrap();
    assert_eq!(l["fleet.cattle.io/bundle-name"], "app");
    assert_eq!(l["fleet.cattle.io/bundle-namespace"], NS);
    assert_eq!(l["fleet.cattle.io/cluster"], "c2");
    assert_eq!(l["fleet.cattle.io/cluster-namespace"], NS);
    assert_eq!(l["fleet.cattle.io/repo-name"], "repo");
    assert_eq!(l["fleet.cattle.io/managed"], "true");
    assert_eq!(l["team"], "a");
    let manifest_id = fleet_bundle::manifest::manifest_id(&b.spec.resources);
    let mut options = b.spec.deployment_options();
    options.helm.as_mut().unwrap().values = json!({"env": "prod"}).as_object().cloned();
    let expected_id = fleet_bundle::options::deployment_id(&manifest_id, &options);
    assert_eq!(bd.spec.deployment_id, expected_id);
    assert_eq!(bd.spec.staged_deployment_id, expected_id);
    assert_eq!(bd.spec.options, options);
    assert_eq!(bd.spec.staged_options, options);

    // The Content holds the gzipped manifest under the manifest ID.
    let content: Content = Api::all(client.clone()).get(&manifest_id).await.unwrap();
    let mut manifest = Vec::new();
    flate2::read::GzDecoder::new(content.content.unwrap().0.as_slice())
        .read_to_end(&mut manifest)
        .unwrap();
    assert_eq!(
        manifest,
        fleet_bundle::manifest::manifest_json(&b.spec.resources)
    );
    assert_eq!(
        content.sha256sum,
        fleet_bundle::manifest::manifest_sha256(&b.spec.resources)
    );

    // Relabelling retargets: c1 joins, c2 leaves.
    set_cluster_labels(client, "c1", &[("env", "prod")]).await;
    set_cluster_labels(client, "c2", &[("env", "dev")]).await;
    eventually("deployments on c1 and c3", || async {
        (bd_namespaces(client, "app").await == cluster_namespaces(&["c1", "c3"])).then_some(())
    })
    .await;

    // Deleting a cluster removes its deployment and its cluster namespace.
    Api::<Cluster>::namespaced(client.clone(), NS)
        .delete("c3", &DeleteParams::default())
        .await
        .unwrap();
    eventually("deployment only on c1", || async {
        (bd_namespaces(client, "app").await == cluster_namespaces(&["c1"])).then_some(())
    })
    .await;
    let c3_ns = cluster_namespace_name(NS, "c3");
    eventually("namespace of c3 deleted", || async {
        let ns = Api::<Namespace>::all(client.clone())
            .get_opt(&c3_ns)
            .await
            .unwrap();
        ns.is_none_or(|n| n.metadata.deletion_timestamp.is_some())
            .then_some(())
    })
    .await;

    // Deleting the bundle deletes its deployments; the Content is collected.
    Api::<Bundle>::namespaced(client.clone(), NS)
        .delete("app", &DeleteParams::default())
        .await
        .unwrap();
    eventually("deployments purged", || async {
        bd_namespaces(client, "app").await.is_empty().then_some(())
    })
    .await;
    eventually("bundle gone", || async {
        Api::<Bundle>::namespaced(client.clone(), NS)
            .get_opt("app")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    eventually("content collected", || async {
        Api::<Content>::all(client.clone())
            .get_opt(&manifest_id)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

/// A BundleNamespaceMapping lets a bundle target clusters of other namespaces by their labels:
/// labelling such a namespace later re-plans the bundle (a Namespace change re-plans the
/// bundles of namespaces with mappings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_labelled_for_a_mapping_brings_its_clusters_in() {
    let env = start().await;
    let c = &env.client;
    let team_b: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "team-b"}})).unwrap();
    Api::<Namespace>::all(c.clone())
        .create(&PostParams::default(), &team_b)
        .await
        .unwrap();
    let mut remote = Cluster::new("cb", ClusterSpec::default());
    remote.metadata.labels = Some(labels(&[("env", "prod")]));
    Api::<Cluster>::namespaced(c.clone(), "team-b")
        .create(&PostParams::default(), &remote)
        .await
        .unwrap();
    create_cluster(c, "local", &[("env", "prod")]).await;
    let mapping: fleet_api::BundleNamespaceMapping = serde_json::from_value(json!({
        "metadata": {"name": "to-team-b", "namespace": NS},
        "bundleSelector": {"matchLabels": {"team": "a"}},
        "namespaceSelector": {"matchLabels": {"team": "b"}},
    }))
    .unwrap();
    Api::<fleet_api::BundleNamespaceMapping>::namespaced(c.clone(), NS)
        .create(&PostParams::default(), &mapping)
        .await
        .unwrap();
    Api::<Bundle>::namespaced(c.clone(), NS)
        .create(
            &PostParams::default(),
            &bundle(
                "mapped",
                vec![target("prod", &[("env", "prod")])],
                json!({}),
            ),
        )
        .await
        .unwrap();
    let remote_ns = cluster_namespace_name("team-b", "cb");
    eventually("the local cluster's deployment", || async {
        let namespaces = bd_namespaces(c, "mapped").await;
        (namespaces == cluster_namespaces(&["local"])).then_some(())
    })
    .await;
    // Past the bundle's own follow-up reconciles (status spacing), so only the Namespace
    // change can bring the remote cluster in.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        bd_namespaces(c, "mapped").await,
        cluster_namespaces(&["local"])
    );
    Api::<Namespace>::all(c.clone())
        .patch(
            "team-b",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "b"}}})),
        )
        .await
        .unwrap();
    eventually("the mapped namespace's cluster deployment", || async {
        bd_namespaces(c, "mapped")
            .await
            .contains(&remote_ns)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_cluster_label_is_a_targeting_error_naming_the_cluster() {
    let env = start().await;
    let client = &env.client;
    create_cluster(client, "good", &[("region", "eu")]).await;
    create_cluster(client, "bad", &[("env", "dev")]).await;
    let b = bundle(
        "tpl",
        vec![target("all", &[])],
        json!({"region": "${ .ClusterLabels.region }"}),
    );
    Api::<Bundle>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &b)
        .await
        .unwrap();
    let message = eventually("targeting error on the bundle", || async {
        let status = bundle_status(client, "tpl").await?;
        let (s, m) = ready_condition(&status)?;
        (s == "False" && m.starts_with("Targeting error:")).then_some(m)
    })
    .await;
    assert!(
        message.starts_with("Targeting error: cluster bad in namespace fleet-default: "),
        "{message}"
    );
    assert!(message.contains("region"), "{message}");
    eventually("the good cluster still deploys", || async {
        (bd_namespaces(client, "tpl").await == cluster_namespaces(&["good"])).then_some(())
    })
    .await;
    let bd = get_bd(client, "good", "tpl").await.unwrap();
    assert_eq!(
        bd.spec.options.helm.unwrap().values,
        json!({"region": "eu"}).as_object().cloned()
    );

    // Adding the label fixes it.
    set_cluster_labels(client, "bad", &[("region", "us")]).await;
    eventually("deployments on both clusters", || async {
        (bd_namespaces(client, "tpl").await == cluster_namespaces(&["bad", "good"])).then_some(())
    })
    .await;
    eventually("targeting error gone", || async {
        let status = bundle_status(client, "tpl").await?;
        let (_, m) = ready_condition(&status)?;
        (!m.starts_with("Targeting error")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_promotes_within_max_unavailable_and_statuses_aggregate() {
    let env = start().await;
    let client = &env.client;
    for name in ["r1", "r2", "r3"] {
        create_cluster(client, name, &[("env", "prod")]).await;
    }
    let group = ClusterGroup::new(
        "prod",
        ClusterGroupSpec {
            selector: Some(selector(&[("env", "prod")])),
        },
    );
    Api::<ClusterGroup>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &group)
        .await
        .unwrap();
    let mut b = bundle("roll", vec![target("prod", &[("env", "prod")])], json!({}));
    b.spec.rollout_strategy = Some(RolloutStrategy {
        max_unavailable: Some(IntOrString::Int(1)),
        ..Default::default()
    });
    let bundles = Api::<Bundle>::namespaced(client.clone(), NS);
    bundles.create(&PostParams::default(), &b).await.unwrap();
    let clusters = ["r1", "r2", "r3"];
    eventually("three deployments", || async {
        (bd_namespaces(client, "roll").await == cluster_namespaces(&clusters)).then_some(())
    })
    .await;

    // Not applied yet: WaitApplied everywhere; clusters wait for their agents.
    let status = eventually("bundle summary counts WaitApplied", || async {
        let s = bundle_status(client, "roll").await?;
        (s.summary.wait_applied == 3).then_some(s)
    })
    .await;
    assert_eq!(status.display.ready_clusters, "0/3");
    assert_eq!(status.display.state, "WaitApplied");
    let (ready, message) = ready_condition(&status).unwrap();
    assert_eq!(ready, "False");
    assert!(
        message.starts_with("WaitApplied(3) [Cluster fleet-default/r"),
        "{message}"
    );
    let cluster_api = Api::<Cluster>::namespaced(client.clone(), NS);
    let c = eventually("cluster display", || async {
        let c = cluster_api.get("r1").await.unwrap();
        let s = c.status.clone()?;
        (s.display.ready_bundles == "0/1").then_some(c)
    })
    .await;
    assert_eq!(c.status.unwrap().display.state, "WaitCheckIn");

    // The agents deploy and report ready: everything is ready.
    for name in clusters {
        agent_reports(client, name, "roll", true).await;
    }
    let status = eventually("bundle ready", || async {
        let s = bundle_status(client, "roll").await?;
        (s.display.ready_clusters == "3/3").then_some(s)
    })
    .await;
    assert_eq!(
        ready_condition(&status).unwrap(),
        ("True".into(), String::new())
    );
    assert_eq!(status.max_unavailable, 1);

    // The agent checks in: the cluster leaves WaitCheckIn; counts are summed from its BDs.
    cluster_api
        .patch_status(
            "r1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"agent": {"lastSeen": "2026-01-01T00:00:00Z", "namespace": "cattle-fleet-system"}}})),
        )
        .await
        .unwrap();
    let c = eventually("cluster r1 ready and checked in", || async {
        let c = cluster_api.get("r1").await.unwrap();
        let s = c.status.clone()?;
        (s.display.ready_bundles == "1/1" && s.display.state.is_empty()).then_some(s)
    })
    .await;
    assert_eq!(c.resource_counts.ready, 1);
    assert_eq!(c.resource_counts.desired_ready, 1);
    assert_eq!(c.ready_git_repos, 1);
    assert_eq!(c.desired_ready_git_repos, 1);
    assert!(c.agent.last_seen.is_some(), "the agent's field is kept");
    let groups = Api::<ClusterGroup>::namespaced(client.clone(), NS);
    let g = eventually("cluster group counts", || async {
        let s = groups.get("prod").await.unwrap().status?;
        (s.cluster_count == 3 && s.non_ready_cluster_count == 0 && s.summary.ready == 3)
            .then_some(s)
    })
    .await;
    assert_eq!(g.display.ready_clusters, "3/3");
    assert_eq!(g.resource_counts.ready, 3);

    // A new version: only one cluster at a time may be unavailable.
    let mut changed = bundles.get("roll").await.unwrap();
    changed.spec.resources = vec![configmap_resource("v2")];
    bundles
        .replace("roll", &PostParams::default(), &changed)
        .await
        .unwrap();
    let new_manifest = fleet_bundle::manifest::manifest_id(&changed.spec.resources);
    let promoted = |bd: &BundleDeployment| bd.spec.deployment_id.starts_with(&new_manifest);
    let staged = |bd: &BundleDeployment| bd.spec.staged_deployment_id.starts_with(&new_manifest);
    let first = eventually("all staged, one promoted", || async {
        let mut promoted_on = Vec::new();
        for name in clusters {
            let bd = get_bd(client, name, "roll").await?;
            if !staged(&bd) {
                return None;
            }
            if promoted(&bd) {
                promoted_on.push(name);
            }
        }
        (promoted_on.len() == 1).then(|| promoted_on[0])
    })
    .await;
    // While that cluster has not applied the new version, nothing else is promoted, and the
    // bundle reports the others as out of sync.
    let status = eventually("bundle sees the rollout", || async {
        let s = bundle_status(client, "roll").await?;
        (s.summary.wait_applied == 1 && s.summary.out_of_sync == 2).then_some(s)
    })
    .await;
    assert_eq!(status.unavailable, 1);
    for name in clusters {
        let bd = get_bd(client, name, "roll").await.unwrap();
        assert_eq!(promoted(&bd), name == first, "{name}");
    }

    // Once it is applied and ready, the next one follows, and so on.
    agent_reports(client, first, "roll", true).await;
    let second = eventually("second promotion", || async {
        let mut promoted_on = Vec::new();
        for name in clusters {
            if promoted(&get_bd(client, name, "roll").await?) {
                promoted_on.push(name);
            }
        }
        (promoted_on.len() == 2).then(|| *promoted_on.iter().find(|n| **n != first).unwrap())
    })
    .await;
    agent_reports(client, second, "roll", true).await;
    eventually("third promotion", || async {
        for name in clusters {
            if !promoted(&get_bd(client, name, "roll").await?) {
                return None;
            }
        }
        Some(())
    })
    .await;
    let third = clusters
        .iter()
        .find(|n| **n != first && **n != second)
        .unwrap();
    agent_reports(client, third, "roll", true).await;
    eventually("bundle ready again", || async {
        let s = bundle_status(client, "roll").await?;
        (s.display.ready_clusters == "3/3" && s.unavailable == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_hold_back_later_partitions() {
    let env = start().await;
    let client = &env.client;
    create_cluster(client, "canary", &[("env", "prod"), ("stage", "canary")]).await;
    create_cluster(client, "main", &[("env", "prod"), ("stage", "main")]).await;
    let mut b = bundle("parts", vec![target("prod", &[("env", "prod")])], json!({}));
    b.spec.rollout_strategy = Some(RolloutStrategy {
        partitions: vec![
            fleet_api::Partition {
                name: "canary".into(),
                max_unavailable: Some(IntOrString::Int(0)),
                cluster_selector: Some(selector(&[("stage", "canary")])),
                ..Default::default()
            },
            fleet_api::Partition {
                name: "main".into(),
                cluster_selector: Some(selector(&[("stage", "main")])),
                ..Default::default()
            },
        ],
        ..Default::default()
    });
    let bundles = Api::<Bundle>::namespaced(client.clone(), NS);
    bundles.create(&PostParams::default(), &b).await.unwrap();
    // The canary partition allows no unavailable cluster: the main partition gets its
    // deployment only once the canary has applied and is ready.
    eventually("canary deployed first", || async {
        (bd_namespaces(client, "parts").await == cluster_namespaces(&["canary"])).then_some(())
    })
    .await;
    agent_reports(client, "canary", "parts", true).await;
    eventually("both deployed", || async {
        (bd_namespaces(client, "parts").await == cluster_namespaces(&["canary", "main"]))
            .then_some(())
    })
    .await;
    agent_reports(client, "main", "parts", true).await;
    let status = eventually("ready with partition status", || async {
        let s = bundle_status(client, "parts").await?;
        (s.display.ready_clusters == "2/2").then_some(s)
    })
    .await;
    let names: Vec<_> = status
        .partition_status
        .iter()
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(names, ["canary", "main"]);

    // New version: the canary partition allows no unavailable cluster, so it is staged but
    // not promoted, and the main partition is not even staged.
    let mut changed = bundles.get("parts").await.unwrap();
    changed.spec.resources = vec![configmap_resource("v2")];
    bundles
        .replace("parts", &PostParams::default(), &changed)
        .await
        .unwrap();
    let new_manifest = fleet_bundle::manifest::manifest_id(&changed.spec.resources);
    let canary = eventually("canary staged", || async {
        let bd = get_bd(client, "canary", "parts").await?;
        bd.spec
            .staged_deployment_id
            .starts_with(&new_manifest)
            .then_some(bd)
    })
    .await;
    assert!(!canary.spec.deployment_id.starts_with(&new_manifest));
    let status = eventually("partition unavailable", || async {
        let s = bundle_status(client, "parts").await?;
        (s.unavailable_partitions == 1).then_some(s)
    })
    .await;
    assert_eq!(status.max_unavailable_partitions, 0);
    let main = get_bd(client, "main", "parts").await.unwrap();
    assert!(!main.spec.staged_deployment_id.starts_with(&new_manifest));
    assert!(!main.spec.deployment_id.starts_with(&new_manifest));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_election_hands_over_when_the_leader_stops() {
    let sim = Simulator::new(SimConfig {
        profile: None,
        ..SimConfig::default()
    });
    let client = sim.add_cluster("upstream").unwrap().client();
    let elector = |identity: &str| {
        fleet_controller::leader::LeaderElector::new(
            client.clone(),
            "cattle-fleet-system",
            "fleet-controller-lock",
            identity,
            Duration::from_secs(10),
            Duration::from_millis(200),
        )
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stop_a = CancellationToken::new();
    let stop_b = CancellationToken::new();
    let a = tokio::spawn({
        let (e, stop, tx) = (elector("a"), stop_a.clone(), tx.clone());
        async move {
            e.run(stop, |term| {
                let tx = tx.clone();
                async move {
                    tx.send("a".into()).unwrap();
                    term.cancelled().await;
                    Ok::<(), std::convert::Infallible>(())
                }
            })
            .await
            .unwrap();
        }
    });
    let first = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, "a");
    let b = tokio::spawn({
        let (e, stop, tx) = (elector("b"), stop_b.clone(), tx.clone());
        async move {
            e.run(stop, |term| {
                let tx = tx.clone();
                async move {
                    tx.send("b".into()).unwrap();
                    term.cancelled().await;
                    Ok::<(), std::convert::Infallible>(())
                }
            })
            .await
            .unwrap();
        }
    });
    // b follows while a leads.
    let lease: k8s_openapi::api::coordination::v1::Lease =
        Api::namespaced(client.clone(), "cattle-fleet-system")
            .get("fleet-controller-lock")
            .await
            .unwrap();
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some("a"));
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), rx.recv())
            .await
            .is_err(),
        "b must not lead while a holds the lease"
    );
    // a stops and releases the Lease: b takes over.
    stop_a.cancel();
    a.await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next, "b");
    stop_b.cancel();
    b.await.unwrap();
}

//! The agent on the in-process simulator: an "upstream" cluster with Fleet's CRDs holding the
//! Content and BundleDeployments (written by hand, as the controller would), and a
//! "downstream" cluster the agent deploys to.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure should panic

use std::future::Future;
use std::time::Duration;

use fleet_agent::{Agent, AgentConfig};
use fleet_api::{
    BundleDeployment, BundleDeploymentOptions, BundleDeploymentSpec, BundleRef, BundleResource,
    Cluster, ClusterSpec, Content,
};
use fleet_simulator::{SimConfig, Simulator};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const CLUSTER_NS: &str = "cluster-fleet-default-sim-1";

struct Env {
    sim: Simulator,
    up: kube::Client,
    down: kube::Client,
    shutdown: CancellationToken,
    agent: tokio::task::JoinHandle<()>,
    registry: prometheus_client::registry::Registry,
}

impl Env {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.agent)
            .await
            .expect("agent stops on shutdown")
            .unwrap();
    }
}

async fn create_ns(client: &kube::Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    let _ = Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await;
}

async fn start() -> Env {
    // RUST_LOG=fleet_agent=debug shows what the agent does when a test fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let sim = Simulator::new(SimConfig::default());
    let upstream = sim.add_cluster("upstream").unwrap();
    upstream.install_crds(&fleet_api::crds::all()).unwrap();
    let downstream = sim.add_cluster("downstream").unwrap();
    let up = upstream.client();
    let down = downstream.client();
    create_ns(&up, "fleet-default").await;
    create_ns(&up, CLUSTER_NS).await;
    let cluster = Cluster::new("sim-1", ClusterSpec::default());
    Api::<Cluster>::namespaced(up.clone(), "fleet-default")
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap();
    let mut config = AgentConfig::new("fleet-default", "sim-1", CLUSTER_NS);
    config.drift_delay = Duration::from_millis(200);
    config.retry_interval = Duration::from_millis(300);
    config.not_ready_recheck = Duration::from_millis(500);
    config.bundledeployment_workers = 4;
    config.drift_workers = 2;
    let mut registry = prometheus_client::registry::Registry::default();
    let agent = Agent::new(up.clone(), down.clone(), config, &mut registry);
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let agent = tokio::spawn(async move { agent.run(token).await.unwrap() });
    Env {
        sim,
        up,
        down,
        shutdown,
        agent,
        registry,
    }
}

/// Polls `check` until it returns `Some`, for up to 60 s.
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
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn resource(name: &str, content: &str) -> BundleResource {
    BundleResource {
        name: name.into(),
        content: content.into(),
        encoding: String::new(),
    }
}

fn cm_yaml(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  key: \"{value}\"\n"
    )
}

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: web\n        image: nginx\n";

/// Stores the resources as a Content (as the controller does) and returns its manifest ID.
async fn put_content(up: &kube::Client, resources: &[BundleResource]) -> String {
    let id = fleet_bundle::manifest::manifest_id(resources);
    let json = fleet_bundle::manifest::manifest_json(resources);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &json).unwrap();
    let content = Content {
        metadata: kube::api::ObjectMeta {
            name: Some(id.clone()),
            ..Default::default()
        },
        content: Some(ByteString(gz.finish().unwrap())),
        sha256sum: fleet_bundle::manifest::manifest_sha256(resources),
    };
    let _ = Api::<Content>::all(up.clone())
        .create(&PostParams::default(), &content)
        .await;
    id
}

fn bd_api(up: &kube::Client) -> Api<BundleDeployment> {
    Api::namespaced(up.clone(), CLUSTER_NS)
}

fn options(default_namespace: &str) -> BundleDeploymentOptions {
    BundleDeploymentOptions {
        default_namespace: default_namespace.into(),
        ..Default::default()
    }
}

async fn create_bd(
    up: &kube::Client,
    name: &str,
    manifest_id: &str,
    options: BundleDeploymentOptions,
    depends_on: Vec<BundleRef>,
) {
    create_bd_paused(up, name, manifest_id, options, depends_on, false).await
}

async fn create_bd_paused(
    up: &kube::Client,
    name: &str,
    manifest_id: &str,
    options: BundleDeploymentOptions,
    depends_on: Vec<BundleRef>,
    paused: bool,
) {
    let bd = bd_object(name, manifest_id, options, depends_on, paused);
    bd_api(up)
        .create(&PostParams::default(), &bd)
        .await
        .unwrap();
}

/// The BundleDeployment `name` as the controller writes it for cluster sim-1.
fn bd_object(
    name: &str,
    manifest_id: &str,
    options: BundleDeploymentOptions,
    depends_on: Vec<BundleRef>,
    paused: bool,
) -> BundleDeployment {
    let id = format!("{manifest_id}:opts");
    let mut bd = BundleDeployment::new(
        name,
        BundleDeploymentSpec {
            deployment_id: id.clone(),
            staged_deployment_id: id,
            options: options.clone(),
            staged_options: options,
            depends_on,
            paused,
            ..Default::default()
        },
    );
    bd.metadata.labels = Some(
        [
            ("fleet.cattle.io/bundle-name", name),
            ("fleet.cattle.io/bundle-namespace", "fleet-default"),
            ("fleet.cattle.io/cluster", "sim-1"),
            ("fleet.cattle.io/cluster-namespace", "fleet-default"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    );
    bd
}

/// Points an existing BD at another manifest (a new commit, as the rollout promotes it).
async fn set_deployment(
    up: &kube::Client,
    name: &str,
    manifest_id: &str,
    options: &BundleDeploymentOptions,
) {
    let id = format!("{manifest_id}:opts");
    bd_api(up)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {
                "deploymentID": id, "stagedDeploymentID": id,
                "options": options, "stagedOptions": options,
            }})),
        )
        .await
        .unwrap();
}

async fn get_bd(up: &kube::Client, name: &str) -> Option<BundleDeployment> {
    bd_api(up).get_opt(name).await.unwrap()
}

fn condition(bd: &BundleDeployment, type_: &str) -> Option<fleet_api::GenericCondition> {
    bd.status
        .as_ref()
        .and_then(|s| fleet_api::find_condition(&s.conditions, type_).cloned())
}

/// Waits until `name` reports Deployed=False; the deployment and that condition's message.
async fn wait_deploy_failed(
    up: &kube::Client,
    name: &str,
    what: &str,
) -> (BundleDeployment, String) {
    let bd = eventually(what, || async {
        let bd = get_bd(up, name).await?;
        condition(&bd, "Deployed").filter(|c| c.is_false())?;
        Some(bd)
    })
    .await;
    let message = condition(&bd, "Deployed").unwrap().message;
    (bd, message)
}

async fn wait_ready(up: &kube::Client, name: &str, deployment: &str) -> BundleDeployment {
    eventually(
        &format!("BundleDeployment {name} Ready at {deployment}"),
        || async {
            let bd = get_bd(up, name).await?;
            let st = bd.status.as_ref()?;
            let ready = condition(&bd, "Ready").is_some_and(|c| c.is_true());
            (st.applied_deployment_id.starts_with(deployment)
                && st.ready
                && st.non_modified
                && ready)
                .then_some(bd)
        },
    )
    .await
}

async fn configmap(down: &kube::Client, ns: &str, name: &str) -> Option<ConfigMap> {
    Api::<ConfigMap>::namespaced(down.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()
}

/// Deletes the BundleDeployment `name` and waits until it is gone (its finalizer removed).
async fn delete_bd(up: &kube::Client, name: &str) {
    bd_api(up)
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
    eventually(&format!("BundleDeployment {name} deleted"), || async {
        get_bd(up, name).await.is_none().then_some(())
    })
    .await;
}

async fn wait_gone(down: &kube::Client, ns: &str, name: &str) {
    eventually(&format!("configmap {ns}/{name} removed"), || async {
        configmap(down, ns, name).await.is_none().then_some(())
    })
    .await
}

async fn release_secrets(down: &kube::Client, ns: &str) -> Vec<Secret> {
    Api::<Secret>::namespaced(down.clone(), ns)
        .list(&ListParams::default().labels("owner=helm"))
        .await
        .unwrap()
        .items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_with_ssa_reports_ready_prunes_and_uninstalls() {
    let env = start().await;
    let v1 = vec![
        resource("a.yaml", &cm_yaml("a", "1")),
        resource("b.yaml", &cm_yaml("b", "1")),
        resource("web.yaml", DEPLOYMENT),
    ];
    let m1 = put_content(&env.up, &v1).await;
    create_bd(&env.up, "app", &m1, options("demo"), vec![]).await;

    let bd = wait_ready(&env.up, "app", &m1).await;
    let st = bd.status.clone().unwrap();
    assert_eq!(
        st.resource_counts.desired_ready, 3,
        "{:?}",
        st.resource_counts
    );
    assert_eq!(st.resource_counts.ready, 3, "{:?}", st.resource_counts);
    assert!(st.release.starts_with("demo/"), "{}", st.release);
    assert!(st.release.ends_with(":1"), "{}", st.release);
    assert!(condition(&bd, "Deployed").unwrap().is_true());
    assert!(condition(&bd, "Installed").unwrap().is_true());
    assert!(condition(&bd, "Monitored").unwrap().is_true());
    assert_eq!(st.display.state, "Ready");
    assert!(
        bd.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"fleet.cattle.io/bundle-deployment-finalizer".to_string())
    );

    // Applied with server-side apply by fleet-agent, marked as Helm's and Fleet's.
    let a = configmap(&env.down, "demo", "a")
        .await
        .expect("configmap a deployed");
    let managers: Vec<String> = a
        .metadata
        .managed_fields
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.operation.as_deref() == Some("Apply"))
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.contains(&"fleet-agent".to_string()),
        "{managers:?}"
    );
    let labels = a.metadata.labels.clone().unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm");
    assert!(labels.contains_key("objectset.rio.cattle.io/hash"));
    let annotations = a.metadata.annotations.clone().unwrap();
    assert_eq!(annotations["meta.helm.sh/release-namespace"], "demo");
    assert_eq!(annotations["objectset.rio.cattle.io/id"], "default-app");

    // A Helm release record, as `helm list` reads it.
    let secrets = release_secrets(&env.down, "demo").await;
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].type_.as_deref(), Some("helm.sh/release.v1"));
    let labels = secrets[0].metadata.labels.clone().unwrap();
    assert_eq!(labels["status"], "deployed");
    assert_eq!(labels["version"], "1");
    let payload = secrets[0].data.as_ref().unwrap()["release"].0.clone();
    let rel = fleet_agent::release::decode("record", &payload).unwrap();
    assert_eq!(rel.info.status, "deployed");
    assert!(rel.manifest.contains("name: a"));

    // A new commit without b: b is pruned, the release moves to revision 2.
    let v2 = vec![
        resource("a.yaml", &cm_yaml("a", "2")),
        resource("web.yaml", DEPLOYMENT),
    ];
    let m2 = put_content(&env.up, &v2).await;
    set_deployment(&env.up, "app", &m2, &options("demo")).await;
    let bd = wait_ready(&env.up, "app", &m2).await;
    wait_gone(&env.down, "demo", "b").await;
    let a = configmap(&env.down, "demo", "a").await.unwrap();
    assert_eq!(a.data.unwrap()["key"], "2");
    let st = bd.status.unwrap();
    assert!(st.release.ends_with(":2"), "{}", st.release);
    assert_eq!(st.resource_counts.desired_ready, 2);
    let secrets = release_secrets(&env.down, "demo").await;
    let mut statuses: Vec<(String, String)> = secrets
        .iter()
        .map(|s| {
            let l = s.metadata.labels.clone().unwrap();
            (l["version"].clone(), l["status"].clone())
        })
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        vec![
            ("1".to_string(), "superseded".to_string()),
            ("2".to_string(), "deployed".to_string())
        ]
    );

    // Deleting the BundleDeployment removes what it deployed, then the finalizer.
    delete_bd(&env.up, "app").await;
    wait_gone(&env.down, "demo", "a").await;
    eventually("release records removed", || async {
        release_secrets(&env.down, "demo")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_created_with_the_finalizer_is_deployed_without_writing_it() {
    let env = start().await;
    let m1 = put_content(&env.up, &[resource("a.yaml", &cm_yaml("a", "1"))]).await;
    let mut bd = bd_object("final", &m1, options("final"), vec![], false);
    bd.metadata.finalizers = Some(vec![
        "fleet.cattle.io/bundle-deployment-finalizer".to_string(),
    ]);
    let as_controller = PostParams {
        field_manager: Some("fleet-controller".into()),
        ..Default::default()
    };
    bd_api(&env.up).create(&as_controller, &bd).await.unwrap();
    let bd = wait_ready(&env.up, "final", &m1).await;

    // The controller's entry and the agent's status writes: the agent did not write the
    // object itself.
    let writers: Vec<(String, String)> = bd
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|entry| {
            (
                entry.manager.unwrap_or_default(),
                entry.subresource.unwrap_or_default(),
            )
        })
        .collect();
    assert!(writers.len() > 1, "{writers:?}");
    assert!(
        writers
            .iter()
            .all(|(manager, subresource)| manager == "fleet-controller" || subresource == "status"),
        "{writers:?}"
    );

    // The agent still uninstalls before it lets the deployment go.
    delete_bd(&env.up, "final").await;
    wait_gone(&env.down, "final", "a").await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_resources_keeps_pruned_and_uninstalled_objects() {
    let env = start().await;
    let mut opts = options("keep");
    opts.keep_resources = true;
    let v1 = vec![
        resource("a.yaml", &cm_yaml("a", "1")),
        resource("b.yaml", &cm_yaml("b", "1")),
    ];
    let m1 = put_content(&env.up, &v1).await;
    create_bd(&env.up, "kept", &m1, opts.clone(), vec![]).await;
    wait_ready(&env.up, "kept", &m1).await;

    let v2 = vec![resource("a.yaml", &cm_yaml("a", "1"))];
    let m2 = put_content(&env.up, &v2).await;
    set_deployment(&env.up, "kept", &m2, &opts).await;
    let bd = wait_ready(&env.up, "kept", &m2).await;
    assert!(bd.status.unwrap().release.ends_with(":2"));
    let b = configmap(&env.down, "keep", "b").await.expect("b kept");
    // No longer marked as ours, so it is not reported as orphaned.
    assert!(
        !b.metadata
            .labels
            .unwrap_or_default()
            .contains_key("objectset.rio.cattle.io/hash")
    );

    delete_bd(&env.up, "kept").await;
    assert!(configmap(&env.down, "keep", "a").await.is_some());
    assert!(configmap(&env.down, "keep", "b").await.is_some());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_reported_and_corrected() {
    let env = start().await;
    let v1 = vec![resource("a.yaml", &cm_yaml("a", "1"))];
    let m1 = put_content(&env.up, &v1).await;
    create_bd(&env.up, "drifty", &m1, options("drift"), vec![]).await;
    wait_ready(&env.up, "drifty", &m1).await;

    // Someone edits the object downstream.
    Api::<ConfigMap>::namespaced(env.down.clone(), "drift")
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"key": "changed"}})),
        )
        .await
        .unwrap();
    let bd = eventually("drift reported as Modified", || async {
        let bd = get_bd(&env.up, "drifty").await?;
        let st = bd.status.as_ref()?;
        (!st.non_modified && !st.modified_status.is_empty()).then_some(bd)
    })
    .await;
    let st = bd.status.clone().unwrap();
    let modified = &st.modified_status[0];
    assert_eq!(modified.name, "a");
    assert!(!modified.patch.is_empty(), "{modified:?}");
    assert_eq!(st.display.state, "Modified");
    assert_eq!(st.resource_counts.modified, 1);

    // With correctDrift the agent puts the object back.
    bd_api(&env.up)
        .patch(
            "drifty",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"correctDrift": {"enabled": true}}})),
        )
        .await
        .unwrap();
    Api::<ConfigMap>::namespaced(env.down.clone(), "drift")
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"key": "changed-again"}})),
        )
        .await
        .unwrap();
    eventually("drift corrected", || async {
        let cm = configmap(&env.down, "drift", "a").await?;
        (cm.data?.get("key")? == "1").then_some(())
    })
    .await;
    wait_ready(&env.up, "drifty", &m1).await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_chart_reports_deployed_false_and_keeps_objects() {
    let env = start().await;
    let chart = "apiVersion: v2\nname: mychart\nversion: 0.1.0\n";
    let good = vec![
        resource("Chart.yaml", chart),
        resource(
            "templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\ndata:\n  key: ok\n",
        ),
    ];
    let m1 = put_content(&env.up, &good).await;
    create_bd(&env.up, "chart", &m1, options("charts"), vec![]).await;
    let bd = wait_ready(&env.up, "chart", &m1).await;
    let release = bd.status.unwrap().release;
    let release_name = release
        .split_once('/')
        .unwrap()
        .1
        .rsplit_once(':')
        .unwrap()
        .0
        .to_string();
    let cm_name = format!("{release_name}-cm");
    assert!(configmap(&env.down, "charts", &cm_name).await.is_some());

    let broken = vec![
        resource("Chart.yaml", chart),
        resource(
            "templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\ndata:\n  key: {{ .Values.missing | nosuchfunction }}\n",
        ),
    ];
    let m2 = put_content(&env.up, &broken).await;
    set_deployment(&env.up, "chart", &m2, &options("charts")).await;
    let (bd, message) =
        wait_deploy_failed(&env.up, "chart", "Deployed=False for the broken chart").await;
    assert!(message.contains("chart"), "{message}");
    let st = bd.status.unwrap();
    assert!(st.applied_deployment_id.starts_with(&m1));
    assert_eq!(st.display.state, "ErrApplied");
    // What was deployed stays.
    assert!(configmap(&env.down, "charts", &cm_name).await.is_some());
    assert_eq!(release_secrets(&env.down, "charts").await.len(), 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depends_on_waits_for_the_dependency_to_be_ready() {
    let env = start().await;
    let app = vec![resource("a.yaml", &cm_yaml("app", "1"))];
    let m_app = put_content(&env.up, &app).await;
    create_bd(
        &env.up,
        "app",
        &m_app,
        options("deps"),
        vec![BundleRef {
            name: "db".into(),
            selector: None,
        }],
    )
    .await;
    let (_, message) = wait_deploy_failed(&env.up, "app", "app waits for db").await;
    assert!(message.contains("db"), "{message}");
    assert!(configmap(&env.down, "deps", "app").await.is_none());

    let db = vec![resource("db.yaml", &cm_yaml("db", "1"))];
    let m_db = put_content(&env.up, &db).await;
    create_bd(&env.up, "db", &m_db, options("deps"), vec![]).await;
    wait_ready(&env.up, "db", &m_db).await;
    wait_ready(&env.up, "app", &m_app).await;
    assert!(configmap(&env.down, "deps", "app").await.is_some());
    env.stop().await;
}

/// Creates ConfigMap `ns/name` holding `key: theirs`, annotated as an object of Helm release
/// `release` (in `ns`): what another release deployed there.
async fn foreign_configmap(client: &kube::Client, ns: &str, name: &str, release: &str) {
    let foreign: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "annotations": {
            "meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": ns}},
        "data": {"key": "theirs"}
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_of_another_release_are_not_taken_without_take_ownership() {
    let env = start().await;
    create_ns(&env.down, "owned").await;
    foreign_configmap(&env.down, "owned", "shared", "someone-else").await;
    let res = vec![resource("s.yaml", &cm_yaml("shared", "ours"))];
    let m = put_content(&env.up, &res).await;
    create_bd(&env.up, "taker", &m, options("owned"), vec![]).await;
    let (_, message) = wait_deploy_failed(&env.up, "taker", "not owned by us").await;
    assert!(message.contains("not owned by us"), "{message}");
    assert!(message.contains("shared"), "{message}");
    assert_eq!(
        configmap(&env.down, "owned", "shared")
            .await
            .unwrap()
            .data
            .unwrap()["key"],
        "theirs"
    );

    let mut opts = options("owned");
    opts.helm = Some(fleet_api::HelmOptions {
        take_ownership: true,
        ..Default::default()
    });
    set_deployment(&env.up, "taker", &m, &opts).await;
    // Same manifest, new options: a new deployment ID is needed to redeploy.
    bd_api(&env.up)
        .patch(
            "taker",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"deploymentID": format!("{m}:take"), "stagedDeploymentID": format!("{m}:take")}})),
        )
        .await
        .unwrap();
    wait_ready(&env.up, "taker", &format!("{m}:take")).await;
    assert_eq!(
        configmap(&env.down, "owned", "shared")
            .await
            .unwrap()
            .data
            .unwrap()["key"],
        "ours"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_release_namespace_is_created_only_after_objects_outside_it_passed_the_ownership_check()
 {
    let env = start().await;
    // A ConfigMap of another release in an existing namespace, and a bundle with one object
    // in its (missing) release namespace and that one outside it.
    create_ns(&env.down, "elsewhere").await;
    foreign_configmap(&env.down, "elsewhere", "taken", "someone-else").await;
    let outside = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: taken\n  namespace: elsewhere\ndata:\n  key: ours\n";
    let res = vec![
        resource("inside.yaml", &cm_yaml("inside", "1")),
        resource("outside.yaml", outside),
    ];
    let m = put_content(&env.up, &res).await;
    create_bd(&env.up, "spread", &m, options("fresh-ns"), vec![]).await;
    let (_, message) = wait_deploy_failed(&env.up, "spread", "not owned by us").await;
    assert!(message.contains("not owned by us"), "{message}");
    // As Helm's install: the conflict is found before the namespace is created.
    assert!(
        Api::<Namespace>::all(env.down.clone())
            .get_opt("fresh-ns")
            .await
            .unwrap()
            .is_none()
    );
    assert!(configmap(&env.down, "fresh-ns", "inside").await.is_none());

    // Without the conflicting object the bundle installs into the namespace it creates.
    let res = vec![resource("inside.yaml", &cm_yaml("inside", "2"))];
    let m2 = put_content(&env.up, &res).await;
    set_deployment(&env.up, "spread", &m2, &options("fresh-ns")).await;
    wait_ready(&env.up, "spread", &m2).await;
    assert_eq!(
        configmap(&env.down, "fresh-ns", "inside")
            .await
            .unwrap()
            .data
            .unwrap()["key"],
        "2"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_sets_last_seen_on_the_cluster() {
    let env = start().await;
    let cluster = eventually("agent.lastSeen set", || async {
        let c = Api::<Cluster>::namespaced(env.up.clone(), "fleet-default")
            .get("sim-1")
            .await
            .ok()?;
        c.status.as_ref()?.agent.last_seen.as_ref()?;
        Some(c)
    })
    .await;
    let status = serde_json::to_value(cluster.status.unwrap()).unwrap();
    assert_eq!(
        status["agent"]["namespace"],
        Value::from("cattle-fleet-system")
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_deployments_wait_and_metrics_count_reconciles() {
    let env = start().await;
    let paused = vec![resource("p.yaml", &cm_yaml("paused-cm", "1"))];
    let m_paused = put_content(&env.up, &paused).await;
    create_bd_paused(&env.up, "paused", &m_paused, options("pause"), vec![], true).await;
    let other = vec![resource("o.yaml", &cm_yaml("other-cm", "1"))];
    let m_other = put_content(&env.up, &other).await;
    create_bd(&env.up, "other", &m_other, options("pause"), vec![]).await;
    wait_ready(&env.up, "other", &m_other).await;
    // Reconciled (the finalizer is added first), yet nothing deployed.
    eventually("paused BundleDeployment seen by the agent", || async {
        let bd = get_bd(&env.up, "paused").await?;
        bd.metadata.finalizers.filter(|f| !f.is_empty()).map(|_| ())
    })
    .await;
    assert!(configmap(&env.down, "pause", "paused-cm").await.is_none());

    bd_api(&env.up)
        .patch(
            "paused",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": false}})),
        )
        .await
        .unwrap();
    wait_ready(&env.up, "paused", &m_paused).await;
    assert!(configmap(&env.down, "pause", "paused-cm").await.is_some());

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &env.registry).unwrap();
    assert!(
        text.contains(
            "fleet_agent_reconciles_total{controller=\"bundledeployment\",result=\"success\"}"
        ),
        "{text}"
    );
    assert!(
        text.contains("fleet_agent_workers{controller=\"drift\"} 2"),
        "{text}"
    );
    env.stop().await;
}

/// A TCP server on 127.0.0.1 that accepts connections and never answers: a chart download
/// from it hangs until the HTTP client's own timeout, minutes later. Dropping it closes the
/// connections, so the hung download then fails at once.
struct StalledServer {
    url: String,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl StalledServer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        StalledServer {
            url,
            accepted,
            task,
        }
    }
}

impl Drop for StalledServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Cancels the agent and waits for it, failing when it takes longer than `bound`.
async fn stop_within(shutdown: CancellationToken, agent: tokio::task::JoinHandle<()>, secs: u64) {
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(secs), agent)
        .await
        .unwrap_or_else(|_| panic!("the agent did not stop within {secs} s"))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_completes_with_reconciles_drift_watches_and_a_hung_download_in_flight() {
    let env = start().await;
    // Deployed bundles: drift watches and check-ins running.
    for name in ["one", "two", "three"] {
        let m = put_content(&env.up, &[resource("cm.yaml", &cm_yaml(name, "1"))]).await;
        create_bd(&env.up, name, &m, options("busy"), vec![]).await;
    }
    for name in ["one", "two", "three"] {
        let m = put_content(&env.up, &[resource("cm.yaml", &cm_yaml(name, "1"))]).await;
        wait_ready(&env.up, name, &m).await;
    }
    // A HelmOp-style deployment whose chart download hangs: a reconcile stuck in flight.
    let server = StalledServer::start().await;
    let chart = format!("{}/stalled-0.1.0.tgz", server.url);
    let bd: BundleDeployment = serde_json::from_value(json!({
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "BundleDeployment",
        "metadata": {"name": "stalled", "namespace": CLUSTER_NS, "labels": {
            "fleet.cattle.io/bundle-name": "stalled",
            "fleet.cattle.io/bundle-namespace": "fleet-default",
            "fleet.cattle.io/cluster": "sim-1",
            "fleet.cattle.io/cluster-namespace": "fleet-default",
        }},
        "spec": {
            "deploymentID": "stalled:opts",
            "stagedDeploymentID": "stalled:opts",
            "options": {"defaultNamespace": "stalled", "helm": {"chart": chart}},
            "stagedOptions": {"defaultNamespace": "stalled", "helm": {"chart": chart}},
            "helmChartOptions": {},
        },
    }))
    .unwrap();
    bd_api(&env.up)
        .create(&PostParams::default(), &bd)
        .await
        .unwrap();
    eventually("the chart download to be in flight", || async {
        (server.accepted.load(std::sync::atomic::Ordering::SeqCst) > 0).then_some(())
    })
    .await;
    // And a burst of drift events on the deployed objects.
    for name in ["one", "two", "three"] {
        Api::<ConfigMap>::namespaced(env.down.clone(), "busy")
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"key": "drifted"}})),
            )
            .await
            .unwrap();
    }

    stop_within(env.shutdown, env.agent, 20).await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_completes_before_bundle_deployments_could_be_listed() {
    let sim = Simulator::new(SimConfig::default());
    // No Fleet CRDs upstream: the BundleDeployment watch keeps failing, its store never
    // becomes ready (as for an agent stopped before its first list, or refused upstream).
    let up = sim.add_cluster("upstream").unwrap().client();
    let down = sim.add_cluster("downstream").unwrap().client();
    let mut registry = prometheus_client::registry::Registry::default();
    let agent = Agent::new(
        up,
        down,
        AgentConfig::new("fleet-default", "sim-1", CLUSTER_NS),
        &mut registry,
    );
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move { agent.run(token).await.unwrap() });
    // Not a timing assertion: the agent only has to have started its watch.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_within(shutdown, task, 20).await;
}

/// Requests to one simulated cluster by `verb resource`.
fn request_counts(sim: &Simulator, cluster: &str) -> std::collections::BTreeMap<String, u64> {
    sim.cluster(cluster)
        .unwrap()
        .request_counts()
        .into_iter()
        .map(|((verb, resource), n)| (format!("{verb} {resource}"), n))
        .collect()
}

/// `now - before`, without the zero entries.
fn delta(
    now: &std::collections::BTreeMap<String, u64>,
    before: &std::collections::BTreeMap<String, u64>,
) -> std::collections::BTreeMap<String, u64> {
    now.iter()
        .map(|(k, n)| (k.clone(), n - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn total(counts: &std::collections::BTreeMap<String, u64>) -> u64 {
    counts.values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_is_fetched_once_and_deployments_cost_few_requests() {
    let env = start().await;
    // Let the agent's start-up requests (watch, check-in, discovery) pass first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let up_before = request_counts(&env.sim, "upstream");
    let down_before = request_counts(&env.sim, "downstream");
    let v1 = vec![
        resource("a.yaml", &cm_yaml("a", "1")),
        resource("b.yaml", &cm_yaml("b", "1")),
        resource("c.yaml", &cm_yaml("c", "1")),
    ];
    let m1 = put_content(&env.up, &v1).await;
    // Two bundles with the same manifest (into different namespaces).
    create_bd(&env.up, "one", &m1, options("count-one"), vec![]).await;
    create_bd(&env.up, "two", &m1, options("count-two"), vec![]).await;
    wait_ready(&env.up, "one", &m1).await;
    wait_ready(&env.up, "two", &m1).await;
    // Whatever the agent still does for them (re-checks, drift reconciles) counts too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let up_install = delta(&request_counts(&env.sim, "upstream"), &up_before);
    let down_install = delta(&request_counts(&env.sim, "downstream"), &down_before);
    println!("install of 2 BundleDeployments × 3 ConfigMaps: upstream {up_install:?}");
    println!("install of 2 BundleDeployments × 3 ConfigMaps: downstream {down_install:?}");
    println!(
        "install: {} upstream, {} downstream requests per BundleDeployment",
        total(&up_install) as f64 / 2.0,
        total(&down_install) as f64 / 2.0
    );
    assert_eq!(
        up_install.get("get contents"),
        Some(&1),
        "one Content read for both: {up_install:?}"
    );
    // A first install into a namespace that did not exist creates it (as Helm's
    // --create-namespace) and reads nothing in it: no ownership reads of its objects, no
    // listing of release records that cannot be there.
    for read in [
        "get configmaps",
        "get secrets",
        "list secrets",
        "get namespaces",
        "patch namespaces",
    ] {
        assert_eq!(down_install.get(read), None, "{read}: {down_install:?}");
    }
    assert_eq!(
        down_install.get("create namespaces"),
        Some(&2),
        "{down_install:?}"
    );

    let up_before = request_counts(&env.sim, "upstream");
    let down_before = request_counts(&env.sim, "downstream");
    let v2 = vec![
        resource("a.yaml", &cm_yaml("a", "2")),
        resource("b.yaml", &cm_yaml("b", "2")),
        resource("c.yaml", &cm_yaml("c", "2")),
    ];
    let m2 = put_content(&env.up, &v2).await;
    set_deployment(&env.up, "one", &m2, &options("count-one")).await;
    set_deployment(&env.up, "two", &m2, &options("count-two")).await;
    wait_ready(&env.up, "one", &m2).await;
    wait_ready(&env.up, "two", &m2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let up_update = delta(&request_counts(&env.sim, "upstream"), &up_before);
    let down_update = delta(&request_counts(&env.sim, "downstream"), &down_before);
    println!("update of 2 BundleDeployments × 3 ConfigMaps: upstream {up_update:?}");
    println!("update of 2 BundleDeployments × 3 ConfigMaps: downstream {down_update:?}");
    println!(
        "update: {} upstream, {} downstream requests per BundleDeployment",
        total(&up_update) as f64 / 2.0,
        total(&down_update) as f64 / 2.0
    );
    assert_eq!(up_update.get("get contents"), Some(&1), "{up_update:?}");
    // What the agent wrote it does not read back: the objects are observed from the applies,
    // the release records and the namespace are known from the install.
    // Nor does it list the object sets: their members come from the drift watches.
    for read in [
        "get configmaps",
        "list configmaps",
        "get secrets",
        "list secrets",
        "get namespaces",
    ] {
        assert_eq!(down_update.get(read), None, "{read}: {down_update:?}");
    }
    // One apply per object and one new release record per deployment.
    assert_eq!(
        down_update.get("patch configmaps"),
        Some(&6),
        "{down_update:?}"
    );
    assert_eq!(
        down_update.get("create secrets"),
        Some(&2),
        "{down_update:?}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_deleted_behind_the_agents_back_is_reported_and_recreated() {
    let env = start().await;
    let v1 = vec![
        resource("a.yaml", &cm_yaml("a", "1")),
        resource("b.yaml", &cm_yaml("b", "1")),
    ];
    let m1 = put_content(&env.up, &v1).await;
    create_bd(&env.up, "plain", &m1, options("deleted"), vec![]).await;
    wait_ready(&env.up, "plain", &m1).await;
    let before = configmap(&env.down, "deleted", "b").await.unwrap();

    // Deleted downstream: reported missing (the drift watch saw a version the agent had not).
    Api::<ConfigMap>::namespaced(env.down.clone(), "deleted")
        .delete("b", &DeleteParams::default())
        .await
        .unwrap();
    let bd = eventually("missing object reported", || async {
        let bd = get_bd(&env.up, "plain").await?;
        let st = bd.status.as_ref()?;
        (!st.non_modified && st.modified_status.iter().any(|m| m.name == "b" && m.create))
            .then_some(bd)
    })
    .await;
    assert_eq!(bd.status.unwrap().display.state, "Modified");

    // A forced redeploy puts it back: the agent does not trust its memory of what it applied.
    bd_api(&env.up)
        .patch(
            "plain",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"options": {"forceSyncGeneration": 1}}})),
        )
        .await
        .unwrap();
    eventually("object recreated and Ready reported", || async {
        let bd = get_bd(&env.up, "plain").await?;
        let st = bd.status.as_ref()?;
        let ready = condition(&bd, "Ready").is_some_and(|c| c.is_true());
        (st.sync_generation == Some(1) && st.non_modified && ready).then_some(())
    })
    .await;
    let after = configmap(&env.down, "deleted", "b")
        .await
        .expect("b recreated");
    assert_ne!(before.metadata.uid, after.metadata.uid);

    // With correctDrift the drift reconcile recreates it by itself.
    let mut opts = options("corrected");
    opts.correct_drift = Some(fleet_api::CorrectDrift {
        enabled: true,
        ..Default::default()
    });
    create_bd(&env.up, "corrected", &m1, opts, vec![]).await;
    wait_ready(&env.up, "corrected", &m1).await;
    let before = configmap(&env.down, "corrected", "a").await.unwrap();
    Api::<ConfigMap>::namespaced(env.down.clone(), "corrected")
        .delete("a", &DeleteParams::default())
        .await
        .unwrap();
    let after = eventually("object recreated by drift correction", || async {
        let cm = configmap(&env.down, "corrected", "a").await?;
        (cm.metadata.uid != before.metadata.uid).then_some(cm)
    })
    .await;
    assert_eq!(after.data.unwrap()["key"], "1");
    wait_ready(&env.up, "corrected", &m1).await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_joining_a_set_it_is_not_desired_in_is_reported_orphaned_until_removed() {
    let env = start().await;
    let v1 = vec![resource("a.yaml", &cm_yaml("a", "1"))];
    let m1 = put_content(&env.up, &v1).await;
    create_bd(&env.up, "set", &m1, options("orphans"), vec![]).await;
    wait_ready(&env.up, "set", &m1).await;

    // Someone else labels an object into the bundle's object set: the drift watch sees it and
    // the agent reports it as extra (orphaned), from the watch's view of the set.
    let set_id = "default-set";
    let stray: ConfigMap = serde_json::from_value(json!({
        "metadata": {
            "name": "stray",
            "namespace": "orphans",
            "labels": {"objectset.rio.cattle.io/hash": fleet_bundle::render::set_hash(set_id)},
            "annotations": {"objectset.rio.cattle.io/id": set_id},
        },
        "data": {"key": "x"},
    }))
    .unwrap();
    let cms = Api::<ConfigMap>::namespaced(env.down.clone(), "orphans");
    cms.create(&PostParams::default(), &stray).await.unwrap();
    let bd = eventually("orphan reported", || async {
        let bd = get_bd(&env.up, "set").await?;
        let st = bd.status.as_ref()?;
        (st.resource_counts.orphaned == 1
            && st
                .modified_status
                .iter()
                .any(|m| m.name == "stray" && m.delete))
        .then_some(bd)
    })
    .await;
    assert!(!bd.status.unwrap().non_modified);

    // Removed again: the status is clean.
    cms.delete("stray", &DeleteParams::default()).await.unwrap();
    eventually("orphan gone from the status", || async {
        let bd = get_bd(&env.up, "set").await?;
        let st = bd.status.as_ref()?;
        (st.resource_counts.orphaned == 0 && st.non_modified).then_some(())
    })
    .await;

    // An object of a set the agent does not deploy is nobody's orphan here.
    let mut other = stray.clone();
    other.metadata.name = Some("other".into());
    other.metadata.labels = Some(
        [(
            "objectset.rio.cattle.io/hash".to_string(),
            fleet_bundle::render::set_hash("default-elsewhere"),
        )]
        .into(),
    );
    other.metadata.annotations = Some(
        [(
            "objectset.rio.cattle.io/id".to_string(),
            "default-elsewhere".to_string(),
        )]
        .into(),
    );
    cms.create(&PostParams::default(), &other).await.unwrap();
    bd_api(&env.up)
        .patch(
            "set",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"options": {"forceSyncGeneration": 1}}})),
        )
        .await
        .unwrap();
    eventually("redeployed without orphans", || async {
        let bd = get_bd(&env.up, "set").await?;
        let st = bd.status.as_ref()?;
        (st.sync_generation == Some(1) && st.non_modified && st.resource_counts.orphaned == 0)
            .then_some(())
    })
    .await;
    env.stop().await;
}

/// A release record as another Helm client would write it: revision `rev` of `release` in
/// `ns`, copied from an existing record.
async fn forge_record(down: &kube::Client, ns: &str, from: &Secret, release: &str, rev: i64) {
    let payload = from.data.as_ref().unwrap()["release"].0.clone();
    let mut rel = fleet_agent::release::decode("record", &payload).unwrap();
    rel.version = rev;
    let secret: Secret = serde_json::from_value(fleet_agent::release::to_secret(&rel)).unwrap();
    assert_eq!(
        secret.metadata.name.as_deref(),
        Some(format!("sh.helm.release.v1.{release}.v{rev}").as_str())
    );
    Api::<Secret>::namespaced(down.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

fn record_statuses(secrets: &[Secret]) -> Vec<(String, String)> {
    let mut statuses: Vec<(String, String)> = secrets
        .iter()
        .map(|s| {
            let l = s.metadata.labels.clone().unwrap();
            (l["version"].clone(), l["status"].clone())
        })
        .collect();
    statuses.sort();
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_records_and_namespaces_changed_by_others_are_read_again() {
    let env = start().await;
    let v1 = vec![resource("a.yaml", &cm_yaml("a", "1"))];
    let m1 = put_content(&env.up, &v1).await;
    create_bd(&env.up, "rel", &m1, options("records"), vec![]).await;
    let bd = wait_ready(&env.up, "rel", &m1).await;
    let release = bd.status.unwrap().release;
    assert!(release.ends_with(":1"), "{release}");
    let release_name = release
        .trim_start_matches("records/")
        .trim_end_matches(":1")
        .to_string();

    // Someone else records revision 2: the agent's record for its next deployment collides
    // (409), it reads the records again and writes revision 3.
    let secrets = release_secrets(&env.down, "records").await;
    forge_record(&env.down, "records", &secrets[0], &release_name, 2).await;
    let v2 = vec![resource("a.yaml", &cm_yaml("a", "2"))];
    let m2 = put_content(&env.up, &v2).await;
    set_deployment(&env.up, "rel", &m2, &options("records")).await;
    let bd = wait_ready(&env.up, "rel", &m2).await;
    let release = bd.status.unwrap().release;
    assert!(release.ends_with(":3"), "{release}");
    assert_eq!(
        record_statuses(&release_secrets(&env.down, "records").await),
        vec![
            ("2".to_string(), "superseded".to_string()),
            ("3".to_string(), "deployed".to_string())
        ]
    );

    // Someone removes the release records: the next reconcile finds the deployed record gone
    // and installs again.
    for s in release_secrets(&env.down, "records").await {
        Api::<Secret>::namespaced(env.down.clone(), "records")
            .delete(
                s.metadata.name.as_deref().unwrap(),
                &DeleteParams::default(),
            )
            .await
            .unwrap();
    }
    bd_api(&env.up)
        .patch(
            "rel",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touched": "1"}}})),
        )
        .await
        .unwrap();
    eventually("release installed again", || async {
        let bd = get_bd(&env.up, "rel").await?;
        bd.status
            .as_ref()
            .filter(|s| s.release.ends_with(":1"))
            .map(|_| ())
    })
    .await;
    assert_eq!(
        record_statuses(&release_secrets(&env.down, "records").await),
        vec![("1".to_string(), "deployed".to_string())]
    );

    // Someone deletes the namespace the agent had ensured: the next deployment into it
    // fails its apply, ensures the namespace again and succeeds.
    Api::<Namespace>::all(env.down.clone())
        .delete("records", &DeleteParams::default())
        .await
        .unwrap();
    eventually("namespace records gone", || async {
        Api::<Namespace>::all(env.down.clone())
            .get_opt("records")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let v3 = vec![resource("a.yaml", &cm_yaml("a", "3"))];
    let m3 = put_content(&env.up, &v3).await;
    set_deployment(&env.up, "rel", &m3, &options("records")).await;
    wait_ready(&env.up, "rel", &m3).await;
    let cm = configmap(&env.down, "records", "a")
        .await
        .expect("a deployed again");
    assert_eq!(cm.data.unwrap()["key"], "3");
    env.stop().await;
}

//! Agent management against the in-process simulator: the agent manifest, the per-cluster
//! agent Bundle with its status hashes (redeploy on a settings change and on
//! `redeployAgentGeneration`), malformed settings reported on the Cluster only, the import of a
//! cluster through its kubeconfig (removing a pre-0.12 StatefulSet agent, leaving deployed
//! objects alone) and the local cluster bootstrap inheriting the controller's tolerations. The
//! tests play the registration-token controller themselves.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure should panic

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fleet_api::{Bundle, Cluster, ClusterRegistrationToken};
use fleet_controller::agentmanagement::bootstrap::{self, LocalCluster};
use fleet_controller::agentmanagement::connector::kubeconfig_server_and_token;
use fleet_controller::agentmanagement::manageagent::{self, AgentSettingsRecord};
use fleet_controller::agentmanagement::manifest::{
    self, AGENT_NAME, ManifestOptions, agent_manifest,
};
use fleet_controller::agentmanagement::validate::validate_agent_settings;
use fleet_controller::agentmanagement::{
    ConnectError, DownstreamConnector, SharedDownstreamConnector, import,
};
use fleet_controller::{Context, ControllerConfig, Metrics};
use fleet_simulator::{SimConfig, Simulator};
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Toleration};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const NS: &str = "fleet-default";

fn toleration(key: &str, operator: &str, value: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.to_string()).filter(|k| !k.is_empty()),
        operator: Some(operator.to_string()),
        value: Some(value.to_string()).filter(|v| !v.is_empty()),
        effect: Some(effect.to_string()).filter(|e| !e.is_empty()),
        toleration_seconds: None,
    }
}

fn deployment_of(objs: &[Value]) -> Deployment {
    let value = objs
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("a Deployment")
        .clone();
    serde_json::from_value(value).unwrap()
}

fn env_of(deployment: &Deployment) -> BTreeMap<String, String> {
    deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            let value = e.value.unwrap_or_else(|| {
                format!(
                    "fieldRef:{}",
                    e.value_from.unwrap().field_ref.unwrap().field_path
                )
            });
            (e.name, value)
        })
        .collect()
}

#[test]
fn the_manifest_is_a_deployment_with_leader_election_and_the_cluster_settings() {
    let opts = ManifestOptions {
        agent_image: "fleet-rs/fleet:v1".into(),
        private_repo_url: "registry.example.com:5000".into(),
        agent_tolerations: vec![toleration("dedicated", "Equal", "fleet", "NoSchedule")],
        host_network: true,
        bundledeployment_workers: 7,
        drift_workers: 3,
        checkin_interval: Duration::from_secs(60),
        generation: 4,
        ..ManifestOptions::default()
    };
    let objs = agent_manifest("cattle-fleet-system", "", &opts);
    let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ServiceAccount",
            "ServiceAccount",
            "Deployment",
            "NetworkPolicy"
        ]
    );
    let deployment = deployment_of(&objs);
    assert_eq!(deployment.metadata.name.as_deref(), Some(AGENT_NAME));
    let spec = deployment.spec.as_ref().unwrap();
    assert_eq!(
        spec.strategy.as_ref().unwrap().type_.as_deref(),
        Some("Recreate"),
        "host network agents are recreated, never surged"
    );
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(pod.service_account_name.as_deref(), Some(AGENT_NAME));
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("registry.example.com:5000/fleet-rs/fleet:v1")
    );
    let tolerations = pod.tolerations.as_ref().unwrap();
    assert_eq!(
        tolerations.len(),
        3,
        "two built-in tolerations + the cluster's"
    );
    assert_eq!(tolerations[2].key.as_deref(), Some("dedicated"));
    let env = env_of(&deployment);
    assert_eq!(env["BUNDLEDEPLOYMENT_RECONCILER_WORKERS"], "7");
    assert_eq!(env["DRIFT_RECONCILER_WORKERS"], "3");
    assert_eq!(env["CHECKIN_INTERVAL"], "1m0s");
    assert_eq!(env["CATTLE_ELECTION_LEASE_DURATION"], "30s");
    assert_eq!(env["CATTLE_ELECTION_RENEW_DEADLINE"], "25s");
    assert_eq!(env["CATTLE_ELECTION_RETRY_PERIOD"], "10s");
    assert_eq!(env["NAMESPACE"], "fieldRef:metadata.namespace");
    assert_eq!(env["POD_NAME"], "fieldRef:metadata.name");
    assert_eq!(env["GENERATION"], "4");
    assert_eq!(env["AGENT_SCOPE"], "");
    // The YAML of the agent bundle parses back to the same objects.
    let yaml = manifest::to_yaml(&objs);
    let back: Vec<Value> = yaml
        .split("---\n")
        .map(|doc| serde_norway::from_str(doc).unwrap())
        .collect();
    assert_eq!(back, objs);
}

#[test]
fn malformed_tolerations_name_the_field() {
    let mut spec = fleet_api::ClusterSpec {
        agent_tolerations: vec![
            toleration("ok", "Equal", "yes", "NoSchedule"),
            toleration("node.kubernetes.io/x", "Equalz", "", "NoSchedule"),
            toleration("", "Equal", "", ""),
            toleration("k", "Exists", "v", "Sometimes"),
        ],
        ..Default::default()
    };
    let problems = validate_agent_settings(&spec);
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.agentTolerations[1].operator",
            "spec.agentTolerations[2].operator",
            "spec.agentTolerations[3].operator",
            "spec.agentTolerations[3].effect",
        ]
    );
    assert!(
        problems[0]
            .problem
            .contains("Unsupported value: \"Equalz\"")
    );
    spec.agent_tolerations.truncate(1);
    assert!(validate_agent_settings(&spec).is_empty());
}

#[test]
fn hashes_follow_the_settings_and_clear_when_they_are_removed() {
    let mut spec = fleet_api::ClusterSpec::default();
    assert_eq!(
        AgentSettingsRecord::of(&spec),
        AgentSettingsRecord::default()
    );
    spec.agent_tolerations = vec![toleration("a", "Exists", "", "NoSchedule")];
    let first = AgentSettingsRecord::of(&spec);
    assert_eq!(first.tolerations_hash.len(), 56, "hex SHA-224");
    spec.agent_tolerations[0].key = Some("b".into());
    assert_ne!(
        AgentSettingsRecord::of(&spec).tolerations_hash,
        first.tolerations_hash
    );
    spec.agent_tolerations.clear();
    assert_eq!(AgentSettingsRecord::of(&spec).tolerations_hash, "");
}

// --- on the simulator -------------------------------------------------------------------------

struct Env {
    sim: Simulator,
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

/// Resolves `https://<any>/clusters/<name>` to the simulated cluster, with admin rights when
/// the kubeconfig carries that cluster's admin token.
struct SimConnector(Simulator);

impl DownstreamConnector for SimConnector {
    fn connect<'a>(
        &'a self,
        kubeconfig: &'a str,
    ) -> BoxFuture<'a, Result<kube::Client, ConnectError>> {
        Box::pin(async move {
            let (server, token) = kubeconfig_server_and_token(kubeconfig)?;
            let name = server
                .trim_end_matches('/')
                .rsplit_once("/clusters/")
                .map(|(_, n)| n.to_string())
                .unwrap_or_default();
            let cluster = self.0.cluster(&name).ok_or_else(|| ConnectError::Client {
                server: server.clone(),
                message: "no such simulated cluster".into(),
            })?;
            if cluster.token() != token {
                return Err(ConnectError::Client {
                    server,
                    message: "unknown token".into(),
                });
            }
            Ok(cluster.client())
        })
    }
}

fn config(sim: &Simulator) -> ControllerConfig {
    ControllerConfig {
        cluster_workers: 4,
        content_gc_interval: Duration::from_millis(500),
        agent_image: "fleet-rs/fleet:test".into(),
        downstream_connector: SharedDownstreamConnector::new(SimConnector(sim.clone())),
        leader_election: false,
        ..ControllerConfig::default()
    }
}

async fn ensure_namespace(client: &kube::Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("namespace {name}: {e}"),
    }
}

type Runner = fn(Arc<Context>, CancellationToken) -> BoxFuture<'static, ()>;

/// An upstream cluster with Fleet's CRDs, running the given reconcilers.
async fn start(config_for: impl FnOnce(&Simulator) -> ControllerConfig, runners: &[Runner]) -> Env {
    let sim = Simulator::new(SimConfig {
        profile: None,
        ..SimConfig::default()
    });
    let upstream = sim.add_cluster("upstream").unwrap();
    upstream.install_crds(&fleet_api::crds::all()).unwrap();
    let client = upstream.client();
    ensure_namespace(&client, NS).await;
    ensure_namespace(&client, "cattle-fleet-system").await;
    let mut registry = prometheus_client::registry::Registry::default();
    let ctx = Arc::new(Context::new(
        client.clone(),
        config_for(&sim),
        Metrics::new(&mut registry),
    ));
    let shutdown = CancellationToken::new();
    let tasks = runners
        .iter()
        .map(|run| tokio::spawn(run(ctx.clone(), shutdown.clone())))
        .collect();
    Env {
        sim,
        client,
        shutdown,
        tasks,
    }
}

fn run_manageagent(ctx: Arc<Context>, s: CancellationToken) -> BoxFuture<'static, ()> {
    Box::pin(async move { manageagent::run(ctx, s).await.unwrap() })
}

fn run_import(ctx: Arc<Context>, s: CancellationToken) -> BoxFuture<'static, ()> {
    Box::pin(async move { import::run(ctx, s).await.unwrap() })
}

fn run_bootstrap(ctx: Arc<Context>, s: CancellationToken) -> BoxFuture<'static, ()> {
    Box::pin(async move { bootstrap::run(ctx, s).await.unwrap() })
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
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_cluster(client: &kube::Client, name: &str, spec: Value) {
    let cluster: Cluster = serde_json::from_value(json!({
        "apiVersion": "fleet.cattle.io/v1alpha1", "kind": "Cluster",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }))
    .unwrap();
    Api::<Cluster>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap();
}

async fn patch_cluster_spec(client: &kube::Client, name: &str, spec: Value) {
    Api::<Cluster>::namespaced(client.clone(), NS)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": spec})),
        )
        .await
        .unwrap();
}

async fn cluster(client: &kube::Client, name: &str) -> Cluster {
    Api::<Cluster>::namespaced(client.clone(), NS)
        .get(name)
        .await
        .unwrap()
}

async fn agent_deployment_in_bundle(client: &kube::Client, cluster: &str) -> Option<Deployment> {
    let bundle = Api::<Bundle>::namespaced(client.clone(), NS)
        .get_opt(&format!("fleet-agent-{cluster}"))
        .await
        .unwrap()?;
    let yaml = &bundle.spec.resources.first()?.content;
    let objs: Vec<Value> = yaml
        .split("---\n")
        .map(|doc| serde_norway::from_str(doc).unwrap())
        .collect();
    Some(deployment_of(&objs))
}

fn pod_tolerations(d: &Deployment) -> Vec<Toleration> {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .tolerations
        .clone()
        .unwrap_or_default()
}

fn condition(cluster: &Cluster, type_: &str) -> Option<fleet_api::GenericCondition> {
    cluster
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cluster_gets_an_agent_bundle_redeployed_on_settings_and_generation_changes() {
    let env = start(config, &[run_manageagent]).await;
    let client = env.client.clone();
    create_cluster(&client, "a", json!({"agentTolerations": [{"key": "dedicated", "operator": "Equal", "value": "fleet", "effect": "NoSchedule"}]})).await;
    create_cluster(&client, "b", json!({})).await;

    let deployment = eventually("the agent bundle of a", || {
        agent_deployment_in_bundle(&client, "a")
    })
    .await;
    assert_eq!(pod_tolerations(&deployment).len(), 3);
    let bundle = Api::<Bundle>::namespaced(client.clone(), NS)
        .get("fleet-agent-a")
        .await
        .unwrap();
    assert_eq!(bundle.spec.targets[0].cluster_name, "a");
    assert_eq!(bundle.spec.default_namespace, "cattle-fleet-system");
    assert!(bundle.spec.helm.as_ref().unwrap().take_ownership);
    let a = eventually("a's status hashes", || async {
        let c = cluster(&client, "a").await;
        c.status
            .as_ref()
            .filter(|s| !s.agent_tolerations_hash.is_empty())?;
        Some(c)
    })
    .await;
    let status = a.status.clone().unwrap();
    assert_eq!(status.agent_deployed_generation, Some(0));
    assert_eq!(
        status.agent_tolerations_hash,
        AgentSettingsRecord::of(&a.spec).tolerations_hash
    );
    let first_hash = status.agent_tolerations_hash.clone();
    eventually("the agent bundle of b", || {
        agent_deployment_in_bundle(&client, "b")
    })
    .await;

    // A tolerations change redeploys: new bundle content, new hash.
    patch_cluster_spec(&client, "a", json!({"agentTolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]})).await;
    eventually("a's bundle with the new toleration", || async {
        let d = agent_deployment_in_bundle(&client, "a").await?;
        (pod_tolerations(&d)[2].operator.as_deref() == Some("Exists")).then_some(())
    })
    .await;
    eventually("a's new tolerations hash", || async {
        let s = cluster(&client, "a").await.status?;
        (!s.agent_tolerations_hash.is_empty() && s.agent_tolerations_hash != first_hash)
            .then_some(())
    })
    .await;

    // redeployAgentGeneration forces a new pod template even without a settings change.
    patch_cluster_spec(&client, "b", json!({"redeployAgentGeneration": 3})).await;
    eventually("b's bundle with GENERATION=3", || async {
        let d = agent_deployment_in_bundle(&client, "b").await?;
        (env_of(&d)["GENERATION"] == "3").then_some(())
    })
    .await;
    eventually("b's agentDeployedGeneration", || async {
        (cluster(&client, "b")
            .await
            .status?
            .agent_deployed_generation
            == Some(3))
        .then_some(())
    })
    .await;

    // A malformed toleration on b: a clear condition, b's bundle untouched, a unaffected.
    let b_before = Api::<Bundle>::namespaced(client.clone(), NS)
        .get("fleet-agent-b")
        .await
        .unwrap();
    patch_cluster_spec(
        &client,
        "b",
        json!({"agentTolerations": [{"key": "x", "operator": "Equalz", "value": "y"}]}),
    )
    .await;
    let reconciled = eventually("b's Reconciled=False condition", || async {
        let c = condition(&cluster(&client, "b").await, "Reconciled")?;
        (c.status == "False").then_some(c)
    })
    .await;
    assert!(
        reconciled
            .message
            .contains("spec.agentTolerations[0].operator")
            && reconciled.message.contains("Equalz")
            && reconciled.message.contains("fleet-default/b"),
        "{}",
        reconciled.message
    );
    patch_cluster_spec(
        &client,
        "a",
        json!({"agentEnvVars": [{"name": "EXTRA", "value": "1"}]}),
    )
    .await;
    eventually("a's bundle with the extra env var", || async {
        let d = agent_deployment_in_bundle(&client, "a").await?;
        (env_of(&d).get("EXTRA").map(String::as_str) == Some("1")).then_some(())
    })
    .await;
    let b_after = Api::<Bundle>::namespaced(client.clone(), NS)
        .get("fleet-agent-b")
        .await
        .unwrap();
    assert_eq!(
        b_before.spec, b_after.spec,
        "an invalid setting is never deployed"
    );
    assert_eq!(
        condition(&cluster(&client, "a").await, "Reconciled")
            .unwrap()
            .status,
        "True"
    );
    // Fixed: the condition clears and the bundle follows.
    patch_cluster_spec(
        &client,
        "b",
        json!({"agentTolerations": [{"key": "x", "operator": "Equal", "value": "y"}]}),
    )
    .await;
    eventually("b's Reconciled=True", || async {
        (condition(&cluster(&client, "b").await, "Reconciled")?.status == "True").then_some(())
    })
    .await;

    // A deleted cluster's agent bundle goes away.
    Api::<Cluster>::namespaced(client.clone(), NS)
        .delete("b", &Default::default())
        .await
        .unwrap();
    eventually("b's agent bundle to be deleted", || async {
        Api::<Bundle>::namespaced(client.clone(), NS)
            .get_opt("fleet-agent-b")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Plays the registration-token controller: gives the token a values secret.
async fn grant_token(client: &kube::Client, token_name: &str) {
    let tokens: Api<ClusterRegistrationToken> = Api::namespaced(client.clone(), NS);
    eventually("the import token", || async {
        tokens.get_opt(token_name).await.unwrap()
    })
    .await;
    let values = "token: sa-token-123\napiServerURL: https://fleet-sim.invalid/clusters/upstream\napiServerCA: ''\nsystemRegistrationNamespace: cattle-fleet-clusters-system\nclusterNamespace: fleet-default\n";
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": token_name, "namespace": NS},
        "type": "fleet.cattle.io/cluster-registration-values",
        "data": {"values": b64(values)},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    tokens
        .patch_status(
            token_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"secretName": token_name}})),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_replaces_a_statefulset_agent_and_leaves_deployed_objects_alone() {
    let env = start(config, &[run_import]).await;
    let client = env.client.clone();
    let downstream_cluster = env.sim.add_cluster("down-1").unwrap();
    let downstream = downstream_cluster.client();
    // The pre-0.12 agent and an object it deployed.
    ensure_namespace(&downstream, "cattle-fleet-system").await;
    let (statefulset, service) =
        manifest::legacy_agent_statefulset("cattle-fleet-system", "", &ManifestOptions::default());
    import::apply_objects(
        &downstream,
        &[
            manifest::to_value(&statefulset),
            manifest::to_value(&service),
        ],
    )
    .await
    .unwrap();
    let app: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "app", "namespace": "default"}, "data": {"k": "v"}}),
    )
    .unwrap();
    let app_uid = Api::<ConfigMap>::namespaced(downstream.clone(), "default")
        .create(&PostParams::default(), &app)
        .await
        .unwrap()
        .metadata
        .uid;

    let kubeconfig = downstream_cluster.kubeconfig("https://fleet-sim.invalid/clusters/down-1");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "down-1-kubeconfig", "namespace": NS},
        "data": {"value": b64(&kubeconfig)},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    create_cluster(&client, "down-1", json!({"kubeConfigSecret": "down-1-kubeconfig", "agentTolerations": [{"key": "t", "operator": "Exists", "effect": "NoSchedule"}]})).await;
    // The import gives the cluster a clientID first.
    let client_id = eventually("a clientID", || async {
        Some(cluster(&client, "down-1").await.spec.client_id).filter(|id| !id.is_empty())
    })
    .await;
    grant_token(&client, "import-token-down-1").await;

    let imported = eventually("the Imported condition", || async {
        let c = cluster(&client, "down-1").await;
        (condition(&c, "Imported")?.status == "True").then_some(c)
    })
    .await;
    let status = imported.status.clone().unwrap();
    assert_eq!(status.agent_deployed_generation, Some(0));
    assert!(status.agent_migrated && status.agent_namespace_migrated);
    assert!(!status.agent_config_changed);
    assert_eq!(
        status.api_server_url,
        "https://fleet-sim.invalid/clusters/upstream"
    );
    assert_eq!(
        status.agent_tolerations_hash,
        AgentSettingsRecord::of(&imported.spec).tolerations_hash
    );

    let ns = "cattle-fleet-system";
    assert!(
        Api::<StatefulSet>::namespaced(downstream.clone(), ns)
            .get_opt(AGENT_NAME)
            .await
            .unwrap()
            .is_none(),
        "the pre-0.12 StatefulSet is removed"
    );
    let deployment = Api::<Deployment>::namespaced(downstream.clone(), ns)
        .get(AGENT_NAME)
        .await
        .unwrap();
    assert_eq!(pod_tolerations(&deployment).len(), 3);
    assert_eq!(
        deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .image
            .as_deref(),
        Some("fleet-rs/fleet:test")
    );
    let bootstrap = Api::<Secret>::namespaced(downstream.clone(), ns)
        .get("fleet-agent-bootstrap")
        .await
        .unwrap();
    let data = bootstrap.data.unwrap();
    assert_eq!(data["token"].0, b"sa-token-123");
    assert_eq!(data["clusterNamespace"].0, b"fleet-default");
    let config_map = Api::<ConfigMap>::namespaced(downstream.clone(), ns)
        .get(AGENT_NAME)
        .await
        .unwrap();
    let agent_config: Value = serde_json::from_str(&config_map.data.unwrap()["config"]).unwrap();
    assert_eq!(agent_config["clientID"], client_id.as_str());
    let app_after = Api::<ConfigMap>::namespaced(downstream.clone(), "default")
        .get("app")
        .await
        .unwrap();
    assert_eq!(
        app_after.metadata.uid, app_uid,
        "deployed objects keep their uid"
    );

    // redeployAgentGeneration: the import runs again and recreates the Deployment.
    let old_uid = deployment.metadata.uid.clone();
    patch_cluster_spec(&client, "down-1", json!({"redeployAgentGeneration": 1})).await;
    eventually("the redeployed agent", || async {
        let d = Api::<Deployment>::namespaced(downstream.clone(), ns)
            .get_opt(AGENT_NAME)
            .await
            .unwrap()?;
        (d.metadata.uid != old_uid && env_of(&d)["GENERATION"] == "1").then_some(())
    })
    .await;
    eventually("agentDeployedGeneration 1", || async {
        (cluster(&client, "down-1")
            .await
            .status?
            .agent_deployed_generation
            == Some(1))
        .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_reported_and_others_still_import() {
    let env = start(config, &[run_import]).await;
    let client = env.client.clone();
    let good = env.sim.add_cluster("good").unwrap();
    for (name, kubeconfig) in [
        ("broken", "this: is: not a kubeconfig".to_string()),
        (
            "good",
            good.kubeconfig("https://fleet-sim.invalid/clusters/good"),
        ),
    ] {
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}-kc"), "namespace": NS},
            "data": {"value": b64(&kubeconfig)},
        }))
        .unwrap();
        Api::<Secret>::namespaced(client.clone(), NS)
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
        create_cluster(
            &client,
            name,
            json!({"kubeConfigSecret": format!("{name}-kc"), "clientID": name}),
        )
        .await;
    }
    grant_token(&client, "import-token-good").await;
    let broken = eventually("broken's Imported=False", || async {
        let c = condition(&cluster(&client, "broken").await, "Imported")?;
        (c.status == "False").then_some(c)
    })
    .await;
    assert!(
        broken.message.contains("fleet-default/broken") && broken.message.contains("kubeconfig"),
        "{}",
        broken.message
    );
    eventually("good's Imported=True", || async {
        (condition(&cluster(&client, "good").await, "Imported")?.status == "True").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_cluster_inherits_the_controller_tolerations() {
    let env = start(
        |sim| ControllerConfig {
            bootstrap_local_cluster: Some(LocalCluster {
                kubeconfig: "apiVersion: v1\nkind: Config\n".into(),
                api_server_url: "https://fleet-sim.invalid/clusters/upstream".into(),
                api_server_ca: String::new(),
            }),
            ..config(sim)
        },
        &[run_bootstrap],
    )
    .await;
    let client = env.client.clone();
    let controller: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "fleet-controller", "namespace": "cattle-fleet-system"},
        "spec": {
            "selector": {"matchLabels": {"app": "fleet-controller"}},
            "template": {
                "metadata": {"labels": {"app": "fleet-controller"}},
                "spec": {
                    "containers": [{"name": "fleet-controller", "image": "fleet"}],
                    "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]
                }
            }
        }
    }))
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "cattle-fleet-system");
    deployments
        .create(&PostParams::default(), &controller)
        .await
        .unwrap();
    let clusters: Api<Cluster> = Api::namespaced(client.clone(), "fleet-local");
    let local = eventually(
        "the local cluster with the controller's toleration",
        || async {
            let c = clusters.get_opt("local").await.ok()??;
            (c.spec.agent_tolerations.len() == 1).then_some(c)
        },
    )
    .await;
    assert_eq!(
        local.spec.agent_tolerations[0].key.as_deref(),
        Some("node-role.kubernetes.io/control-plane")
    );
    assert_eq!(local.spec.kube_config_secret, "local-cluster");
    assert_eq!(local.metadata.labels.unwrap()["name"], "local");
    assert!(
        Api::<fleet_api::ClusterGroup>::namespaced(client.clone(), "fleet-local")
            .get_opt("default")
            .await
            .unwrap()
            .is_some()
    );
    // The controller's tolerations change: the local cluster follows.
    deployments
        .patch(
            "fleet-controller",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"tolerations": [
                {"key": "a", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "b", "operator": "Exists", "effect": "NoExecute"}
            ]}}}})),
        )
        .await
        .unwrap();
    eventually("the local cluster with both new tolerations", || async {
        let c = clusters.get_opt("local").await.ok()??;
        (c.spec.agent_tolerations.len() == 2).then_some(())
    })
    .await;
}

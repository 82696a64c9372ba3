//! Agent-initiated registration on the in-process simulator, with the simulator's
//! ServiceAccount tokens and RBAC: ClusterRegistrationToken → values → ClusterRegistration →
//! granted credentials limited to the cluster's own namespace; token expiry; re-registration;
//! bad bootstrap values; and the real agent process registering and deploying a bundle.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure should panic

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fleet_agent::register::{
    self, BootstrapValues, RegisterError, RegisterOptions, UpstreamConnector, secret_strings,
};
use fleet_api::{
    Bundle, BundleDeployment, BundleResource, BundleSpec, BundleTarget, Cluster,
    ClusterRegistration, ClusterRegistrationSpec, ClusterRegistrationToken,
    ClusterRegistrationTokenSpec, ClusterSpec, Content,
};
use fleet_controller::registration::registration_secret_name;
use fleet_controller::registration::request::cluster_name_for;
use fleet_controller::{Context, ControllerConfig, Metrics};
use fleet_simulator::{SimCluster, SimConfig, Simulator};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const NS: &str = "fleet-default";
const SYSTEM_REGISTRATION_NS: &str = "cattle-fleet-clusters-system";
const AGENT_NS: &str = "cattle-fleet-system";

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Reaches simulated clusters in-process by their URL, with the given bearer token (what
/// `HttpsConnector` does over the network).
struct SimConnector(Simulator);

impl UpstreamConnector for SimConnector {
    fn connect(&self, url: &str, _ca: &str, token: &str) -> Result<kube::Client, RegisterError> {
        self.0
            .cluster_for_url(url)
            .map(|c| c.client_with_token(token))
            .ok_or_else(|| RegisterError::Connect {
                url: url.to_string(),
                message: "no simulated cluster at this URL".to_string(),
            })
    }
}

struct Env {
    sim: Simulator,
    upstream: SimCluster,
    admin: kube::Client,
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

async fn create_namespace(client: &kube::Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("creating namespace {name}: {e}"),
    }
}

/// The upstream cluster with Fleet's CRDs, and the cluster, bundle and registration
/// reconcilers running against it.
async fn start() -> Env {
    init_tracing();
    let sim = Simulator::new(SimConfig {
        profile: None,
        ..SimConfig::default()
    });
    let upstream = sim.add_cluster("upstream").unwrap();
    upstream.install_crds(&fleet_api::crds::all()).unwrap();
    let admin = upstream.client();
    create_namespace(&admin, NS).await;
    let config = ControllerConfig {
        api_server_url: upstream.in_process_url(),
        api_server_ca: upstream.ca_pem(),
        bundle_workers: 4,
        cluster_workers: 4,
        leader_election: false,
        ..ControllerConfig::default()
    };
    let mut registry = prometheus_client::registry::Registry::default();
    let ctx = Arc::new(Context::new(
        admin.clone(),
        config,
        Metrics::new(&mut registry),
    ));
    let shutdown = CancellationToken::new();
    let tasks = vec![
        tokio::spawn({
            let (ctx, s) = (ctx.clone(), shutdown.clone());
            async move { fleet_controller::cluster::run(ctx, s).await.unwrap() }
        }),
        tokio::spawn({
            let (ctx, s) = (ctx.clone(), shutdown.clone());
            async move { fleet_controller::bundle::run(ctx, s).await.unwrap() }
        }),
        tokio::spawn({
            let (ctx, s) = (ctx.clone(), shutdown.clone());
            async move { fleet_controller::registration::run(ctx, s).await.unwrap() }
        }),
    ];
    Env {
        sim,
        upstream,
        admin,
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

async fn create_token(admin: &kube::Client, name: &str, ttl: Option<&str>) {
    let token = ClusterRegistrationToken::new(
        name,
        ClusterRegistrationTokenSpec {
            ttl: ttl.map(|t| t.parse().unwrap()),
        },
    );
    Api::<ClusterRegistrationToken>::namespaced(admin.clone(), NS)
        .create(&PostParams::default(), &token)
        .await
        .unwrap();
}

/// The bootstrap values of a token, once the controller has written its values Secret.
async fn token_values(admin: &kube::Client, name: &str) -> BootstrapValues {
    let tokens = Api::<ClusterRegistrationToken>::namespaced(admin.clone(), NS);
    let secret_name = eventually(&format!("status.secretName of token {name}"), || async {
        tokens
            .get(name)
            .await
            .unwrap()
            .status
            .map(|s| s.secret_name)
            .filter(|s| !s.is_empty())
    })
    .await;
    let secret = Api::<Secret>::namespaced(admin.clone(), NS)
        .get(&secret_name)
        .await
        .unwrap();
    assert_eq!(
        secret.type_.as_deref(),
        Some("fleet.cattle.io/cluster-registration-values")
    );
    BootstrapValues::from_strings(&secret_strings(&secret)).unwrap()
}

fn status_code(result: Result<impl Sized, kube::Error>) -> u16 {
    match result {
        Ok(_) => 200,
        Err(kube::Error::Api(s)) => s.code,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// Creates a ClusterRegistration the way the agent does, with the token's client.
async fn request_registration(
    import: &kube::Client,
    client_id: &str,
    random: &str,
    labels: &[(&str, &str)],
) -> Result<ClusterRegistration, kube::Error> {
    let request = ClusterRegistration {
        metadata: ObjectMeta {
            generate_name: Some("request-".into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        spec: ClusterRegistrationSpec {
            client_id: client_id.into(),
            client_random: random.into(),
            cluster_labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
        status: None,
    };
    Api::<ClusterRegistration>::namespaced(import.clone(), NS)
        .create(&PostParams::default(), &request)
        .await
}

async fn wait_granted(admin: &kube::Client, name: &str) -> ClusterRegistration {
    let api = Api::<ClusterRegistration>::namespaced(admin.clone(), NS);
    eventually(&format!("ClusterRegistration {name} granted"), || async {
        api.get(name)
            .await
            .unwrap()
            .status
            .as_ref()
            .is_some_and(|s| s.granted)
            .then_some(())
    })
    .await;
    api.get(name).await.unwrap()
}

/// The registration secret of a granted request, read as the agent does: with its
/// bootstrap token.
async fn granted_credentials(
    import: &kube::Client,
    client_id: &str,
    random: &str,
) -> BTreeMap<String, String> {
    let secret = Api::<Secret>::namespaced(import.clone(), SYSTEM_REGISTRATION_NS)
        .get(&registration_secret_name(client_id, random))
        .await
        .unwrap();
    assert_eq!(
        secret.type_.as_deref(),
        Some("fleet.cattle.io/agent-credential")
    );
    secret_strings(&secret)
}

/// Registers `client_id` through a token and returns (agent client, cluster name, cluster
/// namespace).
async fn register_client(
    env: &Env,
    import: &kube::Client,
    client_id: &str,
    random: &str,
) -> (kube::Client, String, String) {
    let request = request_registration(import, client_id, random, &[("env", "prod")])
        .await
        .unwrap();
    let granted = wait_granted(&env.admin, &request.metadata.name.unwrap()).await;
    let cluster_name = granted.status.unwrap().cluster_name;
    let creds = granted_credentials(import, client_id, random).await;
    assert_eq!(creds["clusterName"], cluster_name);
    assert_eq!(creds["clusterNamespace"], NS);
    let agent = env.upstream.client_with_token(&creds["token"]);
    (agent, cluster_name, creds["deploymentNamespace"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn granted_credentials_reach_only_their_own_cluster_namespace() {
    let env = start().await;
    create_token(&env.admin, "import", None).await;
    let values = token_values(&env.admin, "import").await;
    assert_eq!(values.api_server_url, env.upstream.in_process_url());
    assert_eq!(values.api_server_ca, env.upstream.ca_pem());
    assert_eq!(values.cluster_namespace, NS);
    assert_eq!(values.system_registration_namespace, SYSTEM_REGISTRATION_NS);
    let import = env.upstream.client_with_token(&values.token);

    // The bootstrap token may create registrations in its namespace, and nothing else.
    create_namespace(&env.admin, "elsewhere").await;
    let elsewhere = Api::<ClusterRegistration>::namespaced(import.clone(), "elsewhere")
        .create(
            &PostParams::default(),
            &ClusterRegistration::new("x", ClusterRegistrationSpec::default()),
        )
        .await;
    assert_eq!(status_code(elsewhere), 403);
    assert_eq!(
        status_code(
            Api::<BundleDeployment>::all(import.clone())
                .list(&ListParams::default())
                .await
        ),
        403
    );

    let (agent_a, cluster_a, ns_a) = register_client(&env, &import, "client-a", "random-a").await;
    let (agent_b, cluster_b, ns_b) = register_client(&env, &import, "client-b", "random-b").await;
    assert_eq!(cluster_a, cluster_name_for("client-a"));
    assert_ne!(ns_a, ns_b);

    // The Cluster was created with the request's labels, and got its namespace.
    let cluster = Api::<Cluster>::namespaced(env.admin.clone(), NS)
        .get(&cluster_a)
        .await
        .unwrap();
    assert_eq!(cluster.spec.client_id, "client-a");
    let labels = cluster.metadata.labels.unwrap();
    assert_eq!(labels["env"], "prod");
    assert_eq!(labels["fleet.cattle.io/cluster"], cluster_a);
    assert_eq!(cluster.status.unwrap().namespace, ns_a);
    Api::<Namespace>::all(env.admin.clone())
        .get(&ns_a)
        .await
        .unwrap();

    // Each agent reads the BundleDeployments of its own namespace...
    let bds =
        |client: &kube::Client, ns: &str| Api::<BundleDeployment>::namespaced(client.clone(), ns);
    assert_eq!(
        status_code(bds(&agent_a, &ns_a).list(&ListParams::default()).await),
        200
    );
    assert_eq!(
        status_code(bds(&agent_b, &ns_b).list(&ListParams::default()).await),
        200
    );
    // ...and gets 403 in another cluster's namespace, with kube-apiserver's message.
    match bds(&agent_a, &ns_b).list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 403);
            assert_eq!(s.reason, "Forbidden");
            assert!(
                s.message
                    .contains("cannot list resource \"bundledeployments\""),
                "{}",
                s.message
            );
            assert!(s.message.contains(&ns_b), "{}", s.message);
        }
        other => panic!("expected 403, got {other:?}"),
    }
    assert_eq!(status_code(bds(&agent_b, &ns_a).get("anything").await), 403);
    // Contents are readable by name (404: authorized, just missing), not listable.
    assert_eq!(
        status_code(Api::<Content>::all(agent_a.clone()).get("s-missing").await),
        404
    );
    assert_eq!(
        status_code(
            Api::<Content>::all(agent_a.clone())
                .list(&ListParams::default())
                .await
        ),
        403
    );
    // The check-in: the agent patches its own Cluster's status, not another's.
    let checkin =
        json!({"status": {"agent": {"lastSeen": "2025-01-01T00:00:00Z", "namespace": AGENT_NS}}});
    let clusters_a = Api::<Cluster>::namespaced(agent_a.clone(), NS);
    assert_eq!(
        status_code(
            clusters_a
                .patch_status(&cluster_a, &PatchParams::default(), &Patch::Merge(&checkin))
                .await
        ),
        200
    );
    assert_eq!(
        status_code(
            clusters_a
                .patch_status(&cluster_b, &PatchParams::default(), &Patch::Merge(&checkin))
                .await
        ),
        403
    );
    // No reading of other agents' registration secrets with the agent credentials.
    assert_eq!(
        status_code(
            Api::<Secret>::namespaced(agent_a.clone(), SYSTEM_REGISTRATION_NS)
                .get(&registration_secret_name("client-b", "random-b"))
                .await
        ),
        403
    );
}

/// A downstream cluster with the agent namespace and the bootstrap secret holding `values`
/// (as the fleet-agent chart's `secret.yaml` writes it), plus the agent ConfigMap.
async fn downstream_with_bootstrap(
    sim: &Simulator,
    name: &str,
    values: &BootstrapValues,
    config_json: &str,
) -> SimCluster {
    let cluster = sim.add_cluster(name).unwrap();
    let client = cluster.client();
    create_namespace(&client, AGENT_NS).await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "fleet-agent-bootstrap", "namespace": AGENT_NS},
        "stringData": {
            "apiServerURL": values.api_server_url,
            "apiServerCA": values.api_server_ca,
            "token": values.token,
            "clusterNamespace": values.cluster_namespace,
            "systemRegistrationNamespace": values.system_registration_namespace,
        },
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), AGENT_NS)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "fleet-agent", "namespace": AGENT_NS},
        "data": {"config": config_json},
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client, AGENT_NS)
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    cluster
}

/// The agent Deployment's environment, with short test timings.
fn agent_env(pod: &str) -> fleet_agent::config::AgentEnv {
    [
        ("NAMESPACE", AGENT_NS),
        ("POD_NAME", pod),
        ("CHECKIN_INTERVAL", "2s"),
        ("BUNDLEDEPLOYMENT_RECONCILER_WORKERS", "2"),
        ("DRIFT_RECONCILER_WORKERS", "2"),
        ("CATTLE_ELECTION_LEASE_DURATION", "15s"),
        ("CATTLE_ELECTION_RENEW_DEADLINE", "10s"),
        ("CATTLE_ELECTION_RETRY_PERIOD", "200ms"),
        ("FLEET_DRIFT_DELAY", "200ms"),
        ("FLEET_REGISTRATION_RETRY", "200ms"),
        ("FLEET_REGISTRATION_SECRET_POLL", "200ms"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

struct AgentProcess {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), fleet_agent::AgentError>>,
}

impl AgentProcess {
    fn start(sim: &Simulator, downstream: &SimCluster, pod: &str) -> Self {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let client = downstream.client();
            let connector: Arc<dyn UpstreamConnector> = Arc::new(SimConnector(sim.clone()));
            let env = agent_env(pod);
            let shutdown = shutdown.clone();
            async move {
                let mut registry = prometheus_client::registry::Registry::default();
                fleet_agent::process::run_agent_process(
                    client,
                    env,
                    connector,
                    &mut registry,
                    None,
                    shutdown,
                )
                .await
            }
        });
        AgentProcess { shutdown, task }
    }

    /// Stops the process, which must finish its shutdown (a generous bound: no timing is
    /// asserted, only that stopping does not hang).
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the agent process stops within 30 s")
            .unwrap()
            .unwrap();
    }
}

/// The registration Event of `reason` in the agent namespace, once it was counted `min` times.
async fn registration_event(downstream: &SimCluster, reason: &str, min: i32) -> Event {
    let api = Api::<Event>::namespaced(downstream.client(), AGENT_NS);
    eventually(&format!("Event {reason} counted {min} times"), || async {
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some(reason) && e.count.unwrap_or(0) >= min)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_is_deleted_and_its_bootstrap_values_are_refused() {
    let env = start().await;
    create_token(&env.admin, "short", Some("8s")).await;
    let values = token_values(&env.admin, "short").await;
    let tokens = Api::<ClusterRegistrationToken>::namespaced(env.admin.clone(), NS);
    let token = tokens.get("short").await.unwrap();
    let created = token.metadata.creation_timestamp.clone().unwrap().0;
    let expires = token.status.unwrap().expires.unwrap().0;
    assert_eq!(expires.duration_since(created).as_secs(), 8);

    // Deleted once expired, with its values and its ServiceAccount.
    eventually("the expired token deleted", || async {
        tokens
            .get_opt("short")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let secrets = Api::<Secret>::namespaced(env.admin.clone(), NS);
    eventually("the values secret deleted", || async {
        secrets
            .get_opt("short")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;

    // The bootstrap token is refused: 401.
    let import = env.upstream.client_with_token(&values.token);
    assert_eq!(
        status_code(request_registration(&import, "late", "r", &[]).await),
        401
    );

    // An agent installed with these values gets a clear error naming the secret and the
    // cluster namespace...
    let downstream = downstream_with_bootstrap(&env.sim, "late-1", &values, "{}").await;
    let error = register::register(
        &downstream.client(),
        &SimConnector(env.sim.clone()),
        &RegisterOptions::new(AGENT_NS),
        &CancellationToken::new(),
    )
    .await
    .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, RegisterError::TokenRejected { .. }),
        "{message}"
    );
    assert!(
        message.contains("cattle-fleet-system/fleet-agent-bootstrap"),
        "{message}"
    );
    assert!(message.contains("fleet-default"), "{message}");
    assert!(message.contains("expired"), "{message}");

    // ...and the agent process records it as an Event and keeps retrying (no crash).
    let agent = AgentProcess::start(&env.sim, &downstream, "fleet-agent-late");
    let event = registration_event(&downstream, "RegistrationTokenRejected", 2).await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert!(
        event.message.unwrap_or_default().contains("expired"),
        "the Event says why"
    );
    assert!(!agent.task.is_finished(), "the agent process keeps running");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_registration_of_a_known_client_id_reuses_the_cluster() {
    let env = start().await;
    // A Cluster created ahead (manager-initiated), known by its clientID.
    let cluster = Cluster::new(
        "sim-1",
        ClusterSpec {
            client_id: "id-1".into(),
            ..Default::default()
        },
    );
    Api::<Cluster>::namespaced(env.admin.clone(), NS)
        .create(&PostParams::default(), &cluster)
        .await
        .unwrap();
    create_token(&env.admin, "import", None).await;
    let values = token_values(&env.admin, "import").await;
    let import = env.upstream.client_with_token(&values.token);

    let first = request_registration(&import, "id-1", "first", &[])
        .await
        .unwrap();
    let first_name = first.metadata.name.clone().unwrap();
    let (agent_1, cluster_1, ns_1) = {
        let granted = wait_granted(&env.admin, &first_name).await;
        assert_eq!(granted.status.unwrap().cluster_name, "sim-1");
        let creds = granted_credentials(&import, "id-1", "first").await;
        (
            env.upstream.client_with_token(&creds["token"]),
            creds["clusterName"].clone(),
            creds["deploymentNamespace"].clone(),
        )
    };
    assert_eq!(cluster_1, "sim-1");
    let bds = |c: &kube::Client| Api::<BundleDeployment>::namespaced(c.clone(), &ns_1);
    assert_eq!(
        status_code(bds(&agent_1).list(&ListParams::default()).await),
        200
    );

    // Creation times have second resolution: the second request must be younger.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (agent_2, cluster_2, ns_2) = register_client(&env, &import, "id-1", "second").await;
    assert_eq!(cluster_2, "sim-1");
    assert_eq!(ns_2, ns_1);
    assert_eq!(
        status_code(bds(&agent_2).list(&ListParams::default()).await),
        200
    );

    // Still one Cluster for the client; the older request and its credentials are gone.
    let clusters = Api::<Cluster>::namespaced(env.admin.clone(), NS)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(
        clusters
            .items
            .iter()
            .filter(|c| c.spec.client_id == "id-1")
            .count(),
        1
    );
    let requests = Api::<ClusterRegistration>::namespaced(env.admin.clone(), NS);
    eventually("the older registration deleted", || async {
        requests
            .get_opt(&first_name)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    eventually("the older credentials revoked", || async {
        (status_code(bds(&agent_1).list(&ListParams::default()).await) == 401).then_some(())
    })
    .await;
}

/// The registration reconciler reads Clusters from the controller's cache, which may not have
/// seen a Cluster yet: one created just before its registration (under another name) must be
/// found, not duplicated; a Cluster the reconciler created itself is retried into a 409. Both
/// with a fleet small enough to be listed and one large enough to wait for the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_racing_their_clusters_make_one_cluster_per_client() {
    let env = start().await;
    create_token(&env.admin, "import", None).await;
    let values = token_values(&env.admin, "import").await;
    let import = env.upstream.client_with_token(&values.token);
    let clusters = Api::<Cluster>::namespaced(env.admin.clone(), NS);
    let create_cluster = |name: String, client_id: String| {
        let clusters = clusters.clone();
        async move {
            let cluster = Cluster::new(
                &name,
                ClusterSpec {
                    client_id,
                    ..Default::default()
                },
            );
            clusters
                .create(&PostParams::default(), &cluster)
                .await
                .unwrap();
        }
    };
    let mut requests = Vec::new();
    for round in 0..2 {
        if round == 1 {
            // More Clusters than the reconciler lists at once when its cache is behind.
            futures::future::join_all(
                (0..110).map(|i| create_cluster(format!("filler-{i}"), format!("filler-id-{i}"))),
            )
            .await;
        }
        // Each pre-created Cluster is followed at once by its registration; each new client
        // sends two registrations at once.
        let registered = futures::future::join_all((0..10).map(|i| {
            let import = import.clone();
            let create_cluster = &create_cluster;
            async move {
                let pre_id = format!("pre-id-{round}-{i}");
                create_cluster(format!("pre-{round}-{i}"), pre_id.clone()).await;
                let new_id = format!("new-id-{round}-{i}");
                let (pre, new_a, new_b) = tokio::join!(
                    request_registration(&import, &pre_id, "r", &[]),
                    request_registration(&import, &new_id, "a", &[]),
                    request_registration(&import, &new_id, "b", &[]),
                );
                vec![
                    (pre.unwrap(), format!("pre-{round}-{i}")),
                    (new_a.unwrap(), cluster_name_for(&new_id)),
                    (new_b.unwrap(), cluster_name_for(&new_id)),
                ]
            }
        }))
        .await;
        requests.extend(registered.into_iter().flatten());
    }
    let registrations = Api::<ClusterRegistration>::namespaced(env.admin.clone(), NS);
    for (request, cluster) in &requests {
        let name = request.metadata.name.as_deref().unwrap();
        // Of a new client's two requests, the younger (by creation second) may replace the
        // older once granted.
        let granted = eventually(&format!("ClusterRegistration {name} granted"), || async {
            match registrations.get_opt(name).await.unwrap() {
                None if request.spec.client_id.starts_with("new-") => Some(None),
                None => panic!("ClusterRegistration {name} was deleted"),
                Some(r) => r.status.filter(|s| s.granted).map(|s| Some(s.cluster_name)),
            }
        })
        .await;
        if let Some(granted) = granted {
            assert_eq!(&granted, cluster, "clientID {}", request.spec.client_id);
        }
    }
    let mut per_client: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for cluster in clusters.list(&ListParams::default()).await.unwrap().items {
        per_client
            .entry(cluster.spec.client_id.clone())
            .or_default()
            .push(cluster.metadata.name.unwrap());
    }
    for (client_id, names) in &per_client {
        assert_eq!(
            names.len(),
            1,
            "clientID {client_id} has Clusters {names:?}"
        );
    }
    assert_eq!(per_client.len(), 110 + 2 * 10 * 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_for_a_missing_namespace_is_reported_and_other_clusters_register() {
    let env = start().await;
    create_token(&env.admin, "import", None).await;
    let values = token_values(&env.admin, "import").await;
    let wrong = BootstrapValues {
        cluster_namespace: "no-such-namespace".into(),
        ..values.clone()
    };
    let bad = downstream_with_bootstrap(&env.sim, "bad-1", &wrong, "{}").await;
    let good = downstream_with_bootstrap(
        &env.sim,
        "good-1",
        &values,
        r#"{"clientID":"good-client","labels":{"env":"good"}}"#,
    )
    .await;
    let bad_agent = AgentProcess::start(&env.sim, &bad, "fleet-agent-bad");
    let good_agent = AgentProcess::start(&env.sim, &good, "fleet-agent-good");

    // The bad one says what is wrong, repeatedly, without stopping.
    let event = registration_event(&bad, "RegistrationTokenForbidden", 2).await;
    let message = event.message.unwrap_or_default();
    assert!(message.contains("no-such-namespace"), "{message}");
    assert!(
        message.contains("cattle-fleet-system/fleet-agent-bootstrap"),
        "{message}"
    );
    assert!(!bad_agent.task.is_finished());

    // The good one registers meanwhile.
    let good_secrets = Api::<Secret>::namespaced(good.client(), AGENT_NS);
    let creds = eventually("the good agent's fleet-agent secret", || async {
        good_secrets.get_opt("fleet-agent").await.unwrap()
    })
    .await;
    let creds = secret_strings(&creds);
    assert_eq!(creds["clusterName"], cluster_name_for("good-client"));
    let cluster = Api::<Cluster>::namespaced(env.admin.clone(), NS)
        .get(&creds["clusterName"])
        .await
        .unwrap();
    assert_eq!(cluster.metadata.labels.unwrap()["env"], "good");
    bad_agent.stop().await;
    good_agent.stop().await;
}

fn configmap_bundle() -> Bundle {
    Bundle::new(
        "app",
        BundleSpec {
            resources: vec![BundleResource {
                name: "cm.yaml".into(),
                content:
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  key: v1\n"
                        .into(),
                encoding: String::new(),
            }],
            targets: vec![BundleTarget {
                name: "test".into(),
                cluster_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([("env".to_string(), "test".to_string())])),
                    match_expressions: None,
                }),
                ..Default::default()
            }],
            ..Default::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_process_registers_and_deploys_with_its_own_credentials() {
    let env = start().await;
    create_token(&env.admin, "import", Some("1h")).await;
    let values = token_values(&env.admin, "import").await;
    let downstream =
        downstream_with_bootstrap(&env.sim, "down-1", &values, r#"{"labels":{"env":"test"}}"#)
            .await;
    let agent = AgentProcess::start(&env.sim, &downstream, "fleet-agent-abc");

    // Registered: credentials downstream, bootstrap gone, Lease held by the pod.
    let down = downstream.client();
    let secrets = Api::<Secret>::namespaced(down.clone(), AGENT_NS);
    let creds = eventually("the fleet-agent secret", || async {
        secrets.get_opt("fleet-agent").await.unwrap()
    })
    .await;
    let creds = secret_strings(&creds);
    eventually("the bootstrap secret deleted", || async {
        secrets
            .get_opt("fleet-agent-bootstrap")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let lease = Api::<Lease>::namespaced(down.clone(), AGENT_NS)
        .get("fleet-agent")
        .await
        .unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some("fleet-agent-abc")
    );
    // The clientID defaults to the kube-system namespace's uid.
    let kube_system_uid = Api::<Namespace>::all(down.clone())
        .get("kube-system")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    let cluster_name = creds["clusterName"].clone();
    assert_eq!(cluster_name, cluster_name_for(&kube_system_uid));
    let clusters = Api::<Cluster>::namespaced(env.admin.clone(), NS);
    let cluster = clusters.get(&cluster_name).await.unwrap();
    assert_eq!(cluster.spec.client_id, kube_system_uid);
    let labels = cluster.metadata.labels.unwrap();
    assert_eq!(labels["env"], "test");
    assert_eq!(
        labels["fleet.cattle.io/created-by-agent-pod"],
        "fleet-agent-abc"
    );

    // A bundle for it is deployed and reported by the agent with its restricted credentials.
    Api::<Bundle>::namespaced(env.admin.clone(), NS)
        .create(&PostParams::default(), &configmap_bundle())
        .await
        .unwrap();
    let cms = Api::<ConfigMap>::namespaced(down.clone(), "default");
    eventually("the bundle's ConfigMap downstream", || async {
        cms.get_opt("app").await.unwrap()
    })
    .await;
    let bds = Api::<BundleDeployment>::namespaced(env.admin.clone(), &creds["deploymentNamespace"]);
    eventually("the BundleDeployment ready", || async {
        bds.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|bd| bd.status.as_ref().is_some_and(|s| s.ready))
    })
    .await;
    eventually("the agent's check-in", || async {
        clusters
            .get(&cluster_name)
            .await
            .unwrap()
            .status
            .and_then(|s| s.agent.last_seen)
    })
    .await;

    // A restarted agent reuses its credentials: no new registration.
    agent.stop().await;
    let registrations = || async {
        Api::<ClusterRegistration>::namespaced(env.admin.clone(), NS)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len()
    };
    assert_eq!(registrations().await, 1);
    let again = AgentProcess::start(&env.sim, &downstream, "fleet-agent-def");
    let leases = Api::<Lease>::namespaced(down.clone(), AGENT_NS);
    eventually("the new pod leading", || async {
        leases
            .get("fleet-agent")
            .await
            .unwrap()
            .spec
            .and_then(|s| s.holder_identity)
            .filter(|h| h == "fleet-agent-def")
    })
    .await;
    assert_eq!(registrations().await, 1);
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_connector_reaches_the_upstream_over_tls_with_the_bootstrap_ca() {
    let env = start().await;
    let serve = env.sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = serve.cluster_url("upstream");
    let ca = serve.ca_pem().unwrap().to_string();
    create_token(&env.admin, "import", None).await;
    let values = token_values(&env.admin, "import").await;

    // The import token over HTTPS, trusting the given CA: authenticated and authorized.
    let import = register::HttpsConnector
        .connect(&url, &ca, &values.token)
        .unwrap();
    let request = request_registration(&import, "tls-client", "r1", &[])
        .await
        .unwrap();
    wait_granted(&env.admin, &request.metadata.name.unwrap()).await;
    let creds = granted_credentials(&import, "tls-client", "r1").await;
    let agent = register::HttpsConnector
        .connect(&url, &ca, &creds["token"])
        .unwrap();
    Api::<BundleDeployment>::namespaced(agent, &creds["deploymentNamespace"])
        .list(&ListParams::default())
        .await
        .unwrap();

    // A CA that is not the server's fails the TLS handshake; garbage PEM is refused up front.
    let other_ca = rcgen::generate_simple_self_signed(vec!["other.invalid".to_string()])
        .unwrap()
        .cert
        .pem();
    let untrusting = register::HttpsConnector
        .connect(&url, &other_ca, &values.token)
        .unwrap();
    assert!(
        Api::<Namespace>::all(untrusting)
            .list(&ListParams::default())
            .await
            .is_err()
    );
    let garbage = register::HttpsConnector.connect(&url, "not a certificate", &values.token);
    assert!(matches!(garbage, Err(RegisterError::Connect { .. })));
}

//! The agent image, as a kubelet would run it: for every Running pod labelled `app=fleet-agent`
//! in a simulated cluster, the real agent process ([`fleet_agent::process::run_agent_process`])
//! runs with that pod's container environment, and stops when the pod stops running or goes
//! away. Without a behaviour profile no pod ever runs; then each agent Deployment or StatefulSet
//! counts as one running pod (its template), so the agent still runs as it was installed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleet_agent::process::{AgentEnv, RenewalRuntime, run_agent_process};
use fleet_agent::register::{RegisterError, UpstreamConnector};
use fleet_api::task::CpuAccount;
use fleet_controller::agentmanagement::connector::kubeconfig_server_and_token;
use fleet_controller::agentmanagement::manifest::AGENT_NAME;
use fleet_controller::agentmanagement::{ConnectError, DownstreamConnector};
use fleet_simulator::{SimCluster, Simulator};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, PodTemplateSpec, Secret};
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Label selector of the agent pods.
pub const AGENT_POD_SELECTOR: &str = "app=fleet-agent";
/// A kubelet follows its agent pods by watch, as a kubelet does; this relist only covers a
/// watch that ended. (Polling every cluster instead made idle clusters cost list requests
/// in proportion to the fleet: 500 lists/s at 100 clusters; relisting every 30 s beside a
/// working watch still cost 333 lists/s, 6 % of the machine, at 10,000.)
const RESYNC: Duration = Duration::from_secs(30);
/// Changes of the agent pods arriving together make one relist.
const CHANGE_BURST: usize = 256;

/// Any change of the agent pods (or, without pods, of the agent workloads) of a cluster.
fn agent_changes(client: &kube::Client, pods_run: bool) -> BoxStream<'static, ()> {
    fn changes<K>(api: Api<K>, config: watcher::Config) -> BoxStream<'static, ()>
    where
        K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    {
        watcher(api, config).default_backoff().map(|_| ()).boxed()
    }
    if pods_run {
        changes(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default().labels(AGENT_POD_SELECTOR),
        )
    } else {
        let by_name = watcher::Config::default().fields(&format!("metadata.name={AGENT_NAME}"));
        futures::stream::select(
            changes(Api::<Deployment>::all(client.clone()), by_name.clone()),
            changes(Api::<StatefulSet>::all(client.clone()), by_name),
        )
        .boxed()
    }
}

/// Agents reach the upstream cluster in-process: any URL naming a simulated cluster
/// (`.../clusters/<name>`), authenticated and authorized with the given bearer token.
#[derive(Clone)]
pub struct SimUpstreamConnector {
    pub sim: Simulator,
}

impl UpstreamConnector for SimUpstreamConnector {
    fn connect(
        &self,
        api_server_url: &str,
        _ca_pem: &str,
        token: &str,
    ) -> Result<kube::Client, RegisterError> {
        let cluster =
            self.sim
                .cluster_for_url(api_server_url)
                .ok_or_else(|| RegisterError::Connect {
                    url: api_server_url.to_string(),
                    message: "no simulated cluster at this URL".to_string(),
                })?;
        Ok(cluster.client_with_token(token))
    }
}

/// The controller reaches imported clusters in-process: the kubeconfig's server names a
/// simulated cluster, its token authenticates.
#[derive(Clone)]
pub struct SimDownstreamConnector {
    pub sim: Simulator,
}

impl DownstreamConnector for SimDownstreamConnector {
    fn connect<'a>(
        &'a self,
        kubeconfig: &'a str,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<kube::Client, ConnectError>> + Send + 'a>,
    > {
        Box::pin(async move {
            let (server, token) = kubeconfig_server_and_token(kubeconfig)?;
            let cluster =
                self.sim
                    .cluster_for_url(&server)
                    .ok_or_else(|| ConnectError::Client {
                        server: server.clone(),
                        message: "no simulated cluster at this URL".to_string(),
                    })?;
            Ok(cluster.client_with_token(&token))
        })
    }
}

struct Process {
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

/// One simulated cluster's kubelet, as far as agent pods go.
pub struct Kubelet {
    suspended: Arc<Mutex<bool>>,
    wake: Arc<tokio::sync::Notify>,
    running: Arc<Mutex<BTreeMap<String, Process>>>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// A pod (or, without pods, a workload's template) the agent runs for.
struct AgentPod {
    /// Changes whenever a new process must start (pod uid; template hash without pods).
    key: String,
    namespace: String,
    name: String,
    uid: String,
    node_name: String,
    template: PodTemplateSpec,
}

fn running_pods(pods: Vec<Pod>) -> Vec<AgentPod> {
    pods.into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter_map(|p| {
            let uid = p.metadata.uid.clone()?;
            Some(AgentPod {
                key: format!("pod/{uid}"),
                namespace: p.metadata.namespace.clone().unwrap_or_default(),
                name: p.metadata.name.clone().unwrap_or_default(),
                node_name: p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default(),
                uid,
                template: PodTemplateSpec {
                    metadata: Some(p.metadata.clone()),
                    spec: p.spec.clone(),
                },
            })
        })
        .collect()
}

fn template_key(kind: &str, namespace: &str, template: &PodTemplateSpec) -> String {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(template)
        .unwrap_or_default()
        .hash(&mut h);
    format!("{kind}/{namespace}/{:016x}", h.finish())
}

async fn workload_pods(client: &kube::Client) -> Result<Vec<AgentPod>, kube::Error> {
    let mut out = Vec::new();
    let by_name = ListParams::default().fields(&format!("metadata.name={AGENT_NAME}"));
    for d in Api::<Deployment>::all(client.clone())
        .list(&by_name)
        .await?
        .items
    {
        let Some(spec) = d.spec.filter(|s| s.replicas != Some(0)) else {
            continue;
        };
        let ns = d.metadata.namespace.unwrap_or_default();
        out.push(AgentPod {
            key: template_key("deployment", &ns, &spec.template),
            name: format!("{AGENT_NAME}-direct"),
            uid: String::new(),
            node_name: String::new(),
            namespace: ns,
            template: spec.template,
        });
    }
    for s in Api::<StatefulSet>::all(client.clone())
        .list(&by_name)
        .await?
        .items
    {
        let Some(spec) = s.spec.filter(|s| s.replicas != Some(0)) else {
            continue;
        };
        let ns = s.metadata.namespace.unwrap_or_default();
        out.push(AgentPod {
            key: template_key("statefulset", &ns, &spec.template),
            name: format!("{AGENT_NAME}-0"),
            uid: String::new(),
            node_name: String::new(),
            namespace: ns,
            template: spec.template,
        });
    }
    Ok(out)
}

/// The environment of the agent container, resolved as the kubelet does (`value`, field
/// references, Secret and ConfigMap keys).
async fn container_env(client: &kube::Client, pod: &AgentPod) -> AgentEnv {
    let mut env = AgentEnv::new();
    let containers: Vec<Container> = pod
        .template
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    let Some(container) = containers
        .iter()
        .find(|c| c.name == AGENT_NAME)
        .or(containers.first())
    else {
        return env;
    };
    for var in container.env.clone().unwrap_or_default() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(from)) => {
                if let Some(field) = &from.field_ref {
                    match field.field_path.as_str() {
                        "metadata.namespace" => Some(pod.namespace.clone()),
                        "metadata.name" => Some(pod.name.clone()),
                        "metadata.uid" => Some(pod.uid.clone()),
                        "spec.nodeName" => Some(pod.node_name.clone()),
                        "spec.serviceAccountName" => pod
                            .template
                            .spec
                            .as_ref()
                            .and_then(|s| s.service_account_name.clone()),
                        _ => None,
                    }
                } else if let Some(key) = &from.secret_key_ref {
                    Api::<Secret>::namespaced(client.clone(), &pod.namespace)
                        .get_opt(&key.name)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|s| s.data)
                        .and_then(|d| d.get(&key.key).cloned())
                        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                } else if let Some(key) = &from.config_map_key_ref {
                    Api::<ConfigMap>::namespaced(client.clone(), &pod.namespace)
                        .get_opt(&key.name)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|c| c.data)
                        .and_then(|d| d.get(&key.key).cloned())
                } else {
                    None
                }
            }
            (None, None) => Some(String::new()),
        };
        if let Some(value) = value {
            env.insert(var.name, value);
        }
    }
    env
}

impl Kubelet {
    /// Starts watching `cluster`'s agent pods (or, with `pods_run == false`, its agent
    /// workloads).
    /// Agent processes run on `runtime` when given (`fleet sim bench` measures their CPU time
    /// apart), else on the caller's, charged to `account` when given; they renew their Leases
    /// on `lease_runtime` when given.
    pub fn start(
        sim: &Simulator,
        cluster: &SimCluster,
        pods_run: bool,
        runtime: Option<tokio::runtime::Handle>,
        account: Option<Arc<CpuAccount>>,
        lease_runtime: Option<tokio::runtime::Handle>,
    ) -> Kubelet {
        let renewals = lease_runtime.map(|handle| {
            let client = super::built_on(Some(&handle), || cluster.client());
            RenewalRuntime::new(handle, client)
        });
        let suspended = Arc::new(Mutex::new(false));
        let wake = Arc::new(tokio::sync::Notify::new());
        let running: Arc<Mutex<BTreeMap<String, Process>>> = Arc::new(Mutex::new(BTreeMap::new()));
        let shutdown = CancellationToken::new();
        let client = cluster.client();
        // The agents' client is built on their runtime, when they have one (see `built_on`).
        let agent_client = match &runtime {
            Some(handle) => super::built_on(Some(handle), || cluster.client()),
            None => client.clone(),
        };
        let connector: Arc<dyn UpstreamConnector> =
            Arc::new(SimUpstreamConnector { sim: sim.clone() });
        let name = cluster.name().to_string();
        let task = tokio::spawn({
            let (suspended, wake, running, shutdown) = (
                suspended.clone(),
                wake.clone(),
                running.clone(),
                shutdown.clone(),
            );
            async move {
                let mut changes = agent_changes(&client, pods_run).ready_chunks(CHANGE_BURST);
                let mut watching = true;
                loop {
                    let pods = if pods_run {
                        Api::<Pod>::all(client.clone())
                            .list(&ListParams::default().labels(AGENT_POD_SELECTOR))
                            .await
                            .map(|l| running_pods(l.items))
                    } else {
                        workload_pods(&client).await
                    };
                    match pods {
                        Ok(pods) => {
                            let desired: Vec<AgentPod> =
                                if *lock(&suspended) { Vec::new() } else { pods };
                            let stale: Vec<Process> = {
                                let mut running = lock(&running);
                                let gone: Vec<String> = running
                                    .keys()
                                    .filter(|k| !desired.iter().any(|p| &p.key == *k))
                                    .cloned()
                                    .collect();
                                gone.iter().filter_map(|k| running.remove(k)).collect()
                            };
                            for process in stale {
                                process.shutdown.cancel();
                                let _ = process.task.await;
                            }
                            for pod in desired {
                                if lock(&running).contains_key(&pod.key) {
                                    continue;
                                }
                                let env = container_env(&client, &pod).await;
                                tracing::info!(cluster = %name, pod = %format!("{}/{}", pod.namespace, pod.name), "starting the agent of a running pod");
                                let token = shutdown.child_token();
                                let task = super::spawn_on(runtime.as_ref(), account.as_ref(), {
                                    let (client, connector, token, cluster, renewals) = (
                                        agent_client.clone(),
                                        connector.clone(),
                                        token.clone(),
                                        name.clone(),
                                        renewals.clone(),
                                    );
                                    async move {
                                        // Each process has its own registry, as each pod
                                        // serves its own /metrics.
                                        let mut registry = Registry::default();
                                        let result = run_agent_process(
                                            client,
                                            env,
                                            connector,
                                            &mut registry,
                                            renewals,
                                            token,
                                        )
                                        .await;
                                        if let Err(error) = result {
                                            tracing::error!(%cluster, %error, "agent process stopped");
                                        }
                                    }
                                });
                                if *lock(&suspended) {
                                    // Suspended while it started: the next round removes it.
                                    token.cancel();
                                }
                                lock(&running).insert(
                                    pod.key,
                                    Process {
                                        shutdown: token,
                                        task,
                                    },
                                );
                            }
                        }
                        Err(error) => {
                            tracing::warn!(cluster = %name, %error, "listing agent pods failed")
                        }
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = wake.notified() => {}
                        change = changes.next(), if watching => watching = change.is_some(),
                        // A watch that fails is retried by the watcher and its errors come
                        // as changes: only one that ended needs the timer.
                        _ = tokio::time::sleep(RESYNC), if !watching => {}
                    }
                }
                let all = std::mem::take(&mut *lock(&running));
                for (_, process) in all {
                    process.shutdown.cancel();
                    let _ = process.task.await;
                }
            }
        });
        Kubelet {
            suspended,
            wake,
            running,
            shutdown,
            task,
        }
    }

    /// Stops the agent processes and keeps them stopped until [`Kubelet::resume`].
    pub async fn suspend(&self) {
        *lock(&self.suspended) = true;
        let all = std::mem::take(&mut *lock(&self.running));
        for (_, process) in all {
            process.shutdown.cancel();
            let _ = process.task.await;
        }
    }

    pub fn resume(&self) {
        *lock(&self.suspended) = false;
        self.wake.notify_one();
    }

    /// Whether an agent process runs.
    pub fn is_running(&self) -> bool {
        !*lock(&self.suspended) && !lock(&self.running).is_empty()
    }

    /// How many agent processes run (more than one only during a rollout, the others waiting
    /// for the Lease).
    pub fn processes(&self) -> usize {
        lock(&self.running).len()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

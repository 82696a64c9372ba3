//! Simulated Kubernetes clusters: an upstream cluster and thousands of downstream clusters in one
//! process, each behaving like kube-apiserver for the real controller, agents, kube-rs and kubectl.
//!
//! # Using it
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use fleet_simulator::{SimConfig, Simulator};
//! let sim = Simulator::new(SimConfig::default());
//! let cluster = sim.add_cluster("sim-1")?;
//! // In-process transport (no sockets): a real kube::Client.
//! let client: kube::Client = cluster.client();
//! // Or serve every cluster over loopback HTTPS (generated CA, bearer tokens) for kubectl and
//! // other tools; the kubeconfig carries the CA and the cluster's admin token.
//! let server = sim.serve("127.0.0.1:0".parse()?).await?;
//! cluster.write_kubeconfig(std::path::Path::new("sim-1.kubeconfig"), &server.cluster_url("sim-1"))?;
//! // More identities (agents): a token per user (or a ServiceAccount token Secret, filled in
//! // by the simulated token controller), a kubeconfig for it, or an in-process client with it;
//! // RBAC decides what each may do.
//! let token = cluster.add_token("system:serviceaccount:cattle-fleet-system:fleet-agent");
//! let agent_kubeconfig = cluster.kubeconfig_for_user(&server.cluster_url("sim-1"), "fleet-agent", &token);
//! let agent: kube::Client = cluster.client_with_token(&token);
//! assert!(sim.cluster_for_url(&cluster.in_process_url()).is_some());
//! println!("{:?}", cluster.stats());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Public API
//! - [`Simulator::new`]`(`[`SimConfig`]`)`; [`Simulator::add_cluster`] / [`Simulator::cluster`] /
//!   [`Simulator::clusters`] / [`Simulator::remove_cluster`]; [`Simulator::serve`] (HTTPS) or
//!   [`Simulator::serve_with`]`(addr, `[`ServeOptions`]` { plain_http })` → [`ServeHandle`]
//!   (`addr()`, `base_url()`, `cluster_url(name)`, `ca_pem()`, `shutdown()`).
//! - [`SimCluster`]: `client()` (in-process `kube::Client`, no authentication), `service()` (the
//!   `tower::Service`), `kubeconfig(server_url)` / `write_kubeconfig(path, server_url)` (admin;
//!   an `https://` URL embeds the CA), `token()` (admin, user [`ADMIN_USER`]),
//!   `add_token(user)` / `add_token_for(`[`UserInfo`]`)` / `revoke_token(token)` /
//!   `user_for_token(token)` / `identity_for_token(token)` /
//!   `kubeconfig_for_user(server_url, user, token)`, `client_with_token(token)` /
//!   `service_with_token(token)` (in-process, authenticated and authorized like HTTPS),
//!   `in_process_url()` (resolved by [`Simulator::cluster_for_url`]), `ca_pem()`, `stats()`
//!   ([`StoreStats`]: objects, writes, creates/updates/deletes, resourceVersion, requests),
//!   `set_fault_plan(FaultPlan)`, `set_profile(Profile)` (or `None` for no simulated controllers),
//!   `restart()` (API-server restart: watch history lost), `install_crds(..)`, and `state()` for
//!   direct, transport-free access ([`cluster::ClusterState`]: `create_object`, `get`, `list`, ...).
//! - Semantics live in: [`store`] (objects, resourceVersion, watch history; what changed
//!   more than 2 s ago is kept as its JSON encoding and decoded by readers, managedFields as JSON
//!   text, so that a simulated cluster costs little memory), [`cluster`] (verbs,
//!   generation, finalizers, garbage collection), [`ssa`] (managedFields, server-side apply),
//!   [`patch`] (JSON/merge/strategic merge patch), [`api`] (URLs, content negotiation, watch),
//!   [`protobuf`] (protobuf request bodies → JSON), [`tls`] (the listener's PKI),
//!   [`auth`] (identities, ServiceAccount tokens: token Secrets, TokenRequest), [`rbac`]
//!   (the RBAC authorizer over Roles/ClusterRoles/bindings, kube-apiserver's 403 wording),
//!   [`review`] (SelfSubjectAccessReview, SubjectAccessReview, LocalSubjectAccessReview,
//!   SelfSubjectRulesReview, SelfSubjectReview),
//!   [`discovery`], [`openapi`], [`table`]; [`behaviour`] (simulated controllers) and [`faults`]
//!   (seeded fault injection) plug in per cluster.
//!
//! # Known gaps
//! - Protobuf is accepted for request bodies of built-in kinds (kubectl's typed commands) but
//!   never sent: responses are JSON, which every client accepts. Zero values of Go pointer fields
//!   are told apart from absent ones by a list of names ([`protobuf::ZERO_IS_MEANINGFUL`]), not
//!   by the Go types. Custom resources are JSON/YAML only, as with kube-apiserver.
//! - Client certificates are not accepted; bearer tokens only (impersonation headers are, with
//!   kube-apiserver's `impersonate` checks; `Impersonate-Extra-*` is ignored). The
//!   plain-HTTP debugging listener serves token-less requests as the admin, and so does
//!   [`SimCluster::client`]. The RBAC escalation check (binding or granting more than one
//!   holds) is not made. Bootstrap ClusterRoles (`cluster-admin`, `admin`, `edit`, `view`,
//!   `system:discovery`, `system:basic-user`, `system:public-info-viewer`) are built in, not
//!   stored objects; aggregated ClusterRoles are resolved when evaluated, not written back.
//! - Objects are stored in the version they were written in (no conversion between versions).
//! - Server-side apply merges lists as upstream marks them: associative lists by their key
//!   (built-ins: one key field, e.g. `containerPort` without `protocol`), sets (`finalizers`,
//!   `Node.spec.podCIDRs`, CRD `x-kubernetes-list-type: set`), everything else atomic, as in
//!   kube-apiserver for unmarked lists.

pub mod api;
pub mod auth;
pub mod behaviour;
pub mod cluster;
mod delta;
pub mod discovery;
pub mod error;
pub mod faults;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod rbac;
pub mod registry;
pub mod review;
pub mod selector;
pub mod services;
pub mod ssa;
pub mod store;
pub mod table;
pub mod tls;
pub mod transport;

use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub use auth::UserInfo;
pub use cluster::ClusterState;
pub use error::ApiError;
pub use store::StoreStats;
pub use tls::ServingCerts;
pub use transport::{InProcessService, ServeHandle, ServeOptions};

use behaviour::{Action, ChangeKind, ClusterBehaviour, ObjectChange, ObjectView, Profile};
use faults::{Decision, FaultInjector, FaultPlan, RequestInfo};

/// Requests by (verb, resource): all of them, and those of service accounts.
type RequestCounts =
    std::collections::HashMap<&'static str, std::collections::HashMap<String, RequestCount>>;

/// Requests of one verb on one resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCount {
    /// Every request.
    pub all: u64,
    /// The requests of service accounts (`system:serviceaccount:…`): on the upstream cluster
    /// of `fleet sim`, the agents' (the simulated controller acts as the cluster admin).
    pub service_accounts: u64,
}

/// Errors of the simulator's own operations (API errors are [`ApiError`]s).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cluster {0:?} already exists in the simulator")]
    ClusterExists(String),
    #[error(
        "cluster name {0:?} is not a valid name (lowercase letters, digits and '-', at most 63)"
    )]
    InvalidClusterName(String),
    #[error("binding the simulator's HTTP listener to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("writing kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("installing CRD {name} in cluster {cluster}: {source}")]
    Crd {
        cluster: String,
        name: String,
        source: Box<ApiError>,
    },
}

/// How a simulator is set up.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seeds every cluster's randomness (names, behaviour jitter, faults).
    pub seed: u64,
    /// Watch events kept per resource (kube-apiserver's watch cache grows up to 100 × 1024);
    /// a watch resuming from an older resourceVersion gets 410 Gone.
    pub watch_history: usize,
    /// The simulated controllers each new cluster runs; `None` for a bare API server.
    pub profile: Option<Profile>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            watch_history: 100 * 1024,
            profile: Some(Profile::default()),
        }
    }
}

/// Many simulated clusters in one process.
#[derive(Clone, Debug)]
pub struct Simulator {
    inner: Arc<SimInner>,
}

#[derive(Debug)]
pub(crate) struct SimInner {
    config: SimConfig,
    /// `config.profile`, shared by every cluster added (one copy, not one per cluster).
    profile: Option<Arc<Profile>>,
    clusters: RwLock<BTreeMap<String, SimCluster>>,
    /// The PKI of the HTTPS listener, made on first use and shared by every cluster's kubeconfig.
    pub(crate) certs: Arc<OnceLock<Arc<ServingCerts>>>,
}

impl SimInner {
    pub(crate) fn cluster_inner(&self, name: &str) -> Option<Arc<ClusterInner>> {
        self.clusters
            .read()
            .ok()?
            .get(name)
            .map(|c| c.inner.clone())
    }

    pub(crate) fn cluster_names(&self) -> Vec<String> {
        self.clusters
            .read()
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default()
    }
}

fn seed_for(seed: u64, name: &str) -> u64 {
    // FNV-1a over the name, mixed with the simulator seed: stable across runs and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Simulator {
    pub fn new(config: SimConfig) -> Self {
        Simulator {
            inner: Arc::new(SimInner {
                profile: config.profile.clone().map(Arc::new),
                config,
                clusters: RwLock::new(BTreeMap::new()),
                certs: Arc::new(OnceLock::new()),
            }),
        }
    }

    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// Adds a cluster. Must be called inside a tokio runtime (the behaviour driver is a task).
    pub fn add_cluster(&self, name: &str) -> Result<SimCluster, SimError> {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            return Err(SimError::InvalidClusterName(name.to_string()));
        }
        let mut clusters = match self.inner.clusters.write() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        if clusters.contains_key(name) {
            return Err(SimError::ClusterExists(name.to_string()));
        }
        let seed = seed_for(self.inner.config.seed, name);
        let cluster = SimCluster::new(
            name,
            seed,
            &self.inner.config,
            self.inner.profile.clone(),
            self.inner.certs.clone(),
        );
        clusters.insert(name.to_string(), cluster.clone());
        Ok(cluster)
    }

    pub fn cluster(&self, name: &str) -> Option<SimCluster> {
        self.inner.clusters.read().ok()?.get(name).cloned()
    }

    pub fn clusters(&self) -> Vec<SimCluster> {
        self.inner
            .clusters
            .read()
            .map(|c| c.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn remove_cluster(&self, name: &str) -> bool {
        self.inner
            .clusters
            .write()
            .map(|mut c| c.remove(name).is_some())
            .unwrap_or(false)
    }

    /// Serves every cluster (present and future) over HTTPS at `/clusters/<name>`, with a CA and
    /// serving certificate generated on first use; every request needs a bearer token of the
    /// cluster it addresses (401 otherwise), as with kube-apiserver.
    pub async fn serve(&self, addr: SocketAddr) -> Result<ServeHandle, SimError> {
        self.serve_with(addr, ServeOptions::default()).await
    }

    /// [`Simulator::serve`] with options, e.g. plain HTTP for debugging.
    pub async fn serve_with(
        &self,
        addr: SocketAddr,
        options: ServeOptions,
    ) -> Result<ServeHandle, SimError> {
        let certs = if options.plain_http {
            None
        } else {
            Some(self.certs(addr)?)
        };
        transport::serve(self.inner.clone(), addr, certs).await
    }

    /// The simulator's CA and serving certificate (generated on first call).
    pub fn certs(&self, addr: SocketAddr) -> Result<Arc<ServingCerts>, SimError> {
        if let Some(c) = self.inner.certs.get() {
            return Ok(c.clone());
        }
        let made = Arc::new(ServingCerts::generate(&[addr.ip()])?);
        // Two racing callers: the first stored wins, so every kubeconfig names the same CA.
        Ok(self.inner.certs.get_or_init(|| made).clone())
    }

    /// The cluster a server URL names: any scheme and host, path `/clusters/<name>` (a trailing
    /// slash allowed), e.g. [`ServeHandle::cluster_url`] or [`SimCluster::in_process_url`].
    pub fn cluster_for_url(&self, url: &str) -> Option<SimCluster> {
        let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
        let path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
        let path = path.split(['?', '#']).next().unwrap_or("");
        let name = path.strip_prefix("/clusters/")?;
        let name = name.strip_suffix('/').unwrap_or(name);
        if name.is_empty() || name.contains('/') {
            return None;
        }
        self.cluster(name)
    }

    /// Sum of the store counters of every cluster.
    pub fn stats(&self) -> StoreStats {
        let mut total = StoreStats::default();
        for c in self.clusters() {
            let s = c.stats();
            total.objects += s.objects;
            total.writes += s.writes;
            total.creates += s.creates;
            total.updates += s.updates;
            total.deletes += s.deletes;
            total.history_len += s.history_len;
            total.resource_version = total.resource_version.max(s.resource_version);
        }
        total
    }
}

/// Pending simulated-controller writes, ordered by due time.
#[derive(Debug, PartialEq)]
struct Due {
    at: Duration,
    seq: u64,
    action: Action,
}

impl Eq for Due {}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Reversed: BinaryHeap pops the earliest first.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

pub(crate) struct ClusterInner {
    pub(crate) state: Arc<ClusterState>,
    pub(crate) token: String,
    /// Static bearer tokens → identity (the admin token included); ServiceAccount tokens are
    /// checked by the cluster's [`auth::TokenIssuer`] instead.
    tokens: RwLock<BTreeMap<String, Arc<UserInfo>>>,
    /// ServiceAccount tokens validated, until an object their validity rests on is written.
    token_cache: auth::TokenCache,
    certs: Arc<OnceLock<Arc<ServingCerts>>>,
    started: Instant,
    behaviour: Mutex<Option<ClusterBehaviour>>,
    faults: Mutex<Option<FaultInjector>>,
    seed: u64,
    queue: Mutex<(BinaryHeap<Due>, u64)>,
    wake: Arc<tokio::sync::Notify>,
    driver: Mutex<Option<tokio::task::AbortHandle>>,
    requests: AtomicU64,
    /// Requests by verb and resource (`bundledeployments.fleet.cattle.io`), for benchmarks.
    request_counts: Mutex<RequestCounts>,
}

impl std::fmt::Debug for ClusterInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterInner")
            .field("name", &self.state.name)
            .finish()
    }
}

impl Drop for ClusterInner {
    fn drop(&mut self) {
        if let Ok(Some(d)) = self.driver.lock().map(|mut d| d.take()) {
            d.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl ClusterInner {
    pub(crate) fn count_request(&self, verb: &'static str, resource: &str, service_account: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut counts = lock(&self.request_counts);
        let by_resource = counts.entry(verb).or_default();
        let count = match by_resource.get_mut(resource) {
            Some(count) => count,
            None => by_resource.entry(resource.to_string()).or_default(),
        };
        count.all += 1;
        count.service_accounts += u64::from(service_account);
    }

    pub(crate) fn decide(&self, verb: &str, resource: &str, is_watch: bool) -> Decision {
        let mut faults = lock(&self.faults);
        let Some(injector) = faults.as_mut() else {
            return Decision::Pass;
        };
        if injector.restart_due(self.started.elapsed()) {
            self.state.restart();
        }
        injector.decide(&RequestInfo {
            verb,
            resource,
            is_watch,
        })
    }

    fn enqueue(&self, actions: Vec<behaviour::ScheduledAction>) {
        if actions.is_empty() {
            return;
        }
        let mut q = lock(&self.queue);
        for a in actions {
            q.1 += 1;
            let seq = q.1;
            q.0.push(Due {
                at: a.at,
                seq,
                action: a.action,
            });
        }
        drop(q);
        self.wake.notify_one();
    }

    /// Carries out one simulated-controller write, as that controller would.
    fn run_action(&self, action: Action) {
        let st = &self.state;
        match action {
            Action::UpdateStatus {
                api_version,
                kind,
                namespace,
                name,
                status,
                expected_generation,
            } => {
                let Some(info) = st.resolve(&api_version, &kind) else {
                    return;
                };
                let target = target(&info, &api_version, namespace, &name, Some("status"));
                let Ok(current) = st.get(&target) else { return };
                if let Some(g) = expected_generation
                    && current
                        .pointer("/metadata/generation")
                        .and_then(Value::as_i64)
                        != Some(g)
                {
                    return;
                }
                if current.get("status") == Some(&status) {
                    return;
                }
                let mut body = (*current).clone();
                body["status"] = status;
                let manager = if kind == "Pod" || kind == "Node" {
                    "kubelet"
                } else {
                    "kube-controller-manager"
                };
                let opts = cluster::WriteOptions {
                    field_manager: Some(manager.to_string()),
                    ..Default::default()
                };
                if let Err(e) = st.update(&target, body, &opts) {
                    tracing::debug!(cluster = %st.name, %kind, %name, error = %e, "simulated status write skipped");
                }
            }
            Action::Create { object } => {
                if let Some((namespace, pod, node)) = behaviour::binding_target(&object) {
                    let Some(info) = st.resolve("v1", "Pod") else {
                        return;
                    };
                    let target = target(&info, "v1", namespace, &pod, None);
                    let patch = json!({"spec": {"nodeName": node}}).to_string();
                    let opts = cluster::WriteOptions {
                        field_manager: Some("kube-scheduler".to_string()),
                        ..Default::default()
                    };
                    let _ = st.patch(&target, cluster::PatchType::Merge, patch.as_bytes(), &opts);
                    return;
                }
                if let Err(e) = st.create_object(object, "kube-controller-manager")
                    && e.code != 409
                {
                    tracing::debug!(cluster = %st.name, error = %e, "simulated create failed");
                }
            }
            Action::Delete {
                api_version,
                kind,
                namespace,
                name,
            } => {
                let Some(info) = st.resolve(&api_version, &kind) else {
                    return;
                };
                let target = target(&info, &api_version, namespace, &name, None);
                let _ = st.delete(&target, &cluster::DeleteOptions::default());
            }
            Action::Patch {
                api_version,
                kind,
                namespace,
                name,
                patch,
                expected_uid,
            } => {
                let Some(info) = st.resolve(&api_version, &kind) else {
                    return;
                };
                let target = target(&info, &api_version, namespace, &name, None);
                let Ok(current) = st.get(&target) else { return };
                if let Some(uid) = expected_uid
                    && current.pointer("/metadata/uid").and_then(Value::as_str) != Some(&uid)
                {
                    return;
                }
                let opts = cluster::WriteOptions {
                    field_manager: Some("kube-controller-manager".to_string()),
                    ..Default::default()
                };
                let body = patch.to_string();
                if let Err(e) = st.patch(&target, cluster::PatchType::Merge, body.as_bytes(), &opts)
                {
                    tracing::debug!(cluster = %st.name, %kind, %name, error = %e, "simulated patch failed");
                }
            }
        }
    }

    /// Runs due actions; returns when the next one is due, if any.
    fn run_due(&self) -> Option<Duration> {
        loop {
            let now = self.started.elapsed();
            let next = {
                let mut q = lock(&self.queue);
                match q.0.peek() {
                    Some(d) if d.at <= now => q.0.pop(),
                    Some(d) => return Some(d.at - now),
                    None => return None,
                }
            };
            if let Some(d) = next {
                self.run_action(d.action);
            }
        }
    }
}

fn target(
    info: &Arc<registry::ResourceInfo>,
    api_version: &str,
    namespace: Option<String>,
    name: &str,
    sub: Option<&str>,
) -> cluster::Target {
    let (_, version) = registry::split_api_version(api_version);
    cluster::Target {
        info: info.clone(),
        version: version.to_string(),
        namespace: if info.namespaced {
            Some(namespace.unwrap_or_else(|| "default".to_string()))
        } else {
            None
        },
        name: Some(name.to_string()),
        subresource: sub.map(str::to_string),
    }
}

/// Feeds committed changes to the cluster's behaviour engine.
struct BehaviourObserver {
    cluster: Weak<ClusterInner>,
}

struct StoreView<'a> {
    cluster: &'a ClusterState,
    state: &'a store::StoreState,
}

impl ObjectView for StoreView<'_> {
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let info = self.cluster.resolve(api_version, kind)?;
        let key = store::ObjKey {
            group_resource: info.group_resource().into(),
            namespace: if info.namespaced {
                namespace.unwrap_or("default").to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        };
        self.state.get(&key).map(|o| (**o).clone())
    }

    fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let Some(info) = self.cluster.resolve(api_version, kind) else {
            return Vec::new();
        };
        let ns = if info.namespaced { namespace } else { None };
        self.state
            .range(&info.group_resource(), ns, None)
            .map(|(_, o)| (**o).clone())
            .collect()
    }
}

impl cluster::ChangeObserver for BehaviourObserver {
    fn on_events(
        &self,
        cluster: &ClusterState,
        state: &store::StoreState,
        events: &[Arc<store::StoredEvent>],
    ) {
        // Most writes (ConfigMaps, Secrets, Fleet's objects, Leases) concern no simulated
        // controller: skip them before taking the behaviour's lock and copying objects.
        if !events
            .iter()
            .any(|e| behaviour::WATCHED_RESOURCES.contains(&&*e.key.group_resource))
        {
            return;
        }
        let Some(inner) = self.cluster.upgrade() else {
            return;
        };
        let mut behaviour = lock(&inner.behaviour);
        let Some(b) = behaviour.as_mut() else { return };
        let view = StoreView { cluster, state };
        let now = inner.started.elapsed();
        let mut actions = Vec::new();
        for e in events {
            if !behaviour::WATCHED_RESOURCES.contains(&&*e.key.group_resource) {
                continue;
            }
            let obj = &e.object();
            let change = ObjectChange {
                kind: match e.event_type {
                    store::EventType::Added => ChangeKind::Added,
                    store::EventType::Modified => ChangeKind::Modified,
                    store::EventType::Deleted => ChangeKind::Deleted,
                },
                api_version: obj
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                kind_name: obj
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                namespace: (!e.key.namespace.is_empty()).then(|| e.key.namespace.to_string()),
                name: e.key.name.to_string(),
                object: (**obj).clone(),
            };
            actions.extend(b.on_change(now, &change, &view));
        }
        drop(behaviour);
        inner.enqueue(actions);
    }
}

/// One simulated cluster. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SimCluster {
    inner: Arc<ClusterInner>,
}

impl SimCluster {
    fn new(
        name: &str,
        seed: u64,
        config: &SimConfig,
        profile: Option<Arc<Profile>>,
        certs: Arc<OnceLock<Arc<ServingCerts>>>,
    ) -> SimCluster {
        let state = ClusterState::new(name, seed, config.watch_history);
        let token = new_token(seed);
        let inner = Arc::new(ClusterInner {
            state,
            tokens: RwLock::new(BTreeMap::from([(
                token.clone(),
                Arc::new(UserInfo::admin()),
            )])),
            token_cache: auth::TokenCache::default(),
            certs,
            token,
            started: Instant::now(),
            behaviour: Mutex::new(None),
            faults: Mutex::new(None),
            seed,
            queue: Mutex::new((BinaryHeap::new(), 0)),
            wake: Arc::new(tokio::sync::Notify::new()),
            driver: Mutex::new(None),
            requests: AtomicU64::new(0),
            request_counts: Mutex::new(RequestCounts::default()),
        });
        inner.state.tokens.set_ca_source(inner.certs.clone());
        inner.state.add_observer(Arc::new(BehaviourObserver {
            cluster: Arc::downgrade(&inner),
        }));
        let cluster = SimCluster { inner };
        if profile.is_some() {
            cluster.set_shared_profile(profile);
        }
        cluster
    }

    pub fn name(&self) -> &str {
        &self.inner.state.name
    }

    /// Transport-free access to the cluster's API semantics.
    pub fn state(&self) -> &Arc<ClusterState> {
        &self.inner.state
    }

    /// The bearer token of this cluster's admin (user [`ADMIN_USER`]) on the HTTPS listener.
    pub fn token(&self) -> &str {
        &self.inner.token
    }

    /// Issues a new bearer token that authenticates as `user` (group `system:authenticated`;
    /// a `system:serviceaccount:<ns>:<sa>` name also gets the ServiceAccount groups). What it may
    /// do is up to RBAC, as for every identity outside `system:masters`.
    pub fn add_token(&self, user: &str) -> String {
        self.add_token_for(UserInfo::user(user))
    }

    /// Issues a new bearer token for an identity with explicit groups (e.g. `system:masters`
    /// for a second admin).
    pub fn add_token_for(&self, user: UserInfo) -> String {
        let token = new_token(self.inner.seed ^ self.inner.requests.load(Ordering::Relaxed));
        let mut tokens = match self.inner.tokens.write() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        tokens.insert(token.clone(), Arc::new(user));
        token
    }

    /// Withdraws a token issued by [`SimCluster::add_token`]; later requests with it get 401.
    /// (ServiceAccount tokens are revoked by deleting their Secret or ServiceAccount.)
    pub fn revoke_token(&self, token: &str) -> bool {
        if token == self.inner.token {
            return false;
        }
        match self.inner.tokens.write() {
            Ok(mut t) => t.remove(token).is_some(),
            Err(p) => p.into_inner().remove(token).is_some(),
        }
    }

    /// Who a bearer token authenticates as on this cluster right now (static tokens and
    /// ServiceAccount tokens alike), if anyone.
    pub fn identity_for_token(&self, token: &str) -> Option<UserInfo> {
        self.inner.authenticate(token).map(|u| (*u).clone())
    }

    /// The user a bearer token authenticates as on this cluster, if any.
    pub fn user_for_token(&self, token: &str) -> Option<String> {
        self.inner.user_for_token(token)
    }

    /// A kubeconfig that authenticates as `user` with `token` (from [`SimCluster::add_token`]).
    pub fn kubeconfig_for_user(&self, server_url: &str, user: &str, token: &str) -> String {
        let name = self.name();
        let mut cluster = json!({"server": server_url});
        if server_url.starts_with("https://")
            && let Some(certs) = self.inner.certs.get()
        {
            use base64::Engine as _;
            cluster["certificate-authority-data"] =
                json!(base64::engine::general_purpose::STANDARD.encode(certs.ca_pem()));
        }
        let doc = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": cluster}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": user, "namespace": "default"}}],
            "current-context": name,
            "preferences": {},
        });
        serde_norway::to_string(&doc).unwrap_or_default()
    }

    /// The in-process transport (unauthenticated admin).
    pub fn service(&self) -> InProcessService {
        InProcessService {
            cluster: self.inner.clone(),
            token: None,
        }
    }

    /// A kube-rs client talking to this cluster in-process (default namespace `default`), as
    /// the unauthenticated admin (`system:masters`). Needs a tokio runtime.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.service(), "default")
    }

    /// The in-process transport for requests carrying `Authorization: Bearer <token>`:
    /// authenticated (401 once the token is revoked) and authorized by RBAC exactly as over
    /// HTTPS.
    pub fn service_with_token(&self, token: &str) -> InProcessService {
        InProcessService {
            cluster: self.inner.clone(),
            token: Some(Arc::from(token)),
        }
    }

    /// A kube-rs client talking to this cluster in-process with a bearer token (default
    /// namespace `default`); see [`SimCluster::service_with_token`]. Needs a tokio runtime.
    pub fn client_with_token(&self, token: &str) -> kube::Client {
        kube::Client::new(self.service_with_token(token), "default")
    }

    /// The CA (PEM) every simulated cluster's HTTPS listener presents and token Secrets carry as
    /// `ca.crt`; made now if no listener made it yet.
    pub fn ca_pem(&self) -> String {
        self.inner.state.tokens.ca_pem()
    }

    /// `https://fleet-sim.invalid/clusters/<name>`: the URL naming this cluster when no listener
    /// runs; [`Simulator::cluster_for_url`] resolves it (and every listener's cluster URL).
    pub fn in_process_url(&self) -> String {
        format!("{IN_PROCESS_BASE_URL}/clusters/{}", self.name())
    }

    /// Requests served so far by verb (`get`, `list`, `watch`, `create`, `update`, `patch`,
    /// `delete`, `deletecollection`) and resource (`bundledeployments.fleet.cattle.io`, `pods`, or
    /// the path of a non-resource request).
    pub fn request_counts(&self) -> std::collections::BTreeMap<(String, String), u64> {
        self.request_counts_by_requester()
            .into_iter()
            .map(|(key, count)| (key, count.all))
            .collect()
    }

    /// [`SimCluster::request_counts`], with how many of them service accounts made.
    pub fn request_counts_by_requester(
        &self,
    ) -> std::collections::BTreeMap<(String, String), RequestCount> {
        lock(&self.inner.request_counts)
            .iter()
            .flat_map(|(verb, by_resource)| {
                by_resource
                    .iter()
                    .map(move |(resource, n)| ((verb.to_string(), resource.clone()), *n))
            })
            .collect()
    }

    /// How much this cluster stores: objects, their JSON size, and the largest one.
    pub fn storage_sizes(&self) -> store::StorageSizes {
        self.inner.state.lock().storage_sizes()
    }

    pub fn stats(&self) -> StoreStats {
        let mut s = self.inner.state.lock().stats();
        s.requests = self.inner.requests.load(Ordering::Relaxed);
        s
    }

    /// Replaces the fault plan (seeded from the cluster's seed). `FaultPlan::none()` heals.
    pub fn set_fault_plan(&self, plan: FaultPlan) {
        let mut f = lock(&self.inner.faults);
        match f.as_mut() {
            Some(injector) => injector.set_plan(plan),
            None => *f = Some(FaultInjector::new(plan, self.inner.seed)),
        }
    }

    /// Sets (or with `None` removes) the simulated controllers. New node objects of the profile
    /// are created; pending actions of the previous profile are dropped.
    pub fn set_profile(&self, profile: Option<Profile>) {
        self.set_shared_profile(profile.map(Arc::new));
    }

    /// [`SimCluster::set_profile`] with a profile other clusters run too.
    pub fn set_shared_profile(&self, profile: Option<Arc<Profile>>) {
        lock(&self.inner.queue).0.clear();
        let Some(profile) = profile else {
            *lock(&self.inner.behaviour) = None;
            return;
        };
        let b = ClusterBehaviour::shared(profile, self.inner.seed);
        let initial = b.initial_objects();
        *lock(&self.inner.behaviour) = Some(b);
        for obj in initial {
            let _ = self.inner.state.create_object(obj, "kubelet");
        }
        self.ensure_driver();
    }

    fn ensure_driver(&self) {
        let mut driver = lock(&self.inner.driver);
        if driver.is_some() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(&self.inner);
        let notify = self.inner.wake.clone();
        let task = handle.spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { return };
                let next = inner.run_due();
                let wake = notify.notified();
                tokio::pin!(wake);
                wake.as_mut().enable();
                // A change may have queued actions while we ran; re-check before sleeping.
                let next = if lock(&inner.queue).0.peek().is_some() {
                    Some(inner.run_due().unwrap_or(Duration::ZERO))
                } else {
                    next
                };
                drop(inner);
                match next {
                    Some(d) => {
                        tokio::select! {
                            _ = tokio::time::sleep(d) => {}
                            _ = &mut wake => {}
                        }
                    }
                    None => wake.await,
                }
            }
        });
        *driver = Some(task.abort_handle());
    }

    /// Simulates an API-server restart: watch history is lost, objects and versions are kept.
    pub fn restart(&self) {
        self.inner.state.restart();
    }

    /// Installs CRDs (e.g. `fleet_api::crds::all()`), replacing existing ones of the same name.
    pub fn install_crds<T: serde::Serialize>(&self, crds: &[T]) -> Result<(), SimError> {
        for crd in crds {
            let obj = serde_json::to_value(crd).map_err(|e| SimError::Crd {
                cluster: self.name().to_string(),
                name: String::new(),
                source: Box::new(ApiError::bad_request(e.to_string())),
            })?;
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let mut obj = obj;
            obj["apiVersion"] = json!("apiextensions.k8s.io/v1");
            obj["kind"] = json!("CustomResourceDefinition");
            let info = self
                .inner
                .state
                .resolve("apiextensions.k8s.io/v1", "CustomResourceDefinition");
            let result = match (info, self.inner.state.create_object(obj.clone(), "fleet")) {
                (_, Ok(_)) => Ok(()),
                (Some(info), Err(e)) if e.code == 409 => {
                    let t = target(&info, "apiextensions.k8s.io/v1", None, &name, None);
                    let body = serde_json::to_vec(&obj).unwrap_or_default();
                    let opts = cluster::WriteOptions {
                        field_manager: Some("fleet".to_string()),
                        force: true,
                        ..Default::default()
                    };
                    self.inner
                        .state
                        .patch(&t, cluster::PatchType::Apply, &body, &opts)
                        .map(|_| ())
                }
                (_, Err(e)) => Err(e),
            };
            result.map_err(|source| SimError::Crd {
                cluster: self.name().to_string(),
                name,
                source: Box::new(source),
            })?;
        }
        Ok(())
    }

    /// A kubeconfig (YAML) for this cluster's admin at `server_url` (see
    /// [`ServeHandle::cluster_url`]); an `https://` URL carries the simulator's CA.
    pub fn kubeconfig(&self, server_url: &str) -> String {
        self.kubeconfig_for_user(server_url, &format!("{}-admin", self.name()), self.token())
    }

    pub fn write_kubeconfig(&self, path: &Path, server_url: &str) -> Result<(), SimError> {
        let err = |source| SimError::Kubeconfig {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        std::fs::write(path, self.kubeconfig(server_url)).map_err(err)
    }
}

/// The user name the admin token of every cluster authenticates as.
pub const ADMIN_USER: &str = "admin";

/// Scheme and host of [`SimCluster::in_process_url`].
pub const IN_PROCESS_BASE_URL: &str = "https://fleet-sim.invalid";

fn new_token(seed: u64) -> String {
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(
        seed ^ u64::from(std::process::id()) ^ now_nanos(),
    );
    let bytes: [u8; 24] = rand::Rng::random(&mut rng);
    hex::encode(bytes)
}

impl ClusterInner {
    pub(crate) fn user_for_token(&self, token: &str) -> Option<String> {
        self.authenticate(token).map(|u| u.name.clone())
    }

    /// Who a bearer token is: a static token, else a ServiceAccount token still valid in the
    /// store.
    pub(crate) fn authenticate(&self, token: &str) -> Option<Arc<UserInfo>> {
        {
            let tokens = match self.tokens.read() {
                Ok(t) => t,
                Err(p) => p.into_inner(),
            };
            if let Some(u) = tokens.get(token) {
                return Some(u.clone());
            }
        }
        if token.bytes().filter(|b| *b == b'.').count() != 2 {
            return None;
        }
        if let Some(cached) = self.token_cache.get(token) {
            let st = self.state.lock();
            if let Some(user) = cached.user_if_holds(&st) {
                return Some(user);
            }
        }
        // The signature is checked before the store lock is taken; only the lookups of the
        // ServiceAccount (and bound Secret or Pod) need it.
        let claims = self.state.tokens.verified_claims(token)?;
        let validated = {
            let st = self.state.lock();
            self.state.tokens.validate(&st, &claims, token)?
        };
        Some(self.token_cache.put(token, validated))
    }
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn profile_of(cluster: &SimCluster) -> Option<Arc<Profile>> {
        lock(&cluster.inner.behaviour)
            .as_ref()
            .map(|b| b.shared_profile().clone())
    }

    #[tokio::test]
    async fn the_clusters_of_a_simulator_share_one_copy_of_its_profile() {
        let sim = Simulator::new(SimConfig::default());
        let a = sim.add_cluster("a").unwrap();
        let b = sim.add_cluster("b").unwrap();
        let (pa, pb) = (profile_of(&a).unwrap(), profile_of(&b).unwrap());
        assert!(Arc::ptr_eq(&pa, &pb));
        // Each still runs it on its own: the default profile's node is in both.
        for c in [&a, &b] {
            assert_eq!(c.state().lock().count("nodes"), pa.node_names().len());
        }
        // A profile set on one cluster is that cluster's alone.
        a.set_profile(Some(Profile::realistic()));
        assert!(!Arc::ptr_eq(&profile_of(&a).unwrap(), &pb));
        assert!(Arc::ptr_eq(&profile_of(&b).unwrap(), &pb));
    }
}

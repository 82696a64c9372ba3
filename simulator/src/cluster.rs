//! One simulated cluster's API semantics over its store: the verbs kube-apiserver serves, with
//! validation, generation, finalizers, garbage collection and field ownership.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult, qualified};
use crate::patch::{self, PatchError, Shape};
use crate::registry::{Registry, ResourceInfo};
use crate::selector::{FieldSelector, LabelSelector};
use crate::ssa::{self, Scope, Writer};
use crate::store::{EventType, Obj, ObjKey, StoreState, StoredEvent, StoredObject};

/// etcd's default request limit: larger objects are refused.
pub const MAX_OBJECT_BYTES: usize = 1536 * 1024;

const CRD_RESOURCE: &str = "customresourcedefinitions.apiextensions.k8s.io";
const FOREGROUND: &str = "foregroundDeletion";
const ORPHAN: &str = "orphan";

/// The resource a request addresses: what, at which version, where.
#[derive(Debug, Clone)]
pub struct Target {
    pub info: Arc<ResourceInfo>,
    pub version: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// `status` for the status subresource.
    pub subresource: Option<String>,
}

impl Target {
    fn key(&self, name: &str) -> ObjKey {
        ObjKey {
            group_resource: self.info.group_resource().into(),
            namespace: self.namespace.clone().unwrap_or_default(),
            name: name.to_string(),
        }
    }

    fn api_version(&self) -> String {
        self.info.api_version(&self.version)
    }

    fn is_status(&self) -> bool {
        self.subresource.as_deref() == Some("status")
    }

    fn name(&self) -> ApiResult<&str> {
        self.name
            .as_deref()
            .ok_or_else(|| ApiError::method_not_allowed("a resource name is required"))
    }

    fn not_found(&self, name: &str) -> ApiError {
        ApiError::not_found(&self.info.group, &self.info.plural, name)
    }
}

/// Options of write requests.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_manager: Option<String>,
    pub force: bool,
    /// `fieldValidation=Strict`: unknown fields are errors instead of being dropped.
    pub strict: bool,
}

/// Options of delete requests.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    /// `Background` (default), `Foreground` or `Orphan`.
    pub propagation_policy: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
}

/// List parameters.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub label_selector: LabelSelector,
    pub field_selector: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ListResult {
    pub items: Vec<Obj>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// The patch formats kube-apiserver accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let ct = ct.split(';').next().unwrap_or("").trim();
        Some(match ct {
            "application/json-patch+json" => PatchType::Json,
            "application/merge-patch+json" => PatchType::Merge,
            "application/strategic-merge-patch+json" => PatchType::Strategic,
            "application/apply-patch+yaml" | "application/apply-patch+json" => PatchType::Apply,
            _ => return None,
        })
    }
}

/// Observes committed changes (the behaviour engine, tests). Called with the store locked.
pub trait ChangeObserver: Send + Sync {
    fn on_events(&self, cluster: &ClusterState, state: &StoreState, events: &[Arc<StoredEvent>]);
}

/// What a watch stream watches: a group-resource and a namespace ("" for all namespaces).
type WatchKey = (Arc<str>, String);

/// The API state of one simulated cluster.
pub struct ClusterState {
    pub name: String,
    store: Mutex<StoreState>,
    registry: RwLock<Arc<Registry>>,
    notify: tokio::sync::watch::Sender<u64>,
    /// Wakes watch streams by what they watch (group-resource, namespace or "" for all), so
    /// a write wakes only the watches it concerns, not every watch on the cluster.
    watch_hub: Mutex<HashMap<WatchKey, tokio::sync::watch::Sender<u64>>>,
    rng: Mutex<ChaCha8Rng>,
    observers: RwLock<Vec<Arc<dyn ChangeObserver>>>,
    /// Bumped by a simulated restart: open watch streams end, like dropped connections.
    epoch: std::sync::atomic::AtomicU64,
    /// Signs and checks this cluster's ServiceAccount tokens.
    pub tokens: crate::auth::TokenIssuer,
    /// Role/binding index the authorizer reads (kept current by a change observer).
    pub rbac: Arc<crate::rbac::RbacIndex>,
}

impl std::fmt::Debug for ClusterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterState")
            .field("name", &self.name)
            .finish()
    }
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Makes `new` the `old` object with `new`'s status (none if it has none): all a write to the
/// status subresource may change. What already equals the old object (everything, after a
/// patch of the status) is compared, not cloned again.
fn keep_all_but_status(new: &mut Value, old: &Value) {
    let (Value::Object(n), Value::Object(o)) = (&mut *new, old) else {
        let status = new.get("status").cloned();
        *new = old.clone();
        if let Value::Object(m) = new {
            match status {
                Some(s) => m.insert("status".to_string(), s),
                None => m.remove("status"),
            };
        }
        return;
    };
    n.retain(|k, _| k == "status" || o.contains_key(k));
    for (k, ov) in o {
        if k == "status" {
            continue;
        }
        match n.get_mut(k) {
            Some(nv) => {
                if nv != ov {
                    *nv = ov.clone();
                }
            }
            None => {
                n.insert(k.clone(), ov.clone());
            }
        }
    }
}

fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    if let Value::Object(root) = obj {
        let m = root.entry("metadata").or_insert_with(|| json!({}));
        if !m.is_object() {
            *m = json!({});
        }
        if let Value::Object(m) = m {
            return m;
        }
    }
    unreachable!("metadata was just made an object")
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj).and_then(|m| m.get(field)).and_then(Value::as_str)
}

fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn set_finalizers(obj: &mut Value, list: &[String]) {
    let m = meta_mut(obj);
    if list.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".to_string(), json!(list));
    }
}

/// RFC 1123 subdomain (most names) or label (namespaces, services).
fn name_error(name: &str, label_only: bool) -> Option<String> {
    let max = if label_only { 63 } else { 253 };
    let ok_chars = name.chars().all(|c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (c == '.' && !label_only)
    });
    let ends = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !name.is_empty() && name.len() <= max && ok_chars && ends {
        return None;
    }
    Some(if label_only {
        format!(
            "Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        )
    } else {
        format!(
            "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    })
}

/// Kind-specific validation (the subset of kube-apiserver's that Fleet bundles run into).
fn validate(info: &ResourceInfo, obj: &Value) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    let name = meta_str(obj, "name").unwrap_or("");
    let label_only = matches!(info.plural.as_str(), "namespaces" | "services");
    if info.plural != "customresourcedefinitions"
        && let Some(e) = name_error(name, label_only)
    {
        errs.push(("metadata.name".to_string(), e));
    }
    for field in ["labels", "annotations"] {
        if let Some(map) = meta(obj).and_then(|m| m.get(field)) {
            match map.as_object() {
                Some(map) => {
                    for (k, v) in map {
                        if !v.is_string() {
                            errs.push((
                                format!("metadata.{field}"),
                                format!("Invalid value: {v}: must be a string"),
                            ));
                        } else if field == "labels"
                            && !crate::selector::valid_label_value(v.as_str().unwrap_or(""))
                        {
                            errs.push(("metadata.labels".to_string(), format!("Invalid value: {v}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")));
                        }
                        let _ = k;
                    }
                }
                None => errs.push((
                    format!("metadata.{field}"),
                    "Invalid value: must be a map of strings".to_string(),
                )),
            }
        }
    }
    let workload = matches!(
        info.kind.as_str(),
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet"
    );
    if info.builtin && (workload || info.kind == "Job" || info.kind == "Pod") {
        let pod_spec = if info.kind == "Pod" {
            obj.pointer("/spec")
        } else {
            obj.pointer("/spec/template/spec")
        };
        let prefix = if info.kind == "Pod" {
            "spec"
        } else {
            "spec.template.spec"
        };
        let containers = pod_spec
            .and_then(|s| s.get("containers"))
            .and_then(Value::as_array);
        match containers {
            Some(list) if !list.is_empty() => {
                for (i, c) in list.iter().enumerate() {
                    if c.get("name")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                    {
                        errs.push((
                            format!("{prefix}.containers[{i}].name"),
                            "Required value".to_string(),
                        ));
                    }
                    if c.get("image")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                    {
                        errs.push((
                            format!("{prefix}.containers[{i}].image"),
                            "Required value".to_string(),
                        ));
                    }
                }
            }
            _ => errs.push((format!("{prefix}.containers"), "Required value".to_string())),
        }
        if workload {
            match obj.pointer("/spec/selector") {
                None => errs.push(("spec.selector".to_string(), "Required value".to_string())),
                Some(sel) => {
                    let labels = obj.pointer("/spec/template/metadata/labels");
                    let matches = sel
                        .get("matchLabels")
                        .and_then(Value::as_object)
                        .is_none_or(|m| {
                            m.iter()
                                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
                        });
                    if !matches {
                        errs.push((
                            "spec.template.metadata.labels".to_string(),
                            format!(
                                "Invalid value: {}: `selector` does not match template `labels`",
                                labels.cloned().unwrap_or(json!({}))
                            ),
                        ));
                    }
                }
            }
        }
    }
    if info.builtin
        && info.kind == "Secret"
        && obj.get("type").and_then(Value::as_str) == Some(crate::auth::SERVICE_ACCOUNT_TOKEN_TYPE)
        && obj
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(crate::auth::SERVICE_ACCOUNT_NAME_ANNOTATION))
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        errs.push((
            format!(
                "metadata.annotations[{}]",
                crate::auth::SERVICE_ACCOUNT_NAME_ANNOTATION
            ),
            "Required value".to_string(),
        ));
    }
    if info.kind == "CustomResourceDefinition" {
        match crate::registry::resource_from_crd(obj) {
            None => errs.push(("spec".to_string(), "Invalid value: group, names.plural, names.kind and at least one served version are required".to_string())),
            Some(r) => {
                let want = format!("{}.{}", r.plural, r.group);
                if name != want {
                    errs.push(("metadata.name".to_string(), format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group")));
                }
            }
        }
    }
    errs
}

/// Drops fields a CRD schema does not declare and fills in declared defaults, as kube-apiserver
/// does for structural schemas, in the top-level fields a write covers (`scope`: a status write
/// changes only status, a write of the main resource keeps the stored status, and what a write
/// keeps was pruned when it was written). Adds the paths of dropped fields to `dropped`.
fn prune_and_default(v: &mut Value, schema: &Value, scope: Scope, dropped: &mut Vec<String>) {
    prune_node(v, schema, &mut String::new(), Some(scope), dropped);
}

/// [`prune_and_default`] of one node at `path` (a buffer each level extends and restores, so
/// no path is built unless a field is dropped); `root` is the scope at the top level.
fn prune_node(
    v: &mut Value,
    schema: &Value,
    path: &mut String,
    root: Option<Scope>,
    dropped: &mut Vec<String>,
) {
    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    let embedded = schema
        .get("x-kubernetes-embedded-resource")
        .and_then(Value::as_bool)
        == Some(true);
    match v {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            if let Some(props) = props {
                for (k, s) in props {
                    if !map.contains_key(k)
                        && let Some(d) = s.get("default")
                    {
                        map.insert(k.clone(), d.clone());
                    }
                }
            }
            let keeps_unknown = preserve
                || schema.get("additionalProperties") == Some(&Value::Bool(true))
                || (props.is_none() && additional.is_none() && schema.get("type").is_none());
            let mut unknown = Vec::new();
            for (k, child) in map.iter_mut() {
                if (root.is_some() || embedded)
                    && matches!(k.as_str(), "apiVersion" | "kind" | "metadata")
                {
                    continue;
                }
                match root {
                    Some(Scope::StatusOnly) if k != "status" => continue,
                    Some(Scope::WithoutStatus) if k == "status" => continue,
                    _ => {}
                }
                let len = path.len();
                if len > 0 {
                    path.push('.');
                }
                path.push_str(k);
                match props.and_then(|p| p.get(k)).or(additional) {
                    Some(s) => prune_node(child, s, path, None, dropped),
                    None if keeps_unknown => {}
                    None => {
                        unknown.push(k.clone());
                        dropped.push(path.clone());
                    }
                }
                path.truncate(len);
            }
            for k in unknown {
                map.remove(&k);
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = path.len();
                    path.push('[');
                    path.push_str(&i.to_string());
                    path.push(']');
                    prune_node(item, s, path, None, dropped);
                    path.truncate(len);
                }
            }
        }
        _ => {}
    }
}

/// Whether two objects differ in the part whose change bumps `metadata.generation`: anything
/// but metadata, apiVersion and kind (and status, with a status subresource). Compared in
/// place, without copying either object.
fn spec_differs(old: &Value, new: &Value, status_subresource: bool) -> bool {
    let skip = |k: &str| {
        matches!(k, "metadata" | "apiVersion" | "kind") || (status_subresource && k == "status")
    };
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let differs_one_way = |x: &Map<String, Value>, y: &Map<String, Value>| {
                x.iter()
                    .any(|(k, v)| !skip(k) && y.get(k).is_none_or(|other| other != v))
            };
            differs_one_way(a, b) || differs_one_way(b, a)
        }
        _ => old != new,
    }
}

/// Whether two objects are the same but for `metadata.resourceVersion` and
/// `metadata.managedFields` (a no-op write). Compared in place, without copying either.
fn same_except_volatile(old: &Value, new: &Value) -> bool {
    let (Value::Object(a), Value::Object(b)) = (old, new) else {
        return old == new;
    };
    if a.len() != b.len() {
        return false;
    }
    a.iter().all(|(k, v)| match (k.as_str(), b.get(k)) {
        (_, None) => false,
        ("metadata", Some(other)) => match (v, other) {
            (Value::Object(ma), Value::Object(mb)) => {
                let volatile = |k: &str| matches!(k, "resourceVersion" | "managedFields");
                let same_one_way = |x: &Map<String, Value>, y: &Map<String, Value>| {
                    x.iter()
                        .all(|(k, v)| volatile(k) || y.get(k).is_some_and(|other| other == v))
                };
                same_one_way(ma, mb) && same_one_way(mb, ma)
            }
            _ => v == other,
        },
        (_, Some(other)) => v == other,
    })
}

/// Whether a patch body may set `metadata.managedFields` (a conservative look at its bytes).
fn patch_mentions_managed_fields(patch_type: PatchType, body: &[u8]) -> bool {
    patch_type == PatchType::Apply || body.windows(13).any(|w| w == b"managedFields")
}

/// Default field manager from the User-Agent, as kube-apiserver derives it.
pub fn manager_from_user_agent(ua: &str) -> String {
    let first = ua.split('/').next().unwrap_or("").trim();
    if first.is_empty() {
        "unknown".to_string()
    } else {
        first.chars().take(128).collect()
    }
}

/// The key ServiceAccount tokens of one cluster are signed with: differs per cluster and per
/// process, so a token never authenticates anywhere else.
fn signing_key(seed: u64, name: &str) -> [u8; 32] {
    use sha2::Digest as _;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut h = sha2::Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(name.as_bytes());
    h.update(nanos.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    let random: [u8; 32] = rand::random();
    h.update(random);
    h.finalize().into()
}

/// The object in the apiVersion a request asked for (versions share one schema here).
pub fn at_version(obj: &Obj, api_version: &str) -> Obj {
    if obj.get("apiVersion").and_then(Value::as_str) == Some(api_version) {
        return obj.clone();
    }
    Arc::new(obj.with_api_version(api_version))
}

impl ClusterState {
    pub fn new(name: &str, seed: u64, history_limit: usize) -> Arc<ClusterState> {
        let (notify, _) = tokio::sync::watch::channel(1);
        let rbac = Arc::new(crate::rbac::RbacIndex::default());
        let cluster = Arc::new(ClusterState {
            name: name.to_string(),
            store: Mutex::new(StoreState::new(history_limit)),
            registry: RwLock::new(Registry::builtin()),
            notify,
            watch_hub: Mutex::new(HashMap::new()),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
            observers: RwLock::new(vec![rbac.clone() as Arc<dyn ChangeObserver>]),
            epoch: std::sync::atomic::AtomicU64::new(0),
            tokens: crate::auth::TokenIssuer::new(signing_key(seed, name)),
            rbac,
        });
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let _ = cluster.create_object(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                "kube-apiserver",
            );
        }
        cluster
    }

    pub fn lock(&self) -> MutexGuard<'_, StoreState> {
        match self.store.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn registry(&self) -> Arc<Registry> {
        match self.registry.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Changes on every simulated restart.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Changes on every committed write.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.notify.subscribe()
    }

    /// Changes when an object of `group_resource` changes (in `namespace`, or in any
    /// namespace for `None`), and on a simulated restart.
    pub fn subscribe_to(
        &self,
        group_resource: &str,
        namespace: Option<&str>,
    ) -> tokio::sync::watch::Receiver<u64> {
        let key = (
            Arc::<str>::from(group_resource),
            namespace.unwrap_or("").to_string(),
        );
        let mut hub = match self.watch_hub.lock() {
            Ok(h) => h,
            Err(p) => p.into_inner(),
        };
        hub.entry(key)
            .or_insert_with(|| tokio::sync::watch::channel(0).0)
            .subscribe()
    }

    /// Wakes the watches of what `events` changed (every watch when `events` is `None`), and
    /// forgets channels nobody listens to any more.
    fn wake_watches(&self, events: Option<&[Arc<StoredEvent>]>, rv: u64) {
        let mut hub = match self.watch_hub.lock() {
            Ok(h) => h,
            Err(p) => p.into_inner(),
        };
        if hub.is_empty() {
            return;
        }
        let Some(events) = events else {
            for tx in hub.values() {
                tx.send_replace(rv);
            }
            return;
        };
        let mut woken: HashSet<WatchKey> = HashSet::new();
        for e in events {
            let all = (e.key.group_resource.clone(), String::new());
            let own = (e.key.group_resource.clone(), e.key.namespace.to_string());
            for key in [all, own] {
                if woken.contains(&key) {
                    continue;
                }
                match hub.get(&key) {
                    Some(tx) if tx.receiver_count() == 0 => {
                        hub.remove(&key);
                    }
                    Some(tx) => {
                        tx.send_replace(rv);
                    }
                    None => {}
                }
                woken.insert(key);
            }
        }
    }

    pub fn add_observer(&self, observer: Arc<dyn ChangeObserver>) {
        if let Ok(mut o) = self.observers.write() {
            o.push(observer);
        }
    }

    /// Simulates an API server restart (watch history lost; watchers get 410 on resume).
    pub fn restart(&self) {
        let mut st = self.lock();
        st.restart();
        self.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let rv = st.resource_version();
        drop(st);
        self.wake_watches(None, rv);
        self.notify.send_replace(rv);
    }

    fn random_suffix(&self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut rng = match self.rng.lock() {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        };
        (0..5)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    }

    fn new_uid(&self) -> String {
        let mut rng = match self.rng.lock() {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        };
        let bytes: [u8; 16] = rng.random();
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    /// kube-controller-manager's token controller, run right after the writes of a request:
    /// token Secrets get their token, a new ServiceAccount fills the Secrets waiting for it, a
    /// deleted one takes its token Secrets along.
    fn token_controller(&self, st: &mut StoreState) {
        let events: Vec<Arc<StoredEvent>> = st.pending().to_vec();
        let Some(secrets) = self.registry().by_group_resource("secrets").cloned() else {
            return;
        };
        let mut fill = BTreeSet::new();
        let mut delete = BTreeSet::new();
        for e in &events {
            match (&*e.key.group_resource, e.event_type) {
                ("secrets", EventType::Added | EventType::Modified) => {
                    fill.insert(e.key.to_obj_key());
                }
                ("serviceaccounts", EventType::Added) => {
                    for ((ns, name), obj) in st.range("secrets", Some(&e.key.namespace), None) {
                        if obj.pointer("/type").and_then(Value::as_str)
                            == Some(crate::auth::SERVICE_ACCOUNT_TOKEN_TYPE)
                        {
                            fill.insert(ObjKey {
                                group_resource: "secrets".into(),
                                namespace: ns.clone(),
                                name: name.clone(),
                            });
                        }
                    }
                }
                ("serviceaccounts", EventType::Deleted) => {
                    let object = e.object();
                    let uid = meta_str(&object, "uid").unwrap_or("");
                    for ((ns, name), obj) in st.range("secrets", Some(&e.key.namespace), None) {
                        let ann = |k: &str| {
                            obj.pointer("/metadata/annotations")
                                .and_then(|a| a.get(k))
                                .and_then(Value::as_str)
                        };
                        if obj.pointer("/type").and_then(Value::as_str)
                            == Some(crate::auth::SERVICE_ACCOUNT_TOKEN_TYPE)
                            && ann(crate::auth::SERVICE_ACCOUNT_NAME_ANNOTATION)
                                == Some(&*e.key.name)
                            && ann(crate::auth::SERVICE_ACCOUNT_UID_ANNOTATION)
                                .is_none_or(|u| u.is_empty() || u == uid)
                        {
                            delete.insert(ObjKey {
                                group_resource: "secrets".into(),
                                namespace: ns.clone(),
                                name: name.clone(),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        for key in delete {
            fill.remove(&key);
            self.delete_key(st, &key, "Background");
        }
        for key in fill {
            let Some(current) = st.get(&key) else {
                continue;
            };
            let Some(filled) = crate::auth::filled_token_secret(&self.tokens, st, &current) else {
                continue;
            };
            let t = Target {
                info: secrets.clone(),
                version: "v1".to_string(),
                namespace: Some(key.namespace.clone()),
                name: Some(key.name.clone()),
                subresource: None,
            };
            let opts = WriteOptions {
                field_manager: Some("kube-controller-manager".to_string()),
                ..Default::default()
            };
            if let Err(e) = self.commit_write(
                st,
                &t,
                &key,
                Some(current),
                filled,
                Ownership::Record,
                &opts,
            ) {
                tracing::warn!(cluster = %self.name, secret = %key.name, error = %e, "filling a ServiceAccount token Secret");
            }
        }
    }

    /// Runs after every request that may have written: CRD changes, observers, watch wake-up.
    fn finish(&self, mut st: MutexGuard<'_, StoreState>) {
        if st
            .pending()
            .iter()
            .any(|e| matches!(&*e.key.group_resource, "secrets" | "serviceaccounts"))
        {
            self.token_controller(&mut st);
        }
        let events = st.take_pending();
        if events.is_empty() {
            return;
        }
        if events
            .iter()
            .any(|e| &*e.key.group_resource == CRD_RESOURCE)
        {
            let crds = st.all_of(CRD_RESOURCE);
            let reg = Registry::with_crds(crds.iter().map(|c| c.value()));
            if let Ok(mut r) = self.registry.write() {
                *r = Arc::new(reg);
            }
        }
        let observers = match self.observers.read() {
            Ok(o) => o.clone(),
            Err(p) => p.into_inner().clone(),
        };
        for o in &observers {
            o.on_events(self, &st, &events);
        }
        let rv = st.resource_version();
        drop(st);
        self.wake_watches(Some(&events), rv);
        self.notify.send_replace(rv);
    }

    /// Resolves `apiVersion`/`kind` to a served resource.
    pub fn resolve(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        self.registry().by_kind(api_version, kind).cloned()
    }

    /// Creates an object given as JSON (used for seeding and by the behaviour engine).
    pub fn create_object(&self, obj: Value, manager: &str) -> ApiResult<Value> {
        let (target, _) = self.target_for(&obj)?;
        let opts = WriteOptions {
            field_manager: Some(manager.to_string()),
            ..Default::default()
        };
        self.create(&target, obj, &opts)
    }

    fn target_for(&self, obj: &Value) -> ApiResult<(Target, String)> {
        let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let info = self
            .resolve(api_version, kind)
            .ok_or_else(|| ApiError::not_found_path().with_details(json!({"kind": kind})))?;
        let (_, version) = crate::registry::split_api_version(api_version);
        let name = meta_str(obj, "name").unwrap_or("").to_string();
        let namespace = if info.namespaced {
            Some(meta_str(obj, "namespace").unwrap_or("default").to_string())
        } else {
            None
        };
        Ok((
            Target {
                info,
                version: version.to_string(),
                namespace,
                name: Some(name.clone()),
                subresource: None,
            },
            name,
        ))
    }

    // ---------------------------------------------------------------- reads

    /// [`ClusterState::get`] as JSON: an object kept encoded is served without decoding it.
    pub fn get_encoded(&self, t: &Target) -> ApiResult<bytes::Bytes> {
        let name = t.name()?;
        let key = t.key(name);
        let api_version = t.api_version();
        let st = self.lock();
        if let Some(encoded) = st.get_encoded(&key, &api_version) {
            return Ok(encoded);
        }
        let obj = st.get(&key).ok_or_else(|| t.not_found(name))?;
        drop(st);
        Ok(at_version(&obj, &api_version).encoded())
    }

    pub fn get(&self, t: &Target) -> ApiResult<Obj> {
        let name = t.name()?;
        let st = self.lock();
        st.get(&t.key(name))
            .map(|o| at_version(&o, &t.api_version()))
            .ok_or_else(|| t.not_found(name))
    }

    pub fn list(&self, t: &Target, opts: &ListOptions) -> ApiResult<ListResult> {
        let st = self.lock();
        let gr = t.info.group_resource();
        let (after, list_rv) = match &opts.continue_token {
            Some(tok) => {
                let (rv, ns, name) = decode_continue(tok)?;
                (Some((ns, name)), rv)
            }
            None => (None, st.resource_version()),
        };
        let ns = t.namespace.as_deref();
        let mut items = Vec::new();
        let mut continue_token = None;
        let mut remaining = None;
        let api_version = t.api_version();
        let pinned = opts.field_selector.pinned_name();
        let mut iter = st
            .range(&gr, ns, after)
            .filter(|((_, name), _)| pinned.is_none_or(|p| p == name))
            .filter(|(_, o)| opts.label_selector.matches(o) && opts.field_selector.matches(o));
        for ((_, _), o) in iter.by_ref() {
            items.push(at_version(&o, &api_version));
            if opts.limit.is_some_and(|l| l > 0 && items.len() >= l) {
                break;
            }
        }
        if opts.limit.is_some_and(|l| l > 0 && items.len() >= l) {
            let rest = iter.count();
            if rest > 0 {
                if let Some(last) = items.last() {
                    let lns = meta_str(last, "namespace").unwrap_or("").to_string();
                    let lname = meta_str(last, "name").unwrap_or("").to_string();
                    continue_token = Some(encode_continue(list_rv, &lns, &lname));
                }
                remaining = Some(rest);
            }
        }
        Ok(ListResult {
            items,
            resource_version: list_rv,
            continue_token,
            remaining,
        })
    }

    // ---------------------------------------------------------------- writes

    fn check_namespace(&self, st: &StoreState, t: &Target) -> ApiResult<()> {
        let Some(ns) = &t.namespace else {
            return Ok(());
        };
        let key = ObjKey {
            group_resource: "namespaces".into(),
            namespace: String::new(),
            name: ns.clone(),
        };
        match st.get_if_mentions(&key, "deletionTimestamp") {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(Some(n)) if meta(&n).is_some_and(|m| m.contains_key("deletionTimestamp")) => Err(ApiError::forbidden(format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                qualified(&t.info.group, &t.info.plural),
                t.name.as_deref().unwrap_or("")
            ))
            .with_details(json!({"name": t.name.as_deref().unwrap_or(""), "kind": t.info.plural, "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]}))),
            Some(_) => Ok(()),
        }
    }

    /// Checks apiVersion/kind/namespace of a request body against the URL.
    fn check_body(&self, t: &Target, body: &mut Value) -> ApiResult<()> {
        if !body.is_object() {
            return Err(ApiError::bad_request(format!(
                "the object provided is unrecognized (must be of type {})",
                t.info.kind
            )));
        }
        let want_av = t.api_version();
        match body.get("apiVersion").and_then(Value::as_str) {
            None | Some("") => body["apiVersion"] = json!(want_av),
            Some(av) if av == want_av => {}
            Some(av) => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({want_av})"
                )));
            }
        }
        match body.get("kind").and_then(Value::as_str) {
            None | Some("") => body["kind"] = json!(t.info.kind),
            Some(k) if k == t.info.kind => {}
            Some(k) => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    t.info.kind
                )));
            }
        }
        if body.get("metadata").is_some_and(|m| !m.is_object()) {
            return Err(ApiError::bad_request(
                "metadata must be an object".to_string(),
            ));
        }
        let m = meta_mut(body);
        match (&t.namespace, m.get("namespace").and_then(Value::as_str)) {
            (Some(ns), Some(b)) if !b.is_empty() && b != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            (Some(ns), _) => {
                m.insert("namespace".to_string(), json!(ns));
            }
            (None, _) => {
                m.remove("namespace");
            }
        }
        Ok(())
    }

    pub fn create(&self, t: &Target, body: Value, opts: &WriteOptions) -> ApiResult<Value> {
        self.create_stored(t, body, opts).map(|o| o.to_value())
    }

    /// [`ClusterState::create`], answering with the stored version (whose encoding the
    /// response shares with the watch event).
    pub fn create_stored(
        &self,
        t: &Target,
        mut body: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Obj> {
        if t.subresource.is_some() {
            return Err(ApiError::method_not_allowed(
                "create is not supported on subresources",
            ));
        }
        self.check_body(t, &mut body)?;
        self.check_namespace(&self.lock(), t)?;
        let m = meta_mut(&mut body);
        let name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let generate_prefix = if name.is_empty() {
            match m.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => Some(prefix.to_string()),
                _ => {
                    return Err(ApiError::invalid(
                        &t.info.group,
                        &t.info.kind,
                        "",
                        &[(
                            "metadata.name".to_string(),
                            "Required value: name or generateName is required".to_string(),
                        )],
                    ));
                }
            }
        } else {
            None
        };
        // kube-apiserver draws a generated name again when it is taken (RetryGenerateName, on
        // by default since 1.31): with 27^5 suffixes, 10,000 agents registering at once collide
        // a few times, and clients such as Fleet's agent do not expect AlreadyExists from a
        // generateName create.
        let mut body = Some(body);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let name = match &generate_prefix {
                Some(prefix) => {
                    let generated = format!("{prefix}{}", self.random_suffix());
                    if let Some(b) = body.as_mut() {
                        meta_mut(b).insert("name".to_string(), json!(generated));
                    }
                    generated
                }
                None => name.clone(),
            };
            let key = t.key(&name);
            let exists = || ApiError::already_exists(&t.info.group, &t.info.plural, &name);
            let created = self.read_modify_write(
                &key,
                |old| {
                    // A create computed again found the object created meanwhile (or created
                    // and deleted again while its body was being prepared: a create raced it
                    // all the same). The body is kept then, for a generated name drawn again.
                    if old.is_some() {
                        return Err(exists());
                    }
                    let Some(body) = body.take() else {
                        return Err(exists());
                    };
                    self.prepare_write(t, &key, None, body, Ownership::Record, opts)
                },
                |st, _, prepared| {
                    self.check_namespace(st, t)?;
                    self.commit_prepared(st, t, &key, None, prepared)
                },
            );
            match created {
                Err(e)
                    if e.reason == "AlreadyExists"
                        && generate_prefix.is_some()
                        && body.is_some()
                        && attempt < GENERATE_NAME_ATTEMPTS => {}
                other => return other,
            }
        }
    }

    pub fn update(&self, t: &Target, body: Value, opts: &WriteOptions) -> ApiResult<Value> {
        self.update_stored(t, body, opts).map(|o| o.to_value())
    }

    /// [`ClusterState::update`], answering with the stored version.
    pub fn update_stored(
        &self,
        t: &Target,
        mut body: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Obj> {
        let name = t.name()?.to_string();
        self.check_body(t, &mut body)?;
        if let Some(n) = meta_str(&body, "name")
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        let key = t.key(&name);
        let obj = self.read_modify_write(
            &key,
            |old| {
                let old = old.ok_or_else(|| t.not_found(&name))?;
                if meta_str(&body, "resourceVersion").is_none_or(str::is_empty) && !t.info.builtin {
                    return Err(ApiError::invalid(
                        &t.info.group,
                        &t.info.kind,
                        &name,
                        &[(
                            "metadata.resourceVersion".to_string(),
                            "Invalid value: 0x0: must be specified for an update".to_string(),
                        )],
                    ));
                }
                self.prepare_write(t, &key, Some(old), body.clone(), Ownership::Record, opts)
            },
            |st, old, prepared| self.commit_prepared(st, t, &key, old.as_ref(), prepared),
        )?;
        Ok(obj)
    }

    /// Applies a patch; returns the object and whether it was created (server-side apply).
    pub fn patch(
        &self,
        t: &Target,
        patch_type: PatchType,
        body: &[u8],
        opts: &WriteOptions,
    ) -> ApiResult<(Value, bool)> {
        self.patch_stored(t, patch_type, body, opts)
            .map(|(o, created)| (o.to_value(), created))
    }

    /// [`ClusterState::patch`], answering with the stored version.
    pub fn patch_stored(
        &self,
        t: &Target,
        patch_type: PatchType,
        body: &[u8],
        opts: &WriteOptions,
    ) -> ApiResult<(Obj, bool)> {
        let name = t.name()?.to_string();
        let key = t.key(&name);
        let api_version = t.api_version();
        let map_patch_err = |e: PatchError| match e {
            PatchError::Malformed(m) => ApiError::bad_request(m),
            PatchError::Inapplicable(m) => ApiError::new(422, "Invalid", m),
        };
        if patch_type == PatchType::Apply {
            let mut applied: Value = parse_yaml_or_json(body)?;
            let manager = opts.field_manager.clone().ok_or_else(|| {
                ApiError::bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch")
            })?;
            self.check_body(t, &mut applied)?;
            if meta_str(&applied, "name").is_some_and(|n| n != name) {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    meta_str(&applied, "name").unwrap_or("")
                )));
            }
            meta_mut(&mut applied).insert("name".to_string(), json!(name));
            {
                // An apply that creates needs its namespace (checked again when committing).
                let st = self.lock();
                if st.get(&key).is_none() {
                    self.check_namespace(&st, t)?;
                }
            }
            let schema = t.info.schema(&t.version).map(|s| &**s);
            let shape = Shape::root(&t.info.kind, t.info.builtin, schema);
            let scope = self.scope(t);
            let (obj, created) = self.read_modify_write(
                &key,
                |old| {
                    let now = now_rfc3339();
                    let writer = Writer {
                        manager: &manager,
                        subresource: if t.is_status() { "status" } else { "" },
                        api_version: &api_version,
                        now: &now,
                        scope,
                    };
                    let mut entries = old.map(|o| ssa::stored_entries(o)).unwrap_or_default();
                    let current = old.map(|o| at_version(o, &api_version));
                    let merged = ssa::apply(&mut entries, &writer, current.as_deref().map(StoredObject::value), &applied, opts.force, shape).map_err(|conflicts| {
                        let causes: Vec<Value> = conflicts
                            .iter()
                            .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\" using {}", c.manager, c.api_version), "field": ssa::path_string(&c.path)}))
                            .collect();
                        let mut details = json!({"name": name, "kind": t.info.plural, "causes": causes});
                        if !t.info.group.is_empty() {
                            details["group"] = json!(t.info.group);
                        }
                        ApiError::new(409, "Conflict", ssa::conflict_message(&conflicts)).with_details(details)
                    })?;
                    self.prepare_write(t, &key, old, merged, Ownership::Given(entries), opts)
                },
                |st, old, prepared| {
                    if old.is_none() {
                        self.check_namespace(st, t)?;
                    }
                    let obj = self.commit_prepared(st, t, &key, old.as_ref(), prepared)?;
                    Ok((obj, old.is_none()))
                },
            )?;
            return Ok((obj, created));
        }
        let merge_patch = match patch_type {
            PatchType::Merge | PatchType::Strategic => {
                let p: Value = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                Some(p)
            }
            PatchType::Json | PatchType::Apply => None,
        };
        let obj = self.read_modify_write(
            &key,
            |old| {
                let old = old.ok_or_else(|| t.not_found(&name))?;
                // managedFields go into the patched object only when the patch may change
                // them; otherwise the write keeps the stored ones without decoding them.
                let current = at_version(old, &api_version);
                let mut new = if patch_mentions_managed_fields(patch_type, body) {
                    current.to_value()
                } else {
                    current.value().clone()
                };
                match (patch_type, &merge_patch) {
                    (PatchType::Json, _) => {
                        patch::json_patch(&mut new, body).map_err(map_patch_err)?
                    }
                    (PatchType::Merge, Some(p)) => {
                        patch::merge_patch(&mut new, p).map_err(map_patch_err)?
                    }
                    (PatchType::Strategic, Some(p)) => {
                        if !t.info.builtin {
                            return Err(ApiError::unsupported_media_type(
                                "application/strategic-merge-patch+json",
                            ));
                        }
                        patch::strategic_merge_patch(&mut new, p, &t.info.kind)
                            .map_err(map_patch_err)?;
                    }
                    _ => {}
                }
                self.check_body(t, &mut new)?;
                if meta_str(&new, "name") != Some(name.as_str()) {
                    return Err(ApiError::bad_request(
                        "metadata.name cannot be changed by a patch".to_string(),
                    ));
                }
                self.prepare_write(t, &key, Some(old), new, Ownership::Record, opts)
            },
            |st, old, prepared| self.commit_prepared(st, t, &key, old.as_ref(), prepared),
        )?;
        Ok((obj, false))
    }

    /// The object stored under `key` now, taken under a brief lock.
    fn snapshot(&self, key: &ObjKey) -> Option<Obj> {
        self.lock().get(key)
    }

    /// A read-modify-write of one object: `compute` turns the object as it is into what to
    /// commit without holding the store lock (decoding, merging, managedFields and validation
    /// are the expensive part of a write, and the lock is taken on the callers' runtime
    /// threads); the result is committed only if the object is still the one it was computed
    /// from, else computed again. After a few lost races it is computed under the lock, so a
    /// busy object cannot starve a writer. `compute` must not take the store lock; `commit`
    /// runs under it, and the lock is released before watches are woken.
    fn read_modify_write<P, R>(
        &self,
        key: &ObjKey,
        mut compute: impl FnMut(Option<&Obj>) -> ApiResult<P>,
        commit: impl FnOnce(&mut StoreState, Option<Obj>, P) -> ApiResult<R>,
    ) -> ApiResult<R> {
        let mut attempt = 0;
        let (mut st, old, prepared) = loop {
            attempt += 1;
            if attempt > OPTIMISTIC_WRITE_ATTEMPTS {
                let st = self.lock();
                let old = st.get(key);
                let prepared = compute(old.as_ref())?;
                break (st, old, prepared);
            }
            let old = self.snapshot(key);
            let prepared = compute(old.as_ref())?;
            let st = self.lock();
            let unchanged = match (st.version_of(key), &old) {
                (None, None) => true,
                (Some(now), Some(then)) => {
                    meta_str(then, "resourceVersion").and_then(|rv| rv.parse().ok()) == Some(now)
                }
                _ => false,
            };
            if unchanged {
                break (st, old, prepared);
            }
        };
        let result = commit(&mut st, old, prepared);
        self.finish(st);
        result
    }

    fn scope(&self, t: &Target) -> Scope {
        if t.is_status() {
            Scope::StatusOnly
        } else if t.info.status_subresource {
            Scope::WithoutStatus
        } else {
            Scope::All
        }
    }

    /// The write pipeline shared by create, update and patch, under the store lock.
    #[allow(clippy::too_many_arguments)]
    fn commit_write(
        &self,
        st: &mut StoreState,
        t: &Target,
        key: &ObjKey,
        old: Option<Obj>,
        new: Value,
        ownership: Ownership,
        opts: &WriteOptions,
    ) -> ApiResult<Obj> {
        let prepared = self.prepare_write(t, key, old.as_ref(), new, ownership, opts)?;
        self.commit_prepared(st, t, key, old.as_ref(), prepared)
    }

    /// Everything of a write that needs no store: optimistic concurrency against `old`,
    /// status/main resource split, system metadata, defaults, pruning, validation, generation,
    /// managedFields, the no-op check and the size limit.
    fn prepare_write(
        &self,
        t: &Target,
        key: &ObjKey,
        old: Option<&Obj>,
        mut new: Value,
        ownership: Ownership,
        opts: &WriteOptions,
    ) -> ApiResult<Prepared> {
        let info = &t.info;
        let name = key.name.clone();
        let api_version = t.api_version();
        // Optimistic concurrency.
        if let (Some(old), Some(rv)) = (&old, meta_str(&new, "resourceVersion"))
            && !rv.is_empty()
            && Some(rv) != meta_str(old, "resourceVersion")
        {
            return Err(ApiError::stale(&info.group, &info.plural, &name));
        }
        // The status subresource changes only status; the main resource never changes status.
        if let Some(old) = &old {
            if t.is_status() {
                let client_mf = meta(&new).and_then(|m| m.get("managedFields")).cloned();
                keep_all_but_status(&mut new, old);
                new["apiVersion"] = json!(api_version);
                if let Some(mf) = client_mf {
                    meta_mut(&mut new).insert("managedFields".to_string(), mf);
                }
            } else if info.status_subresource {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Value::Object(m) = &mut new {
                            m.remove("status");
                        }
                    }
                }
            }
        } else if info.status_subresource
            && let Value::Object(m) = &mut new
        {
            m.remove("status");
        }
        // System metadata.
        let now = now_rfc3339();
        {
            let m = meta_mut(&mut new);
            m.remove("selfLink");
            match &old {
                Some(old) => {
                    let om = meta(old);
                    for f in [
                        "uid",
                        "creationTimestamp",
                        "deletionTimestamp",
                        "deletionGracePeriodSeconds",
                        "generation",
                    ] {
                        match om.and_then(|om| om.get(f)) {
                            Some(v) => m.insert(f.to_string(), v.clone()),
                            None => m.remove(f),
                        };
                    }
                    if let Some(rv) = om.and_then(|om| om.get("resourceVersion")) {
                        m.insert("resourceVersion".to_string(), rv.clone());
                    }
                }
                None => {
                    m.insert("uid".to_string(), json!(self.new_uid()));
                    m.insert("creationTimestamp".to_string(), json!(now));
                    m.remove("deletionTimestamp");
                    m.remove("deletionGracePeriodSeconds");
                    m.remove("resourceVersion");
                    if info.has_generation {
                        m.insert("generation".to_string(), json!(1));
                    } else {
                        m.remove("generation");
                    }
                }
            }
        }
        if let Some(old) = &old
            && meta(old).is_some_and(|m| m.contains_key("deletionTimestamp"))
        {
            // Finalizers may only be removed once deletion started.
            let had: BTreeSet<String> = finalizers(old).into_iter().collect();
            let now_f = finalizers(&new);
            if now_f.iter().any(|f| !had.contains(f)) {
                return Err(ApiError::invalid(
                    &info.group,
                    &info.kind,
                    &name,
                    &[(
                        "metadata.finalizers".to_string(),
                        "Forbidden: no new finalizers can be added if the object is being deleted"
                            .to_string(),
                    )],
                ));
            }
        }
        self.defaults(info, &mut new, old.is_none());
        // Structural schema: prune unknown fields, apply defaults.
        if !info.builtin
            && let Some(schema) = info.schema(&t.version)
        {
            let mut dropped = Vec::new();
            prune_and_default(&mut new, schema, self.scope(t), &mut dropped);
            if opts.strict && !dropped.is_empty() {
                let list: Vec<String> = dropped
                    .iter()
                    .map(|d| format!("unknown field \"{d}\""))
                    .collect();
                return Err(ApiError::bad_request(format!(
                    "strict decoding error: {}",
                    list.join(", ")
                )));
            }
        }
        if opts.strict && info.builtin {
            let unknown = crate::openapi::unknown_builtin_fields(&info.kind, &new);
            if !unknown.is_empty() {
                let list: Vec<String> = unknown
                    .iter()
                    .map(|d| format!("unknown field \"{d}\""))
                    .collect();
                return Err(ApiError::bad_request(format!(
                    "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                    info.kind,
                    t.version,
                    info.kind,
                    list.join(", ")
                )));
            }
        }
        let errs = validate(info, &new);
        if !errs.is_empty() {
            return Err(ApiError::invalid(&info.group, &info.kind, &name, &errs));
        }
        // Generation: bumped when anything outside metadata (and status, when it has its own
        // subresource) changes.
        if info.has_generation
            && let Some(old) = &old
            && spec_differs(old, &new, info.status_subresource)
        {
            let g = meta(old)
                .and_then(|m| m.get("generation"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut new).insert("generation".to_string(), json!(g + 1));
        }
        // Field ownership. The managedFields a body holds are taken out: the stored object
        // keeps them apart (see `StoredObject`), and the no-op check does not look at them.
        let body_managed_fields = meta_mut(&mut new).remove("managedFields");
        // A body without managedFields keeps the live object's (kube-apiserver's
        // `decodeLiveOrNew`: clients that do not know the field do not wipe it).
        let old_mf = old.and_then(|o| o.managed_fields_raw());
        let client_set_mf = match (&old, &body_managed_fields) {
            _ if !matches!(ownership, Ownership::Record) => false,
            (_, None) => false,
            (Some(_), Some(sent)) => !ssa::same_managed_fields(sent, old_mf),
            (None, Some(sent)) => sent.as_array().is_some_and(|a| !a.is_empty()),
        };
        // A client replacing managedFields wholesale (e.g. kubectl migrating client-side
        // apply ownership) is honoured, as kube-apiserver does.
        if client_set_mf
            && body_managed_fields
                .as_ref()
                .is_some_and(|mf| !mf.is_array())
        {
            return Err(ApiError::bad_request(
                "metadata.managedFields must be a list",
            ));
        }
        // No-op writes are not written (and do not bump resourceVersion).
        if let Some(old) = old
            && same_except_volatile(old, &new)
        {
            return Ok(Prepared::Done(at_version(old, &api_version)));
        }
        let managed_fields = match ownership {
            Ownership::Given(entries) => ssa::encode_entries(&entries),
            Ownership::Record if client_set_mf => body_managed_fields
                .as_ref()
                .and_then(ssa::canonical_managed_fields),
            Ownership::Record => {
                let schema = info.schema(&t.version).map(|s| &**s);
                let shape = Shape::root(&info.kind, info.builtin, schema);
                let manager = opts
                    .field_manager
                    .clone()
                    .unwrap_or_else(|| "unknown".to_string());
                let mut entries = old_mf.map(ssa::entries_of_raw).unwrap_or_default();
                let writer = Writer {
                    manager: &manager,
                    subresource: if t.is_status() { "status" } else { "" },
                    api_version: &api_version,
                    now: &now,
                    scope: self.scope(t),
                };
                ssa::record_update(&mut entries, &writer, old.map(|o| o.value()), &new, shape);
                ssa::encode_entries(&entries)
            }
        };
        // The exact size is counted only when a bound computed without looking at the bytes
        // of strings (most objects are far below the limit) does not settle it.
        let managed_fields_len = managed_fields.as_ref().map_or(0, |mf| mf.get().len() + 17);
        if encoded_len_bound(&new) + managed_fields_len > MAX_OBJECT_BYTES
            && encoded_len(&new) + managed_fields_len > MAX_OBJECT_BYTES
        {
            return Err(ApiError::new(500, "", "etcdserver: request is too large"));
        }
        let stored = StoredObject::with_raw_managed_fields(new, managed_fields);
        if opts.dry_run {
            return Ok(Prepared::Done(Arc::new(stored)));
        }
        Ok(Prepared::Write(stored))
    }

    /// Commits a prepared write: stores it (an object being deleted whose finalizers are all
    /// gone goes at once).
    fn commit_prepared(
        &self,
        st: &mut StoreState,
        t: &Target,
        key: &ObjKey,
        old: Option<&Obj>,
        prepared: Prepared,
    ) -> ApiResult<Obj> {
        let new = match prepared {
            Prepared::Done(obj) => return Ok(obj),
            Prepared::Write(new) => new,
        };
        let api_version = t.api_version();
        let name = &key.name;
        // Finalizers cleared on an object being deleted: it goes now.
        if meta(&new).is_some_and(|m| m.contains_key("deletionTimestamp"))
            && finalizers(&new).is_empty()
        {
            st.put_over(key.clone(), new, old);
            let gone = self.remove_cascade(st, key);
            return gone
                .map(|o| at_version(&o, &api_version))
                .ok_or_else(|| t.not_found(name));
        }
        let stored = st.put_over(key.clone(), new, old);
        if old.is_some() && meta(&stored).is_some_and(|m| m.contains_key("deletionTimestamp")) {
            self.settle_foreground(st, key);
        }
        Ok(at_version(&stored, &api_version))
    }

    /// Fields kube-apiserver defaults that clients rely on.
    fn defaults(&self, info: &ResourceInfo, obj: &mut Value, create: bool) {
        match info.kind.as_str() {
            "Namespace" => {
                if create {
                    obj["spec"] = json!({"finalizers": ["kubernetes"]});
                    obj["status"] = json!({"phase": "Active"});
                }
                let name = meta_str(obj, "name").unwrap_or("").to_string();
                let labels = meta_mut(obj).entry("labels").or_insert_with(|| json!({}));
                if let Value::Object(l) = labels {
                    l.insert("kubernetes.io/metadata.name".to_string(), json!(name));
                }
            }
            "Secret" if obj.get("type").is_none() => {
                obj["type"] = json!("Opaque");
            }
            "Service" if create => {
                if obj.pointer("/spec/type").is_none()
                    && let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
                {
                    spec.insert("type".to_string(), json!("ClusterIP"));
                }
                if obj.pointer("/spec/clusterIP").is_none()
                    && obj.pointer("/spec/type").and_then(Value::as_str) != Some("ExternalName")
                {
                    let n = self
                        .random_suffix()
                        .bytes()
                        .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
                    let ip = format!("10.96.{}.{}", (n >> 8) % 256, n % 254 + 1);
                    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                        spec.insert("clusterIP".to_string(), json!(ip));
                        spec.insert("clusterIPs".to_string(), json!([ip]));
                    }
                }
            }
            "Deployment" | "StatefulSet" | "ReplicaSet" => {
                if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut)
                    && !spec.contains_key("replicas")
                {
                    spec.insert("replicas".to_string(), json!(1));
                }
            }
            "CustomResourceDefinition" => {
                let names = obj.pointer("/spec/names").cloned().unwrap_or(json!({}));
                let now = now_rfc3339();
                let mut names = names;
                if names.get("singular").is_none()
                    && let Some(k) = names.get("kind").and_then(Value::as_str)
                {
                    names["singular"] = json!(k.to_lowercase());
                }
                if names.get("listKind").is_none()
                    && let Some(k) = names.get("kind").and_then(Value::as_str)
                {
                    names["listKind"] = json!(format!("{k}List"));
                }
                let stored: Vec<Value> = obj
                    .pointer("/spec/versions")
                    .and_then(Value::as_array)
                    .map(|vs| {
                        vs.iter()
                            .filter(|v| v.get("storage") == Some(&json!(true)))
                            .filter_map(|v| v.get("name").cloned())
                            .collect()
                    })
                    .unwrap_or_default();
                let keep_time = |t: &str| -> String {
                    obj.pointer("/status/conditions")
                        .and_then(Value::as_array)
                        .and_then(|cs| {
                            cs.iter()
                                .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
                        })
                        .and_then(|c| c.get("lastTransitionTime").and_then(Value::as_str))
                        .map(str::to_string)
                        .unwrap_or_else(|| now.clone())
                };
                obj["status"] = json!({
                    "acceptedNames": names,
                    "conditions": [
                        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": keep_time("NamesAccepted")},
                        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": keep_time("Established")}
                    ],
                    "storedVersions": stored,
                });
            }
            _ => {}
        }
    }

    // ---------------------------------------------------------------- deletes

    pub fn delete(&self, t: &Target, opts: &DeleteOptions) -> ApiResult<(Value, bool)> {
        let name = t.name()?.to_string();
        let mut st = self.lock();
        let key = t.key(&name);
        let old = st.get(&key).ok_or_else(|| t.not_found(&name))?;
        if let Some(uid) = &opts.precondition_uid
            && Some(uid.as_str()) != meta_str(&old, "uid")
        {
            return Err(ApiError::conflict(
                &t.info.group,
                &t.info.plural,
                &name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old, "uid").unwrap_or("")
                ),
            ));
        }
        if let Some(rv) = &opts.precondition_resource_version
            && Some(rv.as_str()) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(
                &t.info.group,
                &t.info.plural,
                &name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&old, "resourceVersion").unwrap_or("")
                ),
            ));
        }
        if opts.dry_run {
            return Ok((old.to_value(), true));
        }
        let policy = opts.propagation_policy.as_deref().unwrap_or("Background");
        let result = self.delete_key(&mut st, &key, policy);
        self.finish(st);
        let api_version = t.api_version();
        match result {
            Some((obj, removed)) => Ok((at_version(&obj, &api_version).to_value(), removed)),
            None => Err(t.not_found(&name)),
        }
    }

    pub fn delete_collection(
        &self,
        t: &Target,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> ApiResult<Vec<Obj>> {
        let items = self
            .list(
                t,
                &ListOptions {
                    limit: None,
                    continue_token: None,
                    ..list.clone()
                },
            )?
            .items;
        if opts.dry_run {
            return Ok(items);
        }
        let mut st = self.lock();
        let policy = opts.propagation_policy.as_deref().unwrap_or("Background");
        let mut out = Vec::new();
        for item in items {
            let key = t.key(meta_str(&item, "name").unwrap_or(""));
            if let Some((obj, _)) = self.delete_key(&mut st, &key, policy) {
                out.push(obj);
            }
        }
        self.finish(st);
        Ok(out)
    }

    /// Starts deleting one object. Returns it and whether it is gone (false: waiting on finalizers).
    fn delete_key(&self, st: &mut StoreState, key: &ObjKey, policy: &str) -> Option<(Obj, bool)> {
        let old = st.get(key)?.clone();
        let uid = meta_str(&old, "uid").unwrap_or("").to_string();
        let mut fin = finalizers(&old);
        let already = meta(&old).is_some_and(|m| m.contains_key("deletionTimestamp"));
        let is_namespace = &*key.group_resource == "namespaces";
        let is_crd = &*key.group_resource == CRD_RESOURCE;
        let dependents = st.dependents_of(&uid);
        if policy == "Orphan" || fin.iter().any(|f| f == ORPHAN) {
            for d in &dependents {
                self.drop_owner_ref(st, d, &uid);
            }
            fin.retain(|f| f != ORPHAN);
        }
        if policy == "Foreground" && !dependents.is_empty() && !fin.iter().any(|f| f == FOREGROUND)
        {
            fin.push(FOREGROUND.to_string());
        }
        if is_crd {
            // Deleting a CRD deletes every custom resource of it first.
            if let Some(info) = crate::registry::resource_from_crd(&old) {
                let gr: Arc<str> = info.group_resource().into();
                for obj in st.all_of(&gr) {
                    let k = ObjKey {
                        group_resource: gr.clone(),
                        namespace: meta_str(&obj, "namespace").unwrap_or("").to_string(),
                        name: meta_str(&obj, "name").unwrap_or("").to_string(),
                    };
                    st.remove(&k);
                }
            }
        }
        if fin.is_empty() && !is_namespace {
            return st.remove(key).map(|o| {
                let o = self.after_remove(st, key, o);
                (o, true)
            });
        }
        let mut marked = old.value().clone();
        set_finalizers(&mut marked, &fin);
        if !already {
            let m = meta_mut(&mut marked);
            m.insert("deletionTimestamp".to_string(), json!(now_rfc3339()));
            m.insert("deletionGracePeriodSeconds".to_string(), json!(0));
        }
        if is_namespace {
            marked["status"] = json!({"phase": "Terminating"});
        }
        if marked != **old {
            st.put_over(
                key.clone(),
                StoredObject::with_managed_fields_of(marked, &old),
                Some(&old),
            );
        }
        if policy == "Foreground" {
            for d in &dependents {
                self.delete_key(st, d, "Foreground");
            }
        }
        if is_namespace {
            for k in st.keys_in_namespace(&key.name) {
                self.delete_key(st, &k, "Background");
            }
            self.settle_namespace(st, &key.name);
        }
        self.settle_foreground(st, key);
        let now = st.get(key);
        match now {
            Some(o) => Some((o, false)),
            None => Some((old, true)),
        }
    }

    fn drop_owner_ref(&self, st: &mut StoreState, key: &ObjKey, owner_uid: &str) {
        let Some(obj) = st.get(key) else {
            return;
        };
        let mut new = obj.value().clone();
        if let Some(Value::Array(refs)) = meta_mut(&mut new).get_mut("ownerReferences") {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
            if refs.is_empty() {
                meta_mut(&mut new).remove("ownerReferences");
            }
        }
        if new != **obj {
            st.put_over(
                key.clone(),
                StoredObject::with_managed_fields_of(new, &obj),
                Some(&obj),
            );
        }
    }

    /// Removes an object and everything that waited on it: dependents (garbage collection), an
    /// owner in foreground deletion, a terminating namespace.
    fn remove_cascade(&self, st: &mut StoreState, key: &ObjKey) -> Option<Obj> {
        let removed = st.remove(key)?;
        Some(self.after_remove(st, key, removed))
    }

    fn after_remove(&self, st: &mut StoreState, key: &ObjKey, removed: Obj) -> Obj {
        let uid = meta_str(&removed, "uid").unwrap_or("").to_string();
        for d in st.dependents_of(&uid) {
            let Some(dep) = st.get(&d) else {
                continue;
            };
            let other_owner_alive = meta(&dep)
                .and_then(|m| m.get("ownerReferences"))
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter().any(|r| {
                        r.get("uid")
                            .and_then(Value::as_str)
                            .is_some_and(|u| u != uid && st.key_of_uid(u).is_some())
                    })
                });
            if other_owner_alive {
                self.drop_owner_ref(st, &d, &uid);
            } else {
                self.delete_key(st, &d, "Background");
            }
        }
        // An owner waiting in foreground deletion may now be free to go.
        let owners: Vec<String> = meta(&removed)
            .and_then(|m| m.get("ownerReferences"))
            .and_then(Value::as_array)
            .map(|refs| {
                refs.iter()
                    .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for owner in owners {
            if let Some(k) = st.key_of_uid(&owner).cloned() {
                self.settle_foreground(st, &k);
            }
        }
        if !key.namespace.is_empty() {
            self.settle_namespace(st, &key.namespace);
        }
        removed
    }

    /// Removes the `foregroundDeletion` finalizer once an owner has no dependents left.
    fn settle_foreground(&self, st: &mut StoreState, key: &ObjKey) {
        let Some(obj) = st.get(key) else {
            return;
        };
        let fin = finalizers(&obj);
        if !meta(&obj).is_some_and(|m| m.contains_key("deletionTimestamp"))
            || !fin.iter().any(|f| f == FOREGROUND)
        {
            return;
        }
        let uid = meta_str(&obj, "uid").unwrap_or("");
        if !st.dependents_of(uid).is_empty() {
            return;
        }
        let rest: Vec<String> = fin.into_iter().filter(|f| f != FOREGROUND).collect();
        if rest.is_empty() {
            self.remove_cascade(st, key);
        } else {
            let mut new = obj.value().clone();
            set_finalizers(&mut new, &rest);
            st.put_over(
                key.clone(),
                StoredObject::with_managed_fields_of(new, &obj),
                Some(&obj),
            );
        }
    }

    /// A terminating namespace goes once it is empty.
    fn settle_namespace(&self, st: &mut StoreState, namespace: &str) {
        let key = ObjKey {
            group_resource: "namespaces".into(),
            namespace: String::new(),
            name: namespace.to_string(),
        };
        let Some(ns) = st.get(&key) else {
            return;
        };
        if !meta(&ns).is_some_and(|m| m.contains_key("deletionTimestamp")) {
            return;
        }
        if !st.keys_in_namespace(namespace).is_empty() || !finalizers(&ns).is_empty() {
            return;
        }
        st.remove(&key);
    }
}

enum Ownership {
    Record,
    Given(Vec<ssa::ManagedEntry>),
}

/// A write computed without the store lock, to be committed under it.
enum Prepared {
    /// Nothing to store: a no-op write or a dry run; the object to answer with.
    Done(Obj),
    Write(StoredObject),
}

/// How often a taken generated name is drawn again (kube-apiserver: 8 tries in all).
const GENERATE_NAME_ATTEMPTS: u32 = 8;
/// Times a write is computed without the store lock before it is computed under it.
const OPTIMISTIC_WRITE_ATTEMPTS: u32 = 4;

/// At least the length of `value` encoded as JSON: every character of a string counted as
/// escaped (`\u00XX`), every number at its longest; reads no string's bytes.
fn encoded_len_bound(value: &Value) -> usize {
    fn string(s: &str) -> usize {
        2 + 6 * s.len()
    }
    match value {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 24,
        Value::String(s) => string(s),
        Value::Array(items) => {
            2 + items
                .iter()
                .map(|v| encoded_len_bound(v) + 1)
                .sum::<usize>()
        }
        Value::Object(map) => {
            2 + map
                .iter()
                .map(|(k, v)| string(k) + 2 + encoded_len_bound(v))
                .sum::<usize>()
        }
    }
}

/// The length of `value` encoded as JSON, without building the encoding.
fn encoded_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => 0,
    }
}

/// Parses a request body that may be YAML or JSON.
pub fn parse_yaml_or_json(body: &[u8]) -> ApiResult<Value> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    serde_norway::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))
}

fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    use base64::Engine;
    let raw = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{ns}/{name}")}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> ApiResult<(u64, String, String)> {
    use base64::Engine;
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    let (ns, name) = start.split_once('/').ok_or_else(bad)?;
    Ok((rv, ns.to_string(), name.to_string()))
}

/// The type of event a watcher receives for one committed event, given its filter; None to
/// skip it. Only a watcher with a selector looks at the objects (a selector transition turns a
/// modification into ADDED or DELETED).
pub fn event_for_watcher(
    e: &StoredEvent,
    group_resource: &str,
    namespace: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> Option<EventType> {
    if &*e.key.group_resource != group_resource {
        return None;
    }
    if let Some(ns) = namespace
        && &*e.key.namespace != ns
    {
        return None;
    }
    if labels.is_empty() && fields.is_empty() {
        return Some(e.event_type);
    }
    let matches = |o: &Value| labels.matches(o) && fields.matches(o);
    match e.event_type {
        EventType::Added => matches(&e.object()).then_some(EventType::Added),
        EventType::Deleted => e
            .previous()
            .is_some_and(|p| matches(&p))
            .then_some(EventType::Deleted),
        EventType::Modified => {
            let now = matches(&e.object());
            let before = e.previous().is_some_and(|p| matches(&p));
            match (before, now) {
                (true, true) => Some(EventType::Modified),
                (false, true) => Some(EventType::Added),
                (true, false) => Some(EventType::Deleted),
                (false, false) => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_status_write_keeps_everything_but_the_status() {
        let old = json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "a", "labels": {"x": "1"}},
            "spec": {"s": 1}, "status": {"ready": false}});
        // A patch of the status and of what the status subresource may not change.
        let mut new = json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "a", "labels": {"x": "2"}},
            "spec": {"s": 2}, "extra": true, "status": {"ready": true}});
        keep_all_but_status(&mut new, &old);
        let mut want = old.clone();
        want["status"] = json!({"ready": true});
        assert_eq!(new, want);
        // Without a status in the write, the object has none.
        let mut new = json!({"metadata": {"name": "a"}});
        keep_all_but_status(&mut new, &old);
        let mut want = old.clone();
        want.as_object_mut().map(|m| m.remove("status"));
        assert_eq!(new, want);
    }

    fn configmap_target(cluster: &ClusterState, name: &str) -> Target {
        Target {
            info: cluster
                .resolve("v1", "ConfigMap")
                .expect("configmaps are served"),
            version: "v1".to_string(),
            namespace: Some("default".to_string()),
            name: Some(name.to_string()),
            subresource: None,
        }
    }

    /// kube-apiserver draws a taken generated name again instead of answering AlreadyExists
    /// (RetryGenerateName): the same random draws that made a name in one cluster meet that
    /// name already taken in another.
    #[test]
    fn a_generated_name_that_is_taken_is_drawn_again() {
        let draws = || ChaCha8Rng::seed_from_u64(99);
        let body = || json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "request-", "namespace": "default"}});
        let unnamed = |cluster: &ClusterState| Target {
            name: None,
            ..configmap_target(cluster, "")
        };
        let first = ClusterState::new("first", 1, 1024);
        *first.rng.lock().unwrap() = draws();
        let created = first
            .create(&unnamed(&first), body(), &WriteOptions::default())
            .unwrap();
        let taken = created["metadata"]["name"].as_str().unwrap().to_string();

        let second = ClusterState::new("second", 1, 1024);
        second
            .create_object(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": taken, "namespace": "default"}}),
                "test",
            )
            .unwrap();
        *second.rng.lock().unwrap() = draws();
        let created = second
            .create(&unnamed(&second), body(), &WriteOptions::default())
            .unwrap();
        let name = created["metadata"]["name"].as_str().unwrap();
        assert_ne!(name, taken);
        assert!(
            name.starts_with("request-") && name.len() == taken.len(),
            "{name}"
        );
    }

    /// The size check may skip counting: its bound is never below the exact length.
    #[test]
    fn the_encoded_length_bound_is_never_below_the_length() {
        for v in [
            json!(null),
            json!({"a": [1, -2.5e300, true, null, "x\"y\\z\n\u{1}é😀"], "": {}, "b": []}),
            json!({"metadata": {"name": "n", "labels": {"k": "v"}}, "data": {"big": "q".repeat(5000)}}),
            json!([u64::MAX, i64::MIN, 0.1]),
        ] {
            assert!(encoded_len_bound(&v) >= encoded_len(&v), "{v}");
        }
    }

    /// Writes are computed outside the store lock and committed only if the object did not
    /// change meanwhile: racing writers to one object lose no update and every write counts.
    #[test]
    fn racing_patches_and_applies_to_one_object_lose_no_update() {
        let cluster = ClusterState::new("race", 1, 1024);
        cluster
            .create_object(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared", "namespace": "default"}, "data": {}}),
                "test",
            )
            .unwrap();
        let before = cluster.lock().stats().writes;
        let threads = 4;
        let writes = 25;
        std::thread::scope(|scope| {
            for thread in 0..threads {
                let cluster = &cluster;
                scope.spawn(move || {
                    let t = configmap_target(cluster, "shared");
                    for i in 0..writes {
                        let key = format!("t{thread}-{i}");
                        if i % 2 == 0 {
                            let patch = json!({"data": {key: "merge"}}).to_string();
                            let opts = WriteOptions {
                                field_manager: Some(format!("merger-{thread}")),
                                ..Default::default()
                            };
                            cluster
                                .patch(&t, PatchType::Merge, patch.as_bytes(), &opts)
                                .unwrap();
                        } else {
                            // Each applier owns its own keys: apply the whole set it owns so far.
                            let owned: Map<String, Value> = (1..=i)
                                .step_by(2)
                                .map(|j| (format!("t{thread}-{j}"), json!("apply")))
                                .collect();
                            let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared", "namespace": "default"}, "data": owned}).to_string();
                            let opts = WriteOptions {
                                field_manager: Some(format!("applier-{thread}")),
                                ..Default::default()
                            };
                            cluster
                                .patch(&t, PatchType::Apply, body.as_bytes(), &opts)
                                .unwrap();
                        }
                    }
                });
            }
        });
        let obj = cluster.get(&configmap_target(&cluster, "shared")).unwrap();
        let data = obj["data"].as_object().unwrap();
        for thread in 0..threads {
            for i in 0..writes {
                let want = if i % 2 == 0 { "merge" } else { "apply" };
                assert_eq!(
                    data.get(&format!("t{thread}-{i}")).and_then(Value::as_str),
                    Some(want),
                    "t{thread}-{i} in {data:?}"
                );
            }
        }
        assert_eq!(
            cluster.lock().stats().writes - before,
            (threads * writes) as u64
        );
    }
}

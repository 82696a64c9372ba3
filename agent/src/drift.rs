//! Drift detection (Fleet's `driftdetect`): one watch per deployed kind in the downstream
//! cluster, restricted to objects carrying an object set label. A change to an object of a
//! BundleDeployment's set schedules that BundleDeployment for the drift reconciler after a
//! delay, so a burst of changes costs one reconcile.
//!
//! The same watches keep an index of the objects of every object set (Fleet's agent reads
//! them from its informer caches): the monitor's orphan check reads a set from it instead of
//! listing the set's kinds from the API server after every deployment.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource};
use kube::runtime::watcher;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use fleet_api::consts::objectset;

use crate::downstream::Downstream;
use crate::monitor::ObjectKey;

/// An object as a drift watch reads it: name, namespace, resourceVersion and its object set
/// label and annotation. Everything else (spec, data, managedFields) is skipped while
/// decoding, which is most of the cost of following every deployed object.
#[derive(Debug, Clone, Default)]
pub struct SetObject {
    metadata: ObjectMeta,
}

impl<'de> serde::Deserialize<'de> for SetObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Object {
            #[serde(default)]
            metadata: Metadata,
        }
        #[derive(serde::Deserialize, Default)]
        #[serde(rename_all = "camelCase")]
        struct Metadata {
            #[serde(default)]
            name: Option<String>,
            #[serde(default)]
            namespace: Option<String>,
            #[serde(default)]
            resource_version: Option<String>,
            #[serde(default)]
            labels: Option<BTreeMap<String, String>>,
            #[serde(default)]
            annotations: Option<BTreeMap<String, String>>,
        }
        let object = Object::deserialize(deserializer)?;
        let only = |map: Option<BTreeMap<String, String>>, key: &str| {
            map.and_then(|mut m| m.remove_entry(key))
                .map(|entry| BTreeMap::from([entry]))
        };
        let m = object.metadata;
        Ok(SetObject {
            metadata: ObjectMeta {
                name: m.name,
                namespace: m.namespace,
                resource_version: m.resource_version,
                labels: only(m.labels, objectset::HASH_LABEL),
                annotations: only(m.annotations, objectset::ID_ANNOTATION),
                ..Default::default()
            },
        })
    }
}

impl kube::Resource for SetObject {
    type DynamicType = ApiResource;
    type Scope = kube::core::DynamicResourceScope;

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl SetObject {
    /// The object set this object is a member of: its ID annotation, when its hash label
    /// matches it (what a list by the set's hash label, filtered by the annotation, returns).
    fn set_id(&self) -> Option<&str> {
        let id = self
            .metadata
            .annotations
            .as_ref()?
            .get(objectset::ID_ANNOTATION)?;
        let hash = self.metadata.labels.as_ref()?.get(objectset::HASH_LABEL)?;
        (*hash == fleet_bundle::render::set_hash(id)).then_some(id.as_str())
    }
}

/// A member of an object set, as the kind's watch last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    set_id: String,
    resource_version: String,
}

/// The objects of every object set, from the drift watches.
#[derive(Default)]
struct SetIndex {
    members: HashMap<ObjectKey, Member>,
    by_set: HashMap<String, BTreeSet<ObjectKey>>,
    /// Kinds whose watch has listed them and follows them since.
    synced: HashSet<KindKey>,
    /// Kinds being (re)listed: the objects listed so far.
    relisting: HashMap<KindKey, HashSet<ObjectKey>>,
}

impl SetIndex {
    fn remove(&mut self, key: &ObjectKey) {
        if let Some(old) = self.members.remove(key)
            && let Some(set) = self.by_set.get_mut(&old.set_id)
        {
            set.remove(key);
            if set.is_empty() {
                self.by_set.remove(&old.set_id);
            }
        }
    }

    fn upsert(&mut self, key: ObjectKey, object: &SetObject) {
        let Some(set_id) = object.set_id() else {
            self.remove(&key);
            return;
        };
        let member = Member {
            set_id: set_id.to_string(),
            resource_version: object.metadata.resource_version.clone().unwrap_or_default(),
        };
        if self
            .members
            .get(&key)
            .is_some_and(|old| old.set_id != member.set_id)
        {
            self.remove(&key);
        }
        self.by_set
            .entry(member.set_id.clone())
            .or_default()
            .insert(key.clone());
        self.members.insert(key, member);
    }

    /// Forgets every object of a kind (its watch stopped).
    fn forget_kind(&mut self, kind: &KindKey) {
        self.synced.remove(kind);
        self.relisting.remove(kind);
        let keys: Vec<ObjectKey> = self
            .members
            .keys()
            .filter(|k| k.api_version == kind.0 && k.kind == kind.1)
            .cloned()
            .collect();
        for key in keys {
            self.remove(&key);
        }
    }

    fn event(&mut self, kind: &KindKey, event: &watcher::Event<SetObject>) {
        let key_of = |o: &SetObject| ObjectKey {
            api_version: kind.0.clone(),
            kind: kind.1.clone(),
            namespace: o.metadata.namespace.clone().unwrap_or_default(),
            name: o.metadata.name.clone().unwrap_or_default(),
        };
        match event {
            watcher::Event::Init => {
                self.synced.remove(kind);
                self.relisting.insert(kind.clone(), HashSet::new());
            }
            watcher::Event::InitApply(o) => {
                let key = key_of(o);
                if let Some(listed) = self.relisting.get_mut(kind) {
                    listed.insert(key.clone());
                }
                self.upsert(key, o);
            }
            watcher::Event::InitDone => {
                let listed = self.relisting.remove(kind).unwrap_or_default();
                let gone: Vec<ObjectKey> = self
                    .members
                    .keys()
                    .filter(|k| k.api_version == kind.0 && k.kind == kind.1 && !listed.contains(*k))
                    .cloned()
                    .collect();
                for key in gone {
                    self.remove(&key);
                }
                self.synced.insert(kind.clone());
            }
            watcher::Event::Apply(o) => self.upsert(key_of(o), o),
            watcher::Event::Delete(o) => self.remove(&key_of(o)),
        }
    }

    /// The members of `set_id` of these kinds with their resourceVersions; `None` when a kind
    /// is not followed (yet).
    fn members_of(
        &self,
        set_id: &str,
        kinds: &BTreeSet<KindKey>,
    ) -> Option<Vec<(ObjectKey, String)>> {
        if !kinds.iter().all(|k| self.synced.contains(k)) {
            return None;
        }
        let Some(keys) = self.by_set.get(set_id) else {
            return Some(Vec::new());
        };
        Some(
            keys.iter()
                .filter(|k| {
                    kinds
                        .iter()
                        .any(|(av, kind)| *av == k.api_version && *kind == k.kind)
                })
                .filter_map(|k| {
                    self.members
                        .get(k)
                        .map(|m| (k.clone(), m.resource_version.clone()))
                })
                .collect(),
        )
    }
}

/// `(apiVersion, kind)` of a watched kind.
pub type KindKey = (String, String);

/// One tracked deployment.
struct Tracked {
    set_id: String,
    kinds: BTreeSet<KindKey>,
    /// resourceVersions of the objects as the agent last observed them (from its own writes
    /// or reads): a watch event carrying one of them tells nothing new.
    observed: HashSet<String>,
}

/// A drift reconcile waiting for the coalescing delay.
#[derive(Default)]
struct Pending {
    /// Scheduled whatever the events (a retry).
    forced: bool,
    /// resourceVersions of the events seen for it.
    events: Vec<String>,
}

/// More events than this for one deployment within the delay: reconcile without looking.
const MAX_PENDING_EVENTS: usize = 64;

#[derive(Default)]
struct State {
    /// Object set ID → BundleDeployment key (`namespace/name`).
    sets: HashMap<String, String>,
    /// BundleDeployment key → what it deployed.
    deployments: HashMap<String, Tracked>,
    /// Watches per kind: reserved (before the kind is resolved) or running.
    watches: HashMap<KindKey, WatchSlot>,
    /// Numbers the watches, so that only the current watch of a kind feeds the index.
    watch_serial: u64,
    /// Keys scheduled and not yet handed to the drift reconciler.
    pending: HashMap<String, Pending>,
    /// The object sets' members, from the watches.
    index: SetIndex,
    /// The agent is stopping: no new watch starts (a reconcile finishing after
    /// [`DriftTracker::shutdown`] would otherwise leave one running).
    stopped: bool,
}

/// The watch of one kind.
struct WatchSlot {
    id: u64,
    /// `None` until it is started.
    handle: Option<JoinHandle<()>>,
}

impl WatchSlot {
    fn abort(&self) {
        if let Some(h) = &self.handle {
            h.abort();
        }
    }
}

/// Tracks which kinds to watch and which BundleDeployment each object set belongs to.
#[derive(Clone)]
pub struct DriftTracker {
    state: Arc<Mutex<State>>,
    downstream: Downstream,
    delay: Duration,
    queue: mpsc::UnboundedSender<DriftRequest>,
}

/// A drift reconcile due after the coalescing delay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftRequest {
    /// The BundleDeployment (`namespace/name`).
    pub key: String,
    /// resourceVersions of the object events that asked for it; `None`: reconcile anyway.
    /// The reconcile is skipped when the agent had observed all of them (checked under the
    /// BundleDeployment's lock, after any reconcile writing those objects has recorded them).
    pub events: Option<Vec<String>>,
}

impl DriftTracker {
    /// `queue` receives the drift reconciles after the coalescing delay.
    pub fn new(
        downstream: Downstream,
        delay: Duration,
        queue: mpsc::UnboundedSender<DriftRequest>,
    ) -> Self {
        DriftTracker {
            state: Arc::default(),
            downstream,
            delay,
            queue,
        }
    }

    /// Records the object set and kinds of a deployment and starts watches for new kinds.
    /// `observed`: the resourceVersions of the deployment's live objects the status was
    /// computed from.
    pub async fn refresh(
        &self,
        bd_key: &str,
        set_id: &str,
        kinds: BTreeSet<KindKey>,
        observed: HashSet<String>,
    ) {
        // New kinds get their slot at once, so that reconciles meeting a kind at the same time
        // start one watch.
        let new_kinds: Vec<(KindKey, u64)> = {
            let Ok(mut st) = self.state.lock() else {
                return;
            };
            if st.stopped {
                return;
            }
            st.sets.insert(set_id.to_string(), bd_key.to_string());
            st.deployments.insert(
                bd_key.to_string(),
                Tracked {
                    set_id: set_id.to_string(),
                    kinds: kinds.clone(),
                    observed,
                },
            );
            let mut new_kinds = Vec::new();
            for kind in kinds {
                if !st.watches.contains_key(&kind) {
                    st.watch_serial += 1;
                    let id = st.watch_serial;
                    st.watches
                        .insert(kind.clone(), WatchSlot { id, handle: None });
                    new_kinds.push((kind, id));
                }
            }
            new_kinds
        };
        for (kind, id) in new_kinds {
            let Ok(resolved) = self.downstream.kind(&kind.0, &kind.1).await else {
                // Tried again by the next deployment of the kind.
                if let Ok(mut st) = self.state.lock()
                    && st.watches.get(&kind).is_some_and(|w| w.id == id)
                {
                    st.watches.remove(&kind);
                }
                continue;
            };
            let api: Api<SetObject> =
                Api::all_with(self.downstream.client.clone(), &resolved.resource);
            let tracker = self.clone();
            let watched = kind.clone();
            let handle = fleet_api::task::spawn(async move {
                let config = watcher::Config::default().labels(objectset::HASH_LABEL);
                let mut stream = watcher(api, config).boxed();
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(event) => tracker.watched(&watched, id, &event),
                        Err(e) => {
                            tracing::debug!(error = %e, "drift watch error");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            });
            let Ok(mut st) = self.state.lock() else {
                handle.abort();
                return;
            };
            if st.stopped {
                handle.abort();
                return;
            }
            match st.watches.get_mut(&kind) {
                Some(slot) if slot.id == id => slot.handle = Some(handle),
                // Stopped meanwhile (its deployments went away).
                _ => handle.abort(),
            }
        }
    }

    /// Forgets a deployment (deleted or paused); watches nobody needs any more are stopped.
    pub fn clear(&self, bd_key: &str) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if let Some(tracked) = st.deployments.remove(bd_key) {
            st.sets.remove(&tracked.set_id);
        }
        st.pending.remove(bd_key);
        let in_use: BTreeSet<KindKey> = st
            .deployments
            .values()
            .flat_map(|t| t.kinds.iter().cloned())
            .collect();
        let unused: Vec<KindKey> = st
            .watches
            .keys()
            .filter(|k| !in_use.contains(*k))
            .cloned()
            .collect();
        for k in unused {
            if let Some(w) = st.watches.remove(&k) {
                w.abort();
            }
            st.index.forget_kind(&k);
        }
    }

    /// Stops every watch, and keeps new ones from starting.
    pub fn shutdown(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.stopped = true;
            for (_, w) in st.watches.drain() {
                w.abort();
            }
            st.index = SetIndex::default();
        }
    }

    /// An event of the watch of `kind`: the index follows it, and a change to a member of a
    /// tracked set schedules its BundleDeployment. A (re)list may hold changes made while no
    /// watch ran; what the agent observed already is told apart by its resourceVersion.
    fn watched(&self, kind: &KindKey, watch: u64, event: &watcher::Event<SetObject>) {
        let changed = match event {
            watcher::Event::Init | watcher::Event::InitDone => None,
            watcher::Event::InitApply(o) | watcher::Event::Apply(o) | watcher::Event::Delete(o) => {
                Some(o)
            }
        };
        let key = {
            let Ok(mut st) = self.state.lock() else {
                return;
            };
            // Not the events of a watch stopped meanwhile (its kind no longer deployed).
            if st.watches.get(kind).is_some_and(|w| w.id == watch) {
                st.index.event(kind, event);
            }
            changed
                .and_then(|o| o.metadata.annotations.as_ref())
                .and_then(|a| a.get(objectset::ID_ANNOTATION))
                .and_then(|set_id| st.sets.get(set_id).cloned())
        };
        if let (Some(key), Some(obj)) = (key, changed) {
            let rv = obj.metadata.resource_version.clone().unwrap_or_default();
            tracing::trace!(bd = %key, resource_version = %rv, "deployed object changed");
            self.enqueue(&key, Some(rv));
        }
    }

    /// The live members of object set `set_id` of these kinds (key and resourceVersion), as the
    /// drift watches know them; `None` while a kind is not followed yet (list it instead).
    pub fn set_members(
        &self,
        set_id: &str,
        kinds: &BTreeSet<KindKey>,
    ) -> Option<Vec<(ObjectKey, String)>> {
        self.state.lock().ok()?.index.members_of(set_id, kinds)
    }

    /// Hands `bd_key` to the drift reconciler after the delay, once per burst.
    pub fn schedule(&self, bd_key: &str) {
        self.enqueue(bd_key, None);
    }

    /// Schedules `bd_key` for an event with resourceVersion `event` (`None`: unconditionally),
    /// once per burst.
    fn enqueue(&self, bd_key: &str, event: Option<String>) {
        {
            let Ok(mut st) = self.state.lock() else {
                return;
            };
            if st.stopped {
                return;
            }
            let first = !st.pending.contains_key(bd_key);
            let pending = st.pending.entry(bd_key.to_string()).or_default();
            match event {
                Some(rv) if !rv.is_empty() && pending.events.len() < MAX_PENDING_EVENTS => {
                    pending.events.push(rv)
                }
                _ => pending.forced = true,
            }
            if !first {
                return;
            }
        }
        let tracker = self.clone();
        let key = bd_key.to_string();
        fleet_api::task::spawn(async move {
            tokio::time::sleep(tracker.delay).await;
            let pending = {
                let Ok(mut st) = tracker.state.lock() else {
                    return;
                };
                st.pending.remove(&key).unwrap_or_default()
            };
            let events = (!pending.forced).then_some(pending.events);
            let _ = tracker.queue.send(DriftRequest { key, events });
        });
    }

    /// Whether the agent had observed every one of these object versions of `bd_key`.
    pub fn all_observed(&self, bd_key: &str, events: &[String]) -> bool {
        let Ok(st) = self.state.lock() else {
            return false;
        };
        let Some(tracked) = st.deployments.get(bd_key) else {
            return false;
        };
        events.iter().all(|rv| tracked.observed.contains(rv))
    }

    /// The kinds currently watched (for tests and diagnostics).
    pub fn watched_kinds(&self) -> Vec<KindKey> {
        self.state
            .lock()
            .map(|st| {
                st.watches
                    .iter()
                    .filter(|(_, w)| w.handle.is_some())
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

//! One watch on Clusters for the whole controller, kept in an indexed cache.
//!
//! Six reconcilers react to Clusters (registration, cluster status, cluster groups, bundle
//! targeting, agent management, import), and the Cluster status is the most frequently written
//! upstream object besides BundleDeployments (each agent checks in, each deployment change is
//! summed up). Six watches decoded every one of those writes six times; the registration
//! reconciler also listed every Cluster of the namespace on each reconcile, which made
//! registering N clusters O(N²). Like Fleet's shared informer with its `clusterByClientID`
//! index, this cache is filled by one watch and answers "the Cluster named X" and "the Clusters
//! with clientID C" from memory.
//!
//! [`SecondaryIndex`] is the pure part (an index by one derived value, kept through relists);
//! [`ClusterIndex`] wraps a kube-runtime store with that index, the watch loop and the
//! subscriptions that trigger the reconcilers.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use fleet_api::Cluster;
use futures::channel::mpsc;
use futures::{Stream, StreamExt as _, TryStreamExt as _};
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio_util::sync::CancellationToken;

use fleet_api::unmanaged::Unmanaged;

/// `(namespace, name)` of an object.
pub type ObjectKey = (String, String);

fn object_key<K: Resource>(object: &K) -> ObjectKey {
    (
        object.meta().namespace.clone().unwrap_or_default(),
        object.meta().name.clone().unwrap_or_default(),
    )
}

/// The entries of a [`SecondaryIndex`]: `(namespace, value) → names`, and each object's value.
#[derive(Debug, Default)]
struct Entries {
    names: HashMap<ObjectKey, BTreeSet<String>>,
    value_of: HashMap<ObjectKey, String>,
}

impl Entries {
    fn remove(&mut self, key: &ObjectKey) {
        let Some(value) = self.value_of.remove(key) else {
            return;
        };
        let entry = (key.0.clone(), value);
        if let Some(names) = self.names.get_mut(&entry) {
            names.remove(&key.1);
            if names.is_empty() {
                self.names.remove(&entry);
            }
        }
    }

    fn insert(&mut self, key: ObjectKey, value: Option<String>) {
        self.remove(&key);
        let Some(value) = value else { return };
        self.names
            .entry((key.0.clone(), value.clone()))
            .or_default()
            .insert(key.1.clone());
        self.value_of.insert(key, value);
    }
}

/// Objects of one kind indexed by a value derived from each (Fleet's field indexers), within
/// their namespace: fed the same watch events as the store it indexes.
pub struct SecondaryIndex<K> {
    value: fn(&K) -> Option<String>,
    current: Entries,
    /// The entries being rebuilt by a (re)list, replacing `current` when it is complete.
    relisting: Option<Entries>,
}

impl<K> std::fmt::Debug for SecondaryIndex<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondaryIndex")
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl<K: Resource> SecondaryIndex<K> {
    /// An index by `value` (objects for which it is `None` are not indexed).
    pub fn new(value: fn(&K) -> Option<String>) -> Self {
        SecondaryIndex {
            value,
            current: Entries::default(),
            relisting: None,
        }
    }

    /// Takes in one watch event, as the store does.
    pub fn apply(&mut self, event: &watcher::Event<K>) {
        match event {
            watcher::Event::Apply(object) => {
                self.current
                    .insert(object_key(object), (self.value)(object));
            }
            watcher::Event::Delete(object) => self.current.remove(&object_key(object)),
            watcher::Event::Init => self.relisting = Some(Entries::default()),
            watcher::Event::InitApply(object) => {
                let value = (self.value)(object);
                self.relisting
                    .get_or_insert_with(Entries::default)
                    .insert(object_key(object), value);
            }
            watcher::Event::InitDone => {
                self.current = self.relisting.take().unwrap_or_default();
            }
        }
    }

    /// Names of the objects in `namespace` whose value is `value`, sorted.
    pub fn names(&self, namespace: &str, value: &str) -> Vec<String> {
        self.current
            .names
            .get(&(namespace.to_string(), value.to_string()))
            .map(|names| names.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The clientID a Cluster is found by (Fleet's `clusterByClientID` index).
pub fn client_id_of(cluster: &Cluster) -> Option<String> {
    Some(cluster.spec.client_id.clone()).filter(|id| !id.is_empty())
}

/// A change seen by the cache.
#[derive(Debug, Clone)]
pub enum ClusterChange {
    /// The Cluster was created or changed (or is there at the first list).
    Applied(Arc<Cluster>),
    /// The Cluster is gone (its last known state).
    Deleted(Arc<Cluster>),
}

impl ClusterChange {
    pub fn cluster(&self) -> &Arc<Cluster> {
        match self {
            ClusterChange::Applied(c) | ClusterChange::Deleted(c) => c,
        }
    }
}

/// The controller's shared Cluster cache: a kube-runtime [`Store`] (so Cluster reconcilers
/// can run from it with `Controller::for_stream`) with an index by clientID, filled by one watch
/// ([`ClusterIndex::run`]), and subscriptions to its changes.
pub struct ClusterIndex {
    store: Store<Cluster>,
    /// The writer of `store`, taken by [`ClusterIndex::run`].
    writer: Mutex<Option<reflector::store::Writer<Cluster>>>,
    /// Locked while the store and the index take in an event, so readers see both at the same
    /// point of the watch.
    by_client_id: RwLock<SecondaryIndex<Cluster>>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<ClusterChange>>>,
    /// The highest resourceVersion the store holds everything up to: resource versions are
    /// the store's global revision (etcd's, the simulator's), so once the watch delivered an
    /// event at version `v`, every Cluster written at or before `v` is in the cache.
    seen_version: tokio::sync::watch::Sender<u64>,
    /// The highest version of a (re)list in progress, taken over when it is complete.
    listing_version: Mutex<u64>,
}

/// A resourceVersion as the number it is in etcd and the simulator.
pub fn version_of<K: Resource>(object: &K) -> Option<u64> {
    object.meta().resource_version.as_deref()?.parse().ok()
}

impl std::fmt::Debug for ClusterIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterIndex")
            .field("clusters", &self.store.len())
            .finish_non_exhaustive()
    }
}

impl ClusterIndex {
    pub fn new() -> Arc<Self> {
        let (store, writer) = reflector::store();
        Arc::new(ClusterIndex {
            store,
            writer: Mutex::new(Some(writer)),
            by_client_id: RwLock::new(SecondaryIndex::new(client_id_of)),
            subscribers: Mutex::new(Vec::new()),
            seen_version: tokio::sync::watch::Sender::new(0),
            listing_version: Mutex::new(0),
        })
    }

    /// Whether the cache has taken in every Cluster written up to resourceVersion `version`.
    pub fn has_seen(&self, version: u64) -> bool {
        *self.seen_version.borrow() >= version
    }

    /// Waits until [`ClusterIndex::has_seen`] `version`; `false` after `timeout`.
    pub async fn wait_seen(&self, version: u64, timeout: Duration) -> bool {
        let mut rx = self.seen_version.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|seen| *seen >= version))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// How many Clusters are cached.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    fn saw(&self, version: Option<u64>) {
        if let Some(version) = version {
            self.seen_version.send_if_modified(|seen| {
                let newer = version > *seen;
                if newer {
                    *seen = version;
                }
                newer
            });
        }
    }

    fn index<T>(&self, f: impl FnOnce(&SecondaryIndex<Cluster>) -> T) -> T {
        match self.by_client_id.read() {
            Ok(index) => f(&index),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// The cache as a kube-runtime store (ready once the first list is complete).
    pub fn store(&self) -> Store<Cluster> {
        self.store.clone()
    }

    /// Waits until the first list is complete; `false` if the cache's writer is gone.
    pub async fn synced(&self) -> bool {
        self.store.wait_until_ready().await.is_ok()
    }

    /// The Cluster `namespace/name`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<Cluster>> {
        self.store.get(&ObjectRef::new(name).within(namespace))
    }

    /// The Clusters in `namespace` with `spec.clientID` `client_id`, sorted by name.
    pub fn with_client_id(&self, namespace: &str, client_id: &str) -> Vec<Arc<Cluster>> {
        if client_id.is_empty() {
            return Vec::new();
        }
        self.index(|index| {
            index
                .names(namespace, client_id)
                .iter()
                .filter_map(|name| self.get(namespace, name))
                .collect()
        })
    }

    /// Every cached Cluster.
    pub fn all(&self) -> Vec<Arc<Cluster>> {
        self.store.state()
    }

    /// Every change from now on, in watch order. When the first list is already complete, the
    /// cached Clusters come first (as `Applied`), as a watch of one's own would start.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<ClusterChange> {
        let (tx, rx) = mpsc::unbounded();
        if let Ok(mut subscribers) = self.subscribers.lock() {
            // Under the subscribers' lock, so no change published meanwhile is missed (one may
            // come twice, which only triggers a reconcile twice). Before the first list the
            // store is empty, and the list's end publishes every Cluster.
            for cluster in self.store.state() {
                let _ = tx.unbounded_send(ClusterChange::Applied(cluster));
            }
            subscribers.push(tx);
        }
        rx
    }

    /// Changes of Clusters in what `relevant` extracts (and every appearance and deletion),
    /// as the Cluster changed: what a reconciler that reads only those parts needs to hear of.
    pub fn relevant_changes(
        &self,
        relevant: impl Fn(&Cluster) -> u64 + Send + 'static,
    ) -> impl Stream<Item = ClusterChange> + Send + 'static {
        let mut seen: HashMap<ObjectKey, u64> = HashMap::new();
        self.subscribe().filter(move |change| {
            let key = object_key(change.cluster().as_ref());
            let trigger = match change {
                ClusterChange::Applied(cluster) => {
                    let hash = relevant(cluster);
                    seen.insert(key, hash) != Some(hash)
                }
                ClusterChange::Deleted(_) => {
                    seen.remove(&key);
                    true
                }
            };
            futures::future::ready(trigger)
        })
    }

    /// [`ClusterIndex::relevant_changes`] as references, to trigger a Cluster reconciler
    /// (`Controller::reconcile_on`).
    pub fn relevant_refs(
        &self,
        relevant: impl Fn(&Cluster) -> u64 + Send + 'static,
    ) -> impl Stream<Item = ObjectRef<Cluster>> + Send + 'static {
        self.relevant_changes(relevant)
            .map(|change| ObjectRef::from_obj(change.cluster().as_ref()))
    }

    /// References to every changed Cluster, to trigger a Cluster reconciler that runs on every
    /// change (`Controller::reconcile_on`).
    pub fn changed_refs(&self) -> impl Stream<Item = ObjectRef<Cluster>> + Send + 'static {
        self.subscribe()
            .map(|change| ObjectRef::from_obj(change.cluster().as_ref()))
    }

    /// A Cluster reconciler over this cache: reconciles run once the first list is complete,
    /// for the Clusters its triggers (`reconcile_on`, `owns`, ...) name, read from the cache.
    pub fn controller(&self) -> kube::runtime::Controller<Cluster> {
        kube::runtime::Controller::for_stream(
            futures::stream::pending::<Result<Cluster, watcher::Error>>(),
            self.store(),
        )
    }

    fn publish(&self, changes: Vec<ClusterChange>) {
        crate::deployments::publish_to(&self.subscribers, &changes);
    }

    /// Applies one watch event to the store and the index; returns the changes to publish.
    fn take_in(
        &self,
        writer: &mut reflector::store::Writer<Cluster>,
        event: &watcher::Event<Cluster>,
    ) -> Vec<ClusterChange> {
        let mut index = match self.by_client_id.write() {
            Ok(index) => index,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut listing_version = match self.listing_version.lock() {
            Ok(v) => v,
            Err(poisoned) => poisoned.into_inner(),
        };
        let changes = match event {
            watcher::Event::InitDone => {
                let before: HashMap<ObjectRef<Cluster>, Arc<Cluster>> = self
                    .store
                    .state()
                    .into_iter()
                    .map(|c| (ObjectRef::from_obj(c.as_ref()), c))
                    .collect();
                writer.apply_watcher_event(event);
                index.apply(event);
                let after = self.store.state();
                let mut changes: Vec<ClusterChange> = Vec::new();
                let mut listed = std::collections::HashSet::new();
                for cluster in after {
                    let key = ObjectRef::from_obj(cluster.as_ref());
                    if before.get(&key).is_none_or(|old| **old != *cluster) {
                        changes.push(ClusterChange::Applied(cluster.clone()));
                    }
                    listed.insert(key);
                }
                for (key, old) in before {
                    if !listed.contains(&key) {
                        changes.push(ClusterChange::Deleted(old));
                    }
                }
                self.saw(Some(std::mem::take(&mut *listing_version)));
                changes
            }
            watcher::Event::Apply(cluster) => {
                writer.apply_watcher_event(event);
                index.apply(event);
                self.store
                    .get(&ObjectRef::from_obj(cluster))
                    .map(ClusterChange::Applied)
                    .into_iter()
                    .collect()
            }
            watcher::Event::Delete(cluster) => {
                writer.apply_watcher_event(event);
                index.apply(event);
                vec![ClusterChange::Deleted(Arc::new(cluster.clone()))]
            }
            watcher::Event::Init => {
                writer.apply_watcher_event(event);
                index.apply(event);
                *listing_version = 0;
                Vec::new()
            }
            watcher::Event::InitApply(cluster) => {
                writer.apply_watcher_event(event);
                index.apply(event);
                *listing_version = (*listing_version).max(version_of(cluster).unwrap_or(0));
                Vec::new()
            }
        };
        if let watcher::Event::Apply(cluster) | watcher::Event::Delete(cluster) = event {
            self.saw(version_of(cluster));
        }
        changes
    }

    /// Takes in `events` as if the watch delivered them (tests of code that reads the cache).
    #[cfg(test)]
    pub(crate) fn feed_for_test(&self, events: &[watcher::Event<Cluster>]) {
        let Some(mut writer) = self.writer.lock().ok().and_then(|mut w| w.take()) else {
            return;
        };
        for event in events {
            let changes = self.take_in(&mut writer, event);
            self.publish(changes);
        }
        if let Ok(mut slot) = self.writer.lock() {
            *slot = Some(writer);
        }
    }

    /// Watches every Cluster through `api` until `shutdown`, relisting after a watch error like
    /// any informer; the Clusters are decoded and kept without their managedFields. Runs once:
    /// a second call returns at once.
    pub async fn run(&self, api: Api<Unmanaged<Cluster>>, shutdown: CancellationToken) {
        let writer = self.writer.lock().ok().and_then(|mut w| w.take());
        let Some(mut writer) = writer else {
            return;
        };
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .map_ok(fleet_api::unmanaged::unwrap_event)
            .boxed();
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => break,
                event = stream.next() => event,
            };
            let Some(event) = event else { break };
            match event {
                Ok(event) => {
                    let changes = self.take_in(&mut writer, &event);
                    self.publish(changes);
                }
                Err(error) => {
                    tracing::warn!(%error, "watching Clusters failed, retrying");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::ClusterSpec;
    use kube::ResourceExt as _;

    fn cluster(name: &str, client_id: &str, version: u64) -> Cluster {
        let mut c = Cluster::new(
            name,
            ClusterSpec {
                client_id: client_id.into(),
                ..Default::default()
            },
        );
        c.metadata.namespace = Some("fleet-default".into());
        c.metadata.resource_version = Some(version.to_string());
        c
    }

    fn names(clusters: &[Arc<Cluster>]) -> Vec<String> {
        clusters
            .iter()
            .map(|c| c.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    /// A cache whose events the test feeds, as the watch would; returns what each published.
    fn fed() -> (
        Arc<ClusterIndex>,
        impl FnMut(&ClusterIndex, watcher::Event<Cluster>) -> Vec<ClusterChange>,
    ) {
        let index = ClusterIndex::new();
        let mut writer = index.writer.lock().unwrap().take().unwrap();
        (index, move |index: &ClusterIndex, event| {
            let changes = index.take_in(&mut writer, &event);
            index.publish(changes.clone());
            changes
        })
    }

    #[test]
    fn a_secondary_index_follows_changes_deletions_and_relists() {
        let mut index = SecondaryIndex::new(client_id_of);
        index.apply(&watcher::Event::Apply(cluster("a", "id-1", 1)));
        index.apply(&watcher::Event::Apply(cluster("b", "id-1", 2)));
        index.apply(&watcher::Event::Apply(cluster("c", "", 3)));
        assert_eq!(index.names("fleet-default", "id-1"), ["a", "b"]);
        assert!(index.names("other", "id-1").is_empty());
        // A changed clientID moves the Cluster; a deleted one leaves.
        index.apply(&watcher::Event::Apply(cluster("a", "id-2", 4)));
        assert_eq!(index.names("fleet-default", "id-1"), ["b"]);
        assert_eq!(index.names("fleet-default", "id-2"), ["a"]);
        index.apply(&watcher::Event::Delete(cluster("b", "id-1", 5)));
        assert!(index.names("fleet-default", "id-1").is_empty());
        // A relist keeps answering from the old entries until it is complete.
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(cluster("d", "id-1", 6)));
        assert_eq!(index.names("fleet-default", "id-2"), ["a"]);
        index.apply(&watcher::Event::InitDone);
        assert!(index.names("fleet-default", "id-2").is_empty());
        assert_eq!(index.names("fleet-default", "id-1"), ["d"]);
    }

    #[tokio::test]
    async fn finds_clusters_by_client_id_and_name_once_listed() {
        let (index, mut feed) = fed();
        feed(&index, watcher::Event::Init);
        feed(&index, watcher::Event::InitApply(cluster("b", "id-1", 3)));
        feed(&index, watcher::Event::InitApply(cluster("a", "id-1", 7)));
        let synced_soon = async |index: &ClusterIndex| {
            tokio::time::timeout(Duration::from_millis(1), index.synced())
                .await
                .unwrap_or(false)
        };
        assert!(!synced_soon(&index).await);
        assert!(index.with_client_id("fleet-default", "id-1").is_empty());
        assert!(
            !index.has_seen(1),
            "nothing is known before the list is complete"
        );
        let changes = feed(&index, watcher::Event::InitDone);
        assert_eq!(changes.len(), 2);
        assert!(synced_soon(&index).await);
        assert_eq!(
            names(&index.with_client_id("fleet-default", "id-1")),
            ["a", "b"]
        );
        assert!(index.with_client_id("fleet-default", "").is_empty());
        assert!(index.get("fleet-default", "a").is_some());
        assert!(index.has_seen(7) && !index.has_seen(8));
        feed(&index, watcher::Event::Apply(cluster("c", "id-2", 9)));
        assert!(index.has_seen(9));
        assert!(index.wait_seen(9, Duration::from_millis(1)).await);
        assert!(!index.wait_seen(10, Duration::from_millis(1)).await);
        feed(&index, watcher::Event::Delete(cluster("a", "id-1", 11)));
        assert_eq!(names(&index.with_client_id("fleet-default", "id-1")), ["b"]);
        assert!(index.has_seen(11));
    }

    #[tokio::test]
    async fn subscribers_get_the_cache_then_every_change_and_a_relist_reports_differences() {
        let (index, mut feed) = fed();
        let mut early = index.subscribe();
        feed(&index, watcher::Event::Init);
        feed(&index, watcher::Event::InitApply(cluster("a", "id-1", 1)));
        feed(&index, watcher::Event::InitApply(cluster("b", "id-2", 2)));
        feed(&index, watcher::Event::InitDone);
        let mut late = index.subscribe();
        for rx in [&mut early, &mut late] {
            let mut got = vec![
                rx.next().await.unwrap().cluster().metadata.name.clone(),
                rx.next().await.unwrap().cluster().metadata.name.clone(),
            ];
            got.sort();
            assert_eq!(got, [Some("a".to_string()), Some("b".to_string())]);
        }
        // A relist after a watch error: `a` changed, `b` is gone, `c` is new.
        feed(&index, watcher::Event::Init);
        feed(&index, watcher::Event::InitApply(cluster("a", "id-1", 5)));
        feed(&index, watcher::Event::InitApply(cluster("c", "id-3", 6)));
        let mut changes: Vec<String> = feed(&index, watcher::Event::InitDone)
            .iter()
            .map(|change| match change {
                ClusterChange::Applied(c) => format!("applied {}", c.name_any()),
                ClusterChange::Deleted(c) => format!("deleted {}", c.name_any()),
            })
            .collect();
        changes.sort();
        assert_eq!(changes, ["applied a", "applied c", "deleted b"]);
        assert!(index.get("fleet-default", "b").is_none());
    }

    #[tokio::test]
    async fn relevant_changes_skip_what_the_reconciler_does_not_read() {
        let (index, mut feed) = fed();
        let mut changes = Box::pin(
            index.relevant_changes(|c: &Cluster| crate::bundle::hash_json(&c.spec.client_id)),
        );
        feed(&index, watcher::Event::Init);
        feed(&index, watcher::Event::InitApply(cluster("a", "id-1", 1)));
        feed(&index, watcher::Event::InitDone);
        // Same clientID (only the version differs): not relevant.
        feed(&index, watcher::Event::Apply(cluster("a", "id-1", 2)));
        feed(&index, watcher::Event::Apply(cluster("a", "id-9", 3)));
        feed(&index, watcher::Event::Delete(cluster("a", "id-9", 4)));
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(match changes.next().await.unwrap() {
                ClusterChange::Applied(c) => format!("applied {}", c.spec.client_id),
                ClusterChange::Deleted(c) => format!("deleted {}", c.spec.client_id),
            });
        }
        assert_eq!(got, ["applied id-1", "applied id-9", "deleted id-9"]);
    }
}

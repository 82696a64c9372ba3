//! What the agent remembers between reconciles so that a BundleDeployment costs few round
//! trips: the Contents it fetched (content-addressed, so never stale), the Helm release
//! records it wrote or read (validated or corrected on the read path when someone else changed
//! them), and the namespaces it already ensured.
//!
//! Everything here is bounded or per deployed release, and only a hint: a miss, a failed write
//! or a 404/409 sends the caller back to reading the cluster.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use fleet_api::BundleResource;
use tokio::sync::OnceCell;

use crate::deployer::Deployed;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The resources of one manifest, shared by every BundleDeployment that deploys it.
pub type Resources = Arc<Vec<BundleResource>>;

struct ContentEntry {
    /// Filled once by the first reconcile that needs the manifest; the others wait on it.
    cell: Arc<OnceCell<Resources>>,
    bytes: usize,
    last_used: u64,
}

#[derive(Default)]
struct ContentState {
    entries: HashMap<String, ContentEntry>,
    tick: u64,
}

/// Contents by manifest ID, least recently used evicted beyond `max_entries` or `max_bytes`.
/// A Content's name is the hash of its resources, so a cached one is never out of date.
pub struct ContentCache {
    state: Mutex<ContentState>,
    max_entries: usize,
    max_bytes: usize,
}

/// Size of a manifest's resources in memory (their text), for the byte bound.
fn resources_bytes(resources: &[BundleResource]) -> usize {
    resources
        .iter()
        .map(|r| r.name.len() + r.content.len() + r.encoding.len())
        .sum()
}

impl ContentCache {
    /// A cache of at most `max_entries` manifests and `max_bytes` of resources (at least the
    /// most recent manifest is kept whatever its size).
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        ContentCache {
            state: Mutex::default(),
            max_entries: max_entries.max(1),
            max_bytes,
        }
    }

    /// The resources of manifest `id`: from the cache, or from `fetch` (run once even when
    /// several reconciles ask at the same time; a failed fetch is not cached).
    pub async fn get_or_fetch<F, Fut, E>(&self, id: &str, fetch: F) -> Result<Resources, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<BundleResource>, E>>,
    {
        let cell = {
            let mut st = lock(&self.state);
            st.tick += 1;
            let tick = st.tick;
            let entry = st
                .entries
                .entry(id.to_string())
                .or_insert_with(|| ContentEntry {
                    cell: Arc::default(),
                    bytes: 0,
                    last_used: tick,
                });
            entry.last_used = tick;
            entry.cell.clone()
        };
        if let Some(resources) = cell.get() {
            return Ok(resources.clone());
        }
        let result = cell
            .get_or_try_init(|| async { fetch().await.map(Arc::new) })
            .await
            .cloned();
        let mut st = lock(&self.state);
        match &result {
            Ok(resources) => {
                if let Some(entry) = st.entries.get_mut(id)
                    && Arc::ptr_eq(&entry.cell, &cell)
                {
                    entry.bytes = resources_bytes(resources);
                }
                self.evict(&mut st, id);
            }
            Err(_) => {
                // Not cached: the next reconcile fetches again.
                if st
                    .entries
                    .get(id)
                    .is_some_and(|e| Arc::ptr_eq(&e.cell, &cell) && e.cell.get().is_none())
                {
                    st.entries.remove(id);
                }
            }
        }
        result
    }

    /// Drops the least recently used filled entries (never `keep`, never one being fetched)
    /// until the bounds hold.
    fn evict(&self, st: &mut ContentState, keep: &str) {
        loop {
            let filled = st.entries.values().filter(|e| e.cell.get().is_some());
            let (count, bytes) = filled.fold((0usize, 0usize), |(n, b), e| (n + 1, b + e.bytes));
            if count <= self.max_entries && bytes <= self.max_bytes {
                return;
            }
            let victim = st
                .entries
                .iter()
                .filter(|(id, e)| id.as_str() != keep && e.cell.get().is_some())
                .min_by_key(|(_, e)| e.last_used)
                .map(|(id, _)| id.clone());
            match victim {
                Some(id) => {
                    st.entries.remove(&id);
                }
                None => return,
            }
        }
    }

    /// Manifests held (filled entries).
    pub fn len(&self) -> usize {
        lock(&self.state)
            .entries
            .values()
            .filter(|e| e.cell.get().is_some())
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the agent knows about one Helm release's records: every revision with its status,
/// and the deployed one decoded, with the resourceVersion of its Secret.
#[derive(Debug, Clone, Default)]
pub struct ReleaseState {
    /// `(revision, status)` of every record, ascending.
    pub records: Vec<(i64, String)>,
    /// The newest record with status `deployed`.
    pub current: Option<Arc<Deployed>>,
    /// resourceVersion of the current record's Secret, to tell whether it changed.
    pub current_resource_version: String,
}

impl ReleaseState {
    /// The state after recording `deployed` as `revision` (written by us, resourceVersion
    /// `resource_version`) and applying `history` to the older records.
    pub fn after_upgrade(
        &self,
        deployed: Arc<Deployed>,
        resource_version: String,
        history: &crate::release::HistoryPlan,
    ) -> ReleaseState {
        let revision = deployed.release.version;
        let mut records: Vec<(i64, String)> = self
            .records
            .iter()
            .filter(|(rev, _)| *rev != revision && !history.delete.contains(rev))
            .map(|(rev, status)| {
                if history.supersede.contains(rev) {
                    (*rev, crate::release::status::SUPERSEDED.to_string())
                } else {
                    (*rev, status.clone())
                }
            })
            .collect();
        records.push((revision, crate::release::status::DEPLOYED.to_string()));
        records.sort_by_key(|(rev, _)| *rev);
        ReleaseState {
            records,
            current: Some(deployed),
            current_resource_version: resource_version,
        }
    }
}

/// A release state as the cache keeps it: the deployed objects as one JSON text (a parsed
/// `serde_json::Value` tree takes several times the memory, and an agent keeps one state per
/// BundleDeployment).
struct StoredState {
    records: Vec<(i64, String)>,
    current: Option<StoredRelease>,
    current_resource_version: String,
}

/// The deployed revision as the cache keeps it.
struct StoredRelease {
    release: crate::release::Release,
    objects: Box<str>,
    record_tail: Option<Arc<crate::release::RecordTail>>,
}

/// Release states by `(namespace, name)`; one entry per release this agent deployed.
#[derive(Default)]
pub struct ReleaseCache {
    releases: Mutex<HashMap<(String, String), StoredState>>,
}

impl ReleaseCache {
    pub fn get(&self, namespace: &str, name: &str) -> Option<ReleaseState> {
        let (records, current, current_resource_version) = {
            let releases = lock(&self.releases);
            let stored = releases.get(&(namespace.to_string(), name.to_string()))?;
            (
                stored.records.clone(),
                stored.current.as_ref().map(|c| StoredRelease {
                    release: c.release.clone(),
                    objects: c.objects.clone(),
                    record_tail: c.record_tail.clone(),
                }),
                stored.current_resource_version.clone(),
            )
        };
        let current = match current {
            Some(stored) => {
                // Written by `put` from valid JSON; anything else is treated as unknown.
                let objects: Vec<serde_json::Value> = serde_json::from_str(&stored.objects).ok()?;
                Some(Arc::new(Deployed {
                    release: stored.release,
                    objects,
                    record_tail: stored.record_tail,
                }))
            }
            None => None,
        };
        Some(ReleaseState {
            records,
            current,
            current_resource_version,
        })
    }

    pub fn put(&self, namespace: &str, name: &str, state: ReleaseState) {
        let current = match &state.current {
            Some(d) => match serde_json::to_string(&d.objects) {
                Ok(json) => Some(StoredRelease {
                    release: d.release.clone(),
                    objects: json.into_boxed_str(),
                    record_tail: d.record_tail.clone(),
                }),
                Err(_) => {
                    self.forget(namespace, name);
                    return;
                }
            },
            None => None,
        };
        let stored = StoredState {
            records: state.records,
            current,
            current_resource_version: state.current_resource_version,
        };
        lock(&self.releases).insert((namespace.to_string(), name.to_string()), stored);
    }

    /// Whether the records of a release are known (without decoding its objects).
    pub fn contains(&self, namespace: &str, name: &str) -> bool {
        lock(&self.releases).contains_key(&(namespace.to_string(), name.to_string()))
    }

    /// Forgets a release: the next use reads its records from the cluster.
    pub fn forget(&self, namespace: &str, name: &str) {
        lock(&self.releases).remove(&(namespace.to_string(), name.to_string()));
    }

    pub fn len(&self) -> usize {
        lock(&self.releases).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Namespaces this agent created or found, with the labels and annotations it applied to them
/// (as a canonical JSON string): a deployment into one of them needs no request for it.
#[derive(Default)]
pub struct NamespaceCache {
    ensured: Mutex<HashMap<String, String>>,
}

impl NamespaceCache {
    /// Whether `namespace` was ensured with these labels and annotations.
    pub fn is_ensured(&self, namespace: &str, meta: &str) -> bool {
        lock(&self.ensured).get(namespace).map(String::as_str) == Some(meta)
    }

    pub fn ensured(&self, namespace: &str, meta: &str) {
        lock(&self.ensured).insert(namespace.to_string(), meta.to_string());
    }

    /// Forgets a namespace (deleted, or a write into it failed).
    pub fn forget(&self, namespace: &str) {
        lock(&self.ensured).remove(namespace);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn res(name: &str, size: usize) -> Vec<BundleResource> {
        vec![BundleResource {
            name: name.into(),
            content: "x".repeat(size),
            encoding: String::new(),
        }]
    }

    #[tokio::test]
    async fn a_manifest_is_fetched_once_even_by_concurrent_reconciles() {
        let cache = ContentCache::new(4, 1 << 20);
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            fetches.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Ok::<_, String>(res("a", 10))
        };
        let (a, b) = tokio::join!(
            cache.get_or_fetch("m1", fetch),
            cache.get_or_fetch("m1", fetch)
        );
        assert_eq!(a.unwrap(), b.unwrap());
        let again = cache.get_or_fetch("m1", fetch).await.unwrap();
        assert_eq!(again[0].name, "a");
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert_eq!(cache.len(), 1);
    }

    #[tokio::test]
    async fn a_failed_fetch_is_not_cached() {
        let cache = ContentCache::new(4, 1 << 20);
        let failed = cache
            .get_or_fetch("m1", || async { Err::<Vec<BundleResource>, _>("down") })
            .await;
        assert_eq!(failed.unwrap_err(), "down");
        assert!(cache.is_empty());
        let ok = cache
            .get_or_fetch("m1", || async { Ok::<_, &str>(res("a", 1)) })
            .await
            .unwrap();
        assert_eq!(ok.len(), 1);
    }

    #[tokio::test]
    async fn the_least_recently_used_manifest_goes_beyond_the_bounds() {
        let cache = ContentCache::new(2, 1 << 20);
        let fetches = AtomicUsize::new(0);
        let get = |id: &'static str| {
            let fetches = &fetches;
            let cache = &cache;
            async move {
                cache
                    .get_or_fetch(id, || async move {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, ()>(res(id, 1))
                    })
                    .await
                    .unwrap()
            }
        };
        get("a").await;
        get("b").await;
        get("a").await; // a is now more recent than b
        get("c").await; // evicts b
        assert_eq!(cache.len(), 2);
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
        get("a").await;
        assert_eq!(fetches.load(Ordering::SeqCst), 3, "a stayed cached");
        get("b").await;
        assert_eq!(fetches.load(Ordering::SeqCst), 4, "b was evicted");

        // The byte bound: a big manifest pushes the others out but stays itself.
        let small = ContentCache::new(8, 100);
        small
            .get_or_fetch("s", || async { Ok::<_, ()>(res("s", 60)) })
            .await
            .unwrap();
        small
            .get_or_fetch("big", || async { Ok::<_, ()>(res("big", 500)) })
            .await
            .unwrap();
        assert_eq!(small.len(), 1);
        let kept = small
            .get_or_fetch("big", || async { Err(()) })
            .await
            .unwrap();
        assert_eq!(kept[0].name, "big");
    }

    #[test]
    fn a_release_state_comes_back_as_it_was_put() {
        let cache = ReleaseCache::default();
        assert!(cache.get("ns", "app").is_none());
        let deployed = Arc::new(Deployed {
            release: crate::release::Release {
                name: "app".into(),
                namespace: "ns".into(),
                version: 2,
                manifest: "---\nkind: ConfigMap\n".into(),
                ..Default::default()
            },
            objects: vec![serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "a", "namespace": "ns"}, "data": {"n": 1.5}})],
            record_tail: None,
        });
        let before = ReleaseState {
            records: vec![(1, "superseded".into())],
            ..Default::default()
        };
        let history = crate::release::HistoryPlan {
            supersede: vec![],
            delete: vec![],
        };
        cache.put(
            "ns",
            "app",
            before.after_upgrade(deployed.clone(), "17".into(), &history),
        );
        let back = cache.get("ns", "app").unwrap();
        assert_eq!(
            back.records,
            vec![(1, "superseded".to_string()), (2, "deployed".to_string())]
        );
        assert_eq!(back.current_resource_version, "17");
        let current = back.current.unwrap();
        assert_eq!(current.objects, deployed.objects);
        assert_eq!(current.release, deployed.release);
        cache.forget("ns", "app");
        assert!(cache.is_empty());
    }

    #[test]
    fn namespaces_are_ensured_per_labels_and_annotations() {
        let cache = NamespaceCache::default();
        assert!(!cache.is_ensured("ns", "{}"));
        cache.ensured("ns", "{}");
        assert!(cache.is_ensured("ns", "{}"));
        assert!(!cache.is_ensured("ns", r#"{"labels":{"a":"b"}}"#));
        cache.forget("ns");
        assert!(!cache.is_ensured("ns", "{}"));
    }
}

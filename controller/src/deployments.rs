//! One watch on BundleDeployments for the whole controller, kept in an indexed cache.
//!
//! The bundle, cluster and GitRepo reconcilers all need "the BundleDeployments of X" on every
//! reconcile, and are triggered by every BundleDeployment change. Listing them from the API
//! server each time made a rollout quadratic (every agent status patch re-read all deployments
//! of the bundle, of the GitRepo), and three separate watches decoded every event three times.
//! Like controller-runtime's shared informer with field indexes in Fleet, this cache is filled by
//! one watch and answers those questions from memory, by index.
//!
//! [`IndexState`] is the pure part (apply, delete, relist, queries); [`DeploymentIndex`] wraps it
//! with the watch loop and the subscriptions that trigger the reconcilers.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use fleet_api::BundleDeployment;
use fleet_api::consts::{BUNDLE_LABEL, BUNDLE_NAMESPACE_LABEL, HELM_APP_LABEL, REPO_LABEL};
use futures::channel::mpsc;
use futures::{StreamExt as _, TryStreamExt as _};
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio_util::sync::CancellationToken;

use fleet_api::unmanaged::Unmanaged;

/// `(namespace, name)` of a BundleDeployment.
pub type DeploymentKey = (String, String);

/// The labels a BundleDeployment is looked up by, each together with its bundle's namespace.
const INDEXED_LABELS: [&str; 3] = [BUNDLE_LABEL, REPO_LABEL, HELM_APP_LABEL];

/// `(label, value, bundle namespace)`.
type LabelKey = (&'static str, String, String);

fn key_of(bd: &BundleDeployment) -> DeploymentKey {
    (
        bd.metadata.namespace.clone().unwrap_or_default(),
        bd.metadata.name.clone().unwrap_or_default(),
    )
}

/// Sends every item to every subscriber of a shared cache, dropping the subscribers that went
/// away.
pub(crate) fn publish_to<T: Clone>(
    subscribers: &Mutex<Vec<mpsc::UnboundedSender<T>>>,
    items: &[T],
) {
    if items.is_empty() {
        return;
    }
    if let Ok(mut subscribers) = subscribers.lock() {
        subscribers.retain(|tx| {
            items
                .iter()
                .all(|item| tx.unbounded_send(item.clone()).is_ok())
        });
    }
}

fn label_keys(bd: &BundleDeployment) -> Vec<LabelKey> {
    let Some(labels) = bd.metadata.labels.as_ref() else {
        return Vec::new();
    };
    let bundle_ns = labels
        .get(BUNDLE_NAMESPACE_LABEL)
        .cloned()
        .unwrap_or_default();
    INDEXED_LABELS
        .iter()
        .filter_map(|label| {
            labels
                .get(*label)
                .map(|value| (*label, value.clone(), bundle_ns.clone()))
        })
        .collect()
}

/// Whether `incoming` is older than `current` by resourceVersion. Kubernetes calls versions
/// opaque, but both etcd and the simulator hand out increasing integers; anything that does not
/// parse is treated as newer, so the watch always wins then.
fn is_older(incoming: &BundleDeployment, current: &BundleDeployment) -> bool {
    let version = |bd: &BundleDeployment| {
        bd.metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
    };
    matches!((version(incoming), version(current)), (Some(i), Some(c)) if i < c)
}

/// Deployments by key, sorted.
type Indexed = BTreeMap<DeploymentKey, Arc<BundleDeployment>>;

/// The cache's content and its indexes. The indexes hold the deployments themselves: a bundle
/// plan reads all of its deployments each time, and looking each one up by key was a
/// noticeable part of planning for 10,000 clusters.
#[derive(Debug, Default)]
pub struct IndexState {
    objects: HashMap<DeploymentKey, Arc<BundleDeployment>>,
    by_label: HashMap<LabelKey, Indexed>,
    by_namespace: HashMap<String, Indexed>,
}

impl IndexState {
    fn unindex(&mut self, key: &DeploymentKey, bd: &BundleDeployment) {
        for label in label_keys(bd) {
            if let Some(set) = self.by_label.get_mut(&label) {
                set.remove(key);
                if set.is_empty() {
                    self.by_label.remove(&label);
                }
            }
        }
        if let Some(set) = self.by_namespace.get_mut(&key.0) {
            set.remove(key);
            if set.is_empty() {
                self.by_namespace.remove(&key.0);
            }
        }
    }

    fn index(&mut self, key: &DeploymentKey, bd: &Arc<BundleDeployment>) {
        for label in label_keys(bd) {
            self.by_label
                .entry(label)
                .or_default()
                .insert(key.clone(), bd.clone());
        }
        self.by_namespace
            .entry(key.0.clone())
            .or_default()
            .insert(key.clone(), bd.clone());
    }

    /// Stores `bd` unless the cache already holds a newer version of it. Returns whether the
    /// cache changed.
    pub fn apply(&mut self, bd: Arc<BundleDeployment>) -> bool {
        let key = key_of(&bd);
        if let Some(current) = self.objects.get(&key).cloned() {
            if is_older(&bd, &current) || *current == *bd {
                return false;
            }
            self.unindex(&key, &current);
        }
        self.index(&key, &bd);
        self.objects.insert(key, bd);
        true
    }

    /// Forgets `bd`. Returns whether it was cached.
    pub fn delete(&mut self, bd: &BundleDeployment) -> bool {
        let key = key_of(bd);
        match self.objects.remove(&key) {
            Some(current) => {
                self.unindex(&key, &current);
                true
            }
            None => false,
        }
    }

    /// Replaces the whole content after a (re)list; returns the objects that changed or
    /// disappeared, so their reconcilers can look again.
    pub fn replace(&mut self, listed: Vec<Arc<BundleDeployment>>) -> Vec<Arc<BundleDeployment>> {
        let mut fresh = IndexState::default();
        let mut changed = Vec::new();
        for bd in listed {
            let key = key_of(&bd);
            if self.objects.get(&key).is_none_or(|old| **old != *bd) {
                changed.push(bd.clone());
            }
            fresh.index(&key, &bd);
            fresh.objects.insert(key, bd);
        }
        for (key, old) in &self.objects {
            if !fresh.objects.contains_key(key) {
                changed.push(old.clone());
            }
        }
        *self = fresh;
        changed
    }

    /// The BundleDeployments labelled `label=value` whose bundle lives in `bundle_namespace`,
    /// sorted by namespace and name. `label` is one of [`BUNDLE_LABEL`], [`REPO_LABEL`] and
    /// [`HELM_APP_LABEL`]; any other label finds nothing.
    pub fn labelled(
        &self,
        label: &str,
        value: &str,
        bundle_namespace: &str,
    ) -> Vec<Arc<BundleDeployment>> {
        let Some(label) = INDEXED_LABELS.iter().find(|l| **l == label) else {
            return Vec::new();
        };
        self.by_label
            .get(&(*label, value.to_string(), bundle_namespace.to_string()))
            .map(|indexed| indexed.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The BundleDeployments in `namespace` (a cluster's namespace), sorted by name.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<BundleDeployment>> {
        self.by_namespace
            .get(namespace)
            .map(|indexed| indexed.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every cached BundleDeployment.
    pub fn all(&self) -> Vec<Arc<BundleDeployment>> {
        self.objects.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// The controller's shared BundleDeployment cache. Create it once, [`subscribe`] every
/// reconciler that reacts to deployment changes, then drive it with [`run`].
///
/// [`subscribe`]: DeploymentIndex::subscribe
/// [`run`]: DeploymentIndex::run
#[derive(Debug)]
pub struct DeploymentIndex {
    state: RwLock<IndexState>,
    synced: tokio::sync::watch::Sender<bool>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Arc<BundleDeployment>>>>,
    /// Subscribers that also hear of this controller's own writes ([`observe_written`]).
    ///
    /// [`observe_written`]: DeploymentIndex::observe_written
    write_subscribers: Mutex<Vec<mpsc::UnboundedSender<Arc<BundleDeployment>>>>,
}

impl Default for DeploymentIndex {
    fn default() -> Self {
        DeploymentIndex {
            state: RwLock::new(IndexState::default()),
            synced: tokio::sync::watch::Sender::new(false),
            subscribers: Mutex::new(Vec::new()),
            write_subscribers: Mutex::new(Vec::new()),
        }
    }
}

impl DeploymentIndex {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn read<T>(&self, f: impl FnOnce(&IndexState) -> T) -> T {
        match self.state.read() {
            Ok(state) => f(&state),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn write<T>(&self, f: impl FnOnce(&mut IndexState) -> T) -> T {
        match self.state.write() {
            Ok(mut state) => f(&mut state),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Every change the watch delivers from now on (the deleted object for a deletion), in
    /// watch order. A deployment this controller wrote ([`observe_written`]) is not heard of
    /// until someone else changes it: its writer knows it already.
    ///
    /// [`observe_written`]: DeploymentIndex::observe_written
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Arc<BundleDeployment>> {
        let (tx, rx) = mpsc::unbounded();
        if let Ok(mut subscribers) = self.subscribers.lock() {
            subscribers.push(tx);
        }
        rx
    }

    /// [`subscribe`] and this controller's own writes as well, when they change the cache: a
    /// reconciler aggregating deployments (a Cluster's or GitRepo's status) must count a new
    /// one, whose watch event finds the cache holding it already and so publishes nothing.
    ///
    /// [`subscribe`]: DeploymentIndex::subscribe
    pub fn subscribe_with_own_writes(&self) -> mpsc::UnboundedReceiver<Arc<BundleDeployment>> {
        let (tx, rx) = mpsc::unbounded();
        if let Ok(mut subscribers) = self.write_subscribers.lock() {
            subscribers.push(tx);
        }
        rx
    }

    fn publish(&self, changed: &[Arc<BundleDeployment>]) {
        publish_to(&self.subscribers, changed);
        publish_to(&self.write_subscribers, changed);
    }

    /// Waits until the first list is complete; `false` if the cache's writer is gone.
    pub async fn synced(&self) -> bool {
        let mut rx = self.synced.subscribe();
        rx.wait_for(|synced| *synced).await.is_ok()
    }

    /// [`DeploymentIndex::synced`], `false` after `timeout`.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.synced())
            .await
            .unwrap_or(false)
    }

    /// Records what the API server returned for a write of this controller, so that the next
    /// reconcile sees it even before the watch delivers it (and does not write it again).
    pub fn observe_written(&self, bd: BundleDeployment) {
        // As the watch delivers it, so that the same version is not taken for a change.
        let bd = Arc::new(fleet_api::unmanaged::without_managed_fields(bd));
        if self.write(|state| state.apply(bd.clone())) {
            publish_to(&self.write_subscribers, &[bd]);
        }
    }

    /// See [`IndexState::labelled`].
    pub fn labelled(
        &self,
        label: &str,
        value: &str,
        bundle_namespace: &str,
    ) -> Vec<Arc<BundleDeployment>> {
        self.read(|state| state.labelled(label, value, bundle_namespace))
    }

    /// See [`IndexState::in_namespace`].
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<BundleDeployment>> {
        self.read(|state| state.in_namespace(namespace))
    }

    /// See [`IndexState::all`].
    pub fn all(&self) -> Vec<Arc<BundleDeployment>> {
        self.read(IndexState::all)
    }

    /// Watches every BundleDeployment through `api` until `shutdown`, relisting after a watch
    /// error like any informer. The objects are decoded and kept without their managedFields.
    pub async fn run(&self, api: Api<Unmanaged<BundleDeployment>>, shutdown: CancellationToken) {
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .map_ok(fleet_api::unmanaged::unwrap_event)
            .boxed();
        let mut relisted: Vec<Arc<BundleDeployment>> = Vec::new();
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => break,
                event = stream.next() => event,
            };
            let Some(event) = event else { break };
            match event {
                Ok(watcher::Event::Init) => relisted.clear(),
                Ok(watcher::Event::InitApply(bd)) => relisted.push(Arc::new(bd)),
                Ok(watcher::Event::InitDone) => {
                    let listed = std::mem::take(&mut relisted);
                    let changed = self.write(|state| state.replace(listed));
                    self.synced.send_replace(true);
                    self.publish(&changed);
                }
                Ok(watcher::Event::Apply(bd)) => {
                    let bd = Arc::new(bd);
                    if self.write(|state| state.apply(bd.clone())) {
                        self.publish(&[bd]);
                    }
                }
                Ok(watcher::Event::Delete(bd)) => {
                    self.write(|state| state.delete(&bd));
                    self.publish(&[Arc::new(bd)]);
                }
                Err(error) => {
                    tracing::warn!(%error, "watching BundleDeployments failed, retrying");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn bd(ns: &str, bundle: &str, repo: &str, rv: &str) -> Arc<BundleDeployment> {
        let mut bd = BundleDeployment::new(bundle, Default::default());
        bd.metadata.namespace = Some(ns.into());
        bd.metadata.resource_version = Some(rv.into());
        bd.metadata.labels = Some(BTreeMap::from([
            (BUNDLE_LABEL.to_string(), bundle.to_string()),
            (
                BUNDLE_NAMESPACE_LABEL.to_string(),
                "fleet-default".to_string(),
            ),
            (REPO_LABEL.to_string(), repo.to_string()),
        ]));
        Arc::new(bd)
    }

    fn names(list: &[Arc<BundleDeployment>]) -> Vec<String> {
        list.iter()
            .map(|bd| {
                format!(
                    "{}/{}",
                    bd.metadata.namespace.as_deref().unwrap_or(""),
                    bd.metadata.name.as_deref().unwrap_or("")
                )
            })
            .collect()
    }

    #[test]
    fn looks_up_by_bundle_repo_and_cluster_namespace() {
        let mut state = IndexState::default();
        state.apply(bd("cluster-a", "app", "repo", "1"));
        state.apply(bd("cluster-b", "app", "repo", "2"));
        state.apply(bd("cluster-a", "db", "repo", "3"));
        state.apply(bd("cluster-a", "other", "elsewhere", "4"));
        assert_eq!(
            names(&state.labelled(BUNDLE_LABEL, "app", "fleet-default")),
            ["cluster-a/app", "cluster-b/app"]
        );
        assert_eq!(
            names(&state.labelled(REPO_LABEL, "repo", "fleet-default")),
            ["cluster-a/app", "cluster-a/db", "cluster-b/app"]
        );
        assert!(state.labelled(BUNDLE_LABEL, "app", "other-ns").is_empty());
        assert!(
            state
                .labelled("unindexed", "app", "fleet-default")
                .is_empty()
        );
        assert_eq!(
            names(&state.in_namespace("cluster-a")),
            ["cluster-a/app", "cluster-a/db", "cluster-a/other"]
        );
    }

    #[test]
    fn a_relabelled_deployment_moves_between_indexes() {
        let mut state = IndexState::default();
        state.apply(bd("cluster-a", "app", "repo", "1"));
        state.apply(bd("cluster-a", "app", "moved", "2"));
        assert!(
            state
                .labelled(REPO_LABEL, "repo", "fleet-default")
                .is_empty()
        );
        assert_eq!(
            state.labelled(REPO_LABEL, "moved", "fleet-default").len(),
            1
        );
        assert!(state.delete(&bd("cluster-a", "app", "moved", "3")));
        assert!(state.is_empty());
        assert!(
            state
                .labelled(REPO_LABEL, "moved", "fleet-default")
                .is_empty()
        );
        assert!(state.in_namespace("cluster-a").is_empty());
    }

    #[test]
    fn an_older_event_does_not_replace_the_controllers_own_write() {
        let mut state = IndexState::default();
        // The controller's write came back with version 7 before the watch delivered 5.
        assert!(state.apply(bd("cluster-a", "app", "repo", "7")));
        assert!(!state.apply(bd("cluster-a", "app", "old", "5")));
        assert_eq!(state.labelled(REPO_LABEL, "repo", "fleet-default").len(), 1);
        // The same version again is no change either; a newer one is.
        assert!(!state.apply(bd("cluster-a", "app", "repo", "7")));
        assert!(state.apply(bd("cluster-a", "app", "repo", "8")));
    }

    #[test]
    fn a_relist_reports_what_changed_and_what_disappeared() {
        let mut state = IndexState::default();
        state.apply(bd("cluster-a", "app", "repo", "1"));
        state.apply(bd("cluster-b", "app", "repo", "2"));
        state.apply(bd("cluster-c", "app", "repo", "3"));
        let changed = state.replace(vec![
            bd("cluster-a", "app", "repo", "1"),
            bd("cluster-b", "app", "repo", "9"),
        ]);
        let mut changed = names(&changed);
        changed.sort();
        assert_eq!(changed, ["cluster-b/app", "cluster-c/app"]);
        assert_eq!(state.len(), 2);
        assert!(state.in_namespace("cluster-c").is_empty());
    }

    #[tokio::test]
    async fn own_writes_reach_only_the_subscribers_that_count_them() {
        let index = DeploymentIndex::new();
        let mut aggregator = index.subscribe_with_own_writes();
        let mut writer = index.subscribe();
        let written = bd("cluster-a", "app", "repo", "4");
        index.observe_written((*written).clone());
        let got = aggregator.next().await.expect("the new deployment");
        assert_eq!(got.metadata.resource_version.as_deref(), Some("4"));
        // The same write again (its watch event comes back the same) changes nothing.
        index.observe_written((*written).clone());
        index.publish(&[bd("cluster-a", "app", "repo", "5")]);
        let got = aggregator.next().await.expect("someone else's change");
        assert_eq!(got.metadata.resource_version.as_deref(), Some("5"));
        let got = writer.next().await.expect("someone else's change");
        assert_eq!(
            got.metadata.resource_version.as_deref(),
            Some("5"),
            "the writer does not hear of its own write"
        );
    }

    #[tokio::test]
    async fn subscribers_hear_of_changes_and_closed_ones_are_dropped() {
        let index = DeploymentIndex::new();
        let mut rx = index.subscribe();
        let dropped = index.subscribe();
        drop(dropped);
        index.publish(&[bd("cluster-a", "app", "repo", "1")]);
        let got = rx.next().await.expect("an event");
        assert_eq!(got.metadata.namespace.as_deref(), Some("cluster-a"));
        assert_eq!(index.subscribers.lock().map(|s| s.len()).unwrap_or(0), 1);
    }
}

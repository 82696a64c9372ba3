//! Drift detection (Fleet's `driftdetect`): one watch per deployed kind in the downstream
//! cluster, restricted to objects carrying an object set label. A change to an object of a
//! BundleDeployment's set schedules that BundleDeployment for the drift reconciler after a
//! delay, so a burst of changes costs one reconcile.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use fleet_api::consts::objectset;

use crate::downstream::Downstream;

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
    /// Running watches per kind.
    watches: HashMap<KindKey, JoinHandle<()>>,
    /// Keys scheduled and not yet handed to the drift reconciler.
    pending: HashMap<String, Pending>,
    /// The agent is stopping: no new watch starts (a reconcile finishing after
    /// [`DriftTracker::shutdown`] would otherwise leave one running).
    stopped: bool,
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
        let new_kinds: Vec<KindKey> = {
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
            kinds
                .into_iter()
                .filter(|k| !st.watches.contains_key(k))
                .collect()
        };
        for kind in new_kinds {
            let Ok(resolved) = self.downstream.kind(&kind.0, &kind.1).await else {
                continue;
            };
            let api: Api<DynamicObject> =
                Api::all_with(self.downstream.client.clone(), &resolved.resource);
            let tracker = self.clone();
            let handle = tokio::spawn(async move {
                let config = watcher::Config::default().labels(objectset::HASH_LABEL);
                let mut stream = watcher(api, config).boxed();
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(watcher::Event::Init) | Ok(watcher::Event::InitDone) => {}
                        // A (re)list may hold changes made while no watch ran; what the
                        // agent observed already is told apart by its resourceVersion.
                        Ok(watcher::Event::InitApply(obj))
                        | Ok(watcher::Event::Apply(obj))
                        | Ok(watcher::Event::Delete(obj)) => {
                            tracker.object_changed(&obj);
                        }
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
            match st.watches.entry(kind) {
                std::collections::hash_map::Entry::Occupied(_) => handle.abort(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(handle);
                }
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
            if let Some(h) = st.watches.remove(&k) {
                h.abort();
            }
        }
    }

    /// Stops every watch, and keeps new ones from starting.
    pub fn shutdown(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.stopped = true;
            for (_, h) in st.watches.drain() {
                h.abort();
            }
        }
    }

    fn object_changed(&self, obj: &DynamicObject) {
        let Some(set_id) = obj
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(objectset::ID_ANNOTATION))
        else {
            return;
        };
        let key = {
            let Ok(st) = self.state.lock() else {
                return;
            };
            st.sets.get(set_id).cloned()
        };
        if let Some(key) = key {
            let rv = obj.metadata.resource_version.clone().unwrap_or_default();
            tracing::trace!(bd = %key, resource_version = %rv, "deployed object changed");
            self.enqueue(&key, Some(rv));
        }
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
        tokio::spawn(async move {
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
            .map(|st| st.watches.keys().cloned().collect())
            .unwrap_or_default()
    }
}

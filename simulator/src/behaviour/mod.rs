//! Simulated cluster behaviour, configured by data (kwok-style stages).
//!
//! A real cluster runs controllers (deployment, statefulset, daemonset, job, the scheduler, the
//! kubelet) that react to object changes and write status. The simulator has none of those; instead
//! [`ClusterBehaviour`] is told about every change to every object of one cluster and answers with
//! the writes those controllers would make, each at the simulated time it would happen.
//!
//! How long things take and what goes wrong is data: a [`Profile`] of rules in the style of kwok's
//! `Stage` resources (a selector, a delay with jitter, and an outcome). Randomness comes from a seed,
//! so the same seed and the same sequence of changes produce the same timeline.
//!
//! # Contract with the object store (the "core")
//! - Call [`ClusterBehaviour::on_change`] for **every** change of every object in the cluster,
//!   including the changes caused by applying actions this module returned: controllers here are
//!   level-triggered and chain their steps through those changes (a pod turning Ready is what makes
//!   the Deployment status update).
//! - Apply each [`ScheduledAction`] once its `at` is due (`at` may equal `now`: apply promptly).
//! - [`Action::UpdateStatus`] replaces `.status` wholesale (like `PUT …/status`). Skip it when the
//!   object no longer exists, or when `expected_generation` is `Some(g)` and the object's
//!   `metadata.generation` differs. Skip it too (no resourceVersion bump, no watch event) when the
//!   status is unchanged.
//! - [`Action::Create`] creates the object as given (a 409 because it already exists is dropped
//!   silently). One special kind: a `v1` `Binding` (see [`binding_target`]) is what the scheduler
//!   posts to `pods/<name>/binding`; apply it by setting the pod's `spec.nodeName`.
//! - [`Action::Delete`] is the kubelet's final delete: grace period 0 (finalizers still apply).
//!   Missing objects are ignored.
//! - [`Action::Patch`] is a JSON merge patch of the main resource (spec and metadata; the
//!   generation bumps when the spec changes). Skip it when the object is gone or its uid is not
//!   `expected_uid`.
//! - [`ClusterBehaviour::initial_objects`] are created once when the cluster starts (the nodes).
//! - `now` is the time since cluster start; build the behaviour with [`ClusterBehaviour::with_clock`]
//!   and [`WallClock::starting_at`] the wall-clock instant that `now` counts from, so timestamps in
//!   status line up with `creationTimestamp`s. Feed changes in commit order: with the same seed,
//!   the same changes give the same actions.
//! - A profile may carry a [`FaultPlan`](crate::faults::FaultPlan) in `faults`; it is the cluster's
//!   default fault plan.
//!
//! # What is simulated
//! - Nodes from the profile, Ready; nodes created later turn Ready after `nodeReadyAfter`.
//! - The scheduler check ([`schedule_pod`]): cordons, taints/tolerations (NoSchedule/NoExecute,
//!   Equal/Exists, empty key), nodeSelector, required node affinity, cpu/memory/pod-count fit;
//!   pods that fit nowhere stay Pending with `PodScheduled=False reason=Unschedulable` and
//!   kube-scheduler's message, and are retried when nodes change or capacity frees up.
//!   NoExecute taints evict pods that do not tolerate them.
//! - The kubelet: `ContainerCreating`, then per container Ready / NeverReady / CrashLoopBackOff
//!   (restart counts with the kubelet's back-off) / ImagePullBackOff, after the profile's delays;
//!   Job pods exit 0 after `completeAfter`; terminating pods are deleted after `deleteAfter`.
//! - Controllers: Deployment (owns one ReplicaSet per pod template, `<name>-<pod-template-hash>`,
//!   with revision annotations; rolling update with maxSurge/maxUnavailable scales the new
//!   ReplicaSet up and the old ones down, Recreate, pause, minReadySeconds, progress deadline,
//!   revisionHistoryLimit), ReplicaSet (owns the pods), StatefulSet (OrderedReady/Parallel, rolling update
//!   from the highest ordinal, revisions), DaemonSet (one pod per eligible node, rolling update),
//!   Job (parallelism, completions, backoffLimit, suspend, ttlSecondsAfterFinished), the
//!   LoadBalancer ingress of Services, and PersistentVolumeClaims turning Bound.

mod clock;
mod duration;
mod events;
mod kubelet;
mod naming;
mod nodes;
mod objects;
mod profile;
mod quantity;
mod scheduler;
mod selector;
mod workloads;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

pub use clock::WallClock;
pub(crate) use duration::option_duration as option_duration_serde;
pub use duration::{Delay, DurationParseError, format_duration, parse_duration};
pub use nodes::{KUBELET_VERSION, node_object};
pub use profile::{
    EXAMPLE_PROFILE, JobRules, NodeTemplate, Pattern, PodOutcome, PodRule, PodSelector, Profile,
    ProfileError, SchedulerRules, Taint, TaintEffect, TerminationRules,
};
pub use scheduler::{Feasibility, NodeUsage, pod_requests, schedule_pod, usage_by_node};
pub(crate) use workloads::WATCHED_RESOURCES;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One change of one object in the store, as a watch event would report it.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectChange {
    pub kind: ChangeKind,
    /// e.g. `apps/v1`, `v1`.
    pub api_version: String,
    /// e.g. `Deployment`.
    pub kind_name: String,
    pub namespace: Option<String>,
    pub name: String,
    /// The object after the change (for `Deleted`: its last state).
    pub object: Value,
}

/// Read access to the cluster's current objects (after the change being reported).
pub trait ObjectView {
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value>;
    /// All objects of a kind; `namespace: None` lists across all namespaces.
    fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value>;
}

/// A write to make once the simulated clock reaches `at` (time since cluster start).
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledAction {
    pub at: Duration,
    pub action: Action,
}

/// A write a simulated controller makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    UpdateStatus {
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
        status: Value,
        expected_generation: Option<i64>,
    },
    Create {
        object: Value,
    },
    Delete {
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
    },
    /// A JSON merge patch of the main resource, as a controller's spec or metadata write (the
    /// Deployment controller scaling its ReplicaSets, annotating revisions).
    Patch {
        api_version: String,
        kind: String,
        namespace: Option<String>,
        name: String,
        patch: Value,
        /// Skip the patch unless the object still has this uid (it was not deleted and remade).
        expected_uid: Option<String>,
    },
}

/// If `object` is a `v1` `Binding` (the scheduler's `pods/<name>/binding` request), the pod's
/// namespace, the pod's name and the node it is bound to.
pub fn binding_target(object: &Value) -> Option<(Option<String>, String, String)> {
    if object.get("apiVersion").and_then(Value::as_str) != Some("v1")
        || object.get("kind").and_then(Value::as_str) != Some("Binding")
    {
        return None;
    }
    let metadata = object.get("metadata")?;
    let namespace = metadata
        .get("namespace")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let pod = metadata.get("name").and_then(Value::as_str)?.to_owned();
    let node = object
        .get("target")?
        .get("name")
        .and_then(Value::as_str)?
        .to_owned();
    Some((namespace, pod, node))
}

/// The simulated controllers of one cluster: scheduler, kubelet, and the workload controllers.
#[derive(Debug)]
pub struct ClusterBehaviour {
    /// Shared by every cluster that runs the same profile: its compiled patterns (and their
    /// match caches) are made once, not once per cluster.
    profile: Arc<Profile>,
    seed: u64,
    clock: WallClock,
    /// Sequential randomness (generated names); per-object randomness is derived from `seed` and
    /// the object's name instead, so it does not depend on event order.
    rng: ChaCha8Rng,
    state: workloads::ControllerState,
    kubelet: kubelet::KubeletState,
    node_index: HashMap<String, usize>,
}

impl ClusterBehaviour {
    pub fn new(profile: Profile, seed: u64) -> Self {
        Self::shared(Arc::new(profile), seed)
    }

    /// [`ClusterBehaviour::new`] with a profile other clusters run too.
    pub fn shared(profile: Arc<Profile>, seed: u64) -> Self {
        Self::with_shared_clock(profile, seed, WallClock::starting_now())
    }

    /// Like [`ClusterBehaviour::new`], with the wall-clock time of cluster start given, so the
    /// timestamps written into status are reproducible too.
    pub fn with_clock(profile: Profile, seed: u64, clock: WallClock) -> Self {
        Self::with_shared_clock(Arc::new(profile), seed, clock)
    }

    fn with_shared_clock(profile: Arc<Profile>, seed: u64, clock: WallClock) -> Self {
        let node_index = profile
            .node_names()
            .into_iter()
            .enumerate()
            .map(|(index, name)| (name, index))
            .collect();
        Self {
            profile,
            seed,
            clock,
            rng: ChaCha8Rng::seed_from_u64(seed),
            state: workloads::ControllerState::default(),
            kubelet: kubelet::KubeletState::default(),
            node_index,
        }
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The profile, as shared with other clusters.
    pub fn shared_profile(&self) -> &Arc<Profile> {
        &self.profile
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The wall-clock origin that `now` values are added to when writing timestamps.
    pub fn clock(&self) -> &WallClock {
        &self.clock
    }

    /// Objects to create when the cluster starts: one Node per node of the profile, Ready.
    pub fn initial_objects(&self) -> Vec<Value> {
        self.profile.nodes_at(self.clock.origin())
    }

    /// React to one change; returns the writes the simulated controllers make in response.
    pub fn on_change(
        &mut self,
        now: Duration,
        change: &ObjectChange,
        view: &dyn ObjectView,
    ) -> Vec<ScheduledAction> {
        let mut ctx = Ctx {
            now,
            profile: &self.profile,
            seed: self.seed,
            clock: &self.clock,
            rng: &mut self.rng,
            node_index: &self.node_index,
            view,
            actions: Vec::new(),
            nodes: None,
            usage: None,
        };
        let mut typed_change;
        let change = if change.object.get("apiVersion").is_none_or(Value::is_null)
            || change.object.get("kind").is_none_or(Value::is_null)
        {
            typed_change = change.clone();
            typed(
                &mut typed_change.object,
                &change.api_version,
                &change.kind_name,
            );
            &typed_change
        } else {
            change
        };
        workloads::dispatch(&mut ctx, &mut self.state, &mut self.kubelet, change);
        let mut actions = ctx.actions;
        // Stable sort: actions due at the same time keep the order they were decided in.
        actions.sort_by_key(|action| action.at);
        actions
    }
}

/// Stores may omit `apiVersion`/`kind` in stored objects; the controllers need them.
fn typed(object: &mut Value, api_version: &str, kind: &str) {
    if !object.is_object() {
        return;
    }
    if object.get("apiVersion").is_none_or(Value::is_null) {
        object["apiVersion"] = Value::String(api_version.to_owned());
    }
    if object.get("kind").is_none_or(Value::is_null) {
        object["kind"] = Value::String(kind.to_owned());
    }
}

/// Everything a simulated controller needs while handling one change.
pub(crate) struct Ctx<'a> {
    pub now: Duration,
    pub profile: &'a Profile,
    pub seed: u64,
    pub clock: &'a WallClock,
    pub rng: &'a mut ChaCha8Rng,
    pub node_index: &'a HashMap<String, usize>,
    pub view: &'a dyn ObjectView,
    pub actions: Vec<ScheduledAction>,
    nodes: Option<Vec<Value>>,
    usage: Option<HashMap<String, scheduler::NodeUsage>>,
}

impl Ctx<'_> {
    pub fn push(&mut self, at: Duration, action: Action) {
        self.actions.push(ScheduledAction {
            at: at.max(self.now),
            action,
        });
    }

    pub fn timestamp(&self, at: Duration) -> String {
        self.clock.timestamp(at)
    }

    /// Randomness for one decision about one object: the same seed, object and purpose always
    /// draw the same values, whatever order events arrive in.
    pub fn object_rng(&self, purpose: &str, namespace: Option<&str>, name: &str) -> ChaCha8Rng {
        let key = format!("{purpose}/{}/{name}", namespace.unwrap_or(""));
        ChaCha8Rng::seed_from_u64(self.seed ^ naming::fnv64a(key.as_bytes()))
    }

    /// One object from the view, with `apiVersion` and `kind` filled in if the store left them out.
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let mut object = self.view.get(api_version, kind, namespace, name)?;
        typed(&mut object, api_version, kind);
        Some(object)
    }

    /// Objects of a kind from the view, typed like [`Ctx::get`] and sorted by namespace and name
    /// so that decisions (and the random draws they make) do not depend on the store's order.
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let mut objects = self.view.list(api_version, kind, namespace);
        for object in &mut objects {
            typed(object, api_version, kind);
        }
        objects.sort_by(|a, b| {
            (objects::namespace(a), objects::name(a))
                .cmp(&(objects::namespace(b), objects::name(b)))
        });
        objects
    }

    /// The cluster's nodes, sorted by name (listed once per change).
    pub fn nodes(&mut self) -> &[Value] {
        if self.nodes.is_none() {
            self.nodes = Some(self.list("v1", "Node", None));
        }
        self.nodes.as_deref().unwrap_or_default()
    }

    /// Resources in use per node, including pods placed earlier while handling this change.
    pub fn usage(&mut self) -> &mut HashMap<String, scheduler::NodeUsage> {
        let view = self.view;
        self.usage
            .get_or_insert_with(|| scheduler::usage_by_node(&view.list("v1", "Pod", None)))
    }

    /// The index of a node (stable addresses): profile order, or a hash for nodes added later.
    pub fn node_number(&self, node: &str) -> usize {
        self.node_index.get(node).copied().unwrap_or_else(|| {
            let hashed = usize::try_from(naming::fnv64a(node.as_bytes()) % 10_000).unwrap_or(0);
            self.node_index.len() + hashed
        })
    }
}

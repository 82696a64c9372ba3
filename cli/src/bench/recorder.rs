//! Per-object timestamps of one benchmark run, taken from watches on the upstream cluster:
//! when each Bundle and BundleDeployment first appeared and when each BundleDeployment became
//! Ready at a given deployment ID. Stages are computed from these afterwards, so the
//! measurement adds no work to the controller or the agents beyond one more watcher.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleet_api::state::BundleState;
use fleet_api::{Bundle, BundleDeployment};
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tokio_util::sync::CancellationToken;

/// The parts of a BundleDeployment the recorder reads. Its watch sees every write of every
/// deployment (twice per deployment and change); decoding them whole (options, Helm values,
/// managedFields) was most of the bench's own CPU during a rollout, taken from the fleet it
/// measures. Everything else in an event is skipped while parsing.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(from = "WatchedDeploymentWire")]
pub struct WatchedDeployment {
    metadata: kube::api::ObjectMeta,
    /// Only the fields [`BundleDeployment::state`] reads.
    deployment: BundleDeployment,
}

#[derive(serde::Deserialize)]
struct WatchedDeploymentWire {
    #[serde(default)]
    metadata: WatchedMeta,
    #[serde(default)]
    spec: WatchedSpec,
    #[serde(default)]
    status: Option<WatchedStatus>,
}

#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WatchedMeta {
    name: Option<String>,
    namespace: Option<String>,
    resource_version: Option<String>,
    labels: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Default, serde::Deserialize)]
struct WatchedSpec {
    #[serde(rename = "deploymentID", default)]
    deployment_id: Option<String>,
    #[serde(rename = "stagedDeploymentID", default)]
    staged_deployment_id: Option<String>,
}

#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WatchedStatus {
    #[serde(rename = "appliedDeploymentID", default)]
    applied_deployment_id: Option<String>,
    #[serde(default)]
    ready: Option<bool>,
    #[serde(default)]
    non_modified: Option<bool>,
    #[serde(default)]
    conditions: Option<Vec<WatchedCondition>>,
}

#[derive(serde::Deserialize)]
struct WatchedCondition {
    #[serde(rename = "type", default)]
    type_: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

impl From<WatchedDeploymentWire> for WatchedDeployment {
    fn from(wire: WatchedDeploymentWire) -> Self {
        let metadata = kube::api::ObjectMeta {
            name: wire.metadata.name,
            namespace: wire.metadata.namespace,
            resource_version: wire.metadata.resource_version,
            labels: wire.metadata.labels,
            ..Default::default()
        };
        let mut deployment = BundleDeployment::new(
            metadata.name.as_deref().unwrap_or_default(),
            fleet_api::BundleDeploymentSpec {
                deployment_id: wire.spec.deployment_id.unwrap_or_default(),
                staged_deployment_id: wire.spec.staged_deployment_id.unwrap_or_default(),
                ..Default::default()
            },
        );
        deployment.status = wire.status.map(|s| fleet_api::BundleDeploymentStatus {
            applied_deployment_id: s.applied_deployment_id.unwrap_or_default(),
            ready: s.ready.unwrap_or_default(),
            non_modified: s.non_modified.unwrap_or_default(),
            conditions: s
                .conditions
                .unwrap_or_default()
                .into_iter()
                .map(|c| fleet_api::GenericCondition {
                    type_: c.type_.unwrap_or_default(),
                    status: c.status.unwrap_or_default(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        });
        WatchedDeployment {
            metadata,
            deployment,
        }
    }
}

impl kube::Resource for WatchedDeployment {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(dt: &()) -> std::borrow::Cow<'_, str> {
        BundleDeployment::kind(dt)
    }
    fn group(dt: &()) -> std::borrow::Cow<'_, str> {
        BundleDeployment::group(dt)
    }
    fn version(dt: &()) -> std::borrow::Cow<'_, str> {
        BundleDeployment::version(dt)
    }
    fn plural(dt: &()) -> std::borrow::Cow<'_, str> {
        BundleDeployment::plural(dt)
    }
    fn meta(&self) -> &kube::api::ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut kube::api::ObjectMeta {
        &mut self.metadata
    }
}

/// What was seen of one BundleDeployment.
#[derive(Debug, Clone, Default)]
pub struct BdTimes {
    /// Offset from the start of the run when the BD was first seen.
    pub created: Option<Duration>,
    /// The bundle (`namespace/name`) the BD belongs to.
    pub bundle: String,
    /// deploymentID → offset when the BD was first Ready at it.
    pub ready: HashMap<String, Duration>,
    /// deploymentID → offset when the controller first wrote it into the spec.
    pub deployed: HashMap<String, Duration>,
    /// The deploymentID currently in the spec.
    pub deployment_id: String,
}

impl BdTimes {
    /// Ready at the deploymentID currently in its spec.
    fn is_ready_now(&self) -> bool {
        self.ready.contains_key(&self.deployment_id)
    }
}

#[derive(Debug, Default)]
pub struct Observations {
    /// `namespace/name` → offset when the Bundle was first seen.
    pub bundles: HashMap<String, Duration>,
    /// `namespace/name` → generation → offset when the Bundle was first seen at it.
    pub bundle_generations: HashMap<String, std::collections::BTreeMap<i64, Duration>>,
    /// `namespace/name` → what was seen of the BD.
    pub bundle_deployments: HashMap<String, BdTimes>,
    /// How many of `bundle_deployments` have been Ready at their current deploymentID, kept
    /// as they change: counting them on every look at the progress was a scan of every
    /// deployment, taken from the fleet being measured.
    ready_now: usize,
}

impl Observations {
    pub fn ready_at(&self, deployment_ids: &dyn Fn(&str) -> bool) -> usize {
        self.bundle_deployments
            .values()
            .filter(|bd| bd.ready.keys().any(|id| deployment_ids(id)))
            .count()
    }
}

/// Bundles and BundleDeployments of the benchmark's GitRepos (`bench-N`); the controller's
/// own bundles, such as each cluster's `fleet-agent-<cluster>`, are not measured.
pub(super) fn is_benchmark_object(meta: &kube::api::ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(fleet_api::consts::REPO_LABEL))
        .is_some_and(|repo| repo.starts_with(super::GITREPO_PREFIX))
}

/// Watches Bundles and BundleDeployments of the whole upstream cluster and records times.
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    observations: Arc<Mutex<Observations>>,
}

impl Recorder {
    pub fn new(start: Instant) -> Self {
        Recorder {
            start,
            observations: Arc::new(Mutex::new(Observations::default())),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Observations) -> T) -> T {
        let mut guard = match self.observations.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// A copy of what was recorded so far.
    pub fn snapshot<T>(&self, f: impl FnOnce(&Observations) -> T) -> T {
        self.with(|o| f(o))
    }

    /// BundleDeployments seen so far, and how many of them are Ready at their current
    /// deploymentID.
    pub fn progress(&self) -> (usize, usize, usize) {
        self.with(|o| (o.bundles.len(), o.bundle_deployments.len(), o.ready_now))
    }

    /// Starts both watches on `runtime` (default: the caller's), their time charged to
    /// `account` when given; they run until `stop` is cancelled. On the runtime the fleet
    /// runs on, an event wakes a task among its tasks; on a runtime of its own, each event
    /// woke a parked thread, which took more of the two cores than recording it.
    pub fn spawn(
        &self,
        client: kube::Client,
        stop: CancellationToken,
        runtime: Option<&tokio::runtime::Handle>,
        account: Option<&Arc<fleet_api::task::CpuAccount>>,
    ) {
        let bundles: Api<Bundle> = Api::all(client.clone());
        let recorder = self.clone();
        let token = stop.clone();
        crate::system::spawn_on(runtime, account, async move {
            let stream = watcher(bundles, watcher::Config::default())
                .take_until(token.cancelled_owned())
                .boxed();
            stream
                .for_each(|event| {
                    if let Ok(event) = event {
                        recorder.on_bundle_event(event);
                    }
                    async {}
                })
                .await;
        });
        let bds: Api<WatchedDeployment> = Api::all(client);
        let recorder = self.clone();
        crate::system::spawn_on(runtime, account, async move {
            let stream = watcher(bds, watcher::Config::default())
                .take_until(stop.cancelled_owned())
                .boxed();
            stream
                .for_each(|event| {
                    if let Ok(event) = event {
                        recorder.on_bd_event(event);
                    }
                    async {}
                })
                .await;
        });
    }

    fn on_bundle_event(&self, event: watcher::Event<Bundle>) {
        let now = self.start.elapsed();
        if let watcher::Event::Apply(b) | watcher::Event::InitApply(b) = event {
            if !is_benchmark_object(b.meta()) {
                return;
            }
            let key = format!("{}/{}", b.namespace().unwrap_or_default(), b.name_any());
            let generation = b.meta().generation.unwrap_or_default();
            self.with(|o| {
                o.bundles.entry(key.clone()).or_insert(now);
                o.bundle_generations
                    .entry(key)
                    .or_default()
                    .entry(generation)
                    .or_insert(now);
            });
        }
    }

    fn on_bd_event(&self, event: watcher::Event<WatchedDeployment>) {
        let now = self.start.elapsed();
        if let watcher::Event::Apply(bd) | watcher::Event::InitApply(bd) = event {
            if !is_benchmark_object(bd.meta()) {
                return;
            }
            let key = format!("{}/{}", bd.namespace().unwrap_or_default(), bd.name_any());
            let label = |name: &str| {
                bd.meta()
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(name))
                    .map(String::as_str)
                    .unwrap_or_default()
            };
            let bundle = format!(
                "{}/{}",
                label(fleet_api::consts::BUNDLE_NAMESPACE_LABEL),
                label(fleet_api::consts::BUNDLE_LABEL)
            );
            let ready = bd.deployment.state() == BundleState::Ready;
            let deployment_id = bd.deployment.spec.deployment_id.clone();
            self.with(|o| {
                let times = o.bundle_deployments.entry(key).or_default();
                let was_ready = times.is_ready_now();
                times.created.get_or_insert(now);
                times.bundle = bundle;
                times.deployed.entry(deployment_id.clone()).or_insert(now);
                if ready {
                    times.ready.entry(deployment_id.clone()).or_insert(now);
                }
                times.deployment_id = deployment_id;
                let is_ready = times.is_ready_now();
                if is_ready && !was_ready {
                    o.ready_now += 1;
                } else if was_ready && !is_ready {
                    o.ready_now -= 1;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(id: &str, applied: &str, ready: bool) -> WatchedDeployment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "fleet.cattle.io/v1alpha1",
            "kind": "BundleDeployment",
            "metadata": {
                "name": "app",
                "namespace": "cluster-a",
                "labels": {
                    fleet_api::consts::REPO_LABEL: format!("{}0", super::super::GITREPO_PREFIX),
                    fleet_api::consts::BUNDLE_LABEL: "app",
                    fleet_api::consts::BUNDLE_NAMESPACE_LABEL: "fleet-default",
                },
            },
            "spec": {"deploymentID": id, "stagedDeploymentID": id},
            "status": {"appliedDeploymentID": applied, "ready": ready, "nonModified": true},
        }))
        .expect("a valid BundleDeployment")
    }

    #[test]
    fn a_watched_deployment_has_the_state_of_the_whole_one() {
        let whole = |id: &str, applied: &str, ready: bool, deployed: &str| -> serde_json::Value {
            serde_json::json!({
                "apiVersion": "fleet.cattle.io/v1alpha1",
                "kind": "BundleDeployment",
                "metadata": {
                    "name": "app", "namespace": "cluster-a", "resourceVersion": "7",
                    "labels": {"a": "b"},
                    "managedFields": [{"manager": "fleet-agent", "operation": "Update",
                        "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}}],
                },
                "spec": {"deploymentID": id, "stagedDeploymentID": "s:2",
                    "options": {"helm": {"values": {"replicas": 3}}}},
                "status": {"appliedDeploymentID": applied, "ready": ready, "nonModified": true,
                    "conditions": [{"type": "Deployed", "status": deployed, "message": "m"}]},
            })
        };
        for (id, applied, ready, deployed) in [
            ("s:1", "s:1", true, "True"),
            ("s:2", "s:2", true, "True"),
            ("s:2", "s:2", false, "True"),
            ("s:2", "s:1", true, "True"),
            ("s:2", "s:1", true, "False"),
        ] {
            let json = whole(id, applied, ready, deployed);
            let full: BundleDeployment = serde_json::from_value(json.clone()).expect("whole");
            let watched: WatchedDeployment = serde_json::from_value(json).expect("watched");
            assert_eq!(
                watched.deployment.state(),
                full.state(),
                "{id} {applied} {ready} {deployed}"
            );
            assert_eq!(watched.meta().resource_version.as_deref(), Some("7"));
            assert_eq!(watched.meta().namespace.as_deref(), Some("cluster-a"));
            assert_eq!(watched.meta().labels, full.metadata.labels);
        }
    }

    #[test]
    fn progress_counts_deployments_ready_at_their_current_id() {
        let recorder = Recorder::new(Instant::now());
        let seen = |bd| recorder.on_bd_event(watcher::Event::Apply(bd));
        seen(deployment("v1", "", false));
        assert_eq!(recorder.progress(), (0, 1, 0));
        seen(deployment("v1", "v1", true));
        assert_eq!(recorder.progress(), (0, 1, 1));
        seen(deployment("v1", "v1", true));
        assert_eq!(recorder.progress(), (0, 1, 1), "seen again: counted once");
        seen(deployment("v2", "v1", true));
        assert_eq!(recorder.progress(), (0, 1, 0), "updated, not applied yet");
        seen(deployment("v2", "v2", true));
        assert_eq!(recorder.progress(), (0, 1, 1));
        seen(deployment("v1", "v1", true));
        assert_eq!(
            recorder.progress(),
            (0, 1, 1),
            "back at an id it was Ready at before"
        );
    }
}

//! The bundle reconciler (Fleet's `reconciler/bundle_controller.go`): turns each Bundle into a
//! `Content` holding its manifest and one BundleDeployment per target cluster, promotes staged
//! deployments under the rollout strategy, deletes the deployments of clusters no longer
//! targeted (and all of them when the bundle is deleted), and writes the bundle status.
//!
//! [`plan_bundle`] is the pure decision; [`run`] is the kube-runtime controller around it.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash as _, Hasher as _};
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleet_api::consts::{BUNDLE_FINALIZER, BUNDLE_LABEL, BUNDLE_NAMESPACE_LABEL, condition};
use fleet_api::{
    Bundle, BundleDeployment, BundleNamespaceMapping, BundleStatus, Cluster, ClusterGroup, Content,
};
use futures::{Stream, StreamExt as _};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config as RuntimeConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Resource as _, ResourceExt as _};
use tokio_util::sync::CancellationToken;

use crate::Context;
use crate::deployments::DeploymentIndex;
use crate::rollout::{DeploymentFacts, deployment_facts, plan_rollout_changes_with};
use crate::summary::{display_state, ready_ratio, set_condition, set_ready_condition};
use crate::target::{NamespaceIndex, ResolvedTargets, namespaces_for_bundle, resolve_targets};
use crate::throttle::{ReconcileThrottle, ScheduledReconciles, StatusWriteThrottle};

/// Field manager of the controller's server-side applies.
pub const FIELD_MANAGER: &str = "fleet-controller";

/// How many BundleDeployment writes of one plan are in flight at once.
const CONCURRENT_DEPLOYMENT_WRITES: usize = 8;

/// Why the bundle controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

/// Why one reconcile of a bundle failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{action} for bundle {bundle}: {source}")]
    Kube {
        action: String,
        bundle: String,
        #[source]
        source: kube::Error,
    },
    #[error("bundle {bundle}: caches of related objects are not ready")]
    NotReady { bundle: String },
    #[error("bundle {bundle}: {failures} of its writes failed, see the log")]
    PartialFailure { bundle: String, failures: usize },
}

/// The objects related to one bundle, as observed.
#[derive(Debug, Default)]
pub struct BundleObservation<'a> {
    pub clusters: Vec<&'a Cluster>,
    pub groups: Vec<&'a ClusterGroup>,
    pub mappings: Vec<&'a BundleNamespaceMapping>,
    pub namespaces: Vec<&'a Namespace>,
    /// The existing BundleDeployments of this bundle (by its bundle labels).
    pub deployments: Vec<&'a BundleDeployment>,
}

/// What to write for one bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct BundlePlan {
    /// Name of the Content holding the manifest.
    pub manifest_id: String,
    /// The Content to make sure exists (only when the bundle has targets, like Fleet).
    pub content: Option<Content>,
    /// BundleDeployments to create or update (only those that differ from the observed ones).
    pub apply: Vec<BundleDeployment>,
    /// `(namespace, name)` of BundleDeployments to delete: their cluster is no longer targeted.
    pub delete: Vec<(String, String)>,
    /// The complete desired status.
    pub status: BundleStatus,
    /// Whether `status` differs from the observed one.
    pub status_changed: bool,
    /// What the bundle's next plan over the same targeting takes over from this one.
    pub carry_over: PlanCarryOver,
}

/// What a plan of a bundle leaves to its next plan over the same targeting
/// ([`plan_resolved_bundle`]): with Fleet's `maxNew` of 50, a first rollout to 10,000
/// clusters is 200 plans of each bundle, and each read every deployment of the bundle again.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanCarryOver {
    /// What the plan read from each target's deployment.
    facts: Vec<DeploymentFacts>,
    /// Which targets have each deployment namespace (`None`: the targeting failed).
    namespaces: Option<Arc<NamespaceIndex>>,
}

fn key_of(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    )
}

/// Builds the Content of a manifest: gzip of the manifest JSON, named by its ID.
pub fn content_for(bundle: &Bundle) -> Content {
    let json = fleet_bundle::manifest::manifest_json(&bundle.spec.resources);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(&json);
    let gz = encoder.finish().unwrap_or_default();
    Content {
        metadata: ObjectMeta {
            name: Some(fleet_bundle::manifest::manifest_id(&bundle.spec.resources)),
            ..Default::default()
        },
        content: Some(ByteString(gz)),
        sha256sum: fleet_bundle::manifest::manifest_sha256(&bundle.spec.resources),
    }
}

/// What the plans of a bundle share while neither the bundle (uid, generation, labels) nor
/// what targeting reads changes: its Content and where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleTargeting {
    pub content: Content,
    /// The targets, or why the bundle's targets cannot be evaluated.
    pub resolved: Result<ResolvedTargets, String>,
}

/// Builds the [`BundleTargeting`] of `bundle` from the observed clusters, groups, mappings
/// and namespaces (its deployments are not looked at).
pub fn resolve_bundle(bundle: &Bundle, observed: &BundleObservation<'_>) -> BundleTargeting {
    resolve_bundle_with_content(bundle, content_for(bundle), observed)
}

/// [`resolve_bundle`] with the bundle's Content made already ([`content_for`]).
pub fn resolve_bundle_with_content(
    bundle: &Bundle,
    content: Content,
    observed: &BundleObservation<'_>,
) -> BundleTargeting {
    let manifest_id = content.metadata.name.clone().unwrap_or_default();
    let namespaces = namespaces_for_bundle(
        bundle,
        observed.mappings.iter().copied(),
        &observed.namespaces,
    );
    let resolved = resolve_targets(
        bundle,
        &manifest_id,
        &namespaces,
        observed.clusters.iter().copied(),
        &observed.groups,
    )
    .map_err(|e| e.to_string());
    BundleTargeting { content, resolved }
}

/// The pure decision of the bundle reconciler: targets, rollout, deployments to write and
/// delete, and the bundle status (Ready condition, summary, display, partitions...).
/// `now` (RFC 3339) stamps changed conditions.
pub fn plan_bundle(bundle: &Bundle, observed: &BundleObservation<'_>, now: &str) -> BundlePlan {
    plan_resolved_bundle(
        bundle,
        &resolve_bundle(bundle, observed),
        &observed.deployments,
        None,
        now,
    )
}

/// [`plan_bundle`] with the bundle's targeting resolved already (it is cached across plans),
/// given the bundle's existing `deployments`. Its cost is linear in the targets, but only
/// the deployments that change are built: a plan runs after every few deployment changes.
///
/// `previous` is the [`BundlePlan::carry_over`] of the bundle's last plan over this very
/// targeting, whose deployments the caller kept alive: the deployments that are still those
/// objects are not read again.
pub fn plan_resolved_bundle(
    bundle: &Bundle,
    resolved: &BundleTargeting,
    deployments: &[&BundleDeployment],
    previous: Option<&PlanCarryOver>,
    now: &str,
) -> BundlePlan {
    let content = &resolved.content;
    let manifest_id = content.metadata.name.clone().unwrap_or_default();
    let old_status = bundle.status.clone().unwrap_or_default();

    let mut errors: Vec<String> = Vec::new();
    let mut namespaces = None;
    let targeting = match &resolved.resolved {
        Ok(targets) => {
            let index = previous
                .and_then(|p| p.namespaces.clone())
                .unwrap_or_else(|| Arc::new(targets.namespace_index()));
            let targeting = targets.with_deployments_indexed(deployments, &index);
            namespaces = Some(index);
            targeting
        }
        Err(e) => {
            errors.push(e.clone());
            Default::default()
        }
    };
    errors.extend(targeting.errors.iter().map(ToString::to_string));

    let mut status = BundleStatus {
        conditions: old_status.conditions.clone(),
        resource_key: old_status.resource_key.clone(),
        oci_reference: old_status.oci_reference.clone(),
        ..Default::default()
    };
    let mut apply = Vec::new();
    // The deployments of clusters no longer targeted go, unless the rollout strategy is
    // invalid (every deployment is kept as it is) or targeting failed for their cluster (a
    // template error must not undeploy what runs there).
    let mut delete_unmatched = true;
    let facts = deployment_facts(
        bundle,
        &targeting.targets,
        previous.map_or(&[][..], |p| &p.facts),
    );
    match plan_rollout_changes_with(bundle, &targeting.targets, &facts) {
        Ok(rollout) => {
            let conditions = std::mem::take(&mut status.conditions);
            status = BundleStatus {
                conditions,
                resource_key: status.resource_key,
                oci_reference: status.oci_reference,
                ..rollout.status
            };
            apply = rollout.deployments;
        }
        Err(e) => {
            errors.push(format!("rollout strategy: {e}"));
            delete_unmatched = false;
        }
    }
    let failed_namespaces: HashSet<&str> = targeting
        .errors
        .iter()
        .map(|error| error.deployment_namespace.as_str())
        .filter(|ns| !ns.is_empty())
        .collect();
    let delete = targeting
        .unmatched
        .iter()
        .filter(|bd| {
            delete_unmatched
                && bd.metadata.deletion_timestamp.is_none()
                && !failed_namespaces.contains(bd.metadata.namespace.as_deref().unwrap_or(""))
        })
        .map(|bd| {
            (
                bd.metadata.namespace.clone().unwrap_or_default(),
                bd.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect();

    if errors.is_empty() {
        set_ready_condition(&mut status.conditions, "Cluster", &status.summary, now);
    } else {
        let message = format!("Targeting error: {}", errors.join("; "));
        set_condition(
            &mut status.conditions,
            condition::READY,
            false,
            "Error",
            &message,
            now,
        );
    }
    status.display.ready_clusters = ready_ratio(status.summary.ready, status.summary.desired_ready);
    status.display.state = display_state(&status.summary);
    status.observed_generation = bundle.metadata.generation.unwrap_or_default();
    status.resources_sha256_sum = content.sha256sum.clone();
    let status_changed = status != old_status;
    let has_targets = !targeting.targets.is_empty();
    BundlePlan {
        manifest_id,
        content: has_targets.then(|| content.clone()),
        apply,
        delete,
        status,
        status_changed,
        carry_over: PlanCarryOver { facts, namespaces },
    }
}

/// The manifest IDs a deployment refers to (current and staged).
fn manifest_ids_of(bd: &BundleDeployment) -> impl Iterator<Item = &str> {
    [&bd.spec.deployment_id, &bd.spec.staged_deployment_id]
        .into_iter()
        .filter_map(|id| id.split(':').next())
        .filter(|id| !id.is_empty())
}

/// Contents to garbage-collect: not referenced by any deployment nor being the current
/// manifest of a bundle, and older than `grace` (a Content is written before the deployments
/// that refer to it, so a young one may simply not be referenced *yet*).
pub fn contents_to_delete(
    contents: &[Content],
    referenced: &HashSet<String>,
    now: k8s_openapi::jiff::Timestamp,
    grace: Duration,
) -> Vec<String> {
    let grace = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
    contents
        .iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .filter_map(|c| {
            let name = c.metadata.name.as_ref()?;
            if referenced.contains(name) {
                return None;
            }
            let created = c.metadata.creation_timestamp.as_ref().map(|t| t.0)?;
            (now.as_second().saturating_sub(created.as_second()) >= grace).then(|| name.clone())
        })
        .collect()
}

/// A hash of the parts of an object that matter to someone watching it.
pub(crate) fn hash_json<T: serde::Serialize>(value: &T) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(value)
        .unwrap_or_default()
        .hash(&mut hasher);
    hasher.finish()
}

/// How many related changes that are ready at once trigger one pass over every object.
pub(crate) const COALESCED_CHANGES: usize = 1024;

/// Watches `api` into a store and yields `()` whenever an object appears, disappears, or
/// changes in what `relevant` extracts (and once when the initial list is complete).
pub(crate) fn watch_relevant<K, F>(
    api: Api<K>,
    relevant: F,
) -> (Store<K>, impl Stream<Item = ()> + Send + 'static)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    F: Fn(&K) -> u64 + Send + 'static,
{
    let (store, writer) = reflector::store();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .filter_map(move |event| {
            let trigger = match event {
                Ok(watcher::Event::Apply(obj)) | Ok(watcher::Event::InitApply(obj)) => {
                    let key = key_of(obj.meta());
                    let hash = relevant(&obj);
                    seen.insert(key, hash) != Some(hash)
                }
                Ok(watcher::Event::Delete(obj)) => {
                    seen.remove(&key_of(obj.meta()));
                    true
                }
                Ok(watcher::Event::InitDone) => true,
                Ok(watcher::Event::Init) => false,
                Err(error) => {
                    tracing::warn!(%error, "watch failed, retrying");
                    false
                }
            };
            futures::future::ready(trigger.then_some(()))
        });
    (store, stream)
}

/// A bundle's targeting as cached between plans, with what its last plan under this
/// targeting carries over to the next: a new targeting (other targets, or the same ones in
/// another order) starts without it.
struct CachedTargeting {
    /// Hash of the bundle's uid, generation and labels and the targeting epoch.
    inputs: u64,
    /// Hash of the bundle's uid and generation: what its Content depends on.
    content_key: u64,
    targeting: Arc<BundleTargeting>,
    /// Taken out for a plan and put back after it (a bundle is planned by one worker at a
    /// time).
    carried: Option<CarriedPlan>,
}

/// A bundle's last plan's [`PlanCarryOver`].
struct CarriedPlan {
    /// The deployments its facts were read from, kept alive: no other deployment is
    /// allocated at an address the facts name.
    _deployments: Vec<Arc<BundleDeployment>>,
    carry_over: PlanCarryOver,
}

/// The bundle reconciler's state: caches of the related kinds.
struct BundleContext {
    /// This term's stop: the caches fed by this reconciler's watches end with it.
    shutdown: CancellationToken,
    ctx: Arc<Context>,
    clusters: Store<Cluster>,
    groups: Store<ClusterGroup>,
    mappings: Store<BundleNamespaceMapping>,
    namespaces: Store<Namespace>,
    /// Contents known to exist, so that each reconcile does not read them again.
    known_contents: Mutex<HashSet<String>>,
    /// Current manifest ID of each bundle (`ns/name`), protected from garbage collection.
    manifests: Mutex<HashMap<String, String>>,
    /// Spaces each Bundle's status writes while its deployments change.
    status_throttle: StatusWriteThrottle,
    /// The controller's BundleDeployment cache.
    deployments: Arc<DeploymentIndex>,
    /// Counts changes of the related kinds that can change the targeting of any bundle
    /// (groups, mappings).
    targeting_epoch: AtomicU64,
    /// Counts, per bundle, the Cluster and Namespace changes that can change its targeting.
    bundle_epochs: Mutex<HashMap<String, u64>>,
    /// Spaces re-plans that only follow BundleDeployment status changes.
    plan_throttle: ReconcileThrottle,
    /// Each bundle's targeting with the hash of what it was resolved from (bundle uid,
    /// generation, labels and the targeting epoch), and its last plan's carry-over.
    targeting: Mutex<HashMap<String, CachedTargeting>>,
    /// Bundles whose re-plan waits for the interval: their deployments' changes meanwhile
    /// need no reconcile of their own.
    scheduled: ScheduledReconciles,
}

impl BundleContext {
    async fn ready(&self) -> bool {
        let ready = async {
            self.clusters.wait_until_ready().await.is_ok()
                && self.groups.wait_until_ready().await.is_ok()
                && self.mappings.wait_until_ready().await.is_ok()
                && self.namespaces.wait_until_ready().await.is_ok()
                && self.deployments.synced().await
        };
        crate::ready_unless_stopped(&self.shutdown, Duration::from_secs(60), ready).await
    }

    /// How many Cluster changes that can change its targeting bundle `key` has seen.
    fn bundle_epoch(&self, key: &str) -> u64 {
        self.bundle_epochs
            .lock()
            .ok()
            .and_then(|epochs| epochs.get(key).copied())
            .unwrap_or_default()
    }

    /// Counts a Cluster change that can change the targeting of the bundles `keys`.
    fn retarget(&self, keys: impl Iterator<Item = String>) {
        if let Ok(mut epochs) = self.bundle_epochs.lock() {
            for key in keys {
                *epochs.entry(key).or_default() += 1;
            }
        }
    }

    /// The targeting of bundle `key` for `inputs` (see [`BundleContext::targeting`]), resolved
    /// now from the caches when the cached one is for other inputs, and the carry-over of the
    /// last plan under it, taken out until [`BundleContext::carry_over`] puts the next back.
    fn targeting_of(
        &self,
        key: &str,
        inputs: u64,
        bundle: &Bundle,
    ) -> (Arc<BundleTargeting>, Option<CarriedPlan>) {
        // The Content (the gzipped manifest) changes only with the bundle's spec: a cluster
        // registering re-targets bundles, it does not change what they hold.
        let content_key = hash_json(&(&bundle.metadata.uid, bundle.metadata.generation));
        let mut content = None;
        if let Ok(mut cache) = self.targeting.lock()
            && let Some(cached) = cache.get_mut(key)
        {
            if cached.inputs == inputs {
                return (cached.targeting.clone(), cached.carried.take());
            }
            if cached.content_key == content_key {
                content = Some(cached.targeting.content.clone());
            }
        }
        let content = content.unwrap_or_else(|| content_for(bundle));
        let targeting = Arc::new(self.resolve(bundle, content));
        if let Ok(mut cache) = self.targeting.lock() {
            cache.insert(
                key.to_string(),
                CachedTargeting {
                    inputs,
                    content_key,
                    targeting: targeting.clone(),
                    carried: None,
                },
            );
        }
        (targeting, None)
    }

    /// Keeps what bundle `key`'s plan under the targeting for `inputs` carries over to its
    /// next plan; dropped when the cached targeting is no longer for those inputs.
    fn carry_over(&self, key: &str, inputs: u64, carried: CarriedPlan) {
        if let Ok(mut cache) = self.targeting.lock()
            && let Some(cached) = cache.get_mut(key)
            && cached.inputs == inputs
        {
            cached.carried = Some(carried);
        }
    }

    /// [`resolve_bundle`] over the cached clusters, groups, mappings and namespaces.
    fn resolve(&self, bundle: &Bundle, content: Content) -> BundleTargeting {
        let groups = self.groups.state();
        let mappings = self.mappings.state();
        let namespaces = self.namespaces.state();
        let clusters = match crate::target::named_clusters(bundle) {
            // A bundle whose every target names its cluster (each cluster's agent bundle) can
            // only go to those: look them up instead of copying and scanning the whole fleet,
            // which made each wave of registrations O(clusters²) at 10,000 clusters.
            Some(names) => {
                let namespace_refs: Vec<&Namespace> =
                    namespaces.iter().map(AsRef::as_ref).collect();
                let bundle_namespaces = crate::target::namespaces_for_bundle(
                    bundle,
                    mappings.iter().map(AsRef::as_ref),
                    &namespace_refs,
                );
                bundle_namespaces
                    .iter()
                    .flat_map(|cluster_ns| {
                        names.iter().filter_map(move |cluster_name| {
                            self.clusters
                                .get(&ObjectRef::new(cluster_name).within(cluster_ns))
                        })
                    })
                    .collect()
            }
            None => self.clusters.state(),
        };
        let observed = BundleObservation {
            clusters: clusters.iter().map(AsRef::as_ref).collect(),
            groups: groups.iter().map(AsRef::as_ref).collect(),
            mappings: mappings.iter().map(AsRef::as_ref).collect(),
            namespaces: namespaces.iter().map(AsRef::as_ref).collect(),
            deployments: Vec::new(),
        };
        resolve_bundle_with_content(bundle, content, &observed)
    }

    /// The BundleDeployments of a bundle from the cache. A reconcile triggered by a
    /// deployment's change runs after the cache took that change in, so the rollout counts at
    /// least what the trigger reported.
    fn deployments_of(&self, namespace: &str, name: &str) -> Vec<Arc<BundleDeployment>> {
        self.deployments.labelled(BUNDLE_LABEL, name, namespace)
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn apply_bundle(bundle: Arc<Bundle>, bctx: &BundleContext) -> Result<Action, ReconcileError> {
    let ns = bundle.namespace().unwrap_or_default();
    let name = bundle.name_any();
    let key = format!("{ns}/{name}");
    // The epoch is read before the stores (read only when the targeting is resolved again):
    // the stores are then at least as new as it, so a targeting cached under it is never
    // older than what it stands for.
    let epoch = bctx.targeting_epoch.load(Ordering::Relaxed);
    // Only deployment statuses changed since a recent plan that left nothing undone: plan
    // again once the interval is over, with every change since. Nothing that grows with the
    // fleet is looked at before this: it runs on every deployment change of the bundle.
    let inputs = hash_json(&(
        &bundle.metadata.uid,
        bundle.metadata.generation,
        &bundle.metadata.labels,
        epoch,
        bctx.bundle_epoch(&key),
    ));
    let started = std::time::Instant::now();
    if let Some(wait) = bctx.plan_throttle.wait(&key, inputs, started) {
        bctx.scheduled.schedule(&key, started + wait);
        return Ok(Action::requeue(wait));
    }
    let deployments = bctx.deployments_of(&ns, &name);
    let deployment_refs: Vec<&BundleDeployment> = deployments.iter().map(AsRef::as_ref).collect();
    let (resolved, previous) = bctx.targeting_of(&key, inputs, &bundle);
    let mut plan = plan_resolved_bundle(
        &bundle,
        &resolved,
        &deployment_refs,
        previous.as_ref().map(|p| &p.carry_over),
        &now_rfc3339(),
    );
    // Only now: the previous plan's deployments were alive until this plan had read them.
    drop(previous);
    drop(deployment_refs);
    bctx.carry_over(
        &key,
        inputs,
        CarriedPlan {
            _deployments: deployments,
            carry_over: std::mem::take(&mut plan.carry_over),
        },
    );
    // What the spacing of plans budgets is the controller's time spent planning: the writes
    // that follow wait on the API server (an update's plan writes 10,000 deployments, and
    // counting that held the bundle's status back for the whole rollout).
    let plan_cost = started.elapsed();
    if let Ok(mut manifests) = bctx.manifests.lock() {
        manifests.insert(key.clone(), plan.manifest_id.clone());
    }
    let client = bctx.ctx.client.clone();
    let kube_err = |action: String| {
        let bundle = key.clone();
        move |source| ReconcileError::Kube {
            action,
            bundle,
            source,
        }
    };

    if let Some(content) = &plan.content {
        ensure_content(&client, bctx, content)
            .await
            .map_err(kube_err(format!("writing Content {}", plan.manifest_id)))?;
    }

    // Independent writes (one per cluster namespace), a few at a time: a plan writes up to
    // `maxNew` new deployments, and one after the other they were a chain of round trips.
    let writes: Vec<_> = plan
        .apply
        .iter()
        .map(|bd| {
            let bd_ns = bd.metadata.namespace.clone().unwrap_or_default();
            let api: Api<BundleDeployment> = Api::namespaced(client.clone(), &bd_ns);
            let name = name.clone();
            async move {
                let result = api
                    .patch(
                        &name,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(bd),
                    )
                    .await;
                (bd_ns, result)
            }
        })
        .collect();
    let mut failures = futures::stream::iter(writes)
        .buffer_unordered(CONCURRENT_DEPLOYMENT_WRITES)
        .fold(0usize, |failures, (bd_ns, result)| {
            let failed = match result {
                Ok(written) => {
                    bctx.deployments.observe_written(written);
                    false
                }
                Err(error) => {
                    tracing::warn!(bundle = %key, namespace = %bd_ns, %error, "writing BundleDeployment failed");
                    true
                }
            };
            futures::future::ready(failures + usize::from(failed))
        })
        .await;
    for (bd_ns, bd_name) in &plan.delete {
        let api: Api<BundleDeployment> = Api::namespaced(client.clone(), bd_ns);
        match api.delete(bd_name, &DeleteParams::default()).await {
            Ok(_) => {
                tracing::info!(bundle = %key, namespace = %bd_ns, "deleted BundleDeployment of a cluster no longer targeted")
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(error) => {
                failures += 1;
                tracing::warn!(bundle = %key, namespace = %bd_ns, %error, "deleting BundleDeployment failed");
            }
        }
    }

    // The deployments are written at once; a status written moments ago waits for the
    // interval and then carries every change since.
    let mut status_due = None;
    if plan.status_changed {
        let now = std::time::Instant::now();
        match bctx.status_throttle.wait(&key, now) {
            Some(wait) => status_due = Some(wait),
            None => {
                let old = serde_json::to_value(bundle.status.clone().unwrap_or_default())
                    .unwrap_or_default();
                let new = serde_json::to_value(&plan.status).unwrap_or_default();
                let patch =
                    serde_json::json!({ "status": crate::summary::merge_patch_diff(&old, &new) });
                crate::patch_status_unread::<Bundle>(&client, Some(&ns), &name, &patch)
                    .await
                    .map_err(kube_err("writing status".to_string()))?;
                bctx.status_throttle.wrote(&key, now);
            }
        }
    }
    if failures > 0 {
        bctx.plan_throttle.forget(&key);
        return Err(ReconcileError::PartialFailure {
            bundle: key,
            failures,
        });
    }
    // Deployments held back by `maxNew` are created by the next reconcile, at once.
    let settled = plan.status.newly_created < fleet_api::consts::MAX_NEW;
    bctx.plan_throttle
        .reconciled_with_cost(&key, inputs, started, plan_cost, settled);
    // A periodic resync heals anything a missed event left behind.
    Ok(Action::requeue(
        status_due.unwrap_or(Duration::from_secs(600)),
    ))
}

async fn ensure_content(
    client: &kube::Client,
    bctx: &BundleContext,
    content: &Content,
) -> Result<(), kube::Error> {
    let name = content.metadata.name.clone().unwrap_or_default();
    if bctx
        .known_contents
        .lock()
        .map(|known| known.contains(&name))
        .unwrap_or(false)
    {
        return Ok(());
    }
    let api: Api<Content> = Api::all(client.clone());
    if api.get_opt(&name).await?.is_none() {
        match api.create(&PostParams::default(), content).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    if let Ok(mut known) = bctx.known_contents.lock() {
        known.insert(name);
    }
    Ok(())
}

async fn cleanup_bundle(
    bundle: Arc<Bundle>,
    bctx: &BundleContext,
) -> Result<Action, ReconcileError> {
    let ns = bundle.namespace().unwrap_or_default();
    let name = bundle.name_any();
    let key = format!("{ns}/{name}");
    let api: Api<BundleDeployment> = Api::all(bctx.ctx.client.clone());
    let selector = format!("{BUNDLE_LABEL}={name},{BUNDLE_NAMESPACE_LABEL}={ns}");
    let list = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| ReconcileError::Kube {
            action: "listing BundleDeployments".into(),
            bundle: key.clone(),
            source,
        })?;
    for bd in list {
        let bd_ns = bd.namespace().unwrap_or_default();
        let api: Api<BundleDeployment> = Api::namespaced(bctx.ctx.client.clone(), &bd_ns);
        match api.delete(&bd.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(source) => {
                return Err(ReconcileError::Kube {
                    action: format!("deleting BundleDeployment in {bd_ns}"),
                    bundle: key,
                    source,
                });
            }
        }
    }
    if let Ok(mut manifests) = bctx.manifests.lock() {
        manifests.remove(&key);
    }
    tracing::info!(bundle = %key, "bundle deleted, purged its BundleDeployments");
    Ok(Action::await_change())
}

async fn reconcile(
    bundle: Arc<Bundle>,
    bctx: Arc<BundleContext>,
) -> Result<Action, ReconcileError> {
    let key = key_of(bundle.meta());
    // Before the caches are read: a trigger dropped while this reconcile was scheduled is
    // then seen by this read.
    bctx.scheduled.start(&key);
    let started = std::time::Instant::now();
    let span = tracing::debug_span!("reconcile_bundle", bundle = %key);
    let result = async {
        if !bctx.ready().await {
            return Err(ReconcileError::NotReady {
                bundle: key.clone(),
            });
        }
        let ns = bundle.namespace().unwrap_or_default();
        let api: Api<Bundle> = Api::namespaced(bctx.ctx.client.clone(), &ns);
        let finalizers = bundle.finalizers().to_vec();
        let has_finalizer = finalizers.iter().any(|f| f == BUNDLE_FINALIZER);
        if bundle.meta().deletion_timestamp.is_some() {
            bctx.status_throttle.forget(&key);
            bctx.plan_throttle.forget(&key);
            if let Ok(mut cache) = bctx.targeting.lock() {
                cache.remove(&key);
            }
            if let Ok(mut epochs) = bctx.bundle_epochs.lock() {
                epochs.remove(&key);
            }
            if !has_finalizer {
                return Ok(Action::await_change());
            }
            let action = cleanup_bundle(bundle.clone(), &bctx).await?;
            let remaining: Vec<&String> = finalizers
                .iter()
                .filter(|f| *f != BUNDLE_FINALIZER)
                .collect();
            set_finalizers(&api, &bundle, &remaining)
                .await
                .map_err(|source| ReconcileError::Kube {
                    action: "removing the finalizer".into(),
                    bundle: key.clone(),
                    source,
                })?;
            return Ok(action);
        }
        if !has_finalizer {
            let mut with_ours: Vec<&String> = finalizers.iter().collect();
            let ours = BUNDLE_FINALIZER.to_string();
            with_ours.push(&ours);
            set_finalizers(&api, &bundle, &with_ours)
                .await
                .map_err(|source| ReconcileError::Kube {
                    action: "adding the finalizer".into(),
                    bundle: key.clone(),
                    source,
                })?;
            // The update event brings the bundle back.
            return Ok(Action::await_change());
        }
        apply_bundle(bundle, &bctx).await
    };
    let result = tracing::Instrument::instrument(result, span).await;
    bctx.ctx
        .metrics
        .reconciled("bundle", result.is_ok(), started.elapsed().as_secs_f64());
    result
}

fn error_policy(bundle: Arc<Bundle>, error: &ReconcileError, _: Arc<BundleContext>) -> Action {
    // A conflict means a newer Bundle is on its way through the watch: retry soon, quietly.
    if let ReconcileError::Kube {
        source: kube::Error::Api(status),
        ..
    } = error
        && status.code == 409
    {
        tracing::debug!(bundle = %key_of(bundle.meta()), %error, "bundle changed during its reconcile, retrying");
        return Action::requeue(Duration::from_millis(500));
    }
    tracing::warn!(bundle = %key_of(bundle.meta()), %error, "bundle reconcile failed, retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Cluster facts that matter for targeting: labels, annotations, spec, cluster namespace, and
/// whether its agent has checked in (new deployments then carry the finalizer).
fn cluster_relevance(c: &Cluster) -> u64 {
    hash_json(&(
        &c.metadata.labels,
        &c.metadata.annotations,
        &c.spec,
        c.status.as_ref().map(|s| &s.namespace),
        // Only whether an agent checked in, never when: check-ins must not retarget.
        c.status
            .as_ref()
            .is_some_and(|s| s.agent.last_seen.is_some()),
    ))
}

/// The bundles whose targets may change when the Clusters named `changed` change: every
/// bundle but those whose every target names another cluster.
fn bundles_retargeted_by(
    bundles: &[Arc<Bundle>],
    changed: &HashSet<&str>,
) -> Vec<ObjectRef<Bundle>> {
    bundles
        .iter()
        .filter(|b| {
            let targets = &b.spec.targets;
            // Not named_clusters: this runs over every bundle on every burst of Cluster
            // changes, so it allocates nothing.
            targets.is_empty()
                || targets.iter().any(|t| t.cluster_name.is_empty())
                || targets
                    .iter()
                    .any(|t| changed.contains(t.cluster_name.as_str()))
        })
        .map(|b| ObjectRef::from_obj(b.as_ref()))
        .collect()
}

/// The bundles in a namespace with BundleNamespaceMappings: those whose targets a Namespace
/// change may change.
fn bundles_in_mapped_namespaces(
    bundles: &[Arc<Bundle>],
    mappings: &[Arc<BundleNamespaceMapping>],
) -> Vec<ObjectRef<Bundle>> {
    let mapped: HashSet<&str> = mappings
        .iter()
        .filter_map(|m| m.metadata.namespace.as_deref())
        .collect();
    bundles
        .iter()
        .filter(|b| mapped.contains(b.metadata.namespace.as_deref().unwrap_or_default()))
        .map(|b| ObjectRef::from_obj(b.as_ref()))
        .collect()
}

/// Deletes Contents that no deployment and no bundle refers to any more.
async fn collect_contents(bctx: &BundleContext) -> Result<(), kube::Error> {
    let deployments = bctx.deployments.all();
    let mut referenced: HashSet<String> = deployments
        .iter()
        .flat_map(|bd| manifest_ids_of(bd).map(str::to_string).collect::<Vec<_>>())
        .collect();
    if let Ok(manifests) = bctx.manifests.lock() {
        referenced.extend(manifests.values().cloned());
    }
    let api: Api<Content> = Api::all(bctx.ctx.client.clone());
    let contents = api.list(&ListParams::default()).await?.items;
    let grace = bctx.ctx.config.content_gc_grace;
    for name in contents_to_delete(
        &contents,
        &referenced,
        k8s_openapi::jiff::Timestamp::now(),
        grace,
    ) {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {
                tracing::info!(content = %name, "deleted unreferenced Content");
                if let Ok(mut known) = bctx.known_contents.lock() {
                    known.remove(&name);
                }
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Replaces the finalizers of `bundle` with a merge patch guarded by its resourceVersion, so
/// that a concurrent change of the list makes this write fail (and the reconcile retry).
async fn set_finalizers(
    api: &Api<Bundle>,
    bundle: &Bundle,
    finalizers: &[&String],
) -> Result<(), kube::Error> {
    let patch = serde_json::json!({
        "metadata": {
            "resourceVersion": bundle.resource_version(),
            "finalizers": finalizers,
        }
    });
    match api
        .patch(
            &bundle.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether an API error is a 404.
pub(crate) fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.code == 404)
}

/// Runs the bundle reconciler with `config.bundle_workers` concurrent reconciles until
/// `shutdown`. Bundles are reconciled again when their BundleDeployments change and when
/// Clusters, ClusterGroups, BundleNamespaceMappings or Namespaces change in a way that can
/// change targeting.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) -> Result<(), BundleError> {
    let client = ctx.client.clone();
    let cluster_index = ctx.cluster_index();
    let clusters = cluster_index.store();
    let (groups, group_changes) = watch_relevant(
        Api::<ClusterGroup>::all(client.clone()),
        |g: &ClusterGroup| hash_json(&(&g.metadata.labels, &g.spec)),
    );
    let (mappings, mapping_changes) = watch_relevant(
        Api::<BundleNamespaceMapping>::all(client.clone()),
        |m: &BundleNamespaceMapping| hash_json(&(&m.bundle_selector, &m.namespace_selector)),
    );
    let (namespaces, namespace_changes) =
        watch_relevant(Api::<Namespace>::all(client.clone()), |n: &Namespace| {
            hash_json(&n.metadata.labels)
        });
    let mapping_store = mappings.clone();
    let deployments = ctx.deployment_index();
    let deployment_changes = deployments.subscribe();
    let bctx = Arc::new(BundleContext {
        ctx: ctx.clone(),
        shutdown: shutdown.clone(),
        clusters,
        groups,
        mappings,
        namespaces,
        known_contents: Mutex::new(HashSet::new()),
        status_throttle: StatusWriteThrottle::new(ctx.config.status_write_interval),
        manifests: Mutex::new(HashMap::new()),
        deployments,
        targeting_epoch: AtomicU64::new(0),
        bundle_epochs: Mutex::new(HashMap::new()),
        plan_throttle: ReconcileThrottle::new(ctx.config.status_write_interval),
        targeting: Mutex::new(HashMap::new()),
        scheduled: ScheduledReconciles::new(),
    });

    let controller = Controller::new(
        Api::<Bundle>::all(client.clone()),
        watcher::Config::default(),
    );
    let bundles = controller.store();
    let namespace_bundles = bundles.clone();
    let epoch_ctx = bctx.clone();
    // A Cluster change re-plans the bundles that can target it: not the agent bundles of
    // other clusters (every registration would re-plan every agent bundle).
    let retargeted = cluster_index
        .relevant_changes(cluster_relevance)
        .ready_chunks(COALESCED_CHANGES)
        .flat_map(move |changes| {
            let names: HashSet<&str> = changes
                .iter()
                .filter_map(|c| c.cluster().metadata.name.as_deref())
                .collect();
            let retargeted = bundles_retargeted_by(&bundles.state(), &names);
            // Only these bundles' targeting is stale: a cluster registering does not make
            // every other cluster's agent bundle resolve its targets again.
            epoch_ctx.retarget(
                retargeted
                    .iter()
                    .map(|b| format!("{}/{}", b.namespace.as_deref().unwrap_or_default(), b.name)),
            );
            futures::stream::iter(retargeted)
        });
    let epoch_ctx = bctx.clone();
    // A Namespace change re-plans the bundles whose namespace has BundleNamespaceMappings (the
    // only ones namespaces can target): not every bundle whenever a cluster namespace appears.
    // Only their targeting is stale: a cluster namespace appearing does not make every
    // bundle resolve its targets again.
    let mapped_namespaces_retargeted =
        namespace_changes
            .ready_chunks(COALESCED_CHANGES)
            .flat_map(move |_| {
                let retargeted = bundles_in_mapped_namespaces(
                    &namespace_bundles.state(),
                    &mapping_store.state(),
                );
                epoch_ctx.retarget(
                    retargeted.iter().map(|b| {
                        format!("{}/{}", b.namespace.as_deref().unwrap_or_default(), b.name)
                    }),
                );
                futures::stream::iter(retargeted)
            });
    let epoch_ctx = bctx.clone();
    let related = futures::stream::select_all([group_changes.boxed(), mapping_changes.boxed()])
        .inspect(move |()| {
            epoch_ctx.targeting_epoch.fetch_add(1, Ordering::Relaxed);
        })
        // Changes that arrive together (a relist) re-plan every bundle once.
        .ready_chunks(COALESCED_CHANGES)
        .map(|_| ());
    let trigger_ctx = bctx.clone();
    let controller = controller
        .with_config(
            RuntimeConfig::default()
                .concurrency(ctx.config.bundle_workers.min(u16::MAX as usize) as u16),
        )
        .reconcile_on(deployment_changes.filter_map(move |bd| {
            let labels = bd.labels();
            // A bundle whose re-plan is scheduled already takes this change in then.
            let owner = labels
                .get(BUNDLE_LABEL)
                .zip(labels.get(BUNDLE_NAMESPACE_LABEL))
                .filter(|(name, ns)| {
                    !trigger_ctx
                        .scheduled
                        .covers(&format!("{ns}/{name}"), std::time::Instant::now())
                })
                .map(|(name, ns)| ObjectRef::<Bundle>::new(name).within(ns));
            futures::future::ready(owner)
        }))
        .reconcile_on(retargeted)
        .reconcile_on(mapped_namespaces_retargeted)
        .reconcile_all_on(related)
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(reconcile, error_policy, bctx.clone())
        .for_each(|_| futures::future::ready(()));

    let gc = async {
        let mut interval = tokio::time::interval(ctx.config.content_gc_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
            if !bctx.ready().await {
                continue;
            }
            if let Err(error) = collect_contents(&bctx).await {
                tracing::warn!(%error, "garbage collection of Contents failed");
            }
        }
    };
    tokio::join!(controller, gc);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::cluster_namespace_name;
    use fleet_api::{
        BundleDeploymentStatus, BundleResource, BundleSpec, BundleTarget, ClusterSpec,
        ClusterStatus, HelmOptions,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
    use serde_json::json;
    use std::collections::BTreeMap;

    fn cluster(name: &str, labels: &[(&str, &str)]) -> Cluster {
        let mut c = Cluster::new(name, ClusterSpec::default());
        c.metadata.namespace = Some("fleet-default".into());
        c.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        c.status = Some(ClusterStatus {
            namespace: cluster_namespace_name("fleet-default", name),
            ..Default::default()
        });
        c
    }

    #[test]
    fn a_cluster_change_re_plans_only_bundles_that_can_target_it() {
        let named = |bundle: &str, clusters: &[&str]| {
            let mut b = bundle_named(bundle);
            b.spec.targets = clusters
                .iter()
                .map(|c| BundleTarget {
                    name: c.to_string(),
                    cluster_name: c.to_string(),
                    ..Default::default()
                })
                .collect();
            Arc::new(b)
        };
        let mut by_selector = bundle(json!({}));
        by_selector.metadata.name = Some("by-selector".into());
        let mut untargeted = by_selector.clone();
        untargeted.metadata.name = Some("untargeted".into());
        untargeted.spec.targets.clear();
        let bundles = [
            named("fleet-agent-c1", &["c1"]),
            named("fleet-agent-c2", &["c2"]),
            named("pair", &["c2", "c3"]),
            Arc::new(by_selector),
            Arc::new(untargeted),
        ];
        let names = |changed: &[&str]| -> Vec<String> {
            bundles_retargeted_by(&bundles, &changed.iter().copied().collect())
                .into_iter()
                .map(|r| r.name)
                .collect()
        };
        assert_eq!(
            names(&["c2"]),
            ["fleet-agent-c2", "pair", "by-selector", "untargeted"]
        );
        assert_eq!(names(&["c9"]), ["by-selector", "untargeted"]);
        assert_eq!(
            names(&["c1", "c3"]),
            ["fleet-agent-c1", "pair", "by-selector", "untargeted"]
        );
    }

    #[test]
    fn a_namespace_change_re_plans_only_bundles_of_namespaces_with_mappings() {
        let mut elsewhere = bundle_named("elsewhere");
        elsewhere.metadata.namespace = Some("other".into());
        let bundles = [Arc::new(bundle_named("app")), Arc::new(elsewhere)];
        assert!(bundles_in_mapped_namespaces(&bundles, &[]).is_empty());
        let mut mapping: BundleNamespaceMapping = serde_json::from_value(json!({
            "metadata": {"name": "m", "namespace": "fleet-default"}
        }))
        .unwrap();
        mapping.metadata.namespace = Some("fleet-default".into());
        let refs = bundles_in_mapped_namespaces(&bundles, &[Arc::new(mapping)]);
        let names: Vec<String> = refs.into_iter().map(|r| r.name).collect();
        assert_eq!(names, ["app"]);
    }

    fn bundle_named(name: &str) -> Bundle {
        let mut b = Bundle::new(name, BundleSpec::default());
        b.metadata.namespace = Some("fleet-default".into());
        b
    }

    /// A deployment of bundle `app` in the namespace of cluster `fleet-default/<cluster>`.
    fn deployment_on(cluster: &str) -> BundleDeployment {
        let mut bd = BundleDeployment::new("app", Default::default());
        bd.metadata.namespace = Some(cluster_namespace_name("fleet-default", cluster));
        bd
    }

    fn bundle(values: serde_json::Value) -> Bundle {
        let mut b = Bundle::new(
            "app",
            BundleSpec {
                resources: vec![BundleResource {
                    name: "cm.yaml".into(),
                    content: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n".into(),
                    encoding: String::new(),
                }],
                targets: vec![BundleTarget {
                    name: "all".into(),
                    cluster_selector: Some(LabelSelector::default()),
                    ..Default::default()
                }],
                helm: Some(HelmOptions {
                    values: values.as_object().cloned(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        b.metadata.namespace = Some("fleet-default".into());
        b.metadata.generation = Some(3);
        b
    }

    fn with_status(mut bd: BundleDeployment, ready: bool) -> BundleDeployment {
        bd.status = Some(BundleDeploymentStatus {
            applied_deployment_id: bd.spec.deployment_id.clone(),
            ready,
            non_modified: true,
            ..Default::default()
        });
        bd
    }

    #[test]
    fn plan_creates_content_deployments_and_status() {
        let b = bundle(json!({}));
        let c1 = cluster("c1", &[("env", "dev")]);
        let c2 = cluster("c2", &[("env", "prod")]);
        let observed = BundleObservation {
            clusters: vec![&c1, &c2],
            ..Default::default()
        };
        let plan = plan_bundle(&b, &observed, "t0");
        let content = plan.content.as_ref().unwrap();
        assert_eq!(
            content.metadata.name.as_deref(),
            Some(plan.manifest_id.as_str())
        );
        assert!(plan.manifest_id.starts_with("s-"));
        assert_eq!(plan.apply.len(), 2);
        assert!(
            plan.apply[0]
                .spec
                .deployment_id
                .starts_with(&format!("{}:", plan.manifest_id))
        );
        assert_eq!(plan.status.summary.pending, 2);
        assert_eq!(plan.status.display.ready_clusters, "0/2");
        assert_eq!(plan.status.display.state, "Pending");
        assert_eq!(plan.status.observed_generation, 3);
        let ready = &plan.status.conditions[0];
        assert_eq!(ready.status, "False");
        assert!(
            ready
                .message
                .contains("Pending(2) [Cluster fleet-default/c"),
            "{}",
            ready.message
        );

        // Once the agents report ready, the status is ready and nothing is written again.
        let bds: Vec<_> = plan
            .apply
            .iter()
            .cloned()
            .map(|bd| with_status(bd, true))
            .collect();
        let mut b2 = b.clone();
        b2.status = Some(plan.status.clone());
        let observed = BundleObservation {
            clusters: vec![&c1, &c2],
            deployments: bds.iter().collect(),
            ..Default::default()
        };
        let plan2 = plan_bundle(&b2, &observed, "t1");
        assert!(plan2.apply.is_empty());
        assert!(plan2.delete.is_empty());
        assert_eq!(plan2.status.display.ready_clusters, "2/2");
        assert_eq!(plan2.status.conditions[0].status, "True");
        assert_eq!(plan2.status.conditions[0].message, "");
        b2.status = Some(plan2.status.clone());
        let plan3 = plan_bundle(&b2, &observed, "t2");
        assert!(!plan3.status_changed, "no churn");
    }

    #[test]
    fn untargeted_clusters_lose_their_deployment() {
        let mut b = bundle(json!({}));
        b.spec.targets[0].cluster_selector = Some(LabelSelector {
            match_labels: Some(BTreeMap::from([("env".to_string(), "prod".to_string())])),
            match_expressions: None,
        });
        let c1 = cluster("c1", &[("env", "dev")]);
        let old = deployment_on("c1");
        let observed = BundleObservation {
            clusters: vec![&c1],
            deployments: vec![&old],
            ..Default::default()
        };
        let plan = plan_bundle(&b, &observed, "t");
        assert!(plan.apply.is_empty());
        assert!(plan.content.is_none());
        assert_eq!(
            plan.delete,
            [(
                cluster_namespace_name("fleet-default", "c1"),
                "app".to_string()
            )]
        );
    }

    #[test]
    fn targeting_error_is_reported_and_others_still_deploy() {
        let b = bundle(json!({"region": "${ .ClusterLabels.region }"}));
        let c1 = cluster("c1", &[("region", "eu")]);
        let c2 = cluster("c2", &[("env", "dev")]);
        let existing = deployment_on("c2");
        let observed = BundleObservation {
            clusters: vec![&c1, &c2],
            deployments: vec![&existing],
            ..Default::default()
        };
        let plan = plan_bundle(&b, &observed, "t");
        assert_eq!(plan.apply.len(), 1);
        assert_eq!(
            plan.apply[0].metadata.namespace.as_deref(),
            Some(cluster_namespace_name("fleet-default", "c1").as_str())
        );
        // The failing cluster keeps what it has.
        assert!(plan.delete.is_empty());
        let ready = &plan.status.conditions[0];
        assert_eq!(ready.status, "False");
        assert!(
            ready
                .message
                .starts_with("Targeting error: cluster c2 in namespace fleet-default: "),
            "{}",
            ready.message
        );
    }

    #[test]
    fn a_bundle_whose_targets_cannot_be_evaluated_keeps_its_deployments() {
        let mut b = bundle(json!({}));
        b.spec.targets = vec![BundleTarget {
            name: "broken".into(),
            cluster_selector: Some(LabelSelector {
                match_expressions: Some(vec![
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                        key: "env".into(),
                        operator: "Bogus".into(),
                        values: None,
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        }];
        let c1 = cluster("c1", &[("env", "dev")]);
        let existing = deployment_on("c1");
        let observed = BundleObservation {
            clusters: vec![&c1],
            deployments: vec![&existing],
            ..Default::default()
        };
        let plan = plan_bundle(&b, &observed, "t");
        assert!(plan.apply.is_empty());
        assert!(plan.delete.is_empty(), "what is deployed stays");
        let ready = &plan.status.conditions[0];
        assert_eq!(ready.status, "False");
        assert!(
            ready.message.contains("invalid label selector"),
            "{}",
            ready.message
        );
    }

    #[test]
    fn deployments_of_clusters_no_longer_targeted_are_deleted() {
        let b = bundle(json!({}));
        let c1 = cluster("c1", &[("env", "dev")]);
        let (kept, gone) = (deployment_on("c1"), deployment_on("c2"));
        let observed = BundleObservation {
            clusters: vec![&c1],
            deployments: vec![&kept, &gone],
            ..Default::default()
        };
        let plan = plan_bundle(&b, &observed, "t");
        assert_eq!(
            plan.delete,
            [(
                cluster_namespace_name("fleet-default", "c2"),
                "app".to_string()
            )]
        );
    }

    #[test]
    fn content_gc_keeps_referenced_and_young_contents() {
        let now = k8s_openapi::jiff::Timestamp::now();
        let content = |name: &str, age: i64| Content {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(
                    k8s_openapi::jiff::Timestamp::from_second(now.as_second() - age).unwrap(),
                )),
                ..Default::default()
            },
            ..Default::default()
        };
        let contents = [
            content("s-used", 600),
            content("s-old", 600),
            content("s-new", 1),
        ];
        let referenced = HashSet::from(["s-used".to_string()]);
        assert_eq!(
            contents_to_delete(&contents, &referenced, now, Duration::from_secs(60)),
            ["s-old"]
        );
    }

    #[test]
    fn manifest_ids_come_from_current_and_staged() {
        let mut bd = BundleDeployment::new("app", Default::default());
        bd.spec.deployment_id = "s-a:1".into();
        bd.spec.staged_deployment_id = "s-b:2".into();
        assert_eq!(manifest_ids_of(&bd).collect::<Vec<_>>(), ["s-a", "s-b"]);
    }
}

//! The BundleDeployment reconciler (Fleet's `internal/cmd/agent/controller`): deploy when the
//! deployment ID changed, monitor what is deployed, report status; and the drift reconciler
//! that recomputes status (and corrects drift) when deployed objects change.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleet_api::consts::{self, condition as cond};
use fleet_api::{BundleDeployment, BundleDeploymentStatus};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::{Value, json};
use tracing::Instrument as _;

use crate::config::AgentConfig;
use crate::deployer::{DeployError, Deployed, Deployer};
use crate::downstream::DownstreamError;
use crate::drift::{DriftRequest, DriftTracker, KindKey};
use crate::metrics::Metrics;
use crate::monitor::{self, MonitorInput, ObjectKey};
use crate::plan::{self, Dependencies};
use crate::status;

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Downstream(#[from] DownstreamError),
    #[error("writing status of BundleDeployment {key}: {source}")]
    Status {
        key: String,
        #[source]
        source: kube::Error,
    },
    #[error("reading BundleDeployment {key}: {source}")]
    Get {
        key: String,
        #[source]
        source: kube::Error,
    },
    #[error("finalizer of BundleDeployment {key}: {message}")]
    Finalizer { key: String, message: String },
}

/// A failed deployment attempt, for the retry backoff.
struct Failure {
    deployment_id: String,
    attempts: u32,
    at: Instant,
}

/// Shared by the BundleDeployment and drift reconcilers.
pub struct Context {
    pub upstream: kube::Client,
    pub deployer: Deployer,
    pub config: Arc<AgentConfig>,
    pub metrics: Metrics,
    pub drift: DriftTracker,
    pub store: Store<BundleDeployment>,
    failures: Mutex<HashMap<String, Failure>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Status writes the store does not show yet.
    pub written_status: Arc<WrittenStatuses>,
}

/// A status write not yet seen in the store.
struct WrittenStatus {
    resource_version: u64,
    status: BundleDeploymentStatus,
}

/// The status as this agent last wrote it, by BundleDeployment key, until the watch brings
/// that write into the store: the base of the next status patch (reconciles are not
/// triggered by status writes, so a store lagging behind them must not hide a change).
/// Entries leave as soon as the watch delivers the write ([`WrittenStatuses::seen`]), so
/// this holds only the writes in flight.
#[derive(Default)]
pub struct WrittenStatuses {
    entries: Mutex<HashMap<String, WrittenStatus>>,
}

impl WrittenStatuses {
    /// The watch delivered `bd`: a write it includes is no longer needed.
    pub fn seen(&self, bd: &BundleDeployment) {
        let key = key_of(bd);
        let mut entries = locked(&self.entries);
        if let Some(w) = entries.get(&key)
            && resource_version_number(bd).is_none_or(|rv| rv >= w.resource_version)
        {
            entries.remove(&key);
        }
    }

    /// The status last written, when the stored `bd` does not hold that write yet.
    fn newer_than(&self, bd: &BundleDeployment) -> Option<BundleDeploymentStatus> {
        let key = key_of(bd);
        let mut entries = locked(&self.entries);
        let w = entries.get(&key)?;
        if resource_version_number(bd).is_some_and(|rv| rv < w.resource_version) {
            return Some(w.status.clone());
        }
        entries.remove(&key);
        None
    }

    fn record(&self, key: String, resource_version: u64, status: BundleDeploymentStatus) {
        locked(&self.entries).insert(
            key,
            WrittenStatus {
                resource_version,
                status,
            },
        );
    }

    fn forget(&self, key: &str) {
        locked(&self.entries).remove(key);
    }

    /// Writes not yet seen.
    pub fn len(&self) -> usize {
        locked(&self.entries).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A resourceVersion as a number (kube-apiserver's are etcd revisions); `None` when it is not.
fn resource_version_number(bd: &BundleDeployment) -> Option<u64> {
    bd.metadata.resource_version.as_deref()?.parse().ok()
}

fn key_of(bd: &BundleDeployment) -> String {
    format!(
        "{}/{}",
        bd.metadata.namespace.as_deref().unwrap_or_default(),
        bd.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The parts of a status patch's response the agent keeps.
#[derive(serde::Deserialize)]
struct PatchedStatus {
    metadata: PatchedMetadata,
    #[serde(default)]
    status: Option<BundleDeploymentStatus>,
}

#[derive(serde::Deserialize)]
struct PatchedMetadata {
    #[serde(default, rename = "resourceVersion")]
    resource_version: Option<String>,
}

/// What the monitor step observed.
struct Observed {
    result: monitor::MonitorResult,
    kinds: BTreeSet<KindKey>,
    /// resourceVersions of the live objects evaluated (for the drift tracker).
    resource_versions: HashSet<String>,
}

/// The object versions the agent has fully dealt with after an observation: all it saw,
/// unless drift correction is on and the objects are modified (then a change event must
/// still bring the drift reconcile that corrects them).
fn settled_versions(bd: &BundleDeployment, observed: &Observed) -> HashSet<String> {
    let correcting = bd
        .spec
        .correct_drift
        .as_ref()
        .or(bd.spec.options.correct_drift.as_ref())
        .is_some_and(|c| c.enabled);
    if correcting && !observed.result.non_modified {
        HashSet::new()
    } else {
        observed.resource_versions.clone()
    }
}

/// What the monitor needs of an orphan: its identity (and resourceVersion, for the drift
/// tracker).
fn orphan_object(key: &ObjectKey, resource_version: String) -> Value {
    let mut metadata = serde_json::Map::new();
    metadata.insert("name".into(), Value::String(key.name.clone()));
    if !key.namespace.is_empty() {
        metadata.insert("namespace".into(), Value::String(key.namespace.clone()));
    }
    if !resource_version.is_empty() {
        metadata.insert("resourceVersion".into(), Value::String(resource_version));
    }
    json!({"apiVersion": key.api_version, "kind": key.kind, "metadata": metadata})
}

fn resource_version_of(obj: &Value) -> Option<String> {
    obj.get("metadata")
        .and_then(|v| v.get("resourceVersion"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

impl Context {
    pub fn new(
        upstream: kube::Client,
        deployer: Deployer,
        config: Arc<AgentConfig>,
        metrics: Metrics,
        drift: DriftTracker,
        store: Store<BundleDeployment>,
    ) -> Self {
        Context {
            upstream,
            deployer,
            config,
            metrics,
            drift,
            store,
            failures: Mutex::default(),
            locks: Mutex::default(),
            written_status: Arc::default(),
        }
    }

    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = match self.locks.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        locks.entry(key.to_string()).or_default().clone()
    }

    fn api(&self, namespace: &str) -> Api<BundleDeployment> {
        Api::namespaced(self.upstream.clone(), namespace)
    }

    /// The backoff still running for a failed deployment of this ID, if any.
    fn backoff_remaining(&self, key: &str, deployment_id: &str) -> Option<Duration> {
        let failures = self.failures.lock().ok()?;
        let f = failures.get(key)?;
        if f.deployment_id != deployment_id {
            return None;
        }
        let wait = self.retry_delay(f.attempts);
        wait.checked_sub(f.at.elapsed())
    }

    fn retry_delay(&self, attempts: u32) -> Duration {
        let base = self.config.retry_interval;
        let factor = 1u32 << attempts.saturating_sub(1).min(6);
        (base * factor).min(Duration::from_secs(300))
    }

    fn record_failure(&self, key: &str, deployment_id: &str) -> Duration {
        let Ok(mut failures) = self.failures.lock() else {
            return self.config.retry_interval;
        };
        let entry = failures.entry(key.to_string()).or_insert(Failure {
            deployment_id: deployment_id.to_string(),
            attempts: 0,
            at: Instant::now(),
        });
        if entry.deployment_id != deployment_id {
            entry.deployment_id = deployment_id.to_string();
            entry.attempts = 0;
        }
        entry.attempts += 1;
        entry.at = Instant::now();
        self.retry_delay(entry.attempts)
    }

    fn clear_failure(&self, key: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
    }

    /// Evaluates the live objects of a deployment: `fresh` holds the ones the agent has just
    /// written (as the apply returned them); the others are read. The objects of the set no
    /// longer desired (orphans) come from the drift watches' index of the set, else (a kind
    /// not followed yet) from listing the set; `pruned` are objects this reconcile has just
    /// removed from the set, whose removal the watches may not have delivered yet.
    async fn observe(
        &self,
        bd: &BundleDeployment,
        desired: &[Value],
        mut fresh: BTreeMap<ObjectKey, Value>,
        pruned: &BTreeSet<ObjectKey>,
    ) -> Result<Observed, ReconcileError> {
        let desired_keys: BTreeSet<ObjectKey> = desired.iter().map(plan::key_of).collect();
        let kinds: BTreeSet<KindKey> = desired_keys
            .iter()
            .map(|k| (k.api_version.clone(), k.kind.clone()))
            .collect();
        fresh.retain(|k, _| desired_keys.contains(k));
        let unread: Vec<ObjectKey> = desired_keys
            .iter()
            .filter(|k| !fresh.contains_key(*k))
            .cloned()
            .collect();
        let mut live = self.deployer.read_objects(unread).await?;
        live.append(&mut fresh);

        let set_id = self.deployer.set_id(bd);
        let members = match self.drift.set_members(&set_id, &kinds) {
            Some(members) => members,
            None => self
                .deployer
                .list_set(&set_id, &kinds)
                .await?
                .iter()
                .filter(|obj| {
                    obj.get("metadata")
                        .and_then(|v| v.get("annotations"))
                        .and_then(|a| a.get(consts::objectset::ID_ANNOTATION))
                        .and_then(Value::as_str)
                        == Some(set_id.as_str())
                })
                .map(|obj| {
                    (
                        plan::key_of(obj),
                        resource_version_of(obj).unwrap_or_default(),
                    )
                })
                .collect(),
        };
        let orphans: Vec<Value> = members
            .into_iter()
            .filter(|(key, _)| !desired_keys.contains(key) && !pruned.contains(key))
            .map(|(key, resource_version)| orphan_object(&key, resource_version))
            .collect();
        let resource_versions = live
            .values()
            .chain(&orphans)
            .filter_map(resource_version_of)
            .collect();
        let result = monitor::evaluate(&MonitorInput {
            desired,
            live: &live,
            orphans: &orphans,
            options: &bd.spec.options,
        });
        Ok(Observed {
            result,
            kinds,
            resource_versions,
        })
    }

    fn written_status_newer_than(&self, bd: &BundleDeployment) -> Option<BundleDeploymentStatus> {
        self.written_status.newer_than(bd)
    }

    /// Writes the status when it differs from what the object holds (merge patch of the
    /// changed fields only, against the newer of the stored object and this agent's last
    /// write).
    async fn write_status(
        &self,
        bd: &BundleDeployment,
        mut new: BundleDeployment,
    ) -> Result<(), ReconcileError> {
        status::set_display(&mut new);
        let key = key_of(bd);
        let old = match self.written_status_newer_than(bd) {
            Some(written) => serde_json::to_value(&written),
            None => serde_json::to_value(bd.status.as_ref().unwrap_or(&Default::default())),
        }
        .unwrap_or_default();
        let next = serde_json::to_value(new.status.take().unwrap_or_default()).unwrap_or_default();
        let Some(patch) = plan::merge_patch(&old, &next) else {
            return Ok(());
        };
        // The response is read for its resourceVersion and status only: decoding the whole
        // object (managedFields, timestamps) for every status write costs more than the write.
        let status_error = |source| ReconcileError::Status {
            key: key.clone(),
            source,
        };
        let url =
            <BundleDeployment as kube::Resource>::url_path(&(), bd.metadata.namespace.as_deref());
        let request = kube::core::Request::new(url)
            .patch_subresource(
                "status",
                bd.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": patch })),
            )
            .map_err(|e| status_error(kube::Error::BuildRequest(e)))?;
        let text = self
            .upstream
            .request_text(request)
            .await
            .map_err(status_error)?;
        let patched: PatchedStatus =
            serde_json::from_str(&text).map_err(|e| status_error(kube::Error::SerdeError(e)))?;
        if let Some(resource_version) = patched
            .metadata
            .resource_version
            .and_then(|rv| rv.parse().ok())
        {
            self.written_status
                .record(key, resource_version, patched.status.unwrap_or_default());
        }
        Ok(())
    }

    /// The reconcile of a BundleDeployment that is not being deleted.
    async fn apply(&self, bd: Arc<BundleDeployment>) -> Result<Action, ReconcileError> {
        let key = key_of(&bd);
        if bd.spec.paused {
            tracing::debug!("paused: not deploying, drift detection off");
            self.drift.clear(&key);
            return Ok(Action::await_change());
        }
        let lock = self.lock_for(&key);
        let _guard = lock.lock().await;
        let now = status::now();
        let mut next = (*bd).clone();
        if let Some(written) = self.written_status_newer_than(&bd) {
            next.status = Some(written);
        }
        let st = next
            .status
            .get_or_insert_with(BundleDeploymentStatus::default);

        // Only a BundleDeployment with `dependsOn` looks at its siblings (shared, not copied):
        // with many BundleDeployments per cluster, a scan per reconcile would be quadratic.
        let dependencies = if bd.spec.depends_on.is_empty() {
            Dependencies::Ready
        } else {
            plan::check_dependencies(&bd, &self.store.state())
        };
        if let Dependencies::Waiting(message) = dependencies {
            tracing::debug!(%message, "waiting for dependencies");
            status::set_condition(&mut st.conditions, cond::DEPLOYED, Err(&message), &now);
            self.write_status(&bd, next).await?;
            return Ok(Action::requeue(self.config.retry_interval));
        }

        let (release_name, release_namespace) = self.deployer.release_name_and_namespace(&bd);
        let bundle = bd.metadata.name.clone().unwrap_or_default();
        let force_sync = bd.spec.options.force_sync_generation;
        let spec_needs_deploy = bd.spec.deployment_id != st.applied_deployment_id
            || st.release.is_empty()
            || (force_sync > 0 && st.sync_generation != Some(force_sync));
        // A deployment the spec asks for needs no look at the deployed release first (the
        // deploy reads what it needs); otherwise the release must still be there.
        let mut current: Option<Arc<Deployed>> = None;
        let mut looked_up = false;
        if !spec_needs_deploy || bd.spec.deployment_id.is_empty() {
            current = self
                .deployer
                .current_release(&bundle, &release_name, &release_namespace)
                .await?;
            looked_up = true;
        }
        let needs_deploy = spec_needs_deploy || current.is_none();
        let mut fresh = BTreeMap::new();
        let mut pruned = BTreeSet::new();
        let mut requeue = None;
        if needs_deploy && !bd.spec.deployment_id.is_empty() {
            if let Some(wait) = self.backoff_remaining(&key, &bd.spec.deployment_id) {
                requeue = Some(wait);
            } else {
                match self.deployer.deploy(&bd).await {
                    Ok(outcome) => {
                        let deployed = outcome.deployed;
                        fresh = outcome.applied;
                        pruned = outcome.pruned;
                        tracing::info!(release = %deployed.release.id(), deployment_id = %bd.spec.deployment_id, "deployed bundle");
                        self.clear_failure(&key);
                        st.release = deployed.release.id();
                        st.applied_deployment_id = bd.spec.deployment_id.clone();
                        st.sync_generation = (force_sync > 0).then_some(force_sync);
                        status::set_condition(&mut st.conditions, cond::INSTALLED, Ok(()), &now);
                        status::set_condition(&mut st.conditions, cond::DEPLOYED, Ok(()), &now);
                        current = Some(deployed);
                    }
                    Err(e) => {
                        let message = e.to_string();
                        tracing::warn!(error = %message, "deploying bundle failed");
                        current = self
                            .deployer
                            .current_release(&bundle, &release_name, &release_namespace)
                            .await?;
                        looked_up = true;
                        status::set_condition(
                            &mut st.conditions,
                            cond::DEPLOYED,
                            Err(&message),
                            &now,
                        );
                        if current.is_none() {
                            let not_installed = format!("not installed: {message}");
                            status::set_condition(
                                &mut st.conditions,
                                cond::INSTALLED,
                                Err(&not_installed),
                                &now,
                            );
                        }
                        requeue = Some(self.record_failure(&key, &bd.spec.deployment_id));
                    }
                }
            }
        }
        if current.is_none() && !looked_up {
            // Not deployed now (backing off): report on what is deployed.
            current = self
                .deployer
                .current_release(&bundle, &release_name, &release_namespace)
                .await?;
        }

        let mut ready = true;
        if let Some(deployed) = &current {
            match self.observe(&bd, &deployed.objects, fresh, &pruned).await {
                Ok(observed) => {
                    ready = observed.result.ready;
                    status::apply_monitor(st, &observed.result, &now);
                    let settled = settled_versions(&bd, &observed);
                    self.drift
                        .refresh(&key, &self.deployer.set_id(&bd), observed.kinds, settled)
                        .await;
                }
                Err(e) => {
                    let message = e.to_string();
                    status::set_condition(&mut st.conditions, cond::MONITORED, Err(&message), &now);
                    requeue = Some(requeue.unwrap_or(self.config.retry_interval));
                }
            }
        }
        self.write_status(&bd, next).await?;
        Ok(Action::requeue(requeue.unwrap_or(if ready {
            self.config.resync_interval
        } else {
            self.config.not_ready_recheck
        })))
    }

    /// The BundleDeployment is being deleted: remove what it deployed (unless keepResources).
    async fn cleanup(&self, bd: Arc<BundleDeployment>) -> Result<Action, ReconcileError> {
        let key = key_of(&bd);
        let lock = self.lock_for(&key);
        let _guard = lock.lock().await;
        self.drift.clear(&key);
        self.deployer.uninstall(&bd).await?;
        self.clear_failure(&key);
        self.written_status.forget(&key);
        tracing::info!("removed the bundle's deployment");
        Ok(Action::await_change())
    }

    /// The drift reconcile: recompute status and, with `correctDrift.enabled`, put modified,
    /// missing objects back. The BundleDeployment comes from the agent's watch cache, as
    /// Fleet's cached client reads it.
    pub async fn drift_reconcile(&self, request: &DriftRequest) -> Result<(), ReconcileError> {
        let key = request.key.as_str();
        let Some((namespace, name)) = key.split_once('/') else {
            return Ok(());
        };
        let lock = self.lock_for(key);
        let _guard = lock.lock().await;
        if let Some(events) = &request.events
            && self.drift.all_observed(key, events)
        {
            tracing::debug!(
                "object versions already observed (the agent's own writes): nothing to do"
            );
            return Ok(());
        }
        let Some(bd) = self.store.get(&ObjectRef::new(name).within(namespace)) else {
            tracing::debug!("BundleDeployment gone: drift detection off");
            self.drift.clear(key);
            return Ok(());
        };
        if bd.spec.paused || bd.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let mut next = (*bd).clone();
        if let Some(written) = self.written_status_newer_than(&bd) {
            next.status = Some(written);
        }
        if next.status.as_ref().is_none_or(|s| s.release.is_empty()) {
            tracing::debug!("nothing deployed yet: no drift to look at");
            return Ok(());
        }
        let (release_name, release_namespace) = self.deployer.release_name_and_namespace(&bd);
        let bundle = name.to_string();
        let Some(deployed) = self
            .deployer
            .current_release(&bundle, &release_name, &release_namespace)
            .await?
        else {
            return Ok(());
        };
        let now = status::now();
        let mut observed = self
            .observe(&bd, &deployed.objects, BTreeMap::new(), &BTreeSet::new())
            .await?;
        let correct = bd
            .spec
            .correct_drift
            .as_ref()
            .or(bd.spec.options.correct_drift.as_ref())
            .filter(|c| c.enabled)
            .cloned();
        let st = next
            .status
            .get_or_insert_with(BundleDeploymentStatus::default);
        if let Some(correct) = correct
            && !observed.result.non_modified
        {
            tracing::info!("correcting drift");
            let mut failure = None;
            let mut fresh = BTreeMap::new();
            for obj in &deployed.objects {
                let k = plan::key_of(obj);
                match self.deployer.apply_object(&k, obj, correct.force).await {
                    Ok(applied) => {
                        fresh.insert(k, applied);
                    }
                    Err(e) => failure = Some(e.to_string()),
                }
            }
            match failure {
                Some(message) => {
                    let message = format!("correcting drift of bundle {bundle}: {message}");
                    status::set_condition(&mut st.conditions, cond::DEPLOYED, Err(&message), &now);
                }
                None => {
                    observed = self
                        .observe(&bd, &deployed.objects, fresh, &BTreeSet::new())
                        .await?
                }
            }
        }
        status::apply_monitor(st, &observed.result, &now);
        let settled = settled_versions(&bd, &observed);
        self.drift
            .refresh(
                key,
                &self.deployer.set_id(&bd),
                observed.kinds.clone(),
                settled,
            )
            .await;
        self.write_status(&bd, next).await
    }
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The kube-runtime reconcile function.
pub async fn reconcile(
    bd: Arc<BundleDeployment>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let key = key_of(&bd);
    let span =
        tracing::info_span!("bundledeployment", bd = %key, cluster = %ctx.config.cluster_name);
    let started = Instant::now();
    let result = with_finalizer(bd, &ctx).instrument(span).await;
    ctx.metrics.reconciled(
        crate::metrics::BUNDLEDEPLOYMENT,
        result.is_ok(),
        started.elapsed().as_secs_f64(),
    );
    result
}

/// Fleet's finalizer on the BundleDeployment: present before anything is deployed, removed
/// after the deployment was uninstalled. The controller creates deployments with it once the
/// agent has checked in; the agent adds it only to one created before that. Written with merge
/// patches of the finalizer list.
async fn with_finalizer(
    bd: Arc<BundleDeployment>,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let key = key_of(&bd);
    let name = bd.metadata.name.clone().unwrap_or_default();
    let api = ctx.api(bd.metadata.namespace.as_deref().unwrap_or_default());
    let finalizers = bd.metadata.finalizers.clone().unwrap_or_default();
    let ours = finalizers
        .iter()
        .any(|f| f == consts::BUNDLE_DEPLOYMENT_FINALIZER);
    let resource_version = bd.metadata.resource_version.clone();
    let patch_finalizers = |list: Vec<String>| {
        let resource_version = resource_version.clone();
        let api = api.clone();
        let name = name.clone();
        let key = key.clone();
        async move {
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {
                    "finalizers": list,
                    "resourceVersion": resource_version,
                }})),
            )
            .await
            .map_err(|e| ReconcileError::Finalizer {
                key,
                message: e.to_string(),
            })
        }
    };
    if bd.metadata.deletion_timestamp.is_some() {
        if !ours {
            return Ok(Action::await_change());
        }
        ctx.cleanup(bd.clone()).await?;
        let rest: Vec<String> = finalizers
            .into_iter()
            .filter(|f| f != consts::BUNDLE_DEPLOYMENT_FINALIZER)
            .collect();
        patch_finalizers(rest).await?;
        return Ok(Action::await_change());
    }
    if !ours {
        let mut list = finalizers;
        list.push(consts::BUNDLE_DEPLOYMENT_FINALIZER.to_string());
        // As Fleet's agent, go on deploying with the object the finalizer update returned
        // (finalizer changes do not trigger reconciles).
        let updated = patch_finalizers(list).await?;
        return ctx.apply(Arc::new(updated)).await;
    }
    ctx.apply(bd).await
}

/// Requeue after an error.
pub fn error_policy(
    bd: Arc<BundleDeployment>,
    error: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    tracing::warn!(bd = %key_of(&bd), cluster = %ctx.config.cluster_name, %error, "reconcile failed");
    Action::requeue(ctx.config.retry_interval)
}

//! The HelmOps reconciler (Fleet's experimental `internal/cmd/controller/helmops`): a `HelmOp`
//! (Fleet v0.13's name; `HelmApp` in v0.12, served too) deploys a chart from a Helm repository
//! or OCI registry to the targeted clusters without Git. For each one the controller resolves
//! `helm.version` against the repository ([`version`]; constraints are polled with jitter when
//! `pollingInterval` is set), writes one Bundle with no resources and the version pinned
//! ([`desired`]; the agent downloads the chart itself), copies the repository credentials next
//! to each BundleDeployment, and keeps the status ([`status`]).
//!
//! Off unless `ControllerConfig::helmops_enabled` (`--enable-helmops`,
//! `EXPERIMENTAL_HELM_OPS=true`); while off, every HelmOp/HelmApp gets a condition saying so.
//! Deleting a HelmOp deletes its Bundle through its owner reference, and with it the
//! BundleDeployments and releases (unless `keepResources`).

pub mod desired;
pub mod status;
pub mod version;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleet_api::consts::{BUNDLE_NAMESPACE_LABEL, HELM_APP_LABEL};
use fleet_api::{Bundle, BundleDeployment, HelmApp, HelmOp, HelmOpStatus, HelmOptions};
use fleet_helm::repo::RepoOptions;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use kube::core::NamespaceResourceScope;
use kube::runtime::controller::{Action, Config as ControllerRuntimeConfig, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Context;
use crate::gitops::poll::Jitter;
use status::Learned;

/// Why the HelmOps controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum HelmOpsError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

/// A reconcile that could not finish; it is retried.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {action}: {source}")]
pub struct ReconcileError {
    key: String,
    action: String,
    #[source]
    source: kube::Error,
}

fn kube_err<'a>(key: &'a str, action: &'a str) -> impl FnOnce(kube::Error) -> ReconcileError + 'a {
    move |source| ReconcileError {
        key: key.to_string(),
        action: action.to_string(),
        source,
    }
}

/// The two kinds the reconciler serves: `HelmOp` and v0.12's `HelmApp`, with one spec.
pub trait HelmKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The kind, as written in owner references and messages.
    const KIND: &'static str;
    /// The object as a HelmOp (same spec and status).
    fn to_helm_op(&self) -> HelmOp;
    /// The status slot.
    fn status_slot(&mut self) -> &mut Option<HelmOpStatus>;
}

impl HelmKind for HelmOp {
    const KIND: &'static str = "HelmOp";
    fn to_helm_op(&self) -> HelmOp {
        self.clone()
    }
    fn status_slot(&mut self) -> &mut Option<HelmOpStatus> {
        &mut self.status
    }
}

impl HelmKind for HelmApp {
    const KIND: &'static str = "HelmApp";
    fn to_helm_op(&self) -> HelmOp {
        HelmOp::from(self.clone())
    }
    fn status_slot(&mut self) -> &mut Option<HelmOpStatus> {
        &mut self.status
    }
}

/// Where the chart comes from; a change means the version is resolved again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartSource {
    pub repo: String,
    pub chart: String,
    /// `helm.version` as written (a version or a constraint).
    pub version: String,
    pub secret_name: String,
    pub insecure_skip_tls_verify: bool,
}

impl ChartSource {
    pub fn of(op: &HelmOp, helm: &HelmOptions) -> Self {
        ChartSource {
            repo: helm.repo.clone(),
            chart: helm.chart.clone(),
            version: helm.version.clone(),
            secret_name: op.spec.helm_secret_name.clone(),
            insecure_skip_tls_verify: op.spec.insecure_skip_tls_verify,
        }
    }
}

/// What the controller remembers about one HelmOp between reconciles (lost on restart, which
/// costs one extra index download).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolution {
    /// The source the fields below are about.
    pub source: Option<ChartSource>,
    /// The resolved version, once resolution succeeded.
    pub version: Option<String>,
    /// The last resolution error, if the last attempt failed.
    pub error: Option<String>,
    /// When the last attempt happened (time since the controller started).
    pub last_attempt: Option<Duration>,
}

/// Why a reconcile asks the repository now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveReason {
    /// First time, or the chart source changed.
    SourceChanged,
    /// The last attempt failed and the retry interval passed.
    Retry,
    /// The polling interval passed.
    Poll,
}

/// Whether to resolve the version now. `poll_interval` is set only for polled constraints;
/// failures are retried every `retry_interval` (the repository may be back).
pub fn resolve_reason(
    memory: &Resolution,
    source: &ChartSource,
    now: Duration,
    poll_interval: Option<Duration>,
    retry_interval: Duration,
) -> Option<ResolveReason> {
    if memory.source.as_ref() != Some(source) {
        return Some(ResolveReason::SourceChanged);
    }
    let since = memory
        .last_attempt
        .map(|t| now.saturating_sub(t))
        .unwrap_or(Duration::MAX);
    if memory.error.is_some() && since >= retry_interval {
        return Some(ResolveReason::Retry);
    }
    match poll_interval {
        Some(interval) if since >= interval => Some(ResolveReason::Poll),
        _ => None,
    }
}

/// The polling interval of a HelmOp: its `pollingInterval` when the version is a constraint;
/// `None` (no polling) for exact versions or without an interval.
pub fn polling_interval(op: &HelmOp, helm: &HelmOptions) -> Option<Duration> {
    if !version::is_constraint(&helm.version) {
        return None;
    }
    op.spec
        .polling_interval
        .and_then(|d| d.to_std())
        .filter(|d| !d.is_zero())
}

/// Shared state of the HelmOps reconciler.
pub struct HelmOps {
    ctx: Arc<Context>,
    memory: Mutex<HashMap<String, Resolution>>,
    jitter: Jitter,
    started: Instant,
}

impl HelmOps {
    pub fn new(ctx: Arc<Context>) -> Self {
        let jitter = Jitter::new(ctx.config.jitter_seed);
        HelmOps {
            ctx,
            memory: Mutex::new(HashMap::new()),
            jitter,
            started: Instant::now(),
        }
    }

    fn take_memory(&self, key: &str) -> Resolution {
        match self.memory.lock() {
            Ok(mut m) => m.remove(key).unwrap_or_default(),
            Err(p) => p.into_inner().remove(key).unwrap_or_default(),
        }
    }

    fn put_memory(&self, key: String, memory: Resolution) {
        match self.memory.lock() {
            Ok(mut m) => m.insert(key, memory),
            Err(p) => p.into_inner().insert(key, memory),
        };
    }
}

/// Runs the reconciler for HelmOps and HelmApps until `shutdown`. With HelmOps disabled it
/// only marks them as not accepted.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) -> Result<(), HelmOpsError> {
    let helmops = Arc::new(HelmOps::new(ctx));
    tokio::try_join!(
        run_kind::<HelmOp>(helmops.clone(), shutdown.clone()),
        run_kind::<HelmApp>(helmops, shutdown),
    )?;
    Ok(())
}

fn owner_of<K: HelmKind>(
    labels: &std::collections::BTreeMap<String, String>,
    ns: Option<String>,
) -> Option<ObjectRef<K>> {
    let name = labels.get(HELM_APP_LABEL)?;
    let ns = ns?;
    Some(ObjectRef::<K>::new(name).within(&ns))
}

async fn run_kind<K: HelmKind>(
    helmops: Arc<HelmOps>,
    shutdown: CancellationToken,
) -> Result<(), HelmOpsError> {
    let client = helmops.ctx.client.clone();
    let workers = u16::try_from(helmops.ctx.config.gitrepo_workers.max(1)).unwrap_or(u16::MAX);
    Controller::new(Api::<K>::all(client.clone()), watcher::Config::default())
        .watches(
            Api::<Bundle>::all(client.clone()),
            watcher::Config::default().labels(HELM_APP_LABEL),
            |b: Bundle| {
                let ns = b.metadata.namespace.clone();
                owner_of::<K>(&b.labels().clone(), ns)
            },
        )
        .watches(
            Api::<BundleDeployment>::all(client.clone()),
            watcher::Config::default().labels(HELM_APP_LABEL),
            |bd: BundleDeployment| {
                let labels = bd.labels().clone();
                let ns = labels.get(BUNDLE_NAMESPACE_LABEL).cloned();
                owner_of::<K>(&labels, ns)
            },
        )
        .with_config(ControllerRuntimeConfig::default().concurrency(workers))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile::<K>, error_policy::<K>, helmops)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(kind = K::KIND, error = %e, "HelmOp reconcile");
            }
            futures::future::ready(())
        })
        .await;
    Ok(())
}

fn error_policy<K: HelmKind>(_obj: Arc<K>, error: &ReconcileError, _h: Arc<HelmOps>) -> Action {
    tracing::warn!(%error, "HelmOp reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn reconcile<K: HelmKind>(
    obj: Arc<K>,
    helmops: Arc<HelmOps>,
) -> Result<Action, ReconcileError> {
    let namespace = obj.meta().namespace.clone().unwrap_or_default();
    let name = obj.meta().name.clone().unwrap_or_default();
    let key = format!("{} {namespace}/{name}", K::KIND);
    let span = tracing::info_span!("helmop", kind = K::KIND, key = %format!("{namespace}/{name}"));
    reconcile_inner(obj.as_ref(), &helmops, &namespace, &name, &key)
        .instrument(span)
        .await
}

async fn reconcile_inner<K: HelmKind>(
    obj: &K,
    helmops: &HelmOps,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Action, ReconcileError> {
    let ctx = &helmops.ctx;
    let client = ctx.client.clone();
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let op = obj.to_helm_op();
    let previous = op.status.clone().unwrap_or_default();

    if obj.meta().deletion_timestamp.is_some() {
        // The Bundle goes through garbage collection (owner reference).
        let _ = helmops.take_memory(key);
        return Ok(Action::await_change());
    }
    if !ctx.config.helmops_enabled {
        let desired = status::disabled_status(&previous, &now_rfc3339());
        write_status(&api, obj, &previous, desired, key).await?;
        return Ok(Action::await_change());
    }

    let Some(helm) = op.spec.helm.clone().filter(|h| !h.chart.is_empty()) else {
        let learned = Learned {
            error: Some(format!(
                "{} {namespace}/{name}: spec.helm.chart is empty: nothing to deploy",
                K::KIND
            )),
            ..Default::default()
        };
        let desired = status::desired_status(&previous, &learned, None, &[], &now_rfc3339());
        write_status(&api, obj, &previous, desired, key).await?;
        return Ok(Action::await_change());
    };

    let source = ChartSource::of(&op, &helm);
    let poll_interval = polling_interval(&op, &helm);
    let retry_interval = ctx.config.default_polling_interval;
    let mut memory = helmops.take_memory(key);
    let now = helmops.started.elapsed();
    if let Some(reason) = resolve_reason(&memory, &source, now, poll_interval, retry_interval) {
        tracing::debug!(?reason, "resolving the chart version");
        if memory.source.as_ref() != Some(&source) {
            memory = Resolution::default();
        }
        memory.source = Some(source.clone());
        memory.last_attempt = Some(now);
        match resolve(ctx, namespace, &op, &helm).await {
            Ok(v) => {
                if memory.version.as_deref() != Some(v.as_str()) {
                    tracing::info!(version = %v, constraint = %helm.version, "chart version resolved");
                }
                memory.version = Some(v);
                memory.error = None;
            }
            Err(msg) => {
                tracing::info!(error = %msg, "resolving the chart version failed; the Bundle is kept");
                memory.error = Some(msg);
            }
        }
    }
    let outcome = sync_bundle(helmops, obj, &op, &memory, namespace, name, key).await;
    let error = memory.error.clone();
    helmops.put_memory(key.to_string(), memory);
    let write_error = outcome?;

    let next = if error.is_some() || write_error.is_some() {
        helmops.jitter.add(retry_interval)
    } else if let Some(interval) = poll_interval {
        helmops.jitter.add(interval)
    } else {
        ctx.config.gitrepo_sync_period
    };
    Ok(Action::requeue(next.min(ctx.config.gitrepo_sync_period)))
}

/// Writes the Bundle and the secret copies for the resolved version (if any), then the
/// status. Returns the problem with writing the Bundle, if any (shown in the status).
async fn sync_bundle<K: HelmKind>(
    helmops: &HelmOps,
    obj: &K,
    op: &HelmOp,
    memory: &Resolution,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Option<String>, ReconcileError> {
    let client = helmops.ctx.client.clone();
    let bundles: Api<Bundle> = Api::namespaced(client.clone(), namespace);
    let mut bundle = bundles
        .get_opt(name)
        .await
        .map_err(kube_err(key, "reading its Bundle"))?;
    let mut write_error = None;
    if let Some(v) = &memory.version {
        let desired = desired::desired_bundle(K::KIND, op, v);
        match &bundle {
            None => {
                let created = bundles
                    .create(&PostParams::default(), &desired)
                    .await
                    .map_err(kube_err(key, "creating its Bundle"))?;
                tracing::info!(version = %v, "Bundle created");
                bundle = Some(created);
            }
            Some(existing) => {
                if let Some(why) = desired::foreign_bundle(existing, K::KIND, op) {
                    write_error = Some(why);
                } else if let Some(updated) = desired::bundle_update(existing, &desired) {
                    match bundles
                        .replace(name, &PostParams::default(), &updated)
                        .await
                    {
                        Ok(b) => {
                            tracing::info!(version = %v, "Bundle updated");
                            bundle = Some(b);
                        }
                        Err(kube::Error::Api(e)) if e.code == 409 => {
                            // Someone (the bundle controller's status) wrote in between.
                            write_error = Some(format!(
                                "Bundle {namespace}/{name} changed while it was updated; retrying"
                            ));
                        }
                        Err(e) => return Err(kube_err(key, "updating its Bundle")(e)),
                    }
                }
            }
        }
    }

    let deployments = Api::<BundleDeployment>::all(client.clone())
        .list(&ListParams::default().labels(&format!(
            "{HELM_APP_LABEL}={name},{BUNDLE_NAMESPACE_LABEL}={namespace}"
        )))
        .await
        .map_err(kube_err(key, "listing its BundleDeployments"))?
        .items;
    if write_error.is_none()
        && !op.spec.helm_secret_name.is_empty()
        && let Err(msg) =
            copy_secret(&client, namespace, &op.spec.helm_secret_name, &deployments).await
    {
        write_error = Some(msg);
    }

    let learned = Learned {
        version: memory.version.clone(),
        error: memory.error.clone().or(write_error.clone()),
        polling: op
            .spec
            .helm
            .as_ref()
            .is_some_and(|h| polling_interval(op, h).is_some()),
    };
    let previous = op.status.clone().unwrap_or_default();
    let desired = status::desired_status(
        &previous,
        &learned,
        bundle.as_ref(),
        &deployments,
        &now_rfc3339(),
    );
    let api: Api<K> = Api::namespaced(client, namespace);
    write_status(&api, obj, &previous, desired, key).await?;
    Ok(write_error)
}

/// Copies the chart repository secret next to every BundleDeployment (the agent reads it from
/// its cluster namespace), as Fleet's bundle controller does.
async fn copy_secret(
    client: &kube::Client,
    namespace: &str,
    secret_name: &str,
    deployments: &[BundleDeployment],
) -> Result<(), String> {
    if deployments.is_empty() {
        return Ok(());
    }
    let source = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(secret_name)
        .await
        .map_err(|e| format!("reading helm secret {namespace}/{secret_name}: {e}"))?
        .ok_or_else(|| format!("helm secret {namespace}/{secret_name} not found"))?;
    for bd in deployments {
        let Some(bd_ns) = bd.metadata.namespace.as_deref() else {
            continue;
        };
        if bd.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let desired = desired::secret_copy(&source, bd);
        let api: Api<Secret> = Api::namespaced(client.clone(), bd_ns);
        let failed = |e: kube::Error| {
            format!("copying helm secret {namespace}/{secret_name} to namespace {bd_ns}: {e}")
        };
        match api.get_opt(secret_name).await.map_err(failed)? {
            None => match api.create(&PostParams::default(), &desired).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(failed(e)),
            },
            Some(existing) => {
                if let Some(updated) = desired::secret_update(&existing, &desired) {
                    match api
                        .replace(secret_name, &PostParams::default(), &updated)
                        .await
                    {
                        Ok(_) => {}
                        Err(kube::Error::Api(e)) if e.code == 409 => {}
                        Err(e) => return Err(failed(e)),
                    }
                }
            }
        }
    }
    Ok(())
}

/// Repository options from Fleet's Helm secret: `username`, `password` (basic auth) and
/// `cacerts` (PEM), plus the HelmOp's `insecureSkipTLSVerify`.
pub fn repo_options(secret: Option<&Secret>, insecure_skip_tls_verify: bool) -> RepoOptions {
    let mut opts = RepoOptions {
        insecure_skip_tls_verify,
        ..Default::default()
    };
    let Some(secret) = secret else {
        return opts;
    };
    let data = secret.data.clone().unwrap_or_default();
    let string_data = secret.string_data.clone().unwrap_or_default();
    let get = |k: &str| {
        data.get(k)
            .map(|v| v.0.clone())
            .or_else(|| string_data.get(k).map(|s| s.clone().into_bytes()))
    };
    opts.username = get("username").map(|v| String::from_utf8_lossy(&v).into_owned());
    opts.password = get("password").map(|v| String::from_utf8_lossy(&v).into_owned());
    opts.ca_bundle = get("cacerts").filter(|v| !v.is_empty());
    opts
}

/// Resolves the chart version for `op` (credentials from its Helm secret). The error names the
/// repository and the chart.
async fn resolve(
    ctx: &Context,
    namespace: &str,
    op: &HelmOp,
    helm: &HelmOptions,
) -> Result<String, String> {
    let secret = if op.spec.helm_secret_name.is_empty() {
        None
    } else {
        let secret_name = &op.spec.helm_secret_name;
        let found = Api::<Secret>::namespaced(ctx.client.clone(), namespace)
            .get_opt(secret_name)
            .await
            .map_err(|e| {
                format!(
                    "{}: reading credentials from secret {namespace}/{secret_name}: {e}",
                    version::describe(helm)
                )
            })?;
        match found {
            Some(s) => Some(s),
            None => {
                return Err(format!(
                    "{}: reading credentials: secret {namespace}/{secret_name} not found",
                    version::describe(helm)
                ));
            }
        }
    };
    let opts = repo_options(secret.as_ref(), op.spec.insecure_skip_tls_verify);
    let helm = helm.clone();
    fleet_api::task::spawn_blocking(move || version::resolve_remote(&helm, &opts))
        .await
        .unwrap_or_else(|e| Err(format!("chart version resolution task failed: {e}")))
}

/// Replaces the status when it differs from `previous` (a conflict means a newer object is on
/// its way to the reconciler).
async fn write_status<K: HelmKind>(
    api: &Api<K>,
    obj: &K,
    previous: &HelmOpStatus,
    desired: HelmOpStatus,
    key: &str,
) -> Result<(), ReconcileError> {
    if &desired == previous {
        return Ok(());
    }
    let mut updated = obj.clone();
    *updated.status_slot() = Some(desired);
    let name = obj.meta().name.clone().unwrap_or_default();
    match api
        .replace_status(&name, &PostParams::default(), &updated)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {
            tracing::debug!("changed while writing its status; the next reconcile retries");
            Ok(())
        }
        Err(e) => Err(kube_err(key, "writing its status")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(version: &str) -> ChartSource {
        ChartSource {
            repo: "http://r".into(),
            chart: "web".into(),
            version: version.into(),
            secret_name: String::new(),
            insecure_skip_tls_verify: false,
        }
    }

    #[test]
    fn resolution_happens_on_change_retry_and_poll() {
        let s = source("~1.2");
        let retry = Duration::from_secs(15);
        let poll = Some(Duration::from_secs(60));
        let never = Resolution::default();
        assert_eq!(
            resolve_reason(&never, &s, Duration::ZERO, poll, retry),
            Some(ResolveReason::SourceChanged)
        );
        let ok = Resolution {
            source: Some(s.clone()),
            version: Some("1.2.3".into()),
            error: None,
            last_attempt: Some(Duration::from_secs(100)),
        };
        assert_eq!(
            resolve_reason(&ok, &s, Duration::from_secs(130), poll, retry),
            None
        );
        assert_eq!(
            resolve_reason(&ok, &s, Duration::from_secs(160), poll, retry),
            Some(ResolveReason::Poll)
        );
        assert_eq!(
            resolve_reason(&ok, &s, Duration::from_secs(1000), None, retry),
            None
        );
        assert_eq!(
            resolve_reason(&ok, &source("~1.3"), Duration::from_secs(101), poll, retry),
            Some(ResolveReason::SourceChanged)
        );
        let failed = Resolution {
            error: Some("down".into()),
            ..ok.clone()
        };
        assert_eq!(
            resolve_reason(&failed, &s, Duration::from_secs(105), None, retry),
            None
        );
        assert_eq!(
            resolve_reason(&failed, &s, Duration::from_secs(115), None, retry),
            Some(ResolveReason::Retry)
        );
    }

    #[test]
    fn only_constraints_with_an_interval_are_polled() {
        let mut op = HelmOp::new("web", Default::default());
        let mut helm = HelmOptions {
            chart: "web".into(),
            version: "~1.2".into(),
            ..Default::default()
        };
        assert_eq!(polling_interval(&op, &helm), None);
        op.spec.polling_interval = Some(Duration::from_secs(30).into());
        assert_eq!(polling_interval(&op, &helm), Some(Duration::from_secs(30)));
        helm.version = "1.2.3".into();
        assert_eq!(polling_interval(&op, &helm), None);
    }

    #[test]
    fn helm_secrets_become_repo_options() {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "creds"},
            "data": {"username": "dXNlcg==", "password": "cHc=", "cacerts": ""},
        }))
        .unwrap();
        let o = repo_options(Some(&secret), true);
        assert_eq!(o.username.as_deref(), Some("user"));
        assert_eq!(o.password.as_deref(), Some("pw"));
        assert!(o.ca_bundle.is_none());
        assert!(o.insecure_skip_tls_verify);
        assert!(!o.pass_credentials_all);
        let none = repo_options(None, false);
        assert!(none.username.is_none());
    }
}

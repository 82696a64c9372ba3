//! The GitRepo reconciler (Fleet's `gitjob` controller and GitRepo status reconciler, in one
//! process): poll the repository ([`fetch`], [`poll`]), build the bundles of each folder
//! in-process with `fleet_bundle` exactly as `fleet apply` in Fleet's git job does, write
//! them (create / update when changed / delete when their folder is gone), and keep the
//! GitRepo status ([`status`], [`crate::resourcestatus`]). GitRepoRestrictions are checked
//! first ([`restriction`]); the [`webhook`] endpoint makes a push trigger a fetch.
//!
//! Layout of the git cache (`ControllerConfig::git_cache_dir`):
//! `<cache>/<namespace>/<gitrepo>-<hash of the URL>/{repo.git, checkout, targets.yaml}`. The bare
//! repository is reused between polls, so a poll without a new commit downloads nothing.

pub mod bundles;
pub mod cabundle;
pub mod fetch;
pub mod job;
pub mod poll;
pub mod restriction;
pub mod status;
pub mod webhook;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleet_api::consts::{BUNDLE_NAMESPACE_LABEL, GITREPO_FINALIZER, REPO_LABEL};
use fleet_api::{Bundle, GitRepo, GitRepoRestriction, GitRepoSpec};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config as ControllerRuntimeConfig, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Context;
use crate::config::GitJobMode;
use crate::deployments::DeploymentIndex;
use crate::throttle::{ReconcileThrottle, ScheduledReconciles};
use fetch::{BasicAuth, FetchRequest};
use poll::{Jitter, Observed};
use status::Learned;

/// Secret Fleet uses for git credentials when a GitRepo names none (if it exists).
pub const DEFAULT_CLIENT_SECRET_NAME: &str = "gitcredential";

/// Why the GitRepo controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum GitopsError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Webhook(#[from] webhook::WebhookError),
}

/// A reconcile that could not finish; it is retried.
#[derive(Debug, thiserror::Error)]
#[error("GitRepo {key}: {action}: {source}")]
pub struct ReconcileError {
    key: String,
    action: String,
    #[source]
    source: kube::Error,
}

/// What the controller keeps about one GitRepo between reconciles (lost on restart, which
/// only costs one extra fetch and build).
#[derive(Debug, Default)]
struct RepoMemory {
    /// Cache folder, which also identifies the repository URL the memory is about.
    cache_dir: PathBuf,
    observed: Observed,
    fetched_commit: Option<String>,
    fetch_error: Option<String>,
    /// (commit, generation, forceSyncGeneration, Helm CA fingerprint) of the last build attempt.
    build_key: Option<(String, i64, i64, String)>,
    /// Fingerprint of the git CA bundle (or of the error reading it) at the last poll; a
    /// change polls again at once (a fixed CA should not wait for the next interval).
    ca_key: Option<String>,
    /// Job mode: (commit, generation, forceSyncGeneration) of the last Job created.
    job_key: Option<(String, i64, i64)>,
    /// Job mode: the generation the job RBAC was last applied for (applied again after a
    /// restart, so new rules reach existing GitRepos).
    rbac_generation: Option<i64>,
    /// Job mode: the state of the last Job seen.
    job_state: Option<job::JobState>,
    build_error: Option<String>,
    /// The bundles of the last build that read every folder (empty when the repository has
    /// nothing left to deploy).
    desired: Option<Vec<Bundle>>,
    /// The last build read every folder, so `desired` is what the repository holds now and
    /// bundles missing from it are pruned — also when it holds nothing (then `build_error`
    /// says so, as Fleet's `fleet apply` fails after pruning). False after a failed build:
    /// nothing already deployed is deleted because of a broken folder.
    desired_is_current: bool,
    /// When the bundles were last rebuilt (for the periodic resync).
    last_build: Option<Duration>,
    written: bundles::Written,
}

/// Shared state of the GitRepo reconciler.
pub struct Gitops {
    ctx: Arc<Context>,
    memory: Mutex<HashMap<String, RepoMemory>>,
    jitter: Jitter,
    started: Instant,
    build_slots: Semaphore,
    /// The controller's BundleDeployment cache.
    deployments: Arc<DeploymentIndex>,
    /// Spaces the reconciles that only follow status changes of the GitRepo's bundles and
    /// deployments (each aggregates all of its deployments).
    throttle: ReconcileThrottle,
    /// GitRepos whose reconcile waits for that spacing: their bundles' and deployments'
    /// changes meanwhile need no reconcile of their own.
    scheduled: ScheduledReconciles,
}

impl Gitops {
    pub fn new(ctx: Arc<Context>) -> Self {
        let jitter = Jitter::new(ctx.config.jitter_seed);
        let builds = ctx.config.gitrepo_build_workers.max(1);
        let deployments = ctx.deployment_index();
        let throttle = ReconcileThrottle::new(ctx.config.status_write_interval);
        Gitops {
            ctx,
            memory: Mutex::new(HashMap::new()),
            jitter,
            started: Instant::now(),
            build_slots: Semaphore::new(builds),
            deployments,
            throttle,
            scheduled: ScheduledReconciles::new(),
        }
    }

    fn take_memory(&self, key: &str) -> RepoMemory {
        match self.memory.lock() {
            Ok(mut m) => m.remove(key).unwrap_or_default(),
            Err(p) => p.into_inner().remove(key).unwrap_or_default(),
        }
    }

    fn put_memory(&self, key: String, memory: RepoMemory) {
        match self.memory.lock() {
            Ok(mut m) => m.insert(key, memory),
            Err(p) => p.into_inner().insert(key, memory),
        };
    }
}

/// Runs the GitRepo reconciler (and the webhook when `webhook_addr` is set) until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) -> Result<(), GitopsError> {
    let gitops = Arc::new(Gitops::new(ctx.clone()));
    let webhook = {
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        async move {
            match ctx.config.webhook_addr {
                Some(addr) => webhook::serve(ctx, addr, shutdown)
                    .await
                    .map_err(GitopsError::from),
                None => Ok(()),
            }
        }
    };
    let controller = run_controller(gitops, shutdown.clone());
    tokio::try_join!(webhook, controller)?;
    Ok(())
}

async fn run_controller(
    gitops: Arc<Gitops>,
    shutdown: CancellationToken,
) -> Result<(), GitopsError> {
    let client = gitops.ctx.client.clone();
    let workers = u16::try_from(gitops.ctx.config.gitrepo_workers.max(1)).unwrap_or(u16::MAX);
    let controller = Controller::new(
        Api::<GitRepo>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = controller.store();
    let ca_store = store.clone();
    let ctx = gitops.ctx.clone();
    let trigger_gitops = gitops.clone();
    let controller = controller
        .watches(
            Api::<Bundle>::all(client.clone()),
            watcher::Config::default().labels(REPO_LABEL),
            |b: Bundle| {
                let repo = b
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(REPO_LABEL))
                    .cloned();
                let ns = b.metadata.namespace.clone();
                repo.zip(ns)
                    .map(|(repo, ns)| ObjectRef::<GitRepo>::new(&repo).within(&ns))
            },
        )
        .reconcile_on(
            gitops
                .deployments
                .subscribe_with_own_writes()
                .filter_map(move |bd| {
                    let labels = bd.metadata.labels.as_ref();
                    // A GitRepo whose reconcile is scheduled already takes this change in then.
                    let owner = labels
                        .and_then(|l| l.get(REPO_LABEL).zip(l.get(BUNDLE_NAMESPACE_LABEL)))
                        .filter(|(repo, ns)| {
                            !trigger_gitops
                                .scheduled
                                .covers(&format!("{ns}/{repo}"), Instant::now())
                        })
                        .map(|(repo, ns)| ObjectRef::<GitRepo>::new(repo).within(ns));
                    futures::future::ready(owner)
                }),
        )
        .watches(
            Api::<GitRepoRestriction>::all(client.clone()),
            watcher::Config::default(),
            move |r: GitRepoRestriction| {
                let ns = r.metadata.namespace.unwrap_or_default();
                store
                    .state()
                    .into_iter()
                    .filter(|g| g.metadata.namespace.as_deref() == Some(ns.as_str()))
                    .map(|g| ObjectRef::from_obj(&*g))
                    .collect::<Vec<_>>()
            },
        )
        .watches(
            Api::<Secret>::namespaced(client.clone(), cabundle::RANCHER_NAMESPACE),
            watcher::Config::default(),
            move |s: Secret| {
                let name = s.metadata.name.unwrap_or_default();
                if name != cabundle::TLS_CA_SECRET && name != cabundle::TLS_CA_ADDITIONAL_SECRET {
                    return Vec::new();
                }
                // Any GitRepo may use the Rancher CA (for git or for Helm).
                ca_store
                    .state()
                    .into_iter()
                    .map(|g| ObjectRef::from_obj(&*g))
                    .collect::<Vec<_>>()
            },
        );
    let controller = match gitops.ctx.config.gitjob_mode {
        GitJobMode::Job => {
            controller.owns(Api::<Job>::all(client.clone()), watcher::Config::default())
        }
        GitJobMode::InProcess => controller,
    };
    controller
        .with_config(ControllerRuntimeConfig::default().concurrency(workers))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, gitops)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "GitRepo reconcile");
            }
            futures::future::ready(())
        })
        .await;
    drop(ctx);
    Ok(())
}

fn error_policy(_gitrepo: Arc<GitRepo>, error: &ReconcileError, _gitops: Arc<Gitops>) -> Action {
    tracing::warn!(%error, "GitRepo reconcile failed, retrying");
    Action::requeue(Duration::from_secs(5))
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn reconcile(gitrepo: Arc<GitRepo>, gitops: Arc<Gitops>) -> Result<Action, ReconcileError> {
    let namespace = gitrepo.metadata.namespace.clone().unwrap_or_default();
    let name = gitrepo.metadata.name.clone().unwrap_or_default();
    let key = format!("{namespace}/{name}");
    // Before the caches are read: a trigger dropped while this reconcile was scheduled is
    // then seen by this read.
    gitops.scheduled.start(&key);
    let started = Instant::now();
    // Everything but the statuses of its bundles and deployments (and its own status).
    let inputs = crate::bundle::hash_json(&(
        gitrepo.metadata.generation,
        &gitrepo.metadata.labels,
        &gitrepo.metadata.annotations,
        &gitrepo.metadata.finalizers,
        gitrepo.metadata.deletion_timestamp.is_some(),
    ));
    if let Some(wait) = gitops.throttle.wait(&key, inputs, started) {
        gitops.scheduled.schedule(&key, started + wait);
        return Ok(Action::requeue(wait));
    }
    let span = tracing::info_span!("gitrepo", gitrepo = %key);
    let result = reconcile_inner(&gitrepo, &gitops, &namespace, &name, &key)
        .instrument(span)
        .await;
    match &result {
        Ok(_) if gitrepo.metadata.deletion_timestamp.is_none() => {
            gitops.throttle.reconciled(&key, inputs, started, true);
        }
        _ => gitops.throttle.forget(&key),
    }
    gitops
        .ctx
        .metrics
        .reconciled("gitrepo", result.is_ok(), started.elapsed().as_secs_f64());
    result
}

fn kube_err(key: &str, action: impl Into<String>) -> impl FnOnce(kube::Error) -> ReconcileError {
    let key = key.to_string();
    let action = action.into();
    move |source| ReconcileError {
        key,
        action,
        source,
    }
}

/// The cache folder of a GitRepo for its current URL.
fn cache_dir(root: &Path, namespace: &str, name: &str, url: &str) -> PathBuf {
    use sha2::Digest as _;
    let hash = hex::encode(sha2::Sha256::digest(url.as_bytes()));
    root.join(namespace).join(format!("{name}-{}", &hash[..8]))
}

/// Removes every cache folder of the GitRepo (any URL it had).
fn remove_cache_dirs(root: &Path, namespace: &str, name: &str) {
    let Ok(entries) = std::fs::read_dir(root.join(namespace)) else {
        return;
    };
    let prefix = format!("{name}-");
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let is_ours = file_name
            .strip_prefix(&prefix)
            .is_some_and(|h| h.len() == 8 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if is_ours && let Err(e) = std::fs::remove_dir_all(entry.path()) {
            tracing::warn!(path = %entry.path().display(), error = %e, "removing a git cache folder");
        }
    }
}

async fn reconcile_inner(
    gitrepo: &GitRepo,
    gitops: &Gitops,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Action, ReconcileError> {
    let ctx = &gitops.ctx;
    let client = ctx.client.clone();
    let gitrepos: Api<GitRepo> = Api::namespaced(client.clone(), namespace);
    let bundle_api: Api<Bundle> = Api::namespaced(client.clone(), namespace);
    let finalizers = gitrepo.metadata.finalizers.clone().unwrap_or_default();
    let has_finalizer = finalizers.iter().any(|f| f == GITREPO_FINALIZER);

    if gitrepo.metadata.deletion_timestamp.is_some() {
        if has_finalizer {
            bundles::purge(&bundle_api, name)
                .await
                .map_err(kube_err(key, "deleting its bundles"))?;
            let remaining: Vec<String> = finalizers
                .iter()
                .filter(|f| *f != GITREPO_FINALIZER)
                .cloned()
                .collect();
            let patch = serde_json::json!({"metadata": {
                "finalizers": remaining,
                "resourceVersion": gitrepo.metadata.resource_version,
            }});
            match gitrepos
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(kube_err(key, "removing its finalizer")(e)),
            }
            tracing::info!("GitRepo deleted, bundles purged");
        }
        let _ = gitops.take_memory(key);
        let root = ctx.config.git_cache_dir.clone();
        let (ns, n) = (namespace.to_string(), name.to_string());
        let _ = fleet_api::task::spawn_blocking(move || remove_cache_dirs(&root, &ns, &n)).await;
        return Ok(Action::await_change());
    }

    let previous = gitrepo.status.clone().unwrap_or_default();
    let restrictions = Api::<GitRepoRestriction>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(kube_err(key, "listing GitRepoRestrictions"))?
        .items;
    let spec = match restriction::authorize_and_assign_defaults(&gitrepo.spec, &restrictions) {
        Ok(spec) => spec,
        Err(reason) => {
            tracing::info!(%reason, "GitRepo not accepted");
            let desired = status::rejected_status(&previous, &reason, &now_rfc3339());
            write_status(&gitrepos, gitrepo, &previous, desired, key).await?;
            // Restriction changes re-trigger through the watch; this is only a safety net.
            return Ok(Action::requeue(ctx.config.gitrepo_sync_period));
        }
    };

    if !has_finalizer {
        let mut with = finalizers.clone();
        with.push(GITREPO_FINALIZER.to_string());
        let patch = serde_json::json!({"metadata": {
            "finalizers": with,
            "resourceVersion": gitrepo.metadata.resource_version,
        }});
        gitrepos
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(kube_err(key, "adding its finalizer"))?;
        // The update triggers the next reconcile, which sees the finalizer.
        return Ok(Action::await_change());
    }
    if spec.repo.is_empty() {
        return Ok(Action::await_change());
    }

    let dir = cache_dir(&ctx.config.git_cache_dir, namespace, name, &spec.repo);
    let mut memory = gitops.take_memory(key);
    if memory.cache_dir != dir {
        // New GitRepo, or its URL changed: start over, but keep what was written.
        let written = std::mem::take(&mut memory.written);
        memory = RepoMemory {
            cache_dir: dir.clone(),
            written,
            ..Default::default()
        };
    }
    let outcome = sync_repo(gitrepo, &spec, gitops, &mut memory, namespace, name, key).await;
    let interval = poll::polling_interval(gitrepo, ctx.config.default_polling_interval);
    let now = gitops.started.elapsed();
    let until_poll = poll::until_next_poll(&memory.observed, now, interval);
    gitops.put_memory(key.to_string(), memory);
    let soon = outcome?;
    if soon {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }

    let sync_period = ctx.config.gitrepo_sync_period;
    let next = if gitrepo.spec.disable_polling {
        sync_period
    } else {
        let wait = if until_poll.is_zero() {
            interval
        } else {
            until_poll
        };
        gitops.jitter.add(wait).min(sync_period)
    };
    Ok(Action::requeue(next))
}

/// Poll, build, write bundles (or run the git job) and status for an accepted GitRepo.
/// Returns whether the reconcile should come back soon.
async fn sync_repo(
    gitrepo: &GitRepo,
    spec: &GitRepoSpec,
    gitops: &Gitops,
    memory: &mut RepoMemory,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<bool, ReconcileError> {
    let ctx = &gitops.ctx;
    let client = ctx.client.clone();
    let gitrepos: Api<GitRepo> = Api::namespaced(client.clone(), namespace);
    let bundle_api: Api<Bundle> = Api::namespaced(client.clone(), namespace);
    let previous = gitrepo.status.clone().unwrap_or_default();
    let generation = gitrepo.metadata.generation.unwrap_or(0);
    let now = gitops.started.elapsed();
    let interval = poll::polling_interval(gitrepo, ctx.config.default_polling_interval);

    // The CA bundles (GitRepo caBundle, else Rancher's), copied next to the GitRepo.
    let cas = cabundle::resolve(&client, spec.ca_bundle.as_ref()).await;
    let ca_key = match &cas {
        Ok(c) => c.git_fingerprint(),
        Err(e) => format!("error: {e}"),
    };
    match &cas {
        Ok(c) => {
            if let Some(warning) = &c.helm_warning {
                tracing::warn!(%warning, "the Rancher CA bundle is not used for Helm repositories");
            }
            cabundle::sync_secrets(&client, gitrepo, c)
                .await
                .map_err(|(action, e)| kube_err(key, action)(e))?;
        }
        Err(e) => tracing::info!(error = %e, "no usable CA bundle"),
    }

    let mut polled_at = None;
    let reason = poll::poll_reason(gitrepo, &memory.observed, now, interval).or_else(|| {
        (memory.ca_key.as_deref() != Some(ca_key.as_str()))
            .then_some(poll::PollReason::CaBundleChanged)
    });
    if let Some(reason) = reason {
        tracing::debug!(?reason, "polling the repository");
        memory.observed = Observed {
            last_poll: Some(now),
            generation,
            webhook_commit: previous.webhook_commit.clone(),
        };
        polled_at = Some(now_rfc3339());
        memory.ca_key = Some(ca_key.clone());
        let git_ca = cas
            .as_ref()
            .map(|c| c.git.clone())
            .map_err(|e| format!("git repository {}: CA bundle: {e}", spec.repo));
        let request = match git_ca {
            Ok(ca) => fetch_request(ctx, namespace, spec, ca).await,
            Err(msg) => Err(msg),
        };
        let result = match request {
            Ok(req) => {
                let dir = memory.cache_dir.join("repo.git");
                fleet_api::task::spawn_blocking(move || {
                    fetch::fetch(&req, &dir).map_err(|e| e.to_string())
                })
                .await
                .unwrap_or_else(|e| Err(format!("git fetch task failed: {e}")))
            }
            Err(msg) => Err(msg),
        };
        match result {
            Ok(fetched) => {
                if memory.fetched_commit.as_deref() != Some(&fetched.commit) {
                    tracing::info!(commit = %fetched.commit, "new commit from repository");
                }
                memory.fetched_commit = Some(fetched.commit);
                memory.fetch_error = None;
            }
            Err(msg) => {
                tracing::info!(error = %msg, "fetching the repository failed");
                memory.fetch_error = Some(msg);
            }
        }
    }

    let mut soon = false;
    let mut git_job = None;
    if ctx.config.gitjob_mode == GitJobMode::Job
        && let (Some(commit), Ok(cas)) = (memory.fetched_commit.clone(), &cas)
    {
        let outcome = sync_job(gitrepo, spec, gitops, memory, &commit, cas, key).await?;
        soon = outcome.requeue_soon;
        git_job = memory.job_state.as_ref().map(|s| s.status().to_string());
    }

    // Build the bundles when the commit, the spec, forceSyncGeneration or the Helm CA changed,
    // and again every sync period (which also repairs anything a user changed by hand).
    if ctx.config.gitjob_mode == GitJobMode::InProcess
        && let (Some(commit), Ok(cas)) = (memory.fetched_commit.clone(), &cas)
    {
        let build_key = (
            commit.clone(),
            generation,
            spec.force_sync_generation,
            cas.helm_fingerprint(),
        );
        let resync_due = memory
            .last_build
            .is_some_and(|t| now.saturating_sub(t) >= ctx.config.gitrepo_sync_period);
        if memory.build_key.as_ref() != Some(&build_key) || resync_due {
            memory.build_key = Some(build_key);
            memory.last_build = Some(now);
            let job = bundles::BuildJob {
                url: spec.repo.clone(),
                cache_dir: memory.cache_dir.clone(),
                commit: commit.clone(),
                name: name.to_string(),
                namespace: namespace.to_string(),
                spec: spec.clone(),
                charts: fleet_bundle::bundlereader::ChartDownload {
                    auth: fleet_helm::repo::RepoOptions {
                        ca_bundle: cas.helm.clone(),
                        insecure_skip_tls_verify: spec.insecure_skip_tls_verify,
                        ..Default::default()
                    },
                },
            };
            let permit = gitops.build_slots.acquire().await;
            let built = fleet_api::task::spawn_blocking(move || job.run())
                .await
                .unwrap_or_else(|e| {
                    Err(bundles::BuildError::Failed(format!(
                        "bundle build task failed: {e}"
                    )))
                });
            drop(permit);
            match built {
                Ok(desired) => {
                    tracing::info!(%commit, bundles = desired.len(), "bundles built");
                    memory.desired = Some(desired);
                    memory.desired_is_current = true;
                    memory.build_error = None;
                }
                Err(bundles::BuildError::NothingToDeploy(msg)) => {
                    tracing::info!(%commit, error = %msg, "no folder has anything to deploy; the GitRepo's bundles are pruned");
                    memory.desired = Some(Vec::new());
                    memory.desired_is_current = true;
                    memory.build_error = Some(msg);
                }
                Err(bundles::BuildError::Failed(msg)) => {
                    tracing::info!(%commit, error = %msg, "building bundles failed; existing bundles are kept");
                    memory.desired_is_current = false;
                    memory.build_error = Some(msg);
                }
            }
        }
    }

    let existing = bundle_api
        .list(&ListParams::default().labels(&format!("{REPO_LABEL}={name}")))
        .await
        .map_err(kube_err(key, "listing its bundles"))?
        .items;
    let mut existing = existing;
    if ctx.config.gitjob_mode == GitJobMode::InProcess
        && memory.desired_is_current
        && let Some(desired) = &memory.desired
    {
        let plan = bundles::plan(desired, &existing, &memory.written);
        if !plan.is_empty() {
            bundles::apply(&bundle_api, plan, &mut memory.written)
                .await
                .map_err(|(action, e)| kube_err(key, action)(e))?;
            existing = bundle_api
                .list(&ListParams::default().labels(&format!("{REPO_LABEL}={name}")))
                .await
                .map_err(kube_err(key, "listing its bundles"))?
                .items;
        }
    }

    if !gitops
        .deployments
        .wait_synced(Duration::from_secs(60))
        .await
    {
        tracing::warn!("the BundleDeployment cache has not finished its first list; retrying");
        return Ok(true);
    }
    let deployments = gitops.deployments.labelled(REPO_LABEL, name, namespace);
    let built = match ctx.config.gitjob_mode {
        GitJobMode::InProcess => memory.desired.is_some() && memory.build_error.is_none(),
        GitJobMode::Job => matches!(memory.job_state, Some(job::JobState::Current(_))),
    };
    let learned = Learned {
        generation,
        force_sync_generation: spec.force_sync_generation,
        commit: memory.fetched_commit.clone(),
        fetch_error: memory.fetch_error.clone(),
        build_error: memory.build_error.clone(),
        built,
        git_job,
        polled_at,
    };
    let desired =
        status::desired_status(&previous, &learned, &existing, &deployments, &now_rfc3339());
    write_status(&gitrepos, gitrepo, &previous, desired, key).await?;
    Ok(soon)
}

/// Job mode: keeps the job RBAC applied and the Job of the current commit running, and
/// remembers the Job's state (a failed Job's message becomes the build error).
async fn sync_job(
    gitrepo: &GitRepo,
    spec: &GitRepoSpec,
    gitops: &Gitops,
    memory: &mut RepoMemory,
    commit: &str,
    cas: &cabundle::CaBundles,
    key: &str,
) -> Result<job::JobOutcome, ReconcileError> {
    let ctx = &gitops.ctx;
    let previous = gitrepo.status.clone().unwrap_or_default();
    let generation = gitrepo.metadata.generation.unwrap_or(0);
    let job_key = (commit.to_string(), generation, spec.force_sync_generation);
    if memory.job_key.is_none()
        && previous.commit == commit
        && previous.observed_generation == generation
        && previous.update_generation == spec.force_sync_generation
        && previous.git_job_status == fleet_api::consts::GIT_JOB_STATUS_CURRENT
    {
        // A Job already ran for this state before the controller restarted.
        memory.job_key = Some(job_key.clone());
        memory.job_state = Some(job::JobState::Current(String::new()));
    }
    if memory.rbac_generation != Some(generation) {
        job::apply_rbac(&ctx.client, gitrepo)
            .await
            .map_err(|(action, e)| kube_err(key, action)(e))?;
        memory.rbac_generation = Some(generation);
    }
    let wanted = memory.job_key.as_ref() != Some(&job_key);
    let outcome = job::sync(job::SyncRequest {
        client: &ctx.client,
        gitrepo,
        spec,
        commit,
        wanted,
        image: &ctx.config.gitjob_image,
        system_namespace: &ctx.config.system_namespace,
        cas,
    })
    .await
    .map_err(|(action, e)| kube_err(key, action)(e))?;
    let Some(outcome) = outcome else {
        return Ok(job::JobOutcome {
            state: memory
                .job_state
                .clone()
                .unwrap_or(job::JobState::InProgress(String::new())),
            requeue_soon: false,
        });
    };
    if !outcome.requeue_soon {
        memory.job_key = Some(job_key);
    }
    memory.build_error = match &outcome.state {
        job::JobState::Failed(message) => Some(message.clone()),
        _ => None,
    };
    memory.job_state = Some(outcome.state.clone());
    Ok(outcome)
}

/// Replaces the status when it differs from `previous` (optimistic concurrency: a conflict
/// means a newer GitRepo is on its way to the reconciler).
async fn write_status(
    api: &Api<GitRepo>,
    gitrepo: &GitRepo,
    previous: &fleet_api::GitRepoStatus,
    desired: fleet_api::GitRepoStatus,
    key: &str,
) -> Result<(), ReconcileError> {
    if &desired == previous {
        return Ok(());
    }
    let mut updated = gitrepo.clone();
    updated.status = Some(desired);
    let name = gitrepo.metadata.name.clone().unwrap_or_default();
    match api
        .replace_status(&name, &PostParams::default(), &updated)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {
            tracing::debug!("GitRepo changed while writing its status; the next reconcile retries");
            Ok(())
        }
        Err(e) => Err(kube_err(key, "writing its status")(e)),
    }
}

/// The fetch request for a GitRepo: URL, branch/revision, credentials from its client secret
/// (basic auth), the CA bundle chosen by [`cabundle`] and TLS settings. Errors name the
/// repository and the secret.
async fn fetch_request(
    ctx: &Context,
    namespace: &str,
    spec: &GitRepoSpec,
    ca_bundle: Option<Vec<u8>>,
) -> Result<FetchRequest, String> {
    let url = spec.repo.clone();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let explicit = !spec.client_secret_name.is_empty();
    let secret_name = if explicit {
        spec.client_secret_name.as_str()
    } else {
        DEFAULT_CLIENT_SECRET_NAME
    };
    let secret = secrets.get_opt(secret_name).await.map_err(|e| {
        format!("git repository {url}: reading credentials: secret {namespace}/{secret_name}: {e}")
    })?;
    let auth = match secret {
        None if explicit => {
            return Err(format!(
                "git repository {url}: reading credentials: secret {namespace}/{secret_name} not found"
            ));
        }
        None => None,
        Some(secret) => Some(basic_auth(&secret).map_err(|m| {
            format!(
                "git repository {url}: reading credentials: secret {namespace}/{secret_name}: {m}"
            )
        })?),
    };
    Ok(FetchRequest {
        url,
        branch: spec.branch.clone(),
        revision: spec.revision.clone(),
        auth,
        ca_bundle,
        insecure_skip_tls_verify: spec.insecure_skip_tls_verify,
        timeout: ctx.config.git_client_timeout,
    })
}

/// Username and password of a basic-auth Secret.
fn basic_auth(secret: &Secret) -> Result<BasicAuth, String> {
    let type_ = secret.type_.as_deref().unwrap_or("Opaque");
    if type_ == "kubernetes.io/ssh-auth" {
        return Err("ssh keys are not supported by fleet-rs yet; use an https URL and a kubernetes.io/basic-auth secret".into());
    }
    let data = secret.data.clone().unwrap_or_default();
    let string_data = secret.string_data.clone().unwrap_or_default();
    let get = |k: &str| {
        data.get(k)
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .or_else(|| string_data.get(k).cloned())
    };
    let username = get("username").ok_or("has no username key")?;
    let password = get("password").ok_or("has no password key")?;
    Ok(BasicAuth { username, password })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    #[test]
    fn cache_dirs_depend_on_the_url() {
        let root = Path::new("/cache");
        let a = cache_dir(root, "ns", "repo", "https://a");
        let b = cache_dir(root, "ns", "repo", "https://b");
        assert_ne!(a, b);
        assert!(a.starts_with("/cache/ns"));
        assert!(
            a.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("repo-")
        );
    }

    #[test]
    fn basic_auth_secrets_are_read() {
        let mut s = Secret {
            type_: Some("kubernetes.io/basic-auth".into()),
            data: Some(
                [
                    ("username".to_string(), ByteString(b"fleet".to_vec())),
                    ("password".to_string(), ByteString(b"pw".to_vec())),
                ]
                .into(),
            ),
            ..Default::default()
        };
        assert_eq!(
            basic_auth(&s).unwrap(),
            BasicAuth {
                username: "fleet".into(),
                password: "pw".into()
            }
        );
        s.type_ = Some("kubernetes.io/ssh-auth".into());
        assert!(basic_auth(&s).unwrap_err().contains("ssh"));
        let empty = Secret::default();
        assert_eq!(basic_auth(&empty).unwrap_err(), "has no username key");
    }
}

//! The cluster reconciler (Fleet's `reconciler/cluster_controller.go` plus the namespace part
//! of agentmanagement's cluster controller): assigns each Cluster its cluster namespace
//! (`status.namespace`), creates that Namespace, and aggregates the BundleDeployments in it
//! into the Cluster status: `summary`, `resourceCounts`, `readyGitRepos`/`desiredReadyGitRepos`,
//! `display`, and the `Ready`/`Processed` conditions.
//!
//! The agent writes `status.agent` (its heartbeat); this reconciler sends only a merge patch
//! of the fields it owns, and nothing when nothing changed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleet_api::consts::{
    BUNDLE_NAMESPACE_LABEL, CLUSTER_ANNOTATION, CLUSTER_LABEL, CLUSTER_NAMESPACE_ANNOTATION,
    CLUSTER_NAMESPACE_LABEL, DISPLAY_STATE_WAIT_CHECK_IN, MANAGED_LABEL, REPO_LABEL, condition,
};
use fleet_api::{BundleDeployment, BundleState, Cluster, ClusterStatus, ResourceCounts};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::controller::{Action, Config as RuntimeConfig};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource as _, ResourceExt as _};
use tokio_util::sync::CancellationToken;

use crate::Context;
use crate::clusters::{ClusterChange, ClusterIndex};
use crate::deployments::DeploymentIndex;
use crate::summary::{
    display_state, is_empty_patch, merge_patch_diff, ready_ratio, set_condition,
    set_ready_condition, summarize,
};
use crate::target::cluster_namespace_name;
use crate::throttle::{ScheduledReconciles, StatusWriteThrottle};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

/// Why one reconcile of a cluster failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{action} for cluster {cluster}: {source}")]
    Kube {
        action: String,
        cluster: String,
        #[source]
        source: kube::Error,
    },
    #[error("cluster {cluster}: the BundleDeployment cache has not finished its first list")]
    NotSynced { cluster: String },
}

/// The Namespace holding a cluster's BundleDeployments, as Fleet creates it.
pub fn cluster_namespace_object(
    cluster_namespace: &str,
    cluster_name: &str,
    name: &str,
) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([(
                MANAGED_LABEL.to_string(),
                "true".to_string(),
            )])),
            annotations: Some(BTreeMap::from([
                (
                    CLUSTER_NAMESPACE_ANNOTATION.to_string(),
                    cluster_namespace.to_string(),
                ),
                (CLUSTER_ANNOTATION.to_string(), cluster_name.to_string()),
            ])),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The Cluster status this reconciler wants: `cluster`'s status with the fields it owns
/// recomputed from `bds` (the deployments in the cluster namespace). Agent-owned fields are
/// carried over unchanged.
pub fn desired_cluster_status(
    cluster: &Cluster,
    bds: &[&BundleDeployment],
    now: &str,
) -> ClusterStatus {
    let mut status = cluster.status.clone().unwrap_or_default();
    if status.namespace.is_empty() {
        status.namespace = cluster_namespace_name(
            cluster.metadata.namespace.as_deref().unwrap_or(""),
            cluster.metadata.name.as_deref().unwrap_or(""),
        );
    }
    let mut bds: Vec<&BundleDeployment> = bds
        .iter()
        .copied()
        .filter(|bd| bd.metadata.deletion_timestamp.is_none())
        .collect();
    bds.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    status.summary = summarize(bds.iter().copied());

    let mut counts = ResourceCounts::default();
    // A GitRepo is ready on this cluster when all its deployments here are ready.
    let mut repos: BTreeMap<(String, String), bool> = BTreeMap::new();
    for bd in &bds {
        if let Some(s) = &bd.status {
            counts += s.resource_counts;
        }
        let labels = bd.labels();
        if let (Some(repo), Some(ns)) = (labels.get(REPO_LABEL), labels.get(BUNDLE_NAMESPACE_LABEL))
            && !repo.is_empty()
            && !ns.is_empty()
        {
            let ready = bd.state() == BundleState::Ready;
            repos
                .entry((ns.clone(), repo.clone()))
                .and_modify(|r| *r &= ready)
                .or_insert(ready);
        }
    }
    status.resource_counts = counts;
    status.desired_ready_git_repos = repos.len() as i64;
    status.ready_git_repos = repos.values().filter(|r| **r).count() as i64;

    set_ready_condition(&mut status.conditions, "Bundle", &status.summary, now);
    set_condition(
        &mut status.conditions,
        condition::PROCESSED,
        true,
        "",
        "",
        now,
    );
    status.display.ready_bundles = ready_ratio(status.summary.ready, status.summary.desired_ready);
    status.display.state = if status.agent.last_seen.is_none() {
        DISPLAY_STATE_WAIT_CHECK_IN.to_string()
    } else {
        display_state(&status.summary)
    };
    status
}

/// The merge patch for the status subresource that turns the observed status into `desired`
/// (empty object when nothing changes).
pub fn status_patch(cluster: &Cluster, desired: &ClusterStatus) -> serde_json::Value {
    let unchanged = match &cluster.status {
        Some(status) => status == desired,
        None => *desired == ClusterStatus::default(),
    };
    if unchanged {
        // Most reconciles change nothing: no need to encode both statuses to find out.
        return serde_json::json!({});
    }
    let old = serde_json::to_value(cluster.status.clone().unwrap_or_default()).unwrap_or_default();
    let new = serde_json::to_value(desired).unwrap_or_default();
    merge_patch_diff(&old, &new)
}

struct ClusterContext {
    ctx: Arc<Context>,
    /// This term's stop: waits for the caches end with it.
    shutdown: CancellationToken,
    /// Cluster namespaces known to exist.
    namespaces: Mutex<HashSet<String>>,
    /// Spaces each Cluster's status writes while its deployments change, within a rate all
    /// Clusters share.
    throttle: StatusWriteThrottle,
    /// The controller's BundleDeployment cache.
    deployments: Arc<DeploymentIndex>,
    /// The controller's Cluster cache.
    clusters: Arc<ClusterIndex>,
    /// Clusters whose reconcile waits for the status interval: their deployments' changes
    /// meanwhile need no reconcile of their own.
    scheduled: ScheduledReconciles,
    /// [`status_relevance`] of the status each Cluster was last patched to: the watch event of
    /// the reconciler's own write does not trigger it again.
    written: Mutex<HashMap<String, u64>>,
}

/// What of a Cluster its reconcile reads or owns: which Cluster it is, whether its agent
/// checked in, its namespace, and the status fields the reconciler writes (conditions
/// included: another writer's merge patch replaces the whole list). Agent heartbeats and the
/// agent-management fields do not trigger a reconcile.
pub fn status_relevance(meta: &ObjectMeta, status: Option<&ClusterStatus>) -> u64 {
    crate::bundle::hash_json(&(
        &meta.uid,
        meta.deletion_timestamp.is_some(),
        status.map(|s| {
            (
                &s.namespace,
                s.agent.last_seen.is_some(),
                &s.summary,
                &s.resource_counts,
                s.ready_git_repos,
                s.desired_ready_git_repos,
                &s.display,
                &s.conditions,
            )
        }),
    ))
}

/// Whether a change of the Cluster `key` whose [`status_relevance`] is `relevance` needs a
/// reconcile, given the relevance `seen` last of it and the one of the reconciler's own last
/// write (`written`).
pub fn needs_reconcile(relevance: u64, seen: Option<u64>, written: Option<u64>) -> bool {
    seen != Some(relevance) && written != Some(relevance)
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn ensure_namespace(
    cctx: &ClusterContext,
    cluster: &Cluster,
    name: &str,
) -> Result<(), kube::Error> {
    if cctx
        .namespaces
        .lock()
        .map(|known| known.contains(name))
        .unwrap_or(false)
    {
        return Ok(());
    }
    // Created without reading it first (one round trip per new cluster instead of two): one
    // that exists already answers 409.
    let api: Api<Namespace> = Api::all(cctx.ctx.client.clone());
    let ns = cluster_namespace_object(
        cluster.metadata.namespace.as_deref().unwrap_or(""),
        cluster.metadata.name.as_deref().unwrap_or(""),
        name,
    );
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => tracing::info!(namespace = %name, "created cluster namespace"),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e),
    }
    if let Ok(mut known) = cctx.namespaces.lock() {
        known.insert(name.to_string());
    }
    Ok(())
}

async fn reconcile(
    cluster: Arc<Cluster>,
    cctx: Arc<ClusterContext>,
) -> Result<Action, ReconcileError> {
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let key = format!("{ns}/{name}");
    let started = std::time::Instant::now();
    let span = tracing::debug_span!("reconcile_cluster", cluster = %key);
    // Before the caches are read: a trigger dropped while this reconcile was scheduled is
    // then seen by this read.
    cctx.scheduled.start(&key);
    let result = async {
        if cluster.meta().deletion_timestamp.is_some() {
            cctx.throttle.forget(&key);
            return Ok(Action::await_change());
        }
        // A status written moments ago is brought up to date once the interval is over, with
        // every change since; the namespace is assigned at once.
        let assigned = cluster
            .status
            .as_ref()
            .is_some_and(|s| !s.namespace.is_empty());
        let now = std::time::Instant::now();
        if assigned && let Some(wait) = cctx.throttle.wait(&key, now) {
            cctx.scheduled.schedule(&key, now + wait);
            return Ok(Action::requeue(wait));
        }
        let cluster_ns_name = cluster
            .status
            .as_ref()
            .map(|s| s.namespace.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| cluster_namespace_name(&ns, &name));
        ensure_namespace(&cctx, &cluster, &cluster_ns_name)
            .await
            .map_err(|source| ReconcileError::Kube {
                action: format!("creating namespace {cluster_ns_name}"),
                cluster: key.clone(),
                source,
            })?;
        let synced = cctx.deployments.synced();
        if !crate::ready_unless_stopped(&cctx.shutdown, Duration::from_secs(60), synced).await {
            return Err(ReconcileError::NotSynced {
                cluster: key.clone(),
            });
        }
        let bds = cctx.deployments.in_namespace(&cluster_ns_name);
        let bd_refs: Vec<&BundleDeployment> = bds.iter().map(AsRef::as_ref).collect();
        let desired = desired_cluster_status(&cluster, &bd_refs, &now_rfc3339());
        let patch = status_patch(&cluster, &desired);
        if !is_empty_patch(&patch) {
            // Over the budget shared by every Cluster, the write waits for a slot of its own
            // and then carries every change since. Asked only when there is something to
            // write: a reconcile that changes nothing takes no slot.
            let now = std::time::Instant::now();
            if assigned && let Some(wait) = cctx.throttle.reserve(&key, now) {
                cctx.scheduled.schedule(&key, now + wait);
                return Ok(Action::requeue(wait));
            }
            // Before the write: its watch event may come before the response.
            if let Ok(mut written) = cctx.written.lock() {
                written.insert(
                    key.clone(),
                    status_relevance(cluster.meta(), Some(&desired)),
                );
            }
            crate::patch_status_unread::<Cluster>(
                &cctx.ctx.client,
                Some(&ns),
                &name,
                &serde_json::json!({ "status": patch }),
            )
            .await
            .map_err(|source| ReconcileError::Kube {
                action: "writing status".into(),
                cluster: key.clone(),
                source,
            })?;
            cctx.throttle.wrote(&key, std::time::Instant::now());
        }
        Ok(Action::requeue(Duration::from_secs(600)))
    };
    let result = tracing::Instrument::instrument(result, span).await;
    cctx.ctx
        .metrics
        .reconciled("cluster", result.is_ok(), started.elapsed().as_secs_f64());
    result
}

fn error_policy(cluster: Arc<Cluster>, error: &ReconcileError, _: Arc<ClusterContext>) -> Action {
    tracing::warn!(cluster = %format!("{}/{}", cluster.namespace().unwrap_or_default(), cluster.name_any()), %error, "cluster reconcile failed, retrying");
    Action::requeue(Duration::from_secs(5))
}

/// The Clusters whose aggregation a BundleDeployment feeds, from its cluster labels.
fn cluster_of(bd: &BundleDeployment) -> Option<ObjectRef<Cluster>> {
    let labels = bd.labels();
    let name = labels.get(CLUSTER_LABEL)?;
    let ns = labels.get(CLUSTER_NAMESPACE_LABEL)?;
    Some(ObjectRef::new(name).within(ns))
}

/// Runs the cluster reconciler with `config.cluster_workers` concurrent reconciles until
/// `shutdown`. A cluster is reconciled when it changes and when a BundleDeployment in its
/// namespace changes.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) -> Result<(), ClusterError> {
    let deployments = ctx.deployment_index();
    let deployment_changes = deployments.subscribe_with_own_writes();
    let clusters = ctx.cluster_index();
    let cctx = Arc::new(ClusterContext {
        ctx: ctx.clone(),
        shutdown: shutdown.clone(),
        namespaces: Mutex::new(HashSet::new()),
        throttle: StatusWriteThrottle::with_budget(
            ctx.config.status_write_interval,
            ctx.config.cluster_status_writes_per_second,
        ),
        deployments,
        clusters: clusters.clone(),
        scheduled: ScheduledReconciles::new(),
        written: Mutex::new(HashMap::new()),
    });
    let trigger_ctx = cctx.clone();
    let written_ctx = cctx.clone();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let cluster_triggers = clusters.subscribe().filter_map(move |change| {
        let cluster = change.cluster();
        let key = format!(
            "{}/{}",
            cluster.namespace().unwrap_or_default(),
            cluster.name_any()
        );
        let trigger = match &change {
            ClusterChange::Applied(cluster) => {
                let relevance = status_relevance(cluster.meta(), cluster.status.as_ref());
                let written = written_ctx
                    .written
                    .lock()
                    .ok()
                    .and_then(|written| written.get(&key).copied());
                let trigger = needs_reconcile(relevance, seen.get(&key).copied(), written);
                seen.insert(key, relevance);
                trigger
            }
            ClusterChange::Deleted(_) => {
                seen.remove(&key);
                if let Ok(mut written) = written_ctx.written.lock() {
                    written.remove(&key);
                }
                true
            }
        };
        futures::future::ready(trigger.then(|| ObjectRef::from_obj(change.cluster().as_ref())))
    });
    // A deployment change of a cluster whose reconcile is scheduled already is taken in by
    // that reconcile.
    let deployment_triggers = deployment_changes.filter_map(move |bd| {
        let cluster = cluster_of(&bd).filter(|cluster| {
            let key = format!(
                "{}/{}",
                cluster.namespace.as_deref().unwrap_or_default(),
                cluster.name
            );
            !trigger_ctx
                .scheduled
                .covers(&key, std::time::Instant::now())
        });
        futures::future::ready(cluster)
    });
    let workers = ctx.config.cluster_workers.clamp(1, u16::MAX as usize) as u16;
    let controller = clusters
        .controller()
        .with_config(RuntimeConfig::default().concurrency(workers))
        .reconcile_on(cluster_triggers)
        .reconcile_on(deployment_triggers)
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(reconcile, error_policy, cctx.clone())
        .for_each(|_| futures::future::ready(()));
    let sweep = async {
        let mut interval = tokio::time::interval(ctx.config.content_gc_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
            if let Err(error) = delete_orphaned_namespaces(&cctx).await {
                tracing::warn!(%error, "cleaning up namespaces of deleted clusters failed");
            }
        }
    };
    tokio::join!(controller, sweep);
    Ok(())
}

/// Cluster namespaces (managed, annotated with their cluster) whose Cluster is not in
/// `clusters` (`ns/name` keys): Fleet deletes them, and with them the BundleDeployments.
pub fn orphaned_cluster_namespaces(
    namespaces: &[Namespace],
    clusters: &HashSet<String>,
) -> Vec<String> {
    namespaces
        .iter()
        .filter(|ns| ns.metadata.deletion_timestamp.is_none())
        .filter(|ns| {
            ns.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(MANAGED_LABEL))
                .is_some_and(|v| v == "true")
        })
        .filter_map(|ns| {
            let ann = ns.metadata.annotations.as_ref()?;
            let cluster_ns = ann.get(CLUSTER_NAMESPACE_ANNOTATION)?;
            let cluster = ann.get(CLUSTER_ANNOTATION)?;
            let name = ns.metadata.name.clone()?;
            (!clusters.contains(&format!("{cluster_ns}/{cluster}"))).then_some(name)
        })
        .collect()
}

async fn delete_orphaned_namespaces(cctx: &ClusterContext) -> Result<(), kube::Error> {
    let client = cctx.ctx.client.clone();
    let namespaces = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default().labels(&format!("{MANAGED_LABEL}=true")))
        .await?
        .items;
    if namespaces.is_empty() {
        return Ok(());
    }
    // Deleting a namespace of a live Cluster would delete its deployments: only a complete
    // cache may say which Clusters are gone.
    let synced = cctx.clusters.synced();
    if !crate::ready_unless_stopped(&cctx.shutdown, Duration::from_secs(60), synced).await {
        return Ok(());
    }
    let clusters: HashSet<String> = cctx
        .clusters
        .all()
        .iter()
        .map(|c| format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()))
        .collect();
    for name in orphaned_cluster_namespaces(&namespaces, &clusters) {
        match Api::<Namespace>::all(client.clone())
            .delete(&name, &Default::default())
            .await
        {
            Ok(_) => {
                tracing::info!(namespace = %name, "deleted the namespace of a deleted cluster")
            }
            Err(e) if crate::bundle::is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
        if let Ok(mut known) = cctx.namespaces.lock() {
            known.remove(&name);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::{AgentStatus, BundleDeploymentSpec, BundleDeploymentStatus, ClusterSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn cluster() -> Cluster {
        let mut c = Cluster::new("c1", ClusterSpec::default());
        c.metadata.namespace = Some("fleet-default".into());
        c
    }

    fn bd(name: &str, repo: &str, ready: bool, counts: ResourceCounts) -> BundleDeployment {
        let mut bd = BundleDeployment::new(
            name,
            BundleDeploymentSpec {
                deployment_id: "m:1".into(),
                staged_deployment_id: "m:1".into(),
                ..Default::default()
            },
        );
        bd.metadata.labels = Some(BTreeMap::from([
            (REPO_LABEL.to_string(), repo.to_string()),
            (
                BUNDLE_NAMESPACE_LABEL.to_string(),
                "fleet-default".to_string(),
            ),
            (CLUSTER_LABEL.to_string(), "c1".to_string()),
            (
                CLUSTER_NAMESPACE_LABEL.to_string(),
                "fleet-default".to_string(),
            ),
        ]));
        bd.status = Some(BundleDeploymentStatus {
            applied_deployment_id: "m:1".into(),
            ready,
            non_modified: true,
            resource_counts: counts,
            ..Default::default()
        });
        bd
    }

    fn counts(ready: i64, not_ready: i64) -> ResourceCounts {
        ResourceCounts {
            ready,
            not_ready,
            desired_ready: ready + not_ready,
            ..Default::default()
        }
    }

    #[test]
    fn new_cluster_gets_namespace_and_waits_for_check_in() {
        let c = cluster();
        let status = desired_cluster_status(&c, &[], "t");
        assert_eq!(
            status.namespace,
            cluster_namespace_name("fleet-default", "c1")
        );
        assert_eq!(status.display.state, "WaitCheckIn");
        assert_eq!(status.display.ready_bundles, "0/0");
        let patch = status_patch(&c, &status);
        assert_eq!(patch["namespace"], status.namespace.as_str());
        assert!(
            patch.get("agent").is_none(),
            "never writes the agent's fields"
        );
    }

    #[test]
    fn aggregates_deployments() {
        let mut c = cluster();
        c.status = Some(ClusterStatus {
            namespace: "cluster-ns".into(),
            agent: AgentStatus {
                last_seen: Some(Time(k8s_openapi::jiff::Timestamp::now())),
                namespace: "cattle-fleet-system".into(),
            },
            ..Default::default()
        });
        let a = bd("a", "repo1", true, counts(2, 0));
        let b = bd("b", "repo1", false, counts(1, 1));
        let d = bd("d", "repo2", true, counts(3, 0));
        let status = desired_cluster_status(&c, &[&d, &a, &b], "t");
        assert_eq!(status.namespace, "cluster-ns");
        assert_eq!(status.summary.ready, 2);
        assert_eq!(status.summary.not_ready, 1);
        assert_eq!(status.summary.desired_ready, 3);
        assert_eq!(
            status.resource_counts,
            ResourceCounts {
                ready: 6,
                not_ready: 1,
                desired_ready: 7,
                ..Default::default()
            }
        );
        assert_eq!(status.desired_ready_git_repos, 2);
        assert_eq!(status.ready_git_repos, 1);
        assert_eq!(status.display.ready_bundles, "2/3");
        assert_eq!(status.display.state, "NotReady");
        let ready = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.message, "NotReady(1) [Bundle b]");

        // Written once, then no churn.
        let mut c2 = c.clone();
        c2.status = Some(status.clone());
        let again = desired_cluster_status(&c2, &[&d, &a, &b], "later");
        assert!(is_empty_patch(&status_patch(&c2, &again)));
    }

    #[test]
    fn only_what_the_reconciler_reads_or_owns_is_relevant() {
        let mut c = cluster();
        c.status = Some(desired_cluster_status(&c, &[], "t"));
        let relevance = |c: &Cluster| status_relevance(&c.metadata, c.status.as_ref());
        let before = relevance(&c);
        let mut heartbeat = c.clone();
        let status = heartbeat.status.as_mut().unwrap();
        status.agent.last_seen = Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap(),
        ));
        let checked_in = relevance(&heartbeat);
        assert_ne!(
            before, checked_in,
            "the first check-in changes the display state"
        );
        let mut later = heartbeat.clone();
        later.status.as_mut().unwrap().agent.last_seen = Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(1_700_000_060).unwrap(),
        ));
        later.status.as_mut().unwrap().agent_env_vars_hash = "abc".into();
        later.metadata.resource_version = Some("99".into());
        assert_eq!(
            relevance(&later),
            checked_in,
            "heartbeats and agent settings are not"
        );
        let mut summed = heartbeat.clone();
        summed.status.as_mut().unwrap().summary.ready = 3;
        assert_ne!(
            relevance(&summed),
            checked_in,
            "an owned field overwritten is"
        );
    }

    #[test]
    fn the_reconcilers_own_write_does_not_trigger_it_again() {
        assert!(needs_reconcile(1, None, None), "a new cluster");
        assert!(
            !needs_reconcile(1, Some(1), None),
            "nothing relevant changed"
        );
        assert!(!needs_reconcile(2, Some(1), Some(2)), "the status it wrote");
        assert!(
            needs_reconcile(3, Some(2), Some(2)),
            "someone else's change after it"
        );
    }

    #[test]
    fn namespaces_of_deleted_clusters_are_orphaned() {
        let keep = cluster_namespace_object("fleet-default", "c1", "cluster-a");
        let orphan = cluster_namespace_object("fleet-default", "gone", "cluster-b");
        let unrelated = Namespace {
            metadata: ObjectMeta {
                name: Some("other".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let clusters = HashSet::from(["fleet-default/c1".to_string()]);
        assert_eq!(
            orphaned_cluster_namespaces(&[keep, orphan, unrelated], &clusters),
            ["cluster-b"]
        );
    }

    #[test]
    fn namespace_object_carries_cluster_annotations() {
        let ns = cluster_namespace_object("fleet-default", "c1", "cluster-x");
        assert_eq!(ns.metadata.labels.unwrap()[MANAGED_LABEL], "true");
        let ann = ns.metadata.annotations.unwrap();
        assert_eq!(ann[CLUSTER_ANNOTATION], "c1");
        assert_eq!(ann[CLUSTER_NAMESPACE_ANNOTATION], "fleet-default");
    }
}

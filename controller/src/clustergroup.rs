//! The cluster group reconciler (Fleet's agentmanagement cluster group handler plus
//! `reconciler/clustergroup_controller.go`): counts the clusters a group selects, the
//! non-ready ones (at most 10 named), sums their bundle summaries and resource counts, and
//! writes `display` and the `Ready` condition — only when something changed.

use std::sync::Arc;
use std::time::Duration;

use fleet_api::{Cluster, ClusterGroup, ClusterGroupStatus, ResourceCounts};
use fleet_bundle::target::Selector;
use futures::StreamExt as _;
use kube::ResourceExt as _;
use kube::api::Api;
use kube::runtime::controller::{Action, Config as RuntimeConfig, Controller};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use crate::Context;
use crate::bundle::{COALESCED_CHANGES, hash_json};
use crate::summary::{
    display_state, is_empty_patch, merge_patch_diff, ready_ratio, set_ready_condition,
};

#[derive(Debug, thiserror::Error)]
pub enum ClusterGroupError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

/// Why one reconcile of a cluster group failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{action} for cluster group {group}: {source}")]
    Kube {
        action: String,
        group: String,
        #[source]
        source: kube::Error,
    },
    #[error("cluster group {group}: cache of Clusters is not ready")]
    NotReady { group: String },
}

/// The clusters of `group`: those in its namespace matching its selector, sorted by name. A
/// group without selector (or with an invalid one) has none.
pub fn clusters_in_group<'a>(
    group: &ClusterGroup,
    clusters: impl IntoIterator<Item = &'a Cluster>,
) -> Vec<&'a Cluster> {
    let Some(selector) = group
        .spec
        .selector
        .as_ref()
        .and_then(|s| Selector::new(s).ok())
    else {
        return Vec::new();
    };
    let ns = group.metadata.namespace.as_deref();
    let mut result: Vec<&Cluster> = clusters
        .into_iter()
        .filter(|c| c.metadata.namespace.as_deref() == ns)
        .filter(|c| selector.matches(&c.metadata.labels.clone().unwrap_or_default()))
        .collect();
    result.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    result
}

/// The status this reconciler wants for `group`, given the clusters it selects.
pub fn desired_group_status(
    group: &ClusterGroup,
    clusters: &[&Cluster],
    now: &str,
) -> ClusterGroupStatus {
    let mut status = group.status.clone().unwrap_or_default();
    status.cluster_count = clusters.len() as i64;
    status.non_ready_cluster_count = 0;
    status.non_ready_clusters.clear();
    status.summary = Default::default();
    let mut counts = ResourceCounts::default();
    for cluster in clusters {
        let cluster_status = cluster.status.clone().unwrap_or_default();
        status.summary.increment(&cluster_status.summary);
        counts += cluster_status.resource_counts;
        if !cluster_status.summary.is_ready() {
            status.non_ready_cluster_count += 1;
            if status.non_ready_clusters.len() < fleet_api::consts::MAX_NON_READY_CLUSTERS {
                status
                    .non_ready_clusters
                    .push(cluster.metadata.name.clone().unwrap_or_default());
            }
        }
    }
    status
        .summary
        .non_ready_resources
        .truncate(fleet_api::consts::MAX_NON_READY_RESOURCES);
    status.resource_counts = counts;
    set_ready_condition(&mut status.conditions, "Bundle", &status.summary, now);
    status.display.ready_bundles = ready_ratio(status.summary.ready, status.summary.desired_ready);
    status.display.ready_clusters = ready_ratio(
        status.cluster_count - status.non_ready_cluster_count,
        status.cluster_count,
    );
    if !status.non_ready_clusters.is_empty() {
        status.display.ready_clusters += &format!(" ({})", status.non_ready_clusters.join(","));
    }
    status.display.state = display_state(&status.summary);
    status
}

struct GroupContext {
    ctx: Arc<Context>,
    /// This term's stop: the Cluster cache's watch ends with it.
    shutdown: CancellationToken,
    clusters: Store<Cluster>,
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn reconcile(
    group: Arc<ClusterGroup>,
    gctx: Arc<GroupContext>,
) -> Result<Action, ReconcileError> {
    let ns = group.namespace().unwrap_or_default();
    let name = group.name_any();
    let key = format!("{ns}/{name}");
    let started = std::time::Instant::now();
    let span = tracing::debug_span!("reconcile_clustergroup", clustergroup = %key);
    let result = async {
        let ready = async { gctx.clusters.wait_until_ready().await.is_ok() };
        if !crate::ready_unless_stopped(&gctx.shutdown, Duration::from_secs(60), ready).await {
            return Err(ReconcileError::NotReady { group: key.clone() });
        }
        let all = gctx.clusters.state();
        let members = clusters_in_group(&group, all.iter().map(AsRef::as_ref));
        let desired = desired_group_status(&group, &members, &now_rfc3339());
        let old =
            serde_json::to_value(group.status.clone().unwrap_or_default()).unwrap_or_default();
        let new = serde_json::to_value(&desired).unwrap_or_default();
        let patch = merge_patch_diff(&old, &new);
        if !is_empty_patch(&patch) {
            crate::patch_status_unread::<ClusterGroup>(
                &gctx.ctx.client,
                Some(&ns),
                &name,
                &serde_json::json!({ "status": patch }),
            )
            .await
            .map_err(|source| ReconcileError::Kube {
                action: "writing status".into(),
                group: key.clone(),
                source,
            })?;
        }
        Ok(Action::requeue(Duration::from_secs(600)))
    };
    let result = tracing::Instrument::instrument(result, span).await;
    gctx.ctx.metrics.reconciled(
        "clustergroup",
        result.is_ok(),
        started.elapsed().as_secs_f64(),
    );
    result
}

fn error_policy(group: Arc<ClusterGroup>, error: &ReconcileError, _: Arc<GroupContext>) -> Action {
    tracing::warn!(clustergroup = %format!("{}/{}", group.namespace().unwrap_or_default(), group.name_any()), %error, "cluster group reconcile failed, retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the cluster group reconciler with `config.clustergroup_workers` concurrent reconciles
/// until `shutdown`; every group is re-evaluated when a cluster's labels or status change.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) -> Result<(), ClusterGroupError> {
    let client = ctx.client.clone();
    let index = ctx.cluster_index();
    // Changes that arrive together re-evaluate the groups once.
    let cluster_changes = index
        .relevant_changes(|c: &Cluster| {
            hash_json(&(
                &c.metadata.labels,
                c.status.as_ref().map(|s| (&s.summary, &s.resource_counts)),
            ))
        })
        .ready_chunks(COALESCED_CHANGES)
        .map(|_| ());
    let gctx = Arc::new(GroupContext {
        ctx: ctx.clone(),
        shutdown: shutdown.clone(),
        clusters: index.store(),
    });
    let workers = ctx.config.clustergroup_workers.clamp(1, u16::MAX as usize) as u16;
    Controller::new(Api::<ClusterGroup>::all(client), watcher::Config::default())
        .with_config(RuntimeConfig::default().concurrency(workers))
        .reconcile_all_on(cluster_changes)
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, gctx)
        .for_each(|_| futures::future::ready(()))
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::{BundleState, BundleSummary, ClusterGroupSpec, ClusterSpec, ClusterStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use std::collections::BTreeMap;

    fn cluster(name: &str, env: &str, ready: bool) -> Cluster {
        let mut c = Cluster::new(name, ClusterSpec::default());
        c.metadata.namespace = Some("fleet-default".into());
        c.metadata.labels = Some(BTreeMap::from([("env".to_string(), env.to_string())]));
        let mut summary = BundleSummary {
            desired_ready: 1,
            ..Default::default()
        };
        if ready {
            summary.increment_state("b", BundleState::Ready, "", &[], &[]);
        } else {
            summary.increment_state("b", BundleState::NotReady, "", &[], &[]);
        }
        c.status = Some(ClusterStatus {
            summary,
            resource_counts: ResourceCounts {
                ready: 2,
                desired_ready: 2,
                ..Default::default()
            },
            ..Default::default()
        });
        c
    }

    #[test]
    fn counts_members_and_non_ready_clusters() {
        let mut group = ClusterGroup::new(
            "prod",
            ClusterGroupSpec {
                selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([("env".to_string(), "prod".to_string())])),
                    match_expressions: None,
                }),
            },
        );
        group.metadata.namespace = Some("fleet-default".into());
        let clusters = [
            cluster("b", "prod", false),
            cluster("a", "prod", true),
            cluster("c", "dev", false),
        ];
        let members = clusters_in_group(&group, clusters.iter());
        assert_eq!(members.len(), 2);
        let status = desired_group_status(&group, &members, "t");
        assert_eq!(status.cluster_count, 2);
        assert_eq!(status.non_ready_cluster_count, 1);
        assert_eq!(status.non_ready_clusters, ["b"]);
        assert_eq!(status.summary.ready, 1);
        assert_eq!(status.summary.not_ready, 1);
        assert_eq!(status.resource_counts.ready, 4);
        assert_eq!(status.display.ready_clusters, "1/2 (b)");
        assert_eq!(status.display.ready_bundles, "1/2");
        assert_eq!(status.display.state, "NotReady");
        let mut again = group.clone();
        again.status = Some(status.clone());
        assert_eq!(desired_group_status(&again, &members, "later"), status);
    }

    #[test]
    fn group_without_selector_has_no_clusters() {
        let mut group = ClusterGroup::new("none", ClusterGroupSpec::default());
        group.metadata.namespace = Some("fleet-default".into());
        let clusters = [cluster("a", "prod", true)];
        assert!(clusters_in_group(&group, clusters.iter()).is_empty());
    }
}

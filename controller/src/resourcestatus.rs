//! The `StatusBase` of a GitRepo (and later a HelmOp) computed from its BundleDeployments, as
//! Fleet v0.12 does in `internal/resourcestatus` and the GitRepo status reconciler's
//! `setFields`: summary and display, ready/desired clusters, the per-resource states with the
//! cluster IDs per state, and the resource counts overall and per cluster.
//!
//! Everything here is a pure function of the BundleDeployments; the caller lists them (by the
//! `repo-name` and `bundle-namespace` labels) and writes the status.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};

use fleet_api::consts::{CLUSTER_LABEL, CLUSTER_NAMESPACE_LABEL, resource_state};
use fleet_api::resource::{PerClusterState, Resource, ResourceCounts};
use fleet_api::state::BundleState;
use fleet_api::status::StatusBase;
use fleet_api::{BundleDeployment, BundleSummary};

/// `"<clusterNamespace>/<clusterName>"` from the BundleDeployment's labels, Fleet's cluster ID.
pub fn cluster_id(bd: &BundleDeployment) -> String {
    let labels = bd.metadata.labels.as_ref();
    let get = |k: &str| {
        labels
            .and_then(|l| l.get(k))
            .map(String::as_str)
            .unwrap_or("")
    };
    format!("{}/{}", get(CLUSTER_NAMESPACE_LABEL), get(CLUSTER_LABEL))
}

/// The cluster of a BundleDeployment when both cluster labels are set (Fleet skips the others
/// when counting clusters).
fn labelled_cluster(bd: &BundleDeployment) -> Option<(String, String)> {
    let labels = bd.metadata.labels.as_ref()?;
    let ns = labels
        .get(CLUSTER_NAMESPACE_LABEL)
        .filter(|s| !s.is_empty())?;
    let name = labels.get(CLUSTER_LABEL).filter(|s| !s.is_empty())?;
    Some((ns.clone(), name.clone()))
}

/// Sum of the BundleDeployments' `status.resourceCounts`.
pub fn sum_resource_counts<B: Borrow<BundleDeployment>>(bds: &[B]) -> ResourceCounts {
    let mut total = ResourceCounts::default();
    for bd in bds {
        if let Some(status) = &bd.borrow().status {
            total += status.resource_counts;
        }
    }
    total
}

/// `status.resourceCounts` summed per cluster, keyed by [`cluster_id`].
pub fn resource_counts_per_cluster<B: Borrow<BundleDeployment>>(
    bds: &[B],
) -> BTreeMap<String, ResourceCounts> {
    let mut out: BTreeMap<String, ResourceCounts> = BTreeMap::new();
    for bd in bds {
        let bd = bd.borrow();
        let counts = bd
            .status
            .as_ref()
            .map(|s| s.resource_counts)
            .unwrap_or_default();
        *out.entry(cluster_id(bd)).or_default() += counts;
    }
    out
}

/// JSON bytes the per-cluster parts of a status may take together: `perClusterResourceCounts`
/// and the cluster IDs in `resources[].perClusterState`. Fleet keeps the IDs under 1 MiB
/// (rancher/fleet#4160) so that a GitRepo over thousands of clusters still fits etcd's 1.5 MiB;
/// here the counts share that budget, so a GitRepo over 10,000 clusters fits too.
pub const PER_CLUSTER_BUDGET: usize = 1024 * 1024;

/// Of [`PER_CLUSTER_BUDGET`], what `perClusterResourceCounts` may take with its managedFields
/// (about 1,800 clusters: every cluster with something not ready comes first); the
/// per-resource cluster lists get the rest.
pub const PER_CLUSTER_COUNTS_BUDGET: usize = 512 * 1024;

/// Bytes one `perClusterResourceCounts` entry adds to the stored object: the entry, and as
/// much again in `metadata.managedFields`, where the API server records every key of the map
/// that the status write set (`"f:<cluster>":{"f:desiredReady":{},…}`). The cluster lists of
/// `resources[].perClusterState` are atomic there and cost nothing per cluster.
fn counts_entry_size(cluster: &str, counts: &ResourceCounts) -> usize {
    // `"<cluster>":{...},` with every field serialised.
    let entry = cluster.len()
        + 4
        + serde_json::to_vec(counts)
            .map(|v| v.len())
            .unwrap_or_default();
    entry + managed_fields_entry_size(cluster)
}

/// `"f:<cluster>":{"f:desiredReady":{},…},`: a key per `ResourceCounts` field, each
/// `"f:<field>":{},`.
fn managed_fields_entry_size(cluster: &str) -> usize {
    const FIELDS: [&str; 8] = [
        "desiredReady",
        "missing",
        "modified",
        "notReady",
        "orphaned",
        "ready",
        "unknown",
        "waitApplied",
    ];
    let fields: usize = FIELDS.iter().map(|f| f.len() + 8).sum();
    cluster.len() + 8 + fields
}

fn counts_not_ready(counts: &ResourceCounts) -> bool {
    counts.ready < counts.desired_ready
        || counts.wait_applied
            + counts.modified
            + counts.orphaned
            + counts.missing
            + counts.unknown
            + counts.not_ready
            > 0
}

/// `perClusterResourceCounts` within `budget` JSON bytes: every cluster while they fit;
/// beyond, the clusters with something not ready come first (they are what someone looks
/// for), then the ready ones, each in cluster order. Returns the map and the bytes it takes.
pub fn bounded_counts_per_cluster(
    all: BTreeMap<String, ResourceCounts>,
    budget: usize,
) -> (BTreeMap<String, ResourceCounts>, usize) {
    let sizes: Vec<usize> = all
        .iter()
        .map(|(cluster, counts)| counts_entry_size(cluster, counts))
        .collect();
    let total: usize = sizes.iter().sum();
    if total <= budget {
        return (all, total);
    }
    let (not_ready, ready): (Vec<_>, Vec<_>) = all
        .into_iter()
        .zip(sizes)
        .partition(|((_, counts), _)| counts_not_ready(counts));
    let mut kept = BTreeMap::new();
    let mut used = 0;
    for ((cluster, counts), size) in not_ready.into_iter().chain(ready) {
        if used + size > budget {
            continue;
        }
        used += size;
        kept.insert(cluster, counts);
    }
    tracing::debug!(
        kept = kept.len(),
        budget,
        "perClusterResourceCounts truncated to fit the object size limit"
    );
    (kept, used)
}

/// Identity of a deployed object across clusters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ResourceKey {
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
}

/// Fleet's default state of the resources listed in a BundleDeployment's status: its own
/// state, except that NotReady and Modified come from the per-resource lists, so the resources
/// not listed there are Ready (or Unknown when the lists were truncated).
fn resources_default_state(bd: &BundleDeployment) -> &'static str {
    match bd.state() {
        BundleState::NotReady | BundleState::Modified => {
            if bd.status.as_ref().is_some_and(|s| s.incomplete_state) {
                resource_state::UNKNOWN
            } else {
                resource_state::READY
            }
        }
        other => other.as_str(),
    }
}

/// Per-resource state on the cluster of one BundleDeployment.
fn bundle_deployment_resources(bd: &BundleDeployment) -> BTreeMap<ResourceKey, String> {
    let mut out = BTreeMap::new();
    let Some(status) = &bd.status else {
        return out;
    };
    let default_state = resources_default_state(bd);
    for r in &status.resources {
        out.insert(
            ResourceKey {
                api_version: r.api_version.clone(),
                kind: r.kind.clone(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
            },
            default_state.to_string(),
        );
    }
    for nr in &status.non_ready_status {
        out.insert(
            ResourceKey {
                api_version: nr.api_version.clone(),
                kind: nr.kind.clone(),
                namespace: nr.namespace.clone(),
                name: nr.name.clone(),
            },
            nr.summary.state.clone(),
        );
    }
    for m in &status.modified_status {
        let state = if m.delete {
            resource_state::ORPHANED
        } else if m.create {
            resource_state::MISSING
        } else {
            resource_state::MODIFIED
        };
        out.insert(
            ResourceKey {
                api_version: m.api_version.clone(),
                kind: m.kind.clone(),
                namespace: m.namespace.clone(),
                name: m.name.clone(),
            },
            state.to_string(),
        );
    }
    out
}

/// Fleet's resource type: `<group>.<kind lower-case>`, just the kind for the core group.
pub fn resource_type(api_version: &str, kind: &str) -> String {
    let group = api_version.split('/').next().unwrap_or("");
    let kind = kind.to_lowercase();
    if group == "v1" || group.is_empty() {
        kind
    } else {
        format!("{group}.{kind}")
    }
}

fn resource_id(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    }
}

/// `status.resources`: one entry per distinct object over all BundleDeployments, with the
/// cluster IDs per state; the top-level state is the first non-Ready state in cluster order.
/// Sorted by `type/id` like Fleet.
pub fn resources<B: Borrow<BundleDeployment>>(bds: &[B]) -> Vec<Resource> {
    resources_within(bds, usize::MAX)
}

/// [`resources`] with at most `budget` JSON bytes of cluster IDs in the `perClusterState`
/// lists: like Fleet, resources are filled in descending order of kind, API version, namespace
/// and name, each in cluster order, and IDs beyond the budget are left out (the resource's
/// state still counts them).
pub fn resources_within<B: Borrow<BundleDeployment>>(bds: &[B], budget: usize) -> Vec<Resource> {
    let mut ordered: Vec<&BundleDeployment> = bds.iter().map(Borrow::borrow).collect();
    ordered.sort_by_cached_key(|bd| cluster_id(bd));
    let mut by_key: BTreeMap<ResourceKey, Vec<(String, String, bool)>> = BTreeMap::new();
    for bd in ordered {
        let cluster = cluster_id(bd);
        let incomplete = bd.status.as_ref().is_some_and(|s| s.incomplete_state);
        for (key, state) in bundle_deployment_resources(bd) {
            by_key
                .entry(key)
                .or_default()
                .push((state, cluster.clone(), incomplete));
        }
    }
    // Fleet's truncation order.
    let mut keyed: Vec<_> = by_key.into_iter().collect();
    keyed.sort_by_cached_key(|(k, _)| {
        std::cmp::Reverse(format!(
            "{}{} {}/{}",
            k.kind, k.api_version, k.namespace, k.name
        ))
    });
    let mut used = 0usize;
    let mut out: Vec<Resource> = keyed
        .into_iter()
        .map(|(key, entries)| {
            let mut resource = Resource {
                type_: resource_type(&key.api_version, &key.kind),
                id: resource_id(&key.namespace, &key.name),
                api_version: key.api_version,
                kind: key.kind,
                namespace: key.namespace,
                name: key.name,
                state: resource_state::READY.to_string(),
                ..Default::default()
            };
            for (state, cluster, incomplete) in entries {
                resource.incomplete_state |= incomplete;
                // `"<id>",`
                used = used.saturating_add(cluster.len() + 3);
                if used <= budget {
                    append_per_cluster_state(&mut resource.per_cluster_state, &state, cluster);
                }
                if resource.state == resource_state::READY {
                    resource.state = state;
                }
            }
            resource
        })
        .collect();
    out.sort_by(|a, b| (&a.type_, &a.id).cmp(&(&b.type_, &b.id)));
    out
}

fn append_per_cluster_state(states: &mut PerClusterState, state: &str, cluster: String) {
    // The agent's summarizers report a Deployment whose Available condition is False as
    // `updating`; per cluster it counts as NotReady.
    let state = if state == "updating" {
        resource_state::NOT_READY
    } else {
        state
    };
    if let Some(list) = states.list_mut(state) {
        list.push(cluster);
    }
}

/// The aggregate of the BundleDeployments that `setFields` computes: the summary (counts by
/// state and the non-ready deployments), the distinct clusters and those where every
/// deployment is Ready, and the highest-ranked state with its message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeploymentFields {
    pub summary: BundleSummary,
    pub ready_clusters: i64,
    pub desired_ready_clusters: i64,
    /// Highest-ranked non-Ready state; `None` when all are Ready or there are none.
    pub max_state: Option<BundleState>,
    /// The condition message of the deployment in `max_state`.
    pub message: String,
}

/// Fleet's `setFields`, over BundleDeployments sorted by UID as Fleet sorts them.
pub fn deployment_fields<B: Borrow<BundleDeployment>>(bds: &[B]) -> DeploymentFields {
    let mut ordered: Vec<&BundleDeployment> = bds.iter().map(Borrow::borrow).collect();
    ordered.sort_by(|a, b| a.metadata.uid.cmp(&b.metadata.uid));
    let mut out = DeploymentFields::default();
    let mut per_cluster: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    let mut max_rank = 0u8;
    for bd in ordered {
        let state = bd.state();
        let name = bd.metadata.name.as_deref().unwrap_or("");
        let (modified, non_ready) = bd
            .status
            .as_ref()
            .map(|s| (s.modified_status.as_slice(), s.non_ready_status.as_slice()))
            .unwrap_or((&[], &[]));
        out.summary
            .increment_state(name, state, bd.condition_message(), modified, non_ready);
        out.summary.desired_ready += 1;
        if state.rank() > max_rank {
            max_rank = state.rank();
            out.max_state = Some(state);
            out.message = bd.condition_message().to_string();
        }
        if let Some(cluster) = labelled_cluster(bd) {
            let entry = per_cluster.entry(cluster).or_default();
            entry.0 += 1;
            if state == BundleState::Ready {
                entry.1 += 1;
            }
        }
    }
    out.desired_ready_clusters = per_cluster.len() as i64;
    out.ready_clusters = per_cluster
        .values()
        .filter(|(total, ready)| total == ready)
        .count() as i64;
    if out.max_state == Some(BundleState::Ready) {
        out.max_state = None;
        out.message.clear();
    }
    out
}

/// Fills every BundleDeployment-derived field of `status` (all but `conditions`):
/// `summary`, `display` (`readyBundleDeployments`, `state`, `message`, `error`),
/// `readyClusters`, `desiredReadyClusters`, `resources`, `resourceCounts` and
/// `perClusterResourceCounts`.
pub fn set_status_from_deployments<B: Borrow<BundleDeployment>>(
    bds: &[B],
    status: &mut StatusBase,
) {
    let fields = deployment_fields(bds);
    status.display.ready_bundle_deployments =
        format!("{}/{}", fields.summary.ready, fields.summary.desired_ready);
    status.display.state = fields
        .max_state
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    status.display.error = !fields.message.is_empty();
    status.display.message = fields.message;
    status.summary = fields.summary;
    status.ready_clusters = fields.ready_clusters;
    status.desired_ready_clusters = fields.desired_ready_clusters;
    let (per_cluster, counts_size) =
        bounded_counts_per_cluster(resource_counts_per_cluster(bds), PER_CLUSTER_COUNTS_BUDGET);
    status.per_cluster_resource_counts = per_cluster;
    status.resources = resources_within(bds, PER_CLUSTER_BUDGET.saturating_sub(counts_size));
    status.resource_counts = sum_resource_counts(bds);
}

/// The distinct cluster IDs of `bds` (for callers that want to know where a repo deploys).
pub fn cluster_ids<B: Borrow<BundleDeployment>>(bds: &[B]) -> BTreeSet<String> {
    bds.iter().map(|bd| cluster_id(bd.borrow())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::bundledeployment::{
        BundleDeploymentResource, BundleDeploymentSpec, BundleDeploymentStatus, ModifiedStatus,
        NonReadyStatus,
    };
    use fleet_api::condition::GenericCondition;
    use fleet_api::summary::Summary;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use pretty_assertions::assert_eq;

    fn bd(uid: &str, name: &str, cluster_ns: &str, cluster: &str) -> BundleDeployment {
        let labels = [
            (CLUSTER_NAMESPACE_LABEL.to_string(), cluster_ns.to_string()),
            (CLUSTER_LABEL.to_string(), cluster.to_string()),
        ]
        .into_iter()
        .collect();
        BundleDeployment {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(format!("cluster-{cluster_ns}-{cluster}")),
                uid: Some(uid.into()),
                labels: Some(labels),
                ..Default::default()
            },
            spec: BundleDeploymentSpec {
                deployment_id: "m:1".into(),
                staged_deployment_id: "m:1".into(),
                ..Default::default()
            },
            status: Some(BundleDeploymentStatus {
                applied_deployment_id: "m:1".into(),
                ready: true,
                non_modified: true,
                ..Default::default()
            }),
        }
    }

    fn res(api_version: &str, kind: &str, ns: &str, name: &str) -> BundleDeploymentResource {
        BundleDeploymentResource {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: ns.into(),
            name: name.into(),
            created_at: None,
        }
    }

    fn counts(ready: i64, desired: i64) -> ResourceCounts {
        ResourceCounts {
            ready,
            desired_ready: desired,
            ..Default::default()
        }
    }

    /// Two clusters: a ready app on both, plus a not-ready deployment on `b`.
    fn sample() -> Vec<BundleDeployment> {
        let mut a = bd("1", "repo-app", "fleet-default", "a");
        {
            let s = a.status.as_mut().unwrap();
            s.resources = vec![
                res("v1", "ConfigMap", "app", "cm"),
                res("apps/v1", "Deployment", "app", "web"),
            ];
            s.resource_counts = counts(2, 2);
        }
        let mut b = bd("2", "repo-app", "fleet-default", "b");
        {
            let s = b.status.as_mut().unwrap();
            s.ready = false;
            s.resources = vec![
                res("v1", "ConfigMap", "app", "cm"),
                res("apps/v1", "Deployment", "app", "web"),
            ];
            s.non_ready_status = vec![NonReadyStatus {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: "app".into(),
                name: "web".into(),
                summary: Summary {
                    state: "NotReady".into(),
                    transitioning: true,
                    ..Default::default()
                },
                ..Default::default()
            }];
            s.conditions = vec![GenericCondition {
                message: "deployment.apps app/web not ready".into(),
                ..GenericCondition::new("Deployed", "True")
            }];
            s.resource_counts = ResourceCounts {
                ready: 1,
                desired_ready: 2,
                not_ready: 1,
                ..Default::default()
            };
        }
        let mut c = bd("3", "repo-other", "fleet-default", "a");
        c.status.as_mut().unwrap().resources = vec![res("v1", "Namespace", "", "other")];
        c.status.as_mut().unwrap().resource_counts = counts(1, 1);
        vec![b, a, c]
    }

    #[test]
    fn counts_are_summed_overall_and_per_cluster() {
        let bds = sample();
        assert_eq!(
            sum_resource_counts(&bds),
            ResourceCounts {
                ready: 4,
                desired_ready: 5,
                not_ready: 1,
                ..Default::default()
            }
        );
        let per = resource_counts_per_cluster(&bds);
        assert_eq!(per.len(), 2);
        assert_eq!(per["fleet-default/a"], counts(3, 3));
        assert_eq!(
            per["fleet-default/b"],
            ResourceCounts {
                ready: 1,
                desired_ready: 2,
                not_ready: 1,
                ..Default::default()
            }
        );
    }

    #[test]
    fn ready_clusters_need_every_deployment_ready() {
        let f = deployment_fields(&sample());
        assert_eq!(f.desired_ready_clusters, 2);
        assert_eq!(f.ready_clusters, 1);
        assert_eq!(f.summary.ready, 2);
        assert_eq!(f.summary.not_ready, 1);
        assert_eq!(f.summary.desired_ready, 3);
        assert_eq!(f.max_state, Some(BundleState::NotReady));
        assert_eq!(f.message, "deployment.apps app/web not ready");
        assert_eq!(f.summary.non_ready_resources.len(), 1);
        assert_eq!(f.summary.non_ready_resources[0].name, "repo-app");
    }

    #[test]
    fn all_ready_blanks_state_and_message() {
        let mut bds = sample();
        bds.remove(0);
        let mut status = StatusBase::default();
        set_status_from_deployments(&bds, &mut status);
        assert_eq!(status.display.ready_bundle_deployments, "2/2");
        assert_eq!(status.display.state, "");
        assert!(!status.display.error);
        assert_eq!(status.ready_clusters, 1);
        assert_eq!(status.desired_ready_clusters, 1);
    }

    #[test]
    fn no_deployments_give_zero_counts() {
        let mut status = StatusBase::default();
        set_status_from_deployments::<BundleDeployment>(&[], &mut status);
        assert_eq!(status.display.ready_bundle_deployments, "0/0");
        assert_eq!(status.ready_clusters, 0);
        assert!(status.resources.is_empty());
        assert!(status.per_cluster_resource_counts.is_empty());
    }

    #[test]
    fn resources_carry_per_cluster_states() {
        let mut status = StatusBase::default();
        set_status_from_deployments(&sample(), &mut status);
        let ids: Vec<(String, String)> = status
            .resources
            .iter()
            .map(|r| (r.type_.clone(), r.id.clone()))
            .collect();
        assert_eq!(
            ids,
            vec![
                ("apps.deployment".into(), "app/web".into()),
                ("configmap".into(), "app/cm".into()),
                ("namespace".into(), "other".into()),
            ]
        );
        let web = &status.resources[0];
        assert_eq!(web.state, "NotReady");
        assert_eq!(web.per_cluster_state.ready, vec!["fleet-default/a"]);
        assert_eq!(web.per_cluster_state.not_ready, vec!["fleet-default/b"]);
        let cm = &status.resources[1];
        assert_eq!(cm.state, "Ready");
        assert_eq!(
            cm.per_cluster_state.ready,
            vec!["fleet-default/a", "fleet-default/b"]
        );
        assert_eq!(status.display.state, "NotReady");
        assert!(status.display.error);
    }

    #[test]
    fn modified_entries_become_missing_orphaned_modified() {
        let mut x = bd("1", "repo-app", "ns", "x");
        {
            let s = x.status.as_mut().unwrap();
            s.non_modified = false;
            s.resources = vec![res("v1", "ConfigMap", "app", "a")];
            s.modified_status = vec![
                ModifiedStatus {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    namespace: "app".into(),
                    name: "a".into(),
                    patch: "{}".into(),
                    ..Default::default()
                },
                ModifiedStatus {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    namespace: "app".into(),
                    name: "b".into(),
                    create: true,
                    ..Default::default()
                },
                ModifiedStatus {
                    api_version: "v1".into(),
                    kind: "ConfigMap".into(),
                    namespace: "app".into(),
                    name: "c".into(),
                    delete: true,
                    ..Default::default()
                },
            ];
        }
        let r = resources(&[x]);
        let states: Vec<(&str, &str)> = r
            .iter()
            .map(|r| (r.name.as_str(), r.state.as_str()))
            .collect();
        assert_eq!(
            states,
            vec![("a", "Modified"), ("b", "Missing"), ("c", "Orphaned")]
        );
        assert_eq!(r[1].per_cluster_state.missing, vec!["ns/x"]);
        assert_eq!(r[2].per_cluster_state.orphaned, vec!["ns/x"]);
    }

    #[test]
    fn truncated_lists_make_unlisted_resources_unknown() {
        let mut x = bd("1", "repo-app", "ns", "x");
        {
            let s = x.status.as_mut().unwrap();
            s.ready = false;
            s.incomplete_state = true;
            s.resources = vec![res("v1", "ConfigMap", "app", "a")];
        }
        let r = resources(&[x]);
        assert_eq!(r[0].state, "Unknown");
        assert!(r[0].incomplete_state);
        assert_eq!(r[0].per_cluster_state.unknown, vec!["ns/x"]);
    }

    #[test]
    fn wait_applied_deployments_mark_their_resources() {
        let mut x = bd("1", "repo-app", "ns", "x");
        x.spec.deployment_id = "m:2".into();
        x.status.as_mut().unwrap().resources = vec![res("v1", "ConfigMap", "app", "a")];
        let r = resources(&[x]);
        assert_eq!(r[0].state, "WaitApplied");
        assert_eq!(r[0].per_cluster_state.wait_applied, vec!["ns/x"]);
    }

    /// `n` ready clusters with one ConfigMap each, and the last one not ready.
    fn fleet_of(n: usize) -> Vec<BundleDeployment> {
        (0..n)
            .map(|i| {
                let mut d = bd(
                    &format!("{i:05}"),
                    "app",
                    "fleet-default",
                    &format!("c{i:05}"),
                );
                let s = d.status.as_mut().unwrap();
                s.resources = vec![res("v1", "ConfigMap", "app", "cm")];
                s.resource_counts = if i == n - 1 {
                    counts(0, 1)
                } else {
                    counts(1, 1)
                };
                d
            })
            .collect()
    }

    #[test]
    fn per_cluster_counts_fit_their_budget_keeping_not_ready_clusters_first() {
        let bds = fleet_of(100);
        let all = resource_counts_per_cluster(&bds);
        let (same, size) = bounded_counts_per_cluster(all.clone(), usize::MAX);
        assert_eq!(same, all, "under the budget nothing is left out");
        let entry = size / 100;
        let (kept, used) = bounded_counts_per_cluster(all, entry * 10);
        assert!(used <= entry * 10);
        assert!((9..=10).contains(&kept.len()), "{}", kept.len());
        assert!(
            kept.contains_key("fleet-default/c00099"),
            "the not-ready cluster stays"
        );
        assert!(kept.contains_key("fleet-default/c00000"));
    }

    #[test]
    fn per_cluster_states_stop_at_the_budget_but_states_still_count_every_cluster() {
        let bds = fleet_of(100);
        let full = resources(&bds);
        assert_eq!(full[0].per_cluster_state.ready.len(), 100);
        // Room for ten IDs of `fleet-default/c000NN` (20 bytes + 3).
        let bounded = resources_within(&bds, 230);
        assert_eq!(bounded[0].per_cluster_state.ready.len(), 10);
        assert_eq!(bounded[0].state, full[0].state);
    }

    /// Written through an API server, as the GitRepo reconciler writes it: the stored object
    /// carries the status and the managedFields the write records, and must stay under etcd's
    /// 1.5 MiB (a 10,000-cluster bench run failed here when only the status was counted).
    #[tokio::test]
    async fn a_gitrepo_status_over_ten_thousand_clusters_fits_etcd() {
        use kube::api::{Api, PostParams};
        // Enough resources that their cluster lists fill their share of the budget.
        let mut bds = fleet_of(10_000);
        for d in &mut bds {
            let s = d.status.as_mut().unwrap();
            for i in 0..4 {
                s.resources
                    .push(res("v1", "ConfigMap", "app", &format!("more-{i}")));
            }
        }
        let mut status = fleet_api::GitRepoStatus::default();
        set_status_from_deployments(&bds, &mut status.base);
        assert!(
            status
                .base
                .per_cluster_resource_counts
                .contains_key("fleet-default/c09999"),
            "the not-ready cluster is listed"
        );
        assert_eq!(status.base.resource_counts.desired_ready, 10_000);

        let (_sim, client) = crate::test_upstream("fleet-default").await;
        let api: Api<fleet_api::GitRepo> = Api::namespaced(client, "fleet-default");
        let mut gitrepo: fleet_api::GitRepo = serde_json::from_value(serde_json::json!({
            "apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo",
            "metadata": {"name": "many", "namespace": "fleet-default"},
            "spec": {"repo": "https://example.invalid/many.git"}
        }))
        .unwrap();
        gitrepo = api.create(&PostParams::default(), &gitrepo).await.unwrap();
        gitrepo.status = Some(status);
        let stored = api
            .replace_status("many", &PostParams::default(), &gitrepo)
            .await
            .expect("the status of a GitRepo over 10,000 clusters is stored");
        let size = serde_json::to_vec(&stored).unwrap().len();
        assert!(size < 1536 * 1024, "{size} bytes");
    }
}

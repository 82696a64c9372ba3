//! Which clusters a Bundle deploys to and with which options (Fleet's
//! `internal/cmd/controller/target`): namespaces in scope (the bundle's own plus
//! BundleNamespaceMappings), cluster groups of each cluster, the first matching target and
//! customization, merged options, per-cluster Helm values templating, and the deployment ID.
//! Everything here is pure: the bundle reconciler feeds it the objects from its caches.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use fleet_api::consts::{
    BUNDLE_LABEL, BUNDLE_NAMESPACE_LABEL, CLUSTER_LABEL, CLUSTER_NAMESPACE_LABEL, LABEL_PREFIX,
    MANAGED_LABEL,
};
use fleet_api::{
    Bundle, BundleDeployment, BundleDeploymentOptions, BundleNamespaceMapping, Cluster,
    ClusterGroup,
};
use fleet_bundle::target::{ClusterFacts, Selector, TargetDecision, TargetMatcher};
use fleet_bundle::values::{ClusterContext, template_helm_values};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use sha2::{Digest as _, Sha256};

/// Fleet's name of the namespace holding a cluster's BundleDeployments:
/// `cluster-<namespace>-<name>-<12 hex chars of sha256("<namespace>::<name>")>`, shortened
/// with a hash when longer than 63 characters.
pub fn cluster_namespace_name(cluster_namespace: &str, cluster_name: &str) -> String {
    let mut key = format!("{cluster_namespace}::{cluster_name}");
    // Fleet hashes at most the first 100 bytes.
    if key.len() > 100 {
        let mut cut = 100;
        while !key.is_char_boundary(cut) {
            cut -= 1;
        }
        key.truncate(cut);
    }
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    fleet_bundle::names::safe_concat_name(&[
        "cluster",
        cluster_namespace,
        cluster_name,
        &digest[..12],
    ])
}

/// A label selector as Kubernetes evaluates it in a BundleNamespaceMapping: a missing
/// selector selects nothing, an empty one everything.
fn optional_selector_matches(
    selector: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
) -> Result<bool, String> {
    match selector {
        None => Ok(false),
        Some(s) => Ok(Selector::new(s)?.matches(labels)),
    }
}

fn labels_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

/// The namespaces whose clusters a bundle may target (Fleet's `getNamespacesForBundle`): the
/// bundle's own namespace plus those selected by every BundleNamespaceMapping in the bundle's
/// namespace whose `bundleSelector` matches the bundle. Invalid mappings are skipped (and
/// logged), as Fleet does.
pub fn namespaces_for_bundle<'a>(
    bundle: &Bundle,
    mappings: impl IntoIterator<Item = &'a BundleNamespaceMapping>,
    namespaces: &[&Namespace],
) -> BTreeSet<String> {
    let bundle_ns = bundle.metadata.namespace.clone().unwrap_or_default();
    let bundle_labels = labels_of(&bundle.metadata);
    let mut result = BTreeSet::from([bundle_ns.clone()]);
    for mapping in mappings {
        if mapping.metadata.namespace.as_deref() != Some(bundle_ns.as_str()) {
            continue;
        }
        let mapping_name = mapping.metadata.name.as_deref().unwrap_or("");
        match optional_selector_matches(mapping.bundle_selector.as_ref(), &bundle_labels) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(error) => {
                tracing::error!(mapping = %format!("{bundle_ns}/{mapping_name}"), %error, "invalid BundleNamespaceMapping, skipping it");
                continue;
            }
        }
        for ns in namespaces {
            let labels = labels_of(&ns.metadata);
            match optional_selector_matches(mapping.namespace_selector.as_ref(), &labels) {
                Ok(true) => {
                    if let Some(name) = &ns.metadata.name {
                        result.insert(name.clone());
                    }
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::error!(mapping = %format!("{bundle_ns}/{mapping_name}"), %error, "invalid BundleNamespaceMapping, skipping it");
                    break;
                }
            }
        }
    }
    result
}

/// The cluster groups (in the cluster's namespace) whose selector matches the cluster, with
/// the groups' labels. Groups without a selector contain no cluster.
pub fn groups_for_cluster<'a>(
    cluster: &Cluster,
    groups: impl IntoIterator<Item = &'a ClusterGroup>,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let cluster_ns = cluster.metadata.namespace.as_deref().unwrap_or("");
    let cluster_labels = labels_of(&cluster.metadata);
    let mut result = BTreeMap::new();
    for group in groups {
        if group.metadata.namespace.as_deref() != Some(cluster_ns) {
            continue;
        }
        let Some(selector) = &group.spec.selector else {
            continue;
        };
        let name = group.metadata.name.clone().unwrap_or_default();
        match Selector::new(selector) {
            Ok(s) if s.matches(&cluster_labels) => {
                result.insert(name, labels_of(&group.metadata));
            }
            Ok(_) => {}
            Err(error) => {
                tracing::error!(clustergroup = %format!("{cluster_ns}/{name}"), %error, "invalid selector on cluster group");
            }
        }
    }
    result
}

/// What targeting needs to know about a cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetCluster {
    /// Namespace of the Cluster object.
    pub namespace: String,
    /// Name of the Cluster object.
    pub name: String,
    /// Cluster labels.
    pub labels: BTreeMap<String, String>,
    /// Groups containing the cluster, with their labels.
    pub groups: BTreeMap<String, BTreeMap<String, String>>,
    /// `status.namespace`: where its BundleDeployments live; empty until assigned.
    pub deployment_namespace: String,
    /// `spec.paused`: no promotion of staged deployments.
    pub paused: bool,
    /// `status.agent.lastSeen` is set: an agent has checked in, so one runs there to uninstall
    /// a deleted deployment and then remove its finalizer.
    pub agent_checked_in: bool,
}

impl TargetCluster {
    /// `"<namespace>/<name>"`, the name Fleet gives the cluster in bundle summaries.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn facts(&self) -> ClusterFacts {
        ClusterFacts {
            name: self.name.clone(),
            labels: self.labels.clone(),
            groups: self.groups.clone(),
        }
    }
}

/// One (bundle, cluster) pair that should have a BundleDeployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Target<'a> {
    /// Borrowed from the [`ResolvedTarget`], like the options and deployment ID: a plan
    /// over 10,000 targets that cloned their `Arc`s wrote 30,000 reference counts, each on
    /// a cache line of its own, and again when the plan dropped them.
    pub cluster: &'a TargetCluster,
    /// Bundle options merged with the matching customization and templated for the cluster.
    pub options: &'a BundleDeploymentOptions,
    /// `<manifest id>:<options hash>`.
    pub deployment_id: &'a str,
    /// The existing BundleDeployment of this bundle on this cluster, if any (borrowed from
    /// the observation: a plan runs on every deployment change, and copying every
    /// deployment of the bundle into each plan made planning most of the controller's work).
    pub deployment: Option<&'a BundleDeployment>,
}

/// Where a bundle goes, before its existing deployments are looked at. It changes only with
/// the bundle and with what targeting reads (clusters, groups, mappings, namespaces), so a
/// bundle planned again for its deployments' sake reuses it: with Fleet's `maxNew` of 50, a
/// first rollout to 10,000 clusters is 200 plans.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResolvedTargets {
    /// Sorted by cluster name (as Fleet sorts them), then namespace.
    pub targets: Vec<ResolvedTarget>,
    /// Clusters that matched but whose options could not be computed.
    pub errors: Vec<ClusterTargetingError>,
}

/// A [`Target`] without its deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTarget {
    pub cluster: Arc<TargetCluster>,
    pub options: Arc<BundleDeploymentOptions>,
    pub deployment_id: Arc<str>,
}

/// Which targets of a [`ResolvedTargets`] have each deployment namespace: built once for a
/// targeting, which a bundle keeps for many plans, instead of a map of its deployments in
/// each plan ([`ResolvedTargets::with_deployments_indexed`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceIndex {
    /// Namespace → the range of `targets` holding the indexes of its targets (one, unless
    /// clusters share a namespace).
    ranges: HashMap<String, (usize, usize), foldhash::fast::RandomState>,
    targets: Vec<usize>,
}

impl ResolvedTargets {
    /// The [`NamespaceIndex`] of these targets (those without namespace are in none).
    pub fn namespace_index(&self) -> NamespaceIndex {
        let mut by_namespace: Vec<(&str, usize)> = self
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.cluster.deployment_namespace.as_str(), i))
            .filter(|(namespace, _)| !namespace.is_empty())
            .collect();
        by_namespace.sort_unstable();
        let mut ranges: HashMap<String, (usize, usize), foldhash::fast::RandomState> =
            HashMap::with_capacity_and_hasher(by_namespace.len(), Default::default());
        for (at, (namespace, _)) in by_namespace.iter().enumerate() {
            ranges
                .entry((*namespace).to_string())
                .and_modify(|range| range.1 = at + 1)
                .or_insert((at, at + 1));
        }
        NamespaceIndex {
            ranges,
            targets: by_namespace.into_iter().map(|(_, i)| i).collect(),
        }
    }

    /// The targets with the existing BundleDeployments of the bundle folded in by namespace
    /// (of two deployments in one namespace, the later), and the deployments in no target's
    /// namespace.
    pub fn with_deployments<'d>(&'d self, existing: &[&'d BundleDeployment]) -> Targeting<'d> {
        self.with_deployments_indexed(existing, &self.namespace_index())
    }

    /// [`ResolvedTargets::with_deployments`], finding each deployment's targets by `index`,
    /// which must be these targets' [`ResolvedTargets::namespace_index`].
    pub fn with_deployments_indexed<'d>(
        &'d self,
        existing: &[&'d BundleDeployment],
        index: &NamespaceIndex,
    ) -> Targeting<'d> {
        let mut deployments: Vec<Option<&'d BundleDeployment>> = vec![None; self.targets.len()];
        let mut unmatched = Vec::new();
        for bd in existing {
            match bd
                .metadata
                .namespace
                .as_deref()
                .and_then(|ns| index.ranges.get(ns))
            {
                Some(&(start, end)) => {
                    for &i in &index.targets[start..end] {
                        deployments[i] = Some(*bd);
                    }
                }
                None => unmatched.push(*bd),
            }
        }
        Targeting {
            targets: self
                .targets
                .iter()
                .zip(deployments)
                .map(|(t, deployment)| Target {
                    cluster: &t.cluster,
                    options: &t.options,
                    deployment_id: &t.deployment_id,
                    deployment,
                })
                .collect(),
            unmatched,
            errors: self.errors.clone(),
        }
    }
}

/// Targeting failed for one cluster; the others are still deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTargetingError {
    pub cluster_namespace: String,
    pub cluster_name: String,
    /// The cluster's `status.namespace` (where its deployment of the bundle lives, kept while
    /// its targeting fails); empty until assigned.
    pub deployment_namespace: String,
    /// What failed, e.g. the template error naming the missing key.
    pub message: String,
}

impl fmt::Display for ClusterTargetingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cluster {} in namespace {}: {}",
            self.cluster_name, self.cluster_namespace, self.message
        )
    }
}

/// A bundle whose targets cannot be evaluated at all.
#[derive(Debug, thiserror::Error)]
#[error("targets of bundle {bundle}: {source}")]
pub struct BundleTargetsError {
    pub bundle: String,
    #[source]
    pub source: fleet_bundle::target::TargetError,
}

/// The result of targeting one bundle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Targeting<'a> {
    /// Targets sorted by cluster name (as Fleet sorts them), then namespace.
    pub targets: Vec<Target<'a>>,
    /// The existing deployments in the namespace of no target: of clusters no longer
    /// targeted.
    pub unmatched: Vec<&'a BundleDeployment>,
    /// Clusters that matched but whose options could not be computed.
    pub errors: Vec<ClusterTargetingError>,
}

/// Builds the [`TargetCluster`] of a Cluster object.
pub fn target_cluster<'a>(
    cluster: &Cluster,
    groups: impl IntoIterator<Item = &'a ClusterGroup>,
) -> TargetCluster {
    TargetCluster {
        namespace: cluster.metadata.namespace.clone().unwrap_or_default(),
        name: cluster.metadata.name.clone().unwrap_or_default(),
        labels: labels_of(&cluster.metadata),
        groups: groups_for_cluster(cluster, groups),
        deployment_namespace: cluster
            .status
            .as_ref()
            .map(|s| s.namespace.clone())
            .unwrap_or_default(),
        paused: cluster.spec.paused,
        agent_checked_in: cluster
            .status
            .as_ref()
            .is_some_and(|s| s.agent.last_seen.is_some()),
    }
}

/// The clusters a bundle can target when every one of its targets names its cluster (each
/// cluster's agent bundle); `None` when any target selects clusters otherwise.
pub fn named_clusters(bundle: &Bundle) -> Option<HashSet<&str>> {
    if bundle.spec.targets.is_empty() {
        return None;
    }
    bundle
        .spec
        .targets
        .iter()
        .map(|t| (!t.cluster_name.is_empty()).then_some(t.cluster_name.as_str()))
        .collect()
}

/// Fleet's `Targets`: for every cluster in `namespaces`, the first matching target (honouring
/// `targetRestrictions`), then the first matching customization (`doNotDeploy` skips the
/// cluster), merged options, Helm values templating, and the deployment ID. The existing
/// BundleDeployments of the bundle are folded in afterwards ([`ResolvedTargets::with_deployments`]).
pub fn resolve_targets<'a>(
    bundle: &Bundle,
    manifest_id: &str,
    namespaces: &BTreeSet<String>,
    clusters: impl IntoIterator<Item = &'a Cluster>,
    groups: &[&ClusterGroup],
) -> Result<ResolvedTargets, BundleTargetsError> {
    let bundle_key = format!(
        "{}/{}",
        bundle.metadata.namespace.as_deref().unwrap_or(""),
        bundle.metadata.name.as_deref().unwrap_or("")
    );
    let matcher = TargetMatcher::for_bundle(bundle).map_err(|source| BundleTargetsError {
        bundle: bundle_key,
        source,
    })?;
    let bundle_options = bundle.spec.deployment_options();
    // A target naming its cluster matches no other one. When every target does (each
    // cluster's agent bundle), only those clusters are looked at: every cluster registering
    // re-targets every agent bundle, which was O(clusters²) per registration wave.
    let named_clusters = named_clusters(bundle);
    let mut result = ResolvedTargets::default();
    for cluster in clusters {
        let cluster_ns = cluster.metadata.namespace.as_deref().unwrap_or("");
        if !namespaces.contains(cluster_ns) {
            continue;
        }
        if let Some(names) = &named_clusters
            && !names.contains(cluster.metadata.name.as_deref().unwrap_or(""))
        {
            continue;
        }
        let target_cluster = target_cluster(cluster, groups.iter().copied());
        let TargetDecision::Deploy { options, .. } =
            matcher.decide(&bundle_options, &target_cluster.facts())
        else {
            continue;
        };
        let mut options = *options;
        let context = ClusterContext {
            name: target_cluster.name.clone(),
            namespace: target_cluster.namespace.clone(),
            labels: target_cluster.labels.clone(),
            annotations: cluster.metadata.annotations.clone().unwrap_or_default(),
            template_values: cluster.spec.template_values.clone().unwrap_or_default(),
        };
        if let Err(error) = template_helm_values(&mut options, &context) {
            result.errors.push(ClusterTargetingError {
                cluster_namespace: target_cluster.namespace.clone(),
                cluster_name: target_cluster.name.clone(),
                deployment_namespace: target_cluster.deployment_namespace.clone(),
                message: error.message,
            });
            continue;
        }
        let deployment_id = fleet_bundle::options::deployment_id(manifest_id, &options);
        result.targets.push(ResolvedTarget {
            cluster: Arc::new(target_cluster),
            options: Arc::new(options),
            deployment_id: deployment_id.into(),
        });
    }
    result.targets.sort_by(|a, b| {
        (&a.cluster.name, &a.cluster.namespace).cmp(&(&b.cluster.name, &b.cluster.namespace))
    });
    result.errors.sort_by(|a, b| {
        (&a.cluster_name, &a.cluster_namespace).cmp(&(&b.cluster_name, &b.cluster_namespace))
    });
    Ok(result)
}

/// Fleet's `BundleDeploymentLabels`: the bundle's labels without `kubectl.kubernetes.io/*` and
/// `*cattle.io/*` keys, but with its `fleet.cattle.io/*` labels, plus the bundle and cluster
/// identification labels and `fleet.cattle.io/managed=true`.
pub fn bundle_deployment_labels(
    bundle: &Bundle,
    cluster_namespace: &str,
    cluster_name: &str,
) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = labels_of(&bundle.metadata)
        .into_iter()
        .filter(|(k, _)| {
            k.starts_with(LABEL_PREFIX)
                || !(k.starts_with("kubectl.kubernetes.io/") || k.contains("cattle.io/"))
        })
        .collect();
    labels.insert(
        BUNDLE_LABEL.to_string(),
        bundle.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(
        BUNDLE_NAMESPACE_LABEL.to_string(),
        bundle.metadata.namespace.clone().unwrap_or_default(),
    );
    labels.insert(MANAGED_LABEL.to_string(), "true".to_string());
    labels.insert(
        CLUSTER_NAMESPACE_LABEL.to_string(),
        cluster_namespace.to_string(),
    );
    labels.insert(CLUSTER_LABEL.to_string(), cluster_name.to_string());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::{
        BundleSpec, BundleTarget, ClusterGroupSpec, ClusterSpec, ClusterStatus, HelmOptions,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn selector(pairs: &[(&str, &str)]) -> LabelSelector {
        LabelSelector {
            match_labels: Some(labels(pairs)),
            match_expressions: None,
        }
    }

    fn cluster(name: &str, l: &[(&str, &str)]) -> Cluster {
        let mut c = Cluster::new(name, ClusterSpec::default());
        c.metadata.namespace = Some("fleet-default".into());
        c.metadata.labels = Some(labels(l));
        c.status = Some(ClusterStatus {
            namespace: cluster_namespace_name("fleet-default", name),
            ..Default::default()
        });
        c
    }

    fn bundle(targets: Vec<BundleTarget>, values: serde_json::Value) -> Bundle {
        let mut b = Bundle::new(
            "app",
            BundleSpec {
                targets,
                helm: Some(HelmOptions {
                    values: values.as_object().cloned(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        b.metadata.namespace = Some("fleet-default".into());
        b.metadata.labels = Some(labels(&[
            ("fleet.cattle.io/repo-name", "repo"),
            ("team", "a"),
            ("management.cattle.io/x", "y"),
            ("kubectl.kubernetes.io/last-applied-configuration", "{}"),
        ]));
        b
    }

    fn target_selector(name: &str, pairs: &[(&str, &str)]) -> BundleTarget {
        BundleTarget {
            name: name.into(),
            cluster_selector: Some(selector(pairs)),
            ..Default::default()
        }
    }

    #[test]
    fn cluster_namespace_matches_fleet() {
        assert_eq!(
            cluster_namespace_name("fleet-local", "local"),
            "cluster-fleet-local-local-1a3d67d0a899"
        );
        let long = cluster_namespace_name("fleet-default", &"c".repeat(80));
        assert!(long.len() <= 63, "{long}");
        assert!(long.starts_with("cluster-fleet-default-ccc"));
    }

    #[test]
    fn targets_match_selectors_and_fold_in_deployments() {
        let b = bundle(vec![target_selector("prod", &[("env", "prod")])], json!({}));
        let c1 = cluster("c1", &[("env", "prod")]);
        let c2 = cluster("c2", &[("env", "dev")]);
        let mut existing = BundleDeployment::new("app", Default::default());
        existing.metadata.namespace = Some(cluster_namespace_name("fleet-default", "c1"));
        let ns = BTreeSet::from(["fleet-default".to_string()]);
        let resolved = resolve_targets(&b, "s-abc", &ns, [&c1, &c2], &[]).unwrap();
        let t = resolved.with_deployments(&[&existing]);
        assert!(t.errors.is_empty());
        assert_eq!(t.targets.len(), 1);
        assert_eq!(t.targets[0].cluster.name, "c1");
        assert!(t.targets[0].deployment.is_some());
        assert!(t.targets[0].deployment_id.starts_with("s-abc:"));
        // Clusters of namespaces out of scope are ignored.
        let other = BTreeSet::from(["elsewhere".to_string()]);
        let t = resolve_targets(&b, "s-abc", &other, [&c1, &c2], &[]).unwrap();
        assert!(t.targets.is_empty());
    }

    #[test]
    fn deployments_are_folded_in_by_namespace() {
        let b = bundle(vec![target_selector("all", &[("env", "x")])], json!({}));
        let clusters: Vec<Cluster> = (0..6)
            .map(|i| {
                let mut c = cluster(&format!("c{i}"), &[("env", "x")]);
                if i == 5 {
                    // Not assigned a namespace yet.
                    c.status = None;
                }
                c
            })
            .collect();
        let ns = BTreeSet::from(["fleet-default".to_string()]);
        let resolved = resolve_targets(&b, "s-abc", &ns, &clusters, &[]).unwrap();
        let in_namespace = |namespace: Option<String>, name: &str| {
            let mut bd = BundleDeployment::new(name, Default::default());
            bd.metadata.namespace = namespace;
            bd
        };
        let of = |i: usize| Some(cluster_namespace_name("fleet-default", &format!("c{i}")));
        let existing = [
            in_namespace(of(3), "app"),
            in_namespace(of(1), "app"),
            // A cluster no longer targeted, one without namespace, an empty one.
            in_namespace(Some(cluster_namespace_name("fleet-default", "gone")), "app"),
            in_namespace(None, "app"),
            in_namespace(Some(String::new()), "app"),
            // Two in one namespace: the later one is the target's.
            in_namespace(of(0), "app"),
            in_namespace(of(0), "app-copy"),
        ];
        let refs: Vec<&BundleDeployment> = existing.iter().collect();
        assert_eq!(resolved.targets.len(), 6);
        let folded = resolved.with_deployments(&refs);
        fn name_of<'a>(t: &Target<'a>) -> Option<&'a str> {
            t.deployment.and_then(|bd| bd.metadata.name.as_deref())
        }
        let names: Vec<Option<&str>> = folded.targets.iter().map(name_of).collect();
        assert_eq!(
            names,
            [Some("app-copy"), Some("app"), None, Some("app"), None, None]
        );
        let unmatched: Vec<Option<&str>> = folded
            .unmatched
            .iter()
            .map(|bd| bd.metadata.namespace.as_deref())
            .collect();
        let gone = cluster_namespace_name("fleet-default", "gone");
        assert_eq!(unmatched, [Some(gone.as_str()), None, Some("")]);
        // With the index kept from before: the same.
        let index = resolved.namespace_index();
        assert_eq!(resolved.with_deployments_indexed(&refs, &index), folded);
        // Two targets in one namespace each get the deployment there.
        let mut shared = resolved.clone();
        let mut twin = (*shared.targets[2].cluster).clone();
        twin.deployment_namespace = shared.targets[1].cluster.deployment_namespace.clone();
        shared.targets[2].cluster = Arc::new(twin);
        let folded = shared.with_deployments(&refs);
        let names: Vec<Option<&str>> = folded.targets.iter().map(name_of).collect();
        assert_eq!(
            names,
            [
                Some("app-copy"),
                Some("app"),
                Some("app"),
                Some("app"),
                None,
                None
            ]
        );
    }

    #[test]
    fn targets_naming_their_clusters_match_only_those() {
        let named = |cluster: &str, pairs: &[(&str, &str)]| BundleTarget {
            name: cluster.into(),
            cluster_name: cluster.into(),
            cluster_selector: Some(selector(pairs)),
            ..Default::default()
        };
        let c1 = cluster("c1", &[("env", "prod")]);
        let c2 = cluster("c2", &[("env", "prod")]);
        let c3 = cluster("c3", &[("env", "dev")]);
        let ns = BTreeSet::from(["fleet-default".to_string()]);
        let names = |t: &ResolvedTargets| -> Vec<String> {
            t.targets.iter().map(|t| t.cluster.name.clone()).collect()
        };
        let b = bundle(
            vec![
                named("c1", &[("env", "prod")]),
                named("c3", &[("env", "prod")]),
            ],
            json!({}),
        );
        let t = resolve_targets(&b, "s", &ns, [&c1, &c2, &c3], &[]).unwrap();
        assert_eq!(names(&t), ["c1"], "c2 is not named, c3 fails the selector");
        // One target without a name: every cluster is looked at again.
        let b = bundle(
            vec![named("c1", &[("env", "prod")]), target_selector("all", &[])],
            json!({}),
        );
        let t = resolve_targets(&b, "s", &ns, [&c1, &c2, &c3], &[]).unwrap();
        assert_eq!(names(&t), ["c1", "c2", "c3"]);
    }

    #[test]
    fn customization_do_not_deploy_and_group_targets() {
        let mut skip = target_selector("skip", &[("skip", "true")]);
        skip.do_not_deploy = true;
        let group_target = BundleTarget {
            name: "grp".into(),
            cluster_group: "g".into(),
            ..Default::default()
        };
        let b = bundle(vec![skip, group_target], json!({}));
        let mut g = ClusterGroup::new(
            "g",
            ClusterGroupSpec {
                selector: Some(selector(&[("region", "eu")])),
            },
        );
        g.metadata.namespace = Some("fleet-default".into());
        let c1 = cluster("c1", &[("region", "eu")]);
        let c2 = cluster("c2", &[("region", "eu"), ("skip", "true")]);
        let c3 = cluster("c3", &[("region", "us")]);
        let ns = BTreeSet::from(["fleet-default".to_string()]);
        let t = resolve_targets(&b, "s-1", &ns, [&c1, &c2, &c3], &[&g]).unwrap();
        let names: Vec<_> = t.targets.iter().map(|t| t.cluster.name.as_str()).collect();
        assert_eq!(names, ["c1"]);
        assert_eq!(
            t.targets[0].cluster.groups.keys().collect::<Vec<_>>(),
            ["g"]
        );
    }

    #[test]
    fn template_error_names_the_cluster_and_spares_the_others() {
        let b = bundle(
            vec![target_selector("all", &[])],
            json!({"region": "${ .ClusterLabels.region }"}),
        );
        let c1 = cluster("c1", &[("region", "eu")]);
        let c2 = cluster("c2", &[("env", "dev")]);
        let ns = BTreeSet::from(["fleet-default".to_string()]);
        let t = resolve_targets(&b, "s-1", &ns, [&c1, &c2], &[]).unwrap();
        assert_eq!(t.targets.len(), 1);
        assert_eq!(
            t.targets[0].options.helm.as_ref().unwrap().values,
            json!({"region": "eu"}).as_object().cloned()
        );
        assert_eq!(t.errors.len(), 1);
        let message = t.errors[0].to_string();
        assert!(
            message.starts_with("cluster c2 in namespace fleet-default: "),
            "{message}"
        );
        assert!(message.contains("region"), "{message}");
    }

    #[test]
    fn different_values_give_different_deployment_ids() {
        let b = bundle(
            vec![target_selector("all", &[])],
            json!({"env": "${ .ClusterLabels.env }"}),
        );
        let c1 = cluster("c1", &[("env", "dev")]);
        let c2 = cluster("c2", &[("env", "prod")]);
        let ns = BTreeSet::from(["fleet-default".to_string()]);
        let t = resolve_targets(&b, "s-1", &ns, [&c2, &c1], &[]).unwrap();
        assert_eq!(t.targets[0].cluster.name, "c1");
        assert_ne!(t.targets[0].deployment_id, t.targets[1].deployment_id);
    }

    #[test]
    fn namespace_mappings_add_namespaces() {
        let b = bundle(vec![], json!({}));
        let mut mapping = BundleNamespaceMapping {
            metadata: ObjectMeta {
                name: Some("m".into()),
                namespace: Some("fleet-default".into()),
                ..Default::default()
            },
            bundle_selector: Some(selector(&[("team", "a")])),
            namespace_selector: Some(selector(&[("tenant", "x")])),
        };
        let ns = |name: &str, l: &[(&str, &str)]| Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels(l)),
                ..Default::default()
            },
            ..Default::default()
        };
        let n1 = ns("tenant-x", &[("tenant", "x")]);
        let n2 = ns("tenant-y", &[("tenant", "y")]);
        let got = namespaces_for_bundle(&b, [&mapping], &[&n1, &n2]);
        assert_eq!(
            got,
            BTreeSet::from(["fleet-default".to_string(), "tenant-x".to_string()])
        );
        mapping.bundle_selector = None;
        let got = namespaces_for_bundle(&b, [&mapping], &[&n1, &n2]);
        assert_eq!(got, BTreeSet::from(["fleet-default".to_string()]));
    }

    #[test]
    fn labels_follow_fleet() {
        let b = bundle(vec![], json!({}));
        let l = bundle_deployment_labels(&b, "fleet-default", "c1");
        assert_eq!(
            l,
            labels(&[
                ("fleet.cattle.io/repo-name", "repo"),
                ("team", "a"),
                ("fleet.cattle.io/bundle-name", "app"),
                ("fleet.cattle.io/bundle-namespace", "fleet-default"),
                ("fleet.cattle.io/managed", "true"),
                ("fleet.cattle.io/cluster-namespace", "fleet-default"),
                ("fleet.cattle.io/cluster", "c1"),
            ])
        );
    }
}

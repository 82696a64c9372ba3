//! Staged → deployed promotion under a bundle's `rolloutStrategy` (Fleet's
//! `target/rollout.go` and `partition.go`).
//!
//! Every target gets the newest options *staged*; a staged deployment is *promoted* (copied to
//! `options`/`deploymentID`, which the agent deploys) only while fewer than `maxUnavailable`
//! deployments of the bundle, and of its partition, are unavailable. Partitions are processed
//! in order; once more than `maxUnavailablePartitions` partitions are unavailable, later
//! partitions are not touched at all. A deployment is unavailable while the agent has not
//! applied its current deployment ID or it is not ready.

use std::collections::BTreeMap;

use fleet_api::consts::{
    BUNDLE_DEPLOYMENT_FINALIZER, CLUSTER_LABEL, CLUSTER_NAMESPACE_LABEL, MAX_NEW, rollout_defaults,
};
use fleet_api::{
    Bundle, BundleDeployment, BundleDeploymentSpec, BundleDeploymentStatus, BundleStatus,
    BundleSummary, PartitionStatus, RolloutStrategy,
};
use fleet_bundle::target::ClusterMatcher;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::target::{Target, bundle_deployment_labels};

/// A rollout strategy that cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RolloutError {
    #[error("invalid {field}, must be int or percentage (ending with %): {value}")]
    InvalidLimit { field: &'static str, value: String },
    #[error("partition {partition:?}: {message}")]
    InvalidPartition { partition: String, message: String },
}

/// Fleet's `limit`: resolves a count-or-percentage (the first of `values` that is set, else
/// `default`) against `count`. Percentages round down but never below 1; an integer is taken
/// as is (0 included); `count == 0` gives 1.
pub fn limit(
    count: usize,
    field: &'static str,
    values: &[Option<&IntOrString>],
    default: &IntOrString,
) -> Result<i64, RolloutError> {
    if count == 0 {
        return Ok(1);
    }
    let value = values.iter().flatten().next().copied().unwrap_or(default);
    let text = match value {
        IntOrString::Int(i) => return Ok(i64::from(*i)),
        IntOrString::String(s) => s,
    };
    // Go's IntValue parses a plain number in a string.
    if let Ok(i) = text.parse::<i64>()
        && i > 0
    {
        return Ok(i);
    }
    let invalid = || RolloutError::InvalidLimit {
        field,
        value: text.clone(),
    };
    let percent: f64 = text
        .strip_suffix('%')
        .ok_or_else(invalid)?
        .parse()
        .map_err(|_| invalid())?;
    if percent <= 0.0 {
        return Ok(1);
    }
    // Go: int(float64(count)*percent) / 100
    let scaled = ((count as f64) * percent) as i64 / 100;
    Ok(scaled.max(1))
}

fn default_of(s: &str) -> IntOrString {
    IntOrString::String(s.to_string())
}

/// Fleet's `IsUnavailable`: the agent has not applied the current deployment ID, or it is not
/// ready.
pub fn is_unavailable(bd: &BundleDeployment) -> bool {
    unavailable(&bd.spec, bd.status.as_ref())
}

fn unavailable(spec: &BundleDeploymentSpec, status: Option<&BundleDeploymentStatus>) -> bool {
    match status {
        Some(status) => status.applied_deployment_id != spec.deployment_id || !status.ready,
        None => true,
    }
}

/// A target's deployment as the plan leaves it: the spec to write (borrowed from the existing
/// deployment until the plan changes it: most plans change few of the bundle's deployments,
/// and copying every spec with its Helm values made planning O(deployments) in allocations),
/// next to what the agent last reported for the existing one.
struct Planned<'a> {
    existing: Option<&'a BundleDeployment>,
    spec: PlannedSpec<'a>,
}

/// The spec of a [`Planned`] deployment: the existing one until the plan changes it, then a
/// copy on the heap. A plan holds one per target; held inline (as a `Cow` did), each was the
/// size of a spec with its two sets of options, and a plan over 10,000 targets allocated and
/// faulted in megabytes each time.
enum PlannedSpec<'a> {
    Existing(&'a BundleDeploymentSpec),
    Changed(Box<BundleDeploymentSpec>),
}

impl std::ops::Deref for PlannedSpec<'_> {
    type Target = BundleDeploymentSpec;

    fn deref(&self) -> &BundleDeploymentSpec {
        match self {
            PlannedSpec::Existing(spec) => spec,
            PlannedSpec::Changed(spec) => spec,
        }
    }
}

impl PlannedSpec<'_> {
    fn to_mut(&mut self) -> &mut BundleDeploymentSpec {
        if let PlannedSpec::Existing(existing) = self {
            let copy = Box::new((**existing).clone());
            *self = PlannedSpec::Changed(copy);
        }
        match self {
            PlannedSpec::Changed(spec) => spec,
            PlannedSpec::Existing(_) => unreachable!("an existing spec was copied just above"),
        }
    }

    fn into_owned(self) -> BundleDeploymentSpec {
        match self {
            PlannedSpec::Existing(spec) => spec.clone(),
            PlannedSpec::Changed(spec) => *spec,
        }
    }
}

impl Planned<'_> {
    fn status(&self) -> Option<&BundleDeploymentStatus> {
        self.existing.and_then(|bd| bd.status.as_ref())
    }

    fn unavailable(&self) -> bool {
        unavailable(&self.spec, self.status())
    }
}

/// Up to date: staged, current and applied deployment IDs are the target's `deployment_id`.
fn up_to_date(deployment_id: &str, planned: Option<&Planned<'_>>) -> bool {
    planned.is_some_and(|p| at_deployment_id(deployment_id, &p.spec, p.status()))
}

fn at_deployment_id(
    deployment_id: &str,
    spec: &BundleDeploymentSpec,
    status: Option<&BundleDeploymentStatus>,
) -> bool {
    spec.staged_deployment_id == deployment_id
        && spec.deployment_id == deployment_id
        && status.is_some_and(|s| s.applied_deployment_id == deployment_id)
}

/// A staged deployment ID waits to be promoted to the current one.
fn promotion_pending(spec: &BundleDeploymentSpec) -> bool {
    !spec.staged_deployment_id.is_empty() && spec.deployment_id != spec.staged_deployment_id
}

/// What a plan reads from a target's existing deployment, given the target and the bundle.
/// The next plan of the bundle over the same targets takes these over for every deployment
/// that is still the same object ([`deployment_facts`]): a first rollout to 10,000 clusters
/// is 200 plans of each bundle (Fleet's `maxNew` of 50), and reading all 10,000 deployments,
/// scattered over the heap, in each of them made planning grow with the square of the fleet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeploymentFacts {
    /// The deployment's address (0: the target has none). Whoever keeps facts for a later
    /// plan keeps the deployments alive as well, so no other deployment is allocated there.
    address: usize,
    /// Staged deployment ID and options are the target's.
    staged_current: bool,
    /// The spec fields and labels the controller owns are what the plan writes.
    owned_current: bool,
    /// [`is_unavailable`].
    unavailable: bool,
    /// Staged, current and applied deployment IDs are the target's.
    up_to_date: bool,
    /// A staged deployment ID waits to be promoted.
    promotion_pending: bool,
    /// Its state is Ready.
    ready: bool,
}

fn address_of(bd: &BundleDeployment) -> usize {
    std::ptr::from_ref(bd) as usize
}

fn facts_of(
    bundle: &Bundle,
    common_labels: &BTreeMap<String, String>,
    target: &Target<'_>,
    bd: &BundleDeployment,
) -> DeploymentFacts {
    let id = target.deployment_id;
    let spec = &bd.spec;
    DeploymentFacts {
        address: address_of(bd),
        staged_current: spec.staged_deployment_id == id && spec.staged_options == *target.options,
        owned_current: owned_fields_match(bundle, target, bd)
            && bd.metadata.labels.as_ref().is_some_and(|labels| {
                labels_match(
                    labels,
                    common_labels,
                    &target.cluster.namespace,
                    &target.cluster.name,
                )
            }),
        unavailable: is_unavailable(bd),
        up_to_date: at_deployment_id(id, spec, bd.status.as_ref()),
        promotion_pending: promotion_pending(spec),
        ready: bd.state() == fleet_api::BundleState::Ready,
    }
}

/// The [`DeploymentFacts`] of every target, in target order: taken from `previous` where the
/// target's deployment is the very object they were read from, read from it otherwise.
/// `previous` must be the facts of a plan of the same bundle (same generation and labels)
/// over the same targets, and the deployments they were read from must still be alive.
pub fn deployment_facts(
    bundle: &Bundle,
    targets: &[Target<'_>],
    previous: &[DeploymentFacts],
) -> Vec<DeploymentFacts> {
    let common_labels = bundle_deployment_labels(bundle, "", "");
    targets
        .iter()
        .enumerate()
        .map(|(i, target)| match target.deployment {
            None => DeploymentFacts::default(),
            Some(bd) => match previous.get(i) {
                Some(known) if known.address == address_of(bd) => *known,
                _ => facts_of(bundle, &common_labels, target, bd),
            },
        })
        .collect()
}

fn unavailable_count(members: &[usize], facts: &[DeploymentFacts]) -> i64 {
    members
        .iter()
        .filter(|&&i| facts[i].address != 0 && facts[i].unavailable)
        .count() as i64
}

/// Adds a target to a bundle summary; `known_ready`: its deployment is Ready (as its
/// [`DeploymentFacts`] say), so it is only counted, without being read.
fn add_target(summary: &mut BundleSummary, target: &Target<'_>, known_ready: bool) {
    match target.deployment {
        Some(_) if known_ready => {
            summary.increment_state("", fleet_api::BundleState::Ready, "", &[], &[]);
            summary.desired_ready += 1;
        }
        Some(bd) => crate::summary::add_deployment_named(summary, bd, || target.cluster.key()),
        None => {
            // Named only while the summary still lists non-ready entries.
            let name = if crate::summary::lists_more_non_ready(summary) {
                target.cluster.key()
            } else {
                String::new()
            };
            summary.increment_state(&name, fleet_api::BundleState::Pending, "", &[], &[]);
            summary.desired_ready += 1;
        }
    }
}

/// Fleet's bundle `Summary`: every target counts as desired; a target without deployment is
/// Pending; non-ready entries are named `<cluster namespace>/<cluster name>`. Plans sum
/// their partitions' summaries ([`members_summary`]); the tests check those against this.
#[cfg(test)]
pub fn targets_summary<'a, 'd: 'a>(
    targets: impl IntoIterator<Item = &'a Target<'d>>,
) -> BundleSummary {
    let mut summary = BundleSummary::default();
    for target in targets {
        add_target(&mut summary, target, false);
    }
    summary
}

/// [`targets_summary`] of the targets at `members`, with what `facts` know.
fn members_summary(
    members: &[usize],
    targets: &[Target<'_>],
    facts: &[DeploymentFacts],
) -> BundleSummary {
    let mut summary = BundleSummary::default();
    for &i in members {
        add_target(&mut summary, &targets[i], facts[i].ready);
    }
    summary
}

/// The summary of targets taken in the order of `parts`, from the summaries of those parts:
/// counts add up, and the named non-ready entries are the first ones in that order.
fn concat_summaries<'a>(parts: impl IntoIterator<Item = &'a BundleSummary>) -> BundleSummary {
    let mut summary = BundleSummary::default();
    for part in parts {
        summary.add_counts(part);
        let room = fleet_api::consts::MAX_NON_READY_RESOURCES
            .saturating_sub(summary.non_ready_resources.len());
        summary
            .non_ready_resources
            .extend(part.non_ready_resources.iter().take(room).cloned());
    }
    summary
}

struct Partition {
    status: PartitionStatus,
    members: Vec<usize>,
}

fn new_partition(
    name: String,
    members: Vec<usize>,
    (targets, facts): TargetsWithFacts<'_, '_>,
    max_unavailable: &[Option<&IntOrString>],
) -> Result<Partition, RolloutError> {
    let max = limit(
        members.len(),
        "maxUnavailable",
        max_unavailable,
        &default_of(rollout_defaults::MAX_UNAVAILABLE),
    )?;
    Ok(Partition {
        status: PartitionStatus {
            name,
            count: members.len() as i64,
            max_unavailable: max,
            unavailable: unavailable_count(&members, facts),
            summary: members_summary(&members, targets, facts),
        },
        members,
    })
}

/// The targets of a plan with their [`DeploymentFacts`], index for index.
type TargetsWithFacts<'t, 'a> = (&'t [Target<'a>], &'t [DeploymentFacts]);

/// Fleet's automatic partitions: one partition `All` below 200 targets or when
/// `autoPartitionSize` is 0, else chunks of `autoPartitionSize` (default 25%).
fn auto_partitions(
    rollout: &RolloutStrategy,
    members: Vec<usize>,
    targets: TargetsWithFacts<'_, '_>,
    name_prefix: &str,
) -> Result<Vec<Partition>, RolloutError> {
    let max_unavailable = [rollout.max_unavailable.as_ref()];
    let disabled = matches!(rollout.auto_partition_size, Some(IntOrString::Int(i)) if i <= 0);
    if disabled || members.len() < 200 {
        return Ok(vec![new_partition(
            format!("{name_prefix}All"),
            members,
            targets,
            &max_unavailable,
        )?]);
    }
    let size = limit(
        members.len(),
        "autoPartitionSize",
        &[rollout.auto_partition_size.as_ref()],
        &default_of(rollout_defaults::AUTO_PARTITION_SIZE),
    )?
    .max(1) as usize;
    let mut partitions = Vec::new();
    let mut offset = 0;
    for chunk in members.chunks(size) {
        let name = format!("{name_prefix}Partition {offset} - {}", offset + chunk.len());
        partitions.push(new_partition(
            name,
            chunk.to_vec(),
            targets,
            &max_unavailable,
        )?);
        offset += chunk.len();
    }
    Ok(partitions)
}

/// The partitions of the targets: the explicit ones in order (a cluster joins the first
/// partition it matches), then automatic partitions of the clusters no explicit partition
/// matched.
fn partitions(
    rollout: &RolloutStrategy,
    with_facts: TargetsWithFacts<'_, '_>,
) -> Result<Vec<Partition>, RolloutError> {
    let targets = with_facts.0;
    let all: Vec<usize> = (0..targets.len()).collect();
    if rollout.partitions.is_empty() {
        return auto_partitions(rollout, all, with_facts, "");
    }
    let mut assigned = vec![false; targets.len()];
    let mut result = Vec::new();
    for def in &rollout.partitions {
        let matcher = ClusterMatcher::new(
            &def.name,
            &def.cluster_name,
            &def.cluster_group,
            def.cluster_group_selector.as_ref(),
            def.cluster_selector.as_ref(),
        )
        .map_err(|e| RolloutError::InvalidPartition {
            partition: def.name.clone(),
            message: e.to_string(),
        })?;
        let empty = Default::default();
        let members: Vec<usize> = all
            .iter()
            .copied()
            .filter(|i| !assigned[*i])
            .filter(|i| {
                let c = &targets[*i].cluster;
                if c.groups.is_empty() {
                    matcher.matches(&c.name, "", &empty, &c.labels)
                } else {
                    c.groups
                        .iter()
                        .any(|(g, gl)| matcher.matches(&c.name, g, gl, &c.labels))
                }
            })
            .collect();
        for i in &members {
            assigned[*i] = true;
        }
        result.push(new_partition(
            def.name.clone(),
            members,
            with_facts,
            &[
                def.max_unavailable.as_ref(),
                rollout.max_unavailable.as_ref(),
            ],
        )?);
    }
    let rest: Vec<usize> = all.into_iter().filter(|i| !assigned[*i]).collect();
    if !rest.is_empty() {
        result.extend(auto_partitions(
            rollout,
            rest,
            with_facts,
            "Unpartitioned ",
        )?);
    }
    Ok(result)
}

/// What the rollout decided for one bundle: every target's deployment as desired. The
/// reconciler writes only what changed ([`plan_rollout_changes`]); this whole view is the
/// reference the tests check the decision and the changes against.
#[cfg(test)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutPlan {
    /// The BundleDeployments to write (spec and labels as desired), in target order. Targets
    /// whose cluster has no namespace yet, or that are beyond `maxNew` new deployments, have none.
    pub deployments: Vec<BundleDeployment>,
    /// The rollout part of the bundle status: summary, unavailable counts, limits, partitions,
    /// newlyCreated, maxNew.
    pub status: BundleStatus,
}

/// Fleet's `resetStatus` + `UpdatePartitions`: stages every target's options, promotes staged
/// deployments within the limits, and computes the rollout status. `targets` carry the
/// existing deployments (as observed); the returned deployments are the desired ones.
#[cfg(test)]
pub fn plan_rollout(bundle: &Bundle, targets: &[Target<'_>]) -> Result<RolloutPlan, RolloutError> {
    let facts = deployment_facts(bundle, targets, &[]);
    let (desired, status) = rollout(bundle, targets, &facts)?;
    let bundle_name = bundle.metadata.name.clone().unwrap_or_default();
    let deployments = targets
        .iter()
        .zip(desired)
        .filter_map(|(target, planned)| {
            let planned = planned?;
            // A cluster without namespace waits for the cluster reconciler to assign it.
            (!target.cluster.deployment_namespace.is_empty())
                .then(|| desired_deployment(bundle, &bundle_name, target, planned))
        })
        .collect();
    Ok(RolloutPlan {
        deployments,
        status,
    })
}

/// What the rollout changes for one bundle: the deployments to write, leaving out those that
/// would be written as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutChanges {
    /// The BundleDeployments to write (spec and labels as desired) because they are new or
    /// differ from the existing one in spec or labels, in target order.
    pub deployments: Vec<BundleDeployment>,
    /// The rollout part of the bundle status: summary, unavailable counts, limits, partitions,
    /// newlyCreated, maxNew.
    pub status: BundleStatus,
}

/// Fleet's `resetStatus` + `UpdatePartitions` (stages every target's options, promotes staged
/// deployments within the limits, computes the rollout status), returning only the
/// deployments to write. The unchanged ones (most of them, on every plan after the first) are
/// recognised without being built.
pub fn plan_rollout_changes(
    bundle: &Bundle,
    targets: &[Target<'_>],
) -> Result<RolloutChanges, RolloutError> {
    let facts = deployment_facts(bundle, targets, &[]);
    plan_rollout_changes_with(bundle, targets, &facts)
}

/// [`plan_rollout_changes`] with the targets' [`DeploymentFacts`] known already
/// ([`deployment_facts`]: one per target, in target order; any other number of them is
/// read again).
pub fn plan_rollout_changes_with(
    bundle: &Bundle,
    targets: &[Target<'_>],
    facts: &[DeploymentFacts],
) -> Result<RolloutChanges, RolloutError> {
    if facts.len() != targets.len() {
        return plan_rollout_changes(bundle, targets);
    }
    let (desired, status) = rollout(bundle, targets, facts)?;
    let bundle_name = bundle.metadata.name.clone().unwrap_or_default();
    let mut changes = RolloutChanges {
        status,
        ..Default::default()
    };
    for ((target, planned), known) in targets.iter().zip(desired).zip(facts) {
        let Some(planned) = planned else { continue };
        // Before the cluster is read: most deployments stay as they are. (One that exists
        // has a namespace: it was found there.)
        if let (PlannedSpec::Existing(_), Some(_)) = (&planned.spec, planned.existing)
            && known.owned_current
        {
            continue;
        }
        let namespace = target.cluster.deployment_namespace.as_str();
        if namespace.is_empty() {
            // Waits for the cluster reconciler to assign the cluster namespace.
            continue;
        }
        let existing = planned.existing;
        let bd = desired_deployment(bundle, &bundle_name, target, planned);
        let unchanged =
            existing.is_some_and(|e| e.spec == bd.spec && e.metadata.labels == bd.metadata.labels);
        if !unchanged {
            changes.deployments.push(bd);
        }
    }
    Ok(changes)
}

/// Whether the spec fields a plan sets from the bundle and target (beside the staged and
/// current options) are what `existing` has.
fn owned_fields_match(bundle: &Bundle, target: &Target<'_>, existing: &BundleDeployment) -> bool {
    existing.spec.depends_on == bundle.spec.depends_on
        && existing.spec.correct_drift == target.options.correct_drift
        && existing.spec.paused == (bundle.spec.paused || target.cluster.paused)
        && existing.spec.helm_chart_options == bundle.spec.helm_app_options
}

/// Whether `labels` are [`bundle_deployment_labels`] for the cluster `cluster_namespace/
/// cluster_name`, given `common` (those labels for an empty cluster namespace and name).
pub fn labels_match(
    labels: &BTreeMap<String, String>,
    common: &BTreeMap<String, String>,
    cluster_namespace: &str,
    cluster_name: &str,
) -> bool {
    // Both maps are sorted by key: walked side by side, each key is compared once (a lookup
    // per label was most of a plan over 10,000 unchanged deployments).
    labels.len() == common.len()
        && labels
            .iter()
            .zip(common)
            .all(|((key, value), (common_key, common_value))| {
                key == common_key
                    && match key.as_str() {
                        CLUSTER_NAMESPACE_LABEL => value == cluster_namespace,
                        CLUSTER_LABEL => value == cluster_name,
                        _ => value == common_value,
                    }
            })
}

/// The deployment `planned` for `target`, with only what the controller owns: server-side
/// apply takes the fields it is sent.
///
/// As Fleet's controller does, it carries the BundleDeployment finalizer from its creation on,
/// so the agent need not write it before deploying; the agent removes it once it has
/// uninstalled a deleted deployment. Only where an agent has checked in: a cluster that never
/// had one would keep a deleted deployment forever. Once sent, the finalizer is sent with
/// every write, since server-side apply would remove an owned entry left out.
fn desired_deployment(
    bundle: &Bundle,
    bundle_name: &str,
    target: &Target<'_>,
    planned: Planned<'_>,
) -> BundleDeployment {
    let mut bd = BundleDeployment {
        metadata: ObjectMeta {
            name: Some(
                planned
                    .existing
                    .and_then(|e| e.metadata.name.clone())
                    .unwrap_or_else(|| bundle_name.to_string()),
            ),
            namespace: Some(target.cluster.deployment_namespace.clone()),
            labels: Some(bundle_deployment_labels(
                bundle,
                &target.cluster.namespace,
                &target.cluster.name,
            )),
            finalizers: target
                .cluster
                .agent_checked_in
                .then(|| vec![BUNDLE_DEPLOYMENT_FINALIZER.to_string()]),
            ..Default::default()
        },
        spec: planned.spec.into_owned(),
        status: None,
    };
    bd.spec.depends_on = bundle.spec.depends_on.clone();
    bd.spec.correct_drift = target.options.correct_drift.clone();
    bd.spec.paused = bundle.spec.paused || target.cluster.paused;
    bd.spec.helm_chart_options = bundle.spec.helm_app_options.clone();
    bd
}

/// The rollout decision: each target's deployment after this reconcile (`None`: none yet),
/// and the rollout status.
#[allow(clippy::type_complexity)]
fn rollout<'a>(
    bundle: &Bundle,
    targets: &'a [Target<'a>],
    facts: &[DeploymentFacts],
) -> Result<(Vec<Option<Planned<'a>>>, BundleStatus), RolloutError> {
    let default_rollout = RolloutStrategy::default();
    let rollout = bundle
        .spec
        .rollout_strategy
        .as_ref()
        .unwrap_or(&default_rollout);
    let mut parts = partitions(rollout, (targets, facts))?;
    // Automatic partitions are the targets cut in order: the bundle's summary and count are
    // theirs put together (a plan runs over 10,000 targets many times in a rollout).
    let (summary, unavailable) = if rollout.partitions.is_empty() {
        (
            concat_summaries(parts.iter().map(|p| &p.status.summary)),
            parts.iter().map(|p| p.status.unavailable).sum(),
        )
    } else {
        let all: Vec<usize> = (0..targets.len()).collect();
        (
            members_summary(&all, targets, facts),
            unavailable_count(&all, facts),
        )
    };
    let mut status = BundleStatus {
        max_new: MAX_NEW,
        summary,
        unavailable,
        max_unavailable: limit(
            targets.len(),
            "maxUnavailable",
            &[rollout.max_unavailable.as_ref()],
            &default_of(rollout_defaults::MAX_UNAVAILABLE),
        )?,
        ..Default::default()
    };
    status.max_unavailable_partitions = limit(
        parts.len(),
        "maxUnavailablePartitions",
        &[rollout.max_unavailable_partitions.as_ref()],
        &IntOrString::Int(rollout_defaults::MAX_UNAVAILABLE_PARTITIONS),
    )?;

    // The deployment each target will have after this reconcile.
    let mut desired: Vec<Option<Planned<'_>>> = targets
        .iter()
        .map(|t| {
            t.deployment.map(|bd| Planned {
                existing: Some(bd),
                spec: PlannedSpec::Existing(&bd.spec),
            })
        })
        .collect();
    for part in &mut parts {
        for &i in &part.members {
            let target = &targets[i];
            if desired[i].is_none() && status.newly_created < MAX_NEW {
                status.newly_created += 1;
                desired[i] = Some(Planned {
                    existing: None,
                    spec: PlannedSpec::Changed(Box::default()),
                });
            }
            let Some(bd) = desired[i].as_mut() else {
                continue;
            };
            let stale = match &bd.spec {
                // The existing deployment's spec, as its facts know it.
                PlannedSpec::Existing(_) => !facts[i].staged_current,
                PlannedSpec::Changed(spec) => {
                    spec.staged_deployment_id != target.deployment_id
                        || spec.staged_options != *target.options
                }
            };
            if stale {
                let spec = bd.spec.to_mut();
                spec.staged_options = target.options.clone();
                spec.staged_deployment_id = target.deployment_id.to_string();
            }
        }
        for &i in &part.members {
            let Some(bd) = desired[i].as_mut() else {
                continue;
            };
            let (unavailable, promotion_pending) = match &bd.spec {
                PlannedSpec::Existing(_) => (facts[i].unavailable, facts[i].promotion_pending),
                PlannedSpec::Changed(spec) => (bd.unavailable(), promotion_pending(spec)),
            };
            if promotion_pending
                && (status.unavailable < status.max_unavailable || unavailable)
                && (part.status.unavailable < part.status.max_unavailable || unavailable)
                && !(bundle.spec.paused || targets[i].cluster.paused)
            {
                if !unavailable {
                    // Upgrading counts as unavailable.
                    status.unavailable += 1;
                    part.status.unavailable += 1;
                }
                let spec = bd.spec.to_mut();
                spec.deployment_id = spec.staged_deployment_id.clone();
                spec.options = spec.staged_options.clone();
            }
        }
        // A partition is unavailable when more of its targets than allowed are not up to date
        // or unavailable.
        part.status.unavailable = part
            .members
            .iter()
            .filter(|&&i| match desired[i].as_ref() {
                Some(Planned {
                    spec: PlannedSpec::Existing(_),
                    ..
                }) => !facts[i].up_to_date || facts[i].unavailable,
                bd => {
                    !up_to_date(targets[i].deployment_id, bd)
                        || bd.is_some_and(Planned::unavailable)
                }
            })
            .count() as i64;
        if part.status.unavailable > part.status.max_unavailable {
            status.unavailable_partitions += 1;
        }
        if status.unavailable_partitions > status.max_unavailable_partitions {
            break;
        }
    }
    status.partition_status = parts.into_iter().map(|p| p.status).collect();
    Ok((desired, status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::TargetCluster;
    use fleet_api::{BundleDeploymentStatus, BundleSpec, Partition as PartitionDef};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use std::collections::BTreeMap;

    fn target(name: &str, id: &str, deployment: Option<BundleDeployment>) -> Target<'static> {
        // Targets borrow their deployment; a test's deployments live as long as the test.
        // Like their cluster, options and deployment ID (a plan's resolved targets).
        let deployment = deployment.map(|bd| &*Box::leak(Box::new(bd)));
        Target {
            cluster: Box::leak(Box::new(TargetCluster {
                namespace: "fleet-default".into(),
                name: name.into(),
                labels: BTreeMap::from([("name".to_string(), name.to_string())]),
                groups: BTreeMap::new(),
                deployment_namespace: format!("cluster-{name}"),
                paused: false,
                agent_checked_in: false,
            })),
            options: Box::leak(Box::default()),
            deployment_id: Box::leak(id.into()),
            deployment,
        }
    }

    /// A copy of the target's cluster, changed by `change`.
    fn changed_cluster(
        target: &Target<'static>,
        change: impl FnOnce(&mut TargetCluster),
    ) -> &'static TargetCluster {
        let mut cluster = target.cluster.clone();
        change(&mut cluster);
        Box::leak(Box::new(cluster))
    }

    /// A deployment that is at `id`, applied and ready (or not).
    fn deployed(id: &str, ready: bool) -> BundleDeployment {
        let mut bd = BundleDeployment::new(
            "app",
            BundleDeploymentSpec {
                deployment_id: id.into(),
                staged_deployment_id: id.into(),
                ..Default::default()
            },
        );
        bd.status = Some(BundleDeploymentStatus {
            applied_deployment_id: id.into(),
            ready,
            non_modified: true,
            ..Default::default()
        });
        bd
    }

    fn bundle(rollout: Option<RolloutStrategy>) -> Bundle {
        let mut b = Bundle::new(
            "app",
            BundleSpec {
                rollout_strategy: rollout,
                ..Default::default()
            },
        );
        b.metadata.namespace = Some("fleet-default".into());
        b
    }

    fn ids(plan: &RolloutPlan) -> Vec<&str> {
        plan.deployments
            .iter()
            .map(|bd| bd.spec.deployment_id.as_str())
            .collect()
    }

    #[test]
    fn limit_follows_fleet() {
        let s = |v: &str| IntOrString::String(v.into());
        let d = s("100%");
        assert_eq!(limit(0, "x", &[], &d).unwrap(), 1);
        assert_eq!(limit(10, "x", &[], &d).unwrap(), 10);
        assert_eq!(limit(10, "x", &[Some(&s("25%"))], &d).unwrap(), 2);
        assert_eq!(limit(3, "x", &[Some(&s("10%"))], &d).unwrap(), 1);
        assert_eq!(
            limit(10, "x", &[Some(&IntOrString::Int(0))], &d).unwrap(),
            0
        );
        assert_eq!(limit(10, "x", &[None, Some(&s("3"))], &d).unwrap(), 3);
        assert_eq!(limit(10, "x", &[Some(&s("0%"))], &d).unwrap(), 1);
        assert!(limit(10, "x", &[Some(&s("abc"))], &d).is_err());
    }

    #[test]
    fn new_targets_are_created_and_deployed_at_once() {
        let targets = vec![target("a", "m:1", None), target("b", "m:1", None)];
        let plan = plan_rollout(&bundle(None), &targets).unwrap();
        assert_eq!(ids(&plan), ["m:1", "m:1"]);
        assert_eq!(plan.status.newly_created, 2);
        assert_eq!(plan.status.summary.pending, 2);
        assert_eq!(plan.status.summary.desired_ready, 2);
        assert_eq!(plan.status.max_new, 50);
        let bd = &plan.deployments[0];
        assert_eq!(bd.metadata.namespace.as_deref(), Some("cluster-a"));
        assert_eq!(bd.spec.staged_deployment_id, "m:1");
        let labels = bd.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["fleet.cattle.io/cluster"], "a");
    }

    #[test]
    fn max_unavailable_holds_back_promotions() {
        let rollout = RolloutStrategy {
            max_unavailable: Some(IntOrString::Int(1)),
            ..Default::default()
        };
        // Three ready clusters at m:1, a new version m:2.
        let targets: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|n| target(n, "m:2", Some(deployed("m:1", true))))
            .collect();
        let plan = plan_rollout(&bundle(Some(rollout.clone())), &targets).unwrap();
        assert_eq!(ids(&plan), ["m:2", "m:1", "m:1"]);
        assert!(
            plan.deployments
                .iter()
                .all(|bd| bd.spec.staged_deployment_id == "m:2")
        );
        assert_eq!(plan.status.unavailable, 1);

        // What the next plan observes: the written spec, with the status the agent reported.
        let stored = |plan: &RolloutPlan, before: &[Target<'_>], i: usize| {
            let mut bd = plan.deployments[i].clone();
            bd.status = before[i].deployment.and_then(|d| d.status.clone());
            bd
        };
        // While "a" is not yet applied, nothing else moves.
        let before = targets;
        let targets = vec![
            target("a", "m:2", Some(stored(&plan, &before, 0))),
            target("b", "m:2", Some(stored(&plan, &before, 1))),
            target("c", "m:2", Some(stored(&plan, &before, 2))),
        ];
        let plan = plan_rollout(&bundle(Some(rollout.clone())), &targets).unwrap();
        assert_eq!(ids(&plan), ["m:2", "m:1", "m:1"]);

        // Once "a" is applied and ready, "b" follows.
        let targets = vec![
            target("a", "m:2", Some(deployed("m:2", true))),
            target("b", "m:2", Some(stored(&plan, &targets, 1))),
            target("c", "m:2", Some(stored(&plan, &targets, 2))),
        ];
        let plan = plan_rollout(&bundle(Some(rollout)), &targets).unwrap();
        assert_eq!(ids(&plan), ["m:2", "m:2", "m:1"]);
    }

    #[test]
    fn unavailable_partition_stops_later_partitions() {
        let sel = |n: &str| LabelSelector {
            match_labels: Some(BTreeMap::from([("name".to_string(), n.to_string())])),
            match_expressions: None,
        };
        let rollout = RolloutStrategy {
            partitions: vec![
                PartitionDef {
                    name: "first".into(),
                    max_unavailable: Some(IntOrString::Int(0)),
                    cluster_selector: Some(sel("a")),
                    ..Default::default()
                },
                PartitionDef {
                    name: "second".into(),
                    cluster_selector: Some(sel("b")),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let targets = vec![
            target("a", "m:2", Some(deployed("m:1", true))),
            target("b", "m:2", Some(deployed("m:1", true))),
        ];
        let plan = plan_rollout(&bundle(Some(rollout.clone())), &targets).unwrap();
        // Partition "first" allows 0 unavailable: no promotion, and it is unavailable
        // because its target is not up to date, so "second" is not even staged.
        assert_eq!(ids(&plan), ["m:1", "m:1"]);
        assert_eq!(plan.deployments[0].spec.staged_deployment_id, "m:2");
        assert_eq!(plan.deployments[1].spec.staged_deployment_id, "m:1");
        assert_eq!(plan.status.unavailable_partitions, 1);
        assert_eq!(plan.status.max_unavailable_partitions, 0);
        let names: Vec<_> = plan
            .status
            .partition_status
            .iter()
            .map(|p| (p.name.as_str(), p.count))
            .collect();
        assert_eq!(names, [("first", 1), ("second", 1)]);

        // Without a partition limit (Fleet defaults it to 100%) only the bundle's
        // maxUnavailable gates: "a" moves, "b" is staged and waits.
        let mut rollout = rollout;
        rollout.partitions[0].max_unavailable = None;
        rollout.max_unavailable = Some(IntOrString::Int(1));
        let plan = plan_rollout(&bundle(Some(rollout.clone())), &targets).unwrap();
        assert_eq!(ids(&plan), ["m:2", "m:1"]);
        assert_eq!(plan.deployments[1].spec.staged_deployment_id, "m:2");
        assert_eq!(plan.status.unavailable_partitions, 0);

        // When "a" is up to date, "b" is promoted.
        let targets = vec![
            target("a", "m:2", Some(deployed("m:2", true))),
            target("b", "m:2", Some(deployed("m:1", true))),
        ];
        let plan = plan_rollout(&bundle(Some(rollout)), &targets).unwrap();
        assert_eq!(ids(&plan), ["m:2", "m:2"]);
    }

    #[test]
    fn paused_bundles_stage_but_do_not_promote() {
        let mut b = bundle(None);
        b.spec.paused = true;
        let targets = vec![target("a", "m:2", Some(deployed("m:1", true)))];
        let plan = plan_rollout(&b, &targets).unwrap();
        assert_eq!(ids(&plan), ["m:1"]);
        assert_eq!(plan.deployments[0].spec.staged_deployment_id, "m:2");
        assert!(plan.deployments[0].spec.paused);
        // The summary describes the deployments as observed before this round; in the next
        // round the staged-but-not-deployed one is OutOfSync.
        assert_eq!(plan.status.summary.ready, 1);
        let mut staged = plan.deployments[0].clone();
        staged.status = deployed("m:1", true).status;
        let plan = plan_rollout(&b, &[target("a", "m:2", Some(staged))]).unwrap();
        assert_eq!(ids(&plan), ["m:1"]);
        assert_eq!(plan.status.summary.out_of_sync, 1);
    }

    #[test]
    fn auto_partitions_above_200_targets() {
        let targets: Vec<_> = (0..400)
            .map(|i| target(&format!("c{i:03}"), "m:1", Some(deployed("m:1", true))))
            .collect();
        let plan = plan_rollout(&bundle(None), &targets).unwrap();
        let names: Vec<_> = plan
            .status
            .partition_status
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "Partition 0 - 100",
                "Partition 100 - 200",
                "Partition 200 - 300",
                "Partition 300 - 400"
            ]
        );
        assert_eq!(plan.status.summary.ready, 400);
    }

    #[test]
    fn the_summary_over_automatic_partitions_is_the_summary_over_all_targets() {
        // Not ready, out of date and missing deployments spread over four partitions, more of
        // them than the summary names, some in the last partitions only.
        let targets: Vec<_> = (0..430)
            .map(|i| {
                let name = format!("c{i:03}");
                match i % 7 {
                    0 => target(&name, "m:2", Some(deployed("m:1", true))),
                    3 if i > 300 => target(&name, "m:2", None),
                    5 => target(&name, "m:2", Some(deployed("m:2", false))),
                    _ => target(&name, "m:2", Some(deployed("m:2", true))),
                }
            })
            .collect();
        let all: Vec<&Target<'_>> = targets.iter().collect();
        let expected = targets_summary(all.iter().copied());
        let plan = plan_rollout(&bundle(None), &targets).unwrap();
        assert_eq!(plan.status.partition_status.len(), 5);
        assert_eq!(plan.status.summary, expected);
        // Unavailable before the plan, plus the ready deployments it upgrades (every 7th).
        let upgraded = (0..430).filter(|i| i % 7 == 0).count() as i64;
        let unavailable = all
            .iter()
            .filter(|t| t.deployment.is_some_and(is_unavailable))
            .count() as i64;
        assert_eq!(plan.status.unavailable, unavailable + upgraded);
        assert_eq!(
            plan.status.summary.non_ready_resources.len(),
            fleet_api::consts::MAX_NON_READY_RESOURCES
        );
        // Below 200 targets: one partition, the same summary.
        let small: Vec<_> = targets[300..].to_vec();
        let small_refs: Vec<&Target<'_>> = small.iter().collect();
        let plan = plan_rollout(&bundle(None), &small).unwrap();
        assert_eq!(plan.status.partition_status.len(), 1);
        assert_eq!(
            plan.status.summary,
            targets_summary(small_refs.iter().copied())
        );
    }

    #[test]
    fn clusters_without_namespace_get_no_deployment_yet() {
        let mut t = target("a", "m:1", None);
        t.cluster = changed_cluster(&t, |c| c.deployment_namespace.clear());
        let plan = plan_rollout(&bundle(None), &[t]).unwrap();
        assert!(plan.deployments.is_empty());
        assert_eq!(plan.status.summary.desired_ready, 1);
    }

    #[test]
    fn deployments_carry_the_finalizer_only_where_an_agent_checked_in() {
        let mut with_agent = target("a", "m:1", None);
        with_agent.cluster = changed_cluster(&with_agent, |c| c.agent_checked_in = true);
        let without_agent = target("b", "m:1", None);
        let plan = plan_rollout_changes(&bundle(None), &[with_agent, without_agent]).unwrap();
        let finalizers: Vec<_> = plan
            .deployments
            .iter()
            .map(|bd| bd.metadata.finalizers.clone())
            .collect();
        assert_eq!(
            finalizers,
            [Some(vec![BUNDLE_DEPLOYMENT_FINALIZER.to_string()]), None]
        );
    }

    /// Each target with the deployment `plan_rollout` wants for it, as the agent would
    /// report it applied and ready at `applied`.
    fn deployed_as_planned(
        bundle: &Bundle,
        targets: &[Target<'static>],
        applied: &str,
    ) -> Vec<Target<'static>> {
        let plan = plan_rollout(bundle, targets).unwrap();
        targets
            .iter()
            .map(|t| {
                let mut bd = plan
                    .deployments
                    .iter()
                    .find(|bd| {
                        bd.metadata.namespace.as_deref() == Some(&t.cluster.deployment_namespace)
                    })
                    .cloned()
                    .unwrap();
                bd.status = Some(BundleDeploymentStatus {
                    applied_deployment_id: applied.into(),
                    ready: true,
                    non_modified: true,
                    ..Default::default()
                });
                Target {
                    deployment: Some(&*Box::leak(Box::new(bd))),
                    ..t.clone()
                }
            })
            .collect()
    }

    #[test]
    fn facts_carried_to_the_next_plan_decide_as_read_ones() {
        let rollout = RolloutStrategy {
            max_unavailable: Some(IntOrString::Int(3)),
            ..Default::default()
        };
        let b = bundle(Some(rollout));
        // 300 clusters (automatic partitions): ready at m:1, a few not ready, a few without
        // deployment; the bundle is at m:2.
        let targets: Vec<Target<'static>> = (0..300)
            .map(|i| {
                let deployment = match i % 50 {
                    0 => None,
                    7 => Some(deployed("m:1", false)),
                    _ => Some(deployed("m:1", true)),
                };
                target(&format!("c{i:03}"), "m:2", deployment)
            })
            .collect();
        let first = deployment_facts(&b, &targets, &[]);
        let planned = plan_rollout_changes_with(&b, &targets, &first).unwrap();
        assert_eq!(planned, plan_rollout_changes(&b, &targets).unwrap());
        assert!(!planned.deployments.is_empty());

        // Some deployments are other objects by the next plan: one became ready, one went
        // unready, one is the same but copied, one got the new deployment ID staged.
        let mut next = targets.clone();
        let replace = |t: &mut Target<'static>, bd: BundleDeployment| {
            t.deployment = Some(&*Box::leak(Box::new(bd)));
        };
        replace(&mut next[7], deployed("m:1", true));
        replace(&mut next[8], deployed("m:1", false));
        replace(&mut next[9], deployed("m:1", true));
        let mut staged = deployed("m:1", true);
        staged.spec.staged_deployment_id = "m:2".into();
        replace(&mut next[10], staged);
        let carried = deployment_facts(&b, &next, &first);
        let read = deployment_facts(&b, &next, &[]);
        assert_eq!(carried, read);
        assert_eq!(
            plan_rollout_changes_with(&b, &next, &carried).unwrap(),
            plan_rollout_changes(&b, &next).unwrap()
        );
        // Facts are only taken over for the very same object.
        assert_ne!(carried[8], first[8]);
        assert_eq!(carried[11], first[11]);
        // Facts that are not one per target are read again.
        assert_eq!(
            plan_rollout_changes_with(&b, &next, &carried[..10]).unwrap(),
            plan_rollout_changes(&b, &next).unwrap()
        );
    }

    #[test]
    fn only_deployments_that_change_are_returned() {
        let b = bundle(None);
        let fresh = vec![target("a", "m:1", None), target("b", "m:1", None)];
        let changes = plan_rollout_changes(&b, &fresh).unwrap();
        assert_eq!(
            changes.deployments,
            plan_rollout(&b, &fresh).unwrap().deployments
        );

        // Deployed as planned: nothing to write, same status as the full plan.
        let deployed = deployed_as_planned(&b, &fresh, "m:1");
        let changes = plan_rollout_changes(&b, &deployed).unwrap();
        assert!(changes.deployments.is_empty());
        assert_eq!(changes.status, plan_rollout(&b, &deployed).unwrap().status);

        // A new deployment ID for one cluster: only that one is written.
        let mut moved = deployed.clone();
        moved[1].deployment_id = "m:2";
        let changes = plan_rollout_changes(&b, &moved).unwrap();
        assert_eq!(changes.deployments.len(), 1);
        assert_eq!(changes.deployments[0].spec.staged_deployment_id, "m:2");
        assert_eq!(changes.deployments[0].spec.deployment_id, "m:2");
        let full = plan_rollout(&b, &moved).unwrap();
        assert_eq!(full.deployments[1], changes.deployments[0]);

        // A relabelled bundle relabels every deployment.
        let mut relabelled = b.clone();
        relabelled.metadata.labels = Some(BTreeMap::from([("team".to_string(), "x".to_string())]));
        let changes = plan_rollout_changes(&relabelled, &deployed).unwrap();
        assert_eq!(changes.deployments.len(), 2);
        assert_eq!(
            changes.deployments[0].metadata.labels.as_ref().unwrap()["team"],
            "x"
        );
        // So does a paused bundle (spec.paused of each deployment).
        let mut paused = b.clone();
        paused.spec.paused = true;
        let changes = plan_rollout_changes(&paused, &deployed).unwrap();
        assert_eq!(changes.deployments.len(), 2);
        assert!(changes.deployments.iter().all(|bd| bd.spec.paused));
    }

    #[test]
    fn labels_match_only_the_labels_of_that_cluster() {
        let b = bundle(None);
        let common = bundle_deployment_labels(&b, "", "");
        let labels = bundle_deployment_labels(&b, "fleet-default", "a");
        assert!(labels_match(&labels, &common, "fleet-default", "a"));
        assert!(!labels_match(&labels, &common, "fleet-default", "b"));
        assert!(!labels_match(&labels, &common, "other", "a"));
        let mut extra = labels.clone();
        extra.insert("x".into(), "y".into());
        assert!(!labels_match(&extra, &common, "fleet-default", "a"));
        let mut missing = labels.clone();
        missing.remove(fleet_api::consts::MANAGED_LABEL);
        assert!(!labels_match(&missing, &common, "fleet-default", "a"));
        let mut renamed = missing.clone();
        renamed.insert("x".into(), "true".into());
        assert!(!labels_match(&renamed, &common, "fleet-default", "a"));
        let mut changed = labels.clone();
        changed.insert(fleet_api::consts::MANAGED_LABEL.into(), "false".into());
        assert!(!labels_match(&changed, &common, "fleet-default", "a"));
    }
}

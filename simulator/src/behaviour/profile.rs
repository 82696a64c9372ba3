//! Behaviour profiles: the data that says how a simulated cluster behaves.
//!
//! A profile is written in YAML (camelCase, like Kubernetes objects); [`EXAMPLE_PROFILE`] shows
//! every field. Built-in profiles: [`Profile::fast`] (the default), [`Profile::realistic`],
//! [`Profile::chaos`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::duration::Delay;
pub use super::selector::{Pattern, PodSelector};
use crate::faults::{FaultPlan, FaultPlanError};

/// A commented profile showing every field (it is parsed by a test, so it stays valid).
pub const EXAMPLE_PROFILE: &str = r#"
name: my-cluster
description: two zones, one flaky payments service
nodes:
  - name: control-plane
    labels: {node-role.kubernetes.io/control-plane: "true"}
    taints: [{key: node-role.kubernetes.io/control-plane, effect: NoSchedule}]
  - name: worker                     # worker-1, worker-2
    count: 2
    labels: {topology.kubernetes.io/zone: zone-a}
    allocatable: {cpu: "8", memory: 32Gi, pods: "110"}
  - name: cordoned
    unschedulable: true
  - name: broken
    notReady: true                   # Ready=False, tainted not-ready
nodeReadyAfter: {after: 5s, jitter: 5s}  # nodes created later take this long to turn Ready
scheduler:
  enabled: true                      # taints/tolerations, nodeSelector, node affinity
  checkResources: true               # requests must fit allocatable cpu/memory/pods
  bindAfter: 50ms
controllerDelay: {after: 10ms, jitter: 40ms}
pods:                                # first matching rule wins, per container
  - match: {image: ".*:broken"}
    outcome: ImagePullBackOff
  - match: {kind: Deployment, name: payments, namespace: shop}
    outcome: CrashLoopBackOff
  - match: {labels: {tier: cache}}
    probability: 0.1                 # 10% of cache pods never pass their readiness probe
    outcome: NeverReady
  - match: {kind: Job}
    readyAfter: 1s
    completeAfter: {after: 5s, jitter: 10s}
  - match: {}
    readyAfter: {after: 2s, jitter: 3s}
jobs: {completeAfter: 5s}            # Job containers without their own completeAfter
termination: {deleteAfter: 1s}       # terminating pods linger this long
events: true                         # record Events (Scheduled, Pulled, Started, BackOff, ...)
faults:
  latency: {min: 5ms, max: 50ms}
  errorRate: 0.01
  errorCodes: [500, 503, 429]
  dropWatchAfter: 5m
"#;

/// A profile that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("behaviour profile {source_name}: {error}")]
    Yaml {
        source_name: String,
        error: serde_norway::Error,
    },
    #[error("behaviour profile {profile:?}: {problem}")]
    Invalid { profile: String, problem: String },
    #[error("behaviour profile {profile:?}: {error}")]
    Faults {
        profile: String,
        error: FaultPlanError,
    },
    #[error(
        "unknown behaviour profile {name:?} (built-in profiles: fast, realistic, chaos; or give a YAML file)"
    )]
    Unknown { name: String },
}

/// How one simulated cluster behaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The cluster's nodes; a profile without nodes gets one untainted node.
    #[serde(default = "default_nodes")]
    pub nodes: Vec<NodeTemplate>,
    /// How long a node added later (not from this list) takes to report Ready.
    #[serde(default, skip_serializing_if = "is_zero_delay")]
    pub node_ready_after: Delay,
    #[serde(default)]
    pub scheduler: SchedulerRules,
    /// How long workload controllers take to react (create or delete pods).
    #[serde(default, skip_serializing_if = "is_zero_delay")]
    pub controller_delay: Delay,
    /// Pod stages: how long containers take to start and how they end up. First match wins.
    #[serde(default)]
    pub pods: Vec<PodRule>,
    #[serde(default)]
    pub jobs: JobRules,
    #[serde(default)]
    pub termination: TerminationRules,
    /// Whether the scheduler and kubelet record Events (`kubectl describe` shows them); off by
    /// default because every event is one more write.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub events: bool,
    /// Faults the API server of a cluster with this profile suffers (see [`FaultPlan`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<FaultPlan>,
}

fn is_zero_delay(delay: &Delay) -> bool {
    *delay == Delay::ZERO
}

/// One or more nodes of the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeTemplate {
    /// The node's name; with `count`, names are `<name>-1` … `<name>-<count>`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Extra labels (`kubernetes.io/hostname`, `kubernetes.io/os` and `kubernetes.io/arch` are
    /// always set).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    /// Allocatable resources; unset ones default to cpu 4, memory 16Gi, pods 110.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allocatable: BTreeMap<String, String>,
    /// `spec.unschedulable` (a cordoned node).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unschedulable: bool,
    /// The node never turns Ready (its kubelet reports the network plugin not ready) and carries
    /// the `node.kubernetes.io/not-ready` taints the node lifecycle controller adds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_ready: bool,
}

impl NodeTemplate {
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            count: None,
            labels: BTreeMap::new(),
            taints: Vec::new(),
            allocatable: BTreeMap::new(),
            unschedulable: false,
            not_ready: false,
        }
    }

    pub fn names(&self) -> Vec<String> {
        match self.count {
            None => vec![self.name.clone()],
            Some(count) => (1..=count)
                .map(|index| format!("{}-{index}", self.name))
                .collect(),
        }
    }
}

/// A node taint, as in `Node.spec.taints`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Taint {
    pub key: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    pub effect: TaintEffect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

/// The scheduler check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SchedulerRules {
    /// With the check off, every pod goes to the least-loaded node regardless of taints,
    /// selectors, affinity and resources.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Whether resource requests must fit the node's allocatable cpu, memory and pod count.
    #[serde(default = "yes")]
    pub check_resources: bool,
    /// How long binding a pod takes.
    #[serde(default, skip_serializing_if = "is_zero_delay")]
    pub bind_after: Delay,
}

fn yes() -> bool {
    true
}

impl Default for SchedulerRules {
    fn default() -> Self {
        Self {
            enabled: true,
            check_resources: true,
            bind_after: Delay::ZERO,
        }
    }
}

/// A pod stage rule (kwok's `Stage` for pods): which containers, how long, and how it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodRule {
    #[serde(rename = "match", default)]
    pub selector: PodSelector,
    /// Chance (0–1) that the rule applies to a matching container, drawn per container from the
    /// seed; when it does not, later rules are tried.
    #[serde(default = "certain", skip_serializing_if = "is_certain")]
    pub probability: f64,
    /// Time from the pod landing on a node to the container reaching its outcome.
    #[serde(default, skip_serializing_if = "is_zero_delay")]
    pub ready_after: Delay,
    #[serde(default, skip_serializing_if = "PodOutcome::is_ready")]
    pub outcome: PodOutcome,
    /// For pods of Jobs (and pods that end): how long a ready container runs before it exits 0.
    /// Unset: `jobs.completeAfter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_after: Option<Delay>,
}

fn certain() -> f64 {
    1.0
}

fn is_certain(probability: &f64) -> bool {
    *probability >= 1.0
}

impl PodRule {
    pub fn matching(selector: PodSelector) -> Self {
        Self {
            selector,
            probability: 1.0,
            ready_after: Delay::ZERO,
            outcome: PodOutcome::Ready,
            complete_after: None,
        }
    }

    pub fn ready_after(mut self, delay: Delay) -> Self {
        self.ready_after = delay;
        self
    }

    pub fn outcome(mut self, outcome: PodOutcome) -> Self {
        self.outcome = outcome;
        self
    }

    pub fn probability(mut self, probability: f64) -> Self {
        self.probability = probability;
        self
    }

    pub fn complete_after(mut self, delay: Delay) -> Self {
        self.complete_after = Some(delay);
        self
    }
}

/// How a container ends up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PodOutcome {
    /// Running and ready (Job containers then exit 0 after `completeAfter`).
    #[default]
    Ready,
    /// Running, but the readiness probe never passes.
    NeverReady,
    /// Exits 1 right after starting; the kubelet restarts it with back-off (10s, 20s, … 5m), or
    /// the pod fails if its `restartPolicy` is `Never`.
    #[serde(alias = "Failed", alias = "CrashLoop")]
    CrashLoopBackOff,
    /// The image cannot be pulled: the pod stays Pending.
    #[serde(alias = "ErrImagePull")]
    ImagePullBackOff,
}

impl PodOutcome {
    pub fn is_ready(&self) -> bool {
        *self == PodOutcome::Ready
    }
}

/// Job defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobRules {
    /// How long a Job's container runs before exiting 0, unless its pod rule says otherwise.
    #[serde(default)]
    pub complete_after: Delay,
}

impl Default for JobRules {
    fn default() -> Self {
        Self {
            complete_after: Delay::ZERO,
        }
    }
}

/// How terminating pods go away.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TerminationRules {
    /// Time from `deletionTimestamp` to the kubelet's final delete (containers stopping).
    #[serde(default)]
    pub delete_after: Delay,
}

impl Default for TerminationRules {
    fn default() -> Self {
        Self {
            delete_after: Delay::ZERO,
        }
    }
}

fn default_nodes() -> Vec<NodeTemplate> {
    vec![NodeTemplate::named("sim-node")]
}

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

fn millis(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn image_rule(pattern: &str, outcome: PodOutcome) -> PodRule {
    let selector = PodSelector {
        image: Pattern::new(pattern).ok(),
        ..Default::default()
    };
    PodRule::matching(selector).outcome(outcome)
}

/// Failure patterns every built-in profile shares, so scenarios can ask for a failing workload by
/// image tag alone: `…:never-ready`, `…:crashloop`, `…:pull-error`.
fn conventional_failures() -> Vec<PodRule> {
    vec![
        image_rule(".*:never-ready", PodOutcome::NeverReady),
        image_rule(".*:crashloop", PodOutcome::CrashLoopBackOff),
        image_rule(".*:pull-error", PodOutcome::ImagePullBackOff),
    ]
}

impl Default for Profile {
    fn default() -> Self {
        Self::fast()
    }
}

impl Profile {
    /// The default: one node, no delays, no randomness. Pods are ready the moment they exist.
    pub fn fast() -> Self {
        Self {
            name: "fast".into(),
            description: "one node; every workload ready at once; deterministic".into(),
            nodes: default_nodes(),
            node_ready_after: Delay::ZERO,
            scheduler: SchedulerRules::default(),
            controller_delay: Delay::ZERO,
            pods: conventional_failures(),
            jobs: JobRules::default(),
            termination: TerminationRules::default(),
            events: false,
            faults: None,
        }
    }

    /// A small production-like cluster: a tainted control-plane node and two workers in two
    /// zones; containers take seconds to start, with jitter.
    pub fn realistic() -> Self {
        let mut control_plane = NodeTemplate::named("control-plane");
        control_plane.labels.insert(
            "node-role.kubernetes.io/control-plane".into(),
            "true".into(),
        );
        control_plane
            .labels
            .insert("topology.kubernetes.io/zone".into(), "zone-a".into());
        control_plane.taints.push(Taint {
            key: "node-role.kubernetes.io/control-plane".into(),
            value: String::new(),
            effect: TaintEffect::NoSchedule,
        });
        let worker = |name: &str, zone: &str| {
            let mut node = NodeTemplate::named(name);
            node.labels
                .insert("topology.kubernetes.io/zone".into(), zone.into());
            node.allocatable.insert("cpu".into(), "8".into());
            node.allocatable.insert("memory".into(), "32Gi".into());
            node
        };
        let mut pods = conventional_failures();
        pods.push(
            PodRule::matching(PodSelector {
                kind: Some("Job".into()),
                ..Default::default()
            })
            .ready_after(Delay::with_jitter(secs(1), secs(2)))
            .complete_after(Delay::with_jitter(secs(3), secs(5))),
        );
        pods.push(
            PodRule::matching(PodSelector::default())
                .ready_after(Delay::with_jitter(secs(2), secs(4))),
        );
        Self {
            name: "realistic".into(),
            description: "control plane + 2 workers; containers start in 2-6s".into(),
            nodes: vec![
                control_plane,
                worker("worker-a", "zone-a"),
                worker("worker-b", "zone-b"),
            ],
            node_ready_after: Delay::with_jitter(secs(5), secs(5)),
            scheduler: SchedulerRules {
                bind_after: Delay::with_jitter(millis(20), millis(80)),
                ..Default::default()
            },
            controller_delay: Delay::with_jitter(millis(10), millis(40)),
            pods,
            jobs: JobRules {
                complete_after: Delay::with_jitter(secs(3), secs(5)),
            },
            termination: TerminationRules {
                delete_after: Delay::with_jitter(millis(500), secs(2)),
            },
            events: true,
            faults: None,
        }
    }

    /// Like `realistic`, but a share of containers fail and the API server misbehaves.
    pub fn chaos() -> Self {
        let mut profile = Self::realistic();
        profile.name = "chaos".into();
        profile.description =
            "realistic, plus 10% of containers failing and a flaky API server".into();
        let catch_all = profile.pods.pop();
        let any = PodSelector::default();
        profile.pods.extend([
            PodRule::matching(any.clone())
                .probability(0.04)
                .outcome(PodOutcome::CrashLoopBackOff),
            PodRule::matching(any.clone())
                .probability(0.03)
                .outcome(PodOutcome::NeverReady),
            PodRule::matching(any.clone())
                .probability(0.03)
                .outcome(PodOutcome::ImagePullBackOff),
        ]);
        profile.pods.extend(catch_all);
        for pod in &mut profile.pods {
            pod.ready_after.jitter = pod.ready_after.jitter.max(secs(10));
        }
        profile.faults = Some(FaultPlan {
            latency: Some((millis(5), millis(150))),
            error_rate: 0.02,
            error_codes: vec![500, 503, 429],
            drop_watch_after: Some(secs(60)),
            drop_watch_jitter: Some(secs(30)),
            ..FaultPlan::default()
        });
        profile
    }

    /// A built-in profile by name.
    pub fn builtin(name: &str) -> Result<Self, ProfileError> {
        match name {
            "fast" => Ok(Self::fast()),
            "realistic" => Ok(Self::realistic()),
            "chaos" => Ok(Self::chaos()),
            _ => Err(ProfileError::Unknown {
                name: name.to_owned(),
            }),
        }
    }

    pub fn builtin_names() -> &'static [&'static str] {
        &["fast", "realistic", "chaos"]
    }

    /// Reads a profile from YAML; `source_name` (usually the file path) is used in errors.
    pub fn from_yaml(text: &str, source_name: &str) -> Result<Self, ProfileError> {
        let profile: Profile =
            serde_norway::from_str(text).map_err(|error| ProfileError::Yaml {
                source_name: source_name.to_owned(),
                error,
            })?;
        profile.validate()?;
        Ok(profile)
    }

    pub fn to_yaml(&self) -> Result<String, serde_norway::Error> {
        serde_norway::to_string(self)
    }

    /// Checks what the types cannot: unique, valid node names, probabilities, faults.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let invalid = |problem: String| ProfileError::Invalid {
            profile: self.name.clone(),
            problem,
        };
        if self.nodes.is_empty() {
            return Err(invalid("a cluster needs at least one node".into()));
        }
        let mut seen = BTreeSet::new();
        for template in &self.nodes {
            if template.count == Some(0) {
                return Err(invalid(format!(
                    "node {:?}: count must be at least 1",
                    template.name
                )));
            }
            for name in template.names() {
                if !is_dns_subdomain(&name) {
                    return Err(invalid(format!(
                        "node name {name:?} is not a valid DNS subdomain"
                    )));
                }
                if !seen.insert(name.clone()) {
                    return Err(invalid(format!("node {name:?} is defined twice")));
                }
            }
            for (resource, quantity) in &template.allocatable {
                if super::quantity::parse(quantity).is_none() {
                    return Err(invalid(format!(
                        "node {:?}: allocatable {resource} {quantity:?} is not a Kubernetes quantity",
                        template.name
                    )));
                }
            }
        }
        for (index, rule) in self.pods.iter().enumerate() {
            if !(0.0..=1.0).contains(&rule.probability) {
                return Err(invalid(format!(
                    "pods[{index}]: probability {} is not between 0 and 1",
                    rule.probability
                )));
            }
        }
        if let Some(faults) = &self.faults {
            faults.validate().map_err(|error| ProfileError::Faults {
                profile: self.name.clone(),
                error,
            })?;
        }
        Ok(())
    }

    /// Every node name, in profile order.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().flat_map(NodeTemplate::names).collect()
    }

    /// Node objects to create when a cluster starts (Ready, created now).
    pub fn nodes(&self) -> Vec<Value> {
        self.nodes_at(Utc::now())
    }

    /// Node objects to create when a cluster starts, Ready as of `start`.
    pub fn nodes_at(&self, start: DateTime<Utc>) -> Vec<Value> {
        let timestamp = start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut index = 0;
        let mut nodes = Vec::new();
        for template in &self.nodes {
            for name in template.names() {
                nodes.push(super::nodes::node_object(
                    template, &name, index, &timestamp,
                ));
                index += 1;
            }
        }
        nodes
    }
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_profile_parses_with_every_field_set() {
        let profile = Profile::from_yaml(EXAMPLE_PROFILE, "EXAMPLE_PROFILE").unwrap();
        assert_eq!(
            profile.node_names(),
            vec![
                "control-plane",
                "worker-1",
                "worker-2",
                "cordoned",
                "broken"
            ]
        );
        assert!(profile.nodes[3].not_ready);
        assert_eq!(profile.pods.len(), 5);
        assert_eq!(profile.pods[2].probability, 0.1);
        assert_eq!(profile.termination.delete_after, Delay::fixed(secs(1)));
        assert_eq!(profile.faults.as_ref().unwrap().error_rate, 0.01);
        assert!(profile.nodes[2].unschedulable);
    }

    #[test]
    fn the_built_in_profiles_are_valid_and_survive_a_yaml_round_trip() {
        for name in Profile::builtin_names() {
            let profile = Profile::builtin(name).unwrap();
            profile.validate().unwrap();
            let yaml = profile.to_yaml().unwrap();
            let again = Profile::from_yaml(&yaml, name).unwrap();
            assert_eq!(again, profile, "{yaml}");
        }
    }

    #[test]
    fn the_default_profile_is_fast_with_one_untainted_node_and_no_delays() {
        let profile = Profile::default();
        assert_eq!(profile.name, "fast");
        assert_eq!(profile.node_names(), vec!["sim-node"]);
        assert!(profile.nodes[0].taints.is_empty());
        assert!(
            profile
                .pods
                .iter()
                .all(|rule| rule.ready_after == Delay::ZERO)
        );
        assert!(profile.faults.is_none());
    }

    #[test]
    fn a_user_profile_reads_from_yaml_with_defaults_filled_in() {
        let yaml = r#"
name: gpu-cluster
nodes:
  - name: gpu
    count: 2
    labels: {accelerator: nvidia}
    taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]
pods:
  - match: {kind: Deployment, name: "pay.*"}
    outcome: Failed
  - match: {}
    readyAfter: {after: 1s, jitter: 500ms}
"#;
        let profile = Profile::from_yaml(yaml, "gpu.yaml").unwrap();
        assert_eq!(profile.node_names(), vec!["gpu-1", "gpu-2"]);
        assert_eq!(profile.pods[0].outcome, PodOutcome::CrashLoopBackOff);
        assert_eq!(
            profile.pods[1].ready_after,
            Delay::with_jitter(secs(1), millis(500))
        );
        assert!(profile.scheduler.enabled);
        assert_eq!(profile.termination.delete_after, Delay::ZERO);
    }

    #[test]
    fn yaml_errors_name_the_file_and_the_problem() {
        let error = Profile::from_yaml("name: x\npods:\n  - match: {colour: red}\n", "bad.yaml")
            .unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("bad.yaml") && text.contains("colour"),
            "{text}"
        );
        let error =
            Profile::from_yaml("name: x\npods: [{readyAfter: 3 days}]\n", "bad.yaml").unwrap_err();
        assert!(error.to_string().contains("3 days"), "{error}");
    }

    #[test]
    fn invalid_profiles_say_what_is_wrong() {
        let duplicate = "name: dup\nnodes: [{name: a}, {name: a}]\n";
        assert!(
            Profile::from_yaml(duplicate, "dup.yaml")
                .unwrap_err()
                .to_string()
                .contains("defined twice")
        );
        let bad_name = "name: n\nnodes: [{name: Node_1}]\n";
        assert!(
            Profile::from_yaml(bad_name, "n.yaml")
                .unwrap_err()
                .to_string()
                .contains("DNS")
        );
        let probability = "name: p\npods: [{probability: 2}]\n";
        assert!(
            Profile::from_yaml(probability, "p.yaml")
                .unwrap_err()
                .to_string()
                .contains("probability")
        );
        let quantity = "name: q\nnodes: [{name: a, allocatable: {cpu: lots}}]\n";
        assert!(
            Profile::from_yaml(quantity, "q.yaml")
                .unwrap_err()
                .to_string()
                .contains("quantity")
        );
        let faults = "name: f\nfaults: {errorRate: 7}\n";
        assert!(
            Profile::from_yaml(faults, "f.yaml")
                .unwrap_err()
                .to_string()
                .contains("error rate")
        );
        assert!(matches!(
            Profile::builtin("slow"),
            Err(ProfileError::Unknown { .. })
        ));
    }
}

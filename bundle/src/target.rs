//! Matching bundles to clusters (Fleet's `internal/cmd/controller/target/matcher`).
//!
//! A target matches a cluster when every criterion it sets matches: `clusterName`,
//! `clusterGroup`, `clusterGroupSelector` (against the group's labels) and `clusterSelector`
//! (against the cluster's labels). A target with no criterion matches nothing. Targets are
//! evaluated in order and the first match wins. When a bundle has `targetRestrictions` (written
//! by `fleet apply` from the GitRepo's targets), a cluster must also match one restriction:
//! customizations from fleet.yaml cannot widen where a GitRepo deploys.

use std::collections::BTreeMap;

use fleet_api::{Bundle, BundleDeploymentOptions, BundleSpec, BundleTarget};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::options;

/// Errors of target matching.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// A label selector that cannot be evaluated.
    #[error("target {target:?}: invalid label selector: {message}")]
    InvalidSelector {
        /// Name of the target or restriction.
        target: String,
        /// What is wrong.
        message: String,
    },
}

/// The facts about a cluster that targeting looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterFacts {
    /// Name of the Cluster object.
    pub name: String,
    /// Labels of the Cluster.
    pub labels: BTreeMap<String, String>,
    /// The cluster groups containing the cluster, with their labels. Empty when the cluster is
    /// in no group.
    pub groups: BTreeMap<String, BTreeMap<String, String>>,
}

/// A compiled label selector (`matchLabels` + `matchExpressions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Selector {
    /// Compiles a Kubernetes label selector. An empty selector matches everything.
    pub fn new(selector: &LabelSelector) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for (k, v) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement::In(k.clone(), vec![v.clone()]));
        }
        for expr in selector.match_expressions.iter().flatten() {
            let values = expr.values.clone().unwrap_or_default();
            let req = match expr.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(format!(
                        "operator {} on key {:?} needs at least one value",
                        expr.operator, expr.key
                    ));
                }
                "In" => Requirement::In(expr.key.clone(), values),
                "NotIn" => Requirement::NotIn(expr.key.clone(), values),
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(format!(
                        "operator {} on key {:?} takes no values",
                        expr.operator, expr.key
                    ));
                }
                "Exists" => Requirement::Exists(expr.key.clone()),
                "DoesNotExist" => Requirement::DoesNotExist(expr.key.clone()),
                other => return Err(format!("unknown operator {other:?} on key {:?}", expr.key)),
            };
            requirements.push(req);
        }
        Ok(Selector { requirements })
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

/// The criteria of one target or restriction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMatcher {
    cluster_name: Option<String>,
    cluster_group: Option<String>,
    cluster_group_selector: Option<Selector>,
    cluster_selector: Option<Selector>,
}

impl ClusterMatcher {
    /// Compiles the criteria; `name` is used in errors.
    pub fn new(
        name: &str,
        cluster_name: &str,
        cluster_group: &str,
        cluster_group_selector: Option<&LabelSelector>,
        cluster_selector: Option<&LabelSelector>,
    ) -> Result<Self, TargetError> {
        let compile = |s: Option<&LabelSelector>| {
            s.map(Selector::new)
                .transpose()
                .map_err(|message| TargetError::InvalidSelector {
                    target: name.to_string(),
                    message,
                })
        };
        Ok(ClusterMatcher {
            cluster_name: (!cluster_name.is_empty()).then(|| cluster_name.to_string()),
            cluster_group: (!cluster_group.is_empty()).then(|| cluster_group.to_string()),
            cluster_group_selector: compile(cluster_group_selector)?,
            cluster_selector: compile(cluster_selector)?,
        })
    }

    /// Whether a cluster, seen as a member of `group` (with `group_labels`), matches.
    pub fn matches(
        &self,
        cluster_name: &str,
        group: &str,
        group_labels: &BTreeMap<String, String>,
        cluster_labels: &BTreeMap<String, String>,
    ) -> bool {
        if self.cluster_name.is_none()
            && self.cluster_group.is_none()
            && self.cluster_group_selector.is_none()
            && self.cluster_selector.is_none()
        {
            return false;
        }
        self.cluster_name
            .as_deref()
            .is_none_or(|n| n == cluster_name)
            && self.cluster_group.as_deref().is_none_or(|g| g == group)
            && self
                .cluster_group_selector
                .as_ref()
                .is_none_or(|s| s.matches(group_labels))
            && self
                .cluster_selector
                .as_ref()
                .is_none_or(|s| s.matches(cluster_labels))
    }
}

/// Matches one bundle's targets against clusters (Fleet's `BundleMatch`).
#[derive(Debug, Clone)]
pub struct TargetMatcher {
    targets: Vec<(BundleTarget, ClusterMatcher)>,
    restrictions: Vec<ClusterMatcher>,
}

/// The result of targeting a bundle at one cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetDecision {
    /// No target matches: the bundle is not deployed there.
    NoMatch,
    /// The matching customization says `doNotDeploy`.
    DoNotDeploy {
        /// Name of that customization.
        target: String,
    },
    /// Deploy with these merged options.
    Deploy {
        /// Name of the target that selected the cluster.
        target: String,
        /// Name of the customization applied (the first target matching without restrictions).
        customization: String,
        /// Bundle options merged with the customization's.
        options: Box<BundleDeploymentOptions>,
    },
}

impl TargetMatcher {
    /// Compiles the targets and target restrictions of a bundle spec.
    pub fn new(spec: &BundleSpec) -> Result<Self, TargetError> {
        let mut targets = Vec::new();
        for t in &spec.targets {
            let m = ClusterMatcher::new(
                &t.name,
                &t.cluster_name,
                &t.cluster_group,
                t.cluster_group_selector.as_ref(),
                t.cluster_selector.as_ref(),
            )?;
            targets.push((t.clone(), m));
        }
        let mut restrictions = Vec::new();
        for r in &spec.target_restrictions {
            restrictions.push(ClusterMatcher::new(
                &r.name,
                &r.cluster_name,
                &r.cluster_group,
                r.cluster_group_selector.as_ref(),
                r.cluster_selector.as_ref(),
            )?);
        }
        Ok(TargetMatcher {
            targets,
            restrictions,
        })
    }

    /// Compiles the targets of a bundle.
    pub fn for_bundle(bundle: &Bundle) -> Result<Self, TargetError> {
        Self::new(&bundle.spec)
    }

    fn restricted(
        &self,
        name: &str,
        group: &str,
        gl: &BTreeMap<String, String>,
        cl: &BTreeMap<String, String>,
    ) -> bool {
        !self.restrictions.is_empty()
            && !self
                .restrictions
                .iter()
                .any(|r| r.matches(name, group, gl, cl))
    }

    fn first_match(
        &self,
        cluster: &ClusterFacts,
        with_restrictions: bool,
    ) -> Option<&BundleTarget> {
        let empty = BTreeMap::new();
        for (target, matcher) in &self.targets {
            let check = |group: &str, gl: &BTreeMap<String, String>| {
                (!with_restrictions || !self.restricted(&cluster.name, group, gl, &cluster.labels))
                    && matcher.matches(&cluster.name, group, gl, &cluster.labels)
            };
            let hit = if cluster.groups.is_empty() {
                check("", &empty)
            } else {
                cluster.groups.iter().any(|(g, gl)| check(g, gl))
            };
            if hit {
                return Some(target);
            }
        }
        None
    }

    /// The first target that matches the cluster and is allowed by the restrictions.
    pub fn match_target(&self, cluster: &ClusterFacts) -> Option<&BundleTarget> {
        self.first_match(cluster, true)
    }

    /// The first target that matches the cluster, ignoring restrictions: the customization
    /// whose options apply.
    pub fn match_customization(&self, cluster: &ClusterFacts) -> Option<&BundleTarget> {
        self.first_match(cluster, false)
    }

    /// The target with this name.
    pub fn target_named(&self, name: &str) -> Option<&BundleTarget> {
        self.targets.iter().map(|(t, _)| t).find(|t| t.name == name)
    }

    /// What the controller does for this bundle on this cluster: no match, `doNotDeploy`, or
    /// deploy with the bundle options merged with the matching customization's.
    pub fn decide(
        &self,
        bundle_options: &BundleDeploymentOptions,
        cluster: &ClusterFacts,
    ) -> TargetDecision {
        let Some(target) = self.match_target(cluster) else {
            return TargetDecision::NoMatch;
        };
        let customization = self.match_customization(cluster).unwrap_or(target);
        if customization.do_not_deploy {
            return TargetDecision::DoNotDeploy {
                target: customization.name.clone(),
            };
        }
        TargetDecision::Deploy {
            target: target.name.clone(),
            customization: customization.name.clone(),
            options: Box::new(options::merge(
                bundle_options,
                &customization.deployment_options(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::{BundleTargetRestriction, HelmOptions};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn selector(pairs: &[(&str, &str)]) -> Option<LabelSelector> {
        Some(LabelSelector {
            match_labels: Some(labels(pairs)),
            match_expressions: None,
        })
    }

    fn target(name: &str) -> BundleTarget {
        BundleTarget {
            name: name.into(),
            ..Default::default()
        }
    }

    fn cluster(name: &str, l: &[(&str, &str)]) -> ClusterFacts {
        ClusterFacts {
            name: name.into(),
            labels: labels(l),
            groups: BTreeMap::new(),
        }
    }

    #[test]
    fn first_matching_target_wins() {
        let mut a = target("a");
        a.cluster_selector = selector(&[("env", "prod")]);
        let mut b = target("b");
        b.cluster_selector = selector(&[]);
        let spec = BundleSpec {
            targets: vec![a, b],
            ..Default::default()
        };
        let m = TargetMatcher::new(&spec).unwrap();
        assert_eq!(
            m.match_target(&cluster("c", &[("env", "prod")]))
                .unwrap()
                .name,
            "a"
        );
        assert_eq!(
            m.match_target(&cluster("c", &[("env", "dev")]))
                .unwrap()
                .name,
            "b"
        );
    }

    #[test]
    fn a_target_without_criteria_matches_nothing() {
        let spec = BundleSpec {
            targets: vec![target("empty")],
            ..Default::default()
        };
        let m = TargetMatcher::new(&spec).unwrap();
        assert!(m.match_target(&cluster("c", &[])).is_none());
    }

    #[test]
    fn every_criterion_must_match() {
        let mut t = target("t");
        t.cluster_name = "one".into();
        t.cluster_selector = selector(&[("env", "dev")]);
        let spec = BundleSpec {
            targets: vec![t],
            ..Default::default()
        };
        let m = TargetMatcher::new(&spec).unwrap();
        assert!(m.match_target(&cluster("one", &[("env", "dev")])).is_some());
        assert!(m.match_target(&cluster("two", &[("env", "dev")])).is_none());
        assert!(
            m.match_target(&cluster("one", &[("env", "prod")]))
                .is_none()
        );
    }

    #[test]
    fn cluster_groups_and_group_selectors() {
        let mut by_group = target("by-group");
        by_group.cluster_group = "blue".into();
        let mut by_group_selector = target("by-group-selector");
        by_group_selector.cluster_group_selector = selector(&[("tier", "gold")]);
        let spec = BundleSpec {
            targets: vec![by_group, by_group_selector],
            ..Default::default()
        };
        let m = TargetMatcher::new(&spec).unwrap();
        let mut c = cluster("c", &[]);
        c.groups.insert("blue".into(), labels(&[]));
        assert_eq!(m.match_target(&c).unwrap().name, "by-group");
        let mut c = cluster("c", &[]);
        c.groups.insert("green".into(), labels(&[("tier", "gold")]));
        assert_eq!(m.match_target(&c).unwrap().name, "by-group-selector");
        assert!(m.match_target(&cluster("c", &[])).is_none());
    }

    #[test]
    fn a_cluster_selector_with_a_group_refines_the_group() {
        let mut t = target("blue-prod");
        t.cluster_group = "blue".into();
        t.cluster_selector = selector(&[("env", "prod")]);
        let spec = BundleSpec {
            targets: vec![t],
            ..Default::default()
        };
        let m = TargetMatcher::new(&spec).unwrap();
        let mut in_group = cluster("a", &[("env", "prod")]);
        in_group.groups.insert("blue".into(), labels(&[]));
        assert!(m.match_target(&in_group).is_some());
        let mut wrong_env = cluster("b", &[("env", "dev")]);
        wrong_env.groups.insert("blue".into(), labels(&[]));
        assert!(m.match_target(&wrong_env).is_none());
        assert!(m.match_target(&cluster("c", &[("env", "prod")])).is_none());
    }

    #[test]
    fn match_expressions() {
        let sel = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "env".into(),
                    operator: "In".into(),
                    values: Some(vec!["dev".into(), "test".into()]),
                },
                LabelSelectorRequirement {
                    key: "legacy".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        let s = Selector::new(&sel).unwrap();
        assert!(s.matches(&labels(&[("env", "test")])));
        assert!(!s.matches(&labels(&[("env", "test"), ("legacy", "1")])));
        assert!(!s.matches(&labels(&[("env", "prod")])));
        let bad = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "k".into(),
                operator: "Near".into(),
                values: None,
            }]),
        };
        assert!(Selector::new(&bad).is_err());
    }

    #[test]
    fn restrictions_keep_customizations_from_widening_targets() {
        // GitRepo target: only env=prod; fleet.yaml customization for env=dev.
        let mut gitrepo = target("prod");
        gitrepo.cluster_selector = selector(&[("env", "prod")]);
        let mut custom = target("dev");
        custom.cluster_selector = selector(&[("env", "dev")]);
        custom.helm = Some(HelmOptions {
            release_name: "dev-release".into(),
            ..Default::default()
        });
        let spec = BundleSpec {
            targets: vec![custom, gitrepo],
            target_restrictions: vec![BundleTargetRestriction {
                name: "prod".into(),
                cluster_selector: selector(&[("env", "prod")]),
                ..Default::default()
            }],
            ..Default::default()
        };
        let m = TargetMatcher::new(&spec).unwrap();
        assert!(m.match_target(&cluster("d", &[("env", "dev")])).is_none());
        assert_eq!(
            m.match_target(&cluster("p", &[("env", "prod")]))
                .unwrap()
                .name,
            "prod"
        );
        assert_eq!(
            m.match_customization(&cluster("d", &[("env", "dev")]))
                .unwrap()
                .name,
            "dev"
        );
    }

    #[test]
    fn do_not_deploy_and_customizations_in_decide() {
        let mut skip = target("skip");
        skip.cluster_selector = selector(&[("skip", "true")]);
        skip.do_not_deploy = true;
        let mut all = target("all");
        all.cluster_selector = selector(&[]);
        all.default_namespace = "custom".into();
        let spec = BundleSpec {
            targets: vec![skip, all],
            ..Default::default()
        };
        let m = TargetMatcher::new(&spec).unwrap();
        let base = BundleDeploymentOptions {
            default_namespace: "base".into(),
            ..Default::default()
        };
        assert_eq!(
            m.decide(&base, &cluster("c", &[("skip", "true")])),
            TargetDecision::DoNotDeploy {
                target: "skip".into()
            }
        );
        match m.decide(&base, &cluster("c", &[])) {
            TargetDecision::Deploy {
                options,
                customization,
                ..
            } => {
                assert_eq!(customization, "all");
                assert_eq!(options.default_namespace, "custom");
            }
            other => panic!("{other:?}"),
        }
    }
}

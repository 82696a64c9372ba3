//! The scheduler check: which nodes a pod fits, and kube-scheduler's message when none does.
//!
//! Filters run per node in kube-scheduler's default order and the first failure is the node's
//! reason: NodeUnschedulable, TaintToleration, NodeAffinity (nodeSelector and required node
//! affinity), NodeResourcesFit. The message aggregates reasons the way kube-scheduler's
//! `FitError` does, e.g. `0/3 nodes are available: 1 node(s) had untolerated taint
//! {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. preemption: 0/3 nodes are
//! available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for
//! incoming pod.`

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::profile::SchedulerRules;
use super::quantity;

const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// Resources already taken on one node by the pods bound to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeUsage {
    pub pods: i128,
    /// Thousandths of a core.
    pub cpu: i128,
    /// Thousandths of a byte.
    pub memory: i128,
}

impl NodeUsage {
    pub fn add(&mut self, requests: &NodeUsage) {
        self.pods += requests.pods;
        self.cpu += requests.cpu;
        self.memory += requests.memory;
    }
}

/// Where a pod can go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feasibility {
    /// Names of the nodes the pod fits, in the order the nodes were given.
    Fits(Vec<String>),
    /// No node fits; the message kube-scheduler writes into `PodScheduled=False`.
    Unschedulable(String),
}

/// What a pod asks of a node: one pod slot, plus its containers' resource requests (the larger of
/// the sum over containers and any init container, as kube-scheduler computes it).
pub fn pod_requests(pod: &Value) -> NodeUsage {
    let spec = &pod["spec"];
    let request = |container: &Value, resource: &str| {
        let resources = &container["resources"];
        resources["requests"][resource]
            .as_str()
            .or_else(|| resources["limits"][resource].as_str())
            .and_then(quantity::parse)
            .unwrap_or(0)
    };
    let containers = spec["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let init_containers = spec["initContainers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let total = |resource: &str| {
        let sum: i128 = containers
            .iter()
            .map(|container| request(container, resource))
            .sum();
        let init = init_containers
            .iter()
            .map(|container| request(container, resource))
            .max()
            .unwrap_or(0);
        sum.max(init)
    };
    NodeUsage {
        pods: 1,
        cpu: total("cpu"),
        memory: total("memory"),
    }
}

/// Whether the pod counts against its node's resources (bound, and not finished).
pub(crate) fn occupies_node(pod: &Value) -> bool {
    let phase = pod["status"]["phase"].as_str().unwrap_or("");
    pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|node| !node.is_empty())
        && phase != "Succeeded"
        && phase != "Failed"
}

/// Usage per node from the pods in the cluster.
pub fn usage_by_node(pods: &[Value]) -> HashMap<String, NodeUsage> {
    let mut usage: HashMap<String, NodeUsage> = HashMap::new();
    for pod in pods.iter().filter(|pod| occupies_node(pod)) {
        if let Some(node) = pod["spec"]["nodeName"].as_str() {
            usage
                .entry(node.to_owned())
                .or_default()
                .add(&pod_requests(pod));
        }
    }
    usage
}

/// Why one node rejects a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rejection {
    /// Preemption cannot help (taints, selectors, cordons).
    Unresolvable(String),
    /// Preemption could help in principle (resources).
    Resources(Vec<String>),
}

/// Runs the scheduler check for `pod` against `nodes`.
pub fn schedule_pod(
    pod: &Value,
    nodes: &[Value],
    usage: &HashMap<String, NodeUsage>,
    rules: &SchedulerRules,
) -> Feasibility {
    if nodes.is_empty() {
        return Feasibility::Unschedulable("no nodes available to schedule pods".into());
    }
    let requests = pod_requests(pod);
    let mut fits = Vec::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut preemption: BTreeMap<&str, usize> = BTreeMap::new();
    for node in nodes {
        let name = node["metadata"]["name"].as_str().unwrap_or_default();
        let rejection = if rules.enabled {
            check_node(pod, node, &requests, usage.get(name), rules)
        } else {
            None
        };
        match rejection {
            None => fits.push(name.to_owned()),
            Some(Rejection::Unresolvable(reason)) => {
                *reasons.entry(reason).or_default() += 1;
                *preemption.entry(NOT_HELPFUL).or_default() += 1;
            }
            Some(Rejection::Resources(insufficient)) => {
                for reason in insufficient {
                    *reasons.entry(reason).or_default() += 1;
                }
                *preemption.entry(NO_VICTIMS).or_default() += 1;
            }
        }
    }
    if !fits.is_empty() {
        return Feasibility::Fits(fits);
    }
    let histogram = |counts: Vec<String>| {
        let mut counts = counts;
        counts.sort();
        counts.join(", ")
    };
    let filter = histogram(
        reasons
            .iter()
            .map(|(reason, count)| format!("{count} {reason}"))
            .collect(),
    );
    let post_filter = histogram(
        preemption
            .iter()
            .map(|(reason, count)| format!("{count} {reason}"))
            .collect(),
    );
    let total = nodes.len();
    Feasibility::Unschedulable(format!(
        "0/{total} nodes are available: {filter}. preemption: 0/{total} nodes are available: {post_filter}."
    ))
}

/// The first filter that rejects the pod on this node, in kube-scheduler's plugin order.
fn check_node(
    pod: &Value,
    node: &Value,
    requests: &NodeUsage,
    usage: Option<&NodeUsage>,
    rules: &SchedulerRules,
) -> Option<Rejection> {
    let tolerations = pod["spec"]["tolerations"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if node["spec"]["unschedulable"].as_bool() == Some(true)
        && !tolerations.iter().any(|toleration| {
            tolerates(
                toleration,
                "node.kubernetes.io/unschedulable",
                "",
                "NoSchedule",
            )
        })
    {
        return Some(Rejection::Unresolvable("node(s) were unschedulable".into()));
    }
    if let Some(taint) = first_untolerated_taint(node, tolerations, &["NoSchedule", "NoExecute"]) {
        let key = taint["key"].as_str().unwrap_or_default();
        let value = taint["value"].as_str().unwrap_or_default();
        return Some(Rejection::Unresolvable(format!(
            "node(s) had untolerated taint {{{key}: {value}}}"
        )));
    }
    if !matches_node_selector_and_affinity(pod, node) {
        return Some(Rejection::Unresolvable(
            "node(s) didn't match Pod's node affinity/selector".into(),
        ));
    }
    if rules.check_resources {
        let used = usage.copied().unwrap_or_default();
        let allocatable = &node["status"]["allocatable"];
        let capacity = |resource: &str| allocatable[resource].as_str().and_then(quantity::parse);
        let mut insufficient = Vec::new();
        if let Some(pods) = capacity("pods")
            && (used.pods + requests.pods) * 1000 > pods
        {
            insufficient.push("Too many pods".to_owned());
        }
        for (resource, wanted, taken) in [
            ("cpu", requests.cpu, used.cpu),
            ("memory", requests.memory, used.memory),
        ] {
            if wanted > 0
                && let Some(available) = capacity(resource)
                && taken + wanted > available
            {
                insufficient.push(format!("Insufficient {resource}"));
            }
        }
        if !insufficient.is_empty() {
            return Some(Rejection::Resources(insufficient));
        }
    }
    None
}

/// Kubernetes' `Toleration.ToleratesTaint`.
pub(crate) fn tolerates(toleration: &Value, key: &str, value: &str, effect: &str) -> bool {
    let toleration_effect = toleration["effect"].as_str().unwrap_or("");
    if !toleration_effect.is_empty() && toleration_effect != effect {
        return false;
    }
    let toleration_key = toleration["key"].as_str().unwrap_or("");
    let operator = toleration["operator"].as_str().unwrap_or("Equal");
    if toleration_key.is_empty() {
        // An empty key only makes sense with Exists, and then it tolerates every taint.
        return operator == "Exists";
    }
    if toleration_key != key {
        return false;
    }
    match operator {
        "Exists" => true,
        "Equal" | "" => toleration["value"].as_str().unwrap_or("") == value,
        _ => false,
    }
}

/// The node's first taint with one of `effects` that no toleration tolerates.
pub(crate) fn first_untolerated_taint<'a>(
    node: &'a Value,
    tolerations: &[Value],
    effects: &[&str],
) -> Option<&'a Value> {
    node["spec"]["taints"].as_array()?.iter().find(|taint| {
        let effect = taint["effect"].as_str().unwrap_or("");
        effects.contains(&effect)
            && !tolerations.iter().any(|toleration| {
                tolerates(
                    toleration,
                    taint["key"].as_str().unwrap_or(""),
                    taint["value"].as_str().unwrap_or(""),
                    effect,
                )
            })
    })
}

/// `spec.nodeSelector` and `requiredDuringSchedulingIgnoredDuringExecution` node affinity.
pub(crate) fn matches_node_selector_and_affinity(pod: &Value, node: &Value) -> bool {
    let labels = node["metadata"]["labels"].as_object();
    let label = |key: &str| {
        labels
            .and_then(|labels| labels.get(key))
            .and_then(Value::as_str)
    };
    if let Some(selector) = pod["spec"]["nodeSelector"].as_object()
        && !selector
            .iter()
            .all(|(key, value)| label(key) == value.as_str())
    {
        return false;
    }
    let required =
        &pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    if required.is_null() {
        return true;
    }
    let node_name = node["metadata"]["name"].as_str().unwrap_or("");
    // Terms are ORed; within a term every expression must hold; an empty term matches nothing.
    required["nodeSelectorTerms"]
        .as_array()
        .is_some_and(|terms| {
            terms.iter().any(|term| {
                let expressions = term["matchExpressions"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let fields = term["matchFields"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                (!expressions.is_empty() || !fields.is_empty())
                    && expressions
                        .iter()
                        .all(|expression| requirement_holds(expression, label))
                    && fields.iter().all(|expression| {
                        requirement_holds(expression, |key| {
                            (key == "metadata.name").then_some(node_name)
                        })
                    })
            })
        })
}

/// One `NodeSelectorRequirement` against a lookup of the node's labels (or fields).
fn requirement_holds<'a>(requirement: &Value, lookup: impl Fn(&str) -> Option<&'a str>) -> bool {
    let key = requirement["key"].as_str().unwrap_or("");
    let values: Vec<&str> = requirement["values"]
        .as_array()
        .map(|values| values.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let actual = lookup(key);
    let as_number = |text: &str| text.parse::<i64>().ok();
    match requirement["operator"].as_str().unwrap_or("") {
        "In" => actual.is_some_and(|actual| values.contains(&actual)),
        "NotIn" => actual.is_none_or(|actual| !values.contains(&actual)),
        "Exists" => actual.is_some(),
        "DoesNotExist" => actual.is_none(),
        "Gt" => match (
            actual.and_then(as_number),
            values.first().and_then(|value| as_number(value)),
        ) {
            (Some(actual), Some(bound)) => actual > bound,
            _ => false,
        },
        "Lt" => match (
            actual.and_then(as_number),
            values.first().and_then(|value| as_number(value)),
        ) {
            (Some(actual), Some(bound)) => actual < bound,
            _ => false,
        },
        _ => false,
    }
}

/// Among the nodes a pod fits, the one with the fewest pods (ties: the earlier node).
pub(crate) fn least_loaded<'a>(
    fits: &'a [String],
    usage: &HashMap<String, NodeUsage>,
) -> Option<&'a String> {
    fits.iter()
        .min_by_key(|node| usage.get(node.as_str()).map_or(0, |usage| usage.pods))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, labels: Value, taints: Value) -> Value {
        json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"taints": taints},
            "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}},
        })
    }

    fn pod(spec: Value) -> Value {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "app", "image": "nginx"}]);
        }
        json!({"metadata": {"name": "p", "namespace": "default"}, "spec": spec})
    }

    fn check(pod: &Value, nodes: &[Value]) -> Feasibility {
        schedule_pod(pod, nodes, &HashMap::new(), &SchedulerRules::default())
    }

    fn control_plane() -> Value {
        node(
            "cp",
            json!({"node-role.kubernetes.io/control-plane": "true"}),
            json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
        )
    }

    #[test]
    fn a_pod_without_tolerations_avoids_tainted_nodes() {
        let nodes = [control_plane(), node("w1", json!({}), json!([]))];
        assert_eq!(
            check(&pod(json!({})), &nodes),
            Feasibility::Fits(vec!["w1".into()])
        );
    }

    #[test]
    fn untolerated_taints_everywhere_give_kube_schedulers_message() {
        let nodes = [
            node(
                "a",
                json!({}),
                json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
            ),
            node(
                "b",
                json!({}),
                json!([{"key": "dedicated", "value": "gpu", "effect": "NoExecute"}]),
            ),
            control_plane(),
        ];
        assert_eq!(
            check(&pod(json!({})), &nodes),
            Feasibility::Unschedulable(
                "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, \
                 2 node(s) had untolerated taint {dedicated: gpu}. preemption: 0/3 nodes are available: \
                 3 Preemption is not helpful for scheduling."
                    .into()
            )
        );
    }

    #[test]
    fn prefer_no_schedule_taints_do_not_block_scheduling() {
        let nodes = [node(
            "a",
            json!({}),
            json!([{"key": "spot", "effect": "PreferNoSchedule"}]),
        )];
        assert_eq!(
            check(&pod(json!({})), &nodes),
            Feasibility::Fits(vec!["a".into()])
        );
    }

    #[test]
    fn tolerations_match_by_equal_exists_and_empty_key_exists() {
        let tainted = [node(
            "a",
            json!({}),
            json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
        )];
        let fits = Feasibility::Fits(vec!["a".into()]);
        let equal = json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]});
        assert_eq!(check(&pod(equal), &tainted), fits);
        let default_operator = json!({"tolerations": [{"key": "dedicated", "value": "gpu"}]});
        assert_eq!(check(&pod(default_operator), &tainted), fits);
        let exists = json!({"tolerations": [{"key": "dedicated", "operator": "Exists"}]});
        assert_eq!(check(&pod(exists), &tainted), fits);
        let everything = json!({"tolerations": [{"operator": "Exists"}]});
        assert_eq!(check(&pod(everything), &tainted), fits);
        let wrong_value = json!({"tolerations": [{"key": "dedicated", "value": "cpu"}]});
        assert!(matches!(
            check(&pod(wrong_value), &tainted),
            Feasibility::Unschedulable(_)
        ));
        let wrong_effect = json!({"tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]});
        assert!(matches!(
            check(&pod(wrong_effect), &tainted),
            Feasibility::Unschedulable(_)
        ));
        let empty_key_equal = json!({"tolerations": [{"operator": "Equal", "value": "gpu"}]});
        assert!(matches!(
            check(&pod(empty_key_equal), &tainted),
            Feasibility::Unschedulable(_)
        ));
    }

    #[test]
    fn node_selectors_must_match_every_label() {
        let nodes = [
            node("a", json!({"disk": "ssd", "zone": "x"}), json!([])),
            node("b", json!({"disk": "hdd"}), json!([])),
        ];
        assert_eq!(
            check(&pod(json!({"nodeSelector": {"disk": "ssd"}})), &nodes),
            Feasibility::Fits(vec!["a".into()])
        );
        assert_eq!(
            check(&pod(json!({"nodeSelector": {"disk": "nvme"}})), &nodes),
            Feasibility::Unschedulable(
                "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. preemption: \
                 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
                    .into()
            )
        );
    }

    #[test]
    fn required_node_affinity_ors_terms_and_ands_expressions() {
        let nodes = [
            node("a", json!({"zone": "z1", "gen": "3"}), json!([])),
            node("b", json!({"zone": "z2", "gen": "5"}), json!([])),
            node("c", json!({"zone": "z3"}), json!([])),
        ];
        let affinity = |terms: Value| {
            pod(
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}),
            )
        };
        let in_z1_or_gen_above_4 = affinity(json!([
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]},
            {"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["4"]}]},
        ]));
        assert_eq!(
            check(&in_z1_or_gen_above_4, &nodes),
            Feasibility::Fits(vec!["a".into(), "b".into()])
        );
        let no_gen_not_z2 = affinity(json!([{"matchExpressions": [
            {"key": "gen", "operator": "DoesNotExist"},
            {"key": "zone", "operator": "NotIn", "values": ["z2"]},
        ]}]));
        assert_eq!(
            check(&no_gen_not_z2, &nodes),
            Feasibility::Fits(vec!["c".into()])
        );
        let by_name = affinity(
            json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]),
        );
        assert_eq!(check(&by_name, &nodes), Feasibility::Fits(vec!["b".into()]));
        assert!(
            matches!(
                check(&affinity(json!([{}])), &nodes),
                Feasibility::Unschedulable(_)
            ),
            "an empty term matches nothing"
        );
    }

    #[test]
    fn cordoned_nodes_are_unschedulable_unless_tolerated() {
        let mut cordoned = node("a", json!({}), json!([]));
        cordoned["spec"]["unschedulable"] = json!(true);
        let nodes = [cordoned];
        assert_eq!(
            check(&pod(json!({})), &nodes),
            Feasibility::Unschedulable(
                "0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are available: \
                 1 Preemption is not helpful for scheduling."
                    .into()
            )
        );
        let tolerant = json!({"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]});
        assert_eq!(
            check(&pod(tolerant), &nodes),
            Feasibility::Fits(vec!["a".into()])
        );
    }

    #[test]
    fn requests_beyond_what_is_left_are_insufficient_and_preemption_finds_no_victims() {
        let nodes = [node("a", json!({}), json!([])), control_plane()];
        let big = pod(
            json!({"containers": [{"name": "app", "image": "x", "resources": {"requests": {"cpu": "1500m", "memory": "1Gi"}}}]}),
        );
        let mut usage = HashMap::new();
        usage.insert(
            "a".to_owned(),
            NodeUsage {
                pods: 1,
                cpu: 1000,
                memory: 0,
            },
        );
        assert_eq!(
            schedule_pod(&big, &nodes, &usage, &SchedulerRules::default()),
            Feasibility::Unschedulable(
                "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint \
                 {node-role.kubernetes.io/control-plane: }. preemption: 0/2 nodes are available: \
                 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling."
                    .into()
            )
        );
        let rules = SchedulerRules {
            check_resources: false,
            ..SchedulerRules::default()
        };
        assert_eq!(
            schedule_pod(&big, &nodes, &usage, &rules),
            Feasibility::Fits(vec!["a".into()])
        );
    }

    #[test]
    fn requests_are_summed_over_containers_and_maxed_with_init_containers() {
        let pod = pod(json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m"}}},
                {"name": "b", "resources": {"limits": {"cpu": "200m", "memory": "64Mi"}}},
            ],
            "initContainers": [{"name": "init", "resources": {"requests": {"cpu": "1"}}}],
        }));
        assert_eq!(
            pod_requests(&pod),
            NodeUsage {
                pods: 1,
                cpu: 1000,
                memory: 64 * 1024 * 1024 * 1000
            }
        );
    }

    #[test]
    fn with_the_check_disabled_every_node_fits() {
        let rules = SchedulerRules {
            enabled: false,
            ..SchedulerRules::default()
        };
        let nodes = [control_plane()];
        assert_eq!(
            schedule_pod(&pod(json!({})), &nodes, &HashMap::new(), &rules),
            Feasibility::Fits(vec!["cp".into()])
        );
        assert!(matches!(
            schedule_pod(&pod(json!({})), &[], &HashMap::new(), &rules),
            Feasibility::Unschedulable(message) if message == "no nodes available to schedule pods"
        ));
    }
}

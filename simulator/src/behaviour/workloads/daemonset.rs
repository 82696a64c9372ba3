//! The DaemonSet controller: one pod per node the pod may run on (taints with the tolerations
//! DaemonSet pods always get, nodeSelector, required node affinity), bound to it directly.

use serde_json::{Value, json};

use super::{
    ControllerState, Ctx, create_pod, delete_pod, generated_name, owned_pods, pod_from_template,
    taken_names, write_status,
};
use crate::behaviour::naming::template_hash;
use crate::behaviour::objects;
use crate::behaviour::scheduler;

/// Tolerations the DaemonSet controller adds to every daemon pod.
fn daemon_tolerations(host_network: bool) -> Vec<Value> {
    let mut tolerations = vec![
        json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}),
        json!({"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"}),
        json!({"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}),
    ];
    if host_network {
        tolerations.push(json!({"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}));
    }
    tolerations
}

/// The pod the DaemonSet would put on a node (template plus its tolerations).
fn daemon_pod(daemonset: &Value, name: &str, revision: &str) -> Value {
    let generation = objects::generation(daemonset).unwrap_or(1).to_string();
    let mut pod = pod_from_template(
        daemonset,
        name,
        &[
            ("controller-revision-hash", revision.to_owned()),
            ("pod-template-generation", generation),
        ],
    );
    let host_network = pod["spec"]["hostNetwork"].as_bool() == Some(true);
    let mut tolerations = pod["spec"]["tolerations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for toleration in daemon_tolerations(host_network) {
        if !tolerations.iter().any(|existing| {
            existing["key"] == toleration["key"] && existing["effect"] == toleration["effect"]
        }) {
            tolerations.push(toleration);
        }
    }
    pod["spec"]["tolerations"] = Value::Array(tolerations);
    pod
}

/// Whether a daemon pod should run on `node` (the controller's `NodeShouldRunDaemonPod`).
fn should_run(pod: &Value, node: &Value) -> bool {
    let tolerations = pod["spec"]["tolerations"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    scheduler::first_untolerated_taint(node, tolerations, &["NoSchedule", "NoExecute"]).is_none()
        && scheduler::matches_node_selector_and_affinity(pod, node)
}

pub(super) fn reconcile(ctx: &mut Ctx<'_>, state: &mut ControllerState, daemonset: &Value) {
    let revision = template_hash(&daemonset["spec"]["template"]);
    let pods = owned_pods(ctx, daemonset);
    if state.satisfied(objects::uid(daemonset), ctx.now) {
        sync(ctx, state, daemonset, &pods, &revision);
    }
    let status = compute_status(ctx, daemonset, &pods, ctx.now);
    let min_ready = objects::min_ready_seconds(daemonset);
    let wake = pods
        .iter()
        .filter_map(|pod| objects::available_at(pod, min_ready, ctx.now, ctx.clock))
        .min();
    write_status(ctx, state, daemonset, status, wake, |ctx, projected, at| {
        compute_status(ctx, projected, &pods, at)
    });
}

fn sync(
    ctx: &mut Ctx<'_>,
    state: &mut ControllerState,
    daemonset: &Value,
    pods: &[Value],
    revision: &str,
) {
    let template_pod = daemon_pod(daemonset, "probe", revision);
    let nodes = ctx.nodes().to_vec();
    let mut taken = taken_names(ctx, objects::namespace(daemonset));
    let mut unavailable = 0;
    let mut outdated: Vec<&Value> = Vec::new();
    let min_ready = objects::min_ready_seconds(daemonset);
    for node in &nodes {
        let node_name = objects::name(node);
        let mut on_node: Vec<&Value> = pods
            .iter()
            .filter(|pod| {
                pod["spec"]["nodeName"].as_str() == Some(node_name) && objects::is_active(pod)
            })
            .collect();
        if should_run(&template_pod, node) {
            if on_node.is_empty() {
                let prefix = format!("{}-", objects::name(daemonset));
                let name = generated_name(ctx, &prefix, &mut taken);
                let mut pod = daemon_pod(daemonset, &name, revision);
                pod["metadata"]["generateName"] = json!(prefix);
                create_pod(ctx, state, daemonset, pod, Some(node_name.to_owned()));
                unavailable += 1;
                continue;
            }
            // Keep one pod per node (the oldest name), delete the others.
            on_node.sort_by(|a, b| objects::name(a).cmp(objects::name(b)));
            for extra in on_node.iter().skip(1) {
                delete_pod(ctx, state, daemonset, extra);
            }
            let pod = on_node[0];
            if !objects::is_available(pod, min_ready, ctx.now, ctx.clock) {
                unavailable += 1;
            }
            if objects::label(pod, "controller-revision-hash") != Some(revision) {
                outdated.push(pod);
            }
        } else {
            for pod in on_node {
                delete_pod(ctx, state, daemonset, pod);
            }
        }
    }
    // Daemon pods whose node is gone.
    for pod in pods.iter().filter(|pod| objects::is_active(pod)) {
        let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
        if !nodes
            .iter()
            .any(|candidate| objects::name(candidate) == node)
        {
            delete_pod(ctx, state, daemonset, pod);
        }
    }
    if daemonset["spec"]["updateStrategy"]["type"] == "OnDelete" {
        return;
    }
    let desired = i64::try_from(
        nodes
            .iter()
            .filter(|node| should_run(&template_pod, node))
            .count(),
    )
    .unwrap_or(0);
    let max_unavailable = super::int_or_percent(
        &daemonset["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
        desired,
        0,
        false,
    )
    .max(1);
    let mut budget = max_unavailable - unavailable;
    // Replace outdated pods that are not available first: they cost no availability.
    outdated.sort_by_key(|pod| objects::is_available(pod, min_ready, ctx.now, ctx.clock));
    for pod in outdated {
        let available = objects::is_available(pod, min_ready, ctx.now, ctx.clock);
        if available && budget <= 0 {
            break;
        }
        if available {
            budget -= 1;
        }
        delete_pod(ctx, state, daemonset, pod);
    }
}

fn compute_status(
    ctx: &Ctx<'_>,
    daemonset: &Value,
    all_pods: &[Value],
    at: std::time::Duration,
) -> Value {
    let revision = template_hash(&daemonset["spec"]["template"]);
    let template_pod = daemon_pod(daemonset, "probe", &revision);
    let nodes = ctx.list("v1", "Node", None);
    let pods: Vec<&Value> = all_pods
        .iter()
        .filter(|pod| objects::is_active(pod))
        .collect();
    let min_ready = objects::min_ready_seconds(daemonset);
    let (mut desired, mut current, mut misscheduled, mut ready, mut updated, mut available) =
        (0, 0, 0, 0, 0, 0);
    for node in &nodes {
        let on_node: Vec<&Value> = pods
            .iter()
            .copied()
            .filter(|pod| pod["spec"]["nodeName"].as_str() == Some(objects::name(node)))
            .collect();
        if should_run(&template_pod, node) {
            desired += 1;
            if let Some(pod) = on_node.first() {
                current += 1;
                if objects::is_pod_ready(pod) {
                    ready += 1;
                }
                if objects::is_available(pod, min_ready, at, ctx.clock) {
                    available += 1;
                }
                if objects::label(pod, "controller-revision-hash") == Some(revision.as_str()) {
                    updated += 1;
                }
            }
        } else if !on_node.is_empty() {
            misscheduled += 1;
        }
    }
    let mut status = json!({
        "observedGeneration": objects::generation(daemonset).unwrap_or(1),
        "currentNumberScheduled": current,
        "numberMisscheduled": misscheduled,
        "desiredNumberScheduled": desired,
        "numberReady": ready,
    });
    objects::put_count(&mut status, "updatedNumberScheduled", updated);
    objects::put_count(&mut status, "numberAvailable", available);
    objects::put_count(&mut status, "numberUnavailable", desired - available);
    status
}

//! The StatefulSet controller: pods `<name>-0` … `<name>-(n-1)`, created in order (one at a time
//! once the previous is Running and Ready, unless `podManagementPolicy: Parallel`), removed from
//! the highest ordinal, and replaced from the highest ordinal down on a template change.

use serde_json::{Value, json};

use super::{
    ControllerState, Ctx, create_pod, delete_pod, owned_pods, pod_from_template, write_status,
};
use crate::behaviour::naming::template_hash;
use crate::behaviour::objects;

fn update_revision(statefulset: &Value) -> String {
    format!(
        "{}-{}",
        objects::name(statefulset),
        template_hash(&statefulset["spec"]["template"])
    )
}

fn ordinal(statefulset: &Value, pod: &Value) -> Option<i64> {
    objects::name(pod)
        .strip_prefix(&format!("{}-", objects::name(statefulset)))?
        .parse()
        .ok()
}

pub(super) fn reconcile(ctx: &mut Ctx<'_>, state: &mut ControllerState, statefulset: &Value) {
    let pods = owned_pods(ctx, statefulset);
    if state.satisfied(objects::uid(statefulset), ctx.now) {
        scale(ctx, state, statefulset, &pods);
    }
    let status = compute_status(ctx, statefulset, &pods, ctx.now);
    let min_ready = objects::min_ready_seconds(statefulset);
    let wake = pods
        .iter()
        .filter_map(|pod| objects::available_at(pod, min_ready, ctx.now, ctx.clock))
        .min();
    write_status(
        ctx,
        state,
        statefulset,
        status,
        wake,
        |ctx, projected, at| compute_status(ctx, projected, &pods, at),
    );
}

fn scale(ctx: &mut Ctx<'_>, state: &mut ControllerState, statefulset: &Value, pods: &[Value]) {
    let desired = objects::replicas(statefulset);
    let parallel = statefulset["spec"]["podManagementPolicy"] == "Parallel";
    let revision = update_revision(statefulset);
    let by_ordinal = |wanted: i64| {
        pods.iter()
            .find(|pod| ordinal(statefulset, pod) == Some(wanted))
    };
    let healthy = |pod: &Value| objects::is_pod_ready(pod) && objects::phase(pod) == "Running";

    // Failed pods are deleted so they can be recreated.
    if let Some(pod) = pods
        .iter()
        .find(|pod| objects::phase(pod) == "Failed" && !objects::is_terminating(pod))
    {
        delete_pod(ctx, state, statefulset, pod);
        return;
    }
    // Parallel creation is bounded per sync like the other controllers; the rest follow.
    let mut created = 0;
    for wanted in 0..desired {
        match by_ordinal(wanted) {
            Some(pod) if healthy(pod) => continue,
            Some(_) if parallel => continue,
            Some(_) => return, // OrderedReady: wait for this one before the next.
            None => {
                let name = format!("{}-{wanted}", objects::name(statefulset));
                let mut pod = pod_from_template(
                    statefulset,
                    &name,
                    &[
                        ("controller-revision-hash", revision.clone()),
                        ("statefulset.kubernetes.io/pod-name", name.clone()),
                        ("apps.kubernetes.io/pod-index", wanted.to_string()),
                    ],
                );
                pod["spec"]["hostname"] = json!(name);
                if let Some(service) = statefulset["spec"]["serviceName"].as_str() {
                    pod["spec"]["subdomain"] = json!(service);
                }
                create_pod(ctx, state, statefulset, pod, None);
                created += 1;
                if !parallel || created >= super::BURST_REPLICAS {
                    return;
                }
            }
        }
    }
    // Scale down from the highest ordinal, one at a time unless Parallel.
    let mut surplus: Vec<&Value> = pods
        .iter()
        .filter(|pod| {
            ordinal(statefulset, pod).is_none_or(|index| index >= desired)
                && !objects::is_terminating(pod)
        })
        .collect();
    surplus.sort_by_key(|pod| std::cmp::Reverse(ordinal(statefulset, pod)));
    if !surplus.is_empty() {
        let count = if parallel { surplus.len() } else { 1 };
        for pod in surplus.into_iter().take(count) {
            delete_pod(ctx, state, statefulset, pod);
        }
        return;
    }
    // Rolling update: once all pods are healthy, replace the highest-ordinal outdated one.
    let on_delete = statefulset["spec"]["updateStrategy"]["type"] == "OnDelete";
    let partition = statefulset["spec"]["updateStrategy"]["rollingUpdate"]["partition"]
        .as_i64()
        .unwrap_or(0);
    if on_delete
        || pods
            .iter()
            .any(|pod| objects::is_terminating(pod) || !healthy(pod))
    {
        return;
    }
    let outdated = pods
        .iter()
        .filter(|pod| objects::label(pod, "controller-revision-hash") != Some(revision.as_str()))
        .filter(|pod| ordinal(statefulset, pod).is_some_and(|index| index >= partition))
        .max_by_key(|pod| ordinal(statefulset, pod));
    if let Some(pod) = outdated {
        delete_pod(ctx, state, statefulset, pod);
    }
}

fn compute_status(
    ctx: &Ctx<'_>,
    statefulset: &Value,
    all_pods: &[Value],
    at: std::time::Duration,
) -> Value {
    let pods: Vec<&Value> = all_pods
        .iter()
        .filter(|pod| !objects::is_terminating(pod))
        .collect();
    let revision = update_revision(statefulset);
    let min_ready = objects::min_ready_seconds(statefulset);
    let count = |predicate: &dyn Fn(&Value) -> bool| {
        i64::try_from(pods.iter().filter(|pod| predicate(pod)).count()).unwrap_or(0)
    };
    let replicas = count(&|_| true);
    let ready = count(&|pod| objects::is_pod_ready(pod));
    let available = count(&|pod| objects::is_available(pod, min_ready, at, ctx.clock));
    let updated =
        count(&|pod| objects::label(pod, "controller-revision-hash") == Some(revision.as_str()));
    let desired = objects::replicas(statefulset);
    let previous_current = statefulset["status"]["currentRevision"]
        .as_str()
        .unwrap_or(&revision)
        .to_owned();
    let rolled_out = updated == desired && ready == desired && replicas == desired;
    let current_revision = if rolled_out {
        revision.clone()
    } else {
        previous_current
    };
    let current = count(&|pod| {
        objects::label(pod, "controller-revision-hash") == Some(current_revision.as_str())
    });
    let mut status = json!({
        "observedGeneration": objects::generation(statefulset).unwrap_or(1),
        "replicas": replicas,
        "availableReplicas": available,
        "currentRevision": current_revision,
        "updateRevision": revision,
        "collisionCount": 0,
    });
    objects::put_count(&mut status, "readyReplicas", ready);
    objects::put_count(&mut status, "currentReplicas", current);
    objects::put_count(&mut status, "updatedReplicas", updated);
    status
}

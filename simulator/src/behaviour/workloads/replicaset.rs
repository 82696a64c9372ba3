//! The ReplicaSet controller: keeps `spec.replicas` pods of the template (ReplicaSets of
//! Deployments and ones users create themselves).

use serde_json::{Value, json};

use super::{
    ControllerState, Ctx, create_pod, delete_pod, deletion_order, generated_name, owned_pods,
    pod_from_template, taken_names, write_status,
};
use crate::behaviour::objects;

pub(super) fn reconcile(ctx: &mut Ctx<'_>, state: &mut ControllerState, replica_set: &Value) {
    let pods = owned_pods(ctx, replica_set);
    let mut active: Vec<Value> = pods
        .iter()
        .filter(|pod| objects::is_active(pod))
        .cloned()
        .collect();
    let desired = usize::try_from(objects::replicas(replica_set)).unwrap_or(0);
    if state.satisfied(objects::uid(replica_set), ctx.now) {
        if active.len() < desired {
            let mut taken = taken_names(ctx, objects::namespace(replica_set));
            for _ in active.len()..desired.min(active.len() + 500) {
                let prefix = format!("{}-", objects::name(replica_set));
                let name = generated_name(ctx, &prefix, &mut taken);
                let mut pod = pod_from_template(replica_set, &name, &[]);
                pod["metadata"]["generateName"] = json!(prefix);
                create_pod(ctx, state, replica_set, pod, None);
            }
        } else if active.len() > desired {
            deletion_order(&mut active);
            for pod in active.iter().take(active.len() - desired) {
                delete_pod(ctx, state, replica_set, pod);
            }
        }
    }
    let status = compute_status(ctx, replica_set, &pods, ctx.now);
    let min_ready = objects::min_ready_seconds(replica_set);
    let wake = pods
        .iter()
        .filter_map(|pod| objects::available_at(pod, min_ready, ctx.now, ctx.clock))
        .min();
    write_status(
        ctx,
        state,
        replica_set,
        status,
        wake,
        |ctx, projected, at| compute_status(ctx, projected, &pods, at),
    );
}

fn compute_status(
    ctx: &Ctx<'_>,
    replica_set: &Value,
    all_pods: &[Value],
    at: std::time::Duration,
) -> Value {
    let pods: Vec<&Value> = all_pods
        .iter()
        .filter(|pod| objects::is_active(pod))
        .collect();
    let min_ready = objects::min_ready_seconds(replica_set);
    let count = |predicate: &dyn Fn(&Value) -> bool| {
        i64::try_from(pods.iter().filter(|pod| predicate(pod)).count()).unwrap_or(0)
    };
    let mut status = json!({
        "replicas": count(&|_| true),
        "observedGeneration": objects::generation(replica_set).unwrap_or(1),
    });
    objects::put_count(&mut status, "fullyLabeledReplicas", count(&|_| true));
    objects::put_count(
        &mut status,
        "readyReplicas",
        count(&|pod| objects::is_pod_ready(pod)),
    );
    objects::put_count(
        &mut status,
        "availableReplicas",
        count(&|pod| objects::is_available(pod, min_ready, at, ctx.clock)),
    );
    status
}

//! The Deployment controller.
//!
//! Pods carry the `pod-template-hash` of the template they were made from and are named like a
//! ReplicaSet's (`<deployment>-<hash>-<suffix>`), but are owned by the Deployment directly: the
//! simulator's actions cannot update a ReplicaSet's `spec.replicas`, so there is no ReplicaSet to
//! scale. Everything kubectl and kstatus read from a Deployment (status counts, `Available` and
//! `Progressing` with their real reasons, rollouts with maxSurge/maxUnavailable or Recreate) is
//! as the real controller writes it.

use std::time::Duration;

use serde_json::{Value, json};

use super::{
    ControllerState, Ctx, create_pod, delete_pod, deletion_order, generated_name, int_or_percent,
    owned_pods, pod_from_template, taken_names, write_status,
};
use crate::behaviour::naming::template_hash;
use crate::behaviour::objects::{self, merged_condition};

/// The default `progressDeadlineSeconds`.
const DEFAULT_PROGRESS_DEADLINE: u64 = 600;

struct Rollout {
    desired: i64,
    max_surge: i64,
    max_unavailable: i64,
    min_ready_seconds: u64,
    hash: String,
    replica_set_name: String,
}

fn rollout(deployment: &Value) -> Rollout {
    let desired = objects::replicas(deployment);
    let hash = template_hash(&deployment["spec"]["template"]);
    let rolling = &deployment["spec"]["strategy"]["rollingUpdate"];
    let recreate = deployment["spec"]["strategy"]["type"] == "Recreate";
    let (mut max_surge, mut max_unavailable) = if recreate {
        (0, desired)
    } else {
        (
            int_or_percent(&rolling["maxSurge"], desired, 25, true),
            int_or_percent(&rolling["maxUnavailable"], desired, 25, false),
        )
    };
    if max_surge == 0 && max_unavailable == 0 && !recreate {
        max_unavailable = 1;
    }
    max_surge = max_surge.max(0);
    Rollout {
        desired,
        max_surge,
        max_unavailable: max_unavailable.min(desired),
        min_ready_seconds: objects::min_ready_seconds(deployment),
        replica_set_name: format!("{}-{hash}", objects::name(deployment)),
        hash,
    }
}

pub(super) fn reconcile(ctx: &mut Ctx<'_>, state: &mut ControllerState, deployment: &Value) {
    let plan = rollout(deployment);
    let pods = owned_pods(ctx, deployment);
    let paused = deployment["spec"]["paused"].as_bool() == Some(true);
    let uid = objects::uid(deployment).to_owned();
    if !paused && state.satisfied(&uid, ctx.now) {
        scale(ctx, state, deployment, &plan, &pods);
    }
    let memory = state
        .progress
        .get(&uid)
        .cloned()
        .unwrap_or_else(|| Progress::observed(ctx, deployment));
    let (status, progress) = compute_status(ctx, deployment, &pods, ctx.now, &memory);
    let wake = next_wake(ctx, deployment, &progress, &plan, &pods);
    state.progress.insert(uid, progress.clone());
    write_status(
        ctx,
        state,
        deployment,
        status,
        wake,
        |ctx, projected, at| compute_status(ctx, projected, &pods, at, &progress).0,
    );
}

/// What the controller last saw of a Deployment's rollout: progress is measured against this,
/// not against the object's status, so a status written earlier for a later time (a deadline)
/// cannot fake progress or hide it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Progress {
    updated: i64,
    ready: i64,
    available: i64,
    old: i64,
    last_progress: Duration,
    replica_set: String,
}

impl Progress {
    /// Reconstructed from the object (after the simulator restarted).
    fn observed(ctx: &Ctx<'_>, deployment: &Value) -> Self {
        let status = &deployment["status"];
        let count = |key: &str| status[key].as_i64().unwrap_or(0);
        let progressing = objects::condition(deployment, "Progressing");
        let replica_set = progressing
            .and_then(|condition| condition["message"].as_str())
            .and_then(|message| message.split('"').nth(1))
            .unwrap_or_default()
            .to_owned();
        Self {
            updated: count("updatedReplicas"),
            ready: count("readyReplicas"),
            available: count("availableReplicas"),
            old: count("replicas") - count("updatedReplicas"),
            last_progress: last_progress(ctx, progressing).unwrap_or(ctx.now),
            replica_set,
        }
    }
}

fn is_new(pod: &Value, plan: &Rollout) -> bool {
    objects::label(pod, "pod-template-hash") == Some(plan.hash.as_str())
}

fn scale(
    ctx: &mut Ctx<'_>,
    state: &mut ControllerState,
    deployment: &Value,
    plan: &Rollout,
    pods: &[Value],
) {
    let active: Vec<Value> = pods
        .iter()
        .filter(|pod| objects::is_active(pod))
        .cloned()
        .collect();
    let (new, old): (Vec<Value>, Vec<Value>) =
        active.into_iter().partition(|pod| is_new(pod, plan));
    let available =
        |pod: &Value| objects::is_available(pod, plan.min_ready_seconds, ctx.now, ctx.clock);
    let count = |pods: &[Value]| i64::try_from(pods.len()).unwrap_or(i64::MAX);
    let recreate = deployment["spec"]["strategy"]["type"] == "Recreate";
    let mut to_create = 0;
    let mut to_delete: Vec<Value> = Vec::new();
    if recreate {
        if !old.is_empty() {
            to_delete.extend(old.iter().cloned());
        } else if !pods
            .iter()
            .any(|pod| !is_new(pod, plan) && !objects::is_finished(pod))
        {
            // Only once every old pod is gone (terminating ones included).
            to_create = plan.desired - count(&new);
        }
    } else if old.is_empty() {
        to_create = plan.desired - count(&new);
    } else {
        let total = count(&new) + count(&old);
        let room = plan.desired + plan.max_surge - total;
        to_create = (plan.desired - count(&new)).min(room);
        let min_available = plan.desired - plan.max_unavailable;
        let new_unavailable = new.iter().filter(|pod| !available(pod)).count();
        let new_unavailable = i64::try_from(new_unavailable).unwrap_or(0);
        let all_available =
            i64::try_from(new.iter().chain(&old).filter(|pod| available(pod)).count()).unwrap_or(0);
        // First old pods that are not available anyway, then available ones down to the minimum.
        let mut unhealthy_budget = (total - min_available - new_unavailable).max(0);
        let mut available_budget = (all_available - min_available).max(0);
        let mut old_sorted = old.clone();
        deletion_order(&mut old_sorted);
        for pod in old_sorted {
            if !available(&pod) && unhealthy_budget > 0 {
                unhealthy_budget -= 1;
                to_delete.push(pod);
            } else if available(&pod) && available_budget > 0 {
                available_budget -= 1;
                to_delete.push(pod);
            }
        }
    }
    if count(&new) > plan.desired {
        let mut extra = new.clone();
        deletion_order(&mut extra);
        let excess = usize::try_from(count(&new) - plan.desired).unwrap_or(0);
        to_delete.extend(extra.into_iter().take(excess));
    }
    let to_create = to_create.min(super::BURST_REPLICAS);
    if to_create > 0 {
        let mut taken = taken_names(ctx, objects::namespace(deployment));
        for _ in 0..to_create {
            let prefix = format!("{}-", plan.replica_set_name);
            let name = generated_name(ctx, &prefix, &mut taken);
            let mut pod = pod_from_template(
                deployment,
                &name,
                &[("pod-template-hash", plan.hash.clone())],
            );
            pod["metadata"]["generateName"] = json!(prefix);
            create_pod(ctx, state, deployment, pod, None);
        }
    }
    for pod in &to_delete {
        delete_pod(ctx, state, deployment, pod);
    }
}

/// The Deployment's status as the controller computes it at time `at`, given what it saw last.
fn compute_status(
    ctx: &Ctx<'_>,
    deployment: &Value,
    pods: &[Value],
    at: Duration,
    memory: &Progress,
) -> (Value, Progress) {
    let plan = rollout(deployment);
    let active: Vec<&Value> = pods.iter().filter(|pod| objects::is_active(pod)).collect();
    let count = |predicate: &dyn Fn(&Value) -> bool| {
        i64::try_from(active.iter().filter(|pod| predicate(pod)).count()).unwrap_or(0)
    };
    let replicas = count(&|_| true);
    let updated = count(&|pod| is_new(pod, &plan));
    let ready = count(&|pod| objects::is_pod_ready(pod));
    let available = count(&|pod| objects::is_available(pod, plan.min_ready_seconds, at, ctx.clock));
    let unavailable = (plan.desired.max(replicas) - available).max(0);

    let timestamp = ctx.timestamp(at);
    let paused = deployment["spec"]["paused"].as_bool() == Some(true);
    let previous_progressing = objects::condition(deployment, "Progressing");
    let rs = &plan.replica_set_name;
    let complete = updated == plan.desired && replicas == plan.desired && available == plan.desired;
    let new_replica_set = memory.replica_set != *rs;
    let progressed = updated > memory.updated
        || ready > memory.ready
        || available > memory.available
        || replicas - updated < memory.old;
    let mut last = memory.last_progress;
    let deadline = deployment["spec"]["progressDeadlineSeconds"]
        .as_u64()
        .unwrap_or(DEFAULT_PROGRESS_DEADLINE);
    let progressing = if paused {
        merged_condition(
            previous_progressing,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
            &timestamp,
            true,
        )
    } else if complete {
        let message = format!("ReplicaSet \"{rs}\" has successfully progressed.");
        merged_condition(
            previous_progressing,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &message,
            &timestamp,
            true,
        )
    } else if new_replica_set {
        last = at;
        fresh_progress(
            previous_progressing,
            "NewReplicaSetCreated",
            &format!("Created new replica set \"{rs}\""),
            &timestamp,
        )
    } else if progressed {
        last = at;
        fresh_progress(
            previous_progressing,
            "ReplicaSetUpdated",
            &format!("ReplicaSet \"{rs}\" is progressing."),
            &timestamp,
        )
    } else if objects::later(last, deadline) <= at {
        let message = format!("ReplicaSet \"{rs}\" has timed out progressing.");
        merged_condition(
            previous_progressing,
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            &message,
            &timestamp,
            true,
        )
    } else if previous_progressing.is_some_and(|condition| condition["status"] == "True") {
        previous_progressing.cloned().unwrap_or_default()
    } else {
        // Not timed out after all (a deadline written ahead of time was overtaken by progress).
        let since = ctx.timestamp(last);
        fresh_progress(
            previous_progressing,
            "ReplicaSetUpdated",
            &format!("ReplicaSet \"{rs}\" is progressing."),
            &since,
        )
    };
    let previous_available = objects::condition(deployment, "Available");
    let available_condition = if available >= plan.desired - plan.max_unavailable {
        merged_condition(
            previous_available,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            &timestamp,
            true,
        )
    } else {
        merged_condition(
            previous_available,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            &timestamp,
            true,
        )
    };
    let mut status = json!({ "observedGeneration": objects::generation(deployment).unwrap_or(1) });
    objects::put_count(&mut status, "replicas", replicas);
    objects::put_count(&mut status, "updatedReplicas", updated);
    objects::put_count(&mut status, "readyReplicas", ready);
    objects::put_count(&mut status, "availableReplicas", available);
    objects::put_count(&mut status, "unavailableReplicas", unavailable);
    status["conditions"] = json!([available_condition, progressing]);
    let progress = Progress {
        updated,
        ready,
        available,
        old: replicas - updated,
        last_progress: last,
        replica_set: rs.clone(),
    };
    (status, progress)
}

/// `Progressing=True` with a new `lastUpdateTime` (progress was made), keeping the transition
/// time if it was already True.
fn fresh_progress(previous: Option<&Value>, reason: &str, message: &str, timestamp: &str) -> Value {
    let mut condition = merged_condition(
        None,
        "Progressing",
        "True",
        reason,
        message,
        timestamp,
        true,
    );
    if let Some(previous) = previous
        && previous["status"] == "True"
    {
        condition["lastTransitionTime"] = previous["lastTransitionTime"].clone();
    }
    condition
}

fn last_progress(ctx: &Ctx<'_>, progressing: Option<&Value>) -> Option<Duration> {
    progressing?["lastUpdateTime"]
        .as_str()
        .and_then(|time| ctx.clock.since_start(time))
}

/// The next moment the status changes with nothing else happening: a ready pod becoming
/// available after minReadySeconds, or the progress deadline passing.
fn next_wake(
    ctx: &Ctx<'_>,
    deployment: &Value,
    progress: &Progress,
    plan: &Rollout,
    pods: &[Value],
) -> Option<Duration> {
    let availability = pods
        .iter()
        .filter_map(|pod| objects::available_at(pod, plan.min_ready_seconds, ctx.now, ctx.clock))
        .min();
    let complete =
        progress.updated == plan.desired && progress.old == 0 && progress.available == plan.desired;
    let paused = deployment["spec"]["paused"].as_bool() == Some(true);
    let deadline_seconds = deployment["spec"]["progressDeadlineSeconds"]
        .as_u64()
        .unwrap_or(DEFAULT_PROGRESS_DEADLINE);
    let deadline =
        (!complete && !paused).then(|| objects::later(progress.last_progress, deadline_seconds));
    [availability, deadline]
        .into_iter()
        .flatten()
        .filter(|at| *at > ctx.now)
        .min()
}

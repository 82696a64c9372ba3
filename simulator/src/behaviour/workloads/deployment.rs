//! The Deployment controller.
//!
//! A Deployment owns one ReplicaSet per pod template (`<deployment>-<pod-template-hash>`, with
//! the `pod-template-hash` label and `deployment.kubernetes.io/revision` annotation), and the
//! ReplicaSets own the pods. A template change creates a new ReplicaSet that is scaled up while
//! the old ones are scaled down (maxSurge/maxUnavailable), or after they reach zero (Recreate).
//! Everything kubectl and kstatus read from a Deployment (status counts, `Available` and
//! `Progressing` with their real reasons) is as the real controller writes it.

use std::time::Duration;

use serde_json::{Value, json};

use super::{Action, ControllerState, Ctx, int_or_percent, write_status};
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
    let replica_sets = owned_replica_sets(ctx, deployment);
    let pods = pods_of(ctx, deployment, &replica_sets);
    let paused = deployment["spec"]["paused"].as_bool() == Some(true);
    let uid = objects::uid(deployment).to_owned();
    if !paused && state.satisfied(&uid, ctx.now) {
        scale(ctx, state, deployment, &plan, &replica_sets, &pods);
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

const REVISION: &str = "deployment.kubernetes.io/revision";
/// The default `revisionHistoryLimit`: old ReplicaSets kept for rollbacks.
const DEFAULT_REVISION_HISTORY: usize = 10;

fn revision(object: &Value) -> i64 {
    object["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The ReplicaSets a Deployment controls, oldest revision first.
fn owned_replica_sets(ctx: &Ctx<'_>, deployment: &Value) -> Vec<Value> {
    let uid = objects::uid(deployment);
    let mut sets: Vec<Value> = ctx
        .list("apps/v1", "ReplicaSet", objects::namespace(deployment))
        .into_iter()
        .filter(|rs| objects::is_controlled_by(rs, uid))
        .collect();
    sets.sort_by(|a, b| (revision(a), objects::name(a)).cmp(&(revision(b), objects::name(b))));
    sets
}

/// The pods of the Deployment's ReplicaSets.
fn pods_of(ctx: &Ctx<'_>, deployment: &Value, replica_sets: &[Value]) -> Vec<Value> {
    let uids: Vec<&str> = replica_sets.iter().map(objects::uid).collect();
    let mut pods: Vec<Value> = ctx
        .list("v1", "Pod", objects::namespace(deployment))
        .into_iter()
        .filter(|pod| {
            objects::controller_ref(pod)
                .and_then(|owner| owner["uid"].as_str())
                .is_some_and(|owner| uids.contains(&owner))
        })
        .collect();
    pods.sort_by(|a, b| objects::name(a).cmp(objects::name(b)));
    pods
}

/// A ReplicaSet for the Deployment's current template, as the controller creates it.
fn replica_set_for(deployment: &Value, plan: &Rollout, replicas: i64, revision: i64) -> Value {
    let mut template = deployment["spec"]["template"].clone();
    template["metadata"]["labels"]["pod-template-hash"] = json!(plan.hash);
    let mut selector = deployment["spec"]["selector"].clone();
    selector["matchLabels"]["pod-template-hash"] = json!(plan.hash);
    let labels = template["metadata"]["labels"].clone();
    let mut spec = json!({"replicas": replicas, "selector": selector, "template": template});
    if plan.min_ready_seconds > 0 {
        spec["minReadySeconds"] = json!(plan.min_ready_seconds);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": plan.replica_set_name,
            "namespace": objects::namespace(deployment),
            "labels": labels,
            "annotations": {
                REVISION: revision.to_string(),
                "deployment.kubernetes.io/desired-replicas": plan.desired.to_string(),
                "deployment.kubernetes.io/max-replicas": (plan.desired + plan.max_surge).to_string(),
            },
            "ownerReferences": [objects::owner_reference(deployment)],
        },
        "spec": spec,
    })
}

/// Drives the ReplicaSets toward the rollout: creates the new template's ReplicaSet, scales it up
/// and the old ones down within maxSurge/maxUnavailable (or all old ones to zero first, for
/// Recreate), keeps revisions and prunes history beyond `revisionHistoryLimit`.
fn scale(
    ctx: &mut Ctx<'_>,
    state: &mut ControllerState,
    deployment: &Value,
    plan: &Rollout,
    replica_sets: &[Value],
    pods: &[Value],
) {
    let new_rs = replica_sets
        .iter()
        .find(|rs| objects::name(rs) == plan.replica_set_name);
    let old: Vec<&Value> = replica_sets
        .iter()
        .filter(|rs| objects::name(rs) != plan.replica_set_name)
        .collect();
    let available_in = |rs: &Value| {
        let uid = objects::uid(rs);
        let n = pods
            .iter()
            .filter(|pod| {
                objects::is_controlled_by(pod, uid)
                    && objects::is_active(pod)
                    && objects::is_available(pod, plan.min_ready_seconds, ctx.now, ctx.clock)
            })
            .count();
        i64::try_from(n).unwrap_or(0)
    };
    let old_replicas: i64 = old.iter().map(|rs| objects::replicas(rs)).sum();
    let recreate = deployment["spec"]["strategy"]["type"] == "Recreate";
    let max_revision = replica_sets.iter().map(revision).max().unwrap_or(0);
    let mut writes: Vec<(Value, i64)> = Vec::new();

    if recreate && old_replicas > 0 {
        writes.extend(old.iter().map(|rs| ((*rs).clone(), 0)));
    } else if recreate
        && pods
            .iter()
            .any(|pod| !is_new(pod, plan) && !objects::is_finished(pod))
    {
        // Recreate waits until every old pod is gone (terminating ones included).
    } else if let Some(new_rs) = new_rs {
        let new_count = objects::replicas(new_rs);
        let total = new_count + old_replicas;
        let max_total = plan.desired + plan.max_surge;
        if recreate || new_count > plan.desired {
            if new_count != plan.desired {
                writes.push((new_rs.clone(), plan.desired));
            }
        } else if new_count < plan.desired && total < max_total {
            let up = (max_total - total).min(plan.desired - new_count);
            writes.push((new_rs.clone(), new_count + up));
        } else if old_replicas > 0 {
            writes.extend(scale_down_old(plan, new_rs, &old, total, &available_in));
        }
        // A rollback makes an old ReplicaSet current again: it takes the next revision.
        if revision(new_rs) < max_revision || revision(new_rs) == 0 {
            let next = (max_revision + 1).to_string();
            ctx.push(
                ctx.now,
                objects::patch(
                    new_rs,
                    json!({"metadata": {"annotations": {REVISION: next}}}),
                ),
            );
        }
    } else {
        let initial = if recreate || old.is_empty() {
            plan.desired
        } else {
            (plan.desired + plan.max_surge - old_replicas).clamp(0, plan.desired)
        };
        let rs = replica_set_for(deployment, plan, initial, max_revision + 1);
        let delay = ctx.profile.controller_delay.sample(&mut *ctx.rng);
        state.expect_create(
            objects::uid(deployment),
            &plan.replica_set_name,
            ctx.now + delay,
        );
        ctx.push(ctx.now + delay, Action::Create { object: rs });
    }
    for (rs, replicas) in writes {
        if objects::replicas(&rs) != replicas {
            ctx.push(
                ctx.now,
                objects::patch(&rs, json!({"spec": {"replicas": replicas}})),
            );
        }
    }
    // The Deployment carries the revision of its current ReplicaSet.
    if let Some(new_rs) = new_rs {
        let current = revision(new_rs).max(max_revision).to_string();
        if deployment["metadata"]["annotations"][REVISION].as_str() != Some(current.as_str()) {
            ctx.push(
                ctx.now,
                objects::patch(
                    deployment,
                    json!({"metadata": {"annotations": {REVISION: current}}}),
                ),
            );
        }
    }
    prune_history(ctx, deployment, &old, pods);
}

/// The rolling update's scale-down of old ReplicaSets (oldest first): first replicas that are not
/// available anyway, then available ones down to `desired - maxUnavailable`.
fn scale_down_old(
    plan: &Rollout,
    new_rs: &Value,
    old: &[&Value],
    total: i64,
    available_in: &dyn Fn(&Value) -> i64,
) -> Vec<(Value, i64)> {
    let min_available = plan.desired - plan.max_unavailable;
    let new_unavailable = (objects::replicas(new_rs) - available_in(new_rs)).max(0);
    let mut room = total - min_available - new_unavailable;
    if room <= 0 {
        return Vec::new();
    }
    let mut targets: Vec<i64> = old.iter().map(|rs| objects::replicas(rs)).collect();
    for (target, rs) in targets.iter_mut().zip(old) {
        let unhealthy = (*target - available_in(rs)).max(0).min(room);
        *target -= unhealthy;
        room -= unhealthy;
    }
    let all_available: i64 =
        available_in(new_rs) + old.iter().map(|rs| available_in(rs)).sum::<i64>();
    let mut budget = (all_available - min_available).max(0).min(room);
    for target in &mut targets {
        let down = (*target).min(budget);
        *target -= down;
        budget -= down;
    }
    old.iter()
        .zip(targets)
        .filter(|(rs, target)| objects::replicas(rs) != *target)
        .map(|(rs, target)| ((*rs).clone(), target))
        .collect()
}

/// Old ReplicaSets scaled to zero and without pods beyond `revisionHistoryLimit` are deleted,
/// oldest first.
fn prune_history(ctx: &mut Ctx<'_>, deployment: &Value, old: &[&Value], pods: &[Value]) {
    let limit = deployment["spec"]["revisionHistoryLimit"]
        .as_u64()
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(DEFAULT_REVISION_HISTORY);
    let idle: Vec<&&Value> = old
        .iter()
        .filter(|rs| {
            objects::replicas(rs) == 0
                && rs["status"]["replicas"].as_i64().unwrap_or(0) == 0
                && !pods
                    .iter()
                    .any(|pod| objects::is_controlled_by(pod, objects::uid(rs)))
        })
        .collect();
    if idle.len() > limit {
        for rs in idle.iter().take(idle.len() - limit) {
            ctx.push(ctx.now, objects::delete(rs));
        }
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

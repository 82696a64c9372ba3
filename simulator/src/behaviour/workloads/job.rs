//! The Job controller: runs `parallelism` pods at a time until `completions` succeed, gives up
//! after `backoffLimit` failures, honours `suspend` and `ttlSecondsAfterFinished`.

use serde_json::{Value, json};

use super::{
    ControllerState, Ctx, create_pod, delete_pod, generated_name, owned_pods, pod_from_template,
    taken_names,
};
use crate::behaviour::objects::{self, merged_condition, update_status};

const DEFAULT_BACKOFF_LIMIT: i64 = 6;

/// The `Complete` or `Failed` condition, if the status says the Job is finished.
fn finished(status: &Value) -> Option<&Value> {
    status["conditions"].as_array()?.iter().find(|condition| {
        (condition["type"] == "Complete" || condition["type"] == "Failed")
            && condition["status"] == "True"
    })
}

/// A finished Job: its outcome is final (written again if a racing write lost it), a failed
/// Job's remaining pods are removed, and the TTL controller takes over.
fn settle(
    ctx: &mut Ctx<'_>,
    state: &mut ControllerState,
    job: &Value,
    outcome: &Value,
    active: &[&Value],
) {
    if finished(&job["status"]).is_none() {
        ctx.push(ctx.now, update_status(job, outcome.clone()));
    }
    let Some(condition) = finished(outcome) else {
        return;
    };
    if condition["type"] == "Failed" {
        for pod in active {
            delete_pod(ctx, state, job, pod);
        }
    }
    expire(ctx, state, job, condition);
}

pub(super) fn reconcile(ctx: &mut Ctx<'_>, state: &mut ControllerState, job: &Value) {
    let pods = owned_pods(ctx, job);
    let active: Vec<&Value> = pods.iter().filter(|pod| objects::is_active(pod)).collect();
    let uid = objects::uid(job).to_owned();
    if let Some(outcome) = state.job_outcomes.get(&uid).cloned() {
        settle(ctx, state, job, &outcome, &active);
        return;
    }
    if finished(&job["status"]).is_some() {
        let outcome = job["status"].clone();
        settle(ctx, state, job, &outcome, &active);
        return;
    }
    let spec = &job["spec"];
    let parallelism = spec["parallelism"].as_i64().unwrap_or(1).max(0);
    let completions = spec["completions"]
        .as_i64()
        .or(if spec["parallelism"].is_null() {
            Some(1)
        } else {
            None
        });
    let backoff_limit = spec["backoffLimit"]
        .as_i64()
        .unwrap_or(DEFAULT_BACKOFF_LIMIT);
    let count = |phase: &str| {
        i64::try_from(
            pods.iter()
                .filter(|pod| objects::phase(pod) == phase)
                .count(),
        )
        .unwrap_or(0)
    };
    let previous = &job["status"];
    let succeeded = count("Succeeded").max(previous["succeeded"].as_i64().unwrap_or(0));
    let restarts: i64 = if spec["template"]["spec"]["restartPolicy"] == "OnFailure" {
        active
            .iter()
            .filter_map(|pod| pod["status"]["containerStatuses"].as_array())
            .flatten()
            .filter_map(|status| status["restartCount"].as_i64())
            .sum()
    } else {
        0
    };
    let failed = count("Failed").max(previous["failed"].as_i64().unwrap_or(0));
    let ready = i64::try_from(
        active
            .iter()
            .filter(|pod| objects::is_pod_ready(pod))
            .count(),
    )
    .unwrap_or(0);
    let active_count = i64::try_from(active.len()).unwrap_or(0);
    let suspended = spec["suspend"].as_bool() == Some(true);
    let timestamp = ctx.timestamp(ctx.now);
    let mut conditions: Vec<Value> = previous["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let was_suspended = conditions
        .iter()
        .any(|condition| condition["type"] == "Suspended" && condition["status"] == "True");
    let mut set = |kind: &str, status: &str, reason: &str, message: &str| {
        let existing = conditions
            .iter()
            .position(|condition| condition["type"] == kind);
        let merged = merged_condition(
            existing.map(|index| &conditions[index]),
            kind,
            status,
            reason,
            message,
            &timestamp,
            false,
        );
        let mut merged = merged;
        merged["lastProbeTime"] = json!(timestamp);
        match existing {
            Some(index)
                if conditions[index]["status"] == status
                    && conditions[index]["reason"] == merged["reason"] => {}
            Some(index) => conditions[index] = merged,
            None => conditions.push(merged),
        }
    };
    let mut completion_time = previous["completionTime"].clone();
    let mut start_time = previous["startTime"].clone();
    let mut still_active = active_count;
    let satisfied = state.satisfied(&uid, ctx.now);
    let mut to_delete: Vec<&Value> = Vec::new();
    if failed + restarts > backoff_limit {
        let message = "Job has reached the specified backoff limit";
        set("FailureTarget", "True", "BackoffLimitExceeded", message);
        set("Failed", "True", "BackoffLimitExceeded", message);
        to_delete.extend(active.iter().copied());
        still_active = 0;
    } else if completions.is_some_and(|wanted| succeeded >= wanted)
        || (completions.is_none() && succeeded > 0 && active_count == 0)
    {
        let message = "Reached expected number of succeeded pods";
        set("SuccessCriteriaMet", "True", "CompletionsReached", message);
        set("Complete", "True", "CompletionsReached", message);
        completion_time = json!(timestamp);
    } else if suspended {
        set("Suspended", "True", "JobSuspended", "Job suspended");
        to_delete.extend(active.iter().copied());
        still_active = 0;
    } else {
        if was_suspended {
            set("Suspended", "False", "JobResumed", "Job resumed");
        }
        if start_time.is_null() {
            start_time = json!(timestamp);
        }
        let wanted = match completions {
            Some(total) => parallelism.min(total - succeeded),
            None if succeeded > 0 => 0,
            None => parallelism,
        };
        if satisfied && wanted > active_count {
            let mut taken = taken_names(ctx, objects::namespace(job));
            let job_name = objects::name(job).to_owned();
            for _ in active_count..wanted.min(active_count + super::BURST_REPLICAS) {
                let prefix = format!("{job_name}-");
                let name = generated_name(ctx, &prefix, &mut taken);
                let labels = [
                    ("batch.kubernetes.io/controller-uid", uid.clone()),
                    ("batch.kubernetes.io/job-name", job_name.clone()),
                    ("controller-uid", uid.clone()),
                    ("job-name", job_name.clone()),
                ];
                let mut pod = pod_from_template(job, &name, &labels);
                pod["metadata"]["generateName"] = json!(prefix);
                create_pod(ctx, state, job, pod, None);
            }
        }
    }
    let mut status = json!({
        "ready": ready,
        "terminating": 0,
        "uncountedTerminatedPods": {},
    });
    if !start_time.is_null() {
        status["startTime"] = start_time;
    }
    objects::put_count(&mut status, "active", still_active);
    objects::put_count(&mut status, "succeeded", succeeded);
    objects::put_count(&mut status, "failed", failed);
    if !conditions.is_empty() {
        status["conditions"] = Value::Array(conditions);
    }
    if !completion_time.is_null() {
        status["completionTime"] = completion_time;
    }
    // The status goes first: once pods are gone, what they did is only in the status.
    if finished(&status).is_some() {
        state.job_outcomes.insert(uid, status.clone());
    }
    if job["status"] != status {
        ctx.push(ctx.now, update_status(job, status));
    }
    for pod in to_delete {
        delete_pod(ctx, state, job, pod);
    }
}

/// `ttlSecondsAfterFinished`: the TTL controller deletes the finished Job.
fn expire(ctx: &mut Ctx<'_>, state: &mut ControllerState, job: &Value, condition: &Value) {
    let Some(ttl) = job["spec"]["ttlSecondsAfterFinished"].as_u64() else {
        return;
    };
    if !state.expiring_jobs.insert(objects::uid(job).to_owned()) {
        return;
    }
    let finished_at = condition["lastTransitionTime"]
        .as_str()
        .and_then(|time| ctx.clock.since_start(time))
        .unwrap_or(ctx.now);
    ctx.push(objects::later(finished_at, ttl), objects::delete(job));
}

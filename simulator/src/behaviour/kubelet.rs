//! The simulated scheduler binding loop and kubelet: a pod goes from created to bound (or
//! `Unschedulable`), then to running and ready, crash-looping, stuck pulling, or done — each step
//! a status write at the time the profile's pod rules say.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::{Value, json};

use super::events::{self, EventType};
use super::nodes::{node_ip, pod_ip};
use super::objects::{self, condition, merged_condition, update_status};
use super::profile::PodOutcome;
use super::scheduler::{self, Feasibility};
use super::selector::PodFacts;
use super::{Action, Ctx};

/// Back-off between crash-loop restarts: 10s, doubling, capped at 5 minutes (the kubelet's).
pub(crate) fn crash_backoff(restarts: u32) -> Duration {
    let exponent = restarts.saturating_sub(1).min(5);
    Duration::from_secs((10_u64 << exponent).min(300))
}

/// One step of a pod's life that has been scheduled already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Bind,
    Accept,
    Start,
    Restart(u32),
    Complete,
    Delete,
}

/// What the kubelet remembers about one pod (keyed by namespace/name; reset when the uid or
/// generation changes, i.e. a new pod of the same name or a changed spec).
#[derive(Debug)]
struct PodPlan {
    uid: String,
    generation: Option<i64>,
    /// When the kubelet accepted the pod (its `startTime`).
    accepted_at: Duration,
    /// When its containers reached their outcome.
    started_at: Option<Duration>,
    pod_ip: Option<String>,
    steps: BTreeSet<Step>,
}

#[derive(Debug, Default)]
pub(crate) struct KubeletState {
    plans: HashMap<(String, String), PodPlan>,
    addresses_handed_out: HashMap<String, u64>,
    /// Pods left Pending as unschedulable, retried when nodes or capacity change.
    unschedulable: BTreeSet<(String, String)>,
}

impl KubeletState {
    pub fn has_unschedulable_pods(&self) -> bool {
        !self.unschedulable.is_empty()
    }

    pub fn forget(&mut self, namespace: &str, name: &str) {
        let key = (namespace.to_owned(), name.to_owned());
        self.plans.remove(&key);
        self.unschedulable.remove(&key);
    }

    fn plan(&mut self, pod: &Value, now: Duration) -> &mut PodPlan {
        let key = (
            objects::namespace(pod).unwrap_or_default().to_owned(),
            objects::name(pod).to_owned(),
        );
        let fresh = || PodPlan {
            uid: objects::uid(pod).to_owned(),
            generation: objects::generation(pod),
            accepted_at: now,
            started_at: None,
            pod_ip: None,
            steps: BTreeSet::new(),
        };
        match self.plans.entry(key) {
            Entry::Occupied(mut entry) => {
                let plan = entry.get();
                if plan.uid != objects::uid(pod) || plan.generation != objects::generation(pod) {
                    // A new pod with the same name, or a changed spec: start over, keeping the IP.
                    let pod_ip = if plan.uid == objects::uid(pod) {
                        plan.pod_ip.clone()
                    } else {
                        None
                    };
                    *entry.get_mut() = PodPlan { pod_ip, ..fresh() };
                }
                entry.into_mut()
            }
            Entry::Vacant(entry) => entry.insert(fresh()),
        }
    }

    fn next_pod_ip(&mut self, node: &str, node_number: usize) -> String {
        let counter = self
            .addresses_handed_out
            .entry(node.to_owned())
            .or_default();
        let ip = pod_ip(node_number, *counter);
        *counter += 1;
        ip
    }
}

/// How one container of a pod ends up, drawn once from the profile.
#[derive(Debug, Clone)]
pub(crate) struct ContainerFate {
    pub name: String,
    pub image: String,
    pub outcome: PodOutcome,
    pub ready_after: Duration,
    pub complete_after: Duration,
}

/// The kind and name of the workload that owns a pod (`Pod` and its own name if none).
pub(crate) fn workload_of(ctx: &Ctx<'_>, pod: &Value) -> (String, String) {
    let Some(owner) = objects::controller_ref(pod) else {
        return ("Pod".into(), objects::name(pod).to_owned());
    };
    let kind = owner["kind"].as_str().unwrap_or_default();
    let name = owner["name"].as_str().unwrap_or_default();
    if kind == "ReplicaSet" {
        let replica_set = ctx.get("apps/v1", "ReplicaSet", objects::namespace(pod), name);
        if let Some(deployment) = replica_set.as_ref().and_then(objects::controller_ref)
            && deployment["kind"] == "Deployment"
        {
            return (
                "Deployment".into(),
                deployment["name"].as_str().unwrap_or_default().to_owned(),
            );
        }
    }
    (kind.to_owned(), name.to_owned())
}

/// Each container's fate under the profile's pod rules (first matching rule wins).
pub(crate) fn pod_fate(ctx: &Ctx<'_>, pod: &Value) -> Vec<ContainerFate> {
    let (workload_kind, workload_name) = workload_of(ctx, pod);
    let namespace = objects::namespace(pod).unwrap_or_default();
    let pod_name = objects::name(pod);
    let containers = pod["spec"]["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    containers
        .iter()
        .map(|container| {
            let name = container["name"].as_str().unwrap_or_default().to_owned();
            let image = container["image"].as_str().unwrap_or_default().to_owned();
            let facts = PodFacts {
                namespace,
                workload_kind: &workload_kind,
                workload_name: &workload_name,
                labels: objects::labels(pod),
                image: &image,
            };
            let container_key = format!("{pod_name}/{name}");
            let rule = ctx.profile.pods.iter().enumerate().find(|(index, rule)| {
                rule.selector.matches(&facts)
                    && (rule.probability >= 1.0 || {
                        use rand::Rng;
                        let mut rng = ctx.object_rng(
                            &format!("rule-{index}"),
                            Some(namespace),
                            &container_key,
                        );
                        rng.random::<f64>() < rule.probability
                    })
            });
            let mut rng = ctx.object_rng("timing", Some(namespace), &container_key);
            let (outcome, ready_after, complete_after) = match rule {
                Some((_, rule)) => (
                    rule.outcome,
                    rule.ready_after.sample(&mut rng),
                    rule.complete_after
                        .unwrap_or(ctx.profile.jobs.complete_after)
                        .sample(&mut rng),
                ),
                None => (
                    PodOutcome::Ready,
                    Duration::ZERO,
                    ctx.profile.jobs.complete_after.sample(&mut rng),
                ),
            };
            ContainerFate {
                name,
                image,
                outcome,
                ready_after,
                complete_after,
            }
        })
        .collect()
}

/// Handles a change to a pod: binding, kubelet progress, or the final delete.
pub(crate) fn on_pod(ctx: &mut Ctx<'_>, state: &mut KubeletState, pod: &Value) {
    let key = (
        objects::namespace(pod).unwrap_or_default().to_owned(),
        objects::name(pod).to_owned(),
    );
    if objects::is_terminating(pod) {
        state.unschedulable.remove(&key);
        let plan = state.plan(pod, ctx.now);
        if plan.steps.insert(Step::Delete) {
            let delay = ctx.profile.termination.delete_after.sample(&mut *ctx.rng);
            ctx.push(ctx.now + delay, objects::delete(pod));
            for container in container_names(pod) {
                let message = format!("Stopping container {container}");
                events::record(
                    ctx,
                    ctx.now,
                    pod,
                    EventType::Normal,
                    "Killing",
                    &message,
                    "kubelet",
                );
            }
        }
        return;
    }
    let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    if node.is_empty() {
        schedule(ctx, state, pod);
        return;
    }
    state.unschedulable.remove(&key);
    if objects::is_finished(pod) {
        return;
    }
    run(ctx, state, pod, node);
}

/// Finds a node for an unbound pod (posting a Binding), or records why there is none.
pub(crate) fn schedule(ctx: &mut Ctx<'_>, state: &mut KubeletState, pod: &Value) {
    let scheduler_name = pod["spec"]["schedulerName"]
        .as_str()
        .unwrap_or("default-scheduler");
    if scheduler_name != "default-scheduler" {
        return;
    }
    let key = (
        objects::namespace(pod).unwrap_or_default().to_owned(),
        objects::name(pod).to_owned(),
    );
    let profile = ctx.profile;
    let nodes = ctx.nodes().to_vec();
    let feasibility = scheduler::schedule_pod(pod, &nodes, ctx.usage(), &profile.scheduler);
    match feasibility {
        Feasibility::Fits(fits) => {
            state.unschedulable.remove(&key);
            let plan = state.plan(pod, ctx.now);
            if !plan.steps.insert(Step::Bind) {
                return;
            }
            let Some(target) = scheduler::least_loaded(&fits, ctx.usage()).cloned() else {
                return;
            };
            ctx.usage()
                .entry(target.clone())
                .or_default()
                .add(&scheduler::pod_requests(pod));
            let delay = ctx.profile.scheduler.bind_after.sample(&mut *ctx.rng);
            let binding = json!({
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": { "name": key.1, "namespace": key.0 },
                "target": { "apiVersion": "v1", "kind": "Node", "name": target },
            });
            ctx.push(ctx.now + delay, Action::Create { object: binding });
            let message = format!("Successfully assigned {}/{} to {target}", key.0, key.1);
            events::record(
                ctx,
                ctx.now + delay,
                pod,
                EventType::Normal,
                "Scheduled",
                &message,
                "default-scheduler",
            );
        }
        Feasibility::Unschedulable(message) => {
            state.unschedulable.insert(key);
            let timestamp = ctx.timestamp(ctx.now);
            let previous = condition(pod, "PodScheduled");
            let scheduled = merged_condition(
                previous,
                "PodScheduled",
                "False",
                "Unschedulable",
                &message,
                &timestamp,
                false,
            );
            let mut scheduled = scheduled;
            scheduled["lastProbeTime"] = Value::Null;
            let status = json!({
                "phase": "Pending",
                "conditions": [scheduled],
                "qosClass": qos_class(pod),
            });
            if pod["status"] != status {
                ctx.push(ctx.now, update_status(pod, status));
                let warning = EventType::Warning;
                events::record(
                    ctx,
                    ctx.now,
                    pod,
                    warning,
                    "FailedScheduling",
                    &message,
                    "default-scheduler",
                );
            }
        }
    }
}

/// Retries every pod left unschedulable (after nodes or capacity changed).
pub(crate) fn retry_unschedulable(ctx: &mut Ctx<'_>, state: &mut KubeletState) {
    if state.unschedulable.is_empty() {
        return;
    }
    let pending: Vec<(String, String)> = state.unschedulable.iter().cloned().collect();
    for (namespace, name) in pending {
        match ctx.get("v1", "Pod", Some(&namespace), &name) {
            Some(pod)
                if pod["spec"]["nodeName"]
                    .as_str()
                    .unwrap_or_default()
                    .is_empty() =>
            {
                if !objects::is_terminating(&pod) {
                    schedule(ctx, state, &pod);
                }
            }
            _ => {
                state.unschedulable.remove(&(namespace, name));
            }
        }
    }
}

/// The kubelet's part: accept the pod, start its containers, restart or complete them.
fn run(ctx: &mut Ctx<'_>, state: &mut KubeletState, pod: &Value, node: &str) {
    let node_number = ctx.node_number(node);
    let host_ip = node_ip(node_number);
    let host_network = pod["spec"]["hostNetwork"].as_bool() == Some(true);
    let fates = pod_fate(ctx, pod);
    let now = ctx.now;
    let needs_ip = state.plan(pod, now).pod_ip.is_none();
    if needs_ip {
        let ip = if host_network {
            host_ip.clone()
        } else {
            state.next_pod_ip(node, node_number)
        };
        state.plan(pod, now).pod_ip = Some(ip);
    }
    let plan = state.plan(pod, now);
    if plan.steps.is_empty() || plan.steps == BTreeSet::from([Step::Bind]) {
        // Adopt what the status already says (e.g. after the simulator restarted).
        if let Some(start) = pod["status"]["startTime"]
            .as_str()
            .and_then(|time| ctx.clock.since_start(time))
        {
            plan.accepted_at = start;
        }
    }
    let pod_ip = plan.pod_ip.clone().unwrap_or_default();
    let ips = Addresses {
        host: host_ip,
        pod: pod_ip,
    };
    let started = containers_started(pod);
    let ready_after = fates
        .iter()
        .map(|fate| fate.ready_after)
        .max()
        .unwrap_or_default();
    if !started {
        let accepted_at = plan.accepted_at;
        let start_at = accepted_at + ready_after;
        if !ready_after.is_zero()
            && pod["status"]["startTime"].is_null()
            && plan.steps.insert(Step::Accept)
        {
            let status = accepted_status(ctx, pod, &ips, accepted_at);
            ctx.push(accepted_at, update_status(pod, status));
        }
        if plan.steps.insert(Step::Start) {
            plan.started_at = Some(start_at);
            let status = started_status(ctx, pod, &fates, &ips, accepted_at, start_at, 1);
            ctx.push(start_at, update_status(pod, status));
            record_start(ctx, pod, &fates, start_at);
        }
        return;
    }
    let accepted_at = plan.accepted_at;
    let started_at = plan
        .started_at
        .unwrap_or_else(|| started_time(ctx, pod).unwrap_or(now));
    let restart_policy = pod["spec"]["restartPolicy"].as_str().unwrap_or("Always");
    let crash_looping = restart_policy != "Never"
        && fates
            .iter()
            .any(|fate| fate.outcome == PodOutcome::CrashLoopBackOff);
    if crash_looping {
        let restarts = max_restart_count(pod);
        let next = restarts + 1;
        if plan.steps.insert(Step::Restart(next)) {
            let status = started_status(ctx, pod, &fates, &ips, accepted_at, started_at, next);
            let at = now + crash_backoff(restarts);
            ctx.push(at, update_status(pod, status));
            for fate in fates
                .iter()
                .filter(|fate| fate.outcome == PodOutcome::CrashLoopBackOff)
            {
                let message = format!(
                    "Back-off restarting failed container {} in pod {}_{}({})",
                    fate.name,
                    objects::name(pod),
                    objects::namespace(pod).unwrap_or_default(),
                    objects::uid(pod)
                );
                events::record(
                    ctx,
                    at,
                    pod,
                    EventType::Warning,
                    "BackOff",
                    &message,
                    "kubelet",
                );
            }
        }
        return;
    }
    let runs_to_completion =
        objects::controller_ref(pod).is_some_and(|owner| owner["kind"] == "Job");
    if runs_to_completion
        && fates.iter().all(|fate| fate.outcome == PodOutcome::Ready)
        && plan.steps.insert(Step::Complete)
    {
        let complete_after = fates
            .iter()
            .map(|fate| fate.complete_after)
            .max()
            .unwrap_or_default();
        let finished_at = started_at.max(now) + complete_after;
        let status = completed_status(ctx, pod, &fates, &ips, accepted_at, started_at, finished_at);
        ctx.push(finished_at, update_status(pod, status));
    }
}

/// The kubelet's events for containers reaching their outcome.
fn record_start(ctx: &mut Ctx<'_>, pod: &Value, fates: &[ContainerFate], at: Duration) {
    for fate in fates {
        let (name, image) = (&fate.name, &fate.image);
        if fate.outcome == PodOutcome::ImagePullBackOff {
            let pulling = format!("Pulling image \"{image}\"");
            events::record(
                ctx,
                at,
                pod,
                EventType::Normal,
                "Pulling",
                &pulling,
                "kubelet",
            );
            let failed = format!(
                "Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found"
            );
            events::record(
                ctx,
                at,
                pod,
                EventType::Warning,
                "Failed",
                &failed,
                "kubelet",
            );
            let back_off = format!("Back-off pulling image \"{image}\"");
            events::record(
                ctx,
                at,
                pod,
                EventType::Normal,
                "BackOff",
                &back_off,
                "kubelet",
            );
            continue;
        }
        let pulled = format!("Container image \"{image}\" already present on machine");
        events::record(
            ctx,
            at,
            pod,
            EventType::Normal,
            "Pulled",
            &pulled,
            "kubelet",
        );
        events::record(
            ctx,
            at,
            pod,
            EventType::Normal,
            "Created",
            &format!("Created container: {name}"),
            "kubelet",
        );
        events::record(
            ctx,
            at,
            pod,
            EventType::Normal,
            "Started",
            &format!("Started container {name}"),
            "kubelet",
        );
        if fate.outcome == PodOutcome::NeverReady {
            let message = "Readiness probe failed: HTTP probe failed with statuscode: 503";
            events::record(
                ctx,
                at,
                pod,
                EventType::Warning,
                "Unhealthy",
                message,
                "kubelet",
            );
        }
    }
}

struct Addresses {
    host: String,
    pod: String,
}

/// Whether the kubelet has already reported the containers past `ContainerCreating`.
fn containers_started(pod: &Value) -> bool {
    pod["status"]["containerStatuses"]
        .as_array()
        .is_some_and(|statuses| {
            statuses.iter().any(|status| {
                status["state"]["waiting"]["reason"].as_str() != Some("ContainerCreating")
                    || status["restartCount"].as_u64().unwrap_or(0) > 0
            })
        })
}

fn max_restart_count(pod: &Value) -> u32 {
    pod["status"]["containerStatuses"]
        .as_array()
        .map(|statuses| {
            statuses
                .iter()
                .filter_map(|status| status["restartCount"].as_u64())
                .max()
                .unwrap_or(0)
        })
        .and_then(|count| u32::try_from(count).ok())
        .unwrap_or(0)
}

fn started_time(ctx: &Ctx<'_>, pod: &Value) -> Option<Duration> {
    let statuses = pod["status"]["containerStatuses"].as_array()?;
    statuses
        .iter()
        .find_map(|status| status["state"]["running"]["startedAt"].as_str())
        .and_then(|time| ctx.clock.since_start(time))
}

/// Kubernetes' QoS class from requests and limits.
pub(crate) fn qos_class(pod: &Value) -> &'static str {
    let containers = pod["spec"]["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let resources = |container: &Value, kind: &str, resource: &str| {
        container["resources"][kind][resource]
            .as_str()
            .map(str::to_owned)
    };
    let any_set = containers.iter().any(|container| {
        ["cpu", "memory"].iter().any(|resource| {
            resources(container, "requests", resource).is_some()
                || resources(container, "limits", resource).is_some()
        })
    });
    if !any_set {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|container| {
        ["cpu", "memory"].iter().all(|resource| {
            let limit = resources(container, "limits", resource);
            let request = resources(container, "requests", resource);
            limit.is_some() && (request.is_none() || request == limit)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn pod_condition(
    pod: &Value,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    timestamp: &str,
) -> Value {
    let mut condition = merged_condition(
        condition(pod, kind),
        kind,
        status,
        reason,
        message,
        timestamp,
        false,
    );
    condition["lastProbeTime"] = Value::Null;
    condition
}

fn scheduled_condition(pod: &Value, timestamp: &str) -> Value {
    pod_condition(pod, "PodScheduled", "True", "", "", timestamp)
}

fn init_statuses(pod: &Value, done_at: Option<&str>) -> Option<Value> {
    let init = pod["spec"]["initContainers"].as_array()?;
    Some(Value::Array(
        init.iter()
            .map(|container| {
                let state = match done_at {
                    Some(at) => json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": at, "finishedAt": at}}),
                    None => json!({"waiting": {"reason": "PodInitializing"}}),
                };
                json!({
                    "name": container["name"],
                    "image": container["image"],
                    "imageID": image_id(container["image"].as_str().unwrap_or_default()),
                    "ready": done_at.is_some(),
                    "restartCount": 0,
                    "started": false,
                    "state": state,
                })
            })
            .collect(),
    ))
}

fn image_id(image: &str) -> String {
    let name = image.split('@').next().unwrap_or(image);
    let digest = super::naming::fnv64a(image.as_bytes());
    format!("{name}@sha256:{digest:016x}{digest:016x}{digest:016x}{digest:016x}")
}

fn container_id(pod: &Value, container: &str, restarts: u32) -> String {
    let digest =
        super::naming::fnv64a(format!("{}/{container}/{restarts}", objects::uid(pod)).as_bytes());
    format!("containerd://{digest:016x}{digest:016x}{digest:016x}{digest:016x}")
}

/// What the kubelet reports right after accepting the pod: containers being created.
fn accepted_status(ctx: &Ctx<'_>, pod: &Value, ips: &Addresses, accepted_at: Duration) -> Value {
    let timestamp = ctx.timestamp(accepted_at);
    let names = container_names(pod);
    let has_init = pod["spec"]["initContainers"]
        .as_array()
        .is_some_and(|init| !init.is_empty());
    let unready = format!("containers with unready status: [{}]", names.join(" "));
    let statuses: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|container| {
            json!({
                "name": container["name"],
                "image": container["image"],
                "imageID": "",
                "ready": false,
                "restartCount": 0,
                "started": false,
                "state": {"waiting": {"reason": if has_init { "PodInitializing" } else { "ContainerCreating" }}},
            })
        })
        .collect();
    let initialized = if has_init {
        pod_condition(
            pod,
            "Initialized",
            "False",
            "ContainersNotInitialized",
            "containers with incomplete status: [init]",
            &timestamp,
        )
    } else {
        pod_condition(pod, "Initialized", "True", "", "", &timestamp)
    };
    let mut status = json!({
        "phase": "Pending",
        "conditions": [
            pod_condition(pod, "PodReadyToStartContainers", "False", "", "", &timestamp),
            initialized,
            pod_condition(pod, "Ready", "False", "ContainersNotReady", &unready, &timestamp),
            pod_condition(pod, "ContainersReady", "False", "ContainersNotReady", &unready, &timestamp),
            scheduled_condition(pod, &timestamp),
        ],
        "hostIP": ips.host,
        "hostIPs": [{"ip": ips.host}],
        "startTime": timestamp,
        "containerStatuses": statuses,
        "qosClass": qos_class(pod),
    });
    if let Some(init) = init_statuses(pod, None) {
        status["initContainerStatuses"] = init;
    }
    status
}

fn container_names(pod: &Value) -> Vec<String> {
    pod["spec"]["containers"]
        .as_array()
        .map(|containers| {
            containers
                .iter()
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The status once containers reached their outcome; `restarts` counts crash-loop restarts.
fn started_status(
    ctx: &Ctx<'_>,
    pod: &Value,
    fates: &[ContainerFate],
    ips: &Addresses,
    accepted_at: Duration,
    started_at: Duration,
    restarts: u32,
) -> Value {
    let start = ctx.timestamp(accepted_at);
    let started = ctx.timestamp(started_at);
    let now = ctx.timestamp(ctx.now.max(started_at));
    let restart_policy = pod["spec"]["restartPolicy"].as_str().unwrap_or("Always");
    let pod_name = objects::name(pod);
    let namespace = objects::namespace(pod).unwrap_or_default();
    let mut unready = Vec::new();
    let mut pulling = false;
    let mut failed = false;
    let statuses: Vec<Value> = fates
        .iter()
        .map(|fate| {
            let mut status = json!({
                "name": fate.name,
                "image": fate.image,
                "imageID": image_id(&fate.image),
                "containerID": container_id(pod, &fate.name, 0),
                "restartCount": 0,
            });
            match fate.outcome {
                PodOutcome::Ready => {
                    status["ready"] = json!(true);
                    status["started"] = json!(true);
                    status["state"] = json!({"running": {"startedAt": started}});
                }
                PodOutcome::NeverReady => {
                    unready.push(fate.name.clone());
                    status["ready"] = json!(false);
                    status["started"] = json!(true);
                    status["state"] = json!({"running": {"startedAt": started}});
                }
                PodOutcome::ImagePullBackOff => {
                    unready.push(fate.name.clone());
                    pulling = true;
                    status["ready"] = json!(false);
                    status["started"] = json!(false);
                    status["imageID"] = json!("");
                    status.as_object_mut().map(|object| object.remove("containerID"));
                    status["state"] = json!({"waiting": {
                        "reason": "ImagePullBackOff",
                        "message": format!("Back-off pulling image \"{}\"", fate.image),
                    }});
                }
                PodOutcome::CrashLoopBackOff => {
                    unready.push(fate.name.clone());
                    status["ready"] = json!(false);
                    status["started"] = json!(false);
                    let terminated = json!({
                        "exitCode": 1,
                        "reason": "Error",
                        "startedAt": started,
                        "finishedAt": now,
                        "containerID": container_id(pod, &fate.name, restarts.saturating_sub(1)),
                    });
                    if restart_policy == "Never" {
                        failed = true;
                        status["state"] = json!({"terminated": terminated});
                    } else {
                        status["restartCount"] = json!(restarts);
                        status["containerID"] = json!(container_id(pod, &fate.name, restarts));
                        status["lastState"] = json!({"terminated": terminated});
                        status["state"] = json!({"waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": format!(
                                "back-off {}s restarting failed container={} pod={pod_name}_{namespace}({})",
                                crash_backoff(restarts).as_secs(),
                                fate.name,
                                objects::uid(pod),
                            ),
                        }});
                    }
                }
            }
            status
        })
        .collect();
    let ready = unready.is_empty();
    let phase = if failed
        && fates
            .iter()
            .all(|fate| fate.outcome == PodOutcome::CrashLoopBackOff)
    {
        "Failed"
    } else if pulling
        && fates
            .iter()
            .all(|fate| fate.outcome == PodOutcome::ImagePullBackOff)
    {
        "Pending"
    } else {
        "Running"
    };
    let unready_message = format!("containers with unready status: [{}]", unready.join(" "));
    let (ready_status, reason, message) = if ready {
        ("True", "", "")
    } else {
        ("False", "ContainersNotReady", unready_message.as_str())
    };
    let (ready_reason, ready_message) = if phase == "Failed" {
        ("PodFailed", "")
    } else {
        (reason, message)
    };
    let mut status = json!({
        "phase": phase,
        "conditions": [
            pod_condition(pod, "PodReadyToStartContainers", if phase == "Failed" { "False" } else { "True" }, "", "", &started),
            pod_condition(pod, "Initialized", "True", "", "", &started),
            pod_condition(pod, "Ready", ready_status, ready_reason, ready_message, &started),
            pod_condition(pod, "ContainersReady", ready_status, ready_reason, ready_message, &started),
            scheduled_condition(pod, &start),
        ],
        "hostIP": ips.host,
        "hostIPs": [{"ip": ips.host}],
        "podIP": ips.pod,
        "podIPs": [{"ip": ips.pod}],
        "startTime": start,
        "containerStatuses": statuses,
        "qosClass": qos_class(pod),
    });
    if let Some(init) = init_statuses(pod, Some(&start)) {
        status["initContainerStatuses"] = init;
    }
    status
}

/// A Job's pod after its containers exited 0.
fn completed_status(
    ctx: &Ctx<'_>,
    pod: &Value,
    fates: &[ContainerFate],
    ips: &Addresses,
    accepted_at: Duration,
    started_at: Duration,
    finished_at: Duration,
) -> Value {
    let start = ctx.timestamp(accepted_at);
    let started = ctx.timestamp(started_at);
    let finished = ctx.timestamp(finished_at);
    let statuses: Vec<Value> = fates
        .iter()
        .map(|fate| {
            json!({
                "name": fate.name,
                "image": fate.image,
                "imageID": image_id(&fate.image),
                "containerID": container_id(pod, &fate.name, 0),
                "ready": false,
                "restartCount": 0,
                "started": false,
                "state": {"terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": started,
                    "finishedAt": finished,
                    "containerID": container_id(pod, &fate.name, 0),
                }},
            })
        })
        .collect();
    let mut status = json!({
        "phase": "Succeeded",
        "conditions": [
            pod_condition(pod, "PodReadyToStartContainers", "False", "", "", &finished),
            pod_condition(pod, "Initialized", "True", "PodCompleted", "", &start),
            pod_condition(pod, "Ready", "False", "PodCompleted", "", &finished),
            pod_condition(pod, "ContainersReady", "False", "PodCompleted", "", &finished),
            scheduled_condition(pod, &start),
        ],
        "hostIP": ips.host,
        "hostIPs": [{"ip": ips.host}],
        "podIP": ips.pod,
        "podIPs": [{"ip": ips.pod}],
        "startTime": start,
        "containerStatuses": statuses,
        "qosClass": qos_class(pod),
    });
    if let Some(init) = init_statuses(pod, Some(&start)) {
        status["initContainerStatuses"] = init;
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_loop_back_off_doubles_from_ten_seconds_to_five_minutes() {
        let backoffs: Vec<u64> = (0..8)
            .map(|restarts| crash_backoff(restarts).as_secs())
            .collect();
        assert_eq!(backoffs, vec![10, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn qos_class_follows_requests_and_limits() {
        let pod = |resources: Value| json!({"spec": {"containers": [{"name": "a", "resources": resources}]}});
        assert_eq!(qos_class(&pod(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&pod(json!({"requests": {"cpu": "1"}}))),
            "Burstable"
        );
        assert_eq!(
            qos_class(&pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&pod(
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}})
            )),
            "Burstable"
        );
    }
}

//! Workload controllers (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job), the node
//! lifecycle bits (Ready, NoExecute eviction, pod garbage collection) and the dispatch of changes.
//!
//! Controllers are level-triggered: every change to a workload or to one of its pods recomputes
//! what pods should exist and what the status should say from the current view, writing only
//! what differs. "Expectations" (as in kube-controller-manager) keep a controller from creating
//! the same pods twice while its earlier creates are still on their way.

mod daemonset;
mod deployment;
mod job;
mod replicaset;
mod statefulset;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};

pub(super) use super::Action;
use super::kubelet::{self, KubeletState};
use super::naming::random_suffix;
use super::objects::{self, update_status};
use super::scheduler::{self, Feasibility};
use super::{ChangeKind, Ctx, ObjectChange};

/// How long unfulfilled expectations block a controller before it looks again (the store may
/// have refused a create, e.g. in a terminating namespace).
const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(30);

/// Most pods a controller creates in one sync (kube-controller-manager's `BurstReplicas`); the
/// rest follow as the created pods come back, so absurd replica counts cannot stall the cluster.
const BURST_REPLICAS: i64 = 500;

#[derive(Debug, Default)]
struct Expectations {
    creates: BTreeSet<String>,
    deletes: BTreeSet<String>,
    expires: Duration,
}

#[derive(Debug, Default)]
pub(crate) struct ControllerState {
    /// Pods a controller (by uid) created or deleted and has not seen the result of yet.
    expectations: HashMap<String, Expectations>,
    /// The future status write already scheduled per workload uid (minReadySeconds, deadlines).
    projections: HashMap<String, (Duration, Value)>,
    /// What each Deployment's controller saw last (by uid).
    progress: HashMap<String, deployment::Progress>,
    /// The final status of each finished Job (by uid).
    job_outcomes: HashMap<String, Value>,
    /// Jobs whose TTL-after-finished delete is scheduled.
    expiring_jobs: HashSet<String>,
    /// Nodes (by uid or name) whose Ready status write is scheduled.
    readied_nodes: HashSet<String>,
}

impl ControllerState {
    fn satisfied(&mut self, owner_uid: &str, now: Duration) -> bool {
        match self.expectations.get(owner_uid) {
            None => true,
            Some(expectations)
                if expectations.creates.is_empty() && expectations.deletes.is_empty() =>
            {
                true
            }
            Some(expectations) if expectations.expires <= now => {
                self.expectations.remove(owner_uid);
                true
            }
            Some(_) => false,
        }
    }

    fn expect_create(&mut self, owner_uid: &str, pod: &str, at: Duration) {
        let expectations = self.expectations.entry(owner_uid.to_owned()).or_default();
        expectations.creates.insert(pod.to_owned());
        expectations.expires = expectations.expires.max(at + EXPECTATIONS_TIMEOUT);
    }

    fn expect_delete(&mut self, owner_uid: &str, pod: &str, at: Duration) {
        let expectations = self.expectations.entry(owner_uid.to_owned()).or_default();
        expectations.deletes.insert(pod.to_owned());
        expectations.expires = expectations.expires.max(at + EXPECTATIONS_TIMEOUT);
    }

    fn observe_pod(&mut self, pod: &Value, gone: bool) {
        let Some(owner_uid) = objects::controller_ref(pod).and_then(|owner| owner["uid"].as_str())
        else {
            return;
        };
        if let Some(expectations) = self.expectations.get_mut(owner_uid) {
            expectations.creates.remove(objects::name(pod));
            if gone || objects::is_terminating(pod) {
                expectations.deletes.remove(objects::name(pod));
            }
        }
    }

    fn forget(&mut self, uid: &str) {
        self.expectations.remove(uid);
        self.projections.remove(uid);
        self.progress.remove(uid);
        self.expiring_jobs.remove(uid);
        self.job_outcomes.remove(uid);
    }
}

/// Routes one change to the simulated controllers.
/// The group-resources whose changes [`dispatch`] acts on; changes of anything else are not
/// delivered to the simulated controllers at all.
pub const WATCHED_RESOURCES: &[&str] = &[
    "pods",
    "nodes",
    "services",
    "persistentvolumeclaims",
    "deployments.apps",
    "replicasets.apps",
    "statefulsets.apps",
    "daemonsets.apps",
    "jobs.batch",
];

pub(crate) fn dispatch(
    ctx: &mut Ctx<'_>,
    state: &mut ControllerState,
    kubelet: &mut KubeletState,
    change: &ObjectChange,
) {
    match (change.api_version.as_str(), change.kind_name.as_str()) {
        ("v1", "Pod") => on_pod(ctx, state, kubelet, change),
        ("v1", "Node") => on_node(ctx, state, kubelet, change),
        ("v1", "Service") if change.kind != ChangeKind::Deleted => on_service(ctx, &change.object),
        ("v1", "PersistentVolumeClaim") if change.kind != ChangeKind::Deleted => {
            on_claim(ctx, &change.object)
        }
        ("apps/v1", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch/v1", "Job") => {
            // A Deployment's ReplicaSets are its "pods": expectations count them the same way.
            state.observe_pod(&change.object, change.kind == ChangeKind::Deleted);
            if change.kind == ChangeKind::Deleted {
                state.forget(objects::uid(&change.object));
            } else {
                reconcile(ctx, state, &change.object);
            }
            if change.kind_name == "ReplicaSet" {
                reconcile_owning_deployment(ctx, state, &change.object);
            }
        }
        _ => {}
    }
}

fn reconcile(ctx: &mut Ctx<'_>, state: &mut ControllerState, workload: &Value) {
    if objects::is_terminating(workload) {
        return;
    }
    match workload["kind"].as_str().unwrap_or_default() {
        "Deployment" => deployment::reconcile(ctx, state, workload),
        "ReplicaSet" => replicaset::reconcile(ctx, state, workload),
        "StatefulSet" => statefulset::reconcile(ctx, state, workload),
        "DaemonSet" => daemonset::reconcile(ctx, state, workload),
        "Job" => job::reconcile(ctx, state, workload),
        _ => {}
    }
}

fn on_pod(
    ctx: &mut Ctx<'_>,
    state: &mut ControllerState,
    kubelet: &mut KubeletState,
    change: &ObjectChange,
) {
    let pod = &change.object;
    let gone = change.kind == ChangeKind::Deleted;
    state.observe_pod(pod, gone);
    if gone {
        kubelet.forget(
            objects::namespace(pod).unwrap_or_default(),
            objects::name(pod),
        );
    } else {
        kubelet::on_pod(ctx, kubelet, pod);
    }
    if (gone || objects::is_finished(pod)) && kubelet.has_unschedulable_pods() {
        // Capacity was freed.
        kubelet::retry_unschedulable(ctx, kubelet);
    }
    let Some(owner) = objects::controller_ref(pod) else {
        return;
    };
    let (Some(api_version), Some(kind), Some(name)) = (
        owner["apiVersion"].as_str(),
        owner["kind"].as_str(),
        owner["name"].as_str(),
    ) else {
        return;
    };
    if !matches!(
        kind,
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job"
    ) {
        return;
    }
    if let Some(workload) = ctx.get(api_version, kind, objects::namespace(pod), name)
        && objects::uid(&workload) == owner["uid"].as_str().unwrap_or_default()
    {
        reconcile(ctx, state, &workload);
        if kind == "ReplicaSet" {
            // Availability counts of a rollout come from the pods, not the ReplicaSet's status.
            reconcile_owning_deployment(ctx, state, &workload);
        }
    }
}

/// Reconciles the Deployment that controls `replica_set`, if any.
fn reconcile_owning_deployment(
    ctx: &mut Ctx<'_>,
    state: &mut ControllerState,
    replica_set: &Value,
) {
    let Some(owner) = objects::controller_ref(replica_set) else {
        return;
    };
    if owner["kind"] != "Deployment" {
        return;
    }
    let Some(name) = owner["name"].as_str() else {
        return;
    };
    if let Some(deployment) = ctx.get(
        "apps/v1",
        "Deployment",
        objects::namespace(replica_set),
        name,
    ) && objects::uid(&deployment) == owner["uid"].as_str().unwrap_or_default()
    {
        reconcile(ctx, state, &deployment);
    }
}

fn on_node(
    ctx: &mut Ctx<'_>,
    state: &mut ControllerState,
    kubelet: &mut KubeletState,
    change: &ObjectChange,
) {
    let node = &change.object;
    let node_name = objects::name(node).to_owned();
    let pods_on_node: Vec<Value> = ctx
        .list("v1", "Pod", None)
        .into_iter()
        .filter(|pod| {
            pod["spec"]["nodeName"].as_str() == Some(node_name.as_str())
                && !objects::is_terminating(pod)
        })
        .collect();
    if change.kind == ChangeKind::Deleted {
        state.readied_nodes.remove(&node_key(node));
        // The pod garbage collector deletes pods bound to nodes that no longer exist.
        for pod in &pods_on_node {
            ctx.push(ctx.now, objects::delete(pod));
        }
    } else {
        let meant_to_fail = ctx
            .profile
            .nodes
            .iter()
            .any(|template| template.not_ready && template.names().contains(&node_name));
        if !super::nodes::is_ready(node)
            && !meant_to_fail
            && !objects::is_terminating(node)
            && state.readied_nodes.insert(node_key(node))
        {
            let delay = ctx.profile.node_ready_after.sample(&mut *ctx.rng);
            let at = ctx.now + delay;
            let mut status = super::nodes::ready_status(
                &node_name,
                ctx.node_number(&node_name),
                &ctx.timestamp(at),
            );
            if let Some(existing) = node["status"].as_object() {
                for (key, value) in existing {
                    if key != "conditions" {
                        status[key] = value.clone();
                    }
                }
            }
            if status["allocatable"].is_null() {
                let defaults = json!({"cpu": "4", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"});
                status["capacity"] = defaults.clone();
                status["allocatable"] = defaults;
            }
            ctx.push(at, update_status(node, status));
        }
        // The taint manager evicts pods that do not tolerate a NoExecute taint.
        for pod in &pods_on_node {
            let tolerations = pod["spec"]["tolerations"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            if scheduler::first_untolerated_taint(node, tolerations, &["NoExecute"]).is_some() {
                ctx.push(ctx.now, objects::delete(pod));
            }
        }
    }
    kubelet::retry_unschedulable(ctx, kubelet);
    for daemon_set in ctx.list("apps/v1", "DaemonSet", None) {
        reconcile(ctx, state, &daemon_set);
    }
}

/// The service load-balancer controller (k3s' servicelb, MetalLB, a cloud's): a `LoadBalancer`
/// Service gets an ingress IP, which kstatus and Fleet wait for.
fn on_service(ctx: &mut Ctx<'_>, service: &Value) {
    if service["spec"]["type"] != "LoadBalancer" || objects::is_terminating(service) {
        return;
    }
    if service["status"]["loadBalancer"]["ingress"]
        .as_array()
        .is_some_and(|ingress| !ingress.is_empty())
    {
        return;
    }
    let key = format!(
        "{}/{}",
        objects::namespace(service).unwrap_or_default(),
        objects::name(service)
    );
    let hash = super::naming::fnv64a(key.as_bytes());
    let ip = format!("172.19.{}.{}", (hash >> 8) % 256, hash % 253 + 2);
    let mut status = service["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    status["loadBalancer"] = json!({ "ingress": [{ "ip": ip, "ipMode": "VIP" }] });
    let delay = ctx.profile.controller_delay.sample(&mut *ctx.rng);
    ctx.push(ctx.now + delay, update_status(service, status));
}

/// A dynamic provisioner: every claim is Bound with what it asked for (storage is not simulated).
fn on_claim(ctx: &mut Ctx<'_>, claim: &Value) {
    if objects::is_terminating(claim) || claim["status"]["phase"] == "Bound" {
        return;
    }
    let mut status = json!({
        "phase": "Bound",
        "accessModes": claim["spec"]["accessModes"].as_array().cloned().unwrap_or_else(|| vec![json!("ReadWriteOnce")]),
    });
    if let Some(storage) = claim["spec"]["resources"]["requests"]["storage"].as_str() {
        status["capacity"] = json!({ "storage": storage });
    }
    let delay = ctx.profile.controller_delay.sample(&mut *ctx.rng);
    ctx.push(ctx.now + delay, update_status(claim, status));
}

fn node_key(node: &Value) -> String {
    let uid = objects::uid(node);
    if uid.is_empty() {
        objects::name(node).to_owned()
    } else {
        uid.to_owned()
    }
}

/// The pods a workload controls, in its namespace.
fn owned_pods(ctx: &Ctx<'_>, owner: &Value) -> Vec<Value> {
    let uid = objects::uid(owner);
    let mut pods: Vec<Value> = ctx
        .list("v1", "Pod", objects::namespace(owner))
        .into_iter()
        .filter(|pod| objects::is_controlled_by(pod, uid))
        .collect();
    pods.sort_by(|a, b| objects::name(a).cmp(objects::name(b)));
    pods
}

/// Names already taken in the namespace, so generated names never collide.
fn taken_names(ctx: &Ctx<'_>, namespace: Option<&str>) -> HashSet<String> {
    ctx.list("v1", "Pod", namespace)
        .iter()
        .map(|pod| objects::name(pod).to_owned())
        .collect()
}

fn generated_name(ctx: &mut Ctx<'_>, prefix: &str, taken: &mut HashSet<String>) -> String {
    loop {
        let name = format!("{prefix}{}", random_suffix(&mut *ctx.rng, 5));
        if taken.insert(name.clone()) {
            return name;
        }
    }
}

/// A pod for `owner` from its pod template, with the defaults the API server and its admission
/// plugins fill in.
fn pod_from_template(owner: &Value, name: &str, extra_labels: &[(&str, String)]) -> Value {
    let template = &owner["spec"]["template"];
    let mut labels = template["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (key, value) in extra_labels {
        labels.insert((*key).to_owned(), json!(value));
    }
    let mut metadata = json!({
        "name": name,
        "namespace": objects::namespace(owner),
        "labels": labels,
        "ownerReferences": [objects::owner_reference(owner)],
    });
    if let Some(annotations) = template["metadata"]["annotations"].as_object() {
        metadata["annotations"] = Value::Object(annotations.clone());
    }
    let mut spec = template["spec"].clone();
    if !spec.is_object() {
        spec = json!({});
    }
    let defaults = [
        ("restartPolicy", json!("Always")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("securityContext", json!({})),
        ("enableServiceLinks", json!(true)),
        ("preemptionPolicy", json!("PreemptLowerPriority")),
        ("priority", json!(0)),
    ];
    for (key, value) in defaults {
        if spec[key].is_null() {
            spec[key] = value;
        }
    }
    let service_account = spec["serviceAccountName"]
        .as_str()
        .unwrap_or("default")
        .to_owned();
    spec["serviceAccountName"] = json!(service_account);
    spec["serviceAccount"] = json!(service_account);
    for containers in ["containers", "initContainers"] {
        if let Some(containers) = spec[containers].as_array_mut() {
            for container in containers {
                default_container(container);
            }
        }
    }
    // DefaultTolerationSeconds admission: tolerate a NotReady/unreachable node for 5 minutes.
    let mut tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let tolerated = tolerations
            .iter()
            .any(|toleration| scheduler::tolerates(toleration, key, "", "NoExecute"));
        if !tolerated {
            tolerations.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
    spec["tolerations"] = Value::Array(tolerations);
    json!({ "apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec })
}

fn default_container(container: &mut Value) {
    if !container.is_object() {
        return;
    }
    let image = container["image"].as_str().unwrap_or_default();
    let tag_is_latest = image
        .rsplit('/')
        .next()
        .is_none_or(|last| !last.contains(':') || last.ends_with(":latest"));
    let pull_policy = if tag_is_latest && !image.contains('@') {
        "Always"
    } else {
        "IfNotPresent"
    };
    let defaults = [
        ("imagePullPolicy", json!(pull_policy)),
        ("terminationMessagePath", json!("/dev/termination-log")),
        ("terminationMessagePolicy", json!("File")),
        ("resources", json!({})),
    ];
    for (key, value) in defaults {
        if container[key].is_null() {
            container[key] = value;
        }
    }
}

/// Runs the scheduler check for a pod about to be created; the node to create it on, if any.
/// Pods that fit nowhere are created unbound and left `Unschedulable` by the scheduler loop.
fn place(ctx: &mut Ctx<'_>, pod: &Value) -> Option<String> {
    let profile = ctx.profile;
    let nodes = ctx.nodes().to_vec();
    match scheduler::schedule_pod(pod, &nodes, ctx.usage(), &profile.scheduler) {
        Feasibility::Fits(fits) => {
            let node = scheduler::least_loaded(&fits, ctx.usage())?.clone();
            ctx.usage()
                .entry(node.clone())
                .or_default()
                .add(&scheduler::pod_requests(pod));
            Some(node)
        }
        Feasibility::Unschedulable(_) => None,
    }
}

/// Creates `pod` for `owner` after the controller delay, bound to `node` (or placed by the
/// scheduler check when `node` is None).
fn create_pod(
    ctx: &mut Ctx<'_>,
    state: &mut ControllerState,
    owner: &Value,
    mut pod: Value,
    node: Option<String>,
) {
    let node = node.or_else(|| place(ctx, &pod));
    if let Some(node) = &node {
        pod["spec"]["nodeName"] = json!(node);
    }
    let delay = ctx.profile.controller_delay.sample(&mut *ctx.rng);
    let at = ctx.now + delay;
    state.expect_create(objects::uid(owner), objects::name(&pod), at);
    let scheduled = node.map(|node| {
        let namespace = objects::namespace(&pod).unwrap_or("default");
        (
            pod.clone(),
            format!(
                "Successfully assigned {namespace}/{} to {node}",
                objects::name(&pod)
            ),
        )
    });
    ctx.push(at, Action::Create { object: pod });
    if let Some((pod, message)) = scheduled
        && ctx.profile.events
    {
        let normal = super::events::EventType::Normal;
        super::events::record(
            ctx,
            at,
            &pod,
            normal,
            "Scheduled",
            &message,
            "default-scheduler",
        );
    }
}

fn delete_pod(ctx: &mut Ctx<'_>, state: &mut ControllerState, owner: &Value, pod: &Value) {
    let delay = ctx.profile.controller_delay.sample(&mut *ctx.rng);
    let at = ctx.now + delay;
    state.expect_delete(objects::uid(owner), objects::name(pod), at);
    ctx.push(at, objects::delete(pod));
}

/// Pods to remove first when scaling down: unscheduled, then not ready, then the newest name.
fn deletion_order(pods: &mut [Value]) {
    pods.sort_by_key(|pod| {
        let bound = pod["spec"]["nodeName"]
            .as_str()
            .is_some_and(|node| !node.is_empty());
        (
            bound,
            objects::is_pod_ready(pod),
            std::cmp::Reverse(objects::name(pod).to_owned()),
        )
    });
}

/// Writes `status` now if it differs from what the object has; then, if `compute` gives a
/// different status at the earliest of `wake_at` (availability after minReadySeconds, progress
/// deadlines), schedules that write too, once.
fn write_status(
    ctx: &mut Ctx<'_>,
    state: &mut ControllerState,
    object: &Value,
    status: Value,
    wake_at: Option<Duration>,
    compute: impl Fn(&Ctx<'_>, &Value, Duration) -> Value,
) {
    let uid = objects::uid(object).to_owned();
    if object["status"] != status {
        // Project only from a settled status (the write coming back will call this again), so
        // fewer writes made ahead of time can be overtaken by events.
        ctx.push(ctx.now, update_status(object, status));
        return;
    }
    let Some(at) = wake_at.filter(|at| *at > ctx.now) else {
        state.projections.remove(&uid);
        return;
    };
    let mut projected_object = object.clone();
    projected_object["status"] = status.clone();
    let projected = compute(ctx, &projected_object, at);
    if projected == status {
        return;
    }
    if state
        .projections
        .get(&uid)
        .is_some_and(|(when, planned)| *when == at && *planned == projected)
    {
        return;
    }
    state.projections.insert(uid, (at, projected.clone()));
    ctx.push(at, update_status(object, projected));
}

/// `maxSurge` / `maxUnavailable`: an absolute number or a percentage of `replicas`.
fn int_or_percent(value: &Value, replicas: i64, default_percent: i64, round_up: bool) -> i64 {
    let percent = match value {
        Value::Number(number) => return number.as_i64().unwrap_or(0).max(0),
        Value::String(text) => text
            .strip_suffix('%')
            .and_then(|number| number.parse::<i64>().ok()),
        _ => Some(default_percent),
    };
    let Some(percent) = percent else { return 0 };
    let scaled = replicas.saturating_mul(percent);
    if round_up {
        scaled.saturating_add(99) / 100
    } else {
        scaled / 100
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surge_rounds_up_and_unavailable_rounds_down() {
        assert_eq!(int_or_percent(&json!("25%"), 3, 25, true), 1);
        assert_eq!(int_or_percent(&json!("25%"), 3, 25, false), 0);
        assert_eq!(int_or_percent(&Value::Null, 10, 25, true), 3);
        assert_eq!(int_or_percent(&json!(2), 10, 25, false), 2);
        assert_eq!(int_or_percent(&json!("bogus"), 10, 25, false), 0);
    }

    #[test]
    fn pods_from_templates_get_the_api_server_defaults() {
        let owner = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}},
        });
        let pod = pod_from_template(&owner, "web-abc", &[("pod-template-hash", "abc".into())]);
        assert_eq!(
            pod["metadata"]["labels"],
            json!({"app": "web", "pod-template-hash": "abc"})
        );
        assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(pod["spec"]["restartPolicy"], "Always");
        assert_eq!(pod["spec"]["serviceAccountName"], "default");
        assert_eq!(
            pod["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 2);
    }
}

//! Readiness of one live object, as Fleet's agent summarizes it (`deployer/summary`): a chain
//! of summarizers over the object's conditions, phase and well-known status fields, ending
//! with a kstatus computation (`sigs.k8s.io/cli-utils/pkg/kstatus`) that knows the built-in
//! workload kinds.
//!
//! The result is a [`Summary`]: `state` (lower case), `transitioning`, `error`, `message`.
//! An object is ready when it is neither transitioning nor in error.

use fleet_api::{IgnoreOptions, Summary};
use serde_json::{Map, Value};

/// Condition types whose `Unknown` status means "still working on it", with the state shown
/// meanwhile (`False` means error in that state).
const TRANSITIONING_UNKNOWN: &[(&str, &str)] = &[
    ("Active", "activating"),
    ("AddonDeploy", "provisioning"),
    ("AgentDeployed", "provisioning"),
    ("BackingNamespaceCreated", "configuring"),
    ("Built", "building"),
    ("CertsGenerated", "provisioning"),
    ("ConfigOK", "configuring"),
    ("Created", "creating"),
    ("CreatorMadeOwner", "configuring"),
    ("DefaultNamespaceAssigned", "configuring"),
    ("DefaultNetworkPolicyCreated", "configuring"),
    ("DefaultProjectCreated", "configuring"),
    ("DockerProvisioned", "provisioning"),
    ("Deployed", "deploying"),
    ("Drained", "draining"),
    ("Downloaded", "downloading"),
    ("etcd", "provisioning"),
    ("Inactive", "deactivating"),
    ("Initialized", "initializing"),
    ("Installed", "installing"),
    ("NodesCreated", "provisioning"),
    ("Pending", "pending"),
    ("PodScheduled", "scheduling"),
    ("Provisioned", "provisioning"),
    ("Reconciled", "reconciling"),
    ("Refreshed", "refreshed"),
    ("Registered", "registering"),
    ("Removed", "removing"),
    ("Saved", "saving"),
    ("Updated", "updating"),
    ("Updating", "updating"),
    ("Upgraded", "upgrading"),
    ("Waiting", "waiting"),
    ("InitialRolesPopulated", "activating"),
    ("ScalingActive", "pending"),
    ("AbleToScale", "pending"),
    ("RunCompleted", "running"),
    ("Processed", "processed"),
];

/// Condition types that mean an error when `True`.
const ERROR_TRUE: &[&str] = &[
    "OutOfDisk",
    "MemoryPressure",
    "DiskPressure",
    "NetworkUnavailable",
    "KernelHasNoDeadlock",
    "Unschedulable",
    "ReplicaFailure",
    "Stalled",
];

/// Condition types that mean an error when `False`.
const ERROR_FALSE: &[&str] = &["Failed"];

/// Placeholder state: use the condition's reason as the state.
const REASON: &str = "%REASON%";

/// Condition types that mean "transitioning" when `False` (and error when `Unknown`).
const TRANSITIONING_FALSE: &[(&str, &str)] = &[
    ("Completed", "activating"),
    ("Ready", "unavailable"),
    ("Available", "updating"),
    ("BootstrapReady", REASON),
    ("InfrastructureReady", REASON),
    ("NodeHealthy", REASON),
];

/// Condition types that mean "transitioning" when `True`.
const TRANSITIONING_TRUE: &[(&str, &str)] = &[("Reconciling", "reconciling")];

fn lookup<'a>(table: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    table.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// The value at `path`, if every step is an object key.
fn field<'a>(object: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(object, |v, key| v.get(key))
}

/// A scalar rendered as Fleet's `convert.ToString` does; "" for absent, null or composite values.
fn scalar_string(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn string_at(object: &Value, path: &[&str]) -> String {
    scalar_string(field(object, path))
}

/// A boolean field, accepting `true` and `"true"` like Fleet's `data.Object.Bool`.
fn bool_at(object: &Value, path: &[&str]) -> bool {
    match field(object, path) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// One condition of `status.conditions`, read leniently (missing fields are "").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Condition {
    type_: String,
    status: String,
    reason: String,
    message: String,
}

impl Condition {
    fn from_value(value: &Value) -> Option<Condition> {
        value.as_object()?;
        Some(Condition {
            type_: string_at(value, &["type"]),
            status: string_at(value, &["status"]),
            reason: string_at(value, &["reason"]),
            message: string_at(value, &["message"]),
        })
    }
}

/// `status.conditions`, plus the conditions of the `cattle.io/status` annotation (Rancher
/// objects keep some of their conditions there).
fn conditions(object: &Value) -> Vec<Condition> {
    let mut result: Vec<Condition> = field(object, &["status", "conditions"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Condition::from_value)
        .collect();
    let annotation = string_at(object, &["metadata", "annotations", "cattle.io/status"]);
    if !annotation.is_empty()
        && let Ok(status) = serde_json::from_str::<Value>(&annotation)
    {
        result.extend(
            status
                .get("conditions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Condition::from_value),
        );
    }
    result
}

/// Removes the conditions matched by `ignore.conditions` from `object`'s `status.conditions`.
///
/// An entry matches a condition when every one of its key/value pairs is a string field of
/// the condition with that value (Fleet's `excludeIgnoredConditions`).
pub fn exclude_ignored_conditions(object: &mut Value, ignore: &IgnoreOptions) {
    if ignore.conditions.is_empty() {
        return;
    }
    let Some(list) = object
        .get_mut("status")
        .and_then(|s| s.get_mut("conditions"))
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    list.retain(|condition| {
        let Some(fields) = condition.as_object() else {
            return true;
        };
        !ignore
            .conditions
            .iter()
            .any(|ignored| condition_matches(fields, ignored))
    });
}

fn condition_matches(
    condition: &Map<String, Value>,
    ignored: &std::collections::BTreeMap<String, String>,
) -> bool {
    ignored.len() <= condition.len()
        && ignored
            .iter()
            .all(|(k, v)| condition.get(k).and_then(Value::as_str) == Some(v.as_str()))
}

/// Readiness of `object` after removing the conditions `ignore` matches.
pub fn summarize_with_ignore(object: &Value, ignore: &IgnoreOptions) -> Summary {
    if ignore.conditions.is_empty() {
        return summarize(object);
    }
    let mut object = object.clone();
    exclude_ignored_conditions(&mut object, ignore);
    summarize(&object)
}

/// Readiness of one live object (Fleet's `summary.Summarize`).
pub fn summarize(object: &Value) -> Summary {
    let conditions = conditions(object);
    let mut summary = Summary::default();
    check_status_summary(object, &mut summary);
    check_errors(&conditions, &mut summary);
    check_transitioning(&conditions, &mut summary);
    check_active(object, &mut summary);
    check_phase(object, &mut summary);
    // Fleet's checkInitializing/checkRemoving read Rancher's norman fields
    // (`metadata.created`, `metadata.removed`) that Kubernetes objects never carry.
    let kstatus = compute(object);
    check_standard(object, kstatus.as_ref(), &mut summary);
    check_load_balancer(object, &mut summary);
    kstatus_summarizer(kstatus.as_ref(), &mut summary);

    if summary.state.is_empty() {
        summary.state = "active".into();
    }
    summary.state = summary.state.to_lowercase();
    summary.message = dedup_messages(std::mem::take(&mut summary.message));
    summary
}

/// Trims the messages and drops empty and repeated ones, keeping the first occurrence.
fn dedup_messages(messages: Vec<String>) -> Vec<String> {
    let mut result: Vec<String> = Vec::with_capacity(messages.len());
    for message in messages {
        let message = message.trim();
        if message.is_empty() || result.iter().any(|m| m == message) {
            continue;
        }
        result.push(message.to_string());
    }
    result
}

/// Objects that publish their own summary (`status.display`, else `status.summary`).
fn check_status_summary(object: &Value, summary: &mut Summary) {
    let own = ["display", "summary"]
        .iter()
        .filter_map(|key| field(object, &["status", key]).and_then(Value::as_object))
        .find(|m| !m.is_empty());
    let Some(own) = own else {
        return;
    };
    let own_value = Value::Object(own.clone());
    if let Some(state) = own.get("state") {
        summary.state = scalar_string(Some(state));
    }
    if own.contains_key("transitioning") {
        summary.transitioning = bool_at(&own_value, &["transitioning"]);
    }
    if own.contains_key("error") {
        summary.error = bool_at(&own_value, &["error"]);
    }
    if let Some(message) = own.get("message") {
        summary.message.push(scalar_string(Some(message)));
    }
}

fn check_errors(conditions: &[Condition], summary: &mut Summary) {
    if let Some(c) = conditions.iter().find(|c| {
        (ERROR_FALSE.contains(&c.type_.as_str()) && c.status == "False") || c.reason == "Error"
    }) {
        summary.error = true;
        summary.message.push(c.message.clone());
        if summary.state == "active" || summary.state.is_empty() {
            summary.state = "error".into();
        }
        return;
    }
    if summary.error {
        return;
    }
    for c in conditions {
        if ERROR_TRUE.contains(&c.type_.as_str()) && c.status == "True" {
            summary.error = true;
            summary.message.push(c.message.clone());
        }
    }
}

fn check_transitioning(conditions: &[Condition], summary: &mut Summary) {
    for c in conditions {
        let Some(state) = lookup(TRANSITIONING_UNKNOWN, &c.type_) else {
            continue;
        };
        if c.status == "False" {
            summary.error = true;
            summary.state = state.into();
            summary.message.push(c.message.clone());
        } else if c.status == "Unknown" && summary.state.is_empty() {
            summary.transitioning = true;
            summary.state = state.into();
            summary.message.push(c.message.clone());
        }
    }

    for c in conditions {
        if !summary.state.is_empty() {
            break;
        }
        if let Some(state) = lookup(TRANSITIONING_TRUE, &c.type_)
            && c.status == "True"
        {
            summary.transitioning = true;
            summary.state = state.into();
            summary.message.push(c.message.clone());
        }
    }

    let mut ready_false_message: Option<&str> = None;
    for c in conditions {
        if !summary.state.is_empty() {
            break;
        }
        if c.type_ == "Ready" && c.status == "False" {
            ready_false_message = Some(&c.message);
            continue;
        }
        let Some(state) = lookup(TRANSITIONING_FALSE, &c.type_) else {
            continue;
        };
        let state = if state == REASON {
            c.reason.as_str()
        } else {
            state
        };
        if c.status == "False" {
            summary.transitioning = true;
            summary.state = state.into();
            summary.message.push(c.message.clone());
        } else if c.status == "Unknown" {
            summary.error = true;
            summary.state = state.into();
            summary.message.push(c.message.clone());
        }
    }
    if summary.state.is_empty()
        && let Some(message) = ready_false_message
    {
        summary.transitioning = true;
        summary.state = "unavailable".into();
        summary.message.push(message.to_string());
    }
}

fn check_active(object: &Value, summary: &mut Summary) {
    if !summary.state.is_empty() {
        return;
    }
    match string_at(object, &["spec", "active"]).as_str() {
        "true" => summary.state = "active".into(),
        "false" => summary.state = "inactive".into(),
        _ => {}
    }
}

fn check_phase(object: &Value, summary: &mut Summary) {
    let phase = string_at(object, &["status", "phase"]);
    match phase.as_str() {
        "Succeeded" => {
            summary.state = "succeeded".into();
            summary.transitioning = false;
        }
        "Bound" => {
            summary.state = "bound".into();
            summary.transitioning = false;
        }
        "" => {}
        _ if summary.state.is_empty() => summary.state = phase,
        _ => {}
    }
}

fn check_standard(object: &Value, kstatus: Option<&KStatus>, summary: &mut Summary) {
    if !summary.state.is_empty() || string_at(object, &["type"]).starts_with('/') {
        return;
    }
    let Some(result) = kstatus else {
        return;
    };
    match result.status {
        KStatusKind::InProgress => {
            summary.state = "in-progress".into();
            summary.message.push(result.message.clone());
            summary.transitioning = true;
        }
        KStatusKind::Failed => {
            summary.state = "failed".into();
            summary.message.push(result.message.clone());
            summary.error = true;
        }
        KStatusKind::Current => {
            summary.state = "active".into();
            summary.message.push(result.message.clone());
        }
        KStatusKind::Terminating => {
            summary.state = "removing".into();
            summary.message.push(result.message.clone());
            summary.transitioning = true;
        }
    }
}

fn check_load_balancer(object: &Value, summary: &mut Summary) {
    if !(summary.state == "active" || summary.state.is_empty()) {
        return;
    }
    let is_load_balancer = string_at(object, &["spec", "serviceKind"]) == "LoadBalancer"
        || string_at(object, &["spec", "type"]) == "LoadBalancer";
    if string_at(object, &["kind"]) != "Service" || !is_load_balancer {
        return;
    }
    let has_ingress = field(object, &["status", "loadBalancer", "ingress"])
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if !has_ingress {
        summary.state = "pending".into();
        summary.transitioning = true;
        summary
            .message
            .push("Load balancer is being provisioned".into());
    }
}

/// Folds the kstatus result into the flags, and adds its message with repeated `; `-separated
/// parts removed (Fleet #3042: kstatus repeats the same text for several conditions).
fn kstatus_summarizer(kstatus: Option<&KStatus>, summary: &mut Summary) {
    let Some(result) = kstatus else {
        return;
    };
    match result.status {
        KStatusKind::InProgress | KStatusKind::Terminating => summary.transitioning = true,
        KStatusKind::Failed => summary.error = true,
        KStatusKind::Current => {}
    }
    if result.message.is_empty() {
        return;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in result.message.split("; ") {
        if !parts.contains(&part) {
            parts.push(part);
        }
    }
    summary.message.push(parts.join("; "));
}

/// kstatus' verdict on an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KStatusKind {
    /// Not yet at its desired state.
    InProgress,
    /// Will not reach its desired state without intervention.
    Failed,
    /// At its desired state.
    Current,
    /// Being deleted.
    Terminating,
}

/// kstatus' status and message for an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KStatus {
    /// The verdict.
    pub status: KStatusKind,
    /// Why, e.g. `Available: 1/3`.
    pub message: String,
}

impl KStatus {
    fn new(status: KStatusKind, message: impl Into<String>) -> Self {
        KStatus {
            status,
            message: message.into(),
        }
    }

    fn in_progress(message: impl Into<String>) -> Self {
        KStatus::new(KStatusKind::InProgress, message)
    }

    fn failed(message: impl Into<String>) -> Self {
        KStatus::new(KStatusKind::Failed, message)
    }

    fn current(message: impl Into<String>) -> Self {
        KStatus::new(KStatusKind::Current, message)
    }
}

/// An integer field (kstatus reads only integers; anything else gives the default).
fn int_at(object: &Value, path: &[&str], default: i64) -> i64 {
    field(object, path)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

/// kstatus' `Compute`: deletion, generation and standard conditions first, then the rules of
/// the built-in kind, then a `Ready` condition, else current. `None` when the object is too
/// malformed to judge (kstatus returns an error; Fleet then keeps what it has).
pub fn compute(object: &Value) -> Option<KStatus> {
    if let Some(result) = generic_properties(object)? {
        return Some(result);
    }
    let api_version = string_at(object, &["apiVersion"]);
    let group = api_version
        .split_once('/')
        .map(|(g, _)| g)
        .unwrap_or_default();
    let kind = string_at(object, &["kind"]);
    let conditions = conditions_strict(object)?;
    let by_kind = match (group, kind.as_str()) {
        ("", "Service") => Some(service(object)),
        // kstatus fails on a phase it does not know; Fleet then keeps the other verdicts.
        ("", "Pod") => Some(pod(object, &conditions)?),
        ("", "Secret") | ("", "ConfigMap") | ("batch", "CronJob") => {
            Some(KStatus::current("Resource is always ready"))
        }
        ("", "PersistentVolumeClaim") => Some(pvc(object)),
        ("apps", "StatefulSet") => Some(stateful_set(object)),
        ("apps" | "extensions", "DaemonSet") => Some(daemon_set(object)),
        ("apps" | "extensions", "Deployment") => Some(deployment(object, &conditions)),
        ("apps" | "extensions", "ReplicaSet") => Some(replica_set(object, &conditions)),
        ("policy", "PodDisruptionBudget") => {
            Some(KStatus::current("AllowedDisruptions has been computed."))
        }
        ("batch", "Job") => Some(job(object, &conditions)),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => Some(crd(&conditions)),
        _ => None,
    };
    if let Some(result) = by_kind {
        return Some(result);
    }
    if let Some(ready) = conditions.iter().find(|c| c.type_ == "Ready") {
        match ready.status.as_str() {
            "True" => return Some(KStatus::current("Resource is Ready")),
            "False" | "Unknown" => return Some(KStatus::in_progress(ready.message.clone())),
            _ => {}
        }
    }
    Some(KStatus::current("Resource is current"))
}

/// `status.conditions` as kstatus decodes them: `None` when they are not a list of objects
/// with string fields (kstatus fails to convert such objects).
fn conditions_strict(object: &Value) -> Option<Vec<Condition>> {
    let Some(list) = field(object, &["status", "conditions"]) else {
        return Some(Vec::new());
    };
    if list.is_null() {
        return Some(Vec::new());
    }
    let mut result = Vec::new();
    for c in list.as_array()? {
        let c = c.as_object()?;
        let text = |key: &str| match c.get(key) {
            None | Some(Value::Null) => Some(String::new()),
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => None,
        };
        result.push(Condition {
            type_: text("type")?,
            status: text("status")?,
            reason: text("reason")?,
            message: text("message")?,
        });
    }
    Some(result)
}

/// Deletion in progress, a generation not yet observed, `Reconciling`/`Stalled` conditions.
/// `Some(None)` when none applies; `None` when the object is malformed.
fn generic_properties(object: &Value) -> Option<Option<KStatus>> {
    let deletion = string_at(object, &["metadata", "deletionTimestamp"]);
    if !deletion.is_empty() {
        return Some(Some(KStatus::new(
            KStatusKind::Terminating,
            "Resource scheduled for deletion",
        )));
    }
    if let Some(generation) = field(object, &["metadata", "generation"]) {
        let generation = generation.as_i64()?;
        if let Some(observed) = field(object, &["status", "observedGeneration"]) {
            let observed = observed.as_i64()?;
            if observed != generation {
                let kind = string_at(object, &["kind"]);
                return Some(Some(KStatus::in_progress(format!(
                    "{kind} generation is {generation}, but latest observed generation is {observed}"
                ))));
            }
        }
    }
    for c in conditions_strict(object)? {
        if c.type_ == "Reconciling" && c.status == "True" {
            return Some(Some(KStatus::in_progress(c.message)));
        }
        if c.type_ == "Stalled" && c.status == "True" {
            return Some(Some(KStatus::failed(c.message)));
        }
    }
    Some(None)
}

fn stateful_set(object: &Value) -> KStatus {
    if string_at(object, &["spec", "updateStrategy", "type"]) == "OnDelete" {
        return KStatus::current("StatefulSet is using the ondelete update strategy");
    }
    let spec_replicas = int_at(object, &["spec", "replicas"], 1);
    let ready = int_at(object, &["status", "readyReplicas"], 0);
    let current = int_at(object, &["status", "currentReplicas"], 0);
    let updated = int_at(object, &["status", "updatedReplicas"], 0);
    let status_replicas = int_at(object, &["status", "replicas"], 0);
    let partition = int_at(
        object,
        &["spec", "updateStrategy", "rollingUpdate", "partition"],
        -1,
    );
    if spec_replicas > status_replicas {
        return KStatus::in_progress(format!("Replicas: {status_replicas}/{spec_replicas}"));
    }
    if spec_replicas > ready {
        return KStatus::in_progress(format!("Ready: {ready}/{spec_replicas}"));
    }
    if status_replicas > spec_replicas {
        return KStatus::in_progress(format!(
            "Pending termination: {}",
            status_replicas - spec_replicas
        ));
    }
    if partition != -1 {
        if updated < spec_replicas - partition {
            return KStatus::in_progress(format!(
                "updated: {updated}/{}",
                spec_replicas - partition
            ));
        }
        return KStatus::current(format!("Partition rollout complete. updated: {updated}"));
    }
    if spec_replicas > current {
        return KStatus::in_progress(format!("current: {current}/{spec_replicas}"));
    }
    if string_at(object, &["status", "currentRevision"])
        != string_at(object, &["status", "updateRevision"])
    {
        return KStatus::in_progress("Waiting for updated revision to match current");
    }
    KStatus::current(format!(
        "All replicas scheduled as expected. Replicas: {status_replicas}"
    ))
}

fn deployment(object: &Value, conditions: &[Condition]) -> KStatus {
    // Without a progress deadline the Progressing condition never turns up; do not wait for it.
    let mut progressing = field(object, &["spec", "progressDeadlineSeconds"])
        .and_then(Value::as_i64)
        .is_none_or(|d| d == i64::from(i32::MAX));
    let mut available = false;
    for c in conditions {
        match c.type_.as_str() {
            "Progressing" => {
                if c.reason == "ProgressDeadlineExceeded" {
                    return KStatus::failed("Progress deadline exceeded");
                }
                if c.status == "True" && c.reason == "NewReplicaSetAvailable" {
                    progressing = true;
                }
            }
            "Available" if c.status == "True" => available = true,
            _ => {}
        }
    }
    let spec_replicas = int_at(object, &["spec", "replicas"], 1);
    let status_replicas = int_at(object, &["status", "replicas"], 0);
    let updated = int_at(object, &["status", "updatedReplicas"], 0);
    let ready = int_at(object, &["status", "readyReplicas"], 0);
    let available_replicas = int_at(object, &["status", "availableReplicas"], 0);
    if spec_replicas > status_replicas {
        return KStatus::in_progress(format!("Replicas: {status_replicas}/{spec_replicas}"));
    }
    if spec_replicas > updated {
        return KStatus::in_progress(format!("Updated: {updated}/{spec_replicas}"));
    }
    if status_replicas > spec_replicas {
        return KStatus::in_progress(format!(
            "Pending termination: {}",
            status_replicas - spec_replicas
        ));
    }
    if updated > available_replicas {
        return KStatus::in_progress(format!("Available: {available_replicas}/{updated}"));
    }
    if spec_replicas > ready {
        return KStatus::in_progress(format!("Ready: {ready}/{spec_replicas}"));
    }
    if !progressing {
        return KStatus::in_progress("ReplicaSet not Available");
    }
    if !available {
        return KStatus::in_progress("Deployment not Available");
    }
    KStatus::current(format!(
        "Deployment is available. Replicas: {status_replicas}"
    ))
}

fn replica_set(object: &Value, conditions: &[Condition]) -> KStatus {
    if conditions
        .iter()
        .any(|c| c.type_ == "ReplicaFailure" && c.status == "True")
    {
        return KStatus::in_progress("Replica Failure condition. Check Pods");
    }
    let spec_replicas = int_at(object, &["spec", "replicas"], 1);
    let status_replicas = int_at(object, &["status", "replicas"], 0);
    let ready = int_at(object, &["status", "readyReplicas"], 0);
    let available = int_at(object, &["status", "availableReplicas"], 0);
    let labelled = int_at(object, &["status", "fullyLabeledReplicas"], 0);
    if spec_replicas > labelled {
        return KStatus::in_progress(format!("Labelled: {labelled}/{spec_replicas}"));
    }
    if spec_replicas > available {
        return KStatus::in_progress(format!("Available: {available}/{spec_replicas}"));
    }
    if spec_replicas > ready {
        return KStatus::in_progress(format!("Ready: {ready}/{spec_replicas}"));
    }
    if status_replicas > spec_replicas {
        return KStatus::in_progress(format!(
            "Pending termination: {}",
            status_replicas - spec_replicas
        ));
    }
    KStatus::current(format!(
        "ReplicaSet is available. Replicas: {status_replicas}"
    ))
}

fn daemon_set(object: &Value) -> KStatus {
    let kind = string_at(object, &["kind"]);
    if field(object, &["metadata", "generation"]).is_none() {
        return KStatus::in_progress(format!("{kind} metadata.generation not found"));
    }
    if field(object, &["status", "observedGeneration"]).is_none() {
        return KStatus::in_progress(format!("{kind} status.observedGeneration not found"));
    }
    let desired = int_at(object, &["status", "desiredNumberScheduled"], -1);
    let current = int_at(object, &["status", "currentNumberScheduled"], 0);
    let updated = int_at(object, &["status", "updatedNumberScheduled"], 0);
    let available = int_at(object, &["status", "numberAvailable"], 0);
    let ready = int_at(object, &["status", "numberReady"], 0);
    if desired == -1 {
        return KStatus::in_progress("Missing .status.desiredNumberScheduled");
    }
    if desired > current {
        return KStatus::in_progress(format!("Current: {current}/{desired}"));
    }
    if desired > updated {
        return KStatus::in_progress(format!("Updated: {updated}/{desired}"));
    }
    if desired > available {
        return KStatus::in_progress(format!("Available: {available}/{desired}"));
    }
    if desired > ready {
        return KStatus::in_progress(format!("Ready: {ready}/{desired}"));
    }
    KStatus::current(format!(
        "All replicas scheduled as expected. Replicas: {desired}"
    ))
}

fn pvc(object: &Value) -> KStatus {
    let phase = field(object, &["status", "phase"])
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    if phase != "Bound" {
        return KStatus::in_progress(format!("PVC is not Bound. phase: {phase}"));
    }
    KStatus::current("PVC is Bound")
}

/// How long an unschedulable pod counts as "not yet scheduled" before it is a failure.
const SCHEDULE_WINDOW_SECONDS: i64 = 15;

fn pod(object: &Value, conditions: &[Condition]) -> Option<KStatus> {
    let result = match string_at(object, &["status", "phase"]).as_str() {
        "Succeeded" => KStatus::current("Pod has completed successfully"),
        "Failed" => KStatus::current("Pod has completed, but not successfully"),
        "Running" => {
            let crash_looping = crash_looping_containers(object);
            if conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
            {
                KStatus::current("Pod is Ready")
            } else if !crash_looping.is_empty() {
                KStatus::failed(format!(
                    "Containers in CrashLoop state: {}",
                    crash_looping.join(",")
                ))
            } else {
                KStatus::in_progress("Pod is running but is not Ready")
            }
        }
        "Pending" => {
            let unschedulable = conditions.iter().any(|c| {
                c.type_ == "PodScheduled" && c.status == "False" && c.reason == "Unschedulable"
            });
            if unschedulable {
                let created = field(object, &["metadata", "creationTimestamp"])
                    .and_then(Value::as_str)
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
                let within_window = created.is_none_or(|created| {
                    chrono::Utc::now() - chrono::Duration::seconds(SCHEDULE_WINDOW_SECONDS)
                        < created
                });
                if within_window {
                    KStatus::in_progress("Pod has not been scheduled")
                } else {
                    KStatus::failed("Pod could not be scheduled")
                }
            } else {
                KStatus::in_progress("Pod is in the Pending phase")
            }
        }
        "" => KStatus::in_progress("Pod phase not available"),
        _ => return None,
    };
    Some(result)
}

fn crash_looping_containers(object: &Value) -> Vec<String> {
    field(object, &["status", "containerStatuses"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|cs| {
            field(cs, &["state", "waiting", "reason"]).and_then(Value::as_str)
                == Some("CrashLoopBackOff")
        })
        .filter_map(|cs| cs.get("name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

fn job(object: &Value, conditions: &[Condition]) -> KStatus {
    let parallelism = int_at(object, &["spec", "parallelism"], 1);
    let completions = int_at(object, &["spec", "completions"], parallelism);
    let succeeded = int_at(object, &["status", "succeeded"], 0);
    let active = int_at(object, &["status", "active"], 0);
    let failed = int_at(object, &["status", "failed"], 0);
    let suspended = matches!(field(object, &["spec", "suspend"]), Some(Value::Bool(true)));
    for c in conditions {
        match c.type_.as_str() {
            "Complete" if c.status == "True" => {
                return KStatus::current(format!(
                    "Job Completed. succeeded: {succeeded}/{completions}"
                ));
            }
            "Failed" if c.status == "True" => {
                return KStatus::failed(format!("Job Failed. failed: {failed}/{completions}"));
            }
            "Suspended" if c.status == "True" && suspended => {
                return KStatus::current("Job is suspended");
            }
            _ => {}
        }
    }
    if string_at(object, &["status", "startTime"]).is_empty() {
        return KStatus::in_progress("Job not started");
    }
    KStatus::current(format!(
        "Job in progress. success:{succeeded}, active: {active}, failed: {failed}"
    ))
}

fn service(object: &Value) -> KStatus {
    let service_type = field(object, &["spec", "type"])
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    if service_type == "LoadBalancer" && string_at(object, &["spec", "clusterIP"]).is_empty() {
        return KStatus::in_progress("ClusterIP not set. Service type: LoadBalancer");
    }
    KStatus::current("Service is ready")
}

fn crd(conditions: &[Condition]) -> KStatus {
    for c in conditions {
        if c.type_ == "NamesAccepted" && c.status == "False" {
            return KStatus::failed(c.message.clone());
        }
        if c.type_ == "Established" {
            if c.status == "False" && c.reason != "Installing" {
                return KStatus::failed(c.message.clone());
            }
            if c.status == "True" {
                return KStatus::current("CRD is established");
            }
        }
    }
    KStatus::in_progress("Install in progress")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn deployment(spec_replicas: i64, status: Value) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "generation": 2},
            "spec": {"replicas": spec_replicas},
            "status": status,
        })
    }

    fn available_deployment_status(replicas: i64) -> Value {
        json!({
            "observedGeneration": 2,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                 "message": "Deployment has minimum availability."},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": "ReplicaSet \"web-1\" has successfully progressed."},
            ],
        })
    }

    #[test]
    fn an_available_deployment_is_ready() {
        let s = summarize(&deployment(3, available_deployment_status(3)));
        assert!(s.is_ready(), "{s:?}");
        assert_eq!(s.state, "active");
        assert_eq!(
            s.message,
            vec!["Deployment is available. Replicas: 3".to_string()]
        );
    }

    #[test]
    fn a_deployment_without_minimum_availability_is_progressing_with_fleets_messages() {
        let status = json!({
            "observedGeneration": 2,
            "replicas": 3,
            "updatedReplicas": 3,
            "readyReplicas": 1,
            "availableReplicas": 1,
            "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                 "message": "Deployment does not have minimum availability."},
                {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                 "message": "ReplicaSet \"web-1\" is progressing."},
            ],
        });
        let s = summarize(&deployment(3, status));
        assert!(!s.is_ready());
        assert!(s.transitioning);
        assert!(!s.error);
        assert_eq!(s.state, "updating");
        assert_eq!(
            s.message,
            vec![
                "Deployment does not have minimum availability.".to_string(),
                "Available: 1/3".to_string()
            ]
        );
        assert_eq!(
            s.to_string(),
            "[progressing] Deployment does not have minimum availability., Available: 1/3"
        );
    }

    #[test]
    fn a_deployment_past_its_progress_deadline_failed() {
        let status = json!({
            "observedGeneration": 2,
            "replicas": 1,
            "conditions": [
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                 "message": "ReplicaSet \"web-1\" has timed out progressing."},
            ],
        });
        let s = summarize(&deployment(1, status));
        assert!(s.error);
        assert_eq!(s.state, "failed");
        assert_eq!(s.message, vec!["Progress deadline exceeded".to_string()]);
    }

    #[test]
    fn a_generation_not_yet_observed_is_in_progress() {
        let mut status = available_deployment_status(1);
        status["observedGeneration"] = json!(1);
        let s = summarize(&deployment(1, status));
        assert!(s.transitioning);
        assert_eq!(s.state, "in-progress");
        assert_eq!(
            s.message,
            vec!["Deployment generation is 2, but latest observed generation is 1".to_string()]
        );
    }

    #[test]
    fn a_deployment_that_was_never_observed_waits_for_replicas() {
        let s = summarize(&deployment(2, Value::Null));
        assert!(s.transitioning);
        assert_eq!(s.message, vec!["Replicas: 0/2".to_string()]);
    }

    #[test]
    fn a_scaled_down_deployment_waits_for_extra_pods_to_terminate() {
        let mut status = available_deployment_status(3);
        status["updatedReplicas"] = json!(1);
        let s = summarize(&deployment(1, status));
        assert!(s.transitioning);
        assert_eq!(s.message, vec!["Pending termination: 2".to_string()]);
    }

    fn stateful_set(status: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "ns", "generation": 1},
            "spec": {"replicas": 2},
            "status": status,
        })
    }

    #[test]
    fn a_stateful_set_is_ready_when_all_replicas_run_the_current_revision() {
        let s = summarize(&stateful_set(json!({
            "observedGeneration": 1, "replicas": 2, "readyReplicas": 2,
            "currentReplicas": 2, "updatedReplicas": 2,
            "currentRevision": "db-1", "updateRevision": "db-1",
        })));
        assert!(s.is_ready(), "{s:?}");
        assert_eq!(
            s.message,
            vec!["All replicas scheduled as expected. Replicas: 2".to_string()]
        );
    }

    #[test]
    fn a_stateful_set_with_too_few_ready_replicas_is_progressing() {
        let s = summarize(&stateful_set(json!({
            "observedGeneration": 1, "replicas": 2, "readyReplicas": 1,
        })));
        assert!(s.transitioning);
        assert_eq!(s.message, vec!["Ready: 1/2".to_string()]);
    }

    #[test]
    fn a_stateful_set_mid_revision_change_is_progressing() {
        let s = summarize(&stateful_set(json!({
            "observedGeneration": 1, "replicas": 2, "readyReplicas": 2,
            "currentReplicas": 2, "currentRevision": "db-1", "updateRevision": "db-2",
        })));
        assert!(s.transitioning);
        assert_eq!(
            s.message,
            vec!["Waiting for updated revision to match current".to_string()]
        );
    }

    fn daemon_set(status: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "ns", "generation": 1},
            "spec": {},
            "status": status,
        })
    }

    #[test]
    fn a_daemon_set_is_ready_when_every_node_runs_an_available_pod() {
        let s = summarize(&daemon_set(json!({
            "observedGeneration": 1, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
            "updatedNumberScheduled": 3, "numberAvailable": 3, "numberReady": 3,
        })));
        assert!(s.is_ready(), "{s:?}");
    }

    #[test]
    fn a_daemon_set_with_unavailable_pods_is_progressing() {
        let s = summarize(&daemon_set(json!({
            "observedGeneration": 1, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
            "updatedNumberScheduled": 3, "numberAvailable": 1, "numberReady": 1,
        })));
        assert!(s.transitioning);
        assert_eq!(s.message, vec!["Available: 1/3".to_string()]);
    }

    #[test]
    fn a_daemon_set_without_observed_generation_is_progressing() {
        let s = summarize(&daemon_set(json!({})));
        assert!(s.transitioning);
        assert_eq!(
            s.message,
            vec!["DaemonSet status.observedGeneration not found".to_string()]
        );
    }

    #[test]
    fn a_replica_set_with_too_few_available_pods_is_progressing() {
        let rs = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-1", "namespace": "ns"},
            "spec": {"replicas": 2},
            "status": {"replicas": 2, "fullyLabeledReplicas": 2, "availableReplicas": 1, "readyReplicas": 1},
        });
        let s = summarize(&rs);
        assert!(s.transitioning);
        assert_eq!(s.message, vec!["Available: 1/2".to_string()]);
    }

    fn job(status: Value) -> Value {
        json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "migrate", "namespace": "ns"},
            "spec": {"completions": 1},
            "status": status,
        })
    }

    #[test]
    fn a_completed_job_is_ready() {
        let s = summarize(&job(json!({
            "succeeded": 1, "startTime": "2025-01-01T00:00:00Z",
            "conditions": [{"type": "Complete", "status": "True"}],
        })));
        assert!(s.is_ready(), "{s:?}");
        assert_eq!(s.message, vec!["Job Completed. succeeded: 1/1".to_string()]);
    }

    #[test]
    fn a_failed_job_is_in_error() {
        let s = summarize(&job(json!({
            "failed": 6, "startTime": "2025-01-01T00:00:00Z",
            "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                            "message": "Job has reached the specified backoff limit"}],
        })));
        assert!(s.error);
        assert!(!s.is_ready());
        assert!(
            s.message.contains(&"Job Failed. failed: 6/1".to_string()),
            "{s:?}"
        );
    }

    #[test]
    fn a_job_that_has_not_started_is_progressing() {
        let s = summarize(&job(json!({})));
        assert!(s.transitioning);
        assert_eq!(s.message, vec!["Job not started".to_string()]);
    }

    fn pod(status: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            "status": status,
        })
    }

    #[test]
    fn a_running_ready_pod_is_ready() {
        let s = summarize(&pod(json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
        })));
        assert!(s.is_ready(), "{s:?}");
        assert_eq!(s.state, "running");
    }

    #[test]
    fn a_crash_looping_pod_is_in_error() {
        let s = summarize(&pod(json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "False", "message": "containers with unready status: [c]"}],
            "containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
        })));
        assert!(s.error);
        assert!(s.transitioning);
        assert_eq!(
            s.message,
            vec![
                "containers with unready status: [c]".to_string(),
                "Containers in CrashLoop state: c".to_string()
            ]
        );
    }

    #[test]
    fn a_pending_pod_is_progressing_and_an_unschedulable_old_pod_failed() {
        let s = summarize(&pod(json!({"phase": "Pending"})));
        assert!(s.transitioning);
        assert!(
            s.message
                .contains(&"Pod is in the Pending phase".to_string())
        );

        let s = summarize(&pod(json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                            "message": "0/1 nodes are available"}],
        })));
        assert!(s.error, "{s:?}");
        assert!(
            s.message
                .contains(&"Pod could not be scheduled".to_string())
        );
    }

    #[test]
    fn a_succeeded_pod_is_ready() {
        let s = summarize(&pod(json!({"phase": "Succeeded"})));
        assert!(s.is_ready());
        assert_eq!(s.state, "succeeded");
    }

    fn service(spec: Value, status: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "svc", "namespace": "ns"},
            "spec": spec,
            "status": status,
        })
    }

    #[test]
    fn a_cluster_ip_service_is_ready() {
        let s = summarize(&service(
            json!({"type": "ClusterIP", "clusterIP": "10.0.0.1"}),
            json!({}),
        ));
        assert!(s.is_ready());
        assert_eq!(s.message, vec!["Service is ready".to_string()]);
    }

    #[test]
    fn a_load_balancer_without_ingress_is_pending_until_it_has_one() {
        let s = summarize(&service(
            json!({"type": "LoadBalancer", "clusterIP": "10.0.0.1"}),
            json!({"loadBalancer": {}}),
        ));
        assert!(s.transitioning);
        assert_eq!(s.state, "pending");
        assert!(
            s.message
                .contains(&"Load balancer is being provisioned".to_string())
        );

        let s = summarize(&service(
            json!({"type": "LoadBalancer", "clusterIP": "10.0.0.1"}),
            json!({"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}),
        ));
        assert!(s.is_ready(), "{s:?}");
    }

    fn pvc(phase: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "ns"},
            "spec": {},
            "status": {"phase": phase},
        })
    }

    #[test]
    fn a_bound_pvc_is_ready_and_a_pending_one_is_progressing() {
        let s = summarize(&pvc("Bound"));
        assert!(s.is_ready());
        assert_eq!(s.state, "bound");

        let s = summarize(&pvc("Pending"));
        assert!(s.transitioning);
        assert_eq!(s.state, "pending");
        assert_eq!(
            s.message,
            vec!["PVC is not Bound. phase: Pending".to_string()]
        );
    }

    fn crd(conditions: Value) -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "foos.example.com"},
            "spec": {},
            "status": {"conditions": conditions},
        })
    }

    #[test]
    fn an_established_crd_is_ready() {
        let s = summarize(&crd(json!([
            {"type": "NamesAccepted", "status": "True"},
            {"type": "Established", "status": "True"},
        ])));
        assert!(s.is_ready(), "{s:?}");
        assert_eq!(s.message, vec!["CRD is established".to_string()]);
    }

    #[test]
    fn a_crd_whose_names_conflict_failed_and_an_installing_one_is_progressing() {
        let s = summarize(&crd(json!([
            {"type": "NamesAccepted", "status": "False", "reason": "KindConflict",
             "message": "\"Foo\" is already in use"},
        ])));
        assert!(s.error);
        assert!(s.message.contains(&"\"Foo\" is already in use".to_string()));

        let s = summarize(&crd(json!([])));
        assert!(s.transitioning);
        assert_eq!(s.message, vec!["Install in progress".to_string()]);
    }

    fn custom(conditions: Value) -> Value {
        json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "namespace": "ns", "generation": 3},
            "spec": {},
            "status": {"observedGeneration": 3, "conditions": conditions},
        })
    }

    #[test]
    fn a_custom_object_follows_its_ready_condition() {
        let s = summarize(&custom(json!([{"type": "Ready", "status": "True"}])));
        assert!(s.is_ready());
        assert_eq!(s.message, vec!["Resource is Ready".to_string()]);

        let s = summarize(&custom(json!([
            {"type": "Ready", "status": "False", "reason": "Waiting", "message": "waiting for db"}
        ])));
        assert!(s.transitioning);
        assert_eq!(s.state, "unavailable");
        assert_eq!(s.message, vec!["waiting for db".to_string()]);
    }

    #[test]
    fn a_custom_object_without_conditions_is_current() {
        let s = summarize(&json!({
            "apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w"}, "spec": {},
        }));
        assert!(s.is_ready());
        assert_eq!(s.state, "active");
        assert_eq!(s.message, vec!["Resource is current".to_string()]);
    }

    #[test]
    fn a_stalled_custom_object_failed() {
        let s = summarize(&custom(json!([
            {"type": "Stalled", "status": "True", "reason": "Broken", "message": "cannot pull"}
        ])));
        assert!(s.error);
        assert_eq!(s.message, vec!["cannot pull".to_string()]);
    }

    #[test]
    fn a_custom_object_with_a_lagging_observed_generation_is_in_progress() {
        let mut w = custom(json!([{"type": "Ready", "status": "True"}]));
        w["status"]["observedGeneration"] = json!(2);
        let s = summarize(&w);
        assert!(s.transitioning);
        assert_eq!(
            s.message,
            vec!["Widget generation is 3, but latest observed generation is 2".to_string()]
        );
    }

    #[test]
    fn an_object_being_deleted_is_removing() {
        let s = summarize(&json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "ns", "deletionTimestamp": "2025-01-01T00:00:00Z"},
        }));
        assert!(s.transitioning);
        assert_eq!(s.state, "removing");
        assert_eq!(
            s.message,
            vec!["Resource scheduled for deletion".to_string()]
        );
    }

    #[test]
    fn config_maps_and_secrets_are_always_ready() {
        for kind in ["ConfigMap", "Secret"] {
            let s = summarize(&json!({
                "apiVersion": "v1", "kind": kind, "metadata": {"name": "x", "namespace": "ns"},
            }));
            assert!(s.is_ready(), "{kind}: {s:?}");
            assert_eq!(s.message, vec!["Resource is always ready".to_string()]);
        }
    }

    #[test]
    fn ignored_conditions_do_not_make_an_object_unready() {
        let w = custom(json!([
            {"type": "Ready", "status": "False", "reason": "Waiting", "message": "waiting for db"}
        ]));
        let ignore = IgnoreOptions {
            conditions: vec![BTreeMap::from([
                ("type".to_string(), "Ready".to_string()),
                ("status".to_string(), "False".to_string()),
            ])],
        };
        let s = summarize_with_ignore(&w, &ignore);
        assert!(s.is_ready(), "{s:?}");

        // Every field of the entry must match: a different status keeps the condition.
        let other = IgnoreOptions {
            conditions: vec![BTreeMap::from([
                ("type".to_string(), "Ready".to_string()),
                ("status".to_string(), "Unknown".to_string()),
            ])],
        };
        assert!(!summarize_with_ignore(&w, &other).is_ready());
    }

    #[test]
    fn excluding_ignored_conditions_keeps_the_others() {
        let mut w = custom(json!([
            {"type": "Ready", "status": "False"},
            {"type": "Synced", "status": "True"},
        ]));
        let ignore = IgnoreOptions {
            conditions: vec![BTreeMap::from([("type".to_string(), "Ready".to_string())])],
        };
        exclude_ignored_conditions(&mut w, &ignore);
        assert_eq!(
            w["status"]["conditions"],
            json!([{"type": "Synced", "status": "True"}])
        );
    }

    #[test]
    fn repeated_messages_are_reported_once() {
        // Fleet #3042: the same text from a condition and from kstatus, and repeated parts of
        // one kstatus message, appear once.
        let w = custom(json!([
            {"type": "Ready", "status": "False", "message": "waiting; waiting; for db"}
        ]));
        let s = summarize(&w);
        assert_eq!(
            s.message,
            vec![
                "waiting; waiting; for db".to_string(),
                "waiting; for db".to_string()
            ]
        );
        assert_eq!(
            dedup_messages(vec![" a ".into(), "a".into(), String::new(), "b".into()]),
            vec!["a".to_string(), "b".to_string()]
        );
    }

    fn kstatus_messages(message: &str) -> Summary {
        let mut summary = Summary::default();
        let object = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False", "message": message}
        ]}});
        kstatus_summarizer(compute(&object).as_ref(), &mut summary);
        summary
    }

    #[test]
    fn kstatus_message_parts_are_deduplicated_only_on_the_semicolon_separator() {
        let s = kstatus_messages("message1; message2; message1; message1; message2");
        assert_eq!(s.message, vec!["message1; message2".to_string()]);
        assert!(s.transitioning);
        assert!(!s.error);
        assert_eq!(
            kstatus_messages("message1; message2; message3").message,
            vec!["message1; message2; message3".to_string()]
        );
        for separator in [", ", " ", " , ", "[", "]", "{", "}"] {
            let text = format!("message1{separator}message1");
            assert_eq!(kstatus_messages(&text).message, vec![text]);
        }
        assert!(kstatus_messages("").message.is_empty());
    }

    #[test]
    fn a_pod_that_just_became_unschedulable_is_still_progressing() {
        let mut p = pod(json!({
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
        }));
        p["metadata"]["creationTimestamp"] = json!(chrono::Utc::now().to_rfc3339());
        assert_eq!(
            compute(&p),
            Some(KStatus::in_progress("Pod has not been scheduled"))
        );
    }

    #[test]
    fn a_stateful_set_rolling_out_a_partition_waits_for_the_updated_replicas() {
        let mut sts = stateful_set(json!({
            "observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 0,
        }));
        sts["spec"]["updateStrategy"] = json!({"rollingUpdate": {"partition": 1}});
        assert_eq!(compute(&sts), Some(KStatus::in_progress("updated: 0/1")));
        sts["status"]["updatedReplicas"] = json!(1);
        assert_eq!(
            compute(&sts),
            Some(KStatus::current("Partition rollout complete. updated: 1"))
        );
    }

    #[test]
    fn a_deployment_whose_replica_set_never_became_available_is_progressing() {
        let mut status = available_deployment_status(1);
        status["conditions"] = json!([
            {"type": "Available", "status": "True"},
            {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"},
        ]);
        let mut d = deployment(1, status);
        d["spec"]["progressDeadlineSeconds"] = json!(600);
        assert_eq!(
            compute(&d),
            Some(KStatus::in_progress("ReplicaSet not Available"))
        );
    }

    #[test]
    fn an_object_that_reports_its_own_summary_is_taken_at_its_word() {
        let s = summarize(&json!({
            "apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"},
            "status": {"display": {"state": "Waiting", "transitioning": true, "message": "almost"}},
        }));
        assert!(s.transitioning);
        assert_eq!(s.state, "waiting");
        assert!(s.message.contains(&"almost".to_string()));
    }

    #[test]
    fn a_failed_condition_is_an_error() {
        let s = summarize(&custom(json!([
            {"type": "Failed", "status": "False", "message": "boom"}
        ])));
        assert!(s.error);
        assert_eq!(s.state, "error");
        assert!(s.message.contains(&"boom".to_string()));
    }
}

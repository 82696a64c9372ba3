//! Reading and writing the parts of Kubernetes objects the simulated controllers use.

use std::time::Duration;

use serde_json::{Value, json};

use super::Action;
use super::clock::WallClock;

pub(crate) fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

pub(crate) fn namespace(object: &Value) -> Option<&str> {
    object["metadata"]["namespace"].as_str()
}

pub(crate) fn uid(object: &Value) -> &str {
    object["metadata"]["uid"].as_str().unwrap_or_default()
}

pub(crate) fn generation(object: &Value) -> Option<i64> {
    object["metadata"]["generation"].as_i64()
}

pub(crate) fn labels(object: &Value) -> Option<&serde_json::Map<String, Value>> {
    object["metadata"]["labels"].as_object()
}

pub(crate) fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    labels(object)
        .and_then(|labels| labels.get(key))
        .and_then(Value::as_str)
}

/// The owner reference with `controller: true`.
pub(crate) fn controller_ref(object: &Value) -> Option<&Value> {
    object["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|reference| reference["controller"].as_bool() == Some(true))
}

/// Whether `object` is controlled by the object with this uid.
pub(crate) fn is_controlled_by(object: &Value, owner_uid: &str) -> bool {
    controller_ref(object).is_some_and(|reference| reference["uid"].as_str() == Some(owner_uid))
}

/// The owner reference a controller puts on what it creates.
pub(crate) fn owner_reference(owner: &Value) -> Value {
    json!({
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": name(owner),
        "uid": uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

pub(crate) fn is_terminating(object: &Value) -> bool {
    object["metadata"]["deletionTimestamp"].is_string()
}

pub(crate) fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("")
}

pub(crate) fn is_finished(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// A pod a controller counts as one of its replicas.
pub(crate) fn is_active(pod: &Value) -> bool {
    !is_terminating(pod) && !is_finished(pod)
}

pub(crate) fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|condition| condition["type"] == kind)
}

pub(crate) fn condition_is_true(object: &Value, kind: &str) -> bool {
    condition(object, kind).is_some_and(|condition| condition["status"] == "True")
}

pub(crate) fn is_pod_ready(pod: &Value) -> bool {
    is_active(pod) && condition_is_true(pod, "Ready")
}

/// When the pod last turned Ready, in simulated time.
pub(crate) fn ready_since(pod: &Value, clock: &WallClock) -> Option<Duration> {
    if !is_pod_ready(pod) {
        return None;
    }
    condition(pod, "Ready")
        .and_then(|condition| condition["lastTransitionTime"].as_str())
        .and_then(|timestamp| clock.since_start(timestamp))
        .or(Some(Duration::ZERO))
}

/// Ready for at least `min_ready_seconds` as of `at` (the controllers' "available").
pub(crate) fn is_available(
    pod: &Value,
    min_ready_seconds: u64,
    at: Duration,
    clock: &WallClock,
) -> bool {
    ready_since(pod, clock).is_some_and(|since| later(since, min_ready_seconds) <= at)
}

/// When a ready pod becomes available, if that is still in the future as of `now`.
pub(crate) fn available_at(
    pod: &Value,
    min_ready_seconds: u64,
    now: Duration,
    clock: &WallClock,
) -> Option<Duration> {
    let at = later(ready_since(pod, clock)?, min_ready_seconds);
    (at > now).then_some(at)
}

/// `base` plus `seconds` taken from an object, saturating instead of overflowing.
pub(crate) fn later(base: Duration, seconds: u64) -> Duration {
    base.saturating_add(Duration::from_secs(seconds))
}

/// A status write for `object`, guarded by its current generation.
pub(crate) fn update_status(object: &Value, status: Value) -> Action {
    Action::UpdateStatus {
        api_version: object["apiVersion"].as_str().unwrap_or_default().to_owned(),
        kind: object["kind"].as_str().unwrap_or_default().to_owned(),
        namespace: namespace(object).map(str::to_owned),
        name: name(object).to_owned(),
        status,
        expected_generation: generation(object),
    }
}

/// A merge patch of `object`'s main resource, guarded by its uid.
pub(crate) fn patch(object: &Value, patch: Value) -> Action {
    Action::Patch {
        api_version: object["apiVersion"].as_str().unwrap_or_default().to_owned(),
        kind: object["kind"].as_str().unwrap_or_default().to_owned(),
        namespace: namespace(object).map(str::to_owned),
        name: name(object).to_owned(),
        patch,
        expected_uid: Some(uid(object).to_owned()).filter(|u| !u.is_empty()),
    }
}

pub(crate) fn delete(object: &Value) -> Action {
    Action::Delete {
        api_version: object["apiVersion"].as_str().unwrap_or_default().to_owned(),
        kind: object["kind"].as_str().unwrap_or_default().to_owned(),
        namespace: namespace(object).map(str::to_owned),
        name: name(object).to_owned(),
    }
}

/// A condition as controllers write them. `update_time` adds `lastUpdateTime` (Deployments).
/// If the previous condition had the same status its `lastTransitionTime` is kept; if it also had
/// the same reason and message it is returned unchanged.
pub(crate) fn merged_condition(
    previous: Option<&Value>,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    timestamp: &str,
    update_time: bool,
) -> Value {
    if let Some(previous) = previous
        && previous["status"] == status
        && previous["reason"].as_str().unwrap_or("") == reason
        && previous["message"].as_str().unwrap_or("") == message
    {
        return previous.clone();
    }
    let transition = match previous {
        Some(previous) if previous["status"] == status => previous["lastTransitionTime"].clone(),
        _ => Value::String(timestamp.to_owned()),
    };
    let mut condition = json!({ "type": kind, "status": status });
    if update_time {
        condition["lastUpdateTime"] = json!(timestamp);
    }
    condition["lastTransitionTime"] = transition;
    if !reason.is_empty() {
        condition["reason"] = json!(reason);
    }
    if !message.is_empty() {
        condition["message"] = json!(message);
    }
    condition
}

/// `spec.replicas` (default 1).
pub(crate) fn replicas(object: &Value) -> i64 {
    object["spec"]["replicas"]
        .as_i64()
        .unwrap_or(1)
        .clamp(0, i64::from(i32::MAX))
}

pub(crate) fn min_ready_seconds(object: &Value) -> u64 {
    object["spec"]["minReadySeconds"].as_u64().unwrap_or(0)
}

/// Inserts `value` under `key` unless it is zero (Go's `omitempty` on integer status fields).
pub(crate) fn put_count(status: &mut Value, key: &str, value: i64) {
    if value != 0 {
        status[key] = json!(value);
    }
}

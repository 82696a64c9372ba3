//! Events as the scheduler and kubelet record them (`kubectl describe` shows these).

use std::time::Duration;

use serde_json::{Value, json};

use super::naming::fnv64a;
use super::objects;
use super::{Action, Ctx};

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Normal,
    Warning,
}

/// Records an event about `object` at `at`, if the profile asks for events.
pub(crate) fn record(
    ctx: &mut Ctx<'_>,
    at: Duration,
    object: &Value,
    kind: EventType,
    reason: &str,
    message: &str,
    component: &str,
) {
    if !ctx.profile.events {
        return;
    }
    let name = objects::name(object);
    let namespace = objects::namespace(object).unwrap_or("default");
    let timestamp = ctx.timestamp(at);
    let key = format!("{namespace}/{name}/{reason}/{message}/{}", at.as_nanos());
    let mut involved = json!({
        "apiVersion": object["apiVersion"],
        "kind": object["kind"],
        "name": name,
        "namespace": namespace,
    });
    if !objects::uid(object).is_empty() {
        involved["uid"] = json!(objects::uid(object));
    }
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": { "name": format!("{name}.{:016x}", fnv64a(key.as_bytes())), "namespace": namespace },
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": match kind { EventType::Normal => "Normal", EventType::Warning => "Warning" },
        "source": { "component": component },
        "firstTimestamp": timestamp,
        "lastTimestamp": timestamp,
        "count": 1,
        "reportingComponent": component,
        "reportingInstance": "",
    });
    ctx.push(at, Action::Create { object: event });
}

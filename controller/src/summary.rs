//! Aggregation of BundleDeployment states into a [`BundleSummary`] and Fleet's Ready condition
//! message (`internal/cmd/controller/summary`). Pure functions shared by the bundle, cluster,
//! clustergroup and GitRepo status writers.

use fleet_api::consts::{MAX_NON_READY_RESOURCES, condition};
use fleet_api::{BundleDeployment, BundleState, BundleSummary, GenericCondition, find_condition};

/// The states reported in a Ready message, i.e. every state but Ready.
const NON_READY_STATES: [BundleState; 6] = [
    BundleState::OutOfSync,
    BundleState::NotReady,
    BundleState::WaitApplied,
    BundleState::ErrApplied,
    BundleState::Pending,
    BundleState::Modified,
];

/// How many modified / non-ready resource strings of one deployment go into the message
/// (Fleet's loop stops at index 4).
const MAX_RESOURCE_MESSAGES: usize = 4;

/// Counts `bds` by state (each one also counts as desired-ready), naming each non-ready
/// deployment by its BundleDeployment name; `nonReadyResources` holds at most 10 entries.
/// This is how Fleet summarises the deployments of a GitRepo, a Cluster or a ClusterGroup.
pub fn summarize<'a>(bds: impl IntoIterator<Item = &'a BundleDeployment>) -> BundleSummary {
    let mut summary = BundleSummary::default();
    for bd in bds {
        add_deployment(&mut summary, bd.metadata.name.as_deref().unwrap_or(""), bd);
    }
    summary
}

/// Counts one deployment, named `name` in `nonReadyResources`, into `summary`.
pub fn add_deployment(summary: &mut BundleSummary, name: &str, bd: &BundleDeployment) {
    add_deployment_named(summary, bd, || name.to_string());
}

/// Whether a non-ready deployment counted into `summary` now would still be listed in its
/// `nonReadyResources` (which holds at most [`MAX_NON_READY_RESOURCES`]).
pub fn lists_more_non_ready(summary: &BundleSummary) -> bool {
    summary.non_ready_resources.len() < MAX_NON_READY_RESOURCES
}

/// [`add_deployment`] with the name made only when the deployment is listed in
/// `nonReadyResources`: a bundle summary names deployments by their cluster, a string made
/// for each of thousands of targets on every plan otherwise.
pub fn add_deployment_named(
    summary: &mut BundleSummary,
    bd: &BundleDeployment,
    name: impl FnOnce() -> String,
) {
    let state = bd.state();
    let name = if state != BundleState::Ready && lists_more_non_ready(summary) {
        name()
    } else {
        String::new()
    };
    let (modified, non_ready) = match &bd.status {
        Some(status) => (
            status.modified_status.as_slice(),
            status.non_ready_status.as_slice(),
        ),
        None => (&[][..], &[][..]),
    };
    // The message is kept only with a named entry; most deployments are only counted.
    let message = if name.is_empty() {
        ""
    } else {
        bd.condition_message()
    };
    summary.increment_state(&name, state, message, modified, non_ready);
    summary.desired_ready += 1;
}

/// Fleet's `ReadyMessage` for a GitRepo-like status: non-ready entries are referred to as
/// `Bundle <name>`. Empty when everything is ready.
pub fn ready_message(summary: &BundleSummary) -> String {
    ready_message_for_kind(summary, "Bundle")
}

/// Fleet's `ReadyMessage`: for each non-ready state with a count, the first non-ready
/// resource in that state as `<State>(<count>) [<kind> <name>: <message>]` followed by up to
/// four of its modified and four of its non-ready resource descriptions; all parts sorted and
/// joined with `"; "`. Sorting makes the message independent of the order of the deployments,
/// so the condition does not churn.
pub fn ready_message_for_kind(summary: &BundleSummary, referenced_kind: &str) -> String {
    let mut messages = Vec::new();
    for state in NON_READY_STATES {
        let count = summary.count(state);
        if count <= 0 {
            continue;
        }
        let Some(resource) = summary
            .non_ready_resources
            .iter()
            .find(|r| r.state == Some(state))
        else {
            continue;
        };
        if resource.message.is_empty() {
            messages.push(format!(
                "{state}({count}) [{referenced_kind} {}]",
                resource.name
            ));
        } else {
            messages.push(format!(
                "{state}({count}) [{referenced_kind} {}: {}]",
                resource.name, resource.message
            ));
        }
        messages.extend(
            resource
                .modified_status
                .iter()
                .take(MAX_RESOURCE_MESSAGES)
                .map(ToString::to_string),
        );
        messages.extend(
            resource
                .non_ready_status
                .iter()
                .take(MAX_RESOURCE_MESSAGES)
                .map(ToString::to_string),
        );
    }
    messages.sort();
    messages.join("; ")
}

/// `"<ready>/<desired>"` as shown in `display.readyClusters` / `readyBundles`.
pub fn ready_ratio(ready: i64, desired: i64) -> String {
    format!("{ready}/{desired}")
}

/// The `display.state` of a summary: the highest-ranked non-ready state, or empty.
pub fn display_state(summary: &BundleSummary) -> String {
    summary
        .summary_state()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default()
}

/// Sets (or adds) the condition `type_` in `conditions` to `status`/`message`/`reason`,
/// keeping the transition time when the status did not change. Returns whether anything
/// changed. `now` is an RFC 3339 time, passed in so that callers stay pure and testable.
pub fn set_condition(
    conditions: &mut Vec<GenericCondition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: &str,
) -> bool {
    let status = if status {
        condition::TRUE
    } else {
        condition::FALSE
    };
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if existing.status == status && existing.message == message && existing.reason == reason {
            return false;
        }
        if existing.status != status {
            existing.last_transition_time = now.to_string();
        }
        existing.status = status.to_string();
        existing.reason = reason.to_string();
        existing.message = message.to_string();
        existing.last_update_time = now.to_string();
        return true;
    }
    conditions.push(GenericCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        last_update_time: now.to_string(),
        last_transition_time: now.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
    });
    true
}

/// Fleet's `SetReadyConditions`: `Ready` is True with an empty message when the summary's
/// message is empty, else False with it. Returns whether the conditions changed.
pub fn set_ready_condition(
    conditions: &mut Vec<GenericCondition>,
    referenced_kind: &str,
    summary: &BundleSummary,
    now: &str,
) -> bool {
    let message = ready_message_for_kind(summary, referenced_kind);
    set_condition(
        conditions,
        condition::READY,
        message.is_empty(),
        "",
        &message,
        now,
    )
}

/// Whether the `Ready` condition in `conditions` is True.
pub fn is_ready_condition_true(conditions: &[GenericCondition]) -> bool {
    find_condition(conditions, condition::READY).is_some_and(GenericCondition::is_true)
}

/// The JSON merge patch (RFC 7386) turning `old` into `new`: changed keys with their new
/// value (objects recursively), removed keys as `null`, unchanged keys left out. Status writers
/// send only this, so fields written by others (e.g. the agent's `status.agent`) are never
/// overwritten, and nothing is sent when nothing changed.
pub fn merge_patch_diff(old: &serde_json::Value, new: &serde_json::Value) -> serde_json::Value {
    use serde_json::{Map, Value};
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = Map::new();
            for (k, v) in n {
                match o.get(k) {
                    Some(ov) if ov == v => {}
                    Some(ov @ Value::Object(_)) if v.is_object() => {
                        patch.insert(k.clone(), merge_patch_diff(ov, v));
                    }
                    _ => {
                        patch.insert(k.clone(), v.clone());
                    }
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            Value::Object(patch)
        }
        _ => new.clone(),
    }
}

/// Whether a merge patch from [`merge_patch_diff`] changes nothing.
pub fn is_empty_patch(patch: &serde_json::Value) -> bool {
    patch.as_object().is_some_and(|m| m.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::{
        BundleDeploymentSpec, BundleDeploymentStatus, ModifiedStatus, NonReadyStatus, Summary,
    };

    fn bd(name: &str, applied: &str, ready: bool) -> BundleDeployment {
        let mut bd = BundleDeployment::new(
            name,
            BundleDeploymentSpec {
                deployment_id: "m:1".into(),
                staged_deployment_id: "m:1".into(),
                ..Default::default()
            },
        );
        bd.status = Some(BundleDeploymentStatus {
            applied_deployment_id: applied.into(),
            ready,
            non_modified: true,
            ..Default::default()
        });
        bd
    }

    #[test]
    fn summarize_counts_states_and_desired() {
        let bds = [
            bd("a", "m:1", true),
            bd("b", "m:1", false),
            bd("c", "", false),
        ];
        let summary = summarize(&bds);
        assert_eq!(summary.ready, 1);
        assert_eq!(summary.not_ready, 1);
        assert_eq!(summary.wait_applied, 1);
        assert_eq!(summary.desired_ready, 3);
        let names: Vec<_> = summary
            .non_ready_resources
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["b", "c"]);
        assert_eq!(display_state(&summary), "WaitApplied");
    }

    #[test]
    fn summarize_caps_non_ready_resources_at_ten() {
        let bds: Vec<_> = (0..15).map(|i| bd(&format!("bd{i}"), "", false)).collect();
        let summary = summarize(&bds);
        assert_eq!(summary.wait_applied, 15);
        assert_eq!(summary.non_ready_resources.len(), 10);
    }

    #[test]
    fn ready_message_is_empty_when_ready() {
        let summary = summarize(&[bd("a", "m:1", true)]);
        assert_eq!(ready_message(&summary), "");
    }

    #[test]
    fn ready_message_matches_fleet_format() {
        let mut not_ready = bd("b", "m:1", false);
        let status = not_ready.status.as_mut().unwrap();
        status.conditions.push(GenericCondition {
            type_: "Deployed".into(),
            status: "True".into(),
            message: "deploying".into(),
            ..Default::default()
        });
        status.non_ready_status = (0..6)
            .map(|i| NonReadyStatus {
                kind: "Deployment".into(),
                api_version: "apps/v1".into(),
                namespace: "ns".into(),
                name: format!("d{i}"),
                summary: Summary {
                    state: "in-progress".into(),
                    transitioning: true,
                    ..Default::default()
                },
                ..Default::default()
            })
            .collect();
        let mut modified = bd("c", "m:1", true);
        let status = modified.status.as_mut().unwrap();
        status.non_modified = false;
        status.modified_status = vec![ModifiedStatus {
            kind: "ConfigMap".into(),
            api_version: "v1".into(),
            namespace: "ns".into(),
            name: "cm".into(),
            patch: "{\"data\":null}".into(),
            ..Default::default()
        }];
        let summary = summarize(&[modified, bd("a", "", false), not_ready]);
        assert_eq!(
            ready_message(&summary),
            "Modified(1) [Bundle c]; NotReady(1) [Bundle b: deploying]; \
             WaitApplied(1) [Bundle a]; configmap.v1 ns/cm modified {\"data\":null}; \
             deployment.apps ns/d0 [progressing]; deployment.apps ns/d1 [progressing]; \
             deployment.apps ns/d2 [progressing]; deployment.apps ns/d3 [progressing]"
        );
        assert_eq!(
            ready_message_for_kind(&summary, "Cluster"),
            ready_message(&summary).replace("[Bundle", "[Cluster")
        );
    }

    #[test]
    fn merge_patch_diff_sends_only_changes() {
        let old = serde_json::json!({"a": 1, "b": {"c": 1, "d": 2}, "e": [1], "gone": true});
        let new = serde_json::json!({"a": 1, "b": {"c": 1, "d": 3}, "e": [1, 2]});
        assert_eq!(
            merge_patch_diff(&old, &new),
            serde_json::json!({"b": {"d": 3}, "e": [1, 2], "gone": null})
        );
        assert!(is_empty_patch(&merge_patch_diff(&new, &new)));
    }

    #[test]
    fn set_condition_reports_changes_only() {
        let mut conditions = Vec::new();
        assert!(set_condition(&mut conditions, "Ready", true, "", "", "t1"));
        assert!(!set_condition(&mut conditions, "Ready", true, "", "", "t2"));
        assert!(is_ready_condition_true(&conditions));
        assert!(set_condition(
            &mut conditions,
            "Ready",
            false,
            "",
            "x",
            "t3"
        ));
        assert_eq!(conditions[0].last_transition_time, "t3");
        assert!(set_condition(
            &mut conditions,
            "Ready",
            false,
            "",
            "y",
            "t4"
        ));
        assert_eq!(conditions[0].last_transition_time, "t3");
        assert_eq!(conditions[0].last_update_time, "t4");
    }
}

//! Tests of [`super::evaluate`]: the status fields of a whole BundleDeployment.

use std::collections::BTreeMap;

use fleet_api::{ComparePatch, DiffOptions, Operation};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::*;

fn config_map(name: &str, data: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "ns"},
        "data": data,
    })
}

fn live_config_map(name: &str, data: Value) -> Value {
    let mut cm = config_map(name, data);
    cm["metadata"]["uid"] = json!(format!("uid-{name}"));
    cm["metadata"]["creationTimestamp"] = json!("2025-01-01T00:00:00Z");
    cm
}

/// The live copy of `desired_deployment(name)` with `ready` of its 3 replicas available.
fn deployment(name: &str, ready: i64) -> Value {
    let mut live = desired_deployment(name);
    live["metadata"]["uid"] = json!(format!("uid-{name}"));
    live["metadata"]["generation"] = json!(1);
    let (available, message) = if ready == 3 {
        ("True", "Deployment has minimum availability.")
    } else {
        ("False", "Deployment does not have minimum availability.")
    };
    live["status"] = json!({
        "observedGeneration": 1, "replicas": 3, "updatedReplicas": 3,
        "readyReplicas": ready, "availableReplicas": ready,
        "conditions": [
            {"type": "Available", "status": available, "message": message},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
        ],
    });
    live
}

fn desired_deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"replicas": 3},
    })
}

fn live_map(objects: &[Value]) -> BTreeMap<ObjectKey, Value> {
    objects
        .iter()
        .map(|o| (ObjectKey::from_object(o).unwrap(), o.clone()))
        .collect()
}

fn run(
    desired: &[Value],
    live: &[Value],
    orphans: &[Value],
    options: &BundleDeploymentOptions,
) -> MonitorResult {
    let live = live_map(live);
    evaluate(&MonitorInput {
        desired,
        live: &live,
        orphans,
        options,
    })
}

#[test]
fn object_keys_come_from_api_version_kind_namespace_and_name() {
    let key = ObjectKey::from_object(&config_map("a", json!({}))).unwrap();
    assert_eq!(
        key,
        ObjectKey {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: "ns".into(),
            name: "a".into(),
        }
    );
    let cluster_scoped = ObjectKey::from_object(
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}),
    )
    .unwrap();
    assert_eq!(cluster_scoped.namespace, "");
    assert_eq!(ObjectKey::from_object(&json!({"kind": "ConfigMap"})), None);
}

#[test]
fn a_fully_deployed_and_ready_bundle_is_ready_and_unmodified() {
    let desired = [
        config_map("a", json!({"k": "v"})),
        desired_deployment("web"),
    ];
    let live = [
        live_config_map("a", json!({"k": "v"})),
        deployment("web", 3),
    ];
    let result = run(&desired, &live, &[], &Default::default());
    assert!(result.ready);
    assert!(result.non_modified);
    assert!(!result.incomplete_state);
    assert_eq!(result.ready_message, "");
    assert_eq!(
        result.resource_counts,
        ResourceCounts {
            ready: 2,
            desired_ready: 2,
            ..Default::default()
        }
    );
    let names: Vec<_> = result
        .resources
        .iter()
        .map(|r| format!("{} {} {} {}", r.api_version, r.kind, r.namespace, r.name))
        .collect();
    assert_eq!(
        names,
        vec!["apps/v1 Deployment ns web", "v1 ConfigMap ns a"]
    );
    assert!(result.resources[1].created_at.is_some());
}

#[test]
fn a_deployment_without_minimum_availability_makes_the_bundle_not_ready() {
    let result = run(
        &[desired_deployment("web")],
        &[deployment("web", 1)],
        &[],
        &Default::default(),
    );
    assert!(!result.ready);
    assert!(result.non_modified);
    assert_eq!(result.non_ready_status.len(), 1);
    assert_eq!(result.non_ready_status[0].uid, "uid-web");
    assert_eq!(
        result.ready_message,
        "deployment.apps ns/web [progressing] Deployment does not have minimum availability., Available: 1/3"
    );
    assert_eq!(result.resource_counts.not_ready, 1);
    assert_eq!(result.resource_counts.ready, 0);
}

#[test]
fn missing_orphaned_modified_and_not_ready_objects_are_all_reported_and_counted() {
    let desired = [
        config_map("changed", json!({"k": "v"})),
        config_map("missing", json!({})),
        config_map("same", json!({"k": "v"})),
        desired_deployment("web"),
    ];
    let live = [
        live_config_map("changed", json!({"k": "other"})),
        live_config_map("same", json!({"k": "v"})),
        deployment("web", 0),
    ];
    let orphans = [live_config_map("old", json!({}))];
    let result = run(&desired, &live, &orphans, &Default::default());

    assert!(!result.ready);
    assert!(!result.non_modified);
    let modified: Vec<String> = result
        .modified_status
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        modified,
        vec![
            r#"configmap.v1 ns/changed modified {"data":{"k":"v"}}"#.to_string(),
            "configmap.v1 ns/missing missing".to_string(),
            "configmap.v1 ns/old extra".to_string(),
        ]
    );
    assert_eq!(
        result.resource_counts,
        ResourceCounts {
            ready: 1,
            desired_ready: 4,
            modified: 1,
            orphaned: 1,
            missing: 1,
            not_ready: 1,
            ..Default::default()
        }
    );
    // Not ready comes first in the Ready message.
    assert!(
        result
            .ready_message
            .starts_with("deployment.apps ns/web [progressing]")
    );
}

#[test]
fn a_bundle_that_is_ready_but_modified_names_the_first_modification() {
    let result = run(
        &[config_map("a", json!({"k": "v"}))],
        &[live_config_map("a", json!({"k": "x"}))],
        &[],
        &Default::default(),
    );
    assert!(result.ready);
    assert!(!result.non_modified);
    assert_eq!(
        result.ready_message,
        r#"configmap.v1 ns/a modified {"data":{"k":"v"}}"#
    );
    let missing = run(&[config_map("a", json!({}))], &[], &[], &Default::default());
    assert!(missing.ready);
    assert_eq!(missing.ready_message, "configmap.v1 ns/a missing");
    assert_eq!(missing.resource_counts.desired_ready, 1);
    assert_eq!(missing.resource_counts.missing, 1);
    assert!(missing.resources.is_empty());
}

#[test]
fn lists_are_cut_at_ten_with_incomplete_state_while_counts_stay_complete() {
    let desired: Vec<Value> = (0..12)
        .map(|i| config_map(&format!("cm-{i:02}"), json!({})))
        .collect();
    let result = run(&desired, &[], &[], &Default::default());
    assert_eq!(result.modified_status.len(), 10);
    assert!(result.incomplete_state);
    assert_eq!(result.resource_counts.missing, 12);
    assert_eq!(result.resource_counts.desired_ready, 12);
    let names: Vec<_> = result
        .modified_status
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    let expected: Vec<String> = (0..10).map(|i| format!("cm-{i:02}")).collect();
    assert_eq!(names, expected);

    let desired: Vec<Value> = (0..11)
        .map(|i| desired_deployment(&format!("d{i:02}")))
        .collect();
    let live: Vec<Value> = (0..11)
        .map(|i| deployment(&format!("d{i:02}"), 0))
        .collect();
    let result = run(&desired, &live, &[], &Default::default());
    assert_eq!(result.non_ready_status.len(), 10);
    assert!(result.incomplete_state);
    assert_eq!(result.resource_counts.not_ready, 11);
}

#[test]
fn results_do_not_depend_on_input_order() {
    let mut desired = vec![
        config_map("b", json!({"k": "v"})),
        config_map("a", json!({"k": "v"})),
        config_map("c", json!({})),
        desired_deployment("z"),
        desired_deployment("y"),
    ];
    let live = [
        live_config_map("a", json!({"k": "x"})),
        live_config_map("b", json!({"k": "x"})),
        deployment("z", 1),
        deployment("y", 2),
    ];
    let orphans = vec![
        live_config_map("o2", json!({})),
        live_config_map("o1", json!({})),
    ];
    let first = run(&desired, &live, &orphans, &Default::default());
    desired.reverse();
    let mut reversed_orphans = orphans.clone();
    reversed_orphans.reverse();
    let second = run(&desired, &live, &reversed_orphans, &Default::default());
    assert_eq!(first, second);
    let uids: Vec<_> = first
        .non_ready_status
        .iter()
        .map(|n| n.uid.as_str())
        .collect();
    assert_eq!(uids, vec!["uid-y", "uid-z"]);
}

#[test]
fn an_ignored_object_is_never_missing_or_modified() {
    let ignore = |name: &str| ComparePatch {
        kind: "ConfigMap".into(),
        api_version: "v1".into(),
        namespace: "ns".into(),
        name: name.into(),
        operations: vec![Operation {
            op: "ignore".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let options = BundleDeploymentOptions {
        diff: Some(DiffOptions {
            compare_patches: vec![ignore("gone"), ignore("changed")],
        }),
        ..Default::default()
    };
    let result = run(
        &[
            config_map("gone", json!({})),
            config_map("changed", json!({"k": "v"})),
        ],
        &[live_config_map("changed", json!({"k": "x"}))],
        &[],
        &options,
    );
    assert!(result.non_modified, "{:?}", result.modified_status);
    assert!(result.ready);
    assert_eq!(result.resource_counts.ready, 1);
    assert_eq!(result.resource_counts.desired_ready, 1);
}

#[test]
fn a_compare_patch_makes_a_change_of_that_field_not_a_modification() {
    let options = BundleDeploymentOptions {
        diff: Some(DiffOptions {
            compare_patches: vec![ComparePatch {
                kind: "ConfigMap".into(),
                api_version: "v1".into(),
                namespace: "ns".into(),
                name: "a".into(),
                operations: vec![Operation {
                    op: "remove".into(),
                    path: "/data/k".into(),
                    value: String::new(),
                }],
                ..Default::default()
            }],
        }),
        ..Default::default()
    };
    let result = run(
        &[config_map("a", json!({"k": "v", "keep": "1"}))],
        &[live_config_map("a", json!({"k": "x", "keep": "1"}))],
        &[],
        &options,
    );
    assert!(result.non_modified, "{:?}", result.modified_status);
    // Other fields are still compared.
    let result = run(
        &[config_map("a", json!({"k": "v", "keep": "1"}))],
        &[live_config_map("a", json!({"k": "x", "keep": "2"}))],
        &[],
        &options,
    );
    assert_eq!(result.modified_status[0].patch, r#"{"data":{"keep":"1"}}"#);
}

#[test]
fn ignored_conditions_apply_to_the_whole_bundle() {
    let widget = json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "namespace": "ns", "uid": "w1"},
        "status": {"conditions": [{"type": "Ready", "status": "False", "message": "nope"}]},
    });
    let desired = json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "namespace": "ns"},
    });
    let not_ready = run(
        std::slice::from_ref(&desired),
        std::slice::from_ref(&widget),
        &[],
        &Default::default(),
    );
    assert!(!not_ready.ready);
    assert_eq!(
        not_ready.ready_message,
        "widget.example.com ns/w [progressing] nope"
    );
    let options = BundleDeploymentOptions {
        ignore: fleet_api::IgnoreOptions {
            conditions: vec![BTreeMap::from([("type".to_string(), "Ready".to_string())])],
        },
        ..Default::default()
    };
    let ready = run(&[desired], &[widget], &[], &options);
    assert!(ready.ready, "{:?}", ready.non_ready_status);
}

#[test]
fn a_cluster_scoped_object_rendered_with_a_namespace_is_found_live() {
    let desired = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "namespace": "ns"}});
    let live = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "uid": "n1"},
                      "status": {"phase": "Active"}});
    let result = run(&[desired], &[live], &[], &Default::default());
    assert!(result.non_modified, "{:?}", result.modified_status);
    assert!(result.ready, "{:?}", result.non_ready_status);
    assert_eq!(result.resources[0].namespace, "");
}

#[test]
fn an_orphan_that_is_still_desired_is_not_extra() {
    let cm = live_config_map("a", json!({}));
    let result = run(
        &[config_map("a", json!({}))],
        std::slice::from_ref(&cm),
        std::slice::from_ref(&cm),
        &Default::default(),
    );
    assert!(result.non_modified);
}

#[test]
fn the_ready_message_falls_back_to_fleets_generic_texts() {
    assert_eq!(ready_message(true, true, &[], &[]), "");
    assert_eq!(ready_message(false, true, &[], &[]), "not ready");
    assert_eq!(ready_message(true, false, &[], &[]), "out of sync");
}

#[test]
fn drift_patch_gives_the_patch_unless_the_object_is_ignored() {
    let desired = config_map("a", json!({"k": "v"}));
    let live = live_config_map("a", json!({"k": "x"}));
    assert_eq!(
        drift_patch(&desired, &live, &Default::default()),
        Some(json!({"data": {"k": "v"}}))
    );
    let options = BundleDeploymentOptions {
        diff: Some(DiffOptions {
            compare_patches: vec![ComparePatch {
                kind: "ConfigMap".into(),
                api_version: "v1".into(),
                namespace: "ns".into(),
                name: "a".into(),
                operations: vec![Operation {
                    op: "ignore".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }),
        ..Default::default()
    };
    assert_eq!(drift_patch(&desired, &live, &options), None);
}

#[test]
fn a_live_object_of_another_release_is_missing_and_not_owned_by_us() {
    let with_release = |mut object: Value, release: &str| {
        object["metadata"]["annotations"] = json!({
            "meta.helm.sh/release-name": release,
            "meta.helm.sh/release-namespace": "ns",
        });
        object
    };
    let desired = with_release(config_map("a", json!({"k": "v"})), "mine");
    let ours = with_release(live_config_map("a", json!({"k": "v"})), "mine");
    let result = run(
        std::slice::from_ref(&desired),
        &[ours],
        &[],
        &Default::default(),
    );
    assert!(result.non_modified, "{:?}", result.modified_status);

    let theirs = with_release(live_config_map("a", json!({"k": "v"})), "theirs");
    let result = run(
        std::slice::from_ref(&desired),
        &[theirs],
        &[],
        &Default::default(),
    );
    assert_eq!(result.ready_message, "configmap.v1 ns/a is not owned by us");
    assert!(result.modified_status[0].exist);
    assert_eq!(result.resource_counts.missing, 1);
    assert_eq!(result.resource_counts.desired_ready, 1);
    assert!(result.resources.is_empty());

    let unmarked = live_config_map("a", json!({"k": "v"}));
    let result = run(&[desired], &[unmarked], &[], &Default::default());
    assert!(result.modified_status[0].exist);
}

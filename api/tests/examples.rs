//! One YAML example per kind (written from Fleet's documentation, with v0.12 status blocks)
//! deserialises into its type and serialises back to the same JSON value.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use fleet_api::*;
use kube::Resource;
use pretty_assertions::assert_eq;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn example(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/examples")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parses `file` as `K`, checks the round trip and returns the object.
fn round_trip<K>(file: &str) -> K
where
    K: DeserializeOwned + Serialize + Resource<DynamicType = ()>,
{
    let text = example(file);
    let original: serde_json::Value = serde_norway::from_str(&text).unwrap();
    assert_eq!(original["kind"], K::kind(&()).as_ref(), "{file} kind");
    assert_eq!(original["apiVersion"], "fleet.cattle.io/v1alpha1", "{file}");
    let object: K = parse_yaml(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(serde_json::to_value(&object).unwrap(), original, "{file}");
    object
}

#[test]
fn gitrepo_example_round_trips() {
    let repo: GitRepo = round_trip("gitrepo.yaml");
    assert_eq!(repo.spec.paths.len(), 2);
    assert_eq!(
        repo.spec.polling_interval.and_then(|d| d.to_std()),
        Some(std::time::Duration::from_secs(60))
    );
    let status = repo.status.unwrap();
    assert_eq!(
        status.base.per_cluster_resource_counts["fleet-default/c-2"].not_ready,
        1
    );
    assert_eq!(
        status.base.resources[0].per_cluster_state.not_ready,
        vec!["fleet-default/c-2".to_string()]
    );
    assert_eq!(
        status.base.summary.non_ready_resources[0].state,
        Some(BundleState::NotReady)
    );
}

#[test]
fn bundle_example_round_trips() {
    let bundle: Bundle = round_trip("bundle.yaml");
    let helm = bundle.spec.helm.as_ref().unwrap();
    assert_eq!(helm.values.as_ref().unwrap()["replicas"], 2);
    assert_eq!(bundle.spec.targets[1].cluster_group, "production");
    assert_eq!(
        bundle.spec.deployment_options().target_namespace,
        "app",
        "embedded options"
    );
    assert_eq!(bundle.status.unwrap().max_new, 50);
}

#[test]
fn bundledeployment_example_round_trips() {
    let bd: BundleDeployment = round_trip("bundledeployment.yaml");
    let status = bd.status.unwrap();
    assert_eq!(status.resources[1].created_at, None);
    assert_eq!(
        status.modified_status[1].to_string(),
        "secret.v1 app/extra extra"
    );
}

#[test]
fn cluster_example_round_trips() {
    let cluster: Cluster = round_trip("cluster.yaml");
    assert_eq!(cluster.spec.template_values.unwrap()["region"], "eu-west-1");
}

#[test]
fn clustergroup_example_round_trips() {
    round_trip::<ClusterGroup>("clustergroup.yaml");
}

#[test]
fn clusterregistration_example_round_trips() {
    round_trip::<ClusterRegistration>("clusterregistration.yaml");
}

#[test]
fn clusterregistrationtoken_example_round_trips() {
    let token: ClusterRegistrationToken = round_trip("clusterregistrationtoken.yaml");
    assert_eq!(
        token.spec.ttl.and_then(|d| d.to_std()),
        Some(std::time::Duration::from_secs(240 * 3600))
    );
}

#[test]
fn bundlenamespacemapping_example_round_trips() {
    round_trip::<BundleNamespaceMapping>("bundlenamespacemapping.yaml");
}

#[test]
fn gitreporestriction_example_round_trips() {
    let restriction: GitRepoRestriction = round_trip("gitreporestriction.yaml");
    assert_eq!(restriction.allowed_target_namespaces, vec!["app", "web"]);
}

#[test]
fn content_example_round_trips() {
    let content: Content = round_trip("content.yaml");
    assert_eq!(content.content.unwrap().0.len(), 24);
}

#[test]
fn helmop_example_round_trips() {
    let op: HelmOp = round_trip("helmop.yaml");
    assert_eq!(op.status.unwrap().version, "6.7.1");
    assert_eq!(op.spec.bundle_spec().helm.unwrap().chart, "podinfo");
}

#[test]
fn helmapp_example_round_trips_and_converts_to_helmop() {
    let app: HelmApp = round_trip("helmapp.yaml");
    let op = HelmOp::from(app.clone());
    let value = serde_json::to_value(&op).unwrap();
    assert_eq!(value["kind"], "HelmOp");
    assert_eq!(value["spec"], serde_json::to_value(&app).unwrap()["spec"]);
}

#[test]
fn imagescan_example_round_trips() {
    let scan: ImageScan = round_trip("imagescan.yaml");
    assert_eq!(scan.spec.policy.semver.unwrap().range, ">=1.0.0 <2.0.0");
}

/// Go's `encoding/json`: `omitempty` fields are dropped when empty, other fields always written.
#[test]
fn empty_objects_serialise_like_go() {
    let bundle = Bundle::new("empty", BundleSpec::default());
    assert_eq!(
        serde_json::to_value(&bundle).unwrap(),
        serde_json::json!({
            "apiVersion": "fleet.cattle.io/v1alpha1",
            "kind": "Bundle",
            "metadata": {"name": "empty"},
            "spec": {"ignore": {}},
        })
    );
    assert_eq!(
        serde_json::to_value(BundleStatus::default()).unwrap(),
        serde_json::json!({
            "summary": {"ready": 0, "desiredReady": 0},
            "unavailable": 0,
            "unavailablePartitions": 0,
            "maxUnavailable": 0,
            "maxUnavailablePartitions": 0,
            "display": {},
            "observedGeneration": 0,
        })
    );
    assert_eq!(
        serde_json::to_value(GitRepoStatus::default()).unwrap(),
        serde_json::json!({
            "readyClusters": 0,
            "desiredReadyClusters": 0,
            "summary": {"ready": 0, "desiredReady": 0},
            "display": {},
            "resourceCounts": {
                "ready": 0, "desiredReady": 0, "waitApplied": 0, "modified": 0,
                "orphaned": 0, "missing": 0, "unknown": 0, "notReady": 0,
            },
            "observedGeneration": 0,
            "lastSyncedImageScanTime": null,
            "lastPollingTriggered": null,
        })
    );
    assert_eq!(
        serde_json::to_value(BundleDeploymentSpec::default()).unwrap(),
        serde_json::json!({"stagedOptions": {"ignore": {}}, "options": {"ignore": {}}})
    );
}

/// Go leaves the zero value in place for `null`, and so do these types.
#[test]
fn null_fields_read_as_empty() {
    let repo: GitRepo = parse_yaml(
        "apiVersion: fleet.cattle.io/v1alpha1\nkind: GitRepo\nmetadata: {name: r}\n\
         spec:\n  repo: https://example.com/r\n  branch:\n  paths: null\n  paused: null\n",
    )
    .unwrap();
    assert_eq!(repo.spec.branch, "");
    assert!(repo.spec.paths.is_empty());
    assert_eq!(
        serde_json::to_value(&repo.spec).unwrap(),
        serde_json::json!({"repo": "https://example.com/r"})
    );
}

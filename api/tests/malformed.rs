//! Malformed input gives an error naming the field path, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use fleet_api::*;

const BUNDLE_HEAD: &str =
    "apiVersion: fleet.cattle.io/v1alpha1\nkind: Bundle\nmetadata:\n  name: b\n";

fn bundle_error(spec: &str) -> ApiError {
    let text = format!("{BUNDLE_HEAD}{spec}");
    match parse_yaml::<Bundle>(&text) {
        Ok(bundle) => panic!("parsed {bundle:?}"),
        Err(err) => err,
    }
}

#[test]
fn helm_values_that_are_not_a_map_name_the_path() {
    let err = bundle_error("spec:\n  helm:\n    values: just a string\n");
    assert_eq!(err.path(), "spec.helm.values");
    let message = err.to_string();
    assert!(
        message.starts_with("spec.helm.values: invalid type"),
        "{message}"
    );
}

#[test]
fn wrong_type_in_a_target_names_the_index() {
    let err = bundle_error(
        "spec:\n  targets:\n  - name: ok\n  - name: bad\n    clusterSelector:\n      matchLabels: [a, b]\n",
    );
    assert_eq!(err.path(), "spec.targets[1].clusterSelector.matchLabels");
}

#[test]
fn wrong_scalar_type_names_the_field() {
    let err = bundle_error("spec:\n  helm:\n    timeoutSeconds: soon\n");
    assert_eq!(err.path(), "spec.helm.timeoutSeconds");
    let err = bundle_error("spec:\n  paused: [true]\n");
    assert_eq!(err.path(), "spec.paused");
    let err = bundle_error("spec:\n  rolloutStrategy:\n    maxUnavailable: [1]\n");
    assert_eq!(err.path(), "spec.rolloutStrategy.maxUnavailable");
}

#[test]
fn unknown_bundle_state_names_the_field_and_the_value() {
    let err = bundle_error(
        "spec: {}\nstatus:\n  summary:\n    nonReadyResources:\n    - name: x\n      bundleState: Sleeping\n",
    );
    assert_eq!(
        err.path(),
        "status.summary.nonReadyResources[0].bundleState"
    );
    let message = err.to_string();
    assert!(message.contains("unknown variant `Sleeping`"), "{message}");
    assert!(message.contains("ErrApplied"), "{message}");
}

#[test]
fn invalid_duration_names_the_field() {
    let err = parse_yaml::<GitRepo>(
        "apiVersion: fleet.cattle.io/v1alpha1\nkind: GitRepo\nmetadata: {name: r}\nspec:\n  pollingInterval: 15 seconds\n",
    )
    .unwrap_err();
    assert_eq!(err.path(), "spec.pollingInterval");
    assert!(err.to_string().contains("invalid duration"), "{err}");
}

#[test]
fn top_level_kinds_name_their_fields() {
    let err = parse_yaml::<GitRepoRestriction>(
        "apiVersion: fleet.cattle.io/v1alpha1\nkind: GitRepoRestriction\nmetadata: {name: r}\nallowedServiceAccounts: 5\n",
    )
    .unwrap_err();
    assert_eq!(err.path(), "allowedServiceAccounts");
    let err = parse_yaml::<BundleNamespaceMapping>(
        "apiVersion: fleet.cattle.io/v1alpha1\nkind: BundleNamespaceMapping\nmetadata: {name: m}\nbundleSelector:\n  matchLabels: x\n",
    )
    .unwrap_err();
    assert_eq!(err.path(), "bundleSelector.matchLabels");
}

#[test]
fn missing_spec_and_bad_yaml_are_errors() {
    let err = parse_yaml::<Bundle>(BUNDLE_HEAD).unwrap_err();
    assert!(err.to_string().contains("spec"), "{err}");
    assert!(parse_yaml::<Bundle>("spec: [unclosed\n").is_err());
    assert!(parse_yaml::<Bundle>("").is_err());
}

#[test]
fn json_helpers_name_the_path() {
    let err = parse_json::<Cluster>(
        r#"{"apiVersion":"fleet.cattle.io/v1alpha1","kind":"Cluster","metadata":{"name":"c"},"spec":{"agentTolerations":[{"key":1}]}}"#,
    )
    .unwrap_err();
    assert_eq!(err.path(), "spec.agentTolerations[0].key");
    let err = from_value::<ClusterGroup>(serde_json::json!({
        "metadata": {"name": "g"},
        "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": 3}]}},
    }))
    .unwrap_err();
    assert_eq!(err.path(), "spec.selector.matchExpressions[0].operator");
    assert!(parse_json::<ClusterGroup>(r#"{"metadata":{},"spec":{}} trailing"#).is_err());
}

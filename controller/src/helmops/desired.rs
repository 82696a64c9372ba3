//! What a HelmOp wants to exist, as pure functions: its one Bundle (the inline bundle spec with
//! no resources, the chart version pinned to the resolved one, Fleet's HelmApp options so the
//! agent downloads the chart) and the copies of its repository credentials next to each of its
//! BundleDeployments (Fleet's bundle controller `createDeploymentSecret`).

use std::collections::BTreeMap;

use fleet_api::consts::{API_VERSION, HELM_APP_LABEL};
use fleet_api::{Bundle, BundleDeployment, BundleHelmOptions, BundleTarget, HelmOp};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// Name of the target Fleet gives a HelmOp without targets.
pub const DEFAULT_TARGET_NAME: &str = "default";
/// Cluster group that target selects (every cluster of the namespace).
pub const DEFAULT_CLUSTER_GROUP: &str = "default";

/// The controller owner reference pointing at `kind` `meta` (deleting the owner deletes the
/// dependent through garbage collection).
pub fn owner_reference(kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: API_VERSION.to_string(),
        kind: kind.to_string(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The Bundle of HelmOp `op` (of kind `kind`: `HelmOp` or `HelmApp`), deploying chart
/// version `version`.
pub fn desired_bundle(kind: &str, op: &HelmOp, version: &str) -> Bundle {
    let mut spec = op.spec.bundle_spec();
    let requested = spec
        .helm
        .as_ref()
        .map(|h| h.version.clone())
        .unwrap_or_default();
    let root = spec.helm.as_mut().map(|h| {
        h.version = version.to_string();
        h.clone()
    });
    for (i, target) in spec.targets.iter_mut().enumerate() {
        if target.name.is_empty() {
            target.name = format!("target{i:03}");
        }
        // Fleet's propagateHelmAppProperties: a target's helm options name the same chart, so
        // every cluster downloads the version resolved here.
        if let (Some(root), Some(h)) = (&root, target.helm.as_mut()) {
            if h.repo.is_empty() {
                h.repo = root.repo.clone();
            }
            if h.chart.is_empty() {
                h.chart = root.chart.clone();
            }
            if h.version.is_empty() || h.version == requested {
                h.version = root.version.clone();
            }
        }
    }
    if spec.targets.is_empty() {
        spec.targets = vec![BundleTarget {
            name: DEFAULT_TARGET_NAME.to_string(),
            cluster_group: DEFAULT_CLUSTER_GROUP.to_string(),
            ..Default::default()
        }];
    }
    // No resources: the agent downloads the chart itself.
    spec.resources = Vec::new();
    spec.helm_app_options = Some(BundleHelmOptions {
        secret_name: op.spec.helm_secret_name.clone(),
        insecure_skip_tls_verify: op.spec.insecure_skip_tls_verify,
    });

    let name = op.metadata.name.clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = op.spec.labels.clone();
    labels.insert(HELM_APP_LABEL.to_string(), name.clone());
    let mut bundle = Bundle::new(&name, spec);
    bundle.metadata = ObjectMeta {
        name: Some(name),
        namespace: op.metadata.namespace.clone(),
        labels: Some(labels),
        owner_references: Some(vec![owner_reference(kind, &op.metadata)]),
        ..Default::default()
    };
    bundle
}

/// Why an existing Bundle of the same name cannot be taken over, if it cannot: it belongs to a
/// GitRepo, another HelmOp, or a HelmOp of the other kind.
pub fn foreign_bundle(existing: &Bundle, kind: &str, op: &HelmOp) -> Option<String> {
    let name = op.metadata.name.as_deref().unwrap_or_default();
    let namespace = op.metadata.namespace.as_deref().unwrap_or_default();
    let labelled = existing
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(HELM_APP_LABEL))
        .is_some_and(|v| v == name);
    let controller = existing
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true));
    let ours = match controller {
        Some(r) => r.uid == op.metadata.uid.clone().unwrap_or_default() && r.kind == kind,
        // A Bundle written before owner references (or by Fleet) is ours when labelled.
        None => labelled,
    };
    (!ours).then(|| {
        let owner = controller
            .map(|r| format!("{} {}", r.kind, r.name))
            .unwrap_or_else(|| "something else".to_string());
        format!(
            "Bundle {namespace}/{name} already exists and belongs to {owner}; rename the {kind}"
        )
    })
}

/// `existing` updated to `desired` (spec, labels and owner references), or `None` when it
/// already matches.
pub fn bundle_update(existing: &Bundle, desired: &Bundle) -> Option<Bundle> {
    let same = existing.spec == desired.spec
        && existing.metadata.labels == desired.metadata.labels
        && existing.metadata.owner_references == desired.metadata.owner_references;
    if same {
        return None;
    }
    let mut updated = existing.clone();
    updated.spec = desired.spec.clone();
    updated.metadata.labels = desired.metadata.labels.clone();
    updated.metadata.owner_references = desired.metadata.owner_references.clone();
    Some(updated)
}

/// The copy of the chart repository secret `source` in the namespace of `bd`, owned by `bd`
/// (so it goes away with it). The agent reads it from there.
pub fn secret_copy(source: &Secret, bd: &BundleDeployment) -> Secret {
    // `stringData` is write-only sugar for `data` (an API server that kept it as written
    // would otherwise leave the copy without its credentials).
    let mut data = source.data.clone().unwrap_or_default();
    for (k, v) in source.string_data.iter().flatten() {
        data.insert(k.clone(), k8s_openapi::ByteString(v.clone().into_bytes()));
    }
    Secret {
        metadata: ObjectMeta {
            name: source.metadata.name.clone(),
            namespace: bd.metadata.namespace.clone(),
            owner_references: Some(vec![owner_reference("BundleDeployment", &bd.metadata)]),
            ..Default::default()
        },
        type_: source.type_.clone(),
        data: (!data.is_empty()).then_some(data),
        ..Default::default()
    }
}

/// `existing` updated to carry the data of `desired`, or `None` when it already does.
pub fn secret_update(existing: &Secret, desired: &Secret) -> Option<Secret> {
    if existing.data == desired.data && existing.type_ == desired.type_ {
        return None;
    }
    let mut updated = existing.clone();
    updated.data = desired.data.clone();
    updated.string_data = None;
    Some(updated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(spec: serde_json::Value) -> HelmOp {
        let mut op: HelmOp = serde_json::from_value(json!({
            "apiVersion": "fleet.cattle.io/v1alpha1",
            "kind": "HelmOp",
            "metadata": {"name": "web", "namespace": "fleet-default", "uid": "u1"},
            "spec": spec,
        }))
        .unwrap();
        op.metadata.uid = Some("u1".into());
        op
    }

    #[test]
    fn the_bundle_pins_the_resolved_version_and_has_no_resources() {
        let o = op(json!({
            "helm": {"repo": "http://r", "chart": "web", "version": "~1.2", "values": {"a": 1}},
            "labels": {"team": "x"},
            "helmSecretName": "creds",
            "targets": [
                {"clusterSelector": {"matchLabels": {"env": "dev"}}, "helm": {"values": {"a": 2}}},
                {"name": "prod", "clusterName": "c1"}
            ],
            "keepResources": true,
        }));
        let b = desired_bundle("HelmOp", &o, "1.2.5");
        assert_eq!(b.metadata.name.as_deref(), Some("web"));
        assert_eq!(b.metadata.namespace.as_deref(), Some("fleet-default"));
        let helm = b.spec.helm.clone().unwrap();
        assert_eq!(helm.version, "1.2.5");
        assert_eq!(helm.chart, "web");
        assert!(b.spec.resources.is_empty());
        assert!(b.spec.keep_resources);
        assert_eq!(b.spec.targets[0].name, "target000");
        let t0 = b.spec.targets[0].helm.clone().unwrap();
        assert_eq!(
            (t0.repo.as_str(), t0.chart.as_str(), t0.version.as_str()),
            ("http://r", "web", "1.2.5")
        );
        assert_eq!(b.spec.targets[1].name, "prod");
        assert_eq!(
            b.spec.helm_app_options,
            Some(BundleHelmOptions {
                secret_name: "creds".into(),
                insecure_skip_tls_verify: false
            })
        );
        let labels = b.metadata.labels.clone().unwrap();
        assert_eq!(labels.get(HELM_APP_LABEL).map(String::as_str), Some("web"));
        assert_eq!(labels.get("team").map(String::as_str), Some("x"));
        let owner = &b.metadata.owner_references.clone().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("HelmOp", "u1"));
        assert!(bundle_update(&b, &b).is_none());
        let newer = desired_bundle("HelmOp", &o, "1.2.6");
        assert!(bundle_update(&b, &newer).is_some());
    }

    #[test]
    fn no_targets_means_the_default_cluster_group() {
        let o = op(json!({"helm": {"repo": "http://r", "chart": "web"}}));
        let b = desired_bundle("HelmApp", &o, "2.0.0");
        assert_eq!(b.spec.targets.len(), 1);
        assert_eq!(b.spec.targets[0].cluster_group, "default");
        assert_eq!(
            b.metadata.owner_references.unwrap()[0].kind,
            "HelmApp".to_string()
        );
    }

    #[test]
    fn bundles_of_others_are_not_taken_over() {
        let o = op(json!({"helm": {"repo": "http://r", "chart": "web"}}));
        let ours = desired_bundle("HelmOp", &o, "1.0.0");
        assert_eq!(foreign_bundle(&ours, "HelmOp", &o), None);
        let app = foreign_bundle(&ours, "HelmApp", &o).unwrap();
        assert!(app.contains("belongs to HelmOp web"), "{app}");
        let mut gitrepo_bundle = Bundle::new("web", Default::default());
        gitrepo_bundle.metadata.labels =
            Some([("fleet.cattle.io/repo-name".to_string(), "repo".to_string())].into());
        assert!(foreign_bundle(&gitrepo_bundle, "HelmOp", &o).is_some());
    }

    #[test]
    fn secret_copies_belong_to_the_bundle_deployment() {
        let source: Secret = serde_json::from_value(json!({
            "metadata": {"name": "creds", "namespace": "fleet-default"},
            "type": "kubernetes.io/basic-auth",
            "data": {"username": "dQ==", "password": "cA=="},
        }))
        .unwrap();
        let mut bd = BundleDeployment::new("web", Default::default());
        bd.metadata.namespace = Some("cluster-ns".into());
        bd.metadata.uid = Some("bd-uid".into());
        let copy = secret_copy(&source, &bd);
        assert_eq!(copy.metadata.namespace.as_deref(), Some("cluster-ns"));
        assert_eq!(copy.metadata.name.as_deref(), Some("creds"));
        assert_eq!(copy.data, source.data);
        assert_eq!(
            copy.metadata.owner_references.as_ref().unwrap()[0].uid,
            "bd-uid"
        );
        assert!(secret_update(&copy, &copy).is_none());
        let mut changed = copy.clone();
        changed.data = None;
        assert!(secret_update(&changed, &copy).is_some());
    }
}

//! Merging a bundle's deployment options with the options of the target (customization) that
//! matched a cluster (Fleet's `internal/cmd/controller/options`).

use fleet_api::{BundleDeploymentOptions, GenericMap, HelmOptions, KustomizeOptions};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// Merges `custom` (a target customization) over `base` (the bundle's options), as Fleet does:
///
/// - strings (`defaultNamespace`, `namespace`, `serviceAccount`, helm `repo`, `chart`,
///   `version`, `releaseName`, kustomize `dir`) are replaced when the customization sets them;
/// - helm `values` are deep-merged (maps merge key by key, anything else is replaced),
///   `templateValues` are merged key by key, `valuesFrom` and `diff.comparePatches` and
///   `yaml.overlays` are appended;
/// - helm `timeoutSeconds` is replaced when positive and reset by a negative value;
/// - booleans (`force`, `atomic`, `takeOwnership`, `disablePreProcess`, `waitForJobs`,
///   `disableDNS`, `keepResources`) are OR-ed;
/// - `forceSyncGeneration` is replaced when positive, `correctDrift` when the customization
///   sets it.
///
/// Options Fleet does not merge (namespace labels/annotations, `ignore`, `deleteNamespace`,
/// `deleteCRDResources`, the remaining helm fields) stay as in `base`.
pub fn merge(
    base: &BundleDeploymentOptions,
    custom: &BundleDeploymentOptions,
) -> BundleDeploymentOptions {
    let mut result = base.clone();
    if !custom.default_namespace.is_empty() {
        result.default_namespace = custom.default_namespace.clone();
    }
    if !custom.target_namespace.is_empty() {
        result.target_namespace = custom.target_namespace.clone();
    }
    if !custom.service_account.is_empty() {
        result.service_account = custom.service_account.clone();
    }
    if let Some(custom_helm) = &custom.helm {
        let helm = result.helm.get_or_insert_with(HelmOptions::default);
        merge_helm(helm, custom_helm);
    }
    if let Some(custom_kustomize) = &custom.kustomize {
        let kustomize = result
            .kustomize
            .get_or_insert_with(KustomizeOptions::default);
        if !custom_kustomize.dir.is_empty() {
            kustomize.dir = custom_kustomize.dir.clone();
        }
    }
    if let Some(custom_diff) = &custom.diff {
        let diff = result.diff.get_or_insert_with(Default::default);
        diff.compare_patches
            .extend(custom_diff.compare_patches.iter().cloned());
    }
    if let Some(custom_yaml) = &custom.yaml {
        let yaml = result.yaml.get_or_insert_with(Default::default);
        yaml.overlays.extend(custom_yaml.overlays.iter().cloned());
    }
    if custom.force_sync_generation > 0 {
        result.force_sync_generation = custom.force_sync_generation;
    }
    result.keep_resources = result.keep_resources || custom.keep_resources;
    // An empty `correctDrift: {}` is what Go's older non-pointer field serialised to; it does
    // not override the bundle's setting.
    if let Some(drift) = &custom.correct_drift
        && *drift != Default::default()
    {
        result.correct_drift = Some(drift.clone());
    }
    result
}

fn merge_helm(helm: &mut HelmOptions, custom: &HelmOptions) {
    if custom.timeout_seconds > 0 {
        helm.timeout_seconds = custom.timeout_seconds;
    } else if custom.timeout_seconds < 0 {
        helm.timeout_seconds = 0;
    }
    match (&mut helm.values, &custom.values) {
        (None, custom_values) => helm.values = custom_values.clone(),
        (Some(values), Some(custom_values)) => *values = merge_maps(values, custom_values),
        (Some(_), None) => {}
    }
    for (k, v) in &custom.template_values {
        helm.template_values.insert(k.clone(), v.clone());
    }
    helm.values_from.extend(custom.values_from.iter().cloned());
    if !custom.repo.is_empty() {
        helm.repo = custom.repo.clone();
    }
    if !custom.chart.is_empty() {
        helm.chart = custom.chart.clone();
    }
    if !custom.version.is_empty() {
        helm.version = custom.version.clone();
    }
    if !custom.release_name.is_empty() {
        helm.release_name = custom.release_name.clone();
    }
    helm.force |= custom.force;
    helm.atomic |= custom.atomic;
    helm.take_ownership |= custom.take_ownership;
    helm.disable_pre_process |= custom.disable_pre_process;
    helm.wait_for_jobs |= custom.wait_for_jobs;
    helm.disable_dns |= custom.disable_dns;
}

/// Deep merge of two value maps (wrangler's `data.MergeMaps`): keys of `overlay` win, and when
/// both sides hold a map for a key, the maps are merged recursively.
pub fn merge_maps(base: &GenericMap, overlay: &GenericMap) -> GenericMap {
    let mut result = base.clone();
    for (k, v) in overlay {
        let merged = match (result.get(k), v) {
            (Some(Value::Object(b)), Value::Object(o)) => Value::Object(merge_maps(b, o)),
            _ => v.clone(),
        };
        result.insert(k.clone(), merged);
    }
    result
}

/// The deployment ID of a bundle's options on a cluster: `<manifestID>:<sha256 of the options
/// as JSON>` (Fleet's `options.DeploymentID`). A change of options redeploys.
pub fn deployment_id(manifest_id: &str, options: &BundleDeploymentOptions) -> String {
    let mut json = serde_json::to_vec(options).unwrap_or_default();
    // Go's json.Encoder ends its output with a newline.
    json.push(b'\n');
    format!("{manifest_id}:{}", hex::encode(Sha256::digest(&json)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::{CorrectDrift, YamlOptions};
    use serde_json::json;

    fn map(v: Value) -> GenericMap {
        v.as_object().cloned().unwrap()
    }

    fn helm_with_values(v: Value) -> Option<HelmOptions> {
        Some(HelmOptions {
            values: Some(map(v)),
            ..Default::default()
        })
    }

    #[test]
    fn customization_strings_replace_the_bundle_ones() {
        let base = BundleDeploymentOptions {
            default_namespace: "base".into(),
            service_account: "sa".into(),
            ..Default::default()
        };
        let custom = BundleDeploymentOptions {
            default_namespace: "custom".into(),
            target_namespace: "forced".into(),
            ..Default::default()
        };
        let merged = merge(&base, &custom);
        assert_eq!(merged.default_namespace, "custom");
        assert_eq!(merged.target_namespace, "forced");
        assert_eq!(merged.service_account, "sa");
    }

    #[test]
    fn helm_values_are_deep_merged() {
        let base = BundleDeploymentOptions {
            helm: helm_with_values(json!({"a": {"x": 1, "y": 2}, "list": [1, 2], "keep": true})),
            ..Default::default()
        };
        let custom = BundleDeploymentOptions {
            helm: helm_with_values(json!({"a": {"y": 3}, "list": [3]})),
            ..Default::default()
        };
        let merged = merge(&base, &custom);
        assert_eq!(
            Value::Object(merged.helm.unwrap().values.unwrap()),
            json!({"a": {"x": 1, "y": 3}, "list": [3], "keep": true})
        );
    }

    #[test]
    fn overlays_append_and_booleans_or() {
        let base = BundleDeploymentOptions {
            yaml: Some(YamlOptions {
                overlays: vec!["one".into()],
            }),
            keep_resources: true,
            helm: Some(HelmOptions {
                force: true,
                timeout_seconds: 30,
                ..Default::default()
            }),
            ..Default::default()
        };
        let custom = BundleDeploymentOptions {
            yaml: Some(YamlOptions {
                overlays: vec!["two".into()],
            }),
            helm: Some(HelmOptions {
                atomic: true,
                timeout_seconds: -1,
                ..Default::default()
            }),
            ..Default::default()
        };
        let merged = merge(&base, &custom);
        assert_eq!(merged.yaml.unwrap().overlays, vec!["one", "two"]);
        assert!(merged.keep_resources);
        let helm = merged.helm.unwrap();
        assert!(helm.force && helm.atomic);
        assert_eq!(helm.timeout_seconds, 0);
    }

    #[test]
    fn empty_correct_drift_does_not_override() {
        let enabled = CorrectDrift {
            enabled: true,
            ..Default::default()
        };
        let base = BundleDeploymentOptions {
            correct_drift: Some(enabled.clone()),
            ..Default::default()
        };
        let custom = BundleDeploymentOptions {
            correct_drift: Some(CorrectDrift::default()),
            ..Default::default()
        };
        assert_eq!(merge(&base, &custom).correct_drift, Some(enabled));
    }

    #[test]
    fn deployment_id_changes_with_options() {
        let a = deployment_id("s-abc", &BundleDeploymentOptions::default());
        let b = deployment_id(
            "s-abc",
            &BundleDeploymentOptions {
                default_namespace: "x".into(),
                ..Default::default()
            },
        );
        assert!(a.starts_with("s-abc:"));
        assert_ne!(a, b);
    }
}

//! BundleDeployment (`bundledeployment_types.go`): one Bundle on one cluster, plus the
//! deployment options shared by fleet.yaml, Bundles and target customizations.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bundle::{BundleHelmOptions, BundleRef};
use crate::condition::GenericCondition;
use crate::gitrepo::CorrectDrift;
use crate::resource::ResourceCounts;
use crate::serde_util::{go_generic_map, is_default, nullable, preserve_unknown_object};
use crate::summary::Summary;

/// Free-form map (Go `GenericMap`): Helm values, cluster template values.
pub type GenericMap = serde_json::Map<String, serde_json::Value>;

/// Defines a struct that embeds the fields of [`BundleDeploymentOptions`] inline (Go embeds the
/// struct with `json:",inline"`), followed by its own fields.
///
/// The fields are written out instead of `#[serde(flatten)]` so that deserialisation errors keep
/// their full path (`spec.helm.values`), which serde loses inside flattened structs. The struct
/// gets `deployment_options()` / `set_deployment_options()` to move the embedded part as a whole.
macro_rules! with_deployment_options {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$fmeta:meta])* pub $field:ident : $ty:ty,)*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
    /// Namespace for resources that do not specify one (does not lock the deployment to it).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub default_namespace: String,
    /// Forces every resource into this namespace; cluster-scoped resources fail the deployment.
    #[serde(
        rename = "namespace",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub target_namespace: String,
    /// Kustomize options, like the dir containing the kustomization.yaml file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<$crate::bundledeployment::KustomizeOptions>,
    /// Helm options: chart, repo, values...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helm: Option<$crate::bundledeployment::HelmOptions>,
    /// Service account used for the deployment on the downstream cluster.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub service_account: String,
    /// Increment to force a redeployment.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub force_sync_generation: i64,
    /// Raw YAML overlays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub yaml: Option<$crate::bundledeployment::YamlOptions>,
    /// Ignore runtime modifications of objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<$crate::bundledeployment::DiffOptions>,
    /// Keep the deployed resources when the bundle is removed.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub keep_resources: bool,
    /// Delete the deployed namespace when the bundle is removed.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub delete_namespace: bool,
    /// Conditions to ignore when monitoring the bundle. Go embeds a struct here, so it is
    /// always written (`ignore: {}`).
    #[serde(rename = "ignore", deserialize_with = "nullable")]
    pub ignore: $crate::bundledeployment::IgnoreOptions,
    /// Drift correction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correct_drift: Option<$crate::gitrepo::CorrectDrift>,
    /// Labels added to the namespace Fleet creates.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub namespace_labels: ::std::collections::BTreeMap<String, String>,
    /// Annotations added to the namespace Fleet creates.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub namespace_annotations: ::std::collections::BTreeMap<String, String>,
    /// Delete CRDs (and so every custom resource of them) when the bundle is removed.
    #[serde(rename = "deleteCRDResources", skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub delete_crd_resources: bool,
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $name {
            /// The embedded deployment options, copied out.
            pub fn deployment_options(&self) -> $crate::bundledeployment::BundleDeploymentOptions {
                $crate::bundledeployment::BundleDeploymentOptions {
                    default_namespace: self.default_namespace.clone(),
                    target_namespace: self.target_namespace.clone(),
                    kustomize: self.kustomize.clone(),
                    helm: self.helm.clone(),
                    service_account: self.service_account.clone(),
                    force_sync_generation: self.force_sync_generation.clone(),
                    yaml: self.yaml.clone(),
                    diff: self.diff.clone(),
                    keep_resources: self.keep_resources.clone(),
                    delete_namespace: self.delete_namespace.clone(),
                    ignore: self.ignore.clone(),
                    correct_drift: self.correct_drift.clone(),
                    namespace_labels: self.namespace_labels.clone(),
                    namespace_annotations: self.namespace_annotations.clone(),
                    delete_crd_resources: self.delete_crd_resources.clone(),
                }
            }

            /// Replaces the embedded deployment options.
            pub fn set_deployment_options(
                &mut self,
                options: $crate::bundledeployment::BundleDeploymentOptions,
            ) {
                let $crate::bundledeployment::BundleDeploymentOptions { default_namespace, target_namespace, kustomize, helm, service_account, force_sync_generation, yaml, diff, keep_resources, delete_namespace, ignore, correct_drift, namespace_labels, namespace_annotations, delete_crd_resources } = options;
                self.default_namespace = default_namespace;
                self.target_namespace = target_namespace;
                self.kustomize = kustomize;
                self.helm = helm;
                self.service_account = service_account;
                self.force_sync_generation = force_sync_generation;
                self.yaml = yaml;
                self.diff = diff;
                self.keep_resources = keep_resources;
                self.delete_namespace = delete_namespace;
                self.ignore = ignore;
                self.correct_drift = correct_drift;
                self.namespace_labels = namespace_labels;
                self.namespace_annotations = namespace_annotations;
                self.delete_crd_resources = delete_crd_resources;
            }
        }
    };
}
pub(crate) use with_deployment_options;

/// How a bundle is deployed: namespaces, Helm, kustomize, overlays, diff and drift options.
///
/// Embedded ("inline") in `BundleSpec`, `BundleTarget` and fleet.yaml; see
/// [`with_deployment_options`] for how the embedding structs are defined.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct BundleDeploymentOptions {
    /// Namespace for resources that do not specify one (does not lock the deployment to it).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub default_namespace: String,
    /// Forces every resource into this namespace; cluster-scoped resources fail the deployment.
    #[serde(
        rename = "namespace",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub target_namespace: String,
    /// Kustomize options, like the dir containing the kustomization.yaml file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<KustomizeOptions>,
    /// Helm options: chart, repo, values...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmOptions>,
    /// Service account used for the deployment on the downstream cluster.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub service_account: String,
    /// Increment to force a redeployment.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub force_sync_generation: i64,
    /// Raw YAML overlays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub yaml: Option<YamlOptions>,
    /// Ignore runtime modifications of objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<DiffOptions>,
    /// Keep the deployed resources when the bundle is removed.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub keep_resources: bool,
    /// Delete the deployed namespace when the bundle is removed.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub delete_namespace: bool,
    /// Conditions to ignore when monitoring the bundle. Go embeds a struct here, so it is
    /// always written (`ignore: {}`).
    #[serde(rename = "ignore", deserialize_with = "nullable")]
    pub ignore: IgnoreOptions,
    /// Drift correction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correct_drift: Option<CorrectDrift>,
    /// Labels added to the namespace Fleet creates.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub namespace_labels: BTreeMap<String, String>,
    /// Annotations added to the namespace Fleet creates.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub namespace_annotations: BTreeMap<String, String>,
    /// Delete CRDs (and so every custom resource of them) when the bundle is removed.
    #[serde(
        rename = "deleteCRDResources",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub delete_crd_resources: bool,
}

/// Options to ignore modifications of deployed objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct DiffOptions {
    /// Patches that match a resource and remove fields, or the resource, from the modified check.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub compare_patches: Vec<ComparePatch>,
}

/// Matches a resource and removes fields from the check for modifications.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct ComparePatch {
    /// Kind of the resource to match.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub kind: String,
    /// apiVersion of the resource to match.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub api_version: String,
    /// Namespace of the resource to match.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub namespace: String,
    /// Name of the resource to match.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub name: String,
    /// JSON patch operations applied before comparing (`remove`, or `ignore` for the whole object).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub operations: Vec<Operation>,
    /// JSON pointers whose differences are ignored.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub json_pointers: Vec<String>,
}

/// One operation of a [`ComparePatch`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct Operation {
    /// Usually `remove`, or `ignore` ([`crate::consts::IGNORE_OP`]).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub op: String,
    /// JSON path to remove; not needed for `ignore`.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub path: String,
    /// Usually empty.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub value: String,
}

/// Raw YAML overlays: names of folders under `overlays/`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct YamlOptions {
    /// Overlay names, applied in order.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub overlays: Vec<String>,
}

/// Kustomize options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct KustomizeOptions {
    /// Folder containing the kustomization.yaml file.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub dir: String,
}

/// Helm options of a deployment. Every bundle becomes a Helm release; some options only
/// matter for Helm chart bundles.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct HelmOptions {
    /// Chart: a go-getter URL, an OCI reference, a path, or a chart name in `repo`.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub chart: String,
    /// HTTPS Helm repository to download the chart from.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub repo: String,
    /// Release name (default: derived from the GitRepo name and path).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    #[schemars(
        length(max = 53),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub release_name: String,
    /// Chart version (a semver constraint for repository charts).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub version: String,
    /// Time to wait for Helm operations.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub timeout_seconds: i64,
    /// Values passed to Helm; keys and values may be Go templates.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "go_generic_map"
    )]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub values: Option<GenericMap>,
    /// Values templated one key at a time before being merged over `values`.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub template_values: BTreeMap<String, String>,
    /// Values loaded from ConfigMaps and Secrets on the downstream cluster.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub values_from: Vec<ValuesFrom>,
    /// Override immutable resources (dangerous).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub force: bool,
    /// Skip Helm's ownership-annotation check.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub take_ownership: bool,
    /// Maximum number of revisions kept per release.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub max_history: i64,
    /// Files (in the bundle) to load values from.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub values_files: Vec<String>,
    /// With `timeoutSeconds`, wait for Jobs to complete before reporting ready.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub wait_for_jobs: bool,
    /// Helm `--atomic` on upgrades.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub atomic: bool,
    /// Do not render Go templates in `values`.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub disable_pre_process: bool,
    /// Disable DNS lookups in templates (Fleet enables them by default).
    #[serde(
        rename = "disableDNS",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub disable_dns: bool,
    /// Skip validation of values against the chart's schema.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub skip_schema_validation: bool,
    /// Do not update chart dependencies.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub disable_dependency_update: bool,
}

/// Conditions to ignore when monitoring a bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct IgnoreOptions {
    /// Each map matches a condition by its fields (e.g. `type: Ready, status: "False"`).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub conditions: Vec<BTreeMap<String, String>>,
}

/// Helm values from a ConfigMap or Secret key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct ValuesFrom {
    /// A ConfigMap key with values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<ConfigMapKeySelector>,
    /// A Secret key with values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeySelector>,
}

/// A key of a ConfigMap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct ConfigMapKeySelector {
    /// Name of the ConfigMap (always written, as in Go).
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Namespace of the ConfigMap.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub namespace: String,
    /// Key holding a values YAML document.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub key: String,
}

/// A key of a Secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct SecretKeySelector {
    /// Name of the Secret (always written, as in Go).
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// Namespace of the Secret.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub namespace: String,
    /// Key holding a values YAML document.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub key: String,
}

/// Spec of a BundleDeployment. The controller writes the staged options; the rollout logic
/// promotes them to the current ones.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "fleet.cattle.io",
    version = "v1alpha1",
    kind = "BundleDeployment",
    doc = "A Bundle deployed to one cluster, with that cluster's customizations; the only kind the agent of that cluster reads.",
    namespaced,
    status = "BundleDeploymentStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "Deployed",
        type_ = "string",
        json_path = ".status.display.deployed"
    ),
    printcolumn(
        name = "Monitored",
        type_ = "string",
        json_path = ".status.display.monitored"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].message"#
    )
)]
#[serde(default, rename_all = "camelCase")]
pub struct BundleDeploymentSpec {
    /// Stop updating; changes are reported as out of sync.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub paused: bool,
    /// Options staged for the next deployment.
    #[serde(deserialize_with = "nullable")]
    pub staged_options: BundleDeploymentOptions,
    /// ID of the staged deployment.
    #[serde(
        rename = "stagedDeploymentID",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub staged_deployment_id: String,
    /// Options of the current deployment.
    #[serde(deserialize_with = "nullable")]
    pub options: BundleDeploymentOptions,
    /// ID of the current deployment: `<manifest id>:<options hash>`.
    #[serde(
        rename = "deploymentID",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub deployment_id: String,
    /// Bundles that must be ready first.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub depends_on: Vec<BundleRef>,
    /// Drift correction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correct_drift: Option<CorrectDrift>,
    /// The contents are stored in an OCI registry.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub oci_contents: bool,
    /// Set when the contents are downloaded from a Helm chart (HelmApp bundles).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub helm_chart_options: Option<BundleHelmOptions>,
}

/// Metadata of a deployed resource, from the Helm release.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct BundleDeploymentResource {
    /// Kind of the resource.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub kind: String,
    /// API version of the resource.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub api_version: String,
    /// Namespace of the resource.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub namespace: String,
    /// Name of the resource.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub name: String,
    /// Creation time; Go writes `null` when unset.
    pub created_at: Option<Time>,
}

/// Status of a BundleDeployment, written by the agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct BundleDeploymentStatus {
    /// Conditions: Ready, Installed, Deployed, Monitored.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub conditions: Vec<GenericCondition>,
    /// Deployment ID the agent applied last.
    #[serde(
        rename = "appliedDeploymentID",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub applied_deployment_id: String,
    /// Helm release ID.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub release: String,
    /// All resources are ready.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub ready: bool,
    /// No resource was modified.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub non_modified: bool,
    /// Non-ready resources (at most 10).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub non_ready_status: Vec<NonReadyStatus>,
    /// Modified resources (at most 10).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub modified_status: Vec<ModifiedStatus>,
    /// The lists above were truncated.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub incomplete_state: bool,
    /// Human readable summary.
    #[serde(deserialize_with = "nullable")]
    pub display: BundleDeploymentDisplay,
    /// The `forceSyncGeneration` last deployed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_generation: Option<i64>,
    /// Resources deployed according to the Helm release.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub resources: Vec<BundleDeploymentResource>,
    /// Resources per state.
    #[serde(deserialize_with = "nullable")]
    pub resource_counts: ResourceCounts,
}

/// `status.display` of a BundleDeployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct BundleDeploymentDisplay {
    /// Deployed condition summary.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub deployed: String,
    /// Monitored condition summary.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub monitored: String,
    /// Bundle state of this deployment.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub state: String,
}

/// A deployed resource that is not ready.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct NonReadyStatus {
    /// UID of the object.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub uid: String,
    /// Kind of the object.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub kind: String,
    /// API version of the object.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub api_version: String,
    /// Namespace of the object.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub namespace: String,
    /// Name of the object.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub name: String,
    /// Readiness summary.
    #[serde(deserialize_with = "nullable")]
    pub summary: Summary,
}

/// A deployed resource that differs from the bundle: missing, extra, not owned, or patched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct ModifiedStatus {
    /// Kind of the object.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub kind: String,
    /// API version of the object.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub api_version: String,
    /// Namespace of the object.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub namespace: String,
    /// Name of the object.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub name: String,
    /// The object must be created (Go field `Create`).
    #[serde(
        rename = "missing",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub create: bool,
    /// The object exists but is owned by another bundle.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub exist: bool,
    /// The object must be deleted.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub delete: bool,
    /// JSON merge patch from the desired to the live object.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub patch: String,
}

impl BundleDeployment {
    /// Fleet's `GetDeploymentState`: the bundle state of this deployment.
    ///
    /// Not yet applied → ErrApplied when the `Deployed` condition is False, else WaitApplied;
    /// then NotReady, OutOfSync (staged differs from current), Modified, Ready.
    pub fn state(&self) -> crate::state::BundleState {
        use crate::state::BundleState;
        let default_status = BundleDeploymentStatus::default();
        let status = self.status.as_ref().unwrap_or(&default_status);
        if status.applied_deployment_id != self.spec.deployment_id {
            let deployed_false = crate::condition::find_condition(
                &status.conditions,
                crate::consts::condition::DEPLOYED,
            )
            .is_some_and(|c| c.is_false());
            return if deployed_false {
                BundleState::ErrApplied
            } else {
                BundleState::WaitApplied
            };
        }
        if !status.ready {
            BundleState::NotReady
        } else if self.spec.deployment_id != self.spec.staged_deployment_id {
            BundleState::OutOfSync
        } else if !status.non_modified {
            BundleState::Modified
        } else {
            BundleState::Ready
        }
    }

    /// Fleet's `MessageFromDeployment`: the message of the first of the Deployed, Installed
    /// and Monitored conditions that has one.
    pub fn condition_message(&self) -> &str {
        let Some(status) = &self.status else {
            return "";
        };
        [
            crate::consts::condition::DEPLOYED,
            crate::consts::condition::INSTALLED,
            crate::consts::condition::MONITORED,
        ]
        .into_iter()
        .filter_map(|t| crate::condition::find_condition(&status.conditions, t))
        .map(|c| c.message.as_str())
        .find(|m| !m.is_empty())
        .unwrap_or("")
    }
}

/// Fleet's object naming in status messages: `kind.group ns/name` (`kind ns/name` for core).
pub fn object_display_name(api_version: &str, kind: &str, namespace: &str, name: &str) -> String {
    let kind = kind.to_lowercase();
    let object = if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    };
    if api_version.is_empty() {
        return format!("{kind} {object}");
    }
    // Core resources ("v1") print as "kind.v1"; Fleet takes whatever precedes the first '/'.
    let group = api_version.split('/').next().unwrap_or(api_version);
    format!("{kind}.{group} {object}")
}

impl fmt::Display for NonReadyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            object_display_name(&self.api_version, &self.kind, &self.namespace, &self.name),
            self.summary
        )
    }
}

impl fmt::Display for ModifiedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = object_display_name(&self.api_version, &self.kind, &self.namespace, &self.name);
        if self.create {
            if self.exist {
                write!(f, "{name} is not owned by us")
            } else {
                write!(f, "{name} missing")
            }
        } else if self.delete {
            write!(f, "{name} extra")
        } else {
            write!(f, "{name} modified {}", self.patch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::BundleState;

    fn bd(
        deployment: &str,
        staged: &str,
        applied: &str,
        ready: bool,
        non_modified: bool,
    ) -> BundleDeployment {
        let mut bd = BundleDeployment::new(
            "bd",
            BundleDeploymentSpec {
                deployment_id: deployment.into(),
                staged_deployment_id: staged.into(),
                ..Default::default()
            },
        );
        bd.status = Some(BundleDeploymentStatus {
            applied_deployment_id: applied.into(),
            ready,
            non_modified,
            ..Default::default()
        });
        bd
    }

    #[test]
    fn deployment_state_follows_fleets_order() {
        assert_eq!(
            bd("a", "a", "old", true, true).state(),
            BundleState::WaitApplied
        );
        let mut failed = bd("a", "a", "old", true, true);
        if let Some(status) = failed.status.as_mut() {
            status.conditions.push(crate::GenericCondition {
                message: "boom".into(),
                ..crate::GenericCondition::new("Deployed", "False")
            });
        }
        assert_eq!(failed.state(), BundleState::ErrApplied);
        assert_eq!(failed.condition_message(), "boom");
        assert_eq!(
            bd("a", "a", "a", false, true).state(),
            BundleState::NotReady
        );
        assert_eq!(
            bd("a", "b", "a", true, true).state(),
            BundleState::OutOfSync
        );
        assert_eq!(
            bd("a", "a", "a", true, false).state(),
            BundleState::Modified
        );
        assert_eq!(bd("a", "a", "a", true, true).state(), BundleState::Ready);
        let no_status = BundleDeployment::new("x", BundleDeploymentSpec::default());
        assert_eq!(no_status.state(), BundleState::NotReady);
    }

    #[test]
    fn modified_status_strings_match_fleet() {
        let mut m = ModifiedStatus {
            kind: "Deployment".into(),
            api_version: "apps/v1".into(),
            namespace: "ns".into(),
            name: "web".into(),
            patch: r#"{"spec":{"replicas":1}}"#.into(),
            ..Default::default()
        };
        assert_eq!(
            m.to_string(),
            r#"deployment.apps ns/web modified {"spec":{"replicas":1}}"#
        );
        m.delete = true;
        assert_eq!(m.to_string(), "deployment.apps ns/web extra");
        m.create = true;
        assert_eq!(m.to_string(), "deployment.apps ns/web missing");
        m.exist = true;
        assert_eq!(m.to_string(), "deployment.apps ns/web is not owned by us");
    }

    #[test]
    fn non_ready_status_string_matches_fleet() {
        let s = NonReadyStatus {
            kind: "ConfigMap".into(),
            api_version: "v1".into(),
            name: "cm".into(),
            summary: Summary {
                state: "in-progress".into(),
                transitioning: true,
                message: vec!["waiting".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(s.to_string(), "configmap.v1 cm [progressing] waiting");
        assert_eq!(object_display_name("", "Secret", "a", "b"), "secret a/b");
    }
}

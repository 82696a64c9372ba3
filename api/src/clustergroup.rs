//! ClusterGroup (`clustergroup_types.go`): a named label selector of clusters.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bundle::BundleSummary;
use crate::condition::GenericCondition;
use crate::resource::ResourceCounts;
use crate::serde_util::{is_default, nullable};

/// Spec of a ClusterGroup.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "fleet.cattle.io",
    version = "v1alpha1",
    kind = "ClusterGroup",
    doc = "A named selector of clusters, usable as a target.",
    namespaced,
    status = "ClusterGroupStatus",
    category = "fleet",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "Clusters-Ready",
        type_ = "string",
        json_path = ".status.display.readyClusters"
    ),
    printcolumn(
        name = "Bundles-Ready",
        type_ = "string",
        json_path = ".status.display.readyBundles"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].message"#
    )
)]
#[serde(default, rename_all = "camelCase")]
pub struct ClusterGroupSpec {
    /// Selector of the clusters (in the group's namespace) that belong to the group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// Status of a ClusterGroup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct ClusterGroupStatus {
    /// Clusters in the group.
    #[serde(deserialize_with = "nullable")]
    pub cluster_count: i64,
    /// Clusters in the group that are not ready.
    #[serde(deserialize_with = "nullable")]
    pub non_ready_cluster_count: i64,
    /// Up to 10 non-ready cluster names.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub non_ready_clusters: Vec<String>,
    /// Conditions: Processed, Ready.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub conditions: Vec<GenericCondition>,
    /// BundleDeployments of the group's clusters per state.
    #[serde(deserialize_with = "nullable")]
    pub summary: BundleSummary,
    /// Human readable summary.
    #[serde(deserialize_with = "nullable")]
    pub display: ClusterGroupDisplay,
    /// Resources per state over the group's clusters.
    #[serde(deserialize_with = "nullable")]
    pub resource_counts: ResourceCounts,
}

/// `status.display` of a ClusterGroup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct ClusterGroupDisplay {
    /// `"<ready>/<total>"` clusters.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub ready_clusters: String,
    /// `"<ready>/<desired>"` bundles.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub ready_bundles: String,
    /// Highest-ranked state.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub state: String,
}

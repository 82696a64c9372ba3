//! `StatusBase`, the status block shared by GitRepo and HelmApp/HelmOp (`status.go`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bundle::BundleSummary;
use crate::condition::GenericCondition;
use crate::resource::{Resource, ResourceCounts};
use crate::serde_util::{is_default, nullable};

/// Status fields common to GitRepo and HelmApp/HelmOp.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct StatusBase {
    /// Clusters on which every bundle deployment of this resource is ready.
    #[serde(deserialize_with = "nullable")]
    pub ready_clusters: i64,
    /// Distinct clusters targeted by the bundle deployments of this resource.
    #[serde(deserialize_with = "nullable")]
    pub desired_ready_clusters: i64,
    /// Bundle deployments per state and the non-ready ones.
    #[serde(deserialize_with = "nullable")]
    pub summary: BundleSummary,
    /// Human readable summary.
    #[serde(deserialize_with = "nullable")]
    pub display: StatusDisplay,
    /// Wrangler conditions.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub conditions: Vec<GenericCondition>,
    /// One entry per distinct resource over all bundle deployments.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub resources: Vec<Resource>,
    /// Resources per state over all bundles.
    #[serde(deserialize_with = "nullable")]
    pub resource_counts: ResourceCounts,
    /// Resources per state, keyed by `clusterNamespace/clusterName`.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub per_cluster_resource_counts: BTreeMap<String, ResourceCounts>,
}

/// `status.display` of GitRepo and HelmApp/HelmOp.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct StatusDisplay {
    /// `"<ready>/<total>"` bundle deployments.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub ready_bundle_deployments: String,
    /// `GitUpdating` or the highest-ranked bundle deployment state (blank when Ready).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub state: String,
    /// The relevant message from the conditions.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub message: String,
    /// True when the message is an error.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub error: bool,
}

//! Per-resource status shared by GitRepo and HelmApp status (`resource_types.go`).

use std::ops::AddAssign;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::serde_util::{is_default, nullable};

/// Aggregated state of one resource (apiVersion, kind, namespace, name) over all bundle
/// deployments of a GitRepo or HelmApp.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct Resource {
    /// API version of the resource.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub api_version: String,
    /// Kind of the resource.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub kind: String,
    /// Type of the resource, e.g. `apps.deployment` or `configmap`.
    #[serde(
        rename = "type",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub type_: String,
    /// `namespace/name`, or `name` for cluster-scoped resources.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub id: String,
    /// Namespace of the resource.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub namespace: String,
    /// Name of the resource.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub name: String,
    /// True when the per-cluster states come from truncated bundle deployment status lists.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub incomplete_state: bool,
    /// The first non-Ready per-cluster state (clusters sorted by ID), else `Ready`.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub state: String,
    /// Declared by Fleet v0.12, not populated.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub error: bool,
    /// Declared by Fleet v0.12, not populated.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub transitioning: bool,
    /// Declared by Fleet v0.12, not populated.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub message: String,
    /// Cluster IDs (`clusterNamespace/clusterName`) per state.
    #[serde(deserialize_with = "nullable")]
    pub per_cluster_state: PerClusterState,
}

/// Lists of cluster IDs per resource state (Fleet v0.12 format).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct PerClusterState {
    /// Clusters where the resource is Ready.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub ready: Vec<String>,
    /// Clusters where the resource is WaitApplied.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub wait_applied: Vec<String>,
    /// Clusters where the resource is Pending.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub pending: Vec<String>,
    /// Clusters where the resource is Modified.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub modified: Vec<String>,
    /// Clusters where the resource is Orphaned.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub orphaned: Vec<String>,
    /// Clusters where the resource is Missing.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub missing: Vec<String>,
    /// Clusters where the resource is Unknown.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub unknown: Vec<String>,
    /// Clusters where the resource is NotReady.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub not_ready: Vec<String>,
}

impl PerClusterState {
    /// The list for a resource state name (see [`crate::consts::resource_state`]); `None` for
    /// names that have no list (e.g. `ErrApplied`, `OutOfSync`).
    pub fn list_mut(&mut self, state: &str) -> Option<&mut Vec<String>> {
        use crate::consts::resource_state as s;
        match state {
            s::READY => Some(&mut self.ready),
            s::WAIT_APPLIED => Some(&mut self.wait_applied),
            s::PENDING => Some(&mut self.pending),
            s::MODIFIED => Some(&mut self.modified),
            s::ORPHANED => Some(&mut self.orphaned),
            s::MISSING => Some(&mut self.missing),
            s::UNKNOWN => Some(&mut self.unknown),
            s::NOT_READY => Some(&mut self.not_ready),
            _ => None,
        }
    }
}

/// Number of resources in each state; every field is always serialised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct ResourceCounts {
    /// Ready resources.
    #[serde(deserialize_with = "nullable")]
    pub ready: i64,
    /// Resources that should be ready.
    #[serde(deserialize_with = "nullable")]
    pub desired_ready: i64,
    /// Resources waiting to be applied.
    #[serde(deserialize_with = "nullable")]
    pub wait_applied: i64,
    /// Modified resources.
    #[serde(deserialize_with = "nullable")]
    pub modified: i64,
    /// Orphaned resources.
    #[serde(deserialize_with = "nullable")]
    pub orphaned: i64,
    /// Missing resources.
    #[serde(deserialize_with = "nullable")]
    pub missing: i64,
    /// Resources in an unknown state.
    #[serde(deserialize_with = "nullable")]
    pub unknown: i64,
    /// Resources that are not ready (and match no other state).
    #[serde(deserialize_with = "nullable")]
    pub not_ready: i64,
}

impl AddAssign for ResourceCounts {
    fn add_assign(&mut self, other: ResourceCounts) {
        self.ready += other.ready;
        self.desired_ready += other.desired_ready;
        self.wait_applied += other.wait_applied;
        self.modified += other.modified;
        self.orphaned += other.orphaned;
        self.missing += other.missing;
        self.unknown += other.unknown;
        self.not_ready += other.not_ready;
    }
}

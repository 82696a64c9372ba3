//! Fleet's `fleet.cattle.io/v1alpha1` resource types (Fleet v0.12), the names Fleet uses for
//! labels, annotations, conditions and states, and the CustomResourceDefinitions.
//!
//! The types serialise like Fleet's Go types: `omitempty` fields are skipped when empty,
//! other fields are always written, so objects printed by fleet-rs match Fleet's output.

// `#[kube(printcolumn(type_ = "string", ...))]` repeats the same key once per column, which
// this lint mistakes for a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

pub mod bundle;
pub mod bundledeployment;
pub mod bundlenamespacemapping;
pub mod cluster;
pub mod clustergroup;
pub mod clusterregistration;
pub mod condition;
pub mod consts;
pub mod content;
pub mod crds;
pub mod duration;
pub mod gitrepo;
pub mod gitreporestriction;
pub mod helmop;
pub mod imagescan;
mod parse;
pub mod resource;
mod serde_util;
pub mod state;
pub mod status;
pub mod summary;
pub mod task;
mod toplevel;
pub mod unmanaged;

pub use bundle::{
    Bundle, BundleDisplay, BundleHelmOptions, BundleRef, BundleResource, BundleSpec, BundleStatus,
    BundleSummary, BundleTarget, BundleTargetRestriction, NonReadyResource, Partition,
    PartitionStatus, ResourceKey, RolloutStrategy,
};
pub use bundledeployment::{
    BundleDeployment, BundleDeploymentDisplay, BundleDeploymentOptions, BundleDeploymentResource,
    BundleDeploymentSpec, BundleDeploymentStatus, ComparePatch, ConfigMapKeySelector, DiffOptions,
    GenericMap, HelmOptions, IgnoreOptions, KustomizeOptions, ModifiedStatus, NonReadyStatus,
    Operation, SecretKeySelector, ValuesFrom, YamlOptions,
};
pub use bundlenamespacemapping::BundleNamespaceMapping;
pub use cluster::{AgentStatus, Cluster, ClusterDisplay, ClusterSpec, ClusterStatus};
pub use clustergroup::{ClusterGroup, ClusterGroupDisplay, ClusterGroupSpec, ClusterGroupStatus};
pub use clusterregistration::{
    ClusterRegistration, ClusterRegistrationSpec, ClusterRegistrationStatus,
    ClusterRegistrationToken, ClusterRegistrationTokenSpec, ClusterRegistrationTokenStatus,
};
pub use condition::{GenericCondition, find_condition};
pub use content::Content;
pub use duration::Duration;
pub use gitrepo::{
    CommitSpec, CorrectDrift, GitRepo, GitRepoSpec, GitRepoStatus, GitTarget, OciRegistrySpec,
};
pub use gitreporestriction::GitRepoRestriction;
pub use helmop::{HelmApp, HelmAppSpec, HelmAppStatus, HelmOp, HelmOpSpec, HelmOpStatus};
pub use imagescan::{
    AlphabeticalPolicy, ImagePolicyChoice, ImageScan, ImageScanSpec, ImageScanStatus, SemVerPolicy,
};
pub use parse::{ApiError, from_value, parse_json, parse_yaml};
pub use resource::{PerClusterState, Resource, ResourceCounts};
pub use state::{BundleState, highest_state};
pub use status::{StatusBase, StatusDisplay};
pub use summary::Summary;

//! ImageScan (`imagescan_types.go`): scans an image repository and writes the latest tag back
//! to the GitRepo (declared by `imageScans` in fleet.yaml).

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::condition::GenericCondition;
use crate::duration::Duration;
use crate::serde_util::{is_default, nullable};

/// Spec of an ImageScan.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "fleet.cattle.io",
    version = "v1alpha1",
    kind = "ImageScan",
    doc = "Scans an image repository for new tags and commits the latest one to the GitRepo.",
    namespaced,
    status = "ImageScanStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(name = "Repository", type_ = "string", json_path = ".spec.image"),
    printcolumn(name = "Latest", type_ = "string", json_path = ".status.latestTag")
)]
#[serde(default, rename_all = "camelCase")]
pub struct ImageScanSpec {
    /// Tag reference replaced in the manifests.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub tag_name: String,
    /// The GitRepo to commit to.
    #[serde(
        rename = "gitrepoName",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub git_repo_name: String,
    /// Image repository to scan.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub image: String,
    /// Time between scans (always written, `0s` when unset, as in Go).
    #[serde(deserialize_with = "nullable")]
    pub interval: Duration,
    /// Secret with registry credentials (`kubectl create secret docker-registry`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// Suspend further scans.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub suspend: bool,
    /// How the latest tag is chosen (always written).
    #[serde(deserialize_with = "nullable")]
    pub policy: ImagePolicyChoice,
}

/// How the latest tag is chosen: semver range or alphabetical order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct ImagePolicyChoice {
    /// Highest tag within a semver range.
    #[serde(rename = "semver", skip_serializing_if = "Option::is_none")]
    pub semver: Option<SemVerPolicy>,
    /// Alphabetical ordering of tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alphabetical: Option<AlphabeticalPolicy>,
}

/// Semver policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct SemVerPolicy {
    /// Semver range (always written).
    #[serde(deserialize_with = "nullable")]
    pub range: String,
}

/// Alphabetical policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct AlphabeticalPolicy {
    /// `asc` or `desc`.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub order: String,
}

/// Status of an ImageScan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct ImageScanStatus {
    /// Conditions: ImageScanned, ImageSynced.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub conditions: Vec<GenericCondition>,
    /// Last scan; Go writes `null` when unset.
    pub last_scan_time: Option<Time>,
    /// Latest image according to the policy.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub latest_image: String,
    /// Latest tag according to the policy.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub latest_tag: String,
    /// Digest of the latest tag.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub latest_digest: String,
    /// Last generation processed.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub observed_generation: i64,
    /// Fully qualified image name, e.g. `docker.io/library/alpine`.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub canonical_image_name: String,
}

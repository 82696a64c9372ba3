//! GitRepo (`gitrepo_types.go`): a git repository watched by Fleet.

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::serde_util::{base64_bytes, is_default, nullable};
use crate::status::StatusBase;

/// Spec of a GitRepo.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "fleet.cattle.io",
    version = "v1alpha1",
    kind = "GitRepo",
    doc = "A git repository watched by Fleet: each path with resources becomes a Bundle deployed to the targets.",
    plural = "gitrepos",
    namespaced,
    status = "GitRepoStatus",
    category = "fleet",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(name = "Repo", type_ = "string", json_path = ".spec.repo"),
    printcolumn(name = "Commit", type_ = "string", json_path = ".status.commit"),
    printcolumn(
        name = "BundleDeployments-Ready",
        type_ = "string",
        json_path = ".status.display.readyBundleDeployments"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].message"#
    )
)]
#[serde(default, rename_all = "camelCase")]
pub struct GitRepoSpec {
    /// URL of the git repository to clone and index.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub repo: String,
    /// Branch to follow.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub branch: String,
    /// A specific commit or tag to deploy.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub revision: String,
    /// Every resource is created in this namespace (created on demand); cluster-scoped
    /// resources are rejected.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub target_namespace: String,
    /// Secret (basic-auth or ssh-auth) used to clone the repository.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub client_secret_name: String,
    /// Secret with credentials for private Helm repositories.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub helm_secret_name: String,
    /// Secret with Helm credentials per path.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub helm_secret_name_for_paths: String,
    /// Helm credentials are used only for repositories matching this regex (always when empty).
    #[serde(
        rename = "helmRepoURLRegex",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub helm_repo_url_regex: String,
    /// PEM CA bundle to validate the repository's certificate (base64 in JSON).
    #[serde(rename = "caBundle", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "base64_bytes")]
    pub ca_bundle: Option<ByteString>,
    /// Skip TLS verification when cloning.
    #[serde(
        rename = "insecureSkipTLSVerify",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub insecure_skip_tls_verify: bool,
    /// Directories (globs allowed) with resources to deploy; the root when empty.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub paths: Vec<String>,
    /// Do not propagate changes; mark resources OutOfSync instead.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub paused: bool,
    /// Service account used on the downstream clusters.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub service_account: String,
    /// Clusters or cluster groups to deploy to.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub targets: Vec<GitTarget>,
    /// How often to check git for new commits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub polling_interval: Option<Duration>,
    /// Increment to force a redeployment.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub force_sync_generation: i64,
    /// Interval of writing scanned images back to the repository.
    #[serde(rename = "imageScanInterval", skip_serializing_if = "Option::is_none")]
    pub image_sync_interval: Option<Duration>,
    /// How to commit scanned images back to the repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_scan_commit: Option<CommitSpec>,
    /// Keep the deployed resources when the GitRepo is deleted.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub keep_resources: bool,
    /// Delete the created namespace when the GitRepo is deleted.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub delete_namespace: bool,
    /// Drift correction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correct_drift: Option<CorrectDrift>,
    /// Only webhooks trigger updates.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub disable_polling: bool,
    /// Store bundle contents in this OCI registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oci_registry: Option<OciRegistrySpec>,
}

/// A cluster or cluster group a GitRepo deploys to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct GitTarget {
    /// Name of the target.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub name: String,
    /// Name of a cluster.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub cluster_name: String,
    /// Label selector of clusters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_selector: Option<LabelSelector>,
    /// Name of a cluster group in the same namespace as the clusters.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub cluster_group: String,
    /// Label selector of cluster groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_group_selector: Option<LabelSelector>,
}

/// Status of a GitRepo.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct GitRepoStatus {
    /// Shared status fields (Go embeds them inline).
    #[serde(flatten)]
    pub base: StatusBase,
    /// Last `metadata.generation` processed.
    #[serde(deserialize_with = "nullable")]
    pub observed_generation: i64,
    /// The `forceSyncGeneration` last processed.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub update_generation: i64,
    /// Commit of the last git job run.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub commit: String,
    /// Latest commit received from a webhook.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub webhook_commit: String,
    /// kstatus of the last git job, `Current` when it succeeded.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub git_job_status: String,
    /// Time of the last image scan; Go writes `null` when unset.
    pub last_synced_image_scan_time: Option<Time>,
    /// Time of the last polling check; Go writes `null` when unset.
    #[serde(rename = "lastPollingTriggered")]
    pub last_polling_time: Option<Time>,
}

/// How to commit scanned images back to the repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct CommitSpec {
    /// Commit author name.
    #[serde(deserialize_with = "nullable")]
    pub author_name: String,
    /// Commit author e-mail.
    #[serde(deserialize_with = "nullable")]
    pub author_email: String,
    /// Template of the commit message.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub message_template: String,
}

/// Drift correction options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct CorrectDrift {
    /// Correct drift.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub enabled: bool,
    /// Use `helm rollback --force` (recreates every resource of the release).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub force: bool,
    /// Keep failed rollbacks in the Helm history.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub keep_fail_history: bool,
}

/// OCI registry used to store bundle contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct OciRegistrySpec {
    /// Registry reference.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub reference: String,
    /// Secret with the registry credentials.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub auth_secret_name: String,
    /// Use plain HTTP.
    #[serde(
        rename = "basicHTTP",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub basic_http: bool,
    /// Skip TLS verification.
    #[serde(
        rename = "insecureSkipTLS",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub insecure_skip_tls: bool,
}

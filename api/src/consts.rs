//! Names shared between the controller, the agent and the CLI: API group, labels, annotations,
//! finalizers, condition types and display states. One source of truth per string.

pub use crate::state::{BundleState, highest_state};

/// API group of every Fleet kind.
pub const GROUP: &str = "fleet.cattle.io";
/// API version of every Fleet kind.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every Fleet object.
pub const API_VERSION: &str = "fleet.cattle.io/v1alpha1";
/// Prefix of Fleet's own labels and annotations; they are never copied from a cluster or
/// bundle into templating or namespaces.
pub const LABEL_PREFIX: &str = "fleet.cattle.io/";
/// Rancher's label prefix, also skipped when Fleet copies labels.
pub const RANCHER_MANAGEMENT_LABEL_PREFIX: &str = "management.cattle.io/";

// --- labels and annotations on Bundles, BundleDeployments, GitRepos --------------------------

/// The Git commit a Bundle was built from (label on Bundles, annotation on deployed resources).
pub const COMMIT_LABEL: &str = "fleet.cattle.io/commit";
/// The GitRepo a Bundle or BundleDeployment belongs to.
pub const REPO_LABEL: &str = "fleet.cattle.io/repo-name";
/// The Bundle a BundleDeployment was created from.
pub const BUNDLE_LABEL: &str = "fleet.cattle.io/bundle-name";
/// The namespace of the Bundle a BundleDeployment was created from.
pub const BUNDLE_NAMESPACE_LABEL: &str = "fleet.cattle.io/bundle-namespace";
/// The HelmApp/HelmOp a Bundle belongs to.
pub const HELM_APP_LABEL: &str = "fleet.cattle.io/fleet-helm-name";
/// Alias of [`HELM_APP_LABEL`] under the v0.13 name of the kind.
pub const HELM_OP_LABEL: &str = HELM_APP_LABEL;
/// Label on a git job: the GitRepo generation it was created for.
pub const GITREPO_GENERATION_LABEL: &str = "fleet.cattle.io/gitrepo-generation";
/// Label on a git job: the GitRepo `forceSyncGeneration` it was created for.
pub const FORCE_SYNC_GENERATION_LABEL: &str = "fleet.cattle.io/force-sync-generation";

// --- labels and annotations on Clusters and cluster namespaces -------------------------------

/// Namespace of the Cluster a BundleDeployment targets (label), or of a cluster namespace (annotation).
pub const CLUSTER_NAMESPACE_LABEL: &str = "fleet.cattle.io/cluster-namespace";
/// Name of the Cluster a BundleDeployment targets.
pub const CLUSTER_LABEL: &str = "fleet.cattle.io/cluster";
/// Annotation on a cluster namespace: the namespace of its Cluster.
pub const CLUSTER_NAMESPACE_ANNOTATION: &str = "fleet.cattle.io/cluster-namespace";
/// Annotation on a cluster namespace: the name of its Cluster.
pub const CLUSTER_ANNOTATION: &str = "fleet.cattle.io/cluster";
/// Annotation: the ClusterRegistration a cluster namespace / Cluster was created from.
pub const CLUSTER_REGISTRATION_ANNOTATION: &str = "fleet.cattle.io/cluster-registration";
/// Annotation: the namespace of that ClusterRegistration.
pub const CLUSTER_REGISTRATION_NAMESPACE_ANNOTATION: &str =
    "fleet.cattle.io/cluster-registration-namespace";
/// Label on objects (namespaces, secrets, roles) that Fleet manages.
pub const MANAGED_LABEL: &str = "fleet.cattle.io/managed";
/// Label the agent puts on its ClusterRegistration: the agent pod that created it.
pub const CREATED_BY_AGENT_POD_LABEL: &str = "fleet.cattle.io/created-by-agent-pod";
/// Taint/toleration key used for the Fleet agent.
pub const AGENT_TOLERATION_KEY: &str = "fleet.cattle.io/agent";
/// Node selector key used for agents that Fleet does not manage.
pub const NON_MANAGED_AGENT_LABEL: &str = "fleet.cattle.io/non-managed-agent";

// --- annotations on deployed resources / Helm releases (agent side) --------------------------

/// Release annotation: `<bundle id>` of the BundleDeployment deployed by a Helm release.
pub const BUNDLE_ID_ANNOTATION: &str = "fleet.cattle.io/bundle-id";
/// Alias of [`COMMIT_LABEL`] as used on deployed resources.
pub const COMMIT_ANNOTATION: &str = "fleet.cattle.io/commit";
/// Release annotation: the namespace the agent runs in.
pub const AGENT_NAMESPACE_ANNOTATION: &str = "fleet.cattle.io/agent-namespace";
/// Release annotation: the service account used for the deployment.
pub const SERVICE_ACCOUNT_ANNOTATION: &str = "fleet.cattle.io/service-account";
/// Release annotation: keep the resources when the BundleDeployment is deleted.
pub const KEEP_RESOURCES_ANNOTATION: &str = "fleet.cattle.io/keep-resources";

/// Labels and annotations of wrangler's apply (objectset), used on deployed resources.
pub mod objectset {
    /// Annotation holding the last applied object (for three-way diffs).
    pub const APPLIED_ANNOTATION: &str = "objectset.rio.cattle.io/applied";
    /// Annotation: the ID of the object set (set ID) an object belongs to.
    pub const ID_ANNOTATION: &str = "objectset.rio.cattle.io/id";
    /// Annotation: the GVK of the owner of the object set.
    pub const OWNER_GVK_ANNOTATION: &str = "objectset.rio.cattle.io/owner-gvk";
    /// Annotation: the name of the owner of the object set.
    pub const OWNER_NAME_ANNOTATION: &str = "objectset.rio.cattle.io/owner-name";
    /// Annotation: the namespace of the owner of the object set.
    pub const OWNER_NAMESPACE_ANNOTATION: &str = "objectset.rio.cattle.io/owner-namespace";
    /// Label: hash of the set ID and owner, used to select the objects of a set.
    pub const HASH_LABEL: &str = "objectset.rio.cattle.io/hash";
    /// Prefix of all objectset labels/annotations.
    pub const PREFIX: &str = "objectset.rio.cattle.io/";
    /// Annotation that controls pruning of an object.
    pub const PRUNE_ANNOTATION: &str = "objectset.rio.cattle.io/prune";
}

// --- sharding --------------------------------------------------------------------------------

/// Label on Fleet objects selecting the controller shard that handles them.
pub const SHARD_REF_LABEL: &str = "fleet.cattle.io/shard-ref";
/// Label on controller pods: their shard ID.
pub const SHARD_ID_LABEL: &str = "fleet.cattle.io/shard-id";
/// Label on controller pods: they run the default (unsharded) shard.
pub const SHARD_DEFAULT_LABEL: &str = "fleet.cattle.io/shard-default";

// --- finalizers ------------------------------------------------------------------------------

/// Finalizer on GitRepos.
pub const GITREPO_FINALIZER: &str = "fleet.cattle.io/gitrepo-finalizer";
/// Finalizer on HelmApps/HelmOps.
pub const HELM_APP_FINALIZER: &str = "fleet.cattle.io/helmapp-finalizer";
/// Finalizer on Bundles.
pub const BUNDLE_FINALIZER: &str = "fleet.cattle.io/bundle-finalizer";
/// Finalizer on BundleDeployments (and on Contents, one per BundleDeployment).
pub const BUNDLE_DEPLOYMENT_FINALIZER: &str = "fleet.cattle.io/bundle-deployment-finalizer";

// --- secret types ----------------------------------------------------------------------------

/// Type of the secret holding an agent's credentials after registration.
pub const AGENT_CREDENTIAL_SECRET_TYPE: &str = "fleet.cattle.io/agent-credential";
/// Type of the secret holding the values of a ClusterRegistrationToken.
pub const CLUSTER_REGISTRATION_VALUES_SECRET_TYPE: &str =
    "fleet.cattle.io/cluster-registration-values";

// --- condition types -------------------------------------------------------------------------

/// Condition types used in Fleet status blocks.
pub mod condition {
    /// Overall readiness (every kind with conditions).
    pub const READY: &str = "Ready";
    /// Cluster / ClusterGroup: processed by the controller.
    pub const PROCESSED: &str = "Processed";
    /// Cluster: imported.
    pub const IMPORTED: &str = "Imported";
    /// GitRepo / HelmApp: accepted (restrictions and validation passed).
    pub const ACCEPTED: &str = "Accepted";
    /// GitRepo: error while fetching the latest commit.
    pub const GIT_POLLING: &str = "GitPolling";
    /// GitRepo: the git job is in progress (kstatus).
    pub const RECONCILING: &str = "Reconciling";
    /// GitRepo: the git job failed (kstatus).
    pub const STALLED: &str = "Stalled";
    /// BundleDeployment: the bundle was installed.
    pub const INSTALLED: &str = "Installed";
    /// BundleDeployment: the deployment succeeded.
    pub const DEPLOYED: &str = "Deployed";
    /// BundleDeployment: the agent monitors the deployed resources.
    pub const MONITORED: &str = "Monitored";
    /// ImageScan: the image repository was scanned.
    pub const IMAGE_SCANNED: &str = "ImageScanned";
    /// ImageScan: the latest tag was committed to the GitRepo.
    pub const IMAGE_SYNCED: &str = "ImageSynced";

    /// Condition status values (core/v1 `ConditionStatus`).
    pub const TRUE: &str = "True";
    /// See [`TRUE`].
    pub const FALSE: &str = "False";
    /// See [`TRUE`].
    pub const UNKNOWN: &str = "Unknown";
}

// --- display states besides the bundle states ------------------------------------------------

/// `status.display.state` of a GitRepo whose git job is not `Current`.
pub const DISPLAY_STATE_GIT_UPDATING: &str = "GitUpdating";
/// `status.display.state` of a Cluster whose agent never checked in.
pub const DISPLAY_STATE_WAIT_CHECK_IN: &str = "WaitCheckIn";
/// `status.gitJobStatus` of a GitRepo whose job finished without error (kstatus `Current`).
pub const GIT_JOB_STATUS_CURRENT: &str = "Current";

// --- resource states used in resource counts and perClusterState -----------------------------

/// Per-resource states (`status.resources[].state`, keys of `perClusterState`).
pub mod resource_state {
    /// Resource is ready.
    pub const READY: &str = "Ready";
    /// Resource waits to be applied.
    pub const WAIT_APPLIED: &str = "WaitApplied";
    /// Resource's bundle deployment is pending.
    pub const PENDING: &str = "Pending";
    /// Resource was changed outside Fleet.
    pub const MODIFIED: &str = "Modified";
    /// Resource exists but is no longer part of the bundle.
    pub const ORPHANED: &str = "Orphaned";
    /// Resource is part of the bundle but absent from the cluster.
    pub const MISSING: &str = "Missing";
    /// Resource state is unknown (status lists truncated).
    pub const UNKNOWN: &str = "Unknown";
    /// Resource is not ready.
    pub const NOT_READY: &str = "NotReady";
}

// --- limits and fixed values -----------------------------------------------------------------

/// `comparePatches[].operations[].op` that removes a whole object from the modified check.
pub const IGNORE_OP: &str = "ignore";
/// Maximum length of a Helm release name.
pub const MAX_HELM_RELEASE_NAME_LEN: usize = 53;
/// Bundle `status.maxNew`: a bundle change stages at most this many BundleDeployments at once.
pub const MAX_NEW: i64 = 50;
/// BundleDeployment status lists (`nonReadyStatus`, `modifiedStatus`) are truncated to this length.
pub const RESOURCES_DETAILS_MAX_LENGTH: usize = 10;
/// `summary.nonReadyResources` holds at most this many entries.
pub const MAX_NON_READY_RESOURCES: usize = 10;
/// ClusterGroup `status.nonReadyClusters` holds at most this many entries.
pub const MAX_NON_READY_CLUSTERS: usize = 10;
/// `encoding` of a compressed bundle resource.
pub const ENCODING_BASE64_GZ: &str = "base64+gz";

/// Rollout defaults, applied by the controller when the Bundle leaves them unset.
pub mod rollout_defaults {
    /// `rolloutStrategy.maxUnavailable`.
    pub const MAX_UNAVAILABLE: &str = "100%";
    /// `rolloutStrategy.maxUnavailablePartitions`.
    pub const MAX_UNAVAILABLE_PARTITIONS: i32 = 0;
    /// `rolloutStrategy.autoPartitionSize`.
    pub const AUTO_PARTITION_SIZE: &str = "25%";
    /// `rolloutStrategy.partitions[].maxUnavailable`.
    pub const PARTITION_MAX_UNAVAILABLE: &str = "10%";
}

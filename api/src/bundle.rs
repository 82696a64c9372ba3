//! Bundle (`bundle_types.go`): the resources of an application and how to deploy them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bundledeployment::{ModifiedStatus, NonReadyStatus, with_deployment_options};
use crate::condition::GenericCondition;
use crate::serde_util::{is_default, nullable};
use crate::state::BundleState;

/// Defines a struct with the fields of [`BundleSpec`] (including the embedded
/// deployment options) inline, followed by its own fields; used by HelmApp/HelmOp, whose Go
/// spec embeds `BundleSpec`. Generates `bundle_spec()` / `set_bundle_spec()`.
macro_rules! with_bundle_spec {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$fmeta:meta])* pub $field:ident : $ty:ty,)*
        }
    ) => {
        $crate::bundledeployment::with_deployment_options! {
            $(#[$meta])*
            pub struct $name {
                /// Stop updating BundleDeployments; they are marked out of sync.
                #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
                pub paused: bool,
                /// Rollout across clusters: partitions and how many may be unavailable.
                #[serde(skip_serializing_if = "Option::is_none")]
                pub rollout_strategy: Option<$crate::bundle::RolloutStrategy>,
                /// The resources read from the bundle's path, including downloaded charts.
                #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
                pub resources: Vec<$crate::bundle::BundleResource>,
                /// Clusters to deploy to; evaluated in order, the first match wins.
                #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
                pub targets: Vec<$crate::bundle::BundleTarget>,
                /// Allow list for targets (keeps customizations from widening the targets).
                #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
                pub target_restrictions: Vec<$crate::bundle::BundleTargetRestriction>,
                /// Bundles that must be ready before this one is deployed.
                #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
                pub depends_on: Vec<$crate::bundle::BundleRef>,
                /// Contents ID when the contents are stored in an OCI registry.
                #[serde(rename = "contentsId", skip_serializing_if = "is_default", deserialize_with = "nullable")]
                pub contents_id: String,
                /// Set for HelmApp bundles: the chart is downloaded by the agent.
                #[serde(skip_serializing_if = "Option::is_none")]
                pub helm_app_options: Option<$crate::bundle::BundleHelmOptions>,
                $($(#[$fmeta])* pub $field: $ty,)*
            }
        }

        impl $name {
            /// The embedded bundle spec, copied out.
            pub fn bundle_spec(&self) -> $crate::bundle::BundleSpec {
                let mut spec = $crate::bundle::BundleSpec {
                    paused: self.paused,
                    rollout_strategy: self.rollout_strategy.clone(),
                    resources: self.resources.clone(),
                    targets: self.targets.clone(),
                    target_restrictions: self.target_restrictions.clone(),
                    depends_on: self.depends_on.clone(),
                    contents_id: self.contents_id.clone(),
                    helm_app_options: self.helm_app_options.clone(),
                    ..Default::default()
                };
                spec.set_deployment_options(self.deployment_options());
                spec
            }

            /// Replaces the embedded bundle spec.
            pub fn set_bundle_spec(&mut self, spec: $crate::bundle::BundleSpec) {
                self.set_deployment_options(spec.deployment_options());
                self.paused = spec.paused;
                self.rollout_strategy = spec.rollout_strategy;
                self.resources = spec.resources;
                self.targets = spec.targets;
                self.target_restrictions = spec.target_restrictions;
                self.depends_on = spec.depends_on;
                self.contents_id = spec.contents_id;
                self.helm_app_options = spec.helm_app_options;
            }
        }
    };
}
pub(crate) use with_bundle_spec;

with_deployment_options! {
    /// Spec of a Bundle: the deployment options (inline), the resources and the targets.
    #[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[kube(
        group = "fleet.cattle.io",
        version = "v1alpha1",
        kind = "Bundle",
    doc = "The resources of an application and how to deploy them; the controller turns it into one BundleDeployment per target cluster.",
        namespaced,
        status = "BundleStatus",
        derive = "PartialEq",
        derive = "Default",
        printcolumn(
            name = "BundleDeployments-Ready",
            type_ = "string",
            json_path = ".status.display.readyClusters"
        ),
        printcolumn(
            name = "Status",
            type_ = "string",
            json_path = r#".status.conditions[?(@.type=="Ready")].message"#
        )
    )]
    #[serde(default, rename_all = "camelCase")]
    pub struct BundleSpec {
        /// Stop updating BundleDeployments; they are marked out of sync.
        #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
        pub paused: bool,
        /// Rollout across clusters: partitions and how many may be unavailable.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub rollout_strategy: Option<RolloutStrategy>,
        /// The resources read from the bundle's path, including downloaded charts.
        #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
        pub resources: Vec<BundleResource>,
        /// Clusters to deploy to; evaluated in order, the first match wins.
        #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
        pub targets: Vec<BundleTarget>,
        /// Allow list for targets (keeps customizations from widening the targets).
        #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
        pub target_restrictions: Vec<BundleTargetRestriction>,
        /// Bundles that must be ready before this one is deployed.
        #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
        pub depends_on: Vec<BundleRef>,
        /// Contents ID when the contents are stored in an OCI registry.
        #[serde(rename = "contentsId", skip_serializing_if = "is_default", deserialize_with = "nullable")]
        pub contents_id: String,
        /// Set for HelmApp bundles: the chart is downloaded by the agent.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub helm_app_options: Option<BundleHelmOptions>,
    }
}

/// A bundle this bundle depends on: by name or by label selector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct BundleRef {
    /// Name of the bundle.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub name: String,
    /// Selector of bundle labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// One file of a bundle, e.g. a manifest or a chart file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct BundleResource {
    /// Path of the file inside the bundle.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub name: String,
    /// Content, possibly compressed.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub content: String,
    /// Empty, or `base64+gz` ([`crate::consts::ENCODING_BASE64_GZ`]).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub encoding: String,
}

/// Rollout of a bundle across clusters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct RolloutStrategy {
    /// Number or percentage of clusters that may be unavailable during an update (default 100%).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Number or percentage of partitions that may be unavailable (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unavailable_partitions: Option<IntOrString>,
    /// Size of automatic partitions when no partitions are given (default 25%).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_partition_size: Option<IntOrString>,
    /// Explicit partitions; unmatched clusters are auto-partitioned after them.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub partitions: Vec<Partition>,
}

/// A rollout partition: a set of clusters rolled out together.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct Partition {
    /// Display name.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub name: String,
    /// Clusters that may be unavailable before the partition counts as done (default 10%).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// A cluster name.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub cluster_name: String,
    /// Cluster label selector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_selector: Option<LabelSelector>,
    /// A cluster group name.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub cluster_group: String,
    /// Cluster group label selector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_group_selector: Option<LabelSelector>,
}

/// Allow list entry for targets, written by `fleet apply`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct BundleTargetRestriction {
    /// Target name.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub name: String,
    /// A cluster name.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub cluster_name: String,
    /// Cluster label selector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_selector: Option<LabelSelector>,
    /// A cluster group name.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub cluster_group: String,
    /// Cluster group label selector.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_group_selector: Option<LabelSelector>,
}

with_deployment_options! {
    /// Clusters to deploy to, with deployment options (inline) that customise the bundle's.
    ///
    /// Go's `BundleTarget` also declares `namespaceLabels`/`namespaceAnnotations` itself, which
    /// shadow the embedded options' fields of the same JSON name; here they are the single
    /// `namespace_labels`/`namespace_annotations` fields.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(default, rename_all = "camelCase")]
    pub struct BundleTarget {
        /// Name for display and logs (default `target000`...).
        #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
        pub name: String,
        /// A cluster name.
        #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
        pub cluster_name: String,
        /// Cluster label selector; with a group, it only refines the group's clusters.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub cluster_selector: Option<LabelSelector>,
        /// A cluster group name.
        #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
        pub cluster_group: String,
        /// Cluster group label selector.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub cluster_group_selector: Option<LabelSelector>,
        /// Matching clusters get no deployment.
        #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
        pub do_not_deploy: bool,
    }
}

/// Bundle deployments per state, and the non-ready ones (used in every status).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct BundleSummary {
    /// Deployed, some resources not ready.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub not_ready: i64,
    /// Waiting to be applied.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub wait_applied: i64,
    /// Failed to apply.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub err_applied: i64,
    /// Not yet synced by the agent.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub out_of_sync: i64,
    /// Resources changed outside Fleet.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub modified: i64,
    /// Deployed and ready (always written).
    #[serde(deserialize_with = "nullable")]
    pub ready: i64,
    /// Being processed by the controller.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub pending: i64,
    /// Deployments that should be ready (always written).
    #[serde(deserialize_with = "nullable")]
    pub desired_ready: i64,
    /// Up to 10 non-ready bundle deployments.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub non_ready_resources: Vec<NonReadyResource>,
}

impl BundleSpec {
    /// Targets the GitRepo targets `targets` (or fleet.yaml's `overrideTargets`), each also
    /// a target restriction, so that fleet.yaml's targetCustomizations cannot widen them
    /// (Fleet's git job targets file).
    pub fn restrict_to_git_targets(&mut self, targets: &[crate::GitTarget]) {
        for t in targets {
            self.targets.push(BundleTarget {
                name: t.name.clone(),
                cluster_name: t.cluster_name.clone(),
                cluster_selector: t.cluster_selector.clone(),
                cluster_group: t.cluster_group.clone(),
                cluster_group_selector: t.cluster_group_selector.clone(),
                ..Default::default()
            });
            self.target_restrictions.push(BundleTargetRestriction {
                name: t.name.clone(),
                cluster_name: t.cluster_name.clone(),
                cluster_selector: t.cluster_selector.clone(),
                cluster_group: t.cluster_group.clone(),
                cluster_group_selector: t.cluster_group_selector.clone(),
            });
        }
    }
}

impl BundleSummary {
    /// Fleet's `IsReady`: every desired deployment is ready.
    pub fn is_ready(&self) -> bool {
        self.desired_ready == self.ready
    }

    /// The counter of `state`.
    pub fn count(&self, state: BundleState) -> i64 {
        match state {
            BundleState::Ready => self.ready,
            BundleState::NotReady => self.not_ready,
            BundleState::Pending => self.pending,
            BundleState::OutOfSync => self.out_of_sync,
            BundleState::Modified => self.modified,
            BundleState::WaitApplied => self.wait_applied,
            BundleState::ErrApplied => self.err_applied,
        }
    }

    /// Mutable counter of `state`.
    pub fn count_mut(&mut self, state: BundleState) -> &mut i64 {
        match state {
            BundleState::Ready => &mut self.ready,
            BundleState::NotReady => &mut self.not_ready,
            BundleState::Pending => &mut self.pending,
            BundleState::OutOfSync => &mut self.out_of_sync,
            BundleState::Modified => &mut self.modified,
            BundleState::WaitApplied => &mut self.wait_applied,
            BundleState::ErrApplied => &mut self.err_applied,
        }
    }

    /// Adds the counters (not the non-ready list) of `other`.
    pub fn add_counts(&mut self, other: &BundleSummary) {
        for state in BundleState::ALL {
            *self.count_mut(state) += other.count(state);
        }
        self.desired_ready += other.desired_ready;
    }

    /// Fleet's `summary.Increment`: adds `other`'s counters, and appends all of its non-ready
    /// resources while this summary holds fewer than 10 (so the list may exceed 10, as in Fleet).
    pub fn increment(&mut self, other: &BundleSummary) {
        self.add_counts(other);
        if self.non_ready_resources.len() < crate::consts::MAX_NON_READY_RESOURCES {
            self.non_ready_resources
                .extend(other.non_ready_resources.iter().cloned());
        }
    }

    /// Fleet's `summary.IncrementState`: counts one bundle deployment in `state` and, when it
    /// is not Ready and has a name, records it in `nonReadyResources` (at most 10).
    pub fn increment_state(
        &mut self,
        name: &str,
        state: BundleState,
        message: &str,
        modified: &[ModifiedStatus],
        non_ready: &[NonReadyStatus],
    ) {
        *self.count_mut(state) += 1;
        if !name.is_empty()
            && state != BundleState::Ready
            && self.non_ready_resources.len() < crate::consts::MAX_NON_READY_RESOURCES
        {
            self.non_ready_resources.push(NonReadyResource {
                name: name.to_string(),
                state: Some(state),
                message: message.to_string(),
                modified_status: modified.to_vec(),
                non_ready_status: non_ready.to_vec(),
            });
        }
    }

    /// Fleet's `summary.GetSummaryState`: the highest-ranked state of the non-ready
    /// resources, `None` when there are none.
    pub fn summary_state(&self) -> Option<BundleState> {
        crate::state::highest_state(self.non_ready_resources.iter().filter_map(|r| r.state))
    }
}

/// A non-ready bundle deployment with its non-ready and modified resources.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct NonReadyResource {
    /// Name of the bundle deployment.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub name: String,
    /// Its state.
    #[serde(rename = "bundleState", skip_serializing_if = "Option::is_none")]
    pub state: Option<BundleState>,
    /// Why it is not ready.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub message: String,
    /// Modified resources.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub modified_status: Vec<ModifiedStatus>,
    /// Non-ready resources.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub non_ready_status: Vec<NonReadyStatus>,
}

/// Status of a Bundle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct BundleStatus {
    /// Wrangler conditions.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub conditions: Vec<GenericCondition>,
    /// Bundle deployments per state.
    #[serde(deserialize_with = "nullable")]
    pub summary: BundleSummary,
    /// Bundle deployments created (not updated).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub newly_created: i64,
    /// Bundle deployments not ready or not yet applied.
    #[serde(deserialize_with = "nullable")]
    pub unavailable: i64,
    /// Unavailable partitions.
    #[serde(deserialize_with = "nullable")]
    pub unavailable_partitions: i64,
    /// Maximum unavailable deployments (from the rollout strategy).
    #[serde(deserialize_with = "nullable")]
    pub max_unavailable: i64,
    /// Maximum unavailable partitions (from the rollout strategy).
    #[serde(deserialize_with = "nullable")]
    pub max_unavailable_partitions: i64,
    /// Always 50: at most this many deployments are staged at a time.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub max_new: i64,
    /// Status of each partition.
    #[serde(
        rename = "partitions",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub partition_status: Vec<PartitionStatus>,
    /// Ready clusters and summary state.
    #[serde(deserialize_with = "nullable")]
    pub display: BundleDisplay,
    /// Resources that will likely be deployed.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub resource_key: Vec<ResourceKey>,
    /// OCI reference of the stored contents (informational).
    #[serde(
        rename = "ociReference",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub oci_reference: String,
    /// Last `metadata.generation` processed.
    #[serde(deserialize_with = "nullable")]
    pub observed_generation: i64,
    /// SHA-256 of the JSON of `spec.resources`.
    #[serde(
        rename = "resourcesSha256Sum",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub resources_sha256_sum: String,
}

/// A resource that will likely be deployed.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(default, rename_all = "camelCase")]
pub struct ResourceKey {
    /// Kind.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub kind: String,
    /// API version.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub api_version: String,
    /// Namespace.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub namespace: String,
    /// Name.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub name: String,
}

/// `status.display` of a Bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct BundleDisplay {
    /// `"<ready>/<desired>"` clusters.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub ready_clusters: String,
    /// Highest-ranked state of the non-ready resources.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub state: String,
}

/// Status of one rollout partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct PartitionStatus {
    /// Partition name.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub name: String,
    /// Clusters in the partition.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub count: i64,
    /// Maximum unavailable clusters.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub max_unavailable: i64,
    /// Unavailable clusters.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub unavailable: i64,
    /// Summary over the partition's deployments (always written).
    #[serde(deserialize_with = "nullable")]
    pub summary: BundleSummary,
}

/// Options of bundles created from a HelmApp.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct BundleHelmOptions {
    /// Secret with credentials for the Helm repository.
    #[serde(
        rename = "helmAppSecretName",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub secret_name: String,
    /// Skip TLS verification when downloading the chart.
    #[serde(
        rename = "helmAppInsecureSkipTLSVerify",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub insecure_skip_tls_verify: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increment_state_counts_and_keeps_ten_non_ready() {
        let mut summary = BundleSummary::default();
        summary.increment_state("ok", BundleState::Ready, "", &[], &[]);
        for i in 0..12 {
            summary.increment_state(&format!("bd{i}"), BundleState::NotReady, "m", &[], &[]);
        }
        summary.increment_state("bad", BundleState::ErrApplied, "x", &[], &[]);
        assert_eq!(summary.ready, 1);
        assert_eq!(summary.not_ready, 12);
        assert_eq!(summary.err_applied, 1);
        assert_eq!(summary.non_ready_resources.len(), 10);
        assert_eq!(summary.summary_state(), Some(BundleState::NotReady));
        assert_eq!(BundleSummary::default().summary_state(), None);
    }

    #[test]
    fn increment_adds_counts_and_appends_while_below_ten() {
        let mut left = BundleSummary {
            ready: 1,
            desired_ready: 2,
            ..Default::default()
        };
        let mut right = BundleSummary {
            modified: 1,
            desired_ready: 1,
            ..Default::default()
        };
        right.increment_state("m", BundleState::Modified, "", &[], &[]);
        left.increment(&right);
        assert_eq!((left.ready, left.modified, left.desired_ready), (1, 2, 3));
        assert_eq!(left.non_ready_resources.len(), 1);
        assert!(!left.is_ready());
    }
}

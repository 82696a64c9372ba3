//! Cluster (`cluster_types.go`): a downstream cluster registered with Fleet.

use k8s_openapi::api::core::v1::{Affinity, EnvVar, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bundle::BundleSummary;
use crate::bundledeployment::GenericMap;
use crate::condition::GenericCondition;
use crate::duration::Duration;
use crate::resource::ResourceCounts;
use crate::serde_util::{go_generic_map, is_default, nullable, preserve_unknown_object};

/// Spec of a Cluster.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "fleet.cattle.io",
    version = "v1alpha1",
    kind = "Cluster",
    doc = "A downstream cluster registered with Fleet, where an agent deploys its BundleDeployments.",
    namespaced,
    status = "ClusterStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "Bundles-Ready",
        type_ = "string",
        json_path = ".status.display.readyBundles"
    ),
    printcolumn(
        name = "Last-Seen",
        type_ = "string",
        json_path = ".status.agent.lastSeen"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].message"#
    )
)]
#[serde(default, rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Stop updating the cluster's BundleDeployments.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub paused: bool,
    /// ID the agent registers with (the kube-system namespace UID by default).
    #[serde(
        rename = "clientID",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub client_id: String,
    /// Secret with a kubeconfig, for clusters Fleet deploys the agent to (manager-initiated).
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub kube_config_secret: String,
    /// Namespace of the kubeconfig secret.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub kube_config_secret_namespace: String,
    /// Change to redeploy the agent.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub redeploy_agent_generation: i64,
    /// Extra environment variables of the agent.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub agent_env_vars: Vec<EnvVar>,
    /// Namespace the agent runs in.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub agent_namespace: String,
    /// Registry prefix for the agent image.
    #[serde(
        rename = "privateRepoURL",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub private_repo_url: String,
    /// Values available to templates as `.ClusterValues`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "go_generic_map"
    )]
    #[schemars(schema_with = "preserve_unknown_object")]
    pub template_values: Option<GenericMap>,
    /// Tolerations of the agent.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub agent_tolerations: Vec<Toleration>,
    /// Affinity of the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_affinity: Option<Affinity>,
    /// Resources of the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_resources: Option<ResourceRequirements>,
    /// Run the agent in the host network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_network: Option<bool>,
}

/// Status of a Cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct ClusterStatus {
    /// Conditions: Ready, Processed, Imported...
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub conditions: Vec<GenericCondition>,
    /// The cluster namespace holding its BundleDeployments.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub namespace: String,
    /// BundleDeployments per state.
    #[serde(deserialize_with = "nullable")]
    pub summary: BundleSummary,
    /// Resources per state over the cluster's BundleDeployments.
    #[serde(deserialize_with = "nullable")]
    pub resource_counts: ResourceCounts,
    /// GitRepos whose bundles are all ready on this cluster.
    #[serde(deserialize_with = "nullable")]
    pub ready_git_repos: i64,
    /// GitRepos targeting this cluster.
    #[serde(deserialize_with = "nullable")]
    pub desired_ready_git_repos: i64,
    /// Hash of the agent's environment variables.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub agent_env_vars_hash: String,
    /// Registry prefix the agent was deployed with.
    #[serde(
        rename = "agentPrivateRepoURL",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub agent_private_repo_url: String,
    /// Whether the agent was deployed in the host network.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub agent_host_network: bool,
    /// `redeployAgentGeneration` of the deployed agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_deployed_generation: Option<i64>,
    /// The agent was migrated.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub agent_migrated: bool,
    /// The agent namespace was migrated.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub agent_namespace_migrated: bool,
    /// The cattle namespace was migrated.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub cattle_namespace_migrated: bool,
    /// Hash of the agent's affinity.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub agent_affinity_hash: String,
    /// Hash of the agent's resources.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub agent_resources_hash: String,
    /// Hash of the agent's tolerations.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub agent_tolerations_hash: String,
    /// The agent configuration changed and must be redeployed.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub agent_config_changed: bool,
    /// API server URL the agent was deployed with.
    #[serde(
        rename = "apiServerURL",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub api_server_url: String,
    /// Hash of the API server CA the agent was deployed with.
    #[serde(
        rename = "apiServerCAHash",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub api_server_ca_hash: String,
    /// TLS mode of the agent: `system-store` or `strict`.
    #[serde(
        rename = "agentTLSMode",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub agent_tls_mode: String,
    /// Human readable summary.
    #[serde(deserialize_with = "nullable")]
    pub display: ClusterDisplay,
    /// What the agent last reported.
    #[serde(deserialize_with = "nullable")]
    pub agent: AgentStatus,
    /// Garbage collection interval of the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub garbage_collection_interval: Option<Duration>,
}

/// `status.display` of a Cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct ClusterDisplay {
    /// `"<ready>/<desired>"` bundles.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub ready_bundles: String,
    /// Highest-ranked BundleDeployment state, or `WaitCheckIn` before the agent checked in.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub state: String,
}

/// What the agent reports about itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentStatus {
    /// Last check-in; Go writes `null` when the agent never checked in.
    pub last_seen: Option<Time>,
    /// Namespace the agent runs in (always written).
    #[serde(deserialize_with = "nullable")]
    pub namespace: String,
}

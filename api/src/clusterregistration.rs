//! ClusterRegistration and ClusterRegistrationToken: how agents register their cluster.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::serde_util::{is_default, nullable};

/// Spec of a ClusterRegistration, created by an agent with a registration token.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "fleet.cattle.io",
    version = "v1alpha1",
    kind = "ClusterRegistration",
    doc = "Registration request of an agent; granting it creates the Cluster and the agent's credentials.",
    namespaced,
    status = "ClusterRegistrationStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "Cluster-Name",
        type_ = "string",
        json_path = ".status.clusterName"
    ),
    printcolumn(name = "Labels", type_ = "string", json_path = ".spec.clusterLabels")
)]
#[serde(default, rename_all = "camelCase")]
pub struct ClusterRegistrationSpec {
    /// The configured client ID, or the kube-system namespace UID.
    #[serde(
        rename = "clientID",
        skip_serializing_if = "is_default",
        deserialize_with = "nullable"
    )]
    pub client_id: String,
    /// Random string; the registration secret's name contains it.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub client_random: String,
    /// Labels for the Cluster.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub cluster_labels: BTreeMap<String, String>,
}

/// Status of a ClusterRegistration, written by the controller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct ClusterRegistrationStatus {
    /// Name of the Cluster created for the registration.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub cluster_name: String,
    /// The registration was granted: the Cluster and its service account exist.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub granted: bool,
    /// fleet-rs: why the registration is not granted yet (`Ready` False with a message).
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub conditions: Vec<crate::condition::GenericCondition>,
}

/// Spec of a ClusterRegistrationToken.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "fleet.cattle.io",
    version = "v1alpha1",
    kind = "ClusterRegistrationToken",
    doc = "A token agents register with; it expires after its time to live.",
    namespaced,
    status = "ClusterRegistrationTokenStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(
        name = "Secret-Name",
        type_ = "string",
        json_path = ".status.secretName"
    )
)]
#[serde(default, rename_all = "camelCase")]
pub struct ClusterRegistrationTokenSpec {
    /// Time to live; the token is deleted when it expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
}

/// Status of a ClusterRegistrationToken.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct ClusterRegistrationTokenStatus {
    /// Expiry time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<Time>,
    /// Secret holding the values agents register with.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub secret_name: String,
    /// fleet-rs: whether the token's service account and values are in place (`Ready`), or
    /// why not.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub conditions: Vec<crate::condition::GenericCondition>,
}

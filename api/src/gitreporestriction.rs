//! GitRepoRestriction (`gitreporestriction_types.go`): limits what GitRepos in a namespace may use.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

use crate::serde_util::nullable;
use crate::toplevel::{serialize_head, top_level_kind};

/// Allowed and default values for the GitRepos of its namespace; violations set the GitRepo's
/// `Accepted` condition to False. Fields are at the top level, as in Fleet.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct GitRepoRestriction {
    /// Object metadata.
    #[schemars(skip)]
    #[serde(deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// Service account used when a GitRepo sets none.
    #[serde(deserialize_with = "nullable")]
    pub default_service_account: String,
    /// Service accounts GitRepos may use.
    #[serde(deserialize_with = "nullable")]
    pub allowed_service_accounts: Vec<String>,
    /// Regular expressions a GitRepo's `repo` must match.
    #[serde(deserialize_with = "nullable")]
    pub allowed_repo_patterns: Vec<String>,
    /// Client secret used when a GitRepo sets none.
    #[serde(deserialize_with = "nullable")]
    pub default_client_secret_name: String,
    /// Client secrets GitRepos may use.
    #[serde(deserialize_with = "nullable")]
    pub allowed_client_secret_names: Vec<String>,
    /// Target namespaces GitRepos may use (then `targetNamespace` is required).
    #[serde(deserialize_with = "nullable")]
    pub allowed_target_namespaces: Vec<String>,
}

top_level_kind!(
    GitRepoRestriction,
    kind = "GitRepoRestriction",
    plural = "gitreporestrictions",
    scope = NamespaceResourceScope,
    columns = [
        ("Default-ServiceAccount", ".defaultServiceAccount"),
        ("Allowed-ServiceAccounts", ".allowedServiceAccounts"),
    ]
);

impl Serialize for GitRepoRestriction {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serialize_head(serializer, self)?;
        let strings = [
            ("defaultServiceAccount", &self.default_service_account),
            ("defaultClientSecretName", &self.default_client_secret_name),
        ];
        for (key, value) in strings {
            if !value.is_empty() {
                map.serialize_entry(key, value)?;
            }
        }
        let lists = [
            ("allowedServiceAccounts", &self.allowed_service_accounts),
            ("allowedRepoPatterns", &self.allowed_repo_patterns),
            (
                "allowedClientSecretNames",
                &self.allowed_client_secret_names,
            ),
            ("allowedTargetNamespaces", &self.allowed_target_namespaces),
        ];
        for (key, value) in lists {
            if !value.is_empty() {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

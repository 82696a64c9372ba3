//! BundleNamespaceMapping (`bundlenamespacemapping_types.go`): lets bundles in one namespace
//! target clusters in other namespaces.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use schemars::JsonSchema;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

use crate::serde_util::nullable;
use crate::toplevel::{serialize_head, top_level_kind};

/// Bundles (in this object's namespace) matching `bundleSelector` may target clusters in the
/// namespaces matching `namespaceSelector`. Fields are at the top level, as in Fleet.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct BundleNamespaceMapping {
    /// Object metadata.
    #[schemars(skip)]
    #[serde(deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// Selector of the bundles that are mapped.
    pub bundle_selector: Option<LabelSelector>,
    /// Selector of the namespaces whose clusters the bundles may target.
    pub namespace_selector: Option<LabelSelector>,
}

top_level_kind!(
    BundleNamespaceMapping,
    kind = "BundleNamespaceMapping",
    plural = "bundlenamespacemappings",
    scope = NamespaceResourceScope,
    columns = []
);

impl Serialize for BundleNamespaceMapping {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serialize_head(serializer, self)?;
        if let Some(selector) = &self.bundle_selector {
            map.serialize_entry("bundleSelector", selector)?;
        }
        if let Some(selector) = &self.namespace_selector {
            map.serialize_entry("namespaceSelector", selector)?;
        }
        map.end()
    }
}

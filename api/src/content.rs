//! Content (`content_types.go`): the cluster-scoped blob holding a bundle's manifest.

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

use crate::serde_util::{base64_bytes, nullable};
use crate::toplevel::{serialize_head, top_level_kind};

/// A bundle's resources (gzip'd manifest), named by manifest ID, read by agents. Fields are at
/// the top level, as in Fleet.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct Content {
    /// Object metadata.
    #[schemars(skip)]
    #[serde(deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// The gzip-compressed manifest (base64 in JSON).
    #[schemars(schema_with = "base64_bytes")]
    pub content: Option<ByteString>,
    /// SHA-256 of `content`.
    #[serde(rename = "sha256sum", deserialize_with = "nullable")]
    pub sha256sum: String,
}

top_level_kind!(
    Content,
    kind = "Content",
    plural = "contents",
    scope = ClusterResourceScope,
    columns = []
);

impl Serialize for Content {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serialize_head(serializer, self)?;
        // Go's `omitempty` on []byte skips nil and empty alike.
        if let Some(content) = self.content.as_ref().filter(|c| !c.0.is_empty()) {
            map.serialize_entry("content", content)?;
        }
        if !self.sha256sum.is_empty() {
            map.serialize_entry("sha256sum", &self.sha256sum)?;
        }
        map.end()
    }
}

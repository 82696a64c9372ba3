//! The downstream cluster as the agent sees it: objects of any kind through dynamic clients,
//! with the kind → resource mapping (and scope) from discovery, cached.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::discovery::Scope;
use serde_json::Value;

use crate::monitor::ObjectKey;

/// Field manager of every server-side apply by the agent.
pub const FIELD_MANAGER: &str = "fleet-agent";

/// Errors talking to the downstream cluster.
#[derive(Debug, thiserror::Error)]
pub enum DownstreamError {
    /// The kind is not served by the cluster.
    #[error(
        "no resource type for kind {kind} in apiVersion {api_version} on the downstream cluster: {source}"
    )]
    UnknownKind {
        api_version: String,
        kind: String,
        #[source]
        source: kube::Error,
    },
    /// A request about one object failed.
    #[error("{action} {object}: {source}")]
    Object {
        action: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },
    /// An object could not be converted.
    #[error("{action} {object}: {message}")]
    Invalid {
        action: &'static str,
        object: String,
        message: String,
    },
}

/// A resolved kind: its resource and whether it is namespaced.
#[derive(Debug, Clone)]
pub struct Kind {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// Dynamic access to the downstream cluster; cheap to clone.
#[derive(Clone)]
pub struct Downstream {
    pub client: kube::Client,
    kinds: Arc<RwLock<HashMap<(String, String), Kind>>>,
}

/// `kind.group ns/name` of an object key, for messages.
pub fn describe(key: &ObjectKey) -> String {
    fleet_api::bundledeployment::object_display_name(
        &key.api_version,
        &key.kind,
        &key.namespace,
        &key.name,
    )
}

fn gvk_of(api_version: &str, kind: &str) -> GroupVersionKind {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    GroupVersionKind::gvk(group, version, kind)
}

impl Downstream {
    pub fn new(client: kube::Client) -> Self {
        Downstream {
            client,
            kinds: Arc::default(),
        }
    }

    /// Whether a kind is cluster-scoped, from what is cached (`None`: not resolved yet).
    pub fn cached_cluster_scoped(&self, api_version: &str, kind: &str) -> Option<bool> {
        self.kinds
            .read()
            .ok()?
            .get(&(api_version.to_string(), kind.to_string()))
            .map(|k| !k.namespaced)
    }

    /// Resolves a kind through discovery (cached once found).
    pub async fn kind(&self, api_version: &str, kind: &str) -> Result<Kind, DownstreamError> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(k) = self.kinds.read().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(k);
        }
        let (resource, caps) =
            kube::discovery::pinned_kind(&self.client, &gvk_of(api_version, kind))
                .await
                .map_err(|source| DownstreamError::UnknownKind {
                    api_version: api_version.to_string(),
                    kind: kind.to_string(),
                    source,
                })?;
        let resolved = Kind {
            resource,
            namespaced: caps.scope == Scope::Namespaced,
        };
        if let Ok(mut m) = self.kinds.write() {
            m.insert(key, resolved.clone());
        }
        Ok(resolved)
    }

    /// Forgets a kind (after a 404 on its resource, e.g. a CRD was removed).
    pub fn forget(&self, api_version: &str, kind: &str) {
        if let Ok(mut m) = self.kinds.write() {
            m.remove(&(api_version.to_string(), kind.to_string()));
        }
    }

    fn api(&self, kind: &Kind, namespace: &str) -> Api<DynamicObject> {
        if kind.namespaced && !namespace.is_empty() {
            Api::namespaced_with(self.client.clone(), namespace, &kind.resource)
        } else {
            Api::all_with(self.client.clone(), &kind.resource)
        }
    }

    /// Reads one object; `None` when it does not exist.
    pub async fn get(&self, key: &ObjectKey) -> Result<Option<Value>, DownstreamError> {
        let kind = self.kind(&key.api_version, &key.kind).await?;
        let obj = self
            .api(&kind, &key.namespace)
            .get_opt(&key.name)
            .await
            .map_err(|source| DownstreamError::Object {
                action: "reading",
                object: describe(key),
                source,
            })?;
        obj.map(|o| to_value(&o, "reading", key)).transpose()
    }

    /// Server-side apply of `obj` (field manager `fleet-agent`, forced). The response is
    /// read straight into JSON (no typed metadata whose timestamps would be parsed only to be
    /// written back), without the managedFields the agent never reads.
    pub async fn apply(&self, key: &ObjectKey, obj: &Value) -> Result<Value, DownstreamError> {
        let kind = self.kind(&key.api_version, &key.kind).await?;
        let namespace =
            (kind.namespaced && !key.namespace.is_empty()).then_some(key.namespace.as_str());
        let url = <DynamicObject as kube::Resource>::url_path(&kind.resource, namespace);
        let object_error = |source| DownstreamError::Object {
            action: "applying",
            object: describe(key),
            source,
        };
        let request = kube::core::Request::new(url)
            .patch(
                &key.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(obj),
            )
            .map_err(|e| object_error(kube::Error::BuildRequest(e)))?;
        let text = self
            .client
            .request_text(request)
            .await
            .map_err(object_error)?;
        let mut applied: Value =
            serde_json::from_str(&text).map_err(|e| DownstreamError::Invalid {
                action: "applying",
                object: describe(key),
                message: e.to_string(),
            })?;
        if let Some(m) = applied.as_object_mut() {
            if let Some(Value::Object(meta)) = m.get_mut("metadata") {
                meta.remove("managedFields");
            }
            if !m.contains_key("apiVersion") || m["apiVersion"].as_str().is_some_and(str::is_empty)
            {
                m.insert("apiVersion".into(), Value::String(key.api_version.clone()));
            }
            if !m.contains_key("kind") || m["kind"].as_str().is_some_and(str::is_empty) {
                m.insert("kind".into(), Value::String(key.kind.clone()));
            }
        }
        Ok(applied)
    }

    /// Merge-patches `obj`.
    pub async fn merge_patch(&self, key: &ObjectKey, patch: &Value) -> Result<(), DownstreamError> {
        let kind = self.kind(&key.api_version, &key.kind).await?;
        self.api(&kind, &key.namespace)
            .patch(&key.name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(|source| DownstreamError::Object {
                action: "patching",
                object: describe(key),
                source,
            })?;
        Ok(())
    }

    /// Deletes an object (background propagation); a missing object is not an error.
    pub async fn delete(&self, key: &ObjectKey) -> Result<(), DownstreamError> {
        let kind = match self.kind(&key.api_version, &key.kind).await {
            Ok(k) => k,
            // The kind is gone (CRD removed): so are its objects.
            Err(DownstreamError::UnknownKind { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        let object_error = |source| DownstreamError::Object {
            action: "deleting",
            object: describe(key),
            source,
        };
        // The response (the object as deleted) is not read.
        let namespace =
            (kind.namespaced && !key.namespace.is_empty()).then_some(key.namespace.as_str());
        let url = <DynamicObject as kube::Resource>::url_path(&kind.resource, namespace);
        let request = kube::core::Request::new(url)
            .delete(&key.name, &DeleteParams::background())
            .map_err(|e| object_error(kube::Error::BuildRequest(e)))?;
        match self.client.request_text(request).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source) => Err(object_error(source)),
        }
    }

    /// Lists the objects of a kind (all namespaces) matching a label selector.
    pub async fn list(
        &self,
        api_version: &str,
        kind_name: &str,
        label_selector: &str,
    ) -> Result<Vec<Value>, DownstreamError> {
        let kind = self.kind(api_version, kind_name).await?;
        let key = ObjectKey {
            api_version: api_version.to_string(),
            kind: kind_name.to_string(),
            ..Default::default()
        };
        let list = Api::<DynamicObject>::all_with(self.client.clone(), &kind.resource)
            .list(&ListParams::default().labels(label_selector))
            .await
            .map_err(|source| DownstreamError::Object {
                action: "listing",
                object: format!("{} objects", kind_name.to_lowercase()),
                source,
            })?;
        list.items
            .iter()
            .map(|o| {
                let mut v = to_value(o, "listing", &key)?;
                // List items carry no type meta.
                if let Some(m) = v.as_object_mut() {
                    m.insert("apiVersion".into(), Value::String(api_version.to_string()));
                    m.insert("kind".into(), Value::String(kind_name.to_string()));
                }
                Ok(v)
            })
            .collect()
    }
}

fn to_value(
    obj: &DynamicObject,
    action: &'static str,
    key: &ObjectKey,
) -> Result<Value, DownstreamError> {
    let mut v = serde_json::to_value(obj).map_err(|e| DownstreamError::Invalid {
        action,
        object: describe(key),
        message: e.to_string(),
    })?;
    if let Some(m) = v.as_object_mut() {
        if !m.contains_key("apiVersion") || m["apiVersion"].as_str().is_some_and(str::is_empty) {
            m.insert("apiVersion".into(), Value::String(key.api_version.clone()));
        }
        if !m.contains_key("kind") || m["kind"].as_str().is_some_and(str::is_empty) {
            m.insert("kind".into(), Value::String(key.kind.clone()));
        }
    }
    Ok(v)
}

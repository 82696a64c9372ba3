//! Objects as the controller's shared caches and the agent's watch decode them: everything
//! but `metadata.managedFields`, which neither reads. The API server sends them with every
//! watch event, and a Cluster or BundleDeployment written by the controller, the agent and
//! registration carries one field set per writer: decoding those lists into typed entries cost
//! about as much as the rest of the object, on every status change of the fleet.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::core::object::{HasSpec, HasStatus};
use kube::runtime::watcher;
use serde::de::DeserializeOwned;

/// `K` decoded without its managedFields.
#[derive(Debug, Clone)]
pub struct Unmanaged<K>(pub K);

/// `ObjectMeta` without `managedFields` (unknown fields are skipped by the decoder).
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    creation_timestamp: Option<Time>,
    #[serde(default)]
    deletion_grace_period_seconds: Option<i64>,
    #[serde(default)]
    deletion_timestamp: Option<Time>,
    #[serde(default)]
    finalizers: Option<Vec<String>>,
    #[serde(default)]
    generate_name: Option<String>,
    #[serde(default)]
    generation: Option<i64>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    owner_references: Option<Vec<OwnerReference>>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    self_link: Option<String>,
    #[serde(default)]
    uid: Option<String>,
}

impl From<Metadata> for ObjectMeta {
    fn from(m: Metadata) -> Self {
        ObjectMeta {
            annotations: m.annotations,
            creation_timestamp: m.creation_timestamp,
            deletion_grace_period_seconds: m.deletion_grace_period_seconds,
            deletion_timestamp: m.deletion_timestamp,
            finalizers: m.finalizers,
            generate_name: m.generate_name,
            generation: m.generation,
            labels: m.labels,
            managed_fields: None,
            name: m.name,
            namespace: m.namespace,
            owner_references: m.owner_references,
            resource_version: m.resource_version,
            self_link: m.self_link,
            uid: m.uid,
        }
    }
}

impl<'de, K> serde::Deserialize<'de> for Unmanaged<K>
where
    K: kube::Resource + HasSpec + HasStatus + Default,
    K::Spec: DeserializeOwned,
    K::Status: DeserializeOwned,
{
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(bound(deserialize = "S: DeserializeOwned, T: DeserializeOwned"))]
        struct Object<S, T> {
            #[serde(default)]
            metadata: Metadata,
            spec: S,
            #[serde(default = "Option::default")]
            status: Option<T>,
        }
        let object = Object::<K::Spec, K::Status>::deserialize(deserializer)?;
        let mut decoded = K::default();
        *decoded.meta_mut() = object.metadata.into();
        *decoded.spec_mut() = object.spec;
        *decoded.status_mut() = object.status;
        Ok(Unmanaged(decoded))
    }
}

impl<K> kube::Resource for Unmanaged<K>
where
    K: kube::Resource<DynamicType = ()>,
{
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        self.0.meta()
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.0.meta_mut()
    }
}

/// A watch event of [`Unmanaged`] objects as one of the objects.
pub fn unwrap_event<K>(event: watcher::Event<Unmanaged<K>>) -> watcher::Event<K> {
    match event {
        watcher::Event::Apply(o) => watcher::Event::Apply(o.0),
        watcher::Event::Delete(o) => watcher::Event::Delete(o.0),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(o) => watcher::Event::InitApply(o.0),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// `object` without its managedFields, as the caches keep objects (a write's response carries
/// them; the watch's copy of the same version does not).
pub fn without_managed_fields<K: kube::Resource>(mut object: K) -> K {
    object.meta_mut().managed_fields = None;
    object
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BundleDeployment, Cluster};

    #[test]
    fn an_unmanaged_bundle_deployment_is_the_object_without_its_managed_fields() {
        let json = serde_json::json!({
            "apiVersion": "fleet.cattle.io/v1alpha1",
            "kind": "BundleDeployment",
            "metadata": {
                "name": "app",
                "namespace": "cluster-ns",
                "uid": "u-1",
                "resourceVersion": "42",
                "generation": 3,
                "creationTimestamp": "2026-01-02T03:04:05Z",
                "deletionTimestamp": null,
                "labels": {"fleet.cattle.io/commit": "abc"},
                "annotations": {"a": "b"},
                "finalizers": ["fleet.cattle.io/bundle-deployment-finalizer"],
                "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "x", "uid": "u-0"}],
                "managedFields": [{"manager": "fleet-controller", "operation": "Apply",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}],
            },
            "spec": {"deploymentID": "s-1:h", "options": {"defaultNamespace": "demo"}},
            "status": {"appliedDeploymentID": "s-0:h", "release": "demo/app:1"},
        });
        let full: BundleDeployment = serde_json::from_value(json.clone()).unwrap();
        let unmanaged: Unmanaged<BundleDeployment> = serde_json::from_value(json).unwrap();
        assert!(full.metadata.managed_fields.is_some());
        assert_eq!(unmanaged.0, without_managed_fields(full));
    }

    #[test]
    fn an_unmanaged_cluster_without_status_decodes() {
        let json = serde_json::json!({
            "apiVersion": "fleet.cattle.io/v1alpha1",
            "kind": "Cluster",
            "metadata": {"name": "c1", "namespace": "fleet-default",
                "managedFields": [{"manager": "agent", "operation": "Update"}]},
            "spec": {"clientID": "id-1"},
        });
        let full: Cluster = serde_json::from_value(json.clone()).unwrap();
        let unmanaged: Unmanaged<Cluster> = serde_json::from_value(json).unwrap();
        assert_eq!(unmanaged.0, without_managed_fields(full));
        assert!(unmanaged.0.status.is_none());
    }
}

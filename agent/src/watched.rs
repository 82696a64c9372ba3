//! The agent's own BundleDeployments as its watch decodes them: everything but
//! `metadata.managedFields`, which the agent never reads. The API server sends them with every
//! event (a status write by the agent comes back as an event too), and decoding the field
//! lists into typed entries cost more than the rest of the object.

use std::borrow::Cow;
use std::collections::BTreeMap;

use fleet_api::{BundleDeployment, BundleDeploymentSpec, BundleDeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::runtime::watcher;

/// A BundleDeployment decoded without its managedFields.
#[derive(Debug, Clone)]
pub struct WatchedBundleDeployment(pub BundleDeployment);

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

impl<'de> serde::Deserialize<'de> for WatchedBundleDeployment {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Object {
            #[serde(default)]
            metadata: Metadata,
            spec: BundleDeploymentSpec,
            #[serde(default)]
            status: Option<BundleDeploymentStatus>,
        }
        let object = Object::deserialize(deserializer)?;
        let mut bd = BundleDeployment::new("", object.spec);
        bd.metadata = object.metadata.into();
        bd.status = object.status;
        Ok(WatchedBundleDeployment(bd))
    }
}

impl kube::Resource for WatchedBundleDeployment {
    type DynamicType = ();
    type Scope = <BundleDeployment as kube::Resource>::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        BundleDeployment::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        BundleDeployment::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        BundleDeployment::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        BundleDeployment::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.0.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.0.metadata
    }
}

/// A watch event of [`WatchedBundleDeployment`]s as one of BundleDeployments.
pub fn unwrap_event(
    event: watcher::Event<WatchedBundleDeployment>,
) -> watcher::Event<BundleDeployment> {
    match event {
        watcher::Event::Apply(o) => watcher::Event::Apply(o.0),
        watcher::Event::Delete(o) => watcher::Event::Delete(o.0),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(o) => watcher::Event::InitApply(o.0),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watched_bundle_deployment_is_the_object_without_its_managed_fields() {
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
        let watched: WatchedBundleDeployment = serde_json::from_value(json).unwrap();
        let mut expected = full.clone();
        expected.metadata.managed_fields = None;
        assert!(full.metadata.managed_fields.is_some());
        assert_eq!(watched.0, expected);
    }
}

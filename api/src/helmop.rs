//! HelmOp (Fleet v0.13's name) and HelmApp (Fleet v0.12's name): a Helm chart deployed to
//! clusters without a git repository. Both kinds share [`HelmOpSpec`] and [`HelmOpStatus`].

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::CustomResource;
use kube::core::crd::v1::CustomResourceExt;
use kube::core::object::{HasSpec, HasStatus};
use kube::core::{ApiResource, NamespaceResourceScope, Resource};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::bundle::with_bundle_spec;
use crate::serde_util::{is_default, nullable};
use crate::status::StatusBase;

with_bundle_spec! {
    /// Spec of a HelmOp/HelmApp: a bundle spec (inline) whose `helm` options name the chart.
    #[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[kube(
        group = "fleet.cattle.io",
        version = "v1alpha1",
        kind = "HelmOp",
    doc = "A Helm chart from a repository deployed to target clusters without a git repository.",
        plural = "helmops",
        namespaced,
        status = "HelmOpStatus",
        category = "fleet",
        derive = "PartialEq",
        derive = "Default",
        printcolumn(name = "Repo", type_ = "string", json_path = ".spec.helm.repo"),
        printcolumn(name = "Chart", type_ = "string", json_path = ".spec.helm.chart"),
        printcolumn(name = "Version", type_ = "string", json_path = ".status.version"),
        printcolumn(
            name = "BundleDeployments-Ready",
            type_ = "string",
            json_path = ".status.display.readyBundleDeployments"
        ),
        printcolumn(
            name = "Status",
            type_ = "string",
            json_path = r#".status.conditions[?(@.type=="Ready")].message"#
        )
    )]
    #[serde(default, rename_all = "camelCase")]
    pub struct HelmOpSpec {
        /// Labels copied to the Bundle (usable in `dependsOn.selector`).
        #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
        pub labels: BTreeMap<String, String>,
        /// Secret with credentials for a private Helm repository.
        #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
        pub helm_secret_name: String,
        /// Skip TLS verification when downloading the chart.
        #[serde(rename = "insecureSkipTLSVerify", skip_serializing_if = "is_default", deserialize_with = "nullable")]
        pub insecure_skip_tls_verify: bool,
        /// How often the controller checks the repository for a newer chart version matching a
        /// `helm.version` constraint (Fleet v0.13); unset or zero: only when the spec changes.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub polling_interval: Option<crate::duration::Duration>,
    }
}

/// Status of a HelmOp/HelmApp.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct HelmOpStatus {
    /// Shared status fields (Go embeds them inline).
    #[serde(flatten)]
    pub base: StatusBase,
    /// Chart version deployed; resolved from the repository for `*` or an empty version.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub version: String,
}

/// HelmApp spec: the same as [`HelmOpSpec`].
pub type HelmAppSpec = HelmOpSpec;
/// HelmApp status: the same as [`HelmOpStatus`].
pub type HelmAppStatus = HelmOpStatus;

/// A HelmApp: Fleet v0.12's name of [`HelmOp`], same schema, kind `HelmApp`, plural `helmapps`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmApp {
    /// Object metadata.
    #[schemars(skip)]
    pub metadata: ObjectMeta,
    /// The chart and how to deploy it.
    pub spec: HelmOpSpec,
    /// Status written by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<HelmOpStatus>,
}

impl HelmApp {
    /// A HelmApp named `name` with `spec`.
    pub fn new(name: &str, spec: HelmOpSpec) -> Self {
        HelmApp {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..Default::default()
            },
            spec,
            status: None,
        }
    }
}

impl From<HelmApp> for HelmOp {
    fn from(app: HelmApp) -> Self {
        HelmOp {
            metadata: app.metadata,
            spec: app.spec,
            status: app.status,
        }
    }
}

impl From<HelmOp> for HelmApp {
    fn from(op: HelmOp) -> Self {
        HelmApp {
            metadata: op.metadata,
            spec: op.spec,
            status: op.status,
        }
    }
}

impl Serialize for HelmApp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut obj = serializer.serialize_struct("HelmApp", 5)?;
        obj.serialize_field("apiVersion", crate::consts::API_VERSION)?;
        obj.serialize_field("kind", "HelmApp")?;
        obj.serialize_field("metadata", &self.metadata)?;
        obj.serialize_field("spec", &self.spec)?;
        if let Some(status) = &self.status {
            obj.serialize_field("status", status)?;
        } else {
            obj.skip_field("status")?;
        }
        obj.end()
    }
}

impl Resource for HelmApp {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "HelmApp".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        crate::consts::GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        crate::consts::VERSION.into()
    }
    fn api_version(_: &()) -> Cow<'_, str> {
        crate::consts::API_VERSION.into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "helmapps".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl HasSpec for HelmApp {
    type Spec = HelmOpSpec;
    fn spec(&self) -> &HelmOpSpec {
        &self.spec
    }
    fn spec_mut(&mut self) -> &mut HelmOpSpec {
        &mut self.spec
    }
}

impl HasStatus for HelmApp {
    type Status = HelmOpStatus;
    fn status(&self) -> Option<&HelmOpStatus> {
        self.status.as_ref()
    }
    fn status_mut(&mut self) -> &mut Option<HelmOpStatus> {
        &mut self.status
    }
}

impl CustomResourceExt for HelmApp {
    /// HelmOp's CRD under the HelmApp names: the schema is the same.
    fn crd() -> CustomResourceDefinition {
        let mut crd = HelmOp::crd();
        crd.metadata.name = Some(Self::crd_name().to_string());
        crd.spec.names.kind = "HelmApp".into();
        crd.spec.names.plural = "helmapps".into();
        crd.spec.names.singular = Some("helmapp".into());
        crd.spec.names.list_kind = None;
        crd
    }

    fn crd_name() -> &'static str {
        "helmapps.fleet.cattle.io"
    }

    fn api_resource() -> ApiResource {
        ApiResource::erase::<Self>(&())
    }

    fn shortnames() -> &'static [&'static str] {
        &[]
    }
}

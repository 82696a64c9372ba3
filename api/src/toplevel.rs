//! Support for the kinds that keep their fields at the top level of the object instead of
//! under `spec` (BundleNamespaceMapping, GitRepoRestriction, Content).
//!
//! They are plain structs (so deserialisation errors keep full field paths) with
//! hand-written `Resource`, `CustomResourceExt` and `Serialize` impls.

/// Implements `kube::Resource` and `CustomResourceExt` for a top-level-fields kind.
///
/// `$columns` are `(name, jsonPath)` printer columns of type string.
macro_rules! top_level_kind {
    (
        $ty:ident,
        kind = $kind:literal,
        plural = $plural:literal,
        scope = $scope:ident,
        columns = [$(($col_name:literal, $col_path:literal)),* $(,)?]
    ) => {
        impl ::kube::core::Resource for $ty {
            type DynamicType = ();
            type Scope = ::kube::core::$scope;

            fn kind(_: &()) -> ::std::borrow::Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> ::std::borrow::Cow<'_, str> {
                $crate::consts::GROUP.into()
            }
            fn version(_: &()) -> ::std::borrow::Cow<'_, str> {
                $crate::consts::VERSION.into()
            }
            fn api_version(_: &()) -> ::std::borrow::Cow<'_, str> {
                $crate::consts::API_VERSION.into()
            }
            fn plural(_: &()) -> ::std::borrow::Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(
                &mut self,
            ) -> &mut ::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }

        impl ::kube::core::crd::v1::CustomResourceExt for $ty {
            fn crd() -> ::k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
                $crate::crds::top_level_crd::<$ty>(
                    $kind,
                    $plural,
                    stringify!($scope) == "NamespaceResourceScope",
                    &[$(($col_name, $col_path)),*],
                )
            }

            fn crd_name() -> &'static str {
                concat!($plural, ".fleet.cattle.io")
            }

            fn api_resource() -> ::kube::core::ApiResource {
                ::kube::core::ApiResource::erase::<Self>(&())
            }

            fn shortnames() -> &'static [&'static str] {
                &[]
            }
        }
    };
}
pub(crate) use top_level_kind;

/// Starts serialising a top-level kind: `apiVersion`, `kind`, `metadata`.
pub(crate) fn serialize_head<S, K>(serializer: S, object: &K) -> Result<S::SerializeMap, S::Error>
where
    S: serde::Serializer,
    K: kube::core::Resource<DynamicType = ()>,
{
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(None)?;
    map.serialize_entry("apiVersion", &K::api_version(&()))?;
    map.serialize_entry("kind", &K::kind(&()))?;
    map.serialize_entry("metadata", object.meta())?;
    Ok(map)
}

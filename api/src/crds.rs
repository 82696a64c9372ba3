//! CustomResourceDefinitions generated from the types in this crate.
//!
//! `fleet crds` prints [`to_yaml`]; `api/crds/fleet-crds.yaml` is its committed output and a
//! test fails when the two drift apart.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionNames,
    CustomResourceDefinitionSpec, CustomResourceDefinitionVersion, CustomResourceSubresourceStatus,
    CustomResourceSubresources, CustomResourceValidation, JSONSchemaProps,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::crd::v1::CustomResourceExt;
use schemars::JsonSchema;

use crate::consts::{GROUP, VERSION};

/// Every CRD fleet-rs serves, in a stable order (alphabetical by plural name), one per kind.
pub fn all() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        crate::Bundle::crd(),
        crate::BundleDeployment::crd(),
        crate::BundleNamespaceMapping::crd(),
        crate::Cluster::crd(),
        crate::ClusterGroup::crd(),
        crate::ClusterRegistration::crd(),
        crate::ClusterRegistrationToken::crd(),
        crate::Content::crd(),
        crate::GitRepo::crd(),
        crate::GitRepoRestriction::crd(),
        crate::HelmApp::crd(),
        crate::HelmOp::crd(),
        crate::ImageScan::crd(),
    ];
    for crd in &mut crds {
        finish(crd);
    }
    crds.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    crds
}

/// All CRDs as a multi-document YAML stream (`---` separated), as `fleet crds` prints them.
pub fn to_yaml() -> Result<String, serde_norway::Error> {
    let mut out = String::new();
    for crd in all() {
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(&crd)?);
    }
    Ok(out)
}

/// Brings a generated CRD in line with Fleet's: every version has the status subresource
/// (Fleet declares it even for kinds without a status field), and the schema carries no
/// `default`s — Fleet applies its defaults in code, and serde's `#[serde(default)]` would
/// otherwise leak zero values into the API server's defaulting.
fn finish(crd: &mut CustomResourceDefinition) {
    crd.spec.names.list_kind = Some(format!("{}List", crd.spec.names.kind));
    for version in &mut crd.spec.versions {
        let subresources = version
            .subresources
            .get_or_insert_with(CustomResourceSubresources::default);
        if subresources.status.is_none() {
            subresources.status = Some(CustomResourceSubresourceStatus(serde_json::json!({})));
        }
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            strip_defaults(schema);
            if let Some(properties) = schema.properties.as_mut() {
                for (name, property) in properties.iter_mut() {
                    // `spec` and `status` themselves are required objects in the Rust types.
                    if name == "spec" || name == "status" {
                        for_each_subschema(property, accept_null);
                    } else {
                        accept_null(property);
                    }
                }
                // Declared like controller-gen does, so `kubectl explain` shows them.
                let string = || JSONSchemaProps {
                    type_: Some("string".into()),
                    ..Default::default()
                };
                properties.insert("apiVersion".into(), string());
                properties.insert("kind".into(), string());
                properties.insert(
                    "metadata".into(),
                    JSONSchemaProps {
                        type_: Some("object".into()),
                        ..Default::default()
                    },
                );
            }
        }
    }
}

/// Marks every property below `schema` nullable: the types read `null` as the zero value
/// (as Go does), and Fleet's CRDs accept `null` for nearly every field (`+nullable`).
fn accept_null(schema: &mut JSONSchemaProps) {
    schema.nullable = Some(true);
    for_each_subschema(schema, accept_null);
}

fn for_each_subschema(schema: &mut JSONSchemaProps, f: fn(&mut JSONSchemaProps)) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
    };
    if let Some(properties) = schema.properties.as_mut() {
        properties.values_mut().for_each(f);
    }
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(s)) => f(s),
        Some(JSONSchemaPropsOrArray::Schemas(list)) => list.iter_mut().for_each(f),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(s)) = schema.additional_properties.as_mut() {
        f(s);
    }
}

fn strip_defaults(schema: &mut JSONSchemaProps) {
    schema.default = None;
    for_each_subschema(schema, strip_defaults);
    for list in [&mut schema.all_of, &mut schema.any_of, &mut schema.one_of]
        .into_iter()
        .flatten()
    {
        list.iter_mut().for_each(strip_defaults);
    }
}

/// The OpenAPI v3 schema of `T`, generated with the settings kube's derive uses
/// (inlined, nullable options, structural).
pub(crate) fn structural_schema<T: JsonSchema>() -> JSONSchemaProps {
    let generator = schemars::generate::SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(schemars::transform::AddNullable::default())
        .with_transform(kube::core::schema::StructuralSchemaRewriter)
        .with_transform(kube::core::schema::OptionalEnum)
        .with_transform(kube::core::schema::OptionalIntOrString)
        .into_generator();
    let schema = generator.into_root_schema_for::<T>();
    // The schema is built from our own types, so it always fits JSONSchemaProps; an empty
    // schema would only hide a bug that the CRD tests catch.
    serde_json::to_value(schema)
        .and_then(serde_json::from_value)
        .unwrap_or_default()
}

/// CRD of a kind whose fields sit at the top level (no spec/status).
pub(crate) fn top_level_crd<T: JsonSchema>(
    kind: &str,
    plural: &str,
    namespaced: bool,
    columns: &[(&str, &str)],
) -> CustomResourceDefinition {
    let printer_columns: Vec<CustomResourceColumnDefinition> = columns
        .iter()
        .map(|(name, json_path)| CustomResourceColumnDefinition {
            name: (*name).to_string(),
            type_: "string".to_string(),
            json_path: (*json_path).to_string(),
            ..Default::default()
        })
        .collect();
    CustomResourceDefinition {
        metadata: ObjectMeta {
            name: Some(format!("{plural}.{GROUP}")),
            ..Default::default()
        },
        spec: CustomResourceDefinitionSpec {
            group: GROUP.to_string(),
            names: CustomResourceDefinitionNames {
                kind: kind.to_string(),
                plural: plural.to_string(),
                singular: Some(kind.to_ascii_lowercase()),
                ..Default::default()
            },
            scope: if namespaced { "Namespaced" } else { "Cluster" }.to_string(),
            versions: vec![CustomResourceDefinitionVersion {
                name: VERSION.to_string(),
                served: true,
                storage: true,
                additional_printer_columns: (!printer_columns.is_empty())
                    .then_some(printer_columns),
                schema: Some(CustomResourceValidation {
                    open_api_v3_schema: Some(structural_schema::<T>()),
                }),
                subresources: Some(CustomResourceSubresources {
                    status: Some(CustomResourceSubresourceStatus(serde_json::json!({}))),
                    scale: None,
                }),
                ..Default::default()
            }],
            ..Default::default()
        },
        ..Default::default()
    }
}

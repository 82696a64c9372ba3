//! OpenAPI v3 documents: the root index and one document per group-version, with the paths and
//! parameters kubectl inspects (it sends `fieldValidation`/`dryRun` only to servers whose PATCH
//! operations declare them) and component schemas (built-ins from k8s-openapi, custom kinds from
//! their CRD schema).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::registry::{Registry, ResourceInfo};

/// Schemas of the built-in kinds, generated once from k8s-openapi.
fn builtin_schemas() -> &'static (Map<String, Value>, HashMap<String, String>) {
    static SCHEMAS: OnceLock<(Map<String, Value>, HashMap<String, String>)> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        use k8s_openapi::api::{apps, batch, coordination, core, networking, policy, rbac, storage};
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
        let mut generator = SchemaSettings::openapi3().into_generator();
        let mut names = HashMap::new();
        macro_rules! add {
            ($($kind:literal => $ty:ty),* $(,)?) => {$(
                generator.subschema_for::<$ty>();
                names.insert($kind.to_string(), <$ty as schemars::JsonSchema>::schema_name().to_string());
            )*};
        }
        add!(
            "Namespace" => core::v1::Namespace, "ConfigMap" => core::v1::ConfigMap, "Secret" => core::v1::Secret,
            "ServiceAccount" => core::v1::ServiceAccount, "Service" => core::v1::Service, "Pod" => core::v1::Pod,
            "Node" => core::v1::Node, "Event" => core::v1::Event, "Endpoints" => core::v1::Endpoints,
            "PersistentVolumeClaim" => core::v1::PersistentVolumeClaim, "PersistentVolume" => core::v1::PersistentVolume,
            "ResourceQuota" => core::v1::ResourceQuota, "LimitRange" => core::v1::LimitRange,
            "Deployment" => apps::v1::Deployment, "ReplicaSet" => apps::v1::ReplicaSet, "StatefulSet" => apps::v1::StatefulSet,
            "DaemonSet" => apps::v1::DaemonSet, "ControllerRevision" => apps::v1::ControllerRevision,
            "Job" => batch::v1::Job, "CronJob" => batch::v1::CronJob,
            "Role" => rbac::v1::Role, "RoleBinding" => rbac::v1::RoleBinding, "ClusterRole" => rbac::v1::ClusterRole,
            "ClusterRoleBinding" => rbac::v1::ClusterRoleBinding, "Lease" => coordination::v1::Lease,
            "CustomResourceDefinition" => apiextensions::v1::CustomResourceDefinition,
            "Ingress" => networking::v1::Ingress, "NetworkPolicy" => networking::v1::NetworkPolicy,
            "PodDisruptionBudget" => policy::v1::PodDisruptionBudget,
            "StorageClass" => storage::v1::StorageClass,
            "HorizontalPodAutoscaler" => k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler,
            "ObjectMeta" => k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        );
        (generator.take_definitions(true), names)
    })
}

/// Fields of a built-in object that its schema does not declare (for `fieldValidation=Strict`).
pub fn unknown_builtin_fields(kind: &str, obj: &Value) -> Vec<String> {
    let (defs, names) = builtin_schemas();
    let Some(root) = names.get(kind).and_then(|n| defs.get(n)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    unknown_fields(defs, root, obj, "", 0, &mut out);
    out
}

fn resolve<'a>(defs: &'a Map<String, Value>, mut schema: &'a Value) -> Option<&'a Value> {
    for _ in 0..8 {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            schema = defs.get(r.rsplit('/').next()?)?;
        } else if let Some([one]) = schema
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            schema = one;
        } else {
            return Some(schema);
        }
    }
    None
}

fn unknown_fields(
    defs: &Map<String, Value>,
    schema: &Value,
    v: &Value,
    path: &str,
    depth: usize,
    out: &mut Vec<String>,
) {
    let Some(schema) = resolve(defs, schema) else {
        return;
    };
    if depth > 64 {
        return;
    }
    match v {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in map {
                let child_path = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (props.and_then(|p| p.get(k)), additional) {
                    (Some(s), _) | (None, Some(s)) => {
                        unknown_fields(defs, s, child, &child_path, depth + 1, out)
                    }
                    (None, None) if props.is_some() => out.push(child_path),
                    (None, None) => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    unknown_fields(defs, s, item, &format!("{path}[{i}]"), depth + 1, out);
                }
            }
        }
        _ => {}
    }
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A short, stable hash of what a group-version serves, for the root index's `?hash=`.
fn gv_hash(reg: &Registry, group: &str, version: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for r in reg.resources_in(group, version) {
        r.plural.hash(&mut h);
        r.kind.hash(&mut h);
        r.namespaced.hash(&mut h);
        if let Some(s) = r.schema(version) {
            s.to_string().hash(&mut h);
        }
    }
    format!("{:016X}", h.finish())
}

pub fn root(reg: &Registry) -> Value {
    let mut paths = Map::new();
    for (g, versions) in reg.groups() {
        for v in versions {
            let p = gv_path(&g, &v);
            paths.insert(p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", gv_hash(reg, &g, &v))}));
        }
    }
    json!({"paths": paths})
}

fn schema_name(r: &ResourceInfo, version: &str) -> String {
    if r.builtin
        && let Some(n) = builtin_schemas().1.get(&r.kind)
    {
        return n.clone();
    }
    let reversed: Vec<&str> = r.group.split('.').rev().collect();
    format!("{}.{version}.{}", reversed.join("."), r.kind)
}

fn param(name: &str, location: &str, description: &str) -> Value {
    json!({"name": name, "in": location, "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(
    r: &ResourceInfo,
    version: &str,
    action: &str,
    verb: &str,
    extra_params: &[Value],
    schema_ref: &str,
    body: Option<Value>,
) -> Value {
    let mut op = json!({
        "operationId": format!("{verb}{}{}", if r.namespaced { "Namespaced" } else { "" }, r.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": r.group, "version": version, "kind": r.kind},
        "parameters": extra_params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": schema_ref}}}}},
    });
    if let Some(b) = body {
        op["requestBody"] = b;
    }
    op
}

/// The OpenAPI v3 document of one group-version.
pub fn group_version(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources = reg.resources_in(group, version);
    if resources.is_empty() {
        return None;
    }
    let (builtins, _) = builtin_schemas();
    let mut schemas = Map::new();
    let mut paths = Map::new();
    let write_params = [
        param(
            "dryRun",
            "query",
            "When present, indicates that modifications should not be persisted.",
        ),
        param(
            "fieldManager",
            "query",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        param(
            "fieldValidation",
            "query",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields.",
        ),
    ];
    let mut patch_params = write_params.to_vec();
    patch_params.push(
        json!({"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}),
    );
    let prefix = format!("/{}", gv_path(group, version));
    for r in resources {
        let name = schema_name(r, version);
        let schema_ref = format!("#/components/schemas/{name}");
        let gvk = json!([{"group": r.group, "version": version, "kind": r.kind}]);
        if r.builtin {
            if let Some(s) = builtins.get(&name) {
                let mut s = s.clone();
                s["x-kubernetes-group-version-kind"] = gvk;
                schemas.insert(name.clone(), s);
            }
        } else {
            let mut s = r
                .schema(version)
                .map(|s| (**s).clone())
                .unwrap_or(json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
            if let Some(props) = s.get_mut("properties").and_then(Value::as_object_mut) {
                props.insert("metadata".to_string(), json!({"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}));
            }
            s["x-kubernetes-group-version-kind"] = gvk;
            schemas.insert(name.clone(), s);
        }
        let body_json = json!({"content": {"application/json": {"schema": {"$ref": schema_ref}}}});
        // Strategic merge patch is deliberately not advertised here: kubectl then computes it
        // from its compiled-in types, which carry the list merge keys.
        let patch_body = json!({"content": {
            "application/json-patch+json": {"schema": {"type": "object"}},
            "application/merge-patch+json": {"schema": {"type": "object"}},
            "application/apply-patch+yaml": {"schema": {"type": "object"}},
        }});
        let ns_part = if r.namespaced {
            "/namespaces/{namespace}"
        } else {
            ""
        };
        let collection = format!("{prefix}{ns_part}/{}", r.plural);
        let item = format!("{collection}/{{name}}");
        paths.insert(collection, json!({
            "get": operation(r, version, "list", "list", &[], &schema_ref, None),
            "post": operation(r, version, "post", "create", &write_params, &schema_ref, Some(body_json.clone())),
            "delete": operation(r, version, "deletecollection", "deleteCollection", &[], &schema_ref, None),
        }));
        paths.insert(item.clone(), json!({
            "get": operation(r, version, "get", "read", &[], &schema_ref, None),
            "put": operation(r, version, "put", "replace", &write_params, &schema_ref, Some(body_json.clone())),
            "patch": operation(r, version, "patch", "patch", &patch_params, &schema_ref, Some(patch_body.clone())),
            "delete": operation(r, version, "delete", "delete", &[param("dryRun", "query", "")], &schema_ref, None),
        }));
        if r.status_subresource {
            paths.insert(format!("{item}/status"), json!({
                "get": operation(r, version, "get", "read", &[], &schema_ref, None),
                "put": operation(r, version, "put", "replace", &write_params, &schema_ref, Some(body_json)),
                "patch": operation(r, version, "patch", "patch", &patch_params, &schema_ref, Some(patch_body)),
            }));
        }
    }
    // Built-in schemas refer to shared definitions (ObjectMeta, PodSpec, ...): include them all.
    for (k, v) in builtins {
        schemas.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

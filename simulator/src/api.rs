//! The HTTP face of a simulated cluster: kube-apiserver's URL layout, content negotiation
//! (JSON, YAML bodies, `Table`, `PartialObjectMetadata`, aggregated discovery), watch streams and
//! `metav1.Status` errors. Transport-neutral: both the in-process `tower::Service` and the loopback
//! listener call [`handle`] with a fully read body.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::cluster::{
    ClusterState, DeleteOptions, ListOptions, PatchType, Target, WriteOptions, at_version,
    event_for_watcher, manager_from_user_agent, parse_yaml_or_json,
};
use crate::error::ApiError;
use crate::rbac::{self, Attributes, ResourceAttributes};
use crate::registry::ResourceInfo;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{EventType, Obj};
use crate::table::{self, IncludeObject};
use crate::{discovery, openapi};

/// kube-apiserver's request body limit.
pub const MAX_REQUEST_BYTES: usize = 3 * 1024 * 1024;

/// Per-request knobs set by the transport (identity, fault injection).
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// End a watch stream after this long (a dropped connection).
    pub drop_watch_after: Option<Duration>,
    /// Who is asking; `None` for the in-process admin transport (never authorized).
    pub user: Option<Arc<UserInfo>>,
}

const JSON: &str = "application/json";

pub fn json_response(code: u16, body: &Value) -> Response<Body> {
    bytes_response(code, JSON, Bytes::from(body.to_string()))
}

/// A stored object as JSON: its encoding is made once and shared with its watch event.
fn object_response(code: u16, obj: &Obj) -> Response<Body> {
    bytes_response(code, JSON, obj.encoded())
}

fn bytes_response(code: u16, content_type: &str, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

pub fn error_response(err: &ApiError) -> Response<Body> {
    json_response(err.code, &err.to_status())
}

enum Route {
    Root,
    Version,
    Health,
    CoreVersions,
    Groups,
    Group(String),
    ResourceList(String, String),
    OpenApiRoot,
    OpenApi(String, String),
    Resource(ResourceRoute),
}

struct ResourceRoute {
    group: String,
    version: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    subresource: Option<String>,
    legacy_watch: bool,
}

fn decode(seg: &str) -> String {
    percent_encoding::percent_decode_str(seg)
        .decode_utf8_lossy()
        .into_owned()
}

fn route(path: &str) -> Option<Route> {
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    Some(match s.as_slice() {
        [] => Route::Root,
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez", ..] => Route::Health,
        ["api"] => Route::CoreVersions,
        ["api", v] => Route::ResourceList(String::new(), v.to_string()),
        ["apis"] => Route::Groups,
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v] => Route::ResourceList(g.to_string(), v.to_string()),
        ["openapi", "v3"] => Route::OpenApiRoot,
        ["openapi", "v3", "api", v] => Route::OpenApi(String::new(), v.to_string()),
        ["openapi", "v3", "apis", g, v] => Route::OpenApi(g.to_string(), v.to_string()),
        ["api", v, rest @ ..] => Route::Resource(resource_route("", v, rest)?),
        ["apis", g, v, rest @ ..] => Route::Resource(resource_route(g, v, rest)?),
        _ => return None,
    })
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Option<ResourceRoute> {
    let (legacy_watch, rest) = match rest {
        ["watch", r @ ..] => (true, r),
        r => (false, r),
    };
    let (namespace, plural, name, sub) = match rest {
        ["namespaces", ns, sub @ ("status" | "finalize")] => {
            (None, "namespaces", Some(*ns), Some(*sub))
        }
        ["namespaces", ns, plural, tail @ ..] => match tail {
            [] => (Some(*ns), *plural, None, None),
            [name] => (Some(*ns), *plural, Some(*name), None),
            [name, sub] => (Some(*ns), *plural, Some(*name), Some(*sub)),
            _ => return None,
        },
        [plural] => (None, *plural, None, None),
        [plural, name] => (None, *plural, Some(*name), None),
        [plural, name, sub] => (None, *plural, Some(*name), Some(*sub)),
        _ => return None,
    };
    Some(ResourceRoute {
        group: group.to_string(),
        version: version.to_string(),
        namespace: namespace.map(str::to_string),
        plural: plural.to_string(),
        name: name.map(str::to_string),
        subresource: sub.map(str::to_string),
        legacy_watch,
    })
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if let Some(q) = q {
        for pair in q.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode(&k.replace('+', " "));
            let v = decode(&v.replace('+', " "));
            out.insert(k, v);
        }
    }
    out
}

/// Media-type parameters of each Accept entry.
fn accepts(headers: &http::HeaderMap) -> Vec<HashMap<String, String>> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Vec::new();
    };
    accept
        .split(',')
        .map(|entry| {
            let mut parts = entry.split(';');
            let mut m = HashMap::new();
            m.insert(
                "type".to_string(),
                parts.next().unwrap_or("").trim().to_string(),
            );
            for p in parts {
                if let Some((k, v)) = p.split_once('=') {
                    m.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
            m
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum As {
    Plain,
    Table,
    PartialMetadata,
}

fn wanted_as(headers: &http::HeaderMap) -> As {
    for a in accepts(headers) {
        match a.get("as").map(String::as_str) {
            Some("Table") if a.get("g").map(String::as_str) == Some("meta.k8s.io") => {
                return As::Table;
            }
            Some("PartialObjectMetadata" | "PartialObjectMetadataList") => {
                return As::PartialMetadata;
            }
            _ => {
                if a.get("type")
                    .is_some_and(|t| t == JSON || t == "*/*" || t == "application/*")
                    && !a.contains_key("as")
                {
                    return As::Plain;
                }
            }
        }
    }
    As::Plain
}

fn wants_aggregated(headers: &http::HeaderMap) -> bool {
    accepts(headers).into_iter().next().is_some_and(|a| {
        a.get("as").map(String::as_str) == Some("APIGroupDiscoveryList")
            && a.get("v").map(String::as_str) == Some("v2")
            && a.get("g").map(String::as_str) == Some("apidiscovery.k8s.io")
    })
}

fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}

/// Serves one request against one cluster.
pub async fn handle(
    cluster: &Arc<ClusterState>,
    req: http::Request<Bytes>,
    ctx: RequestContext,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let q = parse_query(parts.uri.query());
    let route = route(&path);
    // Authorization comes before routing, as in kube-apiserver: a denied request learns nothing
    // about what exists.
    if let Some(user) = &ctx.user
        && !user.is_admin()
    {
        let attrs = request_attributes(&parts.method, &path, &q, route.as_ref());
        let decision = cluster.rbac.authorize(user, &attrs);
        if !decision.allowed {
            tracing::debug!(cluster = %cluster.name, user = %user.name, verb = %attrs.verb, "forbidden");
            return error_response(&rbac::forbidden(user, &attrs, &decision.reason));
        }
    }
    let Some(route) = route else {
        return error_response(&ApiError::not_found_path());
    };
    let reg = cluster.registry();
    let get_only = |resp: Option<Value>| -> Response<Body> {
        if parts.method != Method::GET {
            return error_response(&ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        match resp {
            Some(v) => json_response(200, &v),
            None => error_response(&ApiError::not_found_path()),
        }
    };
    match route {
        Route::Root => {
            let mut paths = vec![
                "/api".to_string(),
                "/api/v1".to_string(),
                "/apis".to_string(),
                "/openapi/v3".to_string(),
                "/version".to_string(),
                "/healthz".to_string(),
            ];
            for (g, vs) in reg.groups() {
                if !g.is_empty() {
                    paths.push(format!("/apis/{g}"));
                    for v in vs {
                        paths.push(format!("/apis/{g}/{v}"));
                    }
                }
            }
            get_only(Some(json!({"paths": paths})))
        }
        Route::Version => get_only(Some(discovery::version())),
        Route::Health => bytes_response(200, "text/plain", Bytes::from_static(b"ok")),
        Route::CoreVersions | Route::Groups if wants_aggregated(&parts.headers) => {
            let core = matches!(route, Route::CoreVersions);
            let mut resp = get_only(Some(discovery::aggregated(&reg, core)));
            if let Ok(v) = HeaderValue::from_str(
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            ) {
                resp.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            resp
        }
        Route::CoreVersions => get_only(Some(discovery::core_versions())),
        Route::Groups => get_only(Some(discovery::group_list(&reg))),
        Route::Group(g) => get_only(discovery::group(&reg, &g)),
        Route::ResourceList(g, v) => get_only(discovery::resource_list(&reg, &g, &v)),
        Route::OpenApiRoot => get_only(Some(openapi::root(&reg))),
        Route::OpenApi(g, v) => get_only(openapi::group_version(&reg, &g, &v)),
        Route::Resource(r) => {
            let Some(info) = reg.lookup(&r.group, &r.version, &r.plural).cloned() else {
                return error_response(&ApiError::not_found_path());
            };
            if info.create_only {
                return match crate::review::create(
                    cluster,
                    &info,
                    &r.namespace,
                    &parts,
                    &body,
                    &ctx,
                ) {
                    Ok(resp) => resp,
                    Err(e) => error_response(&e),
                };
            }
            match resource(cluster, info, r, &parts, &q, body, ctx).await {
                Ok(resp) => resp,
                Err(e) => error_response(&e),
            }
        }
    }
}

/// The verb and resource of a request as kube-apiserver's `RequestInfoFactory` derives them.
fn request_attributes(
    method: &Method,
    path: &str,
    q: &HashMap<String, String>,
    route: Option<&Route>,
) -> Attributes {
    let Some(Route::Resource(r)) = route else {
        return Attributes::non_resource(&method.as_str().to_lowercase(), path);
    };
    let verb = if r.legacy_watch {
        "watch".to_string()
    } else {
        match (method, &r.name) {
            (&Method::GET, Some(_)) => "get".to_string(),
            (&Method::GET, None) if flag(q, "watch") => "watch".to_string(),
            (&Method::GET, None) => "list".to_string(),
            (&Method::POST, _) => "create".to_string(),
            (&Method::PUT, _) => "update".to_string(),
            (&Method::PATCH, _) => "patch".to_string(),
            (&Method::DELETE, Some(_)) => "delete".to_string(),
            (&Method::DELETE, None) => "deletecollection".to_string(),
            (m, _) => m.as_str().to_lowercase(),
        }
    };
    // A list or watch pinned to one name by a field selector is about that name
    // (`resourceNames` rules apply), as kube-apiserver reads it.
    let name = match &r.name {
        Some(n) => n.clone(),
        None if matches!(verb.as_str(), "list" | "watch" | "deletecollection") => q
            .get("fieldSelector")
            .and_then(|fs| {
                fs.split(',').find_map(|term| {
                    let (k, v) = term.split_once("==").or_else(|| term.split_once('='))?;
                    (k.trim() == "metadata.name" && !k.ends_with('!')).then(|| v.trim().to_string())
                })
            })
            .unwrap_or_default(),
        None => String::new(),
    };
    let namespace = match (&r.namespace, r.plural.as_str(), &r.name) {
        (Some(ns), _, _) => ns.clone(),
        (None, "namespaces", Some(n)) if r.group.is_empty() => n.clone(),
        _ => String::new(),
    };
    Attributes::resource(
        &verb,
        ResourceAttributes {
            group: r.group.clone(),
            version: r.version.clone(),
            resource: r.plural.clone(),
            subresource: r.subresource.clone().unwrap_or_default(),
            namespace,
            name,
        },
    )
}

fn write_options(
    q: &HashMap<String, String>,
    headers: &http::HeaderMap,
) -> Result<WriteOptions, ApiError> {
    let dry_run = match q.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other}; supported values are [All]"
            )));
        }
    };
    let field_manager = q.get("fieldManager").filter(|m| !m.is_empty()).cloned();
    let strict = match q.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Ignore") | Some("Warn") => false,
        Some("Strict") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\" or \"Strict\", got {other}"
            )));
        }
    };
    let _ = headers;
    Ok(WriteOptions {
        dry_run,
        field_manager,
        force: flag(q, "force"),
        strict,
    })
}

fn default_manager(opts: &mut WriteOptions, headers: &http::HeaderMap) {
    if opts.field_manager.is_none() {
        let ua = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        opts.field_manager = Some(manager_from_user_agent(ua));
    }
}

fn parse_body(headers: &http::HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(JSON);
    let ct = ct.split(';').next().unwrap_or("").trim();
    match ct {
        "application/yaml" => parse_yaml_or_json(body),
        crate::protobuf::PROTOBUF => Ok(crate::protobuf::decode_object(body)?),
        _ => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        }),
    }
}

fn list_options(q: &HashMap<String, String>, info: &ResourceInfo) -> Result<ListOptions, ApiError> {
    let limit = match q.get("limit").filter(|l| !l.is_empty()) {
        Some(l) => Some(l.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!(
                "limit: Invalid value: \"{l}\": must be a non-negative integer"
            ))
        })?),
        None => None,
    };
    Ok(ListOptions {
        label_selector: LabelSelector::parse(
            q.get("labelSelector").map(String::as_str).unwrap_or(""),
        )?,
        field_selector: FieldSelector::parse(
            q.get("fieldSelector").map(String::as_str).unwrap_or(""),
            &info.kind,
        )?,
        limit,
        continue_token: q.get("continue").filter(|c| !c.is_empty()).cloned(),
    })
}

fn include_object(q: &HashMap<String, String>) -> IncludeObject {
    match q.get("includeObject").map(String::as_str) {
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        _ => IncludeObject::Metadata,
    }
}

async fn resource(
    cluster: &Arc<ClusterState>,
    info: Arc<ResourceInfo>,
    r: ResourceRoute,
    parts: &http::request::Parts,
    q: &HashMap<String, String>,
    body: Bytes,
    ctx: RequestContext,
) -> Result<Response<Body>, ApiError> {
    if r.namespace.is_some() && !info.namespaced {
        return Err(ApiError::not_found_path());
    }
    match r.subresource.as_deref() {
        None => {}
        Some("status") if info.status_subresource => {}
        Some("scale") if info.scale_subresource => {}
        Some("token") if info.group.is_empty() && info.plural == "serviceaccounts" => {
            if parts.method != Method::POST {
                return Err(ApiError::method_not_allowed(
                    "the server does not allow this method on the requested resource",
                ));
            }
            let (Some(ns), Some(name)) = (&r.namespace, &r.name) else {
                return Err(ApiError::not_found_path());
            };
            let req = parse_body(&parts.headers, &body)?;
            return crate::review::token_request(cluster, ns, name, &req)
                .map(|v| json_response(201, &v));
        }
        Some(_) => return Err(ApiError::not_found_path()),
    }
    if body.len() > MAX_REQUEST_BYTES {
        return Err(ApiError::too_large_request(MAX_REQUEST_BYTES));
    }
    let mut target = Target {
        info: info.clone(),
        version: r.version.clone(),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        subresource: r.subresource.clone(),
    };
    let headers = &parts.headers;
    let as_ = wanted_as(headers);
    let api_version = info.api_version(&r.version);
    if r.subresource.as_deref() == Some("scale") {
        return scale(cluster, &target, parts, q, &body);
    }
    match (&parts.method, &r.name) {
        (&Method::GET, None) if r.legacy_watch || flag(q, "watch") => {
            let opts = list_options(q, &info)?;
            watch(cluster, target, opts, q, as_, ctx)
        }
        (&Method::GET, Some(name)) if r.legacy_watch || flag(q, "watch") => {
            let mut opts = list_options(q, &info)?;
            opts.field_selector =
                FieldSelector::parse(&format!("metadata.name={name}"), &info.kind)?;
            target.name = None;
            watch(cluster, target, opts, q, as_, ctx)
        }
        (&Method::GET, None) => {
            let opts = list_options(q, &info)?;
            if q.get("resourceVersionMatch").is_some_and(|m| m == "Exact") {
                let want = q.get("resourceVersion").cloned().unwrap_or_default();
                let now = cluster.lock().resource_version();
                if want != now.to_string() {
                    return Err(ApiError::gone(format!(
                        "too old resource version: {want} ({now})"
                    )));
                }
            }
            let list = cluster.list(&target, &opts)?;
            let rv = list.resource_version.to_string();
            match as_ {
                As::Table => {
                    let whole: Vec<Value> = list.items.iter().map(|o| o.to_value()).collect();
                    let objs: Vec<&Value> = whole.iter().collect();
                    Ok(json_response(
                        200,
                        &table::table(
                            &info,
                            &r.version,
                            &objs,
                            Some(rv),
                            list.continue_token,
                            include_object(q),
                            true,
                        ),
                    ))
                }
                As::PartialMetadata => {
                    let items: Vec<Value> = list
                        .items
                        .iter()
                        .map(|o| table::partial_metadata(&o.to_value()))
                        .collect();
                    let mut meta = json!({"resourceVersion": rv});
                    if let Some(c) = list.continue_token {
                        meta["continue"] = json!(c);
                    }
                    Ok(json_response(
                        200,
                        &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items}),
                    ))
                }
                As::Plain => {
                    let mut meta = json!({"resourceVersion": rv});
                    if let Some(c) = &list.continue_token {
                        meta["continue"] = json!(c);
                    }
                    if let Some(n) = list.remaining {
                        meta["remainingItemCount"] = json!(n);
                    }
                    Ok(list_response(
                        &info.list_kind(),
                        &api_version,
                        &meta,
                        &list.items,
                    ))
                }
            }
        }
        (&Method::GET, Some(_)) if as_ == As::Plain => {
            Ok(bytes_response(200, JSON, cluster.get_encoded(&target)?))
        }
        (&Method::GET, Some(_)) => {
            let obj = cluster.get(&target)?;
            Ok(match as_ {
                As::Table => json_response(
                    200,
                    &table::table(
                        &info,
                        &r.version,
                        &[&obj.to_value()],
                        None,
                        None,
                        include_object(q),
                        true,
                    ),
                ),
                As::PartialMetadata => {
                    json_response(200, &table::partial_metadata(&obj.to_value()))
                }
                As::Plain => object_response(200, &obj),
            })
        }
        (&Method::POST, None) => {
            if info.namespaced && r.namespace.is_none() {
                return Err(ApiError::not_found_path());
            }
            let mut opts = write_options(q, headers)?;
            default_manager(&mut opts, headers);
            let obj = parse_body(headers, &body)?;
            let created = cluster.create_stored(&target, obj, &opts)?;
            Ok(object_response(201, &created))
        }
        (&Method::PUT, Some(_)) => {
            let mut opts = write_options(q, headers)?;
            default_manager(&mut opts, headers);
            let obj = parse_body(headers, &body)?;
            Ok(object_response(
                200,
                &cluster.update_stored(&target, obj, &opts)?,
            ))
        }
        (&Method::PATCH, Some(_)) => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let Some(pt) = PatchType::from_content_type(ct) else {
                return Err(ApiError::unsupported_media_type(ct));
            };
            let mut opts = write_options(q, headers)?;
            if pt != PatchType::Apply {
                default_manager(&mut opts, headers);
            } else if q.contains_key("force")
                && !matches!(q.get("force").map(String::as_str), Some("true" | "false"))
            {
                return Err(ApiError::bad_request(
                    "force: Invalid value: must be true or false",
                ));
            }
            if pt != PatchType::Apply && opts.force {
                return Err(ApiError::invalid(
                    "",
                    "PatchOptions",
                    "",
                    &[(
                        "force".to_string(),
                        "Forbidden: may not be specified for non-apply patch".to_string(),
                    )],
                ));
            }
            let (obj, created) = cluster.patch_stored(&target, pt, &body, &opts)?;
            Ok(object_response(if created { 201 } else { 200 }, &obj))
        }
        (&Method::DELETE, Some(_)) => {
            let opts = delete_options(q, headers, &body)?;
            let (obj, removed) = cluster.delete(&target, &opts)?;
            if info.delete_returns_object || !removed {
                return Ok(json_response(if removed { 200 } else { 202 }, &obj));
            }
            let mut details = json!({"name": r.name, "kind": info.plural, "uid": obj.pointer("/metadata/uid").cloned().unwrap_or(Value::Null)});
            if !info.group.is_empty() {
                details["group"] = json!(info.group);
            }
            Ok(json_response(
                200,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
            ))
        }
        (&Method::DELETE, None) => {
            let lopts = list_options(q, &info)?;
            let dopts = delete_options(q, headers, &body)?;
            let deleted = cluster.delete_collection(&target, &lopts, &dopts)?;
            Ok(list_response(
                &info.list_kind(),
                &api_version,
                &json!({}),
                &deleted,
            ))
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

fn list_response(kind: &str, api_version: &str, meta: &Value, items: &[Obj]) -> Response<Body> {
    let mut out = Vec::with_capacity(256 + items.len() * 512);
    out.extend_from_slice(
        format!(
            "{{\"kind\":\"{kind}\",\"apiVersion\":\"{api_version}\",\"metadata\":{meta},\"items\":["
        )
        .as_bytes(),
    );
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&item.encoded());
    }
    out.extend_from_slice(b"]}");
    bytes_response(200, JSON, Bytes::from(out))
}

fn delete_options(
    q: &HashMap<String, String>,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions {
        dry_run: q.get("dryRun").is_some_and(|d| d == "All"),
        propagation_policy: q.get("propagationPolicy").cloned(),
        ..Default::default()
    };
    if flag(q, "orphanDependents") {
        opts.propagation_policy = Some("Orphan".to_string());
    }
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v = parse_body(headers, body)?;
        if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
            opts.propagation_policy = Some(p.to_string());
        }
        if v.get("orphanDependents") == Some(&json!(true)) {
            opts.propagation_policy = Some("Orphan".to_string());
        }
        if v.get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|x| x == "All"))
        {
            opts.dry_run = true;
        }
        opts.precondition_uid = v
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        opts.precondition_resource_version = v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    if let Some(p) = &opts.propagation_policy
        && !matches!(p.as_str(), "Foreground" | "Background" | "Orphan")
    {
        return Err(ApiError::bad_request(format!(
            "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
        )));
    }
    Ok(opts)
}

/// `autoscaling/v1` Scale for workloads (`kubectl scale`).
fn scale(
    cluster: &Arc<ClusterState>,
    t: &Target,
    parts: &http::request::Parts,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let main = Target {
        subresource: None,
        ..t.clone()
    };
    let to_scale = |obj: &Value| -> Value {
        let sel = crate::table::cells(&t.info, &t.version, obj);
        let _ = sel;
        let selector = obj
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        json!({
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": obj.pointer("/metadata/name"), "namespace": obj.pointer("/metadata/namespace"), "uid": obj.pointer("/metadata/uid"), "resourceVersion": obj.pointer("/metadata/resourceVersion"), "creationTimestamp": obj.pointer("/metadata/creationTimestamp")},
            "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
            "status": {"replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector},
        })
    };
    let current = cluster.get(&main)?;
    if parts.method == Method::GET {
        return Ok(json_response(200, &to_scale(&current)));
    }
    let mut scale_obj = to_scale(&current);
    match parts.method {
        Method::PUT => scale_obj = parse_body(&parts.headers, body)?,
        Method::PATCH => {
            let ct = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            match PatchType::from_content_type(ct) {
                Some(PatchType::Json) => crate::patch::json_patch(&mut scale_obj, body)
                    .map_err(|_| ApiError::bad_request("invalid patch"))?,
                Some(_) => {
                    let p = parse_yaml_or_json(body)?;
                    crate::patch::merge_patch(&mut scale_obj, &p)
                        .map_err(|_| ApiError::bad_request("invalid patch"))?;
                }
                None => return Err(ApiError::unsupported_media_type(ct)),
            }
        }
        _ => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
    }
    let replicas = scale_obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::bad_request("spec.replicas is required"))?;
    let mut opts = write_options(q, &parts.headers)?;
    default_manager(&mut opts, &parts.headers);
    let patch = json!({"spec": {"replicas": replicas}}).to_string();
    let (obj, _) = cluster.patch(&main, PatchType::Merge, patch.as_bytes(), &opts)?;
    Ok(json_response(200, &to_scale(&obj)))
}

// ------------------------------------------------------------------------------------- watch

struct WatchState {
    cluster: Arc<ClusterState>,
    rx: tokio::sync::watch::Receiver<u64>,
    last_rv: u64,
    group_resource: String,
    namespace: Option<String>,
    opts: ListOptions,
    info: Arc<ResourceInfo>,
    version: String,
    as_: As,
    include: IncludeObject,
    columns_sent: bool,
    queue: VecDeque<Bytes>,
    deadline: tokio::time::Instant,
    bookmarks: bool,
    next_bookmark: tokio::time::Instant,
    done: bool,
    epoch: u64,
}

const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

impl WatchState {
    /// Queues one event line around an object already encoded as JSON.
    fn push_encoded(&mut self, kind: &str, object: &[u8]) {
        let mut line = Vec::with_capacity(object.len() + 32);
        line.extend_from_slice(b"{\"type\":\"");
        line.extend_from_slice(kind.as_bytes());
        line.extend_from_slice(b"\",\"object\":");
        line.extend_from_slice(object);
        line.extend_from_slice(b"}\n");
        self.queue.push_back(Bytes::from(line));
    }

    fn encode(&mut self, kind: &str, obj: &Obj) {
        if matches!(self.as_, As::Plain) {
            self.push_encoded(kind, &obj.encoded());
            return;
        }
        let obj = &obj.to_value();
        let object = match self.as_ {
            As::Plain => return,
            As::PartialMetadata => table::partial_metadata(obj),
            As::Table => {
                let t = table::table(
                    &self.info,
                    &self.version,
                    &[obj],
                    obj.pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    None,
                    self.include,
                    !self.columns_sent,
                );
                self.columns_sent = true;
                t
            }
        };
        let line = format!("{{\"type\":\"{kind}\",\"object\":{object}}}\n");
        self.queue.push_back(Bytes::from(line));
    }

    fn bookmark(&mut self, initial_end: bool) {
        let mut meta = json!({"resourceVersion": self.last_rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.info.kind, "apiVersion": self.info.api_version(&self.version), "metadata": meta});
        self.queue.push_back(Bytes::from(format!(
            "{{\"type\":\"BOOKMARK\",\"object\":{obj}}}\n"
        )));
    }

    fn expired(&mut self, asked: u64, oldest: u64) {
        let err = ApiError::gone(format!("too old resource version: {asked} ({oldest})"));
        self.queue.push_back(Bytes::from(format!(
            "{{\"type\":\"ERROR\",\"object\":{}}}\n",
            err.to_status()
        )));
        self.done = true;
    }

    /// Moves committed events into the queue.
    fn pull(&mut self) {
        if self.cluster.epoch() != self.epoch {
            // The API server restarted: the connection is gone.
            self.done = true;
            return;
        }
        let st = self.cluster.lock();
        let namespace = self.namespace.as_deref();
        match st.events_since(&self.group_resource, namespace, self.last_rv) {
            None => {
                let floor = st.history_floor(&self.group_resource, namespace);
                drop(st);
                let asked = self.last_rv;
                self.expired(asked, floor + 1);
            }
            Some(events) => {
                // Every event of what this watch follows up to the store's resourceVersion is
                // in `events`: the watch is current at that version, so its bookmarks (and a
                // resume after a dropped connection) name it rather than the version of its
                // last event, which the history may have let go long ago.
                let current = st.resource_version();
                drop(st);
                let api_version = self.info.api_version(&self.version);
                for e in &events {
                    if let Some(t) = event_for_watcher(
                        e,
                        &self.group_resource,
                        self.namespace.as_deref(),
                        &self.opts.label_selector,
                        &self.opts.field_selector,
                    ) {
                        if matches!(self.as_, As::Plain) && e.has_api_version(&api_version) {
                            // Every watcher of this event sends the same bytes: encode once.
                            self.push_encoded(t.as_str(), &e.encoded_object());
                        } else {
                            let obj = at_version(&e.object(), &api_version);
                            self.encode(t.as_str(), &obj);
                        }
                    }
                    self.last_rv = e.resource_version;
                }
                self.last_rv = self.last_rv.max(current);
            }
        }
    }
}

fn watch(
    cluster: &Arc<ClusterState>,
    t: Target,
    opts: ListOptions,
    q: &HashMap<String, String>,
    as_: As,
    ctx: RequestContext,
) -> Result<Response<Body>, ApiError> {
    let rv_param = q.get("resourceVersion").cloned().unwrap_or_default();
    let send_initial = flag(q, "sendInitialEvents");
    if send_initial && q.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan") {
        return Err(ApiError::invalid("", "ListOptions", "", &[("resourceVersionMatch".to_string(), "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan".to_string())]));
    }
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let timeout = match ctx.drop_watch_after {
        Some(d) => timeout.min(d),
        None => timeout,
    };
    let now = tokio::time::Instant::now();
    let mut rx = cluster.subscribe_to(&t.info.group_resource(), t.namespace.as_deref());
    rx.borrow_and_update();
    let mut state = WatchState {
        cluster: cluster.clone(),
        rx,
        last_rv: 0,
        group_resource: t.info.group_resource(),
        namespace: t.namespace.clone(),
        opts,
        info: t.info.clone(),
        version: t.version.clone(),
        as_,
        include: include_object(q),
        columns_sent: false,
        queue: VecDeque::new(),
        deadline: now + timeout,
        bookmarks: flag(q, "allowWatchBookmarks"),
        next_bookmark: now + BOOKMARK_EVERY,
        done: false,
        epoch: cluster.epoch(),
    };
    let initial = rv_param.is_empty() || rv_param == "0" || send_initial;
    if initial {
        let list = cluster.list(
            &t,
            &ListOptions {
                limit: None,
                continue_token: None,
                ..state.opts.clone()
            },
        )?;
        state.last_rv = list.resource_version;
        for o in &list.items {
            state.encode(EventType::Added.as_str(), o);
        }
        if send_initial {
            state.bookmark(true);
        }
    } else {
        let asked: u64 = rv_param.parse().map_err(|_| {
            ApiError::bad_request(format!(
                "resourceVersion: Invalid value: \"{rv_param}\": must be an unsigned integer"
            ))
        })?;
        state.last_rv = asked;
        // Like kube-apiserver, a watch may only start inside its resource's history, even
        // if it watches one namespace; once running it follows its namespace's index.
        let floor = cluster.lock().history_floor(&state.group_resource, None);
        if asked < floor {
            state.expired(asked, floor + 1);
        } else {
            state.pull();
        }
    }
    let stream = futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(b) = s.queue.pop_front() {
                return Some((Ok::<Bytes, std::convert::Infallible>(b), s));
            }
            if s.done {
                return None;
            }
            let bookmark_at = if s.bookmarks {
                s.next_bookmark
            } else {
                s.deadline
            };
            tokio::select! {
                changed = s.rx.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    s.pull();
                }
                _ = tokio::time::sleep_until(s.deadline) => return None,
                _ = tokio::time::sleep_until(bookmark_at), if s.bookmarks => {
                    s.next_bookmark = tokio::time::Instant::now() + BOOKMARK_EVERY;
                    s.pull();
                    if !s.done {
                        s.bookmark(false);
                    }
                }
            }
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}

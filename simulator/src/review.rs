//! The create-only review resources: `authorization.k8s.io/v1` SelfSubjectAccessReview,
//! SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectRulesReview (what `kubectl auth
//! can-i` asks), `authentication.k8s.io/v1` SelfSubjectReview (`kubectl auth whoami`), and the
//! ServiceAccount `token` subresource (TokenRequest).

use std::sync::Arc;

use axum::body::Body;
use http::{Method, Response};
use serde_json::{Value, json};

use crate::api::{RequestContext, json_response};
use crate::auth::UserInfo;
use crate::cluster::ClusterState;
use crate::error::ApiError;
use crate::rbac::Attributes;
use crate::registry::ResourceInfo;

fn parse(parts: &http::request::Parts, body: &[u8]) -> Result<Value, ApiError> {
    let ct = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let ct = ct.split(';').next().unwrap_or("").trim();
    let v = match ct {
        crate::protobuf::PROTOBUF => crate::protobuf::decode_object(body)?,
        _ => crate::cluster::parse_yaml_or_json(body)?,
    };
    if !v.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    Ok(v)
}

fn user_of(ctx: &RequestContext) -> UserInfo {
    ctx.user.as_deref().cloned().unwrap_or_else(UserInfo::admin)
}

fn status_of(cluster: &ClusterState, user: &UserInfo, attrs: &Attributes) -> Value {
    let d = cluster.rbac.authorize(user, attrs);
    let mut status = json!({"allowed": d.allowed});
    if !d.reason.is_empty() {
        status["reason"] = json!(d.reason);
    }
    status
}

fn has_attributes(spec: &Value) -> bool {
    spec.get("resourceAttributes").is_some_and(Value::is_object)
        != spec
            .get("nonResourceAttributes")
            .is_some_and(Value::is_object)
}

/// Serves `POST` of one create-only resource.
pub fn create(
    cluster: &Arc<ClusterState>,
    info: &ResourceInfo,
    namespace: &Option<String>,
    parts: &http::request::Parts,
    body: &[u8],
    ctx: &RequestContext,
) -> Result<Response<Body>, ApiError> {
    if parts.method != Method::POST {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    if info.namespaced != namespace.is_some() {
        return Err(ApiError::not_found_path());
    }
    let mut review = parse(parts, body)?;
    let api_version = info.api_version(info.preferred_version());
    review["apiVersion"] = json!(api_version);
    review["kind"] = json!(info.kind);
    let mut meta = review.get("metadata").cloned().unwrap_or(json!({}));
    if !meta.is_object() {
        meta = json!({});
    }
    meta["creationTimestamp"] = Value::Null;
    if let Some(ns) = namespace {
        meta["namespace"] = json!(ns);
    }
    review["metadata"] = meta;
    let spec = review.get("spec").cloned().unwrap_or(json!({}));
    let invalid = |field: &str, msg: &str| {
        ApiError::invalid(
            &info.group,
            &info.kind,
            "",
            &[(field.to_string(), msg.to_string())],
        )
    };
    let status = match info.plural.as_str() {
        "selfsubjectaccessreviews" => {
            if !has_attributes(&spec) {
                return Err(invalid(
                    "spec.resourceAttributes",
                    "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
                ));
            }
            status_of(cluster, &user_of(ctx), &Attributes::from_review_spec(&spec))
        }
        "subjectaccessreviews" | "localsubjectaccessreviews" => {
            if !has_attributes(&spec) {
                return Err(invalid(
                    "spec.resourceAttributes",
                    "Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
                ));
            }
            let user = spec.get("user").and_then(Value::as_str).unwrap_or("");
            let groups: Vec<String> = spec
                .get("groups")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|g| g.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if user.is_empty() && groups.is_empty() {
                return Err(invalid(
                    "spec.user",
                    "Invalid value: \"\": at least one of user or group must be specified",
                ));
            }
            let mut attrs = Attributes::from_review_spec(&spec);
            if let Some(ns) = namespace {
                match &mut attrs.resource {
                    Some(r) if r.namespace.is_empty() || r.namespace == *ns => {
                        r.namespace = ns.clone();
                    }
                    _ => {
                        return Err(invalid(
                            "spec.resourceAttributes.namespace",
                            "Invalid value: must match metadata.namespace",
                        ));
                    }
                }
            }
            let subject = UserInfo {
                name: user.to_string(),
                uid: spec
                    .get("uid")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                groups,
            };
            status_of(cluster, &subject, &attrs)
        }
        "selfsubjectrulesreviews" => {
            let ns = spec.get("namespace").and_then(Value::as_str).unwrap_or("");
            let (rules, errors) = cluster.rbac.rules_for(&user_of(ctx), ns);
            let resource_rules: Vec<Value> = rules
                .iter()
                .filter(|r| r.non_resource_urls.is_empty())
                .map(|r| r.to_json())
                .collect();
            let non_resource_rules: Vec<Value> = rules
                .iter()
                .filter(|r| !r.non_resource_urls.is_empty())
                .map(|r| json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}))
                .collect();
            let mut status = json!({
                "resourceRules": resource_rules,
                "nonResourceRules": non_resource_rules,
                "incomplete": !errors.is_empty(),
            });
            if !errors.is_empty() {
                status["evaluationError"] = json!(errors.join(", "));
            }
            status
        }
        "selfsubjectreviews" => json!({"userInfo": user_of(ctx).to_json()}),
        _ => return Err(ApiError::not_found_path()),
    };
    review["status"] = status;
    Ok(json_response(201, &review))
}

/// `POST .../serviceaccounts/<sa>/token`.
pub fn token_request(
    cluster: &Arc<ClusterState>,
    namespace: &str,
    name: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    let jti = uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string();
    let st = cluster.lock();
    cluster
        .tokens
        .token_request(&st, namespace, name, body, &jti)
}

//! Server-side printing (`meta.k8s.io/v1` `Table`) for `kubectl get`: CRD printer columns and
//! kube-apiserver's default columns for built-in kinds.

use serde_json::{Value, json};

use crate::registry::{PrinterColumn, ResourceInfo};

/// kube's `duration.HumanDuration`: `45s`, `3m20s`, `10m`, `5h`, `3d4h`, `2y`.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".to_string();
    }
    let secs = secs.max(0);
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let d = days % 365;
        return if d == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{d}d")
        };
    }
    format!("{years}y")
}

fn age(ts: Option<&str>) -> String {
    match ts.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
        Some(t) => {
            human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())
        }
        None => "<unknown>".to_string(),
    }
}

fn s<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn i(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn or_none(v: &str) -> String {
    if v.is_empty() {
        "<none>".to_string()
    } else {
        v.to_string()
    }
}

fn containers_images(obj: &Value, pod_spec: &str) -> (String, String) {
    let list = obj
        .pointer(&format!("{pod_spec}/containers"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = list
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let images: Vec<&str> = list
        .iter()
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .collect();
    (names.join(","), images.join(","))
}

fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return "<none>".to_string();
    };
    let map = sel
        .get("matchLabels")
        .or(Some(sel))
        .and_then(Value::as_object);
    let mut parts: Vec<String> = map
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
                .collect()
        })
        .unwrap_or_default();
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let vals: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            parts.push(format!(
                "{} {} ({})",
                s(e, "/key"),
                s(e, "/operator").to_lowercase(),
                vals.join(",")
            ));
        }
    }
    if parts.is_empty() {
        "<none>".to_string()
    } else {
        parts.join(",")
    }
}

fn condition<'a>(obj: &'a Value, t: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
}

type Col = (&'static str, &'static str, i64);

/// Columns and cells of a built-in kind.
fn builtin_columns(kind: &str) -> Vec<Col> {
    let name = ("Name", "string", 0);
    let age = ("Age", "string", 0);
    match kind {
        "Namespace" => vec![name, ("Status", "string", 0), age],
        "ConfigMap" => vec![name, ("Data", "integer", 0), age],
        "Secret" => vec![name, ("Type", "string", 0), ("Data", "integer", 0), age],
        "ServiceAccount" => vec![name, ("Secrets", "integer", 0), age],
        "Service" => vec![
            name,
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            age,
            ("Selector", "string", 1),
        ],
        "Pod" => vec![
            name,
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            age,
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        "Node" => vec![
            name,
            ("Status", "string", 0),
            ("Roles", "string", 0),
            age,
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("OS-Image", "string", 1),
        ],
        "Event" => vec![
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ],
        "Deployment" => vec![
            name,
            ("Ready", "string", 0),
            ("Up-to-date", "string", 0),
            ("Available", "string", 0),
            age,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "ReplicaSet" => vec![
            name,
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            age,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "StatefulSet" => vec![
            name,
            ("Ready", "string", 0),
            age,
            ("Containers", "string", 1),
            ("Images", "string", 1),
        ],
        "DaemonSet" => vec![
            name,
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Node Selector", "string", 0),
            age,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "Job" => vec![
            name,
            ("Status", "string", 0),
            ("Completions", "string", 0),
            ("Duration", "string", 0),
            age,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "Lease" => vec![name, ("Holder", "string", 0), age],
        "Role" | "ClusterRole" => vec![name, ("Created At", "date", 0)],
        "RoleBinding" | "ClusterRoleBinding" => vec![
            name,
            ("Role", "string", 0),
            age,
            ("Users", "string", 1),
            ("Groups", "string", 1),
            ("ServiceAccounts", "string", 1),
        ],
        "CustomResourceDefinition" => vec![name, ("Created At", "date", 0)],
        _ => vec![name, age],
    }
}

fn builtin_cells(kind: &str, obj: &Value) -> Vec<Value> {
    let name = json!(s(obj, "/metadata/name"));
    let created = s(obj, "/metadata/creationTimestamp");
    let a = json!(age(Some(created)));
    let count = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_object)
            .map_or(0, |m| m.len())
    };
    match kind {
        "Namespace" => vec![name, json!(s(obj, "/status/phase")), a],
        "ConfigMap" => vec![name, json!(count("/data") + count("/binaryData")), a],
        "Secret" => vec![name, json!(s(obj, "/type")), json!(count("/data")), a],
        "ServiceAccount" => vec![
            name,
            json!(
                obj.get("secrets")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            ),
            a,
        ],
        "Service" => {
            let ports: Vec<String> = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                            match p.get("nodePort").and_then(Value::as_i64) {
                                Some(np) => format!("{}:{np}/{proto}", i(p, "/port")),
                                None => format!("{}/{proto}", i(p, "/port")),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let external = obj
                .pointer("/status/loadBalancer/ingress")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(|i| i.get("ip").or(i.get("hostname")).and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| {
                    if s(obj, "/spec/type") == "LoadBalancer" {
                        "<pending>".to_string()
                    } else {
                        "<none>".to_string()
                    }
                });
            vec![
                name,
                json!(s(obj, "/spec/type")),
                json!(or_none(s(obj, "/spec/clusterIP"))),
                json!(external),
                json!(if ports.is_empty() {
                    "<none>".to_string()
                } else {
                    ports.join(",")
                }),
                a,
                json!(selector_string(obj.pointer("/spec/selector"))),
            ]
        }
        "Pod" => {
            let statuses = obj
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let total = obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = statuses
                .iter()
                .filter(|c| c.get("ready") == Some(&json!(true)))
                .count();
            let restarts: i64 = statuses.iter().map(|c| i(c, "/restartCount")).sum();
            let mut status = s(obj, "/status/reason").to_string();
            if status.is_empty() {
                status = s(obj, "/status/phase").to_string();
            }
            for c in &statuses {
                if let Some(r) = c.pointer("/state/waiting/reason").and_then(Value::as_str) {
                    status = r.to_string();
                }
            }
            if obj.pointer("/metadata/deletionTimestamp").is_some() {
                status = "Terminating".to_string();
            }
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(or_none(&status)),
                json!(restarts.to_string()),
                a,
                json!(or_none(s(obj, "/status/podIP"))),
                json!(or_none(s(obj, "/spec/nodeName"))),
                json!("<none>"),
                json!("<none>"),
            ]
        }
        "Node" => {
            let ready = condition(obj, "Ready")
                .and_then(|c| c.get("status"))
                .and_then(Value::as_str)
                == Some("True");
            let mut status = if ready {
                "Ready".to_string()
            } else {
                "NotReady".to_string()
            };
            if obj.pointer("/spec/unschedulable") == Some(&json!(true)) {
                status.push_str(",SchedulingDisabled");
            }
            let roles: Vec<String> = obj
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|l| {
                    l.keys()
                        .filter_map(|k| {
                            k.strip_prefix("node-role.kubernetes.io/")
                                .map(str::to_string)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let ip = obj
                .pointer("/status/addresses")
                .and_then(Value::as_array)
                .and_then(|a| {
                    a.iter()
                        .find(|x| x.get("type").and_then(Value::as_str) == Some("InternalIP"))
                })
                .and_then(|x| x.get("address").and_then(Value::as_str))
                .unwrap_or("<none>");
            vec![
                name,
                json!(status),
                json!(if roles.is_empty() {
                    "<none>".to_string()
                } else {
                    roles.join(",")
                }),
                a,
                json!(s(obj, "/status/nodeInfo/kubeletVersion")),
                json!(ip),
                json!(or_none(s(obj, "/status/nodeInfo/osImage"))),
            ]
        }
        "Event" => {
            let last = [s(obj, "/lastTimestamp"), s(obj, "/eventTime"), created]
                .into_iter()
                .find(|t| !t.is_empty());
            let object = format!(
                "{}/{}",
                s(obj, "/involvedObject/kind").to_lowercase(),
                s(obj, "/involvedObject/name")
            );
            vec![
                json!(age(last)),
                json!(s(obj, "/type")),
                json!(s(obj, "/reason")),
                json!(object),
                json!(s(obj, "/message")),
            ]
        }
        "Deployment" => {
            let (c, im) = containers_images(obj, "/spec/template/spec");
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    i(obj, "/status/readyReplicas"),
                    i(obj, "/spec/replicas")
                )),
                json!(i(obj, "/status/updatedReplicas")),
                json!(i(obj, "/status/availableReplicas")),
                a,
                json!(c),
                json!(im),
                json!(selector_string(obj.pointer("/spec/selector"))),
            ]
        }
        "ReplicaSet" => {
            let (c, im) = containers_images(obj, "/spec/template/spec");
            vec![
                name,
                json!(i(obj, "/spec/replicas")),
                json!(i(obj, "/status/replicas")),
                json!(i(obj, "/status/readyReplicas")),
                a,
                json!(c),
                json!(im),
                json!(selector_string(obj.pointer("/spec/selector"))),
            ]
        }
        "StatefulSet" => {
            let (c, im) = containers_images(obj, "/spec/template/spec");
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    i(obj, "/status/readyReplicas"),
                    i(obj, "/spec/replicas")
                )),
                a,
                json!(c),
                json!(im),
            ]
        }
        "DaemonSet" => {
            let (c, im) = containers_images(obj, "/spec/template/spec");
            vec![
                name,
                json!(i(obj, "/status/desiredNumberScheduled")),
                json!(i(obj, "/status/currentNumberScheduled")),
                json!(i(obj, "/status/numberReady")),
                json!(i(obj, "/status/updatedNumberScheduled")),
                json!(i(obj, "/status/numberAvailable")),
                json!(selector_string(
                    obj.pointer("/spec/template/spec/nodeSelector")
                )),
                a,
                json!(c),
                json!(im),
                json!(selector_string(obj.pointer("/spec/selector"))),
            ]
        }
        "Job" => {
            let (c, im) = containers_images(obj, "/spec/template/spec");
            let status = if condition(obj, "Complete")
                .is_some_and(|c| c.get("status") == Some(&json!("True")))
            {
                "Complete"
            } else if condition(obj, "Failed")
                .is_some_and(|c| c.get("status") == Some(&json!("True")))
            {
                "Failed"
            } else {
                "Running"
            };
            let completions = obj
                .pointer("/spec/completions")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let duration = match (
                obj.pointer("/status/startTime").and_then(Value::as_str),
                obj.pointer("/status/completionTime")
                    .and_then(Value::as_str),
            ) {
                (Some(st), Some(ct)) => match (
                    chrono::DateTime::parse_from_rfc3339(st),
                    chrono::DateTime::parse_from_rfc3339(ct),
                ) {
                    (Ok(st), Ok(ct)) => human_duration((ct - st).num_seconds()),
                    _ => String::new(),
                },
                (Some(st), None) => age(Some(st)),
                _ => String::new(),
            };
            vec![
                name,
                json!(status),
                json!(format!("{}/{completions}", i(obj, "/status/succeeded"))),
                json!(duration),
                a,
                json!(c),
                json!(im),
                json!(selector_string(obj.pointer("/spec/selector"))),
            ]
        }
        "Lease" => vec![name, json!(or_none(s(obj, "/spec/holderIdentity"))), a],
        "Role" | "ClusterRole" | "CustomResourceDefinition" => vec![name, json!(created)],
        "RoleBinding" | "ClusterRoleBinding" => {
            let subjects = obj
                .get("subjects")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let of = |k: &str| -> String {
                let v: Vec<String> = subjects
                    .iter()
                    .filter(|x| x.get("kind").and_then(Value::as_str) == Some(k))
                    .map(|x| {
                        if k == "ServiceAccount" {
                            format!("{}/{}", s(x, "/namespace"), s(x, "/name"))
                        } else {
                            s(x, "/name").to_string()
                        }
                    })
                    .collect();
                v.join(", ")
            };
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    s(obj, "/roleRef/kind"),
                    s(obj, "/roleRef/name")
                )),
                a,
                json!(of("User")),
                json!(of("Group")),
                json!(of("ServiceAccount")),
            ]
        }
        _ => vec![name, a],
    }
}

/// Evaluates the JSONPath subset printer columns use: `.a.b`, `['a']`, `[0]`, `[*]`, `[?(@.k=="v")]`.
pub fn jsonpath<'v>(obj: &'v Value, path: &str) -> Vec<&'v Value> {
    let path = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('$');
    let mut current = vec![obj];
    let bytes = path.as_bytes();
    let mut pos = 0;
    while pos < bytes.len() {
        match bytes[pos] {
            b'.' => {
                let start = pos + 1;
                let mut end = start;
                while end < bytes.len() && bytes[end] != b'.' && bytes[end] != b'[' {
                    end += 1;
                }
                let field = &path[start..end];
                if !field.is_empty() {
                    current = current.into_iter().filter_map(|v| v.get(field)).collect();
                }
                pos = end;
            }
            b'[' => {
                let Some(close) = path[pos..].find(']').map(|c| pos + c) else {
                    return Vec::new();
                };
                let inner = path[pos + 1..close].trim();
                if inner == "*" {
                    current = current
                        .into_iter()
                        .flat_map(|v| v.as_array().into_iter().flatten())
                        .collect();
                } else if let Ok(n) = inner.parse::<usize>() {
                    current = current.into_iter().filter_map(|v| v.get(n)).collect();
                } else if let Some(filter) =
                    inner.strip_prefix("?(").and_then(|f| f.strip_suffix(')'))
                {
                    let (lhs, rhs) = filter.split_once("==").unwrap_or((filter, ""));
                    let field = lhs.trim().trim_start_matches("@.");
                    let want = rhs.trim().trim_matches('"').trim_matches('\'');
                    current = current
                        .into_iter()
                        .flat_map(|v| v.as_array().into_iter().flatten())
                        .filter(|item| {
                            item.pointer(&format!("/{}", field.replace('.', "/")))
                                .is_some_and(|x| match x {
                                    Value::String(s) => s == want,
                                    other => *other == want.parse::<Value>().unwrap_or(Value::Null),
                                })
                        })
                        .collect();
                } else {
                    let key = inner.trim_matches('\'').trim_matches('"');
                    current = current.into_iter().filter_map(|v| v.get(key)).collect();
                }
                pos = close + 1;
            }
            _ => pos += 1,
        }
    }
    current
}

fn crd_cell(col: &PrinterColumn, obj: &Value) -> Value {
    let found = jsonpath(obj, &col.json_path);
    let Some(first) = found.first() else {
        return Value::Null;
    };
    match col.type_.as_str() {
        "date" => json!(age(first.as_str())),
        "integer" | "number" | "boolean" if found.len() == 1 => (*first).clone(),
        _ => {
            let parts: Vec<String> = found
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            json!(parts.join(","))
        }
    }
}

/// Column definitions for a resource at a version.
pub fn columns(info: &ResourceInfo, version: &str) -> Vec<Value> {
    let def = |name: &str, type_: &str, format: &str, priority: i64, description: &str| json!({"name": name, "type": type_, "format": format, "description": description, "priority": priority});
    if info.builtin {
        return builtin_columns(&info.kind)
            .into_iter()
            .map(|(n, t, p)| {
                let t = if t == "date" { "string" } else { t };
                def(n, t, if n == "Name" { "name" } else { "" }, p, "")
            })
            .collect();
    }
    let mut cols = vec![def(
        "Name",
        "string",
        "name",
        0,
        "Name must be unique within a namespace.",
    )];
    let custom = info
        .printer_columns
        .get(version)
        .cloned()
        .unwrap_or_default();
    if custom.is_empty() {
        cols.push(def("Age", "date", "", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."));
    }
    for c in &custom {
        cols.push(def(
            &c.name,
            &c.type_,
            &c.format,
            c.priority,
            &c.description,
        ));
    }
    cols
}

pub fn cells(info: &ResourceInfo, version: &str, obj: &Value) -> Vec<Value> {
    if info.builtin {
        return builtin_cells(&info.kind, obj);
    }
    let mut cells = vec![json!(s(obj, "/metadata/name"))];
    let custom = info
        .printer_columns
        .get(version)
        .cloned()
        .unwrap_or_default();
    if custom.is_empty() {
        cells.push(json!(age(obj
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str))));
    }
    for c in &custom {
        cells.push(crd_cell(c, obj));
    }
    cells
}

/// How a row carries its object (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

pub fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
}

pub fn row(info: &ResourceInfo, version: &str, obj: &Value, include: IncludeObject) -> Value {
    let mut r = json!({"cells": cells(info, version, obj)});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => r["object"] = partial_metadata(obj),
        IncludeObject::Object => r["object"] = obj.clone(),
    }
    r
}

pub fn table(
    info: &ResourceInfo,
    version: &str,
    objs: &[&Value],
    resource_version: Option<String>,
    continue_token: Option<String>,
    include: IncludeObject,
    with_columns: bool,
) -> Value {
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| row(info, version, o, include))
        .collect();
    let mut metadata = json!({});
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    let mut t = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "rows": rows});
    t["columnDefinitions"] = if with_columns {
        json!(columns(info, version))
    } else {
        json!([])
    };
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(3600 * 5 + 60), "5h1m");
        assert_eq!(human_duration(86400 * 3), "3d");
    }

    #[test]
    fn jsonpath_filters_conditions_by_type() {
        let o = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        let v = jsonpath(&o, ".status.conditions[?(@.type==\"Ready\")].status");
        assert_eq!(v, vec![&json!("True")]);
        assert_eq!(
            jsonpath(&o, ".status.conditions[0].type"),
            vec![&json!("A")]
        );
    }
}

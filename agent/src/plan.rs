//! Pure decisions of the agent: which BundleDeployments a deployment waits for (`dependsOn`),
//! which objects of the previous release are pruned, who owns a live object, the order objects
//! are applied in, and the minimal status patch.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};

use fleet_api::consts;
use fleet_api::{BundleDeployment, BundleRef};
use fleet_bundle::target::Selector;
use fleet_helm::render::INSTALL_ORDER;
use serde_json::Value;

use crate::monitor::ObjectKey;
use crate::release::{HELM_RELEASE_NAME_ANNOTATION, HELM_RELEASE_NAMESPACE_ANNOTATION};

/// Whether the dependencies of a BundleDeployment allow it to be deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dependencies {
    /// Every dependency is Ready (or there are none).
    Ready,
    /// Some are not ready or missing; the message says which.
    Waiting(String),
}

/// Fleet's `checkDependency`: each `dependsOn` entry selects BundleDeployments in the same
/// namespace (a name is a shortcut for the bundle-name + bundle-namespace labels); all of them
/// must have `Ready=True`, and at least one must exist.
/// `siblings` may hold the BundleDeployments themselves or shared references to them (the
/// agent's watch cache), so that nothing is copied to check them.
pub fn check_dependencies<S: Borrow<BundleDeployment>>(
    bd: &BundleDeployment,
    siblings: &[S],
) -> Dependencies {
    let no_labels = BTreeMap::new();
    fn labels_or<'a>(
        b: &'a BundleDeployment,
        none: &'a BTreeMap<String, String>,
    ) -> &'a BTreeMap<String, String> {
        b.metadata.labels.as_ref().unwrap_or(none)
    }
    let labels = |b| labels_or(b, &no_labels);
    let bundle_namespace = labels(bd)
        .get(consts::BUNDLE_NAMESPACE_LABEL)
        .cloned()
        .unwrap_or_default();
    let namespace = bd.metadata.namespace.clone().unwrap_or_default();
    let mut not_ready: Vec<String> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    for dep in &bd.spec.depends_on {
        if dep.name.is_empty() && dep.selector.is_none() {
            continue;
        }
        let (selector, description) = match dependency_selector(dep, &bundle_namespace) {
            Ok(s) => s,
            Err(message) => {
                missing.push(format!("invalid selector in dependsOn: {message}"));
                continue;
            }
        };
        let matched: Vec<&BundleDeployment> = siblings
            .iter()
            .map(Borrow::borrow)
            .filter(|s| s.metadata.namespace.as_deref().unwrap_or_default() == namespace)
            .filter(|s| selector.matches(labels(s)))
            .collect();
        if matched.is_empty() {
            missing.push(format!(
                "no bundles matching labels {description} in namespace {bundle_namespace}"
            ));
            continue;
        }
        for s in matched {
            let ready = s
                .status
                .as_ref()
                .and_then(|st| fleet_api::find_condition(&st.conditions, consts::condition::READY))
                .is_some_and(|c| c.is_true());
            if !ready {
                let name = s.metadata.name.clone().unwrap_or_default();
                if !not_ready.contains(&name) {
                    not_ready.push(name);
                }
            }
        }
    }
    let mut parts = Vec::new();
    if !not_ready.is_empty() {
        parts.push(format!(
            "dependent bundle(s) are not ready: [{}]",
            not_ready.join(" ")
        ));
    }
    parts.extend(missing);
    if parts.is_empty() {
        Dependencies::Ready
    } else {
        Dependencies::Waiting(parts.join("; "))
    }
}

fn dependency_selector(
    dep: &BundleRef,
    bundle_namespace: &str,
) -> Result<(Selector, String), String> {
    let mut selector = dep.selector.clone().unwrap_or_default();
    if !dep.name.is_empty() {
        let labels = selector.match_labels.get_or_insert_with(BTreeMap::new);
        labels.insert(consts::BUNDLE_LABEL.to_string(), dep.name.clone());
        labels.insert(
            consts::BUNDLE_NAMESPACE_LABEL.to_string(),
            bundle_namespace.to_string(),
        );
    }
    let mut description: Vec<String> = selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in selector.match_expressions.iter().flatten() {
        description.push(format!(
            "{} {} ({})",
            e.key,
            e.operator,
            e.values.clone().unwrap_or_default().join(",")
        ));
    }
    Ok((Selector::new(&selector)?, description.join(",")))
}

/// The key of an object, or a key with empty fields when it has none.
pub fn key_of(obj: &Value) -> ObjectKey {
    ObjectKey::from_object(obj).unwrap_or_default()
}

/// Objects of the previous release that are no longer desired and may be deleted: not kept by
/// `helm.sh/resource-policy: keep`. Order: reverse of the previous apply order.
pub fn prune_set(previous: &[Value], desired: &[Value]) -> Vec<ObjectKey> {
    let wanted: BTreeSet<ObjectKey> = desired.iter().map(key_of).collect();
    let mut seen = BTreeSet::new();
    let mut out: Vec<ObjectKey> = previous
        .iter()
        .filter(|o| {
            o.pointer("/metadata/annotations/helm.sh~1resource-policy")
                .and_then(Value::as_str)
                != Some("keep")
        })
        .map(key_of)
        .filter(|k| !k.name.is_empty() && !wanted.contains(k))
        .filter(|k| seen.insert(k.clone()))
        .collect();
    out.reverse();
    out
}

/// Who owns a live object, from Helm's ownership annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// Unmanaged by Helm (no release annotations).
    Unowned,
    /// Owned by this release.
    Ours,
    /// Owned by another release (`namespace/name`).
    Other(String),
}

/// Compares the Helm release annotations of a live object with our release.
pub fn ownership(live: &Value, release_name: &str, release_namespace: &str) -> Ownership {
    let annotation = |key: &str| {
        live.get("metadata")
            .and_then(|m| m.get("annotations"))
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let name = annotation(HELM_RELEASE_NAME_ANNOTATION);
    let namespace = annotation(HELM_RELEASE_NAMESPACE_ANNOTATION);
    if name.is_empty() && namespace.is_empty() {
        return Ownership::Unowned;
    }
    if name == release_name && namespace == release_namespace {
        Ownership::Ours
    } else {
        Ownership::Other(format!("{namespace}/{name}"))
    }
}

/// Sorts objects into Helm's install order (stable; unknown kinds last).
pub fn install_order(objects: &mut [Value]) {
    let rank = |o: &Value| {
        let kind = o.get("kind").and_then(Value::as_str).unwrap_or("");
        INSTALL_ORDER
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(INSTALL_ORDER.len())
    };
    objects.sort_by_key(rank);
}

/// A JSON merge patch (RFC 7386) that turns `old` into `new`; `None` when they are equal.
/// Removed keys become `null`; arrays are replaced whole.
pub fn merge_patch(old: &Value, new: &Value) -> Option<Value> {
    if old == new {
        return None;
    }
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = serde_json::Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) => {
                        if let Some(p) = merge_patch(ov, nv) {
                            patch.insert(k.clone(), p);
                        }
                    }
                    None => {
                        patch.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            Some(Value::Object(patch))
        }
        _ => Some(new.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::{BundleDeploymentSpec, BundleDeploymentStatus, GenericCondition};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use serde_json::json;

    fn bd(name: &str, labels: &[(&str, &str)], ready: Option<bool>) -> BundleDeployment {
        let mut b = BundleDeployment::new(name, BundleDeploymentSpec::default());
        b.metadata.namespace = Some("cluster-ns".into());
        b.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        if let Some(r) = ready {
            b.status = Some(BundleDeploymentStatus {
                conditions: vec![GenericCondition::new(
                    "Ready",
                    if r { "True" } else { "False" },
                )],
                ..Default::default()
            });
        }
        b
    }

    fn with_deps(mut b: BundleDeployment, deps: Vec<BundleRef>) -> BundleDeployment {
        b.spec.depends_on = deps;
        b
    }

    #[test]
    fn depends_on_by_name_waits_for_the_named_bundle_in_the_same_bundle_namespace() {
        let me = with_deps(
            bd(
                "app",
                &[(consts::BUNDLE_NAMESPACE_LABEL, "fleet-default")],
                None,
            ),
            vec![BundleRef {
                name: "db".into(),
                selector: None,
            }],
        );
        let db = |ready| {
            bd(
                "db",
                &[
                    (consts::BUNDLE_LABEL, "db"),
                    (consts::BUNDLE_NAMESPACE_LABEL, "fleet-default"),
                ],
                ready,
            )
        };
        assert_eq!(
            check_dependencies(&me, &[me.clone(), db(Some(false))]),
            Dependencies::Waiting("dependent bundle(s) are not ready: [db]".into())
        );
        assert_eq!(
            check_dependencies(&me, &[me.clone(), db(None)]),
            Dependencies::Waiting("dependent bundle(s) are not ready: [db]".into())
        );
        assert_eq!(
            check_dependencies(&me, &[me.clone(), db(Some(true))]),
            Dependencies::Ready
        );
        let Dependencies::Waiting(msg) = check_dependencies(&me, std::slice::from_ref(&me)) else {
            panic!("a missing dependency must block");
        };
        assert!(msg.contains("no bundles matching labels"), "{msg}");
        assert!(msg.contains("fleet.cattle.io/bundle-name=db"), "{msg}");
    }

    #[test]
    fn depends_on_by_selector_needs_every_match_ready() {
        let selector = LabelSelector {
            match_labels: Some([("tier".to_string(), "data".to_string())].into()),
            ..Default::default()
        };
        let me = with_deps(
            bd("app", &[], None),
            vec![BundleRef {
                name: String::new(),
                selector: Some(selector),
            }],
        );
        let a = bd("a", &[("tier", "data")], Some(true));
        let b = bd("b", &[("tier", "data")], Some(false));
        let other = bd("c", &[("tier", "web")], Some(false));
        assert_eq!(
            check_dependencies(&me, &[a.clone(), b, other.clone()]),
            Dependencies::Waiting("dependent bundle(s) are not ready: [b]".into())
        );
        assert_eq!(check_dependencies(&me, &[a, other]), Dependencies::Ready);
        let no_deps = bd("x", &[], None);
        assert_eq!(
            check_dependencies::<BundleDeployment>(&no_deps, &[]),
            Dependencies::Ready
        );
    }

    fn cm(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "ns"}})
    }

    #[test]
    fn prune_set_is_what_left_the_bundle_except_kept_objects() {
        let mut kept = cm("kept");
        kept["metadata"]["annotations"] = json!({"helm.sh/resource-policy": "keep"});
        let previous = vec![cm("a"), cm("b"), kept, cm("c")];
        let desired = vec![cm("a"), cm("d")];
        let names: Vec<String> = prune_set(&previous, &desired)
            .into_iter()
            .map(|k| k.name)
            .collect();
        assert_eq!(names, vec!["c", "b"]);
        assert!(prune_set(&desired, &desired).is_empty());
        // Same name, other namespace: a different object.
        let mut other_ns = cm("a");
        other_ns["metadata"]["namespace"] = json!("elsewhere");
        assert_eq!(prune_set(&[other_ns], &desired).len(), 1);
    }

    #[test]
    fn ownership_follows_helm_annotations() {
        let mut o = cm("a");
        assert_eq!(ownership(&o, "rel", "ns"), Ownership::Unowned);
        o["metadata"]["annotations"] = json!({
            "meta.helm.sh/release-name": "rel", "meta.helm.sh/release-namespace": "ns"});
        assert_eq!(ownership(&o, "rel", "ns"), Ownership::Ours);
        assert_eq!(
            ownership(&o, "other", "ns"),
            Ownership::Other("ns/rel".into())
        );
    }

    #[test]
    fn install_order_puts_namespaces_and_config_before_workloads() {
        let mut objs = vec![
            json!({"kind": "Deployment"}),
            json!({"kind": "Widget"}),
            json!({"kind": "ConfigMap"}),
            json!({"kind": "Namespace"}),
        ];
        install_order(&mut objs);
        let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            vec!["Namespace", "ConfigMap", "Deployment", "Widget"]
        );
    }

    #[test]
    fn merge_patch_is_minimal_and_nulls_removed_keys() {
        let old = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]});
        let new = json!({"a": 1, "b": {"c": 2}, "l": [1], "e": "x"});
        assert_eq!(
            merge_patch(&old, &new),
            Some(json!({"b": {"d": null}, "l": [1], "e": "x"}))
        );
        assert_eq!(merge_patch(&old, &old), None);
    }
}

//! Drift: does a live object still match what the bundle deploys? (Fleet's
//! `desiredset/diff.go` with its normalizers.)
//!
//! The rule is "desired ⊆ live": every field the desired object sets must have the same value
//! in the live object; fields only the live object has (server defaults, fields other
//! controllers own) do not matter. Maps compare key by key, lists element by element with the
//! same rule (lists of different lengths differ). Before comparing, both sides are
//! normalized: `status` and the metadata the API server owns are dropped, as are the labels
//! and annotations Fleet and Helm add on apply, and the `diff.comparePatches` entries of the
//! deployment options remove fields (`operations` with `op: remove`, `jsonPointers`).
//! A `comparePatches` entry with `op: ignore` takes the object out of the comparison.
//!
//! A difference is reported as a JSON merge patch that brings the live object back to the
//! desired one, e.g. `{"spec":{"replicas":1}}`.

use fleet_api::{BundleDeploymentOptions, ComparePatch};
use serde_json::{Map, Value, json};

use super::ObjectKey;

/// Metadata fields the API server owns; a desired object never decides them.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Label/annotation prefixes Fleet, wrangler's apply and Helm write on deployed objects.
const APPLY_MARK_PREFIXES: &[&str] = &[
    "objectset.rio.cattle.io/",
    "meta.helm.sh/",
    "fleet.cattle.io/",
];

/// Annotations kubectl and the agent add on apply.
const APPLY_MARK_ANNOTATIONS: &[&str] = &["kubectl.kubernetes.io/last-applied-configuration"];

/// Map keys whose values are resource quantities (`1` and `"1000m"` are the same CPU).
const QUANTITY_MAPS: &[&str] = &[
    "limits",
    "requests",
    "capacity",
    "allocatable",
    "hard",
    "used",
    "max",
    "min",
    "default",
    "defaultRequest",
    "maxLimitRequestRatio",
];

/// The group of an apiVersion: "apps" for "apps/v1", "" for "v1".
fn group_of(api_version: &str) -> &str {
    api_version
        .split_once('/')
        .map(|(group, _)| group)
        .unwrap_or_default()
}

/// True when a `diff.comparePatches` entry with `op: ignore` names this object: it is then
/// never reported missing or modified. The entry must name the object exactly (apiVersion,
/// kind, namespace, name), as in Fleet.
pub fn is_ignored(key: &ObjectKey, options: &BundleDeploymentOptions) -> bool {
    compare_patches(options).any(|patch| {
        patch
            .operations
            .iter()
            .any(|op| op.op == fleet_api::consts::IGNORE_OP)
            && patch.api_version == key.api_version
            && patch.kind == key.kind
            && patch.namespace == key.namespace
            && patch.name == key.name
    })
}

fn compare_patches(options: &BundleDeploymentOptions) -> impl Iterator<Item = &ComparePatch> {
    options
        .diff
        .iter()
        .flat_map(|diff| diff.compare_patches.iter())
}

/// Minimal glob (`*` any run, `?` one character), as Argo CD's normalizer matches group and
/// kind.
fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            backtrack = Some((p, t));
            p += 1;
        } else if let Some((star, matched)) = backtrack {
            p = star + 1;
            t = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// Applies one JSON patch operation; a failing operation (e.g. removing an absent path)
/// leaves the object as it was, like Fleet, which compiles and applies each one alone.
fn apply_operation(object: &mut Value, operation: Value) {
    let Ok(patch) = serde_json::from_value::<json_patch::Patch>(json!([operation])) else {
        return;
    };
    let mut patched = object.clone();
    if json_patch::patch(&mut patched, &patch).is_ok() {
        *object = patched;
    }
}

/// Removes from `object` what the `diff.comparePatches` entries say to ignore for it:
/// `jsonPointers` (entries match by group and kind globs, and by namespace and name when
/// given) and `operations` (entries match the object exactly; `op: ignore` is handled by
/// [`is_ignored`]).
pub fn apply_compare_patches(
    object: &mut Value,
    key: &ObjectKey,
    options: &BundleDeploymentOptions,
) {
    let group = group_of(&key.api_version);
    for patch in compare_patches(options) {
        let pointers_match = glob_match(group_of(&patch.api_version), group)
            && glob_match(&patch.kind, &key.kind)
            && (patch.name.is_empty() || patch.name == key.name)
            && (patch.namespace.is_empty() || patch.namespace == key.namespace);
        if pointers_match {
            for pointer in &patch.json_pointers {
                apply_operation(object, json!({"op": "remove", "path": pointer}));
            }
        }
        let exact = patch.api_version == key.api_version
            && patch.kind == key.kind
            && patch.namespace == key.namespace
            && patch.name == key.name;
        if !exact {
            continue;
        }
        for op in &patch.operations {
            let operation = match op.op.as_str() {
                "ignore" => continue,
                "remove" => json!({"op": "remove", "path": op.path}),
                other => json!({"op": other, "path": op.path, "value": op.value}),
            };
            apply_operation(object, operation);
        }
    }
}

/// Drops what the comparison never looks at: `status`, server-owned metadata, and the
/// labels/annotations that apply adds; brings Secrets and aggregated roles to the form the API
/// server stores.
fn strip_unmanaged(object: &mut Value) {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some(fields) = object.as_object_mut() else {
        return;
    };
    fields.remove("status");
    match (group_of(&api_version), kind.as_str()) {
        ("", "Secret") => normalize_secret(fields),
        // The aggregation controller owns the rules of an aggregated role.
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole")
            if fields.get("aggregationRule").is_some_and(Value::is_object) =>
        {
            fields.remove("rules");
        }
        _ => {}
    }
    let Some(metadata) = fields.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    for key in SERVER_METADATA {
        metadata.remove(*key);
    }
    for marks in ["labels", "annotations"] {
        if let Some(map) = metadata.get_mut(marks).and_then(Value::as_object_mut) {
            map.retain(|k, _| !is_apply_mark(k));
        }
    }
}

/// The API server stores `stringData` base64-encoded in `data` (and never returns it), and
/// a null data value as "".
fn normalize_secret(fields: &mut Map<String, Value>) {
    use base64::Engine as _;
    let string_data = match fields.remove("stringData") {
        Some(Value::Object(string_data)) => string_data,
        Some(other) => {
            fields.insert("stringData".into(), other);
            Map::new()
        }
        None => Map::new(),
    };
    let has_data = fields.get("data").is_some_and(Value::is_object);
    if string_data.is_empty() && !has_data {
        return;
    }
    let data = fields
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(data) = data.as_object_mut() else {
        return;
    };
    for value in data.values_mut() {
        if value.is_null() {
            *value = Value::String(String::new());
        }
    }
    for (key, value) in string_data {
        let text = match value {
            Value::String(s) => s,
            Value::Null => String::new(),
            other => other.to_string(),
        };
        data.insert(
            key,
            Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
        );
    }
}

/// Compares a desired object with its live copy after normalization; returns the merge patch
/// that would bring the live object back to the desired state, or `None` when it matches.
pub fn modified_patch(
    desired: &Value,
    live: &Value,
    options: &BundleDeploymentOptions,
) -> Option<Value> {
    match modified_patch_in_place(desired, live, options) {
        Ok(patch) => patch,
        Err(NeedsCopies) => modified_patch_on_copies(desired, live, options),
    }
}

/// The comparison needs normalized copies of both objects (compare patches, Secrets,
/// aggregated roles, an unusual shape).
struct NeedsCopies;

/// [`modified_patch`] without copying the objects, for what needs no normalization but
/// leaving fields out: `status`, the metadata the API server owns, the namespace (the live
/// one is the truth) and the apply marks among labels and annotations are skipped while
/// comparing. Every monitor pass compares every deployed object, so copying each whole live
/// object (data, spec, everything) only to drop a few fields was most of its cost.
fn modified_patch_in_place(
    desired: &Value,
    live: &Value,
    options: &BundleDeploymentOptions,
) -> Result<Option<Value>, NeedsCopies> {
    if compare_patches(options).next().is_some() {
        return Err(NeedsCopies);
    }
    let (Value::Object(desired_fields), Value::Object(live_fields)) = (desired, live) else {
        return Err(NeedsCopies);
    };
    for fields in [desired_fields, live_fields] {
        let api_version = fields.get("apiVersion").and_then(Value::as_str);
        let kind = fields.get("kind").and_then(Value::as_str);
        match (
            group_of(api_version.unwrap_or_default()),
            kind.unwrap_or_default(),
        ) {
            ("", "Secret") | ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => {
                return Err(NeedsCopies);
            }
            _ => {}
        }
    }
    let mut patch = Map::new();
    for (key, value) in desired_fields {
        match key.as_str() {
            "status" => {}
            "metadata" => {
                let (Value::Object(desired_meta), Some(Value::Object(live_meta))) =
                    (value, live_fields.get("metadata"))
                else {
                    return Err(NeedsCopies);
                };
                let mut meta_patch = Map::new();
                for (field, d) in desired_meta {
                    let field = field.as_str();
                    if field == "namespace" || SERVER_METADATA.contains(&field) {
                        continue;
                    }
                    let diff = if field == "labels" || field == "annotations" {
                        let unmarked = |v: Option<&Value>| match v {
                            Some(Value::Object(map)) => Some(Value::Object(
                                map.iter()
                                    .filter(|(k, _)| !is_apply_mark(k))
                                    .map(|(k, v)| (k.clone(), v.clone()))
                                    .collect(),
                            )),
                            other => other.cloned(),
                        };
                        let (Some(d), l) = (unmarked(Some(d)), unmarked(live_meta.get(field)))
                        else {
                            continue;
                        };
                        diff_value(&d, l.as_ref(), field, "metadata")
                    } else {
                        diff_value(d, live_meta.get(field), field, "metadata")
                    };
                    if let Some(diff) = diff {
                        meta_patch.insert(field.to_string(), diff);
                    }
                }
                if !meta_patch.is_empty() {
                    patch.insert(key.clone(), Value::Object(meta_patch));
                }
            }
            _ => {
                if let Some(diff) = diff_value(value, live_fields.get(key), key, "") {
                    patch.insert(key.clone(), diff);
                }
            }
        }
    }
    Ok((!patch.is_empty()).then_some(Value::Object(patch)))
}

/// A label or annotation that apply adds (Fleet's, Helm's, kubectl's).
fn is_apply_mark(key: &str) -> bool {
    APPLY_MARK_PREFIXES.iter().any(|p| key.starts_with(p)) || APPLY_MARK_ANNOTATIONS.contains(&key)
}

/// [`modified_patch`] on normalized copies of both objects.
fn modified_patch_on_copies(
    desired: &Value,
    live: &Value,
    options: &BundleDeploymentOptions,
) -> Option<Value> {
    let mut desired = desired.clone();
    let mut live = live.clone();
    strip_unmanaged(&mut desired);
    strip_unmanaged(&mut live);
    // The renderer may set a namespace on a cluster-scoped object; the live object's namespace
    // is the truth (Fleet does the same).
    let live_namespace = live
        .get("metadata")
        .and_then(|v| v.get("namespace"))
        .cloned();
    if let Some(metadata) = desired.get_mut("metadata").and_then(Value::as_object_mut) {
        match live_namespace {
            Some(ns) => metadata.insert("namespace".into(), ns),
            None => metadata.remove("namespace"),
        };
    }
    if let Some(key) = ObjectKey::from_object(&live) {
        apply_compare_patches(&mut desired, &key, options);
        apply_compare_patches(&mut live, &key, options);
    }
    compare(&desired, &live)
}

/// The "desired ⊆ live" comparison of two values without normalization: `None` when every
/// field `desired` sets has the same value in `live`, else the merge patch that sets them.
pub fn compare(desired: &Value, live: &Value) -> Option<Value> {
    diff_value(desired, Some(live), "", "")
}

/// Merge patch text as Fleet writes it in `modifiedStatus`: compact, keys sorted, and `<`,
/// `>`, `&`, U+2028 and U+2029 escaped as Go's `json.Marshal` does. Those characters only
/// occur inside JSON strings, so replacing them in the text is safe.
pub fn patch_string(patch: &Value) -> String {
    let text = patch.to_string();
    if !text.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return text;
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("\\u003c"),
            '>' => escaped.push_str("\\u003e"),
            '&' => escaped.push_str("\\u0026"),
            '\u{2028}' => escaped.push_str("\\u2028"),
            '\u{2029}' => escaped.push_str("\\u2029"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// `own_key` is the map key `desired` sits under, `container_key` the key of the map holding
/// it (for `limits.cpu`: "cpu" and "limits").
fn diff_value(
    desired: &Value,
    live: Option<&Value>,
    own_key: &str,
    container_key: &str,
) -> Option<Value> {
    if desired.is_null() {
        return None;
    }
    let live = match live {
        None | Some(Value::Null) => {
            // The API server drops empty values of optional fields: `hostNetwork: false`,
            // `annotations: {}` or `env: []` are absent from the live object.
            return if is_zero(desired) {
                None
            } else {
                Some(desired.clone())
            };
        }
        Some(live) => live,
    };
    match (desired, live) {
        (Value::Object(desired_fields), Value::Object(live_fields)) => {
            let patch: Map<String, Value> = desired_fields
                .iter()
                .filter_map(|(k, d)| {
                    diff_value(d, live_fields.get(k), k, own_key).map(|p| (k.clone(), p))
                })
                .collect();
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        (Value::Array(desired_items), Value::Array(live_items)) => {
            let same = desired_items.len() == live_items.len()
                && desired_items
                    .iter()
                    .zip(live_items)
                    .all(|(d, l)| diff_value(d, Some(l), own_key, own_key).is_none());
            // A merge patch replaces a list as a whole.
            (!same).then(|| desired.clone())
        }
        _ => {
            let quantity = QUANTITY_MAPS.contains(&container_key);
            (!scalars_equal(desired, live, quantity)).then(|| desired.clone())
        }
    }
}

/// Null, "", false, 0, and empty (or all-empty) lists and maps.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.values().all(is_zero),
    }
}

fn scalars_equal(desired: &Value, live: &Value, quantity: bool) -> bool {
    if desired == live {
        return true;
    }
    if let (Value::Number(d), Value::Number(l)) = (desired, live)
        && let (Some(d), Some(l)) = (d.as_f64(), l.as_f64())
    {
        return d == l;
    }
    if quantity && let (Some(d), Some(l)) = (parse_quantity(desired), parse_quantity(live)) {
        return (d - l).abs() <= f64::EPSILON * d.abs().max(l.abs()).max(1.0) * 16.0;
    }
    false
}

/// The value of a Kubernetes resource quantity (`500m`, `1Gi`, `1e3`, `2`), as a number.
fn parse_quantity(value: &Value) -> Option<f64> {
    let text = match value {
        Value::Number(n) => return n.as_f64(),
        Value::String(s) => s.trim(),
        _ => return None,
    };
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let (number, multiplier) = SUFFIXES
        .iter()
        .find_map(|(suffix, m)| text.strip_suffix(suffix).map(|n| (n, *m)))
        .unwrap_or((text, 1.0));
    if number.is_empty()
        || !number
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '+' | '-' | 'e' | 'E'))
    {
        return None;
    }
    number.parse::<f64>().ok().map(|n| n * multiplier)
}

#[cfg(test)]
mod tests {
    use fleet_api::{DiffOptions, Operation};

    use super::*;

    fn deployment(replicas: i64) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {
                "replicas": replicas,
                "template": {"spec": {
                    "hostNetwork": false,
                    "containers": [{"name": "web", "image": "nginx:1.27",
                                    "resources": {"limits": {"cpu": 1, "memory": "1Gi"}}}],
                }},
            },
        })
    }

    /// What the API server returns for `deployment(replicas)`: server-owned metadata,
    /// defaulted fields, Fleet's marks, status.
    fn live_deployment(replicas: i64) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web", "namespace": "ns", "uid": "u-1", "resourceVersion": "42",
                "generation": 3, "creationTimestamp": "2025-01-01T00:00:00Z",
                "managedFields": [{"manager": "fleet-agent"}],
                "labels": {"app": "web", "objectset.rio.cattle.io/hash": "abc"},
                "annotations": {"meta.helm.sh/release-name": "web",
                                "deployment.kubernetes.io/revision": "1"},
            },
            "spec": {
                "replicas": replicas,
                "progressDeadlineSeconds": 600,
                "strategy": {"type": "RollingUpdate"},
                "template": {"spec": {
                    "restartPolicy": "Always",
                    "containers": [{"name": "web", "image": "nginx:1.27",
                                    "imagePullPolicy": "IfNotPresent",
                                    "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}],
                }},
            },
            "status": {"replicas": replicas},
        })
    }

    fn options(patches: Vec<ComparePatch>) -> BundleDeploymentOptions {
        BundleDeploymentOptions {
            diff: Some(DiffOptions {
                compare_patches: patches,
            }),
            ..Default::default()
        }
    }

    fn web_patch() -> ComparePatch {
        ComparePatch {
            kind: "Deployment".into(),
            api_version: "apps/v1".into(),
            namespace: "ns".into(),
            name: "web".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_live_object_with_only_server_defaulted_fields_is_not_modified() {
        let patch = modified_patch(&deployment(1), &live_deployment(1), &Default::default());
        assert_eq!(patch, None);
    }

    #[test]
    fn a_changed_field_gives_the_merge_patch_back_to_the_desired_value() {
        let patch = modified_patch(&deployment(1), &live_deployment(3), &Default::default());
        assert_eq!(patch, Some(json!({"spec": {"replicas": 1}})));
        assert_eq!(
            patch_string(&patch.unwrap_or_default()),
            r#"{"spec":{"replicas":1}}"#
        );
    }

    #[test]
    fn a_missing_desired_field_is_a_modification() {
        let mut live = live_deployment(1);
        live["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("app");
        let patch = modified_patch(&deployment(1), &live, &Default::default());
        assert_eq!(patch, Some(json!({"metadata": {"labels": {"app": "web"}}})));
    }

    #[test]
    fn lists_compare_element_by_element_and_differ_in_length() {
        let desired = json!({"a": [{"name": "x", "v": 1}]});
        assert_eq!(
            compare(
                &desired,
                &json!({"a": [{"name": "x", "v": 1, "extra": true}]})
            ),
            None
        );
        assert_eq!(
            compare(&desired, &json!({"a": [{"name": "x", "v": 2}]})),
            Some(desired.clone())
        );
        assert_eq!(
            compare(
                &desired,
                &json!({"a": [{"name": "x", "v": 1}, {"name": "y"}]})
            ),
            Some(desired.clone())
        );
    }

    #[test]
    fn a_changed_container_image_replaces_the_container_list_in_the_patch() {
        let mut live = live_deployment(1);
        live["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:latest");
        let patch = modified_patch(&deployment(1), &live, &Default::default()).unwrap();
        assert_eq!(
            patch["spec"]["template"]["spec"]["containers"][0]["image"],
            json!("nginx:1.27")
        );
    }

    #[test]
    fn empty_desired_values_match_absent_live_fields() {
        let desired = json!({"spec": {"hostNetwork": false, "env": [], "annotations": {}, "s": "", "n": null}});
        assert_eq!(compare(&desired, &json!({"spec": {}})), None);
        assert_eq!(
            compare(
                &json!({"spec": {"hostNetwork": true}}),
                &json!({"spec": {}})
            ),
            Some(json!({"spec": {"hostNetwork": true}}))
        );
    }

    #[test]
    fn quantities_compare_by_value_and_numbers_by_value() {
        let desired = json!({"resources": {"limits": {"cpu": 0.5, "memory": "1024Mi"}, "requests": {"cpu": "1000m"}}});
        let live = json!({"resources": {"limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": "1"}}});
        assert_eq!(compare(&desired, &live), None);
        assert_eq!(compare(&json!({"a": 1.0}), &json!({"a": 1})), None);
        // Outside resource maps, a number and a string differ.
        assert_eq!(
            compare(&json!({"a": 1}), &json!({"a": "1"})),
            Some(json!({"a": 1}))
        );
        assert_eq!(
            compare(
                &json!({"limits": {"cpu": "2"}}),
                &json!({"limits": {"cpu": "1"}})
            ),
            Some(json!({"limits": {"cpu": "2"}}))
        );
    }

    #[test]
    fn a_remove_operation_ignores_that_field_on_both_sides() {
        let opts = options(vec![ComparePatch {
            operations: vec![Operation {
                op: "remove".into(),
                path: "/spec/replicas".into(),
                value: String::new(),
            }],
            ..web_patch()
        }]);
        assert_eq!(
            modified_patch(&deployment(1), &live_deployment(3), &opts),
            None
        );
    }

    #[test]
    fn an_operation_for_another_object_changes_nothing() {
        let opts = options(vec![ComparePatch {
            name: "other".into(),
            operations: vec![Operation {
                op: "remove".into(),
                path: "/spec/replicas".into(),
                value: String::new(),
            }],
            ..web_patch()
        }]);
        assert!(modified_patch(&deployment(1), &live_deployment(3), &opts).is_some());
    }

    #[test]
    fn json_pointers_ignore_that_field_and_match_by_kind_when_no_name_is_given() {
        let opts = options(vec![ComparePatch {
            kind: "Deployment".into(),
            api_version: "apps/v1".into(),
            json_pointers: vec!["/spec/replicas".into()],
            ..Default::default()
        }]);
        assert_eq!(
            modified_patch(&deployment(1), &live_deployment(3), &opts),
            None
        );
        // A pointer to an absent field is harmless.
        let opts = options(vec![ComparePatch {
            json_pointers: vec!["/spec/nothing".into()],
            ..web_patch()
        }]);
        assert!(modified_patch(&deployment(1), &live_deployment(3), &opts).is_some());
    }

    #[test]
    fn an_ignore_operation_names_the_object_exactly() {
        let opts = options(vec![ComparePatch {
            operations: vec![Operation {
                op: "ignore".into(),
                ..Default::default()
            }],
            ..web_patch()
        }]);
        let key = ObjectKey::from_object(&deployment(1)).unwrap();
        assert!(is_ignored(&key, &opts));
        let other = ObjectKey {
            name: "api".into(),
            ..key.clone()
        };
        assert!(!is_ignored(&other, &opts));
        assert!(!is_ignored(&key, &Default::default()));
    }

    #[test]
    fn a_cluster_scoped_live_object_is_compared_without_the_rendered_namespace() {
        let desired = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "namespace": "default"}});
        let live = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "uid": "1"}, "spec": {"finalizers": ["kubernetes"]}});
        assert_eq!(modified_patch(&desired, &live, &Default::default()), None);
    }

    #[test]
    fn secret_string_data_matches_the_encoded_live_data() {
        let desired = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "ns"},
            "stringData": {"password": "hunter2"}, "data": {"empty": null}});
        let live = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "ns", "uid": "1"}, "type": "Opaque",
            "data": {"password": "aHVudGVyMg==", "empty": ""}});
        assert_eq!(modified_patch(&desired, &live, &Default::default()), None);
        let mut changed = live.clone();
        changed["data"]["password"] = json!("b3RoZXI=");
        assert_eq!(
            modified_patch(&desired, &changed, &Default::default()),
            Some(json!({"data": {"password": "aHVudGVyMg=="}}))
        );
    }

    #[test]
    fn the_rules_of_an_aggregated_cluster_role_are_not_compared() {
        let desired = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "view-all"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]},
            "rules": []});
        let mut live = desired.clone();
        live["rules"] = json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]);
        assert_eq!(modified_patch(&desired, &live, &Default::default()), None);
    }

    #[test]
    fn comparing_in_place_gives_what_comparing_normalized_copies_gives() {
        let with = |mut object: Value, pointer: &str, value: Value| {
            if let Some(slot) = object.pointer_mut(pointer) {
                *slot = value;
            }
            object
        };
        let mut labelled_only_by_marks = deployment(1);
        labelled_only_by_marks["metadata"]["labels"] = json!({"objectset.rio.cattle.io/hash": "x"});
        let mut unlabelled_live = live_deployment(1);
        unlabelled_live["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("labels");
        let mut empty_label_value = deployment(1);
        empty_label_value["metadata"]["labels"] = json!({"gone": ""});
        let mut cluster_scoped_live = live_deployment(1);
        cluster_scoped_live["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("namespace");
        let pairs = [
            (deployment(1), live_deployment(1)),
            (deployment(1), live_deployment(2)),
            (
                deployment(1),
                with(live_deployment(1), "/metadata/labels/app", json!("db")),
            ),
            (
                deployment(1),
                with(live_deployment(1), "/metadata/namespace", json!("other")),
            ),
            (deployment(1), cluster_scoped_live),
            (deployment(1), unlabelled_live.clone()),
            (labelled_only_by_marks, unlabelled_live.clone()),
            (empty_label_value.clone(), unlabelled_live),
            (empty_label_value, live_deployment(1)),
            (
                with(
                    deployment(1),
                    "/metadata/annotations",
                    json!({"note": "x", "meta.helm.sh/release-name": "y"}),
                ),
                live_deployment(1),
            ),
            (
                with(deployment(1), "/status", json!({"x": 1})),
                live_deployment(1),
            ),
            (
                with(
                    deployment(1),
                    "/spec/template/spec/containers/0/image",
                    json!("nginx:2"),
                ),
                live_deployment(1),
            ),
        ];
        for (desired, live) in pairs {
            let Ok(in_place) = modified_patch_in_place(&desired, &live, &Default::default()) else {
                panic!("compared on copies: {desired}");
            };
            assert_eq!(
                in_place,
                modified_patch_on_copies(&desired, &live, &Default::default()),
                "{desired} against {live}"
            );
        }
    }

    #[test]
    fn patch_text_escapes_html_characters_like_go() {
        assert_eq!(
            patch_string(&json!({"data": {"html": "<a&b>"}})),
            r#"{"data":{"html":"\u003ca\u0026b\u003e"}}"#
        );
    }

    #[test]
    fn glob_patterns_match_like_argo() {
        assert!(glob_match("*", "apps"));
        assert!(glob_match("", ""));
        assert!(!glob_match("", "apps"));
        assert!(glob_match("Dep*", "Deployment"));
        assert!(glob_match("D?ployment", "Deployment"));
        assert!(!glob_match("Dep*x", "Deployment"));
    }
}

//! The agent's monitor (Fleet's `internal/cmd/agent/deployer/monitor`): compares what a
//! BundleDeployment should have deployed with what is live in the downstream cluster and
//! derives the status fields the agent reports — readiness of every object ([`summary`]),
//! drift ([`diff`]), and the resource counts ([`counts`]).
//!
//! Pure: no client, no I/O. The agent gathers the desired objects, their live copies and the
//! orphans, calls [`evaluate`], and writes the result into `BundleDeployment.status`.

use std::collections::BTreeMap;

use fleet_api::{
    BundleDeploymentOptions, BundleDeploymentResource, ModifiedStatus, NonReadyStatus,
    ResourceCounts,
};
use serde_json::Value;

pub mod counts;
pub mod diff;
pub mod summary;

/// Identity of a Kubernetes object: group/version, kind, namespace ("" when cluster-scoped)
/// and name. Ordered by apiVersion, kind, namespace, name (Fleet sorts the same way).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// `apiVersion`, e.g. `apps/v1` or `v1`.
    pub api_version: String,
    /// `kind`, e.g. `Deployment`.
    pub kind: String,
    /// `metadata.namespace`; "" for cluster-scoped objects.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl ObjectKey {
    /// The key of a JSON object; `None` when it has no kind or name.
    pub fn from_object(object: &Value) -> Option<ObjectKey> {
        // Field by field: `Value::pointer` allocates for every step of its path, and keys are
        // taken of every object of every deployment.
        let metadata = |field: &str| object.get("metadata")?.get(field)?.as_str();
        let kind = object.get("kind").and_then(Value::as_str);
        let kind = kind.filter(|k| !k.is_empty())?;
        let name = metadata("name").filter(|n| !n.is_empty())?;
        Some(ObjectKey {
            api_version: object
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            kind: kind.to_string(),
            namespace: metadata("namespace").unwrap_or_default().to_string(),
            name: name.to_string(),
        })
    }
}

/// What the monitor needs to evaluate one BundleDeployment.
#[derive(Debug, Clone, Copy)]
pub struct MonitorInput<'a> {
    /// The rendered objects of the deployment, namespaces set.
    pub desired: &'a [Value],
    /// The live copy of each desired object that exists in the downstream cluster, keyed by
    /// the desired object's key (a key without namespace is also tried for cluster-scoped
    /// objects rendered with one).
    pub live: &'a BTreeMap<ObjectKey, Value>,
    /// Live objects of this bundle's object set that are no longer desired and were not pruned.
    pub orphans: &'a [Value],
    /// The deployment options (`diff.comparePatches`, `ignore.conditions`).
    pub options: &'a BundleDeploymentOptions,
}

/// The status fields derived from one evaluation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MonitorResult {
    /// Every live desired object is ready (missing ones do not count: Fleet's rule).
    pub ready: bool,
    /// Nothing is missing, extra or modified.
    pub non_modified: bool,
    /// Non-ready objects, at most 10.
    pub non_ready_status: Vec<NonReadyStatus>,
    /// Missing, extra and modified objects, at most 10.
    pub modified_status: Vec<ModifiedStatus>,
    /// One of the lists above was truncated.
    pub incomplete_state: bool,
    /// Objects per state.
    pub resource_counts: ResourceCounts,
    /// The desired objects that are live and ours (kind, apiVersion, namespace, name,
    /// createdAt), ordered by key; Fleet's `status.resources`.
    pub resources: Vec<BundleDeploymentResource>,
    /// Message of the Ready condition: empty when ready and unmodified.
    pub ready_message: String,
}

/// Evaluates readiness, drift and counts of one BundleDeployment (Fleet's
/// `updateFromPreviousDeployment` + `updateFromResources` + `readyError`).
///
/// - Each desired object without a live copy is missing (`modifiedStatus[].missing`), unless
///   a `diff.comparePatches` entry with `op: ignore` names it. So is one whose live copy
///   belongs to another Helm release (`exist`: "is not owned by us"), when the desired object
///   carries its release annotations (`meta.helm.sh/release-name`/`-namespace`).
/// - Each live desired object is summarized for readiness (after removing the conditions
///   `ignore.conditions` matches) and compared with its desired state (`patch`).
/// - Each orphan is `delete` (reported as "extra").
///
/// `resources` lists the live desired objects, counts use the complete lists, and the lists
/// are then cut to 10 entries (`incompleteState`). `nonReadyStatus` is ordered by UID (then
/// object key), `modifiedStatus` by `apiVersion/kind/namespace/name`, as in Fleet.
pub fn evaluate(input: &MonitorInput) -> MonitorResult {
    let mut desired: BTreeMap<ObjectKey, &Value> = BTreeMap::new();
    for object in input.desired {
        if let Some(key) = ObjectKey::from_object(object) {
            desired.entry(key).or_insert(object);
        }
    }

    let mut resources = Vec::new();
    let mut non_ready = Vec::new();
    let mut modified = Vec::new();
    for (key, desired_object) in &desired {
        let ignored = diff::is_ignored(key, input.options);
        let Some(live) = live_copy(input.live, key) else {
            if !ignored {
                modified.push(modified_status(key, true, false, String::new()));
            }
            continue;
        };
        if !ignored && owned_by_another_release(desired_object, live) {
            let mut status = modified_status(key, true, false, String::new());
            status.exist = true;
            modified.push(status);
            continue;
        }
        let live_key = ObjectKey::from_object(live).unwrap_or_else(|| key.clone());
        resources.push(BundleDeploymentResource {
            kind: live_key.kind.clone(),
            api_version: live_key.api_version.clone(),
            namespace: live_key.namespace.clone(),
            name: live_key.name.clone(),
            created_at: live
                .get("metadata")
                .and_then(|v| v.get("creationTimestamp"))
                .and_then(|t| serde_json::from_value(t.clone()).ok()),
        });

        let summary = summary::summarize_with_ignore(live, &input.options.ignore);
        if !summary.is_ready() {
            non_ready.push(NonReadyStatus {
                uid: live
                    .get("metadata")
                    .and_then(|v| v.get("uid"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                kind: live_key.kind.clone(),
                api_version: live_key.api_version.clone(),
                namespace: live_key.namespace.clone(),
                name: live_key.name.clone(),
                summary,
            });
        }

        if !ignored && let Some(patch) = diff::modified_patch(desired_object, live, input.options) {
            modified.push(modified_status(
                &live_key,
                false,
                false,
                diff::patch_string(&patch),
            ));
        }
    }
    for orphan in input.orphans {
        let Some(key) = ObjectKey::from_object(orphan) else {
            continue;
        };
        if desired.contains_key(&key) {
            continue;
        }
        modified.push(modified_status(&key, false, true, String::new()));
    }

    non_ready.sort_by(|a, b| {
        (&a.uid, &a.api_version, &a.kind, &a.namespace, &a.name).cmp(&(
            &b.uid,
            &b.api_version,
            &b.kind,
            &b.namespace,
            &b.name,
        ))
    });
    modified.sort_by_key(modified_sort_key);
    modified.dedup_by(|a, b| modified_sort_key(a) == modified_sort_key(b));

    let resource_counts = counts::resource_counts(&resources, &non_ready, &modified);
    let ready = non_ready.is_empty();
    let non_modified = modified.is_empty();
    let ready_message = ready_message(ready, non_modified, &non_ready, &modified);
    let non_ready_cut = counts::truncate(&mut non_ready);
    let modified_cut = counts::truncate(&mut modified);

    MonitorResult {
        ready,
        non_modified,
        non_ready_status: non_ready,
        modified_status: modified,
        incomplete_state: non_ready_cut || modified_cut,
        resource_counts,
        resources,
        ready_message,
    }
}

/// The merge patch that would bring `live` back to `desired` (what `modifiedStatus[].patch`
/// shows), or `None` when it matches or a `comparePatches` entry with `op: ignore` names it.
/// Drift correction can use it to decide whether an object needs to be re-applied.
pub fn drift_patch(
    desired: &Value,
    live: &Value,
    options: &BundleDeploymentOptions,
) -> Option<Value> {
    let key = ObjectKey::from_object(live).or_else(|| ObjectKey::from_object(desired))?;
    if diff::is_ignored(&key, options) {
        return None;
    }
    diff::modified_patch(desired, live, options)
}

/// Helm's release annotations on an object.
const RELEASE_ANNOTATIONS: [&str; 2] = [
    "meta.helm.sh/release-name",
    "meta.helm.sh/release-namespace",
];

/// True when the desired object names its Helm release and the live object belongs to another
/// (or to none): it exists but is not ours (Fleet: `missing` with `exist`, "is not owned by us").
fn owned_by_another_release(desired: &Value, live: &Value) -> bool {
    let annotation = |object: &Value, name: &str| {
        object
            .get("metadata")
            .and_then(|v| v.get("annotations"))
            .and_then(|a| a.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    RELEASE_ANNOTATIONS.iter().any(|name| {
        annotation(desired, name).is_some_and(|wanted| annotation(live, name) != Some(wanted))
    })
}

/// The live copy of a desired object: by its key, else (a namespace set by the renderer on a
/// cluster-scoped object) by its key without namespace.
fn live_copy<'a>(live: &'a BTreeMap<ObjectKey, Value>, key: &ObjectKey) -> Option<&'a Value> {
    live.get(key).or_else(|| {
        if key.namespace.is_empty() {
            return None;
        }
        live.get(&ObjectKey {
            namespace: String::new(),
            ..key.clone()
        })
    })
}

fn modified_status(key: &ObjectKey, create: bool, delete: bool, patch: String) -> ModifiedStatus {
    ModifiedStatus {
        kind: key.kind.clone(),
        api_version: key.api_version.clone(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        create,
        exist: false,
        delete,
        patch,
    }
}

/// Fleet's `sortKey`: `apiVersion/kind/namespace/name`.
fn modified_sort_key(m: &ModifiedStatus) -> String {
    format!("{}/{}/{}/{}", m.api_version, m.kind, m.namespace, m.name)
}

/// Message of the BundleDeployment's Ready condition (Fleet's `readyError`): empty when ready
/// and unmodified; else the first non-ready object (`not ready` when the list is empty), else
/// the first modified one (`out of sync`), e.g.
/// `deployment.apps ns/web modified {"spec":{"replicas":1}}`.
pub fn ready_message(
    ready: bool,
    non_modified: bool,
    non_ready: &[NonReadyStatus],
    modified: &[ModifiedStatus],
) -> String {
    if ready && non_modified {
        String::new()
    } else if !ready {
        non_ready
            .first()
            .map_or_else(|| "not ready".to_string(), ToString::to_string)
    } else {
        modified
            .first()
            .map_or_else(|| "out of sync".to_string(), ToString::to_string)
    }
}

#[cfg(test)]
mod tests;

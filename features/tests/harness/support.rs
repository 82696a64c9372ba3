//! Helpers the steps share: waiting, dynamic access to objects by kind, Fleet's objects as JSON.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::Value;

/// Longest a `within` step may ask for, and the default wait of steps that do not say.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(120);

/// How long the steps wait when the scenario says `within N s`: never less than what was
/// written, but stretched on slow machines with `FLEET_FEATURES_TIME_SCALE` (e.g. 3 on a loaded
/// CI host). The value written in the scenario stays the contract users read.
pub fn scaled(seconds: u64) -> Duration {
    let scale: f64 = std::env::var("FLEET_FEATURES_TIME_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| *s >= 1.0)
        .unwrap_or(2.0);
    Duration::from_secs_f64(seconds as f64 * scale)
}

/// Polls `check` every 200 ms until it returns `Ok`, for up to `timeout`; otherwise fails with
/// `what` and the last thing observed.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(v) => return Ok(v),
            Err(observed) => observed,
        };
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "timed out after {}s waiting for {what}\n  last observed: {last}",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Checks that `check` keeps returning `Ok` for `period` (polling), e.g. that a held-back
/// rollout really stays held back. Fails at the first `Err`.
pub async fn consistently<F, Fut>(period: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let deadline = tokio::time::Instant::now() + period;
    loop {
        if let Err(observed) = check().await {
            bail!("{what} stopped holding: {observed}");
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `apiVersion` of the kinds the scenarios name.
fn api_version_of(kind: &str) -> anyhow::Result<&'static str> {
    Ok(match kind {
        "ConfigMap" | "Secret" | "Service" | "ServiceAccount" | "Namespace" | "Pod" | "Node" => {
            "v1"
        }
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => "apps/v1",
        "Job" => "batch/v1",
        "Role" | "RoleBinding" | "ClusterRole" | "ClusterRoleBinding" => {
            "rbac.authorization.k8s.io/v1"
        }
        "GitRepo"
        | "Bundle"
        | "BundleDeployment"
        | "Cluster"
        | "ClusterGroup"
        | "HelmOp"
        | "Content"
        | "ClusterRegistration"
        | "ClusterRegistrationToken" => "fleet.cattle.io/v1alpha1",
        other => bail!("kind {other} is not known to the feature steps (add it in support.rs)"),
    })
}

fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace" | "Node" | "ClusterRole" | "ClusterRoleBinding" | "Content"
    )
}

/// The API of `kind`, namespaced when `namespace` is given.
pub fn api(
    client: &kube::Client,
    kind: &str,
    namespace: Option<&str>,
) -> anyhow::Result<Api<DynamicObject>> {
    let api_version = api_version_of(kind)?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    Ok(match namespace {
        Some(ns) if !is_cluster_scoped(kind) => Api::namespaced_with(client.clone(), ns, &ar),
        _ => Api::all_with(client.clone(), &ar),
    })
}

/// Splits `namespace/name` (or `name` for cluster-scoped objects).
pub fn split_key(key: &str) -> (Option<&str>, &str) {
    match key.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, key),
    }
}

/// The object `kind` `key` as JSON, `None` when it does not exist.
pub async fn get(client: &kube::Client, kind: &str, key: &str) -> Result<Option<Value>, String> {
    let (ns, name) = split_key(key);
    let api = api(client, kind, ns).map_err(|e| e.to_string())?;
    match api.get_opt(name).await {
        Ok(obj) => Ok(obj.map(|o| serde_json::to_value(o).unwrap_or_default())),
        Err(e) => Err(format!("reading {kind} {key}: {e}")),
    }
}

/// Every object of `kind` (all namespaces) as JSON.
pub async fn list(client: &kube::Client, kind: &str) -> Result<Vec<Value>, String> {
    let api = api(client, kind, None).map_err(|e| e.to_string())?;
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("listing {kind}: {e}"))?;
    Ok(list
        .items
        .into_iter()
        .map(|o| serde_json::to_value(o).unwrap_or_default())
        .collect())
}

/// The condition `type_` of a Fleet object.
pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// `Ready` status and message, `("", "")` when there is no such condition.
pub fn ready(obj: &Value) -> (String, String) {
    condition(obj, "Ready")
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .unwrap_or_default()
}

/// Labels written `k=v` or `k=v,k2=v2` (spaces allowed).
pub fn parse_labels(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    text.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| anyhow!("label {kv:?} is not key=value"))
        })
        .collect()
}

/// A list written `a, b and c` or `"a", "b"`.
pub fn parse_list(text: &str) -> Vec<String> {
    text.split([','])
        .flat_map(|s| s.split(" and "))
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The BundleDeployment of bundle `bundle` for cluster `cluster` (found by Fleet's labels).
pub async fn bundle_deployment(
    upstream: &kube::Client,
    bundle: &str,
    cluster: &str,
) -> Result<Value, String> {
    let all = list(upstream, "BundleDeployment").await?;
    all.into_iter()
        .find(|bd| {
            bd["metadata"]["labels"]["fleet.cattle.io/bundle-name"] == bundle
                && bd["metadata"]["labels"]["fleet.cattle.io/cluster"] == cluster
        })
        .ok_or_else(|| format!("no BundleDeployment of bundle {bundle} for cluster {cluster}"))
}

/// Parses YAML text into JSON.
pub fn yaml(text: &str) -> anyhow::Result<Value> {
    serde_norway::from_str(text).context("parsing YAML")
}

/// `want ⊆ got`: every field of `want` is in `got` with the same value.
pub fn is_subset(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => w
            .iter()
            .all(|(k, v)| g.get(k).is_some_and(|gv| is_subset(v, gv))),
        (Value::Array(w), Value::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(a, b)| is_subset(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => want == got,
    }
}

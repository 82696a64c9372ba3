//! Status wording as users read it (`kubectl get`, the Rancher UI), checked against snapshots in
//! `snapshots/` at the repository root. Times, uids, resourceVersions, commit ids and the ports
//! of the scenario's servers on 127.0.0.1 are redacted. A new or changed snapshot fails the step (CI runs with `INSTA_UPDATE=no`); review it
//! with `cargo insta review` or accept it with `INSTA_UPDATE=always`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use cucumber::then;
use serde_json::{Value, json};

use crate::backend::CLUSTERS_NAMESPACE;
use crate::support::{self, DEFAULT_WAIT, condition};
use crate::world::{FleetWorld, slug};

fn snapshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../snapshots");
    dir.canonicalize().unwrap_or(dir)
}

/// Patterns in text that change from run to run, and their placeholders.
struct Volatile {
    commit: regex::Regex,
    loopback_port: regex::Regex,
}

impl Volatile {
    fn new() -> Self {
        let re = |p| regex::Regex::new(p).unwrap_or_else(|_| unreachable!());
        Volatile {
            commit: re(r"\b[0-9a-f]{40}\b"),
            loopback_port: re(r"\b127\.0\.0\.1:\d+\b"),
        }
    }

    fn apply(&self, text: &mut String) {
        if self.commit.is_match(text) {
            *text = self.commit.replace_all(text, "[commit]").into_owned();
        }
        if self.loopback_port.is_match(text) {
            *text = self
                .loopback_port
                .replace_all(text, "127.0.0.1:[port]")
                .into_owned();
        }
    }
}

/// Replaces what changes from run to run by stable placeholders.
fn redact(value: &mut Value, volatile: &Volatile) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let placeholder = match key.as_str() {
                    "uid" => Some("[uid]"),
                    "resourceVersion" => Some("[resourceVersion]"),
                    "creationTimestamp" | "lastUpdateTime" | "lastTransitionTime" | "lastSeen" => {
                        Some("[time]")
                    }
                    _ => None,
                };
                match placeholder {
                    Some(p) if !v.is_null() => *v = json!(p),
                    _ => redact(v, volatile),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| redact(v, volatile)),
        Value::String(s) => volatile.apply(s),
        _ => {}
    }
}

/// What a user sees of an object: identity, the Ready condition and `status.display`.
fn view(kind: &str, obj: &Value) -> String {
    let meta = &obj["metadata"];
    let ready = condition(obj, "Ready").cloned().unwrap_or(Value::Null);
    let mut v = json!({
        "kind": kind,
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
        },
        "ready": ready,
        "display": obj["status"]["display"],
    });
    if kind == "GitRepo" || kind == "Bundle" {
        v["summary"] = obj["status"]["summary"].clone();
    }
    redact(&mut v, &Volatile::new());
    serde_norway::to_string(&v).unwrap_or_default()
}

/// The stored snapshot's content (after insta's header), if there is one.
fn stored(name: &str) -> Option<String> {
    let text = std::fs::read_to_string(snapshot_dir().join(format!("{name}.snap"))).ok()?;
    let body = text.strip_prefix("---\n")?;
    let (_, content) = body.split_once("\n---\n")?;
    Some(content.trim_end().to_string())
}

/// Waits (polling) for the observed view to equal the stored snapshot, or, without one, to
/// settle; then asserts with insta so a difference shows as a diff.
async fn check(
    world: &FleetWorld,
    kind: &str,
    key: &str,
    fetch: impl AsyncFn() -> Result<Value, String>,
    name: String,
) -> anyhow::Result<()> {
    let expected = stored(&name);
    let deadline = tokio::time::Instant::now() + DEFAULT_WAIT;
    let mut previous: Option<String> = None;
    let observed = loop {
        let current = match fetch().await {
            Ok(obj) => Some(view(kind, &obj)),
            Err(_) => None,
        };
        let settled = match (&expected, &current) {
            (Some(want), Some(got)) => got.trim_end() == want,
            (None, Some(got)) => previous.as_deref() == Some(got.as_str()),
            _ => false,
        };
        if settled || tokio::time::Instant::now() >= deadline {
            break current;
        }
        previous = current;
        tokio::time::sleep(Duration::from_millis(if expected.is_some() {
            250
        } else {
            1000
        }))
        .await;
    };
    let observed = observed.ok_or_else(|| anyhow!("{kind} {key} cannot be read"))?;
    let _ = world;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        insta::with_settings!({
            snapshot_path => snapshot_dir(),
            prepend_module_to_snapshot => false,
            omit_expression => true,
            description => format!("{kind} {key}"),
        }, {
            insta::assert_snapshot!(name.clone(), observed);
        });
    }));
    result.map_err(|panic| {
        let text = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        anyhow!("snapshot {name} of {kind} {key} does not match (review with `cargo insta review`, or accept with INSTA_UPDATE=always): {text}")
    })
}

fn snapshot_name(world: &FleetWorld, what: &str) -> String {
    format!("{}__{}", world.snapshot_prefix, slug(what))
}

#[then(expr = "the GitRepo {string} status matches the snapshot")]
async fn gitrepo(world: &mut FleetWorld, name: String) -> anyhow::Result<()> {
    let world = &*world;
    let upstream = world.upstream()?;
    let key = format!("{CLUSTERS_NAMESPACE}/{name}");
    let fetch = async || {
        support::get(&upstream, "GitRepo", &key)
            .await?
            .ok_or_else(|| "absent".to_string())
    };
    check(
        world,
        "GitRepo",
        &key,
        fetch,
        snapshot_name(world, &format!("gitrepo {name}")),
    )
    .await
}

#[then(expr = "the Bundle {string} status matches the snapshot")]
async fn bundle(world: &mut FleetWorld, name: String) -> anyhow::Result<()> {
    let world = &*world;
    let upstream = world.upstream()?;
    let key = format!("{CLUSTERS_NAMESPACE}/{name}");
    let fetch = async || {
        support::get(&upstream, "Bundle", &key)
            .await?
            .ok_or_else(|| "absent".to_string())
    };
    check(
        world,
        "Bundle",
        &key,
        fetch,
        snapshot_name(world, &format!("bundle {name}")),
    )
    .await
}

#[then(expr = "the BundleDeployment of {string} on cluster {string} status matches the snapshot")]
async fn bundle_deployment(
    world: &mut FleetWorld,
    name: String,
    cluster: String,
) -> anyhow::Result<()> {
    let world = &*world;
    let upstream = world.upstream()?;
    let key = format!("{name} on {cluster}");
    let fetch = async || support::bundle_deployment(&upstream, &name, &cluster).await;
    check(
        world,
        "BundleDeployment",
        &key,
        fetch,
        snapshot_name(world, &format!("bundledeployment {name} {cluster}")),
    )
    .await
}

#[then(expr = "the Cluster {string} status matches the snapshot")]
async fn cluster(world: &mut FleetWorld, name: String) -> anyhow::Result<()> {
    let world = &*world;
    let upstream = world.upstream()?;
    let key = format!("{CLUSTERS_NAMESPACE}/{name}");
    let fetch = async || {
        support::get(&upstream, "Cluster", &key)
            .await?
            .ok_or_else(|| "absent".to_string())
    };
    check(
        world,
        "Cluster",
        &key,
        fetch,
        snapshot_name(world, &format!("cluster {name}")),
    )
    .await
}

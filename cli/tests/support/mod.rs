//! Fixtures for the end-to-end tests: local git repositories, waiting for conditions,
//! reading objects from simulated clusters, and comparing them with `fleet test` output.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::Value;

/// A git repository in a temporary folder, committed with the `git` CLI.
pub struct GitFixture {
    dir: tempfile::TempDir,
}

impl GitFixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let fixture = GitFixture { dir };
        fixture.git(&["init", "-q", "-b", "main"]);
        fixture.git(&["config", "user.email", "e2e@fleet-rs.test"]);
        fixture.git(&["config", "user.name", "fleet-rs e2e"]);
        fixture.git(&["config", "commit.gpgsign", "false"]);
        fixture
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `file://` URL of the repository.
    pub fn url(&self) -> String {
        format!("file://{}", self.dir.path().display())
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("running git");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Copies the folder `from` to `to` (relative to the repository root).
    pub fn copy_dir(&self, from: &Path, to: &str) {
        copy_recursively(from, &self.dir.path().join(to));
    }

    pub fn write(&self, path: &str, content: &str) {
        let p = self.dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }

    pub fn remove(&self, path: &str) {
        std::fs::remove_file(self.dir.path().join(path)).expect("remove");
    }

    /// Commits everything; returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}

fn copy_recursively(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_recursively(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The shared conformance folder (Fleet's examples), as `scripts/test` finds it.
pub fn shared_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("FLEET_SHARED_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

pub fn fleet_examples() -> PathBuf {
    shared_dir().join("conformance/fleet-examples")
}

/// Polls `check` every 100 ms until it returns `Some`, for up to `seconds`; panics with
/// `what` and the last observation otherwise.
pub async fn eventually<T, F, Fut>(seconds: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        let last = match check().await {
            Ok(v) => return v,
            Err(observed) => observed,
        };
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {seconds}s waiting for {what}; last observed: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The API of the kind of `obj` (plural guessed like kubectl does for regular kinds).
pub fn api_for(client: &kube::Client, obj: &Value) -> (Api<DynamicObject>, String) {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let api = match obj["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    (api, name)
}

/// Reads the live copy of `obj` from the cluster behind `client`.
pub async fn live(client: &kube::Client, obj: &Value) -> Option<Value> {
    let (api, name) = api_for(client, obj);
    api.get_opt(&name)
        .await
        .ok()
        .flatten()
        .map(|o| serde_json::to_value(o).expect("json"))
}

/// `want ⊆ got`: every field of `want` is in `got` with the same value (lists element-wise).
pub fn is_subset(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => w.iter().all(|(k, v)| {
            g.get(k).is_some_and(|gv| is_subset(v, gv)) || (v.is_null() && !g.contains_key(k))
        }),
        (Value::Array(w), Value::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(a, b)| is_subset(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => want == got,
    }
}

/// The objects `fleet test -l <labels>` prints for the bundle folder `dir`.
pub fn fleet_test_objects(dir: &Path, labels: &[(&str, &str)]) -> Vec<Value> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleet"));
    cmd.arg("test").current_dir(dir);
    for (k, v) in labels {
        cmd.arg("-l").arg(format!("{k}={v}"));
    }
    let out = cmd.output().expect("running fleet test");
    assert!(
        out.status.success(),
        "fleet test in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut objects = Vec::new();
    for doc in serde_norway::Deserializer::from_str(&text) {
        let v: Value = serde::Deserialize::deserialize(doc).expect("fleet test prints YAML");
        if v.is_object() {
            objects.push(v);
        }
    }
    objects
}

/// The parts of a rendered object that the deployed copy must contain: everything but the
/// object-set labels/annotations, which the agent sets with its own prefix.
pub fn deployable_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("labels");
        meta.remove("annotations");
    }
    v
}

/// Starts the system with `options` and adds one cluster per `(name, env)`, labelled `env`.
pub async fn system_with_envs(
    options: fleet_cli::system::SystemOptions,
    envs: &[(&str, &str)],
) -> fleet_cli::system::SimSystem {
    let system = fleet_cli::system::SimSystem::start(options)
        .await
        .expect("system starts");
    let specs: Vec<fleet_cli::system::ClusterSpec> = envs
        .iter()
        .map(|(name, env)| fleet_cli::system::ClusterSpec::new(name).label("env", env))
        .collect();
    system.add_clusters(&specs).await.expect("clusters join");
    system
}

/// Creates the Fleet object `kind`/`name` with `spec` in the clusters' namespace upstream.
pub async fn create_fleet_object<K>(
    system: &fleet_cli::system::SimSystem,
    kind: &str,
    name: &str,
    spec: Value,
) where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    let ns = fleet_cli::system::CLUSTERS_NAMESPACE;
    let obj: K = serde_json::from_value(serde_json::json!({
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }))
    .unwrap_or_else(|e| panic!("valid {kind}: {e}"));
    Api::<K>::namespaced(system.upstream_client(), ns)
        .create(&kube::api::PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("create {kind} {name}: {e}"));
}

/// The Fleet object `name` in the clusters' namespace upstream, as JSON.
pub async fn fleet_object_json<K>(system: &fleet_cli::system::SimSystem, name: &str) -> Value
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    let obj = Api::<K>::namespaced(
        system.upstream_client(),
        fleet_cli::system::CLUSTERS_NAMESPACE,
    )
    .get(name)
    .await
    .unwrap_or_else(|e| panic!("{name} exists: {e}"));
    serde_json::to_value(obj).expect("json")
}

/// The status condition `type_` of an object, if set.
pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

//! HelmOps: chart version resolution against a repository index, and the reconciler on the
//! in-process simulator with a chart repository served from 127.0.0.1 (Bundles created and
//! updated with the resolved version, polling, the disabled condition, bad input).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helmops_support;

use std::sync::Arc;
use std::time::Duration;

use fleet_api::{Bundle, BundleDeployment, HelmApp, HelmOp};
use fleet_controller::helmops::version::{is_exact_version, resolve_in_index_text};
use fleet_controller::{Context, ControllerConfig, Metrics};
use fleet_simulator::{SimConfig, Simulator};
use helmops_support::{ChartRepo, dead_url};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const NS: &str = "fleet-default";

// --- pure version resolution -----------------------------------------------------------------

fn index() -> String {
    let repo = ChartRepo::start();
    for v in ["1.0.0", "1.2.0", "1.2.5", "1.3.0", "2.0.0", "2.1.0-rc.1"] {
        repo.publish_archive("web", v, Vec::new());
    }
    repo.index_yaml()
}

#[test]
fn constraints_resolve_to_the_highest_matching_version() {
    let index = index();
    for (constraint, want) in [
        ("~1.2", "1.2.5"),
        (">=1.0 <2", "1.3.0"),
        ("*", "2.0.0"),
        ("", "2.0.0"),
        ("^1", "1.3.0"),
        ("1.2.0", "1.2.0"),
        ("2.1.0-rc.1", "2.1.0-rc.1"),
    ] {
        assert_eq!(
            resolve_in_index_text(&index, "web", constraint).as_deref(),
            Ok(want),
            "constraint {constraint:?}"
        );
    }
}

#[test]
fn unresolvable_versions_say_why() {
    let index = index();
    let none = resolve_in_index_text(&index, "web", ">=5").unwrap_err();
    assert!(none.contains("\"web\"") && none.contains(">=5"), "{none}");
    let unknown = resolve_in_index_text(&index, "nope", "*").unwrap_err();
    assert!(
        unknown.contains("\"nope\"") && unknown.contains("not found"),
        "{unknown}"
    );
    let broken = resolve_in_index_text("entries: [unclosed", "web", "*").unwrap_err();
    assert!(broken.contains("index.yaml"), "{broken}");
    let bad = resolve_in_index_text(&index, "web", "~>?1").unwrap_err();
    assert!(bad.contains("constraint"), "{bad}");
}

#[test]
fn exact_versions_are_not_constraints() {
    assert!(is_exact_version("1.2.3"));
    assert!(!is_exact_version("~1.2"));
    assert!(!is_exact_version("*"));
    assert!(!is_exact_version(""));
}

// --- the reconciler on the simulator ---------------------------------------------------------

struct Upstream {
    _sim: Simulator,
    client: kube::Client,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start(enabled: bool) -> Self {
        let sim = Simulator::new(SimConfig::default());
        let up = sim.add_cluster("upstream").expect("cluster");
        up.install_crds(&fleet_api::crds::all()).expect("crds");
        let client = up.client();
        for ns in [NS, "cluster-ns-1", "cattle-fleet-system"] {
            let obj: Namespace =
                serde_json::from_value(json!({"metadata": {"name": ns}})).expect("namespace");
            let _ = Api::<Namespace>::all(client.clone())
                .create(&PostParams::default(), &obj)
                .await;
        }
        let config = ControllerConfig {
            helmops_enabled: enabled,
            jitter_seed: Some(9),
            default_polling_interval: Duration::from_millis(500),
            ..Default::default()
        };
        let mut registry = prometheus_client::registry::Registry::default();
        let ctx = Arc::new(Context::new(
            client.clone(),
            config,
            Metrics::new(&mut registry),
        ));
        let shutdown = CancellationToken::new();
        let task = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                if let Err(e) = fleet_controller::helmops::run(ctx, shutdown).await {
                    panic!("helmops controller failed: {e}");
                }
            })
        };
        Upstream {
            _sim: sim,
            client,
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }

    async fn create_helmop(&self, name: &str, spec: Value) {
        let op: HelmOp = serde_json::from_value(json!({
            "apiVersion": "fleet.cattle.io/v1alpha1",
            "kind": "HelmOp",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }))
        .expect("valid HelmOp");
        Api::<HelmOp>::namespaced(self.client.clone(), NS)
            .create(&PostParams::default(), &op)
            .await
            .expect("create HelmOp");
    }

    async fn helmop(&self, name: &str) -> Value {
        let op = Api::<HelmOp>::namespaced(self.client.clone(), NS)
            .get(name)
            .await
            .expect("HelmOp");
        serde_json::to_value(op).unwrap()
    }

    async fn bundle(&self, name: &str) -> Option<Bundle> {
        Api::<Bundle>::namespaced(self.client.clone(), NS)
            .get_opt(name)
            .await
            .expect("get Bundle")
    }

    async fn create_secret(&self, name: &str, user: &str, password: &str) {
        let s: Secret = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": NS},
            "type": "kubernetes.io/basic-auth",
            "stringData": {"username": user, "password": password},
        }))
        .unwrap();
        Api::<Secret>::namespaced(self.client.clone(), NS)
            .create(&PostParams::default(), &s)
            .await
            .expect("create secret");
    }
}

fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

async fn eventually<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let last = match check().await {
            Ok(v) => return v,
            Err(observed) => observed,
        };
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {secs}s waiting for {what}; last observed: {last}");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

fn bundle_version(b: &Bundle) -> String {
    b.spec
        .helm
        .as_ref()
        .map(|h| h.version.clone())
        .unwrap_or_default()
}

async fn wait_bundle_version(up: &Upstream, name: &str, version: &str) -> Bundle {
    eventually(&format!("Bundle {name} at {version}"), 60, || async {
        match up.bundle(name).await {
            Some(b) if bundle_version(&b) == version => Ok(b),
            Some(b) => Err(format!("version {}", bundle_version(&b))),
            None => Err("no Bundle".into()),
        }
    })
    .await
}

async fn wait_status_version(up: &Upstream, name: &str, version: &str) -> Value {
    eventually(
        &format!("HelmOp {name} status.version {version}"),
        60,
        || async {
            let op = up.helmop(name).await;
            let ready = condition(&op, "Ready").cloned().unwrap_or(Value::Null);
            if op["status"]["version"] == version && ready["status"] == "True" {
                Ok(op)
            } else {
                Err(serde_json::to_string(&op["status"]).unwrap())
            }
        },
    )
    .await
}

/// Waits for Ready=False and returns its message.
async fn wait_not_ready(up: &Upstream, name: &str, needle: &str) -> String {
    eventually(
        &format!("HelmOp {name} Ready=False mentioning {needle:?}"),
        60,
        || async {
            let op = up.helmop(name).await;
            let ready = condition(&op, "Ready").cloned().unwrap_or(Value::Null);
            let msg = ready["message"].as_str().unwrap_or_default().to_string();
            if ready["status"] == "False" && msg.contains(needle) {
                Ok(msg)
            } else {
                Err(serde_json::to_string(&op["status"]).unwrap())
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_constraint_is_resolved_pinned_in_the_bundle_and_polled() {
    let repo = ChartRepo::start();
    repo.publish("web", "1.0.0");
    repo.publish("web", "1.2.0");
    repo.publish("web", "2.0.0");
    let up = Upstream::start(true).await;
    up.create_helmop(
        "web",
        json!({
            "helm": {"repo": repo.url(), "chart": "web", "version": "~1.2",
                     "releaseName": "web", "values": {"greeting": "hi"}},
            "labels": {"team": "blue"},
            "pollingInterval": "1s",
            "targets": [{"clusterSelector": {"matchLabels": {"env": "dev"}},
                         "helm": {"values": {"greeting": "dev"}}}],
        }),
    )
    .await;

    let bundle = wait_bundle_version(&up, "web", "1.2.0").await;
    assert!(
        bundle.spec.resources.is_empty(),
        "no resources: the agent downloads"
    );
    let helm = bundle.spec.helm.clone().unwrap();
    assert_eq!(helm.repo, repo.url());
    assert_eq!(helm.chart, "web");
    assert_eq!(helm.release_name, "web");
    assert!(bundle.spec.helm_app_options.is_some());
    let labels = bundle.metadata.labels.clone().unwrap();
    assert_eq!(labels["fleet.cattle.io/fleet-helm-name"], "web");
    assert_eq!(labels["team"], "blue");
    let target = &bundle.spec.targets[0];
    assert_eq!(target.name, "target000");
    assert_eq!(target.helm.as_ref().unwrap().version, "1.2.0");
    let owner = &bundle.metadata.owner_references.clone().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("HelmOp", "web")
    );
    let op = wait_status_version(&up, "web", "1.2.0").await;
    assert_eq!(condition(&op, "Accepted").unwrap()["status"], "True");
    assert_eq!(condition(&op, "Polled").unwrap()["status"], "True");
    assert_eq!(op["status"]["display"]["readyBundleDeployments"], "0/0");

    // A new matching version is picked up by polling.
    repo.publish("web", "1.2.7");
    wait_bundle_version(&up, "web", "1.2.7").await;
    wait_status_version(&up, "web", "1.2.7").await;

    // A version outside the constraint is not: several polls later the Bundle is unchanged.
    repo.publish("web", "1.3.0");
    let polls_before = repo.requests().len();
    eventually("three more polls of the index", 60, || async {
        let n = repo
            .requests()
            .iter()
            .skip(polls_before)
            .filter(|(p, _)| p == "/charts/index.yaml")
            .count();
        if n >= 3 {
            Ok(())
        } else {
            Err(format!("{n} polls"))
        }
    })
    .await;
    assert_eq!(bundle_version(&up.bundle("web").await.unwrap()), "1.2.7");
    assert_eq!(up.helmop("web").await["status"]["version"], "1.2.7");

    // Changing the constraint moves to the best match at once.
    let patch = json!({"spec": {"helm": {"version": ">=1.0 <2"}}});
    Api::<HelmOp>::namespaced(up.client.clone(), NS)
        .patch("web", &Default::default(), &kube::api::Patch::Merge(&patch))
        .await
        .unwrap();
    wait_bundle_version(&up, "web", "1.3.0").await;

    // Deleting the HelmOp deletes its Bundle (owner reference).
    Api::<HelmOp>::namespaced(up.client.clone(), NS)
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    eventually("Bundle web deleted with its HelmOp", 60, || async {
        match up.bundle("web").await {
            None => Ok(()),
            Some(b) => Err(format!("still there: {:?}", b.metadata.deletion_timestamp)),
        }
    })
    .await;
    up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helmapps_of_fleet_v012_are_served_too() {
    let repo = ChartRepo::start();
    repo.publish("app", "0.1.0");
    repo.publish("app", "0.2.0");
    let up = Upstream::start(true).await;
    let app: HelmApp = serde_json::from_value(json!({
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "HelmApp",
        "metadata": {"name": "legacy", "namespace": NS},
        "spec": {"helm": {"repo": repo.url(), "chart": "app"}},
    }))
    .unwrap();
    Api::<HelmApp>::namespaced(up.client.clone(), NS)
        .create(&PostParams::default(), &app)
        .await
        .expect("create HelmApp");
    let bundle = wait_bundle_version(&up, "legacy", "0.2.0").await;
    assert_eq!(bundle.metadata.owner_references.unwrap()[0].kind, "HelmApp");
    assert_eq!(bundle.spec.targets[0].cluster_group, "default");
    eventually("HelmApp status.version", 60, || async {
        let app = Api::<HelmApp>::namespaced(up.client.clone(), NS)
            .get("legacy")
            .await
            .unwrap();
        match app.status.as_ref().map(|s| s.version.clone()) {
            Some(v) if v == "0.2.0" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_helmops_say_so_and_deploy_nothing() {
    let repo = ChartRepo::start();
    repo.publish("web", "1.0.0");
    let up = Upstream::start(false).await;
    up.create_helmop("web", json!({"helm": {"repo": repo.url(), "chart": "web"}}))
        .await;
    let msg = wait_not_ready(&up, "web", "HelmOps is disabled").await;
    assert!(msg.contains("--enable-helmops"), "{msg}");
    assert!(msg.contains("EXPERIMENTAL_HELM_OPS=true"), "{msg}");
    let op = up.helmop("web").await;
    assert_eq!(condition(&op, "Accepted").unwrap()["status"], "False");
    assert!(up.bundle("web").await.is_none());
    assert!(
        repo.requests().is_empty(),
        "a disabled controller asks no repository"
    );
    up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_reported_with_the_repository_and_chart() {
    let repo = ChartRepo::start();
    repo.publish("web", "1.0.0");
    let private = ChartRepo::start();
    private.publish("secret-web", "1.0.0");
    private.require_basic_auth("fleet", "right");
    let broken = ChartRepo::start();
    broken.publish("web", "1.0.0");
    broken.set_broken_index(Some("entries: [this is: not an index"));
    let dead = dead_url();
    let up = Upstream::start(true).await;
    up.create_secret("wrong-creds", "fleet", "wrong").await;

    let cases: Vec<(&str, Value, String, &str)> = vec![
        (
            "unknown-chart",
            json!({"helm": {"repo": repo.url(), "chart": "nope", "version": "*"}}),
            repo.url(),
            "not found",
        ),
        (
            "no-match",
            json!({"helm": {"repo": repo.url(), "chart": "web", "version": ">=5.0.0"}}),
            repo.url(),
            ">=5.0.0",
        ),
        (
            "repo-down",
            json!({"helm": {"repo": dead.clone(), "chart": "web", "version": "~1"}}),
            dead.clone(),
            "fetching",
        ),
        (
            "wrong-creds",
            json!({"helm": {"repo": private.url(), "chart": "secret-web", "version": "1.0.0"},
                   "helmSecretName": "wrong-creds"}),
            private.url(),
            "401",
        ),
        (
            "missing-secret",
            json!({"helm": {"repo": private.url(), "chart": "secret-web"},
                   "helmSecretName": "absent"}),
            private.url(),
            "absent",
        ),
        (
            "bad-index",
            json!({"helm": {"repo": broken.url(), "chart": "web"}}),
            broken.url(),
            "index.yaml",
        ),
    ];
    for (name, spec, _, _) in &cases {
        up.create_helmop(name, spec.clone()).await;
    }
    for (name, spec, repo_url, needle) in &cases {
        let msg = wait_not_ready(&up, name, needle).await;
        let chart = spec["helm"]["chart"].as_str().unwrap();
        assert!(msg.contains(repo_url.as_str()), "{name}: {msg}");
        assert!(msg.contains(&format!("\"{chart}\"")), "{name}: {msg}");
        let op = up.helmop(name).await;
        assert_eq!(
            condition(&op, "Accepted").unwrap()["status"],
            "False",
            "{name}"
        );
        assert_eq!(op["status"]["display"]["error"], true, "{name}");
        assert!(up.bundle(name).await.is_none(), "{name}: no Bundle");
    }
    up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_down_keeps_the_bundle_and_recovers() {
    let repo = ChartRepo::start();
    repo.publish("web", "1.0.0");
    let up = Upstream::start(true).await;
    up.create_helmop(
        "web",
        json!({"helm": {"repo": repo.url(), "chart": "web", "version": "~1.0"},
               "pollingInterval": "1s"}),
    )
    .await;
    wait_bundle_version(&up, "web", "1.0.0").await;
    wait_status_version(&up, "web", "1.0.0").await;

    repo.set_down(true);
    let msg = wait_not_ready(&up, "web", "503").await;
    assert!(
        msg.contains(&repo.url()) && msg.contains("\"web\""),
        "{msg}"
    );
    let op = up.helmop("web").await;
    assert_eq!(condition(&op, "Polled").unwrap()["status"], "False");
    assert_eq!(
        op["status"]["version"], "1.0.0",
        "the deployed version stays"
    );
    assert_eq!(bundle_version(&up.bundle("web").await.unwrap()), "1.0.0");

    repo.set_down(false);
    repo.publish("web", "1.0.1");
    wait_bundle_version(&up, "web", "1.0.1").await;
    wait_status_version(&up, "web", "1.0.1").await;
    up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_copied_next_to_each_bundle_deployment() {
    let repo = ChartRepo::start();
    repo.publish("web", "1.0.0");
    repo.require_basic_auth("fleet", "s3cret");
    let up = Upstream::start(true).await;
    up.create_secret("repo-creds", "fleet", "s3cret").await;
    up.create_helmop(
        "web",
        json!({"helm": {"repo": repo.url(), "chart": "web", "version": "1.0.0"},
               "helmSecretName": "repo-creds"}),
    )
    .await;
    wait_bundle_version(&up, "web", "1.0.0").await;
    assert!(
        repo.requests()
            .iter()
            .all(|(_, auth)| auth.as_deref() == Some("Basic ZmxlZXQ6czNjcmV0")),
        "{:?}",
        repo.requests()
    );

    // What the bundle controller would write for a targeted cluster.
    let bd: BundleDeployment = serde_json::from_value(json!({
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "BundleDeployment",
        "metadata": {"name": "web", "namespace": "cluster-ns-1", "labels": {
            "fleet.cattle.io/fleet-helm-name": "web",
            "fleet.cattle.io/bundle-name": "web",
            "fleet.cattle.io/bundle-namespace": NS,
        }},
        "spec": {"deploymentID": "s-1:abc",
                 "helmChartOptions": {"helmAppSecretName": "repo-creds"}},
    }))
    .unwrap();
    let bd = Api::<BundleDeployment>::namespaced(up.client.clone(), "cluster-ns-1")
        .create(&PostParams::default(), &bd)
        .await
        .expect("create BundleDeployment");
    let copy = eventually("secret copied to cluster-ns-1", 60, || async {
        match Api::<Secret>::namespaced(up.client.clone(), "cluster-ns-1")
            .get_opt("repo-creds")
            .await
            .unwrap()
        {
            Some(s) => Ok(s),
            None => Err("not yet".into()),
        }
    })
    .await;
    let data = copy.data.clone().unwrap();
    assert_eq!(data["password"].0, b"s3cret");
    let owner = &copy.metadata.owner_references.clone().unwrap()[0];
    assert_eq!(owner.kind, "BundleDeployment");
    assert_eq!(Some(owner.uid.clone()), bd.metadata.uid);
    up.stop().await;
}

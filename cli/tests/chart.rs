//! The install chart `charts/fleet-rs`: one source of truth for the CRDs (`fleet crds` = the
//! chart's `crds/` = what `fleet sim up` installs; `api/tests/crds.rs` checks the copy in
//! `api/crds/`), the chart
//! renders with our own chart engine and a Kubernetes API (the simulator) accepts every object,
//! and the controller settings the chart passes are ones `fleet controller` knows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use kube::api::{Api, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn chart_dir() -> PathBuf {
    repo_root().join("charts/fleet-rs")
}

fn chart_crds_path() -> PathBuf {
    chart_dir().join("crds/fleet-crds.yaml")
}

fn fleet(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_fleet"))
        .args(args)
        .output()
        .expect("running fleet");
    assert!(
        out.status.success(),
        "fleet {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn yaml_docs(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("valid YAML"))
        .filter(|v: &Value| v.is_object())
        .collect()
}

#[test]
fn the_charts_crds_are_the_output_of_fleet_crds() {
    let generated = fleet(&["crds"]);
    if std::env::var_os("FLEET_UPDATE_CRDS").is_some() {
        std::fs::write(chart_crds_path(), &generated).unwrap();
    }
    let in_chart = std::fs::read_to_string(chart_crds_path()).unwrap_or_default();
    assert!(
        in_chart == generated,
        "charts/fleet-rs/crds/fleet-crds.yaml is not the output of `fleet crds`.\n\
         Regenerate it with `cargo run -- crds > charts/fleet-rs/crds/fleet-crds.yaml` \
         (or `FLEET_UPDATE_CRDS=1 cargo test -p fleet-cli --test chart`) and commit it."
    );
}

/// `fleet sim up` (and every SimSystem) installs `fleet_api::crds::all()`: the same objects.
#[test]
fn fleet_sim_up_installs_the_charts_crds() {
    let installed: Vec<Value> = fleet_api::crds::all()
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    let chart = yaml_docs(&std::fs::read_to_string(chart_crds_path()).unwrap());
    assert_eq!(installed.len(), chart.len(), "number of CRDs");
    for (a, b) in installed.iter().zip(&chart) {
        assert_eq!(a, b, "CRD {} differs", a["metadata"]["name"]);
    }
}

fn render(values: Value) -> fleet_helm::Rendered {
    let chart = fleet_helm::Chart::load(&chart_dir()).expect("the chart loads");
    let opts = fleet_helm::RenderOptions {
        release_name: "fleet-rs".into(),
        namespace: "cattle-fleet-system".into(),
        include_crds: true,
        kube_version: Some("1.33.0".into()),
        ..Default::default()
    };
    fleet_helm::render(&chart, &values, &opts).expect("the chart renders")
}

/// Values that switch every optional part on.
fn all_features() -> Value {
    json!({
        "tolerations": [
            {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "dedicated", "operator": "Equal", "value": "fleet", "effect": "NoExecute"}
        ],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "priorityClassName": "system-cluster-critical",
        "apiServerURL": "https://rancher.example.test:6443",
        "apiServerCA": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "gitops": {"jobMode": "job", "jobImage": "registry.example.test/fleet:v1"},
        "helmops": {"enabled": true},
        "privateCA": {
            "cacerts": "-----BEGIN CERTIFICATE-----\nMIIA\n-----END CERTIFICATE-----\n",
            "additional": "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n"
        },
        "controller": {"replicas": 2, "resources": {"limits": {"memory": "512Mi"}}},
        "debug": true
    })
}

fn objects(rendered: &fleet_helm::Rendered) -> Vec<Value> {
    rendered
        .crds
        .iter()
        .chain(&rendered.manifests)
        .chain(&rendered.hooks)
        .flat_map(|m| yaml_docs(&m.content))
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("the chart renders no {kind} {name}"))
}

/// Creates every rendered object in a simulated cluster, as `helm install --create-namespace`
/// would (CRDs first, then manifests in Helm's order, then hooks).
async fn install(objects: &[Value]) -> fleet_simulator::SimCluster {
    let sim = fleet_simulator::Simulator::new(fleet_simulator::SimConfig::default());
    let cluster = sim.add_cluster("upstream").unwrap();
    let client = cluster.client();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "cattle-fleet-system"}})).unwrap(),
        )
        .await
        .unwrap();
    for obj in objects {
        let api_version = obj["apiVersion"].as_str().unwrap();
        let kind = obj["kind"].as_str().unwrap();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, caps) = kube::discovery::pinned_kind(&client, &gvk)
            .await
            .unwrap_or_else(|e| panic!("the simulator does not serve {api_version} {kind}: {e}"));
        let api: Api<DynamicObject> = match (caps.scope, obj["metadata"]["namespace"].as_str()) {
            (kube::discovery::Scope::Namespaced, Some(ns)) => {
                Api::namespaced_with(client.clone(), ns, &resource)
            }
            (kube::discovery::Scope::Namespaced, None) => {
                Api::namespaced_with(client.clone(), "cattle-fleet-system", &resource)
            }
            (kube::discovery::Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
        };
        let typed: DynamicObject = serde_json::from_value(obj.clone()).unwrap();
        api.create(&PostParams::default(), &typed)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "the API server refused {kind} {}: {e}",
                    obj["metadata"]["name"]
                )
            });
    }
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_renders_and_the_api_server_accepts_every_object() {
    for values in [json!({}), all_features()] {
        let rendered = render(values.clone());
        let objs = objects(&rendered);
        let crds = objs
            .iter()
            .filter(|o| o["kind"] == "CustomResourceDefinition")
            .count();
        assert_eq!(crds, fleet_api::crds::all().len(), "CRDs in the chart");
        let cluster = install(&objs).await;
        // Once installed, Fleet's resources are served: a GitRepo can be created.
        let gitrepos: Api<fleet_api::GitRepo> =
            Api::namespaced(cluster.client(), "cattle-fleet-system");
        let repo: fleet_api::GitRepo = fleet_api::from_value(json!({
            "apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo",
            "metadata": {"name": "smoke", "namespace": "cattle-fleet-system"},
            "spec": {"repo": "https://example.test/repo"}
        }))
        .unwrap();
        gitrepos
            .create(&PostParams::default(), &repo)
            .await
            .expect("GitRepos are served after installing the chart");
        let controller = find(&objs, "Deployment", "fleet-controller");
        assert_eq!(
            controller["spec"]["template"]["spec"]["serviceAccountName"],
            "fleet-controller"
        );
        find(&objs, "ServiceAccount", "fleet-controller");
        find(&objs, "ClusterRole", "fleet-controller");
        find(&objs, "ClusterRoleBinding", "fleet-controller");
    }
}

/// The pods of the chart (controller and cleanup jobs) carry `.Values.tolerations`.
#[test]
fn tolerations_reach_the_controller_and_the_cleanup_jobs() {
    let values = all_features();
    let objs = objects(&render(values.clone()));
    let want = &values["tolerations"];
    let controller = find(&objs, "Deployment", "fleet-controller");
    assert_eq!(&controller["spec"]["template"]["spec"]["tolerations"], want);
    let jobs: Vec<&Value> = objs.iter().filter(|o| o["kind"] == "Job").collect();
    assert!(!jobs.is_empty(), "the chart has cleanup jobs");
    for job in jobs {
        assert_eq!(
            &job["spec"]["template"]["spec"]["tolerations"], want,
            "Job {}",
            job["metadata"]["name"]
        );
    }
    // Without tolerations, none are written.
    let plain = objects(&render(json!({})));
    let controller = find(&plain, "Deployment", "fleet-controller");
    assert!(controller["spec"]["template"]["spec"]["tolerations"].is_null());
}

/// Every flag and environment variable the chart gives `fleet controller` is one it has.
#[test]
fn the_controller_settings_in_the_chart_exist_in_fleet_controller_help() {
    // clap wraps long help lines (`[env:` may end one line and the name start the next), so
    // words are compared with single spaces.
    let help = fleet(&["controller", "--help"])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        + " ";
    // Not settings of `fleet controller`, but of the process.
    let process_env = ["RUST_LOG"];
    for values in [json!({}), all_features()] {
        let objs = objects(&render(values));
        let controller = find(&objs, "Deployment", "fleet-controller");
        let container = &controller["spec"]["template"]["spec"]["containers"][0];
        let args: Vec<&str> = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(
            args.first(),
            Some(&"controller"),
            "the container runs `fleet controller`"
        );
        for arg in &args[1..] {
            let flag = arg.split('=').next().unwrap();
            if flag.starts_with("--") {
                assert!(
                    help.contains(&format!("{flag} ")),
                    "the chart passes {flag}, which `fleet controller --help` does not list:\n{help}"
                );
            }
        }
        for env in container["env"].as_array().unwrap() {
            let name = env["name"].as_str().unwrap();
            if process_env.contains(&name) {
                continue;
            }
            assert!(
                help.contains(&format!("[env: {name}=")),
                "the chart sets {name}, which `fleet controller --help` does not list:\n{help}"
            );
        }
    }
}

//! Authorization cost as fleets grow: one agent identity's request among thousands of agents'
//! Roles and RoleBindings (the index by subject keeps it flat), and the admin path (no
//! authorization at all) for comparison.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure should panic

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fleet_simulator::rbac::{Attributes, ResourceAttributes};
use fleet_simulator::{SimCluster, SimConfig, Simulator, UserInfo};
use http::Request;
use http_body_util::Full;
use serde_json::json;
use tower::ServiceExt;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `agents` cluster namespaces, each with a ConfigMap, a Role, a RoleBinding and an agent
/// ServiceAccount token; returns the token of the first agent.
fn fleet(cluster: &SimCluster, agents: usize) -> String {
    let st = cluster.state();
    let mut first = None;
    for i in 0..agents {
        let ns = format!("cluster-{i}");
        st.create_object(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            "bench",
        )
        .unwrap();
        st.create_object(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": ns}}), "bench").unwrap();
        st.create_object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "agent", "namespace": ns},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]}), "bench").unwrap();
        st.create_object(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "agent", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "agent"},
            "subjects": [{"kind": "ServiceAccount", "name": "agent", "namespace": ns}]}), "bench").unwrap();
        st.create_object(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "agent", "namespace": ns}}), "bench").unwrap();
        let secret = st
            .create_object(json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
                "metadata": {"name": "agent-token", "namespace": ns, "annotations": {"kubernetes.io/service-account.name": "agent"}}}), "bench")
            .unwrap();
        if first.is_none() {
            let info = st.resolve("v1", "Secret").unwrap();
            let t = fleet_simulator::cluster::Target {
                info,
                version: "v1".into(),
                namespace: Some(ns.clone()),
                name: secret["metadata"]["name"].as_str().map(str::to_string),
                subresource: None,
            };
            let filled = st.get(&t).unwrap();
            use base64::Engine as _;
            let token = base64::engine::general_purpose::STANDARD
                .decode(filled["data"]["token"].as_str().unwrap())
                .unwrap();
            first = Some(String::from_utf8(token).unwrap());
        }
    }
    first.unwrap()
}

fn authorize(c: &mut Criterion) {
    let rt = runtime();
    let _guard = rt.enter();
    let mut group = c.benchmark_group("rbac_authorize");
    for agents in [10usize, 1000, 3000] {
        let sim = Simulator::new(SimConfig {
            seed: 1,
            watch_history: 1024,
            profile: None,
        });
        let cluster = sim.add_cluster("upstream").unwrap();
        let token = fleet(&cluster, agents);
        let user = UserInfo::service_account("cluster-0", "agent", "");
        let attrs = Attributes::resource(
            "get",
            ResourceAttributes {
                resource: "configmaps".into(),
                namespace: "cluster-0".into(),
                name: "cm".into(),
                ..Default::default()
            },
        );
        let rbac = cluster.state().rbac.clone();
        group.bench_with_input(BenchmarkId::new("decision", agents), &agents, |b, _| {
            b.iter(|| assert!(rbac.authorize(&user, &attrs).allowed))
        });
        let get = || {
            Request::get("/api/v1/namespaces/cluster-0/configmaps/cm")
                .body(Full::new(Bytes::new()))
                .unwrap()
        };
        let agent_svc = cluster.service_with_token(&token);
        group.bench_with_input(BenchmarkId::new("agent_get", agents), &agents, |b, _| {
            b.iter(|| {
                let resp = rt.block_on(agent_svc.clone().oneshot(get())).unwrap();
                assert_eq!(resp.status(), 200);
            })
        });
        let admin_svc = cluster.service();
        group.bench_with_input(BenchmarkId::new("admin_get", agents), &agents, |b, _| {
            b.iter(|| {
                let resp = rt.block_on(admin_svc.clone().oneshot(get())).unwrap();
                assert_eq!(resp.status(), 200);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, authorize);
criterion_main!(benches);

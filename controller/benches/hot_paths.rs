//! The controller's hot paths at fleet scale: targeting one bundle against 10,000 clusters
//! (and 100 bundles against them), planning a bundle's rollout over 10,000 clusters,
//! aggregating the status of 10,000 BundleDeployments into a GitRepo, and hashing manifests
//! and deployment options.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use fleet_api::{Bundle, BundleDeployment, Cluster, StatusBase};

const BUNDLES: usize = 100;

/// Clusters in every benchmark: 10,000 when measured (`cargo bench` passes `--bench`), a tenth
/// of that in criterion's test mode (`cargo test`, which `scripts/test` runs to check that each
/// benchmark still holds): the unoptimised build takes minutes over 10,000.
fn cluster_count() -> usize {
    if std::env::args().any(|arg| arg == "--bench") {
        10_000
    } else {
        1_000
    }
}

fn clusters() -> Vec<Cluster> {
    (0..cluster_count())
        .map(|i| {
            let env = ["dev", "test", "prod"][i % 3];
            serde_json::from_value(serde_json::json!({
                "apiVersion": "fleet.cattle.io/v1alpha1",
                "kind": "Cluster",
                "metadata": {
                    "name": format!("sim-{i}"),
                    "namespace": "fleet-default",
                    "labels": {
                        "env": env,
                        "region": format!("region-{}", i % 7),
                        "bench": "true",
                    },
                },
                "spec": {"templateValues": {"tier": format!("t{}", i % 4)}},
                "status": {"namespace": format!("cluster-fleet-default-sim-{i}-0123456789ab")},
            }))
            .unwrap()
        })
        .collect()
}

fn bundle(i: usize) -> Bundle {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "Bundle",
        "metadata": {"name": format!("bench-bundle-{i}"), "namespace": "fleet-default"},
        "spec": {
            "defaultNamespace": format!("bench-{i}"),
            "helm": {"values": {"replicas": 1, "cluster": "${ .ClusterName }"}},
            "targets": [
                {"name": "prod", "clusterSelector": {"matchLabels": {"env": "prod"}},
                 "helm": {"values": {"replicas": 3}}},
                {"name": "rest", "clusterSelector": {"matchExpressions": [
                    {"key": "bench", "operator": "In", "values": ["true"]}]}},
            ],
            "resources": [{"name": "cm.yaml", "content": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"}],
        }
    }))
    .unwrap()
}

fn bundle_deployments(n: usize) -> Vec<BundleDeployment> {
    (0..n)
        .map(|i| {
            let ready = i % 10 != 0;
            serde_json::from_value(serde_json::json!({
                "apiVersion": "fleet.cattle.io/v1alpha1",
                "kind": "BundleDeployment",
                "metadata": {
                    "name": format!("bench-bundle-{}", i % BUNDLES),
                    "namespace": format!("cluster-fleet-default-sim-{i}-0123456789ab"),
                    "uid": format!("uid-{i}"),
                    "labels": {
                        "fleet.cattle.io/cluster-namespace": "fleet-default",
                        "fleet.cattle.io/cluster": format!("sim-{i}"),
                        "fleet.cattle.io/bundle-name": format!("bench-bundle-{}", i % BUNDLES),
                        "fleet.cattle.io/bundle-namespace": "fleet-default",
                    },
                },
                "spec": {"deploymentID": "s-abc:123", "stagedDeploymentID": "s-abc:123"},
                "status": {
                    "appliedDeploymentID": "s-abc:123",
                    "ready": ready,
                    "nonModified": true,
                    "resources": [
                        {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "namespace": "bench"},
                        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "bench"},
                    ],
                    "nonReadyStatus": if ready { serde_json::json!([]) } else { serde_json::json!([
                        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "bench",
                         "summary": {"state": "in-progress", "transitioning": true, "message": ["Available: 0/1"]}}]) },
                    "resourceCounts": {"ready": if ready { 2 } else { 1 }, "notReady": if ready { 0 } else { 1 },
                        "desiredReady": 2, "waitApplied": 0, "modified": 0, "orphaned": 0, "missing": 0, "unknown": 0},
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                },
            }))
            .unwrap()
        })
        .collect()
}

fn targeting(c: &mut Criterion) {
    let clusters = clusters();
    let namespaces: BTreeSet<String> = ["fleet-default".to_string()].into_iter().collect();
    let one = bundle(0);
    let mut group = c.benchmark_group("targeting");
    group.sample_size(10);
    let n = clusters.len();
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("1_bundle_x_10000_clusters", |b| {
        b.iter(|| {
            let t = fleet_controller::target::resolve_targets(
                black_box(&one),
                "s-abc",
                &namespaces,
                clusters.iter(),
                &[],
            )
            .unwrap();
            assert_eq!(t.targets.len(), n);
            t
        })
    });
    let bundles: Vec<Bundle> = (0..BUNDLES).map(bundle).collect();
    group.throughput(Throughput::Elements((n * BUNDLES) as u64));
    group.bench_function("100_bundles_x_10000_clusters", |b| {
        b.iter(|| {
            let mut n = 0;
            for bundle in &bundles {
                n += fleet_controller::target::resolve_targets(
                    bundle,
                    "s-abc",
                    &namespaces,
                    clusters.iter(),
                    &[],
                )
                .unwrap()
                .targets
                .len();
            }
            assert_eq!(n, clusters.len() * BUNDLES);
        })
    });
    group.finish();
}

/// One reconcile's plan of a bundle over 10,000 clusters half way through its first rollout:
/// 5,000 deployments Ready, the other 5,000 to create (50 of them by this plan, Fleet's
/// `maxNew`). A first rollout to 10,000 clusters is 200 such plans per bundle.
fn planning(c: &mut Criterion) {
    let mut clusters = clusters();
    for cluster in &mut clusters {
        let status = cluster.status.get_or_insert_with(Default::default);
        status.agent.last_seen =
            Some(serde_json::from_value(serde_json::json!("2026-01-01T00:00:00Z")).unwrap());
    }
    let namespace: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "fleet-default"}})).unwrap();
    let one = bundle(0);
    let observed = fleet_controller::bundle::BundleObservation {
        clusters: clusters.iter().collect(),
        groups: Vec::new(),
        mappings: Vec::new(),
        namespaces: vec![&namespace],
        deployments: Vec::new(),
    };
    let resolved = fleet_controller::bundle::resolve_bundle(&one, &observed);
    let targets = resolved.resolved.as_ref().unwrap();
    assert_eq!(targets.targets.len(), clusters.len());
    let deployed: Vec<BundleDeployment> = targets
        .targets
        .iter()
        .step_by(2)
        .map(|t| {
            let mut bd: BundleDeployment = serde_json::from_value(serde_json::json!({
                "metadata": {
                    "name": "bench-bundle-0",
                    "namespace": t.cluster.deployment_namespace,
                    "finalizers": ["fleet.cattle.io/bundle-deployment-finalizer"],
                },
                "spec": {},
                "status": {"appliedDeploymentID": &*t.deployment_id, "ready": true, "nonModified": true,
                    "conditions": [{"type": "Ready", "status": "True"}]},
            }))
            .unwrap();
            bd.metadata.labels = Some(fleet_controller::target::bundle_deployment_labels(
                &one,
                &t.cluster.namespace,
                &t.cluster.name,
            ));
            bd.spec.deployment_id = t.deployment_id.to_string();
            bd.spec.staged_deployment_id = t.deployment_id.to_string();
            bd.spec.options = (*t.options).clone();
            bd.spec.staged_options = (*t.options).clone();
            bd.spec.correct_drift = t.options.correct_drift.clone();
            bd
        })
        .collect();
    let refs: Vec<&BundleDeployment> = deployed.iter().collect();
    let mut group = c.benchmark_group("planning");
    group.sample_size(10);
    group.throughput(Throughput::Elements(clusters.len() as u64));
    group.bench_function("bundle_over_10000_clusters_half_deployed", |b| {
        b.iter(|| {
            let plan = fleet_controller::bundle::plan_resolved_bundle(
                black_box(&one),
                &resolved,
                &refs,
                None,
                "2026-01-01T00:00:00Z",
            );
            assert_eq!(plan.apply.len(), 50);
            plan
        })
    });
    // As the controller plans a bundle again: with the facts of its last plan over the same
    // deployments (in a rollout, all but the few that changed since).
    let first = fleet_controller::bundle::plan_resolved_bundle(
        &one,
        &resolved,
        &refs,
        None,
        "2026-01-01T00:00:00Z",
    );
    group.bench_function(
        "bundle_over_10000_clusters_half_deployed_planned_again",
        |b| {
            b.iter(|| {
                let plan = fleet_controller::bundle::plan_resolved_bundle(
                    black_box(&one),
                    &resolved,
                    &refs,
                    Some(&first.carry_over),
                    "2026-01-01T00:00:00Z",
                );
                assert_eq!(plan.apply.len(), 50);
                assert_eq!(plan.status, first.status);
                plan
            })
        },
    );
    group.finish();
}

fn status_aggregation(c: &mut Criterion) {
    let bds = bundle_deployments(cluster_count());
    let n = bds.len();
    let mut group = c.benchmark_group("status_aggregation");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("gitrepo_over_10000_bundledeployments", |b| {
        b.iter_batched(
            StatusBase::default,
            |mut status| {
                fleet_controller::resourcestatus::set_status_from_deployments(
                    black_box(&bds),
                    &mut status,
                );
                status
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("bundle_summary_over_10000_bundledeployments", |b| {
        b.iter(|| fleet_controller::summary::summarize(black_box(&bds).iter()))
    });
    group.finish();
}

fn hashing(c: &mut Criterion) {
    let resources: Vec<fleet_api::BundleResource> = (0..500)
        .map(|i| fleet_api::BundleResource {
            name: format!("cm-{i}.yaml"),
            content: format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\ndata:\n  key: \"{}\"\n",
                "v".repeat(200)
            ),
            ..Default::default()
        })
        .collect();
    let options = bundle(0).spec.deployment_options();
    let mut group = c.benchmark_group("hashing");
    group.throughput(Throughput::Elements(resources.len() as u64));
    group.bench_function("manifest_id_500_resources", |b| {
        b.iter(|| fleet_bundle::manifest::manifest_id(black_box(&resources)))
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("deployment_id", |b| {
        b.iter(|| fleet_bundle::options::deployment_id("s-abc", black_box(&options)))
    });
    group.finish();
}

criterion_group!(benches, targeting, planning, status_aggregation, hashing);
criterion_main!(benches);

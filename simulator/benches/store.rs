//! Raw store write rate (the ceiling the controller is measured against) and watch fan-out.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure should panic

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fleet_simulator::cluster::{PatchType, Target, WriteOptions};
use fleet_simulator::{SimConfig, Simulator};
use futures::StreamExt;
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

fn bare() -> Simulator {
    Simulator::new(SimConfig {
        seed: 1,
        watch_history: 1 << 20,
        profile: None,
    })
}

fn store_writes(c: &mut Criterion) {
    let rt = runtime();
    let _guard = rt.enter();
    let sim = bare();
    let cluster = sim.add_cluster("bench").unwrap();
    let state = cluster.state().clone();
    let mut group = c.benchmark_group("store_writes");
    group.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    group.bench_function("create_configmap", |b| {
        b.iter(|| {
            n += 1;
            state
                .create_object(
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{n}"), "namespace": "default", "labels": {"app": "bench"}}, "data": {"k": "v"}}),
                    "bench",
                )
                .unwrap()
        })
    });
    let info = state.resolve("v1", "ConfigMap").unwrap();
    let target = Target {
        info,
        version: "v1".into(),
        namespace: Some("default".into()),
        name: Some("cm-1".into()),
        subresource: None,
    };
    let opts = WriteOptions {
        field_manager: Some("bench".into()),
        ..Default::default()
    };
    let mut v = 0u64;
    group.bench_function("merge_patch_configmap", |b| {
        b.iter(|| {
            v += 1;
            let patch = format!("{{\"data\":{{\"k\":\"{v}\"}}}}");
            state
                .patch(&target, PatchType::Merge, patch.as_bytes(), &opts)
                .unwrap()
        })
    });
    let mut a = 0u64;
    let apply_opts = WriteOptions {
        field_manager: Some("bench".into()),
        force: true,
        ..Default::default()
    };
    group.bench_function("server_side_apply_configmap", |b| {
        b.iter(|| {
            a += 1;
            let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm-1"}, "data": {"k": a.to_string()}}).to_string();
            state.patch(&target, PatchType::Apply, body.as_bytes(), &apply_opts).unwrap()
        })
    });
    group.finish();
}

async fn open_watch(
    cluster: &fleet_simulator::SimCluster,
    rv: u64,
) -> impl futures::Stream<Item = Result<Bytes, axum::Error>> + Send + Unpin + use<> {
    let req = Request::get(format!(
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"
    ))
    .body(Full::new(Bytes::new()))
    .unwrap();
    let resp = cluster.service().oneshot(req).await.unwrap();
    resp.into_body().into_data_stream()
}

fn watch_fanout(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("watch_fanout");
    group.measurement_time(Duration::from_secs(5));
    for watchers in [1usize, 10, 100] {
        group.throughput(Throughput::Elements(watchers as u64));
        group.bench_with_input(BenchmarkId::from_parameter(watchers), &watchers, |b, &watchers| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let sim = bare();
                    let cluster = sim.add_cluster("bench").unwrap();
                    let rv = cluster.stats().resource_version;
                    let mut tasks = Vec::new();
                    for _ in 0..watchers {
                        let mut body = open_watch(&cluster, rv).await;
                        tasks.push(tokio::spawn(async move {
                            let mut seen = 0u64;
                            while seen < iters {
                                match body.next().await {
                                    Some(Ok(chunk)) => seen += chunk.iter().filter(|b| **b == b'\n').count() as u64,
                                    _ => break,
                                }
                            }
                            seen
                        }));
                    }
                    let state = cluster.state().clone();
                    let start = Instant::now();
                    for i in 0..iters {
                        state
                            .create_object(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("w-{i}"), "namespace": "default"}}), "bench")
                            .unwrap();
                    }
                    for t in tasks {
                        assert_eq!(t.await.unwrap(), iters);
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, store_writes, watch_fanout);
criterion_main!(benches);

//! Building a bundle of 500 manifests from a folder (what `fleet apply` and the GitOps
//! controller do for every commit), and rendering it (what an agent does per cluster).
#![allow(clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use fleet_api::BundleDeploymentOptions;
use fleet_bundle::bundlereader::{ReadOptions, read_bundle};
use fleet_bundle::render::{RenderOptions, render};

const MANIFESTS: usize = 500;

fn bundle_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary folder");
    std::fs::write(dir.path().join("fleet.yaml"), "defaultNamespace: bench\n").expect("fleet.yaml");
    for i in 0..MANIFESTS {
        let sub = dir.path().join(format!("group{:02}", i % 20));
        std::fs::create_dir_all(&sub).expect("sub folder");
        let manifest = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\n  labels:\n    app: app-{i}\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: app-{i}\n  template:\n    metadata:\n      labels:\n        app: app-{i}\n    spec:\n      containers:\n      - name: web\n        image: registry.example.com/app:{i}\n        ports:\n        - containerPort: 8080\n        env:\n        - name: INDEX\n          value: \"{i}\"\n"
        );
        std::fs::write(sub.join(format!("app-{i}.yaml")), manifest).expect("manifest");
    }
    dir
}

fn build(c: &mut Criterion) {
    let dir = bundle_folder();
    c.bench_function("read_bundle_500_manifests", |b| {
        b.iter(|| {
            read_bundle("bench", black_box(dir.path()), &ReadOptions::default()).expect("bundle")
        })
    });
    let bundle = read_bundle("bench", dir.path(), &ReadOptions::default())
        .expect("bundle")
        .bundle;
    let options = BundleDeploymentOptions {
        default_namespace: "bench".into(),
        ..Default::default()
    };
    c.bench_function("render_bundle_500_manifests", |b| {
        b.iter(|| {
            render(
                black_box(&bundle.spec.resources),
                &options,
                &RenderOptions::template("bench"),
            )
            .expect("render")
        })
    });
}

criterion_group!(benches, build);
criterion_main!(benches);

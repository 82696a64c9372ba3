//! Memory of agents on the simulator: `cargo run -p fleet-agent --example agent_memory -- N B`
//! starts N simulated downstream clusters, then one agent per cluster deploying B bundles of
//! three ConfigMaps each, and prints the resident set size before and after the agents
//! (their share per agent, which includes the objects they made the simulator store), once
//! every BundleDeployment is Ready.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a measuring tool: a failure should panic

use std::time::{Duration, Instant};

use fleet_agent::{Agent, AgentConfig};
use fleet_api::{BundleDeployment, BundleDeploymentOptions, BundleDeploymentSpec, Content};
use fleet_simulator::{SimConfig, Simulator};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn threads() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Threads:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn put_content(up: &kube::Client, bundle: usize) -> String {
    let resources: Vec<fleet_api::BundleResource> = (0..3)
        .map(|i| fleet_api::BundleResource {
            name: format!("cm{i}.yaml"),
            content: format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b{bundle}-cm{i}\ndata:\n  key: \"{bundle}-{i}\"\n"
            ),
            encoding: String::new(),
        })
        .collect();
    let id = fleet_bundle::manifest::manifest_id(&resources);
    let json = fleet_bundle::manifest::manifest_json(&resources);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &json).unwrap();
    let content = Content {
        metadata: kube::api::ObjectMeta {
            name: Some(id.clone()),
            ..Default::default()
        },
        content: Some(ByteString(gz.finish().unwrap())),
        sha256sum: fleet_bundle::manifest::manifest_sha256(&resources),
    };
    let _ = Api::<Content>::all(up.clone())
        .create(&PostParams::default(), &content)
        .await;
    id
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let clusters: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let bundles: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5);
    let sim = Simulator::new(SimConfig::default());
    let upstream = sim.add_cluster("upstream").unwrap();
    upstream.install_crds(&fleet_api::crds::all()).unwrap();
    let up = upstream.client();
    let mut manifests = Vec::new();
    for b in 0..bundles {
        manifests.push(put_content(&up, b).await);
    }
    let mut downs = Vec::new();
    for c in 0..clusters {
        let ns = format!("cluster-{c}");
        let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        Api::<Namespace>::all(up.clone())
            .create(&PostParams::default(), &n)
            .await
            .unwrap();
        downs.push(sim.add_cluster(&format!("down-{c}")).unwrap().client());
    }
    let (rss_clusters, _) = rss_kib();
    println!(
        "{clusters} clusters without agents: RSS {} MiB",
        rss_clusters / 1024
    );

    let shutdown = CancellationToken::new();
    let mut registry = prometheus_client::registry::Registry::default();
    let mut tasks = Vec::new();
    for (c, down) in downs.iter().enumerate() {
        let ns = format!("cluster-{c}");
        let config = AgentConfig::new("fleet-default", &format!("sim-{c}"), &ns);
        let agent = Agent::new(up.clone(), down.clone(), config, &mut registry);
        let token = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            let _ = agent.run(token).await;
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_idle, _) = rss_kib();
    println!(
        "{clusters} idle agents: RSS {} MiB, {:.0} KiB per agent",
        rss_idle / 1024,
        (rss_idle.saturating_sub(rss_clusters)) as f64 / clusters as f64
    );

    let started = Instant::now();
    for c in 0..clusters {
        let ns = format!("cluster-{c}");
        for (b, manifest) in manifests.iter().enumerate() {
            let id = format!("{manifest}:opts");
            let options = BundleDeploymentOptions {
                default_namespace: format!("bundle-{b}"),
                ..Default::default()
            };
            let bd = BundleDeployment::new(
                &format!("bundle-{b}"),
                BundleDeploymentSpec {
                    deployment_id: id.clone(),
                    staged_deployment_id: id,
                    options: options.clone(),
                    staged_options: options,
                    ..Default::default()
                },
            );
            Api::<BundleDeployment>::namespaced(up.clone(), &ns)
                .create(&PostParams::default(), &bd)
                .await
                .unwrap();
        }
    }
    let expected = clusters * bundles;
    loop {
        let ready = Api::<BundleDeployment>::all(up.clone())
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter(|bd| {
                bd.status
                    .as_ref()
                    .is_some_and(|s| s.ready && s.non_modified)
            })
            .count();
        if ready == expected {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            panic!("only {ready} of {expected} BundleDeployments Ready after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (rss_done, hwm) = rss_kib();
    println!(
        "{expected} BundleDeployments Ready in {:.1} s: RSS {} MiB (peak {} MiB), {:.0} KiB per agent over the clusters alone",
        started.elapsed().as_secs_f64(),
        rss_done / 1024,
        hwm / 1024,
        (rss_done.saturating_sub(rss_clusters)) as f64 / clusters as f64
    );
    let stored: u64 = (0..clusters)
        .filter_map(|c| sim.cluster(&format!("down-{c}")))
        .map(|c| c.storage_sizes().bytes)
        .sum();
    println!(
        "the downstream clusters store {:.0} KiB of objects (JSON) per cluster; {} threads",
        stored as f64 / 1024.0 / clusters as f64,
        threads()
    );
    shutdown.cancel();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }
    drop(registry);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_stopped, _) = rss_kib();
    println!(
        "agents stopped: RSS {} MiB (what the allocator gave back: {:.0} KiB per agent)",
        rss_stopped / 1024,
        rss_done.saturating_sub(rss_stopped) as f64 / clusters as f64
    );
}

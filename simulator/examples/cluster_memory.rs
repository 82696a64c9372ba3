//! Memory (and CPU) per simulated cluster, without the controller and the agents.
//!
//! Creates N downstream clusters holding what a registered cluster of `fleet sim bench` holds
//! (the agent's namespace, ServiceAccount, Secrets, ConfigMap, RBAC, NetworkPolicy and
//! Deployment; B bundles of 3 ConfigMaps each with their Helm release Secrets, installed and
//! then upgraded once; the agent's Lease renewed R times) and, on the upstream cluster, what
//! each cluster adds there (its namespace, Cluster, B BundleDeployments with status writes).
//! Every write goes through the in-process `kube::Client` with server-side apply (as the agent
//! and the controller write), so the request path is the real one. Prints the heap bytes (a
//! counting allocator) and the resident memory added per cluster at steady state, the store
//! counters and the time the writes took.
//!
//! ```sh
//! cargo run --release -p fleet-simulator --example cluster_memory -- --clusters 200 --bundles 10
//! ```
//!
//! Options: `--clusters N` (default 100), `--bundles B` (10), `--renewals R` (the Lease
//! versions a cluster's watch history holds at steady state: 100, kube-apiserver's lower
//! bound per resource), `--history H` (watch events kept per resource at most; 1 shows what
//! the objects alone take).

use std::time::Instant;

use fleet_simulator::{SimCluster, SimConfig, Simulator};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static HEAP: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Bytes held on the heap now.
fn heap_held() -> i64 {
    let s = HEAP.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

/// A field of `/proc/self/status` in bytes (`VmRSS`: resident now, `VmHWM`: its peak).
fn proc_status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':').map(str::to_string))
        })
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

#[derive(Clone, Copy)]
struct Options {
    clusters: usize,
    bundles: usize,
    renewals: usize,
    history: usize,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        clusters: 100,
        bundles: 10,
        renewals: 100,
        history: SimConfig::default().watch_history,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .parse::<usize>()
            .map_err(|e| format!("{flag}: {e}"))?;
        match flag.as_str() {
            "--clusters" => o.clusters = value,
            "--bundles" => o.bundles = value,
            "--renewals" => o.renewals = value,
            "--history" => o.history = value,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(o)
}

fn api_for(client: &kube::Client, obj: &Value) -> Api<DynamicObject> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Server-side applies `obj` as `manager`; `status` applies to the status subresource.
async fn apply(client: &kube::Client, manager: &str, obj: &Value, status: bool) -> Value {
    let api = api_for(client, obj);
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let params = PatchParams::apply(manager).force();
    let result = if status {
        api.patch_status(name, &params, &Patch::Apply(obj)).await
    } else {
        api.patch(name, &params, &Patch::Apply(obj)).await
    };
    match result {
        Ok(o) => serde_json::to_value(o).unwrap_or_default(),
        Err(e) => panic!("applying {name}: {e}"),
    }
}

/// Something of `len` bytes that does not compress, as a Helm release's payload.
fn payload(seed: usize, len: usize) -> String {
    let mut x = seed as u64 ^ 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                    [(x % 64) as usize],
            )
        })
        .collect()
}

/// A hex digest-like string (label values must be alphanumeric).
fn hex(seed: usize, len: usize) -> String {
    payload(seed, len)
        .bytes()
        .map(|b| char::from(b"0123456789abcdef"[usize::from(b) % 16]))
        .collect()
}

fn crd(plural: &str, kind: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.fleet.cattle.io")},
        "spec": {"group": "fleet.cattle.io", "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind, "listKind": format!("{kind}List")},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    })
}

/// What the agent install and the agent itself write to a downstream cluster.
async fn downstream(cluster: &SimCluster, index: usize, o: &Options) {
    let c = cluster.client();
    let ns = "cattle-fleet-system";
    let agent_labels = json!({"app": "fleet-agent"});
    for obj in [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "fleet-agent-bootstrap", "namespace": ns},
            "data": {"token": payload(index, 120), "apiServerURL": payload(index + 1, 60), "apiServerCA": payload(index + 2, 1400), "systemRegistrationNamespace": "Y2F0dGxlLWZsZWV0LWNsdXN0ZXJzLXN5c3RlbQ==", "clusterNamespace": "ZmxlZXQtZGVmYXVsdA=="}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fleet-agent", "namespace": ns},
            "data": {"config": format!("{{\"labels\":{{\"name\":\"cluster-{index}\"}},\"clientID\":\"fleet-sim-cluster-{index}\",\"agentTLSMode\":\"strict\"}}")}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "fleet-agent", "namespace": ns}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "fleet-agent-role"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "fleet-agent-role-binding"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "fleet-agent-role"},
            "subjects": [{"kind": "ServiceAccount", "name": "fleet-agent", "namespace": ns}]}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "default-allow-all", "namespace": ns},
            "spec": {"podSelector": {}, "ingress": [{}], "egress": [{}], "policyTypes": ["Ingress", "Egress"]}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "fleet-agent", "namespace": ns, "labels": agent_labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": agent_labels},
                "template": {"metadata": {"labels": agent_labels},
                    "spec": {"serviceAccountName": "fleet-agent", "nodeSelector": {"kubernetes.io/os": "linux"},
                        "tolerations": [{"key": "cattle.io/os", "operator": "Equal", "value": "linux", "effect": "NoSchedule"}],
                        "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000},
                        "containers": [{"name": "fleet-agent", "image": "rancher/fleet-agent:v0.12.0", "imagePullPolicy": "IfNotPresent",
                            "command": ["fleetagent"],
                            "env": [{"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                                {"name": "AGENT_SCOPE", "value": ""}, {"name": "CHECKIN_INTERVAL", "value": "15m0s"},
                                {"name": "FLEET_AGENT_ELECTION_LEASE_DURATION", "value": "10s"}],
                            "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": false, "privileged": false, "capabilities": {"drop": ["ALL"]}}}]}}}}),
    ] {
        apply(&c, "fleet-agentmanagement", &obj, false).await;
    }
    // Registration: the agent's own credentials.
    apply(&c, "fleet-agent", &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "fleet-agent", "namespace": ns},
        "data": {"token": payload(index + 3, 1200), "systemRegistrationNamespace": "Y2F0dGxl", "clusterNamespace": payload(index + 4, 60), "apiServerURL": payload(index + 5, 40), "apiServerCA": payload(index + 6, 1400)}}), false).await;
    // Bundles: 3 ConfigMaps and a release record each, installed, then upgraded once.
    for revision in 1..=2usize {
        for b in 0..o.bundles {
            let release = format!("bench-{b}");
            for r in 0..3 {
                apply(&c, "fleet-agent", &json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("bench-{b}-cm-{r}"), "namespace": "default",
                        "labels": {"app.kubernetes.io/managed-by": "Helm", "objectset.rio.cattle.io/hash": hex(b * 10 + r, 40)},
                        "annotations": {"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": "default", "objectset.rio.cattle.io/id": format!("default-{release}")}},
                    "data": {"key": format!("value-{revision}"), "bundle": release}}), false).await;
            }
            let record = |status: &str| {
                json!({"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
                "metadata": {"name": format!("sh.helm.release.v1.{release}.v{revision}"), "namespace": "default",
                    "labels": {"owner": "helm", "name": release, "status": status, "version": revision.to_string()}},
                "data": {"release": payload(index * 1000 + b * 10 + revision, 2400)}})
            };
            apply(&c, "fleet-agent", &record("pending-install"), false).await;
            apply(&c, "fleet-agent", &record("deployed"), false).await;
            if revision == 2 {
                let old = json!({"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
                    "metadata": {"name": format!("sh.helm.release.v1.{release}.v1"), "namespace": "default",
                        "labels": {"owner": "helm", "name": release, "status": "superseded", "version": "1"}},
                    "data": {"release": payload(index * 1000 + b * 10 + 1, 2400)}});
                apply(&c, "fleet-agent", &old, false).await;
            }
        }
    }
    // The agent's Lease, renewed as leader election does (a replace with resourceVersion).
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(c.clone(), ns);
    let mut lease: k8s_openapi::api::coordination::v1::Lease = serde_json::from_value(json!({
        "metadata": {"name": "fleet-agent-lock", "namespace": ns},
        "spec": {"holderIdentity": format!("fleet-agent-{index}-abcde"), "leaseDurationSeconds": 10, "leaseTransitions": 0,
            "acquireTime": "2026-01-01T00:00:00.000000Z", "renewTime": "2026-01-01T00:00:00.000000Z"}
    }))
    .unwrap_or_default();
    lease = match leases.create(&PostParams::default(), &lease).await {
        Ok(l) => l,
        Err(e) => panic!("creating the Lease: {e}"),
    };
    for i in 0..o.renewals {
        if let Some(spec) = lease.spec.as_mut() {
            spec.renew_time = serde_json::from_value(json!(format!(
                "2026-01-01T00:{:02}:{:02}.{:06}Z",
                (i * 2) / 60 % 60,
                (i * 2) % 60,
                i
            )))
            .ok();
        }
        lease = match leases
            .replace("fleet-agent-lock", &PostParams::default(), &lease)
            .await
        {
            Ok(l) => l,
            Err(e) => panic!("renewing the Lease: {e}"),
        };
    }
}

/// What a registered cluster adds upstream: its namespace, Cluster and BundleDeployments.
async fn upstream(c: &kube::Client, index: usize, o: &Options) {
    let cluster_ns = format!("cluster-fleet-default-cluster-{index}-0123456789ab");
    apply(c, "fleet-controller", &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cluster_ns,
        "labels": {"fleet.cattle.io/managed": "true", "fleet.cattle.io/cluster-namespace": "fleet-default", "fleet.cattle.io/cluster": format!("cluster-{index}")}}}), false).await;
    let cluster = json!({"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "Cluster",
        "metadata": {"name": format!("cluster-{index}"), "namespace": "fleet-default", "labels": {"env": "bench"}},
        "spec": {"clientID": format!("fleet-sim-cluster-{index}")}});
    apply(c, "fleet-controller", &cluster, false).await;
    let mut status = cluster.clone();
    status["status"] = json!({"namespace": cluster_ns, "agent": {"lastSeen": "2026-01-01T00:00:00Z", "namespace": "cattle-fleet-system"},
        "summary": {"desiredReady": o.bundles, "ready": o.bundles}, "readyClusters": 1, "desiredReadyClusters": 1,
        "agentDeployedGeneration": 0, "agentMigrated": true, "agentNamespaceMigrated": true, "cattleNamespaceMigrated": true,
        "display": {"readyBundles": format!("{0}/{0}", o.bundles), "state": ""},
        "conditions": [{"type": "Processed", "status": "True", "lastUpdateTime": "2026-01-01T00:00:00Z"}, {"type": "Ready", "status": "True", "lastUpdateTime": "2026-01-01T00:00:00Z"}]});
    apply(c, "fleet-controller", &status, true).await;
    for b in 0..o.bundles {
        for revision in 1..=2usize {
            let id = format!(
                "s-{}:{}",
                payload(b * 7 + revision, 40),
                payload(b + revision, 64)
            );
            let bd = json!({"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "BundleDeployment",
                "metadata": {"name": format!("bench-{b}"), "namespace": cluster_ns,
                    "labels": {"fleet.cattle.io/bundle-name": format!("bench-{b}"), "fleet.cattle.io/bundle-namespace": "fleet-default",
                        "fleet.cattle.io/commit": hex(revision, 40), "fleet.cattle.io/repo-name": "bench-0", "fleet.cattle.io/managed": "true"}},
                "spec": {"deploymentID": id, "stagedDeploymentID": id,
                    "options": {"defaultNamespace": "default", "helm": {"releaseName": format!("bench-{b}"), "values": {}}, "ignore": {}},
                    "stagedOptions": {"defaultNamespace": "default", "helm": {"releaseName": format!("bench-{b}"), "values": {}}, "ignore": {}}}});
            apply(c, "fleet-controller", &bd, false).await;
            let mut st = bd.clone();
            st["status"] = json!({"appliedDeploymentID": id, "ready": true, "nonModified": true, "release": format!("default/bench-{b}:{revision}"),
                "display": {"deployed": "True", "monitored": "True", "state": "Ready"},
                "conditions": [{"type": "Installed", "status": "True", "lastUpdateTime": "2026-01-01T00:00:00Z"},
                    {"type": "Deployed", "status": "True", "lastUpdateTime": "2026-01-01T00:00:00Z"},
                    {"type": "Ready", "status": "True", "lastUpdateTime": "2026-01-01T00:00:00Z"},
                    {"type": "Monitored", "status": "True", "lastUpdateTime": "2026-01-01T00:00:00Z"}],
                "resources": (0..3).map(|r| json!({"apiVersion": "v1", "kind": "ConfigMap", "namespace": "default", "name": format!("bench-{b}-cm-{r}")})).collect::<Vec<_>>()});
            apply(c, "fleet-agent", &st, true).await;
        }
    }
}

fn main() -> Result<(), String> {
    let o = options()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let sim = Simulator::new(SimConfig {
            profile: Some(fleet_simulator::behaviour::Profile::fast()),
            watch_history: o.history,
            ..SimConfig::default()
        });
        let up = sim.add_cluster("upstream").map_err(|e| e.to_string())?;
        for plural in [("clusters", "Cluster"), ("bundledeployments", "BundleDeployment")] {
            up.state()
                .create_object(crd(plural.0, plural.1), "fleet")
                .map_err(|e| e.to_string())?;
        }
        up.state()
            .create_object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fleet-default"}}), "fleet")
            .map_err(|e| e.to_string())?;
        let up_client = up.client();
        let before = proc_status_bytes("VmRSS");
        let heap_before = heap_held();
        let start = Instant::now();
        let batch = 16;
        for first in (0..o.clusters).step_by(batch) {
            let mut tasks = Vec::new();
            for index in first..(first + batch).min(o.clusters) {
                let sim = sim.clone();
                let up_client = up_client.clone();
                tasks.push(tokio::spawn(async move {
                    let cluster = match sim.add_cluster(&format!("cluster-{index}")) {
                        Ok(c) => c,
                        Err(e) => panic!("adding cluster-{index}: {e}"),
                    };
                    downstream(&cluster, index, &o).await;
                    upstream(&up_client, index, &o).await;
                }));
            }
            for t in tasks {
                t.await.map_err(|e| e.to_string())?;
            }
        }
        let elapsed = start.elapsed();
        // Steady state: the simulated controllers (Deployment → ReplicaSet → Pod) settled, and
        // every cluster's watch history has aged past what watchers are sent at once; the
        // agents' next renewals let each store tidy its history.
        tokio::time::sleep(std::time::Duration::from_secs(6)).await;
        for index in 0..o.clusters {
            let Some(cluster) = sim.cluster(&format!("cluster-{index}")) else {
                continue;
            };
            let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
                Api::namespaced(cluster.client(), "cattle-fleet-system");
            let patch = json!({"spec": {"renewTime": "2026-01-01T01:00:00.000000Z"}});
            if let Err(e) = leases
                .patch("fleet-agent-lock", &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                return Err(format!("renewing the Lease of cluster-{index}: {e}"));
            }
        }
        // The upstream cluster's store tidies its history on its next write too (the controller
        // writes to it all the time in `fleet sim bench`).
        up.state()
            .create_object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "steady-state"}}), "fleet")
            .map_err(|e| e.to_string())?;
        let after = proc_status_bytes("VmRSS");
        let heap = heap_held() - heap_before;
        let stats = sim.stats();
        let per_cluster = after.saturating_sub(before) as f64 / o.clusters as f64;
        println!(
            "clusters {} bundles {} renewals {}: {:.1} KiB heap per cluster ({:.1} MiB in all); {:.1} KiB RSS per cluster ({:.1} MiB in all, peak RSS {:.1} MiB), {} objects, {} history events, {} writes, {:.2} s ({:.0} µs per write)",
            o.clusters,
            o.bundles,
            o.renewals,
            heap as f64 / o.clusters as f64 / 1024.0,
            heap as f64 / 1048576.0,
            per_cluster / 1024.0,
            after.saturating_sub(before) as f64 / 1048576.0,
            proc_status_bytes("VmHWM") as f64 / 1048576.0,
            stats.objects,
            stats.history_len,
            stats.writes,
            elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1e6 / stats.writes.max(1) as f64,
        );
        // Exits holding everything, so that a heap profiler's "leaked" view shows what a
        // cluster holds (`heaptrack`, cost type leaked).
        std::process::exit(0);
        #[allow(unreachable_code)]
        Ok::<_, String>(())
    })?;
    Ok(())
}

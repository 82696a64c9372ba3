//! kube-rs over the in-process transport: the client, watcher, reflector and Controller work
//! unchanged against a simulated cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure should panic

use std::sync::Arc;
use std::time::Duration;

use fleet_simulator::{SimConfig, Simulator};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

fn bare(history: usize) -> Simulator {
    Simulator::new(SimConfig {
        seed: 7,
        watch_history: history,
        profile: None,
    })
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

#[tokio::test]
async fn stale_resource_version_updates_surface_as_409_conflicts() {
    let sim = bare(100);
    let api: Api<ConfigMap> = Api::default_namespaced(sim.add_cluster("a").unwrap().client());
    let created = api.create(&PostParams::default(), &cm("c")).await.unwrap();
    let mut first = created.clone();
    first.data = Some([("k".to_string(), "1".to_string())].into());
    api.replace("c", &PostParams::default(), &first)
        .await
        .unwrap();
    let mut stale = created;
    stale.data = Some([("k".to_string(), "2".to_string())].into());
    let err = api
        .replace("c", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
        }
        other => panic!("expected a 409, got {other:?}"),
    }
    assert_eq!(api.get("c").await.unwrap().data.unwrap()["k"], "1");
}

#[tokio::test]
async fn server_side_apply_conflicts_between_managers_unless_forced() {
    let sim = bare(100);
    let api: Api<ConfigMap> = Api::default_namespaced(sim.add_cluster("a").unwrap().client());
    let one = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "a"}});
    api.patch("c", &PatchParams::apply("one"), &Patch::Apply(&one))
        .await
        .unwrap();
    let two = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "b"}});
    let err = api
        .patch("c", &PatchParams::apply("two"), &Patch::Apply(&two))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409),
        "{err:?}"
    );
    let forced = api
        .patch("c", &PatchParams::apply("two").force(), &Patch::Apply(&two))
        .await
        .unwrap();
    assert_eq!(forced.data.unwrap()["k"], "b");
    let managers: Vec<String> = forced
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(managers, vec!["two".to_string()]);
}

/// The store keeps managedFields apart from the object (as JSON text): every way of reading
/// the object still serves them, and writes that do not send them keep them, as
/// kube-apiserver does (a client that does not know the field does not wipe it).
#[tokio::test]
async fn managed_fields_are_served_by_every_read_and_kept_by_writes_without_them() {
    let sim = bare(100);
    let api: Api<ConfigMap> = Api::default_namespaced(sim.add_cluster("a").unwrap().client());
    let managers = |cm: &ConfigMap| -> Vec<(String, String)> {
        cm.metadata
            .managed_fields
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                (
                    m.manager.unwrap_or_default(),
                    m.operation.unwrap_or_default(),
                )
            })
            .collect()
    };
    let mut watch = api
        .watch(&kube::api::WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"l": "1"}}, "data": {"k": "a"}});
    let cm = api
        .patch("c", &PatchParams::apply("applier"), &Patch::Apply(&applied))
        .await
        .unwrap();
    let want_apply = vec![("applier".to_string(), "Apply".to_string())];
    assert_eq!(managers(&cm), want_apply);
    let fields = cm.metadata.managed_fields.clone().unwrap()[0]
        .fields_v1
        .clone()
        .unwrap();
    assert_eq!(
        fields.0,
        json!({"f:data": {"f:k": {}}, "f:metadata": {"f:labels": {"f:l": {}}}})
    );
    assert_eq!(managers(&api.get("c").await.unwrap()), want_apply);
    let listed = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(managers(&listed.items[0]), want_apply);
    let event = within("the ADDED event", watch.next())
        .await
        .unwrap()
        .unwrap();
    match event {
        kube::api::WatchEvent::Added(cm) => assert_eq!(managers(&cm), want_apply),
        other => panic!("expected ADDED, got {other:?}"),
    }
    // A replace without managedFields keeps the applier's and records the updater's.
    let mut body = api.get("c").await.unwrap();
    body.metadata.managed_fields = None;
    body.data = Some(
        [
            ("k".to_string(), "a".to_string()),
            ("u".to_string(), "x".to_string()),
        ]
        .into(),
    );
    let replaced = api
        .replace(
            "c",
            &PostParams {
                field_manager: Some("updater".into()),
                ..Default::default()
            },
            &body,
        )
        .await
        .unwrap();
    let both = vec![
        ("applier".to_string(), "Apply".to_string()),
        ("updater".to_string(), "Update".to_string()),
    ];
    assert_eq!(managers(&replaced), both);
    // A finalizer added and deletion started by the system keep them too.
    let finalizer = json!({"metadata": {"finalizers": ["example.com/hold"]}});
    api.patch("c", &PatchParams::default(), &Patch::Merge(&finalizer))
        .await
        .unwrap();
    api.delete("c", &DeleteParams::default()).await.unwrap();
    let deleting = api.get("c").await.unwrap();
    assert!(deleting.metadata.deletion_timestamp.is_some());
    assert!(managers(&deleting).contains(&("applier".to_string(), "Apply".to_string())));
}

#[tokio::test]
async fn a_watcher_behind_the_history_gets_410_and_relists() {
    let sim = bare(4);
    let cluster = sim.add_cluster("a").unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(cluster.client());
    api.create(&PostParams::default(), &cm("first"))
        .await
        .unwrap();
    let (reader, writer) = reflector::store();
    let mut events = watcher(api.clone(), watcher::Config::default())
        .reflect(writer)
        .boxed();
    within("initial list", async {
        loop {
            if let watcher::Event::InitDone = events.try_next().await.unwrap().unwrap() {
                break;
            }
        }
    })
    .await;
    // While the watcher is not reading, more changes happen than the history holds.
    for i in 0..20 {
        api.create(&PostParams::default(), &cm(&format!("c{i}")))
            .await
            .unwrap();
    }
    let relisted = within("relist after 410", async {
        let mut relisted = false;
        while reader.state().len() < 21 {
            match events.next().await {
                Some(Ok(watcher::Event::Init)) => relisted = true,
                Some(_) => {}
                None => panic!("watch stream ended"),
            }
        }
        relisted
    })
    .await;
    assert!(relisted, "the watcher should have re-listed after 410 Gone");
    assert_eq!(reader.state().len(), 21);
}

#[tokio::test]
async fn a_watcher_recovers_from_an_api_server_restart() {
    let sim = bare(100);
    let cluster = sim.add_cluster("a").unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(cluster.client());
    let (reader, writer) = reflector::store();
    let stream = watcher(api.clone(), watcher::Config::default())
        .reflect(writer)
        .applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    reader.wait_until_ready().await.unwrap();
    api.create(&PostParams::default(), &cm("before"))
        .await
        .unwrap();
    cluster.restart();
    api.create(&PostParams::default(), &cm("after"))
        .await
        .unwrap();
    within("reflector catches up after restart", async {
        while reader.state().len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    task.abort();
}

#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct ReconcileError(#[from] kube::Error);

#[tokio::test]
async fn a_kube_runtime_controller_reconciles_objects() {
    let sim = bare(1000);
    let client = sim.add_cluster("a").unwrap().client();
    let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
    for i in 0..5 {
        api.create(&PostParams::default(), &cm(&format!("c{i}")))
            .await
            .unwrap();
    }
    let reconcile = |obj: Arc<ConfigMap>, api: Arc<Api<ConfigMap>>| async move {
        let name = obj.metadata.name.clone().unwrap_or_default();
        let patch = json!({"metadata": {"annotations": {"reconciled": "yes"}}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok::<_, ReconcileError>(Action::await_change())
    };
    let error_policy = |_: Arc<ConfigMap>, _: &ReconcileError, _: Arc<Api<ConfigMap>>| {
        Action::requeue(Duration::from_millis(100))
    };
    let controller = Controller::new(api.clone(), watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(api.clone()))
        .for_each(|_| async {});
    let task = tokio::spawn(controller);
    within("every object reconciled", async {
        loop {
            let list = api.list(&ListParams::default()).await.unwrap();
            let done = list
                .items
                .iter()
                .filter(|c| {
                    c.metadata
                        .annotations
                        .as_ref()
                        .is_some_and(|a| a.get("reconciled").is_some_and(|v| v == "yes"))
                })
                .count();
            if done == 5 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn the_default_profile_makes_deployments_available() {
    let sim = Simulator::new(SimConfig::default());
    let client = sim.add_cluster("a").unwrap().client();
    let api: Api<Deployment> = Api::default_namespaced(client);
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
    }))
    .unwrap();
    api.create(&PostParams::default(), &d).await.unwrap();
    within("deployment available", async {
        loop {
            let d = api.get("web").await.unwrap();
            let available = d.status.and_then(|s| s.conditions).is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Available" && c.status == "True")
            });
            if available {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Polls `check` until it returns true (60 s at most: the machine may be loaded).
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn deployments_roll_out_through_replica_sets() {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::Pod;
    let sim = Simulator::new(SimConfig::default());
    let client = sim.add_cluster("a").unwrap().client();
    let deployments: Api<Deployment> = Api::default_namespaced(client.clone());
    let replica_sets: Api<ReplicaSet> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client);
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}
    }))
    .unwrap();
    let created = deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    let rolled_out = async |image: &str| {
        let d = deployments.get("web").await.unwrap();
        let status = d.status.unwrap_or_default();
        let pods = pods.list(&ListParams::default()).await.unwrap().items;
        d.metadata.generation == status.observed_generation
            && status.updated_replicas == Some(3)
            && status.replicas == Some(3)
            && status.available_replicas == Some(3)
            && pods.len() == 3
            && pods
                .iter()
                .all(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some(image))
    };
    eventually("the first rollout", async || rolled_out("nginx:1.27").await).await;

    let list = replica_sets
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(list.len(), 1);
    let first = &list[0];
    let hash = first.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(
        first.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    let owner = &first.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("Deployment", Some(true))
    );
    assert_eq!(Some(&owner.uid), created.metadata.uid.as_ref());
    for pod in pods.list(&ListParams::default()).await.unwrap().items {
        let owner = &pod.metadata.owner_references.unwrap()[0];
        assert_eq!(owner.kind, "ReplicaSet");
        assert_eq!(Some(&owner.uid), first.metadata.uid.as_ref());
    }

    // A template change: a second ReplicaSet takes over, the first is scaled to zero and kept.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.28"}]}}}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    eventually("the second rollout", async || {
        rolled_out("nginx:1.28").await
    })
    .await;
    let mut list = replica_sets
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    list.sort_by_key(|rs| {
        rs.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"].clone()
    });
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].metadata.name, first.metadata.name);
    assert_eq!(list[0].spec.as_ref().unwrap().replicas, Some(0));
    assert_eq!(list[1].spec.as_ref().unwrap().replicas, Some(3));
    assert_ne!(list[1].metadata.name, first.metadata.name);
    let d = deployments.get("web").await.unwrap();
    assert_eq!(
        d.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "2"
    );

    // Scaling goes through the ReplicaSet too.
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    eventually("the scale-down", async || {
        pods.list(&ListParams::default()).await.unwrap().items.len() == 1
            && replica_sets
                .get(list[1].metadata.name.as_deref().unwrap())
                .await
                .unwrap()
                .spec
                .unwrap()
                .replicas
                == Some(1)
    })
    .await;
}

#[tokio::test]
async fn finalizers_hold_deletion_and_owner_deletion_collects_dependents() {
    let sim = bare(1000);
    let api: Api<ConfigMap> = Api::default_namespaced(sim.add_cluster("a").unwrap().client());
    let mut guarded = cm("guarded");
    guarded.metadata.finalizers = Some(vec!["example.com/keep".to_string()]);
    api.create(&PostParams::default(), &guarded).await.unwrap();
    api.delete("guarded", &DeleteParams::default())
        .await
        .unwrap();
    let still = api.get("guarded").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    api.patch(
        "guarded",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(api.get_opt("guarded").await.unwrap().is_none());

    let owner = api
        .create(&PostParams::default(), &cm("owner"))
        .await
        .unwrap();
    let mut dep = cm("dep");
    dep.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "owner".into(),
            uid: owner.metadata.uid.unwrap(),
            ..Default::default()
        },
    ]);
    api.create(&PostParams::default(), &dep).await.unwrap();
    api.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    assert!(api.get_opt("dep").await.unwrap().is_none());
    assert!(api.get_opt("owner").await.unwrap().is_none());
}

#[tokio::test]
async fn list_pages_with_limit_and_continue_and_selects_by_labels() {
    let sim = bare(1000);
    let api: Api<ConfigMap> = Api::default_namespaced(sim.add_cluster("a").unwrap().client());
    for i in 0..7 {
        let mut c = cm(&format!("c{i}"));
        c.metadata.labels = Some(
            [(
                "parity".to_string(),
                if i % 2 == 0 { "even" } else { "odd" }.to_string(),
            )]
            .into(),
        );
        api.create(&PostParams::default(), &c).await.unwrap();
    }
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(3);
    loop {
        let page = api.list(&lp).await.unwrap();
        assert!(page.items.len() <= 3);
        names.extend(page.items.iter().filter_map(|c| c.metadata.name.clone()));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(names, (0..7).map(|i| format!("c{i}")).collect::<Vec<_>>());
    let odd = api
        .list(&ListParams::default().labels("parity in (odd)"))
        .await
        .unwrap();
    assert_eq!(odd.items.len(), 3);
    let not_even = api
        .list(&ListParams::default().labels("parity!=even,parity"))
        .await
        .unwrap();
    assert_eq!(not_even.items.len(), 3);
}

#[tokio::test]
async fn streaming_lists_send_initial_events_then_a_bookmark() {
    let sim = bare(100);
    let api: Api<ConfigMap> = Api::default_namespaced(sim.add_cluster("a").unwrap().client());
    for i in 0..3 {
        api.create(&PostParams::default(), &cm(&format!("c{i}")))
            .await
            .unwrap();
    }
    let (reader, writer) = reflector::store();
    let stream = watcher(api.clone(), watcher::Config::default().streaming_lists())
        .reflect(writer)
        .applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    within("streamed initial state", reader.wait_until_ready())
        .await
        .unwrap();
    assert_eq!(reader.state().len(), 3);
    api.create(&PostParams::default(), &cm("later"))
        .await
        .unwrap();
    within("later change", async {
        while reader.state().len() < 4 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn a_namespaced_watch_follows_its_namespace_while_others_churn() {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::ResourceExt as _;
    use kube::api::{WatchEvent, WatchParams};
    let sim = bare(4);
    let cluster = sim.add_cluster("a").unwrap();
    let client = cluster.client();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in ["quiet", "busy"] {
        let obj: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        namespaces
            .create(&PostParams::default(), &obj)
            .await
            .unwrap();
    }
    let quiet: Api<ConfigMap> = Api::namespaced(client.clone(), "quiet");
    let busy: Api<ConfigMap> = Api::namespaced(client.clone(), "busy");
    let first = quiet
        .create(&PostParams::default(), &cm("q0"))
        .await
        .unwrap();
    let rv = first.resource_version().unwrap();
    let mut running = quiet
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    // Another namespace writes far more than the resource's history holds.
    for i in 0..20 {
        busy.create(&PostParams::default(), &cm(&format!("b{i}")))
            .await
            .unwrap();
    }
    quiet
        .create(&PostParams::default(), &cm("q1"))
        .await
        .unwrap();
    // The running watch lost nothing of its namespace, so it goes on.
    match within("the quiet namespace's next event", running.try_next())
        .await
        .unwrap()
    {
        Some(WatchEvent::Added(c)) => assert_eq!(c.name_any(), "q1"),
        other => panic!("expected ADDED q1, got {other:?}"),
    }
    // A new watch from that resourceVersion starts before the resource's history: 410.
    let mut late = quiet
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match within("the late watch's first event", late.try_next())
        .await
        .unwrap()
    {
        Some(WatchEvent::Error(e)) => assert_eq!(e.code, 410, "{e:?}"),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}

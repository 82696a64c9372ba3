//! The GitRepo reconciler end to end on the in-process simulator: local repositories (file://
//! and smart HTTP with basic auth on 127.0.0.1) become Bundles; commits, removed folders,
//! broken fleet.yaml files, unreachable repositories, bad credentials, restrictions, the
//! webhook and the status aggregation from BundleDeployments.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure should panic

mod gitops_support;

use std::collections::BTreeMap;

use fleet_api::consts::{
    BUNDLE_NAMESPACE_LABEL, CLUSTER_LABEL, CLUSTER_NAMESPACE_LABEL, COMMIT_LABEL, REPO_LABEL,
};
use fleet_api::{Bundle, BundleDeployment, GenericCondition, GitRepo, GitRepoRestriction};
use gitops_support::{GitHttpServer, LocalRepo, Upstream, configmap, eventually};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const NS: &str = "fleet-local";
const WAIT: u64 = 120;

async fn create_gitrepo(client: &kube::Client, name: &str, spec: serde_json::Value) {
    let api: Api<GitRepo> = Api::namespaced(client.clone(), NS);
    let obj: GitRepo = serde_json::from_value(json!({
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "GitRepo",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }))
    .unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
}

async fn bundles_of(client: &kube::Client, repo: &str) -> BTreeMap<String, Bundle> {
    let api: Api<Bundle> = Api::namespaced(client.clone(), NS);
    api.list(&ListParams::default().labels(&format!("{REPO_LABEL}={repo}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|b| (b.metadata.name.clone().unwrap(), b))
        .collect()
}

async fn gitrepo(client: &kube::Client, name: &str) -> GitRepo {
    Api::<GitRepo>::namespaced(client.clone(), NS)
        .get(name)
        .await
        .unwrap()
}

fn condition(g: &GitRepo, type_: &str) -> Option<GenericCondition> {
    g.status
        .as_ref()?
        .base
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

fn label(b: &Bundle, key: &str) -> String {
    b.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .cloned()
        .unwrap_or_default()
}

/// Two apps, each a folder with a fleet.yaml and a ConfigMap.
fn two_apps(repo: &LocalRepo, value: &str) {
    repo.write("apps/one/fleet.yaml", "defaultNamespace: one\n");
    repo.write("apps/one/cm.yaml", &configmap("one", value));
    repo.write("apps/two/fleet.yaml", "defaultNamespace: two\n");
    repo.write("apps/two/cm.yaml", &configmap("two", value));
    repo.write("README.md", "not deployed\n");
}

fn resource_text(b: &Bundle) -> String {
    b.spec
        .resources
        .iter()
        .map(|r| r.content.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitrepo_bundles_follow_commits_and_folders() {
    let up = Upstream::start().await;
    let repo = LocalRepo::new();
    two_apps(&repo, "v1");
    let first = repo.commit("first");
    create_gitrepo(
        &up.client,
        "apps",
        json!({
            "repo": repo.url(),
            "paths": ["apps/*"],
            "pollingInterval": "1s",
            "serviceAccount": "deployer",
            "keepResources": true,
            "correctDrift": {"enabled": true},
            "targets": [{"name": "dev", "clusterSelector": {"matchLabels": {"env": "dev"}}}],
        }),
    )
    .await;

    let bundles = eventually("two bundles", WAIT, || async {
        let b = bundles_of(&up.client, "apps").await;
        if b.len() == 2 {
            Ok(b)
        } else {
            Err(format!("{:?}", b.keys().collect::<Vec<_>>()))
        }
    })
    .await;
    let one = &bundles["apps-apps-one"];
    assert_eq!(label(one, COMMIT_LABEL), first);
    assert_eq!(label(one, REPO_LABEL), "apps");
    assert_eq!(one.spec.default_namespace, "one");
    assert_eq!(one.spec.service_account, "deployer");
    assert!(one.spec.keep_resources);
    assert!(one.spec.correct_drift.as_ref().is_some_and(|d| d.enabled));
    assert_eq!(one.spec.targets.len(), 1);
    assert_eq!(one.spec.targets[0].name, "dev");
    assert_eq!(
        one.spec.targets[0]
            .cluster_selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref())
            .map(|m| m["env"].clone()),
        Some("dev".to_string())
    );
    assert_eq!(one.spec.target_restrictions.len(), 1);
    assert!(resource_text(one).contains("v1"));

    let g = eventually("GitRepo ready with the commit", WAIT, || async {
        let g = gitrepo(&up.client, "apps").await;
        let s = g.status.clone().unwrap_or_default();
        let ready = condition(&g, "Ready").is_some_and(|c| c.status == "True");
        if s.commit == first && ready {
            Ok(g)
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    assert_eq!(condition(&g, "Accepted").unwrap().status, "True");
    assert_eq!(condition(&g, "GitPolling").unwrap().status, "True");
    let status = g.status.clone().unwrap();
    assert_eq!(status.git_job_status, "Current");
    assert_eq!(status.base.display.ready_bundle_deployments, "0/0");
    assert!(
        g.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"fleet.cattle.io/gitrepo-finalizer".to_string())
    );

    // A new commit reaches the bundles.
    repo.write("apps/one/cm.yaml", &configmap("one", "v2"));
    let second = repo.commit("second");
    eventually("bundles at the second commit", WAIT, || async {
        let b = bundles_of(&up.client, "apps").await;
        let ok = b.values().all(|x| label(x, COMMIT_LABEL) == second)
            && b.get("apps-apps-one")
                .is_some_and(|x| resource_text(x).contains("v2"));
        if ok && b.len() == 2 {
            Ok(())
        } else {
            Err(format!("{} bundles", b.len()))
        }
    })
    .await;

    // A removed folder removes its bundle.
    repo.remove("apps/two");
    repo.commit("drop two");
    eventually("bundle two deleted", WAIT, || async {
        let b = bundles_of(&up.client, "apps").await;
        if b.len() == 1 && b.contains_key("apps-apps-one") {
            Ok(())
        } else {
            Err(format!("{:?}", b.keys().collect::<Vec<_>>()))
        }
    })
    .await;

    // Deleting the GitRepo deletes its bundles, then the finalizer lets it go.
    Api::<GitRepo>::namespaced(up.client.clone(), NS)
        .delete("apps", &DeleteParams::default())
        .await
        .unwrap();
    eventually("GitRepo and bundles gone", WAIT, || async {
        let left = bundles_of(&up.client, "apps").await.len();
        let exists = Api::<GitRepo>::namespaced(up.client.clone(), NS)
            .get_opt("apps")
            .await
            .unwrap()
            .is_some();
        if left == 0 && !exists {
            Ok(())
        } else {
            Err(format!("{left} bundles, exists={exists}"))
        }
    })
    .await;
    up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_fleet_yaml_keeps_the_deployed_bundles() {
    let up = Upstream::start().await;
    let repo = LocalRepo::new();
    two_apps(&repo, "v1");
    let first = repo.commit("first");
    create_gitrepo(
        &up.client,
        "broken",
        json!({"repo": repo.url(), "paths": ["apps/*"], "pollingInterval": "1s"}),
    )
    .await;
    eventually("two bundles", WAIT, || async {
        let n = bundles_of(&up.client, "broken").await.len();
        if n == 2 { Ok(()) } else { Err(n.to_string()) }
    })
    .await;

    repo.write("apps/one/fleet.yaml", "helm: [unclosed\n");
    repo.commit("break it");
    let g = eventually("Ready=False naming the file", WAIT, || async {
        let g = gitrepo(&up.client, "broken").await;
        match condition(&g, "Ready") {
            Some(c) if c.status == "False" && c.message.contains("apps/one/fleet.yaml") => Ok(g),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let ready = condition(&g, "Ready").unwrap();
    assert!(
        ready.message.contains("broken-apps-one"),
        "{}",
        ready.message
    );
    assert!(
        !ready.message.contains("/tmp"),
        "paths are relative: {}",
        ready.message
    );
    assert_eq!(condition(&g, "Stalled").unwrap().status, "True");
    assert_eq!(g.status.as_ref().unwrap().base.display.state, "GitUpdating");
    // The bundles of the last good commit are untouched.
    let b = bundles_of(&up.client, "broken").await;
    assert_eq!(b.len(), 2);
    assert!(b.values().all(|x| label(x, COMMIT_LABEL) == first));

    // Fixing it recovers.
    repo.write("apps/one/fleet.yaml", "defaultNamespace: one\n");
    let fixed = repo.commit("fix");
    eventually("recovered", WAIT, || async {
        let g = gitrepo(&up.client, "broken").await;
        let ready = condition(&g, "Ready").is_some_and(|c| c.status == "True");
        let b = bundles_of(&up.client, "broken").await;
        if ready && b.values().all(|x| label(x, COMMIT_LABEL) == fixed) {
            Ok(())
        } else {
            Err(format!("{:?}", condition(&g, "Ready")))
        }
    })
    .await;
    up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_repository_is_reported_with_url_and_step() {
    let up = Upstream::start().await;
    let missing = "file:///nonexistent/fleet-rs/repo";
    create_gitrepo(
        &up.client,
        "lost",
        json!({"repo": missing, "pollingInterval": "1s"}),
    )
    .await;
    let g = eventually("GitPolling=False", WAIT, || async {
        let g = gitrepo(&up.client, "lost").await;
        match condition(&g, "GitPolling") {
            Some(c) if c.status == "False" => Ok(g),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let polling = condition(&g, "GitPolling").unwrap();
    assert!(polling.message.contains(missing), "{}", polling.message);
    assert!(
        polling.message.contains("listing remote references"),
        "{}",
        polling.message
    );
    let ready = condition(&g, "Ready").unwrap();
    assert_eq!(ready.status, "False");
    assert_eq!(ready.message, polling.message);
    assert!(bundles_of(&up.client, "lost").await.is_empty());

    // A missing branch names the ref.
    let repo = LocalRepo::new();
    repo.write("cm.yaml", &configmap("cm", "x"));
    repo.commit("first");
    create_gitrepo(
        &up.client,
        "nobranch",
        json!({"repo": repo.url(), "branch": "release", "pollingInterval": "1s"}),
    )
    .await;
    eventually("branch not found", WAIT, || async {
        let g = gitrepo(&up.client, "nobranch").await;
        match condition(&g, "GitPolling") {
            Some(c)
                if c.status == "False"
                    && c.message.contains("resolving ref refs/heads/release") =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    up.stop().await;
}

async fn basic_auth_secret(client: &kube::Client, name: &str, user: &str, password: &str) {
    let api: Api<Secret> = Api::namespaced(client.clone(), NS);
    let obj: Secret = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS},
        "type": "kubernetes.io/basic-auth",
        "stringData": {"username": user, "password": password},
    }))
    .unwrap();
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => {}
        Err(_) => {
            api.replace(name, &PostParams::default(), &obj)
                .await
                .unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_with_basic_auth_and_a_bad_credential() {
    let up = Upstream::start().await;
    let server = GitHttpServer::start("fleet", "s3cret").await;
    let repo = LocalRepo::new();
    two_apps(&repo, "v1");
    let first = repo.commit("first");
    let url = server.publish(&repo, "apps");
    basic_auth_secret(&up.client, "git-auth", "fleet", "s3cret").await;
    create_gitrepo(
        &up.client,
        "http",
        json!({"repo": url, "paths": ["apps/*"], "clientSecretName": "git-auth", "pollingInterval": "1s"}),
    )
    .await;
    eventually("bundles over http", WAIT, || async {
        let b = bundles_of(&up.client, "http").await;
        if b.len() == 2 && b.values().all(|x| label(x, COMMIT_LABEL) == first) {
            Ok(())
        } else {
            let g = gitrepo(&up.client, "http").await;
            Err(format!(
                "{} bundles; {:?}",
                b.len(),
                condition(&g, "GitPolling")
            ))
        }
    })
    .await;

    // The password changes on the client side only: polling fails, bundles stay.
    basic_auth_secret(&up.client, "git-auth", "fleet", "wrong").await;
    repo.write("apps/one/cm.yaml", &configmap("one", "v2"));
    repo.commit("second");
    server.push(&repo, "apps");
    let g = eventually("GitPolling=False for the bad credential", WAIT, || async {
        let g = gitrepo(&up.client, "http").await;
        match condition(&g, "GitPolling") {
            Some(c) if c.status == "False" => Ok(g),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let msg = condition(&g, "GitPolling").unwrap().message;
    assert!(msg.contains(&url), "{msg}");
    assert!(msg.contains("listing remote references"), "{msg}");
    assert_eq!(condition(&g, "Ready").unwrap().status, "False");
    let b = bundles_of(&up.client, "http").await;
    assert_eq!(b.len(), 2);
    assert!(b.values().all(|x| label(x, COMMIT_LABEL) == first));

    // A missing secret is named too.
    create_gitrepo(
        &up.client,
        "nosecret",
        json!({"repo": url, "clientSecretName": "absent", "pollingInterval": "1s"}),
    )
    .await;
    eventually("missing secret reported", WAIT, || async {
        let g = gitrepo(&up.client, "nosecret").await;
        match condition(&g, "GitPolling") {
            Some(c)
                if c.status == "False"
                    && c.message.contains("secret fleet-local/absent not found") =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restriction_rejects_the_gitrepo() {
    let up = Upstream::start().await;
    let repo = LocalRepo::new();
    repo.write("cm.yaml", &configmap("cm", "x"));
    repo.commit("first");
    let restriction: GitRepoRestriction = serde_json::from_value(json!({
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "GitRepoRestriction",
        "metadata": {"name": "only-example", "namespace": NS},
        "allowedRepoPatterns": ["^https://git\\.example\\.com/"],
    }))
    .unwrap();
    Api::<GitRepoRestriction>::namespaced(up.client.clone(), NS)
        .create(&PostParams::default(), &restriction)
        .await
        .unwrap();
    create_gitrepo(
        &up.client,
        "denied",
        json!({"repo": repo.url(), "pollingInterval": "1s"}),
    )
    .await;
    let g = eventually("Accepted=False", WAIT, || async {
        let g = gitrepo(&up.client, "denied").await;
        match condition(&g, "Accepted") {
            Some(c) if c.status == "False" => Ok(g),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let accepted = condition(&g, "Accepted").unwrap();
    assert!(
        accepted
            .message
            .starts_with(&format!("disallowed repo {}", repo.url())),
        "{}",
        accepted.message
    );
    assert!(
        accepted.message.contains("not in allowed set"),
        "{}",
        accepted.message
    );
    assert!(bundles_of(&up.client, "denied").await.is_empty());

    // Lifting the restriction deploys it.
    Api::<GitRepoRestriction>::namespaced(up.client.clone(), NS)
        .delete("only-example", &DeleteParams::default())
        .await
        .unwrap();
    eventually("accepted and deployed", WAIT, || async {
        let g = gitrepo(&up.client, "denied").await;
        let accepted = condition(&g, "Accepted").is_some_and(|c| c.status == "True");
        let n = bundles_of(&up.client, "denied").await.len();
        if accepted && n == 1 {
            Ok(())
        } else {
            Err(format!("accepted={accepted} bundles={n}"))
        }
    })
    .await;
    up.stop().await;
}

fn bd(
    name: &str,
    cluster: &str,
    ready: bool,
    counts: serde_json::Value,
) -> (BundleDeployment, serde_json::Value) {
    let ns = format!("cluster-fleet-default-{cluster}");
    let obj: BundleDeployment = serde_json::from_value(json!({
        "apiVersion": "fleet.cattle.io/v1alpha1",
        "kind": "BundleDeployment",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {
                REPO_LABEL: "status",
                BUNDLE_NAMESPACE_LABEL: NS,
                CLUSTER_LABEL: cluster,
                CLUSTER_NAMESPACE_LABEL: "fleet-default",
            },
        },
        "spec": {"deploymentID": "m:1", "stagedDeploymentID": "m:1"},
    }))
    .unwrap();
    let status = json!({
        "appliedDeploymentID": "m:1",
        "ready": ready,
        "nonModified": true,
        "resources": [{"apiVersion": "v1", "kind": "ConfigMap", "namespace": "app", "name": "cm"}],
        "nonReadyStatus": if ready { json!([]) } else { json!([{
            "apiVersion": "v1", "kind": "ConfigMap", "namespace": "app", "name": "cm",
            "summary": {"state": "NotReady", "transitioning": true}
        }]) },
        "resourceCounts": counts,
    });
    (obj, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_aggregated_from_bundle_deployments() {
    let up = Upstream::start().await;
    let repo = LocalRepo::new();
    repo.write("cm.yaml", &configmap("cm", "x"));
    repo.commit("first");
    create_gitrepo(
        &up.client,
        "status",
        json!({"repo": repo.url(), "pollingInterval": "1s"}),
    )
    .await;
    eventually("bundle", WAIT, || async {
        let n = bundles_of(&up.client, "status").await.len();
        if n == 1 { Ok(()) } else { Err(n.to_string()) }
    })
    .await;

    let deployments = [
        bd("status", "c1", true, json!({"ready": 1, "desiredReady": 1})),
        bd(
            "status",
            "c2",
            false,
            json!({"ready": 0, "desiredReady": 1, "notReady": 1}),
        ),
    ];
    for (obj, status) in deployments {
        let ns = obj.metadata.namespace.clone().unwrap();
        let namespace: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(up.client.clone())
            .create(&PostParams::default(), &namespace)
            .await;
        let name = obj.metadata.name.clone().unwrap();
        let api: Api<BundleDeployment> = Api::namespaced(up.client.clone(), &ns);
        api.create(&PostParams::default(), &obj).await.unwrap();
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .unwrap();
    }
    let g = eventually("status from the deployments", WAIT, || async {
        let g = gitrepo(&up.client, "status").await;
        let s = g.status.clone().unwrap_or_default();
        if s.base.display.ready_bundle_deployments == "1/2"
            && s.base.per_cluster_resource_counts.len() == 2
            && s.base.resource_counts.desired_ready == 2
            && s.base.resource_counts.not_ready == 1
        {
            Ok(g)
        } else {
            Err(format!("{:?}", s.base))
        }
    })
    .await;
    let s = g.status.clone().unwrap();
    assert_eq!(s.base.ready_clusters, 1);
    assert_eq!(s.base.desired_ready_clusters, 2);
    assert_eq!(s.base.resource_counts.ready, 1);
    assert_eq!(s.base.resource_counts.desired_ready, 2);
    assert_eq!(s.base.resource_counts.not_ready, 1);
    assert_eq!(
        s.base.per_cluster_resource_counts["fleet-default/c1"].ready,
        1
    );
    assert_eq!(
        s.base.per_cluster_resource_counts["fleet-default/c2"].not_ready,
        1
    );
    assert_eq!(s.base.display.state, "NotReady");
    assert_eq!(s.base.resources.len(), 1);
    assert_eq!(s.base.resources[0].state, "NotReady");
    assert_eq!(
        s.base.resources[0].per_cluster_state.ready,
        vec!["fleet-default/c1"]
    );
    assert_eq!(
        s.base.resources[0].per_cluster_state.not_ready,
        vec!["fleet-default/c2"]
    );
    let ready = condition(&g, "Ready").unwrap();
    assert_eq!(ready.status, "False");
    assert!(
        ready.message.starts_with("NotReady(1) [Bundle status"),
        "{}",
        ready.message
    );

    // A targeting error on the bundle (no deployments for it) is copied to the GitRepo.
    let targeting =
        "Targeting error: cluster c3 in namespace fleet-default: map has no entry for key \"env\"";
    Api::<Bundle>::namespaced(up.client.clone(), NS)
        .patch_status(
            "status",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [{
                "type": "Ready", "status": "False", "reason": "Error", "message": targeting
            }]}})),
        )
        .await
        .unwrap();
    eventually("targeting error copied", WAIT, || async {
        let g = gitrepo(&up.client, "status").await;
        match condition(&g, "Ready") {
            Some(c) if c.message == targeting => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // Nothing changes: the status is not rewritten.
    let before = gitrepo(&up.client, "status")
        .await
        .metadata
        .resource_version;
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let after = gitrepo(&up.client, "status")
        .await
        .metadata
        .resource_version;
    assert_eq!(before, after, "the GitRepo status must not churn");
    up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_push_triggers_a_fetch() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = listener.local_addr().unwrap();
    drop(listener);
    let up = Upstream::start_with(|c| c.webhook_addr = Some(hook_addr)).await;
    let server = GitHttpServer::start("fleet", "pw").await;
    let repo = LocalRepo::new();
    two_apps(&repo, "v1");
    let first = repo.commit("first");
    let url = server.publish(&repo, "hooked");
    basic_auth_secret(&up.client, "hook-auth", "fleet", "pw").await;
    create_gitrepo(
        &up.client,
        "hooked",
        json!({"repo": url, "paths": ["apps/*"], "clientSecretName": "hook-auth", "disablePolling": true}),
    )
    .await;
    eventually("first bundles", WAIT, || async {
        let b = bundles_of(&up.client, "hooked").await;
        if b.len() == 2 && b.values().all(|x| label(x, COMMIT_LABEL) == first) {
            Ok(())
        } else {
            Err(format!("{} bundles", b.len()))
        }
    })
    .await;

    repo.write("apps/one/cm.yaml", &configmap("one", "v2"));
    let second = repo.commit("second");
    server.push(&repo, "hooked");
    // Without polling nothing moves until the webhook arrives.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(
        bundles_of(&up.client, "hooked")
            .await
            .values()
            .all(|x| label(x, COMMIT_LABEL) == first)
    );

    let payload = json!({
        "ref": "refs/heads/master",
        "after": second,
        "repository": {"html_url": format!("http://{}/hooked", server.addr)},
    });
    let response = eventually("webhook answered", WAIT, || async {
        post_webhook(hook_addr, &payload.to_string()).await
    })
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    eventually("bundles at the pushed commit", WAIT, || async {
        let g = gitrepo(&up.client, "hooked").await;
        let b = bundles_of(&up.client, "hooked").await;
        let hooked = g
            .status
            .as_ref()
            .is_some_and(|s| s.webhook_commit == second);
        if hooked && b.values().all(|x| label(x, COMMIT_LABEL) == second) {
            Ok(())
        } else {
            Err(format!("webhookCommit set: {hooked}"))
        }
    })
    .await;
    up.stop().await;
}

/// A raw HTTP/1.1 POST of a GitHub push event (keeps the test free of an HTTP client).
async fn post_webhook(addr: std::net::SocketAddr, body: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nX-GitHub-Event: push\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    stream
        .read_to_string(&mut out)
        .await
        .map_err(|e| e.to_string())?;
    Ok(out)
}

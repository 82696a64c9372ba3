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
use gitops_support::{GitHttpServer, LocalRepo, TestCa, Upstream, configmap, eventually};
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

/// The names of the GitRepo's bundles, once they are exactly `want` (all at `commit` when given).
async fn bundles_become(client: &kube::Client, repo: &str, want: &[&str], commit: Option<&str>) {
    let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    eventually(&format!("{repo} bundles {want:?}"), WAIT, || async {
        let b = bundles_of(client, repo).await;
        let names: Vec<String> = b.keys().cloned().collect();
        let at_commit = commit.is_none_or(|c| b.values().all(|x| label(x, COMMIT_LABEL) == c));
        if names == want && at_commit {
            Ok(())
        } else {
            let g = gitrepo(client, repo).await;
            Err(format!("{names:?}; Ready: {:?}", condition(&g, "Ready")))
        }
    })
    .await;
}

async fn set_paths(client: &kube::Client, repo: &str, paths: &[&str]) {
    Api::<GitRepo>::namespaced(client.clone(), NS)
        .patch(
            repo,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paths": paths}})),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_of_deleted_folders_and_dropped_paths_are_pruned_also_the_last_one() {
    let up = Upstream::start().await;
    let repo = LocalRepo::new();
    two_apps(&repo, "v1");
    repo.write("other/cm.yaml", &configmap("other", "v1"));
    let first = repo.commit("first");
    create_gitrepo(
        &up.client,
        "prune",
        json!({"repo": repo.url(), "paths": ["apps/*"], "pollingInterval": "1s"}),
    )
    .await;
    bundles_become(
        &up.client,
        "prune",
        &["prune-apps-one", "prune-apps-two"],
        Some(&first),
    )
    .await;

    // Other paths: the bundles of the old ones go, the new one comes.
    set_paths(&up.client, "prune", &["other"]).await;
    bundles_become(&up.client, "prune", &["prune-other"], None).await;
    set_paths(&up.client, "prune", &["apps/*"]).await;
    bundles_become(
        &up.client,
        "prune",
        &["prune-apps-one", "prune-apps-two"],
        None,
    )
    .await;

    // A commit that removes a folder but breaks another builds nothing: nothing is deleted.
    repo.remove("apps/two");
    repo.write("apps/one/fleet.yaml", "helm: [unclosed\n");
    repo.commit("drop two, break one");
    eventually("Ready=False naming the broken file", WAIT, || async {
        let g = gitrepo(&up.client, "prune").await;
        match condition(&g, "Ready") {
            Some(c) if c.status == "False" && c.message.contains("apps/one/fleet.yaml") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let kept = bundles_of(&up.client, "prune").await;
    assert_eq!(
        kept.keys().collect::<Vec<_>>(),
        ["prune-apps-one", "prune-apps-two"],
        "a failed build deletes nothing"
    );

    // Fixed: the removed folder's bundle goes.
    repo.write("apps/one/fleet.yaml", "defaultNamespace: one\n");
    let fixed = repo.commit("fix one");
    bundles_become(&up.client, "prune", &["prune-apps-one"], Some(&fixed)).await;

    // The last folder goes: its bundle is deleted too, and the GitRepo says nothing is left
    // to deploy (as `fleet apply` in Fleet's git job fails after pruning).
    repo.remove("apps/one");
    repo.commit("drop the last app");
    bundles_become(&up.client, "prune", &[], None).await;
    eventually("Ready=False: nothing to deploy", WAIT, || async {
        let g = gitrepo(&up.client, "prune").await;
        match condition(&g, "Ready") {
            Some(c) if c.status == "False" && c.message.contains("no resource found") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // A folder comes back: deployed again.
    repo.write("apps/three/cm.yaml", &configmap("three", "v1"));
    let back = repo.commit("add three");
    bundles_become(&up.client, "prune", &["prune-apps-three"], Some(&back)).await;
    assert!(up.is_running());
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

// --- CA bundles (GitRepo caBundle, Rancher's tls-ca / tls-ca-additional) over HTTPS ---

fn b64(data: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Creates or replaces Secret `cattle-system/<name>` with `key: value`.
async fn rancher_secret(client: &kube::Client, name: &str, key: &str, value: &str) {
    let api: Api<Secret> = Api::namespaced(client.clone(), "cattle-system");
    let obj: Secret = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "cattle-system"},
        "data": {key: b64(value)},
    }))
    .unwrap();
    if api.create(&PostParams::default(), &obj).await.is_err() {
        let mut current = api.get(name).await.unwrap();
        current.data = obj.data.clone();
        api.replace(name, &PostParams::default(), &current)
            .await
            .unwrap();
    }
}

async fn secret_data(client: &kube::Client, name: &str, key: &str) -> Option<String> {
    let s = Api::<Secret>::namespaced(client.clone(), NS)
        .get_opt(name)
        .await
        .unwrap()?;
    s.data?
        .get(key)
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
}

/// Waits until the GitRepo's bundles are all at `commit`.
async fn bundles_at(client: &kube::Client, repo: &str, commit: &str, count: usize) {
    eventually(&format!("{repo} bundles at {commit}"), WAIT, || async {
        let b = bundles_of(client, repo).await;
        if b.len() == count && b.values().all(|x| label(x, COMMIT_LABEL) == commit) {
            Ok(())
        } else {
            let g = gitrepo(client, repo).await;
            Err(format!(
                "{} bundles; {:?}",
                b.len(),
                condition(&g, "GitPolling")
            ))
        }
    })
    .await;
}

/// Waits until GitPolling is False with a message containing `needle`; returns the message.
async fn polling_fails(client: &kube::Client, repo: &str, needle: &str) -> String {
    eventually(
        &format!("{repo}: GitPolling=False with {needle:?}"),
        WAIT,
        || async {
            let g = gitrepo(client, repo).await;
            match condition(&g, "GitPolling") {
                Some(c) if c.status == "False" && c.message.contains(needle) => Ok(c.message),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_git_trusts_the_gitrepo_ca_then_rancher_tls_ca_and_additional() {
    let up = Upstream::start().await;
    let ca = TestCa::new("git-server-ca");
    let other = TestCa::new("unrelated-ca");
    let server = GitHttpServer::start_https("fleet", "s3cret", &ca).await;
    let repo = LocalRepo::new();
    two_apps(&repo, "v1");
    let first = repo.commit("first");
    let url = server.publish(&repo, "apps");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    basic_auth_secret(&up.client, "git-auth", "fleet", "s3cret").await;

    // Without any CA the server's certificate is not trusted. A long polling interval: only
    // a CA change can make this GitRepo fetch again.
    create_gitrepo(
        &up.client,
        "no-ca",
        json!({"repo": url, "paths": ["apps/*"], "clientSecretName": "git-auth", "pollingInterval": "1h"}),
    )
    .await;
    // Case 1: the GitRepo's own caBundle.
    create_gitrepo(
        &up.client,
        "own-ca",
        json!({"repo": url, "paths": ["apps/*"], "clientSecretName": "git-auth", "pollingInterval": "1s",
               "caBundle": b64(&ca.pem)}),
    )
    .await;
    bundles_at(&up.client, "own-ca", &first, 2).await;
    let msg = polling_fails(&up.client, "no-ca", &url).await;
    assert!(msg.to_lowercase().contains("certificate"), "{msg}");
    assert_eq!(
        secret_data(&up.client, "own-ca-cabundle", "additional-ca.crt").await,
        Some(ca.pem.clone())
    );
    let copied = Api::<Secret>::namespaced(up.client.clone(), NS)
        .get("own-ca-cabundle")
        .await
        .unwrap();
    let owner = &copied.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("GitRepo", "own-ca")
    );
    assert_eq!(
        secret_data(&up.client, "no-ca-cabundle", "additional-ca.crt").await,
        None
    );

    // Case 2: Rancher's tls-ca only. Creating it re-triggers the GitRepo at once.
    rancher_secret(&up.client, "tls-ca", "cacerts.pem", &ca.pem).await;
    bundles_at(&up.client, "no-ca", &first, 2).await;
    let g = gitrepo(&up.client, "no-ca").await;
    assert_eq!(condition(&g, "GitPolling").unwrap().status, "True");
    assert_eq!(
        secret_data(&up.client, "no-ca-cabundle", "additional-ca.crt").await,
        Some(ca.pem.clone())
    );
    assert_eq!(
        secret_data(&up.client, "no-ca-rancher-cabundle", "cacerts").await,
        Some(ca.pem.clone())
    );

    // Case 3: tls-ca holds another CA; the server's CA comes from tls-ca-additional.
    rancher_secret(&up.client, "tls-ca", "cacerts.pem", &other.pem).await;
    let msg = polling_fails(&up.client, "no-ca", &url).await;
    assert!(msg.to_lowercase().contains("certificate"), "{msg}");
    repo.write("apps/one/cm.yaml", &configmap("one", "v2"));
    let second = repo.commit("second");
    server.push(&repo, "apps");
    rancher_secret(
        &up.client,
        "tls-ca-additional",
        "ca-additional.pem",
        &ca.pem,
    )
    .await;
    bundles_at(&up.client, "no-ca", &second, 2).await;
    let helm_ca = secret_data(&up.client, "no-ca-rancher-cabundle", "cacerts")
        .await
        .unwrap();
    assert!(
        helm_ca.starts_with(&other.pem) && helm_ca.ends_with(&ca.pem),
        "tls-ca first, then tls-ca-additional: {helm_ca}"
    );
    // The GitRepo with its own CA kept following the repository throughout.
    bundles_at(&up.client, "own-ca", &second, 2).await;
    up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_ca_pem_is_reported_on_the_gitrepo_and_others_keep_working() {
    let up = Upstream::start().await;
    let ca = TestCa::new("git-server-ca");
    let server = GitHttpServer::start_https("fleet", "s3cret", &ca).await;
    let repo = LocalRepo::new();
    two_apps(&repo, "v1");
    let first = repo.commit("first");
    let url = server.publish(&repo, "apps");
    basic_auth_secret(&up.client, "git-auth", "fleet", "s3cret").await;
    rancher_secret(&up.client, "tls-ca", "cacerts.pem", &ca.pem).await;
    for (name, own_ca) in [("rancher-ca", None), ("own-ca", Some(b64(&ca.pem)))] {
        let mut spec = json!({"repo": url, "paths": ["apps/*"], "clientSecretName": "git-auth", "pollingInterval": "1s"});
        if let Some(pem) = own_ca {
            spec["caBundle"] = json!(pem);
        }
        create_gitrepo(&up.client, name, spec).await;
    }
    bundles_at(&up.client, "rancher-ca", &first, 2).await;
    bundles_at(&up.client, "own-ca", &first, 2).await;

    // Garbage in tls-ca-additional: the GitRepo that relies on the Rancher CA says which
    // secret and key are broken; its bundles stay.
    rancher_secret(
        &up.client,
        "tls-ca-additional",
        "ca-additional.pem",
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    )
    .await;
    let msg = polling_fails(
        &up.client,
        "rancher-ca",
        "secret cattle-system/tls-ca-additional key ca-additional.pem is not a PEM certificate bundle",
    )
    .await;
    assert!(msg.contains(&url), "{msg}");
    let g = gitrepo(&up.client, "rancher-ca").await;
    assert_eq!(condition(&g, "Ready").unwrap().status, "False");
    assert!(g.status.unwrap().base.display.error);

    // The GitRepo with its own CA is unaffected: a new commit still reaches it.
    repo.write("apps/one/cm.yaml", &configmap("one", "v2"));
    let second = repo.commit("second");
    server.push(&repo, "apps");
    bundles_at(&up.client, "own-ca", &second, 2).await;
    assert_eq!(
        condition(&gitrepo(&up.client, "own-ca").await, "GitPolling")
            .unwrap()
            .status,
        "True"
    );
    let kept = bundles_of(&up.client, "rancher-ca").await;
    assert_eq!(kept.len(), 2);
    assert!(kept.values().all(|b| label(b, COMMIT_LABEL) == first));

    // Garbage in a GitRepo's own caBundle is named as such.
    create_gitrepo(
        &up.client,
        "bad-own",
        json!({"repo": url, "clientSecretName": "git-auth", "caBundle": b64("garbage")}),
    )
    .await;
    polling_fails(
        &up.client,
        "bad-own",
        "spec.caBundle is not a PEM certificate bundle",
    )
    .await;
    assert!(
        up.is_running(),
        "the controller must not stop on bad CA input"
    );

    // Fixing the secret recovers the GitRepo.
    rancher_secret(
        &up.client,
        "tls-ca-additional",
        "ca-additional.pem",
        &ca.pem,
    )
    .await;
    bundles_at(&up.client, "rancher-ca", &second, 2).await;
    up.stop().await;
}

// --- git jobs mode ---

mod gitjobs {
    use super::*;
    use std::sync::{Arc, Mutex};

    use fleet_controller::config::GitJobMode;
    use futures::StreamExt as _;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::core::v1::{Pod, ServiceAccount, Toleration};
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    use kube::runtime::watcher;

    /// One node, tainted: only pods tolerating `dedicated=fleet:NoSchedule` can run.
    fn tainted_cluster() -> fleet_simulator::SimConfig {
        let profile = fleet_simulator::behaviour::Profile::from_yaml(
            "name: tainted\nnodes:\n- name: system-node\n  taints:\n  - key: dedicated\n    value: fleet\n    effect: NoSchedule\n",
            "test profile",
        )
        .unwrap();
        fleet_simulator::SimConfig {
            profile: Some(profile),
            ..Default::default()
        }
    }

    fn fleet_toleration() -> Toleration {
        Toleration {
            key: Some("dedicated".into()),
            operator: Some("Equal".into()),
            value: Some("fleet".into()),
            effect: Some("NoSchedule".into()),
            ..Toleration::default()
        }
    }

    /// The controller's own Deployment, as the chart installs it, tolerating the taint.
    async fn controller_deployment(client: &kube::Client) {
        let obj: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "fleet-controller", "namespace": "cattle-fleet-system"},
            "spec": {
                "selector": {"matchLabels": {"app": "fleet-controller"}},
                "template": {
                    "metadata": {"labels": {"app": "fleet-controller"}},
                    "spec": {
                        "containers": [{"name": "fleet-controller", "image": "fleet:test"}],
                        "tolerations": [serde_json::to_value(fleet_toleration()).unwrap()],
                        "nodeSelector": {"kubernetes.io/hostname": "system-node"},
                    },
                },
            },
        }))
        .unwrap();
        Api::<Deployment>::namespaced(client.clone(), "cattle-fleet-system")
            .create(&PostParams::default(), &obj)
            .await
            .unwrap();
    }

    /// Every Job ever seen in the namespace (the controller deletes succeeded ones).
    fn record_jobs(client: &kube::Client) -> Arc<Mutex<BTreeMap<String, Job>>> {
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let out = seen.clone();
        let api = Api::<Job>::namespaced(client.clone(), NS);
        tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default()).boxed();
            while let Some(event) = events.next().await {
                if let Ok(watcher::Event::Apply(job) | watcher::Event::InitApply(job)) = event {
                    let name = job.metadata.name.clone().unwrap_or_default();
                    out.lock().unwrap().insert(name, job);
                }
            }
        });
        seen
    }

    async fn job_status(client: &kube::Client, name: &str, want: &str) -> GitRepo {
        eventually(&format!("gitJobStatus {want}"), WAIT, || async {
            let g = gitrepo(client, name).await;
            let s = g.status.clone().unwrap_or_default();
            if s.git_job_status == want {
                Ok(g)
            } else {
                Err(format!("{:?} {:?}", s.git_job_status, s.base.conditions))
            }
        })
        .await
    }

    fn job_tolerations(job: &Job) -> Vec<Toleration> {
        job.spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|p| p.tolerations.clone())
            .unwrap_or_default()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_per_sync_with_the_controller_tolerations_and_rbac() {
        let up = Upstream::start_on(tainted_cluster(), |c| {
            c.gitjob_mode = GitJobMode::Job;
            c.gitjob_image = "registry.example/fleet:v9".into();
        })
        .await;
        let jobs = record_jobs(&up.client);
        let repo = LocalRepo::new();
        two_apps(&repo, "v1");
        let first = repo.commit("first");

        // An older controller left a Role with fewer rules: it is brought up to date.
        let old_role: Role = serde_json::from_value(json!({
            "metadata": {"name": "git-apps", "namespace": NS},
            "rules": [{"apiGroups": ["fleet.cattle.io"], "resources": ["bundles"], "verbs": ["get"]}],
        }))
        .unwrap();
        let roles = Api::<Role>::namespaced(up.client.clone(), NS);
        roles
            .create(&PostParams::default(), &old_role)
            .await
            .unwrap();

        // No fleet-controller Deployment yet: the job pod tolerates nothing and stays Pending.
        create_gitrepo(
            &up.client,
            "apps",
            json!({"repo": repo.url(), "paths": ["apps/*"], "pollingInterval": "1s", "serviceAccount": "deployer"}),
        )
        .await;
        let g = job_status(&up.client, "apps", "InProgress").await;
        assert_eq!(g.status.clone().unwrap().commit, first);
        assert_eq!(condition(&g, "Reconciling").unwrap().status, "True");
        let first_job = eventually("the first job", WAIT, || async {
            jobs.lock()
                .unwrap()
                .values()
                .next()
                .cloned()
                .ok_or_else(|| "no job".to_string())
        })
        .await;
        let first_job_name = first_job.metadata.name.clone().unwrap();
        assert!(!job_tolerations(&first_job).contains(&fleet_toleration()));
        let pods = Api::<Pod>::namespaced(up.client.clone(), NS);
        eventually("the job pod unschedulable", WAIT, || async {
            let list = pods
                .list(&ListParams::default().labels(&format!("job-name={first_job_name}")))
                .await
                .unwrap();
            let unschedulable = list.items.iter().any(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| {
                        cs.iter().any(|c| {
                            c.type_ == "PodScheduled"
                                && c.status == "False"
                                && c.reason.as_deref() == Some("Unschedulable")
                        })
                    })
            });
            if unschedulable {
                Ok(())
            } else {
                Err(format!(
                    "{:?}",
                    list.items
                        .iter()
                        .map(|p| p.status.clone())
                        .collect::<Vec<_>>()
                ))
            }
        })
        .await;

        // RBAC of the job: created, and the old Role updated to the current rules.
        let sa = Api::<ServiceAccount>::namespaced(up.client.clone(), NS)
            .get("git-apps")
            .await
            .unwrap();
        assert_eq!(sa.metadata.owner_references.unwrap()[0].name, "apps");
        let role = roles.get("git-apps").await.unwrap();
        let rules = role.rules.clone().unwrap();
        assert_eq!(rules.len(), 3, "{rules:?}");
        assert!(rules[0].verbs.contains(&"create".to_string()));
        assert!(
            rules[2]
                .resources
                .as_ref()
                .unwrap()
                .contains(&"secrets".to_string())
        );
        let bindings = Api::<RoleBinding>::namespaced(up.client.clone(), NS);
        let binding = bindings.get("git-apps").await.unwrap();
        assert_eq!(binding.role_ref.name, "git-apps");
        assert_eq!(binding.subjects.unwrap()[0].name, "git-apps");

        // The controller runs as the fleet-controller Deployment with a toleration: a forced
        // sync makes a new Job whose pod inherits it, gets scheduled and completes.
        controller_deployment(&up.client).await;
        Api::<GitRepo>::namespaced(up.client.clone(), NS)
            .patch(
                "apps",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"forceSyncGeneration": 1}})),
            )
            .await
            .unwrap();
        let g = job_status(&up.client, "apps", "Current").await;
        assert_eq!(condition(&g, "Stalled").unwrap().status, "False");
        assert_eq!(condition(&g, "Reconciling").unwrap().status, "False");
        let job = {
            let seen = jobs.lock().unwrap();
            seen.values()
                .find(|j| {
                    j.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("fleet.cattle.io/force-sync-generation").cloned())
                        == Some("1".to_string())
                })
                .cloned()
                .expect("the forced job was seen")
        };
        assert!(job_tolerations(&job).contains(&fleet_toleration()));
        let pod = job.spec.clone().unwrap().template.spec.unwrap();
        assert_eq!(
            pod.node_selector
                .unwrap()
                .get("kubernetes.io/hostname")
                .map(String::as_str),
            Some("system-node")
        );
        assert_eq!(pod.service_account_name.as_deref(), Some("git-apps"));
        let main = &pod.containers[0];
        assert_eq!(main.image.as_deref(), Some("registry.example/fleet:v9"));
        let args = main.args.clone().unwrap();
        assert_eq!(args[0], "apply");
        assert!(
            args.contains(&"--sync-generation=1".to_string()),
            "{args:?}"
        );
        assert!(
            args.windows(2)
                .any(|w| w[0] == "--service-account" && w[1] == "deployer")
        );
        assert_eq!(&args[args.len() - 3..], ["--", "apps", "apps/*"]);
        let env: Vec<String> = main
            .env
            .clone()
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert!(
            env.contains(&"FLEET_APPLY_CONFLICT_RETRIES".to_string()),
            "{env:?}"
        );
        let annotations = job.metadata.annotations.clone().unwrap();
        assert_eq!(annotations["commit"], first);
        // A succeeded job is deleted, as Fleet does.
        let job_name = job.metadata.name.clone().unwrap();
        eventually("the succeeded job deleted", WAIT, || async {
            match Api::<Job>::namespaced(up.client.clone(), NS)
                .get_opt(&job_name)
                .await
                .unwrap()
            {
                None => Ok(()),
                Some(j) => Err(format!("{:?}", j.status)),
            }
        })
        .await;
        // Nothing runs `fleet apply` on the simulator: no Bundles in this mode.
        assert!(bundles_of(&up.client, "apps").await.is_empty());

        // Someone trims the Role and drops the binding; the next change of the GitRepo
        // applies them again.
        roles
            .patch(
                "git-apps",
                &PatchParams::default(),
                &Patch::Merge(json!({"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]})),
            )
            .await
            .unwrap();
        bindings
            .delete("git-apps", &DeleteParams::default())
            .await
            .unwrap();
        Api::<GitRepo>::namespaced(up.client.clone(), NS)
            .patch(
                "apps",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"paths": ["apps/one"]}})),
            )
            .await
            .unwrap();
        eventually("Role and RoleBinding updated", WAIT, || async {
            let rules = roles
                .get("git-apps")
                .await
                .unwrap()
                .rules
                .unwrap_or_default();
            let binding = bindings.get_opt("git-apps").await.unwrap();
            if rules.len() == 3 && binding.is_some() {
                Ok(())
            } else {
                Err(format!("{rules:?} {binding:?}"))
            }
        })
        .await;
        // ...and a new Job for the new generation.
        eventually("a job for generation 3", WAIT, || async {
            let seen = jobs.lock().unwrap();
            let found = seen.values().any(|j| {
                j.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("fleet.cattle.io/gitrepo-generation").cloned())
                    == Some("3".to_string())
                    && j.spec
                        .as_ref()
                        .and_then(|s| s.template.spec.as_ref())
                        .is_some_and(|p| {
                            p.containers[0]
                                .args
                                .as_ref()
                                .unwrap()
                                .last()
                                .map(String::as_str)
                                == Some("apps/one")
                        })
            });
            if found {
                Ok(())
            } else {
                Err(format!("{:?}", seen.keys().collect::<Vec<_>>()))
            }
        })
        .await;
        job_status(&up.client, "apps", "Current").await;
        up.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_charts_are_downloaded_with_the_rancher_ca() {
    use gitops_support::{StaticHttpsServer, chart_archive};
    let up = Upstream::start().await;
    let ca = TestCa::new("chart-repo-ca");
    let charts = StaticHttpsServer::start(
        vec![(
            "/mychart-0.1.0.tgz".to_string(),
            chart_archive("mychart", "0.1.0"),
        )],
        &ca,
    )
    .await;
    let chart_url = format!("https://{}/mychart-0.1.0.tgz", charts.addr);
    let repo = LocalRepo::new();
    repo.write(
        "app/fleet.yaml",
        &format!("defaultNamespace: app\nhelm:\n  chart: {chart_url}\n"),
    );
    let first = repo.commit("first");
    create_gitrepo(
        &up.client,
        "charts",
        json!({"repo": repo.url(), "paths": ["app"], "pollingInterval": "1h"}),
    )
    .await;

    // Without the Rancher CA the chart server is not trusted: the build fails, on the GitRepo.
    let g = eventually("the chart download fails", WAIT, || async {
        let g = gitrepo(&up.client, "charts").await;
        match condition(&g, "Stalled") {
            Some(c) if c.status == "True" => Ok(g),
            other => Err(format!("{other:?} {:?}", condition(&g, "GitPolling"))),
        }
    })
    .await;
    let msg = condition(&g, "Stalled").unwrap().message;
    assert!(msg.contains(&chart_url) || msg.contains("mychart"), "{msg}");
    assert!(bundles_of(&up.client, "charts").await.is_empty());

    // Rancher's tls-ca appears: the GitRepo is rebuilt at once with the CA for Helm.
    rancher_secret(&up.client, "tls-ca", "cacerts.pem", &ca.pem).await;
    bundles_at(&up.client, "charts", &first, 1).await;
    let bundle = bundles_of(&up.client, "charts").await;
    let text = resource_text(bundle.values().next().unwrap());
    assert!(text.contains("from-chart"), "{text}");
    assert_eq!(
        secret_data(&up.client, "charts-rancher-cabundle", "cacerts").await,
        Some(ca.pem.clone())
    );
    up.stop().await;
}

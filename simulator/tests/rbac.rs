//! Authentication and authorization of identities other than the admin: ServiceAccount tokens
//! (token Secrets, TokenRequest) and RBAC over Roles/ClusterRoles/bindings, in-process and over
//! HTTPS alike, with kube-apiserver's 403 wording; access reviews for `kubectl auth can-i`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure should panic

use std::time::Duration;

use fleet_simulator::{SimCluster, SimConfig, Simulator};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::watcher;
use serde_json::{Value, json};

fn bare() -> Simulator {
    Simulator::new(SimConfig {
        seed: 11,
        watch_history: 1000,
        profile: None,
    })
}

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

fn status_of<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> (u16, String, String) {
    match r {
        Err(kube::Error::Api(s)) => (s.code, s.reason, s.message),
        other => panic!("expected a Kubernetes Status error, got {other:?}"),
    }
}

async fn apply(c: &SimCluster, obj: Value) {
    let api_version = obj["apiVersion"].as_str().unwrap().to_string();
    let kind = obj["kind"].as_str().unwrap().to_string();
    c.state()
        .create_object(obj, "test")
        .unwrap_or_else(|e| panic!("creating {api_version} {kind}: {e}"));
}

async fn namespace(c: &SimCluster, name: &str) {
    apply(
        c,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )
    .await;
}

/// A ServiceAccount and its token Secret; returns the token the token controller filled in.
async fn service_account_token(c: &SimCluster, ns: &str, sa: &str) -> String {
    let admin = c.client();
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    if sas.get_opt(sa).await.unwrap().is_none() {
        sas.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": sa}})).unwrap(),
        )
        .await
        .unwrap();
    }
    let secrets: Api<Secret> = Api::namespaced(admin, ns);
    let name = format!("{sa}-token");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": name, "annotations": {"kubernetes.io/service-account.name": sa}},
                "type": "kubernetes.io/service-account-token",
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let secret = secrets.get(&name).await.unwrap();
    let data = secret.data.expect("the token controller fills data");
    String::from_utf8(data["token"].0.clone()).unwrap()
}

fn bundle_deployment_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "bundledeployments.fleet.cattle.io"},
        "spec": {"group": "fleet.cattle.io", "scope": "Namespaced",
            "names": {"plural": "bundledeployments", "singular": "bundledeployment", "kind": "BundleDeployment", "listKind": "BundleDeploymentList"},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    })
}

fn bd_api(client: kube::Client, ns: Option<&str>) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("fleet.cattle.io", "v1alpha1", "BundleDeployment"),
        "bundledeployments",
    );
    match ns {
        Some(ns) => Api::namespaced_with(client, ns, &ar),
        None => Api::all_with(client, &ar),
    }
}

async fn bd(c: &SimCluster, ns: &str, name: &str) {
    apply(
        c,
        json!({"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "BundleDeployment",
            "metadata": {"name": name, "namespace": ns}, "spec": {"deploymentID": "d1"}}),
    )
    .await;
}

/// Two cluster namespaces with a BundleDeployment each, and an agent ServiceAccount in the
/// first whose Role allows what Fleet's agent needs there.
async fn fleet_like(c: &SimCluster) -> String {
    apply(c, bundle_deployment_crd()).await;
    namespace(c, "cluster-a").await;
    namespace(c, "cluster-b").await;
    bd(c, "cluster-a", "app").await;
    bd(c, "cluster-b", "app").await;
    apply(
        c,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "agent", "namespace": "cluster-a"},
            "rules": [
                {"apiGroups": ["fleet.cattle.io"], "resources": ["bundledeployments"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["fleet.cattle.io"], "resources": ["bundledeployments/status"], "verbs": ["update", "patch"]}
            ]}),
    )
    .await;
    apply(
        c,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "agent", "namespace": "cluster-a"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "agent"},
            "subjects": [{"kind": "ServiceAccount", "name": "agent", "namespace": "cluster-a"}]}),
    )
    .await;
    service_account_token(c, "cluster-a", "agent").await
}

const AGENT: &str = "system:serviceaccount:cluster-a:agent";

#[tokio::test]
async fn token_secrets_are_filled_and_revoked_with_their_secret_or_service_account() {
    let sim = bare();
    let c = sim.add_cluster("a").unwrap();
    namespace(&c, "team").await;
    let token = service_account_token(&c, "team", "robot").await;
    let secrets: Api<Secret> = Api::namespaced(c.client(), "team");
    let secret = secrets.get("robot-token").await.unwrap();
    let data = secret.data.clone().unwrap();
    assert_eq!(data["namespace"].0, b"team");
    assert!(
        String::from_utf8(data["ca.crt"].0.clone())
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    let sa: Api<ServiceAccount> = Api::namespaced(c.client(), "team");
    let sa_uid = sa.get("robot").await.unwrap().metadata.uid.unwrap();
    assert_eq!(
        secret.metadata.annotations.unwrap()["kubernetes.io/service-account.uid"],
        sa_uid
    );
    let owners: Vec<String> = secret
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        owners.iter().any(|m| m == "kube-controller-manager"),
        "{owners:?}"
    );

    // The token authenticates as the ServiceAccount with kube-apiserver's groups.
    let who = c.identity_for_token(&token).unwrap();
    assert_eq!(who.name, "system:serviceaccount:team:robot");
    assert_eq!(
        who.groups,
        [
            "system:serviceaccounts",
            "system:serviceaccounts:team",
            "system:authenticated"
        ]
    );
    assert_eq!(who.uid, sa_uid);
    let robot = c.client_with_token(&token);
    let review: Value = robot
        .request(
            http::Request::post("/apis/authentication.k8s.io/v1/selfsubjectreviews")
                .header("content-type", "application/json")
                .body(
                    serde_json::to_vec(&json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}))
                        .unwrap(),
                )
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        review["status"]["userInfo"]["username"],
        "system:serviceaccount:team:robot"
    );
    // Authenticated, but allowed nothing yet: 403, not 401.
    let cms: Api<ConfigMap> = Api::namespaced(robot.clone(), "team");
    assert_eq!(status_of(cms.list(&ListParams::default()).await).0, 403);

    // Another cluster does not know the token.
    let other = sim.add_cluster("b").unwrap();
    assert!(other.identity_for_token(&token).is_none());

    // Deleting the Secret revokes the token.
    secrets
        .delete("robot-token", &DeleteParams::default())
        .await
        .unwrap();
    assert!(c.identity_for_token(&token).is_none());
    let (code, reason, _) = status_of(cms.list(&ListParams::default()).await);
    assert_eq!((code, reason.as_str()), (401, "Unauthorized"));

    // A new Secret gets a new token; deleting the ServiceAccount revokes it and removes the
    // Secret, as kube-controller-manager's token controller does.
    let token2 = service_account_token(&c, "team", "robot").await;
    assert_ne!(token, token2);
    assert!(c.identity_for_token(&token2).is_some());
    sa.delete("robot", &DeleteParams::default()).await.unwrap();
    assert!(c.identity_for_token(&token2).is_none());
    assert!(secrets.get_opt("robot-token").await.unwrap().is_none());

    // A token Secret must name its ServiceAccount.
    let err = secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "x"}, "type": "kubernetes.io/service-account-token"}),
            )
            .unwrap(),
        )
        .await;
    let (code, _, msg) = status_of(err);
    assert_eq!(code, 422, "{msg}");
    assert!(
        msg.contains("metadata.annotations[kubernetes.io/service-account.name]: Required value"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_token_seen_before_is_checked_again_once_its_secret_changes() {
    let sim = bare();
    let c = sim.add_cluster("a").unwrap();
    namespace(&c, "team").await;
    let token = service_account_token(&c, "team", "robot").await;
    let robot = c.client_with_token(&token);
    let cms: Api<ConfigMap> = Api::namespaced(robot.clone(), "team");
    // Authenticated (and remembered) by a first request: 403, not 401.
    assert_eq!(status_of(cms.list(&ListParams::default()).await).0, 403);
    assert!(c.identity_for_token(&token).is_some());

    // The token controller's Secret now holds another token: the one seen before is refused.
    let secrets: Api<Secret> = Api::namespaced(c.client(), "team");
    let replaced = |t: &str| json!({"data": {"token": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, t)}});
    secrets
        .patch(
            "robot-token",
            &PatchParams::default(),
            &Patch::Merge(replaced("another")),
        )
        .await
        .unwrap();
    assert!(c.identity_for_token(&token).is_none());
    assert_eq!(status_of(cms.list(&ListParams::default()).await).0, 401);

    // Put back, it authenticates again.
    secrets
        .patch(
            "robot-token",
            &PatchParams::default(),
            &Patch::Merge(replaced(&token)),
        )
        .await
        .unwrap();
    assert_eq!(status_of(cms.list(&ListParams::default()).await).0, 403);

    // Marking the ServiceAccount for deletion (a finalizer holds it) revokes the token too.
    let sa: Api<ServiceAccount> = Api::namespaced(c.client(), "team");
    sa.patch(
        "robot",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold"]}})),
    )
    .await
    .unwrap();
    assert!(c.identity_for_token(&token).is_some());
    sa.delete("robot", &DeleteParams::default()).await.unwrap();
    assert!(c.identity_for_token(&token).is_none());
    assert_eq!(status_of(cms.list(&ListParams::default()).await).0, 401);
}

#[tokio::test]
async fn a_token_secret_written_before_its_service_account_is_filled_when_it_appears() {
    let sim = bare();
    let c = sim.add_cluster("a").unwrap();
    let secrets: Api<Secret> = Api::namespaced(c.client(), "default");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "early", "annotations": {"kubernetes.io/service-account.name": "late"}},
                "type": "kubernetes.io/service-account-token",
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    assert!(secrets.get("early").await.unwrap().data.is_none());
    let sas: Api<ServiceAccount> = Api::namespaced(c.client(), "default");
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "late"}})).unwrap(),
    )
    .await
    .unwrap();
    let data = secrets.get("early").await.unwrap().data.unwrap();
    let token = String::from_utf8(data["token"].0.clone()).unwrap();
    assert_eq!(
        c.identity_for_token(&token).unwrap().name,
        "system:serviceaccount:default:late"
    );
}

#[tokio::test]
async fn token_requests_issue_bound_tokens_for_the_api_audience() {
    let sim = bare();
    let c = sim.add_cluster("a").unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(c.client(), "default");
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "builder"}})).unwrap(),
    )
    .await
    .unwrap();
    let request = |spec: Value| {
        let sas = sas.clone();
        async move {
            let tr: Value = sas
                .create_subresource::<Value, Value>(
                    "token",
                    "builder",
                    &PostParams::default(),
                    &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}),
                )
                .await?;
            Ok::<Value, kube::Error>(tr)
        }
    };
    let tr = request(json!({})).await.unwrap();
    assert_eq!(tr["kind"], "TokenRequest");
    assert_eq!(tr["spec"]["expirationSeconds"], 3600);
    assert!(tr["status"]["expirationTimestamp"].as_str().is_some());
    let token = tr["status"]["token"].as_str().unwrap().to_string();
    assert_eq!(
        c.identity_for_token(&token).unwrap().name,
        "system:serviceaccount:default:builder"
    );

    // A token for another audience is not accepted by the API server.
    let vault = request(json!({"audiences": ["vault"]})).await.unwrap();
    assert!(
        c.identity_for_token(vault["status"]["token"].as_str().unwrap())
            .is_none()
    );
    // Too short a lifetime is invalid; an unknown ServiceAccount is 404.
    assert_eq!(
        status_of(request(json!({"expirationSeconds": 60})).await).0,
        422
    );
    let missing = sas
        .create_subresource::<Value, Value>(
            "token",
            "nobody",
            &PostParams::default(),
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}),
        )
        .await;
    assert_eq!(status_of(missing).0, 404);

    // Bound to a Secret: valid while the Secret lives.
    let secrets: Api<Secret> = Api::namespaced(c.client(), "default");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "anchor"}})).unwrap(),
        )
        .await
        .unwrap();
    let bound = request(
        json!({"boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "anchor"}}),
    )
    .await
    .unwrap();
    let bound = bound["status"]["token"].as_str().unwrap().to_string();
    assert!(c.identity_for_token(&bound).is_some());
    secrets
        .delete("anchor", &DeleteParams::default())
        .await
        .unwrap();
    assert!(c.identity_for_token(&bound).is_none());

    // Deleting the ServiceAccount revokes its tokens.
    sas.delete("builder", &DeleteParams::default())
        .await
        .unwrap();
    assert!(c.identity_for_token(&token).is_none());
}

#[tokio::test]
async fn cluster_urls_resolve_to_their_cluster() {
    let sim = bare();
    let a = sim.add_cluster("sim-1").unwrap();
    assert_eq!(
        a.in_process_url(),
        "https://fleet-sim.invalid/clusters/sim-1"
    );
    for url in [
        a.in_process_url(),
        format!("{}/", a.in_process_url()),
        "https://127.0.0.1:6443/clusters/sim-1".to_string(),
        "http://localhost/clusters/sim-1/".to_string(),
    ] {
        assert_eq!(
            sim.cluster_for_url(&url).map(|c| c.name().to_string()),
            Some("sim-1".to_string()),
            "{url}"
        );
    }
    for url in [
        "https://fleet-sim.invalid/clusters/sim-2",
        "https://fleet-sim.invalid/clusters/",
        "https://fleet-sim.invalid/sim-1",
        "https://fleet-sim.invalid/clusters/sim-1/api",
    ] {
        assert!(sim.cluster_for_url(url).is_none(), "{url}");
    }
    // Token Secrets and kubeconfigs carry the CA the listener presents, made before it runs.
    let ca = a.ca_pem();
    assert!(ca.contains("BEGIN CERTIFICATE"));
    let server = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    assert_eq!(server.ca_pem(), Some(ca.as_str()));
    assert_eq!(
        sim.cluster_for_url(&server.cluster_url("sim-1"))
            .map(|c| c.name().to_string()),
        Some("sim-1".to_string())
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_role_in_one_namespace_allows_the_agent_there_and_nowhere_else() {
    let sim = bare();
    let c = sim.add_cluster("upstream").unwrap();
    let token = fleet_like(&c).await;
    let agent = c.client_with_token(&token);
    let mine = bd_api(agent.clone(), Some("cluster-a"));

    // get, list and watch in its own namespace.
    assert_eq!(
        mine.get("app").await.unwrap().metadata.name.as_deref(),
        Some("app")
    );
    assert_eq!(
        mine.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    let events = watcher(mine.clone(), watcher::Config::default());
    let mut events = std::pin::pin!(events);
    within("the agent's initial watch list", async {
        while let Some(e) = events.try_next().await.unwrap() {
            if matches!(e, watcher::Event::InitDone) {
                return;
            }
        }
        panic!("watch ended");
    })
    .await;

    // Status updates through the status subresource; the main resource stays read-only.
    let status = json!({"status": {"ready": true}});
    mine.patch_status("app", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let (code, reason, msg) = status_of(
        mine.patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"deploymentID": "evil"}})),
        )
        .await,
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        msg,
        format!(
            "bundledeployments.fleet.cattle.io \"app\" is forbidden: User \"{AGENT}\" cannot patch resource \"bundledeployments\" in API group \"fleet.cattle.io\" in the namespace \"cluster-a\""
        )
    );

    // Another cluster's namespace: the exact kube-apiserver message.
    let theirs = bd_api(agent.clone(), Some("cluster-b"));
    let (code, reason, msg) = status_of(theirs.get("app").await);
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        msg,
        format!(
            "bundledeployments.fleet.cattle.io \"app\" is forbidden: User \"{AGENT}\" cannot get resource \"bundledeployments\" in API group \"fleet.cattle.io\" in the namespace \"cluster-b\""
        )
    );
    let (_, _, msg) = status_of(theirs.list(&ListParams::default()).await);
    assert_eq!(
        msg,
        format!(
            "bundledeployments.fleet.cattle.io is forbidden: User \"{AGENT}\" cannot list resource \"bundledeployments\" in API group \"fleet.cattle.io\" in the namespace \"cluster-b\""
        )
    );
    let (code, _, msg) = status_of(
        theirs
            .patch_status("app", &PatchParams::default(), &Patch::Merge(&status))
            .await,
    );
    assert_eq!(code, 403);
    assert!(
        msg.contains("cannot patch resource \"bundledeployments/status\" in API group \"fleet.cattle.io\" in the namespace \"cluster-b\""),
        "{msg}"
    );
    // Watching another namespace is refused up front.
    let watch = theirs
        .watch(&kube::api::WatchParams::default(), "0")
        .await
        .map(|_| ());
    let (_, _, msg) = status_of(watch);
    assert!(
        msg.contains("cannot watch resource \"bundledeployments\""),
        "{msg}"
    );

    // Listing across all namespaces needs a cluster-wide binding.
    let (code, _, msg) = status_of(
        bd_api(agent.clone(), None)
            .list(&ListParams::default())
            .await,
    );
    assert_eq!(code, 403);
    assert_eq!(
        msg,
        format!(
            "bundledeployments.fleet.cattle.io is forbidden: User \"{AGENT}\" cannot list resource \"bundledeployments\" in API group \"fleet.cattle.io\" at the cluster scope"
        )
    );

    // Nothing else either: core resources, writes, the namespaces themselves.
    let secrets: Api<Secret> = Api::namespaced(agent.clone(), "cluster-a");
    let (_, _, msg) = status_of(secrets.list(&ListParams::default()).await);
    assert_eq!(
        msg,
        format!(
            "secrets is forbidden: User \"{AGENT}\" cannot list resource \"secrets\" in API group \"\" in the namespace \"cluster-a\""
        )
    );
    let (_, _, msg) = status_of(mine.delete("app", &DeleteParams::default()).await);
    assert!(msg.contains("cannot delete resource"), "{msg}");

    // The watch still delivers changes of its namespace (made by the admin).
    bd(&c, "cluster-a", "second").await;
    within("the watch sees the new BundleDeployment", async {
        while let Some(e) = events.try_next().await.unwrap() {
            if let watcher::Event::Apply(o) = e
                && o.metadata.name.as_deref() == Some("second")
            {
                return;
            }
        }
        panic!("watch ended");
    })
    .await;
}

#[tokio::test]
async fn cluster_roles_apply_cluster_wide_through_cluster_role_bindings_and_per_namespace_through_role_bindings()
 {
    let sim = bare();
    let c = sim.add_cluster("upstream").unwrap();
    let token = fleet_like(&c).await;
    let agent = c.client_with_token(&token);
    apply(
        &c,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "config-reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]}),
    )
    .await;
    let cms_b: Api<ConfigMap> = Api::namespaced(agent.clone(), "cluster-b");
    let cms_all: Api<ConfigMap> = Api::all(agent.clone());
    assert_eq!(status_of(cms_b.list(&ListParams::default()).await).0, 403);

    // A RoleBinding to a ClusterRole grants it in that namespace only.
    apply(
        &c,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "read-config", "namespace": "cluster-b"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "config-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "agent", "namespace": "cluster-a"}]}),
    )
    .await;
    cms_b.list(&ListParams::default()).await.unwrap();
    assert_eq!(status_of(cms_all.list(&ListParams::default()).await).0, 403);
    let cms_default: Api<ConfigMap> = Api::namespaced(agent.clone(), "default");
    assert_eq!(
        status_of(cms_default.list(&ListParams::default()).await).0,
        403
    );

    // A ClusterRoleBinding (here through a group) grants it everywhere, all namespaces at once.
    apply(
        &c,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "all-sas-read-config"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "config-reader"},
            "subjects": [{"kind": "Group", "name": "system:serviceaccounts:cluster-a", "apiGroup": "rbac.authorization.k8s.io"}]}),
    )
    .await;
    cms_all.list(&ListParams::default()).await.unwrap();
    cms_default.list(&ListParams::default()).await.unwrap();
    // Verbs the role does not name stay denied.
    let (code, _, msg) = status_of(
        cms_default
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap(),
            )
            .await,
    );
    assert_eq!(code, 403);
    assert_eq!(
        msg,
        format!(
            "configmaps is forbidden: User \"{AGENT}\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""
        )
    );

    // Removing the binding withdraws the permission at once.
    let crbs: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(c.client());
    crbs.delete("all-sas-read-config", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(status_of(cms_all.list(&ListParams::default()).await).0, 403);
    cms_b.list(&ListParams::default()).await.unwrap();

    // Cluster-scoped resources need a ClusterRoleBinding.
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(agent);
    let (_, _, msg) = status_of(nodes.list(&ListParams::default()).await);
    assert_eq!(
        msg,
        format!(
            "nodes is forbidden: User \"{AGENT}\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
        )
    );
}

#[tokio::test]
async fn resource_names_wildcards_and_subresource_wildcards_match_like_kube_apiserver() {
    let sim = bare();
    let c = sim.add_cluster("upstream").unwrap();
    namespace(&c, "ns").await;
    for name in ["allowed", "other"] {
        apply(
            &c,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "ns"}}),
        )
        .await;
    }
    let token = service_account_token(&c, "ns", "robot").await;
    let robot = c.client_with_token(&token);
    apply(
        &c,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "one", "namespace": "ns"},
            "rules": [
                {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["allowed"], "verbs": ["get", "list", "watch", "update"]},
                {"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]},
                {"apiGroups": ["apps"], "resources": ["*"], "verbs": ["list"]}
            ]}),
    )
    .await;
    apply(
        &c,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "one", "namespace": "ns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "one"},
            "subjects": [{"kind": "ServiceAccount", "name": "robot"}]}),
    )
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(robot.clone(), "ns");
    cms.get("allowed").await.unwrap();
    let (_, _, msg) = status_of(cms.get("other").await);
    assert_eq!(
        msg,
        "configmaps \"other\" is forbidden: User \"system:serviceaccount:ns:robot\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"ns\""
    );
    // A list is not about one name, unless a field selector pins it.
    assert_eq!(status_of(cms.list(&ListParams::default()).await).0, 403);
    let pinned = cms
        .list(&ListParams::default().fields("metadata.name=allowed"))
        .await
        .unwrap();
    assert_eq!(pinned.items.len(), 1);
    let mut w = std::pin::pin!(watcher(
        cms.clone(),
        watcher::Config::default().fields("metadata.name=allowed")
    ));
    assert!(within("pinned watch", w.next()).await.unwrap().is_ok());

    // `*/status` in any group: status subresources of every kind, never the objects.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(robot.clone(), "ns");
    let (_, _, msg) = status_of(pods.get_status("nope").await);
    assert!(msg.contains("not found"), "allowed, then 404: {msg}");
    assert_eq!(status_of(pods.get("nope").await).0, 403);
    // `*` resources in one group.
    let deploys: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(robot.clone(), "ns");
    deploys.list(&ListParams::default()).await.unwrap();
    assert_eq!(status_of(deploys.get("x").await).0, 403);
}

#[tokio::test]
async fn missing_roles_aggregated_cluster_roles_and_bootstrap_roles() {
    let sim = bare();
    let c = sim.add_cluster("upstream").unwrap();
    namespace(&c, "ns").await;
    let token = service_account_token(&c, "ns", "robot").await;
    let robot = c.client_with_token(&token);
    let cms: Api<ConfigMap> = Api::namespaced(robot.clone(), "ns");

    // A binding naming a role that does not exist: kube-apiserver says so after the denial.
    apply(
        &c,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "dangling", "namespace": "ns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "missing"},
            "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "ns"}]}),
    )
    .await;
    let (_, _, msg) = status_of(cms.list(&ListParams::default()).await);
    assert_eq!(
        msg,
        "configmaps is forbidden: User \"system:serviceaccount:ns:robot\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"ns\": RBAC: role.rbac.authorization.k8s.io \"missing\" not found"
    );

    // An aggregated ClusterRole gathers the rules of the ClusterRoles its selector matches.
    apply(
        &c,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "aggregate"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"example.com/aggregate-to-robot": "true"}}]},
            "rules": []}),
    )
    .await;
    apply(
        &c,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "aggregate", "namespace": "ns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "aggregate"},
            "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "ns"}]}),
    )
    .await;
    assert_eq!(status_of(cms.list(&ListParams::default()).await).0, 403);
    apply(
        &c,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "piece", "labels": {"example.com/aggregate-to-robot": "true"}},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]}),
    )
    .await;
    cms.list(&ListParams::default()).await.unwrap();

    // Bootstrap ClusterRoles answer bindings that name them (cluster-admin here).
    let all: Api<Secret> = Api::all(robot.clone());
    assert_eq!(status_of(all.list(&ListParams::default()).await).0, 403);
    apply(
        &c,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "robot-admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "User", "name": "system:serviceaccount:ns:robot", "apiGroup": "rbac.authorization.k8s.io"}]}),
    )
    .await;
    all.list(&ListParams::default()).await.unwrap();
}

#[tokio::test]
async fn every_authenticated_identity_may_discover_the_api_and_review_its_access() {
    let sim = bare();
    let c = sim.add_cluster("upstream").unwrap();
    let token = fleet_like(&c).await;
    let agent = c.client_with_token(&token);
    // Discovery (kube-rs walks /api and /apis) works with no binding at all.
    let discovery = kube::Discovery::new(agent.clone()).run().await.unwrap();
    assert!(discovery.has_group("fleet.cattle.io"));
    agent.apiserver_version().await.unwrap();
    // Other non-resource paths are forbidden, in kube-apiserver's words.
    let err = agent
        .request::<Value>(http::Request::get("/metrics").body(Vec::new()).unwrap())
        .await;
    let (code, _, msg) = status_of(err);
    assert_eq!(code, 403);
    assert_eq!(
        msg,
        format!("forbidden: User \"{AGENT}\" cannot get path \"/metrics\"")
    );

    let ssar = |attrs: Value| {
        let agent = agent.clone();
        async move {
            let body = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": attrs});
            let v: Value = agent
                .request(
                    http::Request::post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
                        .header("content-type", "application/json")
                        .body(serde_json::to_vec(&body).unwrap())
                        .unwrap(),
                )
                .await
                .unwrap();
            v["status"].clone()
        }
    };
    let allowed = ssar(json!({"resourceAttributes": {"namespace": "cluster-a", "verb": "watch", "group": "fleet.cattle.io", "resource": "bundledeployments"}})).await;
    assert_eq!(allowed["allowed"], true, "{allowed}");
    assert_eq!(
        allowed["reason"],
        "RBAC: allowed by RoleBinding \"agent/cluster-a\" of Role \"agent\" to ServiceAccount \"agent/cluster-a\""
    );
    let denied = ssar(json!({"resourceAttributes": {"namespace": "cluster-b", "verb": "get", "group": "fleet.cattle.io", "resource": "bundledeployments"}})).await;
    assert_eq!(denied["allowed"], false, "{denied}");
    let status_sub = ssar(json!({"resourceAttributes": {"namespace": "cluster-a", "verb": "update", "group": "fleet.cattle.io", "resource": "bundledeployments", "subresource": "status"}})).await;
    assert_eq!(status_sub["allowed"], true, "{status_sub}");

    // SubjectAccessReview is for those allowed to create it (the admin), about anyone.
    let sar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": AGENT, "groups": ["system:serviceaccounts", "system:authenticated"],
                 "resourceAttributes": {"namespace": "cluster-b", "verb": "list", "group": "fleet.cattle.io", "resource": "bundledeployments"}}});
    let post_sar = |client: kube::Client| {
        let sar = sar.clone();
        async move {
            client
                .request::<Value>(
                    http::Request::post("/apis/authorization.k8s.io/v1/subjectaccessreviews")
                        .header("content-type", "application/json")
                        .body(serde_json::to_vec(&sar).unwrap())
                        .unwrap(),
                )
                .await
        }
    };
    let by_admin = post_sar(c.client()).await.unwrap();
    assert_eq!(by_admin["status"]["allowed"], false);
    assert_eq!(status_of(post_sar(agent.clone()).await).0, 403);

    // The rules the agent has in its namespace.
    let rules: Value = agent
        .request(
            http::Request::post("/apis/authorization.k8s.io/v1/selfsubjectrulesreviews")
                .header("content-type", "application/json")
                .body(
                    serde_json::to_vec(&json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": "cluster-a"}}))
                        .unwrap(),
                )
                .unwrap(),
        )
        .await
        .unwrap();
    let resource_rules = rules["status"]["resourceRules"].as_array().unwrap();
    assert!(
        resource_rules
            .iter()
            .any(|r| r["resources"] == json!(["bundledeployments/status"])),
        "{rules}"
    );
    assert!(
        rules["status"]["nonResourceRules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["nonResourceURLs"]
                .as_array()
                .unwrap()
                .contains(&json!("/apis/*"))),
        "{rules}"
    );
}

#[tokio::test]
async fn the_https_listener_enforces_the_same_rules_as_the_in_process_transport() {
    let sim = bare();
    let c = sim.add_cluster("upstream").unwrap();
    let token = fleet_like(&c).await;
    let server = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let kubeconfig = c.kubeconfig_for_user(&server.cluster_url("upstream"), "agent", &token);
    let config = kube::Config::from_custom_kubeconfig(
        serde_norway::from_str(&kubeconfig).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let agent = kube::Client::try_from(config).unwrap();
    let mine = bd_api(agent.clone(), Some("cluster-a"));
    mine.get("app").await.unwrap();
    mine.list(&ListParams::default()).await.unwrap();
    let (code, reason, msg) = status_of(bd_api(agent.clone(), Some("cluster-b")).get("app").await);
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        msg,
        format!(
            "bundledeployments.fleet.cattle.io \"app\" is forbidden: User \"{AGENT}\" cannot get resource \"bundledeployments\" in API group \"fleet.cattle.io\" in the namespace \"cluster-b\""
        )
    );
    // The admin kubeconfig stays all-powerful.
    let admin_config = kube::Config::from_custom_kubeconfig(
        serde_norway::from_str(&c.kubeconfig(&server.cluster_url("upstream"))).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let admin = kube::Client::try_from(admin_config).unwrap();
    bd_api(admin, Some("cluster-b")).get("app").await.unwrap();
    // Revoking the token (deleting its Secret) ends access over HTTPS too.
    let secrets: Api<Secret> = Api::namespaced(c.client(), "cluster-a");
    secrets
        .delete("agent-token", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(status_of(mine.get("app").await).0, 401);
    server.shutdown().await;
}

#[tokio::test]
async fn many_agents_each_see_only_their_own_namespace() {
    let sim = bare();
    let c = sim.add_cluster("upstream").unwrap();
    apply(&c, bundle_deployment_crd()).await;
    let mut tokens = Vec::new();
    for i in 0..50 {
        let ns = format!("cluster-{i}");
        namespace(&c, &ns).await;
        bd(&c, &ns, "app").await;
        apply(
            &c,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "agent", "namespace": ns},
                "rules": [{"apiGroups": ["fleet.cattle.io"], "resources": ["bundledeployments"], "verbs": ["get"]}]}),
        )
        .await;
        apply(
            &c,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "agent", "namespace": ns},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "agent"},
                "subjects": [{"kind": "ServiceAccount", "name": "agent", "namespace": ns}]}),
        )
        .await;
        tokens.push(service_account_token(&c, &ns, "agent").await);
    }
    for (i, token) in tokens.iter().enumerate() {
        let agent = c.client_with_token(token);
        bd_api(agent.clone(), Some(&format!("cluster-{i}")))
            .get("app")
            .await
            .unwrap();
        let other = format!("cluster-{}", (i + 1) % tokens.len());
        assert_eq!(
            status_of(bd_api(agent, Some(&other)).get("app").await).0,
            403
        );
    }
}

#[tokio::test]
async fn impersonation_needs_the_impersonate_verb_and_then_acts_as_the_impersonated_identity() {
    let sim = bare();
    let c = sim.add_cluster("upstream").unwrap();
    let token = fleet_like(&c).await;
    let get_as = |client: kube::Client, ns: &str, headers: Vec<(&'static str, String)>| {
        let uri = format!("/apis/fleet.cattle.io/v1alpha1/namespaces/{ns}/bundledeployments/app");
        async move {
            let mut req = http::Request::get(uri);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            client.request::<Value>(req.body(Vec::new()).unwrap()).await
        }
    };
    // The admin acts as the agent: the agent's permissions apply.
    let as_agent = vec![("Impersonate-User", AGENT.to_string())];
    get_as(c.client(), "cluster-a", as_agent.clone())
        .await
        .unwrap();
    let (code, _, msg) = status_of(get_as(c.client(), "cluster-b", as_agent.clone()).await);
    assert_eq!(code, 403);
    assert!(
        msg.contains(&format!("User \"{AGENT}\" cannot get")),
        "{msg}"
    );

    // The agent may not impersonate anyone until RBAC says so.
    let agent = c.client_with_token(&token);
    let as_bob = vec![
        ("Impersonate-User", "bob".to_string()),
        ("Impersonate-Group", "admins".to_string()),
    ];
    let (code, _, msg) = status_of(get_as(agent.clone(), "cluster-b", as_bob.clone()).await);
    assert_eq!(code, 403);
    assert_eq!(
        msg,
        format!(
            "users \"bob\" is forbidden: User \"{AGENT}\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        )
    );
    apply(
        &c,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "impersonator"},
            "rules": [{"apiGroups": [""], "resources": ["users", "groups"], "verbs": ["impersonate"], "resourceNames": ["bob", "admins"]}]}),
    )
    .await;
    apply(
        &c,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "impersonator"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "impersonator"},
            "subjects": [{"kind": "ServiceAccount", "name": "agent", "namespace": "cluster-a"}]}),
    )
    .await;
    apply(
        &c,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "admins-read"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "Group", "name": "admins"}]}),
    )
    .await;
    get_as(agent.clone(), "cluster-b", as_bob).await.unwrap();
    // Other groups stay out of reach.
    let as_masters = vec![
        ("Impersonate-User", "bob".to_string()),
        ("Impersonate-Group", "system:masters".to_string()),
    ];
    let (code, _, msg) = status_of(get_as(agent, "cluster-b", as_masters).await);
    assert_eq!(code, 403);
    assert!(
        msg.starts_with("groups \"system:masters\" is forbidden"),
        "{msg}"
    );
}

#[tokio::test]
async fn requests_are_counted_with_those_of_service_accounts_apart() {
    let sim = bare();
    let c = sim.add_cluster("counted").unwrap();
    namespace(&c, "demo").await;
    let agent = c.client_with_token(&c.add_token("system:serviceaccount:demo:agent"));
    let person = c.client_with_token(&c.add_token("jane"));
    let cm = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "demo"}})).unwrap()
    };
    let admin_cms: Api<ConfigMap> = Api::namespaced(c.client(), "demo");
    within(
        "admin create",
        admin_cms.create(&PostParams::default(), &cm("a")),
    )
    .await
    .unwrap();
    // Counted as requests whether or not RBAC then lets them through.
    for (client, name) in [(agent.clone(), "b"), (agent, "c"), (person, "d")] {
        let cms: Api<ConfigMap> = Api::namespaced(client, "demo");
        let _ = within("create", cms.create(&PostParams::default(), &cm(name))).await;
    }
    let counts = c.request_counts_by_requester();
    let creates = counts[&("create".to_string(), "configmaps".to_string())];
    assert_eq!((creates.all, creates.service_accounts), (4, 2));
    assert_eq!(
        c.request_counts()[&("create".to_string(), "configmaps".to_string())],
        4
    );
}

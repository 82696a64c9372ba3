//! Bad requests get the status codes kube-apiserver gives, and never lose other objects.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure should panic

use bytes::Bytes;
use fleet_simulator::{ServeOptions, SimCluster, SimConfig, Simulator};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call(
    cluster: &SimCluster,
    method: Method,
    uri: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = cluster.service().oneshot(req).await.unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn setup() -> (Simulator, SimCluster) {
    let sim = Simulator::new(SimConfig {
        profile: None,
        ..SimConfig::default()
    });
    let c = sim.add_cluster("a").unwrap();
    (sim, c)
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

async fn create_keeper(c: &SimCluster) {
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keeper"}, "data": {"a": "b"}});
    let (code, _) = call(
        c,
        Method::POST,
        CMS,
        "application/json",
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(code, 201);
}

async fn keeper_intact(c: &SimCluster) {
    let (code, obj) = call(
        c,
        Method::GET,
        &format!("{CMS}/keeper"),
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(obj["data"]["a"], "b");
}

#[tokio::test]
async fn malformed_bodies_are_400_and_lose_nothing() {
    let (_sim, c) = setup();
    create_keeper(&c).await;
    let (code, status) = call(
        &c,
        Method::POST,
        CMS,
        "application/json",
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "BadRequest");
    let (code, _) = call(
        &c,
        Method::POST,
        CMS,
        "application/yaml",
        b"a: [unclosed".to_vec(),
    )
    .await;
    assert_eq!(code, 400);
    let (code, _) = call(
        &c,
        Method::PATCH,
        &format!("{CMS}/keeper"),
        "application/merge-patch+json",
        b"{{".to_vec(),
    )
    .await;
    assert_eq!(code, 400);
    let (code, _) = call(
        &c,
        Method::PATCH,
        &format!("{CMS}/keeper"),
        "application/apply-patch+yaml",
        b"a: [".to_vec(),
    )
    .await;
    assert_eq!(code, 400);
    let (code, _) = call(
        &c,
        Method::PATCH,
        &format!("{CMS}/keeper"),
        "text/plain",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(code, 415);
    keeper_intact(&c).await;
}

#[tokio::test]
async fn unknown_resources_are_404_and_wrong_api_versions_400() {
    let (_sim, c) = setup();
    create_keeper(&c).await;
    let (code, status) = call(
        &c,
        Method::GET,
        "/api/v1/namespaces/default/gizmos",
        "application/json",
        vec![],
    )
    .await;
    assert_eq!((code, status["reason"].as_str()), (404, Some("NotFound")));
    let (code, _) = call(
        &c,
        Method::GET,
        "/apis/example.com/v1/widgets",
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(code, 404);
    let body = json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
    let (code, status) = call(
        &c,
        Method::POST,
        CMS,
        "application/json",
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(code, 400, "{status}");
    let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}});
    let (code, _) = call(
        &c,
        Method::POST,
        CMS,
        "application/json",
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(code, 400);
    let (code, status) = call(
        &c,
        Method::GET,
        &format!("{CMS}/missing"),
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(status["message"], "configmaps \"missing\" not found");
    keeper_intact(&c).await;
}

#[tokio::test]
async fn invalid_selectors_are_400() {
    let (_sim, c) = setup();
    for q in [
        "labelSelector=a%20in%20b",
        "labelSelector=%3Dx",
        "fieldSelector=spec.foo%3Dbar",
        "limit=-1",
    ] {
        let (code, status) = call(
            &c,
            Method::GET,
            &format!("{CMS}?{q}"),
            "application/json",
            vec![],
        )
        .await;
        assert_eq!(code, 400, "{q}: {status}");
        assert_eq!(status["reason"], "BadRequest");
    }
}

#[tokio::test]
async fn requests_over_3_mib_are_413_and_objects_over_1_5_mib_are_refused_like_etcd() {
    let (_sim, c) = setup();
    create_keeper(&c).await;
    let huge = "x".repeat(3 * 1024 * 1024 + 10);
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "huge"}, "data": {"a": huge}});
    let (code, status) = call(
        &c,
        Method::POST,
        CMS,
        "application/json",
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(code, 413, "{status}");
    let big = "x".repeat(2 * 1024 * 1024);
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"a": big}});
    let (code, status) = call(
        &c,
        Method::POST,
        CMS,
        "application/json",
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(code, 500, "{status}");
    assert_eq!(status["message"], "etcdserver: request is too large");
    let (code, _) = call(
        &c,
        Method::GET,
        &format!("{CMS}/big"),
        "application/json",
        vec![],
    )
    .await;
    assert_eq!(code, 404);
    keeper_intact(&c).await;
}

#[tokio::test]
async fn invalid_objects_are_422_and_duplicates_409() {
    let (_sim, c) = setup();
    create_keeper(&c).await;
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}});
    let (code, status) = call(
        &c,
        Method::POST,
        CMS,
        "application/json",
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (422, Some("Invalid")),
        "{status}"
    );
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keeper"}});
    let (code, status) = call(
        &c,
        Method::POST,
        CMS,
        "application/json",
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (409, Some("AlreadyExists"))
    );
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
    let (code, _) = call(
        &c,
        Method::POST,
        "/api/v1/namespaces/nope/configmaps",
        "application/json",
        body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(code, 404);
    keeper_intact(&c).await;
}

#[tokio::test]
async fn the_plain_http_listener_serves_requests_without_a_token_but_rejects_a_wrong_one() {
    let (sim, c) = setup();
    let server = sim
        .serve_with(
            "127.0.0.1:0".parse().unwrap(),
            ServeOptions { plain_http: true },
        )
        .await
        .unwrap();
    assert!(server.cluster_url("a").starts_with("http://"));
    assert!(server.ca_pem().is_none());
    let url = format!("{}/api/v1/namespaces", server.cluster_url("a"));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let get = |token: Option<String>| {
        let mut b = Request::builder().uri(url.clone());
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        client.request(b.body(Full::new(Bytes::new())).unwrap())
    };
    // Without credentials (kubectl over plain HTTP sends none) the debugging listener serves.
    assert_eq!(get(None).await.unwrap().status().as_u16(), 200);
    let wrong = get(Some("wrong".into())).await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let status: Value =
        serde_json::from_slice(&wrong.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(
        (status["kind"].as_str(), status["reason"].as_str()),
        (Some("Status"), Some("Unauthorized"))
    );
    let ok = get(Some(c.token().to_string())).await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let list: Value =
        serde_json::from_slice(&ok.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(list["kind"], "NamespaceList");
    server.shutdown().await;
}

/// A kube-rs client built the way users build one: from a kubeconfig file, over rustls.
async fn client_from_kubeconfig(yaml: &str) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(yaml).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

async fn list_namespaces(client: kube::Client) -> Result<usize, kube::Error> {
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client);
    Ok(api.list(&Default::default()).await?.items.len())
}

fn status_code(result: Result<usize, kube::Error>) -> u16 {
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.reason, "Unauthorized", "{status:?}");
            status.code
        }
        other => panic!("expected a Kubernetes Status error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_https_listener_authenticates_bearer_tokens_for_kube_rs_clients() {
    let (sim, c) = setup();
    let server = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = server.cluster_url("a");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let kubeconfig = c.kubeconfig(&url);
    assert!(
        kubeconfig.contains("certificate-authority-data"),
        "{kubeconfig}"
    );
    assert!(server.ca_pem().unwrap().contains("BEGIN CERTIFICATE"));

    // The admin kubeconfig verifies the server against the generated CA and authenticates.
    let admin = client_from_kubeconfig(&kubeconfig).await;
    assert!(list_namespaces(admin).await.unwrap() >= 1);

    // No token, or a wrong one: 401 with a metav1.Status, as kube-apiserver answers.
    let anonymous = kubeconfig.replace(c.token(), "");
    let anonymous = client_from_kubeconfig(&anonymous).await;
    assert_eq!(status_code(list_namespaces(anonymous).await), 401);
    let wrong = client_from_kubeconfig(&kubeconfig.replace(c.token(), "not-a-token")).await;
    assert_eq!(status_code(list_namespaces(wrong).await), 401);

    // Tokens for other identities (agents later): valid until revoked, for this cluster only,
    // allowed what RBAC grants them (here: cluster-admin).
    let user = "system:serviceaccount:cattle-fleet-system:fleet-agent";
    let token = c.add_token(user);
    c.state()
        .create_object(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "agent-admin"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "User", "name": user}]}),
            "test",
        )
        .unwrap();
    assert_ne!(token, c.token());
    assert_eq!(c.user_for_token(&token).as_deref(), Some(user));
    let agent_config = c.kubeconfig_for_user(&url, "fleet-agent", &token);
    let agent = client_from_kubeconfig(&agent_config).await;
    assert!(list_namespaces(agent.clone()).await.unwrap() >= 1);
    let other = sim.add_cluster("b").unwrap();
    let elsewhere = client_from_kubeconfig(&c.kubeconfig_for_user(
        &server.cluster_url("b"),
        "fleet-agent",
        &token,
    ))
    .await;
    assert_eq!(status_code(list_namespaces(elsewhere).await), 401);
    assert!(other.user_for_token(&token).is_none());
    assert!(c.revoke_token(&token));
    assert!(!c.revoke_token(c.token()), "the admin token stays");
    assert_eq!(status_code(list_namespaces(agent).await), 401);
    server.shutdown().await;
}

#[tokio::test]
async fn strict_field_validation_rejects_unknown_fields_of_built_ins() {
    let (_sim, c) = setup();
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replica": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx", "imagePolicy": "x"}]}}}});
    let uri = "/apis/apps/v1/namespaces/default/deployments?fieldValidation=Strict";
    let (code, status) = call(
        &c,
        Method::POST,
        uri,
        "application/json",
        deploy.to_string().into_bytes(),
    )
    .await;
    assert_eq!(code, 400, "{status}");
    let msg = status["message"].as_str().unwrap();
    assert!(msg.contains("unknown field \"spec.replica\""), "{msg}");
    assert!(
        msg.contains("spec.template.spec.containers[0].imagePolicy"),
        "{msg}"
    );
    // The same object without the unknown fields passes strict validation.
    let mut fixed = deploy.clone();
    fixed["spec"].as_object_mut().unwrap().remove("replica");
    fixed["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("imagePolicy");
    let (code, status) = call(
        &c,
        Method::POST,
        uri,
        "application/json",
        fixed.to_string().into_bytes(),
    )
    .await;
    assert_eq!(code, 201, "{status}");
}

/// A minimal protobuf writer for the envelope client-go sends (`k8s\0` + runtime.Unknown).
mod proto {
    pub fn varint(mut n: u64, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    pub fn bytes(tag: u64, b: &[u8], out: &mut Vec<u8>) {
        varint(tag << 3 | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }
    pub fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut type_meta = Vec::new();
        bytes(1, api_version.as_bytes(), &mut type_meta);
        bytes(2, kind.as_bytes(), &mut type_meta);
        let mut out = b"k8s\0".to_vec();
        bytes(1, &type_meta, &mut out);
        bytes(2, raw, &mut out);
        out
    }
    /// A ConfigMap `name` with one data entry, as Go writes it (zero fields included).
    pub fn configmap(name: &str, key: &str, value: &str) -> Vec<u8> {
        let mut meta = Vec::new();
        bytes(1, name.as_bytes(), &mut meta);
        bytes(2, b"", &mut meta);
        bytes(3, b"", &mut meta);
        bytes(8, b"", &mut meta);
        let mut entry = Vec::new();
        bytes(1, key.as_bytes(), &mut entry);
        bytes(2, value.as_bytes(), &mut entry);
        let mut cm = Vec::new();
        bytes(1, &meta, &mut cm);
        bytes(2, &entry, &mut cm);
        envelope("v1", "ConfigMap", &cm)
    }
}

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

#[tokio::test]
async fn protobuf_bodies_of_built_in_kinds_are_created_and_bad_ones_rejected() {
    let (_sim, c) = setup();
    create_keeper(&c).await;
    let (code, created) = call(
        &c,
        Method::POST,
        &format!("{CMS}?fieldValidation=Strict"),
        PROTOBUF,
        proto::configmap("from-proto", "color", "blue"),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["data"], json!({"color": "blue"}));
    assert_eq!(created["metadata"]["namespace"], "default");
    assert!(created["metadata"]["creationTimestamp"].is_string());
    let (code, got) = call(
        &c,
        Method::GET,
        &format!("{CMS}/from-proto"),
        "application/json",
        Vec::new(),
    )
    .await;
    assert_eq!((code, &got["data"]["color"]), (200, &json!("blue")));

    // An update in protobuf too (kubectl's typed clients PUT the same way).
    let (code, updated) = call(
        &c,
        Method::PUT,
        &format!("{CMS}/from-proto"),
        PROTOBUF,
        proto::configmap("from-proto", "color", "green"),
    )
    .await;
    assert_eq!(
        (code, &updated["data"]["color"]),
        (200, &json!("green")),
        "{updated}"
    );

    // Truncated or garbage protobuf: 400, like a malformed JSON body.
    let mut truncated = proto::configmap("x", "k", "v");
    truncated.truncate(truncated.len() - 3);
    let (code, status) = call(&c, Method::POST, CMS, PROTOBUF, truncated).await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (400, Some("BadRequest")),
        "{status}"
    );
    let (code, _) = call(&c, Method::POST, CMS, PROTOBUF, b"not protobuf".to_vec()).await;
    assert_eq!(code, 400);
    // Kinds without a protobuf schema (custom resources) are 415, as kube-apiserver answers.
    let widget = proto::envelope("example.com/v1", "Widget", b"");
    let (code, status) = call(&c, Method::POST, CMS, PROTOBUF, widget).await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
    keeper_intact(&c).await;
}

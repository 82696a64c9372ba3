//! Bad requests get the status codes kube-apiserver gives, and never lose other objects.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure should panic

use bytes::Bytes;
use fleet_simulator::{SimCluster, SimConfig, Simulator};
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
async fn the_http_listener_rejects_a_wrong_token() {
    let (sim, c) = setup();
    let server = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
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
    // Without credentials (kubectl over plain HTTP sends none) the loopback listener serves.
    assert_eq!(get(None).await.unwrap().status().as_u16(), 200);
    assert_eq!(
        get(Some("wrong".into())).await.unwrap().status().as_u16(),
        401
    );
    let ok = get(Some(c.token().to_string())).await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let list: Value =
        serde_json::from_slice(&ok.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(list["kind"], "NamespaceList");
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

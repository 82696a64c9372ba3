//! Git over HTTPS with a private CA: the scenario's repository served by an HTTPS git server
//! whose certificate a named CA signed, GitRepos trusting a CA through `spec.caBundle`, Rancher's
//! CA Secrets (`cattle-system/tls-ca`, `tls-ca-additional`), and the certificate error a
//! GitRepo reports when it trusts none.

use anyhow::{Context, anyhow, bail};
use cucumber::gherkin::Step;
use cucumber::{given, then, when};
use fleet_simulator::services::GitHttpServer;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::backend::CLUSTERS_NAMESPACE;
use crate::steps::gitrepo::{create, gitrepo};
use crate::support::{self, condition, eventually, scaled};
use crate::world::FleetWorld;

/// The basic-auth user and password of the scenario's HTTPS git server.
const GIT_USER: &str = "fleet";
const GIT_PASSWORD: &str = "features-s3cret";

/// The repository (with at least one commit) is served from now on by an HTTPS git server on
/// 127.0.0.1 whose certificate the CA `ca` signed; commits are pushed to it.
#[given(
    expr = "the git repository is served over HTTPS with a certificate signed by the CA {string}"
)]
async fn served_over_https(world: &mut FleetWorld, ca: String) -> anyhow::Result<()> {
    if world.commit.is_none() {
        bail!("commit a file to the git repository before serving it over HTTPS");
    }
    let server = GitHttpServer::start_https(GIT_USER, GIT_PASSWORD, world.ca(&ca)?)
        .await
        .context("starting the HTTPS git server")?;
    world.repo_mut()?.serve_over(server, "repo")
}

/// A `kubernetes.io/basic-auth` Secret next to the GitRepos with the git server's credentials
/// (what `spec.clientSecretName` names).
#[given(expr = "the git server's credentials are in the Secret {string}")]
async fn credentials_secret(world: &mut FleetWorld, name: String) -> anyhow::Result<()> {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": CLUSTERS_NAMESPACE},
        "type": "kubernetes.io/basic-auth",
        "stringData": {"username": GIT_USER, "password": GIT_PASSWORD},
    }))?;
    Api::<Secret>::namespaced(world.upstream()?, CLUSTERS_NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await
        .with_context(|| format!("creating Secret {CLUSTERS_NAMESPACE}/{name}"))?;
    Ok(())
}

/// Any GitRepo spec, as YAML, with `spec.caBundle` holding the CA `ca`.
#[when(expr = "I create the GitRepo {string} trusting the CA {string}:")]
async fn create_trusting(
    world: &mut FleetWorld,
    name: String,
    ca: String,
    step: &Step,
) -> anyhow::Result<()> {
    let text = step
        .docstring
        .as_deref()
        .ok_or_else(|| anyhow!("the step needs the GitRepo spec as a docstring"))?;
    let mut spec = support::yaml(text)?;
    let pem = world.ca(&ca)?.pem().as_bytes().to_vec();
    spec.as_object_mut()
        .ok_or_else(|| anyhow!("the GitRepo spec must be a mapping"))?
        .insert("caBundle".into(), serde_json::to_value(ByteString(pem))?);
    create(world, &name, spec).await
}

#[when(expr = "the caBundle of the GitRepo {string} is removed")]
async fn remove_ca_bundle(world: &mut FleetWorld, name: String) -> anyhow::Result<()> {
    Api::<fleet_api::GitRepo>::namespaced(world.upstream()?, CLUSTERS_NAMESPACE)
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"caBundle": null}})),
        )
        .await
        .with_context(|| format!("removing spec.caBundle of GitRepo {name}"))?;
    Ok(())
}

/// Creates or replaces the Secret `namespace/name` so that `key` holds the CA's PEM, creating
/// the namespace when missing (Rancher's `cattle-system` is absent without Rancher).
#[given(expr = "the Secret {string} holds the CA {string} in {string}")]
#[when(expr = "the Secret {string} holds the CA {string} in {string}")]
async fn secret_holds_ca(
    world: &mut FleetWorld,
    key_of_secret: String,
    ca: String,
    data_key: String,
) -> anyhow::Result<()> {
    let (Some(namespace), name) = support::split_key(&key_of_secret) else {
        bail!("name the Secret as namespace/name, e.g. cattle-system/tls-ca");
    };
    let pem = world.ca(&ca)?.pem().as_bytes().to_vec();
    let upstream = world.upstream()?;
    let namespaces = Api::<Namespace>::all(upstream.clone());
    if namespaces.get_opt(namespace).await?.is_none() {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}}))?;
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {namespace}"))?;
    }
    let secrets = Api::<Secret>::namespaced(upstream, namespace);
    let data = [(data_key, ByteString(pem))].into_iter().collect();
    match secrets.get_opt(name).await? {
        Some(mut current) => {
            current.data = Some(data);
            secrets
                .replace(name, &PostParams::default(), &current)
                .await
                .with_context(|| format!("updating Secret {key_of_secret}"))?;
        }
        None => {
            let secret = Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some(name.to_string()),
                    namespace: Some(namespace.to_string()),
                    ..Default::default()
                },
                data: Some(data),
                ..Default::default()
            };
            secrets
                .create(&PostParams::default(), &secret)
                .await
                .with_context(|| format!("creating Secret {key_of_secret}"))?;
        }
    }
    Ok(())
}

/// `type=status "message"` of a condition, for failure messages.
fn describe(obj: &Value, type_: &str) -> String {
    match condition(obj, type_) {
        Some(c) => format!(
            "{type_}={} {:?}",
            c["status"].as_str().unwrap_or_default(),
            c["message"].as_str().unwrap_or_default()
        ),
        None => format!("no {type_} condition"),
    }
}

/// The GitRepo cannot fetch because the git server's certificate is not trusted: `GitPolling`
/// and `Ready` are False, and the message names the repository URL and a certificate problem.
#[then(expr = "the GitRepo {string} reports a certificate error for its repository within {int}s")]
async fn certificate_error(
    world: &mut FleetWorld,
    name: String,
    seconds: u64,
) -> anyhow::Result<()> {
    let url = world.repo()?.url();
    let world = &*world;
    eventually(
        scaled(seconds),
        &format!(
            "GitRepo {CLUSTERS_NAMESPACE}/{name} to report a certificate error for {url} (GitPolling=False and Ready=False, naming the URL and a certificate)"
        ),
        || async {
            let repo = gitrepo(world, &name).await?;
            let polling = condition(&repo, "GitPolling");
            let ready = condition(&repo, "Ready");
            let says_certificate = |c: Option<&Value>| {
                c.is_some_and(|c| {
                    let message = c["message"].as_str().unwrap_or_default();
                    c["status"] == "False"
                        && message.contains(&url)
                        && message.to_lowercase().contains("certificate")
                })
            };
            if says_certificate(polling) && ready.is_some_and(|c| c["status"] == "False") {
                Ok(())
            } else {
                Err(format!(
                    "{}; {}",
                    describe(&repo, "GitPolling"),
                    describe(&repo, "Ready")
                ))
            }
        },
    )
    .await
}

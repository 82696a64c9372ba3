//! Fleet's bootstrap (`controllers/bootstrap`): the management cluster registers itself as the
//! Cluster `local` in the bootstrap namespace (`fleet-local`), imported through a kubeconfig
//! secret `local-cluster`, with a ClusterGroup `default` selecting it. Its agent inherits the
//! tolerations of the `fleet-controller` Deployment, so it can run wherever the controller runs
//! (e.g. on tainted control-plane nodes). Re-applied when those tolerations change.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fleet_api::consts::MANAGED_LABEL;
use fleet_api::{Cluster, ClusterGroup, ClusterGroupSpec, ClusterSpec};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use tokio_util::sync::CancellationToken;

use super::AgentManagementError;
use super::import::{API_SERVER_CA_KEY, API_SERVER_URL_KEY, KUBECONFIG_KEY, apply_objects};
use super::manifest::to_value;
use crate::Context;

/// Name of the local cluster and its kubeconfig secret.
pub const LOCAL_CLUSTER: &str = "local";
pub const LOCAL_CLUSTER_SECRET: &str = "local-cluster";
/// Name of the controller's Deployment, whose tolerations the local agent inherits.
pub const CONTROLLER_DEPLOYMENT: &str = crate::controllerdeployment::CONTROLLER_DEPLOYMENT_NAME;

/// What the local cluster is registered with.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LocalCluster {
    /// Kubeconfig of the management cluster, as the agent-deploying import will use it.
    pub kubeconfig: String,
    pub api_server_url: String,
    pub api_server_ca: String,
}

/// The objects of the bootstrap (Fleet's `OnConfig`): namespace, kubeconfig secret, the
/// Cluster `local` (labels `name: local`) and the ClusterGroup `default`.
pub fn bootstrap_objects(
    bootstrap_namespace: &str,
    agent_namespace: &str,
    local: &LocalCluster,
    controller_tolerations: &[Toleration],
) -> Vec<serde_json::Value> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(LOCAL_CLUSTER_SECRET.to_string()),
            namespace: Some(bootstrap_namespace.to_string()),
            labels: Some(BTreeMap::from([(
                MANAGED_LABEL.to_string(),
                "true".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            (
                KUBECONFIG_KEY.to_string(),
                ByteString(local.kubeconfig.as_bytes().to_vec()),
            ),
            (
                API_SERVER_URL_KEY.to_string(),
                ByteString(local.api_server_url.as_bytes().to_vec()),
            ),
            (
                API_SERVER_CA_KEY.to_string(),
                ByteString(local.api_server_ca.as_bytes().to_vec()),
            ),
        ])),
        ..Secret::default()
    };
    let name_label = BTreeMap::from([("name".to_string(), LOCAL_CLUSTER.to_string())]);
    let cluster = Cluster {
        metadata: ObjectMeta {
            name: Some(LOCAL_CLUSTER.to_string()),
            namespace: Some(bootstrap_namespace.to_string()),
            labels: Some(name_label.clone()),
            ..ObjectMeta::default()
        },
        spec: ClusterSpec {
            kube_config_secret: LOCAL_CLUSTER_SECRET.to_string(),
            agent_namespace: agent_namespace.to_string(),
            agent_tolerations: controller_tolerations.to_vec(),
            ..ClusterSpec::default()
        },
        status: None,
    };
    let group = ClusterGroup {
        metadata: ObjectMeta {
            name: Some("default".to_string()),
            namespace: Some(bootstrap_namespace.to_string()),
            ..ObjectMeta::default()
        },
        spec: ClusterGroupSpec {
            selector: Some(LabelSelector {
                match_labels: Some(name_label),
                match_expressions: None,
            }),
        },
        status: None,
    };
    let mut cluster_value = to_value(&cluster);
    // An empty list is left out by serde; applied as an explicit empty list it clears
    // tolerations the controller lost since the last bootstrap.
    cluster_value["spec"]["agentTolerations"] =
        serde_json::to_value(controller_tolerations).unwrap_or_default();
    vec![
        to_value(&Namespace {
            metadata: ObjectMeta {
                name: Some(bootstrap_namespace.to_string()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        }),
        to_value(&secret),
        cluster_value,
        to_value(&group),
    ]
}

/// The pod tolerations of the `fleet-controller` Deployment in `system_namespace` (empty when it
/// does not exist, e.g. when the controller runs outside the cluster); shared with the git jobs.
pub async fn fleet_controller_tolerations(
    client: &kube::Client,
    system_namespace: &str,
) -> Result<Vec<Toleration>, kube::Error> {
    crate::controllerdeployment::controller_tolerations(client, system_namespace).await
}

/// The management cluster as seen from inside a pod: the service account's token and CA.
fn in_cluster_local() -> Option<LocalCluster> {
    let host = std::env::var("KUBERNETES_SERVICE_HOST").ok()?;
    let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".to_string());
    let dir = std::path::Path::new("/var/run/secrets/kubernetes.io/serviceaccount");
    let token = std::fs::read_to_string(dir.join("token")).ok()?;
    let ca = std::fs::read_to_string(dir.join("ca.crt")).ok()?;
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let server = format!("https://{host}:{port}");
    Some(LocalCluster {
        kubeconfig: local_kubeconfig(&server, &ca, token.trim()),
        api_server_url: server,
        api_server_ca: ca,
    })
}

/// Fleet's `buildKubeConfig`: one cluster, one token user, context `default`.
pub fn local_kubeconfig(server: &str, ca_pem: &str, token: &str) -> String {
    use base64::Engine as _;
    let mut cluster = serde_json::json!({"server": server});
    if !ca_pem.is_empty() {
        cluster["certificate-authority-data"] =
            serde_json::json!(base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes()));
    }
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": "user", "user": {"token": token}}],
        "contexts": [{"name": "default", "context": {"cluster": "cluster", "user": "user"}}],
        "current-context": "default",
    });
    serde_norway::to_string(&doc).unwrap_or_default()
}

/// Runs the bootstrap until `shutdown`: applies the local cluster at start and whenever the
/// controller Deployment's tolerations change. Disabled with an empty (or `-`) bootstrap
/// namespace, or when there is no kubeconfig for the management cluster.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) -> Result<(), AgentManagementError> {
    let config = &ctx.config;
    if config.bootstrap_namespace.is_empty() || config.bootstrap_namespace == "-" {
        return Ok(());
    }
    let Some(local) = config
        .bootstrap_local_cluster
        .clone()
        .or_else(in_cluster_local)
    else {
        tracing::info!(
            "no kubeconfig for the management cluster: the local cluster is not bootstrapped"
        );
        return Ok(());
    };
    let mut applied: Option<Vec<Toleration>> = None;
    loop {
        match fleet_controller_tolerations(&ctx.client, &config.system_namespace).await {
            Ok(tolerations) if applied.as_ref() != Some(&tolerations) => {
                let objs = bootstrap_objects(
                    &config.bootstrap_namespace,
                    &config.bootstrap_agent_namespace,
                    &local,
                    &tolerations,
                );
                match apply_objects(&ctx.client, &objs).await {
                    Ok(()) => {
                        tracing::info!(namespace = %config.bootstrap_namespace, tolerations = tolerations.len(), "bootstrapped the local cluster");
                        applied = Some(tolerations);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "bootstrapping the local cluster failed, retrying")
                    }
                }
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, "reading the fleet-controller Deployment failed, retrying")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

//! How the controller reaches a downstream cluster it imports: from the kubeconfig in the
//! Cluster's `spec.kubeConfigSecret` to a client. The default parses the kubeconfig (server,
//! CA, token or client certificate) as kubectl would; the simulated system installs one that
//! resolves simulator URLs in-process.

use std::sync::Arc;

use futures::future::BoxFuture;

/// Why no client could be made for a kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("kubeconfig is not valid: {0}")]
    Kubeconfig(String),
    #[error("no client for server {server}: {message}")]
    Client { server: String, message: String },
}

/// Turns a kubeconfig (YAML text) into a client of the cluster it names.
pub trait DownstreamConnector: Send + Sync {
    fn connect<'a>(
        &'a self,
        kubeconfig: &'a str,
    ) -> BoxFuture<'a, Result<kube::Client, ConnectError>>;
}

/// The real connector: kube-rs' kubeconfig loader (current context).
#[derive(Debug, Default, Clone)]
pub struct KubeconfigConnector;

impl DownstreamConnector for KubeconfigConnector {
    fn connect<'a>(
        &'a self,
        kubeconfig: &'a str,
    ) -> BoxFuture<'a, Result<kube::Client, ConnectError>> {
        Box::pin(async move {
            let parsed = kube::config::Kubeconfig::from_yaml(kubeconfig)
                .map_err(|e| ConnectError::Kubeconfig(e.to_string()))?;
            let config = kube::Config::from_custom_kubeconfig(
                parsed,
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            .map_err(|e| ConnectError::Kubeconfig(e.to_string()))?;
            let server = config.cluster_url.to_string();
            kube::Client::try_from(config).map_err(|e| ConnectError::Client {
                server,
                message: e.to_string(),
            })
        })
    }
}

/// A connector held in the controller's configuration (cloneable, printable).
#[derive(Clone)]
pub struct SharedDownstreamConnector(pub Arc<dyn DownstreamConnector>);

impl SharedDownstreamConnector {
    pub fn new(connector: impl DownstreamConnector + 'static) -> Self {
        SharedDownstreamConnector(Arc::new(connector))
    }
}

impl Default for SharedDownstreamConnector {
    fn default() -> Self {
        SharedDownstreamConnector::new(KubeconfigConnector)
    }
}

impl std::fmt::Debug for SharedDownstreamConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DownstreamConnector")
    }
}

/// Server URL and bearer token of a kubeconfig's current context (enough for connectors that
/// resolve servers themselves, like the simulator's).
pub fn kubeconfig_server_and_token(kubeconfig: &str) -> Result<(String, String), ConnectError> {
    let doc: serde_json::Value =
        serde_norway::from_str(kubeconfig).map_err(|e| ConnectError::Kubeconfig(e.to_string()))?;
    let named = |list: &str, name: &str| {
        doc[list]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["name"].as_str() == Some(name)))
            .cloned()
            .unwrap_or_default()
    };
    let context_name = doc["current-context"]
        .as_str()
        .filter(|c| !c.is_empty())
        .or_else(|| doc["contexts"][0]["name"].as_str())
        .ok_or_else(|| ConnectError::Kubeconfig("no context".into()))?
        .to_string();
    let context = named("contexts", &context_name);
    let cluster_name = context["context"]["cluster"].as_str().unwrap_or_default();
    let server = named("clusters", cluster_name)["cluster"]["server"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ConnectError::Kubeconfig(format!("cluster {cluster_name:?} has no server")))?
        .to_string();
    let user = context["context"]["user"].as_str().unwrap_or_default();
    let token = named("users", user)["user"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    Ok((server, token))
}

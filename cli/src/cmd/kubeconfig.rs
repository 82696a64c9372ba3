//! Building kube clients from a kubeconfig path (or the usual inference when none is given).

use std::path::Path;

use anyhow::Context as _;

/// A client for the cluster in `path`, or from `KUBECONFIG` / `~/.kube/config` / the
/// in-cluster service account when `path` is `None`.
pub async fn client(path: Option<&Path>, what: &str) -> anyhow::Result<kube::Client> {
    let config = match path {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading the {what} kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            .with_context(|| format!("loading the {what} kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .with_context(|| format!("finding a kubeconfig for the {what} cluster"))?,
    };
    kube::Client::try_from(config)
        .with_context(|| format!("creating a client for the {what} cluster"))
}

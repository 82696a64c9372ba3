//! Waiting for Ctrl-C or SIGTERM, and running a long-lived component until then.

use anyhow::Context as _;

pub async fn wait() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("listening for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("listening for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("listening for Ctrl-C")?;
    Ok(())
}

/// Serves `registry` on `/metrics` at `metrics_addr` and runs `component` until it ends or
/// Ctrl-C/SIGTERM cancels it; `name` prefixes what is printed.
pub async fn run_with_metrics<F, Fut, E>(
    name: &str,
    metrics_addr: std::net::SocketAddr,
    registry: prometheus_client::registry::Registry,
    component: F,
) -> anyhow::Result<()>
where
    F: FnOnce(tokio_util::sync::CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let registry = std::sync::Arc::new(std::sync::Mutex::new(registry));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let metrics = tokio::spawn(fleet_cli::metrics::serve(
        metrics_addr,
        registry,
        shutdown.clone(),
    ));
    let signal_token = shutdown.clone();
    let signal_name = name.to_string();
    tokio::spawn(async move {
        if wait().await.is_ok() {
            eprintln!("{signal_name}: stopping");
        }
        signal_token.cancel();
    });
    let result = component(shutdown.clone()).await;
    shutdown.cancel();
    if let Ok(Err(err)) = metrics.await {
        eprintln!("{name}: metrics server on {metrics_addr}: {err}");
    }
    result.with_context(|| name.to_string())
}

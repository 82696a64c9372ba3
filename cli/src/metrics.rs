//! `/metrics` (Prometheus text format) and `/healthz` for `fleet controller` and `fleet agent`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;

/// Serves `registry` on `addr` until the task is dropped or `shutdown` is cancelled.
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Mutex<Registry>>,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(registry);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

async fn metrics(State(registry): State<Arc<Mutex<Registry>>>) -> impl IntoResponse {
    let mut body = String::new();
    let encoded = match registry.lock() {
        Ok(r) => prometheus_client::encoding::text::encode(&mut body, &r),
        Err(poisoned) => {
            prometheus_client::encoding::text::encode(&mut body, &poisoned.into_inner())
        }
    };
    match encoded {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {err}"),
        )
            .into_response(),
    }
}

//! Placeholder until this reconciler lands: waits for shutdown.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::Context;

#[derive(Debug, thiserror::Error)]
pub enum GitopsError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

pub async fn run(_ctx: Arc<Context>, shutdown: CancellationToken) -> Result<(), GitopsError> {
    shutdown.cancelled().await;
    Ok(())
}

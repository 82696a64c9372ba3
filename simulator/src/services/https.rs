//! HTTPS in front of the plain servers: a TLS listener forwarding to a backend address, and a
//! static file server (e.g. a Helm chart archive) behind it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use tokio_util::sync::CancellationToken;

use super::{ServiceError, TestCa};

/// A TLS listener on 127.0.0.1 with a certificate signed by `ca`, forwarding every connection
/// to the plain server at `backend` until `stop` is cancelled. Returns the listener's address.
pub async fn tls_front(
    backend: SocketAddr,
    ca: &TestCa,
    stop: CancellationToken,
) -> Result<SocketAddr, ServiceError> {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(ca.server_config()?));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(ServiceError::io("binding the TLS front on 127.0.0.1"))?;
    let addr = listener
        .local_addr()
        .map_err(ServiceError::io("reading the TLS front's address"))?;
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let Ok((tcp, _)) = accepted else { continue };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that does not trust the CA aborts the handshake here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    Ok(addr)
}

/// Fixed files by path over HTTPS on 127.0.0.1, with a certificate signed by a [`TestCa`];
/// stops when dropped.
pub struct StaticHttpsServer {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
}

type Files = Arc<BTreeMap<String, Vec<u8>>>;

async fn serve_file(State(files): State<Files>, request: Request) -> Response {
    match files.get(request.uri().path()) {
        Some(body) => Response::new(Body::from(body.clone())),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

impl StaticHttpsServer {
    /// Serves `files` (path such as `/charts/app-1.0.0.tgz` → content).
    pub async fn start(files: Vec<(String, Vec<u8>)>, ca: &TestCa) -> Result<Self, ServiceError> {
        let files: Files = Arc::new(files.into_iter().collect());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(ServiceError::io("binding the file server on 127.0.0.1"))?;
        let backend = listener
            .local_addr()
            .map_err(ServiceError::io("reading the file server's address"))?;
        let app = axum::Router::new().fallback(serve_file).with_state(files);
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        });
        let addr = tls_front(backend, ca, shutdown.clone()).await?;
        Ok(StaticHttpsServer { addr, shutdown })
    }
}

impl Drop for StaticHttpsServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

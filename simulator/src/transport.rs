//! Transports: an in-process `tower::Service` (what `kube::Client::new` takes, no sockets) and
//! one loopback HTTPS listener serving every cluster under `/clusters/<name>`, authenticating
//! bearer tokens like kube-apiserver (plain HTTP on request, for debugging).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::BodyExt;

use crate::api::{self, MAX_REQUEST_BYTES, RequestContext};
use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::tls::{ServingCerts, TlsListener};
use crate::{ClusterInner, SimError, SimInner};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The in-process transport of one cluster: give it to `kube::Client::new`.
#[derive(Clone)]
pub struct InProcessService {
    pub(crate) cluster: Arc<ClusterInner>,
    /// The bearer token every request carries; `None`: the unauthenticated admin.
    pub(crate) token: Option<Arc<str>>,
}

impl std::fmt::Debug for InProcessService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessService")
            .field("cluster", &self.cluster.state.name)
            .field("authenticated", &self.token.is_some())
            .finish()
    }
}

impl<B> tower::Service<Request<B>> for InProcessService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let cluster = self.cluster.clone();
        let token = self.token.clone();
        Box::pin(async move {
            let user = match &token {
                None => None,
                Some(t) => match cluster.authenticate(t) {
                    Some(u) => Some(u),
                    None => return Ok(api::error_response(&ApiError::unauthorized())),
                },
            };
            let (parts, body) = req.into_parts();
            let limited = http_body_util::Limited::new(body, MAX_REQUEST_BYTES);
            let bytes = match limited.collect().await {
                Ok(c) => c.to_bytes(),
                Err(_) => {
                    return Ok(api::error_response(&ApiError::too_large_request(
                        MAX_REQUEST_BYTES,
                    )));
                }
            };
            Ok(serve_cluster(&cluster, user, Request::from_parts(parts, bytes)).await)
        })
    }
}

/// Kubernetes verb of a request, for fault decisions.
fn verb_of(req: &Request<Bytes>) -> (&'static str, String, bool) {
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");
    let is_watch = query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1")
        || path.contains("/watch/");
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let resource_segs: &[&str] = match segs.as_slice() {
        ["api", _, rest @ ..] => rest,
        ["apis", _, _, rest @ ..] => rest,
        _ => &[],
    };
    let rest: Vec<&str> = resource_segs
        .iter()
        .copied()
        .filter(|s| *s != "watch")
        .collect();
    let (resource, has_name) = match rest.as_slice() {
        ["namespaces", _, plural, tail @ ..] => (plural.to_string(), !tail.is_empty()),
        ["namespaces", name] => ("namespaces".to_string(), !name.is_empty()),
        [plural, tail @ ..] => (plural.to_string(), !tail.is_empty()),
        [] => (path.to_string(), true),
    };
    let verb = match (req.method().as_str(), has_name, is_watch) {
        ("GET", _, true) => "watch",
        ("GET", true, _) => "get",
        ("GET", false, _) => "list",
        ("POST", _, _) => "create",
        ("PUT", _, _) => "update",
        ("PATCH", _, _) => "patch",
        ("DELETE", true, _) => "delete",
        ("DELETE", false, _) => "deletecollection",
        _ => "get",
    };
    (verb, resource, is_watch)
}

/// Serves one request of `user` (`None`: the in-process admin) to one cluster, after fault
/// injection.
pub(crate) async fn serve_cluster(
    cluster: &Arc<ClusterInner>,
    user: Option<Arc<UserInfo>>,
    req: Request<Bytes>,
) -> Response<Body> {
    let requester = user.clone().unwrap_or_else(|| Arc::new(UserInfo::admin()));
    let user = match crate::rbac::impersonate(&cluster.state.rbac, &requester, req.headers()) {
        Ok(Some(acting_as)) => {
            tracing::trace!(cluster = %cluster.state.name, requester = %requester.name, user = %acting_as.name, "impersonation");
            Some(Arc::new(acting_as))
        }
        Ok(None) => user,
        Err(e) => return api::error_response(&e),
    };
    let mut ctx = RequestContext {
        user,
        ..Default::default()
    };
    let decision = {
        let (verb, resource, is_watch) = verb_of(&req);
        let service_account = ctx
            .user
            .as_ref()
            .is_some_and(|u| crate::auth::split_service_account(&u.name).is_some());
        cluster.count_request(verb, &resource, service_account);
        cluster.decide(verb, &resource, is_watch)
    };
    match decision {
        crate::faults::Decision::Pass => {}
        crate::faults::Decision::Delay(d) => tokio::time::sleep(d).await,
        crate::faults::Decision::DropWatchAfter(d) => ctx.drop_watch_after = Some(d),
        crate::faults::Decision::Fail {
            code,
            reason,
            message,
        } => {
            let retry = crate::faults::Decision::Fail {
                code,
                reason: reason.clone(),
                message: message.clone(),
            }
            .retry_after_seconds();
            let mut resp =
                api::json_response(code, &crate::faults::status_body(code, &reason, &message));
            if let Some(s) = retry
                && let Ok(v) = HeaderValue::from_str(&s.to_string())
            {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
    }
    api::handle(&cluster.state, req, ctx).await
}

fn bearer(req: &Request<Body>) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

async fn http_entry(
    sim: Arc<SimInner>,
    tls: bool,
    req: Request<Body>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix("/clusters/") else {
        if path == "/" || path == "/clusters" {
            let names: Vec<String> = sim.cluster_names();
            return Ok(api::json_response(
                200,
                &serde_json::json!({"clusters": names}),
            ));
        }
        return Ok(api::error_response(&ApiError::not_found_path()));
    };
    let (name, tail) = match rest.split_once('/') {
        Some((n, t)) => (n.to_string(), format!("/{t}")),
        None => (rest.to_string(), "/".to_string()),
    };
    let Some(cluster) = sim.cluster_inner(&name) else {
        return Ok(api::error_response(&ApiError::not_found_path()));
    };
    // Over HTTPS every request authenticates, as with kube-apiserver (anonymous auth off). Over
    // the plain-HTTP debugging listener kubectl (client-go) withholds bearer tokens, so a request
    // without one is served as the cluster admin (as `kubectl proxy` does); a token that is
    // presented must still be valid.
    let user = match bearer(&req) {
        Some(t) => cluster.authenticate(t),
        None if !tls => Some(Arc::new(UserInfo::admin())),
        None => None,
    };
    let Some(user) = user else {
        return Ok(api::error_response(&ApiError::unauthorized()));
    };
    tracing::trace!(cluster = %name, user = %user.name, path = %tail, "authenticated request");
    let (mut parts, body) = req.into_parts();
    let pq = match parts.uri.query() {
        Some(q) => format!("{tail}?{q}"),
        None => tail,
    };
    parts.uri = match pq.parse() {
        Ok(u) => u,
        Err(_) => {
            return Ok(api::error_response(&ApiError::bad_request(
                "invalid request URI",
            )));
        }
    };
    let bytes = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return Ok(api::error_response(&ApiError::too_large_request(
                MAX_REQUEST_BYTES,
            )));
        }
    };
    Ok(serve_cluster(&cluster, Some(user), Request::from_parts(parts, bytes)).await)
}

/// How [`crate::Simulator::serve_with`] listens.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Plain HTTP instead of HTTPS (debugging): requests without a token act as the admin.
    pub plain_http: bool,
}

/// A running loopback listener. Dropping it does not stop it; call [`ServeHandle::shutdown`].
#[derive(Debug)]
pub struct ServeHandle {
    addr: SocketAddr,
    certs: Option<Arc<ServingCerts>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl ServeHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT` (or `http://` when serving plain HTTP).
    pub fn base_url(&self) -> String {
        let scheme = if self.certs.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// `https://127.0.0.1:PORT/clusters/<name>`: the server URL of one cluster.
    pub fn cluster_url(&self, name: &str) -> String {
        format!("{}/clusters/{name}", self.base_url())
    }

    /// The CA (PEM) that signed the listener's certificate; `None` for plain HTTP.
    pub fn ca_pem(&self) -> Option<&str> {
        self.certs.as_deref().map(ServingCerts::ca_pem)
    }

    /// Stops accepting, lets requests in flight finish for up to two seconds (watches are cut).
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if tokio::time::timeout(Duration::from_secs(2), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

pub(crate) async fn serve(
    sim: Arc<SimInner>,
    addr: SocketAddr,
    certs: Option<Arc<ServingCerts>>,
) -> Result<ServeHandle, SimError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| SimError::Bind { addr, source })?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let tls = certs.is_some();
    let svc = tower::service_fn(move |req: Request<Body>| http_entry(sim.clone(), tls, req));
    let router = axum::Router::new().fallback_service(svc);
    let stop = async move {
        let _ = rx.await;
    };
    let task = match &certs {
        Some(c) => {
            let listener = TlsListener {
                tcp: listener,
                acceptor: c.acceptor()?,
            };
            tokio::spawn(async move {
                let server = axum::serve(listener, router).with_graceful_shutdown(stop);
                if let Err(e) = server.await {
                    tracing::warn!(error = %e, "simulator HTTPS listener stopped");
                }
            })
        }
        None => tokio::spawn(async move {
            let server = axum::serve(listener, router).with_graceful_shutdown(stop);
            if let Err(e) = server.await {
                tracing::warn!(error = %e, "simulator HTTP listener stopped");
            }
        }),
    };
    Ok(ServeHandle {
        addr,
        certs,
        shutdown: Some(tx),
        task,
    })
}

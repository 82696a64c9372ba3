//! A git server speaking the smart HTTP protocol on 127.0.0.1: `git http-backend` run as CGI
//! behind axum, with basic auth, optionally behind a TLS front whose certificate a [`TestCa`]
//! signed (git over HTTPS with a private CA, as behind a corporate proxy).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse as _, Response};
use base64::Engine as _;
use tokio::io::AsyncWriteExt as _;
use tokio_util::sync::CancellationToken;

use super::git::{GitWorkdir, run_git};
use super::{ServiceError, TestCa, tls_front};

/// Serves the bare repositories under a temporary root as `<scheme>://127.0.0.1:<port>/<name>.git`,
/// requiring basic auth; stops when dropped.
pub struct GitHttpServer {
    /// The plain HTTP listener (behind the TLS front for https).
    pub addr: SocketAddr,
    root: tempfile::TempDir,
    scheme: &'static str,
    /// Where clients connect: `addr`, or the TLS front for https.
    public_addr: SocketAddr,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for GitHttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GitHttpServer({}://{})", self.scheme, self.public_addr)
    }
}

struct ServerState {
    root: PathBuf,
    expected_auth: String,
}

impl GitHttpServer {
    /// Over plain HTTP with basic auth `user:password`.
    pub async fn start(user: &str, password: &str) -> Result<Self, ServiceError> {
        let root =
            tempfile::tempdir().map_err(ServiceError::io("creating the git server's root"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(ServiceError::io("binding the git server on 127.0.0.1"))?;
        let addr = listener
            .local_addr()
            .map_err(ServiceError::io("reading the git server's address"))?;
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let state = Arc::new(ServerState {
            root: root.path().to_path_buf(),
            expected_auth: format!("Basic {credentials}"),
        });
        let app = axum::Router::new().fallback(cgi).with_state(state);
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        });
        Ok(GitHttpServer {
            addr,
            root,
            scheme: "http",
            public_addr: addr,
            shutdown,
        })
    }

    /// Like [`Self::start`], but over HTTPS with a certificate signed by `ca`: clients must
    /// trust `ca` to fetch.
    pub async fn start_https(
        user: &str,
        password: &str,
        ca: &TestCa,
    ) -> Result<Self, ServiceError> {
        let mut server = Self::start(user, password).await?;
        server.public_addr = tls_front(server.addr, ca, server.shutdown.clone()).await?;
        server.scheme = "https";
        Ok(server)
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        self.scheme
    }

    /// The address clients connect to.
    pub fn public_addr(&self) -> SocketAddr {
        self.public_addr
    }

    /// The URL of the repository published as `name`.
    pub fn url(&self, name: &str) -> String {
        format!("{}://{}/{name}.git", self.scheme, self.public_addr)
    }

    fn bare(&self, name: &str) -> PathBuf {
        self.root.path().join(format!("{name}.git"))
    }

    /// Publishes `repo` as `<name>.git` (a bare clone, refreshed by [`Self::push`]); returns
    /// its URL.
    pub fn publish(&self, repo: &GitWorkdir, name: &str) -> Result<String, ServiceError> {
        let source = repo.path().display().to_string();
        let bare = self.bare(name).display().to_string();
        run_git(self.root.path(), &["clone", "-q", "--bare", &source, &bare])?;
        Ok(self.url(name))
    }

    /// Pushes the repository's branch and tags to the published copy `name`.
    pub fn push(&self, repo: &GitWorkdir, name: &str) -> Result<(), ServiceError> {
        repo.push_to(&self.bare(name))
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn cgi(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let authorized = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(state.expected_auth.as_str());
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            [("WWW-Authenticate", "Basic realm=\"git\"")],
            "authentication required",
        )
            .into_response();
    }
    let body: Bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    match run_http_backend(&state.root, &parts.method, &parts.uri, &parts.headers, body).await {
        Ok(response) => response,
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Runs `git http-backend` for one request (CGI: request in the environment and stdin,
/// response headers and body on stdout).
async fn run_http_backend(
    root: &Path,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ServiceError> {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut child = tokio::process::Command::new("git")
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("PATH_INFO", uri.path())
        .env("QUERY_STRING", uri.query().unwrap_or(""))
        .env("REQUEST_METHOD", method.as_str())
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_USER", "fleet")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(ServiceError::io("spawning git http-backend"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&body).await;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(ServiceError::io("running git http-backend"))?;
    let raw = out.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, sep)) = split else {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        return Ok((StatusCode::INTERNAL_SERVER_ERROR, stderr).into_response());
    };
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut response = Response::builder();
    let mut status = StatusCode::OK;
    for line in head.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("status") {
            if let Some(code) = v
                .split_whitespace()
                .next()
                .and_then(|c| c.parse::<u16>().ok())
            {
                status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
            }
        } else {
            response = response.header(k.trim(), v);
        }
    }
    Ok(response
        .status(status)
        .body(Body::from(raw[end + sep..].to_vec()))
        .unwrap_or_default())
}

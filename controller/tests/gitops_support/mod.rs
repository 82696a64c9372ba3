//! Test fixtures for the GitRepo controller: local git repositories made with the `git` CLI,
//! a git smart-HTTP server on 127.0.0.1 (`git http-backend` as CGI, with basic auth), and an
//! upstream simulator running the GitRepo reconciler.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use fleet_controller::{Context, ControllerConfig, Metrics};
use fleet_simulator::{SimConfig, Simulator};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// A git repository in a temporary folder, changed with the `git` CLI.
pub struct LocalRepo {
    pub dir: tempfile::TempDir,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=fleet-test",
            "-c",
            "user.email=test@example.com",
        ])
        .args([
            "-c",
            "init.defaultBranch=master",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("running git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl LocalRepo {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        git(dir.path(), &["init", "-q"]);
        LocalRepo { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    pub fn write(&self, file: &str, content: &str) {
        let p = self.path().join(file);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }

    pub fn remove(&self, path: &str) {
        git(self.path(), &["rm", "-r", "-q", path]);
    }

    /// Commits everything; returns the new commit SHA.
    pub fn commit(&self, message: &str) -> String {
        git(self.path(), &["add", "-A"]);
        git(self.path(), &["commit", "-q", "-m", message]);
        git(self.path(), &["rev-parse", "HEAD"])
    }

    pub fn tag(&self, name: &str) {
        git(self.path(), &["tag", "-a", name, "-m", name]);
    }
}

/// A `ConfigMap` manifest.
pub fn configmap(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"{value}\"\n"
    )
}

/// Serves the bare repositories under `root` over git's smart HTTP protocol on 127.0.0.1,
/// requiring basic auth `user:password`.
pub struct GitHttpServer {
    pub addr: std::net::SocketAddr,
    pub root: tempfile::TempDir,
    /// `http`, or `https` when started by [`GitHttpServer::start_https`].
    scheme: &'static str,
    /// Where clients connect (the TLS listener for https).
    public_addr: std::net::SocketAddr,
    shutdown: CancellationToken,
}

/// A self-signed CA for test servers on 127.0.0.1.
pub struct TestCa {
    pub pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A TLS server configuration for 127.0.0.1 with a certificate this CA signed.
    fn server_config(&self) -> tokio_rustls::rustls::ServerConfig {
        use tokio_rustls::rustls;
        let key = rcgen::KeyPair::generate().expect("server key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("server params");
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress(std::net::IpAddr::from([
                127, 0, 0, 1,
            ])));
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("server config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }
}

struct ServerState {
    root: PathBuf,
    expected_auth: String,
}

impl GitHttpServer {
    pub async fn start(user: &str, password: &str) -> Self {
        use base64::Engine as _;
        let root = tempfile::tempdir().expect("tempdir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(ServerState {
            root: root.path().to_path_buf(),
            expected_auth: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
        });
        let app = axum::Router::new().fallback(cgi).with_state(state);
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        });
        GitHttpServer {
            addr,
            root,
            scheme: "http",
            public_addr: addr,
            shutdown,
        }
    }

    /// Like [`Self::start`], but over HTTPS with a certificate signed by `ca` (a TLS listener
    /// in front of the HTTP server; clients must trust `ca`).
    pub async fn start_https(user: &str, password: &str, ca: &TestCa) -> Self {
        let mut server = Self::start(user, password).await;
        server.public_addr = tls_front(server.addr, ca, server.shutdown.clone()).await;
        server.scheme = "https";
        server
    }

    /// Publishes `repo` as `<name>.git` (a bare clone, refreshed by [`Self::push`]).
    pub fn publish(&self, repo: &LocalRepo, name: &str) -> String {
        let bare = self.root.path().join(format!("{name}.git"));
        git(
            self.root.path(),
            &[
                "clone",
                "-q",
                "--bare",
                &repo.path().display().to_string(),
                &bare.display().to_string(),
            ],
        );
        format!("{}://{}/{name}.git", self.scheme, self.public_addr)
    }

    /// Pushes the repository's master branch and tags to the published copy.
    pub fn push(&self, repo: &LocalRepo, name: &str) {
        let bare = self.root.path().join(format!("{name}.git"));
        git(
            repo.path(),
            &[
                "push",
                "-q",
                "--force",
                "--tags",
                &bare.display().to_string(),
                "master",
            ],
        );
    }
}

/// A TLS listener on 127.0.0.1 (certificate signed by `ca`) forwarding every connection to
/// the plain server at `backend`, until `stop`. Returns its address.
async fn tls_front(
    backend: std::net::SocketAddr,
    ca: &TestCa,
    stop: CancellationToken,
) -> std::net::SocketAddr {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(ca.server_config()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
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
    addr
}

/// Static files over HTTPS on 127.0.0.1 (e.g. a Helm chart archive), with a certificate
/// signed by `ca`.
pub struct StaticHttpsServer {
    pub addr: std::net::SocketAddr,
    shutdown: CancellationToken,
}

impl StaticHttpsServer {
    pub async fn start(files: Vec<(String, Vec<u8>)>, ca: &TestCa) -> Self {
        let files: Arc<std::collections::BTreeMap<String, Vec<u8>>> =
            Arc::new(files.into_iter().collect());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let backend = listener.local_addr().expect("addr");
        let app = axum::Router::new()
            .fallback(
                |State(files): State<Arc<std::collections::BTreeMap<String, Vec<u8>>>>,
                 request: Request| async move {
                    match files.get(request.uri().path()) {
                        Some(body) => Response::new(Body::from(body.clone())),
                        None => Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body(Body::empty())
                            .unwrap_or_default(),
                    }
                },
            )
            .with_state(files);
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        });
        let addr = tls_front(backend, ca, shutdown.clone()).await;
        StaticHttpsServer { addr, shutdown }
    }
}

impl Drop for StaticHttpsServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A packaged Helm chart `name-version.tgz` with one ConfigMap template (made with `tar`).
pub fn chart_archive(name: &str, version: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let chart = dir.path().join(name);
    std::fs::create_dir_all(chart.join("templates")).expect("mkdir");
    std::fs::write(
        chart.join("Chart.yaml"),
        format!("apiVersion: v2\nname: {name}\nversion: {version}\n"),
    )
    .expect("Chart.yaml");
    std::fs::write(
        chart.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-chart\ndata:\n  release: {{ .Release.Name }}\n",
    )
    .expect("template");
    let archive = dir.path().join("chart.tgz");
    let out = Command::new("tar")
        .arg("czf")
        .arg(&archive)
        .arg("-C")
        .arg(dir.path())
        .arg(name)
        .output()
        .expect("running tar");
    assert!(
        out.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(archive).expect("archive")
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
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("WWW-Authenticate", "Basic realm=\"git\"")
            .body(Body::from("authentication required"))
            .unwrap_or_default();
    }
    let body: Bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    run_http_backend(&state.root, &parts.method, &parts.uri, &parts.headers, body).await
}

async fn run_http_backend(
    root: &Path,
    method: &Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
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
        .expect("spawning git http-backend");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&body).await;
    }
    let out = child.wait_with_output().await.expect("git http-backend");
    let raw = out.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, sep)) = split else {
        return Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .body(Body::from(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ))
            .unwrap_or_default();
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
    response
        .status(status)
        .body(Body::from(raw[end + sep..].to_vec()))
        .unwrap_or_default()
}

/// An upstream simulator with Fleet's CRDs and the GitRepo reconciler running.
pub struct Upstream {
    pub sim: Simulator,
    pub client: kube::Client,
    pub ctx: Arc<Context>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _cache: tempfile::TempDir,
}

impl Upstream {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut ControllerConfig)) -> Self {
        Self::start_on(SimConfig::default(), tweak).await
    }

    /// An upstream on a simulator configured by `sim_config` (e.g. a behaviour profile with
    /// tainted nodes).
    pub async fn start_on(
        sim_config: SimConfig,
        tweak: impl FnOnce(&mut ControllerConfig),
    ) -> Self {
        let sim = Simulator::new(sim_config);
        let up = sim.add_cluster("upstream").expect("cluster");
        up.install_crds(&fleet_api::crds::all()).expect("crds");
        let client = up.client();
        for ns in [
            "fleet-local",
            "fleet-default",
            "cattle-fleet-system",
            "cattle-system",
        ] {
            let api: Api<Namespace> = Api::all(client.clone());
            let obj: Namespace =
                serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))
                    .expect("namespace");
            let _ = api.create(&PostParams::default(), &obj).await;
        }
        let cache = tempfile::tempdir().expect("tempdir");
        let mut config = ControllerConfig {
            git_cache_dir: cache.path().to_path_buf(),
            jitter_seed: Some(7),
            gitrepo_workers: 4,
            gitrepo_build_workers: 2,
            default_polling_interval: Duration::from_secs(1),
            git_client_timeout: Duration::from_secs(20),
            ..Default::default()
        };
        tweak(&mut config);
        let mut registry = prometheus_client::registry::Registry::default();
        let ctx = Arc::new(Context {
            client: client.clone(),
            config,
            metrics: Metrics::new(&mut registry),
        });
        let shutdown = CancellationToken::new();
        let task = {
            let ctx = ctx.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                if let Err(e) = fleet_controller::gitops::run(ctx, shutdown).await {
                    panic!("gitops controller failed: {e}");
                }
            })
        };
        Upstream {
            sim,
            client,
            ctx,
            shutdown,
            task,
            _cache: cache,
        }
    }

    /// Whether the controller task is still running (it must survive bad input).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

/// Polls `check` every 200 ms until it returns `Some`, failing after `secs` seconds with
/// the last observation.
pub async fn eventually<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let last = match check().await {
            Ok(v) => return v,
            Err(e) => e,
        };
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}; last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

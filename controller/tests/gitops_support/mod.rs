//! Test fixtures for the GitRepo controller: local git repositories, a git smart-HTTP(S)
//! server on 127.0.0.1 with basic auth, a test CA, static files over HTTPS, and an upstream
//! simulator running the GitRepo reconciler. The servers live in
//! `fleet_simulator::services` (shared with the Gherkin features); these wrappers keep the
//! tests' panicking, infallible style.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fleet_controller::{Context, ControllerConfig, Metrics};
use fleet_simulator::services;
use fleet_simulator::{SimConfig, Simulator};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;

/// A git repository in a temporary folder (branch `master`), changed with the `git` CLI.
pub struct LocalRepo {
    pub workdir: services::GitWorkdir,
}

impl LocalRepo {
    pub fn new() -> Self {
        LocalRepo {
            workdir: services::GitWorkdir::init("master").expect("git init"),
        }
    }

    pub fn path(&self) -> &Path {
        self.workdir.path()
    }

    pub fn url(&self) -> String {
        self.workdir.url()
    }

    pub fn write(&self, file: &str, content: &str) {
        self.workdir.write(file, content).expect("write");
    }

    pub fn remove(&self, path: &str) {
        self.workdir.remove(path).expect("remove");
    }

    /// Commits everything; returns the new commit SHA.
    pub fn commit(&self, message: &str) -> String {
        self.workdir.commit(message).expect("git commit")
    }

    pub fn tag(&self, name: &str) {
        self.workdir.tag(name).expect("git tag");
    }
}

/// A `ConfigMap` manifest.
pub fn configmap(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"{value}\"\n"
    )
}

/// A self-signed CA for test servers on 127.0.0.1 ([`services::TestCa`]).
pub struct TestCa {
    pub pem: String,
    pub ca: services::TestCa,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let ca = services::TestCa::new(name).expect("test CA");
        TestCa {
            pem: ca.pem().to_string(),
            ca,
        }
    }
}

/// Serves the bare repositories it publishes over git's smart HTTP protocol on 127.0.0.1,
/// requiring basic auth `user:password` ([`services::GitHttpServer`]).
pub struct GitHttpServer {
    pub addr: std::net::SocketAddr,
    pub server: services::GitHttpServer,
}

impl GitHttpServer {
    pub async fn start(user: &str, password: &str) -> Self {
        Self::wrap(services::GitHttpServer::start(user, password).await)
    }

    /// Over HTTPS with a certificate signed by `ca` (clients must trust `ca`).
    pub async fn start_https(user: &str, password: &str, ca: &TestCa) -> Self {
        Self::wrap(services::GitHttpServer::start_https(user, password, &ca.ca).await)
    }

    fn wrap(server: Result<services::GitHttpServer, services::ServiceError>) -> Self {
        let server = server.expect("starting the git server");
        GitHttpServer {
            addr: server.addr,
            server,
        }
    }

    /// Publishes `repo` as `<name>.git`; returns its URL.
    pub fn publish(&self, repo: &LocalRepo, name: &str) -> String {
        self.server
            .publish(&repo.workdir, name)
            .expect("publishing")
    }

    /// Pushes the repository's master branch and tags to the published copy.
    pub fn push(&self, repo: &LocalRepo, name: &str) {
        self.server.push(&repo.workdir, name).expect("pushing");
    }
}

/// Static files over HTTPS on 127.0.0.1 (e.g. a Helm chart archive), with a certificate
/// signed by `ca`.
pub struct StaticHttpsServer {
    pub addr: std::net::SocketAddr,
    _server: services::StaticHttpsServer,
}

impl StaticHttpsServer {
    pub async fn start(files: Vec<(String, Vec<u8>)>, ca: &TestCa) -> Self {
        let server = services::StaticHttpsServer::start(files, &ca.ca)
            .await
            .expect("starting the file server");
        StaticHttpsServer {
            addr: server.addr,
            _server: server,
        }
    }
}

/// A packaged Helm chart `name-version.tgz` with one ConfigMap `from-chart` naming the release.
pub fn chart_archive(name: &str, version: &str) -> Vec<u8> {
    services::chart_archive(
        name,
        version,
        "",
        &[(
            "cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-chart\ndata:\n  release: {{ .Release.Name }}\n",
        )],
    )
    .expect("packaging the chart")
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
        let ctx = Arc::new(Context::new(
            client.clone(),
            config,
            Metrics::new(&mut registry),
        ));
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

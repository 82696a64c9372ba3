//! Services of the simulated environment that Fleet reaches besides Kubernetes: a git server
//! over smart HTTP(S) (`git http-backend` behind an optional TLS front), a Helm chart
//! repository, static files over HTTPS, and the certificate authority their certificates come
//! from. All listen on 127.0.0.1 only. The controller's integration tests, the CLI's end-to-end
//! tests and the Gherkin features share them, so that a scenario and a test see the same servers.

mod chart_repo;
mod git;
mod git_http;
mod https;
mod test_ca;

pub use chart_repo::{ChartRepo, chart_archive, configmap_chart, dead_url};
pub use git::GitWorkdir;
pub use git_http::GitHttpServer;
pub use https::{StaticHttpsServer, tls_front};
pub use test_ca::TestCa;

/// Why a simulated service could not be set up or changed.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("git {args:?} in {dir} failed: {stderr}")]
    Git {
        args: Vec<String>,
        dir: String,
        stderr: String,
    },
    #[error("generating the {what} of test CA {ca}: {source}")]
    Certificate {
        ca: String,
        what: &'static str,
        source: rcgen::Error,
    },
    #[error("configuring TLS for a server of test CA {ca}: {source}")]
    Tls {
        ca: String,
        source: tokio_rustls::rustls::Error,
    },
    #[error("packaging chart {chart}: {message}")]
    Package { chart: String, message: String },
}

impl ServiceError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| ServiceError::Io { what, source }
    }
}

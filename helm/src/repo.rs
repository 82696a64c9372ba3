//! Chart repositories: `index.yaml` over HTTP(S), semver constraint selection, chart download with
//! digest check. Basic-auth credentials go only to the repository's own scheme/host/port unless
//! `pass_credentials_all` is set (Helm's `--pass-credentials`).

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use serde::Deserialize;
use sha2::Digest;

use crate::chart::Chart;
use crate::error::HelmError;
use crate::funcs::semver::{Constraints, Version};

/// Largest index or chart archive we download.
pub const MAX_DOWNLOAD_BYTES: u64 = 128 << 20;

/// How to talk to a repository.
#[derive(Debug, Clone, Default)]
pub struct RepoOptions {
    pub username: Option<String>,
    pub password: Option<String>,
    /// PEM bundle of CA certificates trusted for HTTPS (instead of the built-in roots).
    pub ca_bundle: Option<Vec<u8>>,
    pub insecure_skip_tls_verify: bool,
    /// Send credentials to chart URLs on other hosts too.
    pub pass_credentials_all: bool,
}

/// One chart version of an index.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ChartVersion {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default)]
    pub digest: String,
    #[serde(default, rename = "appVersion")]
    pub app_version: String,
}

/// A repository's `index.yaml`.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct IndexFile {
    #[serde(default)]
    pub entries: BTreeMap<String, Vec<ChartVersion>>,
}

impl IndexFile {
    pub fn parse(text: &str) -> Result<IndexFile, HelmError> {
        serde_norway::from_str(text)
            .map_err(|e| HelmError::Repo(format!("parsing index.yaml: {e}")))
    }

    /// The highest version of `name` matching `constraint` (empty: the latest stable version).
    pub fn get(&self, name: &str, constraint: &str) -> Result<&ChartVersion, HelmError> {
        let versions = self.entries.get(name).ok_or_else(|| {
            HelmError::Repo(format!("chart {name:?} not found in repository index"))
        })?;
        let c = if constraint.trim().is_empty() {
            ">=0.0.0"
        } else {
            constraint
        };
        let cons = Constraints::parse(c)
            .map_err(|e| HelmError::Repo(format!("invalid version constraint {c:?}: {e}")))?;
        let mut best: Option<(&ChartVersion, Version)> = None;
        for cv in versions {
            let Ok(v) = Version::parse(&cv.version) else {
                continue;
            };
            // an exact version string matches even when it is a pre-release
            if !(cons.matches(&v) || cv.version == constraint) {
                continue;
            }
            if best.as_ref().is_none_or(|(_, b)| v.compare(b).is_gt()) {
                best = Some((cv, v));
            }
        }
        best.map(|(cv, _)| cv).ok_or_else(|| {
            HelmError::Repo(format!(
                "chart {name:?} version {constraint:?} not found in repository index"
            ))
        })
    }
}

/// `scheme://host:port` of a URL, for the credentials rule.
fn origin(u: &url::Url) -> String {
    format!(
        "{}://{}:{}",
        u.scheme(),
        u.host_str().unwrap_or(""),
        u.port_or_known_default().unwrap_or(0)
    )
}

fn agent(opts: &RepoOptions) -> Result<ureq::Agent, HelmError> {
    use ureq::tls::{RootCerts, TlsConfig};
    let mut tls = TlsConfig::builder();
    if let Some(pem) = &opts.ca_bundle {
        let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(HelmError::Repo(
                "the CA bundle holds no PEM certificates".into(),
            ));
        }
        tls = tls.root_certs(RootCerts::Specific(Arc::new(certs)));
    }
    if opts.insecure_skip_tls_verify {
        tls = tls.disable_verification(true);
    }
    let config = ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(120)))
        .build();
    Ok(config.new_agent())
}

fn get(
    agent: &ureq::Agent,
    u: &url::Url,
    auth: Option<(&str, &str)>,
) -> Result<Vec<u8>, HelmError> {
    let mut req = agent.get(u.as_str());
    if let Some((user, pass)) = auth {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        req = req.header("Authorization", &format!("Basic {token}"));
    }
    let resp = req
        .call()
        .map_err(|e| HelmError::Repo(format!("fetching {u}: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(HelmError::Repo(format!(
            "fetching {u}: {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )));
    }
    let mut buf = Vec::new();
    resp.into_body()
        .into_reader()
        .take(MAX_DOWNLOAD_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| HelmError::Repo(format!("reading {u}: {e}")))?;
    if buf.len() as u64 > MAX_DOWNLOAD_BYTES {
        return Err(HelmError::Repo(format!(
            "{u} is larger than {MAX_DOWNLOAD_BYTES} bytes"
        )));
    }
    Ok(buf)
}

fn repo_base(repo_url: &str) -> Result<url::Url, HelmError> {
    let with_slash = if repo_url.ends_with('/') {
        repo_url.to_string()
    } else {
        format!("{repo_url}/")
    };
    url::Url::parse(&with_slash)
        .map_err(|e| HelmError::Repo(format!("invalid repository URL {repo_url:?}: {e}")))
}

/// Downloads and parses a repository's index.
pub fn fetch_index(repo_url: &str, opts: &RepoOptions) -> Result<IndexFile, HelmError> {
    let base = repo_base(repo_url)?;
    let agent = agent(opts)?;
    let idx_url = base
        .join("index.yaml")
        .map_err(|e| HelmError::Repo(e.to_string()))?;
    let auth = creds(opts);
    let data = get(&agent, &idx_url, auth)?;
    IndexFile::parse(&String::from_utf8_lossy(&data))
}

fn creds(opts: &RepoOptions) -> Option<(&str, &str)> {
    match (&opts.username, &opts.password) {
        (Some(u), p) => Some((u.as_str(), p.as_deref().unwrap_or(""))),
        (None, Some(p)) => Some(("", p.as_str())),
        _ => None,
    }
}

/// Downloads chart `name` at the highest version matching `version` from the repository at
/// `repo_url`; returns the archive bytes and the chosen index entry.
pub fn fetch_chart_archive(
    repo_url: &str,
    name: &str,
    version: &str,
    opts: &RepoOptions,
) -> Result<(Vec<u8>, ChartVersion), HelmError> {
    let base = repo_base(repo_url)?;
    let agent = agent(opts)?;
    let idx_url = base
        .join("index.yaml")
        .map_err(|e| HelmError::Repo(e.to_string()))?;
    let auth = creds(opts);
    let index = IndexFile::parse(&String::from_utf8_lossy(&get(&agent, &idx_url, auth)?))?;
    let cv = index.get(name, version)?.clone();
    let first = cv.urls.first().ok_or_else(|| {
        HelmError::Repo(format!("chart {name} {} has no download URL", cv.version))
    })?;
    let chart_url = base
        .join(first)
        .map_err(|e| HelmError::Repo(format!("invalid chart URL {first:?}: {e}")))?;
    let same_origin = origin(&chart_url) == origin(&base);
    let auth = if same_origin || opts.pass_credentials_all {
        auth
    } else {
        None
    };
    let data = get(&agent, &chart_url, auth)?;
    if !cv.digest.is_empty() {
        let got = hex::encode(sha2::Sha256::digest(&data));
        if !got.eq_ignore_ascii_case(cv.digest.trim_start_matches("sha256:")) {
            return Err(HelmError::Repo(format!(
                "digest mismatch for {chart_url}: index says {}, downloaded {got}",
                cv.digest
            )));
        }
    }
    Ok((data, cv))
}

/// Downloads and loads a chart from a repository.
pub fn fetch_chart(
    repo_url: &str,
    name: &str,
    version: &str,
    opts: &RepoOptions,
) -> Result<Chart, HelmError> {
    let (data, _) = fetch_chart_archive(repo_url, name, version, opts)?;
    Chart::from_archive(&data)
}

//! Chart repositories: `index.yaml` over HTTP(S), semver constraint selection, chart download with
//! digest check, charts by URL and from `oci://` registries (OCI distribution API). Basic-auth
//! credentials go only to the repository's own scheme/host/port unless `pass_credentials_all` is
//! set (Helm's `--pass-credentials`).

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
    /// Talk plain HTTP to `oci://` registries (Helm's `--plain-http`); HTTPS otherwise.
    pub plain_http: bool,
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

/// Downloads a chart archive from a URL (`helm.chart: https://host/chart-1.0.0.tgz`). Credentials
/// are sent to that URL's host.
pub fn fetch_url(chart_url: &str, opts: &RepoOptions) -> Result<Vec<u8>, HelmError> {
    let u = url::Url::parse(chart_url)
        .map_err(|e| HelmError::Repo(format!("invalid chart URL {chart_url:?}: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(HelmError::Repo(format!(
            "unsupported chart URL {chart_url:?}: only http, https and oci are supported"
        )));
    }
    let agent = agent(opts)?;
    get(&agent, &u, creds(opts))
}

/// Media type of the chart layer of a Helm OCI artifact.
pub const OCI_CHART_LAYER_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
const OCI_MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// An `oci://host[:port]/path/name` reference split into registry and repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciReference {
    /// `host[:port]` of the registry.
    pub registry: String,
    /// Repository path inside the registry (`path/name`).
    pub repository: String,
    /// Tag given in the reference itself (`oci://host/name:1.0.0`), if any.
    pub tag: Option<String>,
}

impl OciReference {
    /// Parses `oci://host[:port]/path/name[:tag]`.
    pub fn parse(reference: &str) -> Result<OciReference, HelmError> {
        let invalid =
            |why: &str| HelmError::Repo(format!("invalid OCI reference {reference:?}: {why}"));
        let rest = reference
            .strip_prefix("oci://")
            .ok_or_else(|| invalid("it must start with oci://"))?;
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| invalid("it names no repository"))?;
        if registry.is_empty() || path.is_empty() {
            return Err(invalid("it names no registry or repository"));
        }
        // a tag is a `:` after the last `/` (a port is part of the registry)
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_string())),
            _ => (path, None),
        };
        let repository = repository.trim_end_matches('/');
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c);
        if repository.is_empty() || !repository.chars().all(valid) {
            return Err(invalid(
                "the repository name must be lowercase letters, digits, '.', '_', '-' and '/'",
            ));
        }
        Ok(OciReference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
        })
    }
}

/// A registry response: status, `WWW-Authenticate` header and body.
struct OciResponse {
    status: u16,
    challenge: Option<String>,
    body: Vec<u8>,
}

/// Talks to one registry repository, answering bearer/basic challenges the way OCI clients do.
struct OciClient<'a> {
    agent: ureq::Agent,
    base: String,
    repository: String,
    opts: &'a RepoOptions,
    /// `Authorization` header value that the registry accepted (or issued).
    authorization: Option<String>,
}

impl OciClient<'_> {
    fn new<'a>(r: &OciReference, opts: &'a RepoOptions) -> Result<OciClient<'a>, HelmError> {
        let scheme = if opts.plain_http { "http" } else { "https" };
        Ok(OciClient {
            agent: agent(opts)?,
            base: format!("{scheme}://{}/v2/{}", r.registry, r.repository),
            repository: r.repository.clone(),
            opts,
            authorization: None,
        })
    }

    fn send(&self, u: &str, accept: &str) -> Result<OciResponse, HelmError> {
        let mut req = self.agent.get(u).header("Accept", accept);
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a);
        }
        let resp = req
            .call()
            .map_err(|e| HelmError::Repo(format!("fetching {u}: {e}")))?;
        let status = resp.status().as_u16();
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = Vec::new();
        resp.into_body()
            .into_reader()
            .take(MAX_DOWNLOAD_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|e| HelmError::Repo(format!("reading {u}: {e}")))?;
        if body.len() as u64 > MAX_DOWNLOAD_BYTES {
            return Err(HelmError::Repo(format!(
                "{u} is larger than {MAX_DOWNLOAD_BYTES} bytes"
            )));
        }
        Ok(OciResponse {
            status,
            challenge,
            body,
        })
    }

    /// GET below the repository (`tags/list`, `manifests/<tag>`, `blobs/<digest>`).
    fn get(&mut self, path: &str, accept: &str) -> Result<Vec<u8>, HelmError> {
        let u = format!("{}/{path}", self.base);
        let mut resp = self.send(&u, accept)?;
        if resp.status == 401 && self.authorization.is_none() {
            let challenge = resp.challenge.clone().unwrap_or_default();
            self.authorization = Some(self.authorize(&challenge, &u)?);
            resp = self.send(&u, accept)?;
        }
        if resp.status == 401 {
            return Err(HelmError::Repo(format!(
                "fetching {u}: 401 Unauthorized (check the registry credentials)"
            )));
        }
        if !(200..300).contains(&resp.status) {
            return Err(HelmError::Repo(format!(
                "fetching {u}: {} {}",
                resp.status,
                oci_error_message(&resp.body)
            )));
        }
        Ok(resp.body)
    }

    /// The `Authorization` header answering a `WWW-Authenticate` challenge: basic credentials, or
    /// a bearer token from the realm (with the credentials, if any, for the token request).
    fn authorize(&self, challenge: &str, u: &str) -> Result<String, HelmError> {
        use base64::Engine;
        let basic = creds(self.opts).map(|(user, pass)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
            )
        });
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return basic.ok_or_else(|| {
                HelmError::Repo(format!(
                    "fetching {u}: 401 Unauthorized (the registry wants credentials)"
                ))
            });
        }
        let params = parse_challenge_params(params);
        let realm = params.get("realm").ok_or_else(|| {
            HelmError::Repo(format!(
                "fetching {u}: bearer challenge without a realm: {challenge:?}"
            ))
        })?;
        let mut token_url = url::Url::parse(realm)
            .map_err(|e| HelmError::Repo(format!("invalid token realm {realm:?}: {e}")))?;
        {
            let mut q = token_url.query_pairs_mut();
            if let Some(service) = params.get("service") {
                q.append_pair("service", service);
            }
            let scope = params
                .get("scope")
                .cloned()
                .unwrap_or_else(|| format!("repository:{}:pull", self.repository));
            q.append_pair("scope", &scope);
        }
        let mut req = self.agent.get(token_url.as_str());
        if let Some(b) = &basic {
            req = req.header("Authorization", b);
        }
        let resp = req
            .call()
            .map_err(|e| HelmError::Repo(format!("fetching token from {token_url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(HelmError::Repo(format!(
                "fetching token from {token_url}: {}",
                resp.status().as_u16()
            )));
        }
        let mut body = Vec::new();
        resp.into_body()
            .into_reader()
            .take(1 << 20)
            .read_to_end(&mut body)
            .map_err(|e| HelmError::Repo(format!("reading token from {token_url}: {e}")))?;
        #[derive(Deserialize)]
        struct Token {
            #[serde(default)]
            token: String,
            #[serde(default)]
            access_token: String,
        }
        let t: Token = serde_json::from_slice(&body)
            .map_err(|e| HelmError::Repo(format!("parsing token from {token_url}: {e}")))?;
        let token = if t.token.is_empty() {
            t.access_token
        } else {
            t.token
        };
        if token.is_empty() {
            return Err(HelmError::Repo(format!("{token_url} issued no token")));
        }
        Ok(format!("Bearer {token}"))
    }
}

/// `key="value", key2=value2` parameters of a `WWW-Authenticate` challenge.
fn parse_challenge_params(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        out.insert(key, value.to_string());
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// The first error message of an OCI error body (`{"errors":[{"code":..,"message":..}]}`).
fn oci_error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<ErrorEntry>,
    }
    #[derive(Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(e) if !e.errors.is_empty() => {
            let first = &e.errors[0];
            format!("{}: {}", first.code, first.message)
        }
        _ => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

/// The highest tag matching a semver constraint (exact versions match as written; OCI tags spell
/// `+` as `_`), the way Helm and Fleet pick a chart version from a registry.
pub fn select_oci_tag(tags: &[String], version: &str) -> Result<String, HelmError> {
    let wanted = version.trim();
    if !wanted.is_empty()
        && tags
            .iter()
            .any(|t| t == wanted || *t == wanted.replace('+', "_"))
    {
        return Ok(if tags.iter().any(|t| t == wanted) {
            wanted.to_string()
        } else {
            wanted.replace('+', "_")
        });
    }
    let constraint = if wanted.is_empty() { ">=0.0.0" } else { wanted };
    let cons = Constraints::parse(constraint)
        .map_err(|e| HelmError::Repo(format!("invalid version constraint {constraint:?}: {e}")))?;
    let mut best: Option<(&String, Version)> = None;
    for tag in tags {
        let Ok(v) = Version::parse(&tag.replace('_', "+")) else {
            continue;
        };
        if !cons.matches(&v) {
            continue;
        }
        if best.as_ref().is_none_or(|(_, b)| v.compare(b).is_gt()) {
            best = Some((tag, v));
        }
    }
    best.map(|(t, _)| t.clone()).ok_or_else(|| {
        HelmError::Repo(format!(
            "no tag matches version {version:?} (tags: {})",
            tags.join(", ")
        ))
    })
}

/// `MAJOR.MINOR.PATCH[-pre][+build]` with nothing else: a version to pull as is rather than a
/// constraint to resolve against the tag list (Masterminds' `StrictNewVersion`).
fn is_strict_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-+.".contains(&b))
}

/// Pulls a Helm chart from an OCI registry: `reference` is `oci://host[:port]/path/name` (with
/// an optional `:tag`), `version` a version or semver constraint (empty: the highest stable tag).
/// Returns the chart archive and the tag pulled.
pub fn fetch_oci_chart(
    reference: &str,
    version: &str,
    opts: &RepoOptions,
) -> Result<(Vec<u8>, String), HelmError> {
    let r = OciReference::parse(reference)?;
    let mut client = OciClient::new(&r, opts)?;
    let tag = match (&r.tag, version.trim()) {
        (Some(t), "") => t.clone(),
        (Some(t), v) if t == v => t.clone(),
        (Some(t), v) => {
            return Err(HelmError::Repo(format!(
                "{reference}: the reference has tag {t:?} but version {v:?} was asked for"
            )));
        }
        (None, v) if is_strict_semver(v) => v.replace('+', "_"),
        (None, v) => {
            #[derive(Deserialize)]
            struct TagList {
                #[serde(default)]
                tags: Option<Vec<String>>,
            }
            let body = client.get("tags/list", "application/json")?;
            let list: TagList = serde_json::from_slice(&body)
                .map_err(|e| HelmError::Repo(format!("{reference}: parsing the tag list: {e}")))?;
            select_oci_tag(&list.tags.unwrap_or_default(), v)
                .map_err(|e| HelmError::Repo(format!("{reference}: {e}")))?
        }
    };
    #[derive(Deserialize)]
    struct Manifest {
        #[serde(default)]
        layers: Vec<Descriptor>,
    }
    #[derive(Deserialize)]
    struct Descriptor {
        #[serde(default, rename = "mediaType")]
        media_type: String,
        #[serde(default)]
        digest: String,
    }
    let body = client.get(&format!("manifests/{tag}"), OCI_MANIFEST_ACCEPT)?;
    let manifest: Manifest = serde_json::from_slice(&body)
        .map_err(|e| HelmError::Repo(format!("{reference}:{tag}: parsing the manifest: {e}")))?;
    let layer = manifest
        .layers
        .iter()
        .find(|l| l.media_type == OCI_CHART_LAYER_MEDIA_TYPE)
        .ok_or_else(|| {
            HelmError::Repo(format!(
                "{reference}:{tag} is not a Helm chart (no {OCI_CHART_LAYER_MEDIA_TYPE} layer)"
            ))
        })?;
    let hex_digest = layer.digest.strip_prefix("sha256:").ok_or_else(|| {
        HelmError::Repo(format!(
            "{reference}:{tag}: unsupported layer digest {:?} (sha256 expected)",
            layer.digest
        ))
    })?;
    if hex_digest.len() != 64 || !hex_digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(HelmError::Repo(format!(
            "{reference}:{tag}: invalid layer digest {:?}",
            layer.digest
        )));
    }
    let data = client.get(&format!("blobs/{}", layer.digest), "*/*")?;
    let got = hex::encode(sha2::Sha256::digest(&data));
    if !got.eq_ignore_ascii_case(hex_digest) {
        return Err(HelmError::Repo(format!(
            "{reference}:{tag}: digest mismatch: manifest says {}, downloaded sha256:{got}",
            layer.digest
        )));
    }
    Ok((data, tag))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn oci_references_split_registry_repository_and_tag() {
        let r = OciReference::parse("oci://127.0.0.1:5000/charts/web:1.2.3").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "charts/web");
        assert_eq!(r.tag.as_deref(), Some("1.2.3"));
        let r = OciReference::parse("oci://ghcr.io/org/chart").unwrap();
        assert_eq!((r.registry.as_str(), r.tag), ("ghcr.io", None));
        assert!(OciReference::parse("https://ghcr.io/x").is_err());
        assert!(OciReference::parse("oci://ghcr.io").is_err());
        assert!(OciReference::parse("oci://ghcr.io/Upper").is_err());
    }

    #[test]
    fn oci_tags_are_chosen_by_constraint() {
        let tags: Vec<String> = [
            "0.9.0",
            "1.0.0",
            "1.1.0",
            "2.0.0-rc.1",
            "1.1.0_build.1",
            "latest",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // build metadata does not order versions: the first of equals wins
        assert_eq!(select_oci_tag(&tags, "").unwrap(), "1.1.0");
        assert_eq!(select_oci_tag(&tags, "~1.0").unwrap(), "1.0.0");
        assert_eq!(select_oci_tag(&tags, "2.0.0-rc.1").unwrap(), "2.0.0-rc.1");
        assert_eq!(
            select_oci_tag(&tags, "1.1.0+build.1").unwrap(),
            "1.1.0_build.1"
        );
        let err = select_oci_tag(&tags, ">=3").unwrap_err().to_string();
        assert!(err.contains("no tag matches version \">=3\""), "{err}");
        assert!(is_strict_semver("1.2.3-rc.1+b"));
        assert!(!is_strict_semver("1.2") && !is_strict_semver("^1.2.3"));
    }

    #[test]
    fn bearer_challenges_are_parsed() {
        let p = parse_challenge_params(
            r#"realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
    }
}

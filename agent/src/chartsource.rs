//! Charts of HelmOp bundles (Fleet's `bundlereader.GetManifestFromHelmChart`): their Bundle has
//! no resources, only `helm.repo`/`helm.chart`/`helm.version` (or an `oci://` reference) and
//! `helmChartOptions`; the agent downloads the chart itself, with the credentials of the Helm
//! secret the controller copied into its cluster namespace (sent only to the repository's own
//! host), and turns it into the resources a Content would hold (`.chart/<checksum>/...`), so it
//! is rendered and deployed like any bundle. Downloads are cached by repository, chart and
//! exact version.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fleet_api::{BundleDeployment, BundleResource, HelmOptions};
use fleet_bundle::bundlereader::to_resource;
use fleet_bundle::manifest::chart_checksum;
use fleet_helm::repo::{self, RepoOptions};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

/// How many charts the cache keeps (least recently used ones go first).
pub const CACHE_CAPACITY: usize = 64;

/// Why the chart of a HelmOp bundle could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ChartSourceError {
    #[error("bundle {bundle}: helm chart options without helm.chart")]
    NoChart { bundle: String },
    #[error("bundle {bundle}: reading helm secret {namespace}/{secret}: {source}")]
    SecretRead {
        bundle: String,
        namespace: String,
        secret: String,
        #[source]
        source: kube::Error,
    },
    #[error("bundle {bundle}: helm secret {namespace}/{secret} not found")]
    SecretMissing {
        bundle: String,
        namespace: String,
        secret: String,
    },
    #[error("bundle {bundle}: downloading {chart}: {message}")]
    Download {
        bundle: String,
        chart: String,
        message: String,
    },
}

/// `chart "<chart>" version <v> from repository <repo>`, for messages.
pub fn describe(helm: &HelmOptions) -> String {
    let mut out = format!("chart {:?}", helm.chart);
    if !helm.version.is_empty() {
        out.push_str(&format!(" version {}", helm.version));
    }
    if !helm.repo.is_empty() {
        out.push_str(&format!(" from repository {}", helm.repo));
    }
    out
}

/// `MAJOR.MINOR.PATCH[-pre][+build]`: a version whose chart never changes, so it may be cached.
fn is_exact_version(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The cache key of a chart.
pub fn cache_key(helm: &HelmOptions) -> String {
    format!("{}\n{}\n{}", helm.repo, helm.chart, helm.version)
}

/// Repository options from Fleet's Helm secret (`username`, `password`, `cacerts`).
pub fn repo_options(secret: Option<&Secret>, insecure_skip_tls_verify: bool) -> RepoOptions {
    let mut opts = RepoOptions {
        insecure_skip_tls_verify,
        ..Default::default()
    };
    let Some(secret) = secret else {
        return opts;
    };
    let data = secret.data.clone().unwrap_or_default();
    let get = |k: &str| data.get(k).map(|v| v.0.clone());
    opts.username = get("username").map(|v| String::from_utf8_lossy(&v).into_owned());
    opts.password = get("password").map(|v| String::from_utf8_lossy(&v).into_owned());
    opts.ca_bundle = get("cacerts").filter(|v| !v.is_empty());
    opts
}

/// Downloads the chart archive `helm` names (blocking I/O): from a repository index, an
/// `oci://` registry, or a chart URL.
pub fn download(helm: &HelmOptions, opts: &RepoOptions) -> Result<Vec<u8>, String> {
    if helm.chart.starts_with("oci://") {
        return repo::fetch_oci_chart(&helm.chart, &helm.version, opts)
            .map(|(data, _tag)| data)
            .map_err(|e| e.to_string());
    }
    if let Some(registry) = helm.repo.strip_prefix("oci://") {
        let reference = format!("oci://{}/{}", registry.trim_end_matches('/'), helm.chart);
        return repo::fetch_oci_chart(&reference, &helm.version, opts)
            .map(|(data, _tag)| data)
            .map_err(|e| e.to_string());
    }
    if !helm.repo.is_empty() {
        return repo::fetch_chart_archive(&helm.repo, &helm.chart, &helm.version, opts)
            .map(|(data, _entry)| data)
            .map_err(|e| e.to_string());
    }
    if helm.chart.starts_with("http://") || helm.chart.starts_with("https://") {
        return repo::fetch_url(&helm.chart, opts).map_err(|e| e.to_string());
    }
    Err(format!(
        "{:?} is neither a chart URL nor an oci:// reference, and helm.repo is empty",
        helm.chart
    ))
}

/// The resources of a chart archive, as `fleet apply` stores a downloaded chart:
/// `.chart/<checksum of chart:repo:version>/<file>`.
pub fn chart_resources(helm: &HelmOptions, archive: &[u8]) -> Result<Vec<BundleResource>, String> {
    let prefix = chart_checksum(helm);
    let files = fleet_helm::chart::untar(archive).map_err(|e| e.to_string())?;
    let mut out: Vec<BundleResource> = files
        .into_iter()
        .map(|(name, data)| {
            let name = name.trim_start_matches("./").to_string();
            to_resource(format!("{prefix}/{name}"), &data, false)
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[derive(Default)]
struct Cache {
    tick: u64,
    entries: HashMap<String, (u64, Arc<Vec<BundleResource>>)>,
}

impl Cache {
    fn get(&mut self, key: &str) -> Option<Arc<Vec<BundleResource>>> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|(used, r)| {
            *used = tick;
            r.clone()
        })
    }

    fn put(&mut self, key: String, resources: Arc<Vec<BundleResource>>) {
        self.tick += 1;
        if self.entries.len() >= CACHE_CAPACITY
            && let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(k, _)| k.clone())
        {
            self.entries.remove(&oldest);
        }
        self.entries.insert(key, (self.tick, resources));
    }
}

/// Downloads the charts of HelmOp bundle deployments, with a cache shared by the agent's
/// workers.
#[derive(Clone)]
pub struct ChartSource {
    upstream: kube::Client,
    cache: Arc<Mutex<Cache>>,
}

impl ChartSource {
    pub fn new(upstream: kube::Client) -> Self {
        ChartSource {
            upstream,
            cache: Arc::default(),
        }
    }

    fn cached(&self, key: &str) -> Option<Arc<Vec<BundleResource>>> {
        match self.cache.lock() {
            Ok(mut c) => c.get(key),
            Err(p) => p.into_inner().get(key),
        }
    }

    fn remember(&self, key: String, resources: Arc<Vec<BundleResource>>) {
        match self.cache.lock() {
            Ok(mut c) => c.put(key, resources),
            Err(p) => p.into_inner().put(key, resources),
        }
    }

    /// The resources of `bd`'s chart: from the cache, or downloaded with the credentials of the
    /// Helm secret in `bd`'s namespace.
    pub async fn resources(
        &self,
        bd: &BundleDeployment,
    ) -> Result<Arc<Vec<BundleResource>>, ChartSourceError> {
        let bundle = bd.metadata.name.clone().unwrap_or_default();
        let helm = bd
            .spec
            .options
            .helm
            .clone()
            .filter(|h| !h.chart.is_empty())
            .ok_or_else(|| ChartSourceError::NoChart {
                bundle: bundle.clone(),
            })?;
        let key = cache_key(&helm);
        let cacheable = is_exact_version(&helm.version);
        if cacheable && let Some(hit) = self.cached(&key) {
            return Ok(hit);
        }
        let chart_options = bd.spec.helm_chart_options.clone().unwrap_or_default();
        let namespace = bd.metadata.namespace.clone().unwrap_or_default();
        let secret = if chart_options.secret_name.is_empty() {
            None
        } else {
            let name = chart_options.secret_name.clone();
            let found = Api::<Secret>::namespaced(self.upstream.clone(), &namespace)
                .get_opt(&name)
                .await
                .map_err(|source| ChartSourceError::SecretRead {
                    bundle: bundle.clone(),
                    namespace: namespace.clone(),
                    secret: name.clone(),
                    source,
                })?;
            Some(found.ok_or_else(|| ChartSourceError::SecretMissing {
                bundle: bundle.clone(),
                namespace: namespace.clone(),
                secret: name,
            })?)
        };
        let opts = repo_options(secret.as_ref(), chart_options.insecure_skip_tls_verify);
        let h = helm.clone();
        let fetched = fleet_api::task::spawn_blocking(move || {
            download(&h, &opts).and_then(|archive| {
                chart_resources(&h, &archive)
                    .map_err(|e| format!("unpacking the chart archive: {e}"))
            })
        })
        .await
        .unwrap_or_else(|e| Err(format!("download task failed: {e}")))
        .map_err(|message| ChartSourceError::Download {
            bundle: bundle.clone(),
            chart: describe(&helm),
            message,
        })?;
        tracing::info!(%bundle, chart = %describe(&helm), "downloaded helm chart");
        let fetched = Arc::new(fetched);
        if cacheable {
            self.remember(key, fetched.clone());
        }
        Ok(fetched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(name: &str) -> Arc<Vec<BundleResource>> {
        Arc::new(vec![BundleResource {
            name: name.into(),
            ..Default::default()
        }])
    }

    #[test]
    fn the_cache_drops_the_least_recently_used_chart() {
        let mut c = Cache::default();
        for i in 0..CACHE_CAPACITY {
            c.put(format!("k{i}"), resource(&i.to_string()));
        }
        assert!(c.get("k0").is_some());
        c.put("new".into(), resource("new"));
        assert_eq!(c.entries.len(), CACHE_CAPACITY);
        assert!(c.get("k0").is_some(), "recently used");
        assert!(c.get("k1").is_none(), "least recently used");
        assert!(c.get("new").is_some());
    }

    #[test]
    fn only_exact_versions_are_cached() {
        assert!(is_exact_version("1.2.3"));
        assert!(!is_exact_version("~1.2"));
        assert!(!is_exact_version(""));
    }

    #[test]
    fn messages_name_chart_version_and_repository() {
        let h = HelmOptions {
            chart: "web".into(),
            repo: "http://127.0.0.1:1".into(),
            version: "1.0.0".into(),
            ..Default::default()
        };
        assert_eq!(
            describe(&h),
            "chart \"web\" version 1.0.0 from repository http://127.0.0.1:1"
        );
        assert_ne!(cache_key(&h), cache_key(&HelmOptions::default()));
    }

    #[test]
    fn a_secret_gives_basic_auth_and_ca() {
        let s: Secret = serde_json::from_value(serde_json::json!({
            "data": {"username": "dQ==", "password": "cA==", "cacerts": "Y2E="},
        }))
        .unwrap();
        let o = repo_options(Some(&s), false);
        assert_eq!(o.username.as_deref(), Some("u"));
        assert_eq!(o.password.as_deref(), Some("p"));
        assert_eq!(o.ca_bundle.as_deref(), Some(b"ca".as_slice()));
    }
}

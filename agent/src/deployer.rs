//! The deployer (Fleet's `internal/cmd/agent/deployer` + `internal/helmdeployer`): renders a
//! BundleDeployment's Content, applies the objects to the downstream cluster with server-side
//! apply, prunes what left the bundle, keeps Helm release records, and uninstalls.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fleet_api::{BundleDeployment, BundleResource, Content, consts};
use fleet_bundle::render::{self, RenderOptions};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::cache::{ContentCache, NamespaceCache, ReleaseCache, ReleaseState, Resources};
use crate::config::AgentConfig;
use crate::downstream::{Downstream, DownstreamError, describe};
use crate::monitor::ObjectKey;
use crate::plan::{self, Ownership};
use crate::release::{self, Release, ReleaseChart, ReleaseInfo};

/// Requests one reconcile has in flight at once (object reads, applies of one kind): Helm
/// applies the objects of one kind in parallel too, kinds one after the other.
pub const CONCURRENT_REQUESTS: usize = 4;
/// Manifests an agent keeps decoded (Contents are immutable; a rollout needs each once).
pub const CONTENT_CACHE_ENTRIES: usize = 16;
/// Bytes of manifests an agent keeps decoded.
pub const CONTENT_CACHE_BYTES: usize = 8 << 20;

/// Errors while deploying or removing a BundleDeployment.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The Content named by the deployment ID cannot be read.
    #[error("reading Content {content} for bundle {bundle}: {source}")]
    ContentGet {
        content: String,
        bundle: String,
        #[source]
        source: kube::Error,
    },
    /// The Content is not a valid manifest.
    #[error("Content {content} for bundle {bundle} is invalid: {message}")]
    ContentInvalid {
        content: String,
        bundle: String,
        message: String,
    },
    /// Rendering failed (chart, overlay, kustomize...).
    #[error("rendering bundle {bundle}: {source}")]
    Render {
        bundle: String,
        #[source]
        source: render::RenderError,
    },
    /// An object exists but belongs to someone else.
    #[error(
        "bundle {bundle}: rendered manifests contain a resource that already exists: {object} is not owned by us{owner}; annotation validation error: set helm.takeOwnership to adopt it"
    )]
    NotOwned {
        bundle: String,
        object: String,
        owner: String,
    },
    /// A request to the downstream cluster failed.
    #[error("bundle {bundle}: {source}")]
    Downstream {
        bundle: String,
        #[source]
        source: DownstreamError,
    },
    /// A release record cannot be read or written.
    #[error("bundle {bundle}: {message}")]
    Release { bundle: String, message: String },
    /// The chart of a HelmOp bundle cannot be downloaded.
    #[error(transparent)]
    Chart(#[from] crate::chartsource::ChartSourceError),
}

/// A deployed revision: the release and the objects it holds.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub release: Release,
    pub objects: Vec<Value>,
    /// The compressed tail of the record's payload, when this agent wrote the record: marking
    /// it superseded then compresses only the head again.
    pub record_tail: Option<Arc<release::RecordTail>>,
}

/// A deployment just made: the release, every object as the server-side apply returned it
/// (the live object right after the write, so it needs no read), and the objects pruned
/// (deleted, or released with `keepResources`) because they left the bundle.
#[derive(Debug, Clone)]
pub struct DeployOutcome {
    pub deployed: Arc<Deployed>,
    pub applied: BTreeMap<ObjectKey, Value>,
    pub pruned: BTreeSet<ObjectKey>,
}

/// The metadata of a response the agent reads only for its resourceVersion (a release record
/// it wrote: decoding the payload and managedFields back would cost more than the write).
#[derive(serde::Deserialize)]
struct Head {
    metadata: HeadMetadata,
}

#[derive(serde::Deserialize)]
struct HeadMetadata {
    #[serde(default, rename = "resourceVersion")]
    resource_version: Option<String>,
}

/// A release record read against the resourceVersion this agent knows.
enum RecordRead {
    Missing,
    Unchanged,
    Changed(Box<Secret>),
}

/// What a deployment has to do about its release namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NamespaceCheck {
    /// This agent ensured it before: not looked at.
    Remembered,
    /// It exists.
    Exists,
    /// This deployment has just created it (it did not exist).
    Created,
    /// It does not exist: to be applied.
    Missing,
    /// It is to be applied (labels/annotations requested).
    Apply,
}

/// Deploys BundleDeployments into the downstream cluster.
#[derive(Clone)]
pub struct Deployer {
    upstream: kube::Client,
    pub downstream: Downstream,
    config: Arc<AgentConfig>,
    kube_version: Arc<OnceCell<String>>,
    charts: crate::chartsource::ChartSource,
    contents: Arc<ContentCache>,
    releases: Arc<ReleaseCache>,
    namespaces: Arc<NamespaceCache>,
}

fn namespace_key(namespace: &str) -> ObjectKey {
    ObjectKey {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        namespace: String::new(),
        name: namespace.to_string(),
    }
}

/// `code` of a Kubernetes API error inside a downstream error.
fn api_code(e: &DownstreamError) -> Option<u16> {
    match e {
        DownstreamError::Object {
            source: kube::Error::Api(s),
            ..
        } => Some(s.code),
        _ => None,
    }
}

/// The objects in batches that may be applied concurrently: consecutive objects of one kind
/// (Helm's order between kinds stays), a repeated key starting a new batch.
fn apply_batches(objects: &[Value]) -> Vec<Vec<(ObjectKey, &Value)>> {
    let mut batches: Vec<Vec<(ObjectKey, &Value)>> = Vec::new();
    for obj in objects {
        let key = plan::key_of(obj);
        let joins = batches.last().is_some_and(|b| {
            b.first()
                .is_some_and(|(k, _)| k.kind == key.kind && k.api_version == key.api_version)
                && !b.iter().any(|(k, _)| *k == key)
        });
        match batches.last_mut() {
            Some(batch) if joins => batch.push((key, obj)),
            _ => batches.push(vec![(key, obj)]),
        }
    }
    batches
}

/// The manifest document stored in a Content.
#[derive(serde::Deserialize)]
struct Manifest {
    #[serde(default)]
    resources: Vec<BundleResource>,
}

fn bd_name(bd: &BundleDeployment) -> String {
    bd.metadata.name.clone().unwrap_or_default()
}

/// The manifest ID part of a deployment ID (`<manifest id>:<options hash>`).
pub fn manifest_id(deployment_id: &str) -> &str {
    deployment_id.split(':').next().unwrap_or(deployment_id)
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Deployer {
    pub fn new(upstream: kube::Client, downstream: Downstream, config: Arc<AgentConfig>) -> Self {
        Deployer {
            charts: crate::chartsource::ChartSource::new(upstream.clone()),
            upstream,
            downstream,
            config,
            kube_version: Arc::default(),
            contents: Arc::new(ContentCache::new(
                CONTENT_CACHE_ENTRIES,
                CONTENT_CACHE_BYTES,
            )),
            releases: Arc::default(),
            namespaces: Arc::default(),
        }
    }

    /// The manifests this agent holds decoded.
    pub fn cached_contents(&self) -> usize {
        self.contents.len()
    }

    /// The releases whose records this agent knows.
    pub fn cached_releases(&self) -> usize {
        self.releases.len()
    }

    /// The object set ID of a BundleDeployment's objects (label prefix = the agent's default
    /// namespace, suffix = the agent scope, as Fleet's agent sets them).
    pub fn set_id(&self, bd: &BundleDeployment) -> String {
        render::set_id(
            &bd_name(bd),
            &self.config.default_namespace,
            &self.config.agent_scope,
        )
    }

    /// Release name and namespace of a BundleDeployment.
    pub fn release_name_and_namespace(&self, bd: &BundleDeployment) -> (String, String) {
        render::release_name_and_namespace(
            &bd_name(bd),
            &bd.spec.options,
            &self.config.default_namespace,
        )
    }

    async fn kube_version(&self) -> String {
        self.kube_version
            .get_or_init(|| async {
                match self.downstream.client.apiserver_version().await {
                    Ok(info) => {
                        let minor: String = info
                            .minor
                            .chars()
                            .take_while(char::is_ascii_digit)
                            .collect();
                        format!("v{}.{}.0", info.major, minor)
                    }
                    Err(_) => render::DEFAULT_KUBE_VERSION.to_string(),
                }
            })
            .await
            .clone()
    }

    async fn load_resources(&self, bd: &BundleDeployment) -> Result<Resources, DeployError> {
        if bd.spec.helm_chart_options.is_some() {
            // HelmOp bundles carry no resources: the chart comes from its repository.
            return Ok(self.charts.resources(bd).await?);
        }
        let bundle = bd_name(bd);
        let id = manifest_id(&bd.spec.deployment_id).to_string();
        self.contents
            .get_or_fetch(&id, || self.fetch_content(&bundle, &id))
            .await
    }

    /// Reads and decodes the Content `id` (gzip'd manifest JSON).
    async fn fetch_content(
        &self,
        bundle: &str,
        id: &str,
    ) -> Result<Vec<BundleResource>, DeployError> {
        let content = Api::<Content>::all(self.upstream.clone())
            .get(id)
            .await
            .map_err(|source| DeployError::ContentGet {
                content: id.to_string(),
                bundle: bundle.to_string(),
                source,
            })?;
        let invalid = |message: String| DeployError::ContentInvalid {
            content: id.to_string(),
            bundle: bundle.to_string(),
            message,
        };
        let data = content.content.map(|c| c.0).unwrap_or_default();
        let json = if data.starts_with(&[0x1f, 0x8b]) {
            fleet_bundle::content::gunzip(&data)
                .map_err(|e| invalid(format!("cannot gunzip: {e}")))?
        } else {
            data
        };
        let manifest: Manifest = serde_json::from_slice(&json)
            .map_err(|e| invalid(format!("invalid manifest JSON: {e}")))?;
        Ok(manifest.resources)
    }

    /// Renders the BundleDeployment into the objects to apply: namespaces defaulted, ownership
    /// marked, in install order. Also returns the chart metadata for the release record.
    pub async fn desired_objects(
        &self,
        bd: &BundleDeployment,
        release_name: &str,
        release_namespace: &str,
    ) -> Result<(Vec<Value>, Value), DeployError> {
        let bundle = bd_name(bd);
        let resources = self.load_resources(bd).await?;
        let kube_version = self.kube_version().await;
        let mut rendered = None;
        // Render, then resolve every kind; with `namespace` set the scope check needs the kinds,
        // so a render that met unresolved kinds is repeated once they are known.
        for _ in 0..2 {
            let downstream = self.downstream.clone();
            let scope: render::ScopeLookup =
                Arc::new(move |av: &str, kind: &str| downstream.cached_cluster_scoped(av, kind));
            let ro = RenderOptions {
                bundle_id: bundle.clone(),
                label_prefix: self.config.default_namespace.clone(),
                label_suffix: self.config.agent_scope.clone(),
                default_namespace: self.config.default_namespace.clone(),
                kube_version: kube_version.clone(),
                scope: Some(scope),
                kubectl: render::kustomize::kubectl_path(),
            };
            let rendered_now = if render::is_light(&resources, &bd.spec.options) {
                render::render(&resources, &bd.spec.options, &ro)
            } else {
                let options = bd.spec.options.clone();
                let res = resources.clone();
                fleet_api::task::spawn_blocking(move || render::render(&res, &options, &ro))
                    .await
                    .map_err(|e| DeployError::Release {
                        bundle: bundle.clone(),
                        message: format!("render task failed: {e}"),
                    })?
            };
            let out = rendered_now.map_err(|source| DeployError::Render {
                bundle: bundle.clone(),
                source,
            })?;
            let mut all_known = true;
            for obj in &out.objects {
                let key = plan::key_of(obj);
                if self
                    .downstream
                    .cached_cluster_scoped(&key.api_version, &key.kind)
                    .is_none()
                {
                    all_known = false;
                    let _ = self.downstream.kind(&key.api_version, &key.kind).await;
                }
            }
            let done = all_known || bd.spec.options.target_namespace.is_empty();
            rendered = Some(out);
            if done {
                break;
            }
        }
        let Some(rendered) = rendered else {
            return Err(DeployError::Release {
                bundle,
                message: "nothing rendered".into(),
            });
        };

        // Kinds defined by CRDs of this bundle may not be served yet: their scope comes from the CRD.
        let mut crd_scopes: BTreeMap<(String, String), bool> = BTreeMap::new();
        for obj in &rendered.objects {
            if obj.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition") {
                let group = obj
                    .pointer("/spec/group")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let kind = obj
                    .pointer("/spec/names/kind")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let namespaced =
                    obj.pointer("/spec/scope").and_then(Value::as_str) != Some("Cluster");
                for v in obj
                    .pointer("/spec/versions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(name) = v.get("name").and_then(Value::as_str) {
                        crd_scopes
                            .insert((format!("{group}/{name}"), kind.to_string()), namespaced);
                    }
                }
            }
        }

        let mut objects = Vec::with_capacity(rendered.objects.len());
        for mut obj in rendered.objects {
            let key = plan::key_of(&obj);
            let namespaced = match self.downstream.kind(&key.api_version, &key.kind).await {
                Ok(k) => k.namespaced,
                Err(e) => match crd_scopes.get(&(key.api_version.clone(), key.kind.clone())) {
                    Some(n) => *n,
                    None => {
                        return Err(DeployError::Downstream {
                            bundle: bundle.clone(),
                            source: e,
                        });
                    }
                },
            };
            let meta = obj
                .as_object_mut()
                .map(|m| m.entry("metadata").or_insert_with(|| json!({})));
            if let Some(Value::Object(meta)) = meta {
                if namespaced {
                    let has_ns = meta
                        .get("namespace")
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty());
                    if !has_ns {
                        meta.insert("namespace".into(), Value::String(release_namespace.into()));
                    }
                } else {
                    meta.remove("namespace");
                }
                let labels = meta.entry("labels").or_insert_with(|| json!({}));
                if let Value::Object(l) = labels {
                    l.insert(
                        release::MANAGED_BY_LABEL.into(),
                        Value::String(release::MANAGED_BY_HELM.into()),
                    );
                }
                let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
                if let Value::Object(a) = annotations {
                    a.insert(
                        release::HELM_RELEASE_NAME_ANNOTATION.into(),
                        Value::String(release_name.into()),
                    );
                    a.insert(
                        release::HELM_RELEASE_NAMESPACE_ANNOTATION.into(),
                        Value::String(release_namespace.into()),
                    );
                }
            }
            objects.push(obj);
        }
        plan::install_order(&mut objects);
        // A Content is named by the hash of its resources: that name is the manifest ID (the
        // resources of a HelmOp bundle come from its chart and are hashed).
        let manifest_id = if bd.spec.helm_chart_options.is_some() {
            fleet_bundle::manifest::manifest_id(&resources)
        } else {
            manifest_id(&bd.spec.deployment_id).to_string()
        };
        let chart = chart_metadata(&resources, bd, &self.config, &manifest_id);
        Ok((objects, chart))
    }

    fn secrets(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.downstream.client.clone(), namespace)
    }

    /// The release record `secret_name` in `namespace`, if it exists.
    async fn read_record(
        &self,
        bundle: &str,
        namespace: &str,
        secret_name: &str,
    ) -> Result<Option<Secret>, DeployError> {
        self.secrets(namespace)
            .get_opt(secret_name)
            .await
            .map_err(|source| {
                Self::record_error(
                    bundle,
                    "reading release record",
                    format!("{namespace}/{secret_name}"),
                    source,
                )
            })
    }

    /// The release record `secret_name` in `namespace`, decoded only when its
    /// resourceVersion is not `known` (the response's metadata is read first: a record this
    /// agent wrote is usually unchanged, and decoding its payload and managedFields is most
    /// of the cost of the read).
    async fn read_record_unless_unchanged(
        &self,
        bundle: &str,
        namespace: &str,
        secret_name: &str,
        known: &str,
    ) -> Result<RecordRead, DeployError> {
        let error = |source| {
            Self::record_error(
                bundle,
                "reading release record",
                format!("{namespace}/{secret_name}"),
                source,
            )
        };
        let url = <Secret as kube::Resource>::url_path(&(), Some(namespace));
        let request = kube::core::Request::new(url)
            .get(secret_name, &kube::api::GetParams::default())
            .map_err(|e| error(kube::Error::BuildRequest(e)))?;
        let text = match self.downstream.client.request_text(request).await {
            Ok(text) => text,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(RecordRead::Missing),
            Err(e) => return Err(error(e)),
        };
        let head: Head =
            serde_json::from_str(&text).map_err(|e| error(kube::Error::SerdeError(e)))?;
        if !known.is_empty() && head.metadata.resource_version.as_deref() == Some(known) {
            return Ok(RecordRead::Unchanged);
        }
        let secret: Secret =
            serde_json::from_str(&text).map_err(|e| error(kube::Error::SerdeError(e)))?;
        Ok(RecordRead::Changed(Box::new(secret)))
    }

    fn record_error(
        bundle: &str,
        action: &'static str,
        object: String,
        source: kube::Error,
    ) -> DeployError {
        DeployError::Downstream {
            bundle: bundle.to_string(),
            source: DownstreamError::Object {
                action,
                object,
                source,
            },
        }
    }

    /// Decodes a release record into the deployed revision it describes.
    /// The encoded release inside a release record.
    fn record_data(secret: &Secret) -> &[u8] {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get("release"))
            .map(|b| b.0.as_slice())
            .unwrap_or_default()
    }

    fn decode_record(secret: &str, data: &[u8]) -> Result<Deployed, String> {
        let rel = release::decode(secret, data).map_err(|e| e.to_string())?;
        let objects = release::manifest_objects(&rel)?;
        Ok(Deployed {
            release: rel,
            objects,
            record_tail: None,
        })
    }

    /// The read path: lists the records of release `name` in `namespace` and decodes the
    /// deployed one; the result replaces what the cache held.
    async fn read_release(
        &self,
        bundle: &str,
        name: &str,
        namespace: &str,
    ) -> Result<ReleaseState, DeployError> {
        let list = self
            .secrets(namespace)
            .list(&ListParams::default().labels(&format!("owner=helm,name={name}")))
            .await
            .map_err(|source| {
                Self::record_error(
                    bundle,
                    "listing release records of",
                    format!("release {namespace}/{name}"),
                    source,
                )
            })?;
        let mut records = Vec::new();
        let mut deployed: Option<(i64, Secret)> = None;
        for s in list.items {
            if s.type_.as_deref() != Some(release::RELEASE_SECRET_TYPE) {
                continue;
            }
            let labels = s.metadata.labels.clone().unwrap_or_default();
            let Some(rev) = labels
                .get(release::VERSION_LABEL)
                .and_then(|v| v.parse::<i64>().ok())
            else {
                continue;
            };
            let status = labels
                .get(release::STATUS_LABEL)
                .cloned()
                .unwrap_or_default();
            if status == release::status::DEPLOYED
                && deployed.as_ref().is_none_or(|(r, _)| rev > *r)
            {
                deployed = Some((rev, s));
            }
            records.push((rev, status));
        }
        records.sort_by_key(|(rev, _)| *rev);
        let mut state = ReleaseState {
            records,
            ..Default::default()
        };
        if let Some((rev, secret)) = deployed {
            let data = Self::record_data(&secret);
            let decoded =
                Self::decode_record(&release::secret_name(name, rev), data).map_err(|message| {
                    DeployError::Release {
                        bundle: bundle.to_string(),
                        message,
                    }
                })?;
            state.current = Some(Arc::new(decoded));
            state.current_resource_version = secret.metadata.resource_version.unwrap_or_default();
        }
        self.releases.put(namespace, name, state.clone());
        Ok(state)
    }

    /// The records of a release as this agent last wrote or read them; read when unknown.
    async fn release_state(
        &self,
        bundle: &str,
        name: &str,
        namespace: &str,
    ) -> Result<ReleaseState, DeployError> {
        match self.releases.get(namespace, name) {
            Some(state) => Ok(state),
            None => self.read_release(bundle, name, namespace).await,
        }
    }

    /// The deployed revision of a release (the newest record with status `deployed`), checked
    /// against the cluster: one read of the record this agent knows as deployed, decoded again
    /// only when someone else changed it. Unknown, removed or superseded records send it
    /// back to listing the release's records.
    pub async fn current_release(
        &self,
        bundle: &str,
        name: &str,
        namespace: &str,
    ) -> Result<Option<Arc<Deployed>>, DeployError> {
        let Some(known) = self.releases.get(namespace, name) else {
            return Ok(self.read_release(bundle, name, namespace).await?.current);
        };
        let Some(current) = known.current.clone() else {
            return Ok(self.read_release(bundle, name, namespace).await?.current);
        };
        let secret_name = release::secret_name(name, current.release.version);
        let secret = match self
            .read_record_unless_unchanged(
                bundle,
                namespace,
                &secret_name,
                &known.current_resource_version,
            )
            .await?
        {
            RecordRead::Unchanged => return Ok(Some(current)),
            RecordRead::Missing => {
                tracing::debug!(release = %format!("{namespace}/{name}"), "release record removed by someone else; reading the release again");
                return Ok(self.read_release(bundle, name, namespace).await?.current);
            }
            RecordRead::Changed(secret) => secret,
        };
        let resource_version = secret.metadata.resource_version.clone().unwrap_or_default();
        let status = secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(release::STATUS_LABEL))
            .cloned()
            .unwrap_or_default();
        if status != release::status::DEPLOYED {
            return Ok(self.read_release(bundle, name, namespace).await?.current);
        }
        let data = Self::record_data(&secret);
        let decoded =
            Self::decode_record(&secret_name, data).map_err(|message| DeployError::Release {
                bundle: bundle.to_string(),
                message,
            })?;
        let decoded = Arc::new(decoded);
        self.releases.put(
            namespace,
            name,
            ReleaseState {
                current: Some(decoded.clone()),
                current_resource_version: resource_version,
                ..known
            },
        );
        Ok(Some(decoded))
    }

    /// Reads the objects concurrently; missing ones are left out.
    pub async fn read_objects(
        &self,
        keys: Vec<ObjectKey>,
    ) -> Result<BTreeMap<ObjectKey, Value>, DownstreamError> {
        futures::stream::iter(keys)
            .map(|key| async move {
                let live = self.downstream.get(&key).await?;
                Ok::<_, DownstreamError>(live.map(|l| (key, l)))
            })
            .buffered(CONCURRENT_REQUESTS)
            .try_filter_map(|found| async move { Ok(found) })
            .try_collect()
            .await
    }

    /// Deploys the BundleDeployment's current `deploymentID`: render, ownership checks, namespace,
    /// server-side apply of every object, prune, release record. Nothing is pruned or recorded
    /// when rendering or applying fails, so what is deployed stays.
    pub async fn deploy(&self, bd: &BundleDeployment) -> Result<DeployOutcome, DeployError> {
        let bundle = bd_name(bd);
        let (release_name, release_namespace) = self.release_name_and_namespace(bd);
        let options = &bd.spec.options;
        let take_ownership = options.helm.as_ref().is_some_and(|h| h.take_ownership);
        let dstream = |source| DeployError::Downstream {
            bundle: bundle.clone(),
            source,
        };
        // A release this agent does not know, into a namespace it has not ensured (the first
        // deployment of a bundle): the namespace is looked at first. When it did not exist,
        // neither can the release's records nor any object in it, so none of them is read.
        let probe_namespace = options.namespace_labels.is_empty()
            && options.namespace_annotations.is_empty()
            && !release_namespace.is_empty()
            && !self.namespaces.is_ensured(&release_namespace, "")
            && !self.releases.contains(&release_namespace, &release_name);
        let (objects, chart, state, namespace) = if probe_namespace {
            let (objects, chart) = self
                .desired_objects(bd, &release_name, &release_namespace)
                .await?;
            let all_inside = objects
                .iter()
                .all(|o| plan::key_of(o).namespace == release_namespace);
            // With every object inside it, no ownership check can fail after the namespace
            // is made: it is created at once (Helm's --create-namespace, which may find it
            // there). Otherwise it is only looked at, and created after the checks.
            let namespace = if all_inside {
                self.create_namespace(&release_namespace).await
            } else {
                self.check_namespace(bd, &release_namespace).await
            }
            .map_err(dstream)?;
            let state = match namespace {
                NamespaceCheck::Created | NamespaceCheck::Missing => ReleaseState::default(),
                _ => {
                    self.release_state(&bundle, &release_name, &release_namespace)
                        .await?
                }
            };
            (objects, chart, state, Some(namespace))
        } else {
            // Independent reads together: the manifest (and its rendering) and the records.
            let (rendered, state) = tokio::join!(
                self.desired_objects(bd, &release_name, &release_namespace),
                self.release_state(&bundle, &release_name, &release_namespace),
            );
            let (objects, chart) = rendered?;
            (objects, chart, state?, None)
        };
        let previous = state.current.clone();
        let absent_namespace = matches!(
            namespace,
            Some(NamespaceCheck::Created | NamespaceCheck::Missing)
        );

        // Helm refuses to adopt objects owned by others unless told to; like Helm's upgrade,
        // only the objects the deployed release does not hold yet are checked (those in a
        // namespace that did not exist are known to be absent). The release namespace is
        // looked at meanwhile, and created only once the check passed.
        let new_keys: Vec<ObjectKey> = if take_ownership {
            Vec::new()
        } else {
            let held: BTreeSet<ObjectKey> = previous
                .iter()
                .flat_map(|p| p.objects.iter().map(plan::key_of))
                .collect();
            objects
                .iter()
                .map(plan::key_of)
                .filter(|k| !held.contains(k))
                .filter(|k| !(absent_namespace && k.namespace == release_namespace))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        let (live, namespace) = match namespace {
            Some(known) => (self.read_objects(new_keys).await, Ok(known)),
            None => {
                tokio::join!(
                    self.read_objects(new_keys),
                    self.check_namespace(bd, &release_namespace),
                )
            }
        };
        for (key, live) in &live.map_err(dstream)? {
            match plan::ownership(live, &release_name, &release_namespace) {
                Ownership::Ours => {}
                Ownership::Unowned => {
                    return Err(DeployError::NotOwned {
                        bundle,
                        object: describe(key),
                        owner: String::new(),
                    });
                }
                Ownership::Other(owner) => {
                    return Err(DeployError::NotOwned {
                        bundle,
                        object: describe(key),
                        owner: format!(" (it belongs to release {owner})"),
                    });
                }
            }
        }
        let namespace = namespace.map_err(dstream)?;

        let applied = self
            .apply_all(bd, &release_namespace, namespace, &objects)
            .await
            .map_err(dstream)?;

        let mut pruned = BTreeSet::new();
        if let Some(prev) = &previous {
            for key in plan::prune_set(&prev.objects, &objects) {
                if options.keep_resources {
                    self.release_object(&key).await.map_err(dstream)?;
                } else {
                    self.downstream.delete(&key).await.map_err(dstream)?;
                }
                pruned.insert(key);
            }
        }

        let deployed = self
            .record_release(bd, state, &release_name, &release_namespace, objects, chart)
            .await?;
        Ok(DeployOutcome {
            deployed,
            applied,
            pruned,
        })
    }

    /// The live objects of these kinds labelled as members of object set `set_id`.
    pub async fn list_set(
        &self,
        set_id: &str,
        kinds: &BTreeSet<(String, String)>,
    ) -> Result<Vec<Value>, DownstreamError> {
        let selector = format!(
            "{}={}",
            consts::objectset::HASH_LABEL,
            render::set_hash(set_id)
        );
        let mut lists = Vec::with_capacity(kinds.len());
        for (api_version, kind) in kinds {
            lists.push(self.downstream.list(api_version, kind, &selector));
        }
        let listed: Vec<Vec<Value>> = futures::stream::iter(lists)
            .buffered(CONCURRENT_REQUESTS)
            .try_collect()
            .await?;
        Ok(listed.into_iter().flatten().collect())
    }

    /// Writes the record of the new revision (created, as Helm does: a record someone else
    /// wrote in the meantime makes it fail with 409, and the records are read again), then
    /// supersedes the previous one and drops what exceeds the history.
    async fn record_release(
        &self,
        bd: &BundleDeployment,
        mut state: ReleaseState,
        release_name: &str,
        release_namespace: &str,
        objects: Vec<Value>,
        chart: Value,
    ) -> Result<Arc<Deployed>, DeployError> {
        let bundle = bd_name(bd);
        let options = &bd.spec.options;
        let config = options
            .helm
            .as_ref()
            .and_then(|h| h.values.clone())
            .map(Value::Object)
            .unwrap_or_else(|| json!({}));
        let chart_name = chart
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(&bundle)
            .to_string();
        let manifest = release::manifest_of(&chart_name, &objects);
        let now = now_rfc3339();
        let mut attempt = 0;
        let (rel, resource_version, record_tail) = loop {
            attempt += 1;
            let revision = release::next_revision(&state.records);
            let first_deployed = state
                .current
                .as_ref()
                .map(|p| p.release.info.first_deployed.clone())
                .unwrap_or_else(|| now.clone());
            let rel = Release {
                name: release_name.to_string(),
                namespace: release_namespace.to_string(),
                version: revision,
                info: ReleaseInfo {
                    first_deployed,
                    last_deployed: now.clone(),
                    description: if revision == 1 {
                        "Install complete".into()
                    } else {
                        "Upgrade complete".into()
                    },
                    status: release::status::DEPLOYED.into(),
                    ..Default::default()
                },
                chart: ReleaseChart {
                    metadata: chart.clone(),
                    values: json!({}),
                },
                config: config.clone(),
                manifest: manifest.clone(),
            };
            let tail = release::RecordTail::of(&rel).map(Arc::new);
            match self.create_record(&bundle, &rel, tail.as_deref()).await {
                Ok(rv) => break (rel, rv, tail),
                Err(DeployError::Downstream { source, .. })
                    if attempt == 1 && api_code(&source) == Some(409) =>
                {
                    tracing::debug!(release = %rel.id(), "release record exists already; reading the release again");
                    state = self
                        .read_release(&bundle, release_name, release_namespace)
                        .await?;
                }
                Err(e) => {
                    self.releases.forget(release_namespace, release_name);
                    return Err(e);
                }
            }
        };
        let revision = rel.version;
        let max_history = options
            .helm
            .as_ref()
            .map(|h| usize::try_from(h.max_history).unwrap_or(0))
            .filter(|m| *m > 0)
            .unwrap_or(release::DEFAULT_MAX_HISTORY);
        let history = release::plan_history(&state.records, revision, max_history);
        let mut stale = false;
        for (rev, _) in &state.records {
            let result = if history.delete.contains(rev) {
                self.delete_record(&bundle, release_name, release_namespace, *rev)
                    .await
                    .map(|()| true)
            } else if history.supersede.contains(rev) {
                self.supersede_record(&bundle, &state, release_name, release_namespace, *rev)
                    .await
            } else {
                Ok(true)
            };
            match result {
                Ok(found) => stale |= !found,
                Err(e) => {
                    self.releases.forget(release_namespace, release_name);
                    return Err(e);
                }
            }
        }
        let deployed = Arc::new(Deployed {
            release: rel,
            objects,
            record_tail,
        });
        if stale {
            // Records this agent knew were gone: read them again next time.
            self.releases.forget(release_namespace, release_name);
        } else {
            self.releases.put(
                release_namespace,
                release_name,
                state.after_upgrade(deployed.clone(), resource_version, &history),
            );
        }
        Ok(deployed)
    }

    /// Creates the record of a new revision; returns its resourceVersion.
    async fn create_record(
        &self,
        bundle: &str,
        rel: &Release,
        tail: Option<&release::RecordTail>,
    ) -> Result<String, DeployError> {
        let name = release::secret_name(&rel.name, rel.version);
        let secret = match tail {
            Some(tail) => release::record_secret_with(rel, release::encode_with_tail(rel, tail)),
            None => release::record_secret(rel),
        };
        let error = |source| {
            Self::record_error(
                bundle,
                "creating release record",
                format!("{}/{name}", rel.namespace),
                source,
            )
        };
        let url = <Secret as kube::Resource>::url_path(&(), Some(&rel.namespace));
        let body = serde_json::to_vec(&secret).map_err(|e| error(kube::Error::SerdeError(e)))?;
        let request = kube::core::Request::new(url)
            .create(&PostParams::default(), body)
            .map_err(|e| error(kube::Error::BuildRequest(e)))?;
        let text = self
            .downstream
            .client
            .request_text(request)
            .await
            .map_err(error)?;
        let created: Head =
            serde_json::from_str(&text).map_err(|e| error(kube::Error::SerdeError(e)))?;
        Ok(created.metadata.resource_version.unwrap_or_default())
    }

    /// Marks revision `rev` superseded (labels and payload, as Helm's update does). `false`
    /// when the record is gone.
    async fn supersede_record(
        &self,
        bundle: &str,
        state: &ReleaseState,
        name: &str,
        namespace: &str,
        rev: i64,
    ) -> Result<bool, DeployError> {
        let secret_name = release::secret_name(name, rev);
        let known = state
            .current
            .as_ref()
            .filter(|c| c.release.version == rev)
            .map(|c| (c.release.clone(), c.record_tail.clone()));
        let (old, tail) = match known {
            Some(known) => known,
            None => {
                let secret = self.read_record(bundle, namespace, &secret_name).await?;
                let Some(secret) = secret else {
                    return Ok(false);
                };
                let data = Self::record_data(&secret);
                match release::decode(&secret_name, data) {
                    Ok(r) => (r, None),
                    // Not ours to repair: leave a record we cannot read as it is.
                    Err(_) => return Ok(true),
                }
            }
        };
        let mut old = old;
        old.info.status = release::status::SUPERSEDED.into();
        let payload = match &tail {
            Some(tail) => release::encode_with_tail(&old, tail),
            None => release::encode(&old),
        };
        let payload = String::from_utf8(payload).unwrap_or_default();
        let patch = json!({
            "metadata": {"labels": release::secret_labels(&old)},
            "data": {"release": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, payload)},
        });
        let error = |source| {
            Self::record_error(
                bundle,
                "superseding release record",
                format!("{namespace}/{secret_name}"),
                source,
            )
        };
        // The response (the whole record) is not read.
        let url = <Secret as kube::Resource>::url_path(&(), Some(namespace));
        let request = kube::core::Request::new(url)
            .patch(&secret_name, &PatchParams::default(), &Patch::Merge(&patch))
            .map_err(|e| error(kube::Error::BuildRequest(e)))?;
        match self.downstream.client.request_text(request).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(source) => Err(error(source)),
        }
    }

    /// The namespace (applied when the check says so), then every object in Helm's order
    /// (the objects of one kind concurrently). When a namespace this agent remembered as
    /// ensured was not looked at and an apply fails, it is checked and ensured for real and
    /// the objects are applied once more.
    async fn apply_all(
        &self,
        bd: &BundleDeployment,
        namespace: &str,
        check: NamespaceCheck,
        objects: &[Value],
    ) -> Result<BTreeMap<ObjectKey, Value>, DownstreamError> {
        if matches!(check, NamespaceCheck::Apply | NamespaceCheck::Missing) {
            self.apply_namespace(bd, namespace).await?;
        }
        match self.apply_in_batches(objects).await {
            Err(e) if check == NamespaceCheck::Remembered => {
                tracing::debug!(%namespace, error = %e, "apply failed in a namespace ensured earlier; ensuring it again");
                self.namespaces.forget(namespace);
                if matches!(
                    self.check_namespace(bd, namespace).await?,
                    NamespaceCheck::Apply | NamespaceCheck::Missing
                ) {
                    self.apply_namespace(bd, namespace).await?;
                }
                self.apply_in_batches(objects).await
            }
            other => other,
        }
    }

    async fn apply_in_batches(
        &self,
        objects: &[Value],
    ) -> Result<BTreeMap<ObjectKey, Value>, DownstreamError> {
        let mut applied = BTreeMap::new();
        for batch in apply_batches(objects) {
            let mut applies = Vec::with_capacity(batch.len());
            for (key, obj) in batch {
                applies.push(async move {
                    let result = self.downstream.apply(&key, obj).await;
                    (key, result)
                });
            }
            let results: Vec<(ObjectKey, Result<Value, DownstreamError>)> =
                futures::stream::iter(applies)
                    .buffered(CONCURRENT_REQUESTS)
                    .collect()
                    .await;
            for (key, result) in results {
                applied.insert(key, result?);
            }
        }
        Ok(applied)
    }

    /// Applies one object; with `force`, an object whose apply is rejected (e.g. an immutable
    /// field) is deleted and created again.
    pub async fn apply_object(
        &self,
        key: &ObjectKey,
        obj: &Value,
        force: bool,
    ) -> Result<Value, DownstreamError> {
        match self.downstream.apply(key, obj).await {
            Ok(applied) => Ok(applied),
            Err(DownstreamError::Object {
                source: kube::Error::Api(s),
                ..
            }) if force && (s.code == 422 || s.code == 409 || s.code == 400) => {
                self.downstream.delete(key).await?;
                // Deletion may wait on finalizers; apply again until the old object is gone.
                let mut last = None;
                for _ in 0..20 {
                    match self.downstream.apply(key, obj).await {
                        Ok(applied) => return Ok(applied),
                        Err(e) => last = Some(e),
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
                match last {
                    Some(e) => Err(e),
                    None => self.downstream.apply(key, obj).await,
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Leaves an object that left the bundle in place, without our ownership marks (`keepResources`).
    async fn release_object(&self, key: &ObjectKey) -> Result<(), DownstreamError> {
        let patch = json!({"metadata": {
            "labels": {consts::objectset::HASH_LABEL: null, release::MANAGED_BY_LABEL: null},
            "annotations": {
                consts::objectset::ID_ANNOTATION: null,
                release::HELM_RELEASE_NAME_ANNOTATION: null,
                release::HELM_RELEASE_NAMESPACE_ANNOTATION: null,
            },
        }});
        match self.downstream.merge_patch(key, &patch).await {
            Err(DownstreamError::Object {
                source: kube::Error::Api(s),
                ..
            }) if s.code == 404 => Ok(()),
            other => other,
        }
    }

    /// Whether the release namespace needs an apply: it is missing, or labels or annotations
    /// are requested (applied on every deployment). A namespace this agent saw or created
    /// before is not looked at again.
    async fn check_namespace(
        &self,
        bd: &BundleDeployment,
        namespace: &str,
    ) -> Result<NamespaceCheck, DownstreamError> {
        let options = &bd.spec.options;
        if !(options.namespace_labels.is_empty() && options.namespace_annotations.is_empty()) {
            return Ok(NamespaceCheck::Apply);
        }
        if self.namespaces.is_ensured(namespace, "") {
            return Ok(NamespaceCheck::Remembered);
        }
        let key = namespace_key(namespace);
        if self.downstream.get(&key).await?.is_some() {
            self.namespaces.ensured(namespace, "");
            return Ok(NamespaceCheck::Exists);
        }
        Ok(NamespaceCheck::Missing)
    }

    /// Creates the release namespace as Helm's `--create-namespace` does (a create that may
    /// find it exists): `Created`, or `Exists`. The response is not read.
    async fn create_namespace(&self, namespace: &str) -> Result<NamespaceCheck, DownstreamError> {
        let key = namespace_key(namespace);
        let error = |source| DownstreamError::Object {
            action: "creating",
            object: describe(&key),
            source,
        };
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
        let body = serde_json::to_vec(&ns).map_err(|e| error(kube::Error::SerdeError(e)))?;
        let url = <k8s_openapi::api::core::v1::Namespace as kube::Resource>::url_path(&(), None);
        let request = kube::core::Request::new(url)
            .create(&PostParams::default(), body)
            .map_err(|e| error(kube::Error::BuildRequest(e)))?;
        let check = match self.downstream.client.request_text(request).await {
            Ok(_) => NamespaceCheck::Created,
            Err(kube::Error::Api(s)) if s.code == 409 => NamespaceCheck::Exists,
            Err(source) => return Err(error(source)),
        };
        self.namespaces.ensured(namespace, "");
        Ok(check)
    }

    /// Applies the release namespace with the requested labels and annotations.
    async fn apply_namespace(
        &self,
        bd: &BundleDeployment,
        namespace: &str,
    ) -> Result<(), DownstreamError> {
        let options = &bd.spec.options;
        let mut meta = json!({"name": namespace});
        if !options.namespace_labels.is_empty() {
            meta["labels"] = json!(options.namespace_labels);
        }
        if !options.namespace_annotations.is_empty() {
            meta["annotations"] = json!(options.namespace_annotations);
        }
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta});
        self.downstream
            .apply(&namespace_key(namespace), &ns)
            .await?;
        self.namespaces.ensured(namespace, "");
        Ok(())
    }

    async fn delete_record(
        &self,
        bundle: &str,
        name: &str,
        namespace: &str,
        rev: i64,
    ) -> Result<(), DeployError> {
        let key = ObjectKey {
            api_version: "v1".into(),
            kind: "Secret".into(),
            namespace: namespace.to_string(),
            name: release::secret_name(name, rev),
        };
        self.downstream
            .delete(&key)
            .await
            .map_err(|source| DeployError::Downstream {
                bundle: bundle.to_string(),
                source,
            })
    }

    /// Removes what a BundleDeployment deployed (Helm uninstall): every object of its deployed
    /// release unless `keepResources`, then the release records; with `deleteNamespace`, the
    /// release namespace too.
    pub async fn uninstall(&self, bd: &BundleDeployment) -> Result<(), DeployError> {
        let bundle = bd_name(bd);
        let (mut name, mut namespace) = self.release_name_and_namespace(bd);
        if let Some((ns, n, _)) = bd
            .status
            .as_ref()
            .and_then(|s| release::parse_release_id(&s.release))
        {
            namespace = ns;
            name = n;
        }
        let state = self.read_release(&bundle, &name, &namespace).await?;
        let current = state.current.clone();
        let keep = bd.spec.options.keep_resources
            || current.as_ref().is_some_and(|c| {
                c.release
                    .chart_annotation(consts::KEEP_RESOURCES_ANNOTATION)
                    == Some("true")
            });
        if let Some(current) = &current {
            let mut seen = BTreeSet::new();
            for obj in current.objects.iter().rev() {
                let key = plan::key_of(obj);
                if !seen.insert(key.clone()) {
                    continue;
                }
                let kept = obj
                    .pointer("/metadata/annotations/helm.sh~1resource-policy")
                    .and_then(Value::as_str)
                    == Some("keep");
                let result = if keep || kept {
                    self.release_object(&key).await
                } else {
                    self.downstream.delete(&key).await
                };
                result.map_err(|source| DeployError::Downstream {
                    bundle: bundle.clone(),
                    source,
                })?;
            }
        }
        for (rev, _) in &state.records {
            self.delete_record(&bundle, &name, &namespace, *rev).await?;
        }
        self.releases.forget(&namespace, &name);
        let protected = ["default", "kube-system", "kube-public", "kube-node-lease"];
        if bd.spec.options.delete_namespace
            && !keep
            && !protected.contains(&namespace.as_str())
            && namespace != self.config.agent_namespace
        {
            let key = ObjectKey {
                api_version: "v1".into(),
                kind: "Namespace".into(),
                namespace: String::new(),
                name: namespace.clone(),
            };
            self.namespaces.forget(&namespace);
            self.downstream
                .delete(&key)
                .await
                .map_err(|source| DeployError::Downstream {
                    bundle: bundle.clone(),
                    source,
                })?;
        }
        Ok(())
    }
}

/// The chart metadata recorded in the release: the chart's Chart.yaml for Helm bundles, else
/// the chart Fleet generates (`name` = bundle, version `v0.0.0+<manifest id>`), plus Fleet's
/// annotations.
fn chart_metadata(
    resources: &[BundleResource],
    bd: &BundleDeployment,
    config: &AgentConfig,
    manifest_id: &str,
) -> Value {
    let bundle = bd_name(bd);
    let style =
        render::determine_style(resources.iter().map(|r| r.name.as_str()), &bd.spec.options);
    let mut meta = style
        .chart_path
        .as_ref()
        .and_then(|path| resources.iter().find(|r| &r.name == path))
        .and_then(|r| fleet_bundle::content::decode(&r.content, &r.encoding).ok())
        .and_then(|bytes| serde_norway::from_slice::<serde_norway::Value>(&bytes).ok())
        .map(fleet_bundle::render::objects::yaml_to_json)
        .filter(Value::is_object)
        .unwrap_or_else(|| {
            json!({
                "apiVersion": "v2",
                "name": bundle,
                "version": format!("v0.0.0+{manifest_id}"),
            })
        });
    let commit = bd
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(consts::COMMIT_LABEL))
        .cloned()
        .unwrap_or_default();
    let mut annotations = serde_json::Map::new();
    annotations.insert(consts::BUNDLE_ID_ANNOTATION.into(), Value::String(bundle));
    annotations.insert(
        consts::AGENT_NAMESPACE_ANNOTATION.into(),
        Value::String(config.agent_namespace.clone()),
    );
    annotations.insert(
        consts::KEEP_RESOURCES_ANNOTATION.into(),
        Value::String(bd.spec.options.keep_resources.to_string()),
    );
    if !commit.is_empty() {
        annotations.insert(consts::COMMIT_ANNOTATION.into(), Value::String(commit));
    }
    if !bd.spec.options.service_account.is_empty() {
        annotations.insert(
            consts::SERVICE_ACCOUNT_ANNOTATION.into(),
            Value::String(bd.spec.options.service_account.clone()),
        );
    }
    if let Some(m) = meta.as_object_mut() {
        let entry = m.entry("annotations").or_insert_with(|| json!({}));
        if let Value::Object(a) = entry {
            a.extend(annotations);
        }
    }
    meta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_id_is_the_part_before_the_colon() {
        assert_eq!(manifest_id("s-abc:hash"), "s-abc");
        assert_eq!(manifest_id("s-abc"), "s-abc");
    }
}

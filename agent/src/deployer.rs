//! The deployer (Fleet's `internal/cmd/agent/deployer` + `internal/helmdeployer`): renders a
//! BundleDeployment's Content, applies the objects to the downstream cluster with server-side
//! apply, prunes what left the bundle, keeps Helm release records, and uninstalls.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::sync::Arc;

use fleet_api::{BundleDeployment, BundleResource, Content, consts};
use fleet_bundle::render::{self, RenderOptions};
use kube::api::{Api, ListParams};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::config::AgentConfig;
use crate::downstream::{Downstream, DownstreamError, describe};
use crate::monitor::ObjectKey;
use crate::plan::{self, Ownership};
use crate::release::{self, Release, ReleaseChart, ReleaseInfo};

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
}

/// Deploys BundleDeployments into the downstream cluster.
#[derive(Clone)]
pub struct Deployer {
    upstream: kube::Client,
    pub downstream: Downstream,
    config: Arc<AgentConfig>,
    kube_version: Arc<OnceCell<String>>,
    charts: crate::chartsource::ChartSource,
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
        }
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

    async fn load_resources(
        &self,
        bd: &BundleDeployment,
    ) -> Result<Vec<BundleResource>, DeployError> {
        if bd.spec.helm_chart_options.is_some() {
            // HelmOp bundles carry no resources: the chart comes from its repository.
            return Ok(self.charts.resources(bd).await?.as_ref().clone());
        }
        let bundle = bd_name(bd);
        let id = manifest_id(&bd.spec.deployment_id).to_string();
        let content = Api::<Content>::all(self.upstream.clone())
            .get(&id)
            .await
            .map_err(|source| DeployError::ContentGet {
                content: id.clone(),
                bundle: bundle.clone(),
                source,
            })?;
        let invalid = |message: String| DeployError::ContentInvalid {
            content: id.clone(),
            bundle: bundle.clone(),
            message,
        };
        let data = content.content.map(|c| c.0).unwrap_or_default();
        let mut json = Vec::new();
        if data.starts_with(&[0x1f, 0x8b]) {
            flate2::read::GzDecoder::new(data.as_slice())
                .read_to_end(&mut json)
                .map_err(|e| invalid(format!("cannot gunzip: {e}")))?;
        } else {
            json = data;
        }
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
            let options = bd.spec.options.clone();
            let res = resources.clone();
            let out = tokio::task::spawn_blocking(move || render::render(&res, &options, &ro))
                .await
                .map_err(|e| DeployError::Release {
                    bundle: bundle.clone(),
                    message: format!("render task failed: {e}"),
                })?
                .map_err(|source| DeployError::Render {
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
        let chart = chart_metadata(&resources, bd, &self.config);
        Ok((objects, chart))
    }

    /// The release records of `name` in `namespace`: (revision, status, secret name, data).
    async fn release_records(
        &self,
        bundle: &str,
        name: &str,
        namespace: &str,
    ) -> Result<Vec<(i64, String, Vec<u8>)>, DeployError> {
        let api: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(self.downstream.client.clone(), namespace);
        let list = api
            .list(&ListParams::default().labels(&format!("owner=helm,name={name}")))
            .await
            .map_err(|source| DeployError::Downstream {
                bundle: bundle.to_string(),
                source: DownstreamError::Object {
                    action: "listing release records of",
                    object: format!("release {namespace}/{name}"),
                    source,
                },
            })?;
        let mut out = Vec::new();
        for s in list.items {
            if s.type_.as_deref() != Some(release::RELEASE_SECRET_TYPE) {
                continue;
            }
            let labels = s.metadata.labels.clone().unwrap_or_default();
            let Some(rev) = labels
                .get(release::VERSION_LABEL)
                .and_then(|v| v.parse().ok())
            else {
                continue;
            };
            let status = labels
                .get(release::STATUS_LABEL)
                .cloned()
                .unwrap_or_default();
            let data = s
                .data
                .as_ref()
                .and_then(|d| d.get("release"))
                .map(|b| b.0.clone())
                .unwrap_or_default();
            out.push((rev, status, data));
        }
        out.sort_by_key(|(rev, _, _)| *rev);
        Ok(out)
    }

    /// The deployed revision of a release (the newest with status `deployed`).
    pub async fn current_release(
        &self,
        bundle: &str,
        name: &str,
        namespace: &str,
    ) -> Result<Option<Deployed>, DeployError> {
        let records = self.release_records(bundle, name, namespace).await?;
        let Some((rev, _, data)) = records
            .iter()
            .rev()
            .find(|(_, status, _)| status == release::status::DEPLOYED)
        else {
            return Ok(None);
        };
        let secret = release::secret_name(name, *rev);
        let rel = release::decode(&secret, data).map_err(|e| DeployError::Release {
            bundle: bundle.to_string(),
            message: e.to_string(),
        })?;
        let objects = release::manifest_objects(&rel).map_err(|message| DeployError::Release {
            bundle: bundle.to_string(),
            message,
        })?;
        Ok(Some(Deployed {
            release: rel,
            objects,
        }))
    }

    /// Deploys the BundleDeployment's current `deploymentID`: render, ownership checks, namespace,
    /// server-side apply of every object, prune, release record. Nothing is pruned or recorded
    /// when rendering or applying fails, so what is deployed stays.
    pub async fn deploy(&self, bd: &BundleDeployment) -> Result<Deployed, DeployError> {
        let bundle = bd_name(bd);
        let (release_name, release_namespace) = self.release_name_and_namespace(bd);
        let (objects, chart) = self
            .desired_objects(bd, &release_name, &release_namespace)
            .await?;
        let options = &bd.spec.options;
        let take_ownership = options.helm.as_ref().is_some_and(|h| h.take_ownership);
        let dstream = |source| DeployError::Downstream {
            bundle: bundle.clone(),
            source,
        };

        // Helm refuses to adopt objects owned by others unless told to.
        if !take_ownership {
            for obj in &objects {
                let key = plan::key_of(obj);
                let Some(live) = self.downstream.get(&key).await.map_err(dstream)? else {
                    continue;
                };
                match plan::ownership(&live, &release_name, &release_namespace) {
                    Ownership::Ours => {}
                    Ownership::Unowned => {
                        return Err(DeployError::NotOwned {
                            bundle,
                            object: describe(&key),
                            owner: String::new(),
                        });
                    }
                    Ownership::Other(owner) => {
                        return Err(DeployError::NotOwned {
                            bundle,
                            object: describe(&key),
                            owner: format!(" (it belongs to release {owner})"),
                        });
                    }
                }
            }
        }

        self.ensure_namespace(bd, &release_namespace)
            .await
            .map_err(dstream)?;
        for obj in &objects {
            let key = plan::key_of(obj);
            self.apply_object(&key, obj, false).await.map_err(dstream)?;
        }

        let records = self
            .release_records(&bundle, &release_name, &release_namespace)
            .await?;
        let previous = self
            .current_release(&bundle, &release_name, &release_namespace)
            .await?;
        if let Some(prev) = &previous {
            for key in plan::prune_set(&prev.objects, &objects) {
                if options.keep_resources {
                    self.release_object(&key).await.map_err(dstream)?;
                } else {
                    self.downstream.delete(&key).await.map_err(dstream)?;
                }
            }
        }

        let existing: Vec<(i64, String)> = records
            .iter()
            .map(|(rev, status, _)| (*rev, status.clone()))
            .collect();
        let revision = release::next_revision(&existing);
        let now = now_rfc3339();
        let first_deployed = previous
            .as_ref()
            .map(|p| p.release.info.first_deployed.clone())
            .unwrap_or_else(|| now.clone());
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
        let rel = Release {
            name: release_name.clone(),
            namespace: release_namespace.clone(),
            version: revision,
            info: ReleaseInfo {
                first_deployed,
                last_deployed: now,
                description: if revision == 1 {
                    "Install complete".into()
                } else {
                    "Upgrade complete".into()
                },
                status: release::status::DEPLOYED.into(),
                ..Default::default()
            },
            chart: ReleaseChart {
                metadata: chart,
                values: json!({}),
            },
            config,
            manifest: release::manifest_of(&chart_name, &objects),
        };
        self.write_record(&bundle, &rel).await?;
        let max_history = options
            .helm
            .as_ref()
            .map(|h| usize::try_from(h.max_history).unwrap_or(0))
            .filter(|m| *m > 0)
            .unwrap_or(release::DEFAULT_MAX_HISTORY);
        let history = release::plan_history(&existing, revision, max_history);
        for (rev, _, data) in &records {
            if history.delete.contains(rev) {
                self.delete_record(&bundle, &release_name, &release_namespace, *rev)
                    .await?;
            } else if history.supersede.contains(rev) {
                let secret = release::secret_name(&release_name, *rev);
                if let Ok(mut old) = release::decode(&secret, data) {
                    old.info.status = release::status::SUPERSEDED.into();
                    self.write_record(&bundle, &old).await?;
                }
            }
        }
        Ok(Deployed {
            release: rel,
            objects,
        })
    }

    /// Applies one object; with `force`, an object whose apply is rejected (e.g. an immutable
    /// field) is deleted and created again.
    pub async fn apply_object(
        &self,
        key: &ObjectKey,
        obj: &Value,
        force: bool,
    ) -> Result<(), DownstreamError> {
        match self.downstream.apply(key, obj).await {
            Ok(_) => Ok(()),
            Err(DownstreamError::Object {
                source: kube::Error::Api(s),
                ..
            }) if force && (s.code == 422 || s.code == 409 || s.code == 400) => {
                self.downstream.delete(key).await?;
                // Deletion may wait on finalizers; apply again until the old object is gone.
                let mut last = None;
                for _ in 0..20 {
                    match self.downstream.apply(key, obj).await {
                        Ok(_) => return Ok(()),
                        Err(e) => last = Some(e),
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
                match last {
                    Some(e) => Err(e),
                    None => Ok(()),
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

    async fn ensure_namespace(
        &self,
        bd: &BundleDeployment,
        namespace: &str,
    ) -> Result<(), DownstreamError> {
        let options = &bd.spec.options;
        let key = ObjectKey {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            namespace: String::new(),
            name: namespace.to_string(),
        };
        let exists = self.downstream.get(&key).await?.is_some();
        if exists && options.namespace_labels.is_empty() && options.namespace_annotations.is_empty()
        {
            return Ok(());
        }
        let mut meta = json!({"name": namespace});
        if !options.namespace_labels.is_empty() {
            meta["labels"] = json!(options.namespace_labels);
        }
        if !options.namespace_annotations.is_empty() {
            meta["annotations"] = json!(options.namespace_annotations);
        }
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta});
        self.downstream.apply(&key, &ns).await.map(|_| ())
    }

    async fn write_record(&self, bundle: &str, rel: &Release) -> Result<(), DeployError> {
        let key = ObjectKey {
            api_version: "v1".into(),
            kind: "Secret".into(),
            namespace: rel.namespace.clone(),
            name: release::secret_name(&rel.name, rel.version),
        };
        self.downstream
            .apply(&key, &release::to_secret(rel))
            .await
            .map(|_| ())
            .map_err(|source| DeployError::Downstream {
                bundle: bundle.to_string(),
                source,
            })
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
        let current = self.current_release(&bundle, &name, &namespace).await?;
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
        for (rev, _, _) in self.release_records(&bundle, &name, &namespace).await? {
            self.delete_record(&bundle, &name, &namespace, rev).await?;
        }
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
                "version": format!("v0.0.0+{}", fleet_bundle::manifest::manifest_id(resources)),
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

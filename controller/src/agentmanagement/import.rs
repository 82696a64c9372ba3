//! Fleet's cluster import (`controllers/cluster/import.go`): for a Cluster with
//! `spec.kubeConfigSecret` the controller installs the agent itself. It creates a
//! ClusterRegistrationToken `import-token-<cluster>`, waits for its values, then in the
//! downstream cluster deletes the old agent — its credential and bootstrap secrets, and both a
//! StatefulSet (the pre-0.12 agent) and a Deployment named `fleet-agent` — and applies the
//! namespace, the bootstrap secret, the agent ConfigMap and the manifest. The new agent registers
//! with the token (re-using the Cluster by its clientID); what the old agent deployed is left
//! alone, so deployed objects keep their identity.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fleet_api::consts::{LABEL_PREFIX, condition};
use fleet_api::{Cluster, ClusterRegistrationToken, ClusterRegistrationTokenSpec, ClusterStatus};
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::{Action, Config as RuntimeConfig};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource as _, ResourceExt as _};
use tokio_util::sync::CancellationToken;

use super::manageagent::{AgentSettingsRecord, hash_field};
use super::manifest::{
    AGENT_BOOTSTRAP_SECRET, AGENT_NAME, ManifestOptions, agent_bootstrap_secret, agent_config_map,
    agent_manifest, agent_namespace_for, agent_namespace_object, to_value,
};
use super::{AgentManagementError, now_rfc3339, patch_cluster_status};
use crate::Context;
use crate::summary::set_condition;

/// Prefix of the registration token the import creates (Fleet's `ImportTokenPrefix`).
pub const IMPORT_TOKEN_PREFIX: &str = "import-token-";
/// Lifetime of that token (Fleet's `durations.ClusterImportTokenTTL`).
pub const IMPORT_TOKEN_TTL: Duration = Duration::from_secs(12 * 60 * 60);
/// Keys of the kubeconfig secret (Fleet's `config.KubeConfigSecretValueKey`, ...).
pub const KUBECONFIG_KEY: &str = "value";
pub const API_SERVER_URL_KEY: &str = "apiServerURL";
pub const API_SERVER_CA_KEY: &str = "apiServerCA";
/// Key of the token's values secret.
pub const TOKEN_VALUES_KEY: &str = "values";
/// Field manager of the objects the import applies downstream.
pub const FIELD_MANAGER: &str = "fleet-agentmanagement";

/// Fleet's `agentDeployed`: nothing to import when the agent was deployed for the current
/// `redeployAgentGeneration` and no setting changed since.
pub fn agent_deployed(cluster: &Cluster) -> bool {
    let Some(status) = cluster.status.as_ref() else {
        return false;
    };
    if status.agent_config_changed
        || !status.agent_migrated
        || !status.cattle_namespace_migrated
        || !status.agent_namespace_migrated
    {
        return false;
    }
    if !cluster.spec.agent_namespace.is_empty()
        && status.agent.namespace != cluster.spec.agent_namespace
    {
        return false;
    }
    status.agent_deployed_generation == Some(cluster.spec.redeploy_agent_generation)
}

/// Name of the import token of `cluster_name`.
pub fn import_token_name(cluster_name: &str) -> String {
    fleet_bundle::names::safe_concat_name(&[&format!("{IMPORT_TOKEN_PREFIX}{cluster_name}")])
}

/// Labels of the Cluster handed to the agent's config (Fleet drops its own and wrangler's).
pub fn exported_labels(cluster: &Cluster) -> BTreeMap<String, String> {
    cluster
        .labels()
        .iter()
        .filter(|(k, _)| {
            !k.starts_with(LABEL_PREFIX)
                && !k.starts_with("objectset.rio.cattle.io/")
                && !k.starts_with("kubectl.kubernetes.io/")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Parses the `values` of a registration token's secret: YAML with `token`, `apiServerURL`,
/// `apiServerCA`, `systemRegistrationNamespace`, `clusterNamespace` (strings only are kept).
pub fn parse_token_values(values: &str) -> Result<BTreeMap<String, String>, String> {
    let doc: serde_json::Value =
        serde_norway::from_str(values).map_err(|e| format!("token values are not YAML: {e}"))?;
    let map = doc
        .as_object()
        .ok_or_else(|| "token values are not a mapping".to_string())?;
    if !map.contains_key("token") {
        return Err("failed to find token in values".to_string());
    }
    Ok(map
        .iter()
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect())
}

/// Everything applied downstream, in order: the agent namespace, the bootstrap secret, the
/// ConfigMap, the manifest.
pub fn import_objects(
    cluster: &Cluster,
    config: &crate::ControllerConfig,
    bootstrap_values: &BTreeMap<String, String>,
    agent_tls_mode: &str,
) -> Vec<serde_json::Value> {
    let agent_namespace = agent_namespace_for(cluster, &config.agent_namespace);
    let mut opts = ManifestOptions::for_cluster(config, &cluster.spec);
    opts.agent_tls_mode = agent_tls_mode.to_string();
    let mut objs = vec![
        to_value(&agent_namespace_object(&agent_namespace)),
        to_value(&agent_bootstrap_secret(&agent_namespace, bootstrap_values)),
        to_value(&agent_config_map(
            &agent_namespace,
            &cluster.spec.client_id,
            &exported_labels(cluster),
            agent_tls_mode,
        )),
    ];
    objs.extend(agent_manifest(
        &agent_namespace,
        &cluster.spec.agent_namespace,
        &opts,
    ));
    objs
}

/// Server-side applies `objs` (JSON with apiVersion/kind/metadata) with `client`.
pub async fn apply_objects(
    client: &kube::Client,
    objs: &[serde_json::Value],
) -> Result<(), kube::Error> {
    for obj in objs {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let api: Api<DynamicObject> = match obj["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await?;
    }
    Ok(())
}

async fn delete_ignoring_missing<K>(api: &Api<K>, name: &str) -> Result<bool, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Fleet's `deleteOldAgent`: the agent's secrets, and a StatefulSet and a Deployment named
/// `fleet-agent`, in `namespace` downstream.
pub async fn delete_old_agent(
    downstream: &kube::Client,
    namespace: &str,
) -> Result<(), kube::Error> {
    let secrets: Api<Secret> = Api::namespaced(downstream.clone(), namespace);
    delete_ignoring_missing(&secrets, AGENT_NAME).await?;
    delete_ignoring_missing(&secrets, AGENT_BOOTSTRAP_SECRET).await?;
    let statefulsets: Api<StatefulSet> = Api::namespaced(downstream.clone(), namespace);
    if delete_ignoring_missing(&statefulsets, AGENT_NAME).await? {
        tracing::info!(%namespace, "deleted the pre-0.12 agent StatefulSet");
    }
    let deployments: Api<Deployment> = Api::namespaced(downstream.clone(), namespace);
    delete_ignoring_missing(&deployments, AGENT_NAME).await?;
    Ok(())
}

/// The result of one import attempt.
enum Outcome {
    /// Waiting for something (the token's values); try again after the delay.
    Wait(Duration),
    /// The agent was deployed; the new status.
    Deployed(Box<ClusterStatus>),
}

fn random_client_id() -> String {
    use rand::Rng as _;
    let bytes: [u8; 27] = rand::rng().random();
    // wrangler's randomtoken: 54 characters of [b-z2-9]-like alphabet; hex is as good.
    hex::encode(bytes)
}

async fn import_cluster(
    ctx: &Context,
    cluster: &Cluster,
    key: &str,
) -> Result<Outcome, AgentManagementError> {
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let config = &ctx.config;
    let secret_ns = if cluster.spec.kube_config_secret_namespace.is_empty() {
        ns.clone()
    } else {
        cluster.spec.kube_config_secret_namespace.clone()
    };
    let secret_name = &cluster.spec.kube_config_secret;
    let import_err = |message: String| AgentManagementError::Import {
        cluster: key.to_string(),
        message,
    };
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), &secret_ns)
        .get_opt(secret_name)
        .await
        .map_err(AgentManagementError::kube(
            format!("reading kubeconfig secret {secret_ns}/{secret_name}"),
            key,
        ))?
        .ok_or_else(|| {
            import_err(format!(
                "kubeconfig secret {secret_ns}/{secret_name} not found"
            ))
        })?;
    let data = secret.data.unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .unwrap_or_default()
    };
    let kubeconfig = text(KUBECONFIG_KEY);
    if kubeconfig.is_empty() {
        return Err(import_err(format!(
            "kubeconfig secret {secret_ns}/{secret_name} has no key {KUBECONFIG_KEY:?}"
        )));
    }
    let downstream = config
        .downstream_connector
        .0
        .connect(&kubeconfig)
        .await
        .map_err(|source| AgentManagementError::Connect {
            cluster: key.to_string(),
            source,
        })?;
    // Fleet's smoke test: the cluster must answer before anything is deleted there.
    downstream
        .apiserver_version()
        .await
        .map_err(AgentManagementError::kube(
            "connecting to the downstream cluster",
            key,
        ))?;

    let tokens: Api<ClusterRegistrationToken> = Api::namespaced(ctx.client.clone(), &ns);
    let token_name = import_token_name(&name);
    let Some(token) = tokens
        .get_opt(&token_name)
        .await
        .map_err(AgentManagementError::kube(
            format!("reading token {ns}/{token_name}"),
            key,
        ))?
    else {
        let token = ClusterRegistrationToken {
            metadata: ObjectMeta {
                name: Some(token_name.clone()),
                namespace: Some(ns.clone()),
                owner_references: cluster.meta().uid.clone().map(|uid| {
                    vec![OwnerReference {
                        api_version: fleet_api::consts::API_VERSION.to_string(),
                        kind: "Cluster".to_string(),
                        name: name.clone(),
                        uid,
                        ..OwnerReference::default()
                    }]
                }),
                ..ObjectMeta::default()
            },
            spec: ClusterRegistrationTokenSpec {
                ttl: Some(IMPORT_TOKEN_TTL.into()),
            },
            status: None,
        };
        match tokens.create(&PostParams::default(), &token).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => {
                return Err(AgentManagementError::kube(
                    format!("creating token {ns}/{token_name}"),
                    key,
                )(e));
            }
        }
        return Ok(Outcome::Wait(Duration::from_secs(2)));
    };
    let values_secret = token
        .status
        .as_ref()
        .map(|s| s.secret_name.clone())
        .filter(|s| !s.is_empty());
    let Some(values_secret) = values_secret else {
        return Ok(Outcome::Wait(Duration::from_secs(2)));
    };
    let Some(values) = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&values_secret)
        .await
        .map_err(AgentManagementError::kube(
            format!("reading token values {ns}/{values_secret}"),
            key,
        ))?
    else {
        return Ok(Outcome::Wait(Duration::from_secs(2)));
    };
    let raw_values = values
        .data
        .as_ref()
        .and_then(|d| d.get(TOKEN_VALUES_KEY))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default();
    if raw_values.is_empty() {
        return Ok(Outcome::Wait(Duration::from_secs(2)));
    }
    let mut bootstrap = parse_token_values(&raw_values)
        .map_err(|m| import_err(format!("secret {ns}/{values_secret}: {m}")))?;
    // The kubeconfig secret may name the API server the agent should use (Fleet: it wins over
    // the controller's configuration, which the token values carry).
    let url = text(API_SERVER_URL_KEY);
    if !url.is_empty() {
        bootstrap.insert(API_SERVER_URL_KEY.to_string(), url);
    }
    let ca = text(API_SERVER_CA_KEY);
    if !ca.is_empty() {
        bootstrap.insert(API_SERVER_CA_KEY.to_string(), ca);
    }
    let api_server_url = bootstrap
        .get(API_SERVER_URL_KEY)
        .cloned()
        .unwrap_or_default();
    if api_server_url.is_empty() {
        return Err(import_err(
            "missing apiServerURL in fleet config for cluster auto registration".to_string(),
        ));
    }
    let api_server_ca = bootstrap
        .get(API_SERVER_CA_KEY)
        .cloned()
        .unwrap_or_default();

    let agent_namespace = agent_namespace_for(cluster, &config.agent_namespace);
    let status = cluster.status.clone().unwrap_or_default();
    if !status.agent.namespace.is_empty() && status.agent.namespace != agent_namespace {
        delete_old_agent(&downstream, &status.agent.namespace)
            .await
            .map_err(AgentManagementError::kube(
                format!("deleting the old agent in {}", status.agent.namespace),
                key,
            ))?;
    }
    delete_old_agent(&downstream, &agent_namespace)
        .await
        .map_err(AgentManagementError::kube(
            format!("deleting the old agent in {agent_namespace}"),
            key,
        ))?;
    let objs = import_objects(cluster, config, &bootstrap, "");
    apply_objects(&downstream, &objs)
        .await
        .map_err(AgentManagementError::kube(
            "deploying the agent downstream",
            key,
        ))?;
    tracing::info!(cluster = %key, namespace = %agent_namespace, "cluster import: deployed new agent");

    let mut status = status;
    status.agent_deployed_generation = Some(cluster.spec.redeploy_agent_generation);
    status.agent_migrated = true;
    status.cattle_namespace_migrated = true;
    status.agent_namespace_migrated = true;
    status.agent = fleet_api::AgentStatus {
        last_seen: None,
        namespace: cluster.spec.agent_namespace.clone(),
    };
    status.agent_config_changed = false;
    status.api_server_url = api_server_url;
    status.api_server_ca_hash = hash_field(&api_server_ca);
    AgentSettingsRecord::of(&cluster.spec).write(&mut status);
    Ok(Outcome::Deployed(Box::new(status)))
}

struct ImportContext {
    ctx: Arc<Context>,
}

async fn reconcile(
    cluster: Arc<Cluster>,
    ictx: Arc<ImportContext>,
) -> Result<Action, AgentManagementError> {
    if cluster.spec.kube_config_secret.is_empty()
        || cluster.meta().deletion_timestamp.is_some()
        || agent_deployed(&cluster)
    {
        return Ok(Action::await_change());
    }
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let key = format!("{ns}/{name}");
    let client = ictx.ctx.client.clone();
    if cluster.spec.client_id.is_empty() {
        // The agent registers with this ID; the registration then finds this Cluster.
        Api::<Cluster>::namespaced(client, &ns)
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"clientID": random_client_id()}})),
            )
            .await
            .map_err(AgentManagementError::kube("setting clientID", &key))?;
        return Ok(Action::await_change());
    }
    let span = tracing::info_span!("import_cluster", cluster = %key);
    let started = std::time::Instant::now();
    let result =
        tracing::Instrument::instrument(import_cluster(&ictx.ctx, &cluster, &key), span).await;
    ictx.ctx
        .metrics
        .reconciled("import", result.is_ok(), started.elapsed().as_secs_f64());
    let now = now_rfc3339();
    match result {
        Ok(Outcome::Wait(delay)) => Ok(Action::requeue(delay)),
        Ok(Outcome::Deployed(mut status)) => {
            set_condition(
                &mut status.conditions,
                condition::IMPORTED,
                true,
                "",
                "",
                &now,
            );
            patch_cluster_status(&client, &cluster, &status, &key).await?;
            Ok(Action::await_change())
        }
        Err(error) => {
            // Reported on the Cluster, retried slowly: a broken kubeconfig must not hammer
            // anything, and other clusters are imported meanwhile.
            tracing::warn!(cluster = %key, %error, "cluster import failed");
            let mut status = cluster.status.clone().unwrap_or_default();
            set_condition(
                &mut status.conditions,
                condition::IMPORTED,
                false,
                "Error",
                &error.to_string(),
                &now,
            );
            patch_cluster_status(&client, &cluster, &status, &key).await?;
            Ok(Action::requeue(Duration::from_secs(30)))
        }
    }
}

fn error_policy(
    cluster: Arc<Cluster>,
    error: &AgentManagementError,
    _: Arc<ImportContext>,
) -> Action {
    tracing::warn!(cluster = %format!("{}/{}", cluster.namespace().unwrap_or_default(), cluster.name_any()), %error, "cluster import reconcile failed, retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the import reconciler until `shutdown`.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) -> Result<(), AgentManagementError> {
    let workers = ctx.config.cluster_workers.clamp(1, u16::MAX as usize) as u16;
    let clusters = ctx.cluster_index();
    // Only Clusters with a kubeconfig are imported; the others are never looked at.
    let imported = clusters.subscribe().filter_map(|change| {
        let cluster = change.cluster();
        futures::future::ready(
            (!cluster.spec.kube_config_secret.is_empty())
                .then(|| ObjectRef::from_obj(cluster.as_ref())),
        )
    });
    clusters
        .controller()
        .reconcile_on(imported)
        .with_config(RuntimeConfig::default().concurrency(workers))
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(reconcile, error_policy, Arc::new(ImportContext { ctx }))
        .for_each(|_| futures::future::ready(()))
        .await;
    Ok(())
}

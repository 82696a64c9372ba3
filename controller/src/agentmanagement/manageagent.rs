//! Fleet's `manageagent` controller: every Cluster gets a Bundle `fleet-agent-<cluster>` in its
//! namespace holding the agent manifest built from the Cluster's agent settings, targeting that
//! cluster. The running agent deploys it like any bundle, so a settings change (tolerations,
//! affinity, resources, env vars, host network, private registry, `redeployAgentGeneration`)
//! rolls out a new agent Deployment downstream: the agent upgrades itself. The Cluster status
//! records hashes of the settings the agent was deployed with.

use std::sync::Arc;
use std::time::Duration;

use fleet_api::consts::NON_MANAGED_AGENT_LABEL;
use fleet_api::{
    Bundle, BundleResource, BundleSpec, BundleTarget, Cluster, ClusterSpec, ClusterStatus,
    HelmOptions,
};
use futures::StreamExt as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference,
};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::controller::{Action, Config as RuntimeConfig};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Resource as _, ResourceExt as _};
use serde::Serialize;
use sha2::Digest as _;
use tokio_util::sync::CancellationToken;

use super::manifest::{ManifestOptions, agent_manifest, agent_namespace_for, to_yaml};
use super::validate::{describe, validate_agent_settings};
use super::{AgentManagementError, now_rfc3339, patch_cluster_status_fresh};
use crate::Context;
use crate::clusters::ClusterIndex;
use crate::summary::set_condition;
use fleet_api::unmanaged::Unmanaged;

/// Prefix of the per-cluster agent bundle (Fleet's `AgentBundleName`).
pub const AGENT_BUNDLE_NAME: &str = "fleet-agent";
/// Condition of the Cluster that reports whether its agent settings could be deployed
/// (Fleet's manageagent status handler condition).
pub const RECONCILED_CONDITION: &str = "Reconciled";

/// Name of the agent bundle of `cluster_name`.
pub fn agent_bundle_name(cluster_name: &str) -> String {
    fleet_bundle::names::safe_concat_name(&[AGENT_BUNDLE_NAME, cluster_name])
}

/// Fleet's `hashStatusField`: SHA-224 of the JSON of a field, hex.
pub fn hash_field<T: Serialize>(field: &T) -> String {
    let json = serde_json::to_vec(field).unwrap_or_default();
    hex::encode(sha2::Sha224::digest(&json))
}

/// The hashes and plain values of a Cluster's agent settings, as recorded in its status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AgentSettingsRecord {
    pub env_vars_hash: String,
    pub private_repo_url: String,
    pub host_network: bool,
    pub affinity_hash: String,
    pub resources_hash: String,
    pub tolerations_hash: String,
}

impl AgentSettingsRecord {
    /// What `spec` hashes to (an unset or empty field hashes to "").
    pub fn of(spec: &ClusterSpec) -> Self {
        AgentSettingsRecord {
            env_vars_hash: if spec.agent_env_vars.is_empty() {
                String::new()
            } else {
                hash_field(&spec.agent_env_vars)
            },
            private_repo_url: spec.private_repo_url.clone(),
            host_network: spec.host_network.unwrap_or(false),
            affinity_hash: spec
                .agent_affinity
                .as_ref()
                .map(hash_field)
                .unwrap_or_default(),
            resources_hash: spec
                .agent_resources
                .as_ref()
                .map(hash_field)
                .unwrap_or_default(),
            tolerations_hash: if spec.agent_tolerations.is_empty() {
                String::new()
            } else {
                hash_field(&spec.agent_tolerations)
            },
        }
    }

    /// What a Cluster status records.
    pub fn recorded(status: &ClusterStatus) -> Self {
        AgentSettingsRecord {
            env_vars_hash: status.agent_env_vars_hash.clone(),
            private_repo_url: status.agent_private_repo_url.clone(),
            host_network: status.agent_host_network,
            affinity_hash: status.agent_affinity_hash.clone(),
            resources_hash: status.agent_resources_hash.clone(),
            tolerations_hash: status.agent_tolerations_hash.clone(),
        }
    }

    /// Writes the record into `status`.
    pub fn write(&self, status: &mut ClusterStatus) {
        status.agent_env_vars_hash = self.env_vars_hash.clone();
        status.agent_private_repo_url = self.private_repo_url.clone();
        status.agent_host_network = self.host_network;
        status.agent_affinity_hash = self.affinity_hash.clone();
        status.agent_resources_hash = self.resources_hash.clone();
        status.agent_tolerations_hash = self.tolerations_hash.clone();
    }
}

/// The agent bundle of `cluster` (Fleet's `newAgentBundle`): the manifest as one raw YAML
/// resource, deployed into the agent namespace with Helm `takeOwnership` (the objects exist
/// already when the agent was installed by registration or import), targeting only this
/// cluster, and only while it is not labelled as running a non-managed agent.
pub fn agent_bundle(cluster: &Cluster, config: &crate::ControllerConfig) -> Bundle {
    let name = cluster.name_any();
    let agent_namespace = agent_namespace_for(cluster, &config.agent_namespace);
    let opts = ManifestOptions::for_cluster(config, &cluster.spec);
    let objs = agent_manifest(&agent_namespace, &cluster.spec.agent_namespace, &opts);
    let owner = cluster.meta().uid.clone().map(|uid| OwnerReference {
        api_version: fleet_api::consts::API_VERSION.to_string(),
        kind: "Cluster".to_string(),
        name: name.clone(),
        uid,
        ..OwnerReference::default()
    });
    Bundle {
        metadata: ObjectMeta {
            name: Some(agent_bundle_name(&name)),
            namespace: cluster.namespace(),
            owner_references: owner.map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: BundleSpec {
            default_namespace: agent_namespace,
            helm: Some(HelmOptions {
                take_ownership: true,
                ..HelmOptions::default()
            }),
            resources: vec![BundleResource {
                name: "agent.yaml".to_string(),
                content: to_yaml(&objs),
                encoding: String::new(),
            }],
            targets: vec![BundleTarget {
                cluster_name: name,
                cluster_selector: Some(LabelSelector {
                    match_expressions: Some(vec![LabelSelectorRequirement {
                        key: NON_MANAGED_AGENT_LABEL.to_string(),
                        operator: "DoesNotExist".to_string(),
                        values: None,
                    }]),
                    match_labels: None,
                }),
                ..BundleTarget::default()
            }],
            ..BundleSpec::default()
        },
        status: None,
    }
}

/// What the manageagent reconciler does for one Cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ManageAgentPlan {
    /// The agent bundle to create or update (`None`: leave it as it is).
    pub bundle: Option<Bundle>,
    /// The Cluster status afterwards.
    pub status: ClusterStatus,
}

/// Decides, for `cluster` with its current agent bundle `existing`, what to write.
///
/// Invalid settings leave the bundle (and so the running agent) untouched and report the field
/// on the `Reconciled` condition. Valid ones update the bundle when it differs, record the
/// settings' hashes, and mark `agentConfigChanged` for clusters the controller imports
/// (`spec.kubeConfigSecret`), whose import then redeploys the agent directly; for the others
/// the bundle is the redeployment, and `agentDeployedGeneration` follows
/// `redeployAgentGeneration` as soon as the bundle carries it.
pub fn plan(
    cluster: &Cluster,
    existing: Option<&Bundle>,
    config: &crate::ControllerConfig,
    now: &str,
) -> ManageAgentPlan {
    let status = planned_status(cluster, config, now);
    if !validate_agent_settings(&cluster.spec).is_empty() {
        return ManageAgentPlan {
            bundle: None,
            status,
        };
    }
    let bundle = config.manage_agent.then(|| agent_bundle(cluster, config));
    let bundle = bundle.filter(|desired| {
        existing.is_none_or(|e| {
            e.spec != desired.spec
                || e.metadata.owner_references != desired.metadata.owner_references
        })
    });
    ManageAgentPlan { bundle, status }
}

/// The Cluster status part of [`plan`]: the `Reconciled` condition, and for valid settings
/// their hashes and the agent's deployed generation.
pub fn planned_status(
    cluster: &Cluster,
    config: &crate::ControllerConfig,
    now: &str,
) -> ClusterStatus {
    let mut status = cluster.status.clone().unwrap_or_default();
    let problems = validate_agent_settings(&cluster.spec);
    if !problems.is_empty() {
        let message = format!(
            "cluster {}/{}: invalid agent settings, agent not redeployed: {}",
            cluster.namespace().unwrap_or_default(),
            cluster.name_any(),
            describe(&problems)
        );
        set_condition(
            &mut status.conditions,
            RECONCILED_CONDITION,
            false,
            "Error",
            &message,
            now,
        );
        return status;
    }
    set_condition(
        &mut status.conditions,
        RECONCILED_CONDITION,
        true,
        "",
        "",
        now,
    );
    let desired = AgentSettingsRecord::of(&cluster.spec);
    let changed = AgentSettingsRecord::recorded(&status) != desired;
    desired.write(&mut status);
    let imported = !cluster.spec.kube_config_secret.is_empty();
    if imported {
        if changed && status.agent_deployed_generation.is_some() {
            // The import redeploys the agent directly, in case it cannot update itself.
            status.agent_config_changed = true;
        }
    } else if config.manage_agent {
        status.agent_config_changed = false;
        status.agent_deployed_generation = Some(cluster.spec.redeploy_agent_generation);
    }
    status
}

struct ManageContext {
    ctx: Arc<Context>,
}

async fn reconcile(
    cluster: Arc<Cluster>,
    mctx: Arc<ManageContext>,
) -> Result<Action, AgentManagementError> {
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let key = format!("{ns}/{name}");
    if cluster.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let span = tracing::debug_span!("manage_agent", cluster = %key);
    let started = std::time::Instant::now();
    let result = async {
        let client = mctx.ctx.client.clone();
        let bundles: Api<Bundle> = Api::namespaced(client.clone(), &ns);
        let bundle_name = agent_bundle_name(&name);
        let existing = bundles
            .get_opt(&bundle_name)
            .await
            .map_err(AgentManagementError::kube(
                format!("reading Bundle {ns}/{bundle_name}"),
                &key,
            ))?;
        let plan = plan(
            &cluster,
            existing.as_ref(),
            &mctx.ctx.config,
            &now_rfc3339(),
        );
        if let Some(mut bundle) = plan.bundle {
            match existing {
                Some(existing) => {
                    bundle.metadata.resource_version = existing.metadata.resource_version.clone();
                    bundle.metadata.labels = existing.metadata.labels.clone();
                    bundle.metadata.annotations = existing.metadata.annotations.clone();
                    bundle.metadata.finalizers = existing.metadata.finalizers.clone();
                    bundle.status = existing.status.clone();
                    bundles
                        .replace(&bundle_name, &PostParams::default(), &bundle)
                        .await
                        .map_err(AgentManagementError::kube(
                            format!("updating agent Bundle {ns}/{bundle_name}"),
                            &key,
                        ))?;
                    tracing::info!(cluster = %key, bundle = %bundle_name, "updated agent bundle");
                }
                None => {
                    bundles
                        .create(&PostParams::default(), &bundle)
                        .await
                        .map_err(AgentManagementError::kube(
                            format!("creating agent Bundle {ns}/{bundle_name}"),
                            &key,
                        ))?;
                    tracing::info!(cluster = %key, bundle = %bundle_name, "created agent bundle");
                }
            }
        }
        // The bundle is written; a conflict on the status (another writer of the new Cluster)
        // is resolved on a fresh read, not by running the whole reconcile again.
        let now = now_rfc3339();
        let config = &mctx.ctx.config;
        patch_cluster_status_fresh(&client, &cluster, &key, |current| {
            planned_status(current, config, &now)
        })
        .await?;
        Ok(Action::requeue(Duration::from_secs(600)))
    };
    let result = tracing::Instrument::instrument(result, span).await;
    mctx.ctx.metrics.reconciled(
        "manageagent",
        result.is_ok(),
        started.elapsed().as_secs_f64(),
    );
    result
}

/// A hash of what a manageagent reconcile of `cluster` depends on: its identity, spec and
/// deletion, and the status fields the reconcile owns.
pub fn manage_agent_inputs(cluster: &Cluster) -> Option<u64> {
    let status = cluster.status.as_ref();
    let reconciled = status.and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == RECONCILED_CONDITION)
            .map(|c| (&c.status, &c.message))
    });
    Some(crate::bundle::hash_json(&(
        &cluster.metadata.uid,
        cluster.metadata.deletion_timestamp.is_some(),
        &cluster.spec,
        status.map(AgentSettingsRecord::recorded),
        status.map(|s| (s.agent_config_changed, s.agent_deployed_generation)),
        reconciled,
    )))
}

fn error_policy(
    cluster: Arc<Cluster>,
    error: &AgentManagementError,
    _: Arc<ManageContext>,
) -> Action {
    let key = format!(
        "{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    );
    if error.is_conflict() {
        tracing::debug!(cluster = %key, %error, "manage agent reconcile raced another writer, retrying");
        return Action::requeue(Duration::from_millis(200));
    }
    tracing::warn!(cluster = %key, %error, "manage agent reconcile failed, retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Agent bundles whose Cluster is gone (by owner uid): Fleet's apply deletes them with the set.
pub fn orphaned_agent_bundles(
    bundles: &[Bundle],
    cluster_uids: &[String],
) -> Vec<(String, String)> {
    let cluster_uids: std::collections::HashSet<&str> =
        cluster_uids.iter().map(String::as_str).collect();
    bundles
        .iter()
        .filter(|b| {
            b.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(AGENT_BUNDLE_NAME))
        })
        .filter(|b| {
            b.metadata.owner_references.as_ref().is_some_and(|owners| {
                owners
                    .iter()
                    .any(|o| o.kind == "Cluster" && !cluster_uids.contains(o.uid.as_str()))
            })
        })
        .filter_map(|b| Some((b.metadata.namespace.clone()?, b.metadata.name.clone()?)))
        .collect()
}

async fn delete_orphaned_bundles(
    client: &kube::Client,
    clusters: &ClusterIndex,
) -> Result<(), kube::Error> {
    // Bundles first: a Cluster created after this list cannot own one of them yet.
    let bundles = Api::<Bundle>::all(client.clone())
        .list(&ListParams::default())
        .await?;
    let uids: Vec<String> = clusters
        .all()
        .iter()
        .filter_map(|c| c.metadata.uid.clone())
        .collect();
    for (ns, name) in orphaned_agent_bundles(&bundles.items, &uids) {
        match Api::<Bundle>::namespaced(client.clone(), &ns)
            .delete(&name, &Default::default())
            .await
        {
            Ok(_) => {
                tracing::info!(bundle = %format!("{ns}/{name}"), "deleted agent bundle of a deleted cluster")
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What of an agent bundle the reconcile of its Cluster reads: its spec and owners.
pub fn agent_bundle_relevance(bundle: &Bundle) -> u64 {
    crate::bundle::hash_json(&(
        &bundle.metadata.uid,
        &bundle.spec,
        &bundle.metadata.owner_references,
    ))
}

/// The Cluster owning an agent bundle (by name and owner reference).
fn owning_cluster(bundle: &Bundle) -> Option<ObjectRef<Cluster>> {
    if !bundle
        .metadata
        .name
        .as_deref()
        .is_some_and(|n| n.starts_with(AGENT_BUNDLE_NAME))
    {
        return None;
    }
    let namespace = bundle.metadata.namespace.as_deref()?;
    bundle
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "Cluster")
        .map(|o| ObjectRef::new(&o.name).within(namespace))
}

/// The Clusters whose agent bundle appeared, went, or changed in what the reconcile reads:
/// not its status, which changes with every state of its deployment (a reconcile renders the
/// agent manifest and reads the bundle).
fn agent_bundle_changes(
    client: kube::Client,
) -> impl futures::Stream<Item = ObjectRef<Cluster>> + Send + 'static {
    let mut seen: std::collections::HashMap<(String, String), u64> =
        std::collections::HashMap::new();
    watcher(
        Api::<Unmanaged<Bundle>>::all(client),
        watcher::Config::default(),
    )
    .default_backoff()
    .filter_map(move |event| {
        let key = |b: &Bundle| {
            (
                b.metadata.namespace.clone().unwrap_or_default(),
                b.metadata.name.clone().unwrap_or_default(),
            )
        };
        let owner = match event {
            Ok(watcher::Event::Apply(Unmanaged(bundle)))
            | Ok(watcher::Event::InitApply(Unmanaged(bundle))) => {
                owning_cluster(&bundle).filter(|_| {
                    let relevance = agent_bundle_relevance(&bundle);
                    seen.insert(key(&bundle), relevance) != Some(relevance)
                })
            }
            Ok(watcher::Event::Delete(Unmanaged(bundle))) => {
                seen.remove(&key(&bundle));
                owning_cluster(&bundle)
            }
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%error, "watching agent bundles failed, retrying");
                None
            }
        };
        futures::future::ready(owner)
    })
}

/// Runs the manageagent reconciler until `shutdown`: Clusters and their agent bundles.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: CancellationToken,
) -> Result<(), AgentManagementError> {
    let client = ctx.client.clone();
    let mctx = Arc::new(ManageContext { ctx: ctx.clone() });
    let workers = ctx.config.cluster_workers.clamp(1, u16::MAX as usize) as u16;
    // Only what the plan reads (and the status fields it writes) triggers a reconcile: a
    // Cluster's status changes with every BundleDeployment of it, and each reconcile renders
    // the agent manifest.
    let clusters = ctx.cluster_index();
    let controller = clusters
        .controller()
        .reconcile_on(clusters.relevant_refs(|c| manage_agent_inputs(c).unwrap_or_default()))
        .reconcile_on(agent_bundle_changes(client.clone()))
        .with_config(RuntimeConfig::default().concurrency(workers))
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(reconcile, error_policy, mctx)
        .for_each(|_| futures::future::ready(()));
    let sweep = async {
        let mut interval = tokio::time::interval(ctx.config.content_gc_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
            // Only a complete cache may say which Clusters are gone.
            let synced = clusters.synced();
            if !crate::ready_unless_stopped(&shutdown, Duration::from_secs(60), synced).await {
                continue;
            }
            if let Err(error) = delete_orphaned_bundles(&client, &clusters).await {
                tracing::warn!(%error, "cleaning up agent bundles of deleted clusters failed");
            }
        }
    };
    tokio::join!(controller, sweep);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::BundleStatus;

    fn cluster() -> Cluster {
        let mut c = Cluster::new("c1", ClusterSpec::default());
        c.metadata.namespace = Some("fleet-default".into());
        c.metadata.uid = Some("uid-c1".into());
        c
    }

    #[test]
    fn an_agent_bundle_triggers_its_cluster_only_when_spec_or_owner_change() {
        let config = crate::ControllerConfig::default();
        let bundle = agent_bundle(&cluster(), &config);
        assert_eq!(
            owning_cluster(&bundle),
            Some(ObjectRef::new("c1").within("fleet-default"))
        );
        let before = agent_bundle_relevance(&bundle);
        let mut deployed = bundle.clone();
        deployed.status = Some(BundleStatus {
            observed_generation: 4,
            ..Default::default()
        });
        deployed.metadata.finalizers = Some(vec!["fleet.cattle.io/bundle-finalizer".into()]);
        deployed.metadata.resource_version = Some("12".into());
        assert_eq!(agent_bundle_relevance(&deployed), before);
        let mut changed = bundle.clone();
        changed.spec.resources[0].content.push_str("# changed\n");
        assert_ne!(agent_bundle_relevance(&changed), before);

        let mut other = bundle.clone();
        other.metadata.name = Some("app".into());
        assert_eq!(owning_cluster(&other), None, "not an agent bundle");
        let mut orphan = bundle;
        orphan.metadata.owner_references = None;
        assert_eq!(owning_cluster(&orphan), None);
    }

    #[test]
    fn the_status_part_of_the_plan_is_the_plans_status() {
        let config = crate::ControllerConfig::default();
        let c = cluster();
        let plan = plan(&c, None, &config, "t");
        assert!(plan.bundle.is_some());
        assert_eq!(planned_status(&c, &config, "t"), plan.status);
    }
}

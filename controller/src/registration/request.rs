//! The ClusterRegistration reconciler (Fleet's `clusterregistration/controller.go`).
//!
//! A request `R` (uid `U`) in namespace `N` with clientID `C`:
//! 1. finds the Cluster in `N` whose `spec.clientID` is `C` — a known clientID reuses its
//!    Cluster — or creates `cluster-<keyhash(C)>` with the request's labels;
//! 2. waits for the Cluster's namespace (`status.namespace`, set by the cluster reconciler)
//!    and makes the Cluster the request's owner;
//! 3. creates the request ServiceAccount `R-U` in the cluster namespace and its token Secret;
//! 4. once the token is filled in, grants: the registration secret `c-<hash>` in the system
//!    registration namespace (token, deploymentNamespace, clusterNamespace, clusterName,
//!    systemNamespace), a Role `R` in `N` to patch the status of that one Cluster (the
//!    agent's check-in), a RoleBinding `R` in the cluster namespace to ClusterRole
//!    `fleet-bundle-deployment`, a ClusterRoleBinding `R-content` to `fleet-content`; older
//!    requests of the same clientID are deleted with their service accounts; `status.granted`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use fleet_api::consts::{
    CLUSTER_ANNOTATION, CLUSTER_REGISTRATION_ANNOTATION, CLUSTER_REGISTRATION_NAMESPACE_ANNOTATION,
    condition,
};
use fleet_api::{Cluster, ClusterRegistration, ClusterRegistrationStatus, ClusterSpec};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{
    ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, ApiResource, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Config as RuntimeConfig, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store, reflector};
use kube::runtime::watcher;
use kube::{Resource as _, ResourceExt as _};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{
    AGENT_CREDENTIAL_SECRET_TYPE, BUNDLE_DEPLOYMENT_CLUSTER_ROLE, CONTENT_CLUSTER_ROLE, Desired,
    SERVICE_ACCOUNT_NAME_ANNOTATION, SERVICE_ACCOUNT_TOKEN_TYPE, WriteError, apply, delete,
    key_hash, managed_labels, registration_secret_name, safe_concat_name,
};
use crate::Context;
use crate::clusters::{ClusterIndex, SecondaryIndex, version_of};
use crate::summary::set_condition;

/// How often a request waiting for its Cluster namespace or token is looked at again (the
/// watches usually come first).
const WAIT: Duration = Duration::from_secs(2);
/// How long a reconcile waits for the Cluster cache's first list.
const CACHE_SYNC_TIMEOUT: Duration = Duration::from_secs(60);
/// Up to this many cached Clusters, a request that would create a Cluster while the cache is
/// behind it lists the namespace's Clusters at once instead of waiting for the cache.
const SMALL_FLEET: usize = 100;
/// How long a request that would create a Cluster waits for the cache to catch up with it
/// before listing the Clusters from the API server.
const CATCH_UP_WAIT: Duration = Duration::from_secs(2);

/// What the request reconciler needs from the controller's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSettings {
    pub system_namespace: String,
    pub system_registration_namespace: String,
}

/// Name of the Cluster created for a new clientID (Fleet's `cluster-<KeyHash(clientID)>`).
pub fn cluster_name_for(client_id: &str) -> String {
    safe_concat_name(&["cluster", &key_hash(client_id)])
}

/// Name of the request ServiceAccount (`<request>-<uid>`).
pub fn request_service_account_name(request: &ClusterRegistration) -> String {
    safe_concat_name(&[
        request.metadata.name.as_deref().unwrap_or_default(),
        request.metadata.uid.as_deref().unwrap_or_default(),
    ])
}

/// Name of the token Secret of a ServiceAccount.
pub fn token_secret_name(service_account: &str) -> String {
    format!("{service_account}-token")
}

/// What the reconciler observed for one request.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub request: &'a ClusterRegistration,
    /// The Clusters the request may belong to ([`candidate_clusters`]): those of its namespace
    /// with its clientID and the one named after the clientID. Others are ignored.
    pub clusters: &'a [Arc<Cluster>],
    pub service_account_exists: bool,
    /// The filled-in token of the request ServiceAccount.
    pub service_account_token: Option<&'a str>,
    /// Registrations of the request's clientID in its namespace (for cleaning up older ones;
    /// others are ignored).
    pub registrations: &'a [Arc<ClusterRegistration>],
}

/// The next step for a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Granted before: nothing to do (Fleet creates the cluster only once per request).
    AlreadyGranted,
    /// No Cluster has this clientID yet.
    CreateCluster(Box<Cluster>),
    /// The Cluster named after the clientID's hash belongs to another clientID.
    ClientIdConflict {
        cluster: String,
        client_id: String,
    },
    WaitForClusterNamespace {
        cluster: String,
    },
    CreateServiceAccount {
        cluster: String,
        objects: Vec<Desired>,
    },
    WaitForToken {
        cluster: String,
        service_account: String,
    },
    Grant {
        cluster: String,
        objects: Vec<Desired>,
        /// Names of older requests of the same client to delete.
        delete_registrations: Vec<String>,
    },
}

/// The Cluster a request belongs to: the one with its clientID, else the one named after it.
pub fn find_cluster<'a>(
    clusters: &'a [Arc<Cluster>],
    request: &ClusterRegistration,
) -> Option<&'a Cluster> {
    let namespace = request.namespace().unwrap_or_default();
    let namespace = namespace.as_str();
    let client_id = &request.spec.client_id;
    let in_namespace = || {
        clusters
            .iter()
            .map(AsRef::as_ref)
            .filter(move |c: &&Cluster| c.metadata.namespace.as_deref() == Some(namespace))
    };
    let mut by_id: Vec<&Cluster> = in_namespace()
        .filter(|c| !client_id.is_empty() && &c.spec.client_id == client_id)
        .collect();
    by_id.sort_by_key(|c| c.name_any());
    if let Some(c) = by_id.first() {
        return Some(c);
    }
    let name = cluster_name_for(client_id);
    in_namespace().find(|c| c.name_any() == name)
}

/// Whether `cluster` is one [`find_cluster`] may pick for `request`.
pub fn is_candidate(cluster: &Cluster, request: &ClusterRegistration) -> bool {
    let client_id = &request.spec.client_id;
    cluster.metadata.namespace == request.metadata.namespace
        && ((!client_id.is_empty() && &cluster.spec.client_id == client_id)
            || cluster.metadata.name.as_deref() == Some(cluster_name_for(client_id).as_str()))
}

/// The Clusters `request` may belong to, from the Cluster cache by its indexes: by clientID and
/// by the name derived from it (Fleet's `clusterByClientID` index and its fallback).
pub fn candidate_clusters(
    index: &ClusterIndex,
    request: &ClusterRegistration,
) -> Vec<Arc<Cluster>> {
    let namespace = request.namespace().unwrap_or_default();
    let mut candidates = index.with_client_id(&namespace, &request.spec.client_id);
    let name = cluster_name_for(&request.spec.client_id);
    if !candidates
        .iter()
        .any(|c| c.metadata.name.as_deref() == Some(name.as_str()))
        && let Some(named) = index.get(&namespace, &name)
    {
        candidates.push(named);
    }
    candidates
}

/// The Cluster created for a request of a new clientID.
pub fn new_cluster(request: &ClusterRegistration) -> Cluster {
    let name = cluster_name_for(&request.spec.client_id);
    let mut labels: BTreeMap<String, String> = request.spec.cluster_labels.clone();
    labels.insert(CLUSTER_ANNOTATION.to_string(), name.clone());
    Cluster {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: request.namespace(),
            labels: Some(labels),
            ..Default::default()
        },
        spec: ClusterSpec {
            client_id: request.spec.client_id.clone(),
            ..Default::default()
        },
        status: None,
    }
}

/// Fleet's `shouldDelete`: another request of the same client, older, with another random.
pub fn should_delete(other: &ClusterRegistration, request: &ClusterRegistration) -> bool {
    let created = |r: &ClusterRegistration| r.metadata.creation_timestamp.as_ref().map(|t| t.0);
    other.spec.client_id == request.spec.client_id
        && other.spec.client_random != request.spec.client_random
        && other.metadata.name != request.metadata.name
        && matches!((created(other), created(request)), (Some(a), Some(b)) if a < b)
}

fn subject(service_account: &str, namespace: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".to_string(),
        name: service_account.to_string(),
        namespace: Some(namespace.to_string()),
        ..Default::default()
    }
}

/// The request ServiceAccount and its token Secret, in the cluster namespace.
fn service_account_objects(
    request: &ClusterRegistration,
    cluster: &Cluster,
    cluster_namespace: &str,
) -> Vec<Desired> {
    let sa_name = request_service_account_name(request);
    let annotations = BTreeMap::from([
        (CLUSTER_ANNOTATION.to_string(), cluster.name_any()),
        (
            CLUSTER_REGISTRATION_ANNOTATION.to_string(),
            request.name_any(),
        ),
        (
            CLUSTER_REGISTRATION_NAMESPACE_ANNOTATION.to_string(),
            request.namespace().unwrap_or_default(),
        ),
    ]);
    let mut secret_annotations = annotations.clone();
    secret_annotations.insert(SERVICE_ACCOUNT_NAME_ANNOTATION.to_string(), sa_name.clone());
    vec![
        Desired::of(&ServiceAccount {
            metadata: ObjectMeta {
                name: Some(sa_name.clone()),
                namespace: Some(cluster_namespace.to_string()),
                labels: Some(managed_labels()),
                annotations: Some(annotations),
                ..Default::default()
            },
            ..Default::default()
        }),
        Desired::of(&Secret {
            metadata: ObjectMeta {
                name: Some(token_secret_name(&sa_name)),
                namespace: Some(cluster_namespace.to_string()),
                labels: Some(managed_labels()),
                annotations: Some(secret_annotations),
                ..Default::default()
            },
            type_: Some(SERVICE_ACCOUNT_TOKEN_TYPE.to_string()),
            ..Default::default()
        }),
    ]
}

/// What a granted request gets.
fn grant_objects(
    request: &ClusterRegistration,
    cluster: &Cluster,
    cluster_namespace: &str,
    token: &str,
    settings: &RequestSettings,
) -> Vec<Desired> {
    let request_name = request.name_any();
    let request_namespace = request.namespace().unwrap_or_default();
    let sa_name = request_service_account_name(request);
    let cluster_name = cluster.name_any();
    let mut secret_labels = managed_labels();
    secret_labels.insert(CLUSTER_ANNOTATION.to_string(), cluster_name.clone());
    let data: BTreeMap<String, ByteString> = [
        ("token", token),
        ("deploymentNamespace", cluster_namespace),
        ("clusterNamespace", request_namespace.as_str()),
        ("clusterName", cluster_name.as_str()),
        ("systemNamespace", settings.system_namespace.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
    .collect();
    // The agent starts using the credentials as soon as it sees this secret, so it is
    // written last, after the rights it grants.
    let credentials = Desired::of(&Secret {
        metadata: ObjectMeta {
            name: Some(registration_secret_name(
                &request.spec.client_id,
                &request.spec.client_random,
            )),
            namespace: Some(settings.system_registration_namespace.clone()),
            labels: Some(secret_labels),
            ..Default::default()
        },
        type_: Some(AGENT_CREDENTIAL_SECRET_TYPE.to_string()),
        data: Some(data),
        ..Default::default()
    });
    let mut objects = service_account_objects(request, cluster, cluster_namespace);
    let meta = |name: &str, namespace: Option<&str>| ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(managed_labels()),
        ..Default::default()
    };
    let rbac = "rbac.authorization.k8s.io".to_string();
    objects.push(Desired::of(&Role {
        metadata: meta(&request_name, Some(&request_namespace)),
        rules: Some(vec![PolicyRule {
            verbs: vec!["patch".to_string()],
            api_groups: Some(vec![fleet_api::consts::GROUP.to_string()]),
            resources: Some(vec!["clusters/status".to_string()]),
            resource_names: Some(vec![cluster_name.clone()]),
            ..Default::default()
        }]),
    }));
    objects.push(Desired::of(&RoleBinding {
        metadata: meta(&request_name, Some(&request_namespace)),
        subjects: Some(vec![subject(&sa_name, cluster_namespace)]),
        role_ref: RoleRef {
            api_group: rbac.clone(),
            kind: "Role".to_string(),
            name: request_name.clone(),
        },
    }));
    objects.push(Desired::of(&RoleBinding {
        metadata: meta(&request_name, Some(cluster_namespace)),
        subjects: Some(vec![subject(&sa_name, cluster_namespace)]),
        role_ref: RoleRef {
            api_group: rbac.clone(),
            kind: "ClusterRole".to_string(),
            name: BUNDLE_DEPLOYMENT_CLUSTER_ROLE.to_string(),
        },
    }));
    objects.push(Desired::of(&ClusterRoleBinding {
        metadata: meta(&safe_concat_name(&[&request_name, "content"]), None),
        subjects: Some(vec![subject(&sa_name, cluster_namespace)]),
        role_ref: RoleRef {
            api_group: rbac,
            kind: "ClusterRole".to_string(),
            name: CONTENT_CLUSTER_ROLE.to_string(),
        },
    }));
    objects.push(credentials);
    objects
}

/// The pure decision for one request.
pub fn decide(observed: Observed<'_>, settings: &RequestSettings) -> Plan {
    let request = observed.request;
    if request.status.as_ref().is_some_and(|s| s.granted) {
        return Plan::AlreadyGranted;
    }
    let Some(cluster) = find_cluster(observed.clusters, request) else {
        return Plan::CreateCluster(Box::new(new_cluster(request)));
    };
    if cluster.spec.client_id != request.spec.client_id {
        return Plan::ClientIdConflict {
            cluster: cluster.name_any(),
            client_id: cluster.spec.client_id.clone(),
        };
    }
    let cluster_name = cluster.name_any();
    let Some(cluster_namespace) = cluster
        .status
        .as_ref()
        .map(|s| s.namespace.clone())
        .filter(|ns| !ns.is_empty())
    else {
        return Plan::WaitForClusterNamespace {
            cluster: cluster_name,
        };
    };
    if !observed.service_account_exists {
        return Plan::CreateServiceAccount {
            cluster: cluster_name,
            objects: service_account_objects(request, cluster, &cluster_namespace),
        };
    }
    let Some(token) = observed.service_account_token.filter(|t| !t.is_empty()) else {
        return Plan::WaitForToken {
            cluster: cluster_name,
            service_account: format!(
                "{cluster_namespace}/{}",
                request_service_account_name(request)
            ),
        };
    };
    let mut delete_registrations: Vec<String> = observed
        .registrations
        .iter()
        .filter(|other| should_delete(other, request))
        .map(|r| r.name_any())
        .collect();
    delete_registrations.sort();
    Plan::Grant {
        cluster: cluster_name,
        objects: grant_objects(request, cluster, &cluster_namespace, token, settings),
        delete_registrations,
    }
}

/// What was made for `request` in `cluster_namespace`, to delete with it (when a newer request
/// of the same client replaced it): its credentials stop working.
pub fn owned_objects(
    request: &ClusterRegistration,
    cluster_namespace: Option<&str>,
    settings: &RequestSettings,
) -> Vec<(ApiResource, Option<String>, String)> {
    let name = request.name_any();
    let namespace = request.namespace().unwrap_or_default();
    let sa_name = request_service_account_name(request);
    let mut out = vec![
        (
            ApiResource::erase::<ClusterRoleBinding>(&()),
            None,
            safe_concat_name(&[&name, "content"]),
        ),
        (
            ApiResource::erase::<RoleBinding>(&()),
            Some(namespace.clone()),
            name.clone(),
        ),
        (
            ApiResource::erase::<Role>(&()),
            Some(namespace),
            name.clone(),
        ),
        (
            ApiResource::erase::<Secret>(&()),
            Some(settings.system_registration_namespace.clone()),
            registration_secret_name(&request.spec.client_id, &request.spec.client_random),
        ),
    ];
    if let Some(cluster_namespace) = cluster_namespace {
        out.push((
            ApiResource::erase::<RoleBinding>(&()),
            Some(cluster_namespace.to_string()),
            name,
        ));
        out.push((
            ApiResource::erase::<Secret>(&()),
            Some(cluster_namespace.to_string()),
            token_secret_name(&sa_name),
        ));
        out.push((
            ApiResource::erase::<ServiceAccount>(&()),
            Some(cluster_namespace.to_string()),
            sa_name,
        ));
    }
    out
}

/// Why one reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("ClusterRegistration {request}: {action}: {source}")]
    Kube {
        request: String,
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error("ClusterRegistration {request}: the Cluster cache is not filled yet")]
    NotSynced { request: String },
    #[error("ClusterRegistration {request}: {source}")]
    Write {
        request: String,
        #[source]
        source: WriteError,
    },
}

struct RequestContext {
    ctx: Arc<Context>,
    /// This term's stop: waits for the caches end with it.
    shutdown: CancellationToken,
    settings: RequestSettings,
    /// The controller's Cluster cache.
    clusters: Arc<ClusterIndex>,
    /// The reconciler's ClusterRegistration cache and its index by clientID.
    requests: Store<ClusterRegistration>,
    requests_by_client_id: Arc<RwLock<SecondaryIndex<ClusterRegistration>>>,
}

/// The clientID a ClusterRegistration is found by.
fn request_client_id(request: &ClusterRegistration) -> Option<String> {
    Some(request.spec.client_id.clone()).filter(|id| !id.is_empty())
}

/// What of a request its reconcile acts on: which request it is, what it asks for, whether it
/// is being deleted or granted already. Its other status fields and its owner are written by
/// the reconcile itself.
pub fn request_relevance(request: &ClusterRegistration) -> u64 {
    crate::bundle::hash_json(&(
        &request.metadata.uid,
        &request.spec,
        request.metadata.deletion_timestamp.is_some(),
        request.status.as_ref().is_some_and(|s| s.granted),
    ))
}

/// What of a Cluster a waiting request reads: which Cluster it is, its clientID, its
/// namespace; a Cluster's other status changes (check-ins, summaries) do not wake requests.
fn registration_relevance(cluster: &Cluster) -> u64 {
    crate::bundle::hash_json(&(
        &cluster.metadata.uid,
        &cluster.spec.client_id,
        cluster.status.as_ref().map(|s| &s.namespace),
        cluster.metadata.deletion_timestamp.is_some(),
    ))
}

impl RequestContext {
    /// The cached registrations of `client_id` in `namespace`.
    fn registrations_of(&self, namespace: &str, client_id: &str) -> Vec<Arc<ClusterRegistration>> {
        let names = match self.requests_by_client_id.read() {
            Ok(index) => index.names(namespace, client_id),
            Err(poisoned) => poisoned.into_inner().names(namespace, client_id),
        };
        names
            .iter()
            .filter_map(|name| self.requests.get(&ObjectRef::new(name).within(namespace)))
            .collect()
    }

    /// The requests a change of `cluster` may move on: those of its clientID not granted yet.
    fn waiting_requests_of(&self, cluster: &Cluster) -> Vec<ObjectRef<ClusterRegistration>> {
        let namespace = cluster.namespace().unwrap_or_default();
        if cluster.spec.client_id.is_empty() {
            return Vec::new();
        }
        self.registrations_of(&namespace, &cluster.spec.client_id)
            .iter()
            .filter(|r| !r.status.as_ref().is_some_and(|s| s.granted))
            .map(|r| ObjectRef::from_obj(r.as_ref()))
            .collect()
    }
}

/// The Clusters `request` may belong to, read so that every Cluster written before the request
/// is among them: from the cache once it has caught up with the request's resourceVersion,
/// else from the API server. A Cluster registered beforehand under another name (an imported
/// or pre-created one with this clientID) is then found, and no second Cluster is made for
/// the client. Clusters this reconciler created itself are named after the clientID, so a
/// cache that has not seen one yet only makes the create fail with 409.
async fn fresh_candidate_clusters(
    rctx: &RequestContext,
    request: &ClusterRegistration,
    key: &str,
) -> Result<Vec<Arc<Cluster>>, ReconcileError> {
    let index = &rctx.clusters;
    if let Some(version) = version_of(request) {
        // A small fleet is listed at once (cheap); a large one writes Cluster statuses all
        // the time, so its cache passes the request's version in moments.
        let caught_up = index.has_seen(version)
            || (index.len() > SMALL_FLEET && index.wait_seen(version, CATCH_UP_WAIT).await);
        if caught_up {
            return Ok(candidate_clusters(index, request));
        }
    }
    let namespace = request.namespace().unwrap_or_default();
    tracing::debug!(request = %key, "the Cluster cache is behind the request: listing Clusters");
    let listed = Api::<Cluster>::namespaced(rctx.ctx.client.clone(), &namespace)
        .list(&ListParams::default())
        .await
        .map_err(|source| ReconcileError::Kube {
            request: key.to_string(),
            action: format!("listing Clusters in {namespace}"),
            source,
        })?;
    Ok(listed
        .items
        .into_iter()
        .filter(|c| is_candidate(c, request))
        .map(Arc::new)
        .collect())
}

fn key_of(request: &ClusterRegistration) -> String {
    format!(
        "{}/{}",
        request.namespace().unwrap_or_default(),
        request.name_any()
    )
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The waiting reason and message of a request whose ServiceAccount (`namespace/name`) has no
/// token yet.
fn waiting_for_token(service_account: &str) -> Option<(&'static str, String)> {
    Some((
        "WaitingForServiceAccountToken",
        format!("waiting for the token of ServiceAccount {service_account}"),
    ))
}

/// Writes `cluster_name`, `granted` and the Ready condition (when something changed).
async fn write_status(
    client: &kube::Client,
    request: &ClusterRegistration,
    cluster_name: &str,
    granted: bool,
    waiting: Option<(&str, String)>,
) -> Result<(), ReconcileError> {
    let old = request.status.clone().unwrap_or_default();
    let mut status = ClusterRegistrationStatus {
        cluster_name: cluster_name.to_string(),
        granted,
        conditions: old.conditions.clone(),
    };
    let (reason, message) = waiting.unwrap_or(("", String::new()));
    set_condition(
        &mut status.conditions,
        condition::READY,
        granted,
        reason,
        &message,
        &now_rfc3339(),
    );
    if status == old {
        return Ok(());
    }
    let api: Api<ClusterRegistration> =
        Api::namespaced(client.clone(), &request.namespace().unwrap_or_default());
    api.patch_status(
        &request.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "clusterName": status.cluster_name,
            "granted": status.granted,
            "conditions": status.conditions,
        }})),
    )
    .await
    .map(|_| ())
    .map_err(|source| ReconcileError::Kube {
        request: key_of(request),
        action: "writing status".to_string(),
        source,
    })
}

/// Makes the Cluster the request's owner, so the request goes with its Cluster.
async fn set_owner(
    client: &kube::Client,
    request: &ClusterRegistration,
    cluster: &Cluster,
) -> Result<(), ReconcileError> {
    let uid = cluster.metadata.uid.clone().unwrap_or_default();
    let owned = request
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "Cluster" && o.uid == uid);
    if owned || uid.is_empty() {
        return Ok(());
    }
    let owner = OwnerReference {
        api_version: fleet_api::consts::API_VERSION.to_string(),
        kind: "Cluster".to_string(),
        name: cluster.name_any(),
        uid,
        ..Default::default()
    };
    let api: Api<ClusterRegistration> =
        Api::namespaced(client.clone(), &request.namespace().unwrap_or_default());
    api.patch(
        &request.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"ownerReferences": [owner]}})),
    )
    .await
    .map(|_| ())
    .map_err(|source| ReconcileError::Kube {
        request: key_of(request),
        action: format!("setting Cluster {} as owner", cluster.name_any()),
        source,
    })
}

async fn apply_all(
    client: &kube::Client,
    request: &ClusterRegistration,
    objects: &[Desired],
) -> Result<(), ReconcileError> {
    for object in objects {
        apply(client, object)
            .await
            .map_err(|source| ReconcileError::Write {
                request: key_of(request),
                source,
            })?;
    }
    Ok(())
}

/// The writes of a grant, as [`grant_steps`] orders them.
async fn apply_grant(
    client: &kube::Client,
    request: &ClusterRegistration,
    objects: &[Desired],
) -> Result<(), ReconcileError> {
    let steps = grant_steps(objects);
    futures::future::try_join_all(steps.rights.iter().map(|object| async move {
        apply(client, object)
            .await
            .map_err(|source| ReconcileError::Write {
                request: key_of(request),
                source,
            })
    }))
    .await?;
    apply_all(client, request, steps.last).await
}

/// How a grant's objects ([`decide`]'s order: ServiceAccount, its token Secret, the rights,
/// the credentials) are written: the ServiceAccount and its token were just observed (a
/// grant needs the token) and are not written again; the rights go at once, as they do not
/// depend on each other; the credentials come last, once the rights they stand for exist.
#[derive(Debug, PartialEq)]
pub struct GrantSteps<'a> {
    pub rights: Vec<&'a Desired>,
    pub last: &'a [Desired],
}

pub fn grant_steps(objects: &[Desired]) -> GrantSteps<'_> {
    let (last, rest) = match objects.split_last() {
        Some((last, rest)) => (std::slice::from_ref(last), rest),
        None => (&[][..], &[][..]),
    };
    let observed = |object: &Desired| {
        object.kind() == "ServiceAccount"
            || (object.kind() == "Secret"
                && object.object["type"].as_str() == Some(SERVICE_ACCOUNT_TOKEN_TYPE))
    };
    GrantSteps {
        rights: rest.iter().filter(|object| !observed(object)).collect(),
        last,
    }
}

async fn reconcile(
    request: Arc<ClusterRegistration>,
    rctx: Arc<RequestContext>,
) -> Result<Action, ReconcileError> {
    if request.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let started = std::time::Instant::now();
    let key = key_of(&request);
    let span = tracing::info_span!("clusterregistration", request = %key);
    let result =
        tracing::Instrument::instrument(reconcile_inner(&request, &rctx, &key), span).await;
    rctx.ctx.metrics.reconciled(
        "clusterregistration",
        result.is_ok(),
        started.elapsed().as_secs_f64(),
    );
    result
}

async fn reconcile_inner(
    request: &ClusterRegistration,
    rctx: &RequestContext,
    key: &str,
) -> Result<Action, ReconcileError> {
    if request.status.as_ref().is_some_and(|s| s.granted) {
        return Ok(Action::await_change());
    }
    let client = &rctx.ctx.client;
    let namespace = request.namespace().unwrap_or_default();
    let kube_err = |action: String| {
        let request = key.to_string();
        move |source| ReconcileError::Kube {
            request,
            action,
            source,
        }
    };
    let synced = rctx.clusters.synced();
    if !crate::ready_unless_stopped(&rctx.shutdown, CACHE_SYNC_TIMEOUT, synced).await {
        return Err(ReconcileError::NotSynced {
            request: key.to_string(),
        });
    }
    let mut clusters = candidate_clusters(&rctx.clusters, request);
    if find_cluster(&clusters, request).is_none() {
        // About to create a Cluster: only when no Cluster of this clientID was written before
        // the request (the cache may not have seen one yet).
        clusters = fresh_candidate_clusters(rctx, request, key).await?;
    }
    let cluster = find_cluster(&clusters, request);
    let cluster_namespace = cluster
        .and_then(|c| c.status.as_ref())
        .map(|s| s.namespace.clone())
        .filter(|ns| !ns.is_empty());
    let sa_name = request_service_account_name(request);
    let (sa_exists, sa_token) = match &cluster_namespace {
        Some(ns) => {
            let secret_name = token_secret_name(&sa_name);
            // Both reads at once: registering is a chain of round trips per cluster.
            let (sa, secret) = futures::try_join!(
                async {
                    Api::<ServiceAccount>::namespaced(client.clone(), ns)
                        .get_opt(&sa_name)
                        .await
                        .map_err(kube_err(format!("reading ServiceAccount {ns}/{sa_name}")))
                },
                async {
                    Api::<Secret>::namespaced(client.clone(), ns)
                        .get_opt(&secret_name)
                        .await
                        .map_err(kube_err(format!("reading secret {ns}/{secret_name}")))
                },
            )?;
            let token = secret.and_then(|s| s.data).and_then(|d| {
                d.get("token")
                    .map(|t| String::from_utf8_lossy(&t.0).into_owned())
            });
            (sa.is_some(), token)
        }
        None => (false, None),
    };
    let registrations = rctx.registrations_of(&namespace, &request.spec.client_id);
    let plan = decide(
        Observed {
            request,
            clusters: &clusters,
            service_account_exists: sa_exists,
            service_account_token: sa_token.as_deref(),
            registrations: &registrations,
        },
        &rctx.settings,
    );
    match plan {
        Plan::AlreadyGranted => Ok(Action::await_change()),
        Plan::CreateCluster(cluster) => {
            let name = cluster.name_any();
            match Api::<Cluster>::namespaced(client.clone(), &namespace)
                .create(&PostParams::default(), &cluster)
                .await
            {
                Ok(_) => {
                    tracing::info!(request = %key, cluster = %format!("{namespace}/{name}"), "created Cluster for registration")
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(source) => {
                    let message = format!("creating Cluster {namespace}/{name}: {source}");
                    write_status(client, request, "", false, Some(("Error", message))).await?;
                    return Err(kube_err(format!("creating Cluster {namespace}/{name}"))(
                        source,
                    ));
                }
            }
            write_status(
                client,
                request,
                &name,
                false,
                Some((
                    "WaitingForClusterNamespace",
                    format!("created Cluster {namespace}/{name}, waiting for its namespace"),
                )),
            )
            .await?;
            Ok(Action::requeue(WAIT))
        }
        Plan::ClientIdConflict { cluster, client_id } => {
            let message = format!(
                "Cluster {namespace}/{cluster} belongs to clientID {client_id:?}, not {:?} (hash collision): this registration cannot be granted",
                request.spec.client_id
            );
            tracing::warn!(request = %key, %message);
            write_status(
                client,
                request,
                "",
                false,
                Some(("ClientIDConflict", message)),
            )
            .await?;
            Ok(Action::requeue(Duration::from_secs(300)))
        }
        Plan::WaitForClusterNamespace { cluster } => {
            write_status(
                client,
                request,
                &cluster,
                false,
                Some((
                    "WaitingForClusterNamespace",
                    format!("waiting for Cluster {namespace}/{cluster} to get its namespace"),
                )),
            )
            .await?;
            Ok(Action::requeue(WAIT))
        }
        Plan::CreateServiceAccount { cluster, objects } => {
            // The owner, the ServiceAccount with its token Secret (in that order) and the
            // status are independent writes: at once.
            let owner = clusters.iter().find(|c| c.name_any() == cluster);
            futures::try_join!(
                async {
                    match owner {
                        Some(c) => set_owner(client, request, c).await,
                        None => Ok(()),
                    }
                },
                apply_all(client, request, &objects),
                // As the wait for the token says it: one status write, not two.
                write_status(
                    client,
                    request,
                    &cluster,
                    false,
                    waiting_for_token(&format!(
                        "{}/{sa_name}",
                        cluster_namespace.as_deref().unwrap_or_default()
                    )),
                ),
            )?;
            Ok(Action::requeue(WAIT))
        }
        Plan::WaitForToken {
            cluster,
            service_account,
        } => {
            write_status(
                client,
                request,
                &cluster,
                false,
                waiting_for_token(&service_account),
            )
            .await?;
            Ok(Action::requeue(WAIT))
        }
        Plan::Grant {
            cluster,
            objects,
            delete_registrations,
        } => {
            if let Some(c) = clusters.iter().find(|c| c.name_any() == cluster) {
                set_owner(client, request, c).await?;
            }
            for name in &delete_registrations {
                let Some(old) = registrations
                    .iter()
                    .find(|r| r.metadata.name.as_ref() == Some(name))
                else {
                    continue;
                };
                tracing::info!(request = %key, old = %format!("{namespace}/{name}"), "deleting older registration of the same client");
                match Api::<ClusterRegistration>::namespaced(client.clone(), &namespace)
                    .delete(name, &Default::default())
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(source) => {
                        return Err(kube_err(format!(
                            "deleting older ClusterRegistration {namespace}/{name}"
                        ))(source));
                    }
                }
                for (resource, ns, obj) in
                    owned_objects(old, cluster_namespace.as_deref(), &rctx.settings)
                {
                    if let Err(error) = delete(client, &resource, ns.as_deref(), &obj).await {
                        tracing::warn!(request = %key, %error, "cleaning up an older registration");
                    }
                }
            }
            apply_grant(client, request, &objects).await?;
            write_status(client, request, &cluster, true, None).await?;
            tracing::info!(request = %key, cluster = %format!("{namespace}/{cluster}"), "cluster registration granted");
            Ok(Action::await_change())
        }
    }
}

fn error_policy(
    request: Arc<ClusterRegistration>,
    error: &ReconcileError,
    _: Arc<RequestContext>,
) -> Action {
    tracing::warn!(request = %key_of(&request), %error, "ClusterRegistration reconcile failed, retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the request reconciler until `shutdown`: requests are looked at again when a Cluster
/// of their clientID changes (its namespace is assigned) and when their ServiceAccount token
/// is filled in.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    let settings = RequestSettings {
        system_namespace: ctx.config.system_namespace.clone(),
        system_registration_namespace: ctx.config.system_registration_namespace.clone(),
    };
    let client = ctx.client.clone();
    let clusters = ctx.cluster_index();
    let cluster_changes = clusters.relevant_changes(registration_relevance);
    let (requests, writer) = reflector::store();
    let requests_by_client_id = Arc::new(RwLock::new(SecondaryIndex::new(request_client_id)));
    let indexer = requests_by_client_id.clone();
    let mut seen: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let request_events = reflector(
        writer,
        watcher(
            Api::<ClusterRegistration>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .inspect_ok(move |event| match indexer.write() {
        Ok(mut index) => index.apply(event),
        Err(poisoned) => poisoned.into_inner().apply(event),
    })
    .try_filter_map(move |event| {
        // The reconciler's own writes (status, owner) do not trigger it again.
        let changed = match event {
            watcher::Event::Apply(request) | watcher::Event::InitApply(request) => {
                let relevance = request_relevance(&request);
                (seen.insert(key_of(&request), relevance) != Some(relevance)).then_some(request)
            }
            watcher::Event::Delete(request) => {
                seen.remove(&key_of(&request));
                None
            }
            watcher::Event::Init | watcher::Event::InitDone => None,
        };
        futures::future::ready(Ok(changed))
    });
    let rctx = Arc::new(RequestContext {
        ctx,
        shutdown: shutdown.clone(),
        settings,
        clusters,
        requests: requests.clone(),
        requests_by_client_id,
    });
    let mapper = rctx.clone();
    Controller::for_stream(request_events, requests)
        .reconcile_on(cluster_changes.flat_map(move |change| {
            futures::stream::iter(mapper.waiting_requests_of(change.cluster()))
        }))
        .watches(
            Api::<Secret>::all(client),
            watcher::Config::default().labels(fleet_api::consts::MANAGED_LABEL),
            |secret: Secret| {
                let annotations = secret.metadata.annotations.unwrap_or_default();
                match (
                    annotations.get(CLUSTER_REGISTRATION_ANNOTATION),
                    annotations.get(CLUSTER_REGISTRATION_NAMESPACE_ANNOTATION),
                ) {
                    (Some(name), Some(ns)) => {
                        Some(ObjectRef::<ClusterRegistration>::new(name).within(ns))
                    }
                    _ => None,
                }
            },
        )
        .with_config(RuntimeConfig::default().concurrency(16))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, rctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::{ClusterRegistrationSpec, ClusterStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn settings() -> RequestSettings {
        RequestSettings {
            system_namespace: "cattle-fleet-system".into(),
            system_registration_namespace: "cattle-fleet-clusters-system".into(),
        }
    }

    fn request(name: &str, client_id: &str, random: &str, created: i64) -> ClusterRegistration {
        let mut r = ClusterRegistration::new(
            name,
            ClusterRegistrationSpec {
                client_id: client_id.into(),
                client_random: random.into(),
                cluster_labels: BTreeMap::from([("env".to_string(), "prod".to_string())]),
            },
        );
        r.metadata.namespace = Some("fleet-default".into());
        r.metadata.uid = Some(format!("uid-{name}"));
        r.metadata.creation_timestamp = Some(Time(
            Timestamp::from_second(1_700_000_000 + created).unwrap(),
        ));
        r
    }

    fn cluster(name: &str, client_id: &str, namespace: Option<&str>) -> Cluster {
        let mut c = Cluster::new(
            name,
            ClusterSpec {
                client_id: client_id.into(),
                ..Default::default()
            },
        );
        c.metadata.namespace = Some("fleet-default".into());
        c.metadata.uid = Some(format!("uid-{name}"));
        c.status = namespace.map(|ns| ClusterStatus {
            namespace: ns.into(),
            ..Default::default()
        });
        c
    }

    fn observed<'a>(
        request: &'a ClusterRegistration,
        clusters: &'a [Arc<Cluster>],
        sa: bool,
        token: Option<&'a str>,
        registrations: &'a [Arc<ClusterRegistration>],
    ) -> Observed<'a> {
        Observed {
            request,
            clusters,
            service_account_exists: sa,
            service_account_token: token,
            registrations,
        }
    }

    #[test]
    fn new_client_gets_a_cluster_named_after_its_hash() {
        let r = request("request-a", "client-1", "r1", 0);
        let Plan::CreateCluster(c) = decide(observed(&r, &[], false, None, &[]), &settings())
        else {
            panic!("expected CreateCluster");
        };
        assert_eq!(c.name_any(), format!("cluster-{}", key_hash("client-1")));
        assert_eq!(c.spec.client_id, "client-1");
        let labels = c.metadata.labels.unwrap();
        assert_eq!(labels["env"], "prod");
        assert_eq!(labels[CLUSTER_ANNOTATION], c.metadata.name.unwrap());
    }

    #[test]
    fn known_client_id_reuses_its_cluster() {
        let r = request("request-a", "client-1", "r1", 0);
        let clusters = [
            Arc::new(cluster("other", "client-2", Some("ns-other"))),
            Arc::new(cluster("sim-1", "client-1", None)),
        ];
        assert_eq!(
            decide(observed(&r, &clusters, false, None, &[]), &settings()),
            Plan::WaitForClusterNamespace {
                cluster: "sim-1".into()
            }
        );
    }

    #[test]
    fn hash_named_cluster_of_another_client_is_a_conflict() {
        let r = request("request-a", "client-1", "r1", 0);
        let clusters = [Arc::new(cluster(
            &cluster_name_for("client-1"),
            "someone-else",
            Some("ns"),
        ))];
        assert!(matches!(
            decide(observed(&r, &clusters, false, None, &[]), &settings()),
            Plan::ClientIdConflict { .. }
        ));
    }

    #[test]
    fn service_account_then_token_then_grant() {
        let r = request("request-a", "client-1", "r1", 10);
        let clusters = [Arc::new(cluster("sim-1", "client-1", Some("cluster-ns-1")))];
        let Plan::CreateServiceAccount { objects, .. } =
            decide(observed(&r, &clusters, false, None, &[]), &settings())
        else {
            panic!("expected CreateServiceAccount");
        };
        let names: Vec<String> = objects.iter().map(Desired::describe).collect();
        assert_eq!(
            names,
            [
                "ServiceAccount cluster-ns-1/request-a-uid-request-a",
                "Secret cluster-ns-1/request-a-uid-request-a-token"
            ]
        );
        assert_eq!(
            objects[0].object["metadata"]["annotations"][CLUSTER_REGISTRATION_ANNOTATION],
            "request-a"
        );
        assert!(matches!(
            decide(observed(&r, &clusters, true, None, &[]), &settings()),
            Plan::WaitForToken { .. }
        ));
        let older = request("request-old", "client-1", "r0", 0);
        let newer = request("request-new", "client-1", "r2", 20);
        let other_client = request("request-x", "client-2", "r9", 0);
        let all = [older, newer, other_client, r.clone()].map(Arc::new);
        let Plan::Grant {
            cluster,
            objects,
            delete_registrations,
        } = decide(
            observed(&r, &clusters, true, Some("tok"), &all),
            &settings(),
        )
        else {
            panic!("expected Grant");
        };
        assert_eq!(cluster, "sim-1");
        assert_eq!(delete_registrations, ["request-old"]);
        let names: Vec<String> = objects.iter().map(Desired::describe).collect();
        assert_eq!(
            names,
            [
                "ServiceAccount cluster-ns-1/request-a-uid-request-a".to_string(),
                "Secret cluster-ns-1/request-a-uid-request-a-token".to_string(),
                "Role fleet-default/request-a".to_string(),
                "RoleBinding fleet-default/request-a".to_string(),
                "RoleBinding cluster-ns-1/request-a".to_string(),
                "ClusterRoleBinding request-a-content".to_string(),
                format!(
                    "Secret cattle-fleet-clusters-system/{}",
                    registration_secret_name("client-1", "r1")
                ),
            ]
        );
        let secret = &objects[objects.len() - 1].object;
        assert_eq!(secret["type"], AGENT_CREDENTIAL_SECRET_TYPE);
        assert_eq!(secret["metadata"]["labels"][CLUSTER_ANNOTATION], "sim-1");
        use base64::Engine as _;
        let field = |k: &str| {
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(secret["data"][k].as_str().unwrap())
                    .unwrap(),
            )
            .unwrap()
        };
        assert_eq!(field("token"), "tok");
        assert_eq!(field("deploymentNamespace"), "cluster-ns-1");
        assert_eq!(field("clusterNamespace"), "fleet-default");
        assert_eq!(field("clusterName"), "sim-1");
        assert_eq!(field("systemNamespace"), "cattle-fleet-system");
        // The check-in right: patch the status of this one Cluster.
        assert_eq!(
            objects[2].object["rules"],
            json!([{"verbs": ["patch"], "apiGroups": ["fleet.cattle.io"], "resources": ["clusters/status"], "resourceNames": ["sim-1"]}])
        );
        assert_eq!(
            objects[4].object["roleRef"]["name"],
            BUNDLE_DEPLOYMENT_CLUSTER_ROLE
        );
        assert_eq!(objects[5].object["roleRef"]["name"], CONTENT_CLUSTER_ROLE);
        assert_eq!(
            objects[5].object["subjects"][0]["namespace"],
            "cluster-ns-1"
        );
    }

    #[test]
    fn granted_request_is_left_alone() {
        let mut r = request("request-a", "client-1", "r1", 0);
        r.status = Some(ClusterRegistrationStatus {
            cluster_name: "sim-1".into(),
            granted: true,
            ..Default::default()
        });
        assert_eq!(
            decide(observed(&r, &[], false, None, &[]), &settings()),
            Plan::AlreadyGranted
        );
    }

    #[test]
    fn a_cluster_the_cache_has_not_seen_yet_is_only_created_again_under_its_name() {
        // The Cluster this reconciler created is not cached yet: the plan is the same create,
        // of the same name, which the API server refuses with 409 — never a second Cluster.
        let r = request("request-a", "client-1", "r1", 0);
        let first = decide(observed(&r, &[], false, None, &[]), &settings());
        let again = decide(observed(&r, &[], false, None, &[]), &settings());
        assert_eq!(first, again);
        let Plan::CreateCluster(created) = first else {
            panic!("expected CreateCluster");
        };
        assert_eq!(created.name_any(), cluster_name_for("client-1"));
        // Once the cache has it, the request waits for its namespace and is granted from it.
        let mut seen = *created;
        seen.metadata.uid = Some("uid-created".into());
        let clusters = [Arc::new(seen.clone())];
        assert_eq!(
            decide(observed(&r, &clusters, false, None, &[]), &settings()),
            Plan::WaitForClusterNamespace {
                cluster: cluster_name_for("client-1")
            }
        );
        seen.status = Some(ClusterStatus {
            namespace: "cluster-ns".into(),
            ..Default::default()
        });
        let clusters = [Arc::new(seen)];
        assert!(matches!(
            decide(observed(&r, &clusters, true, Some("tok"), &[]), &settings()),
            Plan::Grant { .. }
        ));
    }

    #[test]
    fn a_grant_writes_the_rights_at_once_and_the_credentials_last() {
        let r = request("request-a", "client-1", "r1", 0);
        let clusters = [Arc::new(cluster("sim-1", "client-1", Some("cluster-ns-1")))];
        let Plan::Grant { objects, .. } =
            decide(observed(&r, &clusters, true, Some("tok"), &[]), &settings())
        else {
            panic!("expected Grant");
        };
        let steps = grant_steps(&objects);
        let rights: Vec<String> = steps.rights.iter().map(|o| o.describe()).collect();
        assert_eq!(
            rights,
            [
                "Role fleet-default/request-a",
                "RoleBinding fleet-default/request-a",
                "RoleBinding cluster-ns-1/request-a",
                "ClusterRoleBinding request-a-content",
            ],
            "the ServiceAccount and its token were observed, not written again"
        );
        assert_eq!(steps.last.len(), 1);
        assert_eq!(
            steps.last[0].describe(),
            format!(
                "Secret cattle-fleet-clusters-system/{}",
                registration_secret_name("client-1", "r1")
            )
        );
        assert_eq!(
            grant_steps(&[]),
            GrantSteps {
                rights: Vec::new(),
                last: &[]
            }
        );
    }

    #[test]
    fn a_requests_own_status_and_owner_do_not_trigger_it() {
        let r = request("request-a", "client-1", "r1", 0);
        let before = request_relevance(&r);
        let mut written = r.clone();
        written.status = Some(ClusterRegistrationStatus {
            cluster_name: "sim-1".into(),
            granted: false,
            conditions: Vec::new(),
        });
        written.metadata.owner_references = Some(vec![OwnerReference {
            kind: "Cluster".into(),
            name: "sim-1".into(),
            ..Default::default()
        }]);
        written.metadata.resource_version = Some("9".into());
        assert_eq!(request_relevance(&written), before);
        let mut granted = written.clone();
        granted.status.as_mut().unwrap().granted = true;
        assert_ne!(request_relevance(&granted), before);
        let mut other = r.clone();
        other.spec.client_random = "r2".into();
        assert_ne!(request_relevance(&other), before);
    }

    #[test]
    fn only_candidates_of_the_request_are_considered() {
        let r = request("request-a", "client-1", "r1", 0);
        let hash_named = cluster(&cluster_name_for("client-1"), "", Some("ns-h"));
        let by_id = cluster("sim-1", "client-1", Some("ns-1"));
        let mut elsewhere = cluster("sim-0", "client-1", Some("ns-0"));
        elsewhere.metadata.namespace = Some("other".into());
        let other_client = cluster("sim-2", "client-2", Some("ns-2"));
        assert!(is_candidate(&hash_named, &r));
        assert!(is_candidate(&by_id, &r));
        assert!(!is_candidate(&elsewhere, &r));
        assert!(!is_candidate(&other_client, &r));
        // A Cluster known by the clientID wins over the one named after it (Fleet's index
        // first); of several, the first by name.
        let clusters = [hash_named, elsewhere, other_client, by_id].map(Arc::new);
        assert_eq!(
            find_cluster(&clusters, &r).map(|c| c.name_any()),
            Some("sim-1".to_string())
        );
    }

    #[test]
    fn cached_candidates_come_from_the_client_id_index_and_the_derived_name() {
        let index = ClusterIndex::new();
        let events = [
            watcher::Event::Init,
            watcher::Event::InitApply(cluster("sim-1", "client-1", None)),
            watcher::Event::InitApply(cluster(&cluster_name_for("client-3"), "", None)),
            watcher::Event::InitApply(cluster("sim-2", "client-2", None)),
            watcher::Event::InitDone,
        ];
        index.feed_for_test(&events);
        let names = |r: &ClusterRegistration| -> Vec<String> {
            candidate_clusters(&index, r)
                .iter()
                .map(|c| c.name_any())
                .collect()
        };
        assert_eq!(names(&request("a", "client-1", "r", 0)), ["sim-1"]);
        // Named after the clientID but without it: found, then refused as a conflict.
        let r3 = request("c", "client-3", "r", 0);
        assert_eq!(names(&r3), [cluster_name_for("client-3")]);
        let clusters = candidate_clusters(&index, &r3);
        assert!(matches!(
            decide(observed(&r3, &clusters, false, None, &[]), &settings()),
            Plan::ClientIdConflict { .. }
        ));
        assert!(names(&request("d", "client-4", "r", 0)).is_empty());
    }

    #[test]
    fn a_grant_deletes_only_older_registrations_it_was_given() {
        let r = request("request-b", "client-1", "r2", 10);
        let clusters = [Arc::new(cluster("sim-1", "client-1", Some("ns-1")))];
        let registrations = [
            request("request-a", "client-1", "r1", 0),
            request("request-b", "client-1", "r2", 10),
            request("request-c", "client-1", "r3", 20),
        ]
        .map(Arc::new);
        let Plan::Grant {
            delete_registrations,
            ..
        } = decide(
            observed(&r, &clusters, true, Some("tok"), &registrations),
            &settings(),
        )
        else {
            panic!("expected Grant");
        };
        assert_eq!(delete_registrations, ["request-a"]);
    }

    /// A Cluster written just before its request but not yet in the cache (another name than
    /// the clientID's hash, so a create would not collide with it) is read from the API server;
    /// a cache past the request's resourceVersion answers by itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cluster_the_cache_has_not_seen_is_read_from_the_api_server() {
        let (_sim, client) = crate::test_upstream("fleet-default").await;
        let mut pre = cluster("pre-1", "client-1", None);
        pre.metadata.uid = None;
        Api::<Cluster>::namespaced(client.clone(), "fleet-default")
            .create(&PostParams::default(), &pre)
            .await
            .unwrap();
        let mut r = request("request-a", "client-1", "r1", 0);
        (r.metadata.uid, r.metadata.creation_timestamp) = (None, None);
        let r = Api::<ClusterRegistration>::namespaced(client.clone(), "fleet-default")
            .create(&PostParams::default(), &r)
            .await
            .unwrap();
        let mut registry = prometheus_client::registry::Registry::default();
        let rctx = RequestContext {
            ctx: Arc::new(Context::new(
                client,
                crate::ControllerConfig::default(),
                crate::Metrics::new(&mut registry),
            )),
            shutdown: CancellationToken::new(),
            settings: settings(),
            clusters: ClusterIndex::new(),
            requests: reflector::store().0,
            requests_by_client_id: Arc::new(RwLock::new(SecondaryIndex::new(request_client_id))),
        };
        let names = |clusters: Vec<Arc<Cluster>>| -> Vec<String> {
            clusters.iter().map(|c| c.name_any()).collect()
        };
        // An empty cache that has seen nothing of it: a small fleet is listed at once.
        rctx.clusters
            .feed_for_test(&[watcher::Event::Init, watcher::Event::InitDone]);
        let found = fresh_candidate_clusters(&rctx, &r, "test").await.unwrap();
        assert_eq!(names(found), ["pre-1"]);
        // A large fleet's cache is waited for, then listed when it does not catch up.
        let mut fillers = vec![watcher::Event::Init];
        fillers.extend(
            (0..=SMALL_FLEET)
                .map(|i| watcher::Event::InitApply(cluster(&format!("f-{i}"), "", None))),
        );
        fillers.push(watcher::Event::InitDone);
        rctx.clusters.feed_for_test(&fillers);
        let found = fresh_candidate_clusters(&rctx, &r, "test").await.unwrap();
        assert_eq!(names(found), ["pre-1"]);
        // Once the cache is past the request's version, it is trusted (here it lacks `pre-1`,
        // which shows the answer came from it).
        let mut later = cluster("f-0", "", None);
        later.metadata.resource_version = Some((version_of(&r).unwrap() + 1).to_string());
        rctx.clusters.feed_for_test(&[watcher::Event::Apply(later)]);
        let found = fresh_candidate_clusters(&rctx, &r, "test").await.unwrap();
        assert!(found.is_empty());
    }

    #[test]
    fn should_delete_only_older_requests_of_the_same_client() {
        let r = request("request-b", "c", "r2", 10);
        assert!(should_delete(&request("request-a", "c", "r1", 0), &r));
        assert!(!should_delete(&request("request-a", "c", "r2", 0), &r));
        assert!(!should_delete(&request("request-c", "c", "r3", 20), &r));
        assert!(!should_delete(&request("request-a", "d", "r1", 0), &r));
        assert!(!should_delete(&r.clone(), &r));
    }
}

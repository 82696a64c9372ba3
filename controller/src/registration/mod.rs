//! Agent-initiated registration (Fleet's `agentmanagement/controllers/clusterregistrationtoken`
//! and `clusterregistration`):
//!
//! - [`token`]: a `ClusterRegistrationToken` gets an import ServiceAccount whose token may only
//!   create ClusterRegistrations in the token's namespace and read secrets in the system
//!   registration namespace, and a values Secret (`status.secretName`) holding what an agent
//!   is installed with; the token is deleted when its `ttl` has passed.
//! - [`request`]: a `ClusterRegistration` created by an agent with such a token is granted:
//!   the Cluster with that `clientID` is found (or created), and once it has its cluster
//!   namespace, a request ServiceAccount with exactly the agent's rights and the registration
//!   secret `c-<hash>` in the system registration namespace carry the agent's credentials.
//!
//! Both reconcilers decide with pure functions over the observed objects (unit-tested) and
//! write with server-side apply.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fleet_api::consts::MANAGED_LABEL;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

use crate::Context;

pub mod request;
pub mod token;

/// Field manager of the objects the registration reconcilers apply.
pub const FIELD_MANAGER: &str = "fleet-registration";
/// ClusterRole bound in each cluster namespace for the agent (Fleet's
/// `BundleDeploymentClusterRole`).
pub const BUNDLE_DEPLOYMENT_CLUSTER_ROLE: &str = "fleet-bundle-deployment";
/// ClusterRole letting agents read Contents (Fleet's `ContentClusterRole`).
pub const CONTENT_CLUSTER_ROLE: &str = "fleet-content";
/// Type of the values Secret of a token.
pub const VALUES_SECRET_TYPE: &str = fleet_api::consts::CLUSTER_REGISTRATION_VALUES_SECRET_TYPE;
/// Type of a registration secret.
pub const AGENT_CREDENTIAL_SECRET_TYPE: &str = fleet_api::consts::AGENT_CREDENTIAL_SECRET_TYPE;
/// Type of a ServiceAccount token Secret.
pub const SERVICE_ACCOUNT_TOKEN_TYPE: &str = "kubernetes.io/service-account-token";
/// Annotation naming the ServiceAccount of a token Secret.
pub const SERVICE_ACCOUNT_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
/// Registration secrets are deleted this long after their creation (Fleet's
/// `ClusterRegistrationDeleteDelay`): the agent has copied them by then.
pub const REGISTRATION_SECRET_MAX_AGE: Duration = Duration::from_secs(40 * 60);

/// Why the registration reconcilers stopped.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
}

/// Why one write failed; names the object.
#[derive(Debug, thiserror::Error)]
#[error("{action} {object}: {source}")]
pub struct WriteError {
    pub action: &'static str,
    pub object: String,
    #[source]
    pub source: kube::Error,
}

/// Fleet's `names.KeyHash`: the first 12 hex characters of the SHA-256 of the first 100
/// bytes.
pub fn key_hash(s: &str) -> String {
    let bytes = s.as_bytes();
    let cut = &bytes[..bytes.len().min(100)];
    let mut out = hex::encode(Sha256::digest(cut));
    out.truncate(12);
    out
}

/// Fleet's `names.SafeConcatName`.
pub fn safe_concat_name(parts: &[&str]) -> String {
    fleet_bundle::names::safe_concat_name(parts)
}

/// Fleet's `registration.SecretName` (the agent computes the same name).
pub fn registration_secret_name(client_id: &str, client_random: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(client_id.as_bytes());
    digest.update(client_random.as_bytes());
    let mut name = format!("c-{}", hex::encode(digest.finalize()));
    name.truncate(63);
    name
}

/// `fleet.cattle.io/managed: "true"`.
pub fn managed_labels() -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGED_LABEL.to_string(), "true".to_string())])
}

/// An object to apply: its resource and full JSON (with apiVersion and kind).
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub resource: ApiResource,
    pub object: serde_json::Value,
}

impl Desired {
    pub fn of<K>(object: &K) -> Desired
    where
        K: kube::Resource<DynamicType = ()> + serde::Serialize,
    {
        let mut value = serde_json::to_value(object).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert("apiVersion".into(), K::api_version(&()).into());
            map.insert("kind".into(), K::kind(&()).into());
        }
        Desired {
            resource: ApiResource::erase::<K>(&()),
            object: value,
        }
    }

    pub fn kind(&self) -> &str {
        &self.resource.kind
    }

    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.object["metadata"]["namespace"].as_str()
    }

    /// `Kind ns/name`, for messages.
    pub fn describe(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{} {ns}/{}", self.kind(), self.name()),
            None => format!("{} {}", self.kind(), self.name()),
        }
    }
}

fn dynamic_api(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

/// Server-side applies `desired` (forced: these objects are the controller's).
pub async fn apply(client: &kube::Client, desired: &Desired) -> Result<(), WriteError> {
    dynamic_api(client, &desired.resource, desired.namespace())
        .patch(
            desired.name(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&desired.object),
        )
        .await
        .map(|_| ())
        .map_err(|source| WriteError {
            action: "applying",
            object: desired.describe(),
            source,
        })
}

/// Deletes an object; a missing one is no error.
pub async fn delete(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: Option<&str>,
    name: &str,
) -> Result<(), WriteError> {
    match dynamic_api(client, resource, namespace)
        .delete(name, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(WriteError {
            action: "deleting",
            object: match namespace {
                Some(ns) => format!("{} {ns}/{name}", resource.kind),
                None => format!("{} {name}", resource.kind),
            },
            source,
        }),
    }
}

/// The cluster-wide objects registration relies on (Fleet's `ApplyBootstrapResources`): the
/// agents' ClusterRoles and the system and system registration namespaces.
pub fn bootstrap_objects(
    system_namespace: &str,
    system_registration_namespace: &str,
) -> Vec<Desired> {
    let rule = |verbs: &[&str], group: &str, resources: &[&str]| PolicyRule {
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        api_groups: Some(vec![group.to_string()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        ..Default::default()
    };
    let fleet = fleet_api::consts::GROUP;
    let bundle_deployment = ClusterRole {
        metadata: ObjectMeta {
            name: Some(BUNDLE_DEPLOYMENT_CLUSTER_ROLE.to_string()),
            ..Default::default()
        },
        rules: Some(vec![
            rule(&["get", "list", "watch"], fleet, &["bundledeployments"]),
            rule(&["update", "patch"], fleet, &["bundledeployments/status"]),
            // fleet-rs: the agent itself keeps its finalizer on the BundleDeployments of its
            // cluster namespace (Fleet v0.12 leaves that to the controller).
            rule(&["update", "patch"], fleet, &["bundledeployments"]),
            rule(&["get"], "", &["secrets"]),
        ]),
        ..Default::default()
    };
    let content = ClusterRole {
        metadata: ObjectMeta {
            name: Some(CONTENT_CLUSTER_ROLE.to_string()),
            ..Default::default()
        },
        rules: Some(vec![rule(&["get"], fleet, &["contents"])]),
        ..Default::default()
    };
    let namespace = |name: &str| Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    vec![
        Desired::of(&bundle_deployment),
        Desired::of(&content),
        Desired::of(&namespace(system_namespace)),
        Desired::of(&namespace(system_registration_namespace)),
    ]
}

/// Which registration secrets are old enough to go: labelled with their cluster, in the
/// system registration namespace, created more than `max_age` before `now`.
pub fn expired_registration_secrets<'a>(
    secrets: impl IntoIterator<Item = &'a k8s_openapi::api::core::v1::Secret>,
    now: k8s_openapi::jiff::Timestamp,
    max_age: Duration,
) -> Vec<String> {
    let max_age = k8s_openapi::jiff::SignedDuration::try_from(max_age)
        .unwrap_or(k8s_openapi::jiff::SignedDuration::MAX);
    secrets
        .into_iter()
        .filter(|s| {
            s.metadata.labels.as_ref().is_some_and(|l| {
                l.get(fleet_api::consts::CLUSTER_ANNOTATION)
                    .is_some_and(|c| !c.is_empty())
            })
        })
        .filter(|s| {
            s.metadata
                .creation_timestamp
                .as_ref()
                .and_then(|t| t.0.checked_add(max_age).ok())
                .is_some_and(|expiry| expiry < now)
        })
        .filter_map(|s| s.metadata.name.clone())
        .collect()
}

/// Deletes expired registration secrets every few minutes (Fleet's `registration-expire`).
async fn expire_registration_secrets(ctx: Arc<Context>, shutdown: CancellationToken) {
    let namespace = ctx.config.system_registration_namespace.clone();
    let api: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(ctx.client.clone(), &namespace);
    let interval = (REGISTRATION_SECRET_MAX_AGE / 8).max(Duration::from_secs(1));
    loop {
        let listed = api
            .list(&kube::api::ListParams::default().labels(fleet_api::consts::CLUSTER_ANNOTATION))
            .await;
        match listed {
            Ok(list) => {
                let now = k8s_openapi::jiff::Timestamp::now();
                for name in
                    expired_registration_secrets(&list.items, now, REGISTRATION_SECRET_MAX_AGE)
                {
                    tracing::info!(secret = %format!("{namespace}/{name}"), "deleting expired registration secret");
                    if let Err(error) = api.delete(&name, &DeleteParams::default()).await {
                        tracing::warn!(secret = %format!("{namespace}/{name}"), %error, "deleting expired registration secret failed");
                    }
                }
            }
            Err(error) => {
                tracing::debug!(%namespace, %error, "listing registration secrets failed");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Runs the token and registration reconcilers (and the registration secret expiry) until
/// `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) -> Result<(), RegistrationError> {
    for object in bootstrap_objects(
        &ctx.config.system_namespace,
        &ctx.config.system_registration_namespace,
    ) {
        // A failure here is reported and retried by the reconcilers' own writes.
        if let Err(error) = apply(&ctx.client, &object).await {
            tracing::warn!(%error, "applying the registration bootstrap objects failed");
        }
    }
    tokio::join!(
        token::run(ctx.clone(), shutdown.clone()),
        request::run(ctx.clone(), shutdown.clone()),
        expire_registration_secrets(ctx.clone(), shutdown.clone()),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn key_hash_is_fleets() {
        // sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(key_hash("abc"), "ba7816bf8f01");
        let long = "x".repeat(150);
        assert_eq!(key_hash(&long), key_hash(&"x".repeat(100)));
    }

    #[test]
    fn registration_secret_name_matches_the_agent() {
        assert_eq!(
            registration_secret_name("abc", "def"),
            "c-bef57ec7f53a6d40beb640a780a639c83bc29ac8a9816f1fc6c5c6dcd93c4"
        );
    }

    #[test]
    fn bootstrap_objects_are_fleets_cluster_roles_and_namespaces() {
        let objects = bootstrap_objects("cattle-fleet-system", "cattle-fleet-clusters-system");
        let names: Vec<String> = objects.iter().map(Desired::describe).collect();
        assert_eq!(
            names,
            [
                "ClusterRole fleet-bundle-deployment",
                "ClusterRole fleet-content",
                "Namespace cattle-fleet-system",
                "Namespace cattle-fleet-clusters-system"
            ]
        );
        assert_eq!(
            objects[0].object["apiVersion"],
            "rbac.authorization.k8s.io/v1"
        );
        assert_eq!(objects[1].object["rules"][0]["resources"][0], "contents");
        assert_eq!(
            objects[1].object["rules"][0]["verbs"],
            serde_json::json!(["get"])
        );
    }

    #[test]
    fn only_old_labelled_registration_secrets_expire() {
        let secret = |name: &str, labelled: bool, created: i64| Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: labelled.then(|| {
                    BTreeMap::from([(
                        fleet_api::consts::CLUSTER_ANNOTATION.to_string(),
                        "c1".to_string(),
                    )])
                }),
                creation_timestamp: Some(Time(Timestamp::from_second(created).unwrap())),
                ..Default::default()
            },
            ..Default::default()
        };
        let now = Timestamp::from_second(10_000).unwrap();
        let secrets = [
            secret("old", true, 10_000 - 41 * 60),
            secret("young", true, 10_000 - 39 * 60),
            secret("unlabelled", false, 0),
        ];
        assert_eq!(
            expired_registration_secrets(&secrets, now, REGISTRATION_SECRET_MAX_AGE),
            ["old"]
        );
    }
}

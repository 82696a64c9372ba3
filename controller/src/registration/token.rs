//! The ClusterRegistrationToken reconciler (Fleet's `clusterregistrationtoken/handler.go`).
//!
//! For a token `T` (uid `U`) in namespace `N` it keeps:
//! - ServiceAccount `T-U` in `N` and its token Secret `T-U-token` (filled by the API server);
//! - Role `T-U-role` in `N` (create ClusterRegistrations) bound by RoleBinding `T-U-to-role`;
//! - Role and RoleBinding `T-U-creds` in the system registration namespace (get secrets);
//! - once the ServiceAccount token exists, the values Secret `T` in `N`
//!   (`fleet.cattle.io/cluster-registration-values`, key `values`: the agent's bootstrap
//!   values) and `status.secretName: T`.
//!
//! `status.expires` is the creation time plus `spec.ttl`; the reconcile is requeued at the
//! expiry and the token deleted then, which takes its ServiceAccount (and so its token) with it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleet_api::consts::condition;
use fleet_api::{ClusterRegistrationToken, ClusterRegistrationTokenStatus};
use futures::StreamExt as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ApiResource, Patch, PatchParams};
use kube::runtime::controller::{Action, Config as RuntimeConfig, Controller};
use kube::runtime::watcher;
use kube::{Resource as _, ResourceExt as _};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{
    Desired, SERVICE_ACCOUNT_NAME_ANNOTATION, SERVICE_ACCOUNT_TOKEN_TYPE, VALUES_SECRET_TYPE,
    WriteError, apply, delete, managed_labels, safe_concat_name,
};
use crate::Context;
use crate::config::ControllerConfig;
use crate::summary::set_condition;

/// Key of the values YAML in the values Secret (Fleet's `ImportTokenSecretValuesKey`).
pub const VALUES_KEY: &str = "values";
/// How often a token whose ServiceAccount token is not filled in yet is looked at again.
const TOKEN_WAIT: Duration = Duration::from_secs(1);
/// Delay before a token whose objects could not be written is tried again.
const ERROR_RETRY: Duration = Duration::from_secs(10);

/// What the token reconciler needs from the controller's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    pub api_server_url: String,
    pub api_server_ca: String,
    pub system_namespace: String,
    pub system_registration_namespace: String,
}

impl TokenSettings {
    pub fn from_config(config: &ControllerConfig) -> Self {
        TokenSettings {
            api_server_url: config.api_server_url.clone(),
            api_server_ca: config.api_server_ca.clone(),
            system_namespace: config.system_namespace.clone(),
            system_registration_namespace: config.system_registration_namespace.clone(),
        }
    }
}

/// Name of the token's import ServiceAccount (`<token>-<uid>`).
pub fn import_service_account_name(token: &ClusterRegistrationToken) -> String {
    safe_concat_name(&[
        token.metadata.name.as_deref().unwrap_or_default(),
        token.metadata.uid.as_deref().unwrap_or_default(),
    ])
}

/// Name of the ServiceAccount token Secret (Fleet's `<sa>-token`).
pub fn token_secret_name(service_account: &str) -> String {
    format!("{service_account}-token")
}

/// The time to live of a token, when it has a positive one.
fn ttl(token: &ClusterRegistrationToken) -> Option<SignedDuration> {
    let nanos = token.spec.ttl?.as_nanos();
    (nanos > 0).then(|| SignedDuration::from_nanos(nanos))
}

/// When the token expires: creation time plus ttl.
pub fn expiry(token: &ClusterRegistrationToken) -> Option<Timestamp> {
    let created = token.metadata.creation_timestamp.as_ref()?.0;
    created.checked_add(ttl(token)?).ok()
}

/// What to do with a token.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenPlan {
    /// The ttl has passed: delete the token and what was made for it.
    Delete { expired_at: Timestamp },
    /// Keep these objects; write this status (conditions are set by the caller); look again
    /// after `requeue_after` (`None`: on the next change).
    Serve {
        objects: Vec<Desired>,
        status: ClusterRegistrationTokenStatus,
        requeue_after: Option<Duration>,
    },
}

fn owner(token: &ClusterRegistrationToken) -> OwnerReference {
    OwnerReference {
        api_version: fleet_api::consts::API_VERSION.to_string(),
        kind: "ClusterRegistrationToken".to_string(),
        name: token.name_any(),
        uid: token.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn meta(name: &str, namespace: &str, owner: Option<&OwnerReference>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some(managed_labels()),
        owner_references: owner.map(|o| vec![o.clone()]),
        ..Default::default()
    }
}

fn service_account_subject(name: &str, namespace: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".to_string(),
        name: name.to_string(),
        namespace: Some(namespace.to_string()),
        ..Default::default()
    }
}

fn role_ref(name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".to_string(),
        kind: "Role".to_string(),
        name: name.to_string(),
    }
}

/// The bootstrap values an agent is installed with (Fleet's values YAML).
pub fn values_yaml(
    token_namespace: &str,
    service_account_token: &str,
    settings: &TokenSettings,
) -> String {
    let mut values = json!({
        "clusterNamespace": token_namespace,
        "apiServerURL": settings.api_server_url,
        "apiServerCA": settings.api_server_ca,
        "token": service_account_token,
        "systemRegistrationNamespace": settings.system_registration_namespace,
    });
    if settings.system_namespace != "cattle-fleet-system" {
        values["internal"] = json!({"systemNamespace": settings.system_namespace});
    }
    serde_norway::to_string(&values).unwrap_or_default()
}

/// The pure decision for `token` at `now`; `service_account_token` is the filled-in token of
/// its ServiceAccount, if any yet.
pub fn decide(
    token: &ClusterRegistrationToken,
    service_account_token: Option<&str>,
    settings: &TokenSettings,
    now: Timestamp,
) -> TokenPlan {
    let expires = expiry(token);
    if let Some(expires) = expires
        && now >= expires
    {
        return TokenPlan::Delete {
            expired_at: expires,
        };
    }
    let namespace = token.namespace().unwrap_or_default();
    let sa_name = import_service_account_name(token);
    let owner = owner(token);
    let role_name = safe_concat_name(&[&sa_name, "role"]);
    let creds_name = safe_concat_name(&[&sa_name, "creds"]);
    let mut objects = vec![
        Desired::of(&ServiceAccount {
            metadata: meta(&sa_name, &namespace, Some(&owner)),
            ..Default::default()
        }),
        Desired::of(&Secret {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([(
                    SERVICE_ACCOUNT_NAME_ANNOTATION.to_string(),
                    sa_name.clone(),
                )])),
                ..meta(&token_secret_name(&sa_name), &namespace, Some(&owner))
            },
            type_: Some(SERVICE_ACCOUNT_TOKEN_TYPE.to_string()),
            ..Default::default()
        }),
        Desired::of(&Role {
            metadata: meta(&role_name, &namespace, Some(&owner)),
            rules: Some(vec![PolicyRule {
                verbs: vec!["create".to_string()],
                api_groups: Some(vec![fleet_api::consts::GROUP.to_string()]),
                resources: Some(vec!["clusterregistrations".to_string()]),
                ..Default::default()
            }]),
        }),
        Desired::of(&RoleBinding {
            metadata: meta(
                &safe_concat_name(&[&sa_name, "to", "role"]),
                &namespace,
                Some(&owner),
            ),
            subjects: Some(vec![service_account_subject(&sa_name, &namespace)]),
            role_ref: role_ref(&role_name),
        }),
        // In another namespace than the token: no owner reference (it would not resolve);
        // deleted explicitly with the token.
        Desired::of(&Role {
            metadata: meta(&creds_name, &settings.system_registration_namespace, None),
            rules: Some(vec![PolicyRule {
                verbs: vec!["get".to_string()],
                api_groups: Some(vec![String::new()]),
                resources: Some(vec!["secrets".to_string()]),
                ..Default::default()
            }]),
        }),
        Desired::of(&RoleBinding {
            metadata: meta(&creds_name, &settings.system_registration_namespace, None),
            subjects: Some(vec![service_account_subject(&sa_name, &namespace)]),
            role_ref: role_ref(&creds_name),
        }),
    ];
    let mut status = ClusterRegistrationTokenStatus {
        expires: expires.map(Time),
        ..Default::default()
    };
    let filled = service_account_token.filter(|t| !t.is_empty());
    if let Some(sa_token) = filled {
        let name = token.name_any();
        objects.push(Desired::of(&Secret {
            metadata: meta(&name, &namespace, Some(&owner)),
            type_: Some(VALUES_SECRET_TYPE.to_string()),
            data: Some(BTreeMap::from([(
                VALUES_KEY.to_string(),
                ByteString(values_yaml(&namespace, sa_token, settings).into_bytes()),
            )])),
            ..Default::default()
        }));
        status.secret_name = name;
    }
    let until_expiry = expires.and_then(|e| {
        let left = now.duration_until(e);
        Duration::try_from(left).ok()
    });
    let requeue_after = if filled.is_none() {
        Some(until_expiry.map_or(TOKEN_WAIT, |d| d.min(TOKEN_WAIT)))
    } else {
        until_expiry
    };
    TokenPlan::Serve {
        objects,
        status,
        requeue_after,
    }
}

/// The objects made for a token, to delete with it (those in its namespace would also go by
/// their owner reference; the creds Role/RoleBinding live elsewhere).
pub fn owned_objects(
    token: &ClusterRegistrationToken,
    settings: &TokenSettings,
) -> Vec<(ApiResource, String, String)> {
    let namespace = token.namespace().unwrap_or_default();
    let sa_name = import_service_account_name(token);
    let creds = safe_concat_name(&[&sa_name, "creds"]);
    let secret = ApiResource::erase::<Secret>(&());
    vec![
        (
            ApiResource::erase::<RoleBinding>(&()),
            settings.system_registration_namespace.clone(),
            creds.clone(),
        ),
        (
            ApiResource::erase::<Role>(&()),
            settings.system_registration_namespace.clone(),
            creds,
        ),
        (
            ApiResource::erase::<RoleBinding>(&()),
            namespace.clone(),
            safe_concat_name(&[&sa_name, "to", "role"]),
        ),
        (
            ApiResource::erase::<Role>(&()),
            namespace.clone(),
            safe_concat_name(&[&sa_name, "role"]),
        ),
        (secret.clone(), namespace.clone(), token.name_any()),
        (secret, namespace.clone(), token_secret_name(&sa_name)),
        (
            ApiResource::erase::<ServiceAccount>(&()),
            namespace,
            sa_name,
        ),
    ]
}

/// Why one reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("ClusterRegistrationToken {token}: {action}: {source}")]
    Kube {
        token: String,
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error("ClusterRegistrationToken {token}: {source}")]
    Write {
        token: String,
        #[source]
        source: WriteError,
    },
}

struct TokenContext {
    ctx: Arc<Context>,
    settings: TokenSettings,
    /// Consecutive failures per token, for the retry backoff.
    failures: Mutex<BTreeMap<String, u32>>,
}

fn key_of(token: &ClusterRegistrationToken) -> String {
    format!(
        "{}/{}",
        token.namespace().unwrap_or_default(),
        token.name_any()
    )
}

async fn write_status(
    client: &kube::Client,
    token: &ClusterRegistrationToken,
    status: &ClusterRegistrationTokenStatus,
) -> Result<(), ReconcileError> {
    if token.status.as_ref() == Some(status) {
        return Ok(());
    }
    let api: Api<ClusterRegistrationToken> =
        Api::namespaced(client.clone(), &token.namespace().unwrap_or_default());
    api.patch_status(
        &token.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "expires": status.expires,
            "secretName": status.secret_name,
            "conditions": status.conditions,
        }})),
    )
    .await
    .map(|_| ())
    .map_err(|source| ReconcileError::Kube {
        token: key_of(token),
        action: "writing status".to_string(),
        source,
    })
}

fn now_rfc3339(now: Timestamp) -> String {
    now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

async fn reconcile(
    token: Arc<ClusterRegistrationToken>,
    tctx: Arc<TokenContext>,
) -> Result<Action, ReconcileError> {
    if token.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let started = std::time::Instant::now();
    let key = key_of(&token);
    let span = tracing::info_span!("clusterregistrationtoken", token = %key);
    let result = tracing::Instrument::instrument(reconcile_inner(&token, &tctx, &key), span).await;
    tctx.ctx.metrics.reconciled(
        "clusterregistrationtoken",
        result.is_ok(),
        started.elapsed().as_secs_f64(),
    );
    result
}

async fn reconcile_inner(
    token: &ClusterRegistrationToken,
    tctx: &TokenContext,
    key: &str,
) -> Result<Action, ReconcileError> {
    let client = &tctx.ctx.client;
    let namespace = token.namespace().unwrap_or_default();
    let sa_name = import_service_account_name(token);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let sa_token = secrets
        .get_opt(&token_secret_name(&sa_name))
        .await
        .map_err(|source| ReconcileError::Kube {
            token: key.to_string(),
            action: format!("reading secret {namespace}/{}", token_secret_name(&sa_name)),
            source,
        })?
        .and_then(|s| s.data)
        .and_then(|d| {
            d.get("token")
                .map(|t| String::from_utf8_lossy(&t.0).into_owned())
        });
    let now = Timestamp::now();
    match decide(token, sa_token.as_deref(), &tctx.settings, now) {
        TokenPlan::Delete { expired_at } => {
            tracing::info!(token = %key, expired = %expired_at, "deleting expired ClusterRegistrationToken");
            let api: Api<ClusterRegistrationToken> = Api::namespaced(client.clone(), &namespace);
            match api.delete(&token.name_any(), &Default::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(source) => {
                    return Err(ReconcileError::Kube {
                        token: key.to_string(),
                        action: "deleting the expired token".to_string(),
                        source,
                    });
                }
            }
            for (resource, ns, name) in owned_objects(token, &tctx.settings) {
                if let Err(error) = delete(client, &resource, Some(&ns), &name).await {
                    tracing::warn!(token = %key, %error, "cleaning up after an expired token");
                }
            }
            Ok(Action::await_change())
        }
        TokenPlan::Serve {
            objects,
            mut status,
            requeue_after,
        } => {
            status.conditions = token
                .status
                .as_ref()
                .map(|s| s.conditions.clone())
                .unwrap_or_default();
            let mut failed = None;
            for object in &objects {
                if let Err(error) = apply(client, object).await {
                    failed = Some(error);
                    break;
                }
            }
            let stamp = now_rfc3339(now);
            match failed {
                Some(error) => {
                    // Keep what was already served; say why the token cannot be used.
                    if let Some(old) = &token.status {
                        status.secret_name = old.secret_name.clone();
                    }
                    let message = format!("cannot serve registration token {key}: {error}");
                    set_condition(
                        &mut status.conditions,
                        condition::READY,
                        false,
                        "Error",
                        &message,
                        &stamp,
                    );
                    write_status(client, token, &status).await?;
                    let attempts = {
                        let mut failures = tctx.failures.lock().unwrap_or_else(|p| p.into_inner());
                        let n = failures.entry(key.to_string()).or_insert(0);
                        *n = n.saturating_add(1);
                        *n
                    };
                    let wait = ERROR_RETRY
                        .saturating_mul(1 << attempts.min(5))
                        .min(Duration::from_secs(300));
                    tracing::warn!(token = %key, %message, retry_in = ?wait, "ClusterRegistrationToken not served");
                    Ok(Action::requeue(wait))
                }
                None => {
                    tctx.failures
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(key);
                    let (ready, reason, message) = if status.secret_name.is_empty() {
                        (
                            false,
                            "WaitingForServiceAccountToken",
                            format!(
                                "waiting for the token of ServiceAccount {namespace}/{sa_name}"
                            ),
                        )
                    } else {
                        (true, "", String::new())
                    };
                    set_condition(
                        &mut status.conditions,
                        condition::READY,
                        ready,
                        reason,
                        &message,
                        &stamp,
                    );
                    write_status(client, token, &status).await?;
                    Ok(match requeue_after {
                        // A tick after the expiry, so that the next look deletes it.
                        Some(after) => Action::requeue(after + Duration::from_millis(50)),
                        None => Action::requeue(Duration::from_secs(600)),
                    })
                }
            }
        }
    }
}

fn error_policy(
    token: Arc<ClusterRegistrationToken>,
    error: &ReconcileError,
    _: Arc<TokenContext>,
) -> Action {
    tracing::warn!(token = %key_of(&token), %error, "ClusterRegistrationToken reconcile failed, retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Runs the token reconciler until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    let settings = TokenSettings::from_config(&ctx.config);
    let client = ctx.client.clone();
    let tctx = Arc::new(TokenContext {
        ctx,
        settings,
        failures: Mutex::default(),
    });
    Controller::new(
        Api::<ClusterRegistrationToken>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(
        Api::<Secret>::all(client),
        watcher::Config::default().labels(fleet_api::consts::MANAGED_LABEL),
    )
    .with_config(RuntimeConfig::default().concurrency(8))
    .graceful_shutdown_on(shutdown.cancelled_owned())
    .run(reconcile, error_policy, tctx)
    .for_each(|_| futures::future::ready(()))
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::ClusterRegistrationTokenSpec;

    fn settings() -> TokenSettings {
        TokenSettings {
            api_server_url: "https://upstream:6443".into(),
            api_server_ca: "CA".into(),
            system_namespace: "cattle-fleet-system".into(),
            system_registration_namespace: "cattle-fleet-clusters-system".into(),
        }
    }

    fn token(ttl: Option<&str>) -> ClusterRegistrationToken {
        let mut t = ClusterRegistrationToken::new(
            "import",
            ClusterRegistrationTokenSpec {
                ttl: ttl.map(|s| s.parse().unwrap()),
            },
        );
        t.metadata.namespace = Some("fleet-default".into());
        t.metadata.uid = Some("uid-1".into());
        t.metadata.creation_timestamp = Some(Time(at(0)));
        t
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + second).unwrap()
    }

    fn served(
        plan: TokenPlan,
    ) -> (
        Vec<Desired>,
        ClusterRegistrationTokenStatus,
        Option<Duration>,
    ) {
        match plan {
            TokenPlan::Serve {
                objects,
                status,
                requeue_after,
            } => (objects, status, requeue_after),
            other => panic!("expected Serve, got {other:?}"),
        }
    }

    #[test]
    fn expired_token_is_deleted() {
        let t = token(Some("1h"));
        assert_eq!(
            decide(&t, Some("sa-token"), &settings(), at(3600)),
            TokenPlan::Delete {
                expired_at: at(3600)
            }
        );
    }

    #[test]
    fn token_waits_for_its_service_account_token() {
        let (objects, status, requeue) = served(decide(&token(None), None, &settings(), at(10)));
        let names: Vec<String> = objects.iter().map(Desired::describe).collect();
        assert_eq!(
            names,
            [
                "ServiceAccount fleet-default/import-uid-1",
                "Secret fleet-default/import-uid-1-token",
                "Role fleet-default/import-uid-1-role",
                "RoleBinding fleet-default/import-uid-1-to-role",
                "Role cattle-fleet-clusters-system/import-uid-1-creds",
                "RoleBinding cattle-fleet-clusters-system/import-uid-1-creds",
            ]
        );
        assert_eq!(status.secret_name, "");
        assert_eq!(status.expires, None);
        assert_eq!(requeue, Some(TOKEN_WAIT));
        assert_eq!(objects[1].object["type"], SERVICE_ACCOUNT_TOKEN_TYPE);
        assert_eq!(
            objects[1].object["metadata"]["annotations"][SERVICE_ACCOUNT_NAME_ANNOTATION],
            "import-uid-1"
        );
    }

    #[test]
    fn rights_are_exactly_fleets() {
        let (objects, _, _) = served(decide(&token(None), Some("t"), &settings(), at(10)));
        let role = &objects[2].object;
        assert_eq!(
            role["rules"],
            json!([{"verbs": ["create"], "apiGroups": ["fleet.cattle.io"], "resources": ["clusterregistrations"]}])
        );
        let creds = &objects[4].object;
        assert_eq!(
            creds["rules"],
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}])
        );
        assert_eq!(
            objects[5].object["subjects"],
            json!([{"kind": "ServiceAccount", "name": "import-uid-1", "namespace": "fleet-default"}])
        );
        assert_eq!(objects[5].object["roleRef"]["name"], "import-uid-1-creds");
        // Objects in the token's namespace are owned by it; the creds ones cannot be.
        assert_eq!(
            objects[0].object["metadata"]["ownerReferences"][0]["kind"],
            "ClusterRegistrationToken"
        );
        assert!(
            objects[4].object["metadata"]
                .get("ownerReferences")
                .is_none()
        );
    }

    #[test]
    fn values_secret_and_expiry_once_the_token_exists() {
        let (objects, status, requeue) = served(decide(
            &token(Some("1h")),
            Some("sa-token"),
            &settings(),
            at(600),
        ));
        let values = objects.last().unwrap();
        assert_eq!(values.describe(), "Secret fleet-default/import");
        assert_eq!(values.object["type"], VALUES_SECRET_TYPE);
        let yaml_b64 = values.object["data"][VALUES_KEY].as_str().unwrap();
        use base64::Engine as _;
        let yaml = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(yaml_b64)
                .unwrap(),
        )
        .unwrap();
        let parsed: serde_json::Value = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(
            parsed,
            json!({
                "apiServerCA": "CA",
                "apiServerURL": "https://upstream:6443",
                "clusterNamespace": "fleet-default",
                "systemRegistrationNamespace": "cattle-fleet-clusters-system",
                "token": "sa-token",
            })
        );
        assert_eq!(status.secret_name, "import");
        assert_eq!(status.expires, Some(Time(at(3600))));
        // Looked at again when it expires.
        assert_eq!(requeue, Some(Duration::from_secs(3000)));
    }

    #[test]
    fn other_system_namespace_goes_into_internal() {
        let mut s = settings();
        s.system_namespace = "fleet-system-2".into();
        let yaml = values_yaml("ns", "t", &s);
        let parsed: serde_json::Value = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(parsed["internal"]["systemNamespace"], "fleet-system-2");
    }

    #[test]
    fn owned_objects_include_the_creds_in_the_registration_namespace() {
        let objects = owned_objects(&token(None), &settings());
        assert!(objects.iter().any(|(r, ns, name)| r.kind == "RoleBinding"
            && ns == "cattle-fleet-clusters-system"
            && name == "import-uid-1-creds"));
        assert!(
            objects
                .iter()
                .any(|(r, _, name)| r.kind == "ServiceAccount" && name == "import-uid-1")
        );
    }
}

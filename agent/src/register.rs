//! Agent-initiated registration (Fleet's `internal/cmd/agent/register`): the agent finds its
//! upstream credentials in the downstream secret `fleet-agent`; when that secret is missing or
//! its token no longer works, it reads the bootstrap values (secret `fleet-agent-bootstrap`,
//! from a ClusterRegistrationToken) and the ConfigMap `fleet-agent` (clientID, labels), creates
//! a `ClusterRegistration` upstream with a random `clientRandom`, waits for the controller to
//! grant it (the registration secret `c-<hash>` in the system registration namespace), writes
//! the `fleet-agent` secret downstream and deletes the bootstrap secret.
//!
//! How the agent reaches the upstream API server is behind [`UpstreamConnector`]:
//! [`HttpsConnector`] for real clusters, an in-process one in the simulator.
//!
//! The parsing and naming helpers are pure and unit-tested; [`register`] is one attempt
//! (Fleet's `tryRegister`) and [`register_with_retry`] retries it with backoff, reporting each
//! failure as a downstream Event.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use fleet_api::consts::CREATED_BY_AGENT_POD_LABEL;
use fleet_api::{BundleDeployment, ClusterRegistration, ClusterRegistrationSpec};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Event, EventSource, Namespace, ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

/// The agent's credentials secret downstream (Fleet's `CredName`).
pub const CREDENTIALS_SECRET: &str = "fleet-agent";
/// The bootstrap values secret downstream (Fleet's `AgentBootstrapConfigName`).
pub const BOOTSTRAP_SECRET: &str = "fleet-agent-bootstrap";
/// The agent's ConfigMap downstream (Fleet's `AgentConfigName`), key [`CONFIG_KEY`].
pub const AGENT_CONFIGMAP: &str = "fleet-agent";
/// Key of the JSON configuration in the agent ConfigMap.
pub const CONFIG_KEY: &str = "config";

/// Keys of the bootstrap and credentials secrets (Fleet's names).
pub mod keys {
    pub const KUBECONFIG: &str = "kubeconfig";
    pub const TOKEN: &str = "token";
    pub const VALUES: &str = "values";
    pub const DEPLOYMENT_NAMESPACE: &str = "deploymentNamespace";
    pub const CLUSTER_NAMESPACE: &str = "clusterNamespace";
    pub const CLUSTER_NAME: &str = "clusterName";
    pub const SYSTEM_REGISTRATION_NAMESPACE: &str = "systemRegistrationNamespace";
    pub const API_SERVER_URL: &str = "apiServerURL";
    pub const API_SERVER_CA: &str = "apiServerCA";
}

/// Fleet's wait for the registration secret (`CreateClusterSecretTimeout`).
pub const DEFAULT_SECRET_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Fleet's poll interval for the registration secret (`ClusterSecretRetry`).
pub const DEFAULT_SECRET_POLL: Duration = Duration::from_secs(2);
/// Fleet's delay between registration attempts (`AgentRegistrationRetry`), the backoff cap.
pub const MAX_REGISTRATION_RETRY: Duration = Duration::from_secs(60);

/// Why a registration attempt failed. Every message names the secret, namespace or URL
/// involved, so that the Event a user reads says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("connecting to the upstream cluster at {url:?}: {message}")]
    Connect { url: String, message: String },
    #[error("{action} downstream: {source}")]
    Downstream {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "neither secret {namespace}/{CREDENTIALS_SECRET} nor secret {namespace}/{BOOTSTRAP_SECRET} exists downstream: install the agent with the values of a ClusterRegistrationToken"
    )]
    NoBootstrap { namespace: String },
    #[error("secret {namespace}/{name}: {message}")]
    InvalidSecret {
        namespace: String,
        name: String,
        message: String,
    },
    #[error("ConfigMap {namespace}/{AGENT_CONFIGMAP} key {CONFIG_KEY}: {message}")]
    InvalidConfig { namespace: String, message: String },
    #[error(
        "the registration token in secret {secret} was refused by the upstream cluster {url} (401 Unauthorized) while {action} in cluster namespace {cluster_namespace}: the ClusterRegistrationToken it came from has expired or was deleted; create a new token in {cluster_namespace} and install the agent with its values"
    )]
    TokenRejected {
        secret: String,
        url: String,
        action: String,
        cluster_namespace: String,
    },
    #[error(
        "the registration token in secret {secret} was refused (403 Forbidden) while {action} in cluster namespace {cluster_namespace} upstream ({message}): the token was made for another namespace, {cluster_namespace} does not exist, or the token's rights were removed"
    )]
    TokenForbidden {
        secret: String,
        action: String,
        cluster_namespace: String,
        message: String,
    },
    #[error(
        "cluster namespace {cluster_namespace} named by secret {secret} does not exist on the upstream cluster {url}: create a ClusterRegistrationToken in an existing namespace and install the agent with its values"
    )]
    NamespaceMissing {
        secret: String,
        url: String,
        cluster_namespace: String,
    },
    #[error("{action} upstream: {source}")]
    Upstream {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "ClusterRegistration {request} was not granted within {seconds}s: no registration secret {namespace}/{name} upstream (is the fleet controller running?)"
    )]
    Timeout {
        request: String,
        namespace: String,
        name: String,
        seconds: u64,
    },
    #[error(
        "the credentials granted for cluster {cluster} cannot list BundleDeployments in {namespace} upstream: {source}"
    )]
    CredentialsUnusable {
        cluster: String,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("registration stopped: the agent is shutting down")]
    Cancelled,
}

impl RegisterError {
    /// The Event reason of this error.
    pub fn reason(&self) -> &'static str {
        match self {
            RegisterError::TokenRejected { .. } => "RegistrationTokenRejected",
            RegisterError::TokenForbidden { .. } => "RegistrationTokenForbidden",
            RegisterError::NamespaceMissing { .. } => "ClusterNamespaceMissing",
            RegisterError::NoBootstrap { .. } => "NoBootstrapSecret",
            RegisterError::Timeout { .. } => "RegistrationNotGranted",
            _ => "RegistrationFailed",
        }
    }
}

/// Builds the client the agent talks to the upstream cluster with.
pub trait UpstreamConnector: Send + Sync {
    /// A client for `api_server_url`, trusting `ca_pem` (empty: the system roots), sending
    /// `token` as bearer token.
    fn connect(
        &self,
        api_server_url: &str,
        ca_pem: &str,
        token: &str,
    ) -> Result<kube::Client, RegisterError>;
}

/// The real connector: HTTPS with rustls, trusting the given CA (or the system roots when
/// none is given).
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpsConnector;

/// The DER certificates of a PEM bundle; other PEM blocks are ignored.
pub fn pem_certificates(ca_pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let blocks = pem::parse_many(ca_pem.as_bytes()).map_err(|e| format!("invalid CA PEM: {e}"))?;
    let certs: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect();
    if certs.is_empty() {
        return Err("the CA PEM holds no CERTIFICATE block".to_string());
    }
    Ok(certs)
}

impl UpstreamConnector for HttpsConnector {
    fn connect(
        &self,
        api_server_url: &str,
        ca_pem: &str,
        token: &str,
    ) -> Result<kube::Client, RegisterError> {
        let err = |message: String| RegisterError::Connect {
            url: api_server_url.to_string(),
            message,
        };
        if api_server_url.trim().is_empty() {
            return Err(err("no API server URL".to_string()));
        }
        let uri: http::Uri = api_server_url
            .trim()
            .parse()
            .map_err(|e| err(format!("invalid URL: {e}")))?;
        let mut config = kube::Config::new(uri);
        if !ca_pem.trim().is_empty() {
            config.root_cert = Some(pem_certificates(ca_pem).map_err(err)?);
        }
        config.auth_info.token = Some(token.to_string().into());
        config.connect_timeout = Some(Duration::from_secs(30));
        config.read_timeout = Some(Duration::from_secs(300));
        kube::Client::try_from(config).map_err(|e| err(e.to_string()))
    }
}

/// The bootstrap values (secret `fleet-agent-bootstrap`, or a `values` YAML key as in the
/// registration token's values secret).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootstrapValues {
    pub api_server_url: String,
    pub api_server_ca: String,
    pub token: String,
    pub cluster_namespace: String,
    pub system_registration_namespace: String,
}

/// The data of a secret as strings (`stringData` wins, as the API server would merge it).
pub fn secret_strings(secret: &Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone());
    }
    out
}

impl BootstrapValues {
    /// Reads the values from a secret's data: the keys directly, or a `values` key holding
    /// YAML with the same keys (Fleet's values secret of a ClusterRegistrationToken).
    pub fn from_strings(data: &BTreeMap<String, String>) -> Result<Self, String> {
        let values: BTreeMap<String, String> = match data.get(keys::VALUES) {
            Some(yaml) if !yaml.trim().is_empty() => {
                let parsed: serde_json::Value = serde_norway::from_str(yaml)
                    .map_err(|e| format!("key {}: invalid YAML: {e}", keys::VALUES))?;
                parsed
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                            .collect()
                    })
                    .unwrap_or_default()
            }
            _ => data.clone(),
        };
        let get = |k: &str| values.get(k).cloned().unwrap_or_default();
        let out = BootstrapValues {
            api_server_url: get(keys::API_SERVER_URL),
            api_server_ca: get(keys::API_SERVER_CA),
            token: get(keys::TOKEN),
            cluster_namespace: get(keys::CLUSTER_NAMESPACE),
            system_registration_namespace: get(keys::SYSTEM_REGISTRATION_NAMESPACE),
        };
        let missing: Vec<&str> = [
            (keys::API_SERVER_URL, &out.api_server_url),
            (keys::TOKEN, &out.token),
            (keys::CLUSTER_NAMESPACE, &out.cluster_namespace),
            (
                keys::SYSTEM_REGISTRATION_NAMESPACE,
                &out.system_registration_namespace,
            ),
        ]
        .iter()
        .filter(|(_, v)| v.trim().is_empty())
        .map(|(k, _)| *k)
        .collect();
        if !missing.is_empty() {
            return Err(format!("missing or empty keys: {}", missing.join(", ")));
        }
        Ok(out)
    }
}

/// The agent ConfigMap's `config` JSON (Fleet's `config.Config` subset the agent reads).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AgentConfigMap {
    #[serde(rename = "clientID")]
    pub client_id: String,
    pub labels: BTreeMap<String, String>,
    #[serde(rename = "agentTLSMode")]
    pub agent_tls_mode: String,
}

impl AgentConfigMap {
    pub fn parse(json_text: &str) -> Result<Self, String> {
        if json_text.trim().is_empty() {
            return Ok(AgentConfigMap::default());
        }
        serde_json::from_str(json_text).map_err(|e| format!("invalid JSON: {e}"))
    }
}

/// The contents of the `fleet-agent` secret: what the agent needs to talk upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub api_server_url: String,
    pub api_server_ca: String,
    pub token: String,
    /// The cluster namespace upstream holding this cluster's BundleDeployments.
    pub deployment_namespace: String,
    /// Namespace of the Cluster object upstream (e.g. `fleet-default`).
    pub cluster_namespace: String,
    pub cluster_name: String,
    pub system_registration_namespace: String,
}

impl Credentials {
    /// The secret's data (Fleet's keys plus the connection values, so that a connector needs
    /// no kubeconfig parsing).
    pub fn to_data(&self) -> BTreeMap<String, ByteString> {
        let kubeconfig = kubeconfig_yaml(
            &self.api_server_url,
            &self.api_server_ca,
            &self.token,
            &self.deployment_namespace,
        );
        [
            (keys::KUBECONFIG, kubeconfig.as_str()),
            (keys::TOKEN, self.token.as_str()),
            (
                keys::DEPLOYMENT_NAMESPACE,
                self.deployment_namespace.as_str(),
            ),
            (keys::CLUSTER_NAMESPACE, self.cluster_namespace.as_str()),
            (keys::CLUSTER_NAME, self.cluster_name.as_str()),
            (
                keys::SYSTEM_REGISTRATION_NAMESPACE,
                self.system_registration_namespace.as_str(),
            ),
            (keys::API_SERVER_URL, self.api_server_url.as_str()),
            (keys::API_SERVER_CA, self.api_server_ca.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect()
    }

    /// Reads the secret's data; the connection comes from the explicit keys, or from the
    /// kubeconfig when a secret written by Fleet itself has only that.
    pub fn from_strings(data: &BTreeMap<String, String>) -> Result<Self, String> {
        let get = |k: &str| data.get(k).cloned().unwrap_or_default();
        let mut out = Credentials {
            api_server_url: get(keys::API_SERVER_URL),
            api_server_ca: get(keys::API_SERVER_CA),
            token: get(keys::TOKEN),
            deployment_namespace: get(keys::DEPLOYMENT_NAMESPACE),
            cluster_namespace: get(keys::CLUSTER_NAMESPACE),
            cluster_name: get(keys::CLUSTER_NAME),
            system_registration_namespace: get(keys::SYSTEM_REGISTRATION_NAMESPACE),
        };
        if out.api_server_url.is_empty() || out.token.is_empty() {
            let kubeconfig = get(keys::KUBECONFIG);
            if kubeconfig.trim().is_empty() {
                return Err(format!(
                    "neither {} and {} nor {} are set",
                    keys::API_SERVER_URL,
                    keys::TOKEN,
                    keys::KUBECONFIG
                ));
            }
            let parsed = parse_kubeconfig(&kubeconfig)?;
            out.api_server_url = parsed.server;
            out.api_server_ca = parsed.ca_pem;
            out.token = parsed.token;
            if out.deployment_namespace.is_empty() {
                out.deployment_namespace = parsed.namespace;
            }
        }
        let missing: Vec<&str> = [
            (keys::DEPLOYMENT_NAMESPACE, &out.deployment_namespace),
            (keys::CLUSTER_NAMESPACE, &out.cluster_namespace),
            (keys::CLUSTER_NAME, &out.cluster_name),
        ]
        .iter()
        .filter(|(_, v)| v.is_empty())
        .map(|(k, _)| *k)
        .collect();
        if !missing.is_empty() {
            return Err(format!("missing or empty keys: {}", missing.join(", ")));
        }
        Ok(out)
    }
}

/// A kubeconfig for one server, token and namespace (as Fleet writes into `fleet-agent`).
pub fn kubeconfig_yaml(server: &str, ca_pem: &str, token: &str, namespace: &str) -> String {
    let mut cluster = json!({"server": server});
    if !ca_pem.is_empty() {
        cluster["certificate-authority-data"] =
            json!(base64::engine::general_purpose::STANDARD.encode(ca_pem));
    }
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": "user", "user": {"token": token}}],
        "contexts": [{"name": "default", "context": {"cluster": "cluster", "user": "user", "namespace": namespace}}],
        "current-context": "default",
    });
    serde_norway::to_string(&config).unwrap_or_default()
}

/// What the agent needs from a kubeconfig.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeconfigConnection {
    pub server: String,
    pub ca_pem: String,
    pub token: String,
    pub namespace: String,
}

/// The server, CA, token and namespace of a kubeconfig's current context.
pub fn parse_kubeconfig(text: &str) -> Result<KubeconfigConnection, String> {
    let doc: serde_json::Value =
        serde_norway::from_str(text).map_err(|e| format!("invalid kubeconfig YAML: {e}"))?;
    let named = |list: &str, name: &str| -> serde_json::Value {
        doc[list]
            .as_array()
            .and_then(|items| {
                items
                    .iter()
                    .find(|i| name.is_empty() || i["name"].as_str() == Some(name))
            })
            .cloned()
            .unwrap_or_default()
    };
    let current = doc["current-context"].as_str().unwrap_or_default();
    let context = named("contexts", current);
    let context = &context["context"];
    let cluster = named("clusters", context["cluster"].as_str().unwrap_or_default());
    let user = named("users", context["user"].as_str().unwrap_or_default());
    let server = cluster["cluster"]["server"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if server.is_empty() {
        return Err("the kubeconfig names no server".to_string());
    }
    let ca_pem = match cluster["cluster"]["certificate-authority-data"].as_str() {
        Some(b64) if !b64.is_empty() => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| format!("kubeconfig certificate-authority-data: {e}"))?;
            String::from_utf8_lossy(&bytes).into_owned()
        }
        _ => String::new(),
    };
    Ok(KubeconfigConnection {
        server,
        ca_pem,
        token: user["user"]["token"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        namespace: context["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    })
}

/// Name of the registration secret the controller writes for a granted request (Fleet's
/// `registration.SecretName`): `c-` and the SHA-256 of clientID and clientRandom, 63
/// characters at most.
pub fn registration_secret_name(client_id: &str, client_random: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(client_id.as_bytes());
    digest.update(client_random.as_bytes());
    let mut name = format!("c-{}", hex::encode(digest.finalize()));
    name.truncate(63);
    name
}

/// A random token as wrangler's `randomtoken.Generate` makes them: 54 characters from an
/// alphabet without vowels and look-alike characters.
pub fn random_client_random() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    use rand::Rng as _;
    let mut rng = rand::rng();
    (0..54)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Settings of one registration.
#[derive(Debug, Clone)]
pub struct RegisterOptions {
    /// Namespace of the agent downstream (holds the secrets and ConfigMap).
    pub agent_namespace: String,
    /// Written as label `fleet.cattle.io/created-by-agent-pod` on the request.
    pub pod_name: String,
    /// How often to look for the registration secret upstream.
    pub secret_poll: Duration,
    /// How long to wait for it.
    pub secret_timeout: Duration,
}

impl RegisterOptions {
    pub fn new(agent_namespace: &str) -> Self {
        RegisterOptions {
            agent_namespace: agent_namespace.to_string(),
            pod_name: String::new(),
            secret_poll: DEFAULT_SECRET_POLL,
            secret_timeout: DEFAULT_SECRET_TIMEOUT,
        }
    }
}

/// A working upstream connection and what it is for.
pub struct Registered {
    pub upstream: kube::Client,
    pub credentials: Credentials,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("cluster_namespace", &self.credentials.cluster_namespace)
            .field("cluster_name", &self.credentials.cluster_name)
            .field(
                "deployment_namespace",
                &self.credentials.deployment_namespace,
            )
            .finish()
    }
}

fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(s) if s.code == code)
}

/// Whether the upstream refused the credentials themselves (so a re-registration may help).
fn is_auth_failure(error: &kube::Error) -> bool {
    is_status(error, 401) || is_status(error, 403)
}

async fn check_credentials(
    upstream: &kube::Client,
    credentials: &Credentials,
) -> Result<(), kube::Error> {
    Api::<BundleDeployment>::namespaced(upstream.clone(), &credentials.deployment_namespace)
        .list(&ListParams::default().limit(1))
        .await
        .map(|_| ())
}

fn secret_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// One registration attempt (Fleet's `tryRegister`): use the `fleet-agent` secret if its
/// credentials work, otherwise register with the bootstrap values; the bootstrap secret is
/// deleted once the agent has working credentials.
pub async fn register(
    downstream: &kube::Client,
    connector: &dyn UpstreamConnector,
    options: &RegisterOptions,
    shutdown: &CancellationToken,
) -> Result<Registered, RegisterError> {
    let ns = options.agent_namespace.as_str();
    let secrets: Api<Secret> = Api::namespaced(downstream.clone(), ns);
    let existing = secrets
        .get_opt(CREDENTIALS_SECRET)
        .await
        .map_err(|source| RegisterError::Downstream {
            action: format!("reading secret {}", secret_key(ns, CREDENTIALS_SECRET)),
            source,
        })?;
    let registered = match existing {
        None => {
            tracing::info!(secret = %secret_key(ns, CREDENTIALS_SECRET), "no agent credentials yet, registering with the bootstrap values");
            run_registration(downstream, connector, options, shutdown).await?
        }
        Some(secret) => {
            let credentials =
                Credentials::from_strings(&secret_strings(&secret)).map_err(|message| {
                    RegisterError::InvalidSecret {
                        namespace: ns.to_string(),
                        name: CREDENTIALS_SECRET.to_string(),
                        message,
                    }
                });
            let usable = match credentials {
                Ok(credentials) => {
                    let upstream = connector.connect(
                        &credentials.api_server_url,
                        &credentials.api_server_ca,
                        &credentials.token,
                    )?;
                    match check_credentials(&upstream, &credentials).await {
                        Ok(()) => Some(Registered {
                            upstream,
                            credentials,
                        }),
                        Err(error) if is_auth_failure(&error) => {
                            tracing::warn!(secret = %secret_key(ns, CREDENTIALS_SECRET), %error, "the agent credentials were refused, registering again");
                            None
                        }
                        Err(source) => {
                            return Err(RegisterError::Upstream {
                                action: format!(
                                    "checking the credentials of cluster {}/{} (listing BundleDeployments in {})",
                                    credentials.cluster_namespace,
                                    credentials.cluster_name,
                                    credentials.deployment_namespace
                                ),
                                source,
                            });
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "unreadable agent credentials, registering again");
                    None
                }
            };
            match usable {
                Some(registered) => registered,
                None => run_registration(downstream, connector, options, shutdown).await?,
            }
        }
    };
    // Fleet deletes the bootstrap credentials once the agent has its own.
    match secrets
        .delete(BOOTSTRAP_SECRET, &DeleteParams::default())
        .await
    {
        Ok(_) => {
            tracing::info!(secret = %secret_key(ns, BOOTSTRAP_SECRET), "deleted the bootstrap secret")
        }
        Err(e) if is_status(&e, 404) => {}
        Err(error) => {
            tracing::warn!(secret = %secret_key(ns, BOOTSTRAP_SECRET), %error, "deleting the bootstrap secret failed")
        }
    }
    Ok(registered)
}

/// The downstream cluster's identity: the uid of its `kube-system` namespace (Fleet's default
/// clientID).
async fn kube_system_uid(downstream: &kube::Client) -> Result<String, RegisterError> {
    let namespace = Api::<Namespace>::all(downstream.clone())
        .get("kube-system")
        .await
        .map_err(|source| RegisterError::Downstream {
            action: "reading namespace kube-system (the default clientID is its uid)".to_string(),
            source,
        })?;
    namespace
        .metadata
        .uid
        .filter(|u| !u.is_empty())
        .ok_or_else(|| RegisterError::InvalidConfig {
            namespace: String::new(),
            message: "no clientID configured and namespace kube-system has no uid".to_string(),
        })
}

/// Classifies an upstream error of a request made with the bootstrap token.
fn bootstrap_error(
    error: kube::Error,
    action: &str,
    values: &BootstrapValues,
    bootstrap_secret: &str,
) -> RegisterError {
    match &error {
        kube::Error::Api(s) if s.code == 401 => RegisterError::TokenRejected {
            secret: bootstrap_secret.to_string(),
            url: values.api_server_url.clone(),
            action: action.to_string(),
            cluster_namespace: values.cluster_namespace.clone(),
        },
        kube::Error::Api(s) if s.code == 403 => RegisterError::TokenForbidden {
            secret: bootstrap_secret.to_string(),
            action: action.to_string(),
            cluster_namespace: values.cluster_namespace.clone(),
            message: s.message.clone(),
        },
        kube::Error::Api(s)
            if s.code == 404
                && s.details.as_ref().is_some_and(|d| {
                    d.kind == "namespaces" || d.name == values.cluster_namespace
                }) =>
        {
            RegisterError::NamespaceMissing {
                secret: bootstrap_secret.to_string(),
                url: values.api_server_url.clone(),
                cluster_namespace: values.cluster_namespace.clone(),
            }
        }
        _ => RegisterError::Upstream {
            action: format!("{action} in cluster namespace {}", values.cluster_namespace),
            source: error,
        },
    }
}

/// Fleet's `runRegistration`: register with the bootstrap values and write `fleet-agent`.
async fn run_registration(
    downstream: &kube::Client,
    connector: &dyn UpstreamConnector,
    options: &RegisterOptions,
    shutdown: &CancellationToken,
) -> Result<Registered, RegisterError> {
    let ns = options.agent_namespace.as_str();
    let bootstrap_key = secret_key(ns, BOOTSTRAP_SECRET);
    let secrets: Api<Secret> = Api::namespaced(downstream.clone(), ns);
    let bootstrap = secrets
        .get_opt(BOOTSTRAP_SECRET)
        .await
        .map_err(|source| RegisterError::Downstream {
            action: format!("reading secret {bootstrap_key}"),
            source,
        })?
        .ok_or_else(|| RegisterError::NoBootstrap {
            namespace: ns.to_string(),
        })?;
    let values = BootstrapValues::from_strings(&secret_strings(&bootstrap)).map_err(|message| {
        RegisterError::InvalidSecret {
            namespace: ns.to_string(),
            name: BOOTSTRAP_SECRET.to_string(),
            message,
        }
    })?;
    let configmaps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(downstream.clone(), ns);
    let config = match configmaps
        .get_opt(AGENT_CONFIGMAP)
        .await
        .map_err(|source| RegisterError::Downstream {
            action: format!("reading ConfigMap {ns}/{AGENT_CONFIGMAP}"),
            source,
        })? {
        Some(cm) => AgentConfigMap::parse(
            cm.data
                .as_ref()
                .and_then(|d| d.get(CONFIG_KEY))
                .map(String::as_str)
                .unwrap_or_default(),
        )
        .map_err(|message| RegisterError::InvalidConfig {
            namespace: ns.to_string(),
            message,
        })?,
        None => AgentConfigMap::default(),
    };

    let bootstrap_client =
        connector.connect(&values.api_server_url, &values.api_server_ca, &values.token)?;
    let client_id = if config.client_id.trim().is_empty() {
        kube_system_uid(downstream).await?
    } else {
        config.client_id.trim().to_string()
    };
    let mut labels = config.labels.clone();
    if !options.pod_name.is_empty() {
        labels.insert(
            CREATED_BY_AGENT_POD_LABEL.to_string(),
            options.pod_name.clone(),
        );
    }
    let client_random = random_client_random();
    let request = ClusterRegistration {
        metadata: ObjectMeta {
            generate_name: Some("request-".to_string()),
            namespace: Some(values.cluster_namespace.clone()),
            ..Default::default()
        },
        spec: ClusterRegistrationSpec {
            client_id: client_id.clone(),
            client_random: client_random.clone(),
            cluster_labels: labels,
        },
        status: None,
    };
    tracing::info!(client_id = %client_id, namespace = %values.cluster_namespace, "creating a ClusterRegistration");
    let created =
        Api::<ClusterRegistration>::namespaced(bootstrap_client.clone(), &values.cluster_namespace)
            .create(&PostParams::default(), &request)
            .await
            .map_err(|e| {
                bootstrap_error(e, "creating a ClusterRegistration", &values, &bootstrap_key)
            })?;
    let request_key = format!(
        "{}/{}",
        values.cluster_namespace,
        created.metadata.name.as_deref().unwrap_or_default()
    );

    let secret_name = registration_secret_name(&client_id, &client_random);
    let upstream_secrets: Api<Secret> = Api::namespaced(
        bootstrap_client.clone(),
        &values.system_registration_namespace,
    );
    let deadline = tokio::time::Instant::now() + options.secret_timeout;
    let granted = loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Err(RegisterError::Cancelled),
            _ = tokio::time::sleep(options.secret_poll) => {}
        }
        match upstream_secrets.get_opt(&secret_name).await {
            Ok(Some(secret)) => break secret,
            Ok(None) => {
                tracing::debug!(request = %request_key, secret = %secret_key(&values.system_registration_namespace, &secret_name), "waiting for the registration secret");
            }
            Err(e) if is_status(&e, 401) => {
                return Err(bootstrap_error(
                    e,
                    "waiting for the registration secret",
                    &values,
                    &bootstrap_key,
                ));
            }
            Err(error) => {
                tracing::info!(request = %request_key, %error, "waiting for the registration secret");
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(RegisterError::Timeout {
                request: request_key,
                namespace: values.system_registration_namespace.clone(),
                name: secret_name,
                seconds: options.secret_timeout.as_secs(),
            });
        }
    };
    let granted = secret_strings(&granted);
    let get = |k: &str| granted.get(k).cloned().unwrap_or_default();
    let credentials = Credentials {
        api_server_url: values.api_server_url.clone(),
        api_server_ca: values.api_server_ca.clone(),
        token: get(keys::TOKEN),
        deployment_namespace: get(keys::DEPLOYMENT_NAMESPACE),
        cluster_namespace: get(keys::CLUSTER_NAMESPACE),
        cluster_name: get(keys::CLUSTER_NAME),
        system_registration_namespace: values.system_registration_namespace.clone(),
    };
    if credentials.token.is_empty() || credentials.deployment_namespace.is_empty() {
        return Err(RegisterError::InvalidSecret {
            namespace: values.system_registration_namespace.clone(),
            name: secret_name,
            message: "the registration secret has no token or deploymentNamespace".to_string(),
        });
    }
    let upstream = connector.connect(
        &credentials.api_server_url,
        &credentials.api_server_ca,
        &credentials.token,
    )?;
    check_credentials(&upstream, &credentials)
        .await
        .map_err(|source| RegisterError::CredentialsUnusable {
            cluster: format!(
                "{}/{}",
                credentials.cluster_namespace, credentials.cluster_name
            ),
            namespace: credentials.deployment_namespace.clone(),
            source,
        })?;

    write_credentials(&secrets, ns, &credentials).await?;
    tracing::info!(cluster = %format!("{}/{}", credentials.cluster_namespace, credentials.cluster_name), request = %request_key, "registered with the upstream cluster");
    Ok(Registered {
        upstream,
        credentials,
    })
}

/// Writes the `fleet-agent` secret (replacing an old one, as Fleet deletes and re-creates it).
async fn write_credentials(
    secrets: &Api<Secret>,
    ns: &str,
    credentials: &Credentials,
) -> Result<(), RegisterError> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(CREDENTIALS_SECRET.to_string()),
            namespace: Some(ns.to_string()),
            ..Default::default()
        },
        data: Some(credentials.to_data()),
        ..Default::default()
    };
    let action = || format!("writing secret {}", secret_key(ns, CREDENTIALS_SECRET));
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 409) => {
            match secrets
                .delete(CREDENTIALS_SECRET, &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(e) if is_status(&e, 404) => {}
                Err(source) => {
                    return Err(RegisterError::Downstream {
                        action: action(),
                        source,
                    });
                }
            }
            secrets
                .create(&PostParams::default(), &secret)
                .await
                .map(|_| ())
                .map_err(|source| RegisterError::Downstream {
                    action: action(),
                    source,
                })
        }
        Err(source) => Err(RegisterError::Downstream {
            action: action(),
            source,
        }),
    }
}

/// The object registration Events are about: the bootstrap secret.
fn event_subject(namespace: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".to_string()),
        kind: Some("Secret".to_string()),
        name: Some(BOOTSTRAP_SECRET.to_string()),
        namespace: Some(namespace.to_string()),
        ..Default::default()
    }
}

/// The name of the Event recording `reason` (one Event per reason, its count raised on
/// repeats, as the Kubernetes event recorder aggregates them).
pub fn event_name(reason: &str) -> String {
    format!("{BOOTSTRAP_SECRET}.{}", reason.to_lowercase())
}

/// Records (or counts up) an Event in the agent namespace downstream, so that `kubectl get
/// events -n <agent namespace>` shows why the agent is not registered.
pub async fn record_event(
    downstream: &kube::Client,
    namespace: &str,
    type_: &str,
    reason: &str,
    message: &str,
) {
    let api: Api<Event> = Api::namespaced(downstream.clone(), namespace);
    let name = event_name(reason);
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let result = match api.get_opt(&name).await {
        Ok(Some(mut event)) => {
            event.count = Some(event.count.unwrap_or(1).saturating_add(1));
            event.message = Some(message.to_string());
            event.last_timestamp = Some(now);
            event.type_ = Some(type_.to_string());
            api.replace(&name, &PostParams::default(), &event)
                .await
                .map(|_| ())
        }
        Ok(None) => {
            let event = Event {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(namespace.to_string()),
                    ..Default::default()
                },
                involved_object: event_subject(namespace),
                reason: Some(reason.to_string()),
                message: Some(message.to_string()),
                type_: Some(type_.to_string()),
                count: Some(1),
                first_timestamp: Some(now.clone()),
                last_timestamp: Some(now),
                source: Some(EventSource {
                    component: Some("fleet-agent".to_string()),
                    ..Default::default()
                }),
                reporting_component: Some("fleet-agent".to_string()),
                ..Default::default()
            };
            api.create(&PostParams::default(), &event).await.map(|_| ())
        }
        Err(e) => Err(e),
    };
    if let Err(error) = result {
        tracing::warn!(%namespace, %reason, %error, "recording the registration Event failed");
    }
}

/// The delay before attempt `attempt + 1` (doubling from `initial`, capped at Fleet's minute).
pub fn retry_delay(initial: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.min(10);
    initial
        .saturating_mul(factor)
        .min(MAX_REGISTRATION_RETRY.max(initial))
}

/// Registers until it works or `shutdown` is cancelled (`None`); every failure is logged and
/// recorded as a Warning Event in the agent namespace, then retried with backoff.
pub async fn register_with_retry(
    downstream: &kube::Client,
    connector: &dyn UpstreamConnector,
    options: &RegisterOptions,
    initial_retry: Duration,
    shutdown: &CancellationToken,
) -> Option<Registered> {
    let mut attempt = 0u32;
    loop {
        match register(downstream, connector, options, shutdown).await {
            Ok(registered) => {
                if attempt > 0 {
                    let message = format!(
                        "registered as cluster {}/{}",
                        registered.credentials.cluster_namespace,
                        registered.credentials.cluster_name
                    );
                    record_event(
                        downstream,
                        &options.agent_namespace,
                        "Normal",
                        "Registered",
                        &message,
                    )
                    .await;
                }
                return Some(registered);
            }
            Err(RegisterError::Cancelled) => return None,
            Err(error) => {
                let message = error.to_string();
                tracing::error!(namespace = %options.agent_namespace, error = %message, "agent registration failed");
                record_event(
                    downstream,
                    &options.agent_namespace,
                    "Warning",
                    error.reason(),
                    &message,
                )
                .await;
            }
        }
        let wait = retry_delay(initial_retry, attempt);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn secret_name_is_fleets() {
        // sha256("abc" + "def") = sha256("abcdef")
        let name = registration_secret_name("abc", "def");
        assert_eq!(
            name,
            "c-bef57ec7f53a6d40beb640a780a639c83bc29ac8a9816f1fc6c5c6dcd93c4"
        );
        assert_eq!(name.len(), 63);
    }

    #[test]
    fn client_random_uses_wrangler_alphabet() {
        let token = random_client_random();
        assert_eq!(token.len(), 54);
        assert!(
            token
                .chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
        );
        assert_ne!(token, random_client_random());
    }

    #[test]
    fn bootstrap_values_from_keys_or_values_yaml() {
        let direct = BootstrapValues::from_strings(&strings(&[
            ("apiServerURL", "https://up"),
            ("apiServerCA", "PEM"),
            ("token", "t"),
            ("clusterNamespace", "fleet-default"),
            (
                "systemRegistrationNamespace",
                "cattle-fleet-clusters-system",
            ),
        ]))
        .unwrap();
        let yaml = "apiServerURL: https://up\napiServerCA: PEM\ntoken: t\nclusterNamespace: fleet-default\nsystemRegistrationNamespace: cattle-fleet-clusters-system\n";
        let from_values = BootstrapValues::from_strings(&strings(&[("values", yaml)])).unwrap();
        assert_eq!(direct, from_values);
        assert_eq!(direct.cluster_namespace, "fleet-default");
    }

    #[test]
    fn bootstrap_values_name_missing_keys() {
        let err =
            BootstrapValues::from_strings(&strings(&[("apiServerURL", "https://up")])).unwrap_err();
        assert!(err.contains("token"), "{err}");
        assert!(err.contains("clusterNamespace"), "{err}");
    }

    #[test]
    fn credentials_round_trip_through_secret_data() {
        let credentials = Credentials {
            api_server_url: "https://up:6443".into(),
            api_server_ca: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
            token: "tok".into(),
            deployment_namespace: "cluster-fleet-default-c-1".into(),
            cluster_namespace: "fleet-default".into(),
            cluster_name: "c-1".into(),
            system_registration_namespace: "cattle-fleet-clusters-system".into(),
        };
        let data = credentials.to_data();
        let as_strings: BTreeMap<String, String> = data
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8(v.0.clone()).unwrap()))
            .collect();
        assert_eq!(Credentials::from_strings(&as_strings).unwrap(), credentials);
        // A secret with only Fleet's keys: the connection comes from the kubeconfig.
        let mut fleet_only = as_strings.clone();
        fleet_only.remove("apiServerURL");
        fleet_only.remove("apiServerCA");
        fleet_only.remove("token");
        let parsed = Credentials::from_strings(&fleet_only).unwrap();
        assert_eq!(parsed.api_server_url, "https://up:6443");
        assert_eq!(parsed.token, "tok");
        assert_eq!(parsed.api_server_ca, credentials.api_server_ca);
    }

    #[test]
    fn agent_configmap_parses_fleets_json() {
        let cm = AgentConfigMap::parse(
            r#"{"labels":{"env":"prod"},"clientID":"id-1","agentTLSMode":"strict"}"#,
        )
        .unwrap();
        assert_eq!(cm.client_id, "id-1");
        assert_eq!(cm.labels["env"], "prod");
        assert_eq!(cm.agent_tls_mode, "strict");
        assert!(AgentConfigMap::parse("{not json").is_err());
        assert_eq!(
            AgentConfigMap::parse("").unwrap(),
            AgentConfigMap::default()
        );
    }

    #[test]
    fn retry_backs_off_to_a_minute() {
        let initial = Duration::from_secs(5);
        assert_eq!(retry_delay(initial, 0), Duration::from_secs(5));
        assert_eq!(retry_delay(initial, 1), Duration::from_secs(10));
        assert_eq!(retry_delay(initial, 20), Duration::from_secs(60));
    }

    #[test]
    fn token_errors_name_secret_and_namespace() {
        let err = RegisterError::TokenRejected {
            secret: "cattle-fleet-system/fleet-agent-bootstrap".into(),
            url: "https://up".into(),
            action: "creating a ClusterRegistration".into(),
            cluster_namespace: "fleet-default".into(),
        };
        let text = err.to_string();
        assert!(
            text.contains("cattle-fleet-system/fleet-agent-bootstrap"),
            "{text}"
        );
        assert!(text.contains("fleet-default"), "{text}");
        assert!(text.contains("expired"), "{text}");
        assert_eq!(err.reason(), "RegistrationTokenRejected");
    }

    #[test]
    fn https_connector_rejects_garbage_ca() {
        let err = pem_certificates("not a pem").unwrap_err();
        assert!(err.contains("CERTIFICATE") || err.contains("PEM"), "{err}");
    }
}

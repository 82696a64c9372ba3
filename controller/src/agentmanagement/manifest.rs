//! The agent's manifest (Fleet's `agentmanagement/agent/manifest.go` and `config.go`): what runs
//! in a downstream cluster — ServiceAccount `fleet-agent` with a ClusterRole that may do
//! everything there, the `default` ServiceAccount without token automount, a NetworkPolicy
//! allowing all traffic, and the Deployment `fleet-agent` (leader election through Leases, so
//! several replicas or an overlapping rollout never run two active agents).
//!
//! Everything here is pure: the import reconciler applies these objects through a downstream
//! client, the manageagent reconciler ships them in the `fleet-agent-<cluster>` Bundle, and the
//! simulated system installs them when it registers a cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use fleet_api::{Cluster, ClusterSpec};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, StatefulSet, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMap, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    Namespace, NodeAffinity, NodeSelectorRequirement, NodeSelectorTerm, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, PreferredSchedulingTerm, ResourceRequirements,
    Secret, SecurityContext, Service, ServiceAccount, ServiceSpec, Toleration, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde_json::Value;

/// Name of the agent's Deployment, ServiceAccount, ConfigMap, credential Secret and Lease.
pub const AGENT_NAME: &str = "fleet-agent";
/// Name of the secret holding the registration token's values, read by an unregistered agent.
pub const AGENT_BOOTSTRAP_SECRET: &str = "fleet-agent-bootstrap";
/// Label selecting the agent's pods.
pub const AGENT_APP_LABEL: (&str, &str) = ("app", AGENT_NAME);
/// Key of the agent ConfigMap holding its JSON configuration.
pub const AGENT_CONFIG_KEY: &str = "config";
/// Fleet's leader election timings of the agent (`manifest.go`).
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(30);
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(25);
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(10);

/// Environment variable names of the agent container (read by `fleet agent`).
pub mod env {
    pub const NAMESPACE: &str = "NAMESPACE";
    pub const AGENT_SCOPE: &str = "AGENT_SCOPE";
    pub const CHECKIN_INTERVAL: &str = "CHECKIN_INTERVAL";
    pub const GENERATION: &str = "GENERATION";
    pub const BUNDLEDEPLOYMENT_WORKERS: &str = "BUNDLEDEPLOYMENT_RECONCILER_WORKERS";
    pub const DRIFT_WORKERS: &str = "DRIFT_RECONCILER_WORKERS";
    pub const LEASE_DURATION: &str = "CATTLE_ELECTION_LEASE_DURATION";
    pub const RENEW_DEADLINE: &str = "CATTLE_ELECTION_RENEW_DEADLINE";
    pub const RETRY_PERIOD: &str = "CATTLE_ELECTION_RETRY_PERIOD";
    pub const POD_NAME: &str = "POD_NAME";
    pub const AGENT_TLS_MODE: &str = "AGENT_TLS_MODE";
    pub const DRIFT_DELAY: &str = "FLEET_DRIFT_DELAY";
}

/// Everything the agent Deployment is built from (Fleet's `ManifestOptions`).
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestOptions {
    /// Image of the agent, without the private registry prefix.
    pub agent_image: String,
    pub agent_image_pull_policy: String,
    /// Registry every image is pulled from (Cluster `spec.privateRepoURL`).
    pub private_repo_url: String,
    /// Registry prefix the configured image already carries (Rancher's system default
    /// registry); replaced by `private_repo_url`.
    pub system_default_registry: String,
    pub agent_env_vars: Vec<EnvVar>,
    pub agent_tolerations: Vec<Toleration>,
    pub agent_affinity: Option<Affinity>,
    pub agent_resources: Option<ResourceRequirements>,
    pub host_network: bool,
    pub checkin_interval: Duration,
    pub bundledeployment_workers: usize,
    pub drift_workers: usize,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
    /// fleet-rs only: delay coalescing drift events (`FLEET_DRIFT_DELAY`).
    pub drift_delay: Option<Duration>,
    /// `spec.redeployAgentGeneration`, as env `GENERATION`: changing it changes the pod
    /// template, so the agent is redeployed even when nothing else changed.
    pub generation: i64,
    pub agent_tls_mode: String,
}

impl Default for ManifestOptions {
    fn default() -> Self {
        ManifestOptions {
            agent_image: crate::config::DEFAULT_AGENT_IMAGE.to_string(),
            agent_image_pull_policy: "IfNotPresent".to_string(),
            private_repo_url: String::new(),
            system_default_registry: String::new(),
            agent_env_vars: Vec::new(),
            agent_tolerations: Vec::new(),
            agent_affinity: None,
            agent_resources: None,
            host_network: false,
            checkin_interval: Duration::from_secs(15 * 60),
            bundledeployment_workers: 50,
            drift_workers: 50,
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_deadline: DEFAULT_RENEW_DEADLINE,
            retry_period: DEFAULT_RETRY_PERIOD,
            drift_delay: None,
            generation: 0,
            agent_tls_mode: String::new(),
        }
    }
}

impl ManifestOptions {
    /// The controller's agent settings with the per-cluster ones of `cluster` (what Fleet's
    /// import.go and manageagent.go both fill in, "keep in sync").
    pub fn for_cluster(config: &crate::ControllerConfig, cluster: &ClusterSpec) -> Self {
        ManifestOptions {
            agent_image: config.agent_image.clone(),
            agent_image_pull_policy: config.agent_image_pull_policy.clone(),
            private_repo_url: cluster.private_repo_url.clone(),
            system_default_registry: String::new(),
            agent_env_vars: cluster.agent_env_vars.clone(),
            agent_tolerations: cluster.agent_tolerations.clone(),
            agent_affinity: cluster.agent_affinity.clone(),
            agent_resources: cluster.agent_resources.clone(),
            host_network: cluster.host_network.unwrap_or(false),
            checkin_interval: config.agent_checkin_interval,
            bundledeployment_workers: config.agent_bundledeployment_workers,
            drift_workers: config.agent_drift_workers,
            lease_duration: config.agent_lease_duration,
            renew_deadline: config.agent_renew_deadline,
            retry_period: config.agent_retry_period,
            drift_delay: config.agent_drift_delay,
            generation: cluster.redeploy_agent_generation,
            agent_tls_mode: String::new(),
        }
    }
}

/// The namespace the agent of `cluster` runs in: `spec.agentNamespace` or the default.
pub fn agent_namespace_for(cluster: &Cluster, default_namespace: &str) -> String {
    if cluster.spec.agent_namespace.is_empty() {
        default_namespace.to_string()
    } else {
        cluster.spec.agent_namespace.clone()
    }
}

/// Fleet's `agent.Resolve`: the image pulled from `prefix` (replacing the `global` registry
/// the image already names).
pub fn resolve_image(global: &str, prefix: &str, image: &str) -> String {
    let mut image = image;
    if !global.is_empty() && !prefix.is_empty() {
        image = image.strip_prefix(global).unwrap_or(image);
    }
    if !prefix.is_empty() && !image.starts_with(prefix) {
        let prefix = prefix.trim_end_matches('/');
        let image = image.trim_start_matches('/');
        return format!("{prefix}/{image}");
    }
    image.to_string()
}

fn meta(namespace: Option<&str>, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        ..ObjectMeta::default()
    }
}

fn app_labels() -> BTreeMap<String, String> {
    BTreeMap::from([(AGENT_APP_LABEL.0.to_string(), AGENT_APP_LABEL.1.to_string())])
}

fn go_duration(d: Duration) -> String {
    fleet_api::duration::Duration::from(d).to_string()
}

fn plain_env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: field_path.to_string(),
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// The pod template of the agent, shared by the Deployment and the pre-0.12 StatefulSet.
pub fn agent_pod_template(agent_scope: &str, opts: &ManifestOptions) -> PodTemplateSpec {
    let image = resolve_image(
        &opts.system_default_registry,
        &opts.private_repo_url,
        &opts.agent_image,
    );
    let mut env_vars = vec![
        plain_env(
            env::BUNDLEDEPLOYMENT_WORKERS,
            opts.bundledeployment_workers.to_string(),
        ),
        plain_env(env::DRIFT_WORKERS, opts.drift_workers.to_string()),
        field_env(env::NAMESPACE, "metadata.namespace"),
        field_env(env::POD_NAME, "metadata.name"),
        plain_env(env::AGENT_SCOPE, agent_scope),
        plain_env(env::CHECKIN_INTERVAL, go_duration(opts.checkin_interval)),
        plain_env(env::LEASE_DURATION, go_duration(opts.lease_duration)),
        plain_env(env::RETRY_PERIOD, go_duration(opts.retry_period)),
        plain_env(env::RENEW_DEADLINE, go_duration(opts.renew_deadline)),
        plain_env(env::GENERATION, opts.generation.to_string()),
    ];
    if !opts.agent_tls_mode.is_empty() {
        env_vars.push(plain_env(env::AGENT_TLS_MODE, opts.agent_tls_mode.clone()));
    }
    if let Some(delay) = opts.drift_delay {
        env_vars.push(plain_env(env::DRIFT_DELAY, go_duration(delay)));
    }
    // Extra variables from the Cluster come last, so they win over the defaults.
    env_vars.extend(opts.agent_env_vars.iter().cloned());

    let container = Container {
        name: AGENT_NAME.to_string(),
        image: Some(image),
        image_pull_policy: Some(opts.agent_image_pull_policy.clone()).filter(|p| !p.is_empty()),
        command: Some(vec!["fleet".to_string(), "agent".to_string()]),
        env: Some(env_vars),
        resources: opts.agent_resources.clone(),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "kube".to_string(),
                mount_path: "/.kube".to_string(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "tmp".to_string(),
                mount_path: "/tmp".to_string(),
                ..VolumeMount::default()
            },
        ]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                add: None,
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };

    // Fleet's built-in tolerations, then the Cluster's.
    let mut tolerations = vec![
        Toleration {
            key: Some("node.cloudprovider.kubernetes.io/uninitialized".to_string()),
            operator: Some("Equal".to_string()),
            value: Some("true".to_string()),
            effect: Some("NoSchedule".to_string()),
            toleration_seconds: None,
        },
        Toleration {
            key: Some("cattle.io/os".to_string()),
            operator: Some("Equal".to_string()),
            value: Some("linux".to_string()),
            effect: Some("NoSchedule".to_string()),
            toleration_seconds: None,
        },
    ];
    tolerations.extend(opts.agent_tolerations.iter().cloned());

    let default_affinity = Affinity {
        node_affinity: Some(NodeAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                PreferredSchedulingTerm {
                    weight: 1,
                    preference: NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: fleet_api::consts::AGENT_TOLERATION_KEY.to_string(),
                            operator: "In".to_string(),
                            values: Some(vec!["true".to_string()]),
                        }]),
                        match_fields: None,
                    },
                },
            ]),
            required_during_scheduling_ignored_during_execution: None,
        }),
        ..Affinity::default()
    };

    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(app_labels()),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            service_account_name: Some(AGENT_NAME.to_string()),
            containers: vec![container],
            volumes: Some(vec![
                Volume {
                    name: "kube".to_string(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Volume::default()
                },
                Volume {
                    name: "tmp".to_string(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Volume::default()
                },
            ]),
            node_selector: Some(BTreeMap::from([(
                "kubernetes.io/os".to_string(),
                "linux".to_string(),
            )])),
            affinity: Some(opts.agent_affinity.clone().unwrap_or(default_affinity)),
            tolerations: Some(tolerations),
            host_network: Some(opts.host_network).filter(|h| *h),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(1000),
                run_as_group: Some(1000),
                ..PodSecurityContext::default()
            }),
            ..PodSpec::default()
        }),
    }
}

/// The agent Deployment `fleet-agent` (one replica; `Recreate` in the host network, where two
/// pods would fight over ports).
pub fn agent_deployment(namespace: &str, agent_scope: &str, opts: &ManifestOptions) -> Deployment {
    Deployment {
        metadata: meta(Some(namespace), AGENT_NAME),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(app_labels()),
                match_expressions: None,
            },
            template: agent_pod_template(agent_scope, opts),
            strategy: opts.host_network.then(|| DeploymentStrategy {
                type_: Some("Recreate".to_string()),
                rolling_update: None,
            }),
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// The agent as Fleet ran it before v0.12: a StatefulSet `fleet-agent` with a headless Service.
/// Only to simulate clusters that still run the old agent (the import removes it).
pub fn legacy_agent_statefulset(
    namespace: &str,
    agent_scope: &str,
    opts: &ManifestOptions,
) -> (StatefulSet, Service) {
    let statefulset = StatefulSet {
        metadata: meta(Some(namespace), AGENT_NAME),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(AGENT_NAME.to_string()),
            selector: LabelSelector {
                match_labels: Some(app_labels()),
                match_expressions: None,
            },
            template: agent_pod_template(agent_scope, opts),
            ..StatefulSetSpec::default()
        }),
        status: None,
    };
    let service = Service {
        metadata: meta(Some(namespace), AGENT_NAME),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            selector: Some(app_labels()),
            ..ServiceSpec::default()
        }),
        status: None,
    };
    (statefulset, service)
}

/// Fleet's `agent.Manifest`: ClusterRole + binding for the agent's ServiceAccount, the
/// ServiceAccounts, the Deployment and the NetworkPolicy, as JSON objects (apiVersion/kind set).
pub fn agent_manifest(namespace: &str, agent_scope: &str, opts: &ManifestOptions) -> Vec<Value> {
    let role_name = fleet_bundle::names::safe_concat_name(&[namespace, AGENT_NAME, "role"]);
    let binding_name =
        fleet_bundle::names::safe_concat_name(&[namespace, AGENT_NAME, "role", "binding"]);
    let cluster_role = ClusterRole {
        metadata: meta(None, &role_name),
        rules: Some(vec![
            PolicyRule {
                verbs: vec!["*".to_string()],
                api_groups: Some(vec!["*".to_string()]),
                resources: Some(vec!["*".to_string()]),
                ..PolicyRule::default()
            },
            PolicyRule {
                verbs: vec!["*".to_string()],
                non_resource_urls: Some(vec!["*".to_string()]),
                ..PolicyRule::default()
            },
        ]),
        aggregation_rule: None,
    };
    let binding = ClusterRoleBinding {
        metadata: meta(None, &binding_name),
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_string(),
            name: AGENT_NAME.to_string(),
            namespace: Some(namespace.to_string()),
            api_group: None,
        }]),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_string(),
            kind: "ClusterRole".to_string(),
            name: role_name,
        },
    };
    let admin = ServiceAccount {
        metadata: meta(Some(namespace), AGENT_NAME),
        ..ServiceAccount::default()
    };
    let default_sa = ServiceAccount {
        metadata: meta(Some(namespace), "default"),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    };
    let network_policy = NetworkPolicy {
        metadata: meta(Some(namespace), "default-allow-all"),
        spec: Some(NetworkPolicySpec {
            policy_types: Some(vec!["Ingress".to_string(), "Egress".to_string()]),
            ingress: Some(vec![NetworkPolicyIngressRule::default()]),
            egress: Some(vec![NetworkPolicyEgressRule::default()]),
            pod_selector: Some(LabelSelector::default()),
        }),
    };
    let deployment = agent_deployment(namespace, agent_scope, opts);
    [
        to_value(&cluster_role),
        to_value(&binding),
        to_value(&admin),
        to_value(&default_sa),
        to_value(&deployment),
        to_value(&network_policy),
    ]
    .into_iter()
    .collect()
}

/// The agent's configuration ConfigMap `fleet-agent` (key `config`, JSON), as Fleet's
/// `config.ToConfigMap` writes it.
pub fn agent_config_map(
    namespace: &str,
    client_id: &str,
    labels: &BTreeMap<String, String>,
    agent_tls_mode: &str,
) -> ConfigMap {
    let mut config = serde_json::Map::new();
    if !client_id.is_empty() {
        config.insert("clientID".into(), Value::String(client_id.to_string()));
    }
    if !labels.is_empty() {
        config.insert(
            "labels".into(),
            serde_json::to_value(labels).unwrap_or_default(),
        );
    }
    if !agent_tls_mode.is_empty() {
        config.insert(
            "agentTLSMode".into(),
            Value::String(agent_tls_mode.to_string()),
        );
    }
    ConfigMap {
        metadata: meta(Some(namespace), AGENT_NAME),
        data: Some(BTreeMap::from([(
            AGENT_CONFIG_KEY.to_string(),
            Value::Object(config).to_string(),
        )])),
        ..ConfigMap::default()
    }
}

/// The secret `fleet-agent-bootstrap` an unregistered agent registers with: the values of a
/// ClusterRegistrationToken (`token`, `apiServerURL`, `apiServerCA`,
/// `systemRegistrationNamespace`, `clusterNamespace`).
pub fn agent_bootstrap_secret(namespace: &str, values: &BTreeMap<String, String>) -> Secret {
    Secret {
        metadata: meta(Some(namespace), AGENT_BOOTSTRAP_SECRET),
        data: Some(
            values
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// The Namespace object of the agent.
pub fn agent_namespace_object(namespace: &str) -> Namespace {
    Namespace {
        metadata: meta(None, namespace),
        ..Namespace::default()
    }
}

/// A typed object as JSON (k8s-openapi writes apiVersion and kind).
pub fn to_value<T: serde::Serialize>(obj: &T) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

/// The objects as a multi-document YAML stream (the Bundle resource `agent.yaml`).
pub fn to_yaml(objs: &[Value]) -> String {
    objs.iter()
        .map(|o| serde_norway::to_string(o).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("---\n")
}

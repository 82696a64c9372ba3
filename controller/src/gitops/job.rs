//! Git jobs mode (`--gitjob-mode job`, Fleet's `gitjob.go`, `rbac.go`, `targetsyaml.go`): per
//! sync the controller creates a Job whose init container clones the repository (`fleet
//! gitcloner`) and whose container runs `fleet apply`, which writes the Bundles. The Job runs
//! as ServiceAccount `git-<gitrepo>` with a Role limited to the GitRepo's namespace; Role and
//! RoleBinding are server-side applied (create or update, PR #3305) so that rule changes of a
//! new controller version reach existing GitRepos. The pods inherit the tolerations and node
//! selector of the `fleet-controller` Deployment (PR #3362). The GitRepo's `gitJobStatus` and
//! `Reconciling`/`Stalled` conditions follow the Job (kstatus).
//!
//! On the simulator no container runs: its Job controller completes the Job, but nothing runs
//! `fleet apply`, so in this mode Bundles appear there only if something else writes them.
//! The simulator's pipeline therefore uses the in-process mode; tests of this mode assert on
//! the Job and its RBAC objects.
//!
//! The manifest builders are pure functions; [`sync`] does the I/O.

use std::collections::BTreeMap;

use fleet_api::consts::REPO_LABEL;
use fleet_api::{BundleSpec, GitRepo, GitRepoSpec};
use fleet_bundle::names::{hex_hash, safe_concat_name};
use k8s_openapi::ByteString;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, Pod,
    PodSecurityContext, PodSpec, PodTemplateSpec, SeccompProfile, Secret, SecretVolumeSource,
    SecurityContext, ServiceAccount, Toleration, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, PropagationPolicy};

use super::cabundle::{self, CA_BUNDLE_KEY};

/// Job label: the GitRepo generation the Job was made for.
pub const GENERATION_LABEL: &str = "fleet.cattle.io/gitrepo-generation";
/// Job label: the `forceSyncGeneration` the Job was made for.
pub const FORCE_SYNC_GENERATION_LABEL: &str = "fleet.cattle.io/force-sync-generation";
/// Field manager of the objects this module applies.
pub const FIELD_MANAGER: &str = "fleet-gitjob";
/// `fleet apply` retries on conflicts (Fleet's env, passed on to the job; default 1).
pub const CONFLICT_RETRIES_ENV: &str = "FLEET_APPLY_CONFLICT_RETRIES";
const DEFAULT_CONFLICT_RETRIES: &str = "1";
/// `HOME` of the job container (an emptyDir; the root filesystem is read-only).
const FLEET_HOME: &str = "/fleet-home";
const CLONE_DIR: &str = "/workspace";
const SOURCE_DIR: &str = "/workspace/source";
const TARGETS_DIR: &str = "/run/config";
const RANCHER_CERTS_DIR: &str = "/etc/rancher/certs";

const VOLUME_CONFIG: &str = "config";
const VOLUME_TMP: &str = "fleet-tmp-empty-dir";
const VOLUME_HOME: &str = "fleet-home-empty-dir";
const VOLUME_CLONE: &str = "git-cloner";
const VOLUME_CLONE_TMP: &str = "git-cloner-empty-dir";
const VOLUME_CA: &str = "additional-ca";
const VOLUME_CREDENTIALS: &str = "git-credential";
const VOLUME_RANCHER_CA: &str = "rancher-helm-secret";

/// The Job of a GitRepo at `commit` (Fleet's `jobName`: the name plus 5 hex characters of
/// the MD5 of repo URL and commit).
pub fn job_name(gitrepo: &str, repo: &str, commit: &str) -> String {
    safe_concat_name(&[gitrepo, &hex_hash(&format!("{repo}{commit}"), 5)])
}

/// ServiceAccount, Role and RoleBinding of a GitRepo's jobs.
pub fn service_account_name(gitrepo: &str) -> String {
    safe_concat_name(&["git", gitrepo])
}

/// Fleet's `names.KeyHash`: 12 hex characters of the SHA-256 of the first 100 bytes.
fn key_hash(s: &str) -> String {
    use sha2::Digest as _;
    let mut end = s.len().min(100);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let digest = hex::encode(sha2::Sha256::digest(&s.as_bytes()[..end]));
    digest[..12].to_string()
}

/// The targets file of the job: the GitRepo's targets (or Fleet's default target, the
/// `default` cluster group), each also a target restriction.
pub fn targets_file(spec: &GitRepoSpec) -> BundleSpec {
    let mut out = BundleSpec::default();
    let default = [fleet_api::GitTarget {
        name: "default".to_string(),
        cluster_group: "default".to_string(),
        ..Default::default()
    }];
    let targets = if spec.targets.is_empty() {
        &default[..]
    } else {
        &spec.targets[..]
    };
    out.restrict_to_git_targets(targets);
    out
}

fn owned_meta(gitrepo: &GitRepo, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: gitrepo.metadata.namespace.clone(),
        owner_references: cabundle::owner_reference(gitrepo).map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

fn gitrepo_name(gitrepo: &GitRepo) -> String {
    gitrepo.metadata.name.clone().unwrap_or_default()
}

/// The ConfigMap with `targets.yaml` (its name carries a hash of the content, so a changed
/// targets list is a new ConfigMap and a running Job keeps its own).
pub fn targets_config_map(gitrepo: &GitRepo, spec: &GitRepoSpec) -> ConfigMap {
    let data = serde_json::to_string(&targets_file(spec)).unwrap_or_default();
    let name = safe_concat_name(&[&gitrepo_name(gitrepo), "config", &key_hash(&data)]);
    ConfigMap {
        metadata: owned_meta(gitrepo, name),
        binary_data: Some([("targets.yaml".to_string(), ByteString(data.into_bytes()))].into()),
        ..ConfigMap::default()
    }
}

pub fn service_account(gitrepo: &GitRepo) -> ServiceAccount {
    ServiceAccount {
        metadata: owned_meta(gitrepo, service_account_name(&gitrepo_name(gitrepo))),
        ..ServiceAccount::default()
    }
}

fn rule(verbs: &[&str], group: &str, resources: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        api_groups: Some(vec![group.to_string()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        ..PolicyRule::default()
    }
}

/// What `fleet apply` in the job may do in the GitRepo's namespace (Fleet's rules).
pub fn role_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            &["get", "create", "update", "list", "delete"],
            "fleet.cattle.io",
            &["bundles", "imagescans"],
        ),
        rule(&["get"], "fleet.cattle.io", &["gitrepos"]),
        rule(&["get", "create", "update", "delete"], "", &["secrets"]),
    ]
}

pub fn role(gitrepo: &GitRepo) -> Role {
    Role {
        metadata: owned_meta(gitrepo, service_account_name(&gitrepo_name(gitrepo))),
        rules: Some(role_rules()),
    }
}

pub fn role_binding(gitrepo: &GitRepo) -> RoleBinding {
    let name = service_account_name(&gitrepo_name(gitrepo));
    RoleBinding {
        metadata: owned_meta(gitrepo, name.clone()),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_string(),
            kind: "Role".to_string(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_string(),
            name,
            namespace: gitrepo.metadata.namespace.clone(),
            ..Subject::default()
        }]),
    }
}

/// The git credentials secret a job mounts, and its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub secret_name: String,
    pub username: String,
}

/// Everything a Job needs besides the GitRepo.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobInputs {
    pub image: String,
    pub commit: String,
    /// Pod tolerations and node selector of the `fleet-controller` Deployment.
    pub controller_tolerations: Vec<Toleration>,
    pub controller_node_selector: BTreeMap<String, String>,
    /// `<gitrepo>-cabundle` exists (the git CA).
    pub has_git_ca: bool,
    /// `<gitrepo>-rancher-cabundle` exists (the Helm CA).
    pub has_helm_ca: bool,
    /// Basic-auth credentials (the GitRepo's `clientSecretName` or `gitcredential`).
    pub credentials: Option<Credentials>,
    pub targets_config_map: String,
    /// Env passed through from the controller (proxy settings, conflict retries).
    pub passed_env: Vec<(String, String)>,
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        ..EnvVar::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        ..VolumeMount::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

fn secret_volume(name: &str, secret: &str) -> Volume {
    Volume {
        name: name.to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_string()),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn restricted_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        privileged: Some(false),
        run_as_non_root: Some(true),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            ..SeccompProfile::default()
        }),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

/// The arguments of `fleet apply` in the job (after the `apply` subcommand).
pub fn apply_args(gitrepo: &GitRepo, spec: &GitRepoSpec) -> Vec<String> {
    let name = gitrepo_name(gitrepo);
    let namespace = gitrepo.metadata.namespace.clone().unwrap_or_default();
    let mut labels = gitrepo.metadata.labels.clone().unwrap_or_default();
    labels.insert(REPO_LABEL.to_string(), name.clone());
    let mut args = vec![
        "apply".to_string(),
        format!("--targets-file={TARGETS_DIR}/targets.yaml"),
    ];
    args.extend(labels.iter().map(|(k, v)| format!("--label={k}={v}")));
    args.extend(["--namespace".to_string(), namespace]);
    if !spec.service_account.is_empty() {
        args.extend([
            "--service-account".to_string(),
            spec.service_account.clone(),
        ]);
    }
    args.push(format!("--sync-generation={}", spec.force_sync_generation));
    if spec.paused {
        args.push("--paused".to_string());
    }
    if !spec.target_namespace.is_empty() {
        args.extend([
            "--target-namespace".to_string(),
            spec.target_namespace.clone(),
        ]);
    }
    if spec.keep_resources {
        args.push("--keep-resources".to_string());
    }
    if spec.delete_namespace {
        args.push("--delete-namespace".to_string());
    }
    if let Some(drift) = spec.correct_drift.as_ref().filter(|d| d.enabled) {
        args.push("--correct-drift".to_string());
        if drift.force {
            args.push("--correct-drift-force".to_string());
        }
        if drift.keep_fail_history {
            args.push("--correct-drift-keep-fail-history".to_string());
        }
    }
    args.push("--".to_string());
    args.push(name);
    if spec.paths.is_empty() {
        args.push(".".to_string());
    } else {
        args.extend(spec.paths.iter().cloned());
    }
    args
}

/// [`apply_args`], plus `--cacerts-file` naming the mounted Rancher CA bundle when Helm chart
/// downloads need it (Fleet passes the same file to `fleet apply`).
pub fn apply_args_with_ca(gitrepo: &GitRepo, spec: &GitRepoSpec, has_helm_ca: bool) -> Vec<String> {
    let mut args = apply_args(gitrepo, spec);
    if has_helm_ca {
        // Options go before the `--` that separates the bundle name and paths.
        let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
        args.insert(
            at,
            format!(
                "--cacerts-file={RANCHER_CERTS_DIR}/{}",
                cabundle::RANCHER_CA_BUNDLE_KEY
            ),
        );
    }
    args
}

/// The arguments of `fleet gitcloner` (the init container).
pub fn cloner_args(spec: &GitRepoSpec, inputs: &JobInputs) -> Vec<String> {
    let mut args = vec![
        "gitcloner".to_string(),
        spec.repo.clone(),
        CLONE_DIR.to_string(),
    ];
    if !spec.branch.is_empty() {
        args.extend(["--branch".to_string(), spec.branch.clone()]);
    } else if !spec.revision.is_empty() {
        args.extend(["--revision".to_string(), spec.revision.clone()]);
    } else {
        args.extend([
            "--branch".to_string(),
            super::fetch::DEFAULT_BRANCH.to_string(),
        ]);
    }
    if let Some(c) = &inputs.credentials {
        args.extend([
            "--username".to_string(),
            c.username.clone(),
            "--password-file".to_string(),
            "/gitjob/credentials/password".to_string(),
        ]);
    }
    if spec.insecure_skip_tls_verify {
        args.push("--insecure-skip-tls".to_string());
    }
    if inputs.has_git_ca {
        args.extend([
            "--ca-bundle-file".to_string(),
            format!("/gitjob/cabundle/{CA_BUNDLE_KEY}"),
        ]);
    }
    args
}

/// The Job that syncs `gitrepo` (with `spec` after GitRepoRestriction defaults) at
/// `inputs.commit`.
pub fn job(gitrepo: &GitRepo, spec: &GitRepoSpec, inputs: &JobInputs) -> Job {
    let name = gitrepo_name(gitrepo);
    let generation = gitrepo.metadata.generation.unwrap_or(0);

    let mut volumes = vec![
        Volume {
            name: VOLUME_CONFIG.to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: inputs.targets_config_map.clone(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        empty_dir(VOLUME_TMP),
        empty_dir(VOLUME_HOME),
        empty_dir(VOLUME_CLONE),
        empty_dir(VOLUME_CLONE_TMP),
    ];
    let mut mounts = vec![
        mount(VOLUME_CONFIG, TARGETS_DIR),
        mount(VOLUME_TMP, "/tmp"),
        mount(VOLUME_HOME, FLEET_HOME),
        mount(VOLUME_CLONE, SOURCE_DIR),
    ];
    let mut cloner_mounts = vec![
        mount(VOLUME_CLONE, CLONE_DIR),
        mount(VOLUME_CLONE_TMP, "/tmp"),
    ];
    if inputs.has_git_ca {
        volumes.push(secret_volume(
            VOLUME_CA,
            &cabundle::ca_bundle_secret_name(&name),
        ));
        cloner_mounts.push(mount(VOLUME_CA, "/gitjob/cabundle"));
    }
    if let Some(c) = &inputs.credentials {
        volumes.push(secret_volume(VOLUME_CREDENTIALS, &c.secret_name));
        cloner_mounts.push(mount(VOLUME_CREDENTIALS, "/gitjob/credentials"));
    }
    if inputs.has_helm_ca {
        volumes.push(secret_volume(
            VOLUME_RANCHER_CA,
            &cabundle::rancher_ca_bundle_secret_name(&name),
        ));
        mounts.push(mount(VOLUME_RANCHER_CA, RANCHER_CERTS_DIR));
    }

    let mut apply_env = vec![
        env("HOME", FLEET_HOME),
        env("FLEET_JSON_OUTPUT", "true"),
        env("JOB_NAME", &job_name(&name, &spec.repo, &inputs.commit)),
        env("COMMIT", &inputs.commit),
    ];
    let retries = inputs
        .passed_env
        .iter()
        .find(|(k, _)| k == CONFLICT_RETRIES_ENV)
        .map(|(_, v)| v.as_str())
        .unwrap_or(DEFAULT_CONFLICT_RETRIES);
    apply_env.push(env(CONFLICT_RETRIES_ENV, retries));
    let proxy: Vec<EnvVar> = inputs
        .passed_env
        .iter()
        .filter(|(k, _)| k != CONFLICT_RETRIES_ENV)
        .map(|(k, v)| env(k, v))
        .collect();
    apply_env.extend(proxy.iter().cloned());
    let mut cloner_env = vec![env("FLEET_JSON_OUTPUT", "true")];
    cloner_env.extend(proxy);

    // Fleet's defaults first, then what the controller's own pods tolerate.
    let mut tolerations = vec![
        Toleration {
            key: Some("cattle.io/os".to_string()),
            operator: Some("Equal".to_string()),
            value: Some("linux".to_string()),
            effect: Some("NoSchedule".to_string()),
            ..Toleration::default()
        },
        Toleration {
            key: Some("node.cloudprovider.kubernetes.io/uninitialized".to_string()),
            operator: Some("Equal".to_string()),
            value: Some("true".to_string()),
            effect: Some("NoSchedule".to_string()),
            ..Toleration::default()
        },
    ];
    tolerations.extend(inputs.controller_tolerations.iter().cloned());
    let mut node_selector: BTreeMap<String, String> =
        [("kubernetes.io/os".to_string(), "linux".to_string())].into();
    node_selector.extend(inputs.controller_node_selector.clone());

    let mut meta = owned_meta(gitrepo, job_name(&name, &spec.repo, &inputs.commit));
    meta.annotations = Some(
        [
            ("generation".to_string(), generation.to_string()),
            ("commit".to_string(), inputs.commit.clone()),
        ]
        .into(),
    );
    meta.labels = Some(
        [
            (
                FORCE_SYNC_GENERATION_LABEL.to_string(),
                spec.force_sync_generation.to_string(),
            ),
            (GENERATION_LABEL.to_string(), generation.to_string()),
        ]
        .into(),
    );

    Job {
        metadata: meta,
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            template: PodTemplateSpec {
                metadata: None,
                spec: Some(PodSpec {
                    service_account_name: Some(service_account_name(&name)),
                    restart_policy: Some("Never".to_string()),
                    security_context: Some(PodSecurityContext {
                        run_as_user: Some(1000),
                        ..PodSecurityContext::default()
                    }),
                    init_containers: Some(vec![Container {
                        name: "gitcloner-initializer".to_string(),
                        image: Some(inputs.image.clone()),
                        command: Some(vec!["fleet".to_string()]),
                        args: Some(cloner_args(spec, inputs)),
                        env: Some(cloner_env),
                        volume_mounts: Some(cloner_mounts),
                        security_context: Some(restricted_security_context()),
                        ..Container::default()
                    }]),
                    containers: vec![Container {
                        name: "fleet".to_string(),
                        image: Some(inputs.image.clone()),
                        command: Some(vec!["fleet".to_string()]),
                        args: Some(apply_args_with_ca(gitrepo, spec, inputs.has_helm_ca)),
                        working_dir: Some(SOURCE_DIR.to_string()),
                        env: Some(apply_env),
                        volume_mounts: Some(mounts),
                        security_context: Some(restricted_security_context()),
                        ..Container::default()
                    }],
                    volumes: Some(volumes),
                    tolerations: Some(tolerations),
                    node_selector: Some(node_selector),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// kstatus of a Job, as Fleet copies it onto the GitRepo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    InProgress(String),
    Current(String),
    Failed(String),
    Terminating,
}

impl JobState {
    /// `gitJobStatus` of the GitRepo.
    pub fn status(&self) -> &'static str {
        match self {
            JobState::InProgress(_) => "InProgress",
            JobState::Current(_) => "Current",
            JobState::Failed(_) => "Failed",
            JobState::Terminating => "Terminating",
        }
    }
}

/// The kstatus of a Job (cli-utils' `jobConditions`).
pub fn job_state(job: &Job) -> JobState {
    if job.metadata.deletion_timestamp.is_some() {
        return JobState::Terminating;
    }
    let status = job.status.clone().unwrap_or_default();
    let condition = |type_: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == type_ && c.status == "True")
    };
    let completions = job.spec.as_ref().and_then(|s| s.completions).unwrap_or(1);
    let succeeded = status.succeeded.unwrap_or(0);
    let failed = status.failed.unwrap_or(0);
    if condition("Complete") {
        return JobState::Current(format!(
            "Job Completed. succeeded: {succeeded}/{completions}"
        ));
    }
    if condition("Failed") {
        return JobState::Failed(format!("Job Failed. failed: {failed}/{completions}"));
    }
    JobState::InProgress(format!(
        "Job in progress. success:{succeeded}, active: {}, failed: {failed}",
        status.active.unwrap_or(0)
    ))
}

/// Fleet's `filterFleetCLIJobOutput`: the `fleetErrorMessage` of each JSON log line of the
/// failed pod's termination messages; the raw text when there is none.
pub fn job_failure_message(termination: &str, fallback: &str) -> String {
    let mut messages = Vec::new();
    for line in termination.lines() {
        if let Some(start) = line.find('{')
            && let Ok(value) = serde_json::from_str::<serde_json::Value>(&line[start..])
            && let Some(m) = value.get("fleetErrorMessage").and_then(|m| m.as_str())
            && !m.is_empty()
        {
            messages.push(m.to_string());
        }
    }
    if !messages.is_empty() {
        return messages.join("\n");
    }
    let raw = termination.trim();
    if raw.is_empty() {
        fallback.to_string()
    } else {
        raw.to_string()
    }
}

/// The termination messages of the newest pod of `job` (failed init containers and all
/// containers), for the failure message.
fn termination_messages(pods: &[Pod]) -> String {
    let Some(pod) = pods
        .iter()
        .max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
    else {
        return String::new();
    };
    let status = pod.status.clone().unwrap_or_default();
    let mut out = String::new();
    for s in status.container_statuses.iter().flatten() {
        if let Some(t) = s.state.as_ref().and_then(|st| st.terminated.as_ref())
            && let Some(m) = &t.message
        {
            out.push_str(m);
            out.push('\n');
        }
    }
    for s in status.init_container_statuses.iter().flatten() {
        if let Some(t) = s.state.as_ref().and_then(|st| st.terminated.as_ref())
            && t.exit_code != 0
            && let Some(m) = &t.message
        {
            out.push_str(m);
            out.push('\n');
        }
    }
    out
}

/// What the job side of a reconcile did, for the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    pub state: JobState,
    /// Whether the reconcile should come back soon (a Job was deleted to be recreated).
    pub requeue_soon: bool,
}

/// Environment of the controller passed on to the jobs (Fleet's `proxyEnvVars` and
/// `FLEET_APPLY_CONFLICT_RETRIES`).
pub fn passed_env() -> Vec<(String, String)> {
    [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "GIT_SSL_CAINFO",
        CONFLICT_RETRIES_ENV,
    ]
    .iter()
    .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
    .collect()
}

async fn apply<K>(api: &Api<K>, name: &str, obj: &K, kind: &str) -> Result<(), kube::Error>
where
    K: kube::Resource + serde::Serialize + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    let mut body = serde_json::to_value(obj).map_err(kube::Error::SerdeError)?;
    body["apiVersion"] = serde_json::json!(K::api_version(&K::DynamicType::default()));
    body["kind"] = serde_json::json!(kind);
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map(|_| ())
}

/// Server-side applies the ServiceAccount, Role and RoleBinding of the GitRepo's jobs (create
/// or update: a Role left by an older version gets the current rules).
pub async fn apply_rbac(
    client: &kube::Client,
    gitrepo: &GitRepo,
) -> Result<(), (String, kube::Error)> {
    let namespace = gitrepo.metadata.namespace.clone().unwrap_or_default();
    let name = service_account_name(&gitrepo_name(gitrepo));
    let at = |what: &str| format!("applying {what} {namespace}/{name}");
    apply(
        &Api::<ServiceAccount>::namespaced(client.clone(), &namespace),
        &name,
        &service_account(gitrepo),
        "ServiceAccount",
    )
    .await
    .map_err(|e| (at("ServiceAccount"), e))?;
    apply(
        &Api::<Role>::namespaced(client.clone(), &namespace),
        &name,
        &role(gitrepo),
        "Role",
    )
    .await
    .map_err(|e| (at("Role"), e))?;
    apply(
        &Api::<RoleBinding>::namespaced(client.clone(), &namespace),
        &name,
        &role_binding(gitrepo),
        "RoleBinding",
    )
    .await
    .map_err(|e| (at("RoleBinding"), e))?;
    Ok(())
}

/// The basic-auth credentials a job mounts: the GitRepo's `clientSecretName`, else the
/// namespace's `gitcredential` secret when it exists.
async fn credentials(
    client: &kube::Client,
    namespace: &str,
    spec: &GitRepoSpec,
) -> Result<Option<Credentials>, (String, kube::Error)> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let name = if spec.client_secret_name.is_empty() {
        super::DEFAULT_CLIENT_SECRET_NAME
    } else {
        spec.client_secret_name.as_str()
    };
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|e| (format!("reading secret {namespace}/{name}"), e))?;
    Ok(secret.map(|s| Credentials {
        secret_name: name.to_string(),
        username: s
            .data
            .as_ref()
            .and_then(|d| d.get("username"))
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .unwrap_or_default(),
    }))
}

/// What [`sync`] needs to know besides the GitRepo.
pub struct SyncRequest<'a> {
    pub client: &'a kube::Client,
    pub gitrepo: &'a GitRepo,
    /// The spec after GitRepoRestriction defaults.
    pub spec: &'a GitRepoSpec,
    pub commit: &'a str,
    /// Whether a Job has to run for this commit/generation/forceSyncGeneration (none ran yet).
    pub wanted: bool,
    pub image: &'a str,
    pub system_namespace: &'a str,
    pub cas: &'a cabundle::CaBundles,
}

/// Makes the Job of the current commit exist when one is wanted, replaces a Job made for an
/// older generation or forceSyncGeneration, deletes a succeeded one (as Fleet), and reports
/// the Job's state. `Ok(None)`: no Job exists and none is wanted.
pub async fn sync(req: SyncRequest<'_>) -> Result<Option<JobOutcome>, (String, kube::Error)> {
    let gitrepo = req.gitrepo;
    let namespace = gitrepo.metadata.namespace.clone().unwrap_or_default();
    let name = gitrepo_name(gitrepo);
    let jobs: Api<Job> = Api::namespaced(req.client.clone(), &namespace);
    let job_name = job_name(&name, &req.spec.repo, req.commit);
    let generation = gitrepo.metadata.generation.unwrap_or(0).to_string();
    let force = req.spec.force_sync_generation.to_string();

    let existing = jobs
        .get_opt(&job_name)
        .await
        .map_err(|e| (format!("reading Job {namespace}/{job_name}"), e))?;
    if let Some(job) = existing {
        let labels = job.metadata.labels.clone().unwrap_or_default();
        let stale = labels
            .get(GENERATION_LABEL)
            .is_some_and(|g| *g != generation)
            || labels
                .get(FORCE_SYNC_GENERATION_LABEL)
                .is_some_and(|f| *f != force);
        let state = job_state(&job);
        if stale && req.wanted && state != JobState::Terminating {
            // Jobs are immutable: a changed GitRepo needs a new one.
            delete_job(&jobs, &namespace, &job_name).await?;
            tracing::info!(job = %job_name, "git job deleted: the GitRepo changed");
            return Ok(Some(JobOutcome {
                state: JobState::Terminating,
                requeue_soon: true,
            }));
        }
        let state = match state {
            JobState::Failed(fallback) => {
                let pods = Api::<Pod>::namespaced(req.client.clone(), &namespace)
                    .list(&ListParams::default().labels(&format!("job-name={job_name}")))
                    .await
                    .map_err(|e| (format!("listing the pods of Job {namespace}/{job_name}"), e))?
                    .items;
                JobState::Failed(job_failure_message(&termination_messages(&pods), &fallback))
            }
            JobState::Current(message) => {
                delete_job(&jobs, &namespace, &job_name).await?;
                tracing::info!(job = %job_name, "git job succeeded and was deleted");
                JobState::Current(message)
            }
            other => other,
        };
        return Ok(Some(JobOutcome {
            state,
            requeue_soon: false,
        }));
    }
    if !req.wanted {
        return Ok(None);
    }

    apply_rbac(req.client, gitrepo).await?;
    let config_map = targets_config_map(gitrepo, req.spec);
    let cm_name = config_map.metadata.name.clone().unwrap_or_default();
    apply(
        &Api::<ConfigMap>::namespaced(req.client.clone(), &namespace),
        &cm_name,
        &config_map,
        "ConfigMap",
    )
    .await
    .map_err(|e| (format!("applying ConfigMap {namespace}/{cm_name}"), e))?;
    let (controller_tolerations, controller_node_selector) =
        crate::controllerdeployment::controller_pod_placement(req.client, req.system_namespace)
            .await
            .map_err(|e| {
                (
                    format!(
                        "reading Deployment {}/{}",
                        req.system_namespace,
                        crate::controllerdeployment::CONTROLLER_DEPLOYMENT_NAME
                    ),
                    e,
                )
            })?;
    let inputs = JobInputs {
        image: req.image.to_string(),
        commit: req.commit.to_string(),
        controller_tolerations,
        controller_node_selector,
        has_git_ca: req.cas.git.is_some(),
        has_helm_ca: req.cas.helm.is_some(),
        credentials: credentials(req.client, &namespace, req.spec).await?,
        targets_config_map: cm_name,
        passed_env: passed_env(),
    };
    let job = job(gitrepo, req.spec, &inputs);
    match jobs.create(&PostParams::default(), &job).await {
        Ok(_) => tracing::info!(job = %job_name, commit = %req.commit, "git job created"),
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err((format!("creating Job {namespace}/{job_name}"), e)),
    }
    Ok(Some(JobOutcome {
        state: JobState::InProgress("Job created".to_string()),
        requeue_soon: false,
    }))
}

async fn delete_job(
    jobs: &Api<Job>,
    namespace: &str,
    name: &str,
) -> Result<(), (String, kube::Error)> {
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    match jobs.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err((format!("deleting Job {namespace}/{name}"), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::CorrectDrift;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};

    fn gitrepo() -> GitRepo {
        let mut g = GitRepo::new("apps", Default::default());
        g.metadata.namespace = Some("fleet-local".into());
        g.metadata.uid = Some("uid-1".into());
        g.metadata.generation = Some(3);
        g.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
        g.spec.repo = "https://git.example.com/apps.git".into();
        g.spec.paths = vec!["apps/*".into()];
        g.spec.service_account = "deployer".into();
        g.spec.force_sync_generation = 2;
        g.spec.correct_drift = Some(CorrectDrift {
            enabled: true,
            force: true,
            keep_fail_history: false,
        });
        g
    }

    fn inputs() -> JobInputs {
        JobInputs {
            image: "fleet:test".into(),
            commit: "c0ffee".into(),
            controller_tolerations: vec![Toleration {
                key: Some("dedicated".into()),
                operator: Some("Equal".into()),
                value: Some("fleet".into()),
                effect: Some("NoSchedule".into()),
                ..Toleration::default()
            }],
            controller_node_selector: [("pool".to_string(), "system".to_string())].into(),
            has_git_ca: true,
            has_helm_ca: true,
            credentials: Some(Credentials {
                secret_name: "creds".into(),
                username: "fleet".into(),
            }),
            targets_config_map: "apps-config-abc".into(),
            passed_env: vec![(CONFLICT_RETRIES_ENV.into(), "3".into())],
        }
    }

    #[test]
    fn names_follow_fleet() {
        let name = job_name("apps", "https://x/y.git", "abc");
        assert!(name.starts_with("apps-") && name.len() == "apps-".len() + 5);
        assert_ne!(name, job_name("apps", "https://x/y.git", "abd"));
        assert_eq!(service_account_name("apps"), "git-apps");
        let long = "a".repeat(70);
        assert!(service_account_name(&long).len() <= 63);
    }

    #[test]
    fn the_job_runs_fleet_apply_with_the_gitrepo_options() {
        let g = gitrepo();
        let job = job(&g, &g.spec, &inputs());
        let meta = &job.metadata;
        assert_eq!(meta.labels.as_ref().unwrap()[GENERATION_LABEL], "3");
        assert_eq!(
            meta.labels.as_ref().unwrap()[FORCE_SYNC_GENERATION_LABEL],
            "2"
        );
        assert_eq!(meta.annotations.as_ref().unwrap()["commit"], "c0ffee");
        assert_eq!(meta.owner_references.as_ref().unwrap()[0].kind, "GitRepo");
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("git-apps"));
        let main = &pod.containers[0];
        assert_eq!(main.image.as_deref(), Some("fleet:test"));
        let args = main.args.clone().unwrap();
        for expected in [
            "apply",
            "--targets-file=/run/config/targets.yaml",
            "--label=fleet.cattle.io/repo-name=apps",
            "--label=team=a",
            "--sync-generation=2",
            "--correct-drift",
            "--correct-drift-force",
            "--cacerts-file=/etc/rancher/certs/cacerts",
        ] {
            assert!(
                args.contains(&expected.to_string()),
                "{expected} in {args:?}"
            );
        }
        assert!(!args.contains(&"--paused".to_string()));
        let tail: Vec<&str> = args.iter().rev().take(3).map(String::as_str).collect();
        assert_eq!(tail, ["apps/*", "apps", "--"]);
        let env: BTreeMap<String, String> = main
            .env
            .clone()
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.value.unwrap_or_default()))
            .collect();
        assert_eq!(env[CONFLICT_RETRIES_ENV], "3");
        assert_eq!(env["COMMIT"], "c0ffee");
        assert_eq!(env["HOME"], "/fleet-home");
        let tolerations = pod.tolerations.unwrap();
        assert_eq!(tolerations.len(), 3);
        assert_eq!(tolerations[2].key.as_deref(), Some("dedicated"));
        let selector = pod.node_selector.unwrap();
        assert_eq!(selector["kubernetes.io/os"], "linux");
        assert_eq!(selector["pool"], "system");
        let cloner = &pod.init_containers.unwrap()[0];
        let cargs = cloner.args.clone().unwrap();
        assert_eq!(
            &cargs[..3],
            [
                "gitcloner",
                "https://git.example.com/apps.git",
                "/workspace"
            ]
        );
        assert!(cargs.windows(2).any(|w| w[0] == "--ca-bundle-file"
            && w[1] == "/gitjob/cabundle/additional-ca.crt"));
        assert!(
            cargs
                .windows(2)
                .any(|w| w[0] == "--branch" && w[1] == "master")
        );
        let volumes: Vec<(String, Option<String>)> = pod
            .volumes
            .unwrap()
            .into_iter()
            .map(|v| (v.name, v.secret.and_then(|s| s.secret_name)))
            .collect();
        assert!(volumes.contains(&("additional-ca".into(), Some("apps-cabundle".into()))));
        assert!(volumes.contains(&(
            "rancher-helm-secret".into(),
            Some("apps-rancher-cabundle".into())
        )));
        assert!(volumes.contains(&("git-credential".into(), Some("creds".into()))));
    }

    #[test]
    fn without_targets_the_default_group_is_targeted() {
        let g = gitrepo();
        let file = targets_file(&g.spec);
        assert_eq!(file.targets.len(), 1);
        assert_eq!(file.targets[0].cluster_group, "default");
        assert_eq!(file.target_restrictions.len(), 1);
        let cm = targets_config_map(&g, &g.spec);
        assert!(cm.metadata.name.unwrap().starts_with("apps-config-"));
    }

    #[test]
    fn rbac_is_limited_to_bundles_gitrepos_and_secrets() {
        let g = gitrepo();
        let role = role(&g);
        assert_eq!(role.metadata.name.as_deref(), Some("git-apps"));
        let rules = role.rules.unwrap();
        assert_eq!(rules.len(), 3);
        assert!(
            rules[0]
                .resources
                .as_ref()
                .unwrap()
                .contains(&"bundles".to_string())
        );
        let binding = role_binding(&g);
        assert_eq!(binding.role_ref.name, "git-apps");
        let subject = &binding.subjects.unwrap()[0];
        assert_eq!(
            (
                subject.kind.as_str(),
                subject.name.as_str(),
                subject.namespace.as_deref()
            ),
            ("ServiceAccount", "git-apps", Some("fleet-local"))
        );
    }

    fn job_with(conditions: &[(&str, &str)], succeeded: i32, failed: i32) -> Job {
        Job {
            status: Some(JobStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, s)| JobCondition {
                            type_: t.to_string(),
                            status: s.to_string(),
                            ..JobCondition::default()
                        })
                        .collect(),
                ),
                succeeded: Some(succeeded),
                failed: Some(failed),
                ..JobStatus::default()
            }),
            ..Job::default()
        }
    }

    #[test]
    fn job_state_follows_kstatus() {
        assert_eq!(
            job_state(&job_with(&[("Complete", "True")], 1, 0)),
            JobState::Current("Job Completed. succeeded: 1/1".into())
        );
        assert_eq!(
            job_state(&job_with(&[("Failed", "True")], 0, 1)).status(),
            "Failed"
        );
        assert_eq!(job_state(&job_with(&[], 0, 0)).status(), "InProgress");
    }

    #[test]
    fn failure_messages_come_from_fleet_json_logs() {
        let logs =
            "plain line\n{\"level\":\"fatal\",\"fleetErrorMessage\":\"bundle x: bad yaml\"}\n";
        assert_eq!(
            job_failure_message(logs, "Job Failed"),
            "bundle x: bad yaml"
        );
        assert_eq!(job_failure_message("", "Job Failed"), "Job Failed");
        assert_eq!(job_failure_message("oops\n", "Job Failed"), "oops");
    }
}

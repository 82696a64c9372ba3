//! What the agent Pod runs (Fleet's `internal/cmd/agent/root.go`): read the container
//! environment, take the Lease `fleet-agent` in the agent namespace (one active agent per
//! cluster, however many replicas run), register with the upstream cluster (see
//! [`crate::register`]) and run the [`Agent`] until shutdown or until leadership is lost — then
//! it becomes a candidate again instead of exiting, so a lost Lease is no crash loop.
//!
//! [`decide`] is the pure Lease decision (observed Lease + identity + clock); the elector
//! around it does the API calls, with client-go's lease duration / renew deadline / retry
//! period semantics.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

pub use crate::config::AgentEnv;
use crate::config::{AgentConfig, ConfigError, env, env_duration, env_value};
use crate::register::{RegisterOptions, UpstreamConnector, register_with_retry};
use crate::{Agent, AgentError};

/// Name of the agent's leader-election Lease (Fleet's `leaseLockName`).
pub const LEASE_NAME: &str = "fleet-agent";

/// Leader election settings (Fleet's `CATTLE_ELECTION_*`; client-go's defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionSettings {
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading.
    pub renew_deadline: Duration,
    /// Delay between attempts (candidates and renewals).
    pub retry_period: Duration,
    /// Holder identity written into the Lease (`POD_NAME`).
    pub identity: String,
}

impl ElectionSettings {
    pub fn from_env(env_vars: &AgentEnv) -> Result<Self, ConfigError> {
        let identity = env_value(env_vars, env::POD_NAME)
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "fleet-agent-{}-{:08x}",
                    std::process::id(),
                    rand::random::<u32>()
                )
            });
        Ok(ElectionSettings {
            lease_duration: env_duration(
                env_vars,
                env::ELECTION_LEASE_DURATION,
                Duration::from_secs(15),
            )?,
            renew_deadline: env_duration(
                env_vars,
                env::ELECTION_RENEW_DEADLINE,
                Duration::from_secs(10),
            )?,
            retry_period: env_duration(
                env_vars,
                env::ELECTION_RETRY_PERIOD,
                Duration::from_secs(2),
            )?
            .max(Duration::from_millis(10)),
            identity,
        })
    }
}

/// What a candidate does after looking at the Lease.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseDecision {
    /// Write this spec (create, take over or renew); after the write this process leads.
    Write { spec: LeaseSpec, acquired: bool },
    /// Another holder's Lease is still valid.
    Follow { holder: String },
}

fn lease_expired(spec: &LeaseSpec, now: Timestamp, default_duration: Duration) -> bool {
    let seconds = spec
        .lease_duration_seconds
        .map(|s| i64::from(s.max(0)))
        .unwrap_or_else(|| i64::try_from(default_duration.as_secs()).unwrap_or(i64::MAX));
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    match renewed.0.checked_add(SignedDuration::from_secs(seconds)) {
        Ok(expiry) => expiry <= now,
        Err(_) => false,
    }
}

/// The pure decision over the observed Lease spec (`None`: no Lease yet).
pub fn decide(
    observed: Option<&LeaseSpec>,
    identity: &str,
    now: Timestamp,
    lease_duration: Duration,
) -> LeaseDecision {
    let duration_seconds = i32::try_from(lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
    let fresh = |transitions: i32| LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(duration_seconds),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..Default::default()
    };
    let Some(spec) = observed else {
        return LeaseDecision::Write {
            spec: fresh(0),
            acquired: true,
        };
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder == identity {
        let mut renewed = spec.clone();
        renewed.renew_time = Some(MicroTime(now));
        renewed.lease_duration_seconds = Some(duration_seconds);
        return LeaseDecision::Write {
            spec: renewed,
            acquired: false,
        };
    }
    if holder.is_empty() || lease_expired(spec, now, lease_duration) {
        let transitions = spec.lease_transitions.unwrap_or(0).saturating_add(1);
        return LeaseDecision::Write {
            spec: fresh(transitions),
            acquired: true,
        };
    }
    LeaseDecision::Follow { holder }
}

/// The Lease as released on shutdown, so a successor need not wait for it to expire.
pub fn released(spec: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: spec.lease_transitions,
        ..Default::default()
    }
}

/// Leader election on the downstream Lease.
struct Elector {
    api: Api<Lease>,
    namespace: String,
    settings: ElectionSettings,
}

impl Elector {
    /// One read-decide-write round; `true` when this process leads afterwards.
    async fn try_acquire_or_renew(&self) -> bool {
        let current = match self.api.get_opt(LEASE_NAME).await {
            Ok(lease) => lease,
            Err(error) => {
                tracing::warn!(lease = %format!("{}/{LEASE_NAME}", self.namespace), %error, "reading the agent Lease failed");
                return false;
            }
        };
        let LeaseDecision::Write { spec, acquired } = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.settings.identity,
            Timestamp::now(),
            self.settings.lease_duration,
        ) else {
            return false;
        };
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(LEASE_NAME.to_string()),
                        namespace: Some(self.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            // The resourceVersion of `lease` makes a racing write fail.
            Some(mut lease) => {
                lease.spec = Some(spec);
                self.api
                    .replace(LEASE_NAME, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => {
                if acquired {
                    tracing::info!(lease = %format!("{}/{LEASE_NAME}", self.namespace), identity = %self.settings.identity, "agent acquired leadership");
                }
                true
            }
            Err(error) => {
                tracing::debug!(lease = %format!("{}/{LEASE_NAME}", self.namespace), %error, "writing the agent Lease failed");
                false
            }
        }
    }

    async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(LEASE_NAME).await else {
            return;
        };
        let Some(spec) = &lease.spec else { return };
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return;
        }
        lease.spec = Some(released(spec, Timestamp::now()));
        if let Err(error) = self
            .api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!(lease = %format!("{}/{LEASE_NAME}", self.namespace), %error, "releasing the agent Lease failed");
        }
    }

    /// Renews every retry period; returns once a renewal has not succeeded for the renew
    /// deadline (leadership lost).
    async fn keep_renewing(&self) {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.settings.retry_period).await;
            if self.try_acquire_or_renew().await {
                last_renewed = tokio::time::Instant::now();
            } else if last_renewed.elapsed() >= self.settings.renew_deadline {
                return;
            }
        }
    }

    /// Waits until this process leads; `false` when `shutdown` came first.
    async fn acquire(&self, shutdown: &CancellationToken) -> bool {
        loop {
            if self.try_acquire_or_renew().await {
                return true;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(self.settings.retry_period) => {}
            }
        }
    }
}

/// How an agent process registers, from its environment.
fn register_options(
    config: &AgentConfig,
    env_vars: &AgentEnv,
) -> Result<RegisterOptions, ConfigError> {
    let mut options = RegisterOptions::new(&config.agent_namespace);
    options.pod_name = env_value(env_vars, env::POD_NAME)
        .or_else(|| env_value(env_vars, "HOSTNAME"))
        .unwrap_or_default()
        .to_string();
    options.secret_poll = env_duration(
        env_vars,
        env::REGISTRATION_SECRET_POLL,
        crate::register::DEFAULT_SECRET_POLL,
    )?
    .max(Duration::from_millis(10));
    Ok(options)
}

/// Runs `work` with a child token of `shutdown` while `elector` renews the Lease; cancels the
/// work when leadership is lost. Returns whether leadership was lost, and the work's result.
async fn lead<F>(
    elector: &Elector,
    term: CancellationToken,
    work: F,
) -> (bool, Result<(), AgentError>)
where
    F: Future<Output = Result<(), AgentError>>,
{
    tokio::pin!(work);
    tokio::select! {
        result = &mut work => (false, result),
        _ = elector.keep_renewing() => {
            tracing::warn!(lease = %format!("{}/{LEASE_NAME}", elector.namespace), identity = %elector.settings.identity, "agent lost leadership, stopping");
            term.cancel();
            (true, work.await)
        }
    }
}

/// Where the agent registers its metrics.
enum MetricsSink<'a> {
    Borrowed(&'a mut Registry),
    Shared(Arc<std::sync::Mutex<Registry>>),
}

/// Exactly what the agent Pod does: read `env` into an [`AgentConfig`], take the Lease
/// `fleet-agent` in the agent namespace, register with the upstream cluster (the `fleet-agent`
/// secret, or the bootstrap values; failures become Events in the agent namespace and are
/// retried with backoff) through `connector`, then run the [`Agent`] until `shutdown`.
/// Metrics go into `registry`. Errors only for an unusable environment.
pub async fn run_agent_process(
    downstream: kube::Client,
    env: AgentEnv,
    connector: Arc<dyn UpstreamConnector>,
    registry: &mut Registry,
    shutdown: CancellationToken,
) -> Result<(), AgentError> {
    run(
        downstream,
        env,
        connector,
        MetricsSink::Borrowed(registry),
        shutdown,
    )
    .await
}

/// [`run_agent_process`] with a registry that is served while the agent runs: it is locked
/// only for the moment the agent registers its metrics.
pub async fn run_agent_process_shared(
    downstream: kube::Client,
    env: AgentEnv,
    connector: Arc<dyn UpstreamConnector>,
    registry: Arc<std::sync::Mutex<Registry>>,
    shutdown: CancellationToken,
) -> Result<(), AgentError> {
    run(
        downstream,
        env,
        connector,
        MetricsSink::Shared(registry),
        shutdown,
    )
    .await
}

/// Builds the agent, registering its metrics in `sink` the first time only (metric names must
/// stay unique in a registry).
fn build_agent(
    upstream: kube::Client,
    downstream: kube::Client,
    config: AgentConfig,
    sink: &mut Option<MetricsSink<'_>>,
) -> Agent {
    let mut scratch = Registry::default();
    match sink.take() {
        Some(MetricsSink::Borrowed(registry)) => Agent::new(upstream, downstream, config, registry),
        Some(MetricsSink::Shared(shared)) => {
            let mut guard = match shared.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            Agent::new(upstream, downstream, config, &mut guard)
        }
        None => Agent::new(upstream, downstream, config, &mut scratch),
    }
}

async fn run(
    downstream: kube::Client,
    env: AgentEnv,
    connector: Arc<dyn UpstreamConnector>,
    sink: MetricsSink<'_>,
    shutdown: CancellationToken,
) -> Result<(), AgentError> {
    let base_config = AgentConfig::from_env(&env)?;
    let election = ElectionSettings::from_env(&env)?;
    let options = register_options(&base_config, &env)?;
    let initial_retry = env_duration(&env, env::REGISTRATION_RETRY, Duration::from_secs(5))?
        .max(Duration::from_millis(10));
    let namespace = base_config.agent_namespace.clone();
    let elector = Elector {
        api: Api::namespaced(downstream.clone(), &namespace),
        namespace: namespace.clone(),
        settings: election,
    };
    tracing::info!(namespace = %namespace, identity = %elector.settings.identity, "agent process starting");

    let mut sink = Some(sink);
    loop {
        if !elector.acquire(&shutdown).await {
            return Ok(());
        }
        let term = shutdown.child_token();
        let work = {
            let term = term.clone();
            let downstream = downstream.clone();
            let connector = connector.clone();
            let options = &options;
            let mut config = base_config.clone();
            let sink = &mut sink;
            async move {
                let Some(registered) = register_with_retry(
                    &downstream,
                    connector.as_ref(),
                    options,
                    initial_retry,
                    &term,
                )
                .await
                else {
                    return Ok(());
                };
                let credentials = &registered.credentials;
                config.cluster_name = credentials.cluster_name.clone();
                config.cluster_namespace = credentials.cluster_namespace.clone();
                config.deployments_namespace = credentials.deployment_namespace.clone();
                tracing::info!(cluster = %format!("{}/{}", config.cluster_namespace, config.cluster_name), deployments = %config.deployments_namespace, "agent registered, starting");
                let agent = build_agent(registered.upstream, downstream, config, sink);
                agent.run(term).await
            }
        };
        let (lost, result) = lead(&elector, term, work).await;
        if !lost {
            elector.release().await;
            return result;
        }
        result?;
        if shutdown.is_cancelled() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DURATION: Duration = Duration::from_secs(15);

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + second).unwrap()
    }

    fn held_by(holder: &str, renewed_at: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(MicroTime(at(0))),
            renew_time: Some(MicroTime(at(renewed_at))),
            lease_transitions: Some(1),
            ..Default::default()
        }
    }

    #[test]
    fn first_candidate_acquires() {
        let LeaseDecision::Write { spec, acquired } = decide(None, "pod-a", at(0), DURATION) else {
            panic!("expected a write");
        };
        assert!(acquired);
        assert_eq!(spec.holder_identity.as_deref(), Some("pod-a"));
    }

    #[test]
    fn valid_lease_is_followed_and_expired_one_taken_over() {
        let lease = held_by("pod-a", 10);
        assert_eq!(
            decide(Some(&lease), "pod-b", at(20), DURATION),
            LeaseDecision::Follow {
                holder: "pod-a".into()
            }
        );
        let LeaseDecision::Write { spec, acquired } =
            decide(Some(&lease), "pod-b", at(25), DURATION)
        else {
            panic!("expected a takeover");
        };
        assert!(acquired);
        assert_eq!(spec.lease_transitions, Some(2));
    }

    #[test]
    fn holder_renews_and_release_frees() {
        let lease = held_by("pod-a", 10);
        assert!(matches!(
            decide(Some(&lease), "pod-a", at(12), DURATION),
            LeaseDecision::Write {
                acquired: false,
                ..
            }
        ));
        let freed = released(&lease, at(12));
        assert!(matches!(
            decide(Some(&freed), "pod-b", at(12), DURATION),
            LeaseDecision::Write { acquired: true, .. }
        ));
    }

    #[test]
    fn election_settings_from_env() {
        let env: AgentEnv = [
            ("POD_NAME", "fleet-agent-7d9f"),
            ("CATTLE_ELECTION_LEASE_DURATION", "30s"),
            ("CATTLE_ELECTION_RENEW_DEADLINE", "20s"),
            ("CATTLE_ELECTION_RETRY_PERIOD", "4s"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = ElectionSettings::from_env(&env).unwrap();
        assert_eq!(s.identity, "fleet-agent-7d9f");
        assert_eq!(s.lease_duration, Duration::from_secs(30));
        assert_eq!(s.renew_deadline, Duration::from_secs(20));
        assert_eq!(s.retry_period, Duration::from_secs(4));
        let defaults = ElectionSettings::from_env(&AgentEnv::new()).unwrap();
        assert_eq!(defaults.lease_duration, Duration::from_secs(15));
        assert!(defaults.identity.starts_with("fleet-agent-"));
    }
}

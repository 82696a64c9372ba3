//! What the agent Pod runs (Fleet's `internal/cmd/agent/root.go`): read the container
//! environment, take the Lease `fleet-agent` in the agent namespace (one active agent per
//! cluster, however many replicas run), register with the upstream cluster (see
//! [`crate::register`]) and run the [`Agent`] until shutdown or until leadership is lost — then
//! it becomes a candidate again instead of exiting, so a lost Lease is no crash loop.
//!
//! The election is [`fleet_leader`] (the controller's too), with client-go's lease duration /
//! renew deadline / retry period semantics from the `CATTLE_ELECTION_*` variables.

use std::sync::Arc;
use std::time::Duration;

use fleet_leader::{LeaderElector, LeaseConfig, TermEnd};
pub use fleet_leader::{LeaseDecision, RenewalRuntime, decide, released};
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
                fleet_leader::DEFAULT_LEASE_DURATION,
            )?,
            renew_deadline: env_duration(
                env_vars,
                env::ELECTION_RENEW_DEADLINE,
                fleet_leader::DEFAULT_RENEW_DEADLINE,
            )?,
            retry_period: env_duration(
                env_vars,
                env::ELECTION_RETRY_PERIOD,
                fleet_leader::DEFAULT_RETRY_PERIOD,
            )?
            .max(fleet_leader::MIN_RETRY_PERIOD),
            identity,
        })
    }
}

impl ElectionSettings {
    /// The agent's Lease `<namespace>/fleet-agent` with these settings.
    pub fn lease_config(&self, namespace: &str) -> LeaseConfig {
        LeaseConfig {
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
            ..LeaseConfig::new(namespace, LEASE_NAME, &self.identity)
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

/// Where the agent registers its metrics.
enum MetricsSink<'a> {
    Borrowed(&'a mut Registry),
    Shared(Arc<std::sync::Mutex<Registry>>),
}

/// Exactly what the agent Pod does: read `env` into an [`AgentConfig`], take the Lease
/// `fleet-agent` in the agent namespace, register with the upstream cluster (the `fleet-agent`
/// secret, or the bootstrap values; failures become Events in the agent namespace and are
/// retried with backoff) through `connector`, then run the [`Agent`] until `shutdown`.
/// Metrics go into `registry`. The Lease is renewed on `renewals` when given (agents sharing
/// threads, as in the simulator), else alongside the agent. Errors only for an unusable
/// environment.
pub async fn run_agent_process(
    downstream: kube::Client,
    env: AgentEnv,
    connector: Arc<dyn UpstreamConnector>,
    registry: &mut Registry,
    renewals: Option<RenewalRuntime>,
    shutdown: CancellationToken,
) -> Result<(), AgentError> {
    run(
        downstream,
        env,
        connector,
        MetricsSink::Borrowed(registry),
        renewals,
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
    renewals: Option<RenewalRuntime>,
    shutdown: CancellationToken,
) -> Result<(), AgentError> {
    run(
        downstream,
        env,
        connector,
        MetricsSink::Shared(registry),
        renewals,
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
    renewals: Option<RenewalRuntime>,
    shutdown: CancellationToken,
) -> Result<(), AgentError> {
    let base_config = AgentConfig::from_env(&env)?;
    let election = ElectionSettings::from_env(&env)?;
    let options = register_options(&base_config, &env)?;
    let initial_retry = env_duration(&env, env::REGISTRATION_RETRY, Duration::from_secs(5))?
        .max(Duration::from_millis(10));
    let namespace = base_config.agent_namespace.clone();
    let mut elector = LeaderElector::new(downstream.clone(), election.lease_config(&namespace));
    if let Some(renewals) = renewals {
        elector = elector.with_renewal_runtime(renewals);
    }
    tracing::info!(namespace = %namespace, identity = %election.identity, "agent process starting");

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
                // Registration stops at once on shutdown, also in the middle of an API call.
                let registering = register_with_retry(
                    &downstream,
                    connector.as_ref(),
                    options,
                    initial_retry,
                    &term,
                );
                let registered = tokio::select! {
                    _ = term.cancelled() => None,
                    registered = registering => registered,
                };
                let Some(registered) = registered else {
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
        let (end, result) = elector.lead(&term, work).await;
        if end == TermEnd::WorkReturned {
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

    // The Lease decisions themselves are tested in fleet-leader.

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

//! The controller's leader election (Fleet's `fleet-controller-lock` Lease in the system
//! namespace): [`fleet_leader`], the elector the agent uses too, configured from the
//! controller's settings. Only the lease duration and retry period are configurable here; the
//! renew deadline follows from the duration ([`fleet_leader::renew_deadline_for`], Fleet's
//! 15 s → 10 s). The Lease's namespace is created when missing (a fresh cluster).

use std::time::Duration;

pub use fleet_leader::{LeaseConfig, LeaseDecision, TermEnd, decide, released};

/// Runs the reconcilers only while holding the controller's Lease.
pub struct LeaderElector(fleet_leader::LeaderElector);

impl LeaderElector {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        lease_duration: Duration,
        retry_period: Duration,
    ) -> Self {
        let config = LeaseConfig {
            lease_duration,
            renew_deadline: fleet_leader::renew_deadline_for(lease_duration),
            retry_period,
            create_namespace: true,
            ..LeaseConfig::new(namespace, name, identity)
        };
        LeaderElector(fleet_leader::LeaderElector::new(client, config))
    }
}

impl std::ops::Deref for LeaderElector {
    type Target = fleet_leader::LeaderElector;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settings_follow_the_controller_config() {
        let sim = fleet_simulator::Simulator::new(fleet_simulator::SimConfig::default());
        let Ok(cluster) = sim.add_cluster("upstream") else {
            panic!("simulated cluster");
        };
        let elector = LeaderElector::new(
            cluster.client(),
            "cattle-fleet-system",
            "fleet-controller-lock",
            "me",
            Duration::from_secs(15),
            Duration::from_secs(2),
        );
        let config = elector.config();
        assert_eq!(config.key(), "cattle-fleet-system/fleet-controller-lock");
        assert_eq!(config.identity, "me");
        assert_eq!(config.renew_deadline, Duration::from_secs(10));
        assert_eq!(config.retry_period, Duration::from_secs(2));
        assert!(config.create_namespace);
    }
}

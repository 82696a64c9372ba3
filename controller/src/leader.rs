//! Leader election with a `coordination.k8s.io/v1` Lease, as client-go's `leaderelection` does
//! it for Fleet's controller: one process holds the Lease and runs the reconcilers; it renews
//! the Lease every retry period; the others retry and take over once the holder's Lease has
//! not been renewed for `leaseDurationSeconds`. On shutdown the leader releases the Lease so
//! that a successor need not wait for it to expire.
//!
//! [`decide`] is the pure decision (observed Lease + identity + clock → what to write);
//! [`LeaderElector`] does the API calls. Writes use the Lease's resourceVersion, so two
//! candidates racing for an expired Lease cannot both win.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;

/// What a candidate does after looking at the Lease.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseDecision {
    /// Write this spec: acquire (create or take over) or renew the Lease; after a successful
    /// write this process is the leader.
    Write { spec: LeaseSpec, acquired: bool },
    /// Someone else holds a valid Lease.
    Follow { holder: String },
}

fn lease_expired(spec: &LeaseSpec, now: Timestamp, default_duration: Duration) -> bool {
    let duration = spec
        .lease_duration_seconds
        .map(|s| i64::from(s.max(0)))
        .unwrap_or_else(|| i64::try_from(default_duration.as_secs()).unwrap_or(i64::MAX));
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    match renewed.0.checked_add(SignedDuration::from_secs(duration)) {
        Ok(expiry) => expiry <= now,
        Err(_) => false,
    }
}

/// The pure decision: given the observed Lease spec (`None` when there is no Lease), this
/// candidate's `identity`, the clock and the configured lease duration.
pub fn decide(
    observed: Option<&LeaseSpec>,
    identity: &str,
    now: Timestamp,
    lease_duration: Duration,
) -> LeaseDecision {
    let duration_seconds = i32::try_from(lease_duration.as_secs()).unwrap_or(i32::MAX);
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
    let transitions = spec.lease_transitions.unwrap_or(0);
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
        return LeaseDecision::Write {
            spec: fresh(transitions.saturating_add(1)),
            acquired: true,
        };
    }
    LeaseDecision::Follow { holder }
}

/// The spec that releases a Lease held by `identity` (client-go's `ReleaseOnCancel`).
pub fn released(spec: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        renew_time: Some(MicroTime(now)),
        acquire_time: Some(MicroTime(now)),
        lease_transitions: spec.lease_transitions,
        ..Default::default()
    }
}

/// Runs work only while holding a Lease.
pub struct LeaderElector {
    client: kube::Client,
    api: Api<Lease>,
    name: String,
    identity: String,
    lease_duration: Duration,
    retry_period: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Leading,
    NotLeading,
}

impl LeaderElector {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        lease_duration: Duration,
        retry_period: Duration,
    ) -> Self {
        LeaderElector {
            api: Api::namespaced(client.clone(), namespace),
            client,
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration,
            retry_period,
        }
    }

    /// One round: read the Lease, decide, write. Errors (including losing a write race) mean
    /// "not leading" for this round.
    async fn try_acquire_or_renew(&self) -> Attempt {
        let current = match self.api.get_opt(&self.name).await {
            Ok(lease) => lease,
            Err(error) => {
                tracing::warn!(lease = %self.name, %error, "reading the leader Lease failed");
                return Attempt::NotLeading;
            }
        };
        let decision = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            Timestamp::now(),
            self.lease_duration,
        );
        let LeaseDecision::Write { spec, acquired } = decision else {
            return Attempt::NotLeading;
        };
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..Default::default()
                    },
                    spec: Some(spec),
                };
                let created = self.api.create(&PostParams::default(), &lease).await;
                if let Err(kube::Error::Api(s)) = &created
                    && s.code == 404
                {
                    self.create_namespace().await;
                }
                created
            }
            Some(mut lease) => {
                lease.spec = Some(spec);
                // The resourceVersion in `lease` makes this fail if someone wrote in between.
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => {
                if acquired {
                    tracing::info!(lease = %self.name, identity = %self.identity, "acquired leadership");
                }
                Attempt::Leading
            }
            Err(error) => {
                tracing::debug!(lease = %self.name, %error, "writing the leader Lease failed");
                Attempt::NotLeading
            }
        }
    }

    /// The Lease's namespace is missing (a fresh cluster): create it, so that the next round
    /// can create the Lease.
    async fn create_namespace(&self) {
        let Some(namespace) = self.api.namespace() else {
            return;
        };
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        let ns = k8s_openapi::api::core::v1::Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => tracing::info!(%namespace, "created the controller's namespace for its Lease"),
            Err(error) => {
                tracing::debug!(%namespace, %error, "creating the Lease namespace failed")
            }
        }
    }

    async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let Some(spec) = &lease.spec else { return };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        lease.spec = Some(released(spec, Timestamp::now()));
        if let Err(error) = self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!(lease = %self.name, %error, "releasing the leader Lease failed");
        }
    }

    /// Runs `work` whenever this process leads, until `shutdown`. `work` gets a token that is
    /// cancelled when leadership is lost (the Lease could not be renewed within the lease
    /// duration); it is started again when leadership is regained. Returns when `shutdown` is
    /// cancelled or `work` returns an error.
    pub async fn run<F, Fut, E>(&self, shutdown: CancellationToken, mut work: F) -> Result<(), E>
    where
        F: FnMut(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        loop {
            // Candidate: retry until leading.
            loop {
                if self.try_acquire_or_renew().await == Attempt::Leading {
                    break;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(self.retry_period) => {}
                }
            }
            // Leader: run the work while renewing.
            let term = shutdown.child_token();
            let work_future = work(term.clone());
            tokio::pin!(work_future);
            let renew = async {
                let mut last_renewed = tokio::time::Instant::now();
                loop {
                    tokio::time::sleep(self.retry_period).await;
                    if self.try_acquire_or_renew().await == Attempt::Leading {
                        last_renewed = tokio::time::Instant::now();
                    } else if last_renewed.elapsed() >= self.lease_duration {
                        return;
                    }
                }
            };
            tokio::select! {
                result = &mut work_future => {
                    self.release().await;
                    return result;
                }
                _ = renew => {
                    tracing::warn!(lease = %self.name, identity = %self.identity, "lost leadership, stopping the reconcilers");
                    term.cancel();
                    let result = work_future.await;
                    result?;
                    if shutdown.is_cancelled() {
                        return Ok(());
                    }
                }
            }
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
            lease_transitions: Some(2),
            ..Default::default()
        }
    }

    #[test]
    fn no_lease_is_acquired() {
        let LeaseDecision::Write { spec, acquired } = decide(None, "me", at(0), DURATION) else {
            panic!("expected a write");
        };
        assert!(acquired);
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.lease_transitions, Some(0));
    }

    #[test]
    fn holder_renews() {
        let lease = held_by("me", 10);
        let LeaseDecision::Write { spec, acquired } = decide(Some(&lease), "me", at(12), DURATION)
        else {
            panic!("expected a renewal");
        };
        assert!(!acquired);
        assert_eq!(spec.renew_time, Some(MicroTime(at(12))));
        assert_eq!(spec.acquire_time, Some(MicroTime(at(0))));
        assert_eq!(spec.lease_transitions, Some(2));
    }

    #[test]
    fn valid_lease_of_another_is_followed() {
        let lease = held_by("other", 10);
        assert_eq!(
            decide(Some(&lease), "me", at(24), DURATION),
            LeaseDecision::Follow {
                holder: "other".into()
            }
        );
    }

    #[test]
    fn expired_lease_is_taken_over() {
        let lease = held_by("other", 10);
        let LeaseDecision::Write { spec, acquired } = decide(Some(&lease), "me", at(25), DURATION)
        else {
            panic!("expected a takeover");
        };
        assert!(acquired);
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(3));
        assert_eq!(spec.acquire_time, Some(MicroTime(at(25))));
    }

    #[test]
    fn released_lease_is_taken_at_once() {
        let lease = released(&held_by("other", 10), at(11));
        assert!(matches!(
            decide(Some(&lease), "me", at(11), DURATION),
            LeaseDecision::Write { acquired: true, .. }
        ));
    }
}

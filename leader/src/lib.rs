//! Leader election with a `coordination.k8s.io/v1` Lease, with the semantics of client-go's
//! `leaderelection` that Fleet's controller and agent use: one process holds the Lease and
//! does the work; it renews the Lease every retry period and stops leading when it could not
//! renew within the renew deadline; candidates retry every retry period and take over once
//! the holder has not renewed for `leaseDurationSeconds`. On shutdown the leader releases the
//! Lease so that a successor need not wait for it to expire.
//!
//! [`decide`] is the pure decision (observed Lease + identity + clock → what to write);
//! [`LeaderElector`] does the API calls. Writes carry the Lease's resourceVersion, so two
//! candidates racing for an expired Lease cannot both win. Every API call is bounded in time,
//! and shutdown interrupts a candidate at once, so stopping never waits on a slow API server
//! for longer than the renew deadline.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use tokio_util::sync::CancellationToken;

/// Fleet's (and client-go's usual) lease duration.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// Fleet's renew deadline.
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// Fleet's retry period.
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);
/// Reads and writes a release makes when the Lease changes in between.
const RELEASE_ATTEMPTS: usize = 3;
/// The shortest retry period accepted (a zero period would spin on the API server).
pub const MIN_RETRY_PERIOD: Duration = Duration::from_millis(10);

/// Which Lease, who this process is, and the timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// Holder identity written into the Lease; unique per process.
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops leading. Shorter than the
    /// lease duration, so that the old leader has stopped before a candidate may take over.
    pub renew_deadline: Duration,
    /// Delay between attempts, of candidates and of the leader's renewals.
    pub retry_period: Duration,
    /// Create the Lease's namespace when it is missing (a controller on a fresh cluster).
    pub create_namespace: bool,
}

impl LeaseConfig {
    /// The Lease `namespace/name` held as `identity`, with Fleet's timings.
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        LeaseConfig {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_deadline: DEFAULT_RENEW_DEADLINE,
            retry_period: DEFAULT_RETRY_PERIOD,
            create_namespace: false,
        }
    }

    /// `namespace/name`, for logs.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The renew deadline that goes with `lease_duration` when only the duration is configured:
/// two thirds of it, the ratio of Fleet's defaults (15 s → 10 s).
pub fn renew_deadline_for(lease_duration: Duration) -> Duration {
    lease_duration.saturating_mul(2) / 3
}

/// What a candidate does after looking at the Lease.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseDecision {
    /// Write this spec: acquire (create or take over) or renew the Lease; after a successful
    /// write this process leads.
    Write { spec: LeaseSpec, acquired: bool },
    /// Someone else holds a valid Lease.
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

/// The pure decision: given the observed Lease spec (`None` when there is no Lease), this
/// candidate's `identity`, the clock and the configured lease duration.
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

/// The spec that releases a Lease (client-go's `ReleaseOnCancel`): no holder, expiring at
/// once.
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

/// How a term of leadership ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermEnd {
    /// The work returned (shutdown, or an error of its own); the Lease was released.
    WorkReturned,
    /// The Lease could not be renewed within the renew deadline; the work was cancelled.
    LeadershipLost,
}

/// Where a leader's renewals run when they must not queue behind its work: a runtime of
/// their own, and a client built on it. Many processes sharing a few threads (the simulated
/// agents of `fleet sim bench`) would otherwise renew late under load and lose Leases that
/// separate processes keep.
#[derive(Clone)]
pub struct RenewalRuntime {
    handle: tokio::runtime::Handle,
    client: kube::Client,
}

impl RenewalRuntime {
    /// `client` must have been built on `handle`'s runtime: a kube client's request buffer
    /// runs where the client was made, so one from the busy runtime would queue renewals
    /// behind the work again.
    pub fn new(handle: tokio::runtime::Handle, client: kube::Client) -> Self {
        RenewalRuntime { handle, client }
    }
}

/// Runs work only while holding a Lease.
pub struct LeaderElector {
    client: kube::Client,
    api: Api<Lease>,
    config: LeaseConfig,
    /// Renews on a runtime of its own (see [`RenewalRuntime`]); `None`: in the leader's task.
    renewer: Option<(tokio::runtime::Handle, std::sync::Arc<LeaderElector>)>,
    /// The Lease as this elector last wrote it (the API server's answer). A leader renews by
    /// writing over it without reading the Lease first, as client-go's optimistic renewal
    /// does: one request per renewal instead of two. Its resourceVersion makes the write fail
    /// when anyone else wrote in between, and then the next round reads the Lease.
    last_written: std::sync::Mutex<Option<Lease>>,
}

/// Aborts the renewal task when the term ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl AbortOnDrop {
    /// Aborts the task and waits until it has stopped.
    async fn stop(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl LeaderElector {
    pub fn new(client: kube::Client, mut config: LeaseConfig) -> Self {
        config.retry_period = config.retry_period.max(MIN_RETRY_PERIOD);
        LeaderElector {
            api: Api::namespaced(client.clone(), &config.namespace),
            client,
            config,
            renewer: None,
            last_written: std::sync::Mutex::new(None),
        }
    }

    /// Renews the Lease on `renewals`' runtime, through its client, while leading.
    pub fn with_renewal_runtime(mut self, renewals: RenewalRuntime) -> Self {
        let renewer = LeaderElector::new(renewals.client, self.config.clone());
        self.renewer = Some((renewals.handle, std::sync::Arc::new(renewer)));
        self
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    fn written(&self) -> std::sync::MutexGuard<'_, Option<Lease>> {
        // The slot holds a plain value: a panic elsewhere cannot leave it half-written.
        self.last_written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Renews over the Lease this elector last wrote, without reading it: `false` when there
    /// is none (or not ours) or the write failed (someone else wrote: the slot is emptied, so
    /// the next attempt reads the Lease).
    async fn renew_over_last_written(&self) -> bool {
        let Some(mut lease) = self.written().take() else {
            return false;
        };
        // Only a renewal of our own Lease; anything else is decided on a fresh read.
        let LeaseDecision::Write {
            spec,
            acquired: false,
        } = decide(
            lease.spec.as_ref(),
            &self.config.identity,
            Timestamp::now(),
            self.config.lease_duration,
        )
        else {
            return false;
        };
        lease.spec = Some(spec);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                *self.written() = Some(written);
                true
            }
            Err(error) => {
                tracing::debug!(lease = %self.config.key(), %error, "renewing over the last written Lease failed; reading it");
                false
            }
        }
    }

    /// One round: renew over the Lease last written, or read the Lease, decide, write. `true`
    /// when this process leads afterwards; errors (including losing a write race) mean "not
    /// leading" for this round.
    pub async fn try_acquire_or_renew(&self) -> bool {
        if self.renew_over_last_written().await {
            return true;
        }
        let lease = self.config.key();
        let current = match self.api.get_opt(&self.config.name).await {
            Ok(current) => current,
            Err(error) => {
                tracing::warn!(%lease, %error, "reading the leader Lease failed");
                return false;
            }
        };
        let LeaseDecision::Write { spec, acquired } = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.config.identity,
            Timestamp::now(),
            self.config.lease_duration,
        ) else {
            return false;
        };
        let result = match current {
            None => {
                let new_lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(spec),
                };
                let created = self.api.create(&PostParams::default(), &new_lease).await;
                if let Err(kube::Error::Api(status)) = &created
                    && status.code == 404
                    && self.config.create_namespace
                {
                    self.create_namespace().await;
                }
                created
            }
            // The resourceVersion in `existing` makes this fail if someone wrote in between.
            Some(mut existing) => {
                existing.spec = Some(spec);
                self.api
                    .replace(&self.config.name, &PostParams::default(), &existing)
                    .await
            }
        };
        match result {
            Ok(written) => {
                *self.written() = Some(written);
                if acquired {
                    tracing::info!(%lease, identity = %self.config.identity, "acquired leadership");
                }
                true
            }
            Err(error) => {
                tracing::debug!(%lease, %error, "writing the leader Lease failed");
                false
            }
        }
    }

    /// The Lease's namespace is missing (a fresh cluster): create it, so that the next round
    /// can create the Lease.
    async fn create_namespace(&self) {
        let namespace = &self.config.namespace;
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => tracing::info!(%namespace, "created the namespace of the leader Lease"),
            Err(error) => {
                tracing::debug!(%namespace, %error, "creating the Lease namespace failed")
            }
        }
    }

    /// Gives the Lease up if this process still holds it. Bounded by the renew deadline: a
    /// successor can always wait for the Lease to expire instead.
    pub async fn release(&self) {
        let lease = self.config.key();
        self.written().take();
        let attempt = async {
            // A write of the Lease between this read and the release (a renewal still in
            // flight) fails the release with 409: it is read again.
            for _ in 0..RELEASE_ATTEMPTS {
                let Ok(Some(mut current)) = self.api.get_opt(&self.config.name).await else {
                    return;
                };
                let Some(spec) = &current.spec else { return };
                if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
                    return;
                }
                current.spec = Some(released(spec, Timestamp::now()));
                match self
                    .api
                    .replace(&self.config.name, &PostParams::default(), &current)
                    .await
                {
                    Ok(_) => return,
                    Err(kube::Error::Api(status)) if status.code == 409 => {}
                    Err(error) => {
                        tracing::warn!(%lease, %error, "releasing the leader Lease failed");
                        return;
                    }
                }
            }
            tracing::warn!(%lease, "releasing the leader Lease failed: it kept changing; it expires by itself");
        };
        if tokio::time::timeout(self.config.renew_deadline, attempt)
            .await
            .is_err()
        {
            tracing::warn!(%lease, "releasing the leader Lease timed out; it expires by itself");
        }
    }

    /// Waits until this process leads: `true`, or `false` once `shutdown` is cancelled (also
    /// in the middle of an API call).
    pub async fn acquire(&self, shutdown: &CancellationToken) -> bool {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                leading = self.try_acquire_or_renew() => if leading { return true },
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(self.config.retry_period) => {}
            }
        }
    }

    /// Renews every retry period; returns once no renewal succeeded for the renew deadline
    /// (leadership lost). A renewal hanging on the API server counts as failed when the
    /// deadline passes.
    pub async fn keep_renewing(&self) {
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            let deadline = last_renewed + self.config.renew_deadline;
            let renewed = tokio::time::timeout_at(deadline, self.try_acquire_or_renew())
                .await
                .unwrap_or(false);
            if renewed {
                last_renewed = tokio::time::Instant::now();
            } else if tokio::time::Instant::now() >= deadline {
                return;
            }
        }
    }

    /// Runs `work` (which must stop when `term` is cancelled) while renewing the Lease. When
    /// leadership is lost `term` is cancelled and the work awaited; when the work returns
    /// first the Lease is released. `term` should be a child of the process's shutdown token.
    pub async fn lead<F>(&self, term: &CancellationToken, work: F) -> (TermEnd, F::Output)
    where
        F: Future,
    {
        tokio::pin!(work);
        // Spawned before the work is first polled: work that holds its thread from the start
        // must not delay the renewals either.
        let mut renewal_task = self.renewer.as_ref().map(|(handle, renewer)| {
            let renewer = renewer.clone();
            AbortOnDrop(handle.spawn(async move { renewer.keep_renewing().await }))
        });
        let renewing = async {
            match &mut renewal_task {
                // A renewal task that ended in any way (its runtime stopped, too) no longer
                // holds the Lease.
                Some(task) => {
                    let _ = (&mut task.0).await;
                }
                None => self.keep_renewing().await,
            }
        };
        let returned = tokio::select! {
            output = &mut work => Some(output),
            _ = renewing => None,
        };
        match returned {
            Some(output) => {
                // Renewals stop first: one landing between the release's read and write
                // would fail the release.
                if let Some(task) = renewal_task {
                    let _ = tokio::time::timeout(self.config.renew_deadline, task.stop()).await;
                }
                self.release().await;
                (TermEnd::WorkReturned, output)
            }
            None => {
                tracing::warn!(lease = %self.config.key(), identity = %self.config.identity, "lost leadership, stopping the work");
                term.cancel();
                (TermEnd::LeadershipLost, work.await)
            }
        }
    }

    /// Runs `work` whenever this process leads, until `shutdown`. `work` gets a token that is
    /// cancelled on shutdown and when leadership is lost; it is started again when leadership
    /// is regained. Returns when `shutdown` is cancelled or `work` returns by itself (its
    /// result).
    pub async fn run<F, Fut, E>(&self, shutdown: CancellationToken, mut work: F) -> Result<(), E>
    where
        F: FnMut(CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        loop {
            if !self.acquire(&shutdown).await {
                return Ok(());
            }
            let term = shutdown.child_token();
            match self.lead(&term, work(term.clone())).await {
                (TermEnd::WorkReturned, result) => return result,
                (TermEnd::LeadershipLost, result) => {
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
#[allow(clippy::unwrap_used, clippy::expect_used)]
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
    fn holder_renews_keeping_acquire_time_and_transitions() {
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
    fn valid_lease_of_another_is_followed_and_expired_one_taken_over() {
        let lease = held_by("other", 10);
        assert_eq!(
            decide(Some(&lease), "me", at(24), DURATION),
            LeaseDecision::Follow {
                holder: "other".into()
            }
        );
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
        assert_eq!(lease.holder_identity, None);
        assert!(matches!(
            decide(Some(&lease), "me", at(11), DURATION),
            LeaseDecision::Write { acquired: true, .. }
        ));
    }

    #[test]
    fn fleet_defaults() {
        let c = LeaseConfig::new("cattle-fleet-system", "fleet-controller-lock", "pod");
        assert_eq!(c.lease_duration, Duration::from_secs(15));
        assert_eq!(c.renew_deadline, Duration::from_secs(10));
        assert_eq!(c.retry_period, Duration::from_secs(2));
        assert_eq!(c.key(), "cattle-fleet-system/fleet-controller-lock");
        assert_eq!(
            renew_deadline_for(DEFAULT_LEASE_DURATION),
            DEFAULT_RENEW_DEADLINE
        );
    }
}

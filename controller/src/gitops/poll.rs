//! When to look at a GitRepo's repository again: the polling interval with Fleet's 0–10 %
//! jitter (so that many GitRepos created together do not poll in lockstep), and the decision
//! whether a reconcile must poll now.

use std::sync::Mutex;
use std::time::Duration;

use fleet_api::GitRepo;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A random source for jitter, seeded from the config for reproducible schedules.
pub struct Jitter {
    rng: Mutex<ChaCha8Rng>,
}

impl Jitter {
    /// `seed` gives the same sequence every run; `None` seeds from the OS.
    pub fn new(seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(s) => ChaCha8Rng::seed_from_u64(s),
            None => ChaCha8Rng::from_os_rng(),
        };
        Jitter {
            rng: Mutex::new(rng),
        }
    }

    /// `d` plus a random 0–10 % of it.
    pub fn add(&self, d: Duration) -> Duration {
        match self.rng.lock() {
            Ok(mut rng) => add_jitter(d, &mut *rng),
            // A panic elsewhere poisoned the lock; jitter is not worth failing for.
            Err(poisoned) => add_jitter(d, &mut *poisoned.into_inner()),
        }
    }
}

/// Fleet's `addJitter`: `d + rand[0, d/10)`; zero stays zero.
pub fn add_jitter(d: Duration, rng: &mut impl Rng) -> Duration {
    let tenth = d.as_nanos() / 10;
    if tenth == 0 {
        return d;
    }
    let extra = rng.random_range(0..tenth.min(u64::MAX as u128) as u64);
    d + Duration::from_nanos(extra)
}

/// The GitRepo's `pollingInterval`, or `default` when unset or zero.
pub fn polling_interval(gitrepo: &GitRepo, default: Duration) -> Duration {
    gitrepo
        .spec
        .polling_interval
        .and_then(|d| d.to_std())
        .filter(|d| !d.is_zero())
        .unwrap_or(default)
}

/// What the controller remembers about a GitRepo between reconciles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Time of the last poll (a monotonic instant as seconds since the controller started).
    pub last_poll: Option<Duration>,
    /// `metadata.generation` at the last poll.
    pub generation: i64,
    /// The webhook commit that was last acted on.
    pub webhook_commit: String,
}

/// Why a reconcile polls the repository now; `None` means it does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollReason {
    /// Never polled since the controller started.
    First,
    /// The polling interval passed.
    Interval,
    /// The spec changed.
    SpecChanged,
    /// `forceSyncGeneration` was bumped.
    ForceSync,
    /// A webhook reported a new commit.
    Webhook,
    /// The CA bundle used for git changed (e.g. Rancher's `tls-ca` was fixed).
    CaBundleChanged,
}

/// Whether to poll now, at `now` (same clock as [`Observed::last_poll`]). With
/// `disablePolling` only spec changes, force-syncs and webhooks fetch.
pub fn poll_reason(
    gitrepo: &GitRepo,
    observed: &Observed,
    now: Duration,
    interval: Duration,
) -> Option<PollReason> {
    let status = gitrepo.status.clone().unwrap_or_default();
    let generation = gitrepo.metadata.generation.unwrap_or(0);
    if observed.last_poll.is_none() {
        return Some(PollReason::First);
    }
    if generation != observed.generation {
        return Some(PollReason::SpecChanged);
    }
    if gitrepo.spec.force_sync_generation != status.update_generation {
        return Some(PollReason::ForceSync);
    }
    if !status.webhook_commit.is_empty()
        && status.webhook_commit != observed.webhook_commit
        && status.webhook_commit != status.commit
    {
        return Some(PollReason::Webhook);
    }
    if gitrepo.spec.disable_polling {
        return None;
    }
    match observed.last_poll {
        Some(last) if now.saturating_sub(last) >= interval => Some(PollReason::Interval),
        _ => None,
    }
}

/// How long to wait before the next poll is due (zero when it is due).
pub fn until_next_poll(observed: &Observed, now: Duration, interval: Duration) -> Duration {
    match observed.last_poll {
        Some(last) => interval.saturating_sub(now.saturating_sub(last)),
        None => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::{GitRepoSpec, GitRepoStatus};

    #[test]
    fn jitter_adds_between_zero_and_ten_percent() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let d = Duration::from_secs(15);
        let mut distinct = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            let j = add_jitter(d, &mut rng);
            assert!(j >= d, "{j:?}");
            assert!(j < d + Duration::from_millis(1500), "{j:?}");
            distinct.insert(j);
        }
        assert!(distinct.len() > 900, "jitter should vary");
        assert_eq!(add_jitter(Duration::ZERO, &mut rng), Duration::ZERO);
    }

    #[test]
    fn seeded_jitter_is_reproducible() {
        let a = Jitter::new(Some(42));
        let b = Jitter::new(Some(42));
        let d = Duration::from_secs(60);
        for _ in 0..10 {
            assert_eq!(a.add(d), b.add(d));
        }
    }

    fn repo(generation: i64) -> GitRepo {
        let mut g = GitRepo::new("r", GitRepoSpec::default());
        g.metadata.generation = Some(generation);
        g.status = Some(GitRepoStatus::default());
        g
    }

    #[test]
    fn polling_interval_defaults() {
        let mut g = repo(1);
        assert_eq!(
            polling_interval(&g, Duration::from_secs(15)),
            Duration::from_secs(15)
        );
        g.spec.polling_interval = Some(Duration::from_secs(90).into());
        assert_eq!(
            polling_interval(&g, Duration::from_secs(15)),
            Duration::from_secs(90)
        );
    }

    #[test]
    fn poll_decisions() {
        let interval = Duration::from_secs(15);
        let g = repo(1);
        let never = Observed::default();
        assert_eq!(
            poll_reason(&g, &never, Duration::ZERO, interval),
            Some(PollReason::First)
        );
        let polled = Observed {
            last_poll: Some(Duration::from_secs(100)),
            generation: 1,
            webhook_commit: String::new(),
        };
        assert_eq!(
            poll_reason(&g, &polled, Duration::from_secs(110), interval),
            None
        );
        assert_eq!(
            poll_reason(&g, &polled, Duration::from_secs(115), interval),
            Some(PollReason::Interval)
        );
        assert_eq!(
            until_next_poll(&polled, Duration::from_secs(110), interval),
            Duration::from_secs(5)
        );
        assert_eq!(
            poll_reason(&repo(2), &polled, Duration::from_secs(101), interval),
            Some(PollReason::SpecChanged)
        );
        let mut forced = repo(1);
        forced.spec.force_sync_generation = 3;
        assert_eq!(
            poll_reason(&forced, &polled, Duration::from_secs(101), interval),
            Some(PollReason::ForceSync)
        );
        let mut hooked = repo(1);
        hooked.status.as_mut().unwrap().webhook_commit = "abc".into();
        assert_eq!(
            poll_reason(&hooked, &polled, Duration::from_secs(101), interval),
            Some(PollReason::Webhook)
        );
        let acted = Observed {
            webhook_commit: "abc".into(),
            ..polled.clone()
        };
        assert_eq!(
            poll_reason(&hooked, &acted, Duration::from_secs(101), interval),
            None
        );
    }

    #[test]
    fn disabled_polling_only_reacts_to_changes() {
        let interval = Duration::from_secs(15);
        let mut g = repo(1);
        g.spec.disable_polling = true;
        let polled = Observed {
            last_poll: Some(Duration::ZERO),
            generation: 1,
            webhook_commit: String::new(),
        };
        assert_eq!(
            poll_reason(&g, &polled, Duration::from_secs(1000), interval),
            None
        );
        g.metadata.generation = Some(2);
        assert_eq!(
            poll_reason(&g, &polled, Duration::from_secs(1000), interval),
            Some(PollReason::SpecChanged)
        );
    }
}

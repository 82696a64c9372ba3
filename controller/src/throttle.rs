//! Spacing of status writes. A rollout changes each BundleDeployment several times within
//! seconds, and every change re-aggregates its Cluster and Bundle; writing each aggregate at
//! once would cost more API writes than the deployments themselves. Writes of one object are
//! spaced `interval` apart instead: the first change is written at once, later ones together
//! at most `interval` after it, so the status is never older than that.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When each object's status was last written.
#[derive(Debug)]
pub struct StatusWriteThrottle {
    interval: Duration,
    last_write: Mutex<HashMap<String, Instant>>,
}

impl StatusWriteThrottle {
    pub fn new(interval: Duration) -> Self {
        StatusWriteThrottle {
            interval,
            last_write: Mutex::new(HashMap::new()),
        }
    }

    /// How long the status of `key` must wait before it may be written at `now`; `None` when
    /// it may be written now.
    pub fn wait(&self, key: &str, now: Instant) -> Option<Duration> {
        let last = self.last_write.lock().ok()?.get(key).copied()?;
        let next = last + self.interval;
        (next > now).then(|| next - now)
    }

    /// Records a status write of `key` at `now`.
    pub fn wrote(&self, key: &str, now: Instant) {
        if self.interval.is_zero() {
            return;
        }
        if let Ok(mut last) = self.last_write.lock() {
            last.insert(key.to_string(), now);
        }
    }

    /// Forgets a deleted object.
    pub fn forget(&self, key: &str) {
        if let Ok(mut last) = self.last_write.lock() {
            last.remove(key);
        }
    }
}

/// Spacing of reconciles whose inputs did not change. A parent (a Bundle, a GitRepo) is
/// triggered by every status change of its BundleDeployments: thousands per rollout, each of
/// which would re-plan all of its clusters. When nothing but those statuses changed since a
/// reconcile that left no work behind, the next one waits until `interval` after it, and then
/// takes in every change since.
///
/// A reconcile whose own cost grows with the fleet (a GitRepo over 100,000 deployments) is
/// spaced by [`COST_SPACING`] times what it took instead, when that is longer — times what
/// it and every other object being re-reconciled this way took, so that ten bundles over
/// 10,000 clusters each do not take a tenth of the controller each, but a tenth together.
/// The share of the controller such parents take stays bounded at any size and any number
/// of them, and their status lags by at most that spacing.
#[derive(Debug)]
pub struct ReconcileThrottle {
    interval: Duration,
    last: Mutex<HashMap<String, Spaced>>,
}

/// The last settled reconcile of one object.
#[derive(Debug, Clone, Copy)]
struct Spaced {
    /// Hash of its inputs.
    inputs: u64,
    /// The earliest time of the next reconcile with the same inputs.
    next: Instant,
    /// What it took.
    cost: Duration,
}

/// How many times its own duration a reconcile with unchanged inputs waits at least.
pub const COST_SPACING: u32 = 10;

impl ReconcileThrottle {
    pub fn new(interval: Duration) -> Self {
        ReconcileThrottle {
            interval,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// How long the reconcile of `key`, whose inputs hash to `inputs`, should wait at `now`;
    /// `None` to reconcile now (inputs changed, spacing over, or never reconciled).
    pub fn wait(&self, key: &str, inputs: u64, now: Instant) -> Option<Duration> {
        let last = self.last.lock().ok()?.get(key).copied()?;
        if last.inputs != inputs {
            return None;
        }
        (last.next > now).then(|| last.next - now)
    }

    /// Records a reconcile of `key` with `inputs` that started at `started` and ends now. A
    /// reconcile that left work for the next one (`settled == false`, e.g. more deployments
    /// to create) is not recorded, so the next one runs at once.
    pub fn reconciled(&self, key: &str, inputs: u64, started: Instant, settled: bool) {
        let cost = Instant::now().saturating_duration_since(started);
        self.reconciled_with_cost(key, inputs, started, cost, settled);
    }

    /// [`ReconcileThrottle::reconciled`] for a reconcile that took `cost`.
    pub fn reconciled_with_cost(
        &self,
        key: &str,
        inputs: u64,
        started: Instant,
        cost: Duration,
        settled: bool,
    ) {
        if self.interval.is_zero() {
            return;
        }
        if let Ok(mut last) = self.last.lock() {
            if settled {
                // The others still re-reconciled for their children's sake: those whose next
                // turn is due, or was due less than an interval ago. One left alone drops out.
                let others = last
                    .iter()
                    .filter(|(other, spaced)| {
                        other.as_str() != key && spaced.next + self.interval > started
                    })
                    .fold(Duration::ZERO, |sum, (_, spaced)| {
                        sum.saturating_add(spaced.cost)
                    });
                let shared = cost.saturating_add(others);
                let spacing = self.interval.max(shared.saturating_mul(COST_SPACING));
                last.insert(
                    key.to_string(),
                    Spaced {
                        inputs,
                        next: started + spacing,
                        cost,
                    },
                );
            } else {
                last.remove(key);
            }
        }
    }

    /// Forgets a deleted object.
    pub fn forget(&self, key: &str) {
        if let Ok(mut last) = self.last.lock() {
            last.remove(key);
        }
    }
}

/// Reconciles already scheduled for the end of a throttle's wait. A throttled reconcile
/// returns `requeue(wait)`, but a trigger arriving meanwhile (a deployment change of the
/// Cluster, Bundle or GitRepo) would run it again at once, only to be told to wait again:
/// every BundleDeployment change then cost a reconcile of each of its parents. A trigger for
/// an object whose reconcile is scheduled is dropped instead, as that reconcile reads every
/// change since from the caches.
///
/// The reconcile forgets its schedule when it starts (before it reads the caches), so a
/// trigger dropped while the schedule stands is always followed by a read that sees its
/// change. A schedule overdue by [`SCHEDULE_GRACE`] (a reconcile that never came, e.g. of a
/// deleted object) no longer drops triggers.
#[derive(Debug, Default)]
pub struct ScheduledReconciles {
    due: Mutex<HashMap<String, Instant>>,
}

/// How long after its due time a schedule stops covering triggers.
pub const SCHEDULE_GRACE: Duration = Duration::from_secs(30);

impl ScheduledReconciles {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that the reconcile of `key` is requeued to run at `due`.
    pub fn schedule(&self, key: &str, due: Instant) {
        if let Ok(mut scheduled) = self.due.lock() {
            scheduled.insert(key.to_string(), due);
        }
    }

    /// The reconcile of `key` runs now: triggers from now on are needed again.
    pub fn start(&self, key: &str) {
        if let Ok(mut scheduled) = self.due.lock()
            && !scheduled.is_empty()
        {
            scheduled.remove(key);
        }
    }

    /// Whether a trigger of `key` at `now` may be dropped: its reconcile is scheduled and has
    /// not started.
    pub fn covers(&self, key: &str, now: Instant) -> bool {
        self.due
            .lock()
            .ok()
            .and_then(|scheduled| scheduled.get(key).copied())
            .is_some_and(|due| now < due + SCHEDULE_GRACE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_inputs_wait_out_the_interval_and_changed_ones_do_not() {
        let throttle = ReconcileThrottle::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(throttle.wait("ns/a", 1, t0), None);
        throttle.reconciled("ns/a", 1, t0, true);
        assert_eq!(
            throttle.wait("ns/a", 1, t0 + Duration::from_millis(400)),
            Some(Duration::from_millis(600))
        );
        assert_eq!(throttle.wait("ns/a", 2, t0), None, "inputs changed");
        assert_eq!(
            throttle.wait("ns/b", 1, t0),
            None,
            "objects are independent"
        );
        assert_eq!(throttle.wait("ns/a", 1, t0 + Duration::from_secs(1)), None);
        // Work left behind: the next reconcile is not held back.
        throttle.reconciled("ns/a", 1, t0, false);
        assert_eq!(throttle.wait("ns/a", 1, t0), None);
        throttle.reconciled("ns/a", 1, t0, true);
        throttle.forget("ns/a");
        assert_eq!(throttle.wait("ns/a", 1, t0), None);
        let never = ReconcileThrottle::new(Duration::ZERO);
        never.reconciled("ns/a", 1, t0, true);
        assert_eq!(never.wait("ns/a", 1, t0), None);
    }

    #[test]
    fn a_costly_reconcile_is_spaced_by_its_cost() {
        let throttle = ReconcileThrottle::new(Duration::from_secs(1));
        let t0 = Instant::now();
        throttle.reconciled_with_cost("ns/a", 1, t0, Duration::from_millis(300), true);
        assert_eq!(
            throttle.wait("ns/a", 1, t0 + Duration::from_secs(1)),
            Some(Duration::from_secs(2)),
            "300 ms of work: the next one waits until 3 s after the start"
        );
        assert_eq!(throttle.wait("ns/a", 1, t0 + Duration::from_secs(3)), None);
        assert_eq!(
            throttle.wait("ns/a", 2, t0 + Duration::from_secs(1)),
            None,
            "changed inputs are never held back"
        );
        let throttle = ReconcileThrottle::new(Duration::from_secs(1));
        throttle.reconciled_with_cost("ns/b", 1, t0, Duration::from_millis(20), true);
        assert_eq!(
            throttle.wait("ns/b", 1, t0 + Duration::from_millis(500)),
            Some(Duration::from_millis(500)),
            "a cheap reconcile waits the interval"
        );
    }

    #[test]
    fn costly_reconciles_of_several_objects_share_one_spacing_budget() {
        let throttle = ReconcileThrottle::new(Duration::from_secs(1));
        let t0 = Instant::now();
        let cost = Duration::from_millis(150);
        throttle.reconciled_with_cost("ns/a", 1, t0, cost, true);
        assert_eq!(
            throttle.wait("ns/a", 1, t0),
            Some(Duration::from_millis(1500)),
            "alone: ten times its own cost"
        );
        throttle.reconciled_with_cost("ns/b", 1, t0, cost, true);
        assert_eq!(
            throttle.wait("ns/b", 1, t0),
            Some(Duration::from_secs(3)),
            "with a's 150 ms: ten times both"
        );
        throttle.reconciled_with_cost("ns/c", 1, t0, Duration::from_millis(1), true);
        assert_eq!(
            throttle.wait("ns/c", 1, t0),
            Some(Duration::from_millis(3010)),
            "a cheap one waits its turn behind the costly ones too"
        );
        // a's turn was due at 1.5 s and it was not reconciled again for more than an interval:
        // it no longer counts against b.
        let later = t0 + Duration::from_secs(3);
        throttle.reconciled_with_cost("ns/b", 1, later, cost, true);
        assert_eq!(
            throttle.wait("ns/b", 1, later),
            Some(Duration::from_millis(1510)),
            "b with c's 1 ms only"
        );
        assert_eq!(
            throttle.wait("ns/b", 2, later),
            None,
            "changed inputs are never held back"
        );
    }

    #[test]
    fn first_write_is_immediate_and_later_ones_wait_out_the_interval() {
        let throttle = StatusWriteThrottle::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(throttle.wait("ns/a", t0), None);
        throttle.wrote("ns/a", t0);
        assert_eq!(
            throttle.wait("ns/a", t0 + Duration::from_millis(300)),
            Some(Duration::from_millis(700))
        );
        assert_eq!(throttle.wait("ns/b", t0), None, "objects are independent");
        assert_eq!(throttle.wait("ns/a", t0 + Duration::from_secs(1)), None);
        throttle.forget("ns/a");
        assert_eq!(throttle.wait("ns/a", t0), None);
    }

    #[test]
    fn a_scheduled_reconcile_covers_triggers_until_it_starts() {
        let scheduled = ScheduledReconciles::new();
        let t0 = Instant::now();
        assert!(!scheduled.covers("ns/a", t0), "nothing scheduled");
        scheduled.schedule("ns/a", t0 + Duration::from_millis(700));
        assert!(scheduled.covers("ns/a", t0));
        assert!(
            scheduled.covers("ns/a", t0 + Duration::from_secs(1)),
            "a late reconcile still comes"
        );
        assert!(!scheduled.covers("ns/b", t0), "objects are independent");
        assert!(
            !scheduled.covers("ns/a", t0 + Duration::from_millis(700) + SCHEDULE_GRACE),
            "a reconcile that never came no longer drops triggers"
        );
        scheduled.start("ns/a");
        assert!(
            !scheduled.covers("ns/a", t0),
            "started: triggers count again"
        );
    }

    #[test]
    fn a_zero_interval_never_waits() {
        let throttle = StatusWriteThrottle::new(Duration::ZERO);
        let t0 = Instant::now();
        throttle.wrote("ns/a", t0);
        assert_eq!(throttle.wait("ns/a", t0), None);
    }
}

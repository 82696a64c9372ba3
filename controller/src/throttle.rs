//! Spacing of status writes. A rollout changes each BundleDeployment several times within
//! seconds, and every change re-aggregates its Cluster and Bundle; writing each aggregate at
//! once would cost more API writes than the deployments themselves. Writes of one object are
//! spaced `interval` apart instead: the first change is written at once, later ones together
//! at most `interval` after it, so the status is never older than that.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When each object's status was last written, and (with a write budget) the slots reserved
/// for writes that exceeded it.
#[derive(Debug)]
pub struct StatusWriteThrottle {
    interval: Duration,
    budget: Option<WriteBudget>,
    state: Mutex<ThrottleState>,
}

/// A rate shared by every object's status writes: `per_second` on average, up to one second's
/// worth at once. A Cluster's status changes with each of its deployments; at 10,000 clusters a
/// rollout changes thousands of them a second, and writing each at its own interval cost more
/// writes than the deployments themselves. Over the budget, a write waits for a reserved slot
/// and then carries every change since, so the statuses lag more the larger the fleet, and the
/// API server's load from them stays bounded.
#[derive(Debug, Clone, Copy)]
struct WriteBudget {
    /// Time between two writes at the budgeted rate.
    emission: Duration,
    /// How far ahead of now the schedule may run before writes wait (the burst).
    tolerance: Duration,
}

#[derive(Debug, Default)]
struct ThrottleState {
    last_write: HashMap<String, Instant>,
    /// Objects whose write waits for a slot: when it is theirs.
    reserved: HashMap<String, Instant>,
    /// The budget's theoretical arrival time (GCRA): when the schedule is next free.
    next_free: Option<Instant>,
}

impl StatusWriteThrottle {
    pub fn new(interval: Duration) -> Self {
        StatusWriteThrottle {
            interval,
            budget: None,
            state: Mutex::new(ThrottleState::default()),
        }
    }

    /// A throttle whose objects also share `per_second` writes a second (0: no shared limit).
    pub fn with_budget(interval: Duration, per_second: u32) -> Self {
        let budget = (per_second > 0).then(|| WriteBudget {
            emission: Duration::from_secs(1) / per_second,
            tolerance: Duration::from_secs(1),
        });
        StatusWriteThrottle {
            budget,
            ..Self::new(interval)
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ThrottleState> {
        // Plain maps of instants: a panic elsewhere cannot leave them half-written.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long the status of `key` must wait before it may be written at `now`; `None` when
    /// it may be written now.
    pub fn wait(&self, key: &str, now: Instant) -> Option<Duration> {
        let last = self.state().last_write.get(key).copied()?;
        let next = last + self.interval;
        (next > now).then(|| next - now)
    }

    /// Like [`StatusWriteThrottle::wait`], and within the shared budget: `None` when `key` may
    /// be written now (its interval is over, and the budget has room or its reserved slot has
    /// come); otherwise how long to wait. A write over the budget reserves the next free slot,
    /// so a wait is only ever answered with a later wait by the object's own interval.
    pub fn reserve(&self, key: &str, now: Instant) -> Option<Duration> {
        let mut state = self.state();
        if let Some(&slot) = state.reserved.get(key) {
            if slot > now {
                return Some(slot - now);
            }
            state.reserved.remove(key);
            return None;
        }
        if let Some(&last) = state.last_write.get(key) {
            let next = last + self.interval;
            if next > now {
                return Some(next - now);
            }
        }
        let budget = self.budget?;
        let free = state.next_free.map_or(now, |free| free.max(now));
        state.next_free = Some(free + budget.emission);
        let slot = free.checked_sub(budget.tolerance).unwrap_or(now).max(now);
        if slot <= now {
            return None;
        }
        state.reserved.insert(key.to_string(), slot);
        Some(slot - now)
    }

    /// Records a status write of `key` at `now`.
    pub fn wrote(&self, key: &str, now: Instant) {
        if self.interval.is_zero() {
            return;
        }
        self.state().last_write.insert(key.to_string(), now);
    }

    /// Forgets a deleted object.
    pub fn forget(&self, key: &str) {
        let mut state = self.state();
        state.last_write.remove(key);
        state.reserved.remove(key);
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
    last: Mutex<SpacedObjects>,
}

/// The objects' last settled reconciles, and the sum of the costs of those still being
/// re-reconciled. The sum is kept as reconciles are recorded and counted again from every
/// object at most every [`COST_RECOUNT`] (objects drop out of it as time passes): adding it up
/// on every reconcile was a scan of 10,000 agent bundles each time.
#[derive(Debug, Default)]
struct SpacedObjects {
    objects: HashMap<String, Spaced>,
    /// When `active_cost` was last counted from every object, and what it was then.
    counted: Option<Instant>,
    active_cost: Duration,
}

/// How often the cost of the objects still being re-reconciled is counted again.
const COST_RECOUNT: Duration = Duration::from_millis(100);

impl SpacedObjects {
    /// Whether `spaced` still counts against the others at `at`: its next turn is due, or was
    /// due less than `interval` ago.
    fn is_active(spaced: &Spaced, at: Instant, interval: Duration) -> bool {
        spaced.next + interval > at
    }

    /// The cost of every object still being re-reconciled at `at`.
    fn active_cost(&mut self, at: Instant, interval: Duration) -> Duration {
        let fresh = self.counted.is_some_and(|counted| {
            at.saturating_duration_since(counted) < COST_RECOUNT
                && counted.saturating_duration_since(at) < COST_RECOUNT
        });
        if !fresh {
            self.active_cost = self
                .objects
                .values()
                .filter(|spaced| Self::is_active(spaced, at, interval))
                .fold(Duration::ZERO, |sum, spaced| {
                    sum.saturating_add(spaced.cost)
                });
            self.counted = Some(at);
        }
        self.active_cost
    }

    /// Replaces (`Some`) or removes (`None`) the entry of `key`, keeping the sum of the
    /// active costs as of `at`.
    fn set(&mut self, key: &str, spaced: Option<Spaced>, at: Instant, interval: Duration) {
        let old = match spaced {
            Some(spaced) => {
                self.active_cost = self.active_cost.saturating_add(spaced.cost);
                self.objects.insert(key.to_string(), spaced)
            }
            None => self.objects.remove(key),
        };
        if let Some(old) = old
            && Self::is_active(&old, at, interval)
        {
            self.active_cost = self.active_cost.saturating_sub(old.cost);
        }
    }
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
            last: Mutex::new(SpacedObjects::default()),
        }
    }

    /// How long the reconcile of `key`, whose inputs hash to `inputs`, should wait at `now`;
    /// `None` to reconcile now (inputs changed, spacing over, or never reconciled).
    pub fn wait(&self, key: &str, inputs: u64, now: Instant) -> Option<Duration> {
        let last = self.last.lock().ok()?.objects.get(key).copied()?;
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
                let all = last.active_cost(started, self.interval);
                let own = last
                    .objects
                    .get(key)
                    .filter(|spaced| SpacedObjects::is_active(spaced, started, self.interval))
                    .map_or(Duration::ZERO, |spaced| spaced.cost);
                let others = all.saturating_sub(own);
                let shared = cost.saturating_add(others);
                let spacing = self.interval.max(shared.saturating_mul(COST_SPACING));
                let spaced = Spaced {
                    inputs,
                    next: started + spacing,
                    cost,
                };
                last.set(key, Some(spaced), started, self.interval);
            } else {
                last.set(key, None, started, self.interval);
            }
        }
    }

    /// Forgets a deleted object.
    pub fn forget(&self, key: &str) {
        if let Ok(mut last) = self.last.lock() {
            last.set(key, None, Instant::now(), self.interval);
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
    fn writes_over_the_shared_budget_wait_for_slots_of_their_own() {
        // 10 writes a second, up to a second's worth at once.
        let throttle = StatusWriteThrottle::with_budget(Duration::from_secs(1), 10);
        let t0 = Instant::now();
        let keys: Vec<String> = (0..30).map(|i| format!("ns/c{i}")).collect();
        let waits: Vec<Option<Duration>> = keys.iter().map(|k| throttle.reserve(k, t0)).collect();
        let at_once = waits.iter().filter(|w| w.is_none()).count();
        assert_eq!(at_once, 11, "the burst: a second's worth (and the first)");
        let mut slots: Vec<Duration> = waits.iter().flatten().copied().collect();
        slots.dedup();
        assert_eq!(
            slots.len(),
            19,
            "every write over the budget has a slot of its own"
        );
        assert_eq!(slots[0], Duration::from_millis(100));
        assert_eq!(slots[18], Duration::from_millis(1900));
        // Asking again before the slot answers the same slot, and does not take another.
        assert_eq!(
            throttle.reserve(&keys[12], t0 + Duration::from_millis(50)),
            Some(Duration::from_millis(150))
        );
        // At its slot the write goes, once.
        assert_eq!(
            throttle.reserve(&keys[12], t0 + Duration::from_millis(200)),
            None
        );
        throttle.wrote(&keys[12], t0 + Duration::from_millis(200));
        assert_eq!(
            throttle.reserve(&keys[12], t0 + Duration::from_millis(300)),
            Some(Duration::from_millis(900)),
            "then its own interval applies"
        );
        // The next object in line waits behind all 19 reserved slots.
        assert_eq!(
            throttle.reserve("ns/late", t0),
            Some(Duration::from_secs(2))
        );
        // A deleted object gives its slot up.
        throttle.forget(&keys[20]);
        assert_eq!(
            throttle.reserve(&keys[20], t0),
            Some(Duration::from_millis(2100))
        );
        // Without a budget only the interval counts.
        let unlimited = StatusWriteThrottle::with_budget(Duration::from_secs(1), 0);
        assert!(keys.iter().all(|k| unlimited.reserve(k, t0).is_none()));
    }

    #[test]
    fn a_quiet_budget_refills() {
        let throttle = StatusWriteThrottle::with_budget(Duration::from_secs(1), 2);
        let t0 = Instant::now();
        assert_eq!(throttle.reserve("ns/a", t0), None);
        assert_eq!(throttle.reserve("ns/b", t0), None);
        assert_eq!(throttle.reserve("ns/c", t0), None);
        assert_eq!(
            throttle.reserve("ns/d", t0),
            Some(Duration::from_millis(500))
        );
        // Long after, a burst is allowed again.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(throttle.reserve("ns/e", later), None);
        assert_eq!(throttle.reserve("ns/f", later), None);
        assert_eq!(throttle.reserve("ns/g", later), None);
    }

    #[test]
    fn a_zero_interval_never_waits() {
        let throttle = StatusWriteThrottle::new(Duration::ZERO);
        let t0 = Instant::now();
        throttle.wrote("ns/a", t0);
        assert_eq!(throttle.wait("ns/a", t0), None);
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_zero_interval_never_waits() {
        let throttle = StatusWriteThrottle::new(Duration::ZERO);
        let t0 = Instant::now();
        throttle.wrote("ns/a", t0);
        assert_eq!(throttle.wait("ns/a", t0), None);
    }
}

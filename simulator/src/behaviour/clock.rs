//! Simulated time: `Duration` since cluster start, written into objects as RFC 3339 timestamps.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

/// Maps simulated time (since cluster start) to wall-clock timestamps and back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    origin: DateTime<Utc>,
}

impl WallClock {
    /// Cluster start is the current wall-clock time (so `kubectl get` ages look right).
    pub fn starting_now() -> Self {
        Self { origin: Utc::now() }
    }

    /// Cluster start at a fixed instant (tests, reproducible runs).
    pub fn starting_at(origin: DateTime<Utc>) -> Self {
        Self { origin }
    }

    pub fn origin(&self) -> DateTime<Utc> {
        self.origin
    }

    pub fn instant(&self, at: Duration) -> DateTime<Utc> {
        chrono::Duration::from_std(at)
            .ok()
            .and_then(|offset| self.origin.checked_add_signed(offset))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// `metav1.Time` format: RFC 3339, whole seconds, `Z`.
    pub fn timestamp(&self, at: Duration) -> String {
        self.instant(at).to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// The simulated time a timestamp written by [`WallClock::timestamp`] stands for; instants
    /// before cluster start map to zero.
    pub fn since_start(&self, timestamp: &str) -> Option<Duration> {
        let instant = DateTime::parse_from_rfc3339(timestamp)
            .ok()?
            .with_timezone(&Utc);
        Some((instant - self.origin).to_std().unwrap_or(Duration::ZERO))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_to_whole_seconds_since_start() {
        let clock = WallClock::starting_at(
            DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
                .unwrap()
                .to_utc(),
        );
        assert_eq!(
            clock.timestamp(Duration::from_millis(61_500)),
            "2026-01-02T03:05:06Z"
        );
        assert_eq!(
            clock.since_start("2026-01-02T03:05:06Z"),
            Some(Duration::from_secs(61))
        );
        assert_eq!(
            clock.since_start("2025-01-01T00:00:00Z"),
            Some(Duration::ZERO)
        );
        assert_eq!(clock.since_start("yesterday"), None);
    }
}

//! Bundle states and Fleet's ranking of them (`StateRank`).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// State of a BundleDeployment as summarised for Bundles, GitRepos, Clusters and ClusterGroups.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, PartialOrd, Ord,
)]
pub enum BundleState {
    /// Deployed and all resources are ready.
    Ready,
    /// Deployed, but some resources are not ready.
    NotReady,
    /// Being processed by the controller (counted by rollout and targeting only).
    Pending,
    /// The agent has not applied the latest deployment yet.
    OutOfSync,
    /// Deployed and ready, but resources were changed outside of Fleet.
    Modified,
    /// Waiting to be applied by the agent.
    WaitApplied,
    /// The agent failed to apply the deployment.
    ErrApplied,
}

impl BundleState {
    /// Every state, from lowest to highest rank.
    pub const ALL: [BundleState; 7] = [
        BundleState::Ready,
        BundleState::NotReady,
        BundleState::Pending,
        BundleState::OutOfSync,
        BundleState::Modified,
        BundleState::WaitApplied,
        BundleState::ErrApplied,
    ];

    /// Fleet's `StateRank`: ErrApplied 7 > WaitApplied 6 > Modified 5 > OutOfSync 4 > Pending 3 >
    /// NotReady 2 > Ready 1. The most severe state of several is the one reported.
    pub fn rank(self) -> u8 {
        match self {
            BundleState::ErrApplied => 7,
            BundleState::WaitApplied => 6,
            BundleState::Modified => 5,
            BundleState::OutOfSync => 4,
            BundleState::Pending => 3,
            BundleState::NotReady => 2,
            BundleState::Ready => 1,
        }
    }

    /// The name as Fleet writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            BundleState::Ready => "Ready",
            BundleState::NotReady => "NotReady",
            BundleState::Pending => "Pending",
            BundleState::OutOfSync => "OutOfSync",
            BundleState::Modified => "Modified",
            BundleState::WaitApplied => "WaitApplied",
            BundleState::ErrApplied => "ErrApplied",
        }
    }

    /// Parses a state name as Fleet writes it; `None` for anything else (e.g. `GitUpdating`).
    pub fn parse(name: &str) -> Option<BundleState> {
        BundleState::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for BundleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The highest-ranked state of `states`, or `None` when there is none.
pub fn highest_state<I>(states: I) -> Option<BundleState>
where
    I: IntoIterator<Item = BundleState>,
{
    states.into_iter().max_by_key(|s| s.rank())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranking_matches_fleet_state_rank() {
        let ranks: Vec<(BundleState, u8)> =
            BundleState::ALL.iter().map(|s| (*s, s.rank())).collect();
        assert_eq!(
            ranks,
            vec![
                (BundleState::Ready, 1),
                (BundleState::NotReady, 2),
                (BundleState::Pending, 3),
                (BundleState::OutOfSync, 4),
                (BundleState::Modified, 5),
                (BundleState::WaitApplied, 6),
                (BundleState::ErrApplied, 7),
            ]
        );
    }

    #[test]
    fn ord_follows_rank() {
        for a in BundleState::ALL {
            for b in BundleState::ALL {
                assert_eq!(a.cmp(&b), a.rank().cmp(&b.rank()), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn highest_state_picks_the_most_severe() {
        use BundleState::*;
        assert_eq!(highest_state([Ready, Modified, NotReady]), Some(Modified));
        assert_eq!(
            highest_state([Pending, ErrApplied, WaitApplied]),
            Some(ErrApplied)
        );
        assert_eq!(highest_state([OutOfSync, Pending]), Some(OutOfSync));
        assert_eq!(highest_state(Vec::new()), None);
    }

    #[test]
    fn names_round_trip() {
        for s in BundleState::ALL {
            assert_eq!(BundleState::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        assert_eq!(BundleState::parse("GitUpdating"), None);
    }
}

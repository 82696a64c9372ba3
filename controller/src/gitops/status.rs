//! The GitRepo status the reconciler wants, as a pure function of the previous status, what
//! the reconcile learned (acceptance, fetch, build) and the observed Bundles and
//! BundleDeployments. Conditions keep their timestamps unless they change, so an unchanged
//! world gives an identical status and no write (Fleet issue #3484).

use fleet_api::consts::condition::{
    ACCEPTED, FALSE, GIT_POLLING, READY, RECONCILING, STALLED, TRUE,
};
use fleet_api::consts::{DISPLAY_STATE_GIT_UPDATING, GIT_JOB_STATUS_CURRENT};
use fleet_api::{Bundle, BundleDeployment, BundleSummary, GenericCondition, GitRepoStatus};

use crate::resourcestatus;

/// `gitJobStatus` after a failed bundle build (kstatus' Failed).
pub const GIT_JOB_STATUS_FAILED: &str = "Failed";
/// `gitJobStatus` while a git job runs (kstatus' InProgress).
pub const GIT_JOB_STATUS_IN_PROGRESS: &str = "InProgress";

/// Sets condition `type_` to `status`/`reason`/`message`. `lastUpdateTime` moves only when
/// one of them changes, `lastTransitionTime` only when `status` changes.
pub fn set_condition(
    conditions: &mut Vec<GenericCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &str,
) {
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = now.to_string();
            }
            if c.status != status || c.reason != reason || c.message != message {
                c.status = status.to_string();
                c.reason = reason.to_string();
                c.message = message.to_string();
                c.last_update_time = now.to_string();
            }
        }
        None => conditions.push(GenericCondition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            last_update_time: now.to_string(),
            last_transition_time: now.to_string(),
        }),
    }
}

/// Wrangler's `SetError`: True without message, or False with reason `Error` and the message.
pub fn set_error_condition(
    conditions: &mut Vec<GenericCondition>,
    type_: &str,
    error: Option<&str>,
    now: &str,
) {
    match error {
        None => set_condition(conditions, type_, TRUE, "", "", now),
        Some(msg) => set_condition(conditions, type_, FALSE, "Error", msg, now),
    }
}

/// Fleet's `ReadyMessage` for the GitRepo Ready condition (non-ready deployments referred to
/// as `Bundle <name>`), shared with the other status writers.
pub fn ready_message(summary: &BundleSummary) -> String {
    crate::summary::ready_message(summary)
}

/// What one reconcile learned about the repository.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Learned {
    /// `metadata.generation` of the GitRepo.
    pub generation: i64,
    /// `spec.forceSyncGeneration` that was acted on.
    pub force_sync_generation: i64,
    /// The commit the repository points to (last successful fetch), if known.
    pub commit: Option<String>,
    /// Whether the last fetch failed, and why.
    pub fetch_error: Option<String>,
    /// Whether the bundles of the current commit failed to build, and why.
    pub build_error: Option<String>,
    /// Whether the bundles of the current commit are built and written (job mode: the git
    /// job completed).
    pub built: bool,
    /// Job mode: `gitJobStatus` of the current git job (kstatus of the Job).
    pub git_job: Option<String>,
    /// Time of this reconcile's poll, when it polled (RFC 3339).
    pub polled_at: Option<String>,
}

/// The first Bundle of the repo whose Ready condition is False (Fleet's
/// `setReadyStatusFromBundle`: targeting errors exist only there, as no BundleDeployment is
/// created for them).
fn not_ready_bundle_condition(bundles: &[Bundle]) -> Option<GenericCondition> {
    let mut sorted: Vec<&Bundle> = bundles.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    sorted.into_iter().find_map(|b| {
        b.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == READY && c.is_false())
                .cloned()
        })
    })
}

/// The status of an accepted GitRepo.
pub fn desired_status(
    previous: &GitRepoStatus,
    learned: &Learned,
    bundles: &[Bundle],
    deployments: &[impl std::borrow::Borrow<BundleDeployment>],
    now: &str,
) -> GitRepoStatus {
    let mut status = previous.clone();
    resourcestatus::set_status_from_deployments(deployments, &mut status.base);
    if let Some(commit) = &learned.commit {
        status.commit = commit.clone();
    }
    status.observed_generation = learned.generation;
    status.update_generation = learned.force_sync_generation;
    let conditions = &mut status.base.conditions;
    set_error_condition(conditions, ACCEPTED, None, now);
    set_error_condition(conditions, GIT_POLLING, learned.fetch_error.as_deref(), now);
    if learned.polled_at.is_some()
        && (previous.commit != status.commit
            || previous
                .base
                .conditions
                .iter()
                .find(|c| c.type_ == GIT_POLLING)
                != conditions.iter().find(|c| c.type_ == GIT_POLLING))
    {
        // Recorded when the poll changed something, not on every no-op poll: a status write
        // per GitRepo every 15 s is churn for every watcher of GitRepos.
        status.last_polling_time = learned
            .polled_at
            .as_ref()
            .map(|t| k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(parse_time(t)));
    }
    match &learned.build_error {
        Some(msg) => {
            status.git_job_status = GIT_JOB_STATUS_FAILED.to_string();
            set_condition(conditions, RECONCILING, FALSE, "", "", now);
            set_condition(conditions, STALLED, TRUE, "Error", msg, now);
        }
        None if learned.built => {
            status.git_job_status = GIT_JOB_STATUS_CURRENT.to_string();
            set_condition(conditions, RECONCILING, FALSE, "", "", now);
            set_condition(conditions, STALLED, FALSE, "", "", now);
        }
        None => match learned.git_job.as_deref() {
            Some(GIT_JOB_STATUS_IN_PROGRESS) => {
                // kstatus' SetTransitioning: the git job is running.
                status.git_job_status = GIT_JOB_STATUS_IN_PROGRESS.to_string();
                set_condition(conditions, RECONCILING, TRUE, "", "", now);
                set_condition(conditions, STALLED, FALSE, "", "", now);
            }
            Some(other) => {
                status.git_job_status = other.to_string();
                set_condition(conditions, RECONCILING, FALSE, "", "", now);
                set_condition(conditions, STALLED, FALSE, "", "", now);
            }
            None => {}
        },
    }

    // Ready: the most actionable problem first.
    let bundle_condition = not_ready_bundle_condition(bundles);
    if let Some(msg) = &learned.fetch_error {
        set_error_condition(conditions, READY, Some(msg), now);
    } else if let Some(msg) = &learned.build_error {
        set_error_condition(conditions, READY, Some(msg), now);
    } else if let Some(c) = bundle_condition {
        set_condition(conditions, READY, &c.status, &c.reason, &c.message, now);
    } else if status.base.summary.is_ready() {
        set_error_condition(conditions, READY, None, now);
    } else {
        let msg = ready_message(&status.base.summary);
        set_error_condition(conditions, READY, Some(&msg), now);
    }

    if status.git_job_status != GIT_JOB_STATUS_CURRENT {
        status.base.display.state = DISPLAY_STATE_GIT_UPDATING.to_string();
    }
    if let Some(msg) = learned
        .fetch_error
        .as_ref()
        .or(learned.build_error.as_ref())
    {
        status.base.display.message = msg.clone();
        status.base.display.error = true;
    }
    status
}

/// The status of a GitRepo a GitRepoRestriction rejects: `Accepted=False` with the reason,
/// everything else as it was.
pub fn rejected_status(previous: &GitRepoStatus, reason: &str, now: &str) -> GitRepoStatus {
    let mut status = previous.clone();
    set_error_condition(&mut status.base.conditions, ACCEPTED, Some(reason), now);
    set_error_condition(&mut status.base.conditions, READY, Some(reason), now);
    status.base.display.message = reason.to_string();
    status.base.display.error = true;
    status
}

fn parse_time(rfc3339: &str) -> k8s_openapi::jiff::Timestamp {
    rfc3339
        .parse()
        .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::BundleStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    const NO_DEPLOYMENTS: &[BundleDeployment] = &[];

    fn cond<'a>(s: &'a GitRepoStatus, t: &str) -> &'a GenericCondition {
        s.base.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    fn learned() -> Learned {
        Learned {
            generation: 1,
            commit: Some("abc".into()),
            built: true,
            ..Default::default()
        }
    }

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let mut c = Vec::new();
        set_condition(&mut c, "Ready", "False", "Error", "a", "t1");
        set_condition(&mut c, "Ready", "False", "Error", "b", "t2");
        assert_eq!(c[0].last_transition_time, "t1");
        assert_eq!(c[0].last_update_time, "t2");
        set_condition(&mut c, "Ready", "False", "Error", "b", "t3");
        assert_eq!(c[0].last_update_time, "t2");
        set_condition(&mut c, "Ready", "True", "", "", "t4");
        assert_eq!(c[0].last_transition_time, "t4");
        assert_eq!(c[0].message, "");
    }

    #[test]
    fn same_inputs_give_the_same_status() {
        let first = desired_status(
            &GitRepoStatus::default(),
            &learned(),
            &[],
            NO_DEPLOYMENTS,
            "t1",
        );
        let second = desired_status(&first, &learned(), &[], NO_DEPLOYMENTS, "t2");
        assert_eq!(first, second);
        assert_eq!(first.commit, "abc");
        assert_eq!(cond(&first, READY).status, TRUE);
        assert_eq!(cond(&first, ACCEPTED).status, TRUE);
        assert_eq!(cond(&first, GIT_POLLING).status, TRUE);
        assert_eq!(first.git_job_status, "Current");
        assert_eq!(first.base.display.ready_bundle_deployments, "0/0");
        assert_eq!(first.base.display.state, "");
    }

    #[test]
    fn fetch_errors_show_in_git_polling_and_ready() {
        let mut l = learned();
        l.fetch_error = Some("git repository https://x: fetching: boom".into());
        let s = desired_status(&GitRepoStatus::default(), &l, &[], NO_DEPLOYMENTS, "t");
        assert_eq!(cond(&s, GIT_POLLING).status, FALSE);
        assert_eq!(
            cond(&s, GIT_POLLING).message,
            "git repository https://x: fetching: boom"
        );
        assert_eq!(cond(&s, READY).status, FALSE);
        assert!(s.base.display.error);
    }

    #[test]
    fn build_errors_stall_and_mark_git_updating() {
        let mut l = learned();
        l.built = false;
        l.build_error = Some("bundle repo-bad (folder bad): bad/fleet.yaml: oops".into());
        let s = desired_status(&GitRepoStatus::default(), &l, &[], NO_DEPLOYMENTS, "t");
        assert_eq!(cond(&s, STALLED).status, TRUE);
        assert_eq!(cond(&s, READY).message, l.build_error.clone().unwrap());
        assert_eq!(s.git_job_status, "Failed");
        assert_eq!(s.base.display.state, "GitUpdating");
    }

    #[test]
    fn a_targeting_error_on_a_bundle_is_copied() {
        let mut b = Bundle::new("repo-app", Default::default());
        b.metadata = ObjectMeta {
            name: Some("repo-app".into()),
            ..Default::default()
        };
        b.status = Some(BundleStatus {
            conditions: vec![GenericCondition {
                reason: "Error".into(),
                message: "Targeting error: cluster c1 in namespace fleet-default: missing label"
                    .into(),
                ..GenericCondition::new("Ready", "False")
            }],
            ..Default::default()
        });
        let s = desired_status(
            &GitRepoStatus::default(),
            &learned(),
            &[b],
            NO_DEPLOYMENTS,
            "t",
        );
        assert_eq!(cond(&s, READY).status, FALSE);
        assert!(
            cond(&s, READY)
                .message
                .starts_with("Targeting error: cluster c1")
        );
    }

    #[test]
    fn rejection_sets_accepted_false() {
        let s = rejected_status(&GitRepoStatus::default(), "disallowed repo x", "t");
        assert_eq!(cond(&s, ACCEPTED).status, FALSE);
        assert_eq!(cond(&s, ACCEPTED).message, "disallowed repo x");
        assert_eq!(cond(&s, ACCEPTED).reason, "Error");
    }
}

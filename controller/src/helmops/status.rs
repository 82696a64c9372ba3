//! The HelmOp status the reconciler wants, as a pure function of the previous status, what the
//! reconcile learned about the chart version, and the observed Bundle and BundleDeployments:
//! the GitRepo-style block (`readyClusters`, `summary`, `display`, `resources`,
//! `resourceCounts`, `perClusterResourceCounts`) from [`crate::resourcestatus`], plus `version`
//! and the `Accepted`, `Polled` and `Ready` conditions.

use fleet_api::consts::condition::{ACCEPTED, READY};
use fleet_api::{Bundle, BundleDeployment, HelmOpStatus};

use crate::gitops::status::{ready_message, set_condition, set_error_condition};
use crate::resourcestatus;

/// Fleet v0.13's condition of the version polling (`HelmOpPolledCondition`).
pub const POLLED: &str = "Polled";

/// What the controller tells users when HelmOps is off.
pub const DISABLED_MESSAGE: &str = "HelmOps is disabled: this HelmOp is not deployed. Start the controller with --enable-helmops (or the environment variable EXPERIMENTAL_HELM_OPS=true) to enable it";

/// What one reconcile learned about the chart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Learned {
    /// The chart version the Bundle deploys (last successful resolution).
    pub version: Option<String>,
    /// Why resolving the version, reading the credentials or writing the Bundle failed.
    pub error: Option<String>,
    /// Whether the version is polled (a constraint with a polling interval).
    pub polling: bool,
}

/// The Ready=False condition of the Bundle, if it has one (targeting errors exist only there).
fn not_ready_bundle_condition(bundle: Option<&Bundle>) -> Option<fleet_api::GenericCondition> {
    bundle
        .and_then(|b| b.status.as_ref())
        .and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == READY && c.is_false())
        })
        .cloned()
}

/// The status of an enabled, reconciled HelmOp.
pub fn desired_status(
    previous: &HelmOpStatus,
    learned: &Learned,
    bundle: Option<&Bundle>,
    deployments: &[BundleDeployment],
    now: &str,
) -> HelmOpStatus {
    let mut status = previous.clone();
    resourcestatus::set_status_from_deployments(deployments, &mut status.base);
    if let Some(v) = &learned.version {
        status.version = v.clone();
    }
    let conditions = &mut status.base.conditions;
    set_error_condition(conditions, ACCEPTED, learned.error.as_deref(), now);
    if learned.polling {
        set_error_condition(conditions, POLLED, learned.error.as_deref(), now);
    } else {
        conditions.retain(|c| c.type_ != POLLED);
    }
    if let Some(msg) = &learned.error {
        set_error_condition(conditions, READY, Some(msg), now);
        status.base.display.message = msg.clone();
        status.base.display.error = true;
    } else if let Some(c) = not_ready_bundle_condition(bundle) {
        set_condition(conditions, READY, &c.status, &c.reason, &c.message, now);
    } else if status.base.summary.is_ready() {
        set_error_condition(conditions, READY, None, now);
    } else {
        let msg = ready_message(&status.base.summary);
        set_error_condition(conditions, READY, Some(&msg), now);
    }
    status
}

/// The status of a HelmOp while HelmOps is disabled: not accepted, not ready, with how to
/// enable it; everything else as it was.
pub fn disabled_status(previous: &HelmOpStatus, now: &str) -> HelmOpStatus {
    let mut status = previous.clone();
    let conditions = &mut status.base.conditions;
    set_error_condition(conditions, ACCEPTED, Some(DISABLED_MESSAGE), now);
    set_error_condition(conditions, READY, Some(DISABLED_MESSAGE), now);
    status.base.display.message = DISABLED_MESSAGE.to_string();
    status.base.display.error = true;
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::GenericCondition;

    fn cond<'a>(s: &'a HelmOpStatus, t: &str) -> Option<&'a GenericCondition> {
        s.base.conditions.iter().find(|c| c.type_ == t)
    }

    #[test]
    fn a_resolved_version_is_recorded_and_stable() {
        let learned = Learned {
            version: Some("1.2.3".into()),
            ..Default::default()
        };
        let first = desired_status(&HelmOpStatus::default(), &learned, None, &[], "t1");
        let second = desired_status(&first, &learned, None, &[], "t2");
        assert_eq!(first, second);
        assert_eq!(first.version, "1.2.3");
        assert_eq!(cond(&first, ACCEPTED).unwrap().status, "True");
        assert_eq!(cond(&first, READY).unwrap().status, "True");
        assert!(cond(&first, POLLED).is_none());
        assert_eq!(first.base.display.ready_bundle_deployments, "0/0");
    }

    #[test]
    fn errors_keep_the_version_and_say_what_failed() {
        let ok = desired_status(
            &HelmOpStatus::default(),
            &Learned {
                version: Some("1.0.0".into()),
                polling: true,
                ..Default::default()
            },
            None,
            &[],
            "t1",
        );
        assert_eq!(cond(&ok, POLLED).unwrap().status, "True");
        let msg = "chart \"web\" from repository http://127.0.0.1:1: fetching: refused";
        let failed = desired_status(
            &ok,
            &Learned {
                version: None,
                error: Some(msg.into()),
                polling: true,
            },
            None,
            &[],
            "t2",
        );
        assert_eq!(failed.version, "1.0.0");
        assert_eq!(cond(&failed, READY).unwrap().status, "False");
        assert_eq!(cond(&failed, READY).unwrap().message, msg);
        assert_eq!(cond(&failed, POLLED).unwrap().status, "False");
        assert!(failed.base.display.error);
    }

    #[test]
    fn disabled_says_how_to_enable() {
        let s = disabled_status(&HelmOpStatus::default(), "t");
        let accepted = cond(&s, ACCEPTED).unwrap();
        assert_eq!(accepted.status, "False");
        assert!(accepted.message.contains("--enable-helmops"));
        assert!(accepted.message.contains("EXPERIMENTAL_HELM_OPS=true"));
        assert_eq!(cond(&s, READY).unwrap().status, "False");
    }
}

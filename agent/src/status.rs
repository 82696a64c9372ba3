//! BundleDeployment status assembly (pure): conditions with wrangler's semantics, the monitor
//! result, and `display`.

use fleet_api::consts::condition as cond;
use fleet_api::{BundleDeployment, BundleDeploymentStatus, GenericCondition};

use crate::monitor::MonitorResult;

/// Current time as wrangler writes condition times.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Wrangler's `Cond.SetError`: `Ok` → status True with no message, `Err(msg)` → False with the
/// message and reason `Error`. Times change only when something changes, so an unchanged
/// condition produces no status write.
pub fn set_condition(
    conditions: &mut Vec<GenericCondition>,
    type_: &str,
    result: Result<(), &str>,
    now: &str,
) {
    let (status, message, reason) = match result {
        Ok(()) => (cond::TRUE, String::new(), String::new()),
        Err(m) => (cond::FALSE, m.to_string(), "Error".to_string()),
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = now.to_string();
            }
            if c.status != status || c.message != message || c.reason != reason {
                c.status = status.to_string();
                c.message = message;
                c.reason = reason;
                c.last_update_time = now.to_string();
            }
        }
        None => conditions.push(GenericCondition {
            type_: type_.to_string(),
            status: status.to_string(),
            last_update_time: now.to_string(),
            last_transition_time: now.to_string(),
            reason,
            message,
        }),
    }
}

/// Copies a monitor result into the status: the lists and counts, `Ready` (False with the
/// monitor's message unless ready and unmodified), and `Monitored=True`.
pub fn apply_monitor(status: &mut BundleDeploymentStatus, result: &MonitorResult, now: &str) {
    status.ready = result.ready;
    status.non_modified = result.non_modified;
    status.non_ready_status = result.non_ready_status.clone();
    status.modified_status = result.modified_status.clone();
    status.incomplete_state = result.incomplete_state;
    status.resource_counts = result.resource_counts;
    status.resources = result.resources.clone();
    let ready = if result.ready && result.non_modified {
        Ok(())
    } else if result.ready_message.is_empty() {
        Err(if result.ready {
            "modified"
        } else {
            "not ready"
        })
    } else {
        Err(result.ready_message.as_str())
    };
    set_condition(&mut status.conditions, cond::READY, ready, now);
    set_condition(&mut status.conditions, cond::MONITORED, Ok(()), now);
}

fn condition_display(status: &BundleDeploymentStatus, type_: &str) -> String {
    match fleet_api::find_condition(&status.conditions, type_) {
        Some(c) if c.is_true() => "Yes".to_string(),
        Some(c) if !c.message.is_empty() => format!("Error: {}", c.message),
        Some(_) => "No".to_string(),
        None => String::new(),
    }
}

/// Fills `status.display` from the conditions and the deployment state.
pub fn set_display(bd: &mut BundleDeployment) {
    let state = bd.state().as_str().to_string();
    let s = bd.status.get_or_insert_with(Default::default);
    let deployed = condition_display(s, cond::DEPLOYED);
    let monitored = condition_display(s, cond::MONITORED);
    s.display.deployed = deployed;
    s.display.monitored = monitored;
    s.display.state = state;
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::BundleDeploymentSpec;

    #[test]
    fn conditions_change_times_only_when_they_change() {
        let mut c = Vec::new();
        set_condition(&mut c, "Deployed", Ok(()), "t1");
        set_condition(&mut c, "Deployed", Ok(()), "t2");
        assert_eq!(c[0].last_update_time, "t1");
        set_condition(&mut c, "Deployed", Err("boom"), "t3");
        assert_eq!(c[0].status, "False");
        assert_eq!(c[0].message, "boom");
        assert_eq!(c[0].last_transition_time, "t3");
        set_condition(&mut c, "Deployed", Err("boom2"), "t4");
        assert_eq!(c[0].last_transition_time, "t3");
        assert_eq!(c[0].last_update_time, "t4");
    }

    #[test]
    fn monitor_result_sets_ready_and_display() {
        let mut bd = BundleDeployment::new(
            "b",
            BundleDeploymentSpec {
                deployment_id: "s-1:h".into(),
                staged_deployment_id: "s-1:h".into(),
                ..Default::default()
            },
        );
        let mut status = BundleDeploymentStatus {
            applied_deployment_id: "s-1:h".into(),
            ..Default::default()
        };
        set_condition(&mut status.conditions, "Deployed", Ok(()), "t");
        let result = MonitorResult {
            ready: false,
            non_modified: true,
            ready_message: "deployment.apps ns/web not ready".into(),
            ..Default::default()
        };
        apply_monitor(&mut status, &result, "t");
        bd.status = Some(status);
        set_display(&mut bd);
        let s = bd.status.unwrap();
        assert_eq!(s.display.state, "NotReady");
        assert_eq!(s.display.deployed, "Yes");
        assert_eq!(s.display.monitored, "Yes");
        let ready = fleet_api::find_condition(&s.conditions, "Ready").unwrap();
        assert_eq!(ready.message, "deployment.apps ns/web not ready");
    }
}

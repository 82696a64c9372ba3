//! `resourceCounts` of a BundleDeployment and the truncation of its status lists, as Fleet's
//! agent computes them (`monitor/updatestatus.go`, `calculateResourceCounts`, with the
//! `desiredReady` fix of Fleet #3408).

use std::collections::BTreeSet;

use fleet_api::{BundleDeploymentResource, ModifiedStatus, NonReadyStatus, ResourceCounts};

/// Longest `nonReadyStatus`/`modifiedStatus` list a BundleDeployment status carries.
pub const RESOURCES_DETAILS_MAX_LENGTH: usize = fleet_api::consts::RESOURCES_DETAILS_MAX_LENGTH;

type Key = (String, String, String, String);

fn key(kind: &str, api_version: &str, namespace: &str, name: &str) -> Key {
    (
        kind.to_string(),
        api_version.to_string(),
        namespace.to_string(),
        name.to_string(),
    )
}

/// Counts the deployed resources per state.
///
/// `live` are the desired objects that exist (the status `resources`); `non_ready` and
/// `modified` must be the complete lists, before truncation. Each modified entry counts as
/// missing (to create), orphaned (to delete) or modified (to patch) and leaves the live set;
/// each non-ready entry still in the set counts as not ready; the rest are ready.
/// `desiredReady` is the live set plus the missing objects. The agent never reports
/// `waitApplied` or `unknown`.
pub fn resource_counts(
    live: &[BundleDeploymentResource],
    non_ready: &[NonReadyStatus],
    modified: &[ModifiedStatus],
) -> ResourceCounts {
    let mut remaining: BTreeSet<Key> = live
        .iter()
        .map(|r| key(&r.kind, &r.api_version, &r.namespace, &r.name))
        .collect();

    let missing_not_live = modified
        .iter()
        .filter(|m| m.create)
        .filter(|m| !remaining.contains(&key(&m.kind, &m.api_version, &m.namespace, &m.name)))
        .count();
    let mut counts = ResourceCounts {
        desired_ready: count(remaining.len() + missing_not_live),
        ..Default::default()
    };

    for m in modified {
        if m.create {
            counts.missing += 1;
        } else if m.delete {
            counts.orphaned += 1;
        } else {
            counts.modified += 1;
        }
        remaining.remove(&key(&m.kind, &m.api_version, &m.namespace, &m.name));
    }
    for n in non_ready {
        // Absent when it was already counted as modified.
        if remaining.remove(&key(&n.kind, &n.api_version, &n.namespace, &n.name)) {
            counts.not_ready += 1;
        }
    }
    counts.ready = count(remaining.len());
    counts
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Cuts `list` to [`RESOURCES_DETAILS_MAX_LENGTH`] entries; true when something was cut
/// (the status then says `incompleteState`).
pub fn truncate<T>(list: &mut Vec<T>) -> bool {
    if list.len() > RESOURCES_DETAILS_MAX_LENGTH {
        list.truncate(RESOURCES_DETAILS_MAX_LENGTH);
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(name: &str) -> BundleDeploymentResource {
        BundleDeploymentResource {
            kind: "ConfigMap".into(),
            api_version: "v1".into(),
            namespace: "ns".into(),
            name: name.into(),
            created_at: None,
        }
    }

    fn modified(name: &str, create: bool, delete: bool) -> ModifiedStatus {
        ModifiedStatus {
            kind: "ConfigMap".into(),
            api_version: "v1".into(),
            namespace: "ns".into(),
            name: name.into(),
            create,
            delete,
            patch: if create || delete {
                String::new()
            } else {
                r#"{"data":{"a":"b"}}"#.into()
            },
            ..Default::default()
        }
    }

    fn non_ready(name: &str) -> NonReadyStatus {
        NonReadyStatus {
            kind: "ConfigMap".into(),
            api_version: "v1".into(),
            namespace: "ns".into(),
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn all_live_and_unchanged_objects_count_as_ready() {
        let counts = resource_counts(&[resource("a"), resource("b")], &[], &[]);
        assert_eq!(
            counts,
            ResourceCounts {
                ready: 2,
                desired_ready: 2,
                ..Default::default()
            }
        );
    }

    #[test]
    fn missing_orphaned_modified_and_not_ready_are_counted_once_each() {
        let live = [resource("a"), resource("b"), resource("c"), resource("d")];
        let modified = [
            modified("missing", true, false),
            modified("orphan", false, true),
            modified("b", false, false),
        ];
        // "b" is both modified and not ready: modified wins.
        let non_ready = [non_ready("b"), non_ready("c")];
        let counts = resource_counts(&live, &non_ready, &modified);
        assert_eq!(
            counts,
            ResourceCounts {
                ready: 2,
                desired_ready: 5,
                modified: 1,
                orphaned: 1,
                missing: 1,
                not_ready: 1,
                ..Default::default()
            }
        );
    }

    #[test]
    fn desired_ready_does_not_count_a_missing_object_twice_when_it_is_also_live() {
        // Fleet #3408: a "missing" object that is also in the live set (not owned by us)
        // is desired once.
        let counts = resource_counts(&[resource("a")], &[], &[modified("a", true, false)]);
        assert_eq!(counts.desired_ready, 1);
        assert_eq!(counts.missing, 1);
        assert_eq!(counts.ready, 0);
    }

    #[test]
    fn truncation_keeps_ten_entries_and_reports_it() {
        let mut list: Vec<u32> = (0..12).collect();
        assert!(truncate(&mut list));
        assert_eq!(list, (0..10).collect::<Vec<_>>());
        let mut exactly_ten: Vec<u32> = (0..10).collect();
        assert!(!truncate(&mut exactly_ten));
        assert_eq!(exactly_ten.len(), 10);
    }
}

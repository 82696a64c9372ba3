//! Which chart version a HelmOp deploys: an exact version as written, or the highest version of
//! the repository index (or OCI registry tags) matching a semver constraint (`~1.2`,
//! `>=1.0 <2`, `*`, empty = latest stable). Resolution is pure over a downloaded index; the
//! download ([`resolve_remote`]) is blocking I/O for the blocking pool.

use fleet_api::HelmOptions;
use fleet_helm::repo::{self, IndexFile, RepoOptions};

/// `MAJOR.MINOR.PATCH[-pre][+build]` and nothing else (Masterminds' `StrictNewVersion`): a
/// version that is deployed as written and never polled for.
pub fn is_exact_version(version: &str) -> bool {
    let v = version.trim();
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-+.".contains(&b))
}

/// Whether `version` is a constraint the controller resolves and may poll for (`*`, empty,
/// ranges, tildes, carets...).
pub fn is_constraint(version: &str) -> bool {
    !is_exact_version(version)
}

/// `chart "<chart>" from repository <repo>`: how errors name the chart source.
pub fn describe(helm: &HelmOptions) -> String {
    if helm.repo.is_empty() {
        format!("chart {:?}", helm.chart)
    } else {
        format!("chart {:?} from repository {}", helm.chart, helm.repo)
    }
}

/// The highest version of `chart` in `index` matching `constraint` (empty and `*`: the latest
/// stable version).
pub fn resolve_in_index(
    index: &IndexFile,
    chart: &str,
    constraint: &str,
) -> Result<String, String> {
    let constraint = constraint.trim();
    let wanted = if constraint == "*" { "" } else { constraint };
    index
        .get(chart, wanted)
        .map(|cv| cv.version.clone())
        .map_err(|e| match e {
            fleet_helm::HelmError::Repo(m) => m,
            other => other.to_string(),
        })
}

/// Parses a downloaded `index.yaml` and resolves `constraint` in it.
pub fn resolve_in_index_text(text: &str, chart: &str, constraint: &str) -> Result<String, String> {
    let index = IndexFile::parse(text).map_err(|e| match e {
        fleet_helm::HelmError::Repo(m) => m,
        other => other.to_string(),
    })?;
    resolve_in_index(&index, chart, constraint)
}

/// The version to deploy for `helm`, asking the repository or registry. Exact versions are also
/// looked up in a repository index, so a chart or version that does not exist is reported by the
/// controller instead of by every agent. Errors name the repository and the chart.
pub fn resolve_remote(helm: &HelmOptions, opts: &RepoOptions) -> Result<String, String> {
    let fail = |m: String| format!("{}: {m}", describe(helm));
    let oci_reference = if helm.chart.starts_with("oci://") {
        Some(helm.chart.clone())
    } else {
        helm.repo
            .strip_prefix("oci://")
            .map(|registry| format!("oci://{}/{}", registry.trim_end_matches('/'), helm.chart))
    };
    if let Some(reference) = oci_reference {
        if is_exact_version(&helm.version) {
            return Ok(helm.version.trim().to_string());
        }
        let wanted = if helm.version.trim() == "*" {
            ""
        } else {
            helm.version.as_str()
        };
        return repo::fetch_oci_chart(&reference, wanted, opts)
            .map(|(_, tag)| tag.replace('_', "+"))
            .map_err(|e| fail(e.to_string()));
    }
    if helm.repo.is_empty() {
        // A chart URL (`https://host/chart-1.0.0.tgz`): the URL is the version.
        return Ok(helm.version.clone());
    }
    let index = repo::fetch_index(&helm.repo, opts).map_err(|e| fail(e.to_string()))?;
    resolve_in_index(&index, &helm.chart, &helm.version).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_versions_and_constraints() {
        for v in ["1.2.3", "0.1.0-rc.1", "1.0.0+build.5"] {
            assert!(is_exact_version(v), "{v}");
        }
        for v in ["", "*", "~1.2", ">=1.0 <2", "^1", "1.2", "v1.2.3", "1.x"] {
            assert!(is_constraint(v), "{v}");
        }
    }

    #[test]
    fn describe_names_repo_and_chart() {
        let h = HelmOptions {
            chart: "web".into(),
            repo: "http://127.0.0.1:1/charts".into(),
            ..Default::default()
        };
        assert_eq!(
            describe(&h),
            "chart \"web\" from repository http://127.0.0.1:1/charts"
        );
    }
}

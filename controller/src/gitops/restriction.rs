//! GitRepoRestrictions (Fleet's `AuthorizeAndAssignDefaults`): the restrictions of a namespace
//! are merged (sorted by name; the first default wins, allow-lists add up), then the GitRepo's
//! target namespace, service account, repository URL and client secret are checked and
//! defaulted. A violation is reported in the GitRepo's `Accepted` condition and nothing is
//! deployed for it.

use fleet_api::{GitRepoRestriction, GitRepoSpec};

/// The restrictions of one namespace, merged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MergedRestriction {
    pub default_service_account: String,
    pub allowed_service_accounts: Vec<String>,
    pub allowed_repo_patterns: Vec<String>,
    pub default_client_secret_name: String,
    pub allowed_client_secret_names: Vec<String>,
    pub allowed_target_namespaces: Vec<String>,
}

/// Merges the restrictions of a namespace in name order.
pub fn merge(restrictions: &[GitRepoRestriction]) -> MergedRestriction {
    let mut sorted: Vec<&GitRepoRestriction> = restrictions.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut out = MergedRestriction::default();
    for r in sorted {
        if out.default_service_account.is_empty() {
            out.default_service_account = r.default_service_account.clone();
        }
        if out.default_client_secret_name.is_empty() {
            out.default_client_secret_name = r.default_client_secret_name.clone();
        }
        out.allowed_service_accounts
            .extend(r.allowed_service_accounts.iter().cloned());
        out.allowed_client_secret_names
            .extend(r.allowed_client_secret_names.iter().cloned());
        out.allowed_repo_patterns
            .extend(r.allowed_repo_patterns.iter().cloned());
        out.allowed_target_namespaces
            .extend(r.allowed_target_namespaces.iter().cloned());
    }
    out
}

/// Go's `%v` of a string slice: `[a b c]`.
fn go_list(values: &[String]) -> String {
    format!("[{}]", values.join(" "))
}

fn is_allowed(current: &str, default: &str, allowed: &[String]) -> Result<String, String> {
    if current.is_empty() {
        return Ok(default.to_string());
    }
    if allowed.is_empty() || allowed.iter().any(|a| a == current) {
        return Ok(current.to_string());
    }
    Err(format!("{current} not in allowed set {}", go_list(allowed)))
}

fn is_allowed_by_regex(current: &str, patterns: &[String]) -> Result<String, String> {
    if current.is_empty() || patterns.is_empty() {
        return Ok(current.to_string());
    }
    for pattern in patterns {
        // Patterns may also match verbatim (older Fleet versions compared strings).
        if pattern == current {
            return Ok(current.to_string());
        }
        let re = regex::Regex::new(pattern)
            .map_err(|e| format!("GitRepoRestriction failed to compile regex '{pattern}': {e}"))?;
        if re.is_match(current) {
            return Ok(current.to_string());
        }
    }
    Err(format!(
        "{current} not in allowed set {}",
        go_list(patterns)
    ))
}

/// Checks `spec` against the namespace's restrictions and returns it with the defaults
/// applied, or the reason it is not accepted (Fleet's messages).
pub fn authorize_and_assign_defaults(
    spec: &GitRepoSpec,
    restrictions: &[GitRepoRestriction],
) -> Result<GitRepoSpec, String> {
    if restrictions.is_empty() {
        return Ok(spec.clone());
    }
    let merged = merge(restrictions);
    if !merged.allowed_target_namespaces.is_empty() && spec.target_namespace.is_empty() {
        return Err(
            "empty targetNamespace denied, because allowedTargetNamespaces restriction is present"
                .to_string(),
        );
    }
    let target_namespace = is_allowed(
        &spec.target_namespace,
        "",
        &merged.allowed_target_namespaces,
    )
    .map_err(|e| format!("disallowed targetNamespace {}: {e}", spec.target_namespace))?;
    let service_account = is_allowed(
        &spec.service_account,
        &merged.default_service_account,
        &merged.allowed_service_accounts,
    )
    .map_err(|e| format!("disallowed serviceAccount {}: {e}", spec.service_account))?;
    let repo = is_allowed_by_regex(&spec.repo, &merged.allowed_repo_patterns)
        .map_err(|e| format!("disallowed repo {}: {e}", spec.repo))?;
    let client_secret_name = is_allowed(
        &spec.client_secret_name,
        &merged.default_client_secret_name,
        &merged.allowed_client_secret_names,
    )
    .map_err(|e| {
        format!(
            "disallowed clientSecretName {}: {e}",
            spec.client_secret_name
        )
    })?;
    let mut out = spec.clone();
    out.target_namespace = target_namespace;
    out.service_account = service_account;
    out.repo = repo;
    out.client_secret_name = client_secret_name;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn restriction(name: &str) -> GitRepoRestriction {
        GitRepoRestriction {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn spec(repo: &str) -> GitRepoSpec {
        GitRepoSpec {
            repo: repo.into(),
            ..Default::default()
        }
    }

    #[test]
    fn no_restriction_accepts_anything() {
        let s = spec("https://example.com/x");
        assert_eq!(authorize_and_assign_defaults(&s, &[]), Ok(s));
    }

    #[test]
    fn repo_patterns_are_unanchored_regexes_or_verbatim() {
        let mut r = restriction("r");
        r.allowed_repo_patterns = vec!["^https://git\\.example\\.com/".into(), "file:///x".into()];
        assert!(
            authorize_and_assign_defaults(&spec("https://git.example.com/a"), &[r.clone()]).is_ok()
        );
        assert!(authorize_and_assign_defaults(&spec("file:///x"), &[r.clone()]).is_ok());
        let err = authorize_and_assign_defaults(&spec("https://evil.com/a"), &[r]).unwrap_err();
        assert_eq!(
            err,
            "disallowed repo https://evil.com/a: https://evil.com/a not in allowed set [^https://git\\.example\\.com/ file:///x]"
        );
    }

    #[test]
    fn a_broken_pattern_is_reported() {
        let mut r = restriction("r");
        r.allowed_repo_patterns = vec!["(".into()];
        let err = authorize_and_assign_defaults(&spec("https://x"), &[r]).unwrap_err();
        assert!(err.contains("failed to compile regex '('"), "{err}");
    }

    #[test]
    fn service_accounts_and_secrets_get_defaults_and_are_checked() {
        let mut r = restriction("b");
        r.default_service_account = "deployer".into();
        r.allowed_service_accounts = vec!["deployer".into(), "admin".into()];
        r.default_client_secret_name = "git-creds".into();
        r.allowed_client_secret_names = vec!["git-creds".into()];
        let mut other = restriction("a");
        other.default_service_account = "first".into();
        let got = authorize_and_assign_defaults(&spec("x"), &[r.clone(), other.clone()]).unwrap();
        // Restrictions merge in name order: "a" comes first and its default wins.
        assert_eq!(got.service_account, "first");
        assert_eq!(got.client_secret_name, "git-creds");

        let mut bad = spec("x");
        bad.service_account = "root".into();
        assert_eq!(
            authorize_and_assign_defaults(&bad, &[r.clone()]).unwrap_err(),
            "disallowed serviceAccount root: root not in allowed set [deployer admin]"
        );
        let mut bad = spec("x");
        bad.client_secret_name = "stolen".into();
        assert_eq!(
            authorize_and_assign_defaults(&bad, &[r]).unwrap_err(),
            "disallowed clientSecretName stolen: stolen not in allowed set [git-creds]"
        );
    }

    #[test]
    fn target_namespaces_are_required_and_checked() {
        let mut r = restriction("r");
        r.allowed_target_namespaces = vec!["apps".into()];
        assert_eq!(
            authorize_and_assign_defaults(&spec("x"), &[r.clone()]).unwrap_err(),
            "empty targetNamespace denied, because allowedTargetNamespaces restriction is present"
        );
        let mut s = spec("x");
        s.target_namespace = "kube-system".into();
        assert_eq!(
            authorize_and_assign_defaults(&s, &[r.clone()]).unwrap_err(),
            "disallowed targetNamespace kube-system: kube-system not in allowed set [apps]"
        );
        s.target_namespace = "apps".into();
        assert!(authorize_and_assign_defaults(&s, &[r]).is_ok());
    }
}

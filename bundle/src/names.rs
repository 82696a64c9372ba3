//! Kubernetes-safe names, as Fleet derives them (`internal/names`): bundle names from
//! `<gitrepo>/<path>`, Helm release names, and concatenated names with a hash suffix.

use md5::{Digest as _, Md5};
use sha2::Sha256;

/// Helm's limit on release names, which Fleet also applies to bundle names.
pub const MAX_HELM_RELEASE_NAME_LEN: usize = 53;

/// Truncates `s` to `count` bytes, replacing the tail with `-` and 5 hex characters of its MD5
/// so that different long names stay different. If the cut falls right after a `-`, that dash
/// is kept instead of adding another.
pub fn limit(s: &str, count: usize) -> String {
    if s.len() <= count {
        return s.to_string();
    }
    const HEX_LEN: usize = 5;
    if count <= HEX_LEN + 1 {
        return s[..count].to_string();
    }
    let keep = count - HEX_LEN - 1;
    let separator = if s.as_bytes()[keep - 1] == b'-' {
        ""
    } else {
        "-"
    };
    format!("{}{}{}", &s[..keep], separator, hex_hash(s, HEX_LEN))
}

/// The first `length` hex characters of the MD5 of `s`.
pub fn hex_hash(s: &str, length: usize) -> String {
    let digest = Md5::digest(s.as_bytes());
    let mut out = hex::encode(digest);
    out.truncate(length);
    out
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A unique, DNS-label-safe name of at most 53 characters derived from `s` (Fleet's
/// `names.HelmReleaseName`): `/` becomes `-`; upper case or other disallowed characters add an
/// 8-character hash of the original (to avoid collisions) before being replaced by `-`; the
/// result is shortened with [`limit`].
pub fn helm_release_name(s: &str) -> String {
    let original = s;
    let mut name = s.replace('/', "-");
    let disallowed = |c: char| !(c.is_ascii_alphanumeric() || c == '-');
    let need_hex = name != name.to_lowercase() || name.chars().any(disallowed);
    if need_hex {
        name = format!("{}-{}", name, hex_hash(&name, 8));
    }
    let lowered = name.to_lowercase();
    let mut cleaned = String::with_capacity(lowered.len());
    let mut last_dash = false;
    for c in lowered.chars() {
        let c = if disallowed(c) { '-' } else { c };
        if c == '-' {
            if last_dash {
                continue;
            }
            last_dash = true;
        } else {
            last_dash = false;
        }
        cleaned.push(c);
    }
    let trimmed = cleaned.trim_matches('-');
    if is_dns_label(trimmed) {
        return limit(trimmed, MAX_HELM_RELEASE_NAME_LEN);
    }
    hex_hash(original, 24)
}

/// Joins `parts` with `-`; names of 64 characters or more are cut to 57 (or 56) characters and
/// end with a SHA-256 based suffix (Fleet's `names.SafeConcatName`).
pub fn safe_concat_name(parts: &[&str]) -> String {
    let full = parts.join("-");
    if full.len() < 64 {
        return full;
    }
    let digest = hex::encode(Sha256::digest(full.as_bytes()));
    let c = full.as_bytes()[56];
    if c.is_ascii_lowercase() || c.is_ascii_digit() {
        format!("{}-{}", &full[..57], &digest[..5])
    } else {
        format!("{}-{}", &full[..56], &digest[..6])
    }
}

/// The bundle name `fleet apply` gives to the bundle in `path` of the GitRepo `repo`:
/// `<repo>-<path>` cleaned by [`helm_release_name`].
pub fn bundle_name(repo: &str, path: &str) -> String {
    helm_release_name(&clean_join(repo, path))
}

/// Go's `filepath.Join` for two relative parts: cleans `.`/`..` and duplicate slashes.
pub fn clean_join(a: &str, b: &str) -> String {
    let joined = if a.is_empty() {
        b.to_string()
    } else if b.is_empty() {
        a.to_string()
    } else {
        format!("{a}/{b}")
    };
    clean_path(&joined)
}

/// Go's `path.Clean`.
pub fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_names_pass_through() {
        assert_eq!(bundle_name("test", "."), "test");
        assert_eq!(
            bundle_name("repo", "multi-cluster/helm"),
            "repo-multi-cluster-helm"
        );
    }

    #[test]
    fn upper_case_and_odd_characters_get_a_hash() {
        let n = helm_release_name("Repo/My_App");
        assert!(n.starts_with("repo-my-app-"), "{n}");
        assert_eq!(n.len(), "repo-my-app-".len() + 8);
        assert_ne!(helm_release_name("a/B"), helm_release_name("a/b"));
    }

    #[test]
    fn long_names_are_limited_to_53_with_a_hash() {
        let long = format!("repo/{}", "x".repeat(80));
        let n = helm_release_name(&long);
        assert_eq!(n.len(), 53);
        assert!(n.starts_with("repo-xxxx"));
        assert_eq!(&n[47..48], "-");
    }

    #[test]
    fn limit_keeps_an_existing_dash() {
        let s = format!("{}-{}", "a".repeat(46), "b".repeat(20));
        let n = limit(&s, 53);
        assert_eq!(n.len(), 52);
        assert!(n.starts_with(&format!("{}-", "a".repeat(46))));
    }

    #[test]
    fn safe_concat() {
        assert_eq!(safe_concat_name(&["", "test"]), "-test");
        let long = safe_concat_name(&["a".repeat(40).as_str(), "b".repeat(40).as_str()]);
        assert_eq!(long.len(), 63);
    }

    #[test]
    fn invalid_names_fall_back_to_a_checksum() {
        assert_eq!(helm_release_name("").len(), 24);
        assert_eq!(helm_release_name("___").len(), 8);
    }

    #[test]
    fn clean() {
        assert_eq!(clean_join("test", "."), "test");
        assert_eq!(clean_join("test", "./a//b/"), "test/a/b");
        assert_eq!(clean_path("a/../.."), "..");
    }
}

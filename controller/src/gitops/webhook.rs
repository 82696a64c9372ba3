//! The Git webhook endpoint (Fleet's `pkg/webhook`): GitHub and GitLab push events name a
//! repository, a branch and the new commit; every GitRepo following that repository and branch
//! (and not pinned to a revision) gets `status.webhookCommit`, which makes its reconciler fetch.
//!
//! Secrets: when the Secret `gitjob-webhook` in the controller's namespace has a `github` key,
//! GitHub payloads must carry a valid `X-Hub-Signature-256` (or `X-Hub-Signature`) HMAC; with a
//! `gitlab` key, GitLab payloads must carry it as `X-Gitlab-Token`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use fleet_api::GitRepo;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::Context;

/// Name of the Secret holding the webhook secrets (Fleet's).
pub const WEBHOOK_SECRET_NAME: &str = "gitjob-webhook";

/// What a push event says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushEvent {
    /// The new commit.
    pub revision: String,
    /// The branch pushed to (empty for tags).
    pub branch: String,
    /// The tag pushed (empty for branches).
    pub tag: String,
    /// URLs of the repository as the provider names it.
    pub repo_urls: Vec<String>,
}

/// Errors of the webhook.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("invalid {provider} push payload: {message}")]
    Payload {
        provider: &'static str,
        message: String,
    },
    #[error("{0}")]
    Unauthorized(String),
    #[error("listing GitRepos for the webhook: {0}")]
    List(#[source] kube::Error),
    #[error("setting status.webhookCommit of GitRepo {namespace}/{name}: {source}")]
    Patch {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("serving the Git webhook on {addr}: {source}")]
    Serve {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

fn branch_and_tag(git_ref: &str) -> (String, String) {
    if let Some(b) = git_ref.strip_prefix("refs/heads/") {
        (b.to_string(), String::new())
    } else if let Some(t) = git_ref.strip_prefix("refs/tags/") {
        (String::new(), t.to_string())
    } else {
        (String::new(), String::new())
    }
}

#[derive(Deserialize)]
struct GithubPush {
    #[serde(rename = "ref", default)]
    git_ref: String,
    #[serde(default)]
    after: String,
    repository: GithubRepository,
}

#[derive(Deserialize)]
struct GithubRepository {
    #[serde(default)]
    html_url: String,
}

#[derive(Deserialize)]
struct GitlabPush {
    #[serde(rename = "ref", default)]
    git_ref: String,
    #[serde(default)]
    checkout_sha: Option<String>,
    project: GitlabProject,
}

#[derive(Deserialize)]
struct GitlabProject {
    #[serde(default)]
    web_url: String,
}

/// Parses a GitHub `push` event body.
pub fn parse_github_push(body: &[u8]) -> Result<PushEvent, WebhookError> {
    let p: GithubPush = serde_json::from_slice(body).map_err(|e| WebhookError::Payload {
        provider: "GitHub",
        message: e.to_string(),
    })?;
    let (branch, tag) = branch_and_tag(&p.git_ref);
    Ok(PushEvent {
        revision: p.after,
        branch,
        tag,
        repo_urls: vec![p.repository.html_url],
    })
}

/// Parses a GitLab `Push Hook` or `Tag Push Hook` body.
pub fn parse_gitlab_push(body: &[u8]) -> Result<PushEvent, WebhookError> {
    let p: GitlabPush = serde_json::from_slice(body).map_err(|e| WebhookError::Payload {
        provider: "GitLab",
        message: e.to_string(),
    })?;
    let (branch, tag) = branch_and_tag(&p.git_ref);
    Ok(PushEvent {
        revision: p.checkout_sha.unwrap_or_default(),
        branch,
        tag,
        repo_urls: vec![p.project.web_url],
    })
}

/// A matcher for the clone URLs of a repository given by its web URL: http(s), ssh and scp-like
/// forms, an optional port and an optional `.git` suffix, case-insensitive (Fleet's regex).
pub fn repo_matcher(web_url: &str) -> Option<regex::Regex> {
    let parsed = url::Url::parse(web_url).ok()?;
    let host = parsed.host_str()?;
    let path = parsed.path().trim_start_matches('/').trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let pattern = format!(
        r"(?i)^(http://|https://|\w+@|ssh://(\w+@)?|git@(ssh\.)?){}(:[0-9]+|)[:/](v\d/)?{}(\.git)?/?$",
        regex::escape(host),
        regex::escape(path).replace("/_git/", "(/_git)?/"),
    );
    regex::Regex::new(&pattern).ok()
}

/// The GitRepos (namespace, name) an event concerns, and whether their webhook commit must be
/// set: same repository, branch matching when the GitRepo names one, no pinned revision.
pub fn matching_gitrepos<'a>(event: &PushEvent, gitrepos: &'a [GitRepo]) -> Vec<&'a GitRepo> {
    let matchers: Vec<regex::Regex> = event
        .repo_urls
        .iter()
        .filter_map(|u| repo_matcher(u))
        .collect();
    gitrepos
        .iter()
        .filter(|g| g.spec.revision.is_empty())
        .filter(|g| matchers.iter().any(|m| m.is_match(&g.spec.repo)))
        .filter(|g| {
            let branch = if g.spec.branch.is_empty() {
                super::fetch::DEFAULT_BRANCH
            } else {
                g.spec.branch.as_str()
            };
            // A push to another branch (or a tag) does not move this GitRepo.
            event.branch == branch
        })
        .filter(|g| {
            !event.revision.is_empty()
                && g.status.as_ref().map(|s| s.webhook_commit.as_str()) != Some(&event.revision)
        })
        .collect()
}

/// HMAC-SHA256 / HMAC-SHA1 (RFC 2104) of `body` with `key`.
fn hmac<D: sha2::Digest + sha2::digest::core_api::BlockSizeUser>(
    key: &[u8],
    body: &[u8],
) -> Vec<u8> {
    let block = <D as sha2::digest::core_api::BlockSizeUser>::block_size();
    let mut k = if key.len() > block {
        D::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(block, 0);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let mut inner = D::new();
    inner.update(&ipad);
    inner.update(body);
    let inner = inner.finalize();
    let mut outer = D::new();
    outer.update(&opad);
    outer.update(inner);
    outer.finalize().to_vec()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks GitHub's signature headers against `secret`.
pub fn verify_github_signature(headers: &HeaderMap, body: &[u8], secret: &[u8]) -> bool {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if let Some(sig) = header("x-hub-signature-256").and_then(|s| s.strip_prefix("sha256=")) {
        return hex::decode(sig)
            .is_ok_and(|sig| constant_time_eq(&sig, &hmac::<sha2::Sha256>(secret, body)));
    }
    if let Some(sig) = header("x-hub-signature").and_then(|s| s.strip_prefix("sha1=")) {
        return hex::decode(sig)
            .is_ok_and(|sig| constant_time_eq(&sig, &hmac::<sha1::Sha1>(secret, body)));
    }
    false
}

/// Reads the webhook secrets; missing Secret or keys mean no verification.
async fn webhook_secrets(ctx: &Context) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.config.system_namespace);
    let Ok(Some(secret)) = api.get_opt(WEBHOOK_SECRET_NAME).await else {
        return (None, None);
    };
    let data = secret.data.unwrap_or_default();
    let get = |k: &str| data.get(k).map(|v| v.0.clone()).filter(|v| !v.is_empty());
    (get("github"), get("gitlab"))
}

/// Handles one webhook request; the status code and body to answer.
pub async fn handle(ctx: &Context, headers: &HeaderMap, body: &[u8]) -> (StatusCode, String) {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (github_secret, gitlab_secret) = webhook_secrets(ctx).await;
    let event = if header("x-github-event") == "ping" {
        return (StatusCode::OK, "Webhook received successfully".into());
    } else if !header("x-github-event").is_empty() {
        if header("x-github-event") != "push" {
            return (StatusCode::OK, "ignored event".into());
        }
        if let Some(secret) = &github_secret
            && !verify_github_signature(headers, body, secret)
        {
            return (StatusCode::UNAUTHORIZED, "HMAC verification failed".into());
        }
        parse_github_push(body)
    } else if !header("x-gitlab-event").is_empty() {
        if let Some(secret) = &gitlab_secret
            && !constant_time_eq(header("x-gitlab-token").as_bytes(), secret)
        {
            return (
                StatusCode::UNAUTHORIZED,
                "X-Gitlab-Token validation failed".into(),
            );
        }
        parse_gitlab_push(body)
    } else {
        tracing::debug!("ignoring a webhook request from an unknown provider");
        return (StatusCode::OK, "ignored".into());
    };
    let event = match event {
        Ok(e) => e,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()),
    };
    match apply_event(ctx, &event).await {
        Ok(n) => {
            tracing::info!(revision = %event.revision, branch = %event.branch, gitrepos = n, "webhook push");
            (StatusCode::OK, "succeeded".into())
        }
        Err(e) => {
            tracing::warn!(error = %e, "webhook processing failed");
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

/// Sets `status.webhookCommit` on every GitRepo the event concerns; returns how many.
pub async fn apply_event(ctx: &Context, event: &PushEvent) -> Result<usize, WebhookError> {
    let all: Api<GitRepo> = Api::all(ctx.client.clone());
    let gitrepos = all
        .list(&ListParams::default())
        .await
        .map_err(WebhookError::List)?
        .items;
    let targets = matching_gitrepos(event, &gitrepos);
    for g in &targets {
        let namespace = g.metadata.namespace.clone().unwrap_or_default();
        let name = g.metadata.name.clone().unwrap_or_default();
        let api: Api<GitRepo> = Api::namespaced(ctx.client.clone(), &namespace);
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"webhookCommit": event.revision}})),
        )
        .await
        .map_err(|source| WebhookError::Patch {
            namespace: namespace.clone(),
            name: name.clone(),
            source,
        })?;
    }
    Ok(targets.len())
}

/// Serves the webhook on `addr` until `shutdown`.
pub async fn serve(
    ctx: Arc<Context>,
    addr: std::net::SocketAddr,
    shutdown: CancellationToken,
) -> Result<(), WebhookError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| WebhookError::Serve {
            addr: addr.to_string(),
            source,
        })?;
    serve_on(ctx, listener, shutdown).await
}

/// Serves the webhook on an already bound listener (tests bind port 0).
pub async fn serve_on(
    ctx: Arc<Context>,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> Result<(), WebhookError> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    async fn endpoint(
        State(ctx): State<Arc<Context>>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, String) {
        handle(&ctx, &headers, &body).await
    }
    let app = axum::Router::new()
        .route("/", axum::routing::post(endpoint))
        .with_state(ctx);
    tracing::info!(%addr, "serving the Git webhook");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(|source| WebhookError::Serve { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::{GitRepoSpec, GitRepoStatus};

    const GITHUB_PUSH: &str = r#"{
        "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000",
        "after": "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
        "repository": {
            "name": "fleet-examples",
            "full_name": "rancher/fleet-examples",
            "html_url": "https://github.com/rancher/fleet-examples",
            "clone_url": "https://github.com/rancher/fleet-examples.git"
        },
        "pusher": {"name": "someone"}
    }"#;

    const GITLAB_PUSH: &str = r#"{
        "object_kind": "push",
        "ref": "refs/heads/master",
        "checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
        "project": {
            "name": "Diaspora",
            "web_url": "http://example.com/mike/diaspora",
            "git_http_url": "http://example.com/mike/diaspora.git"
        }
    }"#;

    fn gitrepo(name: &str, repo: &str, branch: &str) -> GitRepo {
        let mut g = GitRepo::new(
            name,
            GitRepoSpec {
                repo: repo.into(),
                branch: branch.into(),
                ..Default::default()
            },
        );
        g.metadata.namespace = Some("fleet-local".into());
        g
    }

    #[test]
    fn github_push_is_parsed() {
        let e = parse_github_push(GITHUB_PUSH.as_bytes()).unwrap();
        assert_eq!(e.revision, "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678");
        assert_eq!(e.branch, "main");
        assert_eq!(e.tag, "");
        assert_eq!(
            e.repo_urls,
            vec!["https://github.com/rancher/fleet-examples"]
        );
    }

    #[test]
    fn gitlab_push_is_parsed() {
        let e = parse_gitlab_push(GITLAB_PUSH.as_bytes()).unwrap();
        assert_eq!(e.revision, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
        assert_eq!(e.branch, "master");
        assert_eq!(e.repo_urls, vec!["http://example.com/mike/diaspora"]);
    }

    #[test]
    fn tag_pushes_have_no_branch_and_bad_bodies_fail() {
        let body =
            r#"{"ref":"refs/tags/v1","after":"abc","repository":{"html_url":"https://x.io/a/b"}}"#;
        let e = parse_github_push(body.as_bytes()).unwrap();
        assert_eq!((e.branch.as_str(), e.tag.as_str()), ("", "v1"));
        let err = parse_github_push(b"{").unwrap_err();
        assert!(
            err.to_string().starts_with("invalid GitHub push payload"),
            "{err}"
        );
    }

    #[test]
    fn clone_urls_match_the_web_url() {
        let m = repo_matcher("https://github.com/rancher/fleet-examples").unwrap();
        for url in [
            "https://github.com/rancher/fleet-examples",
            "https://github.com/rancher/fleet-examples.git",
            "http://github.com/Rancher/Fleet-Examples",
            "git@github.com:rancher/fleet-examples.git",
            "ssh://git@github.com/rancher/fleet-examples",
            "https://github.com:443/rancher/fleet-examples",
        ] {
            assert!(m.is_match(url), "{url}");
        }
        for url in [
            "https://github.com/rancher/fleet-examples-fork",
            "https://gitlab.com/rancher/fleet-examples",
            "https://githubXcom/rancher/fleet-examples",
        ] {
            assert!(!m.is_match(url), "{url}");
        }
    }

    #[test]
    fn only_gitrepos_of_that_repo_and_branch_match() {
        let e = parse_github_push(GITHUB_PUSH.as_bytes()).unwrap();
        let mut pinned = gitrepo(
            "pinned",
            "https://github.com/rancher/fleet-examples",
            "main",
        );
        pinned.spec.revision = "v1".into();
        let mut seen = gitrepo("seen", "https://github.com/rancher/fleet-examples", "main");
        seen.status = Some(GitRepoStatus {
            webhook_commit: e.revision.clone(),
            ..Default::default()
        });
        let repos = vec![
            gitrepo(
                "yes",
                "https://github.com/rancher/fleet-examples.git",
                "main",
            ),
            gitrepo(
                "other-branch",
                "https://github.com/rancher/fleet-examples",
                "dev",
            ),
            gitrepo(
                "default-branch",
                "https://github.com/rancher/fleet-examples",
                "",
            ),
            gitrepo("other-repo", "https://github.com/rancher/fleet", "main"),
            pinned,
            seen,
        ];
        let names: Vec<&str> = matching_gitrepos(&e, &repos)
            .iter()
            .map(|g| g.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(names, vec!["yes"]);
    }

    #[test]
    fn github_signatures_are_checked() {
        // Known vector: HMAC-SHA256 of "Hello, World!" with "It's a Secret to Everybody",
        // from GitHub's webhook documentation.
        let body = b"Hello, World!";
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
                .parse()
                .unwrap(),
        );
        assert!(verify_github_signature(
            &headers,
            body,
            b"It's a Secret to Everybody"
        ));
        assert!(!verify_github_signature(&headers, body, b"wrong"));
        assert!(!verify_github_signature(&HeaderMap::new(), body, b"x"));
    }
}

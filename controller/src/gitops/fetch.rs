//! Fetching a GitRepo's repository with `gix` (Fleet's `pkg/git` and the gitcloner): resolve
//! the branch head or the revision on the remote, fetch the objects into a bare repository kept
//! in the cache between polls, and write the commit's tree into a checkout folder.
//!
//! Everything here blocks (gix's transport is blocking); callers run it on the blocking pool.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use gix::bstr::ByteSlice;
use gix::protocol::handshake::Ref;

/// Fleet's branch when a GitRepo names neither a branch nor a revision.
pub const DEFAULT_BRANCH: &str = "master";

/// HTTP basic-auth credentials (a `kubernetes.io/basic-auth` Secret).
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What to fetch and how to reach it.
#[derive(Debug, Clone, Default)]
pub struct FetchRequest {
    /// Repository URL (`https://`, `http://`, `file://` or a local path).
    pub url: String,
    /// Branch to follow; [`DEFAULT_BRANCH`] when empty.
    pub branch: String,
    /// A commit SHA or a tag; wins over the branch when set.
    pub revision: String,
    /// Basic auth for http(s).
    pub auth: Option<BasicAuth>,
    /// PEM CA bundle trusted for https (in addition to the system roots).
    pub ca_bundle: Option<Vec<u8>>,
    /// Skip TLS certificate verification.
    pub insecure_skip_tls_verify: bool,
    /// Timeout of each HTTP request.
    pub timeout: Duration,
}

/// The step of a fetch that failed, named in the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchStep {
    /// Preparing the local cache repository.
    Cache,
    /// Connecting and listing the remote's references.
    ListRefs,
    /// Finding the branch, tag or commit among them.
    ResolveRef,
    /// Downloading the objects.
    Fetch,
    /// Writing the commit's files.
    Checkout,
}

impl std::fmt::Display for FetchStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FetchStep::Cache => "preparing the local cache",
            FetchStep::ListRefs => "listing remote references",
            FetchStep::ResolveRef => "resolving ref",
            FetchStep::Fetch => "fetching",
            FetchStep::Checkout => "checking out",
        })
    }
}

/// A failed git operation: which repository, which step, why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("git repository {url}: {step}: {message}")]
pub struct FetchError {
    pub url: String,
    pub step: FetchStep,
    pub message: String,
}

fn fail(url: &str, step: FetchStep, message: impl std::fmt::Display) -> FetchError {
    FetchError {
        url: url.to_string(),
        step,
        message: message.to_string(),
    }
}

/// The outcome of [`fetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The commit the branch or revision points to (hex SHA).
    pub commit: String,
    /// Whether objects had to be downloaded (false when the commit was already in the cache).
    pub downloaded: bool,
}

/// rustls needs a process-wide crypto provider; ring is the one the kube client already uses.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only when a provider is already installed, which is what we want anyway.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn is_commit_sha(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_ssh_url(url: &str) -> bool {
    url.starts_with("ssh://")
        || url.starts_with("git@")
        || (!url.contains("://") && url.contains('@') && url.contains(':'))
}

/// Opens the bare cache repository at `dir`, creating it when missing.
fn open_cache(url: &str, dir: &Path) -> Result<gix::Repository, FetchError> {
    let repo = if dir.join("HEAD").is_file() {
        gix::open(dir)
    } else {
        std::fs::create_dir_all(dir)
            .map_err(|e| fail(url, FetchStep::Cache, format!("{}: {e}", dir.display())))?;
        gix::init_bare(dir)
    };
    repo.map_err(|e| fail(url, FetchStep::Cache, format!("{}: {e:#}", dir.display())))
}

/// The refspecs to fetch: just the branch, or every branch and tag when a revision (which may
/// be any commit) is asked for.
fn refspecs(req: &FetchRequest) -> Vec<String> {
    if req.revision.is_empty() {
        let branch = branch_of(req);
        vec![format!("+refs/heads/{branch}:refs/remotes/origin/{branch}")]
    } else {
        vec![
            "+refs/heads/*:refs/remotes/origin/*".to_string(),
            "+refs/tags/*:refs/tags/*".to_string(),
        ]
    }
}

fn branch_of(req: &FetchRequest) -> &str {
    if req.branch.is_empty() {
        DEFAULT_BRANCH
    } else {
        &req.branch
    }
}

/// The commit a remote reference points to, peeling annotated tags.
fn ref_target(r: &Ref) -> Option<(&[u8], gix::ObjectId)> {
    match r {
        Ref::Peeled {
            full_ref_name,
            object,
            ..
        } => Some((full_ref_name.as_bytes(), *object)),
        Ref::Direct {
            full_ref_name,
            object,
        } => Some((full_ref_name.as_bytes(), *object)),
        Ref::Symbolic {
            full_ref_name,
            object,
            ..
        } => Some((full_ref_name.as_bytes(), *object)),
        Ref::Unborn { .. } => None,
    }
}

/// Which object the request wants, from the remote's references. `Ok(None)` means a commit
/// SHA that is not a reference tip (it must be fetched and looked up locally).
pub fn resolve_in_refs(
    req: &FetchRequest,
    refs: &[(String, gix::ObjectId)],
) -> Result<Option<gix::ObjectId>, String> {
    let find = |name: &str| refs.iter().find(|(n, _)| n == name).map(|(_, id)| *id);
    if !req.revision.is_empty() {
        if let Some(id) = find(&format!("refs/tags/{}", req.revision))
            .or_else(|| find(&format!("refs/heads/{}", req.revision)))
        {
            return Ok(Some(id));
        }
        if is_commit_sha(&req.revision) {
            return Ok(None);
        }
        return Err(format!(
            "revision {} is neither a tag, a branch nor a commit SHA of the repository",
            req.revision
        ));
    }
    let branch = branch_of(req);
    find(&format!("refs/heads/{branch}"))
        .map(Some)
        .ok_or_else(|| format!("branch {branch} not found"))
}

/// The HTTP options gix passes to its reqwest backend: CA bundle, TLS verification, timeout.
fn http_backend(
    req: &FetchRequest,
) -> gix::protocol::transport::client::blocking_io::http::reqwest::Options {
    use gix::protocol::transport::client::blocking_io::http::reqwest::Options;
    let ca = req.ca_bundle.clone();
    let insecure = req.insecure_skip_tls_verify;
    let timeout = req.timeout;
    Options {
        configure_client: Some(Box::new(
            move |mut builder: reqwest::blocking::ClientBuilder| {
                if !timeout.is_zero() {
                    builder = builder.timeout(timeout);
                }
                if insecure {
                    builder = builder.tls_danger_accept_invalid_certs(true);
                }
                if let Some(pem) = &ca {
                    let certs = reqwest::Certificate::from_pem_bundle(pem)
                        .map_err(gix::Error::from_error)?;
                    builder = builder.tls_certs_merge(certs);
                }
                Ok(builder)
            },
        )),
        configure_request: None,
    }
}

/// Resolves the request on the remote and makes sure its commit is in the cache repository at
/// `cache_dir` (fetching only when it is not there yet).
pub fn fetch(req: &FetchRequest, cache_dir: &Path) -> Result<Fetched, FetchError> {
    let url = req.url.as_str();
    if is_ssh_url(url) {
        return Err(fail(
            url,
            FetchStep::ListRefs,
            "ssh repositories are not supported by fleet-rs yet; use an https URL with a basic-auth clientSecretName",
        ));
    }
    install_crypto_provider();
    let repo = open_cache(url, cache_dir)?;
    let remote = repo
        .remote_at(url)
        .and_then(|r| {
            r.with_refspecs(
                refspecs(req).iter().map(String::as_str),
                gix::remote::Direction::Fetch,
            )
        })
        .map_err(|e| fail(url, FetchStep::ListRefs, format!("{e:#}")))?
        .with_fetch_tags(gix::remote::fetch::Tags::None);
    let mut connection = remote
        .connect(gix::remote::Direction::Fetch)
        .map_err(|e| fail(url, FetchStep::ListRefs, format!("{e:#}")))?;
    if url.starts_with("http://") || url.starts_with("https://") {
        let mut options = repo
            .transport_options(url, None)
            .map_err(|e| fail(url, FetchStep::ListRefs, format!("{e:#}")))?
            .and_then(|o| {
                o.downcast::<gix::protocol::transport::client::blocking_io::http::Options>()
                    .ok()
            })
            .map(|o| *o)
            .unwrap_or_default();
        options.backend = Some(Arc::new(Mutex::new(http_backend(req))));
        connection.set_transport_options(Box::new(options));
    }
    // Never fall back to credential helpers or prompts: the controller has no terminal and
    // must only use the GitRepo's secret.
    let auth = req.auth.clone();
    let connection = connection.with_credentials(move |action| match action {
        gix::credentials::helper::Action::Get(ctx) => match &auth {
            Some(a) => Ok(Some(gix::credentials::protocol::Outcome {
                identity: gix::sec::identity::Account {
                    username: a.username.clone(),
                    password: a.password.clone(),
                    oauth_refresh_token: None,
                },
                next: ctx.into(),
            })),
            None => Err(gix::Error::from_error(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "the repository requires authentication and the GitRepo has no clientSecretName",
            ))),
        },
        _ => Ok(None),
    });
    let prepare = connection
        .prepare_fetch(gix::progress::Discard, Default::default())
        .map_err(|e| fail(url, FetchStep::ListRefs, format!("{e:#}")))?;
    let refs: Vec<(String, gix::ObjectId)> = prepare
        .ref_map()
        .remote_refs
        .iter()
        .filter_map(ref_target)
        .map(|(name, id)| (String::from_utf8_lossy(name).into_owned(), id))
        .collect();
    let step_ref = if req.revision.is_empty() {
        format!("{} refs/heads/{}", FetchStep::ResolveRef, branch_of(req))
    } else {
        format!("{} {}", FetchStep::ResolveRef, req.revision)
    };
    let wanted = resolve_in_refs(req, &refs).map_err(|m| FetchError {
        url: url.to_string(),
        step: FetchStep::ResolveRef,
        message: format!("{step_ref}: {m}"),
    })?;
    let already_there = wanted.is_some_and(|id| repo.has_object(id));
    let mut downloaded = false;
    if !already_there {
        let interrupt = AtomicBool::new(false);
        prepare
            .receive(gix::progress::Discard, &interrupt)
            .map_err(|e| fail(url, FetchStep::Fetch, format!("{e:#}")))?;
        downloaded = true;
    } else {
        drop(prepare);
    }
    // Reopen so that packs written by the fetch are seen.
    let repo = open_cache(url, cache_dir)?;
    let id = match wanted {
        Some(id) => id,
        None => gix::ObjectId::from_hex(req.revision.as_bytes())
            .map_err(|e| fail(url, FetchStep::ResolveRef, format!("{step_ref}: {e}")))?,
    };
    let commit = repo
        .find_object(id)
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| {
            fail(
                url,
                FetchStep::ResolveRef,
                format!("{step_ref}: commit {id} not found in the repository: {e}"),
            )
        })?;
    Ok(Fetched {
        commit: commit.id.to_string(),
        downloaded,
    })
}

/// Writes the tree of `commit` (from the cache repository at `cache_dir`) into `dest`,
/// replacing whatever was there. Symbolic links that point outside the checkout are left out,
/// so that a repository cannot make the controller read its host's files.
pub fn checkout(url: &str, cache_dir: &Path, commit: &str, dest: &Path) -> Result<(), FetchError> {
    let step = |m: String| fail(url, FetchStep::Checkout, format!("commit {commit}: {m}"));
    let repo = open_cache(url, cache_dir)?;
    let id = gix::ObjectId::from_hex(commit.as_bytes()).map_err(|e| step(e.to_string()))?;
    let tree = repo
        .find_commit(id)
        .and_then(|c| c.tree())
        .map_err(|e| step(format!("{e:#}")))?;
    let tmp = dest.with_extension("partial");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| step(format!("{}: {e}", tmp.display())))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| step(format!("{}: {e}", tmp.display())))?;
    write_tree(&repo, &tree, &tmp, Path::new("")).map_err(step)?;
    if dest.exists() {
        std::fs::remove_dir_all(dest).map_err(|e| step(format!("{}: {e}", dest.display())))?;
    }
    std::fs::rename(&tmp, dest).map_err(|e| step(format!("{}: {e}", dest.display())))?;
    Ok(())
}

fn write_tree(
    repo: &gix::Repository,
    tree: &gix::Tree<'_>,
    root: &Path,
    relative: &Path,
) -> Result<(), String> {
    use gix::object::tree::EntryKind;
    let dir = root.join(relative);
    for entry in tree.iter() {
        let entry = entry.map_err(|e| format!("{}: {e:#}", relative.display()))?;
        let name = entry.filename().to_str_lossy().into_owned();
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(format!(
                "invalid file name {name:?} in {}",
                relative.display()
            ));
        }
        let rel = relative.join(&name);
        let path = dir.join(&name);
        let io = |e: std::io::Error| format!("{}: {e}", rel.display());
        match entry.kind() {
            EntryKind::Tree => {
                std::fs::create_dir_all(&path).map_err(io)?;
                let sub = repo
                    .find_tree(entry.oid().to_owned())
                    .map_err(|e| format!("{}: {e:#}", rel.display()))?;
                write_tree(repo, &sub, root, &rel)?;
            }
            EntryKind::Blob | EntryKind::BlobExecutable => {
                let blob = repo
                    .find_object(entry.oid().to_owned())
                    .map_err(|e| format!("{}: {e:#}", rel.display()))?;
                std::fs::write(&path, &blob.data).map_err(io)?;
                #[cfg(unix)]
                if entry.kind() == EntryKind::BlobExecutable {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                        .map_err(io)?;
                }
            }
            EntryKind::Link => {
                let blob = repo
                    .find_object(entry.oid().to_owned())
                    .map_err(|e| format!("{}: {e:#}", rel.display()))?;
                let target = PathBuf::from(blob.data.to_str_lossy().into_owned());
                if link_stays_inside(relative, &target) {
                    #[cfg(unix)]
                    std::os::unix::fs::symlink(&target, &path).map_err(io)?;
                } else {
                    tracing::warn!(link = %rel.display(), target = %target.display(), "skipping a symbolic link that leaves the repository");
                }
            }
            // Submodules are not cloned (neither does Fleet's gitcloner by default).
            EntryKind::Commit => {
                std::fs::create_dir_all(&path).map_err(io)?;
            }
        }
    }
    Ok(())
}

/// Whether a link in folder `dir` (relative to the checkout) to `target` resolves inside it.
fn link_stays_inside(dir: &Path, target: &Path) -> bool {
    use std::path::Component;
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = dir.components().count() as i64;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(hex: &str) -> gix::ObjectId {
        gix::ObjectId::from_hex(hex.as_bytes()).unwrap()
    }

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    fn refs() -> Vec<(String, gix::ObjectId)> {
        vec![
            ("refs/heads/master".into(), id(A)),
            ("refs/heads/dev".into(), id(B)),
            ("refs/tags/v1".into(), id(B)),
        ]
    }

    #[test]
    fn branch_defaults_to_master() {
        let req = FetchRequest::default();
        assert_eq!(resolve_in_refs(&req, &refs()), Ok(Some(id(A))));
        let req = FetchRequest {
            branch: "dev".into(),
            ..Default::default()
        };
        assert_eq!(resolve_in_refs(&req, &refs()), Ok(Some(id(B))));
        let req = FetchRequest {
            branch: "nope".into(),
            ..Default::default()
        };
        assert_eq!(
            resolve_in_refs(&req, &refs()),
            Err("branch nope not found".to_string())
        );
    }

    #[test]
    fn revision_is_a_tag_or_a_sha() {
        let tag = FetchRequest {
            revision: "v1".into(),
            branch: "master".into(),
            ..Default::default()
        };
        assert_eq!(resolve_in_refs(&tag, &refs()), Ok(Some(id(B))));
        let sha = FetchRequest {
            revision: "3333333333333333333333333333333333333333".into(),
            ..Default::default()
        };
        assert_eq!(resolve_in_refs(&sha, &refs()), Ok(None));
        let bad = FetchRequest {
            revision: "v9".into(),
            ..Default::default()
        };
        assert!(resolve_in_refs(&bad, &refs()).unwrap_err().contains("v9"));
    }

    #[test]
    fn links_must_stay_inside_the_checkout() {
        assert!(link_stays_inside(Path::new("a/b"), Path::new("../c")));
        assert!(link_stays_inside(Path::new(""), Path::new("x/y")));
        assert!(!link_stays_inside(Path::new("a"), Path::new("../../etc")));
        assert!(!link_stays_inside(Path::new(""), Path::new("/etc/passwd")));
    }

    #[test]
    fn ssh_urls_are_recognised() {
        assert!(is_ssh_url("git@github.com:rancher/fleet.git"));
        assert!(is_ssh_url("ssh://git@example.com/x.git"));
        assert!(!is_ssh_url("https://user@example.com/x.git"));
        assert!(!is_ssh_url("file:///tmp/x"));
    }

    #[test]
    fn credentials_are_not_printed() {
        let a = BasicAuth {
            username: "u".into(),
            password: "secret".into(),
        };
        assert!(!format!("{a:?}").contains("secret"));
    }
}

//! `fleet gitcloner`: the init container of a git job (`--gitjob-mode job`, Fleet's
//! `cmd/gitcloner`). Clones `<repo>` at a branch or revision into `<path>`, which is usually the
//! root of an emptyDir volume shared with the `fleet apply` container.
//!
//! The git work is the controller's own fetcher ([`fleet_controller::gitops::fetch`], gix over
//! `file://` and http(s) with a CA bundle and basic auth), so the job and the in-process mode
//! resolve branches and revisions the same way. The checkout lands inside the existing target
//! folder: a volume root cannot be replaced by a rename, so the files are staged in a hidden
//! folder inside the target (same filesystem) and then moved up one by one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fleet_controller::gitops::cabundle::validate_pem_bundle;
use fleet_controller::gitops::fetch::{self, BasicAuth, FetchRequest};

/// Hidden folder inside the target holding the fetch cache and the staged checkout; removed
/// once the files are in place.
const STAGING_DIR: &str = ".fleet-gitcloner";

#[derive(Debug, clap::Args)]
pub struct GitClonerArgs {
    /// Repository URL (https://, http://, file:// or a local path)
    pub repo: String,
    /// Folder to clone into (created when missing; may be an existing empty folder)
    pub path: PathBuf,
    /// Branch to clone
    #[arg(short = 'b', long)]
    pub branch: Option<String>,
    /// Revision (commit SHA or tag) to check out; wins over --branch
    #[arg(long)]
    pub revision: Option<String>,
    /// PEM CA bundle trusted for https, in addition to the system roots
    #[arg(long)]
    pub ca_bundle_file: Option<PathBuf>,
    /// Do not verify the server's TLS certificate
    #[arg(long)]
    pub insecure_skip_tls: bool,
    /// Username for basic auth (used together with --password-file)
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// File holding the basic-auth password
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// SSH private key file (ssh repositories are not supported by fleet-rs)
    #[arg(long)]
    pub ssh_private_key_file: Option<PathBuf>,
    /// known_hosts file for ssh (ssh repositories are not supported by fleet-rs)
    #[arg(long)]
    pub known_hosts_file: Option<PathBuf>,
}

/// Why a clone failed; each message names the file, folder or repository involved.
#[derive(Debug, thiserror::Error)]
pub enum CloneError {
    #[error(
        "cloning {url}: ssh authentication (--ssh-private-key-file {key}) is not supported by fleet-rs; use an https URL with --username and --password-file"
    )]
    SshNotSupported { url: String, key: String },
    #[error("reading {what} {path}: {source}")]
    ReadFile {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("CA bundle file {path} is not a PEM certificate bundle: {message}")]
    InvalidCaBundle { path: String, message: String },
    #[error("cloning {url} into {path}: {message}")]
    Target {
        url: String,
        path: String,
        message: String,
    },
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, CloneError> {
    std::fs::read(path).map_err(|source| CloneError::ReadFile {
        what,
        path: path.display().to_string(),
        source,
    })
}

/// The fetch request the arguments describe (reads the password and CA files).
pub fn fetch_request(args: &GitClonerArgs) -> Result<FetchRequest, CloneError> {
    if let Some(key) = &args.ssh_private_key_file {
        return Err(CloneError::SshNotSupported {
            url: args.repo.clone(),
            key: key.display().to_string(),
        });
    }
    // Like Fleet's gitcloner, basic auth needs both the username and the password file; the
    // file's content is the password as is.
    let auth = match (&args.username, &args.password_file) {
        (Some(username), Some(file)) if !username.is_empty() => {
            let password = read_file("password file", file)?;
            Some(BasicAuth {
                username: username.clone(),
                password: String::from_utf8_lossy(&password).into_owned(),
            })
        }
        _ => None,
    };
    let ca_bundle = match &args.ca_bundle_file {
        Some(file) => {
            let pem = read_file("CA bundle file", file)?;
            validate_pem_bundle(&pem).map_err(|message| CloneError::InvalidCaBundle {
                path: file.display().to_string(),
                message,
            })?;
            Some(pem)
        }
        None => None,
    };
    Ok(FetchRequest {
        url: args.repo.clone(),
        branch: args.branch.clone().unwrap_or_default(),
        revision: args.revision.clone().unwrap_or_default(),
        auth,
        ca_bundle,
        insecure_skip_tls_verify: args.insecure_skip_tls,
        timeout: std::time::Duration::ZERO,
    })
}

/// Clones the repository into `target` (creating it when missing) and returns the commit.
/// Entries already in `target` are kept; one with the same name as a repository file is an
/// error rather than silently replaced.
pub fn clone_into(req: &FetchRequest, target: &Path) -> Result<String, CloneError> {
    let target_err = |message: String| CloneError::Target {
        url: req.url.clone(),
        path: target.display().to_string(),
        message,
    };
    std::fs::create_dir_all(target).map_err(|e| target_err(format!("creating the folder: {e}")))?;
    let staging = target.join(STAGING_DIR);
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .map_err(|e| target_err(format!("removing {}: {e}", staging.display())))?;
    }
    let result = fetch_and_move(req, target, &staging);
    // The staging folder holds the fetch cache; it must not reach `fleet apply`.
    let cleanup = std::fs::remove_dir_all(&staging);
    let commit = result?;
    if let Err(e) = cleanup
        && e.kind() != std::io::ErrorKind::NotFound
    {
        return Err(target_err(format!("removing {}: {e}", staging.display())));
    }
    Ok(commit)
}

fn fetch_and_move(req: &FetchRequest, target: &Path, staging: &Path) -> Result<String, CloneError> {
    let target_err = |message: String| CloneError::Target {
        url: req.url.clone(),
        path: target.display().to_string(),
        message,
    };
    let cache = staging.join("cache");
    let checkout = staging.join("checkout");
    let fetched = fetch::fetch(req, &cache)?;
    fetch::checkout(&req.url, &cache, &fetched.commit, &checkout)?;
    let entries = std::fs::read_dir(&checkout)
        .map_err(|e| target_err(format!("{}: {e}", checkout.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| target_err(format!("{}: {e}", checkout.display())))?;
        let name = entry.file_name();
        let dest = target.join(&name);
        if dest.symlink_metadata().is_ok() {
            return Err(target_err(format!(
                "{} already exists in the target folder",
                name.to_string_lossy()
            )));
        }
        // Same filesystem (the staging folder is inside the target), so a rename suffices.
        std::fs::rename(entry.path(), &dest)
            .map_err(|e| target_err(format!("moving {}: {e}", name.to_string_lossy())))?;
    }
    Ok(fetched.commit)
}

pub fn run(args: &GitClonerArgs) -> anyhow::Result<ExitCode> {
    if args.known_hosts_file.is_some() {
        tracing::debug!("--known-hosts-file is only used for ssh repositories; ignored");
    }
    let req = fetch_request(args)?;
    let commit = clone_into(&req, &args.path)?;
    eprintln!(
        "cloned {} at commit {commit} into {}",
        args.repo,
        args.path.display()
    );
    Ok(ExitCode::SUCCESS)
}

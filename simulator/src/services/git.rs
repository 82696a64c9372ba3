//! A git working copy in a temporary folder, changed with the `git` CLI: what a user's
//! repository is to Fleet. It is served by [`super::GitHttpServer`] or read over `file://`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::ServiceError;

/// Runs `git args` in `dir` with no system or global configuration and a fixed identity;
/// returns its trimmed standard output.
pub(crate) fn run_git(dir: &Path, args: &[&str]) -> Result<String, ServiceError> {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=fleet-rs",
            "-c",
            "user.email=fleet-rs@example.com",
        ])
        .args(["-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .map_err(ServiceError::io(format!("running git {args:?}")))?;
    if !out.status.success() {
        return Err(ServiceError::Git {
            args: args.iter().map(|a| a.to_string()).collect(),
            dir: dir.display().to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A git repository with a work tree in a temporary folder (removed when dropped).
#[derive(Debug)]
pub struct GitWorkdir {
    dir: tempfile::TempDir,
    branch: String,
}

impl GitWorkdir {
    /// An empty repository whose first commit goes to `branch`.
    pub fn init(branch: &str) -> Result<Self, ServiceError> {
        let dir = tempfile::tempdir()
            .map_err(ServiceError::io("creating a folder for a git repository"))?;
        run_git(dir.path(), &["init", "-q", "-b", branch])?;
        Ok(GitWorkdir {
            dir,
            branch: branch.to_string(),
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// `file://` URL of the repository.
    pub fn url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    fn join(&self, path: &str) -> PathBuf {
        self.path().join(path)
    }

    /// Writes `content` to `path` (relative to the work tree), creating folders.
    pub fn write(&self, path: &str, content: &str) -> Result<(), ServiceError> {
        let file = self.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .map_err(ServiceError::io(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&file, content)
            .map_err(ServiceError::io(format!("writing {}", file.display())))
    }

    /// Removes a file or folder from the work tree (the next commit records it).
    pub fn remove(&self, path: &str) -> Result<(), ServiceError> {
        let target = self.join(path);
        if target.is_dir() {
            std::fs::remove_dir_all(&target)
        } else {
            std::fs::remove_file(&target)
        }
        .map_err(ServiceError::io(format!("removing {}", target.display())))
    }

    /// Copies the folder `from` to `to` (relative to the work tree).
    pub fn copy_dir(&self, from: &Path, to: &str) -> Result<(), ServiceError> {
        copy_recursively(from, &self.join(to))
    }

    /// Commits everything in the work tree; returns the commit id.
    pub fn commit(&self, message: &str) -> Result<String, ServiceError> {
        run_git(self.path(), &["add", "-A"])?;
        run_git(
            self.path(),
            &["commit", "-q", "--allow-empty", "-m", message],
        )?;
        run_git(self.path(), &["rev-parse", "HEAD"])
    }

    /// An annotated tag at the current commit.
    pub fn tag(&self, name: &str) -> Result<(), ServiceError> {
        run_git(self.path(), &["tag", "-a", name, "-m", name]).map(drop)
    }

    /// Runs any git command in the work tree.
    pub fn git(&self, args: &[&str]) -> Result<String, ServiceError> {
        run_git(self.path(), args)
    }

    /// Force-pushes the branch and the tags to the bare repository `bare`.
    pub fn push_to(&self, bare: &Path) -> Result<(), ServiceError> {
        let target = bare.display().to_string();
        run_git(
            self.path(),
            &["push", "-q", "--force", "--tags", &target, &self.branch],
        )
        .map(drop)
    }
}

fn copy_recursively(from: &Path, to: &Path) -> Result<(), ServiceError> {
    std::fs::create_dir_all(to).map_err(ServiceError::io(format!("creating {}", to.display())))?;
    let entries =
        std::fs::read_dir(from).map_err(ServiceError::io(format!("reading {}", from.display())))?;
    for entry in entries {
        let entry = entry.map_err(ServiceError::io(format!("reading {}", from.display())))?;
        let target = to.join(entry.file_name());
        let is_dir = entry
            .file_type()
            .map_err(ServiceError::io(format!(
                "reading {}",
                entry.path().display()
            )))?
            .is_dir();
        if is_dir {
            copy_recursively(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(ServiceError::io(format!(
                "copying {} to {}",
                entry.path().display(),
                target.display()
            )))?;
        }
    }
    Ok(())
}

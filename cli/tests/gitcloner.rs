//! `fleet gitcloner` (the git job's init container) and `fleet apply --cacerts-file`, run as
//! the real binary against local repositories made with the git CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure should panic

use std::path::Path;
use std::process::{Command, Output};

fn fleet(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleet"))
        .args(args)
        .current_dir(cwd)
        .env("FLEET_LOG", "warn")
        .output()
        .expect("running fleet")
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Fleet Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=master",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("running git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A repository with two commits on master (`app/cm.yaml` v1 then v2) and a branch `dev`
/// (v1 plus `dev-only.yaml`). Returns the tempdir and the SHA of the first commit.
fn make_repo() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    std::fs::create_dir_all(repo.join("app")).unwrap();
    std::fs::write(repo.join("app/cm.yaml"), "version: v1\n").unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "first"]);
    let first = git(repo, &["rev-parse", "HEAD"]);
    git(repo, &["checkout", "-q", "-b", "dev"]);
    std::fs::write(repo.join("dev-only.yaml"), "dev: true\n").unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "dev"]);
    git(repo, &["checkout", "-q", "master"]);
    std::fs::write(repo.join("app/cm.yaml"), "version: v2\n").unwrap();
    git(repo, &["commit", "-q", "-am", "second"]);
    (dir, first)
}

fn file_url(p: &Path) -> String {
    format!("file://{}", p.display())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn clones_a_branch_into_an_existing_empty_folder() {
    let (repo, _) = make_repo();
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("workspace");
    std::fs::create_dir(&target).unwrap();
    let url = file_url(repo.path());
    let target_arg = target.to_string_lossy().into_owned();

    let out = fleet(
        &["gitcloner", &url, &target_arg, "--branch", "dev"],
        work.path(),
    );
    assert!(out.status.success(), "gitcloner failed: {}", stderr(&out));
    assert_eq!(entries(&target), vec!["app", "dev-only.yaml"]);
    assert_eq!(
        std::fs::read_to_string(target.join("app/cm.yaml")).unwrap(),
        "version: v1\n"
    );

    // master, into another empty folder: the latest commit, no dev file.
    let master = work.path().join("master");
    std::fs::create_dir(&master).unwrap();
    let master_arg = master.to_string_lossy().into_owned();
    let out = fleet(
        &["gitcloner", &url, &master_arg, "--branch", "master"],
        work.path(),
    );
    assert!(out.status.success(), "gitcloner failed: {}", stderr(&out));
    assert_eq!(entries(&master), vec!["app"]);
    assert_eq!(
        std::fs::read_to_string(master.join("app/cm.yaml")).unwrap(),
        "version: v2\n"
    );
}

#[test]
fn clones_a_revision() {
    let (repo, first) = make_repo();
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("workspace");
    std::fs::create_dir(&target).unwrap();
    let url = file_url(repo.path());
    let target_arg = target.to_string_lossy().into_owned();

    let out = fleet(
        &["gitcloner", &url, &target_arg, "--revision", &first],
        work.path(),
    );
    assert!(out.status.success(), "gitcloner failed: {}", stderr(&out));
    assert_eq!(entries(&target), vec!["app"]);
    assert_eq!(
        std::fs::read_to_string(target.join("app/cm.yaml")).unwrap(),
        "version: v1\n"
    );
    assert!(stderr(&out).contains(&first), "{}", stderr(&out));
}

#[test]
fn a_missing_repository_is_an_error_naming_the_url() {
    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("no-such-repo");
    let url = file_url(&missing);
    let target = work.path().join("workspace");
    std::fs::create_dir(&target).unwrap();
    let target_arg = target.to_string_lossy().into_owned();

    let out = fleet(
        &["gitcloner", &url, &target_arg, "--branch", "master"],
        work.path(),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&url), "error does not name {url}: {err}");
    // Nothing is left behind in the target.
    assert!(entries(&target).is_empty(), "{:?}", entries(&target));
}

#[test]
fn a_missing_branch_is_an_error_naming_it() {
    let (repo, _) = make_repo();
    let work = tempfile::tempdir().unwrap();
    let target_arg = work.path().join("t").to_string_lossy().into_owned();
    let url = file_url(repo.path());
    let out = fleet(
        &["gitcloner", &url, &target_arg, "--branch", "nope"],
        work.path(),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("nope") && err.contains(&url), "{err}");
}

#[test]
fn ssh_keys_are_refused_clearly() {
    let work = tempfile::tempdir().unwrap();
    let key = work.path().join("id_rsa");
    std::fs::write(&key, "key").unwrap();
    let key_arg = key.to_string_lossy().into_owned();
    let target_arg = work.path().join("t").to_string_lossy().into_owned();
    let out = fleet(
        &[
            "gitcloner",
            "git@example.com:org/repo.git",
            &target_arg,
            "--branch",
            "main",
            "--ssh-private-key-file",
            &key_arg,
            "--known-hosts-file",
            "/dev/null",
        ],
        work.path(),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("not supported"), "{err}");
}

#[test]
fn a_garbage_ca_bundle_file_is_an_error_naming_it() {
    let (repo, _) = make_repo();
    let work = tempfile::tempdir().unwrap();
    let ca = work.path().join("ca.pem");
    std::fs::write(&ca, "this is not a certificate\n").unwrap();
    let ca_arg = ca.to_string_lossy().into_owned();
    let target_arg = work.path().join("t").to_string_lossy().into_owned();
    let url = file_url(repo.path());
    let out = fleet(
        &[
            "gitcloner",
            &url,
            &target_arg,
            "--branch",
            "master",
            "--ca-bundle-file",
            &ca_arg,
        ],
        work.path(),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&ca_arg), "error does not name {ca_arg}: {err}");
}

#[test]
fn apply_with_a_garbage_cacerts_file_is_an_error_naming_it() {
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("app")).unwrap();
    std::fs::write(
        work.path().join("app/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: b\n",
    )
    .unwrap();
    let ca = work.path().join("cacerts");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let ca_arg = ca.to_string_lossy().into_owned();
    let out = fleet(
        &[
            "apply",
            "-o",
            "-",
            "--commit",
            "abc",
            "--cacerts-file",
            &ca_arg,
            "myrepo",
            "app",
        ],
        work.path(),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&ca_arg), "error does not name {ca_arg}: {err}");

    // A missing file is named too.
    let missing = work
        .path()
        .join("missing-ca")
        .to_string_lossy()
        .into_owned();
    let out = fleet(
        &[
            "apply",
            "-o",
            "-",
            "--commit",
            "abc",
            "--cacerts-file",
            &missing,
            "myrepo",
            "app",
        ],
        work.path(),
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&missing), "{}", stderr(&out));

    // Without the flag the same folder builds (the error above is the CA file's).
    let out = fleet(
        &["apply", "-o", "-", "--commit", "abc", "myrepo", "app"],
        work.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn apply_with_a_valid_cacerts_file_builds_the_same_bundles() {
    // Any well-formed PEM bundle will do; the system's is there on most machines.
    let system_bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if !system_bundle.is_file() {
        eprintln!(
            "skipping: no system CA bundle at {}",
            system_bundle.display()
        );
        return;
    }
    let work = tempfile::tempdir().unwrap();
    for dir in ["app", "app/sub"] {
        std::fs::create_dir_all(work.path().join(dir)).unwrap();
        std::fs::write(
            work.path().join(dir).join("cm.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: b\n",
        )
        .unwrap();
    }
    std::fs::write(work.path().join("app/sub/fleet.yaml"), "namespace: sub\n").unwrap();
    let ca_arg = system_bundle.to_string_lossy().into_owned();
    let base = ["apply", "-o", "-", "--commit", "abc", "myrepo"];
    for paths in [&["app"][..], &["."][..], &[][..]] {
        let mut plain: Vec<&str> = base.to_vec();
        plain.extend(paths);
        let mut with_ca: Vec<&str> = base.to_vec();
        with_ca.extend(["--cacerts-file", &ca_arg]);
        with_ca.extend(paths);
        let without = fleet(&plain, work.path());
        assert!(without.status.success(), "{}", stderr(&without));
        let with = fleet(&with_ca, work.path());
        assert!(with.status.success(), "{}", stderr(&with));
        assert_eq!(
            String::from_utf8_lossy(&with.stdout),
            String::from_utf8_lossy(&without.stdout),
            "paths {paths:?}"
        );
    }
}

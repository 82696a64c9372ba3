//! `fleet apply`: build Bundles from folders and print them or write them to the cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use fleet_api::{Bundle, CorrectDrift};
use fleet_bundle::apply::{
    ApplyError, BuiltBundle, build_bundles, build_bundles_in_with, export_yaml,
};
use fleet_bundle::bundlereader::{ChartDownload, ReadOptions};

/// Environment variable: how many times `fleet apply` tries when a Bundle update conflicts.
pub const CONFLICT_RETRIES_ENV: &str = "FLEET_APPLY_CONFLICT_RETRIES";
const DEFAULT_CONFLICT_ATTEMPTS: usize = 5;

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// Namespace of the Bundles
    #[arg(short = 'n', long, default_value = "fleet-local")]
    pub namespace: String,
    /// Write the Bundles as YAML to this file (`-` for stdout) instead of the cluster
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Labels of the created Bundles (k=v, repeatable)
    #[arg(short = 'l', long = "label", value_parser = parse_key_value)]
    pub labels: Vec<(String, String)>,
    /// A file with targets and targetRestrictions (a BundleSpec) appended to each bundle
    #[arg(long)]
    pub targets_file: Option<PathBuf>,
    /// Compress every resource (base64+gz)
    #[arg(short = 'c', long)]
    pub compress: bool,
    /// Service account the bundles deploy with
    #[arg(short = 'a', long)]
    pub service_account: Option<String>,
    /// Generation number used to force a redeployment
    #[arg(long, default_value_t = 0)]
    pub sync_generation: i64,
    /// Force every resource into this namespace
    #[arg(long)]
    pub target_namespace: Option<String>,
    /// Create the bundles paused
    #[arg(long)]
    pub paused: bool,
    /// Commit to label the bundles with (default: $COMMIT, else `git rev-parse HEAD`)
    #[arg(long, env = "COMMIT")]
    pub commit: Option<String>,
    /// Keep deployed resources when the bundle is deleted
    #[arg(long)]
    pub keep_resources: bool,
    /// Delete the target namespace when the bundle is deleted
    #[arg(long)]
    pub delete_namespace: bool,
    /// Roll back changes made outside of Fleet
    #[arg(long)]
    pub correct_drift: bool,
    /// Use --force when correcting drift
    #[arg(long)]
    pub correct_drift_force: bool,
    /// Keep the Helm history of failed rollbacks
    #[arg(long)]
    pub correct_drift_keep_fail_history: bool,
    /// PEM CA bundle trusted when downloading Helm charts (the git job passes
    /// `/etc/rancher/certs/cacerts`, the Rancher CA)
    #[arg(long)]
    pub cacerts_file: Option<PathBuf>,
    /// Name of the GitRepo: bundles are named `<NAME>-<path>`
    pub name: String,
    /// Folders (globs) to read bundles from (default: .)
    pub dirs: Vec<String>,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected key=value, got {s:?}")),
    }
}

fn current_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn read_options(args: &ApplyArgs) -> ReadOptions {
    let mut labels: BTreeMap<String, String> = args.labels.iter().cloned().collect();
    let commit = args
        .commit
        .clone()
        .filter(|c| !c.is_empty())
        .or_else(current_commit);
    if let Some(commit) = commit {
        labels.insert(fleet_api::consts::COMMIT_LABEL.to_string(), commit);
    }
    ReadOptions {
        compress: args.compress,
        labels,
        service_account: args.service_account.clone().unwrap_or_default(),
        targets_file: args.targets_file.clone(),
        target_namespace: args.target_namespace.clone().unwrap_or_default(),
        paused: args.paused,
        sync_generation: args.sync_generation,
        keep_resources: args.keep_resources,
        delete_namespace: args.delete_namespace,
        correct_drift: Some(CorrectDrift {
            enabled: args.correct_drift,
            force: args.correct_drift_force,
            keep_fail_history: args.correct_drift_keep_fail_history,
        }),
    }
}

/// How remote Helm charts are downloaded: with the CA bundle of `--cacerts-file`, checked up
/// front so that a broken file fails the run even when no chart is remote.
fn chart_download(cacerts_file: &Path) -> anyhow::Result<ChartDownload> {
    let pem = std::fs::read(cacerts_file)
        .with_context(|| format!("reading --cacerts-file {}", cacerts_file.display()))?;
    fleet_controller::gitops::cabundle::validate_pem_bundle(&pem).map_err(|message| {
        anyhow::anyhow!(
            "--cacerts-file {} is not a PEM certificate bundle: {message}",
            cacerts_file.display()
        )
    })?;
    Ok(ChartDownload {
        auth: fleet_helm::repo::RepoOptions {
            ca_bundle: Some(pem),
            ..Default::default()
        },
    })
}

pub fn run(args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let opts = read_options(args);
    let download = args
        .cacerts_file
        .as_deref()
        .map(chart_download)
        .transpose()?;
    let built = match &download {
        None => build_bundles(&args.name, &args.dirs, &args.namespace, &opts),
        // Paths relative to the working directory (the checkout in a git job), read exactly as
        // the controller's in-process mode reads a checkout.
        Some(download) => build_bundles_in_with(
            Path::new("."),
            &args.name,
            &args.dirs,
            &args.namespace,
            &opts,
            download,
        ),
    };
    let built = match built {
        Ok(built) => built,
        // Every folder was read and none has anything left to deploy: as in Fleet, the
        // GitRepo's bundles still in the cluster are pruned, then the run fails saying so.
        Err(error @ ApplyError::NothingToDeploy { .. }) if args.output.is_none() => {
            async_runtime()?.block_on(cluster::prune_all(&args.name, &args.namespace))?;
            return Err(error.into());
        }
        Err(error) => return Err(error.into()),
    };
    for w in &built.warnings {
        eprintln!("warning: {w}");
    }
    for path in &built.empty {
        eprintln!("warning: {path}: no resources found to deploy");
    }
    match args.output.as_deref() {
        Some(output) => {
            let yaml = export_yaml(&built.bundles).map_err(anyhow::Error::msg)?;
            if output == "-" {
                let mut stdout = std::io::stdout().lock();
                stdout
                    .write_all(yaml.as_bytes())
                    .context("writing bundles to stdout")?;
                stdout.flush().context("writing bundles to stdout")?;
            } else {
                std::fs::write(output, yaml)
                    .with_context(|| format!("writing bundles to {output}"))?;
            }
        }
        None => {
            async_runtime()?.block_on(cluster::save_all(
                &args.name,
                &args.namespace,
                &built.bundles,
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn async_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn conflict_attempts() -> anyhow::Result<usize> {
    match std::env::var(CONFLICT_RETRIES_ENV) {
        Ok(s) if !s.is_empty() => {
            let n: usize = s
                .parse()
                .with_context(|| format!("{CONFLICT_RETRIES_ENV}={s:?} is not a number"))?;
            Ok(n.max(1))
        }
        _ => Ok(DEFAULT_CONFLICT_ATTEMPTS),
    }
}

/// The cluster side: create or update each Bundle, then delete the GitRepo's Bundles that are
/// gone from the repository.
mod cluster {
    use super::*;
    use kube::api::{Api, DeleteParams, ListParams, PostParams};
    use kube::core::{ApiResource, DynamicObject, GroupVersionKind};

    pub async fn save_all(
        repo: &str,
        namespace: &str,
        bundles: &[BuiltBundle],
    ) -> anyhow::Result<()> {
        let client = kube::Client::try_default()
            .await
            .context("connecting to the cluster of the current kubeconfig")?;
        let api: Api<Bundle> = Api::namespaced(client.clone(), namespace);
        let attempts = conflict_attempts()?;
        let mut names = BTreeSet::new();
        for b in bundles {
            let name = b.bundle.metadata.name.clone().unwrap_or_default();
            names.insert(name.clone());
            let mut tries = 0;
            loop {
                tries += 1;
                match save(&api, &b.bundle).await {
                    Err(kube::Error::Api(e)) if e.code == 409 && tries < attempts => {
                        tracing::info!(bundle = %name, "conflict while saving, retrying");
                        continue;
                    }
                    Err(e) => {
                        return Err(anyhow::Error::new(e)
                            .context(format!("saving bundle {namespace}/{name}")));
                    }
                    Ok(created) => {
                        eprintln!(
                            "{} (bundle): {namespace}/{name}",
                            if created { "created" } else { "updated" }
                        );
                        break;
                    }
                }
            }
            save_image_scans(&client, namespace, &b.image_scans).await?;
        }
        prune(&api, repo, namespace, &names).await
    }

    /// Deletes every Bundle of the GitRepo `repo` (its repository has nothing left to deploy).
    pub async fn prune_all(repo: &str, namespace: &str) -> anyhow::Result<()> {
        let client = kube::Client::try_default()
            .await
            .context("connecting to the cluster of the current kubeconfig")?;
        let api: Api<Bundle> = Api::namespaced(client, namespace);
        prune(&api, repo, namespace, &BTreeSet::new()).await
    }

    async fn save(api: &Api<Bundle>, bundle: &Bundle) -> Result<bool, kube::Error> {
        let name = bundle.metadata.name.clone().unwrap_or_default();
        match api.get_opt(&name).await? {
            None => {
                api.create(&PostParams::default(), bundle).await?;
                Ok(true)
            }
            Some(mut existing) => {
                existing.spec = bundle.spec.clone();
                existing.metadata.labels = bundle.metadata.labels.clone();
                existing.metadata.annotations = bundle.metadata.annotations.clone();
                api.replace(&name, &PostParams::default(), &existing)
                    .await?;
                Ok(false)
            }
        }
    }

    async fn save_image_scans(
        client: &kube::Client,
        namespace: &str,
        scans: &[serde_json::Value],
    ) -> anyhow::Result<()> {
        if scans.is_empty() {
            return Ok(());
        }
        let gvk = GroupVersionKind::gvk(
            fleet_api::consts::GROUP,
            fleet_api::consts::VERSION,
            "ImageScan",
        );
        let resource = ApiResource::from_gvk_with_plural(&gvk, "imagescans");
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        for scan in scans {
            let obj: DynamicObject =
                serde_json::from_value(scan.clone()).context("encoding an image scan")?;
            let name = obj.metadata.name.clone().unwrap_or_default();
            match api
                .get_opt(&name)
                .await
                .with_context(|| format!("reading image scan {name}"))?
            {
                None => {
                    api.create(&PostParams::default(), &obj)
                        .await
                        .with_context(|| format!("creating image scan {name}"))?;
                }
                Some(mut existing) => {
                    existing.data = obj.data.clone();
                    api.replace(&name, &PostParams::default(), &existing)
                        .await
                        .with_context(|| format!("updating image scan {name}"))?;
                }
            }
        }
        Ok(())
    }

    async fn prune(
        api: &Api<Bundle>,
        repo: &str,
        namespace: &str,
        keep: &BTreeSet<String>,
    ) -> anyhow::Result<()> {
        let selector = format!("{}={repo}", fleet_api::consts::REPO_LABEL);
        let list = api
            .list(&ListParams::default().labels(&selector))
            .await
            .with_context(|| format!("listing bundles of {repo} in {namespace}"))?;
        for b in list.items {
            let name = b.metadata.name.clone().unwrap_or_default();
            if !keep.contains(&name) {
                api.delete(&name, &DeleteParams::default())
                    .await
                    .with_context(|| {
                        format!("deleting bundle {namespace}/{name}, no longer in the repository")
                    })?;
                eprintln!("deleted (bundle): {namespace}/{name}");
            }
        }
        Ok(())
    }
}

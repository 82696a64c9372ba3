//! `fleet test`: match a bundle folder against a cluster and print what would be deployed.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use fleet_api::Bundle;
use fleet_bundle::bundlereader::{ReadOptions, read_bundle};
use fleet_bundle::render::{RenderOptions, export_yaml, render};
use fleet_bundle::target::{ClusterFacts, TargetMatcher};
use fleet_bundle::values::{ClusterContext, template_helm_values};

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Cluster labels to match against (k=v, repeatable)
    #[arg(short = 'l', long = "label", value_parser = parse_key_value)]
    pub labels: Vec<(String, String)>,
    /// Cluster group to match against
    #[arg(short = 'g', long)]
    pub group: Option<String>,
    /// Cluster group labels to match against (k=v, repeatable)
    #[arg(short = 'L', long = "group-label", value_parser = parse_key_value)]
    pub group_labels: Vec<(String, String)>,
    /// Cluster name to match against
    #[arg(short = 'N', long = "name")]
    pub cluster_name: Option<String>,
    /// Namespace of the cluster (for `${ .ClusterNamespace }` in Helm values)
    #[arg(long, default_value = "fleet-local")]
    pub cluster_namespace: String,
    /// Cluster annotations (k=v, repeatable) for `${ .ClusterAnnotations }`
    #[arg(long = "cluster-annotation", value_parser = parse_key_value)]
    pub cluster_annotations: Vec<(String, String)>,
    /// Use this target (by name) instead of matching
    #[arg(short = 't', long)]
    pub target: Option<String>,
    /// Only print which target matched
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Read a Bundle YAML file instead of a folder
    #[arg(short = 'b', long = "bundle-file")]
    pub bundle_file: Option<PathBuf>,
    /// The bundle folder (default: .)
    pub dir: Option<PathBuf>,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected key=value, got {s:?}")),
    }
}

fn load_bundle(args: &TestArgs) -> anyhow::Result<Bundle> {
    if let Some(file) = &args.bundle_file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        return fleet_api::parse_yaml(&text)
            .with_context(|| format!("reading bundle from {}", file.display()));
    }
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let read = read_bundle("test", &dir, &ReadOptions::default())?;
    for w in &read.warnings {
        eprintln!("warning: {w}");
    }
    Ok(read.bundle)
}

pub fn run(args: &TestArgs) -> anyhow::Result<ExitCode> {
    let bundle = load_bundle(args)?;
    let matcher = TargetMatcher::for_bundle(&bundle)?;
    let labels: BTreeMap<String, String> = args.labels.iter().cloned().collect();
    let group_labels: BTreeMap<String, String> = args.group_labels.iter().cloned().collect();
    let mut group = args.group.clone().unwrap_or_default();
    if group.is_empty() && labels.is_empty() && group_labels.is_empty() && args.target.is_none() {
        group = "default".into();
    }
    let cluster = ClusterFacts {
        name: args.cluster_name.clone().unwrap_or_default(),
        labels: labels.clone(),
        groups: BTreeMap::from([(group, group_labels)]),
    };
    let (target, customization) = match &args.target {
        Some(name) => {
            let t = matcher
                .target_named(name)
                .with_context(|| format!("no target named {name:?} in the bundle"))?;
            (t, t)
        }
        None => {
            let Some(t) = matcher.match_target(&cluster) else {
                let targets: Vec<&str> = bundle
                    .spec
                    .targets
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect();
                bail!(
                    "no match found: no target of bundle {} matches cluster {:?} (labels {:?}, groups {:?}); targets: {}",
                    bundle.metadata.name.as_deref().unwrap_or("test"),
                    cluster.name,
                    cluster.labels,
                    cluster.groups,
                    targets.join(", ")
                )
            };
            (t, matcher.match_customization(&cluster).unwrap_or(t))
        }
    };
    let interactive = std::io::stderr().is_terminal();
    if interactive || args.quiet {
        eprintln!("# Matched: {}", target.name);
    }
    if customization.do_not_deploy {
        eprintln!(
            "# target {} sets doNotDeploy: nothing is deployed to this cluster",
            customization.name
        );
        return Ok(ExitCode::SUCCESS);
    }
    if args.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    let mut options = fleet_bundle::options::merge(
        &bundle.spec.deployment_options(),
        &customization.deployment_options(),
    );
    let context = ClusterContext {
        name: cluster.name.clone(),
        namespace: args.cluster_namespace.clone(),
        labels,
        annotations: args.cluster_annotations.iter().cloned().collect(),
        template_values: Default::default(),
    };
    template_helm_values(&mut options, &context)?;
    let bundle_id = bundle
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| "test".into());
    let rendered = render(
        &bundle.spec.resources,
        &options,
        &RenderOptions::template(&bundle_id),
    )
    .with_context(|| match (&args.bundle_file, &args.dir) {
        (Some(file), _) => format!("rendering bundle {bundle_id} from {}", file.display()),
        (None, Some(dir)) => format!("rendering bundle {bundle_id} in {}", dir.display()),
        (None, None) => format!("rendering bundle {bundle_id}"),
    })?;
    let yaml = export_yaml(&rendered.objects)?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(yaml.as_bytes())
        .context("writing to stdout")?;
    stdout.flush().context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

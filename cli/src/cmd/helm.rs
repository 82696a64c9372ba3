//! `fleet helm template`: the in-process Helm engine with `helm template`'s flags and output.
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use fleet_helm::gotemplate::{ExecOptions, FuncSet, ParseOptions, Template};
use fleet_helm::values::ValueOptions;
use fleet_helm::{Chart, RenderOptions};

#[derive(Debug, clap::Args)]
pub struct HelmArgs {
    #[command(subcommand)]
    command: HelmCommand,
}

#[derive(Debug, clap::Subcommand)]
enum HelmCommand {
    /// Locally render templates (same flags and output as `helm template`)
    Template(TemplateArgs),
}

#[derive(Debug, clap::Args)]
struct TemplateArgs {
    /// `[NAME] CHART`: release name (optional) and chart folder or .tgz
    #[arg(num_args = 1..=2, value_name = "[NAME] CHART")]
    args: Vec<String>,
    /// Set values on the command line (key1=val1,key2=val2)
    #[arg(long = "set")]
    set: Vec<String>,
    /// Set STRING values on the command line
    #[arg(long = "set-string")]
    set_string: Vec<String>,
    /// Set values from files (key=path)
    #[arg(long = "set-file")]
    set_file: Vec<String>,
    /// Values files
    #[arg(short = 'f', long = "values")]
    values: Vec<PathBuf>,
    /// Namespace scope for this request
    #[arg(short = 'n', long = "namespace", default_value = "default")]
    namespace: String,
    /// Kubernetes version used for Capabilities.KubeVersion
    #[arg(long = "kube-version")]
    kube_version: Option<String>,
    /// Kubernetes api versions used for Capabilities.APIVersions (repeatable, comma-separated)
    #[arg(short = 'a', long = "api-versions", value_delimiter = ',')]
    api_versions: Vec<String>,
    /// Include CRDs in the templated output
    #[arg(long = "include-crds")]
    include_crds: bool,
    /// Only show manifests rendered from the given templates
    #[arg(short = 's', long = "show-only")]
    show_only: Vec<String>,
    /// Skip tests from templated output
    #[arg(long = "skip-tests")]
    skip_tests: bool,
    /// Template used to name the release
    #[arg(long = "name-template")]
    name_template: Option<String>,
    /// Set .Release.IsUpgrade instead of .Release.IsInstall
    #[arg(long = "is-upgrade")]
    is_upgrade: bool,
    /// Chart repository URL where to locate the requested chart
    #[arg(long = "repo")]
    repo: Option<String>,
    /// Chart version constraint (with --repo); default: the latest stable version
    #[arg(long = "version")]
    version: Option<String>,
    /// Chart repository username (with --repo)
    #[arg(long = "username")]
    username: Option<String>,
    /// Chart repository password (with --repo)
    #[arg(long = "password")]
    password: Option<String>,
    /// Verify certificates of HTTPS-enabled servers using this CA bundle (with --repo)
    #[arg(long = "ca-file")]
    ca_file: Option<PathBuf>,
    /// Skip TLS certificate checks for the chart download (with --repo)
    #[arg(long = "insecure-skip-tls-verify")]
    insecure_skip_tls_verify: bool,
    /// Pass credentials to all domains (with --repo)
    #[arg(long = "pass-credentials")]
    pass_credentials: bool,
}

pub fn run(args: &HelmArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        HelmCommand::Template(t) => template(t),
    }
}

fn template(args: &TemplateArgs) -> anyhow::Result<ExitCode> {
    let (name, chart_path) = match args.args.as_slice() {
        [chart] => (None, chart.clone()),
        [name, chart] => (Some(name.clone()), chart.clone()),
        _ => bail!("expected [NAME] CHART"),
    };
    let release_name = match (&name, &args.name_template) {
        (Some(n), _) => n.clone(),
        (None, Some(t)) => {
            let tpl = Template::parse("name-template", t, &ParseOptions::default())?;
            let exec = ExecOptions {
                funcs: FuncSet::Sprig,
                ..Default::default()
            };
            tpl.execute(&serde_json::Value::Null, &exec)?
        }
        (None, None) => "release-name".to_string(),
    };
    let chart = Chart::load(std::path::Path::new(&chart_path))
        .with_context(|| format!("loading chart {chart_path}"))?;
    let vopts = ValueOptions {
        values_files: args.values.clone(),
        set: args.set.clone(),
        set_string: args.set_string.clone(),
        set_file: args.set_file.clone(),
    };
    let values = vopts.merge()?;
    let opts = RenderOptions {
        release_name,
        namespace: args.namespace.clone(),
        is_install: !args.is_upgrade,
        is_upgrade: args.is_upgrade,
        kube_version: args.kube_version.clone(),
        api_versions: args.api_versions.clone(),
        include_crds: args.include_crds,
        skip_tests: args.skip_tests,
        show_only: args.show_only.clone(),
        ..Default::default()
    };
    let rendered = fleet_helm::render(&chart, &serde_json::Value::Object(values), &opts)?;
    let mut out = std::io::stdout().lock();
    out.write_all(rendered.to_helm_template_output().as_bytes())?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

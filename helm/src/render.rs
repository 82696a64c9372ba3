//! Rendering a chart the way `helm template` / `helm install` do: dependency conditions, tags,
//! aliases and import-values; values coalescing and schema validation; template execution with
//! `.Values`, `.Release`, `.Chart`, `.Capabilities`, `.Files`, `.Template`; manifest splitting,
//! YAML validation, hook separation and install-order sorting; `helm template` output.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use serde_json::{Map, Value as J};

use crate::chart::{Chart, ChartFile};
use crate::error::HelmError;
use crate::funcs::helm::{WARN_END, WARN_START};
use crate::gotemplate::exec::{Exec, ExecOptions, Host, MissingKey, NoHost, TreeSet};
use crate::gotemplate::funcs::{FuncSet, lookup_func};
use crate::gotemplate::parse;
use crate::gotemplate::value::{Object, Value};
use crate::values::{coalesce_tables, coalesce_values, path_value, table};

/// The Kubernetes version `helm template` assumes when none is given.
pub const DEFAULT_KUBE_VERSION: &str = "v1.20.0";

/// Helm's version as templates see it (`.Capabilities.HelmVersion`).
pub const HELM_VERSION: &str = "v3.5.0";

/// Options of one render.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    pub release_name: String,
    pub namespace: String,
    pub revision: i64,
    pub is_install: bool,
    pub is_upgrade: bool,
    /// `--kube-version` (`1.20`, `v1.20.3`); default [`DEFAULT_KUBE_VERSION`].
    pub kube_version: Option<String>,
    /// Extra `--api-versions` (`group/version` or `group/version/Kind`).
    pub api_versions: Vec<String>,
    pub include_crds: bool,
    pub skip_tests: bool,
    /// `--show-only` patterns (`templates/x.yaml`, globs allowed).
    pub show_only: Vec<String>,
    /// Template function limits (output size, depth).
    pub max_output_bytes: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            release_name: "release-name".into(),
            namespace: "default".into(),
            revision: 1,
            is_install: true,
            is_upgrade: false,
            kube_version: None,
            api_versions: Vec::new(),
            include_crds: false,
            skip_tests: false,
            show_only: Vec::new(),
            max_output_bytes: 64 << 20,
        }
    }
}

/// One rendered document.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// `chart/templates/x.yaml` (or `chart/crds/x.yaml`).
    pub source: String,
    pub content: String,
    pub kind: String,
    pub name: String,
    /// `helm.sh/hook` events, empty for plain manifests.
    pub hook_events: Vec<String>,
}

impl Manifest {
    pub fn is_hook(&self) -> bool {
        !self.hook_events.is_empty()
    }
    pub fn is_test(&self) -> bool {
        self.hook_events
            .iter()
            .any(|e| e == "test" || e == "test-success")
    }
}

/// The result of a render.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    /// `crds/` files (only when `include_crds`).
    pub crds: Vec<Manifest>,
    /// Plain manifests in Helm's install order.
    pub manifests: Vec<Manifest>,
    /// Hooks in Helm's order (tests excluded when `skip_tests`).
    pub hooks: Vec<Manifest>,
    /// The rendered NOTES.txt of the top chart.
    pub notes: Option<String>,
    show_only: Vec<String>,
}

impl Rendered {
    /// Exactly what `helm template` prints.
    pub fn to_helm_template_output(&self) -> String {
        let full = self.full_output();
        if self.show_only.is_empty() {
            return full;
        }
        let docs = split_output_docs(&full);
        let mut out = String::new();
        for pat in &self.show_only {
            let matcher = show_only_matcher(pat);
            for d in &docs {
                if let Some(path) = source_path_without_chart(d)
                    && (matcher.as_ref().is_some_and(|m| m.is_match(path)) || path == pat)
                {
                    out.push_str("---\n");
                    out.push_str(d);
                    out.push('\n');
                }
            }
        }
        out
    }

    fn full_output(&self) -> String {
        let mut manifest = String::new();
        for m in self.crds.iter().chain(self.manifests.iter()) {
            manifest.push_str(&format!("---\n# Source: {}\n{}\n", m.source, m.content));
        }
        let mut out = String::new();
        out.push_str(manifest.trim());
        out.push('\n');
        for h in &self.hooks {
            out.push_str(&format!("---\n# Source: {}\n{}\n", h.source, h.content));
        }
        out
    }

    /// All documents in output order (CRDs, manifests, hooks).
    pub fn all(&self) -> impl Iterator<Item = &Manifest> {
        self.crds
            .iter()
            .chain(self.manifests.iter())
            .chain(self.hooks.iter())
    }
}

fn show_only_matcher(pat: &str) -> Option<globset::GlobMatcher> {
    globset::GlobBuilder::new(pat)
        .literal_separator(true)
        .build()
        .ok()
        .map(|g| g.compile_matcher())
}

/// Splits output at `---` lines, keeping each document's text up to the next separator line.
fn split_output_docs(full: &str) -> Vec<String> {
    let mut docs = Vec::new();
    let mut cur: Option<String> = None;
    for line in full.split_inclusive('\n') {
        if line.starts_with("---") && line[3..].trim().is_empty() {
            if let Some(c) = cur.take() {
                docs.push(c);
            }
            cur = Some(String::new());
            continue;
        }
        match &mut cur {
            Some(c) => c.push_str(line),
            None => cur = Some(line.to_string()),
        }
    }
    if let Some(c) = cur {
        docs.push(c);
    }
    docs.into_iter().filter(|d| !d.trim().is_empty()).collect()
}

fn source_path_without_chart(doc: &str) -> Option<&str> {
    let i = doc.find("# Source: ")?;
    let rest = &doc[i + "# Source: ".len()..];
    let line = rest.lines().next()?;
    let (_, path) = line.split_once('/')?;
    Some(path)
}

/// Helm's install order of kinds.
pub const INSTALL_ORDER: &[&str] = &[
    "PriorityClass",
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Sorts manifests by kind install order, then source path (unknown kinds last, by kind).
pub fn sort_by_kind(ms: &mut [Manifest]) {
    let rank = |k: &str| INSTALL_ORDER.iter().position(|x| *x == k);
    ms.sort_by(|a, b| {
        let (ra, rb) = (rank(&a.kind), rank(&b.kind));
        match (ra, rb) {
            (Some(x), Some(y)) if x != y => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) if a.kind != b.kind => a.kind.cmp(&b.kind),
            _ => a.source.cmp(&b.source),
        }
    });
}

/// Kubernetes versions and API groups.
#[derive(Debug, Clone)]
pub struct Capabilities {
    pub kube_version: String,
    pub major: String,
    pub minor: String,
    pub api_versions: Vec<String>,
}

impl Capabilities {
    pub fn new(
        kube_version: Option<&str>,
        extra_apis: &[String],
    ) -> Result<Capabilities, HelmError> {
        let raw = kube_version.unwrap_or(DEFAULT_KUBE_VERSION);
        let v = crate::funcs::semver::Version::parse(raw).map_err(|_| {
            HelmError::Values(format!(
                "invalid kube version {raw:?}: Invalid Semantic Version"
            ))
        })?;
        let mut apis: Vec<String> = DEFAULT_API_VERSIONS.iter().map(|s| s.to_string()).collect();
        for a in extra_apis {
            for p in a.split(',') {
                let p = p.trim();
                if !p.is_empty() {
                    apis.push(p.to_string());
                }
            }
        }
        let mut kv = format!("v{}.{}.{}", v.major, v.minor, v.patch);
        if !v.pre.is_empty() {
            kv.push('-');
            kv.push_str(&v.pre);
        }
        if !v.build.is_empty() {
            kv.push('+');
            kv.push_str(&v.build);
        }
        Ok(Capabilities {
            kube_version: kv,
            major: v.major.to_string(),
            minor: v.minor.to_string(),
            api_versions: apis,
        })
    }
}

/// Group/versions a default Kubernetes knows (Helm's default version set).
pub const DEFAULT_API_VERSIONS: &[&str] = &[
    "v1",
    "admissionregistration.k8s.io/v1",
    "admissionregistration.k8s.io/v1beta1",
    "apiextensions.k8s.io/v1",
    "apiextensions.k8s.io/v1beta1",
    "apiregistration.k8s.io/v1",
    "apiregistration.k8s.io/v1beta1",
    "apps/v1",
    "apps/v1beta1",
    "apps/v1beta2",
    "authentication.k8s.io/v1",
    "authentication.k8s.io/v1beta1",
    "authorization.k8s.io/v1",
    "authorization.k8s.io/v1beta1",
    "autoscaling/v1",
    "autoscaling/v2beta1",
    "autoscaling/v2beta2",
    "batch/v1",
    "batch/v1beta1",
    "certificates.k8s.io/v1",
    "certificates.k8s.io/v1beta1",
    "coordination.k8s.io/v1",
    "coordination.k8s.io/v1beta1",
    "discovery.k8s.io/v1beta1",
    "events.k8s.io/v1",
    "events.k8s.io/v1beta1",
    "extensions/v1beta1",
    "flowcontrol.apiserver.k8s.io/v1beta1",
    "networking.k8s.io/v1",
    "networking.k8s.io/v1beta1",
    "node.k8s.io/v1",
    "node.k8s.io/v1beta1",
    "policy/v1beta1",
    "rbac.authorization.k8s.io/v1",
    "rbac.authorization.k8s.io/v1beta1",
    "scheduling.k8s.io/v1",
    "scheduling.k8s.io/v1beta1",
    "storage.k8s.io/v1",
    "storage.k8s.io/v1beta1",
];

struct KubeVersionObj {
    version: String,
    major: String,
    minor: String,
}

impl Object for KubeVersionObj {
    fn type_name(&self) -> &str {
        "chartutil.KubeVersion"
    }
    fn field(&self, name: &str) -> Option<Value> {
        Some(Value::str(match name {
            "Version" | "GitVersion" => &self.version,
            "Major" => &self.major,
            "Minor" => &self.minor,
            _ => return None,
        }))
    }
    fn has_method(&self, name: &str) -> bool {
        name == "String"
    }
    fn call(&self, name: &str, _args: &[Value]) -> Option<Result<Value, String>> {
        (name == "String").then(|| Ok(Value::str(&self.version)))
    }
    fn display(&self) -> String {
        self.version.clone()
    }
    fn to_json(&self) -> J {
        serde_json::json!({"Version": self.version, "Major": self.major, "Minor": self.minor})
    }
}

struct ApiVersionsObj(Vec<String>);

impl Object for ApiVersionsObj {
    fn type_name(&self) -> &str {
        "chartutil.VersionSet"
    }
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }
    fn has_method(&self, name: &str) -> bool {
        name == "Has"
    }
    fn call(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        if name != "Has" {
            return None;
        }
        if args.len() != 1 {
            return Some(Err(format!(
                "wrong number of args for Has: want 1 got {}",
                args.len()
            )));
        }
        let want = args[0].as_str().unwrap_or("");
        Some(Ok(Value::Bool(self.0.iter().any(|a| a == want))))
    }
    fn display(&self) -> String {
        format!("[{}]", self.0.join(" "))
    }
    fn to_json(&self) -> J {
        J::from(self.0.clone())
    }
}

struct StructObj {
    type_name: &'static str,
    fields: Map<String, J>,
    values: BTreeMap<String, Value>,
}

impl Object for StructObj {
    fn type_name(&self) -> &str {
        self.type_name
    }
    fn field(&self, name: &str) -> Option<Value> {
        self.values.get(name).cloned()
    }
    fn display(&self) -> String {
        let parts: Vec<String> = self.values.values().map(Value::go_string).collect();
        format!("{{{}}}", parts.join(" "))
    }
    fn to_json(&self) -> J {
        J::Object(self.fields.clone())
    }
}

fn struct_obj(type_name: &'static str, fields: J, json_form: Option<J>) -> Value {
    let fm = fields.as_object().cloned().unwrap_or_default();
    let values = fm
        .iter()
        .map(|(k, v)| (k.clone(), Value::from_json(v)))
        .collect();
    let json = json_form
        .and_then(|j| j.as_object().cloned())
        .unwrap_or_else(|| fm.clone());
    Value::Object(Rc::new(StructObj {
        type_name,
        fields: json,
        values,
    }))
}

/// `.Files`: the chart's non-template files.
pub struct FilesObj {
    files: Vec<ChartFile>,
}

impl FilesObj {
    fn get(&self, name: &str) -> Option<&ChartFile> {
        self.files.iter().find(|f| f.name == name)
    }
}

impl Object for FilesObj {
    fn type_name(&self) -> &str {
        "engine.files"
    }
    fn field(&self, _name: &str) -> Option<Value> {
        None
    }
    fn has_method(&self, name: &str) -> bool {
        matches!(
            name,
            "Get" | "GetBytes" | "Glob" | "AsConfig" | "AsSecrets" | "Lines"
        )
    }
    fn call(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        let arg = args.first().and_then(Value::as_str).unwrap_or("");
        let need = |n: usize| -> Result<(), String> {
            if args.len() != n {
                Err(format!(
                    "wrong number of args for {name}: want {n} got {}",
                    args.len()
                ))
            } else {
                Ok(())
            }
        };
        Some((|| -> Result<Value, String> {
            match name {
                "Get" => {
                    need(1)?;
                    Ok(Value::str(
                        self.get(arg)
                            .map(|f| String::from_utf8_lossy(&f.data).into_owned())
                            .unwrap_or_default(),
                    ))
                }
                "GetBytes" => {
                    need(1)?;
                    Ok(Value::Bytes(Rc::new(
                        self.get(arg).map(|f| f.data.clone()).unwrap_or_default(),
                    )))
                }
                "Lines" => {
                    need(1)?;
                    let text = self
                        .get(arg)
                        .map(|f| String::from_utf8_lossy(&f.data).into_owned())
                        .unwrap_or_default();
                    if text.is_empty() {
                        return Ok(Value::from(Vec::new()));
                    }
                    Ok(Value::from(
                        text.split('\n').map(Value::str).collect::<Vec<_>>(),
                    ))
                }
                "Glob" => {
                    need(1)?;
                    let g = globset::GlobBuilder::new(arg)
                        .literal_separator(true)
                        .build()
                        .map_err(|e| e.to_string())?
                        .compile_matcher();
                    let files = self
                        .files
                        .iter()
                        .filter(|f| g.is_match(&f.name))
                        .cloned()
                        .collect();
                    Ok(Value::Object(Rc::new(FilesObj { files })))
                }
                "AsConfig" | "AsSecrets" => {
                    need(0)?;
                    let mut m = Map::new();
                    for f in &self.files {
                        let base = f.name.rsplit('/').next().unwrap_or(&f.name).to_string();
                        let v = if name == "AsConfig" {
                            String::from_utf8_lossy(&f.data).into_owned()
                        } else {
                            use base64::Engine;
                            base64::engine::general_purpose::STANDARD.encode(&f.data)
                        };
                        m.insert(base, J::String(v));
                    }
                    if m.is_empty() {
                        return Ok(Value::str(""));
                    }
                    Ok(Value::str(
                        crate::yaml::to_go_yaml_json(&J::Object(m)).trim_end_matches('\n'),
                    ))
                }
                _ => Err(format!("can't evaluate field {name} in type engine.files")),
            }
        })())
    }
    fn entries(&self) -> Option<Vec<(String, Value)>> {
        let mut v: Vec<(String, Value)> = self
            .files
            .iter()
            .map(|f| (f.name.clone(), Value::Bytes(Rc::new(f.data.clone()))))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Some(v)
    }
    fn display(&self) -> String {
        let parts: Vec<String> = self
            .files
            .iter()
            .map(|f| format!("{}:{:?}", f.name, f.data))
            .collect();
        format!("map[{}]", parts.join(" "))
    }
    fn to_json(&self) -> J {
        J::Object(
            self.files
                .iter()
                .map(|f| {
                    use base64::Engine;
                    (
                        f.name.clone(),
                        J::String(base64::engine::general_purpose::STANDARD.encode(&f.data)),
                    )
                })
                .collect(),
        )
    }
}

fn compatible(constraint: &str, version: &str) -> bool {
    if constraint.is_empty() {
        return true;
    }
    crate::funcs::semver::semver_compare(constraint, version).unwrap_or(false)
}

/// Helm's `processDependencyEnabled`: applies aliases, tags and conditions, dropping disabled subcharts.
fn process_dependency_enabled(
    c: &mut Chart,
    v: &Map<String, J>,
    path: &str,
) -> Result<(), HelmError> {
    if c.metadata.dependencies.is_empty() {
        return Ok(());
    }
    let mut chart_deps: Vec<Chart> = Vec::new();
    for existing in &c.dependencies {
        let declared = c.metadata.dependencies.iter().any(|r| {
            existing.name() == r.name && compatible(&r.version, &existing.metadata.version)
        });
        if !declared {
            chart_deps.push(existing.clone());
        }
    }
    for req in &mut c.metadata.dependencies {
        if let Some(found) = c
            .dependencies
            .iter()
            .find(|ch| ch.name() == req.name && compatible(&req.version, &ch.metadata.version))
        {
            let mut dep = found.clone();
            if !req.alias.is_empty() {
                dep.metadata.name = req.alias.clone();
            }
            chart_deps.push(dep);
        }
        if !req.alias.is_empty() {
            req.name = req.alias.clone();
        }
    }
    c.dependencies = chart_deps;
    for r in &mut c.metadata.dependencies {
        r.enabled = true;
    }
    let cvals = coalesce_values(c, v)?;
    // tags
    if let Some(tags) = table(&cvals, "tags") {
        for r in &mut c.metadata.dependencies {
            let (mut has_true, mut has_false) = (false, false);
            for t in &r.tags {
                match tags.get(t) {
                    Some(J::Bool(true)) => has_true = true,
                    Some(J::Bool(false)) => has_false = true,
                    _ => {}
                }
            }
            if !has_true && has_false {
                r.enabled = false;
            }
        }
    }
    // conditions
    for r in &mut c.metadata.dependencies {
        for cond in r.condition.trim().split(',') {
            let cond = cond.trim();
            if cond.is_empty() {
                continue;
            }
            match path_value(&cvals, &format!("{path}{cond}")) {
                Some(J::Bool(b)) => {
                    r.enabled = *b;
                    break;
                }
                Some(other) => {
                    tracing::warn!(
                        "condition path '{path}{cond}' for chart {} returned non-bool value {other}",
                        r.name
                    );
                }
                None => {}
            }
        }
    }
    let disabled: Vec<String> = c
        .metadata
        .dependencies
        .iter()
        .filter(|r| !r.enabled)
        .map(|r| r.name.clone())
        .collect();
    c.dependencies
        .retain(|d| !disabled.contains(&d.metadata.name));
    c.metadata
        .dependencies
        .retain(|r| !disabled.contains(&r.name));
    for sub in &mut c.dependencies {
        let subpath = format!("{path}{}.", sub.metadata.name);
        process_dependency_enabled(sub, &cvals, &subpath)?;
    }
    Ok(())
}

fn path_to_map(path: &str, data: Map<String, J>) -> Map<String, J> {
    if path == "." {
        return data;
    }
    let mut cur = data;
    for part in path.split('.').rev() {
        if part.is_empty() {
            continue;
        }
        let mut m = Map::new();
        m.insert(part.to_string(), J::Object(cur));
        cur = m;
    }
    cur
}

/// Helm's `processDependencyImportValues` (children first).
fn process_import_values(c: &mut Chart) -> Result<(), HelmError> {
    for sub in &mut c.dependencies {
        process_import_values(sub)?;
    }
    if c.metadata.dependencies.is_empty() {
        return Ok(());
    }
    let cvals = coalesce_values(c, &Map::new())?;
    let mut b = Map::new();
    let mut any = false;
    for r in &c.metadata.dependencies {
        for iv in &r.import_values {
            match iv {
                J::Object(m) => {
                    let child = m.get("child").and_then(J::as_str).unwrap_or("");
                    let parent = m.get("parent").and_then(J::as_str).unwrap_or("");
                    match table(&cvals, &format!("{}.{child}", r.name)) {
                        Some(vv) => {
                            let add = path_to_map(parent, vv.clone());
                            coalesce_tables(&mut b, &add);
                            any = true;
                        }
                        None => tracing::warn!(
                            "ImportValues missing table from chart {}: {child}",
                            r.name
                        ),
                    }
                }
                J::String(s) => match table(&cvals, &format!("{}.exports.{s}", r.name)) {
                    Some(vm) => {
                        let add = vm.clone();
                        coalesce_tables(&mut b, &add);
                        any = true;
                    }
                    None => tracing::warn!("ImportValues missing table: {}.exports.{s}", r.name),
                },
                _ => {}
            }
        }
    }
    if any {
        let mut vals = trim_nils(cvals);
        coalesce_tables(&mut vals, &b);
        c.values = vals;
    }
    Ok(())
}

fn trim_nils(m: Map<String, J>) -> Map<String, J> {
    m.into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match v {
            J::Object(o) => (k, J::Object(trim_nils(o))),
            other => (k, other),
        })
        .collect()
}

fn validate_schemas(c: &Chart, vals: &Map<String, J>, out: &mut String) -> Result<(), HelmError> {
    if let Some(schema) = &c.schema {
        let schema_json: J = serde_json::from_slice(schema).map_err(|e| {
            HelmError::InvalidChart(format!("{}: invalid values.schema.json: {e}", c.name()))
        })?;
        let validator = jsonschema::validator_for(&schema_json).map_err(|e| {
            HelmError::InvalidChart(format!("{}: invalid values.schema.json: {e}", c.name()))
        })?;
        let instance = J::Object(vals.clone());
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| {
                let p = e.instance_path().to_string();
                let p = if p.is_empty() {
                    "(root)".to_string()
                } else {
                    p.trim_start_matches('/').replace('/', ".")
                };
                format!("- {p}: {e}")
            })
            .collect();
        if !errors.is_empty() {
            out.push_str(&format!("{}:\n{}\n", c.name(), errors.join("\n")));
        }
    }
    for sub in &c.dependencies {
        let empty = Map::new();
        let sv = table(vals, sub.name()).unwrap_or(&empty);
        validate_schemas(sub, sv, out)?;
    }
    Ok(())
}

struct Renderable {
    path: String,
    text: String,
    data: Value,
    base_path: String,
}

fn collect_templates(
    c: &Chart,
    parent_path: Option<&str>,
    vals: &Value,
    top: &TopLevel,
    out: &mut Vec<Renderable>,
) -> Value {
    let full_path = match parent_path {
        None => c.name().to_string(),
        Some(p) => format!("{p}/charts/{}", c.name()),
    };
    let values = if parent_path.is_none() {
        vals.clone()
    } else {
        match vals {
            Value::Map(m) => match m.borrow().get(c.name()) {
                Some(v @ Value::Map(_)) => v.clone(),
                _ => Value::new_map(),
            },
            _ => Value::new_map(),
        }
    };
    let subcharts = Value::new_map();
    let mut next = crate::gotemplate::value::Map::new();
    let meta_json = c.metadata.to_template_value(parent_path.is_none());
    let mut meta_plain = serde_json::to_value(&c.metadata).unwrap_or_default();
    if let Some(m) = meta_plain.as_object_mut() {
        m.remove("dependencies");
    }
    next.insert(
        "Chart".into(),
        struct_obj("chart.Metadata", meta_json, Some(meta_plain)),
    );
    next.insert(
        "Files".into(),
        Value::Object(Rc::new(FilesObj {
            files: c.files.clone(),
        })),
    );
    next.insert("Release".into(), top.release.clone());
    next.insert("Capabilities".into(), top.capabilities.clone());
    next.insert("Values".into(), values.clone());
    next.insert("Subcharts".into(), subcharts.clone());
    let next = Value::from(next);
    for sub in &c.dependencies {
        let sv = collect_templates(sub, Some(&full_path), &values, top, out);
        if let Value::Map(m) = &subcharts {
            m.borrow_mut().insert(sub.name().to_string(), sv);
        }
    }
    for t in &c.templates {
        let base = t.name.rsplit('/').next().unwrap_or(&t.name);
        if c.is_library() && !base.starts_with('_') {
            continue;
        }
        out.push(Renderable {
            path: format!("{full_path}/{}", t.name),
            text: String::from_utf8_lossy(&t.data).into_owned(),
            data: next.clone(),
            base_path: format!("{full_path}/templates"),
        });
    }
    next
}

struct TopLevel {
    release: Value,
    capabilities: Value,
}

/// Helm's `cleanupExecError`: `required`/`fail` messages become `execution error at (file:line:col): msg`.
fn cleanup_exec_error(e: &str) -> String {
    let tokens: Vec<&str> = e.splitn(3, ": ").collect();
    if tokens.len() == 3
        && let (Some(s), Some(end)) = (tokens[2].find(WARN_START), tokens[2].rfind(WARN_END))
        && s + WARN_START.len() <= end
    {
        return format!(
            "execution error at ({}): {}",
            tokens[1],
            &tokens[2][s + WARN_START.len()..end]
        );
    }
    e.replace(WARN_START, "").replace(WARN_END, "")
}

fn cleanup_parse_error(e: &str) -> String {
    let tokens: Vec<&str> = e.split(": ").collect();
    if tokens.len() < 2 {
        return format!("parse error: {e}");
    }
    format!(
        "parse error at ({}): {}",
        tokens[1],
        tokens[tokens.len() - 1]
    )
}

/// Helm's separator between documents of one rendered file.
fn split_manifests(content: &str) -> Vec<String> {
    static SEP: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let sep = SEP.get_or_init(|| regex::Regex::new(r"(?:^|\s*\n)---\s*").ok());
    match sep {
        Some(re) => re
            .split(content)
            .filter(|d| !d.trim().is_empty())
            .map(str::to_string)
            .collect(),
        None => vec![content.to_string()],
    }
}

#[derive(serde::Deserialize, Default)]
struct SimpleHead {
    #[serde(default)]
    kind: Option<serde_norway::Value>,
    #[serde(default)]
    metadata: Option<HeadMeta>,
}

#[derive(serde::Deserialize, Default)]
struct HeadMeta {
    #[serde(default)]
    name: Option<serde_norway::Value>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, serde_norway::Value>>,
}

fn scalar_string(v: &serde_norway::Value) -> String {
    match v {
        serde_norway::Value::String(s) => s.clone(),
        serde_norway::Value::Number(n) => n.to_string(),
        serde_norway::Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// Renders a chart with user values (merged over the chart's own values).
pub fn render(chart: &Chart, values: &J, opts: &RenderOptions) -> Result<Rendered, HelmError> {
    render_with_host(chart, values, opts, &NoHost)
}

/// Like [`render`], with a host answering `lookup`.
pub fn render_with_host(
    chart: &Chart,
    values: &J,
    opts: &RenderOptions,
    host: &dyn Host,
) -> Result<Rendered, HelmError> {
    match chart.metadata.chart_type.as_str() {
        "" | "application" => {}
        t => {
            return Err(HelmError::InvalidChart(format!(
                "{t} charts are not installable"
            )));
        }
    }
    let user = match values {
        J::Object(m) => m.clone(),
        J::Null => Map::new(),
        _ => return Err(HelmError::Values("values must be a map".into())),
    };
    let caps = Capabilities::new(opts.kube_version.as_deref(), &opts.api_versions)?;
    check_dependencies(chart)?;
    check_kube_version(chart, &caps.kube_version)?;
    let mut chart = chart.clone();
    process_dependency_enabled(&mut chart, &user, "")?;
    process_import_values(&mut chart)?;
    let vals = coalesce_values(&chart, &user)?;
    let mut schema_errors = String::new();
    validate_schemas(&chart, &vals, &mut schema_errors)?;
    if !schema_errors.is_empty() {
        return Err(HelmError::Schema(schema_errors));
    }
    render_chart(&chart, &vals, opts, &caps, host)
}

/// Helm's `CheckDependencies`: every dependency in Chart.yaml must be present under `charts/`.
fn check_dependencies(c: &Chart) -> Result<(), HelmError> {
    let missing: Vec<&str> = c
        .metadata
        .dependencies
        .iter()
        .filter(|d| !c.dependencies.iter().any(|ch| ch.name() == d.name))
        .map(|d| d.name.as_str())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(HelmError::InvalidChart(format!(
        "An error occurred while checking for chart dependencies. You may need to run `helm dependency build` to fetch missing dependencies: found in Chart.yaml, but missing in charts/ directory: {}",
        missing.join(", ")
    )))
}

/// A chart's `kubeVersion` constraint must accept the target Kubernetes version.
fn check_kube_version(c: &Chart, kube_version: &str) -> Result<(), HelmError> {
    let constraint = c.metadata.kube_version.trim();
    if constraint.is_empty() {
        return Ok(());
    }
    match crate::funcs::semver::semver_compare(constraint, kube_version) {
        Ok(true) => Ok(()),
        Ok(false) => Err(HelmError::InvalidChart(format!(
            "chart requires kubeVersion: {constraint} which is incompatible with Kubernetes {kube_version}"
        ))),
        Err(e) => Err(HelmError::InvalidChart(format!(
            "chart {} has an invalid kubeVersion {constraint:?}: {e}",
            c.name()
        ))),
    }
}

fn render_chart(
    chart: &Chart,
    vals: &Map<String, J>,
    opts: &RenderOptions,
    caps: &Capabilities,
    host: &dyn Host,
) -> Result<Rendered, HelmError> {
    let release = Value::from_json(&serde_json::json!({
        "Name": opts.release_name,
        "Namespace": opts.namespace,
        "IsUpgrade": opts.is_upgrade,
        "IsInstall": opts.is_install,
        "Revision": opts.revision,
        "Service": "Helm",
    }));
    let mut cap_fields = crate::gotemplate::value::Map::new();
    cap_fields.insert(
        "KubeVersion".into(),
        Value::Object(Rc::new(KubeVersionObj {
            version: caps.kube_version.clone(),
            major: caps.major.clone(),
            minor: caps.minor.clone(),
        })),
    );
    cap_fields.insert(
        "APIVersions".into(),
        Value::Object(Rc::new(ApiVersionsObj(caps.api_versions.clone()))),
    );
    cap_fields.insert(
        "HelmVersion".into(),
        struct_obj(
            "version.BuildInfo",
            serde_json::json!({"Version": HELM_VERSION, "GitCommit": "", "GitTreeState": "", "GoVersion": ""}),
            Some(serde_json::json!({"version": HELM_VERSION})),
        ),
    );
    let capabilities = Value::Object(Rc::new(CapsObj(cap_fields)));
    let top = TopLevel {
        release,
        capabilities,
    };
    let values = Value::from_json(&J::Object(vals.clone()));
    let mut tpls = Vec::new();
    collect_templates(chart, None, &values, &top, &mut tpls);

    // Helm parses deeper paths first, then in reverse name order, so the parent's defines win.
    tpls.sort_by(|a, b| {
        let (ca, cb) = (a.path.matches('/').count(), b.path.matches('/').count());
        cb.cmp(&ca).then_with(|| b.path.cmp(&a.path))
    });
    let funcs = FuncSet::Helm;
    let mut set = TreeSet::default();
    for t in &tpls {
        let parsed = parse::parse(&t.path, &t.text, "{{", "}}", &|f| {
            lookup_func(funcs, f).is_some()
        })
        .map_err(|e| HelmError::Template(cleanup_parse_error(&e.0)))?;
        set.add(parsed.main);
        for d in parsed.defines {
            set.add(d);
        }
    }
    let set = Arc::new(set);
    let exec_opts = ExecOptions {
        missing_key: MissingKey::Zero,
        funcs,
        max_output_bytes: opts.max_output_bytes,
        ..ExecOptions::default()
    };
    let mut rendered: BTreeMap<String, String> = BTreeMap::new();
    let mut notes = None;
    let notes_path = format!("{}/templates/NOTES.txt", chart.name());
    for t in &tpls {
        let base = t.path.rsplit('/').next().unwrap_or(&t.path);
        if base.starts_with('_') {
            continue;
        }
        if let Value::Map(m) = &t.data {
            m.borrow_mut().insert(
                "Template".into(),
                Value::from_json(&serde_json::json!({"Name": t.path, "BasePath": t.base_path})),
            );
        }
        let mut ex = Exec::new(set.clone(), &exec_opts, host, ("{{", "}}"));
        let out = ex
            .execute_named(&t.path, &t.data)
            .map_err(|e| HelmError::Template(cleanup_exec_error(&e)))?;
        let out = out.replace("<no value>", "");
        if base == "NOTES.txt" {
            if t.path == notes_path {
                notes = Some(out);
            }
            continue;
        }
        rendered.insert(t.path.clone(), out);
    }

    let mut manifests = Vec::new();
    let mut hooks = Vec::new();
    for (path, content) in &rendered {
        if content.trim().is_empty() {
            continue;
        }
        for doc in split_manifests(content) {
            let head: SimpleHead = if doc.trim().is_empty() {
                SimpleHead::default()
            } else {
                let v: serde_norway::Value = serde_norway::from_str(&doc).map_err(|e| {
                    HelmError::Yaml(format!(
                        "YAML parse error on {path}: error converting YAML to JSON: yaml: {e}"
                    ))
                })?;
                match v {
                    serde_norway::Value::Null => SimpleHead::default(),
                    serde_norway::Value::Mapping(_) => {
                        serde_norway::from_value(v).map_err(|e| {
                            HelmError::Yaml(format!(
                                "YAML parse error on {path}: error unmarshaling JSON: {e}"
                            ))
                        })?
                    }
                    _ => {
                        return Err(HelmError::Yaml(format!(
                            "YAML parse error on {path}: error unmarshaling JSON: json: cannot unmarshal {} into Go value of type releaseutil.SimpleHead",
                            if matches!(v, serde_norway::Value::Sequence(_)) {
                                "array"
                            } else {
                                "string"
                            }
                        )));
                    }
                }
            };
            let kind = head.kind.as_ref().map(scalar_string).unwrap_or_default();
            let meta = head.metadata.unwrap_or_default();
            let name = meta.name.as_ref().map(scalar_string).unwrap_or_default();
            let annotations = meta.annotations.unwrap_or_default();
            let hook = annotations.get("helm.sh/hook").map(scalar_string);
            let mut m = Manifest {
                source: path.clone(),
                content: doc,
                kind,
                name,
                hook_events: Vec::new(),
            };
            match hook {
                Some(h) => {
                    let events: Vec<String> =
                        h.split(',').map(|e| e.trim().to_lowercase()).collect();
                    let known = [
                        "pre-install",
                        "post-install",
                        "pre-delete",
                        "post-delete",
                        "pre-upgrade",
                        "post-upgrade",
                        "pre-rollback",
                        "post-rollback",
                        "test",
                        "test-success",
                    ];
                    if events.iter().any(|e| !known.contains(&e.as_str())) {
                        tracing::info!("skipping unknown hook: {h:?}");
                        continue;
                    }
                    m.hook_events = events;
                    hooks.push(m);
                }
                None => manifests.push(m),
            }
        }
    }
    sort_by_kind(&mut manifests);
    sort_by_kind(&mut hooks);
    if opts.skip_tests {
        hooks.retain(|h| !h.is_test());
    }
    let mut crds = Vec::new();
    if opts.include_crds {
        collect_crds(chart, None, &mut crds);
    }
    let rendered = Rendered {
        crds,
        manifests,
        hooks,
        notes,
        show_only: opts.show_only.clone(),
    };
    // every --show-only pattern must match something
    if !opts.show_only.is_empty() {
        let full = rendered.full_output();
        let docs = split_output_docs(&full);
        for pat in &opts.show_only {
            let m = show_only_matcher(pat);
            let found = docs
                .iter()
                .filter_map(|d| source_path_without_chart(d))
                .any(|p| p == pat || m.as_ref().is_some_and(|m| m.is_match(p)));
            if !found {
                return Err(HelmError::InvalidChart(format!(
                    "could not find template {pat} in chart"
                )));
            }
        }
    }
    Ok(rendered)
}

fn collect_crds(c: &Chart, parent: Option<&str>, out: &mut Vec<Manifest>) {
    let full = match parent {
        None => c.name().to_string(),
        Some(p) => format!("{p}/charts/{}", c.name()),
    };
    for f in c.crd_files() {
        out.push(Manifest {
            source: format!("{full}/{}", f.name),
            content: String::from_utf8_lossy(&f.data).into_owned(),
            kind: "CustomResourceDefinition".into(),
            name: String::new(),
            hook_events: Vec::new(),
        });
    }
    for d in &c.dependencies {
        collect_crds(d, Some(&full), out);
    }
}

struct CapsObj(crate::gotemplate::value::Map);

impl Object for CapsObj {
    fn type_name(&self) -> &str {
        "chartutil.Capabilities"
    }
    fn field(&self, name: &str) -> Option<Value> {
        self.0.get(name).cloned()
    }
    fn display(&self) -> String {
        let parts: Vec<String> = self.0.values().map(Value::go_string).collect();
        format!("&{{{}}}", parts.join(" "))
    }
    fn to_json(&self) -> J {
        J::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_helm() {
        assert_eq!(
            split_manifests("a: 1\n---\nb: 2\n"),
            vec!["a: 1".to_string(), "b: 2\n".to_string()]
        );
        assert_eq!(split_manifests("---\na: 1\n"), vec!["a: 1\n".to_string()]);
    }

    #[test]
    fn exec_errors_are_cleaned_like_helm() {
        let e = format!(
            "template: c/templates/x.yaml:1:3: executing \"c/templates/x.yaml\" at <fail \"boom\">: error calling fail: {WARN_START}boom{WARN_END}"
        );
        assert_eq!(
            cleanup_exec_error(&e),
            "execution error at (c/templates/x.yaml:1:3): boom"
        );
    }
}

//! Per-cluster templating of Helm values (Fleet's `target/builder.go preprocessHelmValues`).
//!
//! For a cluster with labels: string values `global.fleet.clusterLabels.<label>` become the
//! label's value; then, unless `helm.disablePreProcess`, the values (as YAML) are rendered as a
//! Go template with `${ }` delimiters, Sprig (without `env`/`expandenv`), `missingkey=error`
//! and the context `.ClusterName`, `.ClusterNamespace`, `.ClusterLabels`,
//! `.ClusterAnnotations`, `.ClusterValues`; each `helm.templateValues` entry is rendered the
//! same way, parsed as YAML, and set as a top-level value.

use std::collections::BTreeMap;

use fleet_api::{BundleDeploymentOptions, GenericMap};
use serde_json::Value;

use crate::render::objects::yaml_to_json;

/// Prefix of values replaced by a cluster label.
pub const CLUSTER_LABEL_PREFIX: &str = "global.fleet.clusterLabels.";
const MAX_RECURSION_DEPTH: usize = 50;

/// The cluster facts values templating can use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterContext {
    /// Cluster name.
    pub name: String,
    /// Namespace of the Cluster object (e.g. `fleet-default`).
    pub namespace: String,
    /// Cluster labels.
    pub labels: BTreeMap<String, String>,
    /// Cluster annotations.
    pub annotations: BTreeMap<String, String>,
    /// `cluster.spec.templateValues`.
    pub template_values: GenericMap,
}

/// Templating failed for a cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cluster {cluster} in namespace {namespace}: {message}")]
pub struct ValuesError {
    /// Cluster name.
    pub cluster: String,
    /// Cluster namespace.
    pub namespace: String,
    /// What failed (the template error names the missing key).
    pub message: String,
}

/// Labels/annotations as Fleet exposes them to templates: `kubectl.kubernetes.io/*` and
/// `*cattle.io/*` keys are dropped (wrangler `CleanAnnotationsForExport`).
fn clean_for_export(m: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    m.iter()
        .filter(|(k, _)| !k.starts_with("kubectl.kubernetes.io/") && !k.contains("cattle.io/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Templates the Helm values of `options` for `cluster`, in place.
pub fn template_helm_values(
    options: &mut BundleDeploymentOptions,
    cluster: &ClusterContext,
) -> Result<(), ValuesError> {
    let err = |message: String| ValuesError {
        cluster: cluster.name.clone(),
        namespace: cluster.namespace.clone(),
        message,
    };
    let mut labels = clean_for_export(&cluster.labels);
    for (k, v) in &cluster.labels {
        if k.starts_with("fleet.cattle.io/") || k.starts_with("management.cattle.io/") {
            labels.insert(k.clone(), v.clone());
        }
    }
    if labels.is_empty() {
        return Ok(());
    }
    let Some(helm) = options.helm.as_mut() else {
        options.helm = Some(Default::default());
        return Ok(());
    };
    let mut values = helm.values.take().unwrap_or_default();
    if helm.template_values.is_empty() && values.is_empty() {
        helm.values = Some(values);
        return Ok(());
    }
    process_label_values(&mut values, &labels, 0).map_err(err)?;
    if !helm.disable_pre_process {
        let to_dict = |m: &BTreeMap<String, String>| {
            Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            )
        };
        let context = serde_json::json!({
            "ClusterNamespace": cluster.namespace,
            "ClusterName": cluster.name,
            "ClusterLabels": to_dict(&labels),
            "ClusterAnnotations": to_dict(&clean_for_export(&cluster.annotations)),
            "ClusterValues": Value::Object(cluster.template_values.clone()),
        });
        let yaml = crate::goyaml::to_string(&Value::Object(values.clone()));
        let rendered = render_template(&yaml, &context).map_err(err)?;
        values = match parse_yaml(&rendered) {
            Ok(Value::Object(m)) => m,
            Ok(Value::Null) => GenericMap::new(),
            Ok(other) => {
                return Err(err(format!(
                    "failed to interpret rendered template as helm values: {other}"
                )));
            }
            Err(e) => {
                return Err(err(format!(
                    "failed to interpret rendered template as helm values: {e}"
                )));
            }
        };
        for (k, text) in &helm.template_values {
            let rendered = render_template(text, &context).map_err(err)?;
            let value = parse_yaml(&rendered).map_err(|e| {
                err(format!(
                    "failed to interpret rendered template as helm values: {rendered}, {e}"
                ))
            })?;
            values.insert(k.clone(), value);
        }
    }
    helm.values = Some(values);
    Ok(())
}

fn parse_yaml(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    let yaml: serde_norway::Value = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    Ok(yaml_to_json(yaml))
}

fn render_template(text: &str, context: &Value) -> Result<String, String> {
    use fleet_helm::gotemplate::{ExecOptions, FuncSet, MissingKey, ParseOptions, Template};
    let parse = ParseOptions {
        left_delim: "${".into(),
        right_delim: "}".into(),
        funcs: FuncSet::SprigWithoutEnv,
    };
    let template = Template::parse("values", text, &parse)
        .map_err(|e| format!("failed to parse helm values template: {e}"))?;
    let exec = ExecOptions {
        missing_key: MissingKey::Error,
        funcs: FuncSet::SprigWithoutEnv,
        ..Default::default()
    };
    template
        .execute(context, &exec)
        .map_err(|e| format!("failed to render helm values template: {e}"))
}

fn process_label_values(
    values: &mut GenericMap,
    labels: &BTreeMap<String, String>,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_RECURSION_DEPTH {
        return Err(format!(
            "maximum recursion depth of {MAX_RECURSION_DEPTH} exceeded for cluster label prefix processing, too many nested values"
        ));
    }
    for (key, value) in values.iter_mut() {
        match value {
            Value::String(s) if s.starts_with(CLUSTER_LABEL_PREFIX) => {
                let label = &s[CLUSTER_LABEL_PREFIX.len()..];
                match labels.get(label) {
                    Some(v) => *s = v.clone(),
                    None => {
                        tracing::info!(label = %s, key = %key, "cluster label for key is missing from some clusters, setting value to empty string for these clusters");
                        *s = String::new();
                    }
                }
            }
            Value::Object(m) => process_label_values(m, labels, depth + 1)?,
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(m) = item {
                        process_label_values(m, labels, depth + 1)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::HelmOptions;
    use serde_json::json;

    fn cluster(labels: &[(&str, &str)]) -> ClusterContext {
        ClusterContext {
            name: "c1".into(),
            namespace: "fleet-default".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: BTreeMap::from([("owner".into(), "ops".into())]),
            template_values: json!({"region": "eu"}).as_object().cloned().unwrap(),
        }
    }

    fn opts(values: Value) -> BundleDeploymentOptions {
        BundleDeploymentOptions {
            helm: Some(HelmOptions {
                values: values.as_object().cloned(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn values(o: &BundleDeploymentOptions) -> Value {
        Value::Object(o.helm.as_ref().unwrap().values.clone().unwrap())
    }

    #[test]
    fn templates_see_cluster_facts() {
        let mut o = opts(
            json!({"env": "${ .ClusterLabels.env }", "name": "${ .ClusterName }-${ .ClusterNamespace }",
            "owner": "${ .ClusterAnnotations.owner }", "region": "${ .ClusterValues.region | upper }", "n": 3}),
        );
        template_helm_values(&mut o, &cluster(&[("env", "prod")])).unwrap();
        assert_eq!(
            values(&o),
            json!({"env": "prod", "name": "c1-fleet-default", "owner": "ops", "region": "EU", "n": 3})
        );
    }

    #[test]
    fn cluster_label_prefix_values() {
        let mut o = opts(
            json!({"a": "global.fleet.clusterLabels.env", "nested": [{"b": "global.fleet.clusterLabels.nope"}]}),
        );
        template_helm_values(&mut o, &cluster(&[("env", "dev")])).unwrap();
        assert_eq!(values(&o), json!({"a": "dev", "nested": [{"b": ""}]}));
    }

    #[test]
    fn missing_label_names_cluster_and_key() {
        let mut o = opts(json!({"env": "${ .ClusterLabels.region }"}));
        let err = template_helm_values(&mut o, &cluster(&[("env", "dev")])).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("cluster c1 in namespace fleet-default: "),
            "{msg}"
        );
        assert!(msg.contains("region"), "{msg}");
    }

    #[test]
    fn disable_pre_process_keeps_templates() {
        let mut o = opts(json!({"env": "${ .ClusterLabels.env }"}));
        o.helm.as_mut().unwrap().disable_pre_process = true;
        template_helm_values(&mut o, &cluster(&[("env", "dev")])).unwrap();
        assert_eq!(values(&o), json!({"env": "${ .ClusterLabels.env }"}));
    }

    #[test]
    fn template_values_are_parsed_as_yaml_and_override() {
        let mut o = opts(json!({"list": "x"}));
        o.helm.as_mut().unwrap().template_values = BTreeMap::from([(
            "list".into(),
            "${ range $k, $v := .ClusterLabels }\n- ${ $k }=${ $v }${ end }".into(),
        )]);
        template_helm_values(&mut o, &cluster(&[("a", "1"), ("b", "2")])).unwrap();
        assert_eq!(values(&o), json!({"list": ["a=1", "b=2"]}));
    }

    #[test]
    fn clusters_without_labels_are_not_templated() {
        let mut o = opts(json!({"env": "${ .ClusterLabels.env }"}));
        template_helm_values(&mut o, &cluster(&[])).unwrap();
        assert_eq!(values(&o), json!({"env": "${ .ClusterLabels.env }"}));
    }

    #[test]
    fn fleet_labels_are_visible_but_other_cattle_labels_are_not() {
        let mut o = opts(
            json!({"a": "${ index .ClusterLabels \"fleet.cattle.io/cluster\" }", "b": "${ hasKey .ClusterLabels \"x.cattle.io/y\" }"}),
        );
        template_helm_values(
            &mut o,
            &cluster(&[("fleet.cattle.io/cluster", "c1"), ("x.cattle.io/y", "z")]),
        )
        .unwrap();
        assert_eq!(values(&o), json!({"a": "c1", "b": false}));
    }
}

//! Validation of a Cluster's agent settings before they are deployed. A Deployment with a
//! malformed toleration would be rejected by the downstream API server (or, worse, accepted by a
//! lenient one and leave the agent unschedulable), so the controller refuses it up front and says
//! which field is wrong, with kube-apiserver's wording.

use fleet_api::ClusterSpec;
use k8s_openapi::api::core::v1::{EnvVar, Toleration};

/// One invalid field of a Cluster's agent settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    /// JSON path of the field, e.g. `spec.agentTolerations[1].operator`.
    pub field: String,
    pub problem: String,
}

fn is_dns_label_like(part: &str) -> bool {
    // Kubernetes' qualified-name part: alphanumerics, '-', '_', '.', starting and ending with
    // an alphanumeric, at most 63 characters.
    !part.is_empty()
        && part.len() <= 63
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && part
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && part
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric())
}

fn is_dns_subdomain(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.len() <= 253
        && prefix.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Kubernetes' `IsQualifiedName`: `[prefix/]name`.
pub fn is_qualified_name(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_dns_label_like(name),
        None => is_dns_label_like(key),
    }
}

fn is_label_value(value: &str) -> bool {
    value.is_empty() || is_dns_label_like(value)
}

/// Kubernetes' `ValidateTolerations` for `spec.agentTolerations`.
pub fn validate_tolerations(tolerations: &[Toleration], path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (i, t) in tolerations.iter().enumerate() {
        let at = |field: &str| format!("{path}[{i}].{field}");
        let key = t.key.as_deref().unwrap_or("");
        let operator = t.operator.as_deref().unwrap_or("");
        let value = t.value.as_deref().unwrap_or("");
        let effect = t.effect.as_deref().unwrap_or("");
        if !key.is_empty() && !is_qualified_name(key) {
            errors.push(FieldError {
                field: at("key"),
                problem: format!(
                    "Invalid value: {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                ),
            });
        }
        if key.is_empty() && operator != "Exists" {
            errors.push(FieldError {
                field: at("operator"),
                problem: format!(
                    "Invalid value: {operator:?}: operator must be Exists when `key` is empty, which means \"match all values and all keys\""
                ),
            });
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errors.push(FieldError {
                field: at("effect"),
                problem: format!(
                    "Invalid value: {effect:?}: effect must be 'NoExecute' when `tolerationSeconds` is set"
                ),
            });
        }
        match operator {
            "" | "Equal" => {
                if !is_label_value(value) {
                    errors.push(FieldError {
                        field: at("value"),
                        problem: format!(
                            "Invalid value: {value:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'"
                        ),
                    });
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errors.push(FieldError {
                        field: at("operator"),
                        problem: format!(
                            "Invalid value: {value:?}: value must be empty when `operator` is 'Exists'"
                        ),
                    });
                }
            }
            other => errors.push(FieldError {
                field: at("operator"),
                problem: format!(
                    "Unsupported value: {other:?}: supported values: \"Equal\", \"Exists\""
                ),
            }),
        }
        if !matches!(effect, "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            errors.push(FieldError {
                field: at("effect"),
                problem: format!(
                    "Unsupported value: {effect:?}: supported values: \"NoExecute\", \"NoSchedule\", \"PreferNoSchedule\""
                ),
            });
        }
    }
    errors
}

fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '-' | '_' | '.'))
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Names of `spec.agentEnvVars` must be valid environment variable names.
pub fn validate_env_vars(vars: &[EnvVar], path: &str) -> Vec<FieldError> {
    vars.iter()
        .enumerate()
        .filter(|(_, v)| !is_env_var_name(&v.name))
        .map(|(i, v)| FieldError {
            field: format!("{path}[{i}].name"),
            problem: format!(
                "Invalid value: {:?}: a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit",
                v.name
            ),
        })
        .collect()
}

/// Every problem of a Cluster's agent settings (empty: deployable).
pub fn validate_agent_settings(spec: &ClusterSpec) -> Vec<FieldError> {
    let mut errors = validate_tolerations(&spec.agent_tolerations, "spec.agentTolerations");
    errors.extend(validate_env_vars(&spec.agent_env_vars, "spec.agentEnvVars"));
    errors
}

/// The problems as one message, e.g. for a condition.
pub fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

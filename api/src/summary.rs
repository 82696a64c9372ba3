//! The per-object readiness summary the agent reports for non-ready resources
//! (`v1alpha1/summary.Summary`).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::serde_util::{is_default, nullable};

/// Readiness of one deployed object, as computed by the agent's summarizers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct Summary {
    /// State name, e.g. `in-progress`.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub state: String,
    /// The object is in error.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub error: bool,
    /// The object is progressing towards readiness.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub transitioning: bool,
    /// Messages explaining the state.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub message: Vec<String>,
}

impl Summary {
    /// Ready means neither in error nor transitioning.
    pub fn is_ready(&self) -> bool {
        !self.error && !self.transitioning
    }
}

/// Fleet's `Summary.String()`: the state when healthy, else `[progressing]`, `error]`,
/// `[progressing,error]` followed by the messages joined with `, `.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.transitioning && !self.error {
            return f.write_str(&self.state);
        }
        // The unbalanced "error]" is what Fleet prints; keep it for identical status messages.
        let mut msg = String::new();
        if self.transitioning {
            msg.push_str("[progressing");
        }
        if self.error {
            if msg.is_empty() {
                msg.push_str("error]");
            } else {
                msg.push_str(",error]");
            }
        } else {
            msg.push(']');
        }
        if !self.message.is_empty() {
            msg.push(' ');
            msg.push_str(&self.message.join(", "));
        }
        f.write_str(&msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_matches_fleet() {
        let mut s = Summary {
            state: "in-progress".into(),
            ..Default::default()
        };
        assert_eq!(s.to_string(), "in-progress");
        s.transitioning = true;
        assert_eq!(s.to_string(), "[progressing]");
        s.message = vec!["a".into(), "b".into()];
        assert_eq!(s.to_string(), "[progressing] a, b");
        s.error = true;
        assert_eq!(s.to_string(), "[progressing,error] a, b");
        s.transitioning = false;
        assert_eq!(s.to_string(), "error] a, b");
    }
}

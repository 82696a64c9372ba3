//! Wrangler's `genericcondition.GenericCondition`, the condition type of every Fleet status.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::serde_util::{is_default, nullable};

/// A status condition as wrangler writes it: times are RFC 3339 strings, not structured times.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, rename_all = "camelCase")]
pub struct GenericCondition {
    /// Type of the condition, e.g. `Ready`.
    #[serde(rename = "type", deserialize_with = "nullable")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    #[serde(deserialize_with = "nullable")]
    pub status: String,
    /// The last time this condition was updated.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub last_update_time: String,
    /// Last time the condition transitioned from one status to another.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub last_transition_time: String,
    /// The reason for the condition's last transition.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub reason: String,
    /// Human-readable message indicating details about the last transition.
    #[serde(skip_serializing_if = "is_default", deserialize_with = "nullable")]
    pub message: String,
}

impl GenericCondition {
    /// A condition of `type_` with `status` (`True`/`False`/`Unknown`) and nothing else set.
    pub fn new(type_: impl Into<String>, status: impl Into<String>) -> Self {
        GenericCondition {
            type_: type_.into(),
            status: status.into(),
            ..Default::default()
        }
    }

    /// Whether the status is `True`.
    pub fn is_true(&self) -> bool {
        self.status == crate::consts::condition::TRUE
    }

    /// Whether the status is `False`.
    pub fn is_false(&self) -> bool {
        self.status == crate::consts::condition::FALSE
    }
}

/// The condition of type `type_` in `conditions`, if present.
pub fn find_condition<'a>(
    conditions: &'a [GenericCondition],
    type_: &str,
) -> Option<&'a GenericCondition> {
    conditions.iter().find(|c| c.type_ == type_)
}

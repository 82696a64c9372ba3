//! Go-compatible YAML output (`gopkg.in/yaml.v2` through `sigs.k8s.io/yaml`), as Fleet prints
//! Bundles and rendered manifests.
//!
//! The emitter lives in [`fleet_helm::yaml`] so Helm's `toYaml` and Fleet's own output share one
//! implementation; this module keeps the names the bundle crate uses.

use serde_json::Value;

pub use fleet_helm::yaml::{
    documents_to_string, format_float, key_less, resolves_to_non_string, sorted_entries,
};

/// Marshals one value the way `yaml.Marshal` (yaml.v2) does after a JSON round trip.
pub fn to_string(value: &Value) -> String {
    fleet_helm::yaml::to_go_yaml_json(value)
}

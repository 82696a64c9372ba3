//! Which pods (and which of their containers) a profile rule applies to.

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A regular expression that must match the whole text (it is anchored for you).
#[derive(Clone)]
pub struct Pattern {
    source: String,
    regex: Regex,
}

impl Pattern {
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        Ok(Self {
            source: source.to_owned(),
            regex: Regex::new(&format!("^(?:{source})$"))?,
        })
    }

    pub fn matches(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.source)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let source = String::deserialize(deserializer)?;
        Pattern::new(&source)
            .map_err(|error| serde::de::Error::custom(format!("invalid regex {source:?}: {error}")))
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

/// Selects pods (and, with `image`, single containers) by what owns them and what they run.
/// Every field given must match; an empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSelector {
    /// The kind of the workload that owns the pod: `Deployment`, `StatefulSet`, `DaemonSet`,
    /// `Job`, `ReplicaSet`, or `Pod` for a pod nothing owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Regex on the owning workload's name (the pod's own name for a bare pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Pattern>,
    /// Regex on the pod's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Pattern>,
    /// Regex on a container's image; the rule then applies to matching containers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Pattern>,
    /// Labels the pod must carry, with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// What a selector is matched against: one container of one pod.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PodFacts<'a> {
    pub namespace: &'a str,
    pub workload_kind: &'a str,
    pub workload_name: &'a str,
    pub labels: Option<&'a serde_json::Map<String, serde_json::Value>>,
    pub image: &'a str,
}

impl PodSelector {
    pub(crate) fn matches(&self, facts: &PodFacts<'_>) -> bool {
        self.kind
            .as_deref()
            .is_none_or(|kind| kind == facts.workload_kind)
            && self
                .name
                .as_ref()
                .is_none_or(|name| name.matches(facts.workload_name))
            && self
                .namespace
                .as_ref()
                .is_none_or(|namespace| namespace.matches(facts.namespace))
            && self
                .image
                .as_ref()
                .is_none_or(|image| image.matches(facts.image))
            && self.labels.iter().all(|(key, value)| {
                facts
                    .labels
                    .and_then(|labels| labels.get(key))
                    .and_then(|v| v.as_str())
                    == Some(value.as_str())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts<'a>(labels: &'a serde_json::Map<String, serde_json::Value>) -> PodFacts<'a> {
        PodFacts {
            namespace: "shop",
            workload_kind: "Deployment",
            workload_name: "web",
            labels: Some(labels),
            image: "registry.example/web:crashloop",
        }
    }

    #[test]
    fn an_empty_selector_matches_every_container() {
        let labels = serde_json::Map::new();
        assert!(PodSelector::default().matches(&facts(&labels)));
    }

    #[test]
    fn patterns_must_match_the_whole_text() {
        let labels = serde_json::Map::new();
        let selector = PodSelector {
            name: Some(Pattern::new("we").unwrap()),
            ..Default::default()
        };
        assert!(!selector.matches(&facts(&labels)));
        let selector = PodSelector {
            image: Some(Pattern::new(".*:crashloop").unwrap()),
            ..Default::default()
        };
        assert!(selector.matches(&facts(&labels)));
    }

    #[test]
    fn every_given_field_must_match() {
        let labels = json!({"app": "web"}).as_object().unwrap().clone();
        let mut selector: PodSelector = serde_json::from_value(
            json!({"kind": "Deployment", "namespace": "shop|cart", "labels": {"app": "web"}}),
        )
        .unwrap();
        assert!(selector.matches(&facts(&labels)));
        selector.kind = Some("StatefulSet".into());
        assert!(!selector.matches(&facts(&labels)));
        selector.kind = None;
        selector.labels.insert("tier".into(), "front".into());
        assert!(!selector.matches(&facts(&labels)));
    }

    #[test]
    fn an_invalid_regex_is_reported_with_its_text() {
        let error =
            serde_json::from_value::<PodSelector>(json!({"image": "(unclosed"})).unwrap_err();
        assert!(error.to_string().contains("(unclosed"), "{error}");
    }
}

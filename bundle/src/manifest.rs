//! Manifests: the resources of a bundle as stored in a `Content` object (Fleet's
//! `internal/manifest`), and their IDs.

use fleet_api::{BundleResource, HelmOptions};
use sha2::{Digest as _, Sha256};

/// Go's `encoding/json` output for the manifest `{"resources": [...]}`, including its
/// HTML-safe escaping and the encoder's trailing newline.
pub fn manifest_json(resources: &[BundleResource]) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Manifest<'a> {
        #[serde(skip_serializing_if = "<[BundleResource]>::is_empty")]
        resources: &'a [BundleResource],
    }
    let json = serde_json::to_string(&Manifest { resources }).unwrap_or_default();
    let mut out = go_html_escape(&json);
    out.push('\n');
    out.into_bytes()
}

fn go_html_escape(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// SHA-256 (hex) of the manifest JSON.
pub fn manifest_sha256(resources: &[BundleResource]) -> String {
    hex::encode(Sha256::digest(manifest_json(resources)))
}

/// The manifest ID / Content name: `s-` followed by the SHA-256, cut to 63 characters.
pub fn manifest_id(resources: &[BundleResource]) -> String {
    let mut id = format!("s-{}", manifest_sha256(resources));
    id.truncate(63);
    id
}

/// Folder prefix under which a downloaded chart is stored in the bundle:
/// `.chart/<sha256 of "chart:repo:version">`.
pub fn chart_checksum(helm: &HelmOptions) -> String {
    let key = format!("{}:{}:{}", helm.chart, helm.repo, helm.version);
    format!(".chart/{}", hex::encode(Sha256::digest(key.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_id_is_63_chars_and_stable() {
        let r = vec![BundleResource {
            name: "a.yaml".into(),
            content: "x<y".into(),
            encoding: String::new(),
        }];
        let id = manifest_id(&r);
        assert_eq!(id.len(), 63);
        assert!(id.starts_with("s-"));
        assert_eq!(id, manifest_id(&r));
        assert_eq!(
            String::from_utf8(manifest_json(&r)).unwrap(),
            "{\"resources\":[{\"name\":\"a.yaml\",\"content\":\"x\\u003cy\"}]}\n"
        );
    }

    #[test]
    fn chart_checksum_prefix() {
        let h = HelmOptions {
            chart: "c".into(),
            repo: "r".into(),
            version: "1".into(),
            ..Default::default()
        };
        assert!(chart_checksum(&h).starts_with(".chart/"));
        assert_eq!(chart_checksum(&h).len(), 7 + 64);
    }
}

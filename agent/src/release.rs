//! Helm-compatible release records (Helm's `storage/driver/secrets.go`): every deployment of a
//! BundleDeployment is recorded as a Secret of type `helm.sh/release.v1` named
//! `sh.helm.release.v1.<release>.v<revision>` in the release namespace, so that `helm list`
//! and `helm history` show fleet-rs deployments as they show Fleet's.
//!
//! Pure: encoding, decoding and the history bookkeeping; the deployer does the I/O.

use std::io::Write as _;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Secret type of Helm 3 release records.
pub const RELEASE_SECRET_TYPE: &str = "helm.sh/release.v1";
/// Label on release secrets: the owner (always `helm`).
pub const OWNER_LABEL: &str = "owner";
/// Label on release secrets: the release name.
pub const NAME_LABEL: &str = "name";
/// Label on release secrets: the release status.
pub const STATUS_LABEL: &str = "status";
/// Label on release secrets: the revision.
pub const VERSION_LABEL: &str = "version";
/// Helm's annotation on deployed objects: the release that owns them.
pub const HELM_RELEASE_NAME_ANNOTATION: &str = "meta.helm.sh/release-name";
/// Helm's annotation on deployed objects: the namespace of the release that owns them.
pub const HELM_RELEASE_NAMESPACE_ANNOTATION: &str = "meta.helm.sh/release-namespace";
/// Label Helm puts on every object it manages.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_HELM: &str = "Helm";
/// Revisions kept per release when `helm.maxHistory` is unset (Fleet's `MaxHelmHistory`).
pub const DEFAULT_MAX_HISTORY: usize = 2;

/// Helm release statuses used here.
pub mod status {
    /// The current, successfully deployed revision.
    pub const DEPLOYED: &str = "deployed";
    /// An older revision replaced by a newer one.
    pub const SUPERSEDED: &str = "superseded";
    /// A revision whose deployment failed.
    pub const FAILED: &str = "failed";
}

/// Errors while reading a release record.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The secret's `release` key is not base64.
    #[error("release record {secret}: data.release is not base64: {source}")]
    Base64 {
        secret: String,
        #[source]
        source: base64::DecodeError,
    },
    /// The payload cannot be gunzipped.
    #[error("release record {secret}: cannot gunzip data.release: {source}")]
    Gzip {
        secret: String,
        #[source]
        source: std::io::Error,
    },
    /// The payload is not a release JSON document.
    #[error("release record {secret}: invalid release JSON: {source}")]
    Json {
        secret: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Helm's `release.Info`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReleaseInfo {
    #[serde(default)]
    pub first_deployed: String,
    #[serde(default)]
    pub last_deployed: String,
    #[serde(default)]
    pub deleted: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
}

/// Helm's `chart.Chart` as stored in a release (metadata and values; templates are not needed
/// to list or diff a release).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReleaseChart {
    /// Chart.yaml content.
    #[serde(default)]
    pub metadata: Value,
    /// The chart's default values.
    #[serde(default)]
    pub values: Value,
}

/// Helm's `release.Release` (the fields fleet-rs writes and reads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub name: String,
    #[serde(default)]
    pub info: ReleaseInfo,
    #[serde(default)]
    pub chart: ReleaseChart,
    /// The user-supplied values.
    #[serde(default)]
    pub config: Value,
    /// The rendered objects as a multi-document YAML stream.
    #[serde(default)]
    pub manifest: String,
    pub version: i64,
    #[serde(default)]
    pub namespace: String,
}

impl Release {
    /// Fleet's release ID as written into `status.release`: `<namespace>/<name>:<version>`.
    pub fn id(&self) -> String {
        format!("{}/{}:{}", self.namespace, self.name, self.version)
    }

    /// A chart metadata annotation (Fleet stores bundle ID, commit, keep-resources... there).
    pub fn chart_annotation(&self, key: &str) -> Option<&str> {
        self.chart
            .metadata
            .get("annotations")
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
    }
}

/// Parses a release ID `<namespace>/<name>:<version>`.
pub fn parse_release_id(id: &str) -> Option<(String, String, i64)> {
    let (ns, rest) = id.split_once('/')?;
    let (name, version) = rest.rsplit_once(':')?;
    let version = version.parse().ok()?;
    if ns.is_empty() || name.is_empty() {
        return None;
    }
    Some((ns.to_string(), name.to_string(), version))
}

/// Name of the Secret that records `revision` of `release`.
pub fn secret_name(release: &str, revision: i64) -> String {
    format!("sh.helm.release.v1.{release}.v{revision}")
}

/// The value of the secret's `release` data key (before Kubernetes' own base64 of `data`):
/// base64 of the gzip'd release JSON, as Helm's secrets driver writes it.
pub fn encode(release: &Release) -> Vec<u8> {
    let json = serde_json::to_vec(release).unwrap_or_default();
    base64::engine::general_purpose::STANDARD
        .encode(gzip(&json))
        .into_bytes()
}

/// The part of a release's payload that its status does not touch, compressed once: the
/// JSON after `info` (chart, config, manifest, version, namespace), which is most of it.
/// A revision is recorded as `deployed` and later marked `superseded`; both payloads are
/// its head (name and info, a few hundred bytes) compressed anew, followed by this tail.
#[derive(Debug)]
pub struct RecordTail {
    /// Raw deflate stream of the tail JSON, final block included.
    deflated: Box<[u8]>,
    /// CRC-32 (and length) of the tail JSON.
    crc: flate2::Crc,
    /// What the tail was made from, so that it is used only for the same release.
    revision: i64,
    name: String,
    namespace: String,
}

impl RecordTail {
    /// Compresses the tail of `release`; `None` when the compressor fails (callers then
    /// encode the whole payload).
    pub fn of(release: &Release) -> Option<RecordTail> {
        let (_, tail) = json_parts(release)?;
        let mut deflated = Vec::with_capacity(tail.len() / 3 + 64);
        let done = with_deflate(|compress| {
            deflate_into(
                compress,
                &tail,
                &mut deflated,
                flate2::FlushCompress::Finish,
            )
        })?;
        if !done {
            return None;
        }
        let mut crc = flate2::Crc::new();
        crc.update(&tail);
        Some(RecordTail {
            deflated: deflated.into_boxed_slice(),
            crc,
            revision: release.version,
            name: release.name.clone(),
            namespace: release.namespace.clone(),
        })
    }

    /// Whether this tail was made from a release with the same identity (its content is
    /// fixed by it: a revision's chart, values and manifest never change).
    fn fits(&self, release: &Release) -> bool {
        self.revision == release.version
            && self.name == release.name
            && self.namespace == release.namespace
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.deflated.len()
    }

    pub fn is_empty(&self) -> bool {
        self.deflated.is_empty()
    }
}

/// [`encode`], with the tail already compressed: only the head (name and info, where the
/// status is) is compressed; the result decodes to the same release. Falls back to
/// [`encode`] when the tail is not this release's.
pub fn encode_with_tail(release: &Release, tail: &RecordTail) -> Vec<u8> {
    let Some(gz) = gzip_with_tail(release, tail) else {
        return encode(release);
    };
    base64::engine::general_purpose::STANDARD
        .encode(gz)
        .into_bytes()
}

fn gzip_with_tail(release: &Release, tail: &RecordTail) -> Option<Vec<u8>> {
    if !tail.fits(release) {
        return None;
    }
    let head = head_json(release)?;
    let mut out = Vec::with_capacity(head.len() + tail.deflated.len() + 64);
    out.extend_from_slice(&GZIP_HEADER);
    // A sync flush ends the head's blocks on a byte boundary without a final block, so the
    // tail's blocks (compressed on their own, referring only to themselves) follow as is.
    let done = with_deflate(|compress| {
        deflate_into(compress, &head, &mut out, flate2::FlushCompress::Sync)
    })?;
    if !done {
        return None;
    }
    out.extend_from_slice(&tail.deflated);
    let mut crc = flate2::Crc::new();
    crc.update(&head);
    crc.combine(&tail.crc);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&crc.amount().to_le_bytes());
    Some(out)
}

/// The JSON of `release` (as `serde_json::to_vec` writes it) up to and including `info`.
fn head_json(release: &Release) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"{\"name\":");
    serde_json::to_writer(&mut head, &release.name).ok()?;
    head.extend_from_slice(b",\"info\":");
    serde_json::to_writer(&mut head, &release.info).ok()?;
    Some(head)
}

/// The JSON of `release` split after `info`: head and tail together are what
/// `serde_json::to_vec(release)` writes (same fields, same order).
fn json_parts(release: &Release) -> Option<(Vec<u8>, Vec<u8>)> {
    let head = head_json(release)?;
    let mut tail = Vec::with_capacity(release.manifest.len() + 256);
    tail.extend_from_slice(b",\"chart\":");
    serde_json::to_writer(&mut tail, &release.chart).ok()?;
    tail.extend_from_slice(b",\"config\":");
    serde_json::to_writer(&mut tail, &release.config).ok()?;
    tail.extend_from_slice(b",\"manifest\":");
    serde_json::to_writer(&mut tail, &release.manifest).ok()?;
    tail.extend_from_slice(b",\"version\":");
    serde_json::to_writer(&mut tail, &release.version).ok()?;
    tail.extend_from_slice(b",\"namespace\":");
    serde_json::to_writer(&mut tail, &release.namespace).ok()?;
    tail.push(b'}');
    Some((head, tail))
}

thread_local! {
    /// One deflate state per thread, reset for every record: making one allocates and clears
    /// a few hundred KiB of tables, which cost more than compressing a small release.
    static DEFLATE: std::cell::RefCell<Option<flate2::Compress>> = const { std::cell::RefCell::new(None) };
}

/// The gzip header `GzEncoder` writes: no name, no time, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// Runs `f` with this thread's deflate state, reset; `None` when it is in use (re-entered).
fn with_deflate<T>(f: impl FnOnce(&mut flate2::Compress) -> T) -> Option<T> {
    DEFLATE.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let compress = slot
            .get_or_insert_with(|| flate2::Compress::new(flate2::Compression::default(), false));
        compress.reset();
        Some(f(compress))
    })
}

/// The gzip member of `data` (what `GzEncoder` at the default level writes: header without
/// name or time, raw deflate, CRC-32 and length), compressed with this thread's deflate state.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 4 + 64);
    out.extend_from_slice(&GZIP_HEADER);
    let deflated = with_deflate(|compress| {
        deflate_into(compress, data, &mut out, flate2::FlushCompress::Finish)
    })
    .unwrap_or(false);
    if !deflated {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        // Writing into a Vec cannot fail.
        let _ = gz.write_all(data);
        return gz.finish().unwrap_or_default();
    }
    let mut crc = flate2::Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&crc.amount().to_le_bytes());
    out
}

/// Deflates all of `input` into `out` and flushes (`Finish`: the final block; `Sync`: up to
/// a byte boundary, stream left open); `false` if the compressor stopped making progress (it
/// does not, with room in `out`).
fn deflate_into(
    compress: &mut flate2::Compress,
    mut input: &[u8],
    out: &mut Vec<u8>,
    flush: flate2::FlushCompress,
) -> bool {
    let finish = flush == flate2::FlushCompress::Finish;
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.capacity().max(4096));
        }
        let (read, written) = (compress.total_in(), out.len());
        let status = compress.compress_vec(input, out, flush);
        let consumed = usize::try_from(compress.total_in() - read).unwrap_or(usize::MAX);
        input = input.get(consumed..).unwrap_or_default();
        match status {
            Ok(flate2::Status::StreamEnd) => return true,
            // zlib's rule: a flush is complete once all input is taken and output room is left.
            Ok(_) if !finish && input.is_empty() && out.len() < out.capacity() => return true,
            Ok(_) if consumed > 0 || out.len() > written => {}
            _ => return false,
        }
    }
}

/// Reads the `release` data key of a release secret (Helm also accepts plain JSON payloads).
pub fn decode(secret: &str, data: &[u8]) -> Result<Release, ReleaseError> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(data.trim_ascii())
        .map_err(|source| ReleaseError::Base64 {
            secret: secret.to_string(),
            source,
        })?;
    let json = if raw.starts_with(&[0x1f, 0x8b]) {
        fleet_bundle::content::gunzip(&raw).map_err(|source| ReleaseError::Gzip {
            secret: secret.to_string(),
            source,
        })?
    } else {
        raw
    };
    serde_json::from_slice(&json).map_err(|source| ReleaseError::Json {
        secret: secret.to_string(),
        source,
    })
}

/// Labels Helm puts on a release secret.
pub fn secret_labels(release: &Release) -> serde_json::Map<String, Value> {
    let mut labels = serde_json::Map::new();
    labels.insert(NAME_LABEL.into(), Value::String(release.name.clone()));
    labels.insert(OWNER_LABEL.into(), Value::String("helm".into()));
    labels.insert(
        STATUS_LABEL.into(),
        Value::String(release.info.status.clone()),
    );
    labels.insert(
        VERSION_LABEL.into(),
        Value::String(release.version.to_string()),
    );
    labels
}

/// The Secret recording `release`, built directly (no JSON round trip, which would encode
/// and decode the payload's base64 once more).
pub fn record_secret(release: &Release) -> k8s_openapi::api::core::v1::Secret {
    record_secret_with(release, encode(release))
}

/// The Secret recording `release` with its payload already encoded (by [`encode`] or
/// [`encode_with_tail`]).
pub fn record_secret_with(
    release: &Release,
    payload: Vec<u8>,
) -> k8s_openapi::api::core::v1::Secret {
    let labels = secret_labels(release)
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(v) => Some((k, v)),
            _ => None,
        })
        .collect();
    k8s_openapi::api::core::v1::Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(secret_name(&release.name, release.version)),
            namespace: Some(release.namespace.clone()),
            labels: Some(labels),
            ..Default::default()
        },
        type_: Some(RELEASE_SECRET_TYPE.into()),
        // The bytes of `data` are themselves base64 text (Helm's format); the API encodes
        // them once more.
        data: Some(std::collections::BTreeMap::from([(
            "release".to_string(),
            k8s_openapi::ByteString(payload),
        )])),
        ..Default::default()
    }
}

/// The Secret object recording `release`, as JSON.
pub fn to_secret(release: &Release) -> Value {
    let mut secret = serde_json::to_value(record_secret(release)).unwrap_or_default();
    if let Some(m) = secret.as_object_mut() {
        m.insert("apiVersion".into(), Value::String("v1".into()));
        m.insert("kind".into(), Value::String("Secret".into()));
    }
    secret
}

/// What to do with the existing revisions when `new_revision` is recorded: which revisions get
/// status `superseded` and which are deleted to keep at most `max_history` records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryPlan {
    pub supersede: Vec<i64>,
    pub delete: Vec<i64>,
}

/// `existing`: (revision, status) of the records present. Helm keeps the newest `max_history`
/// revisions including the new one (0 = unlimited).
pub fn plan_history(
    existing: &[(i64, String)],
    new_revision: i64,
    max_history: usize,
) -> HistoryPlan {
    let mut revisions: Vec<&(i64, String)> = existing
        .iter()
        .filter(|(rev, _)| *rev != new_revision)
        .collect();
    revisions.sort_by_key(|(rev, _)| *rev);
    let mut plan = HistoryPlan::default();
    let keep_old = if max_history == 0 {
        usize::MAX
    } else {
        max_history.saturating_sub(1)
    };
    let delete_count = revisions.len().saturating_sub(keep_old);
    for (i, (rev, status)) in revisions.iter().enumerate() {
        if i < delete_count {
            plan.delete.push(*rev);
        } else if status == status::DEPLOYED {
            plan.supersede.push(*rev);
        }
    }
    plan
}

/// The next revision after the recorded ones.
pub fn next_revision(existing: &[(i64, String)]) -> i64 {
    existing.iter().map(|(rev, _)| *rev).max().unwrap_or(0) + 1
}

/// The objects of a release manifest (a YAML stream), in order.
pub fn manifest_objects(release: &Release) -> Result<Vec<Value>, String> {
    fleet_bundle::render::objects::stream_objects(
        &format!("manifest of release {}", release.id()),
        &release.manifest,
    )
    .map_err(|e| e.to_string())
}

/// Writes objects as a Helm manifest: `---\n# Source: ...` documents.
pub fn manifest_of(chart_name: &str, objects: &[Value]) -> String {
    let mut out = String::new();
    for obj in objects {
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("object");
        let name = obj
            .get("metadata")
            .and_then(|v| v.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        out.push_str(&format!(
            "---\n# Source: {chart_name}/templates/{}-{name}.yaml\n",
            kind.to_lowercase()
        ));
        let yaml = serde_norway::to_string(obj).unwrap_or_default();
        out.push_str(&yaml);
        if !yaml.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_gzipped_as_gz_encoder_writes_them_and_read_back() {
        let manifest: String = (0..200)
            .map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n"))
            .collect();
        for data in [Vec::new(), b"{}".to_vec(), manifest.clone().into_bytes()] {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(&data).unwrap();
            assert_eq!(gzip(&data), gz.finish().unwrap());
        }
        // The compressor is reused: a second record is as the first.
        let rel = Release {
            name: "app".into(),
            namespace: "demo".into(),
            version: 2,
            manifest,
            ..Default::default()
        };
        let first = encode(&rel);
        assert_eq!(encode(&rel), first);
        assert_eq!(decode("record", &first).unwrap(), rel);
    }
    use serde_json::json;

    fn release(version: i64) -> Release {
        Release {
            name: "app".into(),
            namespace: "demo".into(),
            version,
            info: ReleaseInfo {
                status: status::DEPLOYED.into(),
                first_deployed: "2025-01-01T00:00:00Z".into(),
                last_deployed: "2025-01-02T00:00:00Z".into(),
                description: "Install complete".into(),
                ..Default::default()
            },
            chart: ReleaseChart {
                metadata: json!({"name": "app", "version": "1.0.0", "annotations": {"fleet.cattle.io/bundle-id": "b"}}),
                values: json!({}),
            },
            config: json!({"replicas": 2}),
            manifest: manifest_of(
                "app",
                &[
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "demo"}, "data": {"k": "v"}}),
                ],
            ),
        }
    }

    #[test]
    fn a_record_made_from_a_compressed_tail_reads_back_as_the_release() {
        let mut rel = release(4);
        rel.info.description = "quotes \" and \\ and ,\"chart\": inside".into();
        rel.manifest
            .push_str(&"---\nkind: ConfigMap\ndata: {a: b}\n".repeat(50));
        let (head, tail) = json_parts(&rel).unwrap();
        assert_eq!([head, tail].concat(), serde_json::to_vec(&rel).unwrap());

        let compressed = RecordTail::of(&rel).unwrap();
        assert!(!compressed.is_empty());
        let deployed = encode_with_tail(&rel, &compressed);
        assert_eq!(decode("s", &deployed).unwrap(), rel);
        // The same tail serves the superseded record of the revision.
        let mut superseded = rel.clone();
        superseded.info.status = status::SUPERSEDED.into();
        let payload = encode_with_tail(&superseded, &compressed);
        assert_eq!(decode("s", &payload).unwrap(), superseded);
        // A tail of another revision is not used.
        let other = release(5);
        assert_eq!(
            decode("s", &encode_with_tail(&other, &compressed)).unwrap(),
            other
        );
        // The record is smaller than the JSON, and a second one is made the same way.
        assert!(payload.len() < serde_json::to_vec(&superseded).unwrap().len());
        assert_eq!(encode_with_tail(&superseded, &compressed), payload);
    }

    #[test]
    fn release_record_round_trips_through_helm_encoding() {
        let rel = release(3);
        let encoded = encode(&rel);
        // Helm's payload: base64 text of a gzip stream.
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&encoded)
            .unwrap();
        assert_eq!(&raw[..2], &[0x1f, 0x8b]);
        let back = decode("s", &encoded).unwrap();
        assert_eq!(back, rel);
        assert_eq!(back.id(), "demo/app:3");
        assert_eq!(
            back.chart_annotation("fleet.cattle.io/bundle-id"),
            Some("b")
        );
        let objs = manifest_objects(&back).unwrap();
        assert_eq!(objs.len(), 1);
        assert_eq!(objs[0]["data"]["k"], "v");
    }

    #[test]
    fn release_secret_has_helm_name_type_and_labels() {
        let secret = to_secret(&release(7));
        assert_eq!(secret["metadata"]["name"], "sh.helm.release.v1.app.v7");
        assert_eq!(secret["type"], RELEASE_SECRET_TYPE);
        assert_eq!(secret["metadata"]["labels"]["owner"], "helm");
        assert_eq!(secret["metadata"]["labels"]["status"], "deployed");
        assert_eq!(secret["metadata"]["labels"]["version"], "7");
        let data = secret["data"]["release"].as_str().unwrap();
        let inner = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        assert_eq!(decode("s", &inner).unwrap().version, 7);
    }

    #[test]
    fn corrupt_release_records_name_the_secret() {
        let err = decode("sh.helm.release.v1.x.v1", b"%%%").unwrap_err();
        assert!(err.to_string().contains("sh.helm.release.v1.x.v1"), "{err}");
    }

    #[test]
    fn history_supersedes_the_deployed_revision_and_caps_the_rest() {
        let existing = vec![
            (1, status::SUPERSEDED.to_string()),
            (2, status::SUPERSEDED.to_string()),
            (3, status::DEPLOYED.to_string()),
        ];
        assert_eq!(next_revision(&existing), 4);
        let plan = plan_history(&existing, 4, 2);
        assert_eq!(plan.delete, vec![1, 2]);
        assert_eq!(plan.supersede, vec![3]);
        let unlimited = plan_history(&existing, 4, 0);
        assert!(unlimited.delete.is_empty());
        assert_eq!(unlimited.supersede, vec![3]);
        assert_eq!(plan_history(&[], 1, 2), HistoryPlan::default());
    }

    #[test]
    fn release_ids_parse() {
        assert_eq!(
            parse_release_id("ns/app:12"),
            Some(("ns".into(), "app".into(), 12))
        );
        assert_eq!(parse_release_id("app:1"), None);
        assert_eq!(parse_release_id("ns/app"), None);
    }
}

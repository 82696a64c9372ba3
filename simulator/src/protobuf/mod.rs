//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), turned into JSON.
//!
//! kubectl's typed commands (`kubectl create namespace`, `create configmap`, `create deployment`,
//! ...) and client-go's typed clients send protobuf: the 4-byte magic `k8s\0` followed by a
//! `runtime.Unknown` whose `typeMeta` names the kind and whose `raw` holds the object's message.
//! The simulator stores JSON, so the message is decoded field by field against a wire schema
//! (`schema.txt`: field numbers and types from the Kubernetes .proto definitions, JSON names from
//! the OpenAPI types; regenerate it with `simulator/tools/gen_proto_schema.py`).
//!
//! Go's protobuf encoding writes every non-pointer field, zero or not, while its JSON encoding omits
//! zero `omitempty` fields. The decoder mirrors the JSON form: zero scalars and empty lists/maps are
//! dropped, except for fields Kubernetes declares as pointers where zero means something
//! ([`ZERO_IS_MEANINGFUL`], e.g. `replicas: 0`). Empty messages stay (`emptyDir: {}` selects a volume
//! source).

use std::collections::HashMap;
use std::sync::LazyLock;

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// The media type of Kubernetes protobuf bodies.
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

/// Pointer fields whose zero value is a choice, not an absence: kept when present on the wire.
pub const ZERO_IS_MEANINGFUL: &[&str] = &[
    "replicas",
    "parallelism",
    "completions",
    "backoffLimit",
    "backoffLimitPerIndex",
    "maxFailedIndexes",
    "activeDeadlineSeconds",
    "ttlSecondsAfterFinished",
    "terminationGracePeriodSeconds",
    "deletionGracePeriodSeconds",
    "gracePeriodSeconds",
    "automountServiceAccountToken",
    "immutable",
    "suspend",
    "privileged",
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "fsGroup",
    "readOnlyRootFilesystem",
    "allowPrivilegeEscalation",
    "revisionHistoryLimit",
    "progressDeadlineSeconds",
    "optional",
    "defaultMode",
    "mode",
    "storageClassName",
    "enableServiceLinks",
    "publishNotReadyAddresses",
    "allocateLoadBalancerNodePorts",
    "orphanDependents",
    "blockOwnerDeletion",
    "controller",
    "startingDeadlineSeconds",
    "successfulJobsHistoryLimit",
    "failedJobsHistoryLimit",
    "hostUsers",
    "shareProcessNamespace",
    "setHostnameAsFQDN",
    "minAvailable",
    "maxUnavailable",
];

#[derive(Debug, Clone)]
enum FieldType {
    String,
    Bool,
    Int,
    Double,
    Bytes,
    Message(String),
    MapOf(Box<FieldType>),
}

#[derive(Debug, Clone)]
struct Field {
    json_name: String,
    ty: FieldType,
    repeated: bool,
}

type Messages = HashMap<String, HashMap<u64, Field>>;

static SCHEMA: LazyLock<Messages> = LazyLock::new(|| parse_schema(include_str!("schema.txt")));

fn parse_type(t: &str) -> FieldType {
    if let Some(inner) = t.strip_prefix("{s:").and_then(|r| r.strip_suffix('}')) {
        return FieldType::MapOf(Box::new(parse_type(inner)));
    }
    match t {
        "s" => FieldType::String,
        "b" => FieldType::Bool,
        "i" => FieldType::Int,
        "d" => FieldType::Double,
        "y" => FieldType::Bytes,
        other => FieldType::Message(other.strip_prefix("m:").unwrap_or(other).to_string()),
    }
}

fn parse_schema(text: &str) -> Messages {
    let mut out: Messages = HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("M ") {
            current = Some(name.to_string());
            out.entry(name.to_string()).or_default();
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(tag), Some(json_name), Some(ty), Some(msg)) =
            (parts.next(), parts.next(), parts.next(), current.as_ref())
        else {
            continue;
        };
        let Ok(tag) = tag.parse::<u64>() else {
            continue;
        };
        let (repeated, ty) = match ty.strip_prefix('*') {
            Some(t) => (true, t),
            None => (false, ty),
        };
        if let Some(fields) = out.get_mut(msg) {
            fields.insert(
                tag,
                Field {
                    json_name: json_name.to_string(),
                    ty: parse_type(ty),
                    repeated,
                },
            );
        }
    }
    out
}

/// Why a protobuf body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    #[error("protobuf body does not start with the Kubernetes magic number k8s\\0")]
    NoMagic,
    #[error("protobuf body is truncated or malformed while reading {0}")]
    Malformed(&'static str),
    #[error("protobuf body names no kind (runtime.Unknown.typeMeta is empty)")]
    NoKind,
    #[error("no protobuf schema for {api_version} {kind}")]
    UnknownKind { api_version: String, kind: String },
    #[error("protobuf body has content encoding {0:?}; only uncompressed bodies are accepted")]
    ContentEncoding(String),
}

impl From<ProtobufError> for ApiError {
    fn from(e: ProtobufError) -> Self {
        match e {
            ProtobufError::UnknownKind { .. } | ProtobufError::ContentEncoding(_) => ApiError::new(
                415,
                "UnsupportedMediaType",
                format!("{e}; send application/json or application/yaml"),
            ),
            _ => ApiError::bad_request(format!("couldn't decode the request body: {e}")),
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut out: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or(ProtobufError::Malformed("a varint"))?;
            self.pos += 1;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(ProtobufError::Malformed("a varint"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtobufError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(ProtobufError::Malformed("a length-delimited field"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn field(&mut self) -> Result<(u64, WireValue<'a>), ProtobufError> {
        let key = self.varint()?;
        let value = match key & 7 {
            0 => WireValue::Varint(self.varint()?),
            1 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                WireValue::Fixed64(u64::from_le_bytes(a))
            }
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| ProtobufError::Malformed("a length"))?;
                WireValue::Bytes(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                let mut a = [0u8; 4];
                a.copy_from_slice(b);
                WireValue::Fixed32(u32::from_le_bytes(a))
            }
            _ => return Err(ProtobufError::Malformed("a field key")),
        };
        Ok((key >> 3, value))
    }
}

/// Decodes a Kubernetes protobuf request body (magic + `runtime.Unknown`) into the JSON object it
/// stands for, `apiVersion` and `kind` included.
pub fn decode_object(body: &[u8]) -> Result<Value, ProtobufError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::NoMagic)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    let mut r = Reader::new(rest);
    while !r.done() {
        match r.field()? {
            (1, WireValue::Bytes(type_meta)) => {
                let mut t = Reader::new(type_meta);
                while !t.done() {
                    match t.field()? {
                        (1, WireValue::Bytes(v)) => api_version = utf8(v)?,
                        (2, WireValue::Bytes(v)) => kind = utf8(v)?,
                        _ => {}
                    }
                }
            }
            (2, WireValue::Bytes(v)) => raw = v,
            (3, WireValue::Bytes(v)) if !v.is_empty() => {
                return Err(ProtobufError::ContentEncoding(utf8(v)?));
            }
            _ => {}
        }
    }
    if kind.is_empty() {
        return Err(ProtobufError::NoKind);
    }
    let message = message_for(&api_version, &kind).ok_or_else(|| ProtobufError::UnknownKind {
        api_version: api_version.clone(),
        kind: kind.clone(),
    })?;
    let mut obj = decode_message(&message, raw)?;
    if let Value::Object(m) = &mut obj {
        m.insert("apiVersion".into(), Value::String(api_version));
        m.insert("kind".into(), Value::String(kind));
    }
    Ok(obj)
}

/// The schema message of a kind: `api.<group>.<version>.<Kind>`, with meta/v1 kinds
/// (`DeleteOptions`, ...) as the fallback every group version shares.
fn message_for(api_version: &str, kind: &str) -> Option<String> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let module = match group {
        "" => "api.core".to_string(),
        "apiextensions.k8s.io" => "apiextensions_apiserver.pkg.apis.apiextensions".to_string(),
        g => format!("api.{}", g.split('.').next().unwrap_or(g)),
    };
    [
        format!("{module}.{version}.{kind}"),
        format!("apimachinery.pkg.apis.meta.v1.{kind}"),
    ]
    .into_iter()
    .find(|m| SCHEMA.contains_key(m))
}

fn utf8(b: &[u8]) -> Result<String, ProtobufError> {
    String::from_utf8(b.to_vec()).map_err(|_| ProtobufError::Malformed("a UTF-8 string"))
}

fn scalar(ty: &FieldType, v: &WireValue<'_>) -> Result<Value, ProtobufError> {
    Ok(match (ty, v) {
        (FieldType::String, WireValue::Bytes(b)) => Value::String(utf8(b)?),
        (FieldType::Bytes, WireValue::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (FieldType::Bool, WireValue::Varint(n)) => Value::Bool(*n != 0),
        // int32 and int64 both arrive as two's-complement varints.
        (FieldType::Int, WireValue::Varint(n)) => json!(*n as i64),
        (FieldType::Double, WireValue::Fixed64(n)) => json!(f64::from_bits(*n)),
        (FieldType::Double, WireValue::Fixed32(n)) => json!(f64::from(f32::from_bits(*n))),
        (FieldType::Message(name), WireValue::Bytes(b)) => decode_message(name, b)?,
        (FieldType::MapOf(_), _) => return Err(ProtobufError::Malformed("a map entry")),
        _ => return Err(ProtobufError::Malformed("a field of unexpected wire type")),
    })
}

/// Packed repeated scalars (one length-delimited run of varints or fixed values).
fn unpack(ty: &FieldType, b: &[u8]) -> Result<Vec<Value>, ProtobufError> {
    let mut r = Reader::new(b);
    let mut out = Vec::new();
    while !r.done() {
        let v = match ty {
            FieldType::Double => {
                let b = r.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                WireValue::Fixed64(u64::from_le_bytes(a))
            }
            _ => WireValue::Varint(r.varint()?),
        };
        out.push(scalar(ty, &v)?);
    }
    Ok(out)
}

fn map_entry(value_ty: &FieldType, b: &[u8]) -> Result<(String, Value), ProtobufError> {
    let mut r = Reader::new(b);
    let mut key = String::new();
    let mut value = match value_ty {
        FieldType::Message(name) => decode_message(name, &[])?,
        _ => Value::String(String::new()),
    };
    while !r.done() {
        match r.field()? {
            (1, WireValue::Bytes(k)) => key = utf8(k)?,
            (2, v) => value = scalar(value_ty, &v)?,
            _ => {}
        }
    }
    Ok((key, value))
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(_) => false,
    }
}

fn decode_message(name: &str, b: &[u8]) -> Result<Value, ProtobufError> {
    let short = name.rsplit('.').next().unwrap_or(name);
    let Some(fields) = SCHEMA.get(name) else {
        return Ok(Value::Object(Map::new()));
    };
    let mut out = Map::new();
    let mut r = Reader::new(b);
    while !r.done() {
        let (tag, v) = r.field()?;
        let Some(field) = fields.get(&tag) else {
            continue;
        };
        match (&field.ty, &v) {
            (FieldType::MapOf(value_ty), WireValue::Bytes(entry)) => {
                let (k, val) = map_entry(value_ty, entry)?;
                let slot = out
                    .entry(field.json_name.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = slot {
                    m.insert(k, val);
                }
            }
            (ty, _) if field.repeated => {
                let items = match (ty, &v) {
                    (
                        FieldType::Int | FieldType::Bool | FieldType::Double,
                        WireValue::Bytes(packed),
                    ) => unpack(ty, packed)?,
                    _ => vec![scalar(ty, &v)?],
                };
                let slot = out
                    .entry(field.json_name.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(a) = slot {
                    a.extend(items);
                }
            }
            (ty, _) => {
                out.insert(field.json_name.clone(), scalar(ty, &v)?);
            }
        }
    }
    if let Some(special) = special_form(name, short, &out)? {
        return Ok(special);
    }
    out.retain(|k, v| !is_zero(v) || ZERO_IS_MEANINGFUL.contains(&k.as_str()));
    Ok(Value::Object(out))
}

/// Types whose JSON form is not an object of their fields.
fn special_form(
    name: &str,
    short: &str,
    fields: &Map<String, Value>,
) -> Result<Option<Value>, ProtobufError> {
    let int = |k: &str| fields.get(k).and_then(Value::as_i64).unwrap_or(0);
    let list = |k: &str| fields.get(k).cloned().unwrap_or_else(|| json!([]));
    Ok(Some(match (name, short) {
        ("apimachinery.pkg.apis.meta.v1.Time", _)
        | ("apimachinery.pkg.apis.meta.v1.MicroTime", _) => {
            let (secs, nanos) = (int("seconds"), int("nanos"));
            if secs == 0 && nanos == 0 {
                return Ok(Some(Value::Null));
            }
            let nanos = u32::try_from(nanos).unwrap_or(0);
            let Some(t) = chrono::DateTime::from_timestamp(secs, nanos) else {
                return Ok(Some(Value::Null));
            };
            if short == "MicroTime" {
                Value::String(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
            } else {
                Value::String(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            }
        }
        ("apimachinery.pkg.apis.meta.v1.Duration", _) => {
            Value::String(go_duration(int("duration")))
        }
        (_, "Quantity" | "QuantityValue") => {
            fields.get("string").cloned().unwrap_or_else(|| json!("0"))
        }
        ("apimachinery.pkg.util.intstr.IntOrString", _) => {
            if int("type") == 1 {
                fields.get("strVal").cloned().unwrap_or_else(|| json!(""))
            } else {
                json!(int("intVal"))
            }
        }
        (_, "RawExtension" | "FieldsV1" | "Json") => {
            match fields.get("raw").and_then(Value::as_str) {
                Some(b64) => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .map_err(|_| ProtobufError::Malformed("embedded raw JSON"))?;
                    serde_json::from_slice(&bytes)
                        .map_err(|_| ProtobufError::Malformed("embedded raw JSON"))?
                }
                None => Value::Null,
            }
        }
        (_, "Verbs" | "ExtraValue") => list("items"),
        (_, "JsonSchemaPropsOrBool") => match fields.get("schema") {
            Some(s) => s.clone(),
            None => json!(
                fields
                    .get("allows")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
        },
        (_, "JsonSchemaPropsOrArray") => match fields.get("jSONSchemas") {
            Some(a) => a.clone(),
            None => fields.get("schema").cloned().unwrap_or(Value::Null),
        },
        (_, "JsonSchemaPropsOrStringArray") => match fields.get("property") {
            Some(a) => a.clone(),
            None => fields.get("schema").cloned().unwrap_or(Value::Null),
        },
        _ => return Ok(None),
    }))
}

/// Go's `time.Duration.String()` ("1h2m3.5s", "0s").
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000_000_000 {
        return format!("{sign}{}", sub_second(n));
    }
    let (h, rem) = (n / 3_600_000_000_000, n % 3_600_000_000_000);
    let (m, rem) = (rem / 60_000_000_000, rem % 60_000_000_000);
    let secs = rem as f64 / 1e9;
    let mut out = sign.to_string();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{secs}s"));
    out
}

fn sub_second(n: u64) -> String {
    if n < 1_000 {
        format!("{n}ns")
    } else if n < 1_000_000 {
        format!("{}µs", n as f64 / 1e3)
    } else {
        format!("{}ms", n as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn varint(mut n: u64, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn bytes_field(tag: u64, b: &[u8], out: &mut Vec<u8>) {
        varint(tag << 3 | 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }
    fn varint_field(tag: u64, n: u64, out: &mut Vec<u8>) {
        varint(tag << 3, out);
        varint(n, out);
    }
    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = Vec::new();
        bytes_field(1, api_version.as_bytes(), &mut tm);
        bytes_field(2, kind.as_bytes(), &mut tm);
        let mut unknown = Vec::new();
        bytes_field(1, &tm, &mut unknown);
        bytes_field(2, raw, &mut unknown);
        bytes_field(3, b"", &mut unknown);
        bytes_field(4, b"", &mut unknown);
        let mut out = MAGIC.to_vec();
        out.extend(unknown);
        out
    }

    #[test]
    fn decodes_a_configmap_like_go_writes_it() {
        // ObjectMeta with the zero fields Go always writes.
        let mut meta = Vec::new();
        bytes_field(1, b"cm", &mut meta);
        bytes_field(2, b"", &mut meta);
        bytes_field(3, b"default", &mut meta);
        varint_field(7, 0, &mut meta);
        bytes_field(8, b"", &mut meta); // zero Time
        let mut label = Vec::new();
        bytes_field(1, b"app", &mut label);
        bytes_field(2, b"web", &mut label);
        bytes_field(11, &label, &mut meta);
        let mut cm = Vec::new();
        bytes_field(1, &meta, &mut cm);
        let mut entry = Vec::new();
        bytes_field(1, b"k", &mut entry);
        bytes_field(2, b"v", &mut entry);
        bytes_field(2, &entry, &mut cm);
        let obj = decode_object(&envelope("v1", "ConfigMap", &cm)).unwrap();
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "cm", "namespace": "default", "labels": {"app": "web"}},
                   "data": {"k": "v"}})
        );
    }

    #[test]
    fn keeps_meaningful_zeros_and_special_types() {
        let mut spec = Vec::new();
        varint_field(1, 0, &mut spec); // replicas: 0 (a pointer in Go)
        varint_field(6, 0, &mut spec); // revisionHistoryLimit
        varint_field(5, 0, &mut spec); // minReadySeconds: dropped like omitempty
        let mut strategy = Vec::new();
        let mut rolling = Vec::new();
        let mut ios = Vec::new();
        varint_field(1, 1, &mut ios);
        bytes_field(3, b"25%", &mut ios);
        bytes_field(1, &ios, &mut rolling);
        bytes_field(2, &rolling, &mut strategy);
        bytes_field(4, &strategy, &mut spec);
        let mut deploy = Vec::new();
        bytes_field(2, &spec, &mut deploy);
        let obj = decode_object(&envelope("apps/v1", "Deployment", &deploy)).unwrap();
        assert_eq!(obj["spec"]["replicas"], json!(0));
        assert_eq!(obj["spec"]["revisionHistoryLimit"], json!(0));
        assert!(obj["spec"].get("minReadySeconds").is_none());
        assert_eq!(
            obj["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
            json!("25%")
        );
    }

    #[test]
    fn secret_bytes_are_base64_and_times_are_rfc3339() {
        let mut time = Vec::new();
        varint_field(1, 1_700_000_000, &mut time);
        let mut meta = Vec::new();
        bytes_field(1, b"s", &mut meta);
        bytes_field(8, &time, &mut meta);
        let mut secret = Vec::new();
        bytes_field(1, &meta, &mut secret);
        let mut entry = Vec::new();
        bytes_field(1, b"password", &mut entry);
        bytes_field(2, b"hunter2", &mut entry);
        bytes_field(2, &entry, &mut secret);
        let obj = decode_object(&envelope("v1", "Secret", &secret)).unwrap();
        assert_eq!(obj["data"]["password"], json!("aHVudGVyMg=="));
        assert_eq!(
            obj["metadata"]["creationTimestamp"],
            json!("2023-11-14T22:13:20Z")
        );
    }

    #[test]
    fn bad_bodies_are_errors_not_panics() {
        assert!(matches!(decode_object(b"{}"), Err(ProtobufError::NoMagic)));
        assert!(decode_object(b"k8s\0\x0a\xff").is_err());
        assert!(matches!(
            decode_object(&envelope("example.com/v1", "Widget", b"")),
            Err(ProtobufError::UnknownKind { .. })
        ));
        let mut truncated = envelope("v1", "ConfigMap", b"\x0a\x05ab");
        truncated.truncate(truncated.len() - 1);
        assert!(decode_object(&truncated).is_err());
        assert_eq!(go_duration(90_000_000_000), "1m30s");
    }
}

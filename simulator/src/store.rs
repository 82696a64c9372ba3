//! The object store of one cluster: objects by resource/namespace/name, a monotonic
//! `resourceVersion`, indexes for garbage collection, and a bounded event history for watches:
//! one per resource like kube-apiserver's watch cache, indexed by namespace so that a
//! namespaced watch (each agent watching its own cluster namespace) reads only its own events
//! instead of every write to the cluster.
//!
//! The store only commits; the Kubernetes semantics (validation, generation, finalizers, field
//! ownership) live in `ops`, which holds the store lock for the whole of one request.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// One version of a stored object, shared by the store, the watch history and readers; never
/// mutated in place.
///
/// `metadata.managedFields` is kept apart, as its JSON text: decoded, FieldsV1's many small
/// maps take more memory than the rest of most objects, and only writes read it (as
/// [`crate::ssa::ManagedEntry`]s). [`std::ops::Deref`] gives the object without it, for
/// everything that reads fields; [`StoredObject::to_value`] and [`StoredObject::encoded`] give
/// the whole object, as clients see it.
///
/// The version also keeps its JSON encoding, made on first need (the write's response or its
/// watch event) and shared by every response and watch event that sends this version: the watch
/// history keeps only that encoding of versions that are no longer current.
#[derive(Debug)]
pub struct StoredObject {
    value: Value,
    managed_fields: Option<Box<RawValue>>,
    encoded: OnceLock<Bytes>,
}

impl StoredObject {
    /// Stores `value`, taking its `metadata.managedFields` apart.
    pub fn new(mut value: Value) -> Self {
        let managed_fields = value
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .and_then(|m| m.remove("managedFields"))
            .and_then(|mf| serde_json::value::to_raw_value(&mf).ok());
        StoredObject {
            value,
            managed_fields,
            encoded: OnceLock::new(),
        }
    }

    /// `value` with `managed_fields` as its `metadata.managedFields` (any the value holds are
    /// dropped).
    pub fn with_raw_managed_fields(
        mut value: Value,
        managed_fields: Option<Box<RawValue>>,
    ) -> Self {
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
        StoredObject {
            value,
            managed_fields,
            encoded: OnceLock::new(),
        }
    }

    /// `value` (without managedFields) with the managedFields of `like`: a system write that
    /// changes only metadata (finalizers, deletion, ownerReferences) keeps the field owners.
    pub fn with_managed_fields_of(value: Value, like: &StoredObject) -> Self {
        StoredObject {
            value,
            managed_fields: like.managed_fields.clone(),
            encoded: OnceLock::new(),
        }
    }

    /// Decodes a version from its encoding (which it keeps). Its managedFields are kept as
    /// the JSON they are encoded as: decoding them only to encode them again was most of the
    /// cost of reading back an object many managers wrote.
    fn decode(encoded: Bytes) -> Self {
        let object = match serde_json::from_slice::<SplitObject>(&encoded) {
            Ok(SplitObject {
                value,
                managed_fields,
            }) => StoredObject {
                value,
                managed_fields,
                encoded: OnceLock::new(),
            },
            Err(_) => StoredObject::new(serde_json::from_slice(&encoded).unwrap_or(Value::Null)),
        };
        let _ = object.encoded.set(encoded);
        object
    }

    /// The object without `metadata.managedFields`.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// `metadata.managedFields`, decoded.
    pub fn managed_fields(&self) -> Option<Value> {
        self.managed_fields
            .as_deref()
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
    }

    /// `metadata.managedFields` as stored.
    pub fn managed_fields_raw(&self) -> Option<&RawValue> {
        self.managed_fields.as_deref()
    }

    /// The whole object, managedFields included.
    pub fn to_value(&self) -> Value {
        let mut value = self.value.clone();
        if let Some(mf) = self.managed_fields()
            && let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut)
        {
            meta.insert("managedFields".to_string(), mf);
        }
        value
    }

    /// The same object as `api_version` (versions share one schema here).
    pub fn with_api_version(&self, api_version: &str) -> Self {
        let mut value = self.value.clone();
        if let Value::Object(root) = &mut value {
            root.insert(
                "apiVersion".to_string(),
                Value::String(api_version.to_string()),
            );
        }
        StoredObject::with_managed_fields_of(value, self)
    }

    /// The whole object as JSON, encoded once.
    pub fn encoded(&self) -> Bytes {
        self.encoded
            .get_or_init(|| {
                let mut json = serde_json::to_vec(&Whole(self)).unwrap_or_default();
                // Kept for as long as the version is in the watch history: not with the
                // slack of a growing buffer (up to half of it).
                json.shrink_to_fit();
                Bytes::from(json)
            })
            .clone()
    }
}

impl std::ops::Deref for StoredObject {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.value
    }
}

/// An encoded object decoded with its `metadata.managedFields` left as JSON (a map at the top
/// and in `metadata`; anything else fails, and is decoded whole).
struct SplitObject {
    value: Value,
    managed_fields: Option<Box<RawValue>>,
}

impl<'de> serde::Deserialize<'de> for SplitObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Root;
        impl<'de> serde::de::Visitor<'de> for Root {
            type Value = SplitObject;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SplitObject, A::Error> {
                let mut root = serde_json::Map::new();
                let mut managed_fields = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "metadata" {
                        let SplitMetadata(meta, mf) = map.next_value()?;
                        managed_fields = mf;
                        root.insert(key, Value::Object(meta));
                    } else {
                        let value: Value = map.next_value()?;
                        root.insert(key, value);
                    }
                }
                Ok(SplitObject {
                    value: Value::Object(root),
                    managed_fields,
                })
            }
        }
        deserializer.deserialize_map(Root)
    }
}

struct SplitMetadata(serde_json::Map<String, Value>, Option<Box<RawValue>>);

impl<'de> serde::Deserialize<'de> for SplitMetadata {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Meta;
        impl<'de> serde::de::Visitor<'de> for Meta {
            type Value = SplitMetadata;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("object metadata")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<SplitMetadata, A::Error> {
                let mut meta = serde_json::Map::new();
                let mut managed_fields = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "managedFields" {
                        managed_fields = Some(map.next_value::<Box<RawValue>>()?);
                    } else {
                        let value: Value = map.next_value()?;
                        meta.insert(key, value);
                    }
                }
                Ok(SplitMetadata(meta, managed_fields))
            }
        }
        deserializer.deserialize_map(Meta)
    }
}

/// Serializes a [`StoredObject`] with its managedFields back in `metadata`, in the order a
/// decoded object would have them (map keys sorted).
struct Whole<'a>(&'a StoredObject);

impl Serialize for Whole<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (Value::Object(root), Some(managed_fields)) =
            (&self.0.value, self.0.managed_fields.as_deref())
        else {
            return self.0.value.serialize(serializer);
        };
        let mut map = serializer.serialize_map(Some(root.len()))?;
        for (k, v) in root {
            match v {
                Value::Object(meta) if k == "metadata" => map.serialize_entry(
                    k,
                    &MetadataWith {
                        meta,
                        managed_fields,
                    },
                )?,
                _ => map.serialize_entry(k, v)?,
            }
        }
        map.end()
    }
}

struct MetadataWith<'a> {
    meta: &'a serde_json::Map<String, Value>,
    managed_fields: &'a RawValue,
}

impl Serialize for MetadataWith<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        const KEY: &str = "managedFields";
        let mut map = serializer.serialize_map(Some(self.meta.len() + 1))?;
        let mut written = false;
        for (k, v) in self.meta {
            if !written && k.as_str() > KEY {
                map.serialize_entry(KEY, self.managed_fields)?;
                written = true;
            }
            map.serialize_entry(k, v)?;
        }
        if !written {
            map.serialize_entry(KEY, self.managed_fields)?;
        }
        map.end()
    }
}

/// A stored object version (see [`StoredObject`]).
pub type Obj = Arc<StoredObject>;

/// A version as a watch event holds it: the object while the event is fresh, only its
/// encoding once watchers have had time to send it (a fraction of the decoded form's memory).
#[derive(Debug)]
enum Version {
    Object(Obj),
    Encoded(Bytes),
}

impl Version {
    fn object(&self) -> Obj {
        match self {
            Version::Object(o) => o.clone(),
            Version::Encoded(b) => Arc::new(StoredObject::decode(b.clone())),
        }
    }

    /// The encoding, without encoding a decoded version here (the caller does it outside the
    /// slot's lock).
    fn encoded_or_object(&self) -> Result<Bytes, Obj> {
        match self {
            Version::Object(o) => Err(o.clone()),
            Version::Encoded(b) => Ok(b.clone()),
        }
    }

    fn compact(&mut self) {
        if let Version::Object(o) = self {
            *self = Version::Encoded(o.encoded());
        }
    }
}

/// The current version of an object: decoded while it is being written and watched, only its
/// encoding (shared with its watch event) once it has not changed for [`DECODED_KEPT_FOR`]; a
/// reader decodes it again. Most objects of a simulated cluster change rarely: their decoded
/// form would be most of what the cluster holds.
#[derive(Debug)]
struct Current {
    resource_version: u64,
    version: Version,
}

/// Whether an encoded object has `api_version`, seen without decoding it: encoded objects are
/// maps with sorted keys, so `apiVersion` comes first.
fn encoded_has_api_version(encoded: &[u8], api_version: &str) -> bool {
    let Some(rest) = encoded.strip_prefix(b"{\"apiVersion\":".as_slice()) else {
        return false;
    };
    let quoted = Value::String(api_version.to_string()).to_string();
    rest.strip_prefix(quoted.as_bytes())
        .is_some_and(|after| matches!(after.first(), Some(b',' | b'}')))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Where an object lives: its group-resource (`deployments.apps`), namespace (empty for
/// cluster-scoped objects) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    pub group_resource: Arc<str>,
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// An event's object.
#[derive(Debug)]
enum ObjectSlot {
    Kept(Version),
    /// The version is the `previous` of `later`, the next event of the same object, which keeps
    /// it as a diff (see [`StoreState::link`]).
    PreviousOf(Arc<StoredEvent>),
}

/// An event's previous object.
#[derive(Debug)]
enum PreviousSlot {
    Kept(Version),
    /// A diff from the event's object to its previous version ([`crate::delta`]), with how many
    /// linked versions of the object precede this one (see [`MAX_LINKED_VERSIONS`]).
    Diff {
        diff: Box<[u8]>,
        linked: u8,
    },
}

/// Where the object of an event lives (see [`ObjKey`]). Its strings are shared with the
/// history's namespace and the object's previous event: a history holds many events of few
/// objects (a Lease renewed 100 times).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventKey {
    pub group_resource: Arc<str>,
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl EventKey {
    pub fn to_obj_key(&self) -> ObjKey {
        ObjKey {
            group_resource: self.group_resource.clone(),
            namespace: self.namespace.to_string(),
            name: self.name.to_string(),
        }
    }
}

/// One committed change, as watchers see it.
#[derive(Debug)]
pub struct StoredEvent {
    pub resource_version: u64,
    pub key: EventKey,
    pub event_type: EventType,
    /// When it was committed: the watch history drops events older than
    /// [`EVENT_FRESH_DURATION`] once it holds more than [`HISTORY_MIN_EVENTS`].
    pub committed: Instant,
    object: Mutex<ObjectSlot>,
    /// The object before a modification or deletion (used to turn selector transitions into
    /// ADDED/DELETED).
    previous: Mutex<Option<PreviousSlot>>,
}

impl StoredEvent {
    fn new(
        resource_version: u64,
        key: ObjKey,
        event_type: EventType,
        object: Obj,
        previous: Option<Obj>,
    ) -> Self {
        StoredEvent {
            resource_version,
            key: EventKey {
                group_resource: key.group_resource,
                namespace: key.namespace.into(),
                name: key.name.into(),
            },
            event_type,
            committed: Instant::now(),
            object: Mutex::new(ObjectSlot::Kept(Version::Object(object))),
            previous: Mutex::new(previous.map(|p| PreviousSlot::Kept(Version::Object(p)))),
        }
    }

    /// The object the event carries (decoded again if the event was compacted).
    pub fn object(&self) -> Obj {
        if let ObjectSlot::Kept(Version::Object(o)) = &*lock(&self.object) {
            return o.clone();
        }
        Arc::new(StoredObject::decode(self.encoded_object()))
    }

    /// The object before the change, for modifications and deletions.
    pub fn previous(&self) -> Option<Obj> {
        if let Some(PreviousSlot::Kept(Version::Object(o))) = &*lock(&self.previous) {
            return Some(o.clone());
        }
        self.encoded_previous()
            .map(|b| Arc::new(StoredObject::decode(b)))
    }

    /// `object` as JSON, encoded once for every watcher (and the write's response).
    pub fn encoded_object(&self) -> Bytes {
        // Read outside the slots' locks: watchers racing on a fresh event wait for nobody.
        let later = match &*lock(&self.object) {
            ObjectSlot::Kept(v) => v.encoded_or_object(),
            ObjectSlot::PreviousOf(later) => return previous_in_chain(later.clone()),
        };
        later.unwrap_or_else(|o| o.encoded())
    }

    /// `previous` as JSON.
    fn encoded_previous(&self) -> Option<Bytes> {
        let kept = match lock(&self.previous).as_ref()? {
            PreviousSlot::Kept(v) => Ok(v.encoded_or_object()),
            PreviousSlot::Diff { diff, .. } => Err(diff.clone()),
        };
        Some(match kept {
            Ok(kept) => kept.unwrap_or_else(|o| o.encoded()),
            Err(diff) => apply_diffs(self.encoded_object(), &[diff]),
        })
    }

    /// Whether the object was written as `api_version` (seen without decoding it).
    pub fn has_api_version(&self, api_version: &str) -> bool {
        match &*lock(&self.object) {
            ObjectSlot::Kept(Version::Object(o)) => {
                return o.get("apiVersion").and_then(Value::as_str) == Some(api_version);
            }
            ObjectSlot::Kept(Version::Encoded(b)) => {
                return encoded_has_api_version(b, api_version);
            }
            ObjectSlot::PreviousOf(_) => {}
        }
        encoded_has_api_version(&self.encoded_object(), api_version)
    }

    /// Keeps only the encodings of the event's versions.
    fn compact(&self) {
        if let ObjectSlot::Kept(v) = &mut *lock(&self.object) {
            v.compact();
        }
        if let Some(PreviousSlot::Kept(v)) = lock(&self.previous).as_mut() {
            v.compact();
        }
    }

    /// The resourceVersion of the previous object, while the event keeps it decoded.
    fn previous_resource_version(&self) -> Option<u64> {
        match lock(&self.previous).as_ref()? {
            PreviousSlot::Kept(Version::Object(o)) => rv_of(o),
            _ => None,
        }
    }

    /// The encoding of the object when the event keeps it whole and compacted.
    fn kept_encoding(&self) -> Option<Bytes> {
        match &*lock(&self.object) {
            ObjectSlot::Kept(Version::Encoded(b)) => Some(b.clone()),
            _ => None,
        }
    }
}

/// The `previous` of `later`, following the versions kept as diffs of later ones to the first
/// one kept whole (a loop, not a recursion: chains are bounded by [`MAX_LINKED_VERSIONS`], but
/// each link would be a stack frame).
fn previous_in_chain(mut later: Arc<StoredEvent>) -> Bytes {
    // The diff of each event on the way, from its object to its previous version.
    let mut diffs = Vec::new();
    let base = loop {
        let kept = match lock(&later.previous).as_ref() {
            None => return Bytes::new(),
            Some(PreviousSlot::Kept(v)) => Some(v.encoded_or_object()),
            Some(PreviousSlot::Diff { diff, .. }) => {
                diffs.push(diff.clone());
                None
            }
        };
        if let Some(kept) = kept {
            break kept.unwrap_or_else(|o| o.encoded());
        }
        let next = match &*lock(&later.object) {
            ObjectSlot::Kept(v) => Err(v.encoded_or_object()),
            ObjectSlot::PreviousOf(next) => Ok(next.clone()),
        };
        match next {
            Ok(next) => later = next,
            Err(kept) => break kept.unwrap_or_else(|o| o.encoded()),
        }
    };
    // `base` is the latest version on the way: its diff applies first.
    diffs.reverse();
    apply_diffs(base, &diffs)
}

/// Applies `diffs` in order, starting from `base`.
fn apply_diffs(base: Bytes, diffs: &[Box<[u8]>]) -> Bytes {
    diffs.iter().fold(base, |bytes, diff| {
        // The store made each diff from this very base: `None` would be its bug, not bad input.
        let built = crate::delta::apply(&bytes, diff);
        debug_assert!(
            built.is_some(),
            "a watch-history diff does not apply to its base"
        );
        Bytes::from(built.unwrap_or_default())
    })
}

/// kube-apiserver's watch cache keeps events younger than this (`eventFreshDuration`) and
/// lets older ones go once it holds more than its lower bound: the history follows the write
/// rate instead of growing to its upper bound on every busy resource (each event holds a
/// version of its object, so a full history of a Lease renewed every second is megabytes).
pub const EVENT_FRESH_DURATION: Duration = Duration::from_secs(75);
/// Events a resource's history keeps regardless of their age (kube-apiserver's lower bound).
pub const HISTORY_MIN_EVENTS: usize = 100;
/// How long a watch event keeps its objects decoded: watchers send an event within moments of
/// its commit; afterwards the event keeps only their encodings (a watch resuming later with a
/// selector, or in another version, decodes them again).
///
/// Two seconds, not more: at thousands of clusters the objects written in this window, decoded
/// (several times their encoded size), were a large part of the peak memory of a rollout, and
/// a plain watch or GET sends the encoding without decoding anything.
pub const DECODED_KEPT_FOR: Duration = Duration::from_secs(2);
/// How many consecutive versions of one object the watch history keeps as diffs, each against
/// the next: sending the oldest applies this many diffs. A Lease renewed every 2 s keeps about
/// 100 versions, so about 3 of them whole.
const MAX_LINKED_VERSIONS: u8 = 32;
/// How often the histories of resources nobody writes to are checked for stale events.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The watch history of one resource, bounded like kube-apiserver's watch cache.
#[derive(Debug, Default)]
struct ResourceHistory {
    events: VecDeque<Arc<StoredEvent>>,
    /// Every event of this resource with a resourceVersion above this is in `events`.
    floor: u64,
    /// How many events at the front of `events` keep only encodings (compaction goes in
    /// order, so they are a prefix): a sweep starts after them without searching.
    compacted: usize,
    /// The same events by namespace (a subset of `events`, evicted with them). Entries are
    /// kept when empty: their floor says which events of the namespace were dropped.
    namespaces: HashMap<Arc<str>, NamespaceHistory>,
}

#[derive(Debug, Default)]
struct NamespaceHistory {
    events: VecDeque<Arc<StoredEvent>>,
    floor: u64,
}

/// Events after `since` in `events`, or `None` when some were dropped (`since < floor`).
fn events_after(
    events: &VecDeque<Arc<StoredEvent>>,
    floor: u64,
    since: u64,
) -> Option<Vec<Arc<StoredEvent>>> {
    if since < floor {
        return None;
    }
    let start = events.partition_point(|e| e.resource_version <= since);
    Some(events.range(start..).cloned().collect())
}

/// Counters of one store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub objects: usize,
    pub writes: u64,
    pub creates: u64,
    pub updates: u64,
    pub deletes: u64,
    pub resource_version: u64,
    pub history_len: usize,
    /// Requests served (set by the transport layer).
    pub requests: u64,
}

/// What a cluster stores (see [`StoreState::storage_sizes`]).
#[derive(Debug, Clone, Default)]
pub struct StorageSizes {
    pub objects: usize,
    pub bytes: u64,
    pub largest: Option<(String, String, u64)>,
}

#[derive(Debug)]
pub struct StoreState {
    resource_version: u64,
    objects: HashMap<Arc<str>, BTreeMap<(String, String), Current>>,
    /// Watch history by group-resource.
    histories: HashMap<Arc<str>, ResourceHistory>,
    /// A simulated restart drops every history: nothing at or below this can be resumed.
    restart_floor: u64,
    /// Events kept per resource at most.
    history_limit: usize,
    /// Events kept per resource regardless of their age.
    history_min: usize,
    /// When the histories were last checked for stale events.
    last_sweep: Instant,
    uids: HashMap<String, ObjKey>,
    /// owner uid → objects naming it in `ownerReferences`.
    dependents: HashMap<String, BTreeSet<ObjKey>>,
    /// Events committed since the last `take_pending`.
    pending: Vec<Arc<StoredEvent>>,
    stats: StoreStats,
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj.get("metadata")
        .and_then(|v| v.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn rv_of(obj: &Value) -> Option<u64> {
    obj.get("metadata")
        .and_then(|v| v.get("resourceVersion"))
        .and_then(Value::as_str)
        .and_then(|rv| rv.parse().ok())
}

fn uid_of(obj: &Value) -> Option<&str> {
    obj.get("metadata")
        .and_then(|v| v.get("uid"))
        .and_then(Value::as_str)
}

impl StoreState {
    pub fn new(history_limit: usize) -> Self {
        StoreState {
            resource_version: 1,
            objects: HashMap::new(),
            histories: HashMap::new(),
            restart_floor: 1,
            history_limit: history_limit.max(1),
            history_min: HISTORY_MIN_EVENTS.min(history_limit.max(1)),
            last_sweep: Instant::now(),
            uids: HashMap::new(),
            dependents: HashMap::new(),
            pending: Vec::new(),
            stats: StoreStats::default(),
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    /// The oldest resourceVersion a watch of `group_resource` (in `namespace`, or all
    /// namespaces for `None`) can resume from.
    pub fn history_floor(&self, group_resource: &str, namespace: Option<&str>) -> u64 {
        let floor = match self.histories.get(group_resource) {
            None => 0,
            Some(h) => match namespace.filter(|ns| !ns.is_empty()) {
                None => h.floor,
                Some(ns) => h.namespaces.get(ns).map_or(0, |n| n.floor),
            },
        };
        floor.max(self.restart_floor)
    }

    pub fn get(&self, key: &ObjKey) -> Option<Obj> {
        self.current(key).map(|c| c.version.object())
    }

    /// The object under `key` as JSON if it is kept encoded in `api_version` (a read that
    /// needs only its bytes does not decode it); `None` when it is absent or decoded.
    pub fn get_encoded(&self, key: &ObjKey, api_version: &str) -> Option<Bytes> {
        match &self.current(key)?.version {
            Version::Encoded(b) if encoded_has_api_version(b, api_version) => Some(b.clone()),
            _ => None,
        }
    }

    /// Whether an object is stored under `key` and, when it may have `field` set, the object:
    /// `Some(None)` when its encoding does not mention `"field"` at all, so a check of a field
    /// that is rarely set (a namespace's `deletionTimestamp`, on every create in it) decodes
    /// nothing in the usual case.
    pub fn get_if_mentions(&self, key: &ObjKey, field: &str) -> Option<Option<Obj>> {
        let current = self.current(key)?;
        Some(match &current.version {
            Version::Encoded(b) => {
                let quoted = format!("\"{field}\"");
                let mentioned = b.windows(quoted.len()).any(|w| w == quoted.as_bytes());
                mentioned.then(|| current.version.object())
            }
            Version::Object(o) => Some(o.clone()),
        })
    }

    /// The resourceVersion of the object under `key`, without decoding it.
    pub fn version_of(&self, key: &ObjKey) -> Option<u64> {
        self.current(key).map(|c| c.resource_version)
    }

    fn current(&self, key: &ObjKey) -> Option<&Current> {
        self.objects
            .get(&key.group_resource)?
            .get(&(key.namespace.clone(), key.name.clone()))
    }

    pub fn key_of_uid(&self, uid: &str) -> Option<&ObjKey> {
        self.uids.get(uid)
    }

    pub fn dependents_of(&self, uid: &str) -> Vec<ObjKey> {
        self.dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Objects of one resource, sorted by namespace then name, starting after `after`.
    pub fn range<'a>(
        &'a self,
        group_resource: &str,
        namespace: Option<&'a str>,
        after: Option<(String, String)>,
    ) -> impl Iterator<Item = (&'a (String, String), Obj)> + 'a {
        let map = self.objects.get(group_resource);
        let start = match (&after, namespace) {
            (Some(a), _) => std::ops::Bound::Excluded(a.clone()),
            (None, Some(ns)) => std::ops::Bound::Included((ns.to_string(), String::new())),
            (None, None) => std::ops::Bound::Unbounded,
        };
        map.into_iter()
            .flat_map(move |m| m.range((start.clone(), std::ops::Bound::Unbounded)))
            .take_while(move |((ns, _), _)| namespace.is_none_or(|want| ns == want))
            .map(|(k, c)| (k, c.version.object()))
    }

    pub fn count(&self, group_resource: &str) -> usize {
        self.objects.get(group_resource).map_or(0, BTreeMap::len)
    }

    /// Keys of every object in a namespace, across resources.
    pub fn keys_in_namespace(&self, namespace: &str) -> Vec<ObjKey> {
        let mut out = Vec::new();
        for (gr, map) in &self.objects {
            for (ns, name) in map.keys() {
                if ns == namespace {
                    out.push(ObjKey {
                        group_resource: gr.clone(),
                        namespace: ns.clone(),
                        name: name.clone(),
                    });
                }
            }
        }
        out.sort();
        out
    }

    /// Objects stored, their total size as JSON, and the largest one
    /// (`(group-resource, namespace/name, bytes)`).
    pub fn storage_sizes(&self) -> StorageSizes {
        let mut sizes = StorageSizes::default();
        for (gr, map) in &self.objects {
            for ((ns, name), current) in map {
                let bytes = match &current.version {
                    Version::Object(o) => o.encoded().len(),
                    Version::Encoded(b) => b.len(),
                } as u64;
                sizes.objects += 1;
                sizes.bytes += bytes;
                if sizes.largest.as_ref().is_none_or(|l| l.2 < bytes) {
                    let key = if ns.is_empty() {
                        name.clone()
                    } else {
                        format!("{ns}/{name}")
                    };
                    sizes.largest = Some((gr.to_string(), key, bytes));
                }
            }
        }
        sizes
    }

    /// Every object of one resource (all namespaces).
    pub fn all_of(&self, group_resource: &str) -> Vec<Obj> {
        self.objects
            .get(group_resource)
            .map(|m| m.values().map(|c| c.version.object()).collect())
            .unwrap_or_default()
    }

    fn next_rv(&mut self) -> u64 {
        self.resource_version += 1;
        self.stats.writes += 1;
        self.resource_version
    }

    fn record(&mut self, mut event: StoredEvent) {
        // The history's names of the resource and the namespace, and the name of the object's
        // previous event, not allocations of their own (writers build a key per request).
        if let Some((group_resource, history)) =
            self.histories.get_key_value(&event.key.group_resource)
        {
            event.key.group_resource = group_resource.clone();
            if let Some((namespace, _)) = history.namespaces.get_key_value(&*event.key.namespace) {
                event.key.namespace = namespace.clone();
            }
            let earlier = event.previous_resource_version().and_then(|rv| {
                let at = history
                    .events
                    .binary_search_by_key(&rv, |e| e.resource_version)
                    .ok()?;
                history.events.get(at)
            });
            if let Some(earlier) = earlier
                && earlier.key == event.key
            {
                event.key.name = earlier.key.name.clone();
            }
        }
        let event = Arc::new(event);
        self.pending.push(event.clone());
        let restart_floor = self.restart_floor;
        let history = self
            .histories
            .entry(event.key.group_resource.clone())
            .or_insert_with(|| ResourceHistory {
                floor: restart_floor,
                ..ResourceHistory::default()
            });
        if !event.key.namespace.is_empty() {
            history
                .namespaces
                .entry(event.key.namespace.clone())
                .or_insert_with(|| NamespaceHistory {
                    floor: restart_floor,
                    ..NamespaceHistory::default()
                })
                .events
                .push_back(event.clone());
        }
        history.events.push_back(event);
        let now = Instant::now();
        Self::evict(history, self.history_limit, self.history_min, now);
        if now.duration_since(self.last_sweep) >= SWEEP_EVERY {
            self.sweep(now);
        }
    }

    /// Lets every resource's stale events go (see [`EVENT_FRESH_DURATION`]).
    fn sweep(&mut self, now: Instant) {
        self.last_sweep = now;
        for (group_resource, history) in self.histories.iter_mut() {
            Self::evict(history, self.history_limit, self.history_min, now);
            // Events every watcher has had time to send keep only their encodings. A sweep
            // runs on a write once a second: at 10,000 clusters, each renewing a Lease every
            // few seconds, it runs thousands of times a second over every resource of a
            // cluster, most of which have nothing to compact.
            let start = history.compacted.min(history.events.len());
            if history
                .events
                .get(start)
                .is_none_or(|e| now.duration_since(e.committed) < DECODED_KEPT_FOR)
            {
                continue;
            }
            let mut objects = self.objects.get_mut(group_resource);
            for e in history.events.range(start..) {
                if now.duration_since(e.committed) < DECODED_KEPT_FOR {
                    break;
                }
                let previous_rv = e.previous_resource_version();
                e.compact();
                if let Some(rv) = previous_rv {
                    Self::link(&history.events, rv, e);
                }
                // The object did not change since: its current version too.
                if let Some(current) = objects
                    .as_mut()
                    .and_then(|m| m.get_mut(&(e.key.namespace.to_string(), e.key.name.to_string())))
                    && current.resource_version == e.resource_version
                {
                    current.version.compact();
                }
                history.compacted += 1;
            }
        }
    }

    /// Keeps the version that `later` replaced as a diff against `later`'s object, when the
    /// event that wrote that version (at `previous_rv`) is still in `events`: the version is
    /// both that event's object and `later`'s previous, and consecutive versions of an object
    /// differ in a few bytes (a Lease's renewTime and resourceVersion). Both events are
    /// compacted: watchers sent them; only a watch resuming from before them reads them again.
    fn link(events: &VecDeque<Arc<StoredEvent>>, previous_rv: u64, later: &Arc<StoredEvent>) {
        let Ok(at) = events.binary_search_by_key(&previous_rv, |e| e.resource_version) else {
            return;
        };
        let earlier = &events[at];
        if earlier.key != later.key {
            return;
        }
        let (Some(version), Some(base)) = (earlier.kept_encoding(), later.kept_encoding()) else {
            return;
        };
        let linked = match lock(&earlier.previous).as_ref() {
            Some(PreviousSlot::Diff { linked, .. }) => linked.saturating_add(1),
            _ => 1,
        };
        if linked > MAX_LINKED_VERSIONS {
            return;
        }
        let mut previous = lock(&later.previous);
        // The writer's previous version is the stored one, unless it was read in another form.
        if !matches!(previous.as_ref(), Some(PreviousSlot::Kept(Version::Encoded(p))) if *p == version)
        {
            return;
        }
        let diff = crate::delta::encode(&base, &version);
        if diff.len() > version.len() / 2 {
            return;
        }
        *previous = Some(PreviousSlot::Diff {
            diff: diff.into_boxed_slice(),
            linked,
        });
        drop(previous);
        // Set second: a reader in between still finds the version, kept whole.
        *lock(&earlier.object) = ObjectSlot::PreviousOf(later.clone());
    }

    /// Drops the oldest events of a history beyond `limit`, and those older than
    /// [`EVENT_FRESH_DURATION`] beyond `min`.
    fn evict(history: &mut ResourceHistory, limit: usize, min: usize, now: Instant) {
        loop {
            let drop_oldest = match history.events.front() {
                None => false,
                Some(oldest) => {
                    history.events.len() > limit
                        || (history.events.len() > min
                            && now.duration_since(oldest.committed) > EVENT_FRESH_DURATION)
                }
            };
            if !drop_oldest {
                break;
            }
            let Some(old) = history.events.pop_front() else {
                break;
            };
            history.compacted = history.compacted.saturating_sub(1);
            history.floor = old.resource_version;
            if let Some(ns) = history.namespaces.get_mut(&*old.key.namespace)
                && ns
                    .events
                    .front()
                    .is_some_and(|e| e.resource_version == old.resource_version)
            {
                ns.events.pop_front();
                ns.floor = old.resource_version;
            }
        }
        if history.events.capacity() > 4 * history.events.len().max(16) {
            history.events.shrink_to_fit();
            for ns in history.namespaces.values_mut() {
                ns.events.shrink_to_fit();
            }
        }
    }

    fn index(&mut self, key: &ObjKey, old: Option<&Value>, new: Option<&Value>) {
        if let Some(old) = old {
            for uid in owner_uids(old) {
                if let Some(set) = self.dependents.get_mut(&uid) {
                    set.remove(key);
                    if set.is_empty() {
                        self.dependents.remove(&uid);
                    }
                }
            }
            if let Some(uid) = uid_of(old) {
                self.uids.remove(uid);
            }
        }
        if let Some(new) = new {
            for uid in owner_uids(new) {
                self.dependents.entry(uid).or_default().insert(key.clone());
            }
            if let Some(uid) = uid_of(new) {
                self.uids.insert(uid.to_string(), key.clone());
            }
        }
    }

    /// Commits a create or an update: stamps the next resourceVersion and records the event.
    pub fn put(&mut self, key: ObjKey, object: Value) -> Obj {
        self.put_object(key, StoredObject::new(object))
    }

    /// [`StoreState::put`] of an object already taken apart.
    pub fn put_object(&mut self, key: ObjKey, object: StoredObject) -> Obj {
        self.put_over(key, object, None)
    }

    /// [`StoreState::put_object`] over `old`, the current version as the writer read it
    /// (saves decoding it again when the store keeps it encoded).
    pub fn put_over(&mut self, key: ObjKey, mut object: StoredObject, old: Option<&Obj>) -> Obj {
        let rv = self.next_rv();
        if let Some(meta) = object
            .value
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
        {
            meta.insert("resourceVersion".to_string(), Value::String(rv.to_string()));
        }
        object.encoded = OnceLock::new();
        let object = Arc::new(object);
        let map = self.objects.entry(key.group_resource.clone()).or_default();
        let previous = map
            .insert(
                (key.namespace.clone(), key.name.clone()),
                Current {
                    resource_version: rv,
                    version: Version::Object(object.clone()),
                },
            )
            .map(|c| match (c.version, old) {
                (Version::Object(o), _) => o,
                (Version::Encoded(_), Some(old)) if rv_of(old) == Some(c.resource_version) => {
                    old.clone()
                }
                (Version::Encoded(b), _) => Arc::new(StoredObject::decode(b)),
            });
        self.index(
            &key,
            previous.as_deref().map(StoredObject::value),
            Some(&object),
        );
        let event_type = if previous.is_some() {
            self.stats.updates += 1;
            EventType::Modified
        } else {
            self.stats.objects += 1;
            self.stats.creates += 1;
            EventType::Added
        };
        self.record(StoredEvent::new(
            rv,
            key,
            event_type,
            object.clone(),
            previous,
        ));
        object
    }

    /// Commits a deletion; the DELETED event carries the object at a new resourceVersion.
    pub fn remove(&mut self, key: &ObjKey) -> Option<Obj> {
        let map = self.objects.get_mut(&key.group_resource)?;
        let old = map
            .remove(&(key.namespace.clone(), key.name.clone()))?
            .version
            .object();
        if map.is_empty() {
            self.objects.remove(&key.group_resource);
        }
        let rv = self.next_rv();
        self.stats.objects -= 1;
        self.stats.deletes += 1;
        self.index(key, Some(&old), None);
        let mut last = old.value().clone();
        if let Some(meta) = last.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".to_string(), Value::String(rv.to_string()));
        }
        let last = Arc::new(StoredObject::with_managed_fields_of(last, &old));
        self.record(StoredEvent::new(
            rv,
            key.clone(),
            EventType::Deleted,
            last.clone(),
            Some(old),
        ));
        Some(last)
    }

    /// Events of `group_resource` (in `namespace`, or all namespaces for `None`) after
    /// `since`, or `None` if some of them are no longer in the history (410 Gone).
    pub fn events_since(
        &self,
        group_resource: &str,
        namespace: Option<&str>,
        since: u64,
    ) -> Option<Vec<Arc<StoredEvent>>> {
        let floor = self.history_floor(group_resource, namespace);
        let Some(history) = self.histories.get(group_resource) else {
            return events_after(&VecDeque::new(), floor, since);
        };
        match namespace.filter(|ns| !ns.is_empty()) {
            None => events_after(&history.events, floor, since),
            Some(ns) => match history.namespaces.get(ns) {
                Some(n) => events_after(&n.events, floor, since),
                None => events_after(&VecDeque::new(), floor, since),
            },
        }
    }

    /// The events committed since the last `take_pending`.
    pub fn pending(&self) -> &[Arc<StoredEvent>] {
        &self.pending
    }

    /// Drains the events committed since the last call.
    pub fn take_pending(&mut self) -> Vec<Arc<StoredEvent>> {
        std::mem::take(&mut self.pending)
    }

    /// Simulates an API server restart: the watch history is lost, objects and versions stay.
    pub fn restart(&mut self) {
        self.histories.clear();
        self.restart_floor = self.resource_version;
    }

    pub fn stats(&self) -> StoreStats {
        StoreStats {
            resource_version: self.resource_version,
            history_len: self.histories.values().map(|h| h.events.len()).sum(),
            ..self.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decoded_version_keeps_its_managed_fields_as_encoded() {
        let obj = StoredObject::new(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "labels": {"x": "y"},
                "managedFields": [{"manager": "m", "fieldsV1": {"f:data": {"f:k": {}}}}]},
            "data": {"k": "v"}}));
        let encoded = obj.encoded();
        let decoded = StoredObject::decode(encoded.clone());
        assert_eq!(decoded.value(), obj.value());
        assert_eq!(
            decoded.managed_fields_raw().map(RawValue::get),
            obj.managed_fields_raw().map(RawValue::get)
        );
        assert_eq!(decoded.to_value(), obj.to_value());
        assert_eq!(decoded.encoded(), encoded);
        // What is not an object with object metadata is decoded whole.
        for odd in [&b"[1]"[..], b"{\"metadata\":null,\"a\":1}"] {
            let decoded = StoredObject::decode(Bytes::copy_from_slice(odd));
            assert_eq!(
                decoded.to_value(),
                serde_json::from_slice::<Value>(odd).unwrap()
            );
        }
    }

    fn key(namespace: &str, name: &str) -> ObjKey {
        ObjKey {
            group_resource: "configmaps".into(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    #[test]
    fn the_history_keeps_fresh_events_and_lets_stale_ones_go_beyond_its_minimum() {
        let mut st = StoreState::new(100 * 1024);
        let start = st.resource_version();
        for i in 0..(HISTORY_MIN_EVENTS + 50) {
            let name = format!("cm-{i}");
            st.put(
                key("a", &name),
                serde_json::json!({"metadata": {"name": name, "namespace": "a"}}),
            );
        }
        // Fresh: everything is kept, far below the upper bound.
        st.sweep(Instant::now());
        assert_eq!(st.stats().history_len, HISTORY_MIN_EVENTS + 50);
        assert!(st.events_since("configmaps", None, start).is_some());
        // Stale: only the minimum stays; resuming from before it is 410 Gone, from after it
        // works, for the resource and for the namespace.
        st.sweep(Instant::now() + EVENT_FRESH_DURATION + Duration::from_secs(1));
        assert_eq!(st.stats().history_len, HISTORY_MIN_EVENTS);
        assert!(st.events_since("configmaps", None, start).is_none());
        assert!(st.events_since("configmaps", Some("a"), start).is_none());
        let recent = st.resource_version() - 10;
        assert_eq!(
            st.events_since("configmaps", Some("a"), recent)
                .map(|e| e.len()),
            Some(10)
        );
    }

    #[test]
    fn an_encoded_object_is_decoded_for_a_field_only_when_it_mentions_it() {
        let mut st = StoreState::new(100 * 1024);
        let (live, going) = (key("", "live"), key("", "going"));
        st.put(
            live.clone(),
            serde_json::json!({"metadata": {"name": "live"}}),
        );
        st.put(
            going.clone(),
            serde_json::json!({"metadata": {"name": "going", "deletionTimestamp": "2026-01-01T00:00:00Z"}}),
        );
        st.take_pending();
        // Decoded (freshly written): the object itself, whatever it holds.
        assert!(matches!(
            st.get_if_mentions(&live, "deletionTimestamp"),
            Some(Some(_))
        ));
        st.sweep(Instant::now() + DECODED_KEPT_FOR + Duration::from_secs(1));
        // Encoded: decoded only when the field is mentioned.
        assert!(matches!(
            st.get_if_mentions(&live, "deletionTimestamp"),
            Some(None)
        ));
        let decoded = st.get_if_mentions(&going, "deletionTimestamp").flatten();
        assert_eq!(
            decoded.and_then(|o| o.value().pointer("/metadata/deletionTimestamp").cloned()),
            Some(serde_json::json!("2026-01-01T00:00:00Z"))
        );
        assert!(
            st.get_if_mentions(&key("", "absent"), "deletionTimestamp")
                .is_none()
        );
    }

    #[test]
    fn superseded_versions_keep_only_their_encoding_once_watchers_had_time() {
        let mut st = StoreState::new(100 * 1024);
        let k = key("a", "x");
        let first = st.put(
            k.clone(),
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "a", "labels": {"l": "1"}}}),
        );
        let first_json = first.encoded();
        let second = st.put(
            k.clone(),
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "a"}, "data": {"a": "b"}}),
        );
        st.take_pending();
        // Fresh: the history shares the decoded versions.
        assert_eq!(Arc::strong_count(&first), 3);
        st.sweep(Instant::now() + DECODED_KEPT_FOR + Duration::from_secs(1));
        // Aged: only the encodings are kept; the superseded version's tree is gone.
        assert_eq!(Arc::strong_count(&first), 1);
        let events = st
            .events_since("configmaps", Some("a"), 1)
            .unwrap_or_default();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].encoded_object(), first_json);
        assert_eq!(events[0].object().value(), first.value());
        assert_eq!(events[1].object().value(), second.value());
        assert_eq!(
            events[1].previous().map(|p| p.value().clone()),
            Some(first.value().clone())
        );
        assert!(events[1].has_api_version("v1"));
        assert!(!events[1].has_api_version("v1beta1"));
        // The current version, unchanged since, is kept encoded too and decoded on reads.
        assert_eq!(Arc::strong_count(&second), 1);
        let read = st.get(&k).map(|o| o.value().clone());
        assert_eq!(read.as_ref(), Some(second.value()));
        assert_eq!(st.get_encoded(&k, "v1"), Some(second.encoded()));
        assert_eq!(st.get_encoded(&k, "v2"), None);
        assert_eq!(
            st.version_of(&k).map(|rv| rv.to_string()).as_deref(),
            second
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
        );
    }

    fn lease(renewal: usize) -> Value {
        serde_json::json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "lock", "namespace": "a", "labels": {"app": "agent"},
                "managedFields": [{"manager": "agent", "operation": "Update", "time": format!("2026-01-01T00:{:02}:{:02}Z", renewal / 60 % 60, renewal % 60)}]},
            "spec": {"holderIdentity": "agent-0-abcde", "leaseDurationSeconds": 10,
                "renewTime": format!("2026-01-01T00:00:00.{renewal:06}Z")}})
    }

    /// An event as a watcher sends it: resourceVersion, type, object and previous as JSON.
    type Sent = (u64, EventType, Bytes, Option<Bytes>);

    /// Every event after `since`.
    fn sent(st: &StoreState, namespace: Option<&str>, since: u64) -> Option<Vec<Sent>> {
        let events = st.events_since("leases.coordination.k8s.io", namespace, since)?;
        Some(
            events
                .iter()
                .map(|e| {
                    (
                        e.resource_version,
                        e.event_type,
                        e.encoded_object(),
                        e.previous().map(|p| p.encoded()),
                    )
                })
                .collect(),
        )
    }

    fn lease_key(name: &str) -> ObjKey {
        ObjKey {
            group_resource: "leases.coordination.k8s.io".into(),
            namespace: "a".to_string(),
            name: name.to_string(),
        }
    }

    /// How many diffs sending each event's object applies.
    fn chain_lengths(st: &StoreState) -> Vec<usize> {
        let floor = st.history_floor("leases.coordination.k8s.io", None);
        let events = st
            .events_since("leases.coordination.k8s.io", None, floor)
            .unwrap_or_default();
        events
            .iter()
            .map(|e| {
                let mut length = 0;
                let mut next = match &*lock(&e.object) {
                    ObjectSlot::PreviousOf(later) => Some(later.clone()),
                    ObjectSlot::Kept(_) => None,
                };
                while let Some(later) = next {
                    length += 1;
                    next = match &*lock(&later.object) {
                        ObjectSlot::PreviousOf(l) => Some(l.clone()),
                        ObjectSlot::Kept(_) => None,
                    };
                }
                length
            })
            .collect()
    }

    #[test]
    fn a_watch_resuming_from_versions_kept_as_diffs_receives_the_same_bytes() {
        let mut st = StoreState::new(100 * 1024);
        let start = st.resource_version();
        // A renewed Lease, another object of the resource written in between, a deletion.
        for renewal in 0..150 {
            st.put(lease_key("lock"), lease(renewal));
            if renewal % 10 == 0 {
                let mut other = lease(renewal);
                other["metadata"]["name"] = "other".into();
                st.put(lease_key("other"), other);
            }
        }
        st.remove(&lease_key("other"));
        st.take_pending();
        let before = sent(&st, None, start);
        let before_in_namespace = sent(&st, Some("a"), start);
        assert_eq!(before.as_ref().map(Vec::len), Some(150 + 15 + 1));
        st.sweep(Instant::now() + DECODED_KEPT_FOR + Duration::from_secs(1));
        // Kept as diffs, with whole versions often enough.
        let lengths = chain_lengths(&st);
        let linked = lengths.iter().filter(|&&l| l > 0).count();
        assert!(linked > 150, "{linked} of {} events linked", lengths.len());
        assert!(
            lengths
                .iter()
                .all(|&l| l <= usize::from(MAX_LINKED_VERSIONS))
        );
        // Every resume sends what it sent before, byte for byte, from the oldest version on.
        assert_eq!(sent(&st, None, start), before);
        assert_eq!(sent(&st, Some("a"), start), before_in_namespace);
        for since in [start + 1, start + 57, st.resource_version() - 3] {
            let expected = before.as_ref().map(|b| {
                b.iter()
                    .filter(|e| e.0 > since)
                    .cloned()
                    .collect::<Vec<_>>()
            });
            assert_eq!(sent(&st, None, since), expected);
        }
        // Decoded, too, for watches with selectors or in another version.
        let events = st
            .events_since("leases.coordination.k8s.io", None, start)
            .unwrap_or_default();
        let first = events.first().map(|e| e.object().value().clone());
        assert_eq!(
            first
                .as_ref()
                .and_then(|o| o.pointer("/spec/renewTime"))
                .and_then(Value::as_str),
            Some("2026-01-01T00:00:00.000000Z")
        );
        assert!(
            events
                .iter()
                .all(|e| e.has_api_version("coordination.k8s.io/v1"))
        );
        // Stale: only the minimum stays; what stays is sent as before, what went is 410 Gone.
        st.sweep(Instant::now() + EVENT_FRESH_DURATION + Duration::from_secs(1));
        assert_eq!(st.stats().history_len, HISTORY_MIN_EVENTS);
        assert_eq!(sent(&st, None, start), None);
        let floor = st.history_floor("leases.coordination.k8s.io", None);
        let expected = before.map(|b| b.into_iter().filter(|e| e.0 > floor).collect::<Vec<_>>());
        assert_eq!(expected.as_ref().map(Vec::len), Some(HISTORY_MIN_EVENTS));
        assert_eq!(sent(&st, None, floor), expected);
        assert_eq!(sent(&st, None, floor - 1), None);
    }

    #[test]
    fn a_version_the_writer_read_in_another_form_is_not_kept_as_a_diff() {
        let mut st = StoreState::new(100 * 1024);
        let k = lease_key("lock");
        let first = st.put(k.clone(), lease(1)).encoded();
        st.sweep(Instant::now() + DECODED_KEPT_FOR + Duration::from_secs(1));
        // Read as another version: the same resourceVersion, another encoding.
        let read = st
            .get(&k)
            .map(|o| Arc::new(o.with_api_version("coordination.k8s.io/v1beta1")));
        st.put_over(k.clone(), StoredObject::new(lease(2)), read.as_ref());
        st.sweep(Instant::now() + DECODED_KEPT_FOR + Duration::from_secs(1));
        let events = st
            .events_since("leases.coordination.k8s.io", None, 1)
            .unwrap_or_default();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].encoded_object(), first);
        assert_eq!(
            events[1].previous().map(|p| p.encoded()),
            read.map(|r| r.encoded())
        );
        assert_eq!(chain_lengths(&st), vec![0, 0]);
    }

    #[test]
    fn events_share_their_key_strings() {
        let mut st = StoreState::new(100 * 1024);
        st.put(
            key("a", "x"),
            serde_json::json!({"metadata": {"name": "x"}}),
        );
        st.put(
            key("a", "y"),
            serde_json::json!({"metadata": {"name": "y"}}),
        );
        st.put(
            key("a", "x"),
            serde_json::json!({"metadata": {"name": "x"}, "data": {}}),
        );
        st.remove(&key("a", "x"));
        let events = st.take_pending();
        let shared = |a: &Arc<str>, b: &Arc<str>| Arc::ptr_eq(a, b);
        assert!(shared(
            &events[0].key.group_resource,
            &events[1].key.group_resource
        ));
        assert!(shared(&events[0].key.namespace, &events[1].key.namespace));
        // The same object's events share its name; another object's is its own.
        assert!(shared(&events[0].key.name, &events[2].key.name));
        assert!(shared(&events[0].key.name, &events[3].key.name));
        assert!(!shared(&events[0].key.name, &events[1].key.name));
        assert_eq!(events[3].key.to_obj_key(), key("a", "x"));
        assert_eq!(&*events[1].key.name, "y");
    }
}

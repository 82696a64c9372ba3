//! Generated names and hashes, as the Kubernetes controllers make them.

use rand::Rng;
use serde_json::Value;

/// The alphabet of `k8s.io/apimachinery/pkg/util/rand` (no vowels, no look-alike characters).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A random suffix of `len` characters, like `generateName` produces.
pub(crate) fn random_suffix(rng: &mut impl Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(ALPHANUMS[rng.random_range(0..ALPHANUMS.len())]))
        .collect()
}

/// `rand.SafeEncodeString`: each character mapped into the alphabet, so hashes never spell words.
pub(crate) fn safe_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| char::from(ALPHANUMS[usize::from(byte) % ALPHANUMS.len()]))
        .collect()
}

/// FNV-1a, 32 bits (what `ComputeHash` feeds pod templates through).
pub(crate) fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

/// FNV-1a, 64 bits: stable per-object seeds.
pub(crate) fn fnv64a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// JSON with object keys sorted at every level, so equal templates hash equally whatever order
/// their fields arrived in.
pub(crate) fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|key| {
                    format!(
                        "{}:{}",
                        Value::String(key.clone()),
                        canonical_json(&map[key])
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(canonical_json)
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}

/// The `pod-template-hash` / `controller-revision-hash` of a pod template: FNV-1a of the
/// template, safe-encoded like `ComputeHash` (e.g. `7d948bd89d`).
pub(crate) fn template_hash(template: &Value) -> String {
    safe_encode(&fnv32a(canonical_json(template).as_bytes()).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use serde_json::json;

    #[test]
    fn template_hashes_ignore_key_order_and_change_with_content() {
        let a = json!({"metadata": {"labels": {"app": "web", "tier": "front"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        let b = json!({"spec": {"containers": [{"image": "nginx", "name": "c"}]}, "metadata": {"labels": {"tier": "front", "app": "web"}}});
        assert_eq!(template_hash(&a), template_hash(&b));
        let mut c = a.clone();
        c["spec"]["containers"][0]["image"] = json!("nginx:1.27");
        assert_ne!(template_hash(&a), template_hash(&c));
        assert!(
            template_hash(&a)
                .bytes()
                .all(|byte| ALPHANUMS.contains(&byte))
        );
    }

    #[test]
    fn suffixes_use_the_kubernetes_alphabet_and_follow_the_seed() {
        let suffix = random_suffix(&mut ChaCha8Rng::seed_from_u64(1), 5);
        assert_eq!(suffix.len(), 5);
        assert!(suffix.bytes().all(|byte| ALPHANUMS.contains(&byte)));
        assert_eq!(suffix, random_suffix(&mut ChaCha8Rng::seed_from_u64(1), 5));
    }

    #[test]
    fn fnv_matches_its_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fnv64a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}

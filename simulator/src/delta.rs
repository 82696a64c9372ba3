//! Byte diffs between two versions of one object's JSON encoding.
//!
//! Consecutive versions of an object differ in a few places (a Lease's renew time, the
//! resourceVersion, a managedFields timestamp, a status field): the watch history keeps an old
//! version as a diff against the next one, a few dozen bytes instead of the whole encoding.
//!
//! A diff is a sequence of instructions that builds the target from the base: copy a range of
//! the base, or insert literal bytes. Each instruction starts with a LEB128 varint
//! `len << 1 | kind`; a copy (kind 0) is followed by the varint offset in the base, an insert
//! (kind 1) by its `len` bytes. Matches are found greedily through a hash of every
//! [`MIN_MATCH`]-byte window of the base (as VCDIFF encoders do), which costs one pass over
//! each side. A general diff such as `similar`'s Myers is O(N·D): on versions that share
//! little (a release record re-compressed, a replaced ConfigMap) that is quadratic in the
//! object's size, on the store's write path.

/// The shortest run of the base worth a copy instruction (shorter ones are inserted).
const MIN_MATCH: usize = 8;

const COPY: usize = 0;
const INSERT: usize = 1;

fn push_varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(input: &mut &[u8]) -> Option<usize> {
    let mut v: usize = 0;
    for shift in (0..usize::BITS).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        v |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn window_hash(window: &[u8], bits: u32) -> usize {
    let mut word = [0u8; MIN_MATCH];
    word.copy_from_slice(&window[..MIN_MATCH]);
    (u64::from_le_bytes(word).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits)) as usize
}

fn push_insert(out: &mut Vec<u8>, literal: &[u8]) {
    if !literal.is_empty() {
        push_varint(out, (literal.len() << 1) | INSERT);
        out.extend_from_slice(literal);
    }
}

/// The diff that builds `target` from `base`.
pub fn encode(base: &[u8], target: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if base.len() < MIN_MATCH || target.len() < MIN_MATCH {
        push_insert(&mut out, target);
        return out;
    }
    // Where each window of the base starts (the last one wins on collisions: a miss costs only
    // a few inserted bytes).
    let bits = (base.len().next_power_of_two().trailing_zeros() + 1).clamp(4, 16);
    let mut starts = vec![u32::MAX; 1 << bits];
    for at in 0..=base.len() - MIN_MATCH {
        starts[window_hash(&base[at..], bits)] = at as u32;
    }
    let mut literal_from = 0;
    let mut at = 0;
    while at + MIN_MATCH <= target.len() {
        let found = starts[window_hash(&target[at..], bits)] as usize;
        if found == u32::MAX as usize
            || base.get(found..found + MIN_MATCH) != Some(&target[at..at + MIN_MATCH])
        {
            at += 1;
            continue;
        }
        // Grow the match backwards over pending literal bytes, then forwards.
        let (mut from, mut base_from) = (at, found);
        while from > literal_from && base_from > 0 && target[from - 1] == base[base_from - 1] {
            from -= 1;
            base_from -= 1;
        }
        let mut len = at - from + MIN_MATCH;
        while from + len < target.len()
            && base_from + len < base.len()
            && target[from + len] == base[base_from + len]
        {
            len += 1;
        }
        push_insert(&mut out, &target[literal_from..from]);
        push_varint(&mut out, (len << 1) | COPY);
        push_varint(&mut out, base_from);
        at = from + len;
        literal_from = at;
    }
    push_insert(&mut out, &target[literal_from..]);
    out
}

/// Builds the target of `diff` from `base`; `None` if `diff` was not made from `base`.
pub fn apply(base: &[u8], diff: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(base.len());
    let mut input = diff;
    while !input.is_empty() {
        let header = read_varint(&mut input)?;
        let len = header >> 1;
        if header & 1 == INSERT {
            let (literal, rest) = input.split_at_checked(len)?;
            out.extend_from_slice(literal);
            input = rest;
        } else {
            let offset = read_varint(&mut input)?;
            out.extend_from_slice(base.get(offset..offset.checked_add(len)?)?);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(base: &[u8], target: &[u8]) -> Vec<u8> {
        let diff = encode(base, target);
        assert_eq!(apply(base, &diff).as_deref(), Some(target));
        diff
    }

    #[test]
    fn a_diff_rebuilds_its_target_and_is_small_when_versions_are_close() {
        let old = br#"{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"managedFields":[{"manager":"agent","time":"2026-01-01T00:00:02Z"}],"name":"fleet-agent-lock","namespace":"cattle-fleet-system","resourceVersion":"41","uid":"0b6c0f7e-3f9e-4f43-9d1c-7b1e9d0c2a11"},"spec":{"holderIdentity":"fleet-agent-0-abcde","leaseDurationSeconds":10,"renewTime":"2026-01-01T00:00:02.000002Z"}}"#;
        let new = br#"{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"managedFields":[{"manager":"agent","time":"2026-01-01T00:00:04Z"}],"name":"fleet-agent-lock","namespace":"cattle-fleet-system","resourceVersion":"42","uid":"0b6c0f7e-3f9e-4f43-9d1c-7b1e9d0c2a11"},"spec":{"holderIdentity":"fleet-agent-0-abcde","leaseDurationSeconds":10,"renewTime":"2026-01-01T00:00:04.000004Z"}}"#;
        let diff = round_trip(new, old);
        assert!(diff.len() < old.len() / 8, "{} bytes", diff.len());
    }

    #[test]
    fn unrelated_empty_short_and_repetitive_inputs_round_trip() {
        round_trip(b"", b"");
        round_trip(b"", b"something");
        round_trip(b"something", b"");
        round_trip(b"abc", b"abcd");
        round_trip(b"0123456789abcdef", b"fedcba9876543210");
        let long: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut edited = long.clone();
        edited[17] = 0;
        edited.splice(3000..3010, b"xyz".iter().copied());
        edited.extend_from_slice(&long[100..400]);
        round_trip(&long, &edited);
        round_trip(&edited, &long);
        round_trip(&[b'a'; 300], &[b'a'; 1000]);
        round_trip(&long, &[b'a'; 1000]);
    }

    #[test]
    fn a_diff_for_another_base_is_refused_not_misapplied() {
        let diff = encode(b"0123456789abcdefghij", b"0123456789abcdefghij!");
        assert_eq!(apply(b"short", &diff), None);
        assert_eq!(apply(b"0123456789", &[0x80]), None);
        assert_eq!(apply(b"0123456789", &[(7 << 1) | 1, b'a']), None);
    }
}

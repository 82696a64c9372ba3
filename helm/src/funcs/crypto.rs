//! Hashes (`sha1sum`, `sha256sum`, `sha512sum`, `adler32sum`).

use std::collections::HashMap;

use sha1::Digest;

use crate::gotemplate::funcs::{Entry, Family::Sprig, P, reg};
use crate::gotemplate::value::Value;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// Adler-32 checksum.
pub fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

pub(crate) fn register(t: &mut HashMap<&'static str, Entry>) {
    use P::*;
    reg(t, Sprig, "sha1sum", &[S], None, |_, a| {
        Ok(Value::str(hex::encode(sha1::Sha1::digest(
            s(&a[0]).as_bytes(),
        ))))
    });
    reg(t, Sprig, "sha256sum", &[S], None, |_, a| {
        Ok(Value::str(hex::encode(sha2::Sha256::digest(
            s(&a[0]).as_bytes(),
        ))))
    });
    reg(t, Sprig, "sha512sum", &[S], None, |_, a| {
        Ok(Value::str(hex::encode(sha2::Sha512::digest(
            s(&a[0]).as_bytes(),
        ))))
    });
    reg(t, Sprig, "adler32sum", &[S], None, |_, a| {
        Ok(Value::str(adler32(s(&a[0]).as_bytes()).to_string()))
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn adler() {
        assert_eq!(super::adler32(b"Wikipedia"), 0x11E60398);
    }
}

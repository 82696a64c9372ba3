//! Hashes (`sha1sum`, `sha256sum`, `sha512sum`, `adler32sum`), password hashing (`bcrypt`,
//! `htpasswd`, `derivePassword`), `encryptAES`/`decryptAES`, `randBytes`. Certificates and keys
//! are in [`super::certs`].

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
    reg(t, Sprig, "bcrypt", &[S], None, |_, a| {
        Ok(Value::str(bcrypt_hash(s(&a[0]))?))
    });
    reg(t, Sprig, "htpasswd", &[S, S], None, |_, a| {
        Ok(Value::str(htpasswd(s(&a[0]), s(&a[1]))?))
    });
    reg(
        t,
        Sprig,
        "derivePassword",
        &[I, S, S, S, S],
        None,
        |_, a| {
            let counter = match a[0] {
                Value::Int(i) => i as u32,
                _ => 0,
            };
            Ok(Value::str(derive_password(
                counter,
                s(&a[1]),
                s(&a[2]),
                s(&a[3]),
                s(&a[4]),
            )))
        },
    );
    reg(t, Sprig, "encryptAES", &[S, S], None, |_, a| {
        Ok(Value::str(encrypt_aes(s(&a[0]), s(&a[1]))))
    });
    reg(t, Sprig, "decryptAES", &[S, S], None, |_, a| {
        Ok(Value::str(decrypt_aes(s(&a[0]), s(&a[1]))?))
    });
    reg(t, Sprig, "randBytes", &[I], None, |ex, a| {
        let n = match a[0] {
            Value::Int(i) => i.max(0) as usize,
            _ => 0,
        };
        ex.check_size(n * 4 / 3 + 4)?;
        let mut buf = vec![0u8; n];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut buf);
        use base64::Engine;
        Ok(Value::str(
            base64::engine::general_purpose::STANDARD.encode(buf),
        ))
    });
}

/// Sprig's bcrypt cost (`bcrypt.DefaultCost`).
const BCRYPT_COST: u32 = 10;

/// `bcrypt`: a `$2a$10$...` hash, as Go's `golang.org/x/crypto/bcrypt` writes it.
pub fn bcrypt_hash(password: &str) -> Result<String, String> {
    // bcrypt reads at most 72 bytes; Go's library truncates silently too (before v0.25).
    let bytes = &password.as_bytes()[..password.len().min(72)];
    bcrypt::hash_with_result(bytes, BCRYPT_COST)
        .map(|h| h.format_for_version(bcrypt::Version::TwoA))
        .map_err(|e| format!("bcrypt: {e}"))
}

/// `htpasswd`: `user:bcrypt-hash`, the line an Apache/nginx basic-auth file holds.
pub fn htpasswd(user: &str, password: &str) -> Result<String, String> {
    if user.contains(':') {
        return Ok(format!("invalid username: {user}"));
    }
    Ok(format!("{user}:{}", bcrypt_hash(password)?))
}

const MASTER_PASSWORD_SEED: &[u8] = b"com.lyndir.masterpassword";

fn password_templates(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "maximum" => &["anoxxxxxxxxxxxxxxxxx", "axxxxxxxxxxxxxxxxxno"],
        "long" => &[
            "CvcvnoCvcvCvcv",
            "CvcvCvcvnoCvcv",
            "CvcvCvcvCvcvno",
            "CvccnoCvcvCvcv",
            "CvccCvcvnoCvcv",
            "CvccCvcvCvcvno",
            "CvcvnoCvccCvcv",
            "CvcvCvccnoCvcv",
            "CvcvCvccCvcvno",
            "CvcvnoCvcvCvcc",
            "CvcvCvcvnoCvcc",
            "CvcvCvcvCvccno",
            "CvccnoCvccCvcv",
            "CvccCvccnoCvcv",
            "CvccCvccCvcvno",
            "CvcvnoCvccCvcc",
            "CvcvCvccnoCvcc",
            "CvcvCvccCvccno",
            "CvccnoCvcvCvcc",
            "CvccCvcvnoCvcc",
            "CvccCvcvCvccno",
        ],
        "medium" => &["CvcnoCvc", "CvcCvcno"],
        "short" => &["Cvcn"],
        "basic" => &["aaanaaan", "aannaaan", "aaannaaa"],
        "pin" => &["nnnn"],
        _ => return None,
    })
}

fn password_characters(class: u8) -> &'static [u8] {
    match class {
        b'V' => b"AEIOU",
        b'C' => b"BCDFGHJKLMNPQRSTVWXYZ",
        b'v' => b"aeiou",
        b'c' => b"bcdfghjklmnpqrstvwxyz",
        b'A' => b"AEIOUBCDFGHJKLMNPQRSTVWXYZ",
        b'a' => b"AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz",
        b'n' => b"0123456789",
        b'o' => b"@&%?,=[]_:-+*$#!'^~;()/.",
        _ => b"AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz0123456789!@#$%^&*()",
    }
}

/// `derivePassword`: the Master Password (v3) algorithm, so a chart can derive stable site
/// passwords from one secret.
pub fn derive_password(counter: u32, kind: &str, password: &str, user: &str, site: &str) -> String {
    use hmac::Mac;
    let Some(templates) = password_templates(kind) else {
        return format!("cannot find password template {kind}");
    };
    let mut salt = MASTER_PASSWORD_SEED.to_vec();
    salt.extend_from_slice(&(user.len() as u32).to_be_bytes());
    salt.extend_from_slice(user.as_bytes());
    let mut key = [0u8; 64];
    let params = match scrypt::Params::new(15, 8, 2, 64) {
        Ok(p) => p,
        Err(e) => return format!("failed to derive password: {e}"),
    };
    if let Err(e) = scrypt::scrypt(password.as_bytes(), &salt, &params, &mut key) {
        return format!("failed to derive password: {e}");
    }
    let mut message = MASTER_PASSWORD_SEED.to_vec();
    message.extend_from_slice(&(site.len() as u32).to_be_bytes());
    message.extend_from_slice(site.as_bytes());
    message.extend_from_slice(&counter.to_be_bytes());
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key) else {
        return "failed to derive password: invalid key".into();
    };
    mac.update(&message);
    let seed = mac.finalize().into_bytes();
    let template = templates[usize::from(seed[0]) % templates.len()];
    template
        .bytes()
        .enumerate()
        .map(|(i, class)| {
            let chars = password_characters(class);
            char::from(chars[usize::from(seed[i + 1]) % chars.len()])
        })
        .collect()
}

/// The AES-256 key Sprig makes from a password: its bytes, zero-padded or cut to 32.
fn aes_key(password: &str) -> aes::Aes256 {
    use aes::cipher::KeyInit;
    let mut key = [0u8; 32];
    let n = password.len().min(32);
    key[..n].copy_from_slice(&password.as_bytes()[..n]);
    aes::Aes256::new(&key.into())
}

/// `encryptAES`: AES-256-CBC with a random IV and PKCS#7 padding, base64 of IV + ciphertext.
pub fn encrypt_aes(password: &str, plaintext: &str) -> String {
    use aes::cipher::BlockEncrypt;
    use base64::Engine;
    if plaintext.is_empty() {
        return String::new();
    }
    let cipher = aes_key(password);
    let mut content = plaintext.as_bytes().to_vec();
    let padding = 16 - content.len() % 16;
    content.extend(std::iter::repeat_n(padding as u8, padding));
    let mut out = vec![0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut out);
    let mut prev = [0u8; 16];
    prev.copy_from_slice(&out);
    for chunk in content.chunks(16) {
        let mut block = [0u8; 16];
        for (i, b) in block.iter_mut().enumerate() {
            *b = chunk[i] ^ prev[i];
        }
        let mut ga = block.into();
        cipher.encrypt_block(&mut ga);
        prev.copy_from_slice(&ga);
        out.extend_from_slice(&ga);
    }
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// `decryptAES`: the inverse of [`encrypt_aes`].
pub fn decrypt_aes(password: &str, encoded: &str) -> Result<String, String> {
    use aes::cipher::BlockDecrypt;
    use base64::Engine;
    if encoded.is_empty() {
        return Ok(String::new());
    }
    let data = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("illegal base64 data: {e}"))?;
    if data.len() < 16 {
        return Err("ciphertext too short".into());
    }
    if data.len() % 16 != 0 {
        return Err("crypto/cipher: input not full blocks".into());
    }
    let cipher = aes_key(password);
    let mut prev = [0u8; 16];
    prev.copy_from_slice(&data[..16]);
    let mut plain = Vec::with_capacity(data.len() - 16);
    for chunk in data[16..].chunks(16) {
        let mut ga = aes::Block::clone_from_slice(chunk);
        cipher.decrypt_block(&mut ga);
        for i in 0..16 {
            plain.push(ga[i] ^ prev[i]);
        }
        prev.copy_from_slice(chunk);
    }
    let padding = usize::from(plain.last().copied().unwrap_or(0));
    if padding == 0 || padding > 16 || padding > plain.len() {
        return Err("decryptAES: invalid padding (wrong key?)".into());
    }
    plain.truncate(plain.len() - padding);
    Ok(String::from_utf8_lossy(&plain).into_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn adler() {
        assert_eq!(adler32(b"Wikipedia"), 0x11E60398);
    }

    #[test]
    fn bcrypt_and_htpasswd_verify() {
        let line = htpasswd("admin", "s3cret").unwrap();
        let (user, hash) = line.split_once(':').unwrap();
        assert_eq!(user, "admin");
        assert!(hash.starts_with("$2a$10$"), "{hash}");
        assert!(bcrypt::verify("s3cret", hash).unwrap());
        assert!(!bcrypt::verify("other", hash).unwrap());
        assert_eq!(htpasswd("a:b", "x").unwrap(), "invalid username: a:b");
    }

    #[test]
    fn derive_password_matches_the_master_password_vector() {
        // the reference vector of the Master Password algorithm v3
        assert_eq!(
            derive_password(1, "long", "password", "user", "example.com"),
            "ZedaFaxcZaso9*"
        );
        assert_eq!(
            derive_password(1, "nope", "p", "u", "s"),
            "cannot find password template nope"
        );
    }

    #[test]
    fn aes_round_trips_with_random_ivs() {
        let a = encrypt_aes("key", "hello world, a longer text than one block");
        let b = encrypt_aes("key", "hello world, a longer text than one block");
        assert_ne!(a, b);
        assert_eq!(
            decrypt_aes("key", &a).unwrap(),
            "hello world, a longer text than one block"
        );
        assert_eq!(encrypt_aes("key", ""), "");
        assert!(decrypt_aes("key", "bm90IGJsb2Nrcw==").is_err());
        let sixteen = encrypt_aes("k", "0123456789abcdef");
        assert_eq!(decrypt_aes("k", &sixteen).unwrap(), "0123456789abcdef");
    }
}

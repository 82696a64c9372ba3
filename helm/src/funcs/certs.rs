//! Sprig's key and certificate functions: `genPrivateKey`, `genCA`, `genCAWithKey`,
//! `genSelfSignedCert`, `genSelfSignedCertWithKey`, `genSignedCert`, `genSignedCertWithKey`,
//! `buildCustomCert`. Charts use them to create TLS secrets for webhooks and internal services.
//!
//! As in Sprig, certificates carry RSA-2048 keys (PKCS#1 `RSA PRIVATE KEY` PEM), a random
//! 128-bit serial, validity from now for the given days, `serverAuth`+`clientAuth` extended key
//! usages, and a certificate value with `.Cert` and `.Key` fields.

use std::collections::HashMap;
use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::EncodePrivateKey;

use crate::gotemplate::funcs::{Entry, Family::Sprig, P, reg};
use crate::gotemplate::value::{Map, Value};

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        _ => 0,
    }
}

/// A generated key: its PEM as Sprig prints it and the signing key for rcgen.
struct Key {
    pem: String,
    pair: KeyPair,
}

fn rsa_key(bits: usize) -> Result<Key, String> {
    let mut rng = rand_core06::OsRng;
    let key = rsa::RsaPrivateKey::new(&mut rng, bits)
        .map_err(|e| format!("error generating RSA key: {e}"))?;
    rsa_to_key(&key)
}

fn rsa_to_key(key: &rsa::RsaPrivateKey) -> Result<Key, String> {
    let pem = key
        .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
        .map_err(|e| format!("error encoding RSA key: {e}"))?
        .to_string();
    let der = key
        .to_pkcs8_der()
        .map_err(|e| format!("error encoding RSA key: {e}"))?;
    let pair =
        KeyPair::try_from(der.as_bytes()).map_err(|e| format!("error loading RSA key: {e}"))?;
    Ok(Key { pem, pair })
}

/// A private key from PEM: PKCS#1 RSA or PKCS#8 (RSA, ECDSA P-256/P-384, Ed25519).
fn parse_key(pem: &str) -> Result<Key, String> {
    if pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
        let key = rsa::RsaPrivateKey::from_pkcs1_pem(pem.trim())
            .map_err(|e| format!("error decoding RSA private key: {e}"))?;
        return rsa_to_key(&key);
    }
    let pair = KeyPair::from_pem(pem).map_err(|e| format!("error decoding private key: {e}"))?;
    Ok(Key {
        pem: pem.to_string(),
        pair,
    })
}

/// `genPrivateKey`: `rsa` (4096 bits, PKCS#1), `ecdsa` (P-256, SEC 1 `EC PRIVATE KEY`),
/// `ed25519` (PKCS#8). Sprig's `dsa` is refused: DSA is obsolete and nothing accepts it.
pub fn gen_private_key(kind: &str) -> Result<String, String> {
    match kind {
        "" | "rsa" => Ok(rsa_key(4096)?.pem),
        "ecdsa" => {
            let pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
                .map_err(|e| format!("error generating ECDSA key: {e}"))?;
            sec1_pem_from_p256_pkcs8(pair.serialized_der())
        }
        "ed25519" => {
            let pair = KeyPair::generate_for(&rcgen::PKCS_ED25519)
                .map_err(|e| format!("error generating ed25519 key: {e}"))?;
            Ok(pair.serialize_pem())
        }
        "dsa" => {
            Err("genPrivateKey: dsa keys are not supported (use rsa, ecdsa or ed25519)".into())
        }
        other => Ok(format!("Unknown type {other}")),
    }
}

/// Go's `x509.MarshalECPrivateKey` layout (SEC 1 with the curve OID) from ring's PKCS#8 form of a
/// P-256 key, whose inner ECPrivateKey leaves the curve out.
fn sec1_pem_from_p256_pkcs8(pkcs8: &[u8]) -> Result<String, String> {
    let find = |pat: &[u8], from: usize| {
        pkcs8
            .get(from..)
            .and_then(|rest| rest.windows(pat.len()).position(|w| w == pat))
            .map(|i| i + from + pat.len())
    };
    let bad = || "error encoding ECDSA key: unexpected PKCS#8 layout".to_string();
    let priv_at = find(&[0x02, 0x01, 0x01, 0x04, 0x20], 0).ok_or_else(bad)?;
    let private = pkcs8.get(priv_at..priv_at + 32).ok_or_else(bad)?;
    let pub_at = find(&[0x03, 0x42, 0x00], priv_at + 32).ok_or_else(bad)?;
    let public = pkcs8.get(pub_at..pub_at + 65).ok_or_else(bad)?;
    let mut der = vec![0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20];
    der.extend_from_slice(private);
    // [0] prime256v1
    der.extend_from_slice(&[
        0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    ]);
    der.extend_from_slice(&[0xa1, 0x44, 0x03, 0x42, 0x00]);
    der.extend_from_slice(public);
    Ok(pem_encode("EC PRIVATE KEY", &der))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Common name, validity, random serial, and the key usages every Sprig certificate has.
fn base_params(cn: &str, days: i64) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + time::Duration::days(days);
    let mut serial = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut serial);
    // a positive INTEGER of up to 128 bits, like Sprig's rand.Int(2^128)
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.key_usages = vec![
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params
}

fn add_sans(params: &mut CertificateParams, ips: &Value, dns: &Value) -> Result<(), String> {
    for ip in list_strings(ips) {
        let addr: IpAddr = ip.parse().map_err(|_| format!("error parsing ip: {ip}"))?;
        params.subject_alt_names.push(SanType::IpAddress(addr));
    }
    for name in list_strings(dns) {
        let ia5 = name
            .as_str()
            .try_into()
            .map_err(|e| format!("invalid DNS name {name:?}: {e}"))?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
    }
    Ok(())
}

fn list_strings(v: &Value) -> Vec<String> {
    match v {
        Value::List(items) => items
            .iter()
            .map(|i| match i {
                Value::Str(s) => s.to_string(),
                other => other.go_string(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn certificate(cert_pem: String, key_pem: String) -> Value {
    let mut m = Map::new();
    m.insert("Cert".into(), Value::str(cert_pem));
    m.insert("Key".into(), Value::str(key_pem));
    Value::from(m)
}

fn ca_params(cn: &str, days: i64) -> CertificateParams {
    let mut params = base_params(cn, days);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages.push(KeyUsagePurpose::KeyCertSign);
    params
}

/// `genCA` / `genCAWithKey`: a self-signed CA certificate.
pub fn gen_ca(cn: &str, days: i64, key: Option<&str>) -> Result<Value, String> {
    let key = match key {
        Some(pem) => parse_key(pem)?,
        None => rsa_key(2048)?,
    };
    let cert = ca_params(cn, days)
        .self_signed(&key.pair)
        .map_err(|e| format!("error creating CA certificate: {e}"))?;
    Ok(certificate(cert.pem(), key.pem))
}

/// `genSelfSignedCert` / `genSelfSignedCertWithKey`.
pub fn gen_self_signed_cert(
    cn: &str,
    ips: &Value,
    dns: &Value,
    days: i64,
    key: Option<&str>,
) -> Result<Value, String> {
    let key = match key {
        Some(pem) => parse_key(pem)?,
        None => rsa_key(2048)?,
    };
    let mut params = base_params(cn, days);
    params.is_ca = IsCa::ExplicitNoCa;
    add_sans(&mut params, ips, dns)?;
    let cert = params
        .self_signed(&key.pair)
        .map_err(|e| format!("error creating certificate: {e}"))?;
    Ok(certificate(cert.pem(), key.pem))
}

/// `genSignedCert` / `genSignedCertWithKey`: a certificate signed by `ca` (a value with `.Cert`
/// and `.Key`, as `genCA` returns).
pub fn gen_signed_cert(
    cn: &str,
    ips: &Value,
    dns: &Value,
    days: i64,
    ca: &Value,
    key: Option<&str>,
) -> Result<Value, String> {
    let field = |name: &str| -> String {
        match ca {
            Value::Map(m) => m
                .borrow()
                .get(name)
                .map(|v| s(v).to_string())
                .unwrap_or_default(),
            _ => String::new(),
        }
    };
    let (ca_cert, ca_key) = (field("Cert"), field("Key"));
    if ca_cert.is_empty() || ca_key.is_empty() {
        return Err(
            "error parsing CA: the certificate needs .Cert and .Key (as genCA returns)".into(),
        );
    }
    let ca_key = parse_key(&ca_key)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert, &ca_key.pair)
        .map_err(|e| format!("error parsing CA certificate: {e}"))?;
    let key = match key {
        Some(pem) => parse_key(pem)?,
        None => rsa_key(2048)?,
    };
    let mut params = base_params(cn, days);
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    add_sans(&mut params, ips, dns)?;
    let cert = params
        .signed_by(&key.pair, &issuer)
        .map_err(|e| format!("error creating certificate: {e}"))?;
    Ok(certificate(cert.pem(), key.pem))
}

/// `buildCustomCert`: a certificate value from base64 PEM certificate and key.
pub fn build_custom_cert(cert_b64: &str, key_b64: &str) -> Result<Value, String> {
    use base64::Engine;
    let decode = |what: &str, b: &str| -> Result<String, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|e| format!("unable to decode base64 {what}: {e}"))?;
        String::from_utf8(bytes).map_err(|_| format!("the {what} is not PEM text"))
    };
    let cert = decode("certificate", cert_b64)?;
    let key = decode("private key", key_b64)?;
    if !cert.contains("-----BEGIN CERTIFICATE-----") {
        return Err("unable to decode certificate: no PEM CERTIFICATE block".into());
    }
    parse_key(&key)?;
    Ok(certificate(cert, key))
}

pub(crate) fn register(t: &mut HashMap<&'static str, Entry>) {
    use P::*;
    reg(t, Sprig, "genPrivateKey", &[S], None, |_, a| {
        Ok(Value::str(gen_private_key(s(&a[0]))?))
    });
    reg(t, Sprig, "genCA", &[S, I], None, |_, a| {
        gen_ca(s(&a[0]), int(&a[1]), None)
    });
    reg(t, Sprig, "genCAWithKey", &[S, I, S], None, |_, a| {
        gen_ca(s(&a[0]), int(&a[1]), Some(s(&a[2])))
    });
    reg(
        t,
        Sprig,
        "genSelfSignedCert",
        &[S, L, L, I],
        None,
        |_, a| gen_self_signed_cert(s(&a[0]), &a[1], &a[2], int(&a[3]), None),
    );
    reg(
        t,
        Sprig,
        "genSelfSignedCertWithKey",
        &[S, L, L, I, S],
        None,
        |_, a| gen_self_signed_cert(s(&a[0]), &a[1], &a[2], int(&a[3]), Some(s(&a[4]))),
    );
    reg(t, Sprig, "genSignedCert", &[S, L, L, I, A], None, |_, a| {
        gen_signed_cert(s(&a[0]), &a[1], &a[2], int(&a[3]), &a[4], None)
    });
    reg(
        t,
        Sprig,
        "genSignedCertWithKey",
        &[S, L, L, I, A, S],
        None,
        |_, a| gen_signed_cert(s(&a[0]), &a[1], &a[2], int(&a[3]), &a[4], Some(s(&a[5]))),
    );
    reg(t, Sprig, "buildCustomCert", &[S, S], None, |_, a| {
        build_custom_cert(s(&a[0]), s(&a[1]))
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use x509_parser::prelude::*;

    fn field(v: &Value, name: &str) -> String {
        match v {
            Value::Map(m) => s(m.borrow().get(name).unwrap()).to_string(),
            _ => panic!("not a certificate: {v:?}"),
        }
    }

    fn list(items: &[&str]) -> Value {
        Value::from(items.iter().map(|i| Value::str(*i)).collect::<Vec<_>>())
    }

    fn der_of(pem_text: &str) -> Vec<u8> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes()).unwrap();
        pem.contents
    }

    #[test]
    fn signed_certificates_chain_to_their_ca_with_the_sans_and_validity_asked() {
        let ca = gen_ca("my-ca", 365, None).unwrap();
        assert!(field(&ca, "Key").starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        let ca_der = der_of(&field(&ca, "Cert"));
        let (_, ca_cert) = X509Certificate::from_der(&ca_der).unwrap();
        assert!(ca_cert.is_ca());
        assert_eq!(
            ca_cert
                .subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "my-ca"
        );
        ca_cert.verify_signature(None).unwrap();

        let leaf = gen_signed_cert(
            "web.example.com",
            &list(&["10.0.0.1", "::1"]),
            &list(&["web.example.com", "web"]),
            30,
            &ca,
            None,
        )
        .unwrap();
        let leaf_der = der_of(&field(&leaf, "Cert"));
        let (_, cert) = X509Certificate::from_der(&leaf_der).unwrap();
        assert!(!cert.is_ca());
        assert_eq!(cert.issuer(), ca_cert.subject());
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
        let sans = cert.subject_alternative_name().unwrap().unwrap().value;
        let names: Vec<String> = sans
            .general_names
            .iter()
            .map(|g| match g {
                GeneralName::DNSName(d) => d.to_string(),
                GeneralName::IPAddress(ip) => format!("ip{}", ip.len()),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(names, vec!["ip4", "ip16", "web.example.com", "web"]);
        let validity = cert.validity();
        let days = (validity.not_after.timestamp() - validity.not_before.timestamp()) / 86400;
        assert_eq!(days, 30);
        assert!(validity.is_valid());
        // the key in the certificate value is the certificate's key
        let key = parse_key(&field(&leaf, "Key")).unwrap();
        use rcgen::PublicKeyData;
        assert_eq!(
            key.pair.subject_public_key_info(),
            cert.public_key().raw.to_vec()
        );
    }

    #[test]
    fn self_signed_certificates_verify_and_bad_ips_are_errors() {
        let c = gen_self_signed_cert(
            "svc",
            &list(&["127.0.0.1"]),
            &list(&["svc.ns.svc"]),
            10,
            None,
        )
        .unwrap();
        let der = der_of(&field(&c, "Cert"));
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        cert.verify_signature(None).unwrap();
        assert_eq!(cert.issuer(), cert.subject());
        let err =
            gen_self_signed_cert("svc", &list(&["not-an-ip"]), &list(&[]), 10, None).unwrap_err();
        assert_eq!(err, "error parsing ip: not-an-ip");
    }

    #[test]
    fn private_keys_of_each_kind_parse_back() {
        let ec = gen_private_key("ecdsa").unwrap();
        assert!(ec.starts_with("-----BEGIN EC PRIVATE KEY-----"), "{ec}");
        let (_, pem) = x509_parser::pem::parse_x509_pem(ec.as_bytes()).unwrap();
        assert_eq!(pem.contents.len(), 121);
        let ed = gen_private_key("ed25519").unwrap();
        assert!(parse_key(&ed).is_ok());
        assert_eq!(gen_private_key("x").unwrap(), "Unknown type x");
        assert!(gen_private_key("dsa").is_err());
        // a CA from a given key keeps that key
        let ca = gen_ca("k", 1, Some(&ed)).unwrap();
        assert_eq!(field(&ca, "Key"), ed);
    }
}

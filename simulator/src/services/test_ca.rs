//! A self-signed certificate authority made per test or scenario, whose PEM is what a GitRepo's
//! `caBundle` or Rancher's `tls-ca` secret would hold, and which signs the certificates of the
//! servers in [`super`].

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::ServiceError;

/// A CA named by its common name; clients trust the servers it signed only through [`Self::pem`].
pub struct TestCa {
    name: String,
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TestCa {
    /// A fresh CA key and self-signed certificate with common name `name`.
    pub fn new(name: &str) -> Result<Self, ServiceError> {
        let err = |what| {
            let ca = name.to_string();
            move |source| ServiceError::Certificate { ca, what, source }
        };
        let key = KeyPair::generate().map_err(err("key"))?;
        let mut params =
            CertificateParams::new(Vec::<String>::new()).map_err(err("certificate"))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).map_err(err("certificate"))?;
        Ok(TestCa {
            name: name.to_string(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The common name the CA was made with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The CA certificate, PEM-encoded.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A TLS server configuration with a new certificate for `localhost` and 127.0.0.1 signed
    /// by this CA (HTTP/1.1 through ALPN).
    pub fn server_config(&self) -> Result<rustls::ServerConfig, ServiceError> {
        let err = |what| {
            let ca = self.name.clone();
            move |source| ServiceError::Certificate { ca, what, source }
        };
        let key = KeyPair::generate().map_err(err("server key"))?;
        let mut params = CertificateParams::new(vec!["localhost".to_string()])
            .map_err(err("server certificate"))?;
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(err("server certificate"))?;
        let tls = |source| ServiceError::Tls {
            ca: self.name.clone(),
            source,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(tls)?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .map_err(tls)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

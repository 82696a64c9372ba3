//! TLS for the loopback listener: a certificate authority and a serving certificate generated
//! when the simulator first serves over HTTPS, like a kind/kubeadm cluster's self-made PKI. The
//! CA goes into every kubeconfig as `certificate-authority-data`, so kubectl and kube-rs verify
//! the server and send their bearer tokens (client-go withholds credentials from plain HTTP).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Why the simulator's certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating the simulator's {what}: {source}")]
    Generate {
        what: &'static str,
        source: rcgen::Error,
    },
    #[error("configuring TLS for the simulator's listener: {0}")]
    Config(#[from] rustls::Error),
}

/// The simulator's PKI: a CA and a certificate for 127.0.0.1/localhost signed by it.
pub struct ServingCerts {
    ca_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for ServingCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCerts").finish_non_exhaustive()
    }
}

impl ServingCerts {
    /// A fresh CA and a serving certificate valid for `localhost`, 127.0.0.1, ::1 and `extra_ips`.
    pub fn generate(extra_ips: &[std::net::IpAddr]) -> Result<Self, TlsError> {
        let err = |what| move |source| TlsError::Generate { what, source };
        let ca_key = KeyPair::generate().map_err(err("CA key"))?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err("CA"))?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "fleet-simulator-ca");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::CrlSign,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(err("CA"))?;
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().map_err(err("serving key"))?;
        let mut params = CertificateParams::new(vec!["localhost".to_string()])
            .map_err(err("serving certificate"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "fleet-simulator");
        let mut ips = vec![
            std::net::IpAddr::from([127, 0, 0, 1]),
            std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ];
        ips.extend(extra_ips.iter().copied().filter(|ip| !ip.is_unspecified()));
        for ip in ips {
            if !params.subject_alt_names.contains(&SanType::IpAddress(ip)) {
                params.subject_alt_names.push(SanType::IpAddress(ip));
            }
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(err("serving certificate"))?;
        Ok(ServingCerts {
            ca_pem: ca_cert.pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        })
    }

    /// The CA certificate (PEM) clients trust: kubeconfig `certificate-authority-data`.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub(crate) fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )?;
        // The listener speaks HTTP/1.1 only; clients fall back to it through ALPN.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// A TCP listener whose connections complete a TLS handshake before axum sees them.
pub(crate) struct TlsListener {
    pub(crate) tcp: TcpListener,
    pub(crate) acceptor: TlsAcceptor,
}

/// A handshake that stalls this long is dropped, so one silent client cannot hold up the others.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.tcp.accept().await {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and similar: back off instead of spinning.
                    tracing::warn!(error = %e, "simulator listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
                Ok(Ok(tls)) => return (tls, addr),
                Ok(Err(e)) => {
                    tracing::debug!(%addr, error = %e, "simulator listener: TLS handshake failed")
                }
                Err(_) => tracing::debug!(%addr, "simulator listener: TLS handshake timed out"),
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

//! SSL/TLS for `ssl:` remotes with rustls, configured like ovn-nbctl's `-p/-c/-C` (private key,
//! certificate, CA certificate PEM files).
//!
//! As with Open vSwitch's own SSL, the peer's certificate must chain to the CA certificate, but its
//! name is not compared with the remote's address (OVS PKI certificates name the daemon, not the
//! host).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::error::{Error, Result};

/// PEM files for SSL remotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// Client private key (`-p`).
    pub private_key: PathBuf,
    /// Client certificate (`-c`).
    pub certificate: PathBuf,
    /// CA certificate that must have signed the server's certificate (`-C`).
    pub ca_cert: PathBuf,
}

impl TlsConfig {
    pub fn new(private_key: impl Into<PathBuf>, certificate: impl Into<PathBuf>, ca_cert: impl Into<PathBuf>) -> Self {
        TlsConfig { private_key: private_key.into(), certificate: certificate.into(), ca_cert: ca_cert.into() }
    }
}

fn read_certs(p: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let data = std::fs::read(p).map_err(|e| Error::Tls(format!("reading {}: {e}", p.display())))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut &data[..])
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Tls(format!("parsing certificates in {}: {e}", p.display())))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("no certificate in {}", p.display())));
    }
    Ok(certs)
}

fn read_key(p: &Path) -> Result<PrivateKeyDer<'static>> {
    let data = std::fs::read(p).map_err(|e| Error::Tls(format!("reading {}: {e}", p.display())))?;
    rustls_pemfile::private_key(&mut &data[..])
        .map_err(|e| Error::Tls(format!("parsing private key in {}: {e}", p.display())))?
        .ok_or_else(|| Error::Tls(format!("no private key in {}", p.display())))
}

#[derive(Debug)]
struct CaOnlyVerifier(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for CaOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Ok(v) => Ok(v),
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Builds a rustls client configuration from the PEM files.
pub fn client_config(cfg: &TlsConfig) -> Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(&cfg.ca_cert)? {
        roots.add(c).map_err(|e| Error::Tls(format!("CA certificate {}: {e}", cfg.ca_cert.display())))?;
    }
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| Error::Tls(format!("building verifier: {e}")))?;
    let certs = read_certs(&cfg.certificate)?;
    let key = read_key(&cfg.private_key)?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CaOnlyVerifier(inner)))
        .with_client_auth_cert(certs, key)
        .map_err(|e| Error::Tls(format!("client certificate {} / key {}: {e}", cfg.certificate.display(), cfg.private_key.display())))?;
    Ok(Arc::new(config))
}

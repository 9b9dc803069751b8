//! The webhook's TLS identity: PEM files, or a CA + serving certificate generated at start.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use thiserror::Error;

/// Where the serving certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM files (e.g. a mounted `kubernetes.io/tls` Secret).
    Files {
        /// Certificate chain PEM.
        cert: PathBuf,
        /// Private key PEM (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// Generate a CA and a certificate for `dns_names` (names that parse as IPs become IP SANs);
    /// the CA PEM is written to `ca_out` when given, for a MutatingWebhookConfiguration caBundle.
    Generate {
        /// Subject alternative names, e.g. `kubetron-webhook.kubetron.svc`.
        dns_names: Vec<String>,
        /// Where to write the CA certificate PEM.
        ca_out: Option<PathBuf>,
    },
}

/// TLS setup failures.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// No certificate or key in a PEM file.
    #[error("{0}: no {1} found in PEM file")]
    Missing(PathBuf, &'static str),
    /// Certificate generation failed.
    #[error("generating the webhook certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate/key.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A generated CA and serving certificate, all PEM.
#[derive(Debug, Clone)]
pub struct GeneratedCert {
    /// CA certificate (what clients trust).
    pub ca_pem: String,
    /// Serving certificate, signed by the CA.
    pub cert_pem: String,
    /// Serving key (PKCS#8).
    pub key_pem: String,
}

/// Generate a CA and a serving certificate for `names`.
pub fn generate(names: &[String]) -> Result<GeneratedCert, TlsError> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(DnType::CommonName, "kubetron-webhook-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = ca_params.self_signed(&ca_key)?;

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name.push(DnType::CommonName, names.first().map(String::as_str).unwrap_or("kubetron-webhook"));
    params.is_ca = IsCa::NoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &ca, &ca_key)?;
    Ok(GeneratedCert { ca_pem: ca.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

fn read_certs(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut BufReader::new(pem)).collect::<Result<Vec<_>, _>>().map_err(|source| TlsError::Io {
        what: "parsing certificates in",
        path: path.to_path_buf(),
        source,
    })?;
    if certs.is_empty() {
        return Err(TlsError::Missing(path.to_path_buf(), "certificate"));
    }
    Ok(certs)
}

fn read_key(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut BufReader::new(pem))
        .map_err(|source| TlsError::Io { what: "parsing private key in", path: path.to_path_buf(), source })?
        .ok_or_else(|| TlsError::Missing(path.to_path_buf(), "private key"))
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    let mut buf = Vec::new();
    let mut f = File::open(path).map_err(|source| TlsError::Io { what: "opening", path: path.to_path_buf(), source })?;
    std::io::Read::read_to_end(&mut f, &mut buf).map_err(|source| TlsError::Io { what: "reading", path: path.to_path_buf(), source })?;
    Ok(buf)
}

/// Build a rustls server config (ring provider, ALPN http/1.1) from PEM bytes.
pub fn server_config_from_pem(cert_pem: &[u8], key_pem: &[u8], origin: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = read_certs(cert_pem, origin)?;
    let key = read_key(key_pem, origin)?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Build the server config for a source. Returns the CA PEM when one was generated.
pub fn load(source: &TlsSource) -> Result<(Arc<ServerConfig>, Option<String>), TlsError> {
    match source {
        TlsSource::Files { cert, key } => {
            let cert_pem = read_file(cert)?;
            let key_pem = read_file(key)?;
            let certs = read_certs(&cert_pem, cert)?;
            let key_der = read_key(&key_pem, key)?;
            let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_single_cert(certs, key_der)?;
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok((Arc::new(config), None))
        }
        TlsSource::Generate { dns_names, ca_out } => {
            let generated = generate(dns_names)?;
            if let Some(path) = ca_out {
                std::fs::write(path, &generated.ca_pem).map_err(|source| TlsError::Io {
                    what: "writing CA certificate to",
                    path: path.clone(),
                    source,
                })?;
                tracing::info!(path = %path.display(), "wrote webhook CA certificate");
            }
            let config = server_config_from_pem(generated.cert_pem.as_bytes(), generated.key_pem.as_bytes(), Path::new("<generated>"))?;
            Ok((config, Some(generated.ca_pem)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let g = generate(&["kubetron-webhook.kubetron.svc".into(), "127.0.0.1".into()]).unwrap();
        assert!(g.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        std::fs::write(&cert, &g.cert_pem).unwrap();
        std::fs::write(&key, &g.key_pem).unwrap();
        let (_, ca) = load(&TlsSource::Files { cert: cert.clone(), key: key.clone() }).unwrap();
        assert!(ca.is_none());

        let ca_out = dir.path().join("ca.crt");
        let (_, ca) = load(&TlsSource::Generate { dns_names: vec!["x.svc".into()], ca_out: Some(ca_out.clone()) }).unwrap();
        assert_eq!(std::fs::read_to_string(&ca_out).unwrap(), ca.unwrap());
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = load(&TlsSource::Files { cert: dir.path().join("nope.crt"), key: dir.path().join("nope.key") }).unwrap_err();
        assert!(missing.to_string().contains("nope.crt"), "{missing}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "hello").unwrap();
        let e = load(&TlsSource::Files { cert: empty.clone(), key: empty.clone() }).unwrap_err();
        assert!(matches!(e, TlsError::Missing(_, "certificate")), "{e}");
    }
}

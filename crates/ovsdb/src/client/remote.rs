//! Remote addresses (`unix:PATH`, `tcp:HOST:PORT`, `ssl:HOST:PORT`, comma separated) and opening
//! a byte stream to one.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{Error, Result};

/// One server address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    Unix(PathBuf),
    Tcp { host: String, port: u16 },
    Ssl { host: String, port: u16 },
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hp = |h: &str| if h.contains(':') { format!("[{h}]") } else { h.to_string() };
        match self {
            Remote::Unix(p) => write!(f, "unix:{}", p.display()),
            Remote::Tcp { host, port } => write!(f, "tcp:{}:{port}", hp(host)),
            Remote::Ssl { host, port } => write!(f, "ssl:{}:{port}", hp(host)),
        }
    }
}

fn host_port(remote: &str, rest: &str) -> Result<(String, u16)> {
    let bad = |why: &str| Error::InvalidRemote { remote: remote.to_string(), reason: why.to_string() };
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, p) = r.split_once("]:").ok_or_else(|| bad("expected [IPv6]:PORT"))?;
        (h, p)
    } else {
        rest.rsplit_once(':').ok_or_else(|| bad("expected HOST:PORT"))?
    };
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    let port = port.parse::<u16>().map_err(|_| bad("bad port"))?;
    Ok((host.to_string(), port))
}

impl Remote {
    pub fn parse(s: &str) -> Result<Remote> {
        let s = s.trim();
        if let Some(p) = s.strip_prefix("unix:") {
            if p.is_empty() {
                return Err(Error::InvalidRemote { remote: s.into(), reason: "empty path".into() });
            }
            Ok(Remote::Unix(PathBuf::from(p)))
        } else if let Some(r) = s.strip_prefix("tcp:") {
            let (host, port) = host_port(s, r)?;
            Ok(Remote::Tcp { host, port })
        } else if let Some(r) = s.strip_prefix("ssl:") {
            let (host, port) = host_port(s, r)?;
            Ok(Remote::Ssl { host, port })
        } else {
            Err(Error::InvalidRemote { remote: s.into(), reason: "expected unix:, tcp: or ssl:".into() })
        }
    }

    /// Parses a comma-separated list.
    pub fn parse_list(s: &str) -> Result<Vec<Remote>> {
        let v: Vec<Remote> = s.split(',').filter(|p| !p.trim().is_empty()).map(Remote::parse).collect::<Result<_>>()?;
        if v.is_empty() {
            return Err(Error::InvalidRemote { remote: s.into(), reason: "no remote".into() });
        }
        Ok(v)
    }
}

pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Opens a stream to `remote`.
pub(crate) async fn open(remote: &Remote, tls: Option<&Arc<rustls::ClientConfig>>, timeout: Duration) -> Result<Box<dyn Io>> {
    let err = |reason: String| Error::Connect { remote: remote.to_string(), reason };
    let fut = async {
        match remote {
            Remote::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p).await.map_err(|e| err(e.to_string()))?;
                Ok(Box::new(s) as Box<dyn Io>)
            }
            Remote::Tcp { host, port } => {
                let s = tokio::net::TcpStream::connect((host.as_str(), *port)).await.map_err(|e| err(e.to_string()))?;
                let _ = s.set_nodelay(true);
                Ok(Box::new(s) as Box<dyn Io>)
            }
            Remote::Ssl { host, port } => {
                let cfg = tls.ok_or_else(|| err("ssl remote but no TLS configuration (private key, certificate, CA)".into()))?;
                let s = tokio::net::TcpStream::connect((host.as_str(), *port)).await.map_err(|e| err(e.to_string()))?;
                let _ = s.set_nodelay(true);
                let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| err(format!("server name: {e}")))?;
                let c = tokio_rustls::TlsConnector::from(cfg.clone());
                let t = c.connect(name, s).await.map_err(|e| err(format!("TLS handshake: {e}")))?;
                Ok(Box::new(t) as Box<dyn Io>)
            }
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(err(format!("timed out after {timeout:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parse() {
        let v = Remote::parse_list("unix:/a/b.sock,tcp:127.0.0.1:6641, ssl:[::1]:6643").unwrap();
        assert_eq!(v[0], Remote::Unix("/a/b.sock".into()));
        assert_eq!(v[1], Remote::Tcp { host: "127.0.0.1".into(), port: 6641 });
        assert_eq!(v[2], Remote::Ssl { host: "::1".into(), port: 6643 });
        assert_eq!(v[2].to_string(), "ssl:[::1]:6643");
        assert!(Remote::parse("tcp:1.2.3.4").is_err());
        assert!(Remote::parse("udp:1.2.3.4:5").is_err());
        assert!(Remote::parse("tcp:1.2.3.4:99999").is_err());
    }
}

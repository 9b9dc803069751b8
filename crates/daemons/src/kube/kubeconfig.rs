//! Writes kubeconfig files (YAML) with the CA and client certificate embedded (`*-data` fields), so they work
//! for kubectl and for any client library regardless of the working directory.

use std::path::Path;

use super::pki::CertPair;
use super::{KubeError, Result};

/// Renders a kubeconfig for `server` (https URL) authenticating as `user` with the client certificate `client`.
/// `user` must already be a validated name (letters, digits, `:._@-`).
pub fn render(server: &str, ca_pem: &[u8], user: &str, client_cert: &[u8], client_key: &[u8]) -> String {
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: kubetron\n\
         \x20 cluster:\n\
         \x20   server: {server}\n\
         \x20   certificate-authority-data: {ca}\n\
         users:\n\
         - name: \"{user}\"\n\
         \x20 user:\n\
         \x20   client-certificate-data: {cert}\n\
         \x20   client-key-data: {key}\n\
         contexts:\n\
         - name: kubetron\n\
         \x20 context:\n\
         \x20   cluster: kubetron\n\
         \x20   user: \"{user}\"\n\
         current-context: kubetron\n",
        ca = base64(ca_pem),
        cert = base64(client_cert),
        key = base64(client_key),
    )
}

/// Reads the client pair and writes a kubeconfig at `path` (mode 0600: it holds a private key).
pub fn write(path: &Path, server: &str, ca_pem: &[u8], user: &str, client: &CertPair) -> Result<()> {
    let cert = read(&client.cert)?;
    let key = read(&client.key)?;
    let text = render(server, ca_pem, user, &cert, &key);
    write_private(path, text.as_bytes())
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| KubeError::io(format!("read {}", path.display()), e))
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| KubeError::io(format!("create {}", path.display()), e))?;
    f.write_all(data).map_err(|e| KubeError::io(format!("write {}", path.display()), e))
}

/// Standard base64 (RFC 4648, with padding).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let idx = [(n >> 18) & 63, (n >> 12) & 63, (n >> 6) & 63, n & 63];
        for (i, v) in idx.iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[*v as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_rfc4648_vectors() {
        let cases =
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")];
        for (plain, enc) in cases {
            assert_eq!(base64(plain.as_bytes()), enc, "input {plain:?}");
        }
    }

    #[test]
    fn render_names_server_and_user() {
        let y = render("https://127.0.0.1:1234", b"CA", "bob", b"C", b"K");
        assert!(y.contains("    server: https://127.0.0.1:1234\n"));
        assert!(y.contains("- name: \"bob\"\n  user:\n    client-certificate-data: Qw==\n    client-key-data: Sw==\n"));
        assert!(y.contains("certificate-authority-data: Q0E=\n"));
        assert!(y.ends_with("current-context: kubetron\n"));
    }
}

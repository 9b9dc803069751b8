//! The Northbound database options every subcommand that reaches it takes (written once).

use std::path::PathBuf;

/// `--nb` and, for `ssl:` remotes, the client's key, certificate and CA certificate.
#[derive(clap::Args, Clone, Debug)]
pub struct NbArgs {
    /// The OVN Northbound database (`unix:`, `tcp:`, `ssl:`; comma-separated for a cluster).
    #[arg(long, env = "KUBETRON_OVN_NB")]
    pub nb: Option<String>,
    /// Private key, certificate and CA certificate for `ssl:` remotes (PEM files).
    #[arg(long, env = "KUBETRON_OVN_NB_KEY", requires_all = ["nb_cert", "nb_ca"])]
    pub nb_key: Option<PathBuf>,
    #[arg(long, env = "KUBETRON_OVN_NB_CERT")]
    pub nb_cert: Option<PathBuf>,
    #[arg(long, env = "KUBETRON_OVN_NB_CA")]
    pub nb_ca: Option<PathBuf>,
}

impl NbArgs {
    /// `--nb`, which this use needs.
    pub fn remote(&self) -> anyhow::Result<&str> {
        self.nb.as_deref().filter(|n| !n.trim().is_empty()).ok_or_else(|| anyhow::anyhow!("--nb (KUBETRON_OVN_NB) is required"))
    }

    /// The TLS settings when all three files were given.
    pub fn tls(&self) -> Option<ovsdb::TlsConfig> {
        match (&self.nb_key, &self.nb_cert, &self.nb_ca) {
            (Some(k), Some(c), Some(ca)) => Some(ovsdb::TlsConfig::new(k, c, ca)),
            _ => None,
        }
    }
}

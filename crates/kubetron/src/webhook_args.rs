//! `kubetron webhook` options: the command line that fills [`k8s::webhook::WebhookSettings`].

use std::net::SocketAddr;
use std::path::PathBuf;

use k8s::webhook::{TlsSource, WebhookConfig, WebhookSettings};

/// `kubetron webhook` options.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {
    /// Address to listen on.
    #[arg(long, env = "KUBETRON_WEBHOOK_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Serving certificate PEM (with --tls-key). Without both, a CA and certificate are generated.
    #[arg(long, env = "KUBETRON_WEBHOOK_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Serving key PEM (with --tls-cert).
    #[arg(long, env = "KUBETRON_WEBHOOK_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// DNS names of a generated certificate (repeatable).
    #[arg(long = "dns-name", env = "KUBETRON_WEBHOOK_DNS_NAMES", value_delimiter = ',', default_value = "kubetron-webhook.kubetron.svc")]
    pub dns_names: Vec<String>,
    /// Write a generated CA certificate PEM here.
    #[arg(long, env = "KUBETRON_WEBHOOK_CA_OUT")]
    pub ca_out: Option<PathBuf>,
    /// Put a generated CA into this MutatingWebhookConfiguration's caBundle at start.
    #[arg(long, env = "KUBETRON_WEBHOOK_CONFIGURATION")]
    pub register: Option<String>,
    /// kubetron's namespace: where the controller publishes the security profiles it offers
    /// (ConfigMap kubetron-security-profiles).
    #[arg(long, env = "KUBETRON_NAMESPACE", default_value = "kubetron")]
    pub namespace: String,
}

impl WebhookArgs {
    /// The webhook's settings these options describe.
    pub fn settings(self) -> WebhookSettings {
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => TlsSource::Files { cert, key },
            _ => TlsSource::Generate { dns_names: self.dns_names, ca_out: self.ca_out },
        };
        WebhookSettings { server: WebhookConfig { listen: self.listen, tls }, register: self.register, namespace: self.namespace }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: WebhookArgs,
    }

    fn parse(args: &[&str]) -> Result<WebhookSettings, clap::Error> {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied())).map(|c| c.args.settings())
    }

    #[test]
    fn defaults_generate() {
        let s = parse(&[]).unwrap();
        assert_eq!(s.server.listen, "0.0.0.0:8443".parse().unwrap());
        assert_eq!(s.server.tls, TlsSource::Generate { dns_names: vec!["kubetron-webhook.kubetron.svc".into()], ca_out: None });
        assert_eq!(s.register, None);
    }

    #[test]
    fn files_need_both() {
        assert!(parse(&["--tls-cert", "/a"]).is_err());
        assert!(parse(&["--tls-key", "/b"]).is_err());
        let s = parse(&["--tls-cert", "/a", "--tls-key", "/b", "--listen", "127.0.0.1:9443"]).unwrap();
        assert_eq!(s.server.tls, TlsSource::Files { cert: "/a".into(), key: "/b".into() });
        assert_eq!(s.server.listen, "127.0.0.1:9443".parse().unwrap());
    }

    #[test]
    fn generated_names_ca_out_and_register() {
        let s = parse(&["--dns-name", "a.svc,b.svc", "--ca-out", "/ca.pem", "--register", "kubetron"]).unwrap();
        assert_eq!(s.server.tls, TlsSource::Generate { dns_names: vec!["a.svc".into(), "b.svc".into()], ca_out: Some("/ca.pem".into()) });
        assert_eq!(s.register.as_deref(), Some("kubetron"));
    }
}

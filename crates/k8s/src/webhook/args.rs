//! Command-line settings of the webhook (a `clap::Args` the binary can flatten) and the
//! in-cluster entry point [`run`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{register::register_ca_bundle, TlsSource, WebhookConfig, WebhookError, WebhookServer};

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
}

impl WebhookArgs {
    /// The server settings these options describe.
    pub fn config(&self) -> WebhookConfig {
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => TlsSource::Files { cert: cert.clone(), key: key.clone() },
            _ => TlsSource::Generate { dns_names: self.dns_names.clone(), ca_out: self.ca_out.clone() },
        };
        WebhookConfig { listen: self.listen, tls }
    }
}

/// Run the webhook in a cluster: NADs are read with the in-cluster (or kubeconfig) client; a
/// generated CA is published to `--register` when given. Serves until `shutdown` completes (the
/// binary passes SIGTERM/SIGINT), then drains the requests in flight and returns.
pub async fn run(args: WebhookArgs, shutdown: impl std::future::Future<Output = ()>) -> Result<(), WebhookError> {
    tokio::pin!(shutdown);
    let client = tokio::select! {
        _ = &mut shutdown => return Ok(()),
        c = kube::Client::try_default() => c.map_err(|e| WebhookError::Kube(e.to_string()))?,
    };
    let server = WebhookServer::bind(&args.config(), client.clone()).await?;
    if let (Some(name), Some(ca)) = (&args.register, server.ca_pem()) {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = register_ca_bundle(client, name, ca, Duration::from_secs(120)) => r?,
        }
    }
    server.run_until(shutdown).await
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

    #[test]
    fn defaults_generate() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        let c = cli.args.config();
        assert_eq!(c.listen, "0.0.0.0:8443".parse().unwrap());
        assert_eq!(c.tls, TlsSource::Generate { dns_names: vec!["kubetron-webhook.kubetron.svc".into()], ca_out: None });
    }

    #[test]
    fn files_need_both() {
        assert!(Cli::try_parse_from(["x", "--tls-cert", "/a"]).is_err());
        let cli = Cli::try_parse_from(["x", "--tls-cert", "/a", "--tls-key", "/b", "--listen", "127.0.0.1:9443"]).unwrap();
        assert_eq!(cli.args.config().tls, TlsSource::Files { cert: "/a".into(), key: "/b".into() });
        let cli = Cli::try_parse_from(["x", "--dns-name", "a.svc,b.svc", "--register", "kubetron"]).unwrap();
        assert_eq!(cli.args.dns_names, vec!["a.svc", "b.svc"]);
        assert_eq!(cli.args.register.as_deref(), Some("kubetron"));
    }
}

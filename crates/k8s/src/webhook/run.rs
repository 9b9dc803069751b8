//! The in-cluster entry point [`run`] and its settings ([`WebhookSettings`]; the binary fills them
//! from its command line).

use std::time::Duration;

use super::{register::register_ca_bundle, KubeSource, WebhookConfig, WebhookError, WebhookServer};

/// What [`run`] serves: the server's settings and, optionally, the MutatingWebhookConfiguration a
/// generated CA is published into at start.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSettings {
    /// Listen address and serving certificate.
    pub server: WebhookConfig,
    /// Name of the MutatingWebhookConfiguration whose `caBundle` gets a generated CA (ignored when
    /// the certificate comes from files: there is no CA to publish).
    pub register: Option<String>,
    /// kubetron's namespace, where the controller publishes the offered security profiles
    /// ([`crate::profiles::CONFIGMAP`]).
    pub namespace: String,
}

/// Run the webhook in a cluster: NADs and the offered security profiles are read with the
/// in-cluster (or kubeconfig) client ([`KubeSource`]); a
/// generated CA is published to [`WebhookSettings::register`] when given. Serves until `shutdown`
/// completes (the binary passes SIGTERM/SIGINT), then drains the requests in flight and returns.
pub async fn run(settings: WebhookSettings, shutdown: impl std::future::Future<Output = ()>) -> Result<(), WebhookError> {
    tokio::pin!(shutdown);
    let client = tokio::select! {
        _ = &mut shutdown => return Ok(()),
        c = kube::Client::try_default() => c.map_err(|e| WebhookError::Kube(e.to_string()))?,
    };
    let server = WebhookServer::bind(&settings.server, KubeSource::new(client.clone(), settings.namespace.as_str())).await?;
    if let (Some(name), Some(ca)) = (&settings.register, server.ca_pem()) {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = register_ca_bundle(client, name, ca, Duration::from_secs(120)) => r?,
        }
    }
    server.run_until(shutdown).await
}

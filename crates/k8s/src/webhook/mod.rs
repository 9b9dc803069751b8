//! The mutating admission webhook for pods, which also validates MultiNetworkPolicies
//! (AdmissionReview v1 over HTTPS, rustls).
//!
//! - [`admit`]: the decision and JSONPatch for one request (see its module doc for the rules);
//!   MultiNetworkPolicies are validated too (the rules the controller applies, before they land).
//! - [`NadSource`]: where NADs and offered security profiles are looked up ([`KubeSource`], or
//!   [`MemoryNads`] in tests).
//! - [`serve`] / [`WebhookServer`]: the HTTPS server, `POST /mutate` and `GET /healthz`.
//!
//! The certificate comes from PEM files or is generated at start ([`TlsSource`]); a generated
//! CA is written to a file for the MutatingWebhookConfiguration's `caBundle`. Certificates are
//! read once at start (restart the pod to rotate them). With [`WebhookSettings::register`]
//! (`kubetron webhook --register NAME`) the generated CA is patched into that
//! MutatingWebhookConfiguration (needs get+patch on it); each start generates a new CA, so run one
//! replica in that mode, or mount a certificate. [`run`] is the in-cluster entry point; the
//! command line that fills its [`WebhookSettings`] belongs to the `kubetron` binary.

mod admit;
mod patch;
mod policy;
mod register;
mod review;
mod run;
mod server;
mod source;
mod tls;

use std::net::SocketAddr;

use thiserror::Error;

pub use admit::admit;
pub use patch::{env_ops, escape_pointer_token, resource_ops, PatchOp};
pub use register::{ca_bundle_patch, register_ca_bundle};
pub use review::{AdmissionRequest, AdmissionResponse, AdmissionReview, GroupVersionKind, ResponseStatus, ADMISSION_API_VERSION};
pub use run::{run, WebhookSettings};
pub use server::{review_bytes, WebhookConfig, WebhookMetrics, WebhookServer, MAX_BODY};
pub use source::{KubeSource, MemoryNads, NadSource, NadSourceError};
pub use tls::{generate as generate_certificate, load as load_tls, GeneratedCert, TlsError, TlsSource};

/// Webhook server failures.
#[derive(Debug, Error)]
pub enum WebhookError {
    /// Certificate problems.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Could not listen.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Error.
        #[source]
        source: std::io::Error,
    },
    /// Could not build a Kubernetes client.
    #[error("kubernetes client: {0}")]
    Kube(String),
    /// Could not publish the CA bundle.
    #[error("publishing the CA bundle to MutatingWebhookConfiguration {name}: {message}")]
    Register {
        /// The configuration's name.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// Listener failure.
    #[error("webhook listener: {0}")]
    Accept(#[source] std::io::Error),
}

/// Bind and serve forever, looking NADs up in `nads` (usually a `kube::Client`).
pub async fn serve<S: NadSource>(config: WebhookConfig, nads: S) -> Result<(), WebhookError> {
    WebhookServer::bind(&config, nads).await?.run().await
}

//! `telemetry`: what the long-running kubetron processes (controller, webhook, node agent) expose
//! over plain HTTP for operators: `/metrics` in the Prometheus text format, `/healthz` (the process
//! runs) and `/readyz` (it does its job: e.g. it leads, or it registered with the kubelet).
//!
//! Owns: a small metrics registry ([`Registry`], [`Counter`], [`Gauge`]) and the HTTP endpoint
//! ([`serve`]), and the process-wide shutdown signal ([`shutdown_on_signals`]: SIGTERM or SIGINT).
//! Must not touch: anything the metrics describe; callers update them.

mod registry;
mod server;
mod shutdown;

pub use registry::{Counter, Gauge, Registry};
pub use server::{serve, Telemetry};
pub use shutdown::shutdown_on_signals;
pub use tokio_util::sync::CancellationToken;

/// Errors of the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding the telemetry endpoint on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
}

//! `telemetry`: what the long-running kubetron processes (controller, webhook, node agent) expose
//! over plain HTTP for operators: `/metrics` in the Prometheus text format, `/healthz` (the process
//! runs) and `/readyz` (it does its job: e.g. it leads, or it registered with the kubelet).
//!
//! Owns: a small metrics registry ([`Registry`], [`Counter`], [`Gauge`]) and the HTTP endpoint
//! ([`serve`]), the process-wide shutdown signal ([`shutdown_on_signals`]: SIGTERM or SIGINT), and
//! the processes' log setup ([`init_logging`]).
//! Must not touch: anything the metrics describe; callers update them.

mod registry;
mod server;
mod shutdown;

pub use registry::{Counter, Gauge, Registry};
pub use server::{serve, Telemetry};
pub use shutdown::shutdown_on_signals;
pub use tokio_util::sync::CancellationToken;

/// Logs of a kubetron process: `tracing` to stderr, filtered by `KUBETRON_LOG` (EnvFilter syntax),
/// else `default`; colour only on a terminal (runtimes and log collectors store stderr as text).
pub fn init_logging(default: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUBETRON_LOG").unwrap_or_else(|_| default.into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Errors of the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding the telemetry endpoint on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
}

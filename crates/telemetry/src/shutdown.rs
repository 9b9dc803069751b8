//! The one shutdown signal of the long-running processes: SIGTERM (what the kubelet sends when a
//! pod stops) or SIGINT (Ctrl-C), turned into a [`CancellationToken`] every part of the process
//! waits on.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// Installs the SIGTERM and SIGINT handlers now (signals that arrive from here on are caught, not
/// fatal) and returns a token that is cancelled at the first of them. Call it first thing inside
/// the runtime; a second signal while shutting down is caught too (shutdown is already underway).
pub fn shutdown_on_signals() -> std::io::Result<CancellationToken> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let token = CancellationToken::new();
    let stop = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            _ = stop.cancelled() => return,
        }
        stop.cancel();
        // Keep the handlers installed: a second signal must not kill the process mid-shutdown.
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::debug!("signal while shutting down; already stopping");
        }
    });
    Ok(token)
}

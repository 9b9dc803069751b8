//! The shutdown signal for real: this test process sends itself SIGTERM, then SIGINT, and survives both
//! (the handlers are installed), the token being cancelled by the first. Alone in its test binary: the
//! signals go to the whole process.

use std::process::Command;
use std::time::Duration;

fn send(sig: &str) {
    let st = Command::new("kill").arg(format!("-{sig}")).arg(std::process::id().to_string()).status().expect("run kill");
    assert!(st.success(), "kill -{sig}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cancels_the_token_and_later_signals_are_caught() {
    let token = telemetry::shutdown_on_signals().expect("install handlers");
    assert!(!token.is_cancelled());
    send("TERM");
    tokio::time::timeout(Duration::from_secs(30), token.cancelled()).await.expect("SIGTERM cancels the token");
    // A second signal while shutting down must not kill the process (default action) either.
    send("INT");
    send("TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(token.is_cancelled());
}

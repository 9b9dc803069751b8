#![allow(dead_code)]
use daemons::{OvsdbServer, OvsdbServerConfig};
use ovsdb::{Client, ClientConfig};

pub const NB: &str = "OVN_Northbound";

pub use testkit::init_tracing;

pub struct Nb {
    pub dir: tempfile::TempDir,
    pub server: OvsdbServer,
}

pub fn start_nb(tcp: bool) -> Nb {
    init_tracing();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = OvsdbServer::start(OvsdbServerConfig::new("nb", dir.path(), daemons::schemas::NB).tcp(tcp)).expect("start ovsdb-server");
    Nb { dir, server }
}

pub async fn connect(remote: &str) -> Client {
    Client::connect(ClientConfig::new(remote).unwrap()).await.expect("connect")
}

/// Generous bound for anything a test waits for: only reached when something is broken.
pub const LONG: std::time::Duration = std::time::Duration::from_secs(60);

/// Polls `cond` (every 10 ms) until it holds; panics naming `what` after `limit`.
pub async fn poll(limit: std::time::Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

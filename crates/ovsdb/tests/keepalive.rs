mod common;

use std::time::Duration;

use common::*;
use ovsdb::{Client, ClientConfig, Error};

/// ovsdb-server probes idle TCP connections with echo requests (every 5 s) and drops clients that
/// do not answer: staying idle for longer than that without reconnecting shows that we answer.
#[tokio::test]
async fn answers_server_echo() {
    let nb = start_nb(true);
    let c = Client::connect(ClientConfig::new(&nb.server.tcp_remote().unwrap()).unwrap().inactivity_probe(None)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(c.list_dbs().await.unwrap().len(), 2);
    let s = c.state().borrow().clone();
    assert_eq!(s.epoch, 1, "the connection was re-established: {s:?}");
    let log = std::fs::read_to_string(nb.server.log_path()).unwrap_or_default();
    assert!(!log.contains("no response to inactivity probe"), "{log}");
}

/// Our own inactivity probe notices a peer that went silent.
#[tokio::test]
async fn probe_detects_silent_peer() {
    init_tracing();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        // Accept and read, never answer (a hung server).
        let mut held = Vec::new();
        for _ in 0..3 {
            if let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let c = Client::start(
        ClientConfig::new(&format!("tcp:127.0.0.1:{port}"))
            .unwrap()
            .inactivity_probe(Some(Duration::from_millis(200)))
            .backoff(Duration::from_secs(5), Duration::from_secs(5)),
    )
    .unwrap();
    c.wait_connected(Duration::from_secs(5)).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), c.echo(serde_json::json!([]))).await.unwrap();
    match r {
        Err(Error::Disconnected { reason, .. }) => assert!(reason.contains("inactivity probe"), "{reason}"),
        other => panic!("expected Disconnected, got {other:?}"),
    }
}

/// A reply larger than the configured maximum message size drops the connection with a clear error.
#[tokio::test]
async fn max_message_size() {
    let nb = start_nb(false);
    let c = Client::connect(ClientConfig::new(&nb.server.unix_remote()).unwrap().max_message_size(4096)).await.unwrap();
    assert_eq!(c.list_dbs().await.unwrap().len(), 2);
    match c.get_schema(NB).await {
        Err(Error::Disconnected { reason, .. }) => assert!(reason.contains("maximum size of 4096"), "{reason}"),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    // Reconnects and keeps working for small messages.
    c.wait_connected(Duration::from_secs(10)).await.unwrap();
    assert_eq!(c.list_dbs().await.unwrap().len(), 2);
}

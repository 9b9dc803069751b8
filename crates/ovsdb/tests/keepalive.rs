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
    c.wait_connected(LONG).await.unwrap();
    let r = tokio::time::timeout(LONG, c.echo(serde_json::json!([]))).await.unwrap();
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
    c.wait_connected(LONG).await.unwrap();
    assert_eq!(c.list_dbs().await.unwrap().len(), 2);
}

/// A client (300 ms probe, no reconnect) of a [`silent_tcp_server`], its remote, and the server's stop.
async fn client_of_silent_server() -> (Client, String, tokio::sync::oneshot::Sender<()>) {
    let (port, stop) = silent_tcp_server().await;
    let remote = format!("tcp:127.0.0.1:{port}");
    let c = Client::connect(ClientConfig::new(&remote).unwrap().inactivity_probe(Some(Duration::from_millis(300))).reconnect(false))
        .await
        .unwrap();
    (c, remote, stop)
}

/// A server that accepts connections and reads, but never answers (a hung server): held until
/// the returned sender is dropped.
async fn silent_tcp_server() -> (u16, tokio::sync::oneshot::Sender<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut held = Vec::new();
        tokio::select! {
            _ = async { loop { if let Ok((s, _)) = l.accept().await { held.push(s) } } } => {}
            _ = stopped => {}
        }
    });
    (port, stop)
}

/// The probe also bounds a request that is in flight when the server goes silent, the error names
/// the remote, and with reconnecting disabled later requests fail at once naming it too.
#[tokio::test]
async fn probe_fails_in_flight_requests_naming_the_remote() {
    init_tracing();
    let (c, remote, _stop) = client_of_silent_server().await;
    let t = std::time::Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(20), c.transact_unchecked(NB, vec![])).await.expect("the probe must end the request");
    println!("in-flight transact failed after {:?}", t.elapsed());
    let e = r.unwrap_err();
    match &e {
        Error::Disconnected { remote: r, method, reason } => {
            assert_eq!(r, &remote);
            assert_eq!(method, "transact");
            assert!(reason.contains("inactivity probe"), "{reason}");
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    assert!(e.to_string().contains(&remote), "{e}");
    let e = tokio::time::timeout(Duration::from_secs(5), c.echo(serde_json::json!([]))).await.unwrap().unwrap_err();
    match &e {
        Error::Closed { remote: r, reason } => {
            assert_eq!(r, &remote);
            assert!(reason.contains("inactivity probe"), "{reason}");
        }
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(e.to_string().contains(&remote), "{e}");
}

/// A server that answers `echo` and `get_schema` (so the inactivity probe is satisfied) but
/// never anything else: a stuck raft member, an overloaded server.
fn half_alive_server(l: tokio::net::UnixListener) -> tokio::task::JoinHandle<()> {
    use futures::{SinkExt, StreamExt};
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(daemons::schemas::NB).unwrap()).unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let schema = schema.clone();
            tokio::spawn(async move {
                let mut io = tokio_util::codec::Framed::new(s, ovsdb::JsonCodec::default());
                while let Some(Ok(frame)) = io.next().await {
                    let v: serde_json::Value = serde_json::from_slice(&frame).unwrap();
                    let result = match v["method"].as_str() {
                        Some("echo") => v["params"].clone(),
                        Some("get_schema") => schema.clone(),
                        _ => continue,
                    };
                    let reply = serde_json::json!({"id": v["id"], "result": result, "error": null});
                    if io.send(bytes::Bytes::from(serde_json::to_vec(&reply).unwrap())).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

/// `request_timeout` bounds every request where the probe cannot help (the server answers
/// echo); the error names the remote and the method, and `in_flight` shows what is waiting.
#[tokio::test]
async fn request_timeout_bounds_every_request() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("half-alive.sock");
    let server = half_alive_server(tokio::net::UnixListener::bind(&sock).unwrap());
    let remote = format!("unix:{}", sock.display());
    let c = Client::connect(
        ClientConfig::new(&remote).unwrap().inactivity_probe(Some(Duration::from_secs(1))).request_timeout(Some(Duration::from_secs(4))),
    )
    .await
    .unwrap();
    assert_eq!(c.echo(serde_json::json!(["x"])).await.unwrap(), serde_json::json!(["x"]));

    let c2 = c.clone();
    let txn = tokio::spawn(async move { c2.transact(NB, vec![ovsdb::Operation::select("Logical_Switch")]).await });
    poll(LONG, "the transact to show as in flight", || c.in_flight().iter().any(|r| r.method == "transact")).await;
    let e = tokio::time::timeout(Duration::from_secs(20), txn).await.expect("bounded").unwrap().unwrap_err();
    match &e {
        Error::RequestTimeout { remote: r, method, timeout } => {
            assert_eq!(r, &remote);
            assert_eq!(method, "transact");
            assert_eq!(*timeout, Duration::from_secs(4));
        }
        other => panic!("expected RequestTimeout, got {other:?}"),
    }
    assert!(e.to_string().contains(&remote), "{e}");
    assert!(c.in_flight().is_empty(), "{:?}", c.in_flight());

    // Monitor starts too; the connection itself stayed up all along (the probe was answered).
    let req = ovsdb::MonitorRequest::new(NB).table(ovsdb::MonitorTable::new("Logical_Switch"));
    let m = tokio::time::timeout(Duration::from_secs(20), c.monitor(req)).await.expect("bounded");
    match m {
        Err(Error::RequestTimeout { method, .. }) => assert_eq!(method, "monitor_cond_since"),
        Err(e) => panic!("expected RequestTimeout, got {e:?}"),
        Ok(_) => panic!("the monitor started on a server that never answers it"),
    }
    assert_eq!(c.state().borrow().epoch, 1, "{:?}", c.state().borrow());
    server.abort();
}

/// A server that stops reading: our sends stall once the socket buffers are full. The write is
/// bounded (twice the probe interval), so the request fails instead of hanging the connection task.
#[tokio::test]
async fn stalled_send_drops_the_connection() {
    init_tracing();
    let (c, remote, _stop) = client_of_silent_server().await;
    // 64 MiB of params: far more than the kernel buffers hold.
    let big = serde_json::to_vec(&serde_json::json!([NB, {"op": "comment", "comment": "x".repeat(64 << 20)}])).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(30), c.call_raw("transact", big)).await.expect("a stalled send must be bounded");
    match r {
        Err(Error::Disconnected { remote: r, reason, .. }) => {
            assert_eq!(r, remote);
            println!("reason: {reason}");
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
}

/// The real thing: ovsdb-server SIGSTOPped (connections still accepted by the kernel, nothing
/// answered). With the default configuration (what the controller and the node agent use: a
/// 5 s probe), the probe ends the in-flight request; after SIGCONT the client reconnects.
#[tokio::test]
async fn stopped_ovsdb_server() {
    let nb = start_nb(false);
    let remote = nb.server.unix_remote();
    let c = Client::connect(ClientConfig::new(&remote).unwrap()).await.unwrap();
    assert_eq!(c.config().inactivity_probe, Some(ovsdb::client::DEFAULT_INACTIVITY_PROBE));
    assert_eq!(ovsdb::client::DEFAULT_INACTIVITY_PROBE, Duration::from_secs(5));
    assert_eq!(c.list_dbs().await.unwrap().len(), 2);
    let pid = nb.server.pause().unwrap();
    struct Resume<'a>(&'a daemons::OvsdbServer);
    impl Drop for Resume<'_> {
        fn drop(&mut self) {
            let _ = self.0.resume();
        }
    }
    let guard = Resume(&nb.server);
    let t = std::time::Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(30), c.list_dbs()).await.expect("the probe must end the request");
    println!("ovsdb-server {pid} stopped: list_dbs failed after {:?}: {r:?}", t.elapsed());
    match r {
        Err(Error::Disconnected { remote: r, reason, .. }) => {
            assert_eq!(r, remote);
            assert!(reason.contains("inactivity probe"), "{reason}");
        }
        other => panic!("expected Disconnected, got {other:?}"),
    }
    drop(guard);
    c.wait_connected(LONG).await.unwrap();
    assert_eq!(c.list_dbs().await.unwrap().len(), 2);
}

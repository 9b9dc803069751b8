mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ovsdb::{Client, ClientConfig, Error, MonitorEvent, MonitorRequest, MonitorTable, Operation, Replica, ReplicaConfig, Row};

const T: Duration = Duration::from_secs(20);

fn quick(remote: &str) -> ClientConfig {
    ClientConfig::new(remote).unwrap().backoff(Duration::from_millis(20), Duration::from_millis(200))
}

/// A write whose reply is pending when the server dies fails with a clear error and is not re-sent.
#[tokio::test]
async fn in_flight_request_fails_and_is_not_resent() {
    let mut nb = start_nb(false);
    let c = Client::connect(quick(&nb.server.unix_remote())).await.unwrap();
    // `wait` blocks on the server until the timeout: the request is in flight while we kill it.
    let c2 = c.clone();
    let pending = tokio::spawn(async move {
        c2.transact(
            NB,
            vec![
                Operation::wait("Logical_Switch")
                    .where_eq("name", "never")
                    .columns(["name"])
                    .row(Row::new().with("name", "never"))
                    .timeout_ms(30000),
                Operation::insert("Address_Set").set("name", "in-flight"),
            ],
        )
        .await
    });
    // The request is in flight once the client has queued it, and the server has received it
    // once a later request on the same connection (requests are written in order) is answered:
    // `wait` does not block other requests, only its own transaction.
    poll(LONG, "the transaction to be in flight", || c.in_flight().iter().any(|r| r.method == "transact")).await;
    assert_eq!(tokio::time::timeout(LONG, c.echo(serde_json::json!(["after"]))).await.unwrap().unwrap(), serde_json::json!(["after"]));
    assert!(!pending.is_finished(), "the waiting transaction ended before the kill");
    nb.server.kill().unwrap();
    let r = tokio::time::timeout(LONG, pending).await.unwrap().unwrap();
    match r {
        Err(Error::Disconnected { method, .. }) => assert_eq!(method, "transact"),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    nb.server.restart().unwrap();
    c.wait_connected(LONG).await.unwrap();
    // Works again, and the in-flight transaction was not replayed: a replay would be sent on the
    // new connection before anything sent after reconnecting, and would commit as soon as the
    // switch it waits for exists. The server runs waiting transactions once the commit that
    // satisfies them is done, before it reads our next request.
    c.transact(NB, vec![Operation::insert("Logical_Switch").set("name", "never")]).await.unwrap();
    let r = c.transact(NB, vec![Operation::select("Address_Set").where_eq("name", "in-flight")]).await.unwrap();
    assert!(r[0].rows.as_ref().unwrap().is_empty(), "the in-flight transaction was replayed: {r:?}");
    assert!(c.state().borrow().epoch >= 2);
}

/// ovsdb-server is SIGKILLed and restarted while a replica monitors and a writer writes:
/// afterwards the replica holds exactly what the server holds, including every acknowledged write.
#[tokio::test]
async fn replica_survives_server_kill_and_restart() {
    let mut nb = start_nb(false);
    let remote = nb.server.unix_remote();
    let c = Client::connect(quick(&remote)).await.unwrap();
    let rep =
        Replica::start(&c, ReplicaConfig::new(NB).table(MonitorTable::new("Address_Set")).index("Address_Set", "name")).await.unwrap();
    let w = Client::connect(quick(&remote)).await.unwrap();
    let w_state = w.state();
    // The writer writes until told to stop; `acked` counts what it has written so far, so the
    // test moves on when enough has happened, however fast the machine is.
    let stop = Arc::new(AtomicBool::new(false));
    let acked_n = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, acked_n) = (stop.clone(), acked_n.clone());
        tokio::spawn(async move {
            let mut acked = BTreeSet::new();
            let mut i = 0;
            while !stop.load(SeqCst) {
                let name = format!("as{i}");
                i += 1;
                let r = tokio::time::timeout(LONG, w.transact(NB, vec![Operation::insert("Address_Set").set("name", name.as_str())])).await;
                if let Ok(Ok(_)) = r {
                    acked.insert(name);
                    acked_n.fetch_add(1, SeqCst);
                }
                // Pace the writes a little (not a synchronisation: nothing waits on it).
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            acked
        })
    };
    // Kill the server mid-stream: once writes were acknowledged and the replica has seen some.
    poll(LONG, "20 acknowledged writes before the kill", || acked_n.load(SeqCst) >= 20).await;
    rep.wait_until(LONG, |s| s.len("Address_Set") >= 10).await.unwrap();
    nb.server.kill().unwrap();
    // Both clients notice the loss before the server comes back.
    poll(LONG, "both clients to see the server gone", || !c.state().borrow().connected && !w_state.borrow().connected).await;
    rep.wait_until(LONG, |s| !s.connected()).await.unwrap();
    let before_restart = acked_n.load(SeqCst);
    nb.server.restart().unwrap();
    // The writer goes on through the restart until 20 more writes were acknowledged by the new server.
    poll(LONG, "20 acknowledged writes after the restart", || acked_n.load(SeqCst) >= before_restart + 20).await;
    stop.store(true, SeqCst);
    let acked = tokio::time::timeout(LONG, writer).await.unwrap().unwrap();
    assert!(acked.len() >= before_restart + 20, "{} writes acknowledged", acked.len());
    assert!(before_restart >= 20, "{before_restart} writes acknowledged before the kill");
    let r = c.transact(NB, vec![Operation::select("Address_Set").columns(["name"])]).await.unwrap();
    let on_server: BTreeSet<String> = r[0].rows.as_ref().unwrap().iter().map(|r| r.str("name").to_string()).collect();
    for a in &acked {
        assert!(on_server.contains(a), "acknowledged write {a} missing on the server");
    }
    let snap = rep.wait_until(LONG, |s| s.connected() && s.len("Address_Set") == on_server.len()).await.unwrap();
    let in_replica: BTreeSet<String> = snap.rows("Address_Set").map(|(_, r)| r.str("name").to_string()).collect();
    assert_eq!(in_replica, on_server);
}

/// With a clustered database the server keeps transaction history, so after a restart the monitor
/// resumes with monitor_cond_since (an Update with what was missed, not a Reset).
#[tokio::test]
async fn monitor_resumes_with_cond_since() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut cl = daemons::RaftCluster::start(dir.path(), std::path::Path::new(daemons::schemas::NB), NB, 1).unwrap();
    let remote = cl.member(0).unix_remote();
    let c = Client::connect(quick(&remote).database(NB)).await.unwrap();
    c.transact(NB, vec![Operation::insert("Address_Set").set("name", "before")]).await.unwrap();
    let mut m = c.monitor(MonitorRequest::new(NB).table(MonitorTable::new("Address_Set"))).await.unwrap();
    assert!(matches!(m.next().await, Some(Ok(MonitorEvent::Reset(u))) if u.len() == 1));
    c.transact(NB, vec![Operation::insert("Address_Set").set("name", "seen")]).await.unwrap();
    assert!(matches!(m.next().await, Some(Ok(MonitorEvent::Update(u))) if u.len() == 1));
    cl.kill(0).unwrap();
    assert!(matches!(tokio::time::timeout(T, m.next()).await.unwrap(), Some(Ok(MonitorEvent::Disconnected))));
    cl.restart(0).unwrap();
    let ev = tokio::time::timeout(T, m.next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(ev, MonitorEvent::Update(_)), "expected a resumed monitor, got {ev:?}");
    c.transact(NB, vec![Operation::insert("Address_Set").set("name", "after")]).await.unwrap();
    let ev = tokio::time::timeout(T, m.next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(&ev, MonitorEvent::Update(u) if u.len() == 1), "{ev:?}");
}

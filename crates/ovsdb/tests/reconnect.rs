mod common;

use std::collections::BTreeSet;
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
    tokio::time::sleep(Duration::from_millis(200)).await;
    nb.server.kill().unwrap();
    let r = tokio::time::timeout(T, pending).await.unwrap().unwrap();
    match r {
        Err(Error::Disconnected { method, .. }) => assert_eq!(method, "transact"),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    nb.server.restart().unwrap();
    c.wait_connected(T).await.unwrap();
    // Works again, and the in-flight transaction was not replayed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = c.transact(NB, vec![Operation::select("Address_Set").where_eq("name", "in-flight")]).await.unwrap();
    assert!(r[0].rows.as_ref().unwrap().is_empty());
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
    let writer = tokio::spawn(async move {
        let mut acked = BTreeSet::new();
        for i in 0..300 {
            let name = format!("as{i}");
            let r = tokio::time::timeout(
                Duration::from_secs(5),
                w.transact(NB, vec![Operation::insert("Address_Set").set("name", name.as_str())]),
            )
            .await;
            if let Ok(Ok(_)) = r {
                acked.insert(name);
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        acked
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    nb.server.kill().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    nb.server.restart().unwrap();
    let acked = tokio::time::timeout(Duration::from_secs(60), writer).await.unwrap().unwrap();
    assert!(acked.len() > 100, "only {} writes acknowledged", acked.len());
    let r = c.transact(NB, vec![Operation::select("Address_Set").columns(["name"])]).await.unwrap();
    let on_server: BTreeSet<String> = r[0].rows.as_ref().unwrap().iter().map(|r| r.str("name").to_string()).collect();
    for a in &acked {
        assert!(on_server.contains(a), "acknowledged write {a} missing on the server");
    }
    let snap = rep.wait_until(T, |s| s.connected() && s.len("Address_Set") == on_server.len()).await.unwrap();
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

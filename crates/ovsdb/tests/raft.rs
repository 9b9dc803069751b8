mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use daemons::RaftCluster;
use ovsdb::{Client, ClientConfig, Error, MonitorTable, Operation, Replica, ReplicaConfig};

/// A 3-member cluster whose leader is SIGKILLed while writes go on: the client fails over to
/// the new leader, every acknowledged write is present exactly once, and nothing is duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_during_writes() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut cl = RaftCluster::start(dir.path(), std::path::Path::new(daemons::schemas::NB), NB, 3).unwrap();
    let cfg = ClientConfig::new(&cl.remotes())
        .unwrap()
        .database(NB)
        .leader_only(true)
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
        .inactivity_probe(Some(Duration::from_secs(2)));
    let c = Client::connect(cfg).await.unwrap();
    let status = c.server_database(NB).await.unwrap();
    assert!(status.leader && status.connected && status.model == "clustered", "{status:?}");
    let leader = cl.leader().expect("a leader");
    let first_remote = c.state().borrow().remote.clone().unwrap();
    assert!(first_remote.ends_with(&cl.member(leader).tcp_port().unwrap().to_string()), "{first_remote} is not the leader");

    let rep = Replica::start(&c, ReplicaConfig::new(NB).table(MonitorTable::new("Logical_Switch")).index("Logical_Switch", "name"))
        .await
        .unwrap();

    // Four concurrent writers, so that some transactions are in flight when the leader dies. They
    // write until told to stop (some time after the kill), however fast the machine is.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let writer_client = c.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut ambiguous = Vec::new();
            let mut other_errors = Vec::new();
            let start = Instant::now();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && start.elapsed() < Duration::from_secs(60) {
                let name = format!("w{w}-{i}");
                // Logical_Switch.name has no index: a duplicate would show up as a second row.
                let r = tokio::time::timeout(
                    Duration::from_secs(15),
                    writer_client.transact(NB, vec![Operation::insert("Logical_Switch").set("name", name.as_str())]),
                )
                .await;
                match r {
                    Ok(Ok(_)) => acked.push((Instant::now(), name)),
                    Ok(Err(Error::Disconnected { .. })) | Err(_) => ambiguous.push(name),
                    Ok(Err(e)) => other_errors.push(format!("{name}: {e}")),
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (acked, ambiguous, other_errors, i)
        }));
    }

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed_at = Instant::now();
    cl.kill(leader).unwrap();
    // Let the writers go on through the failover and for a while on the new leader.
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut acked, mut ambiguous, mut other_errors, mut total) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for w in writers {
        let (a, b, o, t) = w.await.unwrap();
        acked.extend(a);
        ambiguous.extend(b);
        other_errors.extend(o);
        total += t;
    }
    eprintln!("writes: {total}, acked {}, ambiguous {}, other errors {other_errors:?}", acked.len(), ambiguous.len());
    assert!(other_errors.is_empty(), "{other_errors:?}");
    // Only writes in flight at the moment of the kill may fail (at most one per writer).
    assert!(ambiguous.len() <= 4, "too many failed writes: {ambiguous:?}");

    // The client moved to the new leader, and writes after the kill were acknowledged.
    let new_remote = c.state().borrow().remote.clone().unwrap();
    assert_ne!(new_remote, first_remote);
    let new_leader = cl.leader().expect("a new leader");
    assert_ne!(new_leader, leader);
    assert!(acked.len() + 4 >= total, "failover lost too many writes ({} of {total})", acked.len());
    let after_kill = acked.iter().filter(|(t, _)| *t > killed_at).count();
    assert!(after_kill > 0, "no write was acknowledged after the leader was killed");
    eprintln!("{after_kill} writes acknowledged after the kill");
    let failover = killed_at.elapsed();
    eprintln!("failover done within {failover:?}");

    // Count every name on the (new) leader.
    let r = c.transact(NB, vec![Operation::select("Logical_Switch").columns(["name"])]).await.unwrap();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for row in r[0].rows.as_ref().unwrap() {
        *counts.entry(row.str("name").to_string()).or_default() += 1;
    }
    for (_, name) in &acked {
        assert_eq!(counts.get(name), Some(&1), "acknowledged write {name} present {:?} times", counts.get(name));
    }
    for (name, n) in &counts {
        assert_eq!(*n, 1, "{name} duplicated");
    }
    // The replica (resumed on another member) agrees with the leader.
    let total_rows: usize = counts.values().sum();
    let snap = rep.wait_until(Duration::from_secs(20), |s| s.len("Logical_Switch") == total_rows).await.unwrap();
    for (_, name) in &acked {
        assert_eq!(snap.find("Logical_Switch", "name", name.as_str()).len(), 1, "{name} in replica");
    }

    // The killed member comes back and rejoins.
    cl.restart(leader).unwrap();
    cl.wait_ready(Duration::from_secs(30)).unwrap();
}

/// The leader leaves the cluster without dying: the client learns it from its `_Server` monitor,
/// moves to the new leader, and writes keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_leadership_change_without_disconnect() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let cl = RaftCluster::start(dir.path(), std::path::Path::new(daemons::schemas::NB), NB, 3).unwrap();
    let cfg = ClientConfig::new(&cl.remotes()).unwrap().database(NB).backoff(Duration::from_millis(50), Duration::from_millis(500));
    let c = Client::connect(cfg).await.unwrap();
    c.transact(NB, vec![Operation::insert("Logical_Switch").set("name", "before")]).await.unwrap();
    let leader = cl.leader().unwrap();
    let first = c.state().borrow().remote.clone().unwrap();
    let mut state = c.state();
    cl.member(leader).appctl(&["cluster/leave", NB]).unwrap();
    // The connection to the old leader is dropped by the client itself.
    tokio::time::timeout(Duration::from_secs(20), state.wait_for(|s| s.connected && s.remote.as_deref() != Some(first.as_str())))
        .await
        .expect("client did not move to another member")
        .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(20), c.transact(NB, vec![Operation::insert("Logical_Switch").set("name", "after")]))
        .await
        .unwrap()
        .unwrap();
    assert!(r[0].uuid.is_some());
    let status = c.server_database(NB).await.unwrap();
    assert!(status.leader, "{status:?}");
}

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
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
    // write until told to stop, and record when each acknowledged write was started: the test
    // moves on when enough has been acknowledged, however fast the machine is.
    let stop = Arc::new(AtomicBool::new(false));
    let acked_log: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..4 {
        let writer_client = c.clone();
        let (stop, acked_log) = (stop.clone(), acked_log.clone());
        writers.push(tokio::spawn(async move {
            let mut ambiguous = Vec::new();
            let mut other_errors = Vec::new();
            let mut i = 0;
            while !stop.load(SeqCst) {
                let name = format!("w{w}-{i}");
                let started = Instant::now();
                // Logical_Switch.name has no index: a duplicate would show up as a second row.
                let r = tokio::time::timeout(
                    LONG,
                    writer_client.transact(NB, vec![Operation::insert("Logical_Switch").set("name", name.as_str())]),
                )
                .await;
                match r {
                    Ok(Ok(_)) => acked_log.lock().unwrap().push((started, name)),
                    Ok(Err(Error::Disconnected { .. })) | Err(_) => ambiguous.push(name),
                    Ok(Err(e)) => other_errors.push(format!("{name}: {e}")),
                }
                i += 1;
                // Pace the writes a little (not a synchronisation: nothing waits on it).
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (ambiguous, other_errors, i)
        }));
    }

    // Kill the leader once writes are flowing.
    poll(LONG, "40 acknowledged writes before the kill", || acked_log.lock().unwrap().len() >= 40).await;
    let killed_at = Instant::now();
    cl.kill(leader).unwrap();
    // The client moves to the new leader...
    let mut state = c.state();
    tokio::time::timeout(LONG, state.wait_for(|s| s.connected && s.remote.as_ref().is_some_and(|r| r != &first_remote)))
        .await
        .expect("the client did not move to a new leader")
        .unwrap();
    let moved_at = Instant::now();
    eprintln!("failover done within {:?}", moved_at - killed_at);
    // ... and the writers go on there until 40 writes started after the move were acknowledged
    // (those cannot have gone to the killed leader).
    let after_move = |log: &Vec<(Instant, String)>| log.iter().filter(|(t, _)| *t > moved_at).count();
    poll(LONG, "40 writes acknowledged by the new leader", || after_move(&acked_log.lock().unwrap()) >= 40).await;
    stop.store(true, SeqCst);
    let (mut ambiguous, mut other_errors, mut total) = (Vec::new(), Vec::new(), 0);
    for w in writers {
        let (b, o, t) = tokio::time::timeout(LONG, w).await.expect("a writer did not stop").unwrap();
        ambiguous.extend(b);
        other_errors.extend(o);
        total += t;
    }
    let acked = std::mem::take(&mut *acked_log.lock().unwrap());
    eprintln!("writes: {total}, acked {}, ambiguous {}, other errors {other_errors:?}", acked.len(), ambiguous.len());
    assert!(other_errors.is_empty(), "{other_errors:?}");
    // Only writes in flight at the moment of the kill may fail (at most one per writer).
    assert!(ambiguous.len() <= 4, "too many failed writes: {ambiguous:?}");
    assert!(acked.len() + 4 >= total, "failover lost too many writes ({} of {total})", acked.len());
    assert!(after_move(&acked) >= 40);

    // The client is on the new leader.
    let new_remote = c.state().borrow().remote.clone().unwrap();
    assert_ne!(new_remote, first_remote);
    let new_leader = cl.leader().expect("a new leader");
    assert_ne!(new_leader, leader);
    assert!(new_remote.ends_with(&format!(":{}", cl.member(new_leader).tcp_port().unwrap())), "{new_remote} is not the new leader");

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
    let snap = rep.wait_until(LONG, |s| s.len("Logical_Switch") == total_rows).await.unwrap();
    for (_, name) in &acked {
        assert_eq!(snap.find("Logical_Switch", "name", name.as_str()).len(), 1, "{name} in replica");
    }

    // The killed member comes back and rejoins.
    cl.restart(leader).unwrap();
    cl.wait_ready(LONG).unwrap();
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
    tokio::time::timeout(LONG, state.wait_for(|s| s.connected && s.remote.as_deref() != Some(first.as_str())))
        .await
        .expect("client did not move to another member")
        .unwrap();
    let r =
        tokio::time::timeout(LONG, c.transact(NB, vec![Operation::insert("Logical_Switch").set("name", "after")])).await.unwrap().unwrap();
    assert!(r[0].uuid.is_some());
    let status = c.server_database(NB).await.unwrap();
    assert!(status.leader, "{status:?}");
}

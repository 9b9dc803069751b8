//! Scale: initial monitor sync of 100,000 rows, and memory. Meaningful in release builds:
//! `cargo test -p ovsdb --release --test perf -- --nocapture`. In debug builds the same code
//! runs with fewer rows and without time limits.
mod common;

use std::time::Instant;

use common::*;
use ovsdb::{Datum, MonitorTable, Operation, Replica, ReplicaConfig};

/// CPU time (user + system) of this process, in seconds.
fn cpu_s() -> f64 {
    cpu_of("self")
}

fn cpu_of(pid: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = 100.0;
    (f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)) / tick
}

fn rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_sync_100k_rows() {
    let release = !cfg!(debug_assertions);
    let n: usize = if release { 100_000 } else { 10_000 };
    let nb = start_nb(false);
    let c = connect(&nb.server.unix_remote()).await;
    let t = Instant::now();
    for chunk in 0..(n / 10_000) {
        let ops: Vec<Operation> = (0..10_000)
            .map(|i| {
                let k = chunk * 10_000 + i;
                Operation::insert("Address_Set")
                    .set("name", format!("as-{k}"))
                    .set("addresses", Datum::set([format!("10.{}.{}.{}", k >> 16, (k >> 8) & 255, k & 255)]))
                    .set("external_ids", Datum::map([("owner", format!("pod-{k}"))]))
            })
            .collect();
        c.transact(NB, ops).await.unwrap();
    }
    eprintln!("inserted {n} rows in {:?}", t.elapsed());

    let c2 = connect(&nb.server.unix_remote()).await;
    let rss0 = rss_mb();
    let cpu0 = cpu_s();
    let server_pid = nb.server.pid().unwrap().to_string();
    let scpu0 = cpu_of(&server_pid);
    let t = Instant::now();
    let rep = Replica::start(
        &c2,
        ReplicaConfig::new(NB).table(MonitorTable::new("Address_Set")).index("Address_Set", "name").index_map_key(
            "Address_Set",
            "external_ids",
            "owner",
        ),
    )
    .await
    .unwrap();
    let took = t.elapsed();
    let cpu = cpu_s() - cpu0;
    let scpu = cpu_of(&server_pid) - scpu0;
    let rss1 = rss_mb();
    let snap = rep.snapshot();
    assert_eq!(snap.len("Address_Set"), n);
    assert_eq!(snap.find_one("Address_Set", "name", "as-777").unwrap().1.map_str("external_ids", "owner"), Some("pod-777"));
    assert_eq!(snap.find_map("Address_Set", "external_ids", "owner", "pod-9999").len(), 1);
    eprintln!("initial sync of {n} rows: {took:?} wall, {cpu:.2} s CPU in this process, {scpu:.2} s CPU in ovsdb-server, RSS {rss0:.0} MB -> {rss1:.0} MB");
    if release {
        // Speed is bench/ovsdb's business; memory is a property of the replica.
        assert!(rss1 < 200.0, "RSS {rss1} MB");
    }
    // A round trip after the load is still quick.
    let t = Instant::now();
    for _ in 0..100 {
        c2.transact(NB, vec![Operation::select("Address_Set").where_eq("name", "as-1").columns(["name"])]).await.unwrap();
    }
    eprintln!("select by name round trip with {n} rows: {:?}", t.elapsed() / 100);
}

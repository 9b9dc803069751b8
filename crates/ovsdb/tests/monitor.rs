mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use ovsdb::{
    Condition, Datum, LockEvent, MonitorEvent, MonitorMethod, MonitorRequest, MonitorTable, Mutation, Operation, Replica, ReplicaConfig,
    RowUpdate, Where,
};

/// Generous: only reached when something is broken.
const T: Duration = LONG;

async fn next_event(m: &mut ovsdb::Monitor) -> MonitorEvent {
    tokio::time::timeout(T, m.next()).await.expect("monitor event timeout").expect("monitor ended").expect("monitor error")
}

#[tokio::test]
async fn monitor_insert_modify_delete_all_methods() {
    let nb = start_nb(false);
    let c = connect(&nb.server.unix_remote()).await;
    c.transact(NB, vec![Operation::insert("Logical_Switch").set("name", "pre")]).await.unwrap();
    for method in [MonitorMethod::Monitor, MonitorMethod::Cond, MonitorMethod::CondSince] {
        let mut m = c
            .monitor(MonitorRequest::new(NB).method(method).table(MonitorTable::new("Logical_Switch").columns([
                "name",
                "external_ids",
                "other_config",
            ])))
            .await
            .unwrap();
        let MonitorEvent::Reset(init) = next_event(&mut m).await else { panic!("expected reset") };
        assert!(
            init.tables[0].rows.iter().any(|(_, u)| matches!(u, RowUpdate::Insert(r) if r.str("name") == "pre")),
            "{method:?}: {init:?}"
        );
        let name = format!("ls-{method:?}");
        let r = c.transact(NB, vec![Operation::insert("Logical_Switch").set("name", name.as_str())]).await.unwrap();
        let u = r[0].uuid.unwrap();
        let MonitorEvent::Update(up) = next_event(&mut m).await else { panic!() };
        assert_eq!(up.tables[0].rows[0].0, u);
        assert!(matches!(&up.tables[0].rows[0].1, RowUpdate::Insert(r) if r.str("name") == name), "{up:?}");
        c.transact(
            NB,
            vec![Operation::mutate("Logical_Switch", Where::uuid(u)).mutation(Mutation::insert("external_ids", Datum::map([("a", "b")])))],
        )
        .await
        .unwrap();
        let MonitorEvent::Update(up) = next_event(&mut m).await else { panic!() };
        match &up.tables[0].rows[0].1 {
            RowUpdate::Modify(d) => assert_eq!(d.get("external_ids"), Some(&Datum::map([("a", "b")]))),
            RowUpdate::Replace(r) => assert_eq!(r.map_str("external_ids", "a"), Some("b")),
            other => panic!("{other:?}"),
        }
        c.transact(NB, vec![Operation::delete("Logical_Switch", Where::uuid(u))]).await.unwrap();
        let MonitorEvent::Update(up) = next_event(&mut m).await else { panic!() };
        assert_eq!(up.tables[0].rows[0], (u, RowUpdate::Delete));
        m.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn monitor_conditions_and_change() {
    let nb = start_nb(false);
    let c = connect(&nb.server.unix_remote()).await;
    c.transact(NB, vec![Operation::insert("Logical_Switch").set("name", "a"), Operation::insert("Logical_Switch").set("name", "b")])
        .await
        .unwrap();
    let mut m =
        c.monitor(MonitorRequest::new(NB).table(MonitorTable::new("Logical_Switch").condition(Condition::eq("name", "a")))).await.unwrap();
    let MonitorEvent::Reset(init) = next_event(&mut m).await else { panic!() };
    assert_eq!(init.len(), 1);
    let mut conds = BTreeMap::new();
    conds.insert("Logical_Switch".to_string(), vec![Condition::eq("name", "b")]);
    m.change_conditions(conds).await.unwrap();
    // b appears, a disappears
    let MonitorEvent::Update(up) = next_event(&mut m).await else { panic!() };
    let ins = up.tables[0].rows.iter().filter(|(_, u)| matches!(u, RowUpdate::Insert(r) if r.str("name") == "b")).count();
    let del = up.tables[0].rows.iter().filter(|(_, u)| matches!(u, RowUpdate::Delete)).count();
    assert_eq!((ins, del), (1, 1), "{up:?}");
    // changes to a are not reported any more, to b they are
    c.transact(
        NB,
        vec![
            Operation::update("Logical_Switch", Where::eq("name", "a")).set("external_ids", Datum::map([("x", "1")])),
            Operation::update("Logical_Switch", Where::eq("name", "b")).set("external_ids", Datum::map([("y", "2")])),
        ],
    )
    .await
    .unwrap();
    let MonitorEvent::Update(up) = next_event(&mut m).await else { panic!() };
    assert_eq!(up.len(), 1);
    assert!(matches!(&up.tables[0].rows[0].1, RowUpdate::Modify(d) if d.get("external_ids").unwrap().get_str("y") == Some("2")), "{up:?}");
}

#[tokio::test]
async fn replica_indexes_and_wait() {
    let nb = start_nb(false);
    let c = connect(&nb.server.unix_remote()).await;
    c.transact(NB, vec![Operation::insert("Logical_Switch").set("name", "ls0")]).await.unwrap();
    let rep = Replica::start(
        &c,
        ReplicaConfig::new(NB)
            .table(MonitorTable::new("Logical_Switch"))
            .table(MonitorTable::new("Logical_Switch_Port"))
            .index("Logical_Switch", "name")
            .index_map_key("Logical_Switch_Port", "external_ids", "pod"),
    )
    .await
    .unwrap();
    let s0 = rep.snapshot();
    assert_eq!(s0.len("Logical_Switch"), 1);
    assert!(s0.find_one("Logical_Switch", "name", "ls0").is_some());

    let r = c
        .transact(
            NB,
            vec![
                Operation::insert("Logical_Switch_Port")
                    .set("name", "p1")
                    .set("external_ids", Datum::map([("pod", "ns/a")]))
                    .uuid_name("p1"),
                Operation::insert("Logical_Switch_Port")
                    .set("name", "p2")
                    .set("external_ids", Datum::map([("pod", "ns/b")]))
                    .uuid_name("p2"),
                Operation::mutate("Logical_Switch", Where::eq("name", "ls0")).mutation(Mutation::insert("ports", Datum::named_uuid("p1"))),
                Operation::mutate("Logical_Switch", Where::eq("name", "ls0")).mutation(Mutation::insert("ports", Datum::named_uuid("p2"))),
            ],
        )
        .await
        .unwrap();
    let p1 = r[0].uuid.unwrap();
    let s = rep.wait_until(T, |s| s.find_map("Logical_Switch_Port", "external_ids", "pod", "ns/b").len() == 1).await.unwrap();
    assert_eq!(s.find_map("Logical_Switch_Port", "external_ids", "pod", "ns/a")[0].0, p1);
    let (_, ls) = s.find_one("Logical_Switch", "name", "ls0").unwrap();
    assert_eq!(ls.get("ports").unwrap().len(), 2);
    // the old snapshot is unchanged
    assert_eq!(s0.len("Logical_Switch_Port"), 0);
    assert!(s.version() > s0.version());

    // modify via diff: rename and change the indexed map value
    c.transact(NB, vec![Operation::update("Logical_Switch_Port", Where::uuid(p1)).set("external_ids", Datum::map([("pod", "ns/c")]))])
        .await
        .unwrap();
    let s = rep.wait_until(T, |s| s.find_map("Logical_Switch_Port", "external_ids", "pod", "ns/c").len() == 1).await.unwrap();
    assert!(s.find_map("Logical_Switch_Port", "external_ids", "pod", "ns/a").is_empty());
    // remove a port from the set column
    c.transact(
        NB,
        vec![Operation::mutate("Logical_Switch", Where::eq("name", "ls0")).mutation(Mutation::delete("ports", Datum::uuid(p1)))],
    )
    .await
    .unwrap();
    let s = rep.wait_until(T, |s| s.len("Logical_Switch_Port") == 1).await.unwrap();
    assert_eq!(s.find_one("Logical_Switch", "name", "ls0").unwrap().1.get("ports").unwrap().len(), 1);
    // rename the switch: index follows
    c.transact(NB, vec![Operation::update("Logical_Switch", Where::eq("name", "ls0")).set("name", "ls9")]).await.unwrap();
    let s = rep.wait_until(T, |s| s.find_one("Logical_Switch", "name", "ls9").is_some()).await.unwrap();
    assert!(s.find_one("Logical_Switch", "name", "ls0").is_none());
    // watch channel wakes on change
    let mut w = rep.subscribe();
    w.borrow_and_update();
    c.transact(NB, vec![Operation::delete("Logical_Switch", Where::eq("name", "ls9"))]).await.unwrap();
    tokio::time::timeout(T, w.changed()).await.unwrap().unwrap();
    let s = rep.wait_until(T, |s| s.len("Logical_Switch") == 0).await.unwrap();
    assert_eq!(s.len("Logical_Switch_Port"), 0);
    assert!(rep.wait_until(Duration::from_millis(100), |s| s.len("Logical_Switch") == 5).await.is_err());
}

#[tokio::test]
async fn locks() {
    let nb = start_nb(false);
    let a = connect(&nb.server.unix_remote()).await;
    let b = connect(&nb.server.unix_remote()).await;
    assert!(a.lock("leader").await.unwrap());
    let mut bev = b.lock_events();
    let mut aev = a.lock_events();
    assert!(!b.lock("leader").await.unwrap());
    a.transact(NB, vec![Operation::assert_lock("leader"), Operation::insert("Logical_Switch").set("name", "x")]).await.unwrap();
    let e = b.transact(NB, vec![Operation::assert_lock("leader")]).await.unwrap_err();
    assert_eq!(e.txn().unwrap().error, "not owner");
    a.unlock("leader").await.unwrap();
    let ev = tokio::time::timeout(T, bev.recv()).await.unwrap().unwrap();
    assert_eq!(ev, LockEvent::Locked("leader".into()));
    assert!(a.steal("leader").await.unwrap());
    let ev = tokio::time::timeout(T, bev.recv()).await.unwrap().unwrap();
    assert_eq!(ev, LockEvent::Stolen("leader".into()));
    let ev = tokio::time::timeout(T, aev.recv()).await.unwrap().unwrap();
    assert_eq!(ev, LockEvent::Locked("leader".into()));
}

/// ovsdb-server sends update2 "modify" for a column of at most one element (an optional column) as
/// the new value, not as a set difference: the replica must follow [] -> false -> true -> [].
#[tokio::test]
async fn replica_follows_optional_columns() {
    let nb = start_nb(false);
    let c = connect(&nb.server.unix_remote()).await;
    c.transact(NB, vec![Operation::insert("Logical_Switch").set("name", "ls0")]).await.unwrap();
    let rep = Replica::start(&c, ReplicaConfig::new(NB).table(MonitorTable::new("Logical_Switch_Port"))).await.unwrap();
    c.transact(
        NB,
        vec![
            Operation::insert("Logical_Switch_Port").set("name", "p1").uuid_name("p"),
            Operation::mutate("Logical_Switch", Where::eq("name", "ls0")).mutation(Mutation::insert("ports", Datum::named_uuid("p"))),
        ],
    )
    .await
    .unwrap();
    // An absent column reads as its default (the empty set).
    let enabled = |s: &ovsdb::replica::Snapshot| {
        s.find_one("Logical_Switch_Port", "name", "p1").map(|(_, r)| r.get("enabled").cloned().unwrap_or_default())
    };
    for value in [Datum::atom(false), Datum::atom(true), Datum::empty_set(), Datum::atom(true)] {
        c.transact(NB, vec![Operation::update("Logical_Switch_Port", Where::eq("name", "p1")).set("enabled", value.clone())])
            .await
            .unwrap();
        let got = rep.wait_until(LONG, |s| enabled(s).as_ref() == Some(&value)).await;
        assert!(got.is_ok(), "replica has enabled={:?}, server has {value}", enabled(&rep.snapshot()));
    }
}

/// A monitor asking for all columns (none listed) gets every schema column of the rows and not
/// the server's `_version`, which ovsdb-server adds when a request lists no columns.
#[tokio::test]
async fn all_columns_means_the_schema_columns() {
    let nb = start_nb(false);
    let c = connect(&nb.server.unix_remote()).await;
    c.transact(NB, vec![Operation::insert("Logical_Switch").set("name", "all").set("external_ids", Datum::map([("k", "v")]))])
        .await
        .unwrap();
    for method in [MonitorMethod::Monitor, MonitorMethod::Cond, MonitorMethod::CondSince] {
        let mut m = c.monitor(MonitorRequest::new(NB).method(method).table(MonitorTable::new("Logical_Switch"))).await.unwrap();
        let MonitorEvent::Reset(init) = next_event(&mut m).await else { panic!("expected reset") };
        let row = init.tables[0]
            .rows
            .iter()
            .find_map(|(_, u)| match u {
                RowUpdate::Insert(r) | RowUpdate::Replace(r) => Some(r.clone()),
                _ => None,
            })
            .expect("the row");
        assert_eq!(row.str("name"), "all", "{method:?}");
        assert_eq!(row.map_str("external_ids", "k"), Some("v"), "{method:?}");
        assert!(row.get("_version").is_none(), "{method:?}: _version sent: {row:?}");
        m.cancel().await.unwrap();
    }
}

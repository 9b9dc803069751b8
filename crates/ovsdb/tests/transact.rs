mod common;

use common::*;
use ovsdb::{Condition, Datum, Error, Function, Mutation, Operation, Row, Uuid, WaitUntil, Where};
use serde_json::json;

#[tokio::test]
async fn basics_unix_and_tcp() {
    let nb = start_nb(true);
    for remote in [nb.server.unix_remote(), nb.server.tcp_remote().unwrap()] {
        let c = connect(&remote).await;
        let dbs = c.list_dbs().await.unwrap();
        assert!(dbs.contains(&NB.to_string()) && dbs.contains(&"_Server".to_string()), "{dbs:?}");
        let s = c.get_schema(NB).await.unwrap();
        assert_eq!(s.name, NB);
        assert!(s.tables.contains_key("Logical_Switch_Port"));
        assert_eq!(c.echo(json!(["x", 1])).await.unwrap(), json!(["x", 1]));
        assert!(matches!(c.get_schema("Nope").await, Err(Error::UnknownDatabase(_))));
    }
}

#[tokio::test]
async fn all_operations() {
    let nb = start_nb(false);
    let c = connect(&nb.server.unix_remote()).await;
    // insert with uuid-name, referenced from a mutate in the same transaction.
    let r = c
        .transact(
            NB,
            vec![
                Operation::insert("Logical_Switch").set("name", "ls1").set("external_ids", Datum::map([("k8s", "net1")])).uuid_name("ls"),
                Operation::insert("Logical_Switch_Port")
                    .set("name", "p1")
                    .set("addresses", Datum::set(["00:00:00:00:00:01 10.0.0.1"]))
                    .uuid_name("p1"),
                Operation::insert("Logical_Switch_Port").set("name", "p2").set("tag_request", 10).uuid_name("p2"),
                Operation::mutate("Logical_Switch", Where::eq("_uuid", Datum::named_uuid("ls"))).mutation(Mutation::insert(
                    "ports",
                    Datum::set([ovsdb::Atom::NamedUuid("p1".into()), ovsdb::Atom::NamedUuid("p2".into())]),
                )),
                Operation::comment("kubetron test"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.len(), 5);
    let ls = r[0].uuid.unwrap();
    let p1 = r[1].uuid.unwrap();
    assert_eq!(r[3].count, Some(1));

    // select
    let r = c
        .transact(NB, vec![Operation::select("Logical_Switch").where_eq("name", "ls1").columns(["_uuid", "name", "ports", "external_ids"])])
        .await
        .unwrap();
    let rows = r[0].rows.as_ref().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].uuid("_uuid"), Some(ls));
    assert_eq!(rows[0].get("ports").unwrap().len(), 2);
    assert_eq!(rows[0].map_str("external_ids", "k8s"), Some("net1"));

    // update
    let r = c.transact(NB, vec![Operation::update("Logical_Switch_Port", Where::uuid(p1)).set("enabled", false)]).await.unwrap();
    assert_eq!(r[0].count, Some(1));
    // mutate: arithmetic and map insert/delete
    let r = c
        .transact(
            NB,
            vec![
                Operation::mutate("Logical_Switch_Port", Where::eq("name", "p2")).mutation(Mutation::add("tag_request", 5)),
                Operation::mutate("Logical_Switch", Where::eq("name", "ls1"))
                    .mutation(Mutation::insert("external_ids", Datum::map([("a", "1")]))),
                Operation::mutate("Logical_Switch", Where::eq("name", "ls1"))
                    .mutation(Mutation::delete("external_ids", Datum::set(["k8s"]))),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.iter().map(|r| r.count).collect::<Vec<_>>(), vec![Some(1), Some(1), Some(1)]);
    let r = c
        .transact(
            NB,
            vec![
                Operation::select("Logical_Switch_Port").where_eq("name", "p2").columns(["tag_request"]),
                Operation::select("Logical_Switch").where_eq("name", "ls1").columns(["external_ids"]),
                Operation::select("Logical_Switch_Port").filter(Condition::new("tag_request", Function::Gt, 14)).columns(["name"]),
                Operation::select("Logical_Switch_Port").filter(Condition::includes("addresses", "00:00:00:00:00:01 10.0.0.1")),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r[0].rows.as_ref().unwrap()[0].i64("tag_request"), Some(15));
    assert_eq!(r[1].rows.as_ref().unwrap()[0].get("external_ids").unwrap(), &Datum::map([("a", "1")]));
    assert_eq!(r[2].rows.as_ref().unwrap().len(), 1);
    assert_eq!(r[3].rows.as_ref().unwrap()[0].str("name"), "p1");

    // wait: succeeds when rows match, times out with an error otherwise
    let r = c
        .transact(
            NB,
            vec![Operation::wait("Logical_Switch")
                .where_eq("name", "ls1")
                .columns(["name"])
                .row(Row::new().with("name", "ls1"))
                .timeout_ms(0)],
        )
        .await;
    assert!(r.is_ok(), "{r:?}");
    let e = c
        .transact(
            NB,
            vec![Operation::wait("Logical_Switch")
                .where_eq("name", "ls1")
                .columns(["name"])
                .until(WaitUntil::NotEqual)
                .row(Row::new().with("name", "ls1"))
                .timeout_ms(0)],
        )
        .await
        .unwrap_err();
    assert_eq!(e.txn().unwrap().error, "timed out", "{e}");

    // commit durable, abort, assert without lock
    c.transact(NB, vec![Operation::commit(true)]).await.unwrap();
    let e = c.transact(NB, vec![Operation::insert("Logical_Switch").set("name", "never"), Operation::abort()]).await.unwrap_err();
    assert_eq!(e.txn().unwrap().error, "aborted", "{e}");
    assert_eq!(e.txn().unwrap().index, Some(1));
    let r = c.transact(NB, vec![Operation::select("Logical_Switch").where_eq("name", "never")]).await.unwrap();
    assert!(r[0].rows.as_ref().unwrap().is_empty());
    let e = c.transact(NB, vec![Operation::assert_lock("nolock")]).await.unwrap_err();
    assert_eq!(e.txn().unwrap().error, "not owner", "{e}");

    // delete: removing the switch garbage-collects its ports (non-root table)
    let r = c.transact(NB, vec![Operation::delete("Logical_Switch", Where::uuid(ls))]).await.unwrap();
    assert_eq!(r[0].count, Some(1));
    let r = c.transact(NB, vec![Operation::select("Logical_Switch_Port")]).await.unwrap();
    assert!(r[0].rows.as_ref().unwrap().is_empty());

    // insert with a chosen uuid
    let u = Uuid::new_v4();
    let r = c.transact(NB, vec![Operation::insert("Logical_Switch").set("name", "fixed").with_uuid(u)]).await.unwrap();
    assert_eq!(r[0].uuid, Some(u));
}

#[tokio::test]
async fn error_replies_from_server() {
    let nb = start_nb(false);
    let c = connect(&nb.server.unix_remote()).await;
    // constraint violation (bypassing the client-side check)
    let e = c
        .transact_unchecked(NB, vec![Operation::insert("Logical_Switch_Port").set("name", "p").set("tag_request", 5000)])
        .await
        .unwrap_err();
    let t = e.txn().expect("txn error");
    assert_eq!(t.error, "constraint violation", "{e}");
    assert!(t.details.as_deref().unwrap_or("").contains("4095"), "{e}");
    // referential integrity: a strong reference to a row that does not exist
    let e = c
        .transact(NB, vec![Operation::insert("Logical_Switch").set("name", "x").set("ports", Datum::uuid(Uuid::new_v4()))])
        .await
        .unwrap_err();
    let t = e.txn().expect("txn error");
    assert_eq!(t.error, "referential integrity violation", "{e}");
    assert_eq!(t.index, None);
    // wrong type
    let e = c.transact_unchecked(NB, vec![Operation::insert("Logical_Switch").set("name", 42)]).await.unwrap_err();
    assert_eq!(e.txn().unwrap().error, "syntax error", "{e}");
    // unknown table
    let e = c.transact_unchecked(NB, vec![Operation::insert("No_Such_Table")]).await.unwrap_err();
    // ovsdb-server reports these as a syntax error whose details name the table
    let t = e.txn().unwrap();
    assert_eq!(t.error, "syntax error", "{e}");
    assert!(t.details.as_deref().unwrap().contains("No_Such_Table"), "{e}");
    // unknown column
    let e = c.transact_unchecked(NB, vec![Operation::insert("Logical_Switch").set("no_such_column", 1)]).await.unwrap_err();
    let t = e.txn().unwrap();
    assert!(t.error == "unknown column" || t.error == "syntax error", "{e}");
    assert!(t.details.as_deref().unwrap().contains("no_such_column"), "{e}");
    // duplicate index value (Address_Set name is indexed; it is a root table)
    let e = c
        .transact(NB, vec![Operation::insert("Address_Set").set("name", "dup"), Operation::insert("Address_Set").set("name", "dup")])
        .await
        .unwrap_err();
    assert_eq!(e.txn().unwrap().error, "constraint violation", "{e}");
    // unknown database
    let e = c.transact_unchecked("Nope", vec![Operation::comment("x")]).await.unwrap_err();
    assert!(matches!(e, Error::Rpc { .. }), "{e}");
    // the client-side check catches these before sending, naming table/column/value
    for (op, needle) in [
        (Operation::insert("Logical_Switch_Port").set("name", "p").set("tag_request", 5000), "tag_request"),
        (Operation::insert("Logical_Switch").set("name", 42), "expected string"),
        (Operation::insert("No_Such_Table"), "no table"),
        (Operation::insert("Logical_Switch").set("no_such_column", 1), "no column"),
        (Operation::insert("ACL").set("action", "bogus"), "allowed values"),
        (Operation::update("Logical_Switch", Where::eq("nope", 1)), "no column"),
    ] {
        match c.transact(NB, vec![op]).await {
            Err(Error::Check(ce)) => assert!(ce.to_string().contains(needle), "{ce} lacks {needle}"),
            other => panic!("expected a check error containing {needle}, got {other:?}"),
        }
    }
    // the connection is still fine
    assert_eq!(c.list_dbs().await.unwrap().len(), 2);
}

/// Many sequential transactions on one connection each get their own, right answer (the
/// request ids are matched, nothing is mixed up or dropped).
#[tokio::test]
async fn many_sequential_round_trips() {
    let nb = start_nb(false);
    let c = connect(&nb.server.unix_remote()).await;
    for i in 0..20 {
        c.transact(NB, vec![Operation::insert("Logical_Switch").set("name", format!("rt{i}").as_str())]).await.unwrap();
    }
    for n in 0..300 {
        let name = format!("rt{}", n % 20);
        let r = c.transact(NB, vec![Operation::select("Logical_Switch").where_eq("name", name.as_str()).columns(["name"])]).await.unwrap();
        let rows = r[0].rows.as_ref().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].str("name"), name);
    }
}

/// Per-port `ports` mutations of a few switches, sent folded (one mutation per switch): the server
/// ends up with every port on its switch, and the caller gets one result per operation it wrote;
/// an error after folded operations is reported at the caller's index.
#[tokio::test]
async fn folded_set_mutations_keep_results_and_effects() {
    let nb = start_nb(false);
    let c = connect(&nb.server.unix_remote()).await;
    let mut switches = Vec::new();
    for i in 0..3 {
        let r = c.transact(NB, vec![Operation::insert("Logical_Switch").set("name", format!("fold{i}").as_str())]).await.unwrap();
        switches.push(r[0].uuid.unwrap());
    }
    let mut ops = Vec::new();
    for j in 0..300 {
        let name = format!("fp{j}");
        ops.push(Operation::insert("Logical_Switch_Port").set("name", name.as_str()).uuid_name(&name));
        ops.push(
            Operation::mutate("Logical_Switch", Where::uuid(switches[j % 3])).mutation(Mutation::insert("ports", Datum::named_uuid(&name))),
        );
    }
    let r = c.transact(NB, ops).await.unwrap();
    assert_eq!(r.len(), 600);
    for (j, pair) in r.chunks(2).enumerate() {
        assert!(pair[0].uuid.is_some(), "insert {j} has its uuid");
        assert_eq!(pair[1].count, Some(1), "mutate {j} matched its switch");
    }
    let sel = c.transact(NB, vec![Operation::select("Logical_Switch").where_eq("name", "fold1").columns(["ports"])]).await.unwrap();
    let ports = sel[0].rows.as_ref().unwrap()[0].get("ports").unwrap().len();
    assert_eq!(ports, 100);
    // The inserted rows' uuids are the ones now in the sets.
    let all: Vec<Uuid> = r.iter().filter_map(|x| x.uuid).collect();
    assert_eq!(all.len(), 300);

    // A failing wait after folded mutations: reported at the caller's index (4), nothing applied.
    let mut ops = Vec::new();
    for j in 0..2 {
        let name = format!("fq{j}");
        ops.push(Operation::insert("Logical_Switch_Port").set("name", name.as_str()).uuid_name(&name));
        ops.push(
            Operation::mutate("Logical_Switch", Where::uuid(switches[0])).mutation(Mutation::insert("ports", Datum::named_uuid(&name))),
        );
    }
    ops.push(Operation::wait("Logical_Switch").where_eq("name", "fold0").columns(["name"]).timeout_ms(0));
    match c.transact(NB, ops).await {
        Err(Error::Transaction(t)) => assert_eq!(t.index, Some(4), "{t}"),
        other => panic!("expected the wait to fail: {other:?}"),
    }
    let sel = c.transact(NB, vec![Operation::select("Logical_Switch").where_eq("name", "fold0").columns(["ports"])]).await.unwrap();
    assert_eq!(sel[0].rows.as_ref().unwrap()[0].get("ports").unwrap().len(), 100);
}

/// `Where::every_row()` reaches every row on the server; a `where` restricting nothing otherwise
/// (only a `true` constant) is refused before sending, checked or not, and nothing is changed.
#[tokio::test]
async fn every_row_is_explicit_and_an_unbounded_where_is_refused() {
    let nb = start_nb(false);
    let c = connect(&nb.server.unix_remote()).await;
    let names = ["ew0", "ew1", "ew2"];
    c.transact(NB, names.iter().map(|n| Operation::insert("Address_Set").set("name", *n)).collect()).await.unwrap();
    let count = || async {
        let r = c.transact(NB, vec![Operation::select("Address_Set").columns(["name"])]).await.unwrap();
        r[0].rows.as_ref().unwrap().len()
    };
    assert_eq!(count().await, 3);

    let unbounded = || Where::condition(Condition::Const(true));
    for op in [
        Operation::delete("Address_Set", unbounded()),
        Operation::update("Address_Set", unbounded()).set("addresses", Datum::set(["10.0.0.1"])),
        Operation::mutate("Address_Set", unbounded()).mutation(Mutation::insert("addresses", Datum::set(["10.0.0.1"]))),
    ] {
        let name = op.op_name();
        for checked in [true, false] {
            let r = if checked { c.transact(NB, vec![op.clone()]).await } else { c.transact_unchecked(NB, vec![op.clone()]).await };
            match r {
                Err(Error::UnboundedWhere { op, table }) => assert_eq!((op, table.as_str()), (name, "Address_Set")),
                other => panic!("{name} (checked: {checked}): expected UnboundedWhere, got {other:?}"),
            }
        }
    }
    let r = c.transact(NB, vec![Operation::select("Address_Set").columns(["addresses"])]).await.unwrap();
    assert!(r[0].rows.as_ref().unwrap().iter().all(|row| row.get("addresses").unwrap().is_empty()), "nothing was changed: {r:?}");
    assert_eq!(count().await, 3);

    // Said explicitly: every row.
    let r = c
        .transact(
            NB,
            vec![Operation::mutate("Address_Set", Where::every_row()).mutation(Mutation::insert("addresses", Datum::set(["10.0.0.9"])))],
        )
        .await
        .unwrap();
    assert_eq!(r[0].count, Some(3));
    let r = c.transact(NB, vec![Operation::delete("Address_Set", Where::every_row())]).await.unwrap();
    assert_eq!(r[0].count, Some(3));
    assert_eq!(count().await, 0);
}

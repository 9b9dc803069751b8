mod common;

use common::*;
use daemons::{OvsdbServer, OvsdbServerConfig};
use ovsdb::{Condition, Datum, Error, MonitorTable, Mutation, Operation, Replica, ReplicaConfig, Where};

const OVS: &str = "Open_vSwitch";

/// The local Open_vSwitch database: bridge, port and interface rows linked by named UUIDs, the
/// root row, weak/strong references, and schema checks on its constraints.
#[tokio::test]
async fn bridge_port_interface() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let s = OvsdbServer::start(OvsdbServerConfig::new("conf", dir.path(), daemons::schemas::VSWITCH)).unwrap();
    let c = connect(&s.unix_remote()).await;
    let r = c
        .transact(
            OVS,
            vec![
                Operation::insert("Interface").set("name", "br-int").set("type", "internal").uuid_name("i"),
                Operation::insert("Port").set("name", "br-int").set("interfaces", Datum::named_uuid("i")).uuid_name("p"),
                Operation::insert("Bridge")
                    .set("name", "br-int")
                    .set("ports", Datum::named_uuid("p"))
                    .set("datapath_type", "netdev")
                    .set("fail_mode", "secure")
                    .uuid_name("b"),
                Operation::insert("Open_vSwitch")
                    .set("bridges", Datum::named_uuid("b"))
                    .set("external_ids", Datum::map([("system-id", "node-1"), ("ovn-encap-type", "geneve")])),
            ],
        )
        .await
        .unwrap();
    assert!(r.iter().all(|r| r.uuid.is_some()));
    let rep = Replica::start(
        &c,
        ReplicaConfig::new(OVS)
            .table(MonitorTable::new("Open_vSwitch"))
            .table(MonitorTable::new("Bridge").columns(["name", "ports", "fail_mode"]))
            .table(MonitorTable::new("Interface").columns(["name", "external_ids", "ofport_request"]))
            .index("Bridge", "name")
            .index_map_key("Interface", "external_ids", "iface-id"),
    )
    .await
    .unwrap();
    let snap = rep.snapshot();
    let (_, root) = snap.rows("Open_vSwitch").next().map(|(u, r)| (*u, r.clone())).unwrap();
    assert_eq!(root.map_str("external_ids", "system-id"), Some("node-1"));
    assert_eq!(snap.find_one("Bridge", "name", "br-int").unwrap().1.str("fail_mode"), "secure");

    // Add a pod port the way ovs-vsctl add-port does, with iface-id.
    c.transact(
        OVS,
        vec![
            Operation::insert("Interface")
                .set("name", "veth1")
                .set("external_ids", Datum::map([("iface-id", "ns_pod1")]))
                .set("ofport_request", 10)
                .uuid_name("i"),
            Operation::insert("Port").set("name", "veth1").set("interfaces", Datum::named_uuid("i")).uuid_name("p"),
            Operation::mutate("Bridge", Where::eq("name", "br-int")).mutation(Mutation::insert("ports", Datum::named_uuid("p"))),
        ],
    )
    .await
    .unwrap();
    let snap = rep.wait_until(LONG, |s| !s.find_map("Interface", "external_ids", "iface-id", "ns_pod1").is_empty()).await.unwrap();
    assert_eq!(snap.find_one("Bridge", "name", "br-int").unwrap().1.get("ports").unwrap().len(), 2);
    let (_, iface) = snap.find_map("Interface", "external_ids", "iface-id", "ns_pod1").pop().unwrap();
    assert_eq!(iface.i64("ofport_request"), Some(10));

    // Checks from the vswitch schema: ofport_request is 1..65279, fail_mode an enum.
    match c.transact(OVS, vec![Operation::update("Interface", Where::eq("name", "veth1")).set("ofport_request", 70000)]).await {
        Err(Error::Check(e)) => assert!(e.table == "Interface" && e.column == "ofport_request" && e.value == "70000", "{e}"),
        other => panic!("{other:?}"),
    }
    match c.transact(OVS, vec![Operation::update("Bridge", Where::eq("name", "br-int")).set("fail_mode", "open")]).await {
        Err(Error::Check(e)) => assert!(e.column == "fail_mode" && e.reason.contains("allowed values"), "{e}"),
        other => panic!("{other:?}"),
    }

    // Deleting the port from the bridge garbage-collects the port and interface.
    let port = c.transact(OVS, vec![Operation::select("Port").where_eq("name", "veth1").columns(["_uuid"])]).await.unwrap()[0]
        .rows
        .as_ref()
        .unwrap()[0]
        .uuid("_uuid")
        .unwrap();
    c.transact(OVS, vec![Operation::mutate("Bridge", Where::eq("name", "br-int")).mutation(Mutation::delete("ports", Datum::uuid(port)))])
        .await
        .unwrap();
    let snap = rep.wait_until(LONG, |s| s.find_map("Interface", "external_ids", "iface-id", "ns_pod1").is_empty()).await.unwrap();
    assert_eq!(snap.len("Interface"), 1);
    let r = c.transact(OVS, vec![Operation::select("Port").filter(Condition::uuid(port))]).await.unwrap();
    assert!(r[0].rows.as_ref().unwrap().is_empty());
}

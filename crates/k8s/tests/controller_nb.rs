//! The controller against a real OVN Northbound database (ovsdb-server + northd): create
//! (dynamic, static, MAC-only), status values, idempotence, drift repair, static-IP conflicts,
//! adoption of CNI-made ports, name clashes, atomicity, delete, and one transaction per pod.

mod controller_support;

use std::collections::HashSet;
use std::time::Duration;

use controller_support::*;
use k8s::controller::nb::SwitchLookup;
use k8s::controller::{plan, Claims, PodError, PodRef};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_dynamic_static_and_mac_only_ports_one_transaction_each() {
    let ovn = Ovn::start();
    standard_switches(&ovn);
    let nb = ovn.nb().await;
    let ctl = controller(&nb);

    let a = pod("ns1", "a", "uid-a", "blue, flat");
    let t0 = nb.transactions();
    let r = ctl.reconcile_pod(&a).await.expect("reconcile a");
    assert_eq!(nb.transactions() - t0, 1, "one transaction for the pod");
    assert_eq!(r.changes.created, vec!["ns1_a_net1", "ns1_a_net2"]);
    assert_eq!(ovn.port_col("ns1_a_net1", "addresses"), "[dynamic]");
    let flat_mac = model::addressing::mac_for_name("ns1_a_net2");
    assert_eq!(ovn.port_col("ns1_a_net2", "addresses"), format!("[\"{flat_mac}\"]"));
    assert_eq!(ovn.ports_of("blue"), vec!["ns1_a_net1"]);
    assert_eq!(ovn.ports_of("flat"), vec!["ns1_a_net2"]);
    // DHCP options of blue's subnet are attached; flat has none.
    let dhcp = ovn.nbctl(&["--bare", "--columns=_uuid", "find", "DHCP_Options", "cidr=\"10.10.0.0/24\""]);
    assert_eq!(ovn.port_col("ns1_a_net1", "dhcpv4_options"), dhcp);
    assert_eq!(ovn.port_col("ns1_a_net2", "dhcpv4_options"), "[]");
    let ids = ovn.port_col("ns1_a_net1", "external_ids");
    for want in [
        "\"kubetron.io/owner\"=controller",
        "\"kubetron.io/pod-uid\"=uid-a",
        "\"kubetron.io/network\"=\"ns1/blue\"",
        "\"kubetron.io/interface\"=net1",
    ] {
        assert!(ids.contains(want), "{want} missing in {ids}");
    }

    // Every port is bound to this pod generation: only an OVS Interface with iface-id-ver=uid-a binds it.
    assert_eq!(ovn.port_col("ns1_a_net1", "options"), "{iface-id-ver=uid-a}");
    assert_eq!(ovn.port_col("ns1_a_net2", "options"), "{iface-id-ver=uid-a}");

    // Status: northd allocates the dynamic address; the hand-off (v1) follows.
    let st = ctl.wait_status(&a_ref(&a), &r.desired, WAIT).await;
    let handoff = st.interfaces.expect("addresses known");
    assert_eq!((handoff.version, handoff.pod_uid.as_str()), (1, "uid-a"));
    let ifs = &handoff.interfaces;
    assert_eq!(ifs.len(), 2);
    assert_eq!(ifs[0].logical_port, "ns1_a_net1");
    assert_eq!(ifs[0].gateways, vec!["10.10.0.1".parse::<std::net::IpAddr>().unwrap()]);
    assert!(ifs[0].routes.is_empty(), "no default-route asked");
    assert_eq!(ifs[0].ips.len(), 1);
    let ip0 = ifs[0].ips[0].to_string();
    assert!(ip0.starts_with("10.10.0.") && ip0.ends_with("/24"), "{:?}", ifs[0].ips);
    assert_ne!(ip0, "10.10.0.1/24", "router address is excluded");
    let dynamic = ovn.port_col("ns1_a_net1", "dynamic_addresses");
    assert!(dynamic.contains(&ifs[0].mac), "{dynamic} vs {}", ifs[0].mac);
    assert_eq!(ifs[1].mac, flat_mac);
    assert!(ifs[1].ips.is_empty());
    assert_eq!(ifs[1].addressing, model::handoff::Addressing::None, "flat has no subnet: MAC only");
    assert_eq!(ifs[0].addressing, model::handoff::Addressing::Static);
    assert_eq!((ifs[0].cni_network.as_str(), ifs[0].mtu), ("blue", 1400), "NAD config without name/mtu: NAD name, default MTU");
    assert!(st.network_status.is_none(), "ports are not up yet");

    // Static address with prefix; MAC derived from the IP.
    let b = pod("ns1", "b", "uid-b", r#"[{"name":"blue","ips":["10.10.0.50/24"]}]"#);
    let t0 = nb.transactions();
    let rb = ctl.reconcile_pod(&b).await.expect("reconcile b");
    assert_eq!(nb.transactions() - t0, 1);
    assert_eq!(ovn.port_col("ns1_b_net1", "addresses"), "[\"0a:58:0a:0a:00:32 10.10.0.50\"]");
    let sb = ctl.status(&a_ref(&b), &rb.desired);
    assert_eq!(sb.interfaces.as_ref().unwrap().interfaces[0].ips, vec!["10.10.0.50/24".parse::<ipnet::IpNet>().unwrap()]);

    // Reconciling again changes nothing and sends nothing.
    let t0 = nb.transactions();
    let again = ctl.reconcile_pod(&a).await.unwrap();
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    ctl.reconcile_pod(&b).await.unwrap();
    assert_eq!(nb.transactions(), t0, "no transaction when nothing changes");

    // Up: network-status appears once every port is up.
    for p in ["ns1_a_net1", "ns1_a_net2"] {
        ovn.bind(p);
    }
    let ready = nb.replica().wait_until(WAIT, |s| ctl_status_ready(s, &r.desired)).await;
    assert!(ready.is_ok(), "network-status never became ready");
    let st = ctl.status(&a_ref(&a), &r.desired);
    let ns = st.network_status.clone().expect("all up");
    assert_eq!(ns[0].name, "ns1/blue");
    assert_eq!(ns[0].interface.as_deref(), Some("net1"));
    assert!(!ns[0].ips[0].contains('/'), "NPWG ips have no prefix");
    let ann = st.annotations();
    assert!(ann.contains_key("kubetron.io/interfaces") && ann.contains_key("k8s.v1.cni.cncf.io/network-status"));
    // The annotation value is the v1 hand-off and parses back to the same value.
    let parsed = model::handoff::parse(&ann["kubetron.io/interfaces"]).expect("v1 parses");
    assert_eq!(parsed.handoff(), st.interfaces.as_ref());
}

fn a_ref(p: &k8s_openapi::api::core::v1::Pod) -> PodRef {
    PodRef::of(p).expect("pod identity")
}

fn ctl_status_ready(s: &ovsdb::replica::Snapshot, d: &[k8s::controller::DesiredPort]) -> bool {
    k8s::controller::status::pod_status(&k8s::controller::NbView(s.clone()), "uid-a", d).network_status.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_carries_cni_network_mtu_dhcp_and_default_routes() {
    let ovn = Ovn::start();
    standard_switches(&ovn);
    let nb = ovn.nb().await;
    let ctl = controller(&nb);
    // purple: blue's switch with name purple-net, mtu 1300, dhcp; blue asks the default route.
    let p = pod("ns1", "p", "uid-p", r#"[{"name":"purple"},{"name":"blue","ips":["10.10.0.60/24"],"default-route":["10.10.0.1"]}]"#);
    let r = ctl.reconcile_pod(&p).await.expect("reconcile");
    let st = ctl.wait_status(&a_ref(&p), &r.desired, WAIT).await;
    let h = st.interfaces.clone().expect("addresses known");
    assert_eq!((h.version, h.pod_uid.as_str()), (1, "uid-p"));
    let purple = h.interface("net1").expect("net1");
    assert_eq!(purple.network, "ns1/purple");
    assert_eq!(purple.cni_network, "purple-net");
    assert_eq!(purple.logical_switch, "blue");
    assert_eq!(purple.logical_port, model::names::pod_port("ns1", "p", "net1"));
    assert_eq!(purple.mtu, 1300);
    assert_eq!(purple.addressing, model::handoff::Addressing::Dhcp);
    assert!(purple.routes.is_empty());
    let blue = h.interface("net2").expect("net2");
    assert_eq!((blue.cni_network.as_str(), blue.mtu, blue.addressing), ("blue", 1400, model::handoff::Addressing::Static));
    assert_eq!(blue.ips, vec!["10.10.0.60/24".parse::<ipnet::IpNet>().unwrap()]);
    assert_eq!(blue.mac, "0a:58:0a:0a:00:3c");
    let gw: std::net::IpAddr = "10.10.0.1".parse().unwrap();
    assert_eq!(blue.routes, vec![model::handoff::Route { dst: "0.0.0.0/0".parse().unwrap(), gw }]);
    assert_eq!(blue.gateways, vec![gw]);
    // What the controller writes is exactly what a reader parses.
    let text = &st.annotations()["kubetron.io/interfaces"];
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["interfaces"][0]["addressing"], "dhcp");
    assert_eq!(v["interfaces"][1]["routes"][0]["dst"], "0.0.0.0/0");
    assert_eq!(model::handoff::parse(text).unwrap().handoff(), Some(&h));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_repaired_and_unwanted_ports_removed_in_one_transaction() {
    let ovn = Ovn::start();
    standard_switches(&ovn);
    let nb = ovn.nb().await;
    let ctl = controller(&nb);
    let a = pod("ns1", "a", "uid-a", "blue, red");
    ctl.reconcile_pod(&a).await.unwrap();
    let uuid_before = ovn.port_col("ns1_a_net1", "_uuid");

    // Someone edits the port and moves the other one to a different switch.
    ovn.nbctl(&["lsp-set-addresses", "ns1_a_net1", "0a:00:00:00:00:99 10.10.0.99"]);
    ovn.nbctl(&["clear", "Logical_Switch_Port", "ns1_a_net1", "dhcpv4_options"]);
    ovn.nbctl(&["remove", "Logical_Switch_Port", "ns1_a_net1", "external_ids", "kubetron.io/network"]);
    ovn.nbctl(&["set", "Logical_Switch_Port", "ns1_a_net1", "external_ids:note=keep-me"]);
    ovn.nbctl(&["set", "Logical_Switch_Port", "ns1_a_net1", "options:iface-id-ver=someone-else", "options:note=keep-me"]);
    let red_port = ovn.port_col("ns1_a_net2", "_uuid");
    ovn.nbctl(&["remove", "Logical_Switch", "red", "ports", &red_port, "--", "add", "Logical_Switch", "flat", "ports", &red_port]);
    nb.replica()
        .wait_until(WAIT, |s| {
            let v = k8s::controller::NbView(s.clone());
            let red = v.switches("red")[0].uuid;
            v.port_by_name("ns1_a_net2").is_some_and(|(u, _)| !v.switch_has_port(&red, &u))
        })
        .await
        .unwrap();

    let t0 = nb.transactions();
    let r = ctl.reconcile_pod(&a).await.unwrap();
    assert_eq!(nb.transactions() - t0, 1);
    assert_eq!(r.changes.updated, vec!["ns1_a_net1", "ns1_a_net2"]);
    assert_eq!(ovn.port_col("ns1_a_net1", "addresses"), "[dynamic]");
    assert_eq!(ovn.port_col("ns1_a_net1", "_uuid"), uuid_before, "fixed in place, not re-created");
    assert_ne!(ovn.port_col("ns1_a_net1", "dhcpv4_options"), "[]");
    let ids = ovn.port_col("ns1_a_net1", "external_ids");
    assert!(ids.contains("note=keep-me") && ids.contains("\"kubetron.io/network\"=\"ns1/blue\""), "{ids}");
    assert_eq!(ovn.port_col("ns1_a_net1", "options"), "{iface-id-ver=uid-a, note=keep-me}", "iface-id-ver repaired, other options kept");
    assert_eq!(ovn.ports_of("red"), vec!["ns1_a_net2"]);
    assert!(ovn.ports_of("flat").is_empty());
    assert_eq!(ovn.port_col("ns1_a_net2", "_uuid"), red_port, "moved, not re-created");

    // The pod drops a network: its port goes, in one transaction.
    let a2 = pod("ns1", "a", "uid-a", "blue");
    let t0 = nb.transactions();
    let r = ctl.reconcile_pod(&a2).await.unwrap();
    assert_eq!(nb.transactions() - t0, 1);
    assert_eq!(r.changes.removed, vec!["ns1_a_net2"]);
    assert!(!ovn.port_exists("ns1_a_net2"));
    assert!(ovn.port_exists("ns1_a_net1"));

    // Finished pod: everything goes. Then delete by UID is a no-op.
    let t0 = nb.transactions();
    let r = ctl.reconcile_pod(&finished(a2)).await.unwrap();
    assert_eq!(r.changes.removed, vec!["ns1_a_net1"]);
    assert_eq!(nb.transactions() - t0, 1);
    assert!(!ovn.port_exists("ns1_a_net1"));
    let pr = PodRef { namespace: "ns1".into(), name: "a".into(), uid: "uid-a".into() };
    assert!(ctl.delete_pod(&pr).await.unwrap().is_empty());
    assert_eq!(nb.transactions() - t0, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_ip_conflicts_write_nothing() {
    let ovn = Ovn::start();
    standard_switches(&ovn);
    let nb = ovn.nb().await;
    let ctl = controller(&nb);
    ctl.reconcile_pod(&pod("ns1", "b", "uid-b", r#"[{"name":"blue","ips":["10.10.0.50"]}]"#)).await.unwrap();
    let a = ctl.reconcile_pod(&pod("ns1", "a", "uid-a", "blue")).await.unwrap();
    let allocated = ctl.wait_status(&a.pod, &a.desired, WAIT).await.interfaces.expect("allocated").interfaces[0].ips[0];
    let allocated_ip = allocated.addr().to_string();

    let t0 = nb.transactions();
    // Same static IP as b, with another interface that alone would be fine.
    let c = pod("ns1", "c", "uid-c", r#"[{"name":"flat"},{"name":"blue","ips":["10.10.0.50"]}]"#);
    let e = ctl.reconcile_pod(&c).await.unwrap_err();
    assert!(matches!(&e, PodError::IpConflict { holder, .. } if holder == "ns1_b_net1"), "{e}");
    assert_eq!(e.reason(), "StaticIPConflict");
    assert!(e.to_string().contains("10.10.0.50"), "{e}");
    // An address northd gave to a dynamic port is taken too.
    let d = pod("ns1", "d", "uid-d", &format!(r#"[{{"name":"blue","ips":["{allocated_ip}"]}}]"#));
    let e = ctl.reconcile_pod(&d).await.unwrap_err();
    assert!(matches!(&e, PodError::IpConflict { holder, .. } if holder == "ns1_a_net1"), "{e}");
    // Twice in one pod.
    let twice = pod("ns1", "t", "uid-t", r#"[{"name":"blue","ips":["10.10.0.60"]},{"name":"blue","ips":["10.10.0.60"]}]"#);
    assert!(matches!(ctl.reconcile_pod(&twice).await, Err(PodError::IpConflict { .. })));
    assert_eq!(nb.transactions(), t0, "nothing sent");
    assert!(!ovn.port_exists("ns1_c_net1") && !ovn.port_exists("ns1_c_net2"));

    // The same IP on another switch is fine (red has its own subnet; flat none).
    let other = pod("ns1", "o", "uid-o", r#"[{"name":"red"},{"name":"blue","ips":["10.10.0.51"]}]"#);
    ctl.reconcile_pod(&other).await.unwrap();

    // Batch: two pods claiming one IP against the same snapshot; the second is refused.
    let p1 = pod("ns1", "p1", "uid-p1", r#"[{"name":"blue","ips":["10.10.0.70"]}]"#);
    let p2 = pod("ns1", "p2", "uid-p2", r#"[{"name":"blue","ips":["10.10.0.70"]}]"#);
    let out = ctl.reconcile_batch(&[p1, p2], 10).await;
    assert!(out[0].1.is_ok());
    assert!(matches!(&out[1].1, Err(PodError::IpConflict { holder, .. }) if holder == "ns1_p1_net1"));
    assert!(ovn.port_exists("ns1_p1_net1") && !ovn.port_exists("ns1_p2_net1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cni_made_ports_are_adopted_admin_ports_are_not() {
    let ovn = Ovn::start();
    standard_switches(&ovn);
    // The CNI plugin made the port before the controller saw the pod.
    ovn.nbctl(&[
        "lsp-add",
        "blue",
        "ns1_a_net1",
        "--",
        "lsp-set-addresses",
        "ns1_a_net1",
        "dynamic",
        "--",
        "set",
        "Logical_Switch_Port",
        "ns1_a_net1",
        "external_ids:kubetron.io/owner=cni",
        "external_ids:kubetron.io/container-id=c0ffee",
        "external_ids:kubetron.io/pod-namespace=ns1",
        "external_ids:kubetron.io/pod-name=a",
        "external_ids:kubetron.io/interface=net1",
    ]);
    // An administrator's port that happens to have a pod port's name.
    ovn.nbctl(&["lsp-add", "blue", "ns1_x_net1"]);
    let nb = ovn.nb().await;
    let ctl = controller(&nb);
    let uuid = ovn.port_col("ns1_a_net1", "_uuid");

    let t0 = nb.transactions();
    let r = ctl.reconcile_pod(&pod("ns1", "a", "uid-a", "blue")).await.unwrap();
    assert_eq!(nb.transactions() - t0, 1);
    assert_eq!(r.changes.adopted, vec!["ns1_a_net1"]);
    assert_eq!(ovn.port_col("ns1_a_net1", "_uuid"), uuid, "same row");
    let ids = ovn.port_col("ns1_a_net1", "external_ids");
    assert!(ids.contains("\"kubetron.io/owner\"=controller"), "{ids}");
    assert!(ids.contains("\"kubetron.io/pod-uid\"=uid-a"), "{ids}");
    assert!(ids.contains("\"kubetron.io/container-id\"=c0ffee"), "CNI's key kept: {ids}");
    assert_eq!(ovn.port_col("ns1_a_net1", "options"), "{iface-id-ver=uid-a}", "adopted ports are bound to the pod UID too");

    // A CNI port of another pod UID is not taken.
    ovn.nbctl(&[
        "lsp-add",
        "blue",
        "ns1_z_net1",
        "--",
        "set",
        "Logical_Switch_Port",
        "ns1_z_net1",
        "external_ids:kubetron.io/owner=cni",
        "external_ids:kubetron.io/pod-uid=other",
    ]);
    nb.replica().wait_until(WAIT, |s| k8s::controller::NbView(s.clone()).port_by_name("ns1_z_net1").is_some()).await.unwrap();
    let t0 = nb.transactions();
    let e = ctl.reconcile_pod(&pod("ns1", "z", "uid-z", "blue")).await.unwrap_err();
    assert!(matches!(e, PodError::PortNameTaken { .. }), "{e}");
    let e = ctl.reconcile_pod(&pod("ns1", "x", "uid-x", "blue")).await.unwrap_err();
    assert!(matches!(&e, PodError::PortNameTaken { port, owner } if port == "ns1_x_net1" && owner == "none"), "{e}");
    assert_eq!(e.reason(), "PortNameConflict");
    assert_eq!(nb.transactions(), t0);
    assert_eq!(ovn.port_col("ns1_x_net1", "external_ids"), "{}", "admin port untouched");

    // A recreated pod (same name, new UID) never shares the old pod's port: it is replaced in
    // one transaction (a new row, without the old pod's container ID).
    let r = ctl.reconcile_pod(&pod("ns1", "a", "uid-a2", "blue")).await.unwrap();
    assert_eq!(r.changes.replaced, vec!["ns1_a_net1"]);
    assert!(r.changes.adopted.is_empty() && r.changes.created.is_empty(), "{:?}", r.changes);
    let ids = ovn.port_col("ns1_a_net1", "external_ids");
    assert!(ids.contains("uid-a2") && !ids.contains("c0ffee"), "{ids}");
    assert_ne!(ovn.port_col("ns1_a_net1", "_uuid"), uuid, "a new row");
    assert_eq!(ovn.ports_of("blue"), vec!["ns1_a_net1", "ns1_x_net1", "ns1_z_net1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_transaction_leaves_nothing_of_the_pod() {
    let ovn = Ovn::start();
    standard_switches(&ovn);
    let nb = ovn.nb().await;
    let ctl = controller(&nb);
    let p = pod("ns1", "a", "uid-a", "blue, red, flat");
    // Plan against a snapshot, then an administrator creates one of the names before the write
    // (the race a crash-free controller can still lose).
    let view = nb.view();
    let want = k8s::controller::desired(&p, &nads(), &view).unwrap();
    let pr = PodRef::of(&p).unwrap();
    let first = plan(&view, &pr, &want, &mut Claims::new()).unwrap();
    ovn.nbctl(&["lsp-add", "flat", "ns1_a_net2"]);
    let e = nb.transact(first.ops.clone()).await.unwrap_err();
    let txn = e.txn().expect("server-side transaction error");
    assert_eq!(txn.error, "constraint violation", "{e}");
    for port in ["ns1_a_net1", "ns1_a_net3"] {
        assert!(!ovn.port_exists(port), "{port} was written");
    }
    assert!(ovn.ports_of("blue").is_empty() && ovn.ports_of("red").is_empty());

    // A switch deleted after planning fails the whole transaction too (wait guard).
    let p = pod("ns1", "b", "uid-b", "blue, red");
    let view = nb.view();
    let want = k8s::controller::desired(&p, &nads(), &view).unwrap();
    let second = plan(&view, &PodRef::of(&p).unwrap(), &want, &mut Claims::new()).unwrap();
    ovn.nbctl(&["ls-del", "red"]);
    assert!(nb.transact(second.ops).await.is_err());
    assert!(!ovn.port_exists("ns1_b_net1"), "half a pod was written");

    // The controller itself still works afterwards.
    let good = pod("ns1", "g", "uid-g", "blue");
    let out = ctl.reconcile_batch(&[good], 10).await;
    assert!(out[0].1.is_ok());
    assert!(ovn.port_exists("ns1_g_net1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_leader_writes_nothing() {
    let ovn = Ovn::start();
    standard_switches(&ovn);
    let nb = ovn.nb().await;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let ctl = controller(&nb).with_leadership(rx);
    let p = pod("ns1", "a", "uid-a", "blue");
    assert!(matches!(ctl.reconcile_pod(&p).await, Err(PodError::NotLeader)));
    assert!(matches!(ctl.gc(&HashSet::new()).await, Err(PodError::NotLeader)));
    assert_eq!(nb.transactions(), 0);
    tx.send_replace(true);
    ctl.reconcile_pod(&p).await.unwrap();
    assert!(ovn.port_exists("ns1_a_net1"));
    tx.send_replace(false);
    assert!(matches!(ctl.reconcile_pod(&finished(p)).await, Err(PodError::NotLeader)));
    assert!(ovn.port_exists("ns1_a_net1"), "nothing removed while not leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_after_downtime_removes_only_the_controllers_orphans() {
    let ovn = Ovn::start();
    standard_switches(&ovn);
    {
        let nb = ovn.nb().await;
        let ctl = controller(&nb);
        for i in 0..4 {
            ctl.reconcile_pod(&pod("ns1", &format!("p{i}"), &format!("uid-{i}"), "blue, flat")).await.unwrap();
        }
        // Controller goes away (replica and client dropped).
    }
    ovn.nbctl(&["lsp-add", "blue", "admin-port"]);
    ovn.nbctl(&[
        "lsp-add",
        "blue",
        "ns1_cni_net1",
        "--",
        "set",
        "Logical_Switch_Port",
        "ns1_cni_net1",
        "external_ids:kubetron.io/owner=cni",
        "external_ids:kubetron.io/pod-uid=gone-uid",
    ]);
    // Restart: only p0 and p2 still exist.
    let nb = ovn.nb().await;
    let ctl = controller(&nb);
    let live: HashSet<String> = ["uid-0".to_string(), "uid-2".to_string()].into();
    let orphans = k8s::controller::gc::orphans(&nb.view(), &live);
    let mut names: Vec<&str> = orphans.iter().map(|o| o.name.as_str()).collect();
    names.sort();
    assert_eq!(names, vec!["ns1_p1_net1", "ns1_p1_net2", "ns1_p3_net1", "ns1_p3_net2"]);
    let t0 = nb.transactions();
    ctl.gc(&live).await.unwrap();
    assert_eq!(nb.transactions() - t0, 1);
    assert_eq!(ovn.ports_of("blue"), vec!["admin-port", "ns1_cni_net1", "ns1_p0_net1", "ns1_p2_net1"]);
    assert_eq!(ovn.ports_of("flat"), vec!["ns1_p0_net2", "ns1_p2_net2"]);
    // Nothing left to collect.
    nb.replica().wait_until(WAIT, |s| k8s::controller::gc::orphans(&k8s::controller::NbView(s.clone()), &live).is_empty()).await.unwrap();
    let t0 = nb.transactions();
    assert!(ctl.gc(&live).await.unwrap().is_empty());
    assert_eq!(nb.transactions(), t0);
    let _ = Duration::ZERO;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_through_the_batcher_shares_transactions_and_a_bad_pod_holds_back_none() {
    let ovn = Ovn::start();
    standard_switches(&ovn);
    let nb = ovn.nb().await;
    let ctl = controller(&nb);
    let (batcher, task) = k8s::controller::batcher::Batcher::start(ctl.clone(), Duration::from_millis(50));
    let mut pods: Vec<_> = (0..60).map(|i| pod("ns1", &format!("b{i}"), &format!("uid-b{i}"), "blue")).collect();
    // Asks for a network that does not exist.
    pods.push(pod("ns1", "bad", "uid-bad", "nope"));
    let t0 = nb.transactions();
    let results = futures::future::join_all(pods.iter().map(|p| batcher.reconcile(p))).await;
    let n = nb.transactions() - t0;
    for (i, r) in results[..60].iter().enumerate() {
        let r = r.as_ref().unwrap_or_else(|e| panic!("pod b{i}: {e}"));
        assert_eq!(r.changes.created, vec![format!("ns1_b{i}_net1")]);
    }
    assert!(matches!(results[60], Err(PodError::NadNotFound { .. })), "{:?}", results[60]);
    assert!(n <= 10, "{n} transactions for 60 pods arriving at once");
    assert_eq!(ovn.ports_of("blue").len(), 60);
    task.abort();
}

//! The controller binds every logical switch port it makes to the pod generation
//! (`options:iface-id-ver` = pod UID), checked against real daemons: a real OVN central and one
//! chassis (ovs-vswitchd + ovn-controller in its own netns). An OVS Interface naming the port
//! (`iface-id`) with another `iface-id-ver` is refused by ovn-controller (the port stays down),
//! the matching one comes up, and a port without the option binds whatever the Interface says.

mod controller_support;

use std::time::Duration;

use controller_support::*;
use daemons::{Chassis, ChassisConfig};

const UP_WAIT: Duration = Duration::from_secs(30);

/// Plugs an internal interface `name` into br-int as the OVN port `port`, with `iface-id-ver` if given.
fn plug(chassis: &Chassis, name: &str, port: &str, ver: Option<&str>) {
    let iface_id = format!("external_ids:iface-id={port}");
    let mut args = vec!["add-port", "br-int", name, "--", "set", "Interface", name, "type=internal", iface_id.as_str()];
    let ver_arg = ver.map(|v| format!("external_ids:iface-id-ver={v}"));
    if let Some(v) = &ver_arg {
        args.push(v);
    }
    chassis.vsctl(&args).unwrap_or_else(|e| panic!("plug {name}: {e}"));
}

fn iface_ids(chassis: &Chassis, name: &str) -> String {
    chassis.vsctl(&["get", "Interface", name, "external_ids"]).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_interface_with_the_pods_iface_id_ver_binds_the_port() {
    let ovn = Ovn::start();
    standard_switches(&ovn);
    let netns = format!("ktver{}", std::process::id() % 100_000);
    let cfg = ChassisConfig::new("node-ver", ovn.dir.path().join("node-ver"), &netns, &ovn.central.sb_remote(), "198.51.100.91");
    let chassis = Chassis::start(cfg).expect("start chassis");
    chassis.wait_registered(&ovn.central.sb_remote(), UP_WAIT).expect("chassis registered");

    let nb = ovn.nb().await;
    let ctl = controller(&nb);
    ctl.reconcile_pod(&pod("ns1", "a", "uid-a", "flat")).await.expect("reconcile a");
    ctl.reconcile_pod(&pod("ns1", "b", "uid-b", "flat")).await.expect("reconcile b");
    let (pa, pb) = ("ns1_a_net1", "ns1_b_net1");
    assert_eq!(ovn.port_col(pa, "options"), "{iface-id-ver=uid-a}");
    assert_eq!(ovn.port_col(pb, "options"), "{iface-id-ver=uid-b}");
    // An administrator's port without the option.
    ovn.nbctl(&["lsp-add", "flat", "admin-port", "--", "lsp-set-addresses", "admin-port", "0a:00:00:00:77:01"]);

    // a's port: an Interface of another pod generation (a stale or forged attachment), plugged
    // first; then b's port with the right UID, and the admin port with an Interface that carries
    // a version the port does not ask for.
    plug(&chassis, "kva", pa, Some("uid-old"));
    plug(&chassis, "kvb", pb, Some("uid-b"));
    plug(&chassis, "kvadm", "admin-port", Some("whatever"));

    let up = |p: &str| ovn.port_col(p, "up") == "true";
    testkit::poll("b's port up", UP_WAIT, || up(pb).then_some(()));
    testkit::poll("the admin port (no iface-id-ver option) up", UP_WAIT, || up("admin-port").then_some(()));
    testkit::poll("ovn-installed on b's interface", UP_WAIT, || iface_ids(&chassis, "kvb").contains("ovn-installed").then_some(()));
    // ovn-controller handled kva before kvb (plugged first, one main loop): it refused it.
    let log = chassis.dir().join("ovn-controller.log");
    let refused = testkit::poll("ovn-controller to refuse kva", UP_WAIT, || {
        let text = std::fs::read_to_string(&log).ok()?;
        text.lines().find(|l| l.contains("Mismatch iface-id-ver") && l.contains(pa)).map(str::to_string)
    });
    assert!(refused.contains("uid-a") && refused.contains("uid-old"), "{refused}");
    assert_ne!(ovn.port_col(pa, "up"), "true", "a's port must stay down with a mismatched iface-id-ver");
    assert!(!iface_ids(&chassis, "kva").contains("ovn-installed"), "{}", iface_ids(&chassis, "kva"));
    let chassis_of_a = ovn.central.sbctl(&["--bare", "--columns=chassis", "find", "Port_Binding", &format!("logical_port={pa}")]);
    assert_eq!(chassis_of_a.expect("sbctl").trim(), "", "a's port is bound to no chassis");

    // The same Interface with a's UID binds it: the version was the only thing missing.
    chassis.vsctl(&["set", "Interface", "kva", "external_ids:iface-id-ver=uid-a"]).expect("fix kva");
    testkit::poll("a's port up once the versions match", UP_WAIT, || up(pa).then_some(()));

    for i in ["kva", "kvb", "kvadm"] {
        chassis.vsctl(&["del-port", "br-int", i]).expect("unplug");
    }
    drop(chassis);
}

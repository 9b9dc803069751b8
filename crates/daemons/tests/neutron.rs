//! A real neutron-server (Debian's, ML2/OVN, noauth) on a private PostgreSQL against a real OVN
//! central and chassis: a network with a subnet becomes a Logical_Switch, a port bound to the
//! chassis becomes a Logical_Switch_Port named by the port's ID with `requested-chassis`; plugged
//! on the chassis' br-int with that `iface-id` it turns ACTIVE in Neutron; deleted, its LSP goes.
//! Stopping leaves no neutron-server process and no PostgreSQL.
//!
//! Ignored without `KUBETRON_NEUTRON_TESTS=1` (scripts/test.sh sets it unless `KUBETRON_NEUTRON=0`;
//! `scripts/install-deps.sh` installs neutron-server and PostgreSQL then); fails if the packages
//! are missing then.

use std::time::{Duration, Instant};

use daemons::neutron::{Deployment, NeutronServer};
use daemons::process::{is_running, run};
use serde_json::json;

fn until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg_attr(not(neutron_tests), ignore = "needs KUBETRON_NEUTRON_TESTS=1 (scripts/test.sh sets it)")]
#[test]
fn neutron_networks_and_ports_land_in_ovn_and_bind() {
    daemons::neutron::require("neutron_networks_and_ports_land_in_ovn_and_bind");
    let tmp = tempfile::tempdir().unwrap();
    let ns = format!("ktnt{}", std::process::id() % 100000);
    let mut world = Deployment::start(tmp.path(), "nt-node1", &ns, None).expect("OVN, PostgreSQL and neutron-server");
    let (central, chassis) = (&world.central, &world.chassis);
    let neutron = &world.stack.server;

    // A network and its subnet.
    let (st, net) = neutron.call("POST", "/v2.0/networks", Some(&json!({"network": {"name": "red"}}))).unwrap();
    assert_eq!(st, 201, "{net}");
    let net_id = net["network"]["id"].as_str().unwrap().to_string();
    let subnet = json!({"subnet": {"network_id": net_id, "ip_version": 4, "cidr": "10.1.0.0/24", "enable_dhcp": true, "dns_nameservers": ["10.1.0.53"]}});
    let (st, sub) = neutron.call("POST", "/v2.0/subnets", Some(&subnet)).unwrap();
    assert_eq!(st, 201, "{sub}");
    let switch = format!("neutron-{net_id}");
    let ls = central.nbctl(&["--columns=name", "find", "Logical_Switch", &format!("name={switch}")]).unwrap();
    assert!(ls.contains(&switch), "the network is Logical_Switch {switch}: {ls}");
    let dhcp = central.nbctl(&["--columns=cidr", "list", "DHCP_Options"]).unwrap();
    assert!(dhcp.contains("10.1.0.0/24"), "{dhcp}");

    // A port bound to the chassis.
    let port = json!({"port": {"network_id": net_id, "name": "ns1/pod-a/net1", "device_owner": "compute:kubetron",
                               "device_id": "pod-a-uid", "binding:host_id": "nt-node1"}});
    let (st, p) = neutron.call("POST", "/v2.0/ports", Some(&port)).unwrap();
    assert_eq!(st, 201, "{p}");
    let p = &p["port"];
    assert_eq!(p["binding:vif_type"], "ovs", "{p}");
    let (port_id, mac) = (p["id"].as_str().unwrap().to_string(), p["mac_address"].as_str().unwrap().to_string());
    let ip = p["fixed_ips"][0]["ip_address"].as_str().unwrap().to_string();
    let lsp = central.nbctl(&["--columns=addresses,options", "list", "Logical_Switch_Port", &port_id]).unwrap();
    assert!(lsp.contains(&mac) && lsp.contains(&ip), "{lsp}");
    assert!(lsp.contains("requested-chassis") && lsp.contains("nt-node1"), "{lsp}");

    // Plugged with iface-id = the port's ID (as kubetron's node side plugs): ACTIVE in Neutron.
    let pod = format!("{ns}p");
    let host_if = format!("{ns}h");
    run("ip", &["netns", "add", &pod]).unwrap();
    run("ip", &["link", "add", &host_if, "netns", &ns, "type", "veth", "peer", "name", "eth1", "netns", &pod]).unwrap();
    run("ip", &["-n", &pod, "link", "set", "eth1", "address", &mac, "up"]).unwrap();
    run("ip", &["-n", &ns, "link", "set", &host_if, "up"]).unwrap();
    chassis
        .vsctl(&["add-port", "br-int", &host_if, "--", "set", "Interface", &host_if, &format!("external_ids:iface-id={port_id}")])
        .unwrap();
    let status = |neutron: &NeutronServer| {
        let (_, p) = neutron.call("GET", &format!("/v2.0/ports/{port_id}"), None).unwrap();
        p["port"]["status"].as_str().unwrap_or("").to_string()
    };
    until("the port ACTIVE in Neutron", Duration::from_secs(60), || (status(neutron) == "ACTIVE").then_some(()));
    let listed = neutron.call("GET", "/v2.0/ports?device_owner=compute:kubetron&fields=id&fields=device_id", None).unwrap().1;
    assert_eq!(listed["ports"].as_array().map(Vec::len), Some(1), "{listed}");

    // Deleted: its LSP goes.
    let (st, _) = neutron.call("DELETE", &format!("/v2.0/ports/{port_id}"), None).unwrap();
    assert_eq!(st, 204);
    until("the LSP removed", Duration::from_secs(20), || {
        let out = central.nbctl(&["--columns=name", "find", "Logical_Switch_Port", &format!("name={port_id}")]).unwrap();
        out.trim().is_empty().then_some(())
    });
    chassis.vsctl(&["del-port", "br-int", &host_if]).unwrap();
    run("ip", &["netns", "del", &pod]).unwrap();

    // Stopping: the server's process group and PostgreSQL are gone.
    let pid = neutron.pid();
    world.stack.stop().unwrap();
    assert!(!is_running(pid), "neutron-server {pid} still running");
    let workers = run("pgrep", &["-g", &pid.to_string()]).unwrap_or_default();
    assert!(workers.trim().is_empty(), "workers of neutron-server left: {workers}");
    let pg_pid = std::fs::read_to_string(tmp.path().join("pg/data/postmaster.pid")).ok();
    assert!(pg_pid.is_none(), "PostgreSQL still running: {pg_pid:?}");
}

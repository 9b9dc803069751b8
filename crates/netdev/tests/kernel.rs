//! Real-kernel tests: every test makes its own netns (unique names, deleted on drop) and never
//! touches the root netns. Needs root.

use std::net::IpAddr;
use std::process::Command;

use netdev::{Handle, IpNet, MacAddr, NetdevError, Netns, OperState, Route, TempNetns};

fn ns(prefix: &str) -> TempNetns {
    TempNetns::new(&format!("ktt-{prefix}")).expect("create test netns (are we root?)")
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sh(args: &[&str]) -> (bool, String) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("spawn");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn ping(ns: &TempNetns, dst: &str) -> (bool, String) {
    sh(&["ip", "netns", "exec", ns.name(), "ping", "-c1", "-W1", dst])
}

#[test]
fn netns_create_run_delete() {
    let before = Netns::current().unwrap().id().unwrap();
    let t = ns("run");
    let path = Netns::named_path(t.name());
    assert!(path.exists());
    // The closure runs inside the netns: its own netns id differs from ours, and it sees only `lo`.
    let (inner, links) = t
        .run(|| {
            let id = Netns::current().unwrap().id().unwrap();
            let links: Vec<String> = Handle::new().unwrap().links().unwrap().into_iter().map(|l| l.name).collect();
            (id, links)
        })
        .unwrap();
    assert_eq!(inner, t.id().unwrap());
    assert_ne!(inner, before);
    assert_eq!(links, vec!["lo".to_string()]);
    // The caller's thread did not move.
    assert_eq!(Netns::current().unwrap().id().unwrap(), before);
    // Re-opening by path gives the same namespace; `ip netns` sees it too.
    assert_eq!(Netns::open(&path).unwrap().id().unwrap(), t.id().unwrap());
    let (ok, out) = sh(&["ip", "netns", "list"]);
    assert!(ok && out.contains(t.name()), "{out}");
    // Creating the same name again fails cleanly.
    assert!(matches!(Netns::create(t.name()), Err(NetdevError::NetnsExists(_))));
    // A panic inside becomes an error, not a crash.
    assert!(matches!(t.run(|| panic!("boom")), Err(NetdevError::ThreadPanicked(_))));
    let name = t.name().to_string();
    drop(t);
    assert!(!path.exists());
    assert!(!Netns::delete(&name).unwrap(), "second delete reports absent");
    assert!(Netns::open(&path).unwrap_err().is_not_found());
}

#[test]
fn veth_between_two_netns_pings() {
    let a = ns("pa");
    let b = ns("pb");
    let ha = Handle::in_netns(&a).unwrap();
    let pair = ha.veth("va0", "eth0").peer_netns(&b).mtu(1400).host_up().peer_up().create().unwrap();
    assert_eq!(pair.host.name, "va0");
    assert_eq!(pair.peer.name, "eth0");
    assert_eq!(pair.host.mtu, 1400);
    assert_eq!(pair.peer.mtu, 1400);
    assert_eq!(pair.host.kind.as_deref(), Some("veth"));
    assert_eq!(pair.host.peer_index, Some(pair.peer.index), "host's IFLA_LINK is the peer's index");
    assert!(pair.host.link_netnsid.is_some(), "peer is in another netns");

    let hb = Handle::in_netns(&b).unwrap();
    ha.add_address(pair.host.index, net("10.77.0.1/24")).apply().unwrap();
    hb.add_address(pair.peer.index, net("10.77.0.2/24")).apply().unwrap();
    ha.add_address(pair.host.index, net("fd77::1/64")).nodad().apply().unwrap();
    hb.add_address(pair.peer.index, net("fd77::2/64")).nodad().apply().unwrap();
    // Adding the same address twice is EEXIST.
    assert!(hb.add_address(pair.peer.index, net("10.77.0.2/24")).apply().unwrap_err().is_exists());
    assert!(ha.link_by_name("va0").unwrap().unwrap().admin_up);

    let (ok, out) = ping(&a, "10.77.0.2");
    assert!(ok, "ping a->b failed: {out}");
    let (ok, out) = ping(&b, "10.77.0.1");
    assert!(ok, "ping b->a failed: {out}");
    let (ok, out) = ping(&a, "fd77::2");
    assert!(ok, "ping6 a->b failed: {out}");
    // Oper state is up on both ends once both are up.
    let peer = hb.link_by_name("eth0").unwrap().unwrap();
    assert_eq!(peer.oper_state, OperState::Up);

    // Nothing leaked into the caller's netns: this test never made links here.
    assert!(Handle::new().unwrap().link_by_name("va0").unwrap().is_none());

    // Deleting one end deletes both.
    assert!(ha.delete_link("va0").unwrap());
    assert!(hb.link_by_name("eth0").unwrap().is_none());
    assert!(!ha.delete_link("va0").unwrap(), "absent link delete is Ok(false)");
}

#[test]
fn mac_mtu_address_route_readback() {
    let a = ns("rb");
    let b = ns("rbp");
    let ha = Handle::in_netns(&a).unwrap();
    let hb = Handle::in_netns(&b).unwrap();
    let peer_mac: MacAddr = "0a:58:0a:4d:00:05".parse().unwrap();
    let pair = ha.veth("vh", "eth0").peer_netns(&b).peer_mac(peer_mac).create().unwrap();
    assert_eq!(pair.peer.mac, Some(peer_mac));
    assert!(!pair.peer.admin_up);

    let new_mac: MacAddr = "0a:58:0a:4d:00:06".parse().unwrap();
    hb.set_link("eth0").mac(new_mac).mtu(1442).up().apply().unwrap();
    ha.set_link("vh").up().apply().unwrap();
    let l = hb.link_by_name("eth0").unwrap().unwrap();
    assert_eq!((l.mac, l.mtu, l.admin_up), (Some(new_mac), 1442, true));
    assert_eq!(hb.link_by_index(l.index).unwrap().unwrap().name, "eth0");
    // `ip` agrees.
    let (_, out) = sh(&["ip", "-n", b.name(), "link", "show", "eth0"]);
    assert!(out.contains("mtu 1442") && out.contains("0a:58:0a:4d:00:06"), "{out}");

    hb.add_address(l.index, net("10.78.1.5/24")).apply().unwrap();
    hb.add_address(l.index, net("fd78::5/64")).nodad().apply().unwrap();
    let addrs = hb.addresses(Some(l.index)).unwrap();
    let nets: Vec<String> = addrs.iter().map(|a| a.addr.to_string()).collect();
    assert!(nets.contains(&"10.78.1.5/24".to_string()), "{nets:?}");
    assert!(nets.contains(&"fd78::5/64".to_string()), "{nets:?}");
    assert!(addrs.iter().all(|a| a.index == l.index));

    hb.add_route(&Route::default_via(ip("10.78.1.1")).dev(l.index)).unwrap();
    hb.add_route(&Route::to(net("10.96.0.0/12")).via(ip("10.78.1.254")).dev(l.index).metric(50)).unwrap();
    hb.add_route(&Route::to(net("198.51.100.0/24")).dev(l.index)).unwrap();
    hb.add_route(&Route::default_via(ip("fd78::1")).dev(l.index)).unwrap();
    // Same route again: EEXIST.
    assert!(hb.add_route(&Route::default_via(ip("10.78.1.1")).dev(l.index)).unwrap_err().is_exists());
    // A gateway that is not on-link is refused by the kernel with a readable error.
    let e = hb.add_route(&Route::to(net("10.200.0.0/16")).via(ip("10.99.9.9"))).unwrap_err();
    assert!(matches!(e, NetdevError::Netlink { .. }), "{e}");

    let routes = hb.routes().unwrap();
    let find = |dst: &str| routes.iter().find(|r| r.dst == net(dst)).cloned();
    let d4 = find("0.0.0.0/0").expect("v4 default");
    assert_eq!((d4.gateway, d4.oif), (Some(ip("10.78.1.1")), Some(l.index)));
    let svc = find("10.96.0.0/12").expect("service route");
    assert_eq!((svc.gateway, svc.metric), (Some(ip("10.78.1.254")), Some(50)));
    let onlink = find("198.51.100.0/24").expect("device route");
    assert_eq!((onlink.gateway, onlink.oif, onlink.scope), (None, Some(l.index), 253));
    assert!(find("10.78.1.0/24").is_some(), "prefix route of the address");
    let d6 = find("::/0").expect("v6 default");
    assert_eq!(d6.gateway, Some(ip("fd78::1")));
    let (_, out) = sh(&["ip", "-n", b.name(), "route", "show"]);
    assert!(out.contains("default via 10.78.1.1 dev eth0"), "{out}");

    assert!(hb.delete_route(&Route::to(net("10.96.0.0/12")).via(ip("10.78.1.254"))).unwrap());
    assert!(!hb.delete_route(&Route::to(net("10.96.0.0/12")).via(ip("10.78.1.254"))).unwrap());
    assert!(hb.delete_address(l.index, net("10.78.1.5/24")).unwrap());
    assert!(!hb.addresses(Some(l.index)).unwrap().iter().any(|a| a.addr == net("10.78.1.5/24")));

    // Readback of what is not there.
    assert!(hb.link_by_name("nope0").unwrap().is_none());
    assert!(matches!(hb.set_link("nope0").up().apply(), Err(NetdevError::LinkNotFound(_))));
    assert!(matches!(hb.link_by_name("bad/name"), Err(NetdevError::InvalidName { .. })));
}

#[test]
fn veth_peer_name_taken_leaves_nothing_behind() {
    let a = ns("fa");
    let b = ns("fb");
    let ha = Handle::in_netns(&a).unwrap();
    let hb = Handle::in_netns(&b).unwrap();
    hb.add_link("eth0", "bridge").unwrap();
    let before: Vec<String> = ha.links().unwrap().into_iter().map(|l| l.name).collect();

    let e = ha.veth("vfail", "eth0").peer_netns(&b).host_up().create().unwrap_err();
    match &e {
        NetdevError::LinkExists { name, netns } => {
            assert_eq!(name, "eth0");
            assert!(netns.contains(b.name()), "{e}");
        }
        other => panic!("want LinkExists, got {other}"),
    }
    assert!(ha.link_by_name("vfail").unwrap().is_none(), "host end left behind");
    let after: Vec<String> = ha.links().unwrap().into_iter().map(|l| l.name).collect();
    assert_eq!(before, after);
    assert_eq!(hb.link_by_name("eth0").unwrap().unwrap().kind.as_deref(), Some("bridge"));

    // Host name taken: also a named error, and the target netns is untouched.
    ha.add_link("vtaken", "bridge").unwrap();
    let e = ha.veth("vtaken", "eth1").peer_netns(&b).create().unwrap_err();
    assert!(matches!(&e, NetdevError::LinkExists { name, .. } if name == "vtaken"), "{e}");
    assert!(hb.link_by_name("eth1").unwrap().is_none());

    // The kernel refuses the whole request (impossible MTU): neither end exists.
    let e = ha.veth("vmtu", "eth2").peer_netns(&b).mtu(20).create().unwrap_err();
    assert!(matches!(e, NetdevError::Netlink { .. }), "{e}");
    assert!(ha.link_by_name("vmtu").unwrap().is_none());
    assert!(hb.link_by_name("eth2").unwrap().is_none());

    // A step after the kernel made the pair fails: both ends are deleted again.
    let e = ha.veth("vlate", "eth3").peer_netns(&b).host_up().inject_failure_after_create().create().unwrap_err();
    assert!(e.to_string().contains("injected"), "{e}");
    assert!(ha.link_by_name("vlate").unwrap().is_none());
    assert!(hb.link_by_name("eth3").unwrap().is_none());

    // Bad names never reach the kernel.
    assert!(matches!(ha.veth("this-name-is-too-long", "eth0").create(), Err(NetdevError::InvalidName { .. })));
}

#[test]
fn tx_checksum_off_inside_netns() {
    let a = ns("tx");
    let b = ns("txp");
    let ha = Handle::in_netns(&a).unwrap();
    let hb = Handle::in_netns(&b).unwrap();
    ha.veth("vtx", "eth0").peer_netns(&b).create().unwrap();
    assert!(hb.tx_checksum("eth0").unwrap(), "veth starts with tx checksumming on");
    hb.set_tx_checksum("eth0", false).unwrap();
    assert!(!hb.tx_checksum("eth0").unwrap());
    let (ok, out) = sh(&["ip", "netns", "exec", b.name(), "ethtool", "-k", "eth0"]);
    assert!(ok, "{out}");
    assert!(out.lines().any(|l| l.trim() == "tx-checksumming: off"), "{out}");
    // The host end is untouched.
    assert!(ha.tx_checksum("vtx").unwrap());
    hb.set_tx_checksum("eth0", true).unwrap();
    assert!(hb.tx_checksum("eth0").unwrap());
    let (_, out) = sh(&["ip", "netns", "exec", b.name(), "ethtool", "-k", "eth0"]);
    assert!(out.lines().any(|l| l.trim() == "tx-checksumming: on"), "{out}");
    assert!(matches!(hb.tx_checksum("absent0"), Err(NetdevError::LinkNotFound(_))));
}

#[test]
fn disable_ipv6_on_host_end() {
    let a = ns("v6");
    let b = ns("v6p");
    let ha = Handle::in_netns(&a).unwrap();
    ha.veth("v6h", "eth0").peer_netns(&b).create().unwrap();
    assert_eq!(ha.ipv6_disabled("v6h").unwrap(), Some(false));
    assert!(ha.disable_ipv6("v6h").unwrap());
    assert_eq!(ha.ipv6_disabled("v6h").unwrap(), Some(true));
    // Only that netns' interface changed.
    assert_eq!(Handle::in_netns(&b).unwrap().ipv6_disabled("eth0").unwrap(), Some(false));
    let (_, out) = sh(&["ip", "netns", "exec", a.name(), "sysctl", "-n", "net.ipv6.conf.v6h.disable_ipv6"]);
    assert_eq!(out.trim(), "1");
    assert_eq!(ha.ipv6_disabled("absent0").unwrap(), None);
    assert!(!ha.disable_ipv6("absent0").unwrap());
}

#[test]
fn netns_by_proc_pid_path() {
    // CNI_NETNS may be /proc/PID/ns/net: open one of a process we start inside a test netns.
    let t = ns("pid");
    let mut child = Command::new("ip").args(["netns", "exec", t.name(), "sleep", "60"]).spawn().unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = child.id();
    // Generous: on a loaded machine `ip netns exec` may take a while to enter the namespace.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let want = t.id().unwrap();
    let mut got = None;
    while std::time::Instant::now() < deadline {
        if let Ok(n) = Netns::open(format!("/proc/{pid}/ns/net")) {
            if n.id().unwrap() == want {
                got = Some(n);
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = child.try_wait();
    let _k = Kill(child);
    let n = got.expect("process netns becomes the test netns");
    let h = Handle::in_netns(&n).unwrap();
    h.add_link("d0", "bridge").unwrap();
    assert!(Handle::in_netns(&t).unwrap().link_by_name("d0").unwrap().is_some());
}

#[test]
fn bridge_binding_bridge_tap_and_veth_port() {
    // KubeVirt's bridge binding inside a launcher netns: bridge k6t-net1 { net1 (veth to the "node"), tap1 }.
    let pod = ns("bb");
    let node = ns("bbn");
    let hp = Handle::in_netns(&pod).unwrap();
    let hn = Handle::in_netns(&node).unwrap();
    hn.veth("eth0", "net1").peer_netns(&pod).mtu(1400).host_up().create().unwrap();
    let br = hp.create_bridge("k6t-net1", 1400).unwrap();
    assert_eq!(br.kind.as_deref(), Some("bridge"));
    assert_eq!(br.mtu, 1400);
    assert!(!br.admin_up);
    assert!(matches!(hp.create_bridge("k6t-net1", 1400), Err(NetdevError::LinkExists { .. })));

    let tap = hp.create_tap("tap1", Some(1400)).unwrap();
    assert_eq!(tap.kind.as_deref(), Some("tun"));
    assert_eq!(tap.mtu, 1400);
    let (ok, out) = sh(&["ip", "netns", "exec", pod.name(), "ip", "-d", "link", "show", "tap1"]);
    assert!(ok, "{out}");
    for want in ["tun type tap", "pi off", "vnet_hdr on", "persist on"] {
        assert!(out.contains(want), "{want:?} not in {out}");
    }
    // Made in the pod netns only; a second create of the same name is refused, not attached to.
    assert!(Handle::new().unwrap().link_by_name("tap1").unwrap().is_none());
    assert!(hn.link_by_name("tap1").unwrap().is_none());
    assert!(matches!(hp.create_tap("tap1", None), Err(NetdevError::LinkExists { .. })));

    hp.set_master("net1", "k6t-net1").unwrap();
    hp.set_master("tap1", "k6t-net1").unwrap();
    for l in ["net1", "tap1"] {
        assert_eq!(hp.link_by_name(l).unwrap().unwrap().master, Some(br.index), "{l} on the bridge");
    }
    assert_eq!(hp.link_by_name("k6t-net1").unwrap().unwrap().master, None);
    let (_, out) = sh(&["ip", "netns", "exec", pod.name(), "ip", "-o", "link", "show", "master", "k6t-net1"]);
    assert!(out.contains("net1") && out.contains("tap1"), "{out}");

    // L2 through the bridge: an address on the bridge reaches the node end of the veth.
    for l in ["net1", "k6t-net1"] {
        hp.set_link(l).up().apply().unwrap();
    }
    hp.add_address(br.index, net("10.79.0.1/24")).apply().unwrap();
    let eth0 = hn.link_by_name("eth0").unwrap().unwrap();
    hn.add_address(eth0.index, net("10.79.0.2/24")).apply().unwrap();
    let ok = (0..20).any(|_| ping(&node, "10.79.0.1").0);
    assert!(ok, "ping across the bridge failed");

    hp.set_nomaster("tap1").unwrap();
    assert_eq!(hp.link_by_name("tap1").unwrap().unwrap().master, None);
    hp.set_nomaster("tap1").unwrap();
    assert!(matches!(hp.set_master("tap1", "absent0"), Err(NetdevError::LinkNotFound(_))));
    assert!(matches!(hp.set_master("absent0", "k6t-net1"), Err(NetdevError::LinkNotFound(_))));
    assert!(hp.delete_link("tap1").unwrap());
    assert!(hp.link_by_name("tap1").unwrap().is_none());
    assert!(matches!(hp.create_tap("bad/name", None), Err(NetdevError::InvalidName { .. })));
}

//! Requested addresses through the real `kubetron` CNI binary against real OVN (issue 8 #3): a
//! static IP or MAC that another port of the switch holds (static, or allocated by northd) is
//! refused naming the holder; addresses the switch cannot give (outside the subnet, its network
//! and broadcast addresses, `exclude_ips`) are refused; of two concurrent ADDs for one address
//! exactly one succeeds and the other leaves nothing behind.

mod support;

use serde_json::{json, Value};
use support::{result_ip, CniOutcome, Pod, World};

fn args(ns: &str, pod: &str) -> String {
    format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={pod};K8S_POD_UID=uid-{pod}")
}

fn with_request(w: &World, network: &str, ips: &[&str], mac: Option<&str>) -> Value {
    let mut conf = w.conf(network, 0);
    let mut rc = json!({"ips": ips});
    if let Some(m) = mac {
        rc["mac"] = json!(m);
    }
    conf["runtimeConfig"] = rc;
    conf
}

fn msg(o: &CniOutcome) -> String {
    o.json["msg"].as_str().map(str::to_string).unwrap_or_else(|| format!("{o:?}"))
}

/// The pod's side and the node's side hold nothing of a refused ADD.
fn nothing_of(w: &World, p: &Pod, port: &str) {
    assert!(!w.lsps().contains(&port.to_string()), "port {port} left: {:?}", w.lsps());
    let links = String::from_utf8(p.exec(&["ip", "-o", "link"]).stdout).unwrap();
    assert!(!links.contains("net1"), "{links}");
    let host = netdev::host_ifname(&p.id, "net1");
    assert!(!w.host_veths(0).contains(&host), "{:?}", w.host_veths(0));
    assert!(!w.bridge_ports(0).contains(&host), "{:?}", w.bridge_ports(0));
}

#[test]
fn addresses_in_use_or_not_on_the_network_are_refused_naming_the_holder() {
    let w = World::new(1);
    w.network("red", Some("10.61.0.0/24")); // exclude_ips 10.61.0.1..10.61.0.9
                                            // An administrator's port with a static address (no pod).
    w.nbctl(&["lsp-add", "red", "admin-port", "--", "lsp-set-addresses", "admin-port", "0a:00:00:61:00:77 10.61.0.77"]);

    let a = Pod::new();
    let conf = with_request(&w, "red", &["10.61.0.20/24"], None);
    let ra = a.cni(&w, 0, "ADD", "net1", &conf, Some(&args("ns1", "a")));
    assert_eq!(ra.exit_code, 0, "{ra:?}");
    let c = Pod::new();
    let rc = c.cni(&w, 0, "ADD", "net1", &w.conf("red", 0), Some(&args("ns1", "c")));
    assert_eq!(rc.exit_code, 0, "{rc:?}");
    let dynamic_ip = result_ip(&rc);
    let dynamic = w.nbctl(&["get", "Logical_Switch_Port", "ns1_c_net1", "dynamic_addresses"]);
    assert!(dynamic.contains(&dynamic_ip), "{dynamic} vs {dynamic_ip}");
    let ports_before = w.lsps().len();

    let b = Pod::new();
    let try_b = |conf: &Value| b.cni(&w, 0, "ADD", "net1", conf, Some(&args("ns2", "b")));

    // Static IP held by another pod's static port: code 7, naming the port and the pod.
    let o = try_b(&with_request(&w, "red", &["10.61.0.20/24"], None));
    assert_eq!(o.json["code"], 7, "{o:?}");
    let m = msg(&o);
    assert!(m.contains("10.61.0.20") && m.contains("ns1_a_net1") && m.contains("ns1/a"), "{m}");
    nothing_of(&w, &b, "ns2_b_net1");

    // Held by a port northd allocated it to.
    let o = try_b(&with_request(&w, "red", &[&format!("{dynamic_ip}/24")], None));
    assert_eq!(o.json["code"], 7, "{o:?}");
    let m = msg(&o);
    assert!(m.contains(&dynamic_ip) && m.contains("ns1_c_net1") && m.contains("ns1/c"), "{m}");
    nothing_of(&w, &b, "ns2_b_net1");

    // Held by an administrator's port.
    let o = try_b(&with_request(&w, "red", &["10.61.0.77"], None));
    assert_eq!(o.json["code"], 7, "{o:?}");
    assert!(msg(&o).contains("admin-port"), "{o:?}");

    // The MAC of another port (a's MAC was derived from its IP), with a free IP.
    let a_mac = ra.json["interfaces"][1]["mac"].as_str().unwrap().to_string();
    let o = try_b(&with_request(&w, "red", &["10.61.0.30/24"], Some(&a_mac.to_uppercase())));
    assert_eq!(o.json["code"], 7, "{o:?}");
    let m = msg(&o);
    assert!(m.contains("MAC") && m.contains(&a_mac) && m.contains("ns1_a_net1"), "{m}");
    // A MAC alone (address from OVN) is checked too.
    let mut conf = w.conf("red", 0);
    conf["runtimeConfig"] = json!({"mac": "0a:00:00:61:00:77"});
    let o = try_b(&conf);
    assert_eq!(o.json["code"], 7, "{o:?}");
    assert!(msg(&o).contains("admin-port"), "{o:?}");

    // Addresses the switch cannot give.
    for (ip, word) in [
        ("10.99.0.5/24", "not in the network's subnet"),
        ("10.61.0.0/24", "network address"),
        ("10.61.0.255/24", "broadcast address"),
        ("10.61.0.5/24", "exclude_ips"),
    ] {
        let o = try_b(&with_request(&w, "red", &[ip], None));
        assert_eq!(o.json["code"], 7, "{ip}: {o:?}");
        assert!(msg(&o).contains(word), "{ip}: {o:?}");
        nothing_of(&w, &b, "ns2_b_net1");
    }
    assert_eq!(w.lsps().len(), ports_before, "{:?}", w.lsps());

    // A free address works, and the holder's DEL frees its address for the next pod.
    let o = try_b(&with_request(&w, "red", &["10.61.0.31/24"], None));
    assert_eq!(o.exit_code, 0, "{o:?}");
    assert_eq!(a.cni(&w, 0, "DEL", "net1", &w.conf("red", 0), Some(&args("ns1", "a"))).exit_code, 0);
    let d = Pod::new();
    let o = d.cni(&w, 0, "ADD", "net1", &with_request(&w, "red", &["10.61.0.20/24"], None), Some(&args("ns1", "d")));
    assert_eq!(o.exit_code, 0, "{o:?}");
    assert_eq!(result_ip(&o), "10.61.0.20");
}

#[test]
fn concurrent_adds_for_one_static_ip_exactly_one_wins() {
    let w = World::new(1);
    w.network("blue", Some("10.62.0.0/24"));
    for round in 0..10 {
        let ip = format!("10.62.0.{}", 100 + round);
        let conf = with_request(&w, "blue", &[&format!("{ip}/24")], None);
        let pods = [Pod::new(), Pod::new()];
        let names = [format!("r{round}a"), format!("r{round}b")];
        let outs: Vec<CniOutcome> = std::thread::scope(|s| {
            let hs: Vec<_> =
                pods.iter().zip(&names).map(|(p, n)| s.spawn(|| p.cni(&w, 0, "ADD", "net1", &conf, Some(&args("ns1", n))))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<usize> = (0..2).filter(|i| outs[*i].exit_code == 0).collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one ADD must win: {outs:?}");
        let (win, lose) = (winners[0], 1 - winners[0]);
        assert_eq!(result_ip(&outs[win]), ip);
        assert_eq!(outs[lose].json["code"], 7, "round {round}: {:?}", outs[lose]);
        let m = msg(&outs[lose]);
        let holder = format!("ns1_{}_net1", names[win]);
        assert!(m.contains(&ip) && m.contains(&holder), "round {round}: {m}");
        nothing_of(&w, &pods[lose], &format!("ns1_{}_net1", names[lose]));
        // One port holds the address in NB.
        let holders = w.nbctl(&[
            "--bare",
            "--columns=name",
            "find",
            "Logical_Switch_Port",
            &format!("addresses{{>=}}\"0a:58:0a:3e:00:{:02x} {ip}\"", 100 + round),
        ]);
        assert_eq!(holders.split_whitespace().collect::<Vec<_>>(), vec![holder.as_str()], "round {round}");
        let d = pods[win].cni(&w, 0, "DEL", "net1", &conf, Some(&args("ns1", &names[win])));
        assert_eq!(d.exit_code, 0, "{d:?}");
    }
    assert!(w.lsps().is_empty(), "{:?}", w.lsps());
    assert!(w.bridge_ports(0).is_empty() && w.host_veths(0).is_empty());
}

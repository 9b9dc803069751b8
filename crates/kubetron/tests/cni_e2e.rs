//! The real `kubetron` CNI binary plugging real network namespaces into real OVN, as a container
//! runtime (or Multus) calls it; traffic really flows between the pods.

mod support;

use serde_json::json;
use support::{result_ip, Pod, World};
use testkit::cni::CniInvocation;

#[test]
fn static_addresses_and_ping() {
    let w = World::new(1);
    w.network("red", Some("10.11.0.0/24"));
    let (a, b) = (Pod::new(), Pod::new());
    let mut conf = w.conf("red", 0);
    conf["runtimeConfig"] = json!({"ips": ["10.11.0.21/24"], "mac": "0a:00:00:11:00:21"});
    let ra = a.cni(&w, 0, "ADD", "net1", &conf, None);
    assert_eq!(ra.exit_code, 0, "{ra:?}");
    assert_eq!(result_ip(&ra), "10.11.0.21");
    assert_eq!(ra.json["interfaces"][1]["mac"], "0a:00:00:11:00:21");
    assert_eq!(ra.json["interfaces"][1]["sandbox"], a.netns_path().display().to_string());
    assert_eq!(ra.json["ips"][0]["interface"], 1);
    assert_eq!(ra.json["ips"][0]["gateway"], "10.11.0.1");
    conf["runtimeConfig"] = json!({"ips": ["10.11.0.22/24"]});
    let rb = b.cni(&w, 0, "ADD", "net1", &conf, None);
    assert_eq!(rb.exit_code, 0, "{rb:?}");
    // No MAC asked: one derived from the IP.
    assert_eq!(rb.json["interfaces"][1]["mac"], "0a:58:0a:0b:00:16");
    assert!(a.ping("10.11.0.22"), "pod a cannot reach pod b");
    // The interface really has what the result says, and TX checksum offload is off.
    let ip = String::from_utf8(a.exec(&["ip", "-o", "addr", "show", "net1"]).stdout).unwrap();
    assert!(ip.contains("10.11.0.21/24"), "{ip}");
    let eth = String::from_utf8(a.exec(&["ethtool", "-k", "net1"]).stdout).unwrap();
    assert!(eth.contains("tx-checksumming: off"), "{eth}");

    for (p, c) in [(&a, &conf), (&b, &conf)] {
        let d = p.cni(&w, 0, "DEL", "net1", c, None);
        assert_eq!(d.exit_code, 0, "{d:?}");
    }
    assert!(w.lsps().is_empty(), "ports left: {:?}", w.lsps());
    assert!(w.bridge_ports(0).is_empty(), "{:?}", w.bridge_ports(0));
    assert!(w.host_veths(0).is_empty(), "{:?}", w.host_veths(0));
}

#[test]
fn dynamic_addresses_from_ovn() {
    let w = World::new(1);
    w.network("blue", Some("10.12.0.0/24"));
    let (a, b) = (Pod::new(), Pod::new());
    let conf = w.conf("blue", 0);
    let ra = a.cni(&w, 0, "ADD", "net1", &conf, Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=a"));
    let rb = b.cni(&w, 0, "ADD", "net1", &conf, Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=b"));
    assert_eq!((ra.exit_code, rb.exit_code), (0, 0), "{ra:?}\n{rb:?}");
    let (ia, ib) = (result_ip(&ra), result_ip(&rb));
    assert_ne!(ia, ib);
    for ip in [&ia, &ib] {
        let last: u8 = ip.rsplit('.').next().unwrap().parse().unwrap();
        assert!(ip.starts_with("10.12.0.") && last >= 10, "{ip} not allocated by OVN outside exclude_ips");
    }
    // The port is named after the pod, so the controller finds it.
    assert!(w.lsps().contains(&"ns1_a_net1".to_string()), "{:?}", w.lsps());
    let dynamic = w.nbctl(&["get", "Logical_Switch_Port", "ns1_a_net1", "dynamic_addresses"]);
    assert!(dynamic.contains(&ia), "{dynamic} vs {ia}");
    assert!(a.ping(&ib));
}

#[test]
fn dhcp_from_ovn() {
    let w = World::new(1);
    w.network("green", Some("10.13.0.0/24"));
    let (a, b) = (Pod::new(), Pod::new());
    let mut conf = w.conf("green", 0);
    conf["dhcp"] = json!(true);
    let ra = a.cni(&w, 0, "ADD", "net1", &conf, None);
    assert_eq!(ra.exit_code, 0, "{ra:?}");
    assert!(ra.json["ips"].as_array().map(|v| v.is_empty()).unwrap_or(true), "DHCP mode configures no IP: {ra:?}");
    let lsp = w.lsps().pop().unwrap();
    let dynamic = w.nbctl(&["get", "Logical_Switch_Port", &lsp, "dynamic_addresses"]);
    let want_ip = dynamic.trim().trim_matches('"').split_whitespace().nth(1).unwrap().to_string();
    // The pod's DHCP client gets exactly the port's address from OVN's native DHCP server.
    let script = w.dir.path().join("udhcpc.sh");
    std::fs::write(&script, "#!/bin/sh\n[ \"$1\" = bound ] && ip addr add $ip/$mask dev $interface\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = a.exec(&["udhcpc", "-i", "net1", "-f", "-q", "-n", "-t", "10", "-T", "1", "-s", script.to_str().unwrap()]);
    assert!(out.status.success(), "udhcpc: {}", String::from_utf8_lossy(&out.stderr));
    let addr = String::from_utf8(a.exec(&["ip", "-o", "-4", "addr", "show", "net1"]).stdout).unwrap();
    assert!(addr.contains(&format!("{want_ip}/24")), "leased {addr}, port has {want_ip}");
    let rb = b.cni(&w, 0, "ADD", "net1", &w.conf("green", 0), None);
    assert_eq!(rb.exit_code, 0);
    assert!(b.ping(&want_ip));
}

#[test]
fn l2_only_network() {
    let w = World::new(1);
    w.network("l2net", None);
    let (a, b) = (Pod::new(), Pod::new());
    let conf = w.conf("l2net", 0);
    let ra = a.cni(&w, 0, "ADD", "eth1", &conf, None);
    let rb = b.cni(&w, 0, "ADD", "eth1", &conf, None);
    assert_eq!((ra.exit_code, rb.exit_code), (0, 0), "{ra:?}\n{rb:?}");
    assert!(ra.json["ips"].as_array().map(|v| v.is_empty()).unwrap_or(true), "{ra:?}");
    let mac = ra.json["interfaces"][1]["mac"].as_str().unwrap().to_string();
    assert_eq!(mac.len(), 17);
    // The pods have L2 between them: addresses the pods pick themselves work.
    a.exec(&["ip", "addr", "add", "10.99.0.1/24", "dev", "eth1"]);
    b.exec(&["ip", "addr", "add", "10.99.0.2/24", "dev", "eth1"]);
    assert!(a.ping_retry("10.99.0.2"));
}

#[test]
fn two_networks_in_one_pod_and_a_reference_plugin_beside() {
    let w = World::new(1);
    w.network("red", Some("10.21.0.0/24"));
    w.network("blue", Some("10.22.0.0/24"));
    let (a, b) = (Pod::new(), Pod::new());
    for p in [&a, &b] {
        assert_eq!(p.cni(&w, 0, "ADD", "net1", &w.conf("red", 0), None).exit_code, 0);
        assert_eq!(p.cni(&w, 0, "ADD", "net2", &w.conf("blue", 0), None).exit_code, 0);
    }
    let ip_of = |p: &Pod, ifname: &str| {
        let o = String::from_utf8(p.exec(&["ip", "-o", "-4", "addr", "show", ifname]).stdout).unwrap();
        o.split_whitespace().nth(3).unwrap().split('/').next().unwrap().to_string()
    };
    assert!(a.ping(&ip_of(&b, "net1")), "red");
    assert!(a.ping(&ip_of(&b, "net2")), "blue");

    // Debian's reference bridge + host-local plugins plug the same pods too; both work side by side.
    let br = support::unique("ktbr");
    let ipam_dir = w.dir.path().join("ipam");
    let bconf = json!({
        "cniVersion": "1.0.0", "name": "refnet", "type": "bridge", "bridge": br,
        "ipam": {"type": "host-local", "subnet": "10.23.0.0/24", "dataDir": ipam_dir}
    });
    for p in [&a, &b] {
        let out = CniInvocation::new("/usr/lib/cni/bridge", "ADD")
            .inherit_env()
            .in_named_netns(w.chassis[0].netns())
            .container_id(&p.id)
            .netns(p.netns_path())
            .ifname("ref0")
            .config(&bconf)
            .run()
            .unwrap();
        assert!(out.success(), "bridge plugin: {}", out.stdout);
    }
    assert!(a.ping(&ip_of(&b, "ref0")), "reference bridge network");
    assert!(a.ping(&ip_of(&b, "net1")), "red still works beside it");
}

#[test]
fn cross_chassis_ping() {
    let w = World::new(2);
    w.network("red", Some("10.31.0.0/24"));
    let (a, b) = (Pod::new(), Pod::new());
    let ra = a.cni(&w, 0, "ADD", "net1", &w.conf("red", 0), None);
    let rb = b.cni(&w, 1, "ADD", "net1", &w.conf("red", 1), None);
    assert_eq!((ra.exit_code, rb.exit_code), (0, 0), "{ra:?}\n{rb:?}");
    assert!(a.ping_retry(&result_ip(&rb)), "no traffic across the geneve tunnel");
    // 1400-byte frames fit the tunnel (MTU 1400 inside).
    let big = a.exec(&["ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1372", &result_ip(&rb)]);
    assert!(big.status.success(), "{}", String::from_utf8_lossy(&big.stdout));
}

#[test]
fn concurrent_adds_into_one_switch() {
    let w = World::new(1);
    w.network("busy", Some("10.41.0.0/24"));
    let pods: Vec<Pod> = (0..20).map(|_| Pod::new()).collect();
    let conf = w.conf("busy", 0);
    let outs: Vec<support::CniOutcome> = std::thread::scope(|s| {
        let hs: Vec<_> = pods.iter().map(|p| s.spawn(|| p.cni(&w, 0, "ADD", "net1", &conf, None))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ips: Vec<String> = outs
        .iter()
        .map(|o| {
            assert_eq!(o.exit_code, 0, "{o:?}");
            result_ip(o)
        })
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 20, "addresses not distinct: {ips:?}");
    let up = w.nbctl(&["--bare", "--columns=up", "list", "Logical_Switch_Port"]);
    assert_eq!(up.split_whitespace().filter(|u| *u == "true").count(), 20, "{up}");
}

#[test]
fn del_is_idempotent_and_survives_a_gone_netns() {
    let w = World::new(1);
    w.network("red", Some("10.51.0.0/24"));
    let conf = w.conf("red", 0);
    let a = Pod::new();
    assert_eq!(a.cni(&w, 0, "ADD", "net1", &conf, None).exit_code, 0);
    let id = a.id.clone();
    drop(a); // the netns is gone before DEL
    let gone = std::path::PathBuf::from("/run/netns/does-not-exist");
    for _ in 0..2 {
        let d = w.plugin(0, "DEL").container_id(&id).netns(&gone).ifname("net1").config(&conf).run().unwrap();
        assert_eq!(d.exit_code, 0, "{d:?}");
    }
    // DEL without CNI_NETNS at all is fine too.
    let d = w.plugin(0, "DEL").container_id(&id).ifname("net1").config(&conf).run().unwrap();
    assert_eq!(d.exit_code, 0, "{d:?}");
    assert!(w.lsps().is_empty() && w.bridge_ports(0).is_empty() && w.host_veths(0).is_empty());
}

#[test]
fn vswitchd_restarted_between_add_and_del() {
    let w = World::new(1);
    w.network("red", Some("10.52.0.0/24"));
    let conf = w.conf("red", 0);
    let (a, b) = (Pod::new(), Pod::new());
    let rb = b.cni(&w, 0, "ADD", "net1", &conf, None);
    assert_eq!(a.cni(&w, 0, "ADD", "net1", &conf, None).exit_code, 0);
    w.chassis[0].restart_vswitchd().unwrap();
    assert!(a.ping_retry(&result_ip(&rb)), "traffic after the restart");
    assert_eq!(a.cni(&w, 0, "DEL", "net1", &conf, None).exit_code, 0);
    assert_eq!(w.bridge_ports(0).len(), 1);
    assert_eq!(w.lsps().len(), 1);
}

#[test]
fn errors_follow_the_spec_and_leave_nothing() {
    let w = World::new(1);
    w.network("red", Some("10.53.0.0/24"));
    let a = Pod::new();
    // Not JSON: code 6 (decode).
    let o = w.plugin(0, "ADD").container_id(&a.id).netns(a.netns_path()).ifname("net1").stdin_bytes(*b"{nope").run().unwrap();
    assert_eq!((o.exit_code, o.json["code"].as_u64()), (1, Some(6)), "{o:?}");
    assert!(o.json["msg"].as_str().unwrap().contains("JSON"));
    // Unknown network: code 7 naming it.
    let o = a.cni(&w, 0, "ADD", "net1", &w.conf("nosuchnet", 0), None);
    assert_eq!(o.json["code"], 7, "{o:?}");
    assert!(o.json["msg"].as_str().unwrap().contains("nosuchnet"));
    assert_eq!(o.json["cniVersion"], "1.0.0");
    w.assert_clean(&[&a]);
    // A static IP outside the subnet: code 7.
    let mut conf = w.conf("red", 0);
    conf["runtimeConfig"] = json!({"ips": ["10.99.0.5/24"]});
    let o = a.cni(&w, 0, "ADD", "net1", &conf, None);
    assert_eq!(o.json["code"], 7, "{o:?}");
    w.assert_clean(&[&a]);
    // A dead Northbound database: code 11 (try again later), nothing plugged.
    let mut conf = w.conf("red", 0);
    conf["nb"] = json!(format!("unix:{}/nope.sock", w.dir.path().display()));
    let o = a.cni(&w, 0, "ADD", "net1", &conf, None);
    assert_eq!(o.json["code"], 11, "{o:?}");
    w.assert_clean(&[&a]);
    // A port that never comes up (no chassis claims it: its bridge is not br-int) is rolled back.
    w.chassis[0].vsctl(&["add-br", "br-other", "--", "set", "Bridge", "br-other", "datapath_type=netdev"]).unwrap();
    let mut conf = w.conf("red", 0);
    conf["bridge"] = json!("br-other");
    conf["port_up_timeout_ms"] = json!(1500);
    let o = a.cni(&w, 0, "ADD", "net1", &conf, None);
    assert_eq!(o.json["code"], 11, "{o:?}");
    assert!(o.json["msg"].as_str().unwrap().contains("did not come up"), "{o:?}");
    assert!(w.chassis[0].vsctl(&["list-ports", "br-other"]).unwrap().trim().is_empty());
    w.chassis[0].vsctl(&["del-br", "br-other"]).unwrap();
    w.assert_clean(&[&a]);
}

#[test]
fn check_gc_and_status() {
    let w = World::new(1);
    w.network("red", Some("10.54.0.0/24"));
    let mut conf = w.conf("red", 0);
    conf["cniVersion"] = json!("1.1.0");
    let (a, b) = (Pod::new(), Pod::new());
    let ra = a.cni(&w, 0, "ADD", "net1", &conf, None);
    assert_eq!(ra.exit_code, 0, "{ra:?}");
    assert_eq!(b.cni(&w, 0, "ADD", "net1", &conf, None).exit_code, 0);

    let mut check = conf.clone();
    check["prevResult"] = ra.json.clone();
    let o = a.cni(&w, 0, "CHECK", "net1", &check, None);
    assert_eq!(o.exit_code, 0, "{o:?}");
    let addr = ra.json["ips"][0]["address"].as_str().unwrap();
    a.exec(&["ip", "addr", "del", addr, "dev", "net1"]);
    let o = a.cni(&w, 0, "CHECK", "net1", &check, None);
    assert_ne!(o.exit_code, 0);
    assert!(o.json["msg"].as_str().unwrap().contains("lacks address"), "{o:?}");

    let o = w.plugin(0, "STATUS").config(&conf).run().unwrap();
    assert_eq!(o.exit_code, 0, "{o:?}");
    let mut dead = conf.clone();
    dead["nb"] = json!("tcp:127.0.0.1:1");
    let o = w.plugin(0, "STATUS").config(&dead).run().unwrap();
    assert_eq!(o.json["code"], 50, "{o:?}");

    // GC keeps a's attachment and removes b's.
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": a.id, "ifname": "net1"}]);
    let o = w.plugin(0, "GC").config(&gc).run().unwrap();
    assert_eq!(o.exit_code, 0, "{o:?}");
    assert_eq!(w.lsps().len(), 1);
    assert_eq!(w.bridge_ports(0).len(), 1);
    assert_eq!(w.host_veths(0).len(), 1);
    let left = b.exec(&["ip", "-o", "link"]);
    assert!(!String::from_utf8_lossy(&left.stdout).contains("net1"));
}

#[test]
fn multus_delegate_with_older_spec_versions() {
    let w = World::new(1);
    w.network("red", Some("10.55.0.0/24"));
    let a = Pod::new();
    // What Multus hands a delegate: the NAD's config with capabilities and runtimeConfig, pod identity in CNI_ARGS.
    let mut conf = w.conf("red", 0);
    conf["cniVersion"] = json!("0.3.1");
    conf["capabilities"] = json!({"ips": true, "mac": true});
    conf["runtimeConfig"] = json!({"ips": ["10.55.0.77/24"], "mac": "0a:00:00:55:00:77"});
    let args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=team-a;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=1234";
    let r = a.cni(&w, 0, "ADD", "net1", &conf, Some(args));
    assert_eq!(r.exit_code, 0, "{r:?}");
    assert_eq!(r.json["cniVersion"], "0.3.1");
    assert_eq!(r.json["ips"][0]["version"], "4", "0.3.x results carry the IP version: {r:?}");
    assert_eq!(r.json["ips"][0]["address"], "10.55.0.77/24");
    let uid = w.nbctl(&["get", "Logical_Switch_Port", "team-a_web-0_net1", "external_ids:\"kubetron.io/pod-uid\""]);
    assert_eq!(uid.trim().trim_matches('"'), "1234");
    // 0.4.0 CHECK with the prevResult converted by the runtime.
    let mut check = conf.clone();
    check["cniVersion"] = json!("0.4.0");
    check["prevResult"] = r.json.clone();
    let c = a.cni(&w, 0, "CHECK", "net1", &check, Some(args));
    assert_eq!(c.exit_code, 0, "{c:?}");
    // VERSION answers every version the plugin speaks.
    let v = w.plugin(0, "VERSION").stdin_bytes(*br#"{"cniVersion":"0.3.1"}"#).run().unwrap();
    let versions = v.json["supportedVersions"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect::<Vec<_>>();
    for want in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        assert!(versions.contains(&want.to_string()), "{v:?}");
    }
    let d = a.cni(&w, 0, "DEL", "net1", &conf, Some(args));
    assert_eq!(d.exit_code, 0, "{d:?}");
    assert!(w.lsps().is_empty());
}

/// The `external_ids` of the local OVS Interface bound to logical port `lsp` on chassis `node`.
fn iface_ids_of(w: &World, node: usize, lsp: &str) -> String {
    w.chassis[node].vsctl(&["--bare", "--columns=external_ids", "find", "Interface", &format!("external_ids:iface-id={lsp}")]).unwrap()
}

#[test]
fn the_pod_uid_binds_the_interface_to_the_port_generation() {
    let w = World::new(1);
    w.network("vnet", Some("10.31.0.0/24"));
    // The controller's port for pod ns1/v (UID uid-v): bound to that pod generation.
    w.nbctl(&[
        "lsp-add",
        "vnet",
        "ns1_v_net1",
        "--",
        "lsp-set-addresses",
        "ns1_v_net1",
        "dynamic",
        "--",
        "set",
        "Logical_Switch_Port",
        "ns1_v_net1",
        "options:iface-id-ver=uid-v",
        "external_ids:kubetron.io/owner=controller",
        "external_ids:kubetron.io/pod-namespace=ns1",
        "external_ids:kubetron.io/pod-name=v",
        "external_ids:kubetron.io/pod-uid=uid-v",
    ]);
    let conf = w.conf("vnet", 0);
    let (old, v, p) = (Pod::new(), Pod::new(), Pod::new());
    // A sandbox of another generation of ns1/v is refused at once (the controller re-makes the port).
    let o = old.cni(&w, 0, "ADD", "net1", &conf, Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=v;K8S_POD_UID=uid-old"));
    assert_eq!((o.exit_code, o.json["code"].as_u64()), (1, Some(11)), "{o:?}");
    assert!(iface_ids_of(&w, 0, "ns1_v_net1").is_empty(), "nothing plugged for the old generation");
    // The right generation plugs with iface-id-ver = its UID; ADD waits for the port to come up,
    // which ovn-controller allows only because the versions match.
    let r = v.cni(&w, 0, "ADD", "net1", &conf, Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=v;K8S_POD_UID=uid-v"));
    assert_eq!(r.exit_code, 0, "{r:?}");
    let ids = iface_ids_of(&w, 0, "ns1_v_net1");
    assert!(ids.contains("iface-id-ver=uid-v"), "{ids}");
    assert_eq!(w.nbctl(&["get", "Logical_Switch_Port", "ns1_v_net1", "up"]).trim(), "true");

    // A port the plugin makes itself is bound to the pod generation too (options:iface-id-ver =
    // K8S_POD_UID), and its Interface carries the same UID: it comes up, and the controller can
    // adopt it without unbinding it.
    let r = p.cni(&w, 0, "ADD", "net1", &conf, Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=p;K8S_POD_UID=uid-p"));
    assert_eq!(r.exit_code, 0, "{r:?}");
    assert_eq!(w.nbctl(&["get", "Logical_Switch_Port", "ns1_p_net1", "options:iface-id-ver"]).trim().trim_matches('"'), "uid-p");
    assert!(iface_ids_of(&w, 0, "ns1_p_net1").contains("iface-id-ver=uid-p"));
    assert!(v.ping_retry(&result_ip(&r)), "pod v cannot reach pod p");
    // Another generation of ns1/p replaces the plugin's port (standalone: the plugin is the NB
    // writer) with one bound to the new UID; an Interface the old sandbox left elsewhere can no
    // longer bind it.
    let p_new = Pod::new();
    let o = p_new.cni(&w, 0, "ADD", "net1", &conf, Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=p;K8S_POD_UID=uid-p-2"));
    assert_eq!(o.exit_code, 0, "{o:?}");
    assert_eq!(w.nbctl(&["get", "Logical_Switch_Port", "ns1_p_net1", "options:iface-id-ver"]).trim().trim_matches('"'), "uid-p-2");

    // A runtime that passes no K8S_POD_UID (the port is found by the pod's namespace and name):
    // the new sandbox takes over the port with the port's own iface-id-ver, and it binds.
    let v2 = Pod::new();
    let r = v2.cni(&w, 0, "ADD", "net1", &conf, Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=v"));
    assert_eq!(r.exit_code, 0, "{r:?}");
    let ids = iface_ids_of(&w, 0, "ns1_v_net1");
    assert!(ids.contains("iface-id-ver=uid-v"), "{ids}");

    for (pod, name) in [(&v, "v"), (&v2, "v"), (&p, "p"), (&p_new, "p")] {
        let args = format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME={name}");
        assert_eq!(pod.cni(&w, 0, "DEL", "net1", &conf, Some(&args)).exit_code, 0);
    }
    w.nbctl(&["--if-exists", "lsp-del", "ns1_v_net1"]);
    w.nbctl(&["--if-exists", "lsp-del", "ns1_p_net1"]);
    assert!(w.bridge_ports(0).is_empty(), "{:?}", w.bridge_ports(0));
    assert!(w.host_veths(0).is_empty(), "{:?}", w.host_veths(0));
}

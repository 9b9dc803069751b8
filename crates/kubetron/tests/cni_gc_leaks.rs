//! CNI GC scope and leaked attachments, against real OVN and the real `kubetron` binary:
//! GC of one network never touches another's attachments; a pod force-deleted while the
//! Northbound database was down (its DELs failed, its sandbox was then removed) leaves ports that
//! a same-name successor replaces (never adopts), and that CNI GC and `kubetron gc` remove.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{result_ip, CniOutcome, Pod, World};

const NS: &str = "team-a";

fn pod_args(name: &str, uid: &str, container: &str) -> String {
    format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={NS};K8S_POD_NAME={name};K8S_POD_UID={uid};K8S_POD_INFRA_CONTAINER_ID={container}")
}

fn conf(w: &World, network: &str) -> Value {
    let mut c = w.conf(network, 0);
    c["cniVersion"] = json!("1.1.0");
    c
}

/// One `external_ids` value of a logical switch port ("" when absent).
fn lsp_id(w: &World, lsp: &str, key: &str) -> String {
    w.central
        .nbctl(&["--if-exists", "get", "Logical_Switch_Port", lsp, &format!("external_ids:\"{key}\"")])
        .unwrap_or_default()
        .trim()
        .trim_matches('"')
        .to_string()
}

fn lsp_uuid(w: &World, lsp: &str) -> String {
    w.nbctl(&["get", "Logical_Switch_Port", lsp, "_uuid"]).trim().to_string()
}

/// Names of the Interface rows of chassis 0 that kubetron plugged (tagged with a container ID).
fn kubetron_ifaces(w: &World) -> Vec<String> {
    let out = w.chassis[0].vsctl(&["--format=json", "--columns=name,external_ids", "list", "Interface"]).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row[1][1].as_array().unwrap().iter().any(|kv| kv[0] == "kubetron.io/container-id"))
        .map(|row| row[0].as_str().unwrap().to_string())
        .collect()
}

/// A logical switch port made with ovn-nbctl, tagged with `ids`.
fn port_by_hand(w: &World, switch: &str, name: &str, addresses: &str, ids: &[(&str, &str)]) {
    let tags: Vec<String> = ids.iter().map(|(k, v)| format!("external_ids:\"{k}\"={v}")).collect();
    let mut args = vec!["lsp-add", switch, name, "--", "lsp-set-addresses", name, addresses, "--", "set", "Logical_Switch_Port", name];
    args.extend(tags.iter().map(String::as_str));
    w.nbctl(&args);
}

fn has_link(p: &Pod, ifname: &str) -> bool {
    p.exec(&["ip", "link", "show", ifname]).status.success()
}

fn gc(w: &World, network: &str, valid: &[(&Pod, &str)]) -> CniOutcome {
    let mut c = conf(w, network);
    c["cni.dev/valid-attachments"] = Value::Array(valid.iter().map(|(p, i)| json!({"containerID": p.id, "ifname": i})).collect());
    w.plugin(0, "GC").config(&c).run().unwrap()
}

fn kubetron_gc(w: &World, extra: &[&str]) -> (bool, String) {
    let (nb, ovs) = (w.central.nb_remote(), w.chassis[0].db_remote());
    let mut args = vec!["netns", "exec", w.chassis[0].netns(), support::kubetron_bin(), "gc", "--nb", &nb, "--ovs", &ovs];
    args.extend_from_slice(extra);
    let out = Command::new("ip").args(&args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Polls until `f` holds (bounded).
fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_clean(w: &World) {
    w.assert_clean(&[]);
    assert!(kubetron_ifaces(w).is_empty(), "OVS interfaces left: {:?}", kubetron_ifaces(w));
}

#[test]
fn gc_is_scoped_to_its_network() {
    let w = World::new(1);
    w.network("red", Some("10.61.0.0/24"));
    w.network("blue", Some("10.62.0.0/24"));
    let (red, blue) = (conf(&w, "red"), conf(&w, "blue"));
    let (a, b) = (Pod::new(), Pod::new());
    for p in [&a, &b] {
        assert_eq!(p.cni(&w, 0, "ADD", "net1", &red, None).exit_code, 0);
        let o = p.cni(&w, 0, "ADD", "net2", &blue, None);
        assert_eq!(o.exit_code, 0, "{o:?}");
    }
    // Ports GC of this node must never touch: another node's port of red, and the controller's.
    let other_node = [
        ("kubetron.io/owner", "cni"),
        ("kubetron.io/cni-network", "red"),
        ("kubetron.io/node", "node9"),
        ("kubetron.io/container-id", "elsewhere"),
        ("kubetron.io/interface", "net1"),
    ];
    port_by_hand(&w, "red", "other-node-port", "dynamic", &other_node);
    port_by_hand(&w, "red", "controller-port", "dynamic", &[("kubetron.io/owner", "controller"), ("kubetron.io/pod-uid", "u-ctl")]);
    let blue_ip_b = {
        let o = String::from_utf8(b.exec(&["ip", "-o", "-4", "addr", "show", "net2"]).stdout).unwrap();
        o.split_whitespace().nth(3).unwrap().split('/').next().unwrap().to_string()
    };
    assert_eq!(w.lsps().len(), 6);

    // GC for red listing all of red's attachments: nothing of blue goes.
    let o = gc(&w, "red", &[(&a, "net1"), (&b, "net1")]);
    assert_eq!(o.exit_code, 0, "{o:?}");
    assert_eq!(w.lsps().len(), 6, "{:?}", w.lsps());
    assert_eq!(w.bridge_ports(0).len(), 4, "{:?}", w.bridge_ports(0));
    assert_eq!(w.host_veths(0).len(), 4, "{:?}", w.host_veths(0));
    assert_eq!(kubetron_ifaces(&w).len(), 4);
    for p in [&a, &b] {
        assert!(has_link(p, "net1") && has_link(p, "net2"));
    }

    // GC for red with only a's: b's red attachment goes, b's blue one stays.
    let o = gc(&w, "red", &[(&a, "net1")]);
    assert_eq!(o.exit_code, 0, "{o:?}");
    assert!(!has_link(&b, "net1") && has_link(&b, "net2") && has_link(&a, "net1") && has_link(&a, "net2"));
    assert_eq!(w.lsps().len(), 5, "{:?}", w.lsps());

    // GC for red with nothing valid: red's only; blue keeps working.
    let o = gc(&w, "red", &[]);
    assert_eq!(o.exit_code, 0, "{o:?}");
    assert!(!has_link(&a, "net1") && has_link(&a, "net2") && has_link(&b, "net2"));
    let mut left = w.lsps();
    left.sort();
    assert_eq!(left.len(), 4, "{left:?}");
    assert!(left.contains(&"other-node-port".to_string()) && left.contains(&"controller-port".to_string()), "{left:?}");
    assert_eq!(w.bridge_ports(0).len(), 2);
    assert_eq!(w.host_veths(0).len(), 2);
    assert!(a.ping_retry(&blue_ip_b), "blue no longer works after GC of red");

    let o = gc(&w, "blue", &[]);
    assert_eq!(o.exit_code, 0, "{o:?}");
    assert!(!has_link(&a, "net2") && !has_link(&b, "net2"));
    w.nbctl(&["lsp-del", "other-node-port"]);
    w.nbctl(&["lsp-del", "controller-port"]);
    assert_clean(&w);
}

/// What a leak left: the old pod's port names and what they held.
struct Leak {
    red_port: String,
    blue_port: String,
    old_container: String,
}

/// ADDs pod `NS/name` (UID `uid`) to red (static `red_ip`) and blue (dynamic), stops the NB,
/// sees its DELs fail with code 11, removes its sandbox, restarts the NB.
fn leak(w: &mut World, name: &str, uid: &str, red_ip: &str) -> Leak {
    let p = Pod::new();
    let args = pod_args(name, uid, &p.id);
    let mut red = conf(w, "red");
    red["runtimeConfig"] = json!({"ips": [format!("{red_ip}/24")]});
    let o = p.cni(w, 0, "ADD", "net1", &red, Some(&args));
    assert_eq!(o.exit_code, 0, "{o:?}");
    assert_eq!(result_ip(&o), red_ip);
    let o = p.cni(w, 0, "ADD", "net2", &conf(w, "blue"), Some(&args));
    assert_eq!(o.exit_code, 0, "{o:?}");
    let (red_port, blue_port) = (format!("{NS}_{name}_net1"), format!("{NS}_{name}_net2"));

    w.central.nb_mut().stop().unwrap();
    for (ifname, c) in [("net1", &red), ("net2", &conf(w, "blue"))] {
        let o = p.cni(w, 0, "DEL", ifname, c, Some(&args));
        assert_eq!((o.exit_code, o.json["code"].as_u64()), (1, Some(11)), "DEL must fail while the NB is down: {o:?}");
    }
    let old_container = p.id.clone();
    drop(p); // the sandbox is removed without a successful DEL (the pod was force-deleted)
    w.central.nb_mut().restart().unwrap();
    // The local side went with the failed DELs; the logical switch ports leaked.
    assert_eq!(lsp_id(w, &red_port, "kubetron.io/pod-uid"), uid);
    assert_eq!(lsp_id(w, &blue_port, "kubetron.io/pod-uid"), uid);
    assert!(kubetron_ifaces(w).is_empty() && w.host_veths(0).is_empty());
    Leak { red_port, blue_port, old_container }
}

fn world() -> World {
    let w = World::new(1);
    w.network("red", Some("10.63.0.0/24"));
    w.network("blue", Some("10.64.0.0/24"));
    w
}

#[test]
fn same_name_recreate_after_a_leak_replaces_the_ports() {
    let mut w = world();
    let leak = leak(&mut w, "web-0", "uid-1", "10.63.0.50");
    let old_red = lsp_uuid(&w, &leak.red_port);
    let old_blue = lsp_uuid(&w, &leak.blue_port);
    let old_blue_addr = w.nbctl(&["get", "Logical_Switch_Port", &leak.blue_port, "dynamic_addresses"]);

    // The pod is re-created under the same name: new UID, new sandbox.
    let q = Pod::new();
    let args = pod_args("web-0", "uid-2", &q.id);
    let mut red = conf(&w, "red");
    red["runtimeConfig"] = json!({"ips": ["10.63.0.50/24"]});
    let o = q.cni(&w, 0, "ADD", "net1", &red, Some(&args));
    assert_eq!(o.exit_code, 0, "the old pod's static address is released and re-usable: {o:?}");
    assert_eq!(result_ip(&o), "10.63.0.50");
    let o = q.cni(&w, 0, "ADD", "net2", &conf(&w, "blue"), Some(&args));
    assert_eq!(o.exit_code, 0, "{o:?}");
    for port in [&leak.red_port, &leak.blue_port] {
        assert_eq!(lsp_id(&w, port, "kubetron.io/pod-uid"), "uid-2", "{port} still carries the old pod's UID");
        assert_eq!(lsp_id(&w, port, "kubetron.io/container-id"), q.id, "{port}");
        // What GC finds attachments by: node, network, netns.
        assert_eq!(lsp_id(&w, port, "kubetron.io/node"), w.chassis[0].name());
        assert_eq!(lsp_id(&w, port, "kubetron.io/netns"), q.netns_path().display().to_string());
    }
    assert_eq!(lsp_id(&w, &leak.blue_port, "kubetron.io/cni-network"), "blue");
    assert_ne!(lsp_uuid(&w, &leak.red_port), old_red, "the old red port was adopted, not replaced");
    assert_ne!(lsp_uuid(&w, &leak.blue_port), old_blue, "the old blue port was adopted, not replaced");
    assert_eq!(w.lsps().len(), 2, "{:?}", w.lsps());
    // The new blue port got its own allocation from northd (the old row and its address are gone).
    let new_blue_addr = w.nbctl(&["get", "Logical_Switch_Port", &leak.blue_port, "dynamic_addresses"]);
    assert!(new_blue_addr.contains("10.64.0."), "{new_blue_addr} (old: {old_blue_addr})");
    let all_dyn = w.nbctl(&["--bare", "--columns=dynamic_addresses", "list", "Logical_Switch_Port"]);
    assert_eq!(all_dyn.matches("10.64.0.").count(), 1, "{all_dyn}");
    assert_eq!(w.bridge_ports(0).len(), 2, "{:?}", w.bridge_ports(0));

    // A late DEL of the old sandbox (a runtime retrying) must not touch the new pod's ports.
    let old_args = pod_args("web-0", "uid-1", &leak.old_container);
    let d = w.plugin(0, "DEL").container_id(&leak.old_container).ifname("net1").args(&old_args).config(&red).run().unwrap();
    assert_eq!(d.exit_code, 0, "{d:?}");
    assert_eq!(w.lsps().len(), 2);
    assert!(has_link(&q, "net1"));

    for (ifname, c) in [("net1", &red), ("net2", &conf(&w, "blue"))] {
        let o = q.cni(&w, 0, "DEL", ifname, c, Some(&args));
        assert_eq!(o.exit_code, 0, "{o:?}");
    }
    assert_clean(&w);
}

#[test]
fn cni_gc_removes_leaked_ports_of_its_network_only() {
    let mut w = world();
    let leak = leak(&mut w, "web-1", "uid-1", "10.63.0.51");
    // A live pod on both networks, which GC must keep.
    let live = Pod::new();
    let args = pod_args("live-0", "uid-live", &live.id);
    assert_eq!(live.cni(&w, 0, "ADD", "net1", &conf(&w, "red"), Some(&args)).exit_code, 0);
    assert_eq!(live.cni(&w, 0, "ADD", "net2", &conf(&w, "blue"), Some(&args)).exit_code, 0);

    let o = gc(&w, "red", &[(&live, "net1")]);
    assert_eq!(o.exit_code, 0, "{o:?}");
    let names = w.lsps();
    assert!(!names.contains(&leak.red_port), "red's leaked port survived GC of red: {names:?}");
    assert!(names.contains(&leak.blue_port), "GC of red removed blue's port: {names:?}");
    assert_eq!(names.len(), 3, "{names:?}");

    let o = gc(&w, "blue", &[(&live, "net2")]);
    assert_eq!(o.exit_code, 0, "{o:?}");
    let names = w.lsps();
    assert!(!names.contains(&leak.blue_port), "{names:?}");
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(has_link(&live, "net1") && has_link(&live, "net2"));
    assert_eq!(w.bridge_ports(0).len(), 2);
    // The leaked static address is free again.
    let p = Pod::new();
    let mut red = conf(&w, "red");
    red["runtimeConfig"] = json!({"ips": ["10.63.0.51/24"]});
    let o = p.cni(&w, 0, "ADD", "net1", &red, None);
    assert_eq!(o.exit_code, 0, "{o:?}");
    assert_eq!(p.cni(&w, 0, "DEL", "net1", &red, None).exit_code, 0);

    for (ifname, c) in [("net1", conf(&w, "red")), ("net2", conf(&w, "blue"))] {
        assert_eq!(live.cni(&w, 0, "DEL", ifname, &c, Some(&args)).exit_code, 0);
    }
    assert_clean(&w);
}

#[test]
fn kubetron_gc_removes_attachments_whose_netns_is_gone() {
    let mut w = world();
    let leak = leak(&mut w, "web-2", "uid-1", "10.63.0.52");
    let live = Pod::new();
    let args = pod_args("live-1", "uid-live", &live.id);
    assert_eq!(live.cni(&w, 0, "ADD", "net1", &conf(&w, "red"), Some(&args)).exit_code, 0);
    assert_eq!(live.cni(&w, 0, "ADD", "net2", &conf(&w, "blue"), Some(&args)).exit_code, 0);
    // A sandbox removed without any DEL: its bridge port and logical switch port stay behind.
    let gone = Pod::new();
    let gargs = pod_args("gone-0", "uid-gone", &gone.id);
    assert_eq!(gone.cni(&w, 0, "ADD", "net1", &conf(&w, "red"), Some(&gargs)).exit_code, 0);
    drop(gone);
    eventually("the removed sandbox's veth to disappear", || w.host_veths(0).len() == 2);
    assert_eq!(kubetron_ifaces(&w).len(), 3);
    assert_eq!(w.lsps().len(), 5);

    let (ok, out) = kubetron_gc(&w, &["--dry-run"]);
    assert!(ok, "{out}");
    assert_eq!(out.matches("would remove network=").count(), 3, "{out}");
    assert!(out.contains(&leak.red_port) && out.contains(&leak.blue_port) && out.contains("team-a_gone-0_net1"), "{out}");
    assert_eq!(w.lsps().len(), 5, "--dry-run removed something");
    assert_eq!(kubetron_ifaces(&w).len(), 3, "--dry-run removed something");

    let (ok, out) = kubetron_gc(&w, &["--network", "blue"]);
    assert!(ok, "{out}");
    assert_eq!(out.matches("removed network=blue").count(), 1, "{out}");
    assert!(!w.lsps().contains(&leak.blue_port) && w.lsps().contains(&leak.red_port));

    let (ok, out) = kubetron_gc(&w, &[]);
    assert!(ok, "{out}");
    assert_eq!(out.matches("removed network=red").count(), 2, "{out}");
    let mut names = w.lsps();
    names.sort();
    assert_eq!(names, vec!["team-a_live-1_net1".to_string(), "team-a_live-1_net2".to_string()]);
    assert_eq!(kubetron_ifaces(&w).len(), 2);
    assert!(has_link(&live, "net1") && has_link(&live, "net2"));
    let (ok, out) = kubetron_gc(&w, &[]);
    assert!(ok && out.contains("0 attachment(s) removed"), "{out}");

    for (ifname, c) in [("net1", conf(&w, "red")), ("net2", conf(&w, "blue"))] {
        assert_eq!(live.cni(&w, 0, "DEL", ifname, &c, Some(&args)).exit_code, 0);
    }
    assert_clean(&w);
}

#[test]
fn add_replaces_a_previous_sandboxs_ports_and_refuses_the_controllers_port_of_another_pod() {
    let w = world();
    // An earlier sandbox of pod web-3 that was never deleted: its port, bridge port and veth stay.
    let old = Pod::new();
    let o = old.cni(&w, 0, "ADD", "net1", &conf(&w, "red"), Some(&pod_args("web-3", "uid-1", &old.id)));
    assert_eq!(o.exit_code, 0, "{o:?}");
    let old_port = w.bridge_ports(0);
    assert_eq!(old_port.len(), 1);

    let new = Pod::new();
    let args = pod_args("web-3", "uid-2", &new.id);
    let o = new.cni(&w, 0, "ADD", "net1", &conf(&w, "red"), Some(&args));
    assert_eq!(o.exit_code, 0, "{o:?}");
    let ports = w.bridge_ports(0);
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_ne!(ports, old_port, "the old sandbox's bridge port is still there");
    assert_eq!(w.host_veths(0).len(), 1, "{:?}", w.host_veths(0));
    assert!(!has_link(&old, "net1"), "the old sandbox still has its interface");
    assert_eq!(lsp_id(&w, "team-a_web-3_net1", "kubetron.io/pod-uid"), "uid-2");
    assert_eq!(lsp_id(&w, "team-a_web-3_net1", "kubetron.io/container-id"), new.id);
    assert_eq!(new.cni(&w, 0, "DEL", "net1", &conf(&w, "red"), Some(&args)).exit_code, 0);
    drop(old);
    assert_clean(&w);

    // The controller made this pod name's port for another pod UID: refused (code 11), nothing plugged.
    let ids = [
        ("kubetron.io/owner", "controller"),
        ("kubetron.io/pod-uid", "uid-A"),
        ("kubetron.io/pod-namespace", "team-a"),
        ("kubetron.io/pod-name", "db-0"),
    ];
    port_by_hand(&w, "red", "team-a_db-0_net1", "0a:00:00:63:00:63 10.63.0.99", &ids);
    let p = Pod::new();
    let o = p.cni(&w, 0, "ADD", "net1", &conf(&w, "red"), Some(&pod_args("db-0", "uid-B", &p.id)));
    assert_eq!(o.json["code"], 11, "{o:?}");
    assert!(o.json["msg"].as_str().unwrap().contains("uid-A"), "{o:?}");
    assert!(w.bridge_ports(0).is_empty() && w.host_veths(0).is_empty() && !has_link(&p, "net1"));
    assert_eq!(lsp_id(&w, "team-a_db-0_net1", "kubetron.io/pod-uid"), "uid-A");
    // For its own pod UID the controller's port is used as it is.
    let args = pod_args("db-0", "uid-A", &p.id);
    let o = p.cni(&w, 0, "ADD", "net1", &conf(&w, "red"), Some(&args));
    assert_eq!(o.exit_code, 0, "{o:?}");
    assert_eq!(result_ip(&o), "10.63.0.99");
    assert_eq!(p.cni(&w, 0, "DEL", "net1", &conf(&w, "red"), Some(&args)).exit_code, 0);
    assert_eq!(w.lsps(), vec!["team-a_db-0_net1".to_string()], "DEL removed the controller's port");
    w.nbctl(&["lsp-del", "team-a_db-0_net1"]);
    assert_clean(&w);
}

//! kubetron in a real one-node cluster, installed as a user installs it: images imported without a
//! registry, `kubectl apply -k` of the sandbox overlay of deploy/, the kubelet calling the CNI shim that
//! the node DaemonSet installed (chained after the default `bridge` network), the scheduler placing pods
//! by the node agent's device-plugin resources, the webhook called by the apiserver.
//!
//! Needs `KUBETRON_CLUSTER_TESTS=1` (scripts/test.sh sets it after building the Kubernetes binaries,
//! `KUBE_BIN_DIR`) and `KUBETRON_IMAGES` (the index scripts/images.sh printed; scripts/test.sh builds
//! the images first). One cluster serves every scenario, in order (a cluster takes ~30 s to start and
//! the machine has one set of fixed host names for it).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use daemons::cluster::{FIXED_DIRS, KUBELET_SYSCTLS};
use sandbox::cluster::{pod_yaml, ClusterOptions, ClusterSandbox, Network, DEMO_PODS, PHYSNET};

fn images_index() -> PathBuf {
    PathBuf::from(std::env::var_os("KUBETRON_IMAGES").expect("KUBETRON_IMAGES (scripts/test.sh sets it) names the images index"))
}

/// What the cluster may change on the host, and must put back. Only the cluster's own kinds of thing
/// are compared (other processes on the machine make and remove their own netns, links and mounts
/// meanwhile): `kt-*` links and veths (the bridge plugin's host ends), `cni-*` netns and the sandbox's
/// chassis netns, mounts of the runtime and the kubelet.
#[derive(Debug, PartialEq, Eq)]
struct HostSnapshot {
    links: BTreeSet<String>,
    netns: BTreeSet<String>,
    sysctls: Vec<(String, String)>,
    dirs: Vec<(String, bool)>,
    iptables: String,
    mounts: Vec<String>,
}

fn snapshot() -> HostSnapshot {
    let names = |p: &str, keep: &dyn Fn(&str) -> bool| -> BTreeSet<String> {
        std::fs::read_dir(p)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| keep(n)).collect())
            .unwrap_or_default()
    };
    let sysctls = KUBELET_SYSCTLS
        .iter()
        .map(|k| {
            (k.to_string(), std::fs::read_to_string(format!("/proc/sys/{}", k.replace('.', "/"))).unwrap_or_default().trim().to_string())
        })
        .collect();
    let dirs = FIXED_DIRS.iter().chain(&["/run/kubetron"]).map(|d| (d.to_string(), std::path::Path::new(d).exists())).collect();
    // Rules and user chains only: no counters, no dated comments, no empty built-in tables (which
    // merely listing them can create).
    const BUILTIN: [&str; 5] = [":PREROUTING ", ":INPUT ", ":FORWARD ", ":OUTPUT ", ":POSTROUTING "];
    let iptables = std::process::Command::new("iptables-save")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| l.starts_with("-A") || (l.starts_with(':') && !BUILTIN.iter().any(|b| l.starts_with(b))))
                .map(|l| l.split(" [").next().unwrap_or(l).to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let ours = |m: &str| m.starts_with("/run/netns/cni-") || m.contains("containerd") || m.contains("kubelet") || m.contains("kt-cluster-");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| m.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| ours(m)).map(str::to_string).collect())
        .unwrap_or_default();
    HostSnapshot {
        links: names("/sys/class/net", &|n| n.starts_with("kt-") || n.starts_with("veth")),
        netns: names("/run/netns", &|n| n.starts_with("cni-") || n == sandbox::cluster::CHASSIS_NETNS),
        sysctls,
        dirs,
        iptables,
        mounts,
    }
}

fn nbctl(sb: &ClusterSandbox, args: &[&str]) -> String {
    sb.central.nbctl(args).expect("ovn-nbctl")
}

/// Logical switch ports of `switch` that belong to pods (not localnet ports).
fn pod_ports(sb: &ClusterSandbox, switch: &str) -> BTreeSet<String> {
    nbctl(sb, &["--bare", "--columns=name", "find", "Logical_Switch_Port", "type=\"\""])
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .filter(|p| nbctl(sb, &["lsp-get-ls", p]).contains(switch))
        .collect()
}

fn br_int_ports(sb: &ClusterSandbox) -> BTreeSet<String> {
    sb.chassis
        .vsctl(&["list-ports", "br-int"])
        .expect("ovs-vsctl")
        .lines()
        .map(str::to_string)
        .filter(|p| !p.starts_with("ovn-") && !p.contains("patch"))
        .collect()
}

#[test]
#[cfg_attr(not(cluster_tests), ignore = "needs KUBETRON_CLUSTER_TESTS=1, KUBE_BIN_DIR and KUBETRON_IMAGES (scripts/test.sh sets them)")]
fn kubetron_in_a_real_cluster() {
    telemetry::init_logging("info");
    let before = snapshot();
    let tmp = tempfile::Builder::new().prefix("kt-cluster-").tempdir().expect("tempdir");
    let sb =
        ClusterSandbox::up(&ClusterOptions { dir: tmp.path().join("sb"), images_index: Some(images_index()) }).expect("cluster sandbox up");

    demo(&sb);
    cni_entry_is_kept(&sb);
    physical_networks(&sb);
    forbidden_namespace(&sb);
    pod_deletion_cleans_up(&sb);
    burst_with_controller_restart(&sb);
    agent_restart_keeps_traffic(&sb);

    sb.stop().expect("teardown");
    let after = snapshot();
    assert_eq!(before, after, "the host is as it was before the cluster");
}

/// The seeds' demo: two pods on red and blue, Running, ping across both, the env var, network-status.
fn demo(sb: &ClusterSandbox) {
    let pods = sb.demo().expect("demo");
    for p in &pods {
        let ifaces: Vec<&str> = p.network_status.iter().filter_map(|s| s.interface.as_deref()).collect();
        assert_eq!(ifaces, ["eth0", "net1", "net2"], "{}: network-status {:?}", p.name, p.network_status);
        let eth0 = &p.network_status[0];
        assert!(eth0.default, "{}: eth0 is the default network's entry: {eth0:?}", p.name);
        assert!(eth0.ips.iter().any(|ip| ip.starts_with("10.244.0.")), "{}: eth0 on the pod network: {eth0:?}", p.name);
        let red = p.ip_on("red").expect("red address");
        assert!(red.starts_with("10.10.1."), "{}: red address {red}", p.name);
        assert!(
            p.addresses.contains(&format!("net1    inet {red}/24")) || p.addresses.contains(&format!("{red}/24")),
            "{}: {}",
            p.name,
            p.addresses
        );
        assert!(p.env_red.contains("net1"), "{}: NETWORK_INTERFACE_RED={:?}", p.name, p.env_red);
    }
    assert_ne!(pods[0].ip_on("red"), pods[1].ip_on("red"));
    // Both directions, on both networks (demo() pinged a -> b).
    for net in ["red", "blue"] {
        sb.ping("default", DEMO_PODS[1], &pods[0].ip_on(net).expect("ip")).expect("b -> a");
    }
}

/// The cluster network's plugin rewriting its configuration (as its own pod does when it restarts)
/// drops kubetron's entry: the node DaemonSet's keeper chains kubetron in again.
fn cni_entry_is_kept(sb: &ClusterSandbox) {
    let path = sb.cluster.cni_conf_dir().join("10-kt-podnet.conflist");
    let read = || -> serde_json::Value { serde_json::from_str(&std::fs::read_to_string(&path).expect("conflist")).expect("json") };
    let types = |v: &serde_json::Value| -> Vec<String> {
        v["plugins"].as_array().expect("plugins").iter().filter_map(|p| p["type"].as_str().map(str::to_string)).collect()
    };
    let mut conf = read();
    assert_eq!(types(&conf), ["bridge", "kubetron"], "install-cni chained kubetron after the cluster network");
    conf["plugins"].as_array_mut().expect("plugins").retain(|p| p["type"] != "kubetron");
    let tmp = path.with_extension("rewrite");
    std::fs::write(&tmp, serde_json::to_string_pretty(&conf).expect("json")).expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
    sb.wait_for("kubetron chained in again", Duration::from_secs(60), || (types(&read()) == ["bridge", "kubetron"]).then_some(()))
        .expect("the keeper restores the entry");
}

/// A pod asking for a network on a physical network the node maps is scheduled and Running (the node
/// agent advertises `kubetron.io/physnet1`); one on a physical network no node maps stays Pending with a
/// scheduling event naming the resource.
fn physical_networks(sb: &ClusterSandbox) {
    sb.make_network(&Network { name: "phys", prefix: "10.10.3", physnet: Some(PHYSNET) }).expect("phys");
    sb.make_network(&Network { name: "phys2", prefix: "10.10.4", physnet: Some("physnet2") }).expect("phys2");
    for nad in ["phys", "phys2"] {
        sb.wait_for(&format!("NAD {nad}"), Duration::from_secs(120), || {
            sb.kubectl(&["get", "network-attachment-definitions.k8s.cni.cncf.io", nad, "-o", "name"]).ok()
        })
        .expect("NAD synced");
    }
    let capacity = sb
        .kubectl(&["get", "node", sandbox::cluster::NODE, "-o", "jsonpath={.status.allocatable.kubetron\\.io/physnet1}"])
        .expect("node allocatable");
    assert!(capacity.trim().parse::<u32>().map(|n| n > 0).unwrap_or(false), "node advertises kubetron.io/physnet1: {capacity:?}");
    sb.apply(&pod_yaml("default", "on-phys", "phys", "")).expect("apply on-phys");
    sb.apply(&pod_yaml("default", "on-phys2", "phys2", "")).expect("apply on-phys2");
    sb.wait_ready("default", "on-phys", Duration::from_secs(180)).expect("on-phys Running");
    let limits = sb.kubectl(&["get", "pod", "on-phys2", "-o", "jsonpath={.spec.containers[0].resources.limits}"]).expect("limits");
    assert!(limits.contains("kubetron.io/physnet2"), "the webhook asked for the physical network's resource: {limits}");
    let event = sb
        .wait_for("a FailedScheduling event for on-phys2", Duration::from_secs(120), || {
            let ev = sb
                .kubectl(&[
                    "get",
                    "events",
                    "--field-selector",
                    "involvedObject.name=on-phys2,reason=FailedScheduling",
                    "-o",
                    "jsonpath={.items[*].message}",
                ])
                .ok()?;
            (!ev.trim().is_empty()).then_some(ev)
        })
        .expect("scheduling event");
    assert!(event.contains("kubetron.io/physnet2"), "the event names the resource: {event}");
    let phase = sb.kubectl(&["get", "pod", "on-phys2", "-o", "jsonpath={.status.phase}"]).expect("phase");
    assert_eq!(phase.trim(), "Pending");
    sb.kubectl(&["delete", "pod", "on-phys", "on-phys2", "--wait=true", "--timeout=120s"]).expect("delete");
}

/// A pod in a namespace that may not use `red` is refused at admission, with a message naming it.
fn forbidden_namespace(sb: &ClusterSandbox) {
    sb.kubectl(&["create", "namespace", "other"]).expect("namespace");
    let err = sb.apply(&pod_yaml("other", "intruder", "default/red", "")).expect_err("the webhook refuses it");
    let msg = err.to_string();
    assert!(msg.contains("red") && msg.contains("denied"), "refusal names the network: {msg}");
    // Pods asking for nothing are never blocked, wherever they are.
    sb.apply(&pod_yaml("other", "plain", "", "")).expect("a pod without networks");
    sb.wait_ready("other", "plain", Duration::from_secs(120)).expect("plain Running");
    sb.kubectl(&["delete", "namespace", "other", "--wait=false"]).expect("delete ns");
}

/// Deleting a pod removes its logical switch ports, its OVS ports and frees its addresses.
fn pod_deletion_cleans_up(sb: &ClusterSandbox) {
    let before_red = pod_ports(sb, "red");
    let before_ovs = br_int_ports(sb);
    sb.apply(&pod_yaml("default", "short-lived", "red", "")).expect("apply");
    sb.wait_ready("default", "short-lived", Duration::from_secs(120)).expect("Running");
    let ip = sb.wait_network_status("default", "short-lived", &["net1"]).expect("status")[1].ips[0].clone();
    assert_eq!(pod_ports(sb, "red").len(), before_red.len() + 1, "one more port on red");
    assert_eq!(br_int_ports(sb).len(), before_ovs.len() + 1, "one more OVS port");
    sb.kubectl(&["delete", "pod", "short-lived", "--wait=true", "--timeout=120s"]).expect("delete");
    sb.wait_for("the pod's logical switch port gone", Duration::from_secs(60), || (pod_ports(sb, "red") == before_red).then_some(()))
        .expect("LSP removed");
    sb.wait_for("the pod's OVS port gone", Duration::from_secs(60), || (br_int_ports(sb) == before_ovs).then_some(()))
        .expect("OVS port removed");
    let ip = ip.split('/').next().unwrap_or(&ip).to_string();
    let addrs = nbctl(sb, &["--bare", "--columns=dynamic_addresses,addresses", "list", "Logical_Switch_Port"]);
    assert!(!addrs.split_whitespace().any(|a| a == ip), "{ip} is free again: {addrs}");
}

/// 50 pods at once, the controller restarted in the middle: all Running with distinct addresses.
fn burst_with_controller_restart(sb: &ClusterSandbox) {
    let n = 50;
    let mut yaml = String::new();
    for i in 0..n {
        yaml.push_str(&pod_yaml("default", &format!("burst-{i}"), "red", ""));
        yaml.push_str("---\n");
    }
    let yaml = yaml.replace("metadata:\n  name: burst", "metadata:\n  labels: {burst: \"yes\"}\n  name: burst");
    sb.apply(&yaml).expect("apply 50 pods");
    sb.kubectl(&["-n", "kubetron", "delete", "pod", "-l", "app.kubernetes.io/name=kubetron-controller", "--wait=false"])
        .expect("restart controller");
    sb.kubectl(&["wait", "--for=condition=Ready", "pod", "-l", "burst=yes", "--timeout=600s"]).expect("all 50 Running");
    let mut ips = BTreeSet::new();
    for i in 0..n {
        let st = sb.wait_network_status("default", &format!("burst-{i}"), &["net1"]).expect("status");
        let ip = st.iter().find(|s| s.interface.as_deref() == Some("net1")).and_then(|s| s.ips.first().cloned()).expect("net1 ip");
        assert!(ips.insert(ip.clone()), "burst-{i}: address {ip} given twice");
    }
    assert_eq!(ips.len(), n);
    sb.kubectl(&["delete", "pod", "-l", "burst=yes", "--wait=true", "--timeout=300s"]).expect("delete burst");
}

/// The node agent's pod restarted while pods run: they keep their traffic; new pods still start.
fn agent_restart_keeps_traffic(sb: &ClusterSandbox) {
    let target = sb.wait_network_status("default", DEMO_PODS[1], &["net1"]).expect("status");
    let ip = target.iter().find(|s| s.interface.as_deref() == Some("net1")).and_then(|s| s.ips.first().cloned()).expect("ip");
    let ip = ip.split('/').next().unwrap_or(&ip).to_string();
    sb.kubectl(&["-n", "kubetron", "delete", "pod", "-l", "app.kubernetes.io/name=kubetron-node", "--wait=true", "--timeout=120s"])
        .expect("restart agent");
    // While the DaemonSet brings a new agent up, the running pods' datapath is untouched.
    sb.ping("default", DEMO_PODS[0], &ip).expect("traffic while the agent restarts");
    sb.kubectl(&["-n", "kubetron", "rollout", "status", "daemonset/kubetron-node", "--timeout=180s"]).expect("agent back");
    sb.apply(&pod_yaml("default", "after-restart", "red", "")).expect("apply");
    sb.wait_ready("default", "after-restart", Duration::from_secs(180)).expect("a new pod starts after the agent restart");
    sb.ping("default", "after-restart", &ip).expect("the new pod reaches the old one");
}

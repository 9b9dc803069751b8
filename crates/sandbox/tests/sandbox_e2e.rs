//! `kubetron-sandbox up/status/down` as a user runs it: real OVN on two chassis, pods plugged by
//! the real binary, pings; a second `up` is harmless; `down` leaves nothing behind.
//!
//! The sandbox runs the `kubetron` binary (and, with `--with-kube`, the `kubetron-cni` shim) from
//! its own target directory: build them first (`cargo build -p kubetron -p cni --bins`;
//! scripts/test.sh builds the whole workspace before testing).

use std::path::{Path, PathBuf};
use std::process::Command;

const SANDBOX: &str = env!("CARGO_BIN_EXE_kubetron-sandbox");

/// A binary the sandbox runs, next to it (where it looks itself); fails when it was not built.
fn sibling(name: &str) -> PathBuf {
    let p = Path::new(SANDBOX).with_file_name(name);
    assert!(p.is_file(), "{} is missing: build it with `cargo build -p kubetron -p cni --bins` (same profile)", p.display());
    p
}

/// Runs `kubetron-sandbox` with `args`, with no `KUBETRON_BIN` from the caller's environment: it
/// finds `kubetron` next to itself.
fn kubetron_sandbox(args: &[&str]) -> (i32, String) {
    let out = Command::new(SANDBOX).args(args).env_remove("KUBETRON_BIN").output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// Takes the sandbox in the directory it names down when dropped (whatever a test did before).
struct Down(String);

impl Drop for Down {
    fn drop(&mut self) {
        kubetron_sandbox(&["down", "--dir", &self.0]);
    }
}

/// The pids `sandbox status` lists as running.
fn running_pids(status: &str) -> Vec<i32> {
    status.lines().filter(|l| l.contains("running")).filter_map(|l| l.split_whitespace().nth(2)?.parse().ok()).collect()
}

/// After `down`: no state directory, none of `pids` running, no namespace with `prefix`.
fn assert_all_gone(dir: &std::path::Path, pids: &[i32], prefix: &str) {
    assert!(!dir.exists());
    for p in pids {
        assert!(!daemons::process::is_running(*p), "daemon {p} still running after down");
    }
    let netns = String::from_utf8(Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).unwrap();
    assert!(!netns.contains(prefix), "{netns}");
}

/// Without the kubetron binary, `up` says where it looked and how to fix it, and builds nothing:
/// next to a copy of the sandbox alone, and at a `--kubetron` / `KUBETRON_BIN` path that is not there.
#[test]
fn up_without_kubetron_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let alone = tmp.path().join("kubetron-sandbox");
    std::fs::copy(SANDBOX, &alone).unwrap();
    let dir = tmp.path().join("sbx");
    let run = |cmd: &mut Command, extra: &[&str]| {
        let out = cmd.args(["up", "--dir", dir.to_str().unwrap(), "--prefix", "ktsbmissing"]).args(extra).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = run(Command::new(&alone).env_remove("KUBETRON_BIN"), &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("{} is missing", tmp.path().join("kubetron").display())), "{err}");
    assert!(err.contains("--kubetron PATH or KUBETRON_BIN"), "{err}");

    let named = tmp.path().join("nowhere/kubetron");
    let (code, err) = run(Command::new(SANDBOX).env_remove("KUBETRON_BIN"), &["--kubetron", named.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("{} is missing", named.display())), "{err}");
    let (code, err) = run(Command::new(SANDBOX).env("KUBETRON_BIN", &named), &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("{} is missing", named.display())), "{err}");
    assert!(!dir.exists(), "nothing is built without the binary");
}

#[test]
fn sandbox_up_twice_status_down() {
    sibling("kubetron");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sbx");
    let dir_s = dir.to_str().unwrap();
    let prefix = format!("ktsb{}", std::process::id() % 100000);
    let (code, out) = kubetron_sandbox(&["up", "--dir", dir_s, "--nodes", "2", "--prefix", &prefix]);
    let cleanup = || kubetron_sandbox(&["down", "--dir", dir_s]);
    if code != 0 {
        cleanup();
        panic!("sandbox up failed:\n{out}");
    }
    assert!(out.contains("[6/6] Pinging"), "{out}");
    assert!(out.contains("red pod1 -> pod2") && out.contains("blue pod1 -> pod2"), "{out}");
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("pod")).collect();
    assert_eq!(rows.len(), 4, "{out}");
    assert!(rows.iter().all(|r| r.ends_with(" up")), "{out}");
    assert!(rows.iter().any(|r| r.contains("node2")), "pods on both chassis: {out}");

    let (code, again) = kubetron_sandbox(&["up", "--dir", dir_s, "--nodes", "2", "--prefix", &prefix]);
    assert_eq!(code, 0, "{again}");
    assert!(again.contains("already up"), "{again}");

    let (code, st) = kubetron_sandbox(&["status", "--dir", dir_s]);
    assert_eq!(code, 0, "{st}");
    assert_eq!(st.matches("running").count(), 9, "3 central + 3 per chassis: {st}");
    let pids = running_pids(&st);
    assert_eq!(pids.len(), 9);

    let (code, down) = cleanup();
    assert_eq!(code, 0, "{down}");
    assert_all_gone(&dir, &pids, &prefix);
    let (code, st) = kubetron_sandbox(&["status", "--dir", dir_s]);
    assert_eq!(code, 3, "{st}");
}

/// `sandbox up --with-kube` runs cluster mode end to end: etcd + kube-apiserver + `kubetron controller` +
/// one `kubetron node` per chassis; the pods are API objects, the controller hands them their addresses
/// (`kubetron.io/interfaces`) and network-status, the `kubetron-cni` shim has each chassis' agent plug
/// them from the hand-off (no node-side process knows the Northbound address), and they ping across
/// the two chassis. `down` stops the agents with the rest. Gated like the other real-API tests:
/// `KUBETRON_KUBE_TESTS=1`; needs `kubetron` and the shim built next to `kubetron-sandbox`.
#[cfg_attr(not(kube_tests), ignore = "needs KUBETRON_KUBE_TESTS=1 and KUBE_APISERVER_BIN (scripts/test.sh sets both)")]
#[test]
fn sandbox_with_kube() {
    if std::env::var("KUBETRON_KUBE_TESTS").as_deref() != Ok("1") {
        eprintln!("skipped: set KUBETRON_KUBE_TESTS=1 (needs kube-apiserver and etcd)");
        return;
    }
    sibling("kubetron");
    sibling("kubetron-cni");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sbx");
    let dir_s = dir.to_str().unwrap();
    let prefix = format!("ktsk{}", std::process::id() % 100000);
    // Whatever happens below, the sandbox goes down.
    let _down = Down(dir_s.to_string());
    let (code, out) = kubetron_sandbox(&["up", "--dir", dir_s, "--with-kube", "--nodes", "2", "--prefix", &prefix]);
    let cleanup = || kubetron_sandbox(&["down", "--dir", dir_s]);
    let log = |name: &str| std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    if code != 0 {
        panic!(
            "sandbox up --with-kube failed:\n{out}\ncontroller log:\n{}\nagent-node1 log:\n{}\nagent-node2 log:\n{}",
            log("controller"),
            log("agent-node1"),
            log("agent-node2")
        );
    }
    assert!(out.contains("[11/11] Pinging"), "{out}");
    assert!(out.contains("kubetron-cni shim (cluster mode"), "{out}");
    assert!(out.contains("red pod1 -> pod2") && out.contains("blue pod1 -> pod2"), "{out}");
    // The table's addresses are the ones the controller handed over and published in network-status.
    let rows: Vec<Vec<&str>> =
        out.lines().filter(|l| l.starts_with("pod") && !l.contains(": ")).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 4, "{out}");
    assert!(rows.iter().all(|r| r[6] == "up"), "{out}");
    assert!(rows.iter().any(|r| r[1] == "node2"), "pods on both chassis: {out}");
    let annotation = |pod: &str, key: &str| -> String {
        let line = out.lines().find(|l| l.starts_with(&format!("{pod} {key}: "))).unwrap_or_else(|| panic!("no {key} for {pod}:\n{out}"));
        line.split_once(": ").unwrap().1.to_string()
    };
    for pod in ["pod1", "pod2"] {
        let line = annotation(pod, "k8s.v1.cni.cncf.io/network-status");
        let status: serde_json::Value = serde_json::from_str(&line).unwrap();
        let status = status.as_array().unwrap();
        assert_eq!(status.len(), 2, "{line}");
        let handoff = annotation(pod, "kubetron.io/interfaces");
        let parsed = model::handoff::parse(&handoff).unwrap_or_else(|e| panic!("{pod}'s hand-off {handoff}: {e}"));
        let handoff = parsed.handoff().unwrap_or_else(|| panic!("{pod}: no hand-off in {handoff}"));
        for row in rows.iter().filter(|r| r[0] == pod) {
            let (ifname, mac, cidr) = (row[2], row[4], row[5]);
            let ip = cidr.split('/').next().unwrap();
            let entry = status.iter().find(|e| e["interface"] == ifname).unwrap_or_else(|| panic!("{ifname} not in {line}"));
            assert_eq!(entry["mac"], mac, "{line}");
            assert_eq!(entry["ips"][0], ip, "{line}");
            let att = handoff.interface(ifname).unwrap_or_else(|| panic!("{ifname} not handed over: {handoff:?}"));
            assert_eq!((att.mac.as_str(), att.ips[0].to_string()), (mac, cidr.to_string()), "{pod} {ifname}: plugged = handed over");
        }
    }
    let (code, st) = kubetron_sandbox(&["status", "--dir", dir_s]);
    assert_eq!(code, 0, "{st}");
    assert!(st.contains("Kubernetes API https://127.0.0.1:"), "{st}");
    let pids = running_pids(&st);
    // 3 central + 3 per chassis + etcd + kube-apiserver + controller + one agent per chassis.
    assert_eq!(pids.len(), 14, "{st}");
    let agent_pids: Vec<i32> = ["agent-node1", "agent-node2"]
        .iter()
        .map(|a| {
            let line = st.lines().find(|l| l.trim_start().starts_with(&format!("{a} "))).unwrap_or_else(|| panic!("{a} not in {st}"));
            assert!(line.contains("running"), "{line}");
            line.split_whitespace().nth(2).unwrap().parse().unwrap()
        })
        .collect();
    assert!(agent_pids.iter().all(|p| daemons::process::is_running(*p)), "{st}");
    for node in ["node1", "node2"] {
        assert!(st.contains(&format!("Node agent on {node}: CNI socket {}/cni-{node}/kubetron.sock", dir.display())), "{st}");
        assert!(dir.join(format!("cni-{node}/kubetron.sock")).exists(), "{st}");
    }
    // Each agent plugged its chassis' pod (pod1 on node1, pod2 on node2), and was never told the
    // Northbound address.
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("sandbox.json")).unwrap()).unwrap();
    let nb = state["nb_remote"].as_str().unwrap();
    for (agent, pod) in [("agent-node1", "pod1"), ("agent-node2", "pod2")] {
        let text = log(agent);
        for ifname in ["net1", "net2"] {
            assert!(
                text.lines()
                    .any(|l| l.contains("plugged") && l.contains(&format!("default/{pod}")) && l.contains(&format!("ifname={ifname}"))),
                "{agent} did not plug {pod} {ifname}:\n{text}"
            );
        }
        assert!(!text.contains(nb), "{agent} mentions the NB address {nb}:\n{text}");
    }

    let (code, down) = cleanup();
    assert_eq!(code, 0, "{down}");
    assert_all_gone(&dir, &pids, &prefix);
    assert!(agent_pids.iter().all(|p| !daemons::process::is_running(*p)));
}

/// `up --neutron`: the seeds' demo. red and blue are made in a real neutron-server (ML2/OVN, on the
/// sandbox's OVN) through its API and tagged; the controller runs with `--backend neutron`, its NAD
/// sync mirrors them, the pods get Neutron ports, are plugged and ping; the ports are listed from
/// Neutron, ACTIVE, named after the pods; `status` shows every daemon running (neutron-server and
/// PostgreSQL too); `down` stops them all. Gated: `KUBETRON_KUBE_TESTS=1` and
/// `KUBETRON_NEUTRON_TESTS=1` (scripts/test.sh sets both).
#[cfg_attr(
    not(all(kube_tests, neutron_tests)),
    ignore = "needs KUBETRON_KUBE_TESTS=1, KUBETRON_NEUTRON_TESTS=1 and KUBE_APISERVER_BIN (scripts/test.sh sets them)"
)]
#[test]
fn sandbox_with_neutron() {
    daemons::neutron::require("sandbox_with_neutron");
    sibling("kubetron");
    sibling("kubetron-cni");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sbx");
    let dir_s = dir.to_str().unwrap();
    let prefix = format!("ktsn{}", std::process::id() % 100000);
    let _down = Down(dir_s.to_string());
    let (code, out) = kubetron_sandbox(&["up", "--dir", dir_s, "--neutron", "--prefix", &prefix]);
    let log = |name: &str| std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    assert_eq!(code, 0, "sandbox up --neutron failed:\n{out}\ncontroller log:\n{}\nagent log:\n{}", log("controller"), log("agent-node1"));
    assert!(out.contains("with Neutron's API"), "{out}");
    assert!(out.contains("red pod1 -> pod2") && out.contains("blue pod1 -> pod2"), "{out}");
    let rows: Vec<Vec<&str>> =
        out.lines().filter(|l| l.starts_with("pod") && !l.contains(": ")).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 4, "{out}");
    assert!(rows.iter().all(|r| r[6] == "up"), "{out}");
    // The ports as Neutron lists them: one per pod interface, ACTIVE, on node1.
    let ports: Vec<Vec<&str>> =
        out.lines().filter(|l| l.contains(" kubetron/default/pod")).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(ports.len(), 4, "{out}");
    for p in &ports {
        assert_eq!((p[3], p[4]), ("node1", "ACTIVE"), "{out}");
    }
    for pod in ["pod1", "pod2"] {
        let line = out.lines().find(|l| l.starts_with(&format!("{pod} kubetron.io/interfaces: "))).unwrap_or_else(|| panic!("{out}"));
        let h = model::handoff::parse(line.split_once(": ").unwrap().1).unwrap();
        for a in &h.handoff().unwrap().interfaces {
            assert!(a.logical_switch.starts_with("neutron-") && a.sig.is_some(), "{a:?}");
            assert!(ports.iter().any(|p| p[0] == a.logical_port), "{} is a Neutron port: {out}", a.logical_port);
        }
    }
    let (code, st) = kubetron_sandbox(&["status", "--dir", dir_s]);
    assert_eq!(code, 0, "{st}");
    assert!(st.contains("neutron/server") && st.contains("pg/data/postmaster"), "{st}");
    let pids = running_pids(&st);
    // 3 central + 3 chassis + neutron-server + PostgreSQL + etcd + kube-apiserver + controller + agent.
    assert_eq!(pids.len(), 12, "{st}");
    let (code, out) = kubetron_sandbox(&["down", "--dir", dir_s]);
    assert_eq!(code, 0, "{out}");
    assert_all_gone(&dir, &pids, &prefix);
}

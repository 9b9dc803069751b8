//! `kubetron sandbox up/status/down` as a user runs it: real OVN on two chassis, pods plugged by
//! the real binary, pings; a second `up` is harmless; `down` leaves nothing behind.

use std::process::Command;

fn kubetron(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubetron")).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
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

#[test]
fn sandbox_up_twice_status_down() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sbx");
    let dir_s = dir.to_str().unwrap();
    let prefix = format!("ktsb{}", std::process::id() % 100000);
    let (code, out) = kubetron(&["sandbox", "up", "--dir", dir_s, "--nodes", "2", "--prefix", &prefix]);
    let cleanup = || kubetron(&["sandbox", "down", "--dir", dir_s]);
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

    let (code, again) = kubetron(&["sandbox", "up", "--dir", dir_s, "--nodes", "2", "--prefix", &prefix]);
    assert_eq!(code, 0, "{again}");
    assert!(again.contains("already up"), "{again}");

    let (code, st) = kubetron(&["sandbox", "status", "--dir", dir_s]);
    assert_eq!(code, 0, "{st}");
    assert_eq!(st.matches("running").count(), 9, "3 central + 3 per chassis: {st}");
    let pids = running_pids(&st);
    assert_eq!(pids.len(), 9);

    let (code, down) = cleanup();
    assert_eq!(code, 0, "{down}");
    assert_all_gone(&dir, &pids, &prefix);
    let (code, st) = kubetron(&["sandbox", "status", "--dir", dir_s]);
    assert_eq!(code, 3, "{st}");
}

/// `sandbox up --with-kube`: etcd + kube-apiserver + `kubetron controller`; the pods are API objects, the
/// controller gives them addresses and network-status, the CNI plugin plugs them with those, and they ping.
/// Gated like the other real-API tests: `KUBETRON_KUBE_TESTS=1`.
#[cfg_attr(not(kube_tests), ignore = "needs KUBETRON_KUBE_TESTS=1 and KUBE_APISERVER_BIN (scripts/test.sh sets both)")]
#[test]
fn sandbox_with_kube() {
    if std::env::var("KUBETRON_KUBE_TESTS").as_deref() != Ok("1") {
        eprintln!("skipped: set KUBETRON_KUBE_TESTS=1 (needs kube-apiserver and etcd)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sbx");
    let dir_s = dir.to_str().unwrap();
    let prefix = format!("ktsk{}", std::process::id() % 100000);
    // Whatever happens below, the sandbox goes down.
    struct Down(String);
    impl Drop for Down {
        fn drop(&mut self) {
            kubetron(&["sandbox", "down", "--dir", &self.0]);
        }
    }
    let _down = Down(dir_s.to_string());
    let (code, out) = kubetron(&["sandbox", "up", "--dir", dir_s, "--with-kube", "--prefix", &prefix]);
    let cleanup = || kubetron(&["sandbox", "down", "--dir", dir_s]);
    if code != 0 {
        let log = std::fs::read_to_string(dir.join("controller.log")).unwrap_or_default();
        panic!("sandbox up --with-kube failed:\n{out}\ncontroller log:\n{log}");
    }
    assert!(out.contains("red pod1 -> pod2") && out.contains("blue pod1 -> pod2"), "{out}");
    // The table's addresses are the ones the controller published in network-status.
    let rows: Vec<Vec<&str>> =
        out.lines().filter(|l| l.starts_with("pod") && !l.contains("network-status")).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 4, "{out}");
    for pod in ["pod1", "pod2"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{pod} k8s.v1.cni.cncf.io/network-status: ")))
            .unwrap_or_else(|| panic!("no network-status for {pod}:\n{out}"));
        let status: serde_json::Value = serde_json::from_str(line.split_once(": ").unwrap().1).unwrap();
        let status = status.as_array().unwrap();
        assert_eq!(status.len(), 2, "{line}");
        for row in rows.iter().filter(|r| r[0] == pod) {
            let (ifname, mac, ip) = (row[2], row[4], row[5].split('/').next().unwrap());
            let entry = status.iter().find(|e| e["interface"] == ifname).unwrap_or_else(|| panic!("{ifname} not in {line}"));
            assert_eq!(entry["mac"], mac, "{line}");
            assert_eq!(entry["ips"][0], ip, "{line}");
        }
    }
    let (code, st) = kubetron(&["sandbox", "status", "--dir", dir_s]);
    assert_eq!(code, 0, "{st}");
    assert!(st.contains("Kubernetes API https://127.0.0.1:"), "{st}");
    let pids = running_pids(&st);
    // 3 central + 3 chassis + etcd + kube-apiserver + controller.
    assert_eq!(pids.len(), 9, "{st}");

    let (code, down) = cleanup();
    assert_eq!(code, 0, "{down}");
    assert_all_gone(&dir, &pids, &prefix);
}

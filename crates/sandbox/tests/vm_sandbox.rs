//! `kubetron-sandbox up --vm --nodes 2` as a user runs it: a qemu VM in a KubeVirt-shaped launcher pod,
//! plugged by the real kubetron binary on red and blue, leases its addresses from OVN's DHCP, is pinged
//! by pod1 on both networks, is live-migrated node1 -> node2 while pod1 pings it (no duplicate replies);
//! `status` shows its rows; `down` leaves no qemu, no namespace and no `k6t-*`/tap links.
//!
//! Gated like the other real-VM tests (`KUBETRON_VM_TESTS=1`, root, qemu: `testkit::vm::enabled`) and
//! holding the machine-wide VM slot. Needs `kubetron` built next to `kubetron-sandbox`.

use std::path::Path;
use std::process::Command;

const SANDBOX: &str = env!("CARGO_BIN_EXE_kubetron-sandbox");

fn kubetron_sandbox(args: &[&str]) -> (i32, String) {
    let out = Command::new(SANDBOX).args(args).env_remove("KUBETRON_BIN").output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// The VM table's rows: VM, node, pod interface, network, MAC, IP, "(DHCP)", qemu ...
fn vm_rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .filter(|l| l.starts_with("vm1 ") && l.contains("(DHCP)"))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

/// KubeVirt's bridge-binding links for red and blue, in every netns on the machine and the root one.
fn links_named_like_kubevirt() -> Vec<String> {
    let mut found = Vec::new();
    let list = String::from_utf8(Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).unwrap();
    let mut spaces: Vec<Option<String>> = vec![None];
    spaces.extend(list.lines().filter_map(|l| l.split_whitespace().next()).map(|s| Some(s.to_string())));
    for ns in spaces {
        let out = match &ns {
            Some(n) => Command::new("ip").args(["-n", n, "-o", "link"]).output(),
            None => Command::new("ip").args(["-o", "link"]).output(),
        };
        let Ok(out) = out else { continue };
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            let name = l.split(':').nth(1).unwrap_or("").trim().split('@').next().unwrap_or("").to_string();
            if name == "k6t-b1f51a511f1" || name == "k6t-16477688c0e" || name == "tapb1f51a511f1" || name == "tap16477688c0e" {
                found.push(format!("{name} in {}", ns.as_deref().unwrap_or("the root netns")));
            }
        }
    }
    found
}

#[test]
fn sandbox_vm_dhcp_pings_migration_down() {
    if !testkit::vm::enabled("sandbox_vm_dhcp_pings_migration_down") {
        return;
    }
    let kubetron = Path::new(SANDBOX).with_file_name("kubetron");
    assert!(kubetron.is_file(), "{} is missing: cargo build -p kubetron --bins (same profile)", kubetron.display());
    assert_eq!(model::kubevirt::hashed_ifname("blue"), "pod16477688c0e");
    let _slot = testkit::vm::slot();
    // Links of these names that exist before (another process's, e.g. a leftover) are not ours.
    let before = links_named_like_kubevirt();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sbx");
    let dir_s = dir.to_str().unwrap().to_string();
    let prefix = format!("ktsv{}", std::process::id() % 100000);
    struct Down(String);
    impl Drop for Down {
        fn drop(&mut self) {
            kubetron_sandbox(&["down", "--dir", &self.0]);
        }
    }
    let _down = Down(dir_s.clone());

    let (code, out) = kubetron_sandbox(&["up", "--vm", "--nodes", "2", "--dir", &dir_s, "--prefix", &prefix]);
    assert_eq!(code, 0, "sandbox up --vm failed:\n{out}");
    assert!(out.contains("[10/10] Live migration of vm1 node1 -> node2"), "{out}");
    for net in ["red", "blue"] {
        assert!(out.contains(&format!("{net} pod1 -> vm1 ")), "pod1 pings the VM on {net}:\n{out}");
    }
    let rows = vm_rows(&out);
    assert_eq!(rows.len(), 2, "{out}");
    for (row, (ifname, net, mac, subnet)) in rows
        .iter()
        .zip([("podb1f51a511f1", "red", "02:6b:74:01:00:01", "10.10.1."), ("pod16477688c0e", "blue", "02:6b:74:02:00:01", "10.10.2.")])
    {
        assert_eq!(
            (row[0].as_str(), row[1].as_str(), row[2].as_str(), row[3].as_str(), row[4].as_str()),
            ("vm1", "node2", ifname, net, mac),
            "{out}"
        );
        assert!(row[5].starts_with(subnet) && row[5].ends_with("/24"), "a DHCP address on {net}: {out}");
        assert_eq!(row[6], "(DHCP)");
        assert_eq!(row[7], "pid", "qemu runs: {out}");
    }
    let migration = out.lines().find(|l| l.starts_with("vm1 node1 -> node2: migration")).unwrap_or_else(|| panic!("{out}"));
    assert!(migration.ends_with(" 0 duplicate replies"), "{migration}");
    let qemu_pid: i32 = rows[0][8].trim_end_matches(',').parse().unwrap();
    assert!(daemons::process::is_running(qemu_pid));

    // The VM lives on after `up` returned: pod1 still reaches it, and `status` shows it.
    let vm_ip = rows[0][5].split('/').next().unwrap().to_string();
    let ping = Command::new("ip")
        .args(["netns", "exec", &format!("{prefix}-pod1"), "ping", "-c", "3", "-i", "0.2", "-W", "2", &vm_ip])
        .output()
        .unwrap();
    assert!(ping.status.success(), "{}", String::from_utf8_lossy(&ping.stdout));
    let (code, st) = kubetron_sandbox(&["status", "--dir", &dir_s]);
    assert_eq!(code, 0, "{st}");
    assert!(st.contains("vm/vm1-node2") && st.contains(&format!("pid {qemu_pid}")), "{st}");
    assert_eq!(vm_rows(&st).len(), 2, "{st}");

    let (code, down) = kubetron_sandbox(&["down", "--dir", &dir_s]);
    assert_eq!(code, 0, "{down}");
    assert!(!dir.exists());
    // qemu is gone (a zombie waiting for init to reap it counts as gone).
    assert!(!daemons::process::is_running(qemu_pid), "qemu {qemu_pid} still runs after down");
    let netns = String::from_utf8(Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).unwrap();
    assert!(!netns.contains(&prefix), "{netns}");
    let left: Vec<String> = links_named_like_kubevirt().into_iter().filter(|l| !before.contains(l)).collect();
    assert!(left.is_empty(), "links left by the sandbox: {left:?}");
}

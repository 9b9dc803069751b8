//! `kubetron sandbox up/status/down` as a user runs it: real OVN on two chassis, pods plugged by
//! the real binary, pings; a second `up` is harmless; `down` leaves nothing behind.

use std::process::Command;

fn kubetron(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubetron")).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
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
    let pids: Vec<i32> = st
        .lines()
        .filter(|l| l.contains("running"))
        .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
        .collect();
    assert_eq!(pids.len(), 9);

    let (code, down) = cleanup();
    assert_eq!(code, 0, "{down}");
    assert!(!dir.exists());
    for p in pids {
        assert!(!daemons::process::is_running(p), "daemon {p} still running after down");
    }
    let netns = String::from_utf8(Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).unwrap();
    assert!(!netns.contains(&prefix), "{netns}");
    let (code, st) = kubetron(&["sandbox", "status", "--dir", dir_s]);
    assert_eq!(code, 3, "{st}");
}

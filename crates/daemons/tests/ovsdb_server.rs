use std::time::Duration;

use daemons::process;
use daemons::{OvsdbServer, OvsdbServerConfig};

#[test]
fn start_stop_kill_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = OvsdbServer::start(OvsdbServerConfig::new("nb", dir.path(), daemons::schemas::NB).tcp(true)).unwrap();
    let pid = s.pid().unwrap();
    assert!(process::is_running(pid));
    assert_eq!(process::read_pidfile(s.pidfile()).unwrap(), Some(pid));
    assert!(s.unix_remote().starts_with("unix:") && s.unix_path().exists());
    let port = s.tcp_port().unwrap();
    assert_eq!(s.tcp_remote().unwrap(), format!("tcp:127.0.0.1:{port}"));
    let dbs = process::run("ovsdb-client", &["list-dbs", &s.tcp_remote().unwrap()]).unwrap();
    assert!(dbs.contains("OVN_Northbound"), "{dbs}");

    // SIGKILL, then restart on the same port with the same data.
    process::run(
        "ovsdb-client",
        &["transact", &s.unix_remote(), r#"["OVN_Northbound",{"op":"insert","table":"Logical_Switch","row":{"name":"kept"}}]"#],
    )
    .unwrap();
    s.kill().unwrap();
    assert!(!process::is_running(pid));
    assert!(s.pid().is_none());
    s.restart().unwrap();
    assert_ne!(s.pid().unwrap(), pid);
    assert_eq!(s.tcp_port(), Some(port));
    let dump = process::run("ovsdb-client", &["dump", &s.tcp_remote().unwrap(), "OVN_Northbound", "Logical_Switch", "name"]).unwrap();
    assert!(dump.contains("kept"), "{dump}");

    // Graceful stop removes the pid file.
    let pid2 = s.pid().unwrap();
    s.stop().unwrap();
    assert!(!process::is_running(pid2));
    assert!(process::wait_stopped(pid2, Duration::from_secs(1)));
    assert!(!s.pidfile().exists());
}

#[test]
fn drop_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let pid = {
        let s = OvsdbServer::start(OvsdbServerConfig::new("sb", dir.path(), daemons::schemas::SB)).unwrap();
        s.pid().unwrap()
    };
    assert!(!process::is_running(pid));
}

#[test]
fn in_netns() {
    let ns = format!("kt-ovsdb-{}", std::process::id());
    // The suite runs as root (real daemons, namespaces): not being able to make one is a failure.
    process::run("ip", &["netns", "add", &ns]).expect("ip netns add (the tests run as root)");
    struct Ns(String);
    impl Drop for Ns {
        fn drop(&mut self) {
            let _ = process::run("ip", &["netns", "del", &self.0]);
        }
    }
    let _guard = Ns(ns.clone());
    let _ = process::run("ip", &["-n", &ns, "link", "set", "lo", "up"]);
    let dir = tempfile::tempdir().unwrap();
    let s = OvsdbServer::start(OvsdbServerConfig::new("vs", dir.path(), daemons::schemas::VSWITCH).netns(&ns).tcp(true)).unwrap();
    // The unix socket is reachable from here; TCP is on the namespace's own loopback.
    let dbs = process::run("ovsdb-client", &["list-dbs", &s.unix_remote()]).unwrap();
    assert!(dbs.contains("Open_vSwitch"), "{dbs}");
    let dbs = process::run("ip", &["netns", "exec", &ns, "ovsdb-client", "list-dbs", &s.tcp_remote().unwrap()]).unwrap();
    assert!(dbs.contains("Open_vSwitch"), "{dbs}");
    let pid = s.pid().unwrap();
    drop(s);
    assert!(!process::is_running(pid));
}

/// `Allocator::Jemalloc` runs Debian's ovsdb-server with jemalloc mapped in; `System` without it.
#[test]
fn allocator_preloads_jemalloc() {
    let dir = tempfile::tempdir().unwrap();
    let maps = |a: daemons::Allocator, name: &str| {
        let s = OvsdbServer::start(OvsdbServerConfig::new(name, dir.path(), daemons::schemas::NB).allocator(a)).unwrap();
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", s.pid().unwrap())).unwrap();
        let dbs = process::run("ovsdb-client", &["list-dbs", &s.unix_remote()]).unwrap();
        assert!(dbs.contains("OVN_Northbound"), "{dbs}");
        maps
    };
    assert!(maps(daemons::Allocator::Jemalloc, "je").contains("libjemalloc.so.2"));
    assert!(!maps(daemons::Allocator::System, "sys").contains("libjemalloc"));
}

/// `CentralOptions::allocator` reaches both databases and ovn-northd.
#[test]
fn central_allocator_reaches_northd() {
    let dir = tempfile::tempdir().unwrap();
    let maps = |pid: Option<i32>| std::fs::read_to_string(format!("/proc/{}/maps", pid.expect("pid"))).unwrap();
    for (a, name, want) in [(daemons::Allocator::Jemalloc, "je", true), (daemons::Allocator::System, "sys", false)] {
        let opts = daemons::CentralOptions { allocator: Some(a), ..Default::default() };
        let central = daemons::Central::start_with(&dir.path().join(name), opts).unwrap();
        for (who, pid) in [("NB", central.nb().pid()), ("SB", central.sb().pid()), ("ovn-northd", central.northd_pid())] {
            assert_eq!(maps(pid).contains("libjemalloc.so.2"), want, "{who} with {a:?}");
        }
    }
}

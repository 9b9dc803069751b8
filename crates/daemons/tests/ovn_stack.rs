//! A real OVN deployment: central + two chassis in their own namespaces, joined by an underlay;
//! both register, geneve tunnels form, and stopping leaves no process or namespace behind.

use std::time::{Duration, Instant};

use daemons::process::is_running;
use daemons::{link_underlay, Central, Chassis, ChassisConfig};

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id() % 100000)
}

#[test]
fn two_chassis_register_and_tunnel_then_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let central = Central::start(&tmp.path().join("central"), false).expect("central");
    let (ns1, ns2) = (unique("kts1-"), unique("kts2-"));
    let sb = central.sb_remote();
    let c1 = Chassis::start(ChassisConfig::new("ch1", tmp.path().join("ch1"), &ns1, &sb, "198.51.100.1")).expect("chassis 1");
    let c2 = Chassis::start(ChassisConfig::new("ch2", tmp.path().join("ch2"), &ns2, &sb, "198.51.100.2")).expect("chassis 2");
    link_underlay(&c1, &c2).expect("underlay");
    c1.wait_registered(&sb, Duration::from_secs(20)).unwrap();
    c2.wait_registered(&sb, Duration::from_secs(20)).unwrap();

    // Each ovn-controller makes a geneve tunnel port on br-int towards the other chassis.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ifaces = c1.vsctl(&["--columns=type,options", "list", "Interface"]).unwrap();
        if ifaces.contains("geneve") && ifaces.contains("198.51.100.2") {
            break;
        }
        assert!(Instant::now() < deadline, "no geneve tunnel from ch1 to ch2:\n{ifaces}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The bridges' tap devices live in the chassis netns, not in ours.
    let links = daemons::netns::exec(&ns1, &["ip", "-o", "link"]).unwrap();
    assert!(links.contains("br-int") && links.contains("br-phy"), "{links}");
    let root_links = daemons::process::run("ip", &["-o", "link"]).unwrap();
    assert!(!root_links.contains(": br-int"), "br-int leaked into the root netns");

    let pids: Vec<i32> = [&c1, &c2].iter().flat_map(|c| [c.vswitchd_pid(), c.controller_pid()]).flatten().collect();
    assert_eq!(pids.len(), 4);

    // A healthy chassis reports no failure; a dead daemon and an emergency in a log are reported.
    assert_eq!(c1.failure(), None);
    assert_eq!(c2.failure(), None);
    daemons::process::kill_pid(c2.controller_pid().unwrap()).unwrap();
    let failure = c2.failure().expect("a chassis whose ovn-controller was killed reports it");
    assert!(failure.contains("ovn-controller on ch2 is not running"), "{failure}");
    let log = c1.dir().join("ovs-vswitchd.log");
    let line = "2026-12-01T00:00:00.000Z|00001|util|EMER|lib/conntrack.c:1063: assertion failed (written by this test)\n";
    std::fs::OpenOptions::new().append(true).open(&log).and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes())).unwrap();
    let failure = c1.failure().expect("an emergency in ovs-vswitchd's log is reported");
    assert!(failure.contains("ovs-vswitchd on ch1 runs; its log: ") && failure.contains("conntrack.c:1063"), "{failure}");
    let nb_pid = central.nb().pid().unwrap();
    drop(c1);
    drop(c2);
    drop(central);
    for p in pids.iter().chain([&nb_pid]) {
        assert!(!is_running(*p), "process {p} still running after stop");
    }
    assert!(!daemons::netns::exists(&ns1) && !daemons::netns::exists(&ns2));
}

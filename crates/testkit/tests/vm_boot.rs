//! The test guest boots under qemu (TCG) to its ready line, and stops by its pid file.
#![cfg(feature = "vm")]

use std::time::Duration;

use testkit::vm::{self, GuestImage, Vm, VmConfig};

#[test]
fn guest_boots_to_ready_and_stops() {
    if !vm::enabled("guest_boots_to_ready_and_stops") {
        return;
    }
    testkit::init_tracing();
    let img = GuestImage::ensure().expect("guest image");
    assert!(img.kernel_pkg.starts_with("linux-image-") && img.kernel_pkg.ends_with("-cloud-amd64"), "{}", img.kernel_pkg);
    let _slot = vm::slot();
    let ns = netdev::TempNetns::new("ktvb").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let v = Vm::start(&img, VmConfig::new("boot", ns.path(), dir.path(), vec![])).expect("start qemu");
    let pid = v.pid().expect("pid file");
    let ready = v.wait_console("VMPROBE ready", Duration::from_secs(120)).expect("guest ready");
    eprintln!("ready after {} ms, qemu cpu {} ms, rss {} kB", ready.ms, v.cpu_ms(), v.rss_kb());
    assert!(v.console().iter().any(|l| l.text.contains("VMPROBE userspace")));
    // The monitor answers.
    let mut q = v.qmp().unwrap();
    assert_eq!(q.execute("query-status", None).unwrap()["status"], "running");
    drop(q);
    v.stop();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "qemu {pid} still there");
}

//! Real virtual machines for tests (feature `vm`): qemu under TCG (KVM on these machines is `kvm_pvm`,
//! which boots no stock guest; shared/vms-on-these-machines.md), a tiny guest built from Debian packages,
//! KubeVirt's bridge binding inside a launcher netns, live migration over QMP, and a 10 ms pinger.
//!
//! - [`GuestImage::ensure`]: Debian's cloud kernel (as an uncompressed ELF `vmlinux`, booted via PVH) and a
//!   busybox initramfs whose `/init` DHCPs every NIC, prints `VMPROBE lease iface= ip= mask= router= mtu=` and
//!   `VMPROBE ready` on the serial console, and runs a TCP echo on port 7. Built once, cached.
//! - [`Vm::start`]: qemu inside a netns on taps; [`Vm::wait_console`], [`Vm::wait_leases`], [`Vm::migrate_to`].
//! - [`bridge_binding`]: what virt-launcher does to a pod interface (in-pod bridge `k6t-*` + tap `tap*`).
//! - [`Pinger`]: `ping -D -O -i 0.01` inside a netns; [`PingLog::outage_around`], [`PingLog::dups`].
//! - [`enabled`] gates a test (KUBETRON_VM_TESTS=1, root, qemu present); [`slot`] keeps at most
//!   `KUBETRON_VM_SLOTS` (default 1) qemu tests running machine-wide.
//!
//! qemu is stopped by its pid file only (SIGTERM, then SIGKILL), also on drop.

mod binding;
mod guest;
mod ping;
mod qemu;
mod qmp;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use binding::{bridge_binding, kubevirt_link_names};
pub use guest::{cpio_newc, CpioEntry, GuestImage};
pub use ping::{Outage, PingLog, PingReply, Pinger};
pub use qemu::{ConsoleLine, Lease, MigrationReport, Nic, Vm, VmConfig};
pub use qmp::Qmp;

/// Everything that can go wrong around a test VM.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// A file or system call failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An external command (apt-get, dpkg-deb, gzip, lz4, xz, qemu) failed.
    #[error("{cmd} failed: {detail}")]
    Command {
        /// The command line.
        cmd: String,
        /// Exit status and stderr.
        detail: String,
    },
    /// The guest image could not be built as required.
    #[error("guest image: {0}")]
    Guest(String),
    /// A network device operation in the launcher netns failed.
    #[error("{op}: {source}")]
    Netdev {
        /// What was being done.
        op: String,
        /// The underlying error.
        #[source]
        source: netdev::NetdevError,
    },
    /// A QMP command was refused or the monitor misbehaved.
    #[error("QMP {cmd}: {detail}")]
    Qmp {
        /// The command.
        cmd: String,
        /// The error or what was wrong.
        detail: String,
    },
    /// A bounded wait ran out.
    #[error("timed out after {after:?} waiting for {what}{context}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The bound.
        after: Duration,
        /// Diagnostics: console tail, qemu CPU time.
        context: String,
    },
    /// qemu exited when it should be running.
    #[error("qemu {name} exited ({status}){context}")]
    Exited {
        /// The VM name.
        name: String,
        /// Its exit status.
        status: String,
        /// Diagnostics: console tail, stderr.
        context: String,
    },
}

impl VmError {
    pub(crate) fn io(op: impl Into<String>, source: std::io::Error) -> VmError {
        VmError::Io { op: op.into(), source }
    }
    pub(crate) fn netdev(op: impl Into<String>, source: netdev::NetdevError) -> VmError {
        VmError::Netdev { op: op.into(), source }
    }
}

/// Milliseconds since the Unix epoch (the clock `ping -D` stamps replies with).
pub fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Whether the VM test `test` can run here: `KUBETRON_VM_TESTS=1`, root, and `qemu-system-x86_64` on
/// the PATH. If not, prints why (the test then returns early and reports itself skipped) and says false.
pub fn enabled(test: &str) -> bool {
    let why = if std::env::var("KUBETRON_VM_TESTS").as_deref() != Ok("1") {
        Some("KUBETRON_VM_TESTS is not 1 (scripts/test.sh sets it unless KUBETRON_VM=0)".to_string())
    // SAFETY: geteuid has no preconditions.
    } else if unsafe { libc::geteuid() } != 0 {
        Some("not root (netns, taps and OVN need it)".to_string())
    } else if find_in_path("qemu-system-x86_64").is_none() {
        Some("qemu-system-x86_64 not installed (scripts/install-deps.sh with KUBETRON_VM=1)".to_string())
    } else {
        None
    };
    match why {
        Some(w) => {
            eprintln!("skipped {test}: {w}");
            false
        }
        None => true,
    }
}

pub(crate) fn find_in_path(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(bin)).find(|c| c.is_file()))
        .unwrap_or_else(|| ["/usr/bin", "/usr/sbin", "/bin", "/sbin"].iter().map(|d| Path::new(d).join(bin)).find(|c| c.is_file()))
}

/// Holds one of the machine-wide VM slots until dropped.
#[derive(Debug)]
pub struct SlotGuard {
    _file: File,
    /// Which slot (0-based).
    pub index: usize,
}

/// Takes one of `KUBETRON_VM_SLOTS` (default 1) machine-wide slots (flock on `/run/lock/kubetron-vm-slot.N`,
/// shared by every clone and test process on the machine), waiting as long as it takes: TCG guests on two
/// cores are slow enough alone. Released on drop (and by the kernel if the process dies).
pub fn slot() -> SlotGuard {
    let n: usize = std::env::var("KUBETRON_VM_SLOTS").ok().and_then(|s| s.parse().ok()).filter(|&n| n > 0).unwrap_or(1);
    let dir = if Path::new("/run/lock").is_dir() { PathBuf::from("/run/lock") } else { std::env::temp_dir() };
    let files: Vec<File> = (0..n)
        .map(|i| {
            let p = dir.join(format!("kubetron-vm-slot.{i}"));
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&p)
                .unwrap_or_else(|e| panic!("open {}: {e}", p.display()))
        })
        .collect();
    let mut announced = false;
    loop {
        for (i, f) in files.iter().enumerate() {
            // SAFETY: flock on an fd we own.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                let file = f.try_clone().expect("dup slot fd");
                return SlotGuard { _file: file, index: i };
            }
        }
        if !announced {
            eprintln!("waiting for a VM slot (another qemu test holds it; KUBETRON_VM_SLOTS={n})");
            announced = true;
        }
        // A flock is not pollable; 200 ms between tries only costs latency.
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sends `len` bytes (a fixed pseudo-random pattern) to the guest's TCP echo (port 7 of `ip`, see
/// [`GuestImage`]) from inside `ns`, writing and reading concurrently, and returns what came
/// back; panics (a test helper) when connecting fails for 60 s or the echo differs.
pub fn tcp_echo(ns: &netdev::Netns, ip: std::net::Ipv4Addr, len: usize) -> Vec<u8> {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Instant;
    let data: Vec<u8> = (0..len as u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let sent = data.clone();
    let got = ns
        .run(move || {
            let addr = SocketAddr::from((ip, 7));
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut s = loop {
                match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
                    Ok(s) => break s,
                    Err(e) => {
                        assert!(Instant::now() < deadline, "connect {addr}: {e}");
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            };
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let mut w = s.try_clone().unwrap();
            let writer = std::thread::spawn(move || {
                w.write_all(&sent).unwrap();
                w.shutdown(std::net::Shutdown::Write).unwrap();
            });
            let mut back = Vec::new();
            s.read_to_end(&mut back).unwrap();
            writer.join().unwrap();
            back
        })
        .unwrap();
    assert!(got == data, "TCP echo via {ip}:7 returned {} of {} bytes (or different bytes)", got.len(), data.len());
    got
}

/// What a pinger saw of a live migration: the outage around its completion (3 s either side,
/// [`PingLog::outage_around`]) and one line for the test output (pings, duplicates, outage, qemu's
/// downtime and total).
pub fn migration_pings(log: &PingLog, report: &MigrationReport) -> (Outage, String) {
    let outage = log.outage_around(report.t_completed_ms, Duration::from_secs(3));
    let line = format!(
        "pings: {} transmitted, {} answered, {} duplicates; outage around completion {:.0} ms ({} lost); qemu downtime {} ms, total {} ms",
        log.transmitted.unwrap_or(0),
        log.answered(),
        log.dups(),
        outage.duration_ms,
        outage.lost,
        report.downtime_ms,
        report.total_ms
    );
    (outage, line)
}

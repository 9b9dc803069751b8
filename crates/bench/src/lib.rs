//! `bench`: benchmark drivers; not used by the product.
//!
//! Binaries: `ovsdb_bench` (our OVSDB client against `ovn-nbctl` and the Python `ovs` IDL on a
//! fresh Northbound ovsdb-server per scenario) and `cni_bench` (ADD/DEL cycles of the real
//! `kubetron` CNI binary against Debian's reference `bridge` + `host-local` plugins, and cluster mode
//! through the `kubetron-cni` shim and the node agent: [`cni_cluster`]). They are run
//! by `bench/ovsdb` and `bench/cni` at the repository root and print tables, never assertions.

use std::time::Duration;

use anyhow::{bail, Result};
use testkit::cni::CniOutcome;

pub mod cni_cluster;

/// `r` if the plugin succeeded, else an error naming `what` with its output.
pub fn ok(r: CniOutcome, what: &str) -> Result<CniOutcome> {
    if !r.success() {
        bail!("{what} failed (exit {}): {}{}", r.exit_code, r.stdout, r.stderr);
    }
    Ok(r)
}

/// Raises the soft limit of open files to the hard limit (bursts open many netns and pipes).
pub fn raise_nofile() {
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// Peak resident set size (`VmHWM`) of a process in KiB, from `/proc/<pid>/status`.
pub fn vm_hwm_kib(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// Percentile (0..=100) of samples, nearest-rank on a sorted copy.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut v = samples.to_vec();
    v.sort();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Milliseconds with fractions.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

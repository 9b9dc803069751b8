//! `bench`: benchmark drivers; not used by the product.
//!
//! Binaries: `ovsdb_bench` (our OVSDB client against `ovn-nbctl` and the Python `ovs` IDL on a
//! fresh Northbound ovsdb-server per scenario) and `cni_bench` (ADD/DEL cycles of the real
//! `kubetron` CNI binary against Debian's reference `bridge` + `host-local` plugins). They are run
//! by `bench/ovsdb` and `bench/cni` at the repository root and print tables, never assertions.

use std::time::Duration;

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

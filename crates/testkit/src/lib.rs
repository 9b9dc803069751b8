//! `testkit`: test and developer tooling; never a dependency of a shipped binary's code path.
//!
//! - [`cni`]: run a CNI plugin the way a container runtime does ([`cni::CniInvocation`]), with a typed
//!   outcome and a bound that kills it.
//! - `kube` (feature `kube`): what the tests against a real kube-apiserver share (the gate, clients,
//!   waits, deploy/'s CRD, namespace, RBAC and webhook configuration applied as a user applies them).
//! - `vm` (feature `vm`): real qemu VMs (TCG) for tests: a guest image built from Debian packages, KubeVirt's
//!   bridge binding, live migration over QMP, a 10 ms pinger, and the machine-wide slot and test gate.
//! - `probe` (feature `probe`): traffic checks between network namespaces (TCP and UDP servers made inside
//!   a netns, connect / echo probes with a bound, ICMP through `ping`), for policy tests.
//! - [`init_tracing`]: test logs through `tracing`; [`poll`]: a bounded wait for a condition.
//!
//! Used by the workspace's tests (dev-dependencies only), the benchmarks and the sandbox (a developer
//! tool). The product's libraries (`cni`, `k8s`, `node`, ...) must never take it as a normal dependency.

pub mod cni;
#[cfg(feature = "kube")]
pub mod kube;
#[cfg(feature = "probe")]
pub mod probe;
#[cfg(feature = "vm")]
pub mod vm;

/// Polls `f` every 100 ms until it gives `Some`; panics naming `what` when `bound` passes first.
/// For tests: a bounded wait for a condition, never a sleep as synchronisation.
pub fn poll<T>(what: &str, bound: std::time::Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + bound;
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(std::time::Instant::now() < deadline, "timed out after {bound:?} waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Test logs through `tracing` (filtered by `RUST_LOG`, captured per test; colours only on a terminal).
/// Idempotent.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

//! `sandbox`: the `kubetron-sandbox up|down|status` developer tool (src/bin; not part of the product
//! binaries): a local OVN with networks and pods plugged by the real CNI binary, for people to see
//! kubetron work. It runs the `kubetron` binary (and, with `--with-kube`, the `kubetron-cni` shim)
//! found next to its own executable ([`find_kubetron`]).
//!
//! `up` installs what is missing, starts OVN (NB, SB, northd, and per node a local Open_vSwitch
//! database, ovs-vswitchd on the userspace datapath and ovn-controller, each node in a network
//! namespace of its own), makes the networks `red` and `blue` (subnet + OVN native DHCP) with
//! kubetron's own OVSDB client, creates pods (network namespaces), plugs each into both networks by
//! running the CNI plugin exactly as a container runtime does, pings across both networks and
//! prints what it built. Without `--with-kube` the plugin is the kubetron binary on the direct path
//! (`mode: standalone`); with it, the pods are Kubernetes pods, `kubetron controller` hands them
//! their addresses and the `kubetron-cni` shim has each chassis' `kubetron node` plug them
//! (`mode: cluster`: no node-side process knows the Northbound address). `down` stops every daemon
//! by its pid file and deletes the namespaces; `status` reports. With `--vm` ([`vm`]), a qemu VM in a
//! KubeVirt-shaped launcher pod on red and blue (DHCP from OVN), and with two nodes one live migration.
//!
//! Owns: the sandbox state directory and the namespaces whose names start with its prefix. Must not
//! touch anything outside them.

pub mod cluster;
mod down;
pub mod kube;
mod networks;
mod progress;
mod state;
mod status;
mod up;
pub mod vm;

pub use down::down;
pub use state::{find_kubetron, AgentState, KubeState, Options, SandboxState, KUBETRON_NAME, SHIM_NAME};
pub use status::status;
pub use up::up;

/// Errors of the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Daemons(#[from] daemons::Error),
    #[error("OVSDB: {0}")]
    Ovsdb(#[from] ovsdb::Error),
    #[error("{path}: {source}")]
    Io { path: std::path::PathBuf, source: std::io::Error },
    #[error("{0}")]
    Step(String),
    /// A binary the sandbox runs is not there.
    #[error("{} is missing: {hint}", path.display())]
    Missing { path: std::path::PathBuf, hint: String },
}

//! `model`: what every kubetron process must agree on; no I/O of any kind.
//!
//! The controller, the CNI plugin (standalone and shim), the node agent and the webhook all link
//! this crate, so a rule that two of them must apply the same way is written here once:
//!
//! - [`handoff`]: the `kubetron.io/interfaces` annotation (v1), the contract between the controller
//!   (its only writer) and the node side (see `docs/cluster-mode.md`, section 2).
//! - [`names`]: the names kubetron gives to the OVN rows of a pod (`pod_port`) and the pod keys
//!   of their `external_ids`; the name rules (Linux interface names, DNS-1123 names).
//! - [`mac`]: Ethernet MAC address syntax (parse, validate, normalize, print).
//! - [`addressing`]: the addressing rules of a logical switch (subnet, `exclude_ips`, addresses
//!   held by other ports, deterministic MACs), shared by the CNI plugin, the controller and the
//!   webhook. Callers read the OVN rows and send the transactions.
//! - [`request`]: the pod network request annotation `k8s.v1.cni.cncf.io/networks` (the one
//!   parser: webhook, controller, node agent), with [`addr`] (the MAC and IP a request asks for).
//! - [`status`]: the `k8s.v1.cni.cncf.io/network-status` entries kubetron writes and how they
//!   merge with other writers' (the write itself is `k8s::status`).
//! - [`env`]: the `NETWORK_INTERFACE_<NET>` variables the webhook injects.
//! - [`netconf`]: the network config of a kubetron network ([`netconf::KubetronNetConf`]: its
//!   fields, defaults and the rules that refuse it), as the CNI plugin reads it from its config and
//!   the controller, webhook and node agent from a NAD ([`netconf::NadConfig`]); the NAD sync writes
//!   it; `cniVersion` ([`netconf::Version`]).
//!
//! - [`kubevirt`]: KubeVirt launcher pods: their interface names, how they are recognised, and
//!   which chassis a VM's port is bound to during a live migration ([`kubevirt::placement`]).
//! - [`sha256`]: SHA-256, for names derived from a hash.
//!
//! Must not touch: files, sockets, processes, Kubernetes or OVSDB clients. Types, parsing,
//! rendering and pure rules only (logging through `tracing` is fine).

pub mod addr;
pub mod addressing;
pub mod env;
pub mod handoff;
pub mod hmac;
pub mod kubevirt;
pub mod mac;
pub mod names;
pub mod netconf;
pub mod request;
pub mod sha256;
pub mod status;

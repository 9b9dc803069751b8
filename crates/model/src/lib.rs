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
//!
//! Must not touch: files, sockets, processes, Kubernetes or OVSDB clients. Types, parsing,
//! rendering and pure rules only.

pub mod addressing;
pub mod handoff;
pub mod mac;
pub mod names;

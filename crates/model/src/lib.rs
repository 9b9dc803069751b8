//! `model`: what every kubetron process must agree on; no I/O of any kind.
//!
//! The controller, the CNI plugin (standalone and shim), the node agent and the webhook all link
//! this crate, so a rule that two of them must apply the same way is written here once:
//!
//! - [`handoff`]: the `kubetron.io/interfaces` annotation (v1), the contract between the controller
//!   (its only writer) and the node side (see `docs/cluster-mode.md`, section 2).
//! - [`names`]: the names kubetron gives to the OVN rows of a pod (`pod_port`).
//!
//! Must not touch: files, sockets, processes, Kubernetes or OVSDB clients. Types, parsing,
//! rendering and pure rules only.

pub mod handoff;
pub mod names;

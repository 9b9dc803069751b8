//! `ovn`: typed models of the OVN Northbound tables and of the local Open_vSwitch tables kubetron uses,
//! checked against the installed schemas, built on the `ovsdb` crate.
//!
//! Owns: row structs ([`nb`], [`vswitch`]), their conversion to and from OVSDB rows, the `external_ids`
//! keys kubetron tags its rows with and the names of the rows only the CNI plugin makes ([`names`]),
//! and small builders of transaction operations (add a logical switch port to a switch, guard an
//! address check with `wait`, plug an interface into br-int...).
//!
//! Not here: what every kubetron process must agree on lives in the `model` crate, which callers
//! use directly: a pod's logical switch port name, the pod's namespace/name keys and `iface-id-ver`
//! (`model::names`), and the addressing rules of a switch (`model::addressing`), which
//! [`nb::guard_switch_ports`] makes race-safe.
//!
//! Must not touch: Kubernetes objects, netlink, processes. It builds operations; callers send them.

pub mod columns;
pub mod names;
pub mod nb;
pub mod vswitch;

pub use columns::{ColumnKind, ColumnSpec, Model};

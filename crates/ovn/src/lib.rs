//! `ovn`: typed models of the OVN Northbound tables and of the local Open_vSwitch tables kubetron uses,
//! checked against the installed schemas, built on the `ovsdb` crate.
//!
//! Owns: row structs ([`nb`], [`vswitch`]), their conversion to and from OVSDB rows, the names kubetron
//! gives to the rows it creates ([`names`]), the addressing rules of a switch shared by the CNI
//! plugin, the controller and the webhook ([`addressing`]: subnet, `exclude_ips`, addresses held
//! by other ports), and small builders of transaction operations (add a logical switch port to a
//! switch, guard an address check with `wait`, plug an interface into br-int...).
//!
//! Must not touch: Kubernetes objects, netlink, processes. It builds operations; callers send them.

pub mod addressing;
pub mod columns;
pub mod names;
pub mod nb;
pub mod vswitch;

pub use columns::{ColumnKind, ColumnSpec, Model};

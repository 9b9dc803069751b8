//! `policy`: what a MultiNetworkPolicy means on kubetron's networks, as data. No I/O.
//!
//! Owns the policy's spec types and the `policy-for` annotation ([`spec`]), the problems that make
//! a policy unusable ([`validate`]), the view of namespaces, pods and their ports a translation
//! looks at ([`world`]), and the translation of a policy on one logical switch into the OVN
//! Port_Group, Address_Set and ACL rows that enforce it, with the switch's default-deny groups
//! ([`translate`]). The controller (`k8s::controller::policy`) builds the world from its caches and
//! the Northbound replica, plans the rows against what exists and writes them; the webhook can
//! validate with the same code; the benchmark translates without Kubernetes.
//!
//! Must not touch: Kubernetes or OVSDB clients, sockets, files. The `external_ids` keys are
//! `ovn::names`'.

pub mod spec;
pub mod translate;
pub mod validate;
pub mod world;

pub use spec::{parse_policy_for, Direction, LabelSelector, PolicySpec, Protocol, POLICY_FOR};
pub use translate::{
    deny_group_names, deny_rows, port_group_name, translate, AclRow, AddressSetRow, Mode, PolicyRef, PolicyRows, PortGroupRow,
};
pub use validate::{describe, validate, Problem};
pub use world::{ContainerPort, PodView, PortView, World};

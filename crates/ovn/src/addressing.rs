//! Addressing rules of a logical switch: defined once in [`model::addressing`] (pure rules shared
//! by the CNI plugin, the controller and the webhook); re-exported here for the callers that still
//! name them through `ovn`. The race-safe half, guarding the check with `wait` operations, is
//! [`crate::nb::guard_switch_ports`].

pub use model::addressing::*;

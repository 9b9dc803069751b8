//! `node`: the node agent: a kubelet device plugin (v1beta1) advertising one resource per physical
//! network found in the local `ovn-bridge-mappings`.
//!
//! Must not touch: the OVN Northbound database, pod interfaces.

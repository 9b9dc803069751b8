//! Environment variables that tell containers which interface a network got
//! (`NETWORK_INTERFACE_<NET>=<ifname>`): defined in [`model::env`], re-exported here.

pub use model::env::*;

//! `neutron`: a client of the OpenStack Networking API v2.0 (Neutron), as kubetron's Neutron
//! backend needs it: networks and subnets (what NADs expose), ports (one per pod attachment),
//! their status.
//!
//! Owns: the HTTP exchange and its bounds (a per-request timeout; at most `write_concurrency`
//! creates and deletes in flight, so a burst of pods never piles onto one neutron-server API
//! worker), the API's JSON shapes ([`types`]), which failures are worth retrying ([`Error`]) and
//! the backoff between tries, and idempotent port creation ([`Client::ensure_port`]: a pod's port
//! is looked up by `device_id` and `name` before it is created, and looked up again after a
//! create whose outcome is unknown, so a retry never makes a second port).
//!
//! Authentication ([`Auth`]): Keystone v3 tokens (a password or an application credential; cached,
//! renewed before they expire and when Neutron answers 401), or none for Neutron's `noauth`.
//!
//! Must not touch: Kubernetes objects, OVN databases, the node.

pub mod types;

mod client;
mod coalesce;
mod error;

pub use client::{Auth, Client, ClientConfig};
pub use error::Error;
pub use types::{FixedIp, Network, NewPort, Port, SecurityGroup, Subnet, DEVICE_OWNER};

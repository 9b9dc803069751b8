//! `daemons`: runs real Open vSwitch and OVN daemons (ovsdb-server, ovn-northd, ovs-vswitchd,
//! ovn-controller) under one state directory, and stops them by their pid files.
//!
//! Owns: database files, command lines, pid files, readiness waits, teardown.
//! Used by the sandbox and by tests.
//!
//! Must not touch: OVSDB contents beyond what `ovs-vsctl`/`ovn-nbctl` need to initialise a database;
//! never stops a process it did not start (never by process name).
//!
//! Modules: [`process`] (generic: spawn detached with pid/log files, optionally in a netns; stop
//! by pid; wait for sockets), [`ovsdb_server`] (standalone servers and raft clusters),
//! [`kube`] (etcd + kube-apiserver on loopback for tests: test PKI, kubeconfigs, readiness, teardown),
//! [`cluster`] (a real one-node cluster: control plane, containerd, kubelet; puts the host back),
//! [`neutron`] (a private PostgreSQL and Debian's neutron-server with ML2/OVN, noauth or Keystone),
//! [`keystone`] (Debian's Keystone under uwsgi, sqlite), [`http`] (the harness's own HTTP calls).

use std::path::PathBuf;

pub mod cluster;
pub mod http;
pub mod keystone;
pub mod kube;
pub mod netns;
pub mod neutron;
pub mod ovn;
pub mod ovsdb_server;
pub mod process;

pub use ovn::{link_underlay, Central, CentralOptions, Chassis, ChassisConfig};
pub use ovsdb_server::{Allocator, OvsdbServer, OvsdbServerConfig, RaftCluster, Ssl};
pub use process::{free_tcp_port, DaemonSpec};

/// Installed schema files.
pub mod schemas {
    pub const NB: &str = "/usr/share/ovn/ovn-nb.ovsschema";
    pub const SB: &str = "/usr/share/ovn/ovn-sb.ovsschema";
    pub const VSWITCH: &str = "/usr/share/openvswitch/vswitch.ovsschema";
}

/// Errors of the daemons crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot run {cmd}: {source}")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("{cmd} exited with status {status}: {stderr}")]
    Command { cmd: String, status: i32, stderr: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("not ready: {0}")]
    NotReady(String),
    #[error("missing or invalid: {0}")]
    Missing(String),
}

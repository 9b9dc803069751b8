//! `cni`: the kubetron CNI plugin (CNI spec 1.1): configuration and result types, ADD, DEL, CHECK,
//! STATUS, GC, VERSION, and the spec's error results.
//!
//! Data flows one way: CNI request -> the node agent (cluster, chained) or crate `standalone`;
//! the node side of an attachment -> netlink (`netdev`) + the local OVS (`ovn::vswitch`).
//!
//! Must not touch: Kubernetes API objects (it reads only what the runtime passes in).
//!
//! Spec layer (this crate's base): [`NetConf`] (the runtime's envelope around kubetron's fields,
//! [`model::netconf::KubetronNetConf`], whose fields, defaults and rules are `model`'s, shared with
//! the controller and the webhook), [`CniResult`] and its per-version JSON
//! ([`CniResult::to_version`]), [`CniError`]/[`ErrorCode`] (with the codes of `model`'s config and
//! version errors), [`Env`] (CNI_* vars), [`VersionInfo`], and the dispatcher
//! [`run`]/[`run_process`] over a [`Plugin`].
//!
//! Modes (config key `mode`, [`model::netconf::Mode`]): `cluster` and `chained` are served by the
//! node agent, and the plugin is [`shim::Shim`], which forwards each call over the agent's unix
//! socket ([`agent`]: the protocol of both ends and the shim's std-only client). `standalone` is
//! the direct path to the Northbound database, crate `standalone`. The `kubetron-cni` binary is the
//! shim alone; the `kubetron` binary run with `CNI_COMMAND` picks by mode (`standalone::ByMode`).
//!
//! [`plumb`]: the node side of an attachment (veth, addresses, the local OVS Interface), shared by
//! the node agent and the standalone plugin. This crate never reads or writes the Northbound
//! database (`tests/no_nb.rs`).
//!
//! Node installation for chained mode ([`install`], `kubetron install-cni`): the shim binary into
//! the runtime's CNI bin dir and kubetron's entry at the end of the plugin list of the runtime's
//! primary network config (the lexically first in its conf dir), written so containerd reloads it.

pub mod agent;
mod config;
mod dispatch;
mod env;
mod error;
pub mod install;
pub mod plumb;
mod result;
pub mod shim;
mod version;

pub use config::{Attachment, NetConf, PortMapping, RuntimeConfig, POD_ANNOTATIONS_CAPABILITY};
pub use dispatch::{run, run_process, Plugin, Request};
pub use env::{valid_container_id, validate_ifname, CniArgs, Command, Env};
pub use error::{CniError, ErrorCode, ErrorJson};
pub use result::{CniResult, Interface, IpConfig, RouteEntry};
pub use version::VersionInfo;

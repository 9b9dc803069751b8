//! `cni`: the kubetron CNI plugin (CNI spec 1.1): configuration and result types, ADD, DEL, CHECK,
//! STATUS, GC, VERSION, and the spec's error results.
//!
//! Data flows one way: CNI request -> netlink (`netdev`) + local OVS / OVN NB rows (`ovn`).
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
//! Modes (config key `mode`, [`model::netconf::Mode`]): `standalone` is the direct path above ([`KubetronPlugin`]);
//! `cluster` and `chained` are served by the node agent, and the plugin is [`shim::Shim`], which
//! forwards each call over the agent's unix socket ([`agent`]: the protocol of both ends and the
//! shim's std-only client). The `kubetron-cni` binary is the shim alone; the `kubetron` binary run
//! with `CNI_COMMAND` picks by mode ([`shim::ByMode`]).
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
pub mod plugin;
mod result;
pub mod shim;
mod version;

pub use config::{Attachment, NetConf, PortMapping, RuntimeConfig, POD_ANNOTATIONS_CAPABILITY};
pub use dispatch::{run, run_process, Plugin, Request};
pub use env::{valid_container_id, validate_ifname, CniArgs, Command, Env};
pub use error::{CniError, ErrorCode, ErrorJson};
pub use plugin::KubetronPlugin;
pub use result::{CniResult, Interface, IpConfig, RouteEntry};
pub use version::VersionInfo;

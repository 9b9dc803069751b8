//! `netdev`: the Linux side of plugging a pod: network namespaces, veth pairs, MAC/MTU, addresses,
//! routes and ethtool offloads, over netlink and ioctl.
//!
//! Must not touch: OVSDB, OVN, Kubernetes.
//!
//! Speaks rtnetlink itself (a small synchronous client, module `nl`) and the ethtool ioctl; no async runtime needed.
//! Entry points:
//! - [`Netns`]: open (`/run/netns/NAME`, `/proc/PID/ns/net`), [`Netns::create`]/[`Netns::delete`] like
//!   `ip netns add/del`, [`Netns::run`] a closure inside it on a dedicated thread; [`TempNetns`] for tests.
//! - [`Handle`]: a netlink socket bound to one netns ([`Handle::new`] here, [`Handle::in_netns`] there);
//!   links ([`Handle::link_by_name`], [`Handle::set_link`], [`Handle::delete_link`]), veth pairs
//!   ([`Handle::veth`]), addresses ([`Handle::add_address`], [`Handle::addresses`]), routes
//!   ([`Handle::add_route`], [`Handle::routes`]), TX checksum ([`Handle::set_tx_checksum`]) and
//!   [`Handle::disable_ipv6`]; Linux bridges and their ports ([`Handle::create_bridge`], [`Handle::set_master`],
//!   [`Handle::set_nomaster`]) and persistent taps ([`Handle::create_tap`]), for KubeVirt's bridge binding.
//! - [`host_ifname`]: deterministic host-side veth names.

mod addr;
mod bridge;
mod error;
mod ethtool;
mod handle;
mod link;
mod mac;
mod names;
mod netns;
mod nl;
mod route;
mod sysctl;
mod tap;
mod veth;

pub use addr::{Address, AddressAdd, IFA_F_NODAD, IFA_F_NOPREFIXROUTE, IFA_F_TENTATIVE};
pub use error::{NetdevError, Result};
pub use handle::Handle;
pub use ipnet::IpNet;
pub use link::{validate_ifname, Link, LinkUpdate, OperState};
pub use mac::MacAddr;
pub use names::host_ifname;
pub use netns::{Netns, TempNetns, NETNS_RUN_DIR};
pub use route::{Route, RT_TABLE_MAIN};
pub use veth::{VethBuilder, VethPair};

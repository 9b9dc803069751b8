//! veth pairs: the host end in the handle's netns, the peer created directly inside the target netns
//! with its final name, in one atomic RTM_NEWLINK (the kernel makes both ends or neither).

use std::os::fd::{AsFd, AsRawFd};

use crate::error::{NetdevError, Result};
use crate::handle::Handle;
use crate::link::{
    ifinfomsg, validate_ifname, Link, IFLA_ADDRESS, IFLA_IFNAME, IFLA_INFO_DATA, IFLA_INFO_KIND, IFLA_LINKINFO, IFLA_MTU, IFLA_NET_NS_FD,
};
use crate::mac::MacAddr;
use crate::netns::Netns;
use crate::nl::{self, MsgBuf};

const VETH_INFO_PEER: u16 = 1;

/// A veth pair to create; from [`Handle::veth`].
#[must_use = "nothing happens until create()"]
pub struct VethBuilder<'a> {
    h: &'a Handle,
    host_name: String,
    peer_name: String,
    peer_netns: Option<&'a Netns>,
    mtu: Option<u32>,
    host_mac: Option<MacAddr>,
    peer_mac: Option<MacAddr>,
    host_up: bool,
    peer_up: bool,
    fail_after_create: bool,
}

/// What [`VethBuilder::create`] made.
#[derive(Debug, Clone)]
pub struct VethPair {
    /// The host end (in the handle's netns), as read back.
    pub host: Link,
    /// The peer end, as read back in its netns.
    pub peer: Link,
}

impl<'a> VethBuilder<'a> {
    /// Puts the peer end in `ns` (default: the same netns as the host end).
    pub fn peer_netns(mut self, ns: &'a Netns) -> Self {
        self.peer_netns = Some(ns);
        self
    }
    /// MTU of both ends.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }
    /// MAC of the host end.
    pub fn host_mac(mut self, mac: MacAddr) -> Self {
        self.host_mac = Some(mac);
        self
    }
    /// MAC of the peer end.
    pub fn peer_mac(mut self, mac: MacAddr) -> Self {
        self.peer_mac = Some(mac);
        self
    }
    /// Bring the host end up after creation.
    pub fn host_up(mut self) -> Self {
        self.host_up = true;
        self
    }
    /// Bring the peer end up after creation.
    pub fn peer_up(mut self) -> Self {
        self.peer_up = true;
        self
    }

    /// Test hook: make the step after the kernel created the pair fail, to exercise the cleanup path.
    #[doc(hidden)]
    pub fn inject_failure_after_create(mut self) -> Self {
        self.fail_after_create = true;
        self
    }

    /// Creates the pair. On `EEXIST` says which name is taken (`LinkExists`). If a later step
    /// (bringing ends up, reading back) fails, the pair is deleted again before returning the error.
    pub fn create(self) -> Result<VethPair> {
        validate_ifname(&self.host_name)?;
        validate_ifname(&self.peer_name)?;
        if self.peer_netns.is_none() && self.host_name == self.peer_name {
            return Err(NetdevError::InvalidArgument(format!("both veth ends named {:?} in one netns", self.host_name)));
        }
        let mut m = MsgBuf::new(&ifinfomsg(0, 0, 0));
        m.attr_str(IFLA_IFNAME, &self.host_name);
        if let Some(mtu) = self.mtu {
            m.attr_u32(IFLA_MTU, mtu);
        }
        if let Some(mac) = self.host_mac {
            m.attr(IFLA_ADDRESS, &mac.0);
        }
        let li = m.begin_nested(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "veth");
        let data = m.begin_nested(IFLA_INFO_DATA);
        let peer = m.begin_nested(VETH_INFO_PEER);
        m.raw(&ifinfomsg(0, 0, 0));
        m.attr_str(IFLA_IFNAME, &self.peer_name);
        if let Some(mtu) = self.mtu {
            m.attr_u32(IFLA_MTU, mtu);
        }
        if let Some(mac) = self.peer_mac {
            m.attr(IFLA_ADDRESS, &mac.0);
        }
        if let Some(ns) = self.peer_netns {
            m.attr_u32(IFLA_NET_NS_FD, ns.as_fd().as_raw_fd() as u32);
        }
        m.end_nested(peer);
        m.end_nested(data);
        m.end_nested(li);

        let target = self.peer_netns.map(|n| n.path().display().to_string()).unwrap_or_else(|| self.h.netns_label());
        let op = format!("create veth {} <-> {} (in {target})", self.host_name, self.peer_name);
        if let Err(e) = self.h.nl.request_ack(&op, nl::RTM_NEWLINK, nl::NLM_F_CREATE | nl::NLM_F_EXCL, &m) {
            return Err(if e.is_exists() { self.which_exists(e, &target) } else { e });
        }
        tracing::debug!(host = %self.host_name, peer = %self.peer_name, netns = %target, "created veth pair");

        match self.finish() {
            Ok(pair) => Ok(pair),
            Err(e) => {
                tracing::warn!(host = %self.host_name, error = %e, "veth setup failed, deleting the pair");
                if let Err(de) = self.h.delete_link(&self.host_name) {
                    tracing::error!(host = %self.host_name, error = %de, "cannot delete half-made veth pair");
                }
                Err(e)
            }
        }
    }

    fn peer_handle(&self) -> Result<Option<Handle>> {
        self.peer_netns.map(Handle::in_netns).transpose()
    }

    fn finish(&self) -> Result<VethPair> {
        if self.fail_after_create {
            return Err(NetdevError::InvalidArgument("injected failure after veth creation".into()));
        }
        let peer_h = self.peer_handle()?;
        let ph = peer_h.as_ref().unwrap_or(self.h);
        if self.host_up {
            self.h.set_link(&self.host_name).up().apply()?;
        }
        if self.peer_up {
            ph.set_link(&self.peer_name).up().apply()?;
        }
        let host = self.h.link_by_name(&self.host_name)?.ok_or_else(|| NetdevError::LinkNotFound(self.host_name.clone()))?;
        let peer = ph.link_by_name(&self.peer_name)?.ok_or_else(|| NetdevError::LinkNotFound(self.peer_name.clone()))?;
        Ok(VethPair { host, peer })
    }

    /// The kernel says EEXIST without saying which end: look.
    fn which_exists(&self, e: NetdevError, target: &str) -> NetdevError {
        if let Ok(Some(_)) = self.h.link_by_name(&self.host_name) {
            return NetdevError::LinkExists { name: self.host_name.clone(), netns: self.h.netns_label() };
        }
        let peer_taken = match self.peer_handle() {
            Ok(Some(ph)) => matches!(ph.link_by_name(&self.peer_name), Ok(Some(_))),
            Ok(None) => matches!(self.h.link_by_name(&self.peer_name), Ok(Some(_))),
            Err(_) => false,
        };
        if peer_taken {
            return NetdevError::LinkExists { name: self.peer_name.clone(), netns: target.to_string() };
        }
        e
    }
}

impl Handle {
    /// Starts a veth pair `host_name` (here) <-> `peer_name` (here, or in [`VethBuilder::peer_netns`]).
    pub fn veth(&self, host_name: &str, peer_name: &str) -> VethBuilder<'_> {
        VethBuilder {
            h: self,
            host_name: host_name.to_string(),
            peer_name: peer_name.to_string(),
            peer_netns: None,
            mtu: None,
            host_mac: None,
            peer_mac: None,
            host_up: false,
            peer_up: false,
            fail_after_create: false,
        }
    }
}

//! Linux bridges and enslaving links to them (`ip link add NAME type bridge`, `ip link set L master B`),
//! as KubeVirt's bridge binding builds inside a launcher pod: the pod interface and the VM's tap on one bridge.

use crate::error::{NetdevError, Result};
use crate::handle::Handle;
use crate::link::{ifinfomsg, validate_ifname, Link, IFLA_IFNAME, IFLA_INFO_KIND, IFLA_LINKINFO, IFLA_MASTER, IFLA_MTU};
use crate::nl::{self, MsgBuf};

impl Handle {
    /// Creates a Linux bridge `name` with this MTU (down, no ports), in one RTM_NEWLINK. `LinkExists` if
    /// the name is taken.
    pub fn create_bridge(&self, name: &str, mtu: u32) -> Result<Link> {
        validate_ifname(name)?;
        let mut m = MsgBuf::new(&ifinfomsg(0, 0, 0));
        m.attr_str(IFLA_IFNAME, name);
        m.attr_u32(IFLA_MTU, mtu);
        let li = m.begin_nested(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "bridge");
        m.end_nested(li);
        let op = format!("create bridge {name} (mtu {mtu})");
        self.nl.request_ack(&op, nl::RTM_NEWLINK, nl::NLM_F_CREATE | nl::NLM_F_EXCL, &m).map_err(|e| {
            if e.is_exists() {
                NetdevError::LinkExists { name: name.to_string(), netns: self.netns_label() }
            } else {
                e
            }
        })?;
        tracing::debug!(bridge = name, mtu, netns = %self.netns_label(), "created bridge");
        self.link_by_name(name)?.ok_or_else(|| NetdevError::LinkNotFound(name.to_string()))
    }

    /// Enslaves link `link` to bridge `master` (`ip link set LINK master MASTER`).
    pub fn set_master(&self, link: &str, master: &str) -> Result<()> {
        let m = self.link_by_name(master)?.ok_or_else(|| NetdevError::LinkNotFound(master.to_string()))?;
        self.master_index(link, m.index, &format!("set {link} master {master}"))
    }

    /// Releases link `link` from its bridge (`ip link set LINK nomaster`); a no-op if it has none.
    pub fn set_nomaster(&self, link: &str) -> Result<()> {
        self.master_index(link, 0, &format!("set {link} nomaster"))
    }

    fn master_index(&self, link: &str, master: u32, op: &str) -> Result<()> {
        let l = self.link_by_name(link)?.ok_or_else(|| NetdevError::LinkNotFound(link.to_string()))?;
        let mut m = MsgBuf::new(&ifinfomsg(l.index as i32, 0, 0));
        m.attr_u32(IFLA_MASTER, master);
        self.nl.request_ack(op, nl::RTM_NEWLINK, 0, &m)?;
        tracing::debug!(netns = %self.netns_label(), "{op}");
        Ok(())
    }
}

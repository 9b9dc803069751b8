//! Links: read back (by name, index, all), change (MAC, MTU, up/down, name), delete.

use crate::error::{NetdevError, Result};
use crate::handle::Handle;
use crate::mac::MacAddr;
use crate::nl::{self, attrs, parse_str, parse_u32, MsgBuf, Reply};

pub(crate) const IFLA_ADDRESS: u16 = 1;
pub(crate) const IFLA_IFNAME: u16 = 3;
pub(crate) const IFLA_MTU: u16 = 4;
pub(crate) const IFLA_LINK: u16 = 5;
pub(crate) const IFLA_MASTER: u16 = 10;
pub(crate) const IFLA_OPERSTATE: u16 = 16;
pub(crate) const IFLA_LINKINFO: u16 = 18;
pub(crate) const IFLA_NET_NS_FD: u16 = 28;
pub(crate) const IFLA_LINK_NETNSID: u16 = 37;
pub(crate) const IFLA_INFO_KIND: u16 = 1;
pub(crate) const IFLA_INFO_DATA: u16 = 2;

const IFF_UP: u32 = 0x1;
const IFF_LOWER_UP: u32 = 0x10000;

/// Size of `struct ifinfomsg`.
pub(crate) const IFINFOMSG_LEN: usize = 16;

/// `struct ifinfomsg` bytes: family 0, type 0, the index, flags and change mask.
pub(crate) fn ifinfomsg(index: i32, flags: u32, change: u32) -> [u8; IFINFOMSG_LEN] {
    let mut b = [0u8; IFINFOMSG_LEN];
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b[8..12].copy_from_slice(&flags.to_ne_bytes());
    b[12..16].copy_from_slice(&change.to_ne_bytes());
    b
}

/// RFC 2863 operational state (`IFLA_OPERSTATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperState {
    /// Unknown (e.g. loopback, dummy).
    Unknown,
    /// Not present.
    NotPresent,
    /// Down.
    Down,
    /// Lower layer down (e.g. veth whose peer is down).
    LowerLayerDown,
    /// Testing.
    Testing,
    /// Dormant.
    Dormant,
    /// Up.
    Up,
}

impl OperState {
    fn from_u8(v: u8) -> OperState {
        match v {
            1 => OperState::NotPresent,
            2 => OperState::Down,
            3 => OperState::LowerLayerDown,
            4 => OperState::Testing,
            5 => OperState::Dormant,
            6 => OperState::Up,
            _ => OperState::Unknown,
        }
    }
}

/// A network interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index (in its netns).
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Hardware address, if it has an Ethernet one.
    pub mac: Option<MacAddr>,
    /// MTU.
    pub mtu: u32,
    /// Operational state.
    pub oper_state: OperState,
    /// Administratively up (IFF_UP).
    pub admin_up: bool,
    /// Carrier (IFF_LOWER_UP).
    pub lower_up: bool,
    /// Link kind from IFLA_INFO_KIND ("veth", "dummy", ...), if any.
    pub kind: Option<String>,
    /// IFLA_LINK: for a veth, the peer's ifindex (in the peer's netns).
    pub peer_index: Option<u32>,
    /// IFLA_LINK_NETNSID: the peer's netns id as seen from here, when it is in another netns.
    pub link_netnsid: Option<i32>,
    /// IFLA_MASTER: the index of the bridge (or bond) this link is enslaved to.
    pub master: Option<u32>,
}

pub(crate) fn parse_link(r: &Reply) -> Result<Link> {
    let p = &r.payload;
    if p.len() < IFINFOMSG_LEN {
        return Err(NetdevError::Malformed(format!("ifinfomsg of {} bytes", p.len())));
    }
    let index = i32::from_ne_bytes([p[4], p[5], p[6], p[7]]) as u32;
    let flags = u32::from_ne_bytes([p[8], p[9], p[10], p[11]]);
    let mut link = Link {
        index,
        name: String::new(),
        mac: None,
        mtu: 0,
        oper_state: OperState::Unknown,
        admin_up: flags & IFF_UP != 0,
        lower_up: flags & IFF_LOWER_UP != 0,
        kind: None,
        peer_index: None,
        link_netnsid: None,
        master: None,
    };
    for (k, d) in attrs(&p[IFINFOMSG_LEN..]) {
        match k {
            IFLA_IFNAME => link.name = parse_str(d),
            IFLA_ADDRESS if d.len() == 6 => link.mac = Some(MacAddr([d[0], d[1], d[2], d[3], d[4], d[5]])),
            IFLA_MTU => link.mtu = parse_u32(d).unwrap_or(0),
            IFLA_OPERSTATE => link.oper_state = OperState::from_u8(d.first().copied().unwrap_or(0)),
            IFLA_LINK => link.peer_index = parse_u32(d).filter(|&i| i != 0),
            IFLA_LINK_NETNSID => link.link_netnsid = parse_u32(d).map(|v| v as i32),
            IFLA_MASTER => link.master = parse_u32(d).filter(|&i| i != 0),
            IFLA_LINKINFO => {
                for (ik, id) in attrs(d) {
                    if ik == IFLA_INFO_KIND {
                        link.kind = Some(parse_str(id));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(link)
}

/// Checks an interface name the way the kernel does ([`model::names::check_ifname`]: 1..=15
/// bytes, not "." or "..", no '/', ':' or whitespace; nor '%' or control characters, which would
/// not give the name asked for).
pub fn validate_ifname(name: &str) -> Result<()> {
    model::names::check_ifname(name)
        .map_err(|why| NetdevError::InvalidName { name: name.to_string(), reason: format!("interface name {why}") })
}

/// A pending change to one link; build it with [`Handle::set_link`] and send with [`LinkUpdate::apply`].
#[must_use = "nothing happens until apply()"]
pub struct LinkUpdate<'h> {
    h: &'h Handle,
    name: String,
    mac: Option<MacAddr>,
    mtu: Option<u32>,
    up: Option<bool>,
    rename: Option<String>,
}

impl LinkUpdate<'_> {
    /// Sets the hardware address.
    pub fn mac(mut self, mac: MacAddr) -> Self {
        self.mac = Some(mac);
        self
    }
    /// Sets the MTU.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }
    /// Brings the link up.
    pub fn up(mut self) -> Self {
        self.up = Some(true);
        self
    }
    /// Brings the link down.
    pub fn down(mut self) -> Self {
        self.up = Some(false);
        self
    }
    /// Renames the link (it must be down).
    pub fn rename(mut self, new_name: &str) -> Self {
        self.rename = Some(new_name.to_string());
        self
    }

    /// Sends the change in one RTM_NEWLINK request.
    pub fn apply(self) -> Result<()> {
        if let Some(n) = &self.rename {
            validate_ifname(n)?;
        }
        let link = self.h.link_by_name(&self.name)?.ok_or_else(|| NetdevError::LinkNotFound(self.name.clone()))?;
        let (flags, change) = match self.up {
            Some(true) => (IFF_UP, IFF_UP),
            Some(false) => (0, IFF_UP),
            None => (0, 0),
        };
        let mut m = MsgBuf::new(&ifinfomsg(link.index as i32, flags, change));
        if let Some(mac) = self.mac {
            m.attr(IFLA_ADDRESS, &mac.0);
        }
        if let Some(mtu) = self.mtu {
            m.attr_u32(IFLA_MTU, mtu);
        }
        if let Some(n) = &self.rename {
            m.attr_str(IFLA_IFNAME, n);
        }
        let op = format!("set link {} (mac {:?} mtu {:?} up {:?} rename {:?})", self.name, self.mac, self.mtu, self.up, self.rename);
        self.h.nl.request_ack(&op, nl::RTM_NEWLINK, 0, &m)?;
        tracing::debug!(netns = %self.h.netns_label(), "{op}");
        Ok(())
    }
}

impl Handle {
    /// The link called `name`, or `None` if there is none.
    pub fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
        validate_ifname(name)?;
        let mut m = MsgBuf::new(&ifinfomsg(0, 0, 0));
        m.attr_str(IFLA_IFNAME, name);
        match self.nl.request_one(&format!("get link {name}"), nl::RTM_GETLINK, &m) {
            Ok(Some(r)) => parse_link(&r).map(Some),
            Ok(None) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The link with this index, or `None`.
    pub fn link_by_index(&self, index: u32) -> Result<Option<Link>> {
        let m = MsgBuf::new(&ifinfomsg(index as i32, 0, 0));
        match self.nl.request_one(&format!("get link #{index}"), nl::RTM_GETLINK, &m) {
            Ok(Some(r)) => parse_link(&r).map(Some),
            Ok(None) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link of the netns.
    pub fn links(&self) -> Result<Vec<Link>> {
        let m = MsgBuf::new(&ifinfomsg(0, 0, 0));
        self.nl.dump("dump links", nl::RTM_GETLINK, &m)?.iter().filter(|r| r.kind == nl::RTM_NEWLINK).map(parse_link).collect()
    }

    /// Starts a change of link `name` (MAC, MTU, up/down, rename).
    pub fn set_link(&self, name: &str) -> LinkUpdate<'_> {
        LinkUpdate { h: self, name: name.to_string(), mac: None, mtu: None, up: None, rename: None }
    }

    /// Deletes link `name` (for a veth, both ends go). `Ok(false)` if it was not there.
    pub fn delete_link(&self, name: &str) -> Result<bool> {
        validate_ifname(name)?;
        let mut m = MsgBuf::new(&ifinfomsg(0, 0, 0));
        m.attr_str(IFLA_IFNAME, name);
        match self.nl.request_ack(&format!("delete link {name}"), nl::RTM_DELLINK, 0, &m) {
            Ok(()) => {
                tracing::debug!(link = name, netns = %self.netns_label(), "deleted link");
                Ok(true)
            }
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates a link of a kind that needs no options (`"bridge"`, `"dummy"` where the kernel has it).
    pub fn add_link(&self, name: &str, kind: &str) -> Result<Link> {
        validate_ifname(name)?;
        let mut m = MsgBuf::new(&ifinfomsg(0, 0, 0));
        m.attr_str(IFLA_IFNAME, name);
        let li = m.begin_nested(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, kind);
        m.end_nested(li);
        self.nl.request_ack(&format!("create {kind} link {name}"), nl::RTM_NEWLINK, nl::NLM_F_CREATE | nl::NLM_F_EXCL, &m).map_err(
            |e| {
                if e.is_exists() {
                    NetdevError::LinkExists { name: name.to_string(), netns: self.netns_label() }
                } else {
                    e
                }
            },
        )?;
        self.link_by_name(name)?.ok_or_else(|| NetdevError::LinkNotFound(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_validation() {
        validate_ifname("eth0").unwrap();
        validate_ifname("kt0123456789ab").unwrap();
        for bad in ["", ".", "..", "a/b", "a b", "a:b", "sixteen-chars-xx", "eth%d", "a\u{1}"] {
            assert!(validate_ifname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parse_link_rejects_short_payload() {
        let r = Reply { kind: nl::RTM_NEWLINK, payload: vec![0; 8] };
        assert!(matches!(parse_link(&r), Err(NetdevError::Malformed(_))));
    }
}

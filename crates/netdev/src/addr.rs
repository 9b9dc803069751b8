//! IP addresses on links: add (IPv4/IPv6 with prefix), delete, list.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::error::{NetdevError, Result};
use crate::handle::Handle;
use crate::nl::{self, attrs, parse_u32, MsgBuf, Reply};

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;

/// IFA_F_NODAD: no duplicate address detection (IPv6 address usable at once).
pub const IFA_F_NODAD: u32 = 0x02;
/// IFA_F_TENTATIVE: IPv6 DAD still running.
pub const IFA_F_TENTATIVE: u32 = 0x40;
/// IFA_F_NOPREFIXROUTE: do not add the prefix route.
pub const IFA_F_NOPREFIXROUTE: u32 = 0x200;

/// An address as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The link's index.
    pub index: u32,
    /// Address and prefix length.
    pub addr: IpNet,
    /// IFA_F_* flags.
    pub flags: u32,
    /// Scope (0 universe, 253 link, 254 host).
    pub scope: u8,
}

fn family(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

pub(crate) fn parse_ip(fam: u8, d: &[u8]) -> Option<IpAddr> {
    match (fam as i32, d.len()) {
        (libc::AF_INET, 4) => Some(IpAddr::V4(Ipv4Addr::new(d[0], d[1], d[2], d[3]))),
        (libc::AF_INET6, 16) => {
            let mut b = [0u8; 16];
            b.copy_from_slice(d);
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

/// An address to add; from [`Handle::add_address`].
#[must_use = "nothing happens until apply()"]
pub struct AddressAdd<'h> {
    h: &'h Handle,
    index: u32,
    addr: IpNet,
    flags: u32,
    replace: bool,
}

impl AddressAdd<'_> {
    /// Skip IPv6 duplicate address detection (the address is usable at once).
    pub fn nodad(mut self) -> Self {
        self.flags |= IFA_F_NODAD;
        self
    }
    /// Do not add the prefix (subnet) route.
    pub fn no_prefix_route(mut self) -> Self {
        self.flags |= IFA_F_NOPREFIXROUTE;
        self
    }
    /// Replace an existing equal address instead of failing with EEXIST.
    pub fn replace(mut self) -> Self {
        self.replace = true;
        self
    }

    /// Sends RTM_NEWADDR.
    pub fn apply(self) -> Result<()> {
        let ip = self.addr.addr();
        let mut fixed = [0u8; 8];
        fixed[0] = family(&ip);
        fixed[1] = self.addr.prefix_len();
        fixed[2] = (self.flags & 0xff) as u8;
        fixed[3] = 0; // RT_SCOPE_UNIVERSE
        fixed[4..8].copy_from_slice(&self.index.to_ne_bytes());
        let mut m = MsgBuf::new(&fixed);
        let b = ip_bytes(&ip);
        m.attr(IFA_LOCAL, &b);
        m.attr(IFA_ADDRESS, &b);
        if let IpNet::V4(n) = self.addr {
            if n.prefix_len() < 31 {
                m.attr(IFA_BROADCAST, &n.broadcast().octets());
            }
        }
        if self.flags != 0 {
            m.attr_u32(IFA_FLAGS, self.flags);
        }
        let flags = nl::NLM_F_CREATE | if self.replace { nl::NLM_F_REPLACE } else { nl::NLM_F_EXCL };
        let op = format!("add address {} on link #{}", self.addr, self.index);
        self.h.nl.request_ack(&op, nl::RTM_NEWADDR, flags, &m)?;
        tracing::debug!(netns = %self.h.netns_label(), "{op}");
        Ok(())
    }
}

fn parse_addr(r: &Reply) -> Result<Option<Address>> {
    let p = &r.payload;
    if p.len() < 8 {
        return Err(NetdevError::Malformed(format!("ifaddrmsg of {} bytes", p.len())));
    }
    let fam = p[0];
    let prefix = p[1];
    let mut flags = p[2] as u32;
    let scope = p[3];
    let index = u32::from_ne_bytes([p[4], p[5], p[6], p[7]]);
    let (mut local, mut address) = (None, None);
    for (k, d) in attrs(&p[8..]) {
        match k {
            IFA_LOCAL => local = parse_ip(fam, d),
            IFA_ADDRESS => address = parse_ip(fam, d),
            IFA_FLAGS => flags = parse_u32(d).unwrap_or(flags),
            _ => {}
        }
    }
    let Some(ip) = local.or(address) else {
        return Ok(None);
    };
    let addr = IpNet::new(ip, prefix).map_err(|_| NetdevError::Malformed(format!("prefix /{prefix} for {ip}")))?;
    Ok(Some(Address { index, addr, flags, scope }))
}

impl Handle {
    /// Starts adding `addr` (address + prefix, e.g. 10.1.0.5/24) to link `index`.
    pub fn add_address(&self, index: u32, addr: IpNet) -> AddressAdd<'_> {
        AddressAdd { h: self, index, addr, flags: 0, replace: false }
    }

    /// Removes `addr` from link `index`. `Ok(false)` if it was not there.
    pub fn delete_address(&self, index: u32, addr: IpNet) -> Result<bool> {
        let ip = addr.addr();
        let mut fixed = [0u8; 8];
        fixed[0] = family(&ip);
        fixed[1] = addr.prefix_len();
        fixed[4..8].copy_from_slice(&index.to_ne_bytes());
        let mut m = MsgBuf::new(&fixed);
        m.attr(IFA_LOCAL, &ip_bytes(&ip));
        match self.nl.request_ack(&format!("delete address {addr} on link #{index}"), nl::RTM_DELADDR, 0, &m) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() || e.errno() == Some(libc::EADDRNOTAVAIL) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The addresses of link `index` (all links with `None`), IPv4 and IPv6.
    pub fn addresses(&self, index: Option<u32>) -> Result<Vec<Address>> {
        let m = MsgBuf::new(&[0u8; 8]);
        let mut out = Vec::new();
        for r in self.nl.dump("dump addresses", nl::RTM_GETADDR, &m)? {
            if r.kind != nl::RTM_NEWADDR {
                continue;
            }
            if let Some(a) = parse_addr(&r)? {
                if index.is_none_or(|i| i == a.index) {
                    out.push(a);
                }
            }
        }
        Ok(out)
    }
}

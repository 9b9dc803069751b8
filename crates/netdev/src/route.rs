//! Routes: add (default or specific, via a gateway and/or on a device), delete, list (main table).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::addr::parse_ip;
use crate::error::{NetdevError, Result};
use crate::handle::Handle;
use crate::nl::{self, attrs, parse_u32, MsgBuf, Reply};

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_TABLE: u16 = 15;

/// The main routing table.
pub const RT_TABLE_MAIN: u32 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RT_SCOPE_NOWHERE: u8 = 255;
const RTN_UNICAST: u8 = 1;

/// A route, to add ([`Handle::add_route`]) or as read back ([`Handle::routes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination; `0.0.0.0/0` or `::/0` for a default route.
    pub dst: IpNet,
    /// Next hop, if any.
    pub gateway: Option<IpAddr>,
    /// Output interface index, if any.
    pub oif: Option<u32>,
    /// Metric (RTA_PRIORITY).
    pub metric: Option<u32>,
    /// Preferred source address.
    pub prefsrc: Option<IpAddr>,
    /// Routing table.
    pub table: u32,
    /// Scope (0 universe, 253 link, 254 host); for reading back.
    pub scope: u8,
    /// Route type (1 unicast, 2 local, ...); for reading back.
    pub kind: u8,
}

impl Route {
    /// A route to `dst` (no next hop yet): add `.via()` and/or `.dev()`.
    pub fn to(dst: IpNet) -> Route {
        Route {
            dst: dst.trunc(),
            gateway: None,
            oif: None,
            metric: None,
            prefsrc: None,
            table: RT_TABLE_MAIN,
            scope: RT_SCOPE_UNIVERSE,
            kind: RTN_UNICAST,
        }
    }
    /// The IPv4 default route `0.0.0.0/0`.
    pub fn default_v4() -> Route {
        Route::to(IpNet::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).expect("/0 is valid"))
    }
    /// The IPv6 default route `::/0`.
    pub fn default_v6() -> Route {
        Route::to(IpNet::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).expect("/0 is valid"))
    }
    /// The default route of the gateway's family, via that gateway.
    pub fn default_via(gw: IpAddr) -> Route {
        match gw {
            IpAddr::V4(_) => Route::default_v4().via(gw),
            IpAddr::V6(_) => Route::default_v6().via(gw),
        }
    }
    /// Next hop.
    pub fn via(mut self, gw: IpAddr) -> Route {
        self.gateway = Some(gw);
        self
    }
    /// Output device index.
    pub fn dev(mut self, index: u32) -> Route {
        self.oif = Some(index);
        self
    }
    /// Metric.
    pub fn metric(mut self, m: u32) -> Route {
        self.metric = Some(m);
        self
    }
    /// Preferred source address.
    pub fn src(mut self, ip: IpAddr) -> Route {
        self.prefsrc = Some(ip);
        self
    }
    /// True for `0.0.0.0/0` and `::/0`.
    pub fn is_default(&self) -> bool {
        self.dst.prefix_len() == 0
    }

    fn message(&self, for_add: bool) -> Result<MsgBuf> {
        let v4 = matches!(self.dst, IpNet::V4(_));
        for ip in self.gateway.iter().chain(self.prefsrc.iter()) {
            if ip.is_ipv4() != v4 {
                return Err(NetdevError::InvalidArgument(format!("{ip} is not of the family of route {}", self.dst)));
            }
        }
        if for_add && self.gateway.is_none() && self.oif.is_none() {
            return Err(NetdevError::InvalidArgument(format!("route {} needs a gateway or a device", self.dst)));
        }
        let mut fixed = [0u8; 12];
        fixed[0] = if v4 { libc::AF_INET as u8 } else { libc::AF_INET6 as u8 };
        fixed[1] = self.dst.prefix_len();
        fixed[4] = if self.table < 256 { self.table as u8 } else { 252 }; // RT_TABLE_COMPAT
        if for_add {
            fixed[5] = RTPROT_BOOT;
            fixed[6] = if self.gateway.is_none() && v4 { RT_SCOPE_LINK } else { RT_SCOPE_UNIVERSE };
            fixed[7] = RTN_UNICAST;
        } else {
            fixed[6] = RT_SCOPE_NOWHERE; // delete: match any scope, protocol and type
        }
        let mut m = MsgBuf::new(&fixed);
        if self.dst.prefix_len() > 0 {
            m.attr(RTA_DST, &ip_octets(&self.dst.network()));
        }
        if let Some(gw) = self.gateway {
            m.attr(RTA_GATEWAY, &ip_octets(&gw));
        }
        if let Some(oif) = self.oif {
            m.attr_u32(RTA_OIF, oif);
        }
        if let Some(p) = self.metric {
            m.attr_u32(RTA_PRIORITY, p);
        }
        if let Some(s) = self.prefsrc {
            m.attr(RTA_PREFSRC, &ip_octets(&s));
        }
        m.attr_u32(RTA_TABLE, self.table);
        Ok(m)
    }
}

fn ip_octets(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn describe(r: &Route) -> String {
    let mut s = format!("route {}", r.dst);
    if let Some(gw) = r.gateway {
        s.push_str(&format!(" via {gw}"));
    }
    if let Some(o) = r.oif {
        s.push_str(&format!(" dev #{o}"));
    }
    s
}

fn parse_route(r: &Reply) -> Result<Route> {
    let p = &r.payload;
    if p.len() < 12 {
        return Err(NetdevError::Malformed(format!("rtmsg of {} bytes", p.len())));
    }
    let fam = p[0];
    let dst_len = p[1];
    let mut route = Route {
        dst: if fam as i32 == libc::AF_INET { Route::default_v4().dst } else { Route::default_v6().dst },
        gateway: None,
        oif: None,
        metric: None,
        prefsrc: None,
        table: p[4] as u32,
        scope: p[6],
        kind: p[7],
    };
    for (k, d) in attrs(&p[12..]) {
        match k {
            RTA_DST => {
                if let Some(ip) = parse_ip(fam, d) {
                    route.dst = IpNet::new(ip, dst_len).map_err(|_| NetdevError::Malformed(format!("route prefix /{dst_len}")))?;
                }
            }
            RTA_GATEWAY => route.gateway = parse_ip(fam, d),
            RTA_OIF => route.oif = parse_u32(d),
            RTA_PRIORITY => route.metric = parse_u32(d),
            RTA_PREFSRC => route.prefsrc = parse_ip(fam, d),
            RTA_TABLE => route.table = parse_u32(d).unwrap_or(route.table),
            _ => {}
        }
    }
    Ok(route)
}

impl Handle {
    /// Adds a route (fails with EEXIST if the same route exists).
    pub fn add_route(&self, route: &Route) -> Result<()> {
        let m = route.message(true)?;
        let op = format!("add {}", describe(route));
        self.nl.request_ack(&op, nl::RTM_NEWROUTE, nl::NLM_F_CREATE | nl::NLM_F_EXCL, &m)?;
        tracing::debug!(netns = %self.netns_label(), "{op}");
        Ok(())
    }

    /// Adds or replaces a route.
    pub fn replace_route(&self, route: &Route) -> Result<()> {
        let m = route.message(true)?;
        self.nl.request_ack(&format!("replace {}", describe(route)), nl::RTM_NEWROUTE, nl::NLM_F_CREATE | nl::NLM_F_REPLACE, &m)
    }

    /// Deletes a route. `Ok(false)` if there was none.
    pub fn delete_route(&self, route: &Route) -> Result<bool> {
        let m = route.message(false)?;
        match self.nl.request_ack(&format!("delete {}", describe(route)), nl::RTM_DELROUTE, 0, &m) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The unicast routes of the main table, IPv4 and IPv6.
    pub fn routes(&self) -> Result<Vec<Route>> {
        let mut out = Vec::new();
        for fam in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
            let mut fixed = [0u8; 12];
            fixed[0] = fam;
            let m = MsgBuf::new(&fixed);
            for r in self.nl.dump("dump routes", nl::RTM_GETROUTE, &m)? {
                if r.kind != nl::RTM_NEWROUTE {
                    continue;
                }
                let route = parse_route(&r)?;
                if route.table == RT_TABLE_MAIN && route.kind == RTN_UNICAST {
                    out.push(route);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_validation() {
        let r = Route::default_v4().via("fd00::1".parse().unwrap());
        assert!(matches!(r.message(true), Err(NetdevError::InvalidArgument(_))));
        assert!(matches!(Route::default_v4().message(true), Err(NetdevError::InvalidArgument(_))));
        let r = Route::to("10.1.2.3/16".parse().unwrap());
        assert_eq!(r.dst.to_string(), "10.1.0.0/16");
        assert!(Route::default_via("10.0.0.1".parse().unwrap()).is_default());
    }
}

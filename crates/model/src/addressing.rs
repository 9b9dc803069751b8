//! Addressing rules of a logical switch, written once for the CNI plugin, the controller and the
//! webhook: deterministic MACs for new ports, which IPs a switch can give a port (inside
//! `other_config:subnet`, not its network or broadcast address, not in `other_config:exclude_ips`),
//! and which addresses other ports already hold (their static `addresses` and what northd
//! allocated in `dynamic_addresses`). Pure functions: the callers read the rows and send the
//! transactions (`ovn::nb::guard_switch_ports` makes the check race-safe).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use thiserror::Error;

use crate::{mac, names};

/// A locally administered unicast MAC for an IPv4 address: `0a:58:` followed by the address.
pub fn mac_for_ip(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    mac::format([0x0a, 0x58, o[0], o[1], o[2], o[3]])
}

/// A locally administered unicast MAC derived from a port name (FNV-1a 64, stable across
/// releases), for networks without a subnet where northd allocates no MAC.
pub fn mac_for_name(name: &str) -> String {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3));
    let b = h.to_be_bytes();
    mac::format([0x0a, b[3], b[4], b[5], b[6], b[7]])
}

/// The port that holds an address, as errors name it: the logical switch port and, when the
/// port carries kubetron's pod tags, the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The logical switch port's name.
    pub port: String,
    /// `namespace/name` of the pod the port belongs to (from its `external_ids`), if known.
    pub pod: Option<String>,
}

impl Holder {
    /// The holder named by a port's name and `external_ids` (the pod keys of [`crate::names`]).
    pub fn of(port: &str, external_ids: &BTreeMap<String, String>) -> Holder {
        let pod = match (external_ids.get(names::POD_NAMESPACE), external_ids.get(names::POD_NAME)) {
            (Some(ns), Some(name)) if !ns.is_empty() && !name.is_empty() => Some(format!("{ns}/{name}")),
            _ => None,
        };
        Holder { port: port.to_string(), pod }
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "logical switch port {:?}", self.port)?;
        if let Some(p) = &self.pod {
            write!(f, " of pod {p}")?;
        }
        Ok(())
    }
}

/// Why a switch cannot give a port the address it asks for.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressError {
    #[error("IP {ip} is not in the network's subnet {subnet}")]
    OutsideSubnet { ip: Ipv4Addr, subnet: Ipv4Net },
    #[error("IP {ip} is the network address of the subnet {subnet}, not a host address")]
    NetworkAddress { ip: Ipv4Addr, subnet: Ipv4Net },
    #[error("IP {ip} is the broadcast address of the subnet {subnet}, not a host address")]
    BroadcastAddress { ip: Ipv4Addr, subnet: Ipv4Net },
    #[error("IP {ip} is excluded from the network (logical switch other_config:exclude_ips has {entry:?})")]
    Excluded { ip: Ipv4Addr, entry: String },
    #[error("IP {ip} is already in use by {holder}")]
    IpInUse { ip: IpAddr, holder: Holder },
    #[error("MAC {mac} is already in use by {holder}")]
    MacInUse { mac: String, holder: Holder },
}

impl AddressError {
    /// The port holding the address, for conflicts.
    pub fn holder(&self) -> Option<&Holder> {
        match self {
            AddressError::IpInUse { holder, .. } | AddressError::MacInUse { holder, .. } => Some(holder),
            _ => None,
        }
    }
}

/// `other_config:exclude_ips` (ovn-nb(5)): IPv4 addresses and ranges `a..b`, separated by spaces.
/// Entries that do not parse are ignored, as northd ignores them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExcludeIps(Vec<(Ipv4Addr, Ipv4Addr, String)>);

impl ExcludeIps {
    pub fn parse(s: &str) -> ExcludeIps {
        let entries = s
            .split_whitespace()
            .filter_map(|w| {
                let (a, b) = match w.split_once("..") {
                    Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                    None => {
                        let a: Ipv4Addr = w.parse().ok()?;
                        (a, a)
                    }
                };
                (a <= b).then(|| (a, b, w.to_string()))
            })
            .collect();
        ExcludeIps(entries)
    }
    /// The entry (as written) that excludes `ip`, if any.
    pub fn find(&self, ip: Ipv4Addr) -> Option<&str> {
        self.0.iter().find(|(a, b, _)| *a <= ip && ip <= *b).map(|(_, _, w)| w.as_str())
    }
}

/// The addressing rules of one switch, from its `other_config`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwitchRules {
    /// `other_config:subnet` (IPv4), when set and valid.
    pub subnet: Option<Ipv4Net>,
    pub exclude: ExcludeIps,
}

impl SwitchRules {
    pub fn from_other_config(other_config: &BTreeMap<String, String>) -> SwitchRules {
        SwitchRules {
            subnet: other_config.get("subnet").and_then(|s| s.parse().ok()),
            exclude: other_config.get("exclude_ips").map(|s| ExcludeIps::parse(s)).unwrap_or_default(),
        }
    }
    pub fn new(subnet: Option<Ipv4Net>, exclude_ips: Option<&str>) -> SwitchRules {
        SwitchRules { subnet, exclude: exclude_ips.map(ExcludeIps::parse).unwrap_or_default() }
    }
    /// Whether a port may be given `ip` on this switch (ignoring other ports): an IPv4 address
    /// must be a host address of the subnet (when the switch has one) and not excluded. IPv6
    /// addresses are not checked here.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), AddressError> {
        let IpAddr::V4(v4) = ip else { return Ok(()) };
        if let Some(subnet) = self.subnet {
            if !subnet.contains(&v4) {
                return Err(AddressError::OutsideSubnet { ip: v4, subnet });
            }
            // /31 and /32 have no network or broadcast address (RFC 3021).
            if subnet.prefix_len() < 31 {
                if v4 == subnet.network() {
                    return Err(AddressError::NetworkAddress { ip: v4, subnet });
                }
                if v4 == subnet.broadcast() {
                    return Err(AddressError::BroadcastAddress { ip: v4, subnet });
                }
            }
        }
        if let Some(entry) = self.exclude.find(v4) {
            return Err(AddressError::Excluded { ip: v4, entry: entry.to_string() });
        }
        Ok(())
    }
}

/// The first IPv4 address the switch can give (a host address of its subnet, not excluded, see
/// [`SwitchRules::check_ip`]) that `held` does not report as taken, lowest first. `None` when the
/// switch has no subnet or every address is taken. What the controller gives a persistent-IP
/// port (an IPAMClaim's) that has no address yet; the write carries the switch guard like every
/// fixed address, so two ports never get the same one.
pub fn first_free(rules: &SwitchRules, held: impl Fn(Ipv4Addr) -> bool) -> Option<Ipv4Addr> {
    let subnet = rules.subnet?;
    let (first, last) = if subnet.prefix_len() >= 31 {
        (u32::from(subnet.network()), u32::from(subnet.broadcast()))
    } else {
        (u32::from(subnet.network()) + 1, u32::from(subnet.broadcast()) - 1)
    };
    (first..=last).map(Ipv4Addr::from).find(|ip| rules.check_ip(IpAddr::V4(*ip)).is_ok() && !held(*ip))
}

/// The MACs and IPs a port holds: every `"MAC IP..."` entry of `addresses` (`dynamic`,
/// `unknown` and `router` words hold nothing: a `"MAC dynamic"` entry holds its MAC) and what
/// northd allocated (`dynamic_addresses`). MACs are lower-cased; IPs lose any prefix length.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    pub macs: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl Held {
    pub fn of<'a>(addresses: impl IntoIterator<Item = &'a str>, dynamic_addresses: Option<&'a str>) -> Held {
        let mut h = Held::default();
        for entry in addresses.into_iter().chain(dynamic_addresses) {
            for w in entry.split_whitespace() {
                if matches!(w, "dynamic" | "unknown" | "router") {
                    continue;
                }
                if let Some(mac) = mac::normalize(w) {
                    if !h.macs.contains(&mac) {
                        h.macs.push(mac);
                    }
                } else if let Some(ip) = w.split('/').next().and_then(|a| a.parse::<IpAddr>().ok()) {
                    if !h.ips.contains(&ip) {
                        h.ips.push(ip);
                    }
                }
            }
        }
        h
    }
}

/// One port of the switch and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortHolding {
    pub holder: Holder,
    pub held: Held,
}

impl PortHolding {
    pub fn new(name: &str, addresses: &[String], dynamic_addresses: Option<&str>, external_ids: &BTreeMap<String, String>) -> PortHolding {
        PortHolding { holder: Holder::of(name, external_ids), held: Held::of(addresses.iter().map(String::as_str), dynamic_addresses) }
    }
}

/// What a new (or changed) port asks for: a fixed MAC and fixed IPs (either may be absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claim {
    pub mac: Option<String>,
    pub ips: Vec<IpAddr>,
}

impl Claim {
    /// The claim of an `addresses` entry (`"MAC IP..."`, `"MAC dynamic"`, `"MAC"`, `"dynamic"`).
    pub fn of_entry(entry: &str) -> Claim {
        let h = Held::of([entry], None);
        Claim { mac: h.macs.into_iter().next(), ips: h.ips }
    }
    pub fn is_empty(&self) -> bool {
        self.mac.is_none() && self.ips.is_empty()
    }
}

/// Checks `claim` for port `port` against the switch rules and the other ports of the switch
/// (`ports` may include `port` itself: it is skipped). The first problem found is returned.
pub fn check_claim<'a>(
    rules: &SwitchRules,
    port: &str,
    claim: &Claim,
    ports: impl IntoIterator<Item = &'a PortHolding>,
) -> Result<(), AddressError> {
    for ip in &claim.ips {
        rules.check_ip(*ip)?;
    }
    if claim.is_empty() {
        return Ok(());
    }
    let mac = claim.mac.as_deref().map(|m| mac::normalize(m).unwrap_or_else(|| m.to_ascii_lowercase()));
    for p in ports {
        if p.holder.port == port {
            continue;
        }
        if let Some(ip) = claim.ips.iter().find(|ip| p.held.ips.contains(ip)) {
            return Err(AddressError::IpInUse { ip: *ip, holder: p.holder.clone() });
        }
        if let Some(m) = mac.as_ref().filter(|m| p.held.macs.contains(m)) {
            return Err(AddressError::MacInUse { mac: m.clone(), holder: p.holder.clone() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_deterministic_local_unicast() {
        assert_eq!(mac_for_ip(Ipv4Addr::new(10, 1, 0, 7)), "0a:58:0a:01:00:07");
        let a = mac_for_name("ns_pod_net1");
        assert_eq!(a, mac_for_name("ns_pod_net1"));
        assert_ne!(a, mac_for_name("ns_pod_net2"));
        // 0x0a: locally administered, unicast.
        assert!(a.starts_with("0a:"));
    }

    fn ports() -> Vec<PortHolding> {
        let mut ids = BTreeMap::new();
        ids.insert(names::POD_NAMESPACE.to_string(), "ns1".to_string());
        ids.insert(names::POD_NAME.to_string(), "web".to_string());
        vec![
            PortHolding::new("ns1_web_net1", &["0A:00:00:00:00:05 10.1.0.5 fd00::5".to_string()], None, &ids),
            PortHolding::new("dyn", &["dynamic".to_string()], Some("0a:00:00:00:00:10 10.1.0.10"), &BTreeMap::new()),
            PortHolding::new("macdyn", &["0a:00:00:00:00:20 dynamic".to_string()], None, &BTreeMap::new()),
            PortHolding::new("rtr", &["router".to_string()], None, &BTreeMap::new()),
            PortHolding::new("ln", &["unknown".to_string()], None, &BTreeMap::new()),
        ]
    }

    #[test]
    fn held_addresses_come_from_static_and_dynamic_entries() {
        let p = ports();
        assert_eq!(p[0].held.macs, vec!["0a:00:00:00:00:05"]);
        assert_eq!(p[0].held.ips, vec!["10.1.0.5".parse::<IpAddr>().unwrap(), "fd00::5".parse().unwrap()]);
        assert_eq!(p[1].held.ips, vec!["10.1.0.10".parse::<IpAddr>().unwrap()]);
        assert_eq!(p[2].held, Held { macs: vec!["0a:00:00:00:00:20".into()], ips: vec![] });
        assert_eq!(p[3].held, Held::default());
        assert_eq!(p[4].held, Held::default());
        assert_eq!(Claim::of_entry("dynamic"), Claim::default());
        assert_eq!(Claim::of_entry("0a:00:00:00:00:01 10.1.0.7/24").ips, vec!["10.1.0.7".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn rules_refuse_outside_network_broadcast_and_excluded() {
        let mut oc = BTreeMap::new();
        oc.insert("subnet".to_string(), "10.1.0.0/24".to_string());
        oc.insert("exclude_ips".to_string(), "10.1.0.1..10.1.0.9 10.1.0.100 junk 10.1.0.9..10.1.0.2".to_string());
        let r = SwitchRules::from_other_config(&oc);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(matches!(r.check_ip(ip("10.2.0.5")), Err(AddressError::OutsideSubnet { .. })));
        assert!(matches!(r.check_ip(ip("10.1.0.0")), Err(AddressError::NetworkAddress { .. })));
        assert!(matches!(r.check_ip(ip("10.1.0.255")), Err(AddressError::BroadcastAddress { .. })));
        let e = r.check_ip(ip("10.1.0.4")).unwrap_err();
        assert_eq!(e, AddressError::Excluded { ip: "10.1.0.4".parse().unwrap(), entry: "10.1.0.1..10.1.0.9".into() });
        assert!(e.to_string().contains("exclude_ips"), "{e}");
        assert!(matches!(r.check_ip(ip("10.1.0.100")), Err(AddressError::Excluded { .. })));
        for ok in ["10.1.0.10", "10.1.0.99", "10.1.0.254", "fd00::1"] {
            assert_eq!(r.check_ip(ip(ok)), Ok(()), "{ok}");
        }
        // No subnet: only exclude_ips apply.
        let r = SwitchRules::new(None, Some("192.168.5.5"));
        assert!(r.check_ip(ip("192.168.5.4")).is_ok());
        assert!(r.check_ip(ip("192.168.5.5")).is_err());
        // /31: both addresses are host addresses.
        let r = SwitchRules::new(Some("10.9.0.0/31".parse().unwrap()), None);
        assert!(r.check_ip(ip("10.9.0.0")).is_ok() && r.check_ip(ip("10.9.0.1")).is_ok());
    }

    #[test]
    fn first_free_skips_network_broadcast_excluded_held() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let r = SwitchRules::new(Some("10.1.0.0/29".parse().unwrap()), Some("10.1.0.2..10.1.0.3"));
        // .0 network, .2-.3 excluded, .1 and .4 held -> .5.
        let held = [ip("10.1.0.1"), ip("10.1.0.4")];
        assert_eq!(first_free(&r, |a| held.contains(&a)), Some(ip("10.1.0.5")));
        assert_eq!(first_free(&r, |_| false), Some(ip("10.1.0.1")));
        // .7 is the broadcast address: never given, so with .1-.6 taken nothing is left.
        let held: Vec<Ipv4Addr> = (1..=6).map(|i| Ipv4Addr::new(10, 1, 0, i)).collect();
        assert_eq!(first_free(&r, |a| held.contains(&a)), None);
        // No subnet: nothing to give.
        assert_eq!(first_free(&SwitchRules::new(None, None), |_| false), None);
        // /31 and /32: every address is a host address.
        let r = SwitchRules::new(Some("10.9.0.0/31".parse().unwrap()), None);
        assert_eq!(first_free(&r, |a| a == ip("10.9.0.0")), Some(ip("10.9.0.1")));
        let r = SwitchRules::new(Some("10.9.0.7/32".parse().unwrap()), None);
        assert_eq!(first_free(&r, |_| false), Some(ip("10.9.0.7")));
        // Whatever it returns passes the switch's own check.
        let r = SwitchRules::new(Some("10.1.0.0/24".parse().unwrap()), Some("10.1.0.1..10.1.0.9"));
        let got = first_free(&r, |_| false).unwrap();
        assert_eq!(got, ip("10.1.0.10"));
        assert!(r.check_ip(IpAddr::V4(got)).is_ok());
    }

    #[test]
    fn conflicts_name_the_holder_and_skip_the_port_itself() {
        let rules = SwitchRules::new(Some("10.1.0.0/24".parse().unwrap()), None);
        let p = ports();
        let claim =
            |mac: Option<&str>, ips: &[&str]| Claim { mac: mac.map(str::to_string), ips: ips.iter().map(|i| i.parse().unwrap()).collect() };
        let e = check_claim(&rules, "new", &claim(None, &["10.1.0.5"]), &p).unwrap_err();
        assert_eq!(e.holder(), Some(&Holder { port: "ns1_web_net1".into(), pod: Some("ns1/web".into()) }));
        assert_eq!(e.to_string(), "IP 10.1.0.5 is already in use by logical switch port \"ns1_web_net1\" of pod ns1/web");
        let e = check_claim(&rules, "new", &claim(None, &["10.1.0.10"]), &p).unwrap_err();
        assert!(matches!(&e, AddressError::IpInUse { holder, .. } if holder.port == "dyn" && holder.pod.is_none()), "{e}");
        let e = check_claim(&rules, "new", &claim(Some("0A:00:00:00:00:20"), &[]), &p).unwrap_err();
        assert!(matches!(&e, AddressError::MacInUse { holder, mac } if holder.port == "macdyn" && mac == "0a:00:00:00:00:20"), "{e}");
        let e = check_claim(&rules, "new", &claim(Some("0a:00:00:00:00:10"), &["10.1.0.11"]), &p).unwrap_err();
        assert!(matches!(&e, AddressError::MacInUse { holder, .. } if holder.port == "dyn"), "{e}");
        let e = check_claim(&rules, "new", &claim(None, &["fd00::5"]), &p).unwrap_err();
        assert!(matches!(e, AddressError::IpInUse { .. }));
        // The port's own addresses are not a conflict; free ones are fine; rules come first.
        assert!(check_claim(&rules, "ns1_web_net1", &claim(Some("0a:00:00:00:00:05"), &["10.1.0.5"]), &p).is_ok());
        assert!(check_claim(&rules, "new", &claim(Some("0a:00:00:00:00:99"), &["10.1.0.99"]), &p).is_ok());
        assert!(matches!(check_claim(&rules, "new", &claim(None, &["10.1.0.255"]), &p), Err(AddressError::BroadcastAddress { .. })));
        assert!(check_claim(&rules, "new", &Claim::default(), &p).is_ok());
    }
}

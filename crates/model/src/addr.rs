//! Small address types used in network requests: a MAC address and an IP with an optional prefix.
//!
//! Both serialize as the strings users write in annotations (`"c2:11:22:33:44:55"`,
//! `"10.1.1.5/24"`, `"fd00::5"`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

/// Why a MAC address string was refused (the rule is [`crate::mac`]'s).
pub use crate::mac::MacError;

impl MacAddr {
    /// True when the group bit is set.
    pub fn is_multicast(&self) -> bool {
        crate::mac::is_multicast(self.0)
    }
}

impl FromStr for MacAddr {
    type Err = MacError;
    /// Six hex pairs separated by `:` or `-`, unicast only ([`crate::mac::parse_unicast`]).
    fn from_str(s: &str) -> Result<Self, MacError> {
        crate::mac::parse_unicast(s).map(MacAddr)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::mac::format(self.0))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An IP address a pod asks for, with the prefix length if the user gave one
/// (`10.1.1.5/24` or plain `10.1.1.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestedIp {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length, when given.
    pub prefix_len: Option<u8>,
}

/// Why an IP string was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IpError {
    /// The address part does not parse.
    #[error("\"{0}\" is not an IP address")]
    Addr(String),
    /// The prefix part does not parse or is too long for the address family.
    #[error("\"{0}\" has an invalid prefix length (0-32 for IPv4, 0-128 for IPv6)")]
    Prefix(String),
}

impl FromStr for RequestedIp {
    type Err = IpError;
    fn from_str(s: &str) -> Result<Self, IpError> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| IpError::Addr(s.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match p {
            None => None,
            Some(p) => {
                // Only plain decimal digits: no sign, no whitespace.
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(IpError::Prefix(s.to_string()));
                }
                let n: u8 = p.parse().map_err(|_| IpError::Prefix(s.to_string()))?;
                if n > max {
                    return Err(IpError::Prefix(s.to_string()));
                }
                Some(n)
            }
        };
        Ok(RequestedIp { addr, prefix_len })
    }
}

impl fmt::Display for RequestedIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix_len {
            Some(p) => write!(f, "{}/{}", self.addr, p),
            None => write!(f, "{}", self.addr),
        }
    }
}

impl Serialize for RequestedIp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RequestedIp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parses_and_prints() {
        let m: MacAddr = "C2:11:22:33:44:55".parse().unwrap();
        assert_eq!(m.to_string(), "c2:11:22:33:44:55");
        let d: MacAddr = "c2-11-22-33-44-55".parse().unwrap();
        assert_eq!(m, d);
    }

    #[test]
    fn mac_rejects_bad() {
        for bad in [
            "",
            "c2:11:22:33:44",
            "c2:11:22:33:44:55:66",
            "c2:11:22:33:44:5",
            "zz:11:22:33:44:55",
            "c2:11-22:33:44:55",
            "+2:11:22:33:44:55",
        ] {
            assert!(matches!(bad.parse::<MacAddr>(), Err(MacError::Syntax(_))), "{bad}");
        }
        assert!(matches!("01:00:5e:00:00:01".parse::<MacAddr>(), Err(MacError::Multicast(_))));
    }

    #[test]
    fn ip_with_and_without_prefix() {
        let a: RequestedIp = "10.1.1.5/24".parse().unwrap();
        assert_eq!(a.prefix_len, Some(24));
        assert_eq!(a.to_string(), "10.1.1.5/24");
        let b: RequestedIp = "fd00::5".parse().unwrap();
        assert_eq!(b.prefix_len, None);
        assert_eq!(b.to_string(), "fd00::5");
        assert_eq!("fd00::5/128".parse::<RequestedIp>().unwrap().prefix_len, Some(128));
    }

    #[test]
    fn ip_rejects_bad() {
        assert!(matches!("10.1.1/24".parse::<RequestedIp>(), Err(IpError::Addr(_))));
        assert!(matches!("10.1.1.5/33".parse::<RequestedIp>(), Err(IpError::Prefix(_))));
        assert!(matches!("10.1.1.5/".parse::<RequestedIp>(), Err(IpError::Prefix(_))));
        assert!(matches!("10.1.1.5/+1".parse::<RequestedIp>(), Err(IpError::Prefix(_))));
        assert!(matches!("fd00::1/129".parse::<RequestedIp>(), Err(IpError::Prefix(_))));
    }

    #[test]
    fn serde_as_strings() {
        let ip: RequestedIp = serde_json::from_str("\"10.0.0.1/8\"").unwrap();
        assert_eq!(serde_json::to_string(&ip).unwrap(), "\"10.0.0.1/8\"");
        assert!(serde_json::from_str::<MacAddr>("\"nope\"").is_err());
    }
}

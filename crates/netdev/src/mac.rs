//! Ethernet MAC addresses.

use std::fmt;
use std::str::FromStr;

use crate::error::NetdevError;

/// A 48-bit Ethernet address, shown and parsed as `aa:bb:cc:dd:ee:ff`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The six bytes.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Locally administered unicast (the kind to invent for a pod).
    pub fn is_local_unicast(&self) -> bool {
        self.0[0] & 0x02 != 0 && self.0[0] & 0x01 == 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = NetdevError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || NetdevError::InvalidArgument(format!("bad MAC address {s:?} (want aa:bb:cc:dd:ee:ff)"));
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in out.iter_mut() {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(b: [u8; 6]) -> Self {
        MacAddr(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let m: MacAddr = "0A:58:0a:f4:00:05".parse().unwrap();
        assert_eq!(m.0, [0x0a, 0x58, 0x0a, 0xf4, 0x00, 0x05]);
        assert_eq!(m.to_string(), "0a:58:0a:f4:00:05");
        assert!(m.is_local_unicast());
        for bad in ["", "0a:58:0a:f4:00", "0a:58:0a:f4:00:05:06", "0a:58:0a:f4:00:zz", "0a5:8:0a:f4:00:05"] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }
}

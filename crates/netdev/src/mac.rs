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
        model::mac::is_local_unicast(self.0)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&model::mac::format(self.0))
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = NetdevError;
    /// Six hex pairs separated by `:` or `-` ([`model::mac::parse`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        model::mac::parse(s)
            .map(MacAddr)
            .map_err(|_| NetdevError::InvalidArgument(format!("bad MAC address {s:?} (want aa:bb:cc:dd:ee:ff)")))
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

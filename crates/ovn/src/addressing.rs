//! Deterministic MAC addresses for logical switch ports, shared by the controller and the CNI
//! plugin so that both give a port the same MAC for the same request.

use std::net::Ipv4Addr;

/// A locally administered unicast MAC for an IPv4 address: `0a:58:` followed by the address.
pub fn mac_for_ip(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("0a:58:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// A locally administered unicast MAC derived from a port name (FNV-1a 64, stable across
/// releases), for networks without a subnet where northd allocates no MAC.
pub fn mac_for_name(name: &str) -> String {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3));
    let b = h.to_be_bytes();
    format!("0a:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[3], b[4], b[5], b[6], b[7])
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
}

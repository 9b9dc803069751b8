//! KubeVirt's bridge binding, as virt-launcher does it inside the launcher pod: the pod interface gives
//! its MAC up to the VM and becomes a port of an in-pod bridge together with the VM's tap.

use std::io::Read;
use std::path::Path;

use netdev::{Handle, MacAddr, Netns};

use super::VmError;

/// KubeVirt's in-pod names for pod interface `pod_ifname`: bridge and tap
/// ([`model::kubevirt::bridge_name`], [`model::kubevirt::tap_name`]).
pub fn kubevirt_link_names(pod_ifname: &str) -> (String, String) {
    (model::kubevirt::bridge_name(pod_ifname), model::kubevirt::tap_name(pod_ifname))
}

fn random_local_mac() -> Result<MacAddr, VmError> {
    let mut b = [0u8; 6];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).map_err(|e| VmError::io("read /dev/urandom", e))?;
    b[0] = (b[0] & 0xfc) | 0x02;
    Ok(MacAddr(b))
}

/// Bridge binding in the launcher netns `netns` for pod interface `pod_ifname` (plugged by the CNI):
/// IPv6 off (the bridge stays pure L2), the interface's addresses flushed, a random locally administered
/// MAC on it (the VM takes the pod's MAC), TX checksum offload off (`ethtool -K <podif> tx off`: on the
/// OVS userspace datapath the guest's CHECKSUM_PARTIAL packets would leave unfinished and TCP fails),
/// bridge `k6t-*` and tap `tap*` (vnet_hdr) with `mtu`, both ports on the bridge, all up.
/// Returns the tap's name for [`super::Nic`].
pub fn bridge_binding(netns: &Path, pod_ifname: &str, mtu: u32) -> Result<String, VmError> {
    let (bridge, tap) = kubevirt_link_names(pod_ifname);
    let ns = Netns::open(netns).map_err(|e| VmError::netdev(format!("open {}", netns.display()), e))?;
    let h = Handle::in_netns(&ns).map_err(|e| VmError::netdev("netlink in the launcher netns", e))?;
    let ctx = |op: &str| format!("bridge binding of {pod_ifname} in {}: {op}", netns.display());
    for name in ["all", "default", pod_ifname] {
        h.disable_ipv6(name).map_err(|e| VmError::netdev(ctx(&format!("disable IPv6 on {name}")), e))?;
    }
    let link = h
        .link_by_name(pod_ifname)
        .map_err(|e| VmError::netdev(ctx("read"), e))?
        .ok_or_else(|| VmError::netdev(ctx("find the pod interface"), netdev::NetdevError::LinkNotFound(pod_ifname.to_string())))?;
    for a in h.addresses(Some(link.index)).map_err(|e| VmError::netdev(ctx("list addresses"), e))? {
        h.delete_address(link.index, a.addr).map_err(|e| VmError::netdev(ctx(&format!("delete {}", a.addr)), e))?;
    }
    let mac = random_local_mac()?;
    h.set_link(pod_ifname).mac(mac).apply().map_err(|e| VmError::netdev(ctx("set a random MAC"), e))?;
    h.set_tx_checksum(pod_ifname, false).map_err(|e| VmError::netdev(ctx("tx checksum off"), e))?;
    h.create_bridge(&bridge, mtu).map_err(|e| VmError::netdev(ctx(&format!("create bridge {bridge}")), e))?;
    h.create_tap(&tap, Some(mtu)).map_err(|e| VmError::netdev(ctx(&format!("create tap {tap}")), e))?;
    for port in [pod_ifname, tap.as_str()] {
        h.set_master(port, &bridge).map_err(|e| VmError::netdev(ctx(&format!("{port} on {bridge}")), e))?;
    }
    for l in [pod_ifname, tap.as_str(), bridge.as_str()] {
        h.set_link(l).up().apply().map_err(|e| VmError::netdev(ctx(&format!("{l} up")), e))?;
    }
    tracing::info!(netns = %netns.display(), pod_if = pod_ifname, %bridge, %tap, %mac, "bridge binding");
    Ok(tap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubevirt_names() {
        assert_eq!(kubevirt_link_names("podb1f51a511f1"), ("k6t-b1f51a511f1".to_string(), "tapb1f51a511f1".to_string()));
        assert_eq!(kubevirt_link_names("net1"), ("k6t-net1".to_string(), "tap1".to_string()));
        assert_eq!(kubevirt_link_names("net12"), ("k6t-net12".to_string(), "tap12".to_string()));
        for n in ["podb1f51a511f1", "pod27f4a77f94e", "net1"] {
            let (b, t) = kubevirt_link_names(n);
            assert!(b.len() <= 15 && t.len() <= 15, "{b} {t}");
        }
    }
}

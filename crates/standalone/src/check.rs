//! CHECK: the pod interface, its addresses, the bridge port and the logical switch port still
//! match what ADD reported (`prevResult`).

use netdev::{host_ifname, Handle, Netns};

use crate::conn::{connect, nb_remote};
use crate::{port, KubetronPlugin};
use cni::plumb;
use cni::{CniError, ErrorCode, Request};

fn failed(msg: String) -> CniError {
    CniError::new(ErrorCode::Other(110), msg)
}

pub async fn check(plugin: &KubetronPlugin, req: &Request) -> Result<(), CniError> {
    let prev = req.prev_result.as_ref().ok_or_else(|| CniError::invalid_config("CHECK needs prevResult"))?;
    let ifname = req.ifname();
    let (idx, iface) = prev
        .interfaces
        .iter()
        .enumerate()
        .find(|(_, i)| i.name == ifname && !i.sandbox.is_empty())
        .ok_or_else(|| failed(format!("prevResult has no interface {ifname:?} in a sandbox")))?;
    let netns_path = req.netns().ok_or_else(|| CniError::invalid_env("CNI_NETNS is required for CHECK"))?;
    let pod = Netns::open(netns_path).map_err(|e| CniError::unknown_container(format!("{}: {e}", netns_path.display())))?;
    let ph = Handle::in_netns(&pod).map_err(|e| plumb::netdev_error("netlink in the pod", e))?;
    let link = ph
        .link_by_name(ifname)
        .map_err(|e| plumb::netdev_error("reading the pod interface", e))?
        .ok_or_else(|| failed(format!("interface {ifname} is missing from the pod")))?;
    let mac = link.mac.map(|m| m.to_string()).unwrap_or_default();
    if !iface.mac.is_empty() && !mac.eq_ignore_ascii_case(&iface.mac) {
        return Err(failed(format!("interface {ifname} has MAC {mac}, prevResult says {}", iface.mac)));
    }
    if let Some(mtu) = iface.mtu {
        if link.mtu != mtu {
            return Err(failed(format!("interface {ifname} has MTU {}, prevResult says {mtu}", link.mtu)));
        }
    }
    let have = ph.addresses(Some(link.index)).map_err(|e| plumb::netdev_error("reading addresses", e))?;
    for ip in prev.ips.iter().filter(|ip| ip.interface == Some(idx)) {
        if !have.iter().any(|a| a.addr == ip.address) {
            return Err(failed(format!("interface {ifname} lacks address {}", ip.address)));
        }
    }

    let conf = &req.config.kubetron;
    let host_if = host_ifname(req.container_id(), ifname);
    let ovs = connect(plugin, &conf.ovs_socket, "local Open_vSwitch database").await?;
    if plumb::port_by_name(&ovs, &host_if).await?.is_none() {
        return Err(failed(format!("{host_if} is not a port of bridge {}", conf.bridge)));
    }
    let nb = connect(plugin, nb_remote(req)?, "OVN Northbound database").await?;
    let name = port::port_name(req);
    match port::find_port(&nb, &name).await? {
        None => Err(failed(format!("logical switch port {name:?} is gone"))),
        Some(p) if p.up != Some(true) => Err(failed(format!("logical switch port {name:?} is not up"))),
        Some(_) => Ok(()),
    }
}

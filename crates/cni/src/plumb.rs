//! The node side of an attachment: the veth pair and the pod interface's addresses (netlink), and
//! the host end's port on the integration bridge (local Open_vSwitch database).

use std::collections::BTreeMap;
use std::net::IpAddr;

use netdev::{Handle, IpNet, MacAddr, NetdevError, Netns, Route};
use ovn::columns::Model;
use ovn::names;
use ovn::vswitch::{self, Bridge, Interface, Port};
use ovsdb::datum::Uuid;
use ovsdb::ops::{Condition, Operation};
use ovsdb::Client;

use crate::{CniError, CniResult, ErrorCode, IpConfig, RouteEntry};

/// Maps an OVSDB error during a request to a CNI error.
pub fn db_error(what: &str, e: ovsdb::Error) -> CniError {
    match e {
        ovsdb::Error::Disconnected { .. }
        | ovsdb::Error::Closed { .. }
        | ovsdb::Error::Connect { .. }
        | ovsdb::Error::RequestTimeout { .. }
        | ovsdb::Error::Timeout(_) => CniError::try_again_later(format!("{what}: {e}")),
        other => CniError::new(ErrorCode::Other(100), format!("{what}: {other}")),
    }
}

/// A netlink failure as a CNI error.
pub fn netdev_error(what: &str, e: NetdevError) -> CniError {
    let code = if e.is_exists() { ErrorCode::Other(101) } else { ErrorCode::Other(102) };
    CniError::new(code, format!("{what}: {e}"))
}

/// A netlink handle on the node side: `host` (the agent's `--host-netns`, tests) or the current netns.
fn host_handle(host: Option<&Netns>) -> Result<Handle, CniError> {
    match host {
        Some(ns) => Handle::in_netns(ns).map_err(|e| netdev_error(&format!("netlink in {}", ns.path().display()), e)),
        None => Handle::new().map_err(|e| netdev_error("netlink", e)),
    }
}

/// The pod interface as plugged.
pub struct Veth {
    pub host_mac: Option<MacAddr>,
    pub pod_index: u32,
}

/// Creates the veth pair: `host_if` on the node (`host`, else the current netns), `ifname` in the pod's netns with
/// the port's MAC and the MTU; turns off TX checksum offload in the pod (the userspace datapath
/// would forward unfinished checksums) and IPv6 on the host end (it is a pure L2 port).
/// A host end left by an earlier, interrupted ADD of the same attachment is replaced.
pub fn make_veth(host: Option<&Netns>, pod: &Netns, host_if: &str, ifname: &str, mac: MacAddr, mtu: u32) -> Result<Veth, CniError> {
    let h = host_handle(host)?;
    let build = || h.veth(host_if, ifname).peer_netns(pod).mtu(mtu).peer_mac(mac).host_up().peer_up().create();
    let pair = match build() {
        Err(NetdevError::LinkExists { name, .. }) if name == host_if => {
            h.delete_link(host_if).map_err(|e| netdev_error("removing a stale host interface", e))?;
            build()
        }
        other => other,
    }
    .map_err(|e| netdev_error(&format!("creating veth {host_if}/{ifname}"), e))?;
    let _ = h.disable_ipv6(host_if);
    let ph = Handle::in_netns(pod).map_err(|e| netdev_error("netlink in the pod", e))?;
    ph.set_tx_checksum(ifname, false).map_err(|e| netdev_error("turning off TX checksum offload", e))?;
    Ok(Veth { host_mac: pair.host.mac, pod_index: pair.peer.index })
}

/// Adds the addresses and default routes (via each of `gateways`) to the pod interface.
pub fn address_pod(pod: &Netns, index: u32, ips: &[IpNet], gateways: &[IpAddr]) -> Result<(), CniError> {
    let routes: Vec<(IpNet, IpAddr)> = gateways.iter().map(|gw| (default_dst(gw), *gw)).collect();
    address_pod_routes(pod, index, ips, &routes)
}

/// The default route's destination of `gw`'s family.
pub fn default_dst(gw: &IpAddr) -> IpNet {
    if gw.is_ipv4() {
        IpNet::V4(Default::default())
    } else {
        IpNet::V6(Default::default())
    }
}

/// Adds the addresses and the routes `(destination, gateway)` to the pod interface.
pub fn address_pod_routes(pod: &Netns, index: u32, ips: &[IpNet], routes: &[(IpNet, IpAddr)]) -> Result<(), CniError> {
    let ph = Handle::in_netns(pod).map_err(|e| netdev_error("netlink in the pod", e))?;
    for ip in ips {
        ph.add_address(index, *ip).nodad().apply().map_err(|e| netdev_error(&format!("adding address {ip}"), e))?;
    }
    for (dst, gw) in routes {
        let route = if dst.prefix_len() == 0 { Route::default_via(*gw) } else { Route::to(*dst).via(*gw) };
        ph.replace_route(&route.dev(index)).map_err(|e| netdev_error(&format!("adding route {dst} via {gw}"), e))?;
    }
    Ok(())
}

/// The pod interface's addresses as a result reports them.
pub struct Addresses<'a> {
    /// Its IPs.
    pub ips: &'a [IpNet],
    /// The gateways of its subnets (each IP's `gateway` is the one its subnet contains).
    pub gateways: &'a [IpAddr],
    /// Its routes `(destination, gateway)`.
    pub routes: &'a [(IpNet, IpAddr)],
}

/// The ADD result of one attachment: the host end (index 0) and the pod interface (index 1),
/// with its addresses unless `None` (DHCP, or a switch without subnet). `pod` is the pod netns path,
/// the pod interface, its MAC and MTU.
pub fn attachment_result(
    version: &str,
    host: (&str, Option<MacAddr>),
    pod: (&std::path::Path, &str, MacAddr, u32),
    addresses: Option<Addresses>,
) -> CniResult {
    let (host_if, host_mac) = host;
    let (netns, ifname, mac, mtu) = pod;
    let mut result = CniResult {
        cni_version: version.to_string(),
        interfaces: vec![
            crate::Interface { name: host_if.to_string(), mac: host_mac.map(|m| m.to_string()).unwrap_or_default(), ..Default::default() },
            crate::Interface {
                name: ifname.to_string(),
                mac: mac.to_string(),
                mtu: Some(mtu),
                sandbox: netns.display().to_string(),
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    if let Some(a) = addresses {
        result.ips = a
            .ips
            .iter()
            .map(|n| IpConfig { address: *n, gateway: a.gateways.iter().copied().find(|g| n.contains(g)), interface: Some(1) })
            .collect();
        result.routes = a
            .routes
            .iter()
            .map(|(dst, gw)| RouteEntry { dst: *dst, gw: Some(*gw), mtu: None, advmss: None, priority: None, table: None, scope: None })
            .collect();
    }
    result
}

/// Deletes the host end (and so the pod end) on the node (`host`, else the current netns).
/// Absent is fine.
pub fn delete_veth(host: Option<&Netns>, host_if: &str) -> Result<bool, CniError> {
    let h = host_handle(host)?;
    h.delete_link(host_if).map_err(|e| netdev_error(&format!("deleting {host_if}"), e))
}

async fn select<M: Model>(ovs: &Client, cond: Option<Condition>) -> Result<Vec<M>, CniError> {
    let mut op = Operation::select(M::TABLE);
    if let Some(c) = cond {
        op = op.filter(c);
    }
    let res = ovs.transact(vswitch::DB, vec![op]).await.map_err(|e| db_error(&format!("reading {}", M::TABLE), e))?;
    Ok(res.into_iter().next().and_then(|r| r.rows).unwrap_or_default().iter().map(M::from_row).collect())
}

/// This node as ADD sees it: the integration bridge and the chassis name ([`system_id`]).
pub struct Local {
    pub bridge: Bridge,
    pub system_id: Option<String>,
}

/// The integration bridge, which ovn-controller (or the administrator) must have made.
pub async fn bridge(ovs: &Client, name: &str) -> Result<Bridge, CniError> {
    select::<Bridge>(ovs, Some(Condition::eq("name", name))).await?.into_iter().next().ok_or_else(|| {
        CniError::try_again_later(format!("bridge {name:?} does not exist in the local Open_vSwitch database (is ovn-controller running?)"))
    })
}

/// Plugs `host_if` into `bridge` as the OVN logical port `lsp`; returns the new Port's UUID.
/// `tags` (the attachment's container ID, interface, network, netns... see [`attachment_tags`])
/// go into the Interface's and Port's `external_ids`. `iface_id_ver` (the pod UID) goes into the
/// Interface's `external_ids:iface-id-ver`: ovn-controller binds a port whose
/// `options:iface-id-ver` is set only to an Interface carrying the same value (ovn-nb(5)); a port
/// without the option binds either way.
/// A port of the same name left by an earlier ADD is removed first.
pub async fn plug(
    ovs: &Client,
    bridge: &Bridge,
    host_if: &str,
    lsp: &str,
    mac: &str,
    iface_id_ver: Option<&str>,
    tags: &BTreeMap<String, String>,
) -> Result<Uuid, CniError> {
    if let Some(old) = port_by_name(ovs, host_if).await? {
        unplug(ovs, old.uuid).await?;
    }
    let mut ids = tags.clone();
    ids.insert("iface-id".to_string(), lsp.to_string());
    if let Some(v) = iface_id_ver {
        ids.insert(model::names::IFACE_ID_VER.to_string(), v.to_string());
    }
    ids.insert("attached-mac".to_string(), mac.to_string());
    ids.insert("iface-status".to_string(), "active".to_string());
    let res = ovs
        .transact(vswitch::DB, vswitch::plug(bridge.uuid, host_if, &ids).to_vec())
        .await
        .map_err(|e| db_error(&format!("adding {host_if} to bridge {}", bridge.name), e))?;
    if res.get(2).and_then(|r| r.count) != Some(1) {
        return Err(CniError::try_again_later(format!("bridge {} disappeared while plugging {host_if}", bridge.name)));
    }
    Ok(res.get(1).and_then(|r| r.uuid).unwrap_or_else(Uuid::nil))
}

/// The bridge port named `name`, if any.
pub async fn port_by_name(ovs: &Client, name: &str) -> Result<Option<Port>, CniError> {
    Ok(select::<Port>(ovs, Some(Condition::eq("name", name))).await?.into_iter().next())
}

/// Removes a port from whichever bridge holds it (the port and its interface go with it).
pub async fn unplug(ovs: &Client, port: Uuid) -> Result<(), CniError> {
    let holders = select::<Bridge>(ovs, Some(Condition::includes("ports", ovsdb::datum::Datum::uuid(port)))).await?;
    for b in holders {
        ovs.transact(vswitch::DB, vec![vswitch::unplug(b.uuid, port)])
            .await
            .map_err(|e| db_error(&format!("removing a port from bridge {}", b.name), e))?;
    }
    Ok(())
}

/// The interfaces whose `external_ids` hold every `(key, value)` of `tags` (filtered by the
/// server: the cost does not grow with the node's other interfaces), with their ports.
pub async fn tagged_interfaces(ovs: &Client, tags: &[(&str, &str)]) -> Result<Vec<(Interface, Option<Port>)>, CniError> {
    let mut op = Operation::select(Interface::TABLE);
    for (k, v) in tags {
        op = op.filter(Condition::map_entry("external_ids", k, v));
    }
    let res = ovs.transact(vswitch::DB, vec![op]).await.map_err(|e| db_error("reading Interface", e))?;
    let ifaces: Vec<Interface> = res.into_iter().next().and_then(|r| r.rows).unwrap_or_default().iter().map(Interface::from_row).collect();
    if ifaces.is_empty() {
        return Ok(Vec::new());
    }
    let ops: Vec<Operation> = ifaces
        .iter()
        .map(|i| Operation::select(Port::TABLE).filter(Condition::includes("interfaces", ovsdb::datum::Datum::uuid(i.uuid))))
        .collect();
    let res = ovs.transact(vswitch::DB, ops).await.map_err(|e| db_error("reading Port", e))?;
    Ok(ifaces.into_iter().zip(res).map(|(i, r)| (i, r.rows.unwrap_or_default().first().map(Port::from_row))).collect())
}

/// Every interface kubetron plugged on this node (tagged with a container ID), with its port.
pub async fn kubetron_interfaces(ovs: &Client) -> Result<Vec<(Interface, Option<Port>)>, CniError> {
    let ifaces: Vec<Interface> =
        select::<Interface>(ovs, None).await?.into_iter().filter(|i| i.external_ids.contains_key(names::CONTAINER_ID)).collect();
    let ports = select::<Port>(ovs, None).await?;
    Ok(ifaces
        .into_iter()
        .map(|i| {
            let p = ports.iter().find(|p| p.interfaces.contains(&i.uuid)).cloned();
            (i, p)
        })
        .collect())
}

/// The `external_ids` that tie a local OVS interface to its CNI attachment: container ID,
/// interface name, CNI network and logical switch, the pod's netns path and identity.
pub fn attachment_tags(req: &crate::Request) -> BTreeMap<String, String> {
    let mut ids = BTreeMap::new();
    ids.insert(names::CONTAINER_ID.to_string(), req.container_id().to_string());
    ids.insert(names::INTERFACE.to_string(), req.ifname().to_string());
    ids.insert(names::CNI_NETWORK.to_string(), req.config.name.clone());
    ids.insert(names::LOGICAL_SWITCH.to_string(), req.config.logical_switch().to_string());
    if let Some(n) = req.netns() {
        ids.insert(names::NETNS.to_string(), n.display().to_string());
    }
    let a = &req.env.args;
    for (k, v) in [(model::names::POD_NAMESPACE, &a.pod_namespace), (model::names::POD_NAME, &a.pod_name), (names::POD_UID, &a.pod_uid)] {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            ids.insert(k.to_string(), v.clone());
        }
    }
    ids
}

/// This chassis's name: the Open_vSwitch row's `external_ids:system-id` (what ovn-controller
/// registers in the Southbound database), if set.
pub async fn system_id(ovs: &Client) -> Result<Option<String>, CniError> {
    Ok(select::<vswitch::OpenVSwitch>(ovs, None)
        .await?
        .into_iter()
        .next()
        .and_then(|o| o.external_ids.get("system-id").cloned())
        .filter(|s| !s.is_empty()))
}

/// Removes what an earlier container left on this node for the logical port `lsp`: every
/// kubetron interface bound to `lsp` (`iface-id`) that another container plugged, with its bridge
/// port and host veth. Returns the host interface names removed.
pub async fn remove_stale(ovs: &Client, host: Option<&Netns>, lsp: &str, container_id: &str) -> Result<Vec<String>, CniError> {
    let mut removed = Vec::new();
    for (iface, port) in kubetron_interfaces(ovs).await? {
        let cid = iface.external_ids.get(names::CONTAINER_ID).map(String::as_str).unwrap_or("");
        if iface.external_ids.get("iface-id").map(String::as_str) != Some(lsp) || cid == container_id {
            continue;
        }
        tracing::warn!(
            port = lsp,
            old_container = cid,
            host_if = %iface.name,
            "removing the local interface an earlier container left for this logical switch port"
        );
        if let Some(p) = port {
            unplug(ovs, p.uuid).await?;
        }
        delete_veth(host, &iface.name)?;
        removed.push(iface.name);
    }
    Ok(removed)
}

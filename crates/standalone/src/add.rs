//! ADD: logical switch port (found or made), veth pair, addresses, bridge port, wait until up.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net};
use netdev::{host_ifname, MacAddr, Netns};
use ovn::nb::{DhcpOptions, LogicalSwitch, LogicalSwitchPort};
use ovsdb::Client;

use crate::conn::{connect, nb_remote};
use crate::undo::Undo;
use crate::{port, KubetronPlugin};
use cni::plumb;
use cni::{CniError, CniResult, Request};

pub async fn add(plugin: &KubetronPlugin, req: &Request) -> Result<CniResult, CniError> {
    req.config.refuse_unhonoured_capabilities()?;
    let netns_path = req.netns().ok_or_else(|| CniError::invalid_env("CNI_NETNS is required for ADD"))?;
    let pod =
        Netns::open(netns_path).map_err(|e| CniError::unknown_container(format!("network namespace {}: {e}", netns_path.display())))?;
    let conf = &req.config.kubetron;
    let (nb, ovs) = tokio::try_join!(
        connect(plugin, nb_remote(req)?, "OVN Northbound database"),
        connect(plugin, &conf.ovs_socket, "local Open_vSwitch database"),
    )?;
    let switch = port::find_switch(&nb, req.config.logical_switch()).await?;
    let local = plumb::Local { bridge: plumb::bridge(&ovs, &conf.bridge).await?, system_id: plumb::system_id(&ovs).await? };

    let mut undo = Undo::default();
    // The plug step stops early enough (the call's deadline minus a cleanup reserve) that the
    // undo still runs, with its own bound, before the deadline.
    let result = crate::until_plug_deadline(plug(req, &pod, &nb, &ovs, &switch, &local, &mut undo)).await;
    if result.is_err() {
        crate::bounded_cleanup(undo.run(&nb, &ovs)).await;
    }
    result
}

async fn plug(
    req: &Request,
    pod: &Netns,
    nb: &Client,
    ovs: &Client,
    switch: &LogicalSwitch,
    local: &plumb::Local,
    undo: &mut Undo,
) -> Result<CniResult, CniError> {
    let conf = &req.config.kubetron;
    let timeout = Duration::from_millis(conf.port_up_timeout_ms);
    let name = port::port_name(req);
    let attached = port::ensure_port(nb, req, switch, &name, local.system_id.as_deref()).await?;
    if attached.created {
        undo.logical_port(attached.port.uuid);
    }
    // An earlier container's interface bound to this port on this node (a sandbox replaced
    // without a successful DEL) would compete with ours for the port: remove it.
    plumb::remove_stale(ovs, None, &name, req.container_id()).await?;
    let mut lsp = attached.port;
    let iface_id_ver = iface_id_ver(req, &lsp)?;
    if lsp.wants_dynamic() && lsp.dynamic_addresses.is_none() {
        // northd allocates within a few milliseconds; wait at least a second even when the
        // caller asked not to wait for the port to come up.
        let wait = timeout.max(Duration::from_secs(1));
        lsp = port::wait_port(nb, &name, wait, "get addresses from OVN", |p| p.dynamic_addresses.is_some()).await?;
    }
    let (mac, ips) = lsp
        .effective_addresses()
        .ok_or_else(|| CniError::invalid_config(format!("logical switch port {name:?} has no MAC address ({:?})", lsp.addresses)))?;
    let mac_addr: MacAddr =
        mac.parse().map_err(|_| CniError::invalid_config(format!("logical switch port {name:?} has an invalid MAC {mac:?}")))?;
    let subnet = switch.subnet();
    let requested = req.config.requested_ips()?;
    let ipnets = with_prefixes(&ips, &requested, subnet.as_ref());
    let dhcp = dhcp_options(nb, &lsp, subnet.as_ref()).await?;
    let gateway: Option<IpAddr> = dhcp.as_ref().and_then(|d| d.options.get("router")).and_then(|r| r.parse().ok());
    let default_routes = requested_default_routes(req, gateway);

    let host_if = host_ifname(req.container_id(), req.ifname());
    // Recorded first: make_veth can fail after the pair exists (moving or configuring its ends).
    // The host name is this attachment's own (container ID + ifname).
    undo.veth(&host_if);
    let veth = plumb::make_veth(None, pod, &host_if, req.ifname(), mac_addr, conf.mtu)?;
    if !conf.dhcp {
        plumb::address_pod(pod, veth.pod_index, &ipnets, &default_routes)?;
    }
    let port_uuid = plumb::plug(ovs, &local.bridge, &host_if, &name, &mac, iface_id_ver.as_deref(), &plumb::attachment_tags(req)).await?;
    undo.bridge_port(port_uuid);
    if !timeout.is_zero() {
        port::wait_port(nb, &name, timeout, "come up", |p| p.up == Some(true)).await?;
    }

    let routes: Vec<(IpNet, IpAddr)> = default_routes.iter().map(|gw| (plumb::default_dst(gw), *gw)).collect();
    let gateways: Vec<IpAddr> = gateway.into_iter().collect();
    let addresses = (!conf.dhcp).then_some(plumb::Addresses { ips: &ipnets, gateways: &gateways, routes: &routes });
    Ok(plumb::attachment_result(req.version(), (&host_if, veth.host_mac), (pod.path(), req.ifname(), mac_addr, conf.mtu), addresses))
}

/// The port's IPs with prefix lengths: as requested, else the switch subnet's, else host routes.
pub fn with_prefixes(ips: &[String], requested: &[IpNet], subnet: Option<&Ipv4Net>) -> Vec<IpNet> {
    ips.iter()
        .filter_map(|s| s.parse::<IpAddr>().ok())
        .map(|ip| {
            if let Some(r) = requested.iter().find(|r| r.addr() == ip) {
                return *r;
            }
            match (ip, subnet) {
                (IpAddr::V4(v4), Some(s)) if s.contains(&v4) => IpNet::new(ip, s.prefix_len()).unwrap_or_else(|_| IpNet::from(ip)),
                _ => IpNet::from(ip),
            }
        })
        .collect()
}

async fn dhcp_options(nb: &Client, lsp: &LogicalSwitchPort, subnet: Option<&Ipv4Net>) -> Result<Option<DhcpOptions>, CniError> {
    match subnet {
        Some(s) => port::dhcp_for(nb, s).await.map(|d| d.filter(|d| lsp.dhcpv4_options.is_none_or(|u| u == d.uuid))),
        None => Ok(None),
    }
}

/// The OVS Interface's `iface-id-ver`: the request's pod UID (`K8S_POD_UID`), set whether or not
/// the port asks for it, so that a port the controller adopts (and binds to the pod UID) stays
/// bound. A port bound to a pod generation (`options:iface-id-ver`, set by the controller) is
/// plugged only for that UID: another UID is a pod re-created under the same name whose port the
/// controller has not re-made yet (code 11, as [`crate::port`] answers for its external_ids). A
/// request without `K8S_POD_UID` (a runtime that does not pass it) takes the port's value: the
/// port was found by the pod's namespace and name.
fn iface_id_ver(req: &Request, lsp: &LogicalSwitchPort) -> Result<Option<String>, CniError> {
    let req_uid = req.env.args.pod_uid.as_deref().filter(|u| !u.is_empty());
    match (lsp.options.get(model::names::IFACE_ID_VER).map(String::as_str), req_uid) {
        (Some(bound), Some(uid)) if bound != uid => Err(CniError::try_again_later(format!(
            "logical switch port {:?} is bound to pod UID {bound} (options:{}), not to this pod (UID {uid}); \
             the controller re-creates it for the new pod, try again later",
            lsp.name,
            model::names::IFACE_ID_VER
        ))),
        (_, Some(uid)) => Ok(Some(uid.to_string())),
        (bound, None) => Ok(bound.map(str::to_string)),
    }
}

/// Default routes asked for with `args.cni.default-route` (a list of gateway IPs; an empty list
/// means "the network's gateway").
fn requested_default_routes(req: &Request, gateway: Option<IpAddr>) -> Vec<IpAddr> {
    let Some(list) = req.config.args.as_ref().and_then(|a| a.get("cni")).and_then(|c| c.get("default-route")).and_then(|v| v.as_array())
    else {
        return Vec::new();
    };
    let explicit: Vec<IpAddr> = list.iter().filter_map(|v| v.as_str()?.parse().ok()).collect();
    if explicit.is_empty() {
        gateway.into_iter().collect()
    } else {
        explicit
    }
}

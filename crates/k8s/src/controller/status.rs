//! The pod annotations the controller writes once the ports exist: `kubetron.io/interfaces`
//! (as soon as every port's MAC and IPs are known) and `k8s.v1.cni.cncf.io/network-status`
//! (once every port is up).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use model::handoff::{self, Attachment, Handoff, Route};
use ovn::columns::Model;
use ovn::nb::LogicalSwitchPort;

use super::desired::{Addressing, DesiredPort};
use super::nb::NbView;
use model::status::{attachment_network_status, to_annotation, NetworkStatus, INTERFACES_ANNOTATION, NETWORK_STATUS_ANNOTATION};

/// What the controller knows of a pod's ports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodStatus {
    /// The hand-off (`kubetron.io/interfaces` v1); `None` until every port exists with its MAC
    /// and IPs known.
    pub interfaces: Option<Handoff>,
    /// `None` until every port is up.
    pub network_status: Option<Vec<NetworkStatus>>,
}

impl PodStatus {
    /// The annotation values to write (absent entries are not ready yet).
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        if let Some(h) = &self.interfaces {
            m.insert(INTERFACES_ANNOTATION.to_string(), handoff::render(h));
        }
        if let Some(n) = &self.network_status {
            m.insert(NETWORK_STATUS_ANNOTATION.to_string(), to_annotation(n));
        }
        m
    }
}

/// The hand-off entry for one desired port, if its addresses are known in `view`.
pub fn interface(view: &NbView, d: &DesiredPort) -> Option<Attachment> {
    let (_, row) = view.port_by_name(&d.name)?;
    let port = LogicalSwitchPort::from_row(&row);
    // The port must show what we asked for (not an older value still in the replica).
    if port.addresses != d.addresses() {
        return None;
    }
    let (mac, ips) = port.effective_addresses()?;
    let subnet_needed = d.subnet.is_some() && port.wants_dynamic();
    if subnet_needed && ips.is_empty() {
        return None;
    }
    let ips = ips.iter().filter_map(|s| s.parse::<IpAddr>().ok()).filter_map(|ip| with_prefix(d, ip)).collect();
    let gateways: Vec<IpAddr> = d.dhcpv4_options.and_then(|u| view.dhcp_router(&u)).and_then(|g| g.parse().ok()).into_iter().collect();
    let routes = default_gateways(d, &gateways).into_iter().map(|gw| Route { dst: default_dst(gw), gw }).collect();
    let addressing = match (&d.addressing, d.dhcp) {
        (_, true) => handoff::Addressing::Dhcp,
        (Addressing::MacOnly { .. }, false) => handoff::Addressing::None,
        _ => handoff::Addressing::Static,
    };
    Some(Attachment {
        interface: d.interface.clone(),
        network: d.network.to_string(),
        cni_network: d.cni_network.clone(),
        logical_switch: d.switch_name.clone(),
        logical_port: d.name.clone(),
        mac,
        ips,
        gateways,
        routes,
        mtu: d.mtu,
        addressing,
    })
}

fn with_prefix(d: &DesiredPort, ip: IpAddr) -> Option<IpNet> {
    let prefix = match (d.prefixes.get(&ip), ip, d.subnet) {
        (Some(p), _, _) => *p,
        (None, IpAddr::V4(v4), Some(s)) if s.contains(&v4) => s.prefix_len(),
        (None, IpAddr::V4(_), _) => 32,
        (None, IpAddr::V6(_), _) => 128,
    };
    IpNet::new(ip, prefix).ok()
}

/// The gateways of the pod's default route through this interface: those the pod named, else
/// the network's; none when it did not ask (`default-route` in its selection).
fn default_gateways(d: &DesiredPort, network: &[IpAddr]) -> Vec<IpAddr> {
    match &d.default_route {
        Some(named) if !named.is_empty() => named.clone(),
        Some(_) => network.to_vec(),
        None => Vec::new(),
    }
}

fn default_dst(gw: IpAddr) -> IpNet {
    match gw {
        IpAddr::V4(_) => IpNet::V4(ipnet::Ipv4Net::default()),
        IpAddr::V6(_) => IpNet::V6(ipnet::Ipv6Net::default()),
    }
}

/// The `network-status` entry of one interface. Never `"default": true` (that is the cluster-wide
/// default network's); an interface that carries the pod's default route lists its gateways
/// (those the pod named, else the network's) in `gateway` and `default-route`.
pub fn network_status(a: &Attachment, d: &DesiredPort) -> NetworkStatus {
    let gateways: Vec<String> = default_gateways(d, &a.gateways).iter().map(IpAddr::to_string).collect();
    NetworkStatus { gateway: gateways.clone(), default_route: gateways, ..attachment_network_status(a) }
}

/// The status of all of the desired ports of the pod whose UID is `pod_uid`.
pub fn pod_status(view: &NbView, pod_uid: &str, desired: &[DesiredPort]) -> PodStatus {
    let interfaces: Option<Vec<Attachment>> = desired.iter().map(|d| interface(view, d)).collect();
    let all_up = desired.iter().all(|d| view.port_by_name(&d.name).is_some_and(|(_, r)| r.bool("up") == Some(true)));
    let network_status = match (&interfaces, all_up) {
        (Some(list), true) => Some(list.iter().zip(desired).map(|(a, d)| network_status(a, d)).collect()),
        _ => None,
    };
    PodStatus { interfaces: interfaces.map(|l| Handoff::new(pod_uid, l)), network_status }
}

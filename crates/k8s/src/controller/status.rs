//! The pod annotations the controller writes once the ports exist: `kubetron.io/interfaces`
//! (as soon as every port's MAC and IPs are known) and `k8s.v1.cni.cncf.io/network-status`
//! (once every port is up).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ovn::columns::Model;
use ovn::nb::LogicalSwitchPort;

use super::desired::DesiredPort;
use super::nb::NbView;
use crate::status::{to_annotation, KubetronInterface, NetworkStatus, INTERFACES_ANNOTATION, NETWORK_STATUS_ANNOTATION};

/// What the controller knows of a pod's ports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodStatus {
    /// `None` until every port exists with its MAC and IPs known.
    pub interfaces: Option<Vec<KubetronInterface>>,
    /// `None` until every port is up.
    pub network_status: Option<Vec<NetworkStatus>>,
}

impl PodStatus {
    /// The annotation values to write (absent entries are not ready yet).
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        if let Some(i) = &self.interfaces {
            m.insert(INTERFACES_ANNOTATION.to_string(), to_annotation(i));
        }
        if let Some(n) = &self.network_status {
            m.insert(NETWORK_STATUS_ANNOTATION.to_string(), to_annotation(n));
        }
        m
    }
}

/// The interface entry for one desired port, if its addresses are known in `view`.
pub fn interface(view: &NbView, d: &DesiredPort) -> Option<KubetronInterface> {
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
    let ips = ips.iter().filter_map(|s| s.parse::<IpAddr>().ok()).map(|ip| with_prefix(d, ip)).collect();
    let gateway = d.dhcpv4_options.and_then(|u| view.dhcp_router(&u));
    Some(KubetronInterface {
        interface: d.interface.clone(),
        network: d.network.to_string(),
        logical_switch: d.switch_name.clone(),
        logical_port: d.name.clone(),
        mac,
        ips,
        gateway,
    })
}

fn with_prefix(d: &DesiredPort, ip: IpAddr) -> String {
    let prefix = match (d.prefixes.get(&ip), ip, d.subnet) {
        (Some(p), _, _) => *p,
        (None, IpAddr::V4(v4), Some(s)) if s.contains(&v4) => s.prefix_len(),
        (None, IpAddr::V4(_), _) => 32,
        (None, IpAddr::V6(_), _) => 128,
    };
    format!("{ip}/{prefix}")
}

/// The `network-status` entry of one interface. Never `"default": true` (that is the cluster-wide
/// default network's); an interface that carries the pod's default route lists its gateways
/// (those the pod named, else the network's) in `gateway` and `default-route`.
pub fn network_status(i: &KubetronInterface, d: &DesiredPort) -> NetworkStatus {
    let gateways: Vec<String> = match &d.default_route {
        Some(named) if !named.is_empty() => named.iter().map(IpAddr::to_string).collect(),
        Some(_) => i.gateway.iter().cloned().collect(),
        None => Vec::new(),
    };
    NetworkStatus { gateway: gateways.clone(), default_route: gateways, ..i.to_network_status() }
}

/// The status of all of a pod's desired ports.
pub fn pod_status(view: &NbView, desired: &[DesiredPort]) -> PodStatus {
    let interfaces: Option<Vec<KubetronInterface>> = desired.iter().map(|d| interface(view, d)).collect();
    let all_up = desired.iter().all(|d| view.port_by_name(&d.name).is_some_and(|(_, r)| r.bool("up") == Some(true)));
    let network_status = match (&interfaces, all_up) {
        (Some(list), true) => Some(list.iter().zip(desired).map(|(i, d)| network_status(i, d)).collect()),
        _ => None,
    };
    PodStatus { interfaces, network_status }
}

//! The pod annotations the controller writes once the ports exist: `kubetron.io/interfaces`
//! (as soon as every port's MAC and IPs are known) and `k8s.v1.cni.cncf.io/network-status`
//! (once every port is up; with the cluster network's `eth0` entry first when the controller
//! knows that network's name and the pod has IPs, see [`model::status`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Pod;
use model::handoff::{self, Attachment, Handoff, Route};
use ovn::columns::Model;
use ovn::nb::LogicalSwitchPort;

use super::desired::{Addressing, DesiredPort};
use super::nb::NbView;
use model::status::{
    attachment_network_status, merge_network_status_with, to_annotation, ClusterNetwork, NetworkStatus, INTERFACES_ANNOTATION,
    NETWORK_STATUS_ANNOTATION,
};

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
    let routes = default_routes(&d.default_route, &gateways);
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
        iface_id_ver: d.iface_id_ver.clone(),
        vm: d.vm.clone(),
        sig: None,
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

/// The gateways of the pod's default route through this interface: those the pod named
/// (`asked`, its selection's `default-route`), else the network's; none when it did not ask.
pub fn default_gateways(asked: &Option<Vec<IpAddr>>, network: &[IpAddr]) -> Vec<IpAddr> {
    match asked {
        Some(named) if !named.is_empty() => named.clone(),
        Some(_) => network.to_vec(),
        None => Vec::new(),
    }
}

/// The hand-off's default routes for [`default_gateways`].
pub fn default_routes(asked: &Option<Vec<IpAddr>>, network: &[IpAddr]) -> Vec<Route> {
    default_gateways(asked, network).into_iter().map(|gw| Route { dst: default_dst(gw), gw }).collect()
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
    network_status_asking(a, &d.default_route)
}

/// [`network_status`] of an attachment whose selection asked for `default_route`.
pub fn network_status_asking(a: &Attachment, default_route: &Option<Vec<IpAddr>>) -> NetworkStatus {
    let gateways: Vec<String> = default_gateways(default_route, &a.gateways).iter().map(IpAddr::to_string).collect();
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

/// The IPAMClaim status writes a pod's hand-off calls for: for each persistent-IP port whose
/// claim's `status.ips` (CIDR strings) or `status.ownerPod` differ from the hand-off's addresses
/// and `pod_name`, the claim and the values to write.
pub fn claim_status_updates<'a>(
    desired: &'a [DesiredPort],
    handoff: &Handoff,
    pod_name: &str,
) -> Vec<(&'a super::desired::ClaimBinding, Vec<String>)> {
    desired
        .iter()
        .filter_map(|d| {
            let c = d.claim.as_ref()?;
            let a = handoff.interfaces.iter().find(|a| a.logical_port == d.name)?;
            let ips: Vec<String> = a.ips.iter().map(|n| n.to_string()).collect();
            (c.status_ips != ips || c.owner_pod.as_deref() != Some(pod_name)).then_some((c, ips))
        })
        .collect()
}

/// The pod's IPs as the kubelet reports them: `status.podIPs`, else `status.podIP`; empty until
/// the pod's sandbox has its network.
pub fn pod_ips(pod: &Pod) -> Vec<String> {
    let Some(st) = pod.status.as_ref() else { return Vec::new() };
    let ips: Vec<String> = st.pod_ips.iter().flatten().map(|p| p.ip.clone()).filter(|ip| !ip.is_empty()).collect();
    if !ips.is_empty() {
        return ips;
    }
    st.pod_ip.iter().filter(|ip| !ip.is_empty()).cloned().collect()
}

/// The annotation changes that bring a pod's `current` annotations to `status` (`Some`: set,
/// `None`: remove; unchanged values included, the writer filters them out).
///
/// `interfaces` are the pod's kubetron interfaces now (empty: it asks for none, and what
/// kubetron wrote goes); `cluster` is the cluster network's entry to write, if configured.
/// Until the pod's ports are known (up), nothing is changed unless it asks for nothing any more.
pub fn annotation_patch(
    status: &PodStatus,
    interfaces: &BTreeSet<String>,
    cluster: Option<ClusterNetwork<'_>>,
    current: &BTreeMap<String, String>,
) -> BTreeMap<String, Option<String>> {
    let asks_nothing = interfaces.is_empty();
    let mut patch: BTreeMap<String, Option<String>> = BTreeMap::new();
    match &status.interfaces {
        Some(h) => {
            patch.insert(INTERFACES_ANNOTATION.to_string(), Some(handoff::render(h)));
        }
        None if asks_nothing && current.contains_key(INTERFACES_ANNOTATION) => {
            patch.insert(INTERFACES_ANNOTATION.to_string(), None);
        }
        None => {}
    }
    if status.network_status.is_some() || asks_nothing {
        // Ours: the interfaces the pod has now and those kubetron last recorded (in a v1
        // hand-off, or a v0 list written by an older controller).
        let mut owned = interfaces.clone();
        if let Some(prev) = current.get(INTERFACES_ANNOTATION).and_then(|v| handoff::parse(v).ok()) {
            owned.extend(prev.interface_names().into_iter().map(str::to_string));
        }
        let ours = status.network_status.as_deref().unwrap_or_default();
        // A pod kubetron has nothing for gets no eth0 entry from it either (one it wrote goes).
        let cluster = cluster.map(|c| if asks_nothing { ClusterNetwork { ips: &[], ..c } } else { c });
        let cur = current.get(NETWORK_STATUS_ANNOTATION).map(String::as_str);
        if cur.is_some() || !ours.is_empty() {
            patch.insert(NETWORK_STATUS_ANNOTATION.to_string(), merge_network_status_with(cur, ours, &owned, cluster));
        }
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::status::parse_network_status;
    use serde_json::{json, Value};

    fn attachment(iface: &str, ip: &str) -> Attachment {
        Attachment {
            interface: iface.into(),
            network: "ns/blue".into(),
            cni_network: "blue".into(),
            logical_switch: "blue".into(),
            logical_port: format!("ns_p_{iface}"),
            mac: "0a:00:00:00:00:01".into(),
            ips: vec![format!("{ip}/24").parse().unwrap()],
            gateways: vec![],
            routes: vec![],
            mtu: model::netconf::DEFAULT_MTU,
            addressing: handoff::Addressing::Static,
            iface_id_ver: None,
            vm: None,
            sig: None,
        }
    }

    /// A pod whose net1 is up (hand-off and network-status known).
    fn up() -> PodStatus {
        let a = attachment("net1", "10.1.0.5");
        PodStatus { network_status: Some(vec![attachment_network_status(&a)]), interfaces: Some(Handoff::new("uid-1", vec![a])) }
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn cluster(ips: &[String]) -> Option<ClusterNetwork<'_>> {
        Some(ClusterNetwork { name: "cluster-net", ips })
    }

    /// The annotations after applying `patch` to `current`.
    fn apply(current: &BTreeMap<String, String>, patch: BTreeMap<String, Option<String>>) -> BTreeMap<String, String> {
        let mut out = current.clone();
        for (k, v) in patch {
            match v {
                Some(v) => out.insert(k, v),
                None => out.remove(&k),
            };
        }
        out
    }

    fn status_entries(a: &BTreeMap<String, String>) -> Vec<Value> {
        serde_json::from_str(&a[NETWORK_STATUS_ANNOTATION]).unwrap()
    }

    #[test]
    fn pod_ips_come_from_the_pod_status() {
        let mut pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}})).unwrap();
        assert!(pod_ips(&pod).is_empty());
        pod.status = serde_json::from_value(json!({"podIP": "10.244.0.9"})).unwrap();
        assert_eq!(pod_ips(&pod), ["10.244.0.9"], "podIP when podIPs is missing");
        pod.status = serde_json::from_value(json!({"podIP": "10.244.0.9", "podIPs": [{"ip": "10.244.0.9"}, {"ip": "fd00::9"}]})).unwrap();
        assert_eq!(pod_ips(&pod), ["10.244.0.9", "fd00::9"]);
    }

    #[test]
    fn patch_adds_the_cluster_entry_when_the_ips_appear_and_then_converges() {
        let st = up();
        let ifaces = set(&["net1"]);
        let none: &[String] = &[];
        // Ports up, no IPs yet: kubetron's entries only.
        let a1 = apply(&BTreeMap::new(), annotation_patch(&st, &ifaces, cluster(none), &BTreeMap::new()));
        assert!(a1.contains_key(INTERFACES_ANNOTATION));
        let e = status_entries(&a1);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0]["interface"], "net1");
        // The kubelet reports the pod's IPs: the eth0 entry comes first.
        let ips = vec!["10.244.0.9".to_string()];
        let p = annotation_patch(&st, &ifaces, cluster(&ips), &a1);
        let a2 = apply(&a1, p);
        let e = status_entries(&a2);
        assert_eq!(e[0], json!({"name": "cluster-net", "interface": "eth0", "ips": ["10.244.0.9"], "default": true, "dns": {}}));
        assert_eq!(e[1]["interface"], "net1");
        assert_eq!(parse_network_status(&a2[NETWORK_STATUS_ANNOTATION]).unwrap().len(), 2);
        // The next reconcile (the watch event of that very write) changes nothing: no write loop.
        let p = annotation_patch(&st, &ifaces, cluster(&ips), &a2);
        assert!(p.iter().all(|(k, v)| a2.get(k) == v.as_ref()), "{p:?}");
        // Off: no eth0 entry.
        let off = apply(&BTreeMap::new(), annotation_patch(&st, &ifaces, None, &BTreeMap::new()));
        assert!(!off[NETWORK_STATUS_ANNOTATION].contains("eth0"), "{off:?}");
    }

    #[test]
    fn patch_keeps_a_foreign_cluster_entry_and_drops_its_own_with_the_networks() {
        let st = up();
        let ifaces = set(&["net1"]);
        let ips = vec!["10.244.0.9".to_string()];
        let multus =
            json!({"name": "kindnet", "interface": "eth0", "ips": ["10.244.0.9"], "mac": "0a:58:0a:f4:00:09", "default": true, "dns": {}});
        let current: BTreeMap<String, String> = [(NETWORK_STATUS_ANNOTATION.to_string(), json!([multus]).to_string())].into();
        let a = apply(&current, annotation_patch(&st, &ifaces, cluster(&ips), &current));
        let e = status_entries(&a);
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(e[0], multus, "Multus's entry is kept, and only it");
        assert_eq!(e[1]["interface"], "net1");

        // Pod asks for no kubetron network any more: kubetron's entries go, its eth0 entry too.
        let mine = apply(&BTreeMap::new(), annotation_patch(&st, &ifaces, cluster(&ips), &BTreeMap::new()));
        assert_eq!(status_entries(&mine).len(), 2);
        let gone = apply(&mine, annotation_patch(&PodStatus::default(), &BTreeSet::new(), cluster(&ips), &mine));
        assert!(gone.is_empty(), "{gone:?}");
        // Ports not up yet: network-status untouched.
        let pending = PodStatus { network_status: None, ..up() };
        let p = annotation_patch(&pending, &ifaces, cluster(&ips), &BTreeMap::new());
        assert!(!p.contains_key(NETWORK_STATUS_ANNOTATION), "{p:?}");
    }
}

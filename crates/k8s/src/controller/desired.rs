//! Pods and NetworkAttachmentDefinitions -> the logical switch ports they should have. Pure: no
//! I/O, the NADs and switches come from lookups the caller passes in.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Pod;
use model::addressing;
use ovn::names;
use ovsdb::datum::Uuid;

use super::error::PodError;
use super::nb::SwitchLookup;
use crate::annotation;
use crate::nad::{authorize, check_capabilities, NetworkAttachmentDefinition};
use model::request::{NetworkRef, NetworkSelection};

/// The identity of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl PodRef {
    /// From a pod's metadata; `None` when name or UID is missing.
    pub fn of(pod: &Pod) -> Option<PodRef> {
        let m = &pod.metadata;
        Some(PodRef {
            namespace: m.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".to_string()),
            name: m.name.clone().filter(|n| !n.is_empty())?,
            uid: m.uid.clone().filter(|n| !n.is_empty())?,
        })
    }
}

/// Whether a pod should have ports at all: scheduled to a node and not finished.
pub fn pod_is_active(pod: &Pod) -> bool {
    let scheduled = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_some_and(|n| !n.is_empty());
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
    scheduled && phase != "Succeeded" && phase != "Failed"
}

/// Finds NetworkAttachmentDefinitions by namespace and name.
pub trait NadLookup {
    fn nad(&self, namespace: &str, name: &str) -> Option<Arc<NetworkAttachmentDefinition>>;
}

/// An in-memory NAD store (tests, the benchmark, snapshots of a reflector).
#[derive(Debug, Clone, Default)]
pub struct NadMap(pub HashMap<(String, String), Arc<NetworkAttachmentDefinition>>);

impl NadMap {
    pub fn insert(&mut self, nad: NetworkAttachmentDefinition) {
        let key = (nad.namespace_str().to_string(), nad.name_str().to_string());
        self.0.insert(key, Arc::new(nad));
    }
}

impl NadLookup for NadMap {
    fn nad(&self, namespace: &str, name: &str) -> Option<Arc<NetworkAttachmentDefinition>> {
        self.0.get(&(namespace.to_string(), name.to_string())).cloned()
    }
}

impl NadLookup for kube::runtime::reflector::Store<NetworkAttachmentDefinition> {
    fn nad(&self, namespace: &str, name: &str) -> Option<Arc<NetworkAttachmentDefinition>> {
        self.get(&kube::runtime::reflector::ObjectRef::new(name).within(namespace))
    }
}

/// What a port's `addresses` column asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addressing {
    /// `"MAC IP..."`: fixed addresses.
    Static { mac: String, ips: Vec<IpAddr> },
    /// `"dynamic"` or `"MAC dynamic"`: northd allocates from the switch subnet.
    Dynamic { mac: Option<String> },
    /// `"MAC"`: a switch without subnet; addresses are the pod's business.
    MacOnly { mac: String },
}

impl Addressing {
    /// The `addresses` column entry.
    pub fn entry(&self) -> String {
        match self {
            Addressing::Static { mac, ips } => {
                let mut s = mac.clone();
                for ip in ips {
                    s.push(' ');
                    s.push_str(&ip.to_string());
                }
                s
            }
            Addressing::Dynamic { mac: Some(m) } => format!("{m} dynamic"),
            Addressing::Dynamic { mac: None } => "dynamic".to_string(),
            Addressing::MacOnly { mac } => mac.clone(),
        }
    }
}

/// One logical switch port a pod should have.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredPort {
    /// `pod_port(ns, pod, ifname)`.
    pub name: String,
    pub switch: Uuid,
    pub switch_name: String,
    pub subnet: Option<Ipv4Net>,
    pub network: NetworkRef,
    pub interface: String,
    pub addressing: Addressing,
    /// Prefix lengths the user gave with static IPs (by address).
    pub prefixes: BTreeMap<IpAddr, u8>,
    pub dhcpv4_options: Option<Uuid>,
    /// The controller's `options` keys: `iface-id-ver` = the pod UID (only an OVS Interface
    /// carrying the same value binds the port). Other keys of an existing port are kept.
    pub options: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
    /// The pod asked for its default route through this interface: the gateways it named
    /// (empty: the network's gateway); `None` when it did not ask.
    pub default_route: Option<Vec<IpAddr>>,
    /// The CNI network name (the NAD config's `name`).
    pub cni_network: String,
    /// The interface MTU (NAD config `mtu`, default [`model::netconf::DEFAULT_MTU`]).
    pub mtu: u32,
    /// The NAD config says `"dhcp": true`: the pod's DHCP client configures the addresses.
    pub dhcp: bool,
}

impl DesiredPort {
    /// The `addresses` column value.
    pub fn addresses(&self) -> Vec<String> {
        vec![self.addressing.entry()]
    }
    /// The static IPs, if any.
    pub fn static_ips(&self) -> &[IpAddr] {
        match &self.addressing {
            Addressing::Static { ips, .. } => ips,
            _ => &[],
        }
    }
}

/// The ports `pod` should have. Empty when the pod is not scheduled, finished, or asks for no
/// networks; selections of NADs that belong to other plugins are skipped.
pub fn desired(pod: &Pod, nads: &dyn NadLookup, switches: &dyn SwitchLookup) -> Result<Vec<DesiredPort>, PodError> {
    if !pod_is_active(pod) {
        return Ok(Vec::new());
    }
    let pod_ref = PodRef::of(pod).ok_or(PodError::NoIdentity)?;
    let selections = annotation::from_pod(pod)?;
    let mut out = Vec::with_capacity(selections.len());
    for sel in &selections {
        if let Some(port) = desired_port(&pod_ref, sel, nads, switches)? {
            out.push(port);
        }
    }
    Ok(out)
}

fn desired_port(
    pod: &PodRef,
    sel: &NetworkSelection,
    nads: &dyn NadLookup,
    switches: &dyn SwitchLookup,
) -> Result<Option<DesiredPort>, PodError> {
    let network = sel.network();
    let nad = nads.nad(&sel.namespace, &sel.name).ok_or_else(|| PodError::NadNotFound { network: network.clone() })?;
    let config = match nad.kubetron_config() {
        Ok(Some(c)) => c,
        Ok(None) => {
            tracing::debug!(pod = %pod, %network, "network belongs to another plugin; skipped");
            return Ok(None);
        }
        Err(source) => return Err(PodError::NadConfig { network, source }),
    };
    authorize(&pod.namespace, sel, &nad)?;
    check_capabilities(sel, &config)?;

    let logical_switch = config.logical_switch();
    let mut found = switches.switches(logical_switch);
    let switch = match found.len() {
        0 => return Err(PodError::SwitchMissing { network, switch: logical_switch.to_string() }),
        1 => found.remove(0),
        n => return Err(PodError::SwitchAmbiguous { network, switch: logical_switch.to_string(), count: n }),
    };
    let name = model::names::pod_port(&pod.namespace, &pod.name, &sel.interface);
    let addressing = addressing_for(&name, sel, switch.subnet.as_ref(), &network)?;
    let prefixes = sel.ips.iter().filter_map(|i| i.prefix_len.map(|p| (i.addr, p))).collect();
    let dhcpv4_options = switch.subnet.as_ref().and_then(|s| switches.dhcpv4(s));

    let mut ids = BTreeMap::new();
    ids.insert(names::OWNER.to_string(), names::OWNER_CONTROLLER.to_string());
    ids.insert(model::names::POD_NAMESPACE.to_string(), pod.namespace.clone());
    ids.insert(model::names::POD_NAME.to_string(), pod.name.clone());
    ids.insert(names::POD_UID.to_string(), pod.uid.clone());
    ids.insert(names::NETWORK.to_string(), network.to_string());
    ids.insert(names::INTERFACE.to_string(), sel.interface.clone());
    let options = BTreeMap::from([(model::names::IFACE_ID_VER.to_string(), pod.uid.clone())]);
    Ok(Some(DesiredPort {
        name,
        switch: switch.uuid,
        switch_name: switch.name,
        subnet: switch.subnet,
        network,
        interface: sel.interface.clone(),
        addressing,
        prefixes,
        dhcpv4_options,
        options,
        external_ids: ids,
        default_route: sel.default_route.clone(),
        mtu: config.kubetron.mtu,
        dhcp: config.kubetron.dhcp,
        cni_network: config.name,
    }))
}

fn addressing_for(port: &str, sel: &NetworkSelection, subnet: Option<&Ipv4Net>, network: &NetworkRef) -> Result<Addressing, PodError> {
    let mac = sel.mac.map(|m| m.to_string());
    if sel.ips.is_empty() {
        return Ok(match (mac, subnet) {
            (m, Some(_)) => Addressing::Dynamic { mac: m },
            (Some(m), None) => Addressing::MacOnly { mac: m },
            (None, None) => Addressing::MacOnly { mac: addressing::mac_for_name(port) },
        });
    }
    let mut ips = Vec::with_capacity(sel.ips.len());
    for ip in &sel.ips {
        if let (IpAddr::V4(v4), Some(s)) = (ip.addr, subnet) {
            if !s.contains(&v4) || v4 == s.network() || v4 == s.broadcast() {
                return Err(PodError::IpOutsideSubnet {
                    network: network.clone(),
                    interface: sel.interface.clone(),
                    ip: ip.addr,
                    subnet: *s,
                });
            }
        }
        if !ips.contains(&ip.addr) {
            ips.push(ip.addr);
        }
    }
    let mac = match mac {
        Some(m) => m,
        None => match ips.iter().find_map(|a| match a {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        }) {
            Some(v4) => addressing::mac_for_ip(v4),
            None => return Err(PodError::Ipv6NeedsMac { network: network.clone(), interface: sel.interface.clone() }),
        },
    };
    Ok(Addressing::Static { mac, ips })
}

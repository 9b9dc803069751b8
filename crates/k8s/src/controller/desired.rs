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
use crate::ipamclaim::IPAMClaim;
use crate::meta::MetaStr;
use crate::nad::{authorize, check_capabilities, NetworkAttachmentDefinition};
use model::kubevirt::{ChassisOptions, MigrationMode};
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
    scheduled && !pod_is_finished(pod)
}

/// Whether the pod's containers are done for good (phase `Succeeded` or `Failed`).
pub fn pod_is_finished(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
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

/// Finds IPAMClaims, and tells whether a VM still runs (for the "claim in use" rule).
pub trait ClaimLookup {
    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<IPAMClaim>>;
    /// Whether VM `vm` (a [`VmIdentity::name`]) of `namespace` has a living pod (scheduled, not
    /// finished, not being deleted).
    fn vm_is_living(&self, namespace: &str, vm: &str) -> bool;
    /// The chassis options of the ports of `pod`'s VM (see [`super::vm`]); `None`: leave them as
    /// they are. By default from `pod` alone (bound to its node).
    fn chassis_options(&self, pod: &Pod) -> Option<ChassisOptions> {
        super::vm::chassis_options(&[], pod, MigrationMode::default())
    }
}

/// No claims at all (callers that do not watch IPAMClaims): every reference is "not found".
#[derive(Debug, Clone, Copy, Default)]
pub struct NoClaims;

impl ClaimLookup for NoClaims {
    fn claim(&self, _: &str, _: &str) -> Option<Arc<IPAMClaim>> {
        None
    }
    fn vm_is_living(&self, _: &str, _: &str) -> bool {
        false
    }
}

/// An in-memory claim store (tests, the benchmark): claims by namespace and name, and the living
/// VMs by namespace and name.
#[derive(Debug, Clone, Default)]
pub struct ClaimMap {
    pub claims: HashMap<(String, String), Arc<IPAMClaim>>,
    pub living: std::collections::HashSet<(String, String)>,
    /// All launcher pods, for the VM placement ([`ClaimLookup::chassis_options`]).
    pub pods: Vec<Arc<Pod>>,
    pub migration: MigrationMode,
}

impl ClaimMap {
    pub fn insert(&mut self, claim: IPAMClaim) {
        let key = (claim.namespace_str().to_string(), claim.name_str().to_string());
        self.claims.insert(key, Arc::new(claim));
    }
}

impl ClaimLookup for ClaimMap {
    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<IPAMClaim>> {
        self.claims.get(&(namespace.to_string(), name.to_string())).cloned()
    }
    fn vm_is_living(&self, namespace: &str, vm: &str) -> bool {
        self.living.contains(&(namespace.to_string(), vm.to_string()))
    }
    fn chassis_options(&self, pod: &Pod) -> Option<ChassisOptions> {
        super::vm::chassis_options(&self.pods, pod, self.migration)
    }
}

/// Which VM a pod is, for persistent IPs: a KubeVirt launcher pod is its VMI (name from the
/// `kubevirt.io/domain` annotation, UID from the `kubevirt.io/created-by` label); any other pod
/// is a VM of its own (its name and UID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmIdentity {
    pub name: String,
    pub uid: String,
}

impl VmIdentity {
    pub fn of(pod: &Pod, pod_ref: &PodRef) -> VmIdentity {
        match super::vm::launcher(pod) {
            Some(l) => VmIdentity { name: l.domain, uid: l.vmi_uid.unwrap_or_else(|| pod_ref.uid.clone()) },
            None => VmIdentity { name: pod_ref.name.clone(), uid: pod_ref.uid.clone() },
        }
    }
}

/// The IPAMClaim a desired port holds the addresses of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimBinding {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The claim's `status.ips` and `status.ownerPod` as last read (the runner writes them when
    /// they differ from the port's).
    pub status_ips: Vec<String>,
    pub owner_pod: Option<String>,
    /// No address yet (new port, no `ipRequests`, no `status.ips`): the first free address of
    /// the switch is picked when the transaction is planned ([`super::reconcile::allocate`]).
    pub pick: bool,
    /// The MAC the element asked for (`mac`), for a picked address.
    pub mac: Option<String>,
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
    /// A persistent-IP port (`claim:{ns}/{claim}`): the claim it belongs to. Such a port has no
    /// pod UID; it outlives the pod and goes with the claim.
    pub claim: Option<ClaimBinding>,
    /// The hand-off's `iface_id_ver` (the port's `options:iface-id-ver`) when it is not the pod UID.
    pub iface_id_ver: Option<String>,
    /// The hand-off's `vm` (`namespace/name`), for persistent-IP ports.
    pub vm: Option<String>,
    /// `options` keys the controller manages that must be absent (removed from an existing port):
    /// the live-migration keys of a VM's port when its placement does not want them.
    pub unset_options: Vec<String>,
    /// The security profile (an administrator's Port_Group offered to the pod's namespace) the
    /// port joins; it leaves every other offered Port_Group.
    pub security_profile: Option<String>,
    /// The MultiNetworkPolicy groups (`kt_...` Port_Groups: the groups of the policies that
    /// select the pod on this switch, and the switch's default-deny groups for the directions
    /// they isolate) a new port of this pod joins when it is made ([`PolicyGroups`]).
    pub policy_groups: Vec<String>,
}

/// Which MultiNetworkPolicy groups a new port joins at once (the policy runner implements it
/// over its policies; none by default).
pub trait PolicyGroups {
    /// The groups for a port of `pod` on logical switch `switch`.
    fn policy_groups(&self, pod: &Pod, switch: &str) -> Vec<String>;
}

/// No policies.
pub struct NoPolicies;

impl PolicyGroups for NoPolicies {
    fn policy_groups(&self, _: &Pod, _: &str) -> Vec<String> {
        Vec::new()
    }
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
    desired_with_claims(pod, nads, &NoClaims, switches)
}

/// [`desired`] with IPAMClaims: a selection naming an `ipam-claim-reference` (on a network whose
/// config allows persistent IPs) gets the claim's port `claim:{ns}/{claim}` (see
/// [`model::names::claim_port`]).
pub fn desired_with_claims(
    pod: &Pod,
    nads: &dyn NadLookup,
    claims: &dyn ClaimLookup,
    switches: &dyn SwitchLookup,
) -> Result<Vec<DesiredPort>, PodError> {
    if !pod_is_active(pod) {
        return Ok(Vec::new());
    }
    let pod_ref = PodRef::of(pod).ok_or(PodError::NoIdentity)?;
    let selections = annotation::from_pod(pod)?;
    let mut out = Vec::with_capacity(selections.len());
    for sel in &selections {
        if let Some(mut port) = desired_port(&pod_ref, sel, nads, switches)? {
            if let Some(claim) = &sel.ipam_claim_reference {
                claim_port(pod, &pod_ref, sel, claim, claims, switches, &mut port)?;
            }
            out.push(port);
        }
    }
    Ok(out)
}

/// Turns the pod's own port for `sel` into the port of IPAMClaim `claim` (see [`ClaimBinding`]).
fn claim_port(
    pod: &Pod,
    pod_ref: &PodRef,
    sel: &NetworkSelection,
    claim_name: &str,
    claims: &dyn ClaimLookup,
    switches: &dyn SwitchLookup,
    d: &mut DesiredPort,
) -> Result<(), PodError> {
    let ns = pod_ref.namespace.as_str();
    let refused = |problem: String| PodError::ClaimRefused {
        namespace: ns.to_string(),
        claim: claim_name.to_string(),
        interface: sel.interface.clone(),
        problem,
    };
    let claim = claims.claim(ns, claim_name).ok_or_else(|| PodError::ClaimNotFound {
        namespace: ns.to_string(),
        claim: claim_name.to_string(),
        interface: sel.interface.clone(),
    })?;
    if claim.metadata.deletion_timestamp.is_some() {
        return Err(refused("it is being deleted".into()));
    }
    if claim.uid_str().is_empty() {
        return Err(refused("it has no UID".into()));
    }
    if claim.spec.network != d.cni_network {
        return Err(refused(format!(
            "its spec.network is {:?}, but network {} is CNI network {:?}",
            claim.spec.network, d.network, d.cni_network
        )));
    }
    if !claim.spec.interface.is_empty() && claim.spec.interface != sel.interface {
        return Err(refused(format!("its spec.interface is {:?}", claim.spec.interface)));
    }
    let vm = VmIdentity::of(pod, pod_ref);
    let vm_key = format!("{ns}/{}", vm.name);
    let name = model::names::claim_port(ns, claim_name);
    let existing = switches.port_entry(&name).filter(|(_, ids)| ids.get(names::IPAMCLAIM_UID).map(String::as_str) == Some(claim.uid_str()));
    let spec = serde_json::to_string(&claim.spec).unwrap_or_default();
    if let Some((_, ids)) = &existing {
        if let Some(was) = ids.get(names::IPAMCLAIM_SPEC).filter(|was| **was != spec) {
            return Err(PodError::ClaimChanged { namespace: ns.to_string(), claim: claim_name.to_string(), was: was.clone(), now: spec });
        }
        if let Some(holder) = ids.get(names::VM).filter(|h| **h != vm_key) {
            let holder_vm = holder.split_once('/').map_or(holder.as_str(), |(_, n)| n);
            if claims.vm_is_living(ns, holder_vm) {
                return Err(PodError::ClaimInUse {
                    namespace: ns.to_string(),
                    claim: claim_name.to_string(),
                    interface: sel.interface.clone(),
                    holder: holder.clone(),
                    vm: vm_key,
                });
            }
        }
    }
    let mac = sel.mac.map(|m| m.to_string());
    let mut pick = false;
    d.addressing = match existing.as_ref().and_then(|(a, _)| a.first()) {
        // The port is the truth: its addresses survive every pod.
        Some(entry) => {
            let c = model::addressing::Claim::of_entry(entry);
            match c.mac {
                Some(m) if !c.ips.is_empty() => Addressing::Static { mac: m, ips: c.ips },
                _ => return Err(refused(format!("its port {name:?} has addresses {entry:?}, not \"MAC IP\""))),
            }
        }
        None => {
            let asked = if claim.spec.ip_requests.is_empty() { claim.status_ips() } else { claim.spec.ip_requests.as_slice() };
            let mut ips = Vec::new();
            for cidr in asked {
                let ip = cidr
                    .split('/')
                    .next()
                    .and_then(|a| a.parse::<IpAddr>().ok())
                    .ok_or_else(|| refused(format!("{cidr:?} is not an IP address")))?;
                if let (IpAddr::V4(v4), Some(s)) = (ip, d.subnet) {
                    if !s.contains(&v4) || (s.prefix_len() < 31 && (v4 == s.network() || v4 == s.broadcast())) {
                        return Err(PodError::IpOutsideSubnet {
                            network: d.network.clone(),
                            interface: sel.interface.clone(),
                            ip,
                            subnet: s,
                        });
                    }
                }
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
            if ips.is_empty() && d.subnet.is_none() {
                return Err(refused(format!("network {} has no subnet to take an address from", d.network)));
            }
            pick = ips.is_empty();
            let mac = match (&mac, ips.iter().find_map(|a| if let IpAddr::V4(v4) = a { Some(*v4) } else { None })) {
                (Some(m), _) => m.clone(),
                (None, Some(v4)) => addressing::mac_for_ip(v4),
                (None, None) if pick => String::new(),
                (None, None) => addressing::mac_for_name(&name),
            };
            Addressing::Static { mac, ips }
        }
    };
    d.prefixes.clear();
    for cidr in claim.spec.ip_requests.iter().chain(claim.status_ips()) {
        if let Ok(net) = cidr.parse::<ipnet::IpNet>() {
            d.prefixes.entry(net.addr()).or_insert(net.prefix_len());
        }
    }
    let mut ids = BTreeMap::new();
    ids.insert(names::OWNER.to_string(), names::OWNER_CONTROLLER.to_string());
    ids.insert(names::IPAMCLAIM.to_string(), format!("{ns}/{claim_name}"));
    ids.insert(names::IPAMCLAIM_UID.to_string(), claim.uid_str().to_string());
    ids.insert(names::IPAMCLAIM_SPEC.to_string(), spec);
    ids.insert(names::VM.to_string(), vm_key.clone());
    ids.insert(names::VMI_UID.to_string(), vm.uid.clone());
    ids.insert(names::NETWORK.to_string(), d.network.to_string());
    ids.insert(names::INTERFACE.to_string(), sel.interface.clone());
    d.external_ids = ids;
    d.options = BTreeMap::from([(model::names::IFACE_ID_VER.to_string(), vm.uid.clone())]);
    // Where the port is bound: the VM's node, both nodes during a live migration (the target
    // activated by the VM's RARP), or left alone when the launcher pods are ambiguous.
    if let Some(chassis) = claims.chassis_options(pod) {
        for (key, value) in [
            (names::REQUESTED_CHASSIS, chassis.requested_chassis),
            (names::ACTIVATION_STRATEGY, chassis.activation_strategy.map(str::to_string)),
        ] {
            match value {
                Some(v) => {
                    d.options.insert(key.to_string(), v);
                }
                None => d.unset_options.push(key.to_string()),
            }
        }
    }
    d.name = name;
    d.iface_id_ver = Some(vm.uid);
    d.vm = Some(vm_key);
    d.claim = Some(ClaimBinding {
        namespace: ns.to_string(),
        name: claim_name.to_string(),
        uid: claim.uid_str().to_string(),
        status_ips: claim.status_ips().to_vec(),
        owner_pod: claim.owner_pod().map(str::to_string),
        pick,
        mac,
    });
    Ok(())
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
        claim: None,
        iface_id_ver: None,
        vm: None,
        unset_options: Vec::new(),
        security_profile: sel.security_profile.clone(),
        policy_groups: Vec::new(),
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

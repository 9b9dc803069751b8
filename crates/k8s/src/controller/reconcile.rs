//! Desired ports vs. the Northbound replica -> the operations of one transaction per pod.
//!
//! [`plan`] is pure (snapshot in, operations out). It creates missing ports, fixes drifted ones
//! (addresses, DHCP options, external_ids, `options:iface-id-ver`, switch membership), adopts ports the CNI plugin made
//! for this pod (`owner=cni`), replaces (deletes and creates anew, in the same transaction)
//! kubetron's ports left by an earlier pod of the same name, removes the controller's ports of
//! this pod that are no longer wanted, and refuses (writing nothing) when a fixed address is
//! outside what the switch can give or held by another port, or the port name belongs to
//! someone else.
//!
//! Fixed addresses (static IPs, requested MACs) are checked with the rules of
//! [`model::addressing`] against the snapshot, and the check is carried by the transaction: each
//! plan lists [`Guard`]s (the switch's port set as read, ports still waiting for northd) that
//! go first in the transaction as `wait` operations, so a port added by anyone (the CNI plugin,
//! another pod of the batch, an administrator) between the read and the write fails the
//! transaction instead of letting two ports share an address; the controller then plans again.
//! To keep that true for changes too, a port whose fixed addresses change is created anew (same
//! name, new row) rather than updated in place, so every write that claims an address changes the
//! switch's port set. (An administrator editing `addresses` in place is not guarded against.)
//!
//! Every plan guards the switches it writes with a `wait` on their name, so a switch deleted
//! after the snapshot fails the whole transaction instead of silently dropping a port.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use model::addressing::{self, AddressError, Claim, Holder, PortHolding, SwitchRules};
use ovn::columns::map_datum;
use ovn::names;
use ovn::nb::NewPort;
use ovsdb::datum::{Atom, Datum, Row, Uuid};
use ovsdb::ops::{Condition, Mutation, Operation, WaitUntil, Where};

use super::desired::Addressing;
use super::desired::{DesiredPort, PodRef};
use super::error::PodError;
use super::nb::{NbView, LS, LSP};

/// What a plan changes, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub adopted: Vec<String>,
    pub removed: Vec<String>,
    /// Ports of an earlier pod of the same name, deleted and created anew for this pod.
    pub replaced: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.updated.is_empty() && self.adopted.is_empty() && self.removed.is_empty() && self.replaced.is_empty()
    }
}

/// The operations that bring one pod's ports to the desired state.
#[derive(Debug, Clone)]
pub struct PodPlan {
    pub pod: PodRef,
    pub ops: Vec<Operation>,
    pub changes: Changes,
    /// The switches whose addresses this plan's claims were checked against, as read. Their
    /// guards ([`Guard::ops`]) go first in the transaction that carries the plan.
    pub guards: Vec<Guard>,
}

/// What a claim of fixed addresses on a switch was checked against: the switch's port set and
/// its ports still waiting for northd's allocation. Sent as `wait` operations with the write, so
/// that the check and the write are one (a port added since fails the transaction; the
/// controller then re-reads and re-checks).
#[derive(Debug, Clone, PartialEq)]
pub struct Guard {
    pub switch: Uuid,
    pub ports: Vec<Uuid>,
    pub pending: Vec<Uuid>,
}

impl Guard {
    pub fn ops(&self) -> Vec<Operation> {
        let mut ops = vec![ovn::nb::guard_switch_ports(self.switch, &self.ports)];
        ops.extend(self.pending.iter().map(|p| ovn::nb::guard_unallocated(*p)));
        ops
    }
    /// Whether `view` shows the switch changed since the guard was taken (so a failed guard
    /// has become visible and a re-plan will see what changed).
    pub fn changed_in(&self, view: &NbView) -> bool {
        view.switch_ports(&self.switch) != self.ports
            || self.pending.iter().any(|p| view.port(p).is_none_or(|r| !ovn::columns::string_set(&r, "dynamic_addresses").is_empty()))
    }
}

/// The addresses held on the switches a batch touches, against one snapshot: what its ports
/// hold (read once per switch and batch) plus what earlier plans of the batch claimed.
#[derive(Debug, Default)]
pub struct Claims {
    switches: HashMap<Uuid, SwitchHeld>,
}

#[derive(Debug)]
struct SwitchHeld {
    rules: SwitchRules,
    ips: HashMap<IpAddr, Holder>,
    macs: HashMap<String, Holder>,
    guard: Guard,
}

impl Claims {
    pub fn new() -> Claims {
        Claims::default()
    }
    fn switch(&mut self, view: &NbView, switch: Uuid) -> &mut SwitchHeld {
        self.switches.entry(switch).or_insert_with(|| SwitchHeld::read(view, switch))
    }
}

impl SwitchHeld {
    fn read(view: &NbView, switch: Uuid) -> SwitchHeld {
        let ports = view.switch_ports(&switch);
        let mut held = SwitchHeld {
            rules: view.switch_rules(&switch),
            ips: HashMap::new(),
            macs: HashMap::new(),
            guard: Guard { switch, ports: ports.clone(), pending: Vec::new() },
        };
        for u in ports {
            let Some(row) = view.port(&u) else { continue };
            let addresses = row_strings(&row, "addresses");
            let dynamic = ovn::columns::optional_string(&row, "dynamic_addresses");
            if dynamic.is_none() && addresses.iter().any(|a| a.split_whitespace().any(|w| w == "dynamic")) {
                held.guard.pending.push(u);
            }
            let h = PortHolding::new(row.str("name"), &addresses, dynamic.as_deref(), &row_map(&row, "external_ids"));
            for ip in h.held.ips {
                held.ips.entry(ip).or_insert_with(|| h.holder.clone());
            }
            for mac in h.held.macs {
                held.macs.entry(mac).or_insert_with(|| h.holder.clone());
            }
        }
        held
    }
}

static NAMES: AtomicU64 = AtomicU64::new(0);

fn uuid_name() -> String {
    format!("kt_lsp{}", NAMES.fetch_add(1, Ordering::Relaxed))
}

/// Gives the persistent-IP ports of `want` that have no address yet ([`super::desired::ClaimBinding::pick`])
/// the first free address of their switch ([`model::addressing::first_free`]): not held by any
/// port of the snapshot, not claimed by an earlier plan of the batch (`claims`) or another port
/// of this pod, not the network's DHCP router. The plan that follows checks and guards it like
/// any fixed address, so two claims never get one IP.
pub fn allocate(view: &NbView, claims: &mut Claims, want: &mut [DesiredPort]) -> Result<(), PodError> {
    let mut picked: Vec<(Uuid, IpAddr)> = Vec::new();
    for d in want.iter_mut() {
        let Some(binding) = d.claim.as_mut().filter(|b| b.pick) else { continue };
        let router: Option<IpAddr> = d.dhcpv4_options.and_then(|u| view.dhcp_router(&u)).and_then(|r| r.parse().ok());
        let held = claims.switch(view, d.switch);
        let free = addressing::first_free(&held.rules, |ip| {
            let ip = IpAddr::V4(ip);
            held.ips.contains_key(&ip) || router == Some(ip) || picked.contains(&(d.switch, ip))
        });
        let Some(ip) = free else {
            return Err(PodError::ClaimNoAddress { network: d.network.clone(), claim: format!("{}/{}", binding.namespace, binding.name) });
        };
        picked.push((d.switch, IpAddr::V4(ip)));
        let mac = binding.mac.clone().unwrap_or_else(|| addressing::mac_for_ip(ip));
        binding.pick = false;
        d.addressing = Addressing::Static { mac, ips: vec![IpAddr::V4(ip)] };
    }
    Ok(())
}

/// Plans `pod`'s transaction. `claims` carries static IPs of earlier plans of the same batch.
pub fn plan(view: &NbView, pod: &PodRef, desired: &[DesiredPort], claims: &mut Claims) -> Result<PodPlan, PodError> {
    let mut ops = Vec::new();
    let mut changes = Changes::default();
    let mut guarded: HashSet<Uuid> = HashSet::new();
    // Ports whose addresses this plan writes (new ports, changed addresses): their fixed
    // addresses are checked below, after the ownership checks.
    let mut claiming: Vec<&DesiredPort> = Vec::new();

    for d in desired {
        if let Some(c) = d.claim.as_ref().filter(|c| c.pick) {
            // [`allocate`] was not run: never write a port without its address.
            return Err(PodError::ClaimNoAddress {
                network: d.network.clone(),
                claim: format!("{}/{} (not allocated)", c.namespace, c.name),
            });
        }
        let existing = match view.port_by_name(&d.name) {
            Some((uuid, row)) => match check_owner(pod, d, &row)? {
                Take::Replace => {
                    // A port of an earlier pod of this name (deleted, perhaps while the
                    // database was down): never shared across pod generations. It leaves its
                    // switch (and so the database) in the transaction that creates the new one.
                    tracing::info!(port = %d.name, pod = %pod, old_pod_uid = row.map_str("external_ids", names::POD_UID).unwrap_or(""),
                        "replacing the logical switch port of an earlier pod of this name");
                    ops.push(detach(uuid));
                    changes.replaced.push(d.name.clone());
                    None
                }
                take => Some((uuid, row, take == Take::Adopt)),
            },
            None => None,
        };
        match existing {
            None => {
                let new = NewPort {
                    name: d.name.clone(),
                    addresses: d.addresses(),
                    dhcpv4_options: d.dhcpv4_options,
                    options: d.options.clone(),
                    external_ids: d.external_ids.clone(),
                    ..Default::default()
                };
                guard_switch(&mut ops, &mut guarded, d);
                let row_name = uuid_name();
                ops.extend(ovn::nb::add_port(d.switch, &new, &row_name));
                profile_ops(view, pod, d, Datum::named_uuid(&row_name), None, &mut ops)?;
                policy_group_ops(view, d, Datum::named_uuid(&row_name), &mut ops);
                if !changes.replaced.contains(&d.name) {
                    changes.created.push(d.name.clone());
                }
                claiming.push(d);
            }
            Some((uuid, row, adopt)) => {
                if row_strings(&row, "addresses") != d.addresses() && !claim_of(d).is_empty() {
                    // Fixed addresses change: the port is created anew (same name, new row) in
                    // this transaction, so that the switch's port set changes and a concurrent
                    // claim of the same address, guarded on that set, fails (see the module doc).
                    ops.push(detach(uuid));
                    let new = NewPort {
                        name: d.name.clone(),
                        addresses: d.addresses(),
                        dhcpv4_options: d.dhcpv4_options,
                        options: merged_options(&row, d),
                        external_ids: merged_ids(&row, &d.external_ids),
                        ..Default::default()
                    };
                    guard_switch(&mut ops, &mut guarded, d);
                    let row_name = uuid_name();
                    ops.extend(ovn::nb::add_port(d.switch, &new, &row_name));
                    profile_ops(view, pod, d, Datum::named_uuid(&row_name), None, &mut ops)?;
                    policy_group_ops(view, d, Datum::named_uuid(&row_name), &mut ops);
                    claiming.push(d);
                    if adopt {
                        changes.adopted.push(d.name.clone());
                    } else {
                        changes.updated.push(d.name.clone());
                    }
                    continue;
                }
                let mut update = Row::new();
                if row_strings(&row, "addresses") != d.addresses() {
                    update.insert("addresses", Datum::set(d.addresses()));
                    claiming.push(d);
                } else if !view.switch_has_port(&d.switch, &uuid) {
                    // Moving to another switch: its addresses are new there.
                    claiming.push(d);
                }
                if row.uuid("dhcpv4_options") != d.dhcpv4_options {
                    update.insert("dhcpv4_options", Datum::optional(d.dhcpv4_options));
                }
                let ids = merged_ids(&row, &d.external_ids);
                if ids != row_map(&row, "external_ids") {
                    update.insert("external_ids", map_datum(&ids));
                }
                // `iface-id-ver` (the pod UID) is drift-corrected like the addresses: a port
                // adopted from the CNI plugin, or edited by hand, gets it back.
                let options = merged_options(&row, d);
                if options != row_map(&row, "options") {
                    update.insert("options", map_datum(&options));
                }
                let moved = !view.switch_has_port(&d.switch, &uuid);
                let before = ops.len();
                profile_ops(view, pod, d, Datum::uuid(uuid), Some(uuid), &mut ops)?;
                let touched = moved || !update.is_empty() || ops.len() > before;
                if !update.is_empty() {
                    ops.push(Operation::update(LSP, Where::uuid(uuid)).row(update));
                }
                if moved {
                    // Detach from wherever it is, attach to the right switch: the row survives
                    // because it is referenced again when the transaction commits.
                    ops.push(detach(uuid));
                    guard_switch(&mut ops, &mut guarded, d);
                    ops.push(Operation::mutate(LS, Where::uuid(d.switch)).mutation(Mutation::insert("ports", Datum::uuid(uuid))));
                }
                if adopt {
                    changes.adopted.push(d.name.clone());
                } else if touched {
                    changes.updated.push(d.name.clone());
                }
            }
        }
    }

    let wanted: HashSet<&str> = desired.iter().map(|d| d.name.as_str()).collect();
    for (uuid, row) in view.ports_of_pod(&pod.uid) {
        let ours = row.map_str("external_ids", names::OWNER) == Some(names::OWNER_CONTROLLER);
        if ours && !wanted.contains(row.str("name")) {
            ops.push(detach(uuid));
            changes.removed.push(row.str("name").to_string());
        }
    }
    let guards = check_addresses(view, pod, &claiming, claims)?;
    if !ops.is_empty() {
        ops.push(Operation::comment(format!("kubetron: pod {pod} ({})", pod.uid)));
    }
    Ok(PodPlan { pod: pod.clone(), ops, changes, guards })
}

/// Security profiles: the port `port` (`existing`: the row it is now, if it exists) joins the
/// offered Port_Group (`external_ids:kubetron.io/namespaces`) its interface asks for, and leaves
/// every other offered group it is in. Only its own membership changes: the administrator's
/// groups, ACLs and other ports are never written. A profile that does not exist or is not offered
/// to the pod's namespace refuses the pod.
fn profile_ops(
    view: &NbView,
    pod: &PodRef,
    d: &DesiredPort,
    port: Datum,
    existing: Option<Uuid>,
    ops: &mut Vec<Operation>,
) -> Result<(), PodError> {
    let mut found = false;
    for (pg, row) in view.snapshot().rows(super::nb::PG) {
        let Some(offered) = row.map_str("external_ids", names::EXPOSE_NAMESPACES) else { continue };
        let name = row.str("name");
        let member = existing.is_some_and(|u| row.get("ports").is_some_and(|p| p.contains(&Atom::Uuid(u))));
        if d.security_profile.as_deref() == Some(name) {
            found = true;
            if !crate::nadsync::Targets::parse(offered).includes(&pod.namespace) {
                return Err(PodError::SecurityProfileNotOffered {
                    interface: d.interface.clone(),
                    profile: name.to_string(),
                    namespace: pod.namespace.clone(),
                });
            }
            if !member {
                ops.push(Operation::mutate(super::nb::PG, Where::uuid(*pg)).mutation(Mutation::insert("ports", port.clone())));
            }
        } else if let (true, Some(u)) = (member, existing) {
            ops.push(Operation::mutate(super::nb::PG, Where::uuid(*pg)).mutation(Mutation::delete("ports", Datum::uuid(u))));
        }
    }
    match &d.security_profile {
        Some(profile) if !found => Err(PodError::SecurityProfileNotFound { interface: d.interface.clone(), profile: profile.clone() }),
        _ => Ok(()),
    }
}

/// A new port row `port` joins, in its own transaction, the MultiNetworkPolicy groups of
/// [`DesiredPort::policy_groups`] that exist (a policy's group and the switch's default-deny
/// groups): a pod a policy selects is isolated before it can send or receive anything. From
/// then on the groups are the policy runner's ([`super::policy_runner`]); a group that does not
/// exist yet is its business too.
fn policy_group_ops(view: &NbView, d: &DesiredPort, port: Datum, ops: &mut Vec<Operation>) {
    for name in &d.policy_groups {
        if let Some((pg, _)) = view.snapshot().find_one(super::nb::PG, "name", name.as_str()) {
            ops.push(Operation::mutate(super::nb::PG, Where::uuid(pg)).mutation(Mutation::insert("ports", port.clone())));
        }
    }
}

/// Removes port `port` from every switch that lists it (which deletes the port row).
pub fn detach(port: Uuid) -> Operation {
    Operation::mutate(LS, Where::includes("ports", Datum::uuid(port))).mutation(Mutation::delete("ports", Datum::uuid(port)))
}

fn guard_switch(ops: &mut Vec<Operation>, guarded: &mut HashSet<Uuid>, d: &DesiredPort) {
    if guarded.insert(d.switch) {
        ops.push(
            Operation::wait(LS)
                .filter(Condition::uuid(d.switch))
                .columns(["name"])
                .until(WaitUntil::Equal)
                .row(Row::new().with("name", d.switch_name.as_str()))
                .timeout_ms(0),
        );
    }
}

/// What the controller does with an existing port of the name a desired port has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Take {
    /// The controller's port of this very pod.
    Keep,
    /// Made by the CNI plugin for this pod before the controller got to it: take it over.
    Adopt,
    /// Made (by the controller or the plugin) for an earlier pod of the same namespace and
    /// name, with another UID: that pod is gone (names are unique), replace its port.
    Replace,
}

/// Whether and how the existing port `row` named `d.name` may be used for `pod`. A
/// persistent-IP port belongs to its claim, not to a pod: kept while the claim (by UID) is the
/// same, replaced when the claim was deleted and made again.
fn check_owner(pod: &PodRef, d: &DesiredPort, row: &Row) -> Result<Take, PodError> {
    let name = d.name.as_str();
    let owner = row.map_str("external_ids", names::OWNER);
    if let Some(c) = &d.claim {
        let same_claim = row.map_str("external_ids", names::IPAMCLAIM) == Some(format!("{}/{}", c.namespace, c.name).as_str());
        return match owner {
            Some(names::OWNER_CONTROLLER) if same_claim && row.map_str("external_ids", names::IPAMCLAIM_UID) == Some(c.uid.as_str()) => {
                Ok(Take::Keep)
            }
            Some(names::OWNER_CONTROLLER) if same_claim => Ok(Take::Replace),
            other => Err(PodError::PortNameTaken { port: name.to_string(), owner: other.unwrap_or("none").to_string() }),
        };
    }
    let uid = row.map_str("external_ids", names::POD_UID).filter(|u| !u.is_empty());
    let same_pod = row.map_str("external_ids", model::names::POD_NAMESPACE) == Some(pod.namespace.as_str())
        && row.map_str("external_ids", model::names::POD_NAME) == Some(pod.name.as_str());
    let this_uid = uid == Some(pod.uid.as_str());
    match owner {
        Some(o) if o == names::OWNER_CONTROLLER && this_uid => Ok(Take::Keep),
        Some(o) if o == names::OWNER_CNI && (this_uid || uid.is_none() && same_pod) => Ok(Take::Adopt),
        Some(o) if (o == names::OWNER_CONTROLLER || o == names::OWNER_CNI) && same_pod => Ok(Take::Replace),
        other => Err(PodError::PortNameTaken { port: name.to_string(), owner: other.unwrap_or("none").to_string() }),
    }
}

/// The port's external_ids with the controller's keys set to the desired values; other keys
/// (the CNI plugin's container ID, an administrator's notes) are kept.
fn merged_ids(row: &Row, desired: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    merged(row, "external_ids", desired)
}

/// The port's options with the controller's keys set and its unwanted managed keys removed
/// ([`DesiredPort::unset_options`]); other keys are kept.
fn merged_options(row: &Row, d: &DesiredPort) -> BTreeMap<String, String> {
    let mut map = merged(row, "options", &d.options);
    for k in &d.unset_options {
        map.remove(k);
    }
    map
}

/// The map column `col` of `row` with the desired keys set; other keys are kept.
fn merged(row: &Row, col: &str, desired: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut map = row_map(row, col);
    for (k, v) in desired {
        map.insert(k.clone(), v.clone());
    }
    map
}

fn row_map(row: &Row, col: &str) -> BTreeMap<String, String> {
    ovn::columns::string_map(row, col)
}

fn row_strings(row: &Row, col: &str) -> Vec<String> {
    ovn::columns::string_set(row, col)
}

/// The fixed addresses a desired port claims: static IPs and their MAC, a requested MAC. The
/// MAC kubetron generates for a MAC-only port from its name is not claimed (it is unique per
/// port name by construction, and claiming it would guard every such write).
fn claim_of(d: &DesiredPort) -> Claim {
    match &d.addressing {
        Addressing::Static { mac, ips } => Claim { mac: Some(mac.clone()), ips: ips.clone() },
        Addressing::Dynamic { mac } => Claim { mac: mac.clone(), ips: Vec::new() },
        Addressing::MacOnly { mac } if *mac == addressing::mac_for_name(&d.name) => Claim::default(),
        Addressing::MacOnly { mac } => Claim { mac: Some(mac.clone()), ips: Vec::new() },
    }
}

/// Refuses fixed addresses the switch cannot give (`exclude_ips`; the subnet is checked when
/// the desired ports are computed) or another port of the switch holds (static or allocated by
/// northd), or that an earlier plan of the batch or another interface of this pod claimed.
/// Records this pod's claims and returns the guards the transaction must carry.
fn check_addresses(view: &NbView, pod: &PodRef, ports: &[&DesiredPort], claims: &mut Claims) -> Result<Vec<Guard>, PodError> {
    let mut mine: Vec<(Uuid, Claim, &DesiredPort)> = Vec::new();
    let mut guards: Vec<Guard> = Vec::new();
    for d in ports {
        let claim = claim_of(d);
        if claim.is_empty() {
            continue;
        }
        let held = claims.switch(view, d.switch);
        for ip in &claim.ips {
            held.rules.check_ip(*ip).map_err(|e| address_error(d, e))?;
        }
        for ip in &claim.ips {
            if let Some(h) = held.ips.get(ip).filter(|h| h.port != d.name) {
                return Err(address_error(d, AddressError::IpInUse { ip: *ip, holder: h.clone() }));
            }
            if let Some((_, _, other)) = mine.iter().find(|(s, c, o)| *s == d.switch && o.name != d.name && c.ips.contains(ip)) {
                return Err(address_error(d, AddressError::IpInUse { ip: *ip, holder: holder_of(pod, other) }));
            }
        }
        if let Some(mac) = claim.mac.as_deref().map(|m| model::mac::normalize(m).unwrap_or_else(|| m.to_ascii_lowercase())) {
            if let Some(h) = held.macs.get(&mac).filter(|h| h.port != d.name) {
                return Err(address_error(d, AddressError::MacInUse { mac, holder: h.clone() }));
            }
            if let Some((_, _, other)) = mine
                .iter()
                .find(|(s, c, o)| *s == d.switch && o.name != d.name && c.mac.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(&mac)))
            {
                return Err(address_error(d, AddressError::MacInUse { mac, holder: holder_of(pod, other) }));
            }
        }
        if !guards.iter().any(|g| g.switch == d.switch) {
            guards.push(held.guard.clone());
        }
        mine.push((d.switch, claim, d));
    }
    for (switch, claim, d) in mine {
        let held = claims.switch(view, switch);
        let holder = holder_of(pod, d);
        for ip in claim.ips {
            held.ips.insert(ip, holder.clone());
        }
        if let Some(m) = claim.mac {
            held.macs.insert(model::mac::normalize(&m).unwrap_or(m), holder.clone());
        }
    }
    Ok(guards)
}

fn holder_of(pod: &PodRef, d: &DesiredPort) -> Holder {
    Holder { port: d.name.clone(), pod: Some(pod.to_string()) }
}

fn address_error(d: &DesiredPort, e: AddressError) -> PodError {
    let (network, interface) = (d.network.clone(), d.interface.clone());
    match e {
        AddressError::IpInUse { ip, holder } => {
            PodError::IpConflict { network: Box::new(network), interface, ip, holder: holder.port, holder_pod: holder.pod }
        }
        AddressError::MacInUse { mac, holder } => {
            PodError::MacConflict { network: Box::new(network), interface, mac, holder: holder.port, holder_pod: holder.pod }
        }
        AddressError::Excluded { ip, entry } => PodError::IpExcluded { network, interface, ip: IpAddr::V4(ip), entry },
        AddressError::OutsideSubnet { ip, subnet }
        | AddressError::NetworkAddress { ip, subnet }
        | AddressError::BroadcastAddress { ip, subnet } => PodError::IpOutsideSubnet { network, interface, ip: IpAddr::V4(ip), subnet },
    }
}

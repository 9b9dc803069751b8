//! Desired ports vs. the Northbound replica -> the operations of one transaction per pod.
//!
//! [`plan`] is pure (snapshot in, operations out). It creates missing ports, fixes drifted ones
//! (addresses, DHCP options, external_ids, switch membership), adopts ports the CNI plugin made
//! for this pod (`owner=cni`) and ports left by an earlier pod of the same name, removes the
//! controller's ports of this pod that are no longer wanted, and refuses (writing nothing) when
//! a static IP is taken or the port name belongs to someone else.
//!
//! Every plan guards the switches it writes with a `wait` on their name, so a switch deleted
//! after the snapshot fails the whole transaction instead of silently dropping a port.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use ovn::columns::map_datum;
use ovn::names;
use ovn::nb::NewPort;
use ovsdb::datum::{Datum, Row, Uuid};
use ovsdb::ops::{Condition, Mutation, Operation, WaitUntil};

use super::desired::{DesiredPort, PodRef};
use super::error::PodError;
use super::nb::{ips_in, NbView, LS, LSP};

/// What a plan changes, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub adopted: Vec<String>,
    pub removed: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.updated.is_empty() && self.adopted.is_empty() && self.removed.is_empty()
    }
}

/// The operations that bring one pod's ports to the desired state.
#[derive(Debug, Clone)]
pub struct PodPlan {
    pub pod: PodRef,
    pub ops: Vec<Operation>,
    pub changes: Changes,
}

/// Static IPs claimed by plans not yet visible in the snapshot (a batch planned against one
/// snapshot): `(switch, ip) -> port`.
pub type Claims = HashMap<(Uuid, IpAddr), String>;

static NAMES: AtomicU64 = AtomicU64::new(0);

fn uuid_name() -> String {
    format!("kt_lsp{}", NAMES.fetch_add(1, Ordering::Relaxed))
}

/// Plans `pod`'s transaction. `claims` carries static IPs of earlier plans of the same batch.
pub fn plan(view: &NbView, pod: &PodRef, desired: &[DesiredPort], claims: &mut Claims) -> Result<PodPlan, PodError> {
    let mut ops = Vec::new();
    let mut changes = Changes::default();
    let mut guarded: HashSet<Uuid> = HashSet::new();
    check_static_ips(view, desired, claims)?;

    for d in desired {
        match view.port_by_name(&d.name) {
            None => {
                let new = NewPort {
                    name: d.name.clone(),
                    addresses: d.addresses(),
                    dhcpv4_options: d.dhcpv4_options,
                    external_ids: d.external_ids.clone(),
                    ..Default::default()
                };
                guard_switch(&mut ops, &mut guarded, d);
                ops.extend(ovn::nb::add_port(d.switch, &new, &uuid_name()));
                changes.created.push(d.name.clone());
            }
            Some((uuid, row)) => {
                let adopt = check_owner(pod, &d.name, &row)?;
                let mut update = Row::new();
                if row_strings(&row, "addresses") != d.addresses() {
                    update.insert("addresses", Datum::set(d.addresses()));
                }
                if row.uuid("dhcpv4_options") != d.dhcpv4_options {
                    update.insert("dhcpv4_options", Datum::optional(d.dhcpv4_options));
                }
                let ids = merged_ids(&row, &d.external_ids);
                if ids != row_map(&row, "external_ids") {
                    update.insert("external_ids", map_datum(&ids));
                }
                let moved = !view.switch_has_port(&d.switch, &uuid);
                let touched = moved || !update.is_empty();
                if !update.is_empty() {
                    ops.push(Operation::update(LSP).filter(Condition::uuid(uuid)).row(update));
                }
                if moved {
                    // Detach from wherever it is, attach to the right switch: the row survives
                    // because it is referenced again when the transaction commits.
                    ops.push(detach(uuid));
                    guard_switch(&mut ops, &mut guarded, d);
                    ops.push(
                        Operation::mutate(LS).filter(Condition::uuid(d.switch)).mutation(Mutation::insert("ports", Datum::uuid(uuid))),
                    );
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
    if !ops.is_empty() {
        ops.push(Operation::comment(format!("kubetron: pod {pod} ({})", pod.uid)));
    }
    Ok(PodPlan { pod: pod.clone(), ops, changes })
}

/// Removes port `port` from every switch that lists it (which deletes the port row).
pub fn detach(port: Uuid) -> Operation {
    Operation::mutate(LS).filter(Condition::includes("ports", Datum::uuid(port))).mutation(Mutation::delete("ports", Datum::uuid(port)))
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

/// Whether the existing port `row` named `name` may be taken over for `pod`; true when this is
/// an adoption (the port was not yet the controller's port of this very pod).
fn check_owner(pod: &PodRef, name: &str, row: &Row) -> Result<bool, PodError> {
    let owner = row.map_str("external_ids", names::OWNER);
    let uid = row.map_str("external_ids", names::POD_UID);
    let same_pod = row.map_str("external_ids", names::POD_NAMESPACE) == Some(pod.namespace.as_str())
        && row.map_str("external_ids", names::POD_NAME) == Some(pod.name.as_str());
    match owner {
        Some(o) if o == names::OWNER_CONTROLLER && uid == Some(pod.uid.as_str()) => Ok(false),
        // A port of an earlier pod with the same namespace and name: that pod is gone (names
        // are unique), so its port is ours to reuse.
        Some(o) if o == names::OWNER_CONTROLLER && same_pod => Ok(true),
        // Made by the CNI plugin for this pod before the controller got to it.
        Some(o) if o == names::OWNER_CNI && (uid == Some(pod.uid.as_str()) || uid.is_none() && same_pod) => Ok(true),
        other => Err(PodError::PortNameTaken { port: name.to_string(), owner: other.unwrap_or("none").to_string() }),
    }
}

/// The port's external_ids with the controller's keys set to the desired values; other keys
/// (the CNI plugin's container ID, an administrator's notes) are kept.
fn merged_ids(row: &Row, desired: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut ids = row_map(row, "external_ids");
    for (k, v) in desired {
        ids.insert(k.clone(), v.clone());
    }
    ids
}

fn row_map(row: &Row, col: &str) -> BTreeMap<String, String> {
    ovn::columns::string_map(row, col)
}

fn row_strings(row: &Row, col: &str) -> Vec<String> {
    ovn::columns::string_set(row, col)
}

/// Refuses static IPs already held by another port on the same switch (its static addresses or
/// what northd allocated), or claimed earlier in the batch. Records this pod's claims.
fn check_static_ips(view: &NbView, desired: &[DesiredPort], claims: &mut Claims) -> Result<(), PodError> {
    let mut mine: Vec<(Uuid, IpAddr, &DesiredPort)> = Vec::new();
    for d in desired {
        for ip in d.static_ips() {
            if let Some((_, _, other)) = mine.iter().find(|(s, i, _)| *s == d.switch && i == ip) {
                return Err(conflict(d, *ip, &other.name));
            }
            mine.push((d.switch, *ip, d));
        }
    }
    if mine.is_empty() {
        return Ok(());
    }
    for (switch, ip, d) in &mine {
        if let Some(holder) = claims.get(&(*switch, *ip)).filter(|h| **h != d.name) {
            return Err(conflict(d, *ip, holder));
        }
    }
    // One pass over each switch's ports.
    let switches: HashSet<Uuid> = mine.iter().map(|(s, _, _)| *s).collect();
    for switch in switches {
        for port in view.switch_ports(&switch) {
            let Some(row) = view.port(&port) else { continue };
            let pname = row.str("name");
            let mut held = row_strings(&row, "addresses");
            held.extend(row_strings(&row, "dynamic_addresses"));
            for entry in &held {
                for ip in ips_in(entry) {
                    if let Some((_, _, d)) = mine.iter().find(|(s, i, d)| *s == switch && *i == ip && d.name != pname) {
                        return Err(conflict(d, ip, pname));
                    }
                }
            }
        }
    }
    for (switch, ip, d) in mine {
        claims.insert((switch, ip), d.name.clone());
    }
    Ok(())
}

fn conflict(d: &DesiredPort, ip: IpAddr, holder: &str) -> PodError {
    PodError::IpConflict { network: d.network.clone(), interface: d.interface.clone(), ip, holder: holder.to_string() }
}

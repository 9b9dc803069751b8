//! MultiNetworkPolicies -> the Port_Group, Address_Set and ACL rows that enforce them
//! ([`policy::translate`]), planned against the Northbound replica into one transaction.
//!
//! Rows are matched by name (groups, sets) and by identity (`kubetron.io/id`, ACLs), so a changed
//! match, port or address list is an update of the existing row; rows of a policy no longer wanted
//! (a switch left its `policy-for`, the policy is gone) are deleted in the same transaction. The
//! default-deny groups of every switch a plan touches are recomputed from all policy groups on
//! that switch (what the replica holds, overridden by this plan), and their port sets are written
//! under a `wait` on the set as read, so two writers cannot lose each other's ports. A row of the
//! same name that kubetron does not own is never taken over: the plan fails instead.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use ovn::columns::{map_datum, string_map, string_set, uuid_set};
use ovn::names;
use ovsdb::datum::{Atom, Datum, Row, Uuid};
use ovsdb::ops::{Condition, Mutation, Operation, WaitUntil, Where};
use ovsdb::replica::Snapshot;
use policy::{deny_rows, translate, AclRow, AddressSetRow, Direction, Mode, PolicyRef, PolicySpec, PortGroupRow, World};

use super::nb::{NbView, ACL, AS, PG};

/// `external_ids` key on a policy's Port_Group: the directions it isolates (`ingress`, `egress`,
/// comma-separated), which the switch's default-deny groups are computed from.
pub const ISOLATES: &str = "kubetron.io/isolates";

/// One policy to plan: its spec (`None`: the policy is gone, remove its rows) and the switches
/// its `policy-for` resolves to.
#[derive(Clone, Copy, Debug)]
pub struct PolicyItem<'a> {
    pub policy: PolicyRef<'a>,
    pub spec: Option<&'a PolicySpec>,
    pub switches: &'a [String],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyPlanError {
    #[error("{table} {name:?} exists and kubetron does not own it for {owner}; rename or delete it")]
    NameTaken { table: &'static str, name: String, owner: String },
}

/// The operations of one plan (empty: nothing to change).
#[derive(Debug, Default)]
pub struct PolicyPlan {
    pub ops: Vec<Operation>,
}

impl PolicyPlan {
    /// The operations that write (the rest are the guards they depend on).
    pub fn writes(&self) -> usize {
        self.ops.iter().filter(|op| !matches!(op, Operation::Wait { .. })).count()
    }
    /// Whether the plan writes nothing (guards alone need not be sent).
    pub fn is_noop(&self) -> bool {
        self.writes() == 0
    }
    /// Whether `snap` shows this plan written. A transaction reaches the replica whole, so the
    /// first of its rows that can tell (a group or set inserted, a row updated or deleted) does.
    pub fn shown_in(&self, snap: &Snapshot) -> bool {
        self.ops.iter().find_map(|op| shows(snap, op)).unwrap_or(true)
    }
}

fn target(w: &Where) -> Option<Uuid> {
    match w.conditions() {
        [Condition::Compare { column, value, .. }] if column == "_uuid" => value.as_uuid(),
        _ => None,
    }
}

fn shows(snap: &Snapshot, op: &Operation) -> Option<bool> {
    match op {
        Operation::Insert { table, row, .. } if table != ACL => Some(snap.find_one(table, "name", row.get("name")?.as_str()?).is_some()),
        Operation::Update { table, conditions, row } => {
            let have = snap.get(table, &target(conditions)?);
            Some(have.is_some_and(|have| row.iter().all(|(c, v)| have.get(c) == Some(v))))
        }
        Operation::Delete { table, conditions } => Some(snap.get(table, &target(conditions)?).is_none()),
        _ => None,
    }
}

/// A policy group as the deny computation sees it.
struct GroupState {
    switch: String,
    ports: BTreeSet<Uuid>,
    ingress: bool,
    egress: bool,
}

struct Planner<'v> {
    view: &'v NbView,
    ops: Vec<Operation>,
    named: usize,
}

/// Plans `items` against `view`, peers and selected pods taken from `world`.
pub fn plan_policies(view: &NbView, world: &World, items: &[PolicyItem], mode: Mode) -> Result<PolicyPlan, PolicyPlanError> {
    let snap = view.snapshot();
    let mut p = Planner { view, ops: Vec::new(), named: 0 };
    // Group name -> its state after this plan (`None`: deleted).
    let mut overrides: HashMap<String, Option<GroupState>> = HashMap::new();
    let mut touched: BTreeSet<String> = BTreeSet::new();
    for item in items {
        let key = item.policy.key();
        let mut groups = BTreeSet::new();
        let mut sets = BTreeSet::new();
        if let Some(spec) = item.spec {
            let (ingress, egress) = (spec.isolates(Direction::Ingress), spec.isolates(Direction::Egress));
            let isolates: Vec<&str> = [(ingress, "ingress"), (egress, "egress")].iter().filter(|x| x.0).map(|x| x.1).collect();
            for switch in item.switches {
                let rows = translate(item.policy, spec, switch, world, mode);
                for s in &rows.address_sets {
                    p.sync_set(s, &key)?;
                    sets.insert(s.name.clone());
                }
                let mut group = rows.port_group;
                group.external_ids.insert(ISOLATES.to_string(), isolates.join(","));
                let ports: BTreeSet<Uuid> = group.ports.iter().filter_map(|n| view.port_by_name(n).map(|(u, _)| u)).collect();
                p.sync_group(&group, &ports, Owner::Policy(&key), false)?;
                groups.insert(group.name.clone());
                touched.insert(switch.clone());
                overrides.insert(group.name, Some(GroupState { switch: switch.clone(), ports, ingress, egress }));
            }
        }
        for (uuid, row) in snap.find_map(PG, "external_ids", names::POLICY, key.as_str()) {
            if !groups.contains(row.str("name")) && owned_by_policy(&row, &key) {
                p.ops.push(Operation::delete(PG, Where::uuid(uuid)));
                overrides.insert(row.str("name").to_string(), None);
                touched.extend(row.map_str("external_ids", names::LOGICAL_SWITCH).map(str::to_string));
            }
        }
        for (uuid, row) in snap.find_map(AS, "external_ids", names::POLICY, key.as_str()) {
            if !sets.contains(row.str("name")) && owned_by_policy(&row, &key) {
                p.ops.push(Operation::delete(AS, Where::uuid(uuid)));
            }
        }
    }
    for switch in touched {
        p.sync_deny(&switch, &overrides)?;
    }
    Ok(PolicyPlan { ops: p.ops })
}

/// Whom a group must belong to for the plan to write it.
#[derive(Clone, Copy)]
enum Owner<'a> {
    Policy(&'a str),
    Deny(&'a str),
}

fn owned_by_policy(row: &Row, key: &str) -> bool {
    row.map_str("external_ids", names::OWNER) == Some(names::OWNER_CONTROLLER) && row.map_str("external_ids", names::POLICY) == Some(key)
}

impl Owner<'_> {
    fn owns(&self, row: &Row) -> bool {
        match self {
            Owner::Policy(key) => owned_by_policy(row, key),
            Owner::Deny(switch) => {
                row.map_str("external_ids", names::OWNER) == Some(names::OWNER_CONTROLLER)
                    && row.map_str("external_ids", names::POLICY_KIND) == Some("deny")
                    && row.map_str("external_ids", names::LOGICAL_SWITCH) == Some(switch)
            }
        }
    }
    fn describe(&self) -> String {
        match self {
            Owner::Policy(key) => format!("policy {key}"),
            Owner::Deny(switch) => format!("the default-deny of switch {switch}"),
        }
    }
}

fn acl_row(a: &AclRow) -> Row {
    Row::new()
        .with("name", a.name.as_str())
        .with("priority", a.priority)
        .with("direction", a.direction)
        .with("match", a.matches.as_str())
        .with("action", a.action)
        .with("external_ids", map_datum(&a.external_ids))
}

fn acl_differs(row: &Row, a: &AclRow) -> bool {
    row.get("name").and_then(Datum::as_str) != Some(a.name.as_str())
        || row.i64("priority") != Some(a.priority)
        || row.str("direction") != a.direction
        || row.str("match") != a.matches
        || row.str("action") != a.action
        || string_map(row, "external_ids") != a.external_ids
}

impl Planner<'_> {
    fn next_name(&mut self, prefix: &str) -> String {
        self.named += 1;
        format!("{prefix}{}", self.named)
    }

    fn sync_set(&mut self, want: &AddressSetRow, key: &str) -> Result<(), PolicyPlanError> {
        match self.view.snapshot().find_one(AS, "name", want.name.as_str()) {
            None => self.ops.push(
                Operation::insert(AS).row(
                    Row::new()
                        .with("name", want.name.as_str())
                        .with("addresses", Datum::set(want.addresses.iter().map(String::as_str)))
                        .with("external_ids", map_datum(&want.external_ids)),
                ),
            ),
            Some((_, row)) if !owned_by_policy(&row, key) => {
                return Err(PolicyPlanError::NameTaken { table: AS, name: want.name.clone(), owner: format!("policy {key}") })
            }
            Some((uuid, row)) => {
                let mut update = Row::new();
                if string_set(&row, "addresses").into_iter().collect::<BTreeSet<_>>() != want.addresses {
                    update.insert("addresses", Datum::set(want.addresses.iter().map(String::as_str)));
                }
                if string_map(&row, "external_ids") != want.external_ids {
                    update.insert("external_ids", map_datum(&want.external_ids));
                }
                if !update.is_empty() {
                    self.ops.push(Operation::update(AS, Where::uuid(uuid)).row(update));
                }
            }
        }
        Ok(())
    }

    /// Makes group `want` hold `ports` and exactly its ACLs. With `guard`, a port set it changes
    /// is written only if it is still what was read.
    fn sync_group(&mut self, want: &PortGroupRow, ports: &BTreeSet<Uuid>, owner: Owner, guard: bool) -> Result<(), PolicyPlanError> {
        let snap = self.view.snapshot();
        let Some((uuid, row)) = snap.find_one(PG, "name", want.name.as_str()) else {
            let mut acls = Vec::new();
            for a in &want.acls {
                let name = self.next_name("acl");
                self.ops.push(Operation::insert(ACL).row(acl_row(a)).uuid_name(&name));
                acls.push(Atom::NamedUuid(name));
            }
            self.ops.push(
                Operation::insert(PG).row(
                    Row::new()
                        .with("name", want.name.as_str())
                        .with("ports", Datum::set(ports.iter().copied()))
                        .with("acls", Datum::set(acls))
                        .with("external_ids", map_datum(&want.external_ids)),
                ),
            );
            return Ok(());
        };
        if !owner.owns(&row) {
            return Err(PolicyPlanError::NameTaken { table: PG, name: want.name.clone(), owner: owner.describe() });
        }
        let have: BTreeSet<Uuid> = uuid_set(&row, "ports").into_iter().collect();
        let mut update = Row::new();
        // With `guard`, the write (or the decision not to write) holds only if the set is still
        // what was read. A port set written whole is always guarded: the pod side adds a new port
        // to its groups meanwhile ([`super::reconcile`]), and that must not be overwritten.
        if guard || have != *ports {
            self.ops.push(ovn::nb::guard_refs(PG, uuid, "ports", have.iter().copied()));
        }
        if have != *ports {
            update.insert("ports", Datum::set(ports.iter().copied()));
        }
        if string_map(&row, "external_ids") != want.external_ids {
            update.insert("external_ids", map_datum(&want.external_ids));
        }
        if !update.is_empty() {
            self.ops.push(Operation::update(PG, Where::uuid(uuid)).row(update));
        }
        // ACLs by identity: update in place, add the missing, drop the rest.
        let mut existing: BTreeMap<String, (Uuid, Arc<Row>)> = BTreeMap::new();
        let mut drop = Vec::new();
        for acl in uuid_set(&row, "acls") {
            match snap.get(ACL, &acl) {
                Some(r) => match r.map_str("external_ids", names::ROW_ID) {
                    Some(id) if !existing.contains_key(id) => {
                        existing.insert(id.to_string(), (acl, r.clone()));
                    }
                    _ => drop.push(acl),
                },
                None => drop.push(acl),
            }
        }
        let mut add = Vec::new();
        for a in &want.acls {
            match existing.remove(&a.id) {
                Some((acl, r)) if acl_differs(&r, a) => self.ops.push(Operation::update(ACL, Where::uuid(acl)).row(acl_row(a))),
                Some(_) => {}
                None => {
                    let name = self.next_name("acl");
                    self.ops.push(Operation::insert(ACL).row(acl_row(a)).uuid_name(&name));
                    add.push(Atom::NamedUuid(name));
                }
            }
        }
        drop.extend(existing.into_values().map(|(u, _)| u));
        if !add.is_empty() {
            self.ops.push(Operation::mutate(PG, Where::uuid(uuid)).mutation(Mutation::insert("acls", Datum::set(add))));
        }
        if !drop.is_empty() {
            self.ops.push(Operation::mutate(PG, Where::uuid(uuid)).mutation(Mutation::delete("acls", Datum::set(drop))));
        }
        Ok(())
    }

    /// The default-deny groups of `switch`: the union of the ports its policy groups isolate, or
    /// no groups at all once no policy is left on the switch.
    fn sync_deny(&mut self, switch: &str, overrides: &HashMap<String, Option<GroupState>>) -> Result<(), PolicyPlanError> {
        let snap = self.view.snapshot();
        let (mut ingress, mut egress) = (BTreeSet::new(), BTreeSet::new());
        let mut any = false;
        let mut seen = BTreeSet::new();
        let mut add = |g: &GroupState| {
            any = true;
            if g.ingress {
                ingress.extend(g.ports.iter().copied());
            }
            if g.egress {
                egress.extend(g.ports.iter().copied());
            }
        };
        for (_, row) in snap.find_map(PG, "external_ids", names::LOGICAL_SWITCH, switch) {
            if row.map_str("external_ids", names::POLICY_KIND) != Some("policy") {
                continue;
            }
            let name = row.str("name");
            seen.insert(name.to_string());
            match overrides.get(name) {
                Some(Some(g)) => add(g),
                Some(None) => {}
                None => {
                    let isolates = row.map_str("external_ids", ISOLATES).unwrap_or("");
                    add(&GroupState {
                        switch: switch.to_string(),
                        ports: uuid_set(&row, "ports").into_iter().collect(),
                        ingress: isolates.split(',').any(|d| d == "ingress"),
                        egress: isolates.split(',').any(|d| d == "egress"),
                    })
                }
            }
        }
        for (name, g) in overrides {
            if let Some(g) = g.as_ref().filter(|g| g.switch == switch && !seen.contains(name)) {
                add(g);
            }
        }
        let groups = deny_rows(switch, BTreeSet::new(), BTreeSet::new());
        if !any {
            // Only if no policy group appeared on the switch since the view (one made by a
            // concurrent writer would be left without its isolation).
            let mut ids = BTreeMap::new();
            ids.insert(names::LOGICAL_SWITCH.to_string(), switch.to_string());
            ids.insert(names::POLICY_KIND.to_string(), "policy".to_string());
            self.ops.push(
                Operation::wait(PG)
                    .filter(Condition::includes("external_ids", map_datum(&ids)))
                    .columns(["name"])
                    .until(WaitUntil::Equal)
                    .timeout_ms(0),
            );
        }
        for (group, ports) in groups.iter().zip([ingress, egress]) {
            if any {
                self.sync_group(group, &ports, Owner::Deny(switch), true)?;
            } else if let Some((uuid, row)) = snap.find_one(PG, "name", group.name.as_str()) {
                if Owner::Deny(switch).owns(&row) {
                    self.ops.push(Operation::delete(PG, Where::uuid(uuid)));
                }
            }
        }
        Ok(())
    }
}

/// The policies (`namespace/name`) whose groups or sets the replica holds but that are not in
/// `live`: plan them with `spec: None` to remove their rows (a policy deleted while no controller
/// was watching). A live policy's rows are the live reconcile's business (a policy made again
/// under the same name gets its new UID written there).
pub fn orphaned_policies(view: &NbView, live: &std::collections::HashSet<String>) -> BTreeSet<String> {
    let snap = view.snapshot();
    let mut out = BTreeSet::new();
    for table in [PG, AS] {
        for (_, row) in snap.rows(table) {
            if row.map_str("external_ids", names::OWNER) != Some(names::OWNER_CONTROLLER) {
                continue;
            }
            if let Some(key) = row.map_str("external_ids", names::POLICY).filter(|k| !live.contains(*k)) {
                out.insert(key.to_string());
            }
        }
    }
    out
}

//! The OVN Northbound tables kubetron reads and writes (ovn-nb(5)), and builders of the operations
//! kubetron sends on them.

use std::collections::BTreeMap;

use ovsdb::datum::{Datum, Row, Uuid};
use ovsdb::ops::{Condition, Mutation, Operation, WaitUntil, Where};

use crate::columns::{map_datum, model, set_datum, ColumnKind as K};

/// The database name of the OVN Northbound schema.
pub const DB: &str = "OVN_Northbound";

model! {
    /// `NB_Global`: the one row of global configuration.
    pub struct NbGlobal in "NB_Global" {
        name: String = "name" as K::String,
        nb_cfg: i64 = "nb_cfg" as K::Integer,
        sb_cfg: i64 = "sb_cfg" as K::Integer,
        hv_cfg: i64 = "hv_cfg" as K::Integer,
        options: BTreeMap<String, String> = "options" as K::StringMap,
        external_ids: BTreeMap<String, String> = "external_ids" as K::StringMap,
    }
}

model! {
    /// `Logical_Switch`: a network.
    pub struct LogicalSwitch in "Logical_Switch" {
        name: String = "name" as K::String,
        ports: Vec<Uuid> = "ports" as K::RefSet("Logical_Switch_Port"),
        acls: Vec<Uuid> = "acls" as K::RefSet("ACL"),
        load_balancer: Vec<Uuid> = "load_balancer" as K::RefSet("Load_Balancer"),
        /// `subnet`, `exclude_ips`, `mac_only`, `ipv6_prefix`...
        other_config: BTreeMap<String, String> = "other_config" as K::StringMap,
        external_ids: BTreeMap<String, String> = "external_ids" as K::StringMap,
    }
}

model! {
    /// `Logical_Switch_Port`: one attachment to a network.
    pub struct LogicalSwitchPort in "Logical_Switch_Port" {
        name: String = "name" as K::String,
        /// `""` for a VIF, `localnet`, `router`, ...
        kind: String = "type" as K::String,
        options: BTreeMap<String, String> = "options" as K::StringMap,
        /// `"MAC IP..."`, `"dynamic"`, `"MAC dynamic"`, `"unknown"`, `"router"`.
        addresses: Vec<String> = "addresses" as K::StringSet,
        /// What northd allocated for a `dynamic` address: `"MAC IP"`.
        dynamic_addresses: Option<String> = "dynamic_addresses" as K::OptionalString,
        port_security: Vec<String> = "port_security" as K::StringSet,
        tag_request: Option<i64> = "tag_request" as K::OptionalInteger,
        tag: Option<i64> = "tag" as K::OptionalInteger,
        up: Option<bool> = "up" as K::OptionalBoolean,
        enabled: Option<bool> = "enabled" as K::OptionalBoolean,
        dhcpv4_options: Option<Uuid> = "dhcpv4_options" as K::OptionalRef("DHCP_Options"),
        dhcpv6_options: Option<Uuid> = "dhcpv6_options" as K::OptionalRef("DHCP_Options"),
        external_ids: BTreeMap<String, String> = "external_ids" as K::StringMap,
    }
}

model! {
    /// `DHCP_Options`: what OVN's native DHCP server hands out on a subnet.
    pub struct DhcpOptions in "DHCP_Options" {
        cidr: String = "cidr" as K::String,
        options: BTreeMap<String, String> = "options" as K::StringMap,
        external_ids: BTreeMap<String, String> = "external_ids" as K::StringMap,
    }
}

model! {
    /// `ACL`: one access-control rule of a switch or port group.
    pub struct Acl in "ACL" {
        name: Option<String> = "name" as K::OptionalString,
        priority: i64 = "priority" as K::Integer,
        direction: String = "direction" as K::String,
        matches: String = "match" as K::String,
        action: String = "action" as K::String,
        log: bool = "log" as K::Boolean,
        options: BTreeMap<String, String> = "options" as K::StringMap,
        external_ids: BTreeMap<String, String> = "external_ids" as K::StringMap,
    }
}

model! {
    /// `Port_Group`: a named group of logical switch ports.
    pub struct PortGroup in "Port_Group" {
        name: String = "name" as K::String,
        ports: Vec<Uuid> = "ports" as K::RefSet("Logical_Switch_Port"),
        acls: Vec<Uuid> = "acls" as K::RefSet("ACL"),
        external_ids: BTreeMap<String, String> = "external_ids" as K::StringMap,
    }
}

model! {
    /// `Address_Set`: a named set of addresses usable in ACL matches.
    pub struct AddressSet in "Address_Set" {
        name: String = "name" as K::String,
        addresses: Vec<String> = "addresses" as K::StringSet,
        external_ids: BTreeMap<String, String> = "external_ids" as K::StringMap,
    }
}

model! {
    /// `Logical_Router`.
    pub struct LogicalRouter in "Logical_Router" {
        name: String = "name" as K::String,
        ports: Vec<Uuid> = "ports" as K::RefSet("Logical_Router_Port"),
        enabled: Option<bool> = "enabled" as K::OptionalBoolean,
        options: BTreeMap<String, String> = "options" as K::StringMap,
        external_ids: BTreeMap<String, String> = "external_ids" as K::StringMap,
    }
}

model! {
    /// `Logical_Router_Port`.
    pub struct LogicalRouterPort in "Logical_Router_Port" {
        name: String = "name" as K::String,
        mac: String = "mac" as K::String,
        networks: Vec<String> = "networks" as K::StringSet,
        peer: Option<String> = "peer" as K::OptionalString,
        enabled: Option<bool> = "enabled" as K::OptionalBoolean,
        options: BTreeMap<String, String> = "options" as K::StringMap,
        external_ids: BTreeMap<String, String> = "external_ids" as K::StringMap,
    }
}

model! {
    /// `Load_Balancer`.
    pub struct LoadBalancer in "Load_Balancer" {
        name: String = "name" as K::String,
        vips: BTreeMap<String, String> = "vips" as K::StringMap,
        protocol: Option<String> = "protocol" as K::OptionalString,
        options: BTreeMap<String, String> = "options" as K::StringMap,
        external_ids: BTreeMap<String, String> = "external_ids" as K::StringMap,
    }
}

impl LogicalSwitch {
    /// The switch's IPv4 subnet (`other_config:subnet`), if it has one.
    pub fn subnet(&self) -> Option<ipnet::Ipv4Net> {
        self.other_config.get("subnet").and_then(|s| s.parse().ok())
    }
    /// Whether the switch has a `localnet` port, which makes it a physical network. The caller
    /// passes the switch's ports.
    pub fn is_physical<'a>(ports: impl IntoIterator<Item = &'a LogicalSwitchPort>) -> bool {
        ports.into_iter().any(|p| p.kind == "localnet")
    }
}

impl LogicalSwitchPort {
    /// The MAC and IPs the port has: its static `addresses` entry when that names a MAC, else what
    /// northd allocated (`dynamic_addresses`). IPs come without prefix length.
    pub fn effective_addresses(&self) -> Option<(String, Vec<String>)> {
        let parse = |s: &str| {
            let mut it = s.split_whitespace();
            let mac = it.next()?;
            if !mac.contains(':') {
                return None;
            }
            Some((mac.to_string(), it.filter(|w| *w != "dynamic").map(str::to_string).collect::<Vec<_>>()))
        };
        let stat = self.addresses.iter().filter_map(|a| parse(a)).next();
        match (stat, self.dynamic_addresses.as_deref().and_then(parse)) {
            (Some((mac, ips)), _) if !ips.is_empty() => Some((mac, ips)),
            (Some((mac, _)), Some((_, dyn_ips))) => Some((mac, dyn_ips)),
            (Some(s), None) => Some(s),
            (None, d) => d,
        }
    }
    /// Whether the port asks northd to allocate addresses.
    pub fn wants_dynamic(&self) -> bool {
        self.addresses.iter().any(|a| a.split_whitespace().any(|w| w == "dynamic"))
    }
}

/// A logical switch port to create.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewPort {
    pub name: String,
    /// `addresses` entries, e.g. `["0a:00:00:00:00:05 10.1.0.5"]` or `["dynamic"]`.
    pub addresses: Vec<String>,
    pub port_security: Vec<String>,
    pub dhcpv4_options: Option<Uuid>,
    /// `options` (e.g. `model::names::IFACE_ID_VER`); not written when empty.
    pub options: BTreeMap<String, String>,
    pub external_ids: BTreeMap<String, String>,
}

impl NewPort {
    /// The row to insert.
    pub fn row(&self) -> Row {
        let mut row = Row::new()
            .with("name", self.name.as_str())
            .with("addresses", set_datum(&self.addresses))
            .with("port_security", set_datum(&self.port_security))
            .with("external_ids", map_datum(&self.external_ids));
        if let Some(d) = self.dhcpv4_options {
            row.insert("dhcpv4_options", Datum::uuid(d));
        }
        if !self.options.is_empty() {
            row.insert("options", map_datum(&self.options));
        }
        row
    }
}

/// Operations that create `port` and attach it to the switch whose row UUID is `switch`.
/// `uuid_name` names the new row inside the transaction. The mutate matches by UUID, so its
/// `count` is 0 when the switch is gone; callers check it with [`expect_count`].
pub fn add_port(switch: Uuid, port: &NewPort, uuid_name: &str) -> [Operation; 2] {
    [
        Operation::insert("Logical_Switch_Port").row(port.row()).uuid_name(uuid_name),
        Operation::mutate("Logical_Switch", Where::uuid(switch)).mutation(Mutation::insert("ports", Datum::named_uuid(uuid_name))),
    ]
}

/// The operation that detaches (and so deletes: ports are not root rows) the port `port` from the
/// switch `switch`.
pub fn remove_port(switch: Uuid, port: Uuid) -> Operation {
    Operation::mutate("Logical_Switch", Where::uuid(switch)).mutation(Mutation::delete("ports", Datum::uuid(port)))
}

/// The operation that creates a logical switch.
pub fn create_switch(
    name: &str,
    other_config: &BTreeMap<String, String>,
    external_ids: &BTreeMap<String, String>,
    uuid_name: &str,
) -> Operation {
    Operation::insert("Logical_Switch")
        .row(Row::new().with("name", name).with("other_config", map_datum(other_config)).with("external_ids", map_datum(external_ids)))
        .uuid_name(uuid_name)
}

/// The operation that creates a `DHCP_Options` row.
pub fn create_dhcp_options(
    cidr: &str,
    options: &BTreeMap<String, String>,
    external_ids: &BTreeMap<String, String>,
    uuid_name: &str,
) -> Operation {
    Operation::insert("DHCP_Options")
        .row(Row::new().with("cidr", cidr).with("options", map_datum(options)).with("external_ids", map_datum(external_ids)))
        .uuid_name(uuid_name)
}

/// A `wait` (RFC 7047 5.2.6, timeout 0) that fails the transaction unless switch `switch` still
/// lists exactly `ports`. Put it before the operations that add a port claiming addresses that
/// were checked against those ports: every port added to the switch since the read (another
/// claim of the same address, concurrent or not) changes the set, so of two concurrent claims
/// checked against the same ports exactly one commits. See [`is_guard_failure`].
pub fn guard_switch_ports(switch: Uuid, ports: &[Uuid]) -> Operation {
    guard_refs("Logical_Switch", switch, "ports", ports.iter().copied())
}

/// A `wait` (timeout 0) that fails the transaction unless row `row` of `table` still has exactly
/// `refs` in its set column `column` (see [`guard_switch_ports`], [`is_guard_failure`]).
pub fn guard_refs(table: &str, row: Uuid, column: &str, refs: impl IntoIterator<Item = Uuid>) -> Operation {
    Operation::wait(table)
        .filter(Condition::uuid(row))
        .columns([column])
        .until(WaitUntil::Equal)
        .row(Row::new().with(column, Datum::set(refs)))
        .timeout_ms(0)
}

/// A `wait` that fails the transaction unless port `port` still has no `dynamic_addresses`: for
/// ports asking northd for addresses that it had not allocated yet when they were checked (else
/// northd could hand out the checked address between the read and the write).
pub fn guard_unallocated(port: Uuid) -> Operation {
    Operation::wait("Logical_Switch_Port")
        .filter(Condition::uuid(port))
        .columns(["dynamic_addresses"])
        .until(WaitUntil::Equal)
        .row(Row::new().with("dynamic_addresses", Datum::empty_set()))
        .timeout_ms(0)
}

/// The guards for adding a port that claims fixed addresses to `switch`, checked against
/// `ports` (the switch's ports as read): the port set, and every port still waiting for northd.
pub fn address_guards(switch: &LogicalSwitch, ports: &[LogicalSwitchPort]) -> Vec<Operation> {
    let mut ops = vec![guard_switch_ports(switch.uuid, &switch.ports)];
    ops.extend(ports.iter().filter(|p| p.wants_dynamic() && p.dynamic_addresses.is_none()).map(|p| guard_unallocated(p.uuid)));
    ops
}

/// Whether a transaction failed on one of its guards (`wait` timed out): the rows changed since
/// they were read; read again and re-check.
pub fn is_guard_failure(e: &ovsdb::Error) -> bool {
    e.txn().is_some_and(|t| t.op.as_deref() == Some("wait") && t.error == "timed out")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_guards_wait_on_the_port_set_and_on_ports_northd_has_not_served() {
        let sw = LogicalSwitch { uuid: Uuid::from_u128(1), ports: vec![Uuid::from_u128(2), Uuid::from_u128(3)], ..Default::default() };
        let pending = LogicalSwitchPort { uuid: Uuid::from_u128(2), addresses: vec!["dynamic".into()], ..Default::default() };
        let served = LogicalSwitchPort {
            uuid: Uuid::from_u128(3),
            addresses: vec!["dynamic".into()],
            dynamic_addresses: Some("0a:00:00:00:00:01 10.0.0.5".into()),
            ..Default::default()
        };
        let ops = address_guards(&sw, &[pending, served]);
        assert_eq!(ops.len(), 2);
        let Operation::Wait { table, conditions, columns, until, rows, timeout_ms } = &ops[0] else { panic!("{:?}", ops[0]) };
        assert_eq!((table.as_str(), *until, *timeout_ms), ("Logical_Switch", WaitUntil::Equal, Some(0)));
        assert_eq!(conditions, &vec![Condition::uuid(sw.uuid)]);
        assert_eq!(columns, &vec!["ports".to_string()]);
        assert_eq!(rows[0].get("ports").map(Datum::len), Some(2));
        let Operation::Wait { table, conditions, rows, .. } = &ops[1] else { panic!("{:?}", ops[1]) };
        assert_eq!(table, "Logical_Switch_Port");
        assert_eq!(conditions, &vec![Condition::uuid(Uuid::from_u128(2))], "only the port northd has not served");
        assert_eq!(rows[0].get("dynamic_addresses"), Some(&Datum::empty_set()));
    }
}

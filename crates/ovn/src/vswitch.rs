//! The local Open_vSwitch database tables the node side uses (ovs-vswitchd.conf.db(5)), and
//! builders of the operations that plug and unplug an interface on a bridge.

use std::collections::BTreeMap;

use ovsdb::datum::{Datum, Row, Uuid};
use ovsdb::ops::{Mutation, Operation, Where};

use crate::columns::{map_datum, model, ColumnKind as K};

/// The database name of the vswitch schema.
pub const DB: &str = "Open_vSwitch";

model! {
    /// `Open_vSwitch`: the one root row; `external_ids` holds `system-id`, `ovn-remote`,
    /// `ovn-bridge-mappings`, `ovn-encap-ip`...
    pub struct OpenVSwitch in "Open_vSwitch" {
        bridges: Vec<Uuid> = "bridges" as K::RefSet("Bridge"),
        other_config: BTreeMap<String, String> = "other_config" as K::StringMap,
        external_ids: BTreeMap<String, String> = "external_ids" as K::StringMap,
        ovs_version: Option<String> = "ovs_version" as K::OptionalString,
    }
}

model! {
    /// `Bridge`.
    pub struct Bridge in "Bridge" {
        name: String = "name" as K::String,
        datapath_type: String = "datapath_type" as K::String,
        ports: Vec<Uuid> = "ports" as K::RefSet("Port"),
        fail_mode: Option<String> = "fail_mode" as K::OptionalString,
        other_config: BTreeMap<String, String> = "other_config" as K::StringMap,
        external_ids: BTreeMap<String, String> = "external_ids" as K::StringMap,
    }
}

model! {
    /// `Port`: a bridge port, with one or more interfaces.
    pub struct Port in "Port" {
        name: String = "name" as K::String,
        interfaces: Vec<Uuid> = "interfaces" as K::RefSet("Interface"),
        tag: Option<i64> = "tag" as K::OptionalInteger,
        other_config: BTreeMap<String, String> = "other_config" as K::StringMap,
        external_ids: BTreeMap<String, String> = "external_ids" as K::StringMap,
    }
}

model! {
    /// `Interface`: a network device on a port. `external_ids:iface-id` names the OVN logical port.
    pub struct Interface in "Interface" {
        name: String = "name" as K::String,
        kind: String = "type" as K::String,
        options: BTreeMap<String, String> = "options" as K::StringMap,
        mac_in_use: Option<String> = "mac_in_use" as K::OptionalString,
        ofport: Option<i64> = "ofport" as K::OptionalInteger,
        admin_state: Option<String> = "admin_state" as K::OptionalString,
        link_state: Option<String> = "link_state" as K::OptionalString,
        mtu: Option<i64> = "mtu" as K::OptionalInteger,
        error: Option<String> = "error" as K::OptionalString,
        other_config: BTreeMap<String, String> = "other_config" as K::StringMap,
        external_ids: BTreeMap<String, String> = "external_ids" as K::StringMap,
    }
}

impl OpenVSwitch {
    /// `ovn-bridge-mappings` (`physnet:bridge,...`) as (physical network, bridge) pairs.
    pub fn bridge_mappings(&self) -> Vec<(String, String)> {
        self.external_ids
            .get("ovn-bridge-mappings")
            .map(|m| {
                m.split(',')
                    .filter_map(|pair| {
                        let (net, br) = pair.trim().split_once(':')?;
                        (!net.is_empty() && !br.is_empty()).then(|| (net.to_string(), br.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Operations that add a system interface `ifname` (e.g. the host end of a veth) as a port of the
/// bridge with row UUID `bridge`, with the given interface `external_ids` (`iface-id`,
/// `attached-mac`, ...) also copied onto the port. The bridge mutate matches by UUID: a `count` of 0
/// means the bridge is gone.
pub fn plug(bridge: Uuid, ifname: &str, external_ids: &BTreeMap<String, String>) -> [Operation; 3] {
    let ids = map_datum(external_ids);
    [
        Operation::insert("Interface").row(Row::new().with("name", ifname).with("external_ids", ids.clone())).uuid_name("iface"),
        Operation::insert("Port")
            .row(Row::new().with("name", ifname).with("interfaces", Datum::named_uuid("iface")).with("external_ids", ids))
            .uuid_name("port"),
        Operation::mutate("Bridge", Where::uuid(bridge)).mutation(Mutation::insert("ports", Datum::named_uuid("port"))),
    ]
}

/// The operation that removes the port `port` from the bridge `bridge` (the port and its interfaces
/// are not root rows, so the database deletes them).
pub fn unplug(bridge: Uuid, port: Uuid) -> Operation {
    Operation::mutate("Bridge", Where::uuid(bridge)).mutation(Mutation::delete("ports", Datum::uuid(port)))
}

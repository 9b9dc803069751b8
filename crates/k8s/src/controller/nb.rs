//! The controller's connection to the OVN Northbound database: a client for writes, a
//! monitor-backed [`Replica`] for reads, and a transaction counter (tests and the benchmark
//! check that each pod costs one transaction).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ipnet::Ipv4Net;
use ovn::names;
use ovn::nb::DB;
use ovsdb::datum::{Atom, Row, Uuid};
use ovsdb::monitor::MonitorTable;
use ovsdb::ops::{OpResult, Operation};
use ovsdb::replica::{Replica, ReplicaConfig, Snapshot};
use ovsdb::Client;

/// Table names used by the controller.
pub const LS: &str = "Logical_Switch";
pub const LSP: &str = "Logical_Switch_Port";
pub const DHCP: &str = "DHCP_Options";
pub const PG: &str = "Port_Group";
pub const AS: &str = "Address_Set";
pub const ACL: &str = "ACL";

/// Northbound access: writes through `client`, reads from `replica`.
#[derive(Clone)]
pub struct Nb {
    client: Client,
    replica: Replica,
    transactions: Arc<AtomicU64>,
}

impl Nb {
    /// Starts the replica of the tables the controller reads (with the indexes it looks up by)
    /// and returns once it holds the current contents.
    pub async fn start(client: Client) -> Result<Nb, ovsdb::Error> {
        let cfg = ReplicaConfig::new(DB)
            .table(MonitorTable::new(LS).columns(["name", "ports", "other_config", "external_ids"]))
            .table(MonitorTable::new(LSP).columns([
                "name",
                "type",
                "addresses",
                "dynamic_addresses",
                "up",
                "dhcpv4_options",
                "external_ids",
                "options",
                "tag",
            ]))
            .table(MonitorTable::new(DHCP).columns(["cidr", "options"]))
            .table(MonitorTable::new(PG).columns(["name", "ports", "acls", "external_ids"]))
            .table(MonitorTable::new(AS).columns(["name", "addresses", "external_ids"]))
            .table(MonitorTable::new(ACL).columns(["name", "priority", "direction", "match", "action", "external_ids"]))
            .index(LS, "name")
            .index(LSP, "name")
            .index(LSP, "type")
            .index_map_key(LSP, "external_ids", names::POD_UID)
            .index_map_key(LSP, "external_ids", names::VMI_UID)
            .index(DHCP, "cidr")
            .index(PG, "name")
            .index_map_key(PG, "external_ids", names::POLICY)
            .index_map_key(PG, "external_ids", names::LOGICAL_SWITCH)
            .index(AS, "name")
            .index_map_key(AS, "external_ids", names::POLICY);
        let replica = Replica::start(&client, cfg).await?;
        Ok(Nb { client, replica, transactions: Arc::new(AtomicU64::new(0)) })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
    pub fn replica(&self) -> &Replica {
        &self.replica
    }
    /// The current view of the database.
    pub fn view(&self) -> NbView {
        NbView(self.replica.snapshot())
    }
    /// How many transactions this controller has sent.
    pub fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }
    /// Sends one transaction (counted).
    pub async fn transact(&self, ops: Vec<Operation>) -> Result<Vec<OpResult>, ovsdb::Error> {
        self.transactions.fetch_add(1, Ordering::Relaxed);
        tracing::trace!(ops = ops.len(), "NB transaction");
        self.client.transact(DB, ops).await
    }
}

/// A logical switch as the controller needs it (its port set stays in the snapshot: copying it
/// per pod would make reconciling quadratic).
#[derive(Debug, Clone, PartialEq)]
pub struct SwitchInfo {
    pub uuid: Uuid,
    pub name: String,
    /// `other_config:subnet`, when it parses as IPv4.
    pub subnet: Option<Ipv4Net>,
}

/// Lookups the desired-state computation needs; [`NbView`] implements it over the replica,
/// tests can implement it over plain maps.
pub trait SwitchLookup {
    /// The switches named `name` (more than one is a configuration error).
    fn switches(&self, name: &str) -> Vec<SwitchInfo>;
    /// The `DHCP_Options` row whose `cidr` is `subnet`.
    fn dhcpv4(&self, subnet: &Ipv4Net) -> Option<Uuid>;
    /// The logical switch port named `name`: its `addresses` and `external_ids` (persistent-IP
    /// ports keep their addresses across pods). Default: none.
    fn port_entry(&self, _name: &str) -> Option<(Vec<String>, std::collections::BTreeMap<String, String>)> {
        None
    }
}

/// A consistent snapshot of the replicated Northbound tables.
#[derive(Clone, Debug, Default)]
pub struct NbView(pub Snapshot);

impl NbView {
    pub fn snapshot(&self) -> &Snapshot {
        &self.0
    }
    /// The port named `name`.
    pub fn port_by_name(&self, name: &str) -> Option<(Uuid, Arc<Row>)> {
        self.0.find_one(LSP, "name", name)
    }
    /// Ports tagged with pod UID `uid`.
    pub fn ports_of_pod(&self, uid: &str) -> Vec<(Uuid, Arc<Row>)> {
        self.0.find_map(LSP, "external_ids", names::POD_UID, uid)
    }
    /// The persistent-IP ports of VM `vm` (`namespace/name`, [`super::desired::VmIdentity`]) whose
    /// VMI UID is `vmi_uid`: they belong to the VM's launcher pods, not to one pod UID.
    pub fn ports_of_vm(&self, vm: &str, vmi_uid: &str) -> Vec<(Uuid, Arc<Row>)> {
        let mut ports = self.0.find_map(LSP, "external_ids", names::VMI_UID, vmi_uid);
        ports.retain(|(_, row)| row.map_str("external_ids", names::VM) == Some(vm));
        ports
    }
    pub fn port(&self, uuid: &Uuid) -> Option<Arc<Row>> {
        self.0.get(LSP, uuid)
    }
    /// Whether switch `switch` lists port `port` (binary search in the sorted port set).
    pub fn switch_has_port(&self, switch: &Uuid, port: &Uuid) -> bool {
        self.0
            .get(LS, switch)
            .and_then(|r| r.get("ports").and_then(|d| d.as_set()).map(|s| s.binary_search(&Atom::Uuid(*port)).is_ok()))
            .unwrap_or(false)
    }
    /// The ports of switch `switch`.
    pub fn switch_ports(&self, switch: &Uuid) -> Vec<Uuid> {
        self.0
            .get(LS, switch)
            .and_then(|r| r.get("ports").and_then(|d| d.as_set()).map(|s| s.iter().filter_map(Atom::as_uuid).collect()))
            .unwrap_or_default()
    }
    /// The switches and their rows.
    pub fn switches_rows(&self) -> impl Iterator<Item = (&Uuid, &Arc<Row>)> {
        self.0.rows(LS)
    }
    /// The ports of `type` (e.g. `localnet`).
    pub fn ports_of_type(&self, ty: &str) -> Vec<(Uuid, Arc<Row>)> {
        self.0.find(LSP, "type", ty)
    }
    /// The addressing rules of switch `switch` (its `other_config` subnet and `exclude_ips`).
    pub fn switch_rules(&self, switch: &Uuid) -> model::addressing::SwitchRules {
        self.0
            .get(LS, switch)
            .map(|r| model::addressing::SwitchRules::from_other_config(&ovn::columns::string_map(&r, "other_config")))
            .unwrap_or_default()
    }
    /// The name of switch `switch`.
    pub fn switch_name(&self, switch: &Uuid) -> Option<String> {
        self.0.get(LS, switch).map(|r| r.str("name").to_string())
    }
    /// `options:router` of a DHCP_Options row.
    pub fn dhcp_router(&self, dhcp: &Uuid) -> Option<String> {
        self.0.get(DHCP, dhcp).and_then(|r| r.map_str("options", "router").map(str::to_string))
    }
}

impl SwitchLookup for NbView {
    fn switches(&self, name: &str) -> Vec<SwitchInfo> {
        self.0
            .find(LS, "name", name)
            .into_iter()
            .map(|(uuid, row)| SwitchInfo {
                uuid,
                name: row.str("name").to_string(),
                subnet: row.map_str("other_config", "subnet").and_then(|s| s.parse().ok()),
            })
            .collect()
    }
    fn dhcpv4(&self, subnet: &Ipv4Net) -> Option<Uuid> {
        self.0.find_one(DHCP, "cidr", subnet.to_string()).map(|(u, _)| u)
    }
    fn port_entry(&self, name: &str) -> Option<(Vec<String>, std::collections::BTreeMap<String, String>)> {
        let (_, row) = self.port_by_name(name)?;
        Some((ovn::columns::string_set(&row, "addresses"), ovn::columns::string_map(&row, "external_ids")))
    }
}

/// Every IP address written in an `addresses` / `dynamic_addresses` entry (`"MAC IP IP..."`).
pub fn ips_in(entry: &str) -> impl Iterator<Item = IpAddr> + '_ {
    entry.split_whitespace().filter_map(|w| w.split('/').next().and_then(|a| a.parse().ok()))
}
